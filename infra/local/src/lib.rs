//! Local runtime for Reelay functions: the real handlers driven the way AWS drives them.
//!
//! - [`HttpFront`]: API Gateway HTTP API on localhost, payload format 2.0 events parsed by
//!   `lambda_http::request::from_str`, so handlers see what they see on AWS.
//! - [`SqsDriver`]: Lambda's SQS event source mapping, with ReportBatchItemFailures semantics.
//! - [`Ticker`]: an EventBridge schedule that never overlaps runs.
//! - [`LocalRuntime`]: starts and stops them together.
//! - [`Testbed`]: the template's resources on the local endpoint and both simulators, with no
//!   driver: what a function's own tests build its `Deps` on (through the function's
//!   `wiring::live`, with a `Config` from [`Wiring`]).
//! - [`Stack`]: the whole pipeline on a [`Testbed`] — every function's real handler, built in
//!   [`wiring`] and decorated by [`kill`]; [`demo`], [`progress`] and [`summary`] are the
//!   runner's (`src/bin/reelay-local.rs`) and the end-to-end tests' shared parts.
//!
//! Drivers take handler closures, so any function's `handler` plugs in without this
//! crate depending on the functions. A runner wires them like this:
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
//! use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
//! use lambda_http::{Body, Request, Response};
//! use lambda_runtime::LambdaEvent;
//! use reelay_local::{
//!     FunctionSpec, HttpFront, LocalRuntime, Routes, Schedule, SqsDriver, SqsSource, Ticker,
//! };
//! use reelay_template::Template;
//!
//! // Stand-ins for `handler(&deps, ...)` of each function crate.
//! async fn ingest(_req: Request) -> Response<Body> { Response::new(Body::Empty) }
//! async fn publish(_ev: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, lambda_runtime::Error> {
//!     Ok(SqsBatchResponse::default())
//! }
//! async fn reconcile(_ev: CloudWatchEvent) -> Result<(), lambda_runtime::Error> { Ok(()) }
//!
//! async fn run(sqs: aws_sdk_sqs::Client, publish_queue_url: String) -> Result<(), reelay_local::LocalError> {
//!     let template = Template::from_path("template.yaml")?;
//!     let mut runtime = LocalRuntime::new();
//!
//!     // Every HttpApi event of the function becomes a route, with its timeout.
//!     let routes = Routes::new().function_from_template(&template, "IngestApiFunction", ingest)?;
//!     let addr = SocketAddr::from(([127, 0, 0, 1], 3000));
//!     runtime.add_http("api", HttpFront::start_with_token(addr, routes, runtime.child_token()).await?);
//!
//!     // BatchSize, MaximumConcurrency and Timeout from the function's SQS event.
//!     let source = SqsSource::from_template(&template, "PublisherFunction", publish_queue_url)?;
//!     let spec = source.function.clone();
//!     let driver = SqsDriver::spawn_with(sqs, source, runtime.child_token(), move |event| {
//!         // A handler that wants the Lambda context gets a fresh one per invocation.
//!         publish(LambdaEvent::new(event, spec.context()))
//!     })
//!     .await?;
//!     runtime.add_sqs("publisher", driver);
//!
//!     let schedule = Schedule::from_template(&template, "ReconcilerFunction")?.fire_immediately();
//!     runtime.add_ticker("reconciler", Ticker::spawn_with(schedule, runtime.child_token(), reconcile));
//!
//!     runtime.run_until_ctrl_c().await
//! }
//! ```

pub mod client;
pub mod demo;
mod error;
mod function;
pub mod http;
mod ingest;
pub mod kill;
mod outcome;
pub mod progress;
pub mod receiver;
pub mod schedule;
pub mod sqs;
pub mod stack;
pub mod stream;
pub mod summary;
mod supervisor;
pub mod testbed;
pub mod wiring;

pub use error::LocalError;
pub use function::{FunctionSpec, LAMBDA_MAX_TIMEOUT, LOCAL_ACCOUNT_ID, default_region};
pub use http::{HttpCounters, HttpFront, HttpResult, HttpStats, RouteMatch, Routes};
#[cfg(feature = "ingest")]
pub use ingest::IngestDeps;
pub use outcome::InvocationOutcome;
pub use schedule::{Schedule, TickCounters, TickStats, Ticker};
pub use sqs::{BatchResult, SqsCounters, SqsDriver, SqsSource, SqsStats};
pub use stack::{Stack, StackError, StackOptions, Upstreams};
pub use stream::{StreamDriver, StreamSource};
pub use supervisor::{DriverStats, LocalRuntime};
pub use testbed::{
    ClipOrigin, Delivered, ShiftedClock, Snapshot, Testbed, received_job, rendered_job, with_clock,
};
pub use wiring::{Resources, UpstreamUrls, Wiring, WiringError};
