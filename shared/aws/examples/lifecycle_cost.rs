//! Prints what one job's happy path costs in DynamoDB requests and capacity units and in SQS
//! requests, measured against the endpoint in the environment (MiniStack, or DynamoDB Local via
//! `AWS_ENDPOINT_URL_DYNAMODB`).
//!
//! The job goes create → received (render submit recorded) → rendering → ready → publish_queued →
//! publishing → publish_processing → uploaded → submitted → publish_complete → publicly_available,
//! each step as a function does it: a consistent GetItem, `Job::apply`, `JobStore::save` (or
//! `JobStore::reschedule` when only the next check moves), and a queue send for every enqueue
//! effect (received and consumed as Lambda's event source would). One status poll in `submitted`
//! learns nothing new: that step is a reschedule (no version, no audit event).
//!
//! `eval "$(infra/scripts/aws-emulator.sh env)" && cargo run -p reelay-aws --example lifecycle_cost`
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use reelay_aws::{DynamoStore, MeterSnapshot, SqsWorkQueue};
use reelay_domain::lifecycle::{Effect, Event, Policy, PublishStatus, Via};
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{
    IdempotencyBegin, IdempotencyScope, JobStore, StoredResponse, WorkQueue,
};
use reelay_domain::{IdempotencyKey, Job, PayloadHash, Step};
use reelay_template::ResourceKinds;

struct Sqs {
    client: aws_sdk_sqs::Client,
    queue: SqsWorkQueue,
    render_url: String,
    publish_url: String,
    /// ReceiveMessage + DeleteMessage made on behalf of Lambda's event source mapping.
    consumer_requests: u64,
}

impl Sqs {
    /// What `Core::send_effects` does: one send per enqueue effect, deduplicated per enqueue.
    async fn run_effects(&mut self, job: &Job, effects: &[Effect]) {
        for effect in effects {
            let kind = match effect {
                Effect::EnqueueRender => QueueKind::Render,
                Effect::EnqueuePublish => QueueKind::Publish,
                _ => continue,
            };
            let msg = WorkMessage::new(
                kind,
                job.id.clone(),
                job.tenant_id.clone(),
                job.account_id.clone(),
                job.version,
            );
            let nonce = job.next_check.map_or(0, |c| c.at.as_millis());
            self.queue.send(&msg, &msg.dedup_id(nonce)).await.unwrap();
            // What the event source mapping does: one receive, one delete per message.
            let url = if kind == QueueKind::Render {
                &self.render_url
            } else {
                &self.publish_url
            };
            let got = self
                .client
                .receive_message()
                .queue_url(url)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let m = got.messages().first().expect("the message just sent");
            self.client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            self.consumer_requests += 2;
        }
    }
}

fn delta(before: &MeterSnapshot, after: &MeterSnapshot) -> (u64, f64) {
    (
        after.requests() - before.requests(),
        after.capacity_units() - before.capacity_units(),
    )
}

#[tokio::main]
async fn main() {
    let sdk = common::sdk().await;
    let table = common::table(&sdk).await;
    let stack = common::provision(&sdk, ResourceKinds::QUEUES, Some(30)).await;
    // INDEXES: the same totals, plus the base table's and the GSIs' shares.
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table).with_index_capacity();
    let sqs_client = aws_sdk_sqs::Client::new(&sdk);
    let render_url = stack.queue("RenderQueue").unwrap().url.clone();
    let publish_url = stack.queue("PublishQueue").unwrap().url.clone();
    let mut sqs = Sqs {
        client: sqs_client.clone(),
        queue: SqsWorkQueue::new(
            sqs_client,
            Some(render_url.clone()),
            Some(publish_url.clone()),
        ),
        render_url,
        publish_url,
        consumer_requests: 0,
    };
    let policy = Policy::default();
    let start = common::now();
    let meter = store.meter().clone();

    println!(
        "endpoint: dynamodb={} other={}",
        endpoint("AWS_ENDPOINT_URL_DYNAMODB"),
        endpoint("AWS_ENDPOINT_URL")
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>8}  ops",
        "step", "ddb_reqs", "ddb_cu", "table_cu", "gsi_cu", "job_B"
    );

    // Ingest: claim the key, create the job with its first audit event, complete the key.
    let before = meter.snapshot();
    let tenant = common::tenant("tenant_a");
    let scope = IdempotencyScope {
        tenant_id: tenant.clone(),
        key: IdempotencyKey::parse("2f182b63-312f-4290-9222-7cf6f7f8f12d").unwrap(),
    };
    let hash = PayloadHash::of(&serde_json::json!({"url": "https://example.com/v.mp4"}));
    let begun = store
        .begin_idempotent(&scope, &hash, start, start.plus(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(begun, IdempotencyBegin::Started);
    let created = common::new_job(
        &tenant,
        &common::account("acct_1"),
        start,
        Some(scope.key.as_str()),
    );
    let response = StoredResponse {
        status: 202,
        body: serde_json::json!({"jobId": created.job.id, "state": created.job.state}).to_string(),
    };
    let expires = start.plus(Duration::from_secs(86_400));
    store
        .create(&created, Some((&scope, &hash, &response, expires)))
        .await
        .unwrap();
    sqs.run_effects(&created.job, &created.effects).await;
    let after = meter.snapshot();
    print_step(
        "create (+idempotency)",
        &before,
        &after,
        doc_size(&created.job),
    );

    let mut totals = delta(&before, &after);
    let (mut saves, mut reschedules) = (0, 0);
    let mut events = common::lifecycle::events();
    // In `submitted`, a poll that learns nothing new (still processing): only the next check moves.
    let submitted_at = events
        .iter()
        .position(|e| matches!(e, Event::StatusObserved { via: Via::Poll, .. }))
        .expect("the happy path polls once");
    events.insert(
        submitted_at + 1,
        Event::StatusObserved {
            publish_id: common::lifecycle::publish_id(),
            status: PublishStatus::Processing,
            post_ids: vec![],
            via: Via::Poll,
            upstream_log_id: None,
        },
    );
    for (i, event) in events.into_iter().enumerate() {
        let now = start.plus(Duration::from_secs(10 * (i as u64 + 1)));
        let before = meter.snapshot();
        let job = store.get(&created.job.id).await.unwrap().unwrap();
        let (name, stored) = match job.apply(&event, now, &policy).unwrap() {
            Step::Applied(applied) => {
                store.save(&applied, job.version).await.unwrap();
                saves += 1;
                sqs.run_effects(&applied.job, &applied.effects).await;
                (applied.job.state.as_str().to_owned(), applied.job)
            }
            Step::Rescheduled(next) => {
                store.reschedule(&next.job).await.unwrap();
                reschedules += 1;
                sqs.run_effects(&next.job, &next.effects).await;
                (
                    format!("{} (reschedule)", next.job.state.as_str()),
                    next.job,
                )
            }
            Step::Absorbed => panic!("{} absorbed", event.name()),
        };
        let after = meter.snapshot();
        print_step(&name, &before, &after, doc_size(&stored));
        let (r, c) = delta(&before, &after);
        totals = (totals.0 + r, totals.1 + c);
    }

    let trail_before = meter.snapshot();
    let trail = store.audit_page(&created.job.id, None, 100).await.unwrap();
    let trail_after = meter.snapshot();
    print_step("audit_page (read)", &trail_before, &trail_after, 0);

    let snap = meter.snapshot();
    let reported: u64 = snap.ops.values().map(|o| o.reported).sum();
    println!();
    println!(
        "lifecycle: {} transitions saved + create, {} reschedule(s); audit events stored: {}",
        saves,
        reschedules,
        trail.events.len()
    );
    println!(
        "DynamoDB: {} requests, {:.1} capacity units reported (ReturnConsumedCapacity=INDEXES; {} of {} responses carried a figure)",
        totals.0,
        totals.1,
        reported,
        snap.requests()
    );
    for (op, s) in &snap.ops {
        println!(
            "  {op:<20} requests={:<3} cu={:<6.1} table={:<6.1} gsi={:.1}",
            s.requests, s.capacity_units, s.table_units, s.index_units
        );
    }
    let sends = sqs.queue.requests();
    println!(
        "SQS: {} SendMessage + {} Receive/Delete by the event source = {} requests",
        sends,
        sqs.consumer_requests,
        sends + sqs.consumer_requests
    );
}

fn endpoint(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| "-".into())
}

fn doc_size(job: &reelay_domain::Job) -> usize {
    serde_json::to_string(job).map(|s| s.len()).unwrap_or(0)
}

fn print_step(name: &str, before: &MeterSnapshot, after: &MeterSnapshot, job_bytes: usize) {
    let (reqs, cu) = delta(before, after);
    let sum = |s: &MeterSnapshot, f: fn(&reelay_aws::dynamo::OpStats) -> f64| {
        s.ops.values().map(f).sum::<f64>()
    };
    let table = sum(after, |o| o.table_units) - sum(before, |o| o.table_units);
    let gsi = sum(after, |o| o.index_units) - sum(before, |o| o.index_units);
    let ops: Vec<String> = after
        .ops
        .iter()
        .filter_map(|(op, s)| {
            let prev = before.ops.get(op).map(|p| p.requests).unwrap_or(0);
            (s.requests > prev).then(|| format!("{op}x{}", s.requests - prev))
        })
        .collect();
    println!(
        "{name:<22} {reqs:>9} {cu:>9.1} {table:>9.1} {gsi:>9.1} {job_bytes:>8}  {}",
        ops.join(",")
    );
}
