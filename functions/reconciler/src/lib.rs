//! The reconciler: on every schedule tick, read the due-work index and move each due job forward
//! within the upstream budgets and this invocation's time. Its cost grows with the due work, not
//! with the table.

pub mod wiring;

use std::time::{Duration, Instant};

use reelay_aws::{TokenError, TokenRefreshConfig, fresh_token};
use reelay_domain::budget::{BudgetKind, Limits};
use reelay_domain::lifecycle::{CheckKind, Event, Via};
use reelay_domain::ports::{
    AccountStore, Clock, DueJob, JobStore, StoreError, TokenRefresher, TokenVault, WorkQueue,
};
use reelay_domain::upstream::{PublishApi, RenderApi};
use reelay_domain::usecase::{self, Advance, Confirmed};
use reelay_domain::{Job, JobState, Policy, UtcTime};
use serde::Serialize;

/// What the reconciler needs, built once per cold start.
#[derive(Debug)]
pub struct Deps<J, A, Q, C, V, T, R, P> {
    pub jobs: J,
    pub accounts: A,
    pub queue: Q,
    pub clock: C,
    pub vault: V,
    pub refresher: T,
    pub render: R,
    pub publish: P,
    pub policy: Policy,
    pub limits: Limits,
    pub tokens: TokenRefreshConfig,
    /// Budget scope of the Ssemble API key (a stable, non-secret id).
    pub ssemble_scope: String,
    /// Due jobs read per page.
    pub page: u32,
    /// Stop starting new work when less than this remains before the deadline.
    pub safety_margin: Duration,
    /// Publishes due this soon are enqueued now, and the publisher holds them to the second:
    /// a job due at T starts its init within seconds of T, not at the next tick.
    pub lookahead: Duration,
}

/// One run's figures, logged and returned (the schedule ignores the value; tests read it).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub due: usize,
    pub moved: usize,
    pub deferred: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Stopped early to stay inside the function's timeout.
    pub out_of_time: bool,
}

enum Outcome {
    Moved,
    Deferred,
    Skipped,
}

/// Runs until the due work is done or `deadline` (minus the safety margin) comes near.
#[tracing::instrument(skip_all)]
pub async fn function_handler<J, A, Q, C, V, T, R, P>(
    deps: &Deps<J, A, Q, C, V, T, R, P>,
    deadline: Instant,
) -> RunReport
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    V: TokenVault,
    T: TokenRefresher,
    R: RenderApi,
    P: PublishApi,
{
    let mut report = RunReport::default();
    let started = deps.clock.now();
    // A job is looked at once per run, even if its next check lands inside this run again.
    let mut seen = std::collections::HashSet::new();
    loop {
        let due = match deps.jobs.due(started.plus(deps.lookahead), deps.page).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error.message = %e, "cannot read the due-work index");
                report.failed += 1;
                break;
            }
        };
        if due.is_empty() {
            break;
        }
        let mut progressed = false;
        for item in due {
            if !seen.insert(item.job_id.clone()) {
                continue;
            }
            if Instant::now() + deps.safety_margin >= deadline {
                report.out_of_time = true;
                break;
            }
            report.due += 1;
            match reconcile(deps, &item).await {
                Ok(Outcome::Moved) => {
                    report.moved += 1;
                    progressed = true;
                }
                Ok(Outcome::Deferred) => {
                    report.deferred += 1;
                    progressed = true;
                }
                Ok(Outcome::Skipped) => report.skipped += 1,
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(job_id = %item.job_id, error.message = %e, "reconcile failed; the job stays due");
                }
            }
        }
        // A page where nothing moved would be read again unchanged: stop rather than spin.
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
        out_of_time = report.out_of_time,
        "reconcile run"
    );
    report
}

async fn reconcile<J, A, Q, C, V, T, R, P>(
    deps: &Deps<J, A, Q, C, V, T, R, P>,
    item: &DueJob,
) -> Result<Outcome, StoreError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    V: TokenVault,
    T: TokenRefresher,
    R: RenderApi,
    P: PublishApi,
{
    let Some(job) = deps.jobs.get(&item.job_id).await? else {
        return Ok(Outcome::Skipped);
    };
    let now = deps.clock.now();
    // The index may lag the item; the job itself says what is due.
    let Some(check) = job.next_check else {
        return Ok(Outcome::Skipped);
    };
    let early_publish = check.kind == CheckKind::PublishAt && job.state == JobState::Ready;
    if check.at > now && !(early_publish && check.at <= now.plus(deps.lookahead)) {
        return Ok(Outcome::Skipped);
    }
    if deps.policy.horizon(&job).is_some_and(|h| h <= now) {
        return step(deps, job, Event::Expired).await;
    }
    let event = match (check.kind, job.state) {
        (CheckKind::SubmitRender, JobState::Received) => Event::SubmitDue,
        (
            CheckKind::PublishAt | CheckKind::QueueStale,
            JobState::Ready | JobState::PublishQueued,
        ) => Event::PublishDue,
        (CheckKind::LeaseExpiry, JobState::Publishing) => Event::LeaseExpired,
        (CheckKind::RenderPoll, JobState::Rendering) => return poll_render(deps, job, now).await,
        (CheckKind::StatusPoll, _) if job.publish_id.is_some() => {
            return poll_status(deps, job, now).await;
        }
        // Nothing to ask TikTok without a publish_id: webhooks may still attribute one; look later.
        (CheckKind::UnknownResolve, JobState::PublishUnknown) => Event::Deferred {
            until: now.plus(deps.policy.unknown_check),
        },
        (kind, state) => {
            tracing::warn!(job_id = %job.id, ?kind, %state, "due check does not fit the state; pushing it back");
            Event::Deferred {
                until: now.plus(deps.policy.hold_recheck),
            }
        }
    };
    step(deps, job, event).await
}

async fn step<J, A, Q, C, V, T, R, P>(
    deps: &Deps<J, A, Q, C, V, T, R, P>,
    job: Job,
    event: Event,
) -> Result<Outcome, StoreError>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    let id = job.id.clone();
    let deferred = matches!(event, Event::Deferred { .. });
    match usecase::advance_loaded(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        job,
        &event,
    )
    .await?
    {
        Advance::Moved(applied) => {
            tracing::info!(job_id = %id, account_id = %applied.job.account_id, event = event.name(),
                to = %applied.job.state, "reconciled");
            Ok(if deferred {
                Outcome::Deferred
            } else {
                Outcome::Moved
            })
        }
        Advance::Absorbed(_) | Advance::NotFound => Ok(Outcome::Skipped),
        Advance::Refused(job, e) => {
            tracing::warn!(job_id = %id, state = %job.state, error.message = %e, "reconciler event refused");
            Ok(Outcome::Skipped)
        }
    }
}

async fn poll_render<J, A, Q, C, V, T, R, P>(
    deps: &Deps<J, A, Q, C, V, T, R, P>,
    job: Job,
    now: UtcTime,
) -> Result<Outcome, StoreError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    R: RenderApi,
{
    let Some(request_id) = job.request_id.clone() else {
        return step(
            deps,
            job,
            Event::Deferred {
                until: now.plus(deps.policy.hold_recheck),
            },
        )
        .await;
    };
    let confirmed = usecase::confirm_render(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        &deps.accounts,
        &deps.limits,
        &deps.ssemble_scope,
        &deps.render,
        &request_id,
    )
    .await?;
    let until = match confirmed {
        Confirmed::Answered { .. } => return Ok(Outcome::Moved),
        Confirmed::OverBudget { retry_at } => retry_at,
        Confirmed::Unavailable(e) => {
            tracing::warn!(job_id = %job.id, request_id = %request_id, error.code = %e.code, "Ssemble status unavailable");
            e.retry_at
                .unwrap_or_else(|| now.plus(deps.policy.render_poll_min))
        }
    };
    step(deps, job, Event::Deferred { until }).await
}

async fn poll_status<J, A, Q, C, V, T, R, P>(
    deps: &Deps<J, A, Q, C, V, T, R, P>,
    job: Job,
    now: UtcTime,
) -> Result<Outcome, StoreError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    V: TokenVault,
    T: TokenRefresher,
    P: PublishApi,
{
    let Some(publish_id) = job.publish_id.clone() else {
        return Ok(Outcome::Skipped);
    };
    let token = match fresh_token(
        &deps.accounts,
        &deps.vault,
        &deps.refresher,
        &deps.clock,
        &job.tenant_id,
        &job.account_id,
        &deps.tokens,
    )
    .await
    {
        Ok(token) => token,
        Err(TokenError::Store(e)) => return Err(e),
        Err(e) => {
            // Without a token nothing can be asked; webhooks may still arrive. Look again later.
            tracing::warn!(job_id = %job.id, account_id = %job.account_id, error.message = %e, "no token for a status poll");
            return step(
                deps,
                job,
                Event::Deferred {
                    until: now.plus(deps.policy.hold_recheck),
                },
            )
            .await;
        }
    };
    let scope = reelay_domain::account::Account::message_group(&job.tenant_id, &job.account_id);
    if let Some(retry_at) = usecase::take_budgets(
        &deps.accounts,
        &scope,
        &[BudgetKind::TikTokStatus],
        &deps.limits,
        now,
    )
    .await?
    {
        return step(deps, job, Event::Deferred { until: retry_at }).await;
    }
    match deps.publish.status(&token, &publish_id).await {
        Ok(observed) => {
            let event = Event::StatusObserved {
                status: observed.status,
                post_ids: observed.post_ids,
                via: Via::Poll,
                upstream_log_id: observed.log_id,
            };
            step(deps, job, event).await
        }
        Err(e) => {
            tracing::warn!(job_id = %job.id, account_id = %job.account_id, publish_id = %publish_id,
                error.code = %e.code, upstream_log_id = e.log_id.as_deref().unwrap_or(""), "status/fetch failed");
            let until = e
                .retry_at
                .unwrap_or_else(|| now.plus(deps.policy.status_poll_min));
            step(deps, job, Event::Deferred { until }).await
        }
    }
}
