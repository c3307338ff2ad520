//! Publisher: consumes the publish FIFO queue (group = account) and makes at most one TikTok init
//! per publish attempt.
//!
//! Order per job, each step's reason:
//! 1. Re-read the job; anything but `publish_queued` is a stale or duplicate message (acknowledged):
//!    a redelivery after a crash finds the job past `publish_queued` and never inits again.
//! 2. A schedule still ahead, or an account blocked for a short while, delays the record (its
//!    FIFO group waits; other accounts flow). Longer waits hold the job and acknowledge.
//! 3. Budgets (creator_info, init, daily posts or pending drafts) are taken before TikTok is
//!    asked, so TikTok never has to answer 429; the init's right before the attempt record.
//! 4. A fresh token, creator_info and the compliance checks: a post that can never go as asked
//!    fails with no init at all.
//! 5. `PublishStarted` is written before the init; only the writer that wins calls TikTok, once.
//! 6. The `publish_id` is stored at once, before any byte moves; an init whose outcome is unknown
//!    goes to `publish_unknown` and is never re-sent automatically.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use reelay_aws::{
    ConfigError, DynamoAccountStore, DynamoJobStore, FailureScope, FifoBatchProcessor,
    RecordFailure, SecretCache, SecretsManagerTokenVault, SqsWorkQueue, SystemClock, TokenError,
    TokenRefreshConfig, env_var, env_var_opt, fresh_token, limits_from_env, load_sdk_config,
};
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::budget::{BudgetKind, Limits};
use reelay_domain::compliance;
use reelay_domain::job::{JobError, PostMode};
use reelay_domain::lifecycle::{Effect, ErrorClass, Event, JobState, Policy};
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{
    AccountStore, Clock, JobStore, SecretError, StoreError, TokenRefresher, TokenSet, TokenVault,
    WorkQueue,
};
use reelay_domain::upstream::{PublishApi, PublishInit, UpstreamError};
use reelay_domain::usecase::{self, Advance};
use reelay_domain::{AccountId, Applied, Job, JobId, TenantId, UtcTime};
use reelay_tiktok::{API_VERSION, TikTokClient, TikTokConfig, TikTokPort};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use tracing::{Instrument, Span, error, info, info_span, warn};

/// Attempts to store what TikTok answered before giving up to the lease (crash-equivalent).
const RECORD_ATTEMPTS: u32 = 3;

/// Timing knobs of the publisher; every figure is configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Waits up to this long are spent with the record failed and its group delayed; longer
    /// ones hold the job (back to `ready`) and acknowledge.
    pub group_delay_cap: Duration,
    /// How long an account is blocked after a daily cap (`spam_risk_too_many_posts`, …).
    pub cap_wait: Duration,
    /// How long an account is blocked after `rate_limit_exceeded` (TikTok sends no reset).
    pub rate_limit_wait: Duration,
    /// Back-off of a hold after a transient failure before the init (clip origin, TikTok 5xx).
    pub transient_wait: Duration,
    pub token: TokenRefreshConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            group_delay_cap: Duration::from_secs(60),
            cap_wait: Duration::from_secs(24 * 3600),
            rate_limit_wait: Duration::from_secs(60),
            transient_wait: Duration::from_secs(60),
            token: TokenRefreshConfig::default(),
        }
    }
}

/// What the publisher needs, built once per cold start. `P` talks to TikTok's posting API, `R`
/// to its token endpoint (both [`TikTokPort`] in production).
#[derive(Debug)]
pub struct Deps<J, A, Q, C, V, R, P> {
    pub jobs: J,
    pub accounts: A,
    pub queue: Q,
    pub clock: C,
    pub vault: V,
    pub refresher: R,
    pub tiktok: P,
    pub batches: FifoBatchProcessor,
    pub policy: Policy,
    pub limits: Limits,
    pub settings: Settings,
}

/// The production dependencies.
pub type LiveDeps = Deps<
    DynamoJobStore,
    DynamoAccountStore,
    SqsWorkQueue,
    SystemClock,
    SecretsManagerTokenVault,
    TikTokPort,
    TikTokPort,
>;

/// Environment of the function (template.yaml `PublisherFunction`), read once per cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub publish_queue_url: String,
    pub tiktok_app_secret_id: String,
    pub tiktok_token_secret_prefix: String,
    pub tiktok_api_base_url: String,
    /// Optional `TIKTOK_PULL_PREFIX`: a verified URL prefix TikTok may pull clips from.
    pub tiktok_pull_prefix: Option<String>,
    /// `PUBLISH_SCHEDULE_SLEEP_SECS`: a job due this soon is waited for in-process, not re-delayed.
    pub schedule_sleep: Duration,
    pub settings: Settings,
}

fn secs_var(name: &'static str) -> Result<Option<Duration>, ConfigError> {
    env_var_opt(name)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|e| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                })
        })
        .transpose()
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        if let Some(d) = secs_var("PUBLISH_GROUP_DELAY_CAP_SECS")? {
            settings.group_delay_cap = d;
        }
        if let Some(d) = secs_var("PUBLISH_CAP_WAIT_SECS")? {
            settings.cap_wait = d;
        }
        if let Some(d) = secs_var("PUBLISH_RATE_LIMIT_WAIT_SECS")? {
            settings.rate_limit_wait = d;
        }
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            publish_queue_url: env_var("PUBLISH_QUEUE_URL")?,
            tiktok_app_secret_id: env_var("TIKTOK_APP_SECRET_ID")?,
            tiktok_token_secret_prefix: env_var("TIKTOK_TOKEN_SECRET_PREFIX")?,
            tiktok_api_base_url: env_var("TIKTOK_API_BASE_URL")?,
            tiktok_pull_prefix: env_var_opt("TIKTOK_PULL_PREFIX"),
            schedule_sleep: secs_var("PUBLISH_SCHEDULE_SLEEP_SECS")?
                .unwrap_or(reelay_aws::DEFAULT_SCHEDULE_SLEEP),
            settings,
        })
    }
}

/// Why the function could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("TikTok app secret: {0}")]
    Secret(#[from] SecretError),
    #[error("TikTok client: {0}")]
    TikTok(#[from] reelay_tiktok::TikTokError),
}

/// Builds the production dependencies from the environment (one SDK config, clients built once).
/// A local runner reuses it with the same variables.
pub async fn live_deps() -> Result<LiveDeps, StartError> {
    let config = Config::from_env()?;
    let sdk = load_sdk_config().await;
    let app = SecretCache::from_sdk(&sdk, Duration::from_secs(300))
        .tiktok_app(&config.tiktok_app_secret_id)
        .await?;
    // The publisher never redirects a browser; the redirect URI is only needed by OAuth flows.
    let tiktok_config = TikTokConfig::new(
        app.client_key.clone(),
        app.client_secret.clone(),
        env_var_opt("TIKTOK_REDIRECT_URI").unwrap_or_default(),
    )
    .with_base_url(&config.tiktok_api_base_url);
    let mut port = TikTokPort::new(TikTokClient::new(tiktok_config)?);
    if let Some(prefix) = &config.tiktok_pull_prefix {
        port = port.with_pull_prefix(prefix.clone());
    }
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    Ok(Deps {
        jobs: DynamoJobStore::new(dynamo.clone(), &config.table_name),
        accounts: DynamoAccountStore::new(dynamo, &config.table_name),
        queue: SqsWorkQueue::new(sqs.clone(), None, Some(config.publish_queue_url.clone())),
        clock: SystemClock,
        vault: SecretsManagerTokenVault::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            &config.tiktok_token_secret_prefix,
        ),
        refresher: port.clone(),
        tiktok: port,
        // A delayed account must not hold back the other accounts of the same batch.
        batches: FifoBatchProcessor::new(sqs, &config.publish_queue_url)
            .with_scope(FailureScope::RestOfGroup)
            .with_schedule_sleep(config.schedule_sleep),
        policy: Policy::default(),
        limits: limits_from_env()?,
        settings: config.settings,
    })
}

/// What handling one message did (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The job is gone or past `publish_queued`: a stale or duplicate message.
    Stale,
    /// Held (account, cap, budget, creator) until the job's next check.
    Held { reason: String },
    /// The post can never go as asked; failed with no init.
    PreflightFailed { code: String },
    /// Another consumer won the attempt record.
    LostRace,
    /// TikTok accepted; the bytes went (or TikTok pulls them).
    Accepted { publish_id: String, uploaded: bool },
    /// TikTok refused the init definitively.
    Rejected { code: String },
    /// The init's outcome is unknown: reconciled later, never re-sent.
    Unknown { code: String },
    /// Something after the init could not be recorded; the lease will mark the job unknown.
    Unrecorded,
}

/// The Lambda entry point: FIFO batch in, partial batch failures out.
pub async fn function_handler<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    event: SqsEvent,
) -> SqsBatchResponse
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    V: TokenVault,
    R: TokenRefresher,
    P: PublishApi,
{
    deps.batches
        .process(event, |message, meta| {
            let span = info_span!("publish", job_id = %message.job_id,
                account_id = %message.account_id, message_id = %meta.message_id,
                receive_count = meta.receive_count, publish_id = tracing::field::Empty,
                attempt = tracing::field::Empty, api_version = API_VERSION);
            handle(deps, message).instrument(span)
        })
        .await
}

async fn handle<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    message: WorkMessage,
) -> Result<(), RecordFailure>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    V: TokenVault,
    R: TokenRefresher,
    P: PublishApi,
{
    if message.kind != QueueKind::Publish {
        warn!(kind = ?message.kind, "render message on the publish queue");
        return Err(RecordFailure::new("wrong_queue"));
    }
    let outcome = publish_job(deps, &message.job_id).await?;
    info!(outcome = ?outcome, "publish message handled");
    Ok(())
}

fn store_failure(e: &StoreError) -> RecordFailure {
    warn!(error.message = %e, "store failed before the init; the message will be redelivered");
    RecordFailure::new("store_unavailable")
}

/// A wait: short ones delay the account's group; long ones become a hold.
enum Wait {
    Delay(RecordFailure),
    Hold(Outcome),
}

/// Handles one publish message for `id`. `Err` fails the record (its group waits and retries).
pub async fn publish_job<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    id: &JobId,
) -> Result<Outcome, RecordFailure>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    V: TokenVault,
    R: TokenRefresher,
    P: PublishApi,
{
    let Some(job) = deps.jobs.get(id).await.map_err(|e| store_failure(&e))? else {
        return Ok(Outcome::Stale);
    };
    if job.state != JobState::PublishQueued {
        return Ok(Outcome::Stale);
    }
    let now = deps.clock.now();
    if job.schedule_at > now {
        // The reconciler enqueues up to its lookahead early: the group waits exactly the
        // remainder, never jittered late (the batch processor waits the last seconds in-process);
        // a message that came far too early holds the job until its time instead.
        let remaining = job.schedule_at.since(now);
        if remaining <= deps.settings.group_delay_cap {
            info!(
                reason = "not_due_yet",
                delay_ms = remaining.as_millis() as u64,
                "account's group waits for the schedule"
            );
            return Err(RecordFailure::until_schedule("not_due_yet", remaining));
        }
        let at = job.schedule_at;
        return hold(deps, job, "not_due_yet", Some(at)).await;
    }
    let (tenant, account_id) = (job.tenant_id.clone(), job.account_id.clone());
    let account = deps
        .accounts
        .get_account(&tenant, &account_id)
        .await
        .map_err(|e| store_failure(&e))?;
    let Some(account) = account else {
        return hold(deps, job, "account_not_found", None).await;
    };
    if account.health != AccountHealth::Active {
        let reason = account
            .health_reason
            .clone()
            .unwrap_or_else(|| health_str(account.health).to_owned());
        return hold(deps, job, &reason, None).await;
    }
    if let Some(until) = account.blocked_until.filter(|t| *t > now) {
        return wait(deps, job, "account_blocked", until).await;
    }
    let scope = Account::message_group(&tenant, &account_id);

    // creator_info (scope video.publish), with a token fresh enough for the whole attempt. An
    // account connected for drafts only grants video.upload: its drafts go without it (the
    // creator chooses privacy and interactions in the app), its direct posts cannot go at all.
    let can_query_creator = account.scopes.iter().any(|s| s == "video.publish");
    if !can_query_creator && job.post.mode == PostMode::Direct {
        return hold(deps, job, "scope_not_authorized", None).await;
    }
    let mut token = match token(deps, &tenant, &account_id, None).await {
        Ok(t) => t,
        Err(w) => return finish_wait(deps, job, w).await,
    };
    let creator = if can_query_creator {
        if let Some(until) = take(deps, &scope, &[BudgetKind::TikTokCreatorInfo]).await? {
            return wait(deps, job, "creator_info_budget", until).await;
        }
        let creator = match deps.tiktok.creator_info(&token).await {
            Err(e) if e.class == ErrorClass::RefreshThenRetry => {
                token = match token_after_rejection(deps, &tenant, &account_id, &token).await {
                    Ok(t) => t,
                    Err(w) => return finish_wait(deps, job, w).await,
                };
                if let Some(until) = take(deps, &scope, &[BudgetKind::TikTokCreatorInfo]).await? {
                    return wait(deps, job, "creator_info_budget", until).await;
                }
                deps.tiktok.creator_info(&token).await
            }
            other => other,
        };
        let creator = match creator {
            Ok(c) => c,
            Err(e) => return upstream_before_init(deps, job, &e).await,
        };
        if let Some(reason) = &creator.cannot_post_reason {
            if reason == "spam_risk_user_banned_from_posting" {
                set_health(deps, &tenant, &account_id, AccountHealth::Banned, reason).await;
            } else {
                block(
                    deps,
                    &tenant,
                    &account_id,
                    now.plus(deps.settings.cap_wait),
                    reason,
                )
                .await;
            }
            let until = now.plus(deps.settings.cap_wait);
            return hold(deps, job, reason, Some(until)).await;
        }
        Some(creator)
    } else {
        None
    };
    let Some(clip) = job.clip.clone() else {
        let error = job_error("no_clip", "the job has no rendered clip to post".into());
        return preflight_failed(deps, job, error).await;
    };
    let violations = creator
        .as_ref()
        .map(|c| compliance::check(&job.post, clip.duration_secs, c))
        .unwrap_or_default();
    if !violations.is_empty() {
        let message = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect::<Vec<_>>()
            .join("; ");
        return preflight_failed(deps, job, job_error("preflight_failed", message)).await;
    }

    // The clip's size, then the init's budgets, then the attempt record and at once the init:
    // TikTok counts an init when it arrives, so the take is stamped as close to the send as the
    // commit point allows (only its conditional write lies between; `Limits::window_margin`
    // covers that). A denied take still comes before the attempt record, so nothing is owed.
    let video_size = match deps.tiktok.clip_size(&clip).await {
        Ok(n) => n,
        Err(e) => {
            warn!(error.code = %e.code, error.message = %e, "clip origin unavailable");
            let until = now.plus(deps.settings.transient_wait);
            return hold(deps, job, "clip_unavailable", Some(until)).await;
        }
    };
    let cap = match job.post.mode {
        PostMode::Direct => BudgetKind::DirectPostsDaily,
        PostMode::Draft => BudgetKind::PendingDrafts,
    };
    if let Some(until) = take(deps, &scope, &[BudgetKind::TikTokInit, cap]).await? {
        return wait(deps, job, cap_reason(cap), until).await;
    }
    let started = usecase::advance_loaded(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        job,
        &Event::PublishStarted,
    )
    .await
    .map_err(|e| store_failure(&e))?;
    let applied = match started {
        Advance::Moved(applied)
            if applied
                .effects
                .iter()
                .any(|e| matches!(e, Effect::InitPublish { .. })) =>
        {
            applied
        }
        // Another consumer (or a concurrent cancel) moved the job first: nothing to send.
        _ => return Ok(Outcome::LostRace),
    };
    Span::current().record("attempt", applied.job.attempt);

    // The commit point has been written: from here the init is sent exactly once.
    let init = deps
        .tiktok
        .init(&token, &applied.job.post, &clip, video_size)
        .await;
    let init = match init {
        Err(e) if e.class == ErrorClass::RefreshThenRetry && !e.outcome_unknown => {
            // TikTok definitively refused the token, so no post exists: one refresh, one retry.
            info!(error.code = %e.code, upstream_log_id = e.log_id.as_deref(), "init refused the token; refreshing once");
            match token_after_rejection(deps, &tenant, &account_id, &token).await {
                Ok(fresh) => match take(deps, &scope, &[BudgetKind::TikTokInit]).await {
                    Ok(None) => {
                        deps.tiktok
                            .init(&fresh, &applied.job.post, &clip, video_size)
                            .await
                    }
                    Ok(Some(until)) => Err(UpstreamError {
                        retry_at: Some(until),
                        ..e
                    }),
                    Err(_) => Err(e),
                },
                // The refresh token is dead: only the creator can reconnect.
                Err(Wait::Hold(_)) => Err(UpstreamError {
                    class: ErrorClass::NeedsUser,
                    ..e
                }),
                Err(Wait::Delay(_)) => Err(e),
            }
        }
        other => other,
    };
    match init {
        Ok(init) => accepted(deps, *applied, init, &clip, video_size).await,
        Err(e) => Ok(init_failed(deps, *applied, e).await),
    }
}

fn cap_reason(kind: BudgetKind) -> &'static str {
    match kind {
        BudgetKind::DirectPostsDaily => "direct_posts_daily_budget",
        BudgetKind::PendingDrafts => "pending_drafts_budget",
        _ => "init_budget",
    }
}

fn health_str(h: AccountHealth) -> &'static str {
    match h {
        AccountHealth::Active => "active",
        AccountHealth::NeedsReauth => "needs_reauth",
        AccountHealth::Banned => "banned",
    }
}

fn job_error(code: &str, message: String) -> JobError {
    JobError {
        code: code.into(),
        message,
        upstream_log_id: None,
    }
}

async fn take<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    scope: &str,
    kinds: &[BudgetKind],
) -> Result<Option<UtcTime>, RecordFailure>
where
    A: AccountStore,
    C: Clock,
{
    usecase::take_budgets(&deps.accounts, scope, kinds, &deps.limits, deps.clock.now())
        .await
        .map_err(|e| store_failure(&e))
}

/// Waits until `until`: by delaying the group when short, by a hold when long.
async fn wait<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    job: Job,
    reason: &str,
    until: UtcTime,
) -> Result<Outcome, RecordFailure>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    let remaining = until.since(deps.clock.now());
    if remaining <= deps.settings.group_delay_cap {
        info!(
            reason,
            delay_ms = remaining.as_millis() as u64,
            "account's group waits"
        );
        return Err(RecordFailure::retry_after(reason, remaining));
    }
    hold(deps, job, reason, Some(until)).await
}

async fn finish_wait<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    job: Job,
    w: Wait,
) -> Result<Outcome, RecordFailure>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    match w {
        Wait::Delay(f) => Err(f),
        Wait::Hold(Outcome::Held { reason }) => hold(deps, job, &reason, None).await,
        Wait::Hold(other) => Ok(other),
    }
}

/// Parks the job (back to `ready`) with a reason; the reconciler re-enqueues it at `until`.
async fn hold<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    job: Job,
    reason: &str,
    until: Option<UtcTime>,
) -> Result<Outcome, RecordFailure>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    let event = Event::Held {
        reason: reason.to_owned(),
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
    .await
    .map_err(|e| store_failure(&e))?;
    info!(reason, until = ?until.map(|t| t.to_string()), "job held");
    Ok(Outcome::Held {
        reason: reason.to_owned(),
    })
}

async fn preflight_failed<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    job: Job,
    error: JobError,
) -> Result<Outcome, RecordFailure>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    warn!(error.code = %error.code, error.message = %error.message, "preflight failed; no init");
    let code = error.code.clone();
    usecase::advance_loaded(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        job,
        &Event::PreflightFailed { error },
    )
    .await
    .map_err(|e| store_failure(&e))?;
    Ok(Outcome::PreflightFailed { code })
}

/// A creator_info failure: nothing was posted, so the job waits or is held.
async fn upstream_before_init<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    job: Job,
    e: &UpstreamError,
) -> Result<Outcome, RecordFailure>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
{
    warn!(error.code = %e.code, upstream_log_id = e.log_id.as_deref(), error.message = %e, "creator_info failed");
    let now = deps.clock.now();
    let (tenant, account) = (job.tenant_id.clone(), job.account_id.clone());
    match e.class {
        _ if e.code == "rate_limit_exceeded" => {
            let until = now.plus(deps.settings.rate_limit_wait);
            block(deps, &tenant, &account, until, &e.code).await;
            wait(deps, job, &e.code, until).await
        }
        ErrorClass::NeedsUser | ErrorClass::RefreshThenRetry => {
            set_health(deps, &tenant, &account, AccountHealth::NeedsReauth, &e.code).await;
            hold(deps, job, "needs_reauth", None).await
        }
        ErrorClass::WaitForWindow => {
            let until = now.plus(deps.settings.cap_wait);
            block(deps, &tenant, &account, until, &e.code).await;
            hold(deps, job, &e.code, Some(until)).await
        }
        ErrorClass::Retryable => {
            let until = e
                .retry_at
                .unwrap_or_else(|| now.plus(deps.settings.transient_wait));
            wait(deps, job, &e.code, until).await
        }
        ErrorClass::Permanent => hold(deps, job, &e.code, None).await,
    }
}

async fn block<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    tenant: &TenantId,
    account: &AccountId,
    until: UtcTime,
    reason: &str,
) where
    A: AccountStore,
{
    if let Err(e) = deps
        .accounts
        .block_until(tenant, account, until, reason)
        .await
    {
        warn!(error.message = %e, reason, "could not block the account; its budget still paces it");
    } else {
        info!(reason, until = %until, "account blocked");
    }
}

async fn set_health<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    tenant: &TenantId,
    account: &AccountId,
    health: AccountHealth,
    reason: &str,
) where
    A: AccountStore,
{
    if let Err(e) = deps
        .accounts
        .set_health(tenant, account, health, Some(reason))
        .await
    {
        warn!(error.message = %e, reason, "could not record the account's health");
    } else {
        info!(
            reason,
            health = health_str(health),
            "account health changed"
        );
    }
}

/// A fresh access token, or what to do without one.
async fn token<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    tenant: &TenantId,
    account: &AccountId,
    rejected: Option<&SecretString>,
) -> Result<SecretString, Wait>
where
    A: AccountStore,
    C: Clock,
    V: TokenVault,
    R: TokenRefresher,
{
    let vault = RejectedTokenVault {
        inner: &deps.vault,
        rejected,
    };
    match fresh_token(
        &deps.accounts,
        &vault,
        &deps.refresher,
        &deps.clock,
        tenant,
        account,
        &deps.settings.token,
    )
    .await
    {
        Ok(t) => Ok(t),
        Err(TokenError::NotConnected | TokenError::NeedsReauth) => {
            set_health(
                deps,
                tenant,
                account,
                AccountHealth::NeedsReauth,
                "needs_reauth",
            )
            .await;
            Err(Wait::Hold(Outcome::Held {
                reason: "needs_reauth".into(),
            }))
        }
        Err(e) => {
            warn!(error.message = %e, "no fresh token now; the account's group waits");
            Err(Wait::Delay(RecordFailure::retry_after(
                "token_unavailable",
                Duration::from_secs(30),
            )))
        }
    }
}

/// Forces one refresh of a token TikTok has just refused (unless another task already did).
async fn token_after_rejection<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    tenant: &TenantId,
    account: &AccountId,
    rejected: &SecretString,
) -> Result<SecretString, Wait>
where
    A: AccountStore,
    C: Clock,
    V: TokenVault,
    R: TokenRefresher,
{
    token(deps, tenant, account, Some(rejected)).await
}

/// Presents the access token TikTok refused as expired, so `fresh_token` refreshes it under the
/// account's lock — and, if another task already rotated it, returns the new one instead.
/// (reelay-aws has no "force refresh"; this keeps its single-writer rule.)
struct RejectedTokenVault<'a, V> {
    inner: &'a V,
    rejected: Option<&'a SecretString>,
}

impl<V: TokenVault> TokenVault for RejectedTokenVault<'_, V> {
    fn get_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> impl Future<Output = Result<Option<TokenSet>, SecretError>> + Send {
        let rejected = self.rejected.map(|r| r.expose_secret().to_owned());
        let inner = self.inner.get_tokens(tenant, account);
        async move {
            let mut tokens = inner.await?;
            if let (Some(t), Some(r)) = (tokens.as_mut(), rejected)
                && t.access_token.expose_secret() == r
            {
                t.access_expires_at = UtcTime::from_millis(0);
            }
            Ok(tokens)
        }
    }

    fn put_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        tokens: &TokenSet,
    ) -> impl Future<Output = Result<(), SecretError>> + Send {
        self.inner.put_tokens(tenant, account, tokens)
    }
}

/// Offers an event after the init, retrying a failed write a few times. A write that still
/// fails is a crash-equivalent: the lease expiry makes the reconciler mark the job unknown.
async fn record<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    job: Job,
    event: &Event,
) -> Option<Advance>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    for round in 1..=RECORD_ATTEMPTS {
        match usecase::advance_loaded(
            &deps.jobs,
            &deps.queue,
            &deps.clock,
            &deps.policy,
            job.clone(),
            event,
        )
        .await
        {
            Ok(a) => return Some(a),
            Err(e) if round < RECORD_ATTEMPTS => {
                warn!(event = event.name(), round, error.message = %e, "could not record after the init; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(round))).await;
            }
            Err(e) => {
                error!(event = event.name(), error.message = %e, alert = "publish_unrecorded",
                    "COULD NOT RECORD WHAT TIKTOK ANSWERED; the lease expiry will mark the job publish_unknown");
            }
        }
    }
    None
}

async fn accepted<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    applied: Applied,
    init: PublishInit,
    clip: &reelay_domain::Clip,
    video_size: u64,
) -> Result<Outcome, RecordFailure>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
    P: PublishApi,
{
    let publish_id = init.publish_id.to_string();
    Span::current().record("publish_id", publish_id.as_str());
    info!(
        upstream_log_id = init.log_id.as_deref(),
        upload = init.upload_url.is_some(),
        "TikTok accepted the init"
    );
    emit_metric("PublishAccepted");
    let event = Event::PublishAccepted {
        publish_id: init.publish_id.clone(),
        upload: init.upload_url.is_some(),
        upstream_log_id: init.log_id.clone(),
    };
    let Some(stored) = record(deps, applied.job, &event).await else {
        return Ok(Outcome::Unrecorded);
    };
    let Advance::Moved(stored) = stored else {
        warn!(outcome = ?stored.job().map(|j| j.state), "publish_id not recorded: the job moved meanwhile");
        return Ok(Outcome::Unrecorded);
    };
    let (Some(url), true) = (
        init.upload_url.as_ref(),
        stored.effects.contains(&Effect::UploadBytes),
    ) else {
        return Ok(Outcome::Accepted {
            publish_id,
            uploaded: false,
        });
    };
    let (event, uploaded) = match deps.tiktok.upload(url, clip, video_size).await {
        Ok(()) => (Event::UploadCompleted, true),
        Err(e) => {
            // Never re-init: status polling and webhooks decide what became of the publish.
            warn!(error.code = %e.code, upstream_log_id = e.log_id.as_deref(), error.message = %e, "upload failed");
            (
                Event::UploadFailed {
                    error: e.job_error(),
                },
                false,
            )
        }
    };
    if record(deps, stored.job, &event).await.is_none() {
        return Ok(Outcome::Unrecorded);
    }
    Ok(Outcome::Accepted {
        publish_id,
        uploaded,
    })
}

async fn init_failed<J, A, Q, C, V, R, P>(
    deps: &Deps<J, A, Q, C, V, R, P>,
    applied: Applied,
    e: UpstreamError,
) -> Outcome
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
{
    let job = applied.job;
    let (tenant, account) = (job.tenant_id.clone(), job.account_id.clone());
    let now = deps.clock.now();
    if e.outcome_unknown {
        error!(error.code = %e.code, upstream_log_id = e.log_id.as_deref(), error.message = %e,
            "init outcome unknown: the job goes to publish_unknown and is never re-sent automatically");
        emit_metric("PublishUnknown");
        let event = Event::PublishOutcomeUnknown {
            error: e.job_error(),
        };
        return match record(deps, job, &event).await {
            Some(_) => Outcome::Unknown { code: e.code },
            None => Outcome::Unrecorded,
        };
    }
    warn!(error.code = %e.code, error.class = ?e.class, upstream_log_id = e.log_id.as_deref(), error.message = %e, "init rejected");
    emit_metric("PublishRejected");
    let retry_at = if e.code == "rate_limit_exceeded" {
        let until = now.plus(deps.settings.rate_limit_wait);
        block(deps, &tenant, &account, until, &e.code).await;
        Some(until)
    } else {
        match e.class {
            ErrorClass::WaitForWindow => {
                let until = now.plus(deps.settings.cap_wait);
                block(deps, &tenant, &account, until, &e.code).await;
                Some(until)
            }
            ErrorClass::Permanent if e.code == "spam_risk_user_banned_from_posting" => {
                set_health(deps, &tenant, &account, AccountHealth::Banned, &e.code).await;
                e.retry_at
            }
            ErrorClass::NeedsUser
                if is_scope_error(&e.code) || e.code == "access_token_invalid" =>
            {
                set_health(deps, &tenant, &account, AccountHealth::NeedsReauth, &e.code).await;
                e.retry_at
            }
            _ => e.retry_at,
        }
    };
    let event = Event::PublishRejected {
        error: e.job_error(),
        class: e.class,
        retry_at,
    };
    match record(deps, job, &event).await {
        Some(_) => Outcome::Rejected { code: e.code },
        None => Outcome::Unrecorded,
    }
}

/// The codes after which only the creator's new consent helps.
fn is_scope_error(code: &str) -> bool {
    matches!(code, "scope_not_authorized" | "scope_permission_missed")
}

/// One CloudWatch embedded-metric line (namespace `Reelay`), so an alarm can watch it.
fn emit_metric(name: &str) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    println!("{}", metric_line(name, ms));
}

/// The embedded-metric-format document for one count of `name` at `timestamp_ms`.
pub fn metric_line(name: &str, timestamp_ms: u64) -> serde_json::Value {
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Reelay",
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        "Function": "publisher",
    });
    if let Some(map) = line.as_object_mut() {
        map.insert(name.to_owned(), serde_json::Value::from(1));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_publish_is_unknown_should_print_a_metric_cloudwatch_can_read() {
        let line = metric_line("PublishUnknown", 1_780_000_000_000);
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "Reelay");
        assert_eq!(spec["Metrics"][0]["Name"], "PublishUnknown");
        // Every dimension and metric named in the spec must be a member of the document.
        assert_eq!(line["Function"], "publisher");
        assert_eq!(line["PublishUnknown"], 1);
        assert_eq!(line["_aws"]["Timestamp"], 1_780_000_000_000_u64);
    }
}
