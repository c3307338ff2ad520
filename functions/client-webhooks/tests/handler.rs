//! The handler on the sam local fixtures (Lambda's DynamoDB-stream and SQS shapes) over the
//! in-memory adapters: a stream batch with nothing to send reports nothing, a message that is
//! not a delivery is reported (so it reaches the DLQ), and an audited move of a job of a tenant
//! with an endpoint becomes one delivery that the next queue batch sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use client_webhooks::Deps;
use reelay_domain::usecase::{Command, EndpointRequest, Outbound, OutboundSettings};
use reelay_testkit::{JobSetup, MemDeliveries, ScriptedReceiver, World, block_on, tenant_id};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/sam-local/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn deps(
    w: &World,
) -> (
    Deps<reelay_testkit::MemStore, MemDeliveries, reelay_testkit::ManualClock, ScriptedReceiver>,
    MemDeliveries,
    ScriptedReceiver,
) {
    let queue = MemDeliveries::new(w.clock.clone());
    let receiver = ScriptedReceiver::default();
    let deps = Deps {
        outbound: Outbound {
            store: w.store.clone(),
            queue: queue.clone(),
            clock: w.clock.clone(),
            settings: OutboundSettings::default(),
        },
        sender: receiver.clone(),
    };
    (deps, queue, receiver)
}

#[test]
fn the_sam_local_fixtures_answer_as_the_tier_expects() {
    let w = World::new();
    let (deps, queue, _) = deps(&w);
    let answer = block_on(deps.handle(fixture("client-webhooks-stream.json"))).unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    assert_eq!(queue.sends(), 0);
    let answer = block_on(deps.handle(fixture("client-webhooks-delivery.json"))).unwrap();
    assert_eq!(
        answer["batchItemFailures"],
        json!([{"itemIdentifier": "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"}])
    );
    assert!(block_on(deps.handle(json!({"Records": [{"eventSource": "aws:s3"}]}))).is_err());
}

#[test]
fn a_stream_record_of_a_move_becomes_a_delivery_the_queue_batch_sends() {
    let w = World::new().tenant("t1").account("t1", "acct_a");
    let (deps, queue, receiver) = deps(&w);
    let t1 = tenant_id("t1");
    block_on(deps.outbound.register(
        &t1,
        EndpointRequest {
            url: "https://hooks.example.com/a".into(),
            events: vec![],
            description: None,
        },
    ))
    .unwrap();
    let job = w.job(JobSetup::render("t1", "acct_a"));
    block_on(w.core().command(&t1, &job.id, Command::Cancel)).unwrap();
    let audit = w.store.audit_trail(&job.id).pop().unwrap();
    let mut record = fixture("client-webhooks-stream.json")["Records"][0].clone();
    record["dynamodb"]["Keys"]["pk"]["S"] = json!(format!("JOB#{}", job.id));
    record["dynamodb"]["NewImage"]["doc"]["S"] = json!(serde_json::to_string(&audit).unwrap());
    let answer = block_on(deps.handle(json!({ "Records": [record] }))).unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    let pending = queue.take_visible();
    assert_eq!(pending.len(), 1);
    let message = json!({"Records": [{
        "messageId": "m1", "body": serde_json::to_string(&pending[0]).unwrap(),
        "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}
    }]});
    let answer = block_on(deps.handle(message)).unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "job.state_changed");
    assert_eq!(body["data"]["state"], "cancelled");
}

/// An endpoint that takes its time: counts the attempts in flight at once.
#[derive(Clone, Default)]
struct Slow {
    now: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl reelay_domain::ports::WebhookSender for Slow {
    async fn post(
        &self,
        _url: &str,
        _headers: &reelay_domain::webhooks::SignedHeaders,
        _body: Vec<u8>,
    ) -> reelay_domain::ports::PostResult {
        use std::sync::atomic::Ordering;
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        // Simulated time (the runtime starts paused): no wall-clock wait.
        tokio::time::sleep(std::time::Duration::from_secs(8)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        reelay_domain::ports::PostResult::Answered(200)
    }
}

/// The attempts of one queue batch run at once: ten slow endpoints fit one invocation.
#[tokio::test(start_paused = true)]
async fn the_attempts_of_a_batch_run_at_once() {
    let w = World::new().tenant("t1").account("t1", "acct_a");
    let t1 = tenant_id("t1");
    let queue = MemDeliveries::new(w.clock.clone());
    let slow = Slow::default();
    let deps = Deps {
        outbound: Outbound {
            store: w.store.clone(),
            queue: queue.clone(),
            clock: w.clock.clone(),
            settings: OutboundSettings::default(),
        },
        sender: slow.clone(),
    };
    for n in 0..3 {
        deps.outbound
            .register(
                &t1,
                EndpointRequest {
                    url: format!("https://hooks{n}.example.com/"),
                    events: vec![],
                    description: None,
                },
            )
            .await
            .unwrap();
    }
    let job = w.job(JobSetup::render("t1", "acct_a"));
    w.core()
        .command(&t1, &job.id, Command::Cancel)
        .await
        .unwrap();
    let audit = w.store.audit_trail(&job.id).pop().unwrap();
    deps.outbound
        .dispatch_transition(&w.store, &job.id, None, &audit)
        .await
        .unwrap();
    let records: Vec<Value> = queue
        .take_visible()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({"messageId": format!("m{i}"), "body": serde_json::to_string(d).unwrap(),
                "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}})
        })
        .collect();
    assert_eq!(records.len(), 3);
    let started = tokio::time::Instant::now();
    let answer = deps.handle(json!({ "Records": records })).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    assert_eq!(slow.max.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(16),
        "{:?}",
        started.elapsed()
    );
}
