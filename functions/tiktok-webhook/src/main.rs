//! Cold-start wiring only: tracing, configuration and clients (once), then the runtime.
use lambda_http::{Error, Request, service_fn};
use tiktok_webhook::{function_handler, live_deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let deps = live_deps().await?;
    lambda_http::run(service_fn(|req: Request| {
        let deps = &deps;
        async move { Ok::<_, Error>(function_handler(deps, req).await) }
    }))
    .await
}
