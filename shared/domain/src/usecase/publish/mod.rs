//! Publishing one job: at most one TikTok init per attempt, and at most one attempt that may
//! still post.
//!
//! The steps, each in its own file and each returning an outcome:
//! 1. [`preflight`]: the job is still `publish_queued` and due, the account's gate is open, a
//!    fresh token, creator_info and TikTok's posting rules, the clip's size, and the budgets
//!    (the init's last, right before the commit). A post that can never go as asked fails here,
//!    with no init at all.
//! 2. [`commit`]: `PublishStarted` is written before the init; only the writer that wins calls
//!    TikTok, once. Nothing commits with less than the init window left before the deadline.
//! 3. [`send`]: the init itself.
//! 4. [`record`]: what TikTok answered, written with the attempt it answers; the `publish_id` at
//!    once, before any byte moves, then the bytes. An init whose outcome is unknown goes to
//!    `publish_unknown` and is never re-sent.
//!
//! A wait the account's FIFO group should sit out (a schedule seconds away, a short rate window, a
//! store hiccup) is an `Err(Wait)`: the message stays at the head of its group. Anything longer
//! holds the job (back to `ready`) and acknowledges.

mod commit;
mod preflight;
mod record;
mod send;

use std::time::Duration;

use secrecy::SecretString;

use crate::account::AccountHealth;
use crate::budget::BudgetKind;
use crate::ids::{AccountId, JobId, TenantId};
use crate::job::{Clip, Job, JobError};
use crate::lifecycle::{Event, JobState};
use crate::ports::{AccountStore, Clock, JobStore, Ports, StoreError};
use crate::time::UtcTime;

use super::Core;

/// What handling one publish message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The job is gone or past `publish_queued`: a stale or duplicate message.
    Stale,
    /// Held (account, cap, budget, creator) until the job's next check.
    Held { reason: String },
    /// The post can never go as asked; failed with no init.
    PreflightFailed { code: String },
    /// Another consumer (or a concurrent cancel) won the attempt record.
    LostRace,
    /// TikTok accepted; the bytes went (or TikTok pulls them).
    Accepted { publish_id: String, uploaded: bool },
    /// TikTok refused the init definitively.
    Rejected { code: String },
    /// The init's outcome is unknown: reconciled later, never re-sent.
    Unknown { code: String },
    /// Something after the init could not be recorded; the lease marks the job unknown.
    Unrecorded,
}

/// Keep the message at the head of its account's group for `after`, then handle it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// A short code for logs (never a secret).
    pub code: String,
    pub after: Duration,
    pub timing: WaitTiming,
}

/// What the wait ends at, which says how the queue may time the message's return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitTiming {
    /// A back-off whose end nothing marks (a store or upstream hiccup): jittered, never early.
    Backoff,
    /// The instant the account's own window or block ends: never early, never jittered. Only
    /// the head of the account's group waits for it, so there is no herd to spread, and jitter
    /// would only leave the account's allowed rate unused.
    Window,
    /// The job's own `scheduleAt`: never late.
    Schedule,
}

impl Wait {
    /// A back-off.
    pub fn new(code: impl Into<String>, after: Duration) -> Self {
        Self {
            code: code.into(),
            after,
            timing: WaitTiming::Backoff,
        }
    }
}

/// The result of a step: go on with `T`, or stop with what was done.
pub(crate) enum Step<T> {
    Go(T),
    Done(PublishOutcome),
}

/// What the preflight prepared for the attempt.
pub(crate) struct Prepared {
    pub job: Job,
    pub token: SecretString,
    pub clip: Clip,
    pub video_size: u64,
}

impl<P: Ports> Core<P> {
    /// Handles one publish message for `id`, with the invocation ending at `deadline`.
    pub async fn publish(&self, id: &JobId, deadline: UtcTime) -> Result<PublishOutcome, Wait> {
        let job = self
            .ports
            .jobs()
            .get(id)
            .await
            .map_err(|e| self.store_wait(&e))?;
        let Some(job) = job.filter(|j| j.state == JobState::PublishQueued) else {
            return Ok(PublishOutcome::Stale);
        };
        // Each step boxed: one step's state is on the heap while it runs, not all four at once.
        let prepared = match Box::pin(self.preflight(job, deadline)).await? {
            Step::Go(p) => p,
            Step::Done(outcome) => return Ok(outcome),
        };
        // Prepared up to `schedule_lead` early: the commit (and so the init) waits for the
        // schedule, to the millisecond. A change to the job meanwhile loses the commit.
        let clock = self.ports.clock();
        let due_in = prepared.job.schedule_at.since(clock.now());
        if !due_in.is_zero() {
            tracing::debug!(
                due_in_ms = due_in.as_millis() as u64,
                "prepared; waiting for the schedule"
            );
            clock.sleep(due_in).await;
        }
        let attempt = match Box::pin(self.commit(prepared, deadline)).await? {
            Step::Go(a) => a,
            Step::Done(outcome) => return Ok(outcome),
        };
        let answer = Box::pin(self.send(&attempt)).await;
        Ok(Box::pin(self.record(attempt, answer, deadline)).await)
    }

    /// A store failure before the commit: nothing happened yet, so the message is simply
    /// redelivered after the store's retry, not after the queue's visibility timeout.
    pub(crate) fn store_wait(&self, e: &StoreError) -> Wait {
        tracing::warn!(error.message = %e, "store failed before the init; the message will be redelivered");
        Wait::new("store_unavailable", self.settings.store_retry)
    }

    /// Parks the job (back to `ready`) with a reason; the reconciler looks again at `until`, or
    /// ever more rarely when no end is known.
    pub(crate) async fn hold(
        &self,
        job: Job,
        reason: &str,
        until: Option<UtcTime>,
    ) -> Result<PublishOutcome, Wait> {
        let event = Event::Held {
            reason: reason.to_owned(),
            until,
        };
        self.advance_loaded(job, &event)
            .await
            .map_err(|e| self.store_wait(&e))?;
        tracing::info!(reason, until = ?until.map(|t| t.to_string()), "job held");
        Ok(PublishOutcome::Held {
            reason: reason.to_owned(),
        })
    }

    /// Waits until `until`: by delaying the group when short, by a hold when long.
    pub(crate) async fn wait(
        &self,
        job: Job,
        reason: &str,
        until: UtcTime,
    ) -> Result<PublishOutcome, Wait> {
        let remaining = until.since(self.ports.clock().now());
        if remaining <= self.settings.publish.group_delay_cap {
            tracing::info!(
                reason,
                delay_ms = remaining.as_millis() as u64,
                "account's group waits"
            );
            return Err(Wait {
                code: reason.to_owned(),
                after: remaining,
                timing: WaitTiming::Window,
            });
        }
        self.hold(job, reason, Some(until)).await
    }

    pub(crate) async fn preflight_failed(
        &self,
        job: Job,
        error: JobError,
    ) -> Result<PublishOutcome, Wait> {
        tracing::warn!(error.code = %error.code, error.message = %error.message, "preflight failed; no init");
        let code = error.code.clone();
        self.advance_loaded(job, &Event::PreflightFailed { error })
            .await
            .map_err(|e| self.store_wait(&e))?;
        Ok(PublishOutcome::PreflightFailed { code })
    }

    /// Nothing is sent for the account before `until`; best effort (its budgets still pace it).
    pub(crate) async fn block(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        until: UtcTime,
        reason: &str,
    ) {
        match self
            .ports
            .accounts()
            .block_until(tenant, account, until, reason)
            .await
        {
            Ok(()) => tracing::info!(reason, until = %until, "account blocked"),
            Err(e) => {
                tracing::warn!(error.message = %e, reason, "could not block the account; its budget still paces it")
            }
        }
    }

    pub(crate) async fn set_health(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        health: AccountHealth,
        reason: &str,
    ) {
        match self
            .ports
            .accounts()
            .set_health(tenant, account, health, Some(reason))
            .await
        {
            Ok(()) => tracing::info!(reason, health = health.as_str(), "account health changed"),
            Err(e) => {
                tracing::warn!(error.message = %e, reason, "could not record the account's health")
            }
        }
    }
}

/// The budget whose denial names the wait.
fn cap_reason(kind: BudgetKind) -> &'static str {
    match kind {
        BudgetKind::DirectPostsDaily => "direct_posts_daily_budget",
        BudgetKind::PendingDrafts => "pending_drafts_budget",
        BudgetKind::TikTokCreatorInfo => "creator_info_budget",
        _ => "init_budget",
    }
}

fn job_error(code: &str, message: String) -> JobError {
    JobError {
        code: code.into(),
        message,
        upstream_log_id: None,
    }
}

/// The codes after which only the creator's new consent helps.
fn is_scope_error(code: &str) -> bool {
    matches!(code, "scope_not_authorized" | "scope_permission_missed")
}
