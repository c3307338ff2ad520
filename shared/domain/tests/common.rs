#![allow(dead_code, clippy::unwrap_used)]

use reelay_domain::job::{ClipChoice, JobError, MediaSource, PostSettings, RenderRequest};
use reelay_domain::lifecycle::{ErrorClass, Event, PublishStatus, Via};
use reelay_domain::{
    AccountId, Clip, Job, JobId, JobSource, JobState, Policy, PostMode, PublishId, RequestId,
    TenantId, UtcTime,
};

pub fn now() -> UtcTime {
    UtcTime::parse("2026-03-10T18:00:00Z").unwrap()
}

pub fn post(mode: PostMode) -> PostSettings {
    PostSettings {
        mode,
        privacy_level: Some(reelay_domain::job::PrivacyLevel::SelfOnly),
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

/// A job forced into `state`, scheduled an hour ahead, as after one publish attempt.
pub fn job_in(state: JobState, mode: PostMode) -> Job {
    let source = JobSource::Render(RenderRequest {
        media: MediaSource::Url("https://www.youtube.com/watch?v=dQw4w9WgXcQ".into()),
        start: 0.0,
        end: 600.0,
        options: Default::default(),
    });
    let mut job = Job::create(
        JobId::generate(now(), 7),
        TenantId::parse("tenant_a").unwrap(),
        AccountId::parse("acct_kor_store_03").unwrap(),
        source,
        post(mode),
        now().plus(std::time::Duration::from_secs(3600)),
        None,
        now(),
        &Policy::default(),
    )
    .job;
    job.state = state;
    job.attempt = 1;
    if state >= JobState::Rendering {
        job.request_id = Some(RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap());
    }
    job
}

pub fn err(code: &str) -> JobError {
    JobError {
        code: code.into(),
        message: format!("{code} happened"),
        upstream_log_id: Some("202210112248442CB9319E1FB30C1073F3".into()),
    }
}

pub fn clip() -> Clip {
    Clip {
        short_id: "f2c713ff-865f-4cd5-98ab-f6aa696a3620".into(),
        video_url: "https://cf.ssemble.com/x.mp4".into(),
        duration_secs: Some(43.0),
        viral_score: Some(85.0),
    }
}

/// One representative of every event variant, in declaration order.
pub fn every_event() -> Vec<Event> {
    vec![
        Event::RenderSubmitStarted {
            webhook_token_hash: "ab".repeat(32),
        },
        Event::RenderSubmitted {
            request_id: RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap(),
        },
        Event::RenderSubmitRejected {
            error: err("rate_limit_exceeded"),
            class: ErrorClass::Retryable,
            retry_at: None,
        },
        Event::RenderProgressed,
        Event::RenderCompleted { clip: clip() },
        Event::RenderFailed {
            error: err("Video download failed"),
        },
        Event::PublishDue,
        Event::Held {
            reason: "tiktok_init_window".into(),
            until: Some(now().plus(std::time::Duration::from_secs(30))),
        },
        Event::PublishStarted,
        Event::PublishAccepted {
            publish_id: PublishId::parse("v_pub_file~v2-1.123456789").unwrap(),
            upload: true,
            upstream_log_id: None,
        },
        Event::PublishRejected {
            error: err("rate_limit_exceeded"),
            class: ErrorClass::Retryable,
            retry_at: None,
        },
        Event::PublishOutcomeUnknown {
            error: err("timeout"),
        },
        Event::LeaseExpired,
        Event::UploadCompleted,
        Event::UploadFailed {
            error: err("upload_expired"),
        },
        Event::StatusObserved {
            status: PublishStatus::Complete,
            post_ids: vec![],
            via: Via::Poll,
            upstream_log_id: None,
        },
        Event::NoLongerPublic {
            post_id: "7602997517160123666".into(),
        },
        Event::Expired,
        Event::Cancel,
        Event::Retry,
        Event::SubmitDue,
        Event::Deferred {
            until: now().plus(std::time::Duration::from_secs(60)),
        },
        Event::PreflightFailed {
            error: err("privacy_level_option_mismatch"),
        },
    ]
}
