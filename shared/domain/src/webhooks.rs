//! Webhooks out to the client, in the Standard Webhooks scheme: the endpoints a tenant registers,
//! the events its jobs' transitions and its accounts' health make, the signed delivery and the
//! retry schedule. What is sent where is decided here; the adapters only carry it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::account::AccountHealth;
use crate::ids::{AccountId, IdError, TenantId};
use crate::job::{AuditEvent, Job};
use crate::lifecycle::JobState;
use crate::time::UtcTime;

/// Endpoints a tenant may register: each one is a delivery per event.
pub const MAX_ENDPOINTS_PER_TENANT: usize = 10;

/// An endpoint id: `wh_` + a ULID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointId(String);

impl EndpointId {
    pub fn generate(at: UtcTime, entropy: u128) -> Self {
        let ms = u64::try_from(at.as_millis()).unwrap_or(0);
        Self(format!("wh_{}", ulid::Ulid::from_parts(ms, entropy)))
    }

    pub fn parse(raw: impl Into<String>) -> Result<Self, IdError> {
        let raw = raw.into();
        let ok = raw
            .strip_prefix("wh_")
            .is_some_and(|body| ulid::Ulid::from_string(body).is_ok());
        if ok {
            Ok(Self(raw))
        } else {
            Err(IdError::new(
                "webhook id",
                "must be wh_ followed by a 26-character ULID",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EndpointId {
    type Error = IdError;
    fn try_from(raw: String) -> Result<Self, IdError> {
        Self::parse(raw)
    }
}

impl From<EndpointId> for String {
    fn from(id: EndpointId) -> String {
        id.0
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "job.state_changed")]
    JobStateChanged,
    #[serde(rename = "job.published")]
    JobPublished,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.parked")]
    JobParked,
    #[serde(rename = "account.needs_reauth")]
    AccountNeedsReauth,
    #[serde(rename = "account.disconnected")]
    AccountDisconnected,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        Self::JobStateChanged,
        Self::JobPublished,
        Self::JobFailed,
        Self::JobParked,
        Self::AccountNeedsReauth,
        Self::AccountDisconnected,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::JobStateChanged => "job.state_changed",
            Self::JobPublished => "job.published",
            Self::JobFailed => "job.failed",
            Self::JobParked => "job.parked",
            Self::AccountNeedsReauth => "account.needs_reauth",
            Self::AccountDisconnected => "account.disconnected",
        }
    }
}

impl FromStr for EventType {
    type Err = ();
    fn from_str(raw: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw).ok_or(())
    }
}

/// A registered destination. `events` empty means every event type.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: EndpointId,
    pub tenant_id: TenantId,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    /// `whsec_` + base64 of 32 random bytes (Standard Webhooks); shown to the client once.
    pub secret: SecretString,
    pub created_at: UtcTime,
}

impl Endpoint {
    pub fn wants(&self, event: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

/// A new signing secret from 256 bits of entropy.
pub fn generate_secret(a: u128, b: u128) -> SecretString {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&a.to_le_bytes());
    bytes[16..].copy_from_slice(&b.to_le_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    SecretString::from(format!("whsec_{encoded}"))
}

#[derive(Debug, Error)]
pub enum SignError {
    #[error("the endpoint's signing secret is malformed")]
    Secret,
}

/// The three Standard Webhooks headers of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: i64,
    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub signature: String,
}

/// Signs `body` as Standard Webhooks does, with the official implementation.
pub fn sign(
    secret: &SecretString,
    msg_id: &str,
    at: UtcTime,
    body: &[u8],
) -> Result<SignedHeaders, SignError> {
    let hook =
        standardwebhooks::Webhook::new(secret.expose_secret()).map_err(|_| SignError::Secret)?;
    let signature = hook
        .sign(msg_id, at.as_secs(), body)
        .map_err(|_| SignError::Secret)?;
    Ok(SignedHeaders {
        id: msg_id.to_owned(),
        timestamp: at.as_secs(),
        signature,
    })
}

/// One event as the client receives it. `id` is the `webhook-id`: the same for every attempt and
/// every redelivery of the same fact, so a receiver deduplicates on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub timestamp: UtcTime,
    pub data: Value,
}

impl ClientEvent {
    fn new(event_type: EventType, fact: &str, timestamp: UtcTime, data: Value) -> Self {
        let digest = Sha256::digest(format!("{}#{fact}", event_type.as_str()).as_bytes());
        Self {
            id: format!("msg_{}", &hex::encode(digest)[..32]),
            event_type,
            timestamp,
            data,
        }
    }

    /// The body sent: `{"type","timestamp","data"}` (the Standard Webhooks payload shape).
    pub fn body(&self) -> Vec<u8> {
        let body = json!({
            "type": self.event_type,
            "timestamp": self.timestamp,
            "data": self.data,
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

fn is_published(state: JobState) -> bool {
    matches!(
        state,
        JobState::PublishComplete | JobState::PubliclyAvailable
    )
}

/// The events one audited transition makes. Recording an observation without a move makes none,
/// nor does the creation (the client has the create's answer).
pub fn job_events(job: &Job, audit: &AuditEvent) -> Vec<ClientEvent> {
    let Some(from) = audit.from else {
        return Vec::new();
    };
    if from == audit.to {
        return Vec::new();
    }
    let fact = format!("{}#{}", job.id, audit.version);
    let error = audit.error_code.as_ref().map(|code| {
        let message = job
            .last_error
            .as_ref()
            .filter(|e| &e.code == code)
            .map(|e| e.message.clone());
        json!({ "code": code, "message": message, "upstreamLogId": audit.upstream_log_id })
    });
    let data = json!({
        "jobId": job.public_id(),
        "tiktokAccountId": job.account_id,
        "state": audit.to.as_str(),
        "previousState": from.as_str(),
        "version": audit.version,
        "event": audit.event,
        "requestId": audit.request_id,
        "publishId": audit.publish_id,
        "postIds": job.post_ids,
        "error": error,
    });
    let mut events = vec![ClientEvent::new(
        EventType::JobStateChanged,
        &fact,
        audit.at,
        data.clone(),
    )];
    let also = if is_published(audit.to) && !is_published(from) {
        Some(EventType::JobPublished)
    } else if matches!(audit.to, JobState::RenderFailed | JobState::PublishFailed) {
        Some(EventType::JobFailed)
    } else if audit.to == JobState::PublishUnknown {
        Some(EventType::JobParked)
    } else {
        None
    };
    if let Some(kind) = also {
        let mut data = data;
        if kind == EventType::JobParked {
            data["reason"] = json!(audit.error_code.as_deref().unwrap_or("publish_unknown"));
        }
        events.push(ClientEvent::new(kind, &fact, audit.at, data));
    }
    events
}

/// The event an account's health change makes: only into `needs_reauth` or `disconnected`.
pub fn account_event(
    tenant: &TenantId,
    account: &AccountId,
    before: Option<AccountHealth>,
    after: AccountHealth,
    reason: Option<&str>,
    at: UtcTime,
    version: u64,
) -> Option<(TenantId, ClientEvent)> {
    // A new account's first state (not yet connected) is no change to announce.
    let before = before?;
    if before == after {
        return None;
    }
    let kind = match after {
        AccountHealth::NeedsReauth => EventType::AccountNeedsReauth,
        AccountHealth::Disconnected => EventType::AccountDisconnected,
        AccountHealth::Active | AccountHealth::Banned => return None,
    };
    let data = json!({ "tiktokAccountId": account, "health": after, "reason": reason });
    let fact = format!("{tenant}#{account}#{version}");
    Some((tenant.clone(), ClientEvent::new(kind, &fact, at, data)))
}

/// When to try again after a failed attempt. The default is Standard Webhooks' reference
/// schedule (Svix): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — eight attempts over 27 h 35 min.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        Self(
            [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    pub fn new(delays: Vec<Duration>) -> Self {
        Self(delays)
    }

    /// `5s,5m,30m,2h,5h,10h,10h` (units s, m, h).
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(|part| {
                let part = part.trim();
                let (n, unit) = part.split_at(part.len().saturating_sub(1));
                let n: u64 = n.parse().map_err(|_| format!("bad delay {part:?}"))?;
                let secs = match unit {
                    "s" => n,
                    "m" => n * 60,
                    "h" => n * 3_600,
                    _ => return Err(format!("bad unit in {part:?} (s, m or h)")),
                };
                Ok(Duration::from_secs(secs))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The wait after failed attempt `attempt` (1-based); `None` when it was the last.
    pub fn after(&self, attempt: u32) -> Option<Duration> {
        self.0
            .get(usize::try_from(attempt).ok()?.checked_sub(1)?)
            .copied()
    }

    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    pub fn total(&self) -> Duration {
        self.0.iter().sum()
    }

    /// Scales every delay (a local run on a compressed clock).
    pub fn scaled(&self, factor: f64) -> Self {
        Self(self.0.iter().map(|d| d.div_f64(factor)).collect())
    }
}

/// One delivery of one event to one endpoint, as it rides the delivery queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub tenant_id: TenantId,
    pub endpoint_id: EndpointId,
    pub event: ClientEvent,
    /// Attempts already made.
    pub attempts: u32,
    /// Not before then: a queue delays at most 15 minutes, so a longer wait is several hops.
    pub due_at: UtcTime,
    /// Sent again by `POST /v1/webhooks/{id}/replay`.
    #[serde(default)]
    pub replay: bool,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Delivered,
    /// Any other answer, a timeout or a connection error: tried again on the schedule.
    Failed,
    /// The destination resolved to an address Reelay never calls (loopback, private, metadata…).
    Blocked,
}

/// One attempt in an endpoint's delivery log (kept 30 days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub endpoint_id: EndpointId,
    pub event_id: String,
    pub event_type: EventType,
    pub attempt: u32,
    pub at: UtcTime,
    pub outcome: AttemptOutcome,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// When the next attempt goes; `None` when delivered or given up.
    pub next_attempt_at: Option<UtcTime>,
    /// Given up: the delivery went to the dead-letter queue.
    pub dead: bool,
    pub replay: bool,
    /// The event, so a replay can send it again.
    pub event: ClientEvent,
}

/// Why a destination URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("is not a valid absolute URL")]
    Malformed,
    #[error("must use https")]
    NotHttps,
    #[error("must not carry credentials")]
    Credentials,
    #[error("must not be longer than 2048 characters")]
    TooLong,
    #[error("must not name {0} address")]
    Forbidden(&'static str),
}

/// Checks a destination as registered: https (http only to loopback when `allow_loopback`, the
/// local-development switch), no credentials, and no literal address Reelay never calls. Names
/// are checked again after DNS resolution at every delivery ([`forbidden_address`]).
pub fn check_url(raw: &str, allow_loopback: bool) -> Result<url::Url, UrlError> {
    if raw.len() > 2048 {
        return Err(UrlError::TooLong);
    }
    let url = url::Url::parse(raw).map_err(|_| UrlError::Malformed)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let host = url.host().ok_or(UrlError::Malformed)?;
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        url::Host::Domain(_) => None,
    };
    let loopback = literal.is_some_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback && loopback => {}
        _ => return Err(UrlError::NotHttps),
    }
    if let Some(ip) = literal
        && let Some(kind) = forbidden_address(ip, allow_loopback)
    {
        return Err(UrlError::Forbidden(kind));
    }
    Ok(url)
}

/// What kind of address `ip` is if Reelay must never send to it, else `None`. Loopback is
/// allowed only with the local-development switch.
pub fn forbidden_address(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => forbidden_v6(v6, allow_loopback),
    }
}

fn forbidden_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("a loopback");
    }
    if ip.octets() == [169, 254, 169, 254] || ip.octets() == [169, 254, 170, 2] {
        return Some("a cloud metadata");
    }
    if ip.is_link_local() {
        return Some("a link-local");
    }
    if ip.is_private() || (a == 100 && (64..128).contains(&b)) || (a == 198 && (b & 0xfe) == 18) {
        return Some("a private");
    }
    if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
    {
        return Some("a reserved");
    }
    None
}

fn forbidden_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        return (!allow_loopback).then_some("a loopback");
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("a cloud metadata");
    }
    if (first & 0xffc0) == 0xfe80 {
        return Some("a link-local");
    }
    if (first & 0xfe00) == 0xfc00 {
        return Some("a private");
    }
    if ip.is_unspecified() || ip.is_multicast() || first == 0x2001 && ip.segments()[1] == 0xdb8 {
        return Some("a reserved");
    }
    None
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    fn audit(from: Option<JobState>, to: JobState, version: u64) -> AuditEvent {
        AuditEvent {
            at: UtcTime::from_secs(1_780_000_000),
            version,
            event: "x".into(),
            from,
            to,
            request_id: None,
            publish_id: None,
            error_code: (to == JobState::PublishUnknown).then(|| "init_outcome_unknown".into()),
            upstream_log_id: None,
            detail: None,
            api_request_id: None,
        }
    }

    fn job() -> Job {
        let json = serde_json::json!({
            "id": "job_01HT0000000000000000000000", "tenantId": "t1", "accountId": "a1",
            "source": {"kind": "rendered", "request_id": "65f0c0ffee0000000000abcd"},
            "post": {"mode": "draft", "privacyLevel": null, "title": null, "disableComment": false,
                "disableDuet": false, "disableStitch": false, "brandContentToggle": false,
                "brandOrganicToggle": false, "isAigc": false, "videoCoverTimestampMs": null},
            "scheduleAt": "2026-03-10T18:00:00Z", "idempotencyKey": null, "state": "ready",
            "version": 3, "stateSince": "2026-03-10T18:00:00Z", "createdAt": "2026-03-10T18:00:00Z",
            "updatedAt": "2026-03-10T18:00:00Z", "requestId": null, "clip": null, "publishId": null,
            "postIds": ["7300000000000000001"], "attempt": 0, "renderAttempts": 0,
            "lastError": null, "hold": null, "nextCheck": null, "takenDownAt": null
        });
        serde_json::from_value(json).expect("job")
    }

    fn kinds(events: &[ClientEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.event_type.as_str()).collect()
    }

    #[test]
    fn transitions_make_the_events_a_client_subscribes_to() {
        let j = job();
        let s = JobState::Ready;
        assert!(job_events(&j, &audit(None, JobState::Received, 1)).is_empty());
        assert!(
            job_events(&j, &audit(Some(s), s, 4)).is_empty(),
            "stale observation"
        );
        let e = job_events(&j, &audit(Some(s), JobState::PublishQueued, 4));
        assert_eq!(kinds(&e), ["job.state_changed"]);
        let e = job_events(
            &j,
            &audit(Some(JobState::Uploaded), JobState::PublishComplete, 5),
        );
        assert_eq!(kinds(&e), ["job.state_changed", "job.published"]);
        assert_eq!(e[1].data["postIds"][0], "7300000000000000001");
        let e = job_events(
            &j,
            &audit(
                Some(JobState::PublishComplete),
                JobState::PubliclyAvailable,
                6,
            ),
        );
        assert_eq!(kinds(&e), ["job.state_changed"], "published once");
        let e = job_events(
            &j,
            &audit(Some(JobState::Rendering), JobState::RenderFailed, 5),
        );
        assert_eq!(kinds(&e), ["job.state_changed", "job.failed"]);
        let e = job_events(
            &j,
            &audit(Some(JobState::Publishing), JobState::PublishUnknown, 5),
        );
        assert_eq!(kinds(&e), ["job.state_changed", "job.parked"]);
        assert_eq!(e[1].data["reason"], "init_outcome_unknown");
        // One fact, one id per type; another version, another id.
        let again = job_events(
            &j,
            &audit(Some(JobState::Publishing), JobState::PublishUnknown, 5),
        );
        assert_eq!(again[0].id, e[0].id);
        assert_ne!(e[0].id, e[1].id);
        let later = job_events(
            &j,
            &audit(Some(JobState::Publishing), JobState::PublishUnknown, 6),
        );
        assert_ne!(later[0].id, e[0].id);
        // A job whose client chose its id is announced under that id.
        let mut chosen = job();
        chosen.client_job_id = Some(JobId::parse("job_01HT0000000000000000000001").unwrap());
        chosen.id = JobId::scoped(&chosen.tenant_id, chosen.public_id());
        let e = job_events(&chosen, &audit(Some(s), JobState::PublishQueued, 4));
        assert_eq!(e[0].data["jobId"], "job_01HT0000000000000000000001");
    }

    #[test]
    fn only_a_real_change_of_an_accounts_health_is_announced() {
        let (t, a) = (
            TenantId::parse("t1").unwrap(),
            AccountId::parse("a1").unwrap(),
        );
        let at = UtcTime::from_secs(1_780_000_000);
        let event = |before, after| account_event(&t, &a, before, after, None, at, 2);
        // A new account starts as not connected: nothing to tell.
        assert!(event(None, AccountHealth::NeedsReauth).is_none());
        assert!(event(Some(AccountHealth::Active), AccountHealth::Active).is_none());
        assert!(event(Some(AccountHealth::NeedsReauth), AccountHealth::Active).is_none());
        let (_, e) = event(Some(AccountHealth::Active), AccountHealth::NeedsReauth).unwrap();
        assert_eq!(e.event_type, EventType::AccountNeedsReauth);
        let (_, e) = event(Some(AccountHealth::Active), AccountHealth::Disconnected).unwrap();
        assert_eq!(e.event_type, EventType::AccountDisconnected);
    }

    #[test]
    fn urls_are_https_without_credentials_or_forbidden_literals() {
        assert!(check_url("https://hooks.example.com/reelay", false).is_ok());
        assert_eq!(
            check_url("http://hooks.example.com/x", false).err(),
            Some(UrlError::NotHttps)
        );
        assert_eq!(
            check_url("https://u:p@hooks.example.com/", false).err(),
            Some(UrlError::Credentials)
        );
        for (raw, kind) in [
            ("https://127.0.0.1/x", "a loopback"),
            ("https://localhost:8443/x", "a loopback"),
            (
                "https://169.254.169.254/latest/meta-data",
                "a cloud metadata",
            ),
            ("https://10.1.2.3/", "a private"),
            ("https://192.168.0.1/", "a private"),
            ("https://172.16.5.5/", "a private"),
            ("https://100.64.0.1/", "a private"),
            ("https://[::1]/", "a loopback"),
            ("https://[fe80::1]/", "a link-local"),
            ("https://[fd00::1]/", "a private"),
            ("https://[::ffff:10.0.0.1]/", "a private"),
            ("https://0.0.0.0/", "a reserved"),
        ] {
            assert_eq!(
                check_url(raw, false).err(),
                Some(UrlError::Forbidden(kind)),
                "{raw}"
            );
        }
        // The local-development switch lets loopback through (http too), and nothing else.
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("http://localhost:9000/hook", true).is_ok());
        assert_eq!(
            check_url("http://10.0.0.1/hook", true).err(),
            Some(UrlError::NotHttps)
        );
        assert_eq!(
            check_url("https://169.254.169.254/", true).err(),
            Some(UrlError::Forbidden("a cloud metadata"))
        );
    }

    #[test]
    fn a_signature_verifies_with_the_reference_implementation() {
        let secret = generate_secret(7, 9);
        let body = br#"{"type":"job.published"}"#;
        let at = UtcTime::from_secs(1_780_000_000);
        let signed = sign(&secret, "msg_1", at, body).expect("sign");
        assert!(signed.signature.starts_with("v1,"));
        let hook = standardwebhooks::Webhook::new(secret.expose_secret()).expect("secret");
        let again = hook.sign("msg_1", at.as_secs(), body).expect("sign");
        assert_eq!(signed.signature, again);
        let other = hook.sign("msg_2", at.as_secs(), body).expect("sign");
        assert_ne!(signed.signature, other, "the id is signed");
    }

    #[test]
    fn the_default_schedule_retries_for_more_than_a_day() {
        let s = RetrySchedule::default();
        assert_eq!(s.attempts(), 8);
        assert!(s.total() >= Duration::from_secs(24 * 3_600));
        assert_eq!(s.after(1), Some(Duration::from_secs(5)));
        assert_eq!(s.after(7), Some(Duration::from_secs(36_000)));
        assert_eq!(s.after(8), None);
        assert_eq!(s.after(0), None);
        assert_eq!(RetrySchedule::parse("5s,5m,30m,2h,5h,10h,10h"), Ok(s));
        assert!(RetrySchedule::parse("5x").is_err());
    }
}
