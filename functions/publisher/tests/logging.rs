//! No token, client secret or upload URL reaches any log line — ours, the client's or the
//! SDK's — through a publish that refreshes a refused token, uploads and follows webhooks; while
//! the fields triage needs (publish_id, error.code, API version) are there. Its own binary: the
//! tracing subscriber is global.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tiktok-webhook/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use publisher::{Deps, Settings};
use reelay_aws::{FailureScope, FifoBatchProcessor, SystemClock, sqs_event_from_received};
use reelay_domain::JobState;
use reelay_domain::budget::Limits;
use reelay_domain::job::PostMode;
use reelay_domain::ports::TokenVault;
use reelay_tiktok::{TikTokClient, TikTokConfig, TikTokPort};
use secrecy::{ExposeSecret, SecretString};
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

#[tokio::test]
async fn when_publishing_with_a_refresh_should_log_ids_and_codes_but_no_secret() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        // The simulator shares the process; its own logs are not Reelay's.
        .with_env_filter("trace,tiktok_sim=off")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let w = world(sim_config()).await;
    let cfg = w.sim.config();
    let mut c = TikTokConfig::new(
        cfg.client_key,
        SecretString::from(cfg.client_secret.clone()),
        "https://app.example.com/oauth/callback",
    )
    .with_base_url(&w.sim.base_url);
    c.chunk_policy = small_policy();
    let port = TikTokPort::new(TikTokClient::new(c).unwrap());
    let d = Deps {
        jobs: w.jobs.clone(),
        accounts: w.accounts.clone(),
        queue: w.queue.clone(),
        clock: SystemClock,
        vault: w.vault.clone(),
        refresher: port.clone(),
        tiktok: port,
        batches: FifoBatchProcessor::new(w.sqs.clone(), &w.publish_url)
            .with_scope(FailureScope::RestOfGroup),
        policy: policy(),
        limits: Limits::default(),
        settings: Settings::default(),
    };
    let account = w.connect("acct_logs", "open_logs").await;
    let before = w
        .vault
        .get_tokens(&w.tenant, &account)
        .await
        .unwrap()
        .unwrap();
    let (clip, _) = w.clip("logs", 1_200_000, 21);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "logs-1"), clip)
        .await;
    w.sim.inject(FaultSpec {
        endpoint: Endpoint::VideoInit,
        kind: FaultKind::Error {
            status: 401,
            code: "access_token_invalid".into(),
        },
        count: 1,
    });
    let messages = w
        .sqs
        .receive_message()
        .queue_url(&w.publish_url)
        .wait_time_seconds(2)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let response = publisher::function_handler(&d, sqs_event_from_received(&messages, None)).await;
    assert!(response.batch_item_failures.is_empty());
    let done = w
        .wait_for_state(&job.id, JobState::PubliclyAvailable, 30)
        .await;
    let after = w
        .vault
        .get_tokens(&w.tenant, &account)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for (what, secret) in [
        ("old access token", before.access_token.expose_secret()),
        ("old refresh token", before.refresh_token.expose_secret()),
        ("new access token", after.access_token.expose_secret()),
        ("new refresh token", after.refresh_token.expose_secret()),
        ("client secret", cfg.client_secret.as_str()),
        ("upload token", "upload_token"),
    ] {
        assert!(!logs.contains(secret), "the {what} reached the logs");
    }
    let publish_id = done.publish_id.unwrap().to_string();
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
