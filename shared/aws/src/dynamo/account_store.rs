//! `AccountStore` on DynamoDB: accounts, sliding-window budgets, leases and tenant API keys.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
};
use rand::Rng;
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::budget::{Admission, BudgetKind, Window};
use reelay_domain::ports::{AccountStore, StoreError};
use reelay_domain::{AccountId, TenantId, UtcTime};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use super::{ATTR_PK, ATTR_SK, CapacityMeter, get_n, get_s, n, s, unavailable};

const ACCT_SK: &str = "ACCT";
const LOCK_SK: &str = "LOCK";
const APIKEY_SK: &str = "APIKEY";
/// Compare-and-set rounds for one `take`. Each lost round means another taker wrote, so with
/// `limit` grants per window a taker loses at most `limit` rounds before it is denied.
const TAKE_MAX_ROUNDS: u32 = 32;
/// Locks and budget logs linger this long past their last use before TTL removes them.
const TTL_GRACE: Duration = Duration::from_secs(24 * 3600);

fn acct_pk(tenant: &TenantId, account: &AccountId) -> String {
    format!("ACCT#{tenant}#{account}")
}

fn budget_pk(scope: &str) -> String {
    format!("BUDGET#{scope}")
}

fn lock_pk(name: &str) -> String {
    format!("LOCK#{name}")
}

fn apikey_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(ATTR_PK.to_owned(), s(pk)), (ATTR_SK.to_owned(), s(sk))])
}

fn health_str(h: AccountHealth) -> &'static str {
    match h {
        AccountHealth::Active => "active",
        AccountHealth::NeedsReauth => "needs_reauth",
        AccountHealth::Banned => "banned",
    }
}

fn parse_health(raw: &str) -> Option<AccountHealth> {
    match raw {
        "active" => Some(AccountHealth::Active),
        "needs_reauth" => Some(AccountHealth::NeedsReauth),
        "banned" => Some(AccountHealth::Banned),
        _ => None,
    }
}

/// SHA-256 (hex) of a tenant API key: the only form in which keys are stored or compared.
pub fn hash_api_key(key: &SecretString) -> String {
    hex::encode(Sha256::digest(key.expose_secret().as_bytes()))
}

fn is_sha256_hex(raw: &str) -> bool {
    raw.len() == 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// DynamoDB's `AccountStore`. Cheap to clone; build once per cold start.
#[derive(Debug, Clone)]
pub struct DynamoAccountStore {
    client: Client,
    table: String,
    meter: CapacityMeter,
}

impl DynamoAccountStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            meter: CapacityMeter::default(),
        }
    }

    /// From the Lambda environment: `TABLE_NAME`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, crate::ConfigError> {
        Ok(Self::new(
            Client::new(sdk),
            crate::config::env_var("TABLE_NAME")?,
        ))
    }

    pub fn meter(&self) -> &CapacityMeter {
        &self.meter
    }

    fn account_from(item: &HashMap<String, AttributeValue>) -> Result<Account, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("account item: {what}"));
        let tenant_id = TenantId::parse(get_s(item, "tenant").unwrap_or_default())
            .map_err(|_| corrupt("tenant"))?;
        let account_id = AccountId::parse(get_s(item, "account").unwrap_or_default())
            .map_err(|_| corrupt("account"))?;
        let health = get_s(item, "health")
            .and_then(parse_health)
            .ok_or_else(|| corrupt("health"))?;
        let scopes = item
            .get("scopes")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default();
        Ok(Account {
            tenant_id,
            account_id,
            open_id: get_s(item, "open_id").map(str::to_owned),
            health,
            health_reason: get_s(item, "health_reason").map(str::to_owned),
            blocked_until: get_n::<i64>(item, "blocked_until").map(UtcTime::from_millis),
            scopes,
            connected_at: get_n::<i64>(item, "connected_at").map(UtcTime::from_millis),
            version: get_n(item, "ver").unwrap_or(0),
        })
    }

    /// One compare-and-set round of `take`: `Ok(Some)` is the answer, `Ok(None)` lost the race.
    async fn take_round(
        &self,
        pk: &str,
        kind: BudgetKind,
        window: Window,
        now: UtcTime,
        seen: &mut Option<(Vec<UtcTime>, u64)>,
    ) -> Result<Option<Admission>, StoreError> {
        let (log, version) = match seen.take() {
            Some(known) => known,
            None => self.read_budget(pk, kind).await?,
        };
        // Takers run on different machines with slightly different clocks. `Window` ignores
        // takes later than `now`, so a taker behind the others would overspend and, worse, drop
        // their takes from the log it writes back. Counting from the latest take keeps the log
        // monotonic and errs on the safe side (our take leaves the window a little later).
        let now = log
            .iter()
            .copied()
            .max()
            .map_or(now, |latest| latest.max(now));
        let admission = window.admit(&log, now);
        let Admission::Granted { .. } = admission else {
            return Ok(Some(admission));
        };
        let mut live = window.live(&log, now);
        live.push(now);
        let log_av = AttributeValue::L(live.iter().map(|t| n(t.as_millis())).collect());
        let expires = now.plus(window.period).plus(TTL_GRACE).as_secs();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(pk))
            .item(ATTR_SK, s(kind.as_str()))
            .item("t", s("budget"))
            .item("log", log_av)
            .item("ver", n(version + 1))
            .item("expires_at", n(expires))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        put = if version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("ver = :v")
                .expression_attribute_values(":v", n(version))
        };
        match put.send().await {
            Ok(out) => {
                self.meter.record("take", out.consumed_capacity());
                Ok(Some(admission))
            }
            Err(err) => {
                self.meter.record_failed("take");
                match &err {
                    SdkError::ServiceError(se) => match se.err() {
                        // The exception carries the winner's log: the next round needs no read.
                        PutItemError::ConditionalCheckFailedException(ccf) => {
                            *seen = ccf.item.as_ref().map(budget_from);
                            Ok(None)
                        }
                        _ => Err(unavailable(err)),
                    },
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    async fn read_budget(
        &self,
        pk: &str,
        kind: BudgetKind,
    ) -> Result<(Vec<UtcTime>, u64), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), kind.as_str())))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| {
                self.meter.record_failed("take_read");
                unavailable(e)
            })?;
        self.meter.record("take_read", out.consumed_capacity());
        Ok(out
            .item
            .as_ref()
            .map(budget_from)
            .unwrap_or((Vec::new(), 0)))
    }

    /// An update of an existing account; `NotFound` if there is none.
    async fn update_account(
        &self,
        op: &'static str,
        tenant: &TenantId,
        account: &AccountId,
        build: impl FnOnce(
            aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
        ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
        tolerate_condition: bool,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(acct_pk(tenant, account), ACCT_SK)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match build(req).send().await {
            Ok(out) => {
                self.meter.record(op, out.consumed_capacity());
                Ok(())
            }
            Err(err) => {
                self.meter.record_failed(op);
                match &err {
                    SdkError::ServiceError(se) => match se.err() {
                        UpdateItemError::ConditionalCheckFailedException(ccf) => match &ccf.item {
                            None => Err(StoreError::NotFound),
                            Some(_) if tolerate_condition => Ok(()),
                            Some(_) => Err(StoreError::Conflict),
                        },
                        _ => Err(unavailable(err)),
                    },
                    _ => Err(unavailable(err)),
                }
            }
        }
    }
}

fn budget_from(item: &HashMap<String, AttributeValue>) -> (Vec<UtcTime>, u64) {
    let log = item
        .get("log")
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_n().ok().and_then(|raw| raw.parse::<i64>().ok()))
                .map(UtcTime::from_millis)
                .collect()
        })
        .unwrap_or_default();
    (log, get_n(item, "ver").unwrap_or(0))
}

impl AccountStore for DynamoAccountStore {
    async fn get_account(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<Account>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(acct_pk(tenant, account), ACCT_SK)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| {
                self.meter.record_failed("get_account");
                unavailable(e)
            })?;
        self.meter.record("get_account", out.consumed_capacity());
        out.item.as_ref().map(Self::account_from).transpose()
    }

    /// `account.version` is the version the caller read (0 for a new account); the stored record
    /// becomes `version + 1`. Anyone else's write in between is a `Conflict`.
    async fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(acct_pk(&account.tenant_id, &account.account_id)))
            .item(ATTR_SK, s(ACCT_SK))
            .item("t", s("account"))
            .item("tenant", s(account.tenant_id.as_str()))
            .item("account", s(account.account_id.as_str()))
            .item("health", s(health_str(account.health)))
            .item(
                "scopes",
                AttributeValue::L(account.scopes.iter().map(|x| s(x.as_str())).collect()),
            )
            .item("ver", n(account.version + 1))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(v) = &account.open_id {
            put = put.item("open_id", s(v.as_str()));
        }
        if let Some(v) = &account.health_reason {
            put = put.item("health_reason", s(v.as_str()));
        }
        if let Some(v) = account.blocked_until {
            put = put.item("blocked_until", n(v.as_millis()));
        }
        if let Some(v) = account.connected_at {
            put = put.item("connected_at", n(v.as_millis()));
        }
        put = if account.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("ver = :v")
                .expression_attribute_values(":v", n(account.version))
        };
        match put.send().await {
            Ok(out) => {
                self.meter.record("put_account", out.consumed_capacity());
                Ok(())
            }
            Err(err) => {
                self.meter.record_failed("put_account");
                match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => {
                        Err(StoreError::Conflict)
                    }
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    async fn take(
        &self,
        scope: &str,
        kind: BudgetKind,
        window: Window,
        now: UtcTime,
    ) -> Result<Admission, StoreError> {
        let pk = budget_pk(scope);
        let mut seen = None;
        for round in 0..TAKE_MAX_ROUNDS {
            if let Some(admission) = self.take_round(&pk, kind, window, now, &mut seen).await? {
                debug!(
                    budget_scope = scope,
                    budget = kind.as_str(),
                    round,
                    ?admission,
                    "budget take"
                );
                return Ok(admission);
            }
            // A little jitter spreads the losers of a crowded round.
            let pause = rand::rng().random_range(0..=u64::from(round.min(8)) * 2);
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        warn!(
            budget_scope = scope,
            budget = kind.as_str(),
            "budget take kept losing its compare-and-set"
        );
        Err(StoreError::Conflict)
    }

    /// Only ever extends a block; an earlier `until` than the stored one changes nothing.
    async fn block_until(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        until: UtcTime,
        reason: &str,
    ) -> Result<(), StoreError> {
        let reason = reason.to_owned();
        self.update_account(
            "block_until",
            tenant,
            account,
            |u| {
                u.update_expression("SET blocked_until = :u, blocked_reason = :r ADD ver :one")
                    .condition_expression(
                        "attribute_exists(pk) AND (attribute_not_exists(blocked_until) OR blocked_until < :u)",
                    )
                    .expression_attribute_values(":u", n(until.as_millis()))
                    .expression_attribute_values(":r", s(reason))
                    .expression_attribute_values(":one", n(1))
            },
            true,
        )
        .await
    }

    async fn set_health(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        health: AccountHealth,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let reason = reason.map(str::to_owned);
        self.update_account(
            "set_health",
            tenant,
            account,
            |u| {
                let u = u
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":h", s(health_str(health)))
                    .expression_attribute_values(":one", n(1));
                match reason {
                    Some(r) => u
                        .update_expression("SET health = :h, health_reason = :r ADD ver :one")
                        .expression_attribute_values(":r", s(r)),
                    None => {
                        u.update_expression("SET health = :h REMOVE health_reason ADD ver :one")
                    }
                }
            },
            false,
        )
        .await
    }

    /// A lease: free, expired, or already ours (renewal). A dead holder's lease simply expires.
    async fn acquire_lock(
        &self,
        name: &str,
        owner: &str,
        now: UtcTime,
        until: UtcTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(lock_pk(name)))
            .item(ATTR_SK, s(LOCK_SK))
            .item("t", s("lock"))
            .item("owner_id", s(owner))
            .item("until_ms", n(until.as_millis()))
            .item("expires_at", n(until.plus(TTL_GRACE).as_secs()))
            .condition_expression(
                "attribute_not_exists(pk) OR until_ms < :now OR owner_id = :owner",
            )
            .expression_attribute_values(":now", n(now.as_millis()))
            .expression_attribute_values(":owner", s(owner))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter.record("acquire_lock", out.consumed_capacity());
                Ok(true)
            }
            Err(err) => {
                self.meter.record_failed("acquire_lock");
                match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => Ok(false),
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    async fn take_lock(&self, name: &str, now: UtcTime) -> Result<Option<String>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(lock_pk(name), LOCK_SK)))
            .condition_expression("attribute_exists(pk) AND until_ms >= :now")
            .expression_attribute_values(":now", n(now.as_millis()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter.record("take_lock", out.consumed_capacity());
                Ok(out
                    .attributes
                    .as_ref()
                    .and_then(|item| get_s(item, "owner_id"))
                    .map(str::to_owned))
            }
            Err(err) => {
                self.meter.record_failed("take_lock");
                match err.as_service_error() {
                    // Absent or expired: nothing to consume.
                    Some(e) if e.is_conditional_check_failed_exception() => Ok(None),
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    async fn budget_remaining(
        &self,
        scope: &str,
        kind: BudgetKind,
        window: Window,
        now: UtcTime,
    ) -> Result<u32, StoreError> {
        let (log, _) = self.read_budget(&budget_pk(scope), kind).await?;
        // Counted the way `take` counts: from the latest take if a clock ran ahead.
        let now = log
            .iter()
            .copied()
            .max()
            .map_or(now, |latest| latest.max(now));
        let used = u32::try_from(window.live(&log, now).len()).unwrap_or(u32::MAX);
        Ok(window.limit.saturating_sub(used))
    }

    /// Releases only our own lease; someone else's (after ours expired) is left alone.
    async fn release_lock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(lock_pk(name), LOCK_SK)))
            .condition_expression("owner_id = :owner")
            .expression_attribute_values(":owner", s(owner))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter.record("release_lock", out.consumed_capacity());
                Ok(())
            }
            Err(err) => {
                self.meter.record_failed("release_lock");
                match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => Ok(()),
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    async fn tenant_for_key_hash(&self, key_hash: &str) -> Result<Option<TenantId>, StoreError> {
        if !is_sha256_hex(key_hash) {
            return Ok(None);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(apikey_pk(key_hash), APIKEY_SK)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| {
                self.meter.record_failed("tenant_for_key_hash");
                unavailable(e)
            })?;
        self.meter
            .record("tenant_for_key_hash", out.consumed_capacity());
        out.item
            .as_ref()
            .and_then(|item| get_s(item, "tenant"))
            .map(|t| TenantId::parse(t).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Refuses anything but a SHA-256 hex digest, so a raw key can never be stored by mistake.
    /// A hash already bound to another tenant is a `Conflict`.
    async fn put_tenant_key(&self, tenant: &TenantId, key_hash: &str) -> Result<(), StoreError> {
        if !is_sha256_hex(key_hash) {
            return Err(StoreError::Corrupt(
                "tenant key must be a lowercase SHA-256 hex digest".into(),
            ));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(apikey_pk(key_hash)))
            .item(ATTR_SK, s(APIKEY_SK))
            .item("t", s("api_key"))
            .item("tenant", s(tenant.as_str()))
            .condition_expression("attribute_not_exists(pk) OR tenant = :t")
            .expression_attribute_values(":t", s(tenant.as_str()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter.record("put_tenant_key", out.consumed_capacity());
                Ok(())
            }
            Err(err) => {
                self.meter.record_failed("put_tenant_key");
                match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => {
                        Err(StoreError::Conflict)
                    }
                    _ => Err(unavailable(err)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_hashed_and_only_hashes_are_accepted() {
        let h = hash_api_key(&SecretString::from("rk_live_secret"));
        assert!(is_sha256_hex(&h));
        assert!(!h.contains("secret"));
        assert!(!is_sha256_hex("rk_live_secret"));
        assert!(!is_sha256_hex(&h.to_uppercase()));
    }

    #[test]
    fn health_round_trips() {
        for h in [
            AccountHealth::Active,
            AccountHealth::NeedsReauth,
            AccountHealth::Banned,
        ] {
            assert_eq!(parse_health(health_str(h)), Some(h));
        }
    }
}
