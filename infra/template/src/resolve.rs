//! Resolves template values for one stage: parameters, pseudo-parameters, conditions and (once
//! provisioned) the physical ids of resources.

use std::collections::BTreeMap;

use crate::expr::{Expr, sub_variables};
use crate::model::Template;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResolveError {
    /// A name that is neither a parameter, a pseudo-parameter nor a resolved resource here
    /// (e.g. the HTTP API id, which exists only on AWS).
    #[error("cannot resolve `{0}` here")]
    Unresolved(String),
    #[error("unknown condition `{0}`")]
    UnknownCondition(String),
    #[error("unsupported value for {0}")]
    Unsupported(&'static str),
    /// `!Ref AWS::NoValue`: the property (an environment variable, a statement) is absent.
    #[error("AWS::NoValue (absent)")]
    NoValue,
}

/// What a `Ref` and each `GetAtt` attribute of a resource resolve to.
#[derive(Debug, Clone, Default)]
pub struct Physical {
    pub reference: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Resolver<'t> {
    template: &'t Template,
    parameters: BTreeMap<String, String>,
    pseudo: BTreeMap<String, String>,
    /// `${Stage}` inside `!Sub` expands to this: the stage plus the provisioning suffix, so every
    /// name derived from the stage is isolated, while `!Ref Stage` (a metric dimension) stays the stage.
    stage_scope: Option<String>,
    resources: BTreeMap<String, Physical>,
}

impl<'t> Resolver<'t> {
    /// Parameters take their template defaults, overridden by `overrides`.
    pub fn new(template: &'t Template, overrides: &BTreeMap<String, String>) -> Self {
        let mut parameters: BTreeMap<String, String> = template
            .parameters
            .iter()
            .filter_map(|(k, p)| Some((k.clone(), p.default.clone()?)))
            .collect();
        parameters.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let pseudo = [
            ("AWS::Partition", "aws"),
            ("AWS::Region", "us-east-1"),
            // Emulators' account; provisioning replaces it with the one read from a real ARN.
            ("AWS::AccountId", "000000000000"),
            ("AWS::URLSuffix", "amazonaws.com"),
            ("AWS::StackName", "reelay"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self {
            template,
            parameters,
            pseudo,
            stage_scope: None,
            resources: BTreeMap::new(),
        }
    }

    pub fn set_pseudo(&mut self, name: &str, value: impl Into<String>) {
        self.pseudo.insert(name.to_owned(), value.into());
    }

    pub fn set_stage_scope(&mut self, scope: impl Into<String>) {
        self.stage_scope = Some(scope.into());
    }

    pub fn set_resource(&mut self, id: &str, physical: Physical) {
        self.resources.insert(id.to_owned(), physical);
    }

    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    pub fn resolve(&self, expr: &Expr) -> Result<String, ResolveError> {
        match expr {
            Expr::String(s) | Expr::Number(s) => Ok(s.clone()),
            Expr::Bool(b) => Ok(b.to_string()),
            Expr::Ref(name) if name == "AWS::NoValue" => Err(ResolveError::NoValue),
            Expr::Ref(name) => self.lookup(name, None),
            Expr::GetAtt {
                resource,
                attribute,
            } => self.lookup(resource, Some(attribute)),
            Expr::Sub { template, vars } => self.sub(template, vars),
            Expr::If {
                condition,
                then,
                otherwise,
            } => {
                if self.condition(condition)? {
                    self.resolve(then)
                } else {
                    self.resolve(otherwise)
                }
            }
            Expr::Null | Expr::List(_) | Expr::Map(_) | Expr::Fn { .. } => {
                Err(ResolveError::Unsupported("a scalar"))
            }
        }
    }

    fn lookup(&self, name: &str, attribute: Option<&str>) -> Result<String, ResolveError> {
        let unresolved = || {
            ResolveError::Unresolved(
                attribute.map_or_else(|| name.to_owned(), |a| format!("{name}.{a}")),
            )
        };
        if attribute.is_none()
            && let Some(v) = self.parameters.get(name).or_else(|| self.pseudo.get(name))
        {
            return Ok(v.clone());
        }
        let physical = self.resources.get(name).ok_or_else(unresolved)?;
        match attribute {
            None => Ok(physical.reference.clone()),
            Some(a) => physical.attributes.get(a).cloned().ok_or_else(unresolved),
        }
    }

    fn sub(&self, template: &str, vars: &BTreeMap<String, Expr>) -> Result<String, ResolveError> {
        let mut out = template.to_owned();
        for var in sub_variables(template) {
            let value = if let Some(v) = vars.get(var) {
                self.resolve(v)?
            } else if var == "Stage" && self.stage_scope.is_some() {
                self.stage_scope.clone().unwrap_or_default()
            } else {
                match var.split_once('.') {
                    Some((r, a)) if self.template.is_resource(r) => self.lookup(r, Some(a))?,
                    _ => self.lookup(var, None)?,
                }
            };
            out = out.replacen(&format!("${{{var}}}"), &value, 1);
        }
        // `${!Literal}` renders as `${Literal}`.
        Ok(out.replace("${!", "${"))
    }

    pub fn condition(&self, name: &str) -> Result<bool, ResolveError> {
        let expr = self
            .template
            .conditions
            .get(name)
            .ok_or_else(|| ResolveError::UnknownCondition(name.to_owned()))?;
        self.truth(expr)
    }

    fn truth(&self, expr: &Expr) -> Result<bool, ResolveError> {
        let Expr::Fn { name, args } = expr else {
            return Err(ResolveError::Unsupported("a condition"));
        };
        let args = args.as_list();
        match (name.as_str(), args.as_slice()) {
            ("Equals", [a, b]) => Ok(self.resolve(a)? == self.resolve(b)?),
            ("Not", [c]) => Ok(!self.truth(c)?),
            ("And", all) => all
                .iter()
                .try_fold(true, |acc, c| Ok(acc && self.truth(c)?)),
            ("Or", any) => any
                .iter()
                .try_fold(false, |acc, c| Ok(acc || self.truth(c)?)),
            ("Condition", [Expr::String(c)]) => self.condition(c),
            _ => Err(ResolveError::Unsupported("a condition")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T: &str = r#"
Parameters:
  Stage: {Type: String, Default: dev}
  Url: {Type: String, Default: ''}
Conditions:
  HasUrl: !Not [!Equals [!Ref Url, '']]
Resources:
  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !Sub 'reelay-${Stage}-render.fifo'}}
"#;

    fn sub(s: &str) -> Expr {
        Expr::Sub {
            template: s.to_owned(),
            vars: BTreeMap::new(),
        }
    }

    #[test]
    fn when_stage_scope_is_set_should_apply_to_sub_but_not_to_ref() {
        let t = Template::from_yaml_str(T).unwrap();
        let mut r = Resolver::new(&t, &BTreeMap::from([("Stage".into(), "local".into())]));
        r.set_stage_scope("local-x1");
        assert_eq!(
            r.resolve(&sub("reelay-${Stage}-render.fifo")).unwrap(),
            "reelay-local-x1-render.fifo"
        );
        assert_eq!(r.resolve(&Expr::Ref("Stage".into())).unwrap(), "local");
    }

    #[test]
    fn when_condition_depends_on_parameter_should_follow_override() {
        let t = Template::from_yaml_str(T).unwrap();
        assert!(
            !Resolver::new(&t, &BTreeMap::new())
                .condition("HasUrl")
                .unwrap()
        );
        let r = Resolver::new(&t, &BTreeMap::from([("Url".into(), "http://x".into())]));
        assert!(r.condition("HasUrl").unwrap());
    }

    #[test]
    fn when_a_condition_is_false_with_no_value_should_be_absent() {
        let t = Template::from_yaml_str(T).unwrap();
        let value = Expr::If {
            condition: "HasUrl".into(),
            then: Box::new(Expr::Ref("Url".into())),
            otherwise: Box::new(Expr::Ref("AWS::NoValue".into())),
        };
        let r = Resolver::new(&t, &BTreeMap::new());
        assert_eq!(r.resolve(&value), Err(ResolveError::NoValue));
        let r = Resolver::new(&t, &BTreeMap::from([("Url".into(), "http://x".into())]));
        assert_eq!(r.resolve(&value).unwrap(), "http://x");
    }

    #[test]
    fn when_resource_is_not_provisioned_should_be_unresolved() {
        let t = Template::from_yaml_str(T).unwrap();
        let r = Resolver::new(&t, &BTreeMap::new());
        assert_eq!(
            r.resolve(&sub("${Q.Arn}/x")),
            Err(ResolveError::Unresolved("Q.Arn".into()))
        );
    }
}
