//! Counts as CloudWatch embedded-metric-format lines: one JSON document printed on stdout is a
//! metric (Lambda ships stdout to the function's log group, where CloudWatch extracts it), so a
//! function needs no metrics client, no permission and no network call to count something. Each
//! count is written when it is counted, inside the invocation: nothing is buffered, so there is no
//! per-invocation flush to miss when Lambda freezes the sandbox.
//!
//! Hand-written on purpose (issue 11, measured 2026-12-03; figures and harness in
//! `bench/emf-eval`):
//! - `metrics_cloudwatch_embedded` 0.10.0 writes one dimension set per document
//!   (`[["Stage","Function"]]`): the `[Stage]` alarms would see nothing unless every count were
//!   written twice; +176 KB (+12.9 %) on a minimal `lambda_runtime` binary.
//! - AWS Labs' `metrique-writer-format-emf` 0.1.26 writes both sets in one directive, but it
//!   always turns on `metrique-writer`'s features, and with them `tracing-subscriber`'s defaults
//!   in every function: the release reconciler grew 8,009,760 → 8,510,768 bytes (+501 KB,
//!   +6.3 %; those features alone +470 KB), `tracing-log` makes the runtime's log init forward
//!   every dependency's `log` records, the lock grows 26 crates and Reelay's MSRV 1.88 → 1.91.
//!   Its 0.3–0.7 µs a line against 2–4 µs here is nothing at a few lines an invocation.
//!
//! The document below is the one `metrique` would write too; the tests here and
//! `infra/template/tests/alarms.rs` read it back as CloudWatch does.

use reelay_domain::ports::Clock;
use serde_json::{Value, json};

use crate::SystemClock;

/// The namespace every Reelay metric is published under.
pub const NAMESPACE: &str = "Reelay";

/// The dimension sets a count is published under: per stage (what an alarm watches) and, for the
/// metrics in [`PER_FUNCTION`], per stage and function (where to look). An alarm must name one of
/// its metric's sets exactly, or it watches a metric that never arrives
/// (`infra/template/tests/alarms.rs` holds the template to it).
pub const DIMENSION_SETS: [&[&str]; 2] = [&["Stage"], &["Stage", "Function"]];

/// The metrics more than one function emits, the only ones also published per function: for a
/// metric one function emits, the per-function series is the per-stage one again, and CloudWatch
/// bills every series ($0.30 a month): 39 series a stage before, 27 now.
pub const PER_FUNCTION: [&str; 5] = [
    "RendersConfirmed",
    "RendersFailed",
    "PublishUnknown",
    "WebhooksAccepted",
    "WebhooksRejected",
];

/// The dimension sets `name` is published under (see [`PER_FUNCTION`]).
pub fn dimension_sets(name: &str) -> &'static [&'static [&'static str]] {
    if PER_FUNCTION.contains(&name) {
        &DIMENSION_SETS
    } else {
        &DIMENSION_SETS[..1]
    }
}

/// The metrics the functions count: jobs created (ingest API); renders submitted, refused by
/// Ssemble, and held (Ssemble's budget spent, or an operator's hold) by the render submitter;
/// the publisher's init outcomes and its waits (an account's budget, cap or schedule); jobs that
/// entered `publish_unknown` (publisher or reconciler); webhooks accepted, and refused or failed
/// (a failure asks for a redelivery), told apart by `Function`; per reconciler run one
/// `ReconcilerRun` (its absence is what the missed-run alarm watches) and the jobs it found due,
/// moved, and failed to move, and its lag (how overdue the most overdue job it looked at was);
/// jobs whose render was confirmed done or failed, by the Ssemble webhook or the reconciler.
pub const METRICS: [&str; 17] = [
    "JobsCreated",
    "RendersSubmitted",
    "RendersRejected",
    "RenderWaits",
    "RendersConfirmed",
    "RendersFailed",
    "PublishAccepted",
    "PublishRejected",
    "PublishUnknown",
    "PublishWaits",
    "WebhooksAccepted",
    "WebhooksRejected",
    "ReconcilerRun",
    "ReconcileDue",
    "ReconcileMoved",
    "ReconcileFailed",
    "ReconcileLag",
];

/// The unit of `name`: the reconciler's lag is a time in milliseconds, every other metric a count.
pub fn unit_of(name: &str) -> &'static str {
    if name == "ReconcileLag" {
        "Milliseconds"
    } else {
        "Count"
    }
}

/// The EMF document for `value` (in [`unit_of`] `name`) of `name`, emitted by `function` of
/// `stage` at `timestamp_ms`.
pub fn metric_line(
    stage: &str,
    function: &str,
    name: &str,
    value: u64,
    timestamp_ms: i64,
) -> Value {
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimension_sets(name),
                "Metrics": [{"Name": name, "Unit": unit_of(name)}],
            }],
        },
        "Stage": stage,
        "Function": function,
    });
    if let Some(map) = line.as_object_mut() {
        map.insert(name.to_owned(), Value::from(value));
    }
    line
}

/// Where metric lines go: stdout on Lambda (CloudWatch reads them there). A local runner that
/// draws its own display on the terminal sends them to its log file instead ([`set_sink`]).
static SINK: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Sends every metric line of this process to `sink` (set once, before the first metric).
pub fn set_sink(sink: fn(&str)) {
    let _ = SINK.set(sink);
}

/// Prints `value` counts of `name` for `function` now (nothing for a zero count).
pub fn emit(function: &str, name: &str, value: u64) {
    if value == 0 {
        return;
    }
    static STAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stage = STAGE.get_or_init(|| std::env::var("STAGE").unwrap_or_else(|_| "local".into()));
    let line = metric_line(stage, function, name, value, SystemClock.now().as_millis()).to_string();
    match SINK.get() {
        Some(sink) => sink(&line),
        None => println!("{line}"),
    }
}

/// One webhook delivery of `function`: accepted, or refused or failed (a failure asks for a
/// redelivery).
pub fn webhook(function: &str, accepted: bool) {
    let name = if accepted {
        "WebhooksAccepted"
    } else {
        "WebhooksRejected"
    };
    emit(function, name, 1);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The line as printed, parsed back: what CloudWatch reads.
    fn printed(name: &str, value: u64) -> Value {
        let line = metric_line("prod", "publisher", name, value, 1_780_000_000_000).to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        serde_json::from_str(&line).unwrap_or_default()
    }

    /// The lag is a time: CloudWatch would sum and chart it as a count otherwise.
    #[test]
    fn the_reconcilers_lag_is_in_milliseconds_and_everything_else_a_count() {
        for name in METRICS {
            let unit =
                printed(name, 1)["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"].clone();
            let want = if name == "ReconcileLag" {
                "Milliseconds"
            } else {
                "Count"
            };
            assert_eq!(unit, want, "{name}");
        }
    }

    #[test]
    fn a_count_is_a_document_cloudwatch_can_read() {
        let line = printed("PublishUnknown", 2);
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().cloned();
        assert_eq!(directives.as_ref().map(Vec::len), Some(1), "{line}");
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "Reelay");
        assert_eq!(spec["Metrics"].as_array().map(Vec::len), Some(1), "{line}");
        assert_eq!(spec["Metrics"][0]["Name"], "PublishUnknown");
        assert_eq!(spec["Metrics"][0]["Unit"], "Count");
        // Both sets, exactly: a `[Stage]` alarm sums every function only if `[Stage]` is one.
        let sets: Vec<Vec<&str>> = spec["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|set| {
                set.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect()
            })
            .collect();
        assert_eq!(sets, [vec!["Stage"], vec!["Stage", "Function"]]);
        assert_eq!(sets, DIMENSION_SETS.map(<[&str]>::to_vec));
        // Every dimension named in a set is a member of the document, with its value.
        let named: BTreeSet<&str> = sets.into_iter().flatten().collect();
        for d in named {
            assert!(line.get(d).is_some_and(Value::is_string), "{d}: {line}");
        }
        assert_eq!(line["Stage"], "prod");
        assert_eq!(line["Function"], "publisher");
        assert_eq!(line["PublishUnknown"], 2);
        assert_eq!(line["_aws"]["Timestamp"], 1_780_000_000_000_i64);
    }

    /// A metric one function emits is one series a stage; `Function` stays on the line for the
    /// log reader, outside every dimension set.
    #[test]
    fn a_metric_of_one_function_is_published_per_stage_only() {
        for name in METRICS {
            let line = printed(name, 1);
            let sets = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"].clone();
            let want = if PER_FUNCTION.contains(&name) {
                json!([["Stage"], ["Stage", "Function"]])
            } else {
                json!([["Stage"]])
            };
            assert_eq!(sets, want, "{name}");
            assert_eq!(line["Function"], "publisher");
        }
        assert!(PER_FUNCTION.iter().all(|n| METRICS.contains(n)));
    }

    #[test]
    fn every_declared_metric_is_a_member_of_its_line() {
        for name in METRICS {
            let line = printed(name, 1);
            assert_eq!(line[name], 1, "{line}");
            assert_eq!(
                line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
                name
            );
        }
    }
}
