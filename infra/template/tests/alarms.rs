//! Every alarm on Reelay's own metrics watches a metric the code emits, under a dimension set the
//! code publishes: an alarm filtering on dimensions no metric line carries can never fire (the
//! `PublishUnknown` alarm once filtered on `Stage` while the lines carried only `Function`).
//! What is emitted is read back from a line the code writes, not from its constants, so a change
//! to the emitter's namespace or dimension sets fails here too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use reelay_aws::metrics::{METRICS, NAMESPACE, metric_line};
use reelay_template::Template;
use reelay_template::expr::{Expr, sub_variables};

const TEMPLATE: &str = include_str!("../../../template.yaml");

/// The namespace and dimension sets of the line the code writes for one count of `metric`.
fn emitted(metric: &str) -> (String, Vec<BTreeSet<String>>) {
    let line = metric_line("prod", "publisher", metric, 1, 0).to_string();
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
    let spec = &doc["_aws"]["CloudWatchMetrics"][0];
    let sets = spec["Dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|set| {
            set.as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    (spec["Namespace"].as_str().unwrap().to_owned(), sets)
}

/// (alarm id, metric name, dimension names) of every alarm in Reelay's namespace.
fn reelay_alarms(t: &Template) -> Vec<(String, String, BTreeSet<String>)> {
    t.ids_of("AWS::CloudWatch::Alarm")
        .filter_map(|id| {
            let alarm = &t.resources[id];
            (alarm.prop("Namespace")?.as_str()? == NAMESPACE).then_some(())?;
            let metric = alarm.prop("MetricName")?.as_str()?.to_owned();
            let dims = alarm
                .prop("Dimensions")
                .map(|d| {
                    d.as_list()
                        .iter()
                        .filter_map(|x| x.get("Name").and_then(|n| n.as_str()).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Some((id.to_owned(), metric, dims))
        })
        .collect()
}

#[test]
fn every_reelay_alarm_watches_a_metric_and_dimension_set_the_code_emits() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    let alarms = reelay_alarms(&t);
    assert!(
        !alarms.is_empty(),
        "the template alarms on Reelay's metrics"
    );
    for (id, metric, dims) in alarms {
        assert!(
            METRICS.contains(&metric.as_str()),
            "{id}: {metric} is never emitted"
        );
        let (namespace, published) = emitted(&metric);
        assert_eq!(
            namespace, NAMESPACE,
            "{id}: {metric} is written under {namespace}"
        );
        assert!(
            published.contains(&dims),
            "{id}: dimensions {dims:?} are not one of the published sets {published:?}"
        );
    }
}

#[test]
fn an_alarm_on_a_dimension_set_nobody_publishes_is_caught() {
    let text = TEMPLATE.replacen(
        "- {Name: Stage, Value: !Ref Stage}",
        "- {Name: Tenant, Value: x}",
        1,
    );
    assert_ne!(
        text, TEMPLATE,
        "the alarm's dimension is where this test expects it"
    );
    let t = Template::from_yaml_str(&text).unwrap();
    assert!(
        reelay_alarms(&t)
            .iter()
            .any(|(_, metric, dims)| !emitted(metric).1.contains(dims))
    );
}

/// The `Ref`s to functions inside a metric-math alarm's `Errors` metrics.
fn functions_watched_for(t: &Template, alarm: &str, metric: &str) -> BTreeSet<String> {
    t.resources[alarm]
        .prop("Metrics")
        .map(|m| m.as_list())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|q| q.get("MetricStat")?.get("Metric"))
        .filter(|m| m.get("MetricName").and_then(|n| n.as_str()) == Some(metric))
        .flat_map(|m| m.get("Dimensions").map(|d| d.as_list()).unwrap_or_default())
        .filter_map(|d| match d.get("Value") {
            Some(Expr::Ref(id)) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_function_is_in_the_errors_alarm() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    let functions: BTreeSet<String> = t.functions().iter().map(|f| f.id.to_owned()).collect();
    assert_eq!(functions.len(), 7, "{functions:?}");
    assert_eq!(
        functions_watched_for(&t, "FunctionErrorsAlarm", "Errors"),
        functions,
        "a function missing from FunctionErrorsAlarm can crash unnoticed"
    );
}

#[test]
fn a_reconciler_that_stops_running_breaches() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    let alarm = &t.resources["ReconcilerMissedAlarm"];
    assert_eq!(
        alarm.prop("MetricName").and_then(|m| m.as_str()),
        Some("ReconcilerRun")
    );
    assert_eq!(
        alarm.prop("TreatMissingData").and_then(|m| m.as_str()),
        Some("breaching"),
        "no data is exactly what a reconciler that does not run produces"
    );
    assert_eq!(
        alarm.prop("ComparisonOperator").and_then(|m| m.as_str()),
        Some("LessThanThreshold")
    );
}

/// The dashboard's body with every `${…}` replaced, parsed; and the Reelay metrics it draws.
fn dashboard(t: &Template) -> (serde_json::Value, BTreeSet<String>) {
    let Some(Expr::Sub { template, .. }) = t.resources["Dashboard"].prop("DashboardBody") else {
        panic!("DashboardBody is a !Sub")
    };
    let mut text = template.clone();
    for var in sub_variables(template) {
        text = text.replace(&format!("${{{var}}}"), "x");
    }
    let body: serde_json::Value = serde_json::from_str(&text).expect("the body is JSON");
    let mut drawn = BTreeSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        let mut namespace = String::new();
        for row in widget["properties"]["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            match row[0].as_str().unwrap() {
                "." => {}
                "..." => continue,
                ns => namespace = ns.to_owned(),
            }
            if namespace == NAMESPACE {
                drawn.insert(row[1].as_str().unwrap().to_owned());
            }
        }
    }
    (body, drawn)
}

#[test]
fn the_dashboard_draws_every_reelay_metric_and_only_those() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    let (body, drawn) = dashboard(&t);
    assert!(body["widgets"].as_array().unwrap().len() >= 6);
    let emitted: BTreeSet<String> = METRICS.iter().map(|m| (*m).to_owned()).collect();
    assert_eq!(drawn, emitted);
}
