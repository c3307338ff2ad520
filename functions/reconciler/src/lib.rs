//! The reconciler: on every schedule tick, read the due-work index and move each due job forward
//! within the upstream budgets and this invocation's time. Its cost grows with the due work, not
//! with the table.
//!
//! Due work is handled concurrently (bounded) and round-robin across accounts within what one read
//! returned: one account's backlog due at the same instant as another account's schedule must not
//! be moved first, one job at a time, while the other waits (the queue and the publisher already
//! isolate accounts; the reconciler has to as well).

pub mod wiring;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use futures::StreamExt;

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
use thiserror::Error;

/// Default of [`RunOptions::concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Default of [`RunOptions::pages_per_read`].
pub const DEFAULT_PAGES_PER_READ: u32 = 5;

/// How a run spreads its work (environment: `RECONCILE_CONCURRENCY`,
/// `RECONCILE_PAGES_PER_READ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Due jobs handled at once. Each is a few store round trips: serially, a backlog of a few
    /// hundred jobs took most of a tick; the bound keeps the store and upstream load predictable.
    pub concurrency: usize,
    /// One read of the due index returns up to this many pages (`Deps::page` each): fairness is
    /// within what was read, so the read must reach past one account's backlog to the other
    /// accounts' schedules. Still bounded by the due work itself.
    pub pages_per_read: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            pages_per_read: DEFAULT_PAGES_PER_READ,
        }
    }
}

/// A run option that is not a positive whole number.
#[derive(Debug, Error)]
#[error("environment variable {name} must be a positive whole number: {reason}")]
pub struct OptionsError {
    pub name: &'static str,
    pub reason: String,
}

impl RunOptions {
    pub fn from_env() -> Result<Self, OptionsError> {
        fn positive(name: &'static str) -> Result<Option<u32>, OptionsError> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u32>() {
                    Ok(0) => Err(OptionsError {
                        name,
                        reason: "0".into(),
                    }),
                    Ok(n) => Ok(Some(n)),
                    Err(e) => Err(OptionsError {
                        name,
                        reason: e.to_string(),
                    }),
                },
                _ => Ok(None),
            }
        }
        let mut options = Self::default();
        if let Some(n) = positive("RECONCILE_CONCURRENCY")? {
            options.concurrency = n as usize;
        }
        if let Some(n) = positive("RECONCILE_PAGES_PER_READ")? {
            options.pages_per_read = n;
        }
        Ok(options)
    }
}

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

/// Runs until the due work is done or `deadline` (minus the safety margin) comes near, with the
/// default [`RunOptions`].
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
    run(deps, deadline, RunOptions::default()).await
}

/// What one due entry came to before it was handled.
enum Loaded {
    Job(Box<Job>),
    Done(Result<Outcome, StoreError>),
}

/// Runs until the due work is done or `deadline` (minus the safety margin) comes near.
#[tracing::instrument(skip_all, fields(concurrency = options.concurrency, pages_per_read = options.pages_per_read))]
pub async fn run<J, A, Q, C, V, T, R, P>(
    deps: &Deps<J, A, Q, C, V, T, R, P>,
    deadline: Instant,
    options: RunOptions,
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
    let concurrency = options.concurrency.max(1);
    let read = deps
        .page
        .saturating_mul(options.pages_per_read.max(1))
        .max(1);
    let in_time = || Instant::now() + deps.safety_margin < deadline;
    // A job is looked at once per run, even if its next check lands inside this run again.
    let mut seen = std::collections::HashSet::new();
    loop {
        let due = match deps.jobs.due(started.plus(deps.lookahead), read).await {
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
        // The jobs first (their account decides the order), then every account's first due job,
        // then every account's second, ...; both steps at most `concurrency` at a time.
        let loaded: Vec<(DueJob, Loaded)> = futures::stream::iter(fresh)
            .map(|item| async {
                if !in_time() {
                    return None;
                }
                let loaded = match deps.jobs.get(&item.job_id).await {
                    Ok(Some(job)) => Loaded::Job(Box::new(job)),
                    Ok(None) => Loaded::Done(Ok(Outcome::Skipped)),
                    Err(e) => Loaded::Done(Err(e)),
                };
                Some((item, loaded))
            })
            .buffered(concurrency)
            .filter_map(|x| async { x })
            .collect()
            .await;
        let mut work = Vec::with_capacity(loaded.len());
        let mut jobs = Vec::new();
        for (item, loaded) in loaded {
            match loaded {
                Loaded::Job(job) => jobs.push((item, job)),
                Loaded::Done(result) => work.push((item, result)),
            }
        }
        let ordered = round_robin(jobs, |(_, job)| {
            reelay_domain::account::Account::message_group(&job.tenant_id, &job.account_id)
        });
        let handled: Vec<(DueJob, Option<Result<Outcome, StoreError>>)> =
            futures::stream::iter(ordered)
                .map(|(item, job)| async {
                    if !in_time() {
                        return (item, None);
                    }
                    let result = reconcile(deps, &item, *job).await;
                    (item, Some(result))
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        let mut progressed = false;
        let results = work
            .into_iter()
            .map(|(item, r)| (item, Some(r)))
            .chain(handled);
        for (item, result) in results {
            let Some(result) = result else {
                report.out_of_time = true;
                continue;
            };
            report.due += 1;
            match result {
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
        out_of_time = report.out_of_time,
        "reconcile run"
    );
    report
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

async fn reconcile<J, A, Q, C, V, T, R, P>(
    deps: &Deps<J, A, Q, C, V, T, R, P>,
    item: &DueJob,
    job: Job,
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
    debug_assert_eq!(item.job_id, job.id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_takes_each_accounts_next_item_in_turn() {
        let items = vec![
            ("a", 1),
            ("a", 2),
            ("a", 3),
            ("b", 1),
            ("a", 4),
            ("c", 1),
            ("b", 2),
        ];
        let order = round_robin(items, |(acct, _)| *acct);
        assert_eq!(
            order,
            vec![
                ("a", 1),
                ("b", 1),
                ("c", 1),
                ("a", 2),
                ("b", 2),
                ("a", 3),
                ("a", 4)
            ]
        );
    }

    #[test]
    fn a_backlog_only_fills_the_later_rounds() {
        let mut items: Vec<(u32, u32)> = (0..100).map(|i| (0, i)).collect();
        items.push((1, 0));
        let order = round_robin(items, |(acct, _)| *acct);
        assert_eq!(order.len(), 101);
        assert_eq!(
            order[1],
            (1, 0),
            "the other account's job is second, not last"
        );
        assert_eq!(order[0], (0, 0));
        assert_eq!(order[100], (0, 99));
    }
}
