//! The account flows: connecting a TikTok account through OAuth, its status and budgets,
//! creator_info for a client's posting UI, and a creator removing the app's access.

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::account::{Account, AccountHealth};
use crate::budget::BudgetKind;
use crate::compliance::CreatorInfo;
use crate::ids::{AccountId, TenantId};
use crate::job::PostMode;
use crate::lifecycle::{Event, JobState};
use crate::ports::{AccountStore, Clock, Entropy, LockStore, Ports, StoreError, TokenVault};
use crate::time::UtcTime;
use crate::upstream::{AuthApi, PublishApi};

use super::{Advance, Core};

/// Prefix of the single-use lease an OAuth `state` is stored as (hashed, never in clear).
pub const OAUTH_STATE_LOCK_PREFIX: &str = "oauth-state#";

/// An authorize link for a creator to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectLink {
    pub account_id: AccountId,
    pub authorize_url: String,
    pub expires_at: UtcTime,
}

/// A completed connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub tenant: TenantId,
    pub account_id: AccountId,
    pub scopes: Vec<String>,
    /// Held jobs of the account looked at again now that it is connected.
    pub lifted: usize,
}

/// What an OAuth callback did, and where the creator's browser goes next (the link's return URL,
/// if it had one and the state was valid).
#[derive(Debug)]
pub struct CallbackOutcome {
    pub return_url: Option<String>,
    pub result: Result<Connected, AccountError>,
}

/// One budget of an account, as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLeft {
    pub kind: BudgetKind,
    pub remaining: u32,
    pub limit: u32,
    pub window_secs: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountStatus {
    pub account: Account,
    pub budgets: Vec<BudgetLeft>,
    /// Drafts delivered to the creator's TikTok inbox and not yet finished there (draft jobs
    /// in `submitted`, TikTok's `SEND_TO_USER_INBOX`): TikTok refuses new drafts while too many
    /// wait.
    pub pending_drafts: usize,
}

/// One page of a tenant's accounts.
#[derive(Debug, Clone)]
pub struct AccountPage {
    pub accounts: Vec<AccountStatus>,
    /// The last account id of this page when more follow: the next page starts after it.
    pub next_after: Option<AccountId>,
}

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("account not found")]
    NotFound,
    #[error("a concurrent change; try again")]
    Conflict,
    /// The OAuth `state` is unknown, used or expired.
    #[error("invalid or expired OAuth state")]
    OAuthState,
    #[error("authorisation refused: {0}")]
    OAuthDenied(String),
    /// The creator who authorised is not the one the account was first connected as: pending
    /// posts must never go to another creator.
    #[error("the account is connected to another TikTok creator")]
    OtherCreator,
    /// The creator is already connected as another account (of any tenant) of this app.
    #[error("this TikTok creator is already connected as another account")]
    CreatorTaken,
    #[error("the account has no valid TikTok authorisation: {0}")]
    NotConnected(String),
    #[error("budget exhausted until {retry_at}")]
    Throttled { retry_at: UtcTime },
    #[error("upstream error {code}")]
    Upstream { code: String, message: String },
    #[error("secrets store failure: {0}")]
    Secrets(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a posting UI can show for an account.
#[derive(Debug, Clone, PartialEq)]
pub enum CreatorSettings {
    /// TikTok's creator_info, asked now.
    Queried(CreatorInfo),
    /// Connected for drafts only: no direct post; the creator sets privacy and interactions in
    /// the TikTok app when finishing the draft. Nothing was asked of TikTok.
    DraftsOnly,
}

/// [`AccountError`] under the name the creator-info route uses.
pub type CreatorInfoError = AccountError;

fn state_lock(state: &str) -> String {
    format!(
        "{OAUTH_STATE_LOCK_PREFIX}{}",
        hex::encode(Sha256::digest(state.as_bytes()))
    )
}

/// The budgets an account's status shows.
const ACCOUNT_BUDGETS: [BudgetKind; 5] = [
    BudgetKind::TikTokInit,
    BudgetKind::TikTokStatus,
    BudgetKind::TikTokCreatorInfo,
    BudgetKind::DirectPostsDaily,
    BudgetKind::PendingDrafts,
];

impl<P: Ports> Core<P> {
    /// Creates the account (not yet connected) if new, and an authorize link whose single-use
    /// `state` binds the callback to it. `redirect_uri` is the API's callback URL as this
    /// request reached it; the callback, arriving there, passes the same URL back.
    pub async fn connect_account(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
        mode: PostMode,
        redirect_uri: &str,
    ) -> Result<ConnectLink, AccountError> {
        self.connect_account_returning(tenant, account_id, mode, None, redirect_uri)
            .await
    }

    /// [`Self::connect_account`], binding `return_url` (an absolute URL without spaces, checked
    /// by the caller) to the single-use state: after the callback the creator's browser is sent
    /// there, so it lands back in the client's app.
    pub async fn connect_account_returning(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
        mode: PostMode,
        return_url: Option<&str>,
        redirect_uri: &str,
    ) -> Result<ConnectLink, AccountError> {
        let accounts = self.ports.accounts();
        if accounts.get_account(tenant, account_id).await?.is_none() {
            match accounts
                .put_account(&Account::new(tenant.clone(), account_id.clone()))
                .await
            {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let clock = self.ports.clock();
        let now = clock.now();
        let state = format!("{:032x}{:032x}", clock.random_u128(), clock.random_u128());
        let expires_at = now.plus(self.settings.ingest.oauth_state_ttl);
        let group = Account::message_group(tenant, account_id);
        let owner = match return_url {
            Some(url) if !url.is_empty() && !url.contains(char::is_whitespace) => {
                format!("{group} {url}")
            }
            _ => group,
        };
        if !self
            .ports
            .locks()
            .acquire_lock(&state_lock(&state), &owner, now, expires_at)
            .await?
        {
            return Err(AccountError::Conflict);
        }
        let authorize_url = self
            .ports
            .auth()
            .authorize_url(&state, mode, redirect_uri)
            .map_err(|e| AccountError::Upstream {
                code: e.code,
                message: e.message,
            })?;
        tracing::info!(account_id = %account_id, "authorize link issued");
        Ok(ConnectLink {
            account_id: account_id.clone(),
            authorize_url,
            expires_at,
        })
    }

    /// TikTok sent the creator back: the single-use `state` names the account; the code becomes
    /// tokens (stored before the account says it is connected), and the account's held jobs are
    /// looked at again. The creator is pinned: an account first connected as one creator is
    /// never reconnected as another, and one creator is one account; either refusal stores
    /// nothing. `redirect_uri` is the callback's own URL (the one the link sent TikTok).
    pub async fn oauth_callback(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
        redirect_uri: &str,
    ) -> Result<Connected, AccountError> {
        self.oauth_callback_returning(state, code, error, redirect_uri)
            .await
            .result
    }

    /// [`Self::oauth_callback`] with the return URL the link was issued with (known once the
    /// state is valid, so also for a refusal after that).
    pub async fn oauth_callback_returning(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
        redirect_uri: &str,
    ) -> CallbackOutcome {
        let mut return_url = None;
        let result = self
            .finish_oauth(state, code, error, redirect_uri, &mut return_url)
            .await;
        CallbackOutcome { return_url, result }
    }

    async fn finish_oauth(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
        redirect_uri: &str,
        return_url: &mut Option<String>,
    ) -> Result<Connected, AccountError> {
        if state.is_empty() || state.len() > 256 {
            return Err(AccountError::OAuthState);
        }
        let now = self.ports.clock().now();
        let Some(owner) = self
            .ports
            .locks()
            .take_lock(&state_lock(state), now)
            .await?
        else {
            return Err(AccountError::OAuthState);
        };
        let (group, url) = match owner.split_once(' ') {
            Some((group, url)) => (group.to_owned(), Some(url.to_owned())),
            None => (owner, None),
        };
        *return_url = url;
        let Some((tenant, account_id)) = group
            .split_once(':')
            .and_then(|(t, a)| Some((TenantId::parse(t).ok()?, AccountId::parse(a).ok()?)))
        else {
            return Err(AccountError::OAuthState);
        };
        if let Some(error) = error {
            tracing::info!(account_id = %account_id, oauth.error = %error, "creator declined or TikTok refused");
            return Err(AccountError::OAuthDenied(error.chars().take(64).collect()));
        }
        let code = code
            .filter(|c| !c.is_empty() && c.len() <= 1024)
            .ok_or(AccountError::OAuthState)?;
        let tokens = self
            .ports
            .auth()
            .exchange_code(code, redirect_uri)
            .await
            .map_err(|e| AccountError::Upstream {
                code: e.code,
                message: e.message,
            })?;
        let accounts = self.ports.accounts();
        let stored = accounts.get_account(&tenant, &account_id).await?;
        let pinned = stored
            .as_ref()
            .and_then(|a| a.open_id.as_deref())
            .filter(|o| !o.is_empty());
        if pinned.is_some_and(|pinned| pinned != tokens.open_id) {
            tracing::warn!(tenant_id = %tenant, account_id = %account_id,
                "reconnect as another creator refused");
            return Err(AccountError::OtherCreator);
        }
        if let Some(owner) = accounts.account_for_open_id(&tokens.open_id).await?
            && owner != (tenant.clone(), account_id.clone())
        {
            tracing::warn!(tenant_id = %tenant, account_id = %account_id,
                "creator already connected as another account");
            return Err(AccountError::CreatorTaken);
        }
        self.ports
            .vault()
            .put_tokens(&tenant, &account_id, &tokens)
            .await
            .map_err(|e| AccountError::Secrets(e.to_string()))?;
        let mut account =
            stored.unwrap_or_else(|| Account::new(tenant.clone(), account_id.clone()));
        account.health = AccountHealth::Active;
        account.health_reason = None;
        account.open_id = Some(tokens.open_id.clone());
        account.scopes = tokens.scopes.clone();
        account.connected_at = Some(now);
        account.authorization_expires_at = Some(tokens.refresh_expires_at);
        accounts.put_account(&account).await?;
        tracing::info!(tenant_id = %tenant, account_id = %account_id, "account connected");
        let lifted = self.lift_holds(&tenant, &account_id).await?;
        Ok(Connected {
            tenant,
            account_id,
            scopes: tokens.scopes,
            lifted,
        })
    }

    /// The account's ready jobs that wait for it (a hold without an end) are looked at now:
    /// the reconciler's gate then lets them go, instead of at their next back-off.
    async fn lift_holds(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<usize, StoreError> {
        let now = self.ports.clock().now();
        let mut lifted = 0;
        for job in self.jobs_in(tenant, account, JobState::Ready).await? {
            if job.hold.as_ref().is_some_and(|h| h.until.is_none()) {
                let advance = self
                    .advance_loaded(job, &Event::Deferred { until: now })
                    .await?;
                lifted += usize::from(advance.written());
            }
        }
        Ok(lifted)
    }

    /// Connection health and the budgets left now.
    pub async fn account_status(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
    ) -> Result<AccountStatus, AccountError> {
        let account = self
            .ports
            .accounts()
            .get_account(tenant, account_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        Ok(self.status_of(account).await?)
    }

    /// An account with its budgets left now and its drafts waiting for the creator.
    async fn status_of(&self, account: Account) -> Result<AccountStatus, StoreError> {
        let budgets = self.budgets_left(&account).await?;
        let pending_drafts = self
            .jobs_in(&account.tenant_id, &account.account_id, JobState::Submitted)
            .await?
            .iter()
            .filter(|j| j.post.mode == PostMode::Draft)
            .count();
        Ok(AccountStatus {
            account,
            budgets,
            pending_drafts,
        })
    }

    /// A page of the tenant's accounts by id, after `after`, each with its budgets left now.
    /// Budgets are read for the page only, so a tenant with thousands of accounts pages them.
    pub async fn list_accounts(
        &self,
        tenant: &TenantId,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<AccountPage, StoreError> {
        let mut all = self.ports.accounts().accounts(tenant).await?;
        all.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        let mut rest = all
            .into_iter()
            .filter(|a| after.is_none_or(|after| a.account_id > *after))
            .peekable();
        let mut accounts = Vec::new();
        while accounts.len() < limit.max(1) {
            let Some(account) = rest.next() else { break };
            accounts.push(self.status_of(account).await?);
        }
        let next_after = rest
            .peek()
            .and_then(|_| accounts.last())
            .map(|s| s.account.account_id.clone());
        Ok(AccountPage {
            accounts,
            next_after,
        })
    }

    /// The account's posting budgets left now (peeked, nothing taken).
    pub async fn budgets_left(&self, account: &Account) -> Result<Vec<BudgetLeft>, StoreError> {
        let scope = Account::message_group(&account.tenant_id, &account.account_id);
        let peeked = self.peek_budgets(&scope, &ACCOUNT_BUDGETS).await?;
        Ok(peeked
            .into_iter()
            .map(|(kind, window, admission)| BudgetLeft {
                kind,
                remaining: admission.units_left(),
                limit: window.limit,
                window_secs: window.period.as_secs(),
            })
            .collect())
    }

    /// What TikTok's posting UX rules need: nickname, privacy options (shown with no default),
    /// interaction toggles, the longest allowed video. Charged to the account's budget. An
    /// account connected for drafts only is answered without a call: TikTok's creator_info
    /// needs `video.publish`, and in a draft the creator chooses those settings in the app.
    pub async fn creator_info(
        &self,
        tenant: &TenantId,
        account_id: &AccountId,
    ) -> Result<CreatorSettings, AccountError> {
        let account = self
            .ports
            .accounts()
            .get_account(tenant, account_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        if account.health == AccountHealth::Active && account.drafts_only() {
            return Ok(CreatorSettings::DraftsOnly);
        }
        let scope = Account::message_group(tenant, account_id);
        if let Some(denied) = self
            .take_budgets(&scope, &[BudgetKind::TikTokCreatorInfo], 1)
            .await?
        {
            return Err(AccountError::Throttled {
                retry_at: denied.retry_at,
            });
        }
        let token = self
            .fresh_token(tenant, account_id, None)
            .await
            .map_err(|e| AccountError::NotConnected(e.to_string()))?;
        self.ports
            .publish()
            .creator_info(&token)
            .await
            .map(CreatorSettings::Queried)
            .map_err(|e| AccountError::Upstream {
                code: e.code,
                message: e.message,
            })
    }

    /// The creator revoked access (the token is already dead): mark the account and park its
    /// pending jobs with the reason in view. `None` when the user is not ours.
    pub async fn authorization_removed(
        &self,
        open_id: &str,
        reason: i64,
    ) -> Result<Option<usize>, StoreError> {
        let Some((tenant, account)) = self.ports.accounts().account_for_open_id(open_id).await?
        else {
            tracing::info!(reason, "authorization removed for a user we do not know");
            return Ok(None);
        };
        tracing::Span::current().record("account_id", tracing::field::display(&account));
        self.ports
            .accounts()
            .set_health(
                &tenant,
                &account,
                AccountHealth::NeedsReauth,
                Some(&format!("authorization_removed:{reason}")),
            )
            .await?;
        let held = Event::Held {
            reason: "needs_reauth".into(),
            until: None,
        };
        let mut parked = 0;
        // Renders go on (they need no TikTok token); the publisher's gate holds those jobs
        // once they are ready.
        for state in [JobState::Ready, JobState::PublishQueued] {
            for job in self.jobs_in(&tenant, &account, state).await? {
                if let Advance::Moved(_) | Advance::Rescheduled(_) =
                    self.advance_loaded(job, &held).await?
                {
                    parked += 1;
                }
            }
        }
        tracing::warn!(
            reason,
            parked,
            "authorization removed: account needs re-authorisation"
        );
        Ok(Some(parked))
    }
}
