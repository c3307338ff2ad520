//! `ssemble-sim`: runs the simulator until interrupted; prints its base URL when ready.

use clap::Parser;
use ssemble_sim::{SimConfig, SsembleSim, Tier};

#[derive(Debug, Parser)]
#[command(about = "Ssemble AI Clipping API simulator")]
struct Args {
    /// Port (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on; clip file URLs name it too (a container reaches the simulator on
    /// a bridge address, not on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Seed for ids, clip counts and scores.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Virtual seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Accept only these keys (repeatable); default: any well-formed key.
    #[arg(long = "api-key")]
    api_keys: Vec<String>,
    /// Virtual seconds from create to completed.
    #[arg(long, default_value_t = 60.0)]
    timeline_secs: f64,
    /// Account tier: `standard` (100/h, 1000/day) or `higher` (2000/h, 20000/day).
    #[arg(long, default_value = "standard")]
    tier: String,
    /// Bytes per synthetic clip.
    #[arg(long, default_value_t = 6 * 1024 * 1024)]
    clip_bytes: u64,
    /// Sign webhooks with this secret (simulator extension; off by default).
    #[arg(long, env = "SSEMBLE_SIM_WEBHOOK_SECRET")]
    webhook_secret: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = SimConfig {
        seed: args.seed,
        time_scale: args.time_scale,
        api_keys: (!args.api_keys.is_empty()).then_some(args.api_keys),
        timeline_secs: args.timeline_secs,
        tier: if args.tier == "higher" {
            Tier::HIGHER
        } else {
            Tier::STANDARD
        },
        clip_bytes: args.clip_bytes,
        webhook_secret: args.webhook_secret,
        ..SimConfig::default()
    };
    let handle = SsembleSim::start_on(cfg, std::net::SocketAddr::new(args.host, args.port)).await?;
    println!("{}", handle.base_url);
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
