//! Starts and stops every driver of a local run together, on one shutdown token.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::http::{HttpCounters, HttpStats};
use crate::schedule::TickCounters;
use crate::{HttpFront, LocalError, SqsCounters, SqsDriver, SqsStats, TickStats, Ticker};

#[derive(Debug, Clone)]
enum Counters {
    Sqs(Arc<SqsCounters>),
    Ticker(Arc<TickCounters>),
    Http(Arc<HttpCounters>),
    Stream(Arc<SqsCounters>),
}

/// One driver's numbers, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverStats {
    Sqs(SqsStats),
    Ticker(TickStats),
    Http(HttpStats),
    /// A table stream's mapping: batches, records and failures as a queue's.
    Stream(SqsStats),
}

impl fmt::Display for DriverStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqs(s) => write!(f, "sqs {s}"),
            Self::Ticker(s) => write!(f, "schedule {s}"),
            Self::Http(s) => write!(f, "http {s}"),
            Self::Stream(s) => write!(f, "stream {s}"),
        }
    }
}

#[derive(Debug)]
struct Driver {
    name: String,
    token: CancellationToken,
    task: JoinHandle<()>,
    counters: Counters,
}

/// Owns the drivers of a local run. Each driver gets a child of one token, so a single
/// [`LocalRuntime::shutdown`] (or Ctrl-C via [`LocalRuntime::run_until_ctrl_c`]) stops them all,
/// and each still lets its in-flight work finish.
#[derive(Debug, Default)]
pub struct LocalRuntime {
    token: CancellationToken,
    drivers: Vec<Driver>,
    extra: Vec<JoinHandle<()>>,
}

impl LocalRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token to pass to a driver's `spawn_with` / `start_with_token`; cancelled by `shutdown`.
    pub fn child_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    /// Cancelled when the runtime shuts down, for the runner's own loops.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub fn add_sqs(&mut self, name: impl Into<String>, driver: SqsDriver) {
        let counters = Counters::Sqs(driver.counters());
        let (token, task) = driver.into_parts();
        self.push(name.into(), token, task, counters);
    }

    pub fn add_ticker(&mut self, name: impl Into<String>, ticker: Ticker) {
        let counters = Counters::Ticker(ticker.counters());
        let (token, task) = ticker.into_parts();
        self.push(name.into(), token, task, counters);
    }

    pub fn add_stream(&mut self, name: impl Into<String>, driver: crate::StreamDriver) {
        let counters = Counters::Stream(driver.counters());
        let (token, task) = driver.into_parts();
        self.push(name.into(), token, task, counters);
    }

    pub fn add_http(&mut self, name: impl Into<String>, front: HttpFront) {
        let counters = Counters::Http(front.counters());
        let (token, task) = front.into_parts();
        self.push(name.into(), token, task, counters);
    }

    fn push(
        &mut self,
        name: String,
        token: CancellationToken,
        task: JoinHandle<()>,
        counters: Counters,
    ) {
        self.drivers.push(Driver {
            name,
            token,
            task,
            counters,
        });
    }

    pub fn names(&self) -> Vec<String> {
        self.drivers.iter().map(|d| d.name.clone()).collect()
    }

    /// Every driver's counters now, in the order they were added.
    pub fn stats(&self) -> Vec<(String, DriverStats)> {
        self.drivers
            .iter()
            .map(|d| (d.name.clone(), snapshot(&d.counters)))
            .collect()
    }

    /// Logs one `progress` line per driver every `every` until shutdown (counts only, no
    /// payloads).
    pub fn log_progress(&mut self, every: Duration) {
        let drivers: Vec<(String, Counters)> = self
            .drivers
            .iter()
            .map(|d| (d.name.clone(), d.counters.clone()))
            .collect();
        let token = self.token.clone();
        self.extra.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = interval.tick() => {}
                }
                for (name, counters) in &drivers {
                    info!(driver = %name, stats = %snapshot(counters), "progress");
                }
            }
        }));
    }

    /// Stops every driver and waits for all of them; the first abnormal end is returned after
    /// the rest have been joined.
    pub async fn shutdown(self) -> Result<(), LocalError> {
        self.token.cancel();
        for d in &self.drivers {
            d.token.cancel();
        }
        let mut first_error = None;
        for d in self.drivers {
            if let Err(e) = d.task.await {
                first_error.get_or_insert(LocalError::DriverFailed {
                    name: d.name,
                    message: e.to_string(),
                });
            }
        }
        for task in self.extra {
            let _ = task.await;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Serves until Ctrl-C (or until [`LocalRuntime::token`] is cancelled), then shuts down.
    pub async fn run_until_ctrl_c(self) -> Result<(), LocalError> {
        let token = self.token.clone();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = token.cancelled() => {}
        }
        self.shutdown().await
    }
}

fn snapshot(counters: &Counters) -> DriverStats {
    match counters {
        Counters::Sqs(c) => DriverStats::Sqs(c.snapshot()),
        Counters::Ticker(c) => DriverStats::Ticker(c.snapshot()),
        Counters::Http(c) => DriverStats::Http(c.snapshot()),
        Counters::Stream(c) => DriverStats::Stream(c.snapshot()),
    }
}
