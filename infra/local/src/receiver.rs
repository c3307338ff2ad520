//! A client's webhook receiver for the demo: it listens on loopback (the local-development
//! switch lets Reelay call it), keeps every request, and checks them at the end with the
//! Standard Webhooks reference implementation and the endpoint's secret.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

type Got = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// What the receiver got, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverReport {
    pub requests: usize,
    /// Requests whose signature does not verify (or that are not an event).
    pub unverified: usize,
    /// Distinct events (by `webhook-id`) per type.
    pub by_type: BTreeMap<String, usize>,
    /// Jobs a `job.published` event named.
    pub published: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    got: Got,
    pub url: String,
}

impl Receiver {
    /// Answers 204 to every POST on `/hooks`; runs until the process ends.
    pub async fn start() -> std::io::Result<Self> {
        let got: Got = Arc::default();
        let keep = got.clone();
        let app = Router::new().route(
            "/hooks",
            post(move |headers: HeaderMap, body: Bytes| {
                let keep = keep.clone();
                async move {
                    keep.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((headers, body));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hooks", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { got, url })
    }

    pub fn report(&self, secret: &str) -> ReceiverReport {
        let mut report = ReceiverReport::default();
        let Ok(hook) = standardwebhooks::Webhook::new(secret) else {
            return report;
        };
        let got = self
            .got
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut seen = BTreeSet::new();
        for (headers, body) in got.iter() {
            report.requests += 1;
            let event = hook
                .verify(body, headers)
                .ok()
                .and_then(|()| serde_json::from_slice::<Value>(body).ok());
            let Some(event) = event else {
                report.unverified += 1;
                continue;
            };
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if !seen.insert(id) {
                continue;
            }
            let kind = event["type"].as_str().unwrap_or("?").to_owned();
            if kind == "job.published"
                && let Some(job) = event["data"]["jobId"].as_str()
            {
                report.published.insert(job.to_owned());
            }
            *report.by_type.entry(kind).or_default() += 1;
        }
        report
    }
}
