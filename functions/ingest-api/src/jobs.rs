//! The job routes: decode, call the use case, encode.

use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, RequestExt, Response};
use reelay_aws::metrics;
use serde_json::{Value, json};

use reelay_domain::lifecycle::JobState;
use reelay_domain::ports::{Clock, JobFilter, JobStore, Ports, StoredResponse};
use reelay_domain::request::{self, NewJob};
use reelay_domain::usecase::{Command, Created};
use reelay_domain::{AccountId, FieldError, JobId, PayloadHash, TenantId};

use crate::error::ApiError;
use crate::view::{JobView, JobWithAudit, job_page_view, seed_view};
use crate::{Deps, REPLAYED_HEADER, encode, json_body, json_response};

/// Page size of job lists and audit trails when the client names none, and the largest allowed.
pub(crate) const DEFAULT_PAGE: u32 = 50;
pub(crate) const MAX_PAGE: u32 = 100;

/// The two create routes: the API's own and the seed's, each with its answer shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Jobs,
    Seed,
}

impl Route {
    /// What identifies a create's request: the route is part of it (the same body on the other
    /// route is another request); a batch item is a `Jobs` create of its own body, so a key
    /// replays alike whichever of the two carried it.
    fn fingerprint(self, body: &Value) -> PayloadHash {
        PayloadHash::of(&json!({ "route": format!("{self:?}"), "body": body }))
    }

    /// The answer stored for replays: the route's own shape of the job as created.
    fn answer(self, job: &reelay_domain::Job) -> StoredResponse {
        StoredResponse {
            status: 202,
            body: match self {
                Self::Jobs => encode(&JobView::new(job)),
                Self::Seed => encode(&seed_view(job)),
            },
        }
    }
}

pub(crate) async fn create<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
    route: Route,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let body = json_body(deps, req)?;
    let header_key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    let mut parsed: NewJob = match route {
        Route::Jobs => request::parse_create_job(&body, header_key),
        Route::Seed => request::parse_seed_publish(&body, header_key),
    }
    .map_err(ApiError::Invalid)?;
    parsed.api_request_id = Some(request_id.to_owned());
    match deps
        .core
        .create_job(tenant, parsed, &route.fingerprint(&body), |job| {
            route.answer(job)
        })
        .await?
    {
        Created::New { response, .. } => {
            metrics::emit(crate::FUNCTION, "JobsCreated", 1);
            Ok(json_response(response.status, response.body))
        }
        // The first answer, status and body byte for byte, marked as a replay (Stripe's and
        // Powertools' convention), so a client retrying after a lost answer sees what it missed.
        Created::Replay(stored) => {
            let mut response = json_response(stored.status, stored.body);
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            Ok(response)
        }
    }
}

/// Reads an optional integer query parameter in `range`, or records why it is not one.
pub(crate) fn int_param<T: std::str::FromStr + PartialOrd + Copy>(
    req: &Request,
    name: &str,
    range: std::ops::RangeInclusive<T>,
    message: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let params = req.query_string_parameters();
    match params.first(name).map(str::parse::<T>) {
        None => None,
        Some(Ok(n)) if range.contains(&n) => Some(n),
        Some(_) => {
            errors.push(ApiError::field(name, message));
            None
        }
    }
}

pub(crate) async fn list<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
) -> Result<Response<Body>, ApiError> {
    let params = req.query_string_parameters();
    let mut errors = Vec::new();
    let mut filter = JobFilter::default();
    if let Some(raw) = params.first("tiktokAccountId") {
        match AccountId::parse(raw) {
            Ok(id) => filter.account_id = Some(id),
            Err(e) => errors.push(ApiError::field("tiktokAccountId", e.reason)),
        }
    }
    if let Some(raw) = params.first("state") {
        match JobState::parse(raw) {
            Some(s) => filter.state = Some(s),
            None => errors.push(ApiError::field("state", "is not a job state")),
        }
    }
    let limit = int_param(
        req,
        "limit",
        1..=MAX_PAGE,
        "must be an integer from 1 to 100",
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let page = deps
        .core
        .ports
        .jobs()
        .list(
            tenant,
            &filter,
            params.first("cursor"),
            limit.unwrap_or(DEFAULT_PAGE),
        )
        .await?;
    Ok(json_response(200, job_page_view(&page).to_string()))
}

/// The job and one page of its audit trail: `auditAfter` (the version to continue after) and
/// `auditLimit` (1–100, default 50); `auditNextAfter` in the answer continues it.
pub(crate) async fn get<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let mut errors = Vec::new();
    let after = int_param(
        req,
        "auditAfter",
        0..=u64::MAX,
        "must be an audit version (an integer of at least 0)",
        &mut errors,
    );
    let limit = int_param(
        req,
        "auditLimit",
        1..=MAX_PAGE,
        "must be an integer from 1 to 100",
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let id = JobId::parse(raw_id).map_err(|_| ApiError::JobNotFound)?;
    let job = deps
        .core
        .owned_job(tenant, &id)
        .await?
        .ok_or(ApiError::JobNotFound)?;
    let page = deps
        .core
        .ports
        .jobs()
        .audit_page(&job.id, after, limit.unwrap_or(DEFAULT_PAGE))
        .await?;
    let view = JobWithAudit {
        job: JobView::new(&job),
        audit: &page.events,
        audit_next_after: page.next_after,
    };
    Ok(json_response(200, encode(&view)))
}

/// `POST /v1/jobs:batch` `{"jobs": [...], "dryRun"?}`: each item is a create of its own (its own
/// idempotency key, its own answer, in order); with `dryRun` nothing is written and each item
/// that would be accepted says when it could publish at the earliest.
pub(crate) async fn batch<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let body = json_body(deps, req)?;
    let batch = request::parse_batch(&body, reelay_domain::usecase::MAX_BATCH_ITEMS)
        .map_err(ApiError::Invalid)?;
    let now = deps.core.ports.clock().now();
    let refused = |index: usize, e: ApiError| {
        let (status, envelope) = e.status_and_envelope(now);
        json!({ "index": index, "status": status, "error": envelope.error })
    };
    let mut results = Vec::with_capacity(batch.items.len());
    if batch.dry_run {
        let jobs: Vec<NewJob> = batch
            .items
            .iter()
            .filter_map(|item| item.as_ref().ok().cloned())
            .collect();
        let mut plans = deps.core.preview_batch(tenant, &jobs).await?.into_iter();
        for (index, item) in batch.items.into_iter().enumerate() {
            results.push(match item {
                Err(fields) => refused(index, ApiError::Invalid(fields)),
                Ok(_) => match plans.next() {
                    Some(Ok(plan)) => json!({
                        "index": index,
                        "status": 202,
                        "plan": {
                            "earliestAt": plan.earliest_at.to_rfc3339(),
                            "waitsFor": plan.waits_for.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                            "rendersFirst": plan.renders_first,
                        }
                    }),
                    Some(Err(e)) => refused(index, e.into()),
                    None => refused(index, ApiError::Store(reelay_domain::ports::StoreError::Corrupt("unplanned".into()))),
                },
            });
        }
    } else {
        // Items that render one source share one render (the use case decides which).
        let mut refusals = Vec::new();
        let items: Vec<Option<(NewJob, PayloadHash)>> = batch
            .items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Err(fields) => {
                    refusals.push((index, fields));
                    None
                }
                Ok(mut parsed) => {
                    parsed.api_request_id = Some(request_id.to_owned());
                    Some((parsed, Route::Jobs.fingerprint(&body["jobs"][index])))
                }
            })
            .collect();
        let outcomes = deps
            .core
            .create_batch(
                tenant,
                items,
                |job| Route::Jobs.answer(job),
                |stored| {
                    let job: Value = serde_json::from_str(&stored.body).ok()?;
                    JobId::parse(job["jobId"].as_str()?).ok()
                },
            )
            .await;
        let mut refusals = refusals.into_iter();
        for (index, outcome) in outcomes.into_iter().enumerate() {
            let outcome = match outcome {
                Some(result) => result.map_err(ApiError::from),
                None => Err(ApiError::Invalid(
                    refusals
                        .next()
                        .map(|(_, fields)| fields)
                        .unwrap_or_default(),
                )),
            };
            let created = |stored: &StoredResponse, replayed: bool| {
                let job: Value = serde_json::from_str(&stored.body).unwrap_or_default();
                let mut answer = json!({ "index": index, "status": stored.status, "job": job });
                if replayed {
                    answer["replayed"] = json!(true);
                }
                answer
            };
            results.push(match outcome {
                Ok(Created::New { response, .. }) => {
                    metrics::emit(crate::FUNCTION, "JobsCreated", 1);
                    created(&response, false)
                }
                Ok(Created::Replay(stored)) => created(&stored, true),
                Err(e) => refused(index, e),
            });
        }
    }
    Ok(json_response(
        200,
        json!({ "dryRun": batch.dry_run, "results": results }).to_string(),
    ))
}

/// `PATCH /v1/jobs/{id}` `{"scheduleAt"?, "post"?: {"title"?}}`: until the job starts
/// publishing; afterwards 409 `not_amendable` with the job's state.
pub(crate) async fn amend<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let body = json_body(deps, req)?;
    let id = JobId::parse(raw_id).map_err(|_| ApiError::JobNotFound)?;
    let amendment = request::parse_amendment(&body).map_err(ApiError::Invalid)?;
    let job = deps.core.amend(tenant, &id, amendment).await?;
    Ok(json_response(200, encode(&JobView::new(&job))))
}

/// Cancel and retry: the owner's decisions, refused by the lifecycle table where they could do
/// harm (a retry that could post twice).
pub(crate) async fn command<P: Ports>(
    deps: &Deps<P>,
    tenant: &TenantId,
    raw_id: &str,
    command: Command,
) -> Result<Response<Body>, ApiError> {
    let id = JobId::parse(raw_id).map_err(|_| ApiError::JobNotFound)?;
    let job = deps.core.command(tenant, &id, command).await?;
    Ok(json_response(200, encode(&JobView::new(&job))))
}
