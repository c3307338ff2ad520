//! Control (`/_sim/...`): fault injection, clock, forced outcomes, inspection.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::state::{FaultSpec, Forced, StormSpec, WebhookFaults, key_id};
use crate::{Inspection, RequestInfo, Shared, webhooks};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/inspect", get(inspect_h))
        .route("/_sim/now", get(now_h))
        .route("/_sim/clock/advance", post(advance_h))
        .route("/_sim/faults", post(fault_h))
        .route("/_sim/storm", post(storm_h))
        .route("/_sim/webhooks/faults", post(webhook_faults_h))
        .route("/_sim/webhooks/release", post(release_h))
        .route("/_sim/requests/{id}/fail", post(fail_h))
        .route("/_sim/requests/{id}/complete", post(complete_h))
        .route("/_sim/requests/{id}/cancel", post(cancel_h))
        .route("/_sim/requests/{id}/clip-bytes", post(clip_bytes_h))
        .route("/_sim/requests/{id}/wire", post(wire_h))
        .route("/_sim/config", post(config_h))
        .route("/_sim/keys", post(keys_h))
        .route("/_sim/stuck-next", post(stuck_next_h))
}

pub(crate) fn inspect(sh: &Shared) -> Inspection {
    let now = sh.clock.now();
    let mut st = sh.lock();
    st.settle(&sh.cfg, now);
    let requests = st
        .order
        .iter()
        .filter_map(|id| st.requests.get(id))
        .map(|r| RequestInfo {
            request_id: r.id.clone(),
            key_id: key_id(&r.key),
            source: r.source().to_owned(),
            status: r.view(now, sh.cfg.timeline_secs).status.to_owned(),
            created_at: r.created_at,
            deleted: r.deleted,
        })
        .collect();
    Inspection {
        now,
        creates_per_source: st.creates_per_source.clone(),
        credits: st
            .credits
            .iter()
            .map(|(k, c)| (key_id(k), c.clone()))
            .collect(),
        requests,
        calls: st.calls.clone(),
        limit_violations: st.violations.clone(),
        storm_429s: st.storm_429s,
        webhook_deliveries: st.deliveries.clone(),
        pending_webhooks: st.pending.len(),
        held_webhooks: st.held.len(),
    }
}

pub(crate) fn force(sh: &Shared, id: &str, forced: Forced) -> bool {
    let now = sh.clock.now();
    let mut st = sh.lock();
    let Some(req) = st.requests.get_mut(id) else {
        return false;
    };
    if req.deleted || req.view(now, sh.cfg.timeline_secs).terminal_at.is_some() {
        return false;
    }
    req.forced = Some((now, forced));
    true
}

async fn inspect_h(State(sh): State<Arc<Shared>>) -> Json<Inspection> {
    Json(inspect(&sh))
}

async fn now_h(State(sh): State<Arc<Shared>>) -> Response {
    Json(json!({ "now": crate::state::iso(sh.clock.now()), "timeScale": sh.clock.scale() }))
        .into_response()
}

#[derive(Deserialize)]
struct Advance {
    seconds: f64,
}

async fn advance_h(State(sh): State<Arc<Shared>>, Json(a): Json<Advance>) -> Response {
    if !(a.seconds.is_finite() && a.seconds >= 0.0) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    sh.clock.advance(Duration::from_secs_f64(a.seconds));
    now_h(State(sh)).await
}

async fn fault_h(State(sh): State<Arc<Shared>>, Json(f): Json<FaultSpec>) -> StatusCode {
    sh.lock().faults.push(f);
    StatusCode::NO_CONTENT
}

async fn storm_h(State(sh): State<Arc<Shared>>, Json(s): Json<StormSpec>) -> StatusCode {
    sh.lock().storms.push(s);
    StatusCode::NO_CONTENT
}

async fn webhook_faults_h(
    State(sh): State<Arc<Shared>>,
    Json(w): Json<WebhookFaults>,
) -> StatusCode {
    sh.lock().webhook_faults = w;
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Release {
    #[serde(default)]
    reverse: bool,
}

async fn release_h(State(sh): State<Arc<Shared>>, Json(r): Json<Release>) -> Response {
    let n = webhooks::release(&sh, r.reverse);
    Json(json!({ "released": n })).into_response()
}

#[derive(Deserialize)]
struct Fail {
    #[serde(default)]
    reason: Option<String>,
}

fn forced_status(ok: bool) -> StatusCode {
    if ok {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CONFLICT
    }
}

async fn fail_h(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(f): Json<Fail>,
) -> StatusCode {
    let reason = f
        .reason
        .unwrap_or_else(|| "Internal processing error".to_owned());
    forced_status(force(&sh, &id, Forced::Failed(reason)))
}

async fn complete_h(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> StatusCode {
    forced_status(force(&sh, &id, Forced::Completed))
}

async fn cancel_h(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> StatusCode {
    forced_status(force(&sh, &id, Forced::Cancelled))
}

#[derive(Deserialize)]
struct ClipBytes {
    bytes: u64,
}

async fn clip_bytes_h(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(c): Json<ClipBytes>,
) -> StatusCode {
    let mut st = sh.lock();
    match st.requests.get_mut(&id) {
        Some(r) => {
            r.clip_bytes = Some(c.bytes);
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigPatch {
    #[serde(default)]
    default_clip_bytes: Option<u64>,
    #[serde(default)]
    files_ignore_range: Option<bool>,
    #[serde(default)]
    webhook_score_divisor: Option<f64>,
}

async fn config_h(State(sh): State<Arc<Shared>>, Json(p): Json<ConfigPatch>) -> StatusCode {
    let mut st = sh.lock();
    if let Some(b) = p.default_clip_bytes {
        st.clip_bytes = b;
    }
    if let Some(f) = p.files_ignore_range {
        st.files_ignore_range = f;
    }
    if let Some(d) = p.webhook_score_divisor {
        st.webhook_score_divisor = d;
    }
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct KeyCredits {
    key: String,
    credits: i64,
}

#[derive(Deserialize)]
struct StuckNext {
    count: u32,
}

/// The next `count` created requests hang in processing until forced.
async fn stuck_next_h(State(sh): State<Arc<Shared>>, Json(n): Json<StuckNext>) -> StatusCode {
    sh.lock().stuck_next = n.count;
    StatusCode::NO_CONTENT
}

async fn keys_h(State(sh): State<Arc<Shared>>, Json(k): Json<KeyCredits>) -> StatusCode {
    let cfg = &sh.cfg;
    sh.lock().credits_mut(&k.key, cfg).remaining = k.credits;
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    step: Option<String>,
}

async fn wire_h(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(w): Json<Wire>,
) -> StatusCode {
    let mut st = sh.lock();
    match st.requests.get_mut(&id) {
        Some(r) => {
            r.wire_status = w.status;
            r.wire_step = w.step;
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}
