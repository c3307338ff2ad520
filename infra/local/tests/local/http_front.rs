//! The HTTP front over real loopback HTTP: what a lambda_http handler sees, and what the client
//! gets back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use reelay_local::{FunctionSpec, HttpFront, Routes};

use crate::common::template;

/// What the handler observed, flattened for assertions.
#[derive(Debug, Clone, Default)]
struct Seen {
    method: String,
    path: String,
    raw_path: String,
    query: BTreeMap<String, Vec<String>>,
    path_params: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    body_was_binary: bool,
    route_key: String,
    stage: String,
    source_ip: String,
    request_id: String,
    deadline_ms: u64,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn observe(req: &Request) -> Seen {
    let query = req.query_string_parameters();
    let mut q = BTreeMap::new();
    for (k, _) in query.iter() {
        q.insert(
            k.to_owned(),
            query
                .all(k)
                .unwrap_or_default()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        );
    }
    let params = req.path_parameters();
    let (route_key, stage, source_ip) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.route_key.clone().unwrap_or_default(),
            ctx.stage.clone().unwrap_or_default(),
            ctx.http.source_ip.clone().unwrap_or_default(),
        ),
        other => panic!("expected an API Gateway v2 context, got {other:?}"),
    };
    let ctx = req
        .lambda_context_ref()
        .expect("lambda context in the request");
    Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        raw_path: req.raw_http_path().to_owned(),
        query: q,
        path_params: params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("<bin>").to_owned()))
            .collect(),
        body: req.body().to_vec(),
        body_was_binary: matches!(req.body(), Body::Binary(_)),
        route_key,
        stage,
        source_ip,
        request_id: ctx.request_id.clone(),
        deadline_ms: ctx.deadline,
    }
}

/// A handler that records what it saw and answers with a JSON echo or reversed binary.
fn recorder(
    log: Log,
) -> impl Fn(Request) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>>
+ Send
+ Sync
+ 'static {
    move |req: Request| {
        let seen = observe(&req);
        log.lock().unwrap().push(seen.clone());
        Box::pin(async move {
            if seen.body_was_binary {
                let reversed: Vec<u8> = seen.body.iter().rev().copied().collect();
                return Response::builder()
                    .status(200)
                    .header("content-type", "application/octet-stream")
                    .body(Body::Binary(reversed))
                    .unwrap();
            }
            Response::builder()
                .status(201)
                .header("content-type", "application/json")
                .header("x-reelay-route", seen.route_key.clone())
                .body(Body::Text(
                    serde_json::json!({ "echo": String::from_utf8_lossy(&seen.body) }).to_string(),
                ))
                .unwrap()
        })
    }
}

async fn front(routes: Routes) -> HttpFront {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    HttpFront::start(addr, routes).await.unwrap()
}

fn spec() -> FunctionSpec {
    FunctionSpec::new("IngestApiFunction", Duration::from_secs(15))
}

#[tokio::test]
async fn when_json_is_posted_should_reach_the_handler_as_lambda_http_parses_it_and_answer_back() {
    let log: Log = Arc::default();
    let routes = Routes::new()
        .route("POST /v1/jobs", spec(), recorder(log.clone()))
        .unwrap();
    let front = front(routes).await;
    let client = reqwest::Client::new();
    let body = r#"{"sourceUrl":"https://example.com/v.mp4","accounts":["a1"]}"#;
    let res = client
        .post(format!(
            "{}/v1/jobs?dryRun=true&tag=a&tag=b%20c",
            front.url()
        ))
        .header("Idempotency-Key", "key-123")
        .header("Content-Type", "application/json")
        .header("Cookie", "session=s1; theme=dark")
        .header("User-Agent", "reelay-test")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers()["x-reelay-route"], "POST /v1/jobs");
    assert_eq!(res.headers()["content-type"], "application/json");
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(answer["echo"], body);

    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v1/jobs");
    assert_eq!(seen.raw_path, "/v1/jobs");
    assert_eq!(seen.route_key, "POST /v1/jobs");
    assert_eq!(seen.stage, "$default");
    assert_eq!(seen.source_ip, "127.0.0.1");
    assert_eq!(seen.query["dryRun"], ["true"]);
    assert_eq!(
        seen.query["tag"],
        ["a", "b c"],
        "repeated and encoded query values"
    );
    assert_eq!(
        seen.headers["idempotency-key"], "key-123",
        "header names lower-cased"
    );
    assert_eq!(seen.headers["user-agent"], "reelay-test");
    assert_eq!(
        seen.headers["cookie"], "session=s1; theme=dark",
        "cookies travel as `cookies` and are rejoined"
    );
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert!(!seen.body_was_binary, "JSON arrives as text");
    assert_eq!(seen.body, body.as_bytes());
    assert!(!seen.request_id.is_empty());
    let now_ms = chrono::Utc::now().timestamp_millis() as u64;
    assert!(
        seen.deadline_ms > now_ms + 10_000,
        "deadline = now + the function's 15 s timeout"
    );
    front.stop().await.unwrap();
}

#[tokio::test]
async fn when_binary_is_posted_should_arrive_decoded_and_a_binary_response_should_be_written_back()
{
    let log: Log = Arc::default();
    let routes = Routes::new()
        .prefix("/webhooks/ssemble", spec(), recorder(log.clone()))
        .unwrap();
    let front = front(routes).await;
    let bytes = vec![0u8, 159, 146, 150, 255, 1, 2];
    let res = reqwest::Client::new()
        .post(format!("{}/webhooks/ssemble/tok-1", front.url()))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    let back = res.bytes().await.unwrap().to_vec();
    assert_eq!(back, bytes.iter().rev().copied().collect::<Vec<_>>());
    let seen = log.lock().unwrap()[0].clone();
    assert!(
        seen.body_was_binary,
        "non-UTF-8 arrives base64-encoded and lambda_http decodes it"
    );
    assert_eq!(seen.body, bytes);
    assert_eq!(seen.route_key, "ANY /webhooks/ssemble/{proxy+}");
    assert_eq!(seen.path_params["proxy"], "tok-1");
    front.stop().await.unwrap();
}

#[tokio::test]
async fn when_routes_come_from_the_template_should_route_and_fill_path_parameters_like_api_gateway()
{
    let t = template();
    let ingest: Log = Arc::default();
    let ssemble: Log = Arc::default();
    let tiktok: Log = Arc::default();
    let routes = Routes::new()
        .function_from_template(&t, "IngestApiFunction", recorder(ingest.clone()))
        .unwrap()
        .function_from_template(&t, "SsembleWebhookFunction", recorder(ssemble.clone()))
        .unwrap()
        .function_from_template(&t, "TikTokWebhookFunction", recorder(tiktok.clone()))
        .unwrap();
    assert!(routes.keys().contains(&"GET /v1/jobs/{jobId}".to_owned()));
    let front = front(routes).await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", front.url())).send();

    assert_eq!(get("/v1/jobs/j-42").await.unwrap().status().as_u16(), 201);
    assert_eq!(
        get("/v1/accounts/oauth/callback?code=c1&state=s1")
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    assert_eq!(
        get("/v1/accounts/acc-7/creator-info")
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    let post = client
        .post(format!("{}/webhooks/ssemble/secret-token", front.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 201);
    let tk = client
        .post(format!("{}/webhooks/tiktok", front.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(tk.status().as_u16(), 201);

    let not_found = get("/v2/nothing").await.unwrap();
    assert_eq!(not_found.status().as_u16(), 404);
    assert_eq!(
        not_found.text().await.unwrap(),
        r#"{"message":"Not Found"}"#
    );
    let wrong_method = client
        .delete(format!("{}/v1/jobs", front.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong_method.status().as_u16(),
        404,
        "no ANY route: API Gateway answers 404"
    );

    let ingest = ingest.lock().unwrap().clone();
    let keys: Vec<_> = ingest.iter().map(|s| s.route_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "GET /v1/jobs/{jobId}",
            "GET /v1/accounts/oauth/callback",
            "GET /v1/accounts/{accountId}/creator-info"
        ]
    );
    assert_eq!(ingest[0].path_params["jobId"], "j-42");
    assert_eq!(ingest[1].query["code"], ["c1"]);
    assert!(ingest[1].path_params.is_empty());
    assert_eq!(ingest[2].path_params["accountId"], "acc-7");
    let ssemble = ssemble.lock().unwrap().clone();
    assert_eq!(ssemble[0].route_key, "POST /webhooks/ssemble/{token}");
    assert_eq!(ssemble[0].path_params["token"], "secret-token");
    assert_eq!(tiktok.lock().unwrap()[0].route_key, "POST /webhooks/tiktok");
    // The ingest function's timeout (15 s in template.yaml) sets the context deadline.
    let now_ms = chrono::Utc::now().timestamp_millis() as u64;
    assert!(ingest[0].deadline_ms > now_ms + 10_000 && ingest[0].deadline_ms <= now_ms + 15_500);
    assert_eq!(front.stats().not_found, 2);
    front.stop().await.unwrap();
}

#[tokio::test]
async fn when_the_body_exceeds_10_mb_should_answer_413_without_invoking() {
    let log: Log = Arc::default();
    let routes = Routes::new()
        .route("POST /v1/jobs", spec(), recorder(log.clone()))
        .unwrap();
    let front = front(routes).await;
    let res = reqwest::Client::new()
        .post(format!("{}/v1/jobs", front.url()))
        .body(vec![b'a'; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    assert!(log.lock().unwrap().is_empty());
    front.stop().await.unwrap();
}

#[tokio::test]
async fn when_the_handler_panics_errors_or_times_out_should_answer_500_and_keep_serving() {
    let short = FunctionSpec::new("SlowFunction", Duration::from_millis(200));
    let routes = Routes::new()
        .route("GET /panic", spec(), |_req: Request| async move {
            assert!(std::hint::black_box(false), "handler bug");
            Response::new(Body::Empty)
        })
        .unwrap()
        .route("GET /slow", short, |_req: Request| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::new(Body::Empty)
        })
        .unwrap()
        .route("GET /error", spec(), |_req: Request| async move {
            Err::<Response<Body>, _>("store unavailable")
        })
        .unwrap()
        .route("GET /ok", spec(), |_req: Request| async move {
            Response::builder().status(204).body(Body::Empty).unwrap()
        })
        .unwrap();
    let front = front(routes).await;
    let client = reqwest::Client::new();
    let panic = client
        .get(format!("{}/panic", front.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(panic.status().as_u16(), 500);
    assert_eq!(
        panic.text().await.unwrap(),
        r#"{"message":"Internal Server Error"}"#
    );
    let started = std::time::Instant::now();
    let slow = client
        .get(format!("{}/slow", front.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        slow.status().as_u16(),
        500,
        "a Lambda timeout is a function error"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let error = client
        .get(format!("{}/error", front.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error.status().as_u16(),
        500,
        "a function error becomes the gateway's 500"
    );
    assert_eq!(
        error.text().await.unwrap(),
        r#"{"message":"Internal Server Error"}"#
    );
    // lambda_http unwraps its URL parse; a Host it cannot parse must not take the front down.
    let bad_host = client
        .get(format!("{}/ok", front.url()))
        .header("host", "bad host")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_host.status().as_u16(), 400);
    let ok = client
        .get(format!("{}/ok", front.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(front.stats().server_errors, 3);
    front.stop().await.unwrap();
}

#[test]
fn when_an_event_is_built_should_have_the_keys_and_types_api_gateway_sends() {
    use reelay_local::http::{IncomingRequest, apigw_v2_event};
    let mut headers = http::HeaderMap::new();
    headers.insert("host", "127.0.0.1:3000".parse().unwrap());
    headers.insert("user-agent", "curl/7.58.0".parse().unwrap());
    headers.insert("accept", "*/*".parse().unwrap());
    let request = IncomingRequest {
        method: &http::Method::GET,
        raw_path: "/",
        raw_query: "",
        headers: &headers,
        body: b"",
        source_ip: "1.2.3.4".into(),
    };
    let matched = reelay_local::RouteMatch {
        route_key: "$default".into(),
        path_parameters: BTreeMap::new(),
    };
    let ours = apigw_v2_event(&request, &matched, chrono::Utc::now());
    let aws = crate::common::fixture("apigw-v2-request.json");
    crate::common::assert_same_shape(&aws, &ours, "event", &[]);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&ours),
        keys(&aws),
        "a bodiless GET has exactly AWS's top-level keys"
    );
    assert_eq!(keys(&ours["requestContext"]), keys(&aws["requestContext"]));
    assert_eq!(
        ours["requestContext"]["time"].as_str().unwrap().len(),
        aws["requestContext"]["time"].as_str().unwrap().len()
    );
    assert_eq!(ours["requestContext"]["domainName"], "127.0.0.1:3000");
}
