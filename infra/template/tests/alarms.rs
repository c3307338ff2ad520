//! Every alarm on Reelay's own metrics watches a metric the code emits, under a dimension set the
//! code publishes: an alarm filtering on dimensions no metric line carries can never fire (the
//! `PublishUnknown` alarm once filtered on `Stage` while the lines carried only `Function`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use reelay_aws::metrics::{DIMENSION_SETS, METRICS, NAMESPACE};
use reelay_template::Template;

const TEMPLATE: &str = include_str!("../../../template.yaml");

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
    let published: Vec<BTreeSet<String>> = DIMENSION_SETS
        .iter()
        .map(|set| set.iter().map(|d| (*d).to_owned()).collect())
        .collect();
    for (id, metric, dims) in alarms {
        assert!(
            METRICS.contains(&metric.as_str()),
            "{id}: {metric} is never emitted"
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
    let published: Vec<BTreeSet<String>> = DIMENSION_SETS
        .iter()
        .map(|set| set.iter().map(|d| (*d).to_owned()).collect())
        .collect();
    assert!(
        reelay_alarms(&t)
            .iter()
            .any(|(_, _, dims)| !published.contains(dims))
    );
}
