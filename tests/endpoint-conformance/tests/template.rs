//! `reelay_template::provision` creates what template.yaml declares, with the declared shapes,
//! and a second run changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use aws_sdk_sqs::types::QueueAttributeName;
use endpoint_conformance::{Service, sdk_config, template, unique_suffix};
use reelay_template::{ProvisionOptions, provision};

const FUNCTION_ENV: [&str; 14] = [
    "STAGE",
    "TABLE_NAME",
    "RENDER_QUEUE_URL",
    "PUBLISH_QUEUE_URL",
    "RENDER_DLQ_URL",
    "PUBLISH_DLQ_URL",
    "SSEMBLE_SECRET_ID",
    "TIKTOK_APP_SECRET_ID",
    "TIKTOK_TOKEN_SECRET_PREFIX",
    "TOKEN_TABLE_NAME",
    "TOKEN_KEY_ID",
    "SSEMBLE_API_BASE_URL",
    "TIKTOK_API_BASE_URL",
    "TIKTOK_AUTH_BASE_URL",
];

fn env_of(p: &reelay_template::Provisioned, function: &str, key: &str) -> Option<String> {
    p.function_env(function)
        .expect("function in the template")
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

#[tokio::test]
async fn template_provision_creates_the_declared_shapes_and_is_idempotent() {
    let config = sdk_config(Service::Sqs).await;
    let t = template();
    let suffix = unique_suffix();
    let mut options = ProvisionOptions::new("local").with_suffix(&suffix);
    options
        .secret_values
        .insert("SsembleSecret".into(), r#"{"apiKey":"local-key"}"#.into());

    let first = provision(&config, &t, &options).await.unwrap();
    let second = provision(&config, &t, &options).await.unwrap();
    assert_eq!(first.env_vars(), second.env_vars());
    assert_eq!(first.queues, second.queues);
    assert_eq!(
        first.keys, second.keys,
        "a re-run finds the key by its alias"
    );

    let env = first.env_vars();
    let keys: BTreeSet<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    for key in FUNCTION_ENV {
        assert!(keys.contains(key), "{key} missing from {keys:?}");
    }
    assert_eq!(first.env_var("STAGE"), Some("local"));
    assert_eq!(
        first.env_var("TABLE_NAME"),
        Some(format!("reelay-local-{suffix}").as_str())
    );
    // Ingest may derive it per request (empty); the render submitter needs the API URL, which
    // exists only on AWS: no single local value, so it is left to the caller.
    assert_eq!(first.unresolved_env, vec!["PUBLIC_BASE_URL".to_owned()]);
    assert_eq!(
        env_of(&first, "IngestApiFunction", "PUBLIC_BASE_URL"),
        Some(String::new())
    );
    assert_eq!(
        env_of(&first, "RenderSubmitterFunction", "PUBLIC_BASE_URL"),
        None
    );
    assert_eq!(
        env_of(&first, "RenderSubmitterFunction", "RENDER_QUEUE_URL").as_deref(),
        Some(first.queue("RenderQueue").unwrap().url.as_str())
    );
    assert_eq!(
        env_of(&first, "TikTokWebhookFunction", "RENDER_QUEUE_URL"),
        None
    );

    // With the parameter set, every function agrees and the key is shared.
    let mut with_url = options.clone();
    with_url
        .parameters
        .insert("PublicBaseUrl".into(), "http://127.0.0.1:3000".into());
    let third = provision(&config, &t, &with_url).await.unwrap();
    assert_eq!(
        third.env_var("PUBLIC_BASE_URL"),
        Some("http://127.0.0.1:3000")
    );
    assert!(third.unresolved_env.is_empty());

    // Table: keys and both GSIs as declared.
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = ddb
        .describe_table()
        .table_name(first.env_var("TABLE_NAME").unwrap())
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| k.attribute_name().to_owned())
        .collect();
    assert_eq!(keys, vec!["pk", "sk"]);
    let indexes: BTreeSet<_> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name().map(str::to_owned))
        .collect();
    assert_eq!(
        indexes,
        BTreeSet::from(["due".to_owned(), "gsi1".to_owned()])
    );

    // The token table (one hash key) and its key, which the token functions are configured with.
    let tokens = ddb
        .describe_table()
        .table_name(first.env_var("TOKEN_TABLE_NAME").unwrap())
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<_> = tokens
        .key_schema()
        .iter()
        .map(|k| k.attribute_name().to_owned())
        .collect();
    assert_eq!(keys, vec!["pk"]);
    assert!(tokens.global_secondary_indexes().is_empty());
    let key = first.key("TokenKey").unwrap();
    assert_eq!(first.env_var("TOKEN_KEY_ID"), Some(key.arn.as_str()));
    let meta = aws_sdk_kms::Client::new(&config)
        .describe_key()
        .key_id(&key.alias)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_id(), key.key_id);
    assert_eq!(
        meta.key_spec(),
        Some(&aws_sdk_kms::types::KeySpec::SymmetricDefault)
    );
    assert_eq!(
        meta.key_usage(),
        Some(&aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
    );
    assert!(meta.enabled());
    assert!(
        env_of(&first, "TikTokWebhookFunction", "TOKEN_KEY_ID").is_none()
            && env_of(&first, "RenderSubmitterFunction", "TOKEN_TABLE_NAME").is_none(),
        "only the token functions are configured with the tokens"
    );

    // Queues: FIFO, explicit dedup, visibility and redrive to the declared DLQ by its real ARN.
    let sqs = aws_sdk_sqs::Client::new(&config);
    for (queue, dlq, visibility) in [
        ("RenderQueue", "RenderDlq", "180"),
        ("PublishQueue", "PublishDlq", "1800"),
    ] {
        let q = first.queue(queue).unwrap();
        assert!(
            q.name.contains(&suffix) && q.name.ends_with(".fifo"),
            "{}",
            q.name
        );
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&q.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let get = |name: QueueAttributeName| attributes.get(&name).map(String::as_str);
        assert_eq!(get(QueueAttributeName::FifoQueue), Some("true"), "{queue}");
        assert_eq!(
            get(QueueAttributeName::ContentBasedDeduplication),
            Some("false"),
            "{queue}"
        );
        assert_eq!(
            get(QueueAttributeName::VisibilityTimeout),
            Some(visibility),
            "{queue}"
        );
        let redrive: serde_json::Value =
            serde_json::from_str(get(QueueAttributeName::RedrivePolicy).unwrap()).unwrap();
        assert_eq!(
            redrive["deadLetterTargetArn"],
            first.queue(dlq).unwrap().arn.as_str()
        );
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "5"
        );
    }

    // Secrets: the seed where given, the template's placeholder document elsewhere.
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let value_of = |id: &'static str| {
        let sm = sm.clone();
        let arn = first.secret(id).unwrap().arn.clone();
        async move {
            sm.get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .unwrap()
                .secret_string
        }
    };
    assert_eq!(
        value_of("SsembleSecret").await.as_deref(),
        Some(r#"{"apiKey":"local-key"}"#)
    );
    let app: serde_json::Value =
        serde_json::from_str(&value_of("TikTokAppSecret").await.unwrap()).unwrap();
    assert!(
        app.get("clientKey").is_some() && app.get("clientSecret").is_some(),
        "{app}"
    );
}
