//! The whole pipeline in one process: resources provisioned from template.yaml, the Ssemble and
//! TikTok simulators (or external upstreams), and the six functions' real handlers behind the
//! HTTP front, two SQS event source mappings and the reconciler's schedule.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::Request;
use reelay_aws::{DynamoAccountStore, DynamoJobStore, SecretCache};
use reelay_template::{ProvisionOptions, Provisioned, Template};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::kill::{self, KillSwitch, Killed};
use crate::wiring::{Resources, UpstreamConfig, Wiring, WiringError};
use crate::{
    DriverStats, HttpFront, LocalError, LocalRuntime, Routes, Schedule, SqsDriver, SqsSource,
    Ticker,
};

/// Why the stack could not start.
#[derive(Debug, Error)]
pub enum StackError {
    /// Never fall through to real AWS: a local run needs a local endpoint.
    #[error(
        "AWS_ENDPOINT_URL is not set: start the local endpoint first \
         (infra/scripts/aws-emulator.sh start && eval \"$(infra/scripts/aws-emulator.sh env)\")"
    )]
    NoEndpoint,
    #[error("template: {0}")]
    Template(#[from] reelay_template::TemplateError),
    #[error("provisioning: {0}")]
    Provision(#[from] reelay_template::ProvisionError),
    #[error("provisioned resources lack {0}")]
    Missing(&'static str),
    #[error("starting a simulator: {0}")]
    Simulator(#[source] std::io::Error),
    #[error("simulator configuration: {0}")]
    SimulatorConfig(#[from] serde_json::Error),
    #[error("reading a secret back: {0}")]
    Secret(#[from] reelay_domain::ports::SecretError),
    #[error(transparent)]
    Wiring(#[from] WiringError),
    #[error(transparent)]
    Local(#[from] LocalError),
}

/// Upstream base URLs; `None` starts the built-in simulator for that upstream.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    pub ssemble_api_base_url: Option<String>,
    pub tiktok_api_base_url: Option<String>,
    /// Defaults to the TikTok API base (the simulator serves both).
    pub tiktok_auth_base_url: Option<String>,
    /// Credentials for external upstreams (the simulators accept the generated ones).
    pub ssemble_api_key: Option<SecretString>,
    pub tiktok_client_key: Option<String>,
    pub tiktok_client_secret: Option<SecretString>,
}

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub template: PathBuf,
    /// Isolates names (`reelay-local-<suffix>`), so runs and tests never share state.
    pub suffix: Option<String>,
    /// Simulated seconds per real second, for the simulators and Reelay's limits alike.
    pub time_scale: f64,
    /// Where the HTTP front listens (port 0 picks a free one).
    pub http_addr: SocketAddr,
    pub upstreams: Upstreams,
    pub ssemble_sim: ssemble_sim::SimConfig,
    pub tiktok_sim: tiktok_sim::SimConfig,
    /// Reconciler tick; default: the template's rate divided by `time_scale` (at least 1 s).
    pub reconcile_every: Option<Duration>,
    /// Queue visibility timeout; default: the template's divided by `time_scale` (at least 10 s),
    /// so a failed record comes back within a scaled run.
    pub visibility_timeout: Option<u32>,
    /// Reelay's upstream limits before time scaling; keep them in step with the simulators'
    /// (`ssemble_sim.tier` for Ssemble's account caps).
    pub limits: reelay_domain::budget::Limits,
    /// Crashes at step boundaries (see [`crate::kill`]); `None` changes nothing.
    pub kill: Option<Arc<KillSwitch>>,
    /// The local AWS endpoint; `None` reads `AWS_ENDPOINT_URL` (a campaign runs its own).
    pub endpoint_url: Option<String>,
}

impl StackOptions {
    /// Defaults for a local run: simulators on a clock `time_scale` times faster, free ports.
    pub fn local(template: impl Into<PathBuf>, time_scale: f64) -> Self {
        let ssemble_sim = ssemble_sim::SimConfig {
            time_scale,
            // Clips small enough to move in one chunk; the chunk rules are the client's tests.
            clip_bytes: 2 * 1024 * 1024,
            ..ssemble_sim::SimConfig::default()
        };
        let tiktok_sim = tiktok_sim::SimConfig {
            time_scale,
            ..tiktok_sim::SimConfig::default()
        };
        Self {
            template: template.into(),
            suffix: None,
            time_scale,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstreams: Upstreams::default(),
            ssemble_sim,
            tiktok_sim,
            reconcile_every: None,
            visibility_timeout: None,
            limits: reelay_domain::budget::Limits::default(),
            kill: None,
            endpoint_url: None,
        }
    }
}

/// A running stack. [`Stack::shutdown`] stops the drivers; the simulators stop when dropped.
#[derive(Debug)]
pub struct Stack {
    runtime: LocalRuntime,
    /// `http://127.0.0.1:PORT`: the client API, the webhooks and the OAuth callback.
    pub api_base_url: String,
    pub ssemble: Option<ssemble_sim::SimHandle>,
    pub tiktok: Option<tiktok_sim::SimHandle>,
    pub provisioned: Provisioned,
    pub wiring: Wiring,
    /// Direct store access for seeding, progress and summaries (not for moving jobs).
    pub jobs: DynamoJobStore,
    pub accounts: DynamoAccountStore,
    pub started: Instant,
}

/// What API Gateway answers when the function behind it crashed mid-invocation.
fn crashed_is_502(
    run: Result<lambda_http::Response<lambda_http::Body>, Killed>,
) -> lambda_http::Response<lambda_http::Body> {
    run.unwrap_or_else(|_| {
        let mut resp = lambda_http::Response::new(lambda_http::Body::from(
            r#"{"message":"Internal Server Error"}"#,
        ));
        *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
        resp
    })
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A fresh name-safe suffix for an isolated copy of the resources.
pub fn random_suffix(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(4))
}

impl Stack {
    pub async fn start(options: StackOptions) -> Result<Self, StackError> {
        let sdk = match &options.endpoint_url {
            Some(url) => {
                // A named local endpoint takes the local credentials too, whatever the env says.
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .endpoint_url(url)
                    .test_credentials()
                    .region(aws_config::Region::new(crate::default_region()))
                    .load()
                    .await
            }
            None => {
                if std::env::var("AWS_ENDPOINT_URL").map_or(true, |v| v.trim().is_empty()) {
                    return Err(StackError::NoEndpoint);
                }
                aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
            }
        };
        let template = Template::from_path(&options.template)?;
        let scale = options.time_scale.max(1.0);

        // Upstreams first: their credentials are seeded into the secrets.
        let ssemble = match options.upstreams.ssemble_api_base_url {
            Some(_) => None,
            None => Some(
                ssemble_sim::SsembleSim::start(options.ssemble_sim.clone())
                    .await
                    .map_err(StackError::Simulator)?,
            ),
        };
        let tiktok = match options.upstreams.tiktok_api_base_url {
            Some(_) => None,
            None => Some(
                tiktok_sim::TikTokSim::start(options.tiktok_sim.clone())
                    .await
                    .map_err(StackError::Simulator)?,
            ),
        };
        let ssemble_url = options
            .upstreams
            .ssemble_api_base_url
            .clone()
            .or_else(|| ssemble.as_ref().map(|s| s.base_url.clone()))
            .ok_or(StackError::Missing("a Ssemble base URL"))?;
        let tiktok_url = options
            .upstreams
            .tiktok_api_base_url
            .clone()
            .or_else(|| tiktok.as_ref().map(|s| s.base_url.clone()))
            .ok_or(StackError::Missing("a TikTok base URL"))?;
        let tiktok_auth_url = options
            .upstreams
            .tiktok_auth_base_url
            .clone()
            .unwrap_or_else(|| tiktok_url.clone());
        let ssemble_key = options
            .upstreams
            .ssemble_api_key
            .clone()
            .unwrap_or_else(|| SecretString::from(format!("sk_ssemble_{}", random_hex(16))));
        let (client_key, client_secret) = match &tiktok {
            Some(sim) => {
                let cfg = sim.config();
                (cfg.client_key, SecretString::from(cfg.client_secret))
            }
            None => (
                options
                    .upstreams
                    .tiktok_client_key
                    .clone()
                    .unwrap_or_default(),
                options
                    .upstreams
                    .tiktok_client_secret
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
            let scaled = (template_vt as f64 / scale).ceil() as u32;
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
        let table = provisioned
            .table("Table")
            .ok_or(StackError::Missing("Table"))?
            .name
            .clone();
        let render_queue_url = provisioned
            .queue("RenderQueue")
            .ok_or(StackError::Missing("RenderQueue"))?
            .url
            .clone();
        let publish_queue_url = provisioned
            .queue("PublishQueue")
            .ok_or(StackError::Missing("PublishQueue"))?
            .url
            .clone();
        let token_secret_prefix = provisioned
            .env_var("TIKTOK_TOKEN_SECRET_PREFIX")
            .ok_or(StackError::Missing("TIKTOK_TOKEN_SECRET_PREFIX"))?
            .to_owned();
        let ssemble_secret_id = provisioned
            .secret("SsembleSecret")
            .ok_or(StackError::Missing("SsembleSecret"))?
            .arn
            .clone();
        let tiktok_secret_id = provisioned
            .secret("TikTokAppSecret")
            .ok_or(StackError::Missing("TikTokAppSecret"))?
            .arn
            .clone();

        // The functions read their credentials back from Secrets Manager, as on AWS.
        let cache = SecretCache::from_sdk(&sdk, Duration::from_secs(300));
        let ssemble_secret = cache.ssemble(&ssemble_secret_id).await?;
        let app_secret = cache.tiktok_app(&tiktok_secret_id).await?;

        // Bind first: the OAuth redirect and Ssemble's webhook URL name this address.
        let listener = tokio::net::TcpListener::bind(options.http_addr)
            .await
            .map_err(|source| LocalError::Bind {
                addr: options.http_addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| LocalError::Bind {
            addr: options.http_addr.to_string(),
            source,
        })?;
        let api_base_url = format!("http://{addr}");
        if let Some(sim) = &tiktok {
            sim.patch_config(&json!({ "webhook_url": format!("{api_base_url}/webhooks/tiktok") }))?;
        }

        let wiring = Wiring {
            dynamo: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            resources: Resources {
                table: table.clone(),
                render_queue_url: render_queue_url.clone(),
                publish_queue_url: publish_queue_url.clone(),
                token_secret_prefix,
            },
            upstream: UpstreamConfig {
                ssemble_api_base_url: ssemble_url,
                ssemble_api_key: ssemble_secret.api_key,
                tiktok_api_base_url: tiktok_url,
                tiktok_auth_base_url: tiktok_auth_url,
                tiktok_client_key: app_secret.client_key,
                tiktok_client_secret: app_secret.client_secret,
            },
            public_base_url: api_base_url.clone(),
            time_scale: scale,
            base_limits: options.limits,
            kill: options.kill.clone(),
        };

        let mut runtime = LocalRuntime::new();
        let ingest = Arc::new(wiring.ingest()?);
        let ssemble_hook = Arc::new(wiring.ssemble_webhook()?);
        let tiktok_hook = Arc::new(wiring.tiktok_webhook());
        let (k1, k2, k3) = (
            options.kill.clone(),
            options.kill.clone(),
            options.kill.clone(),
        );
        let routes = Routes::new()
            .function_from_template(&template, "IngestApiFunction", move |req: Request| {
                let (deps, kill) = (ingest.clone(), k1.clone());
                async move {
                    crashed_is_502(
                        kill::invoke(kill.as_ref(), "ingest-api", async {
                            ingest_api::function_handler(&*deps, req).await
                        })
                        .await,
                    )
                }
            })?
            .function_from_template(&template, "SsembleWebhookFunction", move |req: Request| {
                let (deps, kill) = (ssemble_hook.clone(), k2.clone());
                async move {
                    crashed_is_502(
                        kill::invoke(kill.as_ref(), "ssemble-webhook", async {
                            ssemble_webhook::function_handler(&*deps, req).await
                        })
                        .await,
                    )
                }
            })?
            .function_from_template(&template, "TikTokWebhookFunction", move |req: Request| {
                let (deps, kill) = (tiktok_hook.clone(), k3.clone());
                async move {
                    crashed_is_502(
                        kill::invoke(kill.as_ref(), "tiktok-webhook", async {
                            tiktok_webhook::function_handler(&*deps, req).await
                        })
                        .await,
                    )
                }
            })?;
        runtime.add_http(
            "api",
            HttpFront::serve(listener, routes, runtime.child_token())?,
        );

        let wait = Duration::from_millis(500);
        let submitter = Arc::new(wiring.render_submitter()?);
        let kill_submitter = options.kill.clone();
        let source =
            SqsSource::from_template(&template, "RenderSubmitterFunction", render_queue_url)?
                .with_wait_time(wait);
        let driver = SqsDriver::spawn_with(
            wiring.sqs.clone(),
            source,
            runtime.child_token(),
            move |event: SqsEvent| {
                let (deps, kill) = (submitter.clone(), kill_submitter.clone());
                async move {
                    kill::invoke(kill.as_ref(), "render-submitter", async {
                        render_submitter::function_handler(&*deps, event).await
                    })
                    .await
                }
            },
        )
        .await?;
        runtime.add_sqs("render-submitter", driver);

        let publisher = Arc::new(wiring.publisher()?);
        let kill_publisher = options.kill.clone();
        let source = SqsSource::from_template(&template, "PublisherFunction", publish_queue_url)?
            .with_wait_time(wait);
        let driver = SqsDriver::spawn_with(
            wiring.sqs.clone(),
            source,
            runtime.child_token(),
            move |event: SqsEvent| {
                let (deps, kill) = (publisher.clone(), kill_publisher.clone());
                async move {
                    kill::invoke(kill.as_ref(), "publisher", async {
                        publisher::function_handler(&*deps, event).await
                    })
                    .await
                }
            },
        )
        .await?;
        runtime.add_sqs("publisher", driver);

        let reconciler = Arc::new(wiring.reconciler()?);
        let mut schedule =
            Schedule::from_template(&template, "ReconcilerFunction")?.fire_immediately();
        schedule.period = options
            .reconcile_every
            .unwrap_or_else(|| schedule.period.div_f64(scale).max(Duration::from_secs(1)));
        let timeout = schedule.function.timeout;
        let kill_reconciler = options.kill.clone();
        runtime.add_ticker(
            "reconciler",
            Ticker::spawn_with(
                schedule,
                runtime.child_token(),
                move |_event: CloudWatchEvent| {
                    let (deps, kill) = (reconciler.clone(), kill_reconciler.clone());
                    async move {
                        let run = kill::invoke(kill.as_ref(), "reconciler", async {
                            reconciler::function_handler(&*deps, Instant::now() + timeout).await
                        })
                        .await;
                        match run {
                            Ok(report) => tracing::debug!(
                                due = report.due,
                                moved = report.moved,
                                "reconciler tick"
                            ),
                            // The run just ends, as a crashed scheduled invocation does.
                            Err(killed) => {
                                tracing::debug!(point = %killed.point, "reconciler tick killed")
                            }
                        }
                    }
                },
            ),
        );

        info!(api = %api_base_url, table = %table, "local stack up");
        let jobs = DynamoJobStore::new(wiring.dynamo.clone(), &table);
        let accounts = DynamoAccountStore::new(wiring.dynamo.clone(), &table);
        Ok(Self {
            runtime,
            api_base_url,
            ssemble,
            tiktok,
            provisioned,
            wiring,
            jobs,
            accounts,
            started: Instant::now(),
        })
    }

    /// Every driver's counters (requests, batches, ticks).
    pub fn driver_stats(&self) -> Vec<(String, DriverStats)> {
        self.runtime.stats()
    }

    /// Cancelled on shutdown (or Ctrl-C in [`Stack::serve_until_ctrl_c`]).
    pub fn token(&self) -> CancellationToken {
        self.runtime.token()
    }

    /// Stops every driver, letting in-flight invocations finish.
    pub async fn shutdown(self) -> Result<(), LocalError> {
        self.runtime.shutdown().await
    }

    pub async fn serve_until_ctrl_c(self) -> Result<(), LocalError> {
        self.runtime.run_until_ctrl_c().await
    }
}
