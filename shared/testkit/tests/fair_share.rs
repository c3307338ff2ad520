//! Two tenants on the stage's one Ssemble key: a burst of one tenant never delays the other's
//! renders within its share. Tenant A sends twelve renders at once; a minute later tenant B
//! sends three, and all three go to Ssemble at once — while with fair sharing off (first come,
//! first served, as before) B's renders wait for A's to leave the hourly window.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reelay_domain::budget::BudgetKind;
use reelay_domain::budget::Window;
use reelay_domain::job::JobSource;
use reelay_domain::request::NewJob;
use reelay_domain::usecase::SubmitOutcome;
use reelay_domain::{JobId, JobState, PostMode};
use reelay_testkit::{JobSetup, World, account_id, block_on, sample, tenant_id};

fn world(share_permille: u32) -> World {
    let mut w = World::new()
        .tenant("ta")
        .tenant("tb")
        .account("ta", "acct_a")
        .account("tb", "acct_b");
    w.settings.limits.ssemble_hourly = Window::new(10, Duration::from_secs(3600));
    w.settings.render.tenant_share_permille = share_permille;
    w
}

/// `n` render jobs of `tenant`, each its own source, submitted one after another.
fn burst(w: &World, tenant: &str, account: &str, n: usize) -> Vec<(JobId, SubmitOutcome)> {
    (0..n)
        .map(|i| {
            let mut setup = JobSetup::render(tenant, account);
            let mut request = sample::render_request();
            request.start = f64::from(u32::try_from(i).unwrap()) * 100.0;
            request.end = request.start + 60.0;
            setup.source = JobSource::Render(request);
            let job = w.job(setup);
            let outcome = block_on(w.core().submit_render(&job.id)).unwrap();
            (job.id, outcome)
        })
        .collect()
}

fn submitted(outcomes: &[(JobId, SubmitOutcome)]) -> usize {
    outcomes
        .iter()
        .filter(|(_, o)| matches!(o, SubmitOutcome::Submitted { .. }))
        .count()
}

#[test]
fn a_burst_of_one_tenant_leaves_the_other_its_share_at_once() {
    // Shares of 30 %: 3 of the key's 10 creates an hour are each tenant's, and 3 stay free
    // of borrowing.
    let w = world(300);
    let a = burst(&w, "ta", "acct_a", 12);
    // A: its own 3, then borrowed while 3 stay free: 7 in all; the rest wait.
    assert_eq!(submitted(&a), 7, "{a:?}");
    for (id, outcome) in &a[7..] {
        match outcome {
            SubmitOutcome::Held { reason } => {
                assert_eq!(reason, "ssemble_budget:ssemble_share_hourly");
                assert_eq!(w.job_now(id).state, JobState::Received);
            }
            other => panic!("{other:?}"),
        }
    }
    w.clock.advance(Duration::from_secs(60));
    let b = burst(&w, "tb", "acct_b", 3);
    assert_eq!(submitted(&b), 3, "B's share is there at once: {b:?}");
    for (id, _) in &b {
        assert_eq!(w.job_now(id).state, JobState::Rendering);
        assert!(w.job_now(id).hold.is_none());
    }
    // The key's own limit is never overspent: 10 creates in the hour, no more.
    let creates = w
        .ssemble
        .calls()
        .iter()
        .filter(|c| matches!(c.call, reelay_testkit::SsembleCall::Submit { .. }))
        .count();
    assert_eq!(creates, 10);
    // A fourth render of B is past its share and the key is full: it waits like A's.
    let more = burst(&w, "tb", "acct_b", 1);
    assert_eq!(submitted(&more), 0);
}

#[test]
fn a_lone_tenant_borrows_every_share_but_the_one_kept_free() {
    let w = world(300);
    let a = burst(&w, "ta", "acct_a", 12);
    assert_eq!(submitted(&a), 7);
    // An hour later A's takes have left the window and A goes on.
    w.clock.advance(Duration::from_secs(3_700));
    let again = burst(&w, "ta", "acct_a", 12);
    assert_eq!(submitted(&again), 7);
}

#[test]
fn first_come_first_served_without_shares_delays_the_second_tenant_for_the_hour() {
    let w = world(0);
    let a = burst(&w, "ta", "acct_a", 12);
    assert_eq!(submitted(&a), 10);
    w.clock.advance(Duration::from_secs(60));
    let b = burst(&w, "tb", "acct_b", 3);
    assert_eq!(
        submitted(&b),
        0,
        "without shares B waits behind A's burst: {b:?}"
    );
    for (id, _) in &b {
        let hold = w.job_now(id).hold.unwrap();
        assert_eq!(hold.reason, "ssemble_budget:ssemble_hourly");
        // Until A's first create leaves the hourly window: most of an hour.
        assert!(hold.until.unwrap().since(w.clock.now()) > Duration::from_secs(3_000));
    }
}

/// Of `n` creates of `account` (of `sources` sources in turn) as a batch preview plans them,
/// which wait for a budget of the Ssemble key (the account's own budgets aside).
fn waits_for_ssemble(
    w: &World,
    tenant: &str,
    account: &str,
    n: u32,
    sources: u32,
) -> Vec<Option<BudgetKind>> {
    let items: Vec<NewJob> = (0..n)
        .map(|i| {
            let mut request = sample::render_request();
            request.start = f64::from(i % sources) * 100.0;
            request.end = request.start + 60.0;
            NewJob {
                job_id: None,
                account_id: account_id(account),
                source: JobSource::Render(request),
                post: sample::post(PostMode::Draft),
                schedule_at: None,
                next_slot: false,
                fan_out_parent: None,
                idempotency_key: None,
                api_request_id: None,
            }
        })
        .collect();
    block_on(w.core().preview_batch(&tenant_id(tenant), &items))
        .unwrap()
        .into_iter()
        .map(|plan| {
            plan.unwrap().waits_for.into_iter().find(|k| {
                matches!(
                    k,
                    BudgetKind::SsembleHourly
                        | BudgetKind::SsembleShareHourly
                        | BudgetKind::SsembleDaily
                        | BudgetKind::SsembleShareDaily
                        | BudgetKind::SsembleCreate
                )
            })
        })
        .collect()
}

/// The preview plans renders by the fair-share rule the creates follow: a lone tenant sees the
/// 7 of the key's 10 it may use now (its 3, then borrowing while 3 stay free) and the rest
/// waiting for its share; after A's burst, B still sees its own share now. Items of one source
/// need one create.
#[test]
fn a_batch_preview_plans_renders_by_the_tenants_share_of_the_key() {
    let w = world(300);
    let share = Some(BudgetKind::SsembleShareHourly);
    let plans = waits_for_ssemble(&w, "ta", "acct_a", 12, 12);
    assert_eq!(plans, [vec![None; 7], vec![share; 5]].concat());
    // Items of one source share one render (fan-out): twelve of two sources are two creates.
    assert_eq!(waits_for_ssemble(&w, "ta", "acct_a", 12, 2), vec![None; 12]);
    let a = burst(&w, "ta", "acct_a", 12);
    assert_eq!(submitted(&a), 7, "the creates do what the preview said");
    let plans = waits_for_ssemble(&w, "tb", "acct_b", 4, 4);
    assert_eq!(plans, [None, None, None, share]);
}
