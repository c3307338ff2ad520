//! Every documented example, served over real HTTP with its status and headers, goes through
//! the client's real decode path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use chrono::{DateTime, Utc};
use reelay_ssemble::{
    ApiError, CreateShortRequest, ErrorClass, ErrorCode, Layout, ListQuery, PreferredLength,
    RequestStatus, RetryPolicy, SsembleClient, SsembleConfig, Step, WaitSource, WebhookEvent,
    parse_webhook,
};
use secrecy::SecretString;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Serves one canned response for every path.
async fn serve(status: u16, headers: Vec<(String, String)>, body: String) -> SsembleClient {
    let app = Router::new().fallback(any(move || {
        let headers = headers.clone();
        let body = body.clone();
        async move {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            for (k, v) in headers {
                h.insert(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(&v).unwrap(),
                );
            }
            (StatusCode::from_u16(status).unwrap(), h, body).into_response()
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut cfg = SsembleConfig::new(SecretString::from(
        "sk_ssemble_0123456789abcdef0123456789abcdef",
    ))
    .with_base_url(format!("http://{addr}/api/v1"));
    cfg.retry = RetryPolicy::none();
    SsembleClient::new(cfg).unwrap()
}

const ID: &str = "665a1b2c3d4e5f6a7b8c9d0e";

#[test]
fn create_request_fixture_is_what_the_client_sends() {
    let mut r = CreateShortRequest::new(
        reelay_ssemble::Source::Url("https://www.youtube.com/watch?v=dQw4w9WgXcQ".into()),
        0.0,
        600.0,
    );
    r.preferred_length = Some(PreferredLength::Under60sec);
    r.language = Some("en".into());
    r.template_id = Some("660b8531aedb346bbe26eb43".into());
    r.music = Some(true);
    r.music_name = Some("Energetic Beat".into());
    r.music_volume = Some(15.0);
    r.layout = Some(Layout::Auto);
    let sent = serde_json::to_value(&r).unwrap();
    let documented: serde_json::Value =
        serde_json::from_str(&fixture("create_request.json")).unwrap();
    assert_eq!(sent, documented);
}

#[tokio::test]
async fn create_responses_canonical_and_plan_shapes_parse_with_200_or_201() {
    let req = CreateShortRequest::new(
        reelay_ssemble::Source::FileUrl("https://x/y.mp4".into()),
        0.0,
        60.0,
    );
    let c = serve(201, vec![], fixture("create_response_canonical.json")).await;
    let r = c.create(&req).await.unwrap();
    assert_eq!(r.http_status, 201);
    assert_eq!(r.data.request_id.as_str(), ID);
    assert_eq!(r.data.credits_used, Some(1.0));
    assert_eq!(
        r.data.estimated_completion_time.as_deref(),
        Some("5-30 minutes")
    );
    let adj = r.data.time_adjustment.unwrap();
    assert_eq!(adj.adjusted.unwrap().end, 754.0);
    assert_eq!(adj.video_duration, Some(754.0));

    let c = serve(200, vec![], fixture("create_response_plan.json")).await;
    let r = c.create(&req).await.unwrap();
    assert_eq!(r.http_status, 200);
    assert_eq!(r.data.request_id.as_str(), "507f1f77bcf86cd799439011");
    assert_eq!(r.data.estimated_time.as_deref(), Some("5-10 minutes"));
    assert!(r.data.time_adjustment.is_none());
}

#[tokio::test]
async fn status_processing_and_failed_fixtures_parse() {
    let c = serve(200, vec![], fixture("status_processing.json")).await;
    let s = c.status(ID).await.unwrap().data;
    assert_eq!(s.status, RequestStatus::Processing);
    assert_eq!(s.step, Some(Step::FindingHighlights));
    assert_eq!(s.progress, Some(60.0));
    assert_eq!(s.failure_reason, None);

    let c = serve(200, vec![], fixture("status_failed.json")).await;
    let s = c.status(ID).await.unwrap().data;
    assert_eq!(s.status, RequestStatus::Failed);
    assert_eq!(s.step, Some(Step::Failed));
    assert_eq!(s.failure_reason.as_deref(), Some("Video download failed"));
}

#[tokio::test]
async fn get_shorts_fixture_parses() {
    let c = serve(200, vec![], fixture("get_shorts.json")).await;
    let d = c.get(ID).await.unwrap().data;
    assert_eq!(d.status, RequestStatus::Completed);
    assert_eq!(d.template.as_deref(), Some("hormozi1"));
    assert_eq!(d.sentences.len(), 2);
    let s = &d.shorts[0];
    assert_eq!(s.id, "f2c713ff-865f-4cd5-98ab-f6aa696a3620");
    assert_eq!(s.viral_score, Some(85.0));
    assert_eq!(s.sentence_indexes, vec![0, 1]);
    assert!(s.is_usable());
    assert_eq!((s.width, s.height), (Some(1080), Some(1920)));
}

#[tokio::test]
async fn list_fixture_parses_with_pagination() {
    let c = serve(200, vec![], fixture("list.json")).await;
    let l = c.list(&ListQuery::default()).await.unwrap().data;
    assert_eq!(l.requests.len(), 2);
    assert_eq!(l.requests[1].status, RequestStatus::Processing);
    assert_eq!(l.requests[0].duration, Some(600.0));
    assert_eq!(
        l.requests[0].created_at,
        Some("2024-06-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap())
    );
    let p = l.pagination.unwrap();
    assert_eq!(
        (p.page, p.limit, p.total_pages, p.total_count),
        (1, 10, 5, 42)
    );
}

#[tokio::test]
async fn delete_fixture_and_204_both_succeed() {
    let c = serve(200, vec![], fixture("delete.json")).await;
    let d = c.delete(ID).await.unwrap();
    assert_eq!(
        d.data.message.as_deref(),
        Some("Request successfully deleted")
    );
    let c = serve(204, vec![], String::new()).await;
    let d = c.delete(ID).await.unwrap();
    assert_eq!(d.http_status, 204);
    assert_eq!(d.data.message, None);
}

#[tokio::test]
async fn templates_fixture_parses() {
    let c = serve(200, vec![], fixture("templates.json")).await;
    let t = c.templates().await.unwrap().data;
    assert_eq!(t.templates.len(), 2);
    assert_eq!(
        t.default_template_id.as_deref(),
        Some("660b8531aedb346bbe26eb43")
    );
    assert_eq!(t.templates[1].name.as_deref(), Some("karaoke"));
}

#[tokio::test]
async fn error_fixtures_parse_into_codes_and_classes() {
    let cases = [
        (
            "error_envelope.json",
            400,
            ErrorCode::Unknown("error_code".into()),
            ErrorClass::Permanent,
        ),
        (
            "error_missing_api_key.json",
            401,
            ErrorCode::MissingApiKey,
            ErrorClass::Auth,
        ),
        (
            "error_invalid_request_id.json",
            400,
            ErrorCode::InvalidRequest,
            ErrorClass::Permanent,
        ),
        (
            "error_resource_not_found.json",
            404,
            ErrorCode::ResourceNotFound,
            ErrorClass::NotFound,
        ),
    ];
    for (file, status, code, class) in cases {
        let c = serve(status, vec![], fixture(file)).await;
        let e = c.status(ID).await.unwrap_err();
        match &e {
            ApiError::Api {
                status: s,
                code: got,
                message,
                details,
                ..
            } => {
                assert_eq!(*s, status, "{file}");
                assert_eq!(got, &code, "{file}");
                assert!(!message.is_empty(), "{file}");
                assert!(details.is_null(), "{file}");
            }
            other => panic!("{file}: {other:?}"),
        }
        assert_eq!(e.class(), class, "{file}");
    }
}

#[tokio::test]
async fn rate_limit_429_fixture_with_documented_headers_gives_header_wait_and_budget() {
    let headers: Vec<(String, String)> = fixture("error_rate_limit_429.headers")
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let c = serve(429, headers, fixture("error_rate_limit_429.json")).await;
    let e = c.status(ID).await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::RateLimitExceeded));
    assert_eq!(e.class(), ErrorClass::Retryable);
    let rl = e.rate_limit().unwrap();
    assert_eq!(
        (
            rl.limit_hour,
            rl.remaining_hour,
            rl.limit_day,
            rl.remaining_day
        ),
        (Some(100), Some(0), Some(1000), Some(812))
    );
    let w = e.retry_wait(Utc::now()).unwrap();
    assert_eq!(
        (w.delay, w.source),
        (Duration::from_secs(37), WaitSource::RetryAfterHeader)
    );
    let ApiError::Api { details, .. } = &e else {
        panic!()
    };
    assert_eq!(details["window"], "hour");
}

#[test]
fn webhook_fixtures_parse() {
    match parse_webhook(fixture("webhook_completed.json").as_bytes()).unwrap() {
        WebhookEvent::Completed {
            request_id,
            shorts,
            timestamp,
        } => {
            assert_eq!(request_id.as_str(), ID);
            assert_eq!(shorts.len(), 2);
            assert_eq!(shorts[0].viral_score, Some(8.5));
            assert_eq!(shorts[1].id, "665a1b2c3d4e5f6a7b8c9d11");
            assert!(timestamp.is_some());
        }
        other => panic!("{other:?}"),
    }
    match parse_webhook(fixture("webhook_failed.json").as_bytes()).unwrap() {
        WebhookEvent::Failed { failure_reason, .. } => assert_eq!(
            failure_reason.as_deref(),
            Some("Video download failed: URL returned 403 Forbidden")
        ),
        other => panic!("{other:?}"),
    }
}
