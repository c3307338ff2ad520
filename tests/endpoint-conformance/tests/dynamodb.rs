//! DynamoDB behaviours the job store relies on. Every test name starts with `dynamodb_` so the same
//! tests can be pointed at DynamoDB Local: `AWS_ENDPOINT_URL_DYNAMODB=... cargo test -- dynamodb_`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TimeToLiveStatus,
    TransactWriteItem,
};
use endpoint_conformance::{Service, local, provision_isolated, sdk_config};
use reelay_template::ResourceKinds;

type Item = HashMap<String, AttributeValue>;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn key(pk: &str) -> Item {
    item(&[("pk", s(pk)), ("sk", s("job"))])
}

/// A fresh table from template.yaml (keys, GSIs, TTL) under a random suffix.
async fn table() -> (Client, String) {
    let config = sdk_config(Service::DynamoDb).await;
    let provisioned = provision_isolated(&config, local(ResourceKinds::TABLES)).await;
    let name = provisioned
        .table("Table")
        .expect("template declares Table")
        .name
        .clone();
    (Client::new(&config), name)
}

async fn get(client: &Client, table: &str, pk: &str) -> Option<Item> {
    client
        .get_item()
        .table_name(table)
        .set_key(Some(key(pk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

async fn put_if_absent(client: &Client, table: &str, it: Item) -> Result<(), PutItemError> {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(it))
        .condition_expression("attribute_not_exists(pk)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.into_service_error())
}

#[tokio::test]
async fn dynamodb_conditional_put_twice_fails_with_the_stored_item_and_keeps_it() {
    let (client, table) = table().await;
    let first = item(&[("pk", s("job#1")), ("sk", s("job")), ("body", s("first"))]);
    let second = item(&[("pk", s("job#1")), ("sk", s("job")), ("body", s("second"))]);

    put_if_absent(&client, &table, first.clone()).await.unwrap();
    let err = put_if_absent(&client, &table, second).await.unwrap_err();

    let PutItemError::ConditionalCheckFailedException(ccf) = err else {
        panic!("expected ConditionalCheckFailedException, got {err:?}");
    };
    // ALL_OLD: the idempotent replay answers from this item without a second read.
    assert_eq!(ccf.item(), Some(&first));
    assert_eq!(get(&client, &table, "job#1").await, Some(first));
}

async fn transition(
    client: &Client,
    table: &str,
    from: &str,
    to: &str,
    version: u64,
) -> Result<(), UpdateItemError> {
    client
        .update_item()
        .table_name(table)
        .set_key(Some(key("job#cas")))
        .update_expression("SET #s = :to, #v = :next")
        .condition_expression("#s = :from AND #v = :version")
        .expression_attribute_names("#s", "state")
        .expression_attribute_names("#v", "version")
        .expression_attribute_values(":from", s(from))
        .expression_attribute_values(":to", s(to))
        .expression_attribute_values(":version", n(version))
        .expression_attribute_values(":next", n(version + 1))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.into_service_error())
}

#[tokio::test]
async fn dynamodb_cas_update_lets_the_first_writer_win_and_rejects_the_stale_second() {
    let (client, table) = table().await;
    let mut it = key("job#cas");
    it.insert("state".into(), s("received"));
    it.insert("version".into(), n(1));
    put_if_absent(&client, &table, it).await.unwrap();

    transition(&client, &table, "received", "rendering", 1)
        .await
        .unwrap();
    // A second writer that read the same version loses, and sees what won.
    let err = transition(&client, &table, "received", "render_failed", 1)
        .await
        .unwrap_err();

    let UpdateItemError::ConditionalCheckFailedException(ccf) = err else {
        panic!("expected ConditionalCheckFailedException, got {err:?}");
    };
    let current = ccf.item().expect("ALL_OLD item");
    assert_eq!(current.get("state"), Some(&s("rendering")));
    assert_eq!(current.get("version"), Some(&n(2)));
    let stored = get(&client, &table, "job#cas").await.unwrap();
    assert_eq!(stored.get("state"), Some(&s("rendering")));
}

#[tokio::test]
async fn dynamodb_concurrent_cas_updates_have_exactly_one_winner() {
    let (client, table) = table().await;
    let mut it = key("job#cas");
    it.insert("state".into(), s("ready"));
    it.insert("version".into(), n(7));
    put_if_absent(&client, &table, it).await.unwrap();

    let attempts = (0..16).map(|_| transition(&client, &table, "ready", "publish_queued", 7));
    let results = futures::future::join_all(attempts).await;

    let winners = results.iter().filter(|r| r.is_ok()).count();
    let losers = results
        .iter()
        .filter(|r| matches!(r, Err(UpdateItemError::ConditionalCheckFailedException(_))))
        .count();
    assert_eq!((winners, losers), (1, 15), "{results:?}");
}

fn audit_put(table: &str, pk: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item(&[("pk", s(pk)), ("sk", s("event#1"))])))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .unwrap(),
        )
        .build()
}

fn state_check(table: &str, expected: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .condition_check(
            ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key("job#tx")))
                .condition_expression("#s = :expected")
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":expected", s(expected))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .unwrap(),
        )
        .build()
}

#[tokio::test]
async fn dynamodb_transaction_with_a_false_condition_is_cancelled_with_reasons_and_writes_nothing()
{
    let (client, table) = table().await;
    let mut job = key("job#tx");
    job.insert("state".into(), s("ready"));
    put_if_absent(&client, &table, job.clone()).await.unwrap();

    let err = client
        .transact_write_items()
        .transact_items(audit_put(&table, "job#tx-audit"))
        .transact_items(state_check(&table, "publishing"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();

    let TransactWriteItemsError::TransactionCanceledException(cancelled) = err else {
        panic!("expected TransactionCanceledException, got {err:?}");
    };
    let reasons: Vec<Option<&str>> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code())
        .collect();
    assert_eq!(reasons, vec![Some("None"), Some("ConditionalCheckFailed")]);
    assert_eq!(cancelled.cancellation_reasons()[1].item(), Some(&job));
    let audit = client
        .get_item()
        .table_name(&table)
        .set_key(Some(item(&[
            ("pk", s("job#tx-audit")),
            ("sk", s("event#1")),
        ])))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        audit.item, None,
        "a cancelled transaction must write nothing"
    );

    // The same transaction with a true condition commits both.
    client
        .transact_write_items()
        .transact_items(audit_put(&table, "job#tx-audit"))
        .transact_items(state_check(&table, "ready"))
        .send()
        .await
        .unwrap();
    let audit = client
        .get_item()
        .table_name(&table)
        .set_key(Some(item(&[
            ("pk", s("job#tx-audit")),
            ("sk", s("event#1")),
        ])))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(audit.item.is_some());
}

#[tokio::test]
async fn dynamodb_gsi1_query_by_range_and_sparse_due_index_hold_only_items_with_keys() {
    let (client, table) = table().await;
    for (pk, account, at, due) in [
        ("job#a", "acct#1", "t1", Some("2026-01-01T00:00:03Z")),
        ("job#b", "acct#1", "t2", None),
        ("job#c", "acct#1", "t3", Some("2026-01-01T00:00:01Z")),
        ("job#d", "acct#2", "t4", Some("2026-01-01T00:00:02Z")),
    ] {
        let mut it = key(pk);
        it.insert("gsi1pk".into(), s(account));
        it.insert("gsi1sk".into(), s(at));
        if let Some(due) = due {
            it.insert("due_pk".into(), s("due"));
            it.insert("due_sk".into(), s(&format!("{due}#{pk}")));
        }
        put_if_absent(&client, &table, it).await.unwrap();
    }

    let by_account = client
        .query()
        .table_name(&table)
        .index_name("gsi1")
        .key_condition_expression("gsi1pk = :a AND gsi1sk > :after")
        .expression_attribute_values(":a", s("acct#1"))
        .expression_attribute_values(":after", s("t1"))
        .scan_index_forward(false)
        .send()
        .await
        .unwrap();
    let pks: Vec<_> = by_account
        .items()
        .iter()
        .map(|i| i.get("pk").cloned())
        .collect();
    assert_eq!(pks, vec![Some(s("job#c")), Some(s("job#b"))]);

    // The reconciler's view: only jobs carrying due keys, oldest first.
    let due = client
        .query()
        .table_name(&table)
        .index_name("due")
        .key_condition_expression("due_pk = :d AND due_sk <= :now")
        .expression_attribute_values(":d", s("due"))
        .expression_attribute_values(":now", s("2026-01-01T00:00:02Z~"))
        .send()
        .await
        .unwrap();
    let pks: Vec<_> = due.items().iter().map(|i| i.get("pk").cloned()).collect();
    assert_eq!(pks, vec![Some(s("job#c")), Some(s("job#d"))]);
}

#[tokio::test]
async fn dynamodb_ttl_is_enabled_on_expires_at_as_the_template_declares() {
    let (client, table) = table().await;
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description().expect("TTL description");
    assert!(
        matches!(
            description.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ),
        "{description:?}"
    );
    assert_eq!(description.attribute_name(), Some("expires_at"));
}
