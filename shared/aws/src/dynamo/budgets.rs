//! `BudgetStore`: one item per scope holding every window's tally, changed by one UpdateItem.
//!
//! A take of several windows (Ssemble's minute, hour and day) is one conditional UpdateItem on
//! the scope's item, so it is atomic and costs one write. A take in a window's latest bucket is
//! an `ADD` conditional on the room the older buckets leave: concurrent takers in that bucket
//! all succeed while the room lasts instead of racing a compare-and-set. Opening a newer bucket
//! is conditional on the latest bucket being the one read and leaving the room: it fails only
//! when another taker opened a bucket first (or took that room); the failure returns the
//! winner's item and the next round plans on it, without a second read.
//!
//! Attributes of window `k` (a two-letter code): `k` = latest bucket, `kw` = bucket width in
//! ms, `k0`…`k120` = counts in ring slots (bucket mod 121), at most 121 per window however
//! large its limit. Items of the earlier layout (one item per window with a `log` of take
//! instants, sort key = the window's name) are folded in when a window is first taken here.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use reelay_domain::UtcTime;
use reelay_domain::budget::{
    Admission, BUCKETS, BudgetKind, Denied, Step, Tally, Window, plan_take,
};
use reelay_domain::ports::{BudgetStore, StoreError};
use tracing::{debug, warn};

use super::{ATTR_PK, ATTR_SK, DynamoStore, Item, get_n, get_s, n, s, unavailable};

/// Rounds of one `take`. A round is lost only when another taker opened a bucket (or took the
/// last units) between the read and the write; the next round plans on the winner's item.
const TAKE_MAX_ROUNDS: u32 = 16;
/// Budget items linger this long past their last take before TTL removes them. At least the
/// longest window (a day), so a take of a short window alone never lets TTL drop a daily tally
/// its item still needs.
const TTL_GRACE: Duration = Duration::from_secs(24 * 3600);
/// The sort key of a scope's tally item.
const TALLY_SK: &str = "tally";

fn budget_pk(scope: &str) -> String {
    format!("BUDGET#{scope}")
}

/// A window's attribute prefix in the tally item.
fn code(kind: BudgetKind) -> &'static str {
    match kind {
        BudgetKind::TikTokInit => "ti",
        BudgetKind::TikTokStatus => "ts",
        BudgetKind::TikTokCreatorInfo => "tc",
        BudgetKind::DirectPostsDaily => "td",
        BudgetKind::PendingDrafts => "tp",
        BudgetKind::SsembleCreate => "sc",
        BudgetKind::SsembleStatus => "ss",
        BudgetKind::SsembleList => "sl",
        BudgetKind::SsembleHourly => "sh",
        BudgetKind::SsembleDaily => "sd",
        BudgetKind::TenantApi => "ta",
        BudgetKind::SsembleShareHourly => "sx",
        BudgetKind::SsembleShareDaily => "sy",
    }
}

fn slot_attr(kind: BudgetKind, bucket: i64) -> String {
    format!("{}{}", code(kind), bucket.rem_euclid(BUCKETS + 1))
}

/// The window's tally as the item stores it, if it was ever taken there.
fn tally_from(item: &Item, kind: BudgetKind) -> Option<Tally> {
    let prefix = code(kind);
    let hi: i64 = get_n(item, prefix)?;
    let width_ms: i64 = get_n(item, &format!("{prefix}w"))?;
    let mut counts = BTreeMap::new();
    for slot in 0..=BUCKETS {
        if let Some(count) = get_n::<u32>(item, &format!("{prefix}{slot}")) {
            let bucket = hi - (hi - slot).rem_euclid(BUCKETS + 1);
            counts.insert(bucket, count);
        }
    }
    Some(Tally {
        width_ms,
        hi,
        counts,
    })
}

/// What one read of a scope found: the tally item and any earlier-layout logs.
#[derive(Default)]
struct Read {
    tally: Option<Item>,
    legacy: HashMap<String, Vec<UtcTime>>,
}

impl Read {
    fn from_items(items: Vec<Item>) -> Self {
        let mut read = Read::default();
        for item in items {
            match get_s(&item, ATTR_SK) {
                Some(TALLY_SK) => read.tally = Some(item),
                Some(sk) => {
                    let log = item
                        .get("log")
                        .and_then(|v| v.as_l().ok())
                        .map(|l| {
                            l.iter()
                                .filter_map(|v| v.as_n().ok()?.parse::<i64>().ok())
                                .map(UtcTime::from_millis)
                                .collect()
                        })
                        .unwrap_or_default();
                    read.legacy.insert(sk.to_owned(), log);
                }
                None => {}
            }
        }
        read
    }

    /// The stored tally of `kind`, or its earlier-layout log counted in `window`'s buckets.
    fn tally(&self, kind: BudgetKind, window: &Window) -> (Option<Tally>, bool) {
        if let Some(tally) = self.tally.as_ref().and_then(|i| tally_from(i, kind)) {
            return (Some(tally), false);
        }
        let Some(log) = self.legacy.get(kind.as_str()).filter(|l| !l.is_empty()) else {
            return (None, false);
        };
        let width_ms = window.width_ms();
        let mut counts = BTreeMap::new();
        for t in log {
            *counts
                .entry(t.as_millis().div_euclid(width_ms))
                .or_insert(0) += 1;
        }
        let hi = counts.keys().next_back().copied().unwrap_or(0);
        let tally = Tally {
            width_ms,
            hi,
            counts,
        };
        (Some(tally), true)
    }
}

/// One UpdateItem's expression under construction.
#[derive(Default)]
struct Update {
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#a{}", self.names.len());
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    fn value(&mut self, v: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), v);
        placeholder
    }

    /// The clauses of one window's step; `seen` is the tally as stored when it was planned
    /// (`None`: the item holds none of this window), `item` the item it was read from.
    fn step(
        &mut self,
        kind: BudgetKind,
        step: &Step,
        width: i64,
        seen: Option<&Tally>,
        item: Option<&Item>,
    ) {
        let prefix = code(kind);
        let hi = self.name(prefix);
        let w = self.name(&format!("{prefix}w"));
        match step {
            Step::Add {
                bucket,
                units,
                max_before,
            } => {
                let slot = self.name(&slot_attr(kind, *bucket));
                let (b, wv, max, u) = (
                    self.value(n(bucket)),
                    self.value(n(width)),
                    self.value(n(max_before)),
                    self.value(n(units)),
                );
                self.add.push(format!("{slot} {u}"));
                self.conditions.push(format!(
                    "{hi} = {b} AND {w} = {wv} AND (attribute_not_exists({slot}) OR {slot} <= {max})"
                ));
            }
            Step::Open {
                bucket,
                units,
                seen_hi,
                max_at_hi,
                drop,
            } => {
                let new_slot = slot_attr(kind, *bucket);
                let (slot, u, b, sh, wv) = (
                    self.name(&new_slot),
                    self.value(n(units)),
                    self.value(n(bucket)),
                    self.value(n(seen_hi)),
                    self.value(n(width)),
                );
                self.set.push(format!("{hi} = {b}"));
                self.set.push(format!("{slot} = {u}"));
                for dropped in drop {
                    let attr = slot_attr(kind, *dropped);
                    if attr != new_slot {
                        let placeholder = self.name(&attr);
                        self.remove.push(placeholder);
                    }
                }
                let mut condition = format!("{hi} = {sh} AND {w} = {wv}");
                if let Some(max) = max_at_hi {
                    let (at_hi, mv) = (self.name(&slot_attr(kind, *seen_hi)), self.value(n(max)));
                    condition.push_str(&format!(
                        " AND (attribute_not_exists({at_hi}) OR {at_hi} <= {mv})"
                    ));
                }
                self.conditions.push(condition);
            }
            Step::Replace { next } => {
                let (hv, wv) = (self.value(n(next.hi)), self.value(n(next.width_ms)));
                self.set.push(format!("{hi} = {hv}"));
                self.set.push(format!("{w} = {wv}"));
                let mut kept = Vec::new();
                for (bucket, count) in &next.counts {
                    let attr = slot_attr(kind, *bucket);
                    let (slot, c) = (self.name(&attr), self.value(n(count)));
                    self.set.push(format!("{slot} = {c}"));
                    kept.push(attr);
                }
                for slot in 0..=BUCKETS {
                    let attr = format!("{prefix}{slot}");
                    if !kept.contains(&attr) && item.is_some_and(|i| i.contains_key(&attr)) {
                        let placeholder = self.name(&attr);
                        self.remove.push(placeholder);
                    }
                }
                match seen {
                    None => self.conditions.push(format!("attribute_not_exists({hi})")),
                    Some(seen) => {
                        let slot = self.name(&slot_attr(kind, seen.hi));
                        let (sh, sw) = (self.value(n(seen.hi)), self.value(n(seen.width_ms)));
                        let count = seen.counts.get(&seen.hi).copied().unwrap_or(0);
                        let sc = self.value(n(count));
                        self.conditions
                            .push(format!("{hi} = {sh} AND {w} = {sw} AND {slot} = {sc}"));
                    }
                }
            }
        }
    }

    fn expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.add.is_empty() {
            parts.push(format!("ADD {}", self.add.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        parts.join(" ")
    }
}

impl DynamoStore {
    async fn read_budgets(&self, op: &'static str, scope: &str) -> Result<Read, StoreError> {
        let items = self.query_partition(op, budget_pk(scope)).await?;
        Ok(Read::from_items(items))
    }

    /// One round of `take`: `Ok(Ok(answer))`, or `Ok(Err(item))` when the write lost to another
    /// taker and `item` is the winner's (the next round plans on it).
    async fn take_round(
        &self,
        scope: &str,
        read: &Read,
        windows: &[(BudgetKind, Window)],
        units: u32,
        now: UtcTime,
    ) -> Result<Result<Option<Denied>, Option<Item>>, StoreError> {
        let mut stored = BTreeMap::new();
        let mut seen = BTreeMap::new();
        for (kind, window) in windows {
            let (tally, legacy) = read.tally(*kind, window);
            if let Some(tally) = tally {
                if !legacy {
                    seen.insert(*kind, tally.clone());
                }
                stored.insert(*kind, tally);
            }
        }
        let steps = match plan_take(windows, &stored, units, now) {
            Ok(steps) => steps,
            Err(denied) => return Ok(Ok(Some(denied))),
        };
        let mut update = Update::default();
        let mut expires = now;
        for ((kind, step), (_, window)) in steps.iter().zip(windows) {
            // A window known only from an earlier-layout log is written whole.
            let step = match (step, seen.get(kind), stored.get(kind)) {
                (Step::Add { .. } | Step::Open { .. }, None, Some(base)) => {
                    let mut next = base.clone();
                    next.apply(step);
                    next.counts.retain(|b, _| *b >= next.hi - BUCKETS);
                    Step::Replace { next }
                }
                _ => step.clone(),
            };
            update.step(
                *kind,
                &step,
                window.width_ms(),
                seen.get(kind),
                read.tally.as_ref(),
            );
            expires = expires.max(now.plus(window.period));
        }
        let (t, e) = (update.name("t"), update.name("expires_at"));
        let (tv, ev) = (
            update.value(s("budget")),
            update.value(n(expires.plus(TTL_GRACE).as_secs())),
        );
        update.set.push(format!("{t} = {tv}"));
        update.set.push(format!("{e} = {ev}"));
        let out = self
            .client
            .update_item()
            .table_name(self.table())
            .key(ATTR_PK, s(budget_pk(scope)))
            .key(ATTR_SK, s(TALLY_SK))
            .update_expression(update.expression())
            .condition_expression(update.conditions.join(" AND "))
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match out {
            Ok(out) => {
                self.meter.record("take", out.consumed_capacity());
                Ok(Ok(None))
            }
            Err(err) => {
                self.meter.record_failed("take");
                match &err {
                    SdkError::ServiceError(se) => match se.err() {
                        UpdateItemError::ConditionalCheckFailedException(ccf) => {
                            Ok(Err(ccf.item.clone()))
                        }
                        _ => Err(unavailable(err)),
                    },
                    _ => Err(unavailable(err)),
                }
            }
        }
    }
}

impl BudgetStore for DynamoStore {
    /// One consistent read of the scope, then one conditional UpdateItem for every window.
    async fn take(
        &self,
        scope: &str,
        windows: &[(BudgetKind, Window)],
        units: u32,
        now: UtcTime,
    ) -> Result<Option<Denied>, StoreError> {
        let mut read = self.read_budgets("take_read", scope).await?;
        for round in 0..TAKE_MAX_ROUNDS {
            match self.take_round(scope, &read, windows, units, now).await? {
                Ok(outcome) => {
                    debug!(budget_scope = scope, round, ?outcome, "budget take");
                    return Ok(outcome);
                }
                // The winner's item; the earlier-layout logs are unchanged.
                Err(Some(item)) => read.tally = Some(item),
                Err(None) => read = self.read_budgets("take_read", scope).await?,
            }
        }
        warn!(
            budget_scope = scope,
            "budget take kept losing its conditional write"
        );
        Err(StoreError::Conflict)
    }

    /// One consistent read; writes nothing.
    async fn peek(
        &self,
        scope: &str,
        windows: &[(BudgetKind, Window)],
        now: UtcTime,
    ) -> Result<Vec<Admission>, StoreError> {
        let read = self.read_budgets("peek", scope).await?;
        Ok(windows
            .iter()
            .map(|(kind, window)| window.admit(read.tally(*kind, window).0.as_ref(), 1, now))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_window_has_its_own_attribute_prefix() {
        let kinds = BudgetKind::ALL;
        let codes: std::collections::BTreeSet<_> = kinds.iter().map(|k| code(*k)).collect();
        assert_eq!(codes.len(), kinds.len());
        // No code is another's prefix followed by a digit or `w`.
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_lowercase()))
        );
    }

    #[test]
    fn a_stored_tally_reads_back_from_its_ring_slots() {
        let mut item = Item::new();
        item.insert("ti".into(), n(1_000));
        item.insert("tiw".into(), n(500));
        item.insert(slot_attr(BudgetKind::TikTokInit, 1_000), n(2));
        item.insert(slot_attr(BudgetKind::TikTokInit, 990), n(1));
        let tally = tally_from(&item, BudgetKind::TikTokInit);
        assert_eq!(
            tally,
            Some(Tally {
                width_ms: 500,
                hi: 1_000,
                counts: BTreeMap::from([(990, 1), (1_000, 2)]),
            })
        );
        assert_eq!(tally_from(&item, BudgetKind::TikTokStatus), None);
    }
}
