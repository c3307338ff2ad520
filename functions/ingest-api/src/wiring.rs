//! Cold-start wiring: the concrete adapters behind the use cases' ports, each client built once.

use std::time::Duration;

use aws_config::SdkConfig;
use reelay_aws::{
    DynamoStore, DynamoTokenVault, SecretCache, SqsDeliveries, SqsWorkQueue, SystemClock,
};
use reelay_domain::ports::{Adapters, SecretError};
use reelay_domain::upstream::Unwired;
use reelay_domain::usecase::{Core, Outbound, OutboundSettings};
use reelay_tiktok::{TikTokClient, TikTokConfig, TikTokError, TikTokPort};
use thiserror::Error;

use crate::Deps;
use crate::config::Config;

/// The ports the client API runs on: the table for every store port, the render queue, the wall
/// clock, the token vault and TikTok (creator_info, token refresh, OAuth). It never renders.
pub type LivePorts =
    Adapters<DynamoStore, SqsWorkQueue, SystemClock, DynamoTokenVault, Unwired, TikTokPort>;

/// The webhook use cases the API calls: the table and the delivery queue (replays only).
pub type LiveWebhooks = Outbound<DynamoStore, SqsDeliveries, SystemClock>;

#[derive(Debug, Error)]
pub enum WiringError {
    #[error("cannot read the TikTok app secret {id}: {source}")]
    AppSecret {
        id: String,
        #[source]
        source: SecretError,
    },
    #[error("cannot build the TikTok client: {0}")]
    TikTok(#[source] TikTokError),
}

/// Builds every client once and the [`Core`] the handler calls. The TikTok app secret is read
/// here, once per cold start.
pub async fn live(sdk: &SdkConfig, config: &Config) -> Result<Deps<LivePorts>, WiringError> {
    let app = SecretCache::from_sdk(sdk, Duration::ZERO)
        .tiktok_app(&config.tiktok_app_secret_id)
        .await
        .map_err(|source| WiringError::AppSecret {
            id: config.tiktok_app_secret_id.clone(),
            source,
        })?;
    let mut tiktok = TikTokConfig::new(app.client_key, app.client_secret);
    tiktok.api_base_url.clone_from(&config.tiktok_api_base_url);
    tiktok
        .auth_base_url
        .clone_from(&config.tiktok_auth_base_url);
    let tiktok = TikTokPort::new(TikTokClient::new(tiktok).map_err(WiringError::TikTok)?);
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name);
    let webhooks = Outbound {
        store: store.clone(),
        queue: SqsDeliveries::new(
            aws_sdk_sqs::Client::new(sdk),
            config.webhook_queue_url.clone(),
            None,
        ),
        clock: SystemClock,
        settings: OutboundSettings {
            allow_loopback: config.webhook_allow_loopback,
            ..OutboundSettings::default()
        },
    };
    let ports = Adapters {
        store,
        queue: SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            Some(config.render_queue_url.clone()),
            None,
        ),
        clock: SystemClock,
        vault: DynamoTokenVault::from_sdk(sdk, &config.token_table_name, &config.token_key_id)
            .with_legacy_prefix(sdk, config.tiktok_token_secret_prefix.clone()),
        render: Unwired,
        tiktok,
    };
    Ok(Deps {
        core: Core::new(ports, config.settings.clone()),
        max_body_bytes: config.max_body_bytes,
        public_base_url: config.public_base_url.clone(),
        webhooks,
    })
}
