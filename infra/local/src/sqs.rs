//! The SQS driver: a local event source mapping. It polls a queue the way Lambda's poller does,
//! hands the handler an `SqsEvent` in Lambda's shape, and applies `ReportBatchItemFailures`:
//! records not reported failed are deleted, failed ones wait out their visibility timeout.

use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use reelay_template::Template;

use crate::function::{event_properties, scalar};
use crate::{FunctionSpec, LAMBDA_MAX_TIMEOUT, LocalError, default_region};

/// What an SQS handler may return: the batch response, or a function error (whole batch failed).
pub trait BatchResult {
    fn into_batch_result(self) -> Result<SqsBatchResponse, String>;
}

impl BatchResult for SqsBatchResponse {
    fn into_batch_result(self) -> Result<SqsBatchResponse, String> {
        Ok(self)
    }
}

impl<E: Display> BatchResult for Result<SqsBatchResponse, E> {
    fn into_batch_result(self) -> Result<SqsBatchResponse, String> {
        self.map_err(|e| e.to_string())
    }
}

type BoxSqsHandler =
    Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, Result<SqsBatchResponse, String>> + Send + Sync>;

/// Settings of one event source mapping, as template.yaml's `Type: SQS` event states them.
#[derive(Debug, Clone)]
pub struct SqsSource {
    pub queue_url: String,
    /// `None`: read with GetQueueAttributes (what the event's `eventSourceARN` carries).
    pub queue_arn: Option<String>,
    /// SQS returns at most 10 per ReceiveMessage; the template's BatchSize is 10.
    pub batch_size: i32,
    /// Batches in flight at once (ScalingConfig.MaximumConcurrency). FIFO queues never hand out
    /// two batches of one message group at once, so per-group order holds at any value.
    pub max_concurrency: usize,
    /// Long-poll wait per ReceiveMessage; short, so stopping is quick.
    pub wait_time: Duration,
    pub function: FunctionSpec,
}

impl SqsSource {
    pub fn new(queue_url: impl Into<String>, function: FunctionSpec) -> Self {
        Self {
            queue_url: queue_url.into(),
            queue_arn: None,
            batch_size: 10,
            max_concurrency: 2,
            wait_time: Duration::from_secs(1),
            function,
        }
    }

    /// The function's `Type: SQS` event from template.yaml: BatchSize, ScalingConfig's
    /// MaximumConcurrency (a parameter's default when it is a `!Ref`) and the function's timeout.
    /// `queue_url` is the provisioned queue's URL (physical names are the provisioner's).
    pub fn from_template(
        template: &Template,
        logical_id: &str,
        queue_url: impl Into<String>,
    ) -> Result<Self, LocalError> {
        let function = FunctionSpec::from_template(template, logical_id)?;
        let props = event_properties(template, logical_id, "SQS")?;
        let number = |e: Option<&reelay_template::expr::Expr>| {
            e.and_then(|e| scalar(template, e))
                .and_then(|s| s.parse::<u64>().ok())
        };
        let mut source = Self::new(queue_url, function);
        if let Some(b) = number(props.get("BatchSize")).and_then(|b| i32::try_from(b).ok()) {
            source.batch_size = b;
        }
        let scaling = props.get("ScalingConfig");
        if let Some(c) = number(scaling.and_then(|s| s.get("MaximumConcurrency")))
            .and_then(|c| usize::try_from(c).ok())
        {
            source.max_concurrency = c;
        }
        Ok(source)
    }

    pub fn with_batch_size(mut self, batch_size: i32) -> Self {
        self.batch_size = batch_size;
        self
    }

    pub fn with_max_concurrency(mut self, max_concurrency: usize) -> Self {
        self.max_concurrency = max_concurrency;
        self
    }

    pub fn with_queue_arn(mut self, arn: impl Into<String>) -> Self {
        self.queue_arn = Some(arn.into());
        self
    }

    pub fn with_wait_time(mut self, wait_time: Duration) -> Self {
        self.wait_time = wait_time;
        self
    }
}

/// Running totals for a progress display. `failures` counts records left on the queue (reported
/// in batchItemFailures or part of a failed batch); `failed_batches` counts panics, timeouts and
/// function errors.
#[derive(Debug, Default)]
pub struct SqsCounters {
    pub batches: AtomicU64,
    pub records: AtomicU64,
    pub failures: AtomicU64,
    pub deletes: AtomicU64,
    pub failed_batches: AtomicU64,
    pub receive_errors: AtomicU64,
    pub delete_errors: AtomicU64,
    pub in_flight: AtomicU64,
}

/// A point-in-time copy of [`SqsCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqsStats {
    pub batches: u64,
    pub records: u64,
    pub failures: u64,
    pub deletes: u64,
    pub failed_batches: u64,
    pub receive_errors: u64,
    pub delete_errors: u64,
    pub in_flight: u64,
}

impl std::fmt::Display for SqsStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batches={} records={} deleted={} failed={} failed_batches={} in_flight={}",
            self.batches,
            self.records,
            self.deletes,
            self.failures,
            self.failed_batches,
            self.in_flight
        )?;
        if self.receive_errors + self.delete_errors > 0 {
            write!(
                f,
                " receive_errors={} delete_errors={}",
                self.receive_errors, self.delete_errors
            )?;
        }
        Ok(())
    }
}

impl SqsCounters {
    pub fn snapshot(&self) -> SqsStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SqsStats {
            batches: load(&self.batches),
            records: load(&self.records),
            failures: load(&self.failures),
            deletes: load(&self.deletes),
            failed_batches: load(&self.failed_batches),
            receive_errors: load(&self.receive_errors),
            delete_errors: load(&self.delete_errors),
            in_flight: load(&self.in_flight),
        }
    }
}

struct Mapping {
    client: Client,
    queue_url: String,
    queue_arn: String,
    region: String,
    function: FunctionSpec,
    handler: BoxSqsHandler,
    counters: Arc<SqsCounters>,
}

/// A running event source mapping. Stop it with [`SqsDriver::stop`]: in-flight batches finish.
#[derive(Debug)]
pub struct SqsDriver {
    queue_arn: String,
    token: CancellationToken,
    task: JoinHandle<()>,
    counters: Arc<SqsCounters>,
}

impl SqsDriver {
    /// Polls `queue_url` with up to `max_concurrency` batches of up to `batch_size` in flight.
    /// Without a [`FunctionSpec`] the handler gets Lambda's maximum timeout (15 minutes).
    pub async fn spawn<H, Fut>(
        client: Client,
        queue_url: &str,
        queue_arn: Option<&str>,
        max_concurrency: usize,
        batch_size: i32,
        handler: H,
    ) -> Result<Self, LocalError>
    where
        H: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: BatchResult,
    {
        let mut source = SqsSource::new(
            queue_url,
            FunctionSpec::new("sqs-handler", LAMBDA_MAX_TIMEOUT),
        )
        .with_max_concurrency(max_concurrency)
        .with_batch_size(batch_size);
        source.queue_arn = queue_arn.map(str::to_owned);
        Self::spawn_with(client, source, CancellationToken::new(), handler).await
    }

    /// As [`SqsDriver::spawn`] with every setting explicit, stopping when `token` is cancelled.
    pub async fn spawn_with<H, Fut>(
        client: Client,
        source: SqsSource,
        token: CancellationToken,
        handler: H,
    ) -> Result<Self, LocalError>
    where
        H: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: BatchResult,
    {
        if !(1..=10).contains(&source.batch_size) {
            return Err(LocalError::InvalidSetting(format!(
                "batch_size {} is outside 1..=10",
                source.batch_size
            )));
        }
        if source.max_concurrency == 0 {
            return Err(LocalError::InvalidSetting(
                "max_concurrency must be at least 1".into(),
            ));
        }
        let queue_arn = match source.queue_arn.clone() {
            Some(arn) => arn,
            None => read_queue_arn(&client, &source.queue_url).await?,
        };
        let region = client
            .config()
            .region()
            .map(ToString::to_string)
            .unwrap_or_else(default_region);
        let handler: BoxSqsHandler = Arc::new(move |event| {
            let fut = handler(event);
            Box::pin(async move { fut.await.into_batch_result() })
        });
        let counters = Arc::new(SqsCounters::default());
        let mapping = Arc::new(Mapping {
            client,
            queue_url: source.queue_url.clone(),
            queue_arn: queue_arn.clone(),
            region,
            function: source.function.clone(),
            handler,
            counters: counters.clone(),
        });
        info!(queue_arn = %queue_arn, function = %source.function.name, batch_size = source.batch_size, max_concurrency = source.max_concurrency, "SQS driver started");
        let task = tokio::spawn(poll_loop(mapping, source, token.clone()));
        Ok(Self {
            queue_arn,
            token,
            task,
            counters,
        })
    }

    pub fn queue_arn(&self) -> &str {
        &self.queue_arn
    }

    pub fn stats(&self) -> SqsStats {
        self.counters.snapshot()
    }

    /// Shared counters, for a display that outlives borrowing the driver.
    pub fn counters(&self) -> Arc<SqsCounters> {
        self.counters.clone()
    }

    /// Stops polling and waits for in-flight batches (each bounded by the function timeout).
    pub async fn stop(self) -> Result<(), LocalError> {
        self.token.cancel();
        crate::http::join_driver("sqs", self.task).await
    }

    pub(crate) fn into_parts(self) -> (CancellationToken, JoinHandle<()>) {
        (self.token, self.task)
    }
}

async fn read_queue_arn(client: &Client, queue_url: &str) -> Result<String, LocalError> {
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| LocalError::QueueArn {
            queue_url: queue_url.to_owned(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| LocalError::QueueArn {
            queue_url: queue_url.to_owned(),
            message: "no QueueArn in the response".into(),
        })
}

async fn poll_loop(mapping: Arc<Mapping>, source: SqsSource, token: CancellationToken) {
    let permits = Arc::new(Semaphore::new(source.max_concurrency));
    let wait_s = i32::try_from(source.wait_time.as_secs())
        .unwrap_or(20)
        .min(20);
    let mut in_flight = JoinSet::new();
    loop {
        while let Some(done) = in_flight.try_join_next() {
            if let Err(e) = done {
                warn!(error = %e, "batch task ended abnormally");
            }
        }
        let permit = tokio::select! {
            () = token.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let receive = mapping
            .client
            .receive_message()
            .queue_url(&mapping.queue_url)
            .max_number_of_messages(source.batch_size)
            .wait_time_seconds(wait_s)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        let received = tokio::select! {
            () = token.cancelled() => break,
            r = receive => r,
        };
        match received {
            Ok(out) => {
                let messages = out.messages.unwrap_or_default();
                if messages.is_empty() {
                    continue;
                }
                let mapping = mapping.clone();
                in_flight.spawn(async move {
                    mapping.counters.in_flight.fetch_add(1, Ordering::Relaxed);
                    run_batch(&mapping, messages).await;
                    mapping.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            Err(e) => {
                mapping
                    .counters
                    .receive_errors
                    .fetch_add(1, Ordering::Relaxed);
                warn!(queue_arn = %mapping.queue_arn, error = %DisplayErrorContext(&e), "ReceiveMessage failed; retrying in 1s");
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    while let Some(done) = in_flight.join_next().await {
        if let Err(e) = done {
            warn!(error = %e, "batch task ended abnormally");
        }
    }
    info!(queue_arn = %mapping.queue_arn, "SQS driver stopped");
}

/// One invocation: handler, then deletes per ReportBatchItemFailures.
async fn run_batch(mapping: &Mapping, messages: Vec<Message>) {
    let counters = &mapping.counters;
    let total = u64::try_from(messages.len()).unwrap_or(u64::MAX);
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.records.fetch_add(total, Ordering::Relaxed);
    let event = match sqs_event(&messages, &mapping.queue_arn, &mapping.region) {
        Ok(event) => event,
        Err(e) => {
            // Never invoke with a partial event: an empty one would "succeed" and delete all.
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            counters.failures.fetch_add(total, Ordering::Relaxed);
            warn!(error = %e, "SQS event did not round-trip; batch left on the queue");
            return;
        }
    };
    let handler = mapping.handler.clone();
    let mut task = tokio::spawn(async move { handler(event).await });
    let outcome = match tokio::time::timeout(mapping.function.timeout, &mut task).await {
        Ok(Ok(Ok(response))) => failed_ids(&response, &messages),
        Ok(Ok(Err(function_error))) => Err(format!("function error: {function_error}")),
        Ok(Err(join_error)) => Err(format!("handler panicked: {join_error}")),
        Err(_) => {
            task.abort();
            Err(format!(
                "handler timed out after {:?}",
                mapping.function.timeout
            ))
        }
    };
    let failed = match outcome {
        Ok(failed) => failed,
        Err(reason) => {
            // Lambda's rule: an errored invocation fails every record; none is deleted.
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            counters.failures.fetch_add(total, Ordering::Relaxed);
            warn!(function = %mapping.function.name, records = total, reason = %reason, "batch failed; records return after the visibility timeout");
            return;
        }
    };
    counters.failures.fetch_add(
        u64::try_from(failed.len()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    let to_delete: Vec<&Message> = messages
        .iter()
        .filter(|m| !m.message_id().is_some_and(|id| failed.contains(id)))
        .collect();
    debug!(function = %mapping.function.name, records = total, failed = failed.len(), "batch done");
    delete(mapping, &to_delete).await;
}

/// The ids to keep on the queue. As Lambda does, an identifier that is empty or not in the batch
/// makes the whole response invalid, and the whole batch is retried.
fn failed_ids(
    response: &SqsBatchResponse,
    messages: &[Message],
) -> Result<HashSet<String>, String> {
    let in_batch: HashSet<&str> = messages.iter().filter_map(Message::message_id).collect();
    let mut failed = HashSet::new();
    for failure in &response.batch_item_failures {
        let id = failure.item_identifier.as_str();
        if id.is_empty() || !in_batch.contains(id) {
            return Err(format!(
                "batchItemFailures names `{id}`, which is not a message of this batch"
            ));
        }
        failed.insert(id.to_owned());
    }
    Ok(failed)
}

async fn delete(mapping: &Mapping, messages: &[&Message]) {
    for chunk in messages.chunks(10) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        let result = mapping
            .client
            .delete_message_batch()
            .queue_url(&mapping.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match result {
            Ok(out) => {
                let ok = u64::try_from(out.successful().len()).unwrap_or(u64::MAX);
                mapping.counters.deletes.fetch_add(ok, Ordering::Relaxed);
                for failure in out.failed() {
                    mapping
                        .counters
                        .delete_errors
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(code = %failure.code(), message = failure.message().unwrap_or_default(), "DeleteMessageBatch entry failed; the record will be redelivered");
                }
            }
            Err(e) => {
                let n = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
                mapping
                    .counters
                    .delete_errors
                    .fetch_add(n, Ordering::Relaxed);
                warn!(error = %DisplayErrorContext(&e), records = n, "DeleteMessageBatch failed; the records will be redelivered");
            }
        }
    }
}

/// The records as Lambda's SQS poller sends them, serialised to Lambda's JSON and read back
/// into `SqsEvent`, so field names and encodings are the wire ones.
pub fn sqs_event(
    messages: &[Message],
    queue_arn: &str,
    region: &str,
) -> Result<SqsEvent, serde_json::Error> {
    serde_json::from_value(sqs_event_json(messages, queue_arn, region))
}

/// Lambda's JSON for an SQS batch (`Records[]` with `messageId`, `receiptHandle`, `body`,
/// `attributes`, `messageAttributes`, `md5OfBody`, `eventSource`, `eventSourceARN`, `awsRegion`).
pub fn sqs_event_json(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            let message_attributes: Map<String, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            let mut attr = Map::new();
                            if let Some(s) = v.string_value() {
                                attr.insert("stringValue".into(), json!(s));
                            }
                            if let Some(b) = v.binary_value() {
                                attr.insert("binaryValue".into(), json!(BASE64.encode(b.as_ref())));
                            }
                            attr.insert("stringListValues".into(), json!(v.string_list_values()));
                            let binaries: Vec<String> = v
                                .binary_list_values()
                                .iter()
                                .map(|b| BASE64.encode(b.as_ref()))
                                .collect();
                            attr.insert("binaryListValues".into(), json!(binaries));
                            attr.insert("dataType".into(), json!(v.data_type()));
                            (k.clone(), Value::Object(attr))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut record = json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            });
            if let (Some(md5), Some(obj)) = (m.md5_of_message_attributes(), record.as_object_mut())
            {
                obj.insert("md5OfMessageAttributes".into(), json!(md5));
            }
            record
        })
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, group: &str) -> Message {
        Message::builder()
            .message_id(id)
            .receipt_handle(format!("rh-{id}"))
            .body(r#"{"k":1}"#)
            .md5_of_body("abc")
            .attributes(MessageSystemAttributeName::MessageGroupId, group)
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
            .build()
    }

    #[test]
    fn when_messages_are_converted_should_have_lambda_field_names_and_fifo_attributes()
    -> Result<(), serde_json::Error> {
        let event = sqs_event(
            &[message("m1", "acct-1")],
            "arn:aws:sqs:us-east-1:000000000000:q.fifo",
            "us-east-1",
        )?;
        let record = &event.records[0];
        assert_eq!(record.message_id.as_deref(), Some("m1"));
        assert_eq!(record.receipt_handle.as_deref(), Some("rh-m1"));
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(record.aws_region.as_deref(), Some("us-east-1"));
        assert_eq!(
            record.attributes.get("MessageGroupId").map(String::as_str),
            Some("acct-1")
        );
        assert_eq!(
            record
                .attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str),
            Some("1")
        );
        Ok(())
    }

    #[test]
    fn when_a_failure_names_a_foreign_id_should_fail_the_whole_batch() {
        let messages = [message("m1", "g"), message("m2", "g")];
        let mut ok = SqsBatchResponse::default();
        ok.add_failure("m2");
        assert_eq!(failed_ids(&ok, &messages).map(|s| s.len()), Ok(1));
        let mut bad = SqsBatchResponse::default();
        bad.add_failure("not-in-batch");
        assert!(failed_ids(&bad, &messages).is_err());
        let mut empty = SqsBatchResponse::default();
        empty.add_failure("");
        assert!(failed_ids(&empty, &messages).is_err());
    }
}
