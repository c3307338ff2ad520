//! The Ssemble API surface (`/api/v1/...`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Value, json};

use crate::Shared;
use crate::state::{
    ApiEndpoint, CallRecord, Fate, FaultKind, Forced, Limited, RateHeaders, SimRequest, SimState,
    file_url, generate_shorts, iso, key_id,
};

/// Languages the simulator accepts (the vendor plan's 24).
const LANGUAGES: [&str; 24] = [
    "en", "es", "fr", "de", "it", "pt", "ru", "ja", "ko", "zh", "ar", "hi", "tr", "pl", "nl", "sv",
    "no", "da", "fi", "cs", "vi", "fa", "uk", "id",
];
const PREFERRED: [&str; 6] = [
    "under30sec",
    "under60sec",
    "under90sec",
    "under3min",
    "under5min",
    "under10min",
];
const MAX_VIDEO_SECS: f64 = 18_000.0;
const MAX_WINDOW_SECS: f64 = 1200.0;

/// The template catalogue from the docs (id, name, display name).
pub(crate) const TEMPLATES: [(&str, &str, &str); 9] = [
    ("66e386d23b11d1a71b755e44", "hormozi1", "Hormozi 1"),
    ("660b8531aedb346bbe26eb43", "karaoke", "Karaoke"),
    ("66fcc4c67769688a1d5ad08a", "hormozi2", "Hormozi 2"),
    ("66a8bc861029156127f6c89a", "ali", "Ali"),
    ("660b85be34b1eda55a6a7f86", "beast", "Mr Beast"),
    ("660b859818784d713119fcc7", "simple", "Simple"),
    ("66c5cda587afa8f65d4b127e", "iman", "Iman"),
    ("66fcd14d7769688a1d5ad08d", "iman2", "Iman 2"),
    ("68a848bc9526bfd0f3068334", "box", "Box"),
];
pub(crate) const DEFAULT_TEMPLATE_ID: &str = "660b8531aedb346bbe26eb43";

type ApiFailure = (StatusCode, &'static str, String, Value);

fn invalid(message: impl Into<String>, field: &str, value: Option<&Value>) -> ApiFailure {
    (
        StatusCode::BAD_REQUEST,
        "invalid_request",
        message.into(),
        json!({ "field": field, "value": value.cloned().unwrap_or(Value::Null) }),
    )
}

pub(crate) fn set_rate_headers(h: &mut HeaderMap, r: &RateHeaders) {
    let pairs = [
        ("x-ratelimit-limit-hour", r.limit_hour.to_string()),
        ("x-ratelimit-remaining-hour", r.remaining_hour.to_string()),
        ("x-ratelimit-limit-day", r.limit_day.to_string()),
        ("x-ratelimit-remaining-day", r.remaining_day.to_string()),
        ("x-ratelimit-reset", iso(r.reset)),
    ];
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
}

pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Value,
    rate: Option<&RateHeaders>,
) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message, "details": details } })),
    )
        .into_response();
    if let Some(r) = rate {
        set_rate_headers(resp.headers_mut(), r);
    }
    resp
}

fn data_response(status: StatusCode, data: Value, rate: &RateHeaders) -> Response {
    let mut resp = (status, axum::Json(json!({ "data": data }))).into_response();
    set_rate_headers(resp.headers_mut(), rate);
    resp
}

fn record(st: &mut SimState, sh: &Shared, key: Option<&str>, endpoint: ApiEndpoint, status: u16) {
    st.calls.push(CallRecord {
        at: sh.clock.now(),
        key_id: key.map(key_id),
        endpoint,
        status,
    });
}

fn extract_key(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|v| v.trim().to_owned())
}

fn well_formed(key: &str) -> bool {
    key.len() == 43
        && key
            .strip_prefix("sk_ssemble_")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Common front door: proxy faults, auth, 429 storms, rate limits, injected 5xx.
fn gate(
    sh: &Shared,
    headers: &HeaderMap,
    endpoint: ApiEndpoint,
) -> Result<(String, RateHeaders), Box<Response>> {
    let cfg = &sh.cfg;
    let now = sh.clock.now();
    let mut st = sh.lock();
    st.settle(cfg, now);
    if st.take_fault(endpoint, &[FaultKind::NonJson502]).is_some() {
        record(&mut st, sh, None, endpoint, 502);
        let mut resp = (
            StatusCode::BAD_GATEWAY,
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>",
        )
            .into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        return Err(Box::new(resp));
    }
    let Some(key) = extract_key(headers).filter(|k| !k.is_empty()) else {
        let rate = st.peek_headers(None, cfg, now);
        record(&mut st, sh, None, endpoint, 401);
        return Err(Box::new(error_response(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "API key is required. Please provide it in X-API-Key header or as Bearer token.",
            Value::Null,
            Some(&rate),
        )));
    };
    let special = key == cfg.subscription_required_key || key == cfg.insufficient_credits_key;
    let allowed = cfg.api_keys.as_ref().is_none_or(|keys| keys.contains(&key));
    if !well_formed(&key) || !(allowed || special) {
        let rate = st.peek_headers(None, cfg, now);
        record(&mut st, sh, None, endpoint, 401);
        return Err(Box::new(error_response(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Invalid or revoked API key",
            Value::Null,
            Some(&rate),
        )));
    }
    if key == cfg.subscription_required_key {
        let rate = st.peek_headers(Some(&key), cfg, now);
        record(&mut st, sh, Some(&key), endpoint, 403);
        return Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            "subscription_required",
            "An active subscription is required to use the API",
            Value::Null,
            Some(&rate),
        )));
    }
    if key == cfg.insufficient_credits_key {
        st.credits_mut(&key, cfg).remaining = 0;
    }
    if let Some(storm) = st.take_storm(endpoint) {
        let rate = st.peek_headers(Some(&key), cfg, now);
        let reset_at =
            now + chrono::Duration::seconds(i64::try_from(storm.retry_after_secs).unwrap_or(60));
        let mut details = serde_json::Map::new();
        details.insert("limit".into(), json!(rate.limit_hour));
        details.insert("window".into(), json!("hour"));
        if storm.details_reset_at {
            details.insert("resetAt".into(), json!(iso(reset_at)));
        }
        if storm.details_retry_after {
            details.insert("retryAfter".into(), json!(storm.retry_after_secs));
        }
        let mut resp = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Rate limit exceeded. Please try again later.",
            Value::Object(details),
            // A storm stands for an exhausted hourly bucket.
            Some(&RateHeaders {
                reset: reset_at,
                remaining_hour: 0,
                ..rate
            }),
        );
        if storm.retry_after_header
            && let Ok(v) = HeaderValue::from_str(&storm.retry_after_secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if !storm.reset_header {
            resp.headers_mut().remove("x-ratelimit-reset");
        }
        record(&mut st, sh, Some(&key), endpoint, 429);
        return Err(Box::new(resp));
    }
    let rate = match st.admit(&key, endpoint, cfg, now) {
        Ok(r) => r,
        Err(limited) => {
            record(&mut st, sh, Some(&key), endpoint, 429);
            return Err(Box::new(too_many(&limited)));
        }
    };
    if let Some(f) = st.take_fault(endpoint, &[FaultKind::HttpError]) {
        let status = f
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        record(&mut st, sh, Some(&key), endpoint, status.as_u16());
        return Err(Box::new(error_response(
            status,
            "internal_error",
            "An unexpected error occurred",
            Value::Null,
            Some(&rate),
        )));
    }
    Ok((key, rate))
}

fn too_many(l: &Limited) -> Response {
    let mut resp = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        "Rate limit exceeded. Please try again later.",
        json!({
            "limit": l.max,
            "window": l.window,
            "resetAt": iso(l.reset_at),
            "retryAfter": l.retry_after,
        }),
        Some(&l.headers),
    );
    if let Ok(v) = HeaderValue::from_str(&l.retry_after.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Wraps a handler body: records the call and renders errors with the rate headers.
fn finish(
    sh: &Shared,
    key: &str,
    endpoint: ApiEndpoint,
    rate: &RateHeaders,
    result: Result<(StatusCode, Value), ApiFailure>,
) -> Response {
    let resp = match result {
        Ok((status, data)) => data_response(status, data, rate),
        Err((status, code, message, details)) => {
            error_response(status, code, &message, details, Some(rate))
        }
    };
    let mut st = sh.lock();
    record(&mut st, sh, Some(key), endpoint, resp.status().as_u16());
    resp
}

fn parse_id(id: &str) -> Result<(), ApiFailure> {
    if id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request ID format".to_owned(),
            Value::Null,
        ))
    }
}

fn not_found() -> ApiFailure {
    (
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "Request not found or does not belong to your account".to_owned(),
        Value::Null,
    )
}

fn owned<'a>(st: &'a SimState, key: &str, id: &str) -> Result<&'a SimRequest, ApiFailure> {
    st.requests
        .get(id)
        .filter(|r| r.key == key && !r.deleted)
        .ok_or_else(not_found)
}

pub(crate) async fn create(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (key, rate) = match gate(&sh, &headers, ApiEndpoint::Create) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let result = {
        let mut st = sh.lock();
        do_create(&sh, &mut st, &key, &body)
    };
    let accepted = result.is_ok();
    let fault = if accepted {
        sh.lock().take_fault(
            ApiEndpoint::Create,
            &[FaultKind::TimeoutAfterAccept, FaultKind::DropAfterAccept],
        )
    } else {
        None
    };
    let resp = finish(&sh, &key, ApiEndpoint::Create, &rate, result);
    match fault.map(|f| f.kind) {
        Some(FaultKind::TimeoutAfterAccept) => {
            tokio::time::sleep(std::time::Duration::from_secs_f64(
                sh.cfg.withhold_real_secs,
            ))
            .await;
            resp
        }
        Some(FaultKind::DropAfterAccept) => cut_body(resp).await,
        _ => resp,
    }
}

/// Sends the status and headers, then fails the body so the connection is cut mid-response.
async fn cut_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let full = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = full.slice(..full.len() / 2);
    let stream = futures::stream::iter(vec![
        Ok::<Bytes, std::io::Error>(half),
        Err(std::io::Error::other("simulated connection drop")),
    ]);
    if let Ok(v) = HeaderValue::from_str(&full.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, v);
    }
    Response::from_parts(parts, Body::from_stream(stream))
}

fn str_field<'a>(
    o: &'a serde_json::Map<String, Value>,
    k: &str,
) -> Result<Option<&'a str>, ApiFailure> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(invalid(format!("{k} must be a string"), k, Some(v))),
    }
}

fn bool_field(o: &serde_json::Map<String, Value>, k: &str) -> Result<bool, ApiFailure> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(invalid(format!("{k} must be a boolean"), k, Some(v))),
    }
}

fn sim_duration(source: &str, default: f64) -> f64 {
    source
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("sim_duration="))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(if source.contains("/too_long") {
            20_000.0
        } else {
            default
        })
}

fn do_create(
    sh: &Shared,
    st: &mut SimState,
    key: &str,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiFailure> {
    let cfg = &sh.cfg;
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("Request body must be a JSON object", "body", None));
    };
    let url = str_field(&o, "url")?;
    let file_url = str_field(&o, "fileUrl")?;
    let source = match (url, file_url) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "Provide either url or fileUrl, not both",
                "url",
                o.get("url"),
            ));
        }
        (None, None) => return Err(invalid("Missing url or fileUrl", "url", None)),
        (Some(u), None) => {
            let is_yt = u.starts_with("https://www.youtube.com/")
                || u.starts_with("https://youtube.com/")
                || u.starts_with("https://m.youtube.com/")
                || u.starts_with("https://youtu.be/")
                || u.starts_with("http://www.youtube.com/");
            if u.contains("/shorts/") {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "invalid_youtube_url",
                    "YouTube Shorts URLs (/shorts/) are not supported".to_owned(),
                    json!({ "field": "url", "value": u }),
                ));
            }
            if !is_yt {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "invalid_youtube_url",
                    "The YouTube URL is invalid or unreachable".to_owned(),
                    json!({ "field": "url", "value": u }),
                ));
            }
            u
        }
        (None, Some(f)) => {
            if !(f.starts_with("http://") || f.starts_with("https://")) {
                return Err(invalid(
                    "fileUrl must start with http:// or https://",
                    "fileUrl",
                    o.get("fileUrl"),
                ));
            }
            if f.contains("/unreachable") {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "url_validation_failed",
                    "Failed to validate or fetch the provided URL".to_owned(),
                    json!({ "field": "fileUrl", "value": f }),
                ));
            }
            f
        }
    };
    let (Some(start_v), Some(end_v)) = (o.get("start"), o.get("end")) else {
        return Err(invalid("Missing start or end", "start", None));
    };
    let (Some(start), Some(end)) = (start_v.as_f64(), end_v.as_f64()) else {
        return Err(invalid(
            "start and end must be numbers",
            "start",
            Some(start_v),
        ));
    };
    if start < 0.0 {
        return Err(invalid(
            "start must be greater than or equal to 0",
            "start",
            Some(start_v),
        ));
    }
    if end <= start {
        return Err(invalid(
            "end must be greater than start",
            "end",
            Some(end_v),
        ));
    }
    if end - start > MAX_WINDOW_SECS {
        return Err(invalid(
            "Time range cannot exceed 1200 seconds",
            "end",
            Some(end_v),
        ));
    }
    if end - start < 1.0 {
        return Err(invalid(
            "Time range must be at least 1 second",
            "end",
            Some(end_v),
        ));
    }
    let preferred = str_field(&o, "preferredLength")?.unwrap_or("under60sec");
    if !PREFERRED.contains(&preferred) {
        return Err(invalid(
            "Invalid preferredLength",
            "preferredLength",
            o.get("preferredLength"),
        ));
    }
    let language = str_field(&o, "language")?.unwrap_or("en");
    if !LANGUAGES.contains(&language) {
        return Err(invalid(
            "Unsupported language",
            "language",
            o.get("language"),
        ));
    }
    let caption_language = str_field(&o, "captionLanguage")?;
    if caption_language.is_some_and(|c| !LANGUAGES.contains(&c)) {
        return Err(invalid(
            "Unsupported captionLanguage",
            "captionLanguage",
            o.get("captionLanguage"),
        ));
    }
    let template_id = str_field(&o, "templateId")?.unwrap_or(DEFAULT_TEMPLATE_ID);
    if !(template_id.len() == 24 && template_id.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(invalid(
            "templateId must be a valid 24-character hex string",
            "templateId",
            o.get("templateId"),
        ));
    }
    let Some(template) = TEMPLATES.iter().find(|t| t.0 == template_id) else {
        return Err(invalid(
            "Template not found",
            "templateId",
            o.get("templateId"),
        ));
    };
    if let Some(layout) = str_field(&o, "layout")?
        && !["auto", "fill", "fit", "square"].contains(&layout)
    {
        return Err(invalid("Invalid layout", "layout", o.get("layout")));
    }
    if let Some(v) = o.get("musicVolume").filter(|v| !v.is_null())
        && !v.as_f64().is_some_and(|x| (0.0..=100.0).contains(&x))
    {
        return Err(invalid(
            "musicVolume must be between 0 and 100",
            "musicVolume",
            Some(v),
        ));
    }
    for flag in ["noClipping", "hookTitle", "memeHook", "gameVideo", "music"] {
        bool_field(&o, flag)?;
    }
    if bool_field(&o, "ctaEnabled")? {
        match str_field(&o, "ctaText")? {
            Some(t) if !t.is_empty() && t.chars().count() <= 200 => {}
            _ => {
                return Err(invalid(
                    "ctaText is required (max 200 characters) when ctaEnabled is true",
                    "ctaText",
                    o.get("ctaText"),
                ));
            }
        }
    }
    let webhook_url = str_field(&o, "webhookUrl")?;
    if webhook_url.is_some_and(|w| !(w.starts_with("http://") || w.starts_with("https://"))) {
        return Err(invalid(
            "webhookUrl must be a valid http(s) URL",
            "webhookUrl",
            None,
        ));
    }
    let duration = sim_duration(source, cfg.default_video_secs);
    if duration > MAX_VIDEO_SECS {
        return Err((
            StatusCode::BAD_REQUEST,
            "video_too_long",
            "Video duration exceeds the 5-hour (18,000 second) limit".to_owned(),
            json!({ "videoDuration": duration, "maxDuration": MAX_VIDEO_SECS }),
        ));
    }
    if start >= duration {
        return Err(invalid(
            "start exceeds the video duration",
            "start",
            Some(start_v),
        ));
    }
    let (adj_start, adj_end) = (start, end.min(duration));
    if st.credits_mut(key, cfg).remaining <= 0 {
        return Err((
            StatusCode::FORBIDDEN,
            "insufficient_credits",
            "Account has no remaining credits to create shorts".to_owned(),
            Value::Null,
        ));
    }

    let now = sh.clock.now();
    let id = st.next_object_id();
    let seed: u64 = st.rng.random();
    let total = cfg.timeline_secs;
    let fate = [
        (
            "/403",
            0.2,
            "Video download failed: URL returned 403 Forbidden",
        ),
        (
            "/404",
            0.2,
            "Video download failed: URL returned 404 Not Found",
        ),
        ("/download_failed", 0.2, "Video download failed"),
        ("/private", 0.2, "Video is private or unavailable"),
        ("/nospeech", 0.4, "No speech detected in the selected range"),
        ("/nohighlights", 0.7, "No suitable highlights found"),
        ("/renderfail", 0.9, "Rendering failed"),
    ]
    .iter()
    .find(|(needle, _, _)| source.contains(needle))
    .map_or(Fate::Complete, |(_, frac, reason)| Fate::Fail {
        at_secs: total * frac,
        reason: (*reason).to_owned(),
    });
    let shorts = generate_shorts(
        seed,
        adj_start,
        adj_end,
        preferred,
        cfg,
        source.contains("/cliperror"),
    );
    let title = format!("Simulated video {}", &id[18..]);
    let stuck = st.stuck_next > 0 || source.contains("/stuck");
    st.stuck_next = st.stuck_next.saturating_sub(1);
    st.requests.insert(
        id.clone(),
        SimRequest {
            id: id.clone(),
            key: key.to_owned(),
            url: url.map(str::to_owned),
            file_url: file_url.map(str::to_owned),
            start: adj_start,
            end: adj_end,
            preferred_length: preferred.to_owned(),
            language: language.to_owned(),
            caption_language: caption_language.unwrap_or_default().to_owned(),
            template_name: template.1.to_owned(),
            webhook_url: webhook_url.map(str::to_owned),
            created_at: now,
            title,
            fate,
            forced: None,
            deleted: false,
            shorts,
            clip_bytes: None,
            settled: false,
            seed,
            wire_status: None,
            wire_step: None,
            stuck,
        },
    );
    st.order.push(id.clone());
    let c = st.credits_mut(key, cfg);
    c.remaining -= 1;
    c.spent += 1;
    *st.creates_per_source.entry(source.to_owned()).or_insert(0) += 1;

    let mut data = json!({
        "requestId": id,
        "status": "queued",
        "creditsUsed": 1,
        "estimatedCompletionTime": "5-30 minutes",
        "message": "Your request has been queued for processing",
    });
    if adj_end < end {
        data["timeAdjustment"] = json!({
            "message": "Requested range exceeds video duration; adjusted.",
            "original": { "start": start, "end": end },
            "adjusted": { "start": adj_start, "end": adj_end },
            "videoDuration": duration,
        });
    }
    Ok((StatusCode::CREATED, data))
}

pub(crate) async fn status(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (key, rate) = match gate(&sh, &headers, ApiEndpoint::Status) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let result = (|| {
        parse_id(&id)?;
        let st = sh.lock();
        let req = owned(&st, &key, &id)?;
        let v = req.view(sh.clock.now(), sh.cfg.timeline_secs);
        let mut data = json!({
            "_id": req.id,
            "status": req.wire_status.as_deref().unwrap_or(v.status),
            "step": req.wire_step.as_deref().unwrap_or(v.step),
            "stepMessage": v.step_message,
            "progress": v.progress,
            "userEmail": "user@example.com",
            "isDemo": false,
        });
        if let Some(reason) = v.failure_reason {
            data["failureReason"] = json!(reason);
        }
        Ok((StatusCode::OK, data))
    })();
    let result = maybe_withhold(&sh, ApiEndpoint::Status, result).await;
    finish(&sh, &key, ApiEndpoint::Status, &rate, result)
}

/// Applies a timeout fault on read endpoints: the answer is computed, then withheld.
async fn maybe_withhold(
    sh: &Shared,
    endpoint: ApiEndpoint,
    result: Result<(StatusCode, Value), ApiFailure>,
) -> Result<(StatusCode, Value), ApiFailure> {
    let fault = sh
        .lock()
        .take_fault(endpoint, &[FaultKind::TimeoutAfterAccept]);
    if fault.is_some() {
        tokio::time::sleep(std::time::Duration::from_secs_f64(
            sh.cfg.withhold_real_secs,
        ))
        .await;
    }
    result
}

pub(crate) fn document(sh: &Shared, st: &SimState, req: &SimRequest) -> Value {
    let now = sh.clock.now();
    let v = req.view(now, sh.cfg.timeline_secs);
    let shorts: Vec<Value> = if v.status == "completed" {
        req.shorts
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "title": s.title,
                    "sentenceIndexes": s.sentence_indexes,
                    "reason": s.reason,
                    "description": s.description,
                    "viral_score": s.viral_score,
                    "video_url": if s.error { Value::Null } else { json!(file_url(&st.files_base, &req.id, &s.id)) },
                    "startTimestamp": s.start,
                    "endTimestamp": s.end,
                    "duration": (s.end - s.start).round(),
                    "width": 1080,
                    "height": 1920,
                    "recompiling": false,
                    "error": s.error,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let sentences: Vec<Value> = (0..(req.shorts.len() * 2))
        .map(|i| {
            let span = (req.end - req.start) / (req.shorts.len() as f64 * 2.0);
            let s = req.start + span * i as f64;
            json!({ "index": i, "sentence": format!("Simulated sentence {i}."), "start": s, "end": s + span })
        })
        .collect();
    let mut data = json!({
        "_id": req.id,
        "status": req.wire_status.as_deref().unwrap_or(v.status),
        "progress": v.progress,
        "userEmail": "user@example.com",
        "url": req.source(),
        "start": req.start,
        "end": req.end,
        "title": req.title,
        "language": req.language,
        "template": req.template_name,
        "captionLanguage": req.caption_language,
        "heatmap": [],
        "sentences": sentences,
        "preferredLength": req.preferred_length,
        "projectId": null,
        "shorts": shorts,
        "createdAt": iso(req.created_at),
        "updatedAt": iso(v.terminal_at.unwrap_or(now)),
    });
    if let Some(f) = &req.file_url {
        data["fileUrl"] = json!(f);
    }
    if let Some(reason) = v.failure_reason {
        data["failureReason"] = json!(reason);
    }
    data
}

pub(crate) async fn get(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (key, rate) = match gate(&sh, &headers, ApiEndpoint::Get) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let result = (|| {
        parse_id(&id)?;
        let st = sh.lock();
        let req = owned(&st, &key, &id)?;
        Ok((StatusCode::OK, document(&sh, &st, req)))
    })();
    let result = maybe_withhold(&sh, ApiEndpoint::Get, result).await;
    finish(&sh, &key, ApiEndpoint::Get, &rate, result)
}

pub(crate) async fn list(
    State(sh): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (key, rate) = match gate(&sh, &headers, ApiEndpoint::List) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let result = (|| {
        let num = |k: &str, default: u32, max: u32| -> Result<u32, ApiFailure> {
            match q.get(k) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1 && *n <= max)
                    .ok_or_else(|| {
                        invalid(
                            format!("Invalid pagination parameter {k}"),
                            k,
                            Some(&json!(v)),
                        )
                    }),
            }
        };
        let page = num("page", 1, u32::MAX)?;
        let limit = num("limit", 20, 100)?;
        let status = q.get("status").map(String::as_str);
        if status.is_some_and(|s| {
            !["queued", "processing", "completed", "failed", "cancelled"].contains(&s)
        }) {
            return Err(invalid(
                "Invalid status filter",
                "status",
                q.get("status").map(|s| json!(s)).as_ref(),
            ));
        }
        let sort_by = q.get("sortBy").map_or("createdAt", String::as_str);
        if !["createdAt", "updatedAt"].contains(&sort_by) {
            return Err(invalid("Invalid sortBy", "sortBy", Some(&json!(sort_by))));
        }
        let sort_order = q.get("sortOrder").map_or("desc", String::as_str);
        if !["asc", "desc"].contains(&sort_order) {
            return Err(invalid(
                "Invalid sortOrder",
                "sortOrder",
                Some(&json!(sort_order)),
            ));
        }
        let now = sh.clock.now();
        let st = sh.lock();
        let mut rows: Vec<(
            chrono::DateTime<chrono::Utc>,
            chrono::DateTime<chrono::Utc>,
            usize,
            Value,
        )> = st
            .order
            .iter()
            .enumerate()
            .filter_map(|(i, id)| st.requests.get(id).map(|r| (i, r)))
            .filter(|(_, r)| r.key == key && !r.deleted)
            .filter_map(|(i, r)| {
                let v = r.view(now, sh.cfg.timeline_secs);
                if status.is_some_and(|s| s != v.status) {
                    return None;
                }
                let updated = v.terminal_at.unwrap_or(now);
                Some((
                    r.created_at,
                    updated,
                    i,
                    json!({
                        "requestId": r.id,
                        "status": r.wire_status.as_deref().unwrap_or(v.status),
                        "progress": v.progress,
                        "createdAt": iso(r.created_at),
                        "updatedAt": iso(updated),
                        "url": r.source(),
                        "duration": (r.end - r.start).round(),
                    }),
                ))
            })
            .collect();
        rows.sort_by(|a, b| {
            let ord = if sort_by == "updatedAt" {
                a.1.cmp(&b.1)
            } else {
                a.0.cmp(&b.0)
            }
            .then(a.2.cmp(&b.2));
            if sort_order == "desc" {
                ord.reverse()
            } else {
                ord
            }
        });
        let total = rows.len();
        let total_pages = total.div_ceil(limit as usize);
        let skip = (page as usize - 1).saturating_mul(limit as usize);
        let requests: Vec<Value> = rows
            .into_iter()
            .skip(skip)
            .take(limit as usize)
            .map(|r| r.3)
            .collect();
        Ok((
            StatusCode::OK,
            json!({
                "requests": requests,
                "pagination": { "page": page, "limit": limit, "totalPages": total_pages, "totalCount": total },
            }),
        ))
    })();
    finish(&sh, &key, ApiEndpoint::List, &rate, result)
}

pub(crate) async fn delete(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (key, rate) = match gate(&sh, &headers, ApiEndpoint::Delete) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let result = (|| {
        parse_id(&id)?;
        let now = sh.clock.now();
        let mut st = sh.lock();
        owned(&st, &key, &id)?;
        if let Some(req) = st.requests.get_mut(&id) {
            if req.view(now, sh.cfg.timeline_secs).terminal_at.is_none() {
                // Cancelled before deletion: no webhook, no refund, no partial results.
                req.forced = Some((now, Forced::Cancelled));
                req.settled = true;
            }
            req.deleted = true;
        }
        Ok((
            StatusCode::OK,
            json!({ "message": "Request successfully deleted" }),
        ))
    })();
    finish(&sh, &key, ApiEndpoint::Delete, &rate, result)
}

pub(crate) async fn templates(State(sh): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (key, rate) = match gate(&sh, &headers, ApiEndpoint::Templates) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let templates: Vec<Value> = TEMPLATES
        .iter()
        .enumerate()
        .map(|(i, (id, name, display))| {
            let img =
                format!("https://cf.ssemble.com/ssemble-static-assets/captionPresets/{name}.png");
            json!({
                "templateId": id,
                "name": name,
                "displayName": display,
                "thumbnail": img,
                "order": i,
                "preview": img,
                "gif": format!("https://cf.ssemble.com/ssemble-static-assets/{name}.gif"),
            })
        })
        .collect();
    let data = json!({
        "templates": templates,
        "defaultTemplateId": DEFAULT_TEMPLATE_ID,
        "defaultTemplateName": "karaoke",
    });
    finish(
        &sh,
        &key,
        ApiEndpoint::Templates,
        &rate,
        Ok((StatusCode::OK, data)),
    )
}

pub(crate) async fn fallback() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "Route not found",
        Value::Null,
        None,
    )
}
