//! Benchmark 2, isolation: healthy accounts' jobs are scheduled within their budgets; the figure
//! is their p99 schedule → init lag, first alone, then again with 10 % of the accounts throttled.
//! A throttled account has many times its init window's worth of jobs due at once, so its
//! budget stays exhausted for the whole run and its FIFO group keeps waiting and retrying — the
//! load a throttled account puts on the shared queue, publisher and table.

use std::time::{Duration, Instant};

use reelay_domain::JobId;
use reelay_domain::job::AuditEvent;
use reelay_domain::lifecycle::JobState;

use crate::harness::Harness;
use crate::now_ms;
use crate::precision::{Lags, lags, schedule, seed_scheduled};
use crate::report::{Row, Section, opt_secs};
use crate::stats::percentile;

#[derive(Debug, Clone)]
pub struct Params {
    pub accounts: usize,
    pub throttled_pct: u32,
    pub healthy_jobs: usize,
    /// Jobs due at once per throttled account, in init windows' worth.
    pub throttled_windows: u32,
    /// `true`: the backlog is stored as already-rendered jobs due at the second run's start and
    /// waits for the reconciler like the healthy ones; `false`: it is stored at that instant
    /// with its schedule passed, so it goes on the publish queue at once (as a render finishing
    /// late does) and only the queue and publisher are shared.
    pub backlog_scheduled: bool,
    pub spread: Duration,
    pub lead: Duration,
    pub seed_concurrency: usize,
}

/// The isolation rows, and the unthrottled run's lags (which `all` also reports as benchmark 7).
pub async fn run(h: &Harness, p: &Params) -> anyhow::Result<(Section, Lags)> {
    let started = Instant::now();
    let accounts = h.connect("iso", p.accounts).await?;
    let throttled_n = (p.accounts * p.throttled_pct as usize).div_ceil(100);
    let (throttled, healthy) = accounts.split_at(throttled_n.min(accounts.len()));
    let limit = h.tiktok.config().limits.init_per_window;
    let backlog = (limit * p.throttled_windows) as usize;

    // Both runs are seeded up front (a job must be `ready` more than the reconciler's lookahead
    // before its schedule); the second starts the lookahead plus a margin after the first ends,
    // so its early enqueues never overlap the first run's jobs.
    let t0_a = now_ms() + p.lead.as_millis() as i64;
    let t0_b = t0_a + (p.spread + h.enqueue_ahead() + Duration::from_secs(10)).as_millis() as i64;
    let plan: Vec<_> = throttled
        .iter()
        .map(|a| {
            let jobs = (0..backlog)
                .map(|j| (format!("iso-t {} {} #{j}", h.tag, a.id), t0_b))
                .collect();
            (a.clone(), jobs)
        })
        .collect();
    let mut deferred_plan = None;
    let mut backlog_jobs: Vec<JobId> = Vec::new();
    if p.backlog_scheduled {
        backlog_jobs.extend(
            h.seed_all(plan, p.seed_concurrency)
                .await?
                .into_values()
                .map(|s| s.job_id),
        );
    } else {
        deferred_plan = Some(plan);
    }
    let mut seeded = Vec::new();
    for (label, t0) in [("iso-a", t0_a), ("iso-b", t0_b)] {
        seeded.push((
            t0,
            seed_scheduled(
                h,
                healthy,
                label,
                p.healthy_jobs,
                |i, j| schedule(t0, p.spread, i, j, p.healthy_jobs),
                p.seed_concurrency,
            )
            .await?,
        ));
    }
    let mut runs: Vec<Lags> = Vec::new();
    for (i, (t0, (measured, seeded_at))) in seeded.iter().enumerate() {
        let end = Duration::from_millis((t0 - now_ms()).max(0) as u64) + p.spread;
        let wait = lags(
            h,
            measured,
            Instant::now() + end + Duration::from_secs(30),
            seeded_at,
        );
        let backlog_now = async {
            if let (1, Some(plan)) = (i, deferred_plan.take()) {
                tokio::time::sleep(Duration::from_millis((t0 - now_ms()).max(0) as u64)).await;
                let seeded = h.seed_all(plan, p.seed_concurrency).await?;
                return anyhow::Ok(seeded.into_values().map(|s| s.job_id).collect());
            }
            anyhow::Ok(Vec::new())
        };
        let (l, seeded) = tokio::join!(wait, backlog_now);
        backlog_jobs.extend(seeded?);
        runs.push(l);
    }
    let run_s = started.elapsed().as_secs_f64();
    let (alone, loaded) = (&runs[0], &runs[1]);
    let p99_a = percentile(&alone.lags_ms, 99.0);
    let p99_b = percentile(&loaded.lags_ms, 99.0);
    let worse = match (p99_a, p99_b) {
        (Some(a), Some(b)) if a > 0.0 => Some((b - a) / a * 100.0),
        _ => None,
    };
    let bench = "2 isolation";
    let mut rows = vec![
        Row::info(
            bench,
            "healthy p50 / p99 lag, none throttled",
            format!(
                "{} / {}",
                opt_secs(percentile(&alone.lags_ms, 50.0)),
                opt_secs(p99_a)
            ),
        ),
        Row::info(
            bench,
            "healthy p50 / p99 lag, 10 % throttled",
            format!(
                "{} / {}",
                opt_secs(percentile(&loaded.lags_ms, 50.0)),
                opt_secs(p99_b)
            ),
        ),
        Row::goal(
            bench,
            "p99 worse with throttled accounts",
            worse.map_or_else(|| "n/a".into(), |w| format!("{w:+.1} %")),
            "<= 5 %",
            worse.is_some_and(|w| w <= 5.0) && alone.missing == 0 && loaded.missing == 0,
        ),
    ];
    if alone.missing + loaded.missing + alone.seeded_late + loaded.seeded_late > 0 {
        rows.push(
            Row::info(
                bench,
                "healthy jobs without init / seeded late (a, b)",
                format!(
                    "{}, {} / {}, {}",
                    alone.missing, loaded.missing, alone.seeded_late, loaded.seeded_late
                ),
            )
            .with_note(format!(
                "states: {} | {}",
                alone.missing_states, loaded.missing_states
            )),
        );
    }
    rows.extend(split_rows(h, bench, &runs, &backlog_jobs, t0_b).await);
    let params = vec![format!(
        "2 isolation: {} accounts ({} throttled with {backlog} jobs due at once = {} init windows, \
         in the second run only, {}), {} healthy × {} jobs spread over {} s starting {} s ahead, \
         time scale {}; both runs {run_s:.0} s",
        p.accounts,
        throttled.len(),
        p.throttled_windows,
        if p.backlog_scheduled {
            "stored ahead and enqueued by the reconciler"
        } else {
            "stored at the second run's start, straight onto the publish queue"
        },
        healthy.len(),
        p.healthy_jobs,
        p.spread.as_secs(),
        p.lead.as_secs(),
        h.time_scale
    )];
    Ok((Section { rows, params }, runs[0].clone()))
}

/// One measured job's lag, split along its audit trail (unix ms; `None` where the trail lacks
/// the step).
#[derive(Debug, Clone, Copy)]
struct Split {
    lag: i64,
    /// Put on the publish queue after its `scheduleAt` (0 when ahead of it).
    enqueued_late: Option<i64>,
    /// From the later of the enqueue and `scheduleAt` to the attempt's commit: the queue, the
    /// poller, the group and the publisher's preflight.
    to_commit: Option<i64>,
    /// From the commit to the init's arrival at TikTok: creator_info aside, the init itself.
    to_init: Option<i64>,
    /// Times the job went back to `ready` with a hold after its first enqueue.
    holds: usize,
}

fn first_at(trail: &[AuditEvent], to: JobState) -> Option<i64> {
    trail.iter().find(|e| e.to == to).map(|e| e.at.as_millis())
}

fn split(trail: &[AuditEvent], schedule_at: i64, init: i64) -> Split {
    let enqueued = first_at(trail, JobState::PublishQueued);
    let committed = first_at(trail, JobState::Publishing);
    let holds = trail
        .iter()
        .filter(|e| e.from == Some(JobState::PublishQueued) && e.to == JobState::Ready)
        .count();
    Split {
        lag: init - schedule_at,
        enqueued_late: enqueued.map(|e| (e - schedule_at).max(0)),
        to_commit: enqueued.zip(committed).map(|(e, c)| c - e.max(schedule_at)),
        to_init: committed.map(|c| init - c),
        holds,
    }
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "?".into(), |v| format!("{:.3}", v as f64 / 1000.0))
}

fn p99_of(splits: &[Split], f: impl Fn(&Split) -> Option<i64>) -> String {
    let xs: Vec<f64> = splits
        .iter()
        .filter_map(|s| f(s).map(|v| v as f64))
        .collect();
    opt_secs(percentile(&xs, 99.0))
}

/// Where the healthy jobs' lag went, in both runs, and when the throttled backlog was enqueued:
/// the figures that say whether the tail is the reconciler's order, the queue or the publisher.
async fn split_rows(
    h: &Harness,
    bench: &str,
    runs: &[Lags],
    backlog: &[JobId],
    t0_b: i64,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (label, run) in ["none throttled", "10 % throttled"].iter().zip(runs) {
        let mut splits = Vec::new();
        for (id, schedule_at, init) in &run.inits {
            splits.push(split(&h.trail(id).await, *schedule_at, *init));
        }
        splits.sort_by_key(|s| std::cmp::Reverse(s.lag));
        let slowest: Vec<String> = splits
            .iter()
            .take(3)
            .map(|s| {
                format!(
                    "{} = {} + {} + {} ({} holds)",
                    ms(Some(s.lag)),
                    ms(s.enqueued_late),
                    ms(s.to_commit),
                    ms(s.to_init),
                    s.holds
                )
            })
            .collect();
        rows.push(
            Row::info(
                bench,
                &format!("healthy p99 enqueued late / to commit / to init, {label}"),
                format!(
                    "{} / {} / {}",
                    p99_of(&splits, |s| s.enqueued_late),
                    p99_of(&splits, |s| s.to_commit),
                    p99_of(&splits, |s| s.to_init)
                ),
            )
            .with_note(format!(
                "slowest: {}; held after enqueue: {}",
                slowest.join("; "),
                splits.iter().filter(|s| s.holds > 0).count()
            )),
        );
    }
    if !backlog.is_empty() {
        let mut enqueues = Vec::new();
        let mut holds = 0;
        for id in backlog {
            let trail = h.trail(id).await;
            enqueues.extend(
                trail
                    .iter()
                    .filter(|e| e.to == JobState::PublishQueued)
                    .map(|e| (e.at.as_millis() - t0_b) as f64),
            );
            holds += trail
                .iter()
                .filter(|e| e.from == Some(JobState::PublishQueued) && e.to == JobState::Ready)
                .count();
        }
        let first = enqueues.iter().copied().reduce(f64::min);
        let last = enqueues.iter().copied().reduce(f64::max);
        rows.push(Row::info(
            bench,
            "throttled backlog: enqueues / holds; enqueued from / to (after its start)",
            format!(
                "{} / {holds}; {} / {}",
                enqueues.len(),
                opt_secs(first),
                opt_secs(last)
            ),
        ));
    }
    rows
}
