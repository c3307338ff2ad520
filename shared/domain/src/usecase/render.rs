//! Rendering with Ssemble: submitting a job's render, and confirming a render's outcome (from a
//! webhook hint or a poll, the same code) for every job that uses it.
//!
//! Submission, per job:
//! 1. Only a `received` job whose previous submission's lease has ended (and whose hold, if any,
//!    has passed) is submitted; anything else is a stale or duplicate message.
//! 2. The create budget is taken before any call.
//! 3. `RenderSubmitStarted` (with the SHA-256 of a fresh webhook token) is recorded before Ssemble
//!    is called: a create has no idempotency key and costs a credit, so the job must know an
//!    attempt may exist before it can exist. The write also takes the submission's lease.
//! 4. If an earlier attempt may have landed, it is looked for before creating again.
//! 5. The `requestId` is persisted at once; a found request is confirmed right away.
//!
//! A job created on an existing render (`POST /api/publish/tiktok`) comes to the render queue
//! too, once: its first confirmation is asked at once, not at the reconciler's next tick.
//!
//! Steps 2–5 run under a lease on the source and range (any tenant's job), held until the
//! attempt's `requestId` is known: Ssemble lists requests without saying who made them, so a
//! look-up is only sound while no other job can have an unanswered create of the same clip.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::ids::{JobId, RequestId};
use crate::job::{ClipChoice, Job, JobError, JobSource, RenderRequest};
use crate::lifecycle::{CheckKind, Effect, ErrorClass, Event, JobState};
use crate::ports::{Clock, Entropy, JobStore, LockStore, Ports, StoreError};
use crate::time::UtcTime;
use crate::upstream::{RenderApi, RenderProgress, RenderStatus, UpstreamError, choose_clip};

use super::budgets::{SSEMBLE_LIST_BUDGETS, SSEMBLE_STATUS_BUDGETS};
use super::{Advance, Core};

/// Attempts to persist a `requestId` Ssemble has just given, before leaving it to the next
/// submission's look-up (the credit is spent either way; the look-up costs budget).
const PERSIST_ATTEMPTS: u32 = 3;

/// What handling one render message did.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitOutcome {
    /// The job no longer exists, or is past `received`: a stale or duplicate message.
    Stale,
    /// A submission in flight or a hold: nothing happens before the job's next check.
    NotDue,
    /// Held (budget, an operator's action) until the job's next check.
    Held { reason: String },
    /// Created (or an earlier create found) and persisted.
    Submitted { request_id: RequestId, found: bool },
    /// Ssemble refused with a definite error; recorded on the job.
    Rejected { code: String },
    /// A job of an existing render (`POST /api/publish/tiktok`): its first confirmation,
    /// asked at once instead of at the reconciler's next tick.
    Confirmed(Confirmed),
    /// The create's (or the look-up's) outcome is unknown; the next check looks first.
    Unknown { code: String },
}

/// What confirming a render found.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    /// Ssemble answered; `moved` of the render's `jobs` changed state.
    Answered {
        status: RenderStatus,
        jobs: usize,
        moved: usize,
    },
    /// Ssemble says the request cannot render (unknown id, a definite refusal): every job of it
    /// failed with Ssemble's own code.
    Refused { code: String, jobs: usize },
    /// Nothing could be asked now (a budget, Ssemble unavailable): look again at `until`.
    Deferred { until: UtcTime, reason: String },
}

/// What a Ssemble webhook for a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HintOutcome {
    /// Unknown job or a token that is not one of its own: one answer for all, so the route is
    /// no oracle.
    NotFound,
    /// The job's create answer was lost; its submission's lease brings it back to look it up.
    PendingSubmission,
    /// An earlier create of the job reporting back: not the render it follows.
    OtherRequest,
    /// Confirmed already (or cancelled): a duplicate or late delivery spends no budget.
    AlreadySettled,
    /// Confirmed with Ssemble and applied: `rendered` of the render's jobs moved on with a clip,
    /// `failed` of them failed with Ssemble's reason.
    Confirmed { rendered: usize, failed: usize },
    /// Could not confirm now; the job's poll is brought forward to `until`.
    Deferred,
}

/// Ssemble's free-text `failureReason` as a code: its first clause in snake case
/// (`"Video download failed: URL returned 403"` → `video_download_failed`).
pub fn failure_code(reason: &str) -> String {
    let head = reason.split(':').next().unwrap_or(reason);
    let mut code = String::new();
    for c in head.trim().chars() {
        if c.is_ascii_alphanumeric() {
            code.push(c.to_ascii_lowercase());
        } else if !code.ends_with('_') && !code.is_empty() {
            code.push('_');
        }
    }
    let code = code.trim_end_matches('_');
    if code.is_empty() {
        "render_failed".to_owned()
    } else {
        code.chars().take(64).collect()
    }
}

/// The event a confirmed status means for one job (each job chooses its own clip).
pub fn event_for(status: &RenderStatus, choice: &ClipChoice, request_id: &RequestId) -> Event {
    let failed = |code: &str, message: String| Event::RenderFailed {
        request_id: request_id.clone(),
        error: JobError {
            code: code.into(),
            message,
            upstream_log_id: None,
        },
    };
    match status {
        RenderStatus::Pending => Event::RenderProgressed {
            request_id: request_id.clone(),
        },
        RenderStatus::Completed { clips } => match choose_clip(clips, choice) {
            Some(clip) => Event::RenderCompleted {
                request_id: request_id.clone(),
                clip,
            },
            None if matches!(choice, ClipChoice::ShortId(_)) => failed(
                "clip_not_found",
                "The render completed without the clip this job names".into(),
            ),
            None => failed(
                "no_usable_clip",
                format!("The render completed with {} usable clips", clips.len()),
            ),
        },
        RenderStatus::Failed { reason } => failed(&failure_code(reason), reason.clone()),
        RenderStatus::Cancelled => failed(
            "render_cancelled",
            "Ssemble reports the render cancelled".into(),
        ),
    }
}

/// A fresh 128-bit webhook token (hex) and the SHA-256 (hex) the job keeps of it.
fn webhook_token(random: u128) -> (SecretString, String) {
    let token = format!("{random:032x}");
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    (SecretString::from(token), hash)
}

/// Hold reason of a job whose source and range another job is creating right now.
pub const SOURCE_BUSY: &str = "render_source_busy";

/// Hold reason of a fanned-out job whose batch's first job of the same source has no render
/// yet: it shares that render once it exists.
pub const FAN_OUT_PENDING: &str = "fan_out_render_pending";

/// The lease name of a source and range: what a look-up matches on (the range to the second).
fn source_lock_name(request: &RenderRequest) -> String {
    let media = match &request.media {
        crate::job::MediaSource::Url(u) | crate::job::MediaSource::FileUrl(u) => u.as_str(),
    };
    let key = format!(
        "{media}#{}-{}",
        request.start.round() as i64,
        request.end.round() as i64
    );
    format!(
        "render-source:{}",
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}

/// What a Ssemble webhook's payload claims. Unsigned, so never trusted: it only picks which
/// call asks Ssemble first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderHint {
    /// The `requestId` the payload names, if it names a valid one.
    pub request_id: Option<RequestId>,
    /// The payload says the render completed (`shorts.completed`).
    pub completed: bool,
}

/// How a confirmation call ended before the fan-out.
enum Asked {
    Status(RenderStatus),
    Refused(UpstreamError),
    Deferred { until: UtcTime, reason: String },
}

impl<P: Ports> Core<P> {
    /// Runs one job's render submission (the steps in the module docs).
    pub async fn submit_render(&self, job_id: &JobId) -> Result<SubmitOutcome, StoreError> {
        let now = self.ports.clock().now();
        let Some(job) = self.ports.jobs().get(job_id).await? else {
            tracing::warn!("job not found; acknowledging");
            return Ok(SubmitOutcome::Stale);
        };
        // A job of an existing render whose first confirmation is still owed: asked now. Any
        // answer moves its check to a render poll, so a redelivery asks nothing more.
        if job.state == JobState::Rendering
            && let Some(request_id) = job.request_id.clone()
            && job
                .next_check
                .is_some_and(|c| c.kind == CheckKind::SubmitRender)
        {
            // At most one such confirmation per render and `render_poll_min`: a burst of jobs
            // publishing one render (a fan-out through the seed route) costs the key one read,
            // as the reconciler's once-per-run poll did. The others are in its fan-out, or are
            // confirmed by that poll when their fallback check comes due.
            let lock = format!("render-confirm:{request_id}");
            let until = now.plus(self.settings.policy.render_poll_min);
            let owner = job.id.to_string();
            if !self
                .ports
                .locks()
                .acquire_lock(&lock, &owner, now, until)
                .await?
            {
                tracing::info!(request_id = %request_id, "this render was confirmed moments ago; the reconciler's poll confirms this job");
                return Ok(SubmitOutcome::NotDue);
            }
            let deadline = now.plus(self.settings.reconcile.safety_margin);
            return Ok(SubmitOutcome::Confirmed(
                self.confirm_render(&request_id, Some(deadline)).await?,
            ));
        }
        if job.state != JobState::Received {
            tracing::info!(state = %job.state, "job is past received; stale or duplicate message");
            return Ok(SubmitOutcome::Stale);
        }
        let JobSource::Render(request) = job.source.clone() else {
            tracing::error!("a received job without a render source; nothing to submit");
            return Ok(SubmitOutcome::Stale);
        };
        let lease = job.render_lease_until.filter(|t| *t > now);
        let hold = job.hold.as_ref().and_then(|h| h.until).filter(|t| *t > now);
        if lease.is_some() || hold.is_some() {
            tracing::info!(
                render_attempts = job.render_attempts,
                "a submission or a hold is pending; not due yet"
            );
            return Ok(SubmitOutcome::NotDue);
        }
        // A later item of a batch with the same source shares the first item's render.
        let job = match self.share_parent_render(job, now).await? {
            Ok(done) => return Ok(done),
            Err(job) => job,
        };
        // One unanswered create per source and range at a time (see the module docs). Held
        // across the attempt's unknown outcome, so the owner's next attempt finds its own create
        // before another job can claim it; a crashed owner's lease ends on its own.
        let lock = source_lock_name(&request);
        let owner = job.id.to_string();
        let policy = &self.settings.policy;
        let until = now.plus(policy.render_submit_lease * 2);
        if !self
            .ports
            .locks()
            .acquire_lock(&lock, &owner, now, until)
            .await?
        {
            let retry = now.plus(policy.render_poll_min);
            return self.hold_render(job, SOURCE_BUSY.into(), Some(retry)).await;
        }
        let outcome = self.submit_holding_source(job, request).await;
        if let Ok(done) = &outcome
            && !matches!(done, SubmitOutcome::Unknown { .. })
            && let Err(e) = self.ports.locks().release_lock(&lock, &owner).await
        {
            tracing::warn!(error.message = %e, "could not release the source's lease; it ends on its own");
        }
        outcome
    }

    /// A fanned-out job with its parent's render attaches to it (no create, no credit); while
    /// the parent has none yet it waits for it; when the parent ended without one (cancelled, or
    /// its create refused) or is not there, the job renders by itself (`Err` gives it back).
    async fn share_parent_render(
        &self,
        job: Job,
        now: UtcTime,
    ) -> Result<Result<SubmitOutcome, Job>, StoreError> {
        let Some(parent_id) = job.fan_out_parent.clone() else {
            return Ok(Err(job));
        };
        let parent = match self.ports.jobs().get(&parent_id).await? {
            Some(p) if p.tenant_id == job.tenant_id => p,
            _ => return Ok(Err(job)),
        };
        match parent.request_id.clone() {
            // The shared render failed: the job fails with Ssemble's reason, asking nothing more
            // of a render already known to be lost.
            Some(_) if parent.state == JobState::RenderFailed => {
                let error = parent.last_error.clone().unwrap_or_else(|| JobError {
                    code: "render_failed".into(),
                    message: "the shared render failed".into(),
                    upstream_log_id: None,
                });
                tracing::info!(parent_job_id = %parent_id, error.code = %error.code,
                    "the shared render failed; failing with its reason");
                let code = error.code.clone();
                let event = Event::RenderSubmitRejected {
                    error,
                    class: ErrorClass::Permanent,
                    retry_at: None,
                };
                Ok(Ok(match self.advance_loaded(job, &event).await? {
                    Advance::Moved(_) => SubmitOutcome::Rejected { code },
                    _ => SubmitOutcome::Stale,
                }))
            }
            Some(request_id) => {
                // A render already past rendering is confirmed at once; one still rendering
                // moves this job with its parent's (one webhook or poll for the request).
                let done = !matches!(parent.state, JobState::Received | JobState::Rendering);
                tracing::info!(parent_job_id = %parent_id, request_id = %request_id,
                    "sharing the render of the batch's first job of this source");
                Ok(Ok(self.persist_render(job, request_id, done).await?))
            }
            None if !parent.state.is_terminal() => {
                let retry = now.plus(self.settings.policy.render_poll_min);
                Ok(Ok(self
                    .hold_render(job, FAN_OUT_PENDING.into(), Some(retry))
                    .await?))
            }
            None => {
                tracing::info!(parent_job_id = %parent_id, parent_state = %parent.state,
                    "the batch's first job of this source ended without a render; rendering");
                Ok(Err(job))
            }
        }
    }

    /// Steps 2–5, with the source's lease held.
    async fn submit_holding_source(
        &self,
        job: Job,
        request: RenderRequest,
    ) -> Result<SubmitOutcome, StoreError> {
        let scope = self.settings.render.ssemble_scope.clone();
        if let Some(denied) = self.take_create_budget(&job.tenant_id).await? {
            let reason = format!("ssemble_budget:{}", denied.kind.as_str());
            return self.hold_render(job, reason, Some(denied.retry_at)).await;
        }
        let (token, token_hash) = webhook_token(self.ports.clock().random_u128());
        let started = Event::RenderSubmitStarted {
            webhook_token_hash: token_hash,
        };
        let applied = match self.advance_loaded(job, &started).await? {
            Advance::Moved(applied) => applied,
            other => {
                tracing::info!(state = ?other.job().map(|j| j.state), "attempt not recorded; stale message");
                return Ok(SubmitOutcome::Stale);
            }
        };
        let lookup_first = applied.effects.iter().find_map(|e| match e {
            Effect::SubmitRender { lookup_first } => Some(*lookup_first),
            _ => None,
        });
        let job = applied.job;
        let Some(lookup_first) = lookup_first else {
            return Ok(SubmitOutcome::Stale);
        };
        tracing::info!(
            render_attempts = job.render_attempts,
            lookup_first,
            "render attempt recorded"
        );

        if lookup_first {
            let units = self.ports.render().find_call_bound().max(1);
            if let Some(denied) = self
                .take_budgets(&scope, &SSEMBLE_LIST_BUDGETS, units)
                .await?
            {
                let reason = format!("ssemble_budget:{}", denied.kind.as_str());
                return self.hold_render(job, reason, Some(denied.retry_at)).await;
            }
            match self
                .ports
                .render()
                .find_submitted(&request, job.state_since)
                .await
            {
                Ok(Some(request_id))
                    if self.request_used_by_other(&job.id, &request_id).await? =>
                {
                    tracing::info!(request_id = %request_id, "the only match is another job's render; creating");
                }
                Ok(Some(request_id)) => {
                    tracing::info!(request_id = %request_id, "an earlier create was found; not creating again");
                    return self.persist_render(job, request_id, true).await;
                }
                Ok(None) => tracing::info!("no earlier create found; creating"),
                Err(e) if e.class == ErrorClass::NeedsUser => {
                    tracing::warn!(error.code = %e.code, error.message = %e.message, "look-up needs an operator; holding the job");
                    return self.hold_render(job, e.code.clone(), None).await;
                }
                Err(e) => {
                    tracing::warn!(error.code = %e.code, error.message = %e.message, "look-up failed; the job's next check looks again");
                    return Ok(SubmitOutcome::Unknown { code: e.code });
                }
            }
        }
        self.create_render(job, &request, &token).await
    }

    async fn create_render(
        &self,
        job: Job,
        request: &RenderRequest,
        token: &SecretString,
    ) -> Result<SubmitOutcome, StoreError> {
        let webhook_url = format!(
            "{}/webhooks/ssemble/{}.{}",
            self.settings.render.webhook_base_url.trim_end_matches('/'),
            job.id,
            token.expose_secret()
        );
        match self.ports.render().submit(request, &webhook_url).await {
            Ok(request_id) => {
                tracing::info!(request_id = %request_id, "ssemble render created");
                self.persist_render(job, request_id, false).await
            }
            Err(e) if e.outcome_unknown => {
                tracing::warn!(error.code = %e.code, error.message = %e.message,
                    "create outcome unknown; the job stays received and its next check looks first");
                Ok(SubmitOutcome::Unknown { code: e.code })
            }
            Err(e) if e.class == ErrorClass::NeedsUser => {
                // A revoked key or no credits: park visibly rather than fail every job.
                tracing::warn!(error.code = %e.code, error.message = %e.message,
                    "ssemble refused the account; holding the job for an operator");
                self.hold_render(job, e.code.clone(), e.retry_at).await
            }
            Err(e) => {
                tracing::warn!(error.code = %e.code, error.class = ?e.class, error.message = %e.message,
                    retry_at = e.retry_at.map(|t| t.to_string()), "ssemble refused the create");
                let event = Event::RenderSubmitRejected {
                    error: e.job_error(),
                    class: e.class,
                    retry_at: e.retry_at,
                };
                self.advance_loaded(job, &event).await?;
                Ok(SubmitOutcome::Rejected { code: e.code })
            }
        }
    }

    async fn hold_render(
        &self,
        job: Job,
        reason: String,
        until: Option<UtcTime>,
    ) -> Result<SubmitOutcome, StoreError> {
        tracing::info!(reason = %reason, until = until.map(|t| t.to_string()), "holding the job");
        let event = Event::Held {
            reason: reason.clone(),
            until,
        };
        self.advance_loaded(job, &event).await?;
        Ok(SubmitOutcome::Held { reason })
    }

    /// Stores the `requestId` on the job, with a few quick retries; if they all fail, the next
    /// submission (after the lease) finds the request by looking first.
    async fn persist_render(
        &self,
        job: Job,
        request_id: RequestId,
        found: bool,
    ) -> Result<SubmitOutcome, StoreError> {
        let event = Event::RenderSubmitted {
            request_id: request_id.clone(),
            found,
        };
        let mut attempt = 1;
        loop {
            match self.advance_loaded(job.clone(), &event).await {
                Ok(Advance::Moved(_)) => break,
                Ok(other) => {
                    // Cancelled (or moved on) while Ssemble was creating: the credit is spent,
                    // the job's state wins; the requestId stays in this log line for an operator.
                    tracing::warn!(request_id = %request_id, state = ?other.job().map(|j| j.state),
                        "requestId not recorded: the job moved on during the create");
                    return Ok(SubmitOutcome::Stale);
                }
                Err(e) if attempt < PERSIST_ATTEMPTS => {
                    tracing::warn!(request_id = %request_id, attempt, error.message = %e, "could not persist requestId yet; retrying");
                    self.ports
                        .clock()
                        .sleep(Duration::from_millis(100 * u64::from(attempt * attempt)))
                        .await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(request_id = %request_id, error.message = %e,
                        "could not persist requestId; the next submission looks it up first");
                    return Err(e);
                }
            }
        }
        if found {
            // The look-up may have seen it completed: confirm now rather than at the next poll.
            let deadline = self.ports.clock().now().plus(Duration::from_secs(10));
            if let Confirmed::Deferred { reason, .. } =
                self.confirm_render(&request_id, Some(deadline)).await?
            {
                tracing::info!(reason = %reason, "found request not confirmed yet; its poll will");
            }
        }
        Ok(SubmitOutcome::Submitted { request_id, found })
    }

    /// Asks Ssemble for a render's state (status, then the document once completed, each call
    /// charged to the key's budget first) and offers it to every job that follows the render.
    /// Stops moving jobs at `deadline`; the rest keep their polls.
    pub async fn confirm_render(
        &self,
        request_id: &RequestId,
        deadline: Option<UtcTime>,
    ) -> Result<Confirmed, StoreError> {
        self.confirm_render_from(request_id, deadline, false).await
    }

    /// [`Core::confirm_render`]; `document_first` when a webhook says the render completed:
    /// the document alone then confirms it (one call instead of status + document), and only
    /// a document that is not complete yet falls back to the status.
    async fn confirm_render_from(
        &self,
        request_id: &RequestId,
        deadline: Option<UtcTime>,
        document_first: bool,
    ) -> Result<Confirmed, StoreError> {
        let status = match self.ask_render(request_id, document_first).await? {
            Asked::Deferred { until, reason } => return Ok(Confirmed::Deferred { until, reason }),
            Asked::Refused(e) => {
                tracing::warn!(request_id = %request_id, error.code = %e.code, "Ssemble refused the request; its jobs fail");
                let event = |_: &Job| Event::RenderFailed {
                    request_id: request_id.clone(),
                    error: e.job_error(),
                };
                let (jobs, _) = self.fan_out(request_id, deadline, event).await?;
                return Ok(Confirmed::Refused { code: e.code, jobs });
            }
            Asked::Status(status) => status,
        };
        tracing::info!(request_id = %request_id, status = status_name(&status), "render status confirmed");
        let (jobs, moved) = self
            .fan_out(request_id, deadline, |job| {
                event_for(&status, &job.post.clip, request_id)
            })
            .await?;
        Ok(Confirmed::Answered {
            status,
            jobs,
            moved,
        })
    }

    /// One Ssemble read (status or document) taken from the key's budgets; `Some` is the wait
    /// when they refuse.
    async fn take_read_budget(&self) -> Result<Option<Asked>, StoreError> {
        let scope = &self.settings.render.ssemble_scope;
        Ok(self
            .take_budgets(scope, &SSEMBLE_STATUS_BUDGETS, 1)
            .await?
            .map(|denied| Asked::Deferred {
                until: denied.retry_at,
                reason: format!("ssemble_budget:{}", denied.kind.as_str()),
            }))
    }

    async fn ask_render(
        &self,
        request_id: &RequestId,
        document_first: bool,
    ) -> Result<Asked, StoreError> {
        let deferred = |e: &UpstreamError, now: UtcTime| Asked::Deferred {
            until: e
                .retry_at
                .unwrap_or_else(|| now.plus(self.settings.policy.render_poll_min)),
            reason: format!("ssemble_unavailable:{}", e.code),
        };
        if let Some(wait) = self.take_read_budget().await? {
            return Ok(wait);
        }
        let render = self.ports.render();
        if document_first {
            match render.render_clips(request_id).await {
                Ok(Some(clips)) => return Ok(Asked::Status(RenderStatus::Completed { clips })),
                Ok(None) => {
                    tracing::info!(request_id = %request_id, "the document is not complete; asking the status");
                    if let Some(wait) = self.take_read_budget().await? {
                        return Ok(wait);
                    }
                }
                Err(e) if e.class == ErrorClass::Permanent => return Ok(Asked::Refused(e)),
                Err(e) => return Ok(deferred(&e, self.ports.clock().now())),
            }
        }
        let progress = match render.render_progress(request_id).await {
            Ok(p) => p,
            Err(e) if e.class == ErrorClass::Permanent => return Ok(Asked::Refused(e)),
            Err(e) => return Ok(deferred(&e, self.ports.clock().now())),
        };
        let status = match progress {
            RenderProgress::Pending => RenderStatus::Pending,
            RenderProgress::Failed { reason } => RenderStatus::Failed { reason },
            RenderProgress::Cancelled => RenderStatus::Cancelled,
            RenderProgress::Completed => {
                if let Some(wait) = self.take_read_budget().await? {
                    return Ok(wait);
                }
                match render.render_clips(request_id).await {
                    Ok(Some(clips)) => RenderStatus::Completed { clips },
                    // The document lags the status: not yet safe to choose a clip from it.
                    Ok(None) => RenderStatus::Pending,
                    Err(e) if e.class == ErrorClass::Permanent => return Ok(Asked::Refused(e)),
                    Err(e) => return Ok(deferred(&e, self.ports.clock().now())),
                }
            }
        };
        Ok(Asked::Status(status))
    }

    /// Offers each job of the render its event; returns (jobs, moved).
    async fn fan_out(
        &self,
        request_id: &RequestId,
        deadline: Option<UtcTime>,
        event: impl Fn(&Job) -> Event,
    ) -> Result<(usize, usize), StoreError> {
        let ids = self.ports.jobs().jobs_for_request(request_id).await?;
        let mut moved = 0;
        for id in &ids {
            if deadline.is_some_and(|d| self.ports.clock().now() >= d) {
                tracing::warn!(request_id = %request_id, "confirmation passed its deadline; the remaining jobs keep their polls");
                break;
            }
            let Some(job) = self.ports.jobs().get(id).await? else {
                continue;
            };
            let e = event(&job);
            if self.advance_loaded(job, &e).await?.moved() {
                moved += 1;
            }
        }
        Ok((ids.len(), moved))
    }

    /// A Ssemble webhook for `job_id`, authenticated by `token` (one of the job's own), with
    /// what its payload claims. The payload is only a hint: the render's state comes from
    /// Ssemble itself, within `deadline`.
    pub async fn render_hint(
        &self,
        job_id: &JobId,
        token: &SecretString,
        hint: &RenderHint,
        deadline: UtcTime,
    ) -> Result<HintOutcome, StoreError> {
        let hinted = hint.request_id.as_ref();
        let Some(job) = self.ports.jobs().get(job_id).await? else {
            tracing::warn!("webhook for an unknown job");
            return Ok(HintOutcome::NotFound);
        };
        if !job.webhook_token_matches(token.expose_secret()) {
            tracing::warn!(account_id = %job.account_id, "webhook with a wrong token; nothing changed");
            return Ok(HintOutcome::NotFound);
        }
        tracing::Span::current().record("account_id", tracing::field::display(&job.account_id));
        let Some(request_id) = job.request_id.clone() else {
            tracing::info!(
                "webhook before the job's requestId is known; left to the submission's look-up"
            );
            return Ok(HintOutcome::PendingSubmission);
        };
        tracing::Span::current().record("request_id", tracing::field::display(&request_id));
        if hinted.is_some_and(|h| h != &request_id) {
            tracing::warn!(
                hinted = hinted.map(|h| h.as_str()),
                "webhook names another request; nothing changed"
            );
            return Ok(HintOutcome::OtherRequest);
        }
        if job.state != JobState::Rendering {
            tracing::info!(state = %job.state, "render already settled for this job; duplicate or late delivery");
            return Ok(HintOutcome::AlreadySettled);
        }
        match self
            .confirm_render_from(&request_id, Some(deadline), hint.completed)
            .await?
        {
            Confirmed::Deferred { until, reason } => {
                tracing::info!(reason = %reason, until = %until, "could not confirm now; the job's poll confirms later");
                self.advance_loaded(job, &Event::Deferred { until }).await?;
                Ok(HintOutcome::Deferred)
            }
            Confirmed::Answered { status, moved, .. } => Ok(match status {
                RenderStatus::Completed { .. } => HintOutcome::Confirmed {
                    rendered: moved,
                    failed: 0,
                },
                RenderStatus::Failed { .. } | RenderStatus::Cancelled => HintOutcome::Confirmed {
                    rendered: 0,
                    failed: moved,
                },
                RenderStatus::Pending => HintOutcome::Confirmed {
                    rendered: 0,
                    failed: 0,
                },
            }),
            Confirmed::Refused { jobs, .. } => Ok(HintOutcome::Confirmed {
                rendered: 0,
                failed: jobs,
            }),
        }
    }
}

fn status_name(status: &RenderStatus) -> &'static str {
    match status {
        RenderStatus::Pending => "pending",
        RenderStatus::Completed { .. } => "completed",
        RenderStatus::Failed { .. } => "failed",
        RenderStatus::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssembles_failure_reason_becomes_its_code() {
        assert_eq!(
            failure_code("Video download failed: URL returned 403 Forbidden"),
            "video_download_failed"
        );
        assert_eq!(
            failure_code("No speech detected in the selected range"),
            "no_speech_detected_in_the_selected_range"
        );
        assert_eq!(failure_code(""), "render_failed");
        assert_eq!(failure_code("  --  "), "render_failed");
    }
}
