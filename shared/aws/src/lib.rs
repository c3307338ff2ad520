//! DynamoDB, SQS FIFO and Secrets Manager adapters behind the domain's ports.
//!
//! Every client comes from one `aws_config::SdkConfig` loaded from the environment
//! ([`load_sdk_config`]), so the same code talks to AWS, MiniStack or DynamoDB Local depending
//! only on `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB`. See `DESIGN.md` for the table design.

pub mod config;
pub mod dynamo;
pub mod secrets;
pub mod sqs;

pub use config::{ConfigError, load_sdk_config};
pub use dynamo::{
    CapacityMeter, DUE_SHARDS, DynamoAccountStore, DynamoJobStore, MeterSnapshot, hash_api_key,
};
pub use secrets::{
    SecretCache, SecretsManagerTokenVault, SsembleSecret, SystemClock, TikTokAppSecret, TokenError,
    TokenRefreshConfig, fresh_token,
};
pub use sqs::{
    FailureScope, FifoBatchProcessor, RecordFailure, SqsWorkQueue, decode_work_message,
    sqs_event_from_received,
};
