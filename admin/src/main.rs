//! `reelay-admin`: parses the command line, builds the store once, runs the command.

use std::process::ExitCode;

use clap::Parser;
use reelay_admin::{Admin, Cli, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    // The use cases' own warnings (e.g. a job `reconcile now` failed to move, and why) on
    // stderr; RUST_LOG widens them.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let table = match cli.target.table() {
        Ok(table) => table,
        Err(e) => {
            eprintln!("reelay-admin: {e}");
            return ExitCode::from(2);
        }
    };
    let sdk = match reelay_aws::load_sdk_config().await {
        Ok(sdk) => sdk,
        Err(e) => {
            eprintln!("reelay-admin: {e}");
            return ExitCode::from(2);
        }
    };
    let admin = match Admin::new(&sdk, &table) {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("reelay-admin: {e}");
            return ExitCode::from(2);
        }
    };
    let result = run(
        &cli,
        &admin,
        &mut std::io::stdin().lock(),
        &mut std::io::stderr().lock(),
        &mut std::io::stdout().lock(),
    )
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reelay-admin: {e}");
            ExitCode::FAILURE
        }
    }
}
