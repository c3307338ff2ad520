//! Cold-start wiring only: tracing, configuration, one SDK config, clients, then the runtime.
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use reelay_aws::{
    DynamoAccountStore, DynamoJobStore, FifoBatchProcessor, SecretCache, SqsWorkQueue, SystemClock,
    load_sdk_config,
};
use reelay_domain::Policy;
use reelay_ssemble::{RetryPolicy, SsembleClient, SsembleConfig};
use render_submitter::{Config, Deps, function_handler, ssemble_budget_scope};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env().inspect_err(
        |e| tracing::error!(error.message = %e, "cold start: configuration incomplete"),
    )?;
    let sdk = load_sdk_config().await;
    let secret = SecretCache::from_sdk(&sdk, Duration::from_secs(300))
        .ssemble(&config.ssemble_secret_id)
        .await?;
    // No retries inside the client: every call is charged to the budget before it is made.
    // Ten records share the function's 30 s; a create that outlasts this is an unknown outcome,
    // which the next check resolves by looking first.
    let ssemble = SsembleClient::new(SsembleConfig {
        retry: RetryPolicy::none(),
        request_timeout: Duration::from_secs(10),
        ..SsembleConfig::new(secret.api_key.clone()).with_base_url(&config.ssemble_api_base_url)
    })?;
    let deps = Deps {
        jobs: DynamoJobStore::from_env(&sdk)?,
        accounts: DynamoAccountStore::from_env(&sdk)?,
        queue: SqsWorkQueue::from_env(&sdk),
        clock: SystemClock,
        find_calls: ssemble.find_call_bound(),
        render: ssemble,
        batches: FifoBatchProcessor::from_env(&sdk, "RENDER_QUEUE_URL")?,
        policy: Policy::default(),
        limits: config.limits.clone(),
        budget_scope: ssemble_budget_scope(&secret.api_key),
        public_base_url: config.public_base_url.clone(),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = &deps;
        async move { Ok::<_, Error>(function_handler(deps, event.payload).await) }
    }))
    .await
}
