//! Shared by the tiktok-webhook and publisher suites (the publisher suite includes this file by
//! path): the template's table, queues and secrets on the local AWS endpoint under a random
//! suffix, an in-process tiktok-sim over real HTTP, a clip origin serving ranged bytes, and the
//! webhook receiver behind a loopback HTTP server the simulator delivers to.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use reelay_aws::{
    DynamoAccountStore, DynamoJobStore, SecretCache, SecretsManagerTokenVault, SqsWorkQueue,
    SystemClock,
};
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::job::{Clip, ClipChoice, PostMode, PostSettings, PrivacyLevel};
use reelay_domain::lifecycle::{Event, Policy};
use reelay_domain::ports::{AccountStore, Clock, JobStore, TokenSet, TokenVault};
use reelay_domain::usecase::{self, Advance};
use reelay_domain::{AccountId, Job, JobId, JobSource, JobState, RequestId, TenantId, UtcTime};
use reelay_template::{ProvisionOptions, Provisioned, ResourceKinds, Template};
use secrecy::SecretString;
use tiktok_sim::{ChunkRules, Delays, SimConfig, SimHandle, TikTokSim};
use tiktok_webhook::{DEFAULT_MAX_BODY_BYTES, DynamoOpenIdDirectory};

pub const MIB: u64 = 1024 * 1024;

pub type WebhookDeps = tiktok_webhook::Deps<
    DynamoJobStore,
    DynamoAccountStore,
    SqsWorkQueue,
    SystemClock,
    DynamoOpenIdDirectory,
>;

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

/// Small chunk thresholds so uploads stay fast in debug builds; the same rules on both sides.
pub fn small_rules() -> ChunkRules {
    ChunkRules {
        min_chunk: MIB,
        max_chunk: 2 * MIB,
        max_final_chunk: 4 * MIB,
        max_chunks: 1000,
        whole_below: MIB,
        multi_above: 2 * MIB,
        strict_single_chunk: true,
        reject_multi_chunk: false,
    }
}

pub fn small_policy() -> reelay_tiktok::ChunkPolicy {
    reelay_tiktok::ChunkPolicy {
        min_chunk: MIB,
        max_chunk: 2 * MIB,
        max_final_chunk: 4 * MIB,
        preferred_chunk: MIB,
        single_chunk_threshold: 2 * MIB,
        max_chunks: 1000,
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// A clip origin: HEAD for the length, GET with `Range: bytes=N-` / `N-M`, like a CDN.
#[derive(Clone, Default)]
pub struct ClipOrigin {
    clips: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
}

async fn serve_clip(
    State(origin): State<ClipOrigin>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(data) = origin.clips.lock().unwrap().get(&name).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let total = data.len();
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| {
            let (a, b) = v.split_once('-')?;
            let start: usize = a.parse().ok()?;
            let end: usize = if b.is_empty() {
                total - 1
            } else {
                b.parse::<usize>().ok()?.min(total - 1)
            };
            Some((start, end))
        });
    let (status, start, end) = match range {
        Some((s, e)) if s <= e && s < total => (StatusCode::PARTIAL_CONTENT, s, e),
        _ => (StatusCode::OK, 0, total - 1),
    };
    let mut resp = if method == Method::HEAD {
        Response::new(axum::body::Body::empty())
    } else {
        Response::new(axum::body::Body::from(data[start..=end].to_vec()))
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("content-type", "video/mp4".parse().unwrap());
    h.insert("accept-ranges", "bytes".parse().unwrap());
    h.insert(
        "content-length",
        (end + 1 - start).to_string().parse().unwrap(),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            "content-range",
            format!("bytes {start}-{end}/{total}").parse().unwrap(),
        );
    }
    resp
}

/// Forwards the simulator's deliveries to the Lambda handler, as API Gateway would.
async fn forward_webhook(
    State(deps): State<Arc<WebhookDeps>>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let req =
        lambda_http::http::Request::from_parts(parts, lambda_http::Body::from(bytes.to_vec()));
    let resp = tiktok_webhook::function_handler(&deps, req).await;
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, axum::body::Body::from(body.as_ref().to_vec()))
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// One test's world.
pub struct World {
    pub sdk: SdkConfig,
    pub stack: Provisioned,
    pub sim: SimHandle,
    pub jobs: DynamoJobStore,
    pub accounts: DynamoAccountStore,
    pub queue: SqsWorkQueue,
    pub vault: SecretsManagerTokenVault,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    pub publish_url: String,
    pub client_secret: SecretString,
    pub webhook: Arc<WebhookDeps>,
    pub webhook_url: String,
    pub origin: ClipOrigin,
    pub origin_url: String,
    pub tenant: TenantId,
}

pub fn sim_config() -> SimConfig {
    SimConfig {
        seed: 11,
        chunk_rules: small_rules(),
        delays: Delays {
            download_secs: 1,
            processing_secs: 1,
            moderation_secs: Some(2),
            inbox_user_post_secs: None,
        },
        ..SimConfig::default()
    }
}

pub fn policy() -> Policy {
    Policy::default()
}

pub async fn world(sim_cfg: SimConfig) -> World {
    let sdk = sdk().await;
    let template =
        Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
    let scope = suffix();
    let mut options = ProvisionOptions::new("test")
        .with_suffix(scope.clone())
        .with_kinds(ResourceKinds::ALL)
        .with_visibility_timeout(5);
    options.secret_values.insert(
        "TikTokAppSecret".into(),
        serde_json::json!({
            "clientKey": sim_cfg.client_key,
            "clientSecret": sim_cfg.client_secret,
        })
        .to_string(),
    );
    let stack = reelay_template::provision(&sdk, &template, &options)
        .await
        .expect("provision template.yaml");
    let table = stack.table("Table").unwrap().name.clone();
    let publish_url = stack.queue("PublishQueue").unwrap().url.clone();
    // The client secret comes back out of Secrets Manager, as the functions read it.
    let app_secret = stack.secret("TikTokAppSecret").unwrap().name.clone();
    let app = SecretCache::from_sdk(&sdk, Duration::from_secs(60))
        .tiktok_app(&app_secret)
        .await
        .expect("tiktok app secret");

    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let jobs = DynamoJobStore::new(dynamo.clone(), &table);
    let accounts = DynamoAccountStore::new(dynamo.clone(), &table);
    let queue = SqsWorkQueue::new(sqs.clone(), None, Some(publish_url.clone()));
    let webhook = Arc::new(tiktok_webhook::Deps {
        jobs: jobs.clone(),
        accounts: accounts.clone(),
        queue: queue.clone(),
        clock: SystemClock,
        directory: DynamoOpenIdDirectory::new(dynamo, &table),
        policy: policy(),
        client_secret: app.client_secret.clone(),
        replay_window: tiktok_webhook::DEFAULT_REPLAY_WINDOW,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
    });
    let webhook_url = serve(
        axum::Router::new()
            .route("/webhooks/tiktok", axum::routing::post(forward_webhook))
            .with_state(webhook.clone()),
    )
    .await;
    let origin = ClipOrigin::default();
    let origin_url = serve(
        axum::Router::new()
            .route(
                "/clips/{name}",
                axum::routing::get(serve_clip).head(serve_clip),
            )
            .with_state(origin.clone()),
    )
    .await;
    let sim = TikTokSim::start(SimConfig {
        webhook_url: Some(format!("{webhook_url}/webhooks/tiktok")),
        ..sim_cfg
    })
    .await
    .expect("tiktok-sim");
    World {
        vault: SecretsManagerTokenVault::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            format!("reelay/test-{scope}/tiktok-token/"),
        ),
        sdk,
        stack,
        sim,
        jobs,
        accounts,
        queue,
        sqs,
        table,
        publish_url,
        client_secret: app.client_secret,
        webhook,
        webhook_url,
        origin,
        origin_url,
        tenant: TenantId::parse("tenant_a").unwrap(),
    }
}

pub fn post(mode: PostMode, title: &str) -> PostSettings {
    PostSettings {
        mode,
        privacy_level: (mode == PostMode::Direct).then_some(PrivacyLevel::PublicToEveryone),
        title: Some(title.to_owned()),
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
    /// Connects `account` to the simulator's creator `open_id`: tokens in the vault, account active.
    pub async fn connect(&self, account: &str, open_id: &str) -> AccountId {
        let v = self.sim.mint_tokens(
            open_id,
            &["user.info.basic", "video.publish", "video.upload"],
        );
        let now = SystemClock.now();
        let tokens = TokenSet {
            access_token: SecretString::from(v["access_token"].as_str().unwrap().to_owned()),
            access_expires_at: now.plus(Duration::from_secs(v["expires_in"].as_u64().unwrap())),
            refresh_token: SecretString::from(v["refresh_token"].as_str().unwrap().to_owned()),
            refresh_expires_at: now.plus(Duration::from_secs(
                v["refresh_expires_in"].as_u64().unwrap(),
            )),
            open_id: open_id.to_owned(),
            scopes: vec!["video.publish".into(), "video.upload".into()],
        };
        let id = AccountId::parse(account).unwrap();
        self.vault
            .put_tokens(&self.tenant, &id, &tokens)
            .await
            .unwrap();
        let mut acct = Account::new(self.tenant.clone(), id.clone());
        acct.open_id = Some(open_id.to_owned());
        acct.health = AccountHealth::Active;
        acct.health_reason = None;
        acct.scopes = tokens.scopes.clone();
        acct.connected_at = Some(now);
        self.accounts.put_account(&acct).await.unwrap();
        id
    }

    /// Publishes `len` bytes at the origin; the clip a job will post.
    pub fn clip(&self, name: &str, len: usize, seed: u32) -> (Clip, Vec<u8>) {
        let bytes = data(len, seed);
        self.origin
            .clips
            .lock()
            .unwrap()
            .insert(name.to_owned(), Arc::new(bytes.clone()));
        (
            Clip {
                short_id: name.to_owned(),
                video_url: format!("{}/clips/{name}", self.origin_url),
                duration_secs: Some(30.0),
                viral_score: Some(9.0),
            },
            bytes,
        )
    }

    /// A job whose clip has rendered; `schedule_at` now puts it straight on the publish queue
    /// (the table's `RenderCompleted` effect), as the Ssemble webhook would.
    pub async fn rendered_job(&self, account: &AccountId, post: PostSettings, clip: Clip) -> Job {
        self.rendered_job_at(account, post, clip, SystemClock.now())
            .await
    }

    pub async fn rendered_job_at(
        &self,
        account: &AccountId,
        post: PostSettings,
        clip: Clip,
        schedule_at: UtcTime,
    ) -> Job {
        let now = SystemClock.now();
        let applied = Job::create(
            JobId::generate(now, uuid::Uuid::new_v4().as_u128()),
            self.tenant.clone(),
            account.clone(),
            JobSource::Rendered {
                request_id: RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap(),
            },
            post,
            schedule_at,
            None,
            now,
            &policy(),
        );
        self.jobs.create(&applied, None).await.unwrap();
        let advance = usecase::advance_loaded(
            &self.jobs,
            &self.queue,
            &SystemClock,
            &policy(),
            applied.job,
            &Event::RenderCompleted { clip },
        )
        .await
        .unwrap();
        match advance {
            Advance::Moved(a) => a.job,
            other => panic!("render completion did not move the job: {other:?}"),
        }
    }

    pub async fn job(&self, id: &JobId) -> Job {
        self.jobs.get(id).await.unwrap().expect("job exists")
    }

    pub async fn account(&self, id: &AccountId) -> Account {
        self.accounts
            .get_account(&self.tenant, id)
            .await
            .unwrap()
            .expect("account exists")
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
                "job {id} is {} (wanted {state}) after {secs}s; hold {:?}, error {:?}",
                job.state,
                job.hold,
                job.last_error
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ground truth: the simulator's publishes for a creator.
    pub fn publishes(&self, open_id: &str) -> Vec<serde_json::Value> {
        self.sim.inspect()["accounts"][open_id]["posts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn publishes_for_title(&self, title: &str) -> u64 {
        self.sim.inspect()["publishes_by_title"][title]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn requests(&self, endpoint: &str) -> u64 {
        self.sim.inspect()["requests"][endpoint]
            .as_u64()
            .unwrap_or(0)
    }

    /// TikTok never had to refuse for a limit, and no account ever had two inits in flight.
    pub fn assert_limits_kept(&self) {
        let inspection = self.sim.inspect();
        assert_eq!(
            inspection["limit_violations"],
            serde_json::json!([]),
            "TikTok limits violated"
        );
        for (open_id, a) in inspection["accounts"].as_object().unwrap() {
            assert!(
                a["max_inits_in_flight"].as_u64().unwrap_or(0) <= 1,
                "{open_id} had concurrent inits"
            );
        }
    }

    /// A delivery signed with the app's client secret at `t`.
    pub fn signed(&self, t: i64, body: &str) -> String {
        reelay_tiktok::sign_webhook(&self.client_secret, t, body.as_bytes())
    }

    /// POSTs a delivery to the receiver over loopback HTTP; (status, body).
    pub async fn post_webhook(
        &self,
        signature: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}/webhooks/tiktok", self.webhook_url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(s) = signature {
            req = req.header("TikTok-Signature", s);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }
}

/// A TikTok webhook envelope (content is a JSON *string*).
pub fn envelope(event: &str, open_id: &str, content: serde_json::Value) -> String {
    serde_json::json!({
        "client_key": "sim_client_key",
        "event": event,
        "create_time": SystemClock.now().as_secs(),
        "user_openid": open_id,
        "content": content.to_string(),
    })
    .to_string()
}
