//! Webhooks to the client on the whole local stack: a receiver on loopback (the local switch)
//! registered through the API gets every event of a job's life and of its account, each signed
//! so the Standard Webhooks reference implementation verifies it; a first answer of 500 is
//! retried under the same id; the delivery log shows both attempts; a replay sends the events
//! again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use reelay_e2e::{Harness, HarnessError, posted, run, within};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(90);

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let got = self.got.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let got = got.clone();
                async move {
                    let mut got = got.lock().unwrap();
                    got.push((headers, body));
                    // The very first request fails: Reelay must try it again.
                    if got.len() == 1 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://127.0.0.1:{port}/hook")
    }

    /// Every request verified with `secret`: (webhook-id, parsed body).
    fn verified(&self, secret: &str) -> Vec<(String, Value)> {
        let hook = standardwebhooks::Webhook::new(secret).unwrap();
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(headers, body)| {
                hook.verify(body, headers)
                    .unwrap_or_else(|e| panic!("signature does not verify: {e:?}"));
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                (id, serde_json::from_slice(body).unwrap())
            })
            .collect()
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<(), HarnessError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_owned(),
                after: Duration::from_secs(30),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn of_type<'a>(events: &'a [(String, Value)], kind: &str) -> Vec<&'a (String, Value)> {
    events.iter().filter(|(_, e)| e["type"] == kind).collect()
}

#[test]
fn a_jobs_life_reaches_the_clients_endpoint_signed_retried_logged_and_replayed()
-> Result<(), HarnessError> {
    run(async {
        let h = Harness::start().await?;
        within(LIMIT, async {
            let receiver = Receiver::default();
            let url = receiver.start().await;
            let created = h
                .client
                .post("/v1/webhooks", &json!({ "url": url }), None)
                .await?;
            assert_eq!(created.status, 201, "{}", created.body);
            let secret = created.str("/secret").unwrap().to_owned();
            let hook_id = created.str("/id").unwrap().to_owned();

            h.connect("acct_hooks", "direct").await?;
            let job = h.submit(&h.direct_job("acct_hooks", 1)).await?;
            h.wait_for(&job, Duration::from_secs(30), posted).await?;

            eventually("job.published delivered", || {
                of_type(&receiver.verified(&secret), "job.published")
                    .iter()
                    .any(|(_, e)| e["data"]["jobId"] == job.as_str())
            })
            .await?;
            let events = receiver.verified(&secret);
            let published = of_type(&events, "job.published");
            assert!(
                published[0].1["data"]["postIds"].as_array().is_some(),
                "{:?}",
                published[0].1
            );
            // Every move of the job, in order of its versions, from received on.
            let mut moves: Vec<(u64, String)> = of_type(&events, "job.state_changed")
                .iter()
                .filter(|(_, e)| e["data"]["jobId"] == job.as_str())
                .map(|(_, e)| {
                    (
                        e["data"]["version"].as_u64().unwrap(),
                        e["data"]["state"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            moves.sort();
            moves.dedup();
            let states: Vec<&str> = moves.iter().map(|(_, s)| s.as_str()).collect();
            assert_eq!(states.first(), Some(&"rendering"), "{states:?}");
            assert!(states.contains(&"publishing"), "{states:?}");
            // The first request was answered 500 and came again under the same id.
            let first = events[0].0.clone();
            assert!(
                events.iter().skip(1).any(|(id, _)| *id == first),
                "the failed delivery {first} was retried"
            );

            // The log shows the failed attempt and the delivered one.
            let log = h
                .client
                .get(&format!("/v1/webhooks/{hook_id}/deliveries?limit=100"))
                .await?;
            assert_eq!(log.status, 200, "{}", log.body);
            let attempts: Vec<&Value> = log.body["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["eventId"] == first.as_str())
                .collect();
            assert!(
                attempts
                    .iter()
                    .any(|d| d["outcome"] == "failed" && d["status"] == 500),
                "{attempts:?}"
            );
            assert!(
                attempts
                    .iter()
                    .any(|d| d["outcome"] == "delivered" && d["attempt"] == 2),
                "{attempts:?}"
            );

            // Disconnecting the account tells the client.
            let gone = h.client.delete("/v1/accounts/acct_hooks").await?;
            assert_eq!(gone.status, 200, "{}", gone.body);
            eventually("account.disconnected delivered", || {
                of_type(&receiver.verified(&secret), "account.disconnected")
                    .iter()
                    .any(|(_, e)| e["data"]["tiktokAccountId"] == "acct_hooks")
            })
            .await?;

            // A replay of everything sends the published event again, under its id.
            let before = receiver.verified(&secret).len();
            let replayed = h
                .client
                .post(
                    &format!("/v1/webhooks/{hook_id}/replay"),
                    &json!({ "onlyFailed": false }),
                    None,
                )
                .await?;
            assert_eq!(replayed.status, 202, "{}", replayed.body);
            let n = replayed.body["replayed"].as_u64().unwrap();
            assert!(n >= 3, "{}", replayed.body);
            let published_id = published[0].0.clone();
            eventually("the replay delivered", || {
                let now = receiver.verified(&secret);
                now.len() >= before + usize::try_from(n).unwrap()
                    && now[before..].iter().any(|(id, _)| *id == published_id)
            })
            .await?;
            Ok(())
        })
        .await?;
        h.shutdown().await
    })
}
