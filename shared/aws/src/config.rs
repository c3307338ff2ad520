//! Cold-start configuration: one `SdkConfig` from the environment, typed variables, fail fast.

use aws_config::{BehaviorVersion, SdkConfig};
use reelay_domain::budget::Limits;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Loads the SDK configuration from the environment only (endpoint, region, credentials), so the
/// Lambda and the tests run the same code against AWS or a local endpoint.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A required variable.
pub fn env_var(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional variable (unset or empty is `None`).
pub fn env_var_opt(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The documented defaults, with the account tier's caps overridable
/// (`SSEMBLE_LIMIT_HOUR`, `SSEMBLE_LIMIT_DAY`: 100/1,000 standard, up to 2,000/20,000) and the
/// budgets' safety margin (`BUDGET_WINDOW_MARGIN_MS`, see [`Limits::window_margin`]).
pub fn limits_from_env() -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    if let Some(v) = env_var_opt("BUDGET_WINDOW_MARGIN_MS") {
        let ms = v.trim().parse::<u64>().map_err(|e| ConfigError::Invalid {
            name: "BUDGET_WINDOW_MARGIN_MS",
            reason: e.to_string(),
        })?;
        limits.window_margin = std::time::Duration::from_millis(ms);
    }
    let parse = |name: &'static str| -> Result<Option<u32>, ConfigError> {
        env_var_opt(name)
            .map(|v| {
                v.trim().parse::<u32>().map_err(|e| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                })
            })
            .transpose()
    };
    if let Some(n) = parse("SSEMBLE_LIMIT_HOUR")? {
        limits.ssemble_hourly.limit = n;
    }
    if let Some(n) = parse("SSEMBLE_LIMIT_DAY")? {
        limits.ssemble_daily.limit = n;
    }
    Ok(limits)
}

/// [`limits_from_env`], under the name the Ssemble callers already use.
pub fn ssemble_limits_from_env() -> Result<Limits, ConfigError> {
    limits_from_env()
}
