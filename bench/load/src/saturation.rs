//! Benchmark 1, saturation: every account has more due jobs than TikTok's init window allows for
//! `windows` windows. Achieved ÷ allowed counts, per account, the accepted inits in the
//! `windows × period` after its first init against `limit × windows`; self-inflicted 429s are the
//! simulator's rate-limit answers to those accounts. Reelay runs first, then the naive baseline
//! against the same simulator with its own accounts.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;

use crate::harness::Harness;
use crate::naive::{self, NaiveConfig};
use crate::now_ms;
use crate::proxy::InitRecord;
use crate::report::{Row, Section, opt_secs};
use crate::stats::{accepted_by_account, percentile, sim_429s, sim_publishes};

#[derive(Debug, Clone)]
pub struct Params {
    pub accounts: usize,
    /// Windows measured per account; each account gets `limit × windows + 1` jobs.
    pub windows: u32,
    pub naive_workers: usize,
    pub naive_retry: Duration,
    pub seed_concurrency: usize,
}

/// What one mode (Reelay or naive) achieved.
#[derive(Debug, Clone)]
pub struct Figures {
    pub in_windows: u64,
    pub allowed: u64,
    pub init_429: u64,
    pub all_429: u64,
    pub proxy_init_429: u64,
    pub sim_publishes: u64,
    pub refill_lag_p50_ms: Option<f64>,
    pub refill_lag_p99_ms: Option<f64>,
    pub idle_accounts: usize,
}

impl Figures {
    pub fn ratio(&self) -> f64 {
        if self.allowed == 0 {
            return 0.0;
        }
        self.in_windows as f64 / self.allowed as f64
    }
}

/// Counts from the proxy's millisecond records and the simulator's ground truth.
pub fn measure(
    inits: &[InitRecord],
    inspect: &serde_json::Value,
    open_ids: &HashSet<String>,
    limit: u32,
    period_ms: i64,
    windows: u32,
) -> Figures {
    let by_account = accepted_by_account(inits, open_ids);
    let span = period_ms * i64::from(windows);
    let mut in_windows = 0u64;
    let mut refill = Vec::new();
    for times in by_account.values() {
        let Some(first) = times.first() else { continue };
        in_windows += times.iter().filter(|t| **t < first + span).count() as u64;
        // How long after the window let the next init through did it actually come?
        for j in limit as usize..times.len() {
            refill.push((times[j] - (times[j - limit as usize] + period_ms)) as f64);
        }
    }
    let (init_429, all_429) = sim_429s(inspect, open_ids);
    Figures {
        in_windows,
        allowed: open_ids.len() as u64 * u64::from(limit) * u64::from(windows),
        init_429,
        all_429,
        proxy_init_429: inits
            .iter()
            .filter(|r| r.status == 429)
            .filter(|r| r.open_id.as_ref().is_some_and(|o| open_ids.contains(o)))
            .count() as u64,
        sim_publishes: sim_publishes(inspect, open_ids),
        refill_lag_p50_ms: percentile(&refill, 50.0),
        refill_lag_p99_ms: percentile(&refill, 99.0),
        idle_accounts: open_ids.len() - by_account.len(),
    }
}

pub async fn run(h: &Harness, p: &Params) -> anyhow::Result<Section> {
    let cfg = h.tiktok.config();
    let limit = cfg.limits.init_per_window;
    let period_ms = (cfg.limits.window_secs as f64 * 1000.0 / h.time_scale) as i64;
    let jobs_per_account = (limit * p.windows + 1) as usize;
    let span = Duration::from_millis((period_ms * i64::from(p.windows)) as u64);

    // ── Reelay ────────────────────────────────────────────────────────────────────────
    let started = Instant::now();
    let accounts = h.connect("sat", p.accounts).await?;
    let connect_s = started.elapsed().as_secs_f64();
    let open_ids: HashSet<String> = accounts.iter().map(|a| a.open_id.clone()).collect();
    let now = now_ms();
    let plan = accounts
        .iter()
        .map(|a| {
            let jobs = (0..jobs_per_account)
                .map(|j| (format!("sat {} {} #{j}", h.tag, a.id), now))
                .collect();
            (a.clone(), jobs)
        })
        .collect();
    let seeding = Instant::now();
    h.seed_all(plan, p.seed_concurrency).await?;
    let seed_s = seeding.elapsed().as_secs_f64();
    tracing::info!(seed_s, "saturation: jobs seeded");
    // Done once every account's measured span has passed since its first init.
    let deadline = Instant::now() + span + span / 2 + Duration::from_secs(30);
    loop {
        let by = accepted_by_account(&h.inits(), &open_ids);
        let now = now_ms();
        let all_started = by.len() == open_ids.len();
        let last_first = by.values().filter_map(|v| v.first()).max().copied();
        let spans_over = last_first.is_some_and(|f| now > f + span.as_millis() as i64 + 500);
        if (all_started && spans_over) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let reelay_s = seeding.elapsed().as_secs_f64();
    let reelay = measure(
        &h.inits(),
        &h.inspect(),
        &open_ids,
        limit,
        period_ms,
        p.windows,
    );

    // ── Naive baseline, same simulator, its own accounts ──────────────────────────────
    let naive_accounts = naive::accounts(&h.tiktok, &h.proxy, &h.tag, p.accounts)?;
    let naive_ids: HashSet<String> = naive_accounts.iter().map(|a| a.open_id.clone()).collect();
    let clip = fetch_clip(h).await?;
    let naive_started = Instant::now();
    let naive_cfg = NaiveConfig {
        workers: p.naive_workers,
        retry_after_429: p.naive_retry,
        run_for: span + span / 2,
    };
    let outcome = naive::run(
        &h.proxy.base_url,
        &naive_accounts,
        jobs_per_account,
        clip,
        &h.tag,
        &naive_cfg,
    )
    .await?;
    let naive_s = naive_started.elapsed().as_secs_f64();
    let naive = measure(
        &h.inits(),
        &h.inspect(),
        &naive_ids,
        limit,
        period_ms,
        p.windows,
    );

    let mut rows = Vec::new();
    for (mode, f) in [("reelay", &reelay), ("naive", &naive)] {
        let bench = format!("1 saturation [{mode}]");
        let ratio_row = Row::goal(
            &bench,
            "achieved / allowed init rate",
            format!("{:.3} ({}/{})", f.ratio(), f.in_windows, f.allowed),
            ">= 0.97",
            f.ratio() >= 0.97,
        );
        let ratio_row = if f.ratio() < 0.97 && mode == "reelay" {
            ratio_row.with_note(format!(
                "refill lag p99 {} (init after its window reopened); {} accounts never got an init",
                opt_secs(f.refill_lag_p99_ms),
                f.idle_accounts
            ))
        } else {
            ratio_row
        };
        rows.push(ratio_row);
        rows.push(
            Row::goal(
                &bench,
                "self-inflicted 429s (all endpoints)",
                f.all_429.to_string(),
                "0",
                f.all_429 == 0,
            )
            .with_note(format!(
                "on inits: {} (simulator), {} (proxy)",
                f.init_429, f.proxy_init_429
            )),
        );
        rows.push(Row::info(
            &bench,
            "refill lag p50 / p99",
            format!(
                "{} / {}",
                opt_secs(f.refill_lag_p50_ms),
                opt_secs(f.refill_lag_p99_ms)
            ),
        ));
        rows.push(Row::info(
            &bench,
            "publishes at the simulator",
            f.sim_publishes.to_string(),
        ));
    }
    rows.push(Row::info(
        "1 saturation [naive]",
        "naive sends / accepted / 429 / other",
        format!(
            "{} / {} / {} / {}",
            outcome.sent, outcome.accepted, outcome.rate_limited, outcome.other_errors
        ),
    ));
    let params = vec![format!(
        "1 saturation: {} accounts per mode, {} jobs each (all due at once), TikTok init limit {limit} per \
         {:.1} s real ({} s simulated ÷ time scale {}), measured over {} windows per account from its first init; \
         Reelay: connect {connect_s:.0} s, seed {seed_s:.1} s, run {reelay_s:.0} s; naive: {} workers, \
         {} ms back-off after a 429, run {naive_s:.0} s",
        p.accounts,
        jobs_per_account,
        period_ms as f64 / 1000.0,
        cfg.limits.window_secs,
        h.time_scale,
        p.windows,
        p.naive_workers,
        p.naive_retry.as_millis(),
    )];
    Ok(Section { rows, params })
}

async fn fetch_clip(h: &Harness) -> anyhow::Result<Bytes> {
    let url = h.clip_url();
    reqwest::get(&url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .context("fetching the rendered clip for the naive baseline")?
        .bytes()
        .await
        .context("reading the clip")
}
