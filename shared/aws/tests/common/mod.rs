//! Shared test support: the endpoint guard, per-test resources with a random suffix, and job
//! builders. Every test creates its own table/queues/secrets, so the suite runs in parallel
//! against one endpoint.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use reelay_domain::job::{MediaSource, PostMode, PostSettings, PrivacyLevel, RenderRequest};
use reelay_domain::lifecycle::Policy;
use reelay_domain::{AccountId, Applied, IdempotencyKey, Job, JobId, JobSource, TenantId, UtcTime};

/// Fails (never skips) when no local endpoint is configured: these tests make real SDK calls.
pub async fn sdk() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.trim().is_empty(),
        "AWS_ENDPOINT_URL is not set: these integration tests need the local AWS endpoint. Run them via the \
         project's test command (`make test`), or start it yourself: `infra/scripts/aws-emulator.sh start && \
         eval \"$(infra/scripts/aws-emulator.sh env)\"` then `cargo test -p reelay-aws`"
    );
    reelay_aws::load_sdk_config().await
}

pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

pub fn now() -> UtcTime {
    use reelay_domain::ports::Clock;
    reelay_aws::SystemClock.now()
}

/// The table of template.yaml (keys, both GSIs, TTL), under a unique name.
pub async fn table(sdk: &SdkConfig) -> String {
    let name = format!("reelay-test-{}", suffix());
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    let gsi = |name: &str, pk: &str, sk: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash))
            .key_schema(key(sk, KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(
            ["pk", "sk", "gsi1pk", "gsi1sk", "due_pk", "due_sk"]
                .into_iter()
                .map(attr)
                .collect(),
        ))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(gsi("gsi1", "gsi1pk", "gsi1sk"))
        .global_secondary_indexes(gsi("due", "due_pk", "due_sk"))
        .send()
        .await
        .expect("create table");
    for _ in 0..100 {
        let d = client
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .expect("describe");
        if d.table().and_then(|t| t.table_status()).map(|s| s.as_str()) == Some("ACTIVE") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("ttl");
    name
}

pub struct FifoQueue {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
}

/// A FIFO queue with a FIFO DLQ (redrive after `max_receive`), as template.yaml declares them.
pub async fn fifo_queue(sdk: &SdkConfig, visibility_secs: u32, max_receive: u32) -> FifoQueue {
    let client = aws_sdk_sqs::Client::new(sdk);
    let base = format!("reelay-test-{}", suffix());
    let dlq = client
        .create_queue()
        .queue_name(format!("{base}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create dlq");
    let dlq_url = dlq.queue_url().unwrap().to_owned();
    let dlq_arn = queue_arn(&client, &dlq_url).await;
    let q = client
        .create_queue()
        .queue_name(format!("{base}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
                .to_string(),
        )
        .send()
        .await
        .expect("create queue");
    let url = q.queue_url().unwrap().to_owned();
    let arn = queue_arn(&client, &url).await;
    FifoQueue { url, arn, dlq_url }
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> String {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue arn")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .expect("QueueArn")
}

pub fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

pub fn account(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}

pub fn post() -> PostSettings {
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
        clip: Default::default(),
    }
}

pub fn render_source() -> JobSource {
    JobSource::Render(RenderRequest {
        media: MediaSource::Url("https://example.com/v.mp4".into()),
        start: 0.0,
        end: 60.0,
        options: Default::default(),
    })
}

/// A new job (state `received`) for `tenant`/`account`, created at `at`.
pub fn new_job(
    tenant_id: &TenantId,
    account_id: &AccountId,
    at: UtcTime,
    key: Option<&str>,
) -> Applied {
    let id = JobId::generate(at, rand_u128());
    Job::create(
        id,
        tenant_id.clone(),
        account_id.clone(),
        render_source(),
        post(),
        // Later than the render's completion in `lifecycle::drive`, so the job waits in `ready`.
        at.plus(Duration::from_secs(35)),
        key.map(|k| IdempotencyKey::parse(k).unwrap()),
        at,
        &Policy::default(),
    )
}

pub fn rand_u128() -> u128 {
    uuid::Uuid::new_v4().as_u128()
}

pub mod lifecycle {
    use reelay_domain::job::Clip;
    use reelay_domain::lifecycle::{Event, Policy, PublishStatus, Via};
    use reelay_domain::ports::JobStore;
    use reelay_domain::{Job, PublishId, RequestId, Step, UtcTime};
    use std::time::Duration;

    pub const REQUEST_ID: &str = "665a1b2c3d4e5f6a7b8c9d0e";
    pub const PUBLISH_ID: &str = "v_pub_file~v2.123456789";
    pub const POST_ID: &str = "7300000000000000001";

    /// The happy path after `create`, as the functions drive it: one event per step.
    pub fn events() -> Vec<Event> {
        vec![
            Event::RenderSubmitStarted,
            Event::RenderSubmitted {
                request_id: RequestId::parse(REQUEST_ID).unwrap(),
            },
            Event::RenderCompleted {
                clip: Clip {
                    short_id: "s1".into(),
                    video_url: "https://cdn.example.com/s1.mp4".into(),
                    duration_secs: Some(30.0),
                    viral_score: Some(0.9),
                },
            },
            Event::PublishDue,
            Event::PublishStarted,
            Event::PublishAccepted {
                publish_id: PublishId::parse(PUBLISH_ID).unwrap(),
                upload: true,
                upstream_log_id: Some("log-1".into()),
            },
            Event::UploadCompleted,
            Event::StatusObserved {
                status: PublishStatus::Processing,
                post_ids: vec![],
                via: Via::Poll,
                upstream_log_id: None,
            },
            Event::StatusObserved {
                status: PublishStatus::Complete,
                post_ids: vec![],
                via: Via::Webhook,
                upstream_log_id: None,
            },
            Event::StatusObserved {
                status: PublishStatus::Complete,
                post_ids: vec![POST_ID.into()],
                via: Via::Webhook,
                upstream_log_id: None,
            },
        ]
    }

    /// Applies the happy path to `job` through `JobStore::save`, calling `after` with each stored
    /// job. Times advance 10 s per step from `start` (so `scheduleAt` = start + 30 s is due at
    /// the `PublishDue` step).
    pub async fn drive<S: JobStore>(
        store: &S,
        mut job: Job,
        start: UtcTime,
        mut after: impl AsyncFnMut(&Job),
    ) -> Job {
        let policy = Policy::default();
        for (i, event) in events().into_iter().enumerate() {
            let now = start.plus(Duration::from_secs(10 * (i as u64 + 1)));
            let Step::Applied(applied) = job.apply(&event, now, &policy).unwrap() else {
                panic!(
                    "step {i} ({}) was absorbed in state {}",
                    event.name(),
                    job.state
                );
            };
            store.save(&applied, job.version).await.unwrap();
            job = applied.job.clone();
            after(&job).await;
        }
        job
    }
}
