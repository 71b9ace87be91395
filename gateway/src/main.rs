//! The `sluice` command: serve the gateway, or check a config.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_gateway::config::Config;
use sluice_gateway::server::Gateway;
use tracing::info;

#[derive(Parser)]
#[command(name = "sluice", version, about = "A multi-tenant Kafka gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway in front of the pool named in the config.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Parse and validate a config file, then exit.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::CheckConfig { config } => {
            Config::load(&config)?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            let gateway = Gateway::start(config).await.context("starting the gateway")?;
            shutdown_signal().await;
            info!("shutting down");
            gateway.shutdown(Duration::from_secs(10)).await;
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
