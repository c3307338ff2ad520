//! The SQS work-message envelope (`WorkMessage::decode`, what `FifoBatchProcessor` runs on every
//! record body).
//!
//! Properties: arbitrary bodies get a classified refusal, never a panic; whatever decodes is a
//! version-1 message that re-encodes and decodes to itself; any valid message round-trips,
//! another envelope version is `UnknownVersion`, a truncated body is refused; FIFO group and
//! dedup ids stay within SQS's 128 characters.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use reelay_domain::messages::{EnvelopeError, QueueKind, WorkMessage};
use reelay_domain::{AccountId, JobId, TenantId, UtcTime};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    raw: &'a str,
    publish: bool,
    millis: u64,
    entropy: u128,
    tenant: Vec<u8>,
    account: Vec<u8>,
    version: u64,
    /// The enqueue's nonce (the next check written with it, in ms): any i64.
    nonce: i64,
    other_version: u8,
    cut: usize,
}

const SLUG: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.";

fn slug(bytes: &[u8], max: usize) -> String {
    let s: String = bytes.iter().take(max).map(|b| SLUG[usize::from(*b) % SLUG.len()] as char).collect();
    if s.is_empty() { "x".to_owned() } else { s }
}

fn roundtrip(m: &WorkMessage) {
    let encoded = match serde_json::to_string(m) {
        Ok(e) => e,
        Err(e) => panic!("a message did not encode: {e}"),
    };
    assert_eq!(WorkMessage::decode(Some(&encoded)).as_ref(), Ok(m));
}

fuzz_target!(|input: Input<'_>| {
    if let Ok(m) = WorkMessage::decode(Some(input.raw)) {
        assert_eq!(m.v, WorkMessage::VERSION);
        roundtrip(&m);
    }
    assert_eq!(WorkMessage::decode(None), Err(EnvelopeError::Empty));

    // ULID time is 48 bits.
    let at = UtcTime::from_millis((input.millis % (1 << 48)) as i64);
    let job_id = JobId::generate(at, input.entropy);
    assert!(JobId::parse(job_id.as_str()).is_ok(), "a generated job id must parse");
    let (Ok(tenant), Ok(account)) = (
        TenantId::parse(slug(&input.tenant, 60)),
        AccountId::parse(slug(&input.account, 64)),
    ) else {
        panic!("slugs within the documented lengths must be ids");
    };
    let kind = if input.publish { QueueKind::Publish } else { QueueKind::Render };
    let m = WorkMessage::new(kind, job_id, tenant, account, input.version);
    roundtrip(&m);
    assert!(m.group_id().len() <= 128, "MessageGroupId over SQS's 128: {}", m.group_id());
    let dedup = m.dedup_id(input.nonce);
    assert!(dedup.len() <= 128, "MessageDeduplicationId over SQS's 128: {dedup}");

    let Ok(mut value) = serde_json::to_value(&m) else {
        panic!("a message did not encode");
    };
    if input.other_version != WorkMessage::VERSION {
        value["v"] = serde_json::json!(input.other_version);
        assert_eq!(
            WorkMessage::decode(Some(&value.to_string())),
            Err(EnvelopeError::UnknownVersion)
        );
    }
    let Ok(encoded) = serde_json::to_string(&m) else {
        panic!("a message did not encode");
    };
    let cut = input.cut % encoded.len();
    assert!(WorkMessage::decode(Some(&encoded[..cut])).is_err(), "a truncated body decoded");
});
