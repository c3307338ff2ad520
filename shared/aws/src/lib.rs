//! DynamoDB, SQS FIFO, Secrets Manager and KMS-encrypted token adapters behind the domain's ports.
//!
//! Every client comes from one `aws_config::SdkConfig` loaded from the environment
//! ([`load_sdk_config`]), so the same code talks to AWS, MiniStack or DynamoDB Local depending
//! only on `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB`. See `DESIGN.md` for the table design.
//!
//! Wiring in a function's `main` (once per cold start; every constructor is cheap to clone):
//!
//! ```no_run
//! # use std::time::Duration;
//! # use reelay_aws::env_var;
//! # async fn wire() -> Result<(), Box<dyn std::error::Error>> {
//! let sdk = reelay_aws::load_sdk_config().await?;                  // AWS_TLS_ROOTS
//! let store = reelay_aws::DynamoStore::from_env(&sdk)?;              // TABLE_NAME
//! let queue = reelay_aws::SqsWorkQueue::from_env(&sdk);              // RENDER_QUEUE_URL / PUBLISH_QUEUE_URL
//! let batches = reelay_aws::FifoBatchProcessor::from_env(&sdk, "PUBLISH_QUEUE_URL")?;
//! let vault = reelay_aws::DynamoTokenVault::from_env(&sdk)?;  // TOKEN_TABLE_NAME, TOKEN_KEY_ID
//! let secrets = reelay_aws::SecretCache::from_sdk(&sdk, Duration::from_secs(300));
//! let ssemble = secrets.ssemble(&env_var("SSEMBLE_SECRET_ID")?).await?;
//! // `store` is the `S`, `reelay_aws::SystemClock` the clock of `reelay_domain::ports::Adapters`.
//! # let _ = (store, queue, batches, vault, ssemble);
//! # Ok(())
//! # }
//! ```

pub mod clock;
pub mod coldstart;
pub mod config;
pub mod dynamo;
pub mod metrics;
pub mod secrets;
pub mod sqs;
pub mod vault;

pub use clock::SystemClock;
pub use coldstart::InitPhases;
pub use config::{
    AwsTlsRoots, ConfigError, env_var, env_var_opt, limits_from_env, load_sdk_config, secs_var,
    settings_from_env, ssemble_limits_from_env,
};
pub use dynamo::{
    CapacityMeter, DUE_SHARDS, DynamoStore, MeterSnapshot, OpStats, TableChange, decode_change,
    hash_api_key,
};
pub use secrets::{
    SecretCache, SecretDeletion, SecretsManagerTokenVault, SsembleSecret, TikTokAppSecret,
};
pub use sqs::{
    DEFAULT_DEADLINE_MARGIN, DEFAULT_SCHEDULE_SLEEP, FailureScope, FifoBatchProcessor,
    RecordFailure, RecordMeta, SqsDeliveries, SqsWorkQueue, decode_work_message, delay_visibility,
    sqs_event_from_received,
};
pub use vault::{DynamoTokenVault, Migrated};
