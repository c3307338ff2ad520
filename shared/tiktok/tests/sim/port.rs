//! The domain's `PublishApi` over the real client: the clip probe and the upload under the
//! caller's deadline. Stalls are 30 s against 1 s deadlines and the bound asserted is 15 s, so no
//! assertion depends on the machine's speed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reelay_domain::UtcTime;
use reelay_domain::job::{Clip, ClipChoice, PostMode, PostSettings, PrivacyLevel};
use reelay_domain::lifecycle::{ErrorClass, PublishStatus};
use reelay_domain::upstream::PublishApi;
use reelay_tiktok::{ChunkPlan, DEADLINE_CODE, PostInfo, SourceInfo, TikTokConfig, TikTokPort};
use secrecy::ExposeSecret;
use tiktok_sim::{Endpoint, FaultKind, FaultSpec, SimHandle};

use crate::common::*;

/// The generous bound a deadline-bounded call must return within (its deadline is 1 s).
const BOUND: Duration = Duration::from_secs(15);
/// How long a stalled answer is held (longer than the bound, shorter than no timeout at all).
const STALL: Duration = Duration::from_secs(30);

fn wall_now() -> UtcTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    UtcTime::from_millis(i64::try_from(ms).unwrap())
}

fn in_secs(secs: u64) -> UtcTime {
    wall_now().plus(Duration::from_secs(secs))
}

fn passed() -> UtcTime {
    wall_now().minus(Duration::from_secs(1))
}

/// A clip origin on loopback that counts every request (HEAD and GET) and can stall its HEAD.
struct Origin {
    url: String,
    hits: Arc<AtomicUsize>,
}

async fn origin(body: Vec<u8>, stall_head: bool) -> Origin {
    use axum::{
        http::{HeaderMap, StatusCode, header},
        response::IntoResponse,
        routing::get,
    };
    let body = Arc::new(body);
    let hits = Arc::new(AtomicUsize::new(0));
    let (get_hits, head_hits, len) = (hits.clone(), hits.clone(), body.len());
    let get_clip = move |headers: HeaderMap| {
        get_hits.fetch_add(1, Ordering::SeqCst);
        let body = body.clone();
        async move {
            let start = headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok());
            match start {
                Some(a) => (
                    StatusCode::PARTIAL_CONTENT,
                    [(
                        header::CONTENT_RANGE,
                        format!("bytes {a}-{}/{}", body.len() - 1, body.len()),
                    )],
                    body[a..].to_vec(),
                )
                    .into_response(),
                None => (StatusCode::OK, body.to_vec()).into_response(),
            }
        }
    };
    let head_clip = move || {
        head_hits.fetch_add(1, Ordering::SeqCst);
        async move {
            if stall_head {
                tokio::time::sleep(STALL).await;
            }
            (StatusCode::OK, [(header::CONTENT_LENGTH, len.to_string())]).into_response()
        }
    };
    let app = axum::Router::new().route("/clip.mp4", get(get_clip).head(head_clip));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Origin {
        url: format!("http://{addr}/clip.mp4"),
        hits,
    }
}

fn clip(url: &str) -> Clip {
    Clip {
        short_id: "s1".into(),
        video_url: url.into(),
        duration_secs: Some(30.0),
        viral_score: Some(80.0),
    }
}

fn direct_post() -> PostSettings {
    PostSettings {
        mode: PostMode::Direct,
        privacy_level: Some(PrivacyLevel::SelfOnly),
        title: Some("port".into()),
        disable_comment: false,
        disable_duet: false,
        disable_stitch: false,
        brand_content_toggle: false,
        brand_organic_toggle: false,
        is_aigc: false,
        video_cover_timestamp_ms: None,
        clip: ClipChoice::TopViralScore,
    }
}

fn uploads_sent(sim: &SimHandle) -> u64 {
    sim.inspect()["requests"]["Upload"].as_u64().unwrap_or(0)
}

/// An init for `size` bytes (through the client, so the test owns the upload URL).
async fn init(sim: &SimHandle, port: &TikTokPort, size: u64) -> (secrecy::SecretString, String) {
    let token = publish_token(sim, "u1");
    let plan = ChunkPlan::new(size, &port.client().config().chunk_policy).unwrap();
    let post = PostInfo::new(reelay_tiktok::PrivacyLevel::SelfOnly, None);
    let init = port
        .client()
        .init_direct_post(&token, &post, &SourceInfo::from(&plan))
        .await
        .unwrap();
    (
        secrecy::SecretString::from(init.upload_url.unwrap()),
        init.publish_id,
    )
}

async fn port(sim: &SimHandle, tweak: impl FnOnce(&mut TikTokConfig)) -> TikTokPort {
    TikTokPort::new(client(sim, tweak))
}

#[tokio::test]
async fn when_publishing_through_the_port_should_size_init_upload_and_observe() {
    let sim = start(sim_config()).await;
    let port = port(&sim, |_| {}).await;
    let body = data((3 * MIB + 4321) as usize, 3);
    let origin = origin(body.clone(), false).await;
    let clip = clip(&origin.url);
    let deadline = in_secs(600);

    let size = port.clip_size(&clip, deadline).await.unwrap();
    assert_eq!(size, body.len() as u64);
    let token = publish_token(&sim, "u1");
    let init = port
        .init(&token, &direct_post(), &clip, size)
        .await
        .unwrap();
    let url = init.upload_url.expect("FILE_UPLOAD");
    port.upload(&url, &clip, size, deadline).await.unwrap();
    let rec = &sim.inspect()["uploads"][init.publish_id.as_str()];
    assert_eq!(rec["sha256"], sha256_hex(&body));
    assert_eq!(rec["puts"], 3);

    sim.advance(10);
    let observed = port.status(&token, &init.publish_id).await.unwrap();
    assert_eq!(observed.status, PublishStatus::Complete);
}

#[tokio::test]
async fn when_the_deadline_has_passed_should_fail_the_probe_without_a_request() {
    let sim = start(sim_config()).await;
    let port = port(&sim, |_| {}).await;
    let origin = origin(data(1000, 1), false).await;
    let e = port
        .clip_size(&clip(&origin.url), passed())
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str(), e.outcome_unknown),
        (ErrorClass::Retryable, DEADLINE_CODE, false)
    );
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn when_the_deadline_has_passed_should_fail_the_upload_without_a_chunk() {
    let sim = start(sim_config()).await;
    let port = port(&sim, |_| {}).await;
    let body = data((3 * MIB) as usize, 2);
    let origin = origin(body.clone(), false).await;
    let (url, publish_id) = init(&sim, &port, body.len() as u64).await;
    let e = port
        .upload(&url, &clip(&origin.url), body.len() as u64, passed())
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str(), e.outcome_unknown),
        (ErrorClass::Retryable, DEADLINE_CODE, false)
    );
    assert_eq!(uploads_sent(&sim), 0, "no chunk PUT");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0, "no clip download");
    assert_eq!(sim.inspect()["uploads"][publish_id.as_str()]["puts"], 0);
    assert!(!format!("{e:?}").contains(url.expose_secret()));
}

#[tokio::test]
async fn when_the_probe_stalls_past_the_deadline_should_give_up_at_it() {
    let sim = start(sim_config()).await;
    // The probe's own timeout is longer than the stall: only the deadline can end it.
    let port = port(&sim, |c| c.timeouts.request = Duration::from_secs(60)).await;
    let origin = origin(data(1000, 1), true).await;
    let started = Instant::now();
    let e = port
        .clip_size(&clip(&origin.url), in_secs(1))
        .await
        .unwrap_err();
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    assert_eq!(
        (e.class, e.code.as_str(), e.outcome_unknown),
        (ErrorClass::Retryable, DEADLINE_CODE, false)
    );
    assert_eq!(
        origin.hits.load(Ordering::SeqCst),
        1,
        "the HEAD only, no fallback GET"
    );
}

#[tokio::test]
async fn when_a_chunk_stalls_past_the_deadline_should_cut_it_and_send_no_more() {
    let sim = start(sim_config()).await;
    // The chunk's own timeout is longer than the stall: only the deadline can end it.
    let port = port(&sim, |c| c.timeouts.upload_chunk = Duration::from_secs(60)).await;
    let body = data((3 * MIB) as usize, 5);
    let origin = origin(body.clone(), false).await;
    let (url, publish_id) = init(&sim, &port, body.len() as u64).await;
    sim.inject(FaultSpec {
        endpoint: Endpoint::Upload,
        kind: FaultKind::TimeoutAfterAccept {
            delay_ms: u64::try_from(STALL.as_millis()).unwrap(),
        },
        count: 1,
    });
    let started = Instant::now();
    let e = port
        .upload(&url, &clip(&origin.url), body.len() as u64, in_secs(1))
        .await
        .unwrap_err();
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Retryable, DEADLINE_CODE)
    );
    assert!(e.outcome_unknown, "the cut chunk may have landed");
    assert_eq!(uploads_sent(&sim), 1, "no chunk after the cut one");
    assert_ne!(
        sim.inspect()["uploads"][publish_id.as_str()]["complete"],
        true
    );
}
