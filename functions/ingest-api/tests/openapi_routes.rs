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
