//! The webhook's HTTP side: the path it is called on and every answer it gives.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use reelay_domain::usecase::HintOutcome;
use reelay_domain::{ErrorEnvelope, JobId};
use secrecy::SecretString;
use serde_json::json;

/// Route prefix; the last path segment is `{job_id}.{token}`.
const ROUTE: &str = "/webhooks/ssemble/";
/// A webhook token: 128 bits, lowercase hex.
const TOKEN_HEX_LEN: usize = 32;

/// `{job_id}.{token}` from the request path (API Gateway passes the raw path; the template's
/// path parameter is the fallback). The token stays a secret from here on.
pub fn webhook_target(req: &Request) -> Option<(JobId, SecretString)> {
    let path = req.uri().path();
    let segment = match path.rfind(ROUTE) {
        Some(i) => &path[i + ROUTE.len()..],
        None => req.path_parameters_ref()?.first("token")?,
    };
    let (job, token) = segment.split_once('.')?;
    let token_ok = token.len() == TOKEN_HEX_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !token_ok {
        return None;
    }
    let job_id = JobId::parse(job).ok()?;
    Some((job_id, SecretString::from(token.to_owned())))
}

/// Every answer that is not a 200.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Unknown route, job or token: one answer for all, so the route is no oracle.
    #[error("no such webhook")]
    NotFound,
    #[error("body too large")]
    TooLarge { max: usize },
    /// Only said to a caller holding the job's token.
    #[error("body is not JSON")]
    NotJson,
    #[error("store unavailable: {0}")]
    Store(#[from] reelay_domain::ports::StoreError),
}

impl Refusal {
    pub fn into_response(self) -> Response<Body> {
        let (status, envelope) = match &self {
            Self::MethodNotAllowed => (
                405,
                ErrorEnvelope::new("method_not_allowed", "Webhooks are delivered with POST"),
            ),
            Self::NotFound => (404, ErrorEnvelope::new("not_found", "No such webhook")),
            Self::TooLarge { max } => (
                413,
                ErrorEnvelope::new("body_too_large", "The webhook body is too large")
                    .with_details(json!({ "maxBytes": max })),
            ),
            Self::NotJson => (
                400,
                ErrorEnvelope::new("malformed_json", "The webhook body is not JSON"),
            ),
            // Nothing changed; a redelivery is safe and welcome.
            Self::Store(_) => (
                503,
                ErrorEnvelope::new(
                    "temporarily_unavailable",
                    "The webhook could not be processed now; deliver it again",
                ),
            ),
        };
        json_response(status, serde_json::to_string(&envelope).unwrap_or_default())
    }
}

/// A 200 naming what the delivery did (a hint Ssemble must not redeliver, whatever it did).
pub fn received(outcome: &HintOutcome) -> Response<Body> {
    let result = match outcome {
        HintOutcome::NotFound => return Refusal::NotFound.into_response(),
        HintOutcome::PendingSubmission => "pending_submission",
        HintOutcome::OtherRequest => "other_request",
        HintOutcome::AlreadySettled => "already_settled",
        HintOutcome::Confirmed { .. } => "confirmed",
        HintOutcome::Deferred => "deferred",
    };
    json_response(
        200,
        json!({ "received": true, "result": result }).to_string(),
    )
}

fn json_response(status: u16, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn request(path: &str) -> Request {
        let mut req = Request::new(Body::from("{}"));
        *req.uri_mut() = path.parse().unwrap();
        req
    }

    const JOB: &str = "job_01HT0000000000000000000000";

    #[test]
    fn a_well_formed_path_yields_job_and_token() {
        let token = "0123456789abcdef0123456789abcdef";
        let (job, t) =
            webhook_target(&request(&format!("/webhooks/ssemble/{JOB}.{token}"))).unwrap();
        assert_eq!(job.as_str(), JOB);
        assert_eq!(t.expose_secret(), token);
        // A stage prefix in the raw path does not matter.
        assert!(
            webhook_target(&request(&format!("/prod/webhooks/ssemble/{JOB}.{token}"))).is_some()
        );
    }

    #[test]
    fn a_malformed_path_yields_nothing() {
        for bad in [
            format!("/webhooks/ssemble/{JOB}"),
            format!("/webhooks/ssemble/{JOB}.short"),
            format!("/webhooks/ssemble/{JOB}.0123456789ABCDEF0123456789ABCDEF"),
            "/webhooks/ssemble/job_x.0123456789abcdef0123456789abcdef".to_owned(),
            format!("/webhooks/tiktok/{JOB}.0123456789abcdef0123456789abcdef"),
        ] {
            assert!(webhook_target(&request(&bad)).is_none(), "{bad}");
        }
    }
}
