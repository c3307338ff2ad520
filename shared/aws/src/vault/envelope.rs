//! The local half of envelope encryption: AES-256-GCM under a data key that KMS issued. KMS never
//! sees a token, and the table never holds a usable key.
//!
//! The associated data names the format, tenant and account, so a sealed body moved to another
//! account's item fails here even if its encrypted data key came along and KMS were to unwrap it.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use reelay_domain::{AccountId, TenantId};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use thiserror::Error;

/// AES-GCM's standard nonce; random per seal (one seal per fresh data key, so no reuse).
pub(crate) const NONCE_LEN: usize = 12;
/// AES-256: what `GenerateDataKey` with `KeySpec=AES_256` returns.
pub(crate) const DATA_KEY_LEN: usize = 32;

/// Never carries key or plaintext material: only which step failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("data key is not {DATA_KEY_LEN} bytes")]
    KeyLength,
    #[error("sealed body is shorter than a nonce and a tag")]
    Truncated,
    /// Wrong key, wrong tenant/account, or altered bytes: AES-GCM cannot tell which, by design.
    #[error("sealed body does not authenticate")]
    Authentication,
    #[error("opened body is not UTF-8")]
    NotUtf8,
}

/// Binds a body to its item: format version, tenant and account (`\0` cannot occur in either id).
pub(crate) fn associated_data(tenant: &TenantId, account: &AccountId) -> Vec<u8> {
    format!("reelay-token-v1\0{tenant}\0{account}").into_bytes()
}

fn cipher(data_key: &SecretSlice<u8>) -> Result<Aes256Gcm, EnvelopeError> {
    let key = data_key.expose_secret();
    if key.len() != DATA_KEY_LEN {
        return Err(EnvelopeError::KeyLength);
    }
    Aes256Gcm::new_from_slice(key).map_err(|_| EnvelopeError::KeyLength)
}

/// `nonce || ciphertext || tag` of `plaintext` under `data_key`, authenticated with `aad`.
pub(crate) fn seal(
    data_key: &SecretSlice<u8>,
    aad: &[u8],
    plaintext: &SecretString,
) -> Result<Vec<u8>, EnvelopeError> {
    let cipher = cipher(data_key)?;
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext.expose_secret().as_bytes(),
                aad,
            },
        )
        .map_err(|_| EnvelopeError::Authentication)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The plaintext of a [`seal`]ed body; wrapped at once, since it is a token document.
pub(crate) fn open(
    data_key: &SecretSlice<u8>,
    aad: &[u8],
    sealed: &[u8],
) -> Result<SecretString, EnvelopeError> {
    let cipher = cipher(data_key)?;
    // 16 bytes of tag follow the nonce even for an empty plaintext.
    if sealed.len() < NONCE_LEN + 16 {
        return Err(EnvelopeError::Truncated);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let plain = cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| EnvelopeError::Authentication)?;
    // Into a secret before anything can fail: a `FromUtf8Error` would carry the bytes.
    let plain = SecretSlice::from(plain);
    let text = std::str::from_utf8(plain.expose_secret()).map_err(|_| EnvelopeError::NotUtf8)?;
    Ok(SecretString::from(text.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretSlice<u8> {
        SecretSlice::from(vec![byte; DATA_KEY_LEN])
    }

    fn ids(t: &str, a: &str) -> Vec<u8> {
        associated_data(&TenantId::parse(t).unwrap(), &AccountId::parse(a).unwrap())
    }

    #[test]
    fn a_sealed_body_opens_only_under_its_key_and_its_tenant_and_account() {
        let doc = SecretString::from(r#"{"refreshToken":"rft.secret"}"#);
        let sealed = seal(&key(7), &ids("t1", "a1"), &doc).unwrap();
        assert!(
            !sealed.windows(10).any(|w| w == b"rft.secret"),
            "the body is encrypted"
        );
        let opened = open(&key(7), &ids("t1", "a1"), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), doc.expose_secret());

        // Another account's item, another tenant, another key: all refused alike.
        for (k, aad) in [
            (key(7), ids("t1", "a2")),
            (key(7), ids("t2", "a1")),
            (key(8), ids("t1", "a1")),
        ] {
            assert_eq!(
                open(&k, &aad, &sealed).unwrap_err(),
                EnvelopeError::Authentication
            );
        }
    }

    #[test]
    fn any_altered_byte_and_a_truncated_body_are_refused() {
        let doc = SecretString::from("{}");
        let sealed = seal(&key(1), b"aad", &doc).unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                open(&key(1), b"aad", &bad).unwrap_err(),
                EnvelopeError::Authentication,
                "byte {i}"
            );
        }
        assert_eq!(
            open(&key(1), b"aad", &sealed[..NONCE_LEN + 15]).unwrap_err(),
            EnvelopeError::Truncated
        );
    }

    #[test]
    fn two_seals_of_one_document_differ_and_short_keys_are_refused() {
        let doc = SecretString::from("same");
        let (a, b) = (
            seal(&key(3), b"x", &doc).unwrap(),
            seal(&key(3), b"x", &doc).unwrap(),
        );
        assert_ne!(a, b, "a fresh nonce per seal");
        let short = SecretSlice::from(vec![0u8; 16]);
        assert_eq!(
            seal(&short, b"x", &doc).unwrap_err(),
            EnvelopeError::KeyLength
        );
    }

    #[test]
    fn ids_cannot_be_shifted_between_tenant_and_account() {
        // TenantId/AccountId admit no `\0`, so the boundary is unambiguous.
        assert_ne!(ids("ab", "c"), ids("a", "bc"));
    }
}
