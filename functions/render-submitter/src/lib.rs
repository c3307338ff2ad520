//! Render submitter: consumes the render FIFO queue and hands each job to
//! [`Core::submit_render`]. This crate only decodes the batch and encodes its answer.

pub mod config;
pub mod wiring;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use reelay_aws::{FifoBatchProcessor, RecordFailure, metrics};
use reelay_domain::UtcTime;
use reelay_domain::messages::QueueKind;
use reelay_domain::ports::Ports;
use reelay_domain::usecase::{Core, SubmitOutcome};
use tracing::{Instrument, info, info_span, warn};

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

/// One invocation: the batch in FIFO order, no record started too near `deadline`.
pub async fn handler<P: Ports>(
    deps: &Deps<P>,
    event: SqsEvent,
    deadline: UtcTime,
) -> SqsBatchResponse {
    let core = &deps.core;
    deps.batches
        .process_until(event, core.ports.clock(), deadline, |message, meta| {
            let span = info_span!("render_submit", job_id = %message.job_id,
                account_id = %message.account_id, message_id = %meta.message_id,
                api_request_id = message.api_request_id.as_deref().unwrap_or(""),
                receive_count = meta.receive_count);
            async move {
                if message.kind != QueueKind::Render {
                    // Not ours: failed, so it reaches the DLQ visibly instead of vanishing.
                    warn!(kind = ?message.kind, "publish message on the render queue");
                    return Err(RecordFailure::new("wrong_queue"));
                }
                match core.submit_render(&message.job_id).await {
                    Ok(outcome) => {
                        count(&outcome);
                        info!(outcome = ?outcome, "render message handled");
                        Ok(())
                    }
                    Err(e) => {
                        // The group retries after the store's retry, not the visibility timeout.
                        warn!(error.message = %e, "store failed; the message comes back");
                        Err(RecordFailure::retry_after(
                            "store_unavailable",
                            core.settings.store_retry,
                        ))
                    }
                }
            }
            .instrument(span)
        })
        .await
}

/// This function's name in its metrics' `Function` dimension.
pub const FUNCTION: &str = "render-submitter";

fn count(outcome: &SubmitOutcome) {
    let name = match outcome {
        SubmitOutcome::Submitted { .. } => "RendersSubmitted",
        SubmitOutcome::Rejected { .. } => "RendersRejected",
        SubmitOutcome::Held { .. } => "RenderWaits",
        _ => return,
    };
    metrics::emit(FUNCTION, name, 1);
}
