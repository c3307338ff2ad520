use std::{sync::Arc, time::Duration};

use axum::{body::Bytes, http::HeaderMap, routing::post};
use reelay_tiktok::{
    PostInfo, PrivacyLevel, SourceInfo, WebhookEvent, parse_webhook, verify_signature,
};
use secrecy::SecretString;
use serde_json::json;
use tiktok_sim::WebhookFaults;
use tokio::sync::Mutex;

use crate::common::*;

#[derive(Default)]
struct Inbox {
    hits: u32,
    fail_first: u32,
    got: Vec<(Option<String>, Bytes)>,
}

async fn receiver(fail_first: u32) -> (String, Arc<Mutex<Inbox>>) {
    let inbox = Arc::new(Mutex::new(Inbox {
        fail_first,
        ..Inbox::default()
    }));
    let state = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let mut s = state.lock().await;
                s.hits += 1;
                if s.hits <= s.fail_first {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let sig = headers
                    .get("tiktok-signature")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                s.got.push((sig, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), inbox)
}

async fn wait_for(inbox: &Arc<Mutex<Inbox>>, n: usize) -> Vec<(Option<String>, Bytes)> {
    for _ in 0..200 {
        if inbox.lock().await.got.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    inbox.lock().await.got.clone()
}

async fn sim_with_hook(fail_first: u32) -> (tiktok_sim::SimHandle, Arc<Mutex<Inbox>>) {
    let (url, inbox) = receiver(fail_first).await;
    let mut cfg = sim_config();
    cfg.webhook_url = Some(url);
    cfg.webhooks.retry_base_ms = 10;
    cfg.app.verified_prefixes = vec!["https://media.example.com/".into()];
    (start(cfg).await, inbox)
}

fn pull() -> SourceInfo {
    SourceInfo::PullFromUrl {
        video_url: "https://media.example.com/a.mp4".into(),
    }
}

#[tokio::test]
async fn when_publish_completes_should_deliver_signed_events_retrying_non_200() {
    let (sim, inbox) = sim_with_hook(2).await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    let post = PostInfo::new(PrivacyLevel::PublicToEveryone, Some("hook".into()));
    let init = client.init_direct_post(&t, &post, &pull()).await.unwrap();
    sim.advance(15);
    let got = wait_for(&inbox, 1).await;
    assert_eq!(inbox.lock().await.hits, 3, "two 503s then 200");
    let (sig, body) = &got[0];
    let secret = SecretString::from(sim.config().client_secret);
    verify_signature(
        sig.as_deref(),
        body,
        &secret,
        sim.now_unix(),
        Duration::from_secs(300),
    )
    .unwrap();
    let wrong = SecretString::from("not-the-secret");
    assert!(
        verify_signature(
            sig.as_deref(),
            body,
            &wrong,
            sim.now_unix(),
            Duration::from_secs(300)
        )
        .is_err()
    );
    let ev = parse_webhook(body).unwrap();
    assert_eq!(ev.user_openid, "u1");
    assert_eq!(ev.client_key, sim.config().client_key);
    assert_eq!(
        ev.event,
        WebhookEvent::PublishComplete {
            publish_id: init.publish_id.clone(),
            publish_type: Some("DIRECT_PUBLISH".into())
        }
    );
    let record = sim.inspect()["webhooks"][0].clone();
    assert_eq!(record["attempts"], 3);
    assert_eq!(record["statuses"], json!([503, 503, 200]));

    sim.advance(30);
    let got = wait_for(&inbox, 2).await;
    let ev = parse_webhook(&got[1].1).unwrap();
    let WebhookEvent::PubliclyAvailable {
        post_id: Some(id), ..
    } = ev.event
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        client
            .fetch_status(&t, &init.publish_id)
            .await
            .unwrap()
            .public_post_ids,
        vec![id]
    );
    assert!(sim.take_down(&init.publish_id));
    let got = wait_for(&inbox, 3).await;
    assert!(
        matches!(parse_webhook(&got[2].1).unwrap().event, WebhookEvent::NoLongerPubliclyAvailable { post_id: Some(p), .. } if p == id)
    );
}

#[tokio::test]
async fn when_inbox_share_is_posted_by_the_user_should_emit_inbox_then_complete() {
    let (sim, inbox) = sim_with_hook(0).await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    let init = client.init_inbox(&t, &pull()).await.unwrap();
    sim.advance(15);
    assert_eq!(
        client
            .fetch_status(&t, &init.publish_id)
            .await
            .unwrap()
            .status,
        reelay_tiktok::PublishStatusKind::SendToUserInbox
    );
    assert!(sim.user_posts_inbox_share(&init.publish_id));
    let got = wait_for(&inbox, 2).await;
    let events: Vec<_> = got
        .iter()
        .map(|(_, b)| parse_webhook(b).unwrap().event)
        .collect();
    assert!(
        matches!(&events[0], WebhookEvent::InboxDelivered { publish_type: Some(p), .. } if p == "INBOX_SHARE")
    );
    assert!(
        matches!(&events[1], WebhookEvent::PublishComplete { publish_type: Some(p), .. } if p == "INBOX_SHARE")
    );
}

#[tokio::test]
async fn when_delivery_faults_are_injected_should_duplicate_drop_and_reorder() {
    let (sim, inbox) = sim_with_hook(0).await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    sim.webhook_faults(WebhookFaults {
        duplicate: 1,
        ..WebhookFaults::default()
    });
    let post = PostInfo::new(PrivacyLevel::SelfOnly, None);
    client.init_direct_post(&t, &post, &pull()).await.unwrap();
    sim.advance(15);
    let got = wait_for(&inbox, 2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        parse_webhook(&got[0].1).unwrap(),
        parse_webhook(&got[1].1).unwrap()
    );

    sim.webhook_faults(WebhookFaults {
        drop: 1,
        ..WebhookFaults::default()
    });
    client.init_direct_post(&t, &post, &pull()).await.unwrap();
    sim.advance(15);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(inbox.lock().await.got.len(), 2, "dropped");
    assert_eq!(sim.inspect()["webhooks"][1]["dropped"], true);

    sim.webhook_faults(WebhookFaults {
        reorder: 1,
        ..WebhookFaults::default()
    });
    let a = client.init_direct_post(&t, &post, &pull()).await.unwrap();
    sim.advance(1);
    let b = client.init_direct_post(&t, &post, &pull()).await.unwrap();
    sim.advance(15);
    let got = wait_for(&inbox, 4).await;
    let ids: Vec<String> = got[2..]
        .iter()
        .map(|(_, b)| match parse_webhook(b).unwrap().event {
            WebhookEvent::PublishComplete { publish_id, .. } => publish_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![b.publish_id, a.publish_id]);

    sim.webhook_faults(WebhookFaults {
        delay: 1,
        delay_ms: 400,
        ..WebhookFaults::default()
    });
    client.init_direct_post(&t, &post, &pull()).await.unwrap();
    let started = std::time::Instant::now();
    sim.advance(15);
    wait_for(&inbox, 5).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "delayed delivery"
    );
}

#[tokio::test]
async fn when_user_disconnects_should_fail_in_flight_publishes_and_notify() {
    let (sim, inbox) = sim_with_hook(0).await;
    let client = client(&sim, |_| {});
    let t = publish_token(&sim, "u1");
    let post = PostInfo::new(PrivacyLevel::SelfOnly, None);
    let init = client.init_direct_post(&t, &post, &pull()).await.unwrap();
    assert!(sim.revoke_user("u1", 1));
    let got = wait_for(&inbox, 2).await;
    let events: Vec<_> = got
        .iter()
        .map(|(_, b)| parse_webhook(b).unwrap().event)
        .collect();
    assert!(events.contains(&WebhookEvent::AuthorizationRemoved { reason: 1 }));
    assert!(events.iter().any(|e| matches!(e, WebhookEvent::PublishFailed { reason, publish_id, .. } if reason == "auth_removed" && *publish_id == init.publish_id)));
}

#[tokio::test]
async fn when_client_verifies_a_delivery_should_use_its_secret_and_window() {
    let (sim, inbox) = sim_with_hook(0).await;
    let client = client(&sim, |_| {});
    sim.mint_tokens("u9", &[]);
    sim.revoke_user("u9", 2);
    let got = wait_for(&inbox, 1).await;
    let (sig, body) = &got[0];
    let ev = client
        .verify_webhook(sig.as_deref(), body, sim.now_unix())
        .unwrap();
    assert_eq!(ev.event, WebhookEvent::AuthorizationRemoved { reason: 2 });
    assert!(matches!(
        client.verify_webhook(sig.as_deref(), body, sim.now_unix() + 301),
        Err(reelay_tiktok::WebhookError::Signature(
            reelay_tiktok::SignatureError::Stale { .. }
        ))
    ));
    let other = crate::common::client(&sim, |c| c.client_secret = SecretString::from("x"));
    assert!(
        other
            .verify_webhook(sig.as_deref(), body, sim.now_unix())
            .is_err()
    );
}
