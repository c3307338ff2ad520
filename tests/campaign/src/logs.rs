//! Every log line of the run, scanned for the canary planted in every secret. The scan sits
//! behind a `tracing` subscriber at the configured level (TRACE by default, so the SDKs' and
//! HTTP stacks' own lines are scanned too); lines may also be kept in a file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::CampaignError;

/// Counts lines and canary hits; keeps the first few hits with the canary masked.
#[derive(Debug)]
pub struct LogScan {
    canary: String,
    lines: AtomicU64,
    bytes: AtomicU64,
    hits: AtomicU64,
    samples: Mutex<Vec<String>>,
    file: Option<Mutex<BufWriter<File>>>,
}

impl LogScan {
    pub fn new(canary: &str, file: Option<&Path>) -> Result<Arc<Self>, CampaignError> {
        let file = match file {
            Some(path) => Some(Mutex::new(BufWriter::new(
                File::create(path)
                    .map_err(|e| CampaignError::Logs(format!("{}: {e}", path.display())))?,
            ))),
            None => None,
        };
        Ok(Arc::new(Self {
            canary: canary.to_owned(),
            lines: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
            file,
        }))
    }

    /// Scans one formatted event (one or more lines).
    pub fn scan(&self, chunk: &[u8]) {
        let text = String::from_utf8_lossy(chunk);
        for line in text.lines() {
            self.lines.fetch_add(1, Ordering::Relaxed);
            if line.contains(&self.canary) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut s) = self.samples.lock()
                    && s.len() < 5
                {
                    s.push(line.replace(&self.canary, "<CANARY>"));
                }
            }
        }
        self.bytes
            .fetch_add(u64::try_from(chunk.len()).unwrap_or(0), Ordering::Relaxed);
        if let Some(file) = &self.file
            && let Ok(mut f) = file.lock()
        {
            let _ = f.write_all(chunk);
        }
    }

    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The first hits, canary masked (so the report itself leaks nothing).
    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn flush(&self) {
        if let Some(file) = &self.file
            && let Ok(mut f) = file.lock()
        {
            let _ = f.flush();
        }
    }
}

/// One event's bytes, scanned when the formatter is done with it.
#[derive(Debug)]
pub struct ScanWriter {
    scan: Arc<LogScan>,
    buf: Vec<u8>,
}

impl Write for ScanWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScanWriter {
    fn drop(&mut self) {
        self.scan.scan(&self.buf);
    }
}

/// Installs the process-wide subscriber: every event at `filter` (e.g. `trace`) goes through
/// the scan. Fails if a subscriber is already installed (the scan would then see nothing).
pub fn install(scan: Arc<LogScan>, filter: &str) -> Result<(), CampaignError> {
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(move || ScanWriter {
            scan: scan.clone(),
            buf: Vec::with_capacity(256),
        });
    tracing_subscriber::registry()
        .with(EnvFilter::new(filter))
        .with(layer)
        .try_init()
        .map_err(|e| CampaignError::Logs(format!("installing the subscriber: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_line_with_the_canary_is_counted_and_masked() {
        let scan = LogScan::new("CANARYabc", None).unwrap();
        {
            let mut w = ScanWriter {
                scan: scan.clone(),
                buf: Vec::new(),
            };
            w.write_all(b"one fine line\nkey=sk_CANARYabc_x leaked\n")
                .unwrap();
        }
        assert_eq!(scan.lines(), 2);
        assert_eq!(scan.hits(), 1);
        assert_eq!(scan.samples(), vec!["key=sk_<CANARY>_x leaked".to_owned()]);
    }
}
