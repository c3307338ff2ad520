//! The typed view of template.yaml that provisioning and the rule checks share.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value;

use crate::TemplateError;
use crate::expr::Expr;

pub const FUNCTION: &str = "AWS::Serverless::Function";
pub const QUEUE: &str = "AWS::SQS::Queue";
pub const TABLE: &str = "AWS::DynamoDB::Table";
pub const SECRET: &str = "AWS::SecretsManager::Secret";
pub const KMS_KEY: &str = "AWS::KMS::Key";
pub const ROLE: &str = "AWS::IAM::Role";
pub const LOG_GROUP: &str = "AWS::Logs::LogGroup";

/// Lambda's default when neither the function nor Globals set `Timeout`.
const LAMBDA_DEFAULT_TIMEOUT_S: u64 = 3;
/// SQS's default when a queue sets no `VisibilityTimeout`.
const SQS_DEFAULT_VISIBILITY_S: u64 = 30;

#[derive(Debug, Clone)]
pub struct Parameter {
    pub default: Option<String>,
    /// `AllowedValues`, when the parameter has them (the rules check every one).
    pub allowed_values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    pub properties: BTreeMap<String, Expr>,
    pub metadata: Option<Expr>,
}

impl Resource {
    pub fn prop(&self, key: &str) -> Option<&Expr> {
        self.properties.get(key)
    }
}

/// A parsed template: parameters, conditions, `Globals.Function` and resources by logical id.
#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Parameter>,
    pub conditions: BTreeMap<String, Expr>,
    pub function_globals: BTreeMap<String, Expr>,
    pub resources: BTreeMap<String, Resource>,
}

impl Template {
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    pub fn from_yaml_str(text: &str) -> Result<Self, TemplateError> {
        let value: Value = serde_norway::from_str(text)?;
        let root = Expr::from_yaml(&value, "")?;
        let section = |name: &str| {
            root.get(name)
                .and_then(Expr::as_map)
                .cloned()
                .unwrap_or_default()
        };

        let parameters = section("Parameters")
            .into_iter()
            .map(|(name, p)| {
                let default = p.get("Default").and_then(Expr::as_str).map(str::to_owned);
                let allowed_values = p
                    .get("AllowedValues")
                    .map(Expr::as_list)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(Expr::as_str)
                    .map(str::to_owned)
                    .collect();
                (
                    name,
                    Parameter {
                        default,
                        allowed_values,
                    },
                )
            })
            .collect();
        let function_globals = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(Expr::as_map)
            .cloned()
            .unwrap_or_default();
        let mut resources = BTreeMap::new();
        for (id, r) in section("Resources") {
            let kind = r
                .get("Type")
                .and_then(Expr::as_str)
                .ok_or_else(|| TemplateError::Shape {
                    path: format!("Resources.{id}.Type"),
                    expected: "a resource type",
                })?
                .to_owned();
            let properties = r
                .get("Properties")
                .and_then(Expr::as_map)
                .cloned()
                .unwrap_or_default();
            let metadata = r.get("Metadata").cloned();
            resources.insert(
                id,
                Resource {
                    kind,
                    properties,
                    metadata,
                },
            );
        }
        Ok(Self {
            parameters,
            conditions: section("Conditions"),
            function_globals,
            resources,
        })
    }

    /// Logical ids of resources of one type, in a stable order.
    pub fn ids_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.resources
            .iter()
            .filter(move |(_, r)| r.kind == kind)
            .map(|(id, _)| id.as_str())
    }

    pub fn functions(&self) -> Vec<Function<'_>> {
        self.ids_of(FUNCTION)
            .filter_map(|id| Some(Function::new(self, id, self.resources.get(id)?)))
            .collect()
    }

    pub fn queues(&self) -> Vec<Queue<'_>> {
        self.ids_of(QUEUE)
            .filter_map(|id| Some(Queue::new(id, self.resources.get(id)?)))
            .collect()
    }

    pub fn queue(&self, id: &str) -> Option<Queue<'_>> {
        self.resources
            .get_key_value(id)
            .filter(|(_, r)| r.kind == QUEUE)
            .map(|(id, r)| Queue::new(id, r))
    }

    pub fn is_resource(&self, name: &str) -> bool {
        self.resources.contains_key(name)
    }
}

/// A SAM function with Globals applied.
#[derive(Debug, Clone)]
pub struct Function<'t> {
    pub id: &'t str,
    pub resource: &'t Resource,
    /// `Globals.Function.Environment` merged under the function's own (SAM merges maps).
    pub environment: BTreeMap<String, Expr>,
    pub timeout_s: u64,
}

impl<'t> Function<'t> {
    fn new(t: &'t Template, id: &'t str, resource: &'t Resource) -> Self {
        let env_of = |props: &BTreeMap<String, Expr>| {
            props
                .get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(Expr::as_map)
                .cloned()
                .unwrap_or_default()
        };
        let mut environment = env_of(&t.function_globals);
        environment.extend(env_of(&resource.properties));
        let timeout_s = resource
            .prop("Timeout")
            .or_else(|| t.function_globals.get("Timeout"))
            .and_then(Expr::as_u64)
            .unwrap_or(LAMBDA_DEFAULT_TIMEOUT_S);
        Self {
            id,
            resource,
            environment,
            timeout_s,
        }
    }

    /// Logical ids of the queues feeding this function through `Type: SQS` events.
    pub fn sqs_sources(&self) -> Vec<String> {
        self.events_of_type("SQS")
            .filter_map(|props| match props.get("Queue") {
                Some(Expr::GetAtt { resource, .. }) => Some(resource.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn events_of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Expr> + 'a {
        self.resource
            .prop("Events")
            .and_then(Expr::as_map)
            .into_iter()
            .flat_map(|events| events.values())
            .filter(move |e| e.get("Type").and_then(Expr::as_str) == Some(kind))
            .filter_map(|e| e.get("Properties"))
    }

    /// The explicit role's logical id (`Role: !GetAtt X.Arn`), if the function has one.
    pub fn role_id(&self) -> Option<&str> {
        match self.resource.prop("Role") {
            Some(Expr::GetAtt { resource, .. }) => Some(resource),
            Some(Expr::Ref(resource)) => Some(resource),
            _ => None,
        }
    }
}

/// A dead-letter target: the DLQ's logical id and how many receives move a message there.
#[derive(Debug, Clone, PartialEq)]
pub struct Redrive {
    pub dlq: String,
    pub max_receive_count: u64,
}

#[derive(Debug, Clone)]
pub struct Queue<'t> {
    pub id: &'t str,
    pub resource: &'t Resource,
}

impl<'t> Queue<'t> {
    fn new(id: &'t str, resource: &'t Resource) -> Self {
        Self { id, resource }
    }

    pub fn is_fifo(&self) -> bool {
        self.resource.prop("FifoQueue").and_then(Expr::as_bool) == Some(true)
    }

    pub fn visibility_timeout_s(&self) -> u64 {
        self.resource
            .prop("VisibilityTimeout")
            .and_then(Expr::as_u64)
            .unwrap_or(SQS_DEFAULT_VISIBILITY_S)
    }

    pub fn redrive(&self) -> Option<Redrive> {
        let policy = self.resource.prop("RedrivePolicy")?;
        let dlq = match policy.get("deadLetterTargetArn")? {
            Expr::GetAtt { resource, .. } => resource.clone(),
            _ => return None,
        };
        let max_receive_count = policy.get("maxReceiveCount").and_then(Expr::as_u64)?;
        Some(Redrive {
            dlq,
            max_receive_count,
        })
    }
}
