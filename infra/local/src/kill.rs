//! Crashes at step boundaries. A real Lambda process can die between any two steps of a handler:
//! after DynamoDB accepted a write and before the next one, after TikTok accepted an init and
//! before Reelay stored its `publish_id`. [`Killable`] decorates every port a handler uses and, at
//! a seeded random point right after a call returned, ends the invocation there: nothing after the
//! call runs, exactly as if the process had died.
//!
//! The drivers run each invocation through [`invoke`], which races it against a per-invocation
//! kill signal held in a task-local; a killed invocation's future is dropped, so no unwinding is
//! involved (the release profile has `panic = "abort"`). What the caller then sees is what AWS
//! gives for a crashed function: an SQS batch whose records are not deleted (they return after
//! the visibility timeout), a 502 from API Gateway, a scheduled run that just ended.
//!
//! With no [`KillSwitch`] (the default) every decorator is a pass-through.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::budget::{Admission, BudgetKind, Window};
use reelay_domain::compliance::CreatorInfo;
use reelay_domain::job::{Applied, AuditEvent, Clip, Job, PostMode, PostSettings, RenderRequest};
use reelay_domain::ports::{
    AccountStore, DueJob, IdempotencyBegin, IdempotencyScope, JobFilter, JobPage, JobStore,
    QueueError, RefreshError, SecretError, StoreError, StoredResponse, TokenRefresher, TokenSet,
    TokenVault, WorkQueue,
};
use reelay_domain::upstream::{
    AuthApi, ObservedStatus, PublishApi, PublishInit, RenderApi, RenderStatus, UpstreamError,
};
use reelay_domain::{AccountId, JobId, PayloadHash, PublishId, RequestId, TenantId, UtcTime};

/// The kill point that matters most for promise 1: TikTok accepted the init (a post may follow)
/// and the process dies before Reelay stores the `publish_id`.
pub const INIT_ACCEPTED: &str = "PublishApi::init(accepted)";

/// Decides, with a seeded generator, which calls end their invocation; counts every kill.
#[derive(Debug)]
pub struct KillSwitch {
    rng: Mutex<StdRng>,
    enabled: AtomicBool,
    /// Probability of a kill after any decorated call.
    default_probability: f64,
    /// Per-point probabilities (by point name, e.g. [`INIT_ACCEPTED`]).
    overrides: BTreeMap<String, f64>,
    counts: Mutex<BTreeMap<(String, String), u64>>,
    total: AtomicU64,
}

impl KillSwitch {
    pub fn new(seed: u64, default_probability: f64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            enabled: AtomicBool::new(true),
            default_probability,
            overrides: BTreeMap::new(),
            counts: Mutex::new(BTreeMap::new()),
            total: AtomicU64::new(0),
        }
    }

    /// A point killed with its own probability (e.g. [`INIT_ACCEPTED`] far more often, so it is
    /// hit deliberately, not by luck).
    pub fn with_point(mut self, point: &str, probability: f64) -> Self {
        self.overrides.insert(point.to_owned(), probability);
        self
    }

    /// Kills only happen while enabled (a campaign stops killing to let the run drain).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Kills so far by (function, point).
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn roll(&self, point: &str) -> bool {
        if !self.enabled() {
            return false;
        }
        let p = self
            .overrides
            .get(point)
            .copied()
            .unwrap_or(self.default_probability);
        if p <= 0.0 {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.random_bool(p.min(1.0))
    }

    /// Called after a port call returned: maybe end the current invocation here. Outside an
    /// invocation (seeding, inspection) never kills.
    async fn at(&self, point: &str) {
        let Ok(invocation) = INVOCATION.try_with(Arc::clone) else {
            return;
        };
        if !self.roll(point) {
            return;
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut counts) = self.counts.lock() {
            *counts
                .entry((invocation.function.to_owned(), point.to_owned()))
                .or_default() += 1;
        }
        if let Ok(mut p) = invocation.point.lock() {
            *p = Some(point.to_owned());
        }
        warn!(
            function = invocation.function,
            point, "killing the invocation"
        );
        invocation.kill.cancel();
        // Nothing after the call runs: the driver drops this future.
        std::future::pending::<()>().await;
    }
}

/// One invocation's kill signal.
#[derive(Debug)]
struct Invocation {
    function: &'static str,
    kill: CancellationToken,
    point: Mutex<Option<String>>,
}

tokio::task_local! {
    static INVOCATION: Arc<Invocation>;
}

/// The invocation was killed at `point`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{function} killed after {point}")]
pub struct Killed {
    pub function: &'static str,
    pub point: String,
}

/// Runs one invocation of `function` so that a [`Killable`] port can end it. Without a switch the
/// future just runs.
pub async fn invoke<F: Future>(
    switch: Option<&Arc<KillSwitch>>,
    function: &'static str,
    invocation: F,
) -> Result<F::Output, Killed> {
    if switch.is_none() {
        return Ok(invocation.await);
    }
    let inv = Arc::new(Invocation {
        function,
        kill: CancellationToken::new(),
        point: Mutex::new(None),
    });
    let signal = inv.kill.clone();
    let scoped = INVOCATION.scope(inv.clone(), invocation);
    tokio::select! {
        out = scoped => Ok(out),
        () = signal.cancelled() => Err(Killed {
            function,
            point: inv.point.lock().ok().and_then(|p| p.clone()).unwrap_or_default(),
        }),
    }
}

/// A port decorated with kill points after each call.
#[derive(Debug, Clone)]
pub struct Killable<T> {
    inner: T,
    switch: Option<Arc<KillSwitch>>,
}

impl<T> Killable<T> {
    pub fn new(inner: T, switch: Option<Arc<KillSwitch>>) -> Self {
        Self { inner, switch }
    }

    pub fn inner(&self) -> &T {
        &self.inner
    }

    async fn after<R>(&self, point: &str, result: R) -> R {
        if let Some(switch) = &self.switch {
            switch.at(point).await;
        }
        result
    }
}

impl<T: JobStore> JobStore for Killable<T> {
    async fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        hash: &PayloadHash,
        now: UtcTime,
        in_progress_until: UtcTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        let r = self
            .inner
            .begin_idempotent(scope, hash, now, in_progress_until)
            .await;
        self.after("JobStore::begin_idempotent", r).await
    }

    async fn abandon_idempotent(&self, scope: &IdempotencyScope) -> Result<(), StoreError> {
        let r = self.inner.abandon_idempotent(scope).await;
        self.after("JobStore::abandon_idempotent", r).await
    }

    async fn create(
        &self,
        created: &Applied,
        idempotency: Option<(&IdempotencyScope, &PayloadHash, &StoredResponse, UtcTime)>,
    ) -> Result<(), StoreError> {
        let r = self.inner.create(created, idempotency).await;
        self.after("JobStore::create", r).await
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let r = self.inner.get(id).await;
        self.after("JobStore::get", r).await
    }

    async fn audit_trail(&self, id: &JobId) -> Result<Vec<AuditEvent>, StoreError> {
        let r = self.inner.audit_trail(id).await;
        self.after("JobStore::audit_trail", r).await
    }

    async fn save(&self, applied: &Applied, expected_version: u64) -> Result<(), StoreError> {
        let r = self.inner.save(applied, expected_version).await;
        self.after("JobStore::save", r).await
    }

    async fn jobs_for_request(&self, request_id: &RequestId) -> Result<Vec<JobId>, StoreError> {
        let r = self.inner.jobs_for_request(request_id).await;
        self.after("JobStore::jobs_for_request", r).await
    }

    async fn job_for_publish(&self, publish_id: &PublishId) -> Result<Option<JobId>, StoreError> {
        let r = self.inner.job_for_publish(publish_id).await;
        self.after("JobStore::job_for_publish", r).await
    }

    async fn list(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<JobPage, StoreError> {
        let r = self.inner.list(tenant, filter, cursor, limit).await;
        self.after("JobStore::list", r).await
    }

    async fn due(&self, now: UtcTime, limit: u32) -> Result<Vec<DueJob>, StoreError> {
        let r = self.inner.due(now, limit).await;
        self.after("JobStore::due", r).await
    }
}

impl<T: AccountStore> AccountStore for Killable<T> {
    async fn get_account(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<Account>, StoreError> {
        let r = self.inner.get_account(tenant, account).await;
        self.after("AccountStore::get_account", r).await
    }

    async fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        let r = self.inner.put_account(account).await;
        self.after("AccountStore::put_account", r).await
    }

    async fn take(
        &self,
        scope: &str,
        kind: BudgetKind,
        window: Window,
        now: UtcTime,
    ) -> Result<Admission, StoreError> {
        let r = self.inner.take(scope, kind, window, now).await;
        self.after("AccountStore::take", r).await
    }

    async fn block_until(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        until: UtcTime,
        reason: &str,
    ) -> Result<(), StoreError> {
        let r = self.inner.block_until(tenant, account, until, reason).await;
        self.after("AccountStore::block_until", r).await
    }

    async fn set_health(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        health: AccountHealth,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = self.inner.set_health(tenant, account, health, reason).await;
        self.after("AccountStore::set_health", r).await
    }

    async fn acquire_lock(
        &self,
        name: &str,
        owner: &str,
        now: UtcTime,
        until: UtcTime,
    ) -> Result<bool, StoreError> {
        let r = self.inner.acquire_lock(name, owner, now, until).await;
        self.after("AccountStore::acquire_lock", r).await
    }

    async fn release_lock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let r = self.inner.release_lock(name, owner).await;
        self.after("AccountStore::release_lock", r).await
    }

    async fn take_lock(&self, name: &str, now: UtcTime) -> Result<Option<String>, StoreError> {
        let r = self.inner.take_lock(name, now).await;
        self.after("AccountStore::take_lock", r).await
    }

    async fn budget_remaining(
        &self,
        scope: &str,
        kind: BudgetKind,
        window: Window,
        now: UtcTime,
    ) -> Result<u32, StoreError> {
        let r = self.inner.budget_remaining(scope, kind, window, now).await;
        self.after("AccountStore::budget_remaining", r).await
    }

    async fn tenant_for_key_hash(&self, key_hash: &str) -> Result<Option<TenantId>, StoreError> {
        let r = self.inner.tenant_for_key_hash(key_hash).await;
        self.after("AccountStore::tenant_for_key_hash", r).await
    }

    async fn put_tenant_key(&self, tenant: &TenantId, key_hash: &str) -> Result<(), StoreError> {
        let r = self.inner.put_tenant_key(tenant, key_hash).await;
        self.after("AccountStore::put_tenant_key", r).await
    }
}

impl<T: WorkQueue> WorkQueue for Killable<T> {
    async fn send(
        &self,
        message: &reelay_domain::messages::WorkMessage,
        attempt: u32,
    ) -> Result<(), QueueError> {
        let r = self.inner.send(message, attempt).await;
        self.after("WorkQueue::send", r).await
    }
}

impl<T: TokenVault> TokenVault for Killable<T> {
    async fn get_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<TokenSet>, SecretError> {
        let r = self.inner.get_tokens(tenant, account).await;
        self.after("TokenVault::get_tokens", r).await
    }

    async fn put_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        tokens: &TokenSet,
    ) -> Result<(), SecretError> {
        let r = self.inner.put_tokens(tenant, account, tokens).await;
        self.after("TokenVault::put_tokens", r).await
    }
}

impl<T: TokenRefresher> TokenRefresher for Killable<T> {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, RefreshError> {
        let r = self.inner.refresh(refresh_token).await;
        self.after("TokenRefresher::refresh", r).await
    }
}

impl<T: RenderApi> RenderApi for Killable<T> {
    async fn submit(
        &self,
        request: &RenderRequest,
        webhook_url: &str,
    ) -> Result<RequestId, UpstreamError> {
        let r = self.inner.submit(request, webhook_url).await;
        let point = if r.is_ok() {
            "RenderApi::submit(accepted)"
        } else {
            "RenderApi::submit(error)"
        };
        self.after(point, r).await
    }

    async fn find_submitted(
        &self,
        request: &RenderRequest,
        since: UtcTime,
    ) -> Result<Option<RequestId>, UpstreamError> {
        let r = self.inner.find_submitted(request, since).await;
        self.after("RenderApi::find_submitted", r).await
    }

    async fn render_status(&self, request_id: &RequestId) -> Result<RenderStatus, UpstreamError> {
        let r = self.inner.render_status(request_id).await;
        self.after("RenderApi::render_status", r).await
    }
}

impl<T: PublishApi> PublishApi for Killable<T> {
    async fn creator_info(&self, token: &SecretString) -> Result<CreatorInfo, UpstreamError> {
        let r = self.inner.creator_info(token).await;
        self.after("PublishApi::creator_info", r).await
    }

    async fn clip_size(&self, clip: &Clip) -> Result<u64, UpstreamError> {
        let r = self.inner.clip_size(clip).await;
        self.after("PublishApi::clip_size", r).await
    }

    async fn init(
        &self,
        token: &SecretString,
        post: &PostSettings,
        clip: &Clip,
        video_size: u64,
    ) -> Result<PublishInit, UpstreamError> {
        let r = self.inner.init(token, post, clip, video_size).await;
        let point = if r.is_ok() {
            INIT_ACCEPTED
        } else {
            "PublishApi::init(error)"
        };
        self.after(point, r).await
    }

    async fn upload(
        &self,
        upload_url: &SecretString,
        clip: &Clip,
        video_size: u64,
    ) -> Result<(), UpstreamError> {
        let r = self.inner.upload(upload_url, clip, video_size).await;
        self.after("PublishApi::upload", r).await
    }

    async fn status(
        &self,
        token: &SecretString,
        publish_id: &PublishId,
    ) -> Result<ObservedStatus, UpstreamError> {
        let r = self.inner.status(token, publish_id).await;
        self.after("PublishApi::status", r).await
    }
}

impl<T: AuthApi> AuthApi for Killable<T> {
    fn authorize_url(&self, state: &str, mode: PostMode) -> Result<String, UpstreamError> {
        self.inner.authorize_url(state, mode)
    }

    async fn exchange_code(&self, code: &str) -> Result<TokenSet, UpstreamError> {
        let r = self.inner.exchange_code(code).await;
        self.after("AuthApi::exchange_code", r).await
    }
}

impl<T: tiktok_webhook::OpenIdDirectory> tiktok_webhook::OpenIdDirectory for Killable<T> {
    async fn account_for_open_id(
        &self,
        open_id: &str,
    ) -> Result<Option<(TenantId, AccountId)>, StoreError> {
        let r = self.inner.account_for_open_id(open_id).await;
        self.after("OpenIdDirectory::account_for_open_id", r).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Echo;

    impl WorkQueue for Echo {
        async fn send(
            &self,
            _message: &reelay_domain::messages::WorkMessage,
            _attempt: u32,
        ) -> Result<(), QueueError> {
            Ok(())
        }
    }

    fn message() -> reelay_domain::messages::WorkMessage {
        let parse = |s: &str| s.to_owned();
        reelay_domain::messages::WorkMessage::new(
            reelay_domain::messages::QueueKind::Render,
            JobId::parse(parse("job_01ARZ3NDEKTSV4RRFFQ69G5FAV")).unwrap(),
            TenantId::parse(parse("tenant_kill")).unwrap(),
            AccountId::parse(parse("acct_kill")).unwrap(),
            1,
        )
    }

    #[tokio::test]
    async fn a_certain_kill_ends_the_invocation_right_after_the_call() {
        let switch = Arc::new(KillSwitch::new(7, 1.0));
        let queue = Killable::new(Echo, Some(switch.clone()));
        let msg = message();
        let mut after = false;
        let out = invoke(Some(&switch), "fn", async {
            let _ = queue.send(&msg, 0).await;
            after = true;
        })
        .await;
        assert_eq!(
            out,
            Err(Killed {
                function: "fn",
                point: "WorkQueue::send".into()
            })
        );
        assert!(!after, "nothing after the killed call ran");
        assert_eq!(switch.total(), 1);
        assert_eq!(
            switch
                .counts()
                .get(&("fn".to_owned(), "WorkQueue::send".to_owned())),
            Some(&1)
        );
    }

    #[tokio::test]
    async fn without_a_switch_or_outside_an_invocation_nothing_is_killed() {
        let switch = Arc::new(KillSwitch::new(7, 1.0));
        let msg = message();
        // Outside `invoke`: seeding and inspection calls are never killed.
        let queue = Killable::new(Echo, Some(switch.clone()));
        assert!(queue.send(&msg, 0).await.is_ok());
        // No switch: a pass-through.
        let plain = Killable::new(Echo, None);
        assert_eq!(
            invoke(None, "fn", async { plain.send(&msg, 0).await.is_ok() }).await,
            Ok(true)
        );
        // Disabled: no kills.
        switch.set_enabled(false);
        assert_eq!(
            invoke(Some(&switch), "fn", async {
                queue.send(&msg, 0).await.is_ok()
            })
            .await,
            Ok(true)
        );
        assert_eq!(switch.total(), 0);
    }
}
