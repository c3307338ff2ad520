//! TikTok webhook receiver: `POST /webhooks/tiktok`. The `TikTok-Signature` and its replay
//! window are checked over the raw bytes before anything is parsed; a verified event goes to
//! [`Core::observe_publish`] or [`Core::authorization_removed`]. This crate only verifies,
//! decodes and encodes.

pub mod config;
pub mod http;
pub mod wiring;

use std::time::Duration;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use reelay_aws::metrics;
use reelay_domain::PublishId;
use reelay_domain::ports::{Clock, Ports};
use reelay_domain::usecase::{Core, Observation, ObserveOutcome};
use reelay_tiktok::{parse_webhook, verify_signature};
use secrecy::SecretString;
use tracing::{Instrument, info, info_span, warn};

use crate::http::{Decoded, Handled, Refusal};

/// Webhook bodies are small JSON envelopes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// What the function runs on, built once per cold start ([`wiring::live`]).
#[derive(Debug)]
pub struct Deps<P> {
    pub core: Core<P>,
    /// The app's client secret: the HMAC key of `TikTok-Signature`.
    pub client_secret: SecretString,
    pub replay_window: Duration,
    pub max_body_bytes: usize,
}

impl<P> Deps<P> {
    /// The same function over other ports (a local runner decorates them with its kill switch).
    pub fn map_ports<Q>(self, f: impl FnOnce(P) -> Q) -> Deps<Q> {
        Deps {
            core: self.core.map_ports(f),
            client_secret: self.client_secret,
            replay_window: self.replay_window,
            max_body_bytes: self.max_body_bytes,
        }
    }
}

/// One delivery. Never fails: every outcome is an HTTP answer (a 200 once the event is recorded,
/// a 500 on a store failure so TikTok redelivers).
pub async fn handler<P: Ports>(deps: &Deps<P>, req: Request) -> Response<Body> {
    let span = info_span!(
        "tiktok_webhook",
        event = tracing::field::Empty,
        publish_id = tracing::field::Empty,
        job_id = tracing::field::Empty,
        account_id = tracing::field::Empty,
        api_request_id = tracing::field::Empty
    );
    let handled = handle(deps, &req).instrument(span).await;
    metrics::webhook(FUNCTION, handled.is_ok());
    match handled {
        Ok(handled) => http::received(&handled),
        Err(refusal) => {
            warn!(error.code = refusal.code(), error.message = %refusal, "tiktok webhook refused");
            refusal.into_response()
        }
    }
}

async fn handle<P: Ports>(deps: &Deps<P>, req: &Request) -> Result<Handled, Refusal> {
    if req.method() != Method::POST {
        return Err(Refusal::MethodNotAllowed);
    }
    let body: &[u8] = req.body().as_ref();
    if body.len() > deps.max_body_bytes {
        return Err(Refusal::TooLarge {
            max: deps.max_body_bytes,
        });
    }
    let signature = req
        .headers()
        .get("tiktok-signature")
        .and_then(|v| v.to_str().ok());
    let now = deps.core.ports.clock().now().as_secs();
    verify_signature(
        signature,
        body,
        &deps.client_secret,
        now,
        deps.replay_window,
    )?;
    let parsed = parse_webhook(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let span = tracing::Span::current();
    match http::decode(parsed.event) {
        Decoded::Publish { publish_id, what } => {
            span.record("publish_id", publish_id.as_str());
            let publish_id = PublishId::parse(publish_id)
                .map_err(|_| Refusal::Malformed("publish_id is not valid".into()))?;
            let observation = Observation {
                publish_id,
                open_id: parsed.user_openid,
                what,
            };
            match deps.core.observe_publish(&observation).await? {
                ObserveOutcome::Later => Err(Refusal::Later),
                outcome => Ok(Handled::Observed(outcome)),
            }
        }
        Decoded::AuthorizationRemoved { reason } => {
            span.record("event", "authorization.removed");
            Ok(
                match deps
                    .core
                    .authorization_removed(&parsed.user_openid, reason)
                    .await?
                {
                    Some(parked) => Handled::AuthorizationRemoved { parked },
                    None => Handled::Ignored { why: "user" },
                },
            )
        }
        Decoded::Other { event } => {
            info!(event = %event, "webhook event not followed");
            Ok(Handled::Ignored { why: "event" })
        }
    }
}

/// This function's name in its metrics' `Function` dimension.
pub const FUNCTION: &str = "tiktok-webhook";
