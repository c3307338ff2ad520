//! The schedule driver: a local EventBridge rule. Each tick invokes the handler with the
//! "Scheduled Event" a `Type: Schedule` event sends; a tick that finds the previous run still
//! going is skipped, so ticks never overlap (the reconciler relies on one run at a time).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use reelay_template::Template;

use crate::function::{event_properties, scalar};
use crate::{FunctionSpec, InvocationOutcome, LAMBDA_MAX_TIMEOUT, LOCAL_ACCOUNT_ID, LocalError};

/// Tick totals for a progress display.
#[derive(Debug, Default)]
pub struct TickCounters {
    pub ticks: AtomicU64,
    pub runs: AtomicU64,
    pub skipped: AtomicU64,
    pub failures: AtomicU64,
}

impl TickCounters {
    pub fn snapshot(&self) -> TickStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TickStats {
            ticks: load(&self.ticks),
            runs: load(&self.runs),
            skipped: load(&self.skipped),
            failures: load(&self.failures),
        }
    }
}

impl std::fmt::Display for TickStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ticks={} runs={} skipped={} failed={}",
            self.ticks, self.runs, self.skipped, self.failures
        )
    }
}

/// A point-in-time copy of [`TickCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickStats {
    pub ticks: u64,
    pub runs: u64,
    pub skipped: u64,
    pub failures: u64,
}

/// Settings of one schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub period: Duration,
    /// The rule name in the event's `resources` ARN.
    pub rule_name: String,
    /// Fire once at start instead of one period later (handy for a local demo).
    pub fire_immediately: bool,
    pub function: FunctionSpec,
}

impl Schedule {
    pub fn new(period: Duration, function: FunctionSpec) -> Self {
        Self {
            period,
            rule_name: format!("{}-Tick", function.name),
            fire_immediately: false,
            function,
        }
    }

    /// The function's `Type: Schedule` event from template.yaml: its `rate(...)` (a parameter's
    /// default when it is a `!Ref`) and the function's timeout.
    pub fn from_template(template: &Template, logical_id: &str) -> Result<Self, LocalError> {
        let function = FunctionSpec::from_template(template, logical_id)?;
        let props = event_properties(template, logical_id, "Schedule")?;
        let expression = props
            .get("Schedule")
            .and_then(|e| scalar(template, e))
            .unwrap_or_default();
        let period = parse_rate(&expression)?;
        Ok(Self::new(period, function))
    }

    pub fn fire_immediately(mut self) -> Self {
        self.fire_immediately = true;
        self
    }
}

/// `rate(1 minute)`, `rate(5 minutes)`, `rate(2 hours)`, `rate(1 day)` as EventBridge reads them.
pub fn parse_rate(expression: &str) -> Result<Duration, LocalError> {
    let unsupported = || LocalError::UnsupportedSchedule(expression.to_owned());
    let inner = expression
        .trim()
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(unsupported)?;
    let (n, unit) = inner.trim().split_once(' ').ok_or_else(unsupported)?;
    let n: u64 = n.parse().map_err(|_| unsupported())?;
    let unit_s = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return Err(unsupported()),
    };
    if n == 0 {
        return Err(unsupported());
    }
    Ok(Duration::from_secs(n * unit_s))
}

/// The event EventBridge sends a Lambda target for a scheduled rule.
pub fn scheduled_event_json(
    rule_name: &str,
    region: &str,
    time: chrono::DateTime<chrono::Utc>,
) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{LOCAL_ACCOUNT_ID}:rule/{rule_name}")],
        "detail": {},
    })
}

/// A running schedule. Stop it with [`Ticker::stop`]: a run in progress finishes first.
#[derive(Debug)]
pub struct Ticker {
    token: CancellationToken,
    task: JoinHandle<()>,
    counters: Arc<TickCounters>,
}

impl Ticker {
    /// Calls `handler` every `period` (first call one period from now), with Lambda's maximum
    /// timeout. The handler gets a `CloudWatchEvent` (the type for EventBridge scheduled events).
    pub fn spawn<H, Fut>(period: Duration, handler: H) -> Self
    where
        H: Fn(CloudWatchEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: InvocationOutcome,
    {
        let function = FunctionSpec::new("scheduled-handler", LAMBDA_MAX_TIMEOUT);
        Self::spawn_with(
            Schedule::new(period, function),
            CancellationToken::new(),
            handler,
        )
    }

    /// As [`Ticker::spawn`] with every setting explicit, stopping when `token` is cancelled.
    pub fn spawn_with<H, Fut>(schedule: Schedule, token: CancellationToken, handler: H) -> Self
    where
        H: Fn(CloudWatchEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: InvocationOutcome,
    {
        let counters = Arc::new(TickCounters::default());
        let task = tokio::spawn(tick_loop(
            schedule,
            token.clone(),
            Arc::new(handler),
            counters.clone(),
        ));
        Self {
            token,
            task,
            counters,
        }
    }

    pub fn stats(&self) -> TickStats {
        self.counters.snapshot()
    }

    pub fn counters(&self) -> Arc<TickCounters> {
        self.counters.clone()
    }

    /// Stops ticking and waits for a run in progress (bounded by the function timeout).
    pub async fn stop(self) -> Result<(), crate::LocalError> {
        self.token.cancel();
        crate::http::join_driver("ticker", self.task).await
    }

    pub(crate) fn into_parts(self) -> (CancellationToken, JoinHandle<()>) {
        (self.token, self.task)
    }
}

async fn tick_loop<H, Fut>(
    schedule: Schedule,
    token: CancellationToken,
    handler: Arc<H>,
    counters: Arc<TickCounters>,
) where
    H: Fn(CloudWatchEvent) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: InvocationOutcome,
{
    let start = if schedule.fire_immediately {
        tokio::time::Instant::now()
    } else {
        tokio::time::Instant::now() + schedule.period
    };
    let mut interval = tokio::time::interval_at(start, schedule.period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut running: Option<JoinHandle<()>> = None;
    info!(function = %schedule.function.name, period_ms = u64::try_from(schedule.period.as_millis()).unwrap_or(u64::MAX), "ticker started");
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            _ = interval.tick() => {}
        }
        counters.ticks.fetch_add(1, Ordering::Relaxed);
        if running.as_ref().is_some_and(|r| !r.is_finished()) {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            debug!(function = %schedule.function.name, "previous run still going; tick skipped");
            continue;
        }
        let event = scheduled_event_json(
            &schedule.rule_name,
            &schedule.function.region,
            chrono::Utc::now(),
        );
        let event: CloudWatchEvent = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "scheduled event did not round-trip");
                continue;
            }
        };
        counters.runs.fetch_add(1, Ordering::Relaxed);
        let fut = handler(event);
        let counters = counters.clone();
        let timeout = schedule.function.timeout;
        let name = schedule.function.name.clone();
        running = Some(tokio::spawn(async move {
            let mut run = tokio::spawn(async move { fut.await.error_message() });
            let outcome = match tokio::time::timeout(timeout, &mut run).await {
                Ok(Ok(error)) => error,
                Ok(Err(join_error)) => Some(format!("handler panicked: {join_error}")),
                Err(_) => {
                    run.abort();
                    Some(format!("handler timed out after {timeout:?}"))
                }
            };
            if let Some(error) = outcome {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                warn!(function = %name, error = %error, "scheduled run failed");
            }
        }));
    }
    if let Some(run) = running
        && let Err(e) = run.await
    {
        warn!(error = %e, "scheduled run ended abnormally");
    }
    info!(function = %schedule.function.name, "ticker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reconciler enqueues what is due within `enqueue_ahead`; unless that reaches past the
    /// next tick by a margin, a job due just after this tick's horizon is enqueued after its
    /// `scheduleAt` whenever the next tick is late or slow to reach it.
    #[test]
    fn the_lookahead_outlasts_the_templates_reconciler_period_with_room_to_spare() {
        let template = Template::from_path(crate::testbed::template_path());
        let schedule = template.map_err(|e| e.to_string()).and_then(|t| {
            Schedule::from_template(&t, "ReconcilerFunction").map_err(|e| e.to_string())
        });
        let Ok(schedule) = schedule else {
            panic!("the reconciler's schedule: {schedule:?}");
        };
        let ahead = reelay_domain::lifecycle::Policy::default().enqueue_ahead;
        assert!(
            ahead >= schedule.period + schedule.period / 4,
            "enqueue_ahead {ahead:?} against a {:?} period",
            schedule.period
        );
    }

    #[test]
    fn when_a_rate_is_parsed_should_follow_eventbridge_units() {
        assert_eq!(
            parse_rate("rate(1 minute)").ok(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_rate("rate(5 minutes)").ok(),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_rate("rate(2 hours)").ok(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            parse_rate("rate(1 day)").ok(),
            Some(Duration::from_secs(86_400))
        );
        for bad in [
            "cron(0 12 * * ? *)",
            "rate(0 minutes)",
            "rate(1 fortnight)",
            "",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad} accepted");
        }
    }
}
