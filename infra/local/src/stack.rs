//! The whole pipeline in one process: a [`Testbed`] (resources provisioned from template.yaml,
//! the Ssemble and TikTok simulators or external upstreams) and every function's real handler
//! behind the HTTP front, two SQS event source mappings and the reconciler's schedule. Each
//! driver hands its handler the invocation's deadline: now plus the function's template timeout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::Request;
use reelay_aws::{DynamoStore, SystemClock};
use reelay_domain::ports::Clock;
use reelay_template::Provisioned;
use secrecy::SecretString;
use serde_json::json;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::kill::{self, KillSwitch, Killed};
use crate::testbed::Testbed;
use crate::wiring::{Wiring, WiringError};
use crate::{
    DriverStats, FunctionSpec, HttpFront, LocalError, LocalRuntime, Routes, Schedule, SqsDriver,
    SqsSource, Ticker,
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
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("starting a simulator: {0}")]
    Simulator(#[source] std::io::Error),
    #[error("simulator configuration: {0}")]
    SimulatorConfig(#[from] serde_json::Error),
    #[error("secrets: {0}")]
    Secret(#[from] reelay_domain::ports::SecretError),
    #[error("store: {0}")]
    Store(#[from] reelay_domain::ports::StoreError),
    #[error("local AWS endpoint: {0}")]
    Aws(String),
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
        let defaults = ssemble_sim::SimConfig::default();
        let ssemble_sim = ssemble_sim::SimConfig {
            time_scale,
            // Clips small enough to move in one chunk; the chunk rules are the client's tests.
            clip_bytes: 2 * 1024 * 1024,
            // A delivery's timeout is Ssemble's HTTP client's, in real seconds: compressed with
            // the clock it was 167 ms at ×60, under the webhook function's own time on a busy
            // machine, so nearly every webhook was delivered twice (and confirmed twice).
            webhook_timeout_secs: defaults.webhook_timeout_secs * time_scale.max(1.0),
            ..defaults
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
    pub store: DynamoStore,
    pub started: Instant,
}

/// What API Gateway answers when the function behind it crashed mid-invocation.
pub(crate) fn crashed_is_502(
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

pub(crate) fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A fresh name-safe suffix for an isolated copy of the resources.
pub fn random_suffix(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(4))
}

/// The invocation deadline a driver gives `spec`'s handler: now plus the function's timeout.
fn invocation_deadline(spec: &FunctionSpec) -> reelay_domain::UtcTime {
    SystemClock.now().plus(spec.timeout)
}

impl Stack {
    pub async fn start(options: StackOptions) -> Result<Self, StackError> {
        let bed = Testbed::start(&options).await?;
        let scale = bed.time_scale;

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
        if let Some(sim) = &bed.tiktok {
            sim.patch_config(&json!({ "webhook_url": format!("{api_base_url}/webhooks/tiktok") }))?;
        }
        let wiring = bed.wiring(api_base_url.clone(), options.kill.clone());
        let template = &bed.template;

        let mut runtime = LocalRuntime::new();
        let ssemble_hook = Arc::new(wiring.ssemble_webhook().await?);
        let tiktok_hook = Arc::new(wiring.tiktok_webhook().await?);
        let (k2, k3) = (options.kill.clone(), options.kill.clone());
        let routes = crate::ingest::route(Routes::new(), template, &wiring).await?;
        let routes = routes
            .function_from_template(template, "SsembleWebhookFunction", move |req: Request| {
                let (deps, kill) = (ssemble_hook.clone(), k2.clone());
                async move {
                    crashed_is_502(
                        kill::invoke(kill.as_ref(), "ssemble-webhook", async {
                            ssemble_webhook::handler(&*deps, req).await
                        })
                        .await,
                    )
                }
            })?
            .function_from_template(template, "TikTokWebhookFunction", move |req: Request| {
                let (deps, kill) = (tiktok_hook.clone(), k3.clone());
                async move {
                    crashed_is_502(
                        kill::invoke(kill.as_ref(), "tiktok-webhook", async {
                            tiktok_webhook::handler(&*deps, req).await
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
        let submitter = Arc::new(wiring.render_submitter().await?);
        let kill_submitter = options.kill.clone();
        let source = SqsSource::from_template(
            template,
            "RenderSubmitterFunction",
            wiring.resources.render_queue_url.clone(),
        )?
        .with_wait_time(wait);
        let spec = source.function.clone();
        let driver = SqsDriver::spawn_with(
            wiring.sqs(),
            source,
            runtime.child_token(),
            move |event: SqsEvent| {
                let (deps, kill) = (submitter.clone(), kill_submitter.clone());
                let deadline = invocation_deadline(&spec);
                async move {
                    kill::invoke(kill.as_ref(), "render-submitter", async {
                        render_submitter::handler(&*deps, event, deadline).await
                    })
                    .await
                }
            },
        )
        .await?;
        runtime.add_sqs("render-submitter", driver);

        let publisher = Arc::new(wiring.publisher().await?);
        let kill_publisher = options.kill.clone();
        let source = SqsSource::from_template(
            template,
            "PublisherFunction",
            wiring.resources.publish_queue_url.clone(),
        )?
        .with_wait_time(wait);
        let spec = source.function.clone();
        let driver = SqsDriver::spawn_with(
            wiring.sqs(),
            source,
            runtime.child_token(),
            move |event: SqsEvent| {
                let (deps, kill) = (publisher.clone(), kill_publisher.clone());
                let deadline = invocation_deadline(&spec);
                async move {
                    kill::invoke(kill.as_ref(), "publisher", async {
                        publisher::handler(&*deps, event, deadline).await
                    })
                    .await
                }
            },
        )
        .await?;
        runtime.add_sqs("publisher", driver);

        // Webhooks to the client: the table's stream and the delivery queue, one function.
        let hooks = Arc::new(wiring.client_webhooks()?);
        let source = SqsSource::from_template(
            template,
            "ClientWebhooksFunction",
            wiring.resources.webhook_queue_url.clone(),
        )?
        .with_wait_time(wait);
        let on_queue = hooks.clone();
        let driver = SqsDriver::spawn_with(
            wiring.sqs(),
            source,
            runtime.child_token(),
            move |event: SqsEvent| {
                let deps = on_queue.clone();
                async move { deps.deliveries(&event).await }
            },
        )
        .await?;
        runtime.add_sqs("client-webhooks", driver);
        let stream = crate::StreamSource {
            stream_arn: wiring.resources.table_stream_arn.clone(),
            region: crate::default_region(),
            batch_size: 100,
            idle_wait: wait,
            retry_wait: Duration::from_secs(1),
        };
        runtime.add_stream(
            "client-webhooks-stream",
            crate::StreamDriver::spawn(
                aws_sdk_dynamodbstreams::Client::new(&wiring.sdk),
                stream,
                runtime.child_token(),
                move |event: serde_json::Value| {
                    let deps = hooks.clone();
                    async move {
                        let batch = serde_json::from_value(event).map_err(|e| e.to_string())?;
                        Ok(deps.stream(&batch).await)
                    }
                },
            ),
        );

        let reconciler = Arc::new(wiring.reconciler().await?);
        let mut schedule =
            Schedule::from_template(template, "ReconcilerFunction")?.fire_immediately();
        schedule.period = options
            .reconcile_every
            .unwrap_or_else(|| schedule.period.div_f64(scale).max(Duration::from_secs(1)));
        let spec = schedule.function.clone();
        let kill_reconciler = options.kill.clone();
        runtime.add_ticker(
            "reconciler",
            Ticker::spawn_with(
                schedule,
                runtime.child_token(),
                move |_event: CloudWatchEvent| {
                    let (deps, kill) = (reconciler.clone(), kill_reconciler.clone());
                    let deadline = invocation_deadline(&spec);
                    async move {
                        let run = kill::invoke(kill.as_ref(), "reconciler", async {
                            reconciler::handler(&*deps, deadline).await
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

        info!(api = %api_base_url, table = %wiring.resources.table, "local stack up");
        Ok(Self {
            runtime,
            api_base_url,
            ssemble: bed.ssemble,
            tiktok: bed.tiktok,
            provisioned: bed.provisioned,
            store: wiring.store(),
            wiring,
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
