//! A contract-following TikTok Content Posting API simulator: OAuth, creator_info, video and inbox
//! init, chunked upload, status machine, signed webhooks, fault injection and a ground-truth inspection
//! API. Deterministic given a seed; every window, lifetime and delay reads a scalable clock.
//!
//! In-process: `let sim = TikTokSim::start(SimConfig::default()).await?;` then point a client at
//! `sim.base_url` (both API and authorize base). Binary: `tiktok-sim --port 0 --seed 1 --time-scale 60
//! --webhook-url http://127.0.0.1:9000/hook` prints the base URL on stdout.
//!
//! TikTok endpoints: `GET /v2/auth/authorize/` (redirects at once; `open_id=` picks the user, `deny=1`
//! denies), `POST /v2/oauth/token/`, `POST /v2/oauth/revoke/`, `POST /v2/post/publish/{creator_info/query,
//! video/init, inbox/video/init, status/fetch, cancel}/`, `PUT /upload/?upload_id=&upload_token=`.
//!
//! Control (`/_sim/…`, JSON):
//! - `GET|POST /_sim/config`: read, or JSON-merge-patch [`SimConfig`] (limits, chunk rules, app audit,
//!   verified URLs, delays, OAuth lifetimes/rotation/error status, webhook retry).
//! - `GET|POST /_sim/creators`: list, or upsert [`CreatorSettings`].
//! - `POST /_sim/tokens` `{open_id?, scopes?}` → token-endpoint JSON; `POST /_sim/tokens/revoke`
//!   `{open_id | access_token, reason?}`; `POST /_sim/tokens/expire` `{access_token}`.
//! - `POST|DELETE /_sim/faults` [`FaultSpec`], e.g. `{"endpoint":"video_init","type":"timeout_after_accept",
//!   "delay_ms":5000,"count":1}`; types `status`, `error`, `rate_limit`, `timeout_after_accept`, `drop_after_accept`.
//! - `POST /_sim/webhook-faults` [`WebhookFaults`] `{drop, duplicate, delay, delay_ms, reorder}`.
//! - `GET /_sim/clock`, `POST /_sim/clock/advance` `{secs}`.
//! - `POST /_sim/stuck-next` `{count}`: the next publishes stay in processing.
//! - `POST /_sim/next-publish-fail` `{reason}`; `POST /_sim/publishes/{id}/{fail|user-post|take-down|stuck}`.
//! - `GET /_sim/inspect`: ground truth — per account publishes (title, privacy, source, status, post ids),
//!   inits in flight now and the max seen, max concurrently active publishes; publishes per title;
//!   uploads (bytes received, PUTs, SHA-256); every limit violation and chunk-rule violation; request
//!   counts; every webhook with its attempts and answers.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod clock;
mod config;
mod model;
mod server;
mod webhooks;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde_json::Value;
use tokio::sync::oneshot;

pub use clock::SimClock;
pub use config::{
    AppConfig, ChunkRules, Delays, OAuthConfig, RateLimits, SimConfig, UnauditedRule, WebhookConfig,
};
pub use model::{CreatorSettings, Endpoint, FaultKind, FaultSpec, WebhookFaults};

/// Shared simulator state.
#[derive(Debug)]
pub struct Sim {
    pub(crate) clock: SimClock,
    pub(crate) world: Mutex<model::World>,
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
}

impl Sim {
    pub(crate) fn world(&self) -> MutexGuard<'_, model::World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct TikTokSim;

impl TikTokSim {
    /// Listens on 127.0.0.1 with an ephemeral port.
    pub async fn start(cfg: SimConfig) -> std::io::Result<SimHandle> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), cfg).await
    }

    pub async fn start_on(addr: SocketAddr, cfg: SimConfig) -> std::io::Result<SimHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let timeout = Duration::from_millis(cfg.webhooks.request_timeout_ms);
        let sim = Arc::new(Sim {
            clock: SimClock::new(cfg.start_unix, cfg.time_scale),
            world: Mutex::new(model::World::new(cfg, Some(tx))),
            base_url: base_url.clone(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(std::io::Error::other)?,
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = server::router(sim.clone());
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stop_rx.await;
        });
        let server = tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "tiktok-sim server stopped");
            }
        });
        let ticker = {
            let sim = sim.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let now = sim.clock.now_ms();
                    sim.world().tick(now);
                }
            })
        };
        let deliverer = tokio::spawn(webhooks::run(sim.clone(), rx));
        Ok(SimHandle {
            base_url,
            addr,
            sim,
            stop: Some(stop_tx),
            tasks: vec![server, ticker, deliverer],
        })
    }
}

/// A running simulator; stops when dropped.
#[derive(Debug)]
pub struct SimHandle {
    pub base_url: String,
    pub addr: SocketAddr,
    sim: Arc<Sim>,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// Ground truth, the same document as `GET /_sim/inspect`.
    pub fn inspect(&self) -> Value {
        let now = self.sim.clock.now_ms();
        let mut w = self.sim.world();
        w.tick(now);
        w.inspect(now)
    }

    pub fn now_unix(&self) -> i64 {
        self.sim.clock.now_secs()
    }

    /// Jumps simulated time and runs the state machines.
    pub fn advance(&self, secs: i64) {
        self.sim.clock.advance_ms(secs * 1000);
        let now = self.sim.clock.now_ms();
        self.sim.world().tick(now);
    }

    pub fn upsert_creator(&self, settings: CreatorSettings) -> CreatorSettings {
        self.sim.world().upsert_creator(settings)
    }

    /// Issues tokens without the browser flow; the same JSON as the token endpoint.
    pub fn mint_tokens(&self, open_id: &str, scopes: &[&str]) -> Value {
        let now = self.sim.clock.now_ms();
        let mut w = self.sim.world();
        w.ensure_creator(open_id);
        w.issue_tokens(
            open_id,
            scopes.iter().map(|s| (*s).to_owned()).collect(),
            now,
        )
    }

    pub fn inject(&self, fault: FaultSpec) {
        server::add_fault(&mut self.sim.world(), fault);
    }

    pub fn webhook_faults(&self, faults: WebhookFaults) {
        self.sim.world().webhook_faults = faults;
    }

    /// Applies a JSON merge patch to the configuration (e.g. `{"app":{"audited":false}}`).
    pub fn patch_config(&self, patch: &Value) -> Result<SimConfig, serde_json::Error> {
        server::patch_config(&mut self.sim.world(), patch)
    }

    pub fn config(&self) -> SimConfig {
        self.sim.world().cfg.clone()
    }

    /// The reason the next created publish will fail with once processed.
    pub fn fail_next_publish(&self, reason: &str) {
        self.sim.world().next_publish_fail = Some(reason.to_owned());
    }

    /// The next `count` publishes stay in processing (a stuck TikTok-side job) until released
    /// with [`SimHandle::set_stuck`].
    pub fn stick_next_publishes(&self, count: u32) {
        self.sim.world().stuck_next = count;
    }

    pub fn set_stuck(&self, publish_id: &str, stuck: bool) {
        if let Some(p) = self.sim.world().publishes.get_mut(publish_id) {
            p.stuck = stuck;
        }
    }

    /// TikTok recovers: every stuck publish resumes processing and no new one sticks. Returns
    /// how many were released.
    pub fn release_stuck(&self) -> usize {
        let mut world = self.sim.world();
        world.stuck_next = 0;
        let mut released = 0;
        for p in world.publishes.values_mut().filter(|p| p.stuck) {
            p.stuck = false;
            released += 1;
        }
        released
    }

    /// The creator opens the inbox draft and posts it.
    pub fn user_posts_inbox_share(&self, publish_id: &str) -> bool {
        server::user_post(&self.sim, publish_id)
    }

    /// Revokes a user's authorisation as if they disconnected the app (webhook `authorization.removed`).
    pub fn revoke_user(&self, open_id: &str, reason: i64) -> bool {
        server::revoke_user(&self.sim, open_id, reason)
    }

    pub fn expire_access_token(&self, access_token: &str) {
        let now = self.sim.clock.now_ms();
        if let Some(t) = self.sim.world().access.get_mut(access_token) {
            t.expires_ms = now;
        }
    }

    pub fn take_down(&self, publish_id: &str) -> bool {
        server::take_down(&self.sim, publish_id)
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}
