//! Local runtime for Reelay functions: the real handlers driven the way AWS drives them.
//!
//! - [`HttpFront`]: API Gateway HTTP API on localhost, payload format 2.0 events parsed by
//!   `lambda_http::request::from_str`, so handlers see what they see on AWS.
//! - [`SqsDriver`]: Lambda's SQS event source mapping, with ReportBatchItemFailures semantics.
//! - [`Ticker`]: an EventBridge schedule that never overlaps runs.
//! - [`LocalRuntime`]: starts and stops them together.
//!
//! Drivers take handler closures, so any function's `function_handler` plugs in without this
//! crate depending on the functions.

mod error;
mod function;
pub mod http;
mod outcome;
pub mod schedule;
pub mod sqs;
mod supervisor;

pub use error::LocalError;
pub use function::{FunctionSpec, LAMBDA_MAX_TIMEOUT, LOCAL_ACCOUNT_ID, default_region};
pub use http::{HttpFront, HttpStats, RouteMatch, Routes};
pub use outcome::InvocationOutcome;
pub use schedule::{Schedule, TickStats, Ticker};
pub use sqs::{BatchResult, SqsCounters, SqsDriver, SqsSource, SqsStats};
pub use supervisor::LocalRuntime;
