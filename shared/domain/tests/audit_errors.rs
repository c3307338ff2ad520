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
