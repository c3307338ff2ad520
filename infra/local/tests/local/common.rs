//! The endpoint guard and per-test queues from template.yaml.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use reelay_template::{ProvisionOptions, ResourceKinds, Template};

pub const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");

/// Fails (never skips) when no local endpoint is configured: these tests make real SDK calls.
pub async fn sdk() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.trim().is_empty(),
        "AWS_ENDPOINT_URL is not set: the SQS driver tests need the local AWS endpoint. Start it with \
         `infra/scripts/aws-emulator.sh start && eval \"$(infra/scripts/aws-emulator.sh env)\"`, \
         then `cargo test -p reelay-local`"
    );
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

pub fn template() -> Template {
    Template::from_path(TEMPLATE).expect("template.yaml")
}

#[derive(Debug, Clone)]
pub struct FifoQueue {
    pub client: Client,
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
}

/// The template's publish queue (FIFO, redrive to its FIFO DLQ after maxReceiveCount 5) under a
/// fresh suffix, with the visibility timeout shortened so redelivery takes seconds.
pub async fn fifo_queue(visibility_secs: u32) -> FifoQueue {
    let sdk = sdk().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let options = ProvisionOptions::new("test")
        .with_suffix(suffix)
        .with_kinds(ResourceKinds::QUEUES)
        .with_visibility_timeout(visibility_secs);
    let stack = reelay_template::provision(&sdk, &template(), &options)
        .await
        .expect("provision the template's queues");
    let q = stack.queue("PublishQueue").expect("PublishQueue");
    let dlq = stack.queue("PublishDlq").expect("PublishDlq");
    FifoQueue {
        client: Client::new(&sdk),
        url: q.url.clone(),
        arn: q.arn.clone(),
        dlq_url: dlq.url.clone(),
    }
}

impl FifoQueue {
    /// Sends and returns the message id.
    pub async fn send(&self, group: &str, dedup: &str, body: &str) -> String {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage")
            .message_id
            .expect("message id")
    }

    /// Visible + in flight on the main queue.
    pub async fn depth(&self) -> u64 {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes");
        let attrs = out.attributes.unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|k| attrs.get(k).and_then(|v| v.parse::<u64>().ok()))
        .sum()
    }
}

/// Polls `check` every 50 ms until it holds or `within` passes; panics with `what` on timeout.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every key of `expected` is in `actual` with the same JSON type, recursively; maps named in
/// `open_maps` (e.g. `headers`) may hold other keys and are compared by type only.
pub fn assert_same_shape(
    expected: &serde_json::Value,
    actual: &serde_json::Value,
    path: &str,
    open_maps: &[&str],
) {
    use serde_json::Value;
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert_eq!(kind(expected), kind(actual), "{path}: {actual}");
    if let (Value::Object(e), Value::Object(a)) = (expected, actual) {
        let name = path.rsplit('.').next().unwrap_or(path);
        if open_maps.contains(&name) {
            return;
        }
        for (key, ev) in e {
            let av = a
                .get(key)
                .unwrap_or_else(|| panic!("{path}.{key} missing in {actual}"));
            assert_same_shape(ev, av, &format!("{path}.{key}"), open_maps);
        }
    }
}

pub fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}
