//! Decode, call, encode: a batch of the table's stream becomes dispatched events, a batch of the
//! delivery queue becomes attempts. One function serves both event sources; the record's
//! `eventSource` says which.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use reelay_aws::{TableChange, decode_change};
use reelay_domain::ports::{Clock, DeliveryQueue, Entropy, JobStore, WebhookSender, WebhookStore};
use reelay_domain::usecase::{Outbound, OutboundError};
use reelay_domain::webhooks::Delivery;
use serde_json::Value;
use thiserror::Error;

/// What one cold start builds: the webhook use cases and the HTTP sender.
#[derive(Debug, Clone)]
pub struct Deps<S, Q, C, H> {
    pub outbound: Outbound<S, Q, C>,
    pub sender: H,
}

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("event is neither a DynamoDB stream batch nor an SQS batch")]
    UnknownSource,
    #[error("malformed event: {0}")]
    Malformed(#[from] serde_json::Error),
}

fn source(event: &Value) -> Option<&str> {
    event["Records"][0]["eventSource"].as_str()
}

impl<S, Q, C, H> Deps<S, Q, C, H>
where
    S: JobStore + WebhookStore,
    Q: DeliveryQueue,
    C: Clock + Entropy,
    H: WebhookSender,
{
    /// Any batch Lambda hands the function; answers its partial-failure response.
    pub async fn handle(&self, event: Value) -> Result<Value, HandlerError> {
        match source(&event) {
            Some("aws:dynamodb") => {
                let batch: StreamEvent = serde_json::from_value(event)?;
                Ok(serde_json::to_value(Box::pin(self.stream(&batch)).await)?)
            }
            Some("aws:sqs") => {
                let batch: SqsEvent = serde_json::from_value(event)?;
                Ok(serde_json::to_value(
                    Box::pin(self.deliveries(&batch)).await,
                )?)
            }
            _ => Err(HandlerError::UnknownSource),
        }
    }

    async fn dispatch(&self, change: TableChange) -> Result<usize, OutboundError> {
        let o = &self.outbound;
        match change {
            TableChange::Transition {
                job_id,
                tenant,
                audit,
            } => {
                o.dispatch_transition(&o.store, &job_id, tenant.as_ref(), &audit)
                    .await
            }
            TableChange::AccountHealth {
                tenant,
                account,
                before,
                after,
                reason,
                version,
            } => {
                o.dispatch_account_change(
                    &tenant,
                    &account,
                    before,
                    after,
                    reason.as_deref(),
                    version,
                )
                .await
            }
        }
    }

    /// Dispatches each record's events in order. The first record that fails is reported, so
    /// Lambda retries the batch from it (records before it are done; a retry of one already
    /// dispatched sends the same event ids again, which receivers deduplicate).
    pub async fn stream(&self, batch: &StreamEvent) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for record in &batch.records {
            let change = match decode_change(record) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    // A malformed item would hold the shard for a day: logged and passed.
                    tracing::error!(error.message = %e, event_id = %record.event_id,
                        "stream record not decodable; skipped");
                    continue;
                }
            };
            if let Err(e) = Box::pin(self.dispatch(change)).await {
                tracing::warn!(error.message = %e, event_id = %record.event_id,
                    "dispatch failed; the batch is retried from this record");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                break;
            }
        }
        response
    }

    /// One attempt per message, all of the batch at once (ten endpoints that each take the
    /// whole 10 s timeout still fit the invocation's 30 s); a message whose next attempt could
    /// not be queued comes back.
    pub async fn deliveries(&self, batch: &SqsEvent) -> SqsBatchResponse {
        let attempts = batch.records.iter().map(|message| async move {
            let id = message.message_id.clone().unwrap_or_default();
            let parsed = message
                .body
                .as_deref()
                .map(serde_json::from_str::<Delivery>);
            let outcome = match parsed {
                Some(Ok(delivery)) => Box::pin(self.outbound.deliver(&self.sender, &delivery))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Some(Err(e)) => Err(format!("malformed delivery: {e}")),
                None => Err("empty message".to_owned()),
            };
            (id, outcome)
        });
        let mut response = SqsBatchResponse::default();
        for (id, outcome) in futures::future::join_all(attempts).await {
            if let Err(why) = outcome {
                tracing::warn!(message_id = %id, error.message = %why, "delivery message failed");
                response.add_failure(id);
            }
        }
        response
    }
}
