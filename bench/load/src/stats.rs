//! Small statistics over measured samples, and the joins of simulator ground truth with the
//! recorded inits.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::proxy::InitRecord;

/// Nearest-rank percentile (`q` in 0..=100) of `xs`; `None` when empty.
pub fn percentile(xs: &[f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied()
}

/// `publish_id` → title, from the simulator's publishes.
pub fn titles_by_publish_id(inspect: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(accounts) = inspect.get("accounts").and_then(Value::as_object) else {
        return out;
    };
    for account in accounts.values() {
        for post in account
            .get("posts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(id), Some(title)) = (
                post.get("publish_id").and_then(Value::as_str),
                post.get("title").and_then(Value::as_str),
            ) {
                out.insert(id.to_owned(), title.to_owned());
            }
        }
    }
    out
}

/// Publishes the simulator holds for these accounts.
pub fn sim_publishes(inspect: &Value, open_ids: &HashSet<String>) -> u64 {
    open_ids
        .iter()
        .filter_map(|o| {
            inspect
                .pointer(&format!("/accounts/{o}/publishes"))
                .and_then(Value::as_u64)
        })
        .sum()
}

/// 429s the simulator answered to these accounts: (on inits, on any endpoint).
pub fn sim_429s(inspect: &Value, open_ids: &HashSet<String>) -> (u64, u64) {
    let mut init = 0;
    let mut all = 0;
    for v in inspect
        .get("limit_violations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mine = v
            .get("open_id")
            .and_then(Value::as_str)
            .is_some_and(|o| open_ids.contains(o));
        if !mine || v.get("kind").and_then(Value::as_str) != Some("rate_limit") {
            continue;
        }
        all += 1;
        if v.get("endpoint")
            .and_then(Value::as_str)
            .is_some_and(|e| e.contains("init"))
        {
            init += 1;
        }
    }
    (init, all)
}

/// Accepted inits (HTTP 200) per account, in arrival order (real unix ms).
pub fn accepted_by_account(
    inits: &[InitRecord],
    open_ids: &HashSet<String>,
) -> HashMap<String, Vec<i64>> {
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for r in inits {
        if r.status != 200 {
            continue;
        }
        if let Some(o) = r.open_id.as_ref().filter(|o| open_ids.contains(*o)) {
            out.entry(o.clone()).or_default().push(r.at_ms);
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), Some(50.0));
        assert_eq!(percentile(&xs, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
