//! The domain's `RenderApi` over the real client and the in-process simulator (real HTTP). The
//! simulator's call log is the ground truth for "one method, one HTTP call".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use reelay_domain::job::{MediaSource, RenderRequest};
use reelay_domain::lifecycle::ErrorClass;
use reelay_domain::upstream::{RenderApi, RenderProgress};
use reelay_domain::{RequestId, UtcTime};
use reelay_ssemble::{RetryPolicy, SsembleClient, SsembleConfig};
use secrecy::SecretString;
use ssemble_sim::{ApiEndpoint, FaultKind, FaultSpec, SimConfig, SimHandle, SsembleSim, StormSpec};

const KEY: &str = "sk_ssemble_0123456789abcdef0123456789abcdef";
const OTHER_KEY: &str = "sk_ssemble_fedcba9876543210fedcba9876543210";
const SRC: &str = "https://videos.example.com/talk.mp4";
const HOOK: &str = "https://reelay.example.com/webhooks/ssemble/j.t";

/// A client as a function builds it, except that `retry` is the crate's default (three attempts):
/// the port must still send one request per method.
fn client(base_url: &str, key: &str, tweak: impl FnOnce(&mut SsembleConfig)) -> SsembleClient {
    let mut cfg = SsembleConfig::new(SecretString::from(key)).with_base_url(base_url);
    cfg.retry = RetryPolicy {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    assert!(cfg.retry.max_attempts > 1);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.find.settle_delay = Duration::ZERO;
    tweak(&mut cfg);
    SsembleClient::new(cfg).unwrap()
}

async fn sim(cfg: SimConfig) -> (SimHandle, SsembleClient) {
    let sim = SsembleSim::start(cfg).await.unwrap();
    let c = client(&sim.base_url, KEY, |_| {});
    (sim, c)
}

fn request(start: f64, end: f64) -> RenderRequest {
    RenderRequest {
        media: MediaSource::FileUrl(SRC.into()),
        start,
        end,
        options: serde_json::Map::new(),
    }
}

fn now() -> UtcTime {
    UtcTime::from_millis(chrono::Utc::now().timestamp_millis())
}

/// Calls the simulator saw per endpoint, so a test can compare before and after.
fn calls(sim: &SimHandle, endpoint: ApiEndpoint) -> usize {
    sim.inspect()
        .calls
        .iter()
        .filter(|c| c.endpoint == endpoint)
        .count()
}

fn all_calls(sim: &SimHandle) -> usize {
    sim.inspect().calls.len()
}

async fn submitted(sim: &SimHandle, c: &SsembleClient) -> RequestId {
    let before = calls(sim, ApiEndpoint::Create);
    let id = c.submit(&request(0.0, 120.0), HOOK).await.unwrap();
    assert_eq!(calls(sim, ApiEndpoint::Create), before + 1);
    id
}

#[tokio::test]
async fn progress_and_clips_are_one_call_each_from_pending_to_completed() {
    let (sim, c) = sim(SimConfig::default()).await;
    let id = submitted(&sim, &c).await;

    let before = all_calls(&sim);
    assert_eq!(
        c.render_progress(&id).await.unwrap(),
        RenderProgress::Pending
    );
    assert_eq!(all_calls(&sim), before + 1);
    assert_eq!(calls(&sim, ApiEndpoint::Status), 1);

    // Before completion the document lags: no clips, and still one call.
    let before = all_calls(&sim);
    assert_eq!(c.render_clips(&id).await.unwrap(), None);
    assert_eq!(all_calls(&sim), before + 1);

    assert!(sim.force_complete(id.as_str()));
    let before = all_calls(&sim);
    assert_eq!(
        c.render_progress(&id).await.unwrap(),
        RenderProgress::Completed
    );
    let clips = c.render_clips(&id).await.unwrap().expect("completed");
    assert_eq!(all_calls(&sim), before + 2);
    assert_eq!(calls(&sim, ApiEndpoint::Status), 2);
    assert_eq!(calls(&sim, ApiEndpoint::Get), 2);

    let doc = c.get(id.as_str()).await.unwrap().data;
    let usable: Vec<&str> = doc
        .usable_shorts_by_score()
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert!(!clips.is_empty());
    assert_eq!(clips.len(), usable.len());
    for clip in &clips {
        assert!(usable.contains(&clip.short_id.as_str()));
        assert!(clip.video_url.starts_with(&sim.root_url));
        assert!(clip.viral_score.is_some());
    }
}

#[tokio::test]
async fn failed_cancelled_and_unknown_statuses_map_onto_the_domain() {
    let (sim, c) = sim(SimConfig::default()).await;
    let failed = submitted(&sim, &c).await;
    assert!(sim.force_fail(failed.as_str(), "Video download failed: URL returned 404"));
    assert_eq!(
        c.render_progress(&failed).await.unwrap(),
        RenderProgress::Failed {
            reason: "Video download failed: URL returned 404".into()
        }
    );

    let cancelled = submitted(&sim, &c).await;
    assert!(sim.cancel(cancelled.as_str()));
    assert_eq!(
        c.render_progress(&cancelled).await.unwrap(),
        RenderProgress::Cancelled
    );

    let odd = submitted(&sim, &c).await;
    assert!(sim.override_wire(odd.as_str(), Some("rendering_v2"), None));
    assert_eq!(
        c.render_progress(&odd).await.unwrap(),
        RenderProgress::Pending
    );
    assert!(sim.override_wire(odd.as_str(), Some("TASK_COMPLETE"), None));
    assert_eq!(
        c.render_progress(&odd).await.unwrap(),
        RenderProgress::Completed
    );
}

#[tokio::test]
async fn an_unknown_or_foreign_request_id_is_permanent_resource_not_found() {
    let (sim, c) = sim(SimConfig::default()).await;
    let mine = submitted(&sim, &c).await;
    let unknown = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    let stranger = client(&sim.base_url, OTHER_KEY, |_| {});
    for (who, id) in [(&c, &unknown), (&stranger, &mine)] {
        let before = all_calls(&sim);
        let e = who.render_progress(id).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent, "{e:?}");
        assert_eq!(e.code, "resource_not_found");
        assert!(!e.outcome_unknown);
        assert_eq!(e.retry_at, None);
        let e = who.render_clips(id).await.unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str(), e.outcome_unknown),
            (ErrorClass::Permanent, "resource_not_found", false)
        );
        assert_eq!(all_calls(&sim), before + 2, "one call each, no retry");
    }
}

#[tokio::test]
async fn server_errors_are_retryable_and_never_retried_inside() {
    let (sim, c) = sim(SimConfig::default()).await;
    let id = submitted(&sim, &c).await;
    for endpoint in [ApiEndpoint::Status, ApiEndpoint::Get] {
        for kind in [FaultKind::HttpError, FaultKind::NonJson502] {
            sim.inject_fault(FaultSpec {
                endpoint: Some(endpoint),
                kind,
                count: 3,
                status: Some(503),
            });
            let before = calls(&sim, endpoint);
            let e = match endpoint {
                ApiEndpoint::Status => c.render_progress(&id).await.map(|_| ()),
                _ => c.render_clips(&id).await.map(|_| ()),
            }
            .unwrap_err();
            assert_eq!(e.class, ErrorClass::Retryable, "{endpoint:?} {e:?}");
            assert!(!e.outcome_unknown);
            assert_eq!(calls(&sim, endpoint), before + 1, "{endpoint:?}");
            // Clear the faults left over, so the next case starts clean.
            for _ in 0..2 {
                let _ = c.status(id.as_str()).await;
                let _ = c.get(id.as_str()).await;
            }
        }
    }
}

#[tokio::test]
async fn a_rate_limited_status_waits_for_the_window_ssemble_names() {
    let (sim, c) = sim(SimConfig::default()).await;
    let id = submitted(&sim, &c).await;
    sim.storm(StormSpec {
        endpoint: Some(ApiEndpoint::Status),
        count: 3,
        retry_after_secs: 37,
        retry_after_header: true,
        details_retry_after: true,
        details_reset_at: true,
        reset_header: true,
    });
    let before = calls(&sim, ApiEndpoint::Status);
    let asked = now();
    let e = c.render_progress(&id).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::WaitForWindow);
    assert_eq!(e.code, "rate_limit_exceeded");
    assert!(!e.outcome_unknown);
    let at = e.retry_at.expect("Ssemble said when");
    assert!(at >= asked.plus(Duration::from_secs(36)), "{at}");
    assert!(at <= now().plus(Duration::from_secs(37)), "{at}");
    assert_eq!(calls(&sim, ApiEndpoint::Status), before + 1);
}

/// A status whose answer never comes in time. The simulator logs a call only once it answers,
/// so a local server counts the requests as they arrive.
#[tokio::test]
async fn a_status_that_times_out_is_retryable_and_not_outcome_unknown() {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let app = Router::new().route(
        "/api/v1/shorts/{id}/status",
        get(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = client(&format!("http://{addr}/api/v1"), KEY, |cfg| {
        cfg.request_timeout = Duration::from_secs(1);
    });
    let id = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    let started = std::time::Instant::now();
    let e = c.render_progress(&id).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        (e.class, e.code.as_str(), e.outcome_unknown),
        (ErrorClass::Retryable, "upstream_no_response", false)
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "sent once, not retried inside"
    );
}

/// Status says completed while the document still says processing (the documented lag).
#[tokio::test]
async fn a_document_that_lags_the_status_gives_no_clips_yet() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = |body: &'static str| {
        let hits = hits.clone();
        move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async move { ([("content-type", "application/json")], body) }
        }
    };
    let app = Router::new()
        .route(
            "/api/v1/shorts/{id}/status",
            get(counted(
                r#"{"data":{"_id":"665a1b2c3d4e5f6a7b8c9d0e","status":"completed","progress":100}}"#,
            )),
        )
        .route(
            "/api/v1/shorts/{id}",
            get(counted(
                r#"{"data":{"_id":"665a1b2c3d4e5f6a7b8c9d0e","status":"processing","shorts":[]}}"#,
            )),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = client(&format!("http://{addr}/api/v1"), KEY, |_| {});
    let id = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    assert_eq!(
        c.render_progress(&id).await.unwrap(),
        RenderProgress::Completed
    );
    assert_eq!(c.render_clips(&id).await.unwrap(), None);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_outcome_unknown_then_found_once() {
    let sim = SsembleSim::start(SimConfig {
        withhold_real_secs: 10.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = client(&sim.base_url, KEY, |cfg| {
        cfg.request_timeout = Duration::from_millis(500);
    });
    let since = now();
    assert_eq!(
        c.find_submitted(&request(0.0, 60.0), since).await.unwrap(),
        None
    );
    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Create),
        kind: FaultKind::TimeoutAfterAccept,
        count: 1,
        status: None,
    });
    let e = c.submit(&request(0.0, 60.0), HOOK).await.unwrap_err();
    assert!(e.outcome_unknown, "{e:?}");
    assert_eq!(e.class, ErrorClass::Retryable);
    assert_eq!(calls(&sim, ApiEndpoint::Create), 1, "sent exactly once");

    let before = all_calls(&sim);
    let found = c
        .find_submitted(&request(0.0, 60.0), since)
        .await
        .unwrap()
        .expect("the lost create is found");
    assert_eq!(found.as_str(), sim.inspect().requests[0].request_id);
    let spent = u32::try_from(all_calls(&sim) - before).unwrap();
    assert!(spent <= c.find_call_bound(), "{spent} calls");
    assert_eq!(sim.inspect().credits_spent(KEY), 1);
    assert_eq!(
        c.find_call_bound(),
        3 + 5,
        "the default find policy's bound"
    );
}
