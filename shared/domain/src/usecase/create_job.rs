//! Creating a job: once per idempotency key, for an account and (when it names one) a render of
//! the tenant's, stored with its first audit event and the answer to replay, then put on the
//! render queue.

use std::time::Duration;

use thiserror::Error;

use crate::account::AccountHealth;
use crate::ids::{AccountId, JobId, PayloadHash, RequestId, TenantId};
use crate::job::{Job, JobSource, PostMode};
use crate::ports::{
    AccountStore, Clock, Entropy, IdempotencyBegin, IdempotencyScope, JobStore, Ports, StoreError,
    StoredResponse,
};
use crate::request::NewJob;

use super::Core;

/// What a create answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new job, with the answer stored for replays.
    New {
        job: Box<Job>,
        response: StoredResponse,
    },
    /// The key was used before with the same request: the first answer, byte for byte.
    Replay(StoredResponse),
}

#[derive(Debug, Error)]
pub enum CreateError {
    #[error("an idempotency key is required")]
    KeyRequired,
    #[error("unknown account {0}")]
    UnknownAccount(AccountId),
    /// A direct post for an account its creator connected for drafts only (no `video.publish`):
    /// it could never go, so it is refused instead of accepted and parked.
    #[error("account {0} is connected for drafts only")]
    DirectPostNotAuthorized(AccountId),
    /// The tenant disconnected the account: nothing more is accepted for it until it is
    /// connected again.
    #[error("account {0} is disconnected")]
    AccountDisconnected(AccountId),
    /// `source.requestId` names a render that is not the tenant's (another tenant's, or one
    /// Reelay never made): answered like an id that does not exist.
    #[error("no render {0} belongs to this tenant")]
    UnknownRender(RequestId),
    #[error("the idempotency key was used with another request")]
    KeyReused,
    #[error("a request with this idempotency key is in progress")]
    KeyInProgress { retry_after: Duration },
    #[error("a job with this id exists")]
    JobExists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<P: Ports> Core<P> {
    /// Whether `tenant` may create `parsed` at all, before anything is claimed or written: its
    /// account exists and is not disconnected, a direct post has the scope it needs, and a
    /// named render is the tenant's own. A batch's preview asks the same.
    pub(crate) async fn admit(
        &self,
        tenant: &TenantId,
        parsed: &NewJob,
    ) -> Result<(), CreateError> {
        let Some(account) = self
            .ports
            .accounts()
            .get_account(tenant, &parsed.account_id)
            .await?
        else {
            return Err(CreateError::UnknownAccount(parsed.account_id.clone()));
        };
        if account.health == AccountHealth::Disconnected {
            return Err(CreateError::AccountDisconnected(parsed.account_id.clone()));
        }
        if parsed.post.mode == PostMode::Direct && account.drafts_only() {
            return Err(CreateError::DirectPostNotAuthorized(
                parsed.account_id.clone(),
            ));
        }
        if let JobSource::Rendered { request_id } = &parsed.source
            && !self.owns_render(tenant, request_id).await?
        {
            return Err(CreateError::UnknownRender(request_id.clone()));
        }
        Ok(())
    }

    /// Creates the job `parsed` describes for `tenant`. `fingerprint` identifies the request (the
    /// same key with another fingerprint is refused); `answer` renders the response stored for
    /// replays, from the job as created.
    pub async fn create_job(
        &self,
        tenant: &TenantId,
        parsed: NewJob,
        fingerprint: &PayloadHash,
        answer: impl Fn(&Job) -> StoredResponse + Send,
    ) -> Result<Created, CreateError> {
        let key = parsed
            .idempotency_key
            .clone()
            .ok_or(CreateError::KeyRequired)?;
        self.admit(tenant, &parsed).await?;
        let clock = self.ports.clock();
        let now = clock.now();
        let ttl = self.settings.ingest;
        let scope = IdempotencyScope {
            tenant_id: tenant.clone(),
            key,
        };
        match self
            .ports
            .jobs()
            .begin_idempotent(&scope, fingerprint, now, now.plus(ttl.in_progress_ttl))
            .await?
        {
            IdempotencyBegin::Started => {}
            IdempotencyBegin::Replay(stored) => return Ok(Created::Replay(stored)),
            IdempotencyBegin::Mismatch => return Err(CreateError::KeyReused),
            IdempotencyBegin::InProgress { until } => {
                return Err(CreateError::KeyInProgress {
                    retry_after: until.since(now),
                });
            }
        }
        let parsed_request = parsed.api_request_id.clone();
        // A chosen id is kept under its tenant's scope, so it never meets another tenant's.
        let id = parsed.job_id.as_ref().map_or_else(
            || JobId::generate(now, clock.random_u128()),
            |chosen| JobId::scoped(tenant, chosen),
        );
        let fan_out_parent = parsed.fan_out_parent.clone();
        let decided = async {
            // A job kept under the chosen id itself (made before ids were scoped) is the
            // tenant's too: choosing that id again is job_exists, not a second job.
            if let Some(chosen) = &parsed.job_id
                && let Some(earlier) = self.ports.jobs().get(chosen).await?
                && earlier.known_to(tenant, chosen)
            {
                return Err(CreateError::JobExists);
            }
            Ok(if parsed.next_slot {
                self.next_slot(tenant, &parsed.account_id, parsed.post.mode, None)
                    .await?
            } else {
                parsed.schedule_at.unwrap_or(now)
            })
        };
        let schedule_at = match decided.await {
            Ok(at) => at,
            Err(e) => {
                if let Err(release) = self.ports.jobs().abandon_idempotent(&scope).await {
                    tracing::warn!(error.message = %release, "could not release the idempotency key; it expires on its own");
                }
                return Err(e);
            }
        };
        let mut created = Job::create(
            id,
            tenant.clone(),
            parsed.account_id,
            parsed.source,
            parsed.post,
            schedule_at,
            Some(scope.key.clone()),
            now,
            &self.settings.policy,
        );
        created.job.api_request_id.clone_from(&parsed_request);
        created.job.fan_out_parent = fan_out_parent;
        created.job.client_job_id.clone_from(&parsed.job_id);
        created.audit.api_request_id = parsed_request;
        let response = answer(&created.job);
        let expires = now.plus(ttl.idempotency_ttl);
        let stored = self
            .ports
            .jobs()
            .create(&created, Some((&scope, fingerprint, &response, expires)))
            .await;
        if let Err(e) = stored {
            // Nothing was created: free the key so the client's retry can run.
            if let Err(release) = self.ports.jobs().abandon_idempotent(&scope).await {
                tracing::warn!(error.message = %release, "could not release the idempotency key; it expires on its own");
            }
            return Err(match e {
                StoreError::Conflict => CreateError::JobExists,
                other => CreateError::Store(other),
            });
        }
        tracing::info!(job_id = %created.job.id, account_id = %created.job.account_id,
            state = %created.job.state,
            api_request_id = created.job.api_request_id.as_deref().unwrap_or(""), "job accepted");
        self.send_effects(&created.job, &created.effects).await;
        Ok(Created::New {
            job: Box::new(created.job),
            response,
        })
    }
}
