//! The upstream ports: Ssemble (rendering) and TikTok (posting), as the functions use them.
//! Adapters live beside the HTTP clients; the functions see only these.

use std::future::Future;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::compliance::CreatorInfo;
use crate::ids::{PublishId, RequestId};
use crate::job::{Clip, ClipChoice, JobError, PostMode, PostSettings, RenderRequest};
use crate::lifecycle::{ErrorClass, PublishStatus};
use crate::ports::TokenSet;
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

/// Ssemble's answer about a render, confirmed by a status/get call.
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

pub trait RenderApi: Send + Sync {
    /// Creates a render whose completion Ssemble reports to `webhook_url`.
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

    /// The render's state, from Ssemble itself (a webhook is only a hint).
    fn render_status(
        &self,
        request_id: &RequestId,
    ) -> impl Future<Output = Result<RenderStatus, UpstreamError>> + Send;
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

pub trait PublishApi: Send + Sync {
    fn creator_info(
        &self,
        token: &SecretString,
    ) -> impl Future<Output = Result<CreatorInfo, UpstreamError>> + Send;

    /// The clip's size in bytes, needed by a FILE_UPLOAD init.
    fn clip_size(&self, clip: &Clip) -> impl Future<Output = Result<u64, UpstreamError>> + Send;

    /// Direct post (`video/init`) or draft (`inbox/video/init`). Called at most once per attempt.
    fn init(
        &self,
        token: &SecretString,
        post: &PostSettings,
        clip: &Clip,
        video_size: u64,
    ) -> impl Future<Output = Result<PublishInit, UpstreamError>> + Send;

    /// Streams the clip to the upload URL in chunks.
    fn upload(
        &self,
        upload_url: &SecretString,
        clip: &Clip,
        video_size: u64,
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    fn status(
        &self,
        token: &SecretString,
        publish_id: &PublishId,
    ) -> impl Future<Output = Result<ObservedStatus, UpstreamError>> + Send;
}

/// The OAuth side of TikTok, for connecting accounts.
pub trait AuthApi: Send + Sync {
    fn authorize_url(&self, state: &str, mode: PostMode) -> Result<String, UpstreamError>;
    fn exchange_code(
        &self,
        code: &str,
    ) -> impl Future<Output = Result<TokenSet, UpstreamError>> + Send;
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
