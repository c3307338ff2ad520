//! SQS FIFO transport against a real endpoint: real sends, real receives, the batch helper on real
//! received batches, and the redrive of poison messages. Each test owns its queues.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use common::{account, sdk, tenant};
use reelay_aws::sqs::RecordMeta;
use reelay_aws::{
    FailureScope, FifoBatchProcessor, RecordFailure, SqsWorkQueue, sqs_event_from_received,
};
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{Clock, WorkQueue};
use reelay_domain::{JobId, UtcTime};

/// Simulated time: `sleep` moves it at once, so deadlines are tested without waiting for them.
#[derive(Clone)]
struct ManualClock {
    now: Arc<Mutex<UtcTime>>,
    slept: Arc<Mutex<Duration>>,
}

impl ManualClock {
    fn at(t: UtcTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(t)),
            slept: Arc::default(),
        }
    }

    fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap();
        *now = now.plus(d);
    }

    fn slept(&self) -> Duration {
        *self.slept.lock().unwrap()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UtcTime {
        *self.now.lock().unwrap()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        *self.slept.lock().unwrap() += duration;
        self.advance(duration);
        async {}
    }
}

fn message(account_id: &str, n: u64) -> WorkMessage {
    WorkMessage::new(
        QueueKind::Publish,
        JobId::generate(
            UtcTime::from_millis(1_700_000_000_000 + n as i64),
            u128::from(n),
        ),
        tenant("tenant_a"),
        account(account_id),
        n,
    )
}

async fn receive(client: &Client, url: &str, max: i32, wait_secs: i32) -> Vec<Message> {
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

fn group(m: &Message) -> String {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned()
        .unwrap_or_default()
}

fn failed_ids(r: &SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// What Lambda's event source mapping does after the handler: delete what did not fail.
async fn delete_succeeded(
    client: &Client,
    url: &str,
    received: &[Message],
    response: &SqsBatchResponse,
) {
    let failed: HashSet<String> = failed_ids(response).into_iter().collect();
    for m in received {
        if !failed.contains(m.message_id().unwrap()) {
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn work_messages_carry_the_account_group_and_the_callers_dedup_id() {
    let sdk = sdk().await;
    let q = common::fifo_queue(&sdk, 30).await;
    let client = Client::new(&sdk);
    let queue = SqsWorkQueue::new(client.clone(), None, Some(q.url.clone()));
    let m = message("acct_1", 3);
    queue.send(&m, &m.dedup_id(1)).await.unwrap();
    queue.send(&m, &m.dedup_id(1)).await.unwrap(); // a resend of the same enqueue
    queue.send(&m, &m.dedup_id(2)).await.unwrap(); // a later enqueue (another next check)

    let got = receive(&client, &q.url, 10, 1).await;
    assert_eq!(got.len(), 2, "SQS dropped the duplicate send");
    let attrs = got[0].attributes().unwrap();
    assert_eq!(
        attrs.get(&MessageSystemAttributeName::MessageGroupId),
        Some(&m.group_id())
    );
    assert_eq!(
        attrs.get(&MessageSystemAttributeName::MessageDeduplicationId),
        Some(&m.dedup_id(1))
    );
    let body: WorkMessage = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(body, m);
    assert_eq!(queue.requests(), 3);

    let render = message("acct_1", 4);
    let render = WorkMessage {
        kind: QueueKind::Render,
        ..render
    };
    assert!(
        queue.send(&render, "r-1").await.is_err(),
        "no render queue configured here"
    );
}

#[tokio::test]
async fn a_delayed_group_waits_while_other_groups_flow() {
    let sdk = sdk().await;
    // A long visibility timeout: only the helper's ChangeMessageVisibility can bring A1 back soon.
    let q = common::fifo_queue(&sdk, 60).await;
    let client = Client::new(&sdk);
    let queue = SqsWorkQueue::new(client.clone(), None, Some(q.url.clone()));
    let (a1, a2, b1, b2) = (
        message("acct_a", 1),
        message("acct_a", 2),
        message("acct_b", 3),
        message("acct_b", 4),
    );
    for m in [&a1, &a2, &b1, &b2] {
        queue.send(m, &m.dedup_id(0)).await.unwrap();
    }

    // Group A's head is in flight: A2 is held back, B flows.
    let first = receive(&client, &q.url, 1, 1).await;
    assert_eq!(first.len(), 1);
    let head_group = group(&first[0]);
    let in_flight = receive(&client, &q.url, 10, 1).await;
    assert!(!in_flight.is_empty());
    assert!(
        in_flight.iter().all(|m| group(m) != head_group),
        "a group in flight delivers nothing else"
    );
    // Put the other group's messages back for the next step.
    for m in &in_flight {
        client
            .change_message_visibility()
            .queue_url(&q.url)
            .receipt_handle(m.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }

    // The handler asks for a 2 s delay on the head: its group waits ~2-3 s, the other group doesn't.
    let processor = FifoBatchProcessor::new(client.clone(), q.url.clone());
    let response = processor
        .process(
            sqs_event_from_received(&first, Some(&q.arn)),
            |_m, _meta| async {
                Err(RecordFailure::retry_after(
                    "rate_limit_exceeded",
                    Duration::from_secs(2),
                ))
            },
        )
        .await;
    let delayed_at = Instant::now();
    assert_eq!(
        failed_ids(&response),
        vec![first[0].message_id().unwrap().to_owned()]
    );

    let others = receive(&client, &q.url, 10, 0).await;
    assert!(!others.is_empty(), "the other group keeps flowing");
    assert!(
        others.iter().all(|m| group(m) != head_group),
        "the delayed group is blocked"
    );
    for m in &others {
        client
            .delete_message()
            .queue_url(&q.url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }

    // It comes back after the delay, long before the 60 s visibility timeout, still first in line.
    let mut back = Vec::new();
    while back.is_empty() && delayed_at.elapsed() < Duration::from_secs(10) {
        back = receive(&client, &q.url, 10, 1).await;
    }
    let waited = delayed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "came back too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "never came back");
    assert_eq!(
        back[0].message_id(),
        first[0].message_id(),
        "the head is redelivered first"
    );
    let receive_count = back[0]
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .cloned();
    assert_eq!(receive_count.as_deref(), Some("2"));
}

/// Sends A1, B1, A2, B2, C1 and receives them as one batch.
async fn interleaved_batch(
    sdk: &aws_config::SdkConfig,
) -> (common::FifoQueue, Client, Vec<Message>) {
    let q = common::fifo_queue(sdk, 60).await;
    let client = Client::new(sdk);
    let queue = SqsWorkQueue::new(client.clone(), None, Some(q.url.clone()));
    for (acct, n) in [
        ("acct_a", 1),
        ("acct_b", 2),
        ("acct_a", 3),
        ("acct_b", 4),
        ("acct_c", 5),
    ] {
        let m = message(acct, n);
        queue.send(&m, &m.dedup_id(0)).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(receive(&client, &q.url, 10, 1).await);
        if got.len() == 5 {
            break;
        }
    }
    assert_eq!(got.len(), 5, "the whole batch in one receive");
    (q, client, got)
}

fn group_of_job(received: &[Message], meta_ids: &[String]) -> Vec<String> {
    meta_ids
        .iter()
        .map(|id| {
            received
                .iter()
                .find(|m| m.message_id() == Some(id.as_str()))
                .map(group)
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn from_the_first_failure_on_every_later_record_of_the_batch_is_reported_failed() {
    let sdk = sdk().await;
    let (q, client, received) = interleaved_batch(&sdk).await;
    let b_group = message("acct_b", 0).group_id();
    let fail_at = received.iter().position(|m| group(m) == b_group).unwrap();
    assert!(
        fail_at + 1 < received.len(),
        "the failing record has later records in the batch"
    );

    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let processor = FifoBatchProcessor::new(client.clone(), q.url.clone());
    let response = processor
        .process(
            sqs_event_from_received(&received, Some(&q.arn)),
            |m, meta: RecordMeta| {
                let calls = calls.clone();
                let fail = m.group_id() == b_group;
                async move {
                    calls.lock().unwrap().push(meta.message_id);
                    if fail {
                        Err(RecordFailure::new("upstream_5xx"))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;

    let ids: Vec<String> = received
        .iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    assert_eq!(
        *calls.lock().unwrap(),
        ids[..=fail_at].to_vec(),
        "nothing runs after the failure"
    );
    assert_eq!(failed_ids(&response), ids[fail_at..].to_vec());

    delete_succeeded(&client, &q.url, &received, &response).await;
    // Unattempted records were released at once; the failed group stays blocked behind its head.
    let again = receive(&client, &q.url, 10, 1).await;
    let again_ids: Vec<String> = again
        .iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    let groups = group_of_job(&again, &again_ids);
    assert!(
        !again.is_empty(),
        "released records come back without waiting for the visibility timeout"
    );
    assert!(
        groups.iter().all(|g| *g != b_group),
        "the failed group is still blocked"
    );
    let expected: Vec<String> = ids[fail_at + 1..]
        .iter()
        .zip(&received[fail_at + 1..])
        .filter(|(_, m)| group(m) != b_group)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(again_ids, expected);
}

#[tokio::test]
async fn the_group_scope_fails_only_the_failed_groups_later_records() {
    let sdk = sdk().await;
    let (q, client, received) = interleaved_batch(&sdk).await;
    let b_group = message("acct_b", 0).group_id();
    let processor = FifoBatchProcessor::new(client.clone(), q.url.clone())
        .with_scope(FailureScope::RestOfGroup);
    let calls: Arc<Mutex<usize>> = Arc::default();
    let response = processor
        .process(
            sqs_event_from_received(&received, Some(&q.arn)),
            |m, _meta| {
                let calls = calls.clone();
                let fail = m.group_id() == b_group;
                async move {
                    *calls.lock().unwrap() += 1;
                    if fail {
                        Err(RecordFailure::new("upstream_5xx"))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
    let b_ids: Vec<String> = received
        .iter()
        .filter(|m| group(m) == b_group)
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    assert_eq!(failed_ids(&response), b_ids, "only group B's records fail");
    assert_eq!(*calls.lock().unwrap(), 4, "B2 never ran; A and C all did");
}

/// One account's group (a budget wait, six inits in a row) must not hold back another account's
/// due post in the same batch: with the group scope each group's records run in order and the
/// groups of a batch at once; with the batch scope everything runs one at a time.
#[tokio::test]
async fn the_groups_of_a_batch_run_at_once_each_in_its_own_order() {
    let sdk = sdk().await;
    for (scope, expected_overlap) in [
        (FailureScope::RestOfGroup, 3),
        (FailureScope::RestOfBatch, 1),
    ] {
        let (q, client, received) = interleaved_batch(&sdk).await;
        let processor = FifoBatchProcessor::new(client.clone(), q.url.clone()).with_scope(scope);
        let running: Arc<Mutex<(usize, usize)>> = Arc::default();
        let order: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let response = processor
            .process(
                sqs_event_from_received(&received, Some(&q.arn)),
                |m, meta: RecordMeta| {
                    let (running, order) = (running.clone(), order.clone());
                    async move {
                        {
                            let mut r = running.lock().unwrap();
                            r.0 += 1;
                            r.1 = r.1.max(r.0);
                        }
                        // Hands the executor to the batch's other lanes mid-record.
                        tokio::task::yield_now().await;
                        order.lock().unwrap().push((m.group_id(), meta.message_id));
                        running.lock().unwrap().0 -= 1;
                        Ok(())
                    }
                },
            )
            .await;
        assert!(failed_ids(&response).is_empty(), "{scope:?}");
        assert_eq!(
            running.lock().unwrap().1,
            expected_overlap,
            "{scope:?}: records running at once"
        );
        let done = order.lock().unwrap().clone();
        for g in ["acct_a", "acct_b"] {
            let group = message(g, 0).group_id();
            let ran: Vec<&str> = done
                .iter()
                .filter(|(grp, _)| *grp == group)
                .map(|(_, id)| id.as_str())
                .collect();
            let sent: Vec<&str> = received
                .iter()
                .filter(|m| self::group(m) == group)
                .map(|m| m.message_id().unwrap())
                .collect();
            assert_eq!(ran, sent, "{scope:?}: {g}'s records in its order");
        }
    }
}

#[tokio::test]
async fn poison_messages_reach_the_dlq_after_max_receive_count_and_good_ones_are_processed_once() {
    let sdk = sdk().await;
    // A 1 s visibility timeout and the template's maxReceiveCount of 5: the redrive takes seconds.
    let q = common::fifo_queue(&sdk, 1).await;
    let client = Client::new(&sdk);
    let good = message("acct_good", 1);
    SqsWorkQueue::new(client.clone(), None, Some(q.url.clone()))
        .send(&good, &good.dedup_id(0))
        .await
        .unwrap();
    let poison = [
        ("poison-json", "this is not json"),
        (
            "poison-version",
            r#"{"v":99,"kind":"publish","jobId":"job_01HT0000000000000000000000","tenantId":"t","accountId":"a","jobVersion":1}"#,
        ),
    ];
    for (grp, body) in poison {
        client
            .send_message()
            .queue_url(&q.url)
            .message_group_id(grp)
            .message_deduplication_id(format!("{grp}-1"))
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    // The default scope: a poison record fails everything after it in its batch, which is
    // released at once and so runs on the next poll, without the poison (still in flight).
    let processor = FifoBatchProcessor::new(client.clone(), q.url.clone());
    let handled: Arc<Mutex<Vec<WorkMessage>>> = Arc::default();
    let started = Instant::now();
    // The DLQ shares the short visibility timeout: a body read twice is still one message.
    let mut dead_bodies: HashSet<String> = HashSet::new();
    while dead_bodies.len() < 2 && started.elapsed() < Duration::from_secs(40) {
        let batch = receive(&client, &q.url, 10, 1).await;
        if !batch.is_empty() {
            let response = processor
                .process(sqs_event_from_received(&batch, Some(&q.arn)), |m, _| {
                    let handled = handled.clone();
                    async move {
                        handled.lock().unwrap().push(m);
                        Ok(())
                    }
                })
                .await;
            delete_succeeded(&client, &q.url, &batch, &response).await;
        }
        for m in receive(&client, &q.dlq_url, 10, 0).await {
            dead_bodies.extend(m.body().map(str::to_owned));
        }
    }
    assert_eq!(
        dead_bodies,
        poison
            .iter()
            .map(|(_, b)| (*b).to_owned())
            .collect::<HashSet<_>>(),
        "both poison bodies in the DLQ"
    );
    assert_eq!(
        *handled.lock().unwrap(),
        vec![good],
        "the good message ran exactly once, poison never reached the handler"
    );
    assert!(
        receive(&client, &q.url, 10, 1).await.is_empty(),
        "nothing left behind"
    );
}

#[tokio::test]
async fn no_record_starts_with_less_than_the_margin_left_and_the_rest_come_back_at_once() {
    let sdk = sdk().await;
    let (q, client, received) = interleaved_batch(&sdk).await;
    let t0 = UtcTime::from_secs(1_800_000_000);
    let clock = ManualClock::at(t0);
    let processor = FifoBatchProcessor::new(client.clone(), q.url.clone())
        .with_deadline_margin(Duration::from_secs(3));
    assert_eq!(processor.deadline_margin(), Duration::from_secs(3));
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    // Each record takes 4 s: at 0 s and 4 s there is time left, at 8 s only 2 s of 10.
    let response = processor
        .process_until(
            sqs_event_from_received(&received, Some(&q.arn)),
            &clock,
            t0.plus(Duration::from_secs(10)),
            |_m, meta: RecordMeta| {
                let (calls, clock) = (calls.clone(), clock.clone());
                async move {
                    calls.lock().unwrap().push(meta.message_id);
                    clock.advance(Duration::from_secs(4));
                    Ok(())
                }
            },
        )
        .await;
    let ids: Vec<String> = received
        .iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    assert_eq!(
        *calls.lock().unwrap(),
        ids[..2].to_vec(),
        "two records started"
    );
    assert_eq!(
        failed_ids(&response),
        ids[2..].to_vec(),
        "the rest reported failed"
    );

    // What Lambda does next: delete the two that succeeded. The three never started were made
    // visible at once, so they are received again long before the 60 s visibility timeout.
    delete_succeeded(&client, &q.url, &received, &response).await;
    let started = Instant::now();
    let mut again: HashSet<String> = HashSet::new();
    while again.len() < 3 && started.elapsed() < Duration::from_secs(10) {
        for m in receive(&client, &q.url, 10, 1).await {
            again.insert(m.message_id().unwrap().to_owned());
        }
    }
    assert_eq!(again, ids[2..].iter().cloned().collect::<HashSet<_>>());
}

#[tokio::test]
async fn a_schedule_wait_is_spent_in_process_only_when_the_deadline_leaves_room_for_it() {
    let sdk = sdk().await;
    let q = common::fifo_queue(&sdk, 60).await;
    let client = Client::new(&sdk);
    let queue = SqsWorkQueue::new(client.clone(), None, Some(q.url.clone()));
    let m = message("acct_a", 1);
    queue.send(&m, &m.dedup_id(0)).await.unwrap();
    let got = receive(&client, &q.url, 1, 1).await;
    assert_eq!(got.len(), 1);
    let processor = FifoBatchProcessor::new(client.clone(), q.url.clone())
        .with_deadline_margin(Duration::from_secs(4));
    let t0 = UtcTime::from_secs(1_800_000_000);
    // Due in 1.5 s, then handled.
    let handler = |calls: Arc<Mutex<u32>>| {
        move |_m, _meta| {
            let calls = calls.clone();
            async move {
                let mut n = calls.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    Err(RecordFailure::until_schedule(
                        "not_due_yet",
                        Duration::from_millis(1_500),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    };

    // Plenty of time: waited for on the clock and handled again, nothing fails.
    let (clock, calls) = (ManualClock::at(t0), Arc::new(Mutex::new(0)));
    let response = processor
        .process_until(
            sqs_event_from_received(&got, Some(&q.arn)),
            &clock,
            t0.plus(Duration::from_secs(60)),
            handler(calls.clone()),
        )
        .await;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(*calls.lock().unwrap(), 2);
    assert_eq!(clock.slept(), Duration::from_millis(1_500));

    // 5 s left, margin 4 s: the record starts, but its wait would end with 3.5 s left, so it is
    // left to the queue (visibility = the wait's whole seconds) instead of waited for.
    let (clock, calls) = (ManualClock::at(t0), Arc::new(Mutex::new(0)));
    let response = processor
        .process_until(
            sqs_event_from_received(&got, Some(&q.arn)),
            &clock,
            t0.plus(Duration::from_secs(5)),
            handler(calls.clone()),
        )
        .await;
    assert_eq!(
        failed_ids(&response),
        vec![got[0].message_id().unwrap().to_owned()]
    );
    assert_eq!(*calls.lock().unwrap(), 1, "handled once, not again");
    assert_eq!(clock.slept(), Duration::ZERO, "no in-process wait");
    let delayed_at = Instant::now();
    let mut back = Vec::new();
    while back.is_empty() && delayed_at.elapsed() < Duration::from_secs(10) {
        back = receive(&client, &q.url, 1, 1).await;
    }
    assert_eq!(
        back.first().and_then(|b| b.message_id()),
        got[0].message_id(),
        "back after its schedule wait, not after the 60 s visibility timeout"
    );

    // Already inside the margin: not even started, released at once.
    let (clock, calls) = (ManualClock::at(t0), Arc::new(Mutex::new(0)));
    let response = processor
        .process_until(
            sqs_event_from_received(&back, Some(&q.arn)),
            &clock,
            t0.plus(Duration::from_secs(3)),
            handler(calls.clone()),
        )
        .await;
    assert_eq!(
        failed_ids(&response),
        vec![back[0].message_id().unwrap().to_owned()]
    );
    assert_eq!(*calls.lock().unwrap(), 0);
    let again = receive(&client, &q.url, 1, 2).await;
    assert_eq!(
        again.first().and_then(|b| b.message_id()),
        back[0].message_id()
    );
}

/// The webhook delivery queue: a standard queue (FIFO queues take no per-message delay) whose
/// sends wait out their delay, and a dead-letter queue for deliveries past their last attempt.
#[tokio::test]
async fn webhook_deliveries_wait_out_their_delay_and_dead_letters_go_to_their_own_queue() {
    use reelay_aws::SqsDeliveries;
    use reelay_domain::ports::DeliveryQueue;
    use reelay_domain::webhooks::{ClientEvent, Delivery, EndpointId, EventType};

    let config = sdk().await;
    let client = Client::new(&config);
    let name = format!("reelay-test-webhooks-{}", common::suffix());
    let mut urls = Vec::new();
    for n in [name.clone(), format!("{name}-dlq")] {
        let out = client.create_queue().queue_name(n).send().await.unwrap();
        urls.push(out.queue_url.unwrap());
    }
    let queue = SqsDeliveries::new(client.clone(), urls[0].clone(), Some(urls[1].clone()));
    let at = UtcTime::from_millis(1_780_000_000_000);
    let delivery = |n: u32| Delivery {
        tenant_id: tenant("t1"),
        endpoint_id: EndpointId::generate(at, 1),
        event: ClientEvent {
            id: format!("msg_{n:032}"),
            event_type: EventType::JobFailed,
            timestamp: at,
            data: serde_json::json!({ "n": n }),
        },
        attempts: n,
        due_at: at,
        replay: false,
    };
    // A delay past the queue's 15 minutes is capped, not refused; it is not received now.
    queue
        .send(&delivery(1), Duration::from_secs(3_600))
        .await
        .unwrap();
    queue.send(&delivery(2), Duration::ZERO).await.unwrap();
    queue.dead_letter(&delivery(3)).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        for m in receive(&client, &urls[0], 10, 2).await {
            got.push(serde_json::from_str::<Delivery>(m.body().unwrap()).unwrap());
            client
                .delete_message()
                .queue_url(&urls[0])
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(got, vec![delivery(2)], "the delayed one waits");
    let dead = receive(&client, &urls[1], 10, 5).await;
    assert_eq!(dead.len(), 1);
    let dead: Delivery = serde_json::from_str(dead[0].body().unwrap()).unwrap();
    assert_eq!(dead, delivery(3));
}
