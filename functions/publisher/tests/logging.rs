//! No token, client secret or upload URL reaches any log line — ours, the clients' or the SDK's —
//! through a publish that refreshes a refused token and uploads; while the fields triage needs
//! (job_id, account_id, publish_id, error.code, the API version) are there. Its own binary: the
//! tracing subscriber is global.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use publisher::{handler, wiring};
use reelay_aws::SystemClock;
use reelay_domain::job::PrivacyLevel;
use reelay_domain::ports::{Clock, JobStore, TokenVault};
use reelay_domain::{PostMode, PostSettings, TenantId};
use reelay_local::{ClipOrigin, StackOptions, Testbed, rendered_job};
use secrecy::ExposeSecret;
use tiktok_sim::{Endpoint, FaultKind, FaultSpec};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_with_a_refresh_logs_ids_and_codes_but_no_secret() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        // The simulator shares the process; its own logs are not Reelay's.
        .with_env_filter("trace,tiktok_sim=off,ssemble_sim=off")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let bed = Testbed::start(&StackOptions::for_tests())
        .await
        .expect("testbed: start the local endpoint (infra/scripts/aws-emulator.sh start)");
    let sim = bed.tiktok.as_ref().unwrap();
    let client_secret = sim.config().client_secret;
    let config = bed.wiring("http://127.0.0.1:9", None).publisher_config();
    let deps = wiring::live(&bed.sdk, &config).await.unwrap();
    let tenant = TenantId::parse("tenant_a").unwrap();
    let scopes = ["user.info.basic", "video.publish", "video.upload"];
    let account = bed
        .connect_account(&tenant, "acct_logs", "open_logs", &scopes)
        .await
        .unwrap();
    let before = bed
        .vault()
        .get_tokens(&tenant, &account)
        .await
        .unwrap()
        .unwrap();
    let origin = ClipOrigin::start().await.unwrap();
    let clip = origin.clip("logs", vec![3; 200 * 1024]);
    let post = PostSettings {
        privacy_level: Some(PrivacyLevel::SelfOnly),
        title: Some("logs-1".into()),
        ..reelay_testkit::sample::post(PostMode::Direct)
    };
    let job = rendered_job(&deps.core, &tenant, &account, post, clip, SystemClock.now())
        .await
        .unwrap();
    // The stored access token is refused once: the publish refreshes it and goes on.
    sim.inject(FaultSpec {
        endpoint: Endpoint::CreatorInfo,
        kind: FaultKind::Error {
            status: 401,
            code: "access_token_invalid".into(),
        },
        count: 1,
    });
    let deadline = SystemClock.now().plus(Duration::from_secs(280));
    let queue = &bed.resources.publish_queue_url;
    let delivered = bed
        .deliver(queue, Duration::from_secs(2), |e| {
            handler(&deps, e, deadline)
        })
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 0));
    let done = deps.core.ports.store.get(&job.id).await.unwrap().unwrap();
    let publish_id = done.publish_id.expect("published").to_string();
    let after = bed
        .vault()
        .get_tokens(&tenant, &account)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        after.access_token.expose_secret(),
        before.access_token.expose_secret(),
        "the refused token was refreshed"
    );

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for (what, secret) in [
        ("old access token", before.access_token.expose_secret()),
        ("old refresh token", before.refresh_token.expose_secret()),
        ("new access token", after.access_token.expose_secret()),
        ("new refresh token", after.refresh_token.expose_secret()),
        ("client secret", client_secret.as_str()),
        ("upload token", "upload_token"),
    ] {
        assert!(!logs.contains(secret), "the {what} reached the logs");
    }
    for needed in [
        publish_id.as_str(),
        "api_version",
        "access_token_invalid",
        "job_id",
        "account_id",
    ] {
        assert!(logs.contains(needed), "{needed} missing from the logs");
    }
}
