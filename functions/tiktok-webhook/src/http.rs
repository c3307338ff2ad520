//! The webhook's HTTP side: TikTok's events decoded into the domain's, and every answer.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use reelay_domain::PublishStatus;
use reelay_domain::ports::StoreError;
use reelay_domain::usecase::{ObserveOutcome, Observed};
use reelay_domain::{ErrorEnvelope, JobState};
use reelay_tiktok::{SignatureError, WebhookEvent};
use serde_json::json;

/// A verified delivery, as the domain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Publish {
        publish_id: String,
        what: Observed,
    },
    AuthorizationRemoved {
        reason: i64,
    },
    /// An event Reelay does not follow.
    Other {
        event: String,
    },
}

pub fn decode(event: WebhookEvent) -> Decoded {
    let status =
        |publish_id: String, status: PublishStatus, post_id: Option<u64>| Decoded::Publish {
            publish_id,
            what: Observed::Status {
                status,
                post_ids: post_id.map(|id| id.to_string()).into_iter().collect(),
            },
        };
    match event {
        WebhookEvent::PublishComplete { publish_id, .. } => {
            status(publish_id, PublishStatus::Complete, None)
        }
        WebhookEvent::PubliclyAvailable {
            publish_id,
            post_id,
            ..
        } => status(publish_id, PublishStatus::Complete, post_id),
        WebhookEvent::InboxDelivered { publish_id, .. } => {
            status(publish_id, PublishStatus::SentToInbox, None)
        }
        WebhookEvent::PublishFailed {
            publish_id, reason, ..
        } => status(publish_id, PublishStatus::Failed { reason }, None),
        WebhookEvent::NoLongerPubliclyAvailable {
            publish_id,
            post_id,
            ..
        } => Decoded::Publish {
            publish_id,
            what: Observed::NoLongerPublic {
                post_id: post_id.map(|id| id.to_string()).unwrap_or_default(),
            },
        },
        WebhookEvent::AuthorizationRemoved { reason } => Decoded::AuthorizationRemoved { reason },
        WebhookEvent::Unknown { event, .. } => Decoded::Other { event },
    }
}

/// What a verified delivery did, named in the 200 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Observed(ObserveOutcome),
    /// The account was marked `needs_reauth`; `parked` pending jobs were held.
    AuthorizationRemoved {
        parked: usize,
    },
    Ignored {
        why: &'static str,
    },
}

impl Handled {
    pub fn result(&self) -> String {
        let state = |s: &JobState| s.to_string();
        match self {
            Self::Observed(ObserveOutcome::Moved { job_state }) => {
                format!("moved:{}", state(job_state))
            }
            Self::Observed(ObserveOutcome::Resolved { job_state }) => {
                format!("resolved:{}", state(job_state))
            }
            Self::Observed(ObserveOutcome::Absorbed) => "absorbed".into(),
            Self::Observed(ObserveOutcome::Stale) => "stale".into(),
            Self::Observed(ObserveOutcome::Ignored { why }) | Self::Ignored { why } => {
                format!("ignored:{why}")
            }
            Self::AuthorizationRemoved { parked } => format!("authorization_removed:{parked}"),
            Self::Observed(ObserveOutcome::Later) => "later".into(),
        }
    }
}

/// Every refusal, in the error envelope.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("only POST is allowed")]
    MethodNotAllowed,
    #[error("the body exceeds {max} bytes")]
    TooLarge { max: usize },
    #[error("webhook signature rejected: {0}")]
    Signature(#[from] SignatureError),
    #[error("the verified body is not a TikTok webhook: {0}")]
    Malformed(String),
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    /// Not applicable yet (an init of the account is in flight): TikTok delivers it again.
    #[error("not applicable yet; deliver again")]
    Later,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooLarge { .. } => "payload_too_large",
            Self::Signature(SignatureError::MissingHeader) => "signature_missing",
            Self::Signature(SignatureError::MalformedHeader) => "signature_malformed",
            Self::Signature(SignatureError::BadSignature) => "signature_invalid",
            Self::Signature(SignatureError::Stale { .. }) => "signature_stale",
            Self::Malformed(_) => "invalid_webhook",
            Self::Store(_) => "internal_error",
            Self::Later => "retry_later",
        }
    }

    fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed => 405,
            Self::TooLarge { .. } => 413,
            Self::Signature(_) => 401,
            Self::Malformed(_) => 400,
            // TikTok redelivers non-200 answers for 72 h.
            Self::Store(_) => 500,
            Self::Later => 503,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        // A 5xx says nothing of its cause; the log has it.
        let message = match &self {
            Self::Store(_) => "temporarily unable to record the event; please retry".to_owned(),
            other => other.to_string(),
        };
        let envelope = ErrorEnvelope::new(self.code(), message).with_details(json!({}));
        json_response(
            self.status(),
            serde_json::to_string(&envelope).unwrap_or_default(),
        )
    }
}

pub fn received(handled: &Handled) -> Response<Body> {
    json_response(
        200,
        json!({"received": true, "result": handled.result()}).to_string(),
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
mod tests {
    use super::*;

    #[test]
    fn publicly_available_carries_its_post_id_and_a_takedown_its_own() {
        let public = decode(WebhookEvent::PubliclyAvailable {
            publish_id: "p".into(),
            post_id: Some(76),
            publish_type: None,
        });
        assert_eq!(
            public,
            Decoded::Publish {
                publish_id: "p".into(),
                what: Observed::Status {
                    status: PublishStatus::Complete,
                    post_ids: vec!["76".into()]
                }
            }
        );
        let gone = decode(WebhookEvent::NoLongerPubliclyAvailable {
            publish_id: "p".into(),
            post_id: None,
            publish_type: None,
        });
        assert_eq!(
            gone,
            Decoded::Publish {
                publish_id: "p".into(),
                what: Observed::NoLongerPublic {
                    post_id: String::new()
                }
            }
        );
    }

    #[test]
    fn outcomes_are_named_as_before() {
        let moved = Handled::Observed(ObserveOutcome::Moved {
            job_state: JobState::PublishComplete,
        });
        assert_eq!(moved.result(), "moved:publish_complete");
        assert_eq!(
            Handled::Observed(ObserveOutcome::Absorbed).result(),
            "absorbed"
        );
        assert_eq!(Handled::Ignored { why: "user" }.result(), "ignored:user");
        assert_eq!(
            Handled::AuthorizationRemoved { parked: 2 }.result(),
            "authorization_removed:2"
        );
    }
}
