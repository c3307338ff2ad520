//! The promises, checked against the simulated upstreams' ground truth and the store, after
//! every step and at the end of a run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reelay_domain::lifecycle::{JobState, NEEDS_OPERATOR, Policy};
use reelay_domain::{
    AccountId, Job, JobId, JobSource, PostMode, PublishId, RequestId, TenantId, UtcTime,
};
use reelay_testkit::MemStore;

use crate::run::Planned;
use crate::ssemble::SsembleSim;
use crate::tiktok::{Poll, TikTokSim};

/// How late a check may come after the event that made it legitimate (one reconciler tick and a
/// little): a poll racing the webhook that settled the job is not a violation.
const SLACK: Duration = Duration::from_secs(120);
/// Status polls one publish may take over its whole life: polls back off to one every 30 minutes
/// through the processing horizon (24 h) and a stuck publish's 72 h (about 250 in all); a job
/// polled on every one-minute tick would pass this in under seven hours.
const POLLS_PER_PUBLISH: usize = 400;
/// Status reads one render may take: backing off to one every 15 minutes until its 6-hour
/// deadline (about 40); a render polled every tick passes this in an hour and a half.
const READS_PER_REQUEST: usize = 80;
/// Status reads of a request Ssemble does not know (it answers 404 `resource_not_found`): one,
/// and one more each time the reading invocation dies before the job records the answer.
const UNKNOWN_REQUEST_POLLS: usize = 6;

#[derive(Debug)]
pub struct Checker {
    audit_bound: usize,
    tiktok_seen: usize,
    ssemble_seen: usize,
    unknown_polls: BTreeMap<String, usize>,
    polls: BTreeMap<String, usize>,
    reads: BTreeMap<String, usize>,
    found: BTreeSet<String>,
    steps: u64,
    /// Since when (the first step that saw it) each throttled account has been throttled without
    /// a break: a status poll is judged against what its invocation could have read.
    throttled_since: BTreeMap<(TenantId, AccountId), UtcTime>,
}

impl Checker {
    pub fn new(audit_bound: usize) -> Self {
        Self {
            audit_bound,
            tiktok_seen: 0,
            ssemble_seen: 0,
            unknown_polls: BTreeMap::new(),
            polls: BTreeMap::new(),
            reads: BTreeMap::new(),
            found: BTreeSet::new(),
            steps: 0,
            throttled_since: BTreeMap::new(),
        }
    }

    pub fn violation(&mut self, v: String) {
        self.found.insert(v);
    }

    pub fn violations(&self) -> Vec<String> {
        self.found.iter().cloned().collect()
    }

    /// After every step: the upstreams' own verdicts, every new poll, and (now and then) the
    /// audit trails.
    pub fn step(
        &mut self,
        store: &MemStore,
        tiktok: &TikTokSim,
        ssemble: &SsembleSim,
        policy: &Policy,
        now: UtcTime,
    ) {
        self.steps += 1;
        for v in tiktok.violations().into_iter().chain(ssemble.violations()) {
            self.violation(v);
        }
        if tiktok.poll_count() > self.tiktok_seen || ssemble.poll_count() > self.ssemble_seen {
            let polls = tiktok.polls_since(self.tiktok_seen);
            self.tiktok_seen += polls.len();
            for poll in polls {
                self.tiktok_poll(store, policy, &poll);
            }
            let polls = ssemble.polls_since(self.ssemble_seen);
            self.ssemble_seen += polls.len();
            for (rid, at) in polls {
                self.ssemble_poll(store, ssemble, policy, &rid, at);
            }
        }
        if self.steps.is_multiple_of(64) {
            self.audits(store, now);
        }
        self.throttles(store, policy, now);
    }

    /// Notes the accounts throttled now and since when; an account no longer throttled is
    /// forgotten, so a later block starts a new span.
    fn throttles(&mut self, store: &MemStore, policy: &Policy, now: UtcTime) {
        let mut throttled = BTreeMap::new();
        for account in store.accounts() {
            if account
                .throttled_until(now, &policy.delay_only_codes)
                .is_some()
            {
                let key = (account.tenant_id, account.account_id);
                let since = self.throttled_since.get(&key).copied().unwrap_or(now);
                throttled.insert(key, since);
            }
        }
        self.throttled_since = throttled;
    }

    fn tiktok_poll(&mut self, store: &MemStore, policy: &Policy, poll: &Poll) {
        let (pid, at) = (poll.publish_id.as_str(), poll.at);
        let n = self.polls.entry(pid.to_owned()).or_default();
        *n += 1;
        if *n > POLLS_PER_PUBLISH {
            self.violation(format!("{pid} polled more than {POLLS_PER_PUBLISH} times"));
        }
        let Ok(publish_id) = PublishId::parse(pid.to_owned()) else {
            return;
        };
        let Some(job) = store
            .publish_pointers()
            .get(&publish_id)
            .and_then(|id| store.job(id))
        else {
            self.violation(format!("status poll of {pid}, which no job has"));
            return;
        };
        let id = &job.id;
        // The reconciler reads the account before it polls, so a block recorded while a poll is
        // on its way cannot stop that poll (check, then call); an invocation that started while
        // the account was already throttled could see the block, and must not poll.
        let key = (job.tenant_id.clone(), job.account_id.clone());
        if let Some(account) = store.account(&job.tenant_id, &job.account_id)
            && let Some(until) = account.throttled_until(at, &policy.delay_only_codes)
            && let Some(since) = self.throttled_since.get(&key)
            && poll.started.is_none_or(|started| *since < started)
        {
            self.violation(format!(
                "{id} polled at {at} by an invocation started {} while TikTok has throttled its account since {since} (until {until})",
                poll.started.map_or("-".to_owned(), |s| s.to_string())
            ));
        }
        if job.publish_id.as_ref() != Some(&publish_id) {
            self.violation(format!("{id} polled {pid}, an earlier attempt's publish"));
        }
        if job.is_terminal() && job.updated_at.plus(SLACK) < at {
            self.violation(format!(
                "{id} polled at {at} while {} since {}",
                job.state, job.updated_at
            ));
        }
        if let Some(h) = job.hold.as_ref().filter(|h| h.reason == NEEDS_OPERATOR)
            && h.since.is_some_and(|s| s.plus(SLACK) < at)
        {
            self.violation(format!(
                "{id} polled at {at} after it was parked for an operator"
            ));
        }
        if let Some(h) = policy.horizon(&job)
            && h.plus(SLACK) < at
        {
            self.violation(format!(
                "{id} polled at {at}, past its horizon {h} in {}",
                job.state
            ));
        }
    }

    fn ssemble_poll(
        &mut self,
        store: &MemStore,
        ssemble: &SsembleSim,
        policy: &Policy,
        rid: &str,
        at: UtcTime,
    ) {
        let n = self.reads.entry(rid.to_owned()).or_default();
        *n += 1;
        if *n > READS_PER_REQUEST {
            self.violation(format!(
                "request {rid} read more than {READS_PER_REQUEST} times"
            ));
        }
        if !ssemble.knows(rid) {
            let n = self.unknown_polls.entry(rid.to_owned()).or_default();
            *n += 1;
            if *n > UNKNOWN_REQUEST_POLLS {
                self.violation(format!(
                    "request {rid}, unknown to Ssemble, read more than {UNKNOWN_REQUEST_POLLS} times"
                ));
            }
        }
        let Ok(request_id) = RequestId::parse(rid.to_owned()) else {
            return;
        };
        let jobs: Vec<Job> = store
            .request_pointers(&request_id)
            .iter()
            .filter_map(|id| store.job(id))
            .filter(|j| j.request_id.as_ref() == Some(&request_id))
            .collect();
        let waiting = jobs
            .iter()
            .any(|j| j.state == JobState::Rendering || j.updated_at.plus(SLACK) >= at);
        if !waiting {
            self.violation(format!(
                "request {rid} read at {at} while no job waits for it"
            ));
        }
        // One read serves every job of the request (one render fanned out): it is due while any
        // of them still waits within its deadline, even if another's expiry is not processed yet.
        let rendering: Vec<&Job> = jobs
            .iter()
            .filter(|j| j.state == JobState::Rendering)
            .collect();
        let horizons: Vec<UtcTime> = rendering.iter().filter_map(|j| policy.horizon(j)).collect();
        if let Some(job) = rendering.first()
            && horizons.len() == rendering.len()
            && horizons.iter().all(|h| h.plus(SLACK) < at)
        {
            let h = horizons.iter().max().copied().unwrap_or(at);
            self.violation(format!(
                "{} read its render at {at}, past its deadline {h}",
                job.id
            ));
        }
    }

    fn audits(&mut self, store: &MemStore, _now: UtcTime) {
        for job in store.jobs() {
            let n = store.audit_trail(&job.id).len();
            if n > self.audit_bound {
                self.violation(format!(
                    "{} has {n} audit events (bound {}), in {}",
                    job.id, self.audit_bound, job.state
                ));
            }
        }
    }

    /// What the client's webhooks would say of a job, from its audit trail: one
    /// `job.state_changed` per move, ending in the job's state; `job.published` once, exactly
    /// when the job got published; one event id per fact.
    fn webhooks_tell(&mut self, job: &Job, trail: &[reelay_domain::AuditEvent]) {
        use reelay_domain::webhooks::{EventType, job_events};
        let events: Vec<_> = trail.iter().flat_map(|a| job_events(job, a)).collect();
        let count = |t: EventType| events.iter().filter(|e| e.event_type == t).count();
        let moves = trail
            .iter()
            .filter(|a| a.from.is_some_and(|f| f != a.to))
            .count();
        if count(EventType::JobStateChanged) != moves {
            self.violation(format!(
                "{}: {moves} moves, other state_changed events",
                job.id
            ));
        }
        let last = events
            .iter()
            .rev()
            .find(|e| e.event_type == EventType::JobStateChanged)
            .and_then(|e| e.data["state"].as_str().map(str::to_owned));
        if moves > 0 && last.as_deref() != Some(job.state.as_str()) {
            self.violation(format!(
                "{}: the last state_changed says {last:?}, the job is {}",
                job.id, job.state
            ));
        }
        let reached = trail.iter().any(|a| {
            matches!(
                a.to,
                JobState::PublishComplete | JobState::PubliclyAvailable
            )
        });
        let published = count(EventType::JobPublished);
        if published != usize::from(reached) {
            self.violation(format!(
                "{}: {published} job.published events, published: {reached}",
                job.id
            ));
        }
        let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        if ids.len() != events.len() {
            self.violation(format!("{}: two webhook events share an id", job.id));
        }
    }

    /// At the end: every job terminal or parked with a reason, no job created twice, at most one
    /// post per job at TikTok.
    pub fn finish(
        &mut self,
        store: &MemStore,
        tiktok: &TikTokSim,
        ssemble: &SsembleSim,
        planned: &[Planned],
        policy: &Policy,
        now: UtcTime,
    ) {
        self.audits(store, now);
        let jobs = store.jobs();
        for job in &jobs {
            let trail = store.audit_trail(&job.id);
            self.webhooks_tell(job, &trail);
        }
        // A render is one tenant's: every job that uses a request is of the same tenant.
        let mut owners: BTreeMap<&RequestId, BTreeSet<&str>> = BTreeMap::new();
        for job in &jobs {
            if let Some(rid) = &job.request_id {
                owners
                    .entry(rid)
                    .or_default()
                    .insert(job.tenant_id.as_str());
            }
        }
        for (rid, tenants) in owners.iter().filter(|(_, t)| t.len() > 1) {
            self.violation(format!(
                "request {rid} is used by jobs of tenants {tenants:?}"
            ));
        }
        // A job that rendered its own source holds a request a create of its own tenant made
        // (Ssemble knows which job's: the webhook URL it was given names it). Within one tenant,
        // two jobs on the same video whose creates both lost their answers at about the same
        // time can end up on one request: Ssemble has no idempotency key and its list does not
        // say whose create a request was, so the look-up cannot tell them apart.
        for job in jobs
            .iter()
            .filter(|j| matches!(j.source, JobSource::Render(_)))
        {
            let Some(rid) = &job.request_id else { continue };
            let made_for = ssemble.request(rid.as_str()).and_then(|r| r.webhook_url);
            let creator = jobs.iter().find(|j| {
                made_for
                    .as_ref()
                    .is_some_and(|url| url.contains(&format!("/{}.", j.id)))
            });
            if creator.is_none_or(|c| c.tenant_id != job.tenant_id) {
                self.violation(format!(
                    "{} holds request {rid}, another tenant's create",
                    job.id
                ));
            }
        }
        for p in planned {
            let n = jobs
                .iter()
                .filter(|j| j.post.title.as_deref() == Some(p.title.as_str()))
                .count();
            if n > 1 {
                self.violation(format!("{} created {n} times", p.title));
            }
            let posted = tiktok
                .publishes_of(&p.title)
                .iter()
                .filter(|x| x.posted())
                .count();
            if posted > 1 {
                self.violation(format!("{} posted {posted} times", p.title));
            }
        }
        for job in &jobs {
            if let Some(why) = still_moving(job, policy, now) {
                let trail: Vec<String> = store
                    .audit_trail(&job.id)
                    .iter()
                    .map(|e| format!("v{} {}→{}", e.version, e.event, e.to))
                    .collect();
                self.violation(format!(
                    "{} still moving at the end ({why}): {} v{} next {:?} hold {:?}; {}",
                    job.id,
                    job.state,
                    job.version,
                    job.next_check,
                    job.hold,
                    trail.join(", ")
                ));
            }
        }
    }
}

impl Checker {
    /// At any moment, no job claims more than TikTok has done for its publish: a draft is not
    /// `submitted` before the inbox has it, nothing is complete before TikTok says so, nothing is
    /// public without a public post id. (Lagging behind is normal; running ahead is a lie.)
    pub fn never_ahead(&mut self, store: &MemStore, tiktok: &TikTokSim) {
        use JobState as S;
        use reelay_domain::lifecycle::PublishStatus as T;
        let publishes: BTreeMap<String, crate::tiktok::Publish> = tiktok
            .publishes()
            .into_iter()
            .map(|p| (p.publish_id.clone(), p))
            .collect();
        for job in store.jobs() {
            let Some(p) = job
                .publish_id
                .as_ref()
                .and_then(|pid| publishes.get(pid.as_str()))
            else {
                continue;
            };
            let draft = job.post.mode == PostMode::Draft;
            let ahead = match job.state {
                S::Submitted if draft => !matches!(p.status, T::SentToInbox | T::Complete),
                S::PublishComplete => p.status != T::Complete,
                S::PubliclyAvailable => p.status != T::Complete || p.post_ids.is_empty(),
                _ => false,
            };
            if ahead {
                self.violation(format!(
                    "{} says {} while TikTok has {} {:?}",
                    job.id, job.state, p.publish_id, p.status
                ));
            }
        }
    }

    /// At the end, a failed render carries Ssemble's own reason.
    pub fn render_reasons(&mut self, store: &MemStore, ssemble: &SsembleSim) {
        /// How soon after a deletion a rendering job's polls must have seen the 404: a few of
        /// the longest render-poll intervals (15 min), budget waits included.
        const DELETE_SEEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(3600);
        for job in store
            .jobs()
            .into_iter()
            .filter(|j| j.state == JobState::RenderFailed)
        {
            let Some(rid) = &job.request_id else { continue };
            let code = job.last_error.as_ref().map(|e| e.code.clone());
            let not_found = "resource_not_found".to_owned();
            let (expected, deleted) = match ssemble.request(rid.as_str()) {
                None => (Some(not_found.clone()), false),
                Some(r) => match r.outcome {
                    crate::ssemble::Outcome::Failed { after, reason }
                        if r.created.plus(after) <= job.state_since =>
                    {
                        (
                            Some(reelay_domain::usecase::failure_code(&reason)),
                            r.deleted,
                        )
                    }
                    // Deleted shortly before the job's render deadline: the expiry may come
                    // before the next poll sees the 404 (seed 1679), and both are true.
                    _ if r.deleted
                        && code.as_deref() == Some("deadline_exceeded")
                        && r.deleted_at
                            .is_some_and(|at| at.plus(DELETE_SEEN_WITHIN) > job.state_since) =>
                    {
                        (None, false)
                    }
                    _ if r.deleted => (Some(not_found.clone()), false),
                    _ => (None, false),
                },
            };
            // A failed request deleted later: its reason, or the 404 a later read saw.
            if let Some(expected) = expected
                && code.as_deref() != Some(expected.as_str())
                && !(deleted && code.as_deref() == Some(not_found.as_str()))
            {
                self.violation(format!(
                    "{} render failed with {code:?}, Ssemble said {expected}",
                    job.id
                ));
            }
        }
    }

    /// At the end, the job and TikTok agree about every publish the job knows, and every publish
    /// whose init answer reached a living publisher got its bytes.
    pub fn agreement(&mut self, store: &MemStore, tiktok: &TikTokSim, killed: &BTreeSet<u64>) {
        use JobState as S;
        use reelay_domain::lifecycle::PublishStatus as T;
        let publishes: BTreeMap<String, crate::tiktok::Publish> = tiktok
            .publishes()
            .into_iter()
            .map(|p| (p.publish_id.clone(), p))
            .collect();
        for job in store.jobs() {
            let Some(pid) = &job.publish_id else { continue };
            let Some(p) = publishes.get(pid.as_str()) else {
                self.violation(format!(
                    "{} holds {pid}, which TikTok never created",
                    job.id
                ));
                continue;
            };
            let draft = job.post.mode == PostMode::Draft;
            let agrees = match (&p.status, job.state) {
                (T::Complete, S::PublishComplete | S::PubliclyAvailable) => true,
                (T::Complete, S::Submitted) => draft,
                (T::SentToInbox, S::Submitted) => draft,
                (
                    T::Failed { .. },
                    S::PublishFailed | S::Ready | S::PublishQueued | S::Cancelled,
                ) => true,
                // A draft is `submitted` only once it reached the inbox.
                (T::Processing | T::Other { .. }, S::Submitted) => !draft,
                (
                    T::Processing | T::Other { .. },
                    S::PublishProcessing | S::Uploaded | S::PublishUnknown,
                ) => true,
                _ => false,
            };
            // The reason is TikTok's own.
            if let (T::Failed { reason }, S::PublishFailed) = (&p.status, job.state)
                && job.last_error.as_ref().map(|e| e.code.as_str()) != Some(reason.as_str())
            {
                self.violation(format!(
                    "{} failed with {:?}, TikTok's reason was {reason}",
                    job.id,
                    job.last_error.as_ref().map(|e| &e.code)
                ));
            }
            if !agrees {
                self.violation(format!(
                    "{} is {} (hold {:?}) but TikTok has {pid} {:?}",
                    job.id, job.state, job.hold, p.status
                ));
            }
        }
        // An init whose answer was lost: once TikTok settled that publish (and its webhooks came),
        // the job knows it — unless another init of the same account is lost as well, where
        // nothing can tell the two apart.
        let jobs = store.jobs();
        for job in jobs
            .iter()
            .filter(|j| j.state == S::PublishUnknown && j.publish_id.is_none())
        {
            let title = job.post.title.clone().unwrap_or_default();
            let ours = tiktok.publishes_of(&title);
            let settled = ours
                .iter()
                .any(|p| matches!(p.status, T::Complete | T::SentToInbox | T::Failed { .. }));
            let alone = jobs
                .iter()
                .filter(|j| {
                    j.tenant_id == job.tenant_id
                        && j.account_id == job.account_id
                        && j.state == S::PublishUnknown
                        && j.publish_id.is_none()
                })
                .count()
                == 1;
            if ours.len() == 1 && settled && alone {
                self.violation(format!(
                    "{} is parked ({:?}) although TikTok settled its publish {} ({:?})",
                    job.id,
                    job.hold_reason(),
                    ours[0].publish_id,
                    ours[0].status
                ));
            }
        }
        for job in store.jobs() {
            let published = matches!(job.state, S::PublishComplete | S::PubliclyAvailable)
                || (job.state == S::Submitted && job.post.mode == PostMode::Draft);
            if published && let Some(e) = &job.last_error {
                self.violation(format!(
                    "{} is {} but still shows error {}",
                    job.id, job.state, e.code
                ));
            }
        }
        for p in publishes.values() {
            let lived = p.init_by.is_some_and(|by| !killed.contains(&by));
            let Ok(pid) = reelay_domain::PublishId::parse(p.publish_id.clone()) else {
                continue;
            };
            let recorded = store.publish_pointers().contains_key(&pid);
            if p.file_upload
                && p.answered
                && lived
                && recorded
                && p.uploads == 0
                && p.bytes_at.is_none()
            {
                self.violation(format!(
                    "TikTok accepted {} ({}), its publisher lived and recorded it, yet no byte was sent",
                    p.publish_id, p.title
                ));
            }
        }
    }
}

/// Why `job` is neither terminal nor visibly parked at `now`, if it is not.
fn still_moving(job: &Job, policy: &Policy, now: UtcTime) -> Option<&'static str> {
    use JobState as S;
    if job.is_terminal() {
        return None;
    }
    match job.state {
        S::PublishUnknown if job.hold.is_some() => None,
        S::PublishUnknown => Some("publish_unknown without a reason"),
        // Published from the client's point of view; polled until their horizon.
        S::Submitted | S::PublishComplete => {
            let settled = job.next_check.is_none()
                || policy.horizon(job).is_some_and(|h| h > now)
                || (job.state == S::Submitted && job.post.mode == PostMode::Draft);
            (!settled).then_some("published but never settled")
        }
        _ => match &job.hold {
            Some(h)
                if !h.reason.is_empty()
                    && h.until
                        .is_none_or(|t| t > now.minus(Duration::from_secs(3600))) =>
            {
                None
            }
            _ => Some("no reason to wait"),
        },
    }
}

/// Every job id (for reports).
pub fn ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id.clone()).collect()
}
