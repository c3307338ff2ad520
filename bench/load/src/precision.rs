//! Benchmark 7, scheduling precision: jobs with a future `scheduleAt`, few enough per account
//! that no budget ever binds; the figure is init arrival at TikTok − `scheduleAt`, per job.
//! [`lags`] is shared with the isolation benchmark.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reelay_domain::JobId;

use crate::harness::{Account, Harness, Seeded};
use crate::now_ms;
use crate::report::{Row, Section, opt_secs};
use crate::stats::{percentile, titles_by_publish_id};

#[derive(Debug, Clone)]
pub struct Params {
    pub accounts: usize,
    pub jobs_per_account: usize,
    /// `scheduleAt`s are spread over this span, starting `lead` after seeding begins.
    pub spread: Duration,
    pub lead: Duration,
    pub seed_concurrency: usize,
}

/// Lags (ms) of the measured jobs; titles without an init are returned as missing.
#[derive(Debug, Clone, Default)]
pub struct Lags {
    pub lags_ms: Vec<f64>,
    pub missing: usize,
    /// States of the jobs without an init, when there are any.
    pub missing_states: String,
    /// Jobs stored only after their `scheduleAt` had passed (the seeding fell behind).
    pub seeded_late: usize,
    /// Each measured job with an init: its id, `scheduleAt` and init arrival (unix ms), for
    /// splitting the lag along the job's audit trail.
    pub inits: Vec<(JobId, i64, i64)>,
}

/// `scheduleAt` of job `j` of account `i`: spread deterministically over the span, so every
/// run of the benchmark asks for the same pattern.
pub fn schedule(t0: i64, spread: Duration, i: usize, j: usize, jobs: usize) -> i64 {
    let slot = spread.as_millis() as i64 / jobs.max(1) as i64;
    let jitter = ((i as i64 * 7919 + j as i64 * 104_729) % 1000) * slot / 1000;
    t0 + j as i64 * slot + jitter
}

/// Waits until every measured title has an accepted init (or `deadline`), then joins the
/// proxy's millisecond records with the simulator's titles.
pub async fn lags(
    h: &Harness,
    measured: &HashMap<String, Seeded>,
    deadline: Instant,
    seeded_at: &HashMap<String, i64>,
) -> Lags {
    loop {
        let done = first_inits(h, measured);
        if done.len() >= measured.len() || Instant::now() >= deadline {
            let inits: Vec<(JobId, i64, i64)> = done
                .iter()
                .filter_map(|(title, at)| {
                    measured
                        .get(title)
                        .map(|s| (s.job_id.clone(), s.schedule_at_ms, *at))
                })
                .collect();
            let lags_ms = inits.iter().map(|(_, s, at)| (at - s) as f64).collect();
            let seeded_late = measured
                .iter()
                .filter(|(t, s)| seeded_at.get(*t).is_some_and(|at| *at > s.schedule_at_ms))
                .count();
            let missing: Vec<_> = measured
                .iter()
                .filter(|(t, _)| !done.contains_key(*t))
                .map(|(_, s)| s.job_id.clone())
                .collect();
            return Lags {
                missing_states: h.states(&missing).await,
                missing: missing.len(),
                lags_ms,
                seeded_late,
                inits,
            };
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Title → real time of its first accepted init.
pub fn first_inits(h: &Harness, measured: &HashMap<String, Seeded>) -> HashMap<String, i64> {
    let titles = titles_by_publish_id(&h.inspect());
    let mut out: HashMap<String, i64> = HashMap::new();
    for r in h.inits() {
        let Some(title) = r.publish_id.as_ref().and_then(|id| titles.get(id)) else {
            continue;
        };
        if r.status == 200 && measured.contains_key(title) {
            out.entry(title.clone())
                .and_modify(|t| *t = (*t).min(r.at_ms))
                .or_insert(r.at_ms);
        }
    }
    out
}

/// Seeds `jobs` per account, job `j` of account `i` due at `at(i, j)` (unix ms); returns the
/// measured jobs and when each was stored.
pub async fn seed_scheduled(
    h: &Harness,
    accounts: &[Account],
    label: &str,
    jobs: usize,
    at: impl Fn(usize, usize) -> i64,
    concurrency: usize,
) -> anyhow::Result<(HashMap<String, Seeded>, HashMap<String, i64>)> {
    let plan: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let js = (0..jobs)
                .map(|j| (format!("{label} {} {} #{j}", h.tag, a.id), at(i, j)))
                .collect();
            (a.clone(), js)
        })
        .collect();
    let seeded = h.seed_all(plan, concurrency).await?;
    // Stored at the latest now: a job counts as late when its schedule is already behind us.
    let stored = now_ms();
    let at = seeded.keys().map(|t| (t.clone(), stored)).collect();
    Ok((seeded, at))
}

pub async fn run(h: &Harness, p: &Params) -> anyhow::Result<Section> {
    let started = Instant::now();
    let accounts = h.connect("prec", p.accounts).await?;
    let t0 = now_ms() + p.lead.as_millis() as i64;
    let (measured, seeded_at) = seed_scheduled(
        h,
        &accounts,
        "prec",
        p.jobs_per_account,
        |i, j| schedule(t0, p.spread, i, j, p.jobs_per_account),
        p.seed_concurrency,
    )
    .await?;
    let end = Duration::from_millis((t0 - now_ms()).max(0) as u64) + p.spread;
    let l = lags(
        h,
        &measured,
        Instant::now() + end + Duration::from_secs(30),
        &seeded_at,
    )
    .await;
    let run_s = started.elapsed().as_secs_f64();
    let params = format!(
        "7 precision: {} accounts × {} jobs, scheduleAt spread over {} s starting {} s ahead, \
         time scale {}; run {run_s:.0} s",
        p.accounts,
        p.jobs_per_account,
        p.spread.as_secs(),
        p.lead.as_secs(),
        h.time_scale
    );
    Ok(section(&l, params))
}

/// The precision rows from measured lags (its own run, or isolation's unthrottled one).
pub fn section(l: &Lags, params: String) -> Section {
    let p50 = percentile(&l.lags_ms, 50.0);
    let p99 = percentile(&l.lags_ms, 99.0);
    let min = l.lags_ms.iter().copied().reduce(f64::min);
    let bench = "7 scheduling precision";
    let mut rows = vec![
        Row::info(bench, "init − scheduleAt p50", opt_secs(p50)),
        Row::goal(
            bench,
            "init − scheduleAt p99",
            opt_secs(p99),
            "<= 2 s",
            p99.is_some_and(|v| v <= 2000.0) && l.missing == 0,
        ),
        Row::info(
            bench,
            "min / max",
            format!(
                "{} / {}",
                opt_secs(min),
                opt_secs(l.lags_ms.iter().copied().reduce(f64::max))
            ),
        ),
    ];
    if l.missing > 0 || l.seeded_late > 0 || min.is_some_and(|m| m < 0.0) {
        rows.push(
            Row::info(
                bench,
                "jobs without init / seeded late / early inits",
                format!(
                    "{} / {} / {}",
                    l.missing,
                    l.seeded_late,
                    l.lags_ms.iter().filter(|v| **v < 0.0).count()
                ),
            )
            .with_note(l.missing_states.clone()),
        );
    }
    Section {
        rows,
        params: vec![params],
    }
}
