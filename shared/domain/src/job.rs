//! The job aggregate: what a client asked for, where it is in its lifecycle, and what the
//! upstreams said about it. Every change goes through [`Job::apply`], which asks the
//! lifecycle table and records one audit event.

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, IdempotencyKey, JobId, PublishId, RequestId, TenantId};
use crate::lifecycle::{
    self, CheckKind, Decision, Effect, ErrorClass, Event, JobState, Policy, TransitionError,
};
use crate::time::UtcTime;

/// Where the clip comes from: a source to render, or a render that already exists
/// (one render fanned out to many accounts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSource {
    Render(RenderRequest),
    Rendered { request_id: RequestId },
}

/// What Ssemble is asked to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderRequest {
    pub media: MediaSource,
    pub start: f64,
    pub end: f64,
    /// Ssemble's optional create fields (preferredLength, language, templateId, …), passed on as given.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub options: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaSource {
    Url(String),
    FileUrl(String),
}

/// Direct post to the profile, or an inbox draft the creator finishes in the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostMode {
    Direct,
    Draft,
}

/// TikTok's privacy levels. There is deliberately no default: the audit forbids one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PrivacyLevel {
    PublicToEveryone,
    MutualFollowFriends,
    FollowerOfCreator,
    SelfOnly,
}

impl PrivacyLevel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PublicToEveryone => "PUBLIC_TO_EVERYONE",
            Self::MutualFollowFriends => "MUTUAL_FOLLOW_FRIENDS",
            Self::FollowerOfCreator => "FOLLOWER_OF_CREATOR",
            Self::SelfOnly => "SELF_ONLY",
        }
    }
}

/// Which rendered clip to post.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum ClipChoice {
    #[default]
    TopViralScore,
    ShortId(String),
}

/// The post as the client described it; checked against the creator's settings before init.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostSettings {
    pub mode: PostMode,
    /// Required for direct posts, ignored for drafts (the creator chooses in the app).
    pub privacy_level: Option<PrivacyLevel>,
    pub title: Option<String>,
    pub disable_comment: bool,
    pub disable_duet: bool,
    pub disable_stitch: bool,
    pub brand_content_toggle: bool,
    pub brand_organic_toggle: bool,
    pub is_aigc: bool,
    pub video_cover_timestamp_ms: Option<u32>,
    #[serde(default)]
    pub clip: ClipChoice,
}

/// The rendered clip chosen for posting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Clip {
    pub short_id: String,
    pub video_url: String,
    pub duration_secs: Option<f64>,
    pub viral_score: Option<f64>,
}

/// The last error an upstream or Reelay reported, kept for triage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobError {
    pub code: String,
    pub message: String,
    pub upstream_log_id: Option<String>,
}

/// Why a job is waiting although it could otherwise move (account needs re-authorisation,
/// a daily cap, a rate window). Shown to clients; cleared when the job moves on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub reason: String,
    pub until: Option<UtcTime>,
    /// When this reason first held the job: rechecks of a hold without an end grow with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<UtcTime>,
}

/// The next time the reconciler must look at this job, and why. Only non-terminal jobs have one;
/// it feeds the sparse due-work index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextCheck {
    pub at: UtcTime,
    pub kind: CheckKind,
}

/// Webhook tokens kept per job (one per render submission).
const MAX_WEBHOOK_TOKENS: usize = 5;

/// One audited transition: who moved the job where, with the upstream references of that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub at: UtcTime,
    pub version: u64,
    pub event: String,
    pub from: Option<JobState>,
    pub to: JobState,
    pub request_id: Option<RequestId>,
    pub publish_id: Option<PublishId>,
    pub error_code: Option<String>,
    pub upstream_log_id: Option<String>,
    pub detail: Option<String>,
    /// The API request (`X-Request-Id`) that caused this event, for events a client's request
    /// made (the creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: JobId,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub source: JobSource,
    pub post: PostSettings,
    pub schedule_at: UtcTime,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The API request (`X-Request-Id`) that created the job: carried on its queue messages and
    /// on the pipeline's log lines about it, so a client's report leads to every step.
    #[serde(default)]
    pub api_request_id: Option<String>,
    pub state: JobState,
    /// Bumped by every stored transition; writes are conditional on it.
    pub version: u64,
    /// When the job entered its current state; polling backs off with this age.
    pub state_since: UtcTime,
    pub created_at: UtcTime,
    pub updated_at: UtcTime,
    pub request_id: Option<RequestId>,
    pub clip: Option<Clip>,
    pub publish_id: Option<PublishId>,
    /// Public post ids as decimal strings (19-digit int64s lose precision as JSON numbers elsewhere).
    pub post_ids: Vec<String>,
    /// Publish attempts started (inits sent or about to be sent).
    pub attempt: u32,
    /// Inits that a rate window turned away; they do not count towards the attempt budget.
    #[serde(default)]
    pub delayed_attempts: u32,
    /// Ssemble creates started. Above `render_rejections`, a resubmission must first look for an
    /// earlier request.
    pub render_attempts: u32,
    /// Creates Ssemble definitively refused (a 429 or 4xx answer): they made no request, so they
    /// need no look-up, whose worst-case budget would otherwise be spent at every retry.
    #[serde(default)]
    pub render_rejections: u32,
    /// Creates a rate window (429) turned away: they never count towards the attempt limit.
    #[serde(default)]
    pub render_delays: u32,
    /// The render submission in flight holds the job until then; a duplicate message must not
    /// start a second create while the first may still be landing at Ssemble.
    #[serde(default)]
    pub render_lease_until: Option<UtcTime>,
    /// Counted publish attempts spent before the last explicit retry.
    #[serde(default)]
    pub retried_attempts: u32,
    /// Every `publish_id` this job ever had, one per accepted attempt: each keeps pointing at the
    /// job, so a late observation of an earlier attempt is recognised (and never applied).
    #[serde(default)]
    pub publish_ids: Vec<PublishId>,
    /// Observations of other attempts recorded in the audit (bounded by the policy).
    #[serde(default)]
    pub stale_observations: u32,
    /// SHA-256 (hex) of the per-job tokens in Ssemble webhook URLs; only their holder can call back.
    #[serde(default)]
    pub webhook_token_hashes: Vec<String>,
    pub last_error: Option<JobError>,
    pub hold: Option<Hold>,
    pub next_check: Option<NextCheck>,
    /// Set when TikTok reports the post is no longer public.
    pub taken_down_at: Option<UtcTime>,
    /// The job of the same batch and source whose render this one shares (one render fanned
    /// out to several accounts, one credit): it attaches to that job's `requestId` instead of
    /// creating its own, and renders itself only if that job ends without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_out_parent: Option<JobId>,
    /// The id the client chose (`jobId` on the create), when it chose one: the job is kept under
    /// [`JobId::scoped`] of it, and the client sees and addresses it by this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_job_id: Option<JobId>,
}

/// A lookup item a transition must write with the job: `requestId` → jobs, `publish_id` → job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pointer {
    Request(RequestId),
    Publish(PublishId),
}

/// A stored transition: the job after the event, the audit record and pointers to write with it,
/// and the side effects to run once the conditional write has won.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub job: Job,
    pub audit: AuditEvent,
    pub pointers: Vec<Pointer>,
    pub effects: Vec<Effect>,
}

/// A new next check (and hold) for the same state and version: no audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rescheduled {
    pub job: Job,
    pub effects: Vec<Effect>,
}

/// The outcome of offering an event to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The job moved (or recorded something): write it conditionally on the old version.
    Applied(Box<Applied>),
    /// Only the next check moved: write it conditionally on the (unchanged) version.
    Rescheduled(Box<Rescheduled>),
    /// A duplicate or late event: nothing to write.
    Absorbed,
}

/// The audit event name of an observation recorded but not applied.
pub const STALE_OBSERVATION: &str = "stale_observation";

impl Job {
    /// The id its tenant knows it by: the one the client chose, else the one Reelay gave it.
    pub fn public_id(&self) -> &JobId {
        self.client_job_id.as_ref().unwrap_or(&self.id)
    }

    /// Whether this is the job `tenant` knows as `id` (its own, under the id it sees).
    pub fn known_to(&self, tenant: &TenantId, id: &JobId) -> bool {
        &self.tenant_id == tenant && self.public_id() == id
    }

    /// A new job in its initial state, with its first audit event and effects.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        id: JobId,
        tenant_id: TenantId,
        account_id: AccountId,
        source: JobSource,
        post: PostSettings,
        schedule_at: UtcTime,
        idempotency_key: Option<IdempotencyKey>,
        now: UtcTime,
        policy: &Policy,
    ) -> Applied {
        let (state, request_id) = match &source {
            JobSource::Render(_) => (JobState::Received, None),
            JobSource::Rendered { request_id } => (JobState::Rendering, Some(request_id.clone())),
        };
        let (effects, next_check) = lifecycle::initial_effects(state, now, policy);
        let job = Job {
            id,
            tenant_id,
            account_id,
            source,
            post,
            schedule_at,
            idempotency_key,
            api_request_id: None,
            state,
            version: 1,
            state_since: now,
            created_at: now,
            updated_at: now,
            request_id: request_id.clone(),
            clip: None,
            publish_id: None,
            post_ids: Vec::new(),
            attempt: 0,
            delayed_attempts: 0,
            render_attempts: 0,
            render_rejections: 0,
            render_delays: 0,
            render_lease_until: None,
            retried_attempts: 0,
            publish_ids: Vec::new(),
            stale_observations: 0,
            webhook_token_hashes: Vec::new(),
            last_error: None,
            hold: None,
            next_check,
            taken_down_at: None,
            fan_out_parent: None,
            client_job_id: None,
        };
        let audit = AuditEvent {
            at: now,
            version: 1,
            event: "created".into(),
            from: None,
            to: state,
            request_id: request_id.clone(),
            publish_id: None,
            error_code: None,
            upstream_log_id: None,
            detail: None,
            api_request_id: None,
        };
        let pointers = request_id.into_iter().map(Pointer::Request).collect();
        Applied {
            job,
            audit,
            pointers,
            effects,
        }
    }

    /// Offers `event` to the job. The lifecycle table decides the next state; this records the
    /// event's data on the new version of the job.
    pub fn apply(
        &self,
        event: &Event,
        now: UtcTime,
        policy: &Policy,
    ) -> Result<Step, TransitionError> {
        let (to, effects, next_check, hold) = match lifecycle::decide(self, event, now, policy)? {
            Decision::Absorb => return Ok(Step::Absorbed),
            Decision::Reschedule {
                next_check,
                hold,
                effects,
            } => {
                if next_check == self.next_check && hold == self.hold && effects.is_empty() {
                    return Ok(Step::Absorbed);
                }
                let mut job = self.clone();
                job.next_check = next_check;
                job.hold = hold;
                return Ok(Step::Rescheduled(Box::new(Rescheduled { job, effects })));
            }
            Decision::Stale { why } => return Ok(self.stale(event, &why, now)),
            Decision::Move {
                to,
                effects,
                next_check,
                hold,
            } => (to, effects, next_check, hold),
        };
        let mut job = self.clone();
        if to != self.state {
            job.state_since = now;
        }
        job.state = to;
        job.version = self.version.saturating_add(1);
        job.updated_at = now;
        job.next_check = next_check;
        job.hold = hold;
        job.record(event, self.state);
        if to != self.state
            && matches!(
                to,
                JobState::Submitted | JobState::PublishComplete | JobState::PubliclyAvailable
            )
        {
            // TikTok has the post: no earlier error describes the job any more.
            job.last_error = None;
        }
        // A failure or an unknown outcome must say why (the audit promise), also when no upstream
        // said anything: the deadline that passed, or the publisher lease that expired, is it.
        let event_error = event.error();
        let fallback = (event_error.is_none()
            && to != self.state
            && matches!(
                to,
                JobState::RenderFailed | JobState::PublishFailed | JobState::PublishUnknown
            ))
        .then(|| self.fallback_error(event));
        if let Some(error) = &fallback {
            job.last_error = Some(error.clone());
        }
        if effects
            .iter()
            .any(|e| matches!(e, Effect::InitPublish { .. }))
        {
            job.attempt = job.attempt.saturating_add(1);
        }
        if let Event::PublishRejected { error, .. } = event
            && policy.is_delay_only(&error.code)
        {
            job.delayed_attempts = job.delayed_attempts.saturating_add(1);
        }
        if matches!(event, Event::RenderSubmitStarted { .. }) {
            job.render_lease_until = next_check.map(|c| c.at);
        }
        let pointers = self.new_pointers(&job);
        let audit = AuditEvent {
            at: now,
            version: job.version,
            event: event.name().into(),
            from: Some(self.state),
            to,
            request_id: job.request_id.clone(),
            publish_id: job.publish_id.clone(),
            error_code: event_error.or(fallback).map(|e| e.code),
            upstream_log_id: event.upstream_log_id(),
            detail: event.detail(),
            api_request_id: None,
        };
        Ok(Step::Applied(Box::new(Applied {
            job,
            audit,
            pointers,
            effects,
        })))
    }

    /// An observation of another attempt: recorded as such (its `publish_id` too, so its later
    /// webhooks find this job), the job itself unchanged.
    fn stale(&self, event: &Event, why: &str, now: UtcTime) -> Step {
        let mut job = self.clone();
        job.version = self.version.saturating_add(1);
        job.updated_at = now;
        job.stale_observations = job.stale_observations.saturating_add(1);
        if let Event::PublishAccepted { publish_id, .. } = event
            && !job.publish_ids.contains(publish_id)
        {
            job.publish_ids.push(publish_id.clone());
        }
        let pointers = self.new_pointers(&job);
        let audit = AuditEvent {
            at: now,
            version: job.version,
            event: STALE_OBSERVATION.into(),
            from: Some(self.state),
            to: self.state,
            request_id: job.request_id.clone(),
            publish_id: job.publish_id.clone(),
            error_code: None,
            upstream_log_id: event.upstream_log_id(),
            detail: Some(format!("{}: {why}", event.name())),
            api_request_id: None,
        };
        Step::Applied(Box::new(Applied {
            job,
            audit,
            pointers,
            effects: Vec::new(),
        }))
    }

    /// The lookups `next` needs that this version did not have.
    fn new_pointers(&self, next: &Job) -> Vec<Pointer> {
        let mut out = Vec::new();
        if let Some(r) = &next.request_id
            && self.request_id.as_ref() != Some(r)
        {
            out.push(Pointer::Request(r.clone()));
        }
        for p in &next.publish_ids {
            if !self.publish_ids.contains(p) {
                out.push(Pointer::Publish(p.clone()));
            }
        }
        out
    }

    /// Why a job failed or parked when the event itself carries no upstream error.
    fn fallback_error(&self, event: &Event) -> JobError {
        let code = match event {
            Event::Expired => "deadline_exceeded".to_owned(),
            // The render submissions ran out: the last thing Ssemble said is the reason.
            Event::SubmitDue => self.last_error.as_ref().map_or_else(
                || "render_attempts_exhausted".to_owned(),
                |e| e.code.clone(),
            ),
            other => other.name().to_owned(),
        };
        JobError {
            code,
            message: format!("{} while {}", event.name(), self.state.as_str()),
            upstream_log_id: None,
        }
    }

    /// Copies what an event carries onto the job, which is leaving `from`.
    fn record(&mut self, event: &Event, from: JobState) {
        match event {
            Event::RenderSubmitStarted { webhook_token_hash } => {
                self.render_attempts = self.render_attempts.saturating_add(1);
                // An earlier create may still call back with its own token: keep the last few.
                self.webhook_token_hashes.push(webhook_token_hash.clone());
                let excess = self
                    .webhook_token_hashes
                    .len()
                    .saturating_sub(MAX_WEBHOOK_TOKENS);
                self.webhook_token_hashes.drain(..excess);
            }
            Event::RenderSubmitRejected { class, .. } => {
                self.render_rejections = self.render_rejections.saturating_add(1);
                if *class == ErrorClass::WaitForWindow {
                    self.render_delays = self.render_delays.saturating_add(1);
                }
                self.render_lease_until = None;
            }
            Event::RenderSubmitted { request_id, .. } => {
                self.request_id = Some(request_id.clone());
                self.render_lease_until = None;
            }
            Event::RenderCompleted { clip, .. } => {
                self.clip = Some(clip.clone());
                self.last_error = None;
            }
            Event::Amend { schedule_at, title } => {
                if let Some(at) = schedule_at {
                    self.schedule_at = *at;
                }
                if let Some(title) = title {
                    self.post.title = Some(title.clone());
                }
            }
            // A new attempt: the previous attempt's publish is no longer the job's.
            Event::PublishStarted => self.publish_id = None,
            Event::PublishAccepted { publish_id, .. } => {
                self.publish_id = Some(publish_id.clone());
                if !self.publish_ids.contains(publish_id) {
                    self.publish_ids.push(publish_id.clone());
                }
                // An earlier attempt's error no longer describes the job.
                self.last_error = None;
            }
            Event::Retry { .. } if from == JobState::RenderFailed => {
                self.render_attempts = 0;
                self.render_rejections = 0;
                self.render_delays = 0;
                self.render_lease_until = None;
            }
            Event::Retry { .. } => {
                self.publish_id = None;
                self.retried_attempts = self.attempt.saturating_sub(self.delayed_attempts);
            }
            Event::StatusObserved { post_ids, .. } => {
                for id in post_ids {
                    if !self.post_ids.contains(id) {
                        self.post_ids.push(id.clone());
                    }
                }
            }
            Event::NoLongerPublic { .. } => self.taken_down_at = Some(self.updated_at),
            _ => {}
        }
        if let Some(error) = event.error() {
            self.last_error = Some(error);
        }
    }

    /// The account's budget scope and FIFO group (`tenant:account`).
    pub fn account_scope(&self) -> String {
        crate::account::Account::message_group(&self.tenant_id, &self.account_id)
    }

    /// Whether `token` is one of the per-job tokens Ssemble's webhook URLs carry. Every stored
    /// hash is compared, in constant time, so timing tells nothing about how close a guess was.
    pub fn webhook_token_matches(&self, token: &str) -> bool {
        use sha2::{Digest, Sha256};
        let presented = hex::encode(Sha256::digest(token.as_bytes()));
        self.webhook_token_hashes
            .iter()
            .fold(false, |found, stored| {
                let same_len = stored.len() == presented.len();
                let diff = stored
                    .bytes()
                    .zip(presented.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b));
                found | (same_len & (diff == 0))
            })
    }

    /// The reason the job is held, if it is.
    pub fn hold_reason(&self) -> Option<&str> {
        self.hold.as_ref().map(|h| h.reason.as_str())
    }

    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}
