//! `reelay-admin`: parses the command line, builds the store once, runs the command.

use std::process::ExitCode;

use clap::Parser;
use reelay_admin::{Admin, Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let table = match cli.target.table() {
        Ok(table) => table,
        Err(e) => {
            eprintln!("reelay-admin: {e}");
            return ExitCode::from(2);
        }
    };
    let sdk = reelay_aws::load_sdk_config().await;
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
