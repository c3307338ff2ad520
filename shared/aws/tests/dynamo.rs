//! DynamoDB adapters against a real endpoint (MiniStack, or DynamoDB Local through
//! `AWS_ENDPOINT_URL_DYNAMODB`). Each test owns a fresh table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{account, new_job, now, sdk, tenant, trail};
use reelay_aws::DynamoStore;
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::budget::{Admission, BudgetKind, Window};
use reelay_domain::job::{Hold, NextCheck, Pointer};
use reelay_domain::lifecycle::{Actor, Event};
use reelay_domain::ports::{
    AccountStore, BudgetStore, IdempotencyBegin, IdempotencyScope, JobFilter, JobStore, LockStore,
    StoreError, StoredResponse,
};
use reelay_domain::{
    CheckKind, IdempotencyKey, Job, JobState, PayloadHash, PublishId, RequestId, Step, UtcTime,
};
use secrecy::ExposeSecret;

async fn job_store() -> DynamoStore {
    common::store(&sdk().await).await
}

fn scope(t: &str, key: &str) -> IdempotencyScope {
    IdempotencyScope {
        tenant_id: tenant(t),
        key: IdempotencyKey::parse(key).unwrap(),
    }
}

fn hash(body: serde_json::Value) -> PayloadHash {
    PayloadHash::of(&body)
}

/// What an ingest handler does with one request: claim the key, create the job, or replay.
async fn ingest_once(
    store: &DynamoStore,
    scope: &IdempotencyScope,
    hash: &PayloadHash,
) -> (bool, StoredResponse) {
    loop {
        let t = now();
        match store
            .begin_idempotent(scope, hash, t, t.plus(Duration::from_secs(10)))
            .await
            .unwrap()
        {
            IdempotencyBegin::Started => {
                let created = new_job(
                    &scope.tenant_id,
                    &account("acct_1"),
                    t,
                    Some(scope.key.as_str()),
                );
                let response = StoredResponse {
                    status: 202,
                    body: serde_json::json!({"jobId": created.job.id, "state": created.job.state})
                        .to_string(),
                };
                let expires = t.plus(Duration::from_secs(24 * 3600));
                match store
                    .create(&created, Some((scope, hash, &response, expires)))
                    .await
                {
                    Ok(()) => return (true, response),
                    Err(StoreError::Conflict) => continue,
                    Err(e) => panic!("create failed: {e}"),
                }
            }
            IdempotencyBegin::Replay(r) => return (false, r),
            IdempotencyBegin::InProgress { .. } => {
                tokio::time::sleep(Duration::from_millis(15)).await
            }
            IdempotencyBegin::Mismatch => panic!("same body reported as mismatch"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_with_one_key_create_one_job_and_49_identical_replays() {
    let store = Arc::new(job_store().await);
    let scope = Arc::new(scope("tenant_a", "2f182b63-312f-4290-9222-7cf6f7f8f12d"));
    let hash = Arc::new(hash(
        serde_json::json!({"tiktokAccountId": "acct_1", "url": "https://x/v.mp4"}),
    ));

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, scope, hash) = (store.clone(), scope.clone(), hash.clone());
            tokio::spawn(async move { ingest_once(&store, &scope, &hash).await })
        })
        .collect();
    let results: Vec<(bool, StoredResponse)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();

    let (created, replayed): (Vec<_>, Vec<_>) =
        results.into_iter().partition(|(started, _)| *started);
    assert_eq!(created.len(), 1, "exactly one request creates the job");
    assert_eq!(replayed.len(), 49);
    let first = &created[0].1;
    for (_, r) in &replayed {
        assert_eq!(r.status, first.status);
        assert_eq!(
            r.body.as_bytes(),
            first.body.as_bytes(),
            "replay is byte for byte"
        );
    }
    let page = store
        .list(&scope.tenant_id, &JobFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 1, "exactly one job stored");
    assert!(first.body.contains(page.jobs[0].id.as_str()));
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_mismatch_in_progress_or_completed() {
    let store = job_store().await;
    let scope = scope("tenant_a", "key-1");
    let (h1, h2) = (
        hash(serde_json::json!({"a": 1})),
        hash(serde_json::json!({"a": 2})),
    );
    let t = now();
    let until = t.plus(Duration::from_secs(30));
    assert_eq!(
        store.begin_idempotent(&scope, &h1, t, until).await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        store.begin_idempotent(&scope, &h2, t, until).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
    assert_eq!(
        store.begin_idempotent(&scope, &h1, t, until).await.unwrap(),
        IdempotencyBegin::InProgress { until }
    );
    let (started, response) = ingest_once_completing(&store, &scope, &h1, t).await;
    assert!(started);
    assert_eq!(
        store.begin_idempotent(&scope, &h2, t, until).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
    assert_eq!(
        store.begin_idempotent(&scope, &h1, t, until).await.unwrap(),
        IdempotencyBegin::Replay(response)
    );
    // Another tenant's identical key is a different scope.
    let other = IdempotencyScope {
        tenant_id: tenant("tenant_b"),
        key: scope.key.clone(),
    };
    assert_eq!(
        store.begin_idempotent(&other, &h2, t, until).await.unwrap(),
        IdempotencyBegin::Started
    );
}

/// Completes a key this test already claimed.
async fn ingest_once_completing(
    store: &DynamoStore,
    scope: &IdempotencyScope,
    hash: &PayloadHash,
    t: UtcTime,
) -> (bool, StoredResponse) {
    let created = new_job(
        &scope.tenant_id,
        &account("acct_1"),
        t,
        Some(scope.key.as_str()),
    );
    let response = StoredResponse {
        status: 202,
        body: format!("{{\"jobId\":\"{}\"}}", created.job.id),
    };
    store
        .create(
            &created,
            Some((scope, hash, &response, t.plus(Duration::from_secs(86_400)))),
        )
        .await
        .unwrap();
    (true, response)
}

#[tokio::test]
async fn an_expired_in_progress_record_is_taken_over_and_only_one_owner_completes() {
    let store = job_store().await;
    let scope = scope("tenant_a", "key-crash");
    let h = hash(serde_json::json!({"a": 1}));
    let t0 = now();
    let lease = t0.plus(Duration::from_secs(1));
    assert_eq!(
        store.begin_idempotent(&scope, &h, t0, lease).await.unwrap(),
        IdempotencyBegin::Started
    );
    // Before the lease passes the key is busy; after, a retry takes it over (the first "crashed").
    let mid = t0.plus(Duration::from_millis(500));
    assert_eq!(
        store
            .begin_idempotent(&scope, &h, mid, mid.plus(Duration::from_secs(1)))
            .await
            .unwrap(),
        IdempotencyBegin::InProgress { until: lease }
    );
    let t2 = t0.plus(Duration::from_secs(2));
    assert_eq!(
        store
            .begin_idempotent(&scope, &h, t2, t2.plus(Duration::from_secs(10)))
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );

    // Both owners try to finish; the completion is the fence, so only one job exists.
    let second = new_job(&scope.tenant_id, &account("acct_1"), t2, Some("key-crash"));
    let second_resp = StoredResponse {
        status: 202,
        body: format!("{{\"jobId\":\"{}\"}}", second.job.id),
    };
    let exp = t2.plus(Duration::from_secs(86_400));
    store
        .create(&second, Some((&scope, &h, &second_resp, exp)))
        .await
        .unwrap();
    let first = new_job(&scope.tenant_id, &account("acct_1"), t0, Some("key-crash"));
    let first_resp = StoredResponse {
        status: 202,
        body: format!("{{\"jobId\":\"{}\"}}", first.job.id),
    };
    assert!(matches!(
        store
            .create(&first, Some((&scope, &h, &first_resp, exp)))
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.get(&first.job.id).await.unwrap(),
        None,
        "the loser's job was rolled back"
    );
    assert_eq!(
        store.begin_idempotent(&scope, &h, t2, t2).await.unwrap(),
        IdempotencyBegin::Replay(second_resp)
    );
    assert_eq!(
        store
            .list(&scope.tenant_id, &JobFilter::default(), None, 10)
            .await
            .unwrap()
            .jobs
            .len(),
        1
    );
}

#[tokio::test]
async fn abandoning_releases_an_in_progress_key_but_never_a_completed_one() {
    let store = job_store().await;
    let h = hash(serde_json::json!({"a": 1}));
    let t = now();
    let until = t.plus(Duration::from_secs(30));
    let s1 = scope("tenant_a", "key-abandon");
    assert_eq!(
        store.begin_idempotent(&s1, &h, t, until).await.unwrap(),
        IdempotencyBegin::Started
    );
    store.abandon_idempotent(&s1).await.unwrap();
    assert_eq!(
        store.begin_idempotent(&s1, &h, t, until).await.unwrap(),
        IdempotencyBegin::Started
    );
    let (_, response) = ingest_once_completing(&store, &s1, &h, t).await;
    store.abandon_idempotent(&s1).await.unwrap();
    assert_eq!(
        store.begin_idempotent(&s1, &h, t, until).await.unwrap(),
        IdempotencyBegin::Replay(response)
    );
    // A completed record past its retention is a new request (Stripe: keys pruned after 24 h).
    let later = t.plus(Duration::from_secs(86_400 + 5));
    assert_eq!(
        store
            .begin_idempotent(&s1, &h, later, later.plus(Duration::from_secs(30)))
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_saves_from_one_version_have_one_winner_and_only_its_audit_event() {
    let store = Arc::new(job_store().await);
    let t = now();
    let created = new_job(&tenant("tenant_a"), &account("acct_1"), t, None);
    store.create(&created, None).await.unwrap();
    let job = Arc::new(created.job.clone());

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, job) = (store.clone(), job.clone());
            tokio::spawn(async move {
                let event = Event::Held {
                    reason: format!("reason_{i}"),
                    until: None,
                };
                let Step::Applied(applied) =
                    job.apply(&event, t, &common::lifecycle::policy()).unwrap()
                else {
                    panic!("absorbed")
                };
                (i, store.save(&applied, job.version).await)
            })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one save wins");
    for (_, r) in results.iter().filter(|(_, r)| r.is_err()) {
        assert!(
            matches!(r, Err(StoreError::Conflict)),
            "losers get Conflict, got {r:?}"
        );
    }
    let winner = format!("reason_{}", winners[0]);
    let stored = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(
        stored.hold.as_ref().map(|h| h.reason.as_str()),
        Some(winner.as_str())
    );
    let trail = trail(&*store, &job.id).await;
    assert_eq!(trail.len(), 2, "created + the winner's event only");
    assert_eq!(trail[0].event, "created");
    assert_eq!(trail[1].detail.as_deref(), Some(winner.as_str()));

    // A stale writer (still at version 1) can never overwrite.
    let Step::Applied(stale) = job
        .apply(
            &Event::Cancel { by: Actor::Owner },
            t,
            &common::lifecycle::policy(),
        )
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        store.save(&stale, 1).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.get(&job.id).await.unwrap().unwrap().state,
        JobState::Received
    );
}

#[tokio::test]
async fn the_happy_path_keeps_the_due_index_exact_and_writes_pointers_once() {
    let store = job_store().await;
    let start = now();
    let created = new_job(&tenant("tenant_a"), &account("acct_1"), start, None);
    store.create(&created, None).await.unwrap();
    let id = created.job.id.clone();
    assert_due_matches(&store, &created.job).await;

    let mut seen = vec![created.job.state];
    let done = common::lifecycle::drive(&store, created.job.clone(), start, async |job| {
        assert_due_matches(&store, job).await;
        seen.push(job.state);
        if job.state == JobState::Publishing {
            let lease = job.next_check.unwrap();
            assert_eq!(lease.kind, reelay_domain::CheckKind::LeaseExpiry);
        }
    })
    .await;

    assert_eq!(
        seen,
        vec![
            JobState::Received,
            JobState::Received,
            JobState::Rendering,
            JobState::Ready,
            JobState::PublishQueued,
            JobState::Publishing,
            JobState::PublishProcessing,
            JobState::Uploaded,
            JobState::Submitted,
            JobState::PublishComplete,
            JobState::PubliclyAvailable,
        ]
    );
    assert_eq!(done.next_check, None);
    let far = start.plus(Duration::from_secs(365 * 86_400));
    assert!(
        store.due(far, 100).await.unwrap().is_empty(),
        "a terminal job leaves the due index"
    );

    let request = RequestId::parse(common::lifecycle::REQUEST_ID).unwrap();
    assert_eq!(
        store.jobs_for_request(&request).await.unwrap(),
        vec![id.clone()]
    );
    let publish = PublishId::parse(common::lifecycle::PUBLISH_ID).unwrap();
    assert_eq!(
        store.job_for_publish(&publish).await.unwrap(),
        Some(id.clone())
    );
    assert_eq!(
        store
            .job_for_publish(&PublishId::parse("other").unwrap())
            .await
            .unwrap(),
        None
    );

    let trail = trail(&store, &id).await;
    assert_eq!(trail.len(), 11);
    assert!(trail.windows(2).all(|w| w[0].version + 1 == w[1].version));
    assert_eq!(trail.last().unwrap().to, JobState::PubliclyAvailable);
    assert_eq!(done.post_ids, vec![common::lifecycle::POST_ID.to_owned()]);
}

/// The due index holds the job exactly when it has a next check, at that instant, with its kind.
async fn assert_due_matches(store: &DynamoStore, job: &reelay_domain::Job) {
    match job.next_check {
        Some(next) => {
            let due = store.due(next.at, 100).await.unwrap();
            let mine: Vec<_> = due.iter().filter(|d| d.job_id == job.id).collect();
            assert_eq!(mine.len(), 1, "state {}: due at {}", job.state, next.at);
            assert_eq!((mine[0].at, mine[0].kind), (next.at, next.kind));
            let before = store
                .due(next.at.minus(Duration::from_millis(1)), 100)
                .await
                .unwrap();
            assert!(
                before.iter().all(|d| d.job_id != job.id),
                "state {}: not due before",
                job.state
            );
        }
        None => {
            let far = job.updated_at.plus(Duration::from_secs(365 * 86_400));
            let due = store.due(far, 100).await.unwrap();
            assert!(
                due.iter().all(|d| d.job_id != job.id),
                "state {}: no check, not due",
                job.state
            );
        }
    }
}

#[tokio::test]
async fn due_merges_the_shards_oldest_first_up_to_the_limit() {
    let store = job_store().await;
    let t = now();
    let mut expected = Vec::new();
    for i in 0..24 {
        let created = new_job(
            &tenant("tenant_a"),
            &account("acct_1"),
            t.minus(Duration::from_secs(100 - i)),
            None,
        );
        store.create(&created, None).await.unwrap();
        expected.push((created.job.next_check.unwrap().at, created.job.id.clone()));
    }
    expected.sort();
    let due = store
        .due(t.plus(Duration::from_secs(3600)), 10)
        .await
        .unwrap();
    let got: Vec<_> = due.iter().map(|d| (d.at, d.job_id.clone())).collect();
    assert_eq!(got, expected[..10].to_vec());
    let none = store
        .due(t.minus(Duration::from_secs(3600)), 10)
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// Moves a new job to `rendering` (Ssemble request `n`) and saves it as its first version.
async fn submit_render(store: &DynamoStore, job: &Job, n: u64, at: UtcTime) {
    let event = Event::RenderSubmitted {
        request_id: RequestId::parse(format!("{n:024x}")).unwrap(),
        found: false,
    };
    let Step::Applied(applied) = job.apply(&event, at, &common::lifecycle::policy()).unwrap()
    else {
        panic!("RenderSubmitted applies to a new job")
    };
    store.save(&applied, 1).await.unwrap();
}

#[tokio::test]
async fn list_filters_by_account_and_state_and_pages_with_an_opaque_cursor() {
    let store = job_store().await;
    let t = now();
    let (ta, tb) = (tenant("tenant_a"), tenant("tenant_b"));
    let mut ids = Vec::new();
    for i in 0..7u64 {
        let acct = if i < 4 { "acct_a" } else { "acct_b" };
        let created = new_job(&ta, &account(acct), t.plus(Duration::from_millis(i)), None);
        store.create(&created, None).await.unwrap();
        if i < 2 {
            submit_render(&store, &created.job, i + 1, t).await;
        }
        ids.push(created.job.id);
    }
    store
        .create(&new_job(&tb, &account("acct_a"), t, None), None)
        .await
        .unwrap();

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(&ta, &JobFilter::default(), cursor.as_deref(), 3)
            .await
            .unwrap();
        pages.push(page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>());
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(
        pages.concat(),
        newest_first,
        "newest first, no gaps or repeats"
    );

    let by_account = JobFilter {
        account_id: Some(account("acct_a")),
        state: None,
    };
    assert_eq!(
        store
            .list(&ta, &by_account, None, 50)
            .await
            .unwrap()
            .jobs
            .len(),
        4
    );
    let rendering = JobFilter {
        account_id: Some(account("acct_a")),
        state: Some(JobState::Rendering),
    };
    let page = store.list(&ta, &rendering, None, 50).await.unwrap();
    assert_eq!(page.jobs.len(), 2);
    assert!(page.jobs.iter().all(|j| j.state == JobState::Rendering));
    assert_eq!(
        store
            .list(&tb, &JobFilter::default(), None, 50)
            .await
            .unwrap()
            .jobs
            .len(),
        1
    );
    assert!(matches!(
        store
            .list(&ta, &JobFilter::default(), Some("garbage!"), 3)
            .await,
        Err(StoreError::InvalidCursor)
    ));
}

/// `gsi1` holds keys only (template.yaml): rewriting an item that keeps its index keys writes
/// nothing to the index (with every attribute projected, each block of an account and each
/// transition of a job rewrote its entry), and a listing returns the items as they are now, read
/// from the table, with the filters applied to them.
#[tokio::test]
async fn a_rewrite_that_keeps_the_index_keys_writes_no_index_and_listings_read_the_items_as_they_are()
 {
    let store = job_store().await.with_index_capacity();
    let (t, a) = (tenant("tenant_gsi"), account("acct_gsi"));
    let mut acct = Account::new(t.clone(), a.clone());
    acct.health = AccountHealth::Active;
    acct.health_reason = None;
    store.put_account(&acct).await.unwrap();
    let put = store.meter().snapshot().ops["put_account"];
    assert!(
        put.index_units >= 1.0,
        "the new item's entry is written: {put:?}"
    );

    let until = now().plus(Duration::from_secs(600));
    store
        .block_until(&t, &a, until, "rate_limit_exceeded")
        .await
        .unwrap();
    let block = store.meter().snapshot().ops["block_until"];
    assert_eq!(block.requests, 1);
    assert!(block.table_units >= 1.0, "{block:?}");
    assert_eq!(
        block.index_units, 0.0,
        "no index entry rewritten: {block:?}"
    );
    let listed = store.accounts(&t).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].blocked_until,
        Some(until),
        "the listing reads the item as it is now"
    );

    // Jobs: one account's rendering jobs, a page of one at a time, filtered after the read.
    let start = now();
    let mut rendering = Vec::new();
    for i in 0..5u64 {
        let acct = if i % 2 == 0 { "acct_gsi" } else { "acct_other" };
        let created = new_job(
            &t,
            &account(acct),
            start.plus(Duration::from_millis(i)),
            None,
        );
        store.create(&created, None).await.unwrap();
        if i != 2 {
            submit_render(&store, &created.job, i + 100, start).await;
            if acct == "acct_gsi" {
                rendering.push(created.job.id.clone());
            }
        }
    }
    rendering.reverse();
    let filter = JobFilter {
        account_id: Some(a.clone()),
        state: Some(JobState::Rendering),
    };
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = store.list(&t, &filter, cursor.as_deref(), 1).await.unwrap();
        pages += 1;
        assert!(page.jobs.len() <= 1);
        seen.extend(page.jobs.iter().map(|j| j.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "the cursor ends");
    }
    assert_eq!(
        seen, rendering,
        "newest first, every match once, nothing else"
    );
}

/// 100 takers at once on an open bucket: each take is one write, and none of them races
/// another while the window has room (the old log item lost ~58 writes a job to such races).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_takes_of_three_windows_are_a_write_each_and_never_overspend() {
    let store = Arc::new(job_store().await);
    // Simulated time at the start of a bucket of every window (a day's 720 s buckets are whole
    // numbers of the hour's 30 s and the minute's 0.5 s ones). On the wall clock the first
    // race's 7 ms crossed a bucket edge about once in 70 runs: the taker that opened the next
    // bucket made every add in flight lose one round (CI saw 198 writes, 98 refused).
    let t = UtcTime::from_millis(now().as_millis().div_euclid(720_000) * 720_000);
    let three = |minute: u32| {
        [
            (
                BudgetKind::SsembleStatus,
                Window::new(minute, Duration::from_secs(60)),
            ),
            (
                BudgetKind::SsembleHourly,
                Window::new(1_000, Duration::from_secs(3_600)),
            ),
            (
                BudgetKind::SsembleDaily,
                Window::new(1_000, Duration::from_secs(86_400)),
            ),
        ]
    };
    let race = |scope: &'static str, minute: u32| {
        let store = store.clone();
        async move {
            let windows = three(minute);
            // The bucket is opened first; the hundred then all take in it.
            assert_eq!(store.take(scope, &windows, 1, t).await.unwrap(), None);
            let before = store.meter().snapshot();
            let tasks: Vec<_> = (0..100u64)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let at = t.plus(Duration::from_millis(i % 7));
                        store.take(scope, &windows, 1, at).await.unwrap()
                    })
                })
                .collect();
            let answers: Vec<_> = futures::future::join_all(tasks)
                .await
                .into_iter()
                .map(|r| r.unwrap())
                .collect();
            let after = store.meter().snapshot();
            let writes = after.requests_of("take") - before.requests_of("take");
            let refused = after.failed_of("take") - before.failed_of("take");
            (answers, writes, refused)
        }
    };

    // Room for all: 100 grants, 100 writes, not one refused.
    let (answers, writes, refused) = race("key-roomy", 500).await;
    assert!(answers.iter().all(Option::is_none), "{answers:?}");
    assert_eq!((writes, refused), (100, 0));

    // Room for 59 more: exactly 59 granted; a refusal never spent the hour or the day.
    let (answers, writes, refused) = race("key-full", 60).await;
    let granted = answers.iter().filter(|a| a.is_none()).count();
    assert_eq!(granted, 59, "never overspent, never underspent");
    for denied in answers.iter().flatten() {
        assert_eq!(denied.kind, BudgetKind::SsembleStatus);
        assert!(denied.retry_at >= t.plus(Duration::from_secs(60)));
    }
    assert!(refused <= 41, "{refused} refused of {writes}");
    let left = store
        .peek("key-full", &three(60)[1..], t.plus(Duration::from_secs(61)))
        .await
        .unwrap();
    assert_eq!(
        left,
        vec![
            Admission::Granted { remaining: 939 },
            Admission::Granted { remaining: 939 }
        ]
    );
    // 100 takers spread over 3 s, so takes open new buckets while others add to the latest:
    // exactly the limit granted, in whatever order the writes land.
    let before = store.meter().snapshot();
    let spread: Vec<_> = (0..100u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let at = t.plus(Duration::from_millis(i * 30));
                store.take("key-spread", &three(60), 1, at).await.unwrap()
            })
        })
        .collect();
    let answers: Vec<_> = futures::future::join_all(spread)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(answers.iter().filter(|a| a.is_none()).count(), 60);
    let after = store.meter().snapshot();
    eprintln!(
        "100 takers over 3 s: {} writes, {} refused",
        after.requests_of("take") - before.requests_of("take"),
        after.failed_of("take") - before.failed_of("take")
    );
    // Another window of the scope is independent; the window slides.
    let list = [(
        BudgetKind::SsembleList,
        Window::new(6, Duration::from_secs(60)),
    )];
    assert_eq!(store.take("key-full", &list, 1, t).await.unwrap(), None);
    let later = t.plus(Duration::from_secs(61));
    assert_eq!(
        store.take("key-full", &three(60), 1, later).await.unwrap(),
        None
    );
}

/// A budget kept in the earlier layout (one item per window, a `log` of take instants) is
/// counted when the window is first taken in the new one, and the tally item keeps only the
/// buckets still inside its window.
#[tokio::test]
async fn a_budget_in_the_earlier_layout_is_counted_and_the_tally_stays_bounded() {
    let sdk = sdk().await;
    let store = job_store().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let t = now();
    let log: Vec<_> = (0..6)
        .map(|i| {
            aws_sdk_dynamodb::types::AttributeValue::N(
                t.minus(Duration::from_secs(30 - i)).as_millis().to_string(),
            )
        })
        .collect();
    client
        .put_item()
        .table_name(store.table())
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("BUDGET#legacy".into()),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("tiktok_init".into()),
        )
        .item(
            "t",
            aws_sdk_dynamodb::types::AttributeValue::S("budget".into()),
        )
        .item("log", aws_sdk_dynamodb::types::AttributeValue::L(log))
        .item(
            "ver",
            aws_sdk_dynamodb::types::AttributeValue::N("6".into()),
        )
        .send()
        .await
        .unwrap();
    let init = [(
        BudgetKind::TikTokInit,
        Window::new(6, Duration::from_secs(60)),
    )];
    let Some(denied) = store.take("legacy", &init, 1, t).await.unwrap() else {
        panic!("six earlier takes were forgotten")
    };
    assert!(denied.retry_at >= t.plus(Duration::from_secs(30)));
    assert_eq!(
        store
            .take("legacy", &init, 1, denied.retry_at)
            .await
            .unwrap(),
        None
    );

    // Takes spread over three minutes: the item holds only the last minute's buckets.
    let scope = "bounded";
    for i in 0..36u64 {
        let at = t.plus(Duration::from_secs(i * 5));
        let _ = store.take(scope, &init, 1, at).await.unwrap();
    }
    let item = client
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("BUDGET#{scope}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("tally".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let slots: Vec<_> = item
        .keys()
        .filter(|k| {
            k.starts_with("ti") && k[2..].chars().all(|c| c.is_ascii_digit()) && k.len() > 2
        })
        .collect();
    // One take every 5 s, six a minute at most: at most 12 buckets of the last minute.
    assert!(!slots.is_empty() && slots.len() <= 13, "{slots:?}");
}

#[tokio::test]
async fn locks_expire_for_dead_holders_and_only_their_owner_releases_them() {
    let accounts = job_store().await;
    let t = now();
    let secs = |s: u64| t.plus(Duration::from_secs(s));
    assert!(
        accounts
            .acquire_lock("refresh#a", "A", t, secs(10))
            .await
            .unwrap()
    );
    assert!(
        !accounts
            .acquire_lock("refresh#a", "B", secs(1), secs(11))
            .await
            .unwrap()
    );
    assert!(
        accounts
            .acquire_lock("refresh#a", "A", secs(2), secs(12))
            .await
            .unwrap(),
        "owner renews"
    );
    accounts.release_lock("refresh#a", "B").await.unwrap();
    assert!(
        !accounts
            .acquire_lock("refresh#a", "C", secs(3), secs(13))
            .await
            .unwrap(),
        "B could not release A's lock"
    );
    // A dies; its lease passes.
    assert!(
        accounts
            .acquire_lock("refresh#a", "B", secs(13), secs(23))
            .await
            .unwrap()
    );
    accounts.release_lock("refresh#a", "A").await.unwrap();
    assert!(
        !accounts
            .acquire_lock("refresh#a", "C", secs(14), secs(24))
            .await
            .unwrap(),
        "A's late release is a no-op"
    );
    accounts.release_lock("refresh#a", "B").await.unwrap();
    assert!(
        accounts
            .acquire_lock("refresh#a", "C", secs(15), secs(25))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_lease_taken_as_a_single_use_token_is_consumed_once_and_never_after_expiry() {
    let accounts = job_store().await;
    let t = now();
    let secs = |s: u64| t.plus(Duration::from_secs(s));
    assert!(
        accounts
            .acquire_lock("oauth#s1", "tenant_a:acct_1", t, secs(600))
            .await
            .unwrap()
    );
    assert_eq!(
        accounts
            .take_lock("oauth#s1", secs(1))
            .await
            .unwrap()
            .as_deref(),
        Some("tenant_a:acct_1")
    );
    assert_eq!(
        accounts.take_lock("oauth#s1", secs(2)).await.unwrap(),
        None,
        "single use"
    );
    assert_eq!(
        accounts.take_lock("oauth#never", secs(2)).await.unwrap(),
        None,
        "forged"
    );
    assert!(
        accounts
            .acquire_lock("oauth#s2", "tenant_a:acct_1", t, secs(10))
            .await
            .unwrap()
    );
    assert_eq!(
        accounts.take_lock("oauth#s2", secs(11)).await.unwrap(),
        None,
        "expired"
    );
}

#[tokio::test]
async fn accounts_keep_their_version_health_and_blocks() {
    let accounts = job_store().await;
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    assert_eq!(accounts.get_account(&t, &a).await.unwrap(), None);
    let mut acct = Account::new(t.clone(), a.clone());
    acct.health = AccountHealth::Active;
    acct.health_reason = None;
    acct.scopes = vec!["video.publish".into()];
    accounts.put_account(&acct).await.unwrap();
    assert!(
        matches!(accounts.put_account(&acct).await, Err(StoreError::Conflict)),
        "version 0 twice"
    );
    let stored = accounts.get_account(&t, &a).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.scopes, acct.scopes);
    assert!(stored.can_publish(now()));

    let until = now().plus(Duration::from_secs(60));
    accounts
        .block_until(&t, &a, until, "rate_limit_exceeded")
        .await
        .unwrap();
    accounts
        .block_until(&t, &a, until.minus(Duration::from_secs(30)), "shorter")
        .await
        .unwrap();
    let blocked = accounts.get_account(&t, &a).await.unwrap().unwrap();
    assert_eq!(
        blocked.blocked_until,
        Some(until),
        "a block is only ever extended"
    );
    assert!(!blocked.can_publish(now()));

    accounts
        .set_health(
            &t,
            &a,
            AccountHealth::NeedsReauth,
            Some("refresh_token_rejected"),
        )
        .await
        .unwrap();
    let sick = accounts.get_account(&t, &a).await.unwrap().unwrap();
    assert_eq!(sick.health, AccountHealth::NeedsReauth);
    assert_eq!(
        sick.health_reason.as_deref(),
        Some("refresh_token_rejected")
    );
    assert!(sick.version > stored.version);
    assert!(
        matches!(
            accounts.put_account(&stored).await,
            Err(StoreError::Conflict)
        ),
        "stale version"
    );
    assert!(matches!(
        accounts
            .set_health(&t, &account("nobody"), AccountHealth::Active, None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        accounts
            .block_until(&t, &account("nobody"), until, "x")
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn tenant_keys_live_as_the_contract_says_and_are_stored_only_as_hashes() {
    let sdk = sdk().await;
    let table = common::table(&sdk).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoStore::new(client.clone(), &table);
    reelay_testkit::contract::tenant_lifecycle(&store, &reelay_aws::SystemClock).await;
    reelay_testkit::contract::accounts_listing(&store).await;

    let key = reelay_domain::usecase::tenants::issue_key(
        &store,
        &reelay_aws::SystemClock,
        &tenant("acme"),
        reelay_domain::UtcTime::from_secs(1_900_000_000),
    )
    .await
    .unwrap();
    let scan = client.scan().table_name(&table).send().await.unwrap();
    let dump = format!("{:?}", scan.items());
    assert!(dump.contains(&key.record.hash));
    assert!(
        !dump.contains(key.key.expose_secret()),
        "the raw key is nowhere in the table"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_claims_the_attempt_and_a_dead_ones_lease_surfaces_as_due() {
    let store = Arc::new(job_store().await);
    let policy = common::lifecycle::policy();
    let start = now();
    let created = new_job(&tenant("tenant_a"), &account("acct_1"), start, None);
    store.create(&created, None).await.unwrap();
    // Up to publish_queued through the normal path.
    let mut job = created.job.clone();
    for (i, event) in common::lifecycle::events().into_iter().take(4).enumerate() {
        let at = start.plus(Duration::from_secs(10 * (i as u64 + 1)));
        let Step::Applied(applied) = job.apply(&event, at, &policy).unwrap() else {
            panic!()
        };
        store.save(&applied, job.version).await.unwrap();
        job = applied.job;
    }
    assert_eq!(job.state, JobState::PublishQueued);

    // Two consumers (a redelivery and a re-enqueue) race to record the attempt.
    let claim_at = start.plus(Duration::from_secs(60));
    let claims: Vec<_> = (0..2)
        .map(|_| {
            let (store, job) = (store.clone(), job.clone());
            tokio::spawn(async move {
                let Step::Applied(a) = job
                    .apply(
                        &Event::PublishStarted,
                        claim_at,
                        &common::lifecycle::policy(),
                    )
                    .unwrap()
                else {
                    panic!()
                };
                store.save(&a, job.version).await.map(|()| a)
            })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(claims)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "one attempt, one TikTok init");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(StoreError::Conflict)))
    );
    let claimed = winners[0].job.clone();
    assert_eq!(claimed.attempt, 1);

    // The winner dies mid-call: nothing is due until its lease passes, then the reconciler sees it.
    let lease_end = claim_at.plus(policy.publish_lease);
    assert!(
        store
            .due(lease_end.minus(Duration::from_millis(1)), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.due(lease_end, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].job_id.clone(), due[0].kind),
        (claimed.id.clone(), reelay_domain::CheckKind::LeaseExpiry)
    );
    let current = store.get(&claimed.id).await.unwrap().unwrap();
    let Step::Applied(expired) = current
        .apply(&Event::LeaseExpired, lease_end, &policy)
        .unwrap()
    else {
        panic!()
    };
    store.save(&expired, current.version).await.unwrap();
    let parked = store.get(&claimed.id).await.unwrap().unwrap();
    assert_eq!(
        parked.state,
        JobState::PublishUnknown,
        "never re-posted blindly"
    );
    let resolve = parked.next_check.unwrap();
    assert_eq!(resolve.kind, reelay_domain::CheckKind::UnknownResolve);
    let next = store.due(resolve.at, 10).await.unwrap();
    assert_eq!(
        (next[0].job_id.clone(), next[0].kind),
        (claimed.id.clone(), reelay_domain::CheckKind::UnknownResolve)
    );
}

#[tokio::test]
async fn jobs_fanned_out_from_one_render_are_found_by_its_request_id() {
    let store = job_store().await;
    let t = now();
    let request_id = RequestId::parse("aaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
    let mut ids = Vec::new();
    for acct in ["acct_1", "acct_2", "acct_3"] {
        let applied = reelay_domain::Job::create(
            reelay_domain::JobId::generate(t, common::rand_u128()),
            tenant("tenant_a"),
            account(acct),
            reelay_domain::JobSource::Rendered {
                request_id: request_id.clone(),
            },
            common::post(),
            t,
            None,
            t,
            &common::lifecycle::policy(),
        );
        assert_eq!(applied.job.state, JobState::Rendering);
        store.create(&applied, None).await.unwrap();
        ids.push(applied.job.id);
    }
    let mut found = store.jobs_for_request(&request_id).await.unwrap();
    found.sort();
    ids.sort();
    assert_eq!(found, ids);
    let other = RequestId::parse("bbbbbbbbbbbbbbbbbbbbbbbb").unwrap();
    assert!(store.jobs_for_request(&other).await.unwrap().is_empty());
}

/// Offers `event` to `job` and stores the transition; returns the stored job.
async fn advance(
    store: &DynamoStore,
    job: &reelay_domain::Job,
    event: Event,
    at: UtcTime,
) -> reelay_domain::Job {
    let Step::Applied(applied) = job.apply(&event, at, &common::lifecycle::policy()).unwrap()
    else {
        panic!("{} did not move the job in {}", event.name(), job.state)
    };
    store.save(&applied, job.version).await.unwrap();
    applied.job
}

#[tokio::test]
async fn a_reschedule_keeps_the_version_writes_no_audit_item_and_moves_the_due_index() {
    let store = job_store().await;
    let t = now();
    let created = new_job(&tenant("tenant_a"), &account("acct_1"), t, None);
    store.create(&created, None).await.unwrap();
    let job = created.job.clone();
    let first = job.next_check.unwrap();

    let later = t.plus(Duration::from_secs(300));
    let Step::Rescheduled(next) = job
        .apply(
            &Event::Deferred { until: later },
            t,
            &common::lifecycle::policy(),
        )
        .unwrap()
    else {
        panic!("a deferral only moves the next check")
    };
    assert_eq!(next.job.version, job.version);
    let before = store.meter().snapshot();
    store.reschedule(&next.job).await.unwrap();
    let after = store.meter().snapshot();
    assert_eq!(after.requests() - before.requests(), 1, "one write");
    assert_eq!(
        after.requests_of("reschedule") - before.requests_of("reschedule"),
        1
    );

    let stored = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(stored, next.job, "the job as rescheduled");
    assert_eq!((stored.version, stored.state), (job.version, job.state));
    assert_eq!(
        stored.next_check,
        Some(NextCheck {
            at: later,
            kind: first.kind
        })
    );
    let events = trail(&store, &job.id).await;
    assert_eq!(
        events.len(),
        1,
        "only `created`: a reschedule is not audited"
    );
    assert_eq!(events[0].event, "created");

    // The due index follows: no longer due at the old check, due at the new one.
    let mine = |due: Vec<reelay_domain::ports::DueJob>| {
        due.into_iter()
            .filter(|d| d.job_id == job.id)
            .collect::<Vec<_>>()
    };
    assert!(
        mine(
            store
                .due(later.minus(Duration::from_millis(1)), 100)
                .await
                .unwrap()
        )
        .is_empty()
    );
    let due = mine(store.due(later, 100).await.unwrap());
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].at, due[0].kind), (later, first.kind));

    // A hold written by a reschedule is stored too, and a reschedule to no check leaves the index.
    let mut held = stored.clone();
    held.hold = Some(Hold {
        reason: "account_blocked".into(),
        until: Some(later),
        since: Some(t),
    });
    held.next_check = None;
    store.reschedule(&held).await.unwrap();
    let stored = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(stored.hold, held.hold);
    assert_eq!(stored.version, job.version);
    let far = t.plus(Duration::from_secs(365 * 86_400));
    assert!(mine(store.due(far, 100).await.unwrap()).is_empty());
    assert_eq!(trail(&store, &job.id).await.len(), 1);
}

#[tokio::test]
async fn a_reschedule_of_a_job_that_moved_meanwhile_is_a_conflict_and_changes_nothing() {
    let store = job_store().await;
    let t = now();
    let created = new_job(&tenant("tenant_a"), &account("acct_1"), t, None);
    store.create(&created, None).await.unwrap();
    let read = created.job.clone();

    // Someone moves the job (version 2) after we read version 1.
    let moved = advance(
        &store,
        &read,
        Event::Held {
            reason: "r".into(),
            until: None,
        },
        t,
    )
    .await;
    let Step::Rescheduled(stale) = read
        .apply(
            &Event::Deferred {
                until: t.plus(Duration::from_secs(600)),
            },
            t,
            &common::lifecycle::policy(),
        )
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        store.reschedule(&stale.job).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get(&read.id).await.unwrap().unwrap(), moved);

    // Same version, another state (a forged or corrupted caller): refused as well.
    let mut other_state = moved.clone();
    other_state.state = JobState::Rendering;
    assert!(matches!(
        store.reschedule(&other_state).await,
        Err(StoreError::Conflict)
    ));
    // A job that does not exist is never created by a reschedule.
    let ghost = new_job(&tenant("tenant_a"), &account("acct_1"), t, None).job;
    assert!(matches!(
        store.reschedule(&ghost).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get(&ghost.id).await.unwrap(), None);
    assert_eq!(store.get(&read.id).await.unwrap().unwrap(), moved);
}

#[tokio::test]
async fn save_writes_exactly_the_pointers_it_is_given_and_every_attempts_publish_id_finds_the_job()
{
    let store = job_store().await;
    let t = now();
    let created = new_job(&tenant("tenant_a"), &account("acct_1"), t, None);
    store.create(&created, None).await.unwrap();
    let job = created.job.clone();

    // Every pointer it is given, in the same write.
    let (p1, p2) = (
        PublishId::parse("v_pub_url~v2.1").unwrap(),
        PublishId::parse("v_pub_url~v2.2").unwrap(),
    );
    let Step::Applied(mut named) = job
        .apply(
            &Event::Held {
                reason: "x".into(),
                until: None,
            },
            t,
            &common::lifecycle::policy(),
        )
        .unwrap()
    else {
        panic!()
    };
    assert!(named.pointers.is_empty());
    named.pointers = vec![
        Pointer::Publish(p1.clone()),
        Pointer::Publish(p2.clone()),
        Pointer::Request(common::lifecycle::request_id()),
    ];
    store.save(&named, job.version).await.unwrap();
    for p in [&p1, &p2] {
        assert_eq!(
            store.job_for_publish(p).await.unwrap(),
            Some(job.id.clone())
        );
    }
    assert_eq!(
        store
            .jobs_for_request(&common::lifecycle::request_id())
            .await
            .unwrap(),
        vec![job.id.clone()]
    );

    // A transition naming no pointer writes none, whatever the job carries.
    let job = named.job;
    let other_request = RequestId::parse("cccccccccccccccccccccccc").unwrap();
    let Step::Applied(mut silent) = job
        .apply(
            &Event::RenderSubmitted {
                request_id: other_request.clone(),
                found: false,
            },
            t,
            &common::lifecycle::policy(),
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        silent.pointers,
        vec![Pointer::Request(other_request.clone())]
    );
    silent.pointers.clear();
    store.save(&silent, job.version).await.unwrap();
    assert_eq!(
        store.get(&job.id).await.unwrap().unwrap().request_id,
        Some(other_request.clone())
    );
    assert!(
        store
            .jobs_for_request(&other_request)
            .await
            .unwrap()
            .is_empty(),
        "the adapter infers nothing"
    );

    // A publish_id belongs to one job forever: another job naming it is refused as a fault, not
    // reported as a race to retry, and nothing of that write lands.
    let other = new_job(&tenant("tenant_a"), &account("acct_2"), t, None);
    store.create(&other, None).await.unwrap();
    let Step::Applied(mut stolen) = other
        .job
        .apply(
            &Event::Held {
                reason: "x".into(),
                until: None,
            },
            t,
            &common::lifecycle::policy(),
        )
        .unwrap()
    else {
        panic!()
    };
    stolen.pointers = vec![Pointer::Publish(p1.clone())];
    let err = store.save(&stolen, other.job.version).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "got {err:?}");
    assert_eq!(
        store.job_for_publish(&p1).await.unwrap(),
        Some(job.id.clone())
    );
    assert_eq!(
        store.get(&other.job.id).await.unwrap().unwrap().version,
        other.job.version
    );
}

#[tokio::test]
async fn a_late_acceptance_of_another_attempt_keeps_both_publish_ids_pointing_at_the_job() {
    let store = job_store().await;
    let start = now();
    let created = new_job(&tenant("tenant_a"), &account("acct_1"), start, None);
    store.create(&created, None).await.unwrap();
    let mut job = created.job.clone();
    // Up to the first accepted attempt (publish_processing).
    for (i, event) in common::lifecycle::events().into_iter().take(6).enumerate() {
        let at = start.plus(Duration::from_secs(10 * (i as u64 + 1)));
        job = advance(&store, &job, event, at).await;
    }
    assert_eq!(job.state, JobState::PublishProcessing);
    let first = common::lifecycle::publish_id();
    // TikTok reports a second publish for the same attempt (a duplicate init that landed).
    let second = PublishId::parse("v_pub_file~v2.987654321").unwrap();
    let at = start.plus(Duration::from_secs(100));
    let Step::Applied(stale) = job
        .apply(
            &Event::PublishAccepted {
                attempt: job.attempt,
                publish_id: second.clone(),
                upload: true,
                upstream_log_id: None,
            },
            at,
            &common::lifecycle::policy(),
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(stale.pointers, vec![Pointer::Publish(second.clone())]);
    store.save(&stale, job.version).await.unwrap();
    for p in [&first, &second] {
        assert_eq!(
            store.job_for_publish(p).await.unwrap(),
            Some(job.id.clone())
        );
    }
    let stored = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(
        stored.publish_id,
        Some(first),
        "the current attempt is unchanged"
    );
    assert_eq!(stored.publish_ids.len(), 2);
}

#[tokio::test]
async fn the_audit_trail_pages_oldest_first_and_says_when_it_ends() {
    let store = job_store().await;
    let start = now();
    let created = new_job(&tenant("tenant_a"), &account("acct_1"), start, None);
    store.create(&created, None).await.unwrap();
    let id = created.job.id.clone();
    common::lifecycle::drive(&store, created.job.clone(), start, async |_| {}).await;

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.audit_page(&id, after, 4).await.unwrap();
        pages.push((
            page.events.iter().map(|e| e.version).collect::<Vec<_>>(),
            page.next_after,
        ));
        match page.next_after {
            Some(v) => after = Some(v),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![
            (vec![1, 2, 3, 4], Some(4)),
            (vec![5, 6, 7, 8], Some(8)),
            (vec![9, 10, 11], None),
        ]
    );
    let whole = store.audit_page(&id, None, 11).await.unwrap();
    assert_eq!(whole.events.len(), 11);
    assert_eq!(
        whole.next_after, None,
        "exactly the last event: no further page"
    );
    assert_eq!(whole.events[0].event, "created");
    assert_eq!(whole.events[10].to, JobState::PubliclyAvailable);
    let tail = store.audit_page(&id, Some(9), 100).await.unwrap();
    assert_eq!(
        tail.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![10, 11]
    );
    let past = store.audit_page(&id, Some(11), 10).await.unwrap();
    assert!(past.events.is_empty() && past.next_after.is_none());
    let unknown = new_job(&tenant("tenant_a"), &account("acct_1"), start, None)
        .job
        .id;
    let none = store.audit_page(&unknown, None, 10).await.unwrap();
    assert!(none.events.is_empty() && none.next_after.is_none());
}

#[tokio::test]
async fn every_job_field_round_trips_through_the_stored_document() {
    let store = job_store().await;
    let t = now();
    let mut created = new_job(&tenant("tenant_a"), &account("acct_1"), t, None);
    let job = &mut created.job;
    job.delayed_attempts = 2;
    job.render_attempts = 4;
    job.render_rejections = 3;
    job.render_delays = 1;
    job.render_lease_until = Some(t.plus(Duration::from_secs(90)));
    job.retried_attempts = 5;
    job.publish_ids = vec![
        PublishId::parse("v_pub_url~v2.1").unwrap(),
        PublishId::parse("v_pub_url~v2.2").unwrap(),
    ];
    job.publish_id = Some(PublishId::parse("v_pub_url~v2.2").unwrap());
    job.stale_observations = 6;
    job.webhook_token_hashes = vec!["ab".repeat(32), "cd".repeat(32)];
    job.post_ids = vec!["7300000000000000001".into()];
    job.hold = Some(Hold {
        reason: "account_blocked".into(),
        until: Some(t.plus(Duration::from_secs(60))),
        since: Some(t),
    });
    job.next_check = Some(NextCheck {
        at: t.plus(Duration::from_secs(60)),
        kind: CheckKind::SubmitRender,
    });
    job.last_error = Some(reelay_domain::JobError {
        code: "rate_limit_exceeded".into(),
        message: "slow down".into(),
        upstream_log_id: Some("log-9".into()),
    });
    store.create(&created, None).await.unwrap();
    assert_eq!(
        store.get(&created.job.id).await.unwrap().unwrap(),
        created.job
    );
}

#[tokio::test]
async fn the_open_id_lookup_is_one_get_and_one_creator_is_one_account() {
    let store = job_store().await;
    let (t, a1) = (tenant("tenant_a"), account("acct_1"));
    let mut acct = Account::new(t.clone(), a1.clone());
    acct.health = AccountHealth::Active;
    acct.open_id = Some("open-1".into());
    store.put_account(&acct).await.unwrap();

    let before = store.meter().snapshot();
    assert_eq!(
        store.account_for_open_id("open-1").await.unwrap(),
        Some((t.clone(), a1.clone()))
    );
    let after = store.meter().snapshot();
    assert_eq!(
        after.requests() - before.requests(),
        1,
        "one GetItem, no scan"
    );
    assert_eq!(
        store.account_for_open_id("open-unknown").await.unwrap(),
        None
    );
    assert_eq!(store.account_for_open_id("").await.unwrap(), None);

    // The rest of the lookup's contract, as every store holds it.
    reelay_testkit::contract::one_creator_one_account(&store).await;
}

#[tokio::test]
async fn webhook_endpoints_and_their_delivery_log_hold_the_contract() {
    let store = job_store().await;
    reelay_testkit::contract::webhooks(&store).await;
}

#[tokio::test]
async fn peek_answers_what_take_would_and_writes_nothing() {
    let store = job_store().await;
    let windows = [(
        BudgetKind::TikTokInit,
        Window::new(3, Duration::from_secs(60)),
    )];
    let t = now();
    for i in 0..5u64 {
        let at = t.plus(Duration::from_millis(i * 10));
        let before = store.meter().snapshot();
        let peeked = store.peek("acct", &windows, at).await.unwrap();
        let after = store.meter().snapshot();
        assert_eq!(after.requests() - before.requests(), 1, "one read");
        assert_eq!(
            after.requests_of("take"),
            before.requests_of("take"),
            "no write"
        );
        assert_eq!(
            peeked,
            store.peek("acct", &windows, at).await.unwrap(),
            "peeking takes nothing"
        );
        let taken = store.take("acct", &windows, 1, at).await.unwrap();
        let as_peek = match taken {
            None => peeked[0],
            Some(d) => Admission::Denied {
                retry_at: d.retry_at,
            },
        };
        assert_eq!(peeked, vec![as_peek], "take {i}");
    }
    let snap = store.meter().snapshot();
    assert_eq!(snap.requests_of("take"), 3, "only the granted takes wrote");
    assert_eq!(snap.failed_of("take"), 0, "a refusal is read, not written");
    // The whole contract, as the in-memory store holds it.
    reelay_testkit::contract::budgets(&store).await;
}

/// The job document is stored deflated (`docz`, binary): a job item written as JSON text (`doc`,
/// before the change) is still read and moves on, its next write deflates it, and a document
/// that does not inflate is reported corrupt, never read as some other job.
#[tokio::test]
async fn job_documents_are_stored_deflated_and_items_written_as_text_are_still_read() {
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;
    let sdk = sdk().await;
    let table = common::table(&sdk).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoStore::new(client.clone(), table.clone());
    let raw = async |id: &reelay_domain::JobId| {
        client
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(format!("JOB#{id}")))
            .key("sk", AttributeValue::S("JOB".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap()
    };
    let put_raw = async |item| {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    };
    let t = now();
    let created = new_job(&tenant("tenant_a"), &account("acct_1"), t, None);
    store.create(&created, None).await.unwrap();
    let id = created.job.id.clone();
    let item = raw(&id).await;
    assert!(matches!(item.get("docz"), Some(AttributeValue::B(_))));
    assert!(!item.contains_key("doc"), "no second copy as text");
    assert_eq!(store.get(&id).await.unwrap().unwrap(), created.job);

    // The same job as an item of the earlier layout.
    let mut old = item.clone();
    old.remove("docz");
    old.insert(
        "doc".into(),
        AttributeValue::S(serde_json::to_string(&created.job).unwrap()),
    );
    put_raw(old).await;
    assert_eq!(store.get(&id).await.unwrap().unwrap(), created.job);
    let first = common::lifecycle::events().remove(0);
    let moved = advance(&store, &created.job, first, t.plus(Duration::from_secs(1))).await;
    assert_eq!(store.get(&id).await.unwrap().unwrap(), moved);
    let item = raw(&id).await;
    assert!(matches!(item.get("docz"), Some(AttributeValue::B(_))));
    assert!(
        !item.contains_key("doc"),
        "the transition wrote the new layout"
    );

    // Bytes that are not a deflated job.
    let mut broken = item;
    broken.insert(
        "docz".into(),
        AttributeValue::B(Blob::new(b"not deflate".to_vec())),
    );
    put_raw(broken).await;
    assert!(matches!(store.get(&id).await, Err(StoreError::Corrupt(_))));
}
