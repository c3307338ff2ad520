//! The client API: routing, authentication, validation and the job routes. Every answer that is
//! not a success is the error envelope; bad input changes nothing.

use std::time::Duration;

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

use reelay_domain::ports::{
    AccountStore, Clock, IdempotencyBegin, IdempotencyScope, JobFilter, JobStore, StoreError,
    StoredResponse, TokenRefresher, TokenVault, WorkQueue,
};
use reelay_domain::request::{self, NewJob};
use reelay_domain::upstream::{AuthApi, PublishApi};
use reelay_domain::usecase;
use reelay_domain::{
    ErrorEnvelope, Event, FieldError, Job, JobId, JobState, PayloadHash, Policy, TenantId,
    TransitionError, UtcTime,
};

use crate::accounts::{self, AccountDeps};
use crate::routes::Endpoint;
use crate::view::{JobView, seed_view};

/// What the ingest function needs, built once per cold start.
#[derive(Debug)]
pub struct Deps<J, A, Q, C, V, T, U, P> {
    pub jobs: J,
    pub accounts: A,
    pub queue: Q,
    pub clock: C,
    pub account_routes: AccountDeps<V, T, U, P>,
    pub policy: Policy,
    pub max_body_bytes: usize,
    /// How long an idempotency record in progress blocks its key (a crashed request's key frees then).
    pub in_progress_ttl: Duration,
    /// How long a completed idempotency record is replayed (≥ 24 h).
    pub idempotency_ttl: Duration,
}

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("route not found")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("job not found")]
    JobNotFound,
    #[error("unknown account")]
    UnknownAccount(String),
    #[error("body too large")]
    TooLarge(usize),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("idempotency key missing")]
    KeyRequired,
    #[error("idempotency key reused with another body")]
    KeyReused,
    #[error("a request with this idempotency key is in progress")]
    KeyInProgress { retry_after: Duration },
    #[error("job id already exists")]
    JobExists,
    #[error("transition refused: {0}")]
    Transition(#[from] TransitionError),
    #[error("concurrent change")]
    Conflict,
    #[error("store failure: {0}")]
    Store(#[source] StoreError),
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("account not found")]
    AccountNotFound,
    #[error("account not connected: {0}")]
    NotConnected(String),
    #[error("budget exhausted")]
    Throttled { retry_at: UtcTime },
    #[error("upstream error {0}")]
    Upstream(String, String),
    #[error("invalid or expired OAuth state")]
    OAuthState,
    #[error("OAuth is not configured")]
    OAuthNotConfigured,
    #[error("authorisation refused: {0}")]
    OAuthDenied(String),
    #[error("secrets store failure: {0}")]
    Secrets(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Conflict,
            StoreError::NotFound => Self::JobNotFound,
            StoreError::InvalidCursor => Self::InvalidCursor,
            other => Self::Store(other),
        }
    }
}

impl ApiError {
    fn status(&self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::NoRoute | Self::JobNotFound | Self::AccountNotFound => 404,
            Self::InvalidCursor | Self::OAuthState | Self::OAuthDenied(_) => 400,
            Self::NotConnected(_) => 409,
            Self::Throttled { .. } => 429,
            Self::Upstream(..) => 502,
            Self::Secrets(_) | Self::OAuthNotConfigured => 503,
            Self::MethodNotAllowed => 405,
            Self::UnknownAccount(_) => 422,
            Self::TooLarge(_) => 413,
            Self::UnsupportedMediaType => 415,
            Self::Malformed(_) | Self::Invalid(_) | Self::KeyRequired => 400,
            Self::KeyReused
            | Self::KeyInProgress { .. }
            | Self::JobExists
            | Self::Transition(_)
            | Self::Conflict => 409,
            Self::Store(_) => 503,
        }
    }

    fn envelope(&self) -> ErrorEnvelope {
        match self {
            Self::Unauthenticated => ErrorEnvelope::new(
                "unauthenticated",
                "Send your API key as 'Authorization: Bearer <key>' or 'X-Api-Key'",
            ),
            Self::NoRoute => ErrorEnvelope::new("not_found", "No such route"),
            Self::MethodNotAllowed => ErrorEnvelope::new(
                "method_not_allowed",
                "This route does not accept that method",
            ),
            Self::JobNotFound => ErrorEnvelope::new(
                "job_not_found",
                "No job with this id belongs to your tenant",
            ),
            Self::UnknownAccount(id) => ErrorEnvelope::new(
                "unknown_account",
                "The TikTok account is not connected to your tenant",
            )
            .with_details(json!({ "tiktokAccountId": id })),
            Self::TooLarge(max) => {
                ErrorEnvelope::new("body_too_large", "The request body is too large")
                    .with_details(json!({ "maxBytes": max }))
            }
            Self::UnsupportedMediaType => ErrorEnvelope::new(
                "unsupported_media_type",
                "Send the body as application/json",
            ),
            Self::Malformed(why) => {
                ErrorEnvelope::new("malformed_json", "The body is not valid UTF-8 JSON")
                    .with_details(json!({ "reason": why }))
            }
            Self::Invalid(fields) => ErrorEnvelope::validation(fields.clone()),
            Self::KeyRequired => ErrorEnvelope::new(
                "idempotency_key_required",
                "Send an Idempotency-Key header (or idempotencyKey) so a retry can never create a second job",
            ),
            Self::KeyReused => ErrorEnvelope::new(
                "idempotency_key_reused",
                "This idempotency key was used with a different request body",
            ),
            Self::KeyInProgress { retry_after } => ErrorEnvelope::new(
                "idempotency_key_in_progress",
                "A request with this idempotency key is still being processed",
            )
            .with_details(json!({ "retryAfter": retry_after.as_secs().max(1) })),
            Self::JobExists => {
                ErrorEnvelope::new("job_exists", "A job with this jobId already exists")
            }
            Self::Transition(TransitionError::NotCancellable { state }) => ErrorEnvelope::new(
                "not_cancellable",
                "The job is already publishing or finished and can no longer be cancelled",
            )
            .with_details(json!({ "state": state })),
            Self::Transition(TransitionError::NotRetryable { state }) => ErrorEnvelope::new(
                "not_retryable",
                "Only failed jobs and jobs whose publish outcome is unknown can be retried",
            )
            .with_details(json!({ "state": state })),
            Self::Transition(TransitionError::Illegal { state, .. }) => ErrorEnvelope::new(
                "invalid_state",
                "The job is not in a state that allows this",
            )
            .with_details(json!({ "state": state })),
            Self::Conflict => ErrorEnvelope::new(
                "conflict",
                "The job changed concurrently; retry the request",
            ),
            Self::Store(_) => {
                ErrorEnvelope::new("unavailable", "Storage is unavailable; retry later")
            }
            Self::Secrets(_) => ErrorEnvelope::new(
                "unavailable",
                "The secrets store is unavailable; retry later",
            ),
            Self::InvalidCursor => {
                ErrorEnvelope::new("invalid_cursor", "The cursor was not issued by this API")
            }
            Self::AccountNotFound => ErrorEnvelope::new(
                "account_not_found",
                "No TikTok account with this id belongs to your tenant",
            ),
            Self::NotConnected(_) => ErrorEnvelope::new(
                "account_not_connected",
                "The account has no valid TikTok authorisation; connect it again",
            ),
            Self::Throttled { retry_at } => ErrorEnvelope::new(
                "rate_limit_exceeded",
                "Per-account posting throttle reached",
            )
            .with_details(json!({ "retryAfter": retry_at.to_rfc3339() })),
            Self::Upstream(code, message) => {
                ErrorEnvelope::new("upstream_error", "TikTok refused the request")
                    .with_details(json!({ "upstreamCode": code, "upstreamMessage": message }))
            }
            Self::OAuthNotConfigured => ErrorEnvelope::new(
                "oauth_not_configured",
                "Set the stack's PublicBaseUrl so TikTok can redirect creators back",
            ),
            Self::OAuthState => ErrorEnvelope::new(
                "invalid_oauth_state",
                "The authorisation link is unknown, used or expired; start the connection again",
            ),
            Self::OAuthDenied(code) => {
                ErrorEnvelope::new("oauth_denied", "The creator did not authorise the app")
                    .with_details(json!({ "oauthError": code }))
            }
        }
    }

    fn into_response(self) -> Response<Body> {
        if let Self::Store(source) = &self {
            tracing::error!(error.message = %source, error.cause_chain = ?source, "store failure");
        }
        let mut builder = Response::builder()
            .status(self.status())
            .header("content-type", "application/json");
        if let Self::KeyInProgress { retry_after } = &self {
            builder = builder.header("retry-after", retry_after.as_secs().max(1).to_string());
        }
        if let Self::Throttled { retry_at } = &self {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let wait = u64::try_from(retry_at.as_secs())
                .unwrap_or(0)
                .saturating_sub(now)
                .max(1);
            builder = builder.header("retry-after", wait.to_string());
        }
        let body = serde_json::to_string(&self.envelope()).unwrap_or_default();
        builder
            .body(Body::Text(body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

pub(crate) fn json_response(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The Lambda entry point: one response for every request, never an `Err`.
#[tracing::instrument(skip_all, fields(method = %req.method(), path = %req.raw_http_path(), tenant_id = tracing::field::Empty))]
pub async fn function_handler<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    req: Request,
) -> Response<Body>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    V: TokenVault,
    T: TokenRefresher,
    U: AuthApi,
    P: PublishApi,
{
    match route(deps, &req).await {
        Ok(response) => response,
        Err(e) => {
            tracing::info!(error.code = %e.envelope().error.code, status = e.status(), "request refused");
            e.into_response()
        }
    }
}

async fn route<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    req: &Request,
) -> Result<Response<Body>, ApiError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
    V: TokenVault,
    T: TokenRefresher,
    U: AuthApi,
    P: PublishApi,
{
    let path = req.raw_http_path().to_owned();
    let endpoint = crate::routes::resolve(req.method().as_str(), &path)?;
    let acc = &deps.account_routes;
    // TikTok sends the creator's browser here: the single-use OAuth state authenticates it.
    if endpoint == Endpoint::OAuthCallback {
        return accounts::callback(&deps.accounts, &deps.clock, acc, req).await;
    }
    let tenant = authenticate(deps, req).await?;
    tracing::Span::current().record("tenant_id", tenant.as_str());
    match endpoint {
        Endpoint::CreateJob => create(deps, req, &tenant, Route::Jobs).await,
        Endpoint::SeedPublish => create(deps, req, &tenant, Route::Seed).await,
        Endpoint::ListJobs => list(deps, req, &tenant).await,
        Endpoint::GetJob(id) => get(deps, &tenant, id).await,
        Endpoint::CancelJob(id) => command(deps, &tenant, id, Event::Cancel).await,
        Endpoint::RetryJob(id) => command(deps, &tenant, id, Event::Retry).await,
        Endpoint::ConnectAccount => {
            let body = json_body(deps, req)?;
            accounts::connect(&deps.accounts, &deps.clock, acc, &tenant, &body).await
        }
        Endpoint::GetAccount(id) => {
            accounts::get(&deps.accounts, &deps.clock, acc, &tenant, id).await
        }
        Endpoint::CreatorInfo(id) => {
            accounts::creator_info(&deps.accounts, &deps.clock, acc, &tenant, id).await
        }
        Endpoint::OAuthCallback => Err(ApiError::NoRoute),
    }
}

/// SHA-256 of an API key: the form keys are stored and looked up in.
pub fn api_key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

async fn authenticate<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    req: &Request,
) -> Result<TenantId, ApiError>
where
    A: AccountStore,
{
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let key = header("x-api-key")
        .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .ok_or(ApiError::Unauthenticated)?;
    deps.accounts
        .tenant_for_key_hash(&api_key_hash(key))
        .await?
        .ok_or(ApiError::Unauthenticated)
}

fn json_body<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    req: &Request,
) -> Result<Value, ApiError> {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > deps.max_body_bytes {
        return Err(ApiError::TooLarge(deps.max_body_bytes));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::Malformed("not UTF-8".into()))?;
    serde_json::from_str(text)
        .map_err(|e| ApiError::Malformed(format!("line {} column {}", e.line(), e.column())))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Jobs,
    Seed,
}

async fn create<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    req: &Request,
    tenant: &TenantId,
    route: Route,
) -> Result<Response<Body>, ApiError>
where
    J: JobStore,
    A: AccountStore,
    Q: WorkQueue,
    C: Clock,
{
    let body = json_body(deps, req)?;
    let header_key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    let parsed: NewJob = match route {
        Route::Jobs => request::parse_create_job(&body, header_key),
        Route::Seed => request::parse_seed_publish(&body, header_key),
    }
    .map_err(ApiError::Invalid)?;
    let key = parsed
        .idempotency_key
        .clone()
        .ok_or(ApiError::KeyRequired)?;
    if deps
        .accounts
        .get_account(tenant, &parsed.account_id)
        .await?
        .is_none()
    {
        return Err(ApiError::UnknownAccount(parsed.account_id.to_string()));
    }

    let now = deps.clock.now();
    let scope = IdempotencyScope {
        tenant_id: tenant.clone(),
        key,
    };
    // The route is part of the fingerprint: the same body on the other route is another request.
    let hash = PayloadHash::of(&json!({ "route": format!("{route:?}"), "body": body }));
    match deps
        .jobs
        .begin_idempotent(&scope, &hash, now, now.plus(deps.in_progress_ttl))
        .await?
    {
        IdempotencyBegin::Started => {}
        IdempotencyBegin::Replay(stored) => return Ok(json_response(200, stored.body)),
        IdempotencyBegin::Mismatch => return Err(ApiError::KeyReused),
        IdempotencyBegin::InProgress { until } => {
            return Err(ApiError::KeyInProgress {
                retry_after: until.since(now),
            });
        }
    }

    let result = store_new_job(deps, tenant, parsed, &scope, &hash, now, route).await;
    if result.is_err() {
        // Nothing was created: free the key so the client's retry can run.
        if let Err(e) = deps.jobs.abandon_idempotent(&scope).await {
            tracing::warn!(error.message = %e, "could not release the idempotency key; it expires on its own");
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn store_new_job<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    tenant: &TenantId,
    parsed: NewJob,
    scope: &IdempotencyScope,
    hash: &PayloadHash,
    now: UtcTime,
    route: Route,
) -> Result<Response<Body>, ApiError>
where
    J: JobStore,
    Q: WorkQueue,
{
    let id = match parsed.job_id {
        Some(id) => id,
        None => JobId::generate(now, rand::random()),
    };
    let created = Job::create(
        id,
        tenant.clone(),
        parsed.account_id,
        parsed.source,
        parsed.post,
        parsed.schedule_at.unwrap_or(now),
        Some(scope.key.clone()),
        now,
        &deps.policy,
    );
    let body = match route {
        Route::Jobs => serde_json::to_string(&JobView::new(&created.job, None)),
        Route::Seed => serde_json::to_string(&seed_view(&created.job)),
    }
    .map_err(|e| ApiError::Malformed(e.to_string()))?;
    let status = 202;
    let stored = StoredResponse {
        status,
        body: body.clone(),
    };
    let expires = now.plus(deps.idempotency_ttl);
    match deps
        .jobs
        .create(&created, Some((scope, hash, &stored, expires)))
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(ApiError::JobExists),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(job_id = %created.job.id, account_id = %created.job.account_id, state = %created.job.state, "job accepted");
    usecase::dispatch(&deps.queue, &created).await;
    Ok(json_response(status, body))
}

async fn load_owned<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Job, ApiError>
where
    J: JobStore,
{
    let id = JobId::parse(raw_id).map_err(|_| ApiError::JobNotFound)?;
    match deps.jobs.get(&id).await? {
        // Another tenant's job is indistinguishable from a missing one.
        Some(job) if &job.tenant_id == tenant => Ok(job),
        _ => Err(ApiError::JobNotFound),
    }
}

async fn get<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Response<Body>, ApiError>
where
    J: JobStore,
{
    let job = load_owned(deps, tenant, raw_id).await?;
    let audit = deps.jobs.audit_trail(&job.id).await?;
    let body = serde_json::to_string(&JobView::new(&job, Some(&audit)))
        .map_err(|e| ApiError::Malformed(e.to_string()))?;
    Ok(json_response(200, body))
}

async fn list<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    req: &Request,
    tenant: &TenantId,
) -> Result<Response<Body>, ApiError>
where
    J: JobStore,
{
    let params = req.query_string_parameters();
    let mut errors = Vec::new();
    let mut filter = JobFilter::default();
    if let Some(raw) = params.first("tiktokAccountId") {
        match reelay_domain::AccountId::parse(raw) {
            Ok(id) => filter.account_id = Some(id),
            Err(e) => errors.push(FieldError {
                field: "tiktokAccountId".into(),
                message: e.reason.into(),
            }),
        }
    }
    if let Some(raw) = params.first("state") {
        match JobState::parse(raw) {
            Some(s) => filter.state = Some(s),
            None => errors.push(FieldError {
                field: "state".into(),
                message: "is not a job state".into(),
            }),
        }
    }
    let limit = match params.first("limit").map(str::parse::<u32>) {
        None => 50,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            errors.push(FieldError {
                field: "limit".into(),
                message: "must be an integer from 1 to 100".into(),
            });
            50
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let page = deps
        .jobs
        .list(tenant, &filter, params.first("cursor"), limit)
        .await?;
    let jobs: Vec<JobView<'_>> = page.jobs.iter().map(|j| JobView::new(j, None)).collect();
    let body = serde_json::to_string(&json!({ "jobs": jobs, "nextCursor": page.next_cursor }))
        .map_err(|e| ApiError::Malformed(e.to_string()))?;
    Ok(json_response(200, body))
}

/// Cancel and retry: explicit client decisions, through the lifecycle table like everything else.
async fn command<J, A, Q, C, V, T, U, P>(
    deps: &Deps<J, A, Q, C, V, T, U, P>,
    tenant: &TenantId,
    raw_id: &str,
    event: Event,
) -> Result<Response<Body>, ApiError>
where
    J: JobStore,
    Q: WorkQueue,
    C: Clock,
{
    let job = load_owned(deps, tenant, raw_id).await?;
    let from = job.state;
    let job = match usecase::advance_loaded(
        &deps.jobs,
        &deps.queue,
        &deps.clock,
        &deps.policy,
        job,
        &event,
    )
    .await?
    {
        usecase::Advance::Moved(applied) => {
            tracing::info!(job_id = %applied.job.id, from = %from, to = %applied.job.state, event = event.name(), "job moved by client");
            applied.job
        }
        usecase::Advance::Absorbed(job) => *job,
        usecase::Advance::Refused(_, e) => return Err(e.into()),
        usecase::Advance::NotFound => return Err(ApiError::JobNotFound),
    };
    let body = serde_json::to_string(&JobView::new(&job, None))
        .map_err(|e| ApiError::Malformed(e.to_string()))?;
    Ok(json_response(200, body))
}
