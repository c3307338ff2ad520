//! The publisher as Lambda runs it: real publish-queue messages through `handler`, the
//! function's own `wiring::live` against the local AWS endpoint and tiktok-sim over HTTP. What a
//! publish decides (gates, budgets, compliance, the attempt record) is the domain's
//! (reelay-testkit's suites); these prove the adapter: the batch answer, a `Wait` holding the
//! account's group, store failures, the invocation's deadline, and the real clients end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use publisher::{Deps, handler, wiring};
use reelay_aws::SystemClock;
use reelay_domain::job::PrivacyLevel;
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{Clock, JobStore, Ports, WorkQueue};
use reelay_domain::{AccountId, Job, JobId, JobState, PostMode, PostSettings, TenantId, UtcTime};
use reelay_local::{ClipOrigin, StackOptions, Testbed, rendered_job};
use tiktok_sim::{Endpoint, FaultKind, FaultSpec};

const WAIT: Duration = Duration::from_secs(2);
const SCOPES: [&str; 3] = ["user.info.basic", "video.publish", "video.upload"];

struct World {
    bed: Testbed,
    origin: ClipOrigin,
    tenant: TenantId,
}

async fn world() -> World {
    let mut options = StackOptions::for_tests();
    options.tiktok_sim.seed = 11;
    let bed = Testbed::start(&options)
        .await
        .expect("testbed: start the local endpoint (infra/scripts/aws-emulator.sh start)");
    World {
        bed,
        origin: ClipOrigin::start().await.unwrap(),
        tenant: TenantId::parse("tenant_a").unwrap(),
    }
}

fn far() -> UtcTime {
    SystemClock.now().plus(Duration::from_secs(280))
}

fn post(title: &str) -> PostSettings {
    PostSettings {
        privacy_level: Some(PrivacyLevel::SelfOnly),
        title: Some(title.to_owned()),
        ..reelay_testkit::sample::post(PostMode::Direct)
    }
}

impl World {
    async fn live(&self) -> Deps<wiring::LivePorts> {
        let config = self
            .bed
            .wiring("http://127.0.0.1:9", None)
            .publisher_config();
        wiring::live(&self.bed.sdk, &config).await.unwrap()
    }

    async fn connect(&self, account: &str, open_id: &str) -> AccountId {
        let bed = &self.bed;
        bed.connect_account(&self.tenant, account, open_id, &SCOPES)
            .await
            .unwrap()
    }

    /// A job of `account` whose clip (`title`, a few KB) rendered, due at `at`.
    async fn rendered<P: Ports>(
        &self,
        deps: &Deps<P>,
        account: &AccountId,
        title: &str,
        at: UtcTime,
    ) -> Job {
        let clip = self.origin.clip(title, vec![7; 64 * 1024]);
        rendered_job(&deps.core, &self.tenant, account, post(title), clip, at)
            .await
            .unwrap()
    }

    fn sim(&self) -> serde_json::Value {
        self.bed.tiktok.as_ref().unwrap().inspect()
    }

    fn publishes_for_title(&self, title: &str) -> u64 {
        self.sim()["publishes_by_title"][title]
            .as_u64()
            .unwrap_or(0)
    }

    fn inits(&self) -> u64 {
        let sim = self.sim();
        ["VideoInit", "InboxInit"]
            .iter()
            .map(|e| sim["requests"][e].as_u64().unwrap_or(0))
            .sum()
    }

    fn queue(&self) -> &str {
        &self.bed.resources.publish_queue_url
    }
}

async fn job<P: Ports>(deps: &Deps<P>, id: &JobId) -> Job {
    deps.core
        .ports
        .jobs()
        .get(id)
        .await
        .unwrap()
        .expect("job exists")
}

fn id_of(job_message: &aws_sdk_sqs::types::Message) -> String {
    job_message.message_id().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_post_is_sent_once_and_its_message_acknowledged() {
    let w = world().await;
    let deps = w.live().await;
    let account = w.connect("acct_happy", "open_happy").await;
    let queued = w
        .rendered(&deps, &account, "happy-1", SystemClock.now())
        .await;
    assert_eq!(queued.state, JobState::PublishQueued);

    let delivered = w
        .bed
        .deliver(w.queue(), WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 0));

    let sent = job(&deps, &queued.id).await;
    assert!(
        !matches!(
            sent.state,
            JobState::PublishQueued | JobState::PublishUnknown
        ),
        "{sent:?}"
    );
    let publish_id = sent.publish_id.expect("publish_id stored").to_string();
    let posts = w.sim()["accounts"]["open_happy"]["posts"].clone();
    assert_eq!(
        posts[0]["publish_id"],
        serde_json::json!(publish_id),
        "{posts}"
    );
    assert_eq!(w.publishes_for_title("happy-1"), 1);
    assert_eq!(w.sim()["limit_violations"], serde_json::json!([]));

    // A redelivered copy (a crash after the handler) finds the job past publish_queued.
    let again = WorkMessage::new(
        QueueKind::Publish,
        queued.id.clone(),
        queued.tenant_id.clone(),
        queued.account_id.clone(),
        queued.version,
    );
    w.bed.queue().send(&again, "redelivered").await.unwrap();
    let delivered = w
        .bed
        .deliver(w.queue(), WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 0));
    assert_eq!(w.inits(), 1, "never a second init");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_keeps_its_accounts_group_at_the_head_while_other_accounts_flow() {
    let w = world().await;
    let deps = w.live().await;
    let early = w.connect("acct_early", "open_early").await;
    let other = w.connect("acct_other", "open_other").await;
    let now = SystemClock.now();
    // Due in 20 s: its render completed within the enqueue-ahead, so it is enqueued early at
    // once; then a job of the same account due now (behind it in the group), and another
    // account's job due now.
    let ahead = w
        .rendered(&deps, &early, "early-1", now.plus(Duration::from_secs(20)))
        .await;
    assert_eq!(ahead.state, JobState::PublishQueued);
    let behind = w.rendered(&deps, &early, "early-2", now).await;
    let flows = w.rendered(&deps, &other, "other-1", now).await;

    let messages = w.bed.receive(w.queue(), 10, WAIT).await.unwrap();
    assert_eq!(messages.len(), 3, "one batch of three");
    let response = handler(&deps, w.bed.sqs_event(&messages), far()).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    // The waiting job and the one behind it in its group are reported; the other account's is not.
    assert_eq!(
        failed,
        vec![id_of(&messages[0]), id_of(&messages[1])],
        "{messages:?}"
    );
    assert_eq!(job(&deps, &ahead.id).await.state, JobState::PublishQueued);
    assert_eq!(job(&deps, &behind.id).await.state, JobState::PublishQueued);
    assert!(job(&deps, &flows.id).await.publish_id.is_some());
    assert_eq!(
        (
            w.publishes_for_title("early-1"),
            w.publishes_for_title("early-2")
        ),
        (0, 0)
    );

    // The waiting head stays in flight until its schedule: its group delivers nothing, even the
    // record released behind it.
    let sqs = w.bed.sqs();
    sqs.delete_message()
        .queue_url(w.queue())
        .receipt_handle(messages[2].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert!(w.bed.receive(w.queue(), 10, WAIT).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_due_in_a_second_is_waited_for_in_process_and_sent_at_its_time() {
    let w = world().await;
    let deps = w.live().await;
    let account = w.connect("acct_soon", "open_soon").await;
    let at = SystemClock.now().plus(Duration::from_millis(1500));
    let soon = w.rendered(&deps, &account, "soon-1", at).await;
    deps.core.reconcile_job(soon.clone()).await.unwrap();

    // The wait ends at the schedule (never jittered), short enough to spend in this invocation.
    let delivered = w
        .bed
        .deliver(w.queue(), WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 0));
    let sent = job(&deps, &soon.id).await;
    assert!(sent.publish_id.is_some(), "{sent:?}");
    let trail = reelay_local::progress::audit_trail(&deps.core.ports.store, &soon.id)
        .await
        .unwrap();
    let started = trail
        .iter()
        .find(|e| e.event == "publish_started")
        .expect("an attempt");
    assert!(
        started.at >= at,
        "started at {} before its schedule {at}",
        started.at
    );
    assert_eq!(w.publishes_for_title("soon-1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_brings_the_message_back_after_the_store_retry() {
    let w = world().await;
    let good = w.live().await;
    let account = w.connect("acct_store", "open_store").await;
    let queued = w
        .rendered(&good, &account, "store-1", SystemClock.now())
        .await;
    let mut config = w.bed.wiring("http://127.0.0.1:9", None).publisher_config();
    config.table_name = format!("{}-missing", config.table_name);
    config.settings.store_retry = Duration::from_secs(2);
    let deps = wiring::live(&w.bed.sdk, &config).await.unwrap();

    let delivered = w
        .bed
        .deliver(w.queue(), WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 1));
    // Back after the store retry (2 s, jittered), not the queue's 30 s visibility timeout.
    let back = w
        .bed
        .receive(w.queue(), 10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(job(&good, &queued.id).await.state, JobState::PublishQueued);
    assert_eq!(w.inits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_time_for_an_init_nothing_is_sent_and_the_message_comes_back() {
    let w = world().await;
    let deps = w.live().await;
    let account = w.connect("acct_late", "open_late").await;
    let queued = w
        .rendered(&deps, &account, "late-1", SystemClock.now())
        .await;
    let window = deps.core.settings.publish.init_window;

    // Past the batch's margin: the record is not even started, and released at once.
    let now = SystemClock.now();
    let delivered = w
        .bed
        .deliver(w.queue(), WAIT, |e| handler(&deps, e, now))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 1));

    // Started (more than the batch's margin left), but with less than the init window: the
    // use case commits no attempt and the message comes back at once, not after the timeout.
    let margin = reelay_aws::DEFAULT_DEADLINE_MARGIN;
    assert!(
        window > margin * 2,
        "the test needs an init window longer than the margin"
    );
    let short = SystemClock.now().plus(margin * 2);
    let delivered = w
        .bed
        .deliver(w.queue(), WAIT, |e| handler(&deps, e, short))
        .await
        .unwrap();
    assert_eq!(
        (delivered.messages.len(), delivered.failed().len()),
        (1, 1),
        "released at once"
    );
    let back = w
        .bed
        .receive(w.queue(), 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        back.len(),
        1,
        "back after a second, not the visibility timeout"
    );
    let after = job(&deps, &queued.id).await;
    assert_eq!(
        (after.state, after.version),
        (JobState::PublishQueued, queued.version)
    );
    assert_eq!(w.inits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_whose_answer_is_lost_goes_unknown_and_is_never_sent_again() {
    let w = world().await;
    let deps = w.live().await;
    let account = w.connect("acct_unknown", "open_unknown").await;
    let queued = w
        .rendered(&deps, &account, "unknown-1", SystemClock.now())
        .await;
    w.bed.tiktok.as_ref().unwrap().inject(FaultSpec {
        endpoint: Endpoint::VideoInit,
        kind: FaultKind::DropAfterAccept,
        count: 1,
    });

    let delivered = w
        .bed
        .deliver(w.queue(), WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 0));
    let unknown = job(&deps, &queued.id).await;
    assert_eq!(
        (unknown.state, unknown.publish_id.clone()),
        (JobState::PublishUnknown, None)
    );
    assert_eq!(
        w.publishes_for_title("unknown-1"),
        1,
        "TikTok did accept it"
    );

    // A re-sent message finds the job unknown and sends nothing.
    let again = WorkMessage::new(
        QueueKind::Publish,
        queued.id.clone(),
        queued.tenant_id.clone(),
        queued.account_id.clone(),
        unknown.version,
    );
    w.bed.queue().send(&again, "again").await.unwrap();
    let delivered = w
        .bed
        .deliver(w.queue(), WAIT, |e| handler(&deps, e, far()))
        .await
        .unwrap();
    assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 0));
    assert_eq!(w.inits(), 1);
    assert_eq!(job(&deps, &queued.id).await.state, JobState::PublishUnknown);
}
