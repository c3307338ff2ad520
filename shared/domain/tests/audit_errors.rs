//! Regression (found by the fault campaign): a render that passed its deadline became
//! `render_failed` with no `error.code`, in the job or its audit event — an audit record
//! missing a field (promise 5). Every failure must say why.
#![allow(clippy::unwrap_used)]

mod common;

use common::{every_event, job_in, now};
use reelay_domain::lifecycle::Event;
use reelay_domain::{JobState, Policy, PostMode, Step};

#[test]
fn a_render_past_its_deadline_fails_with_an_error_code() {
    let job = job_in(JobState::Rendering, PostMode::Direct);
    let Step::Applied(a) = job
        .apply(&Event::Expired, now(), &Policy::default())
        .unwrap()
    else {
        panic!("expired must move a rendering job")
    };
    assert_eq!(a.job.state, JobState::RenderFailed);
    assert_eq!(a.audit.error_code.as_deref(), Some("deadline_exceeded"));
    assert_eq!(
        a.job.last_error.as_ref().map(|e| e.code.as_str()),
        Some("deadline_exceeded")
    );
}

#[test]
fn every_move_into_a_failed_state_records_an_error_code() {
    for state in [
        JobState::Received,
        JobState::Rendering,
        JobState::Ready,
        JobState::PublishQueued,
        JobState::Publishing,
        JobState::PublishProcessing,
        JobState::Uploaded,
        JobState::Submitted,
        JobState::PublishUnknown,
    ] {
        for mode in [PostMode::Direct, PostMode::Draft] {
            for event in every_event() {
                let job = job_in(state, mode);
                let Ok(Step::Applied(a)) = job.apply(&event, now(), &Policy::default()) else {
                    continue;
                };
                if matches!(
                    a.job.state,
                    JobState::RenderFailed | JobState::PublishFailed
                ) {
                    assert!(
                        a.audit.error_code.as_deref().is_some_and(|c| !c.is_empty()),
                        "{} --{}--> {} has no error code",
                        state.as_str(),
                        event.name(),
                        a.job.state.as_str()
                    );
                }
            }
        }
    }
}

/// Regression (found by the fault campaign): a publisher that died mid-init left the job in
/// `publish_unknown` with neither an error nor a hold, so nothing said why it was parked.
#[test]
fn every_move_into_publish_unknown_is_parked_with_a_reason_and_an_error_code() {
    let mut seen = 0;
    for state in [
        JobState::PublishQueued,
        JobState::Publishing,
        JobState::PublishProcessing,
        JobState::Uploaded,
    ] {
        for mode in [PostMode::Direct, PostMode::Draft] {
            for event in every_event() {
                let job = job_in(state, mode);
                let Ok(Step::Applied(a)) = job.apply(&event, now(), &Policy::default()) else {
                    continue;
                };
                if a.job.state != JobState::PublishUnknown {
                    continue;
                }
                seen += 1;
                let what = format!("{} --{}-->", state.as_str(), event.name());
                assert!(
                    a.job.hold.as_ref().is_some_and(|h| !h.reason.is_empty()),
                    "{what} publish_unknown without a hold reason"
                );
                assert!(
                    a.audit.error_code.as_deref().is_some_and(|c| !c.is_empty()),
                    "{what} publish_unknown without an error code"
                );
            }
        }
    }
    assert!(seen > 0, "no event led into publish_unknown");
}

#[test]
fn an_expired_publish_lease_records_lease_expired() {
    let job = job_in(JobState::Publishing, PostMode::Direct);
    let Step::Applied(a) = job
        .apply(&Event::LeaseExpired, now(), &Policy::default())
        .unwrap()
    else {
        panic!("an expired lease must move a publishing job")
    };
    assert_eq!(a.job.state, JobState::PublishUnknown);
    assert_eq!(
        a.job.last_error.as_ref().map(|e| e.code.as_str()),
        Some("lease_expired")
    );
    assert_eq!(
        a.job.hold.as_ref().map(|h| h.reason.as_str()),
        Some("publish_outcome_unknown")
    );
}
