//! The deployment's clock and randomness: wall-clock time, tokio's timer, the OS-seeded RNG.

use std::time::Duration;

use reelay_domain::UtcTime;
use reelay_domain::ports::{Clock, Entropy};

/// Wall-clock time and real randomness: what every function wires as its `Clock + Entropy`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UtcTime {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        UtcTime::from_millis(ms)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

impl Entropy for SystemClock {
    fn random_u128(&self) -> u128 {
        rand::random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_the_wall_clock_to_the_millisecond() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let now = SystemClock.now().as_millis();
        assert!(now >= before && now - before < 5_000, "{now} vs {before}");
    }

    #[test]
    fn randomness_differs_between_draws() {
        assert_ne!(SystemClock.random_u128(), SystemClock.random_u128());
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_is_tokios_timer() {
        let start = tokio::time::Instant::now();
        SystemClock.sleep(Duration::from_secs(30)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}
