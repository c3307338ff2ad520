//! Client ↔ simulator over real HTTP; the simulator's inspection API is the ground truth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod oauth;
mod port;
mod posting;
mod upload;
mod webhooks;
