//! Judging the run: the table (every job terminal or parked with a reason, every audit record
//! complete) and the simulators' ground truth (posts, limits, inits in flight). Nothing here
//! trusts what Reelay says about itself beyond what it stored.

use std::collections::{BTreeMap, BTreeSet};

use reelay_domain::job::{AuditEvent, Job, PostMode};
use reelay_domain::ports::{JobFilter, JobStore, StoreError};
use reelay_domain::{JobState, TenantId, UtcTime};
use reelay_local::Stack;
use serde_json::Value;

/// Where a job stands, from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Posted (direct) or in the creator's inbox (draft).
    Published,
    /// Terminal without a post: render_failed, publish_failed, cancelled.
    Failed(String),
    /// Waiting for a person, with the reason shown.
    Parked(String),
    /// Held with a reason until a known time (a daily cap, a rate window): it moves on by
    /// itself then.
    Waiting(String, UtcTime),
    /// Still moving (or parked without a reason): lost if the run ends like this.
    Moving,
}

fn reason(job: &Job) -> Option<String> {
    let error = job
        .last_error
        .as_ref()
        .filter(|e| !e.code.is_empty())
        .map(|e| e.code.clone());
    match (&job.hold, error) {
        (Some(h), e) if !h.reason.is_empty() => Some(match e {
            Some(e) => format!("{} (after {e})", h.reason),
            None => h.reason.clone(),
        }),
        (_, e) => e,
    }
}

pub fn standing(job: &Job) -> Standing {
    let draft = job.post.mode == PostMode::Draft;
    match job.state {
        JobState::PublishComplete | JobState::PubliclyAvailable => Standing::Published,
        JobState::Submitted if draft => Standing::Published,
        s if s.is_terminal() => Standing::Failed(
            reason(job).unwrap_or_else(|| format!("{} without a reason", s.as_str())),
        ),
        // Parked by definition (the init's outcome is unknown); the report counts those
        // without a recorded error or hold separately.
        JobState::PublishUnknown => Standing::Parked(
            reason(job).unwrap_or_else(|| "init outcome unknown (no error recorded)".into()),
        ),
        _ if job.hold.as_ref().is_some_and(|h| h.until.is_none()) => match reason(job) {
            Some(r) => Standing::Parked(r),
            None => Standing::Moving,
        },
        _ => match (job.hold.as_ref().and_then(|h| h.until), reason(job)) {
            (Some(until), Some(r)) if job.hold.is_some() => Standing::Waiting(r, until),
            _ => Standing::Moving,
        },
    }
}

/// Nothing will move soon: no job is moving, and every waiting one waits past `horizon`.
pub fn quiet(jobs: &[Job], horizon: UtcTime) -> bool {
    jobs.iter().all(|j| match standing(j) {
        Standing::Moving => false,
        Standing::Waiting(_, until) => until > horizon,
        _ => true,
    })
}

/// Every job of the tenant, read page by page from the table.
pub async fn scan_jobs(stack: &Stack, tenant: &TenantId) -> Result<Vec<Job>, StoreError> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = stack
            .jobs
            .list(tenant, &JobFilter::default(), cursor.as_deref(), 100)
            .await?;
        all.extend(page.jobs);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(all)
}

/// What a job's audit record lacks (empty: complete). The record must hold the account, every
/// transition with its time in an unbroken chain ending at the stored state, the `requestId`
/// once rendering started, the `publish_id` once TikTok accepted, and the `error.code` of a
/// failure.
pub fn audit_gaps(job: &Job, trail: &[AuditEvent]) -> Vec<String> {
    let mut gaps = Vec::new();
    if job.account_id.as_str().is_empty() {
        gaps.push("account".into());
    }
    if trail.is_empty() {
        gaps.push("no audit events".into());
        return gaps;
    }
    let mut sorted: Vec<&AuditEvent> = trail.iter().collect();
    sorted.sort_by_key(|e| e.version);
    if sorted[0].from.is_some() {
        gaps.push("first event is not the creation".into());
    }
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.version != a.version + 1 {
            gaps.push(format!("version gap {} → {}", a.version, b.version));
        }
        if b.from != Some(a.to) && b.from.is_some_and(|f| f != a.to) {
            gaps.push(format!(
                "event v{} starts from {:?}, previous ended at {}",
                b.version,
                b.from.map(|f| f.as_str()),
                a.to.as_str()
            ));
        }
        if b.at < a.at {
            gaps.push(format!(
                "event v{} is earlier than v{}",
                b.version, a.version
            ));
        }
    }
    if let Some(last) = sorted.last()
        && (last.to != job.state || last.version != job.version)
    {
        gaps.push(format!(
            "last event (v{} → {}) is not the stored state (v{} {})",
            last.version,
            last.to.as_str(),
            job.version,
            job.state.as_str()
        ));
    }
    let reached = |s: JobState| sorted.iter().any(|e| e.to == s);
    if reached(JobState::Rendering)
        && job.request_id.is_none()
        && !sorted.iter().any(|e| e.request_id.is_some())
    {
        gaps.push("requestId".into());
    }
    if reached(JobState::PublishProcessing)
        && job.publish_id.is_none()
        && !sorted.iter().any(|e| e.publish_id.is_some())
    {
        gaps.push("publish_id".into());
    }
    if let Some(pid) = &job.publish_id
        && !sorted.iter().any(|e| e.publish_id.as_ref() == Some(pid))
    {
        gaps.push("publish_id not in any audit event".into());
    }
    for e in &sorted {
        if matches!(e.to, JobState::RenderFailed | JobState::PublishFailed)
            && e.error_code.as_deref().is_none_or(str::is_empty)
        {
            gaps.push(format!("error.code of v{} ({})", e.version, e.to.as_str()));
        }
    }
    if matches!(job.state, JobState::RenderFailed | JobState::PublishFailed)
        && job.last_error.as_ref().is_none_or(|e| e.code.is_empty())
    {
        gaps.push("job error.code".into());
    }
    gaps
}

/// A job that went through `publish_unknown`, and how it came out.
#[derive(Debug, Clone)]
pub struct UnknownCase {
    pub job_id: String,
    pub account_id: String,
    /// The event that left `publish_unknown` and where it led, or why it is still there.
    pub resolution: String,
    pub final_state: String,
    /// Publishes TikTok holds for this job (ground truth; drafts: `None`, no title to match).
    pub publishes_at_tiktok: Option<u64>,
}

pub fn unknown_case(job: &Job, trail: &[AuditEvent], inspect: &Value) -> Option<UnknownCase> {
    let mut sorted: Vec<&AuditEvent> = trail.iter().collect();
    sorted.sort_by_key(|e| e.version);
    let entered = sorted
        .iter()
        .position(|e| e.to == JobState::PublishUnknown)?;
    let resolution = match sorted
        .iter()
        .skip(entered + 1)
        .find(|e| e.from == Some(JobState::PublishUnknown) || e.to != JobState::PublishUnknown)
    {
        Some(e) => format!("{} → {}", e.event, e.to.as_str()),
        None => format!(
            "still parked ({})",
            reason(job).unwrap_or_else(|| "no reason".into())
        ),
    };
    let publishes_at_tiktok = job.post.title.as_ref().map(|t| {
        inspect
            .pointer("/publishes_by_title")
            .and_then(|m| m.get(t))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    });
    Some(UnknownCase {
        job_id: job.id.as_str().to_owned(),
        account_id: job.account_id.as_str().to_owned(),
        resolution,
        final_state: job.state.as_str().to_owned(),
        publishes_at_tiktok,
    })
}

/// A publish that is or can still become a post: not failed, and its bytes are there (pulled
/// from a URL, or the upload completed).
fn can_post(post: &Value, inspect: &Value) -> bool {
    if post.get("status").and_then(Value::as_str) == Some("FAILED") {
        return false;
    }
    if post.get("source").and_then(Value::as_str) == Some("PULL_FROM_URL") {
        return true;
    }
    let pid = post
        .get("publish_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    inspect
        .pointer(&format!("/uploads/{pid}/complete"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Duplicate posts from TikTok's side: direct posts that share a job's (unique) title, and
/// inbox shares that carry the same clip bytes (each job renders its own source). Returns the
/// count beyond one per job, with a line per offending job.
pub fn duplicate_posts(inspect: &Value) -> (u64, Vec<String>) {
    let mut by_key: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(accounts) = inspect.get("accounts").and_then(Value::as_object) {
        for (open_id, acct) in accounts {
            for post in acct
                .get("posts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !can_post(post, inspect) {
                    continue;
                }
                let key = match post.get("title").and_then(Value::as_str) {
                    Some(t) if !t.is_empty() => format!("title {t}"),
                    _ => {
                        let pid = post
                            .get("publish_id")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        match inspect
                            .pointer(&format!("/uploads/{pid}/sha256"))
                            .and_then(Value::as_str)
                        {
                            Some(sha) => format!("clip {sha} on {open_id}"),
                            None => format!("publish {pid}"),
                        }
                    }
                };
                *by_key.entry(key).or_default() += 1;
            }
        }
    }
    let mut total = 0;
    let mut lines = Vec::new();
    for (key, n) in by_key {
        if n > 1 {
            total += n - 1;
            lines.push(format!("{key}: {n} posts"));
        }
    }
    (total, lines)
}

/// Publishes (inits TikTok accepted) per job title, failed ones included: above one means a
/// second init after the first, which is legitimate only after a definite failure.
pub fn max_publishes_per_title(inspect: &Value) -> u64 {
    inspect
        .get("publishes_by_title")
        .and_then(Value::as_object)
        .map(|m| m.values().filter_map(Value::as_u64).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Every title the campaign submitted must be unique; publishes whose title is not one of ours.
pub fn foreign_titles(inspect: &Value, ours: &BTreeSet<String>) -> u64 {
    inspect
        .get("publishes_by_title")
        .and_then(Value::as_object)
        .map(|m| m.keys().filter(|t| !ours.contains(*t)).count() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_second_live_post_of_a_job_is_a_duplicate_but_a_failed_or_empty_one_is_not() {
        let inspect = json!({
            "accounts": {"u1": {"posts": [
                {"publish_id": "p1", "title": "job a", "source": "FILE_UPLOAD", "status": "PUBLISH_COMPLETE"},
                {"publish_id": "p2", "title": "job a", "source": "FILE_UPLOAD", "status": "PROCESSING_UPLOAD"},
                {"publish_id": "p3", "title": "job b", "source": "FILE_UPLOAD", "status": "FAILED"},
                {"publish_id": "p4", "title": "job b", "source": "FILE_UPLOAD", "status": "PUBLISH_COMPLETE"},
                {"publish_id": "p5", "title": null, "source": "FILE_UPLOAD", "status": "SEND_TO_USER_INBOX"},
                {"publish_id": "p6", "title": null, "source": "FILE_UPLOAD", "status": "SEND_TO_USER_INBOX"}
            ]}},
            "uploads": {
                "p1": {"complete": true, "sha256": "aa"},
                "p2": {"complete": false, "sha256": "aa"},
                "p3": {"complete": true, "sha256": "bb"},
                "p4": {"complete": true, "sha256": "bb"},
                "p5": {"complete": true, "sha256": "cc"},
                "p6": {"complete": true, "sha256": "cc"}
            }
        });
        let (n, lines) = duplicate_posts(&inspect);
        assert_eq!(n, 1, "{lines:?}");
        assert!(lines[0].contains("clip cc"));
    }
}
