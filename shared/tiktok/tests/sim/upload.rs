use std::time::Duration;

use futures::StreamExt;
use reelay_tiktok::{
    ChunkPlan, ChunkPolicy, HttpSource, PostInfo, PrivacyLevel, PublishStatusKind, SourceError,
    SourceInfo, TikTokError, UploadError, UploadSource,
};
use serde_json::json;
use tiktok_sim::{Endpoint, FaultKind, FaultSpec};

use crate::common::*;

struct Started {
    sim: tiktok_sim::SimHandle,
    client: reelay_tiktok::TikTokClient,
    token: secrecy::SecretString,
    plan: ChunkPlan,
    url: String,
    publish_id: String,
    data: Vec<u8>,
}

async fn init_upload(size: usize, tweak: impl FnOnce(&mut reelay_tiktok::TikTokConfig)) -> Started {
    let sim = start(sim_config()).await;
    let client = client(&sim, tweak);
    let token = publish_token(&sim, "u1");
    let plan = ChunkPlan::new(size as u64, &client.config().chunk_policy).unwrap();
    let post = PostInfo::new(PrivacyLevel::PublicToEveryone, Some("upload".into()));
    let init = client
        .init_direct_post(&token, &post, &SourceInfo::from(&plan))
        .await
        .unwrap();
    Started {
        url: init.upload_url.unwrap(),
        publish_id: init.publish_id,
        data: data(size, size as u32),
        sim,
        client,
        token,
        plan,
    }
}

fn upload_record(s: &Started) -> serde_json::Value {
    s.sim.inspect()["uploads"][&s.publish_id].clone()
}

#[tokio::test]
async fn when_uploading_in_chunks_should_deliver_exact_bytes_then_publish() {
    let s = init_upload((3 * MIB + 12_345) as usize, |_| {}).await;
    assert_eq!(s.plan.total_chunk_count, 3);
    let report = s
        .client
        .upload(
            &s.url,
            &s.plan,
            &MemSource::new(s.data.clone()),
            "video/mp4",
        )
        .await
        .unwrap();
    assert_eq!(
        (
            report.chunks,
            report.requests,
            report.retries,
            report.resumes
        ),
        (3, 3, 0, 0)
    );
    assert!(report.log_id.is_some());
    let rec = upload_record(&s);
    assert_eq!(rec["received"], s.data.len() as u64);
    assert_eq!(rec["puts"], 3);
    assert_eq!(rec["sha256"], sha256_hex(&s.data));
    let st = s
        .client
        .fetch_status(&s.token, &s.publish_id)
        .await
        .unwrap();
    assert_eq!(st.status, PublishStatusKind::ProcessingUpload);
    assert_eq!(st.uploaded_bytes, Some(s.data.len() as u64));
    s.sim.advance(10);
    let st = s
        .client
        .fetch_status(&s.token, &s.publish_id)
        .await
        .unwrap();
    assert_eq!(st.status, PublishStatusKind::PublishComplete);
    assert!(
        s.sim.inspect()["chunk_violations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn when_video_is_small_should_send_one_whole_chunk() {
    let s = init_upload(700_000, |_| {}).await;
    assert_eq!((s.plan.chunk_size, s.plan.total_chunk_count), (700_000, 1));
    let report = s
        .client
        .upload(
            &s.url,
            &s.plan,
            &MemSource::new(s.data.clone()),
            "video/mp4",
        )
        .await
        .unwrap();
    assert_eq!(report.requests, 1);
    assert_eq!(upload_record(&s)["sha256"], sha256_hex(&s.data));
}

#[tokio::test]
async fn when_default_policies_meet_default_rules_should_interoperate() {
    let mut cfg = sim_config();
    cfg.chunk_rules = tiktok_sim::ChunkRules::strict();
    cfg.max_video_size = u64::MAX;
    let sim = start(cfg).await;
    let client = client(&sim, |c| c.chunk_policy = ChunkPolicy::default());
    let token = publish_token(&sim, "u1");
    for size in [
        4_900_000u64,
        5 * MIB,
        64_000_001,
        64 * MIB,
        1001 * 64_000_000 - 1,
    ] {
        let plan = ChunkPlan::new(size, &ChunkPolicy::default()).unwrap();
        sim.advance(61);
        client
            .init_inbox(&token, &SourceInfo::from(&plan))
            .await
            .unwrap_or_else(|e| panic!("{size}: {e}"));
    }
    assert!(
        sim.inspect()["chunk_violations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn when_chunk_puts_hit_5xx_should_retry_the_same_chunk() {
    let s = init_upload((3 * MIB) as usize, |_| {}).await;
    s.sim.inject(FaultSpec {
        endpoint: Endpoint::Upload,
        kind: FaultKind::Status { status: 503 },
        count: 2,
    });
    let report = s
        .client
        .upload(
            &s.url,
            &s.plan,
            &MemSource::new(s.data.clone()),
            "video/mp4",
        )
        .await
        .unwrap();
    assert_eq!((report.retries, report.requests), (2, 5));
    assert_eq!(upload_record(&s)["sha256"], sha256_hex(&s.data));
}

#[tokio::test]
async fn when_5xx_persists_should_give_up_after_the_bounded_attempts() {
    let s = init_upload((3 * MIB) as usize, |c| {
        c.upload_retry.max_attempts_per_chunk = 3
    })
    .await;
    s.sim.inject(FaultSpec {
        endpoint: Endpoint::Upload,
        kind: FaultKind::Status { status: 502 },
        count: 10,
    });
    let err = s
        .client
        .upload(
            &s.url,
            &s.plan,
            &MemSource::new(s.data.clone()),
            "video/mp4",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TikTokError::Upload(UploadError::ServerErrorsExhausted {
                chunk: 0,
                status: 502,
                attempts: 3
            })
        ),
        "{err:?}"
    );
}

async fn put_first_chunk(s: &Started) {
    let r = s.plan.range(0);
    let resp = reqwest::Client::new()
        .put(&s.url)
        .header("content-type", "video/mp4")
        .header(
            "content-range",
            format!("bytes {}-{}/{}", r.start, r.end, s.plan.video_size),
        )
        .body(s.data[r.start as usize..=r.end as usize].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
}

#[tokio::test]
async fn when_server_already_has_chunks_should_resume_from_the_416_progress() {
    for inclusive in [false, true] {
        let s = init_upload((3 * MIB + 7) as usize, |_| {}).await;
        s.sim
            .patch_config(&json!({"progress_header_inclusive": inclusive}))
            .unwrap();
        put_first_chunk(&s).await;
        let report = s
            .client
            .upload(
                &s.url,
                &s.plan,
                &MemSource::new(s.data.clone()),
                "video/mp4",
            )
            .await
            .unwrap();
        assert_eq!(
            (report.resumes, report.requests),
            (1, 3),
            "inclusive={inclusive}"
        );
        let rec = upload_record(&s);
        assert_eq!(rec["puts"], 3);
        assert_eq!(rec["sha256"], sha256_hex(&s.data));
    }
}

#[tokio::test]
async fn when_a_chunk_response_is_lost_should_resume_without_resending_it() {
    let s = init_upload((3 * MIB) as usize, |c| {
        c.timeouts.upload_chunk = Duration::from_millis(1000)
    })
    .await;
    s.sim.inject(FaultSpec {
        endpoint: Endpoint::Upload,
        kind: FaultKind::TimeoutAfterAccept { delay_ms: 3000 },
        count: 1,
    });
    let report = s
        .client
        .upload(
            &s.url,
            &s.plan,
            &MemSource::new(s.data.clone()),
            "video/mp4",
        )
        .await
        .unwrap();
    assert_eq!((report.retries, report.resumes), (1, 1));
    let rec = upload_record(&s);
    assert_eq!(rec["puts"], 3, "every chunk stored once");
    assert_eq!(rec["sha256"], sha256_hex(&s.data));
}

#[tokio::test]
async fn when_upload_url_is_expired_or_unknown_should_be_typed_errors() {
    let s = init_upload((3 * MIB) as usize, |_| {}).await;
    let src = MemSource::new(s.data.clone());
    let bogus = s.url.replace("upload_id=", "upload_id=9");
    let err = s
        .client
        .upload(&bogus, &s.plan, &src, "video/mp4")
        .await
        .unwrap_err();
    assert!(
        matches!(err, TikTokError::Upload(UploadError::TaskNotFound { .. })),
        "{err:?}"
    );
    s.sim.advance(3600);
    let err = s
        .client
        .upload(&s.url, &s.plan, &src, "video/mp4")
        .await
        .unwrap_err();
    assert!(
        matches!(err, TikTokError::Upload(UploadError::Expired { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn when_source_ends_early_should_fail_without_storing_wrong_bytes() {
    let s = init_upload((3 * MIB) as usize, |_| {}).await;
    let mut src = MemSource::new(s.data.clone());
    src.truncate_to = Some((MIB + 100) as usize);
    let err = s
        .client
        .upload(&s.url, &s.plan, &src, "video/mp4")
        .await
        .unwrap_err();
    assert!(
        matches!(err, TikTokError::Source(SourceError::ShortRead { offset, .. }) if offset == MIB),
        "{err:?}"
    );
    let rec = upload_record(&s);
    assert_eq!(rec["received"], MIB, "only the complete first chunk");
    assert_eq!(rec["puts"], 1);

    let report = s
        .client
        .upload(
            &s.url,
            &s.plan,
            &MemSource::new(s.data.clone()),
            "video/mp4",
        )
        .await
        .unwrap();
    assert_eq!(
        report.resumes, 1,
        "a retried job picks up after the stored chunk"
    );
    assert_eq!(upload_record(&s)["sha256"], sha256_hex(&s.data));
}

#[tokio::test]
async fn when_source_size_differs_from_plan_should_refuse_before_sending() {
    let s = init_upload((3 * MIB) as usize, |_| {}).await;
    let err = s
        .client
        .upload(&s.url, &s.plan, &MemSource::new(vec![0; 10]), "video/mp4")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        TikTokError::Upload(UploadError::SizeMismatch { .. })
    ));
    assert_eq!(upload_record(&s)["puts"], 0);
}

/// A clip origin on loopback: honours `Range` unless `/norange/`.
async fn origin(body: Vec<u8>) -> String {
    use axum::{
        http::{HeaderMap, StatusCode, header},
        response::IntoResponse,
        routing::get,
    };
    let body = std::sync::Arc::new(body);
    let serve = move |honour: bool| {
        let body = body.clone();
        move |headers: HeaderMap| {
            let body = body.clone();
            async move {
                let start = headers
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes="))
                    .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok());
                match start {
                    Some(a) if honour => (
                        StatusCode::PARTIAL_CONTENT,
                        [(
                            header::CONTENT_RANGE,
                            format!("bytes {a}-{}/{}", body.len() - 1, body.len()),
                        )],
                        body[a..].to_vec(),
                    )
                        .into_response(),
                    _ => (StatusCode::OK, body.to_vec()).into_response(),
                }
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/clip.mp4",
            get(serve(true)).head(|| async { StatusCode::OK }),
        )
        .route("/norange/clip.mp4", get(serve(false)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn collect(src: &HttpSource, offset: u64) -> Vec<u8> {
    let mut s = src.open(offset).await.unwrap();
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

#[tokio::test]
async fn when_origin_ignores_range_should_still_yield_the_right_bytes() {
    let body = data(300_000, 9);
    let base = origin(body.clone()).await;
    let http = reqwest::Client::new();
    for path in ["/clip.mp4", "/norange/clip.mp4"] {
        let src = HttpSource::with_len(http.clone(), format!("{base}{path}"), body.len() as u64);
        assert_eq!(collect(&src, 0).await, body, "{path}");
        assert_eq!(collect(&src, 123_457).await, &body[123_457..], "{path}");
    }
    let wrong = HttpSource::with_len(http.clone(), format!("{base}/clip.mp4"), 5);
    assert!(matches!(
        wrong.open(0).await,
        Err(SourceError::LengthMismatch { .. })
    ));
}

#[tokio::test]
async fn when_streaming_from_an_http_origin_should_upload_with_retries_and_resume() {
    let s = init_upload((3 * MIB + 99) as usize, |_| {}).await;
    let base = origin(s.data.clone()).await;
    let src = HttpSource::with_len(
        s.client.http().clone(),
        format!("{base}/norange/clip.mp4"),
        s.data.len() as u64,
    );
    put_first_chunk(&s).await;
    s.sim.inject(FaultSpec {
        endpoint: Endpoint::Upload,
        kind: FaultKind::Status { status: 500 },
        count: 1,
    });
    let report = s
        .client
        .upload(&s.url, &s.plan, &src, "video/mp4")
        .await
        .unwrap();
    assert!(report.resumes >= 1 && report.retries >= 1, "{report:?}");
    assert_eq!(upload_record(&s)["sha256"], sha256_hex(&s.data));
}

#[tokio::test]
async fn when_the_final_chunk_response_is_lost_should_finish_from_the_416_progress() {
    for inclusive in [false, true] {
        let s = init_upload(700_000, |c| {
            c.timeouts.upload_chunk = Duration::from_millis(1000)
        })
        .await;
        s.sim
            .patch_config(&json!({"progress_header_inclusive": inclusive}))
            .unwrap();
        s.sim.inject(FaultSpec {
            endpoint: Endpoint::Upload,
            kind: FaultKind::TimeoutAfterAccept { delay_ms: 2500 },
            count: 1,
        });
        let report = s
            .client
            .upload(
                &s.url,
                &s.plan,
                &MemSource::new(s.data.clone()),
                "video/mp4",
            )
            .await
            .unwrap();
        assert_eq!(
            (report.retries, report.requests),
            (1, 2),
            "inclusive={inclusive}"
        );
        let rec = upload_record(&s);
        assert_eq!(
            (rec["puts"].as_u64(), rec["complete"].as_bool()),
            (Some(1), Some(true))
        );
    }
}

#[tokio::test]
async fn when_uploading_from_a_file_should_deliver_exact_bytes() {
    let s = init_upload((2 * MIB + 333) as usize, |_| {}).await;
    let path = std::env::temp_dir().join(format!("reelay-tiktok-{}.mp4", std::process::id()));
    tokio::fs::write(&path, &s.data).await.unwrap();
    let src = reelay_tiktok::FileSource::new(&path).await.unwrap();
    s.client
        .upload(&s.url, &s.plan, &src, "video/mp4")
        .await
        .unwrap();
    tokio::fs::remove_file(&path).await.unwrap();
    assert_eq!(upload_record(&s)["sha256"], sha256_hex(&s.data));
}
