//! What the functions would write to CloudWatch Logs on Lambda, counted in the stack child.
//!
//! On Lambda each function's `main` calls `lambda_runtime::tracing::init_default_subscriber()`:
//! tracing's JSON formatter, without target and time, on stdout, at `AWS_LAMBDA_LOG_LEVEL` (the
//! template's `ApplicationLogLevel`, because `LogFormat: JSON`). The runtime wraps every
//! invocation in an INFO span `"Lambda runtime invoke"` with `requestId` and `xrayTraceId`, so
//! each line carries that span (as `span` and in `spans`). EMF metric lines
//! (`reelay_aws::metrics::emit`) are printed to stdout too. Lambda ships every stdout line to the
//! function's log group as one log event.
//!
//! Here, [`invoke`] wraps each handler call in the same span (same name, same fields, ids of the
//! real lengths) and in a task-local naming the function; [`layer`] is the same formatter
//! writing into a byte counter instead of stdout, enabled only for events inside such a span, so
//! the harness', the simulators' and the local drivers' own events are not counted; and
//! [`metric_sink`] counts the EMF lines (and which metric and `Function` each names). Lambda's
//! own platform lines (START/END/REPORT) are not application output: the bill adds them per
//! invocation when the template's `SystemLogLevel` lets them through.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use reelay_template::Template;
use reelay_template::resolve::Resolver;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The span `lambda_runtime` opens around every invocation (`layers/trace.rs`, `request_span`).
pub const INVOKE_SPAN: &str = "Lambda runtime invoke";
/// Where events inside an invocation span but outside a named function would go (none expected).
pub const UNATTRIBUTED: &str = "unattributed";

/// Lines one function wrote, and their bytes (the newline excluded, as in a log event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCount {
    /// tracing's JSON lines.
    pub lines: u64,
    pub bytes: u64,
    /// EMF metric lines.
    pub metric_lines: u64,
    pub metric_bytes: u64,
}

impl LogCount {
    /// Log events: every line is one.
    pub fn events(&self) -> u64 {
        self.lines + self.metric_lines
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes + self.metric_bytes
    }

    pub fn add(&mut self, other: &LogCount) {
        self.lines += other.lines;
        self.bytes += other.bytes;
        self.metric_lines += other.metric_lines;
        self.metric_bytes += other.metric_bytes;
    }

    /// `self - earlier`, never below zero.
    pub fn since(&self, earlier: &LogCount) -> LogCount {
        LogCount {
            lines: self.lines.saturating_sub(earlier.lines),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            metric_lines: self.metric_lines.saturating_sub(earlier.metric_lines),
            metric_bytes: self.metric_bytes.saturating_sub(earlier.metric_bytes),
        }
    }
}

/// Everything counted so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogTotals {
    pub by_function: BTreeMap<String, LogCount>,
    /// `(metric name, Function dimension)` of every EMF line seen.
    pub metric_series: BTreeSet<(String, String)>,
}

static TOTALS: Mutex<LogTotals> = Mutex::new(LogTotals {
    by_function: BTreeMap::new(),
    metric_series: BTreeSet::new(),
});

static INVOCATIONS: AtomicU64 = AtomicU64::new(0);

tokio::task_local! {
    static FUNCTION: &'static str;
}

fn current_function() -> &'static str {
    FUNCTION.try_with(|f| *f).unwrap_or(UNATTRIBUTED)
}

fn record(function: &str, f: impl FnOnce(&mut LogCount)) {
    if let Ok(mut t) = TOTALS.lock() {
        f(t.by_function.entry(function.to_owned()).or_default());
    }
}

/// Forgets everything counted (the window opens).
pub fn reset() {
    if let Ok(mut t) = TOTALS.lock() {
        *t = LogTotals::default();
    }
}

pub fn snapshot() -> LogTotals {
    TOTALS.lock().map(|t| t.clone()).unwrap_or_default()
}

pub fn count_of(function: &str) -> LogCount {
    TOTALS
        .lock()
        .ok()
        .and_then(|t| t.by_function.get(function).copied())
        .unwrap_or_default()
}

/// Moves what `from` wrote since `before` to `to` (a reconciler tick that found nothing due is
/// a per-minute cost, not a per-job one). Ticks never overlap, so the difference is the tick's.
pub fn reassign_since(from: &str, before: &LogCount, to: &str) {
    if let Ok(mut t) = TOTALS.lock() {
        let now = t.by_function.get(from).copied().unwrap_or_default();
        let delta = now.since(before);
        t.by_function.insert(from.to_owned(), *before);
        t.by_function.entry(to.to_owned()).or_default().add(&delta);
    }
}

/// Runs one invocation of `function` the way Lambda's runtime does: inside the runtime's span.
/// The ids have the real lengths (a UUID request id, an X-Ray trace header with lineage).
pub async fn invoke<F: Future>(function: &'static str, fut: F) -> F::Output {
    let n = INVOCATIONS.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("00000000-0000-4000-8000-{n:012x}");
    let trace_id =
        format!("Root=1-00000000-{n:024x};Parent={n:016x};Sampled=0;Lineage=1:00000000:0");
    let span = tracing::info_span!(
        "Lambda runtime invoke",
        requestId = %request_id,
        xrayTraceId = %trace_id
    );
    FUNCTION.scope(function, fut.instrument(span)).await
}

/// Set to a file path, every counted line is also appended there, prefixed with its function:
/// what the bytes are, for anyone auditing the figure.
pub const DUMP_ENV: &str = "REELAY_BENCH_LAMBDA_LOG_DUMP";

static DUMP: std::sync::OnceLock<Option<Mutex<std::fs::File>>> = std::sync::OnceLock::new();

fn dump(function: &str, buf: &[u8]) {
    use std::io::Write as _;
    let file = DUMP.get_or_init(|| {
        let path = std::env::var_os(DUMP_ENV)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .inspect_err(|e| tracing::warn!(error.message = %e, "{DUMP_ENV}: cannot open"))
            .ok()
            .map(Mutex::new)
    });
    if let Some(Ok(mut f)) = file.as_ref().map(Mutex::lock) {
        // Best effort: the dump is a reading aid, the counts do not depend on it.
        let _ = write!(f, "{function}\t");
        let _ = f.write_all(buf);
        if !buf.ends_with(b"\n") {
            let _ = f.write_all(b"\n");
        }
    }
}

/// A writer that counts what the formatter would have printed.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingWriter;

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let newlines = buf.iter().filter(|b| **b == b'\n').count() as u64;
        let bytes = buf.len() as u64 - newlines;
        let function = current_function();
        record(function, |c| {
            c.lines += newlines;
            c.bytes += bytes;
        });
        dump(function, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CountingWriter {
    type Writer = CountingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// The formatter `init_default_subscriber` installs with `AWS_LAMBDA_LOG_FORMAT=JSON`, at
/// `level`, counting instead of printing, and only for events inside an invocation span.
pub fn layer<S>(level: LevelFilter) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let filter = tracing_subscriber::filter::dynamic_filter_fn(
        move |meta: &tracing::Metadata<'_>, cx: &tracing_subscriber::layer::Context<'_, S>| {
            if level < *meta.level() {
                return false;
            }
            if meta.is_span() {
                return true;
            }
            cx.lookup_current()
                .is_some_and(|span| span.scope().any(|s| s.name() == INVOKE_SPAN))
        },
    )
    .with_max_level_hint(level);
    tracing_subscriber::fmt::layer()
        .json()
        .with_target(false)
        .without_time()
        .with_writer(CountingWriter)
        .with_filter(filter)
}

/// `reelay_aws::metrics::set_sink` target: counts an EMF line for the function emitting it.
pub fn metric_sink(line: &str) {
    let function = current_function();
    record(function, |c| {
        c.metric_lines += 1;
        c.metric_bytes += line.len() as u64;
    });
    dump(function, line.as_bytes());
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
        return;
    };
    let function = doc["Function"].as_str().unwrap_or_default().to_owned();
    let names: Vec<String> = doc["_aws"]["CloudWatchMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["Metrics"].as_array().into_iter().flatten())
        .filter_map(|m| m["Name"].as_str().map(str::to_owned))
        .collect();
    if let Ok(mut t) = TOTALS.lock() {
        for name in names {
            t.metric_series.insert((name, function.clone()));
        }
    }
}

/// The application log level Lambda applies: `Globals.Function.LoggingConfig.ApplicationLogLevel`
/// (with `LogFormat: JSON`), else the `RUST_LOG` the template sets, else INFO (the runtime's
/// default).
pub fn app_log_level(template: &Template) -> LevelFilter {
    let resolver = Resolver::new(template, &BTreeMap::new());
    let globals = &template.function_globals;
    let configured = globals
        .get("LoggingConfig")
        .and_then(|c| c.get("ApplicationLogLevel"))
        .or_else(|| {
            globals
                .get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(|v| v.get("RUST_LOG"))
        })
        .and_then(|e| resolver.resolve(e).ok());
    configured
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn counts_only_lines_inside_an_invocation_at_the_level() {
        reset();
        let subscriber = tracing_subscriber::registry().with(layer(LevelFilter::INFO));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any invocation");
            rt.block_on(invoke("publisher", async {
                tracing::info!(job_id = "job_1", "inside");
                tracing::debug!("below the level");
                metric_sink(
                    &reelay_aws::metrics::metric_line("prod", "publisher", "PublishAccepted", 1, 0)
                        .to_string(),
                );
            }));
        });
        let t = snapshot();
        let p = t.by_function.get("publisher").copied().unwrap_or_default();
        assert_eq!(p.lines, 1, "{t:?}");
        assert_eq!(p.metric_lines, 1);
        // The line carries the runtime's span, as on Lambda.
        assert!(p.bytes > "inside".len() as u64 + INVOKE_SPAN.len() as u64 * 2);
        assert!(!t.by_function.contains_key(UNATTRIBUTED));
        assert!(
            t.metric_series
                .contains(&("PublishAccepted".to_owned(), "publisher".to_owned()))
        );
        let before = p;
        reassign_since("publisher", &LogCount::default(), "elsewhere");
        assert_eq!(count_of("publisher"), LogCount::default());
        assert_eq!(count_of("elsewhere"), before);
    }

    #[test]
    fn the_templates_level_is_info() {
        let t = Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .unwrap();
        assert_eq!(app_log_level(&t), LevelFilter::INFO);
    }
}
