//! The campaign's verdict and its table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use futures::StreamExt as _;

use reelay_domain::job::{AuditEvent, Job};
use reelay_domain::ports::{JobStore, StoreError};
use reelay_local::kill::INIT_ACCEPTED;
use serde_json::Value;

use crate::judge::{self, Standing, UnknownCase};
use crate::logs::LogScan;
use crate::probe::Persistence;
use crate::{CampaignConfig, Fault};

/// The endpoint restart, as it happened.
#[derive(Debug, Clone)]
pub struct RestartReport {
    /// Into the chaos phase.
    pub at: Duration,
    pub downtime: Option<Duration>,
    pub error: Option<String>,
    pub persistence: Option<Persistence>,
    /// An account's OAuth tokens could be read from Secrets Manager after the restart.
    pub tokens_kept: bool,
    pub jobs_before: Option<usize>,
    pub jobs_after: Option<usize>,
}

pub(crate) struct Inputs<'a> {
    pub config: &'a CampaignConfig,
    /// The table, read after the stack stopped (nothing races the scan).
    pub store: &'a reelay_aws::DynamoStore,
    /// Every job of the tenant, scanned after the stack stopped.
    pub jobs: Vec<Job>,
    pub accepted: Vec<String>,
    pub unaccepted: Vec<String>,
    /// TikTok's inspection, taken after the table scan (TikTok only moves forward).
    pub tiktok: &'a Value,
    pub ssemble_violations: u64,
    pub ssemble_storm_429s: u64,
    pub faults: BTreeMap<Fault, u64>,
    pub kills: BTreeMap<(String, String), u64>,
    pub restart: Option<RestartReport>,
    pub logs: Option<&'a LogScan>,
    pub setup: Duration,
    pub faults_for: Duration,
    pub chaos: Duration,
    pub elapsed: Duration,
    pub wall: Duration,
    pub drain_bound_reached: bool,
    pub titles: BTreeSet<String>,
}

/// Every figure of the run, from the table and the simulators.
#[derive(Debug, Clone)]
pub struct Report {
    pub jobs_planned: usize,
    pub accounts: usize,
    pub seed: u64,
    pub time_scale: f64,
    pub accepted: usize,
    pub unaccepted: Vec<String>,
    pub in_table: usize,
    pub by_state: BTreeMap<String, usize>,
    pub published: usize,
    pub failed: BTreeMap<String, usize>,
    pub parked: BTreeMap<String, usize>,
    /// Held with a reason until a known time past the end of the run.
    pub waiting: BTreeMap<String, usize>,
    /// Accepted (202) but absent from the table.
    pub missing: Vec<String>,
    /// Not terminal, settled or parked with a reason, and no next check: nothing will move them.
    pub invisible: Vec<String>,
    /// Still moving with a pending next check when the drain ended (not a broken promise).
    pub unsettled: Vec<String>,
    pub unsettled_by_state: BTreeMap<String, usize>,
    /// Jobs whose audit trail exceeds [`judge::AUDIT_BOUND`] events.
    pub churn: Vec<String>,
    /// Jobs that claim more than TikTok did for their publish.
    pub ahead: Vec<String>,
    /// The audit trails of the first few invisible, churning, ahead or unsettled jobs.
    pub trails: Vec<String>,
    pub longest_trail: usize,
    pub duplicate_posts: u64,
    pub duplicate_lines: Vec<String>,
    pub max_publishes_per_job: u64,
    pub foreign_publishes: u64,
    pub tiktok_violations: u64,
    pub tiktok_violation_lines: Vec<String>,
    pub ssemble_violations: u64,
    pub ssemble_storm_429s: u64,
    pub max_inits_in_flight: u64,
    pub unknown: Vec<UnknownCase>,
    /// Jobs in `publish_unknown` without a hold (judged like any other job by their next check).
    pub unknown_without_hold: usize,
    pub audit_missing: Vec<String>,
    pub audit_records: usize,
    pub faults: BTreeMap<Fault, u64>,
    pub kills: BTreeMap<(String, String), u64>,
    pub restart: Option<RestartReport>,
    pub log_lines: Option<u64>,
    pub log_bytes: Option<u64>,
    pub canary_hits: Option<u64>,
    pub canary_samples: Vec<String>,
    pub webhooks_sent: usize,
    pub setup: Duration,
    /// Upstream faults were injected for this long (from the start of the chaos phase)...
    pub faults_for: Duration,
    /// ...and kills went on until this.
    pub chaos: Duration,
    pub elapsed: Duration,
    pub wall: Duration,
    /// The drain ended at its bound rather than quiet (reported, never a verdict).
    pub drain_bound_reached: bool,
}

/// A job and its audit trail as of one moment: re-read until they agree, so a write landing
/// between the two reads is not reported as a gap.
async fn consistent(
    store: &reelay_aws::DynamoStore,
    job: &Job,
) -> Result<(Job, Vec<AuditEvent>), StoreError> {
    let mut fresh = job.clone();
    let mut trail = judge::audit_trail(store, &job.id).await?;
    for _ in 0..3 {
        if trail.iter().map(|e| e.version).max().unwrap_or(0) == fresh.version {
            break;
        }
        if let Some(j) = store.get(&job.id).await? {
            fresh = j;
        }
        trail = judge::audit_trail(store, &job.id).await?;
    }
    Ok((fresh, trail))
}

/// One line per audit event, for diagnosis.
fn trail_line(job: &Job, trail: &[AuditEvent]) -> String {
    let mut sorted: Vec<&AuditEvent> = trail.iter().collect();
    sorted.sort_by_key(|e| e.version);
    let steps: Vec<String> = sorted
        .iter()
        .map(|e| {
            format!(
                "v{} {} {}→{}{}{}",
                e.version,
                e.event,
                e.from.map_or("-", |f| f.as_str()),
                e.to.as_str(),
                e.error_code
                    .as_deref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default(),
                e.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
            )
        })
        .collect();
    format!(
        "{} (v{} {}, hold {:?}, next check {:?}): {}",
        job.id.as_str(),
        job.version,
        job.state.as_str(),
        job.hold,
        job.next_check,
        steps.join(" | ")
    )
}

fn describe(job: &Job) -> String {
    format!(
        "{} ({}) {}{}{}",
        job.id.as_str(),
        job.account_id.as_str(),
        job.state.as_str(),
        job.hold
            .as_ref()
            .map(|h| format!(", held: {}", h.reason))
            .unwrap_or_default(),
        job.next_check
            .map(|n| format!(", next {:?} at {}", n.kind, n.at))
            .unwrap_or_default()
    )
}

impl Report {
    pub(crate) async fn build(i: Inputs<'_>) -> Result<Self, StoreError> {
        let mut by_state = BTreeMap::new();
        let mut failed = BTreeMap::new();
        let mut parked = BTreeMap::new();
        let mut waiting = BTreeMap::new();
        let mut published = 0;
        let mut missing = Vec::new();
        let mut invisible = Vec::new();
        let mut unsettled = Vec::new();
        let mut unsettled_by_state = BTreeMap::new();
        let mut churn = Vec::new();
        let mut ahead = Vec::new();
        let mut unknown = Vec::new();
        let mut audit_missing = Vec::new();
        let mut broken_trails = Vec::new();
        let mut unsettled_trails = Vec::new();
        let mut longest_trail = 0;
        let in_table: BTreeSet<&str> = i.jobs.iter().map(|j| j.id.as_str()).collect();
        for id in &i.accepted {
            if !in_table.contains(id.as_str()) {
                missing.push(format!("{id}: accepted (202) but not in the table"));
            }
        }
        let publishes = judge::tiktok_publishes(i.tiktok);
        let fetched = futures::stream::iter(i.jobs.iter())
            .map(|job| consistent(i.store, job))
            .buffered(8)
            .collect::<Vec<_>>()
            .await;
        for found in fetched {
            let (job, trail) = found?;
            let job = &job;
            *by_state.entry(job.state.as_str().to_owned()).or_default() += 1;
            let mut is_broken = false;
            match judge::standing(job) {
                Standing::Published => published += 1,
                Standing::Failed(r) => *failed.entry(r).or_default() += 1,
                Standing::Parked(r) => {
                    *parked
                        .entry(format!("{}: {r}", job.state.as_str()))
                        .or_default() += 1
                }
                Standing::Waiting(r, _) => {
                    *waiting
                        .entry(format!("{}: {r}", job.state.as_str()))
                        .or_default() += 1
                }
                Standing::Unsettled(_) => {
                    *unsettled_by_state
                        .entry(job.state.as_str().to_owned())
                        .or_default() += 1;
                    // TikTok's side of it, for diagnosis: what its status polls keep reading.
                    let at_tiktok = job
                        .publish_id
                        .as_ref()
                        .and_then(|p| publishes.get(p.as_str()))
                        .map(|(status, ids)| format!("; TikTok: {status}, {ids} public id(s)"))
                        .unwrap_or_default();
                    unsettled.push(format!("{}{at_tiktok}", describe(job)));
                    if unsettled_trails.len() < 2 {
                        unsettled_trails.push(trail_line(job, &trail));
                    }
                }
                Standing::Invisible => {
                    invisible.push(describe(job));
                    is_broken = true;
                }
            }
            longest_trail = longest_trail.max(trail.len());
            if trail.len() > judge::AUDIT_BOUND {
                churn.push(format!(
                    "{}: {} audit events (bound {}), now {}",
                    job.id.as_str(),
                    trail.len(),
                    judge::AUDIT_BOUND,
                    job.state.as_str()
                ));
                is_broken = true;
            }
            if let Some(why) = judge::ahead_of_tiktok(job, &publishes) {
                ahead.push(format!("{}: {why}", job.id.as_str()));
                is_broken = true;
            }
            for gap in judge::audit_gaps(job, &trail) {
                audit_missing.push(format!("{}: {gap}", job.id.as_str()));
            }
            if is_broken && broken_trails.len() < 3 {
                broken_trails.push(trail_line(job, &trail));
            }
            if let Some(case) = judge::unknown_case(job, &trail, i.tiktok) {
                unknown.push(case);
            }
        }
        broken_trails.extend(unsettled_trails);
        let (duplicate_posts, duplicate_lines) = judge::duplicate_posts(i.tiktok);
        let violations: Vec<String> = i
            .tiktok
            .get("limit_violations")
            .and_then(Value::as_array)
            .map(|a| a.iter().take(10).map(Value::to_string).collect())
            .unwrap_or_default();
        Ok(Self {
            jobs_planned: i.config.jobs,
            accounts: i.config.accounts,
            seed: i.config.seed,
            time_scale: i.config.time_scale,
            accepted: i.accepted.len(),
            unaccepted: i.unaccepted,
            in_table: i.jobs.len(),
            by_state,
            published,
            failed,
            parked,
            waiting,
            missing,
            invisible,
            unsettled,
            unsettled_by_state,
            churn,
            ahead,
            trails: broken_trails,
            longest_trail,
            duplicate_posts,
            duplicate_lines,
            max_publishes_per_job: judge::max_publishes_per_title(i.tiktok),
            foreign_publishes: judge::foreign_titles(i.tiktok, &i.titles),
            tiktok_violations: i
                .tiktok
                .get("limit_violations")
                .and_then(Value::as_array)
                .map_or(0, |a| a.len() as u64),
            tiktok_violation_lines: violations,
            ssemble_violations: i.ssemble_violations,
            ssemble_storm_429s: i.ssemble_storm_429s,
            max_inits_in_flight: reelay_local::summary::max_inits_in_flight(i.tiktok),
            unknown_without_hold: i
                .jobs
                .iter()
                .filter(|j| j.state == reelay_domain::JobState::PublishUnknown && j.hold.is_none())
                .count(),
            unknown,
            audit_missing,
            audit_records: i.jobs.len(),
            faults: i.faults,
            kills: i.kills,
            restart: i.restart,
            log_lines: i.logs.map(LogScan::lines),
            log_bytes: i.logs.map(LogScan::bytes),
            canary_hits: i.logs.map(LogScan::hits),
            canary_samples: i.logs.map(LogScan::samples).unwrap_or_default(),
            webhooks_sent: i
                .tiktok
                .get("webhooks")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            setup: i.setup,
            faults_for: i.faults_for,
            chaos: i.chaos,
            elapsed: i.elapsed,
            wall: i.wall,
            drain_bound_reached: i.drain_bound_reached,
        })
    }

    pub fn kills_at(&self, point: &str) -> u64 {
        self.kills
            .iter()
            .filter(|((_, p), _)| p == point)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total_kills(&self) -> u64 {
        self.kills.values().sum()
    }

    /// Every promise the run broke; empty means all kept. A job still moving when the drain
    /// ended is not here: the deterministic simulation proves every job settles within bounded
    /// simulated time; a wall-clock run can only prove that none is invisible.
    pub fn broken(&self) -> Vec<String> {
        let mut b = Vec::new();
        if self.duplicate_posts > 0 {
            b.push(format!("{} duplicate post(s)", self.duplicate_posts));
        }
        if !self.missing.is_empty() {
            b.push(format!(
                "{} accepted job(s) absent from the table",
                self.missing.len()
            ));
        }
        if !self.invisible.is_empty() {
            b.push(format!(
                "{} invisible job(s): not terminal, settled or parked with a reason, and no next check",
                self.invisible.len()
            ));
        }
        if self.tiktok_violations + self.ssemble_violations > 0 {
            b.push(format!(
                "{} TikTok and {} Ssemble limit violation(s)",
                self.tiktok_violations, self.ssemble_violations
            ));
        }
        if self.max_inits_in_flight > 1 {
            b.push(format!(
                "{} inits in flight at once on one account",
                self.max_inits_in_flight
            ));
        }
        if !self.audit_missing.is_empty() {
            b.push(format!(
                "{} audit record field(s) missing",
                self.audit_missing.len()
            ));
        }
        if !self.churn.is_empty() {
            b.push(format!(
                "{} job(s) with more than {} audit events",
                self.churn.len(),
                judge::AUDIT_BOUND
            ));
        }
        if !self.ahead.is_empty() {
            b.push(format!(
                "{} job(s) claim more than TikTok did",
                self.ahead.len()
            ));
        }
        if self.canary_hits.is_some_and(|h| h > 0) {
            b.push(format!(
                "the canary secret appeared in {} log line(s)",
                self.canary_hits.unwrap_or(0)
            ));
        }
        if self.foreign_publishes > 0 {
            b.push(format!(
                "{} publish(es) with a title no job has",
                self.foreign_publishes
            ));
        }
        b
    }

    /// The campaign itself did what it claims: the deliberate kill point was hit, faults were
    /// injected, the endpoint was restarted. A run that did none of it proves nothing.
    pub fn not_exercised(&self) -> Vec<String> {
        let mut n = Vec::new();
        if self.kills_at(INIT_ACCEPTED) == 0 {
            n.push(format!("no kill at {INIT_ACCEPTED}"));
        }
        if self.faults.values().sum::<u64>() == 0 {
            n.push("no fault injected".into());
        }
        if self.restart.as_ref().is_none_or(|r| r.downtime.is_none()) {
            n.push("the endpoint was not restarted".into());
        }
        if self.log_lines.is_some_and(|l| l == 0) {
            n.push("no log line was scanned".into());
        }
        if self.accepted == 0 {
            n.push("no job accepted".into());
        }
        n
    }

    pub fn render(&self) -> String {
        let mut o = String::new();
        let secs = |d: Duration| format!("{:.1}s", d.as_secs_f64());
        let _ = writeln!(
            o,
            "== Reelay fault campaign: {} jobs planned across {} accounts, seed {}, clock ×{} ==",
            self.jobs_planned, self.accounts, self.seed, self.time_scale
        );
        let _ = writeln!(
            o,
            "\n-- promises (ground truth: simulators' inspection + table scan)"
        );
        let row = |o: &mut String, what: &str, value: String, ok: bool| {
            let _ = writeln!(
                o,
                "{:<48} {:>8}  {}",
                what,
                value,
                if ok { "ok" } else { "BROKEN" }
            );
        };
        row(
            &mut o,
            "duplicate posts (must be 0)",
            self.duplicate_posts.to_string(),
            self.duplicate_posts == 0,
        );
        row(
            &mut o,
            "accepted jobs absent from the table (0)",
            self.missing.len().to_string(),
            self.missing.is_empty(),
        );
        row(
            &mut o,
            "invisible jobs: no next check (must be 0)",
            self.invisible.len().to_string(),
            self.invisible.is_empty(),
        );
        row(
            &mut o,
            "limit violations TikTok+Ssemble (must be 0)",
            format!("{}+{}", self.tiktok_violations, self.ssemble_violations),
            self.tiktok_violations + self.ssemble_violations == 0,
        );
        row(
            &mut o,
            "max inits in flight per account (≤ 1)",
            self.max_inits_in_flight.to_string(),
            self.max_inits_in_flight <= 1,
        );
        row(
            &mut o,
            "audit records missing a field (must be 0)",
            self.audit_missing.len().to_string(),
            self.audit_missing.is_empty(),
        );
        row(
            &mut o,
            &format!(
                "audit trails over {} events (must be 0)",
                judge::AUDIT_BOUND
            ),
            self.churn.len().to_string(),
            self.churn.is_empty(),
        );
        row(
            &mut o,
            "jobs claiming more than TikTok did (must be 0)",
            self.ahead.len().to_string(),
            self.ahead.is_empty(),
        );
        row(
            &mut o,
            "foreign publishes (must be 0)",
            self.foreign_publishes.to_string(),
            self.foreign_publishes == 0,
        );
        row(
            &mut o,
            "canary hits in log lines (must be 0)",
            self.canary_hits.map_or("n/a".into(), |h| h.to_string()),
            self.canary_hits.is_none_or(|h| h == 0),
        );
        let _ = writeln!(o, "\n-- jobs");
        let _ = writeln!(
            o,
            "accepted {} (not accepted after retries: {}), in table {}, published {}",
            self.accepted,
            self.unaccepted.len(),
            self.in_table,
            self.published
        );
        let _ = writeln!(o, "by state: {:?}", self.by_state);
        for (r, n) in &self.failed {
            let _ = writeln!(o, "  failed  {n:>5}  {r}");
        }
        for (r, n) in &self.parked {
            let _ = writeln!(o, "  parked  {n:>5}  {r}");
        }
        for (r, n) in &self.waiting {
            let _ = writeln!(o, "  waiting {n:>5}  {r} (held until a known time)");
        }
        for l in self.missing.iter().take(20) {
            let _ = writeln!(o, "  MISSING   {l}");
        }
        for l in self.invisible.iter().take(20) {
            let _ = writeln!(o, "  INVISIBLE {l}");
        }
        for l in self.churn.iter().take(20) {
            let _ = writeln!(o, "  CHURN     {l}");
        }
        for l in self.ahead.iter().take(20) {
            let _ = writeln!(o, "  AHEAD     {l}");
        }
        let _ = writeln!(
            o,
            "unsettled (still moving with a next check when the drain ended; not a broken \
             promise, the deterministic simulation proves every job settles in bounded \
             simulated time): {} {:?}",
            self.unsettled.len(),
            self.unsettled_by_state
        );
        for l in self.unsettled.iter().take(5) {
            let _ = writeln!(o, "  unsettled {l}");
        }
        for t in &self.trails {
            let _ = writeln!(o, "  trail of {t}");
        }
        let _ = writeln!(
            o,
            "longest audit trail: {} events (bound {})",
            self.longest_trail,
            judge::AUDIT_BOUND
        );
        for u in self.unaccepted.iter().take(5) {
            let _ = writeln!(o, "  not accepted: {u}");
        }
        let _ = writeln!(
            o,
            "inits TikTok accepted per job, max {} (ground truth; >1 only after a definite failure)",
            self.max_publishes_per_job
        );
        for d in self.duplicate_lines.iter().take(20) {
            let _ = writeln!(o, "  DUPLICATE {d}");
        }
        for v in &self.tiktok_violation_lines {
            let _ = writeln!(o, "  VIOLATION {v}");
        }
        for a in self.audit_missing.iter().take(20) {
            let _ = writeln!(o, "  AUDIT GAP {a}");
        }
        let _ = writeln!(
            o,
            "\n-- publish_unknown: {} job(s) went through it ({} there now without a hold)",
            self.unknown.len(),
            self.unknown_without_hold
        );
        let mut resolutions: BTreeMap<String, usize> = BTreeMap::new();
        for u in &self.unknown {
            *resolutions.entry(u.resolution.clone()).or_default() += 1;
        }
        for (r, n) in &resolutions {
            let _ = writeln!(o, "  {n:>5}  {r}");
        }
        for u in self.unknown.iter().take(30) {
            let _ = writeln!(
                o,
                "  {} {} → {} ({}; publishes at TikTok: {})",
                u.job_id,
                u.account_id,
                u.final_state,
                u.resolution,
                u.publishes_at_tiktok
                    .map_or("draft, by clip".into(), |n| n.to_string())
            );
        }
        let _ = writeln!(
            o,
            "\n-- faults injected: {}",
            self.faults.values().sum::<u64>()
        );
        for (f, n) in &self.faults {
            let _ = writeln!(o, "  {n:>5}  {f}");
        }
        let _ = writeln!(
            o,
            "  ({} Ssemble 429s served by storms; {} TikTok webhooks sent)",
            self.ssemble_storm_429s, self.webhooks_sent
        );
        let _ = writeln!(o, "\n-- kills at step boundaries: {}", self.total_kills());
        let mut by_point: BTreeMap<&str, u64> = BTreeMap::new();
        for ((_, p), n) in &self.kills {
            *by_point.entry(p.as_str()).or_default() += n;
        }
        for (p, n) in &by_point {
            let _ = writeln!(o, "  {n:>5}  {p}");
        }
        for ((f, p), n) in &self.kills {
            let _ = writeln!(o, "         {n:>5}  {f} after {p}");
        }
        let _ = writeln!(o, "\n-- local AWS endpoint restart");
        match &self.restart {
            None => {
                let _ = writeln!(o, "  none");
            }
            Some(r) => {
                let _ = writeln!(
                    o,
                    "  at {} into chaos, down {}{}",
                    secs(r.at),
                    r.downtime.map_or("-".into(), secs),
                    r.error
                        .as_ref()
                        .map(|e| format!(", error: {e}"))
                        .unwrap_or_default()
                );
                if let Some(p) = &r.persistence {
                    let _ = writeln!(o, "  {p}");
                }
                let _ = writeln!(
                    o,
                    "  Secrets Manager tokens {}; jobs in the table before/after: {:?}/{:?}",
                    if r.tokens_kept { "kept" } else { "LOST" },
                    r.jobs_before,
                    r.jobs_after
                );
            }
        }
        let _ = writeln!(o, "\n-- logs");
        let _ = writeln!(
            o,
            "  {} lines ({} bytes) scanned at the configured level; canary hits {}",
            self.log_lines.map_or("n/a".into(), |l| l.to_string()),
            self.log_bytes.map_or("n/a".into(), |l| l.to_string()),
            self.canary_hits.map_or("n/a".into(), |h| h.to_string())
        );
        for s in &self.canary_samples {
            let _ = writeln!(o, "  LEAK {s}");
        }
        let _ = writeln!(
            o,
            "\n-- time: setup {}, faults {}, chaos (faults, then kills) {}, chaos+drain {}, wall {}{}",
            secs(self.setup),
            secs(self.faults_for),
            secs(self.chaos),
            secs(self.elapsed),
            secs(self.wall),
            if self.drain_bound_reached {
                " (the drain reached its bound before the run was quiet)"
            } else {
                ""
            }
        );
        let broken = self.broken();
        let _ = writeln!(
            o,
            "verdict: {}",
            if broken.is_empty() {
                "every promise kept".to_owned()
            } else {
                format!("BROKEN: {}", broken.join("; "))
            }
        );
        o
    }
}
