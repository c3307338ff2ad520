//! `TenantStore`: tenants (`TENANT#<id>`) and their API keys, stored only as
//! `APIKEY#<sha256 hex>`. Both carry `gsi1` keys so an operator lists a tenant's keys
//! (`gsi1pk = TENANT#<id>`, `APIKEY#…`) and the tenants (`gsi1pk = TENANTS`) with a query.

use aws_sdk_dynamodb::types::AttributeValue;
use reelay_domain::TenantId;
use reelay_domain::UtcTime;
use reelay_domain::ports::{StoreError, TenantStore};
use reelay_domain::tenant::{ApiKey, Tenant, is_sha256_hex};

pub use reelay_domain::tenant::hash_api_key;

use super::jobs::tenant_gsi;
use super::{ATTR_PK, ATTR_SK, DynamoStore, Item, get_n, get_s, n, s, unavailable};

const APIKEY_SK: &str = "APIKEY";
const TENANT_SK: &str = "TENANT";
/// The one `gsi1` partition that lists tenants (an operator's read, not a request path).
const TENANTS_GSI: &str = "TENANTS";

fn apikey_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}

fn tenant_pk(id: &TenantId) -> String {
    format!("TENANT#{id}")
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse_tenant_id(raw: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(raw).map_err(corrupt)
}

/// Items written before keys had times carry only `tenant`: they read as created at the epoch
/// and never ending.
fn parse_key(item: &Item) -> Result<ApiKey, StoreError> {
    let hash = get_s(item, ATTR_PK)
        .and_then(|pk| pk.strip_prefix("APIKEY#"))
        .ok_or_else(|| corrupt("api key item without its hash"))?;
    Ok(ApiKey {
        hash: hash.to_owned(),
        tenant: parse_tenant_id(get_s(item, "tenant").unwrap_or_default())?,
        created_at: UtcTime::from_millis(get_n(item, "created").unwrap_or(0)),
        not_after: get_n(item, "not_after").map(UtcTime::from_millis),
        revoked: matches!(item.get("revoked"), Some(AttributeValue::Bool(true))),
    })
}

fn parse_tenant(item: &Item) -> Result<Tenant, StoreError> {
    let id = get_s(item, ATTR_PK)
        .and_then(|pk| pk.strip_prefix("TENANT#"))
        .ok_or_else(|| corrupt("tenant item without its id"))?;
    Ok(Tenant {
        id: parse_tenant_id(id)?,
        name: get_s(item, "name").unwrap_or_default().to_owned(),
        created_at: UtcTime::from_millis(get_n(item, "created").unwrap_or(0)),
    })
}

impl DynamoStore {
    /// A put that must create its item: an existing one is a `Conflict`.
    pub(super) async fn put_new(&self, op: &'static str, item: Item) -> Result<(), StoreError> {
        let put = self
            .put(item)
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        self.put_alone(op, put, None).await
    }
}

impl TenantStore for DynamoStore {
    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        if !is_sha256_hex(key_hash) {
            return Ok(None);
        }
        self.get_item("api_key", apikey_pk(key_hash), APIKEY_SK)
            .await?
            .as_ref()
            .map(parse_key)
            .transpose()
    }

    /// Refuses anything but a SHA-256 hex digest, so a raw key can never be stored by mistake.
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        if !is_sha256_hex(&key.hash) {
            return Err(corrupt("tenant key must be a lowercase SHA-256 hex digest"));
        }
        let mut item = Item::from([
            (ATTR_PK.to_owned(), s(apikey_pk(&key.hash))),
            (ATTR_SK.to_owned(), s(APIKEY_SK)),
            ("t".to_owned(), s("api_key")),
            ("tenant".to_owned(), s(key.tenant.as_str())),
            ("created".to_owned(), n(key.created_at.as_millis())),
            ("revoked".to_owned(), AttributeValue::Bool(key.revoked)),
            ("gsi1pk".to_owned(), s(tenant_gsi(&key.tenant))),
            ("gsi1sk".to_owned(), s(apikey_pk(&key.hash))),
        ]);
        if let Some(end) = key.not_after {
            item.insert("not_after".to_owned(), n(end.as_millis()));
        }
        self.put_new("put_api_key", item).await
    }

    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys = self
            .query_gsi1("api_keys", tenant_gsi(tenant), "APIKEY#")
            .await?
            .iter()
            .map(parse_key)
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| (a.created_at, &a.hash).cmp(&(b.created_at, &b.hash)));
        Ok(keys)
    }

    async fn end_api_key(
        &self,
        tenant: &TenantId,
        key_hash: &str,
        at: UtcTime,
        revoked: bool,
    ) -> Result<(), StoreError> {
        if !is_sha256_hex(key_hash) {
            return Err(StoreError::NotFound);
        }
        let mut update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(ATTR_PK, s(apikey_pk(key_hash)))
            .key(ATTR_SK, s(APIKEY_SK))
            .condition_expression("tenant = :t")
            .expression_attribute_values(":t", s(tenant.as_str()))
            .expression_attribute_values(":at", n(at.as_millis()))
            .return_consumed_capacity(self.capacity());
        update = if revoked {
            update
                .update_expression("SET not_after = :at, revoked = :r")
                .expression_attribute_values(":r", AttributeValue::Bool(true))
        } else {
            update.update_expression("SET not_after = :at")
        };
        match update.send().await {
            Ok(out) => {
                self.meter.record("end_api_key", out.consumed_capacity());
                Ok(())
            }
            Err(err) => {
                self.meter.record_failed("end_api_key");
                match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => {
                        Err(StoreError::NotFound)
                    }
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let item = Item::from([
            (ATTR_PK.to_owned(), s(tenant_pk(&tenant.id))),
            (ATTR_SK.to_owned(), s(TENANT_SK)),
            ("t".to_owned(), s("tenant")),
            ("name".to_owned(), s(tenant.name.as_str())),
            ("created".to_owned(), n(tenant.created_at.as_millis())),
            ("gsi1pk".to_owned(), s(TENANTS_GSI)),
            ("gsi1sk".to_owned(), s(tenant_pk(&tenant.id))),
        ]);
        self.put_new("put_tenant", item).await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.get_item("tenant", tenant_pk(id), TENANT_SK)
            .await?
            .as_ref()
            .map(parse_tenant)
            .transpose()
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.query_gsi1("tenants", TENANTS_GSI.to_owned(), "TENANT#")
            .await?
            .iter()
            .map(parse_tenant)
            .collect()
    }
}
