//! Baseline: the hand-written emitter of shared/aws/src/metrics.rs, in a lambda_runtime binary.
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const DIMENSION_SETS: [&[&str]; 2] = [&["Stage"], &["Stage", "Function"]];

fn metric_line(stage: &str, function: &str, name: &str, value: u64, ts: i64) -> Value {
    let mut line = json!({
        "_aws": {"Timestamp": ts, "CloudWatchMetrics": [{"Namespace": "Reelay",
            "Dimensions": DIMENSION_SETS, "Metrics": [{"Name": name, "Unit": "Count"}]}]},
        "Stage": stage, "Function": function,
    });
    if let Some(m) = line.as_object_mut() {
        m.insert(name.to_owned(), Value::from(value));
    }
    line
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn emit(out: &mut String, function: &str, name: &str, value: u64) {
    out.push_str(&metric_line("prod", function, name, value, now()).to_string());
    out.push('\n');
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // As every Reelay function starts (functions/*/src/main.rs).
    lambda_runtime::tracing::init_default_subscriber();
    if std::env::args().nth(1).as_deref() == Some("bench") {
        let mut out = String::new();
        let t = Instant::now();
        emit(&mut out, "reconciler", "ReconcilerRun", 1);
        let first = t.elapsed();
        print!("{out}");
        println!("hand: first line {} ns", first.as_nanos());
        let n = 200_000u32;
        let t = Instant::now();
        for i in 0..n {
            out.clear();
            emit(&mut out, "reconciler", "ReconcilerRun", u64::from(i) + 1);
        }
        println!(
            "hand: {:.0} ns/emit",
            t.elapsed().as_nanos() as f64 / f64::from(n)
        );
        return Ok(());
    }
    lambda_runtime::run(service_fn(|_e: LambdaEvent<Value>| async {
        let mut out = String::new();
        emit(&mut out, "reconciler", "ReconcilerRun", 1);
        print!("{out}");
        Ok::<_, Error>(Value::Null)
    }))
    .await
}
