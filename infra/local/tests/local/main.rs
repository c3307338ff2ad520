//! reelay-local's drivers against real parts: MiniStack through the AWS SDK for the SQS driver,
//! real HTTP over loopback for the front, real time for the ticker. One binary, one link.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod http_front;
mod runtime;
mod sqs_driver;
mod ticker;
