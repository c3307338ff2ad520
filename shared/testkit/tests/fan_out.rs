//! One source sent to several accounts in one batch: the first item renders, every later item
//! of the same source shares that render (one Ssemble create, one credit) and moves with it;
//! an item of another range renders by itself; a child whose parent ended without a render
//! renders by itself rather than wait forever.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reelay_domain::ids::IdempotencyKey;
use reelay_domain::job::JobSource;
use reelay_domain::request::NewJob;
use reelay_domain::usecase::{Command, Created, FAN_OUT_PENDING, SubmitOutcome};
use reelay_domain::{JobId, JobState, PayloadHash, PostMode};
use reelay_testkit::{SsembleCall, World, account_id, block_on, sample, tenant_id};
use serde_json::json;

const T: &str = "t1";

fn world() -> World {
    World::new()
        .tenant(T)
        .account(T, "acct_a")
        .account(T, "acct_b")
        .account(T, "acct_c")
}

fn item(account: &str, key: &str, start: f64) -> Option<(NewJob, PayloadHash)> {
    let mut request = sample::render_request();
    request.start = start;
    request.end = start + 60.0;
    let parsed = NewJob {
        job_id: None,
        account_id: account_id(account),
        source: JobSource::Render(request),
        post: sample::post(PostMode::Direct),
        schedule_at: None,
        next_slot: false,
        fan_out_parent: None,
        idempotency_key: Some(IdempotencyKey::parse(key).unwrap()),
        api_request_id: None,
    };
    Some((parsed, PayloadHash::of(&json!({ "key": key }))))
}

fn created(w: &World, items: Vec<Option<(NewJob, PayloadHash)>>) -> Vec<JobId> {
    batch(w, items)
        .into_iter()
        .map(|(id, replayed)| {
            assert!(!replayed, "new keys");
            id
        })
        .collect()
}

/// Each item's job id and whether its answer was a replay.
fn batch(w: &World, items: Vec<Option<(NewJob, PayloadHash)>>) -> Vec<(JobId, bool)> {
    let answer = |job: &reelay_domain::Job| reelay_domain::ports::StoredResponse {
        status: 202,
        body: job.public_id().to_string(),
    };
    let replayed_id =
        |stored: &reelay_domain::ports::StoredResponse| JobId::parse(&stored.body).ok();
    block_on(
        w.core()
            .create_batch(&tenant_id(T), items, answer, replayed_id),
    )
    .into_iter()
    .map(|o| match o.unwrap().unwrap() {
        Created::New { job, .. } => (job.id, false),
        Created::Replay(stored) => (JobId::parse(stored.body).unwrap(), true),
    })
    .collect()
}

/// A batch retried with one item more (the client lost the first answer): the replayed first
/// item is still the parent, so the new item of the same source shares its render.
#[test]
fn a_retried_batch_fans_a_new_item_out_from_its_replayed_first_item() {
    let w = world();
    let first = created(&w, vec![item("acct_a", "k-a", 0.0)]);
    let again = batch(
        &w,
        vec![item("acct_a", "k-a", 0.0), item("acct_b", "k-b", 0.0)],
    );
    assert_eq!(again[0], (first[0].clone(), true));
    assert!(!again[1].1);
    assert_eq!(
        w.job_now(&again[1].0).fan_out_parent.as_ref(),
        Some(&first[0]),
        "the replayed item is the new item's parent"
    );
}

fn creates(w: &World) -> usize {
    w.ssemble
        .calls()
        .iter()
        .filter(|c| matches!(c.call, SsembleCall::Submit { .. }))
        .count()
}

#[test]
fn one_source_to_three_accounts_is_rendered_once_and_moves_together() {
    let w = world();
    let ids = created(
        &w,
        vec![
            item("acct_a", "k-a", 0.0),
            item("acct_b", "k-b", 0.0),
            item("acct_c", "k-c", 0.0),
            item("acct_c", "k-other-range", 300.0),
        ],
    );
    let core = w.core();
    assert_eq!(w.job_now(&ids[0]).fan_out_parent, None);
    assert_eq!(w.job_now(&ids[1]).fan_out_parent.as_ref(), Some(&ids[0]));
    assert_eq!(w.job_now(&ids[2]).fan_out_parent.as_ref(), Some(&ids[0]));
    assert_eq!(
        w.job_now(&ids[3]).fan_out_parent,
        None,
        "another range is another clip"
    );
    // A child that comes first waits for its parent's render, creating nothing.
    match block_on(core.submit_render(&ids[1])).unwrap() {
        SubmitOutcome::Held { reason } => assert_eq!(reason, FAN_OUT_PENDING),
        other => panic!("{other:?}"),
    }
    assert_eq!(creates(&w), 0);
    let SubmitOutcome::Submitted { request_id, .. } =
        block_on(core.submit_render(&ids[0])).unwrap()
    else {
        panic!("the parent creates");
    };
    // Its hold ended, the child shares the render; so does the other child.
    w.clock.advance(w.settings.policy.render_poll_min);
    for child in &ids[1..3] {
        match block_on(core.submit_render(child)).unwrap() {
            SubmitOutcome::Submitted { request_id: r, .. } => assert_eq!(r, request_id),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.job_now(child).state, JobState::Rendering);
    }
    block_on(core.submit_render(&ids[3])).unwrap();
    assert_eq!(
        creates(&w),
        2,
        "one create for the three accounts, one for the other range"
    );
    // One answer of Ssemble moves every job of the render.
    w.ssemble
        .complete(&request_id, vec![sample::clip("s1", 90.0)]);
    block_on(core.confirm_render(&request_id, None)).unwrap();
    for id in &ids[..3] {
        let job = w.job_now(id);
        assert!(
            matches!(job.state, JobState::Ready | JobState::PublishQueued),
            "{id}: {}",
            job.state
        );
        assert_eq!(job.request_id.as_ref(), Some(&request_id));
    }
}

#[test]
fn a_child_whose_parent_ended_without_a_render_renders_by_itself() {
    let w = world();
    let ids = created(
        &w,
        vec![item("acct_a", "k-a", 0.0), item("acct_b", "k-b", 0.0)],
    );
    let core = w.core();
    block_on(core.command(&tenant_id(T), &ids[0], Command::Cancel)).unwrap();
    match block_on(core.submit_render(&ids[1])).unwrap() {
        SubmitOutcome::Submitted { .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(creates(&w), 1);
    assert_eq!(w.job_now(&ids[1]).state, JobState::Rendering);
}

/// A render Ssemble lost (every job of it failed `resource_not_found`) is no render to fan out
/// any more: a create naming it answers like an unknown render, instead of being polled until it
/// fails again.
#[test]
fn a_render_ssemble_lost_is_not_fanned_out_again() {
    let w = world();
    let ids = created(&w, vec![item("acct_a", "k-a", 0.0)]);
    let core = w.core();
    let SubmitOutcome::Submitted { request_id, .. } =
        block_on(core.submit_render(&ids[0])).unwrap()
    else {
        panic!("creates");
    };
    w.ssemble
        .push_render_progress(Err(reelay_domain::upstream::UpstreamError {
            class: reelay_domain::ErrorClass::Permanent,
            code: "resource_not_found".into(),
            message: "not found".into(),
            log_id: None,
            retry_at: None,
            outcome_unknown: false,
        }));
    block_on(core.confirm_render(&request_id, None)).unwrap();
    let job = w.job_now(&ids[0]);
    assert_eq!(job.state, JobState::RenderFailed);
    assert_eq!(job.last_error.unwrap().code, "resource_not_found");
    let (mut parsed, fp) = item("acct_b", "k-late", 0.0).unwrap();
    parsed.source = JobSource::Rendered {
        request_id: request_id.clone(),
    };
    let answer = |job: &reelay_domain::Job| reelay_domain::ports::StoredResponse {
        status: 202,
        body: job.id.to_string(),
    };
    match block_on(core.create_job(&tenant_id(T), parsed, &fp, answer)) {
        Err(reelay_domain::usecase::CreateError::UnknownRender(r)) => assert_eq!(r, request_id),
        other => panic!("{other:?}"),
    }
}
