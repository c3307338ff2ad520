//! Pins the DynamoDB, SQS FIFO, Secrets Manager and KMS behaviours Reelay relies on, against the local AWS endpoint.
//!
//! Every test provisions its own copy of template.yaml's resources under a random suffix, so the
//! suite runs in parallel against one emulator and exercises the template's shapes too.

use aws_config::{BehaviorVersion, SdkConfig};
use reelay_template::{ProvisionOptions, Provisioned, ResourceKinds, Template, provision};

/// How to run this suite; shown when no endpoint is configured.
pub const RUN_HINT: &str = "run it via `make test` (infra/scripts/test.sh) or \
    `tests/endpoint-conformance/run.sh`: they start the project's local AWS endpoint \
    (infra/scripts/aws-emulator.sh) and export AWS_ENDPOINT_URL";

/// The AWS service a test talks to; each may be pointed elsewhere with `AWS_ENDPOINT_URL_<SERVICE>`
/// (the DynamoDB tests also run against DynamoDB Local that way).
#[derive(Debug, Clone, Copy)]
pub enum Service {
    DynamoDb,
    Sqs,
    SecretsManager,
    Kms,
}

impl Service {
    fn endpoint_var(self) -> &'static str {
        match self {
            Service::DynamoDb => "AWS_ENDPOINT_URL_DYNAMODB",
            Service::Sqs => "AWS_ENDPOINT_URL_SQS",
            Service::SecretsManager => "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            Service::Kms => "AWS_ENDPOINT_URL_KMS",
        }
    }
}

/// The SDK configuration from the environment, exactly as the functions load it.
///
/// # Panics
/// Fails the calling test when no local endpoint is configured: this suite must never pass by
/// silently talking to nothing, or to a real account.
pub async fn sdk_config(service: Service) -> SdkConfig {
    let configured = |var: &str| std::env::var(var).is_ok_and(|v| !v.is_empty());
    assert!(
        configured("AWS_ENDPOINT_URL") || configured(service.endpoint_var()),
        "AWS_ENDPOINT_URL (or {}) is not set: {RUN_HINT}",
        service.endpoint_var()
    );
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A name-safe random suffix, unique per test.
pub fn unique_suffix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("c{}", &id[..10])
}

/// The repository's template.yaml.
///
/// # Panics
/// If the template does not parse (the template's own tests say why).
pub fn template() -> Template {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    match Template::from_path(path) {
        Ok(t) => t,
        Err(e) => panic!("template.yaml: {e}"),
    }
}

/// Provisions an isolated copy of the template's resources of `kinds` for stage `local`.
///
/// # Panics
/// If provisioning fails; the message carries the endpoint's answer.
pub async fn provision_isolated(config: &SdkConfig, options: ProvisionOptions) -> Provisioned {
    let options = ProvisionOptions {
        suffix: options.suffix.or_else(|| Some(unique_suffix())),
        ..options
    };
    match provision(config, &template(), &options).await {
        Ok(p) => p,
        Err(e) => panic!("provisioning {:?}: {e}", options.kinds),
    }
}

/// Shorthand: the options for an isolated local copy of `kinds`.
pub fn local(kinds: ResourceKinds) -> ProvisionOptions {
    ProvisionOptions::new("local").with_kinds(kinds)
}
