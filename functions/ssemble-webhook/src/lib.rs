//! Ssemble webhook receiver: `POST /webhooks/ssemble/{job_id}.{token}`, handed to
//! [`Core::render_hint`]. A delivery is only a hint (unsigned, duplicated, late): the use case
//! authenticates its token and confirms the render with Ssemble itself; this crate decodes the
//! path and the payload's requestId and encodes the answer.

pub mod config;
pub mod http;
pub mod wiring;

use std::time::Duration;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use reelay_aws::metrics;
use reelay_domain::JobId;
use reelay_domain::ports::{Clock, JobStore, Ports, StoreError};
use reelay_domain::usecase::{Core, HintOutcome, RenderHint};
use reelay_ssemble::{WebhookEvent, WebhookParseError, parse_webhook};
use secrecy::{ExposeSecret, SecretString};
use tracing::{Instrument, info_span, warn};

use crate::http::Refusal;

/// Ssemble's documented payloads are small; anything near this is not one of them.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Under Ssemble's 10 s per-attempt timeout, leaving room for the Lambda and API Gateway.
pub const DEFAULT_WORK_DEADLINE: Duration = Duration::from_secs(7);

/// What the function runs on, built once per cold start ([`wiring::live`]).
#[derive(Debug)]
pub struct Deps<P> {
    pub core: Core<P>,
    pub max_body_bytes: usize,
    /// Confirmation and fan-out stop after this; the reconciler finishes what is left.
    pub work_deadline: Duration,
}

impl<P> Deps<P> {
    /// The same function over other ports (a local runner decorates them with its kill switch).
    pub fn map_ports<Q>(self, f: impl FnOnce(P) -> Q) -> Deps<Q> {
        Deps {
            core: self.core.map_ports(f),
            max_body_bytes: self.max_body_bytes,
            work_deadline: self.work_deadline,
        }
    }
}

/// One delivery. Never fails: every outcome is an HTTP answer.
pub async fn handler<P: Ports>(deps: &Deps<P>, req: Request) -> Response<Body> {
    let span = info_span!(
        "ssemble_webhook",
        job_id = tracing::field::Empty,
        account_id = tracing::field::Empty,
        request_id = tracing::field::Empty
    );
    let handled = handle(deps, &req).instrument(span).await;
    metrics::webhook(FUNCTION, handled.is_ok());
    match handled {
        Ok(outcome) => {
            if let HintOutcome::Confirmed { rendered, failed } = outcome {
                metrics::emit(FUNCTION, "RendersConfirmed", rendered as u64);
                metrics::emit(FUNCTION, "RendersFailed", failed as u64);
            }
            http::received(&outcome)
        }
        Err(refusal) => {
            if let Refusal::Store(e) = &refusal {
                warn!(error.message = %e, "ssemble webhook failed; asking for redelivery");
            }
            refusal.into_response()
        }
    }
}

async fn handle<P: Ports>(deps: &Deps<P>, req: &Request) -> Result<HintOutcome, Refusal> {
    if req.method() != Method::POST {
        return Err(Refusal::MethodNotAllowed);
    }
    let body: &[u8] = req.body().as_ref();
    if body.len() > deps.max_body_bytes {
        return Err(Refusal::TooLarge {
            max: deps.max_body_bytes,
        });
    }
    let (job_id, token) = http::webhook_target(req).ok_or(Refusal::NotFound)?;
    tracing::Span::current().record("job_id", tracing::field::display(&job_id));
    let hint = match parse_webhook(body) {
        Ok(event) => RenderHint {
            request_id: event
                .request_id()
                .and_then(|r| reelay_domain::RequestId::parse(r.as_str()).ok()),
            completed: matches!(event, WebhookEvent::Completed { .. }),
        },
        Err(WebhookParseError::NotJson(_)) => {
            return Err(if authentic(&deps.core, &job_id, &token).await? {
                Refusal::NotJson
            } else {
                Refusal::NotFound
            });
        }
        Err(e) => {
            warn!(error.message = %e, "unrecognised webhook payload; confirming with Ssemble anyway");
            RenderHint::default()
        }
    };
    let deadline = deps.core.ports.clock().now().plus(deps.work_deadline);
    Ok(deps
        .core
        .render_hint(&job_id, &token, &hint, deadline)
        .await?)
}

/// Whether the caller holds one of the job's tokens: only such a caller learns that its body is
/// malformed; anyone else gets the one 404.
async fn authentic<P: Ports>(
    core: &Core<P>,
    job_id: &JobId,
    token: &SecretString,
) -> Result<bool, StoreError> {
    let job = core.ports.jobs().get(job_id).await?;
    Ok(job.is_some_and(|j| j.webhook_token_matches(token.expose_secret())))
}

/// This function's name in its metrics' `Function` dimension.
pub const FUNCTION: &str = "ssemble-webhook";
