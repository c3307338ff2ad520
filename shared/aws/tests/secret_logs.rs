//! Secrets never reach logs: every adapter that touches a secret runs under a TRACE subscriber
//! (ours and the SDK's), and the captured output is searched for the values. Its own test binary,
//! because a tracing subscriber is process-global.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{account, now, sdk, tenant, token_core};
use reelay_aws::{SecretCache, SecretsManagerTokenVault};
use reelay_domain::ports::{RefreshError, TokenRefresher, TokenSet, TokenVault};
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const OLD_ACCESS: &str = "act.OLD-SECRET-1f2e3d";
const OLD_REFRESH: &str = "rft.OLD-SECRET-4c5b6a";
const NEW_ACCESS: &str = "act.NEW-SECRET-7a8b9c";
const NEW_REFRESH: &str = "rft.NEW-SECRET-0d1e2f";
const NEWER_ACCESS: &str = "act.NEWER-SECRET-5e6f70";
const NEWER_REFRESH: &str = "rft.NEWER-SECRET-8a9b0c";
const API_KEY: &str = "sk_live_SECRET-3a4b5c";
const VAULT_ACCESS: &str = "act.VAULT-SECRET-91a2b3";
const VAULT_REFRESH: &str = "rft.VAULT-SECRET-c4d5e6";
const VAULT_NEW_ACCESS: &str = "act.VAULT-SECRET-f7a8b9";
const VAULT_NEW_REFRESH: &str = "rft.VAULT-SECRET-0c1d2e";

fn set(access: &str, refresh: &str, valid_secs: i64) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(access),
        access_expires_at: reelay_domain::UtcTime::from_millis(
            now().as_millis() + valid_secs * 1000,
        ),
        refresh_token: SecretString::from(refresh),
        refresh_expires_at: now().plus(Duration::from_secs(86_400)),
        open_id: "open-1".into(),
        scopes: vec![],
    }
}

struct Refresher;

impl TokenRefresher for Refresher {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, RefreshError> {
        match refresh_token.expose_secret() {
            OLD_REFRESH => Ok(set(NEW_ACCESS, NEW_REFRESH, 7200)),
            NEW_REFRESH => Ok(set(NEWER_ACCESS, NEWER_REFRESH, 7200)),
            VAULT_REFRESH => Ok(set(VAULT_NEW_ACCESS, VAULT_NEW_REFRESH, 7200)),
            _ => Err(RefreshError::Rejected),
        }
    }
}

#[tokio::test]
async fn no_secret_value_appears_in_any_log_line_even_at_trace() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let sdk = sdk().await;
    let prefix = common::token_prefix(&sdk).await;
    let vault = SecretsManagerTokenVault::new(aws_sdk_secretsmanager::Client::new(&sdk), prefix);
    let core = token_core(
        &sdk,
        common::store(&sdk).await,
        vault.clone(),
        Arc::new(Refresher),
    );
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    vault
        .put_tokens(&t, &a, &set(OLD_ACCESS, OLD_REFRESH, -1))
        .await
        .unwrap();
    let token = core.fresh_token(&t, &a, None).await.unwrap();
    assert_eq!(token.expose_secret(), NEW_ACCESS);
    // TikTok refuses the new token at once: refreshed again, through the same logs.
    let refused = core.fresh_token(&t, &a, Some(&token)).await.unwrap();
    assert_eq!(refused.expose_secret(), NEWER_ACCESS);
    assert!(
        vault
            .put_tokens(&t, &a, &set(NEW_ACCESS, "", 60))
            .await
            .is_err()
    );

    let stack = common::provision(&sdk, reelay_template::ResourceKinds::SECRETS, None).await;
    let id = stack.secret("SsembleSecret").unwrap().name.clone();
    aws_sdk_secretsmanager::Client::new(&sdk)
        .put_secret_value()
        .secret_id(&id)
        .secret_string(format!("{{\"apiKey\":\"{API_KEY}\"}}"))
        .send()
        .await
        .unwrap();
    let cache = SecretCache::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        Duration::from_secs(60),
    );
    let ssemble = cache.ssemble(&id).await.unwrap();
    tracing::info!(secret = ?ssemble, tokens = ?vault.get_tokens(&t, &a).await.unwrap(), "debug output of the secret types");

    // The KMS-envelope vault, from an old secret through a migration and a refresh.
    let tokens = common::token_vault(&sdk).await;
    let (t2, a2) = (tenant("tenant_v"), account("acct_v"));
    tokens
        .legacy()
        .unwrap()
        .put_tokens(&t2, &a2, &set(VAULT_ACCESS, VAULT_REFRESH, -1))
        .await
        .unwrap();
    let core = token_core(
        &sdk,
        common::store(&sdk).await,
        tokens.clone(),
        Arc::new(Refresher),
    );
    let token = core.fresh_token(&t2, &a2, None).await.unwrap();
    assert_eq!(token.expose_secret(), VAULT_NEW_ACCESS);
    let back = tokens.get_tokens(&t2, &a2).await.unwrap().unwrap();
    tracing::info!(vault = ?tokens, tokens = ?back, "debug output of the vault");

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("account tokens migrated") && logs.contains("GenerateDataKey"),
        "the vault's and KMS's trace lines are captured"
    );
    // KMS's answers carry the plaintext data key as `Plaintext`: never logged, not even at TRACE.
    assert!(
        !logs.contains("\"Plaintext\""),
        "a KMS plaintext reached the logs"
    );
    assert!(logs.contains("access token refreshed"), "the capture works");
    assert!(logs.contains("REDACTED"), "secret types print as redacted");
    for secret in [
        OLD_ACCESS,
        OLD_REFRESH,
        NEW_ACCESS,
        NEW_REFRESH,
        NEWER_ACCESS,
        NEWER_REFRESH,
        API_KEY,
        VAULT_ACCESS,
        VAULT_REFRESH,
        VAULT_NEW_ACCESS,
        VAULT_NEW_REFRESH,
    ] {
        let tail = secret.rsplit('-').next().unwrap();
        assert!(
            !logs.contains(secret) && !logs.contains(tail),
            "{secret} leaked into the logs"
        );
    }
}
