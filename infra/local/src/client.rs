//! A client of Reelay's HTTP API as a tenant uses it, plus tenant seeding. The runner and the
//! end-to-end tests go through the same routes a customer would.

use reelay_aws::SystemClock;
use reelay_domain::TenantId;
use reelay_domain::ports::{Clock, StoreError, TenantStore};
use reelay_domain::usecase::TenantError;
use reelay_domain::usecase::tenants;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        what: &'static str,
        status: u16,
        body: String,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("invalid tenant id: {0}")]
    Tenant(String),
}

/// An answer: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn str(&self, pointer: &str) -> Option<&str> {
        self.body.pointer(pointer).and_then(Value::as_str)
    }
}

/// Creates the tenant (or, when it exists, issues it one more key) through the domain's tenant
/// use cases, as `reelay-admin tenant create` does; only the key's SHA-256 is stored.
pub async fn seed_tenant<S: TenantStore>(
    store: &S,
    tenant: &str,
) -> Result<SecretString, ClientError> {
    let tenant = TenantId::parse(tenant).map_err(|e| ClientError::Tenant(e.reason.to_owned()))?;
    let (entropy, now) = (SystemClock, SystemClock.now());
    let issued = match tenants::create_tenant(store, &entropy, &tenant, tenant.as_str(), now).await
    {
        Err(TenantError::Exists(_)) => tenants::issue_key(store, &entropy, &tenant, now).await,
        other => other,
    }
    .map_err(|e| match e {
        TenantError::Store(e) => ClientError::Store(e),
        other => ClientError::Tenant(other.to_string()),
    })?;
    Ok(issued.key)
}

/// One tenant's view of the API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

impl ApiClient {
    pub fn new(base: impl Into<String>, key: SecretString) -> Result<Self, ClientError> {
        // Redirects are followed by hand: the OAuth flow must see each hop.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            key,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn answer(resp: reqwest::Response) -> Result<Answer, ClientError> {
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok(Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-api-key", self.key.expose_secret())
            .send()
            .await?;
        Self::answer(resp).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer, ClientError> {
        let resp = self
            .http
            .delete(format!("{}{path}", self.base))
            .header("x-api-key", self.key.expose_secret())
            .send()
            .await?;
        Self::answer(resp).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, ClientError> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-api-key", self.key.expose_secret())
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        Self::answer(req.send().await?).await
    }

    /// The whole OAuth connection as a creator's browser would do it: ask Reelay for the
    /// authorize URL, open it (the simulator authorises at once and redirects), follow the
    /// redirect to Reelay's callback. Returns the callback's answer.
    pub async fn connect_account(
        &self,
        account_id: &str,
        mode: &str,
    ) -> Result<Answer, ClientError> {
        let started = self
            .post(
                "/v1/accounts/connect",
                &json!({ "tiktokAccountId": account_id, "mode": mode }),
                None,
            )
            .await?;
        let url = match (started.status, started.str("/authorizeUrl")) {
            (200, Some(url)) => url.to_owned(),
            _ => {
                return Err(ClientError::Status {
                    what: "connect",
                    status: started.status,
                    body: started.body.to_string(),
                });
            }
        };
        let authorize = self.http.get(&url).send().await?;
        let location = authorize
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "authorize page answered {} without a redirect",
                    authorize.status()
                ))
            })?;
        if !location.starts_with(&self.base) {
            return Err(ClientError::Protocol(
                "authorize redirect does not lead to Reelay's callback".into(),
            ));
        }
        let callback = Self::answer(self.http.get(&location).send().await?).await?;
        if callback.status != 200 {
            return Err(ClientError::Status {
                what: "oauth callback",
                status: callback.status,
                body: callback.body.to_string(),
            });
        }
        Ok(callback)
    }
}
