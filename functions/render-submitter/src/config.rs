//! The render submitter's environment (template.yaml `RenderSubmitterFunction`), read once per
//! cold start. Fields are public so a local runner can fill one without a process environment.

use reelay_aws::{ConfigError, env_var, settings_from_env};
use reelay_domain::usecase::Settings;

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// The queue this function consumes (and re-enqueues renders to).
    pub render_queue_url: String,
    /// A found request may complete at once, which enqueues the publish.
    pub publish_queue_url: String,
    pub ssemble_secret_id: String,
    pub ssemble_api_base_url: String,
    /// Every tunable; `settings.render.webhook_base_url` is `PUBLIC_BASE_URL` (required here:
    /// Ssemble must be told where to call back).
    pub settings: Settings,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let settings = settings_from_env()?;
        if settings.render.webhook_base_url.is_empty() {
            return Err(ConfigError::Missing("PUBLIC_BASE_URL"));
        }
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            render_queue_url: env_var("RENDER_QUEUE_URL")?,
            publish_queue_url: env_var("PUBLISH_QUEUE_URL")?,
            ssemble_secret_id: env_var("SSEMBLE_SECRET_ID")?,
            ssemble_api_base_url: env_var("SSEMBLE_API_BASE_URL")?,
            settings,
        })
    }
}
