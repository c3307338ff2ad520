//! Cold-start wiring: every client built once, from one SDK config and a [`Config`].

use std::time::Duration;

use aws_config::SdkConfig;
use reelay_aws::{
    DynamoStore, DynamoTokenVault, FailureScope, FifoBatchProcessor, SecretCache, SqsWorkQueue,
    SystemClock,
};
use reelay_domain::ports::{Adapters, SecretError};
use reelay_domain::upstream::Unwired;
use reelay_domain::usecase::Core;
use reelay_tiktok::{TikTokClient, TikTokConfig, TikTokError, TikTokPort};
use thiserror::Error;

use crate::Deps;
use crate::config::Config;

/// The publisher reaches the store, the publish queue, the token vault and TikTok; never Ssemble.
pub type LivePorts =
    Adapters<DynamoStore, SqsWorkQueue, SystemClock, DynamoTokenVault, Unwired, TikTokPort>;

#[derive(Debug, Error)]
pub enum WiringError {
    #[error("TikTok app secret: {0}")]
    Secret(#[from] SecretError),
    #[error("TikTok client: {0}")]
    TikTok(#[from] TikTokError),
}

pub async fn live(sdk: &SdkConfig, config: &Config) -> Result<Deps<LivePorts>, WiringError> {
    let app = SecretCache::from_sdk(sdk, Duration::from_secs(300))
        .tiktok_app(&config.tiktok_app_secret_id)
        .await?;
    // The publisher never sends a browser to TikTok: no redirect URI.
    let tiktok = TikTokConfig::new(app.client_key, app.client_secret)
        .with_base_url(&config.tiktok_api_base_url);
    let mut tiktok = TikTokPort::new(TikTokClient::new(tiktok)?);
    if let Some(prefix) = &config.tiktok_pull_prefix {
        tiktok = tiktok.with_pull_prefix(prefix.clone());
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let ports = Adapters {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name),
        queue: SqsWorkQueue::new(sqs.clone(), None, Some(config.publish_queue_url.clone())),
        clock: SystemClock,
        vault: DynamoTokenVault::from_sdk(sdk, &config.token_table_name, &config.token_key_id)
            .with_legacy_prefix(sdk, config.tiktok_token_secret_prefix.clone()),
        render: Unwired,
        tiktok,
    };
    Ok(Deps {
        core: Core::new(ports, config.settings.clone()),
        // A waiting account must not hold back the other accounts of the same batch.
        batches: FifoBatchProcessor::new(sqs, &config.publish_queue_url)
            .with_scope(FailureScope::RestOfGroup)
            .with_schedule_sleep(config.schedule_sleep),
    })
}
