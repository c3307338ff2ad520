//! Tenant isolation matrix: every operation in openapi.yaml (so a new route is covered without
//! editing this test) × tenant A's job ids, account ids and list cursor, called with tenant B's
//! key. Each answer must refuse in the envelope (404/422) or, where the route answers from B's
//! own namespace (list, connect, a create choosing one of A's job ids: job ids are scoped per
//! tenant), contain only B's data; no answer may carry A's data, and A's items never change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Map, Value, json};

const SECRET_TITLE: &str = "tenant-a-private-caption";

struct Foreign {
    jobs: Vec<String>,
    accounts: Vec<String>,
    cursor: String,
    /// A render of A's jobs (a real requestId, as A's job record shows it).
    render: String,
    /// A's webhook endpoint.
    webhooks: Vec<String>,
}

/// A request body for `schema` that names foreign ids wherever the schema has an id field.
/// A required field this test does not know fails loudly, so a new body shape gets a value here.
fn body_for(doc: &Value, schema: &Value, account: &str, job: Option<&str>, render: &str) -> Value {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap().clone(),
        None => schema.clone(),
    };
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut out = Map::new();
    for (name, _) in props {
        let value = match name.as_str() {
            "tiktokAccountId" => json!(account),
            "jobId" => match job {
                Some(j) => json!(j),
                None => continue,
            },
            "requestId" => json!(render),
            "source" => json!({"url": "https://example.com/v.mp4", "start": 0, "end": 60}),
            // A create's whole post, or an amendment's caption only.
            "post" if schema.pointer("/properties/post/$ref").is_none() => {
                json!({"title": "b's caption"})
            }
            "post" => {
                json!({"mode": "direct", "privacyLevel": "SELF_ONLY", "title": "b's caption"})
            }
            "mode" => json!("direct"),
            "url" => json!("https://hooks.example.com/tenant-b"),
            // A batch: one create of the same kind, with its own key.
            "jobs" => {
                let items = &json!({"$ref": "#/components/schemas/CreateJob"});
                let mut item = body_for(doc, items, account, job, render);
                item["idempotencyKey"] =
                    json!(format!("iso-batch-{account}-{}", job.unwrap_or("-")));
                json!([item])
            }
            "scheduleAt" | "idempotencyKey" | "dryRun" | "events" | "description" | "since"
            | "onlyFailed" => continue,
            other => {
                let required = schema["required"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x == other));
                assert!(
                    !required,
                    "the isolation matrix has no value for required field {other}"
                );
                continue;
            }
        };
        out.insert(name, value);
    }
    Value::Object(out)
}

/// Every concrete request of the matrix for one operation.
fn requests(
    doc: &Value,
    path: &str,
    op: &Value,
    f: &Foreign,
    own_account: &str,
) -> Vec<(String, Option<Value>)> {
    let mut paths: Vec<String> = vec![path.to_owned()];
    if path.contains("{jobId}") {
        paths = f.jobs.iter().map(|j| path.replace("{jobId}", j)).collect();
    }
    if path.contains("{webhookId}") {
        paths = f
            .webhooks
            .iter()
            .map(|w| path.replace("{webhookId}", w))
            .collect();
    }
    if path.contains("{accountId}") {
        paths = f
            .accounts
            .iter()
            .map(|a| path.replace("{accountId}", a))
            .collect();
    }
    // Query parameters that take a foreign value.
    let params: Vec<String> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    let mut queries = vec![String::new()];
    for name in &params {
        match name.as_str() {
            "tiktokAccountId" => {
                queries.extend(f.accounts.iter().map(|a| format!("?tiktokAccountId={a}")))
            }
            "cursor" => queries.push(format!("?cursor={}", f.cursor)),
            "state" => queries.push(format!("?state=received&tiktokAccountId={}", f.accounts[0])),
            // Paging another tenant's audit trail finds no job either.
            "auditLimit" => queries.push("?auditLimit=1".into()),
            "auditAfter" => queries.push("?auditAfter=0".into()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for p in &paths {
        for q in &queries {
            let target = format!("{p}{q}");
            match op.pointer("/requestBody/content/application~1json/schema") {
                None => out.push((target, None)),
                Some(schema) => {
                    for a in &f.accounts {
                        let b = body_for(doc, schema, a, None, &f.render);
                        out.push((target.clone(), Some(b)));
                    }
                    // Our own account with a foreign job id: the id must not be taken over.
                    for j in &f.jobs {
                        let b = body_for(doc, schema, own_account, Some(j), &f.render);
                        if b.get("jobId").is_some() {
                            out.push((target.clone(), Some(b)));
                        }
                    }
                    // Our own account publishing A's render: the render must not be taken.
                    let mut b = body_for(doc, schema, own_account, None, &f.render);
                    if b.get("source").is_some() {
                        b["source"] = json!({ "requestId": f.render });
                    }
                    if b.get("source").is_some() || b.get("requestId").is_some() {
                        out.push((target.clone(), Some(b)));
                    }
                }
            }
        }
    }
    out
}

fn a_items(s: &Snapshot) -> Vec<String> {
    s.items
        .iter()
        .filter(|i| i.contains("tenant_a"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_ids_on_every_route_leak_nothing_and_change_nothing() {
    let s = stack().await;
    // Tenant A: two accounts, three jobs with a private caption, a cursor.
    s.connect(KEY_A, "acct_only_a").await;
    s.connect(KEY_A, "acct_also_a").await;
    let mut jobs = Vec::new();
    for (i, account) in ["acct_only_a", "acct_only_a", "acct_also_a"]
        .iter()
        .enumerate()
    {
        let mut body = job_body(account);
        body["post"]["title"] = json!(SECRET_TITLE);
        let (status, job) = s
            .json(
                "POST",
                "/v1/jobs",
                Some(KEY_A),
                Some(body),
                Some(&format!("a-{i}")),
            )
            .await;
        assert_eq!(status, 202, "{job}");
        jobs.push(job["jobId"].as_str().unwrap().to_owned());
    }
    // A render of A's own, on a job of its own (the matrix's jobs stay `received`).
    let (_, render) = s.own_render(KEY_A, "acct_also_a", "a-render").await;
    let (status, page) = s
        .json("GET", "/v1/jobs?limit=1", Some(KEY_A), None, None)
        .await;
    assert_eq!(status, 200);
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();
    // Tenant B: its own account and job.
    s.connect(KEY_B, "acct_only_b").await;
    let (status, own) = s
        .json(
            "POST",
            "/v1/jobs",
            Some(KEY_B),
            Some(job_body("acct_only_b")),
            Some("b-0"),
        )
        .await;
    assert_eq!(status, 202, "{own}");
    let own_job = own["jobId"].as_str().unwrap().to_owned();

    let (status, hook) = s
        .json(
            "POST",
            "/v1/webhooks",
            Some(KEY_A),
            Some(json!({"url": "https://hooks.example.com/tenant-a"})),
            None,
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let a_hook = hook["id"].as_str().unwrap().to_owned();
    let foreign = Foreign {
        jobs: jobs.clone(),
        accounts: vec!["acct_only_a".into(), "acct_also_a".into()],
        cursor: cursor.clone(),
        render: render.to_string(),
        webhooks: vec![a_hook.clone()],
    };
    let doc = document();
    let mut routes = 0;
    let mut matrix = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // The OAuth callback has no tenant: its single-use state is the credential
            // (a forged one is refused in bad_input.rs).
            if op["security"].as_array().is_some_and(Vec::is_empty) {
                continue;
            }
            routes += 1;
            let id = op["operationId"].as_str().unwrap().to_owned();
            for (target, body) in requests(&doc, path, op, &foreign, "acct_only_b") {
                matrix.push((id.clone(), method.to_uppercase(), target, body));
            }
        }
    }
    // Connecting creates a pending account, and a create naming one of A's job ids a job of
    // B's, in B's own namespace under the name B chose; run those last so the other routes see
    // only what B really owns.
    matrix.sort_by_key(|(id, _, _, body)| {
        let chooses_id = body
            .as_ref()
            .is_some_and(|b| b.get("jobId").is_some() || b["jobs"][0].get("jobId").is_some());
        (chooses_id, id == "connectAccount")
    });
    let mut cases = 0;
    let mut leaks = Vec::new();
    let mut chosen = std::collections::BTreeSet::new();
    {
        {
            for (id, method, target, body) in matrix {
                let id = id.as_str();
                cases += 1;
                let before = s.snapshot().await;
                let (status, text) = s
                    .call(
                        &method,
                        &target,
                        Some(KEY_B),
                        body.clone(),
                        Some(&format!("iso-{cases}")),
                    )
                    .await;
                let after = s.snapshot().await;
                let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let sent = format!("{target} {}", body.clone().unwrap_or(Value::Null));
                // A's data B did not send itself.
                let mut markers: Vec<&str> = vec![SECRET_TITLE, &cursor, &a_hook, "tenant-a"];
                markers.extend(jobs.iter().map(String::as_str));
                markers.extend(["acct_only_a", "acct_also_a", render.as_str()]);
                for m in markers.into_iter().filter(|m| !sent.contains(*m)) {
                    if text.contains(m) {
                        leaks.push(format!(
                            "{method} {target}: answer carries {m}: {text:.200}"
                        ));
                    }
                }
                assert_eq!(
                    a_items(&before),
                    a_items(&after),
                    "{id} {target} changed tenant A's items"
                );
                match (id, status) {
                    ("listJobs", 200) => {
                        let listed: Vec<&str> = answer["jobs"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|j| j["jobId"].as_str().unwrap())
                            .collect();
                        assert!(listed.iter().all(|j| *j == own_job), "{target}: {listed:?}");
                        assert_eq!(before, after, "{id} {target} changed state");
                    }
                    ("listAccounts", 200) => {
                        let listed: Vec<&str> = answer["accounts"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|a| a["tiktokAccountId"].as_str().unwrap())
                            .collect();
                        assert!(
                            listed.iter().all(|a| *a == "acct_only_b"),
                            "{target}: {listed:?}"
                        );
                        assert_eq!(before, after, "{id} {target} changed state");
                    }
                    // Connecting happens in B's own namespace: B gets its own authorize link.
                    ("connectAccount", 200) => {}
                    // B's own endpoint, in B's namespace; B's list shows only B's endpoints.
                    ("createWebhook", 201) => {}
                    ("listWebhooks", 200) => {
                        let listed: Vec<&str> = answer["webhooks"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|w| w["id"].as_str().unwrap())
                            .collect();
                        assert!(!listed.contains(&a_hook.as_str()), "{target}: {listed:?}");
                        assert_eq!(before, after, "{id} {target} changed state");
                    }
                    // A batch answers per item: A's accounts, renders and job ids are refused
                    // as a single create refuses them; B's own account may create in B's space.
                    ("createJobs", 200) => {
                        for r in answer["results"].as_array().unwrap() {
                            // Job ids are scoped per tenant: one of A's ids is B's to choose.
                            let own = body.as_ref().is_some_and(|b| {
                                b["jobs"][0]["tiktokAccountId"] == "acct_only_b"
                                    && b["jobs"][0]["source"].get("requestId").is_none()
                            });
                            let sent_id =
                                body.as_ref().and_then(|b| b["jobs"][0]["jobId"].as_str());
                            match (r["status"].as_u64(), sent_id) {
                                (Some(202), Some(j)) => {
                                    assert!(own && r["job"]["jobId"] == j, "{target}: {r}");
                                    assert!(chosen.insert(j.to_owned()), "{target}: {r}");
                                }
                                (Some(202), None) => assert!(own, "{target}: {r}"),
                                // B's own job under that id, created earlier in the matrix.
                                (Some(409), Some(j)) => assert!(
                                    r["error"]["code"] == "job_exists" && chosen.contains(j),
                                    "{target}: {r}"
                                ),
                                _ => assert!(
                                    matches!(
                                        r["error"]["code"].as_str(),
                                        Some("unknown_account" | "render_not_found")
                                    ),
                                    "{target}: {r}"
                                ),
                            }
                        }
                    }
                    (_, 404) => {
                        assert!(
                            matches!(
                                code(&answer),
                                "job_not_found"
                                    | "account_not_found"
                                    | "render_not_found"
                                    | "webhook_not_found"
                            ),
                            "{id} {target}: {text}"
                        );
                        assert_eq!(before, after, "{id} {target} changed state");
                    }
                    (_, 422) => {
                        assert_eq!(code(&answer), "unknown_account", "{id} {target}: {text}");
                        assert_eq!(before, after, "{id} {target} changed state");
                    }
                    // Job ids are scoped per tenant: B choosing one of A's ids creates B's own
                    // job under it (A's stays A's, asserted above and at the end).
                    (_, 200 | 202)
                        if body
                            .as_ref()
                            .and_then(|b| b.get("jobId"))
                            .is_some_and(|j| answer["jobId"] == *j) =>
                    {
                        let j = answer["jobId"].as_str().unwrap().to_owned();
                        assert!(chosen.insert(j), "{id} {target}: created twice: {text}");
                    }
                    // The same id chosen again by another of B's creates: B's own job exists.
                    (_, 409) if body.as_ref().is_some_and(|b| b.get("jobId").is_some()) => {
                        let j = body.as_ref().unwrap()["jobId"].as_str().unwrap();
                        assert_eq!(code(&answer), "job_exists", "{id} {target}: {text}");
                        assert!(chosen.contains(j), "{id} {target}: {text}");
                        assert_eq!(before, after, "{id} {target} changed state");
                    }
                    _ => panic!("{id} {method} {target} answered {status}: {text}"),
                }
            }
        }
    }
    println!(
        "isolation matrix: {routes} routes × foreign ids = {cases} cases, {} leaks",
        leaks.len()
    );
    assert!(leaks.is_empty(), "{leaks:#?}");
    // Every operation but the public ones (the OAuth callback and the document itself).
    assert_eq!(
        routes,
        doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|i| i.as_object().unwrap().len())
            .sum::<usize>()
            - 2
    );
    assert!(cases >= 20, "only {cases} cases");

    // B chose every one of A's ids and got a job of its own under each.
    assert_eq!(chosen.len(), jobs.len(), "{chosen:?}");
    for j in &chosen {
        let (status, job) = s
            .json("GET", &format!("/v1/jobs/{j}"), Some(KEY_B), None, None)
            .await;
        assert_eq!(status, 200, "{job}");
        assert_eq!(job["tiktokAccountId"], "acct_only_b", "{job}");
    }
    // A still sees exactly its own jobs, unchanged.
    for j in &jobs {
        let (status, job) = s
            .json("GET", &format!("/v1/jobs/{j}"), Some(KEY_A), None, None)
            .await;
        assert_eq!((status, job["state"].as_str()), (200, Some("received")));
        assert_eq!(
            job["audit"].as_array().unwrap().len(),
            1,
            "B's attempts left no audit event"
        );
    }
}
