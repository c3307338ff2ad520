//! Rate-limit signals carried by every Ssemble response, success or failure.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

/// The account budget as the last response reported it.
///
/// Every field is optional: a proxy error or an older API version may omit any header, and a
/// missing number must read as "unknown", never as zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimitInfo {
    /// `X-RateLimit-Limit-Hour`.
    pub limit_hour: Option<u64>,
    /// `X-RateLimit-Remaining-Hour`.
    pub remaining_hour: Option<u64>,
    /// `X-RateLimit-Limit-Day`.
    pub limit_day: Option<u64>,
    /// `X-RateLimit-Remaining-Day`.
    pub remaining_day: Option<u64>,
    /// `X-RateLimit-Reset`, parsed as ISO 8601 (or Unix seconds, which some peers send).
    pub reset: Option<DateTime<Utc>>,
    /// `Retry-After`, as delta-seconds or an HTTP date resolved against the response time.
    pub retry_after: Option<Duration>,
}

impl RateLimitInfo {
    /// Parses the five documented `X-RateLimit-*` headers and `Retry-After`.
    pub fn from_headers(headers: &HeaderMap, received_at: DateTime<Utc>) -> Self {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| v as u64)
        };
        let reset = headers
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_instant);
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| parse_retry_after(s, received_at));
        Self {
            limit_hour: num("x-ratelimit-limit-hour"),
            remaining_hour: num("x-ratelimit-remaining-hour"),
            limit_day: num("x-ratelimit-limit-day"),
            remaining_day: num("x-ratelimit-remaining-day"),
            reset,
            retry_after,
        }
    }

    /// True when any documented header was present.
    pub fn is_known(&self) -> bool {
        self.limit_hour.is_some()
            || self.remaining_hour.is_some()
            || self.limit_day.is_some()
            || self.remaining_day.is_some()
            || self.reset.is_some()
    }
}

/// Parses an ISO 8601 timestamp, or Unix seconds.
pub(crate) fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    s.parse::<i64>()
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
}

fn parse_retry_after(s: &str, received_at: DateTime<Utc>) -> Option<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = DateTime::parse_from_rfc2822(s).ok()?.with_timezone(&Utc);
    Some((at - received_at).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn when_documented_headers_present_should_parse_all_five_and_retry_after() {
        let now = Utc::now();
        let info = RateLimitInfo::from_headers(
            &headers(&[
                ("Retry-After", "37"),
                ("X-RateLimit-Limit-Hour", "100"),
                ("X-RateLimit-Remaining-Hour", "0"),
                ("X-RateLimit-Limit-Day", "1000"),
                ("X-RateLimit-Remaining-Day", "812"),
                ("X-RateLimit-Reset", "2026-03-30T13:00:00.000Z"),
            ]),
            now,
        );
        assert_eq!(info.limit_hour, Some(100));
        assert_eq!(info.remaining_hour, Some(0));
        assert_eq!(info.limit_day, Some(1000));
        assert_eq!(info.remaining_day, Some(812));
        assert_eq!(
            info.reset.unwrap().to_rfc3339(),
            "2026-03-30T13:00:00+00:00"
        );
        assert_eq!(info.retry_after, Some(Duration::from_secs(37)));
        assert!(info.is_known());
    }

    #[test]
    fn when_headers_absent_or_garbage_should_be_unknown_not_zero() {
        let info = RateLimitInfo::from_headers(
            &headers(&[
                ("X-RateLimit-Remaining-Hour", "lots"),
                ("Retry-After", "-3"),
            ]),
            Utc::now(),
        );
        assert_eq!(info, RateLimitInfo::default());
        assert!(!info.is_known());
    }

    #[test]
    fn when_retry_after_is_http_date_should_resolve_against_receipt_time() {
        let now = DateTime::parse_from_rfc3339("2026-03-30T12:59:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let info = RateLimitInfo::from_headers(
            &headers(&[("Retry-After", "Mon, 30 Mar 2026 13:00:00 GMT")]),
            now,
        );
        assert_eq!(info.retry_after, Some(Duration::from_secs(30)));
    }
}
