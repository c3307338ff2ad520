//! The token refresh coordinator: one refresher call per account at a time, the rotated token set
//! stored before anyone uses it. TikTok rotates refresh tokens and the previous one stops working,
//! so two concurrent refreshes would make one of them look like a dead account.

use std::time::Duration;

use reelay_domain::account::AccountHealth;
use reelay_domain::ports::{
    AccountStore, Clock, RefreshError, SecretError, StoreError, TokenRefresher, TokenSet,
    TokenVault,
};
use reelay_domain::{AccountId, TenantId, UtcTime};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use tracing::{info, warn};

/// Wall-clock time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UtcTime {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        UtcTime::from_millis(ms)
    }
}

#[derive(Debug, Error)]
pub enum TokenError {
    /// No tokens stored: the account was never connected (or was disconnected).
    #[error("the account has no stored tokens")]
    NotConnected,
    /// TikTok refused the refresh token: only the creator can fix it by reconnecting.
    /// The account's health has been set to `needs_reauth` (best effort).
    #[error("refresh token rejected: the account needs re-authorisation")]
    NeedsReauth,
    /// The refresh failed transiently and the old access token has expired: retry later.
    #[error("token refresh failed transiently: {0}")]
    Transient(String),
    /// Another task held the refresh lock for its whole lease and no new token appeared.
    #[error("the refresh lock stayed busy and no fresh token appeared")]
    Busy,
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Timing of the coordinator. `lock_ttl` must exceed the refresher's own HTTP timeout, or a slow
/// refresh could be raced by a second one holding the already rotated refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRefreshConfig {
    /// An access token expiring sooner than this is refreshed first.
    pub min_validity: Duration,
    pub lock_ttl: Duration,
    pub poll_interval: Duration,
    /// Lock attempts before giving up with `Busy`.
    pub max_rounds: u32,
}

impl Default for TokenRefreshConfig {
    fn default() -> Self {
        Self {
            min_validity: Duration::from_secs(300),
            lock_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            max_rounds: 3,
        }
    }
}

/// The lock name serialising one account's refreshes.
pub fn refresh_lock_name(tenant: &TenantId, account: &AccountId) -> String {
    format!("token-refresh#{tenant}:{account}")
}

fn fresh(tokens: &TokenSet, now: UtcTime, cfg: &TokenRefreshConfig) -> bool {
    tokens.access_expires_at > now.plus(cfg.min_validity)
}

/// An access token valid for at least `cfg.min_validity`: the stored one if fresh enough, else
/// refreshed under the account's lock (re-read first: another task may have refreshed), stored,
/// then returned. Tasks that find the lock taken poll the vault until the new token appears or the
/// lease lapses, then try the lock again.
#[allow(clippy::too_many_arguments)]
pub async fn fresh_token<A, V, R, C>(
    accounts: &A,
    vault: &V,
    refresher: &R,
    clock: &C,
    tenant: &TenantId,
    account: &AccountId,
    cfg: &TokenRefreshConfig,
) -> Result<SecretString, TokenError>
where
    A: AccountStore,
    V: TokenVault,
    R: TokenRefresher,
    C: Clock,
{
    let owner = uuid::Uuid::new_v4().to_string();
    let lock = refresh_lock_name(tenant, account);
    for _ in 0..cfg.max_rounds.max(1) {
        let tokens = vault
            .get_tokens(tenant, account)
            .await?
            .ok_or(TokenError::NotConnected)?;
        let now = clock.now();
        if fresh(&tokens, now, cfg) {
            return Ok(tokens.access_token);
        }
        let until = now.plus(cfg.lock_ttl);
        if accounts.acquire_lock(&lock, &owner, now, until).await? {
            let result =
                refresh_locked(accounts, vault, refresher, clock, tenant, account, cfg).await;
            if let Err(e) = accounts.release_lock(&lock, &owner).await {
                // The lease expires by itself; waiters only lose time.
                warn!(tenant_id = %tenant, account_id = %account, error.message = %e, "could not release the refresh lock");
            }
            return result;
        }
        // Someone else is refreshing: their lease ends no later than ours would have.
        loop {
            tokio::time::sleep(cfg.poll_interval).await;
            if let Some(t) = vault.get_tokens(tenant, account).await?
                && fresh(&t, clock.now(), cfg)
            {
                return Ok(t.access_token);
            }
            if clock.now() >= until {
                break;
            }
        }
    }
    Err(TokenError::Busy)
}

async fn refresh_locked<A, V, R, C>(
    accounts: &A,
    vault: &V,
    refresher: &R,
    clock: &C,
    tenant: &TenantId,
    account: &AccountId,
    cfg: &TokenRefreshConfig,
) -> Result<SecretString, TokenError>
where
    A: AccountStore,
    V: TokenVault,
    R: TokenRefresher,
    C: Clock,
{
    let tokens = vault
        .get_tokens(tenant, account)
        .await?
        .ok_or(TokenError::NotConnected)?;
    if fresh(&tokens, clock.now(), cfg) {
        return Ok(tokens.access_token);
    }
    match refresher.refresh(&tokens.refresh_token).await {
        Ok(mut rotated) => {
            if rotated.refresh_token.expose_secret().trim().is_empty() {
                // Never store an empty refresh token: keep the one that still works.
                warn!(tenant_id = %tenant, account_id = %account, "refresh returned no refresh token; keeping the stored one");
                rotated.refresh_token = tokens.refresh_token.clone();
                rotated.refresh_expires_at = tokens.refresh_expires_at;
            }
            vault.put_tokens(tenant, account, &rotated).await?;
            info!(tenant_id = %tenant, account_id = %account, access_expires_at = %rotated.access_expires_at, "access token refreshed");
            Ok(rotated.access_token)
        }
        Err(RefreshError::Rejected) => {
            // A refresh elsewhere (after our lease lapsed) would have rotated the token we sent:
            // then the account is fine and the stored set is the answer.
            if let Some(current) = vault.get_tokens(tenant, account).await?
                && current.refresh_token.expose_secret() != tokens.refresh_token.expose_secret()
                && fresh(&current, clock.now(), cfg)
            {
                return Ok(current.access_token);
            }
            warn!(tenant_id = %tenant, account_id = %account, error.code = "refresh_token_rejected", "account needs re-authorisation");
            if let Err(e) = accounts
                .set_health(
                    tenant,
                    account,
                    AccountHealth::NeedsReauth,
                    Some("refresh_token_rejected"),
                )
                .await
            {
                warn!(tenant_id = %tenant, account_id = %account, error.message = %e, "could not mark the account");
            }
            Err(TokenError::NeedsReauth)
        }
        Err(RefreshError::Transient(msg)) => {
            warn!(tenant_id = %tenant, account_id = %account, error.code = "refresh_transient", "token refresh failed");
            if tokens.access_expires_at > clock.now() {
                // Still valid, just not for long: better than failing the caller now.
                Ok(tokens.access_token)
            } else {
                Err(TokenError::Transient(msg))
            }
        }
    }
}
