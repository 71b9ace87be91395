//! The `sluice` command: serve the gateway, or check a config.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_gateway::clients::ClientStore;
use sluice_gateway::config::Config;
use sluice_gateway::issuer::{now_and_expiry, Claims, SigningKey};
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
    /// sluice's own signing key and tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// OAuth clients (client-credentials grant) of sluice's own issuer.
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Create a client for a tenant; prints its id and secret (the secret only now).
    Create {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        tenant: String,
        /// The principal its tokens carry (default: the client id).
        #[arg(long)]
        subject: Option<String>,
        #[arg(long, value_delimiter = ',')]
        policies: Option<Vec<String>>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an Ed25519 signing key (kept if it exists) and write its JWKS.
    Keygen {
        /// PKCS#8 PEM file for the private key (created with mode 0600).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the public JWKS that issuers' `jwks_file` points at.
        #[arg(long)]
        jwks: PathBuf,
    },
    /// Mint a JWT for a tenant principal, for operators and tests; prints it.
    Mint {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        issuer: String,
        #[arg(long, default_value = "sluice")]
        audience: String,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        subject: String,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        /// Names of the tenant's stored policies to carry in `sluice:policies`.
        #[arg(long, value_delimiter = ',')]
        policies: Option<Vec<String>>,
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
        Command::Token(TokenCommand::Keygen { key, jwks }) => {
            let signing = SigningKey::load_or_generate(&key)?;
            std::fs::write(&jwks, serde_json::to_vec_pretty(&signing.jwks())?)
                .with_context(|| format!("writing {}", jwks.display()))?;
            println!("kid {} key {} jwks {}", signing.kid(), key.display(), jwks.display());
            Ok(())
        }
        Command::Token(TokenCommand::Mint { key, issuer, audience, tenant, subject, ttl_secs, policies }) => {
            let signing = SigningKey::load(&key)?;
            let (now, exp) = now_and_expiry(Duration::from_secs(ttl_secs));
            let token = signing.mint(&Claims {
                iss: &issuer,
                aud: &audience,
                sub: &subject,
                iat: now,
                nbf: now,
                exp,
                tenant: &tenant,
                policies: policies.as_deref(),
                scope: None,
            })?;
            println!("{token}");
            Ok(())
        }
        Command::Client(ClientCommand::Create { config, tenant, subject, policies }) => {
            let config = Config::load(&config)?;
            let issuer = config.issuer.context("the config has no [issuer] section")?;
            let tenant = tenant.parse().context("--tenant")?;
            let created = ClientStore::new(issuer.clients_file).create(tenant, subject, policies)?;
            println!("client_id={}", created.client_id);
            println!("client_secret={}", created.secret);
            println!("token_endpoint={}/oauth2/token", issuer.url);
            eprintln!("The secret is shown only now; sluice stores only its argon2 hash.");
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
