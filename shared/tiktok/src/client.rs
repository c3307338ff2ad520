use std::sync::Arc;

use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    API_VERSION,
    chunk::ChunkPlan,
    config::TikTokConfig,
    deadline::Deadline,
    error::{TikTokError, classify_response},
    source::HttpSource,
    types::{ApiAck, CreatorInfo, Envelope, InitResponse, PostInfo, PublishStatus, SourceInfo},
};

/// The TikTok client. Cheap to clone; one connection pool for all calls.
#[derive(Debug, Clone)]
pub struct TikTokClient {
    pub(crate) http: reqwest::Client,
    pub(crate) cfg: Arc<TikTokConfig>,
}

/// How an init ended up sourcing the video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitSource {
    PullFromUrl,
    /// The caller must now [`TikTokClient::upload`] with this plan to `upload_url`.
    FileUpload(ChunkPlan),
}

/// Result of a PULL_FROM_URL init with FILE_UPLOAD fallback.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    pub response: InitResponse,
    pub source: InitSource,
    /// Log id of the `url_ownership_unverified` rejection when the fallback was taken.
    pub fallback_from_log_id: Option<String>,
}

pub(crate) struct RawResponse {
    pub status: u16,
    pub header_log_id: Option<String>,
    pub body: bytes::Bytes,
}

impl TikTokClient {
    pub fn new(cfg: TikTokConfig) -> Result<Self, TikTokError> {
        let http = reelay_http::client_builder()
            .connect_timeout(cfg.timeouts.connect)
            .build()
            .map_err(|e| TikTokError::Config(e.to_string()))?;
        Ok(Self {
            http,
            cfg: Arc::new(cfg),
        })
    }

    /// The underlying HTTP client, e.g. to build an [`crate::HttpSource`] on the same pool.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn config(&self) -> &TikTokConfig {
        &self.cfg
    }

    /// The clip behind `url` with its length learnt by [`HttpSource::open_url`], each probe request
    /// bounded by `timeouts.request` and `deadline`, on this client's connection pool.
    pub async fn open_clip(
        &self,
        url: impl Into<String>,
        deadline: Deadline,
    ) -> Result<HttpSource, TikTokError> {
        HttpSource::open_url(self.http.clone(), url, self.cfg.timeouts.request, deadline).await
    }

    pub(crate) fn api_url(&self, path: &str) -> String {
        format!("{}{}", self.cfg.api_base_url.trim_end_matches('/'), path)
    }

    /// Sends a request and reads the whole body, separating "never sent" from "outcome unknown".
    pub(crate) async fn execute(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<RawResponse, TikTokError> {
        let resp: Response = req
            .timeout(self.cfg.timeouts.request)
            .send()
            .await
            .map_err(|e| transport_error(endpoint, e))?;
        let status = resp.status().as_u16();
        let header_log_id = resp
            .headers()
            .get("x-tt-logid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .bytes()
            .await
            .map_err(|source| TikTokError::OutcomeUnknown { endpoint, source })?;
        Ok(RawResponse {
            status,
            header_log_id,
            body,
        })
    }

    /// A Content Posting call: bearer token, JSON body, `{data, error}` envelope.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        endpoint: &'static str,
        path: &str,
        token: &SecretString,
        body: &B,
    ) -> Result<(Option<T>, Option<String>), TikTokError> {
        let req = self
            .http
            .post(self.api_url(path))
            .bearer_auth(token.expose_secret())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=UTF-8",
            )
            .body(serde_json::to_vec(body).map_err(|e| TikTokError::Config(e.to_string()))?);
        let raw = self.execute(endpoint, req).await?;
        decode_api_response(endpoint, raw.status, &raw.body, raw.header_log_id)
    }

    fn require<T>(
        endpoint: &'static str,
        data: Option<T>,
        log_id: &Option<String>,
    ) -> Result<T, TikTokError> {
        data.ok_or_else(|| TikTokError::Decode {
            endpoint,
            http_status: StatusCode::OK.as_u16(),
            log_id: log_id.clone(),
            detail: "`ok` without data".into(),
        })
    }

    /// `creator_info/query`. Spam and cap codes arrive with HTTP 200 and become [`TikTokError::Api`].
    pub async fn creator_info(&self, token: &SecretString) -> Result<CreatorInfo, TikTokError> {
        const EP: &str = "creator_info/query";
        let (data, log_id) = self
            .call::<CreatorInfo, _>(
                EP,
                "/v2/post/publish/creator_info/query/",
                token,
                &serde_json::json!({}),
            )
            .await?;
        let mut info = Self::require(EP, data, &log_id)?;
        info.log_id = log_id;
        Ok(info)
    }

    /// Direct Post `video/init`. Persist `publish_id` before uploading. A
    /// [`TikTokError::is_outcome_unknown`] error must be reconciled, never retried blindly.
    pub async fn init_direct_post(
        &self,
        token: &SecretString,
        post_info: &PostInfo,
        source_info: &SourceInfo,
    ) -> Result<InitResponse, TikTokError> {
        const EP: &str = "video/init";
        let body = serde_json::json!({ "post_info": post_info, "source_info": source_info });
        let (data, log_id) = self
            .call::<InitResponse, _>(EP, "/v2/post/publish/video/init/", token, &body)
            .await?;
        let mut r = Self::require(EP, data, &log_id)?;
        r.log_id = log_id;
        Ok(r)
    }

    /// `inbox/video/init` (draft): `source_info` only; the creator sets caption and privacy in the app.
    pub async fn init_inbox(
        &self,
        token: &SecretString,
        source_info: &SourceInfo,
    ) -> Result<InitResponse, TikTokError> {
        const EP: &str = "inbox/video/init";
        let body = serde_json::json!({ "source_info": source_info });
        let (data, log_id) = self
            .call::<InitResponse, _>(EP, "/v2/post/publish/inbox/video/init/", token, &body)
            .await?;
        let mut r = Self::require(EP, data, &log_id)?;
        r.log_id = log_id;
        Ok(r)
    }

    /// PULL_FROM_URL first; on `url_ownership_unverified` (which creates nothing) one FILE_UPLOAD init
    /// planned for `video_size`. `post_info = None` means an inbox (draft) share.
    pub async fn init_pull_or_upload(
        &self,
        token: &SecretString,
        post_info: Option<&PostInfo>,
        video_url: &str,
        video_size: u64,
    ) -> Result<InitOutcome, TikTokError> {
        let pull = SourceInfo::PullFromUrl {
            video_url: video_url.to_owned(),
        };
        let first = match post_info {
            Some(p) => self.init_direct_post(token, p, &pull).await,
            None => self.init_inbox(token, &pull).await,
        };
        match first {
            Ok(response) => Ok(InitOutcome {
                response,
                source: InitSource::PullFromUrl,
                fallback_from_log_id: None,
            }),
            Err(TikTokError::Api { code, log_id, .. }) if code == "url_ownership_unverified" => {
                let plan = ChunkPlan::new(video_size, &self.cfg.chunk_policy)?;
                tracing::info!(
                    rejected_log_id = log_id.as_deref(),
                    video_size,
                    "PULL_FROM_URL not verified; falling back to FILE_UPLOAD"
                );
                let upload = SourceInfo::from(&plan);
                let response = match post_info {
                    Some(p) => self.init_direct_post(token, p, &upload).await?,
                    None => self.init_inbox(token, &upload).await?,
                };
                Ok(InitOutcome {
                    response,
                    source: InitSource::FileUpload(plan),
                    fallback_from_log_id: log_id,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `status/fetch`.
    pub async fn fetch_status(
        &self,
        token: &SecretString,
        publish_id: &str,
    ) -> Result<PublishStatus, TikTokError> {
        const EP: &str = "status/fetch";
        let body = serde_json::json!({ "publish_id": publish_id });
        let (data, log_id) = self
            .call::<PublishStatus, _>(EP, "/v2/post/publish/status/fetch/", token, &body)
            .await?;
        let mut s = Self::require(EP, data, &log_id)?;
        s.log_id = log_id;
        Ok(s)
    }

    /// `cancel` (best effort, PULL_FROM_URL downloads only).
    pub async fn cancel(
        &self,
        token: &SecretString,
        publish_id: &str,
    ) -> Result<ApiAck, TikTokError> {
        let body = serde_json::json!({ "publish_id": publish_id });
        let (_, log_id) = self
            .call::<serde_json::Value, _>("cancel", "/v2/post/publish/cancel/", token, &body)
            .await?;
        Ok(ApiAck { log_id })
    }
}

/// Decodes a Content Posting `{data, error}` body whatever the HTTP status: a non-`ok` `error.code`
/// becomes [`TikTokError::Api`]; returns the data (if any) and the log id (body, else `x-tt-logid`).
pub fn decode_api_response<T: DeserializeOwned>(
    endpoint: &'static str,
    http_status: u16,
    body: &[u8],
    header_log_id: Option<String>,
) -> Result<(Option<T>, Option<String>), TikTokError> {
    let parsed: Result<Envelope<serde_json::Value>, _> = serde_json::from_slice(body);
    let (code, message, body_log_id, data) = match parsed {
        Ok(Envelope {
            data,
            error: Some(e),
        }) => (e.code, e.message, e.log_id, data),
        Ok(Envelope { error: None, .. }) | Err(_) => {
            log_call(endpoint, http_status, None, None, header_log_id.as_deref());
            return Err(TikTokError::Decode {
                endpoint,
                http_status,
                log_id: header_log_id,
                detail: format!("no error envelope ({} body bytes)", body.len()),
            });
        }
    };
    log_call(
        endpoint,
        http_status,
        Some(&code),
        body_log_id.as_deref(),
        header_log_id.as_deref(),
    );
    let log_id = body_log_id.filter(|s| !s.is_empty()).or(header_log_id);
    if code != "ok" {
        return Err(TikTokError::Api {
            endpoint,
            class: classify_response(&code, http_status),
            code,
            message,
            log_id,
            http_status,
        });
    }
    let data = match data {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v).map_err(|e| TikTokError::Decode {
            endpoint,
            http_status,
            log_id: log_id.clone(),
            detail: e.to_string(),
        })?),
    };
    Ok((data, log_id))
}

pub(crate) fn transport_error(endpoint: &'static str, source: reqwest::Error) -> TikTokError {
    let not_sent = source.is_connect() || source.is_builder();
    tracing::warn!(endpoint, api_version = API_VERSION, not_sent, error = %source, "tiktok transport error");
    if not_sent {
        TikTokError::NotSent { endpoint, source }
    } else {
        TikTokError::OutcomeUnknown { endpoint, source }
    }
}

pub(crate) fn log_call(
    endpoint: &'static str,
    http_status: u16,
    code: Option<&str>,
    log_id: Option<&str>,
    x_tt_logid: Option<&str>,
) {
    tracing::info!(
        endpoint,
        api_version = API_VERSION,
        http_status,
        code,
        log_id,
        x_tt_logid,
        "tiktok call"
    );
}
