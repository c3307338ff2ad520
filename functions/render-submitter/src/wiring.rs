//! Cold-start wiring: every client built once, from one SDK config and a [`Config`].

use std::time::Duration;

use aws_config::SdkConfig;
use reelay_aws::{DynamoStore, FifoBatchProcessor, SecretCache, SqsWorkQueue, SystemClock};
use reelay_domain::ports::{Adapters, SecretError};
use reelay_domain::upstream::Unwired;
use reelay_domain::usecase::Core;
use reelay_ssemble::{ApiError, SsembleClient};
use thiserror::Error;

use crate::Deps;
use crate::config::Config;

/// The submitter reaches the store, both queues and Ssemble; never the token vault or TikTok.
pub type LivePorts =
    Adapters<DynamoStore, SqsWorkQueue, SystemClock, Unwired, SsembleClient, Unwired>;

/// By default a Ssemble call made by this function waits at most this long: ten records share the
/// function's 30 s, and a create cut off here is an unknown outcome the next check looks up.
const SSEMBLE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum WiringError {
    #[error("Ssemble secret: {0}")]
    Secret(#[from] SecretError),
    #[error("Ssemble client: {0}")]
    Ssemble(#[source] Box<ApiError>),
}

pub async fn live(sdk: &SdkConfig, config: &Config) -> Result<Deps<LivePorts>, WiringError> {
    let key = SecretCache::from_sdk(sdk, Duration::from_secs(300))
        .ssemble(&config.ssemble_secret_id)
        .await?
        .api_key;
    let timeout = config
        .settings
        .render
        .ssemble_timeout
        .unwrap_or(SSEMBLE_TIMEOUT);
    let (ssemble, scope) =
        reelay_ssemble::domain_client(&key, &config.ssemble_api_base_url, timeout)
            .map_err(|e| WiringError::Ssemble(Box::new(e)))?;
    let mut settings = config.settings.clone();
    settings.render.ssemble_scope = scope;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let ports = Adapters {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name),
        queue: SqsWorkQueue::new(
            sqs.clone(),
            Some(config.render_queue_url.clone()),
            Some(config.publish_queue_url.clone()),
        ),
        clock: SystemClock,
        vault: Unwired,
        render: ssemble,
        tiktok: Unwired,
    };
    Ok(Deps {
        core: Core::new(ports, settings),
        batches: FifoBatchProcessor::new(sqs, &config.render_queue_url),
    })
}
