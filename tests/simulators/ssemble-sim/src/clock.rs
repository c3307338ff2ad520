//! The scalable simulator clock that drives every window and timeline.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Virtual time = start + real elapsed × scale + manual advances.
#[derive(Debug)]
pub struct SimClock {
    origin_real: Instant,
    origin_virtual: DateTime<Utc>,
    scale: f64,
    advanced_ms: AtomicI64,
}

impl SimClock {
    pub fn new(origin_virtual: DateTime<Utc>, scale: f64) -> Self {
        Self {
            origin_real: Instant::now(),
            origin_virtual,
            scale: if scale.is_finite() && scale > 0.0 {
                scale
            } else {
                1.0
            },
            advanced_ms: AtomicI64::new(0),
        }
    }

    /// Current virtual time.
    pub fn now(&self) -> DateTime<Utc> {
        let real = self.origin_real.elapsed().as_secs_f64() * self.scale;
        let ms = (real * 1000.0) as i64 + self.advanced_ms.load(Ordering::SeqCst);
        self.origin_virtual + chrono::Duration::milliseconds(ms)
    }

    /// Jumps virtual time forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.advanced_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Real duration that spans `virtual_secs` of simulator time.
    pub fn real(&self, virtual_secs: f64) -> Duration {
        Duration::from_secs_f64((virtual_secs / self.scale).max(0.0))
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }
}
