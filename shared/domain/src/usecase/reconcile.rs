//! Reconciling due work: on every schedule tick, read the due-work index and move each due job
//! forward within the upstream budgets and the run's time. Its cost grows with the due work, not
//! with the table.
//!
//! Due work is handled concurrently (bounded) and round-robin across accounts within what one
//! read returned: one account's backlog due at the same instant as another account's schedule
//! must not be moved first, one job at a time, while the other waits.
//!
//! Every due job leaves with its next check moved: an event that changes nothing (an ignored
//! poll, a refused command) is followed by a back-off, so no job is looked at on every tick.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::account::{Gate, publish_gate};
use crate::budget::BudgetKind;
use crate::job::Job;
use crate::lifecycle::{CheckKind, Event, JobState, Via};
use crate::ports::{AccountStore, Clock, DueJob, JobStore, Ports, StoreError};
use crate::time::UtcTime;
use crate::upstream::PublishApi;

use super::render::Confirmed;
use super::{Advance, Core};

/// One run's figures, logged and returned (the schedule ignores the value; tests read it).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub due: usize,
    pub moved: usize,
    pub deferred: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Jobs this run moved to `publish_unknown` (a publisher died mid-init, a stuck publish).
    pub became_unknown: usize,
    /// Jobs whose render this run confirmed done (on to publishing) or failed.
    pub rendered: usize,
    pub render_failed: usize,
    /// How late the most overdue job this run looked at was, in milliseconds: the reconciler's
    /// lag behind its due work.
    pub lag_ms: u64,
    /// Stopped early to stay inside the function's timeout.
    pub out_of_time: bool,
}

/// What one run has done already: a render confirmed once moves every job that uses it, so the
/// run does not ask Ssemble again for the render's other jobs.
#[derive(Debug, Default)]
struct RunMemo {
    confirmed: std::sync::Mutex<HashSet<crate::ids::RequestId>>,
}

impl RunMemo {
    /// True the first time `request` is claimed in this run.
    fn first_confirmation(&self, request: &crate::ids::RequestId) -> bool {
        self.confirmed
            .lock()
            .map(|mut s| s.insert(request.clone()))
            .unwrap_or(true)
    }
}

/// What offering a due job its event wrote.
enum Touched {
    Moved(JobState),
    Rescheduled,
    Nothing,
}

/// What reconciling one due job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    Moved { from: JobState, to: JobState },
    Deferred,
    Skipped,
}

/// Interleaves `items` by account: each account's first item (in the given order), then each
/// account's second, and so on. Accounts keep the order of their first item, so the earliest
/// due still goes first, but a long backlog of one account only fills the later rounds.
pub fn round_robin<T, K>(items: Vec<T>, account: impl Fn(&T) -> K) -> Vec<T>
where
    K: std::hash::Hash + Eq + Clone,
{
    let mut order: Vec<K> = Vec::new();
    let mut queues: HashMap<K, VecDeque<T>> = HashMap::new();
    for item in items {
        let key = account(&item);
        if !queues.contains_key(&key) {
            order.push(key.clone());
        }
        queues.entry(key).or_default().push_back(item);
    }
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for key in &order {
            if let Some(item) = queues.get_mut(key).and_then(VecDeque::pop_front) {
                out.push(item);
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

impl<P: Ports> Core<P> {
    /// Runs until the due work is done or `deadline` (less the safety margin) comes near.
    pub async fn reconcile(&self, deadline: UtcTime) -> RunReport {
        let cfg = self.settings.reconcile;
        let clock = self.ports.clock();
        let mut report = RunReport::default();
        let started = clock.now();
        let concurrency = cfg.concurrency.max(1);
        let read = cfg.page.saturating_mul(cfg.pages_per_read.max(1)).max(1);
        let in_time = || clock.now().plus(cfg.safety_margin) < deadline;
        // A job is looked at once per run, even if its next check lands inside this run again.
        let mut seen = HashSet::new();
        let memo = RunMemo::default();
        loop {
            let due = match self
                .ports
                .jobs()
                .due(started.plus(self.settings.policy.enqueue_ahead), read)
                .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(error.message = %e, "cannot read the due-work index");
                    report.failed += 1;
                    break;
                }
            };
            let fresh: Vec<DueJob> = due
                .into_iter()
                .filter(|item| seen.insert(item.job_id.clone()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            // The jobs first (their account decides the order), then every account's first due
            // job, then every account's second, ...; both steps at most `concurrency` at a time.
            let loaded: Vec<(DueJob, Result<Option<Job>, StoreError>)> =
                futures::stream::iter(fresh)
                    .map(|item| async {
                        if !in_time() {
                            return None;
                        }
                        let job = self.ports.jobs().get(&item.job_id).await;
                        Some((item, job))
                    })
                    .buffered(concurrency)
                    .filter_map(|x| async { x })
                    .collect()
                    .await;
            let mut results: Vec<(DueJob, Option<Result<Reconciled, StoreError>>)> = Vec::new();
            let mut jobs = Vec::new();
            for (item, job) in loaded {
                match job {
                    Ok(Some(job)) => jobs.push((item, job)),
                    Ok(None) => results.push((item, Some(Ok(Reconciled::Skipped)))),
                    Err(e) => results.push((item, Some(Err(e)))),
                }
            }
            let ordered = round_robin(jobs, |(_, job)| job.account_scope());
            let handled: Vec<(DueJob, Option<Result<Reconciled, StoreError>>)> =
                futures::stream::iter(ordered)
                    .map(|(item, job)| async {
                        if !in_time() {
                            return (item, None);
                        }
                        let result = self.reconcile_one(job, &memo).await;
                        (item, Some(result))
                    })
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
            results.extend(handled);
            let mut progressed = false;
            for (item, result) in results {
                let Some(result) = result else {
                    report.out_of_time = true;
                    continue;
                };
                report.due += 1;
                if item.at <= started {
                    let late = started.as_millis().saturating_sub(item.at.as_millis());
                    report.lag_ms = report.lag_ms.max(u64::try_from(late).unwrap_or(0));
                }
                match result {
                    Ok(Reconciled::Moved { from, to }) => {
                        report.moved += 1;
                        report.became_unknown += usize::from(
                            to == JobState::PublishUnknown && from != JobState::PublishUnknown,
                        );
                        report.rendered += usize::from(
                            from == JobState::Rendering
                                && matches!(to, JobState::Ready | JobState::PublishQueued),
                        );
                        report.render_failed += usize::from(to == JobState::RenderFailed);
                        progressed = true;
                    }
                    Ok(Reconciled::Deferred) => {
                        report.deferred += 1;
                        progressed = true;
                    }
                    Ok(Reconciled::Skipped) => report.skipped += 1,
                    // Someone else (a webhook, a consumer) moved the job first: not a failure,
                    // or a busy stage's normal races would trip the failed-run alarm. The job is
                    // re-read from the index next run if it is still due.
                    Err(StoreError::Conflict) => {
                        report.skipped += 1;
                        tracing::debug!(job_id = %item.job_id, "moved concurrently; left to the next run");
                    }
                    Err(e) => {
                        report.failed += 1;
                        tracing::warn!(job_id = %item.job_id, error.message = %e, "reconcile failed; the job stays due");
                    }
                }
            }
            if !in_time() {
                report.out_of_time = true;
            }
            // A read where nothing moved would be read again unchanged: stop rather than spin.
            if report.out_of_time || !progressed {
                break;
            }
        }
        tracing::info!(
            due = report.due,
            moved = report.moved,
            deferred = report.deferred,
            skipped = report.skipped,
            failed = report.failed,
            became_unknown = report.became_unknown,
            out_of_time = report.out_of_time,
            "reconcile run"
        );
        report
    }

    /// Moves one due job forward; whatever happens, its next check moves on.
    pub async fn reconcile_job(&self, job: Job) -> Result<Reconciled, StoreError> {
        self.reconcile_one(job, &RunMemo::default()).await
    }

    /// One due job, its log lines carrying the job, its account and the API request that
    /// created it.
    async fn reconcile_one(&self, job: Job, memo: &RunMemo) -> Result<Reconciled, StoreError> {
        let span = tracing::info_span!("reconcile_job", job_id = %job.id,
            account_id = %job.account_id,
            api_request_id = job.api_request_id.as_deref().unwrap_or(""));
        tracing::Instrument::instrument(self.reconcile_one_in_span(job, memo), span).await
    }

    async fn reconcile_one_in_span(
        &self,
        job: Job,
        memo: &RunMemo,
    ) -> Result<Reconciled, StoreError> {
        let now = self.ports.clock().now();
        let lookahead = self.settings.policy.enqueue_ahead;
        // The index may lag the item; the job itself says what is due.
        let Some(check) = job.next_check else {
            return Ok(Reconciled::Skipped);
        };
        let early_publish = check.kind == CheckKind::PublishAt
            && job.state == JobState::Ready
            && job.hold.is_none();
        if check.at > now && !(early_publish && check.at <= now.plus(lookahead)) {
            return Ok(Reconciled::Skipped);
        }
        let from = job.state;
        let id = job.id.clone();
        let result = match self.reconcile_due(job, check.kind, now, memo).await? {
            Touched::Moved(to) => {
                tracing::info!(job_id = %id, from = %from, to = %to, "reconciled");
                Reconciled::Moved { from, to }
            }
            Touched::Rescheduled => Reconciled::Deferred,
            Touched::Nothing => {
                // Nothing was written: the check must still move, or the job is looked at on
                // every tick (and a poll result that was ignored would be asked for again).
                let Some(current) = self.ports.jobs().get(&id).await? else {
                    return Ok(Reconciled::Skipped);
                };
                if current
                    .next_check
                    .is_some_and(|c| c.at <= now.plus(lookahead))
                {
                    let until = now.plus(self.backoff(&current, now));
                    tracing::info!(job_id = %current.id, state = %current.state, until = %until,
                        "due check changed nothing; looking again later");
                    let again = self
                        .advance_loaded(current, &Event::Deferred { until })
                        .await?;
                    if again.written() {
                        return Ok(Reconciled::Deferred);
                    }
                }
                Reconciled::Skipped
            }
        };
        Ok(result)
    }

    /// How long to wait before looking again at a job whose due check changed nothing.
    fn backoff(&self, job: &Job, now: UtcTime) -> Duration {
        let p = &self.settings.policy;
        p.poll_after(
            now.since(job.state_since),
            p.status_poll_min,
            p.hold_recheck,
        )
    }

    /// The event a due check means, offered to the job. `None` when nothing was offered.
    async fn reconcile_due(
        &self,
        job: Job,
        kind: CheckKind,
        now: UtcTime,
        memo: &RunMemo,
    ) -> Result<Touched, StoreError> {
        let policy = &self.settings.policy;
        if policy.horizon(&job).is_some_and(|h| h <= now) {
            return self.offer(job, &Event::Expired).await;
        }
        let event = match (kind, job.state) {
            (CheckKind::SubmitRender, JobState::Received) => Event::SubmitDue,
            (CheckKind::PublishAt, JobState::Ready) => self.gate_event(&job, now).await?,
            (CheckKind::QueueStale | CheckKind::PublishAt, JobState::PublishQueued) => {
                Event::PublishDue
            }
            (CheckKind::LeaseExpiry, JobState::Publishing) => Event::LeaseExpired,
            // SubmitRender on a rendering job: the first confirmation of an existing render,
            // whose render-queue message was lost or deferred.
            (CheckKind::RenderPoll | CheckKind::SubmitRender, JobState::Rendering) => {
                return self.poll_render(job, now, memo).await;
            }
            (CheckKind::StatusPoll, _) if job.publish_id.is_some() => {
                return self.poll_status(job, now).await;
            }
            // Nothing to ask TikTok without a publish_id: only the horizon is left.
            (CheckKind::UnknownResolve, JobState::PublishUnknown) => Event::Deferred {
                until: policy.horizon(&job).unwrap_or(now).max(now),
            },
            (kind, state) => {
                tracing::warn!(job_id = %job.id, ?kind, %state, "due check does not fit the state; pushing it back");
                Event::Deferred {
                    until: now.plus(self.backoff(&job, now)),
                }
            }
        };
        self.offer(job, &event).await
    }

    async fn offer(&self, job: Job, event: &Event) -> Result<Touched, StoreError> {
        Ok(match self.advance_loaded(job, event).await? {
            Advance::Moved(a) => Touched::Moved(a.job.state),
            Advance::Rescheduled(_) => Touched::Rescheduled,
            Advance::Absorbed(_) | Advance::Refused(..) | Advance::NotFound => Touched::Nothing,
        })
    }

    /// A ready job's schedule (or hold) is due: the account's gate decides whether it goes on
    /// the queue or waits, visibly, for what would open the gate.
    async fn gate_event(&self, job: &Job, now: UtcTime) -> Result<Event, StoreError> {
        let account = self
            .ports
            .accounts()
            .get_account(&job.tenant_id, &job.account_id)
            .await?;
        Ok(match publish_gate(account.as_ref(), job.post.mode, now) {
            Gate::Open => Event::PublishDue,
            Gate::Wait { reason, until } => Event::Held {
                reason,
                until: Some(until),
            },
            Gate::Park { reason } => Event::Held {
                reason,
                until: None,
            },
        })
    }

    async fn poll_render(
        &self,
        job: Job,
        now: UtcTime,
        memo: &RunMemo,
    ) -> Result<Touched, StoreError> {
        let Some(request_id) = job.request_id.clone() else {
            let until = now.plus(self.backoff(&job, now));
            return self.offer(job, &Event::Deferred { until }).await;
        };
        if !memo.first_confirmation(&request_id) {
            // Another due job of the same render asks Ssemble in this run and offers its answer
            // to every job of the render. Should that run end before reaching this job, it is
            // looked at again at the render's own poll cadence, not a stale check's back-off
            // (which could outlast the render's deadline and lose Ssemble's reason).
            let p = &self.settings.policy;
            let until = now.plus(p.poll_after(
                now.since(job.state_since),
                p.render_poll_min,
                p.render_poll_max,
            ));
            return self.offer(job, &Event::Deferred { until }).await;
        }
        let deadline = now.plus(self.settings.reconcile.safety_margin);
        match self.confirm_render(&request_id, Some(deadline)).await? {
            Confirmed::Deferred { until, reason } => {
                tracing::info!(job_id = %job.id, request_id = %request_id, reason = %reason, "render not confirmed now");
                self.offer(job, &Event::Deferred { until }).await
            }
            // The fan-out offered this job its event; what it did is in the store.
            Confirmed::Answered { .. } | Confirmed::Refused { .. } => {
                Ok(match self.ports.jobs().get(&job.id).await? {
                    Some(j) if j.version != job.version => Touched::Moved(j.state),
                    Some(j) if j.next_check != job.next_check => Touched::Rescheduled,
                    _ => Touched::Nothing,
                })
            }
        }
    }

    async fn poll_status(&self, job: Job, now: UtcTime) -> Result<Touched, StoreError> {
        let Some(publish_id) = job.publish_id.clone() else {
            return Ok(Touched::Nothing);
        };
        // Checked before the token and the budget, which a throttled account would spend for
        // nothing.
        if let Some(until) = self.account_throttled_until(&job, now).await? {
            return self.offer(job, &Event::Deferred { until }).await;
        }
        let token = match self
            .fresh_token(&job.tenant_id, &job.account_id, None)
            .await
        {
            Ok(token) => token,
            Err(super::TokenError::Store(e)) => return Err(e),
            Err(e) => {
                // Without a token nothing can be asked; webhooks may still arrive.
                tracing::warn!(job_id = %job.id, account_id = %job.account_id, error.message = %e, "no token for a status poll");
                let until = now.plus(self.backoff(&job, now));
                return self.offer(job, &Event::Deferred { until }).await;
            }
        };
        let scope = job.account_scope();
        if let Some(denied) = self
            .take_budgets(&scope, &[BudgetKind::TikTokStatus], 1)
            .await?
        {
            let until = denied.retry_at;
            return self.offer(job, &Event::Deferred { until }).await;
        }
        // And again right before the call: a publisher may have recorded a 429 on another job
        // of the account since the first read (the throttle is the account's).
        let now_again = self.ports.clock().now();
        if let Some(until) = self.account_throttled_until(&job, now_again).await? {
            return self.offer(job, &Event::Deferred { until }).await;
        }
        let event = match self.ports.publish().status(&token, &publish_id).await {
            Ok(observed) => Event::StatusObserved {
                publish_id,
                status: observed.status,
                post_ids: observed.post_ids,
                via: Via::Poll,
                upstream_log_id: observed.log_id,
            },
            Err(e) => {
                tracing::warn!(job_id = %job.id, account_id = %job.account_id, publish_id = %publish_id,
                    error.code = %e.code, upstream_log_id = e.log_id.as_deref().unwrap_or(""), "status/fetch failed");
                let until = e
                    .retry_at
                    .unwrap_or_else(|| now.plus(self.backoff(&job, now)));
                Event::Deferred { until }
            }
        };
        self.offer(job, &event).await
    }

    /// Until when TikTok throttles the job's account (a 429 on its token holds its status polls
    /// too; a daily cap does not: it limits posts, not status reads).
    async fn account_throttled_until(
        &self,
        job: &Job,
        now: UtcTime,
    ) -> Result<Option<UtcTime>, StoreError> {
        let account = self
            .ports
            .accounts()
            .get_account(&job.tenant_id, &job.account_id)
            .await?;
        Ok(account.and_then(|a| a.throttled_until(now, &self.settings.policy.delay_only_codes)))
    }
}
