//! The job lifecycle as one explicit table: (state, event) → next state, effects, next check.
//!
//! Rules the table keeps:
//! - Terminal states absorb duplicate and late events; only an explicit `Retry` leaves a failure.
//! - Observations (webhooks, polls) never move a job backwards: a late `PROCESSING` after
//!   `PUBLISH_COMPLETE` is absorbed.
//! - A TikTok init (`InitPublish`) is only emitted from `publish_queued`, which is only reached
//!   when no earlier attempt can still produce a post: never from `publish_unknown`.
//! - Commands that do not fit the state (a lost race, a stale queue message) are typed errors.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{PublishId, RequestId};
use crate::job::{Clip, Hold, Job, JobError, NextCheck, PostMode};
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
            Self::PublishProcessing => Some(1),
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
    /// Send (or resend) the render submission.
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
    /// Try to resolve a `publish_unknown` from TikTok's webhooks and status.
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
    /// Ssemble accepted the create (or an earlier create was found).
    RenderSubmitted {
        request_id: RequestId,
    },
    /// Ssemble refused the create with a definite error.
    RenderSubmitRejected {
        error: JobError,
        class: ErrorClass,
        retry_at: Option<UtcTime>,
    },
    /// Ssemble (confirmed) still queued or processing.
    RenderProgressed,
    RenderCompleted {
        clip: Clip,
    },
    RenderFailed {
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
    /// TikTok answered the init with a publish_id.
    PublishAccepted {
        publish_id: PublishId,
        upload: bool,
        upstream_log_id: Option<String>,
    },
    /// TikTok answered the init with an error: no post was created by this attempt.
    PublishRejected {
        error: JobError,
        class: ErrorClass,
        retry_at: Option<UtcTime>,
    },
    /// The init may or may not have reached TikTok (timeout after sending, connection reset).
    PublishOutcomeUnknown {
        error: JobError,
    },
    /// The attempt's lease passed while still `publishing`: the worker died mid-call.
    LeaseExpired,
    UploadCompleted,
    /// Uploading stopped; TikTok's status decides what happened to the publish.
    UploadFailed {
        error: JobError,
    },
    StatusObserved {
        status: PublishStatus,
        post_ids: Vec<String>,
        via: Via,
        upstream_log_id: Option<String>,
    },
    /// `post.publish.no_longer_publicaly_available`.
    NoLongerPublic {
        post_id: String,
    },
    /// The reconciler found the state's horizon passed (render deadline, moderation window, …).
    Expired,
    Cancel,
    /// An explicit decision to try again after a failure or an unknown outcome.
    Retry,
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Self::SubmitDue => "submit_due",
            Self::Deferred { .. } => "deferred",
            Self::RenderSubmitStarted { .. } => "render_submit_started",
            Self::RenderSubmitted { .. } => "render_submitted",
            Self::RenderSubmitRejected { .. } => "render_submit_rejected",
            Self::RenderProgressed => "render_progressed",
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
            Self::UploadCompleted => "upload_completed",
            Self::UploadFailed { .. } => "upload_failed",
            Self::StatusObserved { .. } => "status_observed",
            Self::NoLongerPublic { .. } => "no_longer_public",
            Self::Expired => "expired",
            Self::Cancel => "cancel",
            Self::Retry => "retry",
        }
    }

    pub fn error(&self) -> Option<&JobError> {
        match self {
            Self::RenderSubmitRejected { error, .. }
            | Self::RenderFailed { error }
            | Self::PublishRejected { error, .. }
            | Self::PublishOutcomeUnknown { error }
            | Self::PreflightFailed { error }
            | Self::UploadFailed { error } => Some(error),
            _ => None,
        }
    }

    pub fn upstream_log_id(&self) -> Option<&str> {
        match self {
            Self::PublishAccepted {
                upstream_log_id, ..
            }
            | Self::StatusObserved {
                upstream_log_id, ..
            } => upstream_log_id.as_deref(),
            other => other.error().and_then(|e| e.upstream_log_id.as_deref()),
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Self::Held { reason, .. } => Some(reason.clone()),
            Self::StatusObserved { status, via, .. } => Some(format!("{status:?} via {via:?}")),
            Self::NoLongerPublic { post_id } => Some(format!("post {post_id} no longer public")),
            other => other.error().map(|e| e.message.clone()),
        }
    }

    /// Observations report what an upstream did; when they no longer apply they are absorbed.
    /// Everything else is a command, and a command that does not fit is an error.
    pub fn is_observation(&self) -> bool {
        matches!(
            self,
            Self::RenderProgressed
                | Self::RenderCompleted { .. }
                | Self::RenderFailed { .. }
                | Self::StatusObserved { .. }
                | Self::NoLongerPublic { .. }
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
    Move {
        to: JobState,
        effects: Vec<Effect>,
        next_check: Option<NextCheck>,
        /// Replaces the job's hold; `None` clears it.
        hold: Option<Hold>,
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
}

/// Timing and retry policy. Every figure is configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub max_publish_attempts: u32,
    /// How long a publish attempt may stay in `publishing` before it is presumed dead.
    pub publish_lease: Duration,
    /// How long a render submission may stay unconfirmed before it is looked at again.
    pub render_submit_lease: Duration,
    /// How long a queued publish may wait before the reconciler re-enqueues it.
    pub queue_grace: Duration,
    pub render_poll_min: Duration,
    pub render_poll_max: Duration,
    pub status_poll_min: Duration,
    pub status_poll_max: Duration,
    pub unknown_check: Duration,
    pub hold_recheck: Duration,
    pub retry_backoff_base: Duration,
    pub retry_backoff_max: Duration,
    /// Retryable TikTok fail reasons (FAILED statuses after which a new init is safe and useful).
    pub retryable_fail_reasons: Vec<String>,
    /// Init rejections that only mean "not now" (a rate window): they delay the job and never
    /// use up its attempts, so a throttled account waits instead of failing its jobs.
    #[serde(default = "delay_only_codes")]
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
            publish_lease: min(2),
            render_submit_lease: min(2),
            queue_grace: min(5),
            render_poll_min: min(2),
            render_poll_max: min(15),
            status_poll_min: Duration::from_secs(15),
            status_poll_max: min(30),
            unknown_check: min(5),
            hold_recheck: min(60),
            retry_backoff_base: Duration::from_secs(30),
            retry_backoff_max: min(60),
            retryable_fail_reasons: vec!["internal".into(), "video_pull_failed".into()],
            delay_only_codes: delay_only_codes(),
            render_deadline: min(6 * 60),
            processing_horizon: min(24 * 60),
            moderation_horizon: min(72 * 60),
            inbox_horizon: min(7 * 24 * 60),
            unknown_horizon: min(72 * 60),
        }
    }
}

fn delay_only_codes() -> Vec<String> {
    vec!["rate_limit_exceeded".into()]
}

impl Policy {
    pub fn is_delay_only(&self, code: &str) -> bool {
        self.delay_only_codes.iter().any(|c| c == code)
    }

    /// Attempts that count towards `max_publish_attempts`: every init started, less those a
    /// rate window turned away.
    pub fn counted_attempts(&self, job: &Job) -> u32 {
        job.attempt.saturating_sub(job.delayed_attempts)
    }

    /// Young jobs are polled often, old ones rarely: the interval is a fifth of the state's age,
    /// clamped. Moderation can take hours; this keeps polling bounded without giving up.
    fn poll_after(&self, age: Duration, min: Duration, max: Duration) -> Duration {
        (age / 5).clamp(min, max)
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
            JobState::PublishUnknown => Some(since.plus(self.unknown_horizon)),
            _ => None,
        }
    }
}

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
        // An existing render: confirm it with Ssemble at once.
        _ => (Vec::new(), check(now, CheckKind::RenderPoll)),
    }
}

/// The lifecycle table.
pub fn decide(
    job: &Job,
    event: &Event,
    now: UtcTime,
    policy: &Policy,
) -> Result<Decision, TransitionError> {
    use Event as E;
    use JobState as S;

    let state = job.state;
    let age = now.since(job.state_since);
    let move_to = |to: JobState, effects: Vec<Effect>, next_check: Option<NextCheck>| {
        Ok(Decision::Move {
            to,
            effects,
            next_check,
            hold: None,
        })
    };
    let hold_in = |to: JobState, reason: &str, until: Option<UtcTime>, kind: CheckKind| {
        let at = until.unwrap_or_else(|| now.plus(policy.hold_recheck));
        Ok(Decision::Move {
            to,
            effects: Vec::new(),
            next_check: check(at, kind),
            hold: Some(Hold {
                reason: reason.to_owned(),
                until,
            }),
        })
    };
    let status_check = |to: JobState| {
        let age = if to == state { age } else { Duration::ZERO };
        check(
            now.plus(policy.poll_after(age, policy.status_poll_min, policy.status_poll_max)),
            CheckKind::StatusPoll,
        )
    };
    // Parked with its reason in view: nobody re-sends an init whose outcome is unknown, so the
    // job must say why it waits (for a TikTok webhook, a status answer or an operator).
    let unknown = || {
        Ok(Decision::Move {
            to: S::PublishUnknown,
            effects: Vec::new(),
            next_check: check(now.plus(policy.unknown_check), CheckKind::UnknownResolve),
            hold: Some(Hold {
                reason: "publish_outcome_unknown".into(),
                until: None,
            }),
        })
    };
    let queue_publish = || {
        move_to(
            S::PublishQueued,
            vec![Effect::EnqueuePublish],
            check(now.plus(policy.queue_grace), CheckKind::QueueStale),
        )
    };

    match (state, event) {
        // ── reconciler bookkeeping ─────────────────────────────────────────────────────
        (S::Received, E::SubmitDue) => move_to(
            S::Received,
            vec![Effect::EnqueueRender],
            check(
                now.plus(policy.render_submit_lease),
                CheckKind::SubmitRender,
            ),
        ),
        (s, E::Deferred { until }) if !s.is_terminal() => match job.next_check {
            Some(current) => Ok(Decision::Move {
                to: s,
                effects: Vec::new(),
                next_check: check((*until).max(now), current.kind),
                hold: job.hold.clone(),
            }),
            None => Ok(Decision::Absorb),
        },

        // ── render submission ──────────────────────────────────────────────────────────
        (S::Received, E::RenderSubmitStarted { .. }) => move_to(
            S::Received,
            vec![Effect::SubmitRender {
                // Any attempt without a definite answer may have created a request.
                lookup_first: job.render_attempts > job.render_rejections,
            }],
            check(
                now.plus(policy.render_submit_lease),
                CheckKind::SubmitRender,
            ),
        ),
        (S::Received, E::RenderSubmitted { .. }) => move_to(
            S::Rendering,
            Vec::new(),
            check(now.plus(policy.render_poll_min), CheckKind::RenderPoll),
        ),
        (
            S::Received,
            E::RenderSubmitRejected {
                class,
                retry_at,
                error,
            },
        ) => match class {
            ErrorClass::Retryable | ErrorClass::WaitForWindow => hold_in(
                S::Received,
                &error.code,
                Some(
                    retry_at.unwrap_or_else(|| now.plus(policy.retry_backoff(job.render_attempts))),
                ),
                CheckKind::SubmitRender,
            ),
            _ => move_to(S::RenderFailed, Vec::new(), None),
        },
        (S::Received, E::Held { reason, until }) => {
            hold_in(S::Received, reason, *until, CheckKind::SubmitRender)
        }

        // ── rendering ──────────────────────────────────────────────────────────────────
        (S::Rendering, E::RenderProgressed) => move_to(
            S::Rendering,
            Vec::new(),
            check(
                now.plus(policy.poll_after(age, policy.render_poll_min, policy.render_poll_max)),
                CheckKind::RenderPoll,
            ),
        ),
        (S::Rendering, E::RenderCompleted { .. }) if job.schedule_at <= now => queue_publish(),
        (S::Rendering, E::RenderCompleted { .. }) => move_to(
            S::Ready,
            Vec::new(),
            check(job.schedule_at, CheckKind::PublishAt),
        ),
        (S::Rendering, E::RenderFailed { .. }) => move_to(S::RenderFailed, Vec::new(), None),
        (S::Rendering, E::Expired) => move_to(S::RenderFailed, Vec::new(), None),

        // ── waiting for the schedule ──────────────────────────────────────────────────
        (S::Ready, E::PublishDue) => queue_publish(),
        (S::Ready, E::Held { reason, until }) => {
            hold_in(S::Ready, reason, *until, CheckKind::PublishAt)
        }

        // ── on the publish queue ──────────────────────────────────────────────────────
        // A lost or stale queue message: enqueue again. A second copy is harmless, because
        // only one consumer can win `PublishStarted`.
        (S::PublishQueued, E::PublishDue) => queue_publish(),
        (S::PublishQueued, E::Held { reason, until }) => {
            hold_in(S::Ready, reason, *until, CheckKind::PublishAt)
        }
        (S::PublishQueued, E::PreflightFailed { .. }) => {
            move_to(S::PublishFailed, Vec::new(), None)
        }
        (S::PublishQueued, E::PublishStarted) => move_to(
            S::Publishing,
            vec![Effect::InitPublish {
                attempt: job.attempt.saturating_add(1),
            }],
            check(now.plus(policy.publish_lease), CheckKind::LeaseExpiry),
        ),

        // ── the init call (the commit point) ──────────────────────────────────────────
        (S::Publishing | S::PublishUnknown, E::PublishAccepted { upload, .. }) => {
            let effects = if *upload && state == S::Publishing {
                vec![Effect::UploadBytes]
            } else {
                Vec::new()
            };
            move_to(
                S::PublishProcessing,
                effects,
                status_check(S::PublishProcessing),
            )
        }
        (
            S::Publishing,
            E::PublishRejected {
                error,
                class,
                retry_at,
            },
        ) => match class {
            ErrorClass::Permanent => move_to(S::PublishFailed, Vec::new(), None),
            _ if !policy.is_delay_only(&error.code)
                && policy.counted_attempts(job) >= policy.max_publish_attempts =>
            {
                move_to(S::PublishFailed, Vec::new(), None)
            }
            ErrorClass::NeedsUser => hold_in(S::Ready, &error.code, None, CheckKind::PublishAt),
            ErrorClass::Retryable | ErrorClass::WaitForWindow | ErrorClass::RefreshThenRetry => {
                let until = retry_at.unwrap_or_else(|| now.plus(policy.retry_backoff(job.attempt)));
                hold_in(S::Ready, &error.code, Some(until), CheckKind::PublishAt)
            }
        },
        (S::Publishing, E::PublishOutcomeUnknown { .. } | E::LeaseExpired) => unknown(),

        // ── bytes and TikTok's processing ─────────────────────────────────────────────
        (S::PublishProcessing, E::UploadCompleted) => {
            move_to(S::Uploaded, Vec::new(), status_check(S::Uploaded))
        }
        (S::PublishProcessing, E::UploadFailed { .. }) => move_to(
            S::PublishProcessing,
            Vec::new(),
            status_check(S::PublishProcessing),
        ),
        (
            S::PublishProcessing
            | S::Uploaded
            | S::Submitted
            | S::PublishComplete
            | S::PubliclyAvailable,
            E::StatusObserved {
                status,
                post_ids,
                via,
                ..
            },
        ) => observe(job, status, post_ids, *via, now, policy, status_check),
        (S::PublishComplete | S::PubliclyAvailable, E::NoLongerPublic { .. })
            if job.taken_down_at.is_some() =>
        {
            Ok(Decision::Absorb)
        }
        (S::PublishComplete | S::PubliclyAvailable, E::NoLongerPublic { .. }) => {
            let next = if state == S::PublishComplete {
                status_check(state)
            } else {
                None
            };
            move_to(state, Vec::new(), next)
        }

        // ── horizons ──────────────────────────────────────────────────────────────────
        // Still processing after the horizon: TikTok may yet post it, so this is an unknown
        // outcome for an operator, never a failure that invites a second post.
        (S::PublishProcessing | S::Uploaded, E::Expired) => hold_in(
            S::PublishUnknown,
            "processing_stuck",
            None,
            CheckKind::UnknownResolve,
        ),
        (S::Submitted, E::Expired) if job.post.mode == PostMode::Direct => hold_in(
            S::PublishUnknown,
            "processing_stuck",
            None,
            CheckKind::UnknownResolve,
        ),
        // A draft left in the inbox, or a post whose public id never came: settled, no more polls.
        (S::Submitted | S::PublishComplete, E::Expired) => Ok(Decision::Move {
            to: state,
            effects: Vec::new(),
            next_check: None,
            hold: job.hold.clone(),
        }),
        (S::PublishUnknown, E::Expired) => Ok(Decision::Move {
            to: S::PublishUnknown,
            effects: Vec::new(),
            next_check: None,
            hold: Some(Hold {
                reason: "needs_operator".into(),
                until: None,
            }),
        }),

        // ── cancel and retry (explicit client decisions) ──────────────────────────────
        (S::Received | S::Rendering | S::Ready | S::PublishQueued, E::Cancel) => {
            move_to(S::Cancelled, Vec::new(), None)
        }
        (S::Cancelled, E::Cancel) => Ok(Decision::Absorb),
        (_, E::Cancel) => Err(TransitionError::NotCancellable { state }),
        (S::RenderFailed, E::Retry) => move_to(
            S::Received,
            vec![Effect::EnqueueRender],
            check(
                now.plus(policy.render_submit_lease),
                CheckKind::SubmitRender,
            ),
        ),
        (S::PublishFailed | S::PublishUnknown, E::Retry) => {
            move_to(S::Ready, Vec::new(), check(now, CheckKind::PublishAt))
        }
        (_, E::Retry) => Err(TransitionError::NotRetryable { state }),

        // ── everything else ───────────────────────────────────────────────────────────
        (_, e) if e.is_observation() => Ok(Decision::Absorb),
        (s, e) if s.is_terminal() => {
            let _ = e;
            Ok(Decision::Absorb)
        }
        (_, e) => Err(TransitionError::Illegal {
            state,
            event: e.name(),
        }),
    }
}

/// Applies a TikTok status to a publish TikTok has accepted. Never moves backwards.
#[allow(clippy::too_many_arguments)]
fn observe(
    job: &Job,
    status: &PublishStatus,
    post_ids: &[String],
    via: Via,
    now: UtcTime,
    policy: &Policy,
    status_check: impl Fn(JobState) -> Option<NextCheck>,
) -> Result<Decision, TransitionError> {
    use JobState as S;
    let state = job.state;
    let new_ids = post_ids.iter().any(|id| !job.post_ids.contains(id));
    let target = match status {
        PublishStatus::Processing if state == S::Uploaded => S::Submitted,
        PublishStatus::Processing | PublishStatus::Other { .. } => state,
        PublishStatus::SentToInbox => S::Submitted,
        PublishStatus::Complete if !post_ids.is_empty() => S::PubliclyAvailable,
        PublishStatus::Complete => S::PublishComplete,
        PublishStatus::Failed { reason } => {
            if state.publish_rank() >= S::PublishComplete.publish_rank() {
                // A post exists; a later FAILED (e.g. for a draft's second use) does not undo it.
                return Ok(Decision::Absorb);
            }
            let retryable = policy.retryable_fail_reasons.iter().any(|r| r == reason);
            return if retryable && job.attempt < policy.max_publish_attempts {
                let until = now.plus(policy.retry_backoff(job.attempt));
                Ok(Decision::Move {
                    to: S::Ready,
                    effects: Vec::new(),
                    next_check: check(until, CheckKind::PublishAt),
                    hold: Some(Hold {
                        reason: reason.clone(),
                        until: Some(until),
                    }),
                })
            } else {
                Ok(Decision::Move {
                    to: S::PublishFailed,
                    effects: Vec::new(),
                    next_check: None,
                    hold: None,
                })
            };
        }
    };
    let (rank_now, rank_target) = (state.publish_rank(), target.publish_rank());
    if rank_target < rank_now || (rank_target == rank_now && !new_ids && via == Via::Webhook) {
        return Ok(Decision::Absorb);
    }
    if state == S::PubliclyAvailable && !new_ids {
        return Ok(Decision::Absorb);
    }
    let next_check = match target {
        S::PubliclyAvailable => None,
        S::Submitted if job.post.mode == PostMode::Draft => check(
            now.plus(policy.poll_after(
                if target == state {
                    now.since(job.state_since)
                } else {
                    Duration::ZERO
                },
                policy.status_poll_max,
                policy.status_poll_max.saturating_mul(4),
            )),
            CheckKind::StatusPoll,
        ),
        other => status_check(other),
    };
    Ok(Decision::Move {
        to: target,
        effects: Vec::new(),
        next_check,
        hold: None,
    })
}
