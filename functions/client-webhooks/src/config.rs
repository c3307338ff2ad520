//! The function's environment (template.yaml `ClientWebhooksFunction`), read once per cold start.
//! Fields are public so a local runner can fill one without a process environment.

use std::time::Duration;

use reelay_aws::{ConfigError, env_var, env_var_opt};
use reelay_domain::usecase::OutboundSettings;
use reelay_domain::webhooks::RetrySchedule;

use crate::sender::SenderSettings;

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub queue_url: String,
    pub dead_letter_url: String,
    pub outbound: OutboundSettings,
    pub sender: SenderSettings,
}

fn millis(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    match env_var_opt(name) {
        None => Ok(default),
        Some(raw) => {
            raw.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                })
        }
    }
}

/// `WEBHOOK_ALLOW_LOOPBACK=true` is the local-development switch; anything else is off.
pub fn allow_loopback_from_env() -> bool {
    env_var_opt("WEBHOOK_ALLOW_LOOPBACK").is_some_and(|v| v == "true")
}

/// `WEBHOOK_RETRY_SCHEDULE` (`5s,5m,30m,2h,5h,10h,10h` by default).
pub fn retry_from_env() -> Result<RetrySchedule, ConfigError> {
    match env_var_opt("WEBHOOK_RETRY_SCHEDULE") {
        None => Ok(RetrySchedule::default()),
        Some(raw) => RetrySchedule::parse(&raw).map_err(|reason| ConfigError::Invalid {
            name: "WEBHOOK_RETRY_SCHEDULE",
            reason,
        }),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let allow_loopback = allow_loopback_from_env();
        let defaults = SenderSettings::default();
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            queue_url: env_var("WEBHOOK_QUEUE_URL")?,
            dead_letter_url: env_var("WEBHOOK_DLQ_URL")?,
            outbound: OutboundSettings {
                retry: retry_from_env()?,
                allow_loopback,
                ..OutboundSettings::default()
            },
            sender: SenderSettings {
                timeout: millis("WEBHOOK_TIMEOUT_MS", defaults.timeout)?,
                connect_timeout: millis("WEBHOOK_CONNECT_TIMEOUT_MS", defaults.connect_timeout)?,
                allow_loopback,
            },
        })
    }
}
