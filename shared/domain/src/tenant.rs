//! Tenants and their API keys. A key is shown once, when it is issued; only its SHA-256 is
//! stored, so the table never holds anything that authenticates.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::TenantId;
use crate::time::UtcTime;

/// Every issued key starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "rl_";

/// Hex digits of the hash that name a key in listings and commands (not secret: the hash is
/// one-way, and 12 digits of it cannot be used to authenticate).
const KEY_ID_LEN: usize = 12;

/// A tenant: the owner of jobs, accounts and keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// Free text for operators (a customer's name); never used for authorisation.
    pub name: String,
    pub created_at: UtcTime,
}

/// One API key as stored: its hash and when it stops working, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// SHA-256 (lowercase hex) of the key.
    pub hash: String,
    pub tenant: TenantId,
    pub created_at: UtcTime,
    /// The key authenticates strictly before this instant; `None`: until revoked.
    pub not_after: Option<UtcTime>,
    /// Ended by a revocation (not by a rotation's overlap running out).
    pub revoked: bool,
}

impl ApiKey {
    /// The short, non-secret name operators use for this key.
    pub fn key_id(&self) -> &str {
        &self.hash[..KEY_ID_LEN.min(self.hash.len())]
    }

    pub fn usable_at(&self, now: UtcTime) -> bool {
        self.not_after.is_none_or(|end| now < end)
    }
}

/// A key just issued: the only moment the secret exists outside the client's hands.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: SecretString,
    pub record: ApiKey,
}

/// SHA-256 (hex) of an API key: the only form in which keys are stored or compared.
pub fn hash_api_key(key: &SecretString) -> String {
    hex::encode(Sha256::digest(key.expose_secret().as_bytes()))
}

/// A lowercase SHA-256 hex digest: what a store accepts as a key's name, so a raw key can never
/// be stored (or looked up) by mistake.
pub fn is_sha256_hex(raw: &str) -> bool {
    raw.len() == 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new key from 256 random bits: `rl_` and 64 hex digits.
pub fn new_key(high: u128, low: u128) -> SecretString {
    SecretString::from(format!("{KEY_PREFIX}{high:032x}{low:032x}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashed_and_only_hashes_are_names() {
        let key = new_key(1, u128::MAX);
        assert!(key.expose_secret().starts_with(KEY_PREFIX));
        assert_eq!(key.expose_secret().len(), KEY_PREFIX.len() + 64);
        let h = hash_api_key(&key);
        assert!(is_sha256_hex(&h));
        assert!(!is_sha256_hex(key.expose_secret()));
        assert!(!is_sha256_hex(&h.to_uppercase()));
    }

    #[test]
    fn a_key_works_strictly_before_its_end() {
        let now = UtcTime::from_secs(1_000);
        let mut key = ApiKey {
            hash: hash_api_key(&new_key(7, 7)),
            tenant: TenantId::parse("t1").unwrap(),
            created_at: now,
            not_after: None,
            revoked: false,
        };
        assert!(key.usable_at(now));
        assert_eq!(key.key_id().len(), KEY_ID_LEN);
        key.not_after = Some(now);
        assert!(!key.usable_at(now));
        assert!(key.usable_at(UtcTime::from_secs(999)));
    }
}
