//! Bad input gets a clear error in the documented envelope and changes nothing: every case is
//! sent against a tenant with a connected account and a job, and the whole table and every
//! queue are compared before and after. The last request is a valid one, to show the snapshot
//! does see a change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

struct Case<'a> {
    label: &'a str,
    raw: Raw<'a>,
    status: u16,
    code: &'a str,
}

fn post_json<'a>(path: &'a str, key: &str, idem: Option<&str>, body: Vec<u8>) -> Raw<'a> {
    let mut headers = vec![
        ("authorization", format!("Bearer {key}")),
        ("content-type", "application/json".to_owned()),
    ];
    if let Some(i) = idem {
        headers.push(("idempotency-key", i.to_owned()));
    }
    Raw {
        method: "POST",
        path,
        headers,
        body: Some(body),
    }
}

fn get<'a>(path: &'a str, headers: Vec<(&'a str, String)>) -> Raw<'a> {
    Raw {
        method: "GET",
        path,
        headers,
        body: None,
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// A caption of `units` UTF-16 code units made of emoji (2 units each) plus ASCII.
fn caption(units: usize) -> String {
    let mut s = "🎬".repeat(units / 2);
    if units % 2 == 1 {
        s.push('x');
    }
    assert_eq!(s.encode_utf16().count(), units);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_specific_error_and_changes_nothing() {
    let s = stack().await;
    s.connect(KEY_A, "acct_1").await;
    let (status, job) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_A),
            Some(job_body("acct_1")),
            Some("k-existing"),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    assert!(job["jobId"].as_str().is_some());

    let over = s.max_body_bytes + 1;
    let mut oversized = job_body("acct_1");
    oversized["post"]["title"] = json!("x".repeat(over));
    let mut huge_caption = job_body("acct_1");
    huge_caption["post"]["title"] = json!(caption(2201));
    let mut huge_ascii_caption = job_body("acct_1");
    huge_ascii_caption["post"]["title"] = json!("x".repeat(100_000));
    let mut seed_huge_caption = seed_body("acct_1", &any_render());
    seed_huge_caption["post"] =
        json!({"mode": "direct", "privacyLevel": "SELF_ONLY", "title": caption(2202)});
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut clip_extra = job_body("acct_1");
    clip_extra["post"]["clip"] = json!({"shortId": "s1", "unexpected": true});
    let long_key = "k".repeat(256);
    let mut other_body = job_body("acct_1");
    other_body["post"]["title"] = json!("another title");
    let auth = |k: &str| vec![("authorization", format!("Bearer {k}"))];
    let path_long = format!("/v1/jobs/job_{}", "0".repeat(300));
    let job_path = format!("/v1/jobs/{}", job["jobId"].as_str().unwrap());
    let audit = |query: &str| format!("{job_path}?{query}");
    let (audit_zero, audit_over, audit_text, after_negative, after_text, audit_both) = (
        audit("auditLimit=0"),
        audit("auditLimit=101"),
        audit("auditLimit=ten"),
        audit("auditAfter=-1"),
        audit("auditAfter=1.5"),
        audit("auditAfter=x&auditLimit=1000"),
    );
    let acct_long = format!("/v1/accounts/{}", "a".repeat(65));

    let cases = vec![
        // Oversized bodies, on every route that takes one.
        Case {
            label: "oversized create",
            raw: post_json("/v1/jobs", KEY_A, Some("k1"), bytes(&oversized)),
            status: 413,
            code: "body_too_large",
        },
        Case {
            label: "oversized seed",
            raw: post_json("/api/publish/tiktok", KEY_A, Some("k1"), vec![b' '; over]),
            status: 413,
            code: "body_too_large",
        },
        Case {
            label: "oversized connect",
            raw: post_json("/v1/accounts/connect", KEY_A, None, vec![b' '; over]),
            status: 413,
            code: "body_too_large",
        },
        // Wrong content types.
        Case {
            label: "text/plain",
            raw: Raw {
                method: "POST",
                path: "/v1/jobs",
                headers: vec![
                    ("authorization", format!("Bearer {KEY_A}")),
                    ("idempotency-key", "k1".into()),
                    ("content-type", "text/plain".into()),
                ],
                body: Some(bytes(&job_body("acct_1"))),
            },
            status: 415,
            code: "unsupported_media_type",
        },
        Case {
            label: "no content type",
            raw: Raw {
                method: "POST",
                path: "/v1/jobs",
                headers: vec![
                    ("authorization", format!("Bearer {KEY_A}")),
                    ("idempotency-key", "k1".into()),
                ],
                body: Some(bytes(&job_body("acct_1"))),
            },
            status: 415,
            code: "unsupported_media_type",
        },
        Case {
            label: "form on connect",
            raw: Raw {
                method: "POST",
                path: "/v1/accounts/connect",
                headers: vec![
                    ("authorization", format!("Bearer {KEY_A}")),
                    ("content-type", "application/x-www-form-urlencoded".into()),
                ],
                body: Some(b"tiktokAccountId=acct_9".to_vec()),
            },
            status: 415,
            code: "unsupported_media_type",
        },
        // Invalid UTF-8 and malformed JSON.
        Case {
            label: "invalid UTF-8",
            raw: post_json("/v1/jobs", KEY_A, Some("k1"), vec![0xff, 0xfe, b'{', b'}']),
            status: 400,
            code: "malformed_json",
        },
        Case {
            label: "invalid UTF-8 inside a string",
            raw: post_json(
                "/api/publish/tiktok",
                KEY_A,
                Some("k1"),
                b"{\"requestId\":\"\xc3\x28\"}".to_vec(),
            ),
            status: 400,
            code: "malformed_json",
        },
        Case {
            label: "truncated JSON",
            raw: post_json(
                "/v1/jobs",
                KEY_A,
                Some("k1"),
                b"{\"tiktokAccountId\":".to_vec(),
            ),
            status: 400,
            code: "malformed_json",
        },
        Case {
            label: "nesting bomb",
            raw: post_json("/v1/jobs", KEY_A, Some("k1"), deep.into_bytes()),
            status: 400,
            code: "malformed_json",
        },
        Case {
            label: "empty body",
            raw: post_json("/v1/jobs", KEY_A, Some("k1"), Vec::new()),
            status: 400,
            code: "malformed_json",
        },
        Case {
            label: "array body",
            raw: post_json("/v1/jobs", KEY_A, Some("k1"), b"[1,2]".to_vec()),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "connect null body",
            raw: post_json("/v1/accounts/connect", KEY_A, None, b"null".to_vec()),
            status: 400,
            code: "validation_failed",
        },
        // Connect follows its schema: no unknown fields, `mode` a string enum (regressions:
        // both were read as a direct-post connection).
        Case {
            label: "connect with a numeric mode",
            raw: post_json(
                "/v1/accounts/connect",
                KEY_A,
                None,
                bytes(&json!({"tiktokAccountId": "acct_9", "mode": 5})),
            ),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "connect with an unknown field",
            raw: post_json(
                "/v1/accounts/connect",
                KEY_A,
                None,
                bytes(&json!({"tiktokAccountId": "acct_9", "scope": "all"})),
            ),
            status: 400,
            code: "validation_failed",
        },
        // Huge captions (TikTok counts UTF-16 code units).
        Case {
            label: "caption 2201 UTF-16 units",
            raw: post_json("/v1/jobs", KEY_A, Some("k1"), bytes(&huge_caption)),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "caption 100k ASCII",
            raw: post_json("/v1/jobs", KEY_A, Some("k1"), bytes(&huge_ascii_caption)),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "seed caption 2202 units",
            raw: post_json(
                "/api/publish/tiktok",
                KEY_A,
                Some("k1"),
                bytes(&seed_huge_caption),
            ),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "clip with an unknown field",
            raw: post_json("/v1/jobs", KEY_A, Some("k1"), bytes(&clip_extra)),
            status: 400,
            code: "validation_failed",
        },
        // Unknown accounts.
        Case {
            label: "create for an unknown account",
            raw: post_json(
                "/v1/jobs",
                KEY_A,
                Some("k1"),
                bytes(&job_body("acct_unknown")),
            ),
            status: 422,
            code: "unknown_account",
        },
        Case {
            label: "seed for an unknown account",
            raw: post_json(
                "/api/publish/tiktok",
                KEY_A,
                Some("k1"),
                bytes(&seed_body("acct_unknown", &any_render())),
            ),
            status: 422,
            code: "unknown_account",
        },
        Case {
            label: "get an unknown account",
            raw: get("/v1/accounts/acct_unknown", auth(KEY_A)),
            status: 404,
            code: "account_not_found",
        },
        Case {
            label: "creator-info of an unknown account",
            raw: get("/v1/accounts/acct_unknown/creator-info", auth(KEY_A)),
            status: 404,
            code: "account_not_found",
        },
        Case {
            label: "account id too long",
            raw: get(&acct_long, auth(KEY_A)),
            status: 404,
            code: "account_not_found",
        },
        // Ids that are not ids.
        Case {
            label: "job id too long",
            raw: get(&path_long, auth(KEY_A)),
            status: 404,
            code: "job_not_found",
        },
        Case {
            label: "job id not a ULID",
            raw: get("/v1/jobs/job_%F0%9F%8E%AC", auth(KEY_A)),
            status: 404,
            code: "job_not_found",
        },
        Case {
            label: "cancel a missing job",
            raw: Raw {
                method: "POST",
                path: "/v1/jobs/job_01HT0000000000000000000000/cancel",
                headers: auth(KEY_A),
                body: None,
            },
            status: 404,
            code: "job_not_found",
        },
        // Idempotency keys.
        Case {
            label: "no idempotency key",
            raw: post_json("/v1/jobs", KEY_A, None, bytes(&job_body("acct_1"))),
            status: 400,
            code: "idempotency_key_required",
        },
        Case {
            label: "key with a space",
            raw: post_json("/v1/jobs", KEY_A, Some("a b"), bytes(&job_body("acct_1"))),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "key of 256 characters",
            raw: post_json(
                "/v1/jobs",
                KEY_A,
                Some(&long_key),
                bytes(&job_body("acct_1")),
            ),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "reused key, other body",
            raw: post_json("/v1/jobs", KEY_A, Some("k-existing"), bytes(&other_body)),
            status: 409,
            code: "idempotency_key_reused",
        },
        // Credentials.
        Case {
            label: "no credentials",
            raw: get("/v1/jobs", vec![]),
            status: 401,
            code: "unauthenticated",
        },
        Case {
            label: "wrong key",
            raw: get("/v1/jobs", auth("rl_wrong")),
            status: 401,
            code: "unauthenticated",
        },
        Case {
            label: "basic scheme",
            raw: get(
                "/v1/jobs",
                vec![("authorization", format!("Basic {KEY_A}"))],
            ),
            status: 401,
            code: "unauthenticated",
        },
        Case {
            label: "key of 300 characters",
            raw: get("/v1/jobs", vec![("x-api-key", "k".repeat(300))]),
            status: 401,
            code: "unauthenticated",
        },
        Case {
            label: "create without credentials",
            raw: Raw {
                method: "POST",
                path: "/v1/jobs",
                headers: vec![
                    ("content-type", "application/json".into()),
                    ("idempotency-key", "k1".into()),
                ],
                body: Some(bytes(&job_body("acct_1"))),
            },
            status: 401,
            code: "unauthenticated",
        },
        // List parameters.
        Case {
            label: "limit out of range",
            raw: get("/v1/jobs?limit=101", auth(KEY_A)),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "unknown state",
            raw: get("/v1/jobs?state=nonsense", auth(KEY_A)),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "forged cursor",
            raw: get("/v1/jobs?cursor=am9iX25vcGU", auth(KEY_A)),
            status: 400,
            code: "invalid_cursor",
        },
        // Audit paging parameters of GET /v1/jobs/{jobId}.
        Case {
            label: "auditLimit 0",
            raw: get(&audit_zero, auth(KEY_A)),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "auditLimit 101",
            raw: get(&audit_over, auth(KEY_A)),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "auditLimit not a number",
            raw: get(&audit_text, auth(KEY_A)),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "auditAfter negative",
            raw: get(&after_negative, auth(KEY_A)),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "auditAfter not an integer",
            raw: get(&after_text, auth(KEY_A)),
            status: 400,
            code: "validation_failed",
        },
        Case {
            label: "both audit parameters bad",
            raw: get(&audit_both, auth(KEY_A)),
            status: 400,
            code: "validation_failed",
        },
        // The OAuth callback authenticates by its single-use state only.
        Case {
            label: "forged OAuth state",
            raw: get("/v1/accounts/oauth/callback?state=forged&code=x", vec![]),
            status: 400,
            code: "invalid_oauth_state",
        },
        Case {
            label: "OAuth refusal with a forged state",
            raw: get(
                "/v1/accounts/oauth/callback?state=forged&error=access_denied",
                vec![],
            ),
            status: 400,
            code: "invalid_oauth_state",
        },
        Case {
            label: "OAuth callback without a state",
            raw: get("/v1/accounts/oauth/callback?code=x", vec![]),
            status: 400,
            code: "invalid_oauth_state",
        },
    ];

    let mut checked = 0;
    for case in cases {
        let before = s.snapshot().await;
        let (status, text) = s.raw(case.raw).await;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(
            (status, code(&body)),
            (case.status, case.code),
            "{}: {text:.300}",
            case.label
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}: no message",
            case.label
        );
        if case.label.starts_with("both audit") {
            let fields: Vec<&str> = body["error"]["details"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap())
                .collect();
            assert_eq!(fields, vec!["auditAfter", "auditLimit"], "{text}");
        }
        let after = s.snapshot().await;
        assert_eq!(before, after, "{} changed state", case.label);
        checked += 1;
    }
    assert!(checked >= 45, "{checked} cases");

    // A caption of exactly 2200 units is accepted, and the snapshot sees that change.
    let before = s.snapshot().await;
    let mut at_limit = job_body("acct_1");
    at_limit["post"]["title"] = json!(caption(2200));
    let (status, text) = s
        .raw(post_json("/v1/jobs", KEY_A, Some("k1"), bytes(&at_limit)))
        .await;
    assert_eq!(status, 202, "{text}");
    assert_ne!(
        before,
        s.snapshot().await,
        "the snapshot must see an accepted job"
    );
}
