//! TikTok's posting rules that depend on the creator (creator_info), checked before every init
//! and when a client asks. The audit requires them; the API enforces them, not the clients.

use serde::{Deserialize, Serialize};

use crate::envelope::FieldError;
use crate::job::{PostMode, PostSettings, PrivacyLevel};

/// What creator_info says about the creator, in domain terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatorInfo {
    pub nickname: String,
    pub username: Option<String>,
    pub privacy_level_options: Vec<PrivacyLevel>,
    pub comment_disabled: bool,
    pub duet_disabled: bool,
    pub stitch_disabled: bool,
    pub max_video_post_duration_sec: Option<u32>,
    /// `None` when the creator can post now; otherwise TikTok's code (spam_risk_*, caps).
    pub cannot_post_reason: Option<String>,
}

/// Violations of the creator-dependent rules, as field errors. Empty means the post may go.
pub fn check(
    post: &PostSettings,
    clip_duration_secs: Option<f64>,
    creator: &CreatorInfo,
) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut add = |field: &str, message: String| {
        out.push(FieldError {
            field: field.into(),
            message,
        })
    };
    if let Some(reason) = &creator.cannot_post_reason {
        add(
            "tiktokAccountId",
            format!("the creator cannot post now ({reason}); try again later"),
        );
    }
    if let (Some(max), Some(d)) = (creator.max_video_post_duration_sec, clip_duration_secs)
        && d > f64::from(max)
    {
        add(
            "clip",
            format!("the clip lasts {d:.0} s; this creator may post at most {max} s"),
        );
    }
    if post.mode == PostMode::Direct {
        match post.privacy_level {
            Some(p) if !creator.privacy_level_options.contains(&p) => add(
                "post.privacyLevel",
                format!(
                    "{} is not one of this creator's privacy options",
                    p.as_str()
                ),
            ),
            _ => {}
        }
        // Interactions the creator disabled cannot be enabled by us.
        if creator.comment_disabled && !post.disable_comment {
            add(
                "post.disableComment",
                "the creator has disabled comments".into(),
            );
        }
        if creator.duet_disabled && !post.disable_duet {
            add("post.disableDuet", "the creator has disabled duets".into());
        }
        if creator.stitch_disabled && !post.disable_stitch {
            add(
                "post.disableStitch",
                "the creator has disabled stitches".into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ClipChoice;

    fn creator() -> CreatorInfo {
        CreatorInfo {
            nickname: "TikTok Official".into(),
            username: Some("tiktok".into()),
            privacy_level_options: vec![PrivacyLevel::PublicToEveryone, PrivacyLevel::SelfOnly],
            comment_disabled: false,
            duet_disabled: false,
            stitch_disabled: true,
            max_video_post_duration_sec: Some(300),
            cannot_post_reason: None,
        }
    }

    fn post(privacy: PrivacyLevel) -> PostSettings {
        PostSettings {
            mode: PostMode::Direct,
            privacy_level: Some(privacy),
            title: None,
            disable_comment: false,
            disable_duet: false,
            disable_stitch: true,
            brand_content_toggle: false,
            brand_organic_toggle: false,
            is_aigc: false,
            video_cover_timestamp_ms: None,
            clip: ClipChoice::TopViralScore,
        }
    }

    #[test]
    fn a_conforming_post_passes() {
        assert!(check(&post(PrivacyLevel::SelfOnly), Some(43.0), &creator()).is_empty());
    }

    #[test]
    fn each_creator_rule_is_enforced() {
        let fields = |p: &PostSettings, d: f64, c: &CreatorInfo| -> Vec<String> {
            check(p, Some(d), c).into_iter().map(|e| e.field).collect()
        };
        assert_eq!(
            fields(&post(PrivacyLevel::MutualFollowFriends), 43.0, &creator()),
            vec!["post.privacyLevel"]
        );
        assert_eq!(
            fields(&post(PrivacyLevel::SelfOnly), 301.0, &creator()),
            vec!["clip"]
        );
        let mut stitch_on = post(PrivacyLevel::SelfOnly);
        stitch_on.disable_stitch = false;
        assert_eq!(
            fields(&stitch_on, 43.0, &creator()),
            vec!["post.disableStitch"]
        );
        let mut capped = creator();
        capped.cannot_post_reason = Some("spam_risk_too_many_posts".into());
        assert_eq!(
            fields(&post(PrivacyLevel::SelfOnly), 43.0, &capped),
            vec!["tiktokAccountId"]
        );
    }
}
