use crate::{chunk::ChunkPlanError, source::SourceError, upload::UploadError};

/// What a caller should do about a failed call. Chosen from `error.code` alone, see [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient: retry later with backoff (never an init whose outcome is unknown).
    Retryable,
    /// The access token is invalid or expired: refresh it, then retry once.
    RefreshThenRetry,
    /// The creator must act (re-authorise, grant scopes, pick another privacy level).
    NeedsUser,
    /// A rolling 24-hour cap: retry after the window moves.
    WaitForWindow,
    /// Retrying the same request cannot succeed.
    Permanent,
}

/// The single classification table: Content Posting `error.code` values, OAuth `error` values and the
/// status/webhook `fail_reason` values (§3.2; a FAILED publish is terminal, so `Retryable` there means a
/// new init is safe).
///
/// Unknown codes are `Permanent`: never retried automatically, so an unfamiliar rejection costs a visible
/// failure carrying its code and log id rather than a burst of repeated calls.
pub fn classify(code: &str) -> ErrorClass {
    use ErrorClass::*;
    match code {
        "rate_limit_exceeded"
        | "internal_error"
        | "server_error"
        | "temporarily_unavailable"
        | "internal"
        | "video_pull_failed"
        | "photo_pull_failed" => Retryable,
        "access_token_invalid" => RefreshThenRetry,
        "auth_removed" => NeedsUser,
        "scope_not_authorized"
        | "scope_permission_missed"
        | "privacy_level_option_mismatch"
        | "app_version_check_failed"
        | "invalid_grant"
        | "access_denied" => NeedsUser,
        "spam_risk_too_many_posts"
        | "spam_risk_too_many_pending_share"
        | "reached_active_user_cap" => WaitForWindow,
        "spam_risk_user_banned_from_posting"
        | "unaudited_client_can_only_post_to_private_accounts"
        | "url_ownership_unverified"
        | "invalid_param"
        | "invalid_params"
        | "invalid_file_upload"
        | "invalid_publish_id"
        | "token_not_authorized_for_specified_publish_id"
        | "publish_not_cancellable"
        | "invalid_client"
        | "invalid_request"
        | "invalid_scope"
        | "unauthorized_client"
        | "unsupported_grant_type"
        | "unsupported_response_type"
        | "file_format_check_failed"
        | "duration_check_failed"
        | "frame_rate_check_failed"
        | "picture_size_check_failed"
        | "publish_cancelled"
        | "spam_risk_text"
        | "spam_risk" => Permanent,
        _ => Permanent,
    }
}

/// Whether `code` is one [`classify`] knows by name.
pub fn is_known_code(code: &str) -> bool {
    const KNOWN: &[&str] = &[
        "ok",
        "rate_limit_exceeded",
        "internal_error",
        "server_error",
        "temporarily_unavailable",
        "access_token_invalid",
        "scope_not_authorized",
        "scope_permission_missed",
        "privacy_level_option_mismatch",
        "app_version_check_failed",
        "invalid_grant",
        "access_denied",
        "spam_risk_too_many_posts",
        "spam_risk_too_many_pending_share",
        "reached_active_user_cap",
        "spam_risk_user_banned_from_posting",
        "unaudited_client_can_only_post_to_private_accounts",
        "url_ownership_unverified",
        "invalid_param",
        "invalid_params",
        "invalid_file_upload",
        "invalid_publish_id",
        "token_not_authorized_for_specified_publish_id",
        "publish_not_cancellable",
        "invalid_client",
        "invalid_request",
        "invalid_scope",
        "unauthorized_client",
        "unsupported_grant_type",
        "unsupported_response_type",
        "internal",
        "video_pull_failed",
        "photo_pull_failed",
        "auth_removed",
        "file_format_check_failed",
        "duration_check_failed",
        "frame_rate_check_failed",
        "picture_size_check_failed",
        "publish_cancelled",
        "spam_risk_text",
        "spam_risk",
    ];
    KNOWN.contains(&code)
}

/// [`classify`], except that an *unknown* code that came with HTTP 429 or 5xx is `Retryable`.
/// Known codes are never overridden by the status.
pub fn classify_response(code: &str, http_status: u16) -> ErrorClass {
    if !is_known_code(code) && (http_status == 429 || http_status >= 500) {
        return ErrorClass::Retryable;
    }
    classify(code)
}

/// Every failure of a TikTok call. Secrets never appear in any variant.
#[derive(Debug, thiserror::Error)]
pub enum TikTokError {
    /// TikTok answered with a non-`ok` `error.code` (whatever the HTTP status).
    #[error("{endpoint}: TikTok error `{code}` (HTTP {http_status}, log_id {log_id:?}): {message}")]
    Api {
        endpoint: &'static str,
        code: String,
        message: String,
        log_id: Option<String>,
        class: ErrorClass,
        http_status: u16,
    },
    /// The OAuth endpoints' flat `{error, error_description, log_id}` shape (may arrive with HTTP 200).
    #[error(
        "{endpoint}: OAuth error `{error}` (HTTP {http_status}, log_id {log_id:?}): {description}"
    )]
    OAuth {
        endpoint: &'static str,
        error: String,
        description: String,
        log_id: Option<String>,
        class: ErrorClass,
        http_status: u16,
    },
    /// The request never reached TikTok (connect failure, DNS, TLS): safe to retry, even an init.
    #[error("{endpoint}: request not sent: {source}")]
    NotSent {
        endpoint: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The request may have been processed (timeout or reset after sending). Do not repeat an init
    /// blindly: reconcile first.
    #[error("{endpoint}: outcome unknown: {source}")]
    OutcomeUnknown {
        endpoint: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A response arrived but could not be understood; the call's effect is unknown.
    #[error("{endpoint}: undecodable response (HTTP {http_status}, log_id {log_id:?}): {detail}")]
    Decode {
        endpoint: &'static str,
        http_status: u16,
        log_id: Option<String>,
        detail: String,
    },
    #[error(transparent)]
    ChunkPlan(#[from] ChunkPlanError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The caller's [`crate::Deadline`] came first; nothing was sent after it. `request_cut`: a
    /// request in flight was cut off by it and may have taken effect.
    #[error("{stage}: the caller's deadline passed{}", cut_note(.request_cut))]
    DeadlineExceeded {
        stage: &'static str,
        request_cut: bool,
    },
}

fn cut_note(cut: &bool) -> &'static str {
    if *cut {
        " while a request was in flight (it may have taken effect)"
    } else {
        ""
    }
}

impl TikTokError {
    /// True when the request may have taken effect upstream although no answer was understood.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(
            self,
            Self::OutcomeUnknown { .. }
                | Self::Decode { .. }
                | Self::DeadlineExceeded {
                    request_cut: true,
                    ..
                }
        )
    }

    /// The class for API and OAuth errors; `NotSent` and a passed deadline are `Retryable` (a later
    /// invocation has time again). `None` where the outcome is unknown or the failure is local: the
    /// caller must reconcile or inspect the variant.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            Self::Api { class, .. } | Self::OAuth { class, .. } => Some(*class),
            Self::NotSent { .. } | Self::DeadlineExceeded { .. } => Some(ErrorClass::Retryable),
            _ => None,
        }
    }

    /// The upstream `error.code` / OAuth `error`, when TikTok gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            Self::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }

    /// TikTok's log id (body `log_id`, else the `x-tt-logid` header), to store with the job.
    pub fn log_id(&self) -> Option<&str> {
        match self {
            Self::Api { log_id, .. } | Self::OAuth { log_id, .. } | Self::Decode { log_id, .. } => {
                log_id.as_deref()
            }
            Self::Upload(e) => e.log_id(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_classifying_every_documented_code_should_follow_the_table() {
        use ErrorClass::*;
        let table = [
            ("invalid_params", Permanent),
            ("invalid_param", Permanent),
            ("invalid_file_upload", Permanent),
            ("scope_permission_missed", NeedsUser),
            ("app_version_check_failed", NeedsUser),
            ("invalid_publish_id", Permanent),
            ("token_not_authorized_for_specified_publish_id", Permanent),
            ("publish_not_cancellable", Permanent),
            ("access_token_invalid", RefreshThenRetry),
            ("scope_not_authorized", NeedsUser),
            ("spam_risk_too_many_posts", WaitForWindow),
            ("spam_risk_user_banned_from_posting", Permanent),
            ("spam_risk_too_many_pending_share", WaitForWindow),
            ("reached_active_user_cap", WaitForWindow),
            (
                "unaudited_client_can_only_post_to_private_accounts",
                Permanent,
            ),
            ("url_ownership_unverified", Permanent),
            ("privacy_level_option_mismatch", NeedsUser),
            ("rate_limit_exceeded", Retryable),
            ("internal_error", Retryable),
            ("invalid_grant", NeedsUser),
            ("access_denied", NeedsUser),
            ("invalid_client", Permanent),
            ("server_error", Retryable),
            ("temporarily_unavailable", Retryable),
            ("internal", Retryable),
            ("video_pull_failed", Retryable),
            ("photo_pull_failed", Retryable),
            ("auth_removed", NeedsUser),
            ("file_format_check_failed", Permanent),
            ("duration_check_failed", Permanent),
            ("frame_rate_check_failed", Permanent),
            ("picture_size_check_failed", Permanent),
            ("publish_cancelled", Permanent),
            ("spam_risk_text", Permanent),
            ("spam_risk", Permanent),
        ];
        for (code, class) in table {
            assert_eq!(classify(code), class, "{code}");
            assert!(is_known_code(code), "{code}");
            for status in [200, 400, 403, 429, 500, 503] {
                assert_eq!(
                    classify_response(code, status),
                    class,
                    "{code} must not follow HTTP {status}"
                );
            }
        }
    }

    #[test]
    fn when_code_is_unknown_should_be_permanent_unless_the_status_is_429_or_5xx() {
        assert_eq!(classify("something_new"), ErrorClass::Permanent);
        assert_eq!(
            classify_response("something_new", 400),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify_response("something_new", 200),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify_response("something_new", 429),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify_response("something_new", 502),
            ErrorClass::Retryable
        );
    }
}
