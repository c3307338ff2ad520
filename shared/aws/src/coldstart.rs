//! The phases of a cold start, timed and logged once per container just before the first poll
//! of the Runtime API, so the init Lambda bills can be split between tracing, configuration, the
//! SDK's set-up, TLS roots, secret fetches and client building from the function's own log
//! (benchmark 4 reads this line).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Marks the end of each init phase; [`InitPhases::finish`] logs them as one event.
#[derive(Debug)]
pub struct InitPhases {
    started: Instant,
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl InitPhases {
    /// Starts the clock; call first thing in `main`.
    pub fn start() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last: now,
            phases: Vec::new(),
        }
    }

    /// Ends the phase running since the previous mark (or the start).
    pub fn mark(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.phases.push((phase, now.duration_since(self.last)));
        self.last = now;
    }

    /// `name=ms` pairs in order, e.g. `tracing=0.041 config=0.012 sdk=0.230 wiring=3.104`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (name, d) in &self.phases {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{name}={:.3}", d.as_secs_f64() * 1e3);
        }
        out
    }

    /// Logs the phases and the total since [`InitPhases::start`] (`main`'s entry; the time
    /// before it, exec and the runtime's start, is only visible from outside).
    pub fn finish(self) {
        let total_ms = self.started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(
            init.phases_ms = %self.summary(),
            init.total_ms = total_ms,
            "cold start: ready for the first event"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_listed_in_order_with_their_names() {
        let mut p = InitPhases::start();
        p.mark("config");
        p.mark("sdk");
        let s = p.summary();
        let names: Vec<&str> = s
            .split(' ')
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
            .collect();
        assert_eq!(names, ["config", "sdk"]);
        assert!(
            s.split(' ').all(|kv| kv
                .split_once('=')
                .is_some_and(|(_, v)| v.parse::<f64>().is_ok())),
            "{s}"
        );
    }
}
