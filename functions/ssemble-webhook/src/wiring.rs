//! Cold-start wiring: every client built once, from one SDK config and a [`Config`].

use std::time::Duration;

use aws_config::SdkConfig;
use reelay_aws::{DynamoStore, SecretCache, SqsWorkQueue, SystemClock};
use reelay_domain::ports::{Adapters, SecretError};
use reelay_domain::upstream::Unwired;
use reelay_domain::usecase::Core;
use reelay_ssemble::{ApiError, SsembleClient};
use thiserror::Error;

use crate::config::Config;
use crate::{DEFAULT_MAX_BODY_BYTES, DEFAULT_WORK_DEADLINE, Deps};

/// The webhook reaches the store, the publish queue and Ssemble; never the vault or TikTok.
pub type LivePorts =
    Adapters<DynamoStore, SqsWorkQueue, SystemClock, Unwired, SsembleClient, Unwired>;

/// By default: status and document must both fit the work deadline.
const SSEMBLE_TIMEOUT: Duration = Duration::from_secs(3);

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
    let ports = Adapters {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name),
        queue: SqsWorkQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            None,
            Some(config.publish_queue_url.clone()),
        ),
        clock: SystemClock,
        vault: Unwired,
        render: ssemble,
        tiktok: Unwired,
    };
    Ok(Deps {
        core: Core::new(ports, settings),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        work_deadline: DEFAULT_WORK_DEADLINE,
    })
}
