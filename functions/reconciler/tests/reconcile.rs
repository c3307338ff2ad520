//! The reconciler on MiniStack with both simulators: what is due moves, what is not waits, and a
//! job that cannot move now is pushed back instead of being read again at every tick.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reconciler::wiring::{Config, LiveDeps, live_deps};
use reelay_aws::SystemClock;
use reelay_domain::job::{
    ClipChoice, MediaSource, PostMode, PostSettings, PrivacyLevel, RenderRequest,
};
use reelay_domain::ports::{Clock, JobStore};
use reelay_domain::{
    AccountId, Applied, CheckKind, Event, Job, JobId, JobSource, JobState, Policy, Step, TenantId,
    UtcTime,
};
use reelay_ssemble::{SsembleClient, SsembleConfig};
use reelay_template::{ProvisionOptions, Template};
use secrecy::SecretString;
use serde_json::json;

const SSEMBLE_KEY: &str = "sk_ssemble_0123456789abcdef0123456789abcdef";

struct World {
    deps: LiveDeps,
    sqs: aws_sdk_sqs::Client,
    render_queue: String,
    publish_queue: String,
    ssemble: ssemble_sim::SimHandle,
    _tiktok: tiktok_sim::SimHandle,
}

async fn world(policy: Policy) -> World {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "AWS_ENDPOINT_URL is not set: run via `make test`, or start infra/scripts/aws-emulator.sh first"
    );
    let sdk = reelay_aws::load_sdk_config().await;
    let ssemble = ssemble_sim::SsembleSim::start(ssemble_sim::SimConfig::default())
        .await
        .unwrap();
    let tiktok = tiktok_sim::TikTokSim::start(tiktok_sim::SimConfig::default())
        .await
        .unwrap();
    let template =
        Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
    let mut options = ProvisionOptions::new("test")
        .with_suffix(uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    options.secret_values.insert(
        "SsembleSecret".into(),
        json!({ "apiKey": SSEMBLE_KEY }).to_string(),
    );
    options.secret_values.insert(
        "TikTokAppSecret".into(),
        json!({"clientKey": "sim_client_key", "clientSecret": "sim_client_secret"}).to_string(),
    );
    let stack = reelay_template::provision(&sdk, &template, &options)
        .await
        .unwrap();
    let env = |k: &str| stack.env_var(k).unwrap_or_else(|| panic!("{k}")).to_owned();
    let config = Config {
        table_name: env("TABLE_NAME"),
        render_queue_url: env("RENDER_QUEUE_URL"),
        publish_queue_url: env("PUBLISH_QUEUE_URL"),
        ssemble_secret_id: env("SSEMBLE_SECRET_ID"),
        ssemble_api_base_url: ssemble.base_url.clone(),
        tiktok_app_secret_id: env("TIKTOK_APP_SECRET_ID"),
        tiktok_token_secret_prefix: env("TIKTOK_TOKEN_SECRET_PREFIX"),
        tiktok_api_base_url: tiktok.base_url.clone(),
        policy,
        limits: Default::default(),
    };
    World {
        deps: live_deps(&sdk, &config).await.unwrap(),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        render_queue: env("RENDER_QUEUE_URL"),
        publish_queue: env("PUBLISH_QUEUE_URL"),
        ssemble,
        _tiktok: tiktok,
    }
}

fn post() -> PostSettings {
    PostSettings {
        mode: PostMode::Direct,
        privacy_level: Some(PrivacyLevel::SelfOnly),
        title: Some("clip".into()),
        disable_comment: false,
        disable_duet: false,
        disable_stitch: false,
        brand_content_toggle: false,
        brand_organic_toggle: false,
        is_aigc: false,
        video_cover_timestamp_ms: None,
        clip: ClipChoice::TopViralScore,
    }
}

impl World {
    async fn create(&self, source: JobSource, schedule_at: UtcTime) -> Job {
        self.create_for("acct_1", source, schedule_at).await
    }

    async fn create_for(&self, account: &str, source: JobSource, schedule_at: UtcTime) -> Job {
        let now = SystemClock.now();
        let created = Job::create(
            JobId::generate(now, rand::random()),
            TenantId::parse("tenant_a").unwrap(),
            AccountId::parse(account).unwrap(),
            source,
            post(),
            schedule_at,
            None,
            now,
            &self.deps.policy,
        );
        self.deps.jobs.create(&created, None).await.unwrap();
        created.job
    }

    /// Moves a job by hand, as the other functions would.
    async fn step(&self, job: Job, event: Event) -> Job {
        let Step::Applied(applied) = job
            .apply(&event, SystemClock.now(), &self.deps.policy)
            .unwrap()
        else {
            panic!("{} absorbed", event.name())
        };
        let applied: Box<Applied> = applied;
        self.deps.jobs.save(&applied, job.version).await.unwrap();
        applied.job
    }

    /// A rendered job of `account` waiting in `ready` for its schedule.
    async fn ready_job(&self, account: &str, schedule_at: UtcTime) -> Job {
        let job = self.create_for(account, render_source(), schedule_at).await;
        let job = self
            .step(
                job,
                Event::RenderSubmitStarted {
                    webhook_token_hash: "ab".repeat(32),
                },
            )
            .await;
        let job = self
            .step(
                job,
                Event::RenderSubmitted {
                    request_id: reelay_domain::RequestId::parse("665a1b2c3d4e5f6a7b8c9d0f")
                        .unwrap(),
                },
            )
            .await;
        let clip = reelay_domain::Clip {
            short_id: "s1".into(),
            video_url: "https://cdn/x.mp4".into(),
            duration_secs: Some(30.0),
            viral_score: None,
        };
        let job = self.step(job, Event::RenderCompleted { clip }).await;
        assert_eq!(job.state, JobState::Ready);
        job
    }

    async fn run(&self) -> reconciler::RunReport {
        reconciler::function_handler(&self.deps, Instant::now() + Duration::from_secs(30)).await
    }

    async fn job(&self, id: &JobId) -> Job {
        self.deps.jobs.get(id).await.unwrap().unwrap()
    }

    async fn messages(&self, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }
}

fn render_source() -> JobSource {
    JobSource::Render(RenderRequest {
        media: MediaSource::Url("https://www.youtube.com/watch?v=dQw4w9WgXcQ".into()),
        start: 0.0,
        end: 120.0,
        options: Default::default(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_publishers_lease_becomes_publish_unknown_and_is_not_polled_every_tick() {
    let policy = Policy {
        publish_lease: Duration::from_millis(200),
        ..Policy::default()
    };
    let w = world(policy).await;
    let past = SystemClock.now().minus(Duration::from_secs(60));
    let job = w.create(render_source(), past).await;
    let job = w
        .step(
            job,
            Event::RenderSubmitStarted {
                webhook_token_hash: "ab".repeat(32),
            },
        )
        .await;
    let job = w
        .step(
            job,
            Event::RenderSubmitted {
                request_id: reelay_domain::RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap(),
            },
        )
        .await;
    let clip = reelay_domain::Clip {
        short_id: "s1".into(),
        video_url: "https://cdn/x.mp4".into(),
        duration_secs: Some(30.0),
        viral_score: Some(80.0),
    };
    let job = w.step(job, Event::RenderCompleted { clip }).await;
    assert_eq!(job.state, JobState::PublishQueued);
    let job = w.step(job, Event::PublishStarted).await;
    assert_eq!(job.state, JobState::Publishing);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let report = w.run().await;
    assert_eq!(report.moved, 1, "{report:?}");
    let unknown = w.job(&job.id).await;
    assert_eq!(unknown.state, JobState::PublishUnknown);
    assert_eq!(
        unknown.next_check.map(|c| c.kind),
        Some(CheckKind::UnknownResolve)
    );
    assert_eq!(unknown.attempt, 1, "no second attempt was started");
    assert!(
        w.messages(&w.publish_queue).await.is_empty(),
        "nothing re-enqueued an unknown outcome"
    );

    let again = w.run().await;
    assert_eq!(
        again.due, 0,
        "the next look is later, not at every tick: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_due_within_the_lookahead_is_enqueued_to_its_account_group() {
    let w = world(Policy::default()).await;
    let soon = SystemClock.now().plus(Duration::from_secs(20));
    let job = w.create(render_source(), soon).await;
    let job = w
        .step(
            job,
            Event::RenderSubmitStarted {
                webhook_token_hash: "ab".repeat(32),
            },
        )
        .await;
    let job = w
        .step(
            job,
            Event::RenderSubmitted {
                request_id: reelay_domain::RequestId::parse("665a1b2c3d4e5f6a7b8c9d0f").unwrap(),
            },
        )
        .await;
    let clip = reelay_domain::Clip {
        short_id: "s1".into(),
        video_url: "https://cdn/x.mp4".into(),
        duration_secs: Some(30.0),
        viral_score: None,
    };
    let job = w.step(job, Event::RenderCompleted { clip }).await;
    assert_eq!(job.state, JobState::Ready);

    w.run().await;
    assert_eq!(w.job(&job.id).await.state, JobState::PublishQueued);
    let messages = w.messages(&w.publish_queue).await;
    assert_eq!(messages.len(), 1);
    let group = messages[0]
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
        .cloned();
    assert_eq!(group.as_deref(), Some("tenant_a:acct_1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_render_message_is_sent_again_and_a_future_schedule_waits() {
    let policy = Policy {
        render_submit_lease: Duration::ZERO,
        ..Policy::default()
    };
    let w = world(policy).await;
    let job = w
        .create(
            render_source(),
            SystemClock.now().plus(Duration::from_secs(3600)),
        )
        .await;
    let report = w.run().await;
    assert!(report.moved >= 1, "{report:?}");
    let after = w.job(&job.id).await;
    assert_eq!(after.state, JobState::Received);
    assert_eq!(
        w.messages(&w.render_queue).await.len(),
        1,
        "the render message was sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_whose_webhook_never_came_is_completed_by_the_poll() {
    let w = world(Policy::default()).await;
    // A render that exists at Ssemble; its webhook is never delivered to us.
    let client = SsembleClient::new(
        SsembleConfig::new(SecretString::from(SSEMBLE_KEY)).with_base_url(&w.ssemble.base_url),
    )
    .unwrap();
    let created = client
        .create(
            &reelay_ssemble::create_request(
                &RenderRequest {
                    media: MediaSource::Url("https://www.youtube.com/watch?v=dQw4w9WgXcQ".into()),
                    start: 0.0,
                    end: 120.0,
                    options: Default::default(),
                },
                None,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let request_id = reelay_domain::RequestId::parse(created.data.request_id.to_string()).unwrap();
    w.ssemble.advance(Duration::from_secs(3600));
    let job = w
        .create(
            JobSource::Rendered { request_id },
            SystemClock.now().minus(Duration::from_secs(1)),
        )
        .await;
    assert_eq!(job.state, JobState::Rendering);

    let report = w.run().await;
    assert!(report.moved >= 1, "{report:?}");
    let after = w.job(&job.id).await;
    assert_eq!(
        after.state,
        JobState::PublishQueued,
        "{:?}",
        after.last_error
    );
    assert!(after.clip.is_some());
    assert_eq!(w.messages(&w.publish_queue).await.len(), 1);
    assert!(w.ssemble.inspect().limit_violations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_accounts_backlog_does_not_delay_another_accounts_due_schedule() {
    let w = world(Policy::default()).await;
    let now = SystemClock.now();
    // 30 jobs of one account due first (in due order), then one job of another account.
    let mut backlog = Vec::new();
    for i in 0..30 {
        let at = now
            .plus(Duration::from_secs(20))
            .plus(Duration::from_millis(i));
        backlog.push(w.ready_job("acct_busy", at).await);
    }
    let other = w
        .ready_job("acct_other", now.plus(Duration::from_secs(25)))
        .await;
    let options = reconciler::RunOptions {
        concurrency: 4,
        pages_per_read: 5,
    };
    let report = reconciler::run(&w.deps, Instant::now() + Duration::from_secs(60), options).await;
    assert_eq!(report.moved, 31, "{report:?}");
    assert!(!report.out_of_time);
    let other = w.job(&other.id).await;
    assert_eq!(other.state, JobState::PublishQueued);
    let mut before = 0;
    for job in &backlog {
        let job = w.job(&job.id).await;
        assert_eq!(job.state, JobState::PublishQueued);
        if job.updated_at < other.updated_at {
            before += 1;
        }
    }
    // Serially in due order all 30 would go first. Round-robin starts the other account's job
    // in the first concurrent batch; only that batch and the jobs started while it still ran
    // (at most one more batch) can finish before it.
    assert!(
        before <= 2 * options.concurrency,
        "{before} of the busy account's jobs were moved before the other account's due job"
    );
}
