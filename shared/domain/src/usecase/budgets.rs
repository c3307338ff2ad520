//! Taking budgets before an upstream call, in one order for every caller.

use crate::budget::{Admission, BudgetKind, Window};
use crate::ids::TenantId;
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

    /// One Ssemble create for `tenant`, fairly shared between tenants. Every tenant is
    /// guaranteed `tenant_share_permille` of the key's hourly and daily windows: within its
    /// share a create takes the key's budgets as any create does (and is counted in the
    /// tenant's share windows); past it, the tenant borrows only while the key keeps a share's
    /// worth free in both windows, so another tenant arriving finds its share at once however
    /// large the first tenant's burst. With the share at 0 every create is first come, first
    /// served.
    pub(crate) async fn take_create_budget(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Denied>, StoreError> {
        let key_scope = self.settings.render.ssemble_scope.clone();
        let Some(own) = self.share_windows() else {
            return self
                .take_budgets(&key_scope, &SSEMBLE_CREATE_BUDGETS, 1)
                .await;
        };
        let own_scope = self.share_scope(tenant);
        let budgets = self.ports.budgets();
        let now = self.ports.clock().now();
        let own_room = budgets.peek(&own_scope, &own, now).await?;
        let over = own
            .iter()
            .zip(&own_room)
            .find_map(|((kind, _), a)| match a {
                Admission::Denied { retry_at } => Some(Denied {
                    kind: *kind,
                    retry_at: *retry_at,
                }),
                Admission::Granted { .. } => None,
            });
        match over {
            None => {
                let denied = self
                    .take_budgets(&key_scope, &SSEMBLE_CREATE_BUDGETS, 1)
                    .await?;
                if denied.is_none()
                    && let Some(lost) = budgets.take(&own_scope, &own, 1, now).await?
                {
                    // Another create of the tenant took the last of its share meanwhile: this
                    // one counts as borrowed (the key's budget, the upstream's truth, is kept).
                    tracing::debug!(tenant_id = %tenant, kind = lost.kind.as_str(), "share full; counted as borrowed");
                }
                Ok(denied)
            }
            Some(own_denied) => {
                // Borrowing: only while the key keeps a share's worth free in each window.
                let key = self
                    .peek_budgets(&key_scope, &SHARED_OUT.map(|(key, _)| key))
                    .await?;
                for ((_, window), (_, _, admission)) in own.iter().zip(&key) {
                    let free_after = match admission {
                        Admission::Granted { remaining } => *remaining,
                        Admission::Denied { .. } => 0,
                    };
                    if free_after < window.limit {
                        tracing::info!(tenant_id = %tenant, kind = own_denied.kind.as_str(),
                            "tenant past its Ssemble share and the key keeps the rest for others");
                        return Ok(Some(own_denied));
                    }
                }
                self.take_budgets(&key_scope, &SSEMBLE_CREATE_BUDGETS, 1)
                    .await
            }
        }
    }

    /// A tenant's share of the key's hourly and daily windows; `None` with shares off.
    fn share_windows(&self) -> Option<[(BudgetKind, Window); 2]> {
        let permille = self.settings.render.tenant_share_permille.min(1000);
        if permille == 0 {
            return None;
        }
        let share = |kind: BudgetKind, of: BudgetKind| {
            let w = self.settings.limits.window(of);
            let units = (u64::from(w.limit) * u64::from(permille)).div_ceil(1000);
            (
                kind,
                Window::new(u32::try_from(units).unwrap_or(u32::MAX).max(1), w.period),
            )
        };
        Some(SHARED_OUT.map(|(of, kind)| share(kind, of)))
    }

    fn share_scope(&self, tenant: &TenantId) -> String {
        format!("{}#tenant:{tenant}", self.settings.render.ssemble_scope)
    }

    /// How many Ssemble creates `tenant` could make now, by the rule of
    /// [`Core::take_create_budget`], per window of [`SSEMBLE_CREATE_BUDGETS`]: the key's room,
    /// or, where the tenant's share binds, its share left plus what it may borrow (the key's
    /// room beyond a share's worth), refilling at the share's rate. Reads only (the preview).
    pub(crate) async fn create_budget_left(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(BudgetKind, u32, Window)>, StoreError> {
        let key_scope = self.settings.render.ssemble_scope.clone();
        let key = self
            .peek_budgets(&key_scope, &SSEMBLE_CREATE_BUDGETS)
            .await?
            .into_iter()
            .map(|(kind, window, admission)| (kind, admission.units_left(), window));
        let Some(own) = self.share_windows() else {
            return Ok(key.collect());
        };
        let now = self.ports.clock().now();
        let own_room = self
            .ports
            .budgets()
            .peek(&self.share_scope(tenant), &own, now)
            .await?;
        Ok(key
            .map(|(kind, key_left, window)| {
                let share = share_kind(kind).and_then(|shared| {
                    own.iter()
                        .zip(&own_room)
                        .find(|((own_kind, _), _)| *own_kind == shared)
                });
                let Some(((share_kind, share_window), own_admission)) = share else {
                    return (kind, key_left, window);
                };
                let own_left = own_admission.units_left();
                let within = own_left.min(key_left);
                let borrow = (key_left - within).saturating_sub(share_window.limit);
                if own_left <= key_left {
                    // The share binds first: past it, borrowing, then its refill.
                    (*share_kind, within + borrow, *share_window)
                } else {
                    (kind, key_left, window)
                }
            })
            .collect())
    }

    fn windows(&self, kinds: &[BudgetKind]) -> Vec<(BudgetKind, Window)> {
        kinds
            .iter()
            .map(|k| (*k, self.settings.limits.window(*k)))
            .collect()
    }
}

/// The key's windows shared out between tenants, each with the window of a tenant's share.
const SHARED_OUT: [(BudgetKind, BudgetKind); 2] = [
    (BudgetKind::SsembleHourly, BudgetKind::SsembleShareHourly),
    (BudgetKind::SsembleDaily, BudgetKind::SsembleShareDaily),
];

/// The window of a tenant's share of the key's window `of`, if `of` is shared out.
fn share_kind(of: BudgetKind) -> Option<BudgetKind> {
    SHARED_OUT
        .iter()
        .find(|(key, _)| *key == of)
        .map(|(_, share)| *share)
}
