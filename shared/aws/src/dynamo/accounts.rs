//! `AccountStore`: connected TikTok accounts and the `open_id` → account lookup item.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::ports::{AccountStore, StoreError};
use reelay_domain::{AccountId, TenantId, UtcTime};
use tracing::debug;

use super::jobs::tenant_gsi;
use super::{DynamoStore, Item, Tx, get_n, get_s, key, n, s, unavailable};

const ACCT_SK: &str = "ACCT";
const OPENID_SK: &str = "OPENID";

fn acct_pk(tenant: &TenantId, account: &AccountId) -> String {
    format!("ACCT#{tenant}#{account}")
}

fn openid_pk(open_id: &str) -> String {
    format!("OPENID#{open_id}")
}

fn health_str(h: AccountHealth) -> &'static str {
    h.as_str()
}

fn parse_health(raw: &str) -> Option<AccountHealth> {
    AccountHealth::ALL.into_iter().find(|h| h.as_str() == raw)
}

fn account_from(item: &Item) -> Result<Account, StoreError> {
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
        blocked_reason: get_s(item, "blocked_reason").map(str::to_owned),
        scopes,
        connected_at: get_n::<i64>(item, "connected_at").map(UtcTime::from_millis),
        authorization_expires_at: get_n::<i64>(item, "auth_expires_at").map(UtcTime::from_millis),
        version: get_n(item, "ver").unwrap_or(0),
    })
}

fn account_item(account: &Account) -> Item {
    let mut item = key(acct_pk(&account.tenant_id, &account.account_id), ACCT_SK);
    item.extend([
        ("t".to_owned(), s("account")),
        ("tenant".to_owned(), s(account.tenant_id.as_str())),
        ("account".to_owned(), s(account.account_id.as_str())),
        ("health".to_owned(), s(health_str(account.health))),
        (
            "scopes".to_owned(),
            AttributeValue::L(account.scopes.iter().map(|x| s(x.as_str())).collect()),
        ),
        ("ver".to_owned(), n(account.version + 1)),
        ("gsi1pk".to_owned(), s(tenant_gsi(&account.tenant_id))),
        (
            "gsi1sk".to_owned(),
            s(format!("ACCT#{}", account.account_id)),
        ),
    ]);
    if let Some(v) = &account.open_id {
        item.insert("open_id".to_owned(), s(v.as_str()));
    }
    if let Some(v) = &account.health_reason {
        item.insert("health_reason".to_owned(), s(v.as_str()));
    }
    if let Some(v) = account.blocked_until {
        item.insert("blocked_until".to_owned(), n(v.as_millis()));
    }
    if let Some(v) = &account.blocked_reason {
        item.insert("blocked_reason".to_owned(), s(v.as_str()));
    }
    if let Some(v) = account.connected_at {
        item.insert("connected_at".to_owned(), n(v.as_millis()));
    }
    if let Some(v) = account.authorization_expires_at {
        item.insert("auth_expires_at".to_owned(), n(v.as_millis()));
    }
    item
}

/// Whether an `OPENID#` item names this account.
fn names(item: &Item, tenant: &TenantId, account: &AccountId) -> bool {
    get_s(item, "tenant") == Some(tenant.as_str())
        && get_s(item, "account") == Some(account.as_str())
}

impl DynamoStore {
    /// The lookup item of `open_id`, naming `account`, unless it names another account: one
    /// creator, one account. A lost condition is a `Conflict` (the use case checks the lookup
    /// before and refuses; only a concurrent claim of the same creator meets this condition).
    fn claim_open_id(
        &self,
        open_id: &str,
        account: &Account,
        tx: &mut Tx,
    ) -> Result<(), StoreError> {
        let mut item = key(openid_pk(open_id), OPENID_SK);
        item.extend([
            ("t".to_owned(), s("open_id")),
            ("tenant".to_owned(), s(account.tenant_id.as_str())),
            ("account".to_owned(), s(account.account_id.as_str())),
        ]);
        tx.put(
            self.put(item)
                .condition_expression(
                    "attribute_not_exists(pk) OR (#tenant = :ot AND #account = :oa)",
                )
                .expression_attribute_names("#tenant", "tenant")
                .expression_attribute_names("#account", "account")
                .expression_attribute_values(":ot", s(account.tenant_id.as_str()))
                .expression_attribute_values(":oa", s(account.account_id.as_str())),
        )
    }

    /// Deletes the lookup item of `open_id` if it still names `account` (another account may
    /// have claimed that creator since): conditional, so a concurrent claim is a lost race.
    fn retire_open_id(
        &self,
        open_id: &str,
        account: &Account,
        tx: &mut Tx,
    ) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(self.table())
            .set_key(Some(key(openid_pk(open_id), OPENID_SK)))
            .condition_expression("tenant = :t AND account = :a")
            .expression_attribute_values(":t", s(account.tenant_id.as_str()))
            .expression_attribute_values(":a", s(account.account_id.as_str()))
            .build()
            .map_err(unavailable)?;
        tx.push(TransactWriteItem::builder().delete(delete).build());
        Ok(())
    }

    /// An update of an existing account; `NotFound` if there is none. With `tolerate_condition`,
    /// a failed condition on an existing account is no change rather than a `Conflict`.
    async fn update_account(
        &self,
        op: &'static str,
        tenant: &TenantId,
        account: &AccountId,
        build: impl FnOnce(UpdateItemFluentBuilder) -> UpdateItemFluentBuilder,
        tolerate_condition: bool,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(acct_pk(tenant, account), ACCT_SK)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(self.capacity());
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

impl AccountStore for DynamoStore {
    async fn get_account(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<Account>, StoreError> {
        self.get_item("get_account", acct_pk(tenant, account), ACCT_SK)
            .await?
            .as_ref()
            .map(account_from)
            .transpose()
    }

    /// A Query of `gsi1` (`TENANT#<tenant>`, `ACCT#…`): eventually consistent on AWS.
    async fn accounts(&self, tenant: &TenantId) -> Result<Vec<Account>, StoreError> {
        self.query_gsi1("accounts", tenant_gsi(tenant), "ACCT#")
            .await?
            .iter()
            .map(account_from)
            .collect()
    }

    /// `account.version` is the version the caller read (0 for a new account); the stored record
    /// becomes `version + 1`, and anyone else's write in between is a `Conflict`. In the same
    /// write: the `OPENID#` lookup of the account's `open_id`, and the removal of the previous
    /// `open_id`'s lookup if it changed (read first: the caller's record does not say it).
    async fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        let (tenant, id) = (&account.tenant_id, &account.account_id);
        let previous = if account.version == 0 {
            None
        } else {
            let Some(stored) = self
                .get_item("put_account_read", acct_pk(tenant, id), ACCT_SK)
                .await?
            else {
                return Err(StoreError::Conflict);
            };
            if get_n::<u64>(&stored, "ver") != Some(account.version) {
                // The put's condition would fail: save the write.
                return Err(StoreError::Conflict);
            }
            get_s(&stored, "open_id").map(str::to_owned)
        };
        let mut put = self.put(account_item(account));
        put = if account.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("ver = :v")
                .expression_attribute_values(":v", n(account.version))
        };
        let mut tx = Tx::default();
        tx.put(put)?;
        if let Some(open_id) = account.open_id.as_deref().filter(|o| !o.is_empty()) {
            self.claim_open_id(open_id, account, &mut tx)?;
        }
        if let Some(old) = previous.filter(|old| account.open_id.as_ref() != Some(old)) {
            let lookup = self
                .get_item("put_account_read", openid_pk(&old), OPENID_SK)
                .await?;
            if lookup.is_some_and(|item| names(&item, tenant, id)) {
                self.retire_open_id(&old, account, &mut tx)?;
            }
        }
        self.write("put_account", tx).await?;
        debug!(tenant_id = %tenant, account_id = %id, version = account.version + 1, "account stored");
        Ok(())
    }

    /// One GetItem on the `OPENID#` lookup item.
    async fn account_for_open_id(
        &self,
        open_id: &str,
    ) -> Result<Option<(TenantId, AccountId)>, StoreError> {
        if open_id.is_empty() {
            return Ok(None);
        }
        let Some(item) = self
            .get_item("account_for_open_id", openid_pk(open_id), OPENID_SK)
            .await?
        else {
            return Ok(None);
        };
        let corrupt = |what: &str| StoreError::Corrupt(format!("open_id item: {what}"));
        let tenant = TenantId::parse(get_s(&item, "tenant").unwrap_or_default())
            .map_err(|_| corrupt("tenant"))?;
        let account = AccountId::parse(get_s(&item, "account").unwrap_or_default())
            .map_err(|_| corrupt("account"))?;
        Ok(Some((tenant, account)))
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

    /// Requires the account to exist (`NotFound` otherwise).
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_round_trips() {
        for h in AccountHealth::ALL {
            assert_eq!(parse_health(health_str(h)), Some(h));
        }
    }

    #[test]
    fn the_lookup_names_an_account_only_by_tenant_and_id() {
        let (t, a) = (
            TenantId::parse("tenant_a").unwrap_or_else(|e| panic!("{e}")),
            AccountId::parse("acct_1").unwrap_or_else(|e| panic!("{e}")),
        );
        let item = Item::from([
            ("tenant".to_owned(), s("tenant_a")),
            ("account".to_owned(), s("acct_1")),
        ]);
        assert!(names(&item, &t, &a));
        let other = AccountId::parse("acct_2").unwrap_or_else(|e| panic!("{e}"));
        assert!(!names(&item, &t, &other));
    }
}
