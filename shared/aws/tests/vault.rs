//! The KMS-envelope token vault (`DynamoTokenVault`) against the local endpoint: the template's
//! token table and key under a fresh stage per test, the old per-account secrets as the
//! migration source, and the domain's token refresh over it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{account, now, sdk, tenant, token_core, token_vault};
use reelay_aws::{DynamoTokenVault, Migrated, SecretDeletion};
use reelay_domain::ports::{RefreshError, SecretError, TokenRefresher, TokenSet, TokenVault};
use reelay_domain::{AccountId, TenantId};
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

type Item = HashMap<String, AttributeValue>;

async fn raw_item(
    sdk: &aws_config::SdkConfig,
    vault: &DynamoTokenVault,
    t: &TenantId,
    a: &AccountId,
) -> Option<Item> {
    aws_sdk_dynamodb::Client::new(sdk)
        .get_item()
        .table_name(vault.table())
        .key("pk", AttributeValue::S(DynamoTokenVault::item_key(t, a)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

async fn put_raw(sdk: &aws_config::SdkConfig, vault: &DynamoTokenVault, item: Item) {
    aws_sdk_dynamodb::Client::new(sdk)
        .put_item()
        .table_name(vault.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

fn bytes(item: &Item, name: &str) -> Vec<u8> {
    match item.get(name) {
        Some(AttributeValue::B(b)) => b.as_ref().to_vec(),
        other => panic!("{name} is not binary: {other:?}"),
    }
}

#[tokio::test]
async fn tokens_round_trip_encrypted_and_an_empty_refresh_token_is_refused() {
    let sdk = sdk().await;
    let vault = token_vault(&sdk).await;
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    assert!(vault.get_tokens(&t, &a).await.unwrap().is_none());
    vault
        .put_tokens(&t, &a, &tokens("act.one-9f8e", "rft.one-7d6c", 3600))
        .await
        .unwrap();
    vault
        .put_tokens(&t, &a, &tokens("act.two-5b4a", "rft.two-3928", 3600))
        .await
        .unwrap();
    let stored = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(stored.access_token.expose_secret(), "act.two-5b4a");
    assert_eq!(stored.refresh_token.expose_secret(), "rft.two-3928");
    assert_eq!(stored.open_id, "open-1");
    assert_eq!(stored.scopes, vec!["video.publish".to_owned()]);

    // At rest: an encrypted data key and a sealed body, no token and no document in the clear.
    let item = raw_item(&sdk, &vault, &t, &a).await.unwrap();
    let text = format!("{item:?}");
    for leak in [
        "act.two",
        "rft.two",
        "accessToken",
        "refreshToken",
        "open-1",
    ] {
        assert!(!text.contains(leak), "{leak} readable in the item");
    }
    assert!(
        bytes(&item, "edk").len() > 32,
        "an encrypted data key, not a key"
    );
    assert_eq!(item.get("v"), Some(&AttributeValue::N("1".into())));
    assert!(!format!("{vault:?} {stored:?}").contains("rft.two"));

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
        "rft.two-3928",
        "nothing was stored"
    );
    assert!(
        vault
            .get_tokens(&t, &account("acct_2"))
            .await
            .unwrap()
            .is_none()
    );

    // A disconnect deletes the item; deleting what is not there is no error.
    vault.remove_tokens(&t, &a).await.unwrap();
    assert!(vault.get_tokens(&t, &a).await.unwrap().is_none());
    assert!(raw_item(&sdk, &vault, &t, &a).await.is_none());
    vault.remove_tokens(&t, &a).await.unwrap();
}

#[tokio::test]
async fn a_ciphertext_copied_onto_another_accounts_item_does_not_decrypt() {
    let sdk = sdk().await;
    let vault = token_vault(&sdk).await;
    let t = tenant("tenant_a");
    let (a, b) = (account("acct_a"), account("acct_b"));
    let other_tenant = tenant("tenant_b");
    vault
        .put_tokens(&t, &a, &tokens("act.a", "rft.a", 3600))
        .await
        .unwrap();
    vault
        .put_tokens(&t, &b, &tokens("act.b", "rft.b", 3600))
        .await
        .unwrap();
    let item_a = raw_item(&sdk, &vault, &t, &a).await.unwrap();
    let item_b = raw_item(&sdk, &vault, &t, &b).await.unwrap();

    // A's whole envelope (data key and body) under B's key: KMS refuses B's context.
    let mut moved = item_a.clone();
    moved.insert(
        "pk".into(),
        AttributeValue::S(DynamoTokenVault::item_key(&t, &b)),
    );
    moved.insert("account".into(), AttributeValue::S(b.to_string()));
    put_raw(&sdk, &vault, moved).await;
    let err = vault.get_tokens(&t, &b).await.unwrap_err();
    assert!(matches!(err, SecretError::Malformed), "got {err:?}");

    // Same account id under another tenant: refused alike.
    let mut moved = item_a.clone();
    moved.insert(
        "pk".into(),
        AttributeValue::S(DynamoTokenVault::item_key(&other_tenant, &a)),
    );
    moved.insert("tenant".into(), AttributeValue::S(other_tenant.to_string()));
    put_raw(&sdk, &vault, moved).await;
    assert!(matches!(
        vault.get_tokens(&other_tenant, &a).await,
        Err(SecretError::Malformed)
    ));

    // Only A's body, with B's own valid data key: KMS unwraps, AES-GCM's associated data refuses.
    let mut spliced = item_b.clone();
    spliced.insert("ct".into(), item_a.get("ct").unwrap().clone());
    put_raw(&sdk, &vault, spliced).await;
    assert!(matches!(
        vault.get_tokens(&t, &b).await,
        Err(SecretError::Malformed)
    ));

    // An altered byte of the body, and an unknown format, are refused too.
    let mut altered = item_a.clone();
    let mut ct = bytes(&item_a, "ct");
    let last = ct.len() - 1;
    ct[last] ^= 1;
    altered.insert("ct".into(), AttributeValue::B(ct.into()));
    put_raw(&sdk, &vault, altered).await;
    assert!(matches!(
        vault.get_tokens(&t, &a).await,
        Err(SecretError::Malformed)
    ));
    let mut future = item_a.clone();
    future.insert("v".into(), AttributeValue::N("2".into()));
    put_raw(&sdk, &vault, future).await;
    assert!(matches!(
        vault.get_tokens(&t, &a).await,
        Err(SecretError::Malformed)
    ));

    // The legitimate items still open after all that.
    put_raw(&sdk, &vault, item_a).await;
    let back = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(back.refresh_token.expose_secret(), "rft.a");
}

#[tokio::test]
async fn a_token_kept_as_an_old_secret_moves_into_the_table_and_survives_the_secrets_deletion() {
    let sdk = sdk().await;
    let vault = token_vault(&sdk).await;
    let legacy = vault.legacy().unwrap().clone();
    let (t, a) = (tenant("tenant_m"), account("acct_old"));
    legacy
        .put_tokens(&t, &a, &tokens("act.legacy", "rft.legacy", 3600))
        .await
        .unwrap();
    assert!(vault.get_stored(&t, &a).await.unwrap().is_none());
    assert_eq!(
        legacy.list_accounts().await.unwrap(),
        vec![(t.clone(), a.clone())]
    );

    // Read through the new vault: found in the old secret, copied into the table.
    let read = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(read.refresh_token.expose_secret(), "rft.legacy");
    let copied = vault.get_stored(&t, &a).await.unwrap().unwrap();
    assert_eq!(copied.access_token.expose_secret(), "act.legacy");
    assert!(raw_item(&sdk, &vault, &t, &a).await.is_some());

    // The deliberate step: the table's copy is read back, then the secret is deleted (with a
    // recovery window: the default).
    let done = vault
        .migrate_account(&t, &a, Some(SecretDeletion::default()))
        .await
        .unwrap();
    assert_eq!(
        done,
        Migrated {
            copied: false,
            secret_deleted: true
        }
    );
    assert!(
        legacy.list_accounts().await.unwrap().is_empty(),
        "nothing left to migrate"
    );
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    assert!(
        secrets
            .get_secret_value()
            .secret_id(legacy.secret_name(&t, &a))
            .send()
            .await
            .is_err(),
        "the old secret is no longer readable"
    );
    let after = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(after.refresh_token.expose_secret(), "rft.legacy");
    // A second run finds nothing to copy and no secret to delete.
    let again = vault
        .migrate_account(&t, &a, Some(SecretDeletion::default()))
        .await
        .unwrap();
    assert_eq!(
        again,
        Migrated {
            copied: false,
            secret_deleted: false
        }
    );
}

#[tokio::test]
async fn migrating_never_replaces_a_pair_the_table_already_holds() {
    let sdk = sdk().await;
    let vault = token_vault(&sdk).await;
    let legacy = vault.legacy().unwrap().clone();
    let (t, a, b) = (
        tenant("tenant_m"),
        account("acct_rotated"),
        account("acct_copy"),
    );
    // The old secret still holds a refresh token TikTok has since rotated; the table the new one.
    legacy
        .put_tokens(&t, &a, &tokens("act.stale", "rft.stale", 3600))
        .await
        .unwrap();
    vault
        .put_tokens(&t, &a, &tokens("act.new", "rft.new", 3600))
        .await
        .unwrap();
    assert_eq!(
        vault
            .get_tokens(&t, &a)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "rft.new",
        "the table is read first"
    );
    let done = vault.migrate_account(&t, &a, None).await.unwrap();
    assert_eq!(
        done,
        Migrated {
            copied: false,
            secret_deleted: false
        },
        "no deletion unless asked"
    );
    assert_eq!(
        vault
            .get_stored(&t, &a)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "rft.new"
    );
    assert_eq!(
        legacy.list_accounts().await.unwrap().len(),
        1,
        "the secret is still there"
    );

    // An account only the secret knows is copied by the explicit step too.
    legacy
        .put_tokens(&t, &b, &tokens("act.b", "rft.b", 3600))
        .await
        .unwrap();
    let done = vault
        .migrate_account(&t, &b, Some(SecretDeletion::RecoveryWindow(7)))
        .await
        .unwrap();
    assert_eq!(
        done,
        Migrated {
            copied: true,
            secret_deleted: true
        }
    );
    assert_eq!(
        vault
            .get_stored(&t, &b)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "rft.b"
    );
    // Out-of-range windows are refused before anything is deleted; unknown accounts are NotFound.
    assert!(
        vault
            .migrate_account(&t, &a, Some(SecretDeletion::RecoveryWindow(3)))
            .await
            .is_err()
    );
    assert_eq!(legacy.list_accounts().await.unwrap().len(), 1);
    assert!(matches!(
        vault.migrate_account(&t, &account("nobody"), None).await,
        Err(SecretError::NotFound)
    ));
    // Without a legacy source the vault only knows its table.
    let plain = DynamoTokenVault::from_sdk(&sdk, vault.table(), "unused");
    assert!(plain.legacy().is_none());
    assert!(matches!(
        plain.migrate_account(&t, &a, None).await,
        Err(SecretError::Unavailable(_))
    ));
}

#[tokio::test]
async fn an_unusable_key_or_table_is_unavailable_not_absent() {
    let sdk = sdk().await;
    let vault = token_vault(&sdk).await;
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    vault
        .put_tokens(&t, &a, &tokens("act.1", "rft.1", 3600))
        .await
        .unwrap();
    // A key that does not exist: nothing can be written.
    let missing_key = DynamoTokenVault::from_sdk(
        &sdk,
        vault.table(),
        "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000",
    );
    assert!(matches!(
        missing_key
            .put_tokens(&t, &a, &tokens("act.2", "rft.2", 3600))
            .await,
        Err(SecretError::Unavailable(_))
    ));
    // Another existing key: the item was not written under it, so it must not open. (AWS says
    // IncorrectKeyException; MiniStack unwraps with the named key's material regardless, and
    // AES-GCM refuses the resulting key: Malformed either way.)
    let other = aws_sdk_kms::Client::new(&sdk)
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let wrong_key = DynamoTokenVault::from_sdk(&sdk, vault.table(), &other);
    assert!(matches!(
        wrong_key.get_tokens(&t, &a).await,
        Err(SecretError::Malformed)
    ));
    let no_table = DynamoTokenVault::from_sdk(&sdk, "reelay-no-such-table", "unused");
    let err = no_table.get_tokens(&t, &a).await.unwrap_err();
    assert!(matches!(err, SecretError::Unavailable(_)), "{err:?}");
    // The good vault is untouched by the failed write.
    let kept = vault.get_tokens(&t, &a).await.unwrap().unwrap();
    assert_eq!(kept.refresh_token.expose_secret(), "rft.1");
}

/// TikTok's token endpoint in miniature: rotates the refresh token, the old one stops working.
struct RotatingRefresher {
    calls: AtomicUsize,
    current: std::sync::Mutex<String>,
}

impl TokenRefresher for RotatingRefresher {
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, RefreshError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut current = self.current.lock().unwrap();
        if refresh_token.expose_secret() != current.as_str() {
            return Err(RefreshError::Rejected);
        }
        *current = "rft.new".into();
        Ok(tokens("act.new", "rft.new", 7200))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_tasks_racing_an_expired_migrated_token_make_one_refresh_and_store_the_rotation() {
    let sdk = sdk().await;
    let vault = token_vault(&sdk).await;
    let (t, a) = (tenant("tenant_a"), account("acct_1"));
    // Still an old secret: the first readers migrate it while they race to refresh it.
    vault
        .legacy()
        .unwrap()
        .put_tokens(&t, &a, &tokens("act.old", "rft.old", -1))
        .await
        .unwrap();
    let refresher = Arc::new(RotatingRefresher {
        calls: AtomicUsize::new(0),
        current: std::sync::Mutex::new("rft.old".into()),
    });
    let core = Arc::new(token_core(
        &sdk,
        common::store(&sdk).await,
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
    for r in futures::future::join_all(tasks).await {
        assert_eq!(r.unwrap().unwrap(), "act.new");
    }
    assert_eq!(
        refresher.calls.load(Ordering::SeqCst),
        1,
        "exactly one refresh"
    );
    let stored = vault.get_stored(&t, &a).await.unwrap().unwrap();
    assert_eq!(
        stored.refresh_token.expose_secret(),
        "rft.new",
        "the rotation is in the table"
    );
    // Late readers see the rotation, never the stale secret copied back over it.
    assert_eq!(
        vault
            .get_tokens(&t, &a)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "rft.new"
    );
}
