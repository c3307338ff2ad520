//! Regression tests for issue 10's defect 6 (timeouts and leases), at the use-case level:
//! - a store failure before the commit asks for a retry after `store_retry`, not after the
//!   queue's 30-minute visibility timeout (before: no retry-after at all);
//! - an init TikTok refused for its token is recorded as this attempt's refusal at once, and the
//!   token is refreshed after the record, outside the lease (before: refresh and a second init
//!   inside the attempt, which could outlast the 2-minute lease and leave the bytes unsent);
//! - no attempt is committed with less than the init window left before the invocation's end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use reelay_domain::lifecycle::ErrorClass;
use reelay_domain::usecase::{PublishOutcome, Wait};
use reelay_domain::{JobId, JobState, RequestId, UtcTime};
use reelay_testkit::{Fault, Faults, JobSetup, World, block_on, calls, sample};

const T: &str = "tenant_a";
const A: &str = "acct_1";

fn queued(w: &World) -> JobId {
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble.complete(&request, vec![sample::clip("c", 5.0)]);
    let job = w.job(JobSetup::rendered(T, A, &request));
    block_on(w.core().confirm_render(&request, None)).unwrap();
    assert_eq!(w.job_now(&job.id).state, JobState::PublishQueued);
    job.id
}

fn deadline(w: &World) -> UtcTime {
    w.clock.now().plus(Duration::from_secs(300))
}

#[test]
fn a_store_failure_before_the_commit_is_retried_after_store_retry() {
    let faults = Faults::new();
    let w = World::new()
        .tenant(T)
        .account(T, A)
        .with_hook(Arc::new(faults.clone()));
    let job = queued(&w);
    faults.fail_next(calls::JOBS_GET, Fault::unavailable());
    let core = w.core();
    let answer = block_on(core.publish(&job, deadline(&w)));
    assert_eq!(
        answer,
        Err(Wait::new("store_unavailable", core.settings.store_retry))
    );
    assert!(core.settings.store_retry <= Duration::from_secs(30));
    assert_eq!(w.tiktok.count("init"), 0);
    assert_eq!(w.job_now(&job).state, JobState::PublishQueued);
}

#[test]
fn a_refused_token_ends_the_attempt_at_once_and_is_refreshed_outside_it() {
    let w = World::new().tenant(T).account(T, A);
    let job = queued(&w);
    let core = w.core();
    w.tiktok.push_init(Err(sample::upstream_error(
        ErrorClass::RefreshThenRetry,
        "access_token_invalid",
    )));
    let outcome = block_on(core.publish(&job, deadline(&w))).unwrap();
    assert_eq!(
        outcome,
        PublishOutcome::Rejected {
            code: "access_token_invalid".into()
        }
    );
    assert_eq!(
        w.tiktok.count("init"),
        1,
        "one init per attempt, never a second"
    );
    assert_eq!(w.tiktok.count("refresh"), 1, "refreshed after the record");
    let after = w.job_now(&job);
    assert_eq!(after.state, JobState::Ready);
    assert_eq!(after.attempt, 1);
    assert_eq!(
        after.next_check.unwrap().at,
        w.clock.now(),
        "the next attempt goes at once"
    );

    // The next attempt uses the refreshed token.
    block_on(core.reconcile_job(after)).unwrap();
    let outcome = block_on(core.publish(&job, deadline(&w))).unwrap();
    assert!(
        matches!(outcome, PublishOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let inits = w.tiktok.inits();
    assert_eq!(inits.len(), 2);
    assert_ne!(inits[0].token, inits[1].token);
}

#[test]
fn no_attempt_is_committed_without_the_init_window_left() {
    let w = World::new().tenant(T).account(T, A);
    let job = queued(&w);
    let core = w.core();
    let short = w.clock.now().plus(core.settings.publish.init_window / 2);
    let answer = block_on(core.publish(&job, short));
    assert_eq!(answer, Err(Wait::new("out_of_time", Duration::ZERO)));
    assert_eq!(w.tiktok.count("init"), 0);
    assert_eq!(
        w.job_now(&job).state,
        JobState::PublishQueued,
        "nothing committed"
    );
    assert!(
        core.settings.policy.publish_lease > core.settings.publish.init_window,
        "the lease outlasts the init and its record"
    );
}
