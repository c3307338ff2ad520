//! Moving a job: offer an event, write the transition conditionally, retry on a lost race, then
//! hand queue effects to the queue. Every function moves jobs through here.

use crate::budget::{Admission, BudgetKind, Limits};
use crate::ids::{JobId, RequestId};
use crate::job::{Applied, Job, JobError, Step};
use crate::lifecycle::{Effect, Event, Policy, TransitionError};
use crate::messages::{QueueKind, WorkMessage};
use crate::ports::{AccountStore, Clock, JobStore, StoreError, WorkQueue};
use crate::time::UtcTime;
use crate::upstream::{RenderApi, RenderStatus, UpstreamError, choose_clip};

/// How many times a transition is re-decided after losing a race before giving up.
const MAX_RACES: usize = 8;

#[derive(Debug)]
pub enum Advance {
    /// Stored; in-band effects (render submit, init, upload) are the caller's to run.
    Moved(Box<Applied>),
    /// A duplicate or late event: nothing written.
    Absorbed(Box<Job>),
    /// The table refused the event in the job's current state.
    Refused(Box<Job>, TransitionError),
    NotFound,
}

impl Advance {
    pub fn job(&self) -> Option<&Job> {
        match self {
            Self::Moved(a) => Some(&a.job),
            Self::Absorbed(j) | Self::Refused(j, _) => Some(j),
            Self::NotFound => None,
        }
    }
}

/// Loads the job and offers it `event`; see [`advance_loaded`].
pub async fn advance<J, Q, C>(
    jobs: &J,
    queue: &Q,
    clock: &C,
    policy: &Policy,
    id: &JobId,
    event: &Event,
) -> Result<Advance, StoreError>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    match jobs.get(id).await? {
        Some(job) => advance_loaded(jobs, queue, clock, policy, job, event).await,
        None => Ok(Advance::NotFound),
    }
}

/// Offers `event` to `job` (as read by the caller). On a lost race the job is re-read and the
/// table decides again, so a concurrent move is never overwritten.
pub async fn advance_loaded<J, Q, C>(
    jobs: &J,
    queue: &Q,
    clock: &C,
    policy: &Policy,
    mut job: Job,
    event: &Event,
) -> Result<Advance, StoreError>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    for _ in 0..MAX_RACES {
        let applied = match job.apply(event, clock.now(), policy) {
            Ok(Step::Applied(applied)) => applied,
            Ok(Step::Absorbed) => return Ok(Advance::Absorbed(Box::new(job))),
            Err(e) => return Ok(Advance::Refused(Box::new(job), e)),
        };
        match jobs.save(&applied, job.version).await {
            Ok(()) => {
                dispatch(queue, &applied).await;
                return Ok(Advance::Moved(applied));
            }
            Err(StoreError::Conflict) => match jobs.get(&job.id).await? {
                Some(current) => job = current,
                None => return Ok(Advance::NotFound),
            },
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

/// Sends the queue effects of a stored transition. A failed send is logged, not fatal: the job's
/// next check brings the reconciler back to enqueue it.
pub async fn dispatch<Q: WorkQueue>(queue: &Q, applied: &Applied) {
    let job = &applied.job;
    for effect in &applied.effects {
        let (kind, attempt) = match effect {
            Effect::EnqueueRender => (QueueKind::Render, job.render_attempts),
            Effect::EnqueuePublish => (QueueKind::Publish, job.attempt),
            _ => continue,
        };
        let message = WorkMessage::new(
            kind,
            job.id.clone(),
            job.tenant_id.clone(),
            job.account_id.clone(),
            job.version,
        );
        if let Err(e) = queue.send(&message, attempt).await {
            tracing::warn!(job_id = %job.id, account_id = %job.account_id, error.message = %e,
                "enqueue failed; the reconciler will enqueue the job at its next check");
        }
    }
}

/// Takes one unit of each budget; the first refusal wins and nothing further is taken.
/// Returns `None` when every budget granted, or the instant to come back.
pub async fn take_budgets<A: AccountStore>(
    accounts: &A,
    scope: &str,
    kinds: &[BudgetKind],
    limits: &Limits,
    now: UtcTime,
) -> Result<Option<UtcTime>, StoreError> {
    Ok(take_budgets_naming(accounts, scope, kinds, limits, now)
        .await?
        .map(|(_, retry_at)| retry_at))
}

/// As [`take_budgets`], naming the budget that refused.
///
/// The takes are not one atomic step, so a unit taken before a refusal is spent without a call.
/// Shortest window first keeps that waste where it refills soonest: a burst refused by a
/// per-minute pool must not drain the hourly or daily budget (found by the fault campaign: 40
/// jobs waking at once spent the Ssemble hour on creates the minute pool then refused).
pub async fn take_budgets_naming<A: AccountStore>(
    accounts: &A,
    scope: &str,
    kinds: &[BudgetKind],
    limits: &Limits,
    now: UtcTime,
) -> Result<Option<(BudgetKind, UtcTime)>, StoreError> {
    for kind in limits.take_order(kinds) {
        if let Admission::Denied { retry_at } =
            accounts.take(scope, kind, limits.window(kind), now).await?
        {
            return Ok(Some((kind, retry_at)));
        }
    }
    Ok(None)
}

/// Ssemble's status budgets: per key per minute, and the account's hour and day.
pub const SSEMBLE_STATUS_BUDGETS: [BudgetKind; 3] = [
    BudgetKind::SsembleStatus,
    BudgetKind::SsembleHourly,
    BudgetKind::SsembleDaily,
];

/// What confirming a render found.
#[derive(Debug)]
pub enum Confirmed {
    /// Ssemble answered; `moved` jobs changed state (the rest absorbed a duplicate).
    Answered {
        status: RenderStatus,
        jobs: usize,
        moved: usize,
    },
    /// A budget is spent until `retry_at`; nothing was asked.
    OverBudget { retry_at: UtcTime },
    /// Ssemble could not answer.
    Unavailable(UpstreamError),
}

/// Asks Ssemble for a render's state (a webhook is only a hint) and moves every job that uses
/// the render — one render may feed many accounts.
#[allow(clippy::too_many_arguments)]
pub async fn confirm_render<J, Q, C, A, R>(
    jobs: &J,
    queue: &Q,
    clock: &C,
    policy: &Policy,
    accounts: &A,
    limits: &Limits,
    ssemble_scope: &str,
    render: &R,
    request_id: &RequestId,
) -> Result<Confirmed, StoreError>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
    A: AccountStore,
    R: RenderApi,
{
    if let Some(retry_at) = take_budgets(
        accounts,
        ssemble_scope,
        &SSEMBLE_STATUS_BUDGETS,
        limits,
        clock.now(),
    )
    .await?
    {
        return Ok(Confirmed::OverBudget { retry_at });
    }
    let status = match render.render_status(request_id).await {
        Ok(status) => status,
        Err(e) => return Ok(Confirmed::Unavailable(e)),
    };
    let ids = jobs.jobs_for_request(request_id).await?;
    let mut moved = 0;
    for id in &ids {
        let Some(job) = jobs.get(id).await? else {
            continue;
        };
        let event = match &status {
            RenderStatus::Pending => Event::RenderProgressed,
            RenderStatus::Completed { clips } => match choose_clip(clips, &job.post.clip) {
                Some(clip) => Event::RenderCompleted { clip },
                None => Event::RenderFailed {
                    error: JobError {
                        code: "clip_not_found".into(),
                        message: "the render has no usable clip matching the job's choice".into(),
                        upstream_log_id: None,
                    },
                },
            },
            RenderStatus::Failed { reason } => Event::RenderFailed {
                error: JobError {
                    code: "render_failed".into(),
                    message: reason.clone(),
                    upstream_log_id: None,
                },
            },
            RenderStatus::Cancelled => Event::RenderFailed {
                error: JobError {
                    code: "render_cancelled".into(),
                    message: "the render was cancelled at Ssemble".into(),
                    upstream_log_id: None,
                },
            },
        };
        if let Advance::Moved(_) = advance_loaded(jobs, queue, clock, policy, job, &event).await? {
            moved += 1;
        }
    }
    Ok(Confirmed::Answered {
        status,
        jobs: ids.len(),
        moved,
    })
}
