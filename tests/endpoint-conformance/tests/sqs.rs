//! SQS FIFO behaviours the render and publish queues rely on, on queues provisioned from
//! template.yaml (FIFO, explicit dedup ids, redrive to a FIFO DLQ).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use endpoint_conformance::{Service, local, provision_isolated, sdk_config, template};
use reelay_template::{ProvisionOptions, Provisioned, ResourceKinds};

async fn queues(options: ProvisionOptions) -> (Client, Provisioned) {
    let config = sdk_config(Service::Sqs).await;
    let provisioned = provision_isolated(&config, options).await;
    (Client::new(&config), provisioned)
}

fn url<'p>(p: &'p Provisioned, id: &str) -> &'p str {
    &p.queue(id).expect("template declares the queue").url
}

async fn send(client: &Client, queue: &str, group: &str, dedup: &str, body: &str) {
    client
        .send_message()
        .queue_url(queue)
        .message_group_id(group)
        .message_deduplication_id(dedup)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

async fn receive(client: &Client, queue: &str, max: i32) -> Vec<Message> {
    client
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(max)
        .wait_time_seconds(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

/// Polls until a message arrives or `within` passes.
async fn receive_within(client: &Client, queue: &str, within: Duration) -> Option<Message> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(m) = receive(client, queue, 1).await.into_iter().next() {
            return Some(m);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn body(m: &Message) -> &str {
    m.body().unwrap_or_default()
}

async fn delete(client: &Client, queue: &str, m: &Message) {
    client
        .delete_message()
        .queue_url(queue)
        .receipt_handle(m.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn sqs_fifo_send_without_deduplication_id_is_rejected() {
    let (client, p) = queues(local(ResourceKinds::QUEUES)).await;
    let queue = url(&p, "PublishQueue");

    let err = client
        .send_message()
        .queue_url(queue)
        .message_group_id("acct#1")
        .message_body("no dedup id")
        .send()
        .await
        .unwrap_err();

    // ContentBasedDeduplication is off: every producer must name its message.
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
    assert!(receive(&client, queue, 10).await.is_empty());
}

#[tokio::test]
async fn sqs_fifo_same_deduplication_id_twice_is_delivered_once() {
    let (client, p) = queues(local(ResourceKinds::QUEUES)).await;
    let queue = url(&p, "PublishQueue");

    send(&client, queue, "acct#1", "job#1:publish", "first").await;
    send(&client, queue, "acct#1", "job#1:publish", "retried send").await;

    let got = receive(&client, queue, 10).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["first"]);
    delete(&client, queue, &got[0]).await;
    // Still inside the 5-minute window after the delete: the copy stays suppressed.
    send(&client, queue, "acct#1", "job#1:publish", "late duplicate").await;
    assert!(receive(&client, queue, 10).await.is_empty());
}

#[tokio::test]
async fn sqs_fifo_group_in_flight_blocks_only_its_own_group() {
    let (client, p) = queues(local(ResourceKinds::QUEUES)).await;
    let queue = url(&p, "PublishQueue");
    send(&client, queue, "acct#A", "a1", "A1").await;
    send(&client, queue, "acct#A", "a2", "A2").await;

    let a1 = receive(&client, queue, 1).await;
    assert_eq!(a1.iter().map(body).collect::<Vec<_>>(), vec!["A1"]);
    send(&client, queue, "acct#B", "b1", "B1").await;

    // A1 is in flight: A2 waits behind it, B flows.
    let while_in_flight = receive(&client, queue, 10).await;
    assert_eq!(
        while_in_flight.iter().map(body).collect::<Vec<_>>(),
        vec!["B1"]
    );

    delete(&client, queue, &a1[0]).await;
    let after = receive(&client, queue, 10).await;
    assert_eq!(after.iter().map(body).collect::<Vec<_>>(), vec!["A2"]);
}

#[tokio::test]
async fn sqs_change_message_visibility_releases_now_or_delays() {
    let (client, p) = queues(local(ResourceKinds::QUEUES)).await;
    let queue = url(&p, "PublishQueue");
    send(&client, queue, "acct#1", "m1", "M").await;

    let first = receive(&client, queue, 1).await.pop().expect("delivered");
    assert!(
        receive(&client, queue, 1).await.is_empty(),
        "hidden while in flight"
    );

    client
        .change_message_visibility()
        .queue_url(queue)
        .receipt_handle(first.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let second = receive(&client, queue, 1)
        .await
        .pop()
        .expect("released by visibility 0");
    assert_eq!(body(&second), "M");

    // The publisher's throttle: hide the account's message for a while instead of failing it.
    client
        .change_message_visibility()
        .queue_url(queue)
        .receipt_handle(second.receipt_handle().unwrap())
        .visibility_timeout(2)
        .send()
        .await
        .unwrap();
    let delayed_at = Instant::now();
    assert!(
        receive(&client, queue, 1).await.is_empty(),
        "hidden by the delay"
    );
    let third = receive_within(&client, queue, Duration::from_secs(6))
        .await
        .expect("back after the delay");
    assert_eq!(body(&third), "M");
    assert!(
        delayed_at.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        delayed_at.elapsed()
    );
}

#[tokio::test]
async fn sqs_message_moves_to_the_fifo_dlq_after_max_receive_count() {
    let max_receives = template()
        .queue("RenderQueue")
        .and_then(|q| q.redrive())
        .expect("RenderQueue has a redrive policy")
        .max_receive_count;
    let (client, p) = queues(local(ResourceKinds::QUEUES).with_visibility_timeout(1)).await;
    let queue = url(&p, "RenderQueue");
    let dlq = url(&p, "RenderDlq");
    send(&client, queue, "acct#1", "poison", "poison").await;

    for attempt in 1..=max_receives {
        let m = receive_within(&client, queue, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("receive {attempt} of {max_receives}"));
        let count = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse::<u64>().ok());
        assert_eq!(count, Some(attempt));
    }
    // The next receive would exceed maxReceiveCount: SQS moves the message instead of delivering it.
    assert!(
        receive_within(&client, queue, Duration::from_secs(3))
            .await
            .is_none()
    );
    let dead = receive_within(&client, dlq, Duration::from_secs(5))
        .await
        .expect("in the DLQ");
    assert_eq!(body(&dead), "poison");
    assert_eq!(
        dead.attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
            .map(String::as_str),
        Some("acct#1")
    );
}
