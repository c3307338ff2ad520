//! The HTTP front: a local stand-in for API Gateway HTTP API. Each request becomes the payload
//! format 2.0 event AWS would send, goes through `lambda_http::request::from_str` (the path the
//! deployed function takes), and the handler's `Response` is written back as API Gateway would.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::future::BoxFuture;
use http::{HeaderMap, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt as _, Response};
use reelay_template::Template;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{FunctionSpec, LOCAL_ACCOUNT_ID, LocalError};

/// API Gateway's request payload cap for HTTP APIs.
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;
/// Lambda's synchronous invocation payload cap (request event and response alike).
pub const MAX_INVOKE_PAYLOAD: usize = 6 * 1024 * 1024;
/// HTTP APIs give up on an integration after 30 s whatever the function's timeout.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// API Gateway's precedence, compared lexicographically: a real path over `$default`, a full
/// match over a greedy one, a method over `ANY`, then more literal segments.
type Specificity = (bool, bool, bool, usize);

/// What an HTTP handler may return: a response, or a function error (API Gateway answers 500).
pub trait HttpResult {
    fn into_http_result(self) -> Result<Response<Body>, String>;
}

impl HttpResult for Response<Body> {
    fn into_http_result(self) -> Result<Response<Body>, String> {
        Ok(self)
    }
}

impl<E: std::fmt::Display> HttpResult for Result<Response<Body>, E> {
    fn into_http_result(self) -> Result<Response<Body>, String> {
        self.map_err(|e| e.to_string())
    }
}

type BoxHandler =
    Arc<dyn Fn(Request) -> BoxFuture<'static, Result<Response<Body>, String>> + Send + Sync>;

fn boxed<H, Fut>(handler: H) -> BoxHandler
where
    H: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HttpResult,
{
    Arc::new(move |req| {
        let fut = handler(req);
        Box::pin(async move { fut.await.into_http_result() })
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

#[derive(Clone)]
struct Route {
    key: String,
    /// `None` = `ANY`.
    method: Option<Method>,
    /// `None` = `$default`.
    pattern: Option<Vec<Segment>>,
    function: FunctionSpec,
    handler: BoxHandler,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("key", &self.key)
            .field("function", &self.function.name)
            .finish_non_exhaustive()
    }
}

/// The match API Gateway would make: which route, its key, and the path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub route_key: String,
    pub path_parameters: BTreeMap<String, String>,
}

/// Route table in API Gateway's route-key syntax (`POST /v1/jobs`, `GET /v1/jobs/{jobId}`,
/// `ANY /webhooks/ssemble/{proxy+}`, `$default`), each route bound to a function's handler.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one route. `handler` is what the function's `main` would pass to `lambda_http::run`.
    pub fn route<H, Fut>(
        mut self,
        route_key: &str,
        function: FunctionSpec,
        handler: H,
    ) -> Result<Self, LocalError>
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HttpResult,
    {
        let (method, pattern) = parse_route_key(route_key)?;
        let handler = boxed(handler);
        self.routes.push(Route {
            key: route_key.trim().to_owned(),
            method,
            pattern,
            function,
            handler,
        });
        Ok(self)
    }

    /// Every path under `prefix` (e.g. `/v1`) for any method: `ANY {prefix}/{proxy+}`.
    pub fn prefix<H, Fut>(
        self,
        prefix: &str,
        function: FunctionSpec,
        handler: H,
    ) -> Result<Self, LocalError>
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HttpResult,
    {
        let key = format!("ANY {}/{{proxy+}}", prefix.trim_end_matches('/'));
        self.route(&key, function, handler)
    }

    /// The function's `HttpApi` events from template.yaml, each as a route, with the function's
    /// timeout: the local front then routes exactly what the deployed API routes.
    pub fn function_from_template<H, Fut>(
        mut self,
        template: &Template,
        logical_id: &str,
        handler: H,
    ) -> Result<Self, LocalError>
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HttpResult,
    {
        let function = FunctionSpec::from_template(template, logical_id)?;
        let keys: Vec<String> = template
            .functions()
            .into_iter()
            .find(|f| f.id == logical_id)
            .map(|f| {
                f.events_of_type("HttpApi")
                    .filter_map(|props| {
                        let method = props.get("Method").and_then(|m| m.as_str())?;
                        let path = props.get("Path").and_then(|p| p.as_str())?;
                        Some(format!("{} {path}", method.to_ascii_uppercase()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if keys.is_empty() {
            return Err(LocalError::UnknownFunction(format!(
                "{logical_id} (no HttpApi events)"
            )));
        }
        let handler = boxed(handler);
        for key in keys {
            let (method, pattern) = parse_route_key(&key)?;
            self.routes.push(Route {
                key,
                method,
                pattern,
                function: function.clone(),
                handler: handler.clone(),
            });
        }
        Ok(self)
    }

    /// The route keys, in registration order (for a start-up banner).
    pub fn keys(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.key.clone()).collect()
    }

    /// API Gateway's choice: a method-specific route beats `ANY`, a full match beats a greedy
    /// one, more literal segments win; `$default` only when nothing else matches.
    pub fn resolve(&self, method: &Method, path: &str) -> Option<RouteMatch> {
        self.find(method, path).map(|(route, params)| RouteMatch {
            route_key: route.key.clone(),
            path_parameters: params,
        })
    }

    fn find(&self, method: &Method, path: &str) -> Option<(&Route, BTreeMap<String, String>)> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<(Specificity, &Route, BTreeMap<String, String>)> = None;
        for route in &self.routes {
            if route.method.as_ref().is_some_and(|m| m != method) {
                continue;
            }
            let (params, literals, greedy) = match &route.pattern {
                None => (BTreeMap::new(), 0, true),
                Some(pattern) => match match_pattern(pattern, &segments) {
                    Some(m) => m,
                    None => continue,
                },
            };
            let score = (
                route.pattern.is_some(),
                !greedy,
                route.method.is_some(),
                literals,
            );
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, route, params));
            }
        }
        best.map(|(_, route, params)| (route, params))
    }
}

fn parse_route_key(key: &str) -> Result<(Option<Method>, Option<Vec<Segment>>), LocalError> {
    let invalid = || LocalError::InvalidRoute(key.to_owned());
    let key = key.trim();
    if key == "$default" {
        return Ok((None, None));
    }
    let (method, path) = key.split_once(' ').ok_or_else(invalid)?;
    let method = match method {
        "ANY" => None,
        m => Some(Method::from_bytes(m.as_bytes()).map_err(|_| invalid())?),
    };
    let path = path.trim();
    if !path.starts_with('/') {
        return Err(invalid());
    }
    let raw: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut pattern = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let segment = match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => match name.strip_suffix('+') {
                Some(name) if i + 1 == raw.len() && !name.is_empty() => {
                    Segment::Greedy(name.to_owned())
                }
                Some(_) => return Err(invalid()),
                None if !name.is_empty() => Segment::Param(name.to_owned()),
                None => return Err(invalid()),
            },
            None => Segment::Literal((*s).to_owned()),
        };
        pattern.push(segment);
    }
    Ok((method, Some(pattern)))
}

/// `(path parameters, literal segment count, matched greedily)` when `segments` fit `pattern`.
fn match_pattern(
    pattern: &[Segment],
    segments: &[&str],
) -> Option<(BTreeMap<String, String>, usize, bool)> {
    let mut params = BTreeMap::new();
    let mut literals = 0;
    for (i, seg) in pattern.iter().enumerate() {
        match seg {
            Segment::Greedy(name) => {
                let rest = segments.get(i..).filter(|r| !r.is_empty())?.join("/");
                if rest.is_empty() {
                    return None;
                }
                params.insert(name.clone(), decode(&rest));
                return Some((params, literals, true));
            }
            Segment::Literal(lit) => {
                if segments.get(i) != Some(&lit.as_str()) {
                    return None;
                }
                literals += 1;
            }
            Segment::Param(name) => {
                let value = segments.get(i).filter(|v| !v.is_empty())?;
                params.insert(name.clone(), decode(value));
            }
        }
    }
    (segments.len() == pattern.len()).then_some((params, literals, false))
}

fn decode(s: &str) -> String {
    urlencoding::decode(s)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| s.to_owned())
}

fn decode_query_component(s: &str) -> String {
    decode(&s.replace('+', " "))
}

/// The parts of an HTTP request an API Gateway event is made of.
#[derive(Debug, Clone)]
pub struct IncomingRequest<'a> {
    pub method: &'a Method,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: String,
}

/// Builds the payload format 2.0 event API Gateway HTTP API sends to a Lambda integration.
pub fn apigw_v2_event(
    request: &IncomingRequest<'_>,
    matched: &RouteMatch,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    // Header names arrive lower-cased from hyper; repeated headers are comma-joined, and the
    // cookie header moves to `cookies`, as API Gateway does.
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let header = |name: &str| headers.get(name).and_then(Value::as_str).map(str::to_owned);
    let host = header("host").unwrap_or_else(|| "localhost".to_owned());
    let user_agent = header("user-agent").unwrap_or_default();
    let content_type = header("content-type").unwrap_or_default();
    let port = host.rsplit_once(':').map(|(_, p)| p.to_owned());
    let time_epoch = now.timestamp_millis();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    headers
        .entry("content-length")
        .or_insert_with(|| Value::String(request.body.len().to_string()));
    headers
        .entry("x-forwarded-for")
        .or_insert_with(|| Value::String(request.source_ip.clone()));
    headers
        .entry("x-forwarded-proto")
        .or_insert_with(|| Value::String("http".to_owned()));
    if let Some(port) = port {
        headers
            .entry("x-forwarded-port")
            .or_insert_with(|| Value::String(port));
    }
    headers.entry("x-amzn-trace-id").or_insert_with(|| {
        Value::String(format!(
            "Root=1-{:08x}-{}",
            now.timestamp(),
            &request_id[..24]
        ))
    });

    let mut query = Map::new();
    for pair in request.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode_query_component(k), decode_query_component(v));
        match query.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }

    let mut event = json!({
        "version": "2.0",
        "routeKey": matched.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or(&host),
            "http": {
                "method": request.method.as_str(),
                "path": request.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": matched.route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": time_epoch,
        },
        "isBase64Encoded": false,
    });
    if let Some(obj) = event.as_object_mut() {
        if !cookies.is_empty() {
            obj.insert("cookies".into(), json!(cookies));
        }
        if !query.is_empty() {
            obj.insert("queryStringParameters".into(), Value::Object(query));
        }
        if !matched.path_parameters.is_empty() {
            obj.insert("pathParameters".into(), json!(matched.path_parameters));
        }
        if !request.body.is_empty() {
            match std::str::from_utf8(request.body) {
                Ok(text) if !is_binary_content_type(&content_type) => {
                    obj.insert("body".into(), Value::String(text.to_owned()));
                }
                _ => {
                    obj.insert("body".into(), Value::String(BASE64.encode(request.body)));
                    obj.insert("isBase64Encoded".into(), Value::Bool(true));
                }
            }
        }
    }
    event
}

fn is_binary_content_type(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.starts_with("application/octet-stream")
        || ct.starts_with("image/")
        || ct.starts_with("audio/")
        || ct.starts_with("video/")
        || ct.starts_with("application/zip")
        || ct.starts_with("application/gzip")
        || ct.starts_with("application/pdf")
}

/// Request and response counts for a progress display.
#[derive(Debug, Default)]
pub struct HttpCounters {
    pub requests: AtomicU64,
    pub server_errors: AtomicU64,
    pub not_found: AtomicU64,
}

impl HttpCounters {
    pub fn snapshot(&self) -> HttpStats {
        HttpStats {
            requests: self.requests.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            not_found: self.not_found.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Display for HttpStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requests={} 5xx={} 404={}",
            self.requests, self.server_errors, self.not_found
        )
    }
}

/// A point-in-time copy of [`HttpCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    pub requests: u64,
    pub server_errors: u64,
    pub not_found: u64,
}

struct Front {
    routes: Routes,
    counters: Arc<HttpCounters>,
}

/// The running HTTP front. Dropping it does not stop it; call [`HttpFront::stop`].
#[derive(Debug)]
pub struct HttpFront {
    addr: SocketAddr,
    token: CancellationToken,
    task: JoinHandle<()>,
    counters: Arc<HttpCounters>,
}

impl HttpFront {
    /// Binds `addr` (port 0 picks a free port) and serves `routes` until stopped.
    pub async fn start(addr: SocketAddr, routes: Routes) -> Result<Self, LocalError> {
        Self::start_with_token(addr, routes, CancellationToken::new()).await
    }

    /// As [`HttpFront::start`], stopping when `token` is cancelled (shared with other drivers).
    pub async fn start_with_token(
        addr: SocketAddr,
        routes: Routes,
        token: CancellationToken,
    ) -> Result<Self, LocalError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| LocalError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        Self::serve(listener, routes, token)
    }

    /// Serves `routes` on a listener bound beforehand: a runner that must know its own URL
    /// before it can build the handlers (OAuth redirect, webhook URLs) binds first.
    pub fn serve(
        listener: tokio::net::TcpListener,
        routes: Routes,
        token: CancellationToken,
    ) -> Result<Self, LocalError> {
        let addr = listener.local_addr().map_err(|source| LocalError::Bind {
            addr: "listener".to_owned(),
            source,
        })?;
        let counters = Arc::new(HttpCounters::default());
        let front = Arc::new(Front {
            routes,
            counters: counters.clone(),
        });
        let app = axum::Router::new()
            .fallback(serve_one)
            .with_state(front)
            .into_make_service_with_connect_info::<SocketAddr>();
        let shutdown = token.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                warn!(error = %error, "HTTP front stopped with an error");
            }
        });
        info!(%addr, "HTTP front listening");
        Ok(Self {
            addr,
            token,
            task,
            counters,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> HttpStats {
        self.counters.snapshot()
    }

    pub fn counters(&self) -> Arc<HttpCounters> {
        self.counters.clone()
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server task.
    pub async fn stop(self) -> Result<(), LocalError> {
        self.token.cancel();
        join_driver("http", self.task).await
    }

    pub(crate) fn into_parts(self) -> (CancellationToken, JoinHandle<()>) {
        (self.token, self.task)
    }
}

pub(crate) async fn join_driver(name: &str, task: JoinHandle<()>) -> Result<(), LocalError> {
    task.await.map_err(|e| LocalError::DriverFailed {
        name: name.to_owned(),
        message: e.to_string(),
    })
}

/// API Gateway's own error bodies are `{"message": "..."}`.
fn gateway_error(status: StatusCode, message: &str) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(
        json!({ "message": message }).to_string(),
    ));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn serve_one(
    State(front): State<Arc<Front>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> axum::response::Response {
    front.counters.requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let raw_path = parts.uri.path().to_owned();
    let Some((route, path_parameters)) = front.routes.find(&parts.method, &raw_path) else {
        front.counters.not_found.fetch_add(1, Ordering::Relaxed);
        info!(method = %parts.method, status = 404, "no route");
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let route_key = route.key.clone();
    let response = invoke_route(
        route,
        RouteMatch {
            route_key: route_key.clone(),
            path_parameters,
        },
        parts,
        body,
        peer,
    )
    .await;
    if response.status().is_server_error() {
        front.counters.server_errors.fetch_add(1, Ordering::Relaxed);
    }
    // The raw path can hold a secret (the Ssemble webhook token): log the route key only.
    info!(
        route = %route_key,
        function = %route.function.name,
        status = response.status().as_u16(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request handled"
    );
    response
}

async fn invoke_route(
    route: &Route,
    matched: RouteMatch,
    parts: http::request::Parts,
    body: axum::body::Body,
    peer: SocketAddr,
) -> axum::response::Response {
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BODY).await else {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let incoming = IncomingRequest {
        method: &parts.method,
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        source_ip: peer.ip().to_string(),
    };
    let event = apigw_v2_event(&incoming, &matched, chrono::Utc::now()).to_string();
    if event.len() > MAX_INVOKE_PAYLOAD {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    // lambda_http's conversion unwraps URL parses; a hostile Host header must not take the
    // front down, so a panic here is a 400 rather than a crash.
    let parsed =
        std::panic::catch_unwind(AssertUnwindSafe(|| lambda_http::request::from_str(&event)));
    let request = match parsed {
        Ok(Ok(request)) => request,
        Ok(Err(error)) => {
            warn!(error = %error, route = %matched.route_key, "event did not parse as lambda_http expects");
            return gateway_error(StatusCode::BAD_REQUEST, "Bad Request");
        }
        Err(_) => return gateway_error(StatusCode::BAD_REQUEST, "Bad Request"),
    };
    let request = request.with_lambda_context(route.function.context());

    let handler = route.handler.clone();
    let mut task = tokio::spawn(async move { handler(request).await });
    let limit = route.function.timeout.min(INTEGRATION_TIMEOUT);
    let response = match tokio::time::timeout(limit, &mut task).await {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(function_error))) => {
            warn!(function = %route.function.name, error = %function_error, "handler returned an error");
            return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
        Ok(Err(join_error)) => {
            warn!(function = %route.function.name, error = %join_error, "handler panicked");
            return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
        Err(_) => {
            task.abort();
            warn!(function = %route.function.name, timeout_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX), "handler timed out");
            return if route.function.timeout <= INTEGRATION_TIMEOUT {
                // Lambda's timeout is a function error: the gateway answers 500.
                gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            } else {
                gateway_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            };
        }
    };
    into_http_response(response)
}

fn into_http_response(response: Response<Body>) -> axum::response::Response {
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        // lambda_http's Body is non-exhaustive; anything new is treated as empty.
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    };
    if bytes.len() > MAX_INVOKE_PAYLOAD {
        warn!(
            bytes = bytes.len(),
            "response exceeds Lambda's payload limit"
        );
        return gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    let mut out = axum::response::Response::new(axum::body::Body::from(bytes));
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let spec = FunctionSpec::new("f", Duration::from_secs(1));
        let ok = |_req: Request| async { Response::new(Body::Empty) };
        Routes::new()
            .route("GET /v1/jobs/{jobId}", spec.clone(), ok)
            .and_then(|r| r.route("POST /v1/jobs", spec.clone(), ok))
            .and_then(|r| r.prefix("/v1", spec.clone(), ok))
            .and_then(|r| r.route("ANY /webhooks/ssemble/{token}", spec.clone(), ok))
            .and_then(|r| r.route("$default", spec.clone(), ok))
            .unwrap_or_default()
    }

    #[test]
    fn when_paths_overlap_should_pick_the_most_specific_route_like_api_gateway() {
        let r = routes();
        let get = r.resolve(&Method::GET, "/v1/jobs/j-1");
        assert_eq!(
            get.as_ref().map(|m| m.route_key.as_str()),
            Some("GET /v1/jobs/{jobId}")
        );
        assert_eq!(
            get.and_then(|m| m.path_parameters.get("jobId").cloned()),
            Some("j-1".to_owned())
        );
        let post = r.resolve(&Method::POST, "/v1/jobs").map(|m| m.route_key);
        assert_eq!(post.as_deref(), Some("POST /v1/jobs"));
        let other = r.resolve(&Method::DELETE, "/v1/jobs/j-1/x");
        assert_eq!(
            other.as_ref().map(|m| m.route_key.as_str()),
            Some("ANY /v1/{proxy+}")
        );
        assert_eq!(
            other.and_then(|m| m.path_parameters.get("proxy").cloned()),
            Some("jobs/j-1/x".to_owned())
        );
        let fallback = r.resolve(&Method::GET, "/nowhere").map(|m| m.route_key);
        assert_eq!(fallback.as_deref(), Some("$default"));
    }

    #[test]
    fn when_route_key_is_malformed_should_be_rejected() {
        let spec = FunctionSpec::new("f", Duration::from_secs(1));
        let ok = |_req: Request| async { Response::new(Body::Empty) };
        for key in ["/v1/jobs", "GET v1", "GET /a/{p+}/b", "GET /a/{}"] {
            assert!(
                Routes::new().route(key, spec.clone(), ok).is_err(),
                "{key} accepted"
            );
        }
    }
}
