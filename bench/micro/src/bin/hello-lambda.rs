//! Cold-start baseline: the hello-world `lambda_runtime` function (as `cargo lambda new` makes
//! it, tracing included), built with the same release profile and toolchain as the six bootstraps.
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
