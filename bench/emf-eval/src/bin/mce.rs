//! metrics_cloudwatch_embedded: `metrics` facade, lambda feature flushing per invocation.
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use std::time::Instant;

async fn handler(_e: LambdaEvent<Value>) -> Result<Value, Error> {
    metrics::counter!("ReconcilerRun", "Function" => "reconciler").increment(1);
    Ok(Value::Null)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // As every Reelay function starts (functions/*/src/main.rs).
    lambda_runtime::tracing::init_default_subscriber();
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("Reelay")
        .with_dimension("Stage", "prod")
        .init()
        .map_err(|e| e.to_string())?;
    metrics::describe_counter!("ReconcilerRun", metrics::Unit::Count, "");
    if std::env::args().nth(1).as_deref() == Some("bench") {
        let mut out = Vec::new();
        let t = Instant::now();
        metrics::counter!("ReconcilerRun", "Function" => "reconciler").increment(1);
        collector.flush(&mut out)?;
        let first = t.elapsed();
        print!("{}", String::from_utf8_lossy(&out));
        println!("mce: first line {} ns", first.as_nanos());
        let n = 200_000u32;
        let t = Instant::now();
        for i in 0..n {
            out.clear();
            metrics::counter!("ReconcilerRun", "Function" => "reconciler")
                .increment(u64::from(i) + 1);
            collector.flush(&mut out)?;
        }
        println!(
            "mce: {:.0} ns/emit",
            t.elapsed().as_nanos() as f64 / f64::from(n)
        );
        return Ok(());
    }
    metrics_cloudwatch_embedded::lambda::handler::run(collector, handler).await
}
