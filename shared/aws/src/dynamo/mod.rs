//! The single DynamoDB table (see `DESIGN.md`): key builders, item helpers, error mapping and a
//! capacity meter shared by the job and account stores.

mod account_store;
mod job_store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity};
use reelay_domain::ports::StoreError;
use sha2::{Digest, Sha256};

pub use account_store::{DynamoAccountStore, hash_api_key};
pub use job_store::DynamoJobStore;

/// Shards of the sparse due-work index. The reconciler queries each one per tick, so reads are
/// `DUE_SHARDS` small queries plus the items actually due; spreading writes over shards keeps any
/// one GSI partition far below its write limit when many jobs move at once. Changing it requires
/// rewriting every live job's `due_pk`, so it is a constant of the table, not configuration.
pub const DUE_SHARDS: u8 = 8;

pub(crate) const ATTR_PK: &str = "pk";
pub(crate) const ATTR_SK: &str = "sk";

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|raw| raw.parse().ok())
}

pub(crate) fn req_s(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<String, StoreError> {
    get_s(item, name)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing or not a string")))
}

/// Any SDK failure that is not a lost race: the store is unavailable, the cause chain says why.
pub(crate) fn unavailable<E>(err: E) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError::Unavailable(Box::new(err))
}

/// Stable shard of a job id in the due-work index.
pub(crate) fn due_shard(job_id: &str) -> u8 {
    let digest = Sha256::digest(job_id.as_bytes());
    digest.first().copied().unwrap_or(0) % DUE_SHARDS
}

pub(crate) fn due_pk(shard: u8) -> String {
    format!("DUE#{shard:02}")
}

/// `<epoch ms, 15 digits>#<job id>`: sorts by time, so `due_sk < pad(now+1)` is everything due.
pub(crate) fn due_sk(at_ms: i64, job_id: &str) -> String {
    format!("{:015}#{job_id}", at_ms.max(0))
}

/// Requests and capacity units a store consumed, per operation. Kept so a Lambda can log what an
/// invocation cost and so the design's cost figures are measured, not guessed.
#[derive(Debug, Clone, Default)]
pub struct CapacityMeter {
    inner: Arc<Mutex<BTreeMap<&'static str, OpStats>>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpStats {
    pub requests: u64,
    /// Total capacity units DynamoDB reported (ReturnConsumedCapacity=TOTAL); conditional-check
    /// failures consume capacity that the error does not report, so they are not in here.
    pub capacity_units: f64,
    /// Requests whose response carried a capacity figure.
    pub reported: u64,
    /// With `ReturnConsumedCapacity::Indexes`: the base table's share and the GSIs' share.
    pub table_units: f64,
    pub index_units: f64,
}

/// A copy of the meter's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeterSnapshot {
    pub ops: BTreeMap<&'static str, OpStats>,
}

impl MeterSnapshot {
    pub fn requests(&self) -> u64 {
        self.ops.values().map(|o| o.requests).sum()
    }

    pub fn capacity_units(&self) -> f64 {
        self.ops.values().map(|o| o.capacity_units).sum()
    }
}

impl CapacityMeter {
    pub(crate) fn record<'a>(
        &self,
        op: &'static str,
        consumed: impl IntoIterator<Item = &'a ConsumedCapacity>,
    ) {
        let mut stats = OpStats {
            requests: 1,
            ..OpStats::default()
        };
        for c in consumed {
            stats.reported = 1;
            stats.capacity_units += c.capacity_units().unwrap_or(0.0);
            stats.table_units += c.table().and_then(|t| t.capacity_units()).unwrap_or(0.0);
            stats.index_units += c
                .global_secondary_indexes()
                .map(|g| g.values().filter_map(|x| x.capacity_units()).sum::<f64>())
                .unwrap_or(0.0);
        }
        if let Ok(mut map) = self.inner.lock() {
            let entry = map.entry(op).or_default();
            entry.requests += stats.requests;
            entry.reported += stats.reported;
            entry.capacity_units += stats.capacity_units;
            entry.table_units += stats.table_units;
            entry.index_units += stats.index_units;
        }
    }

    /// A request that failed (no capacity reported).
    pub(crate) fn record_failed(&self, op: &'static str) {
        self.record(op, std::iter::empty());
    }

    pub fn snapshot(&self) -> MeterSnapshot {
        let ops = self.inner.lock().map(|m| m.clone()).unwrap_or_default();
        MeterSnapshot { ops }
    }

    pub fn reset(&self) {
        if let Ok(mut map) = self.inner.lock() {
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_time_and_bound_inclusively() {
        let a = due_sk(1_700_000_000_000, "job_A");
        let b = due_sk(1_700_000_000_001, "job_B");
        assert!(a < b);
        // Everything at or before `now` is strictly below the padded `now + 1`.
        let upper = format!("{:015}", 1_700_000_000_001_i64);
        assert!(a < upper);
        assert!(b > upper);
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        for i in 0..100 {
            let id = format!("job_{i}");
            assert_eq!(due_shard(&id), due_shard(&id));
            assert!(due_shard(&id) < DUE_SHARDS);
        }
    }
}
