//! Counts as CloudWatch embedded-metric-format lines: one JSON document printed on stdout is a
//! metric (Lambda ships stdout to the function's log group, where CloudWatch extracts it), so a
//! function needs no metrics client, no permission and no network call to count something.

use reelay_domain::ports::Clock;
use serde_json::{Value, json};

use crate::SystemClock;

/// The namespace every Reelay metric is published under.
pub const NAMESPACE: &str = "Reelay";

/// The EMF document for `value` counts of `name`, emitted by `function` at `timestamp_ms`.
pub fn metric_line(function: &str, name: &str, value: u64, timestamp_ms: i64) -> Value {
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        "Function": function,
    });
    if let Some(map) = line.as_object_mut() {
        map.insert(name.to_owned(), Value::from(value));
    }
    line
}

/// Prints `value` counts of `name` for `function` now (nothing for a zero count).
pub fn emit(function: &str, name: &str, value: u64) {
    if value == 0 {
        return;
    }
    println!(
        "{}",
        metric_line(function, name, value, SystemClock.now().as_millis())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_a_document_cloudwatch_can_read() {
        let line = metric_line("publisher", "PublishUnknown", 2, 1_780_000_000_000);
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "Reelay");
        assert_eq!(spec["Metrics"][0]["Name"], "PublishUnknown");
        assert_eq!(spec["Metrics"][0]["Unit"], "Count");
        // Every dimension and metric named in the spec must be a member of the document.
        assert_eq!(spec["Dimensions"][0][0], "Function");
        assert_eq!(line["Function"], "publisher");
        assert_eq!(line["PublishUnknown"], 2);
        assert_eq!(line["_aws"]["Timestamp"], 1_780_000_000_000_i64);
    }
}
