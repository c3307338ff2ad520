//! Plain values tests keep needing: a render request, post settings, clips, upstream errors.

use reelay_domain::job::{ClipChoice, MediaSource, PostSettings, PrivacyLevel, RenderRequest};
use reelay_domain::lifecycle::ErrorClass;
use reelay_domain::upstream::UpstreamError;
use reelay_domain::{Clip, PostMode};

/// A 10-minute YouTube source.
pub fn render_request() -> RenderRequest {
    RenderRequest {
        media: MediaSource::Url("https://www.youtube.com/watch?v=dQw4w9WgXcQ".into()),
        start: 0.0,
        end: 600.0,
        options: Default::default(),
    }
}

/// A post of `mode`; a direct post is `SELF_ONLY` (every creator offers it).
pub fn post(mode: PostMode) -> PostSettings {
    PostSettings {
        mode,
        privacy_level: (mode == PostMode::Direct).then_some(PrivacyLevel::SelfOnly),
        title: Some("a #cat video".into()),
        disable_comment: false,
        disable_duet: false,
        disable_stitch: false,
        brand_content_toggle: false,
        brand_organic_toggle: false,
        is_aigc: false,
        video_cover_timestamp_ms: None,
        clip: ClipChoice::TopViralScore,
    }
}

pub fn clip(short_id: &str, viral_score: f64) -> Clip {
    Clip {
        short_id: short_id.into(),
        video_url: format!("https://cdn.ssemble.test/{short_id}.mp4"),
        duration_secs: Some(30.0),
        viral_score: Some(viral_score),
    }
}

/// An upstream error of `class` with `code`, the outcome known.
pub fn upstream_error(class: ErrorClass, code: &str) -> UpstreamError {
    UpstreamError {
        class,
        code: code.into(),
        message: format!("{code} (scripted)"),
        log_id: Some("202603101800000000SCRIPTED".into()),
        retry_at: None,
        outcome_unknown: false,
    }
}

/// A timeout after the request left: the outcome is unknown.
pub fn unknown_outcome(code: &str) -> UpstreamError {
    UpstreamError {
        outcome_unknown: true,
        ..upstream_error(ErrorClass::Retryable, code)
    }
}
