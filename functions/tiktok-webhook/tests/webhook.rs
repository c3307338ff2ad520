//! The receiver against the real table (local AWS endpoint) and deliveries signed as TikTok signs
//! them, some delivered by tiktok-sim itself over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use reelay_aws::SystemClock;
use reelay_domain::account::AccountHealth;
use reelay_domain::job::PostMode;
use reelay_domain::lifecycle::Event;
use reelay_domain::ports::Clock;
use reelay_domain::usecase::{self, Advance};
use reelay_domain::{Job, JobState, PublishId};
use serde_json::json;

/// Moves a queued job as the publisher would: attempt recorded, TikTok accepted `publish_id`.
async fn accepted(w: &World, job: Job, publish_id: &str) -> Job {
    let started = usecase::advance_loaded(
        &w.jobs,
        &w.queue,
        &SystemClock,
        &policy(),
        job,
        &Event::PublishStarted,
    )
    .await
    .unwrap();
    let Advance::Moved(started) = started else {
        panic!("not started")
    };
    let event = Event::PublishAccepted {
        publish_id: PublishId::parse(publish_id).unwrap(),
        upload: false,
        upstream_log_id: None,
    };
    match usecase::advance_loaded(
        &w.jobs,
        &w.queue,
        &SystemClock,
        &policy(),
        started.job,
        &event,
    )
    .await
    .unwrap()
    {
        Advance::Moved(a) => a.job,
        other => panic!("not accepted: {other:?}"),
    }
}

#[tokio::test]
async fn when_the_signature_is_forged_stale_altered_or_missing_should_answer_401_and_change_nothing()
 {
    let w = world(sim_config()).await;
    let account = w.connect("acct_sig", "open_sig").await;
    let (clip, _) = w.clip("sig", 1000, 1);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "sig"), clip)
        .await;
    let job = accepted(&w, job, "v_pub_file~v2-1.111").await;
    let body = envelope(
        "post.publish.complete",
        "open_sig",
        json!({"publish_id": "v_pub_file~v2-1.111", "publish_type": "DIRECT_PUBLISH"}),
    );
    let now = SystemClock.now().as_secs();

    let forged = reelay_tiktok::sign_webhook(
        &secrecy::SecretString::from("not_the_secret".to_owned()),
        now,
        body.as_bytes(),
    );
    let stale = w.signed(now - 3600, &body);
    let altered_body = body.replace("complete", "failed");
    let good = w.signed(now, &body);
    let cases: [(Option<&str>, &str, &str); 5] = [
        (None, body.as_str(), "signature_missing"),
        (Some("t=abc,s=zz"), body.as_str(), "signature_malformed"),
        (Some(forged.as_str()), body.as_str(), "signature_invalid"),
        (Some(stale.as_str()), body.as_str(), "signature_stale"),
        (
            Some(good.as_str()),
            altered_body.as_str(),
            "signature_invalid",
        ),
    ];
    for (sig, body, code) in cases {
        let (status, answer) = w.post_webhook(sig, body).await;
        assert_eq!(status, 401, "{code}");
        assert_eq!(answer["error"]["code"], code);
        assert!(answer["error"]["message"].is_string() && answer["error"].get("details").is_some());
    }
    let unchanged = w.job(&job.id).await;
    assert_eq!(
        (unchanged.state, unchanged.version),
        (JobState::PublishProcessing, job.version)
    );

    // The genuine delivery moves the job; its duplicate changes nothing.
    let (status, answer) = w.post_webhook(Some(&good), &body).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("moved:publish_complete"))
    );
    let moved = w.job(&job.id).await;
    let (status, answer) = w.post_webhook(Some(&good), &body).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("absorbed")));
    assert_eq!(w.job(&job.id).await.version, moved.version);
}

#[tokio::test]
async fn when_reordered_webhooks_arrive_should_never_move_a_post_backwards() {
    let w = world(sim_config()).await;
    let account = w.connect("acct_order", "open_order").await;
    let (clip, _) = w.clip("order", 1000, 2);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "order"), clip)
        .await;
    let job = accepted(&w, job, "v_pub_file~v2-1.222").await;
    let now = SystemClock.now().as_secs();
    let public = envelope(
        "post.publish.publicly_available",
        "open_order",
        json!({"publish_id": "v_pub_file~v2-1.222", "post_id": "7602997517160123666", "publish_type": "DIRECT_PUBLISH"}),
    );
    let complete = envelope(
        "post.publish.complete",
        "open_order",
        json!({"publish_id": "v_pub_file~v2-1.222"}),
    );
    assert_eq!(
        w.post_webhook(Some(&w.signed(now, &public)), &public)
            .await
            .0,
        200
    );
    assert_eq!(
        w.post_webhook(Some(&w.signed(now, &complete)), &complete)
            .await
            .0,
        200
    );
    let job = w.job(&job.id).await;
    assert_eq!(job.state, JobState::PubliclyAvailable);
    assert_eq!(job.post_ids, vec!["7602997517160123666".to_owned()]);
}

#[tokio::test]
async fn when_authorization_is_removed_should_mark_the_account_and_hold_its_pending_jobs() {
    let w = world(sim_config()).await;
    let account = w.connect("acct_gone", "open_gone").await;
    let other = w.connect("acct_stays", "open_stays").await;
    let (clip, _) = w.clip("gone", 1000, 3);
    let queued = w
        .rendered_job(&account, post(PostMode::Direct, "q"), clip.clone())
        .await;
    let later = SystemClock.now().plus(Duration::from_secs(3600));
    let ready = w
        .rendered_job_at(&account, post(PostMode::Direct, "r"), clip.clone(), later)
        .await;
    let elsewhere = w
        .rendered_job(&other, post(PostMode::Direct, "e"), clip)
        .await;
    assert_eq!(
        (queued.state, ready.state),
        (JobState::PublishQueued, JobState::Ready)
    );

    // The simulator revokes and delivers `authorization.removed` itself, signed, over HTTP.
    assert!(w.sim.revoke_user("open_gone", 1));
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.account(&account).await.health != AccountHealth::NeedsReauth {
        assert!(
            Instant::now() < deadline,
            "authorization.removed never applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in [&queued.id, &ready.id] {
        let job = w.wait_for_state(id, JobState::Ready, 10).await;
        assert_eq!(job.hold.map(|h| h.reason), Some("needs_reauth".to_owned()));
    }
    assert_eq!(w.job(&elsewhere.id).await.state, JobState::PublishQueued);
    assert_eq!(w.account(&other).await.health, AccountHealth::Active);
}
