use reelay_tiktok::{ErrorClass, TikTokError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::common::*;

fn oauth_error(e: &TikTokError) -> (&str, ErrorClass, u16) {
    match e {
        TikTokError::OAuth {
            error,
            class,
            http_status,
            ..
        } => (error.as_str(), *class, *http_status),
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

async fn authorize(sim: &tiktok_sim::SimHandle, url: &str) -> url::Url {
    let _ = sim;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap()
}

fn param(u: &url::Url, k: &str) -> Option<String> {
    u.query_pairs()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn when_code_is_exchanged_and_refreshed_should_rotate_and_kill_the_old_refresh_token() {
    let sim = start(sim_config()).await;
    let client = client(&sim, |_| {});
    let url = client
        .authorize_url(&["user.info.basic", "video.publish"], "st4te-123", REDIRECT)
        .unwrap();
    assert!(
        url.contains("scope=user.info.basic%2Cvideo.publish"),
        "{url}"
    );
    let back = authorize(&sim, &url).await;
    assert_eq!(param(&back, "state").as_deref(), Some("st4te-123"));
    assert_eq!(
        param(&back, "scopes").as_deref(),
        Some("user.info.basic,video.publish")
    );
    let code = param(&back, "code").unwrap();

    let first = client.exchange_code(&code, REDIRECT, None).await.unwrap();
    assert!(first.access_token.expose_secret().starts_with("act."));
    assert!(first.has_scope("video.publish") && !first.has_scope("video.upload"));
    assert_eq!(first.expires_in, 7200);
    assert_eq!(first.refresh_expires_in, 180 * 86_400);
    assert!(first.log_id.is_some());
    client.creator_info(&first.access_token).await.unwrap();

    let reused = client
        .exchange_code(&code, REDIRECT, None)
        .await
        .unwrap_err();
    assert_eq!(oauth_error(&reused).0, "invalid_grant");
    assert_eq!(oauth_error(&reused).1, ErrorClass::NeedsUser);

    sim.advance(3600);
    let second = client.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(
        second.refresh_token.expose_secret(),
        first.refresh_token.expose_secret()
    );
    assert_eq!(
        second.refresh_expires_in,
        180 * 86_400 - 3600,
        "counts down from first issuance"
    );
    assert_eq!(second.open_id, first.open_id);
    let stale = client.refresh(&first.refresh_token).await.unwrap_err();
    assert_eq!(oauth_error(&stale).0, "invalid_grant");
    client.creator_info(&second.access_token).await.unwrap();
    let third = client.refresh(&second.refresh_token).await.unwrap();
    assert!(third.refresh_expires_in < second.refresh_expires_in + 1);
}

#[tokio::test]
async fn when_rotation_is_off_should_keep_the_refresh_token() {
    let sim = start(sim_config()).await;
    sim.patch_config(&json!({"oauth": {"rotate_refresh_tokens": false}}))
        .unwrap();
    let client = client(&sim, |_| {});
    let (_, rt) = tokens(&sim, "u1", &["video.publish"]);
    let t = client.refresh(&rt).await.unwrap();
    assert_eq!(t.refresh_token.expose_secret(), rt.expose_secret());
    client.refresh(&rt).await.unwrap();
}

#[tokio::test]
async fn when_oauth_errors_arrive_with_http_200_should_still_be_errors() {
    let sim = start(sim_config()).await;
    sim.patch_config(&json!({"oauth": {"error_http_status": 200}}))
        .unwrap();
    let bad = client(&sim, |c| c.client_secret = SecretString::from("wrong"));
    let (_, rt) = tokens(&sim, "u1", &["video.publish"]);
    let err = bad.refresh(&rt).await.unwrap_err();
    assert_eq!(
        oauth_error(&err),
        ("invalid_client", ErrorClass::Permanent, 200)
    );
    assert!(err.log_id().is_some());
    assert!(!format!("{err:?} {err}").contains("wrong"), "secret leaked");
    let good = client(&sim, |_| {});
    let err = good
        .exchange_code("code.nope", REDIRECT, None)
        .await
        .unwrap_err();
    assert_eq!(
        oauth_error(&err),
        ("invalid_grant", ErrorClass::NeedsUser, 200)
    );
}

#[tokio::test]
async fn when_user_denies_should_redirect_with_error_and_state() {
    let sim = start(sim_config()).await;
    let client = client(&sim, |_| {});
    let url = client
        .authorize_url(&["video.publish"], "s1", REDIRECT)
        .unwrap()
        + "&deny=1";
    let back = authorize(&sim, &url).await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("s1"));
    assert!(param(&back, "code").is_none());
}

#[tokio::test]
async fn when_token_is_revoked_should_invalidate_access_and_refresh_and_notify() {
    let sim = start(sim_config()).await;
    let client = client(&sim, |_| {});
    let (at, rt) = tokens(&sim, "u1", &["video.publish"]);
    client.creator_info(&at).await.unwrap();
    client.revoke(&at).await.unwrap();
    let err = client.creator_info(&at).await.unwrap_err();
    assert_eq!(err.code(), Some("access_token_invalid"));
    assert_eq!(err.class(), Some(ErrorClass::RefreshThenRetry));
    assert_eq!(
        oauth_error(&client.refresh(&rt).await.unwrap_err()).0,
        "invalid_grant"
    );
    let events = sim.inspect()["webhooks"].clone();
    assert_eq!(events[0]["event"], "authorization.removed");
    assert_eq!(events[0]["content"], r#"{"reason":5}"#);
}

#[tokio::test]
async fn when_access_token_expires_should_refresh_then_retry() {
    let sim = start(sim_config()).await;
    let client = client(&sim, |_| {});
    let (at, rt) = tokens(&sim, "u1", &["video.publish"]);
    sim.advance(7201);
    let err = client.creator_info(&at).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::RefreshThenRetry));
    let fresh = client.refresh(&rt).await.unwrap();
    client.creator_info(&fresh.access_token).await.unwrap();
}

/// The redirect is per request now (the API's callback URL as the request reached it), so the
/// one the exchange sends must be the link's: TikTok refuses any other, and the code stays
/// unusable for a second try.
#[tokio::test]
async fn when_the_exchange_names_another_redirect_than_the_link_should_be_refused() {
    let sim = start(sim_config()).await;
    let client = client(&sim, |_| {});
    let url = client
        .authorize_url(&["video.publish"], "s2", REDIRECT)
        .unwrap();
    assert!(url.contains("redirect_uri=https%3A%2F%2Fapp.example.com%2Foauth%2Fcallback"));
    let code = param(&authorize(&sim, &url).await, "code").unwrap();
    let err = client
        .exchange_code(&code, "https://elsewhere.example.com/oauth/callback", None)
        .await
        .unwrap_err();
    assert_eq!(oauth_error(&err).0, "invalid_request");
}
