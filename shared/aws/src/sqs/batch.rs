//! A FIFO-correct consumer for Lambda SQS batches, with no Lambda runtime dependency: it takes an
//! `SqsEvent` and returns the `SqsBatchResponse` to hand back (the event source mapping must set
//! `FunctionResponseTypes: [ReportBatchItemFailures]`, or a failure retries the whole batch).
//!
//! Rules:
//! - Records run one at a time in batch order, which is each group's order.
//! - From the first failure on, that record and every later record of the batch are reported
//!   failed ([`FailureScope::RestOfBatch`], AWS's documented FIFO rule). A group's later messages
//!   must not run before its failed one, and Lambda treats the batch as one unit of order.
//!   Records never attempted are made visible again at once (ChangeMessageVisibility 0), so other
//!   groups wait one redelivery, not a whole visibility timeout; the failed group stays blocked
//!   because its head is still in flight. [`FailureScope::RestOfGroup`] (Powertools'
//!   `skip_group_on_error`) is available when a function prefers other groups to proceed.
//! - An undecodable body or an unknown envelope version is reported failed, never dropped and
//!   never retried by hand: after `maxReceiveCount` receives the redrive policy moves it to the DLQ.
//! - A failure may carry a retry-after: the failed message's visibility is set to it plus jitter,
//!   so its group waits that long (FIFO blocks a group while its head is in flight) and other
//!   groups keep flowing.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use rand::Rng;
use reelay_domain::messages::WorkMessage;
use tracing::{error, info, warn};

/// SQS's ceiling for a message's visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// How much of the batch a failure takes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureScope {
    /// The failed record and every later record of the batch (AWS's FIFO recommendation).
    #[default]
    RestOfBatch,
    /// The failed record and the later records of its own group; other groups continue.
    RestOfGroup,
}

/// Why a record failed, and when its group may try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// A short code for logs (never a secret, never a body).
    pub code: String,
    /// Hold the group back this long (plus jitter); `None` leaves the queue's visibility timeout.
    pub retry_after: Option<Duration>,
}

impl RecordFailure {
    pub fn new(code: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(code: impl Into<String>, after: Duration) -> Self {
        Self {
            code: code.into(),
            retry_after: Some(after),
        }
    }
}

/// What the handler learns about the record besides the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    pub message_id: String,
    pub group_id: String,
    /// `ApproximateReceiveCount` (1 on the first delivery).
    pub receive_count: u32,
}

/// Parses a record body into a `WorkMessage` of a version this code knows.
pub fn decode_work_message(body: Option<&str>) -> Result<WorkMessage, RecordFailure> {
    WorkMessage::decode(body).map_err(|e| RecordFailure::new(e.code()))
}

/// Builds the event Lambda would deliver from messages received with the SDK (all system
/// attributes requested), so tests and local runners drive the same code with real messages.
pub fn sqs_event_from_received(
    messages: &[aws_sdk_sqs::types::Message],
    queue_arn: Option<&str>,
) -> SqsEvent {
    let records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            r.md5_of_body = m.md5_of_body.clone();
            r.attributes = m
                .attributes
                .as_ref()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            r.event_source = Some("aws:sqs".into());
            r.event_source_arn = queue_arn.map(str::to_owned);
            r
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// Runs a FIFO batch through a handler. Build once per cold start.
#[derive(Debug, Clone)]
pub struct FifoBatchProcessor {
    client: Client,
    queue_url: String,
    scope: FailureScope,
}

enum Outcome {
    Done,
    Failed,
    Skipped,
}

impl FifoBatchProcessor {
    /// `queue_url` is the queue the event source mapping reads (needed for ChangeMessageVisibility).
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            scope: FailureScope::RestOfBatch,
        }
    }

    /// For the queue named by an environment variable (`RENDER_QUEUE_URL`, `PUBLISH_QUEUE_URL`).
    pub fn from_env(
        sdk: &aws_config::SdkConfig,
        queue_url_var: &'static str,
    ) -> Result<Self, crate::ConfigError> {
        Ok(Self::new(
            Client::new(sdk),
            crate::config::env_var(queue_url_var)?,
        ))
    }

    pub fn with_scope(mut self, scope: FailureScope) -> Self {
        self.scope = scope;
        self
    }

    pub async fn process<F, Fut>(&self, event: SqsEvent, mut handler: F) -> SqsBatchResponse
    where
        F: FnMut(WorkMessage, RecordMeta) -> Fut,
        Fut: Future<Output = Result<(), RecordFailure>>,
    {
        let mut response = SqsBatchResponse::default();
        let mut batch_failed = false;
        let mut failed_groups: HashSet<String> = HashSet::new();
        let mut release: Vec<(String, String)> = Vec::new();
        for record in &event.records {
            let Some(message_id) = record.message_id.clone() else {
                // Lambda always sends one; without it the record cannot be reported either way.
                error!("SQS record without messageId; cannot report it");
                continue;
            };
            let group_id = record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_default();
            let blocked = match self.scope {
                FailureScope::RestOfBatch => batch_failed,
                FailureScope::RestOfGroup => failed_groups.contains(&group_id),
            };
            let outcome = if blocked {
                Outcome::Skipped
            } else {
                let receive_count = record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                let meta = RecordMeta {
                    message_id: message_id.clone(),
                    group_id: group_id.clone(),
                    receive_count,
                };
                match decode_work_message(record.body.as_deref()) {
                    Err(failure) => {
                        // Poison: reported failed until the redrive policy moves it to the DLQ.
                        warn!(message_id = %message_id, group_id = %group_id, receive_count,
                            error.code = %failure.code, "undecodable work message; leaving it to the DLQ");
                        Outcome::Failed
                    }
                    Ok(message) => {
                        let job_id = message.job_id.clone();
                        match handler(message, meta).await {
                            Ok(()) => Outcome::Done,
                            Err(failure) => {
                                info!(message_id = %message_id, group_id = %group_id, job_id = %job_id,
                                    error.code = %failure.code, retry_after_ms = failure.retry_after.map(|d| d.as_millis() as u64),
                                    "work message failed; its group waits");
                                if let (Some(after), Some(handle)) =
                                    (failure.retry_after, &record.receipt_handle)
                                {
                                    self.delay(handle, after, &message_id).await;
                                }
                                Outcome::Failed
                            }
                        }
                    }
                }
            };
            match outcome {
                Outcome::Done => {}
                Outcome::Failed => {
                    batch_failed = true;
                    failed_groups.insert(group_id);
                    response.add_failure(message_id);
                }
                Outcome::Skipped => {
                    if let Some(handle) = &record.receipt_handle {
                        release.push((message_id.clone(), handle.clone()));
                    }
                    response.add_failure(message_id);
                }
            }
        }
        self.release(release).await;
        response
    }

    /// Keeps a failed message in flight for `after` plus jitter: its group waits, others don't.
    async fn delay(&self, receipt_handle: &str, after: Duration, message_id: &str) {
        let jitter_cap = (after / 5).max(Duration::from_secs(1));
        let jitter =
            Duration::from_millis(rand::rng().random_range(0..=jitter_cap.as_millis() as u64));
        let wait = (after + jitter).min(MAX_VISIBILITY);
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(wait.as_secs().max(1)).unwrap_or(i32::MAX))
            .send()
            .await;
        if let Err(e) = result {
            // The message still returns after the queue's visibility timeout.
            warn!(message_id, error.message = %e, "could not delay the failed message");
        }
    }

    /// Makes never-attempted records visible again so their groups are not held back.
    async fn release(&self, records: Vec<(String, String)>) {
        for chunk in records.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (_, handle))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("r{i}"))
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(out) if !out.failed().is_empty() => {
                    let ids: HashMap<String, &str> = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, (m, _))| (format!("r{i}"), m.as_str()))
                        .collect();
                    for f in out.failed() {
                        warn!(
                            message_id = ids.get(f.id()).copied().unwrap_or_default(),
                            error.code = f.code(),
                            "could not release an unprocessed message; it returns after its visibility timeout"
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => warn!(error.message = %e, "could not release unprocessed messages"),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_and_garbage_are_poison() {
        assert_eq!(
            decode_work_message(Some("nope")).unwrap_err().code,
            "undecodable_body"
        );
        assert_eq!(decode_work_message(None).unwrap_err().code, "empty_body");
        let v2 = r#"{"v":2,"kind":"publish","jobId":"job_01HT0000000000000000000000","tenantId":"t","accountId":"a","jobVersion":1}"#;
        assert_eq!(
            decode_work_message(Some(v2)).unwrap_err().code,
            "unknown_envelope_version"
        );
        let v1 = v2.replace("\"v\":2", "\"v\":1");
        assert!(decode_work_message(Some(&v1)).is_ok());
    }
}
