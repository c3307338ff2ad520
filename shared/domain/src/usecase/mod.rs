//! Reelay's use cases, each written once: create a job, submit and confirm a render, publish,
//! observe a publish, reconcile due work, cancel and retry, and the account flows. Every function
//! crate is an adapter around one of them: it decodes its trigger, calls the use case on its
//! [`Core`], and encodes the outcome. No function decides a state, a budget order or an error
//! code.
//!
//! Every change to a job goes through [`Core::advance_loaded`]: offer an event, write the
//! transition (or the new next check) conditionally, re-decide on a lost race, then hand queue
//! effects to the queue.

mod accounts;
mod api_rate;
mod batch;
mod budgets;
mod commands;
mod create_job;
mod disconnect;
mod observe;
pub mod publish;
mod reconcile;
mod render;
mod renders;
mod settings;
pub mod tenants;
mod tokens;
mod webhooks;

pub use accounts::{
    AccountError, AccountPage, AccountStatus, BudgetLeft, CallbackOutcome, ConnectLink, Connected,
    CreatorInfoError, CreatorSettings, OAUTH_STATE_LOCK_PREFIX,
};
pub use api_rate::{ApiAdmission, RateStatus, api_scope};
pub use batch::{MAX_BATCH_ITEMS, PostPlan};
pub use budgets::{Denied, SSEMBLE_CREATE_BUDGETS, SSEMBLE_LIST_BUDGETS, SSEMBLE_STATUS_BUDGETS};
pub use commands::{Command, CommandError, tenant_job};
pub use create_job::{CreateError, Created};
pub use disconnect::{DISCONNECTED, Disconnected};
pub use observe::{Observation, ObserveOutcome, Observed};
pub use publish::{PublishOutcome, Wait, WaitTiming};
pub use reconcile::{Reconciled, RunReport, round_robin};
pub use render::{
    Confirmed, FAN_OUT_PENDING, HintOutcome, RenderHint, SOURCE_BUSY, SubmitOutcome, event_for,
    failure_code,
};
pub use renders::RENDER_GONE;
pub use settings::{
    IngestSettings, PublishSettings, ReconcileSettings, RenderSettings, Settings, TokenSettings,
};
pub use tenants::{Rotated, TenantError};
pub use tokens::{TokenError, refresh_lock_name};
pub use webhooks::{Attempted, EndpointRequest, Outbound, OutboundError, OutboundSettings};

use crate::ids::JobId;
use crate::job::{Applied, Job, Rescheduled, Step};
use crate::lifecycle::{Effect, Event, TransitionError};
use crate::messages::{QueueKind, WorkMessage};
use crate::ports::{Clock, JobStore, Ports, StoreError, WorkQueue};

/// How many times a transition is re-decided after losing a race before giving up.
const MAX_RACES: usize = 8;

/// The ports and the settings every use case runs on; built once per cold start.
#[derive(Debug, Clone)]
pub struct Core<P> {
    pub ports: P,
    pub settings: Settings,
}

/// What offering an event did.
#[derive(Debug)]
pub enum Advance {
    /// Stored; in-band effects (render submit, init, upload) are the caller's to run.
    Moved(Box<Applied>),
    /// Only the next check moved (no version, no audit event).
    Rescheduled(Box<Rescheduled>),
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
            Self::Rescheduled(r) => Some(&r.job),
            Self::Absorbed(j) | Self::Refused(j, _) => Some(j),
            Self::NotFound => None,
        }
    }

    pub fn moved(&self) -> bool {
        matches!(self, Self::Moved(_))
    }

    /// Whether anything was written (a transition or a new next check).
    pub fn written(&self) -> bool {
        matches!(self, Self::Moved(_) | Self::Rescheduled(_))
    }
}

impl<P> Core<P> {
    /// The same core over other ports (a local runner decorates them with its kill switch).
    pub fn map_ports<Q>(self, f: impl FnOnce(P) -> Q) -> Core<Q> {
        Core {
            ports: f(self.ports),
            settings: self.settings,
        }
    }
}

impl<P: Ports> Core<P> {
    pub fn new(ports: P, settings: Settings) -> Self {
        Self { ports, settings }
    }

    /// Loads the job and offers it `event`; see [`Core::advance_loaded`].
    pub async fn advance(&self, id: &JobId, event: &Event) -> Result<Advance, StoreError> {
        match Box::pin(self.ports.jobs().get(id)).await? {
            Some(job) => self.advance_loaded(job, event).await,
            None => Ok(Advance::NotFound),
        }
    }

    /// Offers `event` to `job` (as read by the caller). On a lost race the job is re-read and the
    /// table decides again, so a concurrent move is never overwritten.
    pub async fn advance_loaded(&self, mut job: Job, event: &Event) -> Result<Advance, StoreError> {
        let jobs = self.ports.jobs();
        for _ in 0..MAX_RACES {
            let now = self.ports.clock().now();
            // The store's futures are large (an SDK transaction); boxed, they do not grow every
            // use case's future and stack frame that awaits a transition.
            let written = match job.apply(event, now, &self.settings.policy) {
                Ok(Step::Applied(applied)) => Box::pin(jobs.save(&applied, job.version))
                    .await
                    .map(|()| Advance::Moved(applied)),
                Ok(Step::Rescheduled(next)) => Box::pin(jobs.reschedule(&next.job))
                    .await
                    .map(|()| Advance::Rescheduled(next)),
                Ok(Step::Absorbed) => return Ok(Advance::Absorbed(Box::new(job))),
                Err(e) => return Ok(Advance::Refused(Box::new(job), e)),
            };
            match written {
                Ok(advance) => {
                    match &advance {
                        Advance::Moved(a) => Box::pin(self.send_effects(&a.job, &a.effects)).await,
                        Advance::Rescheduled(r) => {
                            Box::pin(self.send_effects(&r.job, &r.effects)).await;
                        }
                        _ => {}
                    }
                    return Ok(advance);
                }
                Err(StoreError::Conflict) => match Box::pin(jobs.get(&job.id)).await? {
                    Some(current) => job = current,
                    None => return Ok(Advance::NotFound),
                },
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Puts `job` on the queues its `effects` name. The deduplication id is one per logical
    /// enqueue: the job's version and the next check written with it.
    pub async fn send_effects(&self, job: &Job, effects: &[Effect]) {
        for effect in effects {
            let kind = match effect {
                Effect::EnqueueRender => QueueKind::Render,
                Effect::EnqueuePublish => QueueKind::Publish,
                _ => continue,
            };
            let message = WorkMessage::new(
                kind,
                job.id.clone(),
                job.tenant_id.clone(),
                job.account_id.clone(),
                job.version,
            )
            .for_request(job.api_request_id.as_deref());
            let nonce = job.next_check.map_or(0, |c| c.at.as_millis());
            if let Err(e) =
                Box::pin(self.ports.queue().send(&message, &message.dedup_id(nonce))).await
            {
                tracing::warn!(job_id = %job.id, account_id = %job.account_id, error.message = %e,
                    "enqueue failed; the reconciler will enqueue the job at its next check");
            }
        }
    }
}

/// Every use case's future is `Send` for any [`Ports`], so a Lambda runtime or a local runner can
/// spawn it. Checked here, at compile time, rather than first in a function crate.
#[allow(dead_code, clippy::too_many_arguments)]
fn use_cases_are_send<P: Ports>(
    core: &Core<P>,
    id: &JobId,
    at: crate::time::UtcTime,
    request: &crate::ids::RequestId,
    tenant: &crate::ids::TenantId,
    account: &crate::ids::AccountId,
    observation: &Observation,
    token: &secrecy::SecretString,
) {
    fn send<T: Send>(_: T) {}
    send(core.publish(id, at));
    send(core.submit_render(id));
    send(core.reconcile(at));
    send(core.confirm_render(request, None));
    send(core.render_hint(id, token, &RenderHint::default(), at));
    send(core.command(tenant, id, Command::Retry));
    send(core.observe_publish(observation));
    send(core.authorization_removed("open_id", 1));
    send(core.oauth_callback("state", None, None, ""));
    send(core.connect_account(tenant, account, crate::job::PostMode::Draft, ""));
    send(core.account_status(tenant, account));
    send(core.creator_info(tenant, account));
    send(core.admit_api_request(tenant));
}
