//! Rules the template must keep that cfn-lint does not check (or checks too loosely).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::expr::Expr;
use crate::model::{Function, KMS_KEY, LOG_GROUP, QUEUE, ROLE, SECRET, TABLE, Template};
use crate::resolve::Resolver;

/// AWS's guidance for SQS event sources: a message must stay hidden for several invocations'
/// worth of retries, or a slow batch is redelivered while still being processed.
pub const VISIBILITY_TIMEOUT_FACTOR: u64 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    VisibilityTooShort {
        queue: String,
        function: String,
        visibility_s: u64,
        timeout_s: u64,
    },
    /// SQS refuses a standard DLQ for a FIFO queue at deploy time.
    DlqNotFifo {
        queue: String,
        dlq: String,
    },
    /// Without a DLQ a poison message is retried until its retention expires.
    NoRedrive {
        queue: String,
    },
    WildcardAction {
        policy: String,
        action: String,
    },
    WildcardResource {
        policy: String,
        resource: String,
    },
    /// A statement names a resource the function neither reads from its environment nor
    /// consumes as an event source.
    ResourceNotUsed {
        function: String,
        policy: String,
        resource: String,
    },
    /// The function's environment or event sources name a resource no statement grants it.
    MissingGrant {
        function: String,
        resource: String,
    },
    /// An index ARN naming an index the table does not have.
    UnknownIndex {
        policy: String,
        resource: String,
    },
    /// `NotAction`/`NotResource`, or a statement without `Action` or `Resource`: it grants
    /// everything but a list (or nothing checkable), which the wildcard rule cannot see.
    InexactStatement {
        policy: String,
        reason: &'static str,
    },
    /// A managed policy (AWS's use `Resource: '*'`) or a SAM policy template: its statements are
    /// not in the template, so no rule here can check them.
    ManagedPolicy {
        owner: String,
        policy: String,
    },
    /// An action of one service on another service's resource (e.g. `sqs:SendMessage` on the
    /// table): it grants nothing useful and usually means the statement meant another resource.
    ServiceMismatch {
        policy: String,
        action: String,
        resource: String,
    },
    /// SAM's generated role attaches AWS managed policies whose statements use `Resource: '*'`.
    GeneratedRole {
        function: String,
    },
    /// The API's definition names the function's ARN, so the function naming the API is a
    /// dependency cycle CloudFormation rejects at deploy time (cfn-lint does not see it).
    ApiCycle {
        function: String,
        api: String,
    },
    /// A key policy lets a principal encrypt or decrypt that is not the role of a function
    /// configured with the key (the account root included: that would let any IAM policy grant it).
    KeyUseNotNeeded {
        key: String,
        statement: String,
        principal: String,
    },
    /// A function is configured with a key whose policy does not let its role use it.
    KeyUseMissing {
        function: String,
        key: String,
    },
    /// A key policy statement with a wildcard action or a non-`Allow` shape this crate cannot judge.
    KeyPolicyInexact {
        key: String,
        statement: String,
        reason: String,
    },
    /// A key policy lets a template parameter's principal (the operator's role) use the key
    /// other than as the function roles do: present when the parameter is empty, other actions,
    /// or without their encryption-context condition.
    OperatorKeyUse {
        key: String,
        statement: String,
        parameter: String,
        reason: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::VisibilityTooShort {
                queue,
                function,
                visibility_s,
                timeout_s,
            } => write!(
                f,
                "{queue}: VisibilityTimeout {visibility_s}s < {VISIBILITY_TIMEOUT_FACTOR} x {function} Timeout {timeout_s}s"
            ),
            Violation::DlqNotFifo { queue, dlq } => {
                write!(
                    f,
                    "{queue}: FIFO queue with non-FIFO dead-letter queue {dlq}"
                )
            }
            Violation::NoRedrive { queue } => write!(f, "{queue}: no RedrivePolicy (no DLQ)"),
            Violation::WildcardAction { policy, action } => {
                write!(f, "{policy}: wildcard action `{action}`")
            }
            Violation::WildcardResource { policy, resource } => {
                write!(f, "{policy}: wildcard resource `{resource}`")
            }
            Violation::ResourceNotUsed {
                function,
                policy,
                resource,
            } => write!(
                f,
                "{policy}: grants {function} `{resource}`, which it does not use"
            ),
            Violation::MissingGrant { function, resource } => {
                write!(
                    f,
                    "{function}: uses {resource}, but no statement of its role grants it"
                )
            }
            Violation::UnknownIndex { policy, resource } => {
                write!(
                    f,
                    "{policy}: `{resource}` names an index the table does not have"
                )
            }
            Violation::KeyUseNotNeeded {
                key,
                statement,
                principal,
            } => write!(
                f,
                "{key}[{statement}]: lets `{principal}` use the key, which no function configured with it runs as"
            ),
            Violation::KeyUseMissing { function, key } => write!(
                f,
                "{function}: is configured with {key}, whose key policy does not let its role use it"
            ),
            Violation::OperatorKeyUse {
                key,
                statement,
                parameter,
                reason,
            } => write!(
                f,
                "{key}: key policy statement {statement} lets parameter {parameter}'s principal use the key but {reason}"
            ),
            Violation::KeyPolicyInexact {
                key,
                statement,
                reason,
            } => write!(f, "{key}[{statement}]: {reason}"),
            Violation::ApiCycle { function, api } => write!(
                f,
                "{function}: is an integration of {api} and also references it (dependency cycle)"
            ),
            Violation::InexactStatement { policy, reason } => {
                write!(
                    f,
                    "{policy}: {reason}; name the actions and resources granted"
                )
            }
            Violation::ManagedPolicy { owner, policy } => write!(
                f,
                "{owner}: managed policy or policy template `{policy}` cannot be checked; use inline statements"
            ),
            Violation::ServiceMismatch {
                policy,
                action,
                resource,
            } => write!(
                f,
                "{policy}: action `{action}` does not apply to `{resource}` (another service)"
            ),
            Violation::GeneratedRole { function } => write!(
                f,
                "{function}: no explicit Role; SAM's generated role attaches managed policies on Resource '*'"
            ),
        }
    }
}

/// Every rule, in a stable order.
pub fn check(t: &Template) -> Vec<Violation> {
    let mut out = check_visibility_timeouts(t);
    out.extend(check_fifo_dlqs(t));
    out.extend(check_redrive_policies(t));
    out.extend(check_no_wildcards(t));
    out.extend(check_policy_scope(t));
    // A statement or an environment variable may depend on a parameter (`!If`): the scope must
    // hold for every allowed value, not only the defaults.
    for (name, p) in &t.parameters {
        for value in p
            .allowed_values
            .iter()
            .filter(|v| p.default.as_ref() != Some(*v))
        {
            let with = BTreeMap::from([(name.clone(), value.clone())]);
            for v in check_policy_scope_with(t, &with) {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
    }
    out.extend(check_statement_shapes(t));
    out.extend(check_action_services(t));
    out.extend(check_api_cycles(t));
    out.extend(check_key_users(t));
    out
}

/// KMS actions that use a key's material (or hand it on): only the roles that need them.
const KEY_USE_ACTIONS: [&str; 8] = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
    "kms:ImportKeyMaterial",
];

/// What an operator's role may do with a key: exactly what the function roles do with it.
const OPERATOR_KEY_ACTIONS: [&str; 2] = ["kms:GenerateDataKey", "kms:Decrypt"];

/// The parameter a condition tests for being set: `!Not [!Equals [!Ref P, '']]` (either order).
fn condition_sets(t: &Template, condition: &str) -> Option<String> {
    let Some(Expr::Fn { name, args }) = t.conditions.get(condition) else {
        return None;
    };
    if name != "Not" {
        return None;
    }
    let inner = args.as_list();
    let [Expr::Fn { name: eq, args }] = inner.as_slice() else {
        return None;
    };
    let operands = args.as_list();
    match (eq.as_str(), operands.as_slice()) {
        ("Equals", [Expr::Ref(p), Expr::String(e)] | [Expr::String(e), Expr::Ref(p)])
            if e.is_empty() =>
        {
            Some(p.clone())
        }
        _ => None,
    }
}

/// A policy statement written `!If [Cond, statement, !Ref AWS::NoValue]`: the statement and its
/// guard (present only when `Cond` holds); any other item as it is, unguarded.
fn guarded(item: &Expr) -> (&Expr, Option<&str>) {
    match item {
        Expr::If {
            condition,
            then,
            otherwise,
        } if matches!(otherwise.as_ref(), Expr::Ref(r) if r == "AWS::NoValue") => {
            (then.as_ref(), Some(condition.as_str()))
        }
        other => (other, None),
    }
}

/// A key's policy alone decides who may use it (KMS consults IAM policies only where the key
/// policy allows the account): every principal allowed to use a key must be the role of a
/// function whose environment names that key, and every such role must be allowed. The one
/// other user allowed is an operator's role given as a template parameter (empty by default),
/// in a statement that exists only when the parameter is set (`!If [<condition>, {..},
/// !Ref AWS::NoValue]` with the condition `!Not [!Equals [!Ref P, '']]`), with exactly the
/// functions' data-key actions and the same condition as the function roles' statement.
pub fn check_key_users(t: &Template) -> Vec<Violation> {
    let mut out = Vec::new();
    for key in t.ids_of(KMS_KEY) {
        let Some(resource) = t.resources.get(key) else {
            continue;
        };
        let users: BTreeMap<String, String> = t
            .functions()
            .iter()
            .filter(|f| f.environment.values().any(|v| v.references().contains(key)))
            .filter_map(|f| Some((f.role_id()?.to_owned(), f.id.to_owned())))
            .collect();
        let statements = resource
            .prop("KeyPolicy")
            .and_then(|p| p.get("Statement"))
            .map(Expr::as_list)
            .unwrap_or_default();
        let mut allowed: BTreeSet<String> = BTreeSet::new();
        // The function roles' conditions, and each operator statement's (label, parameter,
        // condition), compared once every statement is read.
        let mut function_conditions: Vec<Option<&Expr>> = Vec::new();
        let mut operators: Vec<(String, String, Option<&Expr>)> = Vec::new();
        for (i, item) in statements.into_iter().enumerate() {
            // A conditional statement: judged as written, and knowing its guard.
            let (s, guard) = guarded(item);
            if guard.is_none() && matches!(item, Expr::If { .. }) {
                out.push(Violation::KeyPolicyInexact {
                    key: key.to_owned(),
                    statement: i.to_string(),
                    reason:
                        "a conditional statement must be absent otherwise (`!Ref AWS::NoValue`)"
                            .into(),
                });
                continue;
            }
            let label = s
                .get("Sid")
                .and_then(Expr::as_str)
                .map_or_else(|| i.to_string(), str::to_owned);
            let inexact = |reason: String| Violation::KeyPolicyInexact {
                key: key.to_owned(),
                statement: label.clone(),
                reason,
            };
            if s.get("Effect").and_then(Expr::as_str) != Some("Allow") {
                out.push(inexact("not an Allow statement".into()));
                continue;
            }
            if s.get("NotAction").is_some() || s.get("NotPrincipal").is_some() {
                out.push(inexact("uses NotAction or NotPrincipal".into()));
                continue;
            }
            let actions: Vec<String> = s
                .get("Action")
                .map(Expr::as_list)
                .unwrap_or_default()
                .into_iter()
                .map(text)
                .collect();
            if let Some(a) = actions.iter().find(|a| a.contains('*')) {
                out.push(inexact(format!("wildcard action `{a}`")));
                continue;
            }
            if !actions
                .iter()
                .any(|a| KEY_USE_ACTIONS.contains(&a.as_str()))
            {
                continue;
            }
            let principals = match s.get("Principal") {
                Some(p) => p.get("AWS").map(Expr::as_list).unwrap_or_else(|| vec![p]),
                None => Vec::new(),
            };
            let mut grants_a_function = false;
            for p in principals {
                if let Expr::Ref(parameter) = p
                    && t.parameters.contains_key(parameter)
                {
                    let operator = |reason: &str| Violation::OperatorKeyUse {
                        key: key.to_owned(),
                        statement: label.clone(),
                        parameter: parameter.clone(),
                        reason: reason.to_owned(),
                    };
                    let default = t.parameters[parameter.as_str()].default.as_deref();
                    if default != Some("") {
                        out.push(operator("its default is not empty"));
                    }
                    if guard.and_then(|c| condition_sets(t, c)).as_ref() != Some(parameter) {
                        out.push(operator(
                            "the statement is not absent when the parameter is empty",
                        ));
                    }
                    let exact: BTreeSet<&str> = actions.iter().map(String::as_str).collect();
                    if exact != BTreeSet::from(OPERATOR_KEY_ACTIONS) {
                        out.push(operator(&format!(
                            "its actions are not exactly {}",
                            OPERATOR_KEY_ACTIONS.join(", ")
                        )));
                    }
                    operators.push((label.clone(), parameter.clone(), s.get("Condition")));
                    continue;
                }
                let role = p
                    .references()
                    .into_iter()
                    .find(|r| t.resources.get(r).is_some_and(|x| x.kind == ROLE));
                match role {
                    Some(role) if users.contains_key(&role) => {
                        allowed.insert(role);
                        grants_a_function = true;
                    }
                    Some(role) => out.push(Violation::KeyUseNotNeeded {
                        key: key.to_owned(),
                        statement: label.clone(),
                        principal: role,
                    }),
                    None => out.push(Violation::KeyUseNotNeeded {
                        key: key.to_owned(),
                        statement: label.clone(),
                        principal: text(p),
                    }),
                }
            }
            if grants_a_function {
                function_conditions.push(s.get("Condition"));
            }
        }
        for (statement, parameter, condition) in operators {
            let same = condition.is_some()
                && !function_conditions.is_empty()
                && function_conditions.iter().all(|c| *c == condition);
            if !same {
                out.push(Violation::OperatorKeyUse {
                    key: key.to_owned(),
                    statement,
                    parameter,
                    reason: "its condition is not the function roles' (the encryption context)"
                        .into(),
                });
            }
        }
        for (role, function) in &users {
            if !allowed.contains(role) {
                out.push(Violation::KeyUseMissing {
                    function: function.clone(),
                    key: key.to_owned(),
                });
            }
        }
    }
    out
}

/// A function attached to an API (`Type: HttpApi`/`Api` events) must not reference that API.
pub fn check_api_cycles(t: &Template) -> Vec<Violation> {
    let mut out = Vec::new();
    for f in t.functions() {
        let apis: BTreeSet<String> = ["HttpApi", "Api"]
            .into_iter()
            .flat_map(|kind| f.events_of_type(kind))
            .filter_map(|props| props.get("ApiId").or_else(|| props.get("RestApiId")))
            .flat_map(Expr::references)
            .collect();
        let referenced: BTreeSet<String> = f
            .resource
            .properties
            .iter()
            .filter(|(k, _)| k.as_str() != "Events")
            .flat_map(|(_, v)| v.references())
            .collect();
        for api in apis.intersection(&referenced) {
            out.push(Violation::ApiCycle {
                function: f.id.to_owned(),
                api: api.clone(),
            });
        }
    }
    out
}

pub fn check_visibility_timeouts(t: &Template) -> Vec<Violation> {
    let mut out = Vec::new();
    for f in t.functions() {
        for queue_id in f.sqs_sources() {
            let Some(queue) = t.queue(&queue_id) else {
                continue;
            };
            let visibility_s = queue.visibility_timeout_s();
            if visibility_s < VISIBILITY_TIMEOUT_FACTOR * f.timeout_s {
                out.push(Violation::VisibilityTooShort {
                    queue: queue_id,
                    function: f.id.to_owned(),
                    visibility_s,
                    timeout_s: f.timeout_s,
                });
            }
        }
    }
    out
}

pub fn check_fifo_dlqs(t: &Template) -> Vec<Violation> {
    t.queues()
        .into_iter()
        .filter(|q| q.is_fifo())
        .filter_map(|q| {
            let redrive = q.redrive()?;
            let dlq_is_fifo = t.queue(&redrive.dlq).is_some_and(|d| d.is_fifo());
            (!dlq_is_fifo).then(|| Violation::DlqNotFifo {
                queue: q.id.to_owned(),
                dlq: redrive.dlq,
            })
        })
        .collect()
}

/// Every queue that is not itself a dead-letter target needs one.
pub fn check_redrive_policies(t: &Template) -> Vec<Violation> {
    let queues = t.queues();
    let dlqs: BTreeSet<String> = queues
        .iter()
        .filter_map(|q| q.redrive())
        .map(|r| r.dlq)
        .collect();
    queues
        .iter()
        .filter(|q| !dlqs.contains(q.id) && q.redrive().is_none())
        .map(|q| Violation::NoRedrive {
            queue: q.id.to_owned(),
        })
        .collect()
}

/// One IAM statement and where it came from (`Role.PolicyName[Sid]`).
#[derive(Debug, Clone)]
pub struct Statement<'t> {
    pub label: String,
    pub actions: Vec<&'t Expr>,
    pub resources: Vec<&'t Expr>,
    /// The statement as written, for the rules that look past `Action`/`Resource`.
    pub raw: &'t Expr,
    /// The condition of `!If [<condition>, <statement>, !Ref AWS::NoValue]`: the statement
    /// exists only when it holds.
    pub guard: Option<&'t str>,
}

/// Inline statements of every `AWS::IAM::Role` and of every function's SAM `Policies`.
pub fn statements(t: &Template) -> BTreeMap<String, Vec<Statement<'_>>> {
    let mut out: BTreeMap<String, Vec<Statement<'_>>> = BTreeMap::new();
    for id in t.ids_of(ROLE) {
        let Some(role) = t.resources.get(id) else {
            continue;
        };
        for policy in role.prop("Policies").map(Expr::as_list).unwrap_or_default() {
            let name = policy
                .get("PolicyName")
                .and_then(Expr::as_str)
                .unwrap_or("?");
            let doc = policy.get("PolicyDocument");
            out.entry(id.to_owned())
                .or_default()
                .extend(doc_statements(doc, &format!("{id}.{name}")));
        }
    }
    for f in t.functions() {
        for policy in f
            .resource
            .prop("Policies")
            .map(Expr::as_list)
            .unwrap_or_default()
        {
            out.entry(f.id.to_owned())
                .or_default()
                .extend(doc_statements(Some(policy), &format!("{}.Policies", f.id)));
        }
    }
    out
}

fn doc_statements<'t>(doc: Option<&'t Expr>, prefix: &str) -> Vec<Statement<'t>> {
    let items = doc
        .and_then(|d| d.get("Statement"))
        .map(Expr::as_list)
        .unwrap_or_default();
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let (s, guard) = guarded(item);
            let sid = s
                .get("Sid")
                .and_then(Expr::as_str)
                .map_or_else(|| i.to_string(), str::to_owned);
            Statement {
                label: format!("{prefix}[{sid}]"),
                actions: s.get("Action").map(Expr::as_list).unwrap_or_default(),
                resources: s.get("Resource").map(Expr::as_list).unwrap_or_default(),
                raw: s,
                guard,
            }
        })
        .collect()
}

/// The literal text of a resource or action, for display and wildcard detection.
fn text(e: &Expr) -> String {
    match e {
        Expr::String(s) | Expr::Number(s) => s.clone(),
        Expr::Sub { template, .. } => template.clone(),
        Expr::Ref(r) => format!("!Ref {r}"),
        Expr::GetAtt {
            resource,
            attribute,
        } => format!("!GetAtt {resource}.{attribute}"),
        other => format!("{other:?}"),
    }
}

/// No wildcard actions; no wildcard resources except a trailing `/*` under a stage-scoped name
/// prefix (runtime-created secrets can be named no other way).
pub fn check_no_wildcards(t: &Template) -> Vec<Violation> {
    let mut out = Vec::new();
    for statements in statements(t).values() {
        for s in statements {
            for a in &s.actions {
                let action = text(a);
                if action.contains('*') {
                    out.push(Violation::WildcardAction {
                        policy: s.label.clone(),
                        action,
                    });
                }
            }
            for r in &s.resources {
                let resource = text(r);
                let scoped_prefix = resource
                    .strip_suffix("/*")
                    .is_some_and(|p| !p.contains('*') && p.contains("${Stage}"));
                if resource.contains('*') && !scoped_prefix {
                    out.push(Violation::WildcardResource {
                        policy: s.label.clone(),
                        resource,
                    });
                }
            }
        }
    }
    out
}

/// What a function uses: resources its environment or event sources name, and its own log group.
fn used_resources(t: &Template, f: &Function<'_>, resolver: &Resolver<'_>) -> BTreeSet<String> {
    let mut used: BTreeSet<String> = f
        .environment
        .values()
        .flat_map(Expr::references)
        .filter(|r| t.is_resource(r))
        .collect();
    used.extend(f.sqs_sources());
    let own_log_group = f
        .resource
        .prop("FunctionName")
        .and_then(|n| resolver.resolve(n).ok())
        .map(|n| format!("/aws/lambda/{n}"));
    for id in t.ids_of(LOG_GROUP) {
        let name = t
            .resources
            .get(id)
            .and_then(|r| r.prop("LogGroupName"))
            .and_then(|n| resolver.resolve(n).ok());
        if name.is_some() && name == own_log_group {
            used.insert(id.to_owned());
        }
    }
    used
}

/// Each function's policies name only what it uses; index ARNs name existing indexes; literal
/// (prefix) ARNs must extend a name prefix the function is configured with.
pub fn check_policy_scope(t: &Template) -> Vec<Violation> {
    check_policy_scope_with(t, &BTreeMap::new())
}

/// The resolved literal resources (no resource of the template named) of `stmts`, without their
/// trailing `*`: the name prefixes they grant.
fn literal_prefixes(
    t: &Template,
    resolver: &Resolver<'_>,
    stmts: &[&Statement<'_>],
) -> Vec<String> {
    stmts
        .iter()
        .flat_map(|s| s.resources.iter())
        .filter(|r| !r.references().iter().any(|n| t.is_resource(n)))
        .map(|r| {
            resolver
                .resolve(r)
                .unwrap_or_else(|_| text(r))
                .trim_end_matches('*')
                .to_owned()
        })
        .collect()
}

/// [`check_policy_scope`] with parameters overridden: statements under `!If` exist only when
/// their condition holds, environment variables take their values for these parameters, and an
/// environment variable a literal grant covers with the defaults must still be covered (or be
/// gone) with these.
pub fn check_policy_scope_with(
    t: &Template,
    overrides: &BTreeMap<String, String>,
) -> Vec<Violation> {
    let defaults = Resolver::new(t, &BTreeMap::new());
    let resolver = Resolver::new(t, overrides);
    let active = |r: &Resolver<'_>, s: &Statement<'_>| {
        s.guard.is_none_or(|c| r.condition(c).unwrap_or(true))
    };
    let every = statements(t);
    let all: BTreeMap<String, Vec<&Statement<'_>>> = every
        .iter()
        .map(|(owner, stmts)| {
            let on: Vec<&Statement<'_>> = stmts.iter().filter(|s| active(&resolver, s)).collect();
            (owner.clone(), on)
        })
        .collect();
    let mut out = Vec::new();
    for f in t.functions() {
        let owner = match f.role_id() {
            Some(role) => role.to_owned(),
            None => {
                out.push(Violation::GeneratedRole {
                    function: f.id.to_owned(),
                });
                f.id.to_owned()
            }
        };
        let used = used_resources(t, &f, &resolver);
        let env_values: Vec<String> = f
            .environment
            .values()
            .filter_map(|v| resolver.resolve(v).ok())
            .filter(|v| !v.is_empty())
            .collect();
        let granted: BTreeSet<String> = all
            .get(&owner)
            .into_iter()
            .flatten()
            .flat_map(|s| s.resources.iter().flat_map(|r| r.references()))
            .collect();
        for resource in used.iter().filter(|u| !granted.contains(*u)) {
            let grantable = t
                .resources
                .get(resource)
                .is_some_and(|r| [QUEUE, TABLE, SECRET, LOG_GROUP].contains(&r.kind.as_str()));
            if grantable && f.role_id().is_some() {
                out.push(Violation::MissingGrant {
                    function: f.id.to_owned(),
                    resource: resource.clone(),
                });
            }
        }
        let by_default: Vec<&Statement<'_>> = every
            .get(&owner)
            .into_iter()
            .flatten()
            .filter(|s| active(&defaults, s))
            .collect();
        let mine: &[&Statement<'_>] = all.get(&owner).map_or(&[], Vec::as_slice);
        let covered_by_default = literal_prefixes(t, &defaults, &by_default);
        let covered = literal_prefixes(t, &resolver, mine);
        for (name, value) in &f.environment {
            let (Ok(was), Ok(is)) = (defaults.resolve(value), resolver.resolve(value)) else {
                continue;
            };
            if !was.is_empty()
                && !is.is_empty()
                && covered_by_default.iter().any(|p| p.ends_with(&was))
                && !covered.iter().any(|p| p.ends_with(&is))
            {
                out.push(Violation::MissingGrant {
                    function: f.id.to_owned(),
                    resource: format!("{name} ({is}*)"),
                });
            }
        }
        for s in mine {
            for r in &s.resources {
                let named: Vec<String> = r
                    .references()
                    .into_iter()
                    .filter(|n| t.is_resource(n))
                    .collect();
                let not_used = |resource: String| Violation::ResourceNotUsed {
                    function: f.id.to_owned(),
                    policy: s.label.clone(),
                    resource,
                };
                if named.is_empty() {
                    let literal = resolver.resolve(r).unwrap_or_else(|_| text(r));
                    let prefix = literal.trim_end_matches('*');
                    if !env_values.iter().any(|v| prefix.ends_with(v.as_str())) {
                        out.push(not_used(text(r)));
                    }
                    continue;
                }
                for n in named {
                    if !used.contains(&n) {
                        out.push(not_used(n.clone()));
                    } else if let Some(v) = unknown_index(t, &n, r) {
                        out.push(Violation::UnknownIndex {
                            policy: s.label.clone(),
                            resource: v,
                        });
                    }
                }
            }
        }
    }
    out
}

fn unknown_index(t: &Template, table_id: &str, r: &Expr) -> Option<String> {
    let table = t.resources.get(table_id).filter(|x| x.kind == TABLE)?;
    let resource = text(r);
    let index = resource.split_once("/index/")?.1;
    let known = table
        .prop("GlobalSecondaryIndexes")
        .into_iter()
        .chain(table.prop("LocalSecondaryIndexes"))
        .flat_map(Expr::as_list)
        .filter_map(|i| i.get("IndexName").and_then(Expr::as_str))
        .any(|name| name == index);
    (!known).then_some(resource)
}

/// Statements must say exactly what they allow: no `NotAction`/`NotResource`, both `Action` and
/// `Resource` present; no managed policies or SAM policy templates, whose statements this crate
/// cannot see (AWS's managed Lambda policies use `Resource: '*'`).
pub fn check_statement_shapes(t: &Template) -> Vec<Violation> {
    let mut out = Vec::new();
    for statements in statements(t).values() {
        for s in statements {
            let reasons = [
                (s.raw.get("NotAction").is_some(), "uses NotAction"),
                (s.raw.get("NotResource").is_some(), "uses NotResource"),
                (s.raw.get("Action").is_none(), "has no Action"),
                (s.raw.get("Resource").is_none(), "has no Resource"),
            ];
            for (_, reason) in reasons.into_iter().filter(|(hit, _)| *hit) {
                out.push(Violation::InexactStatement {
                    policy: s.label.clone(),
                    reason,
                });
            }
        }
    }
    for id in t.ids_of(ROLE) {
        let Some(role) = t.resources.get(id) else {
            continue;
        };
        for arn in role
            .prop("ManagedPolicyArns")
            .map(Expr::as_list)
            .unwrap_or_default()
        {
            out.push(Violation::ManagedPolicy {
                owner: id.to_owned(),
                policy: text(arn),
            });
        }
    }
    for f in t.functions() {
        let policies = f.resource.prop("Policies");
        // A single string is a managed policy name; a list may mix names, templates and documents.
        let items = match policies {
            Some(Expr::String(_)) => policies.into_iter().collect(),
            Some(p) => p.as_list(),
            None => Vec::new(),
        };
        for p in items.into_iter().filter(|p| p.get("Statement").is_none()) {
            let name = match p.as_map() {
                Some(m) => m.keys().cloned().collect::<Vec<_>>().join(","),
                None => text(p),
            };
            out.push(Violation::ManagedPolicy {
                owner: f.id.to_owned(),
                policy: name,
            });
        }
    }
    out
}

/// The IAM service a resource belongs to: by its kind when the statement names a resource of
/// the template, else by the service field of a literal ARN (`arn:partition:service:…`).
fn resource_service(t: &Template, r: &Expr) -> Option<String> {
    let kinds = [
        (TABLE, "dynamodb"),
        (QUEUE, "sqs"),
        (SECRET, "secretsmanager"),
        (LOG_GROUP, "logs"),
    ];
    for n in r.references() {
        if let Some(res) = t.resources.get(&n) {
            return kinds
                .iter()
                .find(|(k, _)| *k == res.kind)
                .map(|(_, svc)| (*svc).to_owned());
        }
    }
    let literal = text(r);
    let rest = literal.strip_prefix("arn:")?;
    // The partition is often `${AWS::Partition}`, whose `::` is not a field separator.
    let after_partition = match rest.strip_prefix("${") {
        Some(var) => var.split_once('}')?.1.strip_prefix(':')?,
        None => rest.split_once(':')?.1,
    };
    let service = after_partition.split(':').next()?;
    (!service.is_empty() && !service.contains('$')).then(|| service.to_owned())
}

/// Every action applies to every resource of its statement: same IAM service.
pub fn check_action_services(t: &Template) -> Vec<Violation> {
    let mut out = Vec::new();
    for statements in statements(t).values() {
        for s in statements {
            for r in &s.resources {
                let Some(service) = resource_service(t, r) else {
                    continue;
                };
                for a in &s.actions {
                    let action = text(a);
                    let action_service = action.split(':').next().unwrap_or_default();
                    if action_service != service {
                        out.push(Violation::ServiceMismatch {
                            policy: s.label.clone(),
                            action,
                            resource: text(r),
                        });
                    }
                }
            }
        }
    }
    out
}
