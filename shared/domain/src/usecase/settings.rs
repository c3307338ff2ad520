//! Every figure the use cases rely on, as configuration (each function's `config.rs` fills them
//! from its environment; the local runner and the simulation scale them).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::budget::Limits;
use crate::lifecycle::Policy;

/// The use cases' settings: the lifecycle's timings, the upstream limits and the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub policy: Policy,
    pub limits: Limits,
    pub tokens: TokenSettings,
    pub publish: PublishSettings,
    pub render: RenderSettings,
    pub reconcile: ReconcileSettings,
    pub ingest: IngestSettings,
    /// How long a queue consumer waits before retrying after the store failed (its account's
    /// FIFO group waits that long, not the queue's whole visibility timeout).
    pub store_retry: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            limits: Limits::default(),
            tokens: TokenSettings::default(),
            publish: PublishSettings::default(),
            render: RenderSettings::default(),
            reconcile: ReconcileSettings::default(),
            ingest: IngestSettings::default(),
            store_retry: Duration::from_secs(10),
        }
    }
}

impl Settings {
    pub fn with_store_retry(mut self, d: Duration) -> Self {
        self.store_retry = d;
        self
    }
}

/// The token refresh coordinator's timing. `lock_ttl` must exceed the refresher's own HTTP
/// timeout, or a slow refresh could be raced by a second one holding the already rotated token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenSettings {
    /// An access token expiring sooner than this is refreshed first.
    pub min_validity: Duration,
    pub lock_ttl: Duration,
    pub poll_interval: Duration,
    /// Lock attempts before giving up with `Busy`.
    pub max_rounds: u32,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            min_validity: Duration::from_secs(300),
            lock_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            max_rounds: 3,
        }
    }
}

/// The publisher's waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishSettings {
    /// Waits up to this long keep the message at the head of the account's group; longer ones
    /// hold the job (back to `ready`) and acknowledge.
    pub group_delay_cap: Duration,
    /// How long an account is blocked after a daily cap (`spam_risk_too_many_posts`, …).
    pub cap_wait: Duration,
    /// How long an account is blocked after `rate_limit_exceeded` (TikTok sends no reset).
    pub rate_limit_wait: Duration,
    /// Back-off of a hold after a transient failure before the init (clip origin, TikTok 5xx).
    pub transient_wait: Duration,
    /// The time an init and the writes recording its answer may take. No attempt is committed
    /// with less than this left before the invocation's deadline, and the publish lease is longer.
    pub init_window: Duration,
    /// Writes of an init's answer tried before leaving the job to its lease.
    pub record_attempts: u32,
    /// A message handled this close to its `scheduleAt` is prepared at once (account, token,
    /// creator_info, budgets) and only its commit and init wait for the second; one further
    /// ahead waits at its group's head. Keep it short: creator_info and the budget take are
    /// meant for the post that follows them.
    pub schedule_lead: Duration,
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            group_delay_cap: Duration::from_secs(60),
            cap_wait: Duration::from_secs(24 * 3600),
            rate_limit_wait: Duration::from_secs(60),
            transient_wait: Duration::from_secs(60),
            init_window: Duration::from_secs(40),
            record_attempts: 3,
            schedule_lead: Duration::from_secs(2),
        }
    }
}

/// What render submission and confirmation need beyond the limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenderSettings {
    /// Budget scope of the stage's Ssemble API key (a stable, non-secret name).
    pub ssemble_scope: String,
    /// Base of the webhook URL Ssemble calls back (`…/webhooks/ssemble/{job}.{token}`).
    pub webhook_base_url: String,
    /// How long one Ssemble request may take (`SSEMBLE_TIMEOUT_SECS`); `None` keeps each
    /// function's own default, sized to its invocation.
    pub ssemble_timeout: Option<Duration>,
    /// Each tenant's guaranteed share of the key's hourly and daily create budget, in per
    /// mille (`SSEMBLE_TENANT_SHARE_PERMILLE`, default 200); as much is kept free of other
    /// tenants' borrowing. 0 turns fair sharing off (first come, first served).
    pub tenant_share_permille: u32,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            ssemble_scope: String::new(),
            webhook_base_url: String::new(),
            ssemble_timeout: None,
            tenant_share_permille: 200,
        }
    }
}

/// How a reconciler run spreads its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconcileSettings {
    /// Due entries per page of the due-work index.
    pub page: u32,
    /// Pages one read returns: fairness is within what was read, so a read must reach past one
    /// account's backlog to the other accounts' schedules.
    pub pages_per_read: u32,
    /// Due jobs handled at once, round-robin across accounts.
    pub concurrency: usize,
    /// No new work starts when less than this remains before the run's deadline.
    pub safety_margin: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            page: 100,
            pages_per_read: 5,
            concurrency: 16,
            safety_margin: Duration::from_secs(5),
        }
    }
}

/// The client API's idempotency records and OAuth links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestSettings {
    /// How long a request in progress blocks its key (a crashed request's key frees then).
    pub in_progress_ttl: Duration,
    /// How long a completed request is replayed (at least 24 h).
    pub idempotency_ttl: Duration,
    /// How long an authorize link stays usable.
    pub oauth_state_ttl: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            in_progress_ttl: Duration::from_secs(30),
            idempotency_ttl: Duration::from_secs(48 * 3600),
            oauth_state_ttl: Duration::from_secs(600),
        }
    }
}
