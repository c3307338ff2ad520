//! The render submitter against real parts: MiniStack through the SDK (resources from
//! template.yaml under a random suffix) and ssemble-sim over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Setup, world};
use reelay_aws::SystemClock;
use reelay_domain::budget::{Limits, Window};
use reelay_domain::job::ClipChoice;
use reelay_domain::ports::Clock;
use reelay_domain::{JobState, UtcTime};
use ssemble_sim::{ApiEndpoint, FaultKind, FaultSpec, SimConfig, StormSpec, Tier};

const NO_WEBHOOKS: &str = "http://127.0.0.1:9";

/// Reelay's windows on the simulator's clock (one virtual hour per real minute).
fn scaled() -> Limits {
    Limits::default().time_scaled(60.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_job_is_received_should_create_once_and_persist_the_request_id() {
    let w = world(Setup::default()).await;
    let deps = w.submitter(NO_WEBHOOKS, scaled());
    let source = w.source("happy");
    let job = w.ingest("acct_1", &source, ClipChoice::TopViralScore).await;

    w.drain_render(&deps, 1).await;

    let job = w.job(&job.id).await;
    assert_eq!(job.state, JobState::Rendering);
    assert_eq!(
        job.request_id,
        w.sim_request_for(&source),
        "requestId persisted"
    );
    assert!(job.request_id.is_some());
    assert_eq!(job.render_attempts, 1);
    assert_eq!(job.webhook_token_hashes.len(), 1);
    assert_eq!(job.webhook_token_hashes[0].len(), 64);
    assert_eq!(w.creates_for(&source), 1);

    // A stale copy of the message (the job is past received) is acknowledged and changes nothing.
    w.enqueue_render_check(&job, 77).await;
    w.drain_render(&deps, 1).await;
    let again = w.job(&job.id).await;
    assert_eq!(again.version, job.version);
    assert_eq!(w.creates_for(&source), 1);
    w.assert_no_limit_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_ssemble_answers_429_should_hold_the_job_until_the_announced_time() {
    let w = world(Setup::default()).await;
    let deps = w.submitter(NO_WEBHOOKS, scaled());
    w.sim.storm(StormSpec {
        endpoint: Some(ApiEndpoint::Create),
        count: 1,
        retry_after_secs: 37,
        retry_after_header: true,
        details_retry_after: true,
        details_reset_at: true,
        reset_header: true,
    });
    let source = w.source("storm");
    let job = w.ingest("acct_1", &source, ClipChoice::TopViralScore).await;
    let before = SystemClock.now();

    w.drain_render(&deps, 1).await;

    let job = w.job(&job.id).await;
    assert_eq!(job.state, JobState::Received);
    assert_eq!(job.request_id, None);
    let hold = job.hold.clone().expect("held");
    assert_eq!(hold.reason, "rate_limit_exceeded");
    let until = hold.until.expect("with a retry time");
    let lo = before.plus(Duration::from_secs(35));
    let hi = SystemClock.now().plus(Duration::from_secs(39));
    assert!(
        until >= lo && until <= hi,
        "retry at {until}, wanted about now + 37 s"
    );
    assert_eq!(job.next_check.map(|c| c.at), Some(until));
    assert_eq!(
        job.last_error.as_ref().map(|e| e.code.as_str()),
        Some("rate_limit_exceeded")
    );
    assert_eq!(w.creates_for(&source), 0);

    // Before the hold ends, another delivery does nothing.
    w.enqueue_render_check(&job, 78).await;
    w.drain_render(&deps, 1).await;
    assert_eq!(w.job(&job.id).await.version, job.version);
    assert_eq!(w.sim.inspect().storm_429s, 1);
    w.assert_no_limit_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_create_outcome_is_unknown_should_look_first_next_time_and_create_only_once() {
    // Simulator time runs at real speed here, so its createdAt and our clock agree.
    let w = world(Setup {
        sim: SimConfig {
            time_scale: 1.0,
            withhold_real_secs: 4.0,
            ..SimConfig::default()
        },
        request_timeout: Duration::from_secs(1),
    })
    .await;
    let deps = w.submitter(NO_WEBHOOKS, Limits::default());
    w.sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::Create),
        kind: FaultKind::TimeoutAfterAccept,
        count: 1,
        status: None,
    });
    let source = w.source("unknown");
    let job = w.ingest("acct_1", &source, ClipChoice::TopViralScore).await;

    w.drain_render(&deps, 1).await;

    let first = w.job(&job.id).await;
    assert_eq!(first.state, JobState::Received, "left in received");
    assert_eq!(first.request_id, None);
    assert_eq!(first.render_attempts, 1);
    assert_eq!(w.creates_for(&source), 1, "the create did land at Ssemble");

    // A delivery before the attempt's lease ends must not start a second create.
    w.enqueue_render_check(&first, 80).await;
    w.drain_render(&deps, 1).await;
    assert_eq!(w.job(&job.id).await.version, first.version);

    // The job's next check: the submitter looks first and finds the request.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    w.enqueue_render_check(&first, 81).await;
    w.drain_render(&deps, 1).await;

    let job = w.job(&job.id).await;
    assert_eq!(job.state, JobState::Rendering);
    assert_eq!(job.request_id, w.sim_request_for(&source));
    assert_eq!(job.render_attempts, 2);
    assert_eq!(w.creates_for(&source), 1, "exactly one create for the job");
    assert_eq!(
        w.sim.inspect().credits_spent(&w.key_raw),
        1,
        "exactly one credit"
    );
    let calls = w.calls_by_endpoint();
    assert_eq!(calls.get("Create"), Some(&1), "{calls:?}");
    assert!(calls.get("List").is_some_and(|n| *n >= 1), "{calls:?}");
    w.assert_no_limit_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_hourly_budget_is_spent_should_hold_the_rest_and_never_exceed_ssemble_limits() {
    let w = world(Setup {
        sim: SimConfig {
            time_scale: 1.0,
            tier: Tier {
                per_hour: 3,
                per_day: 1000,
            },
            ..SimConfig::default()
        },
        request_timeout: Duration::from_secs(10),
    })
    .await;
    let limits = Limits {
        ssemble_hourly: Window::new(3, Duration::from_secs(3600)),
        ..Limits::default()
    };
    let deps = w.submitter(NO_WEBHOOKS, limits);
    let mut ids = Vec::new();
    for i in 0..5 {
        let job = w
            .ingest(
                &format!("acct_{i}"),
                &w.source("budget"),
                ClipChoice::TopViralScore,
            )
            .await;
        ids.push(job.id);
    }

    w.drain_render(&deps, 5).await;

    let now = SystemClock.now();
    let mut rendering = 0;
    let mut held = 0;
    for id in &ids {
        let job = w.job(id).await;
        match job.state {
            JobState::Rendering => rendering += 1,
            JobState::Received => {
                let hold = job.hold.expect("held with a reason");
                assert_eq!(hold.reason, "ssemble_budget:ssemble_hourly");
                assert!(hold.until.is_some_and(|u: UtcTime| u > now));
                assert_eq!(job.render_attempts, 0, "no attempt recorded without budget");
                held += 1;
            }
            other => panic!("unexpected state {other}"),
        }
    }
    assert_eq!((rendering, held), (3, 2));
    let inspection = w.sim.inspect();
    assert_eq!(inspection.creates_per_source.values().sum::<u32>(), 3);
    w.assert_no_limit_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_message_is_undecodable_should_fail_it_for_the_dlq() {
    let w = world(Setup::default()).await;
    let deps = w.submitter(NO_WEBHOOKS, scaled());
    w.sqs
        .send_message()
        .queue_url(&w.render_url)
        .message_group_id("tenant_a:acct_1")
        .message_deduplication_id("poison-1")
        .message_body("not a work message")
        .send()
        .await
        .unwrap();
    let (n, response) = w.deliver_render(&deps).await;
    assert_eq!(n, 1);
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(
        w.sim.inspect().calls.is_empty(),
        "no Ssemble call for poison"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_ssemble_refuses_should_fail_a_bad_source_and_park_an_account_problem() {
    let w = world(Setup::default()).await;
    let deps = w.submitter(NO_WEBHOOKS, scaled());
    // A definite, permanent refusal: the job fails with Ssemble's code.
    let too_long = w.source("too_long");
    let bad = w
        .ingest("acct_1", &too_long, ClipChoice::TopViralScore)
        .await;
    w.drain_render(&deps, 1).await;
    let bad = w.job(&bad.id).await;
    assert_eq!(bad.state, JobState::RenderFailed);
    assert_eq!(
        bad.last_error.as_ref().map(|e| e.code.as_str()),
        Some("video_too_long")
    );
    assert_eq!(w.creates_for(&too_long), 0);

    // No credits is the operator's problem, not the job's: parked visibly, not failed.
    w.sim.set_credits(&w.key_raw, 0);
    let parked = w
        .ingest("acct_2", &w.source("nocredit"), ClipChoice::TopViralScore)
        .await;
    w.drain_render(&deps, 1).await;
    let parked = w.job(&parked.id).await;
    assert_eq!(parked.state, JobState::Received);
    let hold = parked.hold.expect("held");
    assert_eq!(hold.reason, "insufficient_credits");
    assert!(hold.until.is_some_and(|u| u > SystemClock.now()));
    assert!(parked.next_check.is_some(), "its next check brings it back");
    w.assert_no_limit_violations();
}
