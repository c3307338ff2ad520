//! The simulator against the documented contract: response shapes match the spec's examples
//! (the fixtures shared with the client), validation, limits, files, webhooks, control API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use ssemble_sim::files::{clip_byte, clip_seed};
use ssemble_sim::{
    ApiEndpoint, FaultKind, FaultSpec, Limit, PoolLimits, SimConfig, SimHandle, SsembleSim, Tier,
    WebhookFaults,
};

const KEY: &str = "sk_ssemble_0123456789abcdef0123456789abcdef";
const KEY2: &str = "sk_ssemble_ffffffffffffffffffffffffffffffff";
const SRC: &str = "https://videos.example.com/talk.mp4";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/ssemble/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

struct Api {
    sim: SimHandle,
    http: reqwest::Client,
}

impl Api {
    async fn start(cfg: SimConfig) -> Self {
        Self {
            sim: SsembleSim::start(cfg).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, HeaderMap, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url));
        if let Some(k) = key {
            rb = rb.header("X-API-Key", k);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn create(&self, body: Value) -> (u16, Value) {
        let (s, _, v) = self
            .call(
                reqwest::Method::POST,
                "/shorts/create",
                Some(KEY),
                Some(body),
            )
            .await;
        (s, v)
    }

    async fn get(&self, path: &str) -> (u16, HeaderMap, Value) {
        self.call(reqwest::Method::GET, path, Some(KEY), None).await
    }
}

fn body(src: &str, start: f64, end: f64) -> Value {
    json!({ "fileUrl": src, "start": start, "end": end })
}

#[tokio::test]
async fn responses_have_the_documented_shapes() {
    let api = Api::start(SimConfig::default()).await;

    let (s, created) = api.create(json!({ "fileUrl": "https://videos.example.com/a.mp4?sim_duration=754", "start": 0, "end": 1200 })).await;
    assert_eq!(s, 201);
    assert_eq!(
        keys(&created),
        keys(&fixture("create_response_canonical.json"))
    );
    assert_eq!(
        keys(&created["data"]),
        keys(&fixture("create_response_canonical.json")["data"])
    );
    assert_eq!(
        keys(&created["data"]["timeAdjustment"]),
        keys(&fixture("create_response_canonical.json")["data"]["timeAdjustment"])
    );
    assert_eq!(
        created["data"]["timeAdjustment"]["adjusted"],
        json!({ "start": 0.0, "end": 754.0 })
    );
    let (_, plain) = api.create(fixture("create_request.json")).await;
    let mut expected = keys(&fixture("create_response_canonical.json")["data"]);
    expected.remove("timeAdjustment");
    assert_eq!(
        keys(&plain["data"]),
        expected,
        "timeAdjustment only when adjusted"
    );
    let id = created["data"]["requestId"].as_str().unwrap().to_owned();

    api.sim.advance(Duration::from_secs(35));
    let (_, _, st) = api.get(&format!("/shorts/{id}/status")).await;
    assert_eq!(
        keys(&st["data"]),
        keys(&fixture("status_processing.json")["data"])
    );
    assert_eq!(st["data"]["step"], "finding_highlights");
    assert_eq!(st["data"]["stepMessage"], "Finding interesting segments...");

    let (_, failed) = api
        .create(body("https://videos.example.com/403/b.mp4", 0.0, 60.0))
        .await;
    let fid = failed["data"]["requestId"].as_str().unwrap().to_owned();
    api.sim.advance(Duration::from_secs(30));
    let (_, _, st) = api.get(&format!("/shorts/{fid}/status")).await;
    assert_eq!(
        keys(&st["data"]),
        keys(&fixture("status_failed.json")["data"])
    );
    assert_eq!(st["data"]["stepMessage"], "Processing failed");

    let (_, _, doc) = api.get(&format!("/shorts/{id}")).await;
    let fx = fixture("get_shorts.json");
    let extras: BTreeSet<String> = ["createdAt", "updatedAt", "fileUrl"]
        .map(String::from)
        .into();
    let sim_keys = keys(&doc["data"]);
    assert!(keys(&fx["data"]).is_subset(&sim_keys));
    assert!(
        sim_keys
            .difference(&keys(&fx["data"]))
            .all(|k| extras.contains(k)),
        "{sim_keys:?}"
    );
    assert_eq!(
        keys(&doc["data"]["shorts"][0]),
        keys(&fx["data"]["shorts"][0])
    );
    assert_eq!(
        keys(&doc["data"]["sentences"][0]),
        keys(&fx["data"]["sentences"][0])
    );

    let (_, _, list) = api.get("/shorts?limit=10").await;
    let lf = fixture("list.json");
    assert_eq!(keys(&list["data"]), keys(&lf["data"]));
    assert_eq!(
        keys(&list["data"]["requests"][0]),
        keys(&lf["data"]["requests"][0])
    );
    assert_eq!(
        keys(&list["data"]["pagination"]),
        keys(&lf["data"]["pagination"])
    );

    let (_, _, t) = api.get("/templates").await;
    let tf = fixture("templates.json");
    assert_eq!(keys(&t["data"]), keys(&tf["data"]));
    assert_eq!(
        keys(&t["data"]["templates"][0]),
        keys(&tf["data"]["templates"][0])
    );
    assert_eq!(
        t["data"]["templates"][0]["templateId"],
        tf["data"]["templates"][0]["templateId"]
    );

    let (s, _, del) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/shorts/{id}"),
            Some(KEY),
            None,
        )
        .await;
    assert_eq!((s, &del), (200, &fixture("delete.json")));
    let (s, _, gone) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/shorts/{id}"),
            Some(KEY),
            None,
        )
        .await;
    assert_eq!((s, &gone), (404, &fixture("error_resource_not_found.json")));
    let (s, _, bad) = api.get("/shorts/xyz/status").await;
    assert_eq!((s, &bad), (400, &fixture("error_invalid_request_id.json")));
    let (s, _, missing) = api
        .call(reqwest::Method::GET, "/templates", None, None)
        .await;
    assert_eq!((s, &missing), (401, &fixture("error_missing_api_key.json")));
    assert_eq!(
        keys(&missing["error"]),
        keys(&fixture("error_envelope.json")["error"])
    );
}

#[tokio::test]
async fn a_real_429_has_the_documented_body_and_headers() {
    let api = Api::start(SimConfig {
        tier: Tier {
            per_hour: 2,
            per_day: 1000,
        },
        ..SimConfig::default()
    })
    .await;
    api.get("/templates").await;
    api.get("/templates").await;
    let (s, h, v) = api.get("/templates").await;
    assert_eq!(s, 429);
    let fx = fixture("error_rate_limit_429.json");
    assert_eq!(v["error"]["code"], fx["error"]["code"]);
    assert_eq!(keys(&v["error"]["details"]), keys(&fx["error"]["details"]));
    assert_eq!(v["error"]["details"]["window"], "hour");
    assert_eq!(v["error"]["details"]["limit"], 2);
    for name in [
        "retry-after",
        "x-ratelimit-limit-hour",
        "x-ratelimit-remaining-hour",
        "x-ratelimit-limit-day",
        "x-ratelimit-remaining-day",
        "x-ratelimit-reset",
    ] {
        assert!(h.contains_key(name), "{name}");
    }
    assert_eq!(h["x-ratelimit-remaining-hour"], "0");
    let retry: i64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(v["error"]["details"]["retryAfter"], retry);
    let v = api.sim.inspect().limit_violations;
    assert_eq!(v.len(), 1);
}

#[tokio::test]
async fn every_response_carries_the_five_rate_limit_headers() {
    let api = Api::start(SimConfig::default()).await;
    let (_, ok, _) = api.get("/templates").await;
    let (_, not_found, _) = api.get("/shorts/665a1b2c3d4e5f6a7b8c9d0e").await;
    let (_, unauth, _) = api.call(reqwest::Method::GET, "/shorts", None, None).await;
    for h in [ok, not_found, unauth] {
        for name in [
            "x-ratelimit-limit-hour",
            "x-ratelimit-remaining-hour",
            "x-ratelimit-limit-day",
            "x-ratelimit-remaining-day",
            "x-ratelimit-reset",
        ] {
            assert!(h.contains_key(name), "{name}");
        }
    }
}

#[tokio::test]
async fn create_validation_follows_the_documented_rules() {
    let api = Api::start(SimConfig::default()).await;
    let yt = "https://www.youtube.com/watch?v=dQw4w9WgXcQ";
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({ "start": 0, "end": 60 }), 400, "invalid_request"),
        (
            json!({ "url": yt, "fileUrl": SRC, "start": 0, "end": 60 }),
            400,
            "invalid_request",
        ),
        (json!({ "fileUrl": SRC, "end": 60 }), 400, "invalid_request"),
        (
            json!({ "fileUrl": SRC, "start": -1, "end": 60 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 60, "end": 60 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 1201 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 0.5 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 60, "preferredLength": "under2min" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 60, "templateId": "karaoke" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 60, "templateId": "000000000000000000000000" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 60, "language": "xx" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 60, "layout": "wide" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 60, "musicVolume": 101 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 60, "ctaEnabled": true }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 60, "webhookUrl": "ftp://x" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "fileUrl": "s3://bucket/x.mp4", "start": 0, "end": 60 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "url": "https://www.youtube.com/shorts/abc", "start": 0, "end": 60 }),
            400,
            "invalid_youtube_url",
        ),
        (
            json!({ "url": "https://vimeo.com/1", "start": 0, "end": 60 }),
            400,
            "invalid_youtube_url",
        ),
        (
            json!({ "fileUrl": "https://x/too_long.mp4", "start": 0, "end": 60 }),
            400,
            "video_too_long",
        ),
        (
            json!({ "fileUrl": "https://x/unreachable.mp4", "start": 0, "end": 60 }),
            400,
            "url_validation_failed",
        ),
        (
            json!({ "url": yt, "start": 0, "end": 1200, "preferredLength": "under10min", "language": "vi" }),
            201,
            "",
        ),
        (
            json!({ "fileUrl": SRC, "start": 0, "end": 1, "ctaEnabled": true, "ctaText": "Follow" }),
            201,
            "",
        ),
    ];
    for (b, status, code) in cases {
        let (s, v) = api.create(b.clone()).await;
        assert_eq!(s, status, "{b}: {v}");
        if status != 201 {
            assert_eq!(v["error"]["code"], code, "{b}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
    let ins = api.sim.inspect();
    assert_eq!(
        ins.credits_spent(KEY),
        2,
        "only accepted creates cost a credit"
    );
}

#[tokio::test]
async fn pools_are_per_key_and_per_limiter() {
    let pools = PoolLimits {
        video_creation: Limit {
            max: 2,
            window_secs: 60,
        },
        ..PoolLimits::default()
    };
    let api = Api::start(SimConfig {
        pools,
        tier: Tier::HIGHER,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(api.create(body(SRC, 0.0, 60.0)).await.0, 201);
    assert_eq!(api.create(body(SRC, 0.0, 60.0)).await.0, 201);
    let (s, v) = api.create(body(SRC, 0.0, 60.0)).await;
    assert_eq!(s, 429);
    assert_eq!(v["error"]["details"]["window"], "minute");
    assert_eq!(
        api.get("/shorts").await.0,
        200,
        "List requests is another pool"
    );
    let (s, _, _) = api
        .call(
            reqwest::Method::POST,
            "/shorts/create",
            Some(KEY2),
            Some(body(SRC, 0.0, 60.0)),
        )
        .await;
    assert_eq!(s, 201, "another key has its own counters");
    api.sim.advance(Duration::from_secs(60));
    assert_eq!(
        api.create(body(SRC, 0.0, 60.0)).await.0,
        201,
        "next minute window"
    );
    let v = api.sim.inspect().limit_violations;
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].limit.as_str(), v[0].endpoint),
        ("Video creation", ApiEndpoint::Create)
    );
    assert_eq!(v[0].key_id, ssemble_sim::key_id(KEY));
}

#[tokio::test]
async fn same_seed_same_answers() {
    async fn run() -> Vec<Value> {
        let api = Api::start(SimConfig {
            seed: 42,
            ..SimConfig::default()
        })
        .await;
        let mut out = Vec::new();
        for i in 0..3 {
            let (_, v) = api.create(body(&format!("{SRC}?i={i}"), 0.0, 300.0)).await;
            let id = v["data"]["requestId"].as_str().unwrap().to_owned();
            api.sim.force_complete(&id);
            let (_, _, mut doc) = api.get(&format!("/shorts/{id}")).await;
            let d = doc["data"].as_object_mut().unwrap();
            d.remove("createdAt");
            d.remove("updatedAt");
            for s in d["shorts"].as_array_mut().unwrap() {
                s.as_object_mut().unwrap().remove("video_url");
            }
            out.push(doc);
        }
        out
    }
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    let counts: BTreeSet<usize> = a
        .iter()
        .map(|d| d["data"]["shorts"].as_array().unwrap().len())
        .collect();
    assert!(counts.iter().all(|n| (3..=8).contains(n)));
}

#[tokio::test]
async fn files_stream_deterministic_bytes_with_ranges_and_a_range_ignoring_fault() {
    let api = Api::start(SimConfig::default()).await;
    let (_, v) = api.create(body(SRC, 0.0, 120.0)).await;
    let id = v["data"]["requestId"].as_str().unwrap().to_owned();
    let (_, _, doc) = api.get(&format!("/shorts/{id}")).await;
    assert!(
        doc["data"]["shorts"].as_array().unwrap().is_empty(),
        "no clips before completion"
    );
    api.sim.force_complete(&id);
    let (_, _, doc) = api.get(&format!("/shorts/{id}")).await;
    let short = &doc["data"]["shorts"][0];
    let url = short["video_url"].as_str().unwrap().to_owned();
    let sid = short["id"].as_str().unwrap();
    let seed = clip_seed(&id, sid);

    let r = api
        .http
        .get(&url)
        .header("Range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 0-99/{}", 6 * 1024 * 1024)
    );
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[4..8], b"ftyp");
    assert!(
        bytes
            .iter()
            .enumerate()
            .all(|(i, b)| *b == clip_byte(seed, i as u64))
    );

    // A 500 MB clip: served lazily, so a tail range is instant.
    let big = 500 * 1024 * 1024u64;
    assert!(api.sim.set_clip_bytes(&id, big));
    let r = api
        .http
        .get(&url)
        .header("Range", "bytes=-16")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes {}-{}/{big}", big - 16, big - 1)
    );
    let tail = r.bytes().await.unwrap();
    assert!(
        tail.iter()
            .enumerate()
            .all(|(i, b)| *b == clip_byte(seed, big - 16 + i as u64))
    );
    let r = api.http.head(&url).send().await.unwrap();
    assert_eq!(r.headers()["content-length"], big.to_string().as_str());
    let r = api
        .http
        .get(&url)
        .header("Range", format!("bytes={big}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);

    api.sim.set_clip_bytes(&id, 1000);
    api.sim.set_files_ignore_range(true);
    let r = api
        .http
        .get(&url)
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 1000);
    let r = api
        .http
        .get(format!("{}/files/{id}/nope.mp4", api.sim.root_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

type Got = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                g.lock()
                    .unwrap()
                    .push((headers, serde_json::from_slice(&body).unwrap()));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !f() {
        assert!(started.elapsed() < Duration::from_secs(5), "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn webhook_payloads_match_the_docs_and_can_be_signed() {
    let api = Api::start(SimConfig {
        webhook_secret: Some("whsec".into()),
        ..SimConfig::default()
    })
    .await;
    let (url, got) = receiver().await;
    let (_, ok) = api
        .create(json!({ "fileUrl": SRC, "start": 0, "end": 60, "webhookUrl": url }))
        .await;
    let (_, bad) = api
        .create(
            json!({ "fileUrl": "https://x/403/a.mp4", "start": 0, "end": 60, "webhookUrl": url }),
        )
        .await;
    api.sim
        .force_complete(ok["data"]["requestId"].as_str().unwrap());
    api.sim.advance(Duration::from_secs(30));
    wait_until(|| got.lock().unwrap().len() == 2).await;
    let got = got.lock().unwrap().clone();
    let completed = got
        .iter()
        .find(|g| g.1["event"] == "shorts.completed")
        .unwrap();
    let failed = got
        .iter()
        .find(|g| g.1["event"] == "shorts.failed")
        .unwrap();
    let (cf, ff) = (
        fixture("webhook_completed.json"),
        fixture("webhook_failed.json"),
    );
    assert_eq!(keys(&completed.1), keys(&cf));
    assert_eq!(
        keys(&completed.1["data"]["shorts"][0]),
        keys(&cf["data"]["shorts"][0])
    );
    assert_eq!(keys(&failed.1), keys(&ff));
    assert_eq!(failed.1["data"], ff["data"]);
    assert_eq!(failed.1["requestId"], bad["data"]["requestId"]);

    // X-Ssemble-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>.
    let (headers, value) = completed;
    let sig = headers["x-ssemble-signature"].to_str().unwrap();
    let (t, v1) = sig.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec").unwrap();
    mac.update(format!("{t}.{}", serde_json::to_string(value).unwrap()).as_bytes());
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1);
}

#[tokio::test]
async fn webhook_faults_drop_delay_and_reorder() {
    let api = Api::start(SimConfig {
        time_scale: 20.0,
        ..SimConfig::default()
    })
    .await;
    let (url, got) = receiver().await;
    let create = |n: u32| json!({ "fileUrl": format!("{SRC}?n={n}"), "start": 0, "end": 60, "webhookUrl": url });

    api.sim.set_webhook_faults(WebhookFaults {
        drop: 1,
        ..WebhookFaults::default()
    });
    let (_, a) = api.create(create(1)).await;
    let a = a["data"]["requestId"].as_str().unwrap().to_owned();
    api.sim.force_complete(&a);
    wait_until(|| !api.sim.inspect().deliveries_for(&a).is_empty()).await;
    assert_eq!(api.sim.inspect().deliveries_for(&a)[0].outcome, "dropped");

    api.sim.set_webhook_faults(WebhookFaults {
        delay_secs: 4.0,
        ..WebhookFaults::default()
    });
    let (_, b) = api.create(create(2)).await;
    let b = b["data"]["requestId"].as_str().unwrap().to_owned();
    let forced_at = api.sim.now();
    api.sim.force_complete(&b);
    wait_until(|| !api.sim.inspect().deliveries_for(&b).is_empty()).await;
    let at = api.sim.inspect().deliveries_for(&b)[0].at;
    assert!(
        (at - forced_at).num_milliseconds() >= 3900,
        "{}",
        (at - forced_at).num_milliseconds()
    );

    api.sim.set_webhook_faults(WebhookFaults {
        hold: true,
        ..WebhookFaults::default()
    });
    let mut held = Vec::new();
    for n in 3..5 {
        let (_, v) = api.create(create(n)).await;
        let id = v["data"]["requestId"].as_str().unwrap().to_owned();
        api.sim.force_complete(&id);
        held.push(id);
        api.sim.advance(Duration::from_secs(1));
    }
    wait_until(|| api.sim.inspect().held_webhooks == 2).await;
    assert_eq!(api.sim.release_webhooks(true), 2);
    wait_until(|| got.lock().unwrap().len() == 3).await;
    let order: Vec<String> = got.lock().unwrap()[1..]
        .iter()
        .map(|g| g.1["requestId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, [held[1].clone(), held[0].clone()]);
}

#[tokio::test]
async fn control_api_works_over_http() {
    let api = Api::start(SimConfig::default()).await;
    let ctl = |p: &str| format!("{}/_sim{p}", api.sim.root_url);
    let r = api
        .http
        .post(ctl("/faults"))
        .json(&json!({ "endpoint": "templates", "kind": "http_error", "status": 503 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(api.get("/templates").await.0, 503);
    api.http
        .post(ctl("/storm"))
        .json(&json!({ "count": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(api.get("/templates").await.0, 429);
    let (_, v) = api.create(body(SRC, 0.0, 60.0)).await;
    let id = v["data"]["requestId"].as_str().unwrap();
    let r = api
        .http
        .post(ctl(&format!("/requests/{id}/fail")))
        .json(&json!({ "reason": "Rendering failed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = api
        .http
        .post(ctl(&format!("/requests/{id}/complete")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "already terminal");
    let before = api.sim.now();
    api.http
        .post(ctl("/clock/advance"))
        .json(&json!({ "seconds": 3600 }))
        .send()
        .await
        .unwrap();
    assert!(api.sim.now() - before >= chrono::Duration::seconds(3600));
    let ins: Value = api
        .http
        .get(ctl("/inspect"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ins["createsPerSource"][SRC], 1);
    assert_eq!(ins["requests"][0]["status"], "failed");
    assert_eq!(ins["storm429s"], 1);
    assert!(
        !ins.to_string().contains(KEY),
        "inspection shows key ids, not keys"
    );

    api.sim.inject_fault(FaultSpec {
        endpoint: Some(ApiEndpoint::List),
        kind: FaultKind::NonJson502,
        count: 1,
        status: None,
    });
    let (s, h, v) = api.get("/shorts").await;
    assert_eq!(s, 502);
    assert!(v.as_str().unwrap().contains("<html>"));
    assert!(!h.contains_key("x-ratelimit-limit-hour"));
}

#[test]
fn binary_prints_its_url_and_serves() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ssemble-sim"))
        .args([
            "--port",
            "0",
            "--seed",
            "3",
            "--time-scale",
            "60",
            "--api-key",
            KEY,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ok, other) = rt.block_on(async {
        let c = reqwest::Client::new();
        let ok = c
            .get(format!("{base}/templates"))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap()
            .status();
        let other = c
            .get(format!("{base}/templates"))
            .header("X-API-Key", KEY2)
            .send()
            .await
            .unwrap()
            .status();
        (ok, other)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/api/v1"),
        "{base}"
    );
    assert_eq!(ok, 200);
    assert_eq!(other, 401, "--api-key restricts the accepted keys");
}

#[tokio::test]
async fn a_slow_receiver_times_out_and_gets_the_event_again() {
    // 20× clock: the 10 s attempt timeout is 500 ms of real time.
    let api = Api::start(SimConfig {
        time_scale: 20.0,
        ..SimConfig::default()
    })
    .await;
    let hits = Arc::new(Mutex::new(0u32));
    let h = hits.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            let h = h.clone();
            async move {
                let n = {
                    let mut n = h.lock().unwrap();
                    *n += 1;
                    *n
                };
                if n == 1 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (_, v) = api.create(json!({ "fileUrl": SRC, "start": 0, "end": 60, "webhookUrl": format!("http://{addr}/hook") })).await;
    let id = v["data"]["requestId"].as_str().unwrap().to_owned();
    api.sim.force_complete(&id);
    wait_until(|| api.sim.inspect().deliveries_for(&id).len() == 2).await;
    let ins = api.sim.inspect();
    let d = ins.deliveries_for(&id);
    assert_eq!(
        (d[0].outcome.as_str(), d[1].outcome.as_str()),
        ("timeout", "delivered")
    );
    assert_eq!(
        *hits.lock().unwrap(),
        2,
        "the receiver saw the same event twice"
    );
}

#[tokio::test]
async fn webhook_score_scale_is_a_toggle() {
    let api = Api::start(SimConfig::default()).await;
    let (url, got) = receiver().await;
    let mut ids = Vec::new();
    for divisor in [10.0, 1.0] {
        api.sim.set_webhook_score_divisor(divisor);
        let (_, v) = api
            .create(json!({ "fileUrl": SRC, "start": 0, "end": 60, "webhookUrl": url }))
            .await;
        let id = v["data"]["requestId"].as_str().unwrap().to_owned();
        api.sim.force_complete(&id);
        let n = ids.len() + 1;
        wait_until(|| got.lock().unwrap().len() == n).await;
        ids.push(id);
    }
    let got = got.lock().unwrap().clone();
    for ((_, hook), (id, divisor)) in got.iter().zip(ids.iter().zip([10.0, 1.0])) {
        let (_, _, doc) = api.get(&format!("/shorts/{id}")).await;
        let first = &hook["data"]["shorts"][0];
        let in_get = doc["data"]["shorts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == first["id"])
            .unwrap();
        let expected = in_get["viral_score"].as_f64().unwrap() / divisor;
        assert!(
            (first["viral_score"].as_f64().unwrap() - expected).abs() < 0.051,
            "divisor {divisor}"
        );
    }
}

#[tokio::test]
async fn a_stuck_render_stays_processing_until_forced_while_others_finish() {
    let api = Api::start(SimConfig::default()).await;
    let r = api
        .http
        .post(format!("{}/_sim/stuck-next", api.sim.root_url))
        .json(&json!({ "count": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, stuck) = api.create(body(SRC, 0.0, 60.0)).await;
    let (_, free) = api.create(body(SRC, 0.0, 60.0)).await;
    let (_, magic) = api
        .create(body("https://videos.example.com/stuck/a.mp4", 0.0, 60.0))
        .await;
    let id = |v: &Value| v["data"]["requestId"].as_str().unwrap().to_owned();
    let (stuck, free, magic) = (id(&stuck), id(&free), id(&magic));
    api.sim.advance(Duration::from_secs(3600));
    let status = |id: String| {
        let api = &api;
        async move { api.get(&format!("/shorts/{id}/status")).await.2["data"]["status"].clone() }
    };
    assert_eq!(status(stuck.clone()).await, json!("processing"));
    assert_eq!(status(magic.clone()).await, json!("processing"));
    assert_eq!(status(free).await, json!("completed"));
    assert!(
        api.sim.force_complete(&stuck),
        "a stuck render can be forced"
    );
    assert_eq!(status(stuck).await, json!("completed"));
}
