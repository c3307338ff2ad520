//! Reelay's client API (API Gateway HTTP API → lambda_http), a thin adapter: it authenticates the
//! tenant, routes, decodes the request (JSON through `reelay_domain::request`), calls the use case
//! on [`Core`] and encodes its answer or refusal. Every answer that is not a success is the error
//! envelope; bad input changes nothing.

pub mod config;
pub mod routes;
pub mod view;
pub mod wiring;

mod accounts;
mod error;
mod jobs;
mod webhooks;

use lambda_http::http::HeaderValue;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use secrecy::SecretString;
use serde_json::Value;

use reelay_domain::ports::{Clock, Entropy, Ports};
use reelay_domain::usecase::{ApiAdmission, Command, Core, RateStatus};
use reelay_domain::{TenantId, UtcTime};

use crate::error::ApiError;
use crate::routes::Endpoint;

/// What the handler needs, built once per cold start ([`wiring::live`] in the Lambda).
#[derive(Debug, Clone)]
pub struct Deps<P> {
    pub core: Core<P>,
    pub max_body_bytes: usize,
    /// `PUBLIC_BASE_URL`, the OAuth callback's base when set (a custom domain). Without it the
    /// callback is on the domain API Gateway received the request on, which is the stage's
    /// fixed `execute-api` URL, so a first deploy can connect accounts.
    pub public_base_url: Option<String>,
    /// Webhooks to the client: the endpoints, their delivery log and replays (always the table
    /// and the delivery queue; a run's fault decorator has nothing to break there).
    pub webhooks: wiring::LiveWebhooks,
}

impl<P> Deps<P> {
    /// The same dependencies over other ports (a decorator such as a fault injector).
    pub fn map_ports<Q>(self, f: impl FnOnce(P) -> Q) -> Deps<Q> {
        Deps {
            core: self.core.map_ports(f),
            max_body_bytes: self.max_body_bytes,
            public_base_url: self.public_base_url,
            webhooks: self.webhooks,
        }
    }
}

/// The Lambda entry point: one response for every request, never an `Err`. Every response
/// carries `X-Request-Id` (API Gateway's request id, the one in its access log), and so does
/// every log line of the request, so a client's report leads to the logs.
#[tracing::instrument(skip_all, fields(method = %req.method(), path = %path_of(&req),
    request_id = tracing::field::Empty, tenant_id = tracing::field::Empty))]
pub async fn handler<P: Ports>(deps: &Deps<P>, req: Request) -> Response<Body> {
    let request_id = request_id_of(deps, &req);
    tracing::Span::current().record("request_id", request_id.as_str());
    let mut response = match route(deps, &req, &request_id).await {
        Ok(response) => response,
        Err(e) => e.into_response(deps.core.ports.clock().now()),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// This API's OpenAPI document, as built into the binary (the same file the tests hold the
/// routes, the template and Schemathesis to).
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// The `servers` entry of [`OPENAPI_YAML`] that names the stage it is served from.
const LOCAL_SERVER: &str = "  - url: http://127.0.0.1:3000\n    description: make run\n";

/// The document, its server entry naming `base` (the stage it was fetched from) when known, so
/// a client generated from a stage's URL calls that stage.
fn openapi_document(base: Option<&str>) -> Response<Body> {
    let text = match base {
        Some(base) => OPENAPI_YAML.replacen(
            LOCAL_SERVER,
            &format!(
                "  - url: '{}'\n    description: this stage\n",
                base.replace('\'', "''")
            ),
            1,
        ),
        None => OPENAPI_YAML.to_owned(),
    };
    Response::builder()
        .status(200)
        .header("content-type", "application/yaml")
        .header("cache-control", "public, max-age=300")
        .body(Body::Text(text))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The base URL clients reach this API on: the configured public base (a custom domain), else
/// the domain this request reached API Gateway on — a host API Gateway routed by, not a
/// client's header; the stage's fixed `execute-api` URL on a first deploy. `None` for a direct
/// invoke.
pub(crate) fn public_base<P>(deps: &Deps<P>, req: &Request) -> Option<String> {
    if let Some(base) = &deps.public_base_url {
        return Some(base.trim_end_matches('/').to_owned());
    }
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .domain_name
            .as_deref()
            .filter(|host| is_host_name(host))
            .map(|host| format!("https://{host}")),
        _ => None,
    }
}

/// A DNS name as API Gateway reports its domain: letters, digits, dots and hyphens.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// This function's name in its metrics' `Function` dimension.
pub const FUNCTION: &str = "ingest-api";

/// The response header naming the request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The response header marking an idempotent replay of a create's first answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// API Gateway's id of the request; one of our own when invoked without a gateway.
fn request_id_of<P: Ports>(deps: &Deps<P>, req: &Request) -> String {
    let gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    gateway
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.is_ascii())
        .unwrap_or_else(|| format!("rl-{:032x}", deps.core.ports.clock().random_u128()))
}

/// SHA-256 (hex) of an API key: the only form keys are stored and looked up in.
pub fn api_key_hash(key: &str) -> String {
    reelay_aws::hash_api_key(&SecretString::from(key))
}

/// The path as the client sent it: API Gateway's raw path, or the URI's for a request built
/// without one.
fn path_of(req: &Request) -> &str {
    match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    }
}

async fn route<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let endpoint = routes::resolve(req.method().as_str(), path_of(req))?;
    // TikTok sends the creator's browser here: the single-use OAuth state authenticates it.
    if endpoint == Endpoint::OAuthCallback {
        return accounts::callback(deps, req).await;
    }
    // The API's own description, for client generators: public like any published spec.
    if endpoint == Endpoint::OpenApi {
        return Ok(openapi_document(public_base(deps, req).as_deref()));
    }
    let tenant = authenticate(deps, req).await?;
    tracing::Span::current().record("tenant_id", tenant.as_str());
    let status = match deps.core.admit_api_request(&tenant).await? {
        ApiAdmission::Limited(status) => {
            let now = deps.core.ports.clock().now();
            let mut refused = ApiError::ApiRateLimited(status).into_response(now);
            rate_headers(&mut refused, &status, now);
            return Ok(refused);
        }
        ApiAdmission::Admitted(status) => status,
    };
    let mut response = match dispatch(deps, req, request_id, endpoint, &tenant).await {
        Ok(response) => response,
        Err(e) => e.into_response(deps.core.ports.clock().now()),
    };
    rate_headers(&mut response, &status, deps.core.ports.clock().now());
    Ok(response)
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds from now) on every authenticated
/// answer.
fn rate_headers(response: &mut Response<Body>, status: &RateStatus, now: UtcTime) {
    let reset = error::seconds_until(status.reset_at, now);
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", status.limit.to_string()),
        ("x-ratelimit-remaining", status.remaining.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

async fn dispatch<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    request_id: &str,
    endpoint: Endpoint<'_>,
    tenant: &TenantId,
) -> Result<Response<Body>, ApiError> {
    let tenant = tenant.clone();
    match endpoint {
        Endpoint::CreateJob => {
            jobs::create(deps, req, &tenant, jobs::Route::Jobs, request_id).await
        }
        Endpoint::SeedPublish => {
            jobs::create(deps, req, &tenant, jobs::Route::Seed, request_id).await
        }
        Endpoint::CreateJobs => jobs::batch(deps, req, &tenant, request_id).await,
        Endpoint::ListJobs => jobs::list(deps, req, &tenant).await,
        Endpoint::GetJob(id) => jobs::get(deps, req, &tenant, id).await,
        Endpoint::AmendJob(id) => jobs::amend(deps, req, &tenant, id).await,
        Endpoint::CancelJob(id) => jobs::command(deps, &tenant, id, Command::Cancel).await,
        Endpoint::RetryJob(id) => jobs::command(deps, &tenant, id, Command::Retry).await,
        Endpoint::ConnectAccount => accounts::connect(deps, req, &tenant).await,
        Endpoint::ListAccounts => accounts::list(deps, req, &tenant).await,
        Endpoint::GetAccount(id) => accounts::status(deps, &tenant, id).await,
        Endpoint::DisconnectAccount(id) => accounts::disconnect(deps, &tenant, id).await,
        Endpoint::CreatorInfo(id) => accounts::creator_info(deps, &tenant, id).await,
        Endpoint::CreateWebhook => webhooks::create(deps, req, &tenant).await,
        Endpoint::ListWebhooks => webhooks::list(deps, &tenant).await,
        Endpoint::DeleteWebhook(id) => webhooks::delete(deps, &tenant, id).await,
        Endpoint::ListWebhookDeliveries(id) => webhooks::deliveries(deps, req, &tenant, id).await,
        Endpoint::ReplayWebhook(id) => webhooks::replay(deps, req, &tenant, id).await,
        Endpoint::OAuthCallback | Endpoint::OpenApi => Err(routes::RouteError::NoRoute.into()),
    }
}

async fn authenticate<P: Ports>(deps: &Deps<P>, req: &Request) -> Result<TenantId, ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let key = header("x-api-key")
        .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .map(SecretString::from)
        .ok_or(ApiError::Unauthenticated)?;
    deps.core
        .authenticate(&key)
        .await?
        .ok_or(ApiError::Unauthenticated)
}

/// The body as JSON: `application/json`, at most `max_body_bytes`, UTF-8.
fn json_body<P>(deps: &Deps<P>, req: &Request) -> Result<Value, ApiError> {
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

/// A success: the body as given (views serialise to JSON text before they get here).
fn json_response(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// JSON text of a view. The views hold strings, numbers, booleans and string-keyed maps only,
/// which serde_json always serialises.
fn encode(view: &impl serde::Serialize) -> String {
    serde_json::to_string(view).unwrap_or_else(|e| {
        tracing::error!(error.message = %e, "a view did not serialise");
        "null".into()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn served(base: Option<&str>) -> serde_json::Value {
        let response = openapi_document(base);
        serde_norway::from_slice(response.body().as_ref()).unwrap()
    }

    /// The document names the stage it was fetched from, so a generated client calls that stage;
    /// fails if openapi.yaml's server entry no longer matches the one replaced.
    #[test]
    fn the_served_document_names_the_stage_it_came_from() {
        let base = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";
        let doc = served(Some(base));
        assert_eq!(doc["servers"][0]["url"], base);
        assert_eq!(doc["servers"].as_array().unwrap().len(), 1);
        let mut unchanged = doc.clone();
        unchanged["servers"] = served(None)["servers"].clone();
        assert_eq!(unchanged, served(None), "only the server entry differs");
        assert_eq!(
            served(Some("https://x'y"))["servers"][0]["url"],
            "https://x'y"
        );
    }

    #[test]
    fn a_key_is_looked_up_by_its_sha256() {
        assert_eq!(
            super::api_key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
