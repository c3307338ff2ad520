//! The TikTok webhook as API Gateway runs it: `handler` behind reelay-local's HTTP front, built
//! by the function's own `wiring::live` against the local AWS endpoint, deliveries signed as
//! TikTok signs them (some sent by tiktok-sim itself). What an observation does to a job is the
//! domain's (reelay-testkit's suites); these prove the adapter: authentication before parsing,
//! decoding, the codes answered, and the store's OPENID# lookup behind the two account paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reelay_aws::SystemClock;
use reelay_domain::account::AccountHealth;
use reelay_domain::job::{JobError, PrivacyLevel};
use reelay_domain::lifecycle::Event;
use reelay_domain::ports::{AccountStore, Clock, JobStore, Ports};
use reelay_domain::usecase::{Advance, Core};
use reelay_domain::{AccountId, Clip, Job, JobState, PostMode, PostSettings, PublishId, TenantId};
use reelay_local::{HttpFront, Routes, StackOptions, Testbed, rendered_job};
use secrecy::SecretString;
use serde_json::{Value, json};
use tiktok_webhook::{DEFAULT_MAX_BODY_BYTES, Deps, handler, wiring};

/// (label, TikTok-Signature, body, status, error code).
type Case<'a> = (&'a str, Option<String>, Vec<u8>, u16, &'a str);

const SCOPES: [&str; 3] = ["user.info.basic", "video.publish", "video.upload"];

struct World {
    bed: Testbed,
    deps: std::sync::Arc<Deps<wiring::LivePorts>>,
    _front: HttpFront,
    url: String,
    secret: SecretString,
    client_key: String,
    tenant: TenantId,
}

async fn world() -> World {
    let bed = Testbed::start(&StackOptions::for_tests())
        .await
        .expect("testbed: start the local endpoint (infra/scripts/aws-emulator.sh start)");
    let config = bed
        .wiring("http://127.0.0.1:9", None)
        .tiktok_webhook_config();
    let deps = std::sync::Arc::new(wiring::live(&bed.sdk, &config).await.unwrap());
    let served = deps.clone();
    let routes = Routes::new()
        .function_from_template(&bed.template, "TikTokWebhookFunction", move |req| {
            let deps = served.clone();
            async move { handler(&*deps, req).await }
        })
        .unwrap();
    let front = HttpFront::start(SocketAddr::from(([127, 0, 0, 1], 0)), routes)
        .await
        .unwrap();
    let url = format!("{}/webhooks/tiktok", front.url());
    let sim = bed.tiktok.as_ref().unwrap();
    sim.patch_config(&json!({ "webhook_url": url })).unwrap();
    let cfg = sim.config();
    World {
        deps,
        _front: front,
        url,
        secret: SecretString::from(cfg.client_secret),
        client_key: cfg.client_key,
        tenant: TenantId::parse("tenant_a").unwrap(),
        bed,
    }
}

fn post(title: &str) -> PostSettings {
    PostSettings {
        privacy_level: Some(PrivacyLevel::SelfOnly),
        title: Some(title.to_owned()),
        ..reelay_testkit::sample::post(PostMode::Direct)
    }
}

fn clip(name: &str) -> Clip {
    reelay_testkit::sample::clip(name, 9.0)
}

/// Moves `job` as the publisher would: attempt recorded, then `answer` for it.
async fn attempted<P: Ports>(core: &Core<P>, job: Job, answer: impl Fn(u32) -> Event) -> Job {
    let Advance::Moved(started) = core
        .advance_loaded(job, &Event::PublishStarted)
        .await
        .unwrap()
    else {
        panic!("not started")
    };
    let event = answer(started.job.attempt);
    match core.advance_loaded(started.job, &event).await.unwrap() {
        Advance::Moved(a) => a.job,
        other => panic!("{event:?} did not move the job: {other:?}"),
    }
}

fn accepted(publish_id: &str) -> impl Fn(u32) -> Event {
    let publish_id = PublishId::parse(publish_id).unwrap();
    move |attempt| Event::PublishAccepted {
        attempt,
        publish_id: publish_id.clone(),
        upload: false,
        upstream_log_id: None,
    }
}

impl World {
    async fn connect(&self, account: &str, open_id: &str) -> AccountId {
        let bed = &self.bed;
        bed.connect_account(&self.tenant, account, open_id, &SCOPES)
            .await
            .unwrap()
    }

    async fn queued(&self, account: &AccountId, title: &str) -> Job {
        let core = &self.deps.core;
        rendered_job(
            core,
            &self.tenant,
            account,
            post(title),
            clip(title),
            SystemClock.now(),
        )
        .await
        .unwrap()
    }

    async fn job(&self, job: &Job) -> Job {
        self.deps
            .core
            .ports
            .store
            .get(&job.id)
            .await
            .unwrap()
            .unwrap()
    }

    /// A TikTok envelope (its content is a JSON *string*).
    fn envelope(&self, event: &str, open_id: &str, content: Value) -> String {
        json!({
            "client_key": self.client_key,
            "event": event,
            "create_time": SystemClock.now().as_secs(),
            "user_openid": open_id,
            "content": content.to_string(),
        })
        .to_string()
    }

    fn signed(&self, t: i64, body: &[u8]) -> String {
        reelay_tiktok::sign_webhook(&self.secret, t, body)
    }

    /// POSTs a delivery over HTTP; (status, body).
    async fn post(&self, signature: Option<&str>, body: impl Into<Vec<u8>>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.into());
        if let Some(s) = signature {
            req = req.header("TikTok-Signature", s);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn deliver(&self, body: &str) -> (u16, Value) {
        let signature = self.signed(SystemClock.now().as_secs(), body.as_bytes());
        self.post(Some(&signature), body.to_owned()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_malformed_deliveries_get_their_code_and_change_nothing() {
    let w = world().await;
    let account = w.connect("acct_bad", "open_bad").await;
    let job = w.queued(&account, "bad").await;
    attempted(&w.deps.core, job, accepted("v_pub_bad~v2-1.1")).await;
    let body = w.envelope(
        "post.publish.complete",
        "open_bad",
        json!({"publish_id": "v_pub_bad~v2-1.1", "publish_type": "DIRECT_PUBLISH"}),
    );
    let now = SystemClock.now().as_secs();
    let window = i64::try_from(w.deps.replay_window.as_secs()).unwrap();
    let good = w.signed(now, body.as_bytes());
    let wrong_secret = reelay_tiktok::sign_webhook(
        &SecretString::from("not_the_client_secret".to_owned()),
        now,
        body.as_bytes(),
    );
    let other = w.envelope(
        "post.publish.failed",
        "open_bad",
        json!({"publish_id": "v_pub_bad~v2-1.1", "reason": "forged"}),
    );
    let big = format!("{body}{}", " ".repeat(DEFAULT_MAX_BODY_BYTES));
    let not_utf8 = [body.as_bytes(), b"\xff\xfe"].concat();
    let bad_publish_id = w.envelope(
        "post.publish.complete",
        "open_bad",
        json!({"publish_id": "", "publish_type": "DIRECT_PUBLISH"}),
    );
    let altered_time = good.replace(&format!("t={now}"), &format!("t={}", now - 1));

    let cases: Vec<Case<'_>> = vec![
        (
            "missing signature",
            None,
            body.clone().into(),
            401,
            "signature_missing",
        ),
        (
            "empty signature",
            Some(String::new()),
            body.clone().into(),
            401,
            "signature_malformed",
        ),
        (
            "no s=",
            Some(format!("t={now}")),
            body.clone().into(),
            401,
            "signature_malformed",
        ),
        (
            "short s=",
            Some(format!("t={now},s=abcd")),
            body.clone().into(),
            401,
            "signature_malformed",
        ),
        (
            "wrong secret",
            Some(wrong_secret),
            body.clone().into(),
            401,
            "signature_invalid",
        ),
        (
            "altered body",
            Some(good.clone()),
            other.into(),
            401,
            "signature_invalid",
        ),
        (
            "altered timestamp",
            Some(altered_time),
            body.clone().into(),
            401,
            "signature_invalid",
        ),
        (
            "stale (replayed late)",
            Some(w.signed(now - window - 1, body.as_bytes())),
            body.clone().into(),
            401,
            "signature_stale",
        ),
        (
            "from the future",
            Some(w.signed(now + window + 60, body.as_bytes())),
            body.clone().into(),
            401,
            "signature_stale",
        ),
        (
            "oversized, signed",
            Some(w.signed(now, big.as_bytes())),
            big.into(),
            413,
            "payload_too_large",
        ),
        (
            "invalid UTF-8, signed",
            Some(w.signed(now, &not_utf8)),
            not_utf8.clone(),
            400,
            "invalid_webhook",
        ),
        (
            "not an envelope, signed",
            Some(w.signed(now, b"[]")),
            b"[]".to_vec(),
            400,
            "invalid_webhook",
        ),
        (
            "no publish_id, signed",
            Some(w.signed(now, bad_publish_id.as_bytes())),
            bad_publish_id.into(),
            400,
            "invalid_webhook",
        ),
    ];
    for (label, signature, bytes, status, code) in cases {
        let before = w.bed.snapshot().await.unwrap();
        let (got, answer) = w.post(signature.as_deref(), bytes).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{label}: {answer}"
        );
        assert!(answer["error"]["message"].is_string(), "{label}");
        assert!(answer["error"].get("details").is_some(), "{label}");
        assert_eq!(
            before,
            w.bed.snapshot().await.unwrap(),
            "{label} changed state"
        );
    }

    // A genuine delivery about nobody of ours: 200 (so TikTok stops retrying), no change.
    let before = w.bed.snapshot().await.unwrap();
    let nobody = w.envelope(
        "post.publish.complete",
        "open_nobody",
        json!({"publish_id": "v_pub_other", "publish_type": "DIRECT_PUBLISH"}),
    );
    let (got, answer) = w.deliver(&nobody).await;
    assert_eq!(
        (got, answer["result"].as_str()),
        (200, Some("ignored:publish"))
    );
    assert_eq!(before, w.bed.snapshot().await.unwrap());

    // The genuine delivery changes the snapshot; replays inside the window are absorbed.
    let before = w.bed.snapshot().await.unwrap();
    let (got, answer) = w.post(Some(&good), body.clone()).await;
    assert_eq!(
        (got, answer["result"].as_str()),
        (200, Some("moved:publish_complete"))
    );
    let after = w.bed.snapshot().await.unwrap();
    assert_ne!(before, after, "the snapshot must see the genuine delivery");
    for _ in 0..3 {
        let (got, answer) = w.post(Some(&good), body.clone()).await;
        assert_eq!((got, answer["result"].as_str()), (200, Some("absorbed")));
    }
    assert_eq!(
        after,
        w.bed.snapshot().await.unwrap(),
        "a replay changed state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_post_is_a_delivery() {
    let w = world().await;
    let body = w.envelope(
        "post.publish.complete",
        "open_x",
        json!({"publish_id": "p"}),
    );
    let mut req = lambda_http::Request::new(lambda_http::Body::from(body.clone()));
    *req.method_mut() = lambda_http::http::Method::GET;
    let signature = w.signed(SystemClock.now().as_secs(), body.as_bytes());
    req.headers_mut()
        .insert("tiktok-signature", signature.parse().unwrap());
    let resp = handler(&*w.deps, req).await;
    assert_eq!(resp.status().as_u16(), 405);
    let answer: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(answer["error"]["code"], "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_id_never_stored_resolves_the_accounts_unknown_job() {
    let w = world().await;
    let account = w.connect("acct_unknown", "open_unknown").await;
    let job = w.queued(&account, "unknown").await;
    let unknown = attempted(&w.deps.core, job, |attempt| Event::PublishOutcomeUnknown {
        attempt,
        error: JobError {
            code: "upstream_no_response".into(),
            message: "the init's answer was lost".into(),
            upstream_log_id: None,
        },
    })
    .await;
    assert_eq!(
        (unknown.state, unknown.publish_id.clone()),
        (JobState::PublishUnknown, None)
    );

    // TikTok names a publish we never stored, for this account's creator: that init landed.
    let body = w.envelope(
        "post.publish.complete",
        "open_unknown",
        json!({"publish_id": "v_pub_lost~v2-1.9", "publish_type": "DIRECT_PUBLISH"}),
    );
    let (status, answer) = w.deliver(&body).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("resolved:publish_complete")),
        "{answer}"
    );
    let resolved = w.job(&unknown).await;
    assert_eq!(resolved.state, JobState::PublishComplete);
    assert_eq!(
        resolved.publish_id.map(|p| p.to_string()).as_deref(),
        Some("v_pub_lost~v2-1.9")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_removed_by_tiktok_marks_the_account_and_holds_its_jobs() {
    let w = world().await;
    let gone = w.connect("acct_gone", "open_gone").await;
    let stays = w.connect("acct_stays", "open_stays").await;
    let queued = w.queued(&gone, "gone-q").await;
    let elsewhere = w.queued(&stays, "stays-q").await;
    assert_eq!(queued.state, JobState::PublishQueued);

    // The simulator revokes and delivers `authorization.removed` itself, signed, over HTTP.
    assert!(w.bed.tiktok.as_ref().unwrap().revoke_user("open_gone", 1));
    // The delivery is asynchronous and the use case marks the account before it holds the
    // jobs: wait for both (the bound only catches a delivery that never comes).
    let until = Instant::now() + Duration::from_secs(120);
    let store = &w.deps.core.ports.store;
    loop {
        let account = store.get_account(&w.tenant, &gone).await.unwrap().unwrap();
        let held = w.job(&queued).await.hold.map(|h| h.reason);
        if account.health == AccountHealth::NeedsReauth && held.as_deref() == Some("needs_reauth") {
            break;
        }
        assert!(
            Instant::now() < until,
            "authorization.removed never applied: {:?}, hold {held:?}",
            account.health
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(w.job(&elsewhere).await.state, JobState::PublishQueued);
    let other = store.get_account(&w.tenant, &stays).await.unwrap().unwrap();
    assert_eq!(other.health, AccountHealth::Active);

    // Signed by TikTok for a creator we never connected: accepted, nothing to do.
    let body = w.envelope(
        "authorization.removed",
        "open_stranger",
        json!({"reason": 1}),
    );
    let (status, answer) = w.deliver(&body).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("ignored:user"))
    );
}
