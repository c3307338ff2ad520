//! Cold-start wiring only: tracing, configuration, one SDK config, clients, then the runtime.
use std::time::Duration;

use lambda_http::{Error, Request, service_fn};
use reelay_aws::{
    DynamoAccountStore, DynamoJobStore, SecretCache, SqsWorkQueue, SystemClock, load_sdk_config,
};
use reelay_domain::Policy;
use reelay_ssemble::{RetryPolicy, SsembleClient, SsembleConfig};
use ssemble_webhook::{
    Config, DEFAULT_MAX_BODY_BYTES, DEFAULT_WORK_DEADLINE, Deps, function_handler,
    ssemble_budget_scope,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env().inspect_err(
        |e| tracing::error!(error.message = %e, "cold start: configuration incomplete"),
    )?;
    let sdk = load_sdk_config().await;
    let secret = SecretCache::from_sdk(&sdk, Duration::from_secs(300))
        .ssemble(&config.ssemble_secret_id)
        .await?;
    // No retries inside the client: every call is charged to the budget before it is made.
    // Status and document must both fit the 7 s work deadline.
    let ssemble = SsembleClient::new(SsembleConfig {
        retry: RetryPolicy::none(),
        request_timeout: Duration::from_secs(3),
        ..SsembleConfig::new(secret.api_key.clone()).with_base_url(&config.ssemble_api_base_url)
    })?;
    let deps = Deps {
        jobs: DynamoJobStore::from_env(&sdk)?,
        accounts: DynamoAccountStore::from_env(&sdk)?,
        queue: SqsWorkQueue::from_env(&sdk),
        clock: SystemClock,
        render: ssemble,
        policy: Policy::default(),
        limits: config.limits.clone(),
        budget_scope: ssemble_budget_scope(&secret.api_key),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        work_deadline: DEFAULT_WORK_DEADLINE,
    };
    lambda_http::run(service_fn(|req: Request| {
        let deps = &deps;
        async move { Ok::<_, Error>(function_handler(deps, req).await) }
    }))
    .await
}
