//! The reconciler's environment (template.yaml `ReconcilerFunction`), read once per cold start.
//! Fields are public so a local runner can fill one without a process environment.

use reelay_aws::{ConfigError, env_var, env_var_opt, settings_from_env};
use reelay_domain::usecase::Settings;

/// TikTok's production API, when `TIKTOK_API_BASE_URL` is not set.
pub const DEFAULT_TIKTOK_API_BASE_URL: &str = "https://open.tiktokapis.com";

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub render_queue_url: String,
    pub publish_queue_url: String,
    pub ssemble_secret_id: String,
    pub ssemble_api_base_url: String,
    pub tiktok_app_secret_id: String,
    pub tiktok_token_secret_prefix: String,
    pub tiktok_api_base_url: String,
    pub settings: Settings,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            render_queue_url: env_var("RENDER_QUEUE_URL")?,
            publish_queue_url: env_var("PUBLISH_QUEUE_URL")?,
            ssemble_secret_id: env_var("SSEMBLE_SECRET_ID")?,
            ssemble_api_base_url: env_var_opt("SSEMBLE_API_BASE_URL")
                .unwrap_or_else(|| reelay_ssemble::DEFAULT_BASE_URL.into()),
            tiktok_app_secret_id: env_var("TIKTOK_APP_SECRET_ID")?,
            tiktok_token_secret_prefix: env_var("TIKTOK_TOKEN_SECRET_PREFIX")?,
            tiktok_api_base_url: env_var_opt("TIKTOK_API_BASE_URL")
                .unwrap_or_else(|| DEFAULT_TIKTOK_API_BASE_URL.into()),
            settings: settings_from_env()?,
        })
    }
}
