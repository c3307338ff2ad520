//! The simulated world: creators, tokens, publishes, limits and the inspection record.
use std::collections::{BTreeMap, HashMap, VecDeque};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::SimConfig;

pub const SCOPE_PUBLISH: &str = "video.publish";
pub const SCOPE_UPLOAD: &str = "video.upload";
const DAY_MS: i64 = 86_400_000;

/// Creator settings, settable through `/_sim/creators`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CreatorSettings {
    pub open_id: String,
    pub username: String,
    pub nickname: String,
    pub avatar_url: String,
    /// Private accounts get FOLLOWER_OF_CREATOR instead of PUBLIC_TO_EVERYONE and forced duet/stitch off.
    pub private_account: bool,
    /// Overrides the options derived from `private_account` (third-party sources disagree).
    pub privacy_level_options: Option<Vec<String>>,
    pub comment_disabled: bool,
    pub duet_disabled: bool,
    pub stitch_disabled: bool,
    pub max_video_post_duration_sec: u32,
    pub banned: bool,
    /// Direct posts per rolling 24 h; `None` = the simulator default (~15).
    pub daily_post_cap: Option<u32>,
}

impl Default for CreatorSettings {
    fn default() -> Self {
        Self {
            open_id: String::new(),
            username: "creator".into(),
            nickname: "Creator".into(),
            avatar_url: "https://sim.invalid/avatar.jpg".into(),
            private_account: false,
            privacy_level_options: None,
            comment_disabled: false,
            duet_disabled: false,
            stitch_disabled: false,
            max_video_post_duration_sec: 300,
            banned: false,
            daily_post_cap: None,
        }
    }
}

impl CreatorSettings {
    pub fn privacy_options(&self) -> Vec<String> {
        if let Some(o) = &self.privacy_level_options {
            return o.clone();
        }
        let first = if self.private_account {
            "FOLLOWER_OF_CREATOR"
        } else {
            "PUBLIC_TO_EVERYONE"
        };
        vec![
            first.into(),
            "MUTUAL_FOLLOW_FRIENDS".into(),
            "SELF_ONLY".into(),
        ]
    }
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub open_id: String,
    pub scopes: Vec<String>,
    pub expires_ms: i64,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub open_id: String,
    pub scopes: Vec<String>,
    /// Fixed at first issuance; rotation does not extend it.
    pub expires_ms: i64,
    pub valid: bool,
}

#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub open_id: String,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    pub expires_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    ProcessingUpload,
    ProcessingDownload,
    SendToUserInbox,
    PublishComplete,
    Failed,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ProcessingUpload => "PROCESSING_UPLOAD",
            Self::ProcessingDownload => "PROCESSING_DOWNLOAD",
            Self::SendToUserInbox => "SEND_TO_USER_INBOX",
            Self::PublishComplete => "PUBLISH_COMPLETE",
            Self::Failed => "FAILED",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::PublishComplete | Self::Failed)
    }
}

#[derive(Debug, Clone)]
pub struct UploadTask {
    pub upload_id: String,
    pub upload_token: String,
    pub video_size: u64,
    pub chunk_size: u64,
    pub total_chunk_count: u64,
    pub expires_ms: i64,
    pub received: u64,
    pub hasher: Sha256,
    pub puts: u64,
    pub busy: bool,
    pub done_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub publish_id: String,
    pub open_id: String,
    pub direct: bool,
    pub video_url: Option<String>,
    pub title: Option<String>,
    pub privacy_level: Option<String>,
    pub upload: Option<UploadTask>,
    pub created_ms: i64,
    pub status: Status,
    pub status_ms: i64,
    pub fail_reason: Option<String>,
    pub inject_fail: Option<String>,
    pub stuck: bool,
    pub public: bool,
    pub post_ids: Vec<u64>,
    pub complete_ms: Option<i64>,
    pub taken_down: bool,
}

impl Publish {
    pub fn publish_type(&self) -> &'static str {
        if self.direct {
            "DIRECT_PUBLISH"
        } else {
            "INBOX_SHARE"
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    CreatorInfo,
    VideoInit,
    InboxInit,
    Status,
    Cancel,
    Token,
    Revoke,
    Upload,
}

/// An injected misbehaviour for the next `count` requests of one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this HTTP status (5xx: `internal_error` body) and do nothing.
    Status { status: u16 },
    /// Answer with this API error code and status and do nothing (any documented code).
    Error { status: u16, code: String },
    /// 429 `rate_limit_exceeded` and do nothing.
    RateLimit,
    /// Take effect, then hold the response this long (real ms), beyond the client's timeout.
    TimeoutAfterAccept { delay_ms: u64 },
    /// Take effect, then break the connection mid-response.
    DropAfterAccept,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultSpec {
    pub endpoint: Endpoint,
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// Webhook delivery faults for the next events.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookFaults {
    pub drop: u32,
    pub duplicate: u32,
    pub delay: u32,
    pub delay_ms: u64,
    /// Hold the next event back and send it after the one that follows.
    pub reorder: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub kind: String,
    pub endpoint: String,
    pub open_id: Option<String>,
    pub at_unix: i64,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct WebhookJob {
    pub seq: usize,
    pub event: String,
    pub open_id: String,
    pub content: String,
    pub create_time: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WebhookRecord {
    pub event: String,
    pub content: String,
    pub attempts: u32,
    pub statuses: Vec<u16>,
    pub delivered: u32,
    pub dropped: bool,
    pub duplicated: bool,
}

#[derive(Debug, Default)]
pub struct AccountStats {
    pub inits_in_flight: u32,
    pub max_inits_in_flight: u32,
    pub max_active_publishes: u32,
    pub direct_post_times: Vec<i64>,
}

#[derive(Debug)]
pub struct World {
    pub cfg: SimConfig,
    pub rng: StdRng,
    pub counter: u64,
    pub creators: BTreeMap<String, CreatorSettings>,
    pub codes: HashMap<String, CodeGrant>,
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    pub windows: HashMap<(String, &'static str), VecDeque<i64>>,
    pub publishes: BTreeMap<String, Publish>,
    pub uploads: HashMap<String, String>,
    pub faults: HashMap<Endpoint, VecDeque<(FaultKind, u32)>>,
    pub next_publish_fail: Option<String>,
    /// The next this many created publishes stay in processing (never finish on their own).
    pub stuck_next: u32,
    pub webhook_faults: WebhookFaults,
    pub webhook_log: Vec<WebhookRecord>,
    pub held_webhook: Option<WebhookJob>,
    pub accounts: HashMap<String, AccountStats>,
    pub limit_violations: Vec<Violation>,
    pub chunk_violations: Vec<Violation>,
    pub requests: BTreeMap<String, u64>,
    pub outbox: Option<UnboundedSender<WebhookJob>>,
}

impl World {
    pub fn new(cfg: SimConfig, outbox: Option<UnboundedSender<WebhookJob>>) -> Self {
        Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            counter: 0,
            creators: BTreeMap::new(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            windows: HashMap::new(),
            publishes: BTreeMap::new(),
            uploads: HashMap::new(),
            faults: HashMap::new(),
            next_publish_fail: None,
            stuck_next: 0,
            webhook_faults: WebhookFaults::default(),
            webhook_log: Vec::new(),
            held_webhook: None,
            accounts: HashMap::new(),
            limit_violations: Vec::new(),
            chunk_violations: Vec::new(),
            requests: BTreeMap::new(),
            outbox,
        }
    }

    pub fn token(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let s: String = (0..40)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        format!("{prefix}{s}")
    }

    /// A credential (access, refresh or upload token): carries the configured marker, so a log
    /// scan can tell whether any credential leaked. Ids (`open_id`, codes) never carry it.
    pub fn secret_token(&mut self, prefix: &str) -> String {
        let t = self.token("");
        match self.cfg.token_marker.clone() {
            Some(marker) => format!("{prefix}{marker}{t}"),
            None => format!("{prefix}{t}"),
        }
    }

    pub fn log_id(&mut self, now_ms: i64) -> String {
        self.counter += 1;
        format!("{now_ms:014}{:018X}", self.counter)
    }

    pub fn open_id(&mut self) -> String {
        let t = self.token("");
        format!("-000{}", &t[..32])
    }

    pub fn post_id(&mut self) -> u64 {
        self.rng
            .random_range(7_000_000_000_000_000_000u64..7_999_999_999_999_999_999u64)
    }

    pub fn publish_id(&mut self, direct: bool, pull: bool) -> String {
        let n = self
            .rng
            .random_range(1_000_000_000_000_000_000u64..9_999_999_999_999_999_999u64);
        let kind = match (direct, pull) {
            (true, false) => "v_pub_file~v2-1",
            (true, true) => "v_pub_url~v2-1",
            (false, false) => "v_inbox_file~v2",
            (false, true) => "v_inbox_url~v2",
        };
        format!("{kind}.{n}")
    }

    pub fn ensure_creator(&mut self, open_id: &str) -> &mut CreatorSettings {
        let n = self.creators.len();
        self.creators
            .entry(open_id.to_owned())
            .or_insert_with(|| CreatorSettings {
                open_id: open_id.to_owned(),
                username: format!("creator{n}"),
                nickname: format!("Creator {n}"),
                ..CreatorSettings::default()
            })
    }

    pub fn upsert_creator(&mut self, mut s: CreatorSettings) -> CreatorSettings {
        if s.open_id.is_empty() {
            s.open_id = self.open_id();
        }
        self.creators.insert(s.open_id.clone(), s.clone());
        s
    }

    /// Issues an access token and a fresh refresh-token family.
    pub fn issue_tokens(&mut self, open_id: &str, scopes: Vec<String>, now_ms: i64) -> Value {
        let refresh_expires = now_ms + self.cfg.oauth.refresh_token_ttl_secs as i64 * 1000;
        self.issue_with_family(open_id, scopes, now_ms, refresh_expires, None)
    }

    pub fn issue_with_family(
        &mut self,
        open_id: &str,
        scopes: Vec<String>,
        now_ms: i64,
        refresh_expires_ms: i64,
        keep_refresh: Option<String>,
    ) -> Value {
        let access = self.secret_token("act.");
        let access_ttl = self.cfg.oauth.access_token_ttl_secs as i64 * 1000;
        self.access.insert(
            access.clone(),
            AccessToken {
                open_id: open_id.to_owned(),
                scopes: scopes.clone(),
                expires_ms: now_ms + access_ttl,
                revoked: false,
            },
        );
        let refresh = match keep_refresh {
            Some(r) => r,
            None => {
                let r = self.secret_token("rft.");
                self.refresh.insert(
                    r.clone(),
                    RefreshToken {
                        open_id: open_id.to_owned(),
                        scopes: scopes.clone(),
                        expires_ms: refresh_expires_ms,
                        valid: true,
                    },
                );
                r
            }
        };
        let refresh_ttl = (refresh_expires_ms - now_ms).max(0);
        // Rounded down: a client on the real clock refreshes a moment early, never late.
        let (expires_in, refresh_expires_in) = if self.cfg.oauth.lifetimes_in_real_seconds {
            let scale = self.cfg.time_scale.max(1.0);
            (
                (access_ttl as f64 / 1000.0 / scale).floor() as i64,
                (refresh_ttl as f64 / 1000.0 / scale).floor() as i64,
            )
        } else {
            (
                access_ttl / 1000,
                (refresh_ttl as u64).div_ceil(1000) as i64,
            )
        };
        json!({
            "access_token": access,
            "expires_in": expires_in,
            "open_id": open_id,
            "refresh_expires_in": refresh_expires_in,
            "refresh_token": refresh,
            "scope": scopes.join(","),
            "token_type": "Bearer",
        })
    }

    /// Revokes every token of `open_id`; true if anything was live.
    pub fn revoke_user(&mut self, open_id: &str) -> bool {
        let mut any = false;
        for t in self.access.values_mut().filter(|t| t.open_id == open_id) {
            any |= !t.revoked;
            t.revoked = true;
        }
        for t in self.refresh.values_mut().filter(|t| t.open_id == open_id) {
            t.valid = false;
        }
        any
    }

    /// Sliding-window admission; a request over the limit is recorded as a violation and not counted.
    pub fn admit(&mut self, token: &str, bucket: &'static str, limit: u32, now_ms: i64) -> bool {
        let window = self.cfg.limits.window_secs as i64 * 1000;
        let q = self.windows.entry((token.to_owned(), bucket)).or_default();
        while q.front().is_some_and(|t| *t <= now_ms - window) {
            q.pop_front();
        }
        if q.len() as u32 >= limit {
            return false;
        }
        q.push_back(now_ms);
        true
    }

    pub fn violation(
        &mut self,
        kind: &str,
        endpoint: &str,
        open_id: Option<&str>,
        now_ms: i64,
        detail: String,
    ) {
        let v = Violation {
            kind: kind.into(),
            endpoint: endpoint.into(),
            open_id: open_id.map(str::to_owned),
            at_unix: now_ms.div_euclid(1000),
            detail,
        };
        if kind == "chunk_rules" {
            self.chunk_violations.push(v);
        } else {
            self.limit_violations.push(v);
        }
    }

    pub fn take_fault(&mut self, ep: Endpoint) -> Option<FaultKind> {
        let q = self.faults.get_mut(&ep)?;
        let (kind, left) = q.front_mut()?;
        let kind = kind.clone();
        *left -= 1;
        if *left == 0 {
            q.pop_front();
        }
        Some(kind)
    }

    pub fn direct_posts_24h(&mut self, open_id: &str, now_ms: i64) -> u32 {
        let stats = self.accounts.entry(open_id.to_owned()).or_default();
        stats.direct_post_times.retain(|t| *t > now_ms - DAY_MS);
        stats.direct_post_times.len() as u32
    }

    pub fn pending_shares_24h(&self, open_id: &str, now_ms: i64) -> u32 {
        self.publishes
            .values()
            .filter(|p| {
                p.open_id == open_id
                    && !p.direct
                    && p.created_ms > now_ms - DAY_MS
                    && !p.status.is_terminal()
            })
            .count() as u32
    }

    /// Users who posted in the last 24 h (the app's active-user cap).
    pub fn active_users_24h(&self, now_ms: i64) -> Vec<String> {
        let mut users: Vec<String> = self
            .publishes
            .values()
            .filter(|p| p.created_ms > now_ms - DAY_MS)
            .map(|p| p.open_id.clone())
            .collect();
        users.sort();
        users.dedup();
        users
    }

    pub fn active_user_cap(&self) -> Option<u32> {
        self.cfg
            .app
            .active_user_cap
            .or(if self.cfg.app.audited { None } else { Some(5) })
    }

    pub fn emit(&mut self, event: &str, open_id: &str, content: Value, now_ms: i64) {
        let seq = self.webhook_log.len();
        let content = content.to_string();
        self.webhook_log.push(WebhookRecord {
            event: event.into(),
            content: content.clone(),
            ..WebhookRecord::default()
        });
        if let Some(tx) = &self.outbox {
            let _ = tx.send(WebhookJob {
                seq,
                event: event.into(),
                open_id: open_id.into(),
                content,
                create_time: now_ms.div_euclid(1000),
            });
        }
    }

    /// Advances every publish's state machine to `now_ms`, emitting webhooks for each transition.
    pub fn tick(&mut self, now_ms: i64) {
        let d = self.cfg.delays.clone();
        let ids: Vec<String> = self.publishes.keys().cloned().collect();
        for id in ids {
            while let Some(p) = self.publishes.get(&id) {
                if p.stuck {
                    break;
                }
                let ready_at = match p.status {
                    Status::ProcessingUpload => p
                        .upload
                        .as_ref()
                        .and_then(|u| u.done_ms)
                        .map(|t| t + d.processing_secs as i64 * 1000),
                    Status::ProcessingDownload => {
                        Some(p.created_ms + (d.download_secs + d.processing_secs) as i64 * 1000)
                    }
                    Status::SendToUserInbox => d
                        .inbox_user_post_secs
                        .map(|s| p.status_ms + s as i64 * 1000),
                    Status::PublishComplete => {
                        match (p.public, p.post_ids.is_empty(), d.moderation_secs) {
                            (true, true, Some(m)) => p.complete_ms.map(|t| t + m as i64 * 1000),
                            _ => None,
                        }
                    }
                    Status::Failed => None,
                };
                match ready_at {
                    Some(t) if t <= now_ms => self.step(&id, t),
                    _ => break,
                }
            }
        }
    }

    fn step(&mut self, id: &str, at_ms: i64) {
        let post_id = self.post_id();
        let Some(p) = self.publishes.get_mut(id) else {
            return;
        };
        let open_id = p.open_id.clone();
        let publish_type = p.publish_type();
        let (event, content) = match p.status {
            Status::ProcessingUpload | Status::ProcessingDownload => {
                if let Some(reason) = p.inject_fail.take() {
                    p.status = Status::Failed;
                    p.fail_reason = Some(reason.clone());
                    (
                        "post.publish.failed",
                        json!({"publish_id": p.publish_id, "reason": reason, "publish_type": publish_type}),
                    )
                } else if p.direct {
                    p.status = Status::PublishComplete;
                    p.complete_ms = Some(at_ms);
                    (
                        "post.publish.complete",
                        json!({"publish_id": p.publish_id, "publish_type": publish_type}),
                    )
                } else {
                    p.status = Status::SendToUserInbox;
                    (
                        "post.publish.inbox_delivered",
                        json!({"publish_id": p.publish_id, "publish_type": publish_type}),
                    )
                }
            }
            Status::SendToUserInbox => {
                p.status = Status::PublishComplete;
                p.complete_ms = Some(at_ms);
                p.public = true;
                (
                    "post.publish.complete",
                    json!({"publish_id": p.publish_id, "publish_type": publish_type}),
                )
            }
            Status::PublishComplete => {
                p.post_ids.push(post_id);
                (
                    "post.publish.publicly_available",
                    json!({"publish_id": p.publish_id, "publish_type": publish_type, "post_id": post_id.to_string()}),
                )
            }
            Status::Failed => return,
        };
        p.status_ms = at_ms;
        self.emit(event, &open_id, content, at_ms);
    }

    /// Immediate FAILED with `reason` (e.g. publish_cancelled, auth_removed, or an injected reason).
    pub fn fail_now(&mut self, id: &str, reason: &str, now_ms: i64) -> bool {
        let Some(p) = self.publishes.get_mut(id) else {
            return false;
        };
        if p.status.is_terminal() {
            return false;
        }
        p.status = Status::Failed;
        p.status_ms = now_ms;
        p.fail_reason = Some(reason.into());
        let (open_id, content) = (
            p.open_id.clone(),
            json!({"publish_id": p.publish_id, "reason": reason, "publish_type": p.publish_type()}),
        );
        self.emit("post.publish.failed", &open_id, content, now_ms);
        true
    }

    pub fn inspect(&self, now_ms: i64) -> Value {
        let mut accounts = serde_json::Map::new();
        let mut by_title: BTreeMap<String, u64> = BTreeMap::new();
        let mut uploads = serde_json::Map::new();
        let mut open_ids: Vec<&String> = self.creators.keys().collect();
        for p in self.publishes.values() {
            if !open_ids.contains(&&p.open_id) {
                open_ids.push(&p.open_id);
            }
        }
        for open_id in open_ids {
            let posts: Vec<Value> = self
                .publishes
                .values()
                .filter(|p| &p.open_id == open_id)
                .map(|p| {
                    json!({
                        "publish_id": p.publish_id,
                        "direct": p.direct,
                        "source": if p.video_url.is_some() { "PULL_FROM_URL" } else { "FILE_UPLOAD" },
                        "title": p.title,
                        "privacy_level": p.privacy_level,
                        "status": p.status.as_str(),
                        "fail_reason": p.fail_reason,
                        "post_ids": p.post_ids,
                        "created_unix": p.created_ms.div_euclid(1000),
                    })
                })
                .collect();
            let stats = self.accounts.get(open_id);
            accounts.insert(
                open_id.clone(),
                json!({
                    "publishes": posts.len(),
                    "posts": posts,
                    "inits_in_flight": stats.map_or(0, |s| s.inits_in_flight),
                    "max_inits_in_flight": stats.map_or(0, |s| s.max_inits_in_flight),
                    "max_active_publishes": stats.map_or(0, |s| s.max_active_publishes),
                }),
            );
        }
        for p in self.publishes.values() {
            if let Some(t) = &p.title {
                *by_title.entry(t.clone()).or_default() += 1;
            }
            if let Some(u) = &p.upload {
                uploads.insert(
                    p.publish_id.clone(),
                    json!({
                        "video_size": u.video_size,
                        "chunk_size": u.chunk_size,
                        "total_chunk_count": u.total_chunk_count,
                        "received": u.received,
                        "puts": u.puts,
                        "complete": u.done_ms.is_some(),
                        "sha256": hex::encode(u.hasher.clone().finalize()),
                    }),
                );
            }
        }
        json!({
            "now_unix": now_ms.div_euclid(1000),
            "accounts": accounts,
            "publishes_by_title": by_title,
            "uploads": uploads,
            "limit_violations": self.limit_violations,
            "chunk_violations": self.chunk_violations,
            "requests": self.requests,
            "webhooks": self.webhook_log,
        })
    }
}
