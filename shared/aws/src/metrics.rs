//! Counts as CloudWatch embedded-metric-format lines: one JSON document printed on stdout is a
//! metric (Lambda ships stdout to the function's log group, where CloudWatch extracts it), so a
//! function needs no metrics client, no permission and no network call to count something.

use reelay_domain::ports::Clock;
use serde_json::{Value, json};

use crate::SystemClock;

/// The namespace every Reelay metric is published under.
pub const NAMESPACE: &str = "Reelay";

/// The dimension sets every count is published under: per stage (what an alarm watches) and per
/// stage and function (where to look). An alarm must name one of these sets exactly, or it
/// watches a metric that never arrives (`infra/template/tests/alarms.rs` holds the template to it).
pub const DIMENSION_SETS: [&[&str]; 2] = [&["Stage"], &["Stage", "Function"]];

/// The metrics the functions count: the publisher's init outcomes, jobs that entered
/// `publish_unknown` (publisher or reconciler), and per reconciler run one `ReconcilerRun` (its
/// absence is what the missed-run alarm watches) and the jobs it failed to move.
pub const METRICS: [&str; 5] = [
    "PublishAccepted",
    "PublishRejected",
    "PublishUnknown",
    "ReconcilerRun",
    "ReconcileFailed",
];

/// The EMF document for `value` counts of `name`, emitted by `function` of `stage` at
/// `timestamp_ms`.
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
                "Dimensions": DIMENSION_SETS,
                "Metrics": [{"Name": name, "Unit": "Count"}],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_a_document_cloudwatch_can_read() {
        let line = metric_line("prod", "publisher", "PublishUnknown", 2, 1_780_000_000_000);
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "Reelay");
        assert_eq!(spec["Metrics"][0]["Name"], "PublishUnknown");
        assert_eq!(spec["Metrics"][0]["Unit"], "Count");
        // Every dimension and metric named in the spec must be a member of the document.
        assert_eq!(spec["Dimensions"][0][0], "Stage");
        assert_eq!(spec["Dimensions"][1][1], "Function");
        for set in DIMENSION_SETS {
            for d in set {
                assert!(line.get(*d).is_some_and(Value::is_string), "{d}");
            }
        }
        assert_eq!(line["Stage"], "prod");
        assert_eq!(line["Function"], "publisher");
        assert_eq!(line["PublishUnknown"], 2);
        assert_eq!(line["_aws"]["Timestamp"], 1_780_000_000_000_i64);
    }
}
