//! Taking budgets before an upstream call, in one order for every caller.

use crate::budget::{Admission, BudgetKind, Window};
use crate::ports::{BudgetStore, Clock, Ports, StoreError};

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

pub use crate::budget::Denied;

impl<P: Ports> Core<P> {
    /// Takes `units` of each budget in `kinds` for `scope`, all at once or none: a refusal by
    /// one window spends nothing of the others (a burst refused by the per-minute pool must
    /// not drain the hourly or daily budget, as the fault campaign once saw).
    pub(crate) async fn take_budgets(
        &self,
        scope: &str,
        kinds: &[BudgetKind],
        units: u32,
    ) -> Result<Option<Denied>, StoreError> {
        let now = self.ports.clock().now();
        let windows = self.windows(kinds);
        self.ports.budgets().take(scope, &windows, units, now).await
    }

    /// What one more take of each of `kinds` would answer now, without taking.
    pub(crate) async fn peek_budgets(
        &self,
        scope: &str,
        kinds: &[BudgetKind],
    ) -> Result<Vec<(BudgetKind, Window, Admission)>, StoreError> {
        let now = self.ports.clock().now();
        let windows = self.windows(kinds);
        let answers = self.ports.budgets().peek(scope, &windows, now).await?;
        Ok(windows
            .into_iter()
            .zip(answers)
            .map(|((kind, window), admission)| (kind, window, admission))
            .collect())
    }

    fn windows(&self, kinds: &[BudgetKind]) -> Vec<(BudgetKind, Window)> {
        kinds
            .iter()
            .map(|k| (*k, self.settings.limits.window(*k)))
            .collect()
    }
}
