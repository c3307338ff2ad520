//! Random event sequences over several publish attempts — duplicated, delayed and reordered
//! across attempts, as TikTok's at-least-once webhooks and SQS redeliveries deliver them — never
//! yield an init while an earlier attempt may still post.
//!
//! Each attempt has a fate fixed up front (TikTok accepted it and it ends complete, failed or
//! stuck; or TikTok refused it), and every event about an attempt is consistent with its fate.
//! The property is about what the job knew: when attempt `n`'s init is emitted, every earlier
//! attempt must have been definitively closed by an event the job received (a refusal, or a
//! FAILED for that attempt's own publish_id). An earlier version of this test counted any FAILED
//! as "no post" and could not see a late FAILED of attempt 1 re-opening attempt 2.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{clip, err, job_in, now};
use proptest::prelude::*;
use reelay_domain::lifecycle::{Effect, ErrorClass, Event, PublishStatus, Via};
use reelay_domain::{Job, JobState, Policy, PostMode, PublishId, Step, UtcTime};

const ATTEMPTS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// TikTok accepted the init; the publish ends with this status.
    Complete,
    FailedRetryable,
    FailedPermanent,
    Stuck,
    /// TikTok refused the init (no publish).
    Refused(ErrorClass),
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        Just(Fate::Complete),
        Just(Fate::FailedRetryable),
        Just(Fate::FailedPermanent),
        Just(Fate::Stuck),
        Just(Fate::Refused(ErrorClass::Retryable)),
        Just(Fate::Refused(ErrorClass::WaitForWindow)),
        Just(Fate::Refused(ErrorClass::RefreshThenRetry)),
        Just(Fate::Refused(ErrorClass::Permanent)),
    ]
}

fn pid(attempt: u32) -> PublishId {
    PublishId::parse(format!("v_pub_file~v2-1.{attempt}000")).unwrap()
}

/// What may be delivered about `attempt` given its fate.
fn about(attempt: u32, fate: Fate, pick: u8, via: Via) -> Event {
    let status = |status: PublishStatus| Event::StatusObserved {
        publish_id: pid(attempt),
        status,
        post_ids: vec![],
        via,
        upstream_log_id: None,
    };
    let failed = |reason: &str| {
        status(PublishStatus::Failed {
            reason: reason.into(),
        })
    };
    match (fate, pick % 5) {
        (Fate::Refused(class), 0..=2) => Event::PublishRejected {
            attempt,
            error: err(if class == ErrorClass::WaitForWindow {
                "spam_risk_too_many_posts"
            } else {
                "internal_error"
            }),
            class,
            retry_at: None,
        },
        // The publisher never saw the answer.
        (_, 3) => Event::PublishOutcomeUnknown {
            attempt,
            error: err("timeout"),
        },
        (Fate::Refused(_), _) => Event::PublishOutcomeUnknown {
            attempt,
            error: err("connection_reset"),
        },
        (_, 0) => Event::PublishAccepted {
            attempt,
            publish_id: pid(attempt),
            upload: pick.is_multiple_of(2),
            upstream_log_id: None,
        },
        (_, 1) => status(PublishStatus::Processing),
        (Fate::Complete, _) => status(PublishStatus::Complete),
        (Fate::FailedRetryable, _) => failed("internal"),
        (Fate::FailedPermanent, _) => failed("spam_risk_text"),
        (Fate::Stuck, _) => Event::UploadCompleted {
            publish_id: pid(attempt),
        },
    }
}

fn general(pick: u8) -> Event {
    match pick % 9 {
        0 => Event::PublishDue,
        1 | 2 => Event::PublishStarted,
        3 => Event::LeaseExpired,
        4 => Event::Held {
            reason: "tiktok_init_window".into(),
            until: None,
        },
        5 => Event::Expired,
        6 => Event::Deferred {
            until: now().plus(Duration::from_secs(60)),
        },
        7 => Event::PreflightFailed {
            error: err("privacy_level_option_mismatch"),
        },
        // The owner moves the schedule (to the past or ahead) and the caption at any moment.
        _ => Event::Amend {
            schedule_at: Some(now().plus(Duration::from_secs(u64::from(pick) * 30))),
            title: Some(format!("caption {pick}")),
        },
    }
}

/// One delivery: about an attempt (1..=ATTEMPTS) or a general command, after `advance` seconds.
fn step() -> impl Strategy<Value = (Option<u32>, u8, bool, u16)> {
    (
        prop_oneof![
            Just(None),
            (1..=ATTEMPTS).prop_map(Some),
            (1..=ATTEMPTS).prop_map(Some)
        ],
        any::<u8>(),
        any::<bool>(),
        0u16..400,
    )
}

/// Whether an event definitively closes its attempt: no post can come of it.
fn closes(event: &Event) -> Option<u32> {
    match event {
        Event::PublishRejected { attempt, .. } => Some(*attempt),
        Event::StatusObserved {
            publish_id,
            status: PublishStatus::Failed { .. },
            ..
        } => (1..=ATTEMPTS).find(|a| &pid(*a) == publish_id),
        _ => None,
    }
}

fn queued() -> Job {
    let mut job = job_in(JobState::PublishQueued, PostMode::Direct);
    job.schedule_at = now();
    job.clip = Some(clip());
    job
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn no_init_while_an_earlier_attempt_may_still_post(
        fates in proptest::collection::vec(fate(), ATTEMPTS as usize),
        steps in proptest::collection::vec(step(), 1..160),
    ) {
        let policy = Policy::default();
        let mut job = queued();
        let mut clock: UtcTime = now();
        let mut closed: BTreeSet<u32> = BTreeSet::new();
        let mut inits = 0u32;
        for (target, pick, poll, advance) in steps {
            clock = clock.plus(Duration::from_secs(u64::from(advance)));
            let via = if poll { Via::Poll } else { Via::Webhook };
            let event = match target {
                Some(a) => about(a, fates[(a - 1) as usize], pick, via),
                None => general(pick),
            };
            // Evidence about an attempt can only exist once that attempt has started.
            if let Some(a) = closes(&event).filter(|a| *a <= job.attempt) {
                closed.insert(a);
            }
            let step = match job.apply(&event, clock, &policy) {
                Ok(step) => step,
                Err(_) => continue,
            };
            match step {
                Step::Applied(applied) => {
                    if let Some(Effect::InitPublish { attempt }) = applied
                        .effects
                        .iter()
                        .find(|e| matches!(e, Effect::InitPublish { .. }))
                    {
                        inits += 1;
                        prop_assert_eq!(*attempt, inits, "attempts are numbered in order");
                        for earlier in 1..*attempt {
                            let fate = fates.get((earlier - 1) as usize).copied();
                            prop_assert!(
                                closed.contains(&earlier),
                                "init of attempt {} while attempt {} ({:?}) may still post; job {:?}",
                                attempt, earlier, fate, applied.job.state
                            );
                            prop_assert_ne!(fate, Some(Fate::Complete), "a second post");
                        }
                    }
                    prop_assert!(applied.job.state.is_terminal() || applied.job.next_check.is_some()
                        || applied.job.hold.is_some() || matches!(applied.job.state, JobState::Submitted | JobState::PublishComplete),
                        "{:?} left without a next check or a reason", applied.job.state);
                    job = applied.job;
                }
                Step::Rescheduled(r) => {
                    prop_assert_eq!(r.job.version, job.version);
                    job = r.job;
                }
                Step::Absorbed => {}
            }
            if job.attempt > ATTEMPTS {
                break;
            }
        }
    }

    #[test]
    fn stale_observations_are_recorded_a_bounded_number_of_times(
        repeats in 1usize..60,
    ) {
        let policy = Policy::default();
        let mut job = job_in(JobState::PublishProcessing, PostMode::Direct);
        job.attempt = 2;
        job.publish_id = Some(pid(2));
        job.publish_ids = vec![pid(1), pid(2)];
        let mut recorded = 0;
        for _ in 0..repeats {
            let late = about(1, Fate::FailedRetryable, 4, Via::Webhook);
            match job.apply(&late, now(), &policy).unwrap() {
                Step::Applied(a) => {
                    prop_assert_eq!(a.job.state, JobState::PublishProcessing);
                    recorded += 1;
                    job = a.job;
                }
                Step::Absorbed => {}
                Step::Rescheduled(_) => prop_assert!(false, "a stale observation rescheduled"),
            }
        }
        prop_assert!(recorded <= policy.max_stale_observations as usize);
        prop_assert_eq!(recorded, repeats.min(policy.max_stale_observations as usize));
    }
}
