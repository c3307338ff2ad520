//! A recording pass-through in front of the TikTok simulator.
//!
//! Why: the simulator's inspection stamps publishes in whole *simulated* seconds, which at a
//! time scale of 1 is a one-second resolution — too coarse for a 2 s p99 goal. The proxy stamps
//! every init with the real wall clock in milliseconds as it reaches "TikTok", with its HTTP
//! status and `publish_id`; counts (inits, 429s) are still taken from the simulator and the two
//! are cross-checked. Token → `open_id` comes from the token endpoint's answers passing through.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::now_ms;

/// One init as it reached the simulator.
#[derive(Debug, Clone)]
pub struct InitRecord {
    /// Real wall clock (unix ms) when the request arrived at the proxy.
    pub at_ms: i64,
    pub open_id: Option<String>,
    pub status: u16,
    pub publish_id: Option<String>,
}

#[derive(Debug, Default)]
struct Log {
    inits: Vec<InitRecord>,
    /// Every request passed through, by path (TikTok's paths carry no ids).
    requests: BTreeMap<String, u64>,
    token_owner: HashMap<String, String>,
}

#[derive(Debug)]
struct Inner {
    upstream: String,
    http: reqwest::Client,
    log: Mutex<Log>,
}

impl Inner {
    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    pub base_url: String,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .build()?;
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            log: Mutex::new(Log::default()),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "recording proxy stopped");
            }
        });
        Ok(Self {
            base_url: format!("http://{addr}"),
            inner,
            task,
        })
    }

    /// Tokens minted outside the proxy (the naive baseline's) still need an owner.
    pub fn register_token(&self, access_token: &str, open_id: &str) {
        self.inner
            .log()
            .token_owner
            .insert(access_token.to_owned(), open_id.to_owned());
    }

    /// Requests passed through so far, by path.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.inner.log().requests.clone()
    }

    /// Every init seen so far.
    pub fn inits(&self) -> Vec<InitRecord> {
        self.inner.log().inits.clone()
    }
}

fn is_init(path: &str) -> bool {
    path.ends_with("/video/init/") || path.ends_with("/content/init/")
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(|s| s.trim().to_owned())
}

async fn forward(State(p): State<Arc<Inner>>, req: Request) -> Response {
    let at_ms = now_ms();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    *p.log().requests.entry(path.clone()).or_default() += 1;
    let target = format!(
        "{}{}",
        p.upstream,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let bytes = match axum::body::to_bytes(body, 256 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let token = bearer(&parts.headers);
    let mut out = p.http.request(parts.method.clone(), &target);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    let resp = match out.body(bytes).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, %path, "proxy: upstream unreachable");
            return StatusCode::BAD_GATEWAY.into_response();
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };

    if is_init(&path) || path == "/v2/oauth/token/" {
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut log = p.log();
        if is_init(&path) {
            let open_id = token.and_then(|t| log.token_owner.get(&t).cloned());
            log.inits.push(InitRecord {
                at_ms,
                open_id,
                status: status.as_u16(),
                publish_id: json
                    .pointer("/data/publish_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        } else if let (Some(t), Some(o)) = (
            json.get("access_token").and_then(Value::as_str),
            json.get("open_id").and_then(Value::as_str),
        ) {
            log.token_owner.insert(t.to_owned(), o.to_owned());
        }
    }

    let mut answer = Response::builder().status(status);
    for (name, value) in &headers {
        let hop = [
            header::TRANSFER_ENCODING,
            header::CONTENT_LENGTH,
            header::CONNECTION,
        ];
        if !hop.iter().any(|h: &HeaderName| h == name) {
            answer = answer.header(name, value);
        }
    }
    answer
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
