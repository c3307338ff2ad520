//! A contract-following Ssemble AI Clipping API simulator.
//!
//! A real HTTP server (axum) with a scalable clock, seeded determinism, the documented
//! validation, timelines, rate limits and webhooks, plus a control API (`/_sim/...`) for fault
//! injection and an inspection API that tests use as ground truth (creates per source, credits
//! spent, calls per key, limit violations, webhook deliveries).

mod api;
pub mod clock;
pub mod config;
mod control;
pub mod files;
pub mod state;
pub mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

pub use clock::SimClock;
pub use config::{Limit, PoolLimits, SimConfig, Tier};
pub use state::{
    ApiEndpoint, CallRecord, Credits, DeliveryRecord, FaultKind, FaultSpec, StormSpec, Violation,
    WebhookFaults, key_id,
};

/// State shared by every handler and background task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: SimConfig,
    pub(crate) clock: SimClock,
    pub(crate) state: Mutex<state::SimState>,
    pub(crate) http: reqwest::Client,
}

impl Shared {
    /// Locks the state; a poisoned lock (a panicked test thread) is recovered, not propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, state::SimState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Entry point.
#[derive(Debug)]
pub struct SsembleSim;

impl SsembleSim {
    /// Starts on `127.0.0.1:0` (an ephemeral port).
    pub async fn start(cfg: SimConfig) -> std::io::Result<SimHandle> {
        Self::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on a given address.
    pub async fn start_on(cfg: SimConfig, addr: SocketAddr) -> std::io::Result<SimHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let root_url = format!("http://{addr}");
        let clock = SimClock::new(cfg.start_time.unwrap_or_else(Utc::now), cfg.time_scale);
        let mut st = state::SimState::new(&cfg);
        st.files_base = root_url.clone();
        let http = reqwest::Client::builder()
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            cfg,
            clock,
            state: Mutex::new(st),
            http,
        });
        let app = router(shared.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut server_stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = server_stop.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error.message = %e, "ssemble-sim server stopped");
            }
        });
        tokio::spawn(webhooks::run(shared.clone(), stop_rx));
        Ok(SimHandle {
            base_url: format!("{root_url}/api/v1"),
            root_url,
            addr,
            shared,
            stop: stop_tx,
            server: Some(server),
        })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/shorts/create", post(api::create))
        .route("/api/v1/shorts", get(api::list))
        .route("/api/v1/shorts/{id}/status", get(api::status))
        .route("/api/v1/shorts/{id}", get(api::get).delete(api::delete))
        .route("/api/v1/templates", get(api::templates))
        .route("/files/{request_id}/{name}", get(files::serve))
        .merge(control::router())
        .fallback(api::fallback)
        .method_not_allowed_fallback(api::fallback)
        .with_state(shared)
}

/// A running simulator. Dropping it stops the server and its webhook loop.
#[derive(Debug)]
pub struct SimHandle {
    /// API base URL, e.g. `http://127.0.0.1:PORT/api/v1` (what a client's base URL should be).
    pub base_url: String,
    /// `http://127.0.0.1:PORT` (control API at `/_sim`, files at `/files`).
    pub root_url: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Ground truth for tests (also served at `GET /_sim/inspect`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// Simulator time.
    pub now: DateTime<Utc>,
    /// Accepted creates per source URL.
    pub creates_per_source: BTreeMap<String, u32>,
    /// Credits by [`key_id`].
    pub credits: BTreeMap<String, Credits>,
    /// Every stored request.
    pub requests: Vec<RequestInfo>,
    /// Every API call with its response status.
    pub calls: Vec<CallRecord>,
    /// Every request beyond a documented limit (answered 429 by the limiter).
    pub limit_violations: Vec<Violation>,
    /// 429s produced by injected storms (not limit violations).
    pub storm_429s: u32,
    /// Every webhook attempt, drop and abandonment.
    pub webhook_deliveries: Vec<DeliveryRecord>,
    pub pending_webhooks: usize,
    pub held_webhooks: usize,
}

/// A stored request, as inspection shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestInfo {
    pub request_id: String,
    pub key_id: String,
    pub source: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
}

impl Inspection {
    /// Credits spent by `key` (creates accepted; refunds not subtracted).
    pub fn credits_spent(&self, key: &str) -> u64 {
        self.credits.get(&key_id(key)).map_or(0, |c| c.spent)
    }

    /// API calls made with `key` in `[from, to)` (simulator time).
    pub fn calls_in_window(&self, key: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> usize {
        let id = key_id(key);
        self.calls
            .iter()
            .filter(|c| c.key_id.as_deref() == Some(id.as_str()) && c.at >= from && c.at < to)
            .count()
    }

    /// Webhook attempts for one request, in order.
    pub fn deliveries_for(&self, request_id: &str) -> Vec<&DeliveryRecord> {
        self.webhook_deliveries
            .iter()
            .filter(|d| d.request_id == request_id)
            .collect()
    }
}

impl SimHandle {
    /// Simulator time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    /// Jumps the simulator clock forward.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Real duration spanning `virtual_secs` of simulator time.
    pub fn real(&self, virtual_secs: f64) -> Duration {
        self.shared.clock.real(virtual_secs)
    }

    /// A snapshot of the ground truth.
    pub fn inspect(&self) -> Inspection {
        control::inspect(&self.shared)
    }

    /// Queues a fault for the next matching requests.
    pub fn inject_fault(&self, fault: FaultSpec) {
        self.shared.lock().faults.push(fault);
    }

    /// Queues a 429 storm.
    pub fn storm(&self, storm: StormSpec) {
        self.shared.lock().storms.push(storm);
    }

    /// Sets webhook delivery faults (replacing the previous ones).
    pub fn set_webhook_faults(&self, faults: WebhookFaults) {
        self.shared.lock().webhook_faults = faults;
    }

    /// Sends held webhooks (reversed to reorder); returns how many.
    pub fn release_webhooks(&self, reverse: bool) -> usize {
        webhooks::release(&self.shared, reverse)
    }

    /// Makes a non-terminal request fail now; false if unknown or already terminal.
    pub fn force_fail(&self, request_id: &str, reason: &str) -> bool {
        control::force(
            &self.shared,
            request_id,
            state::Forced::Failed(reason.to_owned()),
        )
    }

    /// Makes a non-terminal request complete now.
    pub fn force_complete(&self, request_id: &str) -> bool {
        control::force(&self.shared, request_id, state::Forced::Completed)
    }

    /// Cancels a non-terminal request (as ops would); it stays visible as `cancelled`.
    pub fn cancel(&self, request_id: &str) -> bool {
        control::force(&self.shared, request_id, state::Forced::Cancelled)
    }

    /// Emits these wire values for `status`/`step` instead of the real ones (`None` restores),
    /// to test clients against values they do not know, or the leaked `TASK_COMPLETE`.
    pub fn override_wire(
        &self,
        request_id: &str,
        status: Option<&str>,
        step: Option<&str>,
    ) -> bool {
        let mut st = self.shared.lock();
        st.requests
            .get_mut(request_id)
            .map(|r| {
                r.wire_status = status.map(str::to_owned);
                r.wire_step = step.map(str::to_owned);
            })
            .is_some()
    }

    /// Clip file size for one request's clips.
    pub fn set_clip_bytes(&self, request_id: &str, bytes: u64) -> bool {
        let mut st = self.shared.lock();
        st.requests
            .get_mut(request_id)
            .map(|r| r.clip_bytes = Some(bytes))
            .is_some()
    }

    /// Default clip file size.
    pub fn set_default_clip_bytes(&self, bytes: u64) {
        self.shared.lock().clip_bytes = bytes;
    }

    /// Fault mode: `/files` ignores `Range` and always sends the whole file with 200.
    pub fn set_files_ignore_range(&self, on: bool) {
        self.shared.lock().files_ignore_range = on;
    }

    /// `viral_score` in webhooks = GET score ÷ `divisor` (1.0 makes both scales equal).
    pub fn set_webhook_score_divisor(&self, divisor: f64) {
        self.shared.lock().webhook_score_divisor = divisor;
    }

    /// The next `count` created requests hang in processing (a stuck render) until forced.
    pub fn stick_next_requests(&self, count: u32) {
        self.shared.lock().stuck_next = count;
    }

    /// Sets a key's remaining credits.
    pub fn set_credits(&self, key: &str, credits: i64) {
        let cfg = &self.shared.cfg;
        self.shared.lock().credits_mut(key, cfg).remaining = credits;
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
