//! The account routes: connect a TikTok account through OAuth, its health and budgets, and the
//! creator settings a client UI needs to follow TikTok's posting rules.

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

use reelay_domain::ports::Ports;
use reelay_domain::{AccountId, PostMode, TenantId};

use crate::error::ApiError;
use crate::jobs::{DEFAULT_PAGE, MAX_PAGE, int_param};
use crate::view::{
    account_page_view, account_view, connect_view, connected_view, creator_info_view,
    disconnected_view,
};
use crate::{Deps, json_body, json_response};

/// `POST /v1/accounts/connect` `{"tiktokAccountId", "mode"?}` → the authorize link.
pub(crate) async fn connect<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
) -> Result<Response<Body>, ApiError> {
    let body = json_body(deps, req)?;
    if !deps.oauth_configured {
        return Err(ApiError::OAuthNotConfigured);
    }
    let (account_id, mode) = parse_connect(&body)?;
    let link = deps.core.connect_account(tenant, &account_id, mode).await?;
    Ok(json_response(200, connect_view(&link).to_string()))
}

/// The document says `additionalProperties: false` and a string `mode`: a typo'd field or a mode
/// of the wrong type is refused, never read as the default (direct).
fn parse_connect(body: &Value) -> Result<(AccountId, PostMode), ApiError> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::Invalid(vec![ApiError::field(
            "",
            "must be an object",
        )]));
    };
    let mut errors: Vec<_> = fields
        .keys()
        .filter(|k| !["tiktokAccountId", "mode"].contains(&k.as_str()))
        .map(|k| ApiError::field(k, "is not a known field"))
        .collect();
    let account = match fields.get("tiktokAccountId") {
        Some(Value::String(raw)) => AccountId::parse(raw.as_str())
            .map_err(|e| errors.push(ApiError::field("tiktokAccountId", e.reason)))
            .ok(),
        Some(_) => {
            errors.push(ApiError::field("tiktokAccountId", "must be a string"));
            None
        }
        None => {
            errors.push(ApiError::field("tiktokAccountId", "is required"));
            None
        }
    };
    let mode = match fields.get("mode") {
        None => Some(PostMode::Direct),
        Some(Value::String(m)) if m == "direct" => Some(PostMode::Direct),
        Some(Value::String(m)) if m == "draft" => Some(PostMode::Draft),
        Some(_) => {
            errors.push(ApiError::field("mode", "must be direct or draft"));
            None
        }
    };
    match (account, mode) {
        (Some(account), Some(mode)) if errors.is_empty() => Ok((account, mode)),
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// `GET /v1/accounts/oauth/callback?code=…&state=…`: TikTok redirects the creator's browser here;
/// no API key — the single-use `state` authenticates it.
pub(crate) async fn callback<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let params = req.query_string_parameters();
    let connected = deps
        .core
        .oauth_callback(
            params.first("state").unwrap_or(""),
            params.first("code"),
            params.first("error"),
        )
        .await?;
    Ok(json_response(200, connected_view(&connected).to_string()))
}

/// An account id from the path; one that cannot exist is simply not found.
fn account_id(raw: &str) -> Result<AccountId, ApiError> {
    AccountId::parse(raw).map_err(|_| ApiError::AccountNotFound)
}

/// `GET /v1/accounts?limit=&after=`: the tenant's accounts by id, each with its health and the
/// budgets left now; `nextAfter` in the answer continues the listing.
pub(crate) async fn list<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
) -> Result<Response<Body>, ApiError> {
    let params = req.query_string_parameters();
    let mut errors = Vec::new();
    let limit = int_param(
        req,
        "limit",
        1..=MAX_PAGE,
        "must be an integer from 1 to 100",
        &mut errors,
    );
    let after = params.first("after").and_then(|raw| {
        AccountId::parse(raw)
            .map_err(|e| errors.push(ApiError::field("after", e.reason)))
            .ok()
    });
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let limit = limit.unwrap_or(DEFAULT_PAGE) as usize;
    let page = deps
        .core
        .list_accounts(tenant, after.as_ref(), limit)
        .await?;
    Ok(json_response(200, account_page_view(&page).to_string()))
}

/// `GET /v1/accounts/{id}`: connection health and the budgets left now.
pub(crate) async fn status<P: Ports>(
    deps: &Deps<P>,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let status = deps
        .core
        .account_status(tenant, &account_id(raw_id)?)
        .await?;
    Ok(json_response(200, account_view(&status).to_string()))
}

/// `DELETE /v1/accounts/{id}`: disconnects the account (see `Core::disconnect_account`). Sending
/// it again finishes what a lost answer left undone.
pub(crate) async fn disconnect<P: Ports>(
    deps: &Deps<P>,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let done = deps
        .core
        .disconnect_account(tenant, &account_id(raw_id)?)
        .await?;
    Ok(json_response(200, disconnected_view(&done).to_string()))
}

/// `GET /v1/accounts/{id}/creator-info`.
pub(crate) async fn creator_info<P: Ports>(
    deps: &Deps<P>,
    tenant: &TenantId,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let account = account_id(raw_id)?;
    let info = deps.core.creator_info(tenant, &account).await?;
    Ok(json_response(
        200,
        creator_info_view(&account, &info).to_string(),
    ))
}
