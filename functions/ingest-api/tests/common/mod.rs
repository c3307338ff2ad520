//! The one stack every suite runs on: template.yaml provisioned into MiniStack, the handler wired
//! by `wiring::live` (real SDK clients, TikTok from the in-process simulator), requests delivered
//! as the API Gateway v2 events Lambda receives (only the routes template.yaml gives the
//! function reach it), every answer held against openapi.yaml, two tenants, and a snapshot of
//! everything a request could change.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use base64::Engine;
use ingest_api::config::{Config, MAX_BODY_BYTES};
use ingest_api::wiring::{LivePorts, live};
use ingest_api::{Deps, handler};
use lambda_http::Body;
use lambda_http::http::HeaderMap;
use reelay_aws::DynamoStore;
use reelay_domain::ports::TenantStore;
use reelay_domain::tenant::ApiKey;
use reelay_domain::usecase::Settings;
use reelay_domain::{Event, JobId, RequestId, TenantId, UtcTime};
use reelay_template::{ProvisionOptions, Template};
use serde_json::{Value, json};

pub const KEY_A: &str = "rl_test_key_tenant_a_0123456789";
pub const KEY_B: &str = "rl_test_key_tenant_b_0123456789";
/// Where TikTok sends creators back (never dialled: the test hands the redirect to the handler).
pub const PUBLIC_BASE_URL: &str = "https://ingest.reelay.test";
const FUNCTION: &str = "IngestApiFunction";

/// openapi.yaml, loaded once per suite.
pub fn document() -> Value {
    let raw =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_norway::from_str(&raw).unwrap()
}

pub fn template() -> Template {
    Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap()
}

/// The function's `HttpApi` routes in template.yaml, as `(METHOD, /path/{param})`.
pub fn template_routes(template: &Template) -> Vec<(String, String)> {
    let function = template
        .functions()
        .into_iter()
        .find(|f| f.id == FUNCTION)
        .expect("IngestApiFunction in template.yaml");
    function
        .events_of_type("HttpApi")
        .map(|props| {
            let get = |k: &str| props.get(k).and_then(|v| v.as_str()).unwrap().to_owned();
            (get("Method").to_ascii_uppercase(), get("Path"))
        })
        .collect()
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
    pub deps: Deps<LivePorts>,
    /// The function's routes in template.yaml: what API Gateway forwards.
    pub routes: Vec<(String, String)>,
    /// Follows no redirect: the simulator's authorize page answers with the callback URL.
    pub http: reqwest::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    /// Logical id → URL, DLQs included.
    pub queues: BTreeMap<String, String>,
    pub max_body_bytes: usize,
    _sim: tiktok_sim::SimHandle,
}

/// Provisions a fresh copy of template.yaml's resources (a random suffix per stack), starts the
/// TikTok simulator, wires the handler and registers both tenants' API keys.
pub async fn stack() -> Stack {
    stack_with(|_| {}).await
}

/// [`stack`] with its configuration adjusted first (a small limit, say).
pub async fn stack_with(configure: impl FnOnce(&mut Config)) -> Stack {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "AWS_ENDPOINT_URL is not set: run via `make test`, or `infra/scripts/aws-emulator.sh start` and \
         `eval \"$(infra/scripts/aws-emulator.sh env)\"` first"
    );
    let sdk = reelay_aws::load_sdk_config()
        .await
        .expect("AWS SDK configuration");
    let sim = tiktok_sim::TikTokSim::start(tiktok_sim::SimConfig::default())
        .await
        .unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let template = template();
    let mut options = ProvisionOptions::new("test").with_suffix(suffix);
    options.secret_values.insert(
        "TikTokAppSecret".into(),
        json!({"clientKey": "sim_client_key", "clientSecret": "sim_client_secret"}).to_string(),
    );
    let provisioned = reelay_template::provision(&sdk, &template, &options)
        .await
        .unwrap();
    let env: BTreeMap<String, String> = provisioned
        .function_env(FUNCTION)
        .unwrap()
        .iter()
        .cloned()
        .collect();
    let var = |k: &str| {
        env.get(k)
            .unwrap_or_else(|| panic!("{k} not in {FUNCTION}'s environment"))
            .clone()
    };
    let config = Config {
        table_name: var("TABLE_NAME"),
        render_queue_url: var("RENDER_QUEUE_URL"),
        tiktok_app_secret_id: var("TIKTOK_APP_SECRET_ID"),
        token_table_name: var("TOKEN_TABLE_NAME"),
        token_key_id: var("TOKEN_KEY_ID"),
        tiktok_token_secret_prefix: Some(var("TIKTOK_TOKEN_SECRET_PREFIX")),
        tiktok_api_base_url: sim.base_url.clone(),
        tiktok_auth_base_url: sim.base_url.clone(),
        public_base_url: Some(PUBLIC_BASE_URL.into()),
        max_body_bytes: MAX_BODY_BYTES,
        settings: Settings::default(),
        webhook_queue_url: var("WEBHOOK_QUEUE_URL"),
        webhook_allow_loopback: false,
    };
    let mut config = config;
    configure(&mut config);
    let deps = live(&sdk, &config).await.unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name);
    for (tenant, key) in [("tenant_a", KEY_A), ("tenant_b", KEY_B)] {
        store
            .put_api_key(&ApiKey {
                hash: ingest_api::api_key_hash(key),
                tenant: TenantId::parse(tenant).unwrap(),
                created_at: UtcTime::from_secs(0),
                not_after: None,
                revoked: false,
            })
            .await
            .unwrap();
    }
    Stack {
        contract: Contract::load(),
        max_body_bytes: deps.max_body_bytes,
        deps,
        routes: template_routes(&template),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        ddb: aws_sdk_dynamodb::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        table: config.table_name,
        queues: provisioned
            .queues
            .iter()
            .map(|(id, q)| (id.clone(), q.url.clone()))
            .collect(),
        _sim: sim,
    }
}

/// A raw request: any method, headers and body bytes. `path` may carry a query string.
pub struct Raw<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<Vec<u8>>,
}

/// Whether an API Gateway route template (`/v1/jobs/{jobId}`) matches a raw path.
fn route_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
}

/// The payload format 2.0 event API Gateway's HTTP API sends for `r`: header names lower-cased,
/// the raw path and query as sent, a body that is not UTF-8 base64-encoded.
pub fn apigw_event(r: &Raw<'_>, route_key: &str) -> Value {
    let (raw_path, raw_query) = r.path.split_once('?').unwrap_or((r.path, ""));
    let mut headers = serde_json::Map::new();
    for (k, v) in &r.headers {
        headers.insert(k.to_ascii_lowercase(), Value::String(v.clone()));
    }
    headers.insert("host".into(), json!("ingest.reelay.test"));
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "ingest.reelay.test",
            "http": {"method": r.method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "tests"},
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "timeEpoch": 0,
        },
        "isBase64Encoded": false,
    });
    if let Some(body) = r.body.as_deref().filter(|b| !b.is_empty()) {
        match std::str::from_utf8(body) {
            Ok(text) => event["body"] = json!(text),
            Err(_) => {
                event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    event
}

fn body_text(body: &Body) -> String {
    match body {
        Body::Empty => String::new(),
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

impl Stack {
    /// Delivers `r` as API Gateway would: a path and method template.yaml does not route to the
    /// function is answered by the gateway itself (404), anything else by the handler. Handler
    /// answers are checked against openapi.yaml.
    pub async fn raw(&self, r: Raw<'_>) -> (u16, String) {
        let (status, _, text) = self.raw_with_headers(r).await;
        (status, text)
    }

    /// [`Stack::raw`], with the answer's headers.
    pub async fn raw_with_headers(&self, r: Raw<'_>) -> (u16, HeaderMap, String) {
        let raw_path = r.path.split('?').next().unwrap_or(r.path);
        let Some((m, p)) = self
            .routes
            .iter()
            .find(|(m, p)| *m == r.method && route_matches(p, raw_path))
        else {
            let text = json!({"message": "Not Found"}).to_string();
            return (404, HeaderMap::new(), text);
        };
        let route_key = format!("{m} {p}");
        let (status, headers, text) = self.invoke_with_headers(&r, &route_key).await;
        self.contract.check(r.method, r.path, status, &text);
        (status, headers, text)
    }

    /// Hands `r` to the handler as a Lambda event, whatever the gateway would do.
    pub async fn invoke(&self, r: &Raw<'_>, route_key: &str) -> (u16, String) {
        let (status, _, text) = self.invoke_with_headers(r, route_key).await;
        (status, text)
    }

    async fn invoke_with_headers(&self, r: &Raw<'_>, route_key: &str) -> (u16, HeaderMap, String) {
        let event = apigw_event(r, route_key);
        let gateway_id = event["requestContext"]["requestId"]
            .as_str()
            .unwrap()
            .to_owned();
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = handler(&self.deps, request).await;
        // Every answer, success or error, names the request as API Gateway's access log does.
        assert_eq!(
            response
                .headers()
                .get(ingest_api::REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some(gateway_id.as_str()),
            "{} {}: X-Request-Id",
            r.method,
            r.path
        );
        (
            response.status().as_u16(),
            response.headers().clone(),
            body_text(response.body()),
        )
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (u16, String) {
        let (status, _, text) = self.call_with_headers(method, path, key, body, idem).await;
        (status, text)
    }

    /// [`Stack::call`], with the answer's headers.
    pub async fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (u16, HeaderMap, String) {
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
        self.raw_with_headers(Raw {
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

    /// Asks for an authorize link and follows it to TikTok (the simulator), which sends the
    /// creator back at once: answers the callback request TikTok's redirect names.
    pub async fn authorize(&self, key: &str, account: &str) -> String {
        self.authorize_for(key, account, "direct").await
    }

    /// [`Self::authorize`] for `mode` (`direct` or `draft`).
    pub async fn authorize_for(&self, key: &str, account: &str, mode: &str) -> String {
        let (status, body) = self
            .json(
                "POST",
                "/v1/accounts/connect",
                Some(key),
                Some(json!({"tiktokAccountId": account, "mode": mode})),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let authorize = body["authorizeUrl"].as_str().unwrap();
        let resp = self.http.get(authorize).send().await.unwrap();
        assert!(resp.status().is_redirection(), "{}", resp.status());
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        location
            .strip_prefix(PUBLIC_BASE_URL)
            .unwrap_or_else(|| panic!("TikTok redirected elsewhere: {location}"))
            .to_owned()
    }

    /// Delivers TikTok's redirect (`/v1/accounts/oauth/callback?…`) to the handler.
    pub async fn callback(&self, path: &str) -> (u16, Value) {
        let (status, text) = self
            .raw(Raw {
                method: "GET",
                path,
                headers: Vec::new(),
                body: None,
            })
            .await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Connects `account` for the tenant of `key` through TikTok's OAuth.
    pub async fn connect(&self, key: &str, account: &str) -> Value {
        let callback = self.authorize(key, account).await;
        let (status, body) = self.callback(&callback).await;
        assert_eq!(status, 200, "connecting {account}: {body}");
        body
    }

    /// Offers events to a job as the other functions would (the stack has only the client API),
    /// through the same Core; each must move the job.
    pub async fn drive(&self, id: &str, events: &[Event]) {
        let id = JobId::parse(id).unwrap();
        for event in events {
            let advance = self.deps.core.advance(&id, event).await.unwrap();
            assert!(
                advance.moved(),
                "{} did not move the job: {advance:?}",
                event.name()
            );
        }
    }

    /// A render of the tenant of `key`'s own: a job on `account` (connected already) whose
    /// Ssemble create the render submitter recorded, as it would. Answers the job and render.
    pub async fn own_render(&self, key: &str, account: &str, idem: &str) -> (String, RequestId) {
        let (status, job) = self
            .json(
                "POST",
                "/v1/jobs",
                Some(key),
                Some(job_body(account)),
                Some(idem),
            )
            .await;
        assert_eq!(status, 202, "{job}");
        let id = job["jobId"].as_str().unwrap().to_owned();
        let hex = uuid::Uuid::new_v4().simple().to_string();
        let request_id = RequestId::parse(&hex[..24]).unwrap();
        self.drive(
            &id,
            &[
                Event::RenderSubmitStarted {
                    webhook_token_hash: "0".repeat(64),
                },
                Event::RenderSubmitted {
                    request_id: request_id.clone(),
                    found: false,
                },
            ],
        )
        .await;
        (id, request_id)
    }

    /// Every item of the table (consistent read) and every queue's visible, in-flight and
    /// delayed counts. Counting leaves the messages where they are.
    /// A tenant's API request counter as stored.
    pub async fn api_budget(&self, tenant: &str) -> String {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("BUDGET#api:{tenant}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("tally".into()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let sorted: BTreeMap<_, _> = out.item().into_iter().flatten().collect();
        format!("{sorted:?}")
    }

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
                // The tenants' API request counters count every request, refused or not; they
                // are no state a request changes (`api_budget` reads them).
                if item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with("BUDGET#api:"))
                {
                    continue;
                }
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

    /// Render-queue messages, received (and so hidden for the visibility timeout).
    pub async fn render_messages(&self) -> usize {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queues["RenderQueue"])
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        out.messages().len()
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

pub fn seed_body(account: &str, request_id: &RequestId) -> Value {
    json!({
        "requestId": request_id.as_str(),
        "tiktokAccountId": account,
    })
}

/// A well-formed requestId no job uses: bodies that fail before ownership is checked.
pub fn any_render() -> RequestId {
    RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap()
}

/// The error code of an envelope, or a marker that makes any code assertion fail.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no envelope>")
}
