//! openapi.yaml and the route table describe the same API: every documented operation resolves
//! to the endpoint of the same operationId, and every endpoint is documented.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use ingest_api::routes::{Endpoint, resolve};

fn document() -> serde_json::Value {
    let raw =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_norway::from_str(&raw).unwrap()
}

#[test]
fn every_documented_operation_resolves_to_its_endpoint() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            documented.insert(id.to_owned());
            let concrete = path
                .replace("{jobId}", "job_01HT0000000000000000000000")
                .replace("{accountId}", "acct_1");
            let endpoint = resolve(&method.to_uppercase(), &concrete)
                .unwrap_or_else(|e| panic!("{method} {path} does not resolve: {e}"));
            assert_eq!(endpoint.operation_id(), id, "{method} {path}");
            for status in op["responses"].as_object().unwrap().keys() {
                let code: u16 = status.parse().unwrap();
                assert!((200..600).contains(&code));
            }
        }
    }
    let implemented: BTreeSet<String> = Endpoint::OPERATION_IDS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(
        documented, implemented,
        "documented vs implemented operations"
    );
}

#[test]
fn undocumented_paths_and_methods_are_refused() {
    assert!(resolve("GET", "/v1/unknown").is_err());
    assert!(resolve("DELETE", "/v1/jobs/job_01HT0000000000000000000000").is_err());
    assert!(resolve("PUT", "/v1/jobs").is_err());
    assert!(resolve("GET", "/v1/accounts/connect").is_err());
    assert!(resolve("POST", "/v1/jobs/x/y/z").is_err());
}

/// API Gateway forwards only the routes template.yaml gives the function: they must be exactly
/// the documented operations, or a documented route would answer the gateway's bare 404.
#[test]
fn template_yaml_routes_exactly_the_documented_operations() {
    let template = reelay_template::Template::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../template.yaml"
    ))
    .unwrap();
    let function = template
        .functions()
        .into_iter()
        .find(|f| f.id == "IngestApiFunction")
        .unwrap();
    let routed: BTreeSet<String> = function
        .events_of_type("HttpApi")
        .map(|props| {
            let get = |k: &str| props.get(k).and_then(|v| v.as_str()).unwrap().to_owned();
            format!("{} {}", get("Method").to_uppercase(), get("Path"))
        })
        .collect();
    let doc = document();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    assert_eq!(routed, documented);
}

#[test]
fn every_error_code_the_handler_can_give_is_documented() {
    let doc = document();
    let description = doc["info"]["description"].as_str().unwrap();
    let source = [
        include_str!("../src/error.rs"),
        include_str!("../src/jobs.rs"),
        include_str!("../src/accounts.rs"),
    ]
    .concat();
    // Every snake_case string literal given to Refusal::new as its code.
    let codes: BTreeSet<&str> = source
        .split("Refusal::new(")
        .skip(1)
        .filter_map(|call| call.split('"').nth(1))
        .collect();
    assert!(codes.len() >= 20, "{codes:?}");
    for code in codes.iter().copied().chain(["validation_failed"]) {
        assert!(
            description.contains(&format!("`{code}`")),
            "error code {code} is not in openapi.yaml's table"
        );
    }
}

/// Every example in the document is valid against the schema it illustrates: a generated client's
/// docs and Schemathesis's explicit examples never show a body the API would not accept or send.
#[test]
fn every_example_matches_its_schema() {
    let doc = document();
    let mut checked = 0;
    let mut visit = vec![doc.clone()];
    while let Some(node) = visit.pop() {
        let Some(map) = node.as_object() else {
            if let Some(items) = node.as_array() {
                visit.extend(items.iter().cloned());
            }
            continue;
        };
        if let Some(schema) = map.get("schema") {
            let mut examples: Vec<serde_json::Value> =
                map.get("example").cloned().into_iter().collect();
            if let Some(named) = map.get("examples").and_then(|e| e.as_object()) {
                examples.extend(named.values().map(|e| e["value"].clone()));
            }
            for example in examples {
                let mut wrapper = doc.as_object().unwrap().clone();
                wrapper.insert("allOf".into(), serde_json::json!([schema]));
                let validator =
                    jsonschema::draft202012::new(&serde_json::Value::Object(wrapper)).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&example)
                    .map(|e| format!("{e} at {}", e.instance_path()))
                    .collect();
                assert!(
                    errors.is_empty(),
                    "example {example} does not match: {errors:?}"
                );
                checked += 1;
            }
        }
        visit.extend(map.values().cloned());
    }
    assert!(checked >= 4, "only {checked} examples found");
}
