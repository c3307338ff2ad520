//! Cold-start wiring only: configuration, clients once, then one reconcile run per schedule tick.
use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use reconciler::wiring::{Config, live_deps};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env().inspect_err(
        |e| tracing::error!(error.message = %e, "cold start: configuration incomplete"),
    )?;
    let options = reconciler::RunOptions::from_env().inspect_err(
        |e| tracing::error!(error.message = %e, "cold start: configuration invalid"),
    )?;
    let sdk = reelay_aws::load_sdk_config().await;
    let deps = live_deps(&sdk, &config).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The run stops before the function's own timeout.
        let remaining = event
            .context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let report = reconciler::run(deps, Instant::now() + remaining, options).await;
        Ok::<_, Error>(serde_json::to_value(report)?)
    }))
    .await
}
