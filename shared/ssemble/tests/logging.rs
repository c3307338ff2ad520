//! Every call logs structured fields (endpoint, request id, status, remaining budget) and
//! never the API key or the webhook URL's token, on success and on failure paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reelay_ssemble::{CreateShortRequest, RetryPolicy, Source, SsembleClient, SsembleConfig};
use secrecy::SecretString;
use ssemble_sim::{ApiEndpoint, FaultKind, FaultSpec, SimConfig, SsembleSim};

const KEY: &str = "sk_ssemble_0123456789abcdef0123456789abcdef";

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
async fn calls_log_budget_and_ids_but_never_the_key_or_webhook_token() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = SsembleSim::start(SimConfig::default()).await.unwrap();
    let mut cfg = SsembleConfig::new(SecretString::from(KEY)).with_base_url(sim.base_url.clone());
    cfg.retry = RetryPolicy::none();
    cfg.request_timeout = Duration::from_secs(5);
    cfg.find.settle_delay = Duration::ZERO;
    let c = SsembleClient::new(cfg).unwrap();

    let mut req = CreateShortRequest::new(
        Source::FileUrl("https://v.example.com/a.mp4".into()),
        0.0,
        60.0,
    );
    req.webhook_url = Some(SecretString::from(
        "https://hooks.example.com/s?token=tok_SECRET_123",
    ));
    let id = c.create(&req).await.unwrap().data.request_id;
    c.status(id.as_str()).await.unwrap();
    c.status("665a1b2c3d4e5f6a7b8c9d0f").await.unwrap_err();
    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Create),
        kind: FaultKind::DropAfterAccept,
        count: 1,
        status: None,
    });
    let outcome = c
        .create_at_most_once(&req, Default::default())
        .await
        .unwrap();
    let _ = format!("{outcome:?} {c:?} {req:?}");

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        !logs.contains("0123456789abcdef0123456789abcdef"),
        "API key leaked"
    );
    assert!(!logs.contains("tok_SECRET_123"), "webhook token leaked");
    let status_line = logs
        .lines()
        .find(|l| l.contains("GET /shorts/:id/status") && l.contains(id.as_str()))
        .expect("status call logged with its request id");
    let v: serde_json::Value = serde_json::from_str(status_line).unwrap();
    assert_eq!(v["fields"]["http_status"], 200);
    assert_eq!(v["fields"]["remaining_hour"], 98);
    assert_eq!(v["fields"]["remaining_day"], 998);
    assert!(logs.contains("\"error.code\":\"resource_not_found\""));
    assert!(logs.contains("outcome unknown; searching before any resubmission"));
}
