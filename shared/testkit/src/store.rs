//! [`MemStore`]: every table-backed port in memory, with the conditions the DynamoDB adapter
//! promises (`shared/domain/src/ports.rs`, `shared/aws/DESIGN.md` §1–2), and inspection for tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::budget::{Admission, BudgetKind, Denied, Tally, Window, plan_take};
use reelay_domain::job::{Applied, AuditEvent, Job, Pointer};
use reelay_domain::ports::{
    AccountStore, AuditPage, BudgetStore, DeliveryPage, DueJob, IdempotencyBegin, IdempotencyScope,
    JobFilter, JobPage, JobStore, LockStore, StoreError, StoredResponse, TenantStore, WebhookStore,
    delivery_sort_key,
};
use reelay_domain::tenant::{ApiKey, Tenant, is_sha256_hex};
use reelay_domain::webhooks::{DeliveryRecord, Endpoint, EndpointId};
use reelay_domain::{AccountId, JobId, PayloadHash, PublishId, RequestId, TenantId, UtcTime};

use crate::hook::{Hook, HookSlot, Pass, calls};

/// An idempotency record is kept at least this long after its lease or its job's creation
/// (Stripe's floor; the DynamoDB adapter's `IN_PROGRESS_RETENTION`).
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// `list` pages hold at most this many jobs, like the DynamoDB adapter's.
pub const LIST_MAX: u32 = 100;
/// `due` answers at most this many entries, like the DynamoDB adapter's.
pub const DUE_MAX: u32 = 1000;

/// Jobs, audit trails, idempotency records, pointers, accounts, budgets, leases and tenant keys,
/// behind one lock: each call is one atomic step, as each DynamoDB request or transaction is.
///
/// Clones share the data; [`MemStore::with_hook`] gives a clone whose calls pass a hook first,
/// so a test can inspect through an unhooked clone while the code under test runs hooked.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    inner: Arc<Mutex<StoreState>>,
    hook: HookSlot,
}

/// An idempotency record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub hash: PayloadHash,
    pub status: IdempotencyStatus,
    /// After this the record counts as absent (checked with the stored time, never TTL).
    pub expiration: UtcTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStatus {
    InProgress {
        until: UtcTime,
    },
    Completed {
        response: StoredResponse,
        job_id: JobId,
    },
}

/// Writes made to one job (or, from [`MemStore::total_writes`], to all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// `create` and `save` calls that won.
    pub transitions: u64,
    /// `reschedule` calls that won.
    pub reschedules: u64,
    pub audit_events: u64,
    /// Conditional writes (`create`, `save`, `reschedule`) that lost with `Conflict`.
    pub conflicts: u64,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until: UtcTime,
}

#[derive(Debug, Default)]
struct StoreState {
    jobs: BTreeMap<JobId, Job>,
    audit: HashMap<JobId, BTreeMap<u64, AuditEvent>>,
    idempotency: HashMap<IdempotencyScope, IdempotencyRecord>,
    requests: BTreeMap<RequestId, BTreeSet<JobId>>,
    publishes: BTreeMap<PublishId, JobId>,
    accounts: BTreeMap<(TenantId, AccountId), Account>,
    blocked_reasons: HashMap<(TenantId, AccountId), String>,
    open_ids: HashMap<String, (TenantId, AccountId)>,
    budgets: HashMap<String, BTreeMap<BudgetKind, Tally>>,
    grants: HashMap<(String, BudgetKind), Vec<UtcTime>>,
    locks: BTreeMap<String, Lease>,
    tenant_keys: HashMap<String, ApiKey>,
    tenants: BTreeMap<TenantId, Tenant>,
    writes: HashMap<JobId, WriteCounts>,
    calls: BTreeMap<&'static str, u64>,
    endpoints: BTreeMap<(TenantId, EndpointId), Endpoint>,
    delivery_log: BTreeMap<(TenantId, EndpointId), BTreeMap<String, DeliveryRecord>>,
}

impl StoreState {
    fn counts(&mut self, id: &JobId) -> &mut WriteCounts {
        self.writes.entry(id.clone()).or_default()
    }

    fn write_pointers(&mut self, job_id: &JobId, pointers: &[Pointer]) {
        for pointer in pointers {
            match pointer {
                Pointer::Request(r) => {
                    self.requests
                        .entry(r.clone())
                        .or_default()
                        .insert(job_id.clone());
                }
                Pointer::Publish(p) => {
                    self.publishes.insert(p.clone(), job_id.clone());
                }
            }
        }
    }

    fn insert_audit(&mut self, job_id: &JobId, audit: &AuditEvent) {
        self.audit
            .entry(job_id.clone())
            .or_default()
            .insert(audit.version, audit.clone());
        self.counts(job_id).audit_events += 1;
    }

    fn conflict(&mut self, id: &JobId) -> StoreError {
        self.counts(id).conflicts += 1;
        StoreError::Conflict
    }
}

/// The cursor names the last job returned (hex of its id); the tenant comes from the caller.
fn encode_cursor(id: &JobId) -> String {
    hex::encode(id.as_str())
}

fn decode_cursor(cursor: &str) -> Result<JobId, StoreError> {
    let raw = hex::decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(StoreError::InvalidCursor)?;
    JobId::parse(raw).map_err(|_| StoreError::InvalidCursor)
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// This store (same data) with `hook` awaited before every call.
    pub fn with_hook(&self, hook: Arc<dyn Hook>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            hook: HookSlot::new(hook),
        }
    }

    fn state(&self) -> MutexGuard<'_, StoreState> {
        // A panicking test thread must not hide the data from the next assertion.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Passes the hook; an unapplied fault fails the call before anything happens.
    async fn enter(&self, call: &'static str) -> Result<Option<StoreError>, StoreError> {
        let pass: Pass = self.hook.pass(call).await;
        self.state()
            .calls
            .entry(call)
            .and_modify(|n| *n += 1)
            .or_insert(1);
        match pass {
            Ok(None) => Ok(None),
            Ok(Some(after)) => Ok(Some(after.store_error(call))),
            Err(fault) => Err(fault.store_error(call)),
        }
    }

    /// Runs `op` under the lock after the hook; a fault marked applied replaces its answer.
    async fn run<T>(
        &self,
        call: &'static str,
        op: impl FnOnce(&mut StoreState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let after = self.enter(call).await?;
        let result = op(&mut self.state());
        match after {
            Some(e) => Err(e),
            None => result,
        }
    }

    // ---- inspection (never hooked) ----

    /// Every job, by id.
    pub fn jobs(&self) -> Vec<Job> {
        self.state().jobs.values().cloned().collect()
    }

    pub fn job(&self, id: &JobId) -> Option<Job> {
        self.state().jobs.get(id).cloned()
    }

    /// A job's whole audit trail, oldest first.
    pub fn audit_trail(&self, id: &JobId) -> Vec<AuditEvent> {
        self.state()
            .audit
            .get(id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn writes(&self, id: &JobId) -> WriteCounts {
        self.state().writes.get(id).copied().unwrap_or_default()
    }

    pub fn total_writes(&self) -> WriteCounts {
        self.state()
            .writes
            .values()
            .fold(WriteCounts::default(), |a, w| WriteCounts {
                transitions: a.transitions + w.transitions,
                reschedules: a.reschedules + w.reschedules,
                audit_events: a.audit_events + w.audit_events,
                conflicts: a.conflicts + w.conflicts,
            })
    }

    /// How many times each call reached the store (after its hook, faulted or not).
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.state().calls.clone()
    }

    pub fn accounts(&self) -> Vec<Account> {
        self.state().accounts.values().cloned().collect()
    }

    pub fn account(&self, tenant: &TenantId, account: &AccountId) -> Option<Account> {
        self.state()
            .accounts
            .get(&(tenant.clone(), account.clone()))
            .cloned()
    }

    /// The reason given with the account's latest block.
    pub fn blocked_reason(&self, tenant: &TenantId, account: &AccountId) -> Option<String> {
        self.state()
            .blocked_reasons
            .get(&(tenant.clone(), account.clone()))
            .cloned()
    }

    /// The budget's tally as stored (empty if never taken).
    pub fn budget_tally(&self, scope: &str, kind: BudgetKind) -> Tally {
        self.state()
            .budgets
            .get(scope)
            .and_then(|t| t.get(&kind))
            .cloned()
            .unwrap_or_default()
    }

    /// Every take ever granted (never pruned), in order: to check no window was overspent.
    pub fn budget_grants(&self, scope: &str, kind: BudgetKind) -> Vec<UtcTime> {
        self.state()
            .grants
            .get(&(scope.to_owned(), kind))
            .cloned()
            .unwrap_or_default()
    }

    /// Every (scope, kind) that was ever granted a take.
    pub fn budget_scopes(&self) -> Vec<(String, BudgetKind)> {
        let mut out: Vec<_> = self.state().grants.keys().cloned().collect();
        out.sort();
        out
    }

    pub fn request_pointers(&self, request_id: &RequestId) -> Vec<JobId> {
        self.state()
            .requests
            .get(request_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn publish_pointers(&self) -> BTreeMap<PublishId, JobId> {
        self.state().publishes.clone()
    }

    pub fn lease(&self, name: &str) -> Option<Lease> {
        self.state().locks.get(name).cloned()
    }

    pub fn idempotency_record(&self, scope: &IdempotencyScope) -> Option<IdempotencyRecord> {
        self.state().idempotency.get(scope).cloned()
    }
}

impl JobStore for MemStore {
    /// Powertools' algorithm (DESIGN.md §2): absent, expired, or in progress past its lease →
    /// `Started` (the new claim replaces the old record); else another hash → `Mismatch`;
    /// completed → `Replay`; in progress → `InProgress`.
    async fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        hash: &PayloadHash,
        now: UtcTime,
        in_progress_until: UtcTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        self.run(calls::JOBS_BEGIN_IDEMPOTENT, |s| {
            let claimable = match s.idempotency.get(scope) {
                None => true,
                Some(r) if r.expiration < now => true,
                Some(IdempotencyRecord {
                    status: IdempotencyStatus::InProgress { until },
                    ..
                }) if *until < now => true,
                Some(_) => false,
            };
            if claimable {
                s.idempotency.insert(
                    scope.clone(),
                    IdempotencyRecord {
                        hash: hash.clone(),
                        status: IdempotencyStatus::InProgress {
                            until: in_progress_until,
                        },
                        expiration: in_progress_until.max(now).plus(IDEMPOTENCY_RETENTION),
                    },
                );
                return Ok(IdempotencyBegin::Started);
            }
            let Some(record) = s.idempotency.get(scope) else {
                return Err(StoreError::Conflict);
            };
            if &record.hash != hash {
                return Ok(IdempotencyBegin::Mismatch);
            }
            Ok(match &record.status {
                IdempotencyStatus::Completed { response, .. } => {
                    IdempotencyBegin::Replay(response.clone())
                }
                IdempotencyStatus::InProgress { until } => {
                    IdempotencyBegin::InProgress { until: *until }
                }
            })
        })
        .await
    }

    /// Deletes only a record in progress; a completed or absent one is left as it is.
    async fn abandon_idempotent(&self, scope: &IdempotencyScope) -> Result<(), StoreError> {
        self.run(calls::JOBS_ABANDON_IDEMPOTENT, |s| {
            if matches!(
                s.idempotency.get(scope),
                Some(IdempotencyRecord {
                    status: IdempotencyStatus::InProgress { .. },
                    ..
                })
            ) {
                s.idempotency.remove(scope);
            }
            Ok(())
        })
        .await
    }

    /// One step: the job (which must not exist), its first audit event, its pointers, and the
    /// idempotency record completed (which must still be in progress with this hash: the fence
    /// that lets only one of two owners create).
    async fn create(
        &self,
        created: &Applied,
        idempotency: Option<(&IdempotencyScope, &PayloadHash, &StoredResponse, UtcTime)>,
    ) -> Result<(), StoreError> {
        self.run(calls::JOBS_CREATE, |s| {
            let job = &created.job;
            if created.audit.version != job.version {
                return Err(StoreError::Corrupt(format!(
                    "first audit event at version {} for a job at version {}",
                    created.audit.version, job.version
                )));
            }
            if s.jobs.contains_key(&job.id) {
                return Err(s.conflict(&job.id));
            }
            if let Some((scope, hash, _, _)) = idempotency {
                let fenced = matches!(
                    s.idempotency.get(scope),
                    Some(IdempotencyRecord {
                        hash: stored,
                        status: IdempotencyStatus::InProgress { .. },
                        ..
                    }) if stored == hash
                );
                if !fenced {
                    return Err(s.conflict(&job.id));
                }
            }
            if let Some((scope, hash, response, expires_at)) = idempotency {
                s.idempotency.insert(
                    scope.clone(),
                    IdempotencyRecord {
                        hash: hash.clone(),
                        status: IdempotencyStatus::Completed {
                            response: response.clone(),
                            job_id: job.id.clone(),
                        },
                        expiration: expires_at.max(job.created_at.plus(IDEMPOTENCY_RETENTION)),
                    },
                );
            }
            s.jobs.insert(job.id.clone(), job.clone());
            s.insert_audit(&job.id, &created.audit);
            s.write_pointers(&job.id, &created.pointers);
            s.counts(&job.id).transitions += 1;
            tracing::debug!(job_id = %job.id, account_id = %job.account_id, state = %job.state, "job created");
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        self.run(calls::JOBS_GET, |s| Ok(s.jobs.get(id).cloned()))
            .await
    }

    async fn audit_page(
        &self,
        id: &JobId,
        after: Option<u64>,
        limit: u32,
    ) -> Result<AuditPage, StoreError> {
        self.run(calls::JOBS_AUDIT_PAGE, |s| {
            let limit = limit.max(1) as usize;
            let Some(events) = s.audit.get(id) else {
                return Ok(AuditPage {
                    events: Vec::new(),
                    next_after: None,
                });
            };
            let mut rest = events
                .range(after.map_or(0, |a| a.saturating_add(1))..)
                .map(|(_, e)| e.clone());
            let page: Vec<AuditEvent> = rest.by_ref().take(limit).collect();
            let next_after = if rest.next().is_some() {
                page.last().map(|e| e.version)
            } else {
                None
            };
            Ok(AuditPage {
                events: page,
                next_after,
            })
        })
        .await
    }

    /// Conditional on the stored job being at `expected_version` and the audit event's `from`
    /// state, and on no audit event existing at the new version; writes the job, the event and
    /// exactly `applied.pointers`.
    async fn save(&self, applied: &Applied, expected_version: u64) -> Result<(), StoreError> {
        self.run(calls::JOBS_SAVE, |s| {
            let job = &applied.job;
            if job.version <= expected_version || applied.audit.version != job.version {
                return Err(StoreError::Corrupt(format!(
                    "transition to version {} (audit {}) cannot follow version {expected_version}",
                    job.version, applied.audit.version
                )));
            }
            let holds = s.jobs.get(&job.id).is_some_and(|stored| {
                stored.version == expected_version
                    && applied.audit.from.is_none_or(|from| stored.state == from)
            });
            let audit_free = s
                .audit
                .get(&job.id)
                .is_none_or(|m| !m.contains_key(&applied.audit.version));
            if !holds || !audit_free {
                tracing::debug!(job_id = %job.id, expected_version, event = %applied.audit.event, "transition lost a race");
                return Err(s.conflict(&job.id));
            }
            s.jobs.insert(job.id.clone(), job.clone());
            s.insert_audit(&job.id, &applied.audit);
            s.write_pointers(&job.id, &applied.pointers);
            s.counts(&job.id).transitions += 1;
            Ok(())
        })
        .await
    }

    /// Conditional on the stored job being at `job.version` and `job.state`; writes only
    /// `next_check` and `hold` onto the stored job: no version, no audit event.
    async fn reschedule(&self, job: &Job) -> Result<(), StoreError> {
        self.run(calls::JOBS_RESCHEDULE, |s| {
            let Some(stored) = s
                .jobs
                .get_mut(&job.id)
                .filter(|j| j.version == job.version && j.state == job.state)
            else {
                return Err(s.conflict(&job.id));
            };
            stored.next_check = job.next_check;
            stored.hold = job.hold.clone();
            s.counts(&job.id).reschedules += 1;
            Ok(())
        })
        .await
    }

    /// By job id, ascending (the `REQ#` partition's sort key).
    async fn jobs_for_request(&self, request_id: &RequestId) -> Result<Vec<JobId>, StoreError> {
        self.run(calls::JOBS_FOR_REQUEST, |s| {
            Ok(s.requests
                .get(request_id)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default())
        })
        .await
    }

    async fn job_for_publish(&self, publish_id: &PublishId) -> Result<Option<JobId>, StoreError> {
        self.run(calls::JOBS_FOR_PUBLISH, |s| {
            Ok(s.publishes.get(publish_id).cloned())
        })
        .await
    }

    /// The tenant's jobs, newest job id first, filtered; pages of `limit` (1..=100). Unlike the
    /// DynamoDB adapter, every page but the last is full and the last has no cursor.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<JobPage, StoreError> {
        let after = cursor.map(decode_cursor).transpose();
        self.run(calls::JOBS_LIST, |s| {
            let after = after?;
            let limit = limit.clamp(1, LIST_MAX) as usize;
            let mut matching = s
                .jobs
                .values()
                .rev()
                .filter(|j| after.as_ref().is_none_or(|a| &j.id < a))
                .filter(|j| &j.tenant_id == tenant)
                .filter(|j| filter.matches(j));
            let jobs: Vec<Job> = matching.by_ref().take(limit).cloned().collect();
            let next_cursor = if matching.next().is_some() {
                jobs.last().map(|j| encode_cursor(&j.id))
            } else {
                None
            };
            Ok(JobPage { jobs, next_cursor })
        })
        .await
    }

    /// Non-terminal jobs whose next check is at or before `now`, oldest first (ties by job id),
    /// at most `limit` (1..=1000).
    async fn due(&self, now: UtcTime, limit: u32) -> Result<Vec<DueJob>, StoreError> {
        self.run(calls::JOBS_DUE, |s| {
            let mut due: Vec<DueJob> = s
                .jobs
                .values()
                .filter(|j| !j.is_terminal())
                .filter_map(|j| {
                    j.next_check.filter(|c| c.at <= now).map(|c| DueJob {
                        job_id: j.id.clone(),
                        at: c.at,
                        kind: c.kind,
                    })
                })
                .collect();
            due.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.job_id.cmp(&b.job_id)));
            due.truncate(limit.clamp(1, DUE_MAX) as usize);
            Ok(due)
        })
        .await
    }
}

impl AccountStore for MemStore {
    async fn get_account(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<Account>, StoreError> {
        self.run(calls::ACCOUNTS_GET, |s| {
            Ok(s.accounts.get(&(tenant.clone(), account.clone())).cloned())
        })
        .await
    }

    async fn accounts(&self, tenant: &TenantId) -> Result<Vec<Account>, StoreError> {
        self.run(calls::ACCOUNTS_LIST, |s| {
            Ok(s.accounts
                .values()
                .filter(|a| &a.tenant_id == tenant)
                .cloned()
                .collect())
        })
        .await
    }

    /// Conditional on `account.version` (0: must not exist); stores `version + 1`. The open_id
    /// lookup follows the record: the old open_id (if it named this account) is dropped, the new
    /// one names this account, unless it names another account (one creator, one account:
    /// `Conflict`, nothing written).
    async fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        self.run(calls::ACCOUNTS_PUT, |s| {
            let key = (account.tenant_id.clone(), account.account_id.clone());
            let stored_version = s.accounts.get(&key).map(|a| a.version);
            let holds = match (account.version, stored_version) {
                (0, None) => true,
                (v, Some(stored)) => v == stored,
                (_, None) => false,
            };
            let claimed_elsewhere = account
                .open_id
                .as_ref()
                .and_then(|o| s.open_ids.get(o))
                .is_some_and(|owner| owner != &key);
            if !holds || claimed_elsewhere {
                return Err(StoreError::Conflict);
            }
            if let Some(old) = s.accounts.get(&key).and_then(|a| a.open_id.clone())
                && s.open_ids.get(&old) == Some(&key)
            {
                s.open_ids.remove(&old);
            }
            if let Some(open_id) = &account.open_id {
                s.open_ids.insert(open_id.clone(), key.clone());
            }
            let mut stored = account.clone();
            stored.version = account.version + 1;
            s.accounts.insert(key, stored);
            Ok(())
        })
        .await
    }

    async fn account_for_open_id(
        &self,
        open_id: &str,
    ) -> Result<Option<(TenantId, AccountId)>, StoreError> {
        self.run(calls::ACCOUNTS_FOR_OPEN_ID, |s| {
            Ok(s.open_ids.get(open_id).cloned())
        })
        .await
    }

    /// Only extends: an earlier `until` than the stored block changes nothing. `NotFound` for a
    /// missing account. Bumps the account's version, like every account write.
    async fn block_until(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        until: UtcTime,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.run(calls::ACCOUNTS_BLOCK_UNTIL, |s| {
            let key = (tenant.clone(), account.clone());
            let Some(stored) = s.accounts.get_mut(&key) else {
                return Err(StoreError::NotFound);
            };
            if stored.blocked_until.is_none_or(|b| b < until) {
                stored.blocked_until = Some(until);
                stored.blocked_reason = Some(reason.to_owned());
                stored.version += 1;
                s.blocked_reasons.insert(key, reason.to_owned());
            }
            Ok(())
        })
        .await
    }

    /// `NotFound` for a missing account; a `None` reason clears the stored one.
    async fn set_health(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        health: AccountHealth,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.run(calls::ACCOUNTS_SET_HEALTH, |s| {
            let Some(stored) = s.accounts.get_mut(&(tenant.clone(), account.clone())) else {
                return Err(StoreError::NotFound);
            };
            stored.health = health;
            stored.health_reason = reason.map(str::to_owned);
            stored.version += 1;
            Ok(())
        })
        .await
    }
}

impl BudgetStore for MemStore {
    /// `plan_take` over the stored tallies and every step applied, under one lock: atomic
    /// across the windows, so never overspent and nothing taken when one window refuses.
    async fn take(
        &self,
        scope: &str,
        windows: &[(BudgetKind, Window)],
        units: u32,
        now: UtcTime,
    ) -> Result<Option<Denied>, StoreError> {
        self.run(calls::BUDGETS_TAKE, |s| {
            let tallies = s.budgets.entry(scope.to_owned()).or_default();
            let outcome = match plan_take(windows, tallies, units, now) {
                Ok(steps) => {
                    for (kind, step) in &steps {
                        let tally = tallies.entry(*kind).or_default();
                        tally.apply(step);
                        // The instant the take is counted at: its bucket, or `now` within it.
                        let bucket = UtcTime::from_millis(tally.hi.saturating_mul(tally.width_ms));
                        let at = bucket.max(now);
                        let grants = s.grants.entry((scope.to_owned(), *kind)).or_default();
                        grants.extend(std::iter::repeat_n(at, units as usize));
                    }
                    None
                }
                Err(denied) => Some(denied),
            };
            tracing::debug!(budget_scope = scope, ?outcome, "budget take");
            Ok(outcome)
        })
        .await
    }

    async fn peek(
        &self,
        scope: &str,
        windows: &[(BudgetKind, Window)],
        now: UtcTime,
    ) -> Result<Vec<Admission>, StoreError> {
        self.run(calls::BUDGETS_PEEK, |s| {
            let tallies = s.budgets.get(scope);
            Ok(windows
                .iter()
                .map(|(kind, window)| window.admit(tallies.and_then(|t| t.get(kind)), 1, now))
                .collect())
        })
        .await
    }
}

impl LockStore for MemStore {
    /// Free, expired (`until < now`) or already `owner`'s (a renewal).
    async fn acquire_lock(
        &self,
        name: &str,
        owner: &str,
        now: UtcTime,
        until: UtcTime,
    ) -> Result<bool, StoreError> {
        self.run(calls::LOCKS_ACQUIRE, |s| {
            let free = s
                .locks
                .get(name)
                .is_none_or(|l| l.until < now || l.owner == owner);
            if free {
                s.locks.insert(
                    name.to_owned(),
                    Lease {
                        owner: owner.to_owned(),
                        until,
                    },
                );
            }
            Ok(free)
        })
        .await
    }

    /// Only `owner`'s own lease is removed; anyone else's is left alone.
    async fn release_lock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.run(calls::LOCKS_RELEASE, |s| {
            if s.locks.get(name).is_some_and(|l| l.owner == owner) {
                s.locks.remove(name);
            }
            Ok(())
        })
        .await
    }

    /// Consumes a live lease (`until >= now`); an expired one is left in place and answers `None`.
    async fn take_lock(&self, name: &str, now: UtcTime) -> Result<Option<String>, StoreError> {
        self.run(calls::LOCKS_TAKE, |s| {
            if s.locks.get(name).is_some_and(|l| l.until >= now) {
                return Ok(s.locks.remove(name).map(|l| l.owner));
            }
            Ok(None)
        })
        .await
    }
}

impl TenantStore for MemStore {
    /// Anything but a lowercase SHA-256 hex digest finds nothing.
    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.run(calls::TENANTS_API_KEY, |s| {
            if !is_sha256_hex(key_hash) {
                return Ok(None);
            }
            Ok(s.tenant_keys.get(key_hash).cloned())
        })
        .await
    }

    /// Refuses anything but a lowercase SHA-256 hex digest (`Corrupt`), so a raw key is never
    /// stored; a hash stored before is a `Conflict`.
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.run(calls::TENANTS_PUT_KEY, |s| {
            if !is_sha256_hex(&key.hash) {
                return Err(StoreError::Corrupt(
                    "tenant key must be a lowercase SHA-256 hex digest".into(),
                ));
            }
            if s.tenant_keys.contains_key(&key.hash) {
                return Err(StoreError::Conflict);
            }
            s.tenant_keys.insert(key.hash.clone(), key.clone());
            Ok(())
        })
        .await
    }

    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        self.run(calls::TENANTS_KEYS, |s| {
            let mut keys: Vec<ApiKey> = s
                .tenant_keys
                .values()
                .filter(|k| &k.tenant == tenant)
                .cloned()
                .collect();
            keys.sort_by(|a, b| (a.created_at, &a.hash).cmp(&(b.created_at, &b.hash)));
            Ok(keys)
        })
        .await
    }

    async fn end_api_key(
        &self,
        tenant: &TenantId,
        key_hash: &str,
        at: UtcTime,
        revoked: bool,
    ) -> Result<(), StoreError> {
        self.run(calls::TENANTS_END_KEY, |s| {
            match s.tenant_keys.get_mut(key_hash) {
                Some(k) if &k.tenant == tenant => {
                    k.not_after = Some(at);
                    k.revoked |= revoked;
                    Ok(())
                }
                _ => Err(StoreError::NotFound),
            }
        })
        .await
    }

    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        self.run(calls::TENANTS_PUT, |s| {
            if s.tenants.contains_key(&tenant.id) {
                return Err(StoreError::Conflict);
            }
            s.tenants.insert(tenant.id.clone(), tenant.clone());
            Ok(())
        })
        .await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.run(calls::TENANTS_GET, |s| Ok(s.tenants.get(id).cloned()))
            .await
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.run(calls::TENANTS_LIST, |s| {
            Ok(s.tenants.values().cloned().collect())
        })
        .await
    }
}

impl WebhookStore for MemStore {
    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.run(calls::WEBHOOKS_PUT, |s| {
            let key = (endpoint.tenant_id.clone(), endpoint.id.clone());
            if s.endpoints.contains_key(&key) {
                return Err(StoreError::Conflict);
            }
            s.endpoints.insert(key, endpoint.clone());
            Ok(())
        })
        .await
    }

    async fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        self.run(calls::WEBHOOKS_GET, |s| {
            Ok(s.endpoints.get(&(tenant.clone(), id.clone())).cloned())
        })
        .await
    }

    async fn endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>, StoreError> {
        self.run(calls::WEBHOOKS_LIST, |s| {
            Ok(s.endpoints
                .iter()
                .filter(|((t, _), _)| t == tenant)
                .map(|(_, e)| e.clone())
                .collect())
        })
        .await
    }

    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<bool, StoreError> {
        self.run(calls::WEBHOOKS_DELETE, |s| {
            Ok(s.endpoints.remove(&(tenant.clone(), id.clone())).is_some())
        })
        .await
    }

    async fn record_delivery(
        &self,
        tenant: &TenantId,
        record: &DeliveryRecord,
        _expires_at: UtcTime,
    ) -> Result<(), StoreError> {
        self.run(calls::WEBHOOKS_RECORD, |s| {
            s.delivery_log
                .entry((tenant.clone(), record.endpoint_id.clone()))
                .or_default()
                .insert(delivery_sort_key(record), record.clone());
            Ok(())
        })
        .await
    }

    async fn deliveries(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<DeliveryPage, StoreError> {
        self.run(calls::WEBHOOKS_LOG, |s| {
            let Some(log) = s.delivery_log.get(&(tenant.clone(), id.clone())) else {
                return Ok(DeliveryPage::default());
            };
            let limit = usize::try_from(limit.clamp(1, 100)).unwrap_or(100);
            let newer_first = log
                .iter()
                .rev()
                .filter(|(k, _)| cursor.is_none_or(|c| k.as_str() < c));
            let page: Vec<(&String, &DeliveryRecord)> = newer_first.take(limit + 1).collect();
            let more = page.len() > limit;
            let records: Vec<DeliveryRecord> =
                page.iter().take(limit).map(|(_, r)| (*r).clone()).collect();
            let next_cursor = more
                .then(|| page.get(limit - 1).map(|(k, _)| (*k).clone()))
                .flatten();
            Ok(DeliveryPage {
                records,
                next_cursor,
            })
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = JobId::generate(UtcTime::from_millis(1_700_000_000_000), 7);
        assert_eq!(decode_cursor(&encode_cursor(&id)).unwrap(), id);
        assert!(matches!(
            decode_cursor("zz"),
            Err(StoreError::InvalidCursor)
        ));
        assert!(matches!(
            decode_cursor(&hex::encode("job_nope")),
            Err(StoreError::InvalidCursor)
        ));
    }
}
