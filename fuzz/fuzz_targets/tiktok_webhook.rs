//! TikTok webhook: the `TikTok-Signature` check and the event parser.
//!
//! Properties, beyond "never panics" on arbitrary headers and bodies:
//! - a header made with the right secret verifies (in either field order) while the timestamp
//!   is inside the window, and returns that timestamp;
//! - the same header fails with another secret, with any altered body byte, and once the
//!   timestamp is outside the window (stale → replay refused);
//! - an envelope built from known fields parses back to exactly those fields.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use reelay_tiktok::{SignatureError, WebhookEvent, parse_webhook, sign_webhook, verify_signature};
use secrecy::SecretString;
use serde_json::json;

const WINDOW: Duration = Duration::from_secs(300);

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secret: &'a str,
    t: i64,
    /// Clock skew inside the window.
    skew: u16,
    /// The receiver's clock is behind instead of ahead.
    behind: bool,
    flip_at: usize,
    flip_with: u8,
    header: &'a str,
    body: &'a [u8],
    event: u8,
    publish_id: &'a str,
    post_id: Option<u64>,
    reason: i64,
}

fn now_within(t: i64, skew: u16, behind: bool) -> i64 {
    let skew = i64::from(skew) % (WINDOW.as_secs() as i64 + 1);
    if behind {
        t.saturating_sub(skew)
    } else {
        t.saturating_add(skew)
    }
}

fuzz_target!(|input: Input<'_>| {
    let secret = SecretString::from(input.secret.to_owned());

    // Arbitrary headers and bodies: an answer, never a panic, and never Ok without the secret
    // having signed exactly this timestamp and body.
    if let Ok(t) = verify_signature(Some(input.header), input.body, &secret, input.t, WINDOW) {
        let expected = sign_webhook(&secret, t, input.body);
        let sig = expected.split_once(",s=").map(|(_, s)| s).unwrap_or_default();
        assert!(
            input.header.to_ascii_lowercase().contains(sig),
            "accepted a header that does not carry the signature of its own timestamp"
        );
    }
    let _ = parse_webhook(input.body);

    // A real signature verifies, in either field order, inside the window.
    let header = sign_webhook(&secret, input.t, input.body);
    let now = now_within(input.t, input.skew, input.behind);
    assert_eq!(
        verify_signature(Some(&header), input.body, &secret, now, WINDOW),
        Ok(input.t)
    );
    if let Some((t_part, s_part)) = header.split_once(',') {
        let reversed = format!("{s_part}, {t_part}");
        assert_eq!(
            verify_signature(Some(&reversed), input.body, &secret, now, WINDOW),
            Ok(input.t)
        );
    }

    // Forged: another secret. Appending a non-zero byte changes HMAC's padded key.
    let other = SecretString::from(format!("{}x", input.secret));
    assert_eq!(
        verify_signature(Some(&header), input.body, &other, now, WINDOW),
        Err(SignatureError::BadSignature)
    );

    // Altered body.
    if !input.body.is_empty() && input.flip_with != 0 {
        let mut altered = input.body.to_vec();
        let i = input.flip_at % altered.len();
        altered[i] ^= input.flip_with;
        assert_eq!(
            verify_signature(Some(&header), &altered, &secret, now, WINDOW),
            Err(SignatureError::BadSignature)
        );
    }

    // Replayed after the window: stale, whichever side the clock is on.
    let late = WINDOW.as_secs() as i64 + 1 + i64::from(input.skew);
    let stale_now = if input.behind {
        input.t.checked_sub(late)
    } else {
        input.t.checked_add(late)
    };
    if let Some(stale_now) = stale_now {
        assert!(matches!(
            verify_signature(Some(&header), input.body, &secret, stale_now, WINDOW),
            Err(SignatureError::Stale { .. })
        ));
    }
    assert_eq!(
        verify_signature(None, input.body, &secret, now, WINDOW),
        Err(SignatureError::MissingHeader)
    );

    // A well-formed envelope parses back to its own fields.
    let names = [
        "post.publish.failed",
        "post.publish.complete",
        "post.publish.inbox_delivered",
        "post.publish.publicly_available",
        "post.publish.no_longer_publicaly_available",
        "authorization.removed",
    ];
    let name = names[usize::from(input.event) % names.len()];
    let content = if name == "authorization.removed" {
        json!({ "reason": input.reason })
    } else {
        let mut c = json!({ "publish_id": input.publish_id, "publish_type": "DIRECT_PUBLISH" });
        if let Some(p) = input.post_id {
            c["post_id"] = json!(p.to_string());
        }
        if name == "post.publish.failed" {
            c["reason"] = json!(input.publish_id);
        }
        c
    };
    let body = json!({
        "client_key": "ck",
        "event": name,
        "create_time": input.t,
        "user_openid": input.publish_id,
        "content": content.to_string(),
    })
    .to_string();
    let parsed = match parse_webhook(body.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("a well-formed {name} envelope did not parse: {e}"),
    };
    assert_eq!(parsed.create_time, input.t);
    assert_eq!(parsed.user_openid, input.publish_id);
    assert_eq!(parsed.content, content.to_string());
    let pt = Some("DIRECT_PUBLISH".to_owned());
    let pid = input.publish_id.to_owned();
    let expected = match name {
        "post.publish.failed" => WebhookEvent::PublishFailed {
            publish_id: pid.clone(),
            reason: pid,
            publish_type: pt,
        },
        "post.publish.complete" => WebhookEvent::PublishComplete {
            publish_id: pid,
            publish_type: pt,
        },
        "post.publish.inbox_delivered" => WebhookEvent::InboxDelivered {
            publish_id: pid,
            publish_type: pt,
        },
        "post.publish.publicly_available" => WebhookEvent::PubliclyAvailable {
            publish_id: pid,
            post_id: input.post_id,
            publish_type: pt,
        },
        "post.publish.no_longer_publicaly_available" => WebhookEvent::NoLongerPubliclyAvailable {
            publish_id: pid,
            post_id: input.post_id,
            publish_type: pt,
        },
        _ => WebhookEvent::AuthorizationRemoved {
            reason: input.reason,
        },
    };
    assert_eq!(parsed.event, expected);
});
