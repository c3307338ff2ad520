#![allow(dead_code, clippy::unwrap_used)]

use reelay_domain::job::{ClipChoice, JobError, MediaSource, PostSettings, RenderRequest};
use reelay_domain::job::{Hold, NextCheck};
use reelay_domain::lifecycle::{Actor, ErrorClass, Event, PublishStatus, Via};
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

pub const RID: &str = "665a1b2c3d4e5f6a7b8c9d0e";
pub const PID: &str = "v_pub_file~v2-1.123456789";

pub fn rid() -> RequestId {
    RequestId::parse(RID).unwrap()
}

pub fn pid() -> PublishId {
    PublishId::parse(PID).unwrap()
}

/// A job forced into `state` the way the lifecycle leaves it there: scheduled an hour ahead, its
/// render `RID` from `rendering` on, one publish attempt from `publishing` on, TikTok's `PID`
/// from `publish_processing` on, with the next check that state carries. `publish_unknown` is
/// the init-outcome-unknown kind (no publish_id).
pub fn job_in(state: JobState, mode: PostMode) -> Job {
    use reelay_domain::lifecycle::CheckKind as K;
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
    let at = |secs: i64, kind| {
        Some(NextCheck {
            at: UtcTime::from_millis(now().as_millis() + secs * 1000),
            kind,
        })
    };
    job.state = state;
    if state >= JobState::Rendering {
        job.request_id = Some(rid());
        job.next_check = at(60, K::RenderPoll);
    }
    if state >= JobState::Ready {
        job.clip = Some(clip());
        job.next_check = at(3600, K::PublishAt);
    }
    if state >= JobState::PublishQueued {
        job.next_check = at(300, K::QueueStale);
    }
    if state >= JobState::Publishing {
        job.attempt = 1;
        // The lease has just passed: a `lease_expired` is due.
        job.next_check = at(-1, K::LeaseExpiry);
    }
    if matches!(
        state,
        JobState::PublishProcessing
            | JobState::Uploaded
            | JobState::Submitted
            | JobState::PublishComplete
            | JobState::PubliclyAvailable
            | JobState::PublishFailed
    ) {
        job.publish_id = Some(pid());
        job.publish_ids = vec![pid()];
        job.next_check = at(15, K::StatusPoll);
    }
    if state == JobState::PublishUnknown {
        job.hold = Some(Hold {
            reason: "publish_outcome_unknown".into(),
            until: None,
            since: Some(now()),
        });
        job.next_check = at(72 * 3600, K::UnknownResolve);
    }
    if state.is_terminal() {
        job.next_check = None;
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

/// One representative of every event variant, in declaration order, about the job's current
/// render (`RID`) and publish (`PID`) of attempt 1.
pub fn every_event() -> Vec<Event> {
    vec![
        Event::RenderSubmitStarted {
            webhook_token_hash: "ab".repeat(32),
        },
        Event::RenderSubmitted {
            request_id: rid(),
            found: false,
        },
        Event::RenderSubmitRejected {
            error: err("internal_error"),
            class: ErrorClass::Retryable,
            retry_at: None,
        },
        Event::RenderProgressed { request_id: rid() },
        Event::RenderCompleted {
            request_id: rid(),
            clip: clip(),
        },
        Event::RenderFailed {
            request_id: rid(),
            error: err("video_download_failed"),
        },
        Event::PublishDue,
        Event::Held {
            reason: "tiktok_init_window".into(),
            until: Some(now().plus(std::time::Duration::from_secs(30))),
        },
        Event::PublishStarted,
        Event::PublishAccepted {
            attempt: 1,
            publish_id: pid(),
            upload: true,
            upstream_log_id: None,
        },
        Event::PublishRejected {
            attempt: 1,
            error: err("rate_limit_exceeded"),
            class: ErrorClass::Retryable,
            retry_at: None,
        },
        Event::PublishOutcomeUnknown {
            attempt: 1,
            error: err("timeout"),
        },
        Event::LeaseExpired,
        Event::UploadCompleted { publish_id: pid() },
        Event::UploadFailed {
            publish_id: pid(),
            error: err("upload_expired"),
        },
        Event::StatusObserved {
            publish_id: pid(),
            status: PublishStatus::Complete,
            post_ids: vec![],
            via: Via::Poll,
            upstream_log_id: None,
        },
        Event::NoLongerPublic {
            publish_id: pid(),
            post_id: "7602997517160123666".into(),
        },
        Event::Expired,
        Event::Cancel { by: Actor::Owner },
        Event::Retry { by: Actor::Owner },
        Event::SubmitDue,
        Event::Deferred {
            until: now().plus(std::time::Duration::from_secs(60)),
        },
        Event::PreflightFailed {
            error: err("privacy_level_option_mismatch"),
        },
        Event::Amend {
            schedule_at: Some(now().plus(std::time::Duration::from_secs(3600))),
            title: Some("a new caption".into()),
        },
    ]
}
