//! CloudFormation values with their intrinsic functions kept as data, so the same parsed template
//! can be checked statically (which resources does a value name?) and resolved for one stage.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use crate::TemplateError;

/// A template value. Short-form tags (`!Ref`) and long-form maps (`{Ref: ..}`) parse to the same node.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    Bool(bool),
    /// Numbers keep their YAML spelling: CloudFormation passes them on as strings anyway.
    Number(String),
    String(String),
    List(Vec<Expr>),
    Map(BTreeMap<String, Expr>),
    Ref(String),
    GetAtt {
        resource: String,
        attribute: String,
    },
    Sub {
        template: String,
        vars: BTreeMap<String, Expr>,
    },
    If {
        condition: String,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// Any other intrinsic (`Equals`, `Not`, `Join`, `Condition`, ...), by its short name.
    Fn {
        name: String,
        args: Box<Expr>,
    },
}

impl Expr {
    /// Converts a parsed YAML node; `path` names the node in errors.
    pub fn from_yaml(value: &Value, path: &str) -> Result<Self, TemplateError> {
        Ok(match value {
            Value::Null => Expr::Null,
            Value::Bool(b) => Expr::Bool(*b),
            Value::Number(n) => Expr::Number(n.to_string()),
            Value::String(s) => Expr::String(s.clone()),
            Value::Sequence(items) => Expr::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Expr::from_yaml(v, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Mapping(map) => {
                if map.len() == 1
                    && let Some((Value::String(key), arg)) = map.iter().next()
                {
                    let name = if key == "Ref" || (key == "Condition" && arg.is_string()) {
                        Some(key.as_str())
                    } else {
                        key.strip_prefix("Fn::")
                    };
                    if let Some(name) = name {
                        return intrinsic(name, Expr::from_yaml(arg, path)?, path);
                    }
                }
                let mut out = BTreeMap::new();
                for (k, v) in map {
                    let Value::String(key) = k else {
                        return Err(TemplateError::Shape {
                            path: path.to_owned(),
                            expected: "string keys",
                        });
                    };
                    out.insert(key.clone(), Expr::from_yaml(v, &format!("{path}.{key}"))?);
                }
                Expr::Map(out)
            }
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let name = tag.trim_start_matches('!');
                intrinsic(name, Expr::from_yaml(&tagged.value, path)?, path)?
            }
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Expr::String(s) | Expr::Number(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&BTreeMap<String, Expr>> {
        match self {
            Expr::Map(m) => Some(m),
            _ => None,
        }
    }

    /// A list, or a single value read as a one-item list (IAM `Action`/`Resource` accept both).
    pub fn as_list(&self) -> Vec<&Expr> {
        match self {
            Expr::List(items) => items.iter().collect(),
            other => vec![other],
        }
    }

    pub fn get(&self, key: &str) -> Option<&Expr> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// A literal number (`5` or `"5"`).
    pub fn as_u64(&self) -> Option<u64> {
        self.as_str().and_then(|s| s.parse().ok())
    }

    /// A literal boolean (`true` or `"true"`).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Expr::Bool(b) => Some(*b),
            Expr::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// Every name this value references through `Ref`, `GetAtt` or `${..}` in `Sub` (parameters,
    /// pseudo-parameters and resources alike; callers filter).
    pub fn references(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_references(&mut out);
        out
    }

    fn collect_references(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::Ref(name) => {
                out.insert(name.clone());
            }
            Expr::GetAtt { resource, .. } => {
                out.insert(resource.clone());
            }
            Expr::Sub { template, vars } => {
                for var in sub_variables(template) {
                    let head = var.split('.').next().unwrap_or(var);
                    if !vars.contains_key(head) {
                        out.insert(head.to_owned());
                    }
                }
                vars.values().for_each(|v| v.collect_references(out));
            }
            Expr::If {
                then, otherwise, ..
            } => {
                then.collect_references(out);
                otherwise.collect_references(out);
            }
            Expr::List(items) => items.iter().for_each(|v| v.collect_references(out)),
            Expr::Map(map) => map.values().for_each(|v| v.collect_references(out)),
            Expr::Fn { args, .. } => args.collect_references(out),
            Expr::Null | Expr::Bool(_) | Expr::Number(_) | Expr::String(_) => {}
        }
    }
}

fn intrinsic(name: &str, arg: Expr, path: &str) -> Result<Expr, TemplateError> {
    let shape = |expected| TemplateError::Shape {
        path: path.to_owned(),
        expected,
    };
    Ok(match name {
        "Ref" => Expr::Ref(arg.as_str().ok_or_else(|| shape("!Ref NAME"))?.to_owned()),
        "GetAtt" => {
            let (resource, attribute) = match &arg {
                Expr::String(s) => s.split_once('.').ok_or_else(|| shape("!GetAtt R.Attr"))?,
                Expr::List(items) => match items.as_slice() {
                    [Expr::String(r), Expr::String(a)] => (r.as_str(), a.as_str()),
                    _ => return Err(shape("!GetAtt [R, Attr]")),
                },
                _ => return Err(shape("!GetAtt R.Attr")),
            };
            Expr::GetAtt {
                resource: resource.to_owned(),
                attribute: attribute.to_owned(),
            }
        }
        "Sub" => match arg {
            Expr::String(template) => Expr::Sub {
                template,
                vars: BTreeMap::new(),
            },
            Expr::List(mut items) if items.len() == 2 => {
                let vars = items.pop().and_then(|v| match v {
                    Expr::Map(m) => Some(m),
                    _ => None,
                });
                match (items.pop(), vars) {
                    (Some(Expr::String(template)), Some(vars)) => Expr::Sub { template, vars },
                    _ => return Err(shape("!Sub [template, {vars}]")),
                }
            }
            _ => return Err(shape("!Sub template")),
        },
        "If" => match arg {
            Expr::List(items) if items.len() == 3 => {
                let mut it = items.into_iter();
                match (it.next(), it.next(), it.next()) {
                    (Some(Expr::String(condition)), Some(then), Some(otherwise)) => Expr::If {
                        condition,
                        then: Box::new(then),
                        otherwise: Box::new(otherwise),
                    },
                    _ => return Err(shape("!If [Condition, then, else]")),
                }
            }
            _ => return Err(shape("!If [Condition, then, else]")),
        },
        other => Expr::Fn {
            name: other.to_owned(),
            args: Box::new(arg),
        },
    })
}

/// The `${...}` variables of a `Sub` template, skipping `${!Literal}` escapes.
pub fn sub_variables(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let var = &after[..end];
        if !var.starts_with('!') {
            out.push(var);
        }
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Expr {
        let value: Value = serde_norway::from_str(yaml).unwrap();
        Expr::from_yaml(&value, "test").unwrap()
    }

    #[test]
    fn when_short_and_long_forms_should_parse_alike() {
        assert_eq!(parse("!Ref Stage"), parse("{Ref: Stage}"));
        assert_eq!(parse("!GetAtt Q.Arn"), parse("{'Fn::GetAtt': [Q, Arn]}"));
        assert_eq!(
            parse("!Sub 'a-${Stage}'"),
            parse("{'Fn::Sub': 'a-${Stage}'}")
        );
    }

    #[test]
    fn when_sub_has_escapes_and_attributes_should_reference_only_real_names() {
        let refs = parse("!Sub '${Table.Arn}/index/x/${!Literal}/${AWS::Region}'").references();
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            vec!["AWS::Region".to_owned(), "Table".to_owned()]
        );
    }

    #[test]
    fn when_if_is_nested_should_collect_both_branches() {
        let refs = parse("!If [C, !Ref A, !Sub '${B}']").references();
        assert!(refs.contains("A") && refs.contains("B") && !refs.contains("C"));
    }
}
