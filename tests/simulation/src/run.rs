//! One simulated run: the scenario drawn from the seed, and the driver that steps it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use reelay_domain::job::{
    ClipChoice, MediaSource, PostMode, PostSettings, PrivacyLevel, RenderRequest,
};
use reelay_domain::lifecycle::JobState;
use reelay_domain::messages::QueueKind;
use reelay_domain::ports::{Adapters, Clock};
use reelay_domain::request::NewJob;
use reelay_domain::usecase::{
    Command, Core, CreateError, Observation, ObserveOutcome, Observed, PublishOutcome, RenderHint,
    Settings, Wait, WaitTiming,
};
use reelay_domain::{
    AccountId, IdempotencyKey, JobId, JobSource, PayloadHash, RequestId, TenantId, UtcTime,
};
use reelay_testkit::{Fault, Hook, HookFuture, MemStore, MemVault};
use secrecy::SecretString;

use crate::check::Checker;
use crate::clock::SimClock;
use crate::exec::Executor;
use crate::faults::{Chaos, Part};
use crate::queue::{Delivery, QueueConfig, SimQueue};
use crate::ssemble::{SsembleFaults, SsembleSim};
use crate::tiktok::{REGISTERED_REDIRECT, TikTokFaults, TikTokSim, WebhookKind};

pub type SimPorts = Adapters<MemStore, SimQueue, SimClock, MemVault, SsembleSim, TikTokSim>;
pub type SimCore = Arc<Core<SimPorts>>;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// What one run looks like.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub max_tenants: u64,
    pub max_accounts: u64,
    pub max_jobs: u64,
    /// Faults, crashes and outages happen during this much simulated time; then the run is calm.
    pub chaos: Duration,
    /// Every job must be terminal or parked with a reason by this much simulated time.
    pub bound: Duration,
    /// Per step, while not calm.
    pub crash_rate: f64,
    pub stall_rate: f64,
    /// How often a publisher dies right after TikTok accepted its init, before recording it.
    pub init_kill_rate: f64,
    /// Audit events a job may accumulate over the whole run: a transition writes one, waiting
    /// writes none, so it is bounded by the job's real history — a few to render, at most about
    /// seven per publish attempt (5 attempts, and once more after an operator's retry), the
    /// policy's ten stale observations, a hold per distinct reason. 100 leaves room for all of
    /// that; a job that cycles through states while it waits exceeds it within days.
    pub audit_bound: usize,
    /// Keep a trace of every step (for replaying one seed).
    pub trace: bool,
    /// A run that takes more steps than this is a livelock.
    pub max_steps: u64,
}

impl Config {
    pub fn seed(seed: u64) -> Self {
        Self {
            seed,
            max_tenants: 2,
            max_accounts: 3,
            max_jobs: 6,
            chaos: Duration::from_secs(6 * 3600),
            bound: Duration::from_secs(10 * 86_400),
            crash_rate: 0.02,
            stall_rate: 0.01,
            init_kill_rate: 0.2,
            audit_bound: 100,
            trace: false,
            max_steps: 2_000_000,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub steps: u64,
    pub jobs: usize,
    /// Final states, counted.
    pub states: BTreeMap<String, usize>,
    /// Final states with their reason (hold, else error code), counted.
    pub reasons: BTreeMap<String, usize>,
    pub violations: Vec<String>,
    pub crashes: u64,
    pub stalls: u64,
    pub inits: u64,
    pub creates: u64,
    pub stale_observations: u64,
    /// Sign-ins by another creator on an account's connect link (each must change nothing).
    pub impostors: u64,
    /// Creates naming a render not the tenant's (another tenant's, or none of Reelay's), each
    /// refused.
    pub renders_refused: u64,
    /// Direct posts for accounts connected for drafts only, each refused at create.
    pub direct_refused: u64,
    /// Accounts disconnected by their tenant (`DELETE /v1/accounts/{id}`).
    pub disconnects: u64,
    /// `scheduleAt` changes asked for (`PATCH /v1/jobs/{id}`), whatever the answer.
    pub reschedules: u64,
    /// Jobs that shared the render of the first job of their tenant and source (fan-out).
    pub fan_out_children: usize,
    pub dead_letters: usize,
    pub outage_failures: u64,
    pub trace: Vec<String>,
    /// Every job's audit trail, in a traced run.
    pub audits: BTreeMap<String, Vec<String>>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The sim's hook for the store and the vault: a yield point before every call, and outages.
struct SimHook(Chaos);

impl Hook for SimHook {
    fn before(&self, call: &'static str) -> HookFuture {
        let point = self.0.point(call);
        Box::pin(async move {
            if point.await {
                Err(Fault::unavailable())
            } else {
                Ok(())
            }
        })
    }
}

/// What an invocation ended with.
enum Done {
    Consumer {
        kind: QueueKind,
        results: Vec<(u64, Option<Duration>)>,
    },
    TikTokWebhook {
        redeliver: Option<crate::tiktok::Webhook>,
    },
    SsembleWebhook {
        redeliver: Option<crate::ssemble::Webhook>,
    },
    /// A client's or operator's call: `ok` false if it should be made again.
    Client {
        ok: bool,
    },
    /// A create naming a render not the tenant's was refused, as it must be.
    RenderRefused,
    /// A direct post for a drafts-only account was refused, as it must be.
    DirectRefused,
    /// A create was judged against its tenant's ownership of the render wrongly.
    Misjudged(String),
    Other,
}

/// A job the client created, and what it asked for.
#[derive(Debug, Clone)]
pub struct Planned {
    pub tenant: TenantId,
    pub account: AccountId,
    pub title: String,
    pub id: Option<JobId>,
    pub source: Source,
    pub mode: PostMode,
    pub at: UtcTime,
    pub key: String,
}

/// Where a planned job's clip comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A source video to render (a URL job).
    Given(JobSource),
    /// The render of planned job `n`: one render fanned out. Accepted only when job `n` is the
    /// same tenant's; the client waits until job `n` shows its requestId.
    FanOut(usize),
    /// A requestId Reelay never made for anyone (a render made outside Reelay with the stage's
    /// key, or a guess): refused.
    Outside(RequestId),
}

#[derive(Debug, Clone)]
struct Creator {
    tenant: TenantId,
    account: AccountId,
    open_id: String,
    draft_only: bool,
}

/// A browser through the connect flow: `target`'s account link, signed in as `open_id`.
async fn sign_in(core: SimCore, target: Creator, open_id: String) -> bool {
    let mode = if target.draft_only {
        PostMode::Draft
    } else {
        PostMode::Direct
    };
    let Ok(link) = core
        .connect_account(&target.tenant, &target.account, mode, REGISTERED_REDIRECT)
        .await
    else {
        return false;
    };
    let state = link
        .authorize_url
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .to_owned();
    let code = format!("code-{open_id}");
    core.oauth_callback(&state, Some(&code), None, REGISTERED_REDIRECT)
        .await
        .is_ok()
}

/// The account id of [`Impostor::Fresh`]: no creator's own.
fn fresh_account() -> AccountId {
    AccountId::parse("acct-fresh").unwrap_or_else(|_| unreachable_id())
}

/// Timed client and operator actions.
#[derive(Debug, Clone)]
enum Action {
    Create(usize),
    Replay(usize),
    Cancel(usize),
    Revoke(usize),
    Reconnect(usize),
    /// A sign-in by the wrong creator on a connect link. Must change nothing.
    Impostor(Impostor),
    /// An operator deletes planned job `n`'s render at Ssemble: its fan-outs must fail fast.
    Forget(usize),
    /// The tenant disconnects creator `i`'s account (`DELETE /v1/accounts/{id}`).
    Disconnect(usize),
    /// The client moves planned job `n`'s `scheduleAt` (`PATCH /v1/jobs/{id}`; the caption is
    /// how the sim finds a job, so it stays).
    Reschedule(usize),
}

/// Who signs in on whose connect link.
#[derive(Debug, Clone)]
enum Impostor {
    /// Creator `creator` (bound to its own account) on account `account`'s link.
    Bound { creator: usize, account: usize },
    /// A TikTok user with no account here on account `account`'s link (only the pin refuses).
    Stranger { open_id: String, account: usize },
    /// Creator `creator` on a new account's first link (only "one creator, one account" does).
    Fresh { creator: usize, account: AccountId },
}

struct Sim {
    config: Config,
    clock: SimClock,
    chaos: Chaos,
    store: MemStore,
    queue: SimQueue,
    tiktok: TikTokSim,
    ssemble: SsembleSim,
    core: SimCore,
    exec: Executor<Done>,
    deadlines: BTreeMap<u64, UtcTime>,
    stalled: BTreeMap<u64, UtcTime>,
    consumers: BTreeMap<u8, usize>,
    invocation_kind: BTreeMap<u64, Option<QueueKind>>,
    next_tick: UtcTime,
    actions: Vec<(UtcTime, Action)>,
    planned: Vec<Planned>,
    creators: Vec<Creator>,
    start: UtcTime,
    report: Report,
    checker: Checker,
    /// Webhooks due for delivery, and redeliveries after a failed or crashed one.
    inbox: Vec<Incoming>,
    later: Vec<(UtcTime, Incoming)>,
    delivering: BTreeMap<u64, Incoming>,
    /// Client calls in flight, with how many times each was tried: a failed or lost one is
    /// made again, as a client would.
    calling: BTreeMap<u64, (Action, u32)>,
    /// Creators whose sign-in completed (their account's scopes are known to Reelay).
    connected: std::collections::BTreeSet<usize>,
    /// Planned creates that were accepted (a replay answers the first answer).
    accepted: std::collections::BTreeSet<usize>,
    /// Creators whose account a disconnect has been started for.
    disconnecting: std::collections::BTreeSet<usize>,
    tries: BTreeMap<String, u32>,
    next_operator: UtcTime,
    /// Invocations that died before they finished (crashes, Lambda timeouts).
    killed: BTreeSet<u64>,
}

/// A webhook on its way in.
#[derive(Debug, Clone)]
enum Incoming {
    TikTok(crate::tiktok::Webhook),
    Ssemble(crate::ssemble::Webhook),
}

fn lambda_timeout(kind: Option<QueueKind>) -> Duration {
    match kind {
        Some(QueueKind::Render) => Duration::from_secs(30),
        Some(QueueKind::Publish) => Duration::from_secs(300),
        None => Duration::from_secs(60),
    }
}

impl Sim {
    fn new(config: Config) -> Self {
        let start =
            UtcTime::parse("2026-12-01T09:00:00Z").unwrap_or_else(|_| UtcTime::from_secs(0));
        let clock = SimClock::new(start, config.seed);
        let chaos = Chaos::new(clock.clone());
        let hook: Arc<dyn Hook> = Arc::new(SimHook(chaos.clone()));
        let store = MemStore::new().with_hook(Arc::clone(&hook));
        let vault = MemVault::new().with_hook(hook);
        let queue = SimQueue::new(
            clock.clone(),
            chaos.clone(),
            QueueConfig {
                visibility: Duration::from_secs(180),
                max_receives: 5,
            },
            QueueConfig {
                visibility: Duration::from_secs(1800),
                max_receives: 5,
            },
        );
        let mut tiktok = TikTokSim::new(clock.clone(), chaos.clone(), TikTokFaults::default());
        tiktok.expired_upload_fails = clock.below(2) == 0;
        tiktok.pull = clock.below(3) == 0;
        let ssemble = SsembleSim::new(clock.clone(), chaos.clone(), SsembleFaults::default(), 100);
        let mut settings = Settings::default();
        settings.render.ssemble_scope = "ssemble:sim".into();
        settings.render.webhook_base_url = "https://reelay.sim".into();
        let core = Arc::new(Core::new(
            Adapters {
                store: store.clone(),
                queue: queue.clone(),
                clock: clock.clone(),
                vault,
                render: ssemble.clone(),
                tiktok: tiktok.clone(),
            },
            settings,
        ));
        let audit_bound = config.audit_bound;
        let seed = config.seed;
        Self {
            checker: Checker::new(audit_bound),
            report: Report {
                seed,
                ..Report::default()
            },
            config,
            clock,
            chaos,
            store,
            queue,
            tiktok,
            ssemble,
            core,
            exec: Executor::default(),
            deadlines: BTreeMap::new(),
            stalled: BTreeMap::new(),
            consumers: BTreeMap::new(),
            invocation_kind: BTreeMap::new(),
            next_tick: start,
            actions: Vec::new(),
            planned: Vec::new(),
            creators: Vec::new(),
            start,
            inbox: Vec::new(),
            later: Vec::new(),
            delivering: BTreeMap::new(),
            calling: BTreeMap::new(),
            connected: Default::default(),
            accepted: Default::default(),
            disconnecting: Default::default(),
            tries: BTreeMap::new(),
            next_operator: start,
            killed: BTreeSet::new(),
        }
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.config.trace {
            for note in self.clock.take_notes() {
                self.report.trace.push(format!("          {note}"));
            }
            let at = self.clock.now().since(self.start).as_secs();
            self.report.trace.push(format!("[{at:>7}s] {}", line()));
        }
    }

    // ── the scenario ──────────────────────────────────────────────────────────────────────

    fn plan(&mut self) {
        let tenants = 1 + self.clock.below(self.config.max_tenants);
        let accounts = 1 + self.clock.below(self.config.max_accounts);
        for a in 0..accounts {
            let tenant = TenantId::parse(format!("tenant{}", a % tenants))
                .unwrap_or_else(|_| unreachable_id());
            let account = AccountId::parse(format!("acct{a}")).unwrap_or_else(|_| unreachable_id());
            let draft_only = self.clock.below(6) == 0;
            let open_id = format!("openid{a}");
            let scopes: &[&str] = if draft_only {
                &["user.info.basic", "video.upload"]
            } else {
                &["user.info.basic", "video.upload", "video.publish"]
            };
            self.tiktok.add_creator(&open_id, scopes);
            self.creators.push(Creator {
                tenant,
                account,
                open_id,
                draft_only,
            });
        }
        let jobs = 1 + self.clock.below(self.config.max_jobs);
        // Planned URL jobs: the renders a later job may fan out.
        let mut renders: Vec<usize> = Vec::new();
        let mut creates_at: Vec<UtcTime> = Vec::new();
        for n in 0..jobs {
            let mut same_time = None;
            let mut c =
                self.creators[self.clock.below(self.creators.len() as u64) as usize].clone();
            let render = RenderRequest {
                media: MediaSource::Url(format!(
                    "https://video.sim/{}.mp4",
                    self.clock.below(1_000_000)
                )),
                start: 0.0,
                end: 300.0,
                options: Default::default(),
            };
            let source = match self.clock.below(10) {
                // One render fanned out: a job publishing an earlier URL job's render, the same
                // tenant's (accepted) or another tenant's (refused).
                0 | 1 if !renders.is_empty() => {
                    let of = renders[self.clock.below(renders.len() as u64) as usize];
                    let same = self.clock.below(3) != 0;
                    let owner = self.planned[of].tenant.clone();
                    let others: Vec<&Creator> =
                        self.creators.iter().filter(|c| c.tenant != owner).collect();
                    if !same && !others.is_empty() {
                        c = others[self.clock.below(others.len() as u64) as usize].clone();
                    } else if let Some(own) = self.creators.iter().find(|x| x.tenant == owner) {
                        c = own.clone();
                    }
                    Source::FanOut(of)
                }
                // A render made outside Reelay with the stage's key, or an id Ssemble does not
                // know: neither is any tenant's.
                2 => Source::Outside(
                    RequestId::parse(self.ssemble.existing_render(&render))
                        .unwrap_or_else(|_| unreachable_id()),
                ),
                3 => Source::Outside(
                    RequestId::parse(format!("{:024x}", 0xdead_0000_u64 + n))
                        .unwrap_or_else(|_| unreachable_id()),
                ),
                // Another tenant (or the same) clipping the same video as an earlier job, at
                // about the same time: a create whose answer is lost must not claim the other
                // job's render.
                4 | 5 if !renders.is_empty() => {
                    let of = renders[self.clock.below(renders.len() as u64) as usize];
                    renders.push(n as usize);
                    let near = creates_at[of].plus(Duration::from_secs(self.clock.below(600)));
                    same_time = Some(near.minus(Duration::from_secs(300)).max(self.start));
                    match &self.planned[of].source {
                        Source::Given(given) => Source::Given(given.clone()),
                        _ => Source::Given(JobSource::Render(render)),
                    }
                }
                _ => {
                    renders.push(n as usize);
                    Source::Given(JobSource::Render(render))
                }
            };
            // Now and then a client asks for a direct post on an account connected for drafts
            // only: it can never go, and is refused at create.
            let mode = if (c.draft_only && self.clock.below(5) != 0) || self.clock.below(4) == 0 {
                PostMode::Draft
            } else {
                PostMode::Direct
            };
            let at = self
                .start
                .plus(Duration::from_secs(self.clock.below(3 * 3600)));
            let create_at = same_time
                .unwrap_or_else(|| self.start.plus(Duration::from_secs(self.clock.below(1800))));
            creates_at.push(create_at);
            self.planned.push(Planned {
                tenant: c.tenant.clone(),
                account: c.account.clone(),
                title: format!("sim-job-{n}"),
                id: None,
                source,
                mode,
                at,
                key: format!("key-{n}"),
            });
            self.actions.push((create_at, Action::Create(n as usize)));
            if self.clock.below(5) == 0 {
                let later = create_at.plus(Duration::from_secs(self.clock.below(7200)));
                self.actions.push((later, Action::Replay(n as usize)));
            }
            if self.clock.below(12) == 0 {
                let later = create_at.plus(Duration::from_secs(self.clock.below(4 * 3600)));
                self.actions.push((later, Action::Cancel(n as usize)));
            }
            for _ in 0..self.clock.below(3) {
                let later = create_at.plus(Duration::from_secs(self.clock.below(3 * 3600)));
                self.actions.push((later, Action::Reschedule(n as usize)));
            }
            if renders.last() == Some(&(n as usize)) && self.clock.below(6) == 0 {
                let later = create_at.plus(Duration::from_secs(self.clock.below(6 * 3600)));
                self.actions.push((later, Action::Forget(n as usize)));
            }
        }
        for (i, _) in self.creators.clone().iter().enumerate() {
            if self.clock.below(8) == 0 {
                let at = self
                    .start
                    .plus(Duration::from_secs(self.clock.below(4 * 3600)));
                self.actions.push((at, Action::Revoke(i)));
                // Most creators reconnect; some never do (their jobs wait, visibly, for good).
                if self.clock.below(3) != 0 {
                    let back = at.plus(Duration::from_secs(600 + self.clock.below(20 * 3600)));
                    self.actions.push((back, Action::Reconnect(i)));
                }
            }
        }
        let n = self.creators.len() as u64;
        let impostor = self.clock.below(2) == 0;
        if !impostor {
            // The tenant disconnects an account now and then (not in a seed with an impostor:
            // a released creator may legitimately be signed in anywhere, which would blur the
            // impostor's judgement), and most come back.
            for i in 0..self.creators.len() {
                if self.clock.below(6) == 0 {
                    let at = self
                        .start
                        .plus(Duration::from_secs(self.clock.below(5 * 3600)));
                    self.actions.push((at, Action::Disconnect(i)));
                    if self.clock.below(3) != 0 {
                        let back = at.plus(Duration::from_secs(600 + self.clock.below(10 * 3600)));
                        self.actions.push((back, Action::Reconnect(i)));
                    }
                }
            }
        }
        if impostor {
            let creator = self.clock.below(n) as usize;
            let impostor = match self.clock.below(3) {
                0 if n >= 2 => Impostor::Bound {
                    creator,
                    account: ((creator as u64 + 1 + self.clock.below(n - 1)) % n) as usize,
                },
                1 => {
                    let open_id = "openid-stranger".to_owned();
                    self.tiktok
                        .add_creator(&open_id, &["user.info.basic", "video.upload"]);
                    Impostor::Stranger {
                        open_id,
                        account: creator,
                    }
                }
                _ => Impostor::Fresh {
                    creator,
                    account: fresh_account(),
                },
            };
            let at = self
                .start
                .plus(Duration::from_secs(self.clock.below(6 * 3600)));
            self.actions.push((at, Action::Impostor(impostor)));
        }
        self.actions.sort_by_key(|(t, _)| *t);
        // Outages of the store and the queue during the chaos phase.
        let outages = self.clock.below(4);
        for _ in 0..outages {
            let from = self.start.plus(Duration::from_secs(
                self.clock.below(self.config.chaos.as_secs().max(1)),
            ));
            let part = match self.clock.below(4) {
                0 => Part::Queue,
                1 => Part::Vault,
                _ => Part::Store,
            };
            let lasting = Duration::from_secs(5 + self.clock.below(180));
            self.chaos.outage(part, from, lasting);
        }
    }

    /// Connects every creator through the OAuth use cases, before any job.
    fn connect_all(&mut self) {
        for i in 0..self.creators.len() {
            self.connect(i);
        }
    }

    fn connect(&mut self, i: usize) {
        let c = self.creators[i].clone();
        let core = Arc::clone(&self.core);
        let label = format!("connect {}", c.account);
        let id = self.spawn(label, None, async move {
            let open_id = c.open_id.clone();
            let ok = sign_in(core, c, open_id).await;
            Done::Client { ok }
        });
        self.calling.insert(id, (Action::Reconnect(i), 0));
    }

    // ── invocations ───────────────────────────────────────────────────────────────────────

    fn spawn(
        &mut self,
        label: String,
        kind: Option<QueueKind>,
        fut: impl std::future::Future<Output = Done> + Send + 'static,
    ) -> u64 {
        let now = self.clock.now();
        let id = self.exec.spawn(label.clone(), now, fut);
        self.deadlines.insert(id, now.plus(lambda_timeout(kind)));
        self.invocation_kind.insert(id, kind);
        if let Some(k) = kind {
            *self.consumers.entry(slot(k)).or_default() += 1;
        }
        self.trace(|| format!("start #{id} {label}"));
        id
    }

    fn finished(&mut self, id: u64) -> Option<QueueKind> {
        self.deadlines.remove(&id);
        self.stalled.remove(&id);
        let kind = self.invocation_kind.remove(&id).flatten();
        if let Some(k) = kind
            && let Some(n) = self.consumers.get_mut(&slot(k))
        {
            *n = n.saturating_sub(1);
        }
        kind
    }

    /// A Lambda poller takes a batch of `kind` and runs it through the use case.
    fn consume(&mut self, kind: QueueKind) {
        let batch = 1 + self.clock.below(3) as usize;
        let deliveries = self.queue.receive(kind, batch);
        if deliveries.is_empty() {
            self.trace(|| format!("{kind:?} poller found nothing"));
            return;
        }
        let core = Arc::clone(&self.core);
        let label = format!(
            "{kind:?} consumer [{}]",
            deliveries
                .iter()
                .map(|d| format!("{}#{}", d.message.job_id, d.receives))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let deadline = self.clock.now().plus(lambda_timeout(Some(kind)));
        let clock = self.clock.clone();
        self.spawn(
            label,
            Some(kind),
            consumer(core, clock, kind, deliveries, deadline),
        );
    }

    fn tick(&mut self) {
        let core = Arc::clone(&self.core);
        let deadline = self.clock.now().plus(lambda_timeout(None));
        self.spawn("reconciler tick".into(), None, async move {
            core.reconcile(deadline).await;
            Done::Other
        });
    }

    fn tiktok_webhook(&mut self, w: crate::tiktok::Webhook) {
        let core = Arc::clone(&self.core);
        let label = format!("tiktok webhook {:?}", w.what);
        let incoming = Incoming::TikTok(w.clone());
        let id = self.spawn(label, None, async move {
            let result = match &w.what {
                WebhookKind::AuthorizationRemoved => core
                    .authorization_removed(&w.open_id, 1)
                    .await
                    .map(|_| ())
                    .map_err(|_| ()),
                WebhookKind::Status {
                    publish_id,
                    status,
                    post_ids,
                } => {
                    observe(
                        &core,
                        publish_id,
                        &w.open_id,
                        Observed::Status {
                            status: status.clone(),
                            post_ids: post_ids.clone(),
                        },
                    )
                    .await
                }
                WebhookKind::NoLongerPublic {
                    publish_id,
                    post_id,
                } => {
                    observe(
                        &core,
                        publish_id,
                        &w.open_id,
                        Observed::NoLongerPublic {
                            post_id: post_id.clone(),
                        },
                    )
                    .await
                }
            };
            // A non-200 answer: TikTok delivers again later (for 72 h).
            Done::TikTokWebhook {
                redeliver: result.is_err().then_some(w),
            }
        });
        self.delivering.insert(id, incoming);
    }

    fn ssemble_webhook(&mut self, w: crate::ssemble::Webhook) {
        let core = Arc::clone(&self.core);
        let deadline = self.clock.now().plus(Duration::from_secs(7));
        let label = format!("ssemble webhook {}", w.request_id);
        let incoming = Incoming::Ssemble(w.clone());
        let id = self.spawn(label, None, async move {
            let target = w.url.rsplit('/').next().unwrap_or_default().to_owned();
            let Some((job, token)) = target.split_once('.') else {
                return Done::Other;
            };
            let (Ok(job), Ok(rid)) = (JobId::parse(job), RequestId::parse(w.request_id.clone()))
            else {
                return Done::Other;
            };
            let token = SecretString::from(token.to_owned());
            let hint = RenderHint {
                request_id: Some(rid),
                completed: w.completed,
            };
            let result = core.render_hint(&job, &token, &hint, deadline).await;
            Done::SsembleWebhook {
                redeliver: result.is_err().then_some(w),
            }
        });
        self.delivering.insert(id, incoming);
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Create(n) | Action::Replay(n) => {
                let p = self.planned[n].clone();
                // The render to publish, and whether it is the tenant's own.
                let (source, owned) = match &p.source {
                    Source::Given(source) => (source.clone(), true),
                    Source::Outside(request_id) => (
                        JobSource::Rendered {
                            request_id: request_id.clone(),
                        },
                        false,
                    ),
                    Source::FanOut(of) => {
                        let of = &self.planned[*of];
                        match self.job_titled(&of.title).and_then(|j| j.request_id) {
                            Some(request_id) => {
                                (JobSource::Rendered { request_id }, of.tenant == p.tenant)
                            }
                            // The client waits for the render's id, as the demo does, for a
                            // day at most (the job may never get one: cancelled, refused).
                            None => {
                                let waited = self.tries.entry(format!("{action:?}")).or_default();
                                *waited += 1;
                                if *waited <= 48 {
                                    let at = self.clock.now().plus(MINUTE.saturating_mul(30));
                                    let pos = self.actions.partition_point(|(t, _)| *t <= at);
                                    self.actions.insert(pos, (at, action));
                                }
                                return;
                            }
                        }
                    }
                };
                // A direct post for an account connected for drafts only can never go: refused
                // once the sign-in completed (before, Reelay does not know the scopes yet), unless
                // an earlier create with the key was accepted (a replay answers that).
                let creator = self
                    .creators
                    .iter()
                    .position(|c| c.tenant == p.tenant && c.account == p.account);
                let drafts_only = p.mode == PostMode::Direct
                    && creator.is_some_and(|i| self.creators[i].draft_only);
                let must_refuse = drafts_only
                    && creator.is_some_and(|i| self.connected.contains(&i))
                    && !self.accepted.contains(&n);
                let disconnected = creator.is_some_and(|i| self.disconnecting.contains(&i));
                // A batch of one source for several accounts: a later job of the tenant with the
                // same render source shares the first one's render (as `create_batch` decides).
                let fan_out_parent = match &source {
                    JobSource::Render(request) => self
                        .store
                        .jobs()
                        .into_iter()
                        .filter(|j| j.tenant_id == p.tenant && j.fan_out_parent.is_none())
                        .find(|j| matches!(&j.source, JobSource::Render(r) if r == request))
                        .map(|j| j.id),
                    JobSource::Rendered { .. } => None,
                };
                let core = Arc::clone(&self.core);
                let store = self.store.clone();
                let replay = matches!(action, Action::Replay(_));
                let id = self.spawn(
                    format!("client creates {} (replay: {replay})", p.title),
                    None,
                    async move {
                        let parsed = NewJob {
                            job_id: None,
                            account_id: p.account.clone(),
                            source,
                            post: post(p.mode, &p.title),
                            schedule_at: Some(p.at),
                            next_slot: false,
                            fan_out_parent,
                            idempotency_key: IdempotencyKey::parse(p.key.clone()).ok(),
                            api_request_id: Some(format!("sim-req-{}", p.title)),
                        };
                        let fingerprint = PayloadHash::of(&serde_json::json!({ "title": p.title }));
                        let created = core
                            .create_job(&p.tenant, parsed, &fingerprint, |job| {
                                reelay_domain::ports::StoredResponse {
                                    status: 202,
                                    body: job.id.to_string(),
                                }
                            })
                            .await;
                        match created {
                            Err(CreateError::DirectPostNotAuthorized(_)) if drafts_only => {
                                Done::DirectRefused
                            }
                            Err(CreateError::DirectPostNotAuthorized(_)) => Done::Misjudged(
                                format!("{}: a direct post refused on a direct account", p.title),
                            ),
                            Ok(_) if must_refuse => Done::Misjudged(format!(
                                "{}: a direct post accepted for a drafts-only account",
                                p.title
                            )),
                            Err(CreateError::AccountDisconnected(_)) if disconnected => Done::Other,
                            Err(CreateError::AccountDisconnected(_)) => Done::Misjudged(format!(
                                "{}: refused as disconnected, but nobody disconnected it",
                                p.title
                            )),
                            Err(CreateError::UnknownRender(_)) if !owned => Done::RenderRefused,
                            // A render Ssemble lost (every job of it failed
                            // `resource_not_found`) is no render to publish any more.
                            Err(CreateError::UnknownRender(r)) if render_gone(&store, &r) => {
                                Done::RenderRefused
                            }
                            Err(CreateError::UnknownRender(r)) => {
                                Done::Misjudged(format!("{}: its own render {r} refused", p.title))
                            }
                            Ok(_) if !owned => Done::Misjudged(format!(
                                "{}: a render not its tenant's was accepted",
                                p.title
                            )),
                            other => Done::Client { ok: other.is_ok() },
                        }
                    },
                );
                self.calling.insert(id, (action, 0));
            }
            Action::Cancel(n) => {
                let title = self.planned[n].title.clone();
                if let Some(job) = self.job_titled(&title) {
                    let core = Arc::clone(&self.core);
                    self.spawn(format!("client cancels {title}"), None, async move {
                        let _ = core.command(&job.tenant_id, &job.id, Command::Cancel).await;
                        Done::Other
                    });
                }
            }
            Action::Revoke(i) => {
                let open_id = self.creators[i].open_id.clone();
                self.trace(|| format!("creator {open_id} removes the app"));
                self.tiktok.revoke(&open_id);
            }
            Action::Reconnect(i) => {
                let open_id = self.creators[i].open_id.clone();
                self.tiktok.restore(&open_id);
                self.connect(i);
            }
            Action::Impostor(impostor) => self.impostor(&impostor),
            Action::Reschedule(n) => {
                let title = self.planned[n].title.clone();
                if let Some(job) = self.job_titled(&title) {
                    // Anywhere from an hour ago (go now) to three hours ahead.
                    let at = self
                        .clock
                        .now()
                        .plus(Duration::from_secs(self.clock.below(4 * 3600)))
                        .minus(Duration::from_secs(3600));
                    self.report.reschedules += 1;
                    let core = Arc::clone(&self.core);
                    self.spawn(format!("client reschedules {title}"), None, async move {
                        let amendment = reelay_domain::request::Amendment {
                            next_slot: false,
                            schedule_at: Some(at),
                            title: None,
                        };
                        let _ = core.amend(&job.tenant_id, &job.id, amendment).await;
                        Done::Other
                    });
                }
            }
            Action::Disconnect(i) => {
                let c = self.creators[i].clone();
                self.connected.remove(&i);
                self.disconnecting.insert(i);
                self.report.disconnects += 1;
                let core = Arc::clone(&self.core);
                let id = self.spawn(
                    format!("tenant disconnects {}", c.account),
                    None,
                    async move {
                        let done = core.disconnect_account(&c.tenant, &c.account).await;
                        Done::Client { ok: done.is_ok() }
                    },
                );
                self.calling.insert(id, (action, 0));
            }
            Action::Forget(n) => {
                let title = self.planned[n].title.clone();
                if let Some(rid) = self.job_titled(&title).and_then(|j| j.request_id) {
                    self.trace(|| format!("operator deletes {title}'s render {rid} at Ssemble"));
                    self.ssemble.delete(rid.as_str());
                }
            }
        }
    }

    /// The wrong creator signs in on a connect link, once something is bound that must refuse
    /// it: before that, a first connection by whoever signs in is a legitimate one.
    fn impostor(&mut self, impostor: &Impostor) {
        let bound = |c: &Creator| {
            self.store
                .account(&c.tenant, &c.account)
                .and_then(|a| a.open_id)
                .is_some_and(|o| o == c.open_id)
        };
        let (open_id, target, refusable) = match impostor {
            Impostor::Bound { creator, account } => {
                let (who, target) = (&self.creators[*creator], &self.creators[*account]);
                (
                    who.open_id.clone(),
                    target.clone(),
                    bound(who) || bound(target),
                )
            }
            Impostor::Stranger { open_id, account } => {
                let target = &self.creators[*account];
                (open_id.clone(), target.clone(), bound(target))
            }
            Impostor::Fresh { creator, account } => {
                let who = &self.creators[*creator];
                let target = Creator {
                    account: account.clone(),
                    open_id: String::new(),
                    ..who.clone()
                };
                (who.open_id.clone(), target, bound(who))
            }
        };
        if !refusable {
            self.trace(|| format!("impostor {open_id} skipped: nothing bound yet"));
            return;
        }
        self.trace(|| format!("{open_id} signs in on {}'s connect link", target.account));
        self.report.impostors += 1;
        let label = format!("impostor {open_id} on {}", target.account);
        let core = Arc::clone(&self.core);
        self.spawn(label, None, async move {
            let _ = sign_in(core, target, open_id).await;
            Done::Other
        });
    }

    fn job_titled(&self, title: &str) -> Option<reelay_domain::Job> {
        self.store
            .jobs()
            .into_iter()
            .find(|j| j.post.title.as_deref() == Some(title))
    }

    /// The operator's runbook: a job parked for an operator is retried only when TikTok holds
    /// no publish of it that may still post (the creator's profile shows nothing).
    fn operator(&mut self) {
        for job in self.store.jobs() {
            if job.state == JobState::PublishUnknown
                && job.hold_reason() == Some("needs_operator")
                && job.publish_id.is_none()
            {
                let title = job.post.title.clone().unwrap_or_default();
                if self
                    .tiktok
                    .publishes_of(&title)
                    .iter()
                    .any(|p| p.may_post())
                {
                    continue;
                }
                let core = Arc::clone(&self.core);
                self.spawn(format!("operator retries {}", job.id), None, async move {
                    let _ = core.command(&job.tenant_id, &job.id, Command::Retry).await;
                    Done::Other
                });
            }
        }
    }

    /// A client call that failed (or whose answer was lost) is made again a little later.
    fn call_again(&mut self, id: u64) {
        let Some((action, _)) = self.calling.remove(&id) else {
            return;
        };
        let key = format!("{action:?}");
        let tries = self.tries.entry(key).or_default();
        *tries += 1;
        if *tries <= 8 {
            let at = self.clock.now().plus(MINUTE.saturating_mul(1 + *tries));
            let pos = self.actions.partition_point(|(t, _)| *t <= at);
            self.actions.insert(pos, (at, action));
        }
    }

    fn done(&mut self, id: u64, label: &str, out: Done) {
        let kind = self.finished(id);
        self.delivering.remove(&id);
        if let Done::Client { ok: true } = out {
            match self.calling.get(&id) {
                Some((Action::Reconnect(i), _)) => {
                    self.connected.insert(*i);
                }
                Some((Action::Create(n) | Action::Replay(n), _)) => {
                    self.accepted.insert(*n);
                }
                _ => {}
            }
        }
        if !matches!(out, Done::Client { ok: false }) {
            self.calling.remove(&id);
        }
        self.trace(|| format!("done #{id} {label}"));
        match out {
            Done::Consumer { kind: k, results } => {
                debug_assert_eq!(kind, Some(k));
                for (msg, retry) in results {
                    match retry {
                        None => self.queue.ack(k, msg),
                        Some(after) => self.queue.retry_after(k, msg, after),
                    }
                }
            }
            Done::TikTokWebhook { redeliver: Some(w) } => {
                let at = self
                    .clock
                    .now()
                    .plus(MINUTE.saturating_mul(1 + self.clock.below(30) as u32));
                self.later.push((at, Incoming::TikTok(w)));
            }
            Done::SsembleWebhook { redeliver: Some(w) } => {
                let at = self.clock.now().plus(MINUTE);
                self.later.push((at, Incoming::Ssemble(w)));
            }
            Done::Client { ok: false } => self.call_again(id),
            Done::RenderRefused => self.report.renders_refused += 1,
            Done::DirectRefused => self.report.direct_refused += 1,
            Done::Misjudged(why) => self.checker.violation(why),
            _ => {}
        }
    }
}

/// What the driver may do next.
#[derive(Debug, Clone, Copy)]
enum Candidate {
    Poll(u64),
    Act,
    Deliver(usize),
    Consume(QueueKind),
    Tick,
}

impl Sim {
    /// An invocation dies where it stands (a crash, or Lambda's timeout); what it was carrying
    /// comes back the way AWS brings it back.
    fn kill(&mut self, id: u64, why: &str) {
        if let Some(label) = self.exec.crash(id) {
            self.killed.insert(id);
            self.trace(|| format!("{why} #{id} {label}"));
            self.finished(id);
            // Queue messages return after their visibility timeout by themselves; a webhook
            // sender sees no answer and delivers again.
            if let Some(incoming) = self.delivering.remove(&id) {
                let at = self
                    .clock
                    .now()
                    .plus(MINUTE.saturating_mul(1 + self.clock.below(10) as u32));
                self.later.push((at, incoming));
            }
            self.call_again(id);
        }
    }

    /// The reconciler's next schedule tick that can find work: ticks with nothing due are
    /// skipped (they would read an empty due index and stop).
    fn due_tick(&self) -> UtcTime {
        let lookahead = self.core.settings.policy.enqueue_ahead;
        let earliest = self
            .store
            .jobs()
            .iter()
            .filter(|j| !j.is_terminal())
            .filter_map(|j| j.next_check.map(|c| c.at))
            .min();
        match earliest {
            Some(t) if t.minus(lookahead) > self.next_tick => {
                let since = t.minus(lookahead).since(self.start).as_secs();
                self.start
                    .plus(Duration::from_secs(since.div_ceil(60) * 60))
            }
            Some(_) => self.next_tick,
            None => self.start.plus(Duration::from_secs(100 * 365 * 86_400)),
        }
    }

    fn candidates(&mut self) -> Vec<Candidate> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for id in self.exec.runnable() {
            if self.stalled.get(&id).is_none_or(|t| *t <= now) {
                out.push(Candidate::Poll(id));
            }
        }
        if self.actions.first().is_some_and(|(t, _)| *t <= now) {
            out.push(Candidate::Act);
        }
        for i in 0..self.inbox.len() {
            out.push(Candidate::Deliver(i));
        }
        for (kind, limit) in [(QueueKind::Render, 2), (QueueKind::Publish, 3)] {
            if self.queue.has_visible(kind)
                && self.consumers.get(&slot(kind)).copied().unwrap_or(0) < limit
            {
                out.push(Candidate::Consume(kind));
            }
        }
        if self.due_tick() <= now {
            out.push(Candidate::Tick);
        }
        out
    }

    /// Moves time to the next thing that can happen; `false` when nothing can before `end`.
    fn wait(&mut self, end: UtcTime) -> bool {
        let now = self.clock.now();
        let mut next: Vec<UtcTime> = Vec::new();
        next.extend(self.clock.next_timer());
        next.extend(self.stalled.values().copied().filter(|t| *t > now));
        next.extend(self.deadlines.values().copied().filter(|t| *t > now));
        next.extend(self.queue.next_visible());
        next.extend(self.tiktok.next_change());
        next.extend(self.ssemble.next_change());
        next.extend(self.actions.first().map(|(t, _)| *t));
        next.extend(self.later.iter().map(|(t, _)| *t));
        next.push(self.due_tick());
        next.push(self.next_operator);
        let Some(to) = next.into_iter().filter(|t| *t > now).min() else {
            return false;
        };
        if to > end {
            return false;
        }
        self.clock.advance_to(to);
        true
    }

    /// Everything that happens by itself at the current time.
    fn settle_time(&mut self) {
        let now = self.clock.now();
        if now >= self.start.plus(self.config.chaos) && !self.chaos.is_calm() {
            self.chaos.calm_down();
            self.trace(|| "calm: no more faults".into());
        }
        self.tiktok.advance();
        self.ssemble.advance();
        for w in self.tiktok.due_webhooks() {
            self.inbox.push(Incoming::TikTok(w));
        }
        for w in self.ssemble.due_webhooks() {
            self.inbox.push(Incoming::Ssemble(w));
        }
        let (due, later): (Vec<_>, Vec<_>) = self.later.drain(..).partition(|(t, _)| *t <= now);
        self.later = later;
        self.inbox.extend(due.into_iter().map(|(_, i)| i));
        let expired: Vec<u64> = self
            .deadlines
            .iter()
            .filter(|(_, d)| **d < now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.kill(id, "lambda timeout");
        }
        if self.next_operator <= now {
            self.next_operator = now.plus(HOUR);
            self.operator();
        }
    }

    fn chaos_step(&mut self) {
        // TikTok accepted an init and the publisher has not recorded it yet: die right here
        // now and then (what the campaign calls the init-accepted kill point).
        if let Some(id) = self.tiktok.take_just_accepted()
            && self.chaos.roll(self.config.init_kill_rate)
        {
            self.report.crashes += 1;
            self.kill(id, "crash after TikTok accepted the init");
            return;
        }
        if self.chaos.is_calm() || self.exec.is_empty() {
            return;
        }
        let ids = self.exec.ids();
        if self.chaos.roll(self.config.crash_rate) {
            let id = ids[self.clock.below(ids.len() as u64) as usize];
            self.report.crashes += 1;
            self.kill(id, "crash");
        } else if self.chaos.roll(self.config.stall_rate) {
            let id = ids[self.clock.below(ids.len() as u64) as usize];
            let until = self
                .clock
                .now()
                .plus(SECOND.saturating_mul(1 + self.clock.below(400) as u32));
            self.report.stalls += 1;
            self.stalled.insert(id, until);
            self.trace(|| format!("stall #{id} until {until}"));
        }
    }

    fn take(&mut self, candidate: Candidate) {
        match candidate {
            Candidate::Poll(id) => {
                self.clock
                    .set_current(self.exec.started(id).map(|started| (id, started)));
                let finished = self.exec.step(id);
                self.clock.set_current(None);
                if let Some((label, out)) = finished {
                    self.done(id, &label, out);
                }
            }
            Candidate::Act => {
                if !self.actions.is_empty() {
                    let (_, action) = self.actions.remove(0);
                    self.act(action);
                }
            }
            Candidate::Deliver(i) => {
                if i < self.inbox.len() {
                    match self.inbox.remove(i) {
                        Incoming::TikTok(w) => self.tiktok_webhook(w),
                        Incoming::Ssemble(w) => self.ssemble_webhook(w),
                    }
                }
            }
            Candidate::Consume(kind) => self.consume(kind),
            Candidate::Tick => {
                self.next_tick = self.clock.now().plus(MINUTE);
                self.tick();
            }
        }
    }
}

/// Runs one seed to its end and judges it.
pub fn run(config: Config) -> Report {
    let mut sim = Sim::new(config);
    if sim.config.trace {
        sim.clock.keep_notes();
    }
    sim.plan();
    sim.connect_all();
    let end = sim.start.plus(sim.config.bound);
    let max_steps = sim.config.max_steps;
    loop {
        sim.settle_time();
        let candidates = sim.candidates();
        if candidates.is_empty() {
            if !sim.wait(end) {
                break;
            }
            continue;
        }
        let pick = candidates[sim.clock.below(candidates.len() as u64) as usize];
        sim.take(pick);
        sim.chaos_step();
        sim.report.steps += 1;
        sim.checker.step(
            &sim.store,
            &sim.tiktok,
            &sim.ssemble,
            &sim.core.settings.policy,
            sim.clock.now(),
        );
        sim.checker.never_ahead(&sim.store, &sim.tiktok);
        if sim.report.steps >= max_steps {
            sim.checker
                .violation(format!("the run did not end within {max_steps} steps"));
            break;
        }
    }
    sim.finish()
}

impl Sim {
    fn finish(mut self) -> Report {
        let now = self.clock.now();
        self.checker.finish(
            &self.store,
            &self.tiktok,
            &self.ssemble,
            &self.planned,
            &self.core.settings.policy,
            now,
        );
        self.checker
            .agreement(&self.store, &self.tiktok, &self.killed);
        // One creator, one account: whatever sign-ins happened, an account and its tokens
        // belong to its own creator.
        // (The fresh account has no creator of its own: nothing may be bound to it.)
        let fresh = self.creators.first().map(|c| Creator {
            account: fresh_account(),
            open_id: String::new(),
            ..c.clone()
        });
        for c in self.creators.iter().chain(&fresh) {
            let bound = self
                .store
                .account(&c.tenant, &c.account)
                .and_then(|a| a.open_id);
            let tokens = self.core.ports.vault.tokens(&c.tenant, &c.account);
            for (what, open_id) in [("account", bound), ("tokens", tokens.map(|t| t.open_id))] {
                if let Some(other) = open_id.filter(|o| *o != c.open_id) {
                    self.checker.violation(format!(
                        "{}'s {what} belong to creator {other}; its own creator is {}",
                        c.account,
                        if c.open_id.is_empty() {
                            "none"
                        } else {
                            &c.open_id
                        }
                    ));
                }
            }
        }
        self.checker.render_reasons(&self.store, &self.ssemble);
        let jobs = self.store.jobs();
        self.report.jobs = jobs.len();
        self.report.fan_out_children = jobs
            .iter()
            .filter(|j| {
                j.fan_out_parent.is_some()
                    && jobs.iter().any(|p| {
                        Some(&p.id) == j.fan_out_parent.as_ref()
                            && p.request_id.is_some()
                            && p.request_id == j.request_id
                    })
            })
            .count();
        if self.config.trace {
            for job in &jobs {
                let trail = self
                    .store
                    .audit_trail(&job.id)
                    .iter()
                    .map(|e| {
                        let secs = e.at.since(self.start).as_secs();
                        format!(
                            "{secs:>7}s v{} {} {:?}→{} {} {}",
                            e.version,
                            e.event,
                            e.from.map(|f| f.as_str()),
                            e.to,
                            e.error_code.clone().unwrap_or_default(),
                            e.detail.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                self.report.audits.insert(job.id.to_string(), trail);
            }
        }
        for job in &jobs {
            *self
                .report
                .states
                .entry(job.state.as_str().to_owned())
                .or_default() += 1;
            let why = job
                .hold_reason()
                .map(str::to_owned)
                .or_else(|| job.last_error.as_ref().map(|e| e.code.clone()))
                .unwrap_or_default();
            *self
                .report
                .reasons
                .entry(format!("{}/{why}", job.state))
                .or_default() += 1;
            self.report.stale_observations += u64::from(job.stale_observations);
        }
        self.report.inits = self.tiktok.inits();
        self.report.creates = self.ssemble.creates();
        self.report.dead_letters = self.queue.dead_letters();
        self.report.outage_failures = self.chaos.failed_calls();
        self.report.violations = self.checker.violations();
        self.report
    }
}

fn slot(kind: QueueKind) -> u8 {
    match kind {
        QueueKind::Render => 0,
        QueueKind::Publish => 1,
    }
}

fn unreachable_id<T>() -> T {
    panic!("a simulation id is always valid")
}

fn post(mode: PostMode, title: &str) -> PostSettings {
    PostSettings {
        mode,
        privacy_level: Some(PrivacyLevel::PublicToEveryone),
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

async fn observe(
    core: &SimCore,
    publish_id: &str,
    open_id: &str,
    what: Observed,
) -> Result<(), ()> {
    let Ok(publish_id) = reelay_domain::PublishId::parse(publish_id.to_owned()) else {
        return Ok(());
    };
    let observation = Observation {
        publish_id,
        open_id: open_id.to_owned(),
        what,
    };
    // A store failure, or "not yet" (an init of the account in flight): TikTok delivers again.
    match core.observe_publish(&observation).await {
        Ok(ObserveOutcome::Later) | Err(_) => Err(()),
        Ok(_) => Ok(()),
    }
}

/// A queue consumer invocation, with the FIFO rules of the batch processor: records in order, a
/// failed record takes the rest of its group with it, nothing starts too close to the deadline,
/// and a publish due within two seconds is waited for in-process.
async fn consumer(
    core: SimCore,
    clock: SimClock,
    kind: QueueKind,
    deliveries: Vec<Delivery>,
    deadline: UtcTime,
) -> Done {
    let mut results = Vec::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for d in deliveries {
        let group = d.message.group_id();
        if failed.contains(&group) || clock.now().plus(Duration::from_secs(5)) >= deadline {
            failed.insert(group);
            results.push((d.id, Some(Duration::ZERO)));
            continue;
        }
        let retry = match kind {
            QueueKind::Render => match core.submit_render(&d.message.job_id).await {
                Ok(_) => None,
                Err(_) => Some(core.settings.store_retry),
            },
            QueueKind::Publish => {
                let mut answer = core.publish(&d.message.job_id, deadline).await;
                if let Err(Wait {
                    timing: WaitTiming::Schedule,
                    after,
                    ..
                }) = &answer
                    && *after <= Duration::from_secs(2)
                {
                    clock.sleep(*after).await;
                    answer = core.publish(&d.message.job_id, deadline).await;
                }
                match answer {
                    Ok(PublishOutcome::Unrecorded) | Ok(_) => None,
                    Err(w) => Some(w.after),
                }
            }
        };
        if retry.is_some() {
            failed.insert(group);
        }
        results.push((d.id, retry));
    }
    Done::Consumer { kind, results }
}

/// Whether every job of `request_id` failed because Ssemble no longer knows it.
fn render_gone(store: &MemStore, request_id: &RequestId) -> bool {
    let jobs: Vec<reelay_domain::Job> = store
        .request_pointers(request_id)
        .iter()
        .filter_map(|id| store.job(id))
        .collect();
    !jobs.is_empty()
        && jobs.iter().all(|j| {
            j.state == JobState::RenderFailed
                && j.last_error
                    .as_ref()
                    .is_some_and(|e| e.code == reelay_domain::usecase::RENDER_GONE)
        })
}
