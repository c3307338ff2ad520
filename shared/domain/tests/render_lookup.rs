//! Regression (found by the fault campaign): every resubmission looked for an earlier Ssemble
//! request first, also after Ssemble had definitively refused the create, and each look-up takes
//! its worst-case budget — 40 jobs retrying after a 429 storm spent the key's hour on look-ups.
//! Only an attempt without a definite answer may have created a request.
#![allow(clippy::unwrap_used)]

mod common;

use common::{err, job_in, now};
use reelay_domain::lifecycle::{Effect, ErrorClass, Event};
use reelay_domain::{Job, JobState, Policy, PostMode, Step, TransitionError, UtcTime};

fn apply(job: &Job, event: Event, at: UtcTime) -> (Job, Vec<Effect>) {
    match job.apply(&event, at, &Policy::default()).unwrap() {
        Step::Applied(a) => (a.job, a.effects),
        other => panic!("{} was not applied: {other:?}", event.name()),
    }
}

/// Starts a submission once the previous one's lease is over.
fn start(job: &Job) -> (Job, bool) {
    let after_lease = job
        .render_lease_until
        .map_or(now(), |t| t.plus(std::time::Duration::from_secs(1)));
    let (job, effects) = apply(
        job,
        Event::RenderSubmitStarted {
            webhook_token_hash: "0".repeat(64),
        },
        after_lease,
    );
    let lookup = effects
        .iter()
        .find_map(|e| match e {
            Effect::SubmitRender { lookup_first } => Some(*lookup_first),
            _ => None,
        })
        .unwrap();
    (job, lookup)
}

fn rejected(job: &Job) -> Job {
    apply(
        job,
        Event::RenderSubmitRejected {
            error: err("rate_limit_exceeded"),
            class: ErrorClass::WaitForWindow,
            retry_at: None,
        },
        now(),
    )
    .0
}

#[test]
fn a_submission_in_flight_refuses_a_second_one_until_its_lease_ends() {
    let job = job_in(JobState::Received, PostMode::Direct);
    let (job, _) = start(&job);
    let again = job.apply(
        &Event::RenderSubmitStarted {
            webhook_token_hash: "1".repeat(64),
        },
        now().plus(std::time::Duration::from_secs(5)),
        &Policy::default(),
    );
    assert!(
        matches!(again, Err(TransitionError::AttemptInFlight { .. })),
        "{again:?}"
    );
}

#[test]
fn a_definitive_refusal_needs_no_look_up_but_an_unknown_outcome_always_does() {
    let job = job_in(JobState::Received, PostMode::Direct);
    let (job, lookup) = start(&job);
    assert!(!lookup, "the first attempt has nothing to look for");

    // Refused by Ssemble: no request exists, the retry creates directly.
    let job = rejected(&job);
    assert_eq!(job.state, JobState::Received);
    let (job, lookup) = start(&job);
    assert!(!lookup, "after a 429 nothing can have been created");

    // This attempt never got an answer (a timeout): from now on every attempt looks first,
    // a definitive refusal later notwithstanding.
    let (job, lookup) = start(&job);
    assert!(
        lookup,
        "an attempt without an answer may have created a request"
    );
    let job = rejected(&job);
    let (_, lookup) = start(&job);
    assert!(lookup, "the unanswered attempt's request may still exist");
}
