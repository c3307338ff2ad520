#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reelay_tiktok::{SignatureError, sign_webhook, verify_signature};
use secrecy::SecretString;

const BODY: &[u8] = br#"{"client_key":"k","event":"post.publish.complete","create_time":1700000000,"user_openid":"u","content":"{\"publish_id\":\"p\"}"}"#;
const WINDOW: Duration = Duration::from_secs(300);

fn secret() -> SecretString {
    SecretString::from("client-secret")
}

#[test]
fn when_signature_is_valid_should_return_its_timestamp() {
    let header = sign_webhook(&secret(), 1_700_000_000, BODY);
    assert_eq!(
        verify_signature(Some(&header), BODY, &secret(), 1_700_000_100, WINDOW),
        Ok(1_700_000_000)
    );
}

#[test]
fn when_signature_matches_an_independent_hmac_should_verify() {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"client-secret").unwrap();
    mac.update(b"1700000000.");
    mac.update(BODY);
    let header = format!(
        "t=1700000000,s={}",
        hex::encode(mac.finalize().into_bytes())
    );
    assert_eq!(sign_webhook(&secret(), 1_700_000_000, BODY), header);
    assert!(verify_signature(Some(&header), BODY, &secret(), 1_700_000_000, WINDOW).is_ok());
}

#[test]
fn when_secret_is_wrong_should_reject() {
    let header = sign_webhook(&SecretString::from("other"), 1_700_000_000, BODY);
    assert_eq!(
        verify_signature(Some(&header), BODY, &secret(), 1_700_000_000, WINDOW),
        Err(SignatureError::BadSignature)
    );
}

#[test]
fn when_body_is_altered_should_reject() {
    let header = sign_webhook(&secret(), 1_700_000_000, BODY);
    let mut altered = BODY.to_vec();
    altered[10] ^= 1;
    assert_eq!(
        verify_signature(Some(&header), &altered, &secret(), 1_700_000_000, WINDOW),
        Err(SignatureError::BadSignature)
    );
}

#[test]
fn when_timestamp_is_altered_should_reject() {
    let header =
        sign_webhook(&secret(), 1_700_000_000, BODY).replace("t=1700000000", "t=1700000001");
    assert_eq!(
        verify_signature(Some(&header), BODY, &secret(), 1_700_000_000, WINDOW),
        Err(SignatureError::BadSignature)
    );
}

#[test]
fn when_timestamp_is_outside_the_window_should_reject_as_stale() {
    let header = sign_webhook(&secret(), 1_700_000_000, BODY);
    assert!(verify_signature(Some(&header), BODY, &secret(), 1_700_000_300, WINDOW).is_ok());
    assert_eq!(
        verify_signature(Some(&header), BODY, &secret(), 1_700_000_400, WINDOW),
        Err(SignatureError::Stale {
            timestamp: 1_700_000_000,
            now: 1_700_000_400
        })
    );
    assert!(matches!(
        verify_signature(Some(&header), BODY, &secret(), 1_699_999_000, WINDOW),
        Err(SignatureError::Stale { .. })
    ));
}

#[test]
fn when_header_is_missing_should_reject() {
    assert_eq!(
        verify_signature(None, BODY, &secret(), 0, WINDOW),
        Err(SignatureError::MissingHeader)
    );
}

#[test]
fn when_header_is_malformed_should_reject() {
    for h in [
        "",
        "garbage",
        "t=abc,s=00",
        "t=1700000000",
        "s=abcd",
        "t=1700000000,s=zz",
        "t=1700000000,s=abcd",
    ] {
        assert_eq!(
            verify_signature(Some(h), BODY, &secret(), 1_700_000_000, WINDOW),
            Err(SignatureError::MalformedHeader),
            "{h}"
        );
    }
}
