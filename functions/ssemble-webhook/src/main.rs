//! Cold-start wiring only. The handler logic lands with the pipeline issue; until then the
//! function acknowledges its event so the template, build and bootstrap can be proven together.
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        tracing::info!(request_id = %event.context.request_id, "event received");
        Ok::<Value, Error>(json!({ "batchItemFailures": [] }))
    }))
    .await
}
