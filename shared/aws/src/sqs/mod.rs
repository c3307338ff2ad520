//! SQS FIFO transport: the `WorkQueue` sender and a FIFO-correct batch helper for Lambda consumers.

mod batch;
mod deliveries;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_sqs::Client;
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{QueueError, WorkQueue};
use thiserror::Error;
use tracing::debug;

pub use batch::{
    DEFAULT_DEADLINE_MARGIN, DEFAULT_SCHEDULE_SLEEP, FailureScope, FifoBatchProcessor,
    RecordFailure, RecordMeta, decode_work_message, delay_visibility, sqs_event_from_received,
};
pub use deliveries::SqsDeliveries;

#[derive(Debug, Error)]
#[error("no queue URL is configured for {0:?} messages in this function")]
struct NoQueue(QueueKind);

/// Sends `WorkMessage`s to the render or publish FIFO queue. Group = the destination account
/// (`WorkMessage::group_id`), dedup id = the caller's (one per logical enqueue), so a resend of one
/// enqueue within SQS's five-minute window is dropped by SQS and anything later is absorbed by the
/// job's state in DynamoDB.
#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: Client,
    render_url: Option<String>,
    publish_url: Option<String>,
    sent: Arc<AtomicU64>,
}

impl SqsWorkQueue {
    pub fn new(client: Client, render_url: Option<String>, publish_url: Option<String>) -> Self {
        Self {
            client,
            render_url,
            publish_url,
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// From the Lambda environment: `RENDER_QUEUE_URL` and/or `PUBLISH_QUEUE_URL` (a function only
    /// gets the queues it writes to; sending to an unconfigured one is an error).
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(
            Client::new(sdk),
            crate::config::env_var_opt("RENDER_QUEUE_URL"),
            crate::config::env_var_opt("PUBLISH_QUEUE_URL"),
        )
    }

    /// SendMessage requests made so far (for cost reports).
    pub fn requests(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn url(&self, kind: QueueKind) -> Option<&str> {
        match kind {
            QueueKind::Render => self.render_url.as_deref(),
            QueueKind::Publish => self.publish_url.as_deref(),
        }
    }
}

impl WorkQueue for SqsWorkQueue {
    async fn send(&self, message: &WorkMessage, dedup_id: &str) -> Result<(), QueueError> {
        let url = self
            .url(message.kind)
            .ok_or_else(|| QueueError::Unavailable(Box::new(NoQueue(message.kind))))?;
        let body =
            serde_json::to_string(message).map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .send_message()
            .queue_url(url)
            .message_group_id(message.group_id())
            .message_deduplication_id(dedup_id)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        debug!(job_id = %message.job_id, account_id = %message.account_id, kind = ?message.kind,
            message_id = out.message_id().unwrap_or_default(), "work message sent");
        Ok(())
    }
}
