//! The job lifecycle as one explicit table: (state, event) → next state, effects, next check.
//!
//! Rules the table keeps:
//! - **An observation belongs to one attempt.** Every TikTok observation names its `publish_id`
//!   and every init result its attempt; one about another attempt is recorded as
//!   `stale_observation` (a bounded number of times) and never applied. Render observations name
//!   their `requestId` the same way.
//! - A TikTok init (`InitPublish`) is only emitted from `publish_queued`, which is only reached
//!   when no earlier attempt can still produce a post: after a definite refusal, a FAILED status
//!   of that very attempt, or no init at all. Never from `publish_unknown`.
//! - Terminal states absorb duplicate and late events; only an explicit `Retry` leaves a
//!   failure, and never when it could produce a second post.
//! - Observations never move a publish backwards.
//! - **Waiting is not a transition.** Polling, backing off and re-enqueueing only move the next
//!   check ([`Decision::Reschedule`]): no version, no audit event. A hold that repeats its reason
//!   backs off the same way, so no job cycles through states while it waits.
//! - Every non-terminal state has a next check that can move it, or is parked with a reason.
//! - Commands that do not fit the state (a lost race, a stale queue message) are typed errors.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{PublishId, RequestId};
use crate::job::{Clip, Hold, Job, JobError, JobSource, NextCheck, PostMode};
use crate::time::UtcTime;

/// The job states of product.md §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Received,
    Rendering,
    Ready,
    PublishQueued,
    Publishing,
    PublishProcessing,
    Uploaded,
    Submitted,
    PublishComplete,
    PubliclyAvailable,
    PublishUnknown,
    RenderFailed,
    PublishFailed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 14] = [
        Self::Received,
        Self::Rendering,
        Self::Ready,
        Self::PublishQueued,
        Self::Publishing,
        Self::PublishProcessing,
        Self::Uploaded,
        Self::Submitted,
        Self::PublishComplete,
        Self::PubliclyAvailable,
        Self::PublishUnknown,
        Self::RenderFailed,
        Self::PublishFailed,
        Self::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Rendering => "rendering",
            Self::Ready => "ready",
            Self::PublishQueued => "publish_queued",
            Self::Publishing => "publishing",
            Self::PublishProcessing => "publish_processing",
            Self::Uploaded => "uploaded",
            Self::Submitted => "submitted",
            Self::PublishComplete => "publish_complete",
            Self::PubliclyAvailable => "publicly_available",
            Self::PublishUnknown => "publish_unknown",
            Self::RenderFailed => "render_failed",
            Self::PublishFailed => "publish_failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// No event but an explicit retry moves the job again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::PubliclyAvailable | Self::RenderFailed | Self::PublishFailed | Self::Cancelled
        )
    }

    /// Progress of a publish that TikTok accepted; observations only move it forward.
    fn publish_rank(&self) -> Option<u8> {
        match self {
            Self::PublishProcessing | Self::PublishUnknown => Some(1),
            Self::Uploaded => Some(2),
            Self::Submitted => Some(3),
            Self::PublishComplete => Some(4),
            Self::PubliclyAvailable => Some(5),
            _ => None,
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the reconciler must look at a job again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Send (or resend) the render submission; also the end of a submission's lease. On a job
    /// of an existing render (`rendering` from its creation): its first confirmation is owed.
    SubmitRender,
    /// Confirm a render with Ssemble when no webhook came.
    RenderPoll,
    /// `scheduleAt` (or the end of a hold) is due.
    PublishAt,
    /// The publish message should have been consumed by now; re-enqueue if not.
    QueueStale,
    /// The publish attempt's lease: if still `publishing` then, the worker died mid-call.
    LeaseExpiry,
    /// Ask TikTok's status/fetch when no webhook came.
    StatusPoll,
    /// A `publish_unknown` without a `publish_id`: nothing to ask TikTok, only its horizon.
    UnknownResolve,
}

/// How an upstream error should be handled (tiktok-api.md §4's classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Retryable,
    RefreshThenRetry,
    NeedsUser,
    WaitForWindow,
    Permanent,
}

/// TikTok's view of a publish, from status/fetch or a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PublishStatus {
    /// PROCESSING_UPLOAD or PROCESSING_DOWNLOAD.
    Processing,
    /// SEND_TO_USER_INBOX: a draft reached the creator's inbox.
    SentToInbox,
    /// PUBLISH_COMPLETE.
    Complete,
    /// FAILED with TikTok's fail_reason.
    Failed { reason: String },
    /// Any status TikTok may add later: kept, never fatal.
    Other { raw: String },
}

/// Where an observation came from: duplicate webhooks are absorbed, polls always reschedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Poll,
    Webhook,
}

/// Everything that can happen to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The reconciler found a render submission due (a lost message, an unknown create, the end
    /// of a hold): put the job on the render queue again.
    SubmitDue,
    /// Due work could not be done now (a budget, an unreachable upstream, nothing new to learn):
    /// keep the state, look again at `until`.
    Deferred {
        until: UtcTime,
    },
    /// The render submitter is about to call Ssemble create (recorded first, like a publish
    /// attempt), with the SHA-256 of the per-job token its webhookUrl will carry.
    RenderSubmitStarted {
        webhook_token_hash: String,
    },
    /// Ssemble accepted the create, or (`found`) an earlier create was found.
    RenderSubmitted {
        request_id: RequestId,
        found: bool,
    },
    /// Ssemble refused the create with a definite error.
    RenderSubmitRejected {
        error: JobError,
        class: ErrorClass,
        retry_at: Option<UtcTime>,
    },
    /// Ssemble (confirmed) still queued or processing `request_id`.
    RenderProgressed {
        request_id: RequestId,
    },
    RenderCompleted {
        request_id: RequestId,
        clip: Clip,
    },
    RenderFailed {
        request_id: RequestId,
        error: JobError,
    },
    /// `scheduleAt` (or the end of a hold) arrived: put the job on the publish queue.
    PublishDue,
    /// The job cannot move now (account needs re-authorisation, a cap, a window).
    Held {
        reason: String,
        until: Option<UtcTime>,
    },
    /// Checks before the init found the post can never go as asked (privacy not among the
    /// creator's options, clip longer than the creator may post, a disabled interaction): no init.
    PreflightFailed {
        error: JobError,
    },
    /// The publisher claims the job and records the attempt before calling TikTok.
    PublishStarted,
    /// TikTok answered attempt `attempt`'s init with a publish_id.
    PublishAccepted {
        attempt: u32,
        publish_id: PublishId,
        upload: bool,
        upstream_log_id: Option<String>,
    },
    /// TikTok answered attempt `attempt`'s init with an error: no post was created by it.
    PublishRejected {
        attempt: u32,
        error: JobError,
        class: ErrorClass,
        retry_at: Option<UtcTime>,
    },
    /// Attempt `attempt`'s init may or may not have reached TikTok.
    PublishOutcomeUnknown {
        attempt: u32,
        error: JobError,
    },
    /// The attempt's lease passed while still `publishing`: the worker died mid-call.
    LeaseExpired,
    UploadCompleted {
        publish_id: PublishId,
    },
    /// Uploading stopped; TikTok's status decides what happened to the publish.
    UploadFailed {
        publish_id: PublishId,
        error: JobError,
    },
    StatusObserved {
        publish_id: PublishId,
        status: PublishStatus,
        post_ids: Vec<String>,
        via: Via,
        upstream_log_id: Option<String>,
    },
    /// `post.publish.no_longer_publicaly_available`.
    NoLongerPublic {
        publish_id: PublishId,
        post_id: String,
    },
    /// The reconciler found the state's horizon passed (render deadline, moderation window, …).
    Expired,
    /// An explicit decision to stop the job.
    Cancel {
        by: Actor,
    },
    /// An explicit decision to try again after a failure or an unknown outcome.
    Retry {
        by: Actor,
    },
    /// The owner moves the job's `scheduleAt` or changes its caption before it starts publishing.
    Amend {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule_at: Option<UtcTime>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
}

/// Who gave a command. The table's rules are the same for both (an operator cannot retry what
/// could post twice either); the audit trail says which it was, and why an operator acted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "actor", rename_all = "snake_case")]
pub enum Actor {
    /// The job's tenant, through the API.
    #[default]
    Owner,
    /// An operator of the stage, through `reelay-admin`.
    Operator { name: String, reason: String },
    /// The job's tenant disconnected its account (`DELETE /v1/accounts/{id}`).
    AccountDisconnected,
}

impl Actor {
    /// An operator who says who they are and why; `None` if either is blank.
    pub fn operator(name: &str, reason: &str) -> Option<Self> {
        let (name, reason) = (name.trim(), reason.trim());
        (!name.is_empty() && !reason.is_empty()).then(|| Self::Operator {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    }
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Self::SubmitDue => "submit_due",
            Self::Deferred { .. } => "deferred",
            Self::RenderSubmitStarted { .. } => "render_submit_started",
            Self::RenderSubmitted { .. } => "render_submitted",
            Self::RenderSubmitRejected { .. } => "render_submit_rejected",
            Self::RenderProgressed { .. } => "render_progressed",
            Self::RenderCompleted { .. } => "render_completed",
            Self::RenderFailed { .. } => "render_failed",
            Self::PublishDue => "publish_due",
            Self::Held { .. } => "held",
            Self::PreflightFailed { .. } => "preflight_failed",
            Self::PublishStarted => "publish_started",
            Self::PublishAccepted { .. } => "publish_accepted",
            Self::PublishRejected { .. } => "publish_rejected",
            Self::PublishOutcomeUnknown { .. } => "publish_outcome_unknown",
            Self::LeaseExpired => "lease_expired",
            Self::UploadCompleted { .. } => "upload_completed",
            Self::UploadFailed { .. } => "upload_failed",
            Self::StatusObserved { .. } => "status_observed",
            Self::NoLongerPublic { .. } => "no_longer_public",
            Self::Expired => "expired",
            Self::Cancel { .. } => "cancel",
            Self::Retry { .. } => "retry",
            Self::Amend { .. } => "amend",
        }
    }

    /// The error this event reports. A FAILED status carries TikTok's own `fail_reason` as the
    /// code (the reason an on-call engineer queries), never a generic one.
    pub fn error(&self) -> Option<JobError> {
        match self {
            Self::RenderSubmitRejected { error, .. }
            | Self::RenderFailed { error, .. }
            | Self::PublishRejected { error, .. }
            | Self::PublishOutcomeUnknown { error, .. }
            | Self::PreflightFailed { error }
            | Self::UploadFailed { error, .. } => Some(error.clone()),
            Self::Cancel {
                by: Actor::AccountDisconnected,
            } => Some(JobError {
                code: crate::usecase::DISCONNECTED.into(),
                message: "the account was disconnected before the job started publishing".into(),
                upstream_log_id: None,
            }),
            Self::StatusObserved {
                status: PublishStatus::Failed { reason },
                upstream_log_id,
                ..
            } => Some(JobError {
                code: reason.clone(),
                message: format!("TikTok reported the publish FAILED ({reason})"),
                upstream_log_id: upstream_log_id.clone(),
            }),
            _ => None,
        }
    }

    pub fn upstream_log_id(&self) -> Option<String> {
        match self {
            Self::PublishAccepted {
                upstream_log_id, ..
            }
            | Self::StatusObserved {
                upstream_log_id, ..
            } => upstream_log_id.clone(),
            other => other.error().and_then(|e| e.upstream_log_id),
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Self::Held { reason, .. } => Some(reason.clone()),
            Self::StatusObserved { status, via, .. } => Some(format!("{status:?} via {via:?}")),
            Self::NoLongerPublic { post_id, .. } => {
                Some(format!("post {post_id} no longer public"))
            }
            Self::Cancel {
                by: Actor::Operator { name, reason },
            }
            | Self::Retry {
                by: Actor::Operator { name, reason },
            } => Some(format!("by operator {name}: {reason}")),
            Self::Amend { schedule_at, title } => Some(
                [
                    schedule_at.map(|at| format!("scheduleAt {}", at.to_rfc3339())),
                    title.as_ref().map(|_| "caption changed".to_owned()),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; "),
            ),
            other => other.error().map(|e| e.message),
        }
    }

    /// The TikTok publish this event is about, if it is about one.
    pub fn publish_id(&self) -> Option<&PublishId> {
        match self {
            Self::PublishAccepted { publish_id, .. }
            | Self::UploadCompleted { publish_id }
            | Self::UploadFailed { publish_id, .. }
            | Self::StatusObserved { publish_id, .. }
            | Self::NoLongerPublic { publish_id, .. } => Some(publish_id),
            _ => None,
        }
    }

    /// The Ssemble request this event is about, if it is about one.
    pub fn request_id(&self) -> Option<&RequestId> {
        match self {
            Self::RenderSubmitted { request_id, .. }
            | Self::RenderProgressed { request_id }
            | Self::RenderCompleted { request_id, .. }
            | Self::RenderFailed { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    /// Observations report what an upstream did; when they no longer apply they are absorbed.
    /// Everything else is a command, and a command that does not fit is an error.
    pub fn is_observation(&self) -> bool {
        matches!(
            self,
            Self::RenderProgressed { .. }
                | Self::RenderCompleted { .. }
                | Self::RenderFailed { .. }
                | Self::StatusObserved { .. }
                | Self::NoLongerPublic { .. }
                | Self::UploadCompleted { .. }
                | Self::UploadFailed { .. }
        )
    }
}

/// A side effect to run after the transition's conditional write has won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Put the job on the render queue.
    EnqueueRender,
    /// Call Ssemble create; if `lookup_first`, an earlier create may exist: look for it first.
    SubmitRender { lookup_first: bool },
    /// Put the job on the publish queue (group = account).
    EnqueuePublish,
    /// Call TikTok's init for this attempt. At most one per attempt; never blindly repeated.
    InitPublish { attempt: u32 },
    /// Send the clip's bytes to TikTok's upload_url.
    UploadBytes,
}

/// The table's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A transition (possibly within the same state): a new version with its audit event.
    Move {
        to: JobState,
        effects: Vec<Effect>,
        next_check: Option<NextCheck>,
        /// Replaces the job's hold; `None` clears it.
        hold: Option<Hold>,
    },
    /// Nothing happened to the job, only its next look moves (and a queue message may go out).
    Reschedule {
        next_check: Option<NextCheck>,
        hold: Option<Hold>,
        effects: Vec<Effect>,
    },
    /// An observation of another attempt (or request): recorded, never applied.
    Stale {
        why: String,
    },
    Absorb,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransitionError {
    #[error("event {event} is not allowed in state {state}")]
    Illegal {
        state: JobState,
        event: &'static str,
    },
    #[error("a job in state {state} can no longer be cancelled")]
    NotCancellable { state: JobState },
    #[error("a job in state {state} cannot be retried")]
    NotRetryable { state: JobState },
    /// TikTok may still post this job's publish: a retry could make a second post.
    #[error("a retry now could post twice: {why}")]
    RetryCouldDuplicate { why: &'static str },
    /// A render submission or publish attempt is in flight until its lease ends.
    #[error("an attempt is in flight until {until}")]
    AttemptInFlight { until: UtcTime },
    /// The job has started publishing (or finished): its schedule and caption are final.
    #[error("a job in state {state} can no longer be changed")]
    NotAmendable { state: JobState },
}

/// Timing and retry policy. Every figure is configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    pub max_publish_attempts: u32,
    /// Render submissions (less those a rate window turned away) before the job fails.
    pub max_render_attempts: u32,
    /// How long a publish attempt may stay in `publishing` before it is presumed dead. Must
    /// exceed the init's own timeout plus the time to record its answer.
    pub publish_lease: Duration,
    /// How long a render submission may stay unconfirmed before it is looked at again.
    pub render_submit_lease: Duration,
    /// A publish due this soon goes on the queue now (by the reconciler, or at once when a
    /// render completes or a schedule moves); the publisher keeps the message at its group's
    /// head to the second. It must exceed the reconciler's period (the template's
    /// `ReconcilerScheduleRate`, 1 minute) by the schedule's jitter and the time a run takes to
    /// reach the job: with exactly one period, a job due just after a tick's horizon was
    /// enqueued by the next tick after its `scheduleAt` whenever that tick came late or was slow.
    pub enqueue_ahead: Duration,
    /// How long a queued publish may wait before the reconciler re-enqueues it (then doubling).
    pub queue_grace: Duration,
    pub queue_grace_max: Duration,
    pub render_poll_min: Duration,
    pub render_poll_max: Duration,
    pub status_poll_min: Duration,
    pub status_poll_max: Duration,
    /// A hold without an end is looked at again after this, then ever more rarely...
    pub hold_recheck: Duration,
    /// ...up to this.
    pub hold_recheck_max: Duration,
    pub retry_backoff_base: Duration,
    pub retry_backoff_max: Duration,
    /// Observations of other attempts recorded in a job's audit; later ones are only logged.
    pub max_stale_observations: u32,
    /// Retryable TikTok fail reasons (FAILED statuses after which a new init is safe and useful).
    pub retryable_fail_reasons: Vec<String>,
    /// Init rejections that only mean "not now" (a rate window): they delay the job and never
    /// use up its attempts, so a throttled account waits instead of failing its jobs.
    pub delay_only_codes: Vec<String>,
    pub render_deadline: Duration,
    pub processing_horizon: Duration,
    pub moderation_horizon: Duration,
    pub inbox_horizon: Duration,
    pub unknown_horizon: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(m * 60);
        Self {
            max_publish_attempts: 5,
            max_render_attempts: 6,
            publish_lease: min(2),
            render_submit_lease: min(2),
            enqueue_ahead: Duration::from_secs(90),
            queue_grace: min(5),
            queue_grace_max: min(60),
            render_poll_min: min(2),
            render_poll_max: min(15),
            status_poll_min: Duration::from_secs(15),
            status_poll_max: min(30),
            hold_recheck: min(60),
            hold_recheck_max: min(24 * 60),
            retry_backoff_base: Duration::from_secs(30),
            retry_backoff_max: min(60),
            max_stale_observations: 10,
            retryable_fail_reasons: vec!["internal".into(), "video_pull_failed".into()],
            delay_only_codes: vec!["rate_limit_exceeded".into()],
            render_deadline: min(6 * 60),
            processing_horizon: min(24 * 60),
            moderation_horizon: min(72 * 60),
            inbox_horizon: min(7 * 24 * 60),
            unknown_horizon: min(72 * 60),
        }
    }
}

impl Policy {
    pub fn is_delay_only(&self, code: &str) -> bool {
        self.delay_only_codes.iter().any(|c| c == code)
    }

    /// Attempts that count towards `max_publish_attempts`: every init started since the last
    /// explicit retry, less those a rate window turned away.
    pub fn counted_attempts(&self, job: &Job) -> u32 {
        job.attempt
            .saturating_sub(job.delayed_attempts)
            .saturating_sub(job.retried_attempts)
    }

    /// Render submissions that count towards `max_render_attempts`.
    pub fn counted_render_attempts(&self, job: &Job) -> u32 {
        job.render_attempts.saturating_sub(job.render_delays)
    }

    /// Young jobs are polled often, old ones rarely: the interval is a fifth of the state's age,
    /// clamped. Moderation can take hours; this keeps polling bounded without giving up.
    pub fn poll_after(&self, age: Duration, min: Duration, max: Duration) -> Duration {
        (age / 5).clamp(min, max.max(min))
    }

    /// A hold without an end, held for `age`, is looked at again after this: as long again as it
    /// has lasted, within `hold_recheck ..= hold_recheck_max`.
    pub fn hold_backoff(&self, age: Duration) -> Duration {
        age.clamp(
            self.hold_recheck,
            self.hold_recheck_max.max(self.hold_recheck),
        )
    }

    /// Exponential backoff per attempt, capped.
    pub fn retry_backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.retry_backoff_base
            .saturating_mul(factor)
            .min(self.retry_backoff_max)
    }

    /// When the job's current state stops being worth waiting for.
    pub fn horizon(&self, job: &Job) -> Option<UtcTime> {
        let since = job.state_since;
        match job.state {
            JobState::Rendering => Some(since.plus(self.render_deadline)),
            JobState::PublishProcessing | JobState::Uploaded => {
                Some(since.plus(self.processing_horizon))
            }
            JobState::Submitted if job.post.mode == PostMode::Draft => {
                Some(since.plus(self.inbox_horizon))
            }
            JobState::Submitted => Some(since.plus(self.processing_horizon)),
            JobState::PublishComplete => Some(since.plus(self.moderation_horizon)),
            // Parked for an operator already: nothing left to wait for.
            JobState::PublishUnknown if job.hold_reason() == Some(NEEDS_OPERATOR) => None,
            JobState::PublishUnknown => Some(since.plus(self.unknown_horizon)),
            _ => None,
        }
    }
}

/// Hold reason of a `publish_unknown` whose init may have reached TikTok.
pub const OUTCOME_UNKNOWN: &str = "publish_outcome_unknown";
/// Hold reason of a publish TikTok accepted but never finished within the horizon.
pub const PROCESSING_STUCK: &str = "processing_stuck";
/// Hold reason once nothing more can be learnt automatically.
pub const NEEDS_OPERATOR: &str = "needs_operator";

fn check(at: UtcTime, kind: CheckKind) -> Option<NextCheck> {
    Some(NextCheck { at, kind })
}

/// Effects and first check of a job's initial state.
pub(crate) fn initial_effects(
    state: JobState,
    now: UtcTime,
    policy: &Policy,
) -> (Vec<Effect>, Option<NextCheck>) {
    match state {
        JobState::Received => (
            vec![Effect::EnqueueRender],
            check(
                now.plus(policy.render_submit_lease),
                CheckKind::SubmitRender,
            ),
        ),
        // An existing render: the render-submitter confirms it with Ssemble at once. The check
        // says that confirmation is still owed (any answer sets a render poll or moves the job)
        // and is the reconciler's fallback should the message be lost.
        _ => (
            vec![Effect::EnqueueRender],
            check(now.plus(policy.render_poll_min), CheckKind::SubmitRender),
        ),
    }
}

/// The lifecycle table.
pub fn decide(
    job: &Job,
    event: &Event,
    now: UtcTime,
    policy: &Policy,
) -> Result<Decision, TransitionError> {
    if let Some(stale) = stale(job, event, policy) {
        return Ok(stale);
    }
    let t = Table {
        job,
        now,
        policy,
        state: job.state,
    };
    if let Event::Amend { schedule_at, .. } = event {
        return t.amend(*schedule_at);
    }
    match job.state {
        JobState::Received => t.received(event),
        JobState::Rendering => t.rendering(event),
        JobState::Ready | JobState::PublishQueued => t.waiting_to_publish(event),
        JobState::Publishing => t.publishing(event),
        JobState::PublishUnknown => t.unknown(event),
        JobState::PublishProcessing
        | JobState::Uploaded
        | JobState::Submitted
        | JobState::PublishComplete => t.published(event),
        JobState::PubliclyAvailable
        | JobState::RenderFailed
        | JobState::PublishFailed
        | JobState::Cancelled => t.terminal(event),
    }
}

/// An observation or init result about another attempt than the job's current one.
fn stale(job: &Job, event: &Event, policy: &Policy) -> Option<Decision> {
    if let Event::PublishAccepted {
        attempt,
        publish_id,
        ..
    } = event
        && *attempt == job.attempt
        && job.publish_id.as_ref() == Some(publish_id)
    {
        // This attempt's acceptance, recorded already (a webhook's resolution and the
        // publisher's own record can both deliver it).
        return Some(Decision::Absorb);
    }
    let why = match event {
        Event::PublishAccepted {
            attempt,
            publish_id,
            ..
        } if *attempt != job.attempt
            || job.publish_id.as_ref().is_some_and(|p| p != publish_id) =>
        {
            Some(format!("publish {publish_id} of attempt {attempt}"))
        }
        Event::PublishRejected { attempt, .. } | Event::PublishOutcomeUnknown { attempt, .. }
            if *attempt != job.attempt =>
        {
            Some(format!("init result of attempt {attempt}"))
        }
        _ => match (event.publish_id(), event) {
            (_, Event::PublishAccepted { .. }) => None,
            (Some(pid), _) if job.publish_id.as_ref() != Some(pid) => Some(format!(
                "{} for publish {pid}, not the current one ({})",
                event.name(),
                job.publish_id.as_ref().map_or("none", |p| p.as_str())
            )),
            _ => match (event.request_id(), event) {
                (_, Event::RenderSubmitted { .. }) => None,
                (Some(rid), _) if job.request_id.as_ref() != Some(rid) => Some(format!(
                    "{} for request {rid}, not the current one",
                    event.name()
                )),
                _ => None,
            },
        },
    }?;
    // A publish_id never seen must still be recorded (its webhooks then find this job); other
    // repeats are recorded up to a bound, then only absorbed.
    let new_publish = matches!(event, Event::PublishAccepted { publish_id, .. }
        if !job.publish_ids.contains(publish_id));
    if new_publish || job.stale_observations < policy.max_stale_observations {
        Some(Decision::Stale { why })
    } else {
        Some(Decision::Absorb)
    }
}

/// The table, one method per phase of the job's life.
struct Table<'a> {
    job: &'a Job,
    now: UtcTime,
    policy: &'a Policy,
    state: JobState,
}

type Decided = Result<Decision, TransitionError>;

impl Table<'_> {
    fn age(&self) -> Duration {
        self.now.since(self.job.state_since)
    }

    fn move_to(
        &self,
        to: JobState,
        effects: Vec<Effect>,
        next_check: Option<NextCheck>,
    ) -> Decided {
        Ok(Decision::Move {
            to,
            effects,
            next_check,
            hold: None,
        })
    }

    fn reschedule(&self, next_check: Option<NextCheck>, effects: Vec<Effect>) -> Decided {
        Ok(Decision::Reschedule {
            next_check,
            hold: self.job.hold.clone(),
            effects,
        })
    }

    fn illegal(&self, event: &Event) -> Decided {
        Err(TransitionError::Illegal {
            state: self.state,
            event: event.name(),
        })
    }

    /// Holds the job in `to` for `reason`: until `until`, or (no end known) looked at again with
    /// a growing interval. The same reason again in the same state only moves the next check.
    fn hold_in(
        &self,
        to: JobState,
        reason: &str,
        until: Option<UtcTime>,
        kind: CheckKind,
    ) -> Decided {
        // The same reason again keeps counting from when it first held the job (also across a
        // trip through the queue), so its rechecks keep growing apart.
        let current = self.job.hold.as_ref().filter(|h| h.reason == reason);
        let same = to == self.state && current.is_some();
        let since = current.and_then(|h| h.since).unwrap_or(self.now);
        let at = until
            .unwrap_or_else(|| {
                self.now
                    .plus(self.policy.hold_backoff(self.now.since(since)))
            })
            .max(self.now);
        let hold = Some(Hold {
            reason: reason.to_owned(),
            until,
            since: Some(since),
        });
        if same {
            Ok(Decision::Reschedule {
                next_check: check(at, kind),
                hold,
                effects: Vec::new(),
            })
        } else {
            Ok(Decision::Move {
                to,
                effects: Vec::new(),
                next_check: check(at, kind),
                hold,
            })
        }
    }

    fn deferred(&self, until: UtcTime) -> Decided {
        match self.job.next_check {
            Some(current) => self.reschedule(check(until.max(self.now), current.kind), Vec::new()),
            None => Ok(Decision::Absorb),
        }
    }

    /// Onto the publish queue. The hold (if any) stays in view until an attempt starts, so a
    /// publisher that holds the job again for the same reason continues its back-off.
    // ── amend: the owner changes the schedule or caption before publishing starts ──────
    fn amend(&self, schedule_at: Option<UtcTime>) -> Decided {
        use JobState as S;
        let at = schedule_at.unwrap_or(self.job.schedule_at);
        let keep = || {
            Ok(Decision::Move {
                to: self.state,
                effects: Vec::new(),
                next_check: self.job.next_check,
                hold: self.job.hold.clone(),
            })
        };
        match self.state {
            // Rendering decides on the (new) schedule when the render completes.
            S::Received | S::Rendering => keep(),
            // A hold stays; the job goes no earlier than both the hold's check and the schedule.
            S::Ready if self.job.hold.is_some() => Ok(Decision::Move {
                to: S::Ready,
                effects: Vec::new(),
                next_check: check(
                    self.job.next_check.map_or(at, |c| c.at.max(at)),
                    CheckKind::PublishAt,
                ),
                hold: self.job.hold.clone(),
            }),
            S::Ready if at <= self.now.plus(self.policy.enqueue_ahead) => self.queue_publish(),
            // Later: back to waiting; a publish message already on the queue finds the job
            // `ready` and is dropped, since only `publish_queued` starts an attempt.
            S::Ready | S::PublishQueued if at > self.now.plus(self.policy.enqueue_ahead) => {
                Ok(Decision::Move {
                    to: S::Ready,
                    effects: Vec::new(),
                    next_check: check(at, CheckKind::PublishAt),
                    hold: self.job.hold.clone(),
                })
            }
            S::PublishQueued => keep(),
            state => Err(TransitionError::NotAmendable { state }),
        }
    }

    fn queue_publish(&self) -> Decided {
        Ok(Decision::Move {
            to: JobState::PublishQueued,
            effects: vec![Effect::EnqueuePublish],
            next_check: check(
                self.now.plus(self.policy.queue_grace),
                CheckKind::QueueStale,
            ),
            hold: self.job.hold.clone(),
        })
    }

    fn status_check(&self, to: JobState) -> Option<NextCheck> {
        let age = if to == self.state {
            self.age()
        } else {
            Duration::ZERO
        };
        let p = self.policy;
        check(
            self.now
                .plus(p.poll_after(age, p.status_poll_min, p.status_poll_max)),
            CheckKind::StatusPoll,
        )
    }

    fn submit_check(&self) -> Option<NextCheck> {
        check(
            self.now.plus(self.policy.render_submit_lease),
            CheckKind::SubmitRender,
        )
    }

    // ── received: the render submission ─────────────────────────────────────────────────
    fn received(&self, event: &Event) -> Decided {
        use Event as E;
        let job = self.job;
        match event {
            E::SubmitDue
                if self.policy.counted_render_attempts(job) >= self.policy.max_render_attempts =>
            {
                self.move_to(JobState::RenderFailed, Vec::new(), None)
            }
            // A lost message, an unknown create's lease, the end of a hold: enqueue again.
            E::SubmitDue => self.reschedule(self.submit_check(), vec![Effect::EnqueueRender]),
            E::Deferred { until } => self.deferred(*until),
            E::RenderSubmitStarted { .. } => match job.render_lease_until {
                Some(until) if until > self.now => Err(TransitionError::AttemptInFlight { until }),
                _ => self.move_to(
                    JobState::Received,
                    vec![Effect::SubmitRender {
                        // Any attempt without a definite answer may have created a request.
                        lookup_first: job.render_attempts > job.render_rejections,
                    }],
                    self.submit_check(),
                ),
            },
            E::RenderSubmitted { found, .. } => {
                let first = if *found {
                    // Found an earlier create: it may well be done already, look at once.
                    self.now
                } else {
                    self.now.plus(self.policy.render_poll_min)
                };
                self.move_to(
                    JobState::Rendering,
                    Vec::new(),
                    check(first, CheckKind::RenderPoll),
                )
            }
            E::RenderSubmitRejected {
                class,
                retry_at,
                error,
            } => match class {
                ErrorClass::WaitForWindow => self.hold_in(
                    JobState::Received,
                    &error.code,
                    Some(retry_at.unwrap_or_else(|| self.now.plus(self.policy.retry_backoff(1)))),
                    CheckKind::SubmitRender,
                ),
                ErrorClass::Retryable | ErrorClass::NeedsUser
                    if self.policy.counted_render_attempts(job)
                        < self.policy.max_render_attempts =>
                {
                    let until = retry_at.unwrap_or_else(|| {
                        self.now
                            .plus(self.policy.retry_backoff(job.render_attempts))
                    });
                    self.hold_in(
                        JobState::Received,
                        &error.code,
                        Some(until),
                        CheckKind::SubmitRender,
                    )
                }
                _ => self.move_to(JobState::RenderFailed, Vec::new(), None),
            },
            E::Held { reason, until } => {
                self.hold_in(JobState::Received, reason, *until, CheckKind::SubmitRender)
            }
            E::Cancel { .. } => self.move_to(JobState::Cancelled, Vec::new(), None),
            E::Retry { .. } => Err(TransitionError::NotRetryable { state: self.state }),
            e if e.is_observation() => Ok(Decision::Absorb),
            e => self.illegal(e),
        }
    }

    // ── rendering ───────────────────────────────────────────────────────────────────────
    fn rendering(&self, event: &Event) -> Decided {
        use Event as E;
        let p = self.policy;
        match event {
            E::RenderProgressed { .. } => self.reschedule(
                check(
                    self.now
                        .plus(p.poll_after(self.age(), p.render_poll_min, p.render_poll_max)),
                    CheckKind::RenderPoll,
                ),
                Vec::new(),
            ),
            // Due within the enqueue-ahead: on the queue now, not at the reconciler's next tick
            // (a one-minute cadence would make it up to a minute late).
            E::RenderCompleted { .. } if self.job.schedule_at <= self.now.plus(p.enqueue_ahead) => {
                self.queue_publish()
            }
            E::RenderCompleted { .. } => self.move_to(
                JobState::Ready,
                Vec::new(),
                check(self.job.schedule_at, CheckKind::PublishAt),
            ),
            E::RenderFailed { .. } | E::Expired => {
                self.move_to(JobState::RenderFailed, Vec::new(), None)
            }
            E::Deferred { until } => self.deferred(*until),
            E::Cancel { .. } => self.move_to(JobState::Cancelled, Vec::new(), None),
            E::Retry { .. } => Err(TransitionError::NotRetryable { state: self.state }),
            e if e.is_observation() => Ok(Decision::Absorb),
            e => self.illegal(e),
        }
    }

    // ── ready and publish_queued: waiting for the schedule, a hold, or the publisher ────
    fn waiting_to_publish(&self, event: &Event) -> Decided {
        use Event as E;
        use JobState as S;
        let p = self.policy;
        match (self.state, event) {
            (S::Ready, E::PublishDue) => self.queue_publish(),
            // A lost or stale queue message: enqueue again, ever more rarely. A second copy is
            // harmless, because only one consumer can win `PublishStarted`.
            (S::PublishQueued, E::PublishDue) => self.reschedule(
                check(
                    self.now
                        .plus(p.poll_after(self.age() * 5, p.queue_grace, p.queue_grace_max)),
                    CheckKind::QueueStale,
                ),
                vec![Effect::EnqueuePublish],
            ),
            (_, E::Held { reason, until }) => {
                self.hold_in(S::Ready, reason, *until, CheckKind::PublishAt)
            }
            (S::PublishQueued, E::PreflightFailed { .. }) => {
                self.move_to(S::PublishFailed, Vec::new(), None)
            }
            (S::PublishQueued, E::PublishStarted) => self.move_to(
                S::Publishing,
                vec![Effect::InitPublish {
                    attempt: self.job.attempt.saturating_add(1),
                }],
                check(self.now.plus(p.publish_lease), CheckKind::LeaseExpiry),
            ),
            (_, E::Deferred { until }) => self.deferred(*until),
            (_, E::Cancel { .. }) => self.move_to(S::Cancelled, Vec::new(), None),
            (_, E::Retry { .. }) => Err(TransitionError::NotRetryable { state: self.state }),
            (_, e) if e.is_observation() => Ok(Decision::Absorb),
            (_, e) => self.illegal(e),
        }
    }

    /// TikTok definitively refused the current attempt's init: no post exists from it.
    fn rejected(&self, error: &JobError, class: ErrorClass, retry_at: Option<UtcTime>) -> Decided {
        use JobState as S;
        let (p, job) = (self.policy, self.job);
        match class {
            ErrorClass::Permanent => self.move_to(S::PublishFailed, Vec::new(), None),
            _ if !p.is_delay_only(&error.code)
                && p.counted_attempts(job) >= p.max_publish_attempts =>
            {
                self.move_to(S::PublishFailed, Vec::new(), None)
            }
            ErrorClass::NeedsUser => {
                self.hold_in(S::Ready, &error.code, None, CheckKind::PublishAt)
            }
            ErrorClass::Retryable | ErrorClass::WaitForWindow | ErrorClass::RefreshThenRetry => {
                let until = retry_at.unwrap_or_else(|| self.now.plus(p.retry_backoff(job.attempt)));
                self.hold_in(S::Ready, &error.code, Some(until), CheckKind::PublishAt)
            }
        }
    }

    /// Parked with its reason in view: nobody re-sends an init whose outcome is unknown. With
    /// no publish_id nothing can be asked, so the only check left is the horizon.
    fn outcome_unknown(&self) -> Decided {
        Ok(Decision::Move {
            to: JobState::PublishUnknown,
            effects: Vec::new(),
            next_check: check(
                self.now.plus(self.policy.unknown_horizon),
                CheckKind::UnknownResolve,
            ),
            hold: Some(Hold {
                reason: OUTCOME_UNKNOWN.into(),
                until: None,
                since: Some(self.now),
            }),
        })
    }

    fn accepted(&self, upload: bool) -> Decided {
        let effects = if upload {
            vec![Effect::UploadBytes]
        } else {
            Vec::new()
        };
        self.move_to(
            JobState::PublishProcessing,
            effects,
            self.status_check(JobState::PublishProcessing),
        )
    }

    // ── publishing: the init call (the commit point) ────────────────────────────────────
    fn publishing(&self, event: &Event) -> Decided {
        use Event as E;
        match event {
            E::PublishAccepted { upload, .. } => self.accepted(*upload),
            E::PublishRejected {
                error,
                class,
                retry_at,
                ..
            } => self.rejected(error, *class, *retry_at),
            E::PublishOutcomeUnknown { .. } => self.outcome_unknown(),
            E::LeaseExpired => match self.job.next_check {
                Some(NextCheck {
                    kind: CheckKind::LeaseExpiry,
                    at,
                }) if at > self.now => Err(TransitionError::AttemptInFlight { until: at }),
                _ => self.outcome_unknown(),
            },
            E::Deferred { until } => self.deferred(*until),
            E::Cancel { .. } => Err(TransitionError::NotCancellable { state: self.state }),
            E::Retry { .. } => Err(TransitionError::NotRetryable { state: self.state }),
            e if e.is_observation() => Ok(Decision::Absorb),
            e => self.illegal(e),
        }
    }

    // ── publish_unknown: parked, reconcilable whenever its publish_id is known ──────────
    fn unknown(&self, event: &Event) -> Decided {
        use Event as E;
        let job = self.job;
        match event {
            // TikTok did accept this attempt (a webhook naming a publish we never stored, or a
            // publisher that outlived its lease). Bytes go only from the process holding the URL.
            E::PublishAccepted { .. } if job.publish_id.is_some() => Ok(Decision::Absorb),
            E::PublishAccepted { upload, .. } => self.accepted(*upload),
            // A definite refusal from a publisher that outlived its lease: nothing was posted.
            E::PublishRejected {
                error,
                class,
                retry_at,
                ..
            } if job.publish_id.is_none() => self.rejected(error, *class, *retry_at),
            E::PublishRejected { .. } | E::PublishOutcomeUnknown { .. } | E::LeaseExpired => {
                Ok(Decision::Absorb)
            }
            E::StatusObserved {
                status,
                post_ids,
                via,
                ..
            } => self.observe(status, post_ids, *via),
            E::Expired => Ok(Decision::Move {
                to: JobState::PublishUnknown,
                effects: Vec::new(),
                next_check: None,
                hold: Some(Hold {
                    reason: NEEDS_OPERATOR.into(),
                    until: None,
                    since: Some(self.now),
                }),
            }),
            E::Deferred { until } => self.deferred(*until),
            E::Cancel { .. } => Err(TransitionError::NotCancellable { state: self.state }),
            E::Retry { .. } if job.publish_id.is_some() => {
                Err(TransitionError::RetryCouldDuplicate {
                    why: "TikTok accepted this publish and may still post it; it is polled until it \
                      settles",
                })
            }
            E::Retry { .. } if job.hold_reason() != Some(NEEDS_OPERATOR) => {
                Err(TransitionError::RetryCouldDuplicate {
                    why: "the init may have reached TikTok and its webhooks can still arrive; \
                          wait until the job says needs_operator, then check the creator's profile",
                })
            }
            E::Retry { .. } => self.retry_publish(),
            e if e.is_observation() => Ok(Decision::Absorb),
            e => self.illegal(e),
        }
    }

    fn retry_publish(&self) -> Decided {
        self.move_to(
            JobState::Ready,
            Vec::new(),
            check(self.now, CheckKind::PublishAt),
        )
    }

    // ── accepted by TikTok: bytes, processing, moderation ───────────────────────────────
    fn published(&self, event: &Event) -> Decided {
        use Event as E;
        use JobState as S;
        let job = self.job;
        match (self.state, event) {
            (S::PublishProcessing, E::UploadCompleted { .. }) => {
                self.move_to(S::Uploaded, Vec::new(), self.status_check(S::Uploaded))
            }
            (S::PublishProcessing, E::UploadFailed { .. }) => self.move_to(
                S::PublishProcessing,
                Vec::new(),
                check(
                    self.now.plus(self.policy.status_poll_min),
                    CheckKind::StatusPoll,
                ),
            ),
            (
                _,
                E::StatusObserved {
                    status,
                    post_ids,
                    via,
                    ..
                },
            ) => self.observe(status, post_ids, *via),
            (S::PublishComplete, E::NoLongerPublic { .. }) if job.taken_down_at.is_some() => {
                Ok(Decision::Absorb)
            }
            (S::PublishComplete, E::NoLongerPublic { .. }) => {
                self.move_to(self.state, Vec::new(), job.next_check)
            }
            // Still processing after the horizon: TikTok may yet post it, so this is an unknown
            // outcome to keep polling, never a failure that invites a second post.
            (S::PublishProcessing | S::Uploaded, E::Expired) => self.stuck(),
            (S::Submitted, E::Expired) if job.post.mode == PostMode::Direct => self.stuck(),
            // A draft left in the inbox, or a post whose public id never came: settled.
            (S::Submitted | S::PublishComplete, E::Expired) => Ok(Decision::Move {
                to: self.state,
                effects: Vec::new(),
                next_check: None,
                hold: job.hold.clone(),
            }),
            (_, E::Deferred { until }) => self.deferred(*until),
            (_, E::Cancel { .. }) => Err(TransitionError::NotCancellable { state: self.state }),
            (_, E::Retry { .. }) => Err(TransitionError::NotRetryable { state: self.state }),
            (_, e) if e.is_observation() => Ok(Decision::Absorb),
            (_, e) => self.illegal(e),
        }
    }

    fn stuck(&self) -> Decided {
        Ok(Decision::Move {
            to: JobState::PublishUnknown,
            effects: Vec::new(),
            next_check: self.status_check(JobState::PublishUnknown),
            hold: Some(Hold {
                reason: PROCESSING_STUCK.into(),
                until: None,
                since: Some(self.now),
            }),
        })
    }

    // ── terminal ────────────────────────────────────────────────────────────────────────
    fn terminal(&self, event: &Event) -> Decided {
        use Event as E;
        use JobState as S;
        let job = self.job;
        match (self.state, event) {
            (S::PubliclyAvailable, E::StatusObserved { post_ids, .. })
                if post_ids.iter().any(|id| !job.post_ids.contains(id)) =>
            {
                self.move_to(S::PubliclyAvailable, Vec::new(), None)
            }
            (S::PubliclyAvailable, E::NoLongerPublic { .. }) if job.taken_down_at.is_none() => {
                self.move_to(S::PubliclyAvailable, Vec::new(), None)
            }
            (S::Cancelled, E::Cancel { .. }) => Ok(Decision::Absorb),
            (_, E::Cancel { .. }) => Err(TransitionError::NotCancellable { state: self.state }),
            (S::RenderFailed, E::Retry { .. }) => match job.source {
                JobSource::Rendered { .. } => self.move_to(
                    S::Rendering,
                    Vec::new(),
                    check(self.now, CheckKind::RenderPoll),
                ),
                JobSource::Render(_) => self.move_to(
                    S::Received,
                    vec![Effect::EnqueueRender],
                    self.submit_check(),
                ),
            },
            (S::PublishFailed, E::Retry { .. }) => self.retry_publish(),
            (_, E::Retry { .. }) => Err(TransitionError::NotRetryable { state: self.state }),
            _ => Ok(Decision::Absorb),
        }
    }

    /// Applies a TikTok status of the current publish. Never moves backwards; a poll that
    /// learns nothing new only moves the next poll.
    fn observe(&self, status: &PublishStatus, post_ids: &[String], via: Via) -> Decided {
        use JobState as S;
        let (job, p, state) = (self.job, self.policy, self.state);
        let draft = job.post.mode == PostMode::Draft;
        let new_ids = post_ids.iter().any(|id| !job.post_ids.contains(id));
        let target = match status {
            PublishStatus::Failed { reason } => {
                if state.publish_rank() >= S::PublishComplete.publish_rank() {
                    // A post exists; a later FAILED (a draft's second use) does not undo it.
                    return Ok(Decision::Absorb);
                }
                let retryable = p.retryable_fail_reasons.iter().any(|r| r == reason);
                return if retryable && p.counted_attempts(job) < p.max_publish_attempts {
                    let until = self.now.plus(p.retry_backoff(job.attempt));
                    self.hold_in(S::Ready, reason, Some(until), CheckKind::PublishAt)
                } else {
                    self.move_to(S::PublishFailed, Vec::new(), None)
                };
            }
            // A direct post whose bytes are all there is with TikTok; a draft is only
            // `submitted` once it reached the creator's inbox.
            PublishStatus::Processing if state == S::Uploaded && !draft => S::Submitted,
            PublishStatus::Processing | PublishStatus::Other { .. } => state,
            PublishStatus::SentToInbox => S::Submitted,
            PublishStatus::Complete if !post_ids.is_empty() => S::PubliclyAvailable,
            PublishStatus::Complete => S::PublishComplete,
        };
        let (rank_now, rank_target) = (state.publish_rank(), target.publish_rank());
        let nothing_new = rank_target < rank_now || (rank_target == rank_now && !new_ids);
        if nothing_new {
            return match (via, state) {
                (Via::Webhook, _) | (_, S::PubliclyAvailable) => Ok(Decision::Absorb),
                (Via::Poll, _) => self.reschedule(self.poll_again(state), Vec::new()),
            };
        }
        let next_check = match target {
            S::PubliclyAvailable => None,
            other => self.poll_again(other),
        };
        Ok(Decision::Move {
            to: target,
            effects: Vec::new(),
            next_check,
            // Leaving publish_unknown ends its hold; a stuck publish that moves is no longer one.
            hold: None,
        })
    }

    /// The next status poll in `target`: drafts in the inbox rarely, everything else backing off.
    fn poll_again(&self, target: JobState) -> Option<NextCheck> {
        let p = self.policy;
        if target == JobState::Submitted && self.job.post.mode == PostMode::Draft {
            let age = if target == self.state {
                self.age()
            } else {
                Duration::ZERO
            };
            return check(
                self.now.plus(p.poll_after(
                    age,
                    p.status_poll_max,
                    p.status_poll_max.saturating_mul(4),
                )),
                CheckKind::StatusPoll,
            );
        }
        self.status_check(target)
    }
}
