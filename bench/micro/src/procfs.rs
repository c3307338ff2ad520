//! Peak resident memory from /proc (Linux), the figure Lambda's "Max Memory Used" tracks.

/// `VmHWM` (peak RSS) of `pid` in KiB; `None` if the process is gone or not Linux.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_field(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// `VmHWM` of this process in KiB.
pub fn own_vm_hwm_kib() -> Option<u64> {
    status_field("/proc/self/status", "VmHWM:")
}

fn status_field(path: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
