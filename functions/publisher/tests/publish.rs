//! The publisher driven by real SQS messages (local AWS endpoint) against tiktok-sim over real
//! HTTP; every "exactly one post" claim is read from the simulator's own inspection API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tiktok-webhook/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use common::*;
use publisher::{Deps, Settings};
use reelay_aws::{
    DynamoAccountStore, DynamoJobStore, FailureScope, FifoBatchProcessor, SecretsManagerTokenVault,
    SqsWorkQueue, SystemClock, sqs_event_from_received,
};
use reelay_domain::budget::Limits;
use reelay_domain::job::{PostMode, PrivacyLevel};
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{Clock, JobStore, TokenVault, WorkQueue};
use reelay_domain::{Job, JobState};
use reelay_tiktok::{TikTokClient, TikTokConfig, TikTokPort};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tiktok_sim::{CreatorSettings, Endpoint, FaultKind, FaultSpec};

type PublisherDeps = Deps<
    DynamoJobStore,
    DynamoAccountStore,
    SqsWorkQueue,
    SystemClock,
    SecretsManagerTokenVault,
    TikTokPort,
    TikTokPort,
>;

/// The production wiring with the simulator's base URL and small chunk rules.
fn deps(w: &World, request_timeout: Duration) -> PublisherDeps {
    let cfg = w.sim.config();
    let mut c = TikTokConfig::new(
        cfg.client_key,
        SecretString::from(cfg.client_secret),
        "https://app.example.com/oauth/callback",
    )
    .with_base_url(&w.sim.base_url);
    c.timeouts.request = request_timeout;
    c.chunk_policy = small_policy();
    c.upload_retry.initial_backoff = Duration::from_millis(5);
    c.upload_retry.max_backoff = Duration::from_millis(20);
    let port = TikTokPort::new(TikTokClient::new(c).unwrap());
    Deps {
        jobs: w.jobs.clone(),
        accounts: w.accounts.clone(),
        queue: w.queue.clone(),
        clock: SystemClock,
        vault: w.vault.clone(),
        refresher: port.clone(),
        tiktok: port,
        batches: FifoBatchProcessor::new(w.sqs.clone(), &w.publish_url)
            .with_scope(FailureScope::RestOfGroup),
        policy: policy(),
        limits: Limits::default(),
        settings: Settings::default(),
    }
}

async fn receive(w: &World) -> Vec<Message> {
    w.sqs
        .receive_message()
        .queue_url(&w.publish_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

/// One Lambda invocation; when `ack`, what the event source mapping does after it (delete
/// what did not fail). Without `ack` it is a crash after the handler ran.
async fn invoke(w: &World, d: &PublisherDeps, ack: bool) -> (Vec<Message>, SqsBatchResponse) {
    let messages = receive(w).await;
    let response = publisher::function_handler(d, sqs_event_from_received(&messages, None)).await;
    if ack {
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for m in &messages {
            if !failed.contains(&m.message_id().unwrap()) {
                w.sqs
                    .delete_message()
                    .queue_url(&w.publish_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    (messages, response)
}

/// Invokes until every job has left `publish_queued` (or `secs` pass).
async fn publish_all(w: &World, d: &PublisherDeps, jobs: &[&Job], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut pending = 0;
        for j in jobs {
            if w.job(&j.id).await.state == JobState::PublishQueued {
                pending += 1;
            }
        }
        if pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} jobs still publish_queued"
        );
        invoke(w, d, true).await;
    }
}

async fn events(w: &World, job: &Job) -> Vec<String> {
    w.jobs
        .audit_trail(&job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

#[tokio::test]
async fn when_a_direct_post_is_published_should_upload_once_and_follow_webhooks_to_publicly_available()
 {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_happy", "open_happy").await;
    let (clip, bytes) = w.clip("happy", (2 * MIB + MIB / 2) as usize, 1);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "happy-1"), clip)
        .await;
    publish_all(&w, &d, &[&job], 20).await;

    let done = w
        .wait_for_state(&job.id, JobState::PubliclyAvailable, 30)
        .await;
    let publish_id = done.publish_id.clone().expect("publish_id stored");
    let trail = events(&w, &job).await;
    for e in [
        "publish_started",
        "publish_accepted",
        "upload_completed",
        "status_observed",
    ] {
        assert!(trail.contains(&e.to_owned()), "{e} missing from {trail:?}");
    }
    assert!(done.post_ids.len() == 1, "{:?}", done.post_ids);
    // Ground truth: one publish, every byte delivered intact.
    assert_eq!(w.publishes_for_title("happy-1"), 1);
    let upload = &w.sim.inspect()["uploads"][publish_id.as_str()];
    assert_eq!(upload["complete"], json!(true));
    assert_eq!(upload["sha256"], json!(sha256_hex(&bytes)));
    assert_eq!(upload["total_chunk_count"], json!(2));
    assert_eq!(w.sim.inspect()["chunk_violations"], json!([]));
    w.assert_limits_kept();
}

#[tokio::test]
async fn when_a_draft_is_published_should_reach_the_creators_inbox() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_draft", "open_draft").await;
    let (clip, bytes) = w.clip("draft", 1_500_000, 2);
    let job = w
        .rendered_job(&account, post(PostMode::Draft, "draft-1"), clip)
        .await;
    publish_all(&w, &d, &[&job], 20).await;
    let job = w.wait_for_state(&job.id, JobState::Submitted, 30).await;
    let posts = w.publishes("open_draft");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["direct"], json!(false));
    assert_eq!(posts[0]["status"], json!("SEND_TO_USER_INBOX"));
    let publish_id = job.publish_id.unwrap();
    assert_eq!(
        w.sim.inspect()["uploads"][publish_id.as_str()]["sha256"],
        json!(sha256_hex(&bytes))
    );
    assert_eq!(w.requests("VideoInit"), 0);
    w.assert_limits_kept();
}

#[tokio::test]
async fn when_a_message_is_redelivered_after_a_crash_should_not_init_again() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_redeliver", "open_redeliver").await;
    let (clip, _) = w.clip("redeliver", 1_200_000, 3);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "redeliver-1"), clip)
        .await;
    // The handler ran but the batch was never acknowledged (the function died after it).
    let (messages, _) = invoke(&w, &d, false).await;
    assert_eq!(messages.len(), 1);
    assert_ne!(w.job(&job.id).await.state, JobState::PublishQueued);
    for m in &messages {
        w.sqs
            .change_message_visibility()
            .queue_url(&w.publish_url)
            .receipt_handle(m.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    // The redelivery, and a duplicate enqueue on top (as a reconciler might send).
    let dup = WorkMessage::new(
        QueueKind::Publish,
        job.id.clone(),
        job.tenant_id.clone(),
        job.account_id.clone(),
        job.version,
    );
    w.queue.send(&dup, 99).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = 0;
    while seen < 2 {
        assert!(Instant::now() < deadline, "redeliveries did not come");
        let (messages, response) = invoke(&w, &d, true).await;
        assert!(response.batch_item_failures.is_empty());
        seen += messages.len();
    }
    assert_eq!(w.requests("VideoInit"), 1);
    assert_eq!(w.publishes_for_title("redeliver-1"), 1);
    w.assert_limits_kept();
}

#[tokio::test]
async fn when_the_init_times_out_after_tiktok_accepted_should_go_unknown_never_reinit_and_resolve_by_webhook()
 {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_millis(1500));
    let account = w.connect("acct_unknown", "open_unknown").await;
    let (clip, _) = w.clip("unknown", 1_200_000, 4);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "unknown-1"), clip)
        .await;
    w.sim.inject(FaultSpec {
        endpoint: Endpoint::VideoInit,
        kind: FaultKind::TimeoutAfterAccept { delay_ms: 4000 },
        count: 1,
    });
    publish_all(&w, &d, &[&job], 20).await;
    let unknown = w.wait_for_state(&job.id, JobState::PublishUnknown, 5).await;
    assert_eq!(unknown.publish_id, None);
    assert_eq!(
        w.publishes_for_title("unknown-1"),
        1,
        "TikTok did accept it"
    );

    // A redelivered (or re-sent) message finds the job unknown and sends nothing.
    let again = WorkMessage::new(
        QueueKind::Publish,
        job.id.clone(),
        job.tenant_id.clone(),
        job.account_id.clone(),
        unknown.version,
    );
    w.queue.send(&again, 7).await.unwrap();
    let (messages, response) = invoke(&w, &d, true).await;
    assert_eq!((messages.len(), response.batch_item_failures.len()), (1, 0));
    assert_eq!(w.requests("VideoInit"), 1);
    assert_eq!(w.job(&job.id).await.state, JobState::PublishUnknown);

    // TikTok's webhook names the publish we never heard of: the unknown outcome is resolved.
    let publish_id = w.publishes("open_unknown")[0]["publish_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = envelope(
        "post.publish.complete",
        "open_unknown",
        json!({"publish_id": publish_id, "publish_type": "DIRECT_PUBLISH"}),
    );
    let (status, answer) = w
        .post_webhook(Some(&w.signed(SystemClock.now().as_secs(), &body)), &body)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], json!("resolved:publish_complete"));
    let resolved = w.job(&job.id).await;
    assert_eq!(resolved.state, JobState::PublishComplete);
    assert_eq!(resolved.publish_id.map(|p| p.to_string()), Some(publish_id));
    assert_eq!(w.publishes_for_title("unknown-1"), 1);
    w.assert_limits_kept();
}

#[tokio::test]
async fn when_one_account_is_rate_limited_should_delay_only_that_account() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let a = w.connect("acct_rl_a", "open_rl_a").await;
    let b = w.connect("acct_rl_b", "open_rl_b").await;
    let (clip, _) = w.clip("rl", 1_200_000, 5);
    // Account a goes first alone and meets the 429.
    w.sim.inject(FaultSpec {
        endpoint: Endpoint::VideoInit,
        kind: FaultKind::RateLimit,
        count: 1,
    });
    let a1 = w
        .rendered_job(&a, post(PostMode::Direct, "rl-a1"), clip.clone())
        .await;
    publish_all(&w, &d, &[&a1], 20).await;
    let a1 = w.job(&a1.id).await;
    assert_eq!(a1.state, JobState::Ready);
    assert_eq!(
        a1.hold.map(|h| h.reason),
        Some("rate_limit_exceeded".to_owned())
    );
    let blocked = w
        .account(&a)
        .await
        .blocked_until
        .expect("account a blocked");
    assert!(blocked > SystemClock.now().plus(Duration::from_secs(50)));

    // Both accounts get another job; b publishes while a's group waits.
    let a2 = w
        .rendered_job(&a, post(PostMode::Direct, "rl-a2"), clip.clone())
        .await;
    let b1 = w
        .rendered_job(&b, post(PostMode::Direct, "rl-b1"), clip.clone())
        .await;
    let b2 = w
        .rendered_job(&b, post(PostMode::Direct, "rl-b2"), clip)
        .await;
    publish_all(&w, &d, &[&b1, &b2], 30).await;
    for j in [&b1, &b2] {
        assert!(
            w.job(&j.id).await.publish_id.is_some(),
            "b's jobs were published"
        );
    }
    assert_eq!(w.publishes("open_rl_b").len(), 2);
    // a's message is held back by its group's delay: nothing was sent for a.
    assert_eq!(w.job(&a2.id).await.state, JobState::PublishQueued);
    assert_eq!(w.publishes("open_rl_a").len(), 0);
    assert_eq!(w.requests("VideoInit"), 3, "one 429 for a, two posts for b");
    w.assert_limits_kept();
}

#[tokio::test]
async fn when_the_access_token_is_refused_should_refresh_once_retry_once_and_post_once() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_token", "open_token").await;
    let before = w
        .vault
        .get_tokens(&w.tenant, &account)
        .await
        .unwrap()
        .unwrap();
    let (clip, _) = w.clip("token", 1_200_000, 6);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "token-1"), clip)
        .await;
    w.sim.inject(FaultSpec {
        endpoint: Endpoint::VideoInit,
        kind: FaultKind::Error {
            status: 401,
            code: "access_token_invalid".into(),
        },
        count: 1,
    });
    publish_all(&w, &d, &[&job], 20).await;
    let job = w.job(&job.id).await;
    assert!(
        job.publish_id.is_some(),
        "published after one refresh: {job:?}"
    );
    assert_eq!(w.requests("Token"), 1, "exactly one refresh");
    assert_eq!(w.requests("VideoInit"), 2, "the refused init and one retry");
    assert_eq!(w.publishes_for_title("token-1"), 1);
    let after = w
        .vault
        .get_tokens(&w.tenant, &account)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        after.access_token.expose_secret(),
        before.access_token.expose_secret(),
        "the rotated tokens were stored"
    );
    w.assert_limits_kept();
}

#[tokio::test]
async fn when_the_daily_cap_is_hit_should_block_the_account_and_hold_the_job() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_cap", "open_cap").await;
    let (clip, _) = w.clip("cap", 1_200_000, 7);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "cap-1"), clip.clone())
        .await;
    w.sim.inject(FaultSpec {
        endpoint: Endpoint::VideoInit,
        kind: FaultKind::Error {
            status: 403,
            code: "spam_risk_too_many_posts".into(),
        },
        count: 1,
    });
    publish_all(&w, &d, &[&job], 20).await;
    let job = w.job(&job.id).await;
    assert_eq!(job.state, JobState::Ready);
    assert_eq!(
        job.hold.map(|h| h.reason),
        Some("spam_risk_too_many_posts".to_owned())
    );
    assert_eq!(
        job.last_error.map(|e| e.code),
        Some("spam_risk_too_many_posts".to_owned())
    );
    let blocked = w.account(&account).await.blocked_until.expect("blocked");
    assert!(blocked > SystemClock.now().plus(Duration::from_secs(23 * 3600)));

    // The next job of the account is held without asking TikTok anything.
    let calls = (w.requests("CreatorInfo"), w.requests("VideoInit"));
    let next = w
        .rendered_job(&account, post(PostMode::Direct, "cap-2"), clip)
        .await;
    publish_all(&w, &d, &[&next], 20).await;
    let next = w.job(&next.id).await;
    assert_eq!(next.state, JobState::Ready);
    assert_eq!(
        next.hold.map(|h| h.reason),
        Some("account_blocked".to_owned())
    );
    assert_eq!((w.requests("CreatorInfo"), w.requests("VideoInit")), calls);
    assert_eq!(w.publishes("open_cap").len(), 0);
    w.assert_limits_kept();
}

#[tokio::test]
async fn when_the_privacy_level_is_not_among_the_creators_options_should_fail_without_init() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    w.sim.upsert_creator(CreatorSettings {
        open_id: "open_private".into(),
        privacy_level_options: Some(vec!["SELF_ONLY".into()]),
        ..CreatorSettings::default()
    });
    let account = w.connect("acct_private", "open_private").await;
    let (clip, _) = w.clip("private", 1_200_000, 8);
    let mut settings = post(PostMode::Direct, "private-1");
    settings.privacy_level = Some(PrivacyLevel::PublicToEveryone);
    let job = w.rendered_job(&account, settings, clip).await;
    publish_all(&w, &d, &[&job], 20).await;
    let job = w.job(&job.id).await;
    assert_eq!(job.state, JobState::PublishFailed);
    let error = job.last_error.clone().expect("error recorded");
    assert_eq!(error.code, "preflight_failed");
    assert!(
        error.message.contains("post.privacyLevel"),
        "{}",
        error.message
    );
    assert_eq!(w.requests("VideoInit"), 0);
    assert_eq!(w.publishes("open_private").len(), 0);
    assert!(
        !events(&w, &job)
            .await
            .contains(&"publish_started".to_owned())
    );
}

/// Stores `job` as `publish_queued` with its schedule `ahead` of now, as the reconciler does.
async fn enqueued_early(w: &World, job: &Job, ahead: Duration) -> reelay_domain::UtcTime {
    let schedule_at = SystemClock.now().plus(ahead);
    let mut applied = job
        .apply(
            &reelay_domain::Event::PublishDue,
            SystemClock.now(),
            &policy(),
        )
        .unwrap();
    let reelay_domain::Step::Applied(ref mut a) = applied else {
        panic!("not applied")
    };
    a.job.schedule_at = schedule_at;
    w.jobs.save(a, job.version).await.unwrap();
    schedule_at
}

#[tokio::test]
async fn when_the_schedule_is_seconds_ahead_should_wait_in_process_and_init_at_it() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_early", "open_early").await;
    let (clip, _) = w.clip("early", 1_200_000, 9);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "early-1"), clip)
        .await;
    // The reconciler enqueued it slightly early: the schedule is 1.5 s ahead, inside the
    // in-process wait, so the same invocation publishes it at its time, not a redelivery later.
    let schedule_at = enqueued_early(&w, &job, Duration::from_millis(1_500)).await;
    let (messages, response) = invoke(&w, &d, true).await;
    let done = SystemClock.now();
    assert!(!messages.is_empty());
    assert!(
        response.batch_item_failures.is_empty(),
        "the record waited in-process: {:?}",
        response.batch_item_failures
    );
    assert!(w.job(&job.id).await.publish_id.is_some());
    assert_eq!(w.publishes_for_title("early-1"), 1);
    assert!(done >= schedule_at, "published before its schedule");
    assert!(
        done.since(schedule_at) < Duration::from_secs(2),
        "published {:?} after its schedule",
        done.since(schedule_at)
    );
}

#[tokio::test]
async fn when_the_schedule_is_further_ahead_should_delay_the_group_no_later_than_it() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_later", "open_later").await;
    let (clip, _) = w.clip("later", 1_200_000, 19);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "later-1"), clip)
        .await;
    let schedule_at = enqueued_early(&w, &job, Duration::from_millis(4_600)).await;
    let (messages, response) = invoke(&w, &d, true).await;
    assert!(!messages.is_empty());
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "the record waits for its time"
    );
    assert_eq!(w.requests("CreatorInfo"), 0);
    // Delayed by whole seconds, never jittered: the message is back before the schedule, and
    // the in-process wait covers the rest.
    let back = loop {
        let got = receive(&w).await;
        if !got.is_empty() {
            break (SystemClock.now(), got);
        }
        assert!(
            SystemClock.now() < schedule_at.plus(Duration::from_secs(3)),
            "the message did not come back by its schedule"
        );
    };
    assert!(
        back.0 <= schedule_at,
        "came back {:?} late",
        back.0.since(schedule_at)
    );
    let response = publisher::function_handler(&d, sqs_event_from_received(&back.1, None)).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(w.job(&job.id).await.publish_id.is_some());
    assert_eq!(w.publishes_for_title("later-1"), 1);
}

#[tokio::test]
async fn when_two_consumers_race_for_one_job_should_init_exactly_once() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_race", "open_race").await;
    let (clip, _) = w.clip("race", 1_200_000, 10);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "race-1"), clip)
        .await;
    // Both read `publish_queued` and pass every check; only one can record the attempt.
    let (a, b) = tokio::join!(
        publisher::publish_job(&d, &job.id),
        publisher::publish_job(&d, &job.id)
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, publisher::Outcome::Accepted { .. }))
        .count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    assert_eq!(w.requests("VideoInit"), 1);
    assert_eq!(w.publishes_for_title("race-1"), 1);
    w.assert_limits_kept();
}

#[tokio::test]
async fn when_the_upload_fails_should_leave_the_publish_to_status_checks_and_never_reinit() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_upload", "open_upload").await;
    let (clip, _) = w.clip("upload", 1_200_000, 11);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "upload-1"), clip)
        .await;
    w.sim.inject(FaultSpec {
        endpoint: Endpoint::Upload,
        kind: FaultKind::Status { status: 404 },
        count: 1,
    });
    publish_all(&w, &d, &[&job], 20).await;
    let job = w.job(&job.id).await;
    assert_eq!(job.state, JobState::PublishProcessing);
    assert!(job.publish_id.is_some());
    assert_eq!(
        job.last_error.map(|e| e.code),
        Some("upload_failed".to_owned())
    );
    let trail = events(&w, &w.job(&job.id).await).await;
    assert!(trail.contains(&"upload_failed".to_owned()), "{trail:?}");
    assert_eq!(w.requests("VideoInit"), 1);
    assert_eq!(w.publishes_for_title("upload-1"), 1);
}

#[tokio::test]
async fn when_five_drafts_are_pending_should_hold_the_sixth_before_tiktok_refuses() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_drafts", "open_drafts").await;
    let (clip, _) = w.clip("drafts", 1_100_000, 12);
    let mut jobs = Vec::new();
    for i in 0..6 {
        jobs.push(
            w.rendered_job(
                &account,
                post(PostMode::Draft, &format!("d{i}")),
                clip.clone(),
            )
            .await,
        );
    }
    let refs: Vec<&Job> = jobs.iter().collect();
    publish_all(&w, &d, &refs, 60).await;
    let mut held = Vec::new();
    for j in &jobs {
        let j = w.job(&j.id).await;
        if j.publish_id.is_none() {
            held.push(j);
        }
    }
    assert_eq!(held.len(), 1, "exactly the sixth draft waits");
    assert_eq!(held[0].state, JobState::Ready);
    assert_eq!(
        held[0].hold.as_ref().map(|h| h.reason.as_str()),
        Some("pending_drafts_budget")
    );
    assert_eq!(
        w.requests("InboxInit"),
        5,
        "TikTok was never asked for a sixth"
    );
    assert_eq!(w.publishes("open_drafts").len(), 5);
    w.assert_limits_kept();
}

#[tokio::test]
async fn when_the_refresh_token_is_dead_should_hold_the_job_and_mark_the_account_without_posting() {
    let w = world(sim_config()).await;
    let d = deps(&w, Duration::from_secs(5));
    let account = w.connect("acct_dead", "open_dead").await;
    // An expired access token and a refresh token TikTok no longer knows.
    let mut tokens = w
        .vault
        .get_tokens(&w.tenant, &account)
        .await
        .unwrap()
        .unwrap();
    tokens.access_expires_at = SystemClock.now().minus(Duration::from_secs(60));
    tokens.refresh_token = SecretString::from("rft.revoked-long-ago".to_owned());
    w.vault
        .put_tokens(&w.tenant, &account, &tokens)
        .await
        .unwrap();
    let (clip, _) = w.clip("dead", 1_200_000, 13);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "dead-1"), clip)
        .await;
    publish_all(&w, &d, &[&job], 20).await;
    let job = w.job(&job.id).await;
    assert_eq!(job.state, JobState::Ready);
    assert_eq!(job.hold.map(|h| h.reason), Some("needs_reauth".to_owned()));
    assert_eq!(
        w.account(&account).await.health,
        reelay_domain::account::AccountHealth::NeedsReauth
    );
    assert_eq!(w.requests("Token"), 1);
    assert_eq!((w.requests("CreatorInfo"), w.requests("VideoInit")), (0, 0));
}
