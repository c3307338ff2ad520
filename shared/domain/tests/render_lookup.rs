//! Regression (found by the fault campaign): every resubmission looked for an earlier Ssemble
//! request first, also after Ssemble had definitively refused the create, and each look-up takes
//! its worst-case budget — 40 jobs retrying after a 429 storm spent the key's hour on look-ups.
//! Only an attempt without a definite answer may have created a request.
#![allow(clippy::unwrap_used)]

mod common;

use common::{err, job_in, now};
use reelay_domain::lifecycle::{Effect, ErrorClass, Event};
use reelay_domain::{Job, JobState, Policy, PostMode, Step};

fn apply(job: &Job, event: Event) -> (Job, Vec<Effect>) {
    match job.apply(&event, now(), &Policy::default()).unwrap() {
        Step::Applied(a) => (a.job, a.effects),
        Step::Absorbed => panic!("{} was absorbed", event.name()),
    }
}

fn start(job: &Job) -> (Job, bool) {
    let (job, effects) = apply(
        job,
        Event::RenderSubmitStarted {
            webhook_token_hash: "0".repeat(64),
        },
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
            class: ErrorClass::Retryable,
            retry_at: None,
        },
    )
    .0
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
