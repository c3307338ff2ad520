//! received → rendering → webhook → publish_queued against real parts: MiniStack through the
//! SDK (template.yaml resources under a random suffix), ssemble-sim over real HTTP delivering
//! real webhooks to the handler behind a local HTTP server, and real SQS messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../render-submitter/tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use common::{Setup, World, world};
use reelay_aws::{
    DynamoAccountStore, DynamoJobStore, SqsWorkQueue, SystemClock, decode_work_message,
};
use reelay_domain::budget::Limits;
use reelay_domain::job::ClipChoice;
use reelay_domain::messages::QueueKind;
use reelay_domain::ports::JobStore;
use reelay_domain::{JobId, JobSource, JobState};
use reelay_ssemble::SsembleClient;
use render_submitter::ssemble_budget_scope;
use serde_json::{Value, json};
use ssemble_sim::WebhookFaults;
use ssemble_webhook::{DEFAULT_MAX_BODY_BYTES, Deps, function_handler};

type WebhookDeps =
    Deps<DynamoJobStore, DynamoAccountStore, SqsWorkQueue, SystemClock, SsembleClient>;

struct Bridge {
    deps: WebhookDeps,
    /// Paths Ssemble delivered to (they carry the tokens, known only to Ssemble and the test).
    paths: Mutex<Vec<String>>,
    /// Every answer given, for diagnostics.
    answers: Mutex<Vec<String>>,
}

/// API Gateway's part, played by a local HTTP server: a real request in, `lambda_http` request
/// to the handler, its response back.
async fn bridge(
    State(b): State<Arc<Bridge>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    b.paths.lock().unwrap().push(parts.uri.path().to_owned());
    let mut lreq = lambda_http::Request::new(lambda_http::Body::from(bytes.to_vec()));
    *lreq.method_mut() = parts.method;
    *lreq.uri_mut() = parts.uri;
    *lreq.headers_mut() = parts.headers;
    // Lambda finishes an invocation whatever the caller does; a dropped connection must not
    // cancel the handler here either.
    let handler = b.clone();
    let resp = tokio::spawn(async move { function_handler(&handler.deps, lreq).await })
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes: Vec<u8> = body.as_ref().to_vec();
    b.answers.lock().unwrap().push(format!(
        "{} {}",
        parts.status,
        String::from_utf8_lossy(&bytes)
    ));
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Starts the webhook function behind HTTP; returns its public base URL.
async fn serve_webhooks(w: &World, limits: Limits) -> (String, Arc<Bridge>) {
    let state = Arc::new(Bridge {
        deps: Deps {
            jobs: w.jobs.clone(),
            accounts: w.accounts.clone(),
            queue: w.queue.clone(),
            clock: SystemClock,
            render: w.client.clone(),
            policy: common::policy(),
            limits,
            budget_scope: ssemble_budget_scope(&w.key),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            work_deadline: Duration::from_secs(7),
        },
        paths: Mutex::new(Vec::new()),
        answers: Mutex::new(Vec::new()),
    });
    let app = Router::new().fallback(bridge).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

/// Waits for `state`, explaining a timeout with what the webhook answered and Ssemble saw.
async fn wait_state(w: &World, b: &Bridge, id: &JobId, state: JobState) -> reelay_domain::Job {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = w.job(id).await;
        if job.state == state {
            return job;
        }
        if Instant::now() > deadline {
            let inspection = w.sim.inspect();
            panic!(
                "job {id} is {} (wanted {state}); webhook answers: {:?}; deliveries: {:?}; calls: {:?}",
                job.state,
                b.answers.lock().unwrap(),
                inspection
                    .webhook_deliveries
                    .iter()
                    .map(|d| (d.event.clone(), d.outcome.clone(), d.status))
                    .collect::<Vec<_>>(),
                w.calls_by_endpoint()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn scaled() -> Limits {
    Limits::default().time_scaled(60.0)
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Publish messages currently on the queue, by job id (deleted as read).
async fn publish_messages(w: &World) -> Vec<JobId> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let batch = w.receive(&w.publish_url, 1).await;
        if batch.is_empty() && !out.is_empty() {
            break;
        }
        for m in batch {
            let msg = decode_work_message(m.body()).unwrap();
            assert_eq!(msg.kind, QueueKind::Publish);
            assert_eq!(
                m.attributes()
                    .unwrap()
                    .get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                    .map(String::as_str),
                Some(msg.group_id().as_str())
            );
            out.push(msg.job_id);
            w.sqs
                .delete_message()
                .queue_url(&w.publish_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    out
}

/// Waits until the simulator has finished the request (its ground truth, no API call).
async fn wait_sim_terminal(w: &World, request_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = w
            .sim
            .inspect()
            .requests
            .iter()
            .find(|r| r.request_id == request_id)
            .map(|r| r.status.clone());
        if matches!(status.as_deref(), Some("completed" | "failed")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "request {request_id} still {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the simulator holds `n` deliveries (they are queued when a request settles).
async fn wait_held(w: &World, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.sim.inspect().held_webhooks < n {
        assert!(Instant::now() < deadline, "fewer than {n} webhooks held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn render_completed_events(trail: &[reelay_domain::AuditEvent]) -> usize {
    trail
        .iter()
        .filter(|e| e.event == "render_completed")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_render_completes_should_confirm_choose_the_top_clip_and_queue_the_publish() {
    let w = world(Setup::default()).await;
    let (base, bridge) = serve_webhooks(&w, scaled()).await;
    let submitter = w.submitter(&base, scaled());
    // Ssemble sends this delivery twice.
    w.sim.set_webhook_faults(WebhookFaults {
        duplicate: 1,
        ..WebhookFaults::default()
    });
    let source = w.source("happy");
    let job = w.ingest("acct_1", &source, ClipChoice::TopViralScore).await;

    w.drain_render(&submitter, 1).await;
    let rendering = w.job(&job.id).await;
    assert_eq!(rendering.state, JobState::Rendering);
    let request_id = rendering.request_id.clone().expect("requestId persisted");
    assert_eq!(Some(&request_id), w.sim_request_for(&source).as_ref());

    let ready = wait_state(&w, &bridge, &job.id, JobState::PublishQueued).await;

    // The clip is the top viral_score of GET /shorts/:id (0-100), not the webhook's (0-10).
    let doc = w.client.get(request_id.as_str()).await.unwrap().data;
    let best = doc.usable_shorts_by_score()[0].clone();
    let clip = ready.clip.clone().expect("clip chosen");
    assert_eq!(clip.short_id, best.id);
    assert_eq!(clip.viral_score, best.viral_score);
    assert!(
        clip.viral_score.unwrap() > 10.0,
        "GET's scale, not the webhook's"
    );
    assert_eq!(publish_messages(&w).await, vec![job.id.clone()]);

    // The duplicate delivery (and anything late) changes nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while w
        .sim
        .inspect()
        .deliveries_for(request_id.as_str())
        .iter()
        .filter(|d| d.outcome == "delivered")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the duplicate was never delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = w.job(&job.id).await;
    assert_eq!(after.version, ready.version, "duplicate changed the job");
    assert_eq!(
        render_completed_events(&w.jobs.audit_trail(&job.id).await.unwrap()),
        1
    );

    // A late, contradicting hint on the real URL is not trusted.
    let path = bridge.paths.lock().unwrap()[0].clone();
    let failed_hint = json!({"event": "shorts.failed", "requestId": request_id.as_str(),
        "status": "failed", "data": {"failureReason": "forged"}});
    let (status, body) = post(&format!("{base}{path}"), failed_hint.to_string()).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("already_settled"))
    );
    let (status, body) = post(&format!("{base}{path}"), "<html>").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, body) = post(
        &format!("{base}{path}"),
        vec![b' '; DEFAULT_MAX_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    assert_eq!(w.job(&job.id).await.version, ready.version);
    assert!(
        publish_messages(&w).await.is_empty(),
        "no second publish message"
    );
    w.assert_no_limit_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_webhooks_arrive_reordered_or_forged_should_record_failures_and_complete_the_rest() {
    let w = world(Setup::default()).await;
    let (base, bridge) = serve_webhooks(&w, scaled()).await;
    let submitter = w.submitter(&base, scaled());
    w.sim.set_webhook_faults(WebhookFaults {
        hold: true,
        ..WebhookFaults::default()
    });
    let failing = w
        .ingest("acct_1", &w.source("renderfail"), ClipChoice::TopViralScore)
        .await;
    let fine = w
        .ingest("acct_2", &w.source("fine"), ClipChoice::TopViralScore)
        .await;
    w.drain_render(&submitter, 2).await;
    let failing = w.job(&failing.id).await;
    let fine = w.job(&fine.id).await;
    for job in [&failing, &fine] {
        assert_eq!(job.state, JobState::Rendering);
        wait_sim_terminal(&w, job.request_id.as_ref().unwrap().as_str()).await;
    }

    // A forged token: 404 in the envelope, no state change, and no Ssemble call spent on it.
    let calls_before = w.sim.inspect().calls.len();
    let forged = format!("{base}/webhooks/ssemble/{}.{}", fine.id, "ab".repeat(16));
    let hint = json!({"event": "shorts.completed", "requestId": fine.request_id.as_ref().unwrap().as_str()});
    let (status, body) = post(&forged, hint.to_string()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"].get("details").is_some());
    assert_eq!(w.job(&fine.id).await.version, fine.version);
    assert_eq!(w.sim.inspect().calls.len(), calls_before);

    // Ssemble's deliveries, in reverse order.
    wait_held(&w, 2).await;
    assert_eq!(w.sim.release_webhooks(true), 2);
    let failed = wait_state(&w, &bridge, &failing.id, JobState::RenderFailed).await;
    let error = failed.last_error.expect("failure recorded");
    assert_eq!(error.code, "render_failed");
    assert_eq!(error.message, "Rendering failed", "Ssemble's failureReason");
    assert!(failed.clip.is_none());
    let done = wait_state(&w, &bridge, &fine.id, JobState::PublishQueued).await;
    assert!(done.clip.is_some());
    assert_eq!(publish_messages(&w).await, vec![fine.id.clone()]);
    w.assert_no_limit_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_render_feeds_two_accounts_should_move_both_jobs_on_one_webhook() {
    let w = world(Setup::default()).await;
    let (base, bridge) = serve_webhooks(&w, scaled()).await;
    let submitter = w.submitter(&base, scaled());
    w.sim.set_webhook_faults(WebhookFaults {
        hold: true,
        ..WebhookFaults::default()
    });
    let first = w
        .ingest("acct_1", &w.source("fanout"), ClipChoice::TopViralScore)
        .await;
    w.drain_render(&submitter, 1).await;
    let first = w.job(&first.id).await;
    let request_id = first.request_id.clone().unwrap();
    wait_sim_terminal(&w, request_id.as_str()).await;

    // The second account posts the runner-up clip of the same render.
    let doc = w.client.get(request_id.as_str()).await.unwrap().data;
    let ranked = doc.usable_shorts_by_score();
    assert!(ranked.len() >= 2, "the simulator renders at least 3 clips");
    let (best, second) = (ranked[0].id.clone(), ranked[1].id.clone());
    let other = w
        .ingest_source(
            "acct_2",
            JobSource::Rendered {
                request_id: request_id.clone(),
            },
            ClipChoice::ShortId(second.clone()),
        )
        .await;
    assert_eq!(other.state, JobState::Rendering);

    wait_held(&w, 1).await;
    assert_eq!(w.sim.release_webhooks(false), 1);
    let a = wait_state(&w, &bridge, &first.id, JobState::PublishQueued).await;
    let b = wait_state(&w, &bridge, &other.id, JobState::PublishQueued).await;
    assert_eq!(a.clip.unwrap().short_id, best);
    assert_eq!(b.clip.unwrap().short_id, second);
    let mut queued = publish_messages(&w).await;
    queued.sort();
    let mut expected = vec![first.id.clone(), other.id.clone()];
    expected.sort();
    assert_eq!(queued, expected);
    let delivered = w
        .sim
        .inspect()
        .deliveries_for(request_id.as_str())
        .iter()
        .filter(|d| d.outcome == "delivered")
        .count();
    assert_eq!(delivered, 1, "one webhook moved both jobs");
    w.assert_no_limit_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_status_budget_is_left_should_answer_200_and_leave_the_job_to_the_poll() {
    let w = world(Setup::default()).await;
    // The webhook may not spend a single status call; the submitter's budgets are untouched.
    let starved = Limits {
        ssemble_status: reelay_domain::budget::Window::new(0, Duration::from_secs(60)),
        ..scaled()
    };
    let (base, bridge) = serve_webhooks(&w, starved).await;
    let submitter = w.submitter(&base, scaled());
    let job = w
        .ingest("acct_1", &w.source("starved"), ClipChoice::TopViralScore)
        .await;
    w.drain_render(&submitter, 1).await;
    let rendering = w.job(&job.id).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    while bridge.answers.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no webhook came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = bridge.answers.lock().unwrap()[0].clone();
    assert!(answer.starts_with("200 "), "{answer}");
    assert!(answer.contains("deferred_budget"), "{answer}");
    let after = w.job(&job.id).await;
    assert_eq!(after.state, JobState::Rendering);
    assert_eq!(after.version, rendering.version);
    let calls = w.calls_by_endpoint();
    assert_eq!(calls.get("Status"), None, "{calls:?}");
    w.assert_no_limit_violations();
}
