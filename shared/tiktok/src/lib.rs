//! TikTok Content Posting API and OAuth v2 client, chunked streaming upload and webhook verification.
//!
//! A publish: [`TikTokClient::creator_info`] → [`TikTokClient::init_direct_post`] (or
//! [`TikTokClient::init_inbox`], or [`TikTokClient::init_pull_or_upload`]) → persist `publish_id` →
//! [`TikTokClient::upload`] with a [`ChunkPlan`] and an [`UploadSource`] ([`HttpSource`], [`FileSource`]) →
//! [`TikTokClient::fetch_status`] and/or webhooks ([`TikTokClient::verify_webhook`]). An error with
//! [`TikTokError::is_outcome_unknown`] after an init means "reconcile, never re-init blindly".
//!
//! A Lambda runs the probe ([`TikTokClient::open_clip`]) and the upload
//! ([`TikTokClient::upload_within`]) under its [`Deadline`]: no request outlives it.
//!
//! Decisions follow `error.code`, never the HTTP status alone ([`classify`]). Every uncertain point of the
//! contract (chunk thresholds, timeouts, replay window, base URLs) is configuration in [`TikTokConfig`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod chunk;
mod client;
mod config;
mod deadline;
mod error;
mod oauth;
mod port;
mod source;
mod types;
mod upload;
mod webhook;

pub use chunk::{ChunkPlan, ChunkPlanError, ChunkRange};
pub use client::{InitOutcome, InitSource, TikTokClient, decode_api_response};
pub use config::{ChunkPolicy, TikTokConfig, Timeouts, UploadRetryPolicy};
pub use deadline::Deadline;
pub use error::{ErrorClass, TikTokError, classify, classify_response, is_known_code};
pub use oauth::{TokenSet, decode_token_response};
pub use port::{DEADLINE_CODE, TikTokPort, observed_status, post_info, token_set, upstream_error};
pub use source::{ByteStream, FileSource, HttpSource, SourceError, UploadSource};
pub use types::{
    ApiAck, CreatorInfo, InitResponse, PostInfo, PrivacyLevel, PublishStatus, PublishStatusKind,
    SourceInfo, deserialize_post_ids,
};
pub use upload::{UploadError, UploadReport};
pub use webhook::{
    ParsedWebhook, SignatureError, WebhookEnvelope, WebhookError, WebhookEvent, WebhookParseError,
    parse_webhook, sign_webhook, verify_signature,
};

/// The API version every call targets; logged with each request.
pub const API_VERSION: &str = "v2";
