//! Fresh access tokens: one refresher call per account at a time, the rotated token set stored
//! before anyone uses it. TikTok rotates refresh tokens and the previous one stops working, so two
//! concurrent refreshes would make one of them look like a dead account.

use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use tracing::{info, warn};

use crate::account::AccountHealth;
use crate::ids::{AccountId, TenantId};
use crate::ports::{
    AccountStore, Clock, Entropy, LockStore, Ports, RefreshError, SecretError, StoreError,
    TokenRefresher, TokenSet, TokenVault,
};
use crate::time::UtcTime;

use super::Core;

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

impl TokenError {
    /// Only the creator can fix this (reconnect the account).
    pub fn needs_user(&self) -> bool {
        matches!(self, Self::NotConnected | Self::NeedsReauth)
    }
}

/// The lock name serialising one account's refreshes.
pub fn refresh_lock_name(tenant: &TenantId, account: &AccountId) -> String {
    format!("token-refresh#{tenant}:{account}")
}

impl<P: Ports> Core<P> {
    fn fresh_enough(
        &self,
        tokens: &TokenSet,
        rejected: Option<&SecretString>,
        now: UtcTime,
    ) -> bool {
        let refused =
            rejected.is_some_and(|r| r.expose_secret() == tokens.access_token.expose_secret());
        !refused && tokens.access_expires_at > now.plus(self.settings.tokens.min_validity)
    }

    /// An access token valid for at least `min_validity`: the stored one if fresh enough, else
    /// refreshed under the account's lock (re-read first: another task may have refreshed),
    /// stored, then returned. `rejected` is a token TikTok just refused: it counts as expired.
    /// Tasks that find the lock taken poll the vault until a new token appears or the lease
    /// lapses, then try the lock again.
    pub async fn fresh_token(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, TokenError> {
        // Boxed: the vault's and the lock's futures are large, and several use cases await this.
        Box::pin(self.fresh_token_inner(tenant, account, rejected)).await
    }

    async fn fresh_token_inner(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, TokenError> {
        let (clock, vault, locks) = (self.ports.clock(), self.ports.vault(), self.ports.locks());
        let cfg = self.settings.tokens;
        let owner = format!("{:032x}", clock.random_u128());
        let lock = refresh_lock_name(tenant, account);
        for _ in 0..cfg.max_rounds.max(1) {
            let tokens = vault
                .get_tokens(tenant, account)
                .await?
                .ok_or(TokenError::NotConnected)?;
            let now = clock.now();
            if self.fresh_enough(&tokens, rejected, now) {
                return Ok(tokens.access_token);
            }
            let until = now.plus(cfg.lock_ttl);
            if locks.acquire_lock(&lock, &owner, now, until).await? {
                let result = self.refresh_locked(tenant, account, rejected).await;
                if let Err(e) = locks.release_lock(&lock, &owner).await {
                    // The lease expires by itself; waiters only lose time.
                    warn!(tenant_id = %tenant, account_id = %account, error.message = %e, "could not release the refresh lock");
                }
                return result;
            }
            // Someone else is refreshing: their lease ends no later than ours would have.
            loop {
                clock.sleep(cfg.poll_interval).await;
                if let Some(t) = vault.get_tokens(tenant, account).await?
                    && self.fresh_enough(&t, rejected, clock.now())
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

    async fn refresh_locked(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, TokenError> {
        let (clock, vault) = (self.ports.clock(), self.ports.vault());
        let tokens = vault
            .get_tokens(tenant, account)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if self.fresh_enough(&tokens, rejected, clock.now()) {
            return Ok(tokens.access_token);
        }
        match self.ports.refresher().refresh(&tokens.refresh_token).await {
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
                // A refresh elsewhere (after our lease lapsed) would have rotated the token we
                // sent: then the account is fine and the stored set is the answer.
                if let Some(current) = vault.get_tokens(tenant, account).await?
                    && current.refresh_token.expose_secret() != tokens.refresh_token.expose_secret()
                    && self.fresh_enough(&current, rejected, clock.now())
                {
                    return Ok(current.access_token);
                }
                warn!(tenant_id = %tenant, account_id = %account, error.code = "refresh_token_rejected", "account needs re-authorisation");
                if let Err(e) = self
                    .ports
                    .accounts()
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
                let refused = rejected
                    .is_some_and(|r| r.expose_secret() == tokens.access_token.expose_secret());
                if !refused && tokens.access_expires_at > clock.now() {
                    // Still valid, just not for long: better than failing the caller now.
                    Ok(tokens.access_token)
                } else {
                    Err(TokenError::Transient(msg))
                }
            }
        }
    }
}
