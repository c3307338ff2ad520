//! Cold start and footprint: each release `bootstrap` started as Lambda starts it, against a
//! stand-in Runtime API that notes when the first `GET /2018-06-01/runtime/invocation/next`
//! arrives. Process start → first poll is the init phase Lambda bills and the client waits for.
//! Runs interleave the binaries (hello-world baseline included), so machine noise lands on all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::routing::{get, post};
use reelay_template::{ProvisionOptions, Template};
use serde_json::json;
use tokio::sync::Notify;

use crate::procfs::{mib, vm_hwm_kib};
use crate::report::{Row, Verdict};

/// The six functions: (bootstrap directory name, template logical id).
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("ingest-api", "IngestApiFunction"),
    ("render-submitter", "RenderSubmitterFunction"),
    ("ssemble-webhook", "SsembleWebhookFunction"),
    ("tiktok-webhook", "TikTokWebhookFunction"),
    ("publisher", "PublisherFunction"),
    ("reconciler", "ReconcilerFunction"),
    ("client-webhooks", "ClientWebhooksFunction"),
];
pub const BASELINE: &str = "hello-lambda";

/// Goal from the issue: bootstrap ≤ 10 MB (taken as 10^7 bytes, the stricter reading).
const MAX_BOOTSTRAP_BYTES: u64 = 10_000_000;
/// Goal from the issue: init ≤ 1.5 × the hello-world's.
const MAX_INIT_RATIO: f64 = 1.5;

#[derive(Debug, Clone)]
pub struct Options {
    /// Directory holding `<name>/bootstrap` (cargo-lambda's layout).
    pub bootstraps: PathBuf,
    pub runs: usize,
    pub template: PathBuf,
}

#[derive(Debug, Default)]
struct Sample {
    init: Vec<Duration>,
    rss_kib: Vec<u64>,
    failures: Vec<String>,
    /// Each run's split, read from the function's own cold-start log lines.
    splits: Vec<Split>,
}

/// One run's init, split by what the function logged (`reelay_aws::InitPhases` and the secret
/// cache's `secret fetched`): milliseconds per phase in `main`, the secret fetches inside
/// `wiring`, and what is left outside `main` (exec, loader, the tokio runtime's start, and
/// `ready → first poll`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub phases: Vec<(String, f64)>,
    pub main_ms: f64,
    pub secret_fetches_ms: Vec<f64>,
}

impl Split {
    /// Reads the split from a function's stdout (Lambda's JSON log format); `None` when the
    /// function logged no cold-start line (the hello-world).
    pub fn from_log(log: &str) -> Option<Self> {
        let mut split: Option<Split> = None;
        let mut fetches = Vec::new();
        for line in log.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let fields = v.get("fields").unwrap_or(&v);
            match fields.get("message").and_then(|m| m.as_str()) {
                Some("cold start: ready for the first event") => {
                    let phases = fields
                        .get("init.phases_ms")
                        .and_then(|p| p.as_str())
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|kv| {
                            let (k, ms) = kv.split_once('=')?;
                            Some((k.to_owned(), ms.parse::<f64>().ok()?))
                        })
                        .collect();
                    let main_ms = fields.get("init.total_ms").and_then(|t| t.as_f64())?;
                    split = Some(Split {
                        phases,
                        main_ms,
                        secret_fetches_ms: Vec::new(),
                    });
                }
                Some("secret fetched") => {
                    if let Some(ms) = fields.get("secret.fetch_ms").and_then(|t| t.as_f64()) {
                        fetches.push(ms);
                    }
                }
                _ => {}
            }
        }
        split.map(|s| Split {
            secret_fetches_ms: fetches,
            ..s
        })
    }
}

/// A stand-in Runtime API: records the first `next` poll. Without an event it holds that poll
/// open, which is what a cold, idle function sees; with one it hands the event over once and
/// records when the function answers it (`…/response` or `…/error`).
struct RuntimeApi {
    addr: SocketAddr,
    first_poll: Arc<Mutex<Option<Instant>>>,
    polled: Arc<Notify>,
    answered: Arc<Mutex<Option<(Instant, bool)>>>,
    answer: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    async fn start(event: Option<serde_json::Value>) -> anyhow::Result<Self> {
        let first_poll: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let polled = Arc::new(Notify::new());
        let answered: Arc<Mutex<Option<(Instant, bool)>>> = Arc::new(Mutex::new(None));
        let answer = Arc::new(Notify::new());
        let event = Arc::new(Mutex::new(event));
        let (fp, n) = (first_poll.clone(), polled.clone());
        let (a, an) = (answered.clone(), answer.clone());
        let (a2, an2) = (answered.clone(), answer.clone());
        let app = axum::Router::new()
            .route(
                "/2018-06-01/runtime/invocation/next",
                get(move || {
                    let (fp, n, event) = (fp.clone(), n.clone(), event.clone());
                    async move {
                        let now = Instant::now();
                        if let Ok(mut g) = fp.lock() {
                            g.get_or_insert(now);
                        }
                        n.notify_one();
                        let pending = event.lock().ok().and_then(|mut e| e.take());
                        match pending {
                            Some(event) => invocation(&event),
                            // Never answer: the function waits here until killed.
                            None => std::future::pending().await,
                        }
                    }
                }),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(move || noted(a.clone(), an.clone(), true)),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(move || noted(a2.clone(), an2.clone(), false)),
            );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            first_poll,
            polled,
            answered,
            answer,
            task,
        })
    }
}

/// The `next` answer carrying `event`, with the headers the runtime client requires.
fn invocation(event: &serde_json::Value) -> axum::response::Response {
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        + 30_000;
    axum::response::Response::builder()
        .header("lambda-runtime-aws-request-id", "bench-first-invocation")
        .header("lambda-runtime-deadline-ms", deadline.to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:000000000000:function:bench",
        )
        .header(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000",
        )
        .header("content-type", "application/json")
        .body(axum::body::Body::from(event.to_string()))
        .unwrap_or_default()
}

async fn noted(
    answered: Arc<Mutex<Option<(Instant, bool)>>>,
    answer: Arc<Notify>,
    ok: bool,
) -> axum::http::StatusCode {
    if let Ok(mut g) = answered.lock() {
        g.get_or_insert((Instant::now(), ok));
    }
    answer.notify_one();
    axum::http::StatusCode::ACCEPTED
}

/// What [`first_event`] hands each function, for the report.
const FIRST_EVENTS: &[(&str, &str)] = &[
    (
        "ingest-api",
        "GET /v1/jobs with an unknown API key (one key read, 401)",
    ),
    (
        "render-submitter",
        "a render message for a job that does not exist (one job read)",
    ),
    (
        "ssemble-webhook",
        "a webhook for a job that does not exist (one job read)",
    ),
    (
        "tiktok-webhook",
        "an unsigned webhook (refused before any I/O)",
    ),
    (
        "publisher",
        "a publish message for a job that does not exist (one job read)",
    ),
    (
        "reconciler",
        "a scheduled tick on an empty table (the due index's queries)",
    ),
    (
        "client-webhooks",
        "a stream record of no interest (decoded and skipped, no I/O)",
    ),
];

/// The first event each function gets in the first-invocation runs: one that makes it do what
/// a real first call does where that is possible without state (a store read, the reconciler's
/// due queries), answered `None` for names it does not know.
fn first_event(name: &str) -> Option<serde_json::Value> {
    let job = reelay_domain::JobId::generate(reelay_domain::UtcTime::from_millis(0), 7);
    let sqs = |kind: &str| {
        json!({"Records": [{
            "messageId": "bench-1",
            "receiptHandle": "bench-receipt",
            "body": json!({"v": 1, "kind": kind, "jobId": job.as_str(), "tenantId": "tenant_bench",
                "accountId": "acct_bench", "jobVersion": 1}).to_string(),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0",
                "MessageGroupId": "acct_bench", "MessageDeduplicationId": "bench-1",
                "SequenceNumber": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench.fifo",
            "awsRegion": "us-east-1"
        }]})
    };
    let http = |method: &str, path: &str, headers: serde_json::Value, body: &str| {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": headers, "body": body, "isBase64Encoded": false,
            "requestContext": {"accountId": "000000000000", "apiId": "bench",
                "domainName": "localhost", "domainPrefix": "bench",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1", "userAgent": "bench"},
                "requestId": "bench-1", "routeKey": "$default", "stage": "$default",
                "time": "04/Dec/2026:05:00:00 +0000", "timeEpoch": 0}
        })
    };
    Some(match name {
        // An unknown key: one API-key read, then 401.
        "ingest-api" => http(
            "GET",
            "/v1/jobs",
            json!({"authorization": "Bearer rk_bench_unknown_key", "host": "localhost"}),
            "",
        ),
        // A job that does not exist: one job read, then the answer.
        "ssemble-webhook" => http(
            "POST",
            &format!("/webhooks/ssemble/{}.{}", job.as_str(), "0".repeat(32)),
            json!({"content-type": "application/json", "host": "localhost"}),
            r#"{"event":"shorts.completed","requestId":"665a1b2c3d4e5f6a7b8c9d0e"}"#,
        ),
        // Unsigned: refused before any I/O.
        "tiktok-webhook" => http(
            "POST",
            "/webhooks/tiktok",
            json!({"content-type": "application/json", "host": "localhost"}),
            r#"{"event":"post.publish.complete"}"#,
        ),
        "render-submitter" => sqs("render"),
        "publisher" => sqs("publish"),
        // A tick on an empty table: the due index's queries.
        "reconciler" => json!({"version": "0", "id": "bench", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000", "time": "2026-12-04T05:00:00Z",
            "region": "us-east-1", "resources": [], "detail": {}}),
        // A stream record of no interest to it: decoded and skipped.
        "client-webhooks" => json!({"Records": [{
            "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"Keys": {"pk": {"S": "BENCH"}, "sk": {"S": "BENCH"}},
                "NewImage": {"pk": {"S": "BENCH"}, "sk": {"S": "BENCH"}},
                "SequenceNumber": "1", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/bench/stream/1"
        }]}),
        _ => return None,
    })
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The environment Lambda gives every function, plus the local endpoint's AWS settings.
fn lambda_env(name: &str, runtime_api: SocketAddr) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k == "PATH")
        .collect();
    env.extend(
        [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", format!("reelay-bench-{name}")),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            // The template's LoggingConfig (LogFormat: JSON, ApplicationLogLevel: INFO).
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
            ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// `bootstrap` as Lambda starts it against `api`: Lambda's and the function's environment only,
/// stdout and stderr into `log`.
fn bootstrap_command(
    bootstrap: &Path,
    name: &str,
    api: &RuntimeApi,
    function_env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<tokio::process::Command> {
    let mut env = lambda_env(name, api.addr);
    env.extend(function_env.iter().cloned());
    if !env.iter().any(|(k, _)| k == "RUST_LOG") {
        env.push(("RUST_LOG".into(), "info".into()));
    }
    let log_file = std::fs::File::create(log).with_context(|| format!("creating {log:?}"))?;
    let err_file = log_file.try_clone()?;
    let mut cmd = tokio::process::Command::new(bootstrap);
    cmd.env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(err_file))
        .kill_on_drop(true);
    Ok(cmd)
}

async fn one_run(
    bootstrap: &Path,
    name: &str,
    function_env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<(Duration, u64)> {
    let api = RuntimeApi::start(None).await?;
    let mut cmd = bootstrap_command(bootstrap, name, &api, function_env, log)?;
    let polled = api.polled.notified();
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {bootstrap:?}"))?;
    let pid = child.id().context("child has no pid")?;
    tokio::select! {
        _ = polled => {}
        status = child.wait() => {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = tail.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            anyhow::bail!("{name} exited before polling ({status:?}): {tail}");
        }
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            anyhow::bail!("{name} did not poll within 30 s");
        }
    }
    let first = api
        .first_poll
        .lock()
        .ok()
        .and_then(|g| *g)
        .context("poll noted without a time")?;
    // Peak RSS of the whole init, read while the process sits in its first poll.
    let rss = vm_hwm_kib(pid).unwrap_or(0);
    child.kill().await.ok();
    Ok((first.saturating_duration_since(started), rss))
}

/// The split's row: each phase's median, the secret fetches' (summed per run) and what lies
/// outside `main`; the verdict is issue 13's goal, init ≤ 2 × hello-world + one round trip.
fn split_row(name: &str, splits: &[Split], init: Duration, base: Goal) -> Row {
    let init_ms = init.as_secs_f64() * 1e3;
    let goal_ms = 2.0 * base.hello_ms + base.round_trip_ms;
    let goal = format!(
        "≤ 2 × hello + 1 round trip = {goal_ms:.1} ms (round trip {:.2} ms)",
        base.round_trip_ms
    );
    if splits.is_empty() {
        return Row::new(
            format!("4 cold start split: {name}"),
            "no cold-start line in the function's log".to_owned(),
            goal,
            Verdict::Missed,
            String::new(),
        );
    }
    let med = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut parts = Vec::new();
    if let Some(first) = splits.first() {
        for (phase, _) in &first.phases {
            let ms = med(splits
                .iter()
                .filter_map(|s| s.phases.iter().find(|(p, _)| p == phase).map(|(_, ms)| *ms))
                .collect());
            parts.push(format!("{phase} {ms:.1}"));
        }
    }
    let main_ms = med(splits.iter().map(|s| s.main_ms).collect());
    let fetches = splits
        .iter()
        .map(|s| s.secret_fetches_ms.len())
        .max()
        .unwrap_or(0);
    let fetch_ms = med(splits
        .iter()
        .map(|s| s.secret_fetches_ms.iter().sum())
        .collect());
    Row::new(
        format!("4 cold start split: {name}"),
        format!(
            "outside main {:.1} ms + main {main_ms:.1} ms ({}); {fetches} secret fetches, {fetch_ms:.1} ms summed (inside wiring)",
            (init_ms - main_ms).max(0.0),
            parts.join(", ")
        ),
        goal,
        Verdict::of(init_ms <= goal_ms),
        "medians, ms; outside main = spawn → first poll − main's own total (exec, loader, the \
         tokio runtime; ready → poll)"
            .to_owned(),
    )
}

/// What issue 13's cold-start goal is measured against.
#[derive(Debug, Clone, Copy)]
struct Goal {
    hello_ms: f64,
    round_trip_ms: f64,
}

/// One round trip to the AWS endpoint: the median of warm `GetSecretValue` calls from here.
async fn round_trip(secret_id: &str) -> anyhow::Result<Duration> {
    let sdk = reelay_aws::load_sdk_config().await?;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let mut times = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await?;
        times.push(t.elapsed());
    }
    // The first call opens the connection; the rest are the round trip alone.
    Ok(median(&mut times[1..]))
}

/// One start handed [`first_event`]: time from that event leaving the Runtime API to the
/// function's answer, and whether it answered with a result (not an error).
async fn first_invocation(
    bootstrap: &Path,
    name: &str,
    function_env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<(Duration, bool)> {
    let event = first_event(name).with_context(|| format!("no first event for {name}"))?;
    let api = RuntimeApi::start(Some(event)).await?;
    let mut cmd = bootstrap_command(bootstrap, name, &api, function_env, log)?;
    let answer = api.answer.notified();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {bootstrap:?}"))?;
    tokio::select! {
        _ = answer => {}
        status = child.wait() => anyhow::bail!("{name} exited before answering ({status:?})"),
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            anyhow::bail!("{name} did not answer its first event within 30 s");
        }
    }
    child.kill().await.ok();
    let served = api
        .first_poll
        .lock()
        .ok()
        .and_then(|g| *g)
        .context("no poll noted")?;
    let (at, ok) = api
        .answered
        .lock()
        .ok()
        .and_then(|g| *g)
        .context("no answer noted")?;
    Ok((at.saturating_duration_since(served), ok))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[v.len() / 2]
}

/// Provisions this benchmark's resources (a name suffix of its own) and returns each function's
/// resolved environment.
async fn function_envs(template: &Path) -> anyhow::Result<BTreeMap<String, Vec<(String, String)>>> {
    let sdk = reelay_aws::load_sdk_config().await?;
    let template = Template::from_path(template)?;
    let mut opts =
        ProvisionOptions::new("local").with_suffix(format!("micro{:08x}", rand_suffix()));
    opts.secret_values.insert(
        "SsembleSecret".into(),
        json!({"apiKey": "sk_ssemble_benchmicro"}).to_string(),
    );
    opts.secret_values.insert(
        "TikTokAppSecret".into(),
        json!({"clientKey": "bench_client", "clientSecret": "bench_secret"}).to_string(),
    );
    let provisioned = reelay_template::provision(&sdk, &template, &opts).await?;
    let mut out = BTreeMap::new();
    for (name, id) in FUNCTIONS {
        let env = provisioned
            .function_env(id)
            .with_context(|| format!("{id} has no environment in the template"))?;
        let mut env = env.to_vec();
        // Resolves only on AWS (the HTTP API's URL); the functions that need it get a local one.
        if !env.iter().any(|(k, _)| k == "PUBLIC_BASE_URL") {
            env.push(("PUBLIC_BASE_URL".into(), "http://127.0.0.1:3000".into()));
        }
        out.insert((*name).to_owned(), env);
    }
    out.insert(BASELINE.to_owned(), Vec::new());
    Ok(out)
}

pub fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Row>> {
    let mut envs = function_envs(&opts.template).await?;
    // The one variable passed through from the bench's own environment: `AWS_TLS_ROOTS=platform`
    // times the SDK's platform trust store against the default compiled-in Amazon roots.
    if let Ok(roots) = std::env::var("AWS_TLS_ROOTS") {
        for env in envs.values_mut() {
            env.push(("AWS_TLS_ROOTS".to_owned(), roots.clone()));
        }
    }
    let names: Vec<&str> = std::iter::once(BASELINE)
        .chain(FUNCTIONS.iter().map(|(n, _)| *n))
        .collect();
    let mut samples: BTreeMap<&str, Sample> = BTreeMap::new();
    let logs = std::env::temp_dir().join(format!("reelay-bench-coldstart-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    for (name, _) in names.iter().map(|n| (*n, ())) {
        let path = opts.bootstraps.join(name).join("bootstrap");
        anyhow::ensure!(
            path.exists(),
            "no bootstrap at {path:?} (build it first, see README)"
        );
    }
    for round in 0..opts.runs {
        for name in &names {
            let path = opts.bootstraps.join(name).join("bootstrap");
            let env = envs.get(*name).cloned().unwrap_or_default();
            let log = logs.join(format!("{name}-{round}.log"));
            let s = samples.entry(name).or_default();
            match one_run(&path, name, &env, &log).await {
                Ok((init, rss)) => {
                    s.init.push(init);
                    s.rss_kib.push(rss);
                    if let Some(split) = std::fs::read_to_string(&log)
                        .ok()
                        .and_then(|l| Split::from_log(&l))
                    {
                        s.splits.push(split);
                    }
                }
                Err(e) => s.failures.push(e.to_string()),
            }
        }
        tracing::info!(round, "cold start round done");
    }

    // One more start per function, its AWS endpoint behind the metering proxy (not timed: the
    // proxy adds a hop): what the init asks of AWS before it can poll.
    let mut init_calls: BTreeMap<&str, String> = BTreeMap::new();
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
        let proxy = crate::meter::MeterProxy::start(&endpoint).await?;
        for (name, _) in FUNCTIONS {
            let path = opts.bootstraps.join(name).join("bootstrap");
            let mut env = envs.get(*name).cloned().unwrap_or_default();
            env.push(("AWS_ENDPOINT_URL".into(), proxy.url.clone()));
            let before = proxy.snapshot();
            let log = logs.join(format!("{name}-metered.log"));
            if one_run(&path, name, &env, &log).await.is_ok() {
                let d = proxy.snapshot().since(&before);
                let calls: Vec<String> = d
                    .ops
                    .iter()
                    .filter(|(k, _)| !k.contains('@'))
                    .map(|(k, v)| format!("{k} ×{}", v.requests))
                    .collect();
                init_calls.insert(
                    name,
                    if calls.is_empty() {
                        "none".into()
                    } else {
                        calls.join(", ")
                    },
                );
            }
        }
    }

    // The first invocation after each cold start, a few interleaved rounds: the event leaves
    // the Runtime API → the function's answer (what the init's first caller waits on top).
    let mut first: BTreeMap<&str, (Vec<Duration>, Vec<String>)> = BTreeMap::new();
    for round in 0..opts.runs.clamp(1, 7) {
        for (name, _) in FUNCTIONS {
            let path = opts.bootstraps.join(name).join("bootstrap");
            let env = envs.get(*name).cloned().unwrap_or_default();
            let log = logs.join(format!("{name}-first-{round}.log"));
            let entry = first.entry(name).or_default();
            match first_invocation(&path, name, &env, &log).await {
                Ok((d, true)) => entry.0.push(d),
                Ok((d, false)) => {
                    entry.0.push(d);
                    entry.1.push("answered with an error".into());
                }
                Err(e) => entry.1.push(e.to_string()),
            }
        }
    }

    let mut base = samples.remove(BASELINE).unwrap_or_default();
    let base_init = median(&mut base.init);
    let base_size = std::fs::metadata(opts.bootstraps.join(BASELINE).join("bootstrap"))?.len();
    let base_rss = base.rss_kib.iter().copied().max().unwrap_or(0);
    let secret_id = envs
        .values()
        .flatten()
        .find(|(k, _)| k.ends_with("_SECRET_ID"))
        .map(|(_, v)| v.clone())
        .context("no function reads a secret")?;
    let round_trip = Goal {
        hello_ms: base_init.as_secs_f64() * 1e3,
        round_trip_ms: round_trip(&secret_id).await?.as_secs_f64() * 1e3,
    };
    let params = format!(
        "median of {} runs, interleaved; {}/<fn>/bootstrap; stand-in Runtime API on localhost; init reads secrets from MiniStack",
        opts.runs,
        opts.bootstraps.display()
    );
    let mut rows = vec![Row::info(
        "4 cold start: hello-world",
        format!(
            "init {:.1} ms, bootstrap {:.2} MB, peak RSS {:.1} MiB",
            base_init.as_secs_f64() * 1e3,
            base_size as f64 / 1e6,
            mib(base_rss)
        ),
        format!("baseline (lambda_runtime + tracing, same profile); {params}"),
    )];
    for (name, _) in FUNCTIONS {
        let mut s = samples.remove(name).unwrap_or_default();
        let size = std::fs::metadata(opts.bootstraps.join(name).join("bootstrap"))?.len();
        if s.init.is_empty() {
            rows.push(Row::new(
                format!("4 cold start: {name}"),
                format!(
                    "no successful run: {}",
                    s.failures.first().cloned().unwrap_or_default()
                ),
                "init ≤ 1.5× hello",
                Verdict::Missed,
                params.clone(),
            ));
            continue;
        }
        let init = median(&mut s.init);
        let ratio = init.as_secs_f64() / base_init.as_secs_f64().max(1e-9);
        let rss = s.rss_kib.iter().copied().max().unwrap_or(0);
        rows.push(Row::new(
            format!("4 cold start: {name}"),
            format!(
                "init {:.1} ms = {:.2}× hello{}",
                init.as_secs_f64() * 1e3,
                ratio,
                if s.failures.is_empty() {
                    String::new()
                } else {
                    format!(" ({} failed runs)", s.failures.len())
                }
            ),
            "≤ 1.5× hello init",
            Verdict::of(ratio <= MAX_INIT_RATIO),
            format!(
                "AWS calls during init: {}; {params}",
                init_calls.get(name).map_or("not measured", String::as_str)
            ),
        ));
        rows.push(split_row(name, &s.splits, init, round_trip));
        let (mut times, problems) = first.remove(name).unwrap_or_default();
        rows.push(Row::info(
            format!("4 first invocation: {name}"),
            if times.is_empty() {
                format!(
                    "no answer: {}",
                    problems.first().cloned().unwrap_or_default()
                )
            } else {
                format!(
                    "{:.1} ms after init {:.1} ms ({} runs{})",
                    median(&mut times).as_secs_f64() * 1e3,
                    init.as_secs_f64() * 1e3,
                    times.len(),
                    problems
                        .first()
                        .map(|p| format!("; {} of them: {p}", problems.len()))
                        .unwrap_or_default()
                )
            },
            format!(
                "median, event handed over → answer; the event: {}",
                FIRST_EVENTS
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("-", |(_, what)| *what)
            ),
        ));
        rows.push(Row::new(
            format!("4 footprint: {name}"),
            format!(
                "bootstrap {:.2} MB ({:.2}× hello), peak RSS at first poll {:.1} MiB",
                size as f64 / 1e6,
                size as f64 / base_size as f64,
                mib(rss)
            ),
            "bootstrap ≤ 10 MB",
            Verdict::of(size <= MAX_BOOTSTRAP_BYTES),
            "size of the stripped release bootstrap; RSS = VmHWM".to_owned(),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_read_from_lambdas_json_log_lines() {
        let log = r#"{"level":"INFO","fields":{"message":"secret fetched","secret_id":"reelay/x/tiktok-app","secret.fetch_ms":4.25}}
not json at all
{"level":"INFO","fields":{"message":"cold start: ready for the first event","init.phases_ms":"tracing=0.100 config=0.020 sdk=1.500 wiring=6.000","init.total_ms":7.62}}"#;
        let split = Split::from_log(log).expect("a cold-start line");
        assert_eq!(
            split.phases,
            [
                ("tracing".to_owned(), 0.1),
                ("config".to_owned(), 0.02),
                ("sdk".to_owned(), 1.5),
                ("wiring".to_owned(), 6.0)
            ]
        );
        assert_eq!(split.main_ms, 7.62);
        assert_eq!(split.secret_fetches_ms, [4.25]);
    }

    #[test]
    fn every_function_has_a_first_event_and_says_what_it_is() {
        for (name, _) in FUNCTIONS {
            assert!(first_event(name).is_some(), "{name} has no first event");
            assert!(
                FIRST_EVENTS.iter().any(|(n, _)| n == name),
                "{name} is not described"
            );
        }
        assert_eq!(first_event("hello-lambda"), None);
    }

    #[test]
    fn a_log_without_the_cold_start_line_has_no_split() {
        assert_eq!(
            Split::from_log(r#"{"level":"INFO","fields":{"message":"hello"}}"#),
            None
        );
    }
}
