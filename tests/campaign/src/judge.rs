//! Judging the run: the table (every job terminal, settled, parked with a reason, or with a next
//! check that will move it; every audit record complete and bounded) and the simulators' ground
//! truth (posts, limits, inits in flight, what TikTok holds for each publish). Nothing here
//! trusts what Reelay says about itself beyond what it stored.
//!
//! A job still moving when the drain ends (it has a next check) breaks no promise: that every job
//! settles within bounded simulated time is what the deterministic simulation
//! (`tests/simulation`) proves, under manual time. A wall-clock run on a shared machine can only
//! show that nothing is invisible, never how fast it settles.

use std::collections::{BTreeMap, BTreeSet};

use reelay_aws::DynamoStore;
use reelay_domain::job::{AuditEvent, Job, NextCheck, PostMode};
use reelay_domain::ports::{JobFilter, JobStore, StoreError};
use reelay_domain::{JobId, JobState, TenantId, UtcTime};
use serde_json::Value;

/// Audit events one job may carry: waiting, polling and backing off write none, so a longer trail
/// means a job churning through transitions. The deterministic simulation's bound
/// (`tests/simulation/src/run.rs`, `Config::audit_bound`).
pub const AUDIT_BOUND: usize = 100;

/// Where a job stands, from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Posted (direct), or settled as far as the client is concerned: a draft in the creator's
    /// inbox, a complete post whose public id may still come.
    Published,
    /// Terminal without a post: render_failed, publish_failed, cancelled.
    Failed(String),
    /// Parked with a reason: `publish_unknown` with its hold (`publish_outcome_unknown`,
    /// `processing_stuck` — still polled — or `needs_operator`), or a hold without an end (the
    /// account's gate: re-authorisation, a banned account), rechecked without writing anything.
    Parked(String),
    /// Held with a reason until a known time (a daily cap, a rate window), with a next check:
    /// it moves on by itself then.
    Waiting(String, UtcTime),
    /// Still moving, with a pending next check: not settled yet, but something will move it.
    Unsettled(NextCheck),
    /// Not terminal, not settled, not parked with a reason and no next check: nothing will ever
    /// move it. A lost job.
    Invisible,
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

fn hold_with_reason(job: &Job) -> Option<&reelay_domain::job::Hold> {
    job.hold.as_ref().filter(|h| !h.reason.is_empty())
}

pub fn standing(job: &Job) -> Standing {
    let draft = job.post.mode == PostMode::Draft;
    match job.state {
        JobState::PubliclyAvailable => return Standing::Published,
        s if s.is_terminal() => {
            return Standing::Failed(
                reason(job).unwrap_or_else(|| format!("{} without a reason", s.as_str())),
            );
        }
        // A draft is `submitted` only once TikTok put it in the inbox (checked against TikTok by
        // `ahead_of_tiktok`); a complete post waits only for its public id.
        JobState::PublishComplete => return Standing::Published,
        JobState::Submitted if draft => return Standing::Published,
        JobState::PublishUnknown if hold_with_reason(job).is_some() => {
            return Standing::Parked(reason(job).unwrap_or_default());
        }
        _ => {}
    }
    let held_until = hold_with_reason(job).map(|h| h.until);
    match (held_until, job.next_check) {
        (Some(None), _) => Standing::Parked(reason(job).unwrap_or_default()),
        (_, None) => Standing::Invisible,
        (Some(Some(until)), Some(_)) => Standing::Waiting(reason(job).unwrap_or_default(), until),
        (None, Some(next)) => Standing::Unsettled(next),
    }
}

/// Nothing will move soon: no unsettled job is due before `horizon`, and every waiting one waits
/// past it. (Parked, settled, failed and invisible jobs wait for nothing the drain can give.)
pub fn quiet(jobs: &[Job], horizon: UtcTime) -> bool {
    jobs.iter().all(|j| match standing(j) {
        Standing::Unsettled(next) => next.at > horizon,
        Standing::Waiting(_, until) => until > horizon,
        _ => true,
    })
}

/// Every job of the tenant, read page by page from the table.
pub async fn scan_jobs(store: &DynamoStore, tenant: &TenantId) -> Result<Vec<Job>, StoreError> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
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

/// A job's whole audit trail, oldest first, page by page.
pub async fn audit_trail(store: &DynamoStore, id: &JobId) -> Result<Vec<AuditEvent>, StoreError> {
    let mut trail = Vec::new();
    let mut after = None;
    loop {
        let page = store.audit_page(id, after, 200).await?;
        trail.extend(page.events);
        match page.next_after {
            // A cursor that does not advance would loop forever: the store is broken.
            Some(next) if after.is_some_and(|a| next <= a) => {
                return Err(StoreError::Corrupt(format!(
                    "audit cursor of {id} did not advance past {next}"
                )));
            }
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(trail)
}

/// What TikTok holds for each publish: `publish_id` → its status and public post ids.
pub fn tiktok_publishes(inspect: &Value) -> BTreeMap<String, (String, usize)> {
    let mut out = BTreeMap::new();
    if let Some(accounts) = inspect.get("accounts").and_then(Value::as_object) {
        for acct in accounts.values() {
            for post in acct
                .get("posts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(pid) = post.get("publish_id").and_then(Value::as_str) else {
                    continue;
                };
                let status = post
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let post_ids = post
                    .get("post_ids")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                out.insert(pid.to_owned(), (status, post_ids));
            }
        }
    }
    out
}

/// How `job` claims more than TikTok did, if it does: a draft `submitted` while its publish is
/// not in the inbox, `publish_complete` while TikTok's status is not complete, public without a
/// public post id, or a publish TikTok never created. Read TikTok after the table: TikTok only
/// moves forward, so a job that was right when read is still right against a later inspection.
/// (Lagging behind TikTok is normal; running ahead of it is a lie to the client.)
pub fn ahead_of_tiktok(job: &Job, publishes: &BTreeMap<String, (String, usize)>) -> Option<String> {
    let claims = matches!(
        job.state,
        JobState::Submitted | JobState::PublishComplete | JobState::PubliclyAvailable
    );
    let Some(pid) = &job.publish_id else {
        return claims.then(|| format!("{} without a publish_id", job.state.as_str()));
    };
    let Some((status, post_ids)) = publishes.get(pid.as_str()) else {
        return Some(format!(
            "{} holds {}, which TikTok never created",
            job.state.as_str(),
            pid.as_str()
        ));
    };
    let complete = status == "PUBLISH_COMPLETE";
    let ahead = match job.state {
        JobState::Submitted if job.post.mode == PostMode::Draft => {
            !(complete || status == "SEND_TO_USER_INBOX")
        }
        JobState::PublishComplete => !complete,
        JobState::PubliclyAvailable => !complete || *post_ids == 0,
        _ => false,
    };
    ahead.then(|| {
        format!(
            "{} while TikTok has {} {status} ({post_ids} public id(s))",
            job.state.as_str(),
            pid.as_str()
        )
    })
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
        // Stale observations and the move to `needs_operator` stay in `publish_unknown`.
        .find(|e| e.to != JobState::PublishUnknown)
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
    use reelay_domain::job::{Hold, JobSource};
    use reelay_domain::lifecycle::{CheckKind, NEEDS_OPERATOR, PROCESSING_STUCK, Policy};
    use reelay_domain::{AccountId, PublishId};
    use reelay_testkit::sample;
    use serde_json::json;

    fn at(s: i64) -> UtcTime {
        UtcTime::from_millis(1_800_000_000_000 + s * 1000)
    }

    fn job(mode: PostMode, state: JobState) -> Job {
        let mut job = Job::create(
            JobId::generate(at(0), 7),
            TenantId::parse("tenant_t").unwrap(),
            AccountId::parse("acct_a").unwrap(),
            JobSource::Render(sample::render_request()),
            sample::post(mode),
            at(0),
            None,
            at(0),
            &Policy::default(),
        )
        .job;
        job.state = state;
        job
    }

    fn next(s: i64) -> Option<NextCheck> {
        Some(NextCheck {
            at: at(s),
            kind: CheckKind::StatusPoll,
        })
    }

    fn hold(reason: &str, until: Option<UtcTime>) -> Option<Hold> {
        Some(Hold {
            reason: reason.into(),
            until,
            since: Some(at(0)),
        })
    }

    #[test]
    fn a_job_without_a_next_check_is_invisible_unless_terminal_settled_or_parked() {
        let mut j = job(PostMode::Direct, JobState::Uploaded);
        j.next_check = None;
        assert_eq!(standing(&j), Standing::Invisible);
        j.next_check = next(10);
        assert_eq!(standing(&j), Standing::Unsettled(next(10).unwrap()));

        // Settled for the client: a draft in the inbox, a post whose public id never came.
        let mut d = job(PostMode::Draft, JobState::Submitted);
        d.next_check = None;
        assert_eq!(standing(&d), Standing::Published);
        let mut c = job(PostMode::Direct, JobState::PublishComplete);
        c.next_check = None;
        assert_eq!(standing(&c), Standing::Published);
        // A direct post merely submitted is not settled.
        let mut s = job(PostMode::Direct, JobState::Submitted);
        s.next_check = None;
        assert_eq!(standing(&s), Standing::Invisible);

        // publish_unknown is parked with its hold (processing_stuck keeps being polled,
        // needs_operator is not), and not without one.
        let mut u = job(PostMode::Direct, JobState::PublishUnknown);
        u.hold = hold(PROCESSING_STUCK, None);
        u.next_check = next(10);
        assert!(matches!(standing(&u), Standing::Parked(r) if r == PROCESSING_STUCK));
        u.hold = hold(NEEDS_OPERATOR, None);
        u.next_check = None;
        assert!(matches!(standing(&u), Standing::Parked(_)));
        u.hold = None;
        assert_eq!(standing(&u), Standing::Invisible);

        // A hold without an end (the account's gate) is parked; one with an end waits on its
        // next check, and without one nothing ends it.
        let mut r = job(PostMode::Direct, JobState::Ready);
        r.hold = hold("account_needs_reauth", None);
        r.next_check = next(3600);
        assert!(matches!(standing(&r), Standing::Parked(_)));
        r.hold = hold("", None);
        assert_eq!(standing(&r), Standing::Unsettled(next(3600).unwrap()));
        r.hold = hold("daily_cap", Some(at(50)));
        assert_eq!(standing(&r), Standing::Waiting("daily_cap".into(), at(50)));
        r.next_check = None;
        assert_eq!(standing(&r), Standing::Invisible);

        let mut f = job(PostMode::Direct, JobState::PublishFailed);
        f.next_check = None;
        assert!(matches!(standing(&f), Standing::Failed(_)));
    }

    #[test]
    fn quiet_waits_for_what_is_due_before_the_horizon_only() {
        let mut due = job(PostMode::Direct, JobState::Rendering);
        due.next_check = next(5);
        let mut later = job(PostMode::Direct, JobState::Rendering);
        later.next_check = next(500);
        assert!(!quiet(&[due.clone(), later.clone()], at(30)));
        assert!(quiet(&[later], at(30)));
        let mut waiting = job(PostMode::Direct, JobState::Ready);
        waiting.hold = hold("rate_window", Some(at(20)));
        waiting.next_check = next(20);
        assert!(!quiet(&[waiting], at(30)));
    }

    #[test]
    fn a_job_ahead_of_tiktok_is_caught_and_one_behind_is_not() {
        let inspect = json!({"accounts": {"u1": {"posts": [
            {"publish_id": "p_inbox", "status": "SEND_TO_USER_INBOX", "post_ids": []},
            {"publish_id": "p_proc", "status": "PROCESSING_UPLOAD", "post_ids": []},
            {"publish_id": "p_done", "status": "PUBLISH_COMPLETE", "post_ids": []},
            {"publish_id": "p_public", "status": "PUBLISH_COMPLETE", "post_ids": ["7"]}
        ]}}});
        let publishes = tiktok_publishes(&inspect);
        let with = |mode, state, pid: &str| {
            let mut j = job(mode, state);
            j.publish_id = Some(PublishId::parse(pid.to_owned()).unwrap());
            ahead_of_tiktok(&j, &publishes)
        };
        use JobState as S;
        use PostMode::{Direct, Draft};
        assert!(with(Draft, S::Submitted, "p_inbox").is_none());
        assert!(with(Draft, S::Submitted, "p_proc").is_some());
        assert!(with(Direct, S::Submitted, "p_proc").is_none());
        assert!(with(Direct, S::PublishComplete, "p_proc").is_some());
        assert!(with(Direct, S::PublishComplete, "p_done").is_none());
        assert!(with(Direct, S::PubliclyAvailable, "p_done").is_some());
        assert!(with(Direct, S::PubliclyAvailable, "p_public").is_none());
        // Behind TikTok is normal.
        assert!(with(Direct, S::PublishProcessing, "p_public").is_none());
        // A publish TikTok never created.
        assert!(with(Direct, S::PublishProcessing, "p_other").is_some());
        let j = job(Direct, S::PublishComplete);
        assert!(ahead_of_tiktok(&j, &publishes).is_some());
    }

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
