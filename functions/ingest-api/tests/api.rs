//! The client API as Lambda runs it: API Gateway v2 events into the handler wired by
//! `wiring::live`, on MiniStack through the real SDK, with TikTok's OAuth and creator_info from
//! the simulator. The use cases' behaviour is tested in reelay-testkit; these tests hold the
//! adapter: decoding, the answers' shapes and codes, and that refusals change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reelay_domain::job::Clip;
use reelay_domain::ports::JobStore;
use reelay_domain::{Event, JobError};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_connects_through_oauth_and_a_state_works_once_only() {
    let s = stack().await;
    let connected = s.connect(KEY_A, "acct_1").await;
    assert_eq!(connected["tiktokAccountId"], "acct_1");
    assert_eq!(connected["health"], "active");
    assert!(connected["scopes"].as_array().is_some());

    let (status, account) = s
        .json("GET", "/v1/accounts/acct_1", Some(KEY_A), None, None)
        .await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["health"], "active");
    assert_eq!(account["budgets"]["tiktok_init"]["remaining"], 6);
    assert_eq!(account["budgets"]["pending_drafts"]["limit"], 5);
    assert_eq!(account["pendingDrafts"], 0);
    // TikTok's refresh token (180 days in the simulator) bounds the authorisation.
    let expires = account["authorizationExpiresAt"].as_str().unwrap();
    let connected_at = account["connectedAt"].as_str().unwrap();
    assert!(expires > connected_at, "{account}");

    // acct_1 again, as another creator (the simulator signs in a new one): refused, and the
    // account stays bound to its creator and active.
    let again = s.authorize(KEY_A, "acct_1").await;
    let (status, refused) = s.callback(&again).await;
    assert_eq!(
        (status, code(&refused)),
        (409, "creator_mismatch"),
        "{refused}"
    );
    let (_, account) = s
        .json("GET", "/v1/accounts/acct_1", Some(KEY_A), None, None)
        .await;
    assert_eq!(account["health"], "active", "{account}");

    // A forged state, and a real one replayed, connect nothing.
    let (status, forged) = s
        .callback("/v1/accounts/oauth/callback?code=x&state=forged")
        .await;
    assert_eq!((status, code(&forged)), (400, "invalid_oauth_state"));
    let callback = s.authorize(KEY_A, "acct_2").await;
    let (status, first) = s.callback(&callback).await;
    assert_eq!(status, 200, "{first}");
    let (status, replay) = s.callback(&callback).await;
    assert_eq!((status, code(&replay)), (400, "invalid_oauth_state"));

    // A creator who declines: the state is used up, and the refusal names TikTok's error.
    let callback = s.authorize(KEY_A, "acct_3").await;
    let state = callback.split("state=").nth(1).unwrap().split('&').next();
    let declined = format!(
        "/v1/accounts/oauth/callback?error=access_denied&state={}",
        state.unwrap()
    );
    let (status, body) = s.callback(&declined).await;
    assert_eq!((status, code(&body)), (400, "oauth_denied"), "{body}");
    assert_eq!(body["error"]["details"]["oauthError"], "access_denied");
    let (_, pending) = s
        .json("GET", "/v1/accounts/acct_3", Some(KEY_A), None, None)
        .await;
    assert_eq!(pending["health"], "needs_reauth", "{pending}");

    // creator_info for a client UI: the options, and no default privacy.
    let (status, info) = s
        .json(
            "GET",
            "/v1/accounts/acct_1/creator-info",
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert!(
        info["privacyLevelOptions"]
            .as_array()
            .is_some_and(|o| !o.is_empty())
    );
    assert_eq!(info["privacyLevelDefault"], Value::Null);
    assert_eq!(info["canPost"], true);
    // A pending account has no token: creator_info says so instead of calling TikTok.
    let (status, b) = s
        .json(
            "GET",
            "/v1/accounts/acct_3/creator-info",
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!((status, code(&b)), (409, "account_not_connected"), "{b}");

    // Another tenant cannot see the account.
    let (status, other) = s
        .json("GET", "/v1/accounts/acct_1", Some(KEY_B), None, None)
        .await;
    assert_eq!((status, code(&other)), (404, "account_not_found"));
}

/// Delivers `event` (an API Gateway event) to the handler with `deps`, answering status and body.
async fn handle_with(
    deps: &ingest_api::Deps<impl reelay_domain::ports::Ports>,
    event: &Value,
) -> (u16, Value) {
    let response = ingest_api::handler(
        deps,
        lambda_http::request::from_str(&event.to_string()).unwrap(),
    )
    .await;
    let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

fn connect_event(domain: Option<&str>, account: &str) -> Value {
    let mut event = apigw_event(
        &Raw {
            method: "POST",
            path: "/v1/accounts/connect",
            headers: vec![
                ("authorization", format!("Bearer {KEY_A}")),
                ("content-type", "application/json".into()),
            ],
            body: Some(json!({"tiktokAccountId": account}).to_string().into_bytes()),
        },
        "POST /v1/accounts/connect",
    );
    match domain {
        Some(domain) => event["requestContext"]["domainName"] = json!(domain),
        None => drop(
            event["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("domainName"),
        ),
    }
    event
}

/// Neither a configured base nor a gateway domain (a direct invoke): there is no callback URL to
/// give TikTok, so nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_without_a_public_base_url_or_gateway_domain_is_refused_before_anything_is_written()
 {
    let s = stack().await;
    let mut deps = s.deps.clone();
    deps.public_base_url = None;
    let before = s.snapshot().await;
    let (status, body) = handle_with(&deps, &connect_event(None, "acct_1")).await;
    assert_eq!((status, code(&body)), (503, "oauth_not_configured"));
    assert_eq!(before, s.snapshot().await);
}

/// A first deploy (no PublicBaseUrl, no custom domain): the callback URL is the one API Gateway
/// received the request on, and the TikTok simulator — which, like TikTok, refuses an exchange
/// whose redirect differs from the link's — completes the connection through it. A callback
/// that reached the API on another domain cannot finish it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_deploy_connects_accounts_through_the_gateway_domain() {
    let s = stack().await;
    let mut deps = s.deps.clone();
    deps.public_base_url = None;
    let domain = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";
    let base = format!("https://{domain}");
    let follow = |link: &Value| {
        let authorize = link["authorizeUrl"].as_str().unwrap().to_owned();
        let http = s.http.clone();
        async move {
            let resp = http.get(&authorize).send().await.unwrap();
            resp.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    let callback_event = |path: &str, domain: &str| {
        let mut event = apigw_event(
            &Raw {
                method: "GET",
                path,
                headers: Vec::new(),
                body: None,
            },
            "GET /v1/accounts/oauth/callback",
        );
        event["requestContext"]["domainName"] = json!(domain);
        event
    };

    let (status, link) = handle_with(&deps, &connect_event(Some(domain), "acct_fd")).await;
    assert_eq!(status, 200, "{link}");
    let location = follow(&link).await;
    let path = location
        .strip_prefix(&base)
        .unwrap_or_else(|| panic!("TikTok sent the creator elsewhere: {location}"));
    assert!(path.starts_with("/v1/accounts/oauth/callback?"), "{path}");
    let (status, connected) = handle_with(&deps, &callback_event(path, domain)).await;
    assert_eq!(status, 200, "{connected}");
    assert_eq!(connected["health"], "active");

    // The same flow whose callback arrives on another domain: TikTok refuses the exchange.
    let (_, link) = handle_with(&deps, &connect_event(Some(domain), "acct_fd2")).await;
    let location = follow(&link).await;
    let path = location.strip_prefix(&base).unwrap().to_owned();
    let (status, refused) = handle_with(&deps, &callback_event(&path, "other.example.com")).await;
    assert!(status >= 400, "{status} {refused}");
    let (_, account) = s
        .json("GET", "/v1/accounts/acct_fd2", Some(KEY_A), None, None)
        .await;
    assert_eq!(account["health"], "needs_reauth", "{account}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_replays_the_first_answer_byte_for_byte_and_refuses_another_body() {
    let s = stack().await;
    s.connect(KEY_A, "acct_1").await;
    let (first_status, first) = s
        .call(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_1")),
            Some("k-1"),
        )
        .await;
    assert_eq!(first_status, 202, "{first}");
    let job: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(job["state"], "received");
    assert!(job["jobId"].as_str().unwrap().starts_with("job_"));

    let (replay_status, headers, replay) = s
        .call_with_headers(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_1")),
            Some("k-1"),
        )
        .await;
    assert_eq!(
        (replay_status, replay.as_str()),
        (202, first.as_str()),
        "the replay is the first answer, status and body"
    );
    assert_eq!(
        headers
            .get(ingest_api::REPLAYED_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );

    let mut other = job_body("acct_1");
    other["post"]["title"] = json!("another title");
    let (status, conflict) = s
        .json("POST", "/v1/jobs", Some(KEY_A), Some(other), Some("k-1"))
        .await;
    assert_eq!((status, code(&conflict)), (409, "idempotency_key_reused"));

    // The same body on the seed route is another request, even under the same key.
    let (_, render) = s.own_render(KEY_A, "acct_1", "k-render").await;
    let (status, b) = s
        .json(
            "POST",
            "/api/publish/tiktok",
            Some(KEY_A),
            Some(seed_body("acct_1", &render)),
            Some("k-1"),
        )
        .await;
    assert_eq!((status, code(&b)), (409, "idempotency_key_reused"));

    // The same key is another tenant's own key space.
    let (status, _) = s
        .call(
            "POST",
            "/v1/jobs",
            Some(KEY_B),
            Some(job_body("acct_1")),
            Some("k-1"),
        )
        .await;
    assert_eq!(status, 422, "tenant B has no acct_1");

    // The keyed job and the job whose render the seed body named: one render message each.
    assert_eq!(
        s.render_messages().await,
        2,
        "one job per key, one render message each"
    );
    let (_, list) = s.json("GET", "/v1/jobs", Some(KEY_A), None, None).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_specific_error_and_changes_nothing() {
    let s = stack().await;
    s.connect(KEY_A, "acct_1").await;
    let (status, b) = s
        .json(
            "POST",
            "/v1/jobs",
            None,
            Some(job_body("acct_1")),
            Some("k"),
        )
        .await;
    assert_eq!((status, code(&b)), (401, "unauthenticated"));
    let (status, b) = s
        .json(
            "POST",
            "/v1/jobs",
            Some("wrong-key"),
            Some(job_body("acct_1")),
            Some("k"),
        )
        .await;
    assert_eq!((status, code(&b)), (401, "unauthenticated"));

    let post = |content_type: &str, body: Vec<u8>| Raw {
        method: "POST",
        path: "/v1/jobs",
        headers: vec![
            ("authorization", format!("Bearer {KEY_A}")),
            ("idempotency-key", "k".into()),
            ("content-type", content_type.into()),
        ],
        body: Some(body),
    };
    let (status, _) = s
        .raw(post(
            "text/plain",
            job_body("acct_1").to_string().into_bytes(),
        ))
        .await;
    assert_eq!(status, 415);
    let (status, text) = s
        .raw(post("application/json", vec![0xff, 0xfe, b'{']))
        .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((status, code(&body)), (400, "malformed_json"));
    let mut huge = job_body("acct_1");
    huge["post"]["title"] = json!("x".repeat(300 * 1024));
    let (status, b) = s
        .json("POST", "/v1/jobs", Some(KEY_A), Some(huge), Some("k"))
        .await;
    assert_eq!((status, code(&b)), (413, "body_too_large"));

    let (status, b) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_1")),
            None,
        )
        .await;
    assert_eq!((status, code(&b)), (400, "idempotency_key_required"));
    let (status, b) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_unknown")),
            Some("k"),
        )
        .await;
    assert_eq!((status, code(&b)), (422, "unknown_account"));

    let mut invalid = job_body("acct_1");
    invalid["post"]
        .as_object_mut()
        .unwrap()
        .remove("privacyLevel");
    invalid["scheduleAt"] = json!("tomorrow");
    let (status, b) = s
        .json("POST", "/v1/jobs", Some(KEY_A), Some(invalid), Some("k"))
        .await;
    assert_eq!((status, code(&b)), (400, "validation_failed"));
    let fields: Vec<&str> = b["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["scheduleAt", "post.privacyLevel"]);

    let (status, b) = s
        .json(
            "GET",
            "/v1/jobs?state=nonsense&limit=0",
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!((status, code(&b)), (400, "validation_failed"));
    let (status, b) = s
        .json("GET", "/v1/jobs?cursor=not-ours", Some(KEY_A), None, None)
        .await;
    assert_eq!((status, code(&b)), (400, "invalid_cursor"));
    // Not a route of the HTTP API: API Gateway itself answers.
    let (status, _) = s.json("DELETE", "/v1/jobs", Some(KEY_A), None, None).await;
    assert_eq!(status, 404);

    // Nothing of the above created a job or a message.
    let (_, list) = s.json("GET", "/v1/jobs", Some(KEY_A), None, None).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0);
    assert_eq!(s.render_messages().await, 0);
    // And a key refused for bad input is still free for the corrected request.
    let (status, _) = s
        .call(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_1")),
            Some("k"),
        )
        .await;
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_refuses_what_the_gateway_would_not_route_in_the_envelope() {
    let s = stack().await;
    let auth = vec![("authorization", format!("Bearer {KEY_A}"))];
    for (method, path, status, expected) in [
        ("DELETE", "/v1/jobs", 405, "method_not_allowed"),
        ("GET", "/v1/accounts/connect", 405, "method_not_allowed"),
        ("GET", "/v1/nowhere", 404, "not_found"),
        ("GET", "/v1/jobs/a/b/c", 404, "not_found"),
    ] {
        let raw = Raw {
            method,
            path,
            headers: auth.clone(),
            body: None,
        };
        let (got, text) = s.invoke(&raw, "$default").await;
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((got, code(&body)), (status, expected), "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_sees_or_touches_another_tenants_jobs() {
    let s = stack().await;
    s.connect(KEY_A, "acct_1").await;
    let (_, job) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_1")),
            Some("k-iso"),
        )
        .await;
    let id = job["jobId"].as_str().unwrap().to_owned();
    for (method, path) in [
        ("GET", format!("/v1/jobs/{id}")),
        ("GET", format!("/v1/jobs/{id}?auditLimit=1")),
        ("POST", format!("/v1/jobs/{id}/cancel")),
        ("POST", format!("/v1/jobs/{id}/retry")),
    ] {
        let (status, b) = s.json(method, &path, Some(KEY_B), None, None).await;
        assert_eq!(
            (status, code(&b)),
            (404, "job_not_found"),
            "{method} {path}"
        );
    }
    let (_, list) = s.json("GET", "/v1/jobs", Some(KEY_B), None, None).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0);
    let (status, own) = s
        .json("GET", &format!("/v1/jobs/{id}"), Some(KEY_A), None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(own["state"], "received", "B's attempts changed nothing");
    assert_eq!(own["audit"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_retry_follow_the_lifecycle_table() {
    let s = stack().await;
    s.connect(KEY_A, "acct_1").await;
    let (_, job) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_1")),
            Some("k-c"),
        )
        .await;
    let id = job["jobId"].as_str().unwrap().to_owned();
    let (status, cancelled) = s
        .json(
            "POST",
            &format!("/v1/jobs/{id}/cancel"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, again) = s
        .json(
            "POST",
            &format!("/v1/jobs/{id}/cancel"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, again["state"].as_str()),
        (200, Some("cancelled")),
        "cancel is idempotent"
    );
    let (status, b) = s
        .json(
            "POST",
            &format!("/v1/jobs/{id}/retry"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!((status, code(&b)), (409, "not_retryable"));
    assert_eq!(b["error"]["details"]["state"], "cancelled");
    let (_, full) = s
        .json("GET", &format!("/v1/jobs/{id}"), Some(KEY_A), None, None)
        .await;
    let events: Vec<&str> = full["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["created", "cancel"]);
    assert_eq!(full["nextCheckAt"], Value::Null);
    assert_eq!(full["auditNextAfter"], Value::Null);
}

/// A seed job (an existing render, published as a draft now) driven to `publish_unknown`: its
/// init may have reached TikTok.
async fn job_with_unknown_outcome(s: &Stack) -> String {
    s.connect(KEY_A, "acct_1").await;
    let (_, request_id) = s.own_render(KEY_A, "acct_1", "k-render").await;
    let (status, job) = s
        .json(
            "POST",
            "/api/publish/tiktok",
            Some(KEY_A),
            Some(seed_body("acct_1", &request_id)),
            Some("k-unknown"),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["jobId"].as_str().unwrap().to_owned();
    s.drive(
        &id,
        &[
            Event::RenderCompleted {
                request_id,
                clip: Clip {
                    short_id: "s1".into(),
                    video_url: "https://cdn.example/s1.mp4".into(),
                    duration_secs: Some(30.0),
                    viral_score: Some(90.0),
                },
            },
            Event::PublishStarted,
            Event::PublishOutcomeUnknown {
                attempt: 1,
                error: JobError {
                    code: "timeout".into(),
                    message: "the init timed out".into(),
                    upstream_log_id: None,
                },
            },
        ],
    )
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_could_post_twice_is_refused_and_changes_nothing() {
    let s = stack().await;
    let id = job_with_unknown_outcome(&s).await;
    let (_, job) = s
        .json("GET", &format!("/v1/jobs/{id}"), Some(KEY_A), None, None)
        .await;
    assert_eq!(job["state"], "publish_unknown", "{job}");
    assert_eq!(job["hold"]["reason"], "publish_outcome_unknown");

    let before = s.snapshot().await;
    let (status, refused) = s
        .json(
            "POST",
            &format!("/v1/jobs/{id}/retry"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!((status, code(&refused)), (409, "retry_could_duplicate"));
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("post twice") && message.contains("needs_operator"),
        "the message says why and what to wait for: {message}"
    );
    assert!(
        refused["error"]["details"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("needs_operator")),
        "{refused}"
    );
    assert_eq!(before, s.snapshot().await, "a refused retry wrote nothing");

    // Once an operator must decide (and TikTok never accepted the attempt), the retry goes.
    s.drive(&id, &[Event::Expired]).await;
    let (_, parked) = s
        .json("GET", &format!("/v1/jobs/{id}"), Some(KEY_A), None, None)
        .await;
    assert_eq!(parked["hold"]["reason"], "needs_operator");
    let (status, retried) = s
        .json(
            "POST",
            &format!("/v1/jobs/{id}/retry"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!((status, retried["state"].as_str()), (200, Some("ready")));
    assert_eq!(retried["publishId"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_paged_oldest_first() {
    let s = stack().await;
    let id = job_with_unknown_outcome(&s).await;
    s.drive(&id, &[Event::Expired]).await;
    let path = format!("/v1/jobs/{id}");

    // The default page holds the whole (short) trail.
    let (status, whole) = s.json("GET", &path, Some(KEY_A), None, None).await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["auditNextAfter"], Value::Null);
    let trail: Vec<Value> = whole["audit"].as_array().unwrap().clone();
    let names: Vec<&str> = trail.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "created",
            "render_completed",
            "publish_started",
            "publish_outcome_unknown",
            "expired"
        ]
    );

    // Pages of two, followed by auditNextAfter, give the same trail in the same order.
    let mut paged = Vec::new();
    let mut after: Option<u64> = None;
    let mut pages = 0;
    loop {
        let query = match after {
            Some(a) => format!("{path}?auditLimit=2&auditAfter={a}"),
            None => format!("{path}?auditLimit=2"),
        };
        let (status, page) = s.json("GET", &query, Some(KEY_A), None, None).await;
        assert_eq!(status, 200, "{page}");
        let events = page["audit"].as_array().unwrap();
        assert!(events.len() <= 2, "{query}: {} events", events.len());
        assert_eq!(
            page["state"], "publish_unknown",
            "every page carries the job"
        );
        paged.extend(events.iter().cloned());
        pages += 1;
        match page["auditNextAfter"].as_u64() {
            Some(next) => {
                assert_eq!(
                    Some(next),
                    events.last().and_then(|e| e["version"].as_u64())
                );
                after = Some(next);
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert!(pages >= 3, "five events in pages of two: {pages} pages");
    assert_eq!(paged, trail);

    // Continuing after the last version is an empty last page.
    let last = trail.last().unwrap()["version"].as_u64().unwrap();
    let (status, end) = s
        .json(
            "GET",
            &format!("{path}?auditAfter={last}"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(end["audit"], json!([]));
    assert_eq!(end["auditNextAfter"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_request_is_answered_in_the_seed_shape() {
    let s = stack().await;
    s.connect(KEY_A, "acct_kor_store_03").await;
    let (_, render) = s.own_render(KEY_A, "acct_kor_store_03", "k-render").await;
    let seed = json!({
        "jobId": "job_01HT0000000000000000000000",
        "requestId": render.as_str(),
        "tiktokAccountId": "acct_kor_store_03",
        "scheduleAt": "2026-03-10T18:00:00Z",
        "idempotencyKey": "2f182b63-312f-4290-9222-7cf6f7f8f12d"
    });
    let (status, first) = s
        .call(
            "POST",
            "/api/publish/tiktok",
            Some(KEY_A),
            Some(seed.clone()),
            None,
        )
        .await;
    assert_eq!(status, 202, "{first}");
    let body: Value = serde_json::from_str(&first).unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, vec!["jobId", "nextCheckAt", "publishId", "state"]);
    assert_eq!(body["jobId"], "job_01HT0000000000000000000000");
    assert_eq!(
        body["state"], "rendering",
        "an existing render is confirmed first"
    );
    assert_eq!(body["publishId"], Value::Null);
    assert!(body["nextCheckAt"].as_str().is_some());
    let (status, headers, replay) = s
        .call_with_headers("POST", "/api/publish/tiktok", Some(KEY_A), Some(seed), None)
        .await;
    assert_eq!((status, replay), (202, first), "byte for byte");
    assert!(headers.contains_key(ingest_api::REPLAYED_HEADER));
}

/// Job ids are scoped per tenant: two tenants choosing the same `jobId` each get a job of their
/// own under it, each sees and commands only its own, and a tenant's second use of its id is
/// `job_exists`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_choosing_one_job_id_each_get_their_own_job() {
    let s = stack().await;
    s.connect(KEY_A, "acct_a1").await;
    s.connect(KEY_B, "acct_b1").await;
    let chosen = "job_01HT0000000000000000000001";
    for (key, account) in [(KEY_A, "acct_a1"), (KEY_B, "acct_b1")] {
        let mut body = job_body(account);
        body["jobId"] = json!(chosen);
        let (status, job) = s
            .json("POST", "/v1/jobs", Some(key), Some(body), Some("same-id"))
            .await;
        assert_eq!(
            (status, job["jobId"].as_str()),
            (202, Some(chosen)),
            "{job}"
        );
    }
    let (status, _) = s
        .json(
            "POST",
            &format!("/v1/jobs/{chosen}/cancel"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    for (key, account, state) in [
        (KEY_A, "acct_a1", "cancelled"),
        (KEY_B, "acct_b1", "received"),
    ] {
        let (status, job) = s
            .json("GET", &format!("/v1/jobs/{chosen}"), Some(key), None, None)
            .await;
        assert_eq!(status, 200, "{job}");
        assert_eq!(
            (job["tiktokAccountId"].as_str(), job["state"].as_str()),
            (Some(account), Some(state)),
            "{job}"
        );
        let (_, page) = s.json("GET", "/v1/jobs", Some(key), None, None).await;
        assert_eq!(page["jobs"][0]["jobId"], chosen, "{page}");
    }
    // B choosing the id again (another idempotency key): its own job exists under it.
    let before = s.snapshot().await;
    let mut again = job_body("acct_b1");
    again["jobId"] = json!(chosen);
    let (status, answer) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_B),
            Some(again),
            Some("same-id-2"),
        )
        .await;
    assert_eq!((status, code(&answer)), (409, "job_exists"), "{answer}");
    assert_eq!(before, s.snapshot().await, "a refused create wrote nothing");
}

/// Renders belong to the tenant whose job made them. Tenant B, holding tenant A's real
/// requestId, is answered as if it did not exist on both routes that take one, and nothing
/// is written; A fans its render out to a second account without a second create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_render_answers_404_on_both_routes_and_changes_nothing() {
    let s = stack().await;
    s.connect(KEY_A, "acct_a1").await;
    s.connect(KEY_A, "acct_a2").await;
    s.connect(KEY_B, "acct_b1").await;
    let (_, render) = s.own_render(KEY_A, "acct_a1", "a-render").await;

    let mut with_source = job_body("acct_b1");
    with_source["source"] = json!({ "requestId": render.as_str() });
    let attempts = [
        ("/v1/jobs", with_source),
        ("/api/publish/tiktok", seed_body("acct_b1", &render)),
    ];
    for (route, body) in &attempts {
        let before = s.snapshot().await;
        let (status, headers, text) = s
            .call_with_headers(
                "POST",
                route,
                Some(KEY_B),
                Some(body.clone()),
                Some("b-steal"),
            )
            .await;
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (status, code(&answer)),
            (404, "render_not_found"),
            "{route}: {text}"
        );
        assert_eq!(answer["error"]["details"]["requestId"], render.as_str());
        assert!(!headers.contains_key(ingest_api::REPLAYED_HEADER));
        assert_eq!(
            s.snapshot().await,
            before,
            "{route}: a refusal wrote something"
        );
    }
    // An id nobody's job uses gets the same answer: B cannot tell a guess from A's render.
    let (status, guess) = s
        .json(
            "POST",
            "/api/publish/tiktok",
            Some(KEY_B),
            Some(seed_body("acct_b1", &any_render())),
            Some("b-guess"),
        )
        .await;
    assert_eq!((status, code(&guess)), (404, "render_not_found"));

    // A's own fan-out is accepted and starts at `rendering` on A's render: its job only
    // confirms the render, it never creates one (a create is made only from `received`).
    let mut fan_out = job_body("acct_a2");
    fan_out["source"] = json!({ "requestId": render.as_str() });
    let (status, job) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(fan_out),
            Some("a-fan"),
        )
        .await;
    assert_eq!(
        (status, job["state"].as_str()),
        (202, Some("rendering")),
        "{job}"
    );
    assert_eq!(job["requestId"], render.as_str());
}

/// A tenant lists its own accounts, in pages, each with health and budgets; another tenant's
/// never appear, and a bad page parameter is a validation error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_listed_in_pages_with_their_budgets() {
    let s = stack().await;
    for account in ["acct_l3", "acct_l1", "acct_l2"] {
        s.connect(KEY_A, account).await;
    }
    s.connect(KEY_B, "acct_lb").await;

    let (status, first) = s
        .json("GET", "/v1/accounts?limit=2", Some(KEY_A), None, None)
        .await;
    assert_eq!(status, 200, "{first}");
    let ids = |page: &Value| -> Vec<String> {
        page["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["tiktokAccountId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["acct_l1", "acct_l2"]);
    assert_eq!(first["nextAfter"], "acct_l2");
    let account = &first["accounts"][0];
    assert_eq!(account["health"], "active");
    assert!(
        account["budgets"]
            .as_object()
            .is_some_and(|b| !b.is_empty()),
        "{account}"
    );

    let (status, rest) = s
        .json(
            "GET",
            "/v1/accounts?limit=2&after=acct_l2",
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(ids(&rest), ["acct_l3"]);
    assert_eq!(rest["nextAfter"], Value::Null);

    let (status, theirs) = s.json("GET", "/v1/accounts", Some(KEY_B), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&theirs), ["acct_lb"]);

    for bad in ["/v1/accounts?limit=0", "/v1/accounts?after=not%20an%20id"] {
        let (status, body) = s.json("GET", bad, Some(KEY_A), None, None).await;
        assert_eq!(
            (status, code(&body)),
            (400, "validation_failed"),
            "{bad}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drafts_only_account_refuses_direct_posts_and_a_disconnect_cancels_revokes_and_releases()
{
    let s = stack().await;
    let callback = s.authorize_for(KEY_A, "acct_d", "draft").await;
    let (status, connected) = s.callback(&callback).await;
    assert_eq!(status, 200, "{connected}");
    assert!(
        !connected["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "video.publish"),
        "{connected}"
    );

    // A direct post can never go: refused, nothing written.
    let before = s.snapshot().await;
    let (status, refused) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_d")),
            Some("d-direct"),
        )
        .await;
    assert_eq!(
        (status, code(&refused)),
        (422, "direct_post_not_authorized"),
        "{refused}"
    );
    assert_eq!(
        refused["error"]["details"]["requiredScope"],
        "video.publish"
    );
    assert_eq!(s.snapshot().await, before, "a refusal changes nothing");

    // creator_info is answered without TikTok (its creator_info needs video.publish).
    let (status, info) = s
        .json(
            "GET",
            "/v1/accounts/acct_d/creator-info",
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        (info["mode"].as_str(), info["nickname"].as_null()),
        (Some("draft"), Some(()))
    );
    let (_, account) = s
        .json("GET", "/v1/accounts/acct_d", Some(KEY_A), None, None)
        .await;
    let budget = &account["budgets"]["tiktok_creator_info"];
    assert_eq!(budget["remaining"], budget["limit"], "{account}");

    // A draft is accepted (same key: the refusal did not claim it).
    let mut draft = job_body("acct_d");
    draft["post"] = json!({"mode": "draft"});
    let (status, job) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(draft),
            Some("d-direct"),
        )
        .await;
    assert_eq!(status, 202, "{job}");

    // Another tenant cannot disconnect it.
    let before = s.snapshot().await;
    let (status, other) = s
        .json("DELETE", "/v1/accounts/acct_d", Some(KEY_B), None, None)
        .await;
    assert_eq!((status, code(&other)), (404, "account_not_found"));
    assert_eq!(s.snapshot().await, before);

    let (status, done) = s
        .json("DELETE", "/v1/accounts/acct_d", Some(KEY_A), None, None)
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["health"], "disconnected");
    assert_eq!(done["cancelledJobs"], 1);
    assert_eq!(done["inFlightJobs"], 0);
    assert_eq!(done["revokedAtTikTok"], true);
    assert_eq!(done["creatorReleased"], true);
    let id = job["jobId"].as_str().unwrap();
    let (_, cancelled) = s
        .json("GET", &format!("/v1/jobs/{id}"), Some(KEY_A), None, None)
        .await;
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["error"]["code"], "account_disconnected");
    let (status, refused) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_d")),
            Some("d-after"),
        )
        .await;
    assert_eq!((status, code(&refused)), (422, "account_disconnected"));

    // Again: safe, nothing more to do.
    let (status, again) = s
        .json("DELETE", "/v1/accounts/acct_d", Some(KEY_A), None, None)
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (
            again["cancelledJobs"].as_u64(),
            again["revokedAtTikTok"].as_bool()
        ),
        (Some(0), Some(false))
    );

    // Connected again (the simulator signs in another creator: the old one was released).
    let connected = s.connect(KEY_A, "acct_d").await;
    assert_eq!(connected["health"], "active");
    let (status, job) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_d")),
            Some("d-back"),
        )
        .await;
    assert_eq!(status, 202, "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_rescheduled_and_recaptioned_until_it_starts_publishing() {
    let s = stack().await;
    s.connect(KEY_A, "acct_p").await;
    let (status, job) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_p")),
            Some("p-1"),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let path = format!("/v1/jobs/{}", job["jobId"].as_str().unwrap());

    let (status, moved) = s
        .json(
            "PATCH",
            &path,
            Some(KEY_A),
            Some(
                json!({"scheduleAt": "2030-01-02T03:04:05Z", "post": {"title": "a new #caption"}}),
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["scheduleAt"], "2030-01-02T03:04:05Z");
    assert_eq!(moved["post"]["title"], "a new #caption");
    assert_eq!(moved["state"], "received");
    let (_, read) = s.json("GET", &path, Some(KEY_A), None, None).await;
    let events: Vec<&str> = read["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(events.contains(&"amend"), "{events:?}");

    // Bad input: specific errors, nothing changed.
    let before = s.snapshot().await;
    for (body, field) in [
        (json!({}), ""),
        (json!({"scheduleAt": "tomorrow"}), "scheduleAt"),
        (
            json!({"post": {"mode": "draft", "title": "x"}}),
            "post.mode",
        ),
        (json!({"tiktokAccountId": "acct_other"}), "tiktokAccountId"),
    ] {
        let (status, refused) = s
            .json("PATCH", &path, Some(KEY_A), Some(body.clone()), None)
            .await;
        assert_eq!(
            (status, code(&refused)),
            (400, "validation_failed"),
            "{body}"
        );
        assert_eq!(
            refused["error"]["details"]["fields"][0]["field"], field,
            "{body}: {refused}"
        );
    }
    // Another tenant's job: not found.
    let (status, other) = s
        .json(
            "PATCH",
            &path,
            Some(KEY_B),
            Some(json!({"scheduleAt": "2030-01-02T03:04:05Z"})),
            None,
        )
        .await;
    assert_eq!((status, code(&other)), (404, "job_not_found"));
    assert_eq!(s.snapshot().await, before, "refusals change nothing");

    // A job that can no longer change (cancelled here; publishing alike): 409 with the state.
    s.drive(
        job["jobId"].as_str().unwrap(),
        &[Event::RenderSubmitStarted {
            webhook_token_hash: "h".into(),
        }],
    )
    .await;
    let (status, cancelled) = s
        .json("POST", &format!("{path}/cancel"), Some(KEY_A), None, None)
        .await;
    assert_eq!(status, 200, "{cancelled}");
    let (status, refused) = s
        .json(
            "PATCH",
            &path,
            Some(KEY_A),
            Some(json!({"scheduleAt": "2030-01-02T03:04:05Z"})),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&refused)),
        (409, "not_amendable"),
        "{refused}"
    );
    assert_eq!(refused["error"]["details"]["state"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_without_a_key_and_is_the_one_the_tests_hold() {
    let s = stack().await;
    let before = s.snapshot().await;
    let (status, headers, text) = s
        .call_with_headers("GET", "/v1/openapi.yaml", None, None, None)
        .await;
    assert_eq!(status, 200, "{text:.200}");
    assert_eq!(headers["content-type"], "application/yaml");
    assert!(headers.contains_key("x-request-id"));
    let mut served: Value = serde_norway::from_str(&text).unwrap();
    // It names the stage it was served from, so a client generated from it calls this stage.
    assert_eq!(served["servers"][0]["url"], PUBLIC_BASE_URL);
    served["servers"] = document()["servers"].clone();
    assert_eq!(
        served,
        document(),
        "otherwise the served document is openapi.yaml"
    );
    assert_eq!(
        served["paths"]["/v1/openapi.yaml"]["get"]["operationId"],
        "getOpenApi"
    );
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_that_created_a_job_is_named_on_the_job_and_its_first_audit_event() {
    let s = stack().await;
    s.connect(KEY_A, "acct_r").await;
    let (status, headers, text) = s
        .call_with_headers(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_r")),
            Some("r-1"),
        )
        .await;
    assert_eq!(status, 202, "{text}");
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
    let job: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(job["apiRequestId"], request_id.as_str());
    let (_, read) = s
        .json(
            "GET",
            &format!("/v1/jobs/{}", job["jobId"].as_str().unwrap()),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(read["audit"][0]["apiRequestId"], request_id.as_str());
    assert_eq!(
        read["apiRequestId"],
        request_id.as_str(),
        "the GET's own id is another"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_url_sends_the_creator_back_to_the_clients_app_with_the_outcome() {
    let s = stack().await;
    let link = |account: &str, url: &str| json!({"tiktokAccountId": account, "returnUrl": url});
    // Bad return URLs: refused with the field, nothing written.
    let before = s.snapshot().await;
    for bad in [
        "http://app.example.com/back",
        "ftp://app.example.com/back",
        "https://user:pw@app.example.com/back",
        "/relative/path",
    ] {
        let (status, body) = s
            .json(
                "POST",
                "/v1/accounts/connect",
                Some(KEY_A),
                Some(link("acct_ret", bad)),
                None,
            )
            .await;
        assert_eq!((status, code(&body)), (400, "validation_failed"), "{bad}");
        assert_eq!(body["error"]["details"]["fields"][0]["field"], "returnUrl");
    }
    assert_eq!(s.snapshot().await, before);

    let (status, body) = s
        .json(
            "POST",
            "/v1/accounts/connect",
            Some(KEY_A),
            Some(link(
                "acct_ret",
                "https://app.example.com/tiktok/back?team=7",
            )),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, headers, _) = callback_of(&s, &body).await;
    assert_eq!(status, 302);
    assert_eq!(
        headers["location"],
        "https://app.example.com/tiktok/back?team=7&status=connected&tiktokAccountId=acct_ret"
    );
    let (_, account) = s
        .json("GET", "/v1/accounts/acct_ret", Some(KEY_A), None, None)
        .await;
    assert_eq!(account["health"], "active");

    // A refusal after the state is known goes back too, with the error code.
    let (_, body) = s
        .json(
            "POST",
            "/v1/accounts/connect",
            Some(KEY_A),
            Some(link("acct_ret", "http://localhost:5173/back")),
            None,
        )
        .await;
    let (status, headers, _) = callback_of(&s, &body).await;
    assert_eq!(status, 302);
    assert_eq!(
        headers["location"],
        "http://localhost:5173/back?status=error&error=creator_mismatch"
    );
}

/// Follows an authorize link through TikTok (the simulator) and delivers the callback it
/// redirects to, answering with the headers.
async fn callback_of(s: &Stack, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    let authorize = body["authorizeUrl"].as_str().unwrap().to_owned();
    let resp = s.http.get(&authorize).send().await.unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let path = location.strip_prefix(PUBLIC_BASE_URL).unwrap().to_owned();
    s.raw_with_headers(Raw {
        method: "GET",
        path: &path,
        headers: Vec::new(),
        body: None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_item_in_order_and_a_dry_run_writes_nothing() {
    let s = stack().await;
    s.connect(KEY_A, "acct_bt").await;
    let item = |key: &str| {
        let mut job = job_body("acct_bt");
        job["idempotencyKey"] = json!(key);
        job
    };
    let mut bad = item("bt-bad");
    bad["post"]["privacyLevel"] = json!("EVERYONE_PLEASE");
    let mut unknown = item("bt-unknown");
    unknown["tiktokAccountId"] = json!("acct_nobody");

    // Preview first: plans for the two good items, the errors a create would give, no write.
    let before = s.snapshot().await;
    let body =
        json!({"jobs": [item("bt-1"), bad.clone(), item("bt-2"), unknown.clone()], "dryRun": true});
    let (status, preview) = s
        .json("POST", "/v1/jobs:batch", Some(KEY_A), Some(body), None)
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["dryRun"], true);
    let statuses = |answer: &Value| -> Vec<u64> {
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(statuses(&preview), [202, 400, 202, 422]);
    assert!(preview["results"][0]["plan"]["earliestAt"].is_string());
    assert_eq!(preview["results"][0]["plan"]["rendersFirst"], true);
    assert_eq!(preview["results"][1]["error"]["code"], "validation_failed");
    assert_eq!(preview["results"][3]["error"]["code"], "unknown_account");
    assert_eq!(s.snapshot().await, before, "a preview writes nothing");

    // For real: the same answers, jobs created; sent again, the created ones replay.
    let body = json!({"jobs": [item("bt-1"), bad, item("bt-2"), unknown]});
    let (status, created) = s
        .json(
            "POST",
            "/v1/jobs:batch",
            Some(KEY_A),
            Some(body.clone()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(statuses(&created), [202, 400, 202, 422]);
    let first = created["results"][0]["job"]["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, again) = s
        .json("POST", "/v1/jobs:batch", Some(KEY_A), Some(body), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["results"][0]["replayed"], true);
    assert_eq!(again["results"][0]["job"]["jobId"], first.as_str());
    // The same key and body on the single route is the same request.
    let (status, _, text) = s
        .call_with_headers("POST", "/v1/jobs", Some(KEY_A), Some(item("bt-1")), None)
        .await;
    assert_eq!(status, 202, "{text}");
    assert!(text.contains(&first));
    // Retried with one item more of the same source: the replayed first item is its parent
    // (the stored job names it), so the new item shares its render.
    let body = json!({"jobs": [item("bt-1"), item("bt-3")]});
    let (status, retried) = s
        .json("POST", "/v1/jobs:batch", Some(KEY_A), Some(body), None)
        .await;
    assert_eq!(statuses(&retried), [202, 202], "{retried}");
    assert_eq!(
        (status, &retried["results"][0]["replayed"]),
        (200, &json!(true))
    );
    let child = retried["results"][1]["job"]["jobId"].as_str().unwrap();
    let child = reelay_domain::JobId::parse(child.to_owned()).unwrap();
    let stored = s.deps.core.ports.store.get(&child).await.unwrap().unwrap();
    assert_eq!(
        stored
            .fan_out_parent
            .as_ref()
            .map(reelay_domain::JobId::as_str),
        Some(first.as_str()),
        "{stored:?}"
    );

    // The envelope is refused whole.
    let before = s.snapshot().await;
    let (status, refused) = s
        .json(
            "POST",
            "/v1/jobs:batch",
            Some(KEY_A),
            Some(json!({"jobs": []})),
            None,
        )
        .await;
    assert_eq!((status, code(&refused)), (400, "validation_failed"));
    assert_eq!(s.snapshot().await, before);
}

/// `/v1/webhooks`: a registration is checked (https, no private or metadata address, known
/// event types), answers its secret once, lists without it; the log and replay of an endpoint
/// that is not yours (or gone) answer 404; at most 10 endpoints.
#[tokio::test]
async fn webhook_endpoints_are_registered_checked_listed_and_removed() {
    let s = stack().await;
    for (body, field) in [
        (json!({"url": "http://hooks.example.com/x"}), "url"),
        (json!({"url": "https://169.254.169.254/latest"}), "url"),
        (json!({"url": "https://10.0.0.8/x"}), "url"),
        (json!({"url": "https://127.0.0.1:9/x"}), "url"),
        (
            json!({"url": "https://hooks.example.com/x", "events": ["job.nope"]}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "secret": "mine"}),
            "body",
        ),
        // No request field is nullable (Schemathesis found a null accepted on replay).
        (
            json!({"url": "https://hooks.example.com/x", "description": null}),
            "body",
        ),
    ] {
        let before = s.snapshot().await;
        let (status, answer) = s
            .json(
                "POST",
                "/v1/webhooks",
                Some(KEY_A),
                Some(body.clone()),
                None,
            )
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "validation_failed", "{answer}");
        assert_eq!(
            answer["error"]["details"]["fields"][0]["field"], field,
            "{answer}"
        );
        assert_eq!(before, s.snapshot().await, "a refusal changes nothing");
    }
    let (status, created) = s
        .json(
            "POST",
            "/v1/webhooks",
            Some(KEY_A),
            Some(json!({"url": "https://hooks.example.com/a", "events": ["job.published"], "description": "crm"})),
            None,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["events"], json!(["job.published"]));
    let (status, listed) = s.json("GET", "/v1/webhooks", Some(KEY_A), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["webhooks"][0]["id"], id.as_str());
    assert!(
        listed["webhooks"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    let (status, log) = s
        .json(
            "GET",
            &format!("/v1/webhooks/{id}/deliveries"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!((status, log["deliveries"].clone()), (200, json!([])));
    let (status, bad) = s
        .json(
            "GET",
            &format!("/v1/webhooks/{id}/deliveries?after=nope"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("validation_failed"))
    );
    for (body, field) in [
        (json!({"since": "2020-01-01T00:00:00Z"}), "since"),
        (json!({"onlyFailed": null}), "body"),
        (json!({"since": null}), "body"),
    ] {
        let (status, bad) = s
            .json(
                "POST",
                &format!("/v1/webhooks/{id}/replay"),
                Some(KEY_A),
                Some(body.clone()),
                None,
            )
            .await;
        assert_eq!(
            (
                status,
                bad["error"]["details"]["fields"][0]["field"].as_str()
            ),
            (400, Some(field)),
            "{body}: {bad}"
        );
    }
    let (status, replayed) = s
        .json(
            "POST",
            &format!("/v1/webhooks/{id}/replay"),
            Some(KEY_A),
            Some(json!({})),
            None,
        )
        .await;
    assert_eq!(
        (status, replayed["replayed"].as_u64()),
        (202, Some(0)),
        "{replayed}"
    );
    // Another tenant's key finds none of it.
    for (method, path) in [
        ("DELETE", format!("/v1/webhooks/{id}")),
        ("GET", format!("/v1/webhooks/{id}/deliveries")),
        ("POST", format!("/v1/webhooks/{id}/replay")),
    ] {
        let (status, answer) = s.json(method, &path, Some(KEY_B), None, None).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (404, Some("webhook_not_found")),
            "{path}"
        );
    }
    let (status, _) = s
        .call(
            "DELETE",
            &format!("/v1/webhooks/{id}"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, answer) = s
        .json(
            "DELETE",
            &format!("/v1/webhooks/{id}"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("webhook_not_found"))
    );
    for n in 0..10 {
        let (status, _) = s
            .json(
                "POST",
                "/v1/webhooks",
                Some(KEY_A),
                Some(json!({"url": format!("https://hooks.example.com/{n}")})),
                None,
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, answer) = s
        .json(
            "POST",
            "/v1/webhooks",
            Some(KEY_A),
            Some(json!({"url": "https://hooks.example.com/11"})),
            None,
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("too_many_webhooks"))
    );
}

/// Each tenant has its own API request budget: past it the answer is 429 `api_rate_limited`
/// with `Retry-After` and `X-RateLimit-*`, nothing is written, and another tenant's requests
/// are not slowed at all.
#[tokio::test]
async fn a_tenants_burst_is_answered_429_and_never_limits_another_tenant() {
    let s = stack_with(|c| c.settings.limits.tenant_api.limit = 3).await;
    let header = |h: &lambda_http::http::HeaderMap, name: &str| -> u64 {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {h:?}"))
    };
    for left in [2, 1, 0] {
        let (status, headers, text) = s
            .call_with_headers("GET", "/v1/jobs", Some(KEY_A), None, None)
            .await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(header(&headers, "x-ratelimit-limit"), 3);
        assert_eq!(header(&headers, "x-ratelimit-remaining"), left);
        assert!((1..=60).contains(&header(&headers, "x-ratelimit-reset")));
    }
    let before = s.snapshot().await;
    let (status, headers, text) = s
        .call_with_headers(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_a")),
            Some("burst-4"),
        )
        .await;
    assert_eq!(status, 429, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["error"]["code"], "api_rate_limited");
    assert_eq!(header(&headers, "x-ratelimit-remaining"), 0);
    let retry = header(&headers, "retry-after");
    assert!((1..=61).contains(&retry), "{retry}");
    assert_eq!(
        before,
        s.snapshot().await,
        "a refused request writes nothing"
    );
    // Tenant B's budget is its own.
    for left in [2, 1] {
        let (status, headers, _) = s
            .call_with_headers("GET", "/v1/jobs", Some(KEY_B), None, None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-ratelimit-remaining"), left);
    }
    // The unauthenticated document is not counted.
    let (status, _) = s.call("GET", "/v1/openapi.yaml", None, None, None).await;
    assert_eq!(status, 200);
}

/// A batch naming one source for three accounts: three jobs, one render at Ssemble.
#[tokio::test]
async fn a_batch_of_one_source_to_three_accounts_renders_once() {
    let s = stack().await;
    for a in ["acct_f1", "acct_f2", "acct_f3"] {
        s.connect(KEY_A, a).await;
    }
    let items: Vec<Value> = ["acct_f1", "acct_f2", "acct_f3"]
        .iter()
        .map(|a| {
            let mut b = job_body(a);
            b["idempotencyKey"] = json!(format!("fan-{a}"));
            b
        })
        .collect();
    let (status, answer) = s
        .json(
            "POST",
            "/v1/jobs:batch",
            Some(KEY_A),
            Some(json!({ "jobs": items })),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let ids: Vec<String> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], 202, "{r}");
            r["job"]["jobId"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut jobs: Vec<reelay_domain::Job> = Vec::new();
    for id in &ids {
        let id = reelay_domain::JobId::parse(id.clone()).unwrap();
        jobs.push(s.deps.core.ports.store.get(&id).await.unwrap().unwrap());
    }
    assert_eq!(jobs[0].fan_out_parent, None);
    for child in &jobs[1..] {
        assert_eq!(child.fan_out_parent.as_ref(), Some(&jobs[0].id));
    }
}
