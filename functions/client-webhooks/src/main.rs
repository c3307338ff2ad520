//! Cold start: tracing, configuration, clients once, then the runtime loop.

use client_webhooks::config::Config;
use client_webhooks::wiring;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut init = reelay_aws::InitPhases::start();
    lambda_runtime::tracing::init_default_subscriber();
    init.mark("tracing");
    let config = Config::from_env().inspect_err(
        |e| tracing::error!(error.message = %e, "cold start: configuration incomplete"),
    )?;
    init.mark("config");
    let sdk = reelay_aws::load_sdk_config().await.inspect_err(
        |e| tracing::error!(error.message = %e, "cold start: configuration incomplete"),
    )?;
    init.mark("sdk");
    let deps = wiring::live(&sdk, &config)?;
    init.mark("wiring");
    init.finish();
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(deps.handle(event.payload).await?)
    }))
    .await
}
