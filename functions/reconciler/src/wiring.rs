//! Cold-start wiring: every client built once, from one SDK config and a [`Config`].

use std::time::Duration;

use aws_config::SdkConfig;
use reelay_aws::{DynamoStore, DynamoTokenVault, SecretCache, SqsWorkQueue, SystemClock};
use reelay_domain::ports::{Adapters, SecretError};
use reelay_domain::usecase::Core;
use reelay_ssemble::{ApiError, SsembleClient};
use reelay_tiktok::{TikTokClient, TikTokConfig, TikTokError, TikTokPort};
use thiserror::Error;

use crate::Deps;
use crate::config::Config;

/// The reconciler reaches everything: it polls Ssemble and TikTok and re-enqueues both queues.
pub type LivePorts =
    Adapters<DynamoStore, SqsWorkQueue, SystemClock, DynamoTokenVault, SsembleClient, TikTokPort>;

/// By default one poll of Ssemble waits at most this long; the run has a minute.
const SSEMBLE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum WiringError {
    #[error("secret: {0}")]
    Secret(#[from] SecretError),
    #[error("Ssemble client: {0}")]
    Ssemble(#[source] Box<ApiError>),
    #[error("TikTok client: {0}")]
    TikTok(#[from] TikTokError),
}

pub async fn live(sdk: &SdkConfig, config: &Config) -> Result<Deps<LivePorts>, WiringError> {
    let secrets = SecretCache::from_sdk(sdk, Duration::from_secs(300));
    let key = secrets.ssemble(&config.ssemble_secret_id).await?.api_key;
    let app = secrets.tiktok_app(&config.tiktok_app_secret_id).await?;
    let timeout = config
        .settings
        .render
        .ssemble_timeout
        .unwrap_or(SSEMBLE_TIMEOUT);
    let (ssemble, scope) =
        reelay_ssemble::domain_client(&key, &config.ssemble_api_base_url, timeout)
            .map_err(|e| WiringError::Ssemble(Box::new(e)))?;
    let mut tiktok = TikTokConfig::new(app.client_key, app.client_secret);
    tiktok.api_base_url.clone_from(&config.tiktok_api_base_url);
    let mut settings = config.settings.clone();
    settings.render.ssemble_scope = scope;
    let ports = Adapters {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name),
        queue: SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            Some(config.render_queue_url.clone()),
            Some(config.publish_queue_url.clone()),
        ),
        clock: SystemClock,
        vault: DynamoTokenVault::from_sdk(sdk, &config.token_table_name, &config.token_key_id)
            .with_legacy_prefix(sdk, config.tiktok_token_secret_prefix.clone()),
        render: ssemble,
        tiktok: TikTokPort::new(TikTokClient::new(tiktok)?),
    };
    Ok(Deps {
        core: Core::new(ports, settings),
    })
}
