//! Shared test support: the endpoint guard, per-test resources with a random suffix, and job
//! builders. Every test creates its own table/queues/secrets, so the suite runs in parallel
//! against one endpoint.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_config::SdkConfig;
use reelay_domain::job::{MediaSource, PostMode, PostSettings, PrivacyLevel, RenderRequest};
use reelay_domain::lifecycle::Policy;
use reelay_domain::{AccountId, Applied, IdempotencyKey, Job, JobId, JobSource, TenantId, UtcTime};
use reelay_template::{ProvisionOptions, Provisioned, ResourceKinds, Template};

/// Fails (never skips) when no local endpoint is configured: these tests make real SDK calls.
pub async fn sdk() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.trim().is_empty(),
        "AWS_ENDPOINT_URL is not set: these integration tests need the local AWS endpoint. Run them via the \
         project's test command (`make test`), or start it yourself: `infra/scripts/aws-emulator.sh start && \
         eval \"$(infra/scripts/aws-emulator.sh env)\"` then `cargo test -p reelay-aws`"
    );
    reelay_aws::load_sdk_config()
        .await
        .expect("AWS SDK configuration")
}

pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

pub fn now() -> UtcTime {
    use reelay_domain::ports::Clock;
    reelay_aws::SystemClock.now()
}

/// Creates `kinds` of template.yaml's resources under a fresh stage suffix: the deployed shapes
/// (keys, GSIs, TTL, FIFO + DLQ redrive), one source of truth.
pub async fn provision(
    sdk: &SdkConfig,
    kinds: ResourceKinds,
    visibility_secs: Option<u32>,
) -> Provisioned {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let template = Template::from_path(path).expect("template.yaml");
    let mut options = ProvisionOptions::new("test")
        .with_suffix(suffix())
        .with_kinds(kinds);
    if let Some(v) = visibility_secs {
        options = options.with_visibility_timeout(v);
    }
    reelay_template::provision(sdk, &template, &options)
        .await
        .expect("provision from template.yaml")
}

/// The template's table, under a unique name.
pub async fn table(sdk: &SdkConfig) -> String {
    let stack = provision(sdk, ResourceKinds::TABLES, None).await;
    stack
        .table("Table")
        .expect("Table in template.yaml")
        .name
        .clone()
}

pub struct FifoQueue {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
}

/// The template's publish queue (FIFO, redrive to its FIFO DLQ after maxReceiveCount 5), with
/// the visibility timeout shortened so redelivery tests take seconds.
pub async fn fifo_queue(sdk: &SdkConfig, visibility_secs: u32) -> FifoQueue {
    let stack = provision(sdk, ResourceKinds::QUEUES, Some(visibility_secs)).await;
    let q = stack
        .queue("PublishQueue")
        .expect("PublishQueue in template.yaml");
    let dlq = stack
        .queue("PublishDlq")
        .expect("PublishDlq in template.yaml");
    FifoQueue {
        url: q.url.clone(),
        arn: q.arn.clone(),
        dlq_url: dlq.url.clone(),
    }
}

/// The template's token table and key under a fresh stage, as the functions are configured with
/// them, with the old per-account secrets under their template prefix as the migration source.
pub async fn token_vault(sdk: &SdkConfig) -> reelay_aws::DynamoTokenVault {
    let stack = provision(sdk, ResourceKinds::TOKENS, None).await;
    let env = stack
        .function_env("PublisherFunction")
        .expect("PublisherFunction in template.yaml");
    let var = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} in PublisherFunction's environment"))
    };
    assert_eq!(
        var("TOKEN_TABLE_NAME"),
        stack.table("TokenTable").unwrap().name
    );
    assert_eq!(var("TOKEN_KEY_ID"), stack.key("TokenKey").unwrap().arn);
    reelay_aws::DynamoTokenVault::from_sdk(sdk, &var("TOKEN_TABLE_NAME"), &var("TOKEN_KEY_ID"))
        .with_legacy_prefix(sdk, Some(var("TIKTOK_TOKEN_SECRET_PREFIX")))
}

/// The token-secret prefix the template gives the functions (`reelay/<stage>/tiktok-token/`).
pub async fn token_prefix(sdk: &SdkConfig) -> String {
    let stack = provision(sdk, ResourceKinds::SECRETS, None).await;
    stack
        .env_var("TIKTOK_TOKEN_SECRET_PREFIX")
        .expect("TIKTOK_TOKEN_SECRET_PREFIX in template.yaml")
        .to_owned()
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

    /// The production policy with the enqueue-ahead off: these tests walk a job through every
    /// stored state, so a render that completes before its schedule waits `ready` for it.
    pub fn policy() -> Policy {
        Policy {
            enqueue_ahead: Duration::ZERO,
            ..Policy::default()
        }
    }

    pub const REQUEST_ID: &str = "665a1b2c3d4e5f6a7b8c9d0e";
    pub const PUBLISH_ID: &str = "v_pub_file~v2.123456789";
    pub const POST_ID: &str = "7300000000000000001";

    pub fn request_id() -> RequestId {
        RequestId::parse(REQUEST_ID).unwrap()
    }

    pub fn publish_id() -> PublishId {
        PublishId::parse(PUBLISH_ID).unwrap()
    }

    /// The happy path after `create`, as the functions drive it: one event per step.
    pub fn events() -> Vec<Event> {
        vec![
            Event::RenderSubmitStarted {
                webhook_token_hash:
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            },
            Event::RenderSubmitted {
                request_id: request_id(),
                found: false,
            },
            Event::RenderCompleted {
                request_id: request_id(),
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
                attempt: 1,
                publish_id: publish_id(),
                upload: true,
                upstream_log_id: Some("log-1".into()),
            },
            Event::UploadCompleted {
                publish_id: publish_id(),
            },
            Event::StatusObserved {
                publish_id: publish_id(),
                status: PublishStatus::Processing,
                post_ids: vec![],
                via: Via::Poll,
                upstream_log_id: None,
            },
            Event::StatusObserved {
                publish_id: publish_id(),
                status: PublishStatus::Complete,
                post_ids: vec![],
                via: Via::Webhook,
                upstream_log_id: None,
            },
            Event::StatusObserved {
                publish_id: publish_id(),
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
        let policy = policy();
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

/// A store on a fresh table of its own.
pub async fn store(sdk: &SdkConfig) -> reelay_aws::DynamoStore {
    reelay_aws::DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table(sdk).await)
}

/// A job's whole audit trail, read page by page.
pub async fn trail<S: reelay_domain::ports::JobStore>(
    store: &S,
    id: &JobId,
) -> Vec<reelay_domain::AuditEvent> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = store.audit_page(id, after, 100).await.unwrap();
        events.extend(page.events);
        match page.next_after {
            Some(v) => after = Some(v),
            None => return events,
        }
    }
}

/// The domain core over the real adapters: DynamoDB, Secrets Manager, the system clock, and a
/// TikTok whose only wired part is the token endpoint `refresher` (posting and OAuth answer
/// `not_wired`). Refresh timings shortened so waiting tasks poll quickly.
pub type TokenCore<R, V = reelay_aws::SecretsManagerTokenVault> = reelay_domain::usecase::Core<
    reelay_domain::ports::Adapters<
        reelay_aws::DynamoStore,
        reelay_aws::SqsWorkQueue,
        reelay_aws::SystemClock,
        V,
        reelay_domain::upstream::Unwired,
        OnlyRefresh<R>,
    >,
>;

pub fn token_core<R: reelay_domain::ports::TokenRefresher, V: reelay_domain::ports::TokenVault>(
    sdk: &SdkConfig,
    store: reelay_aws::DynamoStore,
    vault: V,
    refresher: std::sync::Arc<R>,
) -> TokenCore<R, V> {
    let settings = reelay_domain::usecase::Settings {
        tokens: reelay_domain::usecase::TokenSettings {
            min_validity: Duration::from_secs(300),
            lock_ttl: Duration::from_secs(10),
            poll_interval: Duration::from_millis(50),
            max_rounds: 3,
        },
        ..Default::default()
    };
    reelay_domain::usecase::Core::new(
        reelay_domain::ports::Adapters {
            store,
            // No queue URL: the token use case sends nothing (a send would be an error).
            queue: reelay_aws::SqsWorkQueue::new(aws_sdk_sqs::Client::new(sdk), None, None),
            clock: reelay_aws::SystemClock,
            vault,
            render: reelay_domain::upstream::Unwired,
            tiktok: OnlyRefresh(refresher),
        },
        settings,
    )
}

/// A TikTok adapter of which only the token endpoint is real (a test double shared by handle).
#[derive(Debug)]
pub struct OnlyRefresh<R>(pub std::sync::Arc<R>);

mod only_refresh {
    use reelay_domain::compliance::CreatorInfo;
    use reelay_domain::job::{Clip, PostMode, PostSettings};
    use reelay_domain::ports::{RefreshError, TokenRefresher, TokenSet};
    use reelay_domain::upstream::{
        AuthApi, ObservedStatus, PublishApi, PublishInit, Unwired, UpstreamError,
    };
    use reelay_domain::{PublishId, UtcTime};
    use secrecy::SecretString;

    use super::OnlyRefresh;

    impl<R: TokenRefresher> TokenRefresher for OnlyRefresh<R> {
        async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, RefreshError> {
            self.0.refresh(refresh_token).await
        }
    }

    impl<R: Send + Sync> PublishApi for OnlyRefresh<R> {
        async fn creator_info(&self, token: &SecretString) -> Result<CreatorInfo, UpstreamError> {
            Unwired.creator_info(token).await
        }
        async fn clip_size(&self, clip: &Clip, deadline: UtcTime) -> Result<u64, UpstreamError> {
            Unwired.clip_size(clip, deadline).await
        }
        async fn init(
            &self,
            token: &SecretString,
            post: &PostSettings,
            clip: &Clip,
            video_size: u64,
        ) -> Result<PublishInit, UpstreamError> {
            Unwired.init(token, post, clip, video_size).await
        }
        async fn upload(
            &self,
            upload_url: &SecretString,
            clip: &Clip,
            video_size: u64,
            deadline: UtcTime,
        ) -> Result<(), UpstreamError> {
            Unwired.upload(upload_url, clip, video_size, deadline).await
        }
        async fn status(
            &self,
            token: &SecretString,
            publish_id: &PublishId,
        ) -> Result<ObservedStatus, UpstreamError> {
            Unwired.status(token, publish_id).await
        }
    }

    impl<R: Send + Sync> AuthApi for OnlyRefresh<R> {
        fn authorize_url(
            &self,
            state: &str,
            mode: PostMode,
            redirect_uri: &str,
        ) -> Result<String, UpstreamError> {
            Unwired.authorize_url(state, mode, redirect_uri)
        }
        async fn exchange_code(
            &self,
            code: &str,
            redirect_uri: &str,
        ) -> Result<TokenSet, UpstreamError> {
            Unwired.exchange_code(code, redirect_uri).await
        }
        async fn revoke(&self, token: &SecretString) -> Result<(), UpstreamError> {
            Unwired.revoke(token).await
        }
    }
}
