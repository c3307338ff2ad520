//! The per-tenant request budget of Reelay's own API: one tenant's burst is answered 429 and
//! never slows another tenant's requests. Kept as a budget window like the upstreams' (one
//! write per admitted request; a refusal is read, not written).

use super::Core;
use crate::budget::{Admission, BudgetKind};
use crate::ids::TenantId;
use crate::ports::{BudgetStore, Clock, Ports, StoreError};
use crate::time::UtcTime;

/// What the API tells a client about its budget (`X-RateLimit-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u32,
    /// Requests left in the window after this one.
    pub remaining: u32,
    /// When a refused request may be sent again; for an admitted one, when the window has
    /// surely refilled.
    pub reset_at: UtcTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiAdmission {
    Admitted(RateStatus),
    Limited(RateStatus),
}

/// The budget scope of a tenant's API requests.
pub fn api_scope(tenant: &TenantId) -> String {
    format!("api:{tenant}")
}

impl<P: Ports> Core<P> {
    /// Admits one request of `tenant` against its window, or says when to come back.
    pub async fn admit_api_request(&self, tenant: &TenantId) -> Result<ApiAdmission, StoreError> {
        let window = self.settings.limits.documented(BudgetKind::TenantApi);
        let windows = [(BudgetKind::TenantApi, window)];
        let scope = api_scope(tenant);
        let now = self.ports.clock().now();
        let limited = |retry_at: UtcTime| {
            ApiAdmission::Limited(RateStatus {
                limit: window.limit,
                remaining: 0,
                reset_at: retry_at,
            })
        };
        let budgets = self.ports.budgets();
        let remaining = match budgets.peek(&scope, &windows, now).await?.first() {
            Some(Admission::Denied { retry_at }) => return Ok(limited(*retry_at)),
            Some(Admission::Granted { remaining }) => *remaining,
            None => window.limit.saturating_sub(1),
        };
        match budgets.take(&scope, &windows, 1, now).await? {
            Some(denied) => Ok(limited(denied.retry_at)),
            None => Ok(ApiAdmission::Admitted(RateStatus {
                limit: window.limit,
                remaining,
                reset_at: now.plus(window.period),
            })),
        }
    }
}
