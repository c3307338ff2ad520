//! Cold-start wiring: every client built once, from one SDK config and a [`Config`].

use std::time::Duration;

use aws_config::SdkConfig;
use reelay_aws::{DynamoStore, SecretCache, SqsWorkQueue, SystemClock};
use reelay_domain::ports::{Adapters, SecretError};
use reelay_domain::upstream::Unwired;
use reelay_domain::usecase::Core;
use thiserror::Error;

use crate::config::Config;
use crate::{DEFAULT_MAX_BODY_BYTES, Deps};

/// The webhook reaches only the store (and a queue); TikTok speaks to it, never the reverse.
pub type LivePorts = Adapters<DynamoStore, SqsWorkQueue, SystemClock, Unwired, Unwired, Unwired>;

#[derive(Debug, Error)]
pub enum WiringError {
    #[error("TikTok app secret: {0}")]
    Secret(#[from] SecretError),
}

pub async fn live(sdk: &SdkConfig, config: &Config) -> Result<Deps<LivePorts>, WiringError> {
    let app = SecretCache::from_sdk(sdk, Duration::from_secs(300))
        .tiktok_app(&config.tiktok_app_secret_id)
        .await?;
    let ports = Adapters {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name),
        queue: SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            None,
            config.publish_queue_url.clone(),
        ),
        clock: SystemClock,
        vault: Unwired,
        render: Unwired,
        tiktok: Unwired,
    };
    Ok(Deps {
        core: Core::new(ports, config.settings.clone()),
        client_secret: app.client_secret,
        replay_window: config.replay_window,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
    })
}
