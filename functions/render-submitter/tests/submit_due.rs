//! Regression (found by the fault campaign): when a job's first render message was lost, the
//! reconciler's `submit_due` re-enqueued it, but that transition moved the job within
//! `received`, so the submitter took the reconciler's own message for a duplicate and
//! acknowledged it unhandled — every tick, forever. The job must render.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Setup, policy, world};
use reelay_aws::SystemClock;
use reelay_domain::JobState;
use reelay_domain::budget::Limits;
use reelay_domain::job::ClipChoice;
use reelay_domain::lifecycle::Event;
use reelay_domain::usecase::{Advance, advance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_reconciler_resends_a_lost_render_message_should_render_the_job() {
    let w = world(Setup::default()).await;
    let deps = w.submitter("http://127.0.0.1:9", Limits::default().time_scaled(60.0));
    let source = w.source("lost-message");
    let job = w.ingest("acct_1", &source, ClipChoice::TopViralScore).await;

    // The first message is lost (received and deleted without being handled).
    let lost = w.receive(&w.render_url, 2).await;
    assert_eq!(lost.len(), 1);
    w.sqs
        .delete_message()
        .queue_url(&w.render_url)
        .receipt_handle(lost[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();

    // Its next check comes: the reconciler's transition, which enqueues a fresh message.
    let moved = advance(
        &w.jobs,
        &w.queue,
        &SystemClock,
        &policy(),
        &job.id,
        &Event::SubmitDue,
    )
    .await
    .unwrap();
    assert!(matches!(moved, Advance::Moved(_)), "{moved:?}");

    w.drain_render(&deps, 1).await;
    let job = w.job(&job.id).await;
    assert_eq!(
        job.state,
        JobState::Rendering,
        "the resent message rendered the job"
    );
    assert_eq!(w.creates_for(&source), 1);
}
