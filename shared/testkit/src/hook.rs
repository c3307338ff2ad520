//! The hook every adapter awaits before it does anything: how a test injects outages and lost
//! responses, and how the deterministic simulation inserts yield points between any two port
//! calls.
//!
//! An adapter without a hook checks one `Option` and goes on; nothing is allocated or awaited.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use reelay_domain::lifecycle::ErrorClass;
use reelay_domain::ports::{QueueError, RefreshError, SecretError, StoreError};
use reelay_domain::upstream::UpstreamError;
use thiserror::Error;

/// What [`Hook::before`] returns: resolved before the adapter runs the call.
pub type HookFuture = Pin<Box<dyn Future<Output = Result<(), Fault>> + Send>>;

/// Awaited before every port call an adapter makes, with the call's stable name (see [`calls`]).
/// `Ok(())` lets the call run; a [`Fault`] makes it fail the way its port fails. The future may
/// be pending any number of times: adapters await it on the caller's task (never `block_on`).
pub trait Hook: Send + Sync {
    fn before(&self, call: &'static str) -> HookFuture;
}

/// An injected failure of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The upstream error code (and the text of store, queue and vault errors).
    pub code: String,
    /// Upstream calls: the error says the request may have taken effect.
    pub outcome_unknown: bool,
    /// The call takes effect first and only its answer is lost (a write that committed, an init
    /// TikTok received); otherwise nothing happens. Reads ignore it.
    pub applied: bool,
}

impl Fault {
    /// The call fails before it reaches anything: an outage, a refused connection.
    pub fn unavailable() -> Self {
        Self {
            code: "injected_unavailable".into(),
            outcome_unknown: false,
            applied: false,
        }
    }

    /// The call times out without reaching the other side; upstream errors say the outcome is
    /// unknown (the caller cannot tell it apart from [`Fault::lost_response`]).
    pub fn timeout() -> Self {
        Self {
            code: "injected_timeout".into(),
            outcome_unknown: true,
            applied: false,
        }
    }

    /// The call takes effect and its answer is lost (a crash right after it, a reset connection).
    pub fn lost_response() -> Self {
        Self {
            code: "injected_lost_response".into(),
            outcome_unknown: true,
            applied: true,
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = code.into();
        self
    }

    pub fn store_error(&self, call: &'static str) -> StoreError {
        StoreError::Unavailable(Box::new(self.injected(call)))
    }

    pub fn queue_error(&self, call: &'static str) -> QueueError {
        QueueError::Unavailable(Box::new(self.injected(call)))
    }

    pub fn secret_error(&self, call: &'static str) -> SecretError {
        SecretError::Unavailable(Box::new(self.injected(call)))
    }

    /// A `Retryable` upstream error, `outcome_unknown` as the fault says.
    pub fn upstream_error(&self, call: &'static str) -> UpstreamError {
        UpstreamError {
            class: ErrorClass::Retryable,
            code: self.code.clone(),
            message: format!("fault injected at {call}"),
            log_id: None,
            retry_at: None,
            outcome_unknown: self.outcome_unknown,
        }
    }

    pub fn refresh_error(&self, call: &'static str) -> RefreshError {
        RefreshError::Transient(format!("{}: fault injected at {call}", self.code))
    }

    fn injected(&self, call: &'static str) -> InjectedFault {
        InjectedFault {
            call,
            code: self.code.clone(),
        }
    }
}

/// The cause inside an `Unavailable` error made from a [`Fault`].
#[derive(Debug, Clone, Error)]
#[error("fault injected at {call}: {code}")]
pub struct InjectedFault {
    pub call: &'static str,
    pub code: String,
}

/// An adapter's optional hook. `Default` is no hook.
#[derive(Clone, Default)]
pub struct HookSlot(Option<Arc<dyn Hook>>);

/// What passing the hook decided: run the call, and whether to fail it after it took effect.
pub(crate) type Pass = Result<Option<Fault>, Fault>;

impl HookSlot {
    pub fn new(hook: Arc<dyn Hook>) -> Self {
        Self(Some(hook))
    }

    pub fn get(&self) -> Option<Arc<dyn Hook>> {
        self.0.clone()
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Awaits the hook. `Err` (a fault not applied): fail at once. `Ok(Some)` (applied): run the
    /// call, then fail with the fault. `Ok(None)`: run the call.
    pub(crate) async fn pass(&self, call: &'static str) -> Pass {
        let Some(hook) = &self.0 else {
            return Ok(None);
        };
        match hook.before(call).await {
            Ok(()) => Ok(None),
            Err(fault) if fault.applied => Ok(Some(fault)),
            Err(fault) => Err(fault),
        }
    }
}

impl fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "HookSlot(set)"
        } else {
            "HookSlot(none)"
        })
    }
}

/// A future that is pending once (waking itself at once) and then ready: the smallest yield
/// point, which hands the executor a chance to run another task.
#[derive(Debug, Default)]
pub struct YieldOnce {
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

pub fn yield_once() -> YieldOnce {
    YieldOnce::default()
}

/// A ready-made hook for tests: faults scripted per call name, an optional yield before every
/// call, and a log of every call it saw.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultsState>>,
}

#[derive(Debug, Default)]
struct FaultsState {
    /// Faults for the next calls of a name, in order.
    next: HashMap<&'static str, VecDeque<Fault>>,
    /// A fault for every call of a name until cleared.
    always: HashMap<&'static str, Fault>,
    seen: Vec<&'static str>,
    yield_every_call: bool,
}

impl Faults {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, FaultsState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next call of `call` (not yet failed by an earlier fault) fails with `fault`.
    pub fn fail_next(&self, call: &'static str, fault: Fault) -> &Self {
        self.state().next.entry(call).or_default().push_back(fault);
        self
    }

    /// Every call of `call` fails with `fault` until [`Faults::clear`].
    pub fn fail_always(&self, call: &'static str, fault: Fault) -> &Self {
        self.state().always.insert(call, fault);
        self
    }

    pub fn clear(&self, call: &'static str) -> &Self {
        let mut s = self.state();
        s.next.remove(call);
        s.always.remove(call);
        self
    }

    /// Every call is pending once before it runs (a yield point for interleavings).
    pub fn yield_every_call(&self, on: bool) -> &Self {
        self.state().yield_every_call = on;
        self
    }

    /// Every call name seen, in order (also those that were failed).
    pub fn seen(&self) -> Vec<&'static str> {
        self.state().seen.clone()
    }

    /// How many times each call name was seen.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for call in self.state().seen.iter() {
            *out.entry(*call).or_insert(0) += 1;
        }
        out
    }
}

impl Hook for Faults {
    fn before(&self, call: &'static str) -> HookFuture {
        let (fault, yield_first) = {
            let mut s = self.state();
            s.seen.push(call);
            let scripted = s.next.get_mut(call).and_then(VecDeque::pop_front);
            let fault = scripted.or_else(|| s.always.get(call).cloned());
            (fault, s.yield_every_call)
        };
        Box::pin(async move {
            if yield_first {
                yield_once().await;
            }
            fault.map_or(Ok(()), Err)
        })
    }
}

/// The stable names adapters pass to [`Hook::before`]: `<port>.<method>`.
pub mod calls {
    pub const JOBS_BEGIN_IDEMPOTENT: &str = "jobs.begin_idempotent";
    pub const JOBS_ABANDON_IDEMPOTENT: &str = "jobs.abandon_idempotent";
    pub const JOBS_CREATE: &str = "jobs.create";
    pub const JOBS_GET: &str = "jobs.get";
    pub const JOBS_AUDIT_PAGE: &str = "jobs.audit_page";
    pub const JOBS_SAVE: &str = "jobs.save";
    pub const JOBS_RESCHEDULE: &str = "jobs.reschedule";
    pub const JOBS_FOR_REQUEST: &str = "jobs.jobs_for_request";
    pub const JOBS_FOR_PUBLISH: &str = "jobs.job_for_publish";
    pub const JOBS_LIST: &str = "jobs.list";
    pub const JOBS_DUE: &str = "jobs.due";
    pub const ACCOUNTS_GET: &str = "accounts.get_account";
    pub const ACCOUNTS_PUT: &str = "accounts.put_account";
    pub const ACCOUNTS_LIST: &str = "accounts.accounts";
    pub const ACCOUNTS_FOR_OPEN_ID: &str = "accounts.account_for_open_id";
    pub const ACCOUNTS_BLOCK_UNTIL: &str = "accounts.block_until";
    pub const ACCOUNTS_SET_HEALTH: &str = "accounts.set_health";
    pub const BUDGETS_TAKE: &str = "budgets.take";
    pub const BUDGETS_PEEK: &str = "budgets.peek";
    pub const LOCKS_ACQUIRE: &str = "locks.acquire_lock";
    pub const LOCKS_RELEASE: &str = "locks.release_lock";
    pub const LOCKS_TAKE: &str = "locks.take_lock";
    pub const TENANTS_API_KEY: &str = "tenants.api_key";
    pub const TENANTS_PUT_KEY: &str = "tenants.put_api_key";
    pub const TENANTS_KEYS: &str = "tenants.api_keys";
    pub const TENANTS_END_KEY: &str = "tenants.end_api_key";
    pub const TENANTS_PUT: &str = "tenants.put_tenant";
    pub const TENANTS_GET: &str = "tenants.tenant";
    pub const TENANTS_LIST: &str = "tenants.tenants";
    pub const QUEUE_SEND: &str = "queue.send";
    /// Awaited before the clock moves; a fault is ignored (a sleep cannot fail).
    pub const CLOCK_SLEEP: &str = "clock.sleep";
    pub const VAULT_GET: &str = "vault.get_tokens";
    pub const VAULT_PUT: &str = "vault.put_tokens";
    pub const VAULT_REMOVE: &str = "vault.remove_tokens";
    pub const RENDER_SUBMIT: &str = "render.submit";
    pub const RENDER_FIND_SUBMITTED: &str = "render.find_submitted";
    pub const RENDER_PROGRESS: &str = "render.render_progress";
    pub const RENDER_CLIPS: &str = "render.render_clips";
    pub const PUBLISH_CREATOR_INFO: &str = "publish.creator_info";
    pub const PUBLISH_CLIP_SIZE: &str = "publish.clip_size";
    pub const PUBLISH_INIT: &str = "publish.init";
    pub const PUBLISH_UPLOAD: &str = "publish.upload";
    pub const PUBLISH_STATUS: &str = "publish.status";
    pub const AUTH_EXCHANGE_CODE: &str = "auth.exchange_code";
    pub const AUTH_REVOKE: &str = "auth.revoke";
    pub const REFRESH: &str = "refresher.refresh";
    pub const WEBHOOKS_PUT: &str = "webhooks.put_endpoint";
    pub const WEBHOOKS_GET: &str = "webhooks.endpoint";
    pub const WEBHOOKS_LIST: &str = "webhooks.endpoints";
    pub const WEBHOOKS_DELETE: &str = "webhooks.delete_endpoint";
    pub const WEBHOOKS_RECORD: &str = "webhooks.record_delivery";
    pub const WEBHOOKS_LOG: &str = "webhooks.deliveries";

    /// Every name above. `AuthApi::authorize_url` is synchronous and has no hook.
    pub const ALL: [&str; 52] = [
        JOBS_BEGIN_IDEMPOTENT,
        JOBS_ABANDON_IDEMPOTENT,
        JOBS_CREATE,
        JOBS_GET,
        JOBS_AUDIT_PAGE,
        JOBS_SAVE,
        JOBS_RESCHEDULE,
        JOBS_FOR_REQUEST,
        JOBS_FOR_PUBLISH,
        JOBS_LIST,
        JOBS_DUE,
        ACCOUNTS_GET,
        ACCOUNTS_PUT,
        ACCOUNTS_LIST,
        ACCOUNTS_FOR_OPEN_ID,
        ACCOUNTS_BLOCK_UNTIL,
        ACCOUNTS_SET_HEALTH,
        BUDGETS_TAKE,
        BUDGETS_PEEK,
        LOCKS_ACQUIRE,
        LOCKS_RELEASE,
        LOCKS_TAKE,
        TENANTS_API_KEY,
        TENANTS_PUT_KEY,
        TENANTS_KEYS,
        TENANTS_END_KEY,
        TENANTS_PUT,
        TENANTS_GET,
        TENANTS_LIST,
        QUEUE_SEND,
        CLOCK_SLEEP,
        VAULT_GET,
        VAULT_PUT,
        VAULT_REMOVE,
        RENDER_SUBMIT,
        RENDER_FIND_SUBMITTED,
        RENDER_PROGRESS,
        RENDER_CLIPS,
        PUBLISH_CREATOR_INFO,
        PUBLISH_CLIP_SIZE,
        PUBLISH_INIT,
        PUBLISH_UPLOAD,
        PUBLISH_STATUS,
        AUTH_EXCHANGE_CODE,
        AUTH_REVOKE,
        REFRESH,
        WEBHOOKS_PUT,
        WEBHOOKS_GET,
        WEBHOOKS_LIST,
        WEBHOOKS_DELETE,
        WEBHOOKS_RECORD,
        WEBHOOKS_LOG,
    ];
}
