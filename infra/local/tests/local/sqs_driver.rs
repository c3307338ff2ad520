//! The SQS driver against MiniStack: Lambda's event shape, ReportBatchItemFailures, redrive,
//! FIFO group concurrency, failed invocations and graceful stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use reelay_local::{FunctionSpec, SqsDriver, SqsSource};
use tokio_util::sync::CancellationToken;

use crate::common::{eventually, fifo_queue};

type Seen = Arc<Mutex<Vec<SqsMessage>>>;

fn body(r: &SqsMessage) -> &str {
    r.body.as_deref().unwrap_or_default()
}

fn attr<'a>(r: &'a SqsMessage, name: &str) -> &'a str {
    r.attributes
        .get(name)
        .map(String::as_str)
        .unwrap_or_default()
}

fn seen_bodies(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|r| body(r).to_owned())
        .collect()
}

fn source(url: &str, timeout: Duration) -> SqsSource {
    SqsSource::new(url, FunctionSpec::new("PublisherFunction", timeout))
        .with_batch_size(10)
        .with_max_concurrency(4)
}

#[tokio::test]
async fn when_messages_are_sent_should_reach_the_handler_in_lambdas_shape_with_fifo_attributes() {
    let q = fifo_queue(5).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            q.send("acct-1", &format!("d{i}"), &format!(r#"{{"n":{i}}}"#))
                .await,
        );
    }
    let events: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let seen: Seen = Arc::default();
    let (e, s) = (events.clone(), seen.clone());
    let driver = SqsDriver::spawn(
        q.client.clone(),
        &q.url,
        None,
        2,
        10,
        move |event: SqsEvent| {
            e.lock()
                .unwrap()
                .push(serde_json::to_value(&event).unwrap());
            s.lock().unwrap().extend(event.records);
            async { SqsBatchResponse::default() }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        driver.queue_arn(),
        q.arn,
        "eventSourceARN comes from GetQueueAttributes"
    );

    eventually(
        Duration::from_secs(10),
        "3 records handled and deleted",
        || {
            let stats = driver.stats();
            async move { stats.deletes == 3 }
        },
    )
    .await;
    let records = seen.lock().unwrap().clone();
    assert_eq!(records.len(), 3);
    let got_ids: Vec<_> = records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(got_ids, ids, "one group arrives in send order");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(body(r), format!(r#"{{"n":{i}}}"#));
        assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(r.event_source_arn.as_deref(), Some(q.arn.as_str()));
        assert_eq!(r.aws_region.as_deref(), Some("us-east-1"));
        assert!(!r.receipt_handle.clone().unwrap_or_default().is_empty());
        assert_eq!(r.md5_of_body.as_deref().map(str::len), Some(32));
        assert_eq!(attr(r, "MessageGroupId"), "acct-1");
        assert_eq!(attr(r, "MessageDeduplicationId"), format!("d{i}"));
        assert!(!attr(r, "SequenceNumber").is_empty(), "FIFO SequenceNumber");
        assert_eq!(attr(r, "ApproximateReceiveCount"), "1");
        assert!(attr(r, "SentTimestamp").parse::<u64>().is_ok());
    }
    // The wire names Lambda uses, as a function deserialising the raw JSON would see them.
    let raw = events.lock().unwrap()[0].clone();
    let first = &raw["Records"][0];
    for key in [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ] {
        assert!(first.get(key).is_some(), "record lacks {key}: {first}");
    }
    driver.stop().await.unwrap();
    assert_eq!(q.depth().await, 0, "every handled record was deleted");
}

#[tokio::test]
async fn when_a_record_is_reported_failed_should_redeliver_it_and_delete_the_others() {
    let q = fifo_queue(2).await;
    q.send("acct-1", "a", "ok-1").await;
    q.send("acct-1", "b", "fail-once").await;
    q.send("acct-1", "c", "ok-2").await;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let driver = SqsDriver::spawn(
        q.client.clone(),
        &q.url,
        Some(&q.arn),
        2,
        10,
        move |event: SqsEvent| {
            let mut response = SqsBatchResponse::default();
            for r in &event.records {
                if body(r) == "fail-once" && attr(r, "ApproximateReceiveCount") == "1" {
                    response.add_failure(r.message_id.clone().unwrap());
                }
            }
            s.lock().unwrap().extend(event.records);
            async move { response }
        },
    )
    .await
    .unwrap();

    eventually(
        Duration::from_secs(15),
        "the failed record comes back and is deleted",
        || {
            let stats = driver.stats();
            async move { stats.deletes == 3 }
        },
    )
    .await;
    let records = seen.lock().unwrap().clone();
    let counts: HashMap<String, Vec<String>> = records.iter().fold(HashMap::new(), |mut m, r| {
        m.entry(body(r).to_owned())
            .or_default()
            .push(attr(r, "ApproximateReceiveCount").to_owned());
        m
    });
    assert_eq!(
        counts["ok-1"],
        ["1"],
        "a succeeded record is deleted, not redelivered"
    );
    assert_eq!(
        counts["ok-2"],
        ["1"],
        "a record after the failed one is deleted too when not listed"
    );
    assert_eq!(
        counts["fail-once"],
        ["1", "2"],
        "the listed record is redelivered"
    );
    let stats = driver.stats();
    assert_eq!((stats.failures, stats.failed_batches), (1, 0));
    driver.stop().await.unwrap();
    assert_eq!(q.depth().await, 0);
}

#[tokio::test]
async fn when_a_message_keeps_failing_should_end_in_the_dlq_after_max_receive_count() {
    let q = fifo_queue(1).await;
    let poison_id = q.send("acct-9", "p", "poison").await;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    // A panicking handler fails the whole invocation: nothing may be deleted.
    let driver = SqsDriver::spawn(
        q.client.clone(),
        &q.url,
        None,
        2,
        10,
        move |event: SqsEvent| {
            let poison = event.records.iter().any(|r| body(r) == "poison");
            s.lock().unwrap().extend(event.records);
            async move {
                assert!(!poison, "undecodable body");
                SqsBatchResponse::default()
            }
        },
    )
    .await
    .unwrap();

    let dlq = q.clone();
    let moved = Arc::new(Mutex::new(Vec::new()));
    let m = moved.clone();
    eventually(
        Duration::from_secs(25),
        "the poison message in the DLQ",
        move || {
            let (dlq, m) = (dlq.clone(), m.clone());
            async move {
                let out = dlq
                    .client
                    .receive_message()
                    .queue_url(&dlq.dlq_url)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .unwrap();
                let msgs = out.messages.unwrap_or_default();
                let found = !msgs.is_empty();
                m.lock().unwrap().extend(msgs);
                found
            }
        },
    )
    .await;
    let moved = moved.lock().unwrap().clone();
    assert_eq!(moved[0].message_id.as_deref(), Some(poison_id.as_str()));
    assert_eq!(moved[0].body.as_deref(), Some("poison"));
    let receives: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| attr(r, "ApproximateReceiveCount").to_owned())
        .collect();
    assert_eq!(
        receives,
        ["1", "2", "3", "4", "5"],
        "maxReceiveCount 5 from template.yaml"
    );
    let stats = driver.stats();
    assert_eq!((stats.failed_batches, stats.deletes), (5, 0));
    driver.stop().await.unwrap();
}

#[tokio::test]
async fn when_one_group_is_blocked_should_let_other_groups_flow_concurrently() {
    let q = fifo_queue(30).await;
    q.send("slow", "s1", "slow-1").await;
    q.send("slow", "s2", "slow-2").await;
    for i in 0..3 {
        q.send("fast", &format!("f{i}"), &format!("fast-{i}")).await;
    }
    let release = CancellationToken::new();
    let seen: Seen = Arc::default();
    let (s, r) = (seen.clone(), release.clone());
    let source = source(&q.url, Duration::from_secs(20))
        .with_batch_size(1)
        .with_max_concurrency(2);
    let driver = SqsDriver::spawn_with(
        q.client.clone(),
        source,
        CancellationToken::new(),
        move |event: SqsEvent| {
            let blocked = event.records.iter().any(|rec| body(rec) == "slow-1");
            s.lock().unwrap().extend(event.records);
            let r = r.clone();
            async move {
                if blocked {
                    r.cancelled().await;
                }
                SqsBatchResponse::default()
            }
        },
    )
    .await
    .unwrap();

    let s = seen.clone();
    let counters = driver.counters();
    eventually(
        Duration::from_secs(10),
        "every fast record handled and deleted while slow-1 is held",
        || {
            let bodies = seen_bodies(&s);
            let deletes = counters.snapshot().deletes;
            async move { deletes == 3 && bodies.iter().any(|b| b == "slow-1") }
        },
    )
    .await;
    let bodies = seen_bodies(&seen);
    assert!(
        !bodies.iter().any(|b| b == "slow-2"),
        "slow-2 must wait for slow-1 (FIFO group order): {bodies:?}"
    );
    let fast: Vec<_> = bodies
        .iter()
        .filter(|b| b.starts_with("fast"))
        .cloned()
        .collect();
    assert_eq!(fast, ["fast-0", "fast-1", "fast-2"]);
    assert_eq!(
        driver.stats().in_flight,
        1,
        "only the held batch is in flight"
    );

    release.cancel();
    eventually(
        Duration::from_secs(10),
        "slow-2 after slow-1 is released",
        || {
            let stats = driver.stats();
            async move { stats.deletes == 5 }
        },
    )
    .await;
    assert_eq!(
        seen_bodies(&seen).last().map(String::as_str),
        Some("slow-2")
    );
    driver.stop().await.unwrap();
}

#[tokio::test]
async fn when_the_handler_times_out_or_errors_should_keep_the_whole_batch() {
    let q = fifo_queue(1).await;
    q.send("acct-1", "a", "first").await;
    q.send("acct-1", "b", "second").await;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let timed_out = Arc::new(AtomicBool::new(false));
    let t = timed_out.clone();
    let source = source(&q.url, Duration::from_millis(300));
    let driver = SqsDriver::spawn_with(
        q.client.clone(),
        source,
        CancellationToken::new(),
        move |event: SqsEvent| {
            let receive = event
                .records
                .first()
                .map(|r| attr(r, "ApproximateReceiveCount").to_owned())
                .unwrap_or_default();
            s.lock().unwrap().extend(event.records);
            let t = t.clone();
            async move {
                match receive.as_str() {
                    // Beyond the 300 ms function timeout: Lambda kills it, the batch stays.
                    "1" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        t.store(true, Ordering::SeqCst);
                        Ok(SqsBatchResponse::default())
                    }
                    // A function error: also the whole batch.
                    "2" => Err("store unavailable"),
                    _ => Ok(SqsBatchResponse::default()),
                }
            }
        },
    )
    .await
    .unwrap();

    eventually(
        Duration::from_secs(15),
        "both records deleted on the third receive",
        || {
            let stats = driver.stats();
            async move { stats.deletes == 2 }
        },
    )
    .await;
    let stats = driver.stats();
    assert_eq!(stats.failed_batches, 2, "one timeout, one function error");
    assert_eq!(stats.failures, 4);
    let receives: Vec<(String, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            (
                body(r).to_owned(),
                attr(r, "ApproximateReceiveCount").to_owned(),
            )
        })
        .collect();
    for n in ["1", "2", "3"] {
        for b in ["first", "second"] {
            assert!(
                receives.contains(&(b.to_owned(), n.to_owned())),
                "{b} on receive {n}: {receives:?}"
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !timed_out.load(Ordering::SeqCst),
        "a timed-out handler is aborted, as Lambda kills it"
    );
    driver.stop().await.unwrap();
}

#[tokio::test]
async fn when_stopped_mid_batch_should_finish_it_and_delete_before_returning() {
    let q = fifo_queue(30).await;
    q.send("acct-1", "a", "slow").await;
    let started = CancellationToken::new();
    let st = started.clone();
    let driver = SqsDriver::spawn(
        q.client.clone(),
        &q.url,
        None,
        1,
        10,
        move |_event: SqsEvent| {
            st.cancel();
            async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                SqsBatchResponse::default()
            }
        },
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), started.cancelled())
        .await
        .expect("batch started");
    let counters = driver.counters();
    driver.stop().await.unwrap();
    let stats = counters.snapshot();
    assert_eq!((stats.batches, stats.deletes, stats.in_flight), (1, 1, 0));
    assert_eq!(q.depth().await, 0);
}

#[tokio::test]
async fn when_a_received_message_is_converted_should_match_the_event_lambda_sends() {
    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
    let q = fifo_queue(5).await;
    let attr = |data_type: &str| MessageAttributeValue::builder().data_type(data_type);
    q.client
        .send_message()
        .queue_url(&q.url)
        .message_group_id("acct-1")
        .message_deduplication_id("d1")
        .message_body("Message Body")
        .message_attributes(
            "Attribute1",
            attr("String")
                .string_value("AttributeValue1")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "Attribute2",
            attr("Number").string_value("123").build().unwrap(),
        )
        .message_attributes(
            "Attribute3",
            attr("Binary")
                .binary_value(Blob::new(b"1100".to_vec()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let received = q
        .client
        .receive_message()
        .queue_url(&q.url)
        .wait_time_seconds(2)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1);

    let ours = reelay_local::sqs::sqs_event_json(&received, &q.arn, "us-east-1");
    let aws = crate::common::fixture("sqs-event.json");
    // Same record keys and types as AWS's sample; attribute maps hold FIFO extras.
    crate::common::assert_same_shape(&aws, &ours, "event", &["attributes", "messageAttributes"]);
    let (mine, theirs) = (&ours["Records"][0], &aws["Records"][0]);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(mine), keys(theirs), "no extra or missing record keys");
    for name in [
        "ApproximateReceiveCount",
        "SentTimestamp",
        "ApproximateFirstReceiveTimestamp",
    ] {
        assert!(
            mine["attributes"][name].is_string(),
            "attributes.{name}: {mine}"
        );
    }
    for name in ["MessageGroupId", "MessageDeduplicationId", "SequenceNumber"] {
        assert!(
            mine["attributes"][name].is_string(),
            "FIFO attributes.{name}: {mine}"
        );
    }
    assert_eq!(
        mine["messageAttributes"]["Attribute1"],
        theirs["messageAttributes"]["Attribute1"]
    );
    assert_eq!(
        mine["messageAttributes"]["Attribute3"]["binaryValue"],
        "MTEwMA=="
    );
    // md5 -s "Message Body" (AWS's sample carries an MD5 that is not of its body).
    assert_eq!(mine["md5OfBody"], "77a3cf88eba293be44f5fd5c61835a43");

    let event = reelay_local::sqs::sqs_event(&received, &q.arn, "us-east-1").unwrap();
    let a2 = &event.records[0].message_attributes["Attribute2"];
    assert_eq!(
        (a2.string_value.as_deref(), a2.data_type.as_deref()),
        (Some("123"), Some("Number"))
    );
}

#[tokio::test]
async fn when_the_handler_changes_a_failed_records_visibility_should_leave_it_as_set() {
    // Queue visibility 30 s: only the handler's own ChangeMessageVisibility(0) can bring the
    // record back within the test's 8 s.
    let q = fifo_queue(30).await;
    q.send("acct-1", "a", "retry-now").await;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let (client, url) = (q.client.clone(), q.url.clone());
    let driver = SqsDriver::spawn(
        q.client.clone(),
        &q.url,
        None,
        2,
        10,
        move |event: SqsEvent| {
            s.lock().unwrap().extend(event.records.clone());
            let (client, url) = (client.clone(), url.clone());
            async move {
                let mut response = SqsBatchResponse::default();
                for r in &event.records {
                    if attr(r, "ApproximateReceiveCount") == "1" {
                        client
                            .change_message_visibility()
                            .queue_url(&url)
                            .receipt_handle(r.receipt_handle.clone().unwrap())
                            .visibility_timeout(0)
                            .send()
                            .await
                            .unwrap();
                        response.add_failure(r.message_id.clone().unwrap());
                    }
                }
                response
            }
        },
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(8),
        "the record back at once and deleted",
        || {
            let stats = driver.stats();
            async move { stats.deletes == 1 }
        },
    )
    .await;
    let receives: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| attr(r, "ApproximateReceiveCount").to_owned())
        .collect();
    assert_eq!(receives, ["1", "2"]);
    driver.stop().await.unwrap();
}
