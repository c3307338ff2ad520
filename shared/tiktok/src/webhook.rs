use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use crate::types::deserialize_post_id;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("TikTok-Signature header missing")]
    MissingHeader,
    #[error("TikTok-Signature header malformed")]
    MalformedHeader,
    #[error("webhook signature does not match")]
    BadSignature,
    #[error("webhook timestamp {timestamp} is outside the replay window (now {now})")]
    Stale { timestamp: i64, now: i64 },
}

/// Verifies `TikTok-Signature: t=<unix>,s=<hex>` where `s = hex(HMAC-SHA256(client_secret, "{t}.{raw_body}"))`,
/// in constant time, over the raw bytes, then checks `|now - t| <= window`. Returns `t`.
pub fn verify_signature(
    header: Option<&str>,
    raw_body: &[u8],
    client_secret: &SecretString,
    now_unix: i64,
    window: Duration,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::MissingHeader)?;
    let mut t = None;
    let mut s = None;
    for part in header.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or(SignatureError::MalformedHeader)?;
        match k.trim() {
            "t" => {
                t = Some(
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| SignatureError::MalformedHeader)?,
                )
            }
            "s" => s = Some(hex::decode(v.trim()).map_err(|_| SignatureError::MalformedHeader)?),
            _ => {}
        }
    }
    let (Some(t), Some(s)) = (t, s) else {
        return Err(SignatureError::MalformedHeader);
    };
    if s.len() != 32 {
        return Err(SignatureError::MalformedHeader);
    }
    let mut mac = HmacSha256::new_from_slice(client_secret.expose_secret().as_bytes())
        .map_err(|_| SignatureError::BadSignature)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(raw_body);
    mac.verify_slice(&s)
        .map_err(|_| SignatureError::BadSignature)?;
    let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    if now_unix.abs_diff(t) > window.unsigned_abs() {
        return Err(SignatureError::Stale {
            timestamp: t,
            now: now_unix,
        });
    }
    Ok(t)
}

/// The header value TikTok would send for `raw_body` at `t` (for tests and simulators).
pub fn sign_webhook(client_secret: &SecretString, t: i64, raw_body: &[u8]) -> String {
    let mut mac = match HmacSha256::new_from_slice(client_secret.expose_secret().as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(raw_body);
    format!("t={t},s={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delivery envelope; `content` is a JSON *string* holding the event data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebhookEnvelope {
    pub client_key: String,
    pub event: String,
    pub create_time: i64,
    #[serde(default)]
    pub user_openid: String,
    /// Normally a JSON string; an inline object is accepted and re-serialised.
    #[serde(deserialize_with = "content_string")]
    pub content: String,
}

fn content_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// A parsed delivery. Deliveries are at least once: dedupe on (event, content), not on the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedWebhook {
    pub client_key: String,
    pub create_time: i64,
    pub user_openid: String,
    pub event: WebhookEvent,
    /// The raw `content` string, a stable dedupe key together with the event name.
    pub content: String,
}

/// Events on the posting channel. `publish_type` is an open string (`DIRECT_PUBLISH`, `INBOX_SHARE`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    PublishFailed {
        publish_id: String,
        reason: String,
        publish_type: Option<String>,
    },
    PublishComplete {
        publish_id: String,
        publish_type: Option<String>,
    },
    InboxDelivered {
        publish_id: String,
        publish_type: Option<String>,
    },
    PubliclyAvailable {
        publish_id: String,
        post_id: Option<u64>,
        publish_type: Option<String>,
    },
    /// `post.publish.no_longer_publicaly_available` (TikTok's spelling).
    NoLongerPubliclyAvailable {
        publish_id: String,
        post_id: Option<u64>,
        publish_type: Option<String>,
    },
    /// The access token is already revoked on arrival. 0 unknown, 1 user disconnected, 2 account deleted,
    /// 3 age changed, 4 account banned, 5 developer revoked.
    AuthorizationRemoved { reason: i64 },
    /// Anything else (legacy Video Kit events, portability, future events): kept, not an error.
    Unknown { event: String, content: String },
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookParseError {
    #[error("webhook envelope is not valid JSON: {0}")]
    Envelope(#[source] serde_json::Error),
    #[error("content of `{event}` is not valid: {source}")]
    Content {
        event: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct PublishContent {
    publish_id: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    publish_type: Option<String>,
    #[serde(default, deserialize_with = "deserialize_post_id")]
    post_id: Option<u64>,
}

#[derive(Deserialize)]
struct AuthRemovedContent {
    #[serde(default)]
    reason: i64,
}

/// Parses a verified body into a typed event.
pub fn parse_webhook(raw_body: &[u8]) -> Result<ParsedWebhook, WebhookParseError> {
    let env: WebhookEnvelope =
        serde_json::from_slice(raw_body).map_err(WebhookParseError::Envelope)?;
    let content_err = |source| WebhookParseError::Content {
        event: env.event.clone(),
        source,
    };
    let publish = || serde_json::from_str::<PublishContent>(&env.content).map_err(content_err);
    let event = match env.event.as_str() {
        "post.publish.failed" => {
            let c = publish()?;
            WebhookEvent::PublishFailed {
                publish_id: c.publish_id,
                reason: c.reason.unwrap_or_default(),
                publish_type: c.publish_type,
            }
        }
        "post.publish.complete" => {
            let c = publish()?;
            WebhookEvent::PublishComplete {
                publish_id: c.publish_id,
                publish_type: c.publish_type,
            }
        }
        "post.publish.inbox_delivered" => {
            let c = publish()?;
            WebhookEvent::InboxDelivered {
                publish_id: c.publish_id,
                publish_type: c.publish_type,
            }
        }
        "post.publish.publicly_available" => {
            let c = publish()?;
            WebhookEvent::PubliclyAvailable {
                publish_id: c.publish_id,
                post_id: c.post_id,
                publish_type: c.publish_type,
            }
        }
        "post.publish.no_longer_publicaly_available" => {
            let c = publish()?;
            WebhookEvent::NoLongerPubliclyAvailable {
                publish_id: c.publish_id,
                post_id: c.post_id,
                publish_type: c.publish_type,
            }
        }
        "authorization.removed" => {
            let c: AuthRemovedContent = serde_json::from_str(&env.content).map_err(content_err)?;
            WebhookEvent::AuthorizationRemoved { reason: c.reason }
        }
        other => WebhookEvent::Unknown {
            event: other.to_owned(),
            content: env.content.clone(),
        },
    };
    Ok(ParsedWebhook {
        client_key: env.client_key,
        create_time: env.create_time,
        user_openid: env.user_openid,
        event,
        content: env.content,
    })
}

impl crate::client::TikTokClient {
    /// [`verify_signature`] with this app's client secret and configured replay window, then
    /// [`parse_webhook`]. `now_unix` is the receiver's clock.
    pub fn verify_webhook(
        &self,
        signature_header: Option<&str>,
        raw_body: &[u8],
        now_unix: i64,
    ) -> Result<ParsedWebhook, WebhookError> {
        verify_signature(
            signature_header,
            raw_body,
            &self.cfg.client_secret,
            now_unix,
            self.cfg.webhook_replay_window,
        )?;
        Ok(parse_webhook(raw_body)?)
    }
}

/// A rejected webhook delivery: answer 401 for a signature problem, 400 for a body problem.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Parse(#[from] WebhookParseError),
}
