//! `TenantStore`: tenants' API keys, stored only as `APIKEY#<sha256 hex>`.

use reelay_domain::TenantId;
use reelay_domain::ports::{StoreError, TenantStore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{ATTR_PK, ATTR_SK, DynamoStore, get_s, s, unavailable};

const APIKEY_SK: &str = "APIKEY";

fn apikey_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
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

impl TenantStore for DynamoStore {
    async fn tenant_for_key_hash(&self, key_hash: &str) -> Result<Option<TenantId>, StoreError> {
        if !is_sha256_hex(key_hash) {
            return Ok(None);
        }
        self.get_item("tenant_for_key_hash", apikey_pk(key_hash), APIKEY_SK)
            .await?
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
            .table_name(self.table())
            .item(ATTR_PK, s(apikey_pk(key_hash)))
            .item(ATTR_SK, s(APIKEY_SK))
            .item("t", s("api_key"))
            .item("tenant", s(tenant.as_str()))
            .condition_expression("attribute_not_exists(pk) OR tenant = :t")
            .expression_attribute_values(":t", s(tenant.as_str()))
            .return_consumed_capacity(self.capacity())
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
}
