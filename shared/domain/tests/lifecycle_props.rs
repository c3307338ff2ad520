//! Random event sequences — with duplicates, reorderings and redeliveries — never leave the
//! table and never yield a second TikTok init while an earlier one may still produce a post.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{clip, err, job_in, now};
use proptest::prelude::*;
use reelay_domain::lifecycle::{Effect, ErrorClass, Event, PublishStatus, Via};
use reelay_domain::{JobState, Policy, PostMode, PublishId, RequestId, Step};

fn class() -> impl Strategy<Value = ErrorClass> {
    prop_oneof![
        Just(ErrorClass::Retryable),
        Just(ErrorClass::RefreshThenRetry),
        Just(ErrorClass::NeedsUser),
        Just(ErrorClass::WaitForWindow),
        Just(ErrorClass::Permanent),
    ]
}

fn status() -> impl Strategy<Value = (PublishStatus, Vec<String>)> {
    prop_oneof![
        Just((PublishStatus::Processing, vec![])),
        Just((PublishStatus::SentToInbox, vec![])),
        Just((PublishStatus::Complete, vec![])),
        Just((
            PublishStatus::Complete,
            vec!["7602997517160123666".to_owned()]
        )),
        Just((
            PublishStatus::Failed {
                reason: "internal".into()
            },
            vec![]
        )),
        Just((
            PublishStatus::Failed {
                reason: "spam_risk_text".into()
            },
            vec![]
        )),
        Just((
            PublishStatus::Other {
                raw: "NEW_STATUS".into()
            },
            vec![]
        )),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::RenderSubmitStarted {
            webhook_token_hash: "ab".repeat(32)
        }),
        Just(Event::RenderSubmitted {
            request_id: RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap()
        }),
        class().prop_map(|class| Event::RenderSubmitRejected {
            error: err("x"),
            class,
            retry_at: None
        }),
        Just(Event::RenderProgressed),
        Just(Event::RenderCompleted { clip: clip() }),
        Just(Event::RenderFailed {
            error: err("Video download failed")
        }),
        Just(Event::PublishDue),
        Just(Event::Held {
            reason: "tiktok_init_window".into(),
            until: None
        }),
        Just(Event::PublishStarted),
        Just(Event::PublishStarted),
        any::<bool>().prop_map(|upload| Event::PublishAccepted {
            publish_id: PublishId::parse("v_pub_file~v2-1.1").unwrap(),
            upload,
            upstream_log_id: None
        }),
        class().prop_map(|class| Event::PublishRejected {
            error: err("x"),
            class,
            retry_at: None
        }),
        Just(Event::PublishOutcomeUnknown {
            error: err("timeout")
        }),
        Just(Event::LeaseExpired),
        Just(Event::UploadCompleted),
        Just(Event::UploadFailed {
            error: err("upload")
        }),
        (status(), any::<bool>()).prop_map(|((status, post_ids), poll)| Event::StatusObserved {
            status,
            post_ids,
            via: if poll { Via::Poll } else { Via::Webhook },
            upstream_log_id: None
        }),
        Just(Event::NoLongerPublic {
            post_id: "1".into()
        }),
        Just(Event::Expired),
        Just(Event::Cancel),
        Just(Event::Retry),
        Just(Event::SubmitDue),
        Just(Event::PreflightFailed {
            error: err("privacy_level_option_mismatch")
        }),
        (1u64..600).prop_map(|s| Event::Deferred {
            until: now().plus(Duration::from_secs(s))
        }),
    ]
}

/// A sequence with deliberate redeliveries: some events repeated right away or later.
fn sequence() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((event(), 0u8..4), 1..80).prop_map(|items| {
        let mut out: Vec<Event> = Vec::new();
        for (event, dup) in items {
            out.push(event.clone());
            if dup == 0 {
                out.push(event);
            } else if dup == 1 && !out.is_empty() {
                let again = out[out.len() / 2].clone();
                out.push(again);
            }
        }
        out
    })
}

fn start_state() -> impl Strategy<Value = (JobState, PostMode, bool)> {
    (
        prop_oneof![Just(JobState::Received), Just(JobState::Rendering)],
        prop_oneof![Just(PostMode::Direct), Just(PostMode::Draft)],
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_second_init_while_a_post_may_exist((start, mode, due) in start_state(), events in sequence()) {
        let policy = Policy::default();
        let mut job = job_in(start, mode);
        job.attempt = 0;
        if due {
            job.schedule_at = now();
        }
        let mut clock = now();
        // True from an init until TikTok definitively said no post came of it, or a client retried.
        let mut may_have_posted = false;
        let mut inits = 0u32;
        for event in &events {
            clock = clock.plus(Duration::from_secs(7));
            let before = job.clone();
            match job.apply(event, clock, &policy) {
                Ok(Step::Applied(applied)) => {
                    prop_assert!(JobState::ALL.contains(&applied.job.state));
                    prop_assert_eq!(applied.job.version, before.version + 1);
                    prop_assert_eq!(applied.audit.from, Some(before.state));
                    prop_assert_eq!(applied.audit.to, applied.job.state);
                    if before.state.is_terminal() && applied.job.state != before.state {
                        prop_assert!(matches!(event, Event::Retry), "left terminal {} by {}", before.state, event.name());
                    }
                    let new_inits = applied.effects.iter().filter(|e| matches!(e, Effect::InitPublish { .. })).count();
                    prop_assert!(new_inits <= 1);
                    if new_inits == 1 {
                        prop_assert!(!may_have_posted, "second init while an earlier attempt may post (after {})", event.name());
                        may_have_posted = true;
                        inits += 1;
                    }
                    let definitive_no_post = matches!(event, Event::PublishRejected { .. })
                        || (matches!(event, Event::StatusObserved { status: PublishStatus::Failed { .. }, .. })
                            && matches!(applied.job.state, JobState::Ready | JobState::PublishFailed))
                        || matches!(event, Event::Retry);
                    if definitive_no_post {
                        may_have_posted = false;
                    }
                    prop_assert!(applied.job.attempt <= policy.max_publish_attempts + 1);
                    job = applied.job;
                }
                Ok(Step::Absorbed) => {}
                Err(_) => {}
            }
        }
        prop_assert!(inits <= job.attempt);
    }

    #[test]
    fn absorbed_events_change_nothing_and_errors_are_typed(state_idx in 0usize..14, event in event()) {
        let state = JobState::ALL[state_idx];
        let job = job_in(state, PostMode::Direct);
        let first = job.apply(&event, now(), &Policy::default());
        let second = job.apply(&event, now(), &Policy::default());
        // Deterministic: the same event on the same job decides the same way.
        prop_assert_eq!(first.clone(), second);
        let redelivered_webhook = matches!(
            event,
            Event::RenderCompleted { .. }
                | Event::RenderFailed { .. }
                | Event::NoLongerPublic { .. }
                | Event::StatusObserved { via: Via::Webhook, .. }
        );
        if let (Ok(Step::Applied(a)), true) = (first, redelivered_webhook) {
            // At-least-once delivery: the second copy of a webhook changes nothing.
            prop_assert_eq!(a.job.apply(&event, now(), &Policy::default()), Ok(Step::Absorbed), "{} redelivered in {}", event.name(), a.job.state);
        }
    }
}
