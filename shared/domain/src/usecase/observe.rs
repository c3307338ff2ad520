//! What TikTok says about a publish (a webhook), applied to the attempt it names.
//!
//! Every attempt's `publish_id` points at its job, so an observation of an earlier attempt is
//! recognised and recorded as stale, never applied. A `publish_id` no job has ever had can only
//! be an init whose answer was lost: if the account has exactly one `publish_unknown` job with no
//! `publish_id`, that job's init did reach TikTok, and the observation resolves it.

use crate::ids::{AccountId, PublishId, TenantId};
use crate::job::{Job, STALE_OBSERVATION};
use crate::lifecycle::{Event, JobState, PublishStatus, Via};
use crate::ports::{AccountStore, JobFilter, JobStore, Ports, StoreError};

use super::{Advance, Core};

/// A TikTok webhook about a publish, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub publish_id: PublishId,
    /// The creator (`user_openid`) the publish belongs to.
    pub open_id: String,
    pub what: Observed,
}

/// What TikTok observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Status {
        status: PublishStatus,
        post_ids: Vec<String>,
    },
    NoLongerPublic {
        post_id: String,
    },
}

/// What an observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObserveOutcome {
    Moved {
        job_state: JobState,
    },
    /// A duplicate or an observation that changes nothing.
    Absorbed,
    /// About another attempt of the job: recorded, not applied.
    Stale,
    /// A publish_id we never stored resolved the account's `publish_unknown` job.
    Resolved {
        job_state: JobState,
    },
    /// Nothing of ours (an unknown publish or user).
    Ignored {
        why: &'static str,
    },
    /// A publish_id no job has, which cannot be attributed yet: an init of the account is in
    /// flight (its publisher may be about to record it), or several of its inits lost their
    /// answers. Not applied now: the sender should deliver it again (TikTok does, for 72 h, on
    /// any non-200 answer).
    Later,
}

/// Jobs listed per page when a use case walks one account's jobs.
const PAGE: u32 = 100;

impl Observation {
    fn event(&self, via: Via) -> Event {
        match &self.what {
            Observed::Status { status, post_ids } => Event::StatusObserved {
                publish_id: self.publish_id.clone(),
                status: status.clone(),
                post_ids: post_ids.clone(),
                via,
                upstream_log_id: None,
            },
            Observed::NoLongerPublic { post_id } => Event::NoLongerPublic {
                publish_id: self.publish_id.clone(),
                post_id: post_id.clone(),
            },
        }
    }
}

fn outcome(advance: &Advance) -> ObserveOutcome {
    match advance {
        Advance::Moved(a) if a.audit.event == STALE_OBSERVATION => ObserveOutcome::Stale,
        Advance::Moved(a) => ObserveOutcome::Moved {
            job_state: a.job.state,
        },
        Advance::Rescheduled(_) | Advance::Absorbed(_) => ObserveOutcome::Absorbed,
        Advance::Refused(job, e) => {
            tracing::info!(job_state = %job.state, error.message = %e, "observation does not fit the job; absorbed");
            ObserveOutcome::Absorbed
        }
        Advance::NotFound => ObserveOutcome::Ignored { why: "job" },
    }
}

impl<P: Ports> Core<P> {
    /// Applies a TikTok webhook's observation to the attempt it names.
    pub async fn observe_publish(
        &self,
        observation: &Observation,
    ) -> Result<ObserveOutcome, StoreError> {
        let event = observation.event(Via::Webhook);
        let pid = &observation.publish_id;
        match self.ports.jobs().job_for_publish(pid).await? {
            Some(job_id) => {
                tracing::Span::current().record("job_id", tracing::field::display(&job_id));
                let advance = self.advance(&job_id, &event).await?;
                Ok(outcome(&advance))
            }
            None => self.resolve_unknown(observation, &event).await,
        }
    }

    async fn resolve_unknown(
        &self,
        observation: &Observation,
        event: &Event,
    ) -> Result<ObserveOutcome, StoreError> {
        let Some((tenant, account)) = self
            .ports
            .accounts()
            .account_for_open_id(&observation.open_id)
            .await?
        else {
            tracing::info!("webhook for a publish and user we do not know");
            return Ok(ObserveOutcome::Ignored { why: "publish" });
        };
        tracing::Span::current().record("account_id", tracing::field::display(&account));
        if self
            .jobs_in(&tenant, &account, JobState::Publishing)
            .await?
            .iter()
            .any(|j| j.publish_id.is_none())
        {
            tracing::info!(
                "unknown publish_id while an init of the account is in flight; asking for redelivery"
            );
            return Ok(ObserveOutcome::Later);
        }
        let mut unknown: Vec<Job> = self
            .jobs_in(&tenant, &account, JobState::PublishUnknown)
            .await?
            .into_iter()
            .filter(|j| j.publish_id.is_none())
            .collect();
        let job = match (unknown.pop(), unknown.is_empty()) {
            (Some(job), true) => job,
            (None, _) => {
                tracing::info!("unknown publish_id and no publish_unknown job of the account");
                return Ok(ObserveOutcome::Ignored { why: "publish" });
            }
            // Two inits of the account lost their answers: which one this is may become clear
            // when the other is resolved. TikTok delivers again for 72 h; after that, an operator.
            (Some(_), false) => {
                tracing::warn!(
                    "unknown publish_id and several publish_unknown jobs; asking for redelivery"
                );
                return Ok(ObserveOutcome::Later);
            }
        };
        tracing::Span::current().record("job_id", tracing::field::display(&job.id));
        if let Some(origin) = &job.api_request_id {
            tracing::Span::current().record("api_request_id", origin.as_str());
        }
        // The publish is this job's only by inference (the account's one unknown init). A post
        // that exists cannot be made twice by believing it; a FAILED can: it would close this
        // job's attempt and start another, while the FAILED may be an abandoned attempt's (an
        // operator retried that job) and this job's own init may still post. Only a publish_id
        // the job holds can say its attempt failed; until then it stays publish_unknown.
        if matches!(
            event,
            Event::StatusObserved {
                status: PublishStatus::Failed { .. },
                ..
            }
        ) {
            tracing::warn!(job_id = %job.id, publish_id = %observation.publish_id,
                "a FAILED status for a publish no job holds cannot close this job's unknown attempt");
            return Ok(ObserveOutcome::Ignored {
                why: "unattributed_failure",
            });
        }
        let accepted = Event::PublishAccepted {
            attempt: job.attempt,
            publish_id: observation.publish_id.clone(),
            upload: false,
            upstream_log_id: None,
        };
        let advance = self.advance_loaded(job, &accepted).await?;
        let Advance::Moved(resolved) = advance else {
            return Ok(outcome(&advance));
        };
        tracing::info!("publish_unknown resolved by a webhook naming its publish_id");
        let then = self.advance_loaded(resolved.job.clone(), event).await?;
        let job_state = then.job().map_or(resolved.job.state, |j| j.state);
        Ok(ObserveOutcome::Resolved { job_state })
    }

    /// Every job of the account in `state`, across pages.
    pub async fn jobs_in(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        state: JobState,
    ) -> Result<Vec<Job>, StoreError> {
        let filter = JobFilter {
            account_id: Some(account.clone()),
            state: Some(state),
        };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .ports
                .jobs()
                .list(tenant, &filter, cursor.as_deref(), PAGE)
                .await?;
            out.extend(page.jobs.into_iter().filter(|j| j.state == state));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }
}
