//! `/v1/webhooks`: register, list and remove a tenant's endpoints, read an endpoint's delivery
//! log, replay. Decode, call [`Outbound`](reelay_domain::usecase::Outbound), encode.

use std::time::Duration;

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use reelay_domain::ports::{Clock, DeliveryPage, Ports};
use reelay_domain::usecase::{EndpointRequest, OutboundError};
use reelay_domain::webhooks::{DeliveryRecord, Endpoint};
use reelay_domain::{TenantId, UtcTime};
use secrecy::ExposeSecret;

use crate::error::ApiError;
use crate::jobs::int_param;
use crate::{Deps, json_body, json_response};

/// A replay reaches back at most as far as the delivery log keeps attempts.
const MAX_REPLAY_AGE: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_REPLAY_AGE: Duration = Duration::from_secs(86_400);

fn endpoint_view(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "events": e.events.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "description": e.description,
        "createdAt": e.created_at,
    })
}

fn record_view(r: &DeliveryRecord) -> Value {
    json!({
        "eventId": r.event_id,
        "type": r.event_type.as_str(),
        "attempt": r.attempt,
        "at": r.at,
        "outcome": r.outcome,
        "status": r.status,
        "error": r.error,
        "durationMs": r.duration_ms,
        "nextAttemptAt": r.next_attempt_at,
        "dead": r.dead,
        "replay": r.replay,
    })
}

fn page_view(page: &DeliveryPage) -> Value {
    json!({
        "deliveries": page.records.iter().map(record_view).collect::<Vec<_>>(),
        "nextAfter": page.next_cursor,
    })
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Outbound(OutboundError::Invalid(vec![ApiError::field(
        field,
        &message.into(),
    )]))
}

/// `POST /v1/webhooks`: 201 with the endpoint and its signing secret (shown this once).
pub(crate) async fn create<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
) -> Result<Response<Body>, ApiError> {
    let body = json_body(deps, req)?;
    let request: EndpointRequest =
        serde_json::from_value(body).map_err(|e| invalid("body", e.to_string()))?;
    let endpoint = deps.webhooks.register(tenant, request).await?;
    let mut view = endpoint_view(&endpoint);
    view["secret"] = json!(endpoint.secret.expose_secret());
    Ok(json_response(201, view.to_string()))
}

/// `GET /v1/webhooks`: the tenant's endpoints, oldest first, without their secrets.
pub(crate) async fn list<P: Ports>(
    deps: &Deps<P>,
    tenant: &TenantId,
) -> Result<Response<Body>, ApiError> {
    let endpoints = deps.webhooks.list(tenant).await?;
    let views: Vec<Value> = endpoints.iter().map(endpoint_view).collect();
    Ok(json_response(200, json!({ "webhooks": views }).to_string()))
}

/// `DELETE /v1/webhooks/{id}`: 204; deliveries already queued for it are dropped.
pub(crate) async fn delete<P: Ports>(
    deps: &Deps<P>,
    tenant: &TenantId,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    deps.webhooks.remove(tenant, id).await?;
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}

/// `GET /v1/webhooks/{id}/deliveries?limit=&after=`: the log, newest attempt first.
pub(crate) async fn deliveries<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let mut errors = Vec::new();
    let limit = int_param(
        req,
        "limit",
        1..=100u32,
        "must be an integer from 1 to 100",
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let params = req.query_string_parameters();
    let after = params.first("after");
    let page = deps
        .webhooks
        .deliveries(tenant, id, after, limit.unwrap_or(20))
        .await?;
    Ok(json_response(200, page_view(&page).to_string()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplayRequest {
    #[serde(default, deserialize_with = "reelay_domain::request::non_null")]
    since: Option<String>,
    #[serde(default, deserialize_with = "reelay_domain::request::non_null")]
    only_failed: Option<bool>,
}

/// `POST /v1/webhooks/{id}/replay` `{"since"?, "onlyFailed"?}`: 202 with the events queued.
pub(crate) async fn replay<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let request: ReplayRequest = if req.body().as_ref().is_empty() {
        ReplayRequest::default()
    } else {
        serde_json::from_value(json_body(deps, req)?).map_err(|e| invalid("body", e.to_string()))?
    };
    let now = deps.core.ports.clock().now();
    let since = match &request.since {
        None => now.minus(DEFAULT_REPLAY_AGE),
        Some(raw) => UtcTime::parse(raw).map_err(|e| invalid("since", e.to_string()))?,
    };
    if since < now.minus(MAX_REPLAY_AGE) || since > now {
        return Err(invalid(
            "since",
            "must be within the last 30 days (the delivery log's retention)",
        ));
    }
    let only_failed = request.only_failed.unwrap_or(true);
    let replayed = deps.webhooks.replay(tenant, id, since, only_failed).await?;
    Ok(json_response(
        202,
        json!({ "replayed": replayed, "since": since, "onlyFailed": only_failed }).to_string(),
    ))
}
