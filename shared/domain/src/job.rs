//! The job aggregate: what a client asked for, where it is in its lifecycle, and what the
//! upstreams said about it. Every change goes through [`Job::apply`], which asks the
//! lifecycle table and records one audit event.

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, IdempotencyKey, JobId, PublishId, RequestId, TenantId};
use crate::lifecycle::{
    self, CheckKind, Decision, Effect, Event, JobState, Policy, TransitionError,
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
    /// SHA-256 (hex) of the per-job tokens in Ssemble webhook URLs; only their holder can call back.
    #[serde(default)]
    pub webhook_token_hashes: Vec<String>,
    pub last_error: Option<JobError>,
    pub hold: Option<Hold>,
    pub next_check: Option<NextCheck>,
    /// Set when TikTok reports the post is no longer public.
    pub taken_down_at: Option<UtcTime>,
}

/// A stored transition: the job after the event, the audit record to write with it, and the
/// side effects to run once the conditional write has won.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub job: Job,
    pub audit: AuditEvent,
    pub effects: Vec<Effect>,
}

/// The outcome of offering an event to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The job moved (or recorded something): write it conditionally on the old version.
    Applied(Box<Applied>),
    /// A duplicate or late event: nothing to write.
    Absorbed,
}

impl Job {
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
            webhook_token_hashes: Vec::new(),
            last_error: None,
            hold: None,
            next_check,
            taken_down_at: None,
        };
        let audit = AuditEvent {
            at: now,
            version: 1,
            event: "created".into(),
            from: None,
            to: state,
            request_id,
            publish_id: None,
            error_code: None,
            upstream_log_id: None,
            detail: None,
        };
        Applied {
            job,
            audit,
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
        let decision = lifecycle::decide(self, event, now, policy)?;
        let Decision::Move {
            to,
            effects,
            next_check,
            hold,
        } = decision
        else {
            return Ok(Step::Absorbed);
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
        job.record(event, now);
        // A failure or an unknown outcome must say why (the audit promise), also when no upstream
        // said anything: the deadline that passed, or the publisher lease that expired, is it.
        let fallback = (event.error().is_none()
            && to != self.state
            && matches!(
                to,
                JobState::RenderFailed | JobState::PublishFailed | JobState::PublishUnknown
            ))
        .then(|| JobError {
            code: match event {
                Event::Expired => "deadline_exceeded".to_owned(),
                other => other.name().to_owned(),
            },
            message: format!("{} while {}", event.name(), self.state.as_str()),
            upstream_log_id: None,
        });
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
        let audit = AuditEvent {
            at: now,
            version: job.version,
            event: event.name().into(),
            from: Some(self.state),
            to,
            request_id: job.request_id.clone(),
            publish_id: job.publish_id.clone(),
            error_code: event.error().or(fallback.as_ref()).map(|e| e.code.clone()),
            upstream_log_id: event.upstream_log_id().map(str::to_owned),
            detail: event.detail(),
        };
        Ok(Step::Applied(Box::new(Applied {
            job,
            audit,
            effects,
        })))
    }

    /// Copies what an event carries onto the job.
    fn record(&mut self, event: &Event, now: UtcTime) {
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
            Event::RenderSubmitRejected { .. } => {
                self.render_rejections = self.render_rejections.saturating_add(1);
            }
            Event::RenderSubmitted { request_id } => self.request_id = Some(request_id.clone()),
            Event::RenderCompleted { clip } => {
                self.clip = Some(clip.clone());
                self.last_error = None;
            }
            Event::PublishAccepted { publish_id, .. } => {
                self.publish_id = Some(publish_id.clone());
            }
            Event::Retry if self.state != JobState::Received => self.publish_id = None,
            Event::StatusObserved { post_ids, .. } => {
                for id in post_ids {
                    if !self.post_ids.contains(id) {
                        self.post_ids.push(id.clone());
                    }
                }
            }
            Event::NoLongerPublic { .. } => self.taken_down_at = Some(now),
            _ => {}
        }
        if let Some(error) = event.error() {
            self.last_error = Some(error.clone());
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}
