//! Account routes: connect a TikTok account through OAuth, see its health and budgets, and read
//! the creator settings a client UI needs to follow TikTok's posting rules.

use std::time::Duration;

use lambda_http::{Body, Request, RequestExt, Response};
use reelay_aws::{TokenRefreshConfig, fresh_token};
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::budget::{BudgetKind, Limits};
use reelay_domain::ports::{AccountStore, Clock, StoreError, TokenRefresher, TokenVault};
use reelay_domain::upstream::{AuthApi, PublishApi};
use reelay_domain::usecase;
use reelay_domain::{AccountId, FieldError, PostMode, TenantId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http_handler::{ApiError, json_response};

/// What the account routes need beyond the job routes.
#[derive(Debug)]
pub struct AccountDeps<V, T, U, P> {
    pub vault: V,
    pub refresher: T,
    pub auth: U,
    pub publish: P,
    pub limits: Limits,
    pub tokens: TokenRefreshConfig,
    /// How long an authorize link stays usable.
    pub oauth_state_ttl: Duration,
    /// False when no public base URL is configured: TikTok needs a fixed redirect URI.
    pub oauth_configured: bool,
}

fn state_lock(state: &str) -> String {
    format!(
        "oauth-state#{}",
        hex::encode(Sha256::digest(state.as_bytes()))
    )
}

fn binding(tenant: &TenantId, account: &AccountId) -> String {
    Account::message_group(tenant, account)
}

fn account_view(account: &Account, budgets: Value) -> Value {
    json!({
        "tiktokAccountId": account.account_id.as_str(),
        "health": account.health,
        "healthReason": account.health_reason,
        "blockedUntil": account.blocked_until.map(|t| t.to_rfc3339()),
        "scopes": account.scopes,
        "connectedAt": account.connected_at.map(|t| t.to_rfc3339()),
        "budgets": budgets,
    })
}

/// `POST /v1/accounts/connect` `{"tiktokAccountId": "..."}` → the TikTok authorize URL. The
/// account is created (not yet connected) if new; the `state` binds the callback to it.
pub async fn connect<A, C, V, T, U, P>(
    accounts: &A,
    clock: &C,
    deps: &AccountDeps<V, T, U, P>,
    tenant: &TenantId,
    body: &Value,
) -> Result<Response<Body>, ApiError>
where
    A: AccountStore,
    C: Clock,
    U: AuthApi,
{
    if !deps.oauth_configured {
        return Err(ApiError::OAuthNotConfigured);
    }
    // The document says `additionalProperties: false` and a string `mode`: a typo'd field or a
    // mode of the wrong type must be refused, not silently read as the default (direct).
    let Some(fields) = body.as_object() else {
        return Err(ApiError::Invalid(vec![field("", "must be an object")]));
    };
    let unknown: Vec<FieldError> = fields
        .keys()
        .filter(|k| !["tiktokAccountId", "mode"].contains(&k.as_str()))
        .map(|k| field(k, "is not a known field"))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Invalid(unknown));
    }
    let account_id = match body
        .get("tiktokAccountId")
        .and_then(Value::as_str)
        .map(AccountId::parse)
    {
        Some(Ok(id)) => id,
        Some(Err(e)) => return Err(ApiError::Invalid(vec![field("tiktokAccountId", e.reason)])),
        None => {
            return Err(ApiError::Invalid(vec![field(
                "tiktokAccountId",
                "is required",
            )]));
        }
    };
    let mode = match body.get("mode") {
        None => PostMode::Direct,
        Some(Value::String(m)) if m == "direct" => PostMode::Direct,
        Some(Value::String(m)) if m == "draft" => PostMode::Draft,
        Some(_) => {
            return Err(ApiError::Invalid(vec![field(
                "mode",
                "must be direct or draft",
            )]));
        }
    };
    if accounts.get_account(tenant, &account_id).await?.is_none() {
        match accounts
            .put_account(&Account::new(tenant.clone(), account_id.clone()))
            .await
        {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let now = clock.now();
    let state = hex::encode(rand::random::<[u8; 32]>());
    let expires = now.plus(deps.oauth_state_ttl);
    if !accounts
        .acquire_lock(
            &state_lock(&state),
            &binding(tenant, &account_id),
            now,
            expires,
        )
        .await?
    {
        return Err(ApiError::Conflict);
    }
    let url = deps
        .auth
        .authorize_url(&state, mode)
        .map_err(|e| ApiError::Upstream(e.code, e.message))?;
    tracing::info!(account_id = %account_id, "authorize link issued");
    Ok(json_response(
        200,
        json!({ "tiktokAccountId": account_id.as_str(), "authorizeUrl": url, "expiresAt": expires.to_rfc3339() })
            .to_string(),
    ))
}

/// `GET /v1/accounts/oauth/callback?code=…&state=…` (TikTok redirects the creator's browser here;
/// no API key — the single-use `state` authenticates it).
pub async fn callback<A, C, V, T, U, P>(
    accounts: &A,
    clock: &C,
    deps: &AccountDeps<V, T, U, P>,
    req: &Request,
) -> Result<Response<Body>, ApiError>
where
    A: AccountStore,
    C: Clock,
    V: TokenVault,
    U: AuthApi,
{
    let params = req.query_string_parameters();
    let state = params.first("state").unwrap_or("");
    if state.is_empty() || state.len() > 256 {
        return Err(ApiError::OAuthState);
    }
    let now = clock.now();
    let Some(owner) = accounts.take_lock(&state_lock(state), now).await? else {
        return Err(ApiError::OAuthState);
    };
    let Some((tenant, account_id)) = owner
        .split_once(':')
        .and_then(|(t, a)| Some((TenantId::parse(t).ok()?, AccountId::parse(a).ok()?)))
    else {
        return Err(ApiError::OAuthState);
    };
    if let Some(error) = params.first("error") {
        tracing::info!(account_id = %account_id, oauth.error = %error, "creator declined or TikTok refused");
        return Err(ApiError::OAuthDenied(error.chars().take(64).collect()));
    }
    let code = params
        .first("code")
        .filter(|c| !c.is_empty() && c.len() <= 1024)
        .ok_or(ApiError::OAuthState)?;
    let tokens = deps
        .auth
        .exchange_code(code)
        .await
        .map_err(|e| ApiError::Upstream(e.code, e.message))?;
    deps.vault
        .put_tokens(&tenant, &account_id, &tokens)
        .await
        .map_err(|e| ApiError::Secrets(e.to_string()))?;
    let mut account = accounts
        .get_account(&tenant, &account_id)
        .await?
        .unwrap_or_else(|| Account::new(tenant.clone(), account_id.clone()));
    account.health = AccountHealth::Active;
    account.health_reason = None;
    account.open_id = Some(tokens.open_id.clone());
    account.scopes = tokens.scopes.clone();
    account.connected_at = Some(now);
    accounts.put_account(&account).await?;
    tracing::info!(tenant_id = %tenant, account_id = %account_id, "account connected");
    Ok(json_response(
        200,
        json!({ "tiktokAccountId": account_id.as_str(), "health": "active", "scopes": tokens.scopes }).to_string(),
    ))
}

/// `GET /v1/accounts/{id}`: connection health and the budgets left now.
pub async fn get<A, C, V, T, U, P>(
    accounts: &A,
    clock: &C,
    deps: &AccountDeps<V, T, U, P>,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Response<Body>, ApiError>
where
    A: AccountStore,
    C: Clock,
{
    let account_id = AccountId::parse(raw_id).map_err(|_| ApiError::AccountNotFound)?;
    let account = accounts
        .get_account(tenant, &account_id)
        .await?
        .ok_or(ApiError::AccountNotFound)?;
    let scope = binding(tenant, &account_id);
    let now = clock.now();
    let mut budgets = serde_json::Map::new();
    for kind in [
        BudgetKind::TikTokInit,
        BudgetKind::TikTokStatus,
        BudgetKind::TikTokCreatorInfo,
        BudgetKind::DirectPostsDaily,
        BudgetKind::PendingDrafts,
    ] {
        let window = deps.limits.window(kind);
        let left = accounts.budget_remaining(&scope, kind, window, now).await?;
        budgets.insert(
            kind.as_str().into(),
            json!({ "remaining": left, "limit": window.limit, "windowSeconds": window.period.as_secs() }),
        );
    }
    Ok(json_response(
        200,
        account_view(&account, Value::Object(budgets)).to_string(),
    ))
}

/// `GET /v1/accounts/{id}/creator-info`: what TikTok's posting UX rules need — nickname, the
/// privacy options (to show with no default), interaction toggles, the longest allowed video.
pub async fn creator_info<A, C, V, T, U, P>(
    accounts: &A,
    clock: &C,
    deps: &AccountDeps<V, T, U, P>,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Response<Body>, ApiError>
where
    A: AccountStore,
    C: Clock,
    V: TokenVault,
    T: TokenRefresher,
    P: PublishApi,
{
    let account_id = AccountId::parse(raw_id).map_err(|_| ApiError::AccountNotFound)?;
    accounts
        .get_account(tenant, &account_id)
        .await?
        .ok_or(ApiError::AccountNotFound)?;
    let now = clock.now();
    let scope = binding(tenant, &account_id);
    if let Some(retry_at) = usecase::take_budgets(
        accounts,
        &scope,
        &[BudgetKind::TikTokCreatorInfo],
        &deps.limits,
        now,
    )
    .await?
    {
        return Err(ApiError::Throttled { retry_at });
    }
    let token = fresh_token(
        accounts,
        &deps.vault,
        &deps.refresher,
        clock,
        tenant,
        &account_id,
        &deps.tokens,
    )
    .await
    .map_err(|e| ApiError::NotConnected(e.to_string()))?;
    let info = deps
        .publish
        .creator_info(&token)
        .await
        .map_err(|e| ApiError::Upstream(e.code, e.message))?;
    Ok(json_response(
        200,
        json!({
            "tiktokAccountId": account_id.as_str(),
            "nickname": info.nickname,
            "username": info.username,
            "privacyLevelOptions": info.privacy_level_options,
            "privacyLevelDefault": Value::Null,
            "commentDisabled": info.comment_disabled,
            "duetDisabled": info.duet_disabled,
            "stitchDisabled": info.stitch_disabled,
            "maxVideoPostDurationSec": info.max_video_post_duration_sec,
            "canPost": info.cannot_post_reason.is_none(),
            "cannotPostReason": info.cannot_post_reason,
        })
        .to_string(),
    ))
}

fn field(name: &str, message: &str) -> FieldError {
    FieldError {
        field: name.into(),
        message: message.into(),
    }
}
