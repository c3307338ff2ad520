//! Starts and stops every driver of a local run together, on one shutdown token.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{HttpFront, LocalError, SqsDriver, Ticker};

/// Owns the drivers of a local run. Each driver gets a child of one token, so a single
/// [`LocalRuntime::shutdown`] (or Ctrl-C via [`LocalRuntime::run_until_ctrl_c`]) stops them all,
/// and each still lets its in-flight work finish.
#[derive(Debug, Default)]
pub struct LocalRuntime {
    token: CancellationToken,
    drivers: Vec<(String, CancellationToken, JoinHandle<()>)>,
}

impl LocalRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token to pass to a driver's `spawn_with` / `start_with_token`; cancelled by `shutdown`.
    pub fn child_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    /// Cancelled when the runtime shuts down, for the runner's own loops (e.g. a progress display).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub fn add_sqs(&mut self, name: impl Into<String>, driver: SqsDriver) {
        let (token, task) = driver.into_parts();
        self.drivers.push((name.into(), token, task));
    }

    pub fn add_ticker(&mut self, name: impl Into<String>, ticker: Ticker) {
        let (token, task) = ticker.into_parts();
        self.drivers.push((name.into(), token, task));
    }

    pub fn add_http(&mut self, name: impl Into<String>, front: HttpFront) {
        let (token, task) = front.into_parts();
        self.drivers.push((name.into(), token, task));
    }

    pub fn names(&self) -> Vec<String> {
        self.drivers.iter().map(|(n, _, _)| n.clone()).collect()
    }

    /// Stops every driver and waits for all of them; the first abnormal end is returned after
    /// the rest have been joined.
    pub async fn shutdown(self) -> Result<(), LocalError> {
        self.token.cancel();
        for (_, token, _) in &self.drivers {
            token.cancel();
        }
        let mut first_error = None;
        for (name, _, task) in self.drivers {
            if let Err(e) = task.await {
                first_error.get_or_insert(LocalError::DriverFailed {
                    name,
                    message: e.to_string(),
                });
            }
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
