//! The Ssemble webhook's environment (template.yaml `SsembleWebhookFunction`), read once per
//! cold start. Fields are public so a local runner can fill one without a process environment.

use reelay_aws::{ConfigError, env_var, settings_from_env};
use reelay_domain::usecase::Settings;

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Completed renders enqueue due publishes.
    pub publish_queue_url: String,
    pub ssemble_secret_id: String,
    pub ssemble_api_base_url: String,
    pub settings: Settings,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            publish_queue_url: env_var("PUBLISH_QUEUE_URL")?,
            ssemble_secret_id: env_var("SSEMBLE_SECRET_ID")?,
            ssemble_api_base_url: env_var("SSEMBLE_API_BASE_URL")?,
            settings: settings_from_env()?,
        })
    }
}
