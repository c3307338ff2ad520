//! The DynamoDB stream driver: a local event source mapping for a table's change stream. It
//! reads every shard from its start the way Lambda's poller does, hands the handler a batch in
//! Lambda's shape (`{"Records": [{"eventSource": "aws:dynamodb", "dynamodb": {...}}]}`), and
//! applies `ReportBatchItemFailures`: a reported record and everything after it is handed over
//! again after `retry_wait`, records before it are done.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::sqs::SqsCounters;

/// One stream record as Lambda delivers it.
pub fn lambda_record(record: &Record, region: &str, stream_arn: &str) -> Value {
    let item = |image: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        image.map_or(Value::Null, |i| {
            let converted: HashMap<String, serde_dynamo::AttributeValue> = i
                .iter()
                .map(|(k, v)| (k.clone(), serde_dynamo::AttributeValue::from(v.clone())))
                .collect();
            serde_json::to_value(serde_dynamo::Item::from(converted)).unwrap_or(Value::Null)
        })
    };
    let change = record.dynamodb();
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
        "dynamodb": {
            "ApproximateCreationDateTime": change
                .and_then(|c| c.approximate_creation_date_time())
                .map_or(0.0, |t| t.as_secs_f64()),
            "Keys": item(change.and_then(|c| c.keys.as_ref())),
            "NewImage": item(change.and_then(|c| c.new_image.as_ref())),
            "OldImage": item(change.and_then(|c| c.old_image.as_ref())),
            "SequenceNumber": change.and_then(|c| c.sequence_number()),
            "SizeBytes": change.and_then(|c| c.size_bytes()).unwrap_or(0),
            "StreamViewType": change.and_then(|c| c.stream_view_type()).map(|v| v.as_str()),
        },
    })
}

/// Polls one table stream and feeds its records to a handler, in order, per shard.
#[derive(Debug)]
pub struct StreamDriver {
    token: CancellationToken,
    task: JoinHandle<()>,
    counters: Arc<SqsCounters>,
}

/// Settings of one mapping, as template.yaml's `Type: DynamoDB` event states them.
#[derive(Debug, Clone)]
pub struct StreamSource {
    pub stream_arn: String,
    pub region: String,
    pub batch_size: usize,
    /// Between reads of a shard that gave nothing.
    pub idle_wait: Duration,
    /// Before a batch with a reported failure is handed over again.
    pub retry_wait: Duration,
}

impl StreamDriver {
    pub fn spawn<F, Fut>(
        client: Client,
        source: StreamSource,
        token: CancellationToken,
        handler: F,
    ) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DynamoDbEventResponse, String>> + Send + 'static,
    {
        let counters = Arc::new(SqsCounters::default());
        let (t, c) = (token.clone(), counters.clone());
        let task = tokio::spawn(async move {
            run(client, source, t, c, handler).await;
        });
        Self {
            token,
            task,
            counters,
        }
    }

    pub fn counters(&self) -> Arc<SqsCounters> {
        self.counters.clone()
    }

    pub fn into_parts(self) -> (CancellationToken, JoinHandle<()>) {
        (self.token, self.task)
    }
}

async fn run<F, Fut>(
    client: Client,
    source: StreamSource,
    token: CancellationToken,
    counters: Arc<SqsCounters>,
    handler: F,
) where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<DynamoDbEventResponse, String>> + Send,
{
    // Shard id → next iterator (`None`: closed and drained).
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    let mut pending: Vec<Value> = Vec::new();
    loop {
        if token.is_cancelled() {
            return;
        }
        if pending.is_empty() {
            if let Err(e) = refresh_shards(&client, &source, &mut iterators).await {
                counters.receive_errors.fetch_add(1, Ordering::Relaxed);
                debug!(error.message = %e, "stream: describe failed");
            }
            for next in iterators.values_mut() {
                let Some(iterator) = next.clone() else {
                    continue;
                };
                match client.get_records().shard_iterator(iterator).send().await {
                    Ok(out) => {
                        *next = out.next_shard_iterator.clone();
                        pending.extend(
                            out.records()
                                .iter()
                                .map(|r| lambda_record(r, &source.region, &source.stream_arn)),
                        );
                    }
                    Err(e) => {
                        counters.receive_errors.fetch_add(1, Ordering::Relaxed);
                        debug!(error.message = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e),
                            "stream: get_records failed");
                    }
                }
            }
        }
        if pending.is_empty() {
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(source.idle_wait) => continue,
            }
        }
        let take = pending.len().min(source.batch_size);
        let batch: Vec<Value> = pending[..take].to_vec();
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .records
            .fetch_add(u64::try_from(take).unwrap_or(0), Ordering::Relaxed);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let answer = handler(json!({ "Records": batch })).await;
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        let failed_at = match answer {
            Ok(response) => response
                .batch_item_failures
                .first()
                .and_then(|f| f.item_identifier.clone())
                .and_then(|seq| {
                    batch
                        .iter()
                        .position(|r| r["dynamodb"]["SequenceNumber"].as_str() == Some(&seq))
                }),
            Err(e) => {
                warn!(error.message = %e, "stream: handler failed; the batch is retried");
                Some(0)
            }
        };
        match failed_at {
            None => {
                pending.drain(..take);
            }
            Some(i) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                pending.drain(..i);
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(source.retry_wait) => {}
                }
            }
        }
    }
}

/// Adds an iterator for every shard not seen yet, from its start (a run's table is new, so
/// that is the whole stream, as `TRIM_HORIZON` gives Lambda).
async fn refresh_shards(
    client: &Client,
    source: &StreamSource,
    iterators: &mut HashMap<String, Option<String>>,
) -> Result<(), String> {
    let described = client
        .describe_stream()
        .stream_arn(&source.stream_arn)
        .send()
        .await
        .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?;
    let shards = described
        .stream_description()
        .map(|d| d.shards().to_vec())
        .unwrap_or_default();
    for shard in shards {
        let Some(id) = shard.shard_id() else { continue };
        if iterators.contains_key(id) {
            continue;
        }
        let iterator = client
            .get_shard_iterator()
            .stream_arn(&source.stream_arn)
            .shard_id(id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?
            .shard_iterator;
        iterators.insert(id.to_owned(), iterator);
    }
    Ok(())
}
