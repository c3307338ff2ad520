//! Creates in an AWS(-compatible) endpoint exactly the tables, queues, secrets and KMS keys
//! template.yaml declares, so local runs and tests use the deployed shape instead of a second
//! hand-kept list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types as ddb;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::expr::Expr;
use crate::model::{KMS_KEY, QUEUE, SECRET, TABLE, Template};
use crate::resolve::{Physical, ResolveError, Resolver};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("resolving {what}: {source}")]
    Resolve {
        what: String,
        #[source]
        source: ResolveError,
    },
    #[error("{service} {operation} for {resource}: {message}")]
    Aws {
        service: &'static str,
        operation: &'static str,
        resource: String,
        message: String,
    },
    #[error("{resource}: {reason}")]
    Template { resource: String, reason: String },
    /// Suffixes end up in queue and table names: keep them short and name-safe.
    #[error("suffix `{0}` must be 1-24 chars of [a-z0-9-], starting alphanumeric")]
    InvalidSuffix(String),
    /// A name that ignores `${Stage}` would be shared by every isolated copy.
    #[error("{resource} resolves to `{name}`, which does not contain the stage scope `{scope}`")]
    NameNotScoped {
        resource: String,
        name: String,
        scope: String,
    },
    #[error("table {0} is not ACTIVE after 60s")]
    TableNotActive(String),
    #[error("secrets seed {path}: {reason}")]
    Seed { path: String, reason: String },
}

/// Which kinds of resources to create; a DynamoDB-only endpoint gets tables only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceKinds {
    pub tables: bool,
    pub queues: bool,
    pub secrets: bool,
    /// KMS keys (the account tokens' key).
    pub keys: bool,
}

impl ResourceKinds {
    pub const ALL: Self = Self {
        tables: true,
        queues: true,
        secrets: true,
        keys: true,
    };
    pub const TABLES: Self = Self {
        tables: true,
        queues: false,
        secrets: false,
        keys: false,
    };
    pub const QUEUES: Self = Self {
        tables: false,
        queues: true,
        secrets: false,
        keys: false,
    };
    pub const SECRETS: Self = Self {
        tables: false,
        queues: false,
        secrets: true,
        keys: false,
    };
    /// What the token vault needs: its table and key, and the old secrets it migrates from.
    pub const TOKENS: Self = Self {
        tables: true,
        queues: false,
        secrets: true,
        keys: true,
    };
}

#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub stage: String,
    /// Appended to the stage in every `${Stage}`-derived name, so parallel tests get private copies.
    pub suffix: Option<String>,
    /// Template parameter overrides (Stage is set from `stage`).
    pub parameters: BTreeMap<String, String>,
    /// Secret values by logical id; others get the template's `SecretString` or `{}`.
    pub secret_values: BTreeMap<String, String>,
    pub kinds: ResourceKinds,
    /// Replaces every queue's VisibilityTimeout: redelivery tests cannot wait the deployed minutes.
    pub visibility_timeout_override: Option<u32>,
}

impl ProvisionOptions {
    pub fn new(stage: impl Into<String>) -> Self {
        Self {
            stage: stage.into(),
            suffix: None,
            parameters: BTreeMap::new(),
            secret_values: BTreeMap::new(),
            kinds: ResourceKinds::ALL,
            visibility_timeout_override: None,
        }
    }

    pub fn with_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = Some(suffix.into());
        self
    }

    pub fn with_kinds(mut self, kinds: ResourceKinds) -> Self {
        self.kinds = kinds;
        self
    }

    pub fn with_visibility_timeout(mut self, seconds: u32) -> Self {
        self.visibility_timeout_override = Some(seconds);
        self
    }

    /// Reads `{"<SecretLogicalId>": "<string>" | {json}}`; objects are stored as their JSON text.
    pub fn with_secrets_seed_file(
        mut self,
        path: impl AsRef<Path>,
    ) -> Result<Self, ProvisionError> {
        let path = path.as_ref();
        let seed_err = |reason: String| ProvisionError::Seed {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| seed_err(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| seed_err(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(seed_err(
                "expected a JSON object keyed by secret logical id".into(),
            ));
        };
        for (id, v) in map {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            self.secret_values.insert(id, text);
        }
        Ok(self)
    }

    fn scope(&self) -> Result<String, ProvisionError> {
        let Some(suffix) = &self.suffix else {
            return Ok(self.stage.clone());
        };
        let valid = (1..=24).contains(&suffix.len())
            && suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && suffix
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(ProvisionError::InvalidSuffix(suffix.clone()));
        }
        Ok(format!("{}-{suffix}", self.stage))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedTable {
    pub name: String,
    pub arn: String,
    /// The change stream's ARN when the template gives the table a `StreamSpecification`.
    pub stream_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedQueue {
    pub name: String,
    pub url: String,
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedSecret {
    pub name: String,
    pub arn: String,
}

/// A KMS key, found again on a re-run by its alias (keys have no name of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedKey {
    pub alias: String,
    pub key_id: String,
    pub arn: String,
}

/// Physical ids of what was provisioned, by logical id, plus the functions' environment.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub stage: String,
    /// The stage with the suffix: what `${Stage}` expanded to in names.
    pub scope: String,
    pub tables: BTreeMap<String, ProvisionedTable>,
    pub queues: BTreeMap<String, ProvisionedQueue>,
    pub secrets: BTreeMap<String, ProvisionedSecret>,
    pub keys: BTreeMap<String, ProvisionedKey>,
    env: Vec<(String, String)>,
    /// Keys left out of [`Provisioned::env_vars`]: they resolve only on AWS (the HTTP API's URL)
    /// or to different values in different functions; see [`Provisioned::function_env`].
    pub unresolved_env: Vec<String>,
    function_env: BTreeMap<String, Vec<(String, String)>>,
}

impl Provisioned {
    /// Nothing provisioned yet, for `stage` under the name scope `scope`.
    fn empty(stage: String, scope: String) -> Self {
        Self {
            stage,
            scope,
            tables: BTreeMap::new(),
            queues: BTreeMap::new(),
            secrets: BTreeMap::new(),
            keys: BTreeMap::new(),
            env: Vec::new(),
            unresolved_env: Vec::new(),
            function_env: BTreeMap::new(),
        }
    }

    /// The union of the functions' `Environment` resolved against what was provisioned (a key
    /// whose value differs between functions is left out, see `unresolved_env`), plus
    /// `<QUEUE_ID>_URL` / `<QUEUE_ID>_ARN` for every queue (DLQs included), in a stable order.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    /// One function's `Environment` exactly as resolved here (keys that resolve only on AWS omitted).
    pub fn function_env(&self, function_id: &str) -> Option<&[(String, String)]> {
        self.function_env.get(function_id).map(Vec::as_slice)
    }

    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn table(&self, id: &str) -> Option<&ProvisionedTable> {
        self.tables.get(id)
    }

    pub fn queue(&self, id: &str) -> Option<&ProvisionedQueue> {
        self.queues.get(id)
    }

    pub fn secret(&self, id: &str) -> Option<&ProvisionedSecret> {
        self.secrets.get(id)
    }

    pub fn key(&self, id: &str) -> Option<&ProvisionedKey> {
        self.keys.get(id)
    }
}

/// Creates (or finds) every table, queue and secret the template declares. Idempotent: a second
/// run with the same options returns the same physical ids and changes nothing.
pub async fn provision(
    sdk_config: &aws_config::SdkConfig,
    template: &Template,
    options: &ProvisionOptions,
) -> Result<Provisioned, ProvisionError> {
    let scope = options.scope()?;
    let mut parameters = options.parameters.clone();
    parameters.insert("Stage".to_owned(), options.stage.clone());
    let mut resolver = Resolver::new(template, &parameters);
    resolver.set_stage_scope(scope.clone());
    if let Some(region) = sdk_config.region() {
        resolver.set_pseudo("AWS::Region", region.as_ref());
    }
    let name_of =
        |resolver: &Resolver<'_>, id: &str, prop: &str| -> Result<String, ProvisionError> {
            let expr = template
                .resources
                .get(id)
                .and_then(|r| r.prop(prop))
                .ok_or_else(|| ProvisionError::Template {
                    resource: id.to_owned(),
                    reason: format!("needs an explicit {prop}"),
                })?;
            let name = resolver
                .resolve(expr)
                .map_err(|source| ProvisionError::Resolve {
                    what: format!("{id}.{prop}"),
                    source,
                })?;
            if options.suffix.is_some() && !name.contains(&scope) {
                return Err(ProvisionError::NameNotScoped {
                    resource: id.to_owned(),
                    name,
                    scope: scope.clone(),
                });
            }
            Ok(name)
        };

    let mut out = Provisioned::empty(options.stage.clone(), scope.clone());

    if options.kinds.tables {
        let client = aws_sdk_dynamodb::Client::new(sdk_config);
        for id in template.ids_of(TABLE) {
            let name = name_of(&resolver, id, "TableName")?;
            let table = provision_table(&client, template, id, &name).await?;
            set_account_from_arn(&mut resolver, &table.arn);
            let mut attributes = BTreeMap::from([("Arn".to_owned(), table.arn.clone())]);
            if let Some(stream) = &table.stream_arn {
                attributes.insert("StreamArn".to_owned(), stream.clone());
            }
            resolver.set_resource(
                id,
                Physical {
                    reference: table.name.clone(),
                    attributes,
                },
            );
            out.tables.insert(id.to_owned(), table);
        }
    }

    if options.kinds.queues {
        let client = aws_sdk_sqs::Client::new(sdk_config);
        let mut pending: Vec<&str> = template.ids_of(QUEUE).collect();
        // Dead-letter queues first: a redrive policy needs its target's ARN.
        while !pending.is_empty() {
            let ready: Vec<&str> = pending
                .iter()
                .copied()
                .filter(|id| {
                    template
                        .queue(id)
                        .and_then(|q| q.redrive())
                        .is_none_or(|r| out.queues.contains_key(&r.dlq))
                })
                .collect();
            if ready.is_empty() {
                return Err(ProvisionError::Template {
                    resource: pending.join(", "),
                    reason: "RedrivePolicy targets a queue that is not in the template".into(),
                });
            }
            for id in ready {
                let name = name_of(&resolver, id, "QueueName")?;
                let queue =
                    provision_queue(&client, template, &resolver, options, id, &name, &out).await?;
                set_account_from_arn(&mut resolver, &queue.arn);
                resolver.set_resource(
                    id,
                    Physical {
                        reference: queue.url.clone(),
                        attributes: BTreeMap::from([
                            ("Arn".to_owned(), queue.arn.clone()),
                            ("QueueName".to_owned(), queue.name.clone()),
                            ("QueueUrl".to_owned(), queue.url.clone()),
                        ]),
                    },
                );
                out.queues.insert(id.to_owned(), queue);
            }
            pending.retain(|id| !out.queues.contains_key(*id));
        }
    }

    if options.kinds.secrets {
        let client = aws_sdk_secretsmanager::Client::new(sdk_config);
        for id in template.ids_of(SECRET) {
            let name = name_of(&resolver, id, "Name")?;
            let value = options.secret_values.get(id).cloned();
            let placeholder = template
                .resources
                .get(id)
                .and_then(|r| r.prop("SecretString"))
                .and_then(Expr::as_str)
                .unwrap_or("{}")
                .to_owned();
            let secret = provision_secret(&client, &name, value, placeholder).await?;
            // Like CloudFormation: `!Ref Secret` is the secret's ARN.
            resolver.set_resource(
                id,
                Physical {
                    reference: secret.arn.clone(),
                    attributes: BTreeMap::from([("Id".to_owned(), secret.arn.clone())]),
                },
            );
            out.secrets.insert(id.to_owned(), secret);
        }
    }

    if options.kinds.keys {
        let client = aws_sdk_kms::Client::new(sdk_config);
        for id in template.ids_of(KMS_KEY) {
            // Like a name, the alias is stage-scoped: parallel copies never share a key.
            let alias = format!("alias/reelay-{scope}/{id}");
            let key = provision_key(&client, template, &resolver, id, &alias).await?;
            // `!Ref Key` is the key id, `!GetAtt Key.Arn` its ARN, as on AWS.
            resolver.set_resource(
                id,
                Physical {
                    reference: key.key_id.clone(),
                    attributes: BTreeMap::from([
                        ("Arn".to_owned(), key.arn.clone()),
                        ("KeyId".to_owned(), key.key_id.clone()),
                    ]),
                },
            );
            out.keys.insert(id.to_owned(), key);
        }
    }

    let env = environment(template, &resolver, &out);
    out.env = env.union;
    out.unresolved_env = env.unresolved;
    out.function_env = env.per_function;
    Ok(out)
}

fn set_account_from_arn(resolver: &mut Resolver<'_>, arn: &str) {
    if let Some(account) = arn.split(':').nth(4).filter(|a| !a.is_empty()) {
        resolver.set_pseudo("AWS::AccountId", account);
    }
}

/// What `Environment` resolved to: per function, and as one union for a single local process.
struct Environment {
    union: Vec<(String, String)>,
    unresolved: Vec<String>,
    per_function: BTreeMap<String, Vec<(String, String)>>,
}

fn environment(template: &Template, resolver: &Resolver<'_>, out: &Provisioned) -> Environment {
    // key -> (distinct non-empty values, some function resolved it empty, some could not resolve it)
    let mut seen: BTreeMap<String, (BTreeSet<String>, bool, bool)> = BTreeMap::new();
    let mut per_function = BTreeMap::new();
    for f in template.functions() {
        let mut env = Vec::new();
        for (key, value) in &f.environment {
            let resolved = resolver.resolve(value);
            // `!If [.., !Ref AWS::NoValue]` false: the function has no such variable.
            if resolved == Err(ResolveError::NoValue) {
                continue;
            }
            let entry = seen.entry(key.clone()).or_default();
            match resolved {
                Ok(v) if v.is_empty() => {
                    entry.1 = true;
                    env.push((key.clone(), v));
                }
                Ok(v) => {
                    entry.0.insert(v.clone());
                    env.push((key.clone(), v));
                }
                Err(_) => entry.2 = true,
            }
        }
        per_function.insert(f.id.to_owned(), env);
    }
    let mut union = Vec::new();
    let mut unresolved = Vec::new();
    for (key, (values, empty, failed)) in seen {
        // One value for every function that has the key, or the key cannot be shared.
        match values.len() {
            1 => union.extend(values.into_iter().map(|v| (key.clone(), v))),
            0 if empty && !failed => union.push((key, String::new())),
            _ => unresolved.push(key),
        }
    }
    for (id, q) in &out.queues {
        for (key, value) in [
            (format!("{}_URL", screaming_snake(id)), &q.url),
            (format!("{}_ARN", screaming_snake(id)), &q.arn),
        ] {
            if !union.iter().any(|(k, _)| *k == key) {
                union.push((key, value.clone()));
            }
        }
    }
    union.sort();
    Environment {
        union,
        unresolved,
        per_function,
    }
}

/// `RenderDlq` -> `RENDER_DLQ`.
fn screaming_snake(id: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in id.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn aws_err<E>(
    service: &'static str,
    operation: &'static str,
    resource: &str,
) -> impl FnOnce(E) -> ProvisionError
where
    E: std::error::Error,
{
    let resource = resource.to_owned();
    move |e| ProvisionError::Aws {
        service,
        operation,
        resource,
        message: DisplayErrorContext(&e).to_string(),
    }
}

fn build_err(
    resource: &str,
) -> impl Fn(aws_sdk_dynamodb::error::BuildError) -> ProvisionError + '_ {
    move |e| ProvisionError::Template {
        resource: resource.to_owned(),
        reason: e.to_string(),
    }
}

fn key_schema(
    id: &str,
    schema: Option<&Expr>,
) -> Result<Vec<ddb::KeySchemaElement>, ProvisionError> {
    schema
        .map(Expr::as_list)
        .unwrap_or_default()
        .into_iter()
        .map(|k| {
            ddb::KeySchemaElement::builder()
                .set_attribute_name(
                    k.get("AttributeName")
                        .and_then(Expr::as_str)
                        .map(str::to_owned),
                )
                .set_key_type(
                    k.get("KeyType")
                        .and_then(Expr::as_str)
                        .map(ddb::KeyType::from),
                )
                .build()
                .map_err(build_err(id))
        })
        .collect()
}

async fn provision_table(
    client: &aws_sdk_dynamodb::Client,
    template: &Template,
    id: &str,
    name: &str,
) -> Result<ProvisionedTable, ProvisionError> {
    let resource = template
        .resources
        .get(id)
        .ok_or_else(|| ProvisionError::Template {
            resource: id.to_owned(),
            reason: "missing".into(),
        })?;
    let attributes = resource
        .prop("AttributeDefinitions")
        .map(Expr::as_list)
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            ddb::AttributeDefinition::builder()
                .set_attribute_name(
                    a.get("AttributeName")
                        .and_then(Expr::as_str)
                        .map(str::to_owned),
                )
                .set_attribute_type(
                    a.get("AttributeType")
                        .and_then(Expr::as_str)
                        .map(ddb::ScalarAttributeType::from),
                )
                .build()
                .map_err(build_err(id))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut indexes = Vec::new();
    for gsi in resource
        .prop("GlobalSecondaryIndexes")
        .map(Expr::as_list)
        .unwrap_or_default()
    {
        let projection = gsi.get("Projection");
        indexes.push(
            ddb::GlobalSecondaryIndex::builder()
                .set_index_name(
                    gsi.get("IndexName")
                        .and_then(Expr::as_str)
                        .map(str::to_owned),
                )
                .set_key_schema(Some(key_schema(id, gsi.get("KeySchema"))?))
                .projection(
                    ddb::Projection::builder()
                        .set_projection_type(
                            projection
                                .and_then(|p| p.get("ProjectionType"))
                                .and_then(Expr::as_str)
                                .map(ddb::ProjectionType::from),
                        )
                        .set_non_key_attributes(
                            projection.and_then(|p| p.get("NonKeyAttributes")).map(|n| {
                                n.as_list()
                                    .into_iter()
                                    .filter_map(Expr::as_str)
                                    .map(str::to_owned)
                                    .collect()
                            }),
                        )
                        .build(),
                )
                .build()
                .map_err(build_err(id))?,
        );
    }
    let billing = resource
        .prop("BillingMode")
        .and_then(Expr::as_str)
        .unwrap_or("PAY_PER_REQUEST");
    if billing != "PAY_PER_REQUEST" {
        return Err(ProvisionError::Template {
            resource: id.to_owned(),
            reason: format!("BillingMode {billing}: only PAY_PER_REQUEST is provisioned locally"),
        });
    }
    let stream = resource
        .prop("StreamSpecification")
        .and_then(|s| s.get("StreamViewType"))
        .and_then(Expr::as_str)
        .map(|view| {
            ddb::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(ddb::StreamViewType::from(view))
                .build()
                .map_err(build_err(id))
        })
        .transpose()?;
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(ddb::BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(id, resource.prop("KeySchema"))?))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .set_stream_specification(stream)
        .send()
        .await;
    if let Err(e) = created
        && e.code() != Some("ResourceInUseException")
    {
        return Err(aws_err("DynamoDB", "CreateTable", name)(e));
    }

    let mut arn = None;
    let mut stream_arn = None;
    for _ in 0..600 {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(aws_err("DynamoDB", "DescribeTable", name))?;
        let table = described.table();
        if table.and_then(|t| t.table_status()) == Some(&ddb::TableStatus::Active) {
            arn = table.and_then(|t| t.table_arn()).map(str::to_owned);
            stream_arn = table.and_then(|t| t.latest_stream_arn()).map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arn = arn.ok_or_else(|| ProvisionError::TableNotActive(name.to_owned()))?;

    let ttl_spec = resource.prop("TimeToLiveSpecification");
    if ttl_spec
        .and_then(|t| t.get("Enabled"))
        .and_then(Expr::as_bool)
        == Some(true)
    {
        let attribute = ttl_spec
            .and_then(|t| t.get("AttributeName"))
            .and_then(Expr::as_str)
            .ok_or_else(|| ProvisionError::Template {
                resource: id.to_owned(),
                reason: "TimeToLiveSpecification without AttributeName".into(),
            })?;
        let current = client
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(aws_err("DynamoDB", "DescribeTimeToLive", name))?;
        let status = current
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status());
        // Enabling an enabled TTL is a ValidationException on AWS: only change what differs.
        if !matches!(
            status,
            Some(ddb::TimeToLiveStatus::Enabled | ddb::TimeToLiveStatus::Enabling)
        ) {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    ddb::TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build()
                        .map_err(build_err(id))?,
                )
                .send()
                .await
                .map_err(aws_err("DynamoDB", "UpdateTimeToLive", name))?;
        }
    }
    Ok(ProvisionedTable {
        name: name.to_owned(),
        arn,
        stream_arn,
    })
}

/// Queue properties that mean the same as SQS attributes of the same name. Encryption settings
/// are left out: they change nothing an emulator can observe.
const QUEUE_ATTRIBUTES: [&str; 9] = [
    "FifoQueue",
    "ContentBasedDeduplication",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

async fn provision_queue(
    client: &aws_sdk_sqs::Client,
    template: &Template,
    resolver: &Resolver<'_>,
    options: &ProvisionOptions,
    id: &str,
    name: &str,
    done: &Provisioned,
) -> Result<ProvisionedQueue, ProvisionError> {
    let queue = template.queue(id).ok_or_else(|| ProvisionError::Template {
        resource: id.to_owned(),
        reason: "missing".into(),
    })?;
    let mut attributes: HashMap<QueueAttributeName, String> = HashMap::new();
    for key in QUEUE_ATTRIBUTES {
        if let Some(expr) = queue.resource.prop(key) {
            let value = resolver
                .resolve(expr)
                .map_err(|source| ProvisionError::Resolve {
                    what: format!("{id}.{key}"),
                    source,
                })?;
            attributes.insert(QueueAttributeName::from(key), value);
        }
    }
    if let Some(seconds) = options.visibility_timeout_override {
        attributes.insert(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    if let Some(redrive) = queue.redrive() {
        let dlq = done
            .queues
            .get(&redrive.dlq)
            .ok_or_else(|| ProvisionError::Template {
                resource: id.to_owned(),
                reason: format!("dead-letter queue {} not provisioned", redrive.dlq),
            })?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq.arn,
            "maxReceiveCount": redrive.max_receive_count,
        });
        attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
    }

    let created = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.clone()))
        .send()
        .await;
    let url = match created {
        Ok(out) => out.queue_url().map(str::to_owned),
        // Exists with other attributes (e.g. a changed timeout): converge it.
        Err(e) if matches!(e.code(), Some("QueueAlreadyExists" | "QueueNameExists")) => {
            let url = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(aws_err("SQS", "GetQueueUrl", name))?
                .queue_url()
                .map(str::to_owned);
            attributes.remove(&QueueAttributeName::FifoQueue);
            client
                .set_queue_attributes()
                .set_queue_url(url.clone())
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(aws_err("SQS", "SetQueueAttributes", name))?;
            url
        }
        Err(e) => return Err(aws_err("SQS", "CreateQueue", name)(e)),
    };
    let url = url.ok_or_else(|| ProvisionError::Aws {
        service: "SQS",
        operation: "CreateQueue",
        resource: name.to_owned(),
        message: "no QueueUrl in the answer".into(),
    })?;
    // Never construct an ARN: emulators differ in account id (000000000000 vs 123456789012).
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(aws_err("SQS", "GetQueueAttributes", name))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| ProvisionError::Aws {
            service: "SQS",
            operation: "GetQueueAttributes",
            resource: name.to_owned(),
            message: "no QueueArn in the answer".into(),
        })?;
    Ok(ProvisionedQueue {
        name: name.to_owned(),
        url,
        arn,
    })
}

async fn provision_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: Option<String>,
    placeholder: String,
) -> Result<ProvisionedSecret, ProvisionError> {
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value.clone().unwrap_or(placeholder))
        .send()
        .await;
    let arn = match created {
        Ok(out) => out.arn().map(str::to_owned),
        Err(e) if e.code() == Some("ResourceExistsException") => {
            let arn = client
                .describe_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(aws_err("SecretsManager", "DescribeSecret", name))?
                .arn()
                .map(str::to_owned);
            // A re-run with a seed converges the value; without one, an existing value is kept.
            if let Some(value) = value {
                let current = client
                    .get_secret_value()
                    .secret_id(name)
                    .send()
                    .await
                    .map_err(aws_err("SecretsManager", "GetSecretValue", name))?;
                if current.secret_string() != Some(value.as_str()) {
                    client
                        .put_secret_value()
                        .secret_id(name)
                        .secret_string(value)
                        .send()
                        .await
                        .map_err(aws_err("SecretsManager", "PutSecretValue", name))?;
                }
            }
            arn
        }
        Err(e) => return Err(aws_err("SecretsManager", "CreateSecret", name)(e)),
    };
    let arn = arn.ok_or_else(|| ProvisionError::Aws {
        service: "SecretsManager",
        operation: "CreateSecret",
        resource: name.to_owned(),
        message: "no ARN in the answer".into(),
    })?;
    Ok(ProvisionedSecret {
        name: name.to_owned(),
        arn,
    })
}

/// Creates the key with the template's spec and usage, or finds it by its alias. The key policy
/// is not applied: it names IAM roles that exist only on AWS, and the local endpoint does not
/// evaluate key policies (infra/template's rules check it instead).
async fn provision_key(
    client: &aws_sdk_kms::Client,
    template: &Template,
    resolver: &Resolver<'_>,
    id: &str,
    alias: &str,
) -> Result<ProvisionedKey, ProvisionError> {
    let found = |out: &aws_sdk_kms::operation::describe_key::DescribeKeyOutput| {
        out.key_metadata().map(|m| ProvisionedKey {
            alias: alias.to_owned(),
            key_id: m.key_id().to_owned(),
            arn: m.arn().unwrap_or_default().to_owned(),
        })
    };
    match client.describe_key().key_id(alias).send().await {
        Ok(out) => {
            if let Some(key) = found(&out) {
                return Ok(key);
            }
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) => {}
        Err(e) => return Err(aws_err("KMS", "DescribeKey", alias)(e)),
    }
    let resource = template
        .resources
        .get(id)
        .ok_or_else(|| ProvisionError::Template {
            resource: id.to_owned(),
            reason: "missing".into(),
        })?;
    let prop = |name: &str| {
        resource
            .prop(name)
            .and_then(Expr::as_str)
            .map(str::to_owned)
    };
    let mut create = client
        .create_key()
        .set_key_spec(prop("KeySpec").map(|v| aws_sdk_kms::types::KeySpec::from(v.as_str())))
        .set_key_usage(
            prop("KeyUsage").map(|v| aws_sdk_kms::types::KeyUsageType::from(v.as_str())),
        );
    if let Some(description) = resource.prop("Description") {
        let text = resolver
            .resolve(description)
            .map_err(|source| ProvisionError::Resolve {
                what: format!("{id}.Description"),
                source,
            })?;
        create = create.description(text);
    }
    let created = create
        .send()
        .await
        .map_err(aws_err("KMS", "CreateKey", id))?;
    let meta = created.key_metadata().ok_or_else(|| ProvisionError::Aws {
        service: "KMS",
        operation: "CreateKey",
        resource: id.to_owned(),
        message: "no KeyMetadata in the answer".into(),
    })?;
    let key = ProvisionedKey {
        alias: alias.to_owned(),
        key_id: meta.key_id().to_owned(),
        arn: meta.arn().unwrap_or_default().to_owned(),
    };
    let aliased = client
        .create_alias()
        .alias_name(alias)
        .target_key_id(&key.key_id)
        .send()
        .await;
    match aliased {
        Ok(_) => Ok(key),
        // A concurrent run with the same suffix won: use its key (ours stays unused).
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_already_exists_exception()) =>
        {
            let out = client
                .describe_key()
                .key_id(alias)
                .send()
                .await
                .map_err(aws_err("KMS", "DescribeKey", alias))?;
            found(&out).ok_or_else(|| ProvisionError::Aws {
                service: "KMS",
                operation: "DescribeKey",
                resource: alias.to_owned(),
                message: "no KeyMetadata in the answer".into(),
            })
        }
        Err(e) => Err(aws_err("KMS", "CreateAlias", alias)(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `LegacyTokenSecrets=disabled` leaves the token functions without the old secrets'
    /// prefix: absent, not "only on AWS".
    #[test]
    fn when_an_env_var_is_no_value_should_be_absent_not_unresolved() {
        let t = Template::from_yaml_str(include_str!("../../../template.yaml")).unwrap();
        let out = Provisioned::empty("local".into(), "local".into());
        let key = "TIKTOK_TOKEN_SECRET_PREFIX";
        let enabled = environment(&t, &Resolver::new(&t, &BTreeMap::new()), &out);
        assert!(
            enabled
                .union
                .iter()
                .any(|(k, v)| k == key && v == "reelay/dev/tiktok-token/")
        );
        let off = BTreeMap::from([("LegacyTokenSecrets".to_owned(), "disabled".to_owned())]);
        let disabled = environment(&t, &Resolver::new(&t, &off), &out);
        assert!(!disabled.union.iter().any(|(k, _)| k == key));
        assert!(!disabled.unresolved.iter().any(|k| k == key));
        assert!(
            disabled
                .per_function
                .values()
                .all(|env| env.iter().all(|(k, _)| k != key))
        );
    }

    #[test]
    fn when_logical_id_is_camel_case_should_become_env_key() {
        assert_eq!(screaming_snake("RenderDlq"), "RENDER_DLQ");
        assert_eq!(screaming_snake("PublishQueue"), "PUBLISH_QUEUE");
    }

    #[test]
    fn when_suffix_is_not_name_safe_should_be_rejected() {
        assert!(
            ProvisionOptions::new("local")
                .with_suffix("ab-12")
                .scope()
                .is_ok()
        );
        for bad in ["", "AB", "a_b", "-ab", "a".repeat(25).as_str()] {
            assert!(
                matches!(
                    ProvisionOptions::new("local").with_suffix(bad).scope(),
                    Err(ProvisionError::InvalidSuffix(_))
                ),
                "{bad:?} accepted"
            );
        }
    }
}
