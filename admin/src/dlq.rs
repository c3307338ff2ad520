//! A queue's dead-letter queue: what is in it, and moving it back. The DLQ is found from the
//! source queue's own `RedrivePolicy`, so it is always the one SQS moves messages to.
//!
//! A redriven message goes back to its account's FIFO group under a new deduplication id (a
//! redrive is a new enqueue, not a resend): the consumer re-reads the job and the lifecycle
//! table decides, so a message that no longer applies changes nothing.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use reelay_aws::SystemClock;
use reelay_domain::ports::Clock;
use serde_json::Value;

use crate::AdminError;

/// Messages one receive returns at most (SQS's limit).
const RECEIVE_MAX: i32 = 10;
/// How long a message being moved stays invisible in the DLQ.
const MOVE_VISIBILITY_SECS: i32 = 60;

#[derive(Debug)]
pub struct Dlq {
    client: Client,
    source_url: String,
    pub url: String,
}

/// One message as listed: its group (the account) and the job it names.
#[derive(Debug)]
pub struct Listed {
    pub group: String,
    pub job: String,
    pub receives: String,
}

impl Dlq {
    /// The DLQ of `source_url`, from its `RedrivePolicy`.
    pub async fn of(client: Client, source_url: &str) -> Result<Self, AdminError> {
        let policy = attribute(&client, source_url, QueueAttributeName::RedrivePolicy)
            .await?
            .ok_or_else(|| AdminError::Queue(format!("{source_url} has no dead-letter queue")))?;
        let arn = serde_json::from_str::<Value>(&policy)
            .ok()
            .and_then(|v| v["deadLetterTargetArn"].as_str().map(str::to_owned))
            .ok_or_else(|| AdminError::Queue(format!("unreadable RedrivePolicy: {policy}")))?;
        let name = arn.rsplit(':').next().unwrap_or_default();
        let url = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(queue_error)?
            .queue_url
            .ok_or_else(|| AdminError::Queue(format!("no URL for {name}")))?;
        Ok(Self {
            client,
            source_url: source_url.to_owned(),
            url,
        })
    }

    /// SQS's approximate count, and up to ten messages (received with visibility 0, so they
    /// stay where they are).
    pub async fn list(&self) -> Result<(u64, Vec<Listed>), AdminError> {
        let count = attribute(
            &self.client,
            &self.url,
            QueueAttributeName::ApproximateNumberOfMessages,
        )
        .await?
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(RECEIVE_MAX)
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(queue_error)?;
        let listed = out
            .messages()
            .iter()
            .map(|m| {
                let attr = |name: MessageSystemAttributeName| {
                    m.attributes()
                        .and_then(|a| a.get(&name))
                        .cloned()
                        .unwrap_or_default()
                };
                let job = m
                    .body()
                    .and_then(|b| serde_json::from_str::<Value>(b).ok())
                    .and_then(|v| v["jobId"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "(not a Reelay message)".to_owned());
                Listed {
                    group: attr(MessageSystemAttributeName::MessageGroupId),
                    job,
                    receives: attr(MessageSystemAttributeName::ApproximateReceiveCount),
                }
            })
            .collect();
        Ok((count, listed))
    }

    /// Moves up to `max` messages back to the source queue, each sent before it is deleted
    /// (a failure part-way leaves a message in both queues, never in neither).
    pub async fn redrive(&self, max: usize) -> Result<usize, AdminError> {
        // A message keeps its id through the DLQ: the stamp makes a second redrive of it a new
        // enqueue too, not a duplicate SQS would drop within its 5-minute window.
        let stamp = SystemClock.now().as_millis();
        let mut moved = 0;
        while moved < max {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(RECEIVE_MAX)
                .visibility_timeout(MOVE_VISIBILITY_SECS)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .map_err(queue_error)?;
            let messages = out.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages.iter().take(max - moved) {
                let group = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .cloned()
                    .unwrap_or_else(|| "redrive".to_owned());
                let id = m.message_id().unwrap_or_default();
                self.client
                    .send_message()
                    .queue_url(&self.source_url)
                    .message_body(m.body().unwrap_or_default())
                    .message_group_id(group)
                    .message_deduplication_id(format!("redrive-{id}-{stamp}"))
                    .send()
                    .await
                    .map_err(queue_error)?;
                if let Some(handle) = m.receipt_handle() {
                    self.client
                        .delete_message()
                        .queue_url(&self.url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(queue_error)?;
                }
                moved += 1;
            }
        }
        Ok(moved)
    }
}

/// One attribute of a queue, if SQS has it.
async fn attribute(
    client: &Client,
    url: &str,
    name: QueueAttributeName,
) -> Result<Option<String>, AdminError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(queue_error)?;
    Ok(out.attributes().and_then(|a| a.get(&name)).cloned())
}

pub(crate) fn queue_error<E: std::error::Error + 'static>(
    e: aws_sdk_sqs::error::SdkError<E>,
) -> AdminError {
    AdminError::Queue(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
}
