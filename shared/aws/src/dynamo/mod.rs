//! The single DynamoDB table (see `DESIGN.md`) behind every table-backed port: [`DynamoStore`]
//! implements `JobStore`, `AccountStore`, `BudgetStore`, `LockStore`, `TenantStore` and
//! `WebhookStore`, one module
//! per capability. This module holds what they share: the store itself, the item codec (attribute
//! builders and readers, keys), the transaction runner and the error mapping.

mod accounts;
mod budgets;
mod changes;
mod idempotency;
mod jobs;
mod listing;
mod locks;
mod meter;
mod tenants;
mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem};
use reelay_domain::ports::StoreError;
use sha2::{Digest, Sha256};

pub use changes::{TableChange, decode_change};
pub use meter::{CapacityMeter, MeterSnapshot, OpStats};
pub use tenants::hash_api_key;

/// Shards of the sparse due-work index. The reconciler queries each one per tick, so reads are
/// `DUE_SHARDS` small queries plus the items actually due; spreading writes over shards keeps any
/// one GSI partition far below its write limit when many jobs move at once. Changing it requires
/// rewriting every live job's `due_pk`, so it is a constant of the table, not configuration.
pub const DUE_SHARDS: u8 = 8;

pub(crate) const ATTR_PK: &str = "pk";
pub(crate) const ATTR_SK: &str = "sk";

/// Every table-backed port on one DynamoDB table. Cheap to clone (the SDK client, the table name
/// and the meter are shared); build once per cold start.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
    meter: CapacityMeter,
    capacity: ReturnConsumedCapacity,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: Arc::from(table.into()),
            meter: CapacityMeter::default(),
            capacity: ReturnConsumedCapacity::Total,
        }
    }

    /// From the Lambda environment: `TABLE_NAME`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, crate::ConfigError> {
        Ok(Self::new(
            Client::new(sdk),
            crate::config::env_var("TABLE_NAME")?,
        ))
    }

    /// Asks DynamoDB for the capacity of the table and of each index separately
    /// (ReturnConsumedCapacity=INDEXES) instead of one total: for cost investigations.
    pub fn with_index_capacity(mut self) -> Self {
        self.capacity = ReturnConsumedCapacity::Indexes;
        self
    }

    /// What this store (and its clones) consumed so far.
    pub fn meter(&self) -> &CapacityMeter {
        &self.meter
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn capacity(&self) -> ReturnConsumedCapacity {
        self.capacity.clone()
    }

    /// A failed single request of `op`: counted by the meter, then `Unavailable`.
    fn failed<E>(&self, op: &'static str) -> impl FnOnce(E) -> StoreError + '_
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| {
            self.meter.record_failed(op);
            unavailable(e)
        }
    }

    /// A consistent GetItem.
    async fn get_item(
        &self,
        op: &'static str,
        pk: String,
        sk: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(self.failed(op))?;
        self.meter.record(op, out.consumed_capacity());
        Ok(out.item)
    }

    /// Every item of a partition, following pagination (consistent reads).
    async fn query_partition(&self, op: &'static str, pk: String) -> Result<Vec<Item>, StoreError> {
        self.query_all(op, None, "pk = :pk", [(":pk", s(pk))]).await
    }

    /// Every item of a `gsi1` partition whose sort key starts with `prefix`, in key order
    /// (eventually consistent, as every GSI read). `gsi1` holds keys only, so that a write which
    /// keeps an item's `gsi1` keys costs no index write: the items come from the table.
    pub(crate) async fn query_gsi1(
        &self,
        op: &'static str,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let condition = "gsi1pk = :pk AND begins_with(gsi1sk, :prefix)";
        let values = [(":pk", s(pk)), (":prefix", s(prefix))];
        let keys = self.query_all(op, Some("gsi1"), condition, values).await?;
        self.batch_get(op, &keys).await
    }

    /// The table's items at `keys` (each holding at least `pk` and `sk`; other attributes are
    /// ignored), in the order of `keys`, eventually consistent; a key without an item is left
    /// out. BatchGetItem takes 100 keys a call and may leave some unprocessed under load: those
    /// are asked again after a short pause, a bounded number of times.
    pub(crate) async fn batch_get(
        &self,
        op: &'static str,
        keys: &[Item],
    ) -> Result<Vec<Item>, StoreError> {
        const PER_CALL: usize = 100;
        const ROUNDS: u32 = 6;
        let key_of = |item: &Item| -> Option<(String, String)> {
            Some((
                get_s(item, ATTR_PK)?.to_owned(),
                get_s(item, ATTR_SK)?.to_owned(),
            ))
        };
        let mut found: HashMap<(String, String), Item> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(PER_CALL) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .filter_map(key_of)
                .map(|(pk, sk)| key(pk, &sk))
                .collect();
            let mut round = 0;
            while !pending.is_empty() {
                if round == ROUNDS {
                    self.meter.record_failed(op);
                    return Err(StoreError::Unavailable(
                        format!("{} keys left unprocessed by BatchGetItem", pending.len()).into(),
                    ));
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << round)).await;
                }
                round += 1;
                let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .build()
                    .map_err(unavailable)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(self.table(), request)
                    .return_consumed_capacity(self.capacity())
                    .send()
                    .await
                    .map_err(self.failed(op))?;
                self.meter.record(op, out.consumed_capacity());
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(self.table()))
                    .unwrap_or_default()
                {
                    if let Some(k) = key_of(&item) {
                        found.insert(k, item);
                    }
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(self.table()))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(keys
            .iter()
            .filter_map(key_of)
            .filter_map(|k| found.remove(&k))
            .collect())
    }

    /// Every item a key condition selects, following pagination; consistent on the table.
    async fn query_all<const N: usize>(
        &self,
        op: &'static str,
        index: Option<&str>,
        condition: &str,
        values: [(&str, AttributeValue); N],
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(self.table())
                .set_index_name(index.map(str::to_owned))
                .consistent_read(index.is_none())
                .key_condition_expression(condition)
                .return_consumed_capacity(self.capacity())
                .set_exclusive_start_key(start.take());
            for (name, value) in &values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            let out = query.send().await.map_err(self.failed(op))?;
            self.meter.record(op, out.consumed_capacity());
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// A `Put` of `item` on this table, for a transaction.
    fn put(&self, item: Item) -> PutBuilder {
        Put::builder().set_item(Some(item)).table_name(self.table())
    }

    /// Runs `tx`: one item as a plain write (half a transaction's price), more as one
    /// TransactWriteItems. A lost condition on an ordinary item, or a concurrent transaction on
    /// the same items, is a lost race (`Conflict`), never retried here: the caller re-reads and
    /// decides again. A lost condition on a guarded item is the integrity fault it guards against.
    ///
    /// The SDK fills ClientRequestToken once per call and keeps it across its own retries, so a
    /// transaction whose response was lost is replayed as a success, not reported as a lost race.
    /// The token is deliberately per call, never derived from content: two writers producing the
    /// same bytes (same event, same millisecond) must still see exactly one winner.
    async fn write(&self, op: &'static str, tx: Tx) -> Result<(), StoreError> {
        let Tx { items, guards } = tx;
        if let [only] = items.as_slice()
            && let Some(put) = only.put()
        {
            let guard = guards.into_iter().next().flatten();
            return self.put_alone(op, put.clone(), guard).await;
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        let err = match result {
            Ok(out) => {
                self.meter.record(op, out.consumed_capacity());
                return Ok(());
            }
            Err(err) => err,
        };
        self.meter.record_failed(op);
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
                // Reasons are per item, in order. A lost race anywhere wins over a guarded fault:
                // the caller re-reads and decides again, and may not write that item at all.
                let mut fault = None;
                for (i, reason) in tc.cancellation_reasons().iter().enumerate() {
                    match reason.code() {
                        Some("TransactionConflict") => return Err(StoreError::Conflict),
                        Some("ConditionalCheckFailed") => match guards.get(i).cloned().flatten() {
                            None => return Err(StoreError::Conflict),
                            Some(why) => fault = fault.or(Some(why)),
                        },
                        _ => {}
                    }
                }
                match fault {
                    Some(why) => Err(StoreError::Corrupt(why)),
                    None => Err(unavailable(err)),
                }
            }
            // A token reused with other content: never ours to claim as a success.
            Some(TransactWriteItemsError::IdempotentParameterMismatchException(_)) => {
                Err(StoreError::Conflict)
            }
            _ => Err(unavailable(err)),
        }
    }

    /// One `Put` as a PutItem, with [`DynamoStore::write`]'s meaning of a lost condition.
    async fn put_alone(
        &self,
        op: &'static str,
        put: Put,
        guard: Option<String>,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(put.table_name)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values)
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter.record(op, out.consumed_capacity());
                Ok(())
            }
            Err(err) => {
                self.meter.record_failed(op);
                match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => {
                        Err(guard.map_or(StoreError::Conflict, StoreError::Corrupt))
                    }
                    _ => Err(unavailable(err)),
                }
            }
        }
    }
}

/// The writes of one atomic change, in order.
#[derive(Debug, Default)]
pub(crate) struct Tx {
    items: Vec<TransactWriteItem>,
    /// Per item: `Some(why)` if a failed condition on it is an integrity fault, not a lost race.
    guards: Vec<Option<String>>,
}

impl Tx {
    /// An item whose failed condition means someone else moved first (`Conflict`).
    pub(crate) fn push(&mut self, item: TransactWriteItem) {
        self.items.push(item);
        self.guards.push(None);
    }

    /// An item whose failed condition is the fault `why` (`Corrupt`), never a lost race.
    pub(crate) fn push_guarded(&mut self, item: TransactWriteItem, why: String) {
        self.items.push(item);
        self.guards.push(Some(why));
    }

    pub(crate) fn put(&mut self, put: PutBuilder) -> Result<(), StoreError> {
        self.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(unavailable)?)
                .build(),
        );
        Ok(())
    }
}

pub(crate) type Item = HashMap<String, AttributeValue>;
pub(crate) type PutBuilder = aws_sdk_dynamodb::types::builders::PutBuilder;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(ATTR_PK.to_owned(), s(pk)), (ATTR_SK.to_owned(), s(sk))])
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|raw| raw.parse().ok())
}

pub(crate) fn req_s(item: &Item, name: &str) -> Result<String, StoreError> {
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
