//! Typed failures of Ssemble calls. Every variant that came from a response carries that
//! response's [`RateLimitInfo`], so a caller can charge its budget on failures too.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::RetryPolicy;
use crate::model::{InvalidRequestId, open_enum};
use crate::rate_limit::{RateLimitInfo, parse_instant};

open_enum! {
    /// The `error.code` values the docs list, plus `user_not_found` seen in vendor code.
    ErrorCode {
        InvalidRequest => ["invalid_request"],
        InvalidYoutubeUrl => ["invalid_youtube_url"],
        VideoTooLong => ["video_too_long"],
        UrlValidationFailed => ["url_validation_failed"],
        MissingApiKey => ["missing_api_key"],
        InvalidApiKey => ["invalid_api_key"],
        SubscriptionRequired => ["subscription_required"],
        InsufficientCredits => ["insufficient_credits"],
        UserNotFound => ["user_not_found"],
        ResourceNotFound => ["resource_not_found"],
        RateLimitExceeded => ["rate_limit_exceeded"],
        InternalError => ["internal_error"],
    }
}

/// What a caller should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later (429, 5xx, `internal_error`, a proxy page, a connection never opened).
    Retryable,
    /// The request itself is wrong; repeating it cannot help.
    Permanent,
    /// The id does not exist (or is not ours, or was deleted).
    NotFound,
    /// Missing, malformed or revoked key: an operator must fix the configuration.
    Auth,
    /// No subscription or no credits: an operator must fix the account.
    Billing,
    /// The request was sent and the server may have acted on it; for a create, look before
    /// resubmitting ([`crate::SsembleClient::find_request`]).
    OutcomeUnknown,
}

/// Which signal produced a retry wait, most authoritative first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitSource {
    /// The `Retry-After` header.
    RetryAfterHeader,
    /// `error.details.retryAfter`.
    DetailsRetryAfter,
    /// `details.resetAt` or `X-RateLimit-Reset`, minus now.
    ResetAt,
    /// No hint: exponential backoff with jitter.
    Backoff,
}

/// A retry wait and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryWait {
    pub delay: Duration,
    pub source: WaitSource,
}

/// The endpoint a call went to, for errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Create,
    Status,
    Get,
    List,
    Delete,
    Templates,
}

impl Endpoint {
    /// Stable name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "POST /shorts/create",
            Self::Status => "GET /shorts/:id/status",
            Self::Get => "GET /shorts/:id",
            Self::List => "GET /shorts",
            Self::Delete => "DELETE /shorts/:id",
            Self::Templates => "GET /templates",
        }
    }

    /// Whether repeating the call has no side effect beyond budget. Delete counts: a second
    /// delete of the same id answers 404, which callers treat as done.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Self::Create)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Backoff state captured at failure time so `retry_after` can fall back to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffHint {
    /// 1-based attempt number that failed.
    pub attempt: u32,
    /// Policy in force.
    pub policy: RetryPolicy,
}

/// Every way a Ssemble call can fail. Never contains the API key or a webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with the documented `{"error":{code,message,details}}` envelope
    /// (or a JSON body without it, reported with code `unknown_error`).
    #[error("ssemble {endpoint} answered {status} {code}: {message}")]
    Api {
        endpoint: Endpoint,
        status: u16,
        code: ErrorCode,
        message: String,
        /// `null` when absent; shape undocumented, so kept raw.
        details: serde_json::Value,
        rate_limit: RateLimitInfo,
        backoff: BackoffHint,
    },
    /// A non-JSON body, e.g. a proxy's HTML 502.
    #[error("ssemble {endpoint} answered {status} with a non-JSON body ({content_type:?})")]
    NonJson {
        endpoint: Endpoint,
        status: u16,
        content_type: Option<String>,
        /// First bytes of the body, for diagnosis.
        snippet: String,
        rate_limit: RateLimitInfo,
        backoff: BackoffHint,
    },
    /// A success status whose body did not match the expected shape.
    #[error("ssemble {endpoint} answered {status} with an unexpected body: {source}")]
    Decode {
        endpoint: Endpoint,
        status: u16,
        #[source]
        source: serde_json::Error,
        rate_limit: RateLimitInfo,
    },
    /// The connection could not be established: the server never saw the request.
    #[error("ssemble {endpoint} not sent: {source}")]
    NotSent {
        endpoint: Endpoint,
        #[source]
        source: reqwest::Error,
        backoff: BackoffHint,
    },
    /// The request left this process but no complete response came back (timeout, reset,
    /// truncated body): the server may have acted on it.
    #[error("ssemble {endpoint} outcome unknown: {source}")]
    OutcomeUnknown {
        endpoint: Endpoint,
        /// Status line, when headers arrived before the body failed.
        status: Option<u16>,
        #[source]
        source: reqwest::Error,
        rate_limit: RateLimitInfo,
        backoff: BackoffHint,
    },
    /// Rejected client-side: not a 24-hex id; no request was made.
    #[error(transparent)]
    InvalidRequestId(#[from] InvalidRequestId),
    /// The client could not be built (bad base URL, TLS setup).
    #[error("invalid ssemble client configuration: {0}")]
    Config(String),
}

impl ApiError {
    /// HTTP status, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. }
            | Self::NonJson { status, .. }
            | Self::Decode { status, .. } => Some(*status),
            Self::OutcomeUnknown { status, .. } => *status,
            _ => None,
        }
    }

    /// The API error code, when the body carried one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Rate-limit headers of the failed response (empty if none arrived).
    pub fn rate_limit(&self) -> Option<&RateLimitInfo> {
        match self {
            Self::Api { rate_limit, .. }
            | Self::NonJson { rate_limit, .. }
            | Self::Decode { rate_limit, .. }
            | Self::OutcomeUnknown { rate_limit, .. } => Some(rate_limit),
            _ => None,
        }
    }

    /// The endpoint that failed, if a call was attempted.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Self::Api { endpoint, .. }
            | Self::NonJson { endpoint, .. }
            | Self::Decode { endpoint, .. }
            | Self::NotSent { endpoint, .. }
            | Self::OutcomeUnknown { endpoint, .. } => Some(*endpoint),
            _ => None,
        }
    }

    /// Classification for callers' retry/park/alert decisions.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api { status, code, .. } => classify(*status, code),
            Self::NonJson { status, .. } => {
                if *status >= 500 || *status == 429 {
                    ErrorClass::Retryable
                } else if *status == 401 || *status == 403 {
                    ErrorClass::Auth
                } else {
                    ErrorClass::Permanent
                }
            }
            // A 2xx we cannot read: for a create the server acted and the caller must look it
            // up; for a read it is contract drift that repeating will not fix.
            Self::Decode { endpoint, .. } => {
                if endpoint.is_idempotent() {
                    ErrorClass::Permanent
                } else {
                    ErrorClass::OutcomeUnknown
                }
            }
            // Lost responses: harmless to repeat a read, never a create.
            Self::OutcomeUnknown { endpoint, .. } => {
                if endpoint.is_idempotent() {
                    ErrorClass::Retryable
                } else {
                    ErrorClass::OutcomeUnknown
                }
            }
            Self::NotSent { .. } => ErrorClass::Retryable,
            Self::InvalidRequestId(_) | Self::Config(_) => ErrorClass::Permanent,
        }
    }

    /// True when a non-idempotent call (create, delete) may have taken effect: any answer
    /// that was not a definite refusal. A 429 or a 4xx is definite; a 5xx is not (the docs say
    /// a 500 on delete "may or may not have been deleted").
    pub fn may_have_taken_effect(&self) -> bool {
        match self {
            Self::OutcomeUnknown { .. } | Self::Decode { .. } => true,
            Self::Api { status, .. } | Self::NonJson { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// How long to wait before retrying, or `None` if retrying cannot help.
    pub fn retry_after(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.retry_wait(now).map(|w| w.delay)
    }

    /// Like [`Self::retry_after`], also saying which signal decided: `Retry-After` header,
    /// else `details.retryAfter`, else `details.resetAt` − now, else (429 with an exhausted or
    /// unknown account bucket only) `X-RateLimit-Reset` − now, else exponential backoff with
    /// jitter.
    pub fn retry_wait(&self, now: DateTime<Utc>) -> Option<RetryWait> {
        if self.class() != ErrorClass::Retryable {
            return None;
        }
        let (rate_limit, details, backoff) = match self {
            Self::Api {
                rate_limit,
                details,
                backoff,
                ..
            } => (Some(rate_limit), Some(details), *backoff),
            Self::NonJson {
                rate_limit,
                backoff,
                ..
            } => (Some(rate_limit), None, *backoff),
            Self::OutcomeUnknown {
                rate_limit,
                backoff,
                ..
            } => (Some(rate_limit), None, *backoff),
            Self::NotSent { backoff, .. } => (None, None, *backoff),
            _ => return None,
        };
        if let Some(d) = rate_limit.and_then(|r| r.retry_after) {
            return Some(RetryWait {
                delay: d,
                source: WaitSource::RetryAfterHeader,
            });
        }
        if let Some(secs) = details
            .and_then(|d| d.get("retryAfter"))
            .and_then(serde_json::Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
        {
            return Some(RetryWait {
                delay: Duration::from_secs_f64(secs),
                source: WaitSource::DetailsRetryAfter,
            });
        }
        // `X-RateLimit-Reset` is on every response and describes the account buckets, so it
        // only explains a 429 whose buckets are exhausted (or unknown); for a 5xx, or a 429
        // from a per-minute pool, it would mean waiting up to an hour for nothing.
        let header_reset = rate_limit
            .filter(|r| {
                self.status() == Some(429)
                    && (r.remaining_hour.is_none_or(|n| n == 0)
                        || r.remaining_day.is_some_and(|n| n == 0))
            })
            .and_then(|r| r.reset);
        let reset = details
            .and_then(|d| d.get("resetAt"))
            .and_then(serde_json::Value::as_str)
            .and_then(parse_instant)
            .or(header_reset);
        if let Some(at) = reset {
            return Some(RetryWait {
                delay: (at - now).to_std().unwrap_or(Duration::ZERO),
                source: WaitSource::ResetAt,
            });
        }
        Some(RetryWait {
            delay: backoff.policy.backoff(backoff.attempt),
            source: WaitSource::Backoff,
        })
    }
}

fn classify(status: u16, code: &ErrorCode) -> ErrorClass {
    match code {
        ErrorCode::RateLimitExceeded | ErrorCode::InternalError => ErrorClass::Retryable,
        ErrorCode::MissingApiKey | ErrorCode::InvalidApiKey | ErrorCode::UserNotFound => {
            ErrorClass::Auth
        }
        ErrorCode::SubscriptionRequired | ErrorCode::InsufficientCredits => ErrorClass::Billing,
        ErrorCode::ResourceNotFound => ErrorClass::NotFound,
        ErrorCode::InvalidRequest
        | ErrorCode::InvalidYoutubeUrl
        | ErrorCode::VideoTooLong
        | ErrorCode::UrlValidationFailed => ErrorClass::Permanent,
        ErrorCode::Unknown(_) => match status {
            429 | 500..=599 => ErrorClass::Retryable,
            401 => ErrorClass::Auth,
            403 => ErrorClass::Billing,
            404 => ErrorClass::NotFound,
            _ => ErrorClass::Permanent,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, details: serde_json::Value, rl: RateLimitInfo) -> ApiError {
        ApiError::Api {
            endpoint: Endpoint::Status,
            status,
            code: ErrorCode::from_wire(code),
            message: String::new(),
            details,
            rate_limit: rl,
            backoff: BackoffHint {
                attempt: 1,
                policy: RetryPolicy::default(),
            },
        }
    }

    #[test]
    fn when_codes_classified_should_follow_documented_semantics() {
        let n = serde_json::Value::Null;
        let rl = RateLimitInfo::default;
        assert_eq!(
            api(429, "rate_limit_exceeded", n.clone(), rl()).class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            api(500, "internal_error", n.clone(), rl()).class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            api(503, "weird", n.clone(), rl()).class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            api(400, "video_too_long", n.clone(), rl()).class(),
            ErrorClass::Permanent
        );
        assert_eq!(
            api(401, "missing_api_key", n.clone(), rl()).class(),
            ErrorClass::Auth
        );
        assert_eq!(
            api(403, "insufficient_credits", n.clone(), rl()).class(),
            ErrorClass::Billing
        );
        assert_eq!(
            api(404, "resource_not_found", n.clone(), rl()).class(),
            ErrorClass::NotFound
        );
        assert!(api(500, "internal_error", n.clone(), rl()).may_have_taken_effect());
        assert!(!api(429, "rate_limit_exceeded", n.clone(), rl()).may_have_taken_effect());
        assert_eq!(
            api(400, "invalid_request", n, rl()).retry_after(Utc::now()),
            None
        );
    }

    #[test]
    fn when_hints_present_should_prefer_header_then_details_then_reset_then_backoff() {
        let now = DateTime::parse_from_rfc3339("2026-03-30T12:59:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let reset = DateTime::parse_from_rfc3339("2026-03-30T13:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let full = RateLimitInfo {
            retry_after: Some(Duration::from_secs(37)),
            reset: Some(reset),
            ..RateLimitInfo::default()
        };
        let details = serde_json::json!({"retryAfter": 12, "resetAt": "2026-03-30T12:59:30Z"});
        let w = api(429, "rate_limit_exceeded", details.clone(), full.clone())
            .retry_wait(now)
            .unwrap();
        assert_eq!(
            (w.delay, w.source),
            (Duration::from_secs(37), WaitSource::RetryAfterHeader)
        );

        let no_header = RateLimitInfo {
            retry_after: None,
            ..full
        };
        let w = api(429, "rate_limit_exceeded", details, no_header.clone())
            .retry_wait(now)
            .unwrap();
        assert_eq!(
            (w.delay, w.source),
            (Duration::from_secs(12), WaitSource::DetailsRetryAfter)
        );

        let w = api(
            429,
            "rate_limit_exceeded",
            serde_json::json!({"resetAt": "2026-03-30T12:59:30Z"}),
            no_header.clone(),
        )
        .retry_wait(now)
        .unwrap();
        assert_eq!(
            (w.delay, w.source),
            (Duration::from_secs(30), WaitSource::ResetAt)
        );

        let w = api(
            429,
            "rate_limit_exceeded",
            serde_json::Value::Null,
            no_header,
        )
        .retry_wait(now)
        .unwrap();
        assert_eq!(
            (w.delay, w.source),
            (Duration::from_secs(60), WaitSource::ResetAt)
        );

        let w = api(
            503,
            "internal_error",
            serde_json::Value::Null,
            RateLimitInfo::default(),
        )
        .retry_wait(now)
        .unwrap();
        assert_eq!(w.source, WaitSource::Backoff);
        assert!(w.delay <= RetryPolicy::default().base_delay);
    }
}
