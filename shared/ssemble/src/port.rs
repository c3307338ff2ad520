//! The domain's [`RenderApi`] port over [`SsembleClient`]. Errors are classified here once, so
//! the functions branch on the domain's [`DomainClass`] and on `outcome_unknown`, never on HTTP.
//!
//! Rules kept here:
//! - `submit` sends the create exactly once: a create that may have taken effect (timeout after
//!   sending, 5xx, unreadable 2xx) is `outcome_unknown`, and its resolution is the caller's
//!   `find_submitted` on a later attempt, never a retry inside.
//! - `find_submitted` never guesses: several matching requests are an error with
//!   [`AMBIGUOUS_CODE`], for an operator to resolve.
//! - `render_progress` and `render_clips` are one HTTP request each, whatever the client's retry
//!   policy (the caller charged the budget for one call), and trust only Ssemble's own answers
//!   (a webhook payload is only a hint).
//! - On reads, only Ssemble's own error envelope can be [`DomainClass::Permanent`]: a 404
//!   `resource_not_found` means the request is unknown (or not this key's) and polling it again
//!   cannot help; an unreadable or non-JSON answer (a proxy, contract drift) is retried.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reelay_domain::job::{Clip, MediaSource, RenderRequest};
use reelay_domain::lifecycle::ErrorClass as DomainClass;
use reelay_domain::upstream::{RenderApi, RenderProgress, UpstreamError};
use reelay_domain::{RequestId as DomainRequestId, UtcTime};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::client::SsembleClient;
use crate::error::{ApiError, ErrorClass, ErrorCode};
use crate::model::{CreateShortRequest, RequestId, RequestStatus, Short, Source};
use crate::recovery::{FindCriteria, FindOutcome};

/// Several Ssemble requests match a job's source and range: which one is the job's is a decision
/// for an operator (claiming the wrong one would publish another job's clip).
pub const AMBIGUOUS_CODE: &str = "ambiguous_render_request";
/// A render option Reelay cannot pass to Ssemble (unknown name or wrong type); nothing was sent.
pub const INVALID_OPTION_CODE: &str = "invalid_render_option";
/// Ssemble answered with a request id Reelay cannot use.
const BAD_ID_CODE: &str = "upstream_bad_request_id";
/// Upstream messages are kept for triage, bounded so one odd body cannot bloat a job item.
const MAX_MESSAGE_CHARS: usize = 300;

/// `failureReason` is documented as present on every failed request; this stands in if not.
const NO_FAILURE_REASON: &str = "unknown (Ssemble gave no failureReason)";

/// The create body for a job's render request. Options are Ssemble's optional create fields by
/// their wire names; one Reelay cannot type is refused rather than silently dropped.
pub fn create_request(
    request: &RenderRequest,
    webhook_url: Option<SecretString>,
) -> Result<CreateShortRequest, UpstreamError> {
    let source = match &request.media {
        MediaSource::Url(u) => Source::Url(u.clone()),
        MediaSource::FileUrl(u) => Source::FileUrl(u.clone()),
    };
    let mut req = CreateShortRequest::new(source, request.start, request.end);
    for (key, value) in &request.options {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "preferredLength" => req.preferred_length = Some(option(key, value)?),
            "language" => req.language = Some(option(key, value)?),
            "captionLanguage" => req.caption_language = Some(option(key, value)?),
            "templateId" => req.template_id = Some(option(key, value)?),
            "noClipping" => req.no_clipping = Some(option(key, value)?),
            "hookTitle" => req.hook_title = Some(option(key, value)?),
            "memeHook" => req.meme_hook = Some(option(key, value)?),
            "memeHookName" => req.meme_hook_name = Some(option(key, value)?),
            "gameVideo" => req.game_video = Some(option(key, value)?),
            "gameVideoName" => req.game_video_name = Some(option(key, value)?),
            "ctaEnabled" => req.cta_enabled = Some(option(key, value)?),
            "ctaText" => req.cta_text = Some(option(key, value)?),
            "music" => req.music = Some(option(key, value)?),
            "musicName" => req.music_name = Some(option(key, value)?),
            "musicVolume" => req.music_volume = Some(option(key, value)?),
            "layout" => req.layout = Some(option(key, value)?),
            _ => return Err(invalid_option(key, "is not a Ssemble create option")),
        }
    }
    req.webhook_url = webhook_url;
    Ok(req)
}

fn option<T: DeserializeOwned>(key: &str, value: &serde_json::Value) -> Result<T, UpstreamError> {
    serde_json::from_value(value.clone()).map_err(|_| invalid_option(key, "has the wrong type"))
}

fn invalid_option(key: &str, why: &str) -> UpstreamError {
    UpstreamError {
        class: DomainClass::Permanent,
        code: INVALID_OPTION_CODE.into(),
        message: format!("render option {key:?} {why}"),
        log_id: None,
        retry_at: None,
        outcome_unknown: false,
    }
}

fn utc(t: DateTime<Utc>) -> UtcTime {
    UtcTime::from_millis(t.timestamp_millis())
}

/// Classifies a client error for the domain. `create` marks the one non-idempotent call: only
/// there can an error leave the outcome unknown.
///
/// | failure | class |
/// |---|---|
/// | 429 (any body), `rate_limit_exceeded` | `WaitForWindow`, `retry_at` from the answer |
/// | 5xx, `internal_error`, timeout, reset, never connected | `Retryable` |
/// | `invalid_api_key`, `missing_api_key`, `user_not_found`, billing, client config | `NeedsUser` |
/// | other documented 4xx codes, incl. 404 `resource_not_found` | `Permanent` (Ssemble's code) |
/// | unreadable 2xx, non-JSON 4xx on a read | `Retryable` (not Ssemble's own answer) |
/// | unreadable 2xx on a create | `Retryable`, `outcome_unknown` |
pub fn upstream_error(e: &ApiError, create: bool) -> UpstreamError {
    let now = Utc::now();
    let class = match e.class() {
        ErrorClass::Retryable | ErrorClass::OutcomeUnknown
            if e.status() == Some(429) || e.code() == Some(&ErrorCode::RateLimitExceeded) =>
        {
            DomainClass::WaitForWindow
        }
        ErrorClass::Retryable | ErrorClass::OutcomeUnknown => DomainClass::Retryable,
        // A proxy's page or a body this client cannot read is no verdict on the request: failing
        // a paid render on it would be wrong, polling again is cheap.
        ErrorClass::Permanent
            if !create && matches!(e, ApiError::NonJson { .. } | ApiError::Decode { .. }) =>
        {
            DomainClass::Retryable
        }
        // A client that cannot be built or cannot present its key is an operator's to fix.
        ErrorClass::Permanent if matches!(e, ApiError::Config(_)) => DomainClass::NeedsUser,
        ErrorClass::Permanent | ErrorClass::NotFound => DomainClass::Permanent,
        // A revoked key, no subscription, no credits: an operator must act, not the job.
        ErrorClass::Auth | ErrorClass::Billing => DomainClass::NeedsUser,
    };
    let code = match e {
        ApiError::Api { code, .. } => code.as_str().to_owned(),
        ApiError::NonJson { .. } => "upstream_non_json".into(),
        ApiError::Decode { .. } => "upstream_unexpected_body".into(),
        ApiError::NotSent { .. } => "upstream_not_sent".into(),
        ApiError::OutcomeUnknown { .. } => "upstream_no_response".into(),
        ApiError::InvalidRequestId(_) => "invalid_request_id".into(),
        ApiError::Config(_) => "ssemble_client_config".into(),
    };
    UpstreamError {
        class,
        code,
        message: e.to_string().chars().take(MAX_MESSAGE_CHARS).collect(),
        // Ssemble returns no log or trace id; the job's audit keeps the requestId instead.
        log_id: None,
        retry_at: e.retry_wait(now).map(|w| utc(now).plus(w.delay)),
        outcome_unknown: create && e.may_have_taken_effect(),
    }
}

fn domain_request_id(id: &RequestId, created: bool) -> Result<DomainRequestId, UpstreamError> {
    DomainRequestId::parse(id.as_str()).map_err(|e| UpstreamError {
        class: DomainClass::Permanent,
        code: BAD_ID_CODE.into(),
        message: e.to_string(),
        log_id: None,
        retry_at: None,
        // A create answered with an id we cannot store still spent the credit: look it up later.
        outcome_unknown: created,
    })
}

fn clip(short: &Short) -> Option<Clip> {
    let video_url = short.video_url.clone().filter(|_| short.is_usable())?;
    Some(Clip {
        short_id: short.id.clone(),
        video_url,
        duration_secs: short.duration,
        viral_score: short.viral_score,
    })
}

impl RenderApi for SsembleClient {
    async fn submit(
        &self,
        request: &RenderRequest,
        webhook_url: &str,
    ) -> Result<DomainRequestId, UpstreamError> {
        let body = create_request(request, Some(SecretString::from(webhook_url.to_owned())))?;
        match self.create(&body).await {
            Ok(resp) => domain_request_id(&resp.data.request_id, true),
            Err(e) => Err(upstream_error(&e, true)),
        }
    }

    async fn find_submitted(
        &self,
        request: &RenderRequest,
        since: UtcTime,
    ) -> Result<Option<DomainRequestId>, UpstreamError> {
        let body = create_request(request, None)?;
        let now = Utc::now();
        let since = DateTime::<Utc>::from_timestamp_millis(since.as_millis()).unwrap_or(now);
        // The search window runs from `since`; a job held for hours must still see its create.
        let elapsed = (now - since).to_std().unwrap_or(Duration::ZERO);
        let mut client = self.clone();
        client.find.window = client.find.window.max(elapsed + Duration::from_secs(60));
        let criteria = FindCriteria::for_request(&body, since);
        match client.find_request(&criteria).await {
            Ok(FindOutcome::Found(found)) => domain_request_id(&found.request_id, false).map(Some),
            Ok(FindOutcome::NotFound) => Ok(None),
            Ok(FindOutcome::Ambiguous(candidates)) => Err(UpstreamError {
                class: DomainClass::NeedsUser,
                code: AMBIGUOUS_CODE.into(),
                message: format!(
                    "{} Ssemble requests match this job's source and range; refusing to guess",
                    candidates.len()
                ),
                log_id: None,
                retry_at: None,
                outcome_unknown: false,
            }),
            Err(e) => Err(upstream_error(&e, false)),
        }
    }

    fn find_call_bound(&self) -> u32 {
        self.find
            .max_pages
            .max(1)
            .saturating_add(self.find.max_confirmations)
    }

    async fn render_progress(
        &self,
        request_id: &DomainRequestId,
    ) -> Result<RenderProgress, UpstreamError> {
        let status = self
            .status_once(request_id.as_str())
            .await
            .map_err(|e| upstream_error(&e, false))?
            .data;
        Ok(progress(status.status, status.failure_reason))
    }

    async fn render_clips(
        &self,
        request_id: &DomainRequestId,
    ) -> Result<Option<Vec<Clip>>, UpstreamError> {
        let doc = self
            .get_once(request_id.as_str())
            .await
            .map_err(|e| upstream_error(&e, false))?
            .data;
        if doc.status != RequestStatus::Completed {
            // The document lags the status: not yet safe to choose a clip from it.
            tracing::warn!(
                request_id = request_id.as_str(),
                doc_status = doc.status.as_str(),
                "ssemble status says completed but the document does not yet"
            );
            return Ok(None);
        }
        Ok(Some(doc.shorts.iter().filter_map(clip).collect()))
    }
}

/// A status answer in domain terms.
fn progress(status: RequestStatus, failure_reason: Option<String>) -> RenderProgress {
    match status {
        RequestStatus::Completed => RenderProgress::Completed,
        RequestStatus::Failed => RenderProgress::Failed {
            reason: failure_reason
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| NO_FAILURE_REASON.into()),
        },
        RequestStatus::Cancelled => RenderProgress::Cancelled,
        // Queued, processing, or a status this client does not know: keep waiting (and polling).
        RequestStatus::Queued | RequestStatus::Processing | RequestStatus::Unknown(_) => {
            RenderProgress::Pending
        }
    }
}

/// The client every function wires for the domain: no retries inside (each call is charged to the
/// key's budget before it is made, so a retry would spend what was not taken), each request cut
/// off after `timeout`.
pub fn budgeted_client(
    api_key: &SecretString,
    base_url: &str,
    timeout: Duration,
) -> Result<SsembleClient, ApiError> {
    SsembleClient::new(crate::SsembleConfig {
        retry: crate::RetryPolicy::none(),
        request_timeout: timeout,
        ..crate::SsembleConfig::new(api_key.clone()).with_base_url(base_url)
    })
}

/// The budgeted client and the budget scope of its key, as every function wires them.
pub fn domain_client(
    api_key: &SecretString,
    base_url: &str,
    timeout: Duration,
) -> Result<(SsembleClient, String), ApiError> {
    Ok((
        budgeted_client(api_key, base_url, timeout)?,
        budget_scope(api_key),
    ))
}

/// A stable, non-secret name for the API key's budget: `ssemble:` + 16 hex digits of its
/// SHA-256. Every function that calls Ssemble with this key must charge the same scope.
pub fn budget_scope(api_key: &SecretString) -> String {
    let digest = Sha256::digest(api_key.expose_secret().as_bytes());
    format!("ssemble:{}", &hex::encode(digest)[..16])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(options: serde_json::Value) -> RenderRequest {
        RenderRequest {
            media: MediaSource::FileUrl("https://cdn.example.com/a.mp4".into()),
            start: 0.0,
            end: 600.0,
            options: options.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn when_options_are_known_should_pass_them_through_by_wire_name() {
        let req = create_request(
            &render(
                json!({"preferredLength": "under30sec", "language": "ko", "music": true,
                "musicVolume": 15, "layout": "fit", "templateId": "660b8531aedb346bbe26eb43",
                "ctaText": null}),
            ),
            Some(SecretString::from("https://x/webhooks/ssemble/j.t")),
        )
        .unwrap();
        let wire = serde_json::to_value(&req).unwrap();
        assert_eq!(
            wire,
            json!({"fileUrl": "https://cdn.example.com/a.mp4", "start": 0, "end": 600,
                "preferredLength": "under30sec", "language": "ko", "music": true,
                "musicVolume": 15, "layout": "fit", "templateId": "660b8531aedb346bbe26eb43",
                "webhookUrl": "https://x/webhooks/ssemble/j.t"})
        );
        assert!(!format!("{req:?}").contains("webhooks/ssemble/j.t"));
    }

    #[test]
    fn when_an_option_is_unknown_or_mistyped_should_refuse_before_any_call() {
        for bad in [json!({"colour": "red"}), json!({"music": "yes"})] {
            let err = create_request(&render(bad), None).unwrap_err();
            assert_eq!(err.code, INVALID_OPTION_CODE);
            assert_eq!(err.class, DomainClass::Permanent);
            assert!(!err.outcome_unknown);
        }
    }

    fn api_error(status: u16, code: &str, retry_after: Option<u64>) -> ApiError {
        api_error_at(crate::error::Endpoint::Create, status, code, retry_after)
    }

    fn api_error_at(
        endpoint: crate::error::Endpoint,
        status: u16,
        code: &str,
        retry_after: Option<u64>,
    ) -> ApiError {
        ApiError::Api {
            endpoint,
            status,
            code: ErrorCode::from_wire(code),
            message: "m".into(),
            details: retry_after.map_or(serde_json::Value::Null, |s| json!({ "retryAfter": s })),
            rate_limit: crate::rate_limit::RateLimitInfo::default(),
            backoff: crate::error::BackoffHint {
                attempt: 1,
                policy: crate::config::RetryPolicy::default(),
            },
        }
    }

    #[test]
    fn when_errors_are_classified_should_map_onto_the_domains_classes() {
        let before = utc(Utc::now());
        let limited = upstream_error(&api_error(429, "rate_limit_exceeded", Some(37)), true);
        assert_eq!(limited.class, DomainClass::WaitForWindow);
        assert!(!limited.outcome_unknown, "a 429 is a definite refusal");
        let at = limited.retry_at.unwrap();
        assert!(at >= before.plus(Duration::from_secs(37)));
        assert!(at <= utc(Utc::now()).plus(Duration::from_secs(37)));

        let crashed = upstream_error(&api_error(500, "internal_error", None), true);
        assert_eq!(crashed.class, DomainClass::Retryable);
        assert!(crashed.outcome_unknown, "a 5xx create may have landed");
        assert!(!upstream_error(&api_error(500, "internal_error", None), false).outcome_unknown);

        let broke = upstream_error(&api_error(403, "insufficient_credits", None), true);
        assert_eq!(broke.class, DomainClass::NeedsUser);
        assert_eq!(broke.code, "insufficient_credits");
        assert_eq!(broke.retry_at, None);
        let bad = upstream_error(&api_error(400, "video_too_long", None), true);
        assert_eq!(
            (bad.class, bad.outcome_unknown),
            (DomainClass::Permanent, false)
        );
    }

    #[test]
    fn when_a_status_read_fails_should_classify_each_documented_answer() {
        use crate::error::Endpoint;
        let read = |status, code: &str| {
            upstream_error(&api_error_at(Endpoint::Status, status, code, None), false)
        };
        // An unknown or foreign requestId: polling it again cannot help.
        let gone = read(404, "resource_not_found");
        assert_eq!(
            (
                gone.class,
                gone.code.as_str(),
                gone.outcome_unknown,
                gone.retry_at
            ),
            (DomainClass::Permanent, "resource_not_found", false, None)
        );
        // The same answer to a create is a definite refusal too.
        let gone = upstream_error(&api_error(404, "resource_not_found", None), true);
        assert_eq!(
            (gone.class, gone.outcome_unknown),
            (DomainClass::Permanent, false)
        );

        let limited = read(429, "rate_limit_exceeded");
        assert_eq!(limited.class, DomainClass::WaitForWindow);
        assert!(limited.retry_at.is_some() && !limited.outcome_unknown);
        for (status, code) in [(500, "internal_error"), (503, "something_new")] {
            let e = read(status, code);
            assert_eq!(
                (e.class, e.outcome_unknown),
                (DomainClass::Retryable, false)
            );
            assert_eq!(e.code, code);
        }
        for (status, code) in [
            (401, "invalid_api_key"),
            (401, "missing_api_key"),
            (403, "subscription_required"),
        ] {
            assert_eq!(read(status, code).class, DomainClass::NeedsUser, "{code}");
        }
        assert_eq!(read(400, "invalid_request").class, DomainClass::Permanent);
    }

    #[test]
    fn when_a_read_answer_is_not_ssembles_own_should_retry_not_fail_the_job() {
        use crate::error::Endpoint;
        let backoff = crate::error::BackoffHint {
            attempt: 1,
            policy: crate::config::RetryPolicy::default(),
        };
        let html = |endpoint, status| ApiError::NonJson {
            endpoint,
            status,
            content_type: Some("text/html".into()),
            snippet: "<html>".into(),
            rate_limit: crate::rate_limit::RateLimitInfo::default(),
            backoff,
        };
        let e = upstream_error(&html(Endpoint::Status, 404), false);
        assert_eq!(
            (e.class, e.code.as_str()),
            (DomainClass::Retryable, "upstream_non_json")
        );
        let e = upstream_error(&html(Endpoint::Get, 502), false);
        assert_eq!(e.class, DomainClass::Retryable);
        assert_eq!(
            upstream_error(&html(Endpoint::Status, 403), false).class,
            DomainClass::NeedsUser
        );

        let unreadable = |endpoint| ApiError::Decode {
            endpoint,
            status: 200,
            source: serde_json::from_str::<u8>("x").unwrap_err(),
            rate_limit: crate::rate_limit::RateLimitInfo::default(),
        };
        let e = upstream_error(&unreadable(Endpoint::Get), false);
        assert_eq!(
            (e.class, e.code.as_str(), e.outcome_unknown),
            (DomainClass::Retryable, "upstream_unexpected_body", false)
        );
        let e = upstream_error(&unreadable(Endpoint::Create), true);
        assert_eq!((e.class, e.outcome_unknown), (DomainClass::Retryable, true));

        let config = upstream_error(&ApiError::Config("bad key".into()), false);
        assert_eq!(config.class, DomainClass::NeedsUser);
        let bad_id = upstream_error(
            &ApiError::InvalidRequestId(crate::model::RequestId::parse("nope").unwrap_err()),
            false,
        );
        assert_eq!(
            (bad_id.class, bad_id.code.as_str()),
            (DomainClass::Permanent, "invalid_request_id")
        );
    }

    #[test]
    fn when_a_status_is_mapped_should_wait_on_anything_not_terminal() {
        use RequestStatus as S;
        assert_eq!(progress(S::Queued, None), RenderProgress::Pending);
        assert_eq!(progress(S::Processing, None), RenderProgress::Pending);
        assert_eq!(
            progress(S::Unknown("rendering_v2".into()), None),
            RenderProgress::Pending
        );
        assert_eq!(progress(S::Completed, None), RenderProgress::Completed);
        assert_eq!(progress(S::Cancelled, None), RenderProgress::Cancelled);
        assert_eq!(
            progress(S::Failed, Some("Video download failed".into())),
            RenderProgress::Failed {
                reason: "Video download failed".into()
            }
        );
        for missing in [None, Some("  ".into())] {
            assert_eq!(
                progress(S::Failed, missing),
                RenderProgress::Failed {
                    reason: NO_FAILURE_REASON.into()
                }
            );
        }
    }

    #[test]
    fn when_a_short_failed_or_has_no_url_should_not_become_a_clip() {
        let short = |error: bool, url: Option<&str>| Short {
            id: "s".into(),
            title: None,
            description: None,
            reason: None,
            viral_score: Some(85.0),
            video_url: url.map(str::to_owned),
            start_timestamp: None,
            end_timestamp: None,
            duration: Some(40.0),
            width: None,
            height: None,
            sentence_indexes: Vec::new(),
            recompiling: false,
            error,
            error_message: None,
        };
        assert!(clip(&short(true, Some("https://cdn/s.mp4"))).is_none());
        assert!(clip(&short(false, None)).is_none());
        let ok = clip(&short(false, Some("https://cdn/s.mp4"))).unwrap();
        assert_eq!(ok.viral_score, Some(85.0));
        assert_eq!(ok.duration_secs, Some(40.0));
    }
}
