//! The end-of-run summary. Reelay's promises are checked against the simulators' ground truth
//! (what TikTok and Ssemble actually received), not against Reelay's own records.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use reelay_aws::DynamoStore;
use reelay_domain::ports::{AccountStore, StoreError};
use reelay_domain::{AccountId, JobState, TenantId};
use serde_json::Value;

use crate::progress::{Observed, audit_trail};
use crate::stack::Stack;

/// One job's line in the summary.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub observed: Observed,
    /// Render ready (or an existing render accepted) → on TikTok.
    pub ready_to_publish: Option<Duration>,
    /// Publishes the TikTok simulator holds for this job (`None`: no simulator to ask).
    pub posts: Option<u64>,
    pub reason: Option<String>,
}

/// Posts the TikTok simulator holds for one job: its own `publish_id`, plus any other publish
/// carrying its (unique) title.
pub fn posts_for(
    inspect: &Value,
    open_id: &str,
    publish_id: Option<&str>,
    title: Option<&str>,
) -> u64 {
    let posts = inspect
        .pointer(&format!("/accounts/{open_id}/posts"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    posts
        .iter()
        .filter(|p| {
            let pid = p.get("publish_id").and_then(Value::as_str);
            let t = p.get("title").and_then(Value::as_str);
            (publish_id.is_some() && pid == publish_id) || (title.is_some() && t == title)
        })
        .count() as u64
}

/// Publishes on an account that no followed job accounts for: a duplicate whose job lost track.
pub fn orphan_posts(inspect: &Value, open_id: &str, known_publish_ids: &BTreeSet<String>) -> u64 {
    inspect
        .pointer(&format!("/accounts/{open_id}/posts"))
        .and_then(Value::as_array)
        .map(|posts| {
            posts
                .iter()
                .filter(|p| {
                    p.get("publish_id")
                        .and_then(Value::as_str)
                        .is_none_or(|pid| !known_publish_ids.contains(pid))
                })
                .count() as u64
        })
        .unwrap_or(0)
}

/// The largest `max_inits_in_flight` the TikTok simulator saw on any account.
pub fn max_inits_in_flight(inspect: &Value) -> u64 {
    inspect
        .get("accounts")
        .and_then(Value::as_object)
        .map(|a| {
            a.values()
                .filter_map(|v| v.get("max_inits_in_flight").and_then(Value::as_u64))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Every figure the run ends with.
#[derive(Debug, Clone)]
pub struct Summary {
    pub jobs: Vec<JobReport>,
    pub elapsed: Duration,
    /// `None` when the upstream is external (no ground truth to read).
    pub tiktok_violations: Option<u64>,
    pub ssemble_violations: Option<u64>,
    /// Calls Ssemble received: creates, and reads (status, document, list) beyond them.
    pub ssemble_calls: Option<SsembleCalls>,
    /// Posts beyond one per job, plus posts no job accounts for.
    pub duplicate_posts: Option<u64>,
    pub max_inits_in_flight: Option<u64>,
    pub deadline_passed: bool,
}

/// What Reelay asked of Ssemble, as its simulator recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsembleCalls {
    pub creates: u64,
    pub reads: u64,
}

impl SsembleCalls {
    /// From the simulator's inspection document (`calls[].endpoint`).
    pub fn from_inspection(inspection: &Value) -> Option<Self> {
        Some(Self::from_counts(&Self::by_endpoint(inspection)?))
    }

    /// Every call the inspection document records, counted by endpoint (`create`, `status`,
    /// `get`, `list`, …).
    pub fn by_endpoint(inspection: &Value) -> Option<BTreeMap<String, u64>> {
        let mut counts = BTreeMap::new();
        for call in inspection.get("calls")?.as_array()? {
            if let Some(endpoint) = call.get("endpoint").and_then(Value::as_str) {
                *counts.entry(endpoint.to_owned()).or_default() += 1;
            }
        }
        Some(counts)
    }

    /// Creates, and reads (status, document, list) beyond them, from counts by endpoint.
    pub fn from_counts(by_endpoint: &BTreeMap<String, u64>) -> Self {
        let sum = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| by_endpoint.get(*n))
                .sum::<u64>()
        };
        Self {
            creates: sum(&["create"]),
            reads: sum(&["status", "get", "list"]),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx.min(sorted.len() - 1)).copied()
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}s", d.as_secs_f64()))
}

impl Summary {
    pub fn published(&self) -> usize {
        self.jobs.iter().filter(|j| j.observed.published()).count()
    }

    pub fn parked(&self) -> Vec<&JobReport> {
        self.jobs.iter().filter(|j| j.observed.parked()).collect()
    }

    pub fn unsettled(&self) -> usize {
        self.jobs.iter().filter(|j| !j.observed.settled()).count()
    }

    pub fn failed(&self) -> Vec<&JobReport> {
        self.jobs
            .iter()
            .filter(|j| {
                matches!(
                    j.observed.state(),
                    Some(
                        JobState::RenderFailed | JobState::PublishFailed | JobState::PublishUnknown
                    )
                )
            })
            .collect()
    }

    /// p50 and max of render-ready → published.
    pub fn latency(&self) -> (Option<Duration>, Option<Duration>) {
        let mut all: Vec<Duration> = self
            .jobs
            .iter()
            .filter_map(|j| j.ready_to_publish)
            .collect();
        all.sort();
        (percentile(&all, 0.5), all.last().copied())
    }

    /// What a user is promised: no duplicate post, no limit exceeded, one init in flight per
    /// account, and no job lost (every job settled before the deadline).
    pub fn broken_promises(&self) -> Vec<String> {
        let mut broken = Vec::new();
        if let Some(n) = self.duplicate_posts.filter(|n| *n > 0) {
            broken.push(format!("{n} duplicate post(s) on TikTok"));
        }
        if let Some(n) = self.tiktok_violations.filter(|n| *n > 0) {
            broken.push(format!("{n} TikTok limit violation(s)"));
        }
        if let Some(n) = self.ssemble_violations.filter(|n| *n > 0) {
            broken.push(format!("{n} Ssemble limit violation(s)"));
        }
        if let Some(n) = self.max_inits_in_flight.filter(|n| *n > 1) {
            broken.push(format!("{n} inits in flight at once on one account"));
        }
        if self.unsettled() > 0 {
            broken.push(format!(
                "{} job(s) not settled{}",
                self.unsettled(),
                if self.deadline_passed {
                    " by the deadline"
                } else {
                    ""
                }
            ));
        }
        broken
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<28} {:<14} {:<24} {:<19} {:>9} {:>5}  reason",
            "job", "account", "kind", "state", "ready→pub", "posts"
        );
        for j in &self.jobs {
            let o = &j.observed;
            let _ = writeln!(
                out,
                "{:<28} {:<14} {:<24} {:<19} {:>9} {:>5}  {}",
                o.tracked.job_id,
                o.tracked.account_id,
                o.tracked.label,
                o.state().map_or("missing", |s| s.as_str()),
                secs(j.ready_to_publish),
                j.posts.map_or("-".into(), |p| p.to_string()),
                j.reason.as_deref().unwrap_or(""),
            );
        }
        let (p50, max) = self.latency();
        let opt = |v: Option<u64>| {
            v.map_or("n/a (upstream has no inspection API)".into(), |v| {
                v.to_string()
            })
        };
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "published:                 {}/{}",
            self.published(),
            self.jobs.len()
        );
        let failed = self.failed();
        let _ = writeln!(out, "failed:                    {}", failed.len());
        for f in failed {
            let _ = writeln!(
                out,
                "  {} ({}): {}",
                f.observed.tracked.job_id,
                f.observed.tracked.account_id,
                f.reason.as_deref().unwrap_or("no reason recorded")
            );
        }
        let parked = self.parked();
        let _ = writeln!(out, "parked (needs a person):   {}", parked.len());
        for p in parked {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                p.observed.tracked.job_id,
                p.observed.state().map_or("missing", |s| s.as_str()),
                p.reason.as_deref().unwrap_or("no reason recorded")
            );
        }
        let _ = writeln!(out, "not settled:               {}", self.unsettled());
        let _ = writeln!(
            out,
            "render-ready → published:  p50 {}  max {}",
            secs(p50),
            secs(max)
        );
        let _ = writeln!(
            out,
            "TikTok limit violations:   {}",
            opt(self.tiktok_violations)
        );
        let _ = writeln!(
            out,
            "Ssemble limit violations:  {}",
            opt(self.ssemble_violations)
        );
        if let Some(c) = self.ssemble_calls {
            let per = if c.creates > 0 {
                format!(" ({:.2} a create)", c.reads as f64 / c.creates as f64)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "Ssemble calls:             {} creates, {} reads{per}",
                c.creates, c.reads
            );
        }
        let _ = writeln!(
            out,
            "max inits in flight/acct:  {}",
            opt(self.max_inits_in_flight)
        );
        let _ = writeln!(
            out,
            "duplicate posts:           {}",
            opt(self.duplicate_posts)
        );
        let _ = writeln!(
            out,
            "elapsed:                   {:.1}s",
            self.elapsed.as_secs_f64()
        );
        out
    }
}

/// An external upstream that is one of the simulators (started on its own) still has its
/// inspection API; a real upstream has none, and the summary says "n/a".
async fn remote_inspect(root: &str) -> Option<Value> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = http
        .get(format!("{}/_sim/inspect", root.trim_end_matches('/')))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json::<Value>().await.ok()
}

/// Builds the summary from the store (states, audit trails) and the simulators' inspection.
pub async fn summarize(
    stack: &Stack,
    tenant: &TenantId,
    observed: Vec<Observed>,
    elapsed: Duration,
    deadline_passed: bool,
) -> Result<Summary, StoreError> {
    let tiktok = match &stack.tiktok {
        Some(sim) => Some(sim.inspect()),
        None => remote_inspect(&stack.wiring.upstream.tiktok_api_base_url).await,
    };
    let ssemble = match &stack.ssemble {
        Some(sim) => serde_json::to_value(sim.inspect()).ok(),
        None => remote_ssemble(&stack.wiring.upstream.ssemble_api_base_url).await,
    };
    summarize_from(
        &stack.store,
        tiktok,
        ssemble,
        tenant,
        observed,
        elapsed,
        deadline_passed,
    )
    .await
}

/// The summary of a stack this process does not host (a deployed one): the store is the
/// stage's table, the simulators are asked over HTTP (`None` where an upstream has no
/// inspection API, and the summary says n/a).
pub async fn summarize_remote(
    store: &DynamoStore,
    tiktok_api_base_url: &str,
    ssemble_api_base_url: &str,
    tenant: &TenantId,
    observed: Vec<Observed>,
    elapsed: Duration,
    deadline_passed: bool,
) -> Result<Summary, StoreError> {
    let tiktok = remote_inspect(tiktok_api_base_url).await;
    let ssemble = remote_ssemble(ssemble_api_base_url).await;
    summarize_from(
        store,
        tiktok,
        ssemble,
        tenant,
        observed,
        elapsed,
        deadline_passed,
    )
    .await
}

/// The Ssemble simulator's inspection document, asked over HTTP at its root.
async fn remote_ssemble(api_base_url: &str) -> Option<Value> {
    remote_inspect(
        api_base_url
            .trim_end_matches('/')
            .trim_end_matches("/api/v1"),
    )
    .await
}

async fn summarize_from(
    store: &DynamoStore,
    tiktok: Option<Value>,
    ssemble: Option<Value>,
    tenant: &TenantId,
    observed: Vec<Observed>,
    elapsed: Duration,
    deadline_passed: bool,
) -> Result<Summary, StoreError> {
    let mut open_ids: BTreeMap<String, Option<String>> = BTreeMap::new();
    for o in &observed {
        if open_ids.contains_key(&o.tracked.account_id) {
            continue;
        }
        let open_id = match AccountId::parse(o.tracked.account_id.clone()) {
            Ok(id) => store
                .get_account(tenant, &id)
                .await?
                .and_then(|a| a.open_id),
            Err(_) => None,
        };
        open_ids.insert(o.tracked.account_id.clone(), open_id);
    }

    let mut jobs = Vec::with_capacity(observed.len());
    let mut duplicates = 0u64;
    let mut known: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in observed {
        let mut ready_to_publish = None;
        if let Some(job) = &o.job {
            let audit = audit_trail(store, &job.id).await?;
            // Ready to go: the render is done (a job due at once may skip `ready`) and the
            // schedule has come; a wait for `scheduleAt` is the client's, not Reelay's.
            let ready = audit
                .iter()
                .find(|e| matches!(e.to, JobState::Ready | JobState::PublishQueued))
                .map(|e| e.at.max(job.schedule_at));
            let published = audit
                .iter()
                .find(|e| {
                    matches!(
                        e.to,
                        JobState::PublishComplete | JobState::PubliclyAvailable
                    ) || (o.tracked.draft && e.to == JobState::Submitted)
                })
                .map(|e| e.at);
            if let (Some(r), Some(p)) = (ready, published) {
                ready_to_publish = Some(p.since(r));
            }
            if let Some(pid) = &job.publish_id {
                known
                    .entry(o.tracked.account_id.clone())
                    .or_default()
                    .insert(pid.as_str().to_owned());
            }
        }
        let open_id = open_ids.get(&o.tracked.account_id).cloned().flatten();
        let posts = match (&tiktok, &open_id) {
            (Some(inspect), Some(open_id)) => Some(posts_for(
                inspect,
                open_id,
                o.job
                    .as_ref()
                    .and_then(|j| j.publish_id.as_ref())
                    .map(|p| p.as_str()),
                o.tracked.title.as_deref(),
            )),
            (Some(_), None) => Some(0),
            (None, _) => None,
        };
        duplicates += posts.unwrap_or(0).saturating_sub(1);
        let reason = o.job.as_ref().and_then(|j| {
            if o.published() {
                return None;
            }
            let error = j
                .last_error
                .as_ref()
                .map(|e| format!("{}: {}", e.code, e.message));
            match (&j.hold, error) {
                (Some(h), Some(e)) => Some(format!("held ({}) after {e}", h.reason)),
                (Some(h), None) => Some(format!("held ({})", h.reason)),
                (None, e) => e,
            }
        });
        jobs.push(JobReport {
            observed: o,
            ready_to_publish,
            posts,
            reason,
        });
    }
    let mut orphans = 0;
    if let Some(inspect) = &tiktok {
        for (account, open_id) in &open_ids {
            if let Some(open_id) = open_id {
                let empty = BTreeSet::new();
                orphans += orphan_posts(inspect, open_id, known.get(account).unwrap_or(&empty));
            }
        }
    }
    let count = |v: Option<&Value>| v.and_then(Value::as_array).map(|a| a.len() as u64);
    Ok(Summary {
        jobs,
        elapsed,
        tiktok_violations: tiktok
            .as_ref()
            .map(|t| count(t.get("limit_violations")).unwrap_or(0)),
        ssemble_violations: ssemble
            .as_ref()
            .and_then(|v| count(v.get("limitViolations"))),
        ssemble_calls: ssemble.as_ref().and_then(SsembleCalls::from_inspection),
        duplicate_posts: tiktok.as_ref().map(|_| duplicates + orphans),
        max_inits_in_flight: tiktok.as_ref().map(max_inits_in_flight),
        deadline_passed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssemble_calls_count_creates_and_the_three_reads_from_the_inspection() {
        let inspection = serde_json::json!({"calls": [
            {"endpoint": "create"}, {"endpoint": "create"},
            {"endpoint": "status"}, {"endpoint": "get"}, {"endpoint": "get"},
            {"endpoint": "list"}, {"endpoint": "delete"}, {"no_endpoint": true}
        ]});
        let by = SsembleCalls::by_endpoint(&inspection).unwrap_or_default();
        assert_eq!(by.get("get"), Some(&2));
        assert_eq!(by.get("delete"), Some(&1));
        assert_eq!(
            SsembleCalls::from_inspection(&inspection),
            Some(SsembleCalls {
                creates: 2,
                reads: 4
            })
        );
        assert_eq!(SsembleCalls::from_inspection(&serde_json::json!({})), None);
    }
}
