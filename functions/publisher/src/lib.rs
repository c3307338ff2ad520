//! Publisher: consumes the publish FIFO queue (group = account) and hands each job to
//! [`Core::publish`]. This crate only decodes the batch, turns a [`Wait`] into the group's
//! delay, counts the outcomes and encodes the batch answer.

pub mod config;
pub mod wiring;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use reelay_aws::{FifoBatchProcessor, RecordFailure, metrics};
use reelay_domain::UtcTime;
use reelay_domain::messages::QueueKind;
use reelay_domain::ports::Ports;
use reelay_domain::usecase::{Core, PublishOutcome, Wait};
use tracing::{Instrument, info, info_span, warn};

/// The name this function's metrics carry.
pub const FUNCTION: &str = "publisher";

/// What the function runs on, built once per cold start ([`wiring::live`]).
#[derive(Debug)]
pub struct Deps<P> {
    pub core: Core<P>,
    pub batches: FifoBatchProcessor,
}

impl<P> Deps<P> {
    /// The same function over other ports (a local runner decorates them with its kill switch).
    pub fn map_ports<Q>(self, f: impl FnOnce(P) -> Q) -> Deps<Q> {
        Deps {
            core: self.core.map_ports(f),
            batches: self.batches,
        }
    }
}

/// One invocation: the batch in FIFO order, no record started too near `deadline`, and no
/// attempt committed without the init window left before it.
pub async fn handler<P: Ports>(
    deps: &Deps<P>,
    event: SqsEvent,
    deadline: UtcTime,
) -> SqsBatchResponse {
    let core = &deps.core;
    deps.batches
        .process_until(event, core.ports.clock(), deadline, |message, meta| {
            let span = info_span!("publish", job_id = %message.job_id,
                account_id = %message.account_id, message_id = %meta.message_id,
                api_request_id = message.api_request_id.as_deref().unwrap_or(""),
                receive_count = meta.receive_count, api_version = reelay_tiktok::API_VERSION);
            async move {
                if message.kind != QueueKind::Publish {
                    warn!(kind = ?message.kind, "render message on the publish queue");
                    return Err(RecordFailure::new("wrong_queue"));
                }
                match core.publish(&message.job_id, deadline).await {
                    Ok(outcome) => {
                        count(&outcome);
                        info!(outcome = ?outcome, "publish message handled");
                        Ok(())
                    }
                    Err(wait) => {
                        metrics::emit(FUNCTION, "PublishWaits", 1);
                        Err(delay(wait))
                    }
                }
            }
            .instrument(span)
        })
        .await
}

/// The account's group waits, timed as the wait says (to the schedule, to its window, or a
/// back-off the queue may jitter).
fn delay(wait: Wait) -> RecordFailure {
    RecordFailure::waiting(wait.code, wait.after, wait.timing)
}

fn count(outcome: &PublishOutcome) {
    let name = match outcome {
        PublishOutcome::Accepted { .. } => "PublishAccepted",
        PublishOutcome::Rejected { .. } => "PublishRejected",
        PublishOutcome::Unknown { .. } => "PublishUnknown",
        _ => return,
    };
    metrics::emit(FUNCTION, name, 1);
}
