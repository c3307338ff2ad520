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
    /// `TOKEN_TABLE_NAME`: the account tokens' table (items encrypted under `TOKEN_KEY_ID`).
    pub token_table_name: String,
    /// `TOKEN_KEY_ID`: the KMS key whose data keys encrypt the account tokens.
    pub token_key_id: String,
    /// `TIKTOK_TOKEN_SECRET_PREFIX`: the old per-account token secrets, read on a miss and copied
    /// into the table while accounts migrate; unset once none are left.
    pub tiktok_token_secret_prefix: Option<String>,
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
            token_table_name: env_var("TOKEN_TABLE_NAME")?,
            token_key_id: env_var("TOKEN_KEY_ID")?,
            tiktok_token_secret_prefix: env_var_opt("TIKTOK_TOKEN_SECRET_PREFIX"),
            tiktok_api_base_url: env_var_opt("TIKTOK_API_BASE_URL")
                .unwrap_or_else(|| DEFAULT_TIKTOK_API_BASE_URL.into()),
            settings: settings_from_env()?,
        })
    }
}
