//! Webhooks out, through the in-memory adapters: who gets which event, how an attempt is signed,
//! retried, deferred past the queue's longest delay, given up and replayed, and that one tenant
//! never reaches another's endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reelay_domain::account::AccountHealth;
use reelay_domain::ports::PostResult;
use reelay_domain::usecase::{
    Attempted, Command, EndpointRequest, Outbound, OutboundError, OutboundSettings,
};
use reelay_domain::webhooks::{EventType, RetrySchedule};
use reelay_testkit::{
    JobSetup, ManualClock, MemDeliveries, MemStore, ScriptedReceiver, World, account_id, block_on,
    tenant_id,
};
use secrecy::ExposeSecret;

type Hooks = Outbound<MemStore, MemDeliveries, ManualClock>;

fn outbound(world: &World) -> (Hooks, MemDeliveries) {
    let queue = MemDeliveries::new(world.clock.clone());
    let hooks = Outbound {
        store: world.store.clone(),
        queue: queue.clone(),
        clock: world.clock.clone(),
        settings: OutboundSettings::default(),
    };
    (hooks, queue)
}

fn request(url: &str, events: &[&str]) -> EndpointRequest {
    EndpointRequest {
        url: url.into(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        description: None,
    }
}

fn world() -> World {
    World::new()
        .tenant("t1")
        .tenant("t2")
        .account("t1", "acct_a")
        .account("t2", "acct_b")
}

#[test]
fn a_registration_is_checked_and_its_secret_is_a_standard_webhooks_secret() {
    let w = world();
    let (hooks, _) = outbound(&w);
    let t1 = tenant_id("t1");
    for (bad, field) in [
        (request("http://hooks.example.com/x", &[]), "url"),
        (request("https://10.0.0.7/x", &[]), "url"),
        (request("https://169.254.169.254/", &[]), "url"),
        (
            request("https://hooks.example.com/x", &["job.nope"]),
            "events",
        ),
    ] {
        match block_on(hooks.register(&t1, bad)) {
            Err(OutboundError::Invalid(fields)) => assert_eq!(fields[0].field, field),
            other => panic!("expected Invalid({field}), got {other:?}"),
        }
    }
    assert!(
        block_on(hooks.list(&t1)).unwrap().is_empty(),
        "nothing stored"
    );
    let e = block_on(hooks.register(
        &t1,
        request(
            "https://hooks.example.com/x",
            &["job.published", "job.published"],
        ),
    ))
    .unwrap();
    assert!(e.secret.expose_secret().starts_with("whsec_"));
    assert_eq!(e.events, vec![EventType::JobPublished]);
    assert!(standardwebhooks::Webhook::new(e.secret.expose_secret()).is_ok());
    // Another tenant neither sees nor removes it.
    let t2 = tenant_id("t2");
    assert!(block_on(hooks.list(&t2)).unwrap().is_empty());
    assert!(matches!(
        block_on(hooks.remove(&t2, e.id.as_str())),
        Err(OutboundError::NotFound(_))
    ));
    assert!(matches!(
        block_on(hooks.deliveries(&t2, e.id.as_str(), None, 10)),
        Err(OutboundError::NotFound(_))
    ));
    assert!(matches!(
        block_on(hooks.replay(&t2, e.id.as_str(), w.clock.now(), false)),
        Err(OutboundError::NotFound(_))
    ));
    block_on(hooks.remove(&t1, e.id.as_str())).unwrap();
    assert!(block_on(hooks.list(&t1)).unwrap().is_empty());
}

#[test]
fn a_transition_reaches_only_its_tenants_endpoints_that_want_it() {
    let w = world();
    let (hooks, queue) = outbound(&w);
    let (t1, t2) = (tenant_id("t1"), tenant_id("t2"));
    let all = block_on(hooks.register(&t1, request("https://a.example.com/", &[]))).unwrap();
    let published_only =
        block_on(hooks.register(&t1, request("https://b.example.com/", &["job.published"])))
            .unwrap();
    let other_tenant =
        block_on(hooks.register(&t2, request("https://c.example.com/", &[]))).unwrap();

    let job = w.job(JobSetup::render("t1", "acct_a"));
    // The creation is the create's answer: no event.
    let created = w.store.audit_trail(&job.id);
    assert_eq!(
        block_on(hooks.dispatch_transition(&w.store, &job.id, None, &created[0])).unwrap(),
        0
    );

    block_on(w.core().command(&t1, &job.id, Command::Cancel)).unwrap();
    let trail = w.store.audit_trail(&job.id);
    let cancel = trail.last().unwrap();
    assert_eq!(
        block_on(hooks.dispatch_transition(&w.store, &job.id, None, cancel)).unwrap(),
        1
    );
    let sent = queue.take_visible();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].endpoint_id, all.id);
    assert_eq!(sent[0].event.event_type, EventType::JobStateChanged);
    assert_eq!(sent[0].event.data["state"], "cancelled");
    assert_eq!(sent[0].event.data["previousState"], "received");
    assert_eq!(sent[0].event.data["jobId"], job.id.as_str());
    assert!(sent.iter().all(|d| d.endpoint_id != published_only.id));
    assert!(sent.iter().all(|d| d.endpoint_id != other_tenant.id));

    // The same stored transition seen twice (a stream redelivery) makes the same event id.
    block_on(hooks.dispatch_transition(&w.store, &job.id, None, cancel)).unwrap();
    assert_eq!(queue.take_visible()[0].event.id, sent[0].event.id);

    // An account going to needs_reauth tells t1's endpoints that want it; active tells nobody.
    let a = account_id("acct_a");
    let n = block_on(hooks.dispatch_account_change(
        &t1,
        &a,
        Some(AccountHealth::Active),
        AccountHealth::NeedsReauth,
        Some("access_token_invalid"),
        3,
    ))
    .unwrap();
    assert_eq!(n, 1);
    let sent = queue.take_visible();
    assert_eq!(sent[0].event.event_type, EventType::AccountNeedsReauth);
    assert_eq!(sent[0].event.data["reason"], "access_token_invalid");
    let none = block_on(hooks.dispatch_account_change(
        &t1,
        &a,
        Some(AccountHealth::NeedsReauth),
        AccountHealth::Active,
        None,
        4,
    ))
    .unwrap();
    assert_eq!(none, 0);
}

/// Delivers whatever is visible now, as the queue's consumer does.
fn pump(hooks: &Hooks, queue: &MemDeliveries, receiver: &ScriptedReceiver) -> Vec<Attempted> {
    queue
        .take_visible()
        .iter()
        .map(|d| block_on(hooks.deliver(receiver, d)).unwrap())
        .collect()
}

#[test]
fn a_failed_attempt_is_retried_on_the_schedule_across_queue_hops_then_dead_lettered_and_replayed() {
    let w = world();
    let (hooks, queue) = outbound(&w);
    let t1 = tenant_id("t1");
    let e = block_on(hooks.register(&t1, request("https://hooks.example.com/r", &[]))).unwrap();
    let job = w.job(JobSetup::render("t1", "acct_a"));
    block_on(w.core().command(&t1, &job.id, Command::Cancel)).unwrap();
    let cancel = w.store.audit_trail(&job.id).pop().unwrap();
    block_on(hooks.dispatch_transition(&w.store, &job.id, None, &cancel)).unwrap();

    // Every attempt fails: 500, a timeout, then 500s.
    let receiver = ScriptedReceiver::answering(
        std::iter::once(PostResult::Answered(500))
            .chain(std::iter::once(PostResult::Failed("timeout".into())))
            .chain(std::iter::repeat_n(PostResult::Answered(503), 10)),
    );
    let start = w.clock.now();
    let schedule = RetrySchedule::default();
    let mut attempts = 0;
    let mut hops = 0;
    loop {
        let done = pump(&hooks, &queue, &receiver);
        for a in &done {
            match a {
                Attempted::Retrying { .. } => attempts += 1,
                Attempted::Deferred => hops += 1,
                Attempted::Dead => attempts += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        if done.contains(&Attempted::Dead) {
            break;
        }
        // No delay the queue is asked for exceeds its maximum.
        assert!(
            queue
                .pending()
                .iter()
                .all(|p| p.delay <= Duration::from_secs(900))
        );
        let next = queue
            .pending()
            .iter()
            .map(|p| p.visible_at)
            .min()
            .expect("a next attempt");
        w.clock.advance_to(next);
    }
    assert_eq!(attempts, schedule.attempts());
    assert!(hops > 40, "waits of up to 10 h ride 15-minute hops: {hops}");
    let elapsed = w.clock.now().since(start);
    assert!(elapsed >= schedule.total(), "{elapsed:?}");
    assert!(elapsed >= Duration::from_secs(24 * 3_600));
    assert_eq!(queue.dead().len(), 1);

    // Every attempt carried the same id, a fresh timestamp, and a signature the reference
    // implementation accepts for exactly that body.
    let got = receiver.received();
    assert_eq!(got.len(), 8);
    let secret = block_on(hooks.list(&t1)).unwrap()[0].secret.clone();
    let hook = standardwebhooks::Webhook::new(secret.expose_secret()).unwrap();
    for r in &got {
        assert_eq!(r.headers.id, got[0].headers.id);
        let expected = hook
            .sign(&r.headers.id, r.headers.timestamp, &r.body)
            .unwrap();
        assert_eq!(r.headers.signature, expected);
        assert_eq!(r.url, "https://hooks.example.com/r");
    }
    assert!(got[7].headers.timestamp > got[0].headers.timestamp + 86_400);

    // The log holds each attempt, newest first, the last one dead.
    let log = block_on(hooks.deliveries(&t1, e.id.as_str(), None, 100)).unwrap();
    assert_eq!(log.records.len(), 8);
    assert!(log.records[0].dead);
    assert_eq!(log.records[0].attempt, 8);
    assert_eq!(log.records[7].status, Some(500));
    assert_eq!(log.records[6].error.as_deref(), Some("timeout"));
    // Paging gives the same records.
    let first = block_on(hooks.deliveries(&t1, e.id.as_str(), None, 3)).unwrap();
    let second =
        block_on(hooks.deliveries(&t1, e.id.as_str(), first.next_cursor.as_deref(), 100)).unwrap();
    assert_eq!(first.records.len() + second.records.len(), 8);
    assert_eq!(second.records[0], log.records[3]);
    assert!(matches!(
        block_on(hooks.deliveries(&t1, e.id.as_str(), Some("garbage"), 10)),
        Err(OutboundError::Invalid(_))
    ));

    // A replay sends the failed event once more, now answered 200.
    w.clock.advance(Duration::from_secs(60));
    let receiver = ScriptedReceiver::default();
    let n = block_on(hooks.replay(&t1, e.id.as_str(), start, true)).unwrap();
    assert_eq!(n, 1);
    assert_eq!(pump(&hooks, &queue, &receiver), vec![Attempted::Delivered]);
    assert_eq!(receiver.received()[0].headers.id, got[0].headers.id);
    let log = block_on(hooks.deliveries(&t1, e.id.as_str(), None, 1)).unwrap();
    assert!(log.records[0].replay);
    // Delivered now: a replay of failed events has nothing left to send.
    assert_eq!(
        block_on(hooks.replay(&t1, e.id.as_str(), start, true)).unwrap(),
        0
    );
    assert_eq!(
        block_on(hooks.replay(&t1, e.id.as_str(), start, false)).unwrap(),
        1
    );
}

#[test]
fn a_delivery_for_a_removed_endpoint_sends_nothing() {
    let w = world();
    let (hooks, queue) = outbound(&w);
    let t1 = tenant_id("t1");
    let e = block_on(hooks.register(&t1, request("https://hooks.example.com/r", &[]))).unwrap();
    let job = w.job(JobSetup::render("t1", "acct_a"));
    block_on(w.core().command(&t1, &job.id, Command::Cancel)).unwrap();
    let cancel = w.store.audit_trail(&job.id).pop().unwrap();
    block_on(hooks.dispatch_transition(&w.store, &job.id, None, &cancel)).unwrap();
    block_on(hooks.remove(&t1, e.id.as_str())).unwrap();
    let receiver = ScriptedReceiver::default();
    assert_eq!(
        pump(&hooks, &queue, &receiver),
        vec![Attempted::EndpointGone]
    );
    assert!(receiver.received().is_empty());
}

#[test]
fn a_blocked_destination_is_logged_as_blocked_and_retried() {
    let w = world();
    let (hooks, queue) = outbound(&w);
    let t1 = tenant_id("t1");
    let e = block_on(hooks.register(&t1, request("https://rebound.example.com/", &[]))).unwrap();
    block_on(hooks.dispatch_account_change(
        &t1,
        &account_id("acct_a"),
        Some(AccountHealth::Active),
        AccountHealth::Disconnected,
        Some("account_disconnected"),
        2,
    ))
    .unwrap();
    let receiver =
        ScriptedReceiver::answering([PostResult::Blocked("resolves to a private address".into())]);
    let done = pump(&hooks, &queue, &receiver);
    assert!(matches!(done[0], Attempted::Retrying { .. }));
    let log = block_on(hooks.deliveries(&t1, e.id.as_str(), None, 10)).unwrap();
    assert_eq!(
        log.records[0].outcome,
        reelay_domain::webhooks::AttemptOutcome::Blocked
    );
    assert_eq!(log.records[0].event_type, EventType::AccountDisconnected);
}

/// The stream carries every audited transition of every tenant: one of a tenant without
/// endpoints costs one endpoints query and never reads the job; one that is no move (the
/// creation) costs nothing at all.
#[test]
fn a_transition_of_a_tenant_without_endpoints_reads_only_its_endpoints() {
    let w = world();
    let (hooks, queue) = outbound(&w);
    let t1 = tenant_id("t1");
    let job = w.job(JobSetup::render("t1", "acct_a"));
    block_on(w.core().command(&t1, &job.id, Command::Cancel)).unwrap();
    let trail = w.store.audit_trail(&job.id);
    let calls = |name: &str| w.store.calls().get(name).copied().unwrap_or(0);
    let (gets, lists) = (calls("jobs.get"), calls("webhooks.endpoints"));
    assert_eq!(
        block_on(hooks.dispatch_transition(&w.store, &job.id, Some(&t1), &trail[0])).unwrap(),
        0
    );
    assert_eq!(
        (calls("jobs.get"), calls("webhooks.endpoints")),
        (gets, lists),
        "the creation: nothing read"
    );
    assert_eq!(
        block_on(hooks.dispatch_transition(&w.store, &job.id, Some(&t1), trail.last().unwrap()))
            .unwrap(),
        0
    );
    assert_eq!(calls("jobs.get"), gets, "no endpoint: the job is not read");
    assert_eq!(calls("webhooks.endpoints"), lists + 1);
    assert_eq!(queue.sends(), 0);
    // With an endpoint, the same record is delivered.
    block_on(hooks.register(&t1, request("https://a.example.com/", &[]))).unwrap();
    assert_eq!(
        block_on(hooks.dispatch_transition(&w.store, &job.id, Some(&t1), trail.last().unwrap()))
            .unwrap(),
        1
    );
}
