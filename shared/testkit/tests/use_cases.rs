//! Every use case of `reelay_domain::usecase::Core`, run once through `World::core()`: the
//! in-memory adapters are wired the way the functions wire theirs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reelay_domain::account::AccountHealth;
use reelay_domain::lifecycle::{Actor, PublishStatus};
use reelay_domain::messages::QueueKind;
use reelay_domain::ports::{StoredResponse, TokenVault};
use reelay_domain::request::{Amendment, NewJob};
use reelay_domain::upstream::RenderStatus;
use reelay_domain::usecase::{
    AccountError, Command, CommandError, Confirmed, CreateError, Created, CreatorSettings,
    HintOutcome, Observation, ObserveOutcome, Observed, PublishOutcome, SubmitOutcome, WaitTiming,
};
use reelay_domain::{
    IdempotencyKey, JobId, JobSource, JobState, PayloadHash, PostMode, RequestId, UtcTime,
};
use reelay_testkit::{
    AccountSetup, Fault, JobSetup, TikTokCall, World, account_id, block_on, sample, tenant_id,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

const T: &str = "tenant_a";
const A: &str = "acct_1";

fn world() -> World {
    World::new().tenant(T).account(T, A)
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

/// A publish invocation's deadline: 15 minutes from now, as Lambda's timeout would give.
fn deadline(w: &World) -> UtcTime {
    w.clock.now().plus(minutes(15))
}

fn new_job(key: &str) -> (NewJob, PayloadHash) {
    new_job_for(A, key)
}

fn new_job_for(account: &str, key: &str) -> (NewJob, PayloadHash) {
    let body = json!({ "tiktokAccountId": account, "idempotencyKey": key, "kind": "render" });
    let parsed = NewJob {
        job_id: None,
        account_id: account_id(account),
        source: JobSource::Render(sample::render_request()),
        post: sample::post(PostMode::Direct),
        schedule_at: None,
        next_slot: false,
        fan_out_parent: None,
        idempotency_key: Some(IdempotencyKey::parse(key).unwrap()),
        api_request_id: Some(format!("req-{key}")),
    };
    (parsed, PayloadHash::of(&body))
}

fn answer(job: &reelay_domain::Job) -> StoredResponse {
    StoredResponse {
        status: 202,
        body: format!("{{\"jobId\":\"{}\",\"state\":\"{}\"}}", job.id, job.state),
    }
}

/// Creates a job through `create_job` and submits its render; returns the job id and request.
fn submitted(w: &World) -> (JobId, RequestId) {
    let core = w.core();
    let (parsed, fp) = new_job("k-submitted");
    let Created::New { job, .. } =
        block_on(core.create_job(&tenant_id(T), parsed, &fp, answer)).unwrap()
    else {
        panic!("a new key creates");
    };
    let message = w
        .queue
        .take(QueueKind::Render)
        .expect("create_job enqueues the render");
    assert_eq!(message.message.job_id, job.id);
    let SubmitOutcome::Submitted { request_id, found } =
        block_on(core.submit_render(&job.id)).unwrap()
    else {
        panic!("the render was not submitted");
    };
    assert!(!found);
    (job.id, request_id)
}

#[test]
fn a_job_goes_from_create_to_publicly_available_with_exactly_one_init() {
    let w = world();
    let core = w.core();
    let tenant = tenant_id(T);

    // create_job, and a replay of it.
    let (parsed, fp) = new_job("k-happy");
    let created = block_on(core.create_job(&tenant, parsed.clone(), &fp, answer)).unwrap();
    let Created::New { job, response } = created else {
        panic!("a new key creates");
    };
    assert_eq!(job.state, JobState::Received);
    let replay = block_on(core.create_job(&tenant, parsed, &fp, answer)).unwrap();
    assert_eq!(replay, Created::Replay(response));
    assert_eq!(w.store.jobs().len(), 1);

    // submit_render, from the render queue's message.
    let message = w.queue.take(QueueKind::Render).unwrap();
    assert_eq!(message.message.job_id, job.id);
    let SubmitOutcome::Submitted { request_id, .. } =
        block_on(core.submit_render(&message.message.job_id)).unwrap()
    else {
        panic!("not submitted");
    };
    assert_eq!(w.ssemble.count("submit"), 1);
    assert_eq!(w.job_now(&job.id).state, JobState::Rendering);

    // confirm_render: Ssemble completed with two clips; the top score is chosen.
    let best = sample::clip("best", 9.5);
    w.ssemble
        .complete(&request_id, vec![sample::clip("other", 3.0), best.clone()]);
    let confirmed = block_on(core.confirm_render(&request_id, None)).unwrap();
    let Confirmed::Answered {
        status: RenderStatus::Completed { .. },
        jobs: 1,
        moved: 1,
    } = confirmed
    else {
        panic!("not confirmed: {confirmed:?}");
    };
    let ready = w.job_now(&job.id);
    assert_eq!(ready.clip.as_ref(), Some(&best));

    // publish, from the publish queue's message (the schedule is now).
    let message = w
        .queue
        .take(QueueKind::Publish)
        .unwrap_or_else(|| panic!("no publish message; job is {}", ready.state));
    let outcome = block_on(core.publish(&message.message.job_id, deadline(&w))).unwrap();
    let PublishOutcome::Accepted {
        publish_id,
        uploaded: true,
    } = outcome
    else {
        panic!("not accepted: {outcome:?}");
    };
    assert_eq!(w.job_now(&job.id).state, JobState::Uploaded);
    let inits = w.tiktok.inits();
    assert_eq!(inits.len(), 1);
    assert_eq!(inits[0].clip, best);
    assert_eq!(w.tiktok.count("upload"), 1);

    // observe_publish: TikTok's webhook says it is complete, with the post id.
    let observation = Observation {
        publish_id: reelay_domain::PublishId::parse(publish_id.as_str()).unwrap(),
        open_id: format!("open-{T}-{A}"),
        what: Observed::Status {
            status: PublishStatus::Complete,
            post_ids: vec!["7602997517160123666".into()],
        },
    };
    let observed = block_on(core.observe_publish(&observation)).unwrap();
    assert_eq!(
        observed,
        ObserveOutcome::Moved {
            job_state: JobState::PubliclyAvailable
        }
    );
    let done = w.job_now(&job.id);
    assert_eq!(done.state, JobState::PubliclyAvailable);
    assert_eq!(done.post_ids, ["7602997517160123666"]);
    assert!(done.next_check.is_none());

    // A duplicate webhook changes nothing; still exactly one init.
    assert_eq!(
        block_on(core.observe_publish(&observation)).unwrap(),
        ObserveOutcome::Absorbed
    );
    assert_eq!(w.tiktok.count("init"), 1);
    let trail: Vec<String> = w
        .store
        .audit_trail(&job.id)
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(trail.first().map(String::as_str), Some("created"));
    assert_eq!(trail.last().map(String::as_str), Some("status_observed"));
    assert!(w.store.due(w.clock.now()).is_empty());
}

trait DueNow {
    fn due(&self, now: UtcTime) -> Vec<reelay_domain::ports::DueJob>;
}

impl DueNow for reelay_testkit::MemStore {
    fn due(&self, now: UtcTime) -> Vec<reelay_domain::ports::DueJob> {
        block_on(reelay_domain::ports::JobStore::due(self, now, 1000)).unwrap()
    }
}

#[test]
fn a_ssemble_webhook_is_confirmed_with_ssemble_and_a_wrong_token_changes_nothing() {
    let w = world();
    let core = w.core();
    let (job_id, request_id) = submitted(&w);
    let url = w.ssemble.webhook_url(&request_id).unwrap();
    let segment = url.rsplit('/').next().unwrap();
    let (named, token) = segment.split_once('.').unwrap();
    assert_eq!(named, job_id.as_str());
    let at = deadline(&w);

    let wrong = SecretString::from("0".repeat(32));
    assert_eq!(
        block_on(core.render_hint(&job_id, &wrong, &hint(&request_id), at)).unwrap(),
        HintOutcome::NotFound
    );
    assert_eq!(
        w.ssemble.count("render_progress"),
        0,
        "no budget spent on a forgery"
    );

    w.ssemble
        .complete(&request_id, vec![sample::clip("c", 5.0)]);
    let token = SecretString::from(token.to_owned());
    assert_eq!(
        block_on(core.render_hint(&job_id, &token, &hint(&request_id), at)).unwrap(),
        HintOutcome::Confirmed {
            rendered: 1,
            failed: 0
        }
    );
    // Due now: straight on to the publish queue.
    assert_eq!(w.job_now(&job_id).state, JobState::PublishQueued);
    assert_eq!(
        block_on(core.render_hint(&job_id, &token, &hint(&request_id), at)).unwrap(),
        HintOutcome::AlreadySettled
    );
}

#[test]
fn a_job_of_an_existing_render_is_confirmed_at_once_through_the_render_queue() {
    let w = world();
    let core = w.core();
    let done = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    let pending = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0f").unwrap();
    w.ssemble.complete(&done, vec![sample::clip("c", 5.0)]);
    w.ssemble
        .set_progress(&pending, reelay_domain::upstream::RenderProgress::Pending);
    let ready = w.job(JobSetup::rendered(T, A, &done));
    let waiting = w.job(JobSetup::rendered(T, A, &pending));
    // Both are on the render queue at their creation, not left to the reconciler's next tick.
    for job in [&ready, &waiting] {
        let message = w.queue.take(QueueKind::Render).expect("a render message");
        assert_eq!(message.message.job_id, job.id);
    }
    let outcome = block_on(core.submit_render(&ready.id)).unwrap();
    assert!(
        matches!(
            outcome,
            SubmitOutcome::Confirmed(Confirmed::Answered { moved: 1, .. })
        ),
        "{outcome:?}"
    );
    assert_eq!(w.job_now(&ready.id).state, JobState::PublishQueued);
    let outcome = block_on(core.submit_render(&waiting.id)).unwrap();
    assert!(
        matches!(
            outcome,
            SubmitOutcome::Confirmed(Confirmed::Answered { .. })
        ),
        "{outcome:?}"
    );
    let still = w.job_now(&waiting.id);
    assert_eq!(still.state, JobState::Rendering);
    assert_ne!(still.next_check, waiting.next_check, "its next poll moved");
    // A redelivered message asks Ssemble nothing more, whatever the render's state.
    let asked = w.ssemble.count("render_progress");
    assert_eq!(asked, 2);
    for job in [&ready, &waiting] {
        assert_eq!(
            block_on(core.submit_render(&job.id)).unwrap(),
            SubmitOutcome::Stale
        );
    }
    assert_eq!(w.ssemble.count("render_progress"), asked);
}

#[test]
fn a_burst_of_jobs_of_one_render_costs_ssemble_one_read_at_once() {
    let w = world();
    let core = w.core();
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble
        .set_progress(&request, reelay_domain::upstream::RenderProgress::Pending);
    let first = w.job(JobSetup::rendered(T, A, &request));
    assert!(matches!(
        block_on(core.submit_render(&first.id)).unwrap(),
        SubmitOutcome::Confirmed(_)
    ));
    // Created after that confirmation's fan-out, each with its own message: none asks again.
    let later: Vec<_> = (0..5)
        .map(|_| w.job(JobSetup::rendered(T, A, &request)))
        .collect();
    for job in &later {
        assert_eq!(
            block_on(core.submit_render(&job.id)).unwrap(),
            SubmitOutcome::NotDue
        );
    }
    assert_eq!(w.ssemble.count("render_progress"), 1);
    // Their fallback check comes due: one poll of the reconciler confirms them all.
    w.ssemble.complete(&request, vec![sample::clip("c", 5.0)]);
    w.clock.advance(w.settings.policy.render_poll_min);
    block_on(core.reconcile(deadline(&w)));
    assert_eq!(w.ssemble.count("render_progress"), 2);
    for job in &later {
        assert_ne!(w.job_now(&job.id).state, JobState::Rendering);
    }
    // Once the window has passed, a new job of the render is confirmed at once again.
    w.clock.advance(Duration::from_secs(1));
    let next = w.job(JobSetup::rendered(T, A, &request));
    assert!(matches!(
        block_on(core.submit_render(&next.id)).unwrap(),
        SubmitOutcome::Confirmed(_)
    ));
}

#[test]
fn reconcile_confirms_renders_queues_publishes_and_polls_status_to_the_end() {
    let w = world();
    let core = w.core();
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble.complete(&request, vec![sample::clip("c", 5.0)]);
    let job = w.job(JobSetup::rendered(T, A, &request));
    assert_eq!(job.state, JobState::Rendering);

    // The render queue's message (the confirmation at once) is lost: the reconciler's
    // fallback poll comes due, confirms the render and the ready job is queued.
    assert!(w.queue.take(QueueKind::Render).is_some());
    w.clock.advance(w.settings.policy.render_poll_min);
    let report = block_on(core.reconcile(deadline(&w)));
    assert!(report.moved >= 1, "{report:?}");
    assert_eq!(
        (report.rendered, report.render_failed),
        (1, 0),
        "{report:?}"
    );
    let after = w.job_now(&job.id);
    assert!(
        matches!(after.state, JobState::Ready | JobState::PublishQueued),
        "{}",
        after.state
    );
    if after.state == JobState::Ready {
        block_on(core.reconcile(deadline(&w)));
    }
    assert_eq!(w.job_now(&job.id).state, JobState::PublishQueued);
    let message = w
        .queue
        .take(QueueKind::Publish)
        .expect("queued for publishing");
    let outcome = block_on(core.publish(&message.message.job_id, deadline(&w))).unwrap();
    let PublishOutcome::Accepted { publish_id, .. } = outcome else {
        panic!("{outcome:?}");
    };
    let publish_id = reelay_domain::PublishId::parse(publish_id).unwrap();

    // No webhook comes: status polls do the work, and none follows the end.
    w.tiktok
        .set_status(&publish_id, PublishStatus::Complete, vec!["1".into()]);
    for _ in 0..10 {
        w.clock.advance(minutes(5));
        block_on(core.reconcile(deadline(&w)));
        if w.job_now(&job.id).is_terminal() {
            break;
        }
    }
    assert_eq!(w.job_now(&job.id).state, JobState::PubliclyAvailable);
    let polls = w.tiktok.status_polls().len();
    assert!(polls >= 1);
    w.clock.advance(minutes(60));
    let idle = block_on(core.reconcile(deadline(&w)));
    assert_eq!(idle.due, 0);
    assert_eq!(
        w.tiktok.status_polls().len(),
        polls,
        "no poll after the end"
    );
    assert_eq!(w.tiktok.count("init"), 1);
}

/// Once `race` is set, runs it before each call of the hooked core named in `calls`: another
/// writer acting just before the call (the race decides how often it acts).
struct RaceBefore {
    calls: &'static [&'static str],
    race: std::sync::Mutex<Option<Box<dyn Fn() -> reelay_testkit::HookFuture + Send>>>,
}

impl RaceBefore {
    fn new(calls: &'static [&'static str]) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            calls,
            race: std::sync::Mutex::new(None),
        })
    }
}

impl reelay_testkit::Hook for RaceBefore {
    fn before(&self, call: &'static str) -> reelay_testkit::HookFuture {
        match self.race.lock().unwrap().as_ref() {
            Some(race) if self.calls.contains(&call) => race(),
            _ => Box::pin(async { Ok(()) }),
        }
    }
}

/// A publisher records a 429 on the account after the reconciler's first look at it and before
/// its status call (here: while it takes the poll's budget). The reconciler looks again right
/// before the call and defers the poll to the end of the block instead of spending a call TikTok
/// answers 429 (simulation seed 14691 found this window; reverting 44f4f5c fails this test).
#[test]
fn a_throttle_recorded_while_a_status_poll_is_prepared_stops_the_poll() {
    use reelay_domain::ports::AccountStore as _;
    let hook = RaceBefore::new(&[reelay_testkit::calls::BUDGETS_TAKE]);
    let w = world().with_hook(hook.clone());
    let core = w.core();
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble.complete(&request, vec![sample::clip("c", 5.0)]);
    let job = w.job(JobSetup::rendered(T, A, &request));
    assert!(w.queue.take(QueueKind::Render).is_some());
    w.clock.advance(w.settings.policy.render_poll_min);
    block_on(core.reconcile(deadline(&w)));
    if w.job_now(&job.id).state == JobState::Ready {
        block_on(core.reconcile(deadline(&w)));
    }
    let message = w
        .queue
        .take(QueueKind::Publish)
        .expect("queued for publishing");
    let outcome = block_on(core.publish(&message.message.job_id, deadline(&w))).unwrap();
    assert!(
        matches!(outcome, PublishOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let polls = w.tiktok.status_polls().len();

    // The poll comes due; while it is prepared, a 429 on another job blocks the account.
    w.clock.advance(minutes(5));
    let until = w.clock.now().plus(minutes(30));
    let (store, fired) = (
        w.store.clone(),
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let seen = fired.clone();
    *hook.race.lock().unwrap() = Some(Box::new(move || {
        // Once: before the first budget take only.
        let first = !seen.swap(true, std::sync::atomic::Ordering::Relaxed);
        let store = store.clone();
        Box::pin(async move {
            if first {
                store
                    .block_until(&tenant_id(T), &account_id(A), until, "rate_limit_exceeded")
                    .await
                    .unwrap();
            }
            Ok(())
        })
    }));
    block_on(core.reconcile(deadline(&w)));
    assert!(
        fired.load(std::sync::atomic::Ordering::Relaxed),
        "the poll was prepared"
    );
    assert_eq!(
        w.tiktok.status_polls().len(),
        polls,
        "no status call while TikTok throttles the account"
    );
    let after = w.job_now(&job.id);
    assert!(!after.is_terminal(), "{}", after.state);
    assert!(
        after.next_check.is_some_and(|c| c.at >= until),
        "deferred to the block's end: {:?}",
        after.next_check
    );
}

#[test]
fn reconcile_job_moves_one_due_job_and_skips_one_not_due() {
    let w = world();
    let core = w.core();
    let job = w.job(JobSetup::render(T, A));
    // Not due yet: its submission check is two minutes away.
    assert_eq!(
        block_on(core.reconcile_job(job.clone())).unwrap(),
        reelay_domain::usecase::Reconciled::Skipped
    );
    w.clock.advance(minutes(3));
    let done = block_on(core.reconcile_job(w.job_now(&job.id))).unwrap();
    assert_ne!(done, reelay_domain::usecase::Reconciled::Skipped);
    assert!(
        w.queue.len(QueueKind::Render) >= 1,
        "re-enqueued for submission"
    );
}

/// A run reports how overdue its most overdue job was (the lag alarmable as `ReconcileLag`), and
/// a render that failed at Ssemble as a failed render.
#[test]
fn a_run_reports_its_lag_and_the_renders_it_failed() {
    let w = world();
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble.fail(&request, "Video download failed: 403");
    let job = w.job(JobSetup::rendered(T, A, &request));
    let due_at = w.job_now(&job.id).next_check.unwrap().at;
    w.clock.advance_to(due_at.plus(minutes(7)));
    let report = block_on(w.core().reconcile(deadline(&w)));
    assert_eq!(w.job_now(&job.id).state, JobState::RenderFailed);
    assert_eq!(
        (report.rendered, report.render_failed),
        (0, 1),
        "{report:?}"
    );
    assert_eq!(report.lag_ms, 7 * 60 * 1000, "{report:?}");
}

/// A job others keep moving while the reconciler is at it (every retry of its write loses) is
/// not a failure of the run: a busy stage's races would otherwise trip the failed-run alarm and
/// make `reconcile now` exit 1. The job stays due for the next run.
#[test]
fn a_job_moved_concurrently_is_skipped_by_the_run_not_failed() {
    // Before every job write of the hooked core, another (unhooked) core changes the job, so
    // each of the hooked core's writes loses its race, as when webhooks keep moving the job.
    let hook = RaceBefore::new(&[
        reelay_testkit::calls::JOBS_SAVE,
        reelay_testkit::calls::JOBS_RESCHEDULE,
    ]);
    let w = world().with_hook(hook.clone());
    let job = w.job(JobSetup::render(T, A));
    w.clock.advance(minutes(3));
    let other = w.unhooked_core();
    let id = job.id.clone();
    let races = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = races.clone();
    *hook.race.lock().unwrap() = Some(Box::new(move || {
        let (other, id) = (other.clone(), id.clone());
        let n = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            let title = Some(format!("moved elsewhere {n}"));
            other
                .amend(
                    &tenant_id(T),
                    &id,
                    Amendment {
                        next_slot: false,
                        schedule_at: None,
                        title,
                    },
                )
                .await
                .unwrap();
            Ok(())
        })
    }));
    let report = block_on(w.core().reconcile(deadline(&w)));
    assert!(
        races.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "the writes raced"
    );
    assert_eq!((report.failed, report.skipped), (0, 1), "{report:?}");
    assert_eq!(
        w.job_now(&job.id).state,
        JobState::Received,
        "left for the next run"
    );
}

#[test]
fn an_owner_cancels_a_job_and_cannot_retry_it() {
    let w = world();
    let core = w.core();
    let job = w.job(JobSetup::render(T, A));
    let tenant = tenant_id(T);
    let cancelled = block_on(core.command(&tenant, &job.id, Command::Cancel)).unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(matches!(
        block_on(core.command(&tenant, &job.id, Command::Retry)),
        Err(CommandError::Refused(_))
    ));
    assert!(matches!(
        block_on(core.command(&tenant_id("tenant_b"), &job.id, Command::Cancel)),
        Err(CommandError::NotFound)
    ));
}

#[test]
fn an_operator_reaches_any_tenants_job_under_the_same_rules_and_is_named_in_the_audit() {
    let w = world().tenant("tenant_b").account("tenant_b", A);
    let core = w.core();
    let job = w.job(JobSetup::render("tenant_b", A));
    assert_eq!(Actor::operator(" ", "why"), None, "an operator says who");
    assert_eq!(Actor::operator("alice", ""), None, "and why");
    let alice = Actor::operator("alice", "customer asked by phone").unwrap();
    let cancelled =
        block_on(core.operator_command(&job.id, Command::Cancel, alice.clone())).unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let trail = block_on(reelay_domain::ports::JobStore::audit_page(
        &w.store, &job.id, None, 100,
    ))
    .unwrap();
    let last = trail.events.last().unwrap();
    assert_eq!(last.event, "cancel");
    assert_eq!(
        last.detail.as_deref(),
        Some("by operator alice: customer asked by phone")
    );
    // The table's refusals hold for an operator too.
    assert!(matches!(
        block_on(core.operator_command(&job.id, Command::Retry, alice.clone())),
        Err(CommandError::Refused(_))
    ));
    assert!(matches!(
        block_on(core.operator_command(&JobId::generate(w.clock.now(), 7), Command::Cancel, alice)),
        Err(CommandError::NotFound)
    ));
}

#[test]
fn a_token_near_expiry_is_refreshed_once_and_stored() {
    let w = world();
    let core = w.core();
    let (t, a) = (tenant_id(T), account_id(A));
    let first = block_on(core.fresh_token(&t, &a, None)).unwrap();
    assert_eq!(w.tiktok.count("refresh"), 0, "fresh enough");

    w.clock.advance(Duration::from_secs(24 * 3600 - 60));
    let refreshed = block_on(core.fresh_token(&t, &a, None)).unwrap();
    assert_ne!(refreshed.expose_secret(), first.expose_secret());
    assert_eq!(w.tiktok.count("refresh"), 1);
    let stored = block_on(w.vault.get_tokens(&t, &a)).unwrap().unwrap();
    assert_eq!(
        stored.access_token.expose_secret(),
        refreshed.expose_secret()
    );
    let again = block_on(core.fresh_token(&t, &a, None)).unwrap();
    assert_eq!(again.expose_secret(), refreshed.expose_secret());
    assert_eq!(w.tiktok.count("refresh"), 1);
    assert!(
        w.store
            .lease(&reelay_domain::usecase::refresh_lock_name(&t, &a))
            .is_none()
    );
}

#[test]
fn connecting_an_account_takes_one_link_and_one_callback() {
    let w = World::new().tenant(T);
    let core = w.core();
    let (t, a) = (tenant_id(T), account_id("acct_new"));
    let link = block_on(core.connect_account(&t, &a, PostMode::Direct, REDIRECT)).unwrap();
    let state = state_of(&link);
    assert_eq!(
        w.store.account(&t, &a).unwrap().health,
        AccountHealth::NeedsReauth
    );

    let connected =
        block_on(core.oauth_callback(&state, Some("the-code"), None, REDIRECT)).unwrap();
    assert_eq!(
        (connected.tenant.clone(), connected.account_id.clone()),
        (t.clone(), a.clone())
    );
    let account = w.store.account(&t, &a).unwrap();
    assert_eq!(account.health, AccountHealth::Active);
    let open_id = account.open_id.clone().unwrap();
    // The creator must reconnect before the refresh token TikTok issued at the connect expires.
    let tokens = block_on(w.vault.get_tokens(&t, &a)).unwrap().unwrap();
    assert_eq!(
        account.authorization_expires_at,
        Some(tokens.refresh_expires_at)
    );
    assert!(block_on(w.vault.get_tokens(&t, &a)).unwrap().is_some());
    assert_eq!(
        block_on(reelay_domain::ports::AccountStore::account_for_open_id(
            &w.store, &open_id
        ))
        .unwrap(),
        Some((t.clone(), a.clone()))
    );
    assert!(
        block_on(core.oauth_callback(&state, Some("the-code"), None, REDIRECT)).is_err(),
        "the state is single-use"
    );
    assert_eq!(w.tiktok.count("exchange_code"), 1);
    // The link and the exchange name the callback URL the requests came through.
    let redirects: Vec<_> = w
        .tiktok
        .calls()
        .into_iter()
        .filter_map(|c| match c.call {
            TikTokCall::AuthorizeUrl { redirect_uri, .. }
            | TikTokCall::ExchangeCode { redirect_uri, .. } => Some(redirect_uri),
            _ => None,
        })
        .collect();
    assert_eq!(redirects, vec![REDIRECT.to_owned(), REDIRECT.to_owned()]);
}

/// The API's OAuth callback URL in these tests.
const REDIRECT: &str = "https://api.reelay.test/v1/accounts/oauth/callback";

/// The single-use `state` an authorize link carries.
fn state_of(link: &reelay_domain::usecase::ConnectLink) -> String {
    link.authorize_url
        .split("state=")
        .nth(1)
        .unwrap()
        .to_owned()
}

/// Connects `account` of `tenant` as the creator `open_id` through the link and the callback.
fn connect_as(
    w: &World,
    tenant: &str,
    account: &str,
    open_id: &str,
) -> Result<reelay_domain::usecase::Connected, AccountError> {
    let core = w.core();
    let link = block_on(core.connect_account(
        &tenant_id(tenant),
        &account_id(account),
        PostMode::Direct,
        REDIRECT,
    ))
    .unwrap();
    let state = state_of(&link);
    let tokens = w.tiktok.issue_tokens(
        open_id,
        &["user.info.basic", "video.publish", "video.upload"],
    );
    w.tiktok.push_exchange_code(Ok(tokens));
    block_on(core.oauth_callback(&state, Some("the-code"), None, REDIRECT))
}

#[test]
fn the_creator_is_pinned_to_the_account_and_one_creator_is_one_account() {
    let w = World::new().tenant(T).tenant("tenant_b");
    let (t, a) = (tenant_id(T), account_id("acct_x"));
    connect_as(&w, T, "acct_x", "open-alice").unwrap();
    connect_as(&w, T, "acct_x", "open-alice").expect("the same creator reconnects");

    // Another creator on the same account: refused, the stored tokens stay Alice's.
    assert!(matches!(
        connect_as(&w, T, "acct_x", "open-bob"),
        Err(AccountError::OtherCreator)
    ));
    let tokens = block_on(w.vault.get_tokens(&t, &a)).unwrap().unwrap();
    assert_eq!(tokens.open_id, "open-alice");
    assert_eq!(
        w.store.account(&t, &a).unwrap().open_id.as_deref(),
        Some("open-alice")
    );

    // Alice as a second account, of this tenant or another: refused, nothing stored for it.
    for (tenant, account) in [(T, "acct_z"), ("tenant_b", "acct_y")] {
        assert!(matches!(
            connect_as(&w, tenant, account, "open-alice"),
            Err(AccountError::CreatorTaken)
        ));
        let (tenant, account) = (tenant_id(tenant), account_id(account));
        assert!(
            block_on(w.vault.get_tokens(&tenant, &account))
                .unwrap()
                .is_none()
        );
        let stored = w.store.account(&tenant, &account).unwrap();
        assert_eq!(
            (stored.open_id, stored.health),
            (None, AccountHealth::NeedsReauth)
        );
    }
    // Bob may still connect as an account of his own.
    connect_as(&w, "tenant_b", "acct_y", "open-bob").unwrap();
}

#[test]
fn an_accounts_status_shows_its_budgets_and_creator_info_spends_one() {
    let w = world();
    let core = w.core();
    let (t, a) = (tenant_id(T), account_id(A));
    let status = block_on(core.account_status(&t, &a)).unwrap();
    assert_eq!(status.account.health, AccountHealth::Active);
    assert_eq!(status.budgets.len(), 5);
    assert!(status.budgets.iter().all(|b| b.remaining == b.limit));

    let CreatorSettings::Queried(info) = block_on(core.creator_info(&t, &a)).unwrap() else {
        panic!("a direct account's creator_info is asked of TikTok");
    };
    assert!(!info.privacy_level_options.is_empty());
    assert_eq!(w.tiktok.count("creator_info"), 1);
    let status = block_on(core.account_status(&t, &a)).unwrap();
    let spent = status
        .budgets
        .iter()
        .find(|b| b.kind == reelay_domain::budget::BudgetKind::TikTokCreatorInfo)
        .unwrap();
    assert_eq!(spent.remaining, spent.limit - 1);
}

#[test]
fn a_revoked_authorisation_parks_the_accounts_waiting_jobs() {
    let w = world();
    let core = w.core();
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble.complete(&request, vec![sample::clip("c", 5.0)]);
    // Scheduled an hour ahead: ready and waiting once its render is confirmed.
    let job =
        w.job(JobSetup::rendered(T, A, &request).schedule_at(w.clock.now().plus(minutes(60))));
    block_on(core.confirm_render(&request, None)).unwrap();
    assert_eq!(w.job_now(&job.id).state, JobState::Ready);

    let parked = block_on(core.authorization_removed(&format!("open-{T}-{A}"), 1)).unwrap();
    assert_eq!(parked, Some(1));
    let account = w.store.account(&tenant_id(T), &account_id(A)).unwrap();
    assert_eq!(account.health, AccountHealth::NeedsReauth);
    assert_eq!(w.job_now(&job.id).hold_reason(), Some("needs_reauth"));
    assert_eq!(
        block_on(core.authorization_removed("someone-else", 1)).unwrap(),
        None
    );
}

#[test]
fn a_draft_only_account_posts_drafts_without_creator_info() {
    let w = World::new()
        .tenant(T)
        .account_with(T, A, AccountSetup::draft_only());
    let core = w.core();
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble.complete(&request, vec![sample::clip("c", 5.0)]);
    let job = w.job(JobSetup::rendered(T, A, &request).draft());
    block_on(core.confirm_render(&request, None)).unwrap();
    let message = w.queue.take(QueueKind::Publish).expect("queued");
    let outcome = block_on(core.publish(&message.message.job_id, deadline(&w))).unwrap();
    assert!(
        matches!(outcome, PublishOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    assert_eq!(w.tiktok.count("creator_info"), 0);
    let inits = w.tiktok.inits();
    assert_eq!(inits.len(), 1);
    assert_eq!(inits[0].post.mode, PostMode::Draft);
    assert!(
        inits[0]
            .publish_id
            .as_ref()
            .unwrap()
            .as_str()
            .starts_with("v_inbox_file")
    );
    assert_ne!(w.job_now(&job.id).state, JobState::PublishQueued);

    // In the creator's inbox: the account's status counts it as a pending draft until the
    // creator finishes it.
    let t = tenant_id(T);
    let a = account_id(A);
    assert_eq!(
        block_on(core.account_status(&t, &a))
            .unwrap()
            .pending_drafts,
        0
    );
    let observation = Observation {
        publish_id: inits[0].publish_id.clone().unwrap(),
        open_id: w.store.account(&t, &a).unwrap().open_id.unwrap(),
        what: Observed::Status {
            status: PublishStatus::SentToInbox,
            post_ids: Vec::new(),
        },
    };
    block_on(core.observe_publish(&observation)).unwrap();
    assert_eq!(w.job_now(&job.id).state, JobState::Submitted);
    assert_eq!(
        block_on(core.account_status(&t, &a))
            .unwrap()
            .pending_drafts,
        1
    );
    let page = block_on(core.list_accounts(&t, None, 10)).unwrap();
    assert_eq!(page.accounts[0].pending_drafts, 1);
}

/// A job whose render is done and whose publish message is waiting.
fn queued(w: &World) -> JobId {
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble.complete(&request, vec![sample::clip("c", 5.0)]);
    let job = w.job(JobSetup::rendered(T, A, &request));
    block_on(w.core().confirm_render(&request, None)).unwrap();
    assert_eq!(w.job_now(&job.id).state, JobState::PublishQueued);
    job.id
}

/// A message handled within `schedule_lead` of its schedule is prepared at once (creator_info,
/// budgets) and only the commit and init wait, to the millisecond; one further ahead does
/// nothing but wait at its group's head.
#[test]
fn a_post_due_within_the_schedule_lead_is_prepared_at_once_and_sent_at_its_second() {
    let w = world().account(T, "acct_b");
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble.complete(&request, vec![sample::clip("c", 5.0)]);
    let lead = w.core().settings.publish.schedule_lead;
    assert_eq!(lead, Duration::from_secs(2));
    let soon = w.clock.now().plus(Duration::from_millis(1_500));
    let later = w.clock.now().plus(Duration::from_secs(3));
    let first = w.job(JobSetup::rendered(T, A, &request).schedule_at(soon));
    let second = w.job(JobSetup::rendered(T, "acct_b", &request).schedule_at(later));
    block_on(w.core().confirm_render(&request, None)).unwrap();
    let core = w.core();

    let handled_at = w.clock.now();
    let early = block_on(core.publish(&second.id, deadline(&w)));
    let Err(wait) = early else {
        panic!("3 s ahead: {early:?}");
    };
    assert_eq!(
        (wait.timing, wait.after),
        (WaitTiming::Schedule, Duration::from_secs(2)),
        "back half the lead before its schedule"
    );
    assert_eq!(
        w.tiktok.calls().len(),
        0,
        "nothing asked of TikTok 3 s ahead"
    );

    let outcome = block_on(core.publish(&first.id, deadline(&w))).unwrap();
    assert!(
        matches!(outcome, PublishOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let calls = w.tiktok.calls();
    let at = |name: &str| {
        calls
            .iter()
            .find(|c| c.call.name() == name)
            .map(|c| c.at)
            .unwrap_or_else(|| panic!("no {name} in {calls:?}"))
    };
    assert_eq!(at("creator_info"), handled_at, "prepared when handled");
    assert_eq!(at("init"), soon, "initialised at its schedule, not before");
    let trail = w.store.audit_trail(&first.id);
    let started = trail
        .iter()
        .find(|e| e.event == "publish_started")
        .map(|e| e.at);
    assert_eq!(started, Some(soon), "committed at its schedule");
}

#[test]
fn two_publishers_interleaved_on_one_job_send_one_init() {
    let faults = reelay_testkit::Faults::new();
    faults.yield_every_call(true);
    let w = world().with_hook(std::sync::Arc::new(faults.clone()));
    let job = queued(&w);
    let (a, b) = (w.core(), w.core());
    let at = deadline(&w);
    // Every port call is pending once, so the two runs interleave call by call.
    let (x, y) = block_on(futures::future::join(
        a.publish(&job, at),
        b.publish(&job, at),
    ));
    let outcomes = [x.unwrap(), y.unwrap()];
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, PublishOutcome::Accepted { .. }))
        .count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    assert_eq!(w.tiktok.count("init"), 1);
    assert!(faults.counts()[reelay_testkit::calls::JOBS_SAVE] >= 2);
    assert!(
        w.store.writes(&job).conflicts >= 1,
        "the loser lost a conditional write"
    );
}

#[test]
fn an_init_whose_answer_is_lost_is_never_resent_and_its_webhook_resolves_it() {
    let faults = reelay_testkit::Faults::new();
    let w = world().with_hook(std::sync::Arc::new(faults.clone()));
    let job = queued(&w);
    let core = w.core();
    faults.fail_next(
        reelay_testkit::calls::PUBLISH_INIT,
        reelay_testkit::Fault::lost_response(),
    );
    let outcome = block_on(core.publish(&job, deadline(&w))).unwrap();
    assert!(
        matches!(outcome, PublishOutcome::Unknown { .. }),
        "{outcome:?}"
    );
    assert_eq!(w.job_now(&job).state, JobState::PublishUnknown);

    for _ in 0..12 {
        w.clock.advance(minutes(30));
        block_on(core.reconcile(deadline(&w)));
    }
    assert_eq!(w.tiktok.count("init"), 1, "never re-sent");
    assert_eq!(w.job_now(&job).state, JobState::PublishUnknown);

    // TikTok did create the publish; its webhook names a publish_id no job has.
    let publish = w.tiktok.publishes().pop().unwrap();
    let observation = Observation {
        publish_id: publish.publish_id,
        open_id: format!("open-{T}-{A}"),
        what: Observed::Status {
            status: PublishStatus::Complete,
            post_ids: vec!["42".into()],
        },
    };
    let outcome = block_on(core.observe_publish(&observation)).unwrap();
    assert_eq!(
        outcome,
        ObserveOutcome::Resolved {
            job_state: JobState::PubliclyAvailable
        }
    );
    assert_eq!(w.tiktok.count("init"), 1);
}

fn rendered(account: &str, key: &str, request_id: &RequestId) -> (NewJob, PayloadHash) {
    let body =
        json!({ "tiktokAccountId": account, "idempotencyKey": key, "requestId": request_id });
    let parsed = NewJob {
        job_id: None,
        account_id: account_id(account),
        source: JobSource::Rendered {
            request_id: request_id.clone(),
        },
        post: sample::post(PostMode::Direct),
        schedule_at: None,
        next_slot: false,
        fan_out_parent: None,
        idempotency_key: Some(IdempotencyKey::parse(key).unwrap()),
        api_request_id: None,
    };
    (parsed, PayloadHash::of(&body))
}

#[test]
fn a_render_is_published_only_by_the_tenant_whose_job_made_it() {
    const U: &str = "tenant_u";
    let w = world().account(T, "acct_2").tenant(U).account(U, "acct_u");
    let core = w.core();
    let (first, request_id) = submitted(&w);

    // The owner fans its render out to a second account: no second Ssemble create.
    let (parsed, fp) = rendered("acct_2", "k-fan", &request_id);
    let Created::New { job, .. } =
        block_on(core.create_job(&tenant_id(T), parsed, &fp, answer)).unwrap()
    else {
        panic!("the owner's fan-out creates");
    };
    assert_eq!(job.state, JobState::Rendering);
    assert_eq!(w.ssemble.count("submit"), 1);
    let mut users = vec![first.clone(), job.id.clone()];
    users.sort();
    assert_eq!(w.store.request_pointers(&request_id), users);

    // Another tenant, with the real requestId: refused as unknown, and nothing is written.
    let before = (
        w.store.jobs(),
        w.store.total_writes(),
        w.queue.len(QueueKind::Render),
    );
    let (parsed, fp) = rendered("acct_u", "k-steal", &request_id);
    let refused = block_on(core.create_job(&tenant_id(U), parsed, &fp, answer));
    assert!(
        matches!(refused, Err(CreateError::UnknownRender(ref r)) if *r == request_id),
        "{refused:?}"
    );
    let after = (
        w.store.jobs(),
        w.store.total_writes(),
        w.queue.len(QueueKind::Render),
    );
    assert_eq!(after, before, "a refused create changes nothing");
    assert_eq!(w.store.request_pointers(&request_id), users);
    // Its key stays free: the same key with a render of its own is a first request.
    let (parsed, fp) = new_job_for("acct_u", "k-steal");
    assert!(matches!(
        block_on(core.create_job(&tenant_id(U), parsed, &fp, answer)),
        Ok(Created::New { .. })
    ));

    // An id no job of any tenant's uses (a guess, another Ssemble client's): the same answer.
    let nobody = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    let (parsed, fp) = rendered(A, "k-guess", &nobody);
    assert!(matches!(
        block_on(core.create_job(&tenant_id(T), parsed, &fp, answer)),
        Err(CreateError::UnknownRender(_))
    ));
}

#[test]
fn a_lost_create_never_claims_a_render_another_job_uses() {
    const U: &str = "tenant_u";
    let faults = reelay_testkit::Faults::new();
    let w = world()
        .tenant(U)
        .account(U, "acct_u")
        .with_hook(std::sync::Arc::new(faults.clone()));
    let core = w.core();
    // Tenant U clips a video; tenant T then clips the same one, and T's create times out
    // without reaching Ssemble.
    let (parsed, fp) = new_job_for("acct_u", "k-u");
    let Created::New { job: theirs, .. } =
        block_on(core.create_job(&tenant_id(U), parsed, &fp, answer)).unwrap()
    else {
        panic!("creates");
    };
    let Ok(SubmitOutcome::Submitted {
        request_id: their_render,
        ..
    }) = block_on(core.submit_render(&theirs.id))
    else {
        panic!("U's render is created");
    };
    let (parsed, fp) = new_job("k-t");
    let Created::New { job: ours, .. } =
        block_on(core.create_job(&tenant_id(T), parsed, &fp, answer)).unwrap()
    else {
        panic!("creates");
    };
    faults.fail_next(reelay_testkit::calls::RENDER_SUBMIT, Fault::timeout());
    let outcome = block_on(core.submit_render(&ours.id)).unwrap();
    assert!(
        matches!(outcome, SubmitOutcome::Unknown { .. }),
        "{outcome:?}"
    );

    // The look-up finds U's request, the only one with this source and range.
    w.ssemble
        .push_find_submitted(Ok(Some(their_render.clone())));
    w.clock.advance(minutes(10));
    let outcome = block_on(core.submit_render(&ours.id)).unwrap();
    let SubmitOutcome::Submitted { request_id, found } = outcome else {
        panic!("{outcome:?}");
    };
    assert_ne!(
        request_id, their_render,
        "another tenant's render was claimed"
    );
    assert!(!found, "a render of its own was created");
    assert_eq!(
        w.store.request_pointers(&their_render),
        vec![theirs.id.clone()]
    );
    assert_eq!(w.job_now(&ours.id).request_id, Some(request_id));
}

#[test]
fn a_direct_post_for_a_drafts_only_account_is_refused_at_create_and_its_creator_info_needs_no_call()
{
    let w = World::new()
        .tenant(T)
        .account_with(T, A, AccountSetup::draft_only());
    let core = w.core();
    let (t, a) = (tenant_id(T), account_id(A));
    let before = w.store.calls();
    let (parsed, fp) = new_job("k-direct");
    assert!(matches!(
        block_on(core.create_job(&t, parsed, &fp, answer)),
        Err(CreateError::DirectPostNotAuthorized(id)) if id == a
    ));
    assert!(w.store.jobs().is_empty(), "nothing written");
    assert!(w.queue.take(QueueKind::Render).is_none(), "nothing queued");
    assert_eq!(
        w.store
            .calls()
            .get(reelay_testkit::calls::JOBS_BEGIN_IDEMPOTENT),
        before.get(reelay_testkit::calls::JOBS_BEGIN_IDEMPOTENT),
        "refused before the idempotency key is claimed: a draft with the same key may follow"
    );
    let (mut draft, fp) = new_job("k-direct");
    draft.post = sample::post(PostMode::Draft);
    assert!(matches!(
        block_on(core.create_job(&t, draft, &fp, answer)),
        Ok(Created::New { .. })
    ));

    assert_eq!(
        block_on(core.creator_info(&t, &a)).unwrap(),
        CreatorSettings::DraftsOnly
    );
    assert_eq!(w.tiktok.count("creator_info"), 0, "TikTok is not asked");
    let status = block_on(core.account_status(&t, &a)).unwrap();
    let info_budget = status
        .budgets
        .iter()
        .find(|b| b.kind == reelay_domain::budget::BudgetKind::TikTokCreatorInfo)
        .unwrap();
    assert_eq!(info_budget.remaining, info_budget.limit, "no budget taken");
}

#[test]
fn disconnecting_cancels_what_has_not_started_leaves_what_is_at_tiktok_and_is_safe_to_repeat() {
    let w = world();
    let core = w.core();
    let (t, a) = (tenant_id(T), account_id(A));
    // One job at TikTok, one waiting for its schedule, one with a publish message on the queue.
    let at_tiktok = queued(&w);
    assert!(matches!(
        block_on(core.publish(&at_tiktok, deadline(&w))).unwrap(),
        PublishOutcome::Accepted { .. }
    ));
    let later = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0f").unwrap();
    w.ssemble.complete(&later, vec![sample::clip("c", 5.0)]);
    let waiting =
        w.job(JobSetup::rendered(T, A, &later).schedule_at(w.clock.now().plus(minutes(60))));
    let now = RequestId::parse("665a1b2c3d4e5f6a7b8c9d10").unwrap();
    w.ssemble.complete(&now, vec![sample::clip("c", 5.0)]);
    let on_queue = w.job(JobSetup::rendered(T, A, &now));
    block_on(core.confirm_render(&later, None)).unwrap();
    block_on(core.confirm_render(&now, None)).unwrap();
    assert_eq!(w.job_now(&on_queue.id).state, JobState::PublishQueued);
    let message = w.queue.take(QueueKind::Publish).expect("queued");

    let done = block_on(core.disconnect_account(&t, &a)).unwrap();
    assert_eq!((done.cancelled, done.in_flight), (2, 1));
    assert!(done.revoked);
    assert!(
        !done.creator_released,
        "a job is in flight: its webhook needs the creator"
    );
    assert_eq!(done.account.health, AccountHealth::Disconnected);
    assert_eq!(w.tiktok.count("revoke"), 1);
    assert!(block_on(w.vault.get_tokens(&t, &a)).unwrap().is_none());
    for id in [&waiting.id, &on_queue.id] {
        let job = w.job_now(id);
        assert_eq!(job.state, JobState::Cancelled);
        assert_eq!(
            job.last_error.map(|e| e.code),
            Some("account_disconnected".into())
        );
    }
    // The message that was already on the queue finds a cancelled job: no init.
    let inits = w.tiktok.count("init");
    let _ = block_on(core.publish(&message.message.job_id, deadline(&w)));
    assert_eq!(w.tiktok.count("init"), inits);
    // Nothing new is accepted for it.
    let (parsed, fp) = new_job("k-after");
    assert!(matches!(
        block_on(core.create_job(&t, parsed, &fp, answer)),
        Err(CreateError::AccountDisconnected(_))
    ));
    // The job at TikTok still settles through its webhook.
    let publish = w.tiktok.publishes().pop().unwrap();
    let observation = Observation {
        publish_id: publish.publish_id,
        open_id: format!("open-{T}-{A}"),
        what: Observed::Status {
            status: PublishStatus::Complete,
            post_ids: vec!["42".into()],
        },
    };
    block_on(core.observe_publish(&observation)).unwrap();
    assert_eq!(w.job_now(&at_tiktok).state, JobState::PubliclyAvailable);

    // Again: nothing more to cancel or revoke, and now the creator is released.
    let again = block_on(core.disconnect_account(&t, &a)).unwrap();
    assert_eq!((again.cancelled, again.in_flight), (0, 0));
    assert!(!again.revoked && again.creator_released);
    assert_eq!(w.tiktok.count("revoke"), 1);
    let stored = w.store.account(&t, &a).unwrap();
    assert_eq!((stored.open_id, stored.scopes.len()), (None, 0));
    // The account connects again, as another creator, and takes jobs again.
    connect_as(&w, T, A, "open-someone-new").unwrap();
    assert_eq!(
        w.store.account(&t, &a).unwrap().health,
        AccountHealth::Active
    );
    let (parsed, fp) = new_job("k-back");
    assert!(matches!(
        block_on(core.create_job(&t, parsed, &fp, answer)),
        Ok(Created::New { .. })
    ));
    // Another tenant's account id answers not found and changes nothing.
    assert!(matches!(
        block_on(core.disconnect_account(&tenant_id("tenant_b"), &a)),
        Err(AccountError::NotFound)
    ));
}

/// A disconnect whose account writes lose to another writer (a 429 recorded on the account just
/// then) reads the account again and completes: the client's DELETE is not answered 409 for a
/// change it does not depend on (a fresh clone's end-to-end test saw that 409 once).
#[test]
fn a_disconnect_that_loses_its_account_write_to_another_writer_reads_again_and_completes() {
    use reelay_domain::ports::AccountStore as _;
    // Before each of the first three account writes of the hooked core, another writer blocks
    // the account (as a publisher's 429 does: it bumps the version), so those writes lose.
    let hook = RaceBefore::new(&[reelay_testkit::calls::ACCOUNTS_PUT]);
    let w = world().with_hook(hook.clone());
    let (store, now) = (w.store.clone(), w.clock.now());
    let races = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = races.clone();
    *hook.race.lock().unwrap() = Some(Box::new(move || {
        let store = store.clone();
        let n = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            if n < 3 {
                let until = now.plus(minutes(n as u64 + 1));
                store
                    .block_until(&tenant_id(T), &account_id(A), until, "rate_limit_exceeded")
                    .await
                    .unwrap();
            }
            Ok(())
        })
    }));
    let done = block_on(w.core().disconnect_account(&tenant_id(T), &account_id(A))).unwrap();
    assert!(
        races.load(std::sync::atomic::Ordering::Relaxed) >= 4,
        "three writes lost, then the disconnect's went through"
    );
    assert_eq!(done.account.health, AccountHealth::Disconnected);
    assert!(done.creator_released && done.revoked);
    let stored = w.store.account(&tenant_id(T), &account_id(A)).unwrap();
    assert_eq!(stored.health, AccountHealth::Disconnected);
    assert_eq!((stored.open_id, stored.scopes.len()), (None, 0));
    assert!(
        stored.blocked_until.is_some(),
        "the other writer's block kept"
    );
}

#[test]
fn an_owner_moves_a_jobs_schedule_and_caption_until_it_starts_publishing() {
    let w = world();
    let core = w.core();
    let tenant = tenant_id(T);
    let request = RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    w.ssemble.complete(&request, vec![sample::clip("c", 5.0)]);
    let start = w.clock.now();
    let job = w.job(JobSetup::rendered(T, A, &request).schedule_at(start.plus(minutes(60))));
    block_on(core.confirm_render(&request, None)).unwrap();
    assert_eq!(w.job_now(&job.id).state, JobState::Ready);
    let amend = |schedule_at: Option<UtcTime>, title: Option<&str>| {
        block_on(core.amend(
            &tenant,
            &job.id,
            Amendment {
                next_slot: false,
                schedule_at,
                title: title.map(str::to_owned),
            },
        ))
    };

    // Later, with a new caption: still waiting, for the new time.
    let later = amend(Some(start.plus(minutes(120))), Some("new #caption")).unwrap();
    assert_eq!(later.state, JobState::Ready);
    assert_eq!(
        later.next_check.map(|c| c.at),
        Some(start.plus(minutes(120)))
    );
    assert_eq!(later.post.title.as_deref(), Some("new #caption"));
    // Now: queued at once.
    let now = amend(Some(start), None).unwrap();
    assert_eq!(now.state, JobState::PublishQueued);
    let stale = w.queue.take(QueueKind::Publish).expect("queued");
    // Later again while queued: back to waiting; the message already sent starts nothing.
    let back = amend(Some(start.plus(minutes(30))), None).unwrap();
    assert_eq!(back.state, JobState::Ready);
    let _ = block_on(core.publish(&stale.message.job_id, deadline(&w)));
    assert_eq!(w.tiktok.count("init"), 0, "a stale message sends nothing");
    assert_eq!(w.job_now(&job.id).state, JobState::Ready);

    // At the new time it goes, with the new caption.
    w.clock.advance(minutes(31));
    block_on(core.reconcile(deadline(&w)));
    let message = w
        .queue
        .take(QueueKind::Publish)
        .expect("queued at the new time");
    assert!(matches!(
        block_on(core.publish(&message.message.job_id, deadline(&w))).unwrap(),
        PublishOutcome::Accepted { .. }
    ));
    let inits = w.tiktok.inits();
    assert_eq!(inits.len(), 1);
    assert_eq!(inits[0].post.title.as_deref(), Some("new #caption"));

    // Started publishing: final.
    assert!(matches!(
        amend(Some(start.plus(minutes(600))), None),
        Err(CommandError::Refused(
            reelay_domain::TransitionError::NotAmendable { .. }
        ))
    ));
    let amends = w
        .store
        .audit_trail(&job.id)
        .iter()
        .filter(|e| e.event == "amend")
        .count();
    assert_eq!(amends, 3, "each change is audited");
    // Another tenant's job is not found; a draft has no caption to change.
    assert!(matches!(
        block_on(core.amend(
            &tenant_id("tenant_b"),
            &job.id,
            Amendment {
                next_slot: false,
                schedule_at: Some(start),
                title: None
            }
        )),
        Err(CommandError::NotFound)
    ));
    let draft = w.job(JobSetup::render(T, A).draft());
    assert!(matches!(
        block_on(core.amend(
            &tenant,
            &draft.id,
            Amendment {
                next_slot: false,
                schedule_at: None,
                title: Some("x".into())
            }
        )),
        Err(CommandError::Invalid(_))
    ));
}

#[test]
fn the_api_request_that_created_a_job_is_on_its_creation_audit_and_its_queue_messages() {
    let w = world();
    let core = w.core();
    let (parsed, fp) = new_job("k-origin");
    let Created::New { job, .. } =
        block_on(core.create_job(&tenant_id(T), parsed, &fp, answer)).unwrap()
    else {
        panic!("a new key creates");
    };
    assert_eq!(job.api_request_id.as_deref(), Some("req-k-origin"));
    let trail = w.store.audit_trail(&job.id);
    assert_eq!(trail[0].api_request_id.as_deref(), Some("req-k-origin"));
    let render = w.queue.take(QueueKind::Render).expect("render queued");
    assert_eq!(
        render.message.api_request_id.as_deref(),
        Some("req-k-origin")
    );
    // Later steps carry it on: the publish message of the same job names it too.
    let SubmitOutcome::Submitted { request_id, .. } =
        block_on(core.submit_render(&job.id)).unwrap()
    else {
        panic!("submitted");
    };
    w.ssemble
        .complete(&request_id, vec![sample::clip("c", 5.0)]);
    block_on(core.confirm_render(&request_id, None)).unwrap();
    let publish = w.queue.take(QueueKind::Publish).expect("publish queued");
    assert_eq!(
        publish.message.api_request_id.as_deref(),
        Some("req-k-origin")
    );
    let later = w.store.audit_trail(&job.id);
    assert!(
        later.len() > 1 && later[1..].iter().all(|e| e.api_request_id.is_none()),
        "only the event the request caused names it"
    );
}

#[test]
fn a_batch_preview_plans_each_post_against_the_budgets_left_and_writes_nothing() {
    let w = world();
    let core = w.core();
    let init = w
        .settings
        .limits
        .window(reelay_domain::budget::BudgetKind::TikTokInit);
    let now = w.clock.now();
    // init.limit + 1 direct posts on one account, all for now: the last waits for the window.
    let mut items: Vec<NewJob> = (0..=init.limit)
        .map(|n| new_job(&format!("b-{n}")).0)
        .collect();
    items.push(new_job_for("acct_nobody", "b-unknown").0);
    let before = w.store.calls();
    let plans = block_on(core.preview_batch(&tenant_id(T), &items)).unwrap();
    assert_eq!(plans.len(), items.len());
    for plan in &plans[..init.limit as usize] {
        let plan = plan.as_ref().unwrap();
        assert_eq!(plan.earliest_at, now, "{plan:?}");
        assert!(plan.renders_first);
        assert!(plan.waits_for.is_empty());
    }
    let last = plans[init.limit as usize].as_ref().unwrap();
    assert!(last.earliest_at >= now.plus(init.period), "{last:?}");
    assert_eq!(
        last.waits_for,
        vec![reelay_domain::budget::BudgetKind::TikTokInit]
    );
    assert!(matches!(
        plans.last(),
        Some(Err(CreateError::UnknownAccount(_)))
    ));
    // Nothing written, nothing taken, nothing queued.
    assert!(w.store.jobs().is_empty());
    assert!(w.queue.take(QueueKind::Render).is_none());
    let writes = |calls: &std::collections::BTreeMap<&str, u64>| {
        [
            reelay_testkit::calls::BUDGETS_TAKE,
            reelay_testkit::calls::JOBS_CREATE,
            reelay_testkit::calls::JOBS_BEGIN_IDEMPOTENT,
        ]
        .map(|c| calls.get(c).copied().unwrap_or(0))
    };
    assert_eq!(writes(&w.store.calls()), writes(&before));
}

#[test]
fn a_failed_status_for_a_publish_no_job_holds_never_closes_an_unknown_attempt() {
    // Seed 1966: another job's abandoned attempt (its init answer lost, then retried by an
    // operator) FAILED at TikTok; its late webhook must not be read as this job's attempt
    // failing, or a second init goes out while this job's own init may still post.
    let faults = reelay_testkit::Faults::new();
    let w = world().with_hook(std::sync::Arc::new(faults.clone()));
    let job = queued(&w);
    let core = w.core();
    faults.fail_next(
        reelay_testkit::calls::PUBLISH_INIT,
        reelay_testkit::Fault::lost_response(),
    );
    block_on(core.publish(&job, deadline(&w))).unwrap();
    assert_eq!(w.job_now(&job).state, JobState::PublishUnknown);
    let orphan = Observation {
        publish_id: reelay_domain::PublishId::parse("v_pub_file~v2-1.999999").unwrap(),
        open_id: format!("open-{T}-{A}"),
        what: Observed::Status {
            status: PublishStatus::Failed {
                reason: "internal".into(),
            },
            post_ids: vec![],
        },
    };
    let outcome = block_on(core.observe_publish(&orphan)).unwrap();
    assert!(
        matches!(outcome, ObserveOutcome::Ignored { .. }),
        "{outcome:?}"
    );
    for _ in 0..6 {
        w.clock.advance(minutes(30));
        block_on(core.reconcile(deadline(&w)));
    }
    let after = w.job_now(&job);
    assert_eq!(after.state, JobState::PublishUnknown, "still unknown");
    assert_eq!(after.publish_id, None, "the orphan was not linked");
    assert_eq!(w.tiktok.count("init"), 1, "no second init");
    // Its own publish still resolves it.
    let own = w.tiktok.publishes().pop().unwrap();
    let observation = Observation {
        publish_id: own.publish_id,
        open_id: format!("open-{T}-{A}"),
        what: Observed::Status {
            status: PublishStatus::Complete,
            post_ids: vec!["42".into()],
        },
    };
    assert_eq!(
        block_on(core.observe_publish(&observation)).unwrap(),
        ObserveOutcome::Resolved {
            job_state: JobState::PubliclyAvailable
        }
    );
}

/// A webhook's claim naming `request` (a render the test has completed).
fn hint(request: &reelay_domain::RequestId) -> reelay_domain::usecase::RenderHint {
    reelay_domain::usecase::RenderHint {
        request_id: Some(request.clone()),
        completed: true,
    }
}

/// Ssemble lists requests without saying who made them. While one job's create of a clip is
/// unanswered, another job of the same source and range (here another tenant's) is held
/// instead of creating or looking up, so it can never claim the first job's create; once
/// the first knows its `requestId`, the second goes ahead. Found by the simulation (seed 1817):
/// a tenant's look-up claimed the render another tenant's lost create had made.
#[test]
fn a_job_of_the_same_clip_waits_while_another_jobs_create_is_unanswered() {
    use reelay_domain::usecase::SOURCE_BUSY;
    let w = World::new()
        .tenant(T)
        .account(T, A)
        .tenant("tenant_b")
        .account("tenant_b", A);
    let core = w.core();
    let first = w.job(JobSetup::render(T, A));
    let second = w.job(JobSetup::render("tenant_b", A));
    w.ssemble
        .push_submit(Err(sample::unknown_outcome("upstream_timeout")));
    assert!(matches!(
        block_on(core.submit_render(&first.id)).unwrap(),
        SubmitOutcome::Unknown { .. }
    ));
    let calls = w.ssemble.calls().len();
    assert_eq!(
        block_on(core.submit_render(&second.id)).unwrap(),
        SubmitOutcome::Held {
            reason: SOURCE_BUSY.into()
        }
    );
    assert_eq!(w.ssemble.calls().len(), calls, "nothing asked of Ssemble");
    let held = w.job_now(&second.id);
    assert_eq!(held.hold.map(|h| h.reason).as_deref(), Some(SOURCE_BUSY));

    // The first job's next attempt (its lease over) looks up, finds its create, keeps it.
    w.clock.advance(w.settings.policy.render_submit_lease);
    let landed = RequestId::parse("665a1b2c3d4e5f6a7b8c9d01").unwrap();
    w.ssemble.push_find_submitted(Ok(Some(landed.clone())));
    assert!(matches!(
        block_on(core.submit_render(&first.id)).unwrap(),
        SubmitOutcome::Submitted { found: true, .. }
    ));
    assert_eq!(w.job_now(&first.id).request_id, Some(landed.clone()));

    // Its lease released, the second job creates its own render.
    w.clock.advance(w.settings.policy.render_poll_min);
    assert!(matches!(
        block_on(core.submit_render(&second.id)).unwrap(),
        SubmitOutcome::Submitted { found: false, .. }
    ));
    let theirs = w.job_now(&second.id).request_id.unwrap();
    assert_ne!(theirs, landed);
}

/// `scheduleAt: "next_slot"`: now while the account's daily cap has room after its jobs not yet
/// published; once those jobs fill the cap, a day later (the window refilled), and never counting
/// another account's jobs or the other post mode's.
#[test]
fn next_slot_is_now_until_the_accounts_pending_jobs_fill_its_daily_cap() {
    let mut w = World::new()
        .tenant(T)
        .account(T, A)
        .account(T, "acct_other");
    w.settings.limits.direct_posts_daily =
        reelay_domain::budget::Window::new(3, std::time::Duration::from_secs(86_400));
    let core = w.core();
    let slot_job = |n: u32| {
        let (mut parsed, fp) = new_job(&format!("k-slot-{n}"));
        parsed.next_slot = true;
        let Created::New { job, .. } =
            block_on(core.create_job(&tenant_id(T), parsed, &fp, answer)).unwrap()
        else {
            panic!("a new key creates");
        };
        *job
    };
    let slot = |n: u32| slot_job(n).schedule_at;
    let now = w.clock.now();
    // Another account's and a draft's pending jobs never count.
    for n in 0..4 {
        let (parsed, fp) = new_job_for("acct_other", &format!("k-other-{n}"));
        block_on(core.create_job(&tenant_id(T), parsed, &fp, answer)).unwrap();
    }
    let first = slot_job(0);
    assert_eq!(first.schedule_at, now);
    assert_eq!(slot(1), now);
    assert_eq!(slot(2), now);
    // Three direct posts of this account wait to go: the fourth goes when the day has refilled.
    // (The window is the cap's day plus the budgets' margin of a second.)
    let fourth_job = slot_job(3);
    let fourth = fourth_job.schedule_at.since(now);
    assert!((86_400..=86_402).contains(&fourth.as_secs()), "{fourth:?}");
    // One of the three is cancelled: a PATCH to next_slot finds room now for the fourth, not
    // counting the fourth itself among the jobs ahead of it.
    block_on(core.command(&tenant_id(T), &first.id, Command::Cancel)).unwrap();
    let moved = block_on(core.amend(
        &tenant_id(T),
        &fourth_job.id,
        Amendment {
            schedule_at: None,
            next_slot: true,
            title: None,
        },
    ))
    .unwrap();
    assert_eq!(moved.schedule_at, now, "{:?}", moved.schedule_at.since(now));
    // A job with an explicit time is kept as asked.
    let (mut parsed, fp) = new_job("k-slot-explicit");
    let at = now.plus(std::time::Duration::from_secs(60));
    parsed.schedule_at = Some(at);
    let Created::New { job, .. } =
        block_on(core.create_job(&tenant_id(T), parsed, &fp, answer)).unwrap()
    else {
        panic!()
    };
    assert_eq!(job.schedule_at, at);
}

/// A job kept under the id its client chose before ids were scoped per tenant (stored under
/// that id itself) is still the tenant's: choosing the id again is `job_exists` and writes
/// nothing, while another tenant choosing it gets its own job, and the id finds each its own.
#[test]
fn a_chosen_id_kept_before_scoping_is_still_taken_for_its_tenant_only() {
    let w = world().tenant("tenant_b").account("tenant_b", "acct_b");
    let core = w.core();
    let earlier = w.job(JobSetup::render(T, A));
    let choose = |tenant: &str, account: &str, key: &str| {
        let (mut parsed, fp) = new_job_for(account, key);
        parsed.job_id = Some(earlier.id.clone());
        block_on(core.create_job(&tenant_id(tenant), parsed, &fp, answer))
    };
    let jobs = w.store.jobs().len();
    assert!(matches!(
        choose(T, A, "k-again"),
        Err(CreateError::JobExists)
    ));
    assert_eq!(w.store.jobs().len(), jobs, "nothing written");
    let Created::New { job, .. } = choose("tenant_b", "acct_b", "k-b").unwrap() else {
        panic!("tenant b's own job");
    };
    assert_eq!(job.public_id(), &earlier.id);
    assert_ne!(job.id, earlier.id);
    let mine = |tenant: &str| {
        block_on(core.owned_job(&tenant_id(tenant), &earlier.id))
            .unwrap()
            .unwrap()
            .account_id
    };
    assert_eq!((mine(T).as_str(), mine("tenant_b").as_str()), (A, "acct_b"));
    // The key of the refused create was released: the same request can be sent again.
    assert!(matches!(
        choose(T, A, "k-again"),
        Err(CreateError::JobExists)
    ));
}
