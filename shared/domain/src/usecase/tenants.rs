//! Tenants and API keys: create a tenant, issue, list, rotate (with an overlap) and revoke keys,
//! and authenticate a request's key. The operator CLI, the local runner and the ingest API all
//! call these, so a key is made, stored and checked one way.

use std::time::Duration;

use secrecy::SecretString;
use thiserror::Error;

use super::Core;
use crate::ids::TenantId;
use crate::ports::{Clock, Entropy, Ports, StoreError, TenantStore};
use crate::tenant::{ApiKey, IssuedKey, Tenant, hash_api_key, new_key};
use crate::time::UtcTime;

/// Fewest hex digits of a key id an operator may give to name a key.
pub const MIN_KEY_ID_LEN: usize = 8;

#[derive(Debug, Error)]
pub enum TenantError {
    #[error("tenant {0} already exists")]
    Exists(TenantId),
    #[error("no tenant {0}")]
    UnknownTenant(TenantId),
    #[error("tenant {tenant} has no key {key_id}")]
    UnknownKey { tenant: TenantId, key_id: String },
    #[error("key id {0} names several keys of the tenant: give more of it")]
    AmbiguousKey(String),
    #[error("a key id is at least {MIN_KEY_ID_LEN} lowercase hex digits (got {0:?})")]
    BadKeyId(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A rotation's result: the new key, and the keys that now end when the overlap does.
#[derive(Debug)]
pub struct Rotated {
    pub issued: IssuedKey,
    pub ending: Vec<ApiKey>,
}

/// Creates `id` with its first key. An existing tenant is refused, so a second run of a
/// provisioning script cannot silently add keys.
pub async fn create_tenant<S: TenantStore>(
    store: &S,
    entropy: &impl Entropy,
    id: &TenantId,
    name: &str,
    now: UtcTime,
) -> Result<IssuedKey, TenantError> {
    let tenant = Tenant {
        id: id.clone(),
        name: name.to_owned(),
        created_at: now,
    };
    match store.put_tenant(&tenant).await {
        Err(StoreError::Conflict) => return Err(TenantError::Exists(id.clone())),
        other => other?,
    }
    store_new_key(store, entropy, id, now).await
}

/// Issues one more key for an existing tenant; the earlier keys keep working.
pub async fn issue_key<S: TenantStore>(
    store: &S,
    entropy: &impl Entropy,
    tenant: &TenantId,
    now: UtcTime,
) -> Result<IssuedKey, TenantError> {
    if store.tenant(tenant).await?.is_none() {
        return Err(TenantError::UnknownTenant(tenant.clone()));
    }
    store_new_key(store, entropy, tenant, now).await
}

/// Issues a new key and ends every other key still working `overlap` from now, so clients can
/// switch without an outage. The new key is stored before any other key is ended: a failure
/// part-way leaves more keys working, never fewer.
pub async fn rotate_keys<S: TenantStore>(
    store: &S,
    entropy: &impl Entropy,
    tenant: &TenantId,
    now: UtcTime,
    overlap: Duration,
) -> Result<Rotated, TenantError> {
    let issued = issue_key(store, entropy, tenant, now).await?;
    let end = now.plus(overlap);
    let mut ending = Vec::new();
    for mut key in store.api_keys(tenant).await? {
        let lasts_longer = key.not_after.is_none_or(|t| t > end);
        if key.hash != issued.record.hash && lasts_longer {
            store.end_api_key(tenant, &key.hash, end, false).await?;
            key.not_after = Some(end);
            ending.push(key);
        }
    }
    Ok(Rotated { issued, ending })
}

/// Ends the key named by `key_id` (a prefix of its hash, as listed) at once.
pub async fn revoke_key<S: TenantStore>(
    store: &S,
    tenant: &TenantId,
    key_id: &str,
    now: UtcTime,
) -> Result<ApiKey, TenantError> {
    let valid = key_id.len() >= MIN_KEY_ID_LEN
        && key_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return Err(TenantError::BadKeyId(key_id.to_owned()));
    }
    let mut found: Vec<ApiKey> = store
        .api_keys(tenant)
        .await?
        .into_iter()
        .filter(|k| k.hash.starts_with(key_id))
        .collect();
    let mut key = match (found.pop(), found.is_empty()) {
        (Some(key), true) => key,
        (Some(_), false) => return Err(TenantError::AmbiguousKey(key_id.to_owned())),
        (None, _) => {
            return Err(TenantError::UnknownKey {
                tenant: tenant.clone(),
                key_id: key_id.to_owned(),
            });
        }
    };
    let end = key.not_after.map_or(now, |t| t.min(now));
    store.end_api_key(tenant, &key.hash, end, true).await?;
    key.not_after = Some(end);
    key.revoked = true;
    Ok(key)
}

/// The tenant a request's key belongs to, if the key is known and has not ended.
pub async fn authenticate<S: TenantStore>(
    store: &S,
    key: &SecretString,
    now: UtcTime,
) -> Result<Option<TenantId>, StoreError> {
    Ok(store
        .api_key(&hash_api_key(key))
        .await?
        .filter(|k| k.usable_at(now))
        .map(|k| k.tenant))
}

async fn store_new_key<S: TenantStore>(
    store: &S,
    entropy: &impl Entropy,
    tenant: &TenantId,
    now: UtcTime,
) -> Result<IssuedKey, TenantError> {
    let key = new_key(entropy.random_u128(), entropy.random_u128());
    let record = ApiKey {
        hash: hash_api_key(&key),
        tenant: tenant.clone(),
        created_at: now,
        not_after: None,
        revoked: false,
    };
    store.put_api_key(&record).await?;
    Ok(IssuedKey { key, record })
}

impl<P: Ports> Core<P> {
    /// The tenant a request's key belongs to (see [`authenticate`]).
    pub async fn authenticate(&self, key: &SecretString) -> Result<Option<TenantId>, StoreError> {
        authenticate(self.ports.tenants(), key, self.ports.clock().now()).await
    }
}
