//! The ports: the few traits the adapters implement, split by capability, and [`Ports`], the one
//! bundle every use case is generic over. Signatures use domain types only.
//!
//! Three families of adapters implement them: AWS and HTTP in production (`reelay-aws`,
//! `reelay-ssemble`, `reelay-tiktok`), in-memory ones for the fast tests and the deterministic
//! simulation (`reelay-testkit`), and decorators (the fault campaign's kill switch).

use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::account::{Account, AccountHealth};
use crate::budget::{Admission, BudgetKind, Denied, Window};
use crate::ids::{AccountId, IdempotencyKey, JobId, PayloadHash, PublishId, RequestId, TenantId};
use crate::job::{Applied, AuditEvent, Job};
use crate::lifecycle::{CheckKind, JobState};
use crate::messages::WorkMessage;
use crate::tenant::{ApiKey, Tenant};
use crate::time::UtcTime;
use crate::upstream::{AuthApi, PublishApi, RenderApi};
use crate::webhooks::{Delivery, DeliveryRecord, Endpoint, EndpointId, SignedHeaders};

/// Time, as the deployment sees it: the wall clock in production, simulated time in the
/// deterministic simulation. Every wait a use case makes goes through [`Clock::sleep`], so a
/// simulated run never sleeps for real and a deadline is always a point on this clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> UtcTime;
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Fresh randomness (job ids, webhook tokens, OAuth states, lock owners); seeded in simulation.
pub trait Entropy: Send + Sync {
    fn random_u128(&self) -> u128;
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// A conditional write lost: someone else moved the item first. Never an overwrite.
    #[error("conflict: the item changed concurrently")]
    Conflict,
    #[error("not found")]
    NotFound,
    /// The store refused or failed; the cause chain says why.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    /// A pagination cursor that this store did not issue (bad client input, not a fault).
    #[error("invalid cursor")]
    InvalidCursor,
}

/// Idempotency scope: one tenant's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    pub tenant_id: TenantId,
    pub key: IdempotencyKey,
}

/// The first answer given for a key, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// This request owns the key until `in_progress_until`; it must finish or abandon it.
    Started,
    /// The key was used before with the same body: answer with the stored response.
    Replay(StoredResponse),
    /// The key was used before with another body.
    Mismatch,
    /// Another request with this key is running; retry after `until`.
    InProgress { until: UtcTime },
}

/// Filters for listing a tenant's jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub account_id: Option<AccountId>,
    pub state: Option<JobState>,
}

impl JobFilter {
    /// Whether `job` passes every filter that is set.
    pub fn matches(&self, job: &Job) -> bool {
        self.account_id
            .as_ref()
            .is_none_or(|a| *a == job.account_id)
            && self.state.is_none_or(|st| st == job.state)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Opaque; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of a job's audit trail, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The version to continue after; `None` on the last page.
    pub next_after: Option<u64>,
}

/// A job the reconciler must look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueJob {
    pub job_id: JobId,
    pub at: UtcTime,
    pub kind: CheckKind,
}

/// Jobs, their audit trails, idempotency records and lookups.
pub trait JobStore: Send + Sync {
    /// Claims `scope` for a new request (Powertools' algorithm: a record in progress expires at
    /// `in_progress_until`, so a crashed request does not block its key).
    fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        hash: &PayloadHash,
        now: UtcTime,
        in_progress_until: UtcTime,
    ) -> impl Future<Output = Result<IdempotencyBegin, StoreError>> + Send;

    /// Releases a claimed key after a failure that created nothing, so a retry can run.
    fn abandon_idempotent(
        &self,
        scope: &IdempotencyScope,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a new job with its first audit event and pointers and, atomically with it,
    /// completes the idempotency record with the response to replay (kept until `expires_at`).
    /// A job id that exists already is a `Conflict`.
    fn create(
        &self,
        created: &Applied,
        idempotency: Option<(&IdempotencyScope, &PayloadHash, &StoredResponse, UtcTime)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(&self, id: &JobId) -> impl Future<Output = Result<Option<Job>, StoreError>> + Send;

    /// Up to `limit` audit events with a version above `after` (all when `None`), oldest first.
    fn audit_page(
        &self,
        id: &JobId,
        after: Option<u64>,
        limit: u32,
    ) -> impl Future<Output = Result<AuditPage, StoreError>> + Send;

    /// Writes a transition conditionally on the job still being at `expected_version` (and its
    /// old state), with its audit event and the pointers it names (`Applied::pointers`),
    /// atomically. A lost race is `Conflict`.
    fn save(
        &self,
        applied: &Applied,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes only `job.next_check` and `job.hold` (the job keeps its state and version, and no
    /// audit event is written), conditionally on the stored job being at `job.version` and
    /// `job.state`. How waiting, polling and backing off stay out of the audit trail.
    fn reschedule(&self, job: &Job) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every job that uses an Ssemble request (one render may feed many accounts).
    fn jobs_for_request(
        &self,
        request_id: &RequestId,
    ) -> impl Future<Output = Result<Vec<JobId>, StoreError>> + Send;

    /// The job a TikTok publish belongs to: every attempt's `publish_id` keeps pointing at its
    /// job, so an observation of an earlier attempt is recognised as such.
    fn job_for_publish(
        &self,
        publish_id: &PublishId,
    ) -> impl Future<Output = Result<Option<JobId>, StoreError>> + Send;

    fn list(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<JobPage, StoreError>> + Send;

    /// Jobs whose next check is at or before `now`, from the sparse due-work index, oldest first.
    fn due(
        &self,
        now: UtcTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DueJob>, StoreError>> + Send;
}

/// Connected TikTok accounts.
pub trait AccountStore: Send + Sync {
    fn get_account(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// Creates or replaces an account record. `account.version` is the version the caller read
    /// (0 for a new account); the stored record becomes `version + 1`, and anyone else's write in
    /// between is a `Conflict`. Keeps the `open_id` → account lookup in step.
    fn put_account(&self, account: &Account)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The tenant's accounts, by id (an operator's or a client's listing, never a hot path).
    fn accounts(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<Account>, StoreError>> + Send;

    /// The account a TikTok user (`open_id`) is connected as; webhooks name the user only.
    fn account_for_open_id(
        &self,
        open_id: &str,
    ) -> impl Future<Output = Result<Option<(TenantId, AccountId)>, StoreError>> + Send;

    /// Nothing is sent for the account before `until` (after a 429 or a cap). Only extends.
    fn block_until(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        until: UtcTime,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn set_health(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        health: AccountHealth,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Sliding-window budgets (TikTok per account token, Ssemble per API key), kept as
/// [`crate::budget::Tally`]s and changed only by the [`crate::budget::Step`]s the domain plans.
pub trait BudgetStore: Send + Sync {
    /// Takes `units` of every window in `windows` at once, or nothing: never overspent under
    /// concurrency, and no unit spent in one window when another refuses. `scope` is the account
    /// (`tenant:account`) or the API key the budgets belong to. `Some` names the refusal.
    fn take(
        &self,
        scope: &str,
        windows: &[(BudgetKind, Window)],
        units: u32,
        now: UtcTime,
    ) -> impl Future<Output = Result<Option<Denied>, StoreError>> + Send;

    /// What a take of one unit of each window would answer at `now`, in `windows`' order,
    /// without taking (`Granted::remaining` counts the units left after that one take).
    fn peek(
        &self,
        scope: &str,
        windows: &[(BudgetKind, Window)],
        now: UtcTime,
    ) -> impl Future<Output = Result<Vec<Admission>, StoreError>> + Send;
}

/// Leases and single-use tokens.
pub trait LockStore: Send + Sync {
    /// A lease named `name`, held by `owner` until `until`; `false` if someone else holds it.
    fn acquire_lock(
        &self,
        name: &str,
        owner: &str,
        now: UtcTime,
        until: UtcTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn release_lock(
        &self,
        name: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Consumes a live lease: deletes it and returns its owner, or `None` if there was none or it
    /// had expired. Makes single-use tokens (an OAuth `state`) out of leases.
    fn take_lock(
        &self,
        name: &str,
        now: UtcTime,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// Tenants and their API keys, stored only as SHA-256 hashes.
pub trait TenantStore: Send + Sync {
    /// The key stored under `key_hash`; anything but a lowercase SHA-256 hex digest finds
    /// nothing.
    fn api_key(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;

    /// Stores a new key. A hash already stored is a `Conflict`; anything but a SHA-256 hex
    /// digest is `Corrupt`, so a raw key is never stored.
    fn put_api_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every key of the tenant, ended ones included, oldest first.
    fn api_keys(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;

    /// Ends the tenant's key at `at` (`revoked`: by a revocation). `NotFound` when the tenant
    /// has no such key.
    fn end_api_key(
        &self,
        tenant: &TenantId,
        key_hash: &str,
        at: UtcTime,
        revoked: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates the tenant; one that exists is a `Conflict`.
    fn put_tenant(&self, tenant: &Tenant) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn tenant(
        &self,
        id: &TenantId,
    ) -> impl Future<Output = Result<Option<Tenant>, StoreError>> + Send;

    /// Every tenant, by id.
    fn tenants(&self) -> impl Future<Output = Result<Vec<Tenant>, StoreError>> + Send;
}

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub trait WorkQueue: Send + Sync {
    /// Sends with group = the account and the given FIFO deduplication id (one per logical
    /// enqueue: a resend of the same enqueue is dropped by the queue, a later one is not).
    fn send(
        &self,
        message: &WorkMessage,
        dedup_id: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Webhook endpoints and their delivery log (one item per endpoint, one per attempt).
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint; an id that exists already is a `Conflict`.
    fn put_endpoint(
        &self,
        endpoint: &Endpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> impl Future<Output = Result<Option<Endpoint>, StoreError>> + Send;

    /// The tenant's endpoints, oldest first.
    fn endpoints(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<Endpoint>, StoreError>> + Send;

    /// Removes the endpoint; `false` when there was none.
    fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Appends an attempt to the endpoint's log, kept until `expires_at`.
    fn record_delivery(
        &self,
        tenant: &TenantId,
        record: &DeliveryRecord,
        expires_at: UtcTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` attempts, newest first, after the page that ended at `cursor`.
    fn deliveries(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        cursor: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<DeliveryPage, StoreError>> + Send;
}

/// A page of an endpoint's delivery log.
#[derive(Debug, Clone, Default)]
pub struct DeliveryPage {
    pub records: Vec<DeliveryRecord>,
    pub next_cursor: Option<String>,
}

/// The sort key of a delivery record within its endpoint: newest first reads it backwards.
pub fn delivery_sort_key(record: &DeliveryRecord) -> String {
    format!(
        "{:015}#{}#{:02}",
        record.at.as_millis().max(0),
        record.event_id,
        record.attempt
    )
}

/// Whether `cursor` is a sort key [`delivery_sort_key`] could have made.
pub fn is_delivery_cursor(cursor: &str) -> bool {
    let mut parts = cursor.splitn(3, '#');
    let ms = parts.next().unwrap_or_default();
    let id = parts.next().unwrap_or_default();
    let attempt = parts.next().unwrap_or_default();
    ms.len() == 15
        && ms.bytes().all(|b| b.is_ascii_digit())
        && id.starts_with("msg_")
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && attempt.len() == 2
        && attempt.bytes().all(|b| b.is_ascii_digit())
}

/// The queue deliveries ride: delayed sends for the retry schedule, and a dead letter.
pub trait DeliveryQueue: Send + Sync {
    /// Sends `delivery` to be received after `delay` (at most the queue's maximum delay).
    fn send(
        &self,
        delivery: &Delivery,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Hands a delivery that used every attempt to the dead-letter queue (alarmed).
    fn dead_letter(
        &self,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// What the destination did with one signed POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostResult {
    /// It answered with this status (a redirect is an answer: it is not followed).
    Answered(u16),
    /// Its name resolved only to addresses Reelay never calls (the reason says which).
    Blocked(String),
    /// No answer: DNS, connect, TLS or timeout (the reason says which).
    Failed(String),
}

/// Sends one signed POST to a client's endpoint, checking the resolved address first.
pub trait WebhookSender: Send + Sync {
    fn post(
        &self,
        url: &str,
        headers: &SignedHeaders,
        body: Vec<u8>,
    ) -> impl Future<Output = PostResult> + Send;
}

/// An account's OAuth tokens. The secrets never reach Debug, logs or errors.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub access_expires_at: UtcTime,
    pub refresh_token: SecretString,
    pub refresh_expires_at: UtcTime,
    pub open_id: String,
    pub scopes: Vec<String>,
}

impl TokenSet {
    /// Every vault refuses to store a set without a refresh token: the account would be lost.
    pub fn check_storable(&self) -> Result<(), SecretError> {
        if self.refresh_token.expose_secret().trim().is_empty() {
            return Err(SecretError::EmptyRefreshToken);
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("secret not found")]
    NotFound,
    /// Refused: storing it would lose the account's refresh token (a peer's reconnect-loop bug).
    #[error("refusing to store an empty refresh token")]
    EmptyRefreshToken,
    #[error("secret document is malformed")]
    Malformed,
    #[error("secrets store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Per-account OAuth tokens.
pub trait TokenVault: Send + Sync {
    fn get_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> impl Future<Output = Result<Option<TokenSet>, SecretError>> + Send;

    fn put_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        tokens: &TokenSet,
    ) -> impl Future<Output = Result<(), SecretError>> + Send;

    /// Deletes the account's tokens (a disconnected account); none stored is no error.
    fn remove_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> impl Future<Output = Result<(), SecretError>> + Send;
}

#[derive(Debug, Error)]
pub enum RefreshError {
    /// The refresh token is dead (`invalid_grant`): the creator must reconnect.
    #[error("refresh token rejected: the account needs re-authorisation")]
    Rejected,
    /// A transient failure; the stored tokens are still valid to retry with.
    #[error("refresh failed transiently: {0}")]
    Transient(String),
}

/// Exchanges a refresh token for a new token set (TikTok's OAuth token endpoint).
pub trait TokenRefresher: Send + Sync {
    fn refresh(
        &self,
        refresh_token: &SecretString,
    ) -> impl Future<Output = Result<TokenSet, RefreshError>> + Send;
}

/// Every port a use case may reach, as associated types: one bound instead of a row of type
/// parameters. A function that never uses a port wires [`crate::upstream::Unwired`] for it.
pub trait Ports: Send + Sync {
    type Jobs: JobStore;
    type Accounts: AccountStore;
    type Budgets: BudgetStore;
    type Locks: LockStore;
    type Tenants: TenantStore;
    type Queue: WorkQueue;
    type Clock: Clock + Entropy;
    type Vault: TokenVault;
    type Refresher: TokenRefresher;
    type Render: RenderApi;
    type Publish: PublishApi;
    type Auth: AuthApi;

    fn jobs(&self) -> &Self::Jobs;
    fn accounts(&self) -> &Self::Accounts;
    fn budgets(&self) -> &Self::Budgets;
    fn locks(&self) -> &Self::Locks;
    fn tenants(&self) -> &Self::Tenants;
    fn queue(&self) -> &Self::Queue;
    fn clock(&self) -> &Self::Clock;
    fn vault(&self) -> &Self::Vault;
    fn refresher(&self) -> &Self::Refresher;
    fn render(&self) -> &Self::Render;
    fn publish(&self) -> &Self::Publish;
    fn auth(&self) -> &Self::Auth;
}

/// The usual way to fill [`Ports`]: one store adapter for every table-backed port (DynamoDB, or
/// the in-memory store), the queue, the clock, the token vault, Ssemble, and one TikTok adapter
/// for posting, token refresh and OAuth.
#[derive(Debug, Clone)]
pub struct Adapters<S, Q, C, V, R, T> {
    pub store: S,
    pub queue: Q,
    pub clock: C,
    pub vault: V,
    pub render: R,
    pub tiktok: T,
}

impl<S, Q, C, V, R, T> Ports for Adapters<S, Q, C, V, R, T>
where
    S: JobStore + AccountStore + BudgetStore + LockStore + TenantStore,
    Q: WorkQueue,
    C: Clock + Entropy,
    V: TokenVault,
    R: RenderApi,
    T: PublishApi + TokenRefresher + AuthApi,
{
    type Jobs = S;
    type Accounts = S;
    type Budgets = S;
    type Locks = S;
    type Tenants = S;
    type Queue = Q;
    type Clock = C;
    type Vault = V;
    type Refresher = T;
    type Render = R;
    type Publish = T;
    type Auth = T;

    fn jobs(&self) -> &S {
        &self.store
    }
    fn accounts(&self) -> &S {
        &self.store
    }
    fn budgets(&self) -> &S {
        &self.store
    }
    fn locks(&self) -> &S {
        &self.store
    }
    fn tenants(&self) -> &S {
        &self.store
    }
    fn queue(&self) -> &Q {
        &self.queue
    }
    fn clock(&self) -> &C {
        &self.clock
    }
    fn vault(&self) -> &V {
        &self.vault
    }
    fn refresher(&self) -> &T {
        &self.tiktok
    }
    fn render(&self) -> &R {
        &self.render
    }
    fn publish(&self) -> &T {
        &self.tiktok
    }
    fn auth(&self) -> &T {
        &self.tiktok
    }
}
