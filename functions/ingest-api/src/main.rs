//! Cold-start wiring only: configuration, clients once, then the HTTP handler.
use ingest_api::config::Config;
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = reelay_aws::load_sdk_config().await;
    let deps = ingest_api::wiring::live(&sdk, &config).await?;
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(ingest_api::handler(deps, req).await)
    }))
    .await
}
