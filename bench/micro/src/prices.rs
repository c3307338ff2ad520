//! AWS list prices, us-east-1, on-demand, in USD — the only constants the figures use.
//!
//! Source: the public pricing pages (aws.amazon.com/dynamodb/pricing/on-demand/,
//! /sqs/pricing/, /lambda/pricing/, /secrets-manager/pricing/, /api-gateway/pricing/) as they
//! stand since DynamoDB's on-demand price cut of 2024-11-01; transcribed from those pages,
//! not fetched at run time (this machine has no route to them). Free tiers are ignored.

/// Prices as of this date (the pages' figures unchanged since 2024-11-01).
pub const PRICES_AS_OF: &str = "2024-11-01 (us-east-1 list prices, free tiers ignored)";

/// DynamoDB on-demand, Standard table class: per write request unit.
pub const DYNAMO_PER_WRU: f64 = 0.625 / 1e6;
/// DynamoDB on-demand, Standard table class: per read request unit.
pub const DYNAMO_PER_RRU: f64 = 0.125 / 1e6;
/// SQS FIFO queue: per request (each 64 KB chunk of a payload is one request).
pub const SQS_FIFO_PER_REQUEST: f64 = 0.50 / 1e6;
/// Lambda: per invocation.
pub const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// Lambda x86_64: per GB-second (first 6 billion GB-s a month).
pub const LAMBDA_X86_PER_GB_S: f64 = 0.000_016_666_7;
/// Lambda arm64: per GB-second (first 7.5 billion GB-s a month).
pub const LAMBDA_ARM_PER_GB_S: f64 = 0.000_013_333_4;
/// Secrets Manager: per API call ($0.05 per 10,000).
pub const SECRETS_PER_CALL: f64 = 0.05 / 1e4;
/// API Gateway HTTP API: per request (first 300 million a month).
pub const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
/// KMS: per request ($0.03 per 10,000 symmetric requests: the token vault's GenerateDataKey and
/// Decrypt).
pub const KMS_PER_REQUEST: f64 = 0.03 / 1e4;
