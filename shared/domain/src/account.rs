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
    /// The tenant disconnected the account (`DELETE /v1/accounts/{id}`): its tokens are gone and
    /// the creator is no longer pinned; connecting it again makes it active.
    Disconnected,
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
    /// The upstream's code that blocked it (`rate_limit_exceeded`, `spam_risk_too_many_posts`, …).
    #[serde(default)]
    pub blocked_reason: Option<String>,
    pub scopes: Vec<String>,
    pub connected_at: Option<UtcTime>,
    /// When the creator's authorisation ends (TikTok's refresh token expires): the creator must
    /// connect again before then. As TikTok gave it at the connect; TikTok counts it from the
    /// first issuance and a refresh does not extend it, so this is never later than the truth.
    #[serde(default)]
    pub authorization_expires_at: Option<UtcTime>,
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
            blocked_reason: None,
            scopes: Vec::new(),
            connected_at: None,
            authorization_expires_at: None,
            version: 0,
        }
    }

    /// The SQS FIFO message group: publishes for one account are serialised.
    pub fn message_group(tenant: &TenantId, account: &AccountId) -> String {
        format!("{tenant}:{account}")
    }

    /// Until when TikTok throttles this account's token (a block for one of the `delay_only`
    /// codes, i.e. a 429): its status polls wait too. A daily cap blocks posting only.
    pub fn throttled_until(&self, now: UtcTime, delay_only: &[String]) -> Option<UtcTime> {
        let throttled = self
            .blocked_reason
            .as_ref()
            .is_none_or(|r| delay_only.iter().any(|c| c == r));
        self.blocked_until.filter(|t| *t > now && throttled)
    }

    /// Whether the creator granted direct posting (`video.publish`); without it only drafts go.
    pub fn may_post_directly(&self) -> bool {
        self.scopes.iter().any(|s| s == DIRECT_POST_SCOPE)
    }

    /// Connected for drafts only: the creator authorised the app without `video.publish`. An
    /// account not yet connected is not (its scopes are not known yet).
    pub fn drafts_only(&self) -> bool {
        self.connected_at.is_some() && !self.may_post_directly()
    }

    pub fn can_publish(&self, now: UtcTime) -> bool {
        self.health == AccountHealth::Active && self.blocked_until.is_none_or(|t| t <= now)
    }
}

/// Whether an account lets a publish of `mode` go now: the one check the publisher makes before
/// every attempt and the reconciler makes before it lifts a hold, so both agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Nothing goes before `until` (a 429 or a cap blocked the account).
    Wait {
        reason: String,
        until: UtcTime,
    },
    /// Nothing goes until someone acts (the creator reconnects, grants a scope, …).
    Park {
        reason: String,
    },
}

/// The TikTok scope a direct post needs; an account connected for drafts only lacks it.
pub const DIRECT_POST_SCOPE: &str = "video.publish";

/// [`Gate`] for a publish of `mode` on `account` (`None`: the account does not exist).
pub fn publish_gate(account: Option<&Account>, mode: crate::job::PostMode, now: UtcTime) -> Gate {
    let Some(account) = account else {
        return Gate::Park {
            reason: "account_not_found".into(),
        };
    };
    if account.health != AccountHealth::Active {
        return Gate::Park {
            reason: account
                .health_reason
                .clone()
                .unwrap_or_else(|| account.health.as_str().to_owned()),
        };
    }
    if let Some(until) = account.blocked_until.filter(|t| *t > now) {
        return Gate::Wait {
            reason: account
                .blocked_reason
                .clone()
                .unwrap_or_else(|| "account_blocked".into()),
            until,
        };
    }
    if mode == crate::job::PostMode::Direct && !account.may_post_directly() {
        return Gate::Park {
            reason: "scope_not_authorized".into(),
        };
    }
    Gate::Open
}

impl AccountHealth {
    pub const ALL: [AccountHealth; 4] = [
        Self::Active,
        Self::NeedsReauth,
        Self::Banned,
        Self::Disconnected,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsReauth => "needs_reauth",
            Self::Banned => "banned",
            Self::Disconnected => "disconnected",
        }
    }
}
