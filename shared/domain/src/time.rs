//! Instants in UTC. Schedules are stored as instants, never as wall-clock strings
//! (peers shifted every post by an hour when a naive timestamp met a missing zone database).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid time {input:?}: expected RFC 3339 with a zone offset, e.g. 2026-03-10T18:00:00Z")]
pub struct TimeError {
    pub input: String,
}

/// A UTC instant with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UtcTime(DateTime<Utc>);

impl UtcTime {
    /// Parses RFC 3339 and requires an explicit offset; the instant is kept in UTC.
    pub fn parse(raw: &str) -> Result<Self, TimeError> {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| Self::from_millis(t.with_timezone(&Utc).timestamp_millis()))
            .map_err(|_| TimeError {
                input: raw.chars().take(64).collect(),
            })
    }

    pub fn from_millis(ms: i64) -> Self {
        Self(Utc.timestamp_millis_opt(ms).single().unwrap_or_default())
    }

    pub fn from_secs(secs: i64) -> Self {
        Self::from_millis(secs.saturating_mul(1000))
    }

    pub fn as_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    pub fn as_secs(&self) -> i64 {
        self.0.timestamp()
    }

    pub fn plus(&self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self::from_millis(self.as_millis().saturating_add(ms))
    }

    pub fn minus(&self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self::from_millis(self.as_millis().saturating_sub(ms))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(&self, earlier: UtcTime) -> Duration {
        let ms = self.as_millis().saturating_sub(earlier.as_millis());
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl TryFrom<String> for UtcTime {
    type Error = TimeError;
    fn try_from(raw: String) -> Result<Self, TimeError> {
        Self::parse(&raw)
    }
}

impl From<UtcTime> for String {
    fn from(t: UtcTime) -> String {
        t.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_normalised_to_utc() {
        let a = UtcTime::parse("2026-03-10T18:00:00Z").unwrap();
        let b = UtcTime::parse("2026-03-11T03:00:00+09:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_rfc3339(), "2026-03-10T18:00:00Z");
    }

    #[test]
    fn naive_or_garbage_times_are_refused() {
        assert!(UtcTime::parse("2026-03-10T18:00:00").is_err());
        assert!(UtcTime::parse("2026-03-10").is_err());
        assert!(UtcTime::parse("tomorrow").is_err());
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = UtcTime::from_secs(10);
        assert_eq!(t.plus(Duration::from_secs(5)).as_secs(), 15);
        assert_eq!(t.since(t.plus(Duration::from_secs(5))), Duration::ZERO);
    }
}
