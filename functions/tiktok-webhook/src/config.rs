//! The TikTok webhook's environment (template.yaml `TikTokWebhookFunction`), read once per cold
//! start. Fields are public so a local runner can fill one without a process environment.

use std::time::Duration;

use reelay_aws::{ConfigError, env_var, env_var_opt, secs_var, settings_from_env};
use reelay_domain::usecase::Settings;

/// TikTok gives no replay window; 300 s is the common choice.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Its client secret is the HMAC key of `TikTok-Signature`.
    pub tiktok_app_secret_id: String,
    /// Where an observation that re-queues a publish sends it; without one the job's next
    /// check enqueues it instead.
    pub publish_queue_url: Option<String>,
    /// `TIKTOK_WEBHOOK_REPLAY_WINDOW_SECS`: how old a signed delivery may be.
    pub replay_window: Duration,
    pub settings: Settings,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            tiktok_app_secret_id: env_var("TIKTOK_APP_SECRET_ID")?,
            publish_queue_url: env_var_opt("PUBLISH_QUEUE_URL"),
            replay_window: secs_var("TIKTOK_WEBHOOK_REPLAY_WINDOW_SECS")?
                .unwrap_or(DEFAULT_REPLAY_WINDOW),
            settings: settings_from_env()?,
        })
    }
}
