//! Secrets Manager adapters and the refresh coordinator against a real endpoint (locks in a real
//! DynamoDB table). Each test owns its secrets (random stage) and table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{account, now, sdk, tenant};
use reelay_aws::{
    DynamoAccountStore, SecretCache, SecretsManagerTokenVault, SystemClock, TokenError,
    TokenRefreshConfig, fresh_token,
};
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::ports::{
    AccountStore, RefreshError, SecretError, TokenRefresher, TokenSet, TokenVault,
};
use secrecy::{ExposeSecret, SecretString};

fn tokens(access: &str, refresh: &str, access_valid_for: i64) -> TokenSet {
    let t = now();
    TokenSet {
        access_token: SecretString::from(access),
        access_expires_at: reelay_domain::UtcTime::from_millis(
            t.as_millis() + access_valid_for * 1000,
        ),
        refresh_token: SecretString::from(refresh),
        refresh_expires_at: t.plus(Duration::from_secs(180 * 86_400)),
        open_id: "open-1".into(),
        scopes: vec!["video.publish".into()],
    }
}

async fn vault(sdk: &aws_config::SdkConfig) -> SecretsManagerTokenVault {
    SecretsManagerTokenVault::new(
        aws_sdk_secretsmanager::Client::new(sdk),
        common::token_prefix(sdk).await,
    )
}

/// TikTok's token endpoint in miniature: rotates the refresh token, the old one stops working.
struct RotatingRefresher {
    calls: AtomicUsize,
    current: std::sync::Mutex<String>,
    next_refresh: String,
    outcome: Outcome,
}

#[derive(Clone, Copy)]
enum Outcome {
    Rotate,
    Reject,
}

impl RotatingRefresher {
    fn new(current: &str, next_refresh: &str, outcome: Outcome) -> Self {
        Self {
            calls: AtomicUsize::new(0),
            current: std::sync::Mutex::new(current.into()),
            next_refresh: next_refresh.into(),
            outcome,
        }
    }
}

impl TokenRefresher for RotatingRefresher {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, RefreshError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if matches!(self.outcome, Outcome::Reject) {
            return Err(RefreshError::Rejected);
        }
        let mut current = self.current.lock().unwrap();
        if refresh_token.expose_secret() != current.as_str() {
            return Err(RefreshError::Rejected);
        }
        *current = self.next_refresh.clone();
        Ok(tokens("act.new", &self.next_refresh, 7200))
    }
}

async fn account_store(sdk: &aws_config::SdkConfig) -> DynamoAccountStore {
    let table = common::table(sdk).await;
    DynamoAccountStore::new(aws_sdk_dynamodb::Client::new(sdk), table)
}

fn fast() -> TokenRefreshConfig {
    TokenRefreshConfig {
        min_validity: Duration::from_secs(300),
        lock_ttl: Duration::from_secs(10),
        poll_interval: Duration::from_millis(50),
        max_rounds: 3,
    }
}

#[tokio::test]
async fn the_vault_round_trips_tokens_and_refuses_an_empty_refresh_token() {
    let sdk = sdk().await;
    let vault = vault(&sdk).await;
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    assert!(vault.get_tokens(&t, &a).await.unwrap().is_none());
    vault
        .put_tokens(&t, &a, &tokens("act.1", "rft.1", 3600))
        .await
        .unwrap();
    vault
        .put_tokens(&t, &a, &tokens("act.2", "rft.2", 3600))
        .await
        .unwrap();
    let stored = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(stored.access_token.expose_secret(), "act.2");
    assert_eq!(stored.refresh_token.expose_secret(), "rft.2");
    assert_eq!(stored.open_id, "open-1");

    for empty in ["", "   "] {
        let err = vault
            .put_tokens(&t, &a, &tokens("act.3", empty, 3600))
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::EmptyRefreshToken));
    }
    let kept = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(
        kept.refresh_token.expose_secret(),
        "rft.2",
        "nothing was stored"
    );
    assert!(!format!("{kept:?}").contains("rft.2"));
    // Accounts are separate secrets.
    assert!(
        vault
            .get_tokens(&t, &account("acct_2"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_tasks_racing_an_expired_token_make_one_refresh_and_all_get_the_new_token() {
    let sdk = sdk().await;
    let (vault, accounts) = (
        Arc::new(vault(&sdk).await),
        Arc::new(account_store(&sdk).await),
    );
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    vault
        .put_tokens(&t, &a, &tokens("act.old", "rft.old", -1))
        .await
        .unwrap();
    let refresher = Arc::new(RotatingRefresher::new(
        "rft.old",
        "rft.new",
        Outcome::Rotate,
    ));

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (vault, accounts, refresher, t, a) = (
                vault.clone(),
                accounts.clone(),
                refresher.clone(),
                t.clone(),
                a.clone(),
            );
            tokio::spawn(async move {
                fresh_token(
                    &*accounts,
                    &*vault,
                    &*refresher,
                    &SystemClock,
                    &t,
                    &a,
                    &fast(),
                )
                .await
                .map(|s| s.expose_secret().to_owned())
            })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();

    assert_eq!(
        refresher.calls.load(Ordering::SeqCst),
        1,
        "exactly one refresher call"
    );
    for r in &results {
        assert_eq!(r.as_ref().unwrap(), "act.new");
    }
    let stored = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(
        stored.refresh_token.expose_secret(),
        "rft.new",
        "the rotated refresh token is stored"
    );
    assert_eq!(stored.access_token.expose_secret(), "act.new");

    // Fresh now: no further refresh.
    let again = fresh_token(
        &*accounts,
        &*vault,
        &*refresher,
        &SystemClock,
        &t,
        &a,
        &fast(),
    )
    .await
    .unwrap();
    assert_eq!(again.expose_secret(), "act.new");
    assert_eq!(refresher.calls.load(Ordering::SeqCst), 1);
}

/// A refresher whose response lacks a refresh token.
struct NoRefreshToken;

impl TokenRefresher for NoRefreshToken {
    async fn refresh(&self, _: &SecretString) -> Result<TokenSet, RefreshError> {
        Ok(tokens("act.new", "", 7200))
    }
}

#[tokio::test]
async fn an_empty_refresh_token_from_upstream_is_never_stored() {
    let sdk = sdk().await;
    let (vault, accounts) = (vault(&sdk).await, account_store(&sdk).await);
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    vault
        .put_tokens(&t, &a, &tokens("act.old", "rft.keep", -1))
        .await
        .unwrap();
    let token = fresh_token(
        &accounts,
        &vault,
        &NoRefreshToken,
        &SystemClock,
        &t,
        &a,
        &fast(),
    )
    .await
    .unwrap();
    assert_eq!(token.expose_secret(), "act.new");
    let stored = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.expose_secret(), "rft.keep");
    assert_eq!(stored.access_token.expose_secret(), "act.new");
}

#[tokio::test]
async fn a_rejected_refresh_token_marks_the_account_for_reauthorisation() {
    let sdk = sdk().await;
    let (vault, accounts) = (vault(&sdk).await, account_store(&sdk).await);
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    let mut acct = Account::new(t.clone(), a.clone());
    acct.health = AccountHealth::Active;
    accounts.put_account(&acct).await.unwrap();
    vault
        .put_tokens(&t, &a, &tokens("act.old", "rft.dead", -1))
        .await
        .unwrap();
    let refresher = RotatingRefresher::new("rft.dead", "unused", Outcome::Reject);

    let err = fresh_token(&accounts, &vault, &refresher, &SystemClock, &t, &a, &fast())
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::NeedsReauth), "got {err:?}");
    let stored = accounts.get_account(&t, &a).await.unwrap().unwrap();
    assert_eq!(stored.health, AccountHealth::NeedsReauth);
    assert_eq!(
        stored.health_reason.as_deref(),
        Some("refresh_token_rejected")
    );
    assert!(!err.to_string().contains("rft.dead"));
    // The lock was released: the next caller is not kept waiting.
    assert!(
        accounts
            .acquire_lock(
                &reelay_aws::secrets::refresh_lock_name(&t, &a),
                "x",
                now(),
                now()
            )
            .await
            .unwrap()
    );

    let unknown = fresh_token(
        &accounts,
        &vault,
        &refresher,
        &SystemClock,
        &t,
        &account("nobody"),
        &fast(),
    )
    .await;
    assert!(matches!(unknown, Err(TokenError::NotConnected)));
}

#[tokio::test]
async fn app_secrets_are_cached_for_their_ttl_then_reread() {
    let sdk = sdk().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let stack = common::provision(&sdk, reelay_template::ResourceKinds::SECRETS, None).await;
    let id = stack.secret("SsembleSecret").unwrap().name.clone();
    let app_id = stack.secret("TikTokAppSecret").unwrap().name.clone();
    assert!(id.ends_with("/ssemble") && app_id.ends_with("/tiktok-app"));
    client
        .put_secret_value()
        .secret_id(&id)
        .secret_string(r#"{"apiKey":"sk_one"}"#)
        .send()
        .await
        .unwrap();
    let cache = SecretCache::new(client.clone(), Duration::from_millis(400));
    let first = cache.ssemble(&id).await.unwrap();
    assert_eq!(first.api_key.expose_secret(), "sk_one");
    assert!(!format!("{first:?} {cache:?}").contains("sk_one"));

    client
        .put_secret_value()
        .secret_id(&id)
        .secret_string(r#"{"apiKey":"sk_two"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cache.ssemble(&id).await.unwrap().api_key.expose_secret(),
        "sk_one",
        "cached"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        cache.ssemble(&id).await.unwrap().api_key.expose_secret(),
        "sk_two",
        "re-read after the TTL"
    );

    client
        .put_secret_value()
        .secret_id(&app_id)
        .secret_string(r#"{"clientKey":"ck_1","clientSecret":"cs_1"}"#)
        .send()
        .await
        .unwrap();
    let app = cache.tiktok_app(&app_id).await.unwrap();
    assert_eq!(
        (app.client_key.as_str(), app.client_secret.expose_secret()),
        ("ck_1", "cs_1")
    );
    assert!(matches!(
        cache.ssemble(&app_id).await,
        Err(SecretError::Malformed)
    ));
    assert!(matches!(
        cache.ssemble("reelay/none/ssemble").await,
        Err(SecretError::NotFound)
    ));
}
