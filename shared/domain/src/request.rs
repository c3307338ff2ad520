//! Client requests, parsed at the edge into domain types with field-level errors.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::envelope::FieldError;
use crate::ids::{AccountId, IdempotencyKey, JobId, RequestId};
use crate::job::{
    ClipChoice, JobSource, MediaSource, PostMode, PostSettings, PrivacyLevel, RenderRequest,
};
use crate::time::UtcTime;

/// TikTok's caption limit, in UTF-16 code units.
pub const MAX_TITLE_UTF16: usize = 2200;
/// Ssemble's clipping window, in seconds.
pub const MAX_RENDER_WINDOW_SECS: f64 = 1200.0;

/// A validated create-job request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub job_id: Option<JobId>,
    pub account_id: AccountId,
    pub source: JobSource,
    pub post: PostSettings,
    /// `None` means as soon as possible (or, with `next_slot`, at the account's next free slot).
    pub schedule_at: Option<UtcTime>,
    /// `scheduleAt: "next_slot"`: the account's next free slot within its daily cap, decided
    /// when the job is created.
    pub next_slot: bool,
    /// Set by a batch for a later item of the same source (never parsed from a body).
    pub fan_out_parent: Option<JobId>,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The API request that asks for it (`X-Request-Id`), set by the adapter.
    pub api_request_id: Option<String>,
}

/// The `scheduleAt` value that asks for the account's next free slot.
pub const NEXT_SLOT: &str = "next_slot";

/// For `#[serde(default, deserialize_with = "non_null")]` request fields: absent is `None`, a
/// JSON `null` is refused like any other wrong type (no request field of the API is nullable).
pub fn non_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[derive(Debug, Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

fn obj<'a>(v: &'a Value, field: &str, errors: &mut Errors) -> Option<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => {
            errors.add(field, "must be an object");
            None
        }
    }
}

fn string(m: &Map<String, Value>, key: &str, field: &str, errors: &mut Errors) -> Option<String> {
    match m.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.add(field, "must be a string");
            None
        }
    }
}

fn boolean(m: &Map<String, Value>, key: &str, field: &str, errors: &mut Errors) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.add(field, "must be true or false");
            false
        }
    }
}

fn number(m: &Map<String, Value>, key: &str, field: &str, errors: &mut Errors) -> Option<f64> {
    match m.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => {
            errors.add(field, "must be a number");
            None
        }
    }
}

fn unknown_keys(m: &Map<String, Value>, allowed: &[&str], prefix: &str, errors: &mut Errors) {
    for key in m.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.add(&format!("{prefix}{key}"), "is not a known field");
        }
    }
}

fn http_url(raw: &str, field: &str, errors: &mut Errors) {
    if !(raw.starts_with("https://") || raw.starts_with("http://")) || raw.len() > 2048 {
        errors.add(field, "must be an http(s) URL of at most 2048 characters");
    }
}

/// Parses `POST /v1/jobs`. `header_key` is the `Idempotency-Key` header, which wins over a body
/// field of the same meaning only if they agree.
/// `post.title`: TikTok's caption, within its length limit.
fn title(m: &Map<String, Value>, errors: &mut Errors) -> Option<String> {
    let title = string(m, "title", "post.title", errors);
    if let Some(t) = &title
        && t.encode_utf16().count() > MAX_TITLE_UTF16
    {
        errors.add("post.title", "must be at most 2200 UTF-16 code units");
    }
    title
}

fn schedule_at(root: &Map<String, Value>, errors: &mut Errors) -> Option<UtcTime> {
    string(root, "scheduleAt", "scheduleAt", errors).and_then(|raw| {
        UtcTime::parse(&raw)
            .map_err(|_| {
                errors.add(
                    "scheduleAt",
                    "must be RFC 3339 with a zone offset, e.g. 2026-03-10T18:00:00Z",
                )
            })
            .ok()
    })
}

/// A parsed `POST /v1/jobs:batch`: each item parsed as a create (its own refusal, if any), and
/// whether it is a preview.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub items: Vec<Result<NewJob, Vec<FieldError>>>,
    pub dry_run: bool,
}

/// Parses `{"jobs": [create, ...], "dryRun"?: bool}`: the envelope's errors refuse the whole
/// batch; an item's own errors are that item's answer. Each item names its `idempotencyKey`
/// in its body (a batch has no header per item); a preview needs none.
pub fn parse_batch(body: &Value, max_items: usize) -> Result<Batch, Vec<FieldError>> {
    let mut errors = Errors::default();
    let Some(root) = obj(body, "", &mut errors) else {
        return Err(errors.0);
    };
    unknown_keys(root, &["jobs", "dryRun"], "", &mut errors);
    // Strictly a boolean when present: a null is not read as false (the document says boolean).
    let dry_run = match root.get("dryRun") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.add("dryRun", "must be true or false");
            false
        }
    };
    let items = match root.get("jobs") {
        Some(Value::Array(items)) if items.is_empty() => {
            errors.add("jobs", "must hold at least one job");
            Vec::new()
        }
        Some(Value::Array(items)) if items.len() > max_items => {
            errors.add("jobs", format!("must hold at most {max_items} jobs"));
            Vec::new()
        }
        Some(Value::Array(items)) => {
            // Not even an object is the batch's own error; an object is answered as a create.
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    errors.add(&format!("jobs[{i}]"), "must be an object");
                }
            }
            items
                .iter()
                .map(|item| parse_create_job(item, None))
                .collect()
        }
        Some(_) => {
            errors.add("jobs", "must be an array");
            Vec::new()
        }
        None => {
            errors.add("jobs", "is required");
            Vec::new()
        }
    };
    if errors.0.is_empty() {
        Ok(Batch { items, dry_run })
    } else {
        Err(errors.0)
    }
}

/// A validated `PATCH /v1/jobs/{id}`: what to change before the job starts publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amendment {
    pub schedule_at: Option<UtcTime>,
    /// `scheduleAt: "next_slot"`: the account's next free slot, counting its other jobs.
    pub next_slot: bool,
    pub title: Option<String>,
}

/// Parses `{"scheduleAt"?, "post"?: {"title"?}}` (`scheduleAt` a time or `"next_slot"`); at
/// least one change is required.
pub fn parse_amendment(body: &Value) -> Result<Amendment, Vec<FieldError>> {
    let mut errors = Errors::default();
    let Some(root) = obj(body, "", &mut errors) else {
        return Err(errors.0);
    };
    unknown_keys(root, &["scheduleAt", "post"], "", &mut errors);
    // A change names its value: a null is not read as "no change".
    if root.get("scheduleAt").is_some_and(Value::is_null) {
        errors.add("scheduleAt", "must be a string");
    }
    let next_slot = root.get("scheduleAt").and_then(Value::as_str) == Some(NEXT_SLOT);
    let schedule_at = if next_slot {
        None
    } else {
        schedule_at(root, &mut errors)
    };
    let title = match root.get("post") {
        None => None,
        Some(v) => obj(v, "post", &mut errors).and_then(|m| {
            unknown_keys(m, &["title"], "post.", &mut errors);
            if matches!(m.get("title"), None | Some(Value::Null)) {
                errors.add("post.title", "is required when post is given");
            }
            title(m, &mut errors)
        }),
    };
    if errors.0.is_empty() && schedule_at.is_none() && !next_slot && title.is_none() {
        errors.add("", "change scheduleAt, post.title or both");
    }
    if errors.0.is_empty() {
        Ok(Amendment {
            schedule_at,
            next_slot,
            title,
        })
    } else {
        Err(errors.0)
    }
}

pub fn parse_create_job(body: &Value, header_key: Option<&str>) -> Result<NewJob, Vec<FieldError>> {
    let mut errors = Errors::default();
    let Some(root) = obj(body, "", &mut errors) else {
        return Err(errors.0);
    };
    unknown_keys(
        root,
        &[
            "jobId",
            "tiktokAccountId",
            "source",
            "post",
            "scheduleAt",
            "idempotencyKey",
        ],
        "",
        &mut errors,
    );

    let job_id = string(root, "jobId", "jobId", &mut errors).and_then(|raw| {
        JobId::parse(raw)
            .map_err(|e| errors.add("jobId", e.reason))
            .ok()
    });
    let account_id = match string(root, "tiktokAccountId", "tiktokAccountId", &mut errors) {
        Some(raw) => AccountId::parse(raw)
            .map_err(|e| errors.add("tiktokAccountId", e.reason))
            .ok(),
        None => {
            errors.add("tiktokAccountId", "is required");
            None
        }
    };
    let next_slot = root.get("scheduleAt").and_then(Value::as_str) == Some(NEXT_SLOT);
    let schedule_at = if next_slot {
        None
    } else {
        schedule_at(root, &mut errors)
    };
    let idempotency_key = idempotency(root, header_key, &mut errors);
    let source = match root.get("source") {
        Some(v) => parse_source(v, &mut errors),
        None => {
            errors.add("source", "is required");
            None
        }
    };
    let post = match root.get("post") {
        Some(v) => parse_post(v, &mut errors),
        None => {
            errors.add("post", "is required");
            None
        }
    };
    match (account_id, source, post) {
        (Some(account_id), Some(source), Some(post)) if errors.0.is_empty() => Ok(NewJob {
            job_id,
            account_id,
            source,
            post,
            schedule_at,
            next_slot,
            fan_out_parent: None,
            idempotency_key,
            api_request_id: None,
        }),
        _ => Err(errors.0),
    }
}

/// Parses the seed's `POST /api/publish/tiktok`: publish an existing Ssemble render. The seed
/// carries no post settings, and TikTok forbids a default privacy level, so without a `post`
/// object the clip goes to the creator's inbox as a draft (the seed's own example answers with
/// an inbox publish_id).
pub fn parse_seed_publish(
    body: &Value,
    header_key: Option<&str>,
) -> Result<NewJob, Vec<FieldError>> {
    let mut errors = Errors::default();
    let Some(root) = obj(body, "", &mut errors) else {
        return Err(errors.0);
    };
    unknown_keys(
        root,
        &[
            "jobId",
            "requestId",
            "tiktokAccountId",
            "scheduleAt",
            "idempotencyKey",
            "post",
        ],
        "",
        &mut errors,
    );
    let mut rewritten = Map::new();
    for key in ["jobId", "tiktokAccountId", "scheduleAt", "idempotencyKey"] {
        if let Some(v) = root.get(key) {
            rewritten.insert(key.into(), v.clone());
        }
    }
    match root.get("requestId") {
        Some(v) => {
            rewritten.insert("source".into(), serde_json::json!({ "requestId": v }));
        }
        None => errors.add("requestId", "is required"),
    }
    rewritten.insert(
        "post".into(),
        root.get("post")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({ "mode": "draft" })),
    );
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    parse_create_job(&Value::Object(rewritten), header_key)
}

fn idempotency(
    root: &Map<String, Value>,
    header: Option<&str>,
    errors: &mut Errors,
) -> Option<IdempotencyKey> {
    let body = string(root, "idempotencyKey", "idempotencyKey", errors);
    let raw = match (header, body) {
        (Some(h), Some(b)) if h != b => {
            errors.add("idempotencyKey", "differs from the Idempotency-Key header");
            return None;
        }
        (Some(h), _) => h.to_owned(),
        (None, Some(b)) => b,
        (None, None) => return None,
    };
    IdempotencyKey::parse(raw)
        .map_err(|e| errors.add("idempotencyKey", e.reason))
        .ok()
}

fn parse_source(v: &Value, errors: &mut Errors) -> Option<JobSource> {
    let m = obj(v, "source", errors)?;
    unknown_keys(
        m,
        &["url", "fileUrl", "requestId", "start", "end", "options"],
        "source.",
        errors,
    );
    let url = string(m, "url", "source.url", errors);
    let file_url = string(m, "fileUrl", "source.fileUrl", errors);
    let request_id = string(m, "requestId", "source.requestId", errors);
    match (url, file_url, request_id) {
        (None, None, Some(rid)) => {
            for key in ["start", "end", "options"] {
                if m.contains_key(key) {
                    errors.add(
                        &format!("source.{key}"),
                        "does not apply to an existing render",
                    );
                }
            }
            RequestId::parse(rid)
                .map_err(|e| errors.add("source.requestId", e.reason))
                .ok()
                .map(|request_id| JobSource::Rendered { request_id })
        }
        (Some(url), None, None) => render(m, MediaSource::Url(url), errors),
        (None, Some(file), None) => render(m, MediaSource::FileUrl(file), errors),
        (None, None, None) => {
            errors.add("source", "needs exactly one of url, fileUrl or requestId");
            None
        }
        _ => {
            errors.add(
                "source",
                "needs exactly one of url, fileUrl or requestId, not several",
            );
            None
        }
    }
}

fn render(m: &Map<String, Value>, media: MediaSource, errors: &mut Errors) -> Option<JobSource> {
    let (MediaSource::Url(u) | MediaSource::FileUrl(u)) = &media;
    let field = if matches!(media, MediaSource::Url(_)) {
        "source.url"
    } else {
        "source.fileUrl"
    };
    http_url(u, field, errors);
    if matches!(media, MediaSource::Url(_)) && u.contains("/shorts/") {
        errors.add(
            "source.url",
            "YouTube Shorts URLs are not supported by Ssemble",
        );
    }
    let start = number(m, "start", "source.start", errors);
    let end = number(m, "end", "source.end", errors);
    let (Some(start), Some(end)) = (start, end) else {
        errors.add(
            "source",
            "start and end (seconds) are required for a render",
        );
        return None;
    };
    if start < 0.0 {
        errors.add("source.start", "must be at least 0");
    }
    if end <= start {
        errors.add("source.end", "must be greater than start");
    } else if end - start < 1.0 || end - start > MAX_RENDER_WINDOW_SECS {
        errors.add(
            "source.end",
            "end - start must be between 1 and 1200 seconds",
        );
    }
    let options = match m.get("options") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            errors.add("source.options", "must be an object");
            Map::new()
        }
    };
    for reserved in ["url", "fileUrl", "start", "end", "webhookUrl"] {
        if options.contains_key(reserved) {
            errors.add(&format!("source.options.{reserved}"), "is set by Reelay");
        }
    }
    Some(JobSource::Render(RenderRequest {
        media,
        start,
        end,
        options,
    }))
}

/// `post.clip`; the document says `additionalProperties: false`, so a typo'd field is refused
/// instead of silently choosing the top clip.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClipSpec {
    short_id: Option<String>,
}

fn parse_post(v: &Value, errors: &mut Errors) -> Option<PostSettings> {
    let m = obj(v, "post", errors)?;
    unknown_keys(
        m,
        &[
            "mode",
            "privacyLevel",
            "title",
            "disableComment",
            "disableDuet",
            "disableStitch",
            "brandContentToggle",
            "brandOrganicToggle",
            "isAigc",
            "videoCoverTimestampMs",
            "clip",
        ],
        "post.",
        errors,
    );
    let mode = match string(m, "mode", "post.mode", errors).as_deref() {
        Some("direct") => Some(PostMode::Direct),
        Some("draft") => Some(PostMode::Draft),
        Some(_) => {
            errors.add("post.mode", "must be direct or draft");
            None
        }
        None => {
            errors.add("post.mode", "is required (direct or draft)");
            None
        }
    };
    let privacy_level = string(m, "privacyLevel", "post.privacyLevel", errors).and_then(|raw| {
        serde_json::from_value::<PrivacyLevel>(Value::String(raw))
            .map_err(|_| {
                errors.add(
                    "post.privacyLevel",
                    "must be PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR or SELF_ONLY",
                )
            })
            .ok()
    });
    let title = title(m, errors);
    let post = PostSettings {
        mode: mode.unwrap_or(PostMode::Direct),
        privacy_level,
        title,
        disable_comment: boolean(m, "disableComment", "post.disableComment", errors),
        disable_duet: boolean(m, "disableDuet", "post.disableDuet", errors),
        disable_stitch: boolean(m, "disableStitch", "post.disableStitch", errors),
        brand_content_toggle: boolean(m, "brandContentToggle", "post.brandContentToggle", errors),
        brand_organic_toggle: boolean(m, "brandOrganicToggle", "post.brandOrganicToggle", errors),
        is_aigc: boolean(m, "isAigc", "post.isAigc", errors),
        video_cover_timestamp_ms: number(
            m,
            "videoCoverTimestampMs",
            "post.videoCoverTimestampMs",
            errors,
        )
        .and_then(|n| {
            if n >= 0.0 && n <= f64::from(u32::MAX) && n.fract() == 0.0 {
                Some(n as u32)
            } else {
                errors.add(
                    "post.videoCoverTimestampMs",
                    "must be a non-negative integer",
                );
                None
            }
        }),
        clip: match m.get("clip") {
            None | Some(Value::Null) => ClipChoice::TopViralScore,
            Some(v) => match serde_json::from_value::<ClipSpec>(v.clone()) {
                Ok(ClipSpec { short_id: Some(id) }) if !id.is_empty() && id.len() <= 128 => {
                    ClipChoice::ShortId(id)
                }
                Ok(ClipSpec { short_id: None }) => ClipChoice::TopViralScore,
                _ => {
                    errors.add(
                        "post.clip",
                        "must be {\"shortId\": \"…\"} or omitted for the top viral score",
                    );
                    ClipChoice::TopViralScore
                }
            },
        },
    };
    mode?;
    for e in static_rules(&post) {
        errors.0.push(e);
    }
    Some(post)
}

/// TikTok's rules that need no creator data. The creator-dependent ones are in
/// [`crate::compliance`].
fn static_rules(post: &PostSettings) -> Vec<FieldError> {
    let mut errors = Errors::default();
    match post.mode {
        PostMode::Direct => match post.privacy_level {
            None => errors.add(
                "post.privacyLevel",
                "is required for a direct post; TikTok forbids a default, the creator must choose",
            ),
            Some(PrivacyLevel::SelfOnly) if post.brand_content_toggle => errors.add(
                "post.privacyLevel",
                "branded content cannot be private (SELF_ONLY)",
            ),
            _ => {}
        },
        PostMode::Draft => {
            if post.privacy_level.is_some() {
                errors.add(
                    "post.privacyLevel",
                    "does not apply to a draft: the creator chooses it in the app",
                );
            }
            if post.title.is_some() {
                errors.add(
                    "post.title",
                    "does not apply to a draft: the creator writes it in the app",
                );
            }
        }
    }
    errors.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(r: Result<NewJob, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    fn direct() -> Value {
        json!({
            "tiktokAccountId": "acct_kor_store_03",
            "source": {"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "start": 0, "end": 600,
                       "options": {"preferredLength": "under60sec"}},
            "post": {"mode": "direct", "privacyLevel": "SELF_ONLY", "title": "a #cat video"},
            "scheduleAt": "2026-03-10T18:00:00Z"
        })
    }

    #[test]
    fn a_clip_choice_with_an_unknown_field_is_refused_not_read_as_the_top_clip() {
        let mut body = direct();
        body["post"]["clip"] = json!({"shortId": "s1", "shortID": "s2"});
        assert_eq!(
            fields(parse_create_job(&body, Some("k-1"))),
            vec!["post.clip"]
        );
        body["post"]["clip"] = json!({"shortId": "s1"});
        let job = parse_create_job(&body, Some("k-1")).unwrap();
        assert_eq!(job.post.clip, ClipChoice::ShortId("s1".into()));
    }

    #[test]
    fn a_valid_direct_post_parses() {
        let job = parse_create_job(&direct(), Some("k-1")).unwrap();
        assert_eq!(job.account_id.as_str(), "acct_kor_store_03");
        assert_eq!(job.post.privacy_level, Some(PrivacyLevel::SelfOnly));
        assert_eq!(job.idempotency_key.unwrap().as_str(), "k-1");
        assert!(
            matches!(job.source, JobSource::Render(ref r) if r.options.contains_key("preferredLength"))
        );
    }

    #[test]
    fn next_slot_is_a_schedule_and_other_words_are_not() {
        let body = |at: &str| {
            json!({
                "tiktokAccountId": "acct_1",
                "source": {"url": "https://www.youtube.com/watch?v=x", "start": 0, "end": 60},
                "post": {"mode": "draft"},
                "scheduleAt": at,
            })
        };
        let parsed = parse_create_job(&body("next_slot"), Some("k")).expect("next_slot parses");
        assert!(parsed.next_slot);
        assert_eq!(parsed.schedule_at, None);
        let parsed = parse_create_job(&body("2026-03-10T18:00:00Z"), Some("k")).expect("a time");
        assert!(!parsed.next_slot);
        assert!(parse_create_job(&body("next-slot"), Some("k")).is_err());
        // A PATCH takes it too, alone or with a caption.
        let amend = parse_amendment(&json!({"scheduleAt": "next_slot"})).expect("next_slot");
        assert!(amend.next_slot && amend.schedule_at.is_none());
        assert!(parse_amendment(&json!({"scheduleAt": "next-slot"})).is_err());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let body = json!({
            "tiktokAccountId": "bad id",
            "source": {"url": "ftp://x", "fileUrl": "https://y"},
            "post": {"mode": "direct", "title": 5, "colour": "red"},
            "scheduleAt": "tomorrow",
            "extra": 1
        });
        let f = fields(parse_create_job(&body, None));
        for expected in [
            "tiktokAccountId",
            "source",
            "post.title",
            "post.colour",
            "scheduleAt",
            "extra",
            "post.privacyLevel",
        ] {
            assert!(
                f.contains(&expected.to_owned()),
                "{expected} missing from {f:?}"
            );
        }
    }

    #[test]
    fn tiktok_posting_rules_are_enforced() {
        let mut no_privacy = direct();
        no_privacy["post"]
            .as_object_mut()
            .unwrap()
            .remove("privacyLevel");
        assert_eq!(
            fields(parse_create_job(&no_privacy, None)),
            vec!["post.privacyLevel"]
        );

        let mut branded_private = direct();
        branded_private["post"]["brandContentToggle"] = json!(true);
        assert_eq!(
            fields(parse_create_job(&branded_private, None)),
            vec!["post.privacyLevel"]
        );

        let mut long = direct();
        long["post"]["title"] = json!("😀".repeat(1101));
        assert_eq!(fields(parse_create_job(&long, None)), vec!["post.title"]);
        let mut fits = direct();
        fits["post"]["title"] = json!("😀".repeat(1100));
        assert!(parse_create_job(&fits, None).is_ok());
    }

    #[test]
    fn render_windows_follow_ssemble() {
        let mut b = direct();
        b["source"]["end"] = json!(1201);
        assert_eq!(fields(parse_create_job(&b, None)), vec!["source.end"]);
        b["source"]["end"] = json!(0);
        assert_eq!(fields(parse_create_job(&b, None)), vec!["source.end"]);
        b["source"]["url"] = json!("https://www.youtube.com/shorts/abc");
        b["source"]["end"] = json!(60);
        assert_eq!(fields(parse_create_job(&b, None)), vec!["source.url"]);
    }

    #[test]
    fn header_and_body_keys_must_agree() {
        let mut b = direct();
        b["idempotencyKey"] = json!("a");
        assert_eq!(
            fields(parse_create_job(&b, Some("b"))),
            vec!["idempotencyKey"]
        );
        assert!(parse_create_job(&b, Some("a")).is_ok());
    }

    #[test]
    fn the_seed_request_parses_as_an_inbox_draft_of_an_existing_render() {
        let seed = json!({
            "jobId": "job_01HT0000000000000000000000",
            "requestId": "665a1b2c3d4e5f6a7b8c9d0e",
            "tiktokAccountId": "acct_kor_store_03",
            "scheduleAt": "2026-03-10T18:00:00Z",
            "idempotencyKey": "2f182b63-312f-4290-9222-7cf6f7f8f12d"
        });
        let job = parse_seed_publish(&seed, None).unwrap();
        assert_eq!(job.post.mode, PostMode::Draft);
        assert!(matches!(job.source, JobSource::Rendered { .. }));
        assert_eq!(
            job.job_id.unwrap().as_str(),
            "job_01HT0000000000000000000000"
        );
        let mut bad = seed.clone();
        bad.as_object_mut().unwrap().remove("requestId");
        assert_eq!(fields(parse_seed_publish(&bad, None)), vec!["requestId"]);
    }

    #[test]
    fn an_amendment_changes_something_and_only_what_may_change() {
        let ok = parse_amendment(&json!({"scheduleAt": "2026-03-10T18:00:00Z"})).unwrap();
        assert_eq!(ok.schedule_at, UtcTime::parse("2026-03-10T18:00:00Z").ok());
        assert_eq!(ok.title, None);
        let ok = parse_amendment(&json!({"post": {"title": "new #caption"}})).unwrap();
        assert_eq!(ok.title.as_deref(), Some("new #caption"));
        let field = |v: Value| -> Vec<String> {
            parse_amendment(&v)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(field(json!({})), vec![""]);
        assert_eq!(field(json!({"post": {}})), vec!["post.title"]);
        assert_eq!(
            field(json!({"scheduleAt": null, "post": {"title": "x"}})),
            vec!["scheduleAt"]
        );
        assert_eq!(field(json!({"post": {"title": null}})), vec!["post.title"]);
        assert_eq!(
            field(
                json!({"scheduleAt": "tomorrow", "post": {"title": 5, "mode": "draft"}, "jobId": "x"})
            ),
            vec!["jobId", "scheduleAt", "post.mode", "post.title"]
        );
        assert_eq!(
            field(json!({"post": {"title": "😀".repeat(1101)}})),
            vec!["post.title"]
        );
        assert_eq!(field(json!([1])), vec![""]);
    }

    #[test]
    fn a_batch_refuses_its_envelope_whole_and_answers_each_item_on_its_own() {
        let ok = parse_batch(&json!({"jobs": [direct(), {"post": 1}], "dryRun": true}), 3).unwrap();
        assert!(ok.dry_run);
        assert!(ok.items[0].is_ok());
        assert!(ok.items[1].is_err(), "an item's own errors are its answer");
        let field = |v: Value| -> Vec<String> {
            parse_batch(&v, 2)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(field(json!({"jobs": []})), vec!["jobs"]);
        assert_eq!(
            field(json!({"jobs": [direct(), direct(), direct()]})),
            vec!["jobs"]
        );
        assert_eq!(field(json!({"jobs": {}})), vec!["jobs"]);
        assert_eq!(field(json!({"jobs": [direct(), 1]})), vec!["jobs[1]"]);
        assert_eq!(field(json!({"dryRun": "yes"})), vec!["dryRun", "jobs"]);
        assert_eq!(
            field(json!({"dryRun": null, "jobs": [direct()]})),
            vec!["dryRun"]
        );
        assert_eq!(
            field(json!({"jobs": [direct()], "extra": 1})),
            vec!["extra"]
        );
    }

    #[test]
    fn non_objects_are_refused() {
        assert_eq!(fields(parse_create_job(&json!([1]), None)), vec![""]);
    }
}
