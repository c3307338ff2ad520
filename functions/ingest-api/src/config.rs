//! The ingest function's configuration: where its resources are, and the use cases' settings.
//! [`Config::from_env`] reads template.yaml's `Environment`; a local runner fills the public
//! fields itself.

use reelay_aws::{ConfigError, env_var, env_var_opt, settings_from_env};
use reelay_domain::usecase::Settings;

/// The largest request body accepted (a job is a few KiB; a bigger body is a mistake or abuse,
/// refused before it is parsed).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub render_queue_url: String,
    /// Secrets Manager id of the TikTok app's `{clientKey, clientSecret}`.
    pub tiktok_app_secret_id: String,
    /// `TOKEN_TABLE_NAME`: the account tokens' table (items encrypted under `TOKEN_KEY_ID`).
    pub token_table_name: String,
    /// `TOKEN_KEY_ID`: the KMS key whose data keys encrypt the account tokens.
    pub token_key_id: String,
    /// `TIKTOK_TOKEN_SECRET_PREFIX`: the old per-account token secrets, read on a miss and copied
    /// into the table while accounts migrate; unset once none are left.
    pub tiktok_token_secret_prefix: Option<String>,
    pub tiktok_api_base_url: String,
    pub tiktok_auth_base_url: String,
    /// Base of the OAuth redirect (`…/v1/accounts/oauth/callback`), e.g. a custom domain. `None`:
    /// the domain API Gateway received the request on (the stage's `execute-api` URL).
    pub public_base_url: Option<String>,
    pub max_body_bytes: usize,
    pub settings: Settings,
    /// `WEBHOOK_QUEUE_URL`: where a replay queues its deliveries.
    pub webhook_queue_url: String,
    /// `WEBHOOK_ALLOW_LOOPBACK=true`: endpoints on loopback may be registered (local development
    /// only; never set on an AWS stage).
    pub webhook_allow_loopback: bool,
}

impl Config {
    /// Every tunable figure comes from [`settings_from_env`], the one reader all functions share.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            render_queue_url: env_var("RENDER_QUEUE_URL")?,
            tiktok_app_secret_id: env_var("TIKTOK_APP_SECRET_ID")?,
            token_table_name: env_var("TOKEN_TABLE_NAME")?,
            token_key_id: env_var("TOKEN_KEY_ID")?,
            tiktok_token_secret_prefix: env_var_opt("TIKTOK_TOKEN_SECRET_PREFIX"),
            tiktok_api_base_url: env_var_opt("TIKTOK_API_BASE_URL")
                .unwrap_or_else(|| "https://open.tiktokapis.com".into()),
            tiktok_auth_base_url: env_var_opt("TIKTOK_AUTH_BASE_URL")
                .unwrap_or_else(|| "https://www.tiktok.com".into()),
            public_base_url: env_var_opt("PUBLIC_BASE_URL"),
            max_body_bytes: MAX_BODY_BYTES,
            settings: settings_from_env()?,
            webhook_queue_url: env_var("WEBHOOK_QUEUE_URL")?,
            webhook_allow_loopback: env_var_opt("WEBHOOK_ALLOW_LOOPBACK")
                .is_some_and(|v| v == "true"),
        })
    }
}
