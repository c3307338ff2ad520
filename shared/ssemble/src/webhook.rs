//! Webhook payloads. Ssemble's deliveries are unsigned (as far as its docs show), may be
//! duplicated, and carry a different `viral_score` scale than `GET /shorts/:id`, so a parsed
//! event is only a hint: confirm it with `status`/`get` before acting.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::model::{RequestId, RequestStatus};
use crate::rate_limit::parse_instant;

/// A clip as the `shorts.completed` payload lists it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WebhookShort {
    /// Opaque (24-hex here, a UUID in `GET`): do not join on it across the two.
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub video_url: Option<String>,
    #[serde(default)]
    pub duration: Option<f64>,
    /// Documented as 0–10 here; do not compare with `GET`'s 0–100.
    #[serde(default)]
    pub viral_score: Option<f64>,
}

/// A parsed delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    /// `shorts.completed`.
    Completed {
        request_id: RequestId,
        timestamp: Option<DateTime<Utc>>,
        shorts: Vec<WebhookShort>,
    },
    /// `shorts.failed`; the reason is read from `data.failureReason`, else `data.error`.
    Failed {
        request_id: RequestId,
        timestamp: Option<DateTime<Utc>>,
        failure_reason: Option<String>,
    },
    /// Any other event name, kept with its raw payload.
    Other {
        event: String,
        request_id: Option<RequestId>,
        status: Option<RequestStatus>,
        raw: serde_json::Value,
    },
}

impl WebhookEvent {
    /// The request the event is about, when it carries a valid id.
    pub fn request_id(&self) -> Option<&RequestId> {
        match self {
            Self::Completed { request_id, .. } | Self::Failed { request_id, .. } => {
                Some(request_id)
            }
            Self::Other { request_id, .. } => request_id.as_ref(),
        }
    }

    /// Key for de-duplicating redeliveries: (`requestId`, `event`).
    pub fn dedupe_key(&self) -> Option<(RequestId, &str)> {
        let name = match self {
            Self::Completed { .. } => "shorts.completed",
            Self::Failed { .. } => "shorts.failed",
            Self::Other { event, .. } => event.as_str(),
        };
        self.request_id().map(|id| (id.clone(), name))
    }
}

/// Why a body is not a usable webhook.
#[derive(Debug, thiserror::Error)]
pub enum WebhookParseError {
    /// Not JSON, or not an object.
    #[error("webhook body is not a JSON object: {0}")]
    NotJson(#[source] serde_json::Error),
    /// No `event` string.
    #[error("webhook body has no event name")]
    MissingEvent,
    /// A known event without a valid 24-hex `requestId`.
    #[error("webhook {event} has no valid requestId")]
    MissingRequestId { event: String },
    /// A known event whose `data` does not have the documented shape.
    #[error("webhook {event} has a malformed data member: {source}")]
    BadData {
        event: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct CompletedData {
    #[serde(default)]
    shorts: Option<Vec<WebhookShort>>,
}

/// Parses a webhook body.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookEvent, WebhookParseError> {
    let raw: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(WebhookParseError::NotJson)?;
    let event = raw
        .get("event")
        .and_then(|e| e.as_str())
        .ok_or(WebhookParseError::MissingEvent)?
        .to_owned();
    let request_id = raw
        .get("requestId")
        .and_then(|v| v.as_str())
        .and_then(|s| RequestId::parse(s).ok());
    let timestamp = raw
        .get("timestamp")
        .and_then(|v| v.as_str())
        .and_then(parse_instant);
    let data = raw.get("data").cloned().unwrap_or(serde_json::Value::Null);
    match event.as_str() {
        "shorts.completed" => {
            let request_id = request_id.ok_or_else(|| WebhookParseError::MissingRequestId {
                event: event.clone(),
            })?;
            let data: CompletedData = if data.is_null() {
                CompletedData { shorts: None }
            } else {
                serde_json::from_value(data).map_err(|source| WebhookParseError::BadData {
                    event: event.clone(),
                    source,
                })?
            };
            Ok(WebhookEvent::Completed {
                request_id,
                timestamp,
                shorts: data.shorts.unwrap_or_default(),
            })
        }
        "shorts.failed" => {
            let request_id = request_id.ok_or_else(|| WebhookParseError::MissingRequestId {
                event: event.clone(),
            })?;
            let reason = ["failureReason", "error"]
                .iter()
                .find_map(|k| match data.get(*k) {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Object(o)) => {
                        o.get("message").and_then(|m| m.as_str()).map(str::to_owned)
                    }
                    _ => None,
                });
            Ok(WebhookEvent::Failed {
                request_id,
                timestamp,
                failure_reason: reason,
            })
        }
        _ => Ok(WebhookEvent::Other {
            status: raw
                .get("status")
                .and_then(|v| v.as_str())
                .map(RequestStatus::from_wire),
            event,
            request_id,
            raw: serde_json::Value::Object(raw),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn when_failed_uses_error_key_should_read_reason() {
        let ev = parse_webhook(
            br#"{"event":"shorts.failed","requestId":"665a1b2c3d4e5f6a7b8c9d0e","data":{"error":"boom"}}"#,
        )
        .unwrap();
        assert!(
            matches!(ev, WebhookEvent::Failed { failure_reason: Some(ref r), .. } if r == "boom")
        );
    }

    #[test]
    fn when_event_unknown_should_keep_it() {
        let ev = parse_webhook(
            br#"{"event":"shorts.recompiled","requestId":"665a1b2c3d4e5f6a7b8c9d0e","x":1}"#,
        )
        .unwrap();
        match ev {
            WebhookEvent::Other {
                event,
                request_id,
                raw,
                ..
            } => {
                assert_eq!(event, "shorts.recompiled");
                assert!(request_id.is_some());
                assert_eq!(raw["x"], 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn when_known_event_lacks_request_id_should_error() {
        assert!(matches!(
            parse_webhook(br#"{"event":"shorts.completed","requestId":"nope"}"#),
            Err(WebhookParseError::MissingRequestId { .. })
        ));
        assert!(matches!(
            parse_webhook(b"<html>"),
            Err(WebhookParseError::NotJson(_))
        ));
        assert!(matches!(
            parse_webhook(b"{}"),
            Err(WebhookParseError::MissingEvent)
        ));
    }
}
