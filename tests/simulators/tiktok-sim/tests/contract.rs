//! The simulator's answers have the shape of every documented example (fixtures shared with the client),
//! and its control API works over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tiktok_sim::{SimConfig, SimHandle, TikTokSim};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/tiktok/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Keys and JSON types, recursively; arrays by their first element.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => json!([a.first().map(shape)]),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

fn cfg() -> SimConfig {
    let mut c = SimConfig {
        start_unix: Some(1_780_000_000),
        ..SimConfig::default()
    };
    c.app.verified_prefixes = vec!["https://media.example.com/".into()];
    c
}

struct T {
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
}

impl T {
    async fn new(cfg: SimConfig) -> Self {
        let sim = TikTokSim::start(cfg).await.unwrap();
        let http = reqwest::Client::new();
        let tokens: Value = http
            .post(format!("{}/_sim/tokens", sim.base_url))
            .json(&json!({"open_id": "creator-1"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        Self { sim, http, token }
    }

    async fn api(&self, path: &str, body: Option<Value>) -> (u16, Value, Option<String>) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.sim.base_url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json; charset=UTF-8");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let logid = resp
            .headers()
            .get("x-tt-logid")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, resp.json().await.unwrap(), logid)
    }

    async fn status(&self, publish_id: &str) -> String {
        let (_, body, _) = self
            .api(
                "/v2/post/publish/status/fetch/",
                Some(json!({"publish_id": publish_id})),
            )
            .await;
        body["data"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn ctl(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}{path}", self.sim.base_url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn put(&self, url: &str, range: &str, body: Vec<u8>) -> (u16, Option<String>) {
        let resp = self
            .http
            .put(url)
            .header("content-type", "video/mp4")
            .header("content-range", range)
            .body(body)
            .send()
            .await
            .unwrap();
        let progress = resp
            .headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_owned());
        (resp.status().as_u16(), progress)
    }
}

#[tokio::test]
async fn when_creator_info_is_queried_with_or_without_a_body_should_match_the_documented_shape() {
    let t = T::new(cfg()).await;
    let (status, body, logid) = t.api("/v2/post/publish/creator_info/query/", None).await;
    assert_eq!(status, 200);
    assert_eq!(shape(&body), shape(&fixture("creator_info.ok.json")));
    assert_eq!(logid.as_deref(), body["error"]["log_id"].as_str());
    let (_, body, _) = t
        .api("/v2/post/publish/creator_info/query/", Some(json!({})))
        .await;
    assert_eq!(body["error"]["code"], "ok");
}

#[tokio::test]
async fn when_the_documented_init_and_upload_are_replayed_should_answer_as_documented() {
    let t = T::new(cfg()).await;
    let (status, body, _) = t
        .api(
            "/v2/post/publish/video/init/",
            Some(fixture("video_init.request.file_upload.json")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        shape(&body),
        shape(&fixture("video_init.ok.file_upload.json"))
    );
    let url = body["data"]["upload_url"].as_str().unwrap().to_owned();
    let publish_id = body["data"]["publish_id"].as_str().unwrap().to_owned();
    assert!(publish_id.len() <= 64 && url.len() <= 256);

    let ranges = [
        (0u64, 9_999_999u64),
        (10_000_000, 19_999_999),
        (20_000_000, 29_999_999),
        (30_000_000, 39_999_999),
        (40_000_000, 50_000_122),
    ];
    let mut statuses = Vec::new();
    for (a, b) in ranges {
        let (s, progress) = t
            .put(
                &url,
                &format!("bytes {a}-{b}/50000123"),
                vec![7u8; (b - a + 1) as usize],
            )
            .await;
        assert_eq!(progress, Some(format!("bytes 0-{}/50000123", b + 1)));
        statuses.push(s);
    }
    assert_eq!(statuses, [206, 206, 206, 206, 201]);
    let (s, progress) = t
        .put(&url, "bytes 0-9999999/50000123", vec![7u8; 10_000_000])
        .await;
    assert_eq!(
        (s, progress.as_deref()),
        (416, Some("bytes 0-50000123/50000123"))
    );
    let insp = t.sim.inspect();
    assert_eq!(insp["uploads"][&publish_id]["received"], 50_000_123);
    assert_eq!(insp["uploads"][&publish_id]["puts"], 5);
}

#[tokio::test]
async fn when_pull_init_status_and_cancel_answer_should_match_the_documented_shapes() {
    let t = T::new(cfg()).await;
    let body = json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "PULL_FROM_URL", "video_url": "https://media.example.com/a.mp4"}});
    let (_, init, _) = t
        .api("/v2/post/publish/video/init/", Some(body.clone()))
        .await;
    assert_eq!(
        shape(&init),
        shape(&fixture("video_init.ok.pull_from_url.json"))
    );
    let id = init["data"]["publish_id"].as_str().unwrap();
    let (_, cancel, _) = t
        .api("/v2/post/publish/cancel/", Some(json!({"publish_id": id})))
        .await;
    assert_eq!(shape(&cancel), shape(&fixture("cancel.ok.json")));

    t.sim.fail_next_publish("file_format_check_failed");
    let (_, init, _) = t.api("/v2/post/publish/video/init/", Some(body)).await;
    t.sim.advance(60);
    let (_, status, _) = t
        .api(
            "/v2/post/publish/status/fetch/",
            Some(json!({"publish_id": init["data"]["publish_id"]})),
        )
        .await;
    assert_eq!(status["data"]["fail_reason"], "file_format_check_failed");
    assert_eq!(
        shape(&status),
        shape(&fixture("status.failed.real.json")),
        "FAILED carries only status and fail_reason"
    );
}

#[tokio::test]
async fn when_public_post_is_moderated_should_send_19_digit_numbers() {
    let t = T::new(cfg()).await;
    let body = json!({"post_info": {"privacy_level": "PUBLIC_TO_EVERYONE"}, "source_info": {"source": "FILE_UPLOAD", "video_size": 1000, "chunk_size": 1000, "total_chunk_count": 1}});
    let (_, init, _) = t.api("/v2/post/publish/video/init/", Some(body)).await;
    let (s, _) = t
        .put(
            init["data"]["upload_url"].as_str().unwrap(),
            "bytes 0-999/1000",
            vec![1; 1000],
        )
        .await;
    assert_eq!(s, 201);
    t.sim.advance(100);
    let (_, status, _) = t
        .api(
            "/v2/post/publish/status/fetch/",
            Some(json!({"publish_id": init["data"]["publish_id"]})),
        )
        .await;
    assert_eq!(
        shape(&status),
        shape(&fixture("status.complete.post_ids_numbers.json"))
    );
    let id = status["data"]["publicaly_available_post_id"][0]
        .as_u64()
        .unwrap();
    assert_eq!(id.to_string().len(), 19);
}

#[tokio::test]
async fn when_an_error_has_no_data_should_match_the_observed_shape() {
    let t = T::new(cfg()).await;
    t.ctl("/_sim/config", json!({"limits": {"init_per_window": 10}}))
        .await;
    let src = json!({"source_info": {"source": "PULL_FROM_URL", "video_url": "https://media.example.com/a.mp4"}});
    for _ in 0..5 {
        assert_eq!(
            t.api("/v2/post/publish/inbox/video/init/", Some(src.clone()))
                .await
                .0,
            200
        );
    }
    let (status, body, _) = t.api("/v2/post/publish/inbox/video/init/", Some(src)).await;
    assert_eq!(status, 403);
    assert_eq!(
        shape(&body),
        shape(&fixture(
            "inbox_init.error.spam_risk_too_many_pending_share.json"
        ))
    );
    let bad = json!({"source_info": {"source": "FILE_UPLOAD", "video_size": 50_000_123, "chunk_size": 10_000_000, "total_chunk_count": 6}});
    let (status, body, _) = t.api("/v2/post/publish/video/init/", Some(json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": bad["source_info"]}))).await;
    assert_eq!(status, 400);
    assert_eq!(body, {
        let mut f = fixture("video_init.error.invalid_params_chunk_size.json");
        f["error"]["log_id"] = body["error"]["log_id"].clone();
        f
    });
}

#[tokio::test]
async fn when_oauth_endpoints_answer_should_match_the_documented_shapes() {
    let t = T::new(cfg()).await;
    let minted = t
        .ctl(
            "/_sim/tokens",
            json!({"open_id": "o1", "scopes": ["video.publish"]}),
        )
        .await;
    assert_eq!(shape(&minted), shape(&fixture("oauth.token.ok.json")));
    let form = |pairs: &[(&str, &str)]| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let post = |path: &'static str, body: String| {
        t.http
            .post(format!("{}{path}", t.sim.base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let rt = minted["refresh_token"].as_str().unwrap();
    let ok: Value = post(
        "/v2/oauth/token/",
        form(&[
            ("client_key", "sim_client_key"),
            ("client_secret", "sim_client_secret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
        ]),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(shape(&ok), shape(&fixture("oauth.token.ok.json")));
    let resp = post(
        "/v2/oauth/token/",
        form(&[
            ("client_key", "sim_client_key"),
            ("client_secret", "sim_client_secret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(shape(&err), shape(&fixture("oauth.error.json")));
    assert_eq!(err["error"], "invalid_grant");
    let at = ok["access_token"].as_str().unwrap();
    let revoked: Value = post(
        "/v2/oauth/revoke/",
        form(&[
            ("client_key", "sim_client_key"),
            ("client_secret", "sim_client_secret"),
            ("token", at),
        ]),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(revoked, fixture("oauth.revoke.ok.json"));
}

#[tokio::test]
async fn when_upload_puts_break_the_rules_should_answer_400_416_403_404() {
    let t = T::new(cfg()).await;
    let mib = 1024 * 1024;
    let size = 12 * mib;
    let body = json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": 6 * mib, "total_chunk_count": 2}});
    let (_, init, _) = t.api("/v2/post/publish/video/init/", Some(body)).await;
    let url = init["data"]["upload_url"].as_str().unwrap().to_owned();
    let range = |a: u64, b: u64| format!("bytes {a}-{b}/{size}");
    assert_eq!(
        t.put(&url, &range(6 * mib, size - 1), vec![0; 6 * mib as usize])
            .await,
        (416, Some(format!("bytes 0-0/{size}")))
    );
    assert_eq!(
        t.put(&url, &range(0, 6 * mib - 1), vec![0; 10]).await.0,
        400,
        "Content-Length differs from the range"
    );
    assert_eq!(
        t.put(&url, &range(0, mib - 1), vec![0; mib as usize])
            .await
            .0,
        400,
        "chunk off the declared plan"
    );
    assert_eq!(t.put(&url, "bytes nonsense", vec![0; 10]).await.0, 400);
    assert_eq!(
        t.put(&url, &range(0, 6 * mib - 1), vec![0; 6 * mib as usize])
            .await,
        (206, Some(format!("bytes 0-{}/{size}", 6 * mib)))
    );
    assert_eq!(
        t.sim.inspect()["chunk_violations"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        t.put(
            &url.replace("upload_token=", "upload_token=x"),
            &range(6 * mib, size - 1),
            vec![0; 6 * mib as usize]
        )
        .await
        .0,
        404
    );
    t.sim.advance(3600);
    assert_eq!(
        t.put(&url, &range(6 * mib, size - 1), vec![0; 6 * mib as usize])
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn when_control_api_is_driven_over_http_should_change_behaviour_and_report_it() {
    let t = T::new(cfg()).await;
    let cfg = t
        .ctl("/_sim/config", json!({"limits": {"init_per_window": 1}}))
        .await;
    assert_eq!(cfg["limits"]["init_per_window"], 1);
    assert_eq!(
        cfg["limits"]["status_per_window"], 30,
        "patch keeps the rest"
    );
    let c = t.ctl("/_sim/creators", json!({"open_id": "creator-1", "nickname": "Nick", "privacy_level_options": ["SELF_ONLY"]})).await;
    assert_eq!(c["nickname"], "Nick");
    let (_, info, _) = t.api("/v2/post/publish/creator_info/query/", None).await;
    assert_eq!(info["data"]["privacy_level_options"], json!(["SELF_ONLY"]));
    t.ctl(
        "/_sim/faults",
        json!({"endpoint": "video_init", "type": "status", "status": 502, "count": 1}),
    )
    .await;
    let src = json!({"post_info": {"privacy_level": "SELF_ONLY", "title": "t1"}, "source_info": {"source": "PULL_FROM_URL", "video_url": "https://media.example.com/a.mp4"}});
    let (status, body, _) = t
        .api("/v2/post/publish/video/init/", Some(src.clone()))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("internal_error"))
    );
    let (status, init, _) = t
        .api("/v2/post/publish/video/init/", Some(src.clone()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        t.api("/v2/post/publish/video/init/", Some(src.clone()))
            .await
            .0,
        429
    );
    let before = t
        .http
        .get(format!("{}/_sim/clock", t.sim.base_url))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let after = t.ctl("/_sim/clock/advance", json!({"secs": 61})).await;
    assert!(after["now_unix"].as_i64().unwrap() >= before["now_unix"].as_i64().unwrap() + 61);
    let (_, second, _) = t
        .api("/v2/post/publish/video/init/", Some(src.clone()))
        .await;
    let id = second["data"]["publish_id"].as_str().unwrap();
    assert_eq!(
        t.ctl(
            &format!("/_sim/publishes/{id}/fail"),
            json!({"reason": "spam_risk_text"})
        )
        .await["done"],
        true
    );
    let done = init["data"]["publish_id"].as_str().unwrap();
    assert_eq!(
        t.ctl(&format!("/_sim/publishes/{done}/fail"), json!({}))
            .await["done"],
        false,
        "already PUBLISH_COMPLETE"
    );
    t.ctl("/_sim/clock/advance", json!({"secs": 61})).await;
    assert_eq!(
        t.api("/v2/post/publish/video/init/", Some(src)).await.0,
        200
    );
    t.ctl("/_sim/webhook-faults", json!({"drop": 1})).await;
    assert_eq!(
        t.ctl(
            "/_sim/tokens/revoke",
            json!({"open_id": "creator-1", "reason": 4})
        )
        .await["revoked"],
        true
    );
    let insp: Value = t
        .http
        .get(format!("{}/_sim/inspect", t.sim.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acct = &insp["accounts"]["creator-1"];
    assert_eq!(acct["publishes"], 3);
    assert_eq!(insp["publishes_by_title"]["t1"], 3);
    assert_eq!(insp["limit_violations"][0]["kind"], "rate_limit");
    let failed: Vec<_> = acct["posts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "FAILED")
        .map(|p| p["fail_reason"].clone())
        .collect();
    assert!(
        failed.contains(&json!("spam_risk_text")) && failed.contains(&json!("auth_removed")),
        "{failed:?}"
    );
    assert_eq!(
        t.api("/v2/post/publish/creator_info/query/", None).await.1["error"]["code"],
        "access_token_invalid"
    );
}

#[tokio::test]
async fn when_started_twice_with_one_seed_should_generate_the_same_ids() {
    let mint = |sim: &SimHandle| sim.mint_tokens("u", &["video.publish"])["access_token"].clone();
    let a = TikTokSim::start(cfg()).await.unwrap();
    let b = TikTokSim::start(cfg()).await.unwrap();
    assert_eq!(mint(&a), mint(&b));
    let c = TikTokSim::start(SimConfig { seed: 2, ..cfg() })
        .await
        .unwrap();
    assert_ne!(mint(&a), mint(&c));
}

#[tokio::test]
async fn when_a_receiver_keeps_failing_should_retry_with_growing_gaps_then_give_up() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/h",
        axum::routing::post(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut c = cfg();
    c.webhook_url = Some(format!("http://{addr}/h"));
    c.webhooks.retry_base_ms = 5;
    c.webhooks.max_attempts = 4;
    let sim = TikTokSim::start(c).await.unwrap();
    sim.mint_tokens("u", &[]);
    assert!(sim.revoke_user("u", 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hook = sim.inspect()["webhooks"][0].clone();
    assert_eq!(hook["event"], "authorization.removed");
    assert_eq!(hook["statuses"], json!([500, 500, 500, 500]));
    assert_eq!(hook["delivered"], 0);
}

#[tokio::test]
async fn when_the_binary_starts_should_print_its_url_and_serve() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tiktok-sim"))
        .args([
            "--port",
            "0",
            "--seed",
            "3",
            "--time-scale",
            "60",
            "--client-key",
            "k",
            "--client-secret",
            "s",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let cfg: Value = reqwest::get(format!("{url}/_sim/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            cfg["client_key"].as_str(),
            cfg["time_scale"].as_f64(),
            cfg["seed"].as_u64()
        ),
        (Some("k"), Some(60.0), Some(3))
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn when_a_429_storm_is_injected_should_reject_exactly_that_many_without_effect() {
    let t = T::new(cfg()).await;
    t.ctl(
        "/_sim/faults",
        json!({"endpoint": "creator_info", "type": "rate_limit", "count": 3}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, body, _) = t.api("/v2/post/publish/creator_info/query/", None).await;
        statuses.push((status, body["error"]["code"].as_str().unwrap().to_owned()));
    }
    let codes: Vec<_> = statuses.iter().map(|(s, c)| (*s, c.as_str())).collect();
    assert_eq!(
        codes,
        [
            (429, "rate_limit_exceeded"),
            (429, "rate_limit_exceeded"),
            (429, "rate_limit_exceeded"),
            (200, "ok")
        ]
    );
    assert_eq!(t.sim.inspect()["requests"]["CreatorInfo"], 4);
}

#[tokio::test]
async fn when_a_domain_property_is_verified_should_cover_subdomains_but_not_the_parent() {
    let mut c = cfg();
    c.app.verified_domains = vec!["static.example.com".into()];
    c.app.verified_prefixes = vec!["https://example.org/videos/user/".into()];
    c.limits.init_per_window = 100;
    let t = T::new(c).await;
    let init = |url: &str| json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "PULL_FROM_URL", "video_url": url}});
    let cases = [
        ("https://static.example.com/a.mp4", "ok"),
        ("https://video.static.example.com/a.mp4", "ok"),
        ("https://example.com/a.mp4", "url_ownership_unverified"),
        (
            "https://badstatic.example.com/a.mp4",
            "url_ownership_unverified",
        ),
        ("https://example.org/videos/user/123/a.mp4", "ok"),
        (
            "https://example.org/videos/2023/user/a.mp4",
            "url_ownership_unverified",
        ),
        (
            "http://static.example.com/a.mp4",
            "url_ownership_unverified",
        ),
    ];
    for (url, code) in cases {
        let (_, body, _) = t.api("/v2/post/publish/video/init/", Some(init(url))).await;
        assert_eq!(body["error"]["code"], code, "{url}");
    }
}

#[tokio::test]
async fn when_the_documented_status_request_is_sent_should_be_understood() {
    let t = T::new(cfg()).await;
    let (status, body, _) = t
        .api(
            "/v2/post/publish/status/fetch/",
            Some(fixture("status.request.json")),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_publish_id"))
    );
    let src = json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "PULL_FROM_URL", "video_url": "https://media.example.com/a.mp4"}});
    let (_, init, _) = t.api("/v2/post/publish/video/init/", Some(src)).await;
    let mut req = fixture("status.request.json");
    req["publish_id"] = init["data"]["publish_id"].clone();
    let (status, body, _) = t.api("/v2/post/publish/status/fetch/", Some(req)).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("PROCESSING_DOWNLOAD"))
    );
}

#[tokio::test]
async fn when_publishes_are_stuck_should_stay_processing_until_released_and_others_finish() {
    let t = T::new(cfg()).await;
    t.ctl("/_sim/stuck-next", json!({"count": 1})).await;
    let init = |title: &str| json!({"post_info": {"privacy_level": "SELF_ONLY", "title": title}, "source_info": {"source": "PULL_FROM_URL", "video_url": "https://media.example.com/a.mp4"}});
    let (_, first, _) = t
        .api("/v2/post/publish/video/init/", Some(init("stuck")))
        .await;
    let (_, second, _) = t
        .api("/v2/post/publish/video/init/", Some(init("free")))
        .await;
    let stuck = first["data"]["publish_id"].as_str().unwrap().to_owned();
    let free = second["data"]["publish_id"].as_str().unwrap().to_owned();
    t.sim.advance(3600);
    assert_eq!(t.status(&stuck).await, "PROCESSING_DOWNLOAD");
    assert_eq!(t.status(&free).await, "PUBLISH_COMPLETE");
    t.sim.set_stuck(&stuck, false);
    t.sim.advance(60);
    assert_eq!(t.status(&stuck).await, "PUBLISH_COMPLETE");
}

#[tokio::test]
async fn when_a_token_marker_is_set_should_put_it_into_every_issued_token() {
    let mut c = cfg();
    c.token_marker = Some("CANARYzz9".into());
    let t = T::new(c).await;
    assert!(t.token.contains("CANARYzz9"), "access token carries it");
    let minted = t.sim.mint_tokens("creator-2", &["video.publish"]);
    assert!(
        minted["refresh_token"]
            .as_str()
            .unwrap()
            .contains("CANARYzz9")
    );
    let open_id = t.sim.inspect()["accounts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    assert!(
        open_ids_clean(&open_id),
        "ids are not credentials: {open_id:?}"
    );
    let plain = T::new(cfg()).await;
    assert!(!plain.token.contains("CANARY"));
}

fn open_ids_clean(ids: &[String]) -> bool {
    !ids.is_empty() && ids.iter().all(|i| !i.contains("CANARY"))
}

#[tokio::test]
async fn when_lifetimes_are_asked_in_real_seconds_should_divide_them_by_the_time_scale() {
    let scaled = |real: bool| {
        let mut c = cfg();
        c.time_scale = 60.0;
        c.oauth.lifetimes_in_real_seconds = real;
        c
    };
    let simulated = TikTokSim::start(scaled(false)).await.unwrap();
    let minted = simulated.mint_tokens("u", &["video.publish"]);
    assert_eq!(minted["expires_in"], 7200, "simulated seconds by default");
    assert_eq!(minted["refresh_expires_in"], 180 * 86_400);

    let real = TikTokSim::start(scaled(true)).await.unwrap();
    let minted = real.mint_tokens("u", &["video.publish"]);
    assert_eq!(minted["expires_in"], 120, "2 h simulated is 120 s at ×60");
    assert_eq!(minted["refresh_expires_in"], 180 * 86_400 / 60);
}
