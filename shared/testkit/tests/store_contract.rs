//! MemStore keeps the promises of the ports (shared/domain/src/ports.rs) and of the DynamoDB
//! adapter (shared/aws/DESIGN.md §1–2): the simulation's verdicts are only as good as these.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::budget::{BudgetKind, Window};
use reelay_domain::job::{Applied, NextCheck, Pointer};
use reelay_domain::lifecycle::{Actor, CheckKind, Event};
use reelay_domain::ports::{
    AccountStore, BudgetStore, IdempotencyBegin, IdempotencyScope, JobFilter, JobStore, LockStore,
    StoreError, StoredResponse,
};
use reelay_domain::{IdempotencyKey, Job, JobState, PayloadHash, Policy, PublishId, Step, UtcTime};
use reelay_testkit::{
    Fault, Faults, JobSetup, ManualClock, MemStore, World, account_id, block_on, calls, tenant_id,
};

const T: &str = "tenant_a";
const A: &str = "acct_1";

fn world() -> World {
    World::new().tenant(T).account(T, A)
}

fn applied(job: &Job, event: Event, at: UtcTime) -> Applied {
    match job.apply(&event, at, &Policy::default()).unwrap() {
        Step::Applied(a) => *a,
        other => panic!("{} did not move the job: {other:?}", event.name()),
    }
}

fn started() -> Event {
    Event::RenderSubmitStarted {
        webhook_token_hash: "ab".repeat(32),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_transition_written_against_a_moved_job_loses_and_changes_nothing() {
    let w = world();
    let job = w.job(JobSetup::render(T, A));
    let now = w.clock.now();

    // Two workers read version 1; the first writes.
    let first = applied(&job, started(), now);
    block_on(w.store.save(&first, job.version)).unwrap();
    let second = applied(&job, Event::Cancel { by: Actor::Owner }, now);
    let lost = block_on(w.store.save(&second, job.version));
    assert!(matches!(lost, Err(StoreError::Conflict)), "{lost:?}");

    let stored = w.store.job(&job.id).unwrap();
    assert_eq!(stored, first.job);
    assert_eq!(stored.state, JobState::Received);
    let trail = w.store.audit_trail(&job.id);
    assert_eq!(
        trail.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["created", "render_submit_started"]
    );
    let writes = w.store.writes(&job.id);
    assert_eq!((writes.transitions, writes.conflicts), (2, 1));

    // The right version but another old state is a lost race too (the condition is both).
    let mut wrong_from = applied(&stored, Event::Cancel { by: Actor::Owner }, now);
    wrong_from.audit.from = Some(JobState::Ready);
    assert!(matches!(
        block_on(w.store.save(&wrong_from, stored.version)),
        Err(StoreError::Conflict)
    ));
    // A job that does not exist cannot be saved either.
    let mut ghost = applied(&stored, Event::Cancel { by: Actor::Owner }, now);
    ghost.job.id = reelay_domain::JobId::generate(now, 99);
    assert!(matches!(
        block_on(w.store.save(&ghost, stored.version)),
        Err(StoreError::Conflict)
    ));
    assert_eq!(w.store.job(&job.id).unwrap(), stored);
}

#[test]
fn a_transition_that_does_not_follow_its_version_is_refused_as_corrupt() {
    let w = world();
    let job = w.job(JobSetup::render(T, A));
    let mut bad = applied(&job, started(), w.clock.now());
    bad.audit.version = 7;
    assert!(matches!(
        block_on(w.store.save(&bad, job.version)),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(w.store.job(&job.id).unwrap(), job);
}

#[test]
fn create_refuses_an_existing_job_id_and_keeps_the_first() {
    let w = world();
    let job = w.job(JobSetup::render(T, A));
    let again = Job::create(
        job.id.clone(),
        job.tenant_id.clone(),
        job.account_id.clone(),
        reelay_domain::JobSource::Rendered {
            request_id: reelay_domain::RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap(),
        },
        job.post.clone(),
        job.schedule_at,
        None,
        w.clock.now(),
        &Policy::default(),
    );
    assert!(matches!(
        block_on(w.store.create(&again, None)),
        Err(StoreError::Conflict)
    ));
    assert_eq!(w.store.job(&job.id).unwrap(), job);
    assert_eq!(w.store.audit_trail(&job.id).len(), 1);
    assert!(
        w.store
            .request_pointers(&reelay_domain::RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap())
            .is_empty(),
        "the refused create wrote its pointer"
    );
}

#[test]
fn a_reschedule_keeps_the_version_writes_no_audit_and_loses_on_a_moved_job() {
    let w = world();
    let job = w.job(JobSetup::render(T, A));
    let now = w.clock.now();
    let later = now.plus(secs(600));
    let Step::Rescheduled(next) = job
        .apply(&Event::Deferred { until: later }, now, &Policy::default())
        .unwrap()
    else {
        panic!("a deferral of a received job is a reschedule");
    };
    block_on(w.store.reschedule(&next.job)).unwrap();

    let stored = w.store.job(&job.id).unwrap();
    assert_eq!(stored.version, job.version);
    assert_eq!(stored.next_check.map(|c| c.at), Some(later));
    assert_eq!(w.store.audit_trail(&job.id).len(), 1);
    let writes = w.store.writes(&job.id);
    assert_eq!(
        (writes.transitions, writes.reschedules, writes.audit_events),
        (1, 1, 1)
    );

    // Only the next check and hold are written, whatever else the caller's copy says.
    let mut meddled = stored.clone();
    meddled.post.title = Some("changed".into());
    meddled.next_check = None;
    block_on(w.store.reschedule(&meddled)).unwrap();
    let stored = w.store.job(&job.id).unwrap();
    assert_eq!(stored.post.title, job.post.title);
    assert_eq!(stored.next_check, None);

    // The job moves on: a reschedule from the old version (or the old state) loses.
    let moved = applied(&stored, started(), now);
    block_on(w.store.save(&moved, stored.version)).unwrap();
    let mut stale = stored.clone();
    stale.next_check = Some(NextCheck {
        at: now,
        kind: CheckKind::SubmitRender,
    });
    assert!(matches!(
        block_on(w.store.reschedule(&stale)),
        Err(StoreError::Conflict)
    ));
    let mut wrong_state = moved.job.clone();
    wrong_state.state = JobState::Ready;
    assert!(matches!(
        block_on(w.store.reschedule(&wrong_state)),
        Err(StoreError::Conflict)
    ));
    assert_eq!(w.store.job(&job.id).unwrap(), moved.job);
}

#[test]
fn due_lists_live_jobs_whose_check_has_come_oldest_first() {
    let w = world();
    let start = w.clock.now();
    let mk = |after: u64| {
        w.clock.set(start.plus(secs(after)));
        w.job(JobSetup::render(T, A))
    };
    // Received jobs are due at creation + render_submit_lease (2 min).
    let late = mk(30);
    let early = mk(10);
    let same_as_early = mk(10);
    let cancelled = mk(0);
    let unchecked = mk(5);
    let not_yet = mk(500);
    let lease = Policy::default().render_submit_lease;

    let now = start.plus(secs(10)).plus(lease);
    let mut cancel = applied(&cancelled, Event::Cancel { by: Actor::Owner }, now);
    // Even a terminal job that (wrongly) kept a check is not due: the index is non-terminal only.
    cancel.job.next_check = Some(NextCheck {
        at: start,
        kind: CheckKind::SubmitRender,
    });
    block_on(w.store.save(&cancel, cancelled.version)).unwrap();
    assert!(cancel.job.is_terminal());
    let mut no_check = unchecked.clone();
    no_check.next_check = None;
    block_on(w.store.reschedule(&no_check)).unwrap();

    let at_now = block_on(w.store.due(now, 100)).unwrap();
    let mut tied = vec![early.id.clone(), same_as_early.id.clone()];
    tied.sort();
    assert_eq!(
        at_now.iter().map(|d| d.job_id.clone()).collect::<Vec<_>>(),
        tied,
        "due at exactly now is included; later, terminal and unchecked jobs are not"
    );
    assert!(at_now.iter().all(|d| d.kind == CheckKind::SubmitRender));

    let much_later = start.plus(secs(10_000));
    let all = block_on(w.store.due(much_later, 100)).unwrap();
    let ids: Vec<_> = all.iter().map(|d| d.job_id.clone()).collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[2], late.id);
    assert_eq!(ids[3], not_yet.id);
    assert!(all.windows(2).all(|p| p[0].at <= p[1].at));
    assert_eq!(block_on(w.store.due(much_later, 1)).unwrap().len(), 1);
}

#[test]
fn every_pointer_a_transition_names_is_written_and_only_those() {
    let w = world();
    let job = w.job(JobSetup::render(T, A));
    let now = w.clock.now();
    let p1 = PublishId::parse("v_pub_file~v2-1.1").unwrap();
    let p2 = PublishId::parse("v_pub_file~v2-1.2").unwrap();
    let p3 = PublishId::parse("v_pub_file~v2-1.3").unwrap();

    // Hand-made transitions: the store writes Applied::pointers, not what the job implies.
    let mut first = applied(&job, started(), now);
    first.job.publish_id = Some(p3.clone());
    first.pointers = vec![Pointer::Publish(p1.clone())];
    block_on(w.store.save(&first, job.version)).unwrap();
    let mut second = applied(&first.job, started(), now.plus(secs(600)));
    second.pointers = vec![Pointer::Publish(p2.clone())];
    block_on(w.store.save(&second, first.job.version)).unwrap();

    for p in [&p1, &p2] {
        assert_eq!(
            block_on(w.store.job_for_publish(p)).unwrap(),
            Some(job.id.clone()),
            "every attempt's publish_id keeps pointing at its job"
        );
    }
    assert_eq!(block_on(w.store.job_for_publish(&p3)).unwrap(), None);

    // A lost race writes no pointer.
    let mut lost = applied(&job, started(), now);
    lost.pointers = vec![Pointer::Publish(p3.clone())];
    assert!(block_on(w.store.save(&lost, job.version)).is_err());
    assert_eq!(block_on(w.store.job_for_publish(&p3)).unwrap(), None);

    // Creating from an existing render writes its request pointer; two jobs share one render.
    let request = reelay_domain::RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap();
    let a = w.job(JobSetup::rendered(T, A, &request));
    let b = w.job(JobSetup::rendered(T, A, &request));
    let mut both = vec![a.id, b.id];
    both.sort();
    assert_eq!(block_on(w.store.jobs_for_request(&request)).unwrap(), both);
}

fn scope(key: &str) -> IdempotencyScope {
    IdempotencyScope {
        tenant_id: tenant_id(T),
        key: IdempotencyKey::parse(key).unwrap(),
    }
}

fn response(body: &str) -> StoredResponse {
    StoredResponse {
        status: 202,
        body: body.into(),
    }
}

#[test]
fn idempotency_replays_refuses_mismatch_and_blocks_while_in_progress() {
    let w = world();
    let store = &w.store;
    let key = scope("key-1");
    let hash = PayloadHash::from_hex("a".repeat(64));
    let other = PayloadHash::from_hex("b".repeat(64));
    let t0 = w.clock.now();
    let until = t0.plus(secs(30));

    assert_eq!(
        block_on(store.begin_idempotent(&key, &hash, t0, until)).unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        block_on(store.begin_idempotent(&key, &hash, t0.plus(secs(1)), until)).unwrap(),
        IdempotencyBegin::InProgress { until }
    );
    assert_eq!(
        block_on(store.begin_idempotent(&key, &other, t0.plus(secs(1)), until)).unwrap(),
        IdempotencyBegin::Mismatch
    );

    let job = Job::create(
        reelay_domain::JobId::generate(t0, 1),
        tenant_id(T),
        account_id(A),
        reelay_domain::JobSource::Render(reelay_testkit::sample::render_request()),
        reelay_testkit::sample::post(reelay_domain::PostMode::Direct),
        t0,
        Some(key.key.clone()),
        t0,
        &Policy::default(),
    );
    let body = "{\"jobId\": \"x\",  \"state\":\"received\"}";
    let expires = t0.plus(secs(48 * 3600));
    block_on(store.create(&job, Some((&key, &hash, &response(body), expires)))).unwrap();

    let replay = block_on(store.begin_idempotent(&key, &hash, t0.plus(secs(60)), until)).unwrap();
    assert_eq!(
        replay,
        IdempotencyBegin::Replay(response(body)),
        "byte for byte"
    );
    assert_eq!(
        block_on(store.begin_idempotent(&key, &other, t0.plus(secs(60)), until)).unwrap(),
        IdempotencyBegin::Mismatch
    );
    // Abandoning a completed key changes nothing.
    block_on(store.abandon_idempotent(&key)).unwrap();
    assert!(matches!(
        block_on(store.begin_idempotent(&key, &hash, t0.plus(secs(61)), until)).unwrap(),
        IdempotencyBegin::Replay(_)
    ));
    // After its expiration the key is free again.
    let after = expires.plus(secs(1));
    assert_eq!(
        block_on(store.begin_idempotent(&key, &other, after, after.plus(secs(30)))).unwrap(),
        IdempotencyBegin::Started
    );
}

#[test]
fn a_crashed_request_frees_its_key_and_only_one_of_two_owners_creates() {
    let w = world();
    let store = &w.store;
    let key = scope("key-2");
    let hash = PayloadHash::from_hex("c".repeat(64));
    let t0 = w.clock.now();
    let lease = secs(30);

    // A claims and stalls past its lease; B takes over.
    assert_eq!(
        block_on(store.begin_idempotent(&key, &hash, t0, t0.plus(lease))).unwrap(),
        IdempotencyBegin::Started
    );
    let t1 = t0.plus(lease).plus(secs(1));
    assert_eq!(
        block_on(store.begin_idempotent(&key, &hash, t1, t1.plus(lease))).unwrap(),
        IdempotencyBegin::Started
    );

    let create = |n: u128| {
        Job::create(
            reelay_domain::JobId::generate(t1, n),
            tenant_id(T),
            account_id(A),
            reelay_domain::JobSource::Render(reelay_testkit::sample::render_request()),
            reelay_testkit::sample::post(reelay_domain::PostMode::Direct),
            t1,
            Some(key.key.clone()),
            t1,
            &Policy::default(),
        )
    };
    let (a, b) = (create(1), create(2));
    let expires = t1.plus(secs(48 * 3600));
    block_on(store.create(&b, Some((&key, &hash, &response("b"), expires)))).unwrap();
    // A wakes up and creates: the record is completed, so its create is refused whole.
    assert!(matches!(
        block_on(store.create(&a, Some((&key, &hash, &response("a"), expires)))),
        Err(StoreError::Conflict)
    ));
    assert!(store.job(&a.job.id).is_none());
    assert_eq!(store.jobs().len(), 1);
    assert_eq!(
        block_on(store.begin_idempotent(&key, &hash, t1, t1.plus(lease))).unwrap(),
        IdempotencyBegin::Replay(response("b"))
    );

    // Abandoning an in-progress claim frees the key at once.
    let key3 = scope("key-3");
    block_on(store.begin_idempotent(&key3, &hash, t1, t1.plus(lease))).unwrap();
    block_on(store.abandon_idempotent(&key3)).unwrap();
    assert_eq!(
        block_on(store.begin_idempotent(&key3, &hash, t1, t1.plus(lease))).unwrap(),
        IdempotencyBegin::Started
    );
}

#[test]
fn budgets_are_never_overspent_by_a_hundred_concurrent_takers() {
    let faults = Faults::new();
    faults.yield_every_call(true);
    let store = MemStore::new();
    let hooked = store.with_hook(Arc::new(faults.clone()));
    let window = Window::new(10, secs(60));
    let t0 = UtcTime::from_secs(1_800_000_000);

    // Interleaved on one thread: every take yields before it runs.
    let windows = [(BudgetKind::TikTokInit, window)];
    let takers = (0..100u64).map(|i| {
        let s = hooked.clone();
        // Clocks disagree by up to a few seconds.
        async move { s.take("acct", &windows, 1, t0.plus(secs(i % 7))).await }
    });
    let answers = block_on(futures::future::join_all(takers));
    let granted = answers.iter().filter(|a| matches!(a, Ok(None))).count();
    assert_eq!(granted, 10);
    assert_eq!(faults.counts()[calls::BUDGETS_TAKE], 100);

    // On four threads at once, three windows a take.
    let threaded = MemStore::new();
    let three = [
        (BudgetKind::SsembleCreate, window),
        (BudgetKind::SsembleHourly, Window::new(25, secs(3_600))),
        (BudgetKind::SsembleDaily, Window::new(40, secs(86_400))),
    ];
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let s = threaded.clone();
            scope.spawn(move || {
                for i in 0..25u64 {
                    let now = t0.plus(Duration::from_millis((t * 25 + i) % 5_000));
                    block_on(s.take("key", &three, 1, now)).unwrap();
                }
            });
        }
    });
    for kind in [
        BudgetKind::SsembleCreate,
        BudgetKind::SsembleHourly,
        BudgetKind::SsembleDaily,
    ] {
        // Whole takes: the windows that had room were not charged for the refused ones.
        let grants = threaded.budget_grants("key", kind);
        assert_eq!(grants.len(), 10, "{kind:?}");
        assert_eq!(threaded.budget_tally("key", kind).total(), 10, "{kind:?}");
        for (i, g) in grants.iter().enumerate() {
            let in_window = grants
                .iter()
                .filter(|x| **x >= *g && x.since(*g) < window.period)
                .count();
            assert!(in_window <= 10, "{i}");
        }
    }
}

#[test]
fn budgets_hold_the_contract_every_store_holds() {
    block_on(reelay_testkit::contract::budgets(&MemStore::new()));
}

#[test]
fn list_pages_newest_first_within_the_tenant_with_filters() {
    let w = World::new()
        .tenant(T)
        .account(T, A)
        .account(T, "acct_2")
        .tenant("tenant_b")
        .account("tenant_b", A);
    let mut mine = Vec::new();
    for i in 0..5 {
        w.clock.advance(secs(1));
        let account = if i % 2 == 0 { A } else { "acct_2" };
        mine.push(w.job(JobSetup::render(T, account)).id);
    }
    w.job(JobSetup::render("tenant_b", A));
    mine.reverse();

    let all = JobFilter::default();
    let p1 = block_on(w.store.list(&tenant_id(T), &all, None, 2)).unwrap();
    let p2 = block_on(
        w.store
            .list(&tenant_id(T), &all, p1.next_cursor.as_deref(), 2),
    )
    .unwrap();
    let p3 = block_on(
        w.store
            .list(&tenant_id(T), &all, p2.next_cursor.as_deref(), 2),
    )
    .unwrap();
    let seen: Vec<_> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| p.jobs.iter().map(|j| j.id.clone()))
        .collect();
    assert_eq!(seen, mine);
    assert!(p3.next_cursor.is_none());

    let filter = JobFilter {
        account_id: Some(account_id("acct_2")),
        state: Some(JobState::Received),
    };
    let page = block_on(w.store.list(&tenant_id(T), &filter, None, 100)).unwrap();
    assert_eq!(page.jobs.len(), 2);
    assert!(page.jobs.iter().all(|j| j.account_id.as_str() == "acct_2"));
    let none = JobFilter {
        state: Some(JobState::Ready),
        ..JobFilter::default()
    };
    assert!(
        block_on(w.store.list(&tenant_id(T), &none, None, 100))
            .unwrap()
            .jobs
            .is_empty()
    );

    assert!(matches!(
        block_on(w.store.list(&tenant_id(T), &all, Some("not a cursor"), 2)),
        Err(StoreError::InvalidCursor)
    ));
}

#[test]
fn audit_pages_run_oldest_first() {
    let w = world();
    let mut job = w.job(JobSetup::render(T, A));
    for i in 0..4 {
        let next = applied(&job, started(), w.clock.now().plus(secs(600 * (i + 1))));
        block_on(w.store.save(&next, job.version)).unwrap();
        job = next.job;
    }
    let p1 = block_on(w.store.audit_page(&job.id, None, 2)).unwrap();
    assert_eq!(
        p1.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(p1.next_after, Some(2));
    let p2 = block_on(w.store.audit_page(&job.id, p1.next_after, 2)).unwrap();
    assert_eq!(
        p2.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [3, 4]
    );
    let p3 = block_on(w.store.audit_page(&job.id, p2.next_after, 2)).unwrap();
    assert_eq!(p3.events.iter().map(|e| e.version).collect::<Vec<_>>(), [5]);
    assert_eq!(p3.next_after, None);
}

#[test]
fn accounts_are_versioned_and_keep_their_open_id_lookup() {
    let store = MemStore::new();
    let (t, a) = (tenant_id(T), account_id(A));
    let mut account = Account::new(t.clone(), a.clone());
    account.open_id = Some("open-1".into());
    block_on(store.put_account(&account)).unwrap();
    assert!(matches!(
        block_on(store.put_account(&account)),
        Err(StoreError::Conflict)
    ));
    let mut read = block_on(store.get_account(&t, &a)).unwrap().unwrap();
    assert_eq!(read.version, 1);
    assert_eq!(
        block_on(store.account_for_open_id("open-1")).unwrap(),
        Some((t.clone(), a.clone()))
    );

    // Reconnected as another TikTok user: the old lookup goes, the new one comes.
    read.open_id = Some("open-2".into());
    block_on(store.put_account(&read)).unwrap();
    assert_eq!(block_on(store.account_for_open_id("open-1")).unwrap(), None);
    assert_eq!(
        block_on(store.account_for_open_id("open-2")).unwrap(),
        Some((t.clone(), a.clone()))
    );
    // A write from the stale read loses.
    assert!(matches!(
        block_on(store.put_account(&read)),
        Err(StoreError::Conflict)
    ));

    let t0 = UtcTime::from_secs(1_800_000_000);
    block_on(store.block_until(&t, &a, t0.plus(secs(600)), "cap")).unwrap();
    block_on(store.block_until(&t, &a, t0.plus(secs(60)), "shorter")).unwrap();
    let blocked = store.account(&t, &a).unwrap();
    assert_eq!(
        blocked.blocked_until,
        Some(t0.plus(secs(600))),
        "only extends"
    );
    assert_eq!(store.blocked_reason(&t, &a).as_deref(), Some("cap"));

    block_on(store.set_health(&t, &a, AccountHealth::Banned, Some("banned"))).unwrap();
    let banned = store.account(&t, &a).unwrap();
    assert_eq!(
        (banned.health, banned.health_reason.as_deref()),
        (AccountHealth::Banned, Some("banned"))
    );
    assert!(
        banned.version > blocked.version,
        "every account write moves the version"
    );

    let ghost = account_id("ghost");
    assert!(matches!(
        block_on(store.set_health(&t, &ghost, AccountHealth::Active, None)),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        block_on(store.block_until(&t, &ghost, t0, "x")),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn leases_are_exclusive_until_they_expire_and_state_tokens_are_single_use() {
    let store = MemStore::new();
    let t0 = UtcTime::from_secs(1_800_000_000);
    let until = t0.plus(secs(30));
    assert!(block_on(store.acquire_lock("l", "me", t0, until)).unwrap());
    assert!(
        !block_on(store.acquire_lock("l", "you", t0.plus(secs(29)), t0.plus(secs(60)))).unwrap()
    );
    assert!(
        block_on(store.acquire_lock("l", "me", t0.plus(secs(1)), t0.plus(secs(40)))).unwrap(),
        "renewal"
    );
    block_on(store.release_lock("l", "you")).unwrap();
    assert_eq!(
        store.lease("l").unwrap().owner,
        "me",
        "only the owner releases"
    );
    assert!(
        block_on(store.acquire_lock("l", "you", t0.plus(secs(41)), t0.plus(secs(70)))).unwrap(),
        "expired"
    );
    block_on(store.release_lock("l", "you")).unwrap();
    assert!(store.lease("l").is_none());

    assert!(block_on(store.acquire_lock("state", "tenant_a:acct_1", t0, until)).unwrap());
    assert_eq!(
        block_on(store.take_lock("state", t0)).unwrap().as_deref(),
        Some("tenant_a:acct_1")
    );
    assert_eq!(
        block_on(store.take_lock("state", t0)).unwrap(),
        None,
        "single use"
    );
    assert!(block_on(store.acquire_lock("old", "x", t0, until)).unwrap());
    assert_eq!(
        block_on(store.take_lock("old", until.plus(secs(1)))).unwrap(),
        None,
        "expired"
    );
}

#[test]
fn tenant_keys_live_as_the_contract_says() {
    let store = MemStore::new();
    block_on(reelay_testkit::contract::tenant_lifecycle(
        &store,
        &ManualClock::default(),
    ));
    block_on(reelay_testkit::contract::accounts_listing(&store));
    block_on(reelay_testkit::contract::one_creator_one_account(&store));
    block_on(reelay_testkit::contract::webhooks(&store));
    let w = World::new().tenant(T);
    let key = reelay_testkit::api_key(T);
    assert_eq!(
        block_on(w.core().authenticate(&key)).unwrap(),
        Some(tenant_id(T))
    );
}

#[test]
fn a_fault_fails_the_call_before_it_runs_or_after_it_took_effect() {
    let w = world();
    let job = w.job(JobSetup::render(T, A));
    let faults = Faults::new();
    let hooked = w.store.with_hook(Arc::new(faults.clone()));
    let next = applied(&job, started(), w.clock.now());

    faults.fail_next(calls::JOBS_SAVE, Fault::unavailable());
    assert!(matches!(
        block_on(hooked.save(&next, job.version)),
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(w.store.job(&job.id).unwrap(), job, "nothing written");

    // A lost response: the write committed, the caller hears an error; its retry then loses.
    faults.fail_next(calls::JOBS_SAVE, Fault::lost_response());
    assert!(matches!(
        block_on(hooked.save(&next, job.version)),
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(w.store.job(&job.id).unwrap(), next.job);
    assert!(matches!(
        block_on(hooked.save(&next, job.version)),
        Err(StoreError::Conflict)
    ));

    faults.fail_always(calls::JOBS_GET, Fault::unavailable());
    assert!(block_on(hooked.get(&job.id)).is_err());
    assert!(block_on(hooked.get(&job.id)).is_err());
    assert!(
        block_on(w.store.get(&job.id)).unwrap().is_some(),
        "the unhooked clone is not faulted"
    );
    faults.clear(calls::JOBS_GET);
    assert!(block_on(hooked.get(&job.id)).unwrap().is_some());
}

#[test]
fn the_manual_clock_sleeps_instantly_and_its_entropy_is_seeded() {
    let clock = ManualClock::default();
    let t0 = reelay_domain::ports::Clock::now(&clock);
    block_on(reelay_domain::ports::Clock::sleep(&clock, secs(90)));
    assert_eq!(reelay_domain::ports::Clock::now(&clock), t0.plus(secs(90)));
    assert_eq!(clock.slept(), (secs(90), 1));

    // With a hook that yields, the sleep still completes (Pending once, then Ready).
    let faults = Faults::new();
    faults.yield_every_call(true);
    let hooked = clock.with_hook(Arc::new(faults.clone()));
    block_on(reelay_domain::ports::Clock::sleep(&hooked, secs(10)));
    assert_eq!(reelay_domain::ports::Clock::now(&clock), t0.plus(secs(100)));
    assert_eq!(faults.seen(), [calls::CLOCK_SLEEP]);

    use reelay_domain::ports::Entropy;
    let a = ManualClock::new(t0, 42);
    let b = ManualClock::new(t0, 42);
    let c = ManualClock::new(t0, 43);
    let draws = |c: &ManualClock| (0..3).map(|_| c.random_u128()).collect::<Vec<_>>();
    assert_eq!(draws(&a), draws(&b));
    assert_ne!(draws(&a), draws(&c));
}

#[test]
fn calls_are_counted_per_name() {
    let w = world();
    let job = w.job(JobSetup::render(T, A));
    block_on(w.store.get(&job.id)).unwrap();
    block_on(w.store.get(&job.id)).unwrap();
    let counts = w.store.calls();
    assert_eq!(counts[calls::JOBS_GET], 2);
    assert_eq!(counts[calls::JOBS_CREATE], 1);
}
