//! The Ssemble webhook as API Gateway runs it: `handler` behind reelay-local's HTTP front, built
//! by the function's own `wiring::live` against the local AWS endpoint, with ssemble-sim (over
//! HTTP) rendering what the real render submitter sent and delivering its webhooks. How a render
//! is confirmed and fanned out is the domain's (reelay-testkit's suites); these prove the
//! adapter: the token in the path, the payload read only as a hint, every answer's code, and the
//! real clients end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lambda_http::{Body, Response};
use reelay_aws::SystemClock;
use reelay_domain::job::{MediaSource, RenderRequest};
use reelay_domain::messages::QueueKind;
use reelay_domain::ports::{Clock, Entropy, JobStore};
use reelay_domain::{AccountId, Job, JobId, JobState, PostMode, TenantId};
use reelay_local::{HttpFront, Routes, StackOptions, Testbed, received_job};
use serde_json::{Value, json};
use ssemble_sim::WebhookFaults;
use ssemble_webhook::{DEFAULT_MAX_BODY_BYTES, Deps, handler, wiring};

type Deliveries = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// (label, path, body, status, error code).
type Case<'a> = (&'a str, String, Vec<u8>, u16, &'a str);

struct World {
    bed: Testbed,
    deps: Arc<Deps<wiring::LivePorts>>,
    submitter: render_submitter::Deps<render_submitter::wiring::LivePorts>,
    _front: HttpFront,
    base: String,
    /// Every delivery the front received (the path carries the job's token).
    seen: Deliveries,
    /// Off: the front only records, as a stand-in endpoint would (the test then replays).
    forward: Arc<AtomicBool>,
}

async fn world(faults: WebhookFaults) -> World {
    let mut options = StackOptions::for_tests();
    // Renders settle in seconds; Ssemble's 10 s per delivery attempt, on the sim's clock.
    options.ssemble_sim.time_scale = 60.0;
    options.ssemble_sim.seed = 7;
    options.ssemble_sim.webhook_timeout_secs = 600.0;
    let bed = Testbed::start(&options)
        .await
        .expect("testbed: start the local endpoint (infra/scripts/aws-emulator.sh start)");
    bed.ssemble.as_ref().unwrap().set_webhook_faults(faults);
    let config = bed
        .wiring("http://127.0.0.1:9", None)
        .ssemble_webhook_config();
    let deps = Arc::new(wiring::live(&bed.sdk, &config).await.unwrap());
    let (seen, forward) = (Deliveries::default(), Arc::new(AtomicBool::new(true)));
    let (d, s, f) = (deps.clone(), seen.clone(), forward.clone());
    let routes = Routes::new()
        .function_from_template(&bed.template, "SsembleWebhookFunction", move |req| {
            let (deps, seen, forward) = (d.clone(), s.clone(), f.clone());
            async move {
                let path = req.uri().path().to_owned();
                seen.lock()
                    .unwrap()
                    .push((path, req.body().as_ref().to_vec()));
                if forward.load(Ordering::SeqCst) {
                    handler(&*deps, req).await
                } else {
                    Response::new(Body::from("{}"))
                }
            }
        })
        .unwrap();
    let front = HttpFront::start(SocketAddr::from(([127, 0, 0, 1], 0)), routes)
        .await
        .unwrap();
    let base = front.url();
    // The real submitter, telling Ssemble to call this front back.
    let submitter_config = bed.wiring(base.clone(), None).render_submitter_config();
    let submitter = render_submitter::wiring::live(&bed.sdk, &submitter_config)
        .await
        .unwrap();
    World {
        bed,
        deps,
        submitter,
        _front: front,
        base,
        seen,
        forward,
    }
}

impl World {
    /// A received job, submitted to Ssemble by the render submitter.
    async fn rendering(&self, account: &str, tag: &str) -> Job {
        let request = RenderRequest {
            media: MediaSource::FileUrl(format!(
                "https://cdn.example.com/{tag}/{:032x}.mp4",
                SystemClock.random_u128()
            )),
            start: 0.0,
            end: 600.0,
            options: Default::default(),
        };
        let tenant = TenantId::parse("tenant_a").unwrap();
        let account = AccountId::parse(account).unwrap();
        let post = reelay_testkit::sample::post(PostMode::Direct);
        let core = &self.submitter.core;
        let job = received_job(core, &tenant, &account, request, post)
            .await
            .unwrap();
        let far = SystemClock.now().plus(Duration::from_secs(25));
        let queue = &self.bed.resources.render_queue_url;
        let delivered = self
            .bed
            .deliver(queue, Duration::from_secs(2), |e| {
                render_submitter::handler(&self.submitter, e, far)
            })
            .await
            .unwrap();
        assert_eq!((delivered.messages.len(), delivered.failed().len()), (1, 0));
        let job = self.job(&job.id).await;
        assert_eq!(job.state, JobState::Rendering);
        job
    }

    async fn job(&self, id: &JobId) -> Job {
        self.deps.core.ports.store.get(id).await.unwrap().unwrap()
    }

    /// The first delivery Ssemble made for `job` (path, body).
    async fn delivery_for(&self, job: &Job) -> (String, Vec<u8>) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .find(|(p, _)| p.contains(job.id.as_str()))
                .cloned();
            if let Some(d) = found {
                return d;
            }
            assert!(
                Instant::now() < until,
                "Ssemble never delivered for {}",
                job.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_state(&self, id: &JobId, state: JobState) -> Job {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let job = self.job(id).await;
            if job.state == state {
                return job;
            }
            assert!(
                Instant::now() < until,
                "job {id} is {} (wanted {state})",
                job.state
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Publish messages on the queue now, by job id (deleted as read).
    async fn publish_messages(&self) -> Vec<JobId> {
        let queue = &self.bed.resources.publish_queue_url;
        let mut out = Vec::new();
        loop {
            let batch = self
                .bed
                .receive(queue, 10, Duration::from_secs(1))
                .await
                .unwrap();
            if batch.is_empty() {
                return out;
            }
            for m in batch {
                let message = reelay_aws::decode_work_message(m.body()).unwrap();
                assert_eq!(message.kind, QueueKind::Publish);
                out.push(message.job_id);
                let sqs = self.bed.sqs();
                let delete = sqs.delete_message().queue_url(queue);
                delete
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_render_is_confirmed_and_queued_once_however_often_it_is_delivered() {
    // Ssemble sends this delivery twice.
    let w = world(WebhookFaults {
        duplicate: 1,
        ..WebhookFaults::default()
    })
    .await;
    let job = w.rendering("acct_1", "happy").await;
    let request_id = job.request_id.clone().expect("requestId persisted");

    let queued = w.wait_state(&job.id, JobState::PublishQueued).await;
    let clip = queued.clip.clone().expect("a clip chosen");
    assert!(
        clip.viral_score.unwrap() > 10.0,
        "GET's scale (0-100), not the webhook's (0-10)"
    );
    assert_eq!(w.publish_messages().await, vec![job.id.clone()]);

    // The duplicate delivery changes nothing.
    let sim = w.bed.ssemble.as_ref().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let delivered = || {
        let inspection = sim.inspect();
        let deliveries = inspection.deliveries_for(request_id.as_str());
        deliveries
            .iter()
            .filter(|d| d.outcome == "delivered")
            .count()
    };
    while delivered() < 2 {
        assert!(Instant::now() < until, "the duplicate was never delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        w.job(&job.id).await.version,
        queued.version,
        "the duplicate changed the job"
    );

    // A late, contradicting hint on the genuine path is not trusted.
    let (path, _) = w.delivery_for(&job).await;
    let failed = json!({"event": "shorts.failed", "requestId": request_id.as_str(),
        "status": "failed", "data": {"failureReason": "forged"}});
    let (status, body) = w.post(&path, failed.to_string()).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("already_settled")),
        "{body}"
    );
    assert_eq!(w.job(&job.id).await.version, queued.version);
    assert!(
        w.publish_messages().await.is_empty(),
        "no second publish message"
    );
    let inspection = sim.inspect();
    assert!(
        inspection.limit_violations.is_empty(),
        "{:?}",
        inspection.limit_violations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_deliveries_get_their_code_and_change_nothing() {
    let w = world(WebhookFaults::default()).await;
    // A stand-in endpoint first: Ssemble's genuine delivery is only recorded, not handled.
    w.forward.store(false, Ordering::SeqCst);
    let job = w.rendering("acct_1", "forged").await;
    let other = w.rendering("acct_2", "other").await;
    let (genuine_path, genuine_body) = w.delivery_for(&job).await;
    // The other job's genuine delivery too, before the front starts handling deliveries: one
    // arriving later would be confirmed mid-case and show as a forged delivery changing state.
    w.delivery_for(&other).await;
    w.forward.store(true, Ordering::SeqCst);
    let token = genuine_path.rsplit('.').next().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{genuine_path}");

    let base = "/webhooks/ssemble";
    let wrong = if token.starts_with('a') { "b" } else { "a" }.to_owned() + &token[1..];
    let hint = json!({"event": "shorts.completed", "requestId": job.request_id.as_ref().map(|r| r.as_str())})
        .to_string()
        .into_bytes();
    let oversized = vec![b' '; DEFAULT_MAX_BODY_BYTES + 1];
    let id = &job.id;
    let cases: Vec<Case<'_>> = vec![
        (
            "missing token",
            format!("{base}/{id}"),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "empty token",
            format!("{base}/{id}."),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "wrong token",
            format!("{base}/{id}.{wrong}"),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "uppercase token",
            format!("{base}/{id}.{}", token.to_uppercase()),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "short token",
            format!("{base}/{id}.{}", &token[..31]),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "token with a suffix",
            format!("{base}/{id}.{token}0"),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "another job's token",
            format!("{base}/{}.{token}", other.id),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "unknown job",
            format!("{base}/job_01HT0000000000000000000000.{token}"),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "not a job id",
            format!("{base}/x.{token}"),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "wrong token, not JSON",
            format!("{base}/{id}.{wrong}"),
            b"\xff{".to_vec(),
            404,
            "not_found",
        ),
        (
            "right token, not JSON",
            genuine_path.clone(),
            b"\xff{".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "oversized",
            genuine_path.clone(),
            oversized,
            413,
            "body_too_large",
        ),
    ];
    for (label, path, body, status, code) in cases {
        let before = w.bed.snapshot().await.unwrap();
        let (got, answer) = w.post(&path, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{label}: {answer}"
        );
        assert!(answer["error"]["message"].is_string(), "{label}");
        assert_eq!(
            before,
            w.bed.snapshot().await.unwrap(),
            "{label} changed state"
        );
    }

    // The genuine delivery is confirmed with Ssemble and moves the job.
    let before = w.bed.snapshot().await.unwrap();
    let (got, answer) = w.post(&genuine_path, genuine_body).await;
    assert_eq!(
        (got, answer["result"].as_str()),
        (200, Some("confirmed")),
        "{answer}"
    );
    assert_ne!(
        before,
        w.bed.snapshot().await.unwrap(),
        "the snapshot must see it"
    );
    assert_eq!(w.job(&job.id).await.state, JobState::PublishQueued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_asks_for_redelivery_and_changes_nothing() {
    let w = world(WebhookFaults::default()).await;
    w.forward.store(false, Ordering::SeqCst);
    let job = w.rendering("acct_1", "store").await;
    let (path, body) = w.delivery_for(&job).await;
    let mut config = w
        .bed
        .wiring("http://127.0.0.1:9", None)
        .ssemble_webhook_config();
    config.table_name = format!("{}-missing", config.table_name);
    let broken = wiring::live(&w.bed.sdk, &config).await.unwrap();

    let mut req = lambda_http::Request::new(Body::from(body));
    *req.method_mut() = lambda_http::http::Method::POST;
    *req.uri_mut() = path.parse().unwrap();
    let before = w.bed.snapshot().await.unwrap();
    let resp = handler(&broken, req).await;
    assert_eq!(resp.status().as_u16(), 503);
    let answer: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(answer["error"]["code"], "temporarily_unavailable");
    assert_eq!(before, w.bed.snapshot().await.unwrap());
}
