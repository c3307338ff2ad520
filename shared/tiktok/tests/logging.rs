//! Its own binary: tracing's per-callsite interest cache is global, so a scoped subscriber is only
//! reliable when no other test thread emits events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sim/common.rs"]
mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use reelay_tiktok::{ChunkPlan, PostInfo, PrivacyLevel, SourceInfo};
use secrecy::ExposeSecret;

use common::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn when_calls_are_logged_should_carry_log_ids_and_version_but_no_secret() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start(sim_config()).await;
    let client = client(&sim, |_| {});
    let (_, rt) = tokens(&sim, "u1", &["video.publish"]);
    let fresh = client.refresh(&rt).await.unwrap();
    let plan = ChunkPlan::new(3 * MIB, &client.config().chunk_policy).unwrap();
    let post = PostInfo::new(PrivacyLevel::SelfOnly, None);
    let init = client
        .init_direct_post(&fresh.access_token, &post, &SourceInfo::from(&plan))
        .await
        .unwrap();
    let url = init.upload_url.unwrap();
    sim.inject(tiktok_sim::FaultSpec {
        endpoint: tiktok_sim::Endpoint::Upload,
        kind: tiktok_sim::FaultKind::TimeoutAfterAccept { delay_ms: 2500 },
        count: 1,
    });
    let short = common::client(&sim, |c| {
        c.timeouts.upload_chunk = std::time::Duration::from_millis(1000)
    });
    short
        .upload(
            &url,
            &plan,
            &MemSource::new(data(plan.video_size as usize, 1)),
            "video/mp4",
        )
        .await
        .unwrap();
    let err = client.refresh(&rt).await.unwrap_err();

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("api_version=\"v2\"") || logs.contains("api_version=v2"),
        "{logs}"
    );
    assert!(
        logs.contains("x_tt_logid") && logs.contains("endpoint=\"video/init\""),
        "{logs}"
    );
    let upload_token = url.split("upload_token=").nth(1).unwrap();
    for secret in [
        rt.expose_secret(),
        fresh.access_token.expose_secret(),
        fresh.refresh_token.expose_secret(),
        sim.config().client_secret.as_str(),
        upload_token,
    ] {
        assert!(!logs.contains(secret), "secret in logs");
        assert!(!format!("{err:?}{err}").contains(secret), "secret in error");
    }
}
