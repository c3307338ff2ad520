//! Step 4: what TikTok answered, written with the attempt it answers. The `publish_id` is stored
//! before any byte moves; a write that keeps failing is a crash-equivalent, and the lease makes
//! the reconciler mark the job `publish_unknown`.

use std::time::Duration;

use crate::account::AccountHealth;
use crate::job::{Job, STALE_OBSERVATION};
use crate::lifecycle::{Effect, ErrorClass, Event};
use crate::ports::{Clock, Ports};
use crate::time::UtcTime;
use crate::upstream::{PublishApi, PublishInit, UpstreamError};

use super::super::Advance;
use super::commit::Attempt;
use super::{Core, PublishOutcome, is_scope_error};

impl<P: Ports> Core<P> {
    pub(crate) async fn record(
        &self,
        attempt: Attempt,
        answer: Result<PublishInit, UpstreamError>,
        deadline: UtcTime,
    ) -> PublishOutcome {
        match answer {
            Ok(init) => self.accepted(attempt, init, deadline).await,
            Err(e) if e.outcome_unknown => {
                tracing::error!(error.code = %e.code, upstream_log_id = e.log_id.as_deref(), error.message = %e,
                    "init outcome unknown: the job goes to publish_unknown and is never re-sent automatically");
                let event = Event::PublishOutcomeUnknown {
                    attempt: attempt.number,
                    error: e.job_error(),
                };
                match self.write_answer(attempt.job, &event).await {
                    Some(_) => PublishOutcome::Unknown { code: e.code },
                    None => PublishOutcome::Unrecorded,
                }
            }
            Err(e) => self.rejected(attempt, e).await,
        }
    }

    /// Offers an init's answer, retrying a failed write a few times.
    async fn write_answer(&self, job: Job, event: &Event) -> Option<Advance> {
        let rounds = self.settings.publish.record_attempts.max(1);
        for round in 1..=rounds {
            match self.advance_loaded(job.clone(), event).await {
                Ok(a) => return Some(a),
                Err(e) if round < rounds => {
                    tracing::warn!(event = event.name(), round, error.message = %e, "could not record the init's answer; retrying");
                    self.ports
                        .clock()
                        .sleep(Duration::from_millis(200 * u64::from(round)))
                        .await;
                }
                Err(e) => {
                    tracing::error!(event = event.name(), error.message = %e, alert = "publish_unrecorded",
                        "COULD NOT RECORD WHAT TIKTOK ANSWERED; the lease expiry will mark the job publish_unknown");
                }
            }
        }
        None
    }

    async fn accepted(
        &self,
        attempt: Attempt,
        init: PublishInit,
        deadline: UtcTime,
    ) -> PublishOutcome {
        let publish_id = init.publish_id.to_string();
        tracing::Span::current().record("publish_id", publish_id.as_str());
        tracing::info!(
            upstream_log_id = init.log_id.as_deref(),
            upload = init.upload_url.is_some(),
            "TikTok accepted the init"
        );
        let event = Event::PublishAccepted {
            attempt: attempt.number,
            publish_id: init.publish_id.clone(),
            upload: init.upload_url.is_some(),
            upstream_log_id: init.log_id.clone(),
        };
        let (job, upload) = match self.write_answer(attempt.job, &event).await {
            Some(Advance::Moved(applied)) if applied.audit.event != STALE_OBSERVATION => {
                let upload = applied.effects.contains(&Effect::UploadBytes);
                (applied.job, upload)
            }
            // Recorded already, this very publish (a webhook resolved the attempt first): the
            // bytes are still this process's to send.
            Some(Advance::Absorbed(job))
                if job.publish_id.as_ref() == Some(&init.publish_id)
                    && job.state == crate::lifecycle::JobState::PublishProcessing =>
            {
                (*job, true)
            }
            other => {
                tracing::warn!(outcome = ?other.as_ref().and_then(|a| a.job()).map(|j| j.state),
                    "publish_id not recorded as this attempt's: the job moved meanwhile");
                return PublishOutcome::Unrecorded;
            }
        };
        let (Some(url), true) = (init.upload_url.as_ref(), upload) else {
            return PublishOutcome::Accepted {
                publish_id,
                uploaded: false,
            };
        };
        let p = &attempt.prepared;
        let upload = self
            .ports
            .publish()
            .upload(url, &p.clip, p.video_size, deadline)
            .await;
        let (event, uploaded) = match upload {
            Ok(()) => (
                Event::UploadCompleted {
                    publish_id: init.publish_id.clone(),
                },
                true,
            ),
            Err(e) => {
                // Never re-init: status polls and webhooks decide what became of the publish.
                tracing::warn!(error.code = %e.code, upstream_log_id = e.log_id.as_deref(), error.message = %e, "upload failed");
                (
                    Event::UploadFailed {
                        publish_id: init.publish_id.clone(),
                        error: e.job_error(),
                    },
                    false,
                )
            }
        };
        if self.write_answer(job, &event).await.is_none() {
            return PublishOutcome::Unrecorded;
        }
        PublishOutcome::Accepted {
            publish_id,
            uploaded,
        }
    }

    async fn rejected(&self, attempt: Attempt, e: UpstreamError) -> PublishOutcome {
        tracing::warn!(error.code = %e.code, error.class = ?e.class, upstream_log_id = e.log_id.as_deref(), error.message = %e, "init rejected");
        let job = attempt.job;
        let (tenant, account) = (job.tenant_id.clone(), job.account_id.clone());
        let now = self.ports.clock().now();
        let settings = &self.settings.publish;
        let retry_at = if self.settings.policy.is_delay_only(&e.code) {
            let until = e
                .retry_at
                .unwrap_or_else(|| now.plus(settings.rate_limit_wait));
            self.block(&tenant, &account, until, &e.code).await;
            Some(until)
        } else {
            match e.class {
                ErrorClass::WaitForWindow => {
                    let until = now.plus(settings.cap_wait);
                    self.block(&tenant, &account, until, &e.code).await;
                    Some(until)
                }
                ErrorClass::Permanent if e.code == "spam_risk_user_banned_from_posting" => {
                    self.set_health(&tenant, &account, AccountHealth::Banned, &e.code)
                        .await;
                    e.retry_at
                }
                ErrorClass::NeedsUser if is_scope_error(&e.code) => {
                    self.set_health(&tenant, &account, AccountHealth::NeedsReauth, &e.code)
                        .await;
                    e.retry_at
                }
                // TikTok refused the token, so no post exists: the next attempt goes at once,
                // with the token refreshed below.
                ErrorClass::RefreshThenRetry => Some(now),
                _ => e.retry_at,
            }
        };
        let event = Event::PublishRejected {
            attempt: attempt.number,
            error: e.job_error(),
            class: e.class,
            retry_at,
        };
        let outcome = match self.write_answer(job, &event).await {
            Some(_) => PublishOutcome::Rejected {
                code: e.code.clone(),
            },
            None => PublishOutcome::Unrecorded,
        };
        if e.class == ErrorClass::RefreshThenRetry {
            // Outside the attempt: a slow refresh delays nothing that is in flight.
            if let Err(err) = self
                .fresh_token(&tenant, &account, Some(&attempt.prepared.token))
                .await
            {
                tracing::warn!(error.message = %err, "could not refresh the refused token; the next attempt tries again");
            }
        }
        outcome
    }
}
