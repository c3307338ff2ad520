//! Wire types. Responses are deserialized leniently (optional fields, open enums) because the
//! vendor's docs are truncated and its sources disagree; requests are strict.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::rate_limit::{RateLimitInfo, parse_instant};

/// A successful call's payload together with the budget the response reported.
#[derive(Debug, Clone)]
pub struct ApiResponse<T> {
    /// The `data` member of the envelope.
    pub data: T,
    /// HTTP status actually returned (create answers 200 or 201).
    pub http_status: u16,
    /// Rate-limit headers of this response.
    pub rate_limit: RateLimitInfo,
}

/// A Ssemble request id: a 24-digit hex string (a MongoDB ObjectId), validated before any call
/// so a malformed id never costs a request from the budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// Accepts exactly 24 ASCII hex digits (either case, kept as given).
    pub fn parse(s: &str) -> Result<Self, InvalidRequestId> {
        if s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidRequestId {
                value: s.chars().take(64).collect(),
            })
        }
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A string that is not a valid 24-hex request id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Ssemble request id {value:?}: expected 24 hex digits")]
pub struct InvalidRequestId {
    /// The rejected input (truncated).
    pub value: String,
}

macro_rules! open_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => [$($wire:literal),+]),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
            /// A value this client does not know; kept verbatim so callers can log and decide.
            Unknown(String),
        }

        impl $name {
            /// Maps a wire value; unknown values are preserved, never an error.
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $($($wire)|+ => Self::$variant,)+
                    other => Self::Unknown(other.to_owned()),
                }
            }

            /// The canonical wire value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => open_enum!(@first $($wire),+),)+
                    Self::Unknown(s) => s,
                }
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from_wire(&<String as ::serde::Deserialize>::deserialize(d)?))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
    (@first $first:literal $(, $rest:literal)*) => { $first };
}
pub(crate) use open_enum;

open_enum! {
    /// Lifecycle of a request. `TASK_COMPLETE` has been seen leaking from `GET /shorts/:id` and
    /// means completed.
    RequestStatus {
        /// Waiting in the processing queue.
        Queued => ["queued"],
        /// Being downloaded, transcribed, clipped or rendered.
        Processing => ["processing"],
        /// All shorts generated; fetch them with `GET /shorts/:id`.
        Completed => ["completed", "TASK_COMPLETE"],
        /// Processing failed; `failureReason` says why. Credits are refunded.
        Failed => ["failed"],
        /// Cancelled (e.g. deleted while processing).
        Cancelled => ["cancelled", "canceled"],
    }
}

impl RequestStatus {
    /// Terminal statuses never change again; unknown ones are treated as non-terminal so a
    /// caller keeps polling (and alerts) rather than dropping a job.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

open_enum! {
    /// Processing step. The official table is missing from the docs, so this stays open.
    Step {
        /// Waiting in queue.
        Queued => ["queued"],
        /// Downloading the source.
        FetchingVideo => ["fetching_video"],
        /// Speech to text.
        TranscribingAudio => ["transcribing_audio"],
        /// Choosing clips.
        FindingHighlights => ["finding_highlights"],
        /// Rendering.
        Finalizing => ["finalizing"],
        /// Done.
        Completed => ["completed"],
        /// Failed.
        Failed => ["failed"],
    }
}

/// Clip length bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PreferredLength {
    /// ≤ 30 s.
    Under30sec,
    /// ≤ 60 s (the API default).
    Under60sec,
    /// ≤ 90 s.
    Under90sec,
    /// ≤ 3 min.
    Under3min,
    /// ≤ 5 min.
    Under5min,
    /// ≤ 10 min.
    Under10min,
}

impl PreferredLength {
    /// Upper bound of the bucket, in seconds.
    pub fn max_seconds(self) -> u32 {
        match self {
            Self::Under30sec => 30,
            Self::Under60sec => 60,
            Self::Under90sec => 90,
            Self::Under3min => 180,
            Self::Under5min => 300,
            Self::Under10min => 600,
        }
    }
}

/// Output framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Let Ssemble choose.
    Auto,
    /// Crop to fill 9:16.
    Fill,
    /// Letterbox.
    Fit,
    /// 1:1.
    Square,
}

/// Where Ssemble fetches the source video; the API rejects both or neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// A YouTube watch URL (not `/shorts/`).
    Url(String),
    /// A direct http(s) URL to a video file.
    FileUrl(String),
}

impl Source {
    /// The URL whichever kind it is.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Url(s) | Self::FileUrl(s) => s,
        }
    }
}

/// `POST /shorts/create` body. `webhook_url` is secret because it carries a per-job token.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateShortRequest {
    /// `url` or `fileUrl`.
    #[serde(flatten)]
    pub source: Source,
    /// Range start in source seconds (≥ 0).
    #[serde(serialize_with = "serialize_seconds")]
    pub start: f64,
    /// Range end in source seconds (1 ≤ end − start ≤ 1200).
    #[serde(serialize_with = "serialize_seconds")]
    pub end: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_length: Option<PreferredLength>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_clipping: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_title: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meme_hook: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meme_hook_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub game_video: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub game_video_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cta_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cta_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub music: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub music_name: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_seconds_opt"
    )]
    pub music_volume: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_secret_opt"
    )]
    pub webhook_url: Option<SecretString>,
}

/// Whole numbers go out as JSON integers (`600`, as the docs show), fractions as floats.
fn serialize_seconds<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

fn serialize_seconds_opt<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => serialize_seconds(v, s),
        None => s.serialize_none(),
    }
}

fn serialize_secret_opt<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(secret) => s.serialize_str(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

impl CreateShortRequest {
    /// A request with only the required fields; set the rest directly.
    pub fn new(source: Source, start: f64, end: f64) -> Self {
        Self {
            source,
            start,
            end,
            preferred_length: None,
            language: None,
            caption_language: None,
            template_id: None,
            no_clipping: None,
            hook_title: None,
            meme_hook: None,
            meme_hook_name: None,
            game_video: None,
            game_video_name: None,
            cta_enabled: None,
            cta_text: None,
            music: None,
            music_name: None,
            music_volume: None,
            layout: None,
            webhook_url: None,
        }
    }
}

impl fmt::Debug for CreateShortRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateShortRequest")
            .field("source", &self.source)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("preferred_length", &self.preferred_length)
            .field("language", &self.language)
            .field("template_id", &self.template_id)
            .field("layout", &self.layout)
            .field(
                "webhook_url",
                &self.webhook_url.as_ref().map(|_| "[REDACTED]"),
            )
            .finish_non_exhaustive()
    }
}

/// `POST /shorts/create` result: the union of the shapes seen in the vendor's code and plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateShortResponse {
    #[serde(alias = "_id")]
    pub request_id: RequestId,
    #[serde(default = "queued")]
    pub status: RequestStatus,
    #[serde(default)]
    pub credits_used: Option<f64>,
    /// Unknown whether this is a phrase ("5-30 minutes") or a timestamp: kept as text.
    #[serde(default)]
    pub estimated_completion_time: Option<String>,
    /// Older spelling of the estimate.
    #[serde(default)]
    pub estimated_time: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// Present only when the requested range exceeded the video and was clamped.
    #[serde(default)]
    pub time_adjustment: Option<TimeAdjustment>,
}

fn queued() -> RequestStatus {
    RequestStatus::Queued
}

/// How the server clamped a range that exceeded the video.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimeAdjustment {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub original: Option<TimeRange>,
    #[serde(default)]
    pub adjusted: Option<TimeRange>,
    #[serde(default)]
    pub video_duration: Option<f64>,
}

/// A `{start, end}` pair in source seconds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
pub struct TimeRange {
    pub start: f64,
    pub end: f64,
}

/// `GET /shorts/:id/status`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusData {
    #[serde(rename = "_id", alias = "requestId")]
    pub id: RequestId,
    pub status: RequestStatus,
    #[serde(default)]
    pub step: Option<Step>,
    #[serde(default)]
    pub step_message: Option<String>,
    #[serde(default)]
    pub progress: Option<f64>,
    /// Owner e-mail: personal data, never logged by this crate.
    #[serde(default)]
    pub user_email: Option<String>,
    /// Free text; only present when failed.
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub is_demo: Option<bool>,
}

/// `GET /shorts/:id`. Answered for non-completed requests too, with `shorts` empty or partial.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShortsDocument {
    #[serde(rename = "_id", alias = "requestId")]
    pub id: RequestId,
    pub status: RequestStatus,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub user_email: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub file_url: Option<String>,
    /// As processed, i.e. after any time adjustment.
    #[serde(default)]
    pub start: Option<f64>,
    #[serde(default)]
    pub end: Option<f64>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    /// Template *name* (e.g. `hormozi1`), not its id.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub caption_language: Option<String>,
    #[serde(default)]
    pub heatmap: Vec<serde_json::Value>,
    #[serde(default)]
    pub sentences: Vec<Sentence>,
    #[serde(default)]
    pub preferred_length: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub shorts: Vec<Short>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl ShortsDocument {
    /// Clips that rendered (no `error` flag and a URL), best `viral_score` first; the API does
    /// not promise any order.
    pub fn usable_shorts_by_score(&self) -> Vec<&Short> {
        let mut v: Vec<&Short> = self.shorts.iter().filter(|s| s.is_usable()).collect();
        v.sort_by(|a, b| {
            b.viral_score
                .unwrap_or(f64::MIN)
                .total_cmp(&a.viral_score.unwrap_or(f64::MIN))
        });
        v
    }
}

/// A transcribed sentence.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Sentence {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub sentence: Option<String>,
    #[serde(default)]
    pub start: Option<f64>,
    #[serde(default)]
    pub end: Option<f64>,
}

/// One generated clip. Its `id` is opaque (UUID in `GET`, 24-hex in webhooks).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Short {
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// No range assumed: `GET` shows 0–100, the webhook docs 0–10.
    #[serde(default, rename = "viral_score")]
    pub viral_score: Option<f64>,
    #[serde(default, rename = "video_url")]
    pub video_url: Option<String>,
    #[serde(default)]
    pub start_timestamp: Option<f64>,
    #[serde(default)]
    pub end_timestamp: Option<f64>,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub sentence_indexes: Vec<u32>,
    #[serde(default)]
    pub recompiling: bool,
    /// A clip can fail while its request completes.
    #[serde(default)]
    pub error: bool,
    #[serde(default)]
    pub error_message: Option<String>,
}

impl Short {
    /// Rendered and downloadable.
    pub fn is_usable(&self) -> bool {
        !self.error && self.video_url.as_deref().is_some_and(|u| !u.is_empty())
    }
}

/// Sort key for `GET /shorts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SortBy {
    CreatedAt,
    UpdatedAt,
}

/// Sort direction for `GET /shorts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// `GET /shorts` query; unset fields use the server defaults (page 1, limit 20, createdAt desc).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RequestStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<SortBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<SortOrder>,
}

/// `GET /shorts` page.
#[derive(Debug, Clone, Deserialize)]
pub struct ListData {
    /// Items that do not parse (e.g. an id that is not 24-hex) are skipped with a warning, so
    /// one odd record cannot hide the others from `find_request`.
    #[serde(default, deserialize_with = "lenient_items")]
    pub requests: Vec<RequestSummary>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// One list item. Items use `requestId`; `start`/`end`/`fileUrl` are not documented for list
/// items and are read only if present.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSummary {
    #[serde(alias = "_id")]
    pub request_id: RequestId,
    pub status: RequestStatus,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub file_url: Option<String>,
    /// Seconds of the processed window, judging by the docs' example.
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub start: Option<f64>,
    #[serde(default)]
    pub end: Option<f64>,
}

/// List pagination as documented (`page, limit, totalPages, totalCount`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    #[serde(default)]
    pub page: u32,
    #[serde(default)]
    pub limit: u32,
    #[serde(default)]
    pub total_pages: u32,
    #[serde(default)]
    pub total_count: u64,
}

/// `DELETE /shorts/:id`; `message` is synthesised for a 204.
#[derive(Debug, Clone, Deserialize)]
pub struct DeleteData {
    #[serde(default)]
    pub message: Option<String>,
}

/// `GET /templates`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplatesData {
    #[serde(default)]
    pub templates: Vec<Template>,
    #[serde(default)]
    pub default_template_id: Option<String>,
    #[serde(default)]
    pub default_template_name: Option<String>,
}

/// A caption template.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub template_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub thumbnail: Option<String>,
    #[serde(default)]
    pub order: Option<i64>,
    #[serde(default)]
    pub preview: Option<String>,
    #[serde(default)]
    pub gif: Option<String>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn lenient_items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RequestSummary>, D::Error> {
    let raw = Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter_map(|v| match serde_json::from_value::<RequestSummary>(v) {
            Ok(item) => Some(item),
            Err(e) => {
                tracing::warn!(error.message = %e, "ssemble list item skipped");
                None
            }
        })
        .collect())
}

/// A timestamp we cannot parse is "unknown", not a reason to drop the whole document.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => parse_instant(&s),
        Some(serde_json::Value::Number(n)) => n.as_i64().and_then(|ms| {
            // Heuristic: epoch milliseconds are > 1e11.
            if ms > 100_000_000_000 {
                DateTime::from_timestamp_millis(ms)
            } else {
                DateTime::from_timestamp(ms, 0)
            }
        }),
        _ => None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn when_request_id_is_24_hex_should_parse_and_reject_others() {
        assert!(RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").is_ok());
        assert!(RequestId::parse("665A1B2C3D4E5F6A7B8C9D0E").is_ok());
        for bad in [
            "",
            "665a1b2c3d4e5f6a7b8c9d0",
            "665a1b2c3d4e5f6a7b8c9d0e0",
            "665a1b2c3d4e5f6a7b8c9d0g",
            "../shorts/665a1b2c3d4e5f6",
        ] {
            assert!(RequestId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn when_status_is_unknown_should_keep_it_and_not_be_terminal() {
        let s: RequestStatus = serde_json::from_str("\"rendering_v2\"").unwrap();
        assert_eq!(s, RequestStatus::Unknown("rendering_v2".into()));
        assert!(!s.is_terminal());
        let done: RequestStatus = serde_json::from_str("\"TASK_COMPLETE\"").unwrap();
        assert_eq!(done, RequestStatus::Completed);
        let step: Step = serde_json::from_str("\"uploading_to_cdn\"").unwrap();
        assert_eq!(step.as_str(), "uploading_to_cdn");
    }

    #[test]
    fn when_request_serialized_should_use_wire_names_and_hide_webhook_in_debug() {
        let mut r = CreateShortRequest::new(Source::FileUrl("https://cdn/x.mp4".into()), 0.0, 60.0);
        r.preferred_length = Some(PreferredLength::Under30sec);
        r.webhook_url = Some(SecretString::from("https://hook/?token=s3cr3t"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["fileUrl"], "https://cdn/x.mp4");
        assert!(v.get("url").is_none());
        assert_eq!(v["preferredLength"], "under30sec");
        assert_eq!(v["webhookUrl"], "https://hook/?token=s3cr3t");
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }

    #[test]
    fn when_a_list_item_is_malformed_should_skip_only_that_item() {
        let l: ListData = serde_json::from_value(serde_json::json!({
            "requests": [
                {"requestId": "not-hex", "status": "queued"},
                {"requestId": "665a1b2c3d4e5f6a7b8c9d0e", "status": "queued"}
            ]
        }))
        .unwrap();
        assert_eq!(l.requests.len(), 1);
        assert_eq!(
            l.requests[0].request_id.as_str(),
            "665a1b2c3d4e5f6a7b8c9d0e"
        );
    }

    #[test]
    fn when_shorts_have_errors_should_rank_only_usable_by_score() {
        let doc: ShortsDocument = serde_json::from_value(serde_json::json!({
            "_id": "665a1b2c3d4e5f6a7b8c9d0e", "status": "completed",
            "shorts": [
                {"id": "a", "viral_score": 40, "video_url": "http://x/a"},
                {"id": "b", "viral_score": 99, "video_url": null, "error": true},
                {"id": "c", "viral_score": 70.5, "video_url": "http://x/c"}
            ]
        }))
        .unwrap();
        let ids: Vec<&str> = doc
            .usable_shorts_by_score()
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["c", "a"]);
    }
}
