//! Secrets Manager: typed secret documents, a per-cold-start cache and the old per-account token
//! vault (account tokens now live in [`crate::vault`]; this one is its migration source). Secret
//! values live only in `secrecy` types: `Debug` prints `[REDACTED]`, and no error or log line
//! carries a value. (Refreshing tokens is the domain's `Core::fresh_token`, over a vault and the
//! store's locks.)

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use reelay_domain::ports::{SecretError, TokenSet, TokenVault};
use reelay_domain::{AccountId, TenantId, UtcTime};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::info;

/// `reelay/<stage>/ssemble`: `{"apiKey": "..."}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsembleSecret {
    pub api_key: SecretString,
}

/// `reelay/<stage>/tiktok-app`: `{"clientKey": "...", "clientSecret": "..."}`. The client key
/// appears in authorize URLs, so it is not secret; the client secret is.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TikTokAppSecret {
    pub client_key: String,
    pub client_secret: SecretString,
}

impl SsembleSecret {
    /// The stored document (a secret itself, so wrapped at once).
    pub fn document(&self) -> SecretString {
        let doc = serde_json::json!({ "apiKey": self.api_key.expose_secret() });
        SecretString::from(doc.to_string())
    }
}

impl TikTokAppSecret {
    /// The stored document (a secret itself, so wrapped at once).
    pub fn document(&self) -> SecretString {
        let doc = serde_json::json!({
            "clientKey": self.client_key,
            "clientSecret": self.client_secret.expose_secret(),
        });
        SecretString::from(doc.to_string())
    }
}

/// Replaces the value of a stage secret the stack created (`reelay/<stage>/ssemble`, …): a new
/// version becomes current; running functions read it when their cache's TTL passes.
pub async fn put_stage_secret(
    client: &Client,
    id: &str,
    document: &SecretString,
) -> Result<(), SecretError> {
    match client
        .put_secret_value()
        .secret_id(id)
        .secret_string(document.expose_secret())
        .send()
        .await
    {
        Ok(_) => {
            info!(secret_id = id, "stage secret replaced");
            Ok(())
        }
        Err(err) => match err.as_service_error() {
            Some(e) if e.is_resource_not_found_exception() => Err(SecretError::NotFound),
            _ => Err(unavailable(err)),
        },
    }
}

/// The stored form of one account's `TokenSet` (the same JSON in a secret and, encrypted, in the
/// token table, so migrating copies it unchanged).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenDocument {
    access_token: SecretString,
    access_expires_at: UtcTime,
    refresh_token: SecretString,
    refresh_expires_at: UtcTime,
    open_id: String,
    #[serde(default)]
    scopes: Vec<String>,
}

impl From<TokenDocument> for TokenSet {
    fn from(d: TokenDocument) -> Self {
        TokenSet {
            access_token: d.access_token,
            access_expires_at: d.access_expires_at,
            refresh_token: d.refresh_token,
            refresh_expires_at: d.refresh_expires_at,
            open_id: d.open_id,
            scopes: d.scopes,
        }
    }
}

/// The JSON stored for a token set; a secret itself, so it is wrapped at once.
pub(crate) fn token_document(t: &TokenSet) -> SecretString {
    let doc = serde_json::json!({
        "accessToken": t.access_token.expose_secret(),
        "accessExpiresAt": t.access_expires_at.to_string(),
        "refreshToken": t.refresh_token.expose_secret(),
        "refreshExpiresAt": t.refresh_expires_at.to_string(),
        "openId": t.open_id,
        "scopes": t.scopes,
    });
    SecretString::from(doc.to_string())
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> SecretError {
    SecretError::Unavailable(Box::new(e))
}

/// Reads a secret's current value; `None` if it does not exist.
async fn read_secret(client: &Client, id: &str) -> Result<Option<SecretString>, SecretError> {
    match client.get_secret_value().secret_id(id).send().await {
        Ok(out) => Ok(out.secret_string.map(SecretString::from)),
        Err(err) => match err.as_service_error() {
            Some(e) if e.is_resource_not_found_exception() => Ok(None),
            _ => Err(unavailable(err)),
        },
    }
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(raw: &SecretString) -> Result<T, SecretError> {
    // serde's message could quote the value: it is dropped, only the fact is reported.
    serde_json::from_str(raw.expose_secret()).map_err(|_| SecretError::Malformed)
}

/// App secrets cached for a cold start: read once, re-read after `ttl` so a rotation is picked
/// up without a redeploy.
pub struct SecretCache {
    client: Client,
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, SecretString)>>,
}

impl fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SecretCache {
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig, ttl: Duration) -> Self {
        Self::new(Client::new(sdk), ttl)
    }

    /// The raw secret string, from the cache while it is younger than the TTL.
    pub async fn get(&self, id: &str) -> Result<SecretString, SecretError> {
        let mut entries = self.entries.lock().await;
        if let Some((at, value)) = entries.get(id)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let started = Instant::now();
        let value = read_secret(&self.client, id)
            .await?
            .ok_or(SecretError::NotFound)?;
        // Once per container and TTL: the cold start's secret fetches, timed (benchmark 4).
        info!(
            secret_id = id,
            secret.fetch_ms = started.elapsed().as_secs_f64() * 1e3,
            "secret fetched"
        );
        entries.insert(id.to_owned(), (Instant::now(), value.clone()));
        Ok(value)
    }

    /// Drops a cached value (e.g. after the upstream rejected the key it held).
    pub async fn invalidate(&self, id: &str) {
        self.entries.lock().await.remove(id);
    }

    pub async fn ssemble(&self, id: &str) -> Result<SsembleSecret, SecretError> {
        parse(&self.get(id).await?)
    }

    pub async fn tiktok_app(&self, id: &str) -> Result<TikTokAppSecret, SecretError> {
        parse(&self.get(id).await?)
    }
}

/// The way tokens were kept before issue 13: one secret per account under the stage prefix
/// (`reelay/<stage>/tiktok-token/`), named `<prefix><tenant>/<account>`, at $0.40 a month each.
/// Kept as [`crate::DynamoTokenVault`]'s read fallback while a stage migrates. Not cached: a
/// refresh elsewhere must be seen at once.
#[derive(Debug, Clone)]
pub struct SecretsManagerTokenVault {
    client: Client,
    prefix: String,
}

impl SecretsManagerTokenVault {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    /// From the Lambda environment: `TIKTOK_TOKEN_SECRET_PREFIX`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, crate::ConfigError> {
        Ok(Self::new(
            Client::new(sdk),
            crate::config::env_var("TIKTOK_TOKEN_SECRET_PREFIX")?,
        ))
    }

    pub fn secret_name(&self, tenant: &TenantId, account: &AccountId) -> String {
        format!("{}{tenant}/{account}", self.prefix)
    }
}

/// How an old per-account token secret is deleted once its tokens are in the token table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretDeletion {
    /// Recoverable for this many days (Secrets Manager allows 7–30): the default way.
    RecoveryWindow(u8),
    /// `ForceDeleteWithoutRecovery`: gone at once. Only when an operator asks for it by name.
    WithoutRecovery,
}

impl Default for SecretDeletion {
    fn default() -> Self {
        Self::RecoveryWindow(30)
    }
}

impl SecretsManagerTokenVault {
    /// Requests deletion of the account's token secret; `false` if there was none.
    pub async fn delete_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        how: SecretDeletion,
    ) -> Result<bool, SecretError> {
        let name = self.secret_name(tenant, account);
        // Deleting a secret already scheduled for deletion is an error: report it as done.
        match self.client.describe_secret().secret_id(&name).send().await {
            Ok(d) if d.deleted_date().is_some() => return Ok(false),
            Ok(_) => {}
            Err(err) => match err.as_service_error() {
                Some(e) if e.is_resource_not_found_exception() => return Ok(false),
                _ => return Err(unavailable(err)),
            },
        }
        let mut req = self.client.delete_secret().secret_id(&name);
        req = match how {
            SecretDeletion::RecoveryWindow(days) => {
                if !(7..=30).contains(&days) {
                    return Err(SecretError::Unavailable(
                        format!("recovery window {days} days: Secrets Manager allows 7 to 30")
                            .into(),
                    ));
                }
                req.recovery_window_in_days(i64::from(days))
            }
            SecretDeletion::WithoutRecovery => req.force_delete_without_recovery(true),
        };
        match req.send().await {
            Ok(_) => {
                info!(tenant_id = %tenant, account_id = %account, ?how, "account token secret deleted");
                Ok(true)
            }
            Err(err) => match err.as_service_error() {
                Some(e) if e.is_resource_not_found_exception() => Ok(false),
                _ => Err(unavailable(err)),
            },
        }
    }

    /// Every account that still has a token secret under the prefix (secrets pending deletion
    /// are not listed): what a migration has left to do.
    pub async fn list_accounts(&self) -> Result<Vec<(TenantId, AccountId)>, SecretError> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(&self.prefix)
            .build();
        let mut pages = self
            .client
            .list_secrets()
            .filters(filter)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            for s in page.map_err(unavailable)?.secret_list() {
                // The Name filter matches prefixes of words too: keep only `<prefix><t>/<a>`.
                let parsed = s
                    .name()
                    .and_then(|n| n.strip_prefix(self.prefix.as_str()))
                    .and_then(|rest| rest.split_once('/'))
                    .and_then(|(t, a)| Some((TenantId::parse(t).ok()?, AccountId::parse(a).ok()?)));
                if let Some(ids) = parsed {
                    out.push(ids);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl TokenVault for SecretsManagerTokenVault {
    async fn get_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<TokenSet>, SecretError> {
        let name = self.secret_name(tenant, account);
        let Some(raw) = read_secret(&self.client, &name).await? else {
            return Ok(None);
        };
        let doc: TokenDocument = parse(&raw)?;
        Ok(Some(doc.into()))
    }

    async fn put_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        tokens: &TokenSet,
    ) -> Result<(), SecretError> {
        tokens.check_storable()?;
        let name = self.secret_name(tenant, account);
        let doc = token_document(tokens);
        for _ in 0..2 {
            let put = self
                .client
                .put_secret_value()
                .secret_id(&name)
                .secret_string(doc.expose_secret())
                .send()
                .await;
            match put {
                Ok(_) => {
                    info!(tenant_id = %tenant, account_id = %account, "account tokens stored");
                    return Ok(());
                }
                Err(err) => match err.as_service_error() {
                    Some(e) if e.is_resource_not_found_exception() => {}
                    _ => return Err(unavailable(err)),
                },
            }
            // First connection of this account: create its secret (a racing creator wins, we put).
            let created = self
                .client
                .create_secret()
                .name(&name)
                .description("TikTok OAuth tokens of one account (Reelay)")
                .secret_string(doc.expose_secret())
                .send()
                .await;
            match created {
                Ok(_) => {
                    info!(tenant_id = %tenant, account_id = %account, "account token secret created");
                    return Ok(());
                }
                Err(err) => match err.as_service_error() {
                    Some(e) if e.is_resource_exists_exception() => continue,
                    _ => return Err(unavailable(err)),
                },
            }
        }
        Err(SecretError::Unavailable(
            "token secret kept appearing and disappearing".into(),
        ))
    }

    /// The old per-account secret, deleted with the shortest recovery window (7 days): the pair
    /// in it was revoked with the account, and an operator may still recover a mistake.
    async fn remove_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<(), SecretError> {
        Self::delete_tokens(self, tenant, account, SecretDeletion::RecoveryWindow(7))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret_values() {
        let s: SsembleSecret = serde_json::from_str(r#"{"apiKey":"sk_live_123"}"#).unwrap();
        let again: SsembleSecret = parse(&s.document()).unwrap();
        assert_eq!(again.api_key.expose_secret(), "sk_live_123");
        assert!(!format!("{s:?}").contains("sk_live_123"));
        let app: TikTokAppSecret =
            serde_json::from_str(r#"{"clientKey":"ck","clientSecret":"cs_987"}"#).unwrap();
        assert!(!format!("{app:?}").contains("cs_987"));
        assert!(format!("{app:?}").contains("ck"));
        let again: TikTokAppSecret = parse(&app.document()).unwrap();
        assert_eq!(again.client_key, "ck");
        assert_eq!(again.client_secret.expose_secret(), "cs_987");
    }

    #[test]
    fn token_documents_round_trip() {
        let set = TokenSet {
            access_token: SecretString::from("act.1"),
            access_expires_at: UtcTime::from_secs(1_800_000_000),
            refresh_token: SecretString::from("rft.1"),
            refresh_expires_at: UtcTime::from_secs(1_900_000_000),
            open_id: "open-1".into(),
            scopes: vec!["video.publish".into()],
        };
        let doc: TokenDocument = parse(&token_document(&set)).unwrap();
        let back: TokenSet = doc.into();
        assert_eq!(back.access_token.expose_secret(), "act.1");
        assert_eq!(back.refresh_token.expose_secret(), "rft.1");
        assert_eq!(back.access_expires_at, set.access_expires_at);
        assert_eq!(back.scopes, set.scopes);
        assert!(!format!("{back:?}").contains("rft.1"));
    }

    #[test]
    fn malformed_documents_do_not_echo_their_content() {
        let err =
            parse::<SsembleSecret>(&SecretString::from("{\"apiKey\": 42, \"x\": \"sk_leak\"}"))
                .unwrap_err();
        assert!(matches!(err, SecretError::Malformed));
        assert!(!err.to_string().contains("sk_leak"));
    }
}
