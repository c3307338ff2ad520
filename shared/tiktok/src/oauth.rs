use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    client::{TikTokClient, log_call},
    error::{TikTokError, classify_response},
    types::ApiAck,
};

/// Tokens from `oauth/token`. Persist `refresh_token` atomically with `access_token` on every refresh:
/// refresh tokens rotate and the old one dies at once.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// Remaining lifetime in seconds (2 h in the newer docs, 24 h in the older).
    pub expires_in: u64,
    pub refresh_token: SecretString,
    /// Remaining lifetime counted from first issuance, not from this refresh.
    pub refresh_expires_in: u64,
    pub open_id: String,
    /// Comma-separated scopes actually granted.
    pub scope: String,
    pub token_type: String,
    pub log_id: Option<String>,
}

impl TokenSet {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

#[derive(Deserialize)]
struct RawToken {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
    refresh_token: String,
    #[serde(default)]
    refresh_expires_in: u64,
    #[serde(default)]
    open_id: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    token_type: String,
}

impl TikTokClient {
    /// The browser authorize URL; `scopes` are joined with commas, `state` must be unguessable and checked
    /// on the callback, `redirect_uri` one of the app's registered redirect URIs.
    pub fn authorize_url(
        &self,
        scopes: &[&str],
        state: &str,
        redirect_uri: &str,
    ) -> Result<String, TikTokError> {
        let base = format!(
            "{}/v2/auth/authorize/",
            self.cfg.auth_base_url.trim_end_matches('/')
        );
        let mut url = url::Url::parse(&base).map_err(|e| TikTokError::Config(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("client_key", &self.cfg.client_key)
            .append_pair("response_type", "code")
            .append_pair("scope", &scopes.join(","))
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        Ok(url.into())
    }

    /// `authorization_code` grant; `redirect_uri` must be the authorize link's.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
    ) -> Result<TokenSet, TikTokError> {
        let mut form = vec![
            ("client_key", self.cfg.client_key.as_str()),
            ("client_secret", self.cfg.client_secret.expose_secret()),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = code_verifier {
            form.push(("code_verifier", v));
        }
        self.token_call("oauth/token (authorization_code)", &form)
            .await
    }

    /// `refresh_token` grant. The returned refresh token replaces the one sent.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, TikTokError> {
        let form = [
            ("client_key", self.cfg.client_key.as_str()),
            ("client_secret", self.cfg.client_secret.expose_secret()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        self.token_call("oauth/token (refresh_token)", &form).await
    }

    /// `oauth/revoke` of an access token (the creator's authorisation is removed).
    pub async fn revoke(&self, access_token: &SecretString) -> Result<ApiAck, TikTokError> {
        const EP: &str = "oauth/revoke";
        let form = [
            ("client_key", self.cfg.client_key.as_str()),
            ("client_secret", self.cfg.client_secret.expose_secret()),
            ("token", access_token.expose_secret()),
        ];
        let raw = self
            .execute(EP, self.form(EP, "/v2/oauth/revoke/", &form))
            .await?;
        let value: serde_json::Value = if raw.body.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_slice(&raw.body).map_err(|e| TikTokError::Decode {
                endpoint: EP,
                http_status: raw.status,
                log_id: raw.header_log_id.clone(),
                detail: e.to_string(),
            })?
        };
        if let Some(err) = oauth_error(EP, &value, raw.status, raw.header_log_id.as_deref()) {
            return Err(err);
        }
        let log_id = body_log_id(&value).or(raw.header_log_id);
        log_call(EP, raw.status, Some("ok"), log_id.as_deref(), None);
        if !(200..300).contains(&raw.status) {
            return Err(TikTokError::Decode {
                endpoint: EP,
                http_status: raw.status,
                log_id,
                detail: "non-2xx without an error body".into(),
            });
        }
        Ok(ApiAck { log_id })
    }

    fn form(
        &self,
        _ep: &'static str,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        self.http
            .post(self.api_url(path))
            .header(reqwest::header::CACHE_CONTROL, "no-cache")
            .form(form)
    }

    async fn token_call(
        &self,
        endpoint: &'static str,
        form: &[(&str, &str)],
    ) -> Result<TokenSet, TikTokError> {
        let raw = self
            .execute(endpoint, self.form(endpoint, "/v2/oauth/token/", form))
            .await?;
        decode_token_response(endpoint, raw.status, &raw.body, raw.header_log_id)
    }
}

/// Decodes an `oauth/token` body whatever the HTTP status (OAuth errors may come with HTTP 200).
pub fn decode_token_response(
    endpoint: &'static str,
    http_status: u16,
    body: &[u8],
    header_log_id: Option<String>,
) -> Result<TokenSet, TikTokError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| TikTokError::Decode {
            endpoint,
            http_status,
            log_id: header_log_id.clone(),
            detail: e.to_string(),
        })?;
    if let Some(err) = oauth_error(endpoint, &value, http_status, header_log_id.as_deref()) {
        return Err(err);
    }
    let log_id = body_log_id(&value).or(header_log_id);
    let token: RawToken = serde_json::from_value(value).map_err(|e| TikTokError::Decode {
        endpoint,
        http_status,
        log_id: log_id.clone(),
        detail: e.to_string(),
    })?;
    log_call(endpoint, http_status, Some("ok"), log_id.as_deref(), None);
    Ok(TokenSet {
        access_token: SecretString::from(token.access_token),
        expires_in: token.expires_in,
        refresh_token: SecretString::from(token.refresh_token),
        refresh_expires_in: token.refresh_expires_in,
        open_id: token.open_id,
        scope: token.scope,
        token_type: token.token_type,
        log_id,
    })
}

fn body_log_id(v: &serde_json::Value) -> Option<String> {
    v.get("log_id")
        .or_else(|| v.get("error").and_then(|e| e.get("log_id")))
        .and_then(|l| l.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The flat OAuth shape `{error, error_description, log_id}`, or a v2 envelope with a non-ok code,
/// whatever the HTTP status.
fn oauth_error(
    endpoint: &'static str,
    v: &serde_json::Value,
    http_status: u16,
    header_log_id: Option<&str>,
) -> Option<TikTokError> {
    let log_id = body_log_id(v).or(header_log_id.map(str::to_owned));
    match v.get("error") {
        Some(serde_json::Value::String(error)) if !error.is_empty() => {
            let description = v
                .get("error_description")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_owned();
            log_call(
                endpoint,
                http_status,
                Some(error),
                log_id.as_deref(),
                header_log_id,
            );
            Some(TikTokError::OAuth {
                endpoint,
                class: classify_response(error, http_status),
                error: error.clone(),
                description,
                log_id,
                http_status,
            })
        }
        Some(serde_json::Value::Object(e)) => {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("ok");
            if code == "ok" {
                return None;
            }
            log_call(
                endpoint,
                http_status,
                Some(code),
                log_id.as_deref(),
                header_log_id,
            );
            Some(TikTokError::Api {
                endpoint,
                class: classify_response(code, http_status),
                code: code.to_owned(),
                message: e
                    .get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                log_id,
                http_status,
            })
        }
        _ => None,
    }
}
