//! Every FIFO queue a function consumes runs in high-throughput mode: its groups are accounts,
//! so with the default per-queue scope a stage stops at 300 messages a second however many
//! accounts it serves; with deduplication and the quota per message group it grows with them.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use reelay_template::Template;
use reelay_template::expr::Expr;

const TEMPLATE: &str = include_str!("../../../template.yaml");

/// The consumed FIFO queues that are not in high-throughput mode.
fn not_high_throughput(t: &Template) -> BTreeSet<String> {
    let consumed: BTreeSet<String> = t.functions().iter().flat_map(|f| f.sqs_sources()).collect();
    t.queues()
        .into_iter()
        .filter(|q| q.is_fifo() && consumed.contains(q.id))
        .filter(|q| {
            let says = |key: &str, value: &str| {
                matches!(q.resource.prop(key), Some(Expr::String(v)) if v == value)
            };
            !(says("DeduplicationScope", "messageGroup")
                && says("FifoThroughputLimit", "perMessageGroupId"))
        })
        .map(|q| q.id.to_owned())
        .collect()
}

#[test]
fn every_consumed_fifo_queue_is_in_high_throughput_mode() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    let consumed: Vec<String> = t.functions().iter().flat_map(|f| f.sqs_sources()).collect();
    assert!(
        consumed.len() >= 2,
        "the render and publish queues: {consumed:?}"
    );
    assert_eq!(not_high_throughput(&t), BTreeSet::new());
}

#[test]
fn a_queue_left_at_the_per_queue_quota_is_caught() {
    let text = TEMPLATE.replacen(
        "      FifoThroughputLimit: perMessageGroupId\n",
        "      FifoThroughputLimit: perQueue\n",
        1,
    );
    assert_ne!(text, TEMPLATE, "the mutation applied");
    let t = Template::from_yaml_str(&text).unwrap();
    assert_eq!(not_high_throughput(&t).len(), 1);
}
