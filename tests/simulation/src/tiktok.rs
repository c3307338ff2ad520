//! A scripted TikTok, written from tiktok-api.md: OAuth tokens that rotate and can be revoked,
//! creator_info, inits (direct and inbox) with their per-token windows and daily caps, chunked
//! bytes, a status machine per publish (processing, inbox, complete, failed, stuck, moderated
//! late) and at-least-once webhooks that arrive duplicated, hours late and out of order.
//!
//! It is also the ground truth the promises are judged by: every publish with the job it carries
//! (its title), every status poll, and every limit Reelay should have kept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reelay_domain::compliance::CreatorInfo;
use reelay_domain::job::{Clip, PostMode, PostSettings, PrivacyLevel};
use reelay_domain::lifecycle::{ErrorClass, PublishStatus};
use reelay_domain::ports::{Clock, RefreshError, TokenRefresher, TokenSet};
use reelay_domain::upstream::{AuthApi, ObservedStatus, PublishApi, PublishInit, UpstreamError};
use reelay_domain::{PublishId, UtcTime};
use secrecy::{ExposeSecret, SecretString};

use crate::clock::SimClock;
use crate::faults::Chaos;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// How often each fault strikes while the run is not calm.
#[derive(Debug, Clone, Copy)]
pub struct TikTokFaults {
    pub init_5xx: f64,
    pub init_timeout_after_accept: f64,
    pub init_timeout_before_send: f64,
    pub init_429: f64,
    pub init_cap: f64,
    pub token_refused: f64,
    pub creator_5xx: f64,
    pub status_5xx: f64,
    pub upload_fail: f64,
    pub refresh_transient: f64,
    pub webhook_duplicate: f64,
    pub webhook_late: f64,
    pub revoke: f64,
}

impl Default for TikTokFaults {
    fn default() -> Self {
        Self {
            init_5xx: 0.08,
            init_timeout_after_accept: 0.08,
            init_timeout_before_send: 0.04,
            init_429: 0.04,
            init_cap: 0.02,
            token_refused: 0.03,
            creator_5xx: 0.04,
            status_5xx: 0.05,
            upload_fail: 0.05,
            refresh_transient: 0.1,
            webhook_duplicate: 0.3,
            webhook_late: 0.15,
            revoke: 0.0,
        }
    }
}

/// What becomes of a publish TikTok accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Posted after `processing`; a public post id after `moderation` more (if public).
    Complete {
        processing: Duration,
        moderation: Option<Duration>,
    },
    Failed {
        after: Duration,
        reason: String,
    },
    /// Never leaves processing.
    Stuck,
    /// A draft reaches the inbox `inbox` after its bytes; the creator posts it after `posted`
    /// more (or never).
    Draft {
        inbox: Duration,
        posted: Option<Duration>,
    },
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub publish_id: String,
    pub open_id: String,
    /// The job's title: how the ground truth knows which job a publish belongs to.
    pub title: String,
    pub mode: PostMode,
    pub created: UtcTime,
    pub file_upload: bool,
    /// When all bytes arrived (at once for a pull).
    pub bytes_at: Option<UtcTime>,
    pub fate: Fate,
    pub status: PublishStatus,
    pub post_ids: Vec<String>,
    /// The invocation whose init created it, and whether that init got its answer.
    pub init_by: Option<u64>,
    pub answered: bool,
    /// PUTs of its bytes, failed ones included.
    pub uploads: u32,
}

impl Publish {
    /// Whether this publish is or may still become a post (anything TikTok has not failed).
    pub fn may_post(&self) -> bool {
        !matches!(self.status, PublishStatus::Failed { .. })
    }

    pub fn posted(&self) -> bool {
        matches!(
            self.status,
            PublishStatus::Complete | PublishStatus::SentToInbox
        )
    }
}

/// A webhook TikTok has yet to deliver.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub at: UtcTime,
    pub open_id: String,
    pub what: WebhookKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookKind {
    Status {
        publish_id: String,
        status: PublishStatus,
        post_ids: Vec<String>,
    },
    NoLongerPublic {
        publish_id: String,
        post_id: String,
    },
    AuthorizationRemoved,
}

/// One status poll as TikTok saw it, with the start of the invocation that made it (a poll made
/// outside any invocation has none).
#[derive(Debug, Clone)]
pub struct Poll {
    pub publish_id: String,
    pub at: UtcTime,
    pub started: Option<UtcTime>,
}

#[derive(Debug, Clone)]
struct Creator {
    scopes: Vec<String>,
    privacy: Vec<PrivacyLevel>,
    revoked: bool,
    inits: Vec<UtcTime>,
    statuses: Vec<UtcTime>,
    creator_infos: Vec<UtcTime>,
    direct_posts: Vec<UtcTime>,
    drafts: Vec<UtcTime>,
}

#[derive(Debug, Clone)]
struct Token {
    open_id: String,
    refresh: bool,
    expires: UtcTime,
    valid: bool,
}

#[derive(Debug, Default)]
struct State {
    creators: BTreeMap<String, Creator>,
    tokens: BTreeMap<String, Token>,
    publishes: BTreeMap<String, Publish>,
    outbox: Vec<Webhook>,
    violations: Vec<String>,
    /// Every status poll: (publish_id, when).
    polls: Vec<Poll>,
    inits: u64,
    next: u64,
    /// The invocation whose init TikTok has just accepted (the driver may kill it right there,
    /// before it records the answer: the one crash that matters most for promise 1).
    just_accepted: Option<u64>,
}

/// The simulated TikTok (Reelay's `PublishApi`, `TokenRefresher` and `AuthApi`).
#[derive(Debug, Clone)]
pub struct TikTokSim {
    state: Arc<Mutex<State>>,
    clock: SimClock,
    chaos: Chaos,
    faults: TikTokFaults,
    /// TikTok's documented per-token windows and caps (the simulation's truth).
    pub init_per_minute: usize,
    pub status_per_minute: usize,
    pub creator_info_per_minute: usize,
    pub direct_posts_per_day: usize,
    pub drafts_per_day: usize,
    /// What becomes of a FILE_UPLOAD publish whose bytes never came within the upload URL's
    /// hour: TikTok does not say, so runs differ (`true`: FAILED, `false`: processing forever).
    pub expired_upload_fails: bool,
    /// Clips come from a verified prefix: TikTok pulls them (PULL_FROM_URL), no bytes are sent,
    /// and a publish may finish (and its webhook arrive) before Reelay has recorded it.
    pub pull: bool,
}

fn err(class: ErrorClass, code: &str, unknown: bool) -> UpstreamError {
    UpstreamError {
        class,
        code: code.into(),
        message: format!("simulated TikTok: {code}"),
        log_id: Some("20261202SIMLOG".into()),
        retry_at: None,
        outcome_unknown: unknown,
    }
}

/// Takes in the window `(now - period, now]` counted so far.
fn used(log: &[UtcTime], now: UtcTime, period: Duration) -> usize {
    let start = now.minus(period);
    log.iter().filter(|t| **t > start && **t <= now).count()
}

impl TikTokSim {
    pub fn new(clock: SimClock, chaos: Chaos, faults: TikTokFaults) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            clock,
            chaos,
            faults,
            init_per_minute: 6,
            status_per_minute: 30,
            creator_info_per_minute: 20,
            direct_posts_per_day: 15,
            drafts_per_day: 5,
            expired_upload_fails: false,
            pull: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A creator who can log in as `open_id`, granting `scopes`.
    pub fn add_creator(&self, open_id: &str, scopes: &[&str]) {
        self.lock().creators.insert(
            open_id.to_owned(),
            Creator {
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                privacy: vec![PrivacyLevel::PublicToEveryone, PrivacyLevel::SelfOnly],
                revoked: false,
                inits: Vec::new(),
                statuses: Vec::new(),
                creator_infos: Vec::new(),
                direct_posts: Vec::new(),
                drafts: Vec::new(),
            },
        );
    }

    /// The creator removes the app: every token dies, `authorization.removed` is sent.
    pub fn revoke(&self, open_id: &str) {
        let now = self.clock.now();
        let mut s = self.lock();
        if let Some(c) = s.creators.get_mut(open_id) {
            c.revoked = true;
        }
        for t in s.tokens.values_mut().filter(|t| t.open_id == open_id) {
            t.valid = false;
        }
        s.outbox.push(Webhook {
            at: now.plus(Duration::from_secs(5)),
            open_id: open_id.to_owned(),
            what: WebhookKind::AuthorizationRemoved,
        });
    }

    /// The creator connects again (a new OAuth grant).
    pub fn restore(&self, open_id: &str) {
        if let Some(c) = self.lock().creators.get_mut(open_id) {
            c.revoked = false;
        }
    }

    fn mint(&self, s: &mut State, open_id: &str, now: UtcTime) -> TokenSet {
        s.next += 1;
        let n = s.next;
        let access = format!("act.{open_id}.{n}");
        let refresh = format!("rft.{open_id}.{n}");
        s.tokens.insert(
            access.clone(),
            Token {
                open_id: open_id.to_owned(),
                refresh: false,
                expires: now.plus(DAY),
                valid: true,
            },
        );
        s.tokens.insert(
            refresh.clone(),
            Token {
                open_id: open_id.to_owned(),
                refresh: true,
                expires: now.plus(DAY * 365),
                valid: true,
            },
        );
        let scopes = s
            .creators
            .get(open_id)
            .map(|c| c.scopes.clone())
            .unwrap_or_default();
        TokenSet {
            access_token: SecretString::from(access),
            access_expires_at: now.plus(DAY),
            refresh_token: SecretString::from(refresh),
            refresh_expires_at: now.plus(DAY * 365),
            open_id: open_id.to_owned(),
            scopes,
        }
    }

    /// The creator behind a live access token, or TikTok's 401.
    fn creator_of(
        &self,
        s: &State,
        token: &SecretString,
        now: UtcTime,
    ) -> Result<String, UpstreamError> {
        match s.tokens.get(token.expose_secret()) {
            Some(t) if t.valid && !t.refresh && t.expires > now => {
                if s.creators.get(&t.open_id).is_some_and(|c| c.revoked) {
                    return Err(err(
                        ErrorClass::RefreshThenRetry,
                        "access_token_invalid",
                        false,
                    ));
                }
                Ok(t.open_id.clone())
            }
            _ => Err(err(
                ErrorClass::RefreshThenRetry,
                "access_token_invalid",
                false,
            )),
        }
    }

    fn webhook(&self, s: &mut State, open_id: &str, what: WebhookKind, now: UtcTime) {
        let late = self.chaos.roll(self.faults.webhook_late);
        let delay = if late {
            Duration::from_secs(3600 + self.clock.below(47 * 3600))
        } else {
            Duration::from_secs(self.clock.below(30))
        };
        s.outbox.push(Webhook {
            at: now.plus(delay),
            open_id: open_id.to_owned(),
            what: what.clone(),
        });
        if self.chaos.roll(self.faults.webhook_duplicate) {
            s.outbox.push(Webhook {
                at: now
                    .plus(delay)
                    .plus(Duration::from_secs(self.clock.below(6 * 3600))),
                open_id: open_id.to_owned(),
                what,
            });
        }
    }

    fn set_status(&self, s: &mut State, pid: &str, status: PublishStatus, now: UtcTime) {
        let Some(p) = s.publishes.get_mut(pid) else {
            return;
        };
        if p.status == status {
            return;
        }
        p.status = status.clone();
        let (open_id, post_ids) = (p.open_id.clone(), p.post_ids.clone());
        self.webhook(
            s,
            &open_id,
            WebhookKind::Status {
                publish_id: pid.to_owned(),
                status,
                post_ids,
            },
            now,
        );
    }

    /// Moves every publish's status machine to `now`, queueing the webhooks it sends.
    pub fn advance(&self) {
        let now = self.clock.now();
        let mut s = self.lock();
        let pids: Vec<String> = s.publishes.keys().cloned().collect();
        for pid in pids {
            let Some(p) = s.publishes.get(&pid).cloned() else {
                continue;
            };
            let Some(ready) = p.bytes_at else {
                if self.expired_upload_fails && now >= p.created.plus(Duration::from_secs(3600)) {
                    let failed = PublishStatus::Failed {
                        reason: "internal".into(),
                    };
                    self.set_status(&mut s, &pid, failed, now);
                }
                continue;
            };
            match &p.fate {
                Fate::Complete {
                    processing,
                    moderation,
                } => {
                    let done = ready.plus(*processing);
                    if now >= done && p.status != PublishStatus::Complete {
                        self.set_status(&mut s, &pid, PublishStatus::Complete, now);
                    }
                    if let Some(m) = moderation
                        && now >= done.plus(*m)
                        && p.post_ids.is_empty()
                    {
                        let post_id = format!(
                            "76{:017}",
                            ready.as_millis().unsigned_abs() % 100_000_000_000_000_000
                        );
                        if let Some(q) = s.publishes.get_mut(&pid) {
                            q.post_ids.push(post_id.clone());
                        }
                        self.webhook(
                            &mut s,
                            &p.open_id,
                            WebhookKind::Status {
                                publish_id: pid.clone(),
                                status: PublishStatus::Complete,
                                post_ids: vec![post_id],
                            },
                            now,
                        );
                    }
                }
                Fate::Failed { after, reason } => {
                    if now >= ready.plus(*after) {
                        let failed = PublishStatus::Failed {
                            reason: reason.clone(),
                        };
                        self.set_status(&mut s, &pid, failed, now);
                    }
                }
                Fate::Stuck => {}
                Fate::Draft { inbox, posted } => {
                    let inbox = ready.plus(*inbox);
                    if now >= inbox && p.status != PublishStatus::Complete {
                        self.set_status(&mut s, &pid, PublishStatus::SentToInbox, now);
                    }
                    if let Some(after) = posted
                        && now >= inbox.plus(*after)
                    {
                        self.set_status(&mut s, &pid, PublishStatus::Complete, now);
                    }
                }
            }
        }
    }

    /// The next instant a publish changes by itself (for moving time on).
    pub fn next_change(&self) -> Option<UtcTime> {
        let now = self.clock.now();
        let s = self.lock();
        let mut next: Option<UtcTime> = None;
        let mut consider = |t: UtcTime| {
            if t > now {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for p in s.publishes.values() {
            let Some(ready) = p.bytes_at else {
                if self.expired_upload_fails && p.may_post() {
                    consider(p.created.plus(Duration::from_secs(3600)));
                }
                continue;
            };
            match &p.fate {
                Fate::Complete {
                    processing,
                    moderation,
                } => {
                    consider(ready.plus(*processing));
                    if let Some(m) = moderation
                        && p.post_ids.is_empty()
                    {
                        consider(ready.plus(*processing).plus(*m));
                    }
                }
                Fate::Failed { after, .. } => consider(ready.plus(*after)),
                Fate::Stuck => {}
                Fate::Draft { inbox, posted } => {
                    let inbox = ready.plus(*inbox);
                    consider(inbox);
                    if let Some(a) = posted {
                        consider(inbox.plus(*a));
                    }
                }
            }
        }
        for w in &s.outbox {
            consider(w.at);
        }
        next
    }

    /// Webhooks due now, taken out of the outbox.
    pub fn due_webhooks(&self) -> Vec<Webhook> {
        let now = self.clock.now();
        let mut s = self.lock();
        let (due, later): (Vec<_>, Vec<_>) = s.outbox.drain(..).partition(|w| w.at <= now);
        s.outbox = later;
        due
    }

    pub fn has_pending_webhooks(&self) -> bool {
        !self.lock().outbox.is_empty()
    }

    pub fn publishes(&self) -> Vec<Publish> {
        self.lock().publishes.values().cloned().collect()
    }

    pub fn publishes_of(&self, title: &str) -> Vec<Publish> {
        self.lock()
            .publishes
            .values()
            .filter(|p| p.title == title)
            .cloned()
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Status polls since the `from`-th.
    pub fn polls_since(&self, from: usize) -> Vec<Poll> {
        self.lock().polls.iter().skip(from).cloned().collect()
    }

    pub fn poll_count(&self) -> usize {
        self.lock().polls.len()
    }

    pub fn inits(&self) -> u64 {
        self.lock().inits
    }

    /// The invocation whose init was just accepted, if one was since the last call.
    pub fn take_just_accepted(&self) -> Option<u64> {
        self.lock().just_accepted.take()
    }

    fn choose_fate(&self, mode: PostMode, public: bool) -> Fate {
        let secs = |lo: u64, hi: u64| Duration::from_secs(lo + self.clock.below(hi - lo));
        if mode == PostMode::Draft {
            return Fate::Draft {
                inbox: secs(5, 1800),
                posted: (self.clock.below(2) == 0).then(|| secs(60, 6 * 3600)),
            };
        }
        match self.clock.below(20) {
            0 | 1 => Fate::Failed {
                after: secs(5, 600),
                reason: "internal".into(),
            },
            2 => Fate::Failed {
                after: secs(5, 600),
                reason: [
                    "frame_rate_check_failed",
                    "spam_risk_text",
                    "picture_size_check_failed",
                ][self.clock.below(3) as usize]
                    .into(),
            },
            3 => Fate::Stuck,
            // Moderation that hides a post past the processing horizon (24 h).
            4 => Fate::Complete {
                processing: secs(25 * 3600, 40 * 3600),
                moderation: public.then(|| secs(60, 3600)),
            },
            _ => Fate::Complete {
                processing: secs(5, 900),
                moderation: public.then(|| secs(10, 4 * 3600)),
            },
        }
    }
}

impl PublishApi for TikTokSim {
    async fn creator_info(&self, token: &SecretString) -> Result<CreatorInfo, UpstreamError> {
        if self.chaos.point("publish.creator_info").await {
            return Err(err(ErrorClass::Retryable, "internal_error", false));
        }
        let now = self.clock.now();
        let mut s = self.lock();
        let open_id = self.creator_of(&s, token, now)?;
        let limit = self.creator_info_per_minute;
        let Some(c) = s.creators.get_mut(&open_id) else {
            return Err(err(
                ErrorClass::RefreshThenRetry,
                "access_token_invalid",
                false,
            ));
        };
        c.creator_infos.push(now);
        if used(&c.creator_infos, now, MINUTE) > limit {
            let v = format!("creator_info over {limit}/min for {open_id} at {now}");
            s.violations.push(v);
            return Err(err(ErrorClass::Retryable, "rate_limit_exceeded", false));
        }
        if self.chaos.roll(self.faults.creator_5xx) {
            return Err(err(ErrorClass::Retryable, "internal_error", false));
        }
        let c = &s.creators[&open_id];
        Ok(CreatorInfo {
            nickname: open_id.clone(),
            username: None,
            privacy_level_options: c.privacy.clone(),
            comment_disabled: false,
            duet_disabled: false,
            stitch_disabled: false,
            max_video_post_duration_sec: Some(600),
            cannot_post_reason: None,
        })
    }

    async fn clip_size(&self, _clip: &Clip, _deadline: UtcTime) -> Result<u64, UpstreamError> {
        if self.chaos.point("publish.clip_size").await {
            return Err(err(ErrorClass::Retryable, "clip_unreachable", false));
        }
        Ok(4 * 1024 * 1024)
    }

    async fn init(
        &self,
        token: &SecretString,
        post: &PostSettings,
        _clip: &Clip,
        _video_size: u64,
    ) -> Result<PublishInit, UpstreamError> {
        let _ = self.chaos.point("publish.init").await;
        let now = self.clock.now();
        let f = self.faults;
        if self.chaos.roll(f.init_timeout_before_send) {
            return Err(err(ErrorClass::Retryable, "upstream_timeout", true));
        }
        let mut s = self.lock();
        let open_id = self.creator_of(&s, token, now)?;
        if self.chaos.roll(f.token_refused) {
            return Err(err(
                ErrorClass::RefreshThenRetry,
                "access_token_invalid",
                false,
            ));
        }
        let title = post.title.clone().unwrap_or_default();
        let (per_minute, direct_cap, draft_cap) = (
            self.init_per_minute,
            self.direct_posts_per_day,
            self.drafts_per_day,
        );
        let Some(c) = s.creators.get_mut(&open_id) else {
            return Err(err(
                ErrorClass::RefreshThenRetry,
                "access_token_invalid",
                false,
            ));
        };
        c.inits.push(now);
        let over_rate = used(&c.inits, now, MINUTE) > per_minute;
        let cap_log = match post.mode {
            PostMode::Direct => &mut c.direct_posts,
            PostMode::Draft => &mut c.drafts,
        };
        let cap = if post.mode == PostMode::Direct {
            direct_cap
        } else {
            draft_cap
        };
        let over_cap = used(cap_log, now, DAY) >= cap;
        if over_rate {
            s.violations
                .push(format!("init over {per_minute}/min for {open_id} at {now}"));
            return Err(err(ErrorClass::Retryable, "rate_limit_exceeded", false));
        }
        if over_cap {
            s.violations.push(format!(
                "{:?} cap of {cap}/day exceeded for {open_id} at {now}",
                post.mode
            ));
            return Err(err(
                ErrorClass::WaitForWindow,
                "spam_risk_too_many_posts",
                false,
            ));
        }
        if self.chaos.roll(f.init_429) {
            return Err(err(ErrorClass::Retryable, "rate_limit_exceeded", false));
        }
        if self.chaos.roll(f.init_cap) {
            return Err(err(
                ErrorClass::WaitForWindow,
                "spam_risk_too_many_posts",
                false,
            ));
        }
        if self.chaos.roll(f.init_5xx) {
            return Err(err(ErrorClass::Retryable, "internal_error", false));
        }
        // The promise: no init for a job while another of its publishes may still post.
        let open: Vec<String> = s
            .publishes
            .values()
            .filter(|p| p.title == title && p.may_post())
            .map(|p| format!("{} ({:?})", p.publish_id, p.status))
            .collect();
        if !open.is_empty() {
            s.violations.push(format!(
                "init for job {title:?} at {now} while earlier publishes may still post: {open:?}"
            ));
        }
        if let Some(c) = s.creators.get_mut(&open_id) {
            match post.mode {
                PostMode::Direct => c.direct_posts.push(now),
                PostMode::Draft => c.drafts.push(now),
            }
        }
        s.inits += 1;
        s.next += 1;
        let n = s.next;
        let kind = if post.mode == PostMode::Draft {
            "inbox"
        } else {
            "pub"
        };
        let publish_id = format!("v_{kind}_file~v2-1.{n}");
        let public = post.privacy_level == Some(PrivacyLevel::PublicToEveryone);
        let fate = self.choose_fate(post.mode, public);
        // Pulled: TikTok has the bytes a moment later, whatever happens to the publisher.
        let bytes_at = self
            .pull
            .then(|| now.plus(Duration::from_secs(1 + self.clock.below(60))));
        self.clock
            .note(|| format!("tiktok init {publish_id} for {title}"));
        s.publishes.insert(
            publish_id.clone(),
            Publish {
                publish_id: publish_id.clone(),
                open_id,
                title,
                mode: post.mode,
                created: now,
                file_upload: !self.pull,
                bytes_at,
                fate,
                status: PublishStatus::Processing,
                post_ids: Vec::new(),
                init_by: self.clock.current(),
                answered: true,
                uploads: 0,
            },
        );
        if self.chaos.roll(f.init_timeout_after_accept) {
            // TikTok created the publish; the answer never arrived.
            if let Some(p) = s.publishes.get_mut(&publish_id) {
                p.answered = false;
            }
            return Err(err(ErrorClass::Retryable, "upstream_timeout", true));
        }
        drop(s);
        self.lock().just_accepted = self.clock.current();
        let upload_url = (!self.pull)
            .then(|| SecretString::from(format!("https://upload.tiktok.sim/{publish_id}")));
        Ok(PublishInit {
            publish_id: PublishId::parse(publish_id.clone())
                .map_err(|_| err(ErrorClass::Permanent, "bad_publish_id", false))?,
            upload_url,
            log_id: Some(format!("LOG{n}")),
        })
    }

    async fn upload(
        &self,
        upload_url: &SecretString,
        _clip: &Clip,
        _video_size: u64,
        _deadline: UtcTime,
    ) -> Result<(), UpstreamError> {
        let down = self.chaos.point("publish.upload").await;
        let now = self.clock.now();
        let pid = upload_url
            .expose_secret()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut s = self.lock();
        if let Some(p) = s.publishes.get_mut(&pid) {
            p.uploads += 1;
        }
        if down || self.chaos.roll(self.faults.upload_fail) {
            return Err(err(ErrorClass::Retryable, "upload_failed", false));
        }
        match s.publishes.get_mut(&pid) {
            Some(p) if p.bytes_at.is_none() => {
                p.bytes_at = Some(now);
                Ok(())
            }
            Some(_) => {
                s.violations.push(format!("bytes for {pid} sent twice"));
                Ok(())
            }
            None => Err(err(ErrorClass::Permanent, "invalid_upload_url", false)),
        }
    }

    async fn status(
        &self,
        token: &SecretString,
        publish_id: &PublishId,
    ) -> Result<ObservedStatus, UpstreamError> {
        if self.chaos.point("publish.status").await {
            return Err(err(ErrorClass::Retryable, "internal_error", false));
        }
        let now = self.clock.now();
        let mut s = self.lock();
        let open_id = self.creator_of(&s, token, now)?;
        let limit = self.status_per_minute;
        s.polls.push(Poll {
            publish_id: publish_id.as_str().to_owned(),
            at: now,
            started: self.clock.current_started(),
        });
        self.clock.note(|| format!("tiktok status {publish_id}"));
        let Some(c) = s.creators.get_mut(&open_id) else {
            return Err(err(
                ErrorClass::RefreshThenRetry,
                "access_token_invalid",
                false,
            ));
        };
        c.statuses.push(now);
        if used(&c.statuses, now, MINUTE) > limit {
            s.violations
                .push(format!("status over {limit}/min for {open_id} at {now}"));
            return Err(err(ErrorClass::Retryable, "rate_limit_exceeded", false));
        }
        if self.chaos.roll(self.faults.status_5xx) {
            return Err(err(ErrorClass::Retryable, "internal_error", false));
        }
        match s.publishes.get(publish_id.as_str()) {
            Some(p) if p.open_id == open_id => Ok(ObservedStatus {
                status: p.status.clone(),
                post_ids: p.post_ids.clone(),
                log_id: Some("STATUSLOG".into()),
            }),
            Some(_) => Err(err(
                ErrorClass::Permanent,
                "token_not_authorized_for_specified_publish_id",
                false,
            )),
            None => Err(err(ErrorClass::Permanent, "invalid_publish_id", false)),
        }
    }
}

impl TokenRefresher for TikTokSim {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, RefreshError> {
        let _ = self.chaos.point("refresher.refresh").await;
        if self.chaos.roll(self.faults.refresh_transient) {
            return Err(RefreshError::Transient("simulated 5xx".into()));
        }
        let now = self.clock.now();
        let mut s = self.lock();
        let open_id = match s.tokens.get(refresh_token.expose_secret()) {
            Some(t) if t.valid && t.refresh && t.expires > now => t.open_id.clone(),
            _ => return Err(RefreshError::Rejected),
        };
        if s.creators.get(&open_id).is_none_or(|c| c.revoked) {
            return Err(RefreshError::Rejected);
        }
        // TikTok rotates: the refresh token just used stops working.
        if let Some(t) = s.tokens.get_mut(refresh_token.expose_secret()) {
            t.valid = false;
        }
        Ok(self.mint(&mut s, &open_id, now))
    }
}

/// The one redirect URI the simulated app registered: the API's OAuth callback.
pub const REGISTERED_REDIRECT: &str = "https://api.reelay.sim/v1/accounts/oauth/callback";

impl AuthApi for TikTokSim {
    fn authorize_url(
        &self,
        state: &str,
        _mode: PostMode,
        redirect_uri: &str,
    ) -> Result<String, UpstreamError> {
        if redirect_uri != REGISTERED_REDIRECT {
            return Err(err(ErrorClass::Permanent, "invalid_request", false));
        }
        Ok(format!("https://tiktok.sim/authorize?state={state}"))
    }

    async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenSet, UpstreamError> {
        let _ = self.chaos.point("auth.exchange_code").await;
        // TikTok refuses an exchange whose redirect is not the app's registered one (the link's).
        if redirect_uri != REGISTERED_REDIRECT {
            return Err(err(ErrorClass::Permanent, "invalid_request", false));
        }
        let now = self.clock.now();
        let open_id = code.strip_prefix("code-").unwrap_or_default().to_owned();
        let mut s = self.lock();
        if !s.creators.contains_key(&open_id) {
            return Err(err(ErrorClass::Permanent, "invalid_grant", false));
        }
        Ok(self.mint(&mut s, &open_id, now))
    }
    /// The creator's grants stop working (TikTok's revoke removes the authorisation).
    async fn revoke(&self, access_token: &SecretString) -> Result<(), UpstreamError> {
        let _ = self.chaos.point("auth.revoke").await;
        let mut s = self.lock();
        let open_id = s
            .tokens
            .get(access_token.expose_secret())
            .map(|t| t.open_id.clone());
        if let Some(open_id) = open_id {
            for t in s.tokens.values_mut().filter(|t| t.open_id == open_id) {
                t.valid = false;
            }
        }
        Ok(())
    }
}
