//! The account routes: connect a TikTok account through OAuth, its health and budgets, and the
//! creator settings a client UI needs to follow TikTok's posting rules.

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

use reelay_domain::ports::Ports;
use reelay_domain::{AccountId, PostMode, TenantId};
use url::Url;

use crate::error::ApiError;
use crate::jobs::{DEFAULT_PAGE, MAX_PAGE, int_param};
use crate::view::{
    account_page_view, account_view, connect_view, connected_view, creator_info_view,
    disconnected_view,
};
use crate::{Deps, json_body, json_response, public_base};

/// `POST /v1/accounts/connect` `{"tiktokAccountId", "mode"?}` → the authorize link.
pub(crate) async fn connect<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
    tenant: &TenantId,
) -> Result<Response<Body>, ApiError> {
    let body = json_body(deps, req)?;
    let redirect = oauth_redirect(deps, req)?;
    let (account_id, mode, return_url) = parse_connect(&body)?;
    let link = deps
        .core
        .connect_account_returning(
            tenant,
            &account_id,
            mode,
            return_url.as_ref().map(Url::as_str),
            &redirect,
        )
        .await?;
    Ok(json_response(200, connect_view(&link).to_string()))
}

/// The OAuth callback's URL, as TikTok must send the creator back to it: under this API's
/// public base ([`public_base`]). The callback, arriving there, derives the same URL, which the
/// code exchange must repeat. Without a base (a direct invoke) connecting is not configured.
fn oauth_redirect<P>(deps: &Deps<P>, req: &Request) -> Result<String, ApiError> {
    let base = public_base(deps, req).ok_or(ApiError::OAuthNotConfigured)?;
    Ok(format!("{base}/v1/accounts/oauth/callback"))
}

/// Longest `returnUrl` accepted.
const MAX_RETURN_URL: usize = 2048;

/// A `returnUrl`: absolute https (http only to a loopback host, for local development), no
/// credentials in it. The creator's browser is sent there after the callback.
fn return_url(raw: &str) -> Result<Url, &'static str> {
    if raw.len() > MAX_RETURN_URL {
        return Err("must be at most 2048 characters");
    }
    let url = Url::parse(raw).map_err(|_| "must be an absolute URL")?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https URL"),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    Ok(url)
}

/// The document says `additionalProperties: false` and a string `mode`: a typo'd field or a mode
/// of the wrong type is refused, never read as the default (direct).
fn parse_connect(body: &Value) -> Result<(AccountId, PostMode, Option<Url>), ApiError> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::Invalid(vec![ApiError::field(
            "",
            "must be an object",
        )]));
    };
    let mut errors: Vec<_> = fields
        .keys()
        .filter(|k| !["tiktokAccountId", "mode", "returnUrl"].contains(&k.as_str()))
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
    let return_url = match fields.get("returnUrl") {
        None => None,
        Some(Value::String(raw)) => return_url(raw)
            .map_err(|why| errors.push(ApiError::field("returnUrl", why)))
            .ok(),
        Some(_) => {
            errors.push(ApiError::field("returnUrl", "must be a string"));
            None
        }
    };
    match (account, mode) {
        (Some(account), Some(mode)) if errors.is_empty() => Ok((account, mode, return_url)),
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// `GET /v1/accounts/oauth/callback?code=…&state=…`: TikTok redirects the creator's browser here;
/// no API key — the single-use `state` authenticates it.
pub(crate) async fn callback<P: Ports>(
    deps: &Deps<P>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let redirect = oauth_redirect(deps, req)?;
    let params = req.query_string_parameters();
    let outcome = deps
        .core
        .oauth_callback_returning(
            params.first("state").unwrap_or(""),
            params.first("code"),
            params.first("error"),
            &redirect,
        )
        .await;
    // A link issued with a returnUrl sends the creator back to the client's app, with the
    // outcome in the query; without one (or with a state we do not know) the answer is JSON.
    let Some(mut back) = outcome
        .return_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
    else {
        let connected = outcome.result?;
        return Ok(json_response(200, connected_view(&connected).to_string()));
    };
    {
        let mut query = back.query_pairs_mut();
        match &outcome.result {
            Ok(connected) => query
                .append_pair("status", "connected")
                .append_pair("tiktokAccountId", connected.account_id.as_str()),
            Err(e) => query
                .append_pair("status", "error")
                .append_pair("error", &ApiError::account_code(e)),
        };
    }
    if let Err(e) = &outcome.result {
        tracing::info!(error.message = %e, "OAuth callback refused; creator sent back to the client");
    }
    Ok(Response::builder()
        .status(302)
        .header("location", back.as_str())
        .header("cache-control", "no-store")
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
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

#[cfg(test)]
mod tests {
    use super::return_url;

    #[test]
    fn a_return_url_is_https_or_loopback_http_without_credentials() {
        for ok in [
            "https://app.example.com/back?x=1",
            "http://localhost:3000/cb",
            "http://127.0.0.1/cb",
        ] {
            assert!(return_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://app.example.com/", "must be an https URL"),
            ("javascript:alert(1)", "must be an https URL"),
            ("https://u:p@app.example.com/", "must not carry credentials"),
            ("https://u@app.example.com/", "must not carry credentials"),
            ("app.example.com/back", "must be an absolute URL"),
        ] {
            assert_eq!(return_url(bad).err(), Some(why), "{bad}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(2048));
        assert!(return_url(&long).is_err());
    }
}
