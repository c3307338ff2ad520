//! What the reconciler counts, as CloudWatch reads it: one `ReconcilerRun` per completed run,
//! also an idle one (the missed-run alarm breaches on its absence), and the jobs it failed to
//! move. Its own test binary: the metric sink is one per process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::Duration;

use reconciler::{Deps, handler};
use reelay_testkit::World;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn lines_of(metric: &str) -> Vec<serde_json::Value> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l.get(metric).is_some())
        .collect()
}

#[tokio::test]
async fn every_run_is_counted_even_an_idle_one() {
    reelay_aws::metrics::set_sink(|line| LINES.lock().unwrap().push(line.to_owned()));
    let w = World::new()
        .tenant("tenant_a")
        .account("tenant_a", "acct_1");
    let deps = Deps { core: w.core() };

    let report = handler(&deps, w.clock.now().plus(Duration::from_secs(60))).await;
    assert_eq!(report.due, 0, "nothing is due: {report:?}");
    let runs = lines_of("ReconcilerRun");
    assert_eq!(runs.len(), 1, "one run, one count");
    assert_eq!(runs[0]["ReconcilerRun"], 1);
    assert_eq!(runs[0]["Function"], "reconciler");
    assert!(runs[0]["Stage"].is_string());
    assert!(
        lines_of("ReconcileFailed").is_empty() && lines_of("PublishUnknown").is_empty(),
        "zero counts are not printed"
    );

    handler(&deps, w.clock.now().plus(Duration::from_secs(60))).await;
    assert_eq!(lines_of("ReconcilerRun").len(), 2);
}
