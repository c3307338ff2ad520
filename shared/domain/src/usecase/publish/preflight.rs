//! Step 1: everything checked before an attempt is committed. Nothing here can post.

use crate::account::{Account, AccountHealth, Gate, publish_gate};
use crate::budget::BudgetKind;
use crate::compliance::{self, CreatorInfo};
use crate::job::{Job, PostMode};
use crate::lifecycle::ErrorClass;
use crate::ports::{AccountStore, Clock, Ports};
use crate::time::UtcTime;
use crate::upstream::{PublishApi, UpstreamError};

use super::{Core, Prepared, PublishOutcome, Step, Wait, WaitTiming, cap_reason, job_error};

impl<P: Ports> Core<P> {
    pub(crate) async fn preflight(
        &self,
        job: Job,
        deadline: UtcTime,
    ) -> Result<Step<Prepared>, Wait> {
        let now = self.ports.clock().now();
        let settings = &self.settings.publish;
        // A message this close to its schedule is prepared now and only its commit waits for
        // the second (in `publish`): the reads, creator_info and budgets are off the due path.
        let due_in = job.schedule_at.since(now);
        if due_in > settings.schedule_lead {
            // Publishes are enqueued up to `enqueue_ahead` early: the group waits, never
            // jittered late, until half the lead before the schedule, so a redelivery that is
            // slow to arrive is still prepared ahead; a message far too early holds the job.
            if due_in
                <= settings
                    .group_delay_cap
                    .max(self.settings.policy.enqueue_ahead)
            {
                return Err(Wait {
                    code: "not_due_yet".into(),
                    after: due_in.saturating_sub(settings.schedule_lead / 2),
                    timing: WaitTiming::Schedule,
                });
            }
            let at = job.schedule_at;
            return self
                .hold(job, "not_due_yet", Some(at))
                .await
                .map(Step::Done);
        }
        let (tenant, account_id) = (job.tenant_id.clone(), job.account_id.clone());
        let account = self
            .ports
            .accounts()
            .get_account(&tenant, &account_id)
            .await
            .map_err(|e| self.store_wait(&e))?;
        match publish_gate(account.as_ref(), job.post.mode, now) {
            Gate::Open => {}
            Gate::Park { reason } => return self.hold(job, &reason, None).await.map(Step::Done),
            Gate::Wait { reason, until } => {
                return self.wait(job, &reason, until).await.map(Step::Done);
            }
        }
        if now.plus(due_in).plus(settings.init_window) > deadline {
            // Budgets and creator_info would be spent on an attempt that cannot finish in time.
            return Err(Wait::new("out_of_time", std::time::Duration::ZERO));
        }
        let scope = job.account_scope();

        let mut token = match self.fresh_token(&tenant, &account_id, None).await {
            Ok(t) => t,
            Err(e) => return self.token_unavailable(job, &e).await.map(Step::Done),
        };
        // creator_info needs video.publish: an account connected for drafts only sends its
        // drafts without it (the creator chooses privacy and interactions in the app).
        let can_query = account.as_ref().is_some_and(Account::may_post_directly);
        let creator = if can_query {
            let mut answer = None;
            for round in 0..2 {
                if let Some(denied) = self
                    .take_budgets(&scope, &[BudgetKind::TikTokCreatorInfo], 1)
                    .await
                    .map_err(|e| self.store_wait(&e))?
                {
                    return self
                        .wait(job, cap_reason(denied.kind), denied.retry_at)
                        .await
                        .map(Step::Done);
                }
                match self.ports.publish().creator_info(&token).await {
                    Err(e) if e.class == ErrorClass::RefreshThenRetry && round == 0 => {
                        // TikTok refused the token: refresh it once (no attempt is open yet).
                        token = match self.fresh_token(&tenant, &account_id, Some(&token)).await {
                            Ok(t) => t,
                            Err(e) => return self.token_unavailable(job, &e).await.map(Step::Done),
                        };
                    }
                    other => {
                        answer = Some(other);
                        break;
                    }
                }
            }
            match answer {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => return self.before_init_failed(job, &e).await.map(Step::Done),
                None => {
                    return Err(Wait::new(
                        "creator_info_unavailable",
                        self.settings.store_retry,
                    ));
                }
            }
        } else {
            None
        };
        if let Some(reason) = creator.as_ref().and_then(|c| c.cannot_post_reason.clone()) {
            return self.cannot_post(job, &reason).await.map(Step::Done);
        }
        let Some(clip) = job.clip.clone() else {
            let error = job_error("no_clip", "the job has no rendered clip to post".into());
            return self.preflight_failed(job, error).await.map(Step::Done);
        };
        if let Some(outcome) = self.compliance(&job, creator.as_ref()) {
            return self.preflight_failed(job, outcome).await.map(Step::Done);
        }

        // The clip's size, then the init's budgets, then the commit and at once the init: TikTok
        // counts an init when it arrives, so the take is stamped as close to the send as the
        // commit allows (`Limits::window_margin` covers the rest). A denied take still comes
        // before the commit, so nothing is owed.
        let video_size = match self.ports.publish().clip_size(&clip, deadline).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error.code = %e.code, error.message = %e, "clip origin unavailable");
                let until = self.ports.clock().now().plus(settings.transient_wait);
                return self
                    .hold(job, "clip_unavailable", Some(until))
                    .await
                    .map(Step::Done);
            }
        };
        let cap = match job.post.mode {
            PostMode::Direct => BudgetKind::DirectPostsDaily,
            PostMode::Draft => BudgetKind::PendingDrafts,
        };
        if let Some(denied) = self
            .take_budgets(&scope, &[BudgetKind::TikTokInit, cap], 1)
            .await
            .map_err(|e| self.store_wait(&e))?
        {
            return self
                .wait(job, cap_reason(denied.kind), denied.retry_at)
                .await
                .map(Step::Done);
        }
        Ok(Step::Go(Prepared {
            job,
            token,
            clip,
            video_size,
        }))
    }

    /// TikTok's creator-dependent rules; `None` when the post may go as asked.
    fn compliance(&self, job: &Job, creator: Option<&CreatorInfo>) -> Option<crate::job::JobError> {
        let duration = job.clip.as_ref().and_then(|c| c.duration_secs);
        let violations = creator
            .map(|c| compliance::check(&job.post, duration, c))
            .unwrap_or_default();
        if violations.is_empty() {
            return None;
        }
        let message = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect::<Vec<_>>()
            .join("; ");
        Some(job_error("preflight_failed", message))
    }

    /// No token: only the creator can fix a dead one; anything else is worth a short wait.
    async fn token_unavailable(
        &self,
        job: Job,
        e: &super::super::TokenError,
    ) -> Result<PublishOutcome, Wait> {
        if e.needs_user() {
            self.set_health(
                &job.tenant_id,
                &job.account_id,
                AccountHealth::NeedsReauth,
                "needs_reauth",
            )
            .await;
            return self.hold(job, "needs_reauth", None).await;
        }
        tracing::warn!(error.message = %e, "no fresh token now; the account's group waits");
        Err(Wait::new(
            "token_unavailable",
            self.settings
                .store_retry
                .max(std::time::Duration::from_secs(30)),
        ))
    }

    /// creator_info says the creator cannot post now (a cap, a ban).
    async fn cannot_post(&self, job: Job, reason: &str) -> Result<PublishOutcome, Wait> {
        let now = self.ports.clock().now();
        let until = now.plus(self.settings.publish.cap_wait);
        if reason == "spam_risk_user_banned_from_posting" {
            self.set_health(
                &job.tenant_id,
                &job.account_id,
                AccountHealth::Banned,
                reason,
            )
            .await;
            return self.hold(job, reason, None).await;
        }
        self.block(&job.tenant_id, &job.account_id, until, reason)
            .await;
        self.hold(job, reason, Some(until)).await
    }

    /// A creator_info failure: nothing was posted, so the job waits or is held.
    async fn before_init_failed(
        &self,
        job: Job,
        e: &UpstreamError,
    ) -> Result<PublishOutcome, Wait> {
        tracing::warn!(error.code = %e.code, upstream_log_id = e.log_id.as_deref(), error.message = %e, "creator_info failed");
        let now = self.ports.clock().now();
        let settings = &self.settings.publish;
        let (tenant, account) = (job.tenant_id.clone(), job.account_id.clone());
        match e.class {
            _ if self.settings.policy.is_delay_only(&e.code) => {
                let until = e
                    .retry_at
                    .unwrap_or_else(|| now.plus(settings.rate_limit_wait));
                self.block(&tenant, &account, until, &e.code).await;
                self.wait(job, &e.code, until).await
            }
            ErrorClass::NeedsUser | ErrorClass::RefreshThenRetry => {
                self.set_health(&tenant, &account, AccountHealth::NeedsReauth, &e.code)
                    .await;
                self.hold(job, "needs_reauth", None).await
            }
            ErrorClass::WaitForWindow => {
                let until = now.plus(settings.cap_wait);
                self.block(&tenant, &account, until, &e.code).await;
                self.hold(job, &e.code, Some(until)).await
            }
            ErrorClass::Retryable => {
                let until = e
                    .retry_at
                    .unwrap_or_else(|| now.plus(settings.transient_wait));
                self.wait(job, &e.code, until).await
            }
            ErrorClass::Permanent => self.hold(job, &e.code, None).await,
        }
    }
}
