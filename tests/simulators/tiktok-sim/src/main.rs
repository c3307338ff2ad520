use std::net::SocketAddr;

use clap::Parser;
use tiktok_sim::{SimConfig, TikTokSim};

/// Runs the TikTok simulator until interrupted; prints the listen URL on stdout when ready.
#[derive(Debug, Parser)]
#[command(name = "tiktok-sim")]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    #[arg(long)]
    webhook_url: Option<String>,
    #[arg(long, env = "TIKTOK_SIM_CLIENT_KEY", default_value = "sim_client_key")]
    client_key: String,
    #[arg(
        long,
        env = "TIKTOK_SIM_CLIENT_SECRET",
        default_value = "sim_client_secret"
    )]
    client_secret: String,
    /// A JSON file with a full or partial SimConfig, applied before the flags.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[arg(long)]
    unaudited: bool,
    /// Only chunk layouts valid under both readings of "MB" (5 MiB / 64,000,000 / 128,000,000).
    #[arg(long)]
    strict_chunks: bool,
    #[arg(long)]
    verified_prefix: Vec<String>,
    #[arg(long)]
    verified_domain: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut cfg: SimConfig = match &args.config {
        Some(p) => serde_json::from_slice(&std::fs::read(p)?)?,
        None => SimConfig::default(),
    };
    cfg.seed = args.seed;
    cfg.time_scale = args.time_scale;
    cfg.webhook_url = args.webhook_url.or(cfg.webhook_url);
    cfg.client_key = args.client_key;
    cfg.client_secret = args.client_secret;
    if args.unaudited {
        cfg.app.audited = false;
    }
    if args.strict_chunks {
        cfg.chunk_rules = tiktok_sim::ChunkRules::strict();
    }
    cfg.app.verified_prefixes.extend(args.verified_prefix);
    cfg.app.verified_domains.extend(args.verified_domain);
    let handle = TikTokSim::start_on(SocketAddr::new(args.host, args.port), cfg).await?;
    println!("{}", handle.base_url);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
