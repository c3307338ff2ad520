//! Cold-start wiring only: configuration, clients once, then the HTTP handler.
use ingest_api::config::Config;
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut init = reelay_aws::InitPhases::start();
    lambda_http::tracing::init_default_subscriber();
    init.mark("tracing");
    let config = Config::from_env()?;
    init.mark("config");
    let sdk = reelay_aws::load_sdk_config().await.inspect_err(
        |e| tracing::error!(error.message = %e, "cold start: configuration incomplete"),
    )?;
    init.mark("sdk");
    let deps = ingest_api::wiring::live(&sdk, &config).await?;
    init.mark("wiring");
    init.finish();
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(ingest_api::handler(deps, req).await)
    }))
    .await
}
