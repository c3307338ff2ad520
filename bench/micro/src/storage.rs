//! What a run leaves stored in DynamoDB: the tables are scanned before the first job and after
//! the last, and the items the window added are sized by DynamoDB's rules, split into those that
//! never expire and those with a TTL (`expires_at`), with their GSI copies.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use reelay_template::Template;
use reelay_template::expr::Expr;
use serde::{Deserialize, Serialize};

/// DynamoDB stores 100 bytes of overhead with every item, in the table and in each index copy.
pub const ITEM_OVERHEAD_BYTES: u64 = 100;
/// The template's TTL attribute (`TimeToLiveSpecification.AttributeName`), epoch seconds.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Size of one attribute value by DynamoDB's rules: strings and binaries by length, numbers
/// about one byte per two digits plus one, booleans and nulls one byte, lists and maps 3 bytes
/// plus one per element plus their contents (map keys included).
pub fn value_bytes(v: &AttributeValue) -> u64 {
    match v {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => number_bytes(n),
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(items) => items.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| number_bytes(n)).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|i| 1 + value_bytes(i)).sum::<u64>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, i)| 1 + k.len() as u64 + value_bytes(i))
                .sum::<u64>()
        }
        _ => 0,
    }
}

fn number_bytes(n: &str) -> u64 {
    let digits = n.chars().filter(char::is_ascii_digit).count() as u64;
    digits.div_ceil(2) + 1
}

/// An item's size: attribute names plus values (no overhead).
pub fn item_bytes(item: &HashMap<String, AttributeValue>) -> u64 {
    item.iter()
        .map(|(k, v)| k.len() as u64 + value_bytes(v))
        .sum()
}

/// What a GSI copies of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    All,
    /// The table's and the index's key attributes, plus these.
    Keys(Vec<String>),
}

/// One GSI of a table in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    pub name: String,
    /// An item is in the index only if it carries every key attribute (sparse indexes).
    pub keys: Vec<String>,
    pub projection: Projection,
}

fn key_names(schema: Option<&Expr>) -> Vec<String> {
    schema
        .map(Expr::as_list)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| k.get("AttributeName").and_then(Expr::as_str))
        .map(str::to_owned)
        .collect()
}

/// The table's key attributes and its GSIs, from template.yaml.
pub fn table_shape(template: &Template, table_id: &str) -> (Vec<String>, Vec<IndexDef>) {
    let Some(table) = template.resources.get(table_id) else {
        return (Vec::new(), Vec::new());
    };
    let table_keys = key_names(table.prop("KeySchema"));
    let indexes = table
        .prop("GlobalSecondaryIndexes")
        .map(Expr::as_list)
        .unwrap_or_default()
        .into_iter()
        .map(|gsi| {
            let keys = key_names(gsi.get("KeySchema"));
            let projection = match gsi
                .get("Projection")
                .and_then(|p| p.get("ProjectionType"))
                .and_then(Expr::as_str)
            {
                Some("ALL") => Projection::All,
                _ => {
                    let mut attrs: Vec<String> = table_keys.iter().chain(&keys).cloned().collect();
                    if let Some(non_key) = gsi
                        .get("Projection")
                        .and_then(|p| p.get("NonKeyAttributes"))
                    {
                        attrs.extend(
                            non_key
                                .as_list()
                                .into_iter()
                                .filter_map(Expr::as_str)
                                .map(str::to_owned),
                        );
                    }
                    Projection::Keys(attrs)
                }
            };
            IndexDef {
                name: gsi
                    .get("IndexName")
                    .and_then(Expr::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                keys,
                projection,
            }
        })
        .collect();
    (table_keys, indexes)
}

/// Bytes the GSIs store for `item` (overhead included), by the template's projections.
pub fn index_copy_bytes(item: &HashMap<String, AttributeValue>, indexes: &[IndexDef]) -> u64 {
    indexes
        .iter()
        .filter(|ix| ix.keys.iter().all(|k| item.contains_key(k)))
        .map(|ix| {
            ITEM_OVERHEAD_BYTES
                + match &ix.projection {
                    Projection::All => item_bytes(item),
                    Projection::Keys(attrs) => attrs
                        .iter()
                        .filter_map(|a| item.get(a).map(|v| a.len() as u64 + value_bytes(v)))
                        .sum(),
                }
        })
        .sum()
}

/// What the tables held before the window and what the window added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageScan {
    /// Items present once the accounts were connected, before the first job (tenant, API key,
    /// accounts and their tokens, OAuth leftovers), in every table: count and stored bytes
    /// (overhead included), and their GSI copies' bytes.
    pub before_items: u64,
    pub before_bytes: u64,
    pub before_index_bytes: u64,
    /// Items the window added that never expire: count, stored bytes, GSI copies' bytes.
    pub kept_items: u64,
    pub kept_bytes: u64,
    pub kept_index_bytes: u64,
    /// Items the window added with a TTL: count, stored bytes (GSI copies included), and
    /// Σ stored bytes × seconds left until `expires_at` at the scan.
    pub ttl_items: u64,
    pub ttl_bytes: u64,
    pub ttl_byte_seconds: f64,
}

/// One table's items, keyed by their primary key.
pub type Items = HashMap<String, HashMap<String, AttributeValue>>;

fn key_of(item: &HashMap<String, AttributeValue>, keys: &[String]) -> String {
    keys.iter()
        .map(|k| match item.get(k) {
            Some(AttributeValue::S(s)) | Some(AttributeValue::N(s)) => s.clone(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// Every item of `table` (the bench's own client: not metered).
pub async fn scan(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: &[String],
) -> anyhow::Result<Items> {
    let mut out = Items::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items.unwrap_or_default() {
            out.insert(key_of(&item, keys), item);
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

impl StorageScan {
    /// Adds one table: `before` and `after` are its scans, `now_s` the time of the second.
    pub fn add_table(&mut self, before: &Items, after: &Items, indexes: &[IndexDef], now_s: i64) {
        for item in before.values() {
            self.before_items += 1;
            self.before_bytes += ITEM_OVERHEAD_BYTES + item_bytes(item);
            self.before_index_bytes += index_copy_bytes(item, indexes);
        }
        let old: BTreeSet<&String> = before.keys().collect();
        for (key, item) in after {
            if old.contains(key) {
                continue;
            }
            let base = ITEM_OVERHEAD_BYTES + item_bytes(item);
            let copies = index_copy_bytes(item, indexes);
            let expires = match item.get(TTL_ATTRIBUTE) {
                Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
                _ => None,
            };
            match expires {
                Some(at) => {
                    self.ttl_items += 1;
                    self.ttl_bytes += base + copies;
                    self.ttl_byte_seconds += (base + copies) as f64 * (at - now_s).max(0) as f64;
                }
                None => {
                    self.kept_items += 1;
                    self.kept_bytes += base;
                    self.kept_index_bytes += copies;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        let item: HashMap<String, AttributeValue> = [
            ("pk".to_owned(), s("JOB#1")),                           // 2 + 5
            ("n".to_owned(), AttributeValue::N("12345".to_owned())), // 1 + 4
            ("b".to_owned(), AttributeValue::Bool(true)),            // 1 + 1
            (
                "m".to_owned(),
                AttributeValue::M([("k".to_owned(), s("vv"))].into()),
            ), // 1 + 3 + (1 + 1 + 2)
        ]
        .into();
        assert_eq!(item_bytes(&item), 7 + 5 + 2 + 8);
    }

    #[test]
    fn the_templates_due_index_is_sparse_and_copies_whole_items() {
        let t = Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .unwrap();
        let (keys, indexes) = table_shape(&t, "Table");
        assert_eq!(keys, ["pk", "sk"]);
        let due = indexes.iter().find(|i| i.name == "due").unwrap();
        assert_eq!(due.keys, ["due_pk", "due_sk"]);
        let job: HashMap<String, AttributeValue> =
            [("pk".to_owned(), s("JOB#1")), ("sk".to_owned(), s("JOB"))].into();
        // In no index: no copies.
        assert_eq!(index_copy_bytes(&job, &indexes), 0);
        let mut due_job = job.clone();
        due_job.insert("due_pk".to_owned(), s("DUE#3"));
        due_job.insert("due_sk".to_owned(), s("0001"));
        let expected = ITEM_OVERHEAD_BYTES
            + match &due.projection {
                Projection::All => item_bytes(&due_job),
                // Every attribute of this item is a key of the table or of the index.
                Projection::Keys(_) => item_bytes(&due_job),
            };
        assert_eq!(index_copy_bytes(&due_job, &indexes), expected);
    }

    #[test]
    fn new_items_split_by_ttl_and_old_ones_count_before() {
        let mk = |pk: &str, ttl: Option<i64>| {
            let mut i: HashMap<String, AttributeValue> = [("pk".to_owned(), s(pk))].into();
            if let Some(t) = ttl {
                i.insert(TTL_ATTRIBUTE.to_owned(), AttributeValue::N(t.to_string()));
            }
            i
        };
        let keys = ["pk".to_owned()];
        let before: Items = [mk("ACCT#a", None)]
            .into_iter()
            .map(|i| (key_of(&i, &keys), i))
            .collect();
        let after: Items = [
            mk("ACCT#a", None),
            mk("JOB#1", None),
            mk("LOCK#x", Some(1_100)),
        ]
        .into_iter()
        .map(|i| (key_of(&i, &keys), i))
        .collect();
        let mut scan = StorageScan::default();
        scan.add_table(&before, &after, &[], 1_000);
        assert_eq!(
            (scan.before_items, scan.kept_items, scan.ttl_items),
            (1, 1, 1)
        );
        assert_eq!(scan.kept_bytes, ITEM_OVERHEAD_BYTES + 2 + 5);
        assert_eq!(scan.ttl_byte_seconds, scan.ttl_bytes as f64 * 100.0);
    }
}
