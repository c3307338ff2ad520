//! Cold-start wiring only: tracing, configuration and clients (once), then the runtime.
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use publisher::{function_handler, live_deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = live_deps().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = &deps;
        async move { Ok::<_, Error>(function_handler(deps, event.payload).await) }
    }))
    .await
}
