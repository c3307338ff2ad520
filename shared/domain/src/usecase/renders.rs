//! Who owns an Ssemble render. The stage has one Ssemble key, so every tenant's renders live in
//! one Ssemble account and any `requestId` would be readable with it: ownership is Reelay's to
//! keep. A render belongs to the tenant whose job it was created for; a job that publishes an
//! existing render (`source.requestId`, one render fanned out to many accounts) is accepted only
//! from that tenant. The `REQ#` pointers of a request therefore all name jobs of one tenant,
//! which is why reading one of them answers for all.

use crate::ids::{JobId, RequestId, TenantId};
use crate::lifecycle::JobState;
use crate::ports::{JobStore, Ports, StoreError};

/// Ssemble's code for a request it does not know (deleted, or never this key's).
pub const RENDER_GONE: &str = "resource_not_found";

use super::Core;

impl<P: Ports> Core<P> {
    /// Whether `request_id` is a render of `tenant`'s that may still be published: some job of
    /// the tenant's uses it, and not every one of them failed because Ssemble no longer knows
    /// it (`resource_not_found`: deleted at Ssemble). An id no job uses (another Ssemble
    /// client's, a guess, one whose jobs have all expired) is nobody's; a render known to be
    /// gone would only be polled until it fails again.
    pub async fn owns_render(
        &self,
        tenant: &TenantId,
        request_id: &RequestId,
    ) -> Result<bool, StoreError> {
        let mut owned = false;
        for id in self.ports.jobs().jobs_for_request(request_id).await? {
            let Some(job) = self.ports.jobs().get(&id).await? else {
                continue;
            };
            if &job.tenant_id != tenant {
                return Ok(false);
            }
            let gone = job.state == JobState::RenderFailed
                && job
                    .last_error
                    .as_ref()
                    .is_some_and(|e| e.code == RENDER_GONE);
            if !gone {
                // The pointers of a request all name one tenant's jobs: no need to read on.
                return Ok(true);
            }
            owned = true;
        }
        if owned {
            tracing::info!(request_id = %request_id, "every job of the render failed: Ssemble no longer has it");
        }
        Ok(false)
    }

    /// Whether a request already feeds a job other than `job`. A create whose answer was lost
    /// is looked for among Ssemble's recent requests by source and range; a match that another
    /// job already uses (another tenant clipping the same video, or a sibling job of the same
    /// tenant) is that job's create, never this one's, and claiming it would hand one tenant's
    /// render to another.
    pub(super) async fn request_used_by_other(
        &self,
        job: &JobId,
        request_id: &RequestId,
    ) -> Result<bool, StoreError> {
        Ok(self
            .ports
            .jobs()
            .jobs_for_request(request_id)
            .await?
            .iter()
            .any(|other| other != job))
    }
}
