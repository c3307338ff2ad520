//! The HTTP client: one `reqwest::Client`, typed calls, bounded retries, structured logs.

use std::time::Instant;

use chrono::Utc;
use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::{AuthScheme, FindPolicy, RetryPolicy, SsembleConfig};
use crate::error::{ApiError, BackoffHint, Endpoint, ErrorClass, ErrorCode};
use crate::model::{
    ApiResponse, CreateShortRequest, CreateShortResponse, DeleteData, ListData, ListQuery,
    RequestId, ShortsDocument, StatusData, TemplatesData,
};
use crate::rate_limit::RateLimitInfo;

/// Client for the Ssemble AI Clipping API. Cheap to clone; build once per process.
#[derive(Clone)]
pub struct SsembleClient {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    auth_scheme: AuthScheme,
    pub(crate) retry: RetryPolicy,
    pub(crate) find: FindPolicy,
}

impl std::fmt::Debug for SsembleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsembleClient")
            .field("base_url", &self.base_url)
            .field("auth_scheme", &self.auth_scheme)
            .finish_non_exhaustive()
    }
}

/// Which failures a call may retry by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryMode {
    /// Reads: any retryable failure.
    Idempotent,
    /// Create and delete: only failures that prove the server did not act (429, not sent).
    OnlyIfNotExecuted,
    /// Exactly one attempt, whatever the policy: the caller charged its budget for one call.
    Once,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

impl SsembleClient {
    /// Builds the client. Fails only on an unusable configuration.
    pub fn new(config: SsembleConfig) -> Result<Self, ApiError> {
        let http = reelay_http::client_builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| ApiError::Config(e.to_string()))?;
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ApiError::Config(format!(
                "base URL must be http(s): {base_url:?}"
            )));
        }
        Ok(Self {
            http,
            base_url,
            api_key: config.api_key,
            auth_scheme: config.auth_scheme,
            retry: config.retry,
            find: config.find,
        })
    }

    /// The base URL in use.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /shorts/create`. Costs a credit. Retried automatically only after a 429 or a
    /// connection that never opened; any other failure is returned, and one with
    /// [`ApiError::may_have_taken_effect`] must be resolved with [`Self::find_request`]
    /// (or use [`Self::create_at_most_once`]).
    pub async fn create(
        &self,
        request: &CreateShortRequest,
    ) -> Result<ApiResponse<CreateShortResponse>, ApiError> {
        let resp: ApiResponse<CreateShortResponse> = self
            .call(
                Endpoint::Create,
                Method::POST,
                "/shorts/create".to_owned(),
                None,
                Body::Create(request),
                RetryMode::OnlyIfNotExecuted,
            )
            .await?;
        tracing::info!(
            endpoint = Endpoint::Create.as_str(),
            request_id = resp.data.request_id.as_str(),
            status = resp.data.status.as_str(),
            credits_used = resp.data.credits_used,
            time_adjusted = resp.data.time_adjustment.is_some(),
            "ssemble request created"
        );
        Ok(resp)
    }

    /// `GET /shorts/:id/status`.
    pub async fn status(&self, id: &str) -> Result<ApiResponse<StatusData>, ApiError> {
        self.status_with(id, RetryMode::Idempotent).await
    }

    /// `GET /shorts/:id/status`, sent once (no automatic retry).
    pub(crate) async fn status_once(&self, id: &str) -> Result<ApiResponse<StatusData>, ApiError> {
        self.status_with(id, RetryMode::Once).await
    }

    async fn status_with(
        &self,
        id: &str,
        mode: RetryMode,
    ) -> Result<ApiResponse<StatusData>, ApiError> {
        let id = RequestId::parse(id)?;
        self.call(
            Endpoint::Status,
            Method::GET,
            format!("/shorts/{id}/status"),
            Some(&id),
            Body::None,
            mode,
        )
        .await
    }

    /// `GET /shorts/:id`. Answers for unfinished requests too; branch on `data.status`.
    pub async fn get(&self, id: &str) -> Result<ApiResponse<ShortsDocument>, ApiError> {
        self.get_with(id, RetryMode::Idempotent).await
    }

    /// `GET /shorts/:id`, sent once (no automatic retry).
    pub(crate) async fn get_once(&self, id: &str) -> Result<ApiResponse<ShortsDocument>, ApiError> {
        self.get_with(id, RetryMode::Once).await
    }

    async fn get_with(
        &self,
        id: &str,
        mode: RetryMode,
    ) -> Result<ApiResponse<ShortsDocument>, ApiError> {
        let id = RequestId::parse(id)?;
        self.call(
            Endpoint::Get,
            Method::GET,
            format!("/shorts/{id}"),
            Some(&id),
            Body::None,
            mode,
        )
        .await
    }

    /// `GET /shorts`.
    pub async fn list(&self, query: &ListQuery) -> Result<ApiResponse<ListData>, ApiError> {
        self.call(
            Endpoint::List,
            Method::GET,
            "/shorts".to_owned(),
            None,
            Body::Query(query),
            RetryMode::Idempotent,
        )
        .await
    }

    /// `DELETE /shorts/:id`: 200 with a body or 204. Not retried on 5xx, where the docs say
    /// the request "may or may not have been deleted"; a 404 afterwards means it was.
    pub async fn delete(&self, id: &str) -> Result<ApiResponse<DeleteData>, ApiError> {
        let id = RequestId::parse(id)?;
        self.call(
            Endpoint::Delete,
            Method::DELETE,
            format!("/shorts/{id}"),
            Some(&id),
            Body::None,
            RetryMode::OnlyIfNotExecuted,
        )
        .await
    }

    /// `GET /templates`.
    pub async fn templates(&self) -> Result<ApiResponse<TemplatesData>, ApiError> {
        self.call(
            Endpoint::Templates,
            Method::GET,
            "/templates".to_owned(),
            None,
            Body::None,
            RetryMode::Idempotent,
        )
        .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        method: Method,
        path: String,
        request_id: Option<&RequestId>,
        body: Body<'_>,
        mode: RetryMode,
    ) -> Result<ApiResponse<T>, ApiError> {
        let mut attempt = 1u32;
        loop {
            let result = self
                .send_once(endpoint, method.clone(), &path, request_id, body, attempt)
                .await;
            let err = match result {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
            let may_retry = match mode {
                RetryMode::Idempotent => err.class() == ErrorClass::Retryable,
                RetryMode::OnlyIfNotExecuted => {
                    matches!(err, ApiError::NotSent { .. })
                        || err.code() == Some(&ErrorCode::RateLimitExceeded)
                        || err.status() == Some(429)
                }
                RetryMode::Once => false,
            };
            if !may_retry || attempt >= self.retry.max_attempts {
                return Err(err);
            }
            let Some(wait) = err.retry_wait(Utc::now()) else {
                return Err(err);
            };
            if wait.delay > self.retry.max_auto_wait {
                return Err(err);
            }
            tracing::debug!(
                endpoint = endpoint.as_str(),
                attempt,
                wait_ms = u64::try_from(wait.delay.as_millis()).unwrap_or(u64::MAX),
                wait_source = ?wait.source,
                "ssemble retry scheduled"
            );
            tokio::time::sleep(wait.delay).await;
            attempt += 1;
        }
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        method: Method,
        path: &str,
        request_id: Option<&RequestId>,
        body: Body<'_>,
        attempt: u32,
    ) -> Result<ApiResponse<T>, ApiError> {
        let backoff = BackoffHint {
            attempt,
            policy: self.retry,
        };
        let url = format!("{}{}", self.base_url, path);
        let mut rb = self
            .http
            .request(method, url)
            .header(header::ACCEPT, "application/json");
        // Marked sensitive so no HTTP-layer debug output can show it.
        let mut key = header::HeaderValue::from_str(self.api_key.expose_secret())
            .map_err(|_| ApiError::Config("API key is not a valid header value".to_owned()))?;
        key.set_sensitive(true);
        rb = match self.auth_scheme {
            AuthScheme::XApiKey => rb.header("X-API-Key", key),
            AuthScheme::Bearer => {
                let mut bearer = header::HeaderValue::from_str(&format!(
                    "Bearer {}",
                    self.api_key.expose_secret()
                ))
                .map_err(|_| ApiError::Config("API key is not a valid header value".to_owned()))?;
                bearer.set_sensitive(true);
                rb.header(header::AUTHORIZATION, bearer)
            }
        };
        rb = match body {
            Body::None => rb,
            Body::Create(req) => rb.json(req),
            Body::Query(q) => rb.query(q),
        };
        let started = Instant::now();
        let rid = request_id.map(RequestId::as_str);

        let resp = match rb.send().await {
            Ok(r) => r,
            Err(source) => {
                let err = if source.is_connect() {
                    ApiError::NotSent {
                        endpoint,
                        source,
                        backoff,
                    }
                } else if source.is_builder() {
                    ApiError::Config(source.to_string())
                } else {
                    ApiError::OutcomeUnknown {
                        endpoint,
                        status: None,
                        source,
                        rate_limit: RateLimitInfo::default(),
                        backoff,
                    }
                };
                tracing::warn!(
                    endpoint = endpoint.as_str(),
                    request_id = rid,
                    attempt,
                    elapsed_ms = elapsed_ms(started),
                    error.class = ?err.class(),
                    error.message = %err,
                    "ssemble call failed without a response"
                );
                return Err(err);
            }
        };
        let status = resp.status();
        let rate_limit = RateLimitInfo::from_headers(resp.headers(), Utc::now());
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(source) => {
                let err = ApiError::OutcomeUnknown {
                    endpoint,
                    status: Some(status.as_u16()),
                    source,
                    rate_limit,
                    backoff,
                };
                tracing::warn!(
                    endpoint = endpoint.as_str(),
                    request_id = rid,
                    http_status = status.as_u16(),
                    attempt,
                    elapsed_ms = elapsed_ms(started),
                    error.message = %err,
                    "ssemble response body lost"
                );
                return Err(err);
            }
        };

        let result = if status.is_success() {
            decode_success(endpoint, status, &bytes, rate_limit.clone())
        } else {
            Err(decode_error(
                endpoint,
                status,
                content_type,
                &bytes,
                rate_limit.clone(),
                backoff,
            ))
        };
        match &result {
            Ok(_) => tracing::info!(
                endpoint = endpoint.as_str(),
                request_id = rid,
                http_status = status.as_u16(),
                attempt,
                elapsed_ms = elapsed_ms(started),
                remaining_hour = rate_limit.remaining_hour,
                remaining_day = rate_limit.remaining_day,
                "ssemble call"
            ),
            Err(e) => tracing::warn!(
                endpoint = endpoint.as_str(),
                request_id = rid,
                http_status = status.as_u16(),
                attempt,
                elapsed_ms = elapsed_ms(started),
                remaining_hour = rate_limit.remaining_hour,
                remaining_day = rate_limit.remaining_day,
                error.code = e.code().map(ErrorCode::as_str),
                error.class = ?e.class(),
                error.message = %e,
                "ssemble call failed"
            ),
        }
        result
    }
}

#[derive(Clone, Copy)]
enum Body<'a> {
    None,
    Create(&'a CreateShortRequest),
    Query(&'a ListQuery),
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn decode_success<T: DeserializeOwned>(
    endpoint: Endpoint,
    status: StatusCode,
    bytes: &[u8],
    rate_limit: RateLimitInfo,
) -> Result<ApiResponse<T>, ApiError> {
    // A 204 (documented as possible for DELETE) has no body: decode an empty `data`.
    let parsed = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_str::<Envelope<T>>(r#"{"data":{}}"#)
    } else {
        serde_json::from_slice::<Envelope<T>>(bytes)
    };
    match parsed {
        Ok(env) => Ok(ApiResponse {
            data: env.data,
            http_status: status.as_u16(),
            rate_limit,
        }),
        Err(source) => Err(ApiError::Decode {
            endpoint,
            status: status.as_u16(),
            source,
            rate_limit,
        }),
    }
}

fn decode_error(
    endpoint: Endpoint,
    status: StatusCode,
    content_type: Option<String>,
    bytes: &[u8],
    rate_limit: RateLimitInfo,
    backoff: BackoffHint,
) -> ApiError {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        let snippet: String = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned();
        return ApiError::NonJson {
            endpoint,
            status: status.as_u16(),
            content_type,
            snippet,
            rate_limit,
            backoff,
        };
    };
    let err = value.get("error");
    // The envelope is `{"error":{code,message,details}}`; peers use `{"error":"CODE"}`.
    let (code, message, details) = match err {
        Some(serde_json::Value::Object(o)) => (
            o.get("code")
                .and_then(|c| c.as_str())
                .unwrap_or("unknown_error"),
            o.get("message")
                .and_then(|m| m.as_str())
                .unwrap_or_default(),
            o.get("details").cloned().unwrap_or(serde_json::Value::Null),
        ),
        Some(serde_json::Value::String(s)) => (
            s.as_str(),
            value
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or_default(),
            serde_json::Value::Null,
        ),
        _ => ("unknown_error", "", serde_json::Value::Null),
    };
    ApiError::Api {
        endpoint,
        status: status.as_u16(),
        code: ErrorCode::from_wire(code),
        message: message.to_owned(),
        details,
        rate_limit,
        backoff,
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
