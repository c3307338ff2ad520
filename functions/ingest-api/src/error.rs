//! Every refusal as the documented envelope and status. Domain errors are mapped here, once: the
//! adapter decides no outcome, only how a use case's answer reads over HTTP. No message tells a
//! client to send again something that could post twice.

use lambda_http::{Body, Response};
use serde_json::json;
use thiserror::Error;

use reelay_domain::ports::StoreError;
use reelay_domain::usecase::{AccountError, CommandError, CreateError, OutboundError};
use reelay_domain::{ErrorEnvelope, FieldError, TransitionError, UtcTime};

use crate::routes::RouteError;

#[derive(Debug, Error)]
pub(crate) enum ApiError {
    #[error("authentication required")]
    Unauthenticated,
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("body too large")]
    TooLarge(usize),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("job not found")]
    JobNotFound,
    #[error("account not found")]
    AccountNotFound,
    #[error("OAuth is not configured")]
    OAuthNotConfigured,
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error("the tenant's API rate limit is reached")]
    ApiRateLimited(reelay_domain::usecase::RateStatus),
}

/// A refusal as it goes out: status, envelope and, for waits, the seconds to wait.
struct Refusal {
    status: u16,
    envelope: ErrorEnvelope,
    retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            envelope: ErrorEnvelope::new(code, message),
            retry_after: None,
        }
    }

    fn details(mut self, details: serde_json::Value) -> Self {
        self.envelope = self.envelope.with_details(details);
        self
    }
}

impl ApiError {
    pub(crate) fn field(name: &str, message: &str) -> FieldError {
        FieldError {
            field: name.into(),
            message: message.into(),
        }
    }

    /// The `error.code` an account refusal answers with (for a redirect that carries it).
    pub(crate) fn account_code(e: &AccountError) -> String {
        account_refusal(e, UtcTime::from_secs(0))
            .envelope
            .error
            .code
    }

    /// The status and envelope this refusal answers with (a batch item's answer).
    pub(crate) fn status_and_envelope(&self, now: UtcTime) -> (u16, ErrorEnvelope) {
        let refusal = self.refusal(now);
        (refusal.status, refusal.envelope)
    }

    /// The answer: `now` turns an absolute wait into a `Retry-After`.
    pub(crate) fn into_response(self, now: UtcTime) -> Response<Body> {
        let refusal = self.refusal(now);
        if refusal.status >= 500 {
            tracing::error!(error.code = %refusal.envelope.error.code, status = refusal.status,
                error.message = %self, error.cause_chain = ?self, "request failed");
        } else {
            tracing::info!(error.code = %refusal.envelope.error.code, status = refusal.status,
                "request refused");
        }
        let mut builder = Response::builder()
            .status(refusal.status)
            .header("content-type", "application/json");
        if let Some(secs) = refusal.retry_after {
            builder = builder.header("retry-after", secs.to_string());
        }
        let body = serde_json::to_string(&refusal.envelope).unwrap_or_default();
        builder
            .body(Body::Text(body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }

    fn refusal(&self, now: UtcTime) -> Refusal {
        match self {
            Self::Unauthenticated => Refusal::new(
                401,
                "unauthenticated",
                "Send your API key as 'Authorization: Bearer <key>' or 'X-Api-Key'",
            ),
            Self::Route(RouteError::NoRoute) => Refusal::new(404, "not_found", "No such route"),
            Self::Route(RouteError::MethodNotAllowed) => Refusal::new(
                405,
                "method_not_allowed",
                "This route does not accept that method",
            ),
            Self::TooLarge(max) => {
                Refusal::new(413, "body_too_large", "The request body is too large")
                    .details(json!({ "maxBytes": max }))
            }
            Self::UnsupportedMediaType => Refusal::new(
                415,
                "unsupported_media_type",
                "Send the body as application/json",
            ),
            Self::Malformed(why) => {
                Refusal::new(400, "malformed_json", "The body is not valid UTF-8 JSON")
                    .details(json!({ "reason": why }))
            }
            Self::Invalid(fields) => Refusal {
                status: 400,
                envelope: ErrorEnvelope::validation(fields.clone()),
                retry_after: None,
            },
            Self::JobNotFound => job_not_found(),
            Self::AccountNotFound => account_not_found(),
            Self::OAuthNotConfigured => Refusal::new(
                503,
                "oauth_not_configured",
                "No OAuth callback URL: set PUBLIC_BASE_URL, or call through API Gateway, whose domain is the callback's",
            ),
            Self::Create(e) => create_refusal(e),
            Self::Command(CommandError::NotFound) => job_not_found(),
            Self::Command(CommandError::Invalid(fields)) => Refusal {
                status: 400,
                envelope: ErrorEnvelope::validation(fields.clone()),
                retry_after: None,
            },
            Self::Command(CommandError::Refused(e)) => transition_refusal(e),
            Self::Command(CommandError::Store(e)) | Self::Store(e) => store_refusal(e),
            Self::Account(e) => account_refusal(e, now),
            Self::Outbound(e) => outbound_refusal(e),
            Self::ApiRateLimited(status) => {
                Refusal {
                    retry_after: Some(seconds_until(status.reset_at, now)),
                    ..Refusal::new(
                        429,
                        "api_rate_limited",
                        "Your tenant's API request budget is spent for now; send again after Retry-After seconds",
                    )
                    .details(json!({ "limit": status.limit, "retryAfter": status.reset_at.to_rfc3339() }))
                }
            }
        }
    }
}

/// Whole seconds from `now` until `at`, at least 1 (`Retry-After`, `X-RateLimit-Reset`).
pub(crate) fn seconds_until(at: UtcTime, now: UtcTime) -> u64 {
    u64::try_from(at.as_secs().saturating_sub(now.as_secs()))
        .unwrap_or(0)
        .max(1)
}

fn outbound_refusal(e: &OutboundError) -> Refusal {
    match e {
        OutboundError::Invalid(fields) => Refusal {
            status: 400,
            envelope: ErrorEnvelope::validation(fields.clone()),
            retry_after: None,
        },
        OutboundError::NotFound(_) => Refusal::new(
            404,
            "webhook_not_found",
            "No webhook endpoint with this id belongs to your tenant",
        ),
        OutboundError::TooMany => Refusal::new(
            409,
            "too_many_webhooks",
            "The tenant has the most webhook endpoints allowed; delete one first",
        )
        .details(json!({ "max": reelay_domain::webhooks::MAX_ENDPOINTS_PER_TENANT })),
        OutboundError::Store(e) => store_refusal(e),
        OutboundError::Queue(_) => Refusal::new(
            503,
            "unavailable",
            "The delivery queue is unavailable; retry later",
        ),
    }
}

fn job_not_found() -> Refusal {
    Refusal::new(
        404,
        "job_not_found",
        "No job with this id belongs to your tenant",
    )
}

fn account_not_found() -> Refusal {
    Refusal::new(
        404,
        "account_not_found",
        "No TikTok account with this id belongs to your tenant",
    )
}

fn store_refusal(e: &StoreError) -> Refusal {
    match e {
        // Lost every race: nothing was changed, and the use case decides again on a resend.
        StoreError::Conflict => Refusal::new(
            409,
            "conflict",
            "The item changed concurrently and nothing was changed; send the request again",
        ),
        StoreError::NotFound => job_not_found(),
        StoreError::InvalidCursor => Refusal::new(
            400,
            "invalid_cursor",
            "The cursor was not issued by this API",
        ),
        StoreError::Unavailable(_) | StoreError::Corrupt(_) => {
            Refusal::new(503, "unavailable", "Storage is unavailable; retry later")
        }
    }
}

fn create_refusal(e: &CreateError) -> Refusal {
    match e {
        CreateError::KeyRequired => Refusal::new(
            400,
            "idempotency_key_required",
            "Send an Idempotency-Key header (or idempotencyKey) so a retry can never create a second job",
        ),
        CreateError::UnknownAccount(id) => Refusal::new(
            422,
            "unknown_account",
            "The TikTok account is not connected to your tenant",
        )
        .details(json!({ "tiktokAccountId": id.as_str() })),
        CreateError::DirectPostNotAuthorized(id) => Refusal::new(
            422,
            "direct_post_not_authorized",
            "The creator connected this account for drafts only (no video.publish): send the post with mode 'draft', or connect the account again with mode 'direct'",
        )
        .details(json!({ "tiktokAccountId": id.as_str(), "field": "post.mode", "requiredScope": reelay_domain::account::DIRECT_POST_SCOPE })),
        CreateError::AccountDisconnected(id) => Refusal::new(
            422,
            "account_disconnected",
            "The account was disconnected; connect it again before creating jobs for it",
        )
        .details(json!({ "tiktokAccountId": id.as_str() })),
        CreateError::UnknownRender(id) => Refusal::new(
            404,
            "render_not_found",
            "No render with this requestId belongs to your tenant",
        )
        .details(json!({ "requestId": id.as_str() })),
        CreateError::KeyReused => Refusal::new(
            409,
            "idempotency_key_reused",
            "This idempotency key was used with a different request body",
        ),
        CreateError::KeyInProgress { retry_after } => {
            let secs = retry_after.as_secs().max(1);
            Refusal {
                retry_after: Some(secs),
                ..Refusal::new(
                    409,
                    "idempotency_key_in_progress",
                    "A request with this idempotency key is still being processed",
                )
                .details(json!({ "retryAfter": secs }))
            }
        }
        CreateError::JobExists => {
            Refusal::new(409, "job_exists", "A job with this jobId already exists")
        }
        CreateError::Store(e) => store_refusal(e),
    }
}

/// The lifecycle table's refusals of an owner's command.
fn transition_refusal(e: &TransitionError) -> Refusal {
    match e {
        TransitionError::NotCancellable { state } => Refusal::new(
            409,
            "not_cancellable",
            "The job is already publishing or finished and can no longer be cancelled",
        )
        .details(json!({ "state": state })),
        TransitionError::NotRetryable { state } => Refusal::new(
            409,
            "not_retryable",
            "Only failed jobs and jobs whose publish outcome is unknown can be retried",
        )
        .details(json!({ "state": state })),
        TransitionError::RetryCouldDuplicate { why } => Refusal::new(
            409,
            "retry_could_duplicate",
            "Not retried: TikTok may still post this job's earlier attempt, so a retry now could \
             post twice. Wait until the job's hold says needs_operator, check the creator's \
             profile for the post, and retry only if it is not there",
        )
        .details(json!({ "reason": why })),
        TransitionError::AttemptInFlight { until } => Refusal::new(
            409,
            "attempt_in_flight",
            "An attempt of this job is in flight; look at the job again after it ends",
        )
        .details(json!({ "until": until.to_rfc3339() })),
        TransitionError::NotAmendable { state } => Refusal::new(
            409,
            "not_amendable",
            "The job has started publishing or finished; its schedule and caption can no longer be changed",
        )
        .details(json!({ "state": state })),
        TransitionError::Illegal { state, .. } => Refusal::new(
            409,
            "invalid_state",
            "The job is not in a state that allows this",
        )
        .details(json!({ "state": state })),
    }
}

fn account_refusal(e: &AccountError, now: UtcTime) -> Refusal {
    match e {
        AccountError::NotFound => account_not_found(),
        AccountError::Conflict => Refusal::new(
            409,
            "conflict",
            "The account changed concurrently and nothing was changed; send the request again",
        ),
        AccountError::OAuthState => Refusal::new(
            400,
            "invalid_oauth_state",
            "The authorisation link is unknown, used or expired; start the connection again",
        ),
        AccountError::OAuthDenied(code) => {
            Refusal::new(400, "oauth_denied", "The creator did not authorise the app")
                .details(json!({ "oauthError": code }))
        }
        AccountError::OtherCreator => Refusal::new(
            409,
            "creator_mismatch",
            "This account is connected to another TikTok creator; connect this creator as a new account id",
        ),
        AccountError::CreatorTaken => Refusal::new(
            409,
            "creator_already_connected",
            "This TikTok creator is already connected as another account",
        ),
        AccountError::NotConnected(_) => Refusal::new(
            409,
            "account_not_connected",
            "The account has no valid TikTok authorisation; connect it again",
        ),
        AccountError::Throttled { retry_at } => Refusal {
            retry_after: Some(seconds_until(*retry_at, now)),
            ..Refusal::new(
                429,
                "rate_limit_exceeded",
                "Per-account posting throttle reached",
            )
            .details(json!({ "retryAfter": retry_at.to_rfc3339() }))
        },
        AccountError::Upstream { code, message } => {
            Refusal::new(502, "upstream_error", "TikTok refused the request")
                .details(json!({ "upstreamCode": code, "upstreamMessage": message }))
        }
        AccountError::Secrets(_) => Refusal::new(
            503,
            "unavailable",
            "The secrets store is unavailable; retry later",
        ),
        AccountError::Store(e) => store_refusal(e),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reelay_domain::JobState;

    use super::*;

    fn refused(e: TransitionError) -> Refusal {
        ApiError::Command(CommandError::Refused(e)).refusal(UtcTime::from_secs(0))
    }

    #[test]
    fn a_creator_refusal_is_a_409_that_names_no_other_account() {
        for (e, code) in [
            (AccountError::OtherCreator, "creator_mismatch"),
            (AccountError::CreatorTaken, "creator_already_connected"),
        ] {
            let r = ApiError::Account(e).refusal(UtcTime::from_secs(0));
            assert_eq!((r.status, r.envelope.error.code.as_str()), (409, code));
            assert!(
                r.envelope.error.details.is_null(),
                "another tenant's account stays unnamed"
            );
        }
    }

    #[test]
    fn every_transition_refusal_is_a_409_with_its_own_code() {
        let at = UtcTime::from_secs(1_800_000_000);
        let cases = [
            (
                TransitionError::NotCancellable {
                    state: JobState::Publishing,
                },
                "not_cancellable",
            ),
            (
                TransitionError::NotRetryable {
                    state: JobState::Cancelled,
                },
                "not_retryable",
            ),
            (
                TransitionError::RetryCouldDuplicate { why: "TikTok may" },
                "retry_could_duplicate",
            ),
            (
                TransitionError::AttemptInFlight { until: at },
                "attempt_in_flight",
            ),
            (
                TransitionError::NotAmendable {
                    state: JobState::Publishing,
                },
                "not_amendable",
            ),
            (
                TransitionError::Illegal {
                    state: JobState::Ready,
                    event: "x",
                },
                "invalid_state",
            ),
        ];
        for (error, code) in cases {
            let r = refused(error);
            assert_eq!((r.status, r.envelope.error.code.as_str()), (409, code));
            assert_eq!(r.retry_after, None, "{code}: no Retry-After on a command");
        }
        let in_flight = refused(TransitionError::AttemptInFlight { until: at });
        assert_eq!(in_flight.envelope.error.details["until"], at.to_rfc3339());
    }

    #[test]
    fn a_retry_that_could_post_twice_is_never_answered_as_something_to_resend() {
        let r = refused(TransitionError::RetryCouldDuplicate {
            why: "the init may have reached TikTok",
        });
        let message = r.envelope.error.message.to_lowercase();
        for invitation in ["retry later", "try again", "send the request again"] {
            assert!(!message.contains(invitation), "{message}");
        }
        assert!(message.contains("needs_operator") && message.contains("profile"));
        assert_eq!(
            r.envelope.error.details["reason"],
            "the init may have reached TikTok"
        );
    }

    #[test]
    fn waits_carry_a_retry_after_in_whole_seconds() {
        let now = UtcTime::from_secs(1_000);
        let throttled = ApiError::Account(AccountError::Throttled {
            retry_at: UtcTime::from_secs(1_090),
        })
        .refusal(now);
        assert_eq!((throttled.status, throttled.retry_after), (429, Some(90)));
        let past = ApiError::Account(AccountError::Throttled {
            retry_at: UtcTime::from_secs(10),
        })
        .refusal(now);
        assert_eq!(past.retry_after, Some(1), "never 0 or negative");
        let in_progress = ApiError::Create(CreateError::KeyInProgress {
            retry_after: Duration::from_millis(200),
        })
        .refusal(now);
        assert_eq!(
            (in_progress.status, in_progress.retry_after),
            (409, Some(1))
        );
    }

    #[test]
    fn store_failures_are_unavailable_and_lost_races_a_conflict() {
        let now = UtcTime::from_secs(0);
        let down = ApiError::Store(StoreError::Unavailable("down".into())).refusal(now);
        assert_eq!(
            (down.status, down.envelope.error.code.as_str()),
            (503, "unavailable")
        );
        assert!(
            !down.envelope.error.message.contains("down"),
            "no internals"
        );
        let raced = ApiError::Command(CommandError::Store(StoreError::Conflict)).refusal(now);
        assert_eq!(
            (raced.status, raced.envelope.error.code.as_str()),
            (409, "conflict")
        );
    }
}
