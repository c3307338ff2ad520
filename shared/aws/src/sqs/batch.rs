//! A FIFO-correct consumer for Lambda SQS batches, with no Lambda runtime dependency: it takes an
//! `SqsEvent` and returns the `SqsBatchResponse` to hand back (the event source mapping must set
//! `FunctionResponseTypes: [ReportBatchItemFailures]`, or a failure retries the whole batch).
//!
//! Rules:
//! - From the first failure on, that record and every later record of the batch are reported
//!   failed ([`FailureScope::RestOfBatch`], AWS's documented FIFO rule): a group's later messages
//!   must not run before its failed one, and the batch is one unit of order, run one record at a
//!   time. Records never attempted are made visible again at once (ChangeMessageVisibility 0), so
//!   other groups wait one redelivery, not a whole visibility timeout; the failed group stays
//!   blocked because its head is still in flight.
//! - With [`FailureScope::RestOfGroup`] (Powertools' `skip_group_on_error`) a failure holds back
//!   only its own group, and the batch's groups run at once, each one record at a time in batch
//!   order (its FIFO order): one account's group working through a backlog or waiting for its
//!   budget must not make another account's due record in the same batch wait for it (the load
//!   bench's isolation split measured that wait as the whole tail).
//! - An undecodable body or an unknown envelope version is reported failed, never dropped and
//!   never retried by hand: after `maxReceiveCount` receives the redrive policy moves it to the DLQ.
//! - A failure may carry a retry-after: the failed message's visibility is set to it plus jitter,
//!   so its group waits that long (FIFO blocks a group while its head is in flight) and other
//!   groups keep flowing.
//! - A wait for the instant an account's own window frees ([`WaitTiming::Window`]) is never
//!   jittered either, and rounded up: only that group's head waits for it, so there is no herd.
//! - A wait for the job's own schedule ([`RecordFailure::until_schedule`]) is never jittered: the
//!   visibility is the whole seconds of the wait, rounded down, so the message is back at or
//!   before the schedule. One due within [`FifoBatchProcessor::with_schedule_sleep`] is waited for
//!   in-process after the rest of its group (or batch), then handled again (still the head of its
//!   group).
//! - With the invocation's deadline ([`FifoBatchProcessor::process_until`]), no record is started
//!   (nor handled again after a schedule wait) with less than
//!   [`FifoBatchProcessor::with_deadline_margin`] left: the records not started are reported
//!   failed and made visible again at once, like the records after a failure, so a timeout never
//!   cuts a handler off halfway and never makes the whole batch wait out its visibility timeout.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use rand::Rng;
use reelay_domain::UtcTime;
use reelay_domain::messages::WorkMessage;
use reelay_domain::ports::Clock;
use reelay_domain::usecase::WaitTiming;
use tracing::{error, info, warn};

use crate::SystemClock;

/// SQS's ceiling for a message's visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// Default of [`FifoBatchProcessor::with_schedule_sleep`]: a message re-delayed in whole seconds
/// comes back less than 1 s (plus a receive) before its schedule, so 2 s covers that remainder
/// while keeping a batch's in-process waits far inside any function timeout.
pub const DEFAULT_SCHEDULE_SLEEP: Duration = Duration::from_secs(2);

/// Default of [`FifoBatchProcessor::with_deadline_margin`]: enough for a record's store reads and
/// conditional write, and for the batch response to reach Lambda.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// How many times one record is handled again after an in-process schedule wait.
const SCHEDULE_RERUNS: usize = 2;

/// How much of the batch a failure takes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureScope {
    /// The failed record and every later record of the batch (AWS's FIFO recommendation).
    #[default]
    RestOfBatch,
    /// The failed record and the later records of its own group; other groups continue.
    RestOfGroup,
}

/// Why a record failed, and when its group may try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// A short code for logs (never a secret, never a body).
    pub code: String,
    /// Hold the group back this long; `None` leaves the queue's visibility timeout.
    pub retry_after: Option<Duration>,
    /// What the wait ends at: only a back-off many messages may share gets jitter.
    pub timing: WaitTiming,
}

impl RecordFailure {
    pub fn new(code: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            retry_after: None,
            timing: WaitTiming::Backoff,
        }
    }

    /// A back-off (a shared budget, an outage): the group comes back after `after` plus jitter.
    pub fn retry_after(code: impl Into<String>, after: Duration) -> Self {
        Self::waiting(code, after, WaitTiming::Backoff)
    }

    /// The job is due in `remaining`: the group comes back no later than that, never jittered.
    pub fn until_schedule(code: impl Into<String>, remaining: Duration) -> Self {
        Self::waiting(code, remaining, WaitTiming::Schedule)
    }

    /// The group comes back after `after`, timed as `timing` says.
    pub fn waiting(code: impl Into<String>, after: Duration, timing: WaitTiming) -> Self {
        Self {
            code: code.into(),
            retry_after: Some(after),
            timing,
        }
    }
}

/// The visibility timeout that delays a failed message, in SQS's whole seconds. A schedule wait
/// is rounded down, so it never ends past the schedule; a window wait is rounded up, so it never
/// ends before the window frees; a back-off gets `jitter(cap_ms)` milliseconds added (cap = a
/// fifth of the wait, at least 1 s) and is rounded up.
pub fn delay_visibility(
    failure_after: Duration,
    timing: WaitTiming,
    jitter: impl FnOnce(u64) -> u64,
) -> Duration {
    let failure_after = failure_after.min(MAX_VISIBILITY);
    let up = |wait: Duration| {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Duration::from_secs(secs.max(1)).min(MAX_VISIBILITY)
    };
    match timing {
        WaitTiming::Schedule => return Duration::from_secs(failure_after.as_secs()),
        WaitTiming::Window => return up(failure_after),
        WaitTiming::Backoff => {}
    }
    let jitter_cap = (failure_after / 5).max(Duration::from_secs(1));
    let cap_ms = u64::try_from(jitter_cap.as_millis()).unwrap_or(u64::MAX);
    up((failure_after + Duration::from_millis(jitter(cap_ms).min(cap_ms))).min(MAX_VISIBILITY))
}

/// What the handler learns about the record besides the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    pub message_id: String,
    pub group_id: String,
    /// `ApproximateReceiveCount` (1 on the first delivery).
    pub receive_count: u32,
}

/// Parses a record body into a `WorkMessage` of a version this code knows.
pub fn decode_work_message(body: Option<&str>) -> Result<WorkMessage, RecordFailure> {
    WorkMessage::decode(body).map_err(|e| RecordFailure::new(e.code()))
}

/// The record's `MessageGroupId` (empty when the attribute is missing).
fn group_of(record: &SqsMessage) -> String {
    record
        .attributes
        .get("MessageGroupId")
        .cloned()
        .unwrap_or_default()
}

/// Builds the event Lambda would deliver from messages received with the SDK (all system
/// attributes requested), so tests and local runners drive the same code with real messages.
pub fn sqs_event_from_received(
    messages: &[aws_sdk_sqs::types::Message],
    queue_arn: Option<&str>,
) -> SqsEvent {
    let records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            r.md5_of_body = m.md5_of_body.clone();
            r.attributes = m
                .attributes
                .as_ref()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            r.event_source = Some("aws:sqs".into());
            r.event_source_arn = queue_arn.map(str::to_owned);
            r
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// Runs a FIFO batch through a handler. Build once per cold start.
#[derive(Debug, Clone)]
pub struct FifoBatchProcessor {
    client: Client,
    queue_url: String,
    scope: FailureScope,
    schedule_sleep: Duration,
    deadline_margin: Duration,
}

/// A record waiting in-process for its schedule.
struct Pending {
    due: UtcTime,
    /// Why it waits: reported if the wait cannot be spent in-process after all.
    code: String,
    message: WorkMessage,
    meta: RecordMeta,
    receipt_handle: Option<String>,
}

impl FifoBatchProcessor {
    /// `queue_url` is the queue the event source mapping reads (needed for ChangeMessageVisibility).
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            scope: FailureScope::RestOfBatch,
            schedule_sleep: DEFAULT_SCHEDULE_SLEEP,
            deadline_margin: DEFAULT_DEADLINE_MARGIN,
        }
    }

    /// For the queue named by an environment variable (`RENDER_QUEUE_URL`, `PUBLISH_QUEUE_URL`).
    pub fn from_env(
        sdk: &aws_config::SdkConfig,
        queue_url_var: &'static str,
    ) -> Result<Self, crate::ConfigError> {
        Ok(Self::new(
            Client::new(sdk),
            crate::config::env_var(queue_url_var)?,
        ))
    }

    pub fn with_scope(mut self, scope: FailureScope) -> Self {
        self.scope = scope;
        self
    }

    /// A record whose schedule is at most this far ahead is waited for in-process (after the
    /// rest of its group, or of the batch) instead of re-delayed in whole seconds, which would
    /// make it up to 1 s early and then cost a redelivery. Keep it well inside the function's
    /// timeout. Zero turns the in-process wait off.
    pub fn with_schedule_sleep(mut self, max: Duration) -> Self {
        self.schedule_sleep = max;
        self
    }

    /// The in-process schedule wait in use.
    pub fn schedule_sleep(&self) -> Duration {
        self.schedule_sleep
    }

    /// With [`FifoBatchProcessor::process_until`], no record is started with less than `margin`
    /// left before the deadline. Make it at least the longest a handler may run (its own
    /// deadline checks aside) plus the time to answer Lambda.
    pub fn with_deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// The deadline margin in use.
    pub fn deadline_margin(&self) -> Duration {
        self.deadline_margin
    }

    /// Runs the batch with no deadline: every record may start (local runners, tests). A Lambda
    /// handler should use [`FifoBatchProcessor::process_until`].
    pub async fn process<F, Fut>(&self, event: SqsEvent, handler: F) -> SqsBatchResponse
    where
        F: Fn(WorkMessage, RecordMeta) -> Fut,
        Fut: Future<Output = Result<(), RecordFailure>>,
    {
        self.run(event, &SystemClock, None, handler).await
    }

    /// Runs the batch within an invocation that ends at `deadline` on `clock` (Lambda's
    /// `Context::deadline`): a record is started only while at least the deadline margin is
    /// left; the rest are reported failed and released at once. In-process schedule waits use
    /// `clock` too.
    pub async fn process_until<C, F, Fut>(
        &self,
        event: SqsEvent,
        clock: &C,
        deadline: UtcTime,
        handler: F,
    ) -> SqsBatchResponse
    where
        C: Clock,
        F: Fn(WorkMessage, RecordMeta) -> Fut,
        Fut: Future<Output = Result<(), RecordFailure>>,
    {
        self.run(event, clock, Some(deadline), handler).await
    }

    /// Whether a record may start at `at`.
    fn in_time(&self, deadline: Option<UtcTime>, at: UtcTime) -> bool {
        deadline.is_none_or(|d| at.plus(self.deadline_margin) <= d)
    }

    async fn run<C, F, Fut>(
        &self,
        event: SqsEvent,
        clock: &C,
        deadline: Option<UtcTime>,
        handler: F,
    ) -> SqsBatchResponse
    where
        C: Clock,
        F: Fn(WorkMessage, RecordMeta) -> Fut,
        Fut: Future<Output = Result<(), RecordFailure>>,
    {
        // A lane is the records one failure holds back: the whole batch, or one group.
        let mut lanes: Vec<Vec<(usize, &SqsMessage, String)>> = Vec::new();
        let mut lane_of: HashMap<String, usize> = HashMap::new();
        for (i, record) in event.records.iter().enumerate() {
            let group = group_of(record);
            let key = match self.scope {
                FailureScope::RestOfBatch => String::new(),
                FailureScope::RestOfGroup => group.clone(),
            };
            let lane = *lane_of.entry(key).or_insert_with(|| {
                lanes.push(Vec::new());
                lanes.len() - 1
            });
            if let Some(records) = lanes.get_mut(lane) {
                records.push((i, record, group));
            }
        }
        let handler = &handler;
        let mut failed: Vec<(usize, String)> = futures::future::join_all(
            lanes
                .into_iter()
                .map(|lane| self.run_lane(lane, clock, deadline, handler)),
        )
        .await
        .into_iter()
        .flatten()
        .collect();
        failed.sort_by_key(|(i, _)| *i);
        let mut response = SqsBatchResponse::default();
        for (_, message_id) in failed {
            response.add_failure(message_id);
        }
        response
    }

    /// One lane's records in order, each with its group; returns the records reported failed,
    /// by batch position.
    async fn run_lane<C, F, Fut>(
        &self,
        lane: Vec<(usize, &SqsMessage, String)>,
        clock: &C,
        deadline: Option<UtcTime>,
        handler: &F,
    ) -> Vec<(usize, String)>
    where
        C: Clock,
        F: Fn(WorkMessage, RecordMeta) -> Fut,
        Fut: Future<Output = Result<(), RecordFailure>>,
    {
        let mut failures = Vec::new();
        let mut lane_failed = false;
        // Once the deadline is near, nothing else starts (even if a wall clock stepped back).
        let mut out_of_time = false;
        let mut release: Vec<(String, String)> = Vec::new();
        let mut pending: Option<(usize, Pending)> = None;
        for (i, record, group_id) in lane {
            let Some(message_id) = record.message_id.clone() else {
                // Lambda always sends one; without it the record cannot be reported either way.
                error!("SQS record without messageId; cannot report it");
                continue;
            };
            if !out_of_time && !self.in_time(deadline, clock.now()) {
                out_of_time = true;
                warn!(message_id = %message_id, group_id = %group_id, deadline = ?deadline,
                    margin_ms = self.deadline_margin.as_millis() as u64,
                    "invocation deadline near; the rest of the lane is released unstarted");
            }
            if out_of_time || lane_failed {
                if let Some(handle) = &record.receipt_handle {
                    release.push((message_id.clone(), handle.clone()));
                }
                failures.push((i, message_id));
                continue;
            }
            let receive_count = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let meta = RecordMeta {
                message_id: message_id.clone(),
                group_id: group_id.clone(),
                receive_count,
            };
            let message = match decode_work_message(record.body.as_deref()) {
                Ok(message) => message,
                Err(failure) => {
                    // Poison: reported failed until the redrive policy moves it to the DLQ.
                    warn!(message_id = %message_id, group_id = %group_id, receive_count,
                        error.code = %failure.code, "undecodable work message; leaving it to the DLQ");
                    lane_failed = true;
                    failures.push((i, message_id));
                    continue;
                }
            };
            let Err(failure) = handler(message.clone(), meta.clone()).await else {
                continue;
            };
            // Whatever failed, the rest of the lane waits behind it.
            lane_failed = true;
            match self.due_soon(&failure) {
                Some(after) => {
                    pending = Some((
                        i,
                        Pending {
                            due: clock.now().plus(after),
                            code: failure.code,
                            message,
                            meta,
                            receipt_handle: record.receipt_handle.clone(),
                        },
                    ));
                }
                None => {
                    self.failed(&failure, &message, &meta, record.receipt_handle.as_deref())
                        .await;
                    failures.push((i, message_id));
                }
            }
        }
        self.release(release).await;
        // A record due shortly is handled again at its time, so a short wait neither delays the
        // other lanes nor becomes a redelivery.
        if let Some((i, p)) = pending
            && let Some(message_id) = self.wait_and_rerun(p, clock, deadline, handler).await
        {
            failures.push((i, message_id));
        }
        failures
    }

    /// Waits in-process for a record's schedule and handles it again; the message id when it
    /// still failed (its delay already set).
    async fn wait_and_rerun<C, F, Fut>(
        &self,
        mut p: Pending,
        clock: &C,
        deadline: Option<UtcTime>,
        handler: &F,
    ) -> Option<String>
    where
        C: Clock,
        F: Fn(WorkMessage, RecordMeta) -> Fut,
        Fut: Future<Output = Result<(), RecordFailure>>,
    {
        let mut result = Ok(());
        for _ in 0..=SCHEDULE_RERUNS {
            if !self.in_time(deadline, p.due) {
                // Waiting would end too near the deadline: the queue brings it back instead.
                let remaining = p.due.since(clock.now());
                result = Err(RecordFailure::until_schedule(p.code.clone(), remaining));
                break;
            }
            clock.sleep(p.due.since(clock.now())).await;
            result = handler(p.message.clone(), p.meta.clone()).await;
            match &result {
                Err(f) => match self.due_soon(f) {
                    Some(after) => {
                        p.due = clock.now().plus(after);
                        p.code.clone_from(&f.code);
                    }
                    None => break,
                },
                Ok(()) => break,
            }
        }
        let failure = result.err()?;
        self.failed(&failure, &p.message, &p.meta, p.receipt_handle.as_deref())
            .await;
        Some(p.meta.message_id)
    }

    /// The wait of a schedule failure short enough to spend in-process.
    fn due_soon(&self, failure: &RecordFailure) -> Option<Duration> {
        failure
            .retry_after
            .filter(|after| failure.timing == WaitTiming::Schedule && *after <= self.schedule_sleep)
    }

    /// Logs a failed record and delays its message when the failure asks for it.
    async fn failed(
        &self,
        failure: &RecordFailure,
        message: &WorkMessage,
        meta: &RecordMeta,
        receipt_handle: Option<&str>,
    ) {
        info!(message_id = %meta.message_id, group_id = %meta.group_id, job_id = %message.job_id,
            error.code = %failure.code, retry_after_ms = failure.retry_after.map(|d| d.as_millis() as u64),
            timing = ?failure.timing, "work message failed; its group waits");
        if let (Some(after), Some(handle)) = (failure.retry_after, receipt_handle) {
            self.delay(handle, after, failure.timing, &meta.message_id)
                .await;
        }
    }

    /// Keeps a failed message in flight (see [`delay_visibility`]): its group waits, others don't.
    async fn delay(
        &self,
        receipt_handle: &str,
        after: Duration,
        timing: WaitTiming,
        message_id: &str,
    ) {
        let wait = delay_visibility(after, timing, |cap_ms| rand::rng().random_range(0..=cap_ms));
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(wait.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await;
        if let Err(e) = result {
            // The message still returns after the queue's visibility timeout.
            warn!(message_id, error.message = %e, "could not delay the failed message");
        }
    }

    /// Makes never-attempted records visible again so their groups are not held back.
    async fn release(&self, records: Vec<(String, String)>) {
        for chunk in records.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (_, handle))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("r{i}"))
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(out) if !out.failed().is_empty() => {
                    let ids: HashMap<String, &str> = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, (m, _))| (format!("r{i}"), m.as_str()))
                        .collect();
                    for f in out.failed() {
                        warn!(
                            message_id = ids.get(f.id()).copied().unwrap_or_default(),
                            error.code = f.code(),
                            "could not release an unprocessed message; it returns after its visibility timeout"
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => warn!(error.message = %e, "could not release unprocessed messages"),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_and_garbage_are_poison() {
        assert_eq!(
            decode_work_message(Some("nope")).unwrap_err().code,
            "undecodable_body"
        );
        assert_eq!(decode_work_message(None).unwrap_err().code, "empty_body");
        let v2 = r#"{"v":2,"kind":"publish","jobId":"job_01HT0000000000000000000000","tenantId":"t","accountId":"a","jobVersion":1}"#;
        assert_eq!(
            decode_work_message(Some(v2)).unwrap_err().code,
            "unknown_envelope_version"
        );
        let v1 = v2.replace("\"v\":2", "\"v\":1");
        assert!(decode_work_message(Some(&v1)).is_ok());
    }

    #[test]
    fn a_schedule_wait_is_never_jittered_and_never_ends_past_the_schedule() {
        for ms in [
            0_u64, 1, 999, 1_000, 1_001, 2_500, 29_999, 30_000, 59_999, 60_000,
        ] {
            let after = Duration::from_millis(ms);
            // The largest jitter the source could give must not be used.
            let v = delay_visibility(after, WaitTiming::Schedule, |cap| cap);
            assert!(
                v <= after,
                "{ms} ms: visibility {v:?} ends past the schedule"
            );
            assert!(
                after - v < Duration::from_secs(1),
                "{ms} ms: {v:?} is a whole second early or more"
            );
            assert_eq!(v.subsec_nanos(), 0, "SQS takes whole seconds");
        }
    }

    #[test]
    fn a_schedule_wait_does_not_call_the_jitter_source() {
        let mut called = false;
        let _ = delay_visibility(Duration::from_secs(45), WaitTiming::Schedule, |_| {
            called = true;
            0
        });
        assert!(!called);
    }

    #[test]
    fn a_budget_wait_is_jittered_within_a_fifth_and_never_ends_early() {
        let after = Duration::from_millis(30_400);
        let none = delay_visibility(after, WaitTiming::Backoff, |_| 0);
        assert_eq!(
            none,
            Duration::from_secs(31),
            "rounded up, never before the wait"
        );
        let mut seen_cap = 0;
        let most = delay_visibility(after, WaitTiming::Backoff, |cap| {
            seen_cap = cap;
            cap
        });
        assert_eq!(seen_cap, 6_080, "a fifth of the wait");
        assert_eq!(most, Duration::from_secs(37));
        // A short wait still spreads over at least a second, and never asks for 0 s.
        assert_eq!(
            delay_visibility(Duration::ZERO, WaitTiming::Backoff, |_| 0),
            Duration::from_secs(1)
        );
        let mut short_cap = 0;
        let _ = delay_visibility(Duration::from_millis(200), WaitTiming::Backoff, |cap| {
            short_cap = cap;
            0
        });
        assert_eq!(short_cap, 1_000);
    }

    #[test]
    fn a_wait_is_capped_at_the_sqs_maximum() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            delay_visibility(day, WaitTiming::Schedule, |_| 0),
            MAX_VISIBILITY
        );
        assert_eq!(
            delay_visibility(day, WaitTiming::Backoff, |c| c),
            MAX_VISIBILITY
        );
        assert_eq!(
            delay_visibility(day, WaitTiming::Window, |c| c),
            MAX_VISIBILITY
        );
    }

    /// An account's own window: its group alone waits, so the head comes back the first whole
    /// second after the window frees, never before it and with no jitter (which cost the
    /// saturation bench up to a fifth of each 60 s wait).
    #[test]
    fn a_window_wait_is_rounded_up_and_never_jittered() {
        for (ms, secs) in [
            (0_u64, 1_u64),
            (1, 1),
            (999, 1),
            (1_000, 1),
            (1_001, 2),
            (59_400, 60),
        ] {
            let v = delay_visibility(Duration::from_millis(ms), WaitTiming::Window, |cap| {
                panic!("jitter asked for a window wait (cap {cap} ms)")
            });
            assert_eq!(v, Duration::from_secs(secs), "{ms} ms");
        }
    }

    #[test]
    fn a_record_starts_only_with_the_margin_left() {
        let sdk = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .build();
        let p = FifoBatchProcessor::new(Client::from_conf(sdk), "q");
        assert_eq!(p.deadline_margin(), DEFAULT_DEADLINE_MARGIN);
        let p = p.with_deadline_margin(Duration::from_secs(3));
        let t = |s| UtcTime::from_secs(s);
        assert!(p.in_time(None, t(1_000)), "no deadline, no limit");
        assert!(p.in_time(Some(t(10)), t(7)), "exactly the margin left");
        assert!(!p.in_time(Some(t(10)), t(8)));
        assert!(!p.in_time(Some(t(10)), t(11)));
    }

    #[test]
    fn only_short_schedule_waits_are_spent_in_process() {
        let sdk = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .build();
        let p = FifoBatchProcessor::new(Client::from_conf(sdk), "q");
        assert_eq!(p.schedule_sleep(), DEFAULT_SCHEDULE_SLEEP);
        let short = Duration::from_millis(1_500);
        assert_eq!(
            p.due_soon(&RecordFailure::until_schedule("not_due_yet", short)),
            Some(short)
        );
        assert_eq!(
            p.due_soon(&RecordFailure::retry_after("init_budget", short)),
            None
        );
        assert_eq!(
            p.due_soon(&RecordFailure::until_schedule(
                "not_due_yet",
                Duration::from_secs(3)
            )),
            None
        );
        let off = p.with_schedule_sleep(Duration::ZERO);
        assert_eq!(
            off.due_soon(&RecordFailure::until_schedule("not_due_yet", short)),
            None
        );
    }
}
