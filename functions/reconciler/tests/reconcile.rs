//! The reconciler as its schedule runs it: `handler` under the invocation's deadline, built by
//! the function's own `wiring::live` against the local AWS endpoint and both simulators. What a
//! due job becomes is the domain's (reelay-testkit's suites); these prove the adapter: the
//! deadline handed through, the report, and the real clients end to end. Time that must pass
//! (a poll interval, a lease) is moved on a shifted clock, not slept through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reconciler::{Deps, handler, wiring};
use reelay_aws::SystemClock;
use reelay_domain::job::{MediaSource, RenderRequest};
use reelay_domain::lifecycle::Event;
use reelay_domain::ports::{Clock, Entropy, JobStore, Ports};
use reelay_domain::usecase::Advance;
use reelay_domain::{AccountId, Job, JobId, JobState, PostMode, TenantId, UtcTime};
use reelay_local::{ShiftedClock, StackOptions, Testbed, received_job, rendered_job, with_clock};

type Shifted = reelay_domain::ports::Adapters<
    reelay_aws::DynamoStore,
    reelay_aws::SqsWorkQueue,
    ShiftedClock,
    reelay_aws::DynamoTokenVault,
    reelay_ssemble::SsembleClient,
    reelay_tiktok::TikTokPort,
>;

struct World {
    bed: Testbed,
    clock: ShiftedClock,
    deps: Deps<Shifted>,
    tenant: TenantId,
}

async fn world() -> World {
    let mut options = StackOptions::for_tests();
    // Renders settle in a few real seconds.
    options.ssemble_sim.time_scale = 60.0;
    let bed = Testbed::start(&options)
        .await
        .expect("testbed: start the local endpoint (infra/scripts/aws-emulator.sh start)");
    let config = bed.wiring("http://127.0.0.1:9", None).reconciler_config();
    let clock = ShiftedClock::default();
    let deps = wiring::live(&bed.sdk, &config)
        .await
        .unwrap()
        .map_ports(|p| with_clock(p, clock.clone()));
    World {
        bed,
        clock,
        deps,
        tenant: TenantId::parse("tenant_a").unwrap(),
    }
}

impl World {
    /// A run with the function's full minute ahead, on the run's own clock.
    fn minute(&self) -> UtcTime {
        self.clock.now().plus(Duration::from_secs(60))
    }

    async fn job(&self, id: &JobId) -> Job {
        let jobs = self.deps.core.ports.jobs();
        jobs.get(id).await.unwrap().expect("job exists")
    }

    fn account(&self, name: &str) -> AccountId {
        AccountId::parse(name).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_whose_webhook_never_came_is_completed_by_the_poll() {
    let w = world().await;
    // The real submitter sends the render; Ssemble's webhook goes nowhere.
    let config = w
        .bed
        .wiring("http://127.0.0.1:9", None)
        .render_submitter_config();
    let submitter = render_submitter::wiring::live(&w.bed.sdk, &config)
        .await
        .unwrap();
    let request = RenderRequest {
        media: MediaSource::FileUrl(format!(
            "https://cdn.example.com/poll/{:032x}.mp4",
            SystemClock.random_u128()
        )),
        start: 0.0,
        end: 600.0,
        options: Default::default(),
    };
    let post = reelay_testkit::sample::post(PostMode::Direct);
    let job = received_job(
        &submitter.core,
        &w.tenant,
        &w.account("acct_poll"),
        request,
        post,
    )
    .await
    .unwrap();
    let far = SystemClock.now().plus(Duration::from_secs(25));
    let queue = &w.bed.resources.render_queue_url;
    w.bed
        .deliver(queue, Duration::from_secs(2), |e| {
            render_submitter::handler(&submitter, e, far)
        })
        .await
        .unwrap();
    let rendering = w.job(&job.id).await;
    assert_eq!(rendering.state, JobState::Rendering);

    // Poll until Ssemble has finished (each run moves the clock to the job's next check).
    let mut report = Default::default();
    for _ in 0..30 {
        let next = w
            .job(&job.id)
            .await
            .next_check
            .expect("a rendering job has a check")
            .at;
        let ahead = next.since(w.clock.now());
        w.clock.advance(ahead + Duration::from_millis(1));
        report = handler(&w.deps, w.minute()).await;
        if w.job(&job.id).await.state != JobState::Rendering {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let done = w.job(&job.id).await;
    assert_eq!(done.state, JobState::PublishQueued, "{report:?}");
    assert!(done.clip.is_some());
    assert_eq!(report.moved, 1, "{report:?}");
    let messages = w
        .bed
        .receive(
            &w.bed.resources.publish_queue_url,
            10,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(messages.len(), 1, "the publish was enqueued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_publishers_attempt_becomes_unknown_and_is_counted() {
    let w = world().await;
    let account = w.account("acct_dead");
    let clip = reelay_testkit::sample::clip("dead", 9.0);
    let post = reelay_testkit::sample::post(PostMode::Direct);
    let queued = rendered_job(&w.deps.core, &w.tenant, &account, post, clip, w.clock.now())
        .await
        .unwrap();
    // A publisher recorded its attempt, then died before TikTok's answer was stored.
    let started = w
        .deps
        .core
        .advance_loaded(queued, &Event::PublishStarted)
        .await
        .unwrap();
    assert!(matches!(started, Advance::Moved(_)), "{started:?}");

    // Inside the lease: nothing to do yet.
    let report = handler(&w.deps, w.minute()).await;
    assert_eq!(report.became_unknown, 0, "{report:?}");

    let lease = w.deps.core.settings.policy.publish_lease;
    w.clock.advance(lease + Duration::from_secs(1));
    let report = handler(&w.deps, w.minute()).await;
    assert_eq!((report.moved, report.became_unknown), (1, 1), "{report:?}");
    let id = match started {
        Advance::Moved(a) => a.job.id,
        _ => unreachable!(),
    };
    assert_eq!(w.job(&id).await.state, JobState::PublishUnknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_time_left_starts_nothing() {
    let w = world().await;
    let scopes = ["user.info.basic", "video.publish", "video.upload"];
    let account = w
        .bed
        .connect_account(&w.tenant, "acct_late", "open_late", &scopes)
        .await
        .unwrap();
    let clip = reelay_testkit::sample::clip("late", 9.0);
    let post = reelay_testkit::sample::post(PostMode::Direct);
    let at = w.clock.now().plus(Duration::from_secs(3600));
    let ready = rendered_job(&w.deps.core, &w.tenant, &account, post, clip, at)
        .await
        .unwrap();
    assert_eq!(ready.state, JobState::Ready);
    w.clock.advance(Duration::from_secs(3601));

    // Less than the safety margin before the invocation's end.
    let margin = w.deps.core.settings.reconcile.safety_margin;
    let report = handler(&w.deps, w.clock.now().plus(margin / 2)).await;
    assert!(report.out_of_time, "{report:?}");
    assert_eq!((report.due, report.moved), (0, 0), "{report:?}");
    let after = w.job(&ready.id).await;
    assert_eq!(
        (after.state, after.version),
        (JobState::Ready, ready.version)
    );

    // With its minute, the same run moves it.
    let report = handler(&w.deps, w.minute()).await;
    assert_eq!(report.moved, 1, "{report:?}");
    assert_eq!(w.job(&ready.id).await.state, JobState::PublishQueued);
}
