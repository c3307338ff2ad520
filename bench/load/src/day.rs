//! Benchmark 8, the simulated day (issue 13): `accounts` × `posts` direct posts spread over one
//! day of simulated time on the whole local stack. The clock is scaled for the simulators and
//! Reelay alike, so TikTok's init windows, its rolling 24 h post cap, moderation delays, token
//! lifetimes and the reconciler's one-minute tick all keep their proportions; what does not scale
//! is this machine, which must carry `accounts × posts × scale ÷ 86,400` posts a real second.
//!
//! Each account posts on a regular slot (the day ÷ `posts`) from its own offset inside the first
//! slot, so all of its posts fall inside one rolling day and the cap allows every one of them.
//! Jobs are stored `ready` before the day starts (a customer's planned day); the reconciler
//! enqueues each as it comes within its lookahead. Every AWS request of the stack passes through
//! the metering proxy of `reelay-bench-micro`, every TikTok request through the recording proxy.
//! The simulator gives token lifetimes in real seconds (Reelay's clock), as TikTok does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use reelay_bench_micro::cost::PerJob;
use reelay_domain::JobId;

use crate::harness::{Harness, Seeded};
use crate::now_ms;
use crate::precision::{first_inits, lags, seed_scheduled};
use crate::report::{Row, Section, opt_secs};
use crate::stats::{percentile, titles_by_publish_id};

/// A day, in simulated milliseconds.
const DAY_MS: f64 = 86_400_000.0;
/// The target customer: 1,000 accounts × 15 posts a day.
const TARGET_JOBS_A_DAY: f64 = 15_000.0;
/// Goal for the share of TikTok's allowed posts used.
const MIN_SHARE: f64 = 0.99;

#[derive(Debug, Clone)]
pub struct Params {
    pub accounts: usize,
    pub posts: usize,
    /// Real time the day starts after seeding begins (seeding must be done by then).
    pub lead: Duration,
    /// Real time allowed after the day for the last posts to finish.
    pub drain: Duration,
    pub seed_concurrency: usize,
}

/// `scheduleAt` of post `j` of account `i`: every `slot` from the account's own offset inside the
/// first slot, so post `posts − 1` is still inside the day.
pub fn schedule(t0: i64, day_ms: i64, posts: usize, i: usize, j: usize) -> i64 {
    let slot = day_ms / posts.max(1) as i64;
    let offset = ((i as i64 * 7919) % 1000) * slot / 1000;
    t0 + offset + j as i64 * slot
}

/// Per-account counts of accepted first inits of the planned posts.
fn per_account(
    inits: &[(JobId, i64, i64)],
    measured: &HashMap<String, Seeded>,
) -> HashMap<String, usize> {
    let owner: HashMap<&JobId, &str> = measured
        .values()
        .map(|s| (&s.job_id, s.open_id.as_str()))
        .collect();
    let mut out: HashMap<String, usize> = HashMap::new();
    for (id, _, _) in inits {
        if let Some(o) = owner.get(id) {
            *out.entry((*o).to_owned()).or_default() += 1;
        }
    }
    out
}

/// Limit answers of any kind the simulator logged for these accounts (rate windows, daily cap).
fn violations(inspect: &serde_json::Value, open_ids: &HashSet<String>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for v in inspect
        .get("limit_violations")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let mine = v
            .get("open_id")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|o| open_ids.contains(o));
        if mine {
            let kind = v
                .get("kind")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown");
            *out.entry(kind.to_owned()).or_default() += 1;
        }
    }
    out
}

pub async fn run(h: &Harness, p: &Params) -> anyhow::Result<Section> {
    let started = Instant::now();
    let scale = h.time_scale.max(1e-9);
    let day_ms = (DAY_MS / scale) as i64;
    // Reelay's clock is the real one: token lifetimes in real seconds, as TikTok's are, so a
    // token is refreshed before it expires instead of after a refused call (the other benches
    // keep simulated seconds).
    h.tiktok
        .patch_config(&serde_json::json!({ "oauth": { "lifetimes_in_real_seconds": true } }))?;
    let accounts = h.connect("day", p.accounts).await?;
    let connect_s = started.elapsed().as_secs_f64();
    let open_ids: HashSet<String> = accounts.iter().map(|a| a.open_id.clone()).collect();
    let tiktok_before = h.proxy.requests();
    let aws_before = h.meter().unwrap_or_default();
    let t0 = now_ms() + p.lead.as_millis() as i64;
    let seeding = Instant::now();
    let (measured, seeded_at) = seed_scheduled(
        h,
        &accounts,
        "day",
        p.posts,
        |i, j| schedule(t0, day_ms, p.posts, i, j),
        p.seed_concurrency,
    )
    .await?;
    let seed_s = seeding.elapsed().as_secs_f64();
    eprintln!(
        "day: {} jobs seeded in {seed_s:.0} s; the day runs {:.0} s real from {:.0} s from now",
        measured.len(),
        day_ms as f64 / 1e3,
        (t0 - now_ms()) as f64 / 1e3
    );

    // Until every post has its init and the last one has had time to finish (moderation,
    // status, webhooks: five simulated minutes, at least 5 s real), or the drain runs out.
    let settle = Duration::from_secs_f64((300.0 / scale).max(5.0));
    let deadline = t0 + day_ms + p.drain.as_millis() as i64;
    let mut last_report = Instant::now();
    let mut since_all = None;
    loop {
        let done = first_inits(h, &measured).len();
        if done >= measured.len() {
            let at = *since_all.get_or_insert_with(Instant::now);
            if at.elapsed() >= settle {
                break;
            }
        }
        if now_ms() >= deadline {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            eprintln!(
                "day: {done}/{} posts initialised, {:.0} % of the day gone",
                measured.len(),
                100.0 * (now_ms() - t0).max(0) as f64 / day_ms as f64
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let run_s = started.elapsed().as_secs_f64();
    // The window closes before the bench's own reads (the job states below).
    let aws = h.meter().unwrap_or_default().since(&aws_before);
    let tiktok_after = h.proxy.requests();
    let inspect = h.inspect();
    let inits = h.inits();
    let l = lags(h, &measured, Instant::now(), &seeded_at).await;
    let ids: Vec<JobId> = measured.values().map(|s| s.job_id.clone()).collect();
    let states = h.state_counts(&ids).await;
    let published_ok = states.get("publicly_available").copied().unwrap_or(0);
    let states = crate::harness::joined(&states);

    let cap = h.tiktok.config().default_daily_post_cap as usize;
    let allowed = p.accounts * p.posts.min(cap);
    let initialised = l.inits.len();
    let share = initialised as f64 / allowed.max(1) as f64;
    let counts = per_account(&l.inits, &measured);
    let per: Vec<usize> = open_ids
        .iter()
        .map(|o| counts.get(o).copied().unwrap_or(0))
        .collect();
    let (min, max) = (
        per.iter().copied().min().unwrap_or(0),
        per.iter().copied().max().unwrap_or(0),
    );
    let mean = per.iter().sum::<usize>() as f64 / per.len().max(1) as f64;
    // A second accepted init of one planned post would be a second post of it.
    let titles = titles_by_publish_id(&inspect);
    let mut posts_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for r in inits.iter().filter(|r| r.status == 200) {
        if let Some((id, title)) = r
            .publish_id
            .as_deref()
            .and_then(|id| titles.get(id).map(|t| (id, t)))
            && measured.contains_key(title)
        {
            posts_of.entry(title.as_str()).or_default().insert(id);
        }
    }
    let duplicates: usize = posts_of.values().map(|p| p.len().saturating_sub(1)).sum();
    let kinds = violations(&inspect, &open_ids);
    // The simulator's 429s are its `rate_limit` answers (as `stats::sim_429s` counts them).
    let all_429 = kinds.get("rate_limit").copied().unwrap_or(0);
    let p50 = percentile(&l.lags_ms, 50.0);
    let p99 = percentile(&l.lags_ms, 99.0);

    let n = published_ok.max(1) as f64;
    let mut tiktok: BTreeMap<String, u64> = BTreeMap::new();
    for (path, count) in &tiktok_after {
        let d = count - tiktok_before.get(path).copied().unwrap_or(0);
        if d > 0 {
            let name = path
                .trim_start_matches("/v2/")
                .trim_start_matches("post/publish/")
                .trim_end_matches('/');
            tiktok.insert(name.to_owned(), d);
        }
    }
    let tiktok_total: u64 = tiktok.values().sum();
    let per_job = PerJob::from_meter(&aws, n);
    let refused = aws.dynamo_failed_writes() as f64 / n;

    let bench = "8 simulated day";
    let mut rows = vec![
        Row::info(
            bench,
            "posts initialised / planned; publicly available",
            format!(
                "{initialised} / {}; {published_ok} ({states})",
                measured.len()
            ),
        ),
        Row::info(
            bench,
            "publishes per account per day (mean / min / max)",
            format!("{mean:.2} / {min} / {max}"),
        ),
        Row::goal(
            bench,
            "share of TikTok's allowed posts used",
            format!("{share:.3} ({initialised}/{allowed})"),
            ">= 0.99",
            share >= MIN_SHARE,
        )
        .with_note(format!(
            "allowed = accounts × min(posts {}, TikTok's daily cap {cap}); init windows never bind at one post per {:.0} simulated min",
            p.posts,
            DAY_MS / p.posts.max(1) as f64 / 60_000.0
        )),
        Row::goal(
            bench,
            "duplicate posts (a planned post accepted twice)",
            duplicates.to_string(),
            "0",
            duplicates == 0,
        ),
        Row::goal(
            bench,
            "self-inflicted 429s (all endpoints)",
            all_429.to_string(),
            "0",
            all_429 == 0,
        )
        .with_note(if kinds.is_empty() {
            "no limit answer of any kind".to_owned()
        } else {
            format!("limit answers by kind: {kinds:?}")
        }),
        Row::goal(
            bench,
            "init − scheduleAt p50 / p99 (real)",
            format!("{} / {}", opt_secs(p50), opt_secs(p99)),
            "p99 <= 2 s",
            p99.is_some_and(|v| v <= 2000.0) && l.missing == 0,
        )
        .with_note(format!(
            "in simulated time p99 {} (× {scale}); jobs without init {}, seeded late {}",
            opt_secs(p99.map(|v| v * scale)),
            l.missing,
            l.seeded_late
        )),
        Row::info(
            bench,
            "TikTok requests per published job",
            format!(
                "{:.2}: {}",
                tiktok_total as f64 / n,
                tiktok
                    .iter()
                    .map(|(k, v)| format!("{k} {:.2}", *v as f64 / n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Row::info(
            bench,
            "AWS requests per published job",
            format!(
                "{:.1} RRU + {:.1} WRU ({refused:.2} refused writes), {:.2} SQS, {:.3} Secrets Manager, {:.2} KMS",
                per_job.rru, per_job.wru, per_job.sqs, per_job.secrets, per_job.kms
            ),
        ),
        Row::info(
            bench,
            "AWS request cost",
            format!(
                "${:.4} per 1,000 published jobs; ${:.2} a day at 1,000 accounts × 15 posts",
                1e3 * per_job.requests_usd(),
                TARGET_JOBS_A_DAY * per_job.requests_usd()
            ),
        )
        .with_note(
            "DynamoDB, SQS, Secrets Manager and KMS requests, reconciler ticks included; Lambda, \
             logs, storage, data transfer and fixed resources are in 3's whole bill",
        ),
    ];
    let due = aws.get("dynamodb.Query@due");
    rows.push(
        Row::info(
            bench,
            "reconciler due-index queries",
            format!(
                "{} in the day ({:.2} RRU), {:.2} a published job",
                due.requests,
                due.capacity_units,
                due.requests as f64 / n
            ),
        )
        .with_note(
            "a fixed cost per tick (one query per shard per read; a tick that found work reads \
             again until nothing new is due; a tick a simulated minute): per job it falls as \
             accounts grow",
        ),
    );
    if h.meter().is_none() {
        rows.push(Row::info(bench, "AWS meter", "not metered".into()));
    }
    let asked = p.accounts as f64 * p.posts as f64 * scale / (DAY_MS / 1e3);
    let params = vec![format!(
        "8 simulated day: {} accounts × {} posts, one post every {:.0} simulated min from each account's own \
         offset, time scale {scale} (a day is {:.0} s real, {asked:.2} posts a real second); connect \
         {connect_s:.0} s, seed {seed_s:.0} s, run {run_s:.0} s",
        p.accounts,
        p.posts,
        DAY_MS / p.posts.max(1) as f64 / 60_000.0,
        day_ms as f64 / 1e3
    )];
    Ok(Section { rows, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_post_of_an_account_falls_inside_one_day() {
        let day = 86_400_000;
        for i in 0..2_000 {
            let first = schedule(0, day, 15, i, 0);
            let last = schedule(0, day, 15, i, 14);
            assert!(first >= 0, "account {i} starts before the day");
            assert!(last < day, "account {i}'s last post {last} is past the day");
            assert_eq!(last - first, 14 * (day / 15));
        }
    }
}
