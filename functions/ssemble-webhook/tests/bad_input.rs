//! Forged Ssemble deliveries: a missing, wrong, malformed or another job's token, an unknown
//! job, an oversized or non-JSON body — each answered in the envelope with its code, and the
//! whole table and every queue left as they were. The genuine delivery (the path Ssemble was
//! given, captured by a stand-in public endpoint) is sent last and does change the snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../render-submitter/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Setup, World, world};
use reelay_aws::{DynamoAccountStore, DynamoJobStore, SqsWorkQueue, SystemClock};
use reelay_domain::budget::Limits;
use reelay_domain::job::ClipChoice;
use reelay_ssemble::SsembleClient;
use render_submitter::ssemble_budget_scope;
use serde_json::{Value, json};
use ssemble_webhook::{DEFAULT_MAX_BODY_BYTES, Deps, function_handler};

type WebhookDeps =
    Deps<DynamoJobStore, DynamoAccountStore, SqsWorkQueue, SystemClock, SsembleClient>;

/// (label, path, body, status, error code).
type Case<'a> = (&'a str, String, Vec<u8>, u16, &'a str);

/// Every table item and every queue's counts (read without taking messages).
async fn snapshot(w: &World) -> (Vec<String>, BTreeMap<String, String>) {
    let ddb = aws_sdk_dynamodb::Client::new(&w.sdk);
    let table = w.stack.env_var("TABLE_NAME").unwrap().to_owned();
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = ddb
            .scan()
            .table_name(&table)
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

/// (path, body) of every delivery the stand-in endpoint received.
type Deliveries = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The public endpoint Ssemble is given, standing in for API Gateway: it only records the
/// paths delivered to (each carries a job's token) and answers 200.
async fn recorder() -> (String, Deliveries) {
    let seen: Deliveries = Arc::default();
    let state = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let seen = state.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            seen.lock()
                .unwrap()
                .push((parts.uri.path().to_owned(), bytes.to_vec()));
            "{}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn call(deps: &WebhookDeps, path: &str, body: Vec<u8>) -> (u16, Value) {
    let mut req = lambda_http::Request::new(lambda_http::Body::from(body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = path.parse().unwrap();
    let resp = function_handler(deps, req).await;
    let status = resp.status().as_u16();
    let body: &[u8] = resp.body().as_ref();
    (status, serde_json::from_slice(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_ssemble_deliveries_get_their_code_and_change_nothing() {
    let w = world(Setup::default()).await;
    let limits = Limits::default().time_scaled(60.0);
    let (public, seen) = recorder().await;
    let submitter = w.submitter(&public, limits.clone());
    let job = w
        .ingest("acct_1", &w.source("forged"), ClipChoice::TopViralScore)
        .await;
    let other = w
        .ingest("acct_2", &w.source("other"), ClipChoice::TopViralScore)
        .await;
    w.drain_render(&submitter, 2).await;

    // Wait for Ssemble's genuine delivery for `job`: its path holds the token.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (genuine_path, genuine_body) = loop {
        let found = seen
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| p.contains(job.id.as_str()))
            .cloned();
        if let Some(d) = found {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "Ssemble never delivered for {}",
            job.id
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let token = genuine_path.rsplit('.').next().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{genuine_path}");

    let deps = WebhookDeps {
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
    };
    let base = "/webhooks/ssemble";
    let wrong = if token.starts_with('a') { "b" } else { "a" }.to_owned() + &token[1..];
    let hint = json!({"event": "shorts.completed", "requestId": job.request_id.as_ref().map(|r| r.as_str())})
        .to_string()
        .into_bytes();
    let oversized = vec![b' '; DEFAULT_MAX_BODY_BYTES + 1];
    let cases: Vec<Case<'_>> = vec![
        (
            "missing token",
            format!("{base}/{}", job.id),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "empty token",
            format!("{base}/{}.", job.id),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "wrong token",
            format!("{base}/{}.{wrong}", job.id),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "uppercase token",
            format!("{base}/{}.{}", job.id, token.to_uppercase()),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "short token",
            format!("{base}/{}.{}", job.id, &token[..31]),
            hint.clone(),
            404,
            "not_found",
        ),
        (
            "token with a suffix",
            format!("{base}/{}.{token}0", job.id),
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
            format!("{base}/{}.{wrong}", job.id),
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
        let before = snapshot(&w).await;
        let (got, answer) = call(&deps, &path, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{label}: {answer}"
        );
        assert!(answer["error"]["message"].is_string(), "{label}");
        assert_eq!(before, snapshot(&w).await, "{label} changed state");
    }

    // The genuine delivery is confirmed with Ssemble and moves the job.
    let before = snapshot(&w).await;
    let (got, answer) = call(&deps, &genuine_path, genuine_body).await;
    assert_eq!(got, 200, "{answer}");
    assert_ne!(
        before,
        snapshot(&w).await,
        "the snapshot must see the genuine delivery"
    );
}
