//! The client API over real HTTP (an API Gateway v2 event per request, as Lambda receives it),
//! on MiniStack through the real SDK, with TikTok's OAuth and creator_info from the simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ingest_api::wiring::{Config, LiveDeps, live_deps};
use reelay_aws::DynamoAccountStore;
use reelay_domain::ports::AccountStore;
use reelay_domain::{Policy, TenantId};
use reelay_local::{HttpFront, Routes};
use reelay_template::{ProvisionOptions, Template};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use common::Contract;

struct Stack {
    contract: Contract,
    url: String,
    http: reqwest::Client,
    sqs: aws_sdk_sqs::Client,
    render_queue: String,
    _sim: tiktok_sim::SimHandle,
    _front: HttpFront,
}

const KEY_A: &str = "rl_test_key_tenant_a_0123456789";
const KEY_B: &str = "rl_test_key_tenant_b_0123456789";

async fn stack() -> Stack {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "AWS_ENDPOINT_URL is not set: run via `make test`, or `infra/scripts/aws-emulator.sh start` and \
         `eval \"$(infra/scripts/aws-emulator.sh env)\"` first"
    );
    let sdk = reelay_aws::load_sdk_config().await;
    let sim = tiktok_sim::TikTokSim::start(tiktok_sim::SimConfig::default())
        .await
        .unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let template =
        Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
    let mut options = ProvisionOptions::new("test").with_suffix(suffix);
    options.secret_values.insert(
        "TikTokAppSecret".into(),
        json!({"clientKey": "sim_client_key", "clientSecret": "sim_client_secret"}).to_string(),
    );
    let stack = reelay_template::provision(&sdk, &template, &options)
        .await
        .unwrap();
    let env = |k: &str| {
        stack
            .env_var(k)
            .unwrap_or_else(|| panic!("{k} not provisioned"))
            .to_owned()
    };

    // The front's URL must be known before the handler (OAuth redirect), so bind first.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = Config {
        table_name: env("TABLE_NAME"),
        render_queue_url: env("RENDER_QUEUE_URL"),
        tiktok_app_secret_id: env("TIKTOK_APP_SECRET_ID"),
        tiktok_token_secret_prefix: env("TIKTOK_TOKEN_SECRET_PREFIX"),
        tiktok_api_base_url: sim.base_url.clone(),
        tiktok_auth_base_url: sim.base_url.clone(),
        public_base_url: Some(url.clone()),
        policy: Policy::default(),
        limits: Default::default(),
    };
    let deps: Arc<LiveDeps> = Arc::new(live_deps(&sdk, &config).await.unwrap());
    let accounts = DynamoAccountStore::new(aws_sdk_dynamodb::Client::new(&sdk), env("TABLE_NAME"));
    for (tenant, key) in [("tenant_a", KEY_A), ("tenant_b", KEY_B)] {
        accounts
            .put_tenant_key(
                &TenantId::parse(tenant).unwrap(),
                &ingest_api::api_key_hash(key),
            )
            .await
            .unwrap();
    }
    let routes = Routes::new()
        .function_from_template(&template, "IngestApiFunction", move |req| {
            let deps = deps.clone();
            async move { ingest_api::function_handler(&deps, req).await }
        })
        .unwrap();
    let front = HttpFront::serve(listener, routes, CancellationToken::new()).unwrap();
    Stack {
        contract: Contract::load(),
        url,
        http: reqwest::Client::new(),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        render_queue: env("RENDER_QUEUE_URL"),
        _sim: sim,
        _front: front,
    }
}

impl Stack {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (u16, String) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(i) = idem {
            req = req.header("idempotency-key", i);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        self.contract.check(method, path, status, &text);
        (status, text)
    }

    async fn json(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (u16, Value) {
        let (status, text) = self.call(method, path, key, body, idem).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Connects `account` for the tenant of `key` through TikTok's OAuth (the simulator's
    /// authorize page redirects straight back to the callback).
    async fn connect(&self, key: &str, account: &str) -> (u16, Value) {
        let (status, body) = self
            .json(
                "POST",
                "/v1/accounts/connect",
                Some(key),
                Some(json!({"tiktokAccountId": account})),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let authorize = body["authorizeUrl"].as_str().unwrap().to_owned();
        let resp = self.http.get(&authorize).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn render_messages(&self) -> usize {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.render_queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        out.messages().len()
    }
}

fn job_body(account: &str) -> Value {
    json!({
        "tiktokAccountId": account,
        "source": {"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "start": 0, "end": 600},
        "post": {"mode": "direct", "privacyLevel": "SELF_ONLY", "title": "a #cat video"},
        "scheduleAt": "2026-03-10T18:00:00Z"
    })
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no envelope>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_connects_through_oauth_and_a_state_works_once_only() {
    let s = stack().await;
    let (status, connected) = s.connect(KEY_A, "acct_1").await;
    assert_eq!(status, 200, "{connected}");
    assert_eq!(connected["health"], "active");
    assert!(connected["scopes"].as_array().is_some());

    let (status, account) = s
        .json("GET", "/v1/accounts/acct_1", Some(KEY_A), None, None)
        .await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["health"], "active");
    assert_eq!(account["budgets"]["tiktok_init"]["remaining"], 6);
    assert_eq!(account["budgets"]["pending_drafts"]["limit"], 5);

    // A forged state, and a real one replayed, connect nothing.
    let (status, forged) = s
        .json(
            "GET",
            "/v1/accounts/oauth/callback?code=x&state=forged",
            None,
            None,
            None,
        )
        .await;
    assert_eq!((status, code(&forged)), (400, "invalid_oauth_state"));
    let (_, link) = s
        .json(
            "POST",
            "/v1/accounts/connect",
            Some(KEY_A),
            Some(json!({"tiktokAccountId": "acct_2"})),
            None,
        )
        .await;
    let first = s
        .http
        .get(link["authorizeUrl"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = first.url().clone();
    assert_eq!(first.status().as_u16(), 200);
    let replay = s.http.get(callback).send().await.unwrap();
    assert_eq!(replay.status().as_u16(), 400);

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

    // Another tenant cannot see the account.
    let (status, other) = s
        .json("GET", "/v1/accounts/acct_1", Some(KEY_B), None, None)
        .await;
    assert_eq!((status, code(&other)), (404, "account_not_found"));
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

    let (replay_status, replay) = s
        .call(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_1")),
            Some("k-1"),
        )
        .await;
    assert_eq!(replay_status, 200);
    assert_eq!(
        replay, first,
        "the replay is the first answer, byte for byte"
    );

    let mut other = job_body("acct_1");
    other["post"]["title"] = json!("another title");
    let (status, conflict) = s
        .json("POST", "/v1/jobs", Some(KEY_A), Some(other), Some("k-1"))
        .await;
    assert_eq!((status, code(&conflict)), (409, "idempotency_key_reused"));

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

    assert_eq!(s.render_messages().await, 1, "one job, one render message");
    let (_, list) = s.json("GET", "/v1/jobs", Some(KEY_A), None, None).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
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

    let resp = s
        .http
        .post(format!("{}/v1/jobs", s.url))
        .bearer_auth(KEY_A)
        .header("idempotency-key", "k")
        .header("content-type", "text/plain")
        .body(job_body("acct_1").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    let resp = s
        .http
        .post(format!("{}/v1/jobs", s.url))
        .bearer_auth(KEY_A)
        .header("idempotency-key", "k")
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, b'{'])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "malformed_json");
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
    // Not a route of the HTTP API: API Gateway itself answers (the handler's 405 is unit-tested).
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_request_is_answered_in_the_seed_shape() {
    let s = stack().await;
    s.connect(KEY_A, "acct_kor_store_03").await;
    let seed = json!({
        "jobId": "job_01HT0000000000000000000000",
        "requestId": "665a1b2c3d4e5f6a7b8c9d0e",
        "tiktokAccountId": "acct_kor_store_03",
        "scheduleAt": "2026-03-10T18:00:00Z",
        "idempotencyKey": "2f182b63-312f-4290-9222-7cf6f7f8f12d"
    });
    let (status, body) = s
        .json(
            "POST",
            "/api/publish/tiktok",
            Some(KEY_A),
            Some(seed.clone()),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
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
    let (status, replay) = s
        .json("POST", "/api/publish/tiktok", Some(KEY_A), Some(seed), None)
        .await;
    assert_eq!((status, replay), (200, body));
}
