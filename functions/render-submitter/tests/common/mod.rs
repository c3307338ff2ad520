//! Shared by the render-submitter and ssemble-webhook suites (the webhook suite includes this
//! file by path): the template's table, queues and secret on the local AWS endpoint under a
//! random suffix, an in-process ssemble-sim over real HTTP, and the render submitter driven by
//! real SQS messages the way Lambda's event source mapping drives it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use reelay_aws::{
    DynamoAccountStore, DynamoJobStore, FifoBatchProcessor, SecretCache, SqsWorkQueue, SystemClock,
    sqs_event_from_received,
};
use reelay_domain::budget::Limits;
use reelay_domain::job::{
    ClipChoice, MediaSource, PostMode, PostSettings, PrivacyLevel, RenderRequest,
};
use reelay_domain::lifecycle::Policy;
use reelay_domain::messages::WorkMessage;
use reelay_domain::ports::{Clock, JobStore};
use reelay_domain::usecase;
use reelay_domain::{AccountId, Job, JobId, JobSource, JobState, RequestId, TenantId};
use reelay_ssemble::{FindPolicy, RetryPolicy, SsembleClient, SsembleConfig};
use reelay_template::{ProvisionOptions, Provisioned, ResourceKinds, Template};
use render_submitter::{Deps, ssemble_budget_scope};
use secrecy::SecretString;
use ssemble_sim::{SimConfig, SimHandle, SsembleSim};

pub type SubmitterDeps =
    Deps<DynamoJobStore, DynamoAccountStore, SqsWorkQueue, SystemClock, SsembleClient>;

/// Fails (never skips) without a local endpoint: these tests make real SDK calls.
pub async fn sdk() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.trim().is_empty(),
        "AWS_ENDPOINT_URL is not set: these tests need the local AWS endpoint. Start it with \
         `infra/scripts/aws-emulator.sh start && eval \"$(infra/scripts/aws-emulator.sh env)\"`"
    );
    reelay_aws::load_sdk_config().await
}

pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// One test's world: its own table, queues, secret, simulator and API key.
pub struct World {
    pub sdk: SdkConfig,
    pub stack: Provisioned,
    pub sim: SimHandle,
    pub key: SecretString,
    pub key_raw: String,
    pub jobs: DynamoJobStore,
    pub accounts: DynamoAccountStore,
    pub queue: SqsWorkQueue,
    pub sqs: aws_sdk_sqs::Client,
    pub render_url: String,
    pub publish_url: String,
    pub client: SsembleClient,
    pub tenant: TenantId,
}

/// Knobs a test may turn.
pub struct Setup {
    pub sim: SimConfig,
    /// Client timeout: a `timeout_after_accept` fault must outlast it.
    pub request_timeout: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            sim: SimConfig {
                time_scale: 60.0,
                seed: 7,
                // Ssemble's 10 s per attempt, in real seconds on the scaled clock.
                webhook_timeout_secs: 600.0,
                ..SimConfig::default()
            },
            request_timeout: Duration::from_secs(10),
        }
    }
}

pub async fn world(setup: Setup) -> World {
    let sdk = sdk().await;
    let key_raw = format!("sk_ssemble_{}", uuid::Uuid::new_v4().simple());
    let template =
        Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
    let mut options = ProvisionOptions::new("test")
        .with_suffix(suffix())
        .with_kinds(ResourceKinds::ALL)
        .with_visibility_timeout(5);
    options.secret_values.insert(
        "SsembleSecret".into(),
        serde_json::json!({ "apiKey": key_raw }).to_string(),
    );
    let stack = reelay_template::provision(&sdk, &template, &options)
        .await
        .expect("provision template.yaml");
    let table = stack.table("Table").unwrap().name.clone();
    let render_url = stack.queue("RenderQueue").unwrap().url.clone();
    let publish_url = stack.queue("PublishQueue").unwrap().url.clone();
    // The key comes back out of Secrets Manager, as the functions read it.
    let secret_name = stack.secret("SsembleSecret").unwrap().name.clone();
    let key = SecretCache::from_sdk(&sdk, Duration::from_secs(60))
        .ssemble(&secret_name)
        .await
        .expect("ssemble secret")
        .api_key;

    let sim = SsembleSim::start(setup.sim).await.expect("ssemble-sim");
    let mut config = SsembleConfig::new(key.clone()).with_base_url(&sim.base_url);
    config.retry = RetryPolicy::none();
    config.request_timeout = setup.request_timeout;
    config.find = FindPolicy {
        settle_delay: Duration::ZERO,
        ..FindPolicy::default()
    };
    let client = SsembleClient::new(config).unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    World {
        jobs: DynamoJobStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
        accounts: DynamoAccountStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
        queue: SqsWorkQueue::new(
            sqs.clone(),
            Some(render_url.clone()),
            Some(publish_url.clone()),
        ),
        sqs,
        render_url,
        publish_url,
        client,
        sim,
        key,
        key_raw,
        stack,
        sdk,
        tenant: TenantId::parse("tenant_a").unwrap(),
    }
}

/// A short submit lease so "the next check" comes within a test's patience.
pub fn policy() -> Policy {
    Policy {
        render_submit_lease: Duration::from_millis(1500),
        ..Policy::default()
    }
}

impl World {
    pub fn submitter(&self, public_base_url: &str, limits: Limits) -> SubmitterDeps {
        Deps {
            jobs: self.jobs.clone(),
            accounts: self.accounts.clone(),
            queue: self.queue.clone(),
            clock: SystemClock,
            render: self.client.clone(),
            batches: FifoBatchProcessor::new(self.sqs.clone(), &self.render_url),
            policy: policy(),
            limits,
            budget_scope: ssemble_budget_scope(&self.key),
            public_base_url: public_base_url.to_owned(),
            find_calls: self.client.find_call_bound(),
        }
    }

    /// A unique source URL per job, so the simulator's creates-per-source counts one job.
    pub fn source(&self, tag: &str) -> String {
        format!(
            "https://cdn.example.com/{tag}/{}.mp4",
            uuid::Uuid::new_v4().simple()
        )
    }

    /// Stores a job (due now) and enqueues its render message, as the ingest API does.
    pub async fn ingest(&self, account: &str, source: &str, clip: ClipChoice) -> Job {
        self.ingest_source(
            account,
            JobSource::Render(RenderRequest {
                media: MediaSource::FileUrl(source.to_owned()),
                start: 0.0,
                end: 600.0,
                options: serde_json::json!({"preferredLength": "under60sec"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            }),
            clip,
        )
        .await
    }

    pub async fn ingest_source(&self, account: &str, source: JobSource, clip: ClipChoice) -> Job {
        let now = SystemClock.now();
        let applied = Job::create(
            JobId::generate(now, uuid::Uuid::new_v4().as_u128()),
            self.tenant.clone(),
            AccountId::parse(account).unwrap(),
            source,
            post(clip),
            now,
            None,
            now,
            &policy(),
        );
        self.jobs.create(&applied, None).await.unwrap();
        usecase::dispatch(&self.queue, &applied).await;
        applied.job
    }

    pub async fn job(&self, id: &JobId) -> Job {
        self.jobs.get(id).await.unwrap().expect("job exists")
    }

    pub async fn receive(&self, url: &str, wait_secs: i32) -> Vec<Message> {
        self.sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }

    /// One Lambda invocation: a received batch through the handler, then what the event
    /// source mapping does (delete what did not fail).
    pub async fn deliver_render(&self, deps: &SubmitterDeps) -> (usize, SqsBatchResponse) {
        let messages = self.receive(&self.render_url, 2).await;
        let event = sqs_event_from_received(&messages, None);
        let response = render_submitter::function_handler(deps, event).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for m in &messages {
            if !failed.contains(&m.message_id().unwrap()) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.render_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        (messages.len(), response)
    }

    /// Delivers render messages until `expected` have been handled (FIFO groups release their
    /// next message only after the previous one is deleted).
    pub async fn drain_render(&self, deps: &SubmitterDeps, expected: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut handled = 0;
        while handled < expected {
            assert!(
                Instant::now() < deadline,
                "only {handled} of {expected} render messages came"
            );
            let (n, response) = self.deliver_render(deps).await;
            assert!(
                response.batch_item_failures.is_empty(),
                "render batch failed: {response:?}"
            );
            handled += n;
        }
    }

    /// Another render message for the job, as the reconciler enqueues it at the job's next
    /// check (`nonce` keeps SQS's five-minute deduplication from dropping a repeat).
    pub async fn enqueue_render_check(&self, job: &Job, nonce: u32) {
        use reelay_domain::ports::WorkQueue;
        let msg = WorkMessage::new(
            reelay_domain::messages::QueueKind::Render,
            job.id.clone(),
            job.tenant_id.clone(),
            job.account_id.clone(),
            job.version,
        );
        self.queue.send(&msg, nonce).await.unwrap();
    }

    pub async fn wait_for_state(&self, id: &JobId, state: JobState, secs: u64) -> Job {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let job = self.job(id).await;
            if job.state == state {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} is {} (wanted {state}) after {secs}s",
                job.state
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The simulator's request id for a source (its ground truth).
    pub fn sim_request_for(&self, source: &str) -> Option<RequestId> {
        self.sim
            .inspect()
            .requests
            .iter()
            .find(|r| r.source == source)
            .map(|r| RequestId::parse(&r.request_id).unwrap())
    }

    pub fn creates_for(&self, source: &str) -> u32 {
        self.sim
            .inspect()
            .creates_per_source
            .get(source)
            .copied()
            .unwrap_or(0)
    }

    /// The budget was never overspent: Ssemble's limiter never had to refuse a call.
    pub fn assert_no_limit_violations(&self) {
        let inspection = self.sim.inspect();
        assert!(
            inspection.limit_violations.is_empty(),
            "Ssemble limits violated: {:?}",
            inspection.limit_violations
        );
    }

    pub fn calls_by_endpoint(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for c in self.sim.inspect().calls {
            *out.entry(format!("{:?}", c.endpoint)).or_insert(0) += 1;
        }
        out
    }
}

pub fn post(clip: ClipChoice) -> PostSettings {
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
        clip,
    }
}
