//! Per-account TikTok tokens in a DynamoDB table under KMS envelope encryption (issue 13).
//!
//! One Secrets Manager secret per account costs $0.40 a month, about $400 at 1,000 accounts; an
//! item here costs a few cents a month in total, plus one KMS key ($1) and its requests.
//!
//! **Item** (table `TOKEN_TABLE_NAME`, key `pk` = `TOKEN#<tenant>#<account>`): `tenant`, `account`
//! (plain: operators list accounts, they are not secret), `v` (format, 1), `edk` (the data key as
//! KMS encrypted it), `ct` (`nonce || AES-256-GCM(token document) || tag`), `updated_ms`.
//!
//! **Why a table of its own** rather than items in the stage table: IAM can scope a grant to a
//! table but not to a key prefix inside one without leading-key conditions on every role, so
//! the functions that never touch tokens (webhooks, render submitter) cannot even read the
//! ciphertexts, and the table's backups and exports carry nothing else.
//!
//! **Binding.** Every data key is generated and unwrapped with the encryption context
//! `{purpose, tenant_id, account_id}`; KMS refuses to unwrap it under another account's
//! context, so a ciphertext copied onto another account's item does not decrypt. The AES-GCM
//! associated data names the same pair, which holds even where a KMS emulator is lax.
//!
//! **One data key per write, none cached.** A put is `GenerateDataKey` + `PutItem`, a get
//! `GetItem` + `Decrypt`. Caching unwrapped keys would save one KMS call ($0.03 per 10,000) per
//! read at the price of keeping key material in memory; nothing measured asks for it.
//!
//! **Migration.** [`DynamoTokenVault::with_legacy`] adds the old per-account secrets as a read
//! fallback: a miss in the table reads the secret and copies it into the table (only if the
//! item is still absent, so a concurrent refresh is never overwritten with the older pair).
//! Deleting the old secret is an operator's act: [`DynamoTokenVault::migrate_account`].

mod envelope;

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob as DdbBlob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob as KmsBlob;
use aws_sdk_kms::types::DataKeySpec;
use reelay_domain::ports::{Clock, SecretError, TokenSet, TokenVault};
use reelay_domain::{AccountId, TenantId};
use secrecy::SecretSlice;
use tracing::{info, warn};

use crate::secrets::{
    SecretDeletion, SecretsManagerTokenVault, TokenDocument, parse, token_document,
};

pub use envelope::EnvelopeError;

/// The only format written; a reader refuses others instead of guessing.
const FORMAT: &str = "1";
/// The `purpose` entry of the encryption context: a data key of this vault unwraps for nothing else.
pub const CONTEXT_PURPOSE: &str = "reelay-tiktok-token";

const ATTR_PK: &str = "pk";
const ATTR_TENANT: &str = "tenant";
const ATTR_ACCOUNT: &str = "account";
const ATTR_VERSION: &str = "v";
const ATTR_EDK: &str = "edk";
const ATTR_CT: &str = "ct";
const ATTR_UPDATED: &str = "updated_ms";

/// Account tokens in a DynamoDB table, encrypted under data keys from one KMS key. Cheap to
/// clone; build once per cold start. `Debug` shows names only.
#[derive(Debug, Clone)]
pub struct DynamoTokenVault {
    dynamo: aws_sdk_dynamodb::Client,
    kms: aws_sdk_kms::Client,
    table: String,
    key_id: String,
    legacy: Option<SecretsManagerTokenVault>,
}

/// What [`DynamoTokenVault::migrate_account`] did for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The tokens were copied from the old secret into the table by this call.
    pub copied: bool,
    /// The old secret existed and its deletion was requested.
    pub secret_deleted: bool,
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> SecretError {
    SecretError::Unavailable(Box::new(e))
}

impl DynamoTokenVault {
    /// `key_id`: the KMS key's id, ARN or alias; the same key must be named for `Decrypt`, so an
    /// item written under any other key is refused rather than unwrapped with it.
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        kms: aws_sdk_kms::Client,
        table: impl Into<String>,
        key_id: impl Into<String>,
    ) -> Self {
        Self {
            dynamo,
            kms,
            table: table.into(),
            key_id: key_id.into(),
            legacy: None,
        }
    }

    /// From one SDK config: the table and key by name.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: &str, key_id: &str) -> Self {
        Self::new(
            aws_sdk_dynamodb::Client::new(sdk),
            aws_sdk_kms::Client::new(sdk),
            table,
            key_id,
        )
    }

    /// From the Lambda environment: `TOKEN_TABLE_NAME`, `TOKEN_KEY_ID`, and while migrating
    /// `TIKTOK_TOKEN_SECRET_PREFIX` (the old secrets, read on a miss).
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, crate::ConfigError> {
        let vault = Self::from_sdk(
            sdk,
            &crate::config::env_var("TOKEN_TABLE_NAME")?,
            &crate::config::env_var("TOKEN_KEY_ID")?,
        );
        Ok(vault.with_legacy_prefix(
            sdk,
            crate::config::env_var_opt("TIKTOK_TOKEN_SECRET_PREFIX"),
        ))
    }

    /// Reads the old per-account secrets on a miss and copies them in (see the module doc).
    pub fn with_legacy(mut self, legacy: SecretsManagerTokenVault) -> Self {
        self.legacy = Some(legacy);
        self
    }

    /// [`Self::with_legacy`] for the secrets under `prefix`, if one is configured.
    pub fn with_legacy_prefix(self, sdk: &aws_config::SdkConfig, prefix: Option<String>) -> Self {
        match prefix {
            Some(p) => self.with_legacy(SecretsManagerTokenVault::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                p,
            )),
            None => self,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn legacy(&self) -> Option<&SecretsManagerTokenVault> {
        self.legacy.as_ref()
    }

    /// The item key of one account.
    pub fn item_key(tenant: &TenantId, account: &AccountId) -> String {
        format!("TOKEN#{tenant}#{account}")
    }

    /// What KMS binds every data key to: logged by CloudTrail in the clear, so ids only.
    fn context(tenant: &TenantId, account: &AccountId) -> HashMap<String, String> {
        HashMap::from([
            ("purpose".to_owned(), CONTEXT_PURPOSE.to_owned()),
            ("tenant_id".to_owned(), tenant.to_string()),
            ("account_id".to_owned(), account.to_string()),
        ])
    }

    /// The encrypted item for `tokens`: a fresh data key, the document sealed under it.
    async fn seal(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        tokens: &TokenSet,
    ) -> Result<HashMap<String, AttributeValue>, SecretError> {
        let mut out = self
            .kms
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(Self::context(tenant, account)))
            .send()
            .await
            .map_err(unavailable)?;
        // Moved out at once into a zeroizing secret; the SDK's Debug already redacts it.
        let data_key = SecretSlice::from(
            out.plaintext
                .take()
                .ok_or_else(|| SecretError::Unavailable("KMS returned no data key".into()))?
                .into_inner(),
        );
        let edk = out
            .ciphertext_blob
            .take()
            .ok_or_else(|| SecretError::Unavailable("KMS returned no encrypted data key".into()))?;
        let ct = envelope::seal(
            &data_key,
            &envelope::associated_data(tenant, account),
            &token_document(tokens),
        )
        .map_err(unavailable)?;
        drop(data_key);
        let now = crate::SystemClock.now().as_millis();
        Ok(HashMap::from([
            (
                ATTR_PK.to_owned(),
                AttributeValue::S(Self::item_key(tenant, account)),
            ),
            (
                ATTR_TENANT.to_owned(),
                AttributeValue::S(tenant.to_string()),
            ),
            (
                ATTR_ACCOUNT.to_owned(),
                AttributeValue::S(account.to_string()),
            ),
            (
                ATTR_VERSION.to_owned(),
                AttributeValue::N(FORMAT.to_owned()),
            ),
            (
                ATTR_EDK.to_owned(),
                AttributeValue::B(DdbBlob::new(edk.into_inner())),
            ),
            (ATTR_CT.to_owned(), AttributeValue::B(DdbBlob::new(ct))),
            (ATTR_UPDATED.to_owned(), AttributeValue::N(now.to_string())),
        ]))
    }

    /// The tokens of a stored item. A mismatched context, another key, altered bytes or an
    /// unknown format are `Malformed`: the item cannot be this account's tokens.
    async fn open(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<TokenSet, SecretError> {
        let blob = |name: &str| match item.get(name) {
            Some(AttributeValue::B(b)) => Ok(b.as_ref()),
            _ => Err(SecretError::Malformed),
        };
        if !matches!(item.get(ATTR_VERSION), Some(AttributeValue::N(v)) if v == FORMAT) {
            return Err(SecretError::Malformed);
        }
        let (edk, ct) = (blob(ATTR_EDK)?, blob(ATTR_CT)?);
        let decrypted = self
            .kms
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(KmsBlob::new(edk))
            .set_encryption_context(Some(Self::context(tenant, account)))
            .send()
            .await;
        let mut out = match decrypted {
            Ok(out) => out,
            Err(e) => {
                let refused = e.as_service_error().is_some_and(|s| {
                    s.is_invalid_ciphertext_exception() || s.is_incorrect_key_exception()
                });
                if refused {
                    warn!(tenant_id = %tenant, account_id = %account, "token item's data key does not unwrap for this account");
                    return Err(SecretError::Malformed);
                }
                return Err(unavailable(e));
            }
        };
        let data_key = SecretSlice::from(
            out.plaintext
                .take()
                .ok_or_else(|| SecretError::Unavailable("KMS returned no plaintext".into()))?
                .into_inner(),
        );
        let doc = envelope::open(&data_key, &envelope::associated_data(tenant, account), ct)
            .map_err(|e| {
                warn!(tenant_id = %tenant, account_id = %account, error = %e, "token item does not open");
                SecretError::Malformed
            })?;
        let doc: TokenDocument = parse(&doc)?;
        Ok(doc.into())
    }

    /// The table's tokens for the account, without the legacy fallback.
    pub async fn get_stored(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<TokenSet>, SecretError> {
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key(ATTR_PK, AttributeValue::S(Self::item_key(tenant, account)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item {
            None => Ok(None),
            Some(item) => self.open(tenant, account, &item).await.map(Some),
        }
    }

    /// Writes `tokens` only while the account has no item: a migration copy must never replace
    /// a pair a refresh stored meanwhile. `false` if an item was already there.
    async fn put_if_absent(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        tokens: &TokenSet,
    ) -> Result<bool, SecretError> {
        let item = self.seal(tenant, account, tokens).await?;
        let put = self
            .dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// A miss in the table: the old secret, copied in if found. Returns what the table holds
    /// afterwards (the copy, or a pair stored concurrently).
    async fn migrate_on_read(
        &self,
        legacy: &SecretsManagerTokenVault,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<TokenSet>, SecretError> {
        let Some(old) = legacy.get_tokens(tenant, account).await? else {
            return Ok(None);
        };
        if self.put_if_absent(tenant, account, &old).await? {
            info!(tenant_id = %tenant, account_id = %account, "account tokens migrated from their secret into the token table");
            return Ok(Some(old));
        }
        // Someone stored a pair between our read and our write: theirs is newer.
        self.get_stored(tenant, account).await
    }

    /// Moves one account off its old secret: copies the tokens into the table if they are not
    /// there yet, reads them back through KMS, and only then deletes the secret as `deletion`
    /// says (a recovery window unless the operator asks for more). Needs [`Self::with_legacy`].
    pub async fn migrate_account(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        deletion: Option<SecretDeletion>,
    ) -> Result<Migrated, SecretError> {
        let legacy = self.legacy.as_ref().ok_or_else(|| {
            SecretError::Unavailable("no legacy token secret prefix configured".into())
        })?;
        let mut copied = false;
        if self.get_stored(tenant, account).await?.is_none() {
            let Some(old) = legacy.get_tokens(tenant, account).await? else {
                return Err(SecretError::NotFound);
            };
            copied = self.put_if_absent(tenant, account, &old).await?;
        }
        // The secret goes only once the table's copy has been read back whole.
        if self.get_stored(tenant, account).await?.is_none() {
            return Err(SecretError::NotFound);
        }
        let secret_deleted = match deletion {
            Some(how) => legacy.delete_tokens(tenant, account, how).await?,
            None => false,
        };
        info!(tenant_id = %tenant, account_id = %account, copied, secret_deleted, "account token migration step done");
        Ok(Migrated {
            copied,
            secret_deleted,
        })
    }
}

impl TokenVault for DynamoTokenVault {
    async fn get_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<TokenSet>, SecretError> {
        match (self.get_stored(tenant, account).await?, &self.legacy) {
            (Some(tokens), _) => Ok(Some(tokens)),
            (None, Some(legacy)) => self.migrate_on_read(legacy, tenant, account).await,
            (None, None) => Ok(None),
        }
    }

    /// A plain overwrite: `Core::fresh_token` calls this under the account's refresh lock with
    /// the rotated pair, before the new access token is used.
    async fn put_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        tokens: &TokenSet,
    ) -> Result<(), SecretError> {
        tokens.check_storable()?;
        let item = self.seal(tenant, account, tokens).await?;
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        info!(tenant_id = %tenant, account_id = %account, "account tokens stored");
        Ok(())
    }

    /// Deletes the table's item. An old per-account secret (a stage still migrating) is left to
    /// `reelay-admin tokens migrate --delete-old`: the functions may not delete secrets, and the
    /// pair in it was revoked at TikTok with the account.
    async fn remove_tokens(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<(), SecretError> {
        self.dynamo
            .delete_item()
            .table_name(&self.table)
            .key(ATTR_PK, AttributeValue::S(Self::item_key(tenant, account)))
            .send()
            .await
            .map_err(unavailable)?;
        info!(tenant_id = %tenant, account_id = %account, "account tokens deleted");
        Ok(())
    }
}
