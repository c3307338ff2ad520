//! The render submitter as Lambda runs it: real render-queue messages through `handler`, the
//! function's own `wiring::live` against the local AWS endpoint (template.yaml's resources) and
//! ssemble-sim over HTTP. What a submission decides is the domain's (reelay-testkit's suites);
//! these prove the adapter: decoding, the batch answer, store failures and the deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reelay_aws::SystemClock;
use reelay_domain::job::{MediaSource, RenderRequest};
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{Clock, JobStore, Ports, WorkQueue};
use reelay_domain::usecase::Core;
use reelay_domain::{AccountId, Job, JobId, JobSource, JobState, PostMode, RequestId, TenantId};
use reelay_local::{ShiftedClock, StackOptions, Testbed, with_clock};
use render_submitter::{handler, wiring};
use ssemble_sim::{ApiEndpoint, FaultKind, FaultSpec};

/// Ssemble is told to call back here; nothing listens (these tests never need the webhook).
const NO_WEBHOOKS: &str = "http://127.0.0.1:9";
const WAIT: Duration = Duration::from_secs(2);

async fn testbed() -> Testbed {
    let mut options = StackOptions::for_tests();
    options.ssemble_sim.seed = 7;
    Testbed::start(&options)
        .await
        .expect("testbed: start the local endpoint (infra/scripts/aws-emulator.sh start)")
}

/// An invocation with plenty of time left, on `clock` (the one the batch processor reads).
fn far_on(clock: &impl Clock) -> reelay_domain::UtcTime {
    clock.now().plus(Duration::from_secs(30))
}

fn far() -> reelay_domain::UtcTime {
    far_on(&SystemClock)
}

/// A unique source per job, so the simulator's creates-per-source counts one job.
fn source(tag: &str) -> String {
    format!(
        "https://cdn.example.com/{tag}/{}.mp4",
        uuid::Uuid::new_v4().simple()
    )
}

/// Stores a received job and enqueues its render message, as the client API does.
async fn received<P: Ports>(core: &Core<P>, account: &str, source: &str) -> Job {
    let now = core.ports.clock().now();
    let created = Job::create(
        JobId::generate(now, uuid::Uuid::new_v4().as_u128()),
        TenantId::parse("tenant_a").unwrap(),
        AccountId::parse(account).unwrap(),
        JobSource::Render(RenderRequest {
            media: MediaSource::FileUrl(source.to_owned()),
            start: 0.0,
            end: 600.0,
            options: Default::default(),
        }),
        reelay_testkit::sample::post(PostMode::Direct),
        now,
        None,
        now,
        &core.settings.policy,
    );
    core.ports.jobs().create(&created, None).await.unwrap();
    core.send_effects(&created.job, &created.effects).await;
    created.job
}

async fn job<P: Ports>(core: &Core<P>, id: &JobId) -> Job {
    core.ports
        .jobs()
        .get(id)
        .await
        .unwrap()
        .expect("job exists")
}

fn creates_for(bed: &Testbed, source: &str) -> u32 {
    let sim = bed.ssemble.as_ref().unwrap().inspect();
    sim.creates_per_source.get(source).copied().unwrap_or(0)
}

fn sim_request_for(bed: &Testbed, source: &str) -> Option<RequestId> {
    let sim = bed.ssemble.as_ref().unwrap().inspect();
    let found = sim.requests.iter().find(|r| r.source == source);
    found.map(|r| RequestId::parse(r.request_id.clone()).unwrap())
}

/// Another render message for the job, as the reconciler sends one at its next check.
async fn resend(bed: &Testbed, job: &Job, nonce: &str) {
    let message = WorkMessage::new(
        QueueKind::Render,
        job.id.clone(),
        job.tenant_id.clone(),
        job.account_id.clone(),
        job.version,
    );
    bed.queue().send(&message, nonce).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_job_is_created_once_and_a_stale_copy_changes_nothing() {
    let bed = testbed().await;
    let config = bed.wiring(NO_WEBHOOKS, None).render_submitter_config();
    let deps = wiring::live(&bed.sdk, &config).await.unwrap();
    let src = source("happy");
    let created = received(&deps.core, "acct_1", &src).await;

    let queue = &bed.resources.render_queue_url;
    let delivered = bed
        .deliver(queue, WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!(delivered.messages.len(), 1);
    assert!(delivered.failed().is_empty(), "{:?}", delivered.response);

    let rendering = job(&deps.core, &created.id).await;
    assert_eq!(rendering.state, JobState::Rendering);
    assert_eq!(rendering.request_id, sim_request_for(&bed, &src));
    assert!(rendering.request_id.is_some(), "requestId persisted");
    assert_eq!(rendering.webhook_token_hashes.len(), 1);
    assert_eq!(creates_for(&bed, &src), 1);
    // The budget was taken before the call: Ssemble's limiter never had to refuse.
    let sim = bed.ssemble.as_ref().unwrap().inspect();
    assert!(
        sim.limit_violations.is_empty(),
        "{:?}",
        sim.limit_violations
    );

    // A stale copy (the job is past received) is acknowledged and changes nothing.
    resend(&bed, &rendering, "stale-copy").await;
    let delivered = bed
        .deliver(queue, WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 0));
    assert_eq!(
        job(&deps.core, &created.id).await.version,
        rendering.version
    );
    assert_eq!(creates_for(&bed, &src), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_create_is_looked_up_at_the_next_check_and_never_created_twice() {
    let bed = testbed().await;
    let config = bed.wiring(NO_WEBHOOKS, None).render_submitter_config();
    let lease = config.settings.policy.render_submit_lease;
    let clock = ShiftedClock::default();
    let deps = wiring::live(&bed.sdk, &config)
        .await
        .unwrap()
        .map_ports(|p| with_clock(p, clock.clone()));
    let sim = bed.ssemble.as_ref().unwrap();
    sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Create),
        kind: FaultKind::DropAfterAccept,
        count: 1,
        status: None,
    });
    let src = source("unknown");
    let created = received(&deps.core, "acct_1", &src).await;
    let queue = &bed.resources.render_queue_url;

    let delivered = bed
        .deliver(queue, WAIT, |e| handler(&deps, e, far_on(&clock)))
        .await
        .unwrap();
    assert!(
        delivered.failed().is_empty(),
        "an unknown outcome is the job's, not the queue's"
    );
    let first = job(&deps.core, &created.id).await;
    assert_eq!(
        (first.state, first.request_id.clone()),
        (JobState::Received, None)
    );
    assert_eq!(creates_for(&bed, &src), 1, "the create did land at Ssemble");

    // A delivery inside the attempt's lease starts nothing.
    resend(&bed, &first, "inside-lease").await;
    bed.deliver(queue, WAIT, |e| handler(&deps, e, far_on(&clock)))
        .await
        .unwrap();
    assert_eq!(job(&deps.core, &created.id).await.version, first.version);

    // The job's next check, past the lease: the submitter looks first and finds the request.
    clock.advance(lease + Duration::from_secs(1));
    resend(&bed, &first, "next-check").await;
    let delivered = bed
        .deliver(queue, WAIT, |e| handler(&deps, e, far_on(&clock)))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 0));
    let found = job(&deps.core, &created.id).await;
    assert_eq!(found.state, JobState::Rendering);
    assert_eq!(found.request_id, sim_request_for(&bed, &src));
    assert_eq!(creates_for(&bed, &src), 1, "exactly one create for the job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_and_misrouted_messages_are_failed_for_the_dlq() {
    let bed = testbed().await;
    let config = bed.wiring(NO_WEBHOOKS, None).render_submitter_config();
    let deps = wiring::live(&bed.sdk, &config).await.unwrap();
    let queue = &bed.resources.render_queue_url;
    bed.sqs()
        .send_message()
        .queue_url(queue)
        .message_body("{not json")
        .message_group_id("tenant_a:acct_poison")
        .message_deduplication_id("poison")
        .send()
        .await
        .unwrap();
    let delivered = bed
        .deliver(queue, WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!(delivered.messages.len(), 1);
    assert_eq!(
        delivered.failed().len(),
        1,
        "poison is reported, never dropped"
    );

    // A publish message on the render queue is not this function's: failed, not acknowledged.
    let misrouted = WorkMessage::new(
        QueueKind::Publish,
        JobId::generate(SystemClock.now(), 7),
        TenantId::parse("tenant_a").unwrap(),
        AccountId::parse("acct_misrouted").unwrap(),
        1,
    );
    bed.sqs()
        .send_message()
        .queue_url(queue)
        .message_body(serde_json::to_string(&misrouted).unwrap())
        .message_group_id(misrouted.group_id())
        .message_deduplication_id("misrouted")
        .send()
        .await
        .unwrap();
    let delivered = bed
        .deliver(queue, WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_brings_the_message_back_after_the_store_retry() {
    let bed = testbed().await;
    let mut config = bed.wiring(NO_WEBHOOKS, None).render_submitter_config();
    let good = wiring::live(&bed.sdk, &config).await.unwrap();
    let created = received(&good.core, "acct_1", &source("store")).await;
    // The table is gone (as far as this function can tell): every read fails.
    config.table_name = format!("{}-missing", config.table_name);
    config.settings.store_retry = Duration::from_secs(2);
    let deps = wiring::live(&bed.sdk, &config).await.unwrap();
    let queue = &bed.resources.render_queue_url;

    let delivered = bed
        .deliver(queue, WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 1));
    // Not the queue's 30 s visibility timeout: the retry-after (2 s, jittered, whole seconds).
    let back = bed
        .receive(queue, 10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(back.len(), 1, "the message came back after the store retry");
    let attrs = back[0].attributes().unwrap();
    let count = &attrs[&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount];
    assert_eq!(count, "2");
    assert_eq!(job(&good.core, &created.id).await.state, JobState::Received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_past_the_deadline_come_back_at_once_unstarted() {
    let bed = testbed().await;
    let config = bed.wiring(NO_WEBHOOKS, None).render_submitter_config();
    let deps = wiring::live(&bed.sdk, &config).await.unwrap();
    let (a, b) = (source("late-a"), source("late-b"));
    let first = received(&deps.core, "acct_1", &a).await;
    let second = received(&deps.core, "acct_2", &b).await;
    let queue = &bed.resources.render_queue_url;

    // The invocation is about to end: nothing may start.
    let now = SystemClock.now();
    let delivered = bed
        .deliver(queue, WAIT, |e| handler(&deps, e, now))
        .await
        .unwrap();
    assert_eq!(delivered.messages.len(), 2);
    assert_eq!(delivered.failed().len(), 2);
    assert_eq!(creates_for(&bed, &a) + creates_for(&bed, &b), 0);
    for created in [&first, &second] {
        assert_eq!(job(&deps.core, &created.id).await.version, created.version);
    }
    // Released, not left to the visibility timeout: both are back at once.
    let back = bed.receive(queue, 10, WAIT).await.unwrap();
    assert_eq!(back.len(), 2);
}
