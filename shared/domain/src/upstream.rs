//! The upstream ports: Ssemble (rendering) and TikTok (posting), as the functions use them.
//! Adapters live beside the HTTP clients; the functions see only these.

use std::future::Future;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::compliance::CreatorInfo;
use crate::ids::{AccountId, TenantId};
use crate::ids::{PublishId, RequestId};
use crate::job::{Clip, ClipChoice, JobError, PostMode, PostSettings, RenderRequest};
use crate::lifecycle::{ErrorClass, PublishStatus};
use crate::ports::{RefreshError, SecretError, TokenRefresher, TokenSet, TokenVault};
use crate::time::UtcTime;

/// An upstream call that did not succeed, classified once at the adapter.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {message}")]
pub struct UpstreamError {
    pub class: ErrorClass,
    pub code: String,
    pub message: String,
    pub log_id: Option<String>,
    /// When the upstream said to come back (Retry-After, reset), if it did.
    pub retry_at: Option<UtcTime>,
    /// The request may have taken effect (timeout after sending, connection reset): never repeat
    /// a side effect blindly.
    pub outcome_unknown: bool,
}

impl UpstreamError {
    pub fn job_error(&self) -> JobError {
        JobError {
            code: self.code.clone(),
            message: self.message.clone(),
            upstream_log_id: self.log_id.clone(),
        }
    }
}

/// Ssemble's answer about a render's progress (`GET /shorts/:id/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RenderProgress {
    /// Queued, processing, or a status this code does not know yet: keep waiting.
    Pending,
    /// Completed: the clips come from the request's document ([`RenderApi::render_clips`]).
    Completed,
    /// Failed, with Ssemble's own `failureReason` (free text).
    Failed {
        reason: String,
    },
    Cancelled,
}

/// What confirming a render found: the progress, and for a completed render its clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RenderStatus {
    Pending,
    Completed { clips: Vec<Clip> },
    Failed { reason: String },
    Cancelled,
}

/// Picks the clip to post: the one the job named, or the top viral score among clips that
/// rendered. The score's scale is not assumed (0–10 and 0–100 are both seen).
pub fn choose_clip(clips: &[Clip], choice: &ClipChoice) -> Option<Clip> {
    match choice {
        ClipChoice::ShortId(id) => clips.iter().find(|c| &c.short_id == id).cloned(),
        ClipChoice::TopViralScore => clips
            .iter()
            .max_by(|a, b| {
                let (a, b) = (
                    a.viral_score.unwrap_or(f64::MIN),
                    b.viral_score.unwrap_or(f64::MIN),
                );
                a.total_cmp(&b)
            })
            .cloned(),
    }
}

/// Ssemble, as the use cases call it. Every method is one budgeted call (or, for
/// [`RenderApi::find_submitted`], at most [`RenderApi::find_call_bound`] calls), so the caller
/// takes exactly the budget a call spends before making it.
pub trait RenderApi: Send + Sync {
    /// Creates a render whose completion Ssemble reports to `webhook_url`. Sent exactly once: a
    /// create that may have landed is `outcome_unknown`, never retried inside.
    fn submit(
        &self,
        request: &RenderRequest,
        webhook_url: &str,
    ) -> impl Future<Output = Result<RequestId, UpstreamError>> + Send;

    /// An earlier create of this request since `since`, if Ssemble has one (creates have no
    /// idempotency key, so a resubmission looks first).
    fn find_submitted(
        &self,
        request: &RenderRequest,
        since: UtcTime,
    ) -> impl Future<Output = Result<Option<RequestId>, UpstreamError>> + Send;

    /// The most calls one [`RenderApi::find_submitted`] makes (list pages plus confirmations).
    fn find_call_bound(&self) -> u32;

    /// The render's progress, from Ssemble itself (a webhook is only a hint). An id Ssemble does
    /// not know is an error with [`ErrorClass::Permanent`] and Ssemble's own code.
    fn render_progress(
        &self,
        request_id: &RequestId,
    ) -> impl Future<Output = Result<RenderProgress, UpstreamError>> + Send;

    /// The clips of a completed render; `None` while the document still lags the status.
    fn render_clips(
        &self,
        request_id: &RequestId,
    ) -> impl Future<Output = Result<Option<Vec<Clip>>, UpstreamError>> + Send;
}

/// TikTok's answer to an init.
#[derive(Debug, Clone)]
pub struct PublishInit {
    pub publish_id: PublishId,
    /// Where to PUT the bytes (FILE_UPLOAD); a capability, so kept secret. `None` when TikTok pulls.
    pub upload_url: Option<SecretString>,
    pub log_id: Option<String>,
}

/// A status/fetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedStatus {
    pub status: PublishStatus,
    pub post_ids: Vec<String>,
    pub log_id: Option<String>,
}

/// TikTok's Content Posting API, as the use cases call it.
pub trait PublishApi: Send + Sync {
    fn creator_info(
        &self,
        token: &SecretString,
    ) -> impl Future<Output = Result<CreatorInfo, UpstreamError>> + Send;

    /// The clip's size in bytes, needed by a FILE_UPLOAD init; gives up at `deadline`.
    fn clip_size(
        &self,
        clip: &Clip,
        deadline: UtcTime,
    ) -> impl Future<Output = Result<u64, UpstreamError>> + Send;

    /// Direct post (`video/init`) or draft (`inbox/video/init`). Called at most once per attempt;
    /// its own timeout is the adapter's, shorter than the publish lease.
    fn init(
        &self,
        token: &SecretString,
        post: &PostSettings,
        clip: &Clip,
        video_size: u64,
    ) -> impl Future<Output = Result<PublishInit, UpstreamError>> + Send;

    /// Streams the clip to the upload URL in chunks; no chunk outlasts `deadline`.
    fn upload(
        &self,
        upload_url: &SecretString,
        clip: &Clip,
        video_size: u64,
        deadline: UtcTime,
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    fn status(
        &self,
        token: &SecretString,
        publish_id: &PublishId,
    ) -> impl Future<Output = Result<ObservedStatus, UpstreamError>> + Send;
}

/// The OAuth side of TikTok, for connecting accounts.
pub trait AuthApi: Send + Sync {
    /// The creator's authorize link. `redirect_uri` is this API's own callback URL, as the
    /// connecting request reached it (TikTok checks it against the app's registered URIs).
    fn authorize_url(
        &self,
        state: &str,
        mode: PostMode,
        redirect_uri: &str,
    ) -> Result<String, UpstreamError>;

    /// The callback's code as tokens; `redirect_uri` must be the one the link carried (the
    /// callback's own URL), or TikTok refuses the exchange.
    fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> impl Future<Output = Result<TokenSet, UpstreamError>> + Send;

    /// Revokes the creator's authorisation of the app (TikTok's `oauth/revoke` of an access
    /// token): a disconnected account's tokens stop working at TikTok too.
    fn revoke(
        &self,
        access_token: &SecretString,
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;
}

/// The code of every call to a port a function did not wire.
pub const NOT_WIRED: &str = "not_wired";

/// A port this function never calls (the Ssemble webhook has no TikTok, the TikTok webhook no
/// Ssemble). Every call fails with [`NOT_WIRED`]; nothing is built, fetched or connected for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwired;

fn not_wired() -> UpstreamError {
    UpstreamError {
        class: ErrorClass::Permanent,
        code: NOT_WIRED.into(),
        message: "this function has no adapter for this upstream".into(),
        log_id: None,
        retry_at: None,
        outcome_unknown: false,
    }
}

impl RenderApi for Unwired {
    async fn submit(&self, _: &RenderRequest, _: &str) -> Result<RequestId, UpstreamError> {
        Err(not_wired())
    }
    async fn find_submitted(
        &self,
        _: &RenderRequest,
        _: UtcTime,
    ) -> Result<Option<RequestId>, UpstreamError> {
        Err(not_wired())
    }
    fn find_call_bound(&self) -> u32 {
        0
    }
    async fn render_progress(&self, _: &RequestId) -> Result<RenderProgress, UpstreamError> {
        Err(not_wired())
    }
    async fn render_clips(&self, _: &RequestId) -> Result<Option<Vec<Clip>>, UpstreamError> {
        Err(not_wired())
    }
}

impl PublishApi for Unwired {
    async fn creator_info(&self, _: &SecretString) -> Result<CreatorInfo, UpstreamError> {
        Err(not_wired())
    }
    async fn clip_size(&self, _: &Clip, _: UtcTime) -> Result<u64, UpstreamError> {
        Err(not_wired())
    }
    async fn init(
        &self,
        _: &SecretString,
        _: &PostSettings,
        _: &Clip,
        _: u64,
    ) -> Result<PublishInit, UpstreamError> {
        Err(not_wired())
    }
    async fn upload(
        &self,
        _: &SecretString,
        _: &Clip,
        _: u64,
        _: UtcTime,
    ) -> Result<(), UpstreamError> {
        Err(not_wired())
    }
    async fn status(
        &self,
        _: &SecretString,
        _: &PublishId,
    ) -> Result<ObservedStatus, UpstreamError> {
        Err(not_wired())
    }
}

impl AuthApi for Unwired {
    fn authorize_url(&self, _: &str, _: PostMode, _: &str) -> Result<String, UpstreamError> {
        Err(not_wired())
    }
    async fn exchange_code(&self, _: &str, _: &str) -> Result<TokenSet, UpstreamError> {
        Err(not_wired())
    }
    async fn revoke(&self, _: &SecretString) -> Result<(), UpstreamError> {
        Err(not_wired())
    }
}

impl TokenVault for Unwired {
    async fn get_tokens(
        &self,
        _: &TenantId,
        _: &AccountId,
    ) -> Result<Option<TokenSet>, SecretError> {
        Err(SecretError::NotFound)
    }
    async fn put_tokens(
        &self,
        _: &TenantId,
        _: &AccountId,
        _: &TokenSet,
    ) -> Result<(), SecretError> {
        Err(SecretError::NotFound)
    }
    async fn remove_tokens(&self, _: &TenantId, _: &AccountId) -> Result<(), SecretError> {
        Err(SecretError::NotFound)
    }
}

impl TokenRefresher for Unwired {
    async fn refresh(&self, _: &SecretString) -> Result<TokenSet, RefreshError> {
        Err(RefreshError::Transient(NOT_WIRED.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(id: &str, score: Option<f64>) -> Clip {
        Clip {
            short_id: id.into(),
            video_url: format!("https://cdn/{id}.mp4"),
            duration_secs: Some(30.0),
            viral_score: score,
        }
    }

    #[test]
    fn the_top_score_wins_whatever_its_scale_and_a_named_clip_is_honoured() {
        let clips = vec![clip("a", Some(8.5)), clip("b", Some(85.0)), clip("c", None)];
        assert_eq!(
            choose_clip(&clips, &ClipChoice::TopViralScore).map(|c| c.short_id),
            Some("b".into())
        );
        assert_eq!(
            choose_clip(&clips, &ClipChoice::ShortId("c".into())).map(|c| c.short_id),
            Some("c".into())
        );
        assert_eq!(choose_clip(&clips, &ClipChoice::ShortId("zz".into())), None);
        assert_eq!(choose_clip(&[], &ClipChoice::TopViralScore), None);
    }
}
