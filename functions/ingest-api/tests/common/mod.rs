//! Shared by the bad-input and tenant-isolation suites: the ingest API over real HTTP (API
//! Gateway v2 events, as Lambda receives them) on the local AWS endpoint, every answer held
//! against openapi.yaml, two tenants, and a snapshot of everything a request could change.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ingest_api::wiring::{Config, LiveDeps, live_deps};
use reelay_aws::DynamoAccountStore;
use reelay_domain::ports::AccountStore;
use reelay_domain::{Policy, TenantId};
use reelay_local::{HttpFront, Routes};
use reelay_template::{ProvisionOptions, Template};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const KEY_A: &str = "rl_test_key_tenant_a_0123456789";
pub const KEY_B: &str = "rl_test_key_tenant_b_0123456789";

/// openapi.yaml, loaded once per suite.
pub fn document() -> Value {
    let raw =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_norway::from_str(&raw).unwrap()
}

/// openapi.yaml as a validator: every answer the handler gives must be a documented status of
/// its operation, with a body that matches the documented schema.
pub struct Contract {
    pub doc: Value,
}

impl Contract {
    pub fn load() -> Self {
        Self { doc: document() }
    }

    pub fn check(&self, method: &str, path: &str, status: u16, body: &str) {
        let path_only = path.split('?').next().unwrap_or(path);
        // Routes the HTTP API does not have are answered by API Gateway, not by the handler.
        let Ok(endpoint) = ingest_api::routes::resolve(method, path_only) else {
            return;
        };
        let id = endpoint.operation_id();
        let (template, op) = self.doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(p, item)| item.as_object().unwrap().values().map(move |op| (p, op)))
            .find(|(_, op)| op["operationId"] == id)
            .unwrap_or_else(|| panic!("{id} is not documented"));
        let response = &op["responses"][status.to_string()];
        assert!(
            !response.is_null(),
            "{method} {template} answered {status}, which openapi.yaml does not document: {body}"
        );
        let response = match response.get("$ref").and_then(Value::as_str) {
            Some(r) => self.pointer(r).clone(),
            None => response.clone(),
        };
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            return;
        };
        let instance: Value = serde_json::from_str(body).unwrap_or_else(|_| {
            panic!("{method} {template} {status}: the body is not JSON: {body}")
        });
        let mut wrapper = self.doc.as_object().unwrap().clone();
        wrapper.insert("allOf".into(), json!([schema]));
        let validator = jsonschema::draft202012::new(&Value::Object(wrapper)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status} does not match openapi.yaml: {errors:?}\n{body}"
        );
    }

    fn pointer(&self, reference: &str) -> &Value {
        self.doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {reference}"))
    }
}

/// Everything a request could change: every table item and every queue's message counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub items: Vec<String>,
    pub queues: BTreeMap<String, String>,
}

pub struct Stack {
    pub contract: Contract,
    pub url: String,
    pub http: reqwest::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    /// Logical id → URL, DLQs included.
    pub queues: BTreeMap<String, String>,
    pub max_body_bytes: usize,
    _sim: tiktok_sim::SimHandle,
    _front: HttpFront,
}

pub async fn stack() -> Stack {
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
    let provisioned = reelay_template::provision(&sdk, &template, &options)
        .await
        .unwrap();
    let env = |k: &str| {
        provisioned
            .env_var(k)
            .unwrap_or_else(|| panic!("{k} not provisioned"))
            .to_owned()
    };

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
    let max_body_bytes = deps.max_body_bytes;
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
        ddb: aws_sdk_dynamodb::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        table: env("TABLE_NAME"),
        queues: provisioned
            .queues
            .iter()
            .map(|(id, q)| (id.clone(), q.url.clone()))
            .collect(),
        max_body_bytes,
        _sim: sim,
        _front: front,
    }
}

/// A raw request: any method, headers and body bytes.
pub struct Raw<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<Vec<u8>>,
}

impl Stack {
    /// Sends a raw request; the answer is checked against openapi.yaml.
    pub async fn raw(&self, r: Raw<'_>) -> (u16, String) {
        let mut req = self
            .http
            .request(r.method.parse().unwrap(), format!("{}{}", self.url, r.path));
        for (k, v) in r.headers {
            req = req.header(k, v);
        }
        if let Some(b) = r.body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        self.contract.check(r.method, r.path, status, &text);
        (status, text)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (u16, String) {
        let mut headers = Vec::new();
        if let Some(k) = key {
            headers.push(("authorization", format!("Bearer {k}")));
        }
        if let Some(i) = idem {
            headers.push(("idempotency-key", i.to_owned()));
        }
        if body.is_some() {
            headers.push(("content-type", "application/json".to_owned()));
        }
        self.raw(Raw {
            method,
            path,
            headers,
            body: body.map(|b| b.to_string().into_bytes()),
        })
        .await
    }

    pub async fn json(
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
    pub async fn connect(&self, key: &str, account: &str) {
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
        assert_eq!(resp.status().as_u16(), 200, "connecting {account}");
    }

    /// Every item of the table (consistent read) and every queue's visible, in-flight and
    /// delayed counts. Counting leaves the messages where they are.
    pub async fn snapshot(&self) -> Snapshot {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .ddb
                .scan()
                .table_name(&self.table)
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
        for (id, url) in &self.queues {
            let attrs = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .unwrap();
            let get = |n: aws_sdk_sqs::types::QueueAttributeName| {
                attrs
                    .attributes()
                    .and_then(|a| a.get(&n))
                    .cloned()
                    .unwrap_or_default()
            };
            use aws_sdk_sqs::types::QueueAttributeName as N;
            queues.insert(
                id.clone(),
                format!(
                    "visible={} in_flight={} delayed={}",
                    get(N::ApproximateNumberOfMessages),
                    get(N::ApproximateNumberOfMessagesNotVisible),
                    get(N::ApproximateNumberOfMessagesDelayed)
                ),
            );
        }
        Snapshot { items, queues }
    }
}

pub fn job_body(account: &str) -> Value {
    json!({
        "tiktokAccountId": account,
        "source": {"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "start": 0, "end": 600},
        "post": {"mode": "direct", "privacyLevel": "SELF_ONLY", "title": "a #cat video"},
        "scheduleAt": "2026-03-10T18:00:00Z"
    })
}

pub fn seed_body(account: &str) -> Value {
    json!({
        "requestId": "665a1b2c3d4e5f6a7b8c9d0e",
        "tiktokAccountId": account,
    })
}

/// The error code of an envelope, or a marker that makes any code assertion fail.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no envelope>")
}
