//! Streams a synthetic clip from a local HTTP origin through the client into an in-process simulator and
//! prints peak RSS (VmHWM) and throughput. The whole pipeline (origin, client, simulator) shares this
//! process, so the figure bounds all three.
//!
//! `cargo run --release -p reelay-tiktok --example upload_memory -- --size-mb 500`

use std::{error::Error, time::Instant};

use axum::{
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use clap::Parser;
use reelay_tiktok::{
    ChunkPlan, Deadline, PostInfo, PrivacyLevel, SourceInfo, TikTokClient, TikTokConfig,
};
use secrecy::SecretString;
use sha2::Digest;
use tiktok_sim::{SimConfig, TikTokSim};

#[derive(Debug, Parser)]
struct Args {
    /// Clip size in MiB.
    #[arg(long, default_value_t = 500)]
    size_mb: u64,
}

const PIECE: u64 = 64 * 1024;

fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

fn piece(start: u64, end: u64) -> Bytes {
    (start..end).map(byte_at).collect::<Vec<u8>>().into()
}

/// Generated on the fly; honours `Range: bytes=a-`.
async fn clip(size: u64, headers: HeaderMap) -> Response {
    let start = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.trim_end_matches('-').parse::<u64>().ok())
        .unwrap_or(0);
    let stream = futures::stream::unfold(start, move |pos| async move {
        (pos < size).then(|| {
            let end = (pos + PIECE).min(size);
            (Ok::<_, std::io::Error>(piece(pos, end)), end)
        })
    });
    let mut resp = axum::body::Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, (size - start).into());
    if start > 0 {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = format!("bytes {start}-{}/{size}", size - 1).parse() {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

fn vm_hwm_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let size = args.size_mb * 1024 * 1024;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}/clip.mp4", listener.local_addr()?);
    let app = axum::Router::new().route("/clip.mp4", get(move |h: HeaderMap| clip(size, h)));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sim = TikTokSim::start(SimConfig::default()).await?;
    let cfg = sim.config();
    let client = TikTokClient::new(
        TikTokConfig::new(cfg.client_key, SecretString::from(cfg.client_secret))
            .with_base_url(&sim.base_url),
    )?;
    let tokens = sim.mint_tokens("bench", &["video.publish"]);
    let token = SecretString::from(
        tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );

    let source = client.open_clip(&origin, Deadline::NONE).await?;
    let plan = ChunkPlan::new(
        reelay_tiktok::UploadSource::len(&source),
        &client.config().chunk_policy,
    )?;
    let post = PostInfo::new(PrivacyLevel::SelfOnly, Some("benchmark".into()));
    let init = client
        .init_direct_post(&token, &post, &SourceInfo::from(&plan))
        .await?;
    let url = init.upload_url.ok_or("no upload_url")?;
    let rss_before = vm_hwm_kb().unwrap_or(0);

    let started = Instant::now();
    let report = client.upload(&url, &plan, &source, "video/mp4").await?;
    let secs = started.elapsed().as_secs_f64();
    let peak_kb = vm_hwm_kb().unwrap_or(0);

    let mut expected = sha2::Sha256::new();
    let mut pos = 0;
    while pos < size {
        let end = (pos + PIECE).min(size);
        expected.update(piece(pos, end));
        pos = end;
    }
    let record = &sim.inspect()["uploads"][&init.publish_id];
    let verified = record["sha256"].as_str() == Some(hex::encode(expected.finalize()).as_str());

    println!(
        "size_bytes={size} chunks={} chunk_size={} requests={}",
        plan.total_chunk_count, plan.chunk_size, report.requests
    );
    println!(
        "seconds={secs:.2} throughput_mib_s={:.1}",
        size as f64 / 1_048_576.0 / secs
    );
    println!(
        "vm_hwm_before_upload_mib={:.1} peak_rss_vm_hwm_mib={:.1}",
        rss_before as f64 / 1024.0,
        peak_kb as f64 / 1024.0
    );
    println!(
        "simulator_received={} sha256_match={verified}",
        record["received"]
    );
    if !verified {
        return Err("simulator hash differs from the source".into());
    }
    Ok(())
}
