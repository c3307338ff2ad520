//! What a store's requests cost, per operation: kept so a Lambda can log what an invocation cost
//! and so the design's cost figures are measured, not guessed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::ConsumedCapacity;

/// Requests and capacity units a store consumed, per operation. Clones share the figures.
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
    /// Requests answered with an error (a refused conditional write among them).
    pub failed: u64,
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

    /// The requests of one operation (0 if it never ran).
    pub fn requests_of(&self, op: &str) -> u64 {
        self.ops.get(op).map_or(0, |o| o.requests)
    }

    /// The requests of one operation answered with an error.
    pub fn failed_of(&self, op: &str) -> u64 {
        self.ops.get(op).map_or(0, |o| o.failed)
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
            entry.failed += stats.failed;
            entry.capacity_units += stats.capacity_units;
            entry.table_units += stats.table_units;
            entry.index_units += stats.index_units;
        }
    }

    /// A request that failed (no capacity reported).
    pub(crate) fn record_failed(&self, op: &'static str) {
        if let Ok(mut map) = self.inner.lock() {
            let entry = map.entry(op).or_default();
            entry.requests += 1;
            entry.failed += 1;
        }
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
