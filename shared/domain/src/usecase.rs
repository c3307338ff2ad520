//! Moving a job: offer an event, write the transition conditionally, retry on a lost race, then
//! hand queue effects to the queue. Every function moves jobs through here.

use crate::ids::JobId;
use crate::job::{Applied, Job, Step};
use crate::lifecycle::{Effect, Event, Policy, TransitionError};
use crate::messages::{QueueKind, WorkMessage};
use crate::ports::{Clock, JobStore, StoreError, WorkQueue};

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
