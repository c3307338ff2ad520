//! Secrets Manager behaviours the OAuth token store relies on (rotated refresh tokens).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use endpoint_conformance::{Service, local, provision_isolated, sdk_config};
use reelay_template::ResourceKinds;

#[tokio::test]
async fn secrets_put_secret_value_makes_the_new_version_current_and_keeps_the_previous() {
    let config = sdk_config(Service::SecretsManager).await;
    let p = provision_isolated(&config, local(ResourceKinds::SECRETS)).await;
    let client = Client::new(&config);
    // Named as the functions name per-account token secrets: under the template's prefix.
    let prefix = p
        .env_var("TIKTOK_TOKEN_SECRET_PREFIX")
        .expect("prefix from the template");
    assert!(
        prefix.contains(&p.scope),
        "{prefix} is not isolated by {}",
        p.scope
    );
    let name = format!("{prefix}acct-1");

    let v1 = client
        .create_secret()
        .name(&name)
        .secret_string(r#"{"refresh_token":"r1"}"#)
        .send()
        .await
        .unwrap();
    let v2 = client
        .put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"refresh_token":"r2"}"#)
        .send()
        .await
        .unwrap();

    let current = client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(current.secret_string(), Some(r#"{"refresh_token":"r2"}"#));
    assert_eq!(current.version_id(), v2.version_id());
    let previous = client
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(previous.secret_string(), Some(r#"{"refresh_token":"r1"}"#));
    assert_eq!(previous.version_id(), v1.version_id());

    let versions = client
        .list_secret_version_ids()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    let stages_of = |id: Option<&str>| -> Vec<String> {
        versions
            .versions()
            .iter()
            .find(|v| v.version_id() == id)
            .map(|v| v.version_stages().to_vec())
            .unwrap_or_default()
    };
    assert_eq!(stages_of(v2.version_id()), vec!["AWSCURRENT".to_owned()]);
    assert_eq!(stages_of(v1.version_id()), vec!["AWSPREVIOUS".to_owned()]);
}

#[tokio::test]
async fn secrets_missing_secret_is_resource_not_found() {
    let config = sdk_config(Service::SecretsManager).await;
    let p = provision_isolated(&config, local(ResourceKinds::SECRETS)).await;
    let prefix = p
        .env_var("TIKTOK_TOKEN_SECRET_PREFIX")
        .expect("prefix from the template");

    let err = Client::new(&config)
        .get_secret_value()
        .secret_id(format!("{prefix}never-connected"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();

    // The publisher maps this to "account needs re-authorisation", not to a retry.
    assert!(
        matches!(err, GetSecretValueError::ResourceNotFoundException(_)),
        "{err:?}"
    );
}
