//! The webhook delivery queue: a standard SQS queue (FIFO takes no per-message delay), where a
//! delivery waits out its retry delay, and the dead-letter queue a delivery goes to after its
//! last attempt.

use aws_sdk_sqs::Client;
use reelay_domain::ports::{DeliveryQueue, QueueError};
use reelay_domain::webhooks::Delivery;
use std::time::Duration;

/// SQS's longest per-message delay.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

#[derive(Debug, Clone)]
pub struct SqsDeliveries {
    client: Client,
    url: String,
    /// Only the delivering function gives up deliveries; the API (replays) has none.
    dead_letter_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("no dead-letter queue is configured in this function")]
struct NoDeadLetter;

impl SqsDeliveries {
    pub fn new(client: Client, url: String, dead_letter_url: Option<String>) -> Self {
        Self {
            client,
            url,
            dead_letter_url,
        }
    }

    async fn put(&self, url: &str, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let body =
            serde_json::to_string(delivery).map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        let secs = i32::try_from(delay.min(MAX_DELAY).as_secs()).unwrap_or(0);
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(secs)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        Ok(())
    }
}

impl DeliveryQueue for SqsDeliveries {
    async fn send(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        self.put(&self.url, delivery, delay).await
    }

    async fn dead_letter(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let url = self
            .dead_letter_url
            .as_deref()
            .ok_or_else(|| QueueError::Unavailable(Box::new(NoDeadLetter)))?;
        self.put(url, delivery, Duration::ZERO).await
    }
}
