//! The publisher's environment (template.yaml `PublisherFunction`), read once per cold start.
//! Fields are public so a local runner can fill one without a process environment.

use std::time::Duration;

use reelay_aws::{ConfigError, env_var, env_var_opt, secs_var, settings_from_env};
use reelay_domain::usecase::Settings;

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub publish_queue_url: String,
    pub tiktok_app_secret_id: String,
    /// `TOKEN_TABLE_NAME`: the account tokens' table (items encrypted under `TOKEN_KEY_ID`).
    pub token_table_name: String,
    /// `TOKEN_KEY_ID`: the KMS key whose data keys encrypt the account tokens.
    pub token_key_id: String,
    /// `TIKTOK_TOKEN_SECRET_PREFIX`: the old per-account token secrets, read on a miss and copied
    /// into the table while accounts migrate; unset once none are left.
    pub tiktok_token_secret_prefix: Option<String>,
    pub tiktok_api_base_url: String,
    /// `TIKTOK_PULL_PREFIX`: a verified URL prefix TikTok may pull clips from.
    pub tiktok_pull_prefix: Option<String>,
    /// `PUBLISH_SCHEDULE_SLEEP_SECS`: a job due this soon is waited for in-process, not
    /// re-delayed in whole seconds (the batch processor's knob, not the use case's).
    pub schedule_sleep: Duration,
    pub settings: Settings,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            publish_queue_url: env_var("PUBLISH_QUEUE_URL")?,
            tiktok_app_secret_id: env_var("TIKTOK_APP_SECRET_ID")?,
            token_table_name: env_var("TOKEN_TABLE_NAME")?,
            token_key_id: env_var("TOKEN_KEY_ID")?,
            tiktok_token_secret_prefix: env_var_opt("TIKTOK_TOKEN_SECRET_PREFIX"),
            tiktok_api_base_url: env_var("TIKTOK_API_BASE_URL")?,
            tiktok_pull_prefix: env_var_opt("TIKTOK_PULL_PREFIX"),
            schedule_sleep: secs_var("PUBLISH_SCHEDULE_SLEEP_SECS")?
                .unwrap_or(reelay_aws::DEFAULT_SCHEDULE_SLEEP),
            settings: settings_from_env()?,
        })
    }
}
