//! TikTok webhook receiver: `POST /webhooks/tiktok`.
//!
//! - The `TikTok-Signature` (HMAC-SHA256 of `t.body` with the app's client secret) and its replay
//!   window are checked over the raw bytes before anything is parsed: a missing, malformed, wrong
//!   or stale signature is a 401 and changes nothing.
//! - Deliveries are at least once and may arrive out of order: every event goes through the
//!   lifecycle table, which absorbs duplicates and never moves a publish backwards.
//! - `post.publish.*` for an unknown `publish_id` resolves the account's single `publish_unknown`
//!   job (the init that timed out did reach TikTok).
//! - `authorization.removed` marks the account `needs_reauth` and parks its pending jobs.
//! - The answer is 200 as soon as the event is recorded; a store failure is a 500 so TikTok
//!   redelivers (it retries non-200 answers for 72 h).

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use reelay_aws::{
    ConfigError, DynamoAccountStore, DynamoJobStore, SecretCache, SqsWorkQueue, SystemClock,
    env_var, env_var_opt, load_sdk_config,
};
use reelay_domain::account::AccountHealth;
use reelay_domain::lifecycle::{Event, JobState, Policy, PublishStatus, Via};
use reelay_domain::ports::{
    AccountStore, Clock, JobFilter, JobStore, SecretError, StoreError, WorkQueue,
};
use reelay_domain::usecase::{self, Advance};
use reelay_domain::{AccountId, Job, PublishId, TenantId};
use reelay_tiktok::{SignatureError, WebhookEvent, parse_webhook, verify_signature};
use secrecy::SecretString;
use serde_json::json;
use thiserror::Error;
use tracing::{Instrument, info, info_span, warn};

/// TikTok gives no replay window; 300 s is the common choice.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(300);
/// Webhook bodies are small JSON envelopes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Jobs parked per state and page when an authorisation is removed.
const PAGE: u32 = 100;

/// Finds the connected account behind a TikTok `open_id` (webhooks name the user, not the account).
pub trait OpenIdDirectory: Send + Sync {
    fn account_for_open_id(
        &self,
        open_id: &str,
    ) -> impl Future<Output = Result<Option<(TenantId, AccountId)>, StoreError>> + Send;
}

/// The directory over the single table's account items. The store has no `open_id` index, so
/// this scans account items (`t = account`): its cost grows with the table until one is added.
#[derive(Debug, Clone)]
pub struct DynamoOpenIdDirectory {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoOpenIdDirectory {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl OpenIdDirectory for DynamoOpenIdDirectory {
    async fn account_for_open_id(
        &self,
        open_id: &str,
    ) -> Result<Option<(TenantId, AccountId)>, StoreError> {
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#t = :account AND open_id = :o")
                .expression_attribute_names("#t", "t")
                .expression_attribute_values(":account", AttributeValue::S("account".into()))
                .expression_attribute_values(":o", AttributeValue::S(open_id.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
            for item in out.items() {
                let get = |k: &str| item.get(k).and_then(|v| v.as_s().ok());
                if let (Some(t), Some(a)) = (get("tenant"), get("account")) {
                    let tenant = TenantId::parse(t.as_str())
                        .map_err(|_| StoreError::Corrupt("account item: tenant".into()))?;
                    let account = AccountId::parse(a.as_str())
                        .map_err(|_| StoreError::Corrupt("account item: account".into()))?;
                    return Ok(Some((tenant, account)));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(None),
            }
        }
    }
}

/// What the receiver needs, built once per cold start.
#[derive(Debug)]
pub struct Deps<J, A, Q, C, D> {
    pub jobs: J,
    pub accounts: A,
    pub queue: Q,
    pub clock: C,
    pub directory: D,
    pub policy: Policy,
    /// The app's client secret: the HMAC key of `TikTok-Signature`.
    pub client_secret: SecretString,
    pub replay_window: Duration,
    pub max_body_bytes: usize,
}

pub type LiveDeps =
    Deps<DynamoJobStore, DynamoAccountStore, SqsWorkQueue, SystemClock, DynamoOpenIdDirectory>;

/// Environment of the function (template.yaml `TikTokWebhookFunction`), read once.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub tiktok_app_secret_id: String,
    pub replay_window: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let replay_window = match env_var_opt("TIKTOK_WEBHOOK_REPLAY_WINDOW_SECS") {
            Some(v) => {
                Duration::from_secs(v.trim().parse::<u64>().map_err(|e| ConfigError::Invalid {
                    name: "TIKTOK_WEBHOOK_REPLAY_WINDOW_SECS",
                    reason: e.to_string(),
                })?)
            }
            None => DEFAULT_REPLAY_WINDOW,
        };
        Ok(Self {
            table_name: env_var("TABLE_NAME")?,
            tiktok_app_secret_id: env_var("TIKTOK_APP_SECRET_ID")?,
            replay_window,
        })
    }
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("TikTok app secret: {0}")]
    Secret(#[from] SecretError),
}

/// Builds the production dependencies from the environment; a local runner reuses it.
pub async fn live_deps() -> Result<LiveDeps, StartError> {
    let config = Config::from_env()?;
    let sdk = load_sdk_config().await;
    let app = SecretCache::from_sdk(&sdk, Duration::from_secs(300))
        .tiktok_app(&config.tiktok_app_secret_id)
        .await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(Deps {
        jobs: DynamoJobStore::new(dynamo.clone(), &config.table_name),
        accounts: DynamoAccountStore::new(dynamo.clone(), &config.table_name),
        // Holding or resolving a job enqueues nothing; the queue is here for the use case's sake.
        queue: SqsWorkQueue::from_env(&sdk),
        clock: SystemClock,
        directory: DynamoOpenIdDirectory::new(dynamo, &config.table_name),
        policy: Policy::default(),
        client_secret: app.client_secret,
        replay_window: config.replay_window,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
    })
}

/// Every refusal, in the error envelope.
#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("only POST is allowed")]
    MethodNotAllowed,
    #[error("the body exceeds {max} bytes")]
    TooLarge { max: usize },
    #[error("webhook signature rejected: {0}")]
    Signature(#[from] SignatureError),
    #[error("the verified body is not a TikTok webhook: {0}")]
    Malformed(String),
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
}

impl WebhookError {
    fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed => 405,
            Self::TooLarge { .. } => 413,
            Self::Signature(_) => 401,
            Self::Malformed(_) => 400,
            Self::Store(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooLarge { .. } => "payload_too_large",
            Self::Signature(SignatureError::MissingHeader) => "signature_missing",
            Self::Signature(SignatureError::MalformedHeader) => "signature_malformed",
            Self::Signature(SignatureError::BadSignature) => "signature_invalid",
            Self::Signature(SignatureError::Stale { .. }) => "signature_stale",
            Self::Malformed(_) => "invalid_webhook",
            Self::Store(_) => "internal_error",
        }
    }

    fn into_response(self) -> Response<Body> {
        // 5xx answers say nothing of the cause; the log has it.
        let message = match &self {
            Self::Store(_) => "temporarily unable to record the event; please retry".to_owned(),
            other => other.to_string(),
        };
        let body = json!({"error": {"code": self.code(), "message": message, "details": {}}});
        json_response(self.status(), body.to_string())
    }
}

fn json_response(status: u16, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// What a verified delivery did (answered in the 200 body, and for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The job moved.
    Moved { job_state: JobState },
    /// A duplicate or late event: nothing changed.
    Absorbed,
    /// An unknown publish_id resolved the account's `publish_unknown` job.
    Resolved { job_state: JobState },
    /// The account was marked `needs_reauth`; `parked` pending jobs were held.
    AuthorizationRemoved { parked: usize },
    /// Nothing of ours (an unknown publish or user, an event we do not follow).
    Ignored { why: &'static str },
}

impl Handled {
    fn result(&self) -> String {
        match self {
            Self::Moved { job_state } => format!("moved:{job_state}"),
            Self::Absorbed => "absorbed".into(),
            Self::Resolved { job_state } => format!("resolved:{job_state}"),
            Self::AuthorizationRemoved { parked } => format!("authorization_removed:{parked}"),
            Self::Ignored { why } => format!("ignored:{why}"),
        }
    }
}

/// The Lambda entry point. Never fails: every outcome is an HTTP answer.
pub async fn function_handler<J, A, Q, C, D>(
    deps: &Deps<J, A, Q, C, D>,
    req: Request,
) -> Response<Body>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    D: OpenIdDirectory,
{
    let span = info_span!(
        "tiktok_webhook",
        event = tracing::field::Empty,
        publish_id = tracing::field::Empty,
        job_id = tracing::field::Empty,
        account_id = tracing::field::Empty
    );
    let signature = req
        .headers()
        .get("tiktok-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if req.method() != lambda_http::http::Method::POST {
        return WebhookError::MethodNotAllowed.into_response();
    }
    match handle(deps, signature.as_deref(), req.body().as_ref())
        .instrument(span)
        .await
    {
        Ok(handled) => json_response(
            200,
            json!({"received": true, "result": handled.result()}).to_string(),
        ),
        Err(e) => {
            warn!(error.code = e.code(), error.message = %e, "tiktok webhook refused");
            e.into_response()
        }
    }
}

/// Verifies, parses and applies one delivery (the HTTP-free core of [`function_handler`]).
pub async fn handle<J, A, Q, C, D>(
    deps: &Deps<J, A, Q, C, D>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Handled, WebhookError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    D: OpenIdDirectory,
{
    if body.len() > deps.max_body_bytes {
        return Err(WebhookError::TooLarge {
            max: deps.max_body_bytes,
        });
    }
    verify_signature(
        signature,
        body,
        &deps.client_secret,
        deps.clock.now().as_secs(),
        deps.replay_window,
    )?;
    let parsed = parse_webhook(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let span = tracing::Span::current();
    let open_id = parsed.user_openid.as_str();
    let (publish_id, event) = match parsed.event {
        WebhookEvent::PublishComplete { publish_id, .. } => {
            (publish_id, observed(PublishStatus::Complete, Vec::new()))
        }
        WebhookEvent::PubliclyAvailable {
            publish_id,
            post_id,
            ..
        } => (
            publish_id,
            observed(
                PublishStatus::Complete,
                post_id.map(|id| id.to_string()).into_iter().collect(),
            ),
        ),
        WebhookEvent::InboxDelivered { publish_id, .. } => {
            (publish_id, observed(PublishStatus::SentToInbox, Vec::new()))
        }
        WebhookEvent::PublishFailed {
            publish_id, reason, ..
        } => (
            publish_id,
            observed(PublishStatus::Failed { reason }, Vec::new()),
        ),
        WebhookEvent::NoLongerPubliclyAvailable {
            publish_id,
            post_id,
            ..
        } => (
            publish_id,
            Event::NoLongerPublic {
                post_id: post_id.map(|id| id.to_string()).unwrap_or_default(),
            },
        ),
        WebhookEvent::AuthorizationRemoved { reason } => {
            span.record("event", "authorization.removed");
            return authorization_removed(deps, open_id, reason).await;
        }
        WebhookEvent::Unknown { event, .. } => {
            info!(event = %event, "webhook event not followed");
            return Ok(Handled::Ignored { why: "event" });
        }
    };
    span.record("event", event.name());
    span.record("publish_id", publish_id.as_str());
    let Ok(publish_id) = PublishId::parse(publish_id) else {
        return Err(WebhookError::Malformed("publish_id is not valid".into()));
    };
    match deps.jobs.job_for_publish(&publish_id).await? {
        Some(job_id) => {
            span.record("job_id", tracing::field::display(&job_id));
            let advance = usecase::advance(
                &deps.jobs,
                &deps.queue,
                &deps.clock,
                &deps.policy,
                &job_id,
                &event,
            )
            .await?;
            Ok(outcome(&advance))
        }
        None => resolve_unknown(deps, open_id, publish_id, &event).await,
    }
}

fn observed(status: PublishStatus, post_ids: Vec<String>) -> Event {
    Event::StatusObserved {
        status,
        post_ids,
        via: Via::Webhook,
        upstream_log_id: None,
    }
}

fn outcome(advance: &Advance) -> Handled {
    match advance {
        Advance::Moved(a) => {
            info!(job_state = %a.job.state, "job moved by webhook");
            Handled::Moved {
                job_state: a.job.state,
            }
        }
        Advance::Absorbed(_) => Handled::Absorbed,
        Advance::Refused(job, e) => {
            info!(job_state = %job.state, error.message = %e, "webhook event does not fit the job; absorbed");
            Handled::Absorbed
        }
        Advance::NotFound => Handled::Ignored { why: "job" },
    }
}

/// A publish we never recorded: if its account has exactly one `publish_unknown` job, that job's
/// init did reach TikTok — record the `publish_id`, then the event itself.
async fn resolve_unknown<J, A, Q, C, D>(
    deps: &Deps<J, A, Q, C, D>,
    open_id: &str,
    publish_id: PublishId,
    event: &Event,
) -> Result<Handled, WebhookError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    D: OpenIdDirectory,
{
    let Some((tenant, account)) = deps.directory.account_for_open_id(open_id).await? else {
        info!("webhook for a publish and user we do not know");
        return Ok(Handled::Ignored { why: "publish" });
    };
    tracing::Span::current().record("account_id", tracing::field::display(&account));
    let mut unknown = jobs_in(deps, &tenant, &account, JobState::PublishUnknown).await?;
    let (Some(job), true) = (unknown.pop(), unknown.is_empty()) else {
        warn!("unknown publish_id and not exactly one publish_unknown job; left to an operator");
        return Ok(Handled::Ignored { why: "publish" });
    };
    tracing::Span::current().record("job_id", tracing::field::display(&job.id));
    let accepted = Event::PublishAccepted {
        publish_id,
        upload: false,
        upstream_log_id: None,
    };
    let advance = usecase::advance_loaded(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        job,
        &accepted,
    )
    .await?;
    let Advance::Moved(resolved) = advance else {
        return Ok(outcome(&advance));
    };
    info!("publish_unknown resolved by a webhook naming its publish_id");
    let then = usecase::advance_loaded(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        resolved.job.clone(),
        event,
    )
    .await?;
    let job_state = then.job().map_or(resolved.job.state, |j| j.state);
    Ok(Handled::Resolved { job_state })
}

/// Every job of the account in `state`, across pages.
async fn jobs_in<J, A, Q, C, D>(
    deps: &Deps<J, A, Q, C, D>,
    tenant: &TenantId,
    account: &AccountId,
    state: JobState,
) -> Result<Vec<Job>, StoreError>
where
    J: JobStore,
{
    let filter = JobFilter {
        account_id: Some(account.clone()),
        state: Some(state),
    };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = deps
            .jobs
            .list(tenant, &filter, cursor.as_deref(), PAGE)
            .await?;
        out.extend(page.jobs.into_iter().filter(|j| j.state == state));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// The creator revoked access (the token is already dead): mark the account and park its work.
async fn authorization_removed<J, A, Q, C, D>(
    deps: &Deps<J, A, Q, C, D>,
    open_id: &str,
    reason: i64,
) -> Result<Handled, WebhookError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    D: OpenIdDirectory,
{
    let Some((tenant, account)) = deps.directory.account_for_open_id(open_id).await? else {
        info!(reason, "authorization removed for a user we do not know");
        return Ok(Handled::Ignored { why: "user" });
    };
    tracing::Span::current().record("account_id", tracing::field::display(&account));
    deps.accounts
        .set_health(
            &tenant,
            &account,
            AccountHealth::NeedsReauth,
            Some(&format!("authorization_removed:{reason}")),
        )
        .await?;
    let held = Event::Held {
        reason: "needs_reauth".into(),
        until: None,
    };
    let mut parked = 0;
    for state in [
        JobState::Received,
        JobState::Rendering,
        JobState::Ready,
        JobState::PublishQueued,
    ] {
        for job in jobs_in(deps, &tenant, &account, state).await? {
            let advance = usecase::advance_loaded(
                &deps.jobs,
                &deps.queue,
                &deps.clock,
                &deps.policy,
                job,
                &held,
            )
            .await?;
            // A rendering job cannot be held; the publisher holds it once it is ready.
            if matches!(advance, Advance::Moved(_)) {
                parked += 1;
            }
        }
    }
    warn!(
        reason,
        parked, "authorization removed: account needs re-authorisation"
    );
    Ok(Handled::AuthorizationRemoved { parked })
}
