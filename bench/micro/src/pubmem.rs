//! Publisher memory: the whole stack in a child process moving one job whose clip is 500 MiB,
//! next to the same run with a 2 MiB clip. The publisher streams the clip from the render's URL
//! (the Ssemble simulator generates it on the fly) to the TikTok simulator in chunks; the child's
//! peak RSS bounds the publisher together with both simulators and the other five functions.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::procfs::mib;
use crate::report::{Row, Verdict};
use crate::stackrun::RunResult;

/// Goal from the issue: ≤ 64 MB peak RSS streaming a 500 MB clip (taken as MiB, as VmHWM is).
const MAX_PEAK_MIB: f64 = 64.0;

/// Prefixes the child's answer on stdout, among the functions' own lines.
pub const RESULT_MARKER: &str = "REELAY_BENCH_RESULT";

/// Runs `reelay-bench-micro stack-run` as a child and reads its JSON answer.
pub async fn child_run(
    template: &Path,
    jobs: usize,
    accounts: usize,
    clip_bytes: u64,
    deadline: Duration,
) -> anyhow::Result<RunResult> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let out = tokio::process::Command::new(exe)
        .arg("--template")
        .arg(template)
        .args([
            "stack-run",
            "--jobs",
            &jobs.to_string(),
            "--accounts",
            &accounts.to_string(),
            "--clip-bytes",
            &clip_bytes.to_string(),
            "--deadline-s",
            &deadline.as_secs().to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("running the stack child")?;
    anyhow::ensure!(
        out.status.success(),
        "stack child failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(RESULT_MARKER))
        .context("the stack child printed no result")?;
    serde_json::from_str(line.trim()).context("reading the stack child's answer")
}

pub async fn run(template: &Path, clip_mib: u64, deadline: Duration) -> anyhow::Result<Vec<Row>> {
    let small = child_run(template, 1, 1, 2 * 1024 * 1024, deadline).await?;
    let large = child_run(template, 1, 1, clip_mib * 1024 * 1024, deadline).await?;
    let published = |r: &RunResult| r.states.get("publicly_available").copied().unwrap_or(0);
    let describe = |r: &RunResult| {
        let p = r.functions.get("publisher");
        format!(
            "peak RSS {:.1} MiB; published {}/{}; publisher {} invocations, {:.1} s",
            mib(r.vm_hwm_kib),
            published(r),
            r.jobs,
            p.map_or(0, |p| p.invocations()),
            p.map_or(0.0, |p| p.total_ms() / 1e3)
        )
    };
    let peak = mib(large.vm_hwm_kib);
    let ok = peak <= MAX_PEAK_MIB && published(&large) == large.jobs;
    Ok(vec![
        Row::info(
            "6 publisher memory: 2 MiB clip",
            describe(&small),
            "baseline: same child, one job, 2 MiB clip".to_owned(),
        ),
        Row::new(
            format!("6 publisher memory: {clip_mib} MiB clip"),
            format!(
                "{} (+{:.1} MiB over the 2 MiB run)",
                describe(&large),
                peak - mib(small.vm_hwm_kib)
            ),
            "≤ 64 MB peak RSS",
            Verdict::of(ok),
            "real publisher handler in a child running the whole local stack (simulators, six handlers, meter proxy): the figure bounds the publisher; VmHWM of the child".to_owned(),
        ),
    ])
}
