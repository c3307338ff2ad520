use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

/// Simulated time: `start + real_elapsed * scale + manual advances`. Every window, lifetime and delay
/// in the simulator reads this clock.
#[derive(Debug)]
pub struct SimClock {
    start_ms: i64,
    started: Instant,
    scale: f64,
    offset_ms: AtomicI64,
}

impl SimClock {
    pub fn new(start_unix: Option<i64>, scale: f64) -> Self {
        let start_ms = match start_unix {
            Some(s) => s * 1000,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        };
        Self {
            start_ms,
            started: Instant::now(),
            scale: if scale > 0.0 { scale } else { 1.0 },
            offset_ms: AtomicI64::new(0),
        }
    }

    pub fn now_ms(&self) -> i64 {
        let real = self.started.elapsed().as_secs_f64() * 1000.0;
        self.start_ms + (real * self.scale) as i64 + self.offset_ms.load(Ordering::SeqCst)
    }

    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Jumps simulated time forward.
    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    /// Real duration for a simulated one.
    pub fn real_ms(&self, sim_ms: u64) -> u64 {
        (sim_ms as f64 / self.scale) as u64
    }
}
