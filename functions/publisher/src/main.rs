//! Cold start: tracing, configuration, clients once, then the runtime loop.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use publisher::config::Config;
use publisher::{handler, wiring};
use reelay_domain::UtcTime;

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
    let deps = wiring::live(&sdk, &config).await?;
    init.mark("wiring");
    init.finish();
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline =
            UtcTime::from_millis(i64::try_from(event.context.deadline).unwrap_or(i64::MAX));
        Ok::<_, Error>(handler(deps, event.payload, deadline).await)
    }))
    .await
}
