//! Cancel, retry and amend: explicit decisions of the job's owner (cancel and retry also of an
//! operator), through the lifecycle table like everything else. Another tenant's job is
//! indistinguishable from a missing one; an operator reaches every job, under the same rules,
//! and is named in the audit.

use thiserror::Error;

use crate::envelope::FieldError;
use crate::ids::{JobId, TenantId};
use crate::job::{Job, PostMode};
use crate::lifecycle::{Actor, Event, TransitionError};
use crate::ports::{JobStore, Ports, StoreError};
use crate::request::Amendment;

use super::{Advance, Core};

#[derive(Debug, Error)]
pub enum CommandError {
    #[error("job not found")]
    NotFound,
    /// The command's own fields are invalid for this job (e.g. a caption for a draft).
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Refused(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The two commands a client may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Cancel,
    Retry,
}

impl<P: Ports> Core<P> {
    /// The tenant's job that it knows as `id`, or `None` if there is none (or it is another
    /// tenant's). An id Reelay gave is one read; an id the client chose lives under
    /// [`JobId::scoped`], one read more.
    pub async fn owned_job(
        &self,
        tenant: &TenantId,
        id: &JobId,
    ) -> Result<Option<Job>, StoreError> {
        tenant_job(self.ports.jobs(), tenant, id).await
    }

    /// Cancels or retries the tenant's job; answers with the job as it stands after.
    pub async fn command(
        &self,
        tenant: &TenantId,
        id: &JobId,
        command: Command,
    ) -> Result<Job, CommandError> {
        let job = self
            .owned_job(tenant, id)
            .await?
            .ok_or(CommandError::NotFound)?;
        self.give(job, command, Actor::Owner).await
    }

    /// Cancels or retries any tenant's job as an operator (`Actor::operator`): the same table
    /// (a retry that could post twice is refused), the operator and the reason in the audit.
    pub async fn operator_command(
        &self,
        id: &JobId,
        command: Command,
        by: Actor,
    ) -> Result<Job, CommandError> {
        let job = self
            .ports
            .jobs()
            .get(id)
            .await?
            .ok_or(CommandError::NotFound)?;
        self.give(job, command, by).await
    }

    /// Moves the tenant's job's `scheduleAt` or changes its caption while it has not started
    /// publishing (the table refuses afterwards). A draft has no caption to change: the creator
    /// writes it in the app.
    pub async fn amend(
        &self,
        tenant: &TenantId,
        id: &JobId,
        amendment: Amendment,
    ) -> Result<Job, CommandError> {
        let job = self
            .owned_job(tenant, id)
            .await?
            .ok_or(CommandError::NotFound)?;
        if job.post.mode == PostMode::Draft && amendment.title.is_some() {
            return Err(CommandError::Invalid(vec![FieldError {
                field: "post.title".into(),
                message: "does not apply to a draft: the creator writes it in the app".into(),
            }]));
        }
        let schedule_at = if amendment.next_slot {
            let (account, mode) = (&job.account_id, job.post.mode);
            Some(self.next_slot(tenant, account, mode, Some(&job.id)).await?)
        } else {
            amendment.schedule_at
        };
        let event = Event::Amend {
            schedule_at,
            title: amendment.title,
        };
        self.offer_command(job, event).await
    }

    async fn give(&self, job: Job, command: Command, by: Actor) -> Result<Job, CommandError> {
        let event = match command {
            Command::Cancel => Event::Cancel { by },
            Command::Retry => Event::Retry { by },
        };
        self.offer_command(job, event).await
    }

    async fn offer_command(&self, job: Job, event: Event) -> Result<Job, CommandError> {
        let from = job.state;
        match self.advance_loaded(job, &event).await? {
            Advance::Moved(applied) => {
                tracing::info!(job_id = %applied.job.id, from = %from, to = %applied.job.state,
                    event = event.name(), detail = event.detail(), "job moved by a command");
                Ok(applied.job)
            }
            Advance::Rescheduled(r) => Ok(r.job),
            Advance::Absorbed(job) => Ok(*job),
            Advance::Refused(_, e) => Err(e.into()),
            Advance::NotFound => Err(CommandError::NotFound),
        }
    }
}

/// The job `tenant` knows as `id` (see [`Core::owned_job`]); the operator CLI finds a job from
/// a client's report with it.
pub async fn tenant_job(
    jobs: &impl JobStore,
    tenant: &TenantId,
    id: &JobId,
) -> Result<Option<Job>, StoreError> {
    let mine = |job: &Job| job.known_to(tenant, id);
    if let Some(job) = jobs.get(id).await?.filter(mine) {
        return Ok(Some(job));
    }
    Ok(jobs.get(&JobId::scoped(tenant, id)).await?.filter(mine))
}
