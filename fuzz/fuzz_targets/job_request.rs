//! The job request parsers: `parse_create_job` (POST /v1/jobs) and `parse_seed_publish`
//! (POST /api/publish/tiktok).
//!
//! Properties: any JSON gets either a job or a non-empty list of field errors, never a panic,
//! and the same answer twice; an accepted job respects the documented limits (account id
//! charset and length, caption ≤ 2200 UTF-16 units, the header's idempotency key, a seed is an
//! existing render); for a request that is valid apart from its caption, the caption limit is
//! exactly the boundary between acceptance and a `post.title` error.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use reelay_domain::request::{MAX_TITLE_UTF16, NewJob, parse_create_job, parse_seed_publish};
use reelay_domain::{FieldError, JobSource};
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    raw: &'a [u8],
    header: Option<&'a str>,
    title: String,
    /// Repeats the title to reach and cross the caption limit.
    repeat: u16,
    privacy: u8,
}

fn check(result: &Result<NewJob, Vec<FieldError>>, header: Option<&str>, seed: bool) {
    match result {
        Ok(job) => {
            let account = job.account_id.as_str();
            assert!(!account.is_empty() && account.len() <= 64);
            assert!(
                account
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            );
            if let Some(t) = &job.post.title {
                assert!(t.encode_utf16().count() <= MAX_TITLE_UTF16);
            }
            if let Some(h) = header {
                assert_eq!(job.idempotency_key.as_ref().map(|k| k.as_str()), Some(h));
            }
            if seed {
                assert!(matches!(job.source, JobSource::Rendered { .. }));
            }
        }
        Err(errors) => assert!(!errors.is_empty(), "refused without saying why"),
    }
}

fuzz_target!(|input: Input<'_>| {
    if let Ok(body) = serde_json::from_slice::<Value>(input.raw) {
        let created = parse_create_job(&body, input.header);
        check(&created, input.header, false);
        assert_eq!(created, parse_create_job(&body, input.header), "not deterministic");
        let seeded = parse_seed_publish(&body, input.header);
        check(&seeded, input.header, true);
        assert_eq!(seeded, parse_seed_publish(&body, input.header), "not deterministic");
    }

    // Huge captions: the limit is the boundary, counted in UTF-16 units.
    let title = input.title.repeat(usize::from(input.repeat % 64) + 1);
    // Captions belong to direct posts (a draft's is written in the app).
    let levels = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"];
    let level = levels[usize::from(input.privacy) % levels.len()];
    let post = json!({ "mode": "direct", "privacyLevel": level, "title": title });
    let body = json!({
        "tiktokAccountId": "acct_1",
        "source": { "url": "https://example.com/v.mp4", "start": 0, "end": 60 },
        "post": post,
        "idempotencyKey": "k-1",
    });
    let result = parse_create_job(&body, None);
    let fits = title.encode_utf16().count() <= MAX_TITLE_UTF16;
    match result {
        Ok(job) => {
            assert!(fits, "a caption over the limit was accepted");
            assert_eq!(job.post.title.as_deref(), Some(title.as_str()), "the caption changed");
        }
        Err(errors) => {
            assert!(!fits, "a valid request was refused: {errors:?}");
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, vec!["post.title"]);
        }
    }
});
