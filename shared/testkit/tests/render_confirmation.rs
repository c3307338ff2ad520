//! Regression tests for issue 10's defects 3 and 4: render confirmation is one use case, whether
//! a Ssemble webhook hinted at it or the reconciler polled, and an id Ssemble does not know ends
//! the job at once with Ssemble's own code instead of being polled for six hours.
//!
//! Before: the webhook function and the reconciler each had their own confirmation, taking the
//! budgets in opposite orders and 2 units against 1, and failing a missing clip as
//! `no_usable_clip` in one and `clip_not_found` in the other; a 404 was retried like an outage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reelay_domain::budget::BudgetKind;
use reelay_domain::job::{ClipChoice, PostSettings};
use reelay_domain::lifecycle::ErrorClass;
use reelay_domain::usecase::{Confirmed, HintOutcome, SubmitOutcome};
use reelay_domain::{JobState, PostMode, RequestId};
use reelay_testkit::{JobSetup, World, block_on, sample};
use secrecy::SecretString;

const T: &str = "tenant_a";
const A: &str = "acct_1";

fn post(clip: ClipChoice) -> PostSettings {
    PostSettings {
        clip,
        ..sample::post(PostMode::Direct)
    }
}

/// A world with one submitted job whose render completed with `clips`, and what confirming it
/// by `how` (a Ssemble webhook with the job's own token, or the reconciler's poll) did: the
/// job's final state and error code, and the Ssemble budget takes spent in all.
fn confirm(
    how: &str,
    clip: ClipChoice,
    clips: Vec<reelay_domain::Clip>,
) -> (JobState, Option<String>, Vec<usize>) {
    let w = World::new().tenant(T).account(T, A);
    let core = w.core();
    let job = w.job(JobSetup::render(T, A).post(post(clip)));
    block_on(core.submit_render(&job.id)).unwrap();
    let request = w.job_now(&job.id).request_id.unwrap();
    w.ssemble.complete(&request, clips);
    match how {
        "webhook" => {
            let url = w.ssemble.webhook_url(&request).unwrap();
            let token = SecretString::from(url.rsplit('.').next().unwrap().to_owned());
            let at = w.clock.now().plus(std::time::Duration::from_secs(7));
            let outcome = block_on(core.render_hint(&job.id, &token, &hint(&request), at)).unwrap();
            assert!(
                matches!(outcome, HintOutcome::Confirmed { .. }),
                "{outcome:?}"
            );
        }
        _ => {
            let mut due = w.job_now(&job.id);
            // Its poll is due.
            w.clock.advance_to(due.next_check.unwrap().at);
            due = w.job_now(&job.id);
            block_on(core.reconcile_job(due)).unwrap();
        }
    }
    let after = w.job_now(&job.id);
    let scope = w.settings.render.ssemble_scope.clone();
    let takes = [
        BudgetKind::SsembleStatus,
        BudgetKind::SsembleHourly,
        BudgetKind::SsembleDaily,
    ]
    .iter()
    .map(|k| w.store.budget_tally(&scope, *k).total() as usize)
    .collect();
    (after.state, after.last_error.map(|e| e.code), takes)
}

#[test]
fn a_hint_and_a_poll_confirm_a_render_the_same_way() {
    let clip = |id: &str| sample::clip(id, 50.0);
    for (choice, clips, state, code) in [
        (
            ClipChoice::TopViralScore,
            vec![clip("a")],
            JobState::PublishQueued,
            None,
        ),
        (
            ClipChoice::ShortId("missing".into()),
            vec![clip("a")],
            JobState::RenderFailed,
            Some("clip_not_found"),
        ),
        (
            ClipChoice::TopViralScore,
            vec![],
            JobState::RenderFailed,
            Some("no_usable_clip"),
        ),
    ] {
        let hinted = confirm("webhook", choice.clone(), clips.clone());
        let polled = confirm("poll", choice.clone(), clips.clone());
        assert_eq!(
            (&hinted.0, &hinted.1),
            (&polled.0, &polled.1),
            "{choice:?}: a hint and a poll must agree"
        );
        assert_eq!(hinted.0, state, "{choice:?}");
        assert_eq!(hinted.1.as_deref(), code, "{choice:?}");
        // Each call charged to every Ssemble window once (the create to its own minute pool).
        // A poll: one create, one status read, one document read. A webhook saying the render
        // completed: one create and the document alone (issue 13: calls per render).
        assert_eq!(polled.2, vec![2, 3, 3], "{choice:?}");
        assert_eq!(hinted.2, vec![1, 2, 2], "{choice:?}");
    }
}

#[test]
fn a_hint_that_the_document_does_not_bear_out_is_asked_of_the_status_and_changes_nothing() {
    let w = World::new().tenant(T).account(T, A);
    let core = w.core();
    let job = w.job(JobSetup::render(T, A));
    block_on(core.submit_render(&job.id)).unwrap();
    let before = w.job_now(&job.id);
    let request = before.request_id.clone().unwrap();
    let url = w.ssemble.webhook_url(&request).unwrap();
    let token = SecretString::from(url.rsplit('.').next().unwrap().to_owned());
    let at = w.clock.now().plus(std::time::Duration::from_secs(7));
    // The payload claims completion; Ssemble's document and status say it is still rendering.
    w.ssemble
        .set_progress(&request, reelay_domain::upstream::RenderProgress::Pending)
        .push_render_clips(Ok(None));
    let outcome = block_on(core.render_hint(&job.id, &token, &hint(&request), at)).unwrap();
    assert_eq!(
        outcome,
        HintOutcome::Confirmed {
            rendered: 0,
            failed: 0
        }
    );
    assert_eq!(w.job_now(&job.id).state, JobState::Rendering);
    assert_eq!(w.ssemble.count("render_clips"), 1);
    assert_eq!(w.ssemble.count("render_progress"), 1);
}

#[test]
fn defect_4_an_id_ssemble_does_not_know_fails_the_job_at_once_with_ssembles_code() {
    let w = World::new().tenant(T).account(T, A);
    let request = RequestId::parse("deaddeaddeaddeaddeaddead").unwrap();
    let job = w.job(JobSetup::rendered(T, A, &request));
    w.ssemble.push_render_progress(Err(sample::upstream_error(
        ErrorClass::Permanent,
        "resource_not_found",
    )));
    let core = w.core();
    // Its first confirmation, from the render queue at the job's creation.
    let outcome = block_on(core.submit_render(&job.id)).unwrap();
    assert!(
        matches!(&outcome, SubmitOutcome::Confirmed(Confirmed::Refused { code, jobs: 1 }) if code == "resource_not_found"),
        "{outcome:?}"
    );
    let after = w.job_now(&job.id);
    assert_eq!(after.state, JobState::RenderFailed);
    assert_eq!(
        after.last_error.map(|e| e.code).as_deref(),
        Some("resource_not_found")
    );
    assert_eq!(
        w.ssemble.count("render_progress"),
        1,
        "asked once, never polled"
    );
    assert_eq!(after.next_check, None);
}

#[test]
fn an_outage_is_not_a_verdict_the_render_is_asked_again_later() {
    let w = World::new().tenant(T).account(T, A);
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    let job = w.job(JobSetup::rendered(T, A, &request));
    w.ssemble.push_render_progress(Err(sample::upstream_error(
        ErrorClass::Retryable,
        "internal_error",
    )));
    let core = w.core();
    block_on(core.reconcile_job(w.job_now(&job.id))).unwrap();
    let after = w.job_now(&job.id);
    assert_eq!(after.state, JobState::Rendering);
    assert!(after.next_check.is_some_and(|c| c.at > w.clock.now()));
}

/// A webhook's claim naming `request` (a render the test has completed).
fn hint(request: &reelay_domain::RequestId) -> reelay_domain::usecase::RenderHint {
    reelay_domain::usecase::RenderHint {
        request_id: Some(request.clone()),
        completed: true,
    }
}
