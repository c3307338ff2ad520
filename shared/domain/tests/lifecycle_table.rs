//! Every (state, event) pair of the lifecycle table against a written-down expectation.
#![allow(clippy::unwrap_used)]

mod common;

use common::{every_event, job_in, now};
use reelay_domain::job::STALE_OBSERVATION;
use reelay_domain::lifecycle::{Effect, Event, PublishStatus, Via};
use reelay_domain::{JobState, Policy, PostMode, Step, TransitionError};

/// Expected outcome per state (rows) and event (columns, in `every_event` order), for a job as
/// `job_in` leaves it (the event names the job's current render and publish, attempt 1). A state
/// name means the job moves there (`queued` = publish_queued, `processing` = publish_processing,
/// `complete` = publish_complete, `public` = publicly_available, `unknown` = publish_unknown,
/// `r_failed`/`p_failed` = render/publish_failed); `wait` only its next check moves (no version,
/// no audit); `stale` recorded as an observation of another attempt, not applied; `·` absorbed;
/// `✗` illegal; `nocancel`/`noretry` refused; `nodup` a retry refused because it could post twice; `noamend` an amendment refused once
/// publishing started.
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
/// column 24: amend (an hour ahead)
#[rustfmt::skip]
const EXPECTED: &[(&str, &str)] = &[
    ("received", "received rendering received stale stale stale ✗ received ✗ stale stale stale ✗ stale stale stale stale ✗ cancelled noretry wait wait ✗ received"),
    ("rendering", "✗ ✗ ✗ wait ready r_failed ✗ ✗ ✗ stale stale stale ✗ stale stale stale stale r_failed cancelled noretry ✗ · ✗ rendering"),
    ("ready", "✗ ✗ ✗ · · · queued ready ✗ stale stale stale ✗ stale stale stale stale ✗ cancelled noretry ✗ wait ✗ ready"),
    ("publish_queued", "✗ ✗ ✗ · · · wait ready publishing stale stale stale ✗ stale stale stale stale ✗ cancelled noretry ✗ wait p_failed ready"),
    ("publishing", "✗ ✗ ✗ · · · ✗ ✗ ✗ processing ready unknown unknown stale stale stale stale ✗ nocancel noretry ✗ wait ✗ noamend"),
    ("publish_processing", "✗ ✗ ✗ · · · ✗ ✗ ✗ · ✗ ✗ ✗ uploaded processing complete · unknown nocancel noretry ✗ wait ✗ noamend"),
    ("uploaded", "✗ ✗ ✗ · · · ✗ ✗ ✗ · ✗ ✗ ✗ · · complete · unknown nocancel noretry ✗ wait ✗ noamend"),
    ("submitted", "✗ ✗ ✗ · · · ✗ ✗ ✗ · ✗ ✗ ✗ · · complete · unknown nocancel noretry ✗ wait ✗ noamend"),
    ("publish_complete", "✗ ✗ ✗ · · · ✗ ✗ ✗ · ✗ ✗ ✗ · · · complete complete nocancel noretry ✗ wait ✗ noamend"),
    ("publicly_available", "· · · · · · · · · · · · · · · · public · nocancel noretry · · · noamend"),
    ("publish_unknown", "✗ ✗ ✗ · · · ✗ ✗ ✗ processing ready · · stale stale stale stale unknown nocancel nodup ✗ wait ✗ noamend"),
    ("render_failed", "· · · · · · · · · · · · · stale stale stale stale · nocancel received · · · noamend"),
    ("publish_failed", "· · · · · · · · · · · · · · · · · · nocancel ready · · · noamend"),
    ("cancelled", "· · · · · · · · · · · · · stale stale stale stale · · noretry · · · noamend"),
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
            if a.audit.event == STALE_OBSERVATION {
                assert_eq!(a.job.state, state, "a stale observation moved the job");
                return "stale".into();
            }
            assert_eq!(a.audit.event, event.name());
            a.job.state.as_str().to_owned()
        }
        Ok(Step::Rescheduled(r)) => {
            assert_eq!(
                r.job.version, job.version,
                "a reschedule bumped the version"
            );
            assert_eq!(r.job.state, state);
            "wait".into()
        }
        Ok(Step::Absorbed) => "absorb".into(),
        Err(TransitionError::Illegal { .. }) => "illegal".into(),
        Err(TransitionError::NotCancellable { .. }) => "nocancel".into(),
        Err(TransitionError::NotRetryable { .. }) => "noretry".into(),
        Err(TransitionError::RetryCouldDuplicate { .. }) => "nodup".into(),
        Err(TransitionError::AttemptInFlight { .. }) => "inflight".into(),
        Err(TransitionError::NotAmendable { .. }) => "noamend".into(),
    }
}

/// `PRINT_LIFECYCLE_TABLE=1 cargo test -p reelay-domain --test lifecycle_table -- --nocapture`
/// prints the table as the code has it, to review against the expectation above.
#[test]
fn print_the_table_on_request() {
    if std::env::var_os("PRINT_LIFECYCLE_TABLE").is_none() {
        return;
    }
    let short = |s: String| match s.as_str() {
        "publish_queued" => "queued".to_owned(),
        "publish_processing" => "processing".into(),
        "publish_complete" => "complete".into(),
        "publicly_available" => "public".into(),
        "publish_unknown" => "unknown".into(),
        "render_failed" => "r_failed".into(),
        "publish_failed" => "p_failed".into(),
        "absorb" => "·".into(),
        "illegal" => "✗".into(),
        _ => s,
    };
    for state in JobState::ALL {
        let cells: Vec<String> = every_event()
            .iter()
            .map(|e| short(outcome(state, e)))
            .collect();
        println!("    (\"{}\", \"{}\"),", state.as_str(), cells.join(" "));
    }
}

#[test]
fn every_state_event_pair_matches_the_written_table() {
    assert_eq!(EXPECTED.len(), JobState::ALL.len());
    let events = every_event();
    assert_eq!(events.len(), 24);
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
        for mode in [PostMode::Direct, PostMode::Draft] {
            for event in every_event() {
                let job = job_in(state, mode);
                let next = match job.apply(&event, now(), &Policy::default()) {
                    Ok(Step::Applied(a)) => a.job,
                    Ok(Step::Rescheduled(r)) => r.job,
                    _ => continue,
                };
                if next.state.is_terminal() {
                    assert!(
                        next.next_check.is_none(),
                        "{state} + {} left a check",
                        event.name()
                    );
                    continue;
                }
                // Settled (a draft in the inbox, a post whose public id never came) or parked
                // for an operator: visibly done, with nothing left to check.
                let settled = matches!(next.state, JobState::PublishComplete | JobState::Submitted)
                    && matches!(event, Event::Expired);
                let parked = next.state == JobState::PublishUnknown
                    && next
                        .hold
                        .as_ref()
                        .is_some_and(|h| h.reason == "needs_operator");
                if !settled && !parked {
                    assert!(
                        next.next_check.is_some(),
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
                    assert_eq!(a.job.publish_id, None, "a new attempt has no publish yet");
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
        panic!("not applied")
    };
    assert_eq!(a.job.state, JobState::PublishQueued);
    assert_eq!(a.effects, vec![Effect::EnqueuePublish]);
    assert_eq!(a.job.clip.as_ref().map(|c| c.viral_score), Some(Some(85.0)));
}

/// A render completing with its schedule inside the enqueue-ahead goes on the queue at once
/// (the publisher holds it to the second); one beyond it waits `ready` for its check. Found at
/// real time: jobs 20–60 s ahead waited for the reconciler's next one-minute tick.
#[test]
fn a_render_completed_within_the_enqueue_ahead_is_queued_at_once_and_a_later_one_waits() {
    let policy = Policy::default();
    let ahead = policy.enqueue_ahead;
    for (lead, queued) in [
        (ahead / 3, true),
        (ahead, true),
        (ahead + std::time::Duration::from_secs(1), false),
    ] {
        let mut job = job_in(JobState::Rendering, PostMode::Direct);
        job.schedule_at = now().plus(lead);
        let Step::Applied(a) = job.apply(&every_event()[4], now(), &policy).unwrap() else {
            panic!("not applied")
        };
        if queued {
            assert_eq!(a.job.state, JobState::PublishQueued, "{lead:?}");
            assert_eq!(a.effects, vec![Effect::EnqueuePublish]);
        } else {
            assert_eq!(a.job.state, JobState::Ready, "{lead:?}");
            assert!(a.effects.is_empty());
            assert_eq!(a.job.next_check.map(|c| c.at), Some(job.schedule_at));
        }
        // Moving a ready job's schedule follows the same rule.
        let mut ready = job_in(JobState::Ready, PostMode::Direct);
        ready.schedule_at = now().plus(ahead * 10);
        let amend = Event::Amend {
            schedule_at: Some(now().plus(lead)),
            title: None,
        };
        let Step::Applied(b) = ready.apply(&amend, now(), &policy).unwrap() else {
            panic!("amend not applied")
        };
        let expected = if queued {
            JobState::PublishQueued
        } else {
            JobState::Ready
        };
        assert_eq!(b.job.state, expected, "amend to {lead:?}");
    }
}

fn status(status: PublishStatus, post_ids: Vec<String>, via: Via) -> Event {
    Event::StatusObserved {
        publish_id: common::pid(),
        status,
        post_ids,
        via,
        upstream_log_id: Some("log1".into()),
    }
}

#[test]
fn late_observations_never_move_a_publish_backwards() {
    let job = job_in(JobState::PublishComplete, PostMode::Direct);
    for event in [
        status(PublishStatus::Processing, vec![], Via::Webhook),
        status(
            PublishStatus::Failed {
                reason: "internal".into(),
            },
            vec![],
            Via::Webhook,
        ),
        status(
            PublishStatus::Failed {
                reason: "internal".into(),
            },
            vec![],
            Via::Poll,
        ),
    ] {
        let step = job.apply(&event, now(), &Policy::default()).unwrap();
        assert!(
            matches!(step, Step::Absorbed | Step::Rescheduled(_)),
            "{step:?}"
        );
    }
}

#[test]
fn public_post_ids_complete_the_job_and_duplicates_are_absorbed() {
    let job = job_in(JobState::Uploaded, PostMode::Direct);
    let public = status(
        PublishStatus::Complete,
        vec!["7602997517160123666".into()],
        Via::Webhook,
    );
    let Step::Applied(a) = job.apply(&public, now(), &Policy::default()).unwrap() else {
        panic!("not applied")
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
fn drafts_are_submitted_only_once_they_reach_the_inbox() {
    // Regression (defect 7): a draft was reported `submitted` while TikTok still answered
    // PROCESSING_UPLOAD, so a client could not tell "in the inbox" from "still processing".
    let job = job_in(JobState::Uploaded, PostMode::Draft);
    let processing = status(PublishStatus::Processing, vec![], Via::Poll);
    match job.apply(&processing, now(), &Policy::default()).unwrap() {
        Step::Rescheduled(r) => assert_eq!(r.job.state, JobState::Uploaded),
        Step::Absorbed => {}
        Step::Applied(a) => panic!(
            "a draft still processing must stay uploaded: {:?}",
            a.job.state
        ),
    }
    let inbox = status(PublishStatus::SentToInbox, vec![], Via::Webhook);
    let Step::Applied(a) = job.apply(&inbox, now(), &Policy::default()).unwrap() else {
        panic!("not applied")
    };
    assert_eq!(a.job.state, JobState::Submitted);
    assert!(a.job.next_check.is_some());
    // A direct post whose bytes are there is with TikTok: submitted.
    let direct = job_in(JobState::Uploaded, PostMode::Direct);
    let Step::Applied(d) = direct
        .apply(&processing, now(), &Policy::default())
        .unwrap()
    else {
        panic!("not applied")
    };
    assert_eq!(d.job.state, JobState::Submitted);
}

#[test]
fn a_retryable_tiktok_failure_requeues_and_a_permanent_one_fails_with_tiktoks_reason() {
    let job = job_in(JobState::Uploaded, PostMode::Direct);
    let failed = |reason: &str| {
        status(
            PublishStatus::Failed {
                reason: reason.into(),
            },
            vec![],
            Via::Poll,
        )
    };
    let Step::Applied(a) = job
        .apply(&failed("internal"), now(), &Policy::default())
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.job.state, JobState::Ready);
    assert_eq!(a.job.hold_reason(), Some("internal"));
    // Regression (defect 7): the record carried `status_observed`, TikTok's reason only in a detail.
    for reason in [
        "spam_risk_text",
        "frame_rate_check_failed",
        "picture_size_check_failed",
        "spam_risk",
    ] {
        let Step::Applied(b) = job
            .apply(&failed(reason), now(), &Policy::default())
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(b.job.state, JobState::PublishFailed);
        assert_eq!(
            b.job.last_error.as_ref().map(|e| e.code.as_str()),
            Some(reason)
        );
        assert_eq!(b.audit.error_code.as_deref(), Some(reason));
        assert_eq!(b.audit.upstream_log_id.as_deref(), Some("log1"));
    }
}

#[test]
fn retryable_rejections_stop_after_the_attempt_budget() {
    let mut job = job_in(JobState::Publishing, PostMode::Direct);
    job.attempt = Policy::default().max_publish_attempts;
    let rejected = Event::PublishRejected {
        attempt: job.attempt,
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
    let throttled = Event::PublishRejected {
        attempt: job.attempt,
        error: common::err("rate_limit_exceeded"),
        class: reelay_domain::ErrorClass::Retryable,
        retry_at: None,
    };
    let Step::Applied(a) = job.apply(&throttled, now(), &policy).unwrap() else {
        panic!()
    };
    assert_eq!(a.job.state, JobState::Ready, "a 429 only delays");
    assert_eq!(a.job.delayed_attempts, 4);
    let server_error = Event::PublishRejected {
        attempt: job.attempt,
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
fn a_publish_stuck_past_its_horizon_becomes_unknown_and_keeps_being_polled() {
    let job = job_in(JobState::PublishProcessing, PostMode::Direct);
    let Step::Applied(a) = job
        .apply(&Event::Expired, now(), &Policy::default())
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.job.state, JobState::PublishUnknown);
    assert_eq!(a.job.hold_reason(), Some("processing_stuck"));
    assert_eq!(a.job.publish_id, Some(common::pid()));
    assert_eq!(
        a.job.next_check.map(|c| c.kind),
        Some(reelay_domain::CheckKind::StatusPoll),
        "a known publish_id is always reconcilable by polling"
    );
}
