//! The whole local stack for a benchmark: `reelay_local::Stack` (MiniStack through the real AWS
//! SDK, all six real handlers, the Ssemble simulator) with the TikTok simulator started here,
//! behind the recording [`Proxy`], so inits carry real millisecond timestamps.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use reelay_aws::{DynamoStore, SqsWorkQueue, SystemClock};
use reelay_bench_micro::meter::{Meter, MeterProxy};
use reelay_domain::job::ClipChoice;
use reelay_domain::ports::{AccountStore, Adapters, Clock, JobStore};
use reelay_domain::upstream::Unwired;
use reelay_domain::usecase::{Advance, Core};
use reelay_domain::{
    AccountId, Clip, Event, Job, JobId, JobSource, PostMode, PostSettings, RequestId, TenantId,
    UtcTime,
};
use reelay_local::client::{ApiClient, seed_tenant};
use reelay_local::stack::random_suffix;
use reelay_local::{Stack, StackOptions, Upstreams};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::proxy::{InitRecord, Proxy};

/// A connected account: Reelay's id and the TikTok `open_id` it is bound to.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub open_id: String,
}

/// What the benchmark asked for, to join with what TikTok received (by title).
#[derive(Debug, Clone)]
pub struct Seeded {
    pub job_id: JobId,
    pub open_id: String,
    pub schedule_at_ms: i64,
}

#[derive(Debug)]
pub struct Harness {
    pub stack: Stack,
    pub tiktok: tiktok_sim::SimHandle,
    pub proxy: Proxy,
    pub client: ApiClient,
    pub tenant: TenantId,
    pub time_scale: f64,
    pub tag: String,
    /// Every AWS request of the stack when started [`Harness::start_metered`].
    meter: Option<MeterProxy>,
    /// The domain's use cases on this run's table and queues, with this run's settings: what
    /// seeds jobs the way the ssemble-webhook moves them.
    core: Core<SeedPorts>,
    clip: Clip,
    request_id: RequestId,
}

/// Only the table, the queues and the clock: seeding calls no upstream.
type SeedPorts = Adapters<DynamoStore, SqsWorkQueue, SystemClock, Unwired, Unwired, Unwired>;

fn template() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml").to_owned()
}

impl Harness {
    /// Starts the stack and renders one real clip through the pipeline (which also warms every
    /// function up); benchmark jobs then reuse that render, as `POST /api/publish/tiktok` does.
    pub async fn start(time_scale: f64, clip_bytes: u64) -> anyhow::Result<Self> {
        Self::start_with(time_scale, clip_bytes, None).await
    }

    /// As [`Harness::start`], with every AWS request of the stack (its functions and the
    /// bench's own table reads) passing through a metering proxy, for requests per job.
    pub async fn start_metered(time_scale: f64, clip_bytes: u64) -> anyhow::Result<Self> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .context("AWS_ENDPOINT_URL is not set: start the local endpoint (see README)")?;
        let meter = MeterProxy::start(&endpoint).await?;
        Self::start_with(time_scale, clip_bytes, Some(meter)).await
    }

    async fn start_with(
        time_scale: f64,
        clip_bytes: u64,
        meter: Option<MeterProxy>,
    ) -> anyhow::Result<Self> {
        let tiktok = tiktok_sim::TikTokSim::start(tiktok_sim::SimConfig {
            time_scale,
            ..tiktok_sim::SimConfig::default()
        })
        .await
        .context("starting the TikTok simulator")?;
        let proxy = Proxy::start(&tiktok.base_url).await?;
        let cfg = tiktok.config();
        let mut options = StackOptions::local(template(), time_scale);
        options.suffix = Some(random_suffix("bench"));
        options.ssemble_sim.clip_bytes = clip_bytes;
        options.endpoint_url = meter.as_ref().map(|m| m.url.clone());
        options.upstreams = Upstreams {
            tiktok_api_base_url: Some(proxy.base_url.clone()),
            tiktok_auth_base_url: Some(proxy.base_url.clone()),
            tiktok_client_key: Some(cfg.client_key.clone()),
            tiktok_client_secret: Some(SecretString::from(cfg.client_secret.clone())),
            ..Upstreams::default()
        };
        let stack = Stack::start(options).await.context("starting the stack")?;
        // The Stack patches only a simulator it owns; this one is ours.
        tiktok.patch_config(
            &json!({ "webhook_url": format!("{}/webhooks/tiktok", stack.api_base_url) }),
        )?;
        let tenant = TenantId::parse("tenant_bench").map_err(|e| anyhow!(e.reason))?;
        let key = seed_tenant(&stack.store, tenant.as_str()).await?;
        let client = ApiClient::new(&stack.api_base_url, key)?;
        let queue = SqsWorkQueue::new(
            stack.wiring.sqs(),
            Some(stack.wiring.resources.render_queue_url.clone()),
            Some(stack.wiring.resources.publish_queue_url.clone()),
        );
        let core = Core::new(
            Adapters {
                store: stack.store.clone(),
                queue,
                clock: SystemClock,
                vault: Unwired,
                render: Unwired,
                tiktok: Unwired,
            },
            stack.wiring.settings(),
        );
        let tag = reelay_local::demo::run_tag();
        let (clip, request_id) = warm_up(&stack, &client, &tenant, &tag).await?;
        Ok(Self {
            stack,
            tiktok,
            proxy,
            client,
            tenant,
            time_scale,
            tag,
            meter,
            core,
            clip,
            request_id,
        })
    }

    /// Connects `n` accounts through the real OAuth flow (`prefix-0`, `prefix-1`, …).
    pub async fn connect(&self, prefix: &str, n: usize) -> anyhow::Result<Vec<Account>> {
        let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        let results: Vec<anyhow::Result<Account>> = futures::stream::iter(ids)
            .map(|id| async move { self.connect_one(&id).await })
            .buffered(8)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn connect_one(&self, account: &str) -> anyhow::Result<Account> {
        self.client.connect_account(account, "direct").await?;
        let id = AccountId::parse(account.to_owned()).map_err(|e| anyhow!(e.reason))?;
        let open_id = self
            .stack
            .store
            .get_account(&self.tenant, &id)
            .await?
            .and_then(|a| a.open_id)
            .ok_or_else(|| anyhow!("{account} has no open_id after OAuth"))?;
        Ok(Account { id, open_id })
    }

    /// Stores a job whose render is already done, then offers it `RenderCompleted` through the
    /// domain's own use case — the ssemble-webhook's path: due jobs go on the publish queue at
    /// once, later ones wait in `ready` for the reconciler. Ssemble is left out on purpose: its
    /// per-key caps (100 renders an hour) would otherwise bound a TikTok benchmark.
    pub async fn seed_ready(
        &self,
        account: &Account,
        title: &str,
        schedule_at_ms: i64,
    ) -> anyhow::Result<JobId> {
        let now = SystemClock.now();
        let id = JobId::generate(now, rand::random::<u128>());
        let post = PostSettings {
            mode: PostMode::Direct,
            privacy_level: Some(reelay_domain::job::PrivacyLevel::PublicToEveryone),
            title: Some(title.to_owned()),
            disable_comment: false,
            disable_duet: false,
            disable_stitch: false,
            brand_content_toggle: false,
            brand_organic_toggle: false,
            is_aigc: false,
            video_cover_timestamp_ms: None,
            clip: ClipChoice::TopViralScore,
        };
        let created = Job::create(
            id.clone(),
            self.tenant.clone(),
            account.id.clone(),
            JobSource::Rendered {
                request_id: self.request_id.clone(),
            },
            post,
            UtcTime::from_millis(schedule_at_ms),
            None,
            now,
            &self.core.settings.policy,
        );
        self.stack.store.create(&created, None).await?;
        let event = Event::RenderCompleted {
            request_id: self.request_id.clone(),
            clip: self.clip.clone(),
        };
        let moved = self.core.advance_loaded(created.job, &event).await?;
        match moved {
            Advance::Moved(_) => Ok(id),
            other => bail!("seeded job {id} did not become ready: {other:?}"),
        }
    }

    /// Seeds many jobs, `concurrency` at a time; the jobs of one account keep their order.
    pub async fn seed_all(
        &self,
        plan: Vec<(Account, Vec<(String, i64)>)>,
        concurrency: usize,
    ) -> anyhow::Result<HashMap<String, Seeded>> {
        let results: Vec<anyhow::Result<Vec<(String, Seeded)>>> = futures::stream::iter(plan)
            .map(|(account, jobs)| async move {
                let mut out = Vec::with_capacity(jobs.len());
                for (title, at) in jobs {
                    let job_id = self.seed_ready(&account, &title, at).await?;
                    out.push((
                        title,
                        Seeded {
                            job_id,
                            open_id: account.open_id.clone(),
                            schedule_at_ms: at,
                        },
                    ));
                }
                Ok(out)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut map = HashMap::new();
        for r in results {
            map.extend(r?);
        }
        Ok(map)
    }

    /// Where the rendered clip is served (the Ssemble simulator's file).
    pub fn clip_url(&self) -> String {
        self.clip.video_url.clone()
    }

    /// States of these jobs as the table holds them, counted (for jobs that never reached TikTok).
    pub async fn states(&self, ids: &[JobId]) -> String {
        joined(&self.state_counts(ids).await)
    }

    /// Jobs per state (a held job's state with its hold reason), as the table holds them.
    pub async fn state_counts(&self, ids: &[JobId]) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for id in ids {
            let state = match self.stack.store.get(id).await {
                Ok(Some(job)) => match &job.hold {
                    Some(hold) => format!("{} ({})", job.state, hold.reason),
                    None => job.state.to_string(),
                },
                Ok(None) => "missing".into(),
                Err(_) => "unreadable".into(),
            };
            *counts.entry(state).or_default() += 1;
        }
        counts
    }

    /// How far ahead of `scheduleAt` the reconciler enqueues a publish, on this run's clock.
    pub fn enqueue_ahead(&self) -> Duration {
        self.core.settings.policy.enqueue_ahead
    }

    /// A job's whole audit trail, oldest first (empty when it cannot be read).
    pub async fn trail(&self, id: &JobId) -> Vec<reelay_domain::job::AuditEvent> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let Ok(page) = self.stack.store.audit_page(id, after, 100).await else {
                return out;
            };
            out.extend(page.events);
            match page.next_after {
                Some(next) => after = Some(next),
                None => return out,
            }
        }
    }

    /// What the stack has asked of AWS so far; `None` unless started metered.
    pub fn meter(&self) -> Option<Meter> {
        self.meter.as_ref().map(MeterProxy::snapshot)
    }

    pub fn inits(&self) -> Vec<InitRecord> {
        self.proxy.inits()
    }

    /// Ground truth from the simulator (same document as `GET /_sim/inspect`).
    pub fn inspect(&self) -> Value {
        self.tiktok.inspect()
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stack.shutdown().await?;
        Ok(())
    }
}

/// `3 ready, 1 failed (reason)`: state counts on one line.
pub fn joined(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One real job through the whole pipeline (OAuth, ingest, render, webhook, publisher); its clip
/// is what the benchmark jobs post.
async fn warm_up(
    stack: &Stack,
    client: &ApiClient,
    tenant: &TenantId,
    tag: &str,
) -> anyhow::Result<(Clip, RequestId)> {
    client.connect_account("bench-warm", "direct").await?;
    let body = json!({
        "tiktokAccountId": "bench-warm",
        "source": { "url": format!("https://www.youtube.com/watch?v=bench-{tag}"), "start": 0, "end": 60 },
        "post": { "mode": "direct", "privacyLevel": "PUBLIC_TO_EVERYONE", "title": format!("bench warm-up {tag}") },
    });
    let answer = client
        .post("/v1/jobs", &body, Some(&format!("bench-{tag}")))
        .await?;
    let job_id = answer
        .str("/jobId")
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("warm-up job refused: {} {}", answer.status, answer.body))?;
    let id = JobId::parse(job_id.clone()).map_err(|e| anyhow!(e.reason))?;
    let ssemble = stack
        .ssemble
        .as_ref()
        .ok_or_else(|| anyhow!("the stack has no Ssemble simulator"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut forced = false;
    loop {
        let job = stack.store.get(&id).await?;
        if let Some(job) = &job {
            if job.publish_id.is_some()
                && let (Some(clip), Some(rid)) = (&job.clip, &job.request_id)
            {
                return Ok((clip.clone(), rid.clone()));
            }
            // At a time scale of 1 a render takes a real minute: finish it at Ssemble instead.
            if let (Some(rid), false) = (&job.request_id, forced) {
                forced = ssemble.force_complete(rid.as_str());
            }
            if job.is_terminal() {
                bail!("warm-up job ended {} without a post", job.state);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "warm-up job {job_id} not published within 120 s (tenant {tenant}, state {:?})",
                job.map(|j| j.state)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
