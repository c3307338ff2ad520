//! Who owns an Ssemble render. The stage has one Ssemble key, so every tenant's renders live in
//! one Ssemble account and any `requestId` would be readable with it: ownership is Reelay's to
//! keep. A render belongs to the tenant whose job it was created for; a job that publishes an
//! existing render (`source.requestId`, one render fanned out to many accounts) is accepted only
//! from that tenant. The `REQ#` pointers of a request therefore all name jobs of one tenant,
//! which is why reading one of them answers for all.

use crate::ids::{JobId, RequestId, TenantId};
use crate::ports::{JobStore, Ports, StoreError};

use super::Core;

impl<P: Ports> Core<P> {
    /// Whether `request_id` is a render of `tenant`'s: some job of the tenant's uses it. An id
    /// no job uses (another Ssemble client's, a guess, one whose jobs have all expired) is
    /// nobody's, so it is not the tenant's either.
    pub async fn owns_render(
        &self,
        tenant: &TenantId,
        request_id: &RequestId,
    ) -> Result<bool, StoreError> {
        for id in self.ports.jobs().jobs_for_request(request_id).await? {
            if let Some(job) = self.ports.jobs().get(&id).await? {
                return Ok(&job.tenant_id == tenant);
            }
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
