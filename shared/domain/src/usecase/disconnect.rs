//! A tenant disconnecting an account (`DELETE /v1/accounts/{id}`): nothing more goes out for it,
//! its jobs that have not started publishing are cancelled with the reason, the creator's
//! authorisation is revoked at TikTok and the tokens deleted, and the creator is unpinned so the
//! account id (or the creator, as another account) can be connected again.
//!
//! Every step can be run again: a client whose answer was lost sends the DELETE again and the
//! steps left undone are done. Jobs already at TikTok are left to settle: webhooks find them by
//! their publish_id, or (an init whose answer was lost) by the creator's `open_id`, so the
//! creator stays pinned while any are in flight and a later DELETE releases it. Without tokens
//! their polls back off and, past their deadline, they park as `publish_unknown` with the
//! reason in view — never a second post.

use secrecy::SecretString;

use crate::account::{Account, AccountHealth};
use crate::ids::{AccountId, TenantId};
use crate::lifecycle::{Actor, Event, JobState};
use crate::ports::{
    AccountStore, Clock, Entropy, LockStore, Ports, StoreError, TokenRefresher, TokenVault,
};
use crate::upstream::AuthApi;

use super::{AccountError, Advance, Core, refresh_lock_name};

/// The reason a disconnected account and its cancelled jobs carry.
pub const DISCONNECTED: &str = "account_disconnected";

/// Lost writes a disconnect's account change survives before it answers `Conflict`.
const ACCOUNT_WRITE_ROUNDS: usize = 5;

/// States a disconnect cancels: the job has not started publishing, so nothing is at TikTok.
const CANCELLED_ON_DISCONNECT: [JobState; 4] = [
    JobState::Received,
    JobState::Rendering,
    JobState::Ready,
    JobState::PublishQueued,
];

/// What a disconnect did.
#[derive(Debug, Clone, PartialEq)]
pub struct Disconnected {
    pub account: Account,
    /// Jobs cancelled now (a repeated DELETE counts only its own).
    pub cancelled: usize,
    /// Jobs already at TikTok, left to settle.
    pub in_flight: usize,
    /// Whether the creator was unpinned (false while jobs are in flight: send the DELETE again
    /// once they settle).
    pub creator_released: bool,
    /// Whether TikTok confirmed the revocation (false: no tokens were stored, or TikTok refused;
    /// the tokens are deleted either way).
    pub revoked: bool,
}

impl<P: Ports> Core<P> {
    /// Disconnects the tenant's account; see the module documentation for the order.
    pub async fn disconnect_account(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
    ) -> Result<Disconnected, AccountError> {
        // 1. Nothing new goes: the gates park on a health that is not active, and creates are
        //    refused. The creator stays pinned until the tokens are gone.
        let (_, changed) = self
            .change_account(tenant, account_id, |account| {
                if account.health == AccountHealth::Disconnected {
                    return false;
                }
                account.health = AccountHealth::Disconnected;
                account.health_reason = Some(DISCONNECTED.into());
                true
            })
            .await?;
        if changed {
            tracing::info!(tenant_id = %tenant, account_id = %account_id, "account disconnected by its tenant");
        }
        // 2. Jobs that have not started publishing are cancelled, with the reason.
        let cancel = Event::Cancel {
            by: Actor::AccountDisconnected,
        };
        let mut cancelled = 0;
        for state in CANCELLED_ON_DISCONNECT {
            for job in self.jobs_in(tenant, account_id, state).await? {
                if let Advance::Moved(_) = self.advance_loaded(job, &cancel).await? {
                    cancelled += 1;
                }
            }
        }
        let mut in_flight = 0;
        for state in JobState::ALL
            .into_iter()
            .filter(|s| !s.is_terminal() && !CANCELLED_ON_DISCONNECT.contains(s))
        {
            in_flight += self.jobs_in(tenant, account_id, state).await?.len();
        }
        // 3. Revoke and delete under the account's refresh lock, so no refresh in progress
        //    stores a rotated pair after the delete.
        let revoked = self.revoke_and_forget(tenant, account_id).await?;
        // 4. Unpin the creator (and retire its lookup item) once nothing is in flight, unless a
        //    reconnect won the race.
        let (account, _) = self
            .change_account(tenant, account_id, |account| {
                if in_flight > 0
                    || account.health != AccountHealth::Disconnected
                    || (account.open_id.is_none() && account.scopes.is_empty())
                {
                    return false;
                }
                account.open_id = None;
                account.scopes.clear();
                account.connected_at = None;
                true
            })
            .await?;
        tracing::info!(tenant_id = %tenant, account_id = %account_id, cancelled, in_flight, revoked,
            "account disconnect done");
        Ok(Disconnected {
            creator_released: account.open_id.is_none(),
            account,
            cancelled,
            in_flight,
            revoked,
        })
    }

    /// Reads the account, lets `change` edit it (`false`: nothing to change) and writes it over
    /// the version it read; a write lost to another writer (a 429's block, a health change: they
    /// bump the version) is read and changed again, because what a disconnect writes does not
    /// depend on what they wrote. `Conflict` only after [`ACCOUNT_WRITE_ROUNDS`] lost writes.
    /// The answer is the stored record and whether it was changed.
    async fn change_account(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
        change: impl Fn(&mut Account) -> bool,
    ) -> Result<(Account, bool), AccountError> {
        for _ in 0..ACCOUNT_WRITE_ROUNDS {
            let mut account = self
                .ports
                .accounts()
                .get_account(tenant, account_id)
                .await?
                .ok_or(AccountError::NotFound)?;
            if !change(&mut account) {
                return Ok((account, false));
            }
            match self.store_account(account).await {
                Err(AccountError::Conflict) => continue,
                stored => return stored.map(|a| (a, true)),
            }
        }
        Err(AccountError::Conflict)
    }

    /// Writes `account` over the version it was read at; the answer is the stored record.
    async fn store_account(&self, mut account: Account) -> Result<Account, AccountError> {
        match self.ports.accounts().put_account(&account).await {
            Ok(()) => {
                account.version += 1;
                Ok(account)
            }
            Err(StoreError::Conflict) => Err(AccountError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes the stored authorisation at TikTok (with a refreshed access token when the
    /// stored one has expired) and deletes the tokens. `Conflict` while a refresh holds the lock.
    async fn revoke_and_forget(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<bool, AccountError> {
        let clock = self.ports.clock();
        let now = clock.now();
        let lock = refresh_lock_name(tenant, account);
        let owner = format!("{:032x}", clock.random_u128());
        let locks = self.ports.locks();
        if !locks
            .acquire_lock(&lock, &owner, now, now.plus(self.settings.tokens.lock_ttl))
            .await?
        {
            return Err(AccountError::Conflict);
        }
        let result = self.revoke_and_forget_locked(tenant, account).await;
        if let Err(e) = locks.release_lock(&lock, &owner).await {
            tracing::warn!(tenant_id = %tenant, account_id = %account, error.message = %e,
                "could not release the refresh lock; it expires on its own");
        }
        result
    }

    async fn revoke_and_forget_locked(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<bool, AccountError> {
        let vault = self.ports.vault();
        let secrets = |e: crate::ports::SecretError| AccountError::Secrets(e.to_string());
        let Some(tokens) = vault.get_tokens(tenant, account).await.map_err(secrets)? else {
            return Ok(false);
        };
        let now = self.ports.clock().now();
        let access: Option<SecretString> = if tokens.access_expires_at > now {
            Some(tokens.access_token)
        } else {
            // The pair is thrown away next: a refreshed token is only used to revoke.
            self.ports
                .refresher()
                .refresh(&tokens.refresh_token)
                .await
                .map(|t| t.access_token)
                .ok()
        };
        let revoked = match access {
            Some(token) => match self.ports.auth().revoke(&token).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(tenant_id = %tenant, account_id = %account, error.code = %e.code,
                        upstream_log_id = e.log_id.as_deref().unwrap_or(""),
                        "TikTok did not confirm the revocation; the tokens are deleted anyway");
                    false
                }
            },
            None => false,
        };
        vault
            .remove_tokens(tenant, account)
            .await
            .map_err(secrets)?;
        Ok(revoked)
    }
}
