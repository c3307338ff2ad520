//! Cold start: tracing, configuration, clients once, then the runtime loop.

use lambda_http::{Error, Request, service_fn};
use ssemble_webhook::config::Config;
use ssemble_webhook::{handler, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut init = reelay_aws::InitPhases::start();
    lambda_http::tracing::init_default_subscriber();
    init.mark("tracing");
    let config = Config::from_env().inspect_err(
        |e| tracing::error!(error.message = %e, "cold start: configuration incomplete"),
    )?;
    init.mark("config");
    let sdk = reelay_aws::load_sdk_config().await.inspect_err(
        |e| tracing::error!(error.message = %e, "cold start: configuration incomplete"),
    )?;
    init.mark("sdk");
    let deps = wiring::live(&sdk, &config).await?;
    init.mark("wiring");
    init.finish();
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(handler(deps, req).await)
    }))
    .await
}
