//! Connected TikTok accounts and their health.

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, TenantId};
use crate::time::UtcTime;

/// Whether the account can publish at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountHealth {
    Active,
    /// The creator revoked access, or a refresh token died: only the creator can fix it.
    NeedsReauth,
    /// TikTok banned the creator from posting.
    Banned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub open_id: Option<String>,
    pub health: AccountHealth,
    pub health_reason: Option<String>,
    /// After a 429 or a cap: nothing is sent for this account before then.
    pub blocked_until: Option<UtcTime>,
    pub scopes: Vec<String>,
    pub connected_at: Option<UtcTime>,
    pub version: u64,
}

impl Account {
    pub fn new(tenant_id: TenantId, account_id: AccountId) -> Self {
        Self {
            tenant_id,
            account_id,
            open_id: None,
            health: AccountHealth::NeedsReauth,
            health_reason: Some("not_connected".into()),
            blocked_until: None,
            scopes: Vec::new(),
            connected_at: None,
            version: 0,
        }
    }

    /// The SQS FIFO message group: publishes for one account are serialised.
    pub fn message_group(tenant: &TenantId, account: &AccountId) -> String {
        format!("{tenant}:{account}")
    }

    pub fn can_publish(&self, now: UtcTime) -> bool {
        self.health == AccountHealth::Active && self.blocked_until.is_none_or(|t| t <= now)
    }
}
