//! Observations belong to their publish attempt, a known publish_id is always reconcilable, and
//! every state has a bounded way out. Regression tests for issue 10's defects 1, 2, 5, 6 and 7
//! at the level of the lifecycle table; the deterministic simulation checks them end to end.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{err, job_in, now, pid};
use reelay_domain::job::{Applied, Pointer, Rescheduled, STALE_OBSERVATION};
use reelay_domain::lifecycle::{Actor, CheckKind, Effect, ErrorClass, Event, PublishStatus, Via};
use reelay_domain::{Job, JobState, Policy, PostMode, PublishId, Step, TransitionError, UtcTime};

fn pid1() -> PublishId {
    PublishId::parse("v_pub_file~v2-1.1111").unwrap()
}

fn status(publish_id: PublishId, status: PublishStatus, via: Via) -> Event {
    Event::StatusObserved {
        publish_id,
        status,
        post_ids: vec![],
        via,
        upstream_log_id: None,
    }
}

fn failed(publish_id: PublishId, reason: &str) -> Event {
    status(
        publish_id,
        PublishStatus::Failed {
            reason: reason.into(),
        },
        Via::Webhook,
    )
}

fn applied(job: &Job, event: &Event, at: UtcTime) -> Applied {
    match job.apply(event, at, &Policy::default()).unwrap() {
        Step::Applied(a) => *a,
        other => panic!("{} not applied: {other:?}", event.name()),
    }
}

fn rescheduled(job: &Job, event: &Event, at: UtcTime) -> Rescheduled {
    match job.apply(event, at, &Policy::default()).unwrap() {
        Step::Rescheduled(r) => *r,
        other => panic!("{} not rescheduled: {other:?}", event.name()),
    }
}

/// Attempt 2 in flight at TikTok (pid()), attempt 1 (pid1()) failed earlier.
fn second_attempt(state: JobState) -> Job {
    let mut job = job_in(state, PostMode::Direct);
    job.attempt = 2;
    job.publish_ids = vec![pid1(), pid()];
    job
}

#[test]
fn defect_1_a_late_failure_of_an_earlier_attempt_never_moves_the_current_one() {
    for state in [
        JobState::PublishProcessing,
        JobState::Uploaded,
        JobState::Submitted,
    ] {
        for reason in ["internal", "spam_risk_text"] {
            let job = second_attempt(state);
            let a = applied(&job, &failed(pid1(), reason), now());
            assert_eq!(a.audit.event, STALE_OBSERVATION, "{state} {reason}");
            assert_eq!(
                a.job.state, state,
                "a late FAILED of attempt 1 moved attempt 2"
            );
            assert_eq!(a.job.publish_id, Some(pid()));
            assert_eq!(a.job.next_check, job.next_check);
            assert!(a.effects.is_empty());
        }
    }
}

#[test]
fn a_new_attempt_forgets_the_previous_publish_so_its_observations_are_stale() {
    // Attempt 1 failed (retryable): back to ready with its publish_id still shown.
    let job = job_in(JobState::Uploaded, PostMode::Direct);
    let ready = applied(&job, &failed(pid(), "internal"), now()).job;
    assert_eq!(ready.state, JobState::Ready);
    let at = ready.next_check.unwrap().at;
    let queued = applied(&ready, &Event::PublishDue, at).job;
    let started = applied(&queued, &Event::PublishStarted, at);
    assert_eq!(started.job.publish_id, None);
    assert_eq!(started.job.attempt, 2);
    // Attempt 1's FAILED delivered again, and a COMPLETE that must not exist: neither moves it.
    for late in [
        failed(pid(), "internal"),
        status(pid(), PublishStatus::Complete, Via::Webhook),
    ] {
        let a = applied(&started.job, &late, at);
        assert_eq!(a.audit.event, STALE_OBSERVATION);
        assert_eq!(a.job.state, JobState::Publishing);
    }
}

#[test]
fn a_slow_publishers_answer_for_an_earlier_attempt_is_recorded_with_its_publish_id_not_applied() {
    let mut job = job_in(JobState::Publishing, PostMode::Direct);
    job.attempt = 2;
    let late = Event::PublishAccepted {
        attempt: 1,
        publish_id: pid1(),
        upload: true,
        upstream_log_id: None,
    };
    let a = applied(&job, &late, now());
    assert_eq!(a.audit.event, STALE_OBSERVATION);
    assert_eq!(a.job.state, JobState::Publishing);
    assert_eq!(a.job.publish_id, None);
    assert!(a.job.publish_ids.contains(&pid1()));
    assert_eq!(
        a.pointers,
        vec![Pointer::Publish(pid1())],
        "its webhooks must find this job"
    );
    assert!(a.effects.is_empty(), "no bytes for a stale attempt");
}

#[test]
fn defect_2_a_stuck_publish_with_a_publish_id_is_reconciled_by_polling_and_webhooks() {
    let job = job_in(JobState::PublishProcessing, PostMode::Direct);
    let stuck = applied(&job, &Event::Expired, now()).job;
    assert_eq!(stuck.state, JobState::PublishUnknown);
    assert_eq!(
        stuck.next_check.map(|c| c.kind),
        Some(CheckKind::StatusPoll)
    );
    // Still processing: only the next poll moves.
    let r = rescheduled(
        &stuck,
        &status(pid(), PublishStatus::Processing, Via::Poll),
        now().plus(Duration::from_secs(600)),
    );
    assert_eq!(r.job.state, JobState::PublishUnknown);
    // The post did complete (moderation hid it for a while): the job says so.
    let done = applied(
        &stuck,
        &status(pid(), PublishStatus::Complete, Via::Webhook),
        now(),
    );
    assert_eq!(done.job.state, JobState::PublishComplete);
    assert_eq!(done.job.hold, None);
    // TikTok failed it: a definite answer about this very publish.
    let gone = applied(&stuck, &failed(pid(), "spam_risk"), now());
    assert_eq!(gone.job.state, JobState::PublishFailed);
    assert_eq!(
        gone.job.last_error.as_ref().map(|e| e.code.as_str()),
        Some("spam_risk")
    );
}

#[test]
fn defect_2_a_retry_that_could_post_twice_is_refused() {
    let job = job_in(JobState::PublishProcessing, PostMode::Direct);
    let stuck = applied(&job, &Event::Expired, now()).job;
    assert!(matches!(
        stuck.apply(
            &Event::Retry { by: Actor::Owner },
            now(),
            &Policy::default()
        ),
        Err(TransitionError::RetryCouldDuplicate { .. })
    ));
    let parked = applied(
        &stuck,
        &Event::Expired,
        now().plus(Duration::from_secs(73 * 3600)),
    )
    .job;
    assert_eq!(parked.hold_reason(), Some("needs_operator"));
    assert!(
        matches!(
            parked.apply(
                &Event::Retry { by: Actor::Owner },
                now(),
                &Policy::default()
            ),
            Err(TransitionError::RetryCouldDuplicate { .. })
        ),
        "TikTok accepted this publish: never re-post it"
    );

    let operator = Actor::operator("alice", "the creator's profile shows no post").unwrap();
    assert!(
        matches!(
            parked.apply(&Event::Retry { by: operator }, now(), &Policy::default()),
            Err(TransitionError::RetryCouldDuplicate { .. })
        ),
        "nor does an operator"
    );

    // An init whose outcome is unknown: no retry while its webhooks may still arrive...
    let unknown = job_in(JobState::PublishUnknown, PostMode::Direct);
    assert!(matches!(
        unknown.apply(
            &Event::Retry { by: Actor::Owner },
            now(),
            &Policy::default()
        ),
        Err(TransitionError::RetryCouldDuplicate { .. })
    ));
    // ...and an explicit decision once it is parked for an operator.
    let operator = applied(
        &unknown,
        &Event::Expired,
        now().plus(Duration::from_secs(73 * 3600)),
    )
    .job;
    assert_eq!(operator.next_check, None);
    assert_eq!(
        applied(&operator, &Event::Retry { by: Actor::Owner }, now())
            .job
            .state,
        JobState::Ready
    );
}

#[test]
fn defect_5_an_unknown_outcome_without_a_publish_id_waits_for_its_horizon_not_every_few_minutes() {
    let job = job_in(JobState::Publishing, PostMode::Direct);
    let unknown = applied(
        &job,
        &Event::PublishOutcomeUnknown {
            attempt: 1,
            error: err("timeout"),
        },
        now(),
    )
    .job;
    let check = unknown.next_check.unwrap();
    assert_eq!(check.kind, CheckKind::UnknownResolve);
    assert_eq!(check.at, now().plus(Policy::default().unknown_horizon));
    // A deferral moves the check without a transition: no audit event, no version.
    let r = rescheduled(
        &unknown,
        &Event::Deferred {
            until: now().plus(Duration::from_secs(3600)),
        },
        now(),
    );
    assert_eq!(r.job.version, unknown.version);
}

#[test]
fn defect_5_a_hold_that_repeats_its_reason_backs_off_without_audit_events() {
    let policy = Policy::default();
    let job = job_in(JobState::Ready, PostMode::Direct);
    let held = Event::Held {
        reason: "needs_reauth".into(),
        until: None,
    };
    let first = applied(&job, &held, now()).job;
    assert_eq!(
        first.next_check.unwrap().at,
        now().plus(policy.hold_recheck)
    );
    let mut at = first.next_check.unwrap().at;
    let mut job = first;
    let mut gaps = Vec::new();
    for _ in 0..8 {
        let r = rescheduled(&job, &held, at);
        assert_eq!(
            r.job.version, job.version,
            "a repeated hold is no transition"
        );
        let next = r.job.next_check.unwrap().at;
        gaps.push(next.since(at));
        at = next;
        job = r.job;
    }
    assert!(gaps.windows(2).all(|g| g[0] <= g[1]), "{gaps:?}");
    assert_eq!(gaps.last().copied(), Some(policy.hold_recheck_max));
}

#[test]
fn defect_6_an_acceptance_after_the_lease_expired_still_sends_the_bytes() {
    let job = job_in(JobState::Publishing, PostMode::Direct);
    let unknown = applied(&job, &Event::LeaseExpired, now()).job;
    assert_eq!(unknown.state, JobState::PublishUnknown);
    let a = applied(
        &unknown,
        &Event::PublishAccepted {
            attempt: 1,
            publish_id: pid(),
            upload: true,
            upstream_log_id: None,
        },
        now(),
    );
    assert_eq!(a.job.state, JobState::PublishProcessing);
    assert_eq!(a.effects, vec![Effect::UploadBytes]);
    assert_eq!(a.pointers, vec![Pointer::Publish(pid())]);
}

#[test]
fn defect_7_a_published_job_carries_no_earlier_attempts_error() {
    let mut job = job_in(JobState::Publishing, PostMode::Direct);
    job.last_error = Some(err("internal_error"));
    let a = applied(
        &job,
        &Event::PublishAccepted {
            attempt: 1,
            publish_id: pid(),
            upload: false,
            upstream_log_id: None,
        },
        now(),
    );
    assert_eq!(a.job.last_error, None);
}

#[test]
fn defect_7_a_stuck_publish_that_completes_carries_no_error() {
    let job = job_in(JobState::PublishProcessing, PostMode::Direct);
    let stuck = applied(&job, &Event::Expired, now()).job;
    assert!(stuck.last_error.is_some());
    let done = applied(
        &stuck,
        &status(pid(), PublishStatus::Complete, Via::Poll),
        now(),
    );
    assert_eq!(done.job.state, JobState::PublishComplete);
    assert_eq!(done.job.last_error, None);
}

#[test]
fn a_render_observation_of_another_request_is_stale() {
    let job = job_in(JobState::Rendering, PostMode::Direct);
    let other = reelay_domain::RequestId::parse("aaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
    let a = applied(
        &job,
        &Event::RenderFailed {
            request_id: other,
            error: err("video_download_failed"),
        },
        now(),
    );
    assert_eq!(a.audit.event, STALE_OBSERVATION);
    assert_eq!(a.job.state, JobState::Rendering);
}

#[test]
fn a_refused_init_token_lets_the_next_attempt_go_at_once_and_counts_it() {
    let job = job_in(JobState::Publishing, PostMode::Direct);
    let a = applied(
        &job,
        &Event::PublishRejected {
            attempt: 1,
            error: err("access_token_invalid"),
            class: ErrorClass::RefreshThenRetry,
            retry_at: Some(now()),
        },
        now(),
    );
    assert_eq!(a.job.state, JobState::Ready);
    assert_eq!(a.job.next_check.unwrap().at, now());
    assert_eq!(Policy::default().counted_attempts(&a.job), 1);
}
