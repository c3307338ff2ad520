//! Reelay's client API (API Gateway HTTP API → lambda_http).

pub mod accounts;
pub mod http_handler;
pub mod routes;
pub mod view;
pub mod wiring;

pub use http_handler::{Deps, api_key_hash, function_handler};
