//! Client ↔ simulator over real HTTP (simulator in-process). The simulator's inspection API is
//! the ground truth for side effects (credits, creates, calls, deliveries).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use reelay_ssemble::{
    ApiError, AuthScheme, CreateOutcome, CreateShortRequest, ErrorClass, ErrorCode, FindCriteria,
    FindOutcome, ListQuery, PreferredLength, RequestId, RequestStatus, RetryPolicy, SortOrder,
    Source, SsembleClient, SsembleConfig, Step, WaitSource, WebhookEvent, parse_webhook,
};
use secrecy::SecretString;
use ssemble_sim::{
    ApiEndpoint, FaultKind, FaultSpec, SimConfig, SimHandle, SsembleSim, StormSpec, Tier,
    WebhookFaults,
};

const KEY: &str = "sk_ssemble_0123456789abcdef0123456789abcdef";
const SRC: &str = "https://videos.example.com/talk.mp4";

fn client_for(sim: &SimHandle, key: &str) -> SsembleClient {
    let mut cfg = SsembleConfig::new(SecretString::from(key)).with_base_url(sim.base_url.clone());
    cfg.retry = RetryPolicy::none();
    cfg.request_timeout = Duration::from_secs(5);
    cfg.find.settle_delay = Duration::ZERO;
    SsembleClient::new(cfg).unwrap()
}

async fn sim(cfg: SimConfig) -> (SimHandle, SsembleClient) {
    let sim = SsembleSim::start(cfg).await.unwrap();
    let client = client_for(&sim, KEY);
    (sim, client)
}

fn file_request(src: &str, start: f64, end: f64) -> CreateShortRequest {
    CreateShortRequest::new(Source::FileUrl(src.to_owned()), start, end)
}

fn code(e: &ApiError) -> (Option<u16>, Option<&str>, ErrorClass) {
    (e.status(), e.code().map(ErrorCode::as_str), e.class())
}

#[tokio::test]
async fn every_documented_error_code_reaches_the_client_typed_and_classified() {
    let cfg = SimConfig {
        tier: Tier {
            per_hour: 40,
            per_day: 1000,
        },
        ..SimConfig::default()
    };
    let (sim, c) = sim(cfg.clone()).await;
    let id = "665a1b2c3d4e5f6a7b8c9d0e";

    let e = client_for(&sim, "").status(id).await.unwrap_err();
    assert_eq!(
        code(&e),
        (Some(401), Some("missing_api_key"), ErrorClass::Auth)
    );
    let e = client_for(&sim, "sk_ssemble_tooshort")
        .status(id)
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        (Some(401), Some("invalid_api_key"), ErrorClass::Auth)
    );
    let e = client_for(&sim, &cfg.subscription_required_key)
        .templates()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        (
            Some(403),
            Some("subscription_required"),
            ErrorClass::Billing
        )
    );
    let e = client_for(&sim, &cfg.insufficient_credits_key)
        .create(&file_request(SRC, 0.0, 60.0))
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        (Some(403), Some("insufficient_credits"), ErrorClass::Billing)
    );

    let e = c.create(&file_request(SRC, 0.0, 1500.0)).await.unwrap_err();
    assert_eq!(
        code(&e),
        (Some(400), Some("invalid_request"), ErrorClass::Permanent)
    );
    let ApiError::Api { details, .. } = &e else {
        panic!()
    };
    assert_eq!(details["field"], "end");
    let yt_shorts = CreateShortRequest::new(
        Source::Url("https://www.youtube.com/shorts/abc".into()),
        0.0,
        30.0,
    );
    let e = c.create(&yt_shorts).await.unwrap_err();
    assert_eq!(
        code(&e),
        (
            Some(400),
            Some("invalid_youtube_url"),
            ErrorClass::Permanent
        )
    );
    let e = c
        .create(&file_request(
            "https://videos.example.com/long.mp4?sim_duration=20000",
            0.0,
            60.0,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        (Some(400), Some("video_too_long"), ErrorClass::Permanent)
    );
    let e = c
        .create(&file_request(
            "https://videos.example.com/unreachable.mp4",
            0.0,
            60.0,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        (
            Some(400),
            Some("url_validation_failed"),
            ErrorClass::Permanent
        )
    );
    let e = c.status(id).await.unwrap_err();
    assert_eq!(
        code(&e),
        (Some(404), Some("resource_not_found"), ErrorClass::NotFound)
    );

    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Status),
        kind: FaultKind::HttpError,
        count: 1,
        status: Some(500),
    });
    let e = c.status(id).await.unwrap_err();
    assert_eq!(
        code(&e),
        (Some(500), Some("internal_error"), ErrorClass::Retryable)
    );

    sim.set_credits(KEY, 0);
    let e = c.create(&file_request(SRC, 0.0, 60.0)).await.unwrap_err();
    assert_eq!(
        code(&e),
        (Some(403), Some("insufficient_credits"), ErrorClass::Billing)
    );

    // A malformed id never leaves the process.
    let before = sim.inspect().calls.len();
    let e = c.status("not-an-id").await.unwrap_err();
    assert!(matches!(e, ApiError::InvalidRequestId(_)));
    assert_eq!(sim.inspect().calls.len(), before);

    // Exhaust the hourly account bucket: the limiter answers 429 and records the violation.
    let mut last = None;
    for _ in 0..50 {
        if let Err(e) = c.templates().await {
            last = Some(e);
            break;
        }
    }
    let e = last.expect("the hourly cap must trip");
    assert_eq!(
        code(&e),
        (
            Some(429),
            Some("rate_limit_exceeded"),
            ErrorClass::Retryable
        )
    );
    let rl = e.rate_limit().unwrap();
    assert_eq!((rl.limit_hour, rl.remaining_hour), (Some(40), Some(0)));
    assert!(rl.retry_after.is_some());
    let v = sim.inspect().limit_violations;
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].limit.as_str(), v[0].max), ("hour", 40));
}

#[tokio::test]
async fn rate_limit_headers_come_back_on_success_and_error() {
    let (sim, c) = sim(SimConfig::default()).await;
    let a = c.templates().await.unwrap().rate_limit;
    let b = c.templates().await.unwrap().rate_limit;
    assert_eq!((a.limit_hour, a.limit_day), (Some(100), Some(1000)));
    assert_eq!(a.remaining_hour.unwrap() - 1, b.remaining_hour.unwrap());
    assert_eq!(a.remaining_day.unwrap() - 1, b.remaining_day.unwrap());
    assert!(a.reset.unwrap() > sim.now());
    let e = c.status("665a1b2c3d4e5f6a7b8c9d0e").await.unwrap_err();
    assert_eq!(
        e.rate_limit().unwrap().remaining_hour,
        Some(b.remaining_hour.unwrap() - 1)
    );
}

#[tokio::test]
async fn wait_for_429_uses_header_then_details_then_reset_then_backoff() {
    let (sim, c) = sim(SimConfig::default()).await;
    let storm = |h: bool, d: bool, r: bool, rh: bool| StormSpec {
        endpoint: None,
        count: 1,
        retry_after_secs: 37,
        retry_after_header: h,
        details_retry_after: d,
        details_reset_at: r,
        reset_header: rh,
    };
    let cases = [
        (storm(true, true, true, true), WaitSource::RetryAfterHeader),
        (
            storm(false, true, true, true),
            WaitSource::DetailsRetryAfter,
        ),
        (storm(false, false, true, false), WaitSource::ResetAt),
        (storm(false, false, false, true), WaitSource::ResetAt),
        (storm(false, false, false, false), WaitSource::Backoff),
    ];
    for (spec, expected) in cases {
        sim.storm(spec);
        let e = c.templates().await.unwrap_err();
        assert_eq!(e.code(), Some(&ErrorCode::RateLimitExceeded));
        // Computed against the simulator's clock, as a caller would with its own.
        let w = e.retry_wait(sim.now()).unwrap();
        assert_eq!(w.source, expected);
        match expected {
            WaitSource::Backoff => assert!(w.delay <= RetryPolicy::none().base_delay),
            _ => assert!(
                (36..=37).contains(&w.delay.as_secs()),
                "{expected:?}: {:?}",
                w.delay
            ),
        }
    }
    assert_eq!(sim.inspect().storm_429s, 5);
    assert!(sim.inspect().limit_violations.is_empty());
}

#[tokio::test]
async fn reads_retry_by_themselves_within_bounds_and_create_retries_only_after_429() {
    let sim = SsembleSim::start(SimConfig::default()).await.unwrap();
    let mut cfg = SsembleConfig::new(SecretString::from(KEY)).with_base_url(sim.base_url.clone());
    cfg.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_auto_wait: Duration::from_secs(1),
    };
    let c = SsembleClient::new(cfg).unwrap();
    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Templates),
        kind: FaultKind::NonJson502,
        count: 2,
        status: None,
    });
    assert!(c.templates().await.is_ok());
    // A JSON 5xx carries X-RateLimit-Reset like every response; it must not mean "wait an hour".
    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Templates),
        kind: FaultKind::HttpError,
        count: 1,
        status: Some(500),
    });
    assert!(c.templates().await.is_ok());

    sim.storm(StormSpec {
        endpoint: Some(ApiEndpoint::Create),
        count: 1,
        retry_after_secs: 0,
        retry_after_header: true,
        details_retry_after: true,
        details_reset_at: false,
        reset_header: false,
    });
    let created = c.create(&file_request(SRC, 0.0, 60.0)).await.unwrap();
    assert_eq!(created.http_status, 201);
    assert_eq!(sim.inspect().credits_spent(KEY), 1);

    // A 5xx on create may have taken effect: never retried automatically.
    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Create),
        kind: FaultKind::HttpError,
        count: 1,
        status: Some(503),
    });
    let e = c.create(&file_request(SRC, 0.0, 60.0)).await.unwrap_err();
    assert!(e.may_have_taken_effect());
    let creates = sim
        .inspect()
        .calls
        .iter()
        .filter(|c| c.endpoint == ApiEndpoint::Create)
        .count();
    assert_eq!(
        creates, 3,
        "429, 201, 503: no automatic second attempt after the 503"
    );

    // A wait longer than max_auto_wait is handed back, not slept.
    sim.storm(StormSpec {
        endpoint: Some(ApiEndpoint::Templates),
        count: 1,
        retry_after_secs: 3600,
        retry_after_header: true,
        details_retry_after: true,
        details_reset_at: true,
        reset_header: true,
    });
    let started = std::time::Instant::now();
    let e = c.templates().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(e.retry_after(sim.now()), Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn non_json_502_is_a_typed_retryable_error_without_budget_headers() {
    let (sim, c) = sim(SimConfig::default()).await;
    sim.inject_fault(FaultSpec {
        endpoint: None,
        kind: FaultKind::NonJson502,
        count: 1,
        status: None,
    });
    let e = c.templates().await.unwrap_err();
    match &e {
        ApiError::NonJson {
            status,
            content_type,
            snippet,
            rate_limit,
            ..
        } => {
            assert_eq!(*status, 502);
            assert_eq!(content_type.as_deref(), Some("text/html"));
            assert!(snippet.contains("Bad Gateway"));
            assert!(!rate_limit.is_known());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert_eq!(e.retry_wait(sim.now()).unwrap().source, WaitSource::Backoff);
    assert!(c.templates().await.is_ok());
}

#[tokio::test]
async fn unknown_status_and_step_values_are_kept_not_fatal() {
    let (sim, c) = sim(SimConfig::default()).await;
    let id = c
        .create(&file_request(SRC, 0.0, 60.0))
        .await
        .unwrap()
        .data
        .request_id;
    assert!(sim.override_wire(id.as_str(), Some("rendering_v2"), Some("uploading_to_cdn")));
    let s = c.status(id.as_str()).await.unwrap().data;
    assert_eq!(s.status, RequestStatus::Unknown("rendering_v2".into()));
    assert!(!s.status.is_terminal());
    assert_eq!(s.step, Some(Step::Unknown("uploading_to_cdn".into())));
    let listed = c.list(&ListQuery::default()).await.unwrap().data.requests;
    assert_eq!(
        listed[0].status,
        RequestStatus::Unknown("rendering_v2".into())
    );

    sim.override_wire(id.as_str(), Some("TASK_COMPLETE"), None);
    let d = c.get(id.as_str()).await.unwrap().data;
    assert_eq!(d.status, RequestStatus::Completed);
}

#[tokio::test]
async fn full_timeline_to_completed_on_the_sim_clock() {
    let (sim, c) = sim(SimConfig {
        seed: 7,
        ..SimConfig::default()
    })
    .await;
    let mut req = file_request(SRC, 100.0, 400.0);
    req.preferred_length = Some(PreferredLength::Under30sec);
    let id = c.create(&req).await.unwrap().data.request_id;

    let mut seen: Vec<(Step, RequestStatus, f64)> = Vec::new();
    for _ in 0..14 {
        let s = c.status(id.as_str()).await.unwrap().data;
        let step = s.step.clone().unwrap();
        if seen.last().is_none_or(|(last, _, _)| *last != step) {
            seen.push((step, s.status.clone(), s.progress.unwrap()));
        }
        if s.status.is_terminal() {
            break;
        }
        sim.advance(Duration::from_secs(5));
    }
    let steps: Vec<Step> = seen.iter().map(|s| s.0.clone()).collect();
    assert_eq!(
        steps,
        [
            Step::Queued,
            Step::FetchingVideo,
            Step::TranscribingAudio,
            Step::FindingHighlights,
            Step::Finalizing,
            Step::Completed
        ]
    );
    assert_eq!(seen[0].1, RequestStatus::Queued);
    assert_eq!(seen[3].1, RequestStatus::Processing);
    let progress: Vec<f64> = seen.iter().map(|s| s.2).collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert_eq!(*progress.last().unwrap(), 100.0);

    let doc = c.get(id.as_str()).await.unwrap().data;
    assert!((3..=8).contains(&doc.shorts.len()), "{}", doc.shorts.len());
    for s in &doc.shorts {
        let (a, b) = (s.start_timestamp.unwrap(), s.end_timestamp.unwrap());
        assert!(a >= 100.0 && b <= 400.0 && b > a, "{a}..{b}");
        assert!(b - a <= 30.0 + 1e-9);
        let score = s.viral_score.unwrap();
        assert!((0.0..=100.0).contains(&score));
        assert!(
            s.video_url
                .as_deref()
                .unwrap()
                .starts_with(&format!("{}/files/{id}/", sim.root_url))
        );
    }
    let best = doc.usable_shorts_by_score()[0];
    let bytes = reqwest::get(best.video_url.clone().unwrap()).await.unwrap();
    assert_eq!(bytes.status(), 200);
    assert_eq!(bytes.content_length(), Some(6 * 1024 * 1024));
}

#[tokio::test]
async fn a_scaled_clock_finishes_a_60_second_timeline_in_a_tenth_of_a_second() {
    let (_sim, c) = sim(SimConfig {
        time_scale: 600.0,
        ..SimConfig::default()
    })
    .await;
    let id = c
        .create(&file_request(SRC, 0.0, 60.0))
        .await
        .unwrap()
        .data
        .request_id;
    let started = std::time::Instant::now();
    loop {
        let s = c.status(id.as_str()).await.unwrap().data;
        if s.status == RequestStatus::Completed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "never completed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn failed_timeline_reports_reason_and_refunds_the_credit() {
    let (sim, c) = sim(SimConfig::default()).await;
    let id = c
        .create(&file_request(
            "https://videos.example.com/403/talk.mp4",
            0.0,
            60.0,
        ))
        .await
        .unwrap()
        .data
        .request_id;
    assert_eq!(
        sim.inspect().credits.values().next().unwrap().remaining,
        999
    );
    sim.advance(Duration::from_secs(20));
    let s = c.status(id.as_str()).await.unwrap().data;
    assert_eq!(s.status, RequestStatus::Failed);
    assert_eq!(s.step, Some(Step::Failed));
    assert_eq!(
        s.failure_reason.as_deref(),
        Some("Video download failed: URL returned 403 Forbidden")
    );
    let doc = c.get(id.as_str()).await.unwrap().data;
    assert_eq!(doc.status, RequestStatus::Failed);
    assert!(doc.shorts.is_empty());
    let credits = sim.inspect().credits.values().next().unwrap().clone();
    assert_eq!(
        (credits.remaining, credits.spent, credits.refunded),
        (1000, 1, 1)
    );

    // Forced failure via the control API, before the natural end.
    let id2 = c
        .create(&file_request(SRC, 0.0, 60.0))
        .await
        .unwrap()
        .data
        .request_id;
    assert!(sim.force_fail(id2.as_str(), "Transcription failed"));
    let s = c.status(id2.as_str()).await.unwrap().data;
    assert_eq!(s.failure_reason.as_deref(), Some("Transcription failed"));
}

#[tokio::test]
async fn delete_while_processing_cancels_without_webhook_or_refund_and_twice_is_404() {
    let (sim, c) = sim(SimConfig::default()).await;
    let mut req = file_request(SRC, 0.0, 60.0);
    req.webhook_url = Some(SecretString::from("http://127.0.0.1:9/hook"));
    let id = c.create(&req).await.unwrap().data.request_id;
    sim.advance(Duration::from_secs(20));
    let d = c.delete(id.as_str()).await.unwrap();
    assert_eq!(
        d.data.message.as_deref(),
        Some("Request successfully deleted")
    );
    let e = c.delete(id.as_str()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotFound);
    assert_eq!(
        c.status(id.as_str()).await.unwrap_err().class(),
        ErrorClass::NotFound
    );
    sim.advance(Duration::from_secs(120));
    let ins = sim.inspect();
    assert_eq!(ins.requests[0].status, "cancelled");
    assert!(ins.requests[0].deleted);
    assert!(ins.webhook_deliveries.is_empty());
    assert_eq!(ins.credits_spent(KEY), 1);
    assert_eq!(ins.credits.values().next().unwrap().refunded, 0);
}

#[tokio::test]
async fn list_filters_sorts_and_paginates_and_templates_parse() {
    let (sim, c) = sim(SimConfig::default()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            c.create(&file_request(&format!("{SRC}?n={i}"), 0.0, 60.0))
                .await
                .unwrap()
                .data
                .request_id,
        );
        sim.advance(Duration::from_secs(1));
    }
    assert!(sim.force_complete(ids[1].as_str()));
    let page = c
        .list(&ListQuery {
            page: Some(2),
            limit: Some(2),
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .data;
    let p = page.pagination.unwrap();
    assert_eq!(
        (p.page, p.limit, p.total_pages, p.total_count),
        (2, 2, 3, 5)
    );
    let got: Vec<&RequestId> = page.requests.iter().map(|r| &r.request_id).collect();
    assert_eq!(got, [&ids[2], &ids[1]], "newest first by default");
    let asc = c
        .list(&ListQuery {
            sort_order: Some(SortOrder::Asc),
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(asc.requests[0].request_id, ids[0]);
    let done = c
        .list(&ListQuery {
            status: Some(RequestStatus::Completed),
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(done.requests.len(), 1);
    assert_eq!(done.requests[0].request_id, ids[1]);
    let t = c.templates().await.unwrap().data;
    assert_eq!(t.templates.len(), 9);
    assert_eq!(
        t.default_template_id.as_deref(),
        Some("660b8531aedb346bbe26eb43")
    );
}

#[tokio::test]
async fn a_lost_read_is_retryable_and_ops_cancellation_is_terminal() {
    let sim = SsembleSim::start(SimConfig {
        withhold_real_secs: 30.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = SsembleConfig::new(SecretString::from(KEY)).with_base_url(sim.base_url.clone());
    cfg.retry = RetryPolicy::none();
    cfg.request_timeout = Duration::from_secs(1);
    let c = SsembleClient::new(cfg).unwrap();
    let id = c
        .create(&file_request(SRC, 0.0, 60.0))
        .await
        .unwrap()
        .data
        .request_id;
    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Status),
        kind: FaultKind::TimeoutAfterAccept,
        count: 1,
        status: None,
    });
    let e = c.status(id.as_str()).await.unwrap_err();
    assert!(matches!(e, ApiError::OutcomeUnknown { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert_eq!(e.retry_wait(sim.now()).unwrap().source, WaitSource::Backoff);

    assert!(sim.cancel(id.as_str()));
    let s = c.status(id.as_str()).await.unwrap().data;
    assert_eq!(s.status, RequestStatus::Cancelled);
    assert!(s.status.is_terminal());
    assert_eq!(s.failure_reason, None);
}

#[tokio::test]
async fn bearer_auth_is_accepted() {
    let sim = SsembleSim::start(SimConfig::default()).await.unwrap();
    let mut cfg = SsembleConfig::new(SecretString::from(KEY)).with_base_url(sim.base_url.clone());
    cfg.auth_scheme = AuthScheme::Bearer;
    assert!(SsembleClient::new(cfg).unwrap().templates().await.is_ok());
}

type Received = Arc<Mutex<Vec<(std::time::Instant, Vec<u8>)>>>;

/// A webhook receiver that answers 500 to the first `fail_first` deliveries.
async fn receiver(fail_first: usize) -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                let mut v = g.lock().unwrap();
                v.push((std::time::Instant::now(), body.to_vec()));
                if v.len() <= fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

async fn wait_until(mut f: impl FnMut() -> bool, limit: Duration) {
    let started = std::time::Instant::now();
    while !f() {
        assert!(
            started.elapsed() < limit,
            "condition not reached in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn webhooks_follow_the_retry_schedule_then_are_abandoned() {
    // 20× clock: the 1 s and 3 s retry delays take 50 ms and 150 ms of real time.
    let (sim, c) = sim(SimConfig {
        time_scale: 20.0,
        ..SimConfig::default()
    })
    .await;
    let (url, got) = receiver(usize::MAX).await;
    let mut req = file_request(SRC, 0.0, 60.0);
    req.webhook_url = Some(SecretString::from(url));
    let id = c.create(&req).await.unwrap().data.request_id;
    assert!(sim.force_complete(id.as_str()));
    wait_until(
        || sim.inspect().deliveries_for(id.as_str()).len() == 4,
        Duration::from_secs(5),
    )
    .await;

    let ins = sim.inspect();
    let d = ins.deliveries_for(id.as_str());
    let attempts: Vec<(u32, &str)> = d.iter().map(|d| (d.attempt, d.outcome.as_str())).collect();
    assert_eq!(
        attempts,
        [
            (1, "failed"),
            (2, "failed"),
            (3, "failed"),
            (3, "abandoned")
        ]
    );
    let gap = |a: usize, b: usize| (d[b].at - d[a].at).num_milliseconds() as f64 / 1000.0;
    assert!(
        (gap(0, 1) - 1.0).abs() < 0.5,
        "2nd attempt {}s after the 1st",
        gap(0, 1)
    );
    assert!(
        (gap(1, 2) - 3.0).abs() < 0.5,
        "3rd attempt {}s after the 2nd",
        gap(1, 2)
    );
    assert_eq!(got.lock().unwrap().len(), 3);

    // The payload parses, and its score is the GET score ÷ 10 (the documented mismatch).
    let body = got.lock().unwrap()[0].1.clone();
    let WebhookEvent::Completed {
        request_id, shorts, ..
    } = parse_webhook(&body).unwrap()
    else {
        panic!()
    };
    assert_eq!(request_id, id);
    let doc = c.get(id.as_str()).await.unwrap().data;
    assert_eq!(shorts.len(), doc.shorts.len());
    let get_score = doc
        .shorts
        .iter()
        .find(|s| s.id == shorts[0].id)
        .unwrap()
        .viral_score
        .unwrap();
    assert!((shorts[0].viral_score.unwrap() - get_score / 10.0).abs() < 0.051);
}

#[tokio::test]
async fn webhook_delivered_on_second_attempt_and_duplicates_share_a_dedupe_key() {
    let (sim, c) = sim(SimConfig {
        time_scale: 20.0,
        ..SimConfig::default()
    })
    .await;
    let (url, got) = receiver(1).await;
    let mut req = file_request("https://videos.example.com/403/x.mp4", 0.0, 60.0);
    req.webhook_url = Some(SecretString::from(url.clone()));
    let id = c.create(&req).await.unwrap().data.request_id;
    wait_until(
        || sim.inspect().deliveries_for(id.as_str()).len() == 2,
        Duration::from_secs(5),
    )
    .await;
    let ins = sim.inspect();
    let outcomes: Vec<&str> = ins
        .deliveries_for(id.as_str())
        .iter()
        .map(|d| d.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["failed", "delivered"]);
    let ev = parse_webhook(&got.lock().unwrap()[1].1).unwrap();
    assert!(
        matches!(&ev, WebhookEvent::Failed { failure_reason: Some(r), .. } if r.contains("403"))
    );

    sim.set_webhook_faults(WebhookFaults {
        duplicate: 1,
        ..WebhookFaults::default()
    });
    let mut req = file_request(SRC, 0.0, 60.0);
    req.webhook_url = Some(SecretString::from(url));
    let id2 = c.create(&req).await.unwrap().data.request_id;
    sim.force_complete(id2.as_str());
    wait_until(
        || sim.inspect().deliveries_for(id2.as_str()).len() == 2,
        Duration::from_secs(5),
    )
    .await;
    let bodies: Vec<Vec<u8>> = got.lock().unwrap()[2..]
        .iter()
        .map(|g| g.1.clone())
        .collect();
    assert_eq!(bodies.len(), 2);
    let a = parse_webhook(&bodies[0]).unwrap();
    let b = parse_webhook(&bodies[1]).unwrap();
    assert_eq!(a.dedupe_key(), b.dedupe_key());
}

#[tokio::test]
async fn timeout_after_accept_is_recovered_by_lookup_without_a_second_credit() {
    let sim = SsembleSim::start(SimConfig {
        withhold_real_secs: 10.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = SsembleConfig::new(SecretString::from(KEY)).with_base_url(sim.base_url.clone());
    cfg.request_timeout = Duration::from_millis(300);
    cfg.find.settle_delay = Duration::ZERO;
    let c = SsembleClient::new(cfg).unwrap();
    // Someone else's request for the same source earlier, and one for another range.
    let other = c
        .create(&file_request(SRC, 0.0, 60.0))
        .await
        .unwrap()
        .data
        .request_id;
    c.create(&file_request(SRC, 300.0, 360.0)).await.unwrap();

    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Create),
        kind: FaultKind::TimeoutAfterAccept,
        count: 1,
        status: None,
    });
    let req = file_request(SRC, 0.0, 60.0);
    let outcome = c
        .create_at_most_once(&req, BTreeSet::from([other.clone()]))
        .await
        .unwrap();
    let CreateOutcome::Recovered { request, cause } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(cause.class(), ErrorClass::OutcomeUnknown);
    let ins = sim.inspect();
    let newest = ins.requests.last().unwrap();
    assert_eq!(request.request_id.as_str(), newest.request_id);
    assert_eq!(
        ins.creates_per_source[SRC], 3,
        "no second create for the lost one"
    );
    assert_eq!(ins.credits_spent(KEY), 3);
    assert!(
        ins.calls.iter().any(|c| c.endpoint == ApiEndpoint::Get),
        "list items lack the range, so candidates are confirmed"
    );

    // Without the exclusion both same-range requests match: the caller must decide.
    let crit = FindCriteria {
        attempted_at: chrono::Utc::now() - chrono::Duration::seconds(30),
        ..FindCriteria::for_request(&req, chrono::Utc::now())
    };
    assert!(
        matches!(c.find_request(&crit).await.unwrap(), FindOutcome::Ambiguous(v) if v.len() == 2)
    );
}

#[tokio::test]
async fn dropped_connection_after_accept_is_recovered_too() {
    let (sim, c) = sim(SimConfig::default()).await;
    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Create),
        kind: FaultKind::DropAfterAccept,
        count: 1,
        status: None,
    });
    let outcome = c
        .create_at_most_once(&file_request(SRC, 5.0, 65.0), BTreeSet::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, CreateOutcome::Recovered { .. }),
        "{outcome:?}"
    );
    assert_eq!(sim.inspect().credits_spent(KEY), 1);
}

#[tokio::test]
async fn unknown_outcome_with_nothing_created_reports_not_found_and_definite_errors_skip_the_search()
 {
    let (sim, c) = sim(SimConfig::default()).await;
    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Create),
        kind: FaultKind::HttpError,
        count: 1,
        status: Some(500),
    });
    let outcome = c
        .create_at_most_once(&file_request(SRC, 0.0, 60.0), BTreeSet::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, CreateOutcome::NotFound { .. }),
        "{outcome:?}"
    );
    assert_eq!(sim.inspect().credits_spent(KEY), 0);

    let lists_before = sim
        .inspect()
        .calls
        .iter()
        .filter(|c| c.endpoint == ApiEndpoint::List)
        .count();
    let e = c
        .create_at_most_once(&file_request(SRC, 0.0, 5000.0), BTreeSet::new())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    let lists_after = sim
        .inspect()
        .calls
        .iter()
        .filter(|c| c.endpoint == ApiEndpoint::List)
        .count();
    assert_eq!(lists_before, lists_after);
}

#[tokio::test]
async fn a_connection_that_never_opened_is_not_sent_and_create_does_not_search() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut cfg =
        SsembleConfig::new(SecretString::from(KEY)).with_base_url(format!("http://{addr}/api/v1"));
    cfg.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    let c = SsembleClient::new(cfg).unwrap();
    let e = c
        .create_at_most_once(&file_request(SRC, 0.0, 60.0), BTreeSet::new())
        .await
        .unwrap_err();
    match &e {
        ApiError::NotSent { backoff, .. } => {
            assert_eq!(backoff.attempt, 2, "retried once, then gave up")
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.may_have_taken_effect());
    assert_eq!(e.class(), ErrorClass::Retryable);
}
