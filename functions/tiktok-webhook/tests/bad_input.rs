//! Forged, replayed and malformed TikTok deliveries: each gets its specific error code in the
//! envelope and leaves every table item and every queue exactly as it was. The genuine
//! delivery, sent last, does change the snapshot (so the comparison can fail).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use reelay_aws::SystemClock;
use reelay_domain::job::PostMode;
use reelay_domain::lifecycle::Event;
use reelay_domain::ports::Clock;
use reelay_domain::usecase::{self, Advance};
use reelay_domain::{Job, PublishId};
use serde_json::{Value, json};

/// (label, method, TikTok-Signature, body, status, error code).
type Case<'a> = (&'a str, &'a str, Option<String>, Vec<u8>, u16, &'a str);

/// Every table item and every queue's counts (read without taking messages).
async fn snapshot(w: &World) -> (Vec<String>, BTreeMap<String, String>) {
    let ddb = aws_sdk_dynamodb::Client::new(&w.sdk);
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = ddb
            .scan()
            .table_name(&w.table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in out.items() {
            let sorted: BTreeMap<_, _> = item.iter().collect();
            items.push(format!("{sorted:?}"));
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    items.sort();
    let mut queues = BTreeMap::new();
    for (id, q) in &w.stack.queues {
        let attrs = w
            .sqs
            .get_queue_attributes()
            .queue_url(&q.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let mut counts: Vec<String> = attrs
            .attributes()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str().starts_with("ApproximateNumberOfMessages"))
            .map(|(k, v)| format!("{}={v}", k.as_str()))
            .collect();
        counts.sort();
        queues.insert(id.clone(), counts.join(","));
    }
    (items, queues)
}

/// Moves a queued job as the publisher would, up to TikTok's accepted `publish_id`.
async fn accepted(w: &World, job: Job, publish_id: &str) -> Job {
    let Advance::Moved(started) = usecase::advance_loaded(
        &w.jobs,
        &w.queue,
        &SystemClock,
        &policy(),
        job,
        &Event::PublishStarted,
    )
    .await
    .unwrap() else {
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

async fn post_raw(w: &World, method: &str, signature: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(
            method.parse().unwrap(),
            format!("{}/webhooks/tiktok", w.webhook_url),
        )
        .header("content-type", "application/json")
        .body(body);
    if let Some(s) = signature {
        req = req.header("TikTok-Signature", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn forged_replayed_and_malformed_deliveries_get_their_code_and_change_nothing() {
    let w = world(sim_config()).await;
    let account = w.connect("acct_bad", "open_bad").await;
    let (clip, _) = w.clip("bad", 1000, 1);
    let job = w
        .rendered_job(&account, post(PostMode::Direct, "bad"), clip)
        .await;
    accepted(&w, job, "v_pub_bad~v2-1.1").await;
    let body = envelope(
        "post.publish.complete",
        "open_bad",
        json!({"publish_id": "v_pub_bad~v2-1.1", "publish_type": "DIRECT_PUBLISH"}),
    );
    let now = SystemClock.now().as_secs();
    let window = i64::try_from(w.webhook.replay_window.as_secs()).unwrap();
    let good = w.signed(now, &body);
    let wrong_secret = reelay_tiktok::sign_webhook(
        &secrecy::SecretString::from("sim_client_secret_but_not_quite".to_owned()),
        now,
        body.as_bytes(),
    );
    let other = envelope(
        "post.publish.failed",
        "open_bad",
        json!({"publish_id": "v_pub_bad~v2-1.1", "reason": "forged"}),
    );
    let big = format!("{body}{}", " ".repeat(w.webhook.max_body_bytes));
    let not_utf8 = [body.as_bytes(), b"\xff\xfe"].concat();
    let unknown_user = envelope(
        "post.publish.complete",
        "open_nobody",
        json!({"publish_id": "v_pub_other", "publish_type": "DIRECT_PUBLISH"}),
    );
    let swapped_sig = good.replace(&format!("t={now}"), &format!("t={}", now - 1));

    let sign_bytes = |t: i64, b: &[u8]| reelay_tiktok::sign_webhook(&w.client_secret, t, b);
    let cases: Vec<Case<'_>> = vec![
        (
            "missing signature",
            "POST",
            None,
            body.clone().into_bytes(),
            401,
            "signature_missing",
        ),
        (
            "empty signature",
            "POST",
            Some(String::new()),
            body.clone().into_bytes(),
            401,
            "signature_malformed",
        ),
        (
            "signature without s",
            "POST",
            Some(format!("t={now}")),
            body.clone().into_bytes(),
            401,
            "signature_malformed",
        ),
        (
            "short signature",
            "POST",
            Some(format!("t={now},s=abcd")),
            body.clone().into_bytes(),
            401,
            "signature_malformed",
        ),
        (
            "wrong secret",
            "POST",
            Some(wrong_secret),
            body.clone().into_bytes(),
            401,
            "signature_invalid",
        ),
        (
            "altered body",
            "POST",
            Some(good.clone()),
            other.clone().into_bytes(),
            401,
            "signature_invalid",
        ),
        (
            "altered timestamp",
            "POST",
            Some(swapped_sig),
            body.clone().into_bytes(),
            401,
            "signature_invalid",
        ),
        (
            "stale (captured and replayed late)",
            "POST",
            Some(w.signed(now - window - 1, &body)),
            body.clone().into_bytes(),
            401,
            "signature_stale",
        ),
        (
            "from the future",
            "POST",
            Some(w.signed(now + window + 60, &body)),
            body.clone().into_bytes(),
            401,
            "signature_stale",
        ),
        (
            "oversized, correctly signed",
            "POST",
            Some(w.signed(now, &big)),
            big.clone().into_bytes(),
            413,
            "payload_too_large",
        ),
        (
            "invalid UTF-8, correctly signed",
            "POST",
            Some(sign_bytes(now, &not_utf8)),
            not_utf8.clone(),
            400,
            "invalid_webhook",
        ),
        (
            "not an envelope, correctly signed",
            "POST",
            Some(w.signed(now, "[]")),
            b"[]".to_vec(),
            400,
            "invalid_webhook",
        ),
    ];
    for (label, method, sig, bytes, status, code) in cases {
        let before = snapshot(&w).await;
        let (got, answer) = post_raw(&w, method, sig.as_deref(), bytes).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{label}: {answer}"
        );
        assert!(answer["error"]["message"].is_string(), "{label}");
        assert_eq!(before, snapshot(&w).await, "{label} changed state");
    }

    // A genuine delivery about nobody of ours: accepted (so TikTok stops retrying), no change.
    let before = snapshot(&w).await;
    let (got, answer) = w
        .post_webhook(Some(&w.signed(now, &unknown_user)), &unknown_user)
        .await;
    assert_eq!(got, 200, "{answer}");
    assert!(
        answer["result"].as_str().unwrap().starts_with("ignored:"),
        "{answer}"
    );
    assert_eq!(
        before,
        snapshot(&w).await,
        "an unknown user's event changed state"
    );

    // The genuine delivery changes the snapshot; replaying it inside the window is absorbed.
    let before = snapshot(&w).await;
    let (got, answer) = w.post_webhook(Some(&good), &body).await;
    assert_eq!(
        (got, answer["result"].as_str()),
        (200, Some("moved:publish_complete"))
    );
    let after = snapshot(&w).await;
    assert_ne!(before, after, "the snapshot must see the genuine delivery");
    for _ in 0..3 {
        let (got, answer) = w.post_webhook(Some(&good), &body).await;
        assert_eq!((got, answer["result"].as_str()), (200, Some("absorbed")));
    }
    assert_eq!(
        after,
        snapshot(&w).await,
        "a replayed delivery changed state"
    );
}
