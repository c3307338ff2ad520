//! The whole pipeline, timed and metered: `reelay_local::Stack` provisions the resources and
//! starts the simulators, then its drivers are replaced by the same drivers around the same
//! handlers, each invocation timed (Lambda bills duration; the stack's drivers keep no times) and
//! every AWS call made through the metering proxy. The bench's own reads (seeding, progress)
//! go straight to the endpoint and are not counted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::Request;
use reelay_aws::{DynamoStore, SystemClock};
use reelay_domain::ports::{Clock as _, JobStore};
use reelay_domain::{JobId, JobState, TenantId};
use reelay_local::client::{ApiClient, seed_tenant};
use reelay_local::demo::{self, DemoJob, DemoPlan, Expect};
use reelay_local::stack::random_suffix;
use reelay_local::{
    FunctionSpec, HttpFront, LocalRuntime, Routes, Schedule, SqsDriver, SqsSource, Stack,
    StackOptions, Ticker,
};
use reelay_template::Template;
use serde::{Deserialize, Serialize};

use crate::lambdalog::{self, LogCount, LogTotals};
use crate::meter::{Meter, MeterProxy};
use crate::storage::{self, StorageScan};

/// What to run.
#[derive(Debug, Clone)]
pub struct Workload {
    pub template: PathBuf,
    pub accounts: usize,
    pub jobs: usize,
    /// Bytes of every rendered clip (the Ssemble simulator generates them on the fly).
    pub clip_bytes: u64,
    pub time_scale: f64,
    pub deadline: Duration,
}

/// One function's invocations in the metered window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionTimes {
    pub memory_mb: i32,
    pub durations_ms: Vec<f64>,
}

impl FunctionTimes {
    pub fn invocations(&self) -> usize {
        self.durations_ms.len()
    }

    /// Lambda rounds each invocation up to the next millisecond.
    pub fn billed_gb_s(&self) -> f64 {
        let gb = f64::from(self.memory_mb) / 1024.0;
        self.durations_ms
            .iter()
            .map(|ms| ms.ceil() / 1e3 * gb)
            .sum()
    }

    pub fn total_ms(&self) -> f64 {
        self.durations_ms.iter().sum()
    }
}

/// The figures of one run, also the child process's JSON answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunResult {
    pub jobs: usize,
    pub accounts: usize,
    pub clip_bytes: u64,
    /// Jobs per final state.
    pub states: BTreeMap<String, usize>,
    pub elapsed_s: f64,
    pub timed_out: bool,
    /// Everything the functions asked of AWS in the window (jobs submitted → all settled).
    pub meter: Meter,
    /// Invocations per function, reconciler ticks that found nothing due excluded.
    pub functions: BTreeMap<String, FunctionTimes>,
    /// Reconciler ticks that found nothing due: their count, time and AWS calls.
    pub idle_ticks: FunctionTimes,
    pub idle_tick_meter: Meter,
    /// Distinct states a published job passed through (from its audit trail), and the stored
    /// size of its job item in bytes (the floor's inputs).
    pub path_states: usize,
    /// Audit events of that job: its transitions, creation included (reschedules write none).
    #[serde(default)]
    pub path_transitions: usize,
    pub job_item_bytes: usize,
    /// Peak RSS of this process (stack, simulators and all six handlers).
    pub vm_hwm_kib: u64,
    /// What the functions would have written to CloudWatch Logs in the window, per function
    /// ([`lambdalog`]); reconciler ticks that found nothing due under [`IDLE_RECONCILER`].
    #[serde(default)]
    pub logs: LogTotals,
    /// Bytes the publisher uploaded to TikTok (FILE_UPLOAD): data out of AWS on Lambda.
    #[serde(default)]
    pub upload_bytes: u64,
    /// Every Ssemble call of the run by endpoint (`create`, `status`, `get`, `list`, …).
    #[serde(default)]
    pub ssemble_by_endpoint: BTreeMap<String, u64>,
    /// One forced token refresh per account after the window, metered on its own.
    #[serde(default)]
    pub refresh: RefreshProbe,
    /// What the window left stored in DynamoDB.
    #[serde(default)]
    pub storage: StorageScan,
}

/// The log bucket of reconciler ticks that found nothing due.
pub const IDLE_RECONCILER: &str = "reconciler-idle";
/// The log bucket of the refresh probe.
pub const TOKEN_REFRESH: &str = "token-refresh";

/// Token refreshes forced after the window (the stored access token offered as just refused by
/// TikTok, so `fresh_token` refreshes it under the account's lock), through the publisher's own
/// wiring and the metering proxy: what one refresh costs, which the window does not show
/// (TikTok's access tokens live 24 h; a run lasts minutes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefreshProbe {
    pub attempted: u64,
    /// Refreshes that stored a new token set.
    pub refreshed: u64,
    pub meter: Meter,
    pub logs: LogCount,
    /// Their durations at the publisher's memory (a refresh runs inside a publisher invocation).
    pub times: FunctionTimes,
}

#[derive(Debug, Default)]
struct Recorder {
    times: Mutex<BTreeMap<String, FunctionTimes>>,
    idle: Mutex<(FunctionTimes, Meter)>,
}

impl Recorder {
    fn record(&self, name: &str, memory_mb: i32, took: Duration) {
        if let Ok(mut t) = self.times.lock() {
            let e = t.entry(name.to_owned()).or_default();
            e.memory_mb = memory_mb;
            e.durations_ms.push(took.as_secs_f64() * 1e3);
        }
    }
}

fn memory(template: &Template, id: &str) -> anyhow::Result<i32> {
    Ok(FunctionSpec::from_template(template, id)?.memory_mb)
}

/// A job's whole audit trail, page by page (the store serves it in pages).
async fn audit_trail(
    store: &DynamoStore,
    id: &JobId,
) -> anyhow::Result<Vec<reelay_domain::job::AuditEvent>> {
    let mut trail = Vec::new();
    let mut after = None;
    loop {
        let page = store.audit_page(id, after, 200).await?;
        trail.extend(page.events);
        match page.next_after {
            Some(next) if after.is_none_or(|a| next > a) => after = Some(next),
            Some(next) => anyhow::bail!("audit cursor of {id} did not advance past {next}"),
            None => return Ok(trail),
        }
    }
}

pub async fn run(w: &Workload) -> anyhow::Result<RunResult> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .context("AWS_ENDPOINT_URL is not set: start the local endpoint (see README)")?;
    // EMF lines are counted as the functions' log output (they would go to stdout on Lambda).
    reelay_aws::metrics::set_sink(lambdalog::metric_sink);
    let template = Template::from_path(&w.template)?;
    let mut options = StackOptions::local(&w.template, w.time_scale);
    options.suffix = Some(random_suffix("bm"));
    options.ssemble_sim.clip_bytes = w.clip_bytes;
    let mut stack = Stack::start(options).await.context("starting the stack")?;
    let ssemble = stack.ssemble.take();
    let tiktok = stack.tiktok.take();
    let api_base_url = stack.api_base_url.clone();
    let mut wiring = stack.wiring.clone();
    let direct_dynamo = wiring.dynamo();
    let direct_vault = wiring.vault();
    let store: DynamoStore = stack.store.clone();
    let table = wiring.resources.table.clone();
    stack
        .shutdown()
        .await
        .context("stopping the stack's own drivers")?;

    let proxy = Arc::new(MeterProxy::start(&endpoint).await?);
    let metered = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&proxy.url)
        .load()
        .await;
    // Every function's clients come from the wiring's SDK config: all of them go through the
    // proxy now (their secrets are read through it too, at `live`).
    wiring.sdk = metered;

    let rec = Arc::new(Recorder::default());
    let mut runtime = LocalRuntime::new();
    let addr: SocketAddr = api_base_url
        .trim_start_matches("http://")
        .parse()
        .context("the stack's API address")?;
    // The simulators and the OAuth redirect name this address: listen on it again.
    let listener = {
        let mut tries = 0;
        loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::debug!(error.message = %e, "rebinding the API address");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("rebinding the API address"),
            }
        }
    };
    let ingest = Arc::new(wiring.ingest().await?);
    let ssemble_hook = Arc::new(wiring.ssemble_webhook().await?);
    let tiktok_hook = Arc::new(wiring.tiktok_webhook().await?);
    let (m_ing, m_sw, m_tw) = (
        memory(&template, "IngestApiFunction")?,
        memory(&template, "SsembleWebhookFunction")?,
        memory(&template, "TikTokWebhookFunction")?,
    );
    let (r1, r2, r3) = (rec.clone(), rec.clone(), rec.clone());
    let routes = Routes::new()
        .function_from_template(&template, "IngestApiFunction", move |req: Request| {
            let (deps, rec) = (ingest.clone(), r1.clone());
            async move {
                let t = Instant::now();
                let r = lambdalog::invoke("ingest-api", ingest_api::handler(&*deps, req)).await;
                rec.record("ingest-api", m_ing, t.elapsed());
                r
            }
        })?
        .function_from_template(&template, "SsembleWebhookFunction", move |req: Request| {
            let (deps, rec) = (ssemble_hook.clone(), r2.clone());
            async move {
                let t = Instant::now();
                let r = lambdalog::invoke("ssemble-webhook", ssemble_webhook::handler(&*deps, req))
                    .await;
                rec.record("ssemble-webhook", m_sw, t.elapsed());
                r
            }
        })?
        .function_from_template(&template, "TikTokWebhookFunction", move |req: Request| {
            let (deps, rec) = (tiktok_hook.clone(), r3.clone());
            async move {
                let t = Instant::now();
                let r =
                    lambdalog::invoke("tiktok-webhook", tiktok_webhook::handler(&*deps, req)).await;
                rec.record("tiktok-webhook", m_tw, t.elapsed());
                r
            }
        })?;
    runtime.add_http(
        "api",
        HttpFront::serve(listener, routes, runtime.child_token())?,
    );

    let wait = Duration::from_millis(500);
    let submitter = Arc::new(wiring.render_submitter().await?);
    let m_rs = memory(&template, "RenderSubmitterFunction")?;
    let r4 = rec.clone();
    let source = SqsSource::from_template(
        &template,
        "RenderSubmitterFunction",
        wiring.resources.render_queue_url.clone(),
    )?
    .with_wait_time(wait);
    let timeout = source.function.timeout;
    let driver = SqsDriver::spawn_with(
        wiring.sqs(),
        source,
        runtime.child_token(),
        move |event: SqsEvent| {
            let (deps, rec) = (submitter.clone(), r4.clone());
            let deadline = SystemClock.now().plus(timeout);
            async move {
                let t = Instant::now();
                let r = lambdalog::invoke(
                    "render-submitter",
                    render_submitter::handler(&*deps, event, deadline),
                )
                .await;
                rec.record("render-submitter", m_rs, t.elapsed());
                r
            }
        },
    )
    .await?;
    runtime.add_sqs("render-submitter", driver);

    let publisher = Arc::new(wiring.publisher().await?);
    let refresher = publisher.clone();
    let m_pub = memory(&template, "PublisherFunction")?;
    let r5 = rec.clone();
    let source = SqsSource::from_template(
        &template,
        "PublisherFunction",
        wiring.resources.publish_queue_url.clone(),
    )?
    .with_wait_time(wait);
    let timeout = source.function.timeout;
    let driver = SqsDriver::spawn_with(
        wiring.sqs(),
        source,
        runtime.child_token(),
        move |event: SqsEvent| {
            let (deps, rec) = (publisher.clone(), r5.clone());
            let deadline = SystemClock.now().plus(timeout);
            async move {
                let t = Instant::now();
                let r = lambdalog::invoke("publisher", publisher::handler(&*deps, event, deadline))
                    .await;
                rec.record("publisher", m_pub, t.elapsed());
                r
            }
        },
    )
    .await?;
    runtime.add_sqs("publisher", driver);

    let reconciler = Arc::new(wiring.reconciler().await?);
    let m_rec = memory(&template, "ReconcilerFunction")?;
    let mut schedule = Schedule::from_template(&template, "ReconcilerFunction")?;
    schedule.period = schedule
        .period
        .div_f64(w.time_scale.max(1.0))
        .max(Duration::from_secs(1));
    let timeout = schedule.function.timeout;
    let (r6, p6) = (rec.clone(), proxy.clone());
    runtime.add_ticker(
        "reconciler",
        Ticker::spawn_with(
            schedule,
            runtime.child_token(),
            move |_e: CloudWatchEvent| {
                let (deps, rec, proxy) = (reconciler.clone(), r6.clone(), p6.clone());
                async move {
                    let before = proxy.snapshot();
                    let logs_before = lambdalog::count_of("reconciler");
                    let t = Instant::now();
                    let report = lambdalog::invoke(
                        "reconciler",
                        reconciler::handler(&*deps, SystemClock.now().plus(timeout)),
                    )
                    .await;
                    let took = t.elapsed();
                    if report.due == 0 {
                        lambdalog::reassign_since("reconciler", &logs_before, IDLE_RECONCILER);
                        // The due-index queries of an empty tick: a per-minute cost, not a per-job one.
                        let d = proxy.snapshot().since(&before);
                        if let Ok(mut idle) = rec.idle.lock() {
                            idle.0.memory_mb = m_rec;
                            idle.0.durations_ms.push(took.as_secs_f64() * 1e3);
                            for key in ["dynamodb.Query", "dynamodb.Query@due"] {
                                let add = d.get(key);
                                let e = idle.1.ops.entry(key.to_owned()).or_default();
                                e.requests += add.requests;
                                e.capacity_units += add.capacity_units;
                                e.reported += add.reported;
                                e.estimated_read_units += add.estimated_read_units;
                            }
                        }
                    } else {
                        rec.record("reconciler", m_rec, took);
                    }
                }
            },
        ),
    );

    // Tenant and accounts (OAuth through the API) before the window opens.
    let tenant = TenantId::parse("tenant_bench").map_err(|e| anyhow::anyhow!(e.reason))?;
    let key = seed_tenant(&store, tenant.as_str()).await?;
    let client = ApiClient::new(&api_base_url, key)?;
    let plan = DemoPlan {
        accounts: (0..w.accounts)
            .map(|i| (format!("acct_bench_{i:02}"), "direct"))
            .collect(),
        jobs: (0..w.jobs)
            .map(|i| DemoJob {
                account: i % w.accounts,
                draft: false,
                delay: None,
                expect: Expect::Publish,
            })
            .collect(),
        seed_to: None,
    };
    demo::connect_accounts(&client, &plan).await?;
    // Let the connect flow's invocations finish, then open the window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (table_keys, table_indexes) = storage::table_shape(&template, "Table");
    let (token_keys, token_indexes) = storage::table_shape(&template, "TokenTable");
    let token_table = wiring.resources.token_table.clone();
    let table_before = storage::scan(&direct_dynamo, &table, &table_keys).await?;
    let tokens_before = storage::scan(&direct_dynamo, &token_table, &token_keys).await?;
    lambdalog::reset();
    if let Ok(mut t) = rec.times.lock() {
        t.clear();
    }
    if let Ok(mut idle) = rec.idle.lock() {
        *idle = Default::default();
    }
    let before = proxy.snapshot();
    let started = Instant::now();
    let tracked = demo::submit_jobs(&client, &plan, &demo::run_tag()).await?;
    // A direct post's life ends at `publicly_available` (or another terminal state).
    let (observed, timed_out) = loop {
        let observed = reelay_local::progress::observe(&store, &tracked).await?;
        let done = observed
            .iter()
            .all(|o| o.state().is_some_and(|s| s.is_terminal()) || o.parked());
        let late = started.elapsed() >= w.deadline;
        if done || late {
            break (observed, late && !done);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let elapsed = started.elapsed();
    // In-flight invocations (a last webhook) finish before the window closes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let meter = proxy.snapshot().since(&before);
    let functions = rec.times.lock().map(|t| t.clone()).unwrap_or_default();
    let (idle_ticks, idle_tick_meter) = rec.idle.lock().map(|i| i.clone()).unwrap_or_default();
    let logs = lambdalog::snapshot();
    runtime.shutdown().await?;

    let now_s = chrono::Utc::now().timestamp();
    let mut storage = StorageScan::default();
    storage.add_table(
        &table_before,
        &storage::scan(&direct_dynamo, &table, &table_keys).await?,
        &table_indexes,
        now_s,
    );
    storage.add_table(
        &tokens_before,
        &storage::scan(&direct_dynamo, &token_table, &token_keys).await?,
        &token_indexes,
        now_s,
    );
    let upload_bytes = tiktok.as_ref().map_or(0, |t| {
        t.inspect()["uploads"].as_object().map_or(0, |u| {
            u.values().filter_map(|v| v["received"].as_u64()).sum()
        })
    });
    let ssemble_by_endpoint = ssemble
        .as_ref()
        .and_then(|s| serde_json::to_value(s.inspect()).ok())
        .and_then(|v| reelay_local::summary::SsembleCalls::by_endpoint(&v))
        .unwrap_or_default();
    let refresh = refresh_probe(&refresher, &direct_vault, &tenant, &plan, &proxy, m_pub).await?;

    let mut states = BTreeMap::new();
    for o in &observed {
        let s = o
            .state()
            .map_or("missing".to_owned(), |s| s.as_str().to_owned());
        *states.entry(s).or_insert(0) += 1;
    }
    // The floor's inputs, from a job that made it.
    let mut path_states = 0;
    let mut path_transitions = 0;
    let mut job_item_bytes = 0;
    if let Some(done) = observed
        .iter()
        .find(|o| o.state() == Some(JobState::PubliclyAvailable))
    {
        let id = JobId::parse(&done.tracked.job_id).map_err(|e| anyhow::anyhow!(e.reason))?;
        let trail = audit_trail(&store, &id).await?;
        let distinct: std::collections::BTreeSet<&str> =
            trail.iter().map(|e| e.to.as_str()).collect();
        path_states = distinct.len();
        path_transitions = trail.len();
        let item = direct_dynamo
            .get_item()
            .table_name(&table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("JOB#{id}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("JOB".into()),
            )
            .send()
            .await?
            .item
            .unwrap_or_default();
        job_item_bytes = storage::item_bytes(&item) as usize;
    }
    drop(ssemble);
    drop(tiktok);
    Ok(RunResult {
        jobs: w.jobs,
        accounts: w.accounts,
        clip_bytes: w.clip_bytes,
        states,
        elapsed_s: elapsed.as_secs_f64(),
        timed_out,
        meter,
        functions,
        idle_ticks,
        idle_tick_meter,
        path_states,
        path_transitions,
        job_item_bytes,
        vm_hwm_kib: crate::procfs::own_vm_hwm_kib().unwrap_or(0),
        logs,
        upload_bytes,
        ssemble_by_endpoint,
        refresh,
        storage,
    })
}

/// One forced refresh per connected account, each metered and timed on its own (nothing else
/// runs: the drivers are stopped).
async fn refresh_probe<P: reelay_domain::ports::Ports>(
    publisher: &publisher::Deps<P>,
    direct_vault: &reelay_aws::DynamoTokenVault,
    tenant: &TenantId,
    plan: &DemoPlan,
    proxy: &MeterProxy,
    memory_mb: i32,
) -> anyhow::Result<RefreshProbe> {
    use reelay_domain::ports::TokenVault as _;
    let mut probe = RefreshProbe {
        times: FunctionTimes {
            memory_mb,
            durations_ms: Vec::new(),
        },
        ..RefreshProbe::default()
    };
    let before = proxy.snapshot();
    let logs_before = lambdalog::count_of(TOKEN_REFRESH);
    for (name, _) in &plan.accounts {
        let account = reelay_domain::AccountId::parse(name.as_str())
            .map_err(|e| anyhow::anyhow!(e.reason))?;
        let Some(stored) = direct_vault.get_tokens(tenant, &account).await? else {
            continue;
        };
        probe.attempted += 1;
        let t = Instant::now();
        let fresh = lambdalog::invoke(
            TOKEN_REFRESH,
            publisher
                .core
                .fresh_token(tenant, &account, Some(&stored.access_token)),
        )
        .await;
        probe
            .times
            .durations_ms
            .push(t.elapsed().as_secs_f64() * 1e3);
        match fresh {
            Ok(_) => probe.refreshed += 1,
            Err(e) => {
                tracing::warn!(account = %name, error.message = %e, "refresh probe: no refresh")
            }
        }
    }
    probe.meter = proxy.snapshot().since(&before);
    probe.logs = lambdalog::count_of(TOKEN_REFRESH).since(&logs_before);
    Ok(probe)
}
