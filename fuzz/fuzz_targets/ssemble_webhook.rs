//! Ssemble webhook payload parser (the delivery is a hint; its URL token is what authenticates it).
//!
//! Properties: arbitrary bytes get an answer, never a panic; a parsed event's request id is a
//! valid 24-hex id and its dedupe key names the event; a known event with a bad request id is
//! refused; documented payloads built from arbitrary values parse back to exactly those values.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use reelay_ssemble::{RequestId, WebhookEvent, WebhookParseError, parse_webhook};
use serde_json::json;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    raw: &'a [u8],
    id_bytes: [u8; 12],
    bad_id: &'a str,
    completed: bool,
    reason: &'a str,
    reason_as_error_object: bool,
    short_ids: Vec<&'a str>,
    other_event: &'a str,
}

fn check_any(event: &WebhookEvent) {
    if let Some(id) = event.request_id() {
        assert!(RequestId::parse(id.as_str()).is_ok(), "an invalid request id got through");
    }
    match (event, event.dedupe_key()) {
        (WebhookEvent::Completed { .. }, Some((_, name))) => assert_eq!(name, "shorts.completed"),
        (WebhookEvent::Failed { .. }, Some((_, name))) => assert_eq!(name, "shorts.failed"),
        (WebhookEvent::Completed { .. } | WebhookEvent::Failed { .. }, None) => {
            panic!("a known event without a request id")
        }
        (WebhookEvent::Other { event, .. }, Some((_, name))) => assert_eq!(name, event.as_str()),
        (WebhookEvent::Other { .. }, None) => {}
    }
}

fuzz_target!(|input: Input<'_>| {
    if let Ok(event) = parse_webhook(input.raw) {
        check_any(&event);
    }

    let id = hex(&input.id_bytes);
    let request_id = RequestId::parse(&id).ok();
    assert!(request_id.is_some(), "24 hex digits are a request id");

    let body = if input.completed {
        let shorts: Vec<_> = input
            .short_ids
            .iter()
            .map(|s| json!({ "id": s, "viral_score": 7.5 }))
            .collect();
        json!({ "event": "shorts.completed", "requestId": id, "data": { "shorts": shorts } })
    } else if input.reason_as_error_object {
        json!({ "event": "shorts.failed", "requestId": id, "data": { "error": { "message": input.reason } } })
    } else {
        json!({ "event": "shorts.failed", "requestId": id, "data": { "failureReason": input.reason } })
    };
    let parsed = parse_webhook(body.to_string().as_bytes());
    match (&parsed, input.completed) {
        (Ok(WebhookEvent::Completed { request_id: r, shorts, .. }), true) => {
            assert_eq!(Some(r), request_id.as_ref());
            let ids: Vec<&str> = shorts.iter().map(|s| s.id.as_str()).collect();
            assert_eq!(ids, input.short_ids);
        }
        (Ok(WebhookEvent::Failed { request_id: r, failure_reason, .. }), false) => {
            assert_eq!(Some(r), request_id.as_ref());
            assert_eq!(failure_reason.as_deref(), Some(input.reason));
        }
        other => panic!("a documented payload parsed as {other:?}"),
    }

    // A known event must name a valid request; anything else is refused, not guessed.
    if RequestId::parse(input.bad_id).is_err() {
        let body = json!({ "event": "shorts.completed", "requestId": input.bad_id });
        assert!(matches!(
            parse_webhook(body.to_string().as_bytes()),
            Err(WebhookParseError::MissingRequestId { .. })
        ));
    }

    // Unknown events are kept with their name, not dropped or misread.
    if !matches!(input.other_event, "shorts.completed" | "shorts.failed") {
        let body = json!({ "event": input.other_event, "requestId": id });
        match parse_webhook(body.to_string().as_bytes()) {
            Ok(WebhookEvent::Other { event, request_id: r, .. }) => {
                assert_eq!(event, input.other_event);
                assert_eq!(r, request_id);
            }
            other => panic!("an unknown event parsed as {other:?}"),
        }
    }
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
