//! Cold-start wiring: typed configuration and the concrete adapters behind the reconciler's ports.

use std::time::Duration;

use aws_config::SdkConfig;
use reelay_aws::{
    ConfigError, DynamoAccountStore, DynamoJobStore, SecretCache, SecretsManagerTokenVault,
    SqsWorkQueue, SystemClock, TokenRefreshConfig, env_var, env_var_opt,
};
use reelay_domain::Policy;
use reelay_domain::budget::Limits;
use reelay_ssemble::{RetryPolicy, SsembleClient, SsembleConfig};
use reelay_tiktok::{TikTokClient, TikTokConfig, TikTokPort};
use thiserror::Error;

use crate::Deps;

/// The reconciler's settings (template.yaml's Environment).
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
    pub policy: Policy,
    pub limits: Limits,
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
                .unwrap_or_else(|| "https://open.tiktokapis.com".into()),
            policy: Policy::default(),
            limits: reelay_aws::ssemble_limits_from_env()?,
        })
    }
}

#[derive(Debug, Error)]
pub enum WiringError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read a secret: {0}")]
    Secret(String),
    #[error("cannot build an upstream client: {0}")]
    Client(String),
}

pub type LiveDeps = Deps<
    DynamoJobStore,
    DynamoAccountStore,
    SqsWorkQueue,
    SystemClock,
    SecretsManagerTokenVault,
    TikTokPort,
    SsembleClient,
    TikTokPort,
>;

/// Builds every client once per cold start.
pub async fn live_deps(sdk: &SdkConfig, cfg: &Config) -> Result<LiveDeps, WiringError> {
    let secrets = SecretCache::from_sdk(sdk, Duration::from_secs(300));
    let ssemble_secret = secrets
        .ssemble(&cfg.ssemble_secret_id)
        .await
        .map_err(|e| WiringError::Secret(e.to_string()))?;
    let app = secrets
        .tiktok_app(&cfg.tiktok_app_secret_id)
        .await
        .map_err(|e| WiringError::Secret(e.to_string()))?;
    // No retries inside the client: every call is charged to a budget before it is made.
    let ssemble = SsembleClient::new(SsembleConfig {
        retry: RetryPolicy::none(),
        request_timeout: Duration::from_secs(10),
        ..SsembleConfig::new(ssemble_secret.api_key.clone())
            .with_base_url(&cfg.ssemble_api_base_url)
    })
    .map_err(|e| WiringError::Client(e.to_string()))?;
    let mut tiktok = TikTokConfig::new(app.client_key, app.client_secret, String::new());
    tiktok.api_base_url.clone_from(&cfg.tiktok_api_base_url);
    let port =
        TikTokPort::new(TikTokClient::new(tiktok).map_err(|e| WiringError::Client(e.to_string()))?);
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    Ok(Deps {
        jobs: DynamoJobStore::new(dynamo.clone(), &cfg.table_name),
        accounts: DynamoAccountStore::new(dynamo, &cfg.table_name),
        queue: SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            Some(cfg.render_queue_url.clone()),
            Some(cfg.publish_queue_url.clone()),
        ),
        clock: SystemClock,
        vault: SecretsManagerTokenVault::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            &cfg.tiktok_token_secret_prefix,
        ),
        refresher: port.clone(),
        render: ssemble,
        publish: port,
        policy: cfg.policy.clone(),
        limits: cfg.limits.clone(),
        tokens: TokenRefreshConfig::default(),
        ssemble_scope: reelay_ssemble::budget_scope(&ssemble_secret.api_key),
        page: 100,
        safety_margin: Duration::from_secs(5),
        lookahead: Duration::from_secs(60),
    })
}
