//! The queue, the vault and the upstream fakes do what their docs say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use reelay_domain::lifecycle::{ErrorClass, PublishStatus};
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{
    QueueError, RefreshError, SecretError, TokenRefresher, TokenVault, WorkQueue,
};
use reelay_domain::upstream::{AuthApi, PublishApi, RenderApi, RenderProgress};
use reelay_domain::{JobId, PostMode, UtcTime};
use reelay_testkit::queue::Dedup;
use reelay_testkit::tiktok::DIRECT_SCOPES;
use reelay_testkit::{
    FakeSsemble, FakeTikTok, Fault, Faults, ManualClock, MemQueue, MemVault, TikTokCall,
    account_id, block_on, calls, sample, tenant_id, token_tag,
};
use secrecy::{ExposeSecret, SecretString};

fn message(kind: QueueKind, account: &str, n: u128) -> WorkMessage {
    WorkMessage::new(
        kind,
        JobId::generate(UtcTime::from_secs(1_800_000_000), n),
        tenant_id("tenant_a"),
        account_id(account),
        1,
    )
}

#[test]
fn a_resend_within_the_dedup_window_is_dropped_and_a_later_one_delivered() {
    let clock = ManualClock::default();
    let q = MemQueue::new(clock.clone());
    let m = message(QueueKind::Publish, "acct_1", 1);
    block_on(q.send(&m, "d1")).unwrap();
    clock.advance(Duration::from_secs(299));
    block_on(q.send(&m, "d1")).unwrap();
    // Another queue deduplicates on its own.
    let r = message(QueueKind::Render, "acct_1", 1);
    block_on(q.send(&r, "d1")).unwrap();
    assert_eq!(q.len(QueueKind::Publish), 1);
    assert_eq!(q.len(QueueKind::Render), 1);
    clock.advance(Duration::from_secs(1));
    block_on(q.send(&m, "d1")).unwrap();
    assert_eq!(q.len(QueueKind::Publish), 2);
    let dropped: Vec<bool> = q.sent().iter().map(|s| s.dropped).collect();
    assert_eq!(dropped, [false, true, false, false]);

    let forever = MemQueue::with_dedup(Dedup::Forever);
    block_on(forever.send(&m, "d1")).unwrap();
    block_on(forever.send(&m, "d1")).unwrap();
    assert_eq!(forever.len(QueueKind::Publish), 1);
}

#[test]
fn messages_come_out_in_order_and_a_group_in_flight_waits() {
    let q = MemQueue::new(ManualClock::default());
    let a1 = message(QueueKind::Publish, "acct_a", 1);
    let a2 = message(QueueKind::Publish, "acct_a", 2);
    let b1 = message(QueueKind::Publish, "acct_b", 3);
    for (m, d) in [(&a1, "1"), (&a2, "2"), (&b1, "3")] {
        block_on(q.send(m, d)).unwrap();
    }
    let first = q.receive(QueueKind::Publish).unwrap();
    assert_eq!(first.message, a1);
    // acct_a is blocked behind its message in flight: b1 comes next, then nothing.
    let second = q.receive(QueueKind::Publish).unwrap();
    assert_eq!(second.message, b1);
    assert!(q.receive(QueueKind::Publish).is_none());
    // A failed delivery goes back to the head of its group.
    assert!(q.release(first.receipt));
    let again = q.receive(QueueKind::Publish).unwrap();
    assert_eq!(
        (again.message.clone(), again.receive_count),
        (a1.clone(), 1)
    );
    assert!(q.ack(again.receipt));
    assert!(!q.ack(again.receipt));
    assert_eq!(q.take(QueueKind::Publish).unwrap().message, a2);
    assert!(q.is_empty(QueueKind::Publish));

    block_on(q.send(&a1, "4")).unwrap();
    block_on(q.send(&b1, "5")).unwrap();
    assert_eq!(
        q.take_group(QueueKind::Publish, &b1.group_id())
            .unwrap()
            .message,
        b1
    );
    assert_eq!(q.drain(QueueKind::Publish).len(), 1);
}

#[test]
fn a_send_fault_loses_the_message_or_only_the_answer() {
    let q = MemQueue::new(ManualClock::default());
    let faults = Faults::new();
    let hooked = q.with_hook(Arc::new(faults.clone()));
    let m = message(QueueKind::Render, "acct_1", 1);
    faults.fail_next(calls::QUEUE_SEND, Fault::unavailable());
    assert!(matches!(
        block_on(hooked.send(&m, "x")),
        Err(QueueError::Unavailable(_))
    ));
    assert!(q.is_empty(QueueKind::Render));
    faults.fail_next(calls::QUEUE_SEND, Fault::lost_response());
    assert!(block_on(hooked.send(&m, "x")).is_err());
    assert_eq!(
        q.len(QueueKind::Render),
        1,
        "sent, only the answer was lost"
    );
}

#[test]
fn the_vault_refuses_an_empty_refresh_token() {
    let clock = ManualClock::default();
    let tiktok = FakeTikTok::new(clock);
    let vault = MemVault::new();
    let (t, a) = (tenant_id("tenant_a"), account_id("acct_1"));
    let mut tokens = tiktok.issue_tokens("open-1", &DIRECT_SCOPES);
    block_on(vault.put_tokens(&t, &a, &tokens)).unwrap();
    tokens.refresh_token = SecretString::from(" ");
    assert!(matches!(
        block_on(vault.put_tokens(&t, &a, &tokens)),
        Err(SecretError::EmptyRefreshToken)
    ));
    let stored = block_on(vault.get_tokens(&t, &a)).unwrap().unwrap();
    assert!(stored.refresh_token.expose_secret().starts_with("rft."));

    let faults = Faults::new();
    faults.fail_next(calls::VAULT_GET, Fault::unavailable());
    let hooked = vault.with_hook(Arc::new(faults));
    assert!(matches!(
        block_on(hooked.get_tokens(&t, &a)),
        Err(SecretError::Unavailable(_))
    ));
}

#[test]
fn tiktok_answers_its_scripts_then_defaults_and_records_token_tags_only() {
    let clock = ManualClock::default();
    let tiktok = FakeTikTok::new(clock);
    let tokens = tiktok.issue_tokens("open-1", &DIRECT_SCOPES);
    let clip = sample::clip("c1", 9.0);
    let direct = sample::post(PostMode::Direct);

    tiktok.push_init(Err(sample::upstream_error(
        ErrorClass::WaitForWindow,
        "spam_risk_too_many_posts",
    )));
    let refused = block_on(tiktok.init(&tokens.access_token, &direct, &clip, 10)).unwrap_err();
    assert_eq!(refused.code, "spam_risk_too_many_posts");
    let first = block_on(tiktok.init(&tokens.access_token, &direct, &clip, 10)).unwrap();
    assert!(first.publish_id.as_str().starts_with("v_pub_file~v2-1."));
    assert!(first.upload_url.is_some());
    let draft = block_on(tiktok.init(
        &tokens.access_token,
        &sample::post(PostMode::Draft),
        &clip,
        10,
    ))
    .unwrap();
    assert!(draft.publish_id.as_str().starts_with("v_inbox_file~v2."));
    assert_ne!(first.publish_id, draft.publish_id);

    let inits = tiktok.inits();
    assert_eq!(inits.len(), 3);
    assert_eq!(inits[0].error.as_deref(), Some("spam_risk_too_many_posts"));
    assert_eq!(inits[1].publish_id.as_ref(), Some(&first.publish_id));
    assert_eq!(inits[1].token, token_tag(&tokens.access_token));
    let recorded = format!("{:?}", tiktok.calls());
    assert!(!recorded.contains(tokens.access_token.expose_secret()));

    block_on(tiktok.upload(
        first.upload_url.as_ref().unwrap(),
        &clip,
        10,
        UtcTime::from_secs(0),
    ))
    .unwrap();
    assert!(
        tiktok
            .publishes()
            .iter()
            .any(|p| p.publish_id == first.publish_id && p.uploaded)
    );

    let status = block_on(tiktok.status(&tokens.access_token, &first.publish_id)).unwrap();
    assert_eq!(status.status, PublishStatus::Processing);
    tiktok.set_status(
        &first.publish_id,
        PublishStatus::Complete,
        vec!["7602".into()],
    );
    let status = block_on(tiktok.status(&tokens.access_token, &first.publish_id)).unwrap();
    assert_eq!(
        (status.status, status.post_ids),
        (PublishStatus::Complete, vec!["7602".into()])
    );
    assert_eq!(tiktok.status_polls().len(), 2);
    assert_eq!(tiktok.count("init"), 3);

    let info = block_on(tiktok.creator_info(&tokens.access_token)).unwrap();
    assert!(info.cannot_post_reason.is_none());
    assert!(
        tiktok
            .authorize_url("st4te", PostMode::Draft, "https://api.test/cb")
            .unwrap()
            .contains("state=st4te")
    );
    assert!(matches!(
        tiktok.calls().last().unwrap().call,
        TikTokCall::AuthorizeUrl {
            mode: PostMode::Draft,
            ..
        }
    ));
}

#[test]
fn an_init_whose_answer_is_lost_still_created_the_publish_and_a_failed_one_did_not() {
    let tiktok = FakeTikTok::new(ManualClock::default());
    let faults = Faults::new();
    let hooked = tiktok.with_hook(Arc::new(faults.clone()));
    let tokens = tiktok.issue_tokens("open-1", &DIRECT_SCOPES);
    let (post, clip) = (sample::post(PostMode::Direct), sample::clip("c", 1.0));

    faults.fail_next(calls::PUBLISH_INIT, Fault::unavailable());
    let e = block_on(hooked.init(&tokens.access_token, &post, &clip, 1)).unwrap_err();
    assert!(!e.outcome_unknown);
    assert!(tiktok.inits().is_empty(), "never reached TikTok");

    faults.fail_next(calls::PUBLISH_INIT, Fault::lost_response());
    let e = block_on(hooked.init(&tokens.access_token, &post, &clip, 1)).unwrap_err();
    assert!(e.outcome_unknown);
    assert_eq!(e.class, ErrorClass::Retryable);
    assert_eq!(tiktok.inits().len(), 1);
    assert_eq!(tiktok.publishes().len(), 1, "TikTok has the publish");
}

#[test]
fn refresh_tokens_rotate_and_the_old_one_stops_working() {
    let tiktok = FakeTikTok::new(ManualClock::default());
    let first = tiktok.issue_tokens("open-1", &DIRECT_SCOPES);
    let second = block_on(tiktok.refresh(&first.refresh_token)).unwrap();
    assert_eq!(second.open_id, "open-1");
    assert_ne!(
        second.refresh_token.expose_secret(),
        first.refresh_token.expose_secret()
    );
    assert_eq!(second.refresh_expires_at, first.refresh_expires_at);
    assert!(matches!(
        block_on(tiktok.refresh(&first.refresh_token)),
        Err(RefreshError::Rejected)
    ));
    assert!(matches!(
        block_on(tiktok.refresh(&SecretString::from("rft.unknown"))),
        Err(RefreshError::Rejected)
    ));
    tiktok.revoke(&second.refresh_token);
    assert!(matches!(
        block_on(tiktok.refresh(&second.refresh_token)),
        Err(RefreshError::Rejected)
    ));

    let faults = Faults::new();
    faults.fail_next(calls::REFRESH, Fault::unavailable());
    let third = tiktok.issue_tokens("open-1", &DIRECT_SCOPES);
    let hooked = tiktok.with_hook(Arc::new(faults));
    assert!(matches!(
        block_on(hooked.refresh(&third.refresh_token)),
        Err(RefreshError::Transient(_))
    ));
    assert!(
        block_on(hooked.refresh(&third.refresh_token)).is_ok(),
        "the fault spent nothing"
    );
    let exchanged = block_on(tiktok.exchange_code("code", "https://api.test/cb")).unwrap();
    assert!(block_on(tiktok.refresh(&exchanged.refresh_token)).is_ok());
}

#[test]
fn ssemble_remembers_its_renders_so_a_lost_create_is_found() {
    let clock = ManualClock::default();
    let ssemble = FakeSsemble::new(clock.clone());
    let faults = Faults::new();
    let hooked = ssemble.with_hook(Arc::new(faults.clone()));
    let request = sample::render_request();
    let since = clock.now();

    faults.fail_next(calls::RENDER_SUBMIT, Fault::lost_response());
    let lost = block_on(hooked.submit(&request, "https://hooks/x.tok")).unwrap_err();
    assert!(lost.outcome_unknown);
    let found = block_on(hooked.find_submitted(&request, since)).unwrap();
    let id = found.expect("the create landed");
    assert_eq!(
        ssemble.webhook_url(&id).as_deref(),
        Some("https://hooks/x.tok")
    );
    let later = clock.advance(Duration::from_secs(1));
    assert_eq!(
        block_on(ssemble.find_submitted(&request, later)).unwrap(),
        None
    );

    let other = block_on(ssemble.submit(&request, "https://hooks/y.tok")).unwrap();
    assert_ne!(other, id);
    assert_eq!(other.as_str().len(), 24);

    assert_eq!(
        block_on(ssemble.render_progress(&id)).unwrap(),
        RenderProgress::Pending
    );
    let clips = vec![sample::clip("a", 1.0), sample::clip("b", 2.0)];
    ssemble.complete(&id, clips.clone());
    assert_eq!(
        block_on(ssemble.render_progress(&id)).unwrap(),
        RenderProgress::Completed
    );
    assert_eq!(block_on(ssemble.render_clips(&id)).unwrap(), Some(clips));
    ssemble.push_render_progress(Ok(RenderProgress::Cancelled));
    assert_eq!(
        block_on(ssemble.render_progress(&id)).unwrap(),
        RenderProgress::Cancelled
    );
    assert_eq!(
        block_on(ssemble.render_progress(&id)).unwrap(),
        RenderProgress::Completed
    );
    assert_eq!(ssemble.count("submit"), 2);
    assert_eq!(ssemble.count("render_progress"), 4);
}
