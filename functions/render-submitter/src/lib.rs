//! Render submitter: consumes the render FIFO queue and sends each `received` job to Ssemble.
//!
//! Order per job, each step's reason:
//! 1. Re-read the job; anything but `received` is a stale or duplicate message (acknowledged).
//! 2. Take the Ssemble budget before any call, so a burst of jobs cannot overspend the account
//!    (100 requests/hour by default); a denial holds the job until the budget frees.
//! 3. Record `RenderSubmitStarted` (with the SHA-256 of a fresh webhook token) before calling
//!    Ssemble: a create has no idempotency key and costs a credit, so the job must know an
//!    attempt may exist before it can exist.
//! 4. If an earlier attempt may have landed, look for it (`find_submitted`) before creating.
//! 5. Persist the `requestId` at once; a create whose outcome is unknown leaves the job in
//!    `received`, and its next check brings it back to look first.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use reelay_aws::{ConfigError, FifoBatchProcessor, RecordFailure, env_var};
use reelay_domain::budget::{BudgetKind, Limits};
use reelay_domain::job::{JobError, RenderRequest};
use reelay_domain::lifecycle::{Effect, ErrorClass, Event, JobState, Policy};
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{AccountStore, Clock, JobStore, StoreError, WorkQueue};
use reelay_domain::upstream::{RenderApi, UpstreamError};
use reelay_domain::usecase::{self, Advance};
use reelay_domain::{Job, JobId, JobSource, RequestId, UtcTime};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::{Instrument, error, info, info_span, warn};

/// Attempts to persist a `requestId` Ssemble has just given, before leaving it to the next
/// delivery's look-up (the credit is spent either way; the look-up costs budget).
const PERSIST_ATTEMPTS: u32 = 3;

/// What the render submitter needs, built once per cold start.
#[derive(Debug)]
pub struct Deps<J, A, Q, C, R> {
    pub jobs: J,
    pub accounts: A,
    pub queue: Q,
    pub clock: C,
    pub render: R,
    pub batches: FifoBatchProcessor,
    pub policy: Policy,
    pub limits: Limits,
    /// Budget scope of the Ssemble API key: non-secret, stable ([`ssemble_budget_scope`]).
    pub budget_scope: String,
    /// Base of the webhook URL Ssemble calls back (`${PUBLIC_BASE_URL}/webhooks/ssemble/…`).
    pub public_base_url: String,
    /// Budget units a look-up may spend at most (list pages plus confirmations).
    pub find_calls: u32,
}

/// Environment of the function (template.yaml `RenderSubmitterFunction`), read once.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub render_queue_url: String,
    pub ssemble_secret_id: String,
    pub ssemble_api_base_url: String,
    pub public_base_url: String,
    pub limits: Limits,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            render_queue_url: env_var("RENDER_QUEUE_URL")?,
            ssemble_secret_id: env_var("SSEMBLE_SECRET_ID")?,
            ssemble_api_base_url: env_var("SSEMBLE_API_BASE_URL")?,
            public_base_url: env_var("PUBLIC_BASE_URL")?,
            limits: ssemble_limits_from_env()?,
        })
    }
}

pub use reelay_aws::ssemble_limits_from_env;
pub use reelay_ssemble::budget_scope as ssemble_budget_scope;

/// A fresh 128-bit webhook token (hex) and the SHA-256 (hex) the job keeps of it.
pub fn webhook_token() -> (SecretString, String) {
    let token = hex::encode(rand::random::<[u8; 16]>());
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    (SecretString::from(token), hash)
}

#[derive(Debug, Error)]
pub enum SubmitError {
    /// The store failed: the message is retried (nothing about Ssemble is lost by retrying).
    #[error("job store unavailable: {0}")]
    Store(#[from] StoreError),
}

/// What handling one message did (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The job no longer exists, or is past `received`: a stale or duplicate message.
    Stale,
    /// An earlier attempt or a hold is pending until the job's next check.
    NotDue,
    /// Held (budget, rate window, operator action) until the job's next check.
    Held { reason: String },
    /// Created (or an earlier create found) and persisted.
    Submitted { request_id: RequestId, found: bool },
    /// Ssemble refused with a definite error; recorded on the job.
    Rejected { code: String },
    /// The create's (or the look-up's) outcome is unknown; the next check looks first.
    Unknown { code: String },
}

/// The Lambda entry point: FIFO batch in, partial batch failures out.
pub async fn function_handler<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    event: SqsEvent,
) -> SqsBatchResponse
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    R: RenderApi,
{
    deps.batches
        .process(event, |message, meta| {
            let span = info_span!("render_submit", job_id = %message.job_id,
                account_id = %message.account_id, message_id = %meta.message_id,
                receive_count = meta.receive_count);
            handle(deps, message).instrument(span)
        })
        .await
}

async fn handle<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    message: WorkMessage,
) -> Result<(), RecordFailure>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    R: RenderApi,
{
    if message.kind != QueueKind::Render {
        // Not ours: fail it so it reaches the DLQ visibly instead of vanishing.
        warn!(kind = ?message.kind, "publish message on the render queue");
        return Err(RecordFailure::new("wrong_queue"));
    }
    match submit_job_for(deps, &message.job_id, Some(message.job_version)).await {
        Ok(outcome) => {
            info!(outcome = ?outcome, "render message handled");
            Ok(())
        }
        Err(e) => {
            warn!(error.message = %e, "render message failed; it will be redelivered");
            Err(RecordFailure::new("store_unavailable"))
        }
    }
}

/// Takes `units` of each of `kinds`; the first denial says which budget and until when.
async fn take_budget<A: AccountStore>(
    accounts: &A,
    scope: &str,
    limits: &Limits,
    kinds: &[BudgetKind],
    units: u32,
    now: UtcTime,
) -> Result<Option<(BudgetKind, UtcTime)>, StoreError> {
    for _ in 0..units {
        if let Some(denied) =
            usecase::take_budgets_naming(accounts, scope, kinds, limits, now).await?
        {
            return Ok(Some(denied));
        }
    }
    Ok(None)
}

/// The message was sent by the job's current version, and that version is a `submit_due`.
async fn sent_by_submit_due<J: JobStore>(
    jobs: &J,
    job: &Job,
    message_version: Option<u64>,
) -> Result<bool, StoreError> {
    if message_version != Some(job.version) {
        return Ok(false);
    }
    let trail = jobs.audit_trail(&job.id).await?;
    Ok(trail
        .iter()
        .find(|e| e.version == job.version)
        .is_some_and(|e| e.event == Event::SubmitDue.name()))
}

/// Runs one job's submission (the steps in the module docs).
pub async fn submit_job<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    job_id: &JobId,
) -> Result<Outcome, SubmitError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    R: RenderApi,
{
    submit_job_for(deps, job_id, None).await
}

/// As [`submit_job`], for a message produced at `message_version` of the job. The message the
/// reconciler's `submit_due` sent (the job's current version, and its last event) is the one the
/// job is waiting for; without this, `submit_due` moved the job within `received`, so its own
/// message looked like a duplicate and was acknowledged unhandled, at every check, forever.
pub async fn submit_job_for<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    job_id: &JobId,
    message_version: Option<u64>,
) -> Result<Outcome, SubmitError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    R: RenderApi,
{
    let now = deps.clock.now();
    let Some(job) = deps.jobs.get(job_id).await? else {
        warn!("job not found; acknowledging");
        return Ok(Outcome::Stale);
    };
    if job.state != JobState::Received {
        info!(state = %job.state, "job is past received; stale or duplicate message");
        return Ok(Outcome::Stale);
    }
    let JobSource::Render(request) = job.source.clone() else {
        error!("a received job without a render source; nothing to submit");
        return Ok(Outcome::Stale);
    };
    // Once the job has moved within `received` (an attempt started, a hold), nothing happens
    // before its next check: a duplicate message must not start a second create while the
    // first may still be landing at Ssemble.
    if job.updated_at > job.state_since
        && job.next_check.is_some_and(|c| c.at > now)
        && !sent_by_submit_due(&deps.jobs, &job, message_version).await?
    {
        info!(
            render_attempts = job.render_attempts,
            "an attempt or a hold is pending; not due yet"
        );
        return Ok(Outcome::NotDue);
    }

    let create_kinds = [
        BudgetKind::SsembleHourly,
        BudgetKind::SsembleDaily,
        BudgetKind::SsembleCreate,
    ];
    if let Some((kind, until)) = take_budget(
        &deps.accounts,
        &deps.budget_scope,
        &deps.limits,
        &create_kinds,
        1,
        now,
    )
    .await?
    {
        return hold(
            deps,
            job,
            format!("ssemble_budget:{}", kind.as_str()),
            Some(until),
        )
        .await;
    }

    let (token, token_hash) = webhook_token();
    let started = Event::RenderSubmitStarted {
        webhook_token_hash: token_hash,
    };
    let applied = match usecase::advance_loaded(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        job,
        &started,
    )
    .await?
    {
        Advance::Moved(applied) => applied,
        other => {
            info!(state = ?other.job().map(|j| j.state), "attempt not recorded; stale message");
            return Ok(Outcome::Stale);
        }
    };
    let lookup_first = applied.effects.iter().find_map(|e| match e {
        Effect::SubmitRender { lookup_first } => Some(*lookup_first),
        _ => None,
    });
    let job = applied.job;
    let Some(lookup_first) = lookup_first else {
        return Ok(Outcome::Stale);
    };
    info!(
        render_attempts = job.render_attempts,
        lookup_first, "render attempt recorded"
    );

    if lookup_first {
        let list_kinds = [
            BudgetKind::SsembleHourly,
            BudgetKind::SsembleDaily,
            BudgetKind::SsembleList,
        ];
        if let Some((kind, until)) = take_budget(
            &deps.accounts,
            &deps.budget_scope,
            &deps.limits,
            &list_kinds,
            deps.find_calls,
            deps.clock.now(),
        )
        .await?
        {
            return hold(
                deps,
                job,
                format!("ssemble_budget:{}", kind.as_str()),
                Some(until),
            )
            .await;
        }
        match deps.render.find_submitted(&request, job.created_at).await {
            Ok(Some(request_id)) => {
                info!(request_id = %request_id, "an earlier create was found; not creating again");
                return persist(deps, job, request_id, true).await;
            }
            Ok(None) => info!("no earlier create found; creating"),
            Err(e) if e.class == ErrorClass::NeedsUser => {
                warn!(error.code = %e.code, error.message = %e.message,
                    "look-up needs an operator; holding the job");
                let until = deps.clock.now().plus(deps.policy.hold_recheck);
                return hold(deps, job, e.code.clone(), Some(until)).await;
            }
            Err(e) => {
                warn!(error.code = %e.code, error.message = %e.message,
                    "look-up failed; the job's next check looks again");
                return Ok(Outcome::Unknown { code: e.code });
            }
        }
    }

    create(deps, job, &request, &token).await
}

async fn create<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    job: Job,
    request: &RenderRequest,
    token: &SecretString,
) -> Result<Outcome, SubmitError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    R: RenderApi,
{
    let webhook_url = format!(
        "{}/webhooks/ssemble/{}.{}",
        deps.public_base_url.trim_end_matches('/'),
        job.id,
        token.expose_secret()
    );
    match deps.render.submit(request, &webhook_url).await {
        Ok(request_id) => {
            info!(request_id = %request_id, "ssemble render created");
            persist(deps, job, request_id, false).await
        }
        Err(e) if e.outcome_unknown => {
            warn!(error.code = %e.code, error.message = %e.message,
                "create outcome unknown; the job stays received and its next check looks first");
            Ok(Outcome::Unknown { code: e.code })
        }
        Err(e) if e.class == ErrorClass::NeedsUser => {
            // A revoked key or no credits: park visibly rather than fail every job.
            warn!(error.code = %e.code, error.message = %e.message,
                "ssemble refused the account; holding the job for an operator");
            let until = e
                .retry_at
                .unwrap_or_else(|| deps.clock.now().plus(deps.policy.hold_recheck));
            hold(deps, job, e.code.clone(), Some(until)).await
        }
        Err(e) => reject(deps, job, e).await,
    }
}

async fn reject<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    job: Job,
    e: UpstreamError,
) -> Result<Outcome, SubmitError>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    warn!(error.code = %e.code, error.class = ?e.class, error.message = %e.message,
        retry_at = e.retry_at.map(|t| t.to_string()), "ssemble refused the create");
    let event = Event::RenderSubmitRejected {
        error: JobError {
            code: e.code.clone(),
            message: e.message.clone(),
            upstream_log_id: e.log_id.clone(),
        },
        class: e.class,
        retry_at: e.retry_at,
    };
    usecase::advance_loaded(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        job,
        &event,
    )
    .await?;
    Ok(Outcome::Rejected { code: e.code })
}

async fn hold<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    job: Job,
    reason: String,
    until: Option<UtcTime>,
) -> Result<Outcome, SubmitError>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    info!(reason = %reason, until = until.map(|t| t.to_string()), "holding the job");
    let event = Event::Held {
        reason: reason.clone(),
        until,
    };
    usecase::advance_loaded(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        job,
        &event,
    )
    .await?;
    Ok(Outcome::Held { reason })
}

/// Stores the `requestId` on the job. A few quick retries on store errors; if they all fail the
/// message fails, and its redelivery finds the request by looking first.
async fn persist<J, A, Q, C, R>(
    deps: &Deps<J, A, Q, C, R>,
    job: Job,
    request_id: RequestId,
    found: bool,
) -> Result<Outcome, SubmitError>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    let event = Event::RenderSubmitted {
        request_id: request_id.clone(),
    };
    let mut attempt = 1;
    loop {
        let result = usecase::advance_loaded(
            &deps.jobs,
            &deps.queue,
            &deps.clock,
            &deps.policy,
            job.clone(),
            &event,
        )
        .await;
        match result {
            Ok(Advance::Moved(_)) => return Ok(Outcome::Submitted { request_id, found }),
            Ok(other) => {
                // Cancelled (or moved on) while Ssemble was creating: the credit is spent, the
                // job's state wins; the requestId stays in this log line for an operator.
                warn!(request_id = %request_id, state = ?other.job().map(|j| j.state),
                    "requestId not recorded: the job moved on during the create");
                return Ok(Outcome::Stale);
            }
            Err(e) if attempt < PERSIST_ATTEMPTS => {
                warn!(request_id = %request_id, attempt, error.message = %e,
                    "could not persist requestId yet; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt * attempt))).await;
                attempt += 1;
            }
            Err(e) => {
                error!(request_id = %request_id, error.message = %e,
                    "could not persist requestId; the redelivery will look it up first");
                return Err(e.into());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn budget_scope_is_stable_and_does_not_contain_the_key() {
        let key = SecretString::from("sk_ssemble_abcdefabcdefabcdefabcdefabcdefab");
        let scope = ssemble_budget_scope(&key);
        // Pinned: the webhook function computes the same scope for the same key.
        assert_eq!(scope, "ssemble:bc3df0c968e3590b");
        assert!(!scope.contains("abcdef"));
    }

    #[test]
    fn webhook_tokens_are_128_bit_and_hashed_with_sha256() {
        let (token, hash) = webhook_token();
        let (other, _) = webhook_token();
        assert_eq!(token.expose_secret().len(), 32);
        assert_ne!(token.expose_secret(), other.expose_secret());
        assert_eq!(
            hash,
            hex::encode(Sha256::digest(token.expose_secret().as_bytes()))
        );
        assert!(!format!("{token:?}").contains(token.expose_secret()));
    }
}
