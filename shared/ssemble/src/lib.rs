//! Ssemble AI Clipping API client.
//!
//! Built around two facts of that API: every create costs a credit and has no idempotency
//! key (so a lost response is resolved with [`SsembleClient::find_request`], never by a blind
//! retry), and the account budget is small (100 requests/hour by default), so every result
//! and every error carries the [`RateLimitInfo`] its response reported.

// Errors carry the response's rate-limit headers and error details by value so callers can
// budget on failures; they are rare next to network latency, so their size is not a concern.
#![allow(clippy::result_large_err)]

mod client;
pub mod config;
pub mod error;
pub mod model;
mod port;
pub mod rate_limit;
pub mod recovery;
pub mod webhook;

pub use client::SsembleClient;
pub use config::{
    AuthScheme, BASE_URL_ENV, DEFAULT_BASE_URL, FindPolicy, RetryPolicy, SsembleConfig,
};
pub use error::{ApiError, BackoffHint, Endpoint, ErrorClass, ErrorCode, RetryWait, WaitSource};
pub use model::*;
pub use port::{
    AMBIGUOUS_CODE, INVALID_OPTION_CODE, budget_scope, budgeted_client, create_request,
    domain_client, upstream_error,
};
pub use rate_limit::RateLimitInfo;
pub use recovery::{CreateOutcome, FindCriteria, FindOutcome};
pub use webhook::{WebhookEvent, WebhookParseError, WebhookShort, parse_webhook};
