//! The domain's TikTok ports ([`PublishApi`], [`AuthApi`], [`TokenRefresher`]) over [`TikTokClient`].
//!
//! Every failure becomes an [`UpstreamError`] classified once here, from `error.code` (never the HTTP
//! status alone). A failure whose request may have taken effect (timeout after sending, an answer
//! that could not be read) carries `outcome_unknown: true`: the publisher must reconcile such an
//! init, never repeat it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reelay_domain::compliance::CreatorInfo as DomainCreatorInfo;
use reelay_domain::job::{Clip, PostMode, PostSettings, PrivacyLevel as DomainPrivacy};
use reelay_domain::lifecycle::{ErrorClass as DomainClass, PublishStatus as DomainStatus};
use reelay_domain::ports::{RefreshError, TokenRefresher, TokenSet as DomainTokenSet};
use reelay_domain::upstream::{AuthApi, ObservedStatus, PublishApi, PublishInit, UpstreamError};
use reelay_domain::{PublishId, UtcTime};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    ChunkPlan, Deadline, ErrorClass, HttpSource, InitSource, PostInfo, PrivacyLevel,
    PublishStatusKind, SourceInfo, TikTokClient, TikTokError, TokenSet,
};

/// creator_info codes that mean "this creator cannot post now" (TikTok answers them with HTTP 200).
const CANNOT_POST_CODES: [&str; 3] = [
    "spam_risk_too_many_posts",
    "spam_risk_user_banned_from_posting",
    "reached_active_user_cap",
];

/// The code of a call stopped by the caller's deadline (Retryable: a later invocation has time).
pub const DEADLINE_CODE: &str = "deadline_exceeded";

/// The adapter. Cheap to clone (the client shares one connection pool).
#[derive(Debug, Clone)]
pub struct TikTokPort {
    client: TikTokClient,
    /// `Content-Type` of the uploaded clips (Ssemble renders MP4).
    content_type: String,
    /// A verified URL prefix (`https://host/path/`): clips under it are pulled by TikTok
    /// (PULL_FROM_URL, falling back to FILE_UPLOAD on `url_ownership_unverified`); others are uploaded.
    pull_prefix: Option<String>,
}

impl TikTokPort {
    pub fn new(client: TikTokClient) -> Self {
        Self {
            client,
            content_type: "video/mp4".into(),
            pull_prefix: None,
        }
    }

    /// Lets TikTok pull clips whose URL starts with `prefix` (a URL property verified in the portal).
    pub fn with_pull_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.pull_prefix = Some(prefix.into());
        self
    }

    pub fn client(&self) -> &TikTokClient {
        &self.client
    }

    fn plan(&self, video_size: u64) -> Result<ChunkPlan, UpstreamError> {
        ChunkPlan::new(video_size, &self.client.config().chunk_policy)
            .map_err(|e| upstream_error(&TikTokError::from(e)))
    }
}

/// Maps a client error to the domain's classified error: class, TikTok code, log id and whether
/// the request may have taken effect.
pub fn upstream_error(e: &TikTokError) -> UpstreamError {
    let outcome_unknown = e.is_outcome_unknown();
    let class = match e.class() {
        Some(c) => domain_class(c),
        // Unknown outcomes are transient by nature, but the flag forbids repeating side effects.
        None if outcome_unknown => DomainClass::Retryable,
        None => match e {
            // The clip's origin or the upload path failed: another try may work.
            TikTokError::Upload(_) | TikTokError::Source(_) => DomainClass::Retryable,
            _ => DomainClass::Permanent,
        },
    };
    let code = match e {
        TikTokError::NotSent { .. } => "not_sent",
        TikTokError::OutcomeUnknown { .. } => "outcome_unknown",
        TikTokError::Decode { .. } => "undecodable_response",
        TikTokError::ChunkPlan(_) => "chunk_plan_invalid",
        TikTokError::Upload(_) => "upload_failed",
        TikTokError::Source(_) => "clip_source_unavailable",
        TikTokError::Config(_) => "tiktok_config_invalid",
        TikTokError::DeadlineExceeded { .. } => DEADLINE_CODE,
        TikTokError::Api { .. } | TikTokError::OAuth { .. } => e.code().unwrap_or("unknown"),
    };
    UpstreamError {
        class,
        code: code.to_owned(),
        // The client's messages carry no token, secret or upload URL (URLs are stripped).
        message: e.to_string(),
        log_id: e.log_id().map(str::to_owned),
        retry_at: None,
        outcome_unknown,
    }
}

fn domain_class(c: ErrorClass) -> DomainClass {
    match c {
        ErrorClass::Retryable => DomainClass::Retryable,
        ErrorClass::RefreshThenRetry => DomainClass::RefreshThenRetry,
        ErrorClass::NeedsUser => DomainClass::NeedsUser,
        ErrorClass::WaitForWindow => DomainClass::WaitForWindow,
        ErrorClass::Permanent => DomainClass::Permanent,
    }
}

fn privacy(p: DomainPrivacy) -> PrivacyLevel {
    match p {
        DomainPrivacy::PublicToEveryone => PrivacyLevel::PublicToEveryone,
        DomainPrivacy::MutualFollowFriends => PrivacyLevel::MutualFollowFriends,
        DomainPrivacy::FollowerOfCreator => PrivacyLevel::FollowerOfCreator,
        DomainPrivacy::SelfOnly => PrivacyLevel::SelfOnly,
    }
}

fn parse_privacy(raw: &str) -> Option<DomainPrivacy> {
    match raw {
        "PUBLIC_TO_EVERYONE" => Some(DomainPrivacy::PublicToEveryone),
        "MUTUAL_FOLLOW_FRIENDS" => Some(DomainPrivacy::MutualFollowFriends),
        "FOLLOWER_OF_CREATOR" => Some(DomainPrivacy::FollowerOfCreator),
        "SELF_ONLY" => Some(DomainPrivacy::SelfOnly),
        _ => None,
    }
}

/// The direct post's `post_info`; `None` for a draft (inbox init takes `source_info` only).
/// A direct post without a privacy level is refused here: TikTok's audit forbids a default.
pub fn post_info(post: &PostSettings) -> Result<Option<PostInfo>, UpstreamError> {
    if post.mode == PostMode::Draft {
        return Ok(None);
    }
    let Some(level) = post.privacy_level else {
        return Err(UpstreamError {
            class: DomainClass::Permanent,
            code: "privacy_level_required".into(),
            message: "a direct post needs a privacy level chosen by the creator".into(),
            log_id: None,
            retry_at: None,
            outcome_unknown: false,
        });
    };
    Ok(Some(PostInfo {
        title: post.title.clone(),
        privacy_level: privacy(level),
        disable_duet: post.disable_duet,
        disable_stitch: post.disable_stitch,
        disable_comment: post.disable_comment,
        video_cover_timestamp_ms: post.video_cover_timestamp_ms,
        brand_content_toggle: post.brand_content_toggle,
        brand_organic_toggle: post.brand_organic_toggle,
        is_aigc: post.is_aigc.then_some(true),
    }))
}

/// `status/fetch` in domain terms; post ids as decimal strings (19 digits exceed f64 precision).
pub fn observed_status(s: &crate::PublishStatus) -> ObservedStatus {
    let status = match &s.status {
        PublishStatusKind::ProcessingUpload | PublishStatusKind::ProcessingDownload => {
            DomainStatus::Processing
        }
        PublishStatusKind::SendToUserInbox => DomainStatus::SentToInbox,
        PublishStatusKind::PublishComplete => DomainStatus::Complete,
        PublishStatusKind::Failed => DomainStatus::Failed {
            reason: s.fail_reason.clone().unwrap_or_else(|| "unknown".into()),
        },
        PublishStatusKind::Other(raw) => DomainStatus::Other { raw: raw.clone() },
    };
    ObservedStatus {
        status,
        post_ids: s.public_post_ids.iter().map(u64::to_string).collect(),
        log_id: s.log_id.clone(),
    }
}

/// The wall clock (TikTok's `expires_in` counts from the moment of the answer).
fn now() -> UtcTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    UtcTime::from_millis(ms)
}

/// The domain's wall-clock deadline as the client's, from now on.
fn deadline_of(deadline: UtcTime) -> Deadline {
    Deadline::at_unix_millis(deadline.as_millis())
}

/// A token-endpoint answer as the domain stores it: expiries = `now` + the lifetimes TikTok gave.
pub fn token_set(t: &TokenSet, now: UtcTime) -> DomainTokenSet {
    DomainTokenSet {
        access_token: t.access_token.clone(),
        access_expires_at: now.plus(Duration::from_secs(t.expires_in)),
        refresh_token: t.refresh_token.clone(),
        refresh_expires_at: now.plus(Duration::from_secs(t.refresh_expires_in)),
        open_id: t.open_id.clone(),
        scopes: t.scopes().map(str::to_owned).collect(),
    }
}

impl PublishApi for TikTokPort {
    async fn creator_info(&self, token: &SecretString) -> Result<DomainCreatorInfo, UpstreamError> {
        match self.client.creator_info(token).await {
            Ok(info) => Ok(DomainCreatorInfo {
                nickname: info.creator_nickname.clone().unwrap_or_default(),
                username: info.creator_username.clone(),
                privacy_level_options: info
                    .privacy_level_options
                    .iter()
                    .filter_map(|p| parse_privacy(p))
                    .collect(),
                comment_disabled: info.comment_disabled,
                duet_disabled: info.duet_disabled,
                stitch_disabled: info.stitch_disabled,
                max_video_post_duration_sec: info.max_video_post_duration_sec,
                cannot_post_reason: None,
            }),
            // "The creator can not make more posts at this moment" is an answer, not a failure.
            Err(TikTokError::Api { code, .. }) if CANNOT_POST_CODES.contains(&code.as_str()) => {
                Ok(DomainCreatorInfo {
                    nickname: String::new(),
                    username: None,
                    privacy_level_options: Vec::new(),
                    comment_disabled: false,
                    duet_disabled: false,
                    stitch_disabled: false,
                    max_video_post_duration_sec: None,
                    cannot_post_reason: Some(code),
                })
            }
            Err(e) => Err(upstream_error(&e)),
        }
    }

    async fn clip_size(&self, clip: &Clip, deadline: UtcTime) -> Result<u64, UpstreamError> {
        let source = self
            .client
            .open_clip(clip.video_url.clone(), deadline_of(deadline))
            .await
            .map_err(|e| upstream_error(&e))?;
        use crate::UploadSource;
        Ok(source.len())
    }

    async fn init(
        &self,
        token: &SecretString,
        post: &PostSettings,
        clip: &Clip,
        video_size: u64,
    ) -> Result<PublishInit, UpstreamError> {
        let info = post_info(post)?;
        let pull = self
            .pull_prefix
            .as_deref()
            .is_some_and(|p| clip.video_url.starts_with(p));
        let response = if pull {
            let outcome = self
                .client
                .init_pull_or_upload(token, info.as_ref(), &clip.video_url, video_size)
                .await
                .map_err(|e| upstream_error(&e))?;
            if let InitSource::FileUpload(_) = outcome.source {
                tracing::info!(
                    publish_id = %outcome.response.publish_id,
                    rejected_log_id = outcome.fallback_from_log_id.as_deref(),
                    "pull not verified; the clip will be uploaded"
                );
            }
            outcome.response
        } else {
            let source = SourceInfo::from(&self.plan(video_size)?);
            match &info {
                Some(info) => self.client.init_direct_post(token, info, &source).await,
                None => self.client.init_inbox(token, &source).await,
            }
            .map_err(|e| upstream_error(&e))?
        };
        let publish_id = PublishId::parse(response.publish_id.clone()).map_err(|e| {
            UpstreamError {
                class: DomainClass::Permanent,
                code: "invalid_publish_id_answer".into(),
                message: e.to_string(),
                log_id: response.log_id.clone(),
                retry_at: None,
                // TikTok accepted something we cannot name: it may exist.
                outcome_unknown: true,
            }
        })?;
        Ok(PublishInit {
            publish_id,
            upload_url: response.upload_url.map(SecretString::from),
            log_id: response.log_id,
        })
    }

    async fn upload(
        &self,
        upload_url: &SecretString,
        clip: &Clip,
        video_size: u64,
        deadline: UtcTime,
    ) -> Result<(), UpstreamError> {
        let plan = self.plan(video_size)?;
        let source = HttpSource::with_len(
            self.client.http().clone(),
            clip.video_url.clone(),
            video_size,
        );
        let report = self
            .client
            .upload_within(
                upload_url.expose_secret(),
                &plan,
                &source,
                &self.content_type,
                deadline_of(deadline),
            )
            .await
            .map_err(|e| upstream_error(&e))?;
        tracing::info!(
            video_size = report.video_size,
            chunks = report.chunks,
            requests = report.requests,
            retries = report.retries,
            log_id = report.log_id.as_deref(),
            "clip uploaded"
        );
        Ok(())
    }

    async fn status(
        &self,
        token: &SecretString,
        publish_id: &PublishId,
    ) -> Result<ObservedStatus, UpstreamError> {
        self.client
            .fetch_status(token, publish_id.as_str())
            .await
            .map(|s| observed_status(&s))
            .map_err(|e| upstream_error(&e))
    }
}

impl AuthApi for TikTokPort {
    fn authorize_url(
        &self,
        state: &str,
        mode: PostMode,
        redirect_uri: &str,
    ) -> Result<String, UpstreamError> {
        // Direct posting asks for drafts too, so one connection serves both kinds of job.
        let scopes: &[&str] = match mode {
            PostMode::Direct => &["user.info.basic", "video.publish", "video.upload"],
            PostMode::Draft => &["user.info.basic", "video.upload"],
        };
        self.client
            .authorize_url(scopes, state, redirect_uri)
            .map_err(|e| upstream_error(&e))
    }

    async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<DomainTokenSet, UpstreamError> {
        let t = self
            .client
            .exchange_code(code, redirect_uri, None)
            .await
            .map_err(|e| upstream_error(&e))?;
        Ok(token_set(&t, now()))
    }

    async fn revoke(&self, access_token: &SecretString) -> Result<(), UpstreamError> {
        self.client
            .revoke(access_token)
            .await
            .map(|_| ())
            .map_err(|e| upstream_error(&e))
    }
}

impl TokenRefresher for TikTokPort {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<DomainTokenSet, RefreshError> {
        match self.client.refresh(refresh_token).await {
            Ok(t) => Ok(token_set(&t, now())),
            Err(e) if e.code() == Some("invalid_grant") => Err(RefreshError::Rejected),
            Err(e) => Err(RefreshError::Transient(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelay_domain::job::ClipChoice;

    fn api(code: &str, http_status: u16) -> TikTokError {
        TikTokError::Api {
            endpoint: "video/init",
            code: code.into(),
            message: "m".into(),
            log_id: Some("LOG1".into()),
            class: crate::classify_response(code, http_status),
            http_status,
        }
    }

    #[test]
    fn when_tiktok_rejects_should_keep_code_class_and_log_id() {
        let e = upstream_error(&api("spam_risk_too_many_posts", 403));
        assert_eq!(e.class, DomainClass::WaitForWindow);
        assert_eq!(e.code, "spam_risk_too_many_posts");
        assert_eq!(e.log_id.as_deref(), Some("LOG1"));
        assert!(!e.outcome_unknown);
        assert_eq!(
            upstream_error(&api("access_token_invalid", 401)).class,
            DomainClass::RefreshThenRetry
        );
        assert_eq!(
            upstream_error(&api("scope_not_authorized", 401)).class,
            DomainClass::NeedsUser
        );
    }

    #[test]
    fn when_the_deadline_passed_should_be_retryable_and_unknown_only_if_a_request_was_cut() {
        for cut in [false, true] {
            let e = upstream_error(&TikTokError::DeadlineExceeded {
                stage: "upload",
                request_cut: cut,
            });
            assert_eq!(e.class, DomainClass::Retryable);
            assert_eq!(e.code, DEADLINE_CODE);
            assert_eq!(e.outcome_unknown, cut);
        }
    }

    #[test]
    fn when_the_answer_is_unreadable_should_be_outcome_unknown() {
        let e = upstream_error(&TikTokError::Decode {
            endpoint: "video/init",
            http_status: 200,
            log_id: None,
            detail: "x".into(),
        });
        assert!(e.outcome_unknown);
        assert_eq!(e.code, "undecodable_response");
    }

    fn settings(mode: PostMode, privacy: Option<DomainPrivacy>) -> PostSettings {
        PostSettings {
            mode,
            privacy_level: privacy,
            title: Some("t".into()),
            disable_comment: true,
            disable_duet: false,
            disable_stitch: true,
            brand_content_toggle: false,
            brand_organic_toggle: true,
            is_aigc: true,
            video_cover_timestamp_ms: Some(5),
            clip: ClipChoice::TopViralScore,
        }
    }

    #[test]
    fn when_mapping_post_settings_should_require_privacy_only_for_direct_posts() {
        let info = post_info(&settings(PostMode::Direct, Some(DomainPrivacy::SelfOnly)))
            .unwrap()
            .unwrap();
        assert_eq!(info.privacy_level, PrivacyLevel::SelfOnly);
        assert!(info.disable_comment && info.disable_stitch && info.brand_organic_toggle);
        assert_eq!(info.is_aigc, Some(true));
        assert_eq!(
            post_info(&settings(PostMode::Direct, None))
                .unwrap_err()
                .code,
            "privacy_level_required"
        );
        assert!(
            post_info(&settings(PostMode::Draft, None))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn when_mapping_status_should_follow_the_documented_values() {
        let s = |raw: &str, ids: Vec<u64>| crate::PublishStatus {
            status: PublishStatusKind::parse(raw),
            fail_reason: Some("picture_size_check_failed".into()),
            public_post_ids: ids,
            uploaded_bytes: None,
            downloaded_bytes: None,
            log_id: None,
        };
        assert_eq!(
            observed_status(&s("PROCESSING_DOWNLOAD", vec![])).status,
            DomainStatus::Processing
        );
        assert_eq!(
            observed_status(&s("SEND_TO_USER_INBOX", vec![])).status,
            DomainStatus::SentToInbox
        );
        let done = observed_status(&s("PUBLISH_COMPLETE", vec![7_678_907_398_077_074_696]));
        assert_eq!(done.status, DomainStatus::Complete);
        assert_eq!(done.post_ids, vec!["7678907398077074696".to_owned()]);
        assert_eq!(
            observed_status(&s("FAILED", vec![])).status,
            DomainStatus::Failed {
                reason: "picture_size_check_failed".into()
            }
        );
        assert_eq!(
            observed_status(&s("NEW_THING", vec![])).status,
            DomainStatus::Other {
                raw: "NEW_THING".into()
            }
        );
    }
}
