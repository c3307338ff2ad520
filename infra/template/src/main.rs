//! `reelay-template provision|check`: the local stack's resources and the template's rules, from
//! template.yaml alone.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reelay_template::{ProvisionOptions, Template, check, provision};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the template's table, queues and secrets at AWS_ENDPOINT_URL; print `export` lines.
    Provision {
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        #[arg(long, default_value = "local")]
        stage: String,
        /// Isolates a copy: appended to the stage in every name.
        #[arg(long)]
        suffix: Option<String>,
        /// JSON object of secret values by logical id.
        #[arg(long)]
        secrets_seed: Option<PathBuf>,
        /// Template parameter override, KEY=VALUE (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
    /// Check the template's rules; exits 1 on any violation.
    Check {
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
    },
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

/// Single-quotes a value for `eval` unless it is plainly safe.
fn shell_quote(v: &str) -> String {
    let safe = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if safe {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Provision {
            template,
            stage,
            suffix,
            secrets_seed,
            params,
        } => {
            let t = Template::from_path(&template)?;
            let mut options = ProvisionOptions::new(stage);
            options.suffix = suffix;
            options.parameters.extend(params);
            if let Some(seed) = secrets_seed {
                options = options.with_secrets_seed_file(seed)?;
            }
            let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let provisioned = provision(&sdk_config, &t, &options)
                .await
                .context("provisioning (is AWS_ENDPOINT_URL set to a running emulator?)")?;
            for (k, v) in provisioned.env_vars() {
                println!("export {k}={}", shell_quote(&v));
            }
            if !provisioned.unresolved_env.is_empty() {
                println!("# only on AWS: {}", provisioned.unresolved_env.join(" "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { template } => {
            let t = Template::from_path(&template)?;
            let violations = check(&t);
            for v in &violations {
                println!("{v}");
            }
            if violations.is_empty() {
                println!(
                    "ok: {} functions, {} queues, rules hold",
                    t.functions().len(),
                    t.queues().len()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
