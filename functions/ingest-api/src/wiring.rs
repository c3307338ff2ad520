//! Cold-start wiring: typed configuration and the concrete adapters behind the handler's ports.
//! main.rs reads the environment; a local runner fills [`Config`] itself.

use std::time::Duration;

use aws_config::SdkConfig;
use reelay_aws::{
    ConfigError, DynamoAccountStore, DynamoJobStore, SecretCache, SecretsManagerTokenVault,
    SqsWorkQueue, SystemClock, TokenRefreshConfig, env_var, env_var_opt,
};
use reelay_domain::Policy;
use reelay_domain::budget::Limits;
use reelay_tiktok::{TikTokClient, TikTokConfig, TikTokPort};
use thiserror::Error;

use crate::accounts::AccountDeps;
use crate::http_handler::Deps;

/// The ingest function's settings (template.yaml's Environment).
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub render_queue_url: String,
    pub tiktok_app_secret_id: String,
    pub tiktok_token_secret_prefix: String,
    pub tiktok_api_base_url: String,
    pub tiktok_auth_base_url: String,
    /// Base of the OAuth redirect (`…/v1/accounts/oauth/callback`); `None` disables connecting.
    pub public_base_url: Option<String>,
    pub policy: Policy,
    pub limits: Limits,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            render_queue_url: env_var("RENDER_QUEUE_URL")?,
            tiktok_app_secret_id: env_var("TIKTOK_APP_SECRET_ID")?,
            tiktok_token_secret_prefix: env_var("TIKTOK_TOKEN_SECRET_PREFIX")?,
            tiktok_api_base_url: env_var_opt("TIKTOK_API_BASE_URL")
                .unwrap_or_else(|| "https://open.tiktokapis.com".into()),
            tiktok_auth_base_url: env_var_opt("TIKTOK_AUTH_BASE_URL")
                .unwrap_or_else(|| "https://www.tiktok.com".into()),
            public_base_url: env_var_opt("PUBLIC_BASE_URL"),
            policy: Policy::default(),
            limits: Limits::default(),
        })
    }
}

#[derive(Debug, Error)]
pub enum WiringError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read the TikTok app secret: {0}")]
    Secret(String),
    #[error("cannot build the TikTok client: {0}")]
    TikTok(String),
}

pub type LiveDeps = Deps<
    DynamoJobStore,
    DynamoAccountStore,
    SqsWorkQueue,
    SystemClock,
    SecretsManagerTokenVault,
    TikTokPort,
    TikTokPort,
    TikTokPort,
>;

/// Builds every client once: the table, the render queue, the token vault and the TikTok port.
pub async fn live_deps(sdk: &SdkConfig, cfg: &Config) -> Result<LiveDeps, WiringError> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let secrets = SecretCache::from_sdk(sdk, Duration::from_secs(300));
    let app = secrets
        .tiktok_app(&cfg.tiktok_app_secret_id)
        .await
        .map_err(|e| WiringError::Secret(e.to_string()))?;
    let redirect = cfg
        .public_base_url
        .as_deref()
        .map(|base| format!("{}/v1/accounts/oauth/callback", base.trim_end_matches('/')))
        .unwrap_or_default();
    let mut tiktok = TikTokConfig::new(app.client_key, app.client_secret, redirect);
    tiktok.api_base_url.clone_from(&cfg.tiktok_api_base_url);
    tiktok.auth_base_url.clone_from(&cfg.tiktok_auth_base_url);
    let port =
        TikTokPort::new(TikTokClient::new(tiktok).map_err(|e| WiringError::TikTok(e.to_string()))?);
    Ok(Deps {
        jobs: DynamoJobStore::new(dynamo.clone(), &cfg.table_name),
        accounts: DynamoAccountStore::new(dynamo, &cfg.table_name),
        queue: SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            Some(cfg.render_queue_url.clone()),
            None,
        ),
        clock: SystemClock,
        account_routes: AccountDeps {
            vault: SecretsManagerTokenVault::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                &cfg.tiktok_token_secret_prefix,
            ),
            refresher: port.clone(),
            auth: port.clone(),
            publish: port,
            limits: cfg.limits.clone(),
            tokens: TokenRefreshConfig::default(),
            oauth_state_ttl: Duration::from_secs(600),
            oauth_configured: cfg.public_base_url.is_some(),
        },
        policy: cfg.policy.clone(),
        max_body_bytes: 256 * 1024,
        in_progress_ttl: Duration::from_secs(30),
        idempotency_ttl: Duration::from_secs(48 * 3600),
    })
}
