//! Every (state, event) pair of the lifecycle table against a written-down expectation.
#![allow(clippy::unwrap_used)]

mod common;

use common::{every_event, job_in, now};
use reelay_domain::lifecycle::{Effect, Event, PublishStatus, Via};
use reelay_domain::{JobState, Policy, PostMode, Step, TransitionError};

/// Expected outcome per state (rows) and event (columns, in `every_event` order). A state name
/// means the job moves there (`queued` = publish_queued, `processing` = publish_processing,
/// `complete` = publish_complete, `public` = publicly_available, `unknown` = publish_unknown,
/// `r_failed`/`p_failed` = render/publish_failed); `·` absorbed; `✗` illegal; `nocancel`/`noretry` refused.
///
/// column  1: submit_started
/// column  2: submitted
/// column  3: submit_rejected
/// column  4: progressed
/// column  5: completed
/// column  6: render_failed
/// column  7: due
/// column  8: held
/// column  9: started
/// column 10: accepted
/// column 11: rejected
/// column 12: unknown
/// column 13: lease_expired
/// column 14: upload_done
/// column 15: upload_failed
/// column 16: status
/// column 17: no_longer_public
/// column 18: expired
/// column 19: cancel
/// column 20: retry
/// column 21: submit_due
/// column 22: deferred
/// column 23: preflight_failed
#[rustfmt::skip]
const EXPECTED: &[(&str, &str)] = &[
    ("received", "received rendering received · · · ✗ received ✗ ✗ ✗ ✗ ✗ ✗ ✗ · · ✗ cancelled noretry received received ✗"),
    ("rendering", "✗ ✗ ✗ rendering ready r_failed ✗ ✗ ✗ ✗ ✗ ✗ ✗ ✗ ✗ · · r_failed cancelled noretry ✗ rendering ✗"),
    ("ready", "✗ ✗ ✗ · · · queued ready ✗ ✗ ✗ ✗ ✗ ✗ ✗ · · ✗ cancelled noretry ✗ ready ✗"),
    ("publish_queued", "✗ ✗ ✗ · · · queued ready publishing ✗ ✗ ✗ ✗ ✗ ✗ · · ✗ cancelled noretry ✗ queued p_failed"),
    ("publishing", "✗ ✗ ✗ · · · ✗ ✗ ✗ processing ready unknown unknown ✗ ✗ · · ✗ nocancel noretry ✗ publishing ✗"),
    ("publish_processing", "✗ ✗ ✗ · · · ✗ ✗ ✗ ✗ ✗ ✗ ✗ uploaded processing complete · unknown nocancel noretry ✗ processing ✗"),
    ("uploaded", "✗ ✗ ✗ · · · ✗ ✗ ✗ ✗ ✗ ✗ ✗ ✗ ✗ complete · unknown nocancel noretry ✗ uploaded ✗"),
    ("submitted", "✗ ✗ ✗ · · · ✗ ✗ ✗ ✗ ✗ ✗ ✗ ✗ ✗ complete · unknown nocancel noretry ✗ submitted ✗"),
    ("publish_complete", "✗ ✗ ✗ · · · ✗ ✗ ✗ ✗ ✗ ✗ ✗ ✗ ✗ complete complete complete nocancel noretry ✗ complete ✗"),
    ("publicly_available", "· · · · · · · · · · · · · · · · public · nocancel noretry · · ·"),
    ("publish_unknown", "✗ ✗ ✗ · · · ✗ ✗ ✗ processing ✗ ✗ ✗ ✗ ✗ · · unknown nocancel ready ✗ unknown ✗"),
    ("render_failed", "· · · · · · · · · · · · · · · · · · nocancel received · · ·"),
    ("publish_failed", "· · · · · · · · · · · · · · · · · · nocancel ready · · ·"),
    ("cancelled", "· · · · · · · · · · · · · · · · · · · noretry · · ·"),
];

/// Expands the table's short names into state names.
fn expand(cell: &str) -> &str {
    match cell {
        "queued" => "publish_queued",
        "processing" => "publish_processing",
        "complete" => "publish_complete",
        "public" => "publicly_available",
        "unknown" => "publish_unknown",
        "r_failed" => "render_failed",
        "p_failed" => "publish_failed",
        "·" => "absorb",
        "✗" => "illegal",
        other => other,
    }
}

fn outcome(state: JobState, event: &Event) -> String {
    let job = job_in(state, PostMode::Direct);
    match job.apply(event, now(), &Policy::default()) {
        Ok(Step::Applied(a)) => {
            assert_eq!(a.job.version, job.version + 1, "{state} + {}", event.name());
            assert_eq!(a.audit.from, Some(state));
            assert_eq!(a.audit.to, a.job.state);
            assert_eq!(a.audit.event, event.name());
            a.job.state.as_str().to_owned()
        }
        Ok(Step::Absorbed) => "absorb".into(),
        Err(TransitionError::Illegal { .. }) => "illegal".into(),
        Err(TransitionError::NotCancellable { .. }) => "nocancel".into(),
        Err(TransitionError::NotRetryable { .. }) => "noretry".into(),
    }
}

#[test]
fn every_state_event_pair_matches_the_written_table() {
    assert_eq!(EXPECTED.len(), JobState::ALL.len());
    let events = every_event();
    assert_eq!(events.len(), 23);
    let mut mismatches = Vec::new();
    for (row, state) in EXPECTED.iter().zip(JobState::ALL) {
        assert_eq!(row.0, state.as_str());
        let cells: Vec<&str> = row.1.split_whitespace().map(expand).collect();
        assert_eq!(
            cells.len(),
            events.len(),
            "row {state} has {} cells",
            cells.len()
        );
        for (expected, event) in cells.iter().zip(&events) {
            let got = outcome(state, event);
            if got != *expected {
                mismatches.push(format!(
                    "{state} + {}: expected {expected}, got {got}",
                    event.name()
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "table mismatches:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn terminal_states_have_no_next_check_and_non_terminal_moves_do() {
    for state in JobState::ALL {
        for event in every_event() {
            let job = job_in(state, PostMode::Direct);
            if let Ok(Step::Applied(a)) = job.apply(&event, now(), &Policy::default()) {
                if a.job.state.is_terminal() {
                    assert!(
                        a.job.next_check.is_none(),
                        "{state} + {} left a check",
                        event.name()
                    );
                }
                let settled = matches!(
                    a.job.state,
                    JobState::PublishComplete | JobState::Submitted | JobState::PublishUnknown
                ) && matches!(event, Event::Expired);
                if !a.job.state.is_terminal() && !settled {
                    assert!(
                        a.job.next_check.is_some(),
                        "{state} + {} has no next check: it could be lost",
                        event.name()
                    );
                }
            }
        }
    }
}

#[test]
fn the_only_init_comes_from_publish_started_on_a_queued_job() {
    for state in JobState::ALL {
        for event in every_event() {
            let job = job_in(state, PostMode::Direct);
            if let Ok(Step::Applied(a)) = job.apply(&event, now(), &Policy::default()) {
                let inits = a
                    .effects
                    .iter()
                    .filter(|e| matches!(e, Effect::InitPublish { .. }))
                    .count();
                let expected = usize::from(
                    state == JobState::PublishQueued && matches!(event, Event::PublishStarted),
                );
                assert_eq!(inits, expected, "{state} + {}", event.name());
                if inits == 1 {
                    assert_eq!(a.job.attempt, job.attempt + 1);
                }
            }
        }
    }
}

#[test]
fn a_render_completed_after_schedule_goes_straight_to_the_queue() {
    let mut job = job_in(JobState::Rendering, PostMode::Direct);
    job.schedule_at = now();
    let Step::Applied(a) = job
        .apply(&every_event()[4], now(), &Policy::default())
        .unwrap()
    else {
        panic!("absorbed")
    };
    assert_eq!(a.job.state, JobState::PublishQueued);
    assert_eq!(a.effects, vec![Effect::EnqueuePublish]);
    assert_eq!(a.job.clip.as_ref().map(|c| c.viral_score), Some(Some(85.0)));
}

#[test]
fn late_observations_never_move_a_publish_backwards() {
    let job = job_in(JobState::PublishComplete, PostMode::Direct);
    let processing = Event::StatusObserved {
        status: PublishStatus::Processing,
        post_ids: vec![],
        via: Via::Webhook,
        upstream_log_id: None,
    };
    assert_eq!(
        job.apply(&processing, now(), &Policy::default()).unwrap(),
        Step::Absorbed
    );
    let failed = Event::StatusObserved {
        status: PublishStatus::Failed {
            reason: "internal".into(),
        },
        post_ids: vec![],
        via: Via::Webhook,
        upstream_log_id: None,
    };
    assert_eq!(
        job.apply(&failed, now(), &Policy::default()).unwrap(),
        Step::Absorbed
    );
}

#[test]
fn public_post_ids_complete_the_job_and_duplicates_are_absorbed() {
    let job = job_in(JobState::Uploaded, PostMode::Direct);
    let public = Event::StatusObserved {
        status: PublishStatus::Complete,
        post_ids: vec!["7602997517160123666".into()],
        via: Via::Webhook,
        upstream_log_id: Some("log1".into()),
    };
    let Step::Applied(a) = job.apply(&public, now(), &Policy::default()).unwrap() else {
        panic!("absorbed")
    };
    assert_eq!(a.job.state, JobState::PubliclyAvailable);
    assert_eq!(a.job.post_ids, vec!["7602997517160123666".to_owned()]);
    assert_eq!(a.audit.upstream_log_id.as_deref(), Some("log1"));
    assert_eq!(
        a.job.apply(&public, now(), &Policy::default()).unwrap(),
        Step::Absorbed
    );
}

#[test]
fn drafts_delivered_to_the_inbox_are_submitted() {
    let job = job_in(JobState::Uploaded, PostMode::Draft);
    let inbox = Event::StatusObserved {
        status: PublishStatus::SentToInbox,
        post_ids: vec![],
        via: Via::Webhook,
        upstream_log_id: None,
    };
    let Step::Applied(a) = job.apply(&inbox, now(), &Policy::default()).unwrap() else {
        panic!("absorbed")
    };
    assert_eq!(a.job.state, JobState::Submitted);
    assert!(a.job.next_check.is_some());
}

#[test]
fn a_retryable_tiktok_failure_requeues_and_a_permanent_one_fails() {
    let job = job_in(JobState::Uploaded, PostMode::Direct);
    let failed = |reason: &str| Event::StatusObserved {
        status: PublishStatus::Failed {
            reason: reason.into(),
        },
        post_ids: vec![],
        via: Via::Poll,
        upstream_log_id: None,
    };
    let Step::Applied(a) = job
        .apply(&failed("internal"), now(), &Policy::default())
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.job.state, JobState::Ready);
    assert_eq!(
        a.job.hold.as_ref().map(|h| h.reason.as_str()),
        Some("internal")
    );
    let Step::Applied(b) = job
        .apply(&failed("spam_risk_text"), now(), &Policy::default())
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(b.job.state, JobState::PublishFailed);
}

#[test]
fn retryable_rejections_stop_after_the_attempt_budget() {
    let mut job = job_in(JobState::Publishing, PostMode::Direct);
    job.attempt = Policy::default().max_publish_attempts;
    let rejected = reelay_domain::Event::PublishRejected {
        error: common::err("internal_error"),
        class: reelay_domain::ErrorClass::Retryable,
        retry_at: None,
    };
    let Step::Applied(a) = job.apply(&rejected, now(), &Policy::default()).unwrap() else {
        panic!()
    };
    assert_eq!(a.job.state, JobState::PublishFailed);
    assert_eq!(
        a.job.last_error.as_ref().map(|e| e.code.as_str()),
        Some("internal_error")
    );
}

#[test]
fn rate_window_rejections_delay_a_job_but_never_use_up_its_attempts() {
    let policy = Policy::default();
    let mut job = job_in(JobState::Publishing, PostMode::Direct);
    job.attempt = policy.max_publish_attempts + 3;
    job.delayed_attempts = 3;
    let throttled = reelay_domain::Event::PublishRejected {
        error: common::err("rate_limit_exceeded"),
        class: reelay_domain::ErrorClass::Retryable,
        retry_at: None,
    };
    let Step::Applied(a) = job.apply(&throttled, now(), &policy).unwrap() else {
        panic!()
    };
    assert_eq!(a.job.state, JobState::Ready, "a 429 only delays");
    assert_eq!(a.job.delayed_attempts, 4);
    let server_error = reelay_domain::Event::PublishRejected {
        error: common::err("internal_error"),
        class: reelay_domain::ErrorClass::Retryable,
        retry_at: None,
    };
    let Step::Applied(b) = job.apply(&server_error, now(), &policy).unwrap() else {
        panic!()
    };
    assert_eq!(
        b.job.state,
        JobState::PublishFailed,
        "the counted attempts are spent"
    );
}

#[test]
fn a_publish_stuck_past_its_horizon_becomes_unknown_not_failed() {
    let job = job_in(JobState::PublishProcessing, PostMode::Direct);
    let Step::Applied(a) = job
        .apply(&reelay_domain::Event::Expired, now(), &Policy::default())
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.job.state, JobState::PublishUnknown);
    assert_eq!(
        a.job.hold.as_ref().map(|h| h.reason.as_str()),
        Some("processing_stuck")
    );
}
