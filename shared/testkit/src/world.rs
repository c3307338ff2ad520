//! [`World`]: the in-memory adapters wired together, with builders that set up tenants, accounts
//! and jobs through the same port calls the code makes.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::job::{JobSource, PostSettings};
use reelay_domain::ports::{AccountStore, Adapters, Entropy, JobStore, TenantStore, TokenVault};
use reelay_domain::tenant::{ApiKey, Tenant};
use reelay_domain::usecase::{Core, Settings};
use reelay_domain::{
    AccountId, IdempotencyKey, Job, JobId, PostMode, RequestId, TenantId, UtcTime,
};
use secrecy::SecretString;

use crate::clock::{DEFAULT_START_MS, ManualClock};
use crate::hook::{Hook, HookSlot};
use crate::queue::MemQueue;
use crate::sample;
use crate::ssemble::FakeSsemble;
use crate::store::MemStore;
use crate::tiktok::{DIRECT_SCOPES, FakeTikTok};
use crate::vault::MemVault;

/// Every port, in memory.
pub type MemAdapters = Adapters<MemStore, MemQueue, ManualClock, MemVault, FakeSsemble, FakeTikTok>;
/// The domain's use cases over [`MemAdapters`].
pub type MemCore = Core<MemAdapters>;

/// The in-memory adapters (sharing one clock), the settings, and an optional hook for the core.
///
/// The fields are handles to the shared state: a test scripts the fakes and inspects the store,
/// queue and vault through them while the code under test runs on [`World::core`]. Builders
/// panic on a setup that cannot be made (an invalid id, an account added twice), like an
/// assertion would.
#[derive(Debug, Clone)]
pub struct World {
    pub clock: ManualClock,
    pub store: MemStore,
    pub queue: MemQueue,
    pub vault: MemVault,
    pub ssemble: FakeSsemble,
    pub tiktok: FakeTikTok,
    pub settings: Settings,
    hook: HookSlot,
}

/// How [`World::account_with`] sets up an account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSetup {
    pub health: AccountHealth,
    pub scopes: Vec<String>,
    /// The TikTok user; `open-<account>` when `None`.
    pub open_id: Option<String>,
    /// Tokens in the vault and the account marked connected; otherwise as `connect_account`
    /// leaves a new account (needs re-authorisation, no tokens).
    pub connected: bool,
}

impl Default for AccountSetup {
    /// Connected for direct posts, active.
    fn default() -> Self {
        Self {
            health: AccountHealth::Active,
            scopes: DIRECT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            open_id: None,
            connected: true,
        }
    }
}

impl AccountSetup {
    /// Connected for drafts only (no `video.publish`).
    pub fn draft_only() -> Self {
        Self {
            scopes: DIRECT_SCOPES[..2].iter().map(|s| (*s).to_owned()).collect(),
            ..Self::default()
        }
    }

    /// Created but never connected.
    pub fn not_connected() -> Self {
        Self {
            connected: false,
            ..Self::default()
        }
    }

    pub fn open_id(mut self, open_id: &str) -> Self {
        self.open_id = Some(open_id.to_owned());
        self
    }
}

/// A job for [`World::job`]: what `Job::create` takes.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSetup {
    pub tenant: TenantId,
    pub account: AccountId,
    pub source: JobSource,
    pub post: PostSettings,
    /// `None`: now.
    pub schedule_at: Option<UtcTime>,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl JobSetup {
    /// A job that renders [`sample::render_request`] and posts it directly.
    pub fn render(tenant: &str, account: &str) -> Self {
        Self {
            tenant: tenant_id(tenant),
            account: account_id(account),
            source: JobSource::Render(sample::render_request()),
            post: sample::post(PostMode::Direct),
            schedule_at: None,
            idempotency_key: None,
        }
    }

    /// A job that posts an existing render (it starts `rendering`).
    pub fn rendered(tenant: &str, account: &str, request_id: &RequestId) -> Self {
        Self {
            source: JobSource::Rendered {
                request_id: request_id.clone(),
            },
            ..Self::render(tenant, account)
        }
    }

    /// An inbox draft instead of a direct post.
    pub fn draft(mut self) -> Self {
        self.post = sample::post(PostMode::Draft);
        self
    }

    pub fn post(mut self, post: PostSettings) -> Self {
        self.post = post;
        self
    }

    pub fn schedule_at(mut self, at: UtcTime) -> Self {
        self.schedule_at = Some(at);
        self
    }

    pub fn key(mut self, key: &str) -> Self {
        self.idempotency_key = Some(parse_or_panic(
            IdempotencyKey::parse(key),
            "idempotency key",
        ));
        self
    }
}

fn parse_or_panic<T, E: std::fmt::Display>(parsed: Result<T, E>, what: &str) -> T {
    match parsed {
        Ok(v) => v,
        Err(e) => panic!("world setup: invalid {what}: {e}"),
    }
}

/// A tenant id, for tests (panics if invalid).
pub fn tenant_id(raw: &str) -> TenantId {
    parse_or_panic(TenantId::parse(raw), "tenant id")
}

/// An account id, for tests (panics if invalid).
pub fn account_id(raw: &str) -> AccountId {
    parse_or_panic(AccountId::parse(raw), "account id")
}

/// The raw API key [`World::tenant`] registers for `tenant`.
pub fn api_key(tenant: &str) -> SecretString {
    SecretString::from(format!("rk_test_{tenant}"))
}

/// SHA-256 (hex) of an API key: the form the tenant store keeps.
pub fn api_key_hash(key: &SecretString) -> String {
    reelay_domain::tenant::hash_api_key(key)
}

/// Runs a world-setup call. The unhooked in-memory adapters never wait, so the future is polled
/// once, without an executor (a builder may run inside the simulation's own executor).
fn at_once<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match fut.now_or_never() {
        Some(v) => v,
        None => panic!("world setup: {what} did not complete at once"),
    }
}

fn ready<T, E: std::fmt::Display>(what: &str, fut: impl Future<Output = Result<T, E>>) -> T {
    match at_once(what, fut) {
        Ok(v) => v,
        Err(e) => panic!("world setup: {what} failed: {e}"),
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// Seed 0, the clock at [`DEFAULT_START_MS`] (2026-03-10T18:00:00Z), `Settings::default()`.
    pub fn new() -> Self {
        Self::seeded(0)
    }

    /// `seed` drives every random value the code asks the clock for (job ids, tokens, states).
    pub fn seeded(seed: u64) -> Self {
        let clock = ManualClock::new(UtcTime::from_millis(DEFAULT_START_MS), seed);
        Self {
            store: MemStore::new(),
            queue: MemQueue::new(clock.clone()),
            vault: MemVault::new(),
            ssemble: FakeSsemble::new(clock.clone()),
            tiktok: FakeTikTok::new(clock.clone()),
            settings: Settings::default(),
            hook: HookSlot::default(),
            clock,
        }
    }

    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Every adapter of [`World::core`] awaits `hook` before each call; the world's own handles
    /// (and its builders) stay unhooked.
    pub fn with_hook(mut self, hook: Arc<dyn Hook>) -> Self {
        self.hook = HookSlot::new(hook);
        self
    }

    /// The adapters the core runs on (hooked if the world has a hook).
    pub fn adapters(&self) -> MemAdapters {
        match self.hook.get() {
            Some(h) => Adapters {
                store: self.store.with_hook(Arc::clone(&h)),
                queue: self.queue.with_hook(Arc::clone(&h)),
                clock: self.clock.with_hook(Arc::clone(&h)),
                vault: self.vault.with_hook(Arc::clone(&h)),
                render: self.ssemble.with_hook(Arc::clone(&h)),
                tiktok: self.tiktok.with_hook(h),
            },
            None => self.unhooked(),
        }
    }

    fn unhooked(&self) -> MemAdapters {
        Adapters {
            store: self.store.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            vault: self.vault.clone(),
            render: self.ssemble.clone(),
            tiktok: self.tiktok.clone(),
        }
    }

    /// The use cases, over this world's adapters and settings.
    pub fn core(&self) -> MemCore {
        Core::new(self.adapters(), self.settings.clone())
    }

    /// The use cases over the world's own, unhooked handles: another actor a hook can run (a
    /// webhook moving a job while the hooked core is at it).
    pub fn unhooked_core(&self) -> MemCore {
        Core::new(self.unhooked(), self.settings.clone())
    }

    /// Creates the tenant and registers the SHA-256 of [`api_key`]`(tenant)` for it.
    pub fn tenant(self, tenant: &str) -> Self {
        let id = tenant_id(tenant);
        let now = self.clock.now();
        let record = Tenant {
            id: id.clone(),
            name: tenant.to_owned(),
            created_at: now,
        };
        let key = ApiKey {
            hash: api_key_hash(&api_key(tenant)),
            tenant: id,
            created_at: now,
            not_after: None,
            revoked: false,
        };
        ready("put_tenant", self.store.put_tenant(&record));
        ready("put_api_key", self.store.put_api_key(&key));
        self
    }

    /// An account connected for direct posts: tokens issued by the fake TikTok in the vault,
    /// active, open_id `open-<tenant>-<account>` (one creator, one account).
    pub fn account(self, tenant: &str, account: &str) -> Self {
        self.account_with(tenant, account, AccountSetup::default())
    }

    pub fn account_with(self, tenant: &str, account: &str, setup: AccountSetup) -> Self {
        let (t, a) = (tenant_id(tenant), account_id(account));
        let mut record = Account::new(t.clone(), a.clone());
        if setup.connected {
            let open_id = setup
                .open_id
                .clone()
                .unwrap_or_else(|| format!("open-{tenant}-{account}"));
            let scopes: Vec<&str> = setup.scopes.iter().map(String::as_str).collect();
            let tokens = self.tiktok.issue_tokens(&open_id, &scopes);
            ready("put_tokens", self.vault.put_tokens(&t, &a, &tokens));
            record.health = setup.health;
            record.health_reason =
                (setup.health != AccountHealth::Active).then(|| setup.health.as_str().to_owned());
            record.open_id = Some(open_id);
            record.scopes = setup.scopes.clone();
            record.connected_at = Some(self.clock.now());
        }
        ready("put_account", self.store.put_account(&record));
        self
    }

    /// Creates the job with `Job::create` (id from the world's seeded entropy, the world's
    /// policy), stores it with `JobStore::create`, and sends its queue effects as `create_job`
    /// does. Returns the job as stored.
    pub fn job(&self, setup: JobSetup) -> Job {
        let now = self.clock.now();
        let id = JobId::generate(now, self.clock.random_u128());
        let created = Job::create(
            id,
            setup.tenant,
            setup.account,
            setup.source,
            setup.post,
            setup.schedule_at.unwrap_or(now),
            setup.idempotency_key,
            now,
            &self.settings.policy,
        );
        ready("create", self.store.create(&created, None));
        let core = Core::new(self.unhooked(), self.settings.clone());
        at_once(
            "send_effects",
            core.send_effects(&created.job, &created.effects),
        );
        created.job
    }

    /// The job as stored now (panics if there is none).
    pub fn job_now(&self, id: &JobId) -> Job {
        match self.store.job(id) {
            Some(job) => job,
            None => panic!("no job {id}"),
        }
    }
}
