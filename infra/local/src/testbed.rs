//! The template's resources on the local endpoint and the two simulators, without any driver:
//! what [`crate::Stack`] starts its drivers on, and what a function's own tests run against. A
//! test fills the function's `Config` from [`Testbed::wiring`] (adjusting what it exercises),
//! builds `Deps` with the function's own `wiring::live`, and calls its `handler` directly.
//!
//! The helpers here are the few things every function suite needs: a snapshot of everything the
//! stack stores (bad input changes nothing), messages received as Lambda would get them, a TikTok
//! account connected the way OAuth leaves it, and a clip origin serving ranged bytes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use reelay_aws::{DynamoStore, DynamoTokenVault, SqsWorkQueue, SystemClock};
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::budget::Limits;
use reelay_domain::job::{Clip, PostSettings, RenderRequest};
use reelay_domain::lifecycle::Event;
use reelay_domain::ports::{
    AccountStore, Adapters, Clock, Entropy, JobStore, Ports, TokenSet, TokenVault,
};
use reelay_domain::usecase::{Advance, Core};
use reelay_domain::{AccountId, Job, JobId, JobSource, RequestId, TenantId, UtcTime};
use reelay_template::{ProvisionOptions, Provisioned, Template};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::kill::KillSwitch;
use crate::stack::{StackError, StackOptions, random_hex};
use crate::wiring::{Resources, UpstreamUrls, Wiring};

/// The workspace's template.yaml.
pub fn template_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
}

/// Resources and simulators of one isolated run (names under a random suffix).
#[derive(Debug)]
pub struct Testbed {
    pub sdk: SdkConfig,
    pub template: Template,
    pub provisioned: Provisioned,
    pub resources: Resources,
    pub upstream: UpstreamUrls,
    /// `None` when the run points at an external Ssemble.
    pub ssemble: Option<ssemble_sim::SimHandle>,
    pub tiktok: Option<tiktok_sim::SimHandle>,
    pub time_scale: f64,
    /// Reelay's upstream limits before time scaling.
    pub base_limits: Limits,
}

/// What a snapshot saw: every table item and every queue's message counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub items: Vec<String>,
    pub queues: BTreeMap<String, String>,
}

impl StackOptions {
    /// A function test's run: the workspace template, real time, fresh names, every simulator,
    /// and a visibility timeout long enough that a message returning early was sent back on
    /// purpose (a failure's retry-after, a release).
    pub fn for_tests() -> Self {
        let mut options = Self::local(template_path(), 1.0);
        options.suffix = Some(crate::stack::random_suffix("t"));
        options.visibility_timeout = Some(30);
        options
    }
}

fn local_credentials_sdk(url: &str) -> impl Future<Output = SdkConfig> {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .test_credentials()
        .region(aws_config::Region::new(crate::default_region()))
        .load()
}

impl Testbed {
    /// Starts the simulators (unless `options.upstreams` names external ones), then provisions
    /// the template with the secrets holding their credentials.
    pub async fn start(options: &StackOptions) -> Result<Self, StackError> {
        let sdk = match &options.endpoint_url {
            // A named local endpoint takes the local credentials too, whatever the env says.
            Some(url) => local_credentials_sdk(url).await,
            None => {
                if std::env::var("AWS_ENDPOINT_URL").map_or(true, |v| v.trim().is_empty()) {
                    return Err(StackError::NoEndpoint);
                }
                aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
            }
        };
        let template = Template::from_path(&options.template)?;
        let time_scale = options.time_scale.max(1.0);
        let up = &options.upstreams;

        // Upstreams first: their credentials are seeded into the secrets.
        let ssemble = match up.ssemble_api_base_url {
            Some(_) => None,
            None => Some(
                ssemble_sim::SsembleSim::start(options.ssemble_sim.clone())
                    .await
                    .map_err(StackError::Simulator)?,
            ),
        };
        let tiktok = match up.tiktok_api_base_url {
            Some(_) => None,
            None => Some(
                tiktok_sim::TikTokSim::start(options.tiktok_sim.clone())
                    .await
                    .map_err(StackError::Simulator)?,
            ),
        };
        let ssemble_url = up
            .ssemble_api_base_url
            .clone()
            .or_else(|| ssemble.as_ref().map(|s| s.base_url.clone()))
            .ok_or(StackError::Missing("a Ssemble base URL"))?;
        let tiktok_url = up
            .tiktok_api_base_url
            .clone()
            .or_else(|| tiktok.as_ref().map(|s| s.base_url.clone()))
            .ok_or(StackError::Missing("a TikTok base URL"))?;
        let upstream = UpstreamUrls {
            ssemble_api_base_url: ssemble_url,
            tiktok_auth_base_url: up
                .tiktok_auth_base_url
                .clone()
                .unwrap_or_else(|| tiktok_url.clone()),
            tiktok_api_base_url: tiktok_url,
        };
        let ssemble_key = up
            .ssemble_api_key
            .clone()
            .unwrap_or_else(|| SecretString::from(format!("sk_ssemble_{}", random_hex(16))));
        let (client_key, client_secret) = match &tiktok {
            Some(sim) => {
                let cfg = sim.config();
                (cfg.client_key, SecretString::from(cfg.client_secret))
            }
            None => (
                up.tiktok_client_key.clone().unwrap_or_default(),
                up.tiktok_client_secret
                    .clone()
                    .unwrap_or_else(|| SecretString::from(String::new())),
            ),
        };

        // The template's resources, with the secrets holding this run's credentials.
        let template_vt = template
            .queues()
            .iter()
            .map(|q| q.visibility_timeout_s())
            .max()
            .unwrap_or(60);
        let visibility = options.visibility_timeout.unwrap_or_else(|| {
            let scaled = (template_vt as f64 / time_scale).ceil() as u32;
            scaled.clamp(10, u32::try_from(template_vt).unwrap_or(u32::MAX).max(10))
        });
        let mut provision = ProvisionOptions::new("local").with_visibility_timeout(visibility);
        if let Some(suffix) = &options.suffix {
            provision = provision.with_suffix(suffix.clone());
        }
        provision.secret_values.insert(
            "SsembleSecret".into(),
            json!({ "apiKey": ssemble_key.expose_secret() }).to_string(),
        );
        provision.secret_values.insert(
            "TikTokAppSecret".into(),
            json!({ "clientKey": client_key, "clientSecret": client_secret.expose_secret() })
                .to_string(),
        );
        let provisioned = reelay_template::provision(&sdk, &template, &provision).await?;
        let resources = Resources::from_provisioned(&provisioned)?;
        Ok(Self {
            sdk,
            template,
            provisioned,
            resources,
            upstream,
            ssemble,
            tiktok,
            time_scale,
            base_limits: options.limits.clone(),
        })
    }

    /// What every function of this run is built from, Ssemble calling back to
    /// `public_base_url` (a test's own HTTP front, or a stand-in that records deliveries).
    pub fn wiring(
        &self,
        public_base_url: impl Into<String>,
        kill: Option<Arc<KillSwitch>>,
    ) -> Wiring {
        Wiring {
            sdk: self.sdk.clone(),
            resources: self.resources.clone(),
            upstream: self.upstream.clone(),
            public_base_url: public_base_url.into(),
            time_scale: self.time_scale,
            kill,
            base_limits: self.base_limits.clone(),
        }
    }

    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &self.resources.table,
        )
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// The account tokens, as the functions are wired to read them.
    pub fn vault(&self) -> DynamoTokenVault {
        self.resources.vault(&self.sdk)
    }

    /// Every item of both tables (sorted; token items as stored, encrypted) and every queue's
    /// counts, read without taking a message.
    pub async fn snapshot(&self) -> Result<Snapshot, StackError> {
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut items = Vec::new();
        for table in [&self.resources.table, &self.resources.token_table] {
            let mut start = None;
            loop {
                let out = ddb
                    .scan()
                    .table_name(table)
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| StackError::Aws(e.to_string()))?;
                for item in out.items() {
                    let sorted: BTreeMap<_, _> = item.iter().collect();
                    items.push(format!("{table} {sorted:?}"));
                }
                match out.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        items.sort();
        let sqs = self.sqs();
        let mut queues = BTreeMap::new();
        for (id, q) in &self.provisioned.queues {
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&q.url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .map_err(|e| StackError::Aws(e.to_string()))?;
            let mut counts: Vec<String> = attrs
                .attributes()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str().starts_with("ApproximateNumberOfMessages"))
                .map(|(k, v)| format!("{}={v}", k.as_str()))
                .collect();
            counts.sort();
            queues.insert(id.clone(), counts.join(","));
        }
        Ok(Snapshot { items, queues })
    }

    /// Up to `max` messages of `queue_url`, with every system attribute (as Lambda receives
    /// them), waiting up to `wait` for the first.
    pub async fn receive(
        &self,
        queue_url: &str,
        max: i32,
        wait: Duration,
    ) -> Result<Vec<Message>, StackError> {
        let out = self
            .sqs()
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| StackError::Aws(e.to_string()))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// The event Lambda would deliver for `messages`.
    pub fn sqs_event(&self, messages: &[Message]) -> SqsEvent {
        reelay_aws::sqs_event_from_received(messages, None)
    }

    /// Sends to both queues as the functions do (group = account, the caller's dedup id).
    pub fn queue(&self) -> SqsWorkQueue {
        SqsWorkQueue::new(
            self.sqs(),
            Some(self.resources.render_queue_url.clone()),
            Some(self.resources.publish_queue_url.clone()),
        )
    }

    /// One invocation as the event source mapping makes it: a batch received from `queue_url`
    /// (waiting up to `wait` for it) through `handler`, then every record not reported failed
    /// deleted. An empty receive invokes nothing.
    pub async fn deliver<F, Fut>(
        &self,
        queue_url: &str,
        wait: Duration,
        handler: F,
    ) -> Result<Delivered, StackError>
    where
        F: FnOnce(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        let messages = self.receive(queue_url, 10, wait).await?;
        if messages.is_empty() {
            return Ok(Delivered {
                messages,
                response: SqsBatchResponse::default(),
            });
        }
        let response = handler(self.sqs_event(&messages)).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let sqs = self.sqs();
        for m in &messages {
            if let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle())
                && !failed.contains(&id)
            {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| StackError::Aws(e.to_string()))?;
            }
        }
        Ok(Delivered { messages, response })
    }

    /// Connects `account` of `tenant` to the TikTok simulator's creator `open_id` as the OAuth
    /// callback leaves it: tokens in the vault, the account active with `scopes`.
    pub async fn connect_account(
        &self,
        tenant: &TenantId,
        account: &str,
        open_id: &str,
        scopes: &[&str],
    ) -> Result<AccountId, StackError> {
        let sim = self
            .tiktok
            .as_ref()
            .ok_or(StackError::Missing("the TikTok simulator"))?;
        let minted = sim.mint_tokens(open_id, scopes);
        let secret = |k: &str| {
            minted[k]
                .as_str()
                .map(|s| SecretString::from(s.to_owned()))
                .ok_or(StackError::Missing("a minted token"))
        };
        let secs = |k: &str| Duration::from_secs(minted[k].as_u64().unwrap_or(0));
        let now = SystemClock.now();
        let tokens = TokenSet {
            access_token: secret("access_token")?,
            access_expires_at: now.plus(secs("expires_in")),
            refresh_token: secret("refresh_token")?,
            refresh_expires_at: now.plus(secs("refresh_expires_in")),
            open_id: open_id.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        };
        let id =
            AccountId::parse(account).map_err(|_| StackError::Missing("a valid account id"))?;
        self.vault().put_tokens(tenant, &id, &tokens).await?;
        let mut acct = Account::new(tenant.clone(), id.clone());
        acct.open_id = Some(open_id.to_owned());
        acct.health = AccountHealth::Active;
        acct.health_reason = None;
        acct.scopes = tokens.scopes.clone();
        acct.connected_at = Some(now);
        self.store().put_account(&acct).await?;
        Ok(id)
    }
}

/// Stores a job awaiting its render, due now, and enqueues it (what the client API does).
pub async fn received_job<P: Ports>(
    core: &Core<P>,
    tenant: &TenantId,
    account: &AccountId,
    request: RenderRequest,
    post: PostSettings,
) -> Result<Job, StackError> {
    let now = core.ports.clock().now();
    let created = Job::create(
        JobId::generate(now, core.ports.clock().random_u128()),
        tenant.clone(),
        account.clone(),
        JobSource::Render(request),
        post,
        now,
        None,
        now,
        &core.settings.policy,
    );
    core.ports.jobs().create(&created, None).await?;
    core.send_effects(&created.job, &created.effects).await;
    Ok(created.job)
}

/// Stores a job whose render completed with `clip` (as the Ssemble webhook leaves it): on the
/// publish queue and `publish_queued` when `schedule_at` has come, `ready` until then.
pub async fn rendered_job<P: Ports>(
    core: &Core<P>,
    tenant: &TenantId,
    account: &AccountId,
    post: PostSettings,
    clip: Clip,
    schedule_at: UtcTime,
) -> Result<Job, StackError> {
    let now = core.ports.clock().now();
    let request_id = RequestId::parse(format!("{:024x}", core.ports.clock().random_u128() >> 32))
        .map_err(|_| StackError::Missing("a request id"))?;
    let created = Job::create(
        JobId::generate(now, core.ports.clock().random_u128()),
        tenant.clone(),
        account.clone(),
        JobSource::Rendered {
            request_id: request_id.clone(),
        },
        post,
        schedule_at,
        None,
        now,
        &core.settings.policy,
    );
    core.ports.jobs().create(&created, None).await?;
    let completed = Event::RenderCompleted { request_id, clip };
    match core.advance_loaded(created.job, &completed).await? {
        Advance::Moved(applied) => Ok(applied.job),
        _ => Err(StackError::Missing("a render completion the job accepts")),
    }
}

/// What one [`Testbed::deliver`] did.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub messages: Vec<Message>,
    pub response: SqsBatchResponse,
}

impl Delivered {
    /// The ids of the records reported failed.
    pub fn failed(&self) -> Vec<String> {
        self.response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }
}

/// The wall clock moved forward by hand: a test reaches the end of a lease or a hold without
/// sleeping through it (`Deps::map_ports` + [`with_clock`]). Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct ShiftedClock {
    offset_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl ShiftedClock {
    /// Moves this clock (and every clone) `by` further ahead of the wall clock.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> UtcTime {
        let offset = self.offset_ms.load(std::sync::atomic::Ordering::SeqCst);
        UtcTime::from_millis(SystemClock.now().as_millis().saturating_add(offset))
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

impl Entropy for ShiftedClock {
    fn random_u128(&self) -> u128 {
        SystemClock.random_u128()
    }
}

/// `ports` with another clock (Rust has no type-changing struct update yet).
pub fn with_clock<S, Q, C, V, R, T, C2>(
    ports: Adapters<S, Q, C, V, R, T>,
    clock: C2,
) -> Adapters<S, Q, C2, V, R, T> {
    Adapters {
        store: ports.store,
        queue: ports.queue,
        clock,
        vault: ports.vault,
        render: ports.render,
        tiktok: ports.tiktok,
    }
}

/// A clip origin (a CDN stand-in): HEAD for the length, GET with `Range: bytes=N-` / `N-M`.
#[derive(Debug, Clone)]
pub struct ClipOrigin {
    pub base_url: String,
    clips: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
}

impl ClipOrigin {
    pub async fn start() -> Result<Self, StackError> {
        let clips: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>> = Arc::default();
        let app = axum::Router::new()
            .route(
                "/clips/{name}",
                axum::routing::get(serve_clip).head(serve_clip),
            )
            .with_state(clips.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(StackError::Simulator)?;
        let addr = listener.local_addr().map_err(StackError::Simulator)?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error.message = %e, "clip origin stopped");
            }
        });
        Ok(Self {
            base_url: format!("http://{addr}"),
            clips,
        })
    }

    /// Serves `bytes` as `name`; the clip a job would post.
    pub fn clip(&self, name: &str, bytes: Vec<u8>) -> Clip {
        if let Ok(mut clips) = self.clips.lock() {
            clips.insert(name.to_owned(), Arc::new(bytes));
        }
        Clip {
            short_id: name.to_owned(),
            video_url: format!("{}/clips/{name}", self.base_url),
            duration_secs: Some(30.0),
            viral_score: Some(9.0),
        }
    }
}

type Clips = Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>;

async fn serve_clip(
    State(clips): State<Clips>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let data = clips.lock().ok().and_then(|c| c.get(&name).cloned());
    let Some(data) = data.filter(|d| !d.is_empty()) else {
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
            let end = match b {
                "" => total - 1,
                b => b.parse::<usize>().ok()?.min(total - 1),
            };
            Some((start, end))
        });
    let (status, start, end) = match range {
        Some((s, e)) if s <= e && s < total => (StatusCode::PARTIAL_CONTENT, s, e),
        _ => (StatusCode::OK, 0, total - 1),
    };
    let body = if method == Method::HEAD {
        axum::body::Body::empty()
    } else {
        axum::body::Body::from(data[start..=end].to_vec())
    };
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "video/mp4")
        .header("accept-ranges", "bytes")
        .header("content-length", end + 1 - start);
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header("content-range", format!("bytes {start}-{end}/{total}"));
    }
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
