//! The campaign's own MiniStack: its own port, run directory and persisted state, started and
//! restarted through `infra/scripts/aws-emulator.sh`. The shared instance other engineers and
//! tests use (`.aws-emulator/ministack.port`) is never touched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::CampaignError;

/// A private, persisting MiniStack.
#[derive(Debug)]
pub struct PrivateEndpoint {
    script: PathBuf,
    run_dir: PathBuf,
    port: u16,
}

/// The repository root, from this crate's location.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> Result<u16, CampaignError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| CampaignError::Endpoint(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| CampaignError::Endpoint(format!("no free port: {e}")))
}

impl PrivateEndpoint {
    /// Installs (if needed) and starts a MiniStack under `run_dir` with persistence on.
    pub async fn start(run_dir: PathBuf) -> Result<Self, CampaignError> {
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| CampaignError::Endpoint(format!("{}: {e}", run_dir.display())))?;
        let endpoint = Self {
            script: repo_root().join("infra/scripts/aws-emulator.sh"),
            run_dir,
            port: free_port()?,
        };
        // A leftover instance of this run directory (an interrupted run) is ours to stop, and
        // its saved state is not this run's.
        endpoint.verb("stop").await?;
        let _ = std::fs::remove_dir_all(endpoint.state_dir());
        endpoint.verb("start").await?;
        Ok(endpoint)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.run_dir.join("state")
    }

    async fn verb(&self, verb: &'static str) -> Result<(), CampaignError> {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script)
            .arg(verb)
            .env("AWS_EMULATOR", "ministack")
            .env("AWS_EMULATOR_RUN_DIR", &self.run_dir)
            .env("AWS_EMULATOR_PORT", self.port.to_string())
            .env("AWS_EMULATOR_PERSIST_DIR", self.state_dir());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| CampaignError::Endpoint(format!("{verb}: {e}")))?
            .map_err(|e| CampaignError::Endpoint(format!("{verb}: {e}")))?;
        if !out.status.success() {
            return Err(CampaignError::Endpoint(format!(
                "aws-emulator.sh {verb} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// A graceful stop (MiniStack saves its state) and a start on the same port (it reloads it).
    /// Returns how long the endpoint was down.
    pub async fn restart(&self) -> Result<Duration, CampaignError> {
        let down = Instant::now();
        self.verb("stop").await?;
        self.verb("start").await?;
        Ok(down.elapsed())
    }

    pub async fn stop(&self) -> Result<(), CampaignError> {
        self.verb("stop").await
    }
}
