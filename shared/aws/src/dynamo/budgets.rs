//! `BudgetStore`: sliding-window logs, taken with a compare-and-set on the log item.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use rand::Rng;
use reelay_domain::UtcTime;
use reelay_domain::budget::{Admission, BudgetKind, Window, counted_at};
use reelay_domain::ports::{BudgetStore, StoreError};
use tracing::{debug, warn};

use super::{ATTR_PK, ATTR_SK, DynamoStore, Item, get_n, n, s, unavailable};

/// Compare-and-set rounds for one `take`. Each lost round means another taker wrote, so with
/// `limit` grants per window a taker loses at most `limit` rounds before it is denied.
const TAKE_MAX_ROUNDS: u32 = 32;
/// Budget logs linger this long past their last take before TTL removes them.
const TTL_GRACE: Duration = Duration::from_secs(24 * 3600);

fn budget_pk(scope: &str) -> String {
    format!("BUDGET#{scope}")
}

/// A budget's log of takes and the version the compare-and-set is conditional on.
type Log = (Vec<UtcTime>, u64);

fn log_from(item: &Item) -> Log {
    let log = item
        .get("log")
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_n().ok().and_then(|raw| raw.parse::<i64>().ok()))
                .map(UtcTime::from_millis)
                .collect()
        })
        .unwrap_or_default();
    (log, get_n(item, "ver").unwrap_or(0))
}

impl DynamoStore {
    /// One compare-and-set round of `take`: `Ok(Some)` is the answer, `Ok(None)` lost the race.
    async fn take_round(
        &self,
        pk: &str,
        kind: BudgetKind,
        window: Window,
        now: UtcTime,
        seen: &mut Option<Log>,
    ) -> Result<Option<Admission>, StoreError> {
        let (log, version) = match seen.take() {
            Some(known) => known,
            None => self.read_budget("take_read", pk, kind).await?,
        };
        let now = counted_at(&log, now);
        let admission = window.admit(&log, now);
        let Admission::Granted { .. } = admission else {
            return Ok(Some(admission));
        };
        let mut live = window.live(&log, now);
        live.push(now);
        let log_av = AttributeValue::L(live.iter().map(|t| n(t.as_millis())).collect());
        let expires = now.plus(window.period).plus(TTL_GRACE).as_secs();
        let mut put = self
            .client
            .put_item()
            .table_name(self.table())
            .item(ATTR_PK, s(pk))
            .item(ATTR_SK, s(kind.as_str()))
            .item("t", s("budget"))
            .item("log", log_av)
            .item("ver", n(version + 1))
            .item("expires_at", n(expires))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(self.capacity());
        put = if version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("ver = :v")
                .expression_attribute_values(":v", n(version))
        };
        match put.send().await {
            Ok(out) => {
                self.meter.record("take", out.consumed_capacity());
                Ok(Some(admission))
            }
            Err(err) => {
                self.meter.record_failed("take");
                match &err {
                    SdkError::ServiceError(se) => match se.err() {
                        // The exception carries the winner's log: the next round needs no read.
                        PutItemError::ConditionalCheckFailedException(ccf) => {
                            *seen = ccf.item.as_ref().map(log_from);
                            Ok(None)
                        }
                        _ => Err(unavailable(err)),
                    },
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    async fn read_budget(
        &self,
        op: &'static str,
        pk: &str,
        kind: BudgetKind,
    ) -> Result<Log, StoreError> {
        let item = self.get_item(op, pk.to_owned(), kind.as_str()).await?;
        Ok(item.as_ref().map(log_from).unwrap_or((Vec::new(), 0)))
    }
}

impl BudgetStore for DynamoStore {
    async fn take(
        &self,
        scope: &str,
        kind: BudgetKind,
        window: Window,
        now: UtcTime,
    ) -> Result<Admission, StoreError> {
        let pk = budget_pk(scope);
        let mut seen = None;
        for round in 0..TAKE_MAX_ROUNDS {
            if let Some(admission) = self.take_round(&pk, kind, window, now, &mut seen).await? {
                debug!(
                    budget_scope = scope,
                    budget = kind.as_str(),
                    round,
                    ?admission,
                    "budget take"
                );
                return Ok(admission);
            }
            // A little jitter spreads the losers of a crowded round.
            let pause = rand::rng().random_range(0..=u64::from(round.min(8)) * 2);
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        warn!(
            budget_scope = scope,
            budget = kind.as_str(),
            "budget take kept losing its compare-and-set"
        );
        Err(StoreError::Conflict)
    }

    /// One consistent GetItem; writes nothing.
    async fn peek(
        &self,
        scope: &str,
        kind: BudgetKind,
        window: Window,
        now: UtcTime,
    ) -> Result<Admission, StoreError> {
        let (log, _) = self.read_budget("peek", &budget_pk(scope), kind).await?;
        Ok(window.admit(&log, counted_at(&log, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_are_counted_from_the_latest_take_when_a_clock_lags() {
        let t = |s| UtcTime::from_secs(s);
        assert_eq!(counted_at(&[], t(10)), t(10));
        assert_eq!(counted_at(&[t(5), t(12)], t(10)), t(12));
        assert_eq!(counted_at(&[t(5)], t(10)), t(10));
    }
}
