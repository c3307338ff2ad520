#![allow(clippy::result_large_err)]

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::Digest;

use crate::{
    Sim,
    config::{SimConfig, UnauditedRule},
    model::{
        CodeGrant, CreatorSettings, Endpoint, FaultKind, FaultSpec, Publish, SCOPE_PUBLISH,
        SCOPE_UPLOAD, Status, UploadTask, World,
    },
};

type S = State<Arc<Sim>>;

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v2/auth/authorize/", get(authorize))
        .route("/v2/oauth/token/", post(token))
        .route("/v2/oauth/revoke/", post(revoke))
        .route("/v2/post/publish/creator_info/query/", post(creator_info))
        .route("/v2/post/publish/video/init/", post(video_init))
        .route("/v2/post/publish/inbox/video/init/", post(inbox_init))
        .route("/v2/post/publish/status/fetch/", post(status_fetch))
        .route("/v2/post/publish/cancel/", post(cancel))
        .route("/upload/", put(upload))
        .route("/_sim/inspect", get(ctl_inspect))
        .route("/_sim/config", get(ctl_config).post(ctl_patch_config))
        .route("/_sim/creators", get(ctl_creators).post(ctl_upsert_creator))
        .route("/_sim/tokens", post(ctl_mint_tokens))
        .route("/_sim/tokens/revoke", post(ctl_revoke))
        .route("/_sim/tokens/expire", post(ctl_expire))
        .route("/_sim/faults", post(ctl_fault).delete(ctl_clear_faults))
        .route("/_sim/webhook-faults", post(ctl_webhook_faults))
        .route("/_sim/clock", get(ctl_clock))
        .route("/_sim/clock/advance", post(ctl_advance))
        .route("/_sim/next-publish-fail", post(ctl_next_fail))
        .route("/_sim/stuck-next", post(ctl_stuck_next))
        .route("/_sim/publishes/{id}/{action}", post(ctl_publish_action))
        .with_state(sim)
}

// ---------------------------------------------------------------------------------------------
// Response helpers

fn with_log_id(mut resp: Response, log_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(log_id) {
        resp.headers_mut().insert("x-tt-logid", v);
    }
    resp
}

fn api_ok(data: Option<Value>, log_id: &str) -> Response {
    let mut body = json!({"error": {"code": "ok", "message": "", "log_id": log_id}});
    if let Some(d) = data {
        body["data"] = d;
    }
    with_log_id((StatusCode::OK, axum::Json(body)).into_response(), log_id)
}

fn api_err(status: u16, code: &str, message: &str, log_id: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "log_id": log_id}});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_log_id((status, axum::Json(body)).into_response(), log_id)
}

fn oauth_err(status: u16, error: &str, description: &str, log_id: &str) -> Response {
    let body = json!({"error": error, "error_description": description, "log_id": log_id});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    with_log_id((status, axum::Json(body)).into_response(), log_id)
}

/// A response whose body fails after the headers: the connection is cut mid-answer.
fn broken_response() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other(
            "connection dropped by fault injection",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn invalid(w: &World, message: &str, log_id: &str) -> Response {
    api_err(400, &w.cfg.invalid_param_code, message, log_id)
}

// ---------------------------------------------------------------------------------------------
// Fault and auth plumbing shared by the posting endpoints

/// What a fault does to a request: short-circuit (no effect) or alter the delivery of a real answer.
enum Pre {
    Reject(Response),
    After(Option<FaultKind>),
}

fn pre_fault(w: &mut World, ep: Endpoint, log_id: &str) -> Pre {
    *w.requests.entry(format!("{ep:?}")).or_default() += 1;
    match w.take_fault(ep) {
        Some(FaultKind::Status { status }) => {
            Pre::Reject(api_err(status, "internal_error", "injected", log_id))
        }
        Some(FaultKind::Error { status, code }) => {
            Pre::Reject(api_err(status, &code, "injected", log_id))
        }
        Some(FaultKind::RateLimit) => {
            Pre::Reject(api_err(429, "rate_limit_exceeded", "injected", log_id))
        }
        other => Pre::After(other),
    }
}

async fn deliver(resp: Response, fault: Option<FaultKind>) -> Response {
    match fault {
        Some(FaultKind::TimeoutAfterAccept { delay_ms }) => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            resp
        }
        Some(FaultKind::DropAfterAccept) => broken_response(),
        _ => resp,
    }
}

struct Caller {
    token: String,
    open_id: String,
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(|s| s.trim().to_owned())
}

/// Token validity, scope (any of `scopes`) and the per-token window, in that order.
fn authorize_call(
    w: &mut World,
    headers: &HeaderMap,
    scopes: &[&str],
    bucket: Option<(&'static str, u32)>,
    endpoint: &str,
    now: i64,
    log_id: &str,
) -> Result<Caller, Response> {
    let Some(token) = bearer(headers) else {
        return Err(api_err(
            401,
            "access_token_invalid",
            "The access token is not found in the request.",
            log_id,
        ));
    };
    let Some(t) = w.access.get(&token).cloned() else {
        return Err(api_err(
            401,
            "access_token_invalid",
            "The access token is invalid or not found in the request.",
            log_id,
        ));
    };
    if t.revoked || t.expires_ms <= now {
        return Err(api_err(
            401,
            "access_token_invalid",
            "The access token is invalid or has expired.",
            log_id,
        ));
    }
    if !scopes.iter().any(|s| t.scopes.iter().any(|g| g == s)) {
        return Err(api_err(
            401,
            "scope_not_authorized",
            "The user did not authorize the scope required.",
            log_id,
        ));
    }
    if let Some((name, limit)) = bucket
        && !w.admit(&token, name, limit, now)
    {
        {
            w.violation(
                "rate_limit",
                endpoint,
                Some(&t.open_id),
                now,
                format!("{name} over {limit}/window"),
            );
            let mut r = api_err(
                429,
                "rate_limit_exceeded",
                "API rate limit exceeded.",
                log_id,
            );
            if w.cfg.limits.send_retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            return Err(r);
        }
    }
    Ok(Caller {
        token,
        open_id: t.open_id,
    })
}

fn parse_json(body: &Bytes) -> Option<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(json!({}));
    }
    serde_json::from_slice(body).ok()
}

/// Counts concurrent inits per account for the inspection API; decrements on drop (even when the
/// client disconnects and the handler is cancelled).
struct InFlight {
    sim: Arc<Sim>,
    open_id: String,
}

impl InFlight {
    fn enter(sim: &Arc<Sim>, w: &mut World, open_id: &str) -> Self {
        let s = w.accounts.entry(open_id.to_owned()).or_default();
        s.inits_in_flight += 1;
        s.max_inits_in_flight = s.max_inits_in_flight.max(s.inits_in_flight);
        Self {
            sim: sim.clone(),
            open_id: open_id.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = self.sim.world().accounts.get_mut(&self.open_id) {
            s.inits_in_flight = s.inits_in_flight.saturating_sub(1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth

async fn authorize(State(sim): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let now = sim.clock.now_ms();
    let mut w = sim.world();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    let Ok(mut target) = url::Url::parse(&redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response();
    };
    let state = get("state");
    let error = if get("client_key") != w.cfg.client_key {
        Some(("invalid_client", "client_key is unknown"))
    } else if get("response_type") != "code" {
        Some(("unsupported_response_type", "response_type must be code"))
    } else if get("deny") == "1" {
        Some(("access_denied", "the user denied the request"))
    } else {
        None
    };
    {
        let mut qp = target.query_pairs_mut();
        if let Some((e, d)) = error {
            qp.append_pair("error", e)
                .append_pair("error_description", d);
        } else {
            let open_id = match q.get("open_id") {
                Some(o) => o.clone(),
                None if w.cfg.auto_create_users => w.open_id(),
                None => return (StatusCode::BAD_REQUEST, "unknown user").into_response(),
            };
            w.ensure_creator(&open_id);
            let scopes: Vec<String> = get("scope")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let code = w.token("code.");
            let ttl = w.cfg.oauth.code_ttl_secs as i64 * 1000;
            w.codes.insert(
                code.clone(),
                CodeGrant {
                    open_id,
                    scopes: scopes.clone(),
                    redirect_uri: redirect_uri.clone(),
                    expires_ms: now + ttl,
                },
            );
            qp.append_pair("code", &code)
                .append_pair("scopes", &scopes.join(","));
        }
        qp.append_pair("state", &state);
    }
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, target.as_str())
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn token(State(sim): S, body: Bytes) -> Response {
    let now = sim.clock.now_ms();
    let (resp, fault) = {
        let mut w = sim.world();
        let log_id = w.log_id(now);
        let fault = match pre_fault(&mut w, Endpoint::Token, &log_id) {
            Pre::Reject(r) => return r,
            Pre::After(f) => f,
        };
        let f = form(&body);
        let st = w.cfg.oauth.error_http_status;
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let resp = if get("client_key") != w.cfg.client_key
            || get("client_secret") != w.cfg.client_secret
        {
            oauth_err(
                st,
                "invalid_client",
                "Client key or secret is invalid.",
                &log_id,
            )
        } else {
            match get("grant_type").as_str() {
                "authorization_code" => match w.codes.remove(&get("code")) {
                    Some(c) if c.expires_ms > now && c.redirect_uri == get("redirect_uri") => {
                        with_log_id(
                            axum::Json(w.issue_tokens(&c.open_id, c.scopes, now)).into_response(),
                            &log_id,
                        )
                    }
                    Some(c) if c.redirect_uri != get("redirect_uri") => oauth_err(
                        st,
                        "invalid_request",
                        "redirect_uri does not match.",
                        &log_id,
                    ),
                    _ => oauth_err(
                        st,
                        "invalid_grant",
                        "Authorization code is expired or invalid.",
                        &log_id,
                    ),
                },
                "refresh_token" => {
                    let rt = get("refresh_token");
                    match w.refresh.get(&rt).cloned() {
                        Some(r) if r.valid && r.expires_ms > now => {
                            let rotate = w.cfg.oauth.rotate_refresh_tokens;
                            if rotate && let Some(old) = w.refresh.get_mut(&rt) {
                                old.valid = false;
                            }
                            let keep = (!rotate).then_some(rt);
                            let v =
                                w.issue_with_family(&r.open_id, r.scopes, now, r.expires_ms, keep);
                            with_log_id(axum::Json(v).into_response(), &log_id)
                        }
                        _ => oauth_err(
                            st,
                            "invalid_grant",
                            "Refresh token is invalid or expired.",
                            &log_id,
                        ),
                    }
                }
                _ => oauth_err(
                    st,
                    "unsupported_grant_type",
                    "grant_type is not supported.",
                    &log_id,
                ),
            }
        };
        (resp, fault)
    };
    deliver(resp, fault).await
}

async fn revoke(State(sim): S, body: Bytes) -> Response {
    let now = sim.clock.now_ms();
    let (resp, fault) = {
        let mut w = sim.world();
        let log_id = w.log_id(now);
        let fault = match pre_fault(&mut w, Endpoint::Revoke, &log_id) {
            Pre::Reject(r) => return r,
            Pre::After(f) => f,
        };
        let f = form(&body);
        let st = w.cfg.oauth.error_http_status;
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let resp = if get("client_key") != w.cfg.client_key
            || get("client_secret") != w.cfg.client_secret
        {
            oauth_err(
                st,
                "invalid_client",
                "Client key or secret is invalid.",
                &log_id,
            )
        } else {
            match w.access.get(&get("token")).map(|t| t.open_id.clone()) {
                Some(open_id) => {
                    drop(w);
                    revoke_user(&sim, &open_id, 5);
                    with_log_id(axum::Json(json!({})).into_response(), &log_id)
                }
                None => oauth_err(st, "invalid_request", "token is invalid.", &log_id),
            }
        };
        (resp, fault)
    };
    deliver(resp, fault).await
}

pub(crate) fn revoke_user(sim: &Arc<Sim>, open_id: &str, reason: i64) -> bool {
    let now = sim.clock.now_ms();
    let mut w = sim.world();
    let live = w.revoke_user(open_id);
    if live {
        let ids: Vec<String> = w
            .publishes
            .values()
            .filter(|p| {
                p.open_id == open_id
                    && !p.status.is_terminal()
                    && p.status != Status::SendToUserInbox
            })
            .map(|p| p.publish_id.clone())
            .collect();
        w.emit(
            "authorization.removed",
            open_id,
            json!({"reason": reason}),
            now,
        );
        for id in ids {
            w.fail_now(&id, "auth_removed", now);
        }
    }
    live
}

// ---------------------------------------------------------------------------------------------
// Content Posting

async fn creator_info(State(sim): S, headers: HeaderMap, body: Bytes) -> Response {
    let now = sim.clock.now_ms();
    let (resp, fault) = {
        let mut w = sim.world();
        let log_id = w.log_id(now);
        let fault = match pre_fault(&mut w, Endpoint::CreatorInfo, &log_id) {
            Pre::Reject(r) => return r,
            Pre::After(f) => f,
        };
        let limit = w.cfg.limits.creator_info_per_window;
        let resp = match authorize_call(
            &mut w,
            &headers,
            &[SCOPE_PUBLISH],
            Some(("creator_info", limit)),
            "creator_info",
            now,
            &log_id,
        ) {
            Err(r) => r,
            Ok(c) => {
                if parse_json(&body).is_none() {
                    invalid(&w, "Request body is not valid JSON.", &log_id)
                } else {
                    let posts = w.direct_posts_24h(&c.open_id, now);
                    let active = w.active_users_24h(now);
                    let cap = w.active_user_cap();
                    let default_cap = w.cfg.default_daily_post_cap;
                    let cr = w.ensure_creator(&c.open_id).clone();
                    // Spam and cap answers are HTTP 200 on this endpoint, by design.
                    if cr.banned {
                        api_err(
                            200,
                            "spam_risk_user_banned_from_posting",
                            "The user is banned from posting.",
                            &log_id,
                        )
                    } else if posts >= cr.daily_post_cap.unwrap_or(default_cap) {
                        api_err(
                            200,
                            "spam_risk_too_many_posts",
                            "The user has reached the daily post limit.",
                            &log_id,
                        )
                    } else if cap.is_some_and(|cap| {
                        !active.contains(&c.open_id) && active.len() as u32 >= cap
                    }) {
                        api_err(
                            200,
                            "reached_active_user_cap",
                            "The app reached its daily active user cap.",
                            &log_id,
                        )
                    } else {
                        api_ok(
                            Some(json!({
                                "creator_avatar_url": cr.avatar_url,
                                "creator_username": cr.username,
                                "creator_nickname": cr.nickname,
                                "privacy_level_options": cr.privacy_options(),
                                "comment_disabled": cr.comment_disabled,
                                "duet_disabled": cr.duet_disabled || cr.private_account,
                                "stitch_disabled": cr.stitch_disabled || cr.private_account,
                                "max_video_post_duration_sec": cr.max_video_post_duration_sec,
                            })),
                            &log_id,
                        )
                    }
                }
            }
        };
        (resp, fault)
    };
    deliver(resp, fault).await
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn url_verified(w: &World, url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    if u.scheme() != "https" {
        return false;
    }
    let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
    let by_domain = w.cfg.app.verified_domains.iter().any(|d| {
        let d = d.to_ascii_lowercase();
        host == d || host.ends_with(&format!(".{d}"))
    });
    by_domain
        || w.cfg
            .app
            .verified_prefixes
            .iter()
            .any(|p| url.starts_with(p.as_str()))
}

/// Validates `source_info`; returns (video_url, Some((size, chunk, count))) or the error response.
#[allow(clippy::type_complexity)]
fn check_source(
    w: &mut World,
    src: &Value,
    endpoint: &str,
    open_id: &str,
    now: i64,
    log_id: &str,
) -> Result<(Option<String>, Option<(u64, u64, u64)>), Response> {
    match src.get("source").and_then(Value::as_str) {
        Some("PULL_FROM_URL") => {
            let Some(url) = src.get("video_url").and_then(Value::as_str) else {
                return Err(invalid(
                    w,
                    "video_url is required for PULL_FROM_URL.",
                    log_id,
                ));
            };
            if !url_verified(w, url) {
                return Err(api_err(
                    403,
                    "url_ownership_unverified",
                    "The URL domain or prefix is not verified.",
                    log_id,
                ));
            }
            Ok((Some(url.to_owned()), None))
        }
        Some("FILE_UPLOAD") => {
            let n = |k: &str| src.get(k).and_then(Value::as_u64);
            let (Some(size), Some(chunk), Some(count)) =
                (n("video_size"), n("chunk_size"), n("total_chunk_count"))
            else {
                return Err(invalid(
                    w,
                    "video_size, chunk_size and total_chunk_count are required.",
                    log_id,
                ));
            };
            if let Err(why) = chunk_rule_check(w, size, chunk, count) {
                w.violation(
                    "chunk_rules",
                    endpoint,
                    Some(open_id),
                    now,
                    format!(
                        "{why} (video_size {size}, chunk_size {chunk}, total_chunk_count {count})"
                    ),
                );
                return Err(invalid(w, "The chunk size is invalid", log_id));
            }
            Ok((None, Some((size, chunk, count))))
        }
        _ => Err(invalid(
            w,
            "source must be FILE_UPLOAD or PULL_FROM_URL.",
            log_id,
        )),
    }
}

fn chunk_rule_check(w: &World, size: u64, chunk: u64, count: u64) -> Result<(), String> {
    let r = &w.cfg.chunk_rules;
    if size == 0 || size > w.cfg.max_video_size {
        return Err(format!("video_size outside 1..={}", w.cfg.max_video_size));
    }
    if chunk == 0 || chunk > size {
        return Err("chunk_size outside 1..=video_size".into());
    }
    if count != size / chunk {
        return Err("total_chunk_count != floor(video_size / chunk_size)".into());
    }
    if count == 0 || count > r.max_chunks {
        return Err(format!("total_chunk_count outside 1..={}", r.max_chunks));
    }
    if size < r.whole_below && (count != 1 || chunk != size) {
        return Err(
            "videos under the minimum must be one chunk with chunk_size = video_size".into(),
        );
    }
    if size > r.multi_above && count < 2 {
        return Err("videos over the single-chunk maximum need several chunks".into());
    }
    if count == 1 {
        if r.strict_single_chunk && chunk != size {
            return Err("single chunk with chunk_size != video_size".into());
        }
        return Ok(());
    }
    if r.reject_multi_chunk {
        return Err("multi-chunk uploads are rejected (incident mode)".into());
    }
    if chunk < r.min_chunk || chunk > r.max_chunk {
        return Err(format!(
            "chunk_size outside [{}, {}]",
            r.min_chunk, r.max_chunk
        ));
    }
    let final_chunk = size - (count - 1) * chunk;
    if final_chunk > r.max_final_chunk {
        return Err(format!(
            "final chunk {final_chunk} over {}",
            r.max_final_chunk
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn create_publish(
    sim: &Arc<Sim>,
    w: &mut World,
    open_id: &str,
    direct: bool,
    title: Option<String>,
    privacy_level: Option<String>,
    video_url: Option<String>,
    file: Option<(u64, u64, u64)>,
    now: i64,
) -> Value {
    let publish_id = w.publish_id(direct, video_url.is_some());
    let active = w
        .publishes
        .values()
        .filter(|p| {
            p.open_id == open_id && !p.status.is_terminal() && p.status != Status::SendToUserInbox
        })
        .count() as u32
        + 1;
    let stats = w.accounts.entry(open_id.to_owned()).or_default();
    stats.max_active_publishes = stats.max_active_publishes.max(active);
    if direct {
        stats.direct_post_times.push(now);
    }
    let upload = match file {
        Some((video_size, chunk_size, total_chunk_count)) => Some(UploadTask {
            upload_id: format!("{}", w.post_id()),
            upload_token: w.secret_token(""),
            video_size,
            chunk_size,
            total_chunk_count,
            expires_ms: now + w.cfg.upload_url_ttl_secs as i64 * 1000,
            received: 0,
            hasher: sha2::Sha256::new(),
            puts: 0,
            busy: false,
            done_ms: None,
        }),
        None => None,
    };
    let upload_url = upload.as_ref().map(|u| {
        format!(
            "{}/upload/?upload_id={}&upload_token={}",
            sim.base_url, u.upload_id, u.upload_token
        )
    });
    if let Some(u) = &upload {
        w.uploads.insert(u.upload_id.clone(), publish_id.clone());
    }
    let public =
        direct && privacy_level.as_deref() == Some("PUBLIC_TO_EVERYONE") && w.cfg.app.audited;
    let inject_fail = w.next_publish_fail.take();
    let stuck = w.stuck_next > 0;
    w.stuck_next = w.stuck_next.saturating_sub(1);
    w.publishes.insert(
        publish_id.clone(),
        Publish {
            publish_id: publish_id.clone(),
            open_id: open_id.to_owned(),
            direct,
            status: if video_url.is_some() {
                Status::ProcessingDownload
            } else {
                Status::ProcessingUpload
            },
            video_url,
            title,
            privacy_level,
            upload,
            created_ms: now,
            status_ms: now,
            fail_reason: None,
            inject_fail,
            stuck,
            public,
            post_ids: Vec::new(),
            complete_ms: None,
            taken_down: false,
        },
    );
    let mut data = json!({"publish_id": publish_id});
    if let Some(u) = upload_url {
        data["upload_url"] = json!(u);
    }
    data
}

async fn video_init(State(sim): S, headers: HeaderMap, body: Bytes) -> Response {
    init_common(sim, headers, body, true).await
}

async fn inbox_init(State(sim): S, headers: HeaderMap, body: Bytes) -> Response {
    init_common(sim, headers, body, false).await
}

async fn init_common(sim: Arc<Sim>, headers: HeaderMap, body: Bytes, direct: bool) -> Response {
    let now = sim.clock.now_ms();
    let (ep, name, scope) = if direct {
        (Endpoint::VideoInit, "video/init", SCOPE_PUBLISH)
    } else {
        (Endpoint::InboxInit, "inbox/video/init", SCOPE_UPLOAD)
    };
    let (resp, fault, _guard) = {
        let mut w = sim.world();
        let log_id = w.log_id(now);
        let fault = match pre_fault(&mut w, ep, &log_id) {
            Pre::Reject(r) => return r,
            Pre::After(f) => f,
        };
        let limit = w.cfg.limits.init_per_window;
        let caller = match authorize_call(
            &mut w,
            &headers,
            &[scope],
            Some(("init", limit)),
            name,
            now,
            &log_id,
        ) {
            Err(r) => return r,
            Ok(c) => c,
        };
        let guard = InFlight::enter(&sim, &mut w, &caller.open_id);
        let resp = init_decide(&sim, &mut w, &caller, &body, direct, name, now, &log_id);
        (resp, fault, guard)
    };
    deliver(resp, fault).await
}

#[allow(clippy::too_many_arguments)]
fn init_decide(
    sim: &Arc<Sim>,
    w: &mut World,
    caller: &Caller,
    body: &Bytes,
    direct: bool,
    name: &str,
    now: i64,
    log_id: &str,
) -> Response {
    let open_id = caller.open_id.as_str();
    let _ = &caller.token;
    let Some(v) = parse_json(body) else {
        return invalid(w, "Request body is not valid JSON.", log_id);
    };
    let Some(src) = v.get("source_info").cloned() else {
        return invalid(w, "source_info is required.", log_id);
    };
    let cr = w.ensure_creator(open_id).clone();
    if cr.banned {
        return api_err(
            403,
            "spam_risk_user_banned_from_posting",
            "The user is banned from posting.",
            log_id,
        );
    }
    let (mut title, mut privacy) = (None, None);
    if direct {
        let Some(pi) = v.get("post_info") else {
            return invalid(w, "post_info is required.", log_id);
        };
        let posts = w.direct_posts_24h(open_id, now);
        let cap = cr.daily_post_cap.unwrap_or(w.cfg.default_daily_post_cap);
        if posts >= cap {
            w.violation(
                "daily_post_cap",
                name,
                Some(open_id),
                now,
                format!("{posts} direct posts in 24 h, cap {cap}"),
            );
            return api_err(
                403,
                "spam_risk_too_many_posts",
                "The user has reached the daily post limit.",
                log_id,
            );
        }
        let active = w.active_users_24h(now);
        if let Some(cap) = w.active_user_cap()
            && !active.iter().any(|a| a == open_id)
            && active.len() as u32 >= cap
        {
            {
                w.violation(
                    "active_user_cap",
                    name,
                    Some(open_id),
                    now,
                    format!("{} active users, cap {cap}", active.len()),
                );
                return api_err(
                    403,
                    "reached_active_user_cap",
                    "The app reached its daily active user cap.",
                    log_id,
                );
            }
        }
        let level = pi
            .get("privacy_level")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !cr.privacy_options().contains(&level) {
            return api_err(
                403,
                "privacy_level_option_mismatch",
                "privacy_level is missing or not among the creator's options.",
                log_id,
            );
        }
        if !w.cfg.app.audited {
            let rule = w.cfg.app.unaudited_rule;
            let by_level = level != "SELF_ONLY";
            let by_account = !cr.private_account;
            let hit = match rule {
                UnauditedRule::RequestedPrivacy => by_level,
                UnauditedRule::AccountPrivacy => by_account,
                UnauditedRule::Either => by_level || by_account,
            };
            if hit {
                return api_err(
                    403,
                    "unaudited_client_can_only_post_to_private_accounts",
                    "Unaudited clients can only post to a private account.",
                    log_id,
                );
            }
        }
        let brand_content = pi.get("brand_content_toggle").and_then(Value::as_bool);
        if w.cfg.strict_brand_toggle && brand_content.is_none() {
            return invalid(w, "brand_content_toggle is required.", log_id);
        }
        if brand_content == Some(true) && level == "SELF_ONLY" {
            return invalid(w, "Branded content cannot be private.", log_id);
        }
        title = pi.get("title").and_then(Value::as_str).map(str::to_owned);
        if let Some(t) = &title
            && utf16_len(t) > 2200
        {
            {
                w.violation(
                    "title_length",
                    name,
                    Some(open_id),
                    now,
                    format!("{} UTF-16 units", utf16_len(t)),
                );
                return invalid(w, "title exceeds 2200 UTF-16 units.", log_id);
            }
        }
        privacy = Some(level);
    } else {
        let pending = w.pending_shares_24h(open_id, now);
        if pending >= w.cfg.pending_share_cap {
            w.violation(
                "pending_share_cap",
                name,
                Some(open_id),
                now,
                format!("{pending} pending shares"),
            );
            return api_err(
                403,
                "spam_risk_too_many_pending_share",
                "spam_risk_too_many_pending_share",
                log_id,
            );
        }
    }
    let (video_url, file) = match check_source(w, &src, name, open_id, now, log_id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let data = create_publish(
        sim, w, open_id, direct, title, privacy, video_url, file, now,
    );
    api_ok(Some(data), log_id)
}

fn owned_publish<'a>(
    w: &'a World,
    body: &Bytes,
    open_id: &str,
    log_id: &str,
) -> Result<&'a Publish, Response> {
    let id = parse_json(body)
        .and_then(|v| {
            v.get("publish_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    match w.publishes.get(&id) {
        None => Err(api_err(
            400,
            "invalid_publish_id",
            "publish_id does not exist.",
            log_id,
        )),
        Some(p) if p.open_id != open_id => Err(api_err(
            400,
            "token_not_authorized_for_specified_publish_id",
            "The token does not have authorization for this publish_id.",
            log_id,
        )),
        Some(p) => Ok(p),
    }
}

async fn status_fetch(State(sim): S, headers: HeaderMap, body: Bytes) -> Response {
    let now = sim.clock.now_ms();
    let (resp, fault) = {
        let mut w = sim.world();
        w.tick(now);
        let log_id = w.log_id(now);
        let fault = match pre_fault(&mut w, Endpoint::Status, &log_id) {
            Pre::Reject(r) => return r,
            Pre::After(f) => f,
        };
        let limit = w.cfg.limits.status_per_window;
        let resp = match authorize_call(
            &mut w,
            &headers,
            &[SCOPE_PUBLISH, SCOPE_UPLOAD],
            Some(("status", limit)),
            "status/fetch",
            now,
            &log_id,
        ) {
            Err(r) => r,
            Ok(c) => match owned_publish(&w, &body, &c.open_id, &log_id) {
                Err(r) => r,
                Ok(p) => api_ok(Some(status_data(p)), &log_id),
            },
        };
        (resp, fault)
    };
    deliver(resp, fault).await
}

/// Only the fields that apply: FAILED carries just status and fail_reason (as seen in real traffic).
fn status_data(p: &Publish) -> Value {
    let mut d = json!({"status": p.status.as_str()});
    if p.status == Status::Failed {
        d["fail_reason"] = json!(p.fail_reason);
        return d;
    }
    if let Some(u) = &p.upload {
        d["uploaded_bytes"] = json!(u.received);
    }
    if p.status == Status::PublishComplete {
        d["publicaly_available_post_id"] = json!(p.post_ids);
    }
    d
}

async fn cancel(State(sim): S, headers: HeaderMap, body: Bytes) -> Response {
    let now = sim.clock.now_ms();
    let (resp, fault) = {
        let mut w = sim.world();
        w.tick(now);
        let log_id = w.log_id(now);
        let fault = match pre_fault(&mut w, Endpoint::Cancel, &log_id) {
            Pre::Reject(r) => return r,
            Pre::After(f) => f,
        };
        let resp = match authorize_call(
            &mut w,
            &headers,
            &[SCOPE_PUBLISH, SCOPE_UPLOAD],
            None,
            "cancel",
            now,
            &log_id,
        ) {
            Err(r) => r,
            Ok(c) => match owned_publish(&w, &body, &c.open_id, &log_id) {
                Err(r) => r,
                Ok(p) if p.status == Status::ProcessingDownload => {
                    let id = p.publish_id.clone();
                    w.fail_now(&id, "publish_cancelled", now);
                    api_ok(None, &log_id)
                }
                Ok(_) => api_err(
                    400,
                    "publish_not_cancellable",
                    "The publish is not cancellable.",
                    &log_id,
                ),
            },
        };
        (resp, fault)
    };
    deliver(resp, fault).await
}

// ---------------------------------------------------------------------------------------------
// Upload

fn progress_header(received: u64, total: u64, inclusive: bool) -> String {
    let n = if inclusive {
        received.saturating_sub(1)
    } else {
        received
    };
    format!("bytes 0-{n}/{total}")
}

fn upload_answer(status: StatusCode, progress: Option<String>, log_id: &str) -> Response {
    let mut r = status.into_response();
    if let Some(p) = progress.and_then(|p| HeaderValue::from_str(&p).ok()) {
        r.headers_mut().insert(header::CONTENT_RANGE, p);
    }
    with_log_id(r, log_id)
}

async fn drain(body: Body) {
    let mut s = body.into_data_stream();
    while let Some(Ok(_)) = s.next().await {}
}

fn parse_content_range(h: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = h
        .get(header::CONTENT_RANGE)?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("bytes ")?;
    let (range, total) = v.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// Sequential chunk PUTs. Bytes are counted and hashed, never kept.
async fn upload(
    State(sim): S,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = sim.clock.now_ms();
    let upload_id = q.get("upload_id").cloned().unwrap_or_default();
    let token = q.get("upload_token").cloned().unwrap_or_default();
    // Validate and reserve the task under the lock; stream outside it.
    let fault;
    let pre: Result<(String, u64, u64, sha2::Sha256, bool), Response> = {
        let mut w = sim.world();
        let log_id = w.log_id(now);
        *w.requests.entry("Upload".into()).or_default() += 1;
        fault = w.take_fault(Endpoint::Upload);
        let injected = match &fault {
            Some(FaultKind::Status { status }) | Some(FaultKind::Error { status, .. }) => {
                Some(*status)
            }
            Some(FaultKind::RateLimit) => Some(429),
            _ => None,
        };
        match injected {
            Some(status) => Err(upload_answer(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                None,
                &log_id,
            )),
            None => {
                let inclusive = w.cfg.progress_header_inclusive;
                let publish_id = w.uploads.get(&upload_id).cloned();
                let publish = publish_id
                    .as_ref()
                    .and_then(|id| w.publishes.get(id))
                    .map(|p| p.open_id.clone());
                let open_id = publish.clone();
                match publish_id
                    .and_then(|id| w.publishes.get_mut(&id))
                    .and_then(|p| p.upload.as_mut())
                {
                    Some(u) if u.upload_token == token => {
                        let total = u.video_size;
                        let progress = progress_header(u.received, total, inclusive);
                        let declared_len = headers
                            .get(header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok());
                        let range = parse_content_range(&headers);
                        if now >= u.expires_ms {
                            Err(upload_answer(StatusCode::FORBIDDEN, None, &log_id))
                        } else if u.done_ms.is_some() || u.busy {
                            Err(upload_answer(
                                StatusCode::RANGE_NOT_SATISFIABLE,
                                Some(progress),
                                &log_id,
                            ))
                        } else {
                            match (range, declared_len) {
                                (Some((a, b, t)), Some(len))
                                    if t == total && b >= a && b < total =>
                                {
                                    let index = a / u.chunk_size.max(1);
                                    let last = index + 1 >= u.total_chunk_count;
                                    let expected_end = if last {
                                        total - 1
                                    } else {
                                        a + u.chunk_size - 1
                                    };
                                    if a != u.received {
                                        Err(upload_answer(
                                            StatusCode::RANGE_NOT_SATISFIABLE,
                                            Some(progress),
                                            &log_id,
                                        ))
                                    } else if b != expected_end || len != b - a + 1 {
                                        let detail = format!(
                                            "PUT bytes {a}-{b} (Content-Length {len}); plan expects {a}-{expected_end}"
                                        );
                                        w.violation(
                                            "chunk_rules",
                                            "upload",
                                            open_id.as_deref(),
                                            now,
                                            detail,
                                        );
                                        Err(upload_answer(
                                            StatusCode::BAD_REQUEST,
                                            Some(progress),
                                            &log_id,
                                        ))
                                    } else {
                                        u.busy = true;
                                        Ok((log_id, len, total, u.hasher.clone(), inclusive))
                                    }
                                }
                                _ => Err(upload_answer(
                                    StatusCode::BAD_REQUEST,
                                    Some(progress),
                                    &log_id,
                                )),
                            }
                        }
                    }
                    _ => Err(upload_answer(StatusCode::NOT_FOUND, None, &log_id)),
                }
            }
        }
    };
    let (log_id, len, total, mut hasher, inclusive) = match pre {
        Ok(x) => x,
        Err(r) => {
            drain(body).await;
            return r;
        }
    };
    let busy = Busy {
        sim: sim.clone(),
        upload_id: upload_id.clone(),
    };
    let mut got = 0u64;
    let mut stream = body.into_data_stream();
    let mut broken = false;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(b) => {
                got += b.len() as u64;
                if got <= len {
                    hasher.update(&b);
                }
            }
            Err(_) => {
                broken = true;
                break;
            }
        }
    }
    let resp = {
        let mut w = sim.world();
        let now = sim.clock.now_ms();
        let publish_id = w.uploads.get(&upload_id).cloned().unwrap_or_default();
        match w
            .publishes
            .get_mut(&publish_id)
            .and_then(|p| p.upload.as_mut())
        {
            None => upload_answer(StatusCode::NOT_FOUND, None, &log_id),
            Some(u) => {
                u.busy = false;
                if broken || got != len {
                    let progress = progress_header(u.received, total, inclusive);
                    upload_answer(StatusCode::BAD_REQUEST, Some(progress), &log_id)
                } else {
                    u.received += got;
                    u.hasher = hasher;
                    u.puts += 1;
                    let progress = progress_header(u.received, total, inclusive);
                    if u.received == total {
                        u.done_ms = Some(now);
                        upload_answer(StatusCode::CREATED, Some(progress), &log_id)
                    } else {
                        upload_answer(StatusCode::PARTIAL_CONTENT, Some(progress), &log_id)
                    }
                }
            }
        }
    };
    drop(busy);
    deliver(resp, fault).await
}

/// Releases an upload reserved for one PUT even when the handler is cancelled mid-body (client gone).
struct Busy {
    sim: Arc<Sim>,
    upload_id: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut w = self.sim.world();
        let id = w.uploads.get(&self.upload_id).cloned().unwrap_or_default();
        if let Some(u) = w.publishes.get_mut(&id).and_then(|p| p.upload.as_mut()) {
            u.busy = false;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Control and inspection

fn ctl_json(v: Value) -> Response {
    axum::Json(v).into_response()
}

fn bad(msg: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": msg.to_string()})),
    )
        .into_response()
}

async fn ctl_inspect(State(sim): S) -> Response {
    let now = sim.clock.now_ms();
    let mut w = sim.world();
    w.tick(now);
    ctl_json(w.inspect(now))
}

async fn ctl_config(State(sim): S) -> Response {
    ctl_json(serde_json::to_value(&sim.world().cfg).unwrap_or_default())
}

pub(crate) fn patch_config(w: &mut World, patch: &Value) -> Result<SimConfig, serde_json::Error> {
    let mut current = serde_json::to_value(&w.cfg)?;
    merge(&mut current, patch);
    let cfg: SimConfig = serde_json::from_value(current)?;
    w.cfg = cfg.clone();
    Ok(cfg)
}

fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

async fn ctl_patch_config(State(sim): S, body: Bytes) -> Response {
    let Some(patch) = parse_json(&body) else {
        return bad("invalid JSON");
    };
    match patch_config(&mut sim.world(), &patch) {
        Ok(cfg) => ctl_json(serde_json::to_value(cfg).unwrap_or_default()),
        Err(e) => bad(e),
    }
}

async fn ctl_creators(State(sim): S) -> Response {
    let w = sim.world();
    ctl_json(json!(w.creators.values().collect::<Vec<_>>()))
}

async fn ctl_upsert_creator(State(sim): S, body: Bytes) -> Response {
    match serde_json::from_slice::<CreatorSettings>(&body) {
        Ok(s) => ctl_json(json!(sim.world().upsert_creator(s))),
        Err(e) => bad(e),
    }
}

async fn ctl_mint_tokens(State(sim): S, body: Bytes) -> Response {
    let v = parse_json(&body).unwrap_or_default();
    let now = sim.clock.now_ms();
    let mut w = sim.world();
    let open_id = match v.get("open_id").and_then(Value::as_str) {
        Some(o) => o.to_owned(),
        None => w.open_id(),
    };
    let scopes: Vec<String> = v
        .get("scopes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_else(|| {
            vec![
                SCOPE_PUBLISH.into(),
                SCOPE_UPLOAD.into(),
                "user.info.basic".into(),
            ]
        });
    w.ensure_creator(&open_id);
    ctl_json(w.issue_tokens(&open_id, scopes, now))
}

async fn ctl_revoke(State(sim): S, body: Bytes) -> Response {
    let v = parse_json(&body).unwrap_or_default();
    let reason = v.get("reason").and_then(Value::as_i64).unwrap_or(1);
    let open_id = match v.get("open_id").and_then(Value::as_str) {
        Some(o) => Some(o.to_owned()),
        None => v
            .get("access_token")
            .and_then(Value::as_str)
            .and_then(|t| sim.world().access.get(t).map(|a| a.open_id.clone())),
    };
    match open_id {
        Some(o) => ctl_json(json!({"revoked": revoke_user(&sim, &o, reason)})),
        None => bad("open_id or access_token required"),
    }
}

async fn ctl_expire(State(sim): S, body: Bytes) -> Response {
    let v = parse_json(&body).unwrap_or_default();
    let now = sim.clock.now_ms();
    let mut w = sim.world();
    let t = v
        .get("access_token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match w.access.get_mut(t) {
        Some(a) => {
            a.expires_ms = now;
            ctl_json(json!({"expired": true}))
        }
        None => bad("unknown access_token"),
    }
}

pub(crate) fn add_fault(w: &mut World, f: FaultSpec) {
    if f.count > 0 {
        w.faults
            .entry(f.endpoint)
            .or_default()
            .push_back((f.kind, f.count));
    }
}

async fn ctl_fault(State(sim): S, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultSpec>(&body) {
        Ok(f) => {
            add_fault(&mut sim.world(), f);
            ctl_json(json!({"ok": true}))
        }
        Err(e) => bad(e),
    }
}

async fn ctl_clear_faults(State(sim): S) -> Response {
    sim.world().faults.clear();
    ctl_json(json!({"ok": true}))
}

async fn ctl_webhook_faults(State(sim): S, body: Bytes) -> Response {
    match serde_json::from_slice(&body) {
        Ok(f) => {
            sim.world().webhook_faults = f;
            ctl_json(json!({"ok": true}))
        }
        Err(e) => bad(e),
    }
}

async fn ctl_clock(State(sim): S) -> Response {
    ctl_json(json!({"now_unix": sim.clock.now_secs(), "now_ms": sim.clock.now_ms()}))
}

async fn ctl_advance(State(sim): S, body: Bytes) -> Response {
    let v = parse_json(&body).unwrap_or_default();
    let secs = v.get("secs").and_then(Value::as_i64).unwrap_or(0);
    sim.clock.advance_ms(secs * 1000);
    let now = sim.clock.now_ms();
    sim.world().tick(now);
    ctl_json(json!({"now_unix": sim.clock.now_secs()}))
}

async fn ctl_next_fail(State(sim): S, body: Bytes) -> Response {
    let v = parse_json(&body).unwrap_or_default();
    sim.world().next_publish_fail = v.get("reason").and_then(Value::as_str).map(str::to_owned);
    ctl_json(json!({"ok": true}))
}

/// `{count}`: the next `count` publishes stay in processing until released.
async fn ctl_stuck_next(State(sim): S, body: Bytes) -> Response {
    let v = parse_json(&body).unwrap_or_default();
    let count = v.get("count").and_then(Value::as_u64).unwrap_or(1);
    sim.world().stuck_next = u32::try_from(count).unwrap_or(u32::MAX);
    ctl_json(json!({"ok": true}))
}

pub(crate) fn user_post(sim: &Arc<Sim>, id: &str) -> bool {
    let now = sim.clock.now_ms();
    let mut w = sim.world();
    w.tick(now);
    let Some(p) = w.publishes.get_mut(id) else {
        return false;
    };
    if p.status != Status::SendToUserInbox {
        return false;
    }
    p.status = Status::PublishComplete;
    p.status_ms = now;
    p.complete_ms = Some(now);
    p.public = true;
    let (open_id, content) = (
        p.open_id.clone(),
        json!({"publish_id": p.publish_id, "publish_type": p.publish_type()}),
    );
    w.emit("post.publish.complete", &open_id, content, now);
    true
}

pub(crate) fn take_down(sim: &Arc<Sim>, id: &str) -> bool {
    let now = sim.clock.now_ms();
    let mut w = sim.world();
    let Some(p) = w.publishes.get_mut(id) else {
        return false;
    };
    let Some(post_id) = p.post_ids.first().copied() else {
        return false;
    };
    if p.taken_down {
        return false;
    }
    p.taken_down = true;
    let (open_id, content) = (
        p.open_id.clone(),
        json!({"publish_id": p.publish_id, "post_id": post_id.to_string(), "publish_type": p.publish_type()}),
    );
    w.emit(
        "post.publish.no_longer_publicaly_available",
        &open_id,
        content,
        now,
    );
    true
}

async fn ctl_publish_action(
    State(sim): S,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let v = parse_json(&body).unwrap_or_default();
    let now = sim.clock.now_ms();
    let done = match action.as_str() {
        "fail" => {
            let reason = v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("internal")
                .to_owned();
            sim.world().fail_now(&id, &reason, now)
        }
        "user-post" => user_post(&sim, &id),
        "take-down" => take_down(&sim, &id),
        "stuck" => {
            let stuck = v.get("stuck").and_then(Value::as_bool).unwrap_or(true);
            match sim.world().publishes.get_mut(&id) {
                Some(p) => {
                    p.stuck = stuck;
                    true
                }
                None => false,
            }
        }
        _ => return bad("unknown action"),
    };
    ctl_json(json!({"done": done}))
}
