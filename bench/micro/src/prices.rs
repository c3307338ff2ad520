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

// ---- The whole bill (`crate::bill`): the rest of what the template deploys. ----
//
// Sources, by page (aws.amazon.com/...): /dynamodb/pricing/on-demand/ (storage, PITR),
// /sqs/pricing/ (standard), /lambda/pricing/, /secrets-manager/pricing/, /kms/pricing/,
// /cloudwatch/pricing/ (logs, metrics, alarms, dashboards), /eventbridge/pricing/,
// /ec2/pricing/on-demand/ (data transfer, which Lambda's page refers to). us-east-1, on-demand,
// free tiers ignored (including the 100 GB/month of free data transfer out). Transcribed from the
// pages as they read in 2025 (no change to any of these since DynamoDB's 2024-11-01 cut), not
// fetched: this machine has no route to them, so check them before quoting the bill.

/// When the bill's prices were transcribed, and on what terms.
pub const BILL_PRICES_AS_OF: &str = "us-east-1 list prices as published in 2025 (DynamoDB since its 2024-11-01 cut), transcribed, not fetched; free tiers ignored";

/// DynamoDB Standard table class: per GB-month stored (table and GSIs, 100 B overhead per item).
pub const DYNAMO_STORAGE_PER_GB_MONTH: f64 = 0.25;
/// DynamoDB continuous backups (PITR): per GB-month of table size.
pub const DYNAMO_PITR_PER_GB_MONTH: f64 = 0.20;
/// SQS standard queue: per request (the FIFO price is [`SQS_FIFO_PER_REQUEST`]).
pub const SQS_STANDARD_PER_REQUEST: f64 = 0.40 / 1e6;
/// Secrets Manager: per secret per month (prorated by the hour).
pub const SECRETS_PER_SECRET_MONTH: f64 = 0.40;
/// KMS: per customer managed key per month; each of its first two rotations adds as much again
/// (a key rotated yearly costs $1, $2, then $3 a month).
pub const KMS_PER_KEY_MONTH: f64 = 1.00;
/// KMS: per request ($0.03 per 10,000 symmetric requests: GenerateDataKey, Decrypt).
pub const KMS_PER_REQUEST: f64 = 0.03 / 1e4;
/// CloudWatch Logs: per GB ingested (Standard log class).
pub const LOGS_INGEST_PER_GB: f64 = 0.50;
/// CloudWatch Logs: per GB-month archived (stored).
pub const LOGS_STORAGE_PER_GB_MONTH: f64 = 0.03;
/// CloudWatch: per custom metric per month (first 10,000; EMF-extracted metrics included,
/// prorated by the hour the metric is published).
pub const METRIC_PER_MONTH: f64 = 0.30;
/// CloudWatch: per standard-resolution alarm metric per month (a metric-math alarm pays for
/// each metric it reads).
pub const ALARM_METRIC_PER_MONTH: f64 = 0.10;
/// CloudWatch: per high-resolution (period < 60 s) alarm metric per month.
pub const ALARM_HIGH_RES_METRIC_PER_MONTH: f64 = 0.30;
/// CloudWatch: per dashboard per month beyond the account's first three.
pub const DASHBOARD_PER_MONTH: f64 = 3.00;
/// EventBridge Scheduler (`ScheduleV2`): per invocation (after 14 million a month free).
/// Scheduled rules on the default event bus (SAM `Type: Schedule`) are not charged.
pub const SCHEDULER_PER_INVOCATION: f64 = 1.00 / 1e6;
/// Data transfer out of AWS to the internet: per GB (first 10 TB a month).
pub const DATA_OUT_PER_GB: f64 = 0.09;
