//! Ssemble webhook receiver: `POST /webhooks/ssemble/{job_id}.{token}`.
//!
//! Ssemble's deliveries are unsigned, duplicated on timeouts and may arrive late or out of
//! order, so a delivery is only a hint:
//! - it is authenticated by the per-job token in its URL (only Ssemble was given it; the job
//!   keeps SHA-256 hashes, compared in constant time); anything else is a 404 that changes nothing;
//! - its payload is never trusted: the render's state comes from Ssemble itself
//!   (`RenderApi::render_status`, charged to the account budget first);
//! - the confirmed outcome is offered to every job that uses the render (one render fans out to
//!   many accounts) through the lifecycle table, which absorbs duplicates and late events.
//!
//! When confirming is impossible now (budget spent, Ssemble unavailable, time running out),
//! the answer is still 200: the reconciler's poll is the fallback, and a retried delivery
//! would only spend more of the same budget.

use std::time::Duration;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use reelay_aws::{ConfigError, env_var, env_var_opt};
use reelay_domain::budget::{Admission, BudgetKind, Limits};
use reelay_domain::job::{ClipChoice, JobError};
use reelay_domain::lifecycle::{Event, JobState, Policy};
use reelay_domain::ports::{AccountStore, Clock, JobStore, StoreError, WorkQueue};
use reelay_domain::upstream::{RenderApi, RenderStatus, choose_clip};
use reelay_domain::usecase::{self, Advance};
use reelay_domain::{ErrorEnvelope, Job, JobId, RequestId, UtcTime};
use reelay_ssemble::{WebhookEvent, WebhookParseError, parse_webhook};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::{Instrument, info, info_span, warn};

/// Route prefix; the last path segment is `{job_id}.{token}`.
const ROUTE: &str = "/webhooks/ssemble/";
/// A webhook token: 128 bits, lowercase hex.
const TOKEN_HEX_LEN: usize = 32;
/// Ssemble's documented payloads are small; anything near this is not one of them.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Under Ssemble's 10 s per-attempt timeout, leaving room for the Lambda and API Gateway.
pub const DEFAULT_WORK_DEADLINE: Duration = Duration::from_secs(7);

/// What the webhook function needs, built once per cold start.
#[derive(Debug)]
pub struct Deps<J, A, Q, C, R> {
    pub jobs: J,
    pub accounts: A,
    pub queue: Q,
    pub clock: C,
    pub render: R,
    pub policy: Policy,
    pub limits: Limits,
    /// Budget scope of the Ssemble API key; the same as the render submitter's.
    pub budget_scope: String,
    pub max_body_bytes: usize,
    /// Confirmation and fan-out stop after this; the reconciler finishes what is left.
    pub work_deadline: Duration,
}

/// Environment of the function, read once (template.yaml `SsembleWebhookFunction`).
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Completed renders enqueue due publishes.
    pub publish_queue_url: String,
    pub ssemble_secret_id: String,
    pub ssemble_api_base_url: String,
    pub limits: Limits,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut limits = Limits::default();
        for (name, slot) in [
            ("SSEMBLE_LIMIT_HOUR", &mut limits.ssemble_hourly.limit),
            ("SSEMBLE_LIMIT_DAY", &mut limits.ssemble_daily.limit),
        ] {
            if let Some(v) = env_var_opt(name) {
                *slot = v.trim().parse().map_err(|e: std::num::ParseIntError| {
                    ConfigError::Invalid {
                        name,
                        reason: e.to_string(),
                    }
                })?;
            }
        }
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            publish_queue_url: env_var("PUBLISH_QUEUE_URL")?,
            ssemble_secret_id: env_var("SSEMBLE_SECRET_ID")?,
            ssemble_api_base_url: env_var("SSEMBLE_API_BASE_URL")?,
            limits,
        })
    }
}

/// The budget scope of an API key: `ssemble:` + 16 hex digits of its SHA-256. Must equal the
/// render submitter's, since both spend the same account's budget.
pub fn ssemble_budget_scope(api_key: &SecretString) -> String {
    let digest = Sha256::digest(api_key.expose_secret().as_bytes());
    format!("ssemble:{}", &hex::encode(digest)[..16])
}

/// Every answer that is not a 200, in the error envelope.
#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Unknown route, job or token: one answer for all, so the route is no oracle.
    #[error("no such webhook")]
    NotFound,
    #[error("body too large")]
    TooLarge { max: usize },
    #[error("body is not JSON")]
    NotJson,
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
}

impl WebhookError {
    fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed => 405,
            Self::NotFound => 404,
            Self::TooLarge { .. } => 413,
            Self::NotJson => 400,
            Self::Store(_) => 503,
        }
    }

    fn envelope(&self) -> ErrorEnvelope {
        match self {
            Self::MethodNotAllowed => {
                ErrorEnvelope::new("method_not_allowed", "Webhooks are delivered with POST")
            }
            Self::NotFound => ErrorEnvelope::new("not_found", "No such webhook"),
            Self::TooLarge { max } => {
                ErrorEnvelope::new("body_too_large", "The webhook body is too large")
                    .with_details(json!({ "maxBytes": max }))
            }
            Self::NotJson => ErrorEnvelope::new("malformed_json", "The webhook body is not JSON"),
            // Nothing changed; a redelivery is safe and welcome.
            Self::Store(_) => ErrorEnvelope::new(
                "temporarily_unavailable",
                "The webhook could not be processed now; deliver it again",
            ),
        }
    }

    fn into_response(self) -> Response<Body> {
        let body = serde_json::to_string(&self.envelope()).unwrap_or_default();
        json_response(self.status(), body)
    }
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

fn accepted(result: &str) -> Response<Body> {
    json_response(
        200,
        json!({ "received": true, "result": result }).to_string(),
    )
}

/// `{job_id}.{token}` from the request path (API Gateway passes the raw path; the template's
/// path parameter is the fallback). The token stays a secret from here on.
fn webhook_target(req: &Request) -> Option<(JobId, SecretString)> {
    let path = req.uri().path();
    let segment = match path.rfind(ROUTE) {
        Some(i) => path[i + ROUTE.len()..].to_owned(),
        None => req.path_parameters().first("token")?.to_owned(),
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

/// Whether the token's SHA-256 is one of the job's; every stored hash is compared, in constant
/// time, so timing tells nothing about how close a guess was.
fn token_matches(token: &SecretString, hashes: &[String]) -> bool {
    let presented = hex::encode(Sha256::digest(token.expose_secret().as_bytes()));
    hashes.iter().fold(false, |found, stored| {
        let same_len = stored.len() == presented.len();
        let diff = stored
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        found | (same_len & (diff == 0))
    })
}

/// The Lambda entry point. Never fails: every outcome is an HTTP answer.
pub async fn function_handler<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    req: Request,
) -> Response<Body>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    R: RenderApi,
{
    let span = info_span!(
        "ssemble_webhook",
        job_id = tracing::field::Empty,
        account_id = tracing::field::Empty,
        request_id = tracing::field::Empty
    );
    match handle(deps, req).instrument(span).await {
        Ok(resp) => resp,
        Err(e) => {
            if matches!(e, WebhookError::Store(_)) {
                warn!(error.message = %e, "ssemble webhook failed; asking for redelivery");
            }
            e.into_response()
        }
    }
}

async fn handle<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    req: Request,
) -> Result<Response<Body>, WebhookError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    R: RenderApi,
{
    if req.method() != lambda_http::http::Method::POST {
        return Err(WebhookError::MethodNotAllowed);
    }
    let body: &[u8] = req.body().as_ref();
    if body.len() > deps.max_body_bytes {
        return Err(WebhookError::TooLarge {
            max: deps.max_body_bytes,
        });
    }
    let Some((job_id, token)) = webhook_target(&req) else {
        return Err(WebhookError::NotFound);
    };
    let span = tracing::Span::current();
    span.record("job_id", tracing::field::display(&job_id));
    let Some(job) = deps.jobs.get(&job_id).await? else {
        warn!("webhook for an unknown job");
        return Err(WebhookError::NotFound);
    };
    if !token_matches(&token, &job.webhook_token_hashes) {
        warn!(account_id = %job.account_id, "webhook with a wrong token; nothing changed");
        return Err(WebhookError::NotFound);
    }
    span.record("account_id", tracing::field::display(&job.account_id));

    // Authenticated. The payload is a hint: read only to notice a mismatch.
    let hint = match parse_webhook(body) {
        Ok(event) => Some(event),
        Err(WebhookParseError::NotJson(_)) => return Err(WebhookError::NotJson),
        Err(e) => {
            warn!(error.message = %e, "unrecognised webhook payload; confirming with Ssemble anyway");
            None
        }
    };
    let Some(request_id) = job.request_id.clone() else {
        // A create whose response was lost: the render submitter's look-up will find it.
        info!("webhook before the job's requestId is known; left to the reconciler");
        return Ok(accepted("pending_submission"));
    };
    span.record("request_id", tracing::field::display(&request_id));
    if let Some(h) = &hint {
        info!(hint = %hint_summary(h), "webhook hint received");
    }
    let hinted = hint
        .as_ref()
        .and_then(WebhookEvent::request_id)
        .map(|r| r.as_str().to_owned());
    if hinted.as_deref().is_some_and(|h| h != request_id.as_str()) {
        // An earlier create of this job reporting back: not the render the job follows.
        warn!(
            hinted = hinted.as_deref(),
            "webhook names another request; nothing changed"
        );
        return Ok(accepted("other_request"));
    }
    if job.state != JobState::Rendering {
        // The render's outcome was already confirmed (or the job was cancelled): a duplicate or
        // late delivery must not spend budget confirming it again.
        info!(state = %job.state, "render already settled for this job; duplicate or late delivery");
        return Ok(accepted("already_settled"));
    }

    match tokio::time::timeout(
        deps.work_deadline,
        confirm_and_apply(deps, job, &request_id),
    )
    .await
    {
        Ok(result) => result.map(accepted),
        Err(_) => {
            warn!("webhook work passed its deadline; the reconciler's poll finishes it");
            Ok(accepted("deferred"))
        }
    }
}

/// Takes the budget for a confirmation (status, then the document once completed).
async fn take_status_budget<A: AccountStore>(
    accounts: &A,
    scope: &str,
    limits: &Limits,
    now: UtcTime,
) -> Result<Option<(BudgetKind, UtcTime)>, StoreError> {
    for _ in 0..2 {
        for kind in [
            BudgetKind::SsembleHourly,
            BudgetKind::SsembleDaily,
            BudgetKind::SsembleStatus,
        ] {
            if let Admission::Denied { retry_at } =
                accounts.take(scope, kind, limits.window(kind), now).await?
            {
                return Ok(Some((kind, retry_at)));
            }
        }
    }
    Ok(None)
}

async fn confirm_and_apply<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    job: Job,
    request_id: &RequestId,
) -> Result<&'static str, WebhookError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    R: RenderApi,
{
    let now = deps.clock.now();
    if let Some((kind, until)) =
        take_status_budget(&deps.accounts, &deps.budget_scope, &deps.limits, now).await?
    {
        info!(budget = kind.as_str(), until = %until,
            "no budget to confirm now; the reconciler's poll confirms later");
        return Ok("deferred_budget");
    }
    let status = match deps.render.render_status(request_id).await {
        Ok(status) => status,
        Err(e) => {
            warn!(error.code = %e.code, error.message = %e.message,
                "could not confirm with Ssemble; the reconciler's poll confirms later");
            return Ok("deferred_upstream");
        }
    };
    info!(status = status_name(&status), "render status confirmed");

    let mut ids = deps.jobs.jobs_for_request(request_id).await?;
    if !ids.contains(&job.id) {
        ids.push(job.id.clone());
    }
    let mut store_failure = None;
    for id in ids {
        let loaded = if id == job.id {
            Some(job.clone())
        } else {
            match deps.jobs.get(&id).await {
                Ok(j) => j,
                Err(e) => {
                    warn!(fan_out_job_id = %id, error.message = %e, "could not load a job of this render");
                    store_failure = Some(e);
                    continue;
                }
            }
        };
        let Some(target) = loaded else { continue };
        if target.request_id.as_ref() != Some(request_id) {
            continue;
        }
        let event = event_for(&status, &target.post.clip);
        let (target_id, account) = (target.id.clone(), target.account_id.clone());
        match usecase::advance_loaded(
            &deps.jobs,
            &deps.queue,
            &deps.clock,
            &deps.policy,
            target,
            &event,
        )
        .await
        {
            Ok(Advance::Moved(applied)) => {
                info!(fan_out_job_id = %target_id, account_id = %account,
                event = event.name(), state = %applied.job.state, "job moved")
            }
            Ok(other) => info!(fan_out_job_id = %target_id, account_id = %account,
                event = event.name(), state = ?other.job().map(|j| j.state), "nothing to change"),
            Err(e) => {
                warn!(fan_out_job_id = %target_id, account_id = %account, error.message = %e,
                    "could not move a job of this render");
                store_failure = Some(e);
            }
        }
    }
    match store_failure {
        // Jobs already moved absorb the redelivery; the rest move then.
        Some(e) => Err(e.into()),
        None => Ok("confirmed"),
    }
}

fn status_name(status: &RenderStatus) -> &'static str {
    match status {
        RenderStatus::Pending => "pending",
        RenderStatus::Completed { .. } => "completed",
        RenderStatus::Failed { .. } => "failed",
        RenderStatus::Cancelled => "cancelled",
    }
}

/// The event a confirmed status means for one job (each job chooses its own clip).
pub fn event_for(status: &RenderStatus, choice: &ClipChoice) -> Event {
    let failed = |code: &str, message: String| Event::RenderFailed {
        error: JobError {
            code: code.into(),
            message,
            upstream_log_id: None,
        },
    };
    match status {
        RenderStatus::Pending => Event::RenderProgressed,
        RenderStatus::Completed { clips } => match choose_clip(clips, choice) {
            Some(clip) => Event::RenderCompleted { clip },
            None if matches!(choice, ClipChoice::ShortId(_)) => failed(
                "clip_not_found",
                "The render completed without the clip this job names".into(),
            ),
            None => failed(
                "no_usable_clip",
                format!("The render completed with {} usable clips", clips.len()),
            ),
        },
        RenderStatus::Failed { reason } => failed("render_failed", reason.clone()),
        RenderStatus::Cancelled => failed(
            "render_cancelled",
            "Ssemble reports the render cancelled".into(),
        ),
    }
}

/// A JSON value for logs of what a hint claimed, never including URLs or tokens.
pub fn hint_summary(hint: &WebhookEvent) -> Value {
    match hint {
        WebhookEvent::Completed {
            request_id, shorts, ..
        } => {
            json!({"event": "shorts.completed", "requestId": request_id.as_str(), "shorts": shorts.len()})
        }
        WebhookEvent::Failed { request_id, .. } => {
            json!({"event": "shorts.failed", "requestId": request_id.as_str()})
        }
        WebhookEvent::Other { event, .. } => json!({ "event": event }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reelay_domain::Clip;

    fn request(path: &str) -> Request {
        let mut req = Request::new(Body::from("{}"));
        *req.uri_mut() = path.parse().unwrap();
        *req.method_mut() = lambda_http::http::Method::POST;
        req
    }

    const JOB: &str = "job_01HT0000000000000000000000";

    #[test]
    fn when_the_path_is_well_formed_should_yield_job_and_token() {
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
    fn when_the_path_is_malformed_should_yield_nothing() {
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

    #[test]
    fn tokens_match_only_their_own_hash() {
        let token = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
        let hash = hex::encode(Sha256::digest(token.expose_secret().as_bytes()));
        assert!(token_matches(&token, &["00".repeat(32), hash.clone()]));
        assert!(!token_matches(&token, &["00".repeat(32)]));
        assert!(!token_matches(&token, &[]));
        assert!(!token_matches(&token, &[hash[..63].to_owned()]));
    }

    #[test]
    fn budget_scope_matches_the_render_submitters() {
        let key = SecretString::from("sk_ssemble_abcdefabcdefabcdefabcdefabcdefab");
        assert_eq!(ssemble_budget_scope(&key), "ssemble:bc3df0c968e3590b");
    }

    #[test]
    fn each_job_chooses_its_own_clip_and_a_missing_one_fails_visibly() {
        let clip = |id: &str, score: f64| Clip {
            short_id: id.into(),
            video_url: format!("https://cdn/{id}.mp4"),
            duration_secs: None,
            viral_score: Some(score),
        };
        let done = RenderStatus::Completed {
            clips: vec![clip("a", 40.0), clip("b", 90.0)],
        };
        assert!(matches!(event_for(&done, &ClipChoice::TopViralScore),
            Event::RenderCompleted { ref clip } if clip.short_id == "b"));
        assert!(matches!(event_for(&done, &ClipChoice::ShortId("a".into())),
            Event::RenderCompleted { ref clip } if clip.short_id == "a"));
        assert!(matches!(event_for(&done, &ClipChoice::ShortId("z".into())),
            Event::RenderFailed { ref error } if error.code == "clip_not_found"));
        let empty = RenderStatus::Completed { clips: vec![] };
        assert!(matches!(event_for(&empty, &ClipChoice::TopViralScore),
            Event::RenderFailed { ref error } if error.code == "no_usable_clip"));
        assert!(matches!(
            event_for(&RenderStatus::Failed { reason: "Video download failed".into() }, &ClipChoice::TopViralScore),
            Event::RenderFailed { ref error } if error.message == "Video download failed"));
    }
}
