//! A metering proxy in front of the local AWS endpoint.
//!
//! Every DynamoDB, SQS, Secrets Manager and KMS request of whatever runs behind it (the whole local
//! stack, a reconciler run) passes through here, so the counts are the SDK's real traffic, not
//! the subset one adapter happens to meter. DynamoDB requests get `ReturnConsumedCapacity=INDEXES`
//! added, and the endpoint's reported units (table and GSI shares) are summed per operation.
//! The endpoint does not verify SigV4, so the rewritten body is accepted; the SDK ignores the
//! extra `ConsumedCapacity` in the answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;
use tokio::task::JoinHandle;

/// DynamoDB operations that accept `ReturnConsumedCapacity`.
const CAPACITY_OPS: &[&str] = &[
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
];

/// DynamoDB operations billed as reads (RRU); the rest of [`CAPACITY_OPS`] are writes (WRU).
const READ_OPS: &[&str] = &[
    "GetItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "TransactGetItems",
];

/// Counters for one (service, operation).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpCount {
    pub requests: u64,
    /// Answers with a 4xx/5xx status (a failed conditional write still costs its write units).
    pub errors: u64,
    /// Capacity units the endpoint reported (DynamoDB only).
    pub capacity_units: f64,
    /// Of which the base table's share.
    pub table_units: f64,
    /// Of which the GSIs' share, per index.
    pub index_units: BTreeMap<String, f64>,
    /// Requests whose answer carried a capacity figure.
    pub reported: u64,
    /// Query/Scan only: read units DynamoDB's rule gives for the items returned
    /// (⌈Σ item size / 4 KB⌉, halved for eventually consistent reads, at least ½ per page),
    /// because the local endpoint reports a flat ½ per page whatever it returned.
    #[serde(default)]
    pub estimated_read_units: f64,
    /// Time spent waiting on the endpoint, summed (ms): where a run's wall time goes.
    #[serde(default)]
    pub latency_ms: f64,
    /// SQS ReceiveMessage only: answers with no message (idle polls).
    pub empty_receives: u64,
    /// SQS: messages carried (sent, received or deleted); a DynamoDB query on an index: items
    /// returned.
    pub messages: u64,
}

/// Everything seen, by `"<service>.<operation>"` (`dynamodb.Query`, `sqs.SendMessage`,
/// `secretsmanager.GetSecretValue`); DynamoDB queries on an index also count under
/// `dynamodb.Query@<index>`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Meter {
    pub ops: BTreeMap<String, OpCount>,
}

impl Meter {
    fn service_total(&self, service: &str, f: impl Fn(&str, &OpCount) -> f64) -> f64 {
        self.ops
            .iter()
            .filter(|(k, _)| k.starts_with(service) && !k.contains('@') && !k.contains(':'))
            .map(|(k, v)| f(k, v))
            .sum()
    }

    pub fn dynamo_requests(&self) -> u64 {
        self.service_total("dynamodb.", |_, v| v.requests as f64) as u64
    }

    /// Read request units (RRU): reported capacity of read operations.
    pub fn dynamo_read_units(&self) -> f64 {
        self.service_total(
            "dynamodb.",
            |k, v| {
                if is_read(k) { v.capacity_units } else { 0.0 }
            },
        )
    }

    /// Write request units (WRU): reported capacity of write operations (GSI writes included).
    pub fn dynamo_write_units(&self) -> f64 {
        self.service_total(
            "dynamodb.",
            |k, v| {
                if is_read(k) { 0.0 } else { v.capacity_units }
            },
        )
    }

    pub fn dynamo_read_requests(&self) -> u64 {
        self.service_total("dynamodb.", |k, v| {
            if is_read(k) { v.requests as f64 } else { 0.0 }
        }) as u64
    }

    /// Write requests the endpoint refused (conditional check failed or transaction cancelled).
    /// AWS charges each at least 1 WRU; the endpoint reports no figure for them.
    pub fn dynamo_failed_writes(&self) -> u64 {
        self.service_total(
            "dynamodb.",
            |k, v| {
                if is_read(k) { 0.0 } else { v.errors as f64 }
            },
        ) as u64
    }

    /// GSI share of the write units, summed over the indexes.
    pub fn dynamo_index_write_units(&self) -> f64 {
        self.service_total("dynamodb.", |k, v| {
            if is_read(k) {
                0.0
            } else {
                v.index_units.values().sum()
            }
        })
    }

    /// Requests that carried no capacity figure although the operation supports one.
    pub fn dynamo_unreported(&self) -> u64 {
        self.service_total("dynamodb.", |k, v| {
            let op = k.trim_start_matches("dynamodb.");
            if CAPACITY_OPS.contains(&op) {
                (v.requests - v.errors - v.reported.min(v.requests - v.errors)) as f64
            } else {
                0.0
            }
        }) as u64
    }

    pub fn sqs_requests(&self) -> u64 {
        self.service_total("sqs.", |_, v| v.requests as f64) as u64
    }

    pub fn sqs_empty_receives(&self) -> u64 {
        self.service_total("sqs.", |_, v| v.empty_receives as f64) as u64
    }

    pub fn secrets_requests(&self) -> u64 {
        self.service_total("secretsmanager.", |_, v| v.requests as f64) as u64
    }

    /// KMS requests (the token vault: `GenerateDataKey` per token write, `Decrypt` per read).
    pub fn kms_requests(&self) -> u64 {
        self.service_total("kms.", |_, v| v.requests as f64) as u64
    }

    pub fn get(&self, key: &str) -> OpCount {
        self.ops.get(key).cloned().unwrap_or_default()
    }

    /// `self - earlier`, per operation.
    pub fn since(&self, earlier: &Meter) -> Meter {
        let mut ops = BTreeMap::new();
        for (k, v) in &self.ops {
            let e = earlier.ops.get(k).cloned().unwrap_or_default();
            let mut index_units = v.index_units.clone();
            for (i, u) in &e.index_units {
                *index_units.entry(i.clone()).or_default() -= u;
            }
            let d = OpCount {
                requests: v.requests - e.requests,
                errors: v.errors - e.errors,
                capacity_units: v.capacity_units - e.capacity_units,
                table_units: v.table_units - e.table_units,
                index_units,
                reported: v.reported - e.reported,
                estimated_read_units: v.estimated_read_units - e.estimated_read_units,
                latency_ms: v.latency_ms - e.latency_ms,
                empty_receives: v.empty_receives - e.empty_receives,
                messages: v.messages - e.messages,
            };
            if d.requests > 0 {
                ops.insert(k.clone(), d);
            }
        }
        Meter { ops }
    }
}

fn is_read(key: &str) -> bool {
    let op = key.trim_start_matches("dynamodb.");
    let op = op.split(['@', ':']).next().unwrap_or(op);
    READ_OPS.contains(&op)
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    meter: Mutex<Meter>,
}

/// A running proxy; its URL goes where `AWS_ENDPOINT_URL` would.
#[derive(Debug)]
pub struct MeterProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl MeterProxy {
    /// Listens on a free localhost port and forwards to `upstream` (the real endpoint).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().build()?,
            meter: Mutex::new(Meter::default()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error.message = %e, "meter proxy stopped");
            }
        });
        Ok(Self { url, shared, task })
    }

    pub fn snapshot(&self) -> Meter {
        self.shared
            .meter
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

impl Drop for MeterProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn target_of(headers: &HeaderMap) -> Option<(String, String)> {
    let t = headers.get("x-amz-target")?.to_str().ok()?;
    let (prefix, op) = t.split_once('.')?;
    let service = if prefix.starts_with("DynamoDB") {
        "dynamodb"
    } else if prefix.starts_with("AmazonSQS") {
        "sqs"
    } else if prefix.eq_ignore_ascii_case("secretsmanager") {
        "secretsmanager"
    } else if prefix == "TrentService" {
        // KMS (the token vault's GenerateDataKey and Decrypt).
        "kms"
    } else {
        "other"
    };
    Some((service.to_owned(), op.to_owned()))
}

/// SQS's query protocol names the action in the form body.
fn query_action(body: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    s.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .map(str::to_owned)
}

/// Approximate stored size of an item in DynamoDB JSON: attribute names plus values.
fn item_bytes(item: &Value) -> usize {
    let Some(map) = item.as_object() else {
        return 0;
    };
    map.iter()
        .map(|(name, v)| {
            name.len()
                + match v.as_object().and_then(|o| o.iter().next()) {
                    Some((t, Value::String(s))) if t == "S" || t == "N" || t == "B" => s.len(),
                    Some((t, _)) if t == "BOOL" || t == "NULL" => 1,
                    Some((t, inner)) if t == "M" => item_bytes(inner) + 3,
                    Some((_, inner)) => inner.to_string().len(),
                    None => 0,
                }
        })
        .sum()
}

/// Read units of one Query/Scan page by DynamoDB's rule.
fn page_read_units(request: Option<&Value>, response: &Value) -> f64 {
    let bytes: usize = response["Items"]
        .as_array()
        .map_or(0, |items| items.iter().map(item_bytes).sum());
    let consistent = request.is_some_and(|r| r["ConsistentRead"].as_bool() == Some(true));
    let units = (bytes as f64 / 4096.0).ceil().max(1.0);
    if consistent { units } else { units / 2.0 }
}

/// The item type a single-item request addresses: the `pk` prefix before `#`.
fn item_kind(request: &Value) -> Option<String> {
    let pk = request["Key"]["pk"]["S"]
        .as_str()
        .or_else(|| request["Item"]["pk"]["S"].as_str())?;
    let kind = pk.split('#').next().unwrap_or(pk);
    // Budget logs: which budget (the sort key names it: tiktok_init, ssemble_create...).
    let sk = request["Key"]["sk"]["S"]
        .as_str()
        .or_else(|| request["Item"]["sk"]["S"].as_str());
    Some(match (kind, sk) {
        ("BUDGET", Some(sk)) => format!("BUDGET/{sk}"),
        _ => kind.to_owned(),
    })
}

fn add_capacity(count: &mut OpCount, cc: &Value) {
    let items: Vec<&Value> = match cc {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![cc],
        _ => return,
    };
    if items.is_empty() {
        return;
    }
    count.reported += 1;
    for c in items {
        count.capacity_units += c["CapacityUnits"].as_f64().unwrap_or(0.0);
        count.table_units += c["Table"]["CapacityUnits"].as_f64().unwrap_or(0.0);
        if let Some(gsis) = c["GlobalSecondaryIndexes"].as_object() {
            for (name, v) in gsis {
                *count.index_units.entry(name.clone()).or_default() +=
                    v["CapacityUnits"].as_f64().unwrap_or(0.0);
            }
        }
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match forward_inner(&shared, method, uri, headers, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error.message = %e, "meter proxy: upstream failed");
            let mut r = Response::new(Body::from(e.to_string()));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
    }
}

async fn forward_inner(
    shared: &Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> anyhow::Result<Response> {
    let (service, op) = match target_of(&headers) {
        Some(t) => t,
        None => match query_action(&body) {
            Some(a) => ("sqs".to_owned(), a),
            None => ("other".to_owned(), uri.path().to_owned()),
        },
    };
    let mut request_json: Option<Value> = None;
    let mut body = body;
    if service == "dynamodb" || service == "sqs" {
        request_json = serde_json::from_slice(&body).ok();
    }
    if service == "dynamodb"
        && CAPACITY_OPS.contains(&op.as_str())
        && let Some(Value::Object(map)) = request_json.as_mut()
    {
        map.insert("ReturnConsumedCapacity".into(), Value::from("INDEXES"));
        body = Bytes::from(serde_json::to_vec(&map)?);
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = shared
        .client
        .request(method, format!("{}{}", shared.upstream, path));
    for (k, v) in &headers {
        if k == "host" || k == "content-length" || k == "transfer-encoding" {
            continue;
        }
        req = req.header(k, v);
    }
    let sent = std::time::Instant::now();
    let resp = req.body(body).send().await?;
    let status = resp.status();
    let resp_headers = resp.headers().clone();
    let resp_body = resp.bytes().await?;
    let latency_ms = sent.elapsed().as_secs_f64() * 1e3;

    {
        let response_json: Option<Value> = if service == "other" {
            None
        } else {
            serde_json::from_slice(&resp_body).ok()
        };
        let mut meter = shared
            .meter
            .lock()
            .map_err(|_| anyhow::anyhow!("meter lock poisoned"))?;
        let key = format!("{service}.{op}");
        let count = meter.ops.entry(key).or_default();
        count.requests += 1;
        count.latency_ms += latency_ms;
        if !status.is_success() {
            count.errors += 1;
        }
        if let Some(resp) = &response_json {
            if let Some(cc) = resp.get("ConsumedCapacity") {
                add_capacity(count, cc);
            }
            if service == "dynamodb" && (op == "Query" || op == "Scan") && status.is_success() {
                count.estimated_read_units += page_read_units(request_json.as_ref(), resp);
            }
            if service == "sqs" {
                let n = match op.as_str() {
                    "ReceiveMessage" => resp["Messages"].as_array().map_or(0, |a| a.len() as u64),
                    "SendMessage" | "DeleteMessage" | "ChangeMessageVisibility" => 1,
                    _ => request_json
                        .as_ref()
                        .and_then(|r| r["Entries"].as_array())
                        .map_or(0, |a| a.len() as u64),
                };
                count.messages += n;
                if op == "ReceiveMessage" && n == 0 {
                    count.empty_receives += 1;
                }
            }
        }
        if service == "dynamodb" {
            // By item type (the key's prefix: JOB, IDEM, BUDGET, LOCK, ACCT...), to say where
            // units go; failed conditional writes included.
            if let Some(kind) = request_json.as_ref().and_then(item_kind) {
                let entry = meter
                    .ops
                    .entry(format!("dynamodb.{op}:{kind}"))
                    .or_default();
                entry.requests += 1;
                if !status.is_success() {
                    entry.errors += 1;
                }
                if let Some(cc) = response_json
                    .as_ref()
                    .and_then(|r| r.get("ConsumedCapacity"))
                {
                    add_capacity(entry, cc);
                }
            }
            let index = request_json
                .as_ref()
                .and_then(|r| r["IndexName"].as_str())
                .map(str::to_owned);
            if let Some(index) = index {
                let entry = meter
                    .ops
                    .entry(format!("dynamodb.{op}@{index}"))
                    .or_default();
                entry.requests += 1;
                if let Some(cc) = response_json
                    .as_ref()
                    .and_then(|r| r.get("ConsumedCapacity"))
                {
                    add_capacity(entry, cc);
                }
                if let Some(resp) = response_json.as_ref() {
                    entry.messages += resp["Count"].as_u64().unwrap_or(0);
                    if status.is_success() {
                        entry.estimated_read_units += page_read_units(request_json.as_ref(), resp);
                    }
                }
            }
        }
    }

    let mut out = Response::new(Body::from(resp_body));
    *out.status_mut() = status;
    for (k, v) in &resp_headers {
        if k == "content-length" || k == "transfer-encoding" || k == "connection" {
            continue;
        }
        out.headers_mut().append(k, v.clone());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(target: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-amz-target", target.parse().unwrap());
        h
    }

    #[test]
    fn each_service_is_told_apart_by_its_target() {
        for (target, service, op) in [
            ("DynamoDB_20120810.GetItem", "dynamodb", "GetItem"),
            ("AmazonSQS.SendMessage", "sqs", "SendMessage"),
            (
                "secretsmanager.GetSecretValue",
                "secretsmanager",
                "GetSecretValue",
            ),
            ("TrentService.GenerateDataKey", "kms", "GenerateDataKey"),
            ("TrentService.Decrypt", "kms", "Decrypt"),
        ] {
            assert_eq!(
                target_of(&headers(target)),
                Some((service.to_owned(), op.to_owned()))
            );
        }
        let mut m = Meter::default();
        m.ops.entry("kms.Decrypt".to_owned()).or_default().requests = 3;
        m.ops
            .entry("kms.GenerateDataKey".to_owned())
            .or_default()
            .requests = 1;
        m.ops
            .entry("secretsmanager.GetSecretValue".to_owned())
            .or_default()
            .requests = 2;
        assert_eq!((m.kms_requests(), m.secrets_requests()), (4, 2));
    }
}
