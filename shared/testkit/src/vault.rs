//! [`MemVault`]: per-account OAuth tokens in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use reelay_domain::ports::{SecretError, TokenSet, TokenVault};
use reelay_domain::{AccountId, TenantId};

use crate::hook::{Hook, HookSlot, calls};

/// Token sets per account. Like the Secrets Manager adapter, it refuses to store an empty refresh
/// token (`SecretError::EmptyRefreshToken`): that would lose the account.
#[derive(Debug, Clone, Default)]
pub struct MemVault {
    inner: Arc<Mutex<VaultState>>,
    hook: HookSlot,
}

#[derive(Debug, Default)]
struct VaultState {
    tokens: HashMap<(TenantId, AccountId), TokenSet>,
    gets: u64,
    puts: u64,
}

impl MemVault {
    pub fn new() -> Self {
        Self::default()
    }

    /// This vault (same tokens) with `hook` awaited before every call.
    pub fn with_hook(&self, hook: Arc<dyn Hook>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            hook: HookSlot::new(hook),
        }
    }

    fn state(&self) -> MutexGuard<'_, VaultState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored set, for assertions.
    pub fn tokens(&self, tenant: &TenantId, account: &AccountId) -> Option<TokenSet> {
        self.state()
            .tokens
            .get(&(tenant.clone(), account.clone()))
            .cloned()
    }

    /// Removes an account's tokens (a disconnected account).
    pub fn remove(&self, tenant: &TenantId, account: &AccountId) -> Option<TokenSet> {
        self.state()
            .tokens
            .remove(&(tenant.clone(), account.clone()))
    }

    /// Reads and writes that reached the vault: `(gets, puts)`.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.state();
        (s.gets, s.puts)
    }
}

impl TokenVault for MemVault {
    async fn get_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<TokenSet>, SecretError> {
        let pass = self.hook.pass(calls::VAULT_GET).await;
        let mut s = self.state();
        s.gets += 1;
        match pass {
            Ok(None) => Ok(s.tokens.get(&(tenant.clone(), account.clone())).cloned()),
            Ok(Some(fault)) | Err(fault) => Err(fault.secret_error(calls::VAULT_GET)),
        }
    }

    async fn put_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        tokens: &TokenSet,
    ) -> Result<(), SecretError> {
        let after = match self.hook.pass(calls::VAULT_PUT).await {
            Ok(after) => after,
            Err(fault) => return Err(fault.secret_error(calls::VAULT_PUT)),
        };
        tokens.check_storable()?;
        {
            let mut s = self.state();
            s.puts += 1;
            s.tokens
                .insert((tenant.clone(), account.clone()), tokens.clone());
        }
        match after {
            Some(fault) => Err(fault.secret_error(calls::VAULT_PUT)),
            None => Ok(()),
        }
    }

    async fn remove_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<(), SecretError> {
        let after = match self.hook.pass(calls::VAULT_REMOVE).await {
            Ok(after) => after,
            Err(fault) => return Err(fault.secret_error(calls::VAULT_REMOVE)),
        };
        self.remove(tenant, account);
        match after {
            Some(fault) => Err(fault.secret_error(calls::VAULT_REMOVE)),
            None => Ok(()),
        }
    }
}
