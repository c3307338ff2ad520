//! Taking budgets before an upstream call, in one order for every caller.

use crate::budget::{Admission, BudgetKind};
use crate::ports::{BudgetStore, Clock, Ports, StoreError};
use crate::time::UtcTime;

use super::Core;

/// One Ssemble status or document read: per key per minute, and the account's hour and day.
pub const SSEMBLE_STATUS_BUDGETS: [BudgetKind; 3] = [
    BudgetKind::SsembleStatus,
    BudgetKind::SsembleHourly,
    BudgetKind::SsembleDaily,
];
/// One Ssemble create.
pub const SSEMBLE_CREATE_BUDGETS: [BudgetKind; 3] = [
    BudgetKind::SsembleCreate,
    BudgetKind::SsembleHourly,
    BudgetKind::SsembleDaily,
];
/// One call of a look-up for an earlier create (a list page or a confirmation).
pub const SSEMBLE_LIST_BUDGETS: [BudgetKind; 3] = [
    BudgetKind::SsembleList,
    BudgetKind::SsembleHourly,
    BudgetKind::SsembleDaily,
];

/// A budget said no: which one, and when it will say yes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    pub kind: BudgetKind,
    pub retry_at: UtcTime,
}

impl<P: Ports> Core<P> {
    /// Takes `units` of each budget in `kinds` for `scope`; the first refusal wins and nothing
    /// further is taken.
    ///
    /// The takes are not one atomic step, so a unit taken before a refusal is spent without a
    /// call. Shortest window first keeps that waste where it refills soonest: a burst refused by
    /// a per-minute pool must not drain the hourly or daily budget (found by the fault campaign:
    /// 40 jobs waking at once spent the Ssemble hour on creates the minute pool then refused).
    pub(crate) async fn take_budgets(
        &self,
        scope: &str,
        kinds: &[BudgetKind],
        units: u32,
    ) -> Result<Option<Denied>, StoreError> {
        let limits = &self.settings.limits;
        let ordered = limits.take_order(kinds);
        for _ in 0..units {
            for kind in &ordered {
                let now = self.ports.clock().now();
                if let Admission::Denied { retry_at } = self
                    .ports
                    .budgets()
                    .take(scope, *kind, limits.window(*kind), now)
                    .await?
                {
                    return Ok(Some(Denied {
                        kind: *kind,
                        retry_at,
                    }));
                }
            }
        }
        Ok(None)
    }
}
