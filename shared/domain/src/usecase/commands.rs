//! Cancel and retry: explicit decisions of the job's owner, through the lifecycle table like
//! everything else. Another tenant's job is indistinguishable from a missing one.

use thiserror::Error;

use crate::ids::{JobId, TenantId};
use crate::job::Job;
use crate::lifecycle::{Event, TransitionError};
use crate::ports::{JobStore, Ports, StoreError};

use super::{Advance, Core};

#[derive(Debug, Error)]
pub enum CommandError {
    #[error("job not found")]
    NotFound,
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
    /// The tenant's job, or `None` if there is none (or it is another tenant's).
    pub async fn owned_job(
        &self,
        tenant: &TenantId,
        id: &JobId,
    ) -> Result<Option<Job>, StoreError> {
        Ok(self
            .ports
            .jobs()
            .get(id)
            .await?
            .filter(|job| &job.tenant_id == tenant))
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
        let event = match command {
            Command::Cancel => Event::Cancel,
            Command::Retry => Event::Retry,
        };
        let from = job.state;
        match self.advance_loaded(job, &event).await? {
            Advance::Moved(applied) => {
                tracing::info!(job_id = %applied.job.id, from = %from, to = %applied.job.state,
                    event = event.name(), "job moved by its owner");
                Ok(applied.job)
            }
            Advance::Rescheduled(r) => Ok(r.job),
            Advance::Absorbed(job) => Ok(*job),
            Advance::Refused(_, e) => Err(e.into()),
            Advance::NotFound => Err(CommandError::NotFound),
        }
    }
}
