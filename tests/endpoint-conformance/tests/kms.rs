//! The KMS behaviour the token vault (`reelay_aws::vault`) relies on: data keys for AES-256, and
//! an encryption context that binds each data key to its tenant and account. What the local
//! endpoint does not check (see ../KMS.md) is not asserted here: the vault's AES-GCM layer
//! covers it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use aws_sdk_kms::types::DataKeySpec;
use endpoint_conformance::{Service, sdk_config};

fn context(tenant: &str, account: &str) -> HashMap<String, String> {
    HashMap::from([
        ("purpose".to_owned(), "reelay-tiktok-token".to_owned()),
        ("tenant_id".to_owned(), tenant.to_owned()),
        ("account_id".to_owned(), account.to_owned()),
    ])
}

#[tokio::test]
async fn a_data_key_unwraps_under_its_own_encryption_context_only() {
    let config = sdk_config(Service::Kms).await;
    let kms = aws_sdk_kms::Client::new(&config);
    let key_id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let generated = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .set_encryption_context(Some(context("t1", "a1")))
        .send()
        .await
        .unwrap();
    let plain = generated.plaintext().unwrap().as_ref().to_vec();
    assert_eq!(plain.len(), 32, "AES_256");
    let blob = generated.ciphertext_blob().unwrap().clone();
    assert!(
        !blob.as_ref().windows(32).any(|w| w == plain.as_slice()),
        "the encrypted data key does not contain the data key"
    );
    let decrypt = |c: Option<HashMap<String, String>>| {
        kms.decrypt()
            .key_id(&key_id)
            .ciphertext_blob(blob.clone())
            .set_encryption_context(c)
            .send()
    };
    let same = decrypt(Some(context("t1", "a1"))).await.unwrap();
    assert_eq!(same.plaintext().unwrap().as_ref(), plain.as_slice());
    let mut partial = context("t1", "a1");
    partial.remove("purpose");
    for wrong in [
        Some(context("t1", "a2")),
        Some(context("t2", "a1")),
        Some(partial),
        None,
    ] {
        let err = decrypt(wrong.clone()).await.unwrap_err();
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_invalid_ciphertext_exception()),
            "{wrong:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_key_is_not_found() {
    let config = sdk_config(Service::Kms).await;
    let err = aws_sdk_kms::Client::new(&config)
        .generate_data_key()
        .key_id("00000000-0000-0000-0000-000000000000")
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_not_found_exception()),
        "{err:?}"
    );
}
