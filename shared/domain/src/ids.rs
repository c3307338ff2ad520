//! Validated identifiers. Raw strings are parsed at the edges; inner code only sees these.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::time::UtcTime;

/// Why a raw identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub reason: &'static str,
}

impl IdError {
    pub(crate) fn new(kind: &'static str, reason: &'static str) -> Self {
        Self { kind, reason }
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                let check: fn(&str) -> Result<(), &'static str> = $check;
                check(&raw).map_err(|reason| IdError::new($kind, reason))?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                Self::parse(raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(raw: &str) -> Result<Self, IdError> {
                Self::parse(raw)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn slug(raw: &str, max: usize) -> Result<(), &'static str> {
    if raw.is_empty() {
        return Err("must not be empty");
    }
    if raw.len() > max {
        return Err("too long");
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    Ok(())
}

string_id!(
    /// A job id: `job_` + a ULID, so ids sort by creation time (the seed's `job_01HT…`).
    JobId,
    "job id",
    |raw| {
        let body = raw.strip_prefix("job_").ok_or("must start with job_")?;
        ulid::Ulid::from_string(body).map_err(|_| "must be job_ followed by a 26-character ULID")?;
        Ok(())
    }
);

impl JobId {
    /// A new id whose time part is `at`, so ids sort by creation time.
    pub fn generate(at: UtcTime, entropy: u128) -> Self {
        let ms = u64::try_from(at.as_millis()).unwrap_or(0);
        let ulid = ulid::Ulid::from_parts(ms, entropy);
        Self(format!("job_{ulid}"))
    }

    /// Where the job a tenant named `chosen` is kept: job ids are scoped per tenant, so two
    /// tenants may choose the same id and one tenant's choice says nothing about another's jobs.
    /// Deterministic (a lookup by the client's id is one more read, no index); the time part is
    /// the chosen id's, so the order of the client's ids is kept; the 80 random bits are a hash
    /// of the tenant and the choice.
    pub fn scoped(tenant: &TenantId, chosen: &JobId) -> Self {
        let body = chosen.0.strip_prefix("job_").unwrap_or(&chosen.0);
        let ms = ulid::Ulid::from_string(body).map_or(0, |u| u.timestamp_ms());
        let digest = Sha256::new()
            .chain_update(b"reelay job id\0")
            .chain_update(tenant.as_str())
            .chain_update(b"\0")
            .chain_update(chosen.as_str())
            .finalize();
        let mut entropy = [0u8; 16];
        entropy.copy_from_slice(&digest[..16]);
        Self(format!(
            "job_{}",
            ulid::Ulid::from_parts(ms, u128::from_be_bytes(entropy))
        ))
    }
}

string_id!(
    /// The tenant (API customer) that owns jobs and accounts. At most 60 characters, so that
    /// `tenant:account` fits SQS's 128-character MessageGroupId.
    TenantId,
    "tenant id",
    |raw| slug(raw, 60)
);

string_id!(
    /// A destination TikTok account, as the tenant names it (the seed's `acct_kor_store_03`).
    /// It is also the SQS FIFO message group, which allows at most 128 characters.
    AccountId,
    "tiktok account id",
    |raw| slug(raw, 64)
);

string_id!(
    /// An Ssemble request id: a 24-character hex ObjectId.
    RequestId,
    "Ssemble requestId",
    |raw| {
        if raw.len() == 24 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err("must be a 24-character hex string")
        }
    }
);

string_id!(
    /// TikTok's `publish_id`: opaque, at most 64 characters; its prefix is not a contract.
    PublishId,
    "publish_id",
    |raw| {
        if raw.is_empty() || raw.len() > 64 {
            return Err("must be 1 to 64 characters");
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(())
    }
);

string_id!(
    /// A client's idempotency key (Stripe's rule: at most 255 printable ASCII characters).
    IdempotencyKey,
    "idempotency key",
    |raw| {
        if raw.is_empty() || raw.len() > 255 {
            return Err("must be 1 to 255 characters");
        }
        if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err("must be printable ASCII without spaces");
        }
        Ok(())
    }
);

/// SHA-256 of a request's canonical JSON: the same body in any key order or spacing hashes equal,
/// so a replay is recognised and a different body under the same key is a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PayloadHash(String);

impl PayloadHash {
    pub fn of(value: &serde_json::Value) -> Self {
        let mut canonical = String::new();
        write_canonical(value, &mut canonical);
        Self(hex::encode(Sha256::digest(canonical.as_bytes())))
    }

    pub fn from_hex(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Sorted keys, no insignificant whitespace, serde_json's number and string spelling.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_ids_sort_by_creation_time() {
        let early = JobId::generate(UtcTime::from_millis(1_700_000_000_000), u128::MAX);
        let late = JobId::generate(UtcTime::from_millis(1_700_000_000_001), 0);
        assert!(early < late);
        assert!(JobId::parse(early.as_str()).is_ok());
        assert_eq!(early.as_str().len(), 4 + 26);
    }

    #[test]
    fn a_chosen_job_id_is_kept_per_tenant_in_the_order_the_client_chose() {
        let (a, b) = (TenantId::parse("a").unwrap(), TenantId::parse("b").unwrap());
        let early = JobId::generate(UtcTime::from_millis(1_700_000_000_000), 7);
        let late = JobId::generate(UtcTime::from_millis(1_700_000_000_001), 7);
        let kept = JobId::scoped(&a, &early);
        assert_eq!(kept, JobId::scoped(&a, &early), "one key to look it up by");
        assert!(JobId::parse(kept.as_str()).is_ok());
        assert_ne!(kept, early);
        assert_ne!(
            kept,
            JobId::scoped(&b, &early),
            "another tenant's is another job"
        );
        assert!(kept < JobId::scoped(&a, &late));
        assert_eq!(
            kept.as_str()[..14],
            early.as_str()[..14],
            "the time part is the client's"
        );
    }

    #[test]
    fn malformed_ids_are_refused_with_their_kind() {
        let err = JobId::parse("job_123").unwrap_err();
        assert_eq!(err.kind, "job id");
        assert!(JobId::parse("01HT0000000000000000000000").is_err());
        assert!(RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").is_ok());
        assert!(RequestId::parse("665a1b2c3d4e5f6a7b8c9d0").is_err());
        assert!(RequestId::parse("665a1b2c3d4e5f6a7b8c9d0z").is_err());
        assert!(AccountId::parse("acct_kor_store_03").is_ok());
        assert!(AccountId::parse("acct kor").is_err());
        assert!(AccountId::parse("").is_err());
        assert!(AccountId::parse("a".repeat(65)).is_err());
        assert!(PublishId::parse("v_inbox_file~v2.123456789").is_ok());
        assert!(PublishId::parse("x".repeat(65)).is_err());
        assert!(IdempotencyKey::parse("2f182b63-312f-4290-9222-7cf6f7f8f12d").is_ok());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("k".repeat(256)).is_err());
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let ok: Result<AccountId, _> = serde_json::from_value(json!("acct_1"));
        assert!(ok.is_ok());
        let bad: Result<AccountId, _> = serde_json::from_value(json!("acct/1"));
        assert!(bad.is_err());
    }

    #[test]
    fn payload_hash_ignores_key_order_and_spacing_but_not_values() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        let c: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[2,1]},"b":1}"#).unwrap();
        assert_eq!(PayloadHash::of(&a), PayloadHash::of(&b));
        assert_ne!(PayloadHash::of(&a), PayloadHash::of(&c));
        assert_eq!(PayloadHash::of(&a).as_str().len(), 64);
    }
}
