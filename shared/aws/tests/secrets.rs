//! Secrets Manager adapters against a real endpoint, and the domain's token refresh
//! (`Core::fresh_token`) over them and a real DynamoDB table's locks. Each test owns its secrets
//! (random stage) and table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{account, now, sdk, tenant, token_core};
use reelay_aws::{DynamoStore, SecretCache, SecretsManagerTokenVault};
use reelay_domain::account::{Account, AccountHealth};
use reelay_domain::ports::{
    AccountStore, LockStore, RefreshError, SecretError, TokenRefresher, TokenSet, TokenVault,
};
use reelay_domain::usecase::{TokenError, refresh_lock_name};
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

async fn store(sdk: &aws_config::SdkConfig) -> DynamoStore {
    common::store(sdk).await
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
    let vault = vault(&sdk).await;
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
    let core = Arc::new(token_core(
        &sdk,
        store(&sdk).await,
        vault.clone(),
        refresher.clone(),
    ));

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (core, t, a) = (core.clone(), t.clone(), a.clone());
            tokio::spawn(async move {
                core.fresh_token(&t, &a, None)
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
    let again = core.fresh_token(&t, &a, None).await.unwrap();
    assert_eq!(again.expose_secret(), "act.new");
    assert_eq!(refresher.calls.load(Ordering::SeqCst), 1);
}

/// Records what the vault held when TikTok was asked, so the order of store and use is visible.
struct StoredBeforeUse {
    vault: SecretsManagerTokenVault,
    tenant: reelay_domain::TenantId,
    account: reelay_domain::AccountId,
    seen_at_second_call: std::sync::Mutex<Option<String>>,
    calls: AtomicUsize,
}

impl TokenRefresher for StoredBeforeUse {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, RefreshError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n == 1 {
            let stored = self
                .vault
                .get_tokens(&self.tenant, &self.account)
                .await
                .unwrap()
                .unwrap();
            *self.seen_at_second_call.lock().unwrap() =
                Some(stored.refresh_token.expose_secret().to_owned());
        }
        let next = format!("rft.{}", n + 1);
        assert_eq!(refresh_token.expose_secret(), format!("rft.{n}"));
        Ok(tokens(&format!("act.{}", n + 1), &next, 7200))
    }
}

#[tokio::test]
async fn a_token_tiktok_just_refused_is_refreshed_and_the_rotated_set_is_stored_before_it_is_used()
{
    let sdk = sdk().await;
    let vault = vault(&sdk).await;
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    // Valid for two hours, but TikTok has just refused it (revoked, or rotated elsewhere).
    vault
        .put_tokens(&t, &a, &tokens("act.0", "rft.0", 7200))
        .await
        .unwrap();
    let refresher = Arc::new(StoredBeforeUse {
        vault: vault.clone(),
        tenant: t.clone(),
        account: a.clone(),
        seen_at_second_call: Default::default(),
        calls: AtomicUsize::new(0),
    });
    let core = token_core(&sdk, store(&sdk).await, vault.clone(), refresher.clone());
    let refused = SecretString::from("act.0");
    let first = core.fresh_token(&t, &a, None).await.unwrap();
    assert_eq!(first.expose_secret(), "act.0", "fresh enough: no refresh");
    assert_eq!(refresher.calls.load(Ordering::SeqCst), 0);

    let token = core.fresh_token(&t, &a, Some(&refused)).await.unwrap();
    assert_eq!(token.expose_secret(), "act.1");
    let token = core
        .fresh_token(&t, &a, Some(&SecretString::from("act.1")))
        .await
        .unwrap();
    assert_eq!(token.expose_secret(), "act.2");
    assert_eq!(
        refresher.seen_at_second_call.lock().unwrap().as_deref(),
        Some("rft.1"),
        "the first rotation was stored before its access token was handed out"
    );
    let stored = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.expose_secret(), "rft.2");
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
    let vault = vault(&sdk).await;
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    vault
        .put_tokens(&t, &a, &tokens("act.old", "rft.keep", -1))
        .await
        .unwrap();
    let core = token_core(
        &sdk,
        store(&sdk).await,
        vault.clone(),
        Arc::new(NoRefreshToken),
    );
    let token = core.fresh_token(&t, &a, None).await.unwrap();
    assert_eq!(token.expose_secret(), "act.new");
    let stored = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.expose_secret(), "rft.keep");
    assert_eq!(stored.access_token.expose_secret(), "act.new");
}

#[tokio::test]
async fn a_rejected_refresh_token_marks_the_account_for_reauthorisation() {
    let sdk = sdk().await;
    let (vault, store) = (vault(&sdk).await, store(&sdk).await);
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    let mut acct = Account::new(t.clone(), a.clone());
    acct.health = AccountHealth::Active;
    store.put_account(&acct).await.unwrap();
    vault
        .put_tokens(&t, &a, &tokens("act.old", "rft.dead", -1))
        .await
        .unwrap();
    let refresher = Arc::new(RotatingRefresher::new(
        "rft.dead",
        "unused",
        Outcome::Reject,
    ));
    let core = token_core(&sdk, store.clone(), vault.clone(), refresher.clone());

    let err = core.fresh_token(&t, &a, None).await.unwrap_err();
    assert!(matches!(err, TokenError::NeedsReauth), "got {err:?}");
    assert!(err.needs_user());
    let stored = store.get_account(&t, &a).await.unwrap().unwrap();
    assert_eq!(stored.health, AccountHealth::NeedsReauth);
    assert_eq!(
        stored.health_reason.as_deref(),
        Some("refresh_token_rejected")
    );
    assert!(!err.to_string().contains("rft.dead"));
    assert!(!format!("{err:?}").contains("rft.dead"));
    // The lock was released: the next caller is not kept waiting.
    assert!(
        store
            .acquire_lock(&refresh_lock_name(&t, &a), "x", now(), now())
            .await
            .unwrap()
    );

    let unknown = core.fresh_token(&t, &account("nobody"), None).await;
    assert!(matches!(unknown, Err(TokenError::NotConnected)));
    assert_eq!(refresher.calls.load(Ordering::SeqCst), 1);
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
