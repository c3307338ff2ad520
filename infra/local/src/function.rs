//! What a driver needs to know about the function it invokes: its name and timeout (as Lambda
//! enforces them) and a per-invocation `lambda_runtime::Context` built the way the runtime does.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reelay_template::Template;

use crate::LocalError;

/// Lambda's hard ceiling; the default for drivers that were given no timeout.
pub const LAMBDA_MAX_TIMEOUT: Duration = Duration::from_secs(900);
/// The account MiniStack and moto answer with; used in ARNs and request contexts.
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";

/// A function as deployed: name, timeout and region, from template.yaml or given by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The logical id or function name; shows up in logs, the context and the invoked ARN.
    pub name: String,
    /// Lambda kills an invocation at this age: drivers abort the handler and report a failure.
    pub timeout: Duration,
    pub memory_mb: i32,
    pub region: String,
}

impl FunctionSpec {
    pub fn new(name: impl Into<String>, timeout: Duration) -> Self {
        Self {
            name: name.into(),
            timeout,
            memory_mb: 128,
            region: default_region(),
        }
    }

    /// Timeout and memory from template.yaml (Globals applied), so a local run gives up exactly
    /// when the deployed function would.
    pub fn from_template(template: &Template, logical_id: &str) -> Result<Self, LocalError> {
        let function = template
            .functions()
            .into_iter()
            .find(|f| f.id == logical_id)
            .ok_or_else(|| LocalError::UnknownFunction(logical_id.to_owned()))?;
        let memory_mb = function
            .resource
            .prop("MemorySize")
            .or_else(|| template.function_globals.get("MemorySize"))
            .and_then(reelay_template::expr::Expr::as_u64)
            .and_then(|m| i32::try_from(m).ok())
            .unwrap_or(128);
        Ok(Self {
            name: logical_id.to_owned(),
            timeout: Duration::from_secs(function.timeout_s),
            memory_mb,
            region: default_region(),
        })
    }

    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{LOCAL_ACCOUNT_ID}:function:{}",
            self.region, self.name
        )
    }

    /// A fresh context for one invocation: new request id, deadline = now + timeout (the same
    /// epoch-milliseconds the Runtime API sends in `Lambda-Runtime-Deadline-Ms`).
    pub fn context(&self) -> lambda_runtime::Context {
        let deadline = SystemTime::now() + self.timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        let config = lambda_runtime::Config {
            function_name: self.name.clone(),
            memory: self.memory_mb,
            version: "$LATEST".to_owned(),
            log_group: format!("/aws/lambda/{}", self.name),
            log_stream: "local".to_owned(),
        };
        let mut context = lambda_runtime::Context::default();
        context.request_id = uuid::Uuid::new_v4().to_string();
        context.deadline = deadline_ms;
        context.invoked_function_arn = self.arn();
        context.env_config = Arc::new(config);
        context
    }
}

/// A scalar property, following a `!Ref` to a template parameter's default (the local stage
/// deploys with defaults).
pub(crate) fn scalar(template: &Template, expr: &reelay_template::expr::Expr) -> Option<String> {
    use reelay_template::expr::Expr;
    match expr {
        Expr::String(s) | Expr::Number(s) => Some(s.clone()),
        Expr::Ref(name) => template.parameters.get(name)?.default.clone(),
        _ => None,
    }
}

/// The properties of the function's first event of `kind` (`SQS`, `Schedule`, ...).
pub(crate) fn event_properties(
    template: &Template,
    logical_id: &str,
    kind: &str,
) -> Result<reelay_template::expr::Expr, LocalError> {
    template
        .functions()
        .into_iter()
        .find(|f| f.id == logical_id)
        .ok_or_else(|| LocalError::UnknownFunction(logical_id.to_owned()))?
        .events_of_type(kind)
        .next()
        .cloned()
        .ok_or_else(|| LocalError::UnknownFunction(format!("{logical_id} (no {kind} event)")))
}

/// `AWS_REGION`, then `AWS_DEFAULT_REGION`, then us-east-1 (the emulators' default).
pub fn default_region() -> String {
    std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_context_is_built_should_carry_a_deadline_one_timeout_ahead() {
        let spec = FunctionSpec::new("PublisherFunction", Duration::from_secs(300));
        let ctx = spec.context();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let ahead = ctx.deadline.saturating_sub(now_ms);
        assert!(
            (299_000..=300_000).contains(&ahead),
            "deadline {ahead} ms ahead"
        );
        assert_ne!(ctx.request_id, spec.context().request_id);
        assert!(
            ctx.invoked_function_arn
                .ends_with(":function:PublisherFunction")
        );
        assert_eq!(ctx.env_config.function_name, "PublisherFunction");
    }
}
