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
//! With no [`KillSwitch`] (the default) every decorator is a pass-through. [`Decorate`] wraps
//! every port of a function's `Adapters` at once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::budget::{Admission, BudgetKind, Denied, Window};
use reelay_domain::compliance::CreatorInfo;
use reelay_domain::job::{Applied, Clip, Job, PostMode, PostSettings, RenderRequest};
use reelay_domain::messages::WorkMessage;
use reelay_domain::ports::{
    AccountStore, Adapters, AuditPage, BudgetStore, DueJob, IdempotencyBegin, IdempotencyScope,
    JobFilter, JobPage, JobStore, LockStore, QueueError, RefreshError, SecretError, StoreError,
    StoredResponse, TenantStore, TokenRefresher, TokenSet, TokenVault, WorkQueue,
};
use reelay_domain::tenant::{ApiKey, Tenant};
use reelay_domain::upstream::{
    AuthApi, ObservedStatus, PublishApi, PublishInit, RenderApi, RenderProgress, UpstreamError,
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
    /// Points that kill at their next occurrence, enabled or not (see [`KillSwitch::arm_once`]).
    armed: Mutex<BTreeSet<String>>,
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
            armed: Mutex::new(BTreeSet::new()),
        }
    }

    /// The next occurrence of `point` kills, whether kills are enabled or not, once. How a
    /// campaign whose chaos phase ended before a rare point came up (a loaded machine reaches
    /// few inits in the time) still exercises it, during the drain, instead of depending on
    /// the machine's speed.
    pub fn arm_once(&self, point: &str) {
        if let Ok(mut armed) = self.armed.lock() {
            armed.insert(point.to_owned());
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
        if self.armed.lock().is_ok_and(|mut a| a.remove(point)) {
            return true;
        }
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

/// A port decorated with a kill point after each call.
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

    /// Makes the call, then maybe dies at `point`, right after it returned. The call is boxed:
    /// a decorator must not add its port's whole future to every caller's state machine.
    async fn call<R>(&self, point: &'static str, call: impl Future<Output = R>) -> R {
        let result = Box::pin(call).await;
        if let Some(switch) = &self.switch {
            switch.at(point).await;
        }
        result
    }

    /// [`Killable::call`] with a point of its own for each outcome (an accepted side effect is
    /// the crash that matters; a refused one is another).
    async fn call_split<V, E>(
        &self,
        accepted: &'static str,
        refused: &'static str,
        call: impl Future<Output = Result<V, E>>,
    ) -> Result<V, E> {
        let result = call.await;
        let point = if result.is_ok() { accepted } else { refused };
        self.call(point, async { result }).await
    }
}

/// Decorating every port of a function at once (its `Deps::map_ports`): a pass-through when
/// the switch is `None`. The [`Clock`](reelay_domain::ports::Clock) and entropy pass through: a
/// process dies between calls, not inside time.
pub trait Decorate {
    type Output;
    fn decorate(self, switch: Option<Arc<KillSwitch>>) -> Self::Output;
}

/// A function's ports, decorated.
pub type Decorated<P> = <P as Decorate>::Output;

impl<S, Q, C, V, R, T> Decorate for Adapters<S, Q, C, V, R, T> {
    type Output = Adapters<Killable<S>, Killable<Q>, C, Killable<V>, Killable<R>, Killable<T>>;

    fn decorate(self, switch: Option<Arc<KillSwitch>>) -> Self::Output {
        Adapters {
            store: Killable::new(self.store, switch.clone()),
            queue: Killable::new(self.queue, switch.clone()),
            clock: self.clock,
            vault: Killable::new(self.vault, switch.clone()),
            render: Killable::new(self.render, switch.clone()),
            tiktok: Killable::new(self.tiktok, switch),
        }
    }
}

/// One `impl Trait for Killable<T>` per port trait: every listed method is the inner call with a
/// kill point named `Trait::method` after it; methods with other points follow in braces.
macro_rules! killable {
    ($($port:ident {
        $(fn $method:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*
    } $({ $($own:tt)* })?)*) => {$(
        impl<T: $port> $port for Killable<T> {
            $(async fn $method(&self, $($arg: $ty),*) -> $out {
                let point = concat!(stringify!($port), "::", stringify!($method));
                self.call(point, self.inner.$method($($arg),*)).await
            })*
            $($($own)*)?
        }
    )*};
}

killable! {
    JobStore {
        fn begin_idempotent(scope: &IdempotencyScope, hash: &PayloadHash, now: UtcTime, until: UtcTime) -> Result<IdempotencyBegin, StoreError>;
        fn abandon_idempotent(scope: &IdempotencyScope) -> Result<(), StoreError>;
        fn create(created: &Applied, idempotency: Option<(&IdempotencyScope, &PayloadHash, &StoredResponse, UtcTime)>) -> Result<(), StoreError>;
        fn get(id: &JobId) -> Result<Option<Job>, StoreError>;
        fn audit_page(id: &JobId, after: Option<u64>, limit: u32) -> Result<AuditPage, StoreError>;
        fn save(applied: &Applied, expected_version: u64) -> Result<(), StoreError>;
        fn reschedule(job: &Job) -> Result<(), StoreError>;
        fn jobs_for_request(request_id: &RequestId) -> Result<Vec<JobId>, StoreError>;
        fn job_for_publish(publish_id: &PublishId) -> Result<Option<JobId>, StoreError>;
        fn list(tenant: &TenantId, filter: &JobFilter, cursor: Option<&str>, limit: u32) -> Result<JobPage, StoreError>;
        fn due(now: UtcTime, limit: u32) -> Result<Vec<DueJob>, StoreError>;
    }
    AccountStore {
        fn get_account(tenant: &TenantId, account: &AccountId) -> Result<Option<Account>, StoreError>;
        fn put_account(account: &Account) -> Result<(), StoreError>;
        fn accounts(tenant: &TenantId) -> Result<Vec<Account>, StoreError>;
        fn account_for_open_id(open_id: &str) -> Result<Option<(TenantId, AccountId)>, StoreError>;
        fn block_until(tenant: &TenantId, account: &AccountId, until: UtcTime, reason: &str) -> Result<(), StoreError>;
        fn set_health(tenant: &TenantId, account: &AccountId, health: AccountHealth, reason: Option<&str>) -> Result<(), StoreError>;
    }
    BudgetStore {
        fn take(scope: &str, windows: &[(BudgetKind, Window)], units: u32, now: UtcTime) -> Result<Option<Denied>, StoreError>;
        fn peek(scope: &str, windows: &[(BudgetKind, Window)], now: UtcTime) -> Result<Vec<Admission>, StoreError>;
    }
    LockStore {
        fn acquire_lock(name: &str, owner: &str, now: UtcTime, until: UtcTime) -> Result<bool, StoreError>;
        fn release_lock(name: &str, owner: &str) -> Result<(), StoreError>;
        fn take_lock(name: &str, now: UtcTime) -> Result<Option<String>, StoreError>;
    }
    TenantStore {
        fn api_key(key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
        fn put_api_key(key: &ApiKey) -> Result<(), StoreError>;
        fn api_keys(tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError>;
        fn end_api_key(tenant: &TenantId, key_hash: &str, at: UtcTime, revoked: bool) -> Result<(), StoreError>;
        fn put_tenant(tenant: &Tenant) -> Result<(), StoreError>;
        fn tenant(id: &TenantId) -> Result<Option<Tenant>, StoreError>;
        fn tenants() -> Result<Vec<Tenant>, StoreError>;
    }
    WorkQueue {
        fn send(message: &WorkMessage, dedup_id: &str) -> Result<(), QueueError>;
    }
    TokenVault {
        fn get_tokens(tenant: &TenantId, account: &AccountId) -> Result<Option<TokenSet>, SecretError>;
        fn put_tokens(tenant: &TenantId, account: &AccountId, tokens: &TokenSet) -> Result<(), SecretError>;
        fn remove_tokens(tenant: &TenantId, account: &AccountId) -> Result<(), SecretError>;
    }
    TokenRefresher {
        fn refresh(refresh_token: &SecretString) -> Result<TokenSet, RefreshError>;
    }
    RenderApi {
        fn find_submitted(request: &RenderRequest, since: UtcTime) -> Result<Option<RequestId>, UpstreamError>;
        fn render_progress(request_id: &RequestId) -> Result<RenderProgress, UpstreamError>;
        fn render_clips(request_id: &RequestId) -> Result<Option<Vec<Clip>>, UpstreamError>;
    } {
        async fn submit(&self, request: &RenderRequest, webhook_url: &str) -> Result<RequestId, UpstreamError> {
            let call = self.inner.submit(request, webhook_url);
            self.call_split("RenderApi::submit(accepted)", "RenderApi::submit(error)", call).await
        }
        fn find_call_bound(&self) -> u32 {
            self.inner.find_call_bound()
        }
    }
    PublishApi {
        fn creator_info(token: &SecretString) -> Result<CreatorInfo, UpstreamError>;
        fn clip_size(clip: &Clip, deadline: UtcTime) -> Result<u64, UpstreamError>;
        fn upload(upload_url: &SecretString, clip: &Clip, video_size: u64, deadline: UtcTime) -> Result<(), UpstreamError>;
        fn status(token: &SecretString, publish_id: &PublishId) -> Result<ObservedStatus, UpstreamError>;
    } {
        async fn init(&self, token: &SecretString, post: &PostSettings, clip: &Clip, video_size: u64) -> Result<PublishInit, UpstreamError> {
            let call = self.inner.init(token, post, clip, video_size);
            self.call_split(INIT_ACCEPTED, "PublishApi::init(error)", call).await
        }
    }
    AuthApi {
        fn exchange_code(code: &str, redirect_uri: &str) -> Result<TokenSet, UpstreamError>;
        fn revoke(access_token: &SecretString) -> Result<(), UpstreamError>;
    } {
        fn authorize_url(&self, state: &str, mode: PostMode, redirect_uri: &str) -> Result<String, UpstreamError> {
            self.inner.authorize_url(state, mode, redirect_uri)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Echo;

    impl WorkQueue for Echo {
        async fn send(&self, _message: &WorkMessage, _dedup_id: &str) -> Result<(), QueueError> {
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
            let _ = queue.send(&msg, "d").await;
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
        assert!(queue.send(&msg, "d").await.is_ok());
        // No switch: a pass-through.
        let plain = Killable::new(Echo, None);
        assert_eq!(
            invoke(None, "fn", async { plain.send(&msg, "d").await.is_ok() }).await,
            Ok(true)
        );
        // Disabled: no kills.
        switch.set_enabled(false);
        assert_eq!(
            invoke(Some(&switch), "fn", async {
                queue.send(&msg, "d").await.is_ok()
            })
            .await,
            Ok(true)
        );
        assert_eq!(switch.total(), 0);
    }
}
