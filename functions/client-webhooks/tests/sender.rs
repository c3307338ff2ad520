//! The HTTP sender against a real local receiver: a signed POST the reference implementation
//! verifies, and the destinations it must never reach (loopback by name or by literal, a redirect
//! to the metadata address, a receiver that never answers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use client_webhooks::{HttpSender, SenderSettings};
use reelay_domain::UtcTime;
use reelay_domain::ports::{PostResult, WebhookSender};
use reelay_domain::webhooks::{generate_secret, sign};
use secrecy::ExposeSecret;

#[derive(Clone, Default)]
struct Got(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

async fn receiver(got: Got) -> String {
    let app = Router::new()
        .route(
            "/ok",
            post({
                let got = got.clone();
                move |headers: HeaderMap, body: Bytes| async move {
                    got.0.lock().unwrap().push((headers, body));
                    StatusCode::NO_CONTENT
                }
            }),
        )
        .route(
            "/redirect",
            post({
                let got = got.clone();
                move |headers: HeaderMap, body: Bytes| async move {
                    got.0.lock().unwrap().push((headers, body));
                    (
                        StatusCode::FOUND,
                        [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")],
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::OK
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("127.0.0.1:{}", addr.port())
}

fn now() -> UtcTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    UtcTime::from_millis(i64::try_from(ms).unwrap())
}

fn local(timeout: Duration) -> HttpSender {
    HttpSender::new(&SenderSettings {
        timeout,
        connect_timeout: Duration::from_secs(5),
        allow_loopback: true,
    })
    .unwrap()
}

#[tokio::test]
async fn a_delivery_is_signed_so_the_reference_implementation_verifies_it() {
    let got = Got::default();
    let host = receiver(got.clone()).await;
    let secret = generate_secret(11, 13);
    let body = br#"{"type":"job.published","timestamp":"2026-12-03T00:00:00Z","data":{}}"#.to_vec();
    let headers = sign(&secret, "msg_abc", now(), &body).unwrap();
    let result = local(Duration::from_secs(10))
        .post(&format!("http://{host}/ok"), &headers, body.clone())
        .await;
    assert_eq!(result, PostResult::Answered(204));
    let (received_headers, received_body) = got.0.lock().unwrap().pop().unwrap();
    assert_eq!(&received_body[..], &body[..]);
    let hook = standardwebhooks::Webhook::new(secret.expose_secret()).unwrap();
    hook.verify(&received_body, &received_headers)
        .expect("the receiver verifies the signature");
    // Another body under the same headers does not verify.
    assert!(hook.verify(b"{}", &received_headers).is_err());
    assert_eq!(received_headers["webhook-id"], "msg_abc");
}

#[tokio::test]
async fn loopback_is_refused_by_literal_and_after_resolution_without_the_local_switch() {
    let got = Got::default();
    let host = receiver(got.clone()).await;
    let port = host.rsplit(':').next().unwrap();
    let strict = HttpSender::new(&SenderSettings::default()).unwrap();
    let headers = sign(&generate_secret(1, 2), "msg_x", now(), b"{}").unwrap();
    for url in [
        format!("https://127.0.0.1:{port}/ok"),
        format!("https://[::ffff:127.0.0.1]:{port}/ok"),
        format!("http://{host}/ok"),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let result = strict.post(&url, &headers, b"{}".to_vec()).await;
        assert!(
            matches!(result, PostResult::Blocked(_)),
            "{url}: {result:?}"
        );
    }
    assert!(
        got.0.lock().unwrap().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn a_redirect_is_an_answer_and_is_not_followed() {
    let got = Got::default();
    let host = receiver(got.clone()).await;
    let headers = sign(&generate_secret(3, 4), "msg_r", now(), b"{}").unwrap();
    let result = local(Duration::from_secs(10))
        .post(&format!("http://{host}/redirect"), &headers, b"{}".to_vec())
        .await;
    assert_eq!(result, PostResult::Answered(302));
    assert_eq!(got.0.lock().unwrap().len(), 1, "one request, no second");
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_in_time_is_a_failed_attempt() {
    let host = receiver(Got::default()).await;
    let headers = sign(&generate_secret(5, 6), "msg_s", now(), b"{}").unwrap();
    let result = local(Duration::from_millis(300))
        .post(&format!("http://{host}/slow"), &headers, b"{}".to_vec())
        .await;
    assert_eq!(result, PostResult::Failed("timeout".into()));
}
