//! The `sluice` command: serve the gateway, check a config, and operator chores
//! (tokens; tenants and their OAuth clients in the tenant store).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_gateway::clients;
use sluice_gateway::config::Config;
use sluice_gateway::issuer::{now_and_expiry, Claims, SigningKey};
use sluice_gateway::config::StoreSettings;
use sluice_gateway::kclient::PoolAccess;
use sluice_gateway::server::Gateway;
use sluice_gateway::store::TenantStore;
use sluice_tenancy::store::{encode_value, TenantDoc};
use sluice_tenancy::TenantId;
use tokio_util::sync::CancellationToken;
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
    /// Tenants in the pool's tenant store (the `__sluice_tenants` topic).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Partition placement: imbalance, dry-run plan, apply, progress, cancel (SPEC 8).
    #[command(subcommand)]
    Placement(PlacementCommand),
}

/// Where the pool is and how to plan.
#[derive(clap::Args)]
struct PlacementArgs {
    /// The pool's brokers, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_delimiter = ',', required = true)]
    bootstrap: Vec<String>,
    /// A gateway config whose [placement] section gives the defaults below.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Brokers to drain (they receive nothing and are emptied).
    #[arg(long, value_delimiter = ',')]
    drain: Vec<i32>,
    /// Plan only these tenants' topics (default: every tenant topic).
    #[arg(long, value_delimiter = ',')]
    tenant: Vec<String>,
    #[arg(long)]
    imbalance_threshold: Option<f64>,
    #[arg(long)]
    max_moves: Option<usize>,
    #[arg(long)]
    max_concurrent_moves: Option<usize>,
    #[arg(long)]
    max_bytes_moved: Option<u64>,
    #[arg(long)]
    max_leader_changes: Option<usize>,
    /// Replication throttle in bytes/s per broker while moves run (0: none).
    #[arg(long)]
    throttle: Option<u64>,
    #[arg(long, default_value_t = 5000)]
    connect_timeout_ms: u64,
}

#[derive(Subcommand)]
enum PlacementCommand {
    /// Print the current imbalance and the plan that would run (nothing changes).
    Plan {
        #[command(flatten)]
        args: PlacementArgs,
    },
    /// Plan and execute now, printing progress as JSON lines; Ctrl-C cancels.
    Apply {
        #[command(flatten)]
        args: PlacementArgs,
    },
    /// Imbalance, the lease holder, the running plan and the reassignments in flight.
    Status {
        #[command(flatten)]
        args: PlacementArgs,
    },
    /// Cancel the running plan's reassignments and remove its throttles.
    Cancel {
        #[command(flatten)]
        args: PlacementArgs,
    },
}

/// Where the tenant store lives.
#[derive(clap::Args)]
struct StoreArgs {
    /// The pool's brokers, HOST:PORT[,HOST:PORT...] (default: the --config file's pool.bootstrap).
    #[arg(long, value_delimiter = ',', required_unless_present = "config")]
    bootstrap: Vec<String>,
    /// A gateway config (sluice.toml): its [pool] security (TLS, SASL) is used to reach
    /// the pool, and its pool.bootstrap when --bootstrap is not given.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "__sluice_tenants")]
    topic: String,
    #[arg(long, default_value_t = 5000)]
    connect_timeout_ms: u64,
}

impl StoreArgs {
    /// How the CLI reaches the pool: plaintext to --bootstrap, or as the --config file says.
    fn access(&self, call_timeout: Duration) -> anyhow::Result<PoolAccess> {
        let config = self.config.as_deref().map(Config::load).transpose()?;
        let bootstrap = match (&config, self.bootstrap.is_empty()) {
            (Some(c), true) => c.pool_bootstrap.clone(),
            _ => self.bootstrap.clone(),
        };
        Ok(PoolAccess {
            bootstrap,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms.max(100)),
            call_timeout,
            client_id: "sluice-cli",
            upstream: config.map(|c| c.pool_upstream).unwrap_or_default(),
        })
    }
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create or replace a tenant from a JSON document; prints {"id":...,"version":N}
    /// once the write has been read back from the store.
    Put {
        #[command(flatten)]
        store: StoreArgs,
        /// Write only if the stored version is N (0: only if the tenant does not exist).
        #[arg(long)]
        if_version: Option<u64>,
        /// The document; `-` reads standard input.
        #[arg(long, short)]
        file: Option<PathBuf>,
        /// `-`: read the document from standard input.
        #[arg(value_name = "-")]
        stdin: Option<String>,
    },
    /// Create a tenant without writing JSON: `sluice tenant create acme --limit
    /// max_partitions=100 --allow-all`; prints {"id":...,"version":1}. Fails if it exists.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
        /// A limit override, KEY=VALUE (the `limits` keys of docs/operations.md); repeatable.
        #[arg(long = "limit", value_name = "KEY=VALUE")]
        limits: Vec<String>,
        /// Give every principal of the tenant every action inside it (policy `all` on `*`).
        #[arg(long)]
        allow_all: bool,
    },
    /// Change limit overrides: KEY=VALUE sets one, KEY=default removes it (the gateway's
    /// default applies again). Other fields of the tenant are kept.
    SetLimits {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        limits: Vec<String>,
    },
    /// Print a tenant's usage in billing units (from the usage ledger in the pool), per
    /// hour or day: {"tenant","granularity","items":[...]}.
    Usage {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
        /// RFC 3339 start (default: 24 hours before --to).
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 end (default: now).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "hour", value_parser = ["hour", "day"])]
        granularity: String,
        #[arg(long, default_value = "__sluice_usage")]
        usage_topic: String,
    },
    /// Print a tenant as stored: {"version":N,"tenant":{...}}.
    Get {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
    /// Print every tenant, one JSON line each.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a tenant.
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
        /// Delete only if the stored version is N.
        #[arg(long)]
        if_version: Option<u64>,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Create client NAME of a tenant, stored (argon2-hashed) in the tenant's document;
    /// prints {"client_id":"<tenant>.<name>","client_secret":"..."} once the write has
    /// been read back. The secret is shown only now.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        tenant: String,
        /// The client's name within the tenant: [A-Za-z0-9._-], 1 to 64 characters.
        #[arg(long)]
        name: String,
        /// The principal (`sub`) its tokens carry (default: the client id).
        #[arg(long)]
        subject: Option<String>,
        /// Stored policies its tokens name in `sluice:policies` (default: none named, so
        /// the subject's attached policies apply).
        #[arg(long, value_delimiter = ',')]
        policies: Option<Vec<String>>,
        /// sluice scopes its tokens may ask for: `sluice:admin` makes it a tenant admin of
        /// the HTTP API.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// Print a tenant's clients (every tenant's without --tenant), one JSON line each,
    /// without secrets or hashes.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete a client by its id (<tenant>.<name>); it gets no more tokens.
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        client_id: String,
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
    /// Mint a JWT for a tenant principal, or (`--scope sluice:operator`, no `--tenant`) an
    /// operator token for the /v1 API; prints it. Whoever holds the key file can mint.
    Mint {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        issuer: String,
        #[arg(long, default_value = "sluice")]
        audience: String,
        #[arg(long)]
        tenant: Option<String>,
        /// OAuth scope(s), space-separated: `sluice:admin` (tenant admin of the /v1 API,
        /// with --tenant) or `sluice:operator`.
        #[arg(long)]
        scope: Option<String>,
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
    let cli = Cli::parse();
    let store_command = match cli.command {
        Command::Tenant(tenant) => Some(StoreCommand::Tenant(tenant)),
        Command::Client(client) => Some(StoreCommand::Client(client)),
        Command::Placement(placement) => Some(StoreCommand::Placement(placement)),
        other => {
            run(other).await?;
            None
        }
    };
    if let Some(command) = store_command {
        // Standard output carries the command's JSON; logs go to standard error, and
        // only warnings unless RUST_LOG says otherwise.
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .init();
        let result = match command {
            StoreCommand::Tenant(tenant) => tenant_command(tenant).await,
            StoreCommand::Client(client) => client_command(client).await,
            StoreCommand::Placement(placement) => sluice_gateway::placement::cli::run(placement_parts(placement)?).await,
        };
        // One line naming the cause, without a backtrace: these are operator errors.
        if let Err(e) = result {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
    Ok(())
}

/// The commands that work on the tenant store and print JSON.
enum StoreCommand {
    Tenant(TenantCommand),
    Client(ClientCommand),
    Placement(PlacementCommand),
}

/// The placement subcommand, its pool and its settings (config file, then flags).
fn placement_parts(command: PlacementCommand) -> anyhow::Result<sluice_gateway::placement::cli::Request> {
    use sluice_gateway::placement::cli::Action;
    let (action, a) = match command {
        PlacementCommand::Plan { args } => (Action::Plan, args),
        PlacementCommand::Apply { args } => (Action::Apply, args),
        PlacementCommand::Status { args } => (Action::Status, args),
        PlacementCommand::Cancel { args } => (Action::Cancel, args),
    };
    let config = a.config.as_deref().map(Config::load).transpose()?;
    let upstream = config.as_ref().map(|c| c.pool_upstream.clone()).unwrap_or_default();
    let mut settings = config.map(|c| c.placement).unwrap_or_default();
    if !a.drain.is_empty() {
        settings.drain = a.drain.clone();
    }
    if !a.tenant.is_empty() {
        settings.tenants = a.tenant.clone();
    }
    if let Some(v) = a.imbalance_threshold {
        settings.imbalance_threshold = v;
    }
    if let Some(v) = a.max_moves {
        settings.max_moves_per_plan = v;
    }
    if let Some(v) = a.max_concurrent_moves {
        settings.max_concurrent_moves = v.max(1);
    }
    if let Some(v) = a.max_bytes_moved {
        settings.max_bytes_moved = v;
    }
    if let Some(v) = a.max_leader_changes {
        settings.max_leader_changes = v;
    }
    if let Some(v) = a.throttle {
        settings.throttle_bytes_per_sec = v;
    }
    Ok(sluice_gateway::placement::cli::Request {
        action,
        bootstrap: a.bootstrap,
        connect_timeout: Duration::from_millis(a.connect_timeout_ms.max(100)),
        upstream,
        settings,
    })
}

/// Every client connection holds two descriptors (its own and its upstream), and many
/// environments start processes with a soft limit of 1024 under a far higher hard one:
/// the soft limit is raised to the hard one, as a server should (the hard limit is the
/// operator's, e.g. systemd's `LimitNOFILE`).
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(limit, connections = limit / 2, "open files limit (two per client connection)"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
}

/// Every command but the store's: logs at info on standard error.
async fn run(command: Command) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match command {
        Command::Tenant(_) | Command::Client(_) | Command::Placement(_) => Ok(()),
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
        Command::Token(TokenCommand::Mint { key, issuer, audience, tenant, scope, subject, ttl_secs, policies }) => {
            anyhow::ensure!(
                tenant.is_some() || scope.as_deref().is_some_and(|s| s.split_whitespace().any(|s| s == "sluice:operator")),
                "--tenant is required, except for operator tokens (--scope sluice:operator)"
            );
            let signing = SigningKey::load(&key)?;
            let (now, exp) = now_and_expiry(Duration::from_secs(ttl_secs));
            let token = signing.mint(&Claims {
                iss: &issuer,
                aud: &audience,
                sub: &subject,
                iat: now,
                nbf: now,
                exp,
                tenant: tenant.as_deref(),
                policies: policies.as_deref(),
                scope: scope.as_deref(),
            })?;
            println!("{token}");
            Ok(())
        }
        Command::Serve { config } => {
            let path = config;
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let config = Config::parse(&text, &path.display().to_string())?;
            // The file as applied, for comparing reloads against (it just parsed as a Config).
            let running: toml::Table = text.parse().with_context(|| format!("parsing {}", path.display()))?;
            raise_open_files_limit();
            let gateway = Gateway::start(config).await.context("starting the gateway")?;
            serve_until_stopped(&gateway, &path, running).await;
            info!("shutting down");
            let drain = gateway.shared.drain_timeout();
            gateway.drain_and_stop(drain, Duration::from_secs(10)).await;
            Ok(())
        }
    }
}

/// `limits` with KEY=VALUE (set) and KEY=default (unset) applied; unknown keys and
/// non-numbers are refused, naming them.
fn apply_limits(
    limits: &sluice_tenancy::store::TenantLimits,
    changes: &[String],
) -> anyhow::Result<sluice_tenancy::store::TenantLimits> {
    let mut map = match serde_json::to_value(limits)? {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    for change in changes {
        let (key, value) = change.split_once('=').ok_or_else(|| anyhow::anyhow!("{change:?}: expected KEY=VALUE"))?;
        if value == "default" {
            map.remove(key);
        } else {
            let n: u64 = value.parse().map_err(|_| anyhow::anyhow!("{key}={value}: the value must be a whole number or `default`"))?;
            map.insert(key.to_owned(), n.into());
        }
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| anyhow::anyhow!("limits: {e}"))
}

async fn open_store(args: &StoreArgs) -> anyhow::Result<TenantStore> {
    let access = args.access(Duration::from_secs(10))?;
    let via = access.bootstrap.join(",");
    let settings = StoreSettings { topic: args.topic.clone(), seed_file: None };
    TenantStore::start(access, &settings, CancellationToken::new())
        .await
        .with_context(|| format!("opening the tenant store {} via {via}", args.topic))
}

async fn tenant_command(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Put { store, if_version, file, stdin } => {
            let text = match (file.as_deref(), stdin.as_deref()) {
                (Some(path), None) if path.as_os_str() == "-" => read_stdin()?,
                (Some(path), None) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
                }
                (None, Some("-")) => read_stdin()?,
                _ => anyhow::bail!("give the document as --file PATH, or - for standard input"),
            };
            // Refused before anything is written, with the field named.
            let mut doc = TenantDoc::parse_checked(&text).map_err(|e| anyhow::anyhow!("invalid tenant document: {e}"))?;
            let id = doc.id.clone();
            let store = open_store(&store).await?;
            // OAuth clients are managed with `sluice client`, client quotas by the tenant's
            // admins (AlterClientQuotas); a document that leaves a field out keeps what is
            // stored instead of deleting it.
            let given = serde_json::from_str::<serde_json::Value>(&text).ok();
            let names = |field: &str| given.as_ref().is_some_and(|v| v.get(field).is_some());
            if !names("client_quotas") {
                if let Some(current) = store.get(&id) {
                    if !current.doc.client_quotas.is_empty() {
                        doc.client_quotas = current.doc.client_quotas.clone();
                        eprintln!("kept the tenant's {} client-quota entries", doc.client_quotas.len());
                    }
                }
            }
            if !names("clients") {
                if let Some(current) = store.get(&id) {
                    if !current.doc.clients.is_empty() {
                        doc.clients = current.doc.clients.clone();
                        doc.validate().map_err(|e| {
                            anyhow::anyhow!("invalid tenant document (with the tenant's stored OAuth clients): {e}")
                        })?;
                        eprintln!("kept the tenant's {} OAuth client(s)", doc.clients.len());
                    }
                }
            }
            let version = store.put(doc, if_version).await?;
            println!("{}", serde_json::json!({"id": id.as_str(), "version": version}));
            Ok(())
        }
        TenantCommand::Get { store, id } => {
            let id: TenantId = id.parse().context("tenant id")?;
            let store = open_store(&store).await?;
            match store.get(&id) {
                Some(t) => {
                    println!("{}", String::from_utf8_lossy(&encode_value(&t.doc, t.version)));
                    Ok(())
                }
                None => {
                    eprintln!("tenant {id} does not exist");
                    std::process::exit(1);
                }
            }
        }
        TenantCommand::Create { store, id, limits, allow_all } => {
            let id: TenantId = id.parse().context("tenant id")?;
            let mut doc = sluice_tenancy::store::TenantDoc::new(id.clone());
            doc.limits = apply_limits(&doc.limits, &limits)?;
            if allow_all {
                let all = sluice_tenancy::PolicyDocument::from_value(serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": ["kafka-cluster:*"], "Resource": ["*"]}]
                }))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                doc.policies.insert("all".into(), all);
                doc.principals.insert("*".into(), sluice_tenancy::store::PrincipalEntry { policies: vec!["all".into()] });
            }
            let store = open_store(&store).await?;
            if let Some(existing) = store.get(&id) {
                anyhow::bail!(
                    "tenant {id} already exists (version {}); change it with `sluice tenant set-limits` or `put`",
                    existing.version
                );
            }
            let version = store.put(doc, Some(0)).await?;
            println!("{}", serde_json::json!({"id": id.as_str(), "version": version}));
            Ok(())
        }
        TenantCommand::SetLimits { store, id, limits } => {
            let id: TenantId = id.parse().context("tenant id")?;
            let store = open_store(&store).await?;
            let current = store.get(&id).ok_or_else(|| anyhow::anyhow!("tenant {id} does not exist"))?;
            let mut doc = current.doc.clone();
            doc.limits = apply_limits(&doc.limits, &limits)?;
            let version = store.put(doc.clone(), Some(current.version)).await?;
            println!("{}", serde_json::json!({"id": id.as_str(), "version": version, "limits": doc.limits}));
            Ok(())
        }
        TenantCommand::Usage { store, id, from, to, granularity, usage_topic } => {
            let id: TenantId = id.parse().context("tenant id")?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
            let parse = |v: Option<String>, what: &str| -> anyhow::Result<Option<u64>> {
                v.map(|t| sluice_gateway::usage::parse_time(&t).map_err(|e| anyhow::anyhow!("--{what}: {e}"))).transpose()
            };
            let to = parse(to, "to")?.unwrap_or(now);
            let from = parse(from, "from")?.unwrap_or(to.saturating_sub(sluice_gateway::usage::DAY));
            anyhow::ensure!(from < to, "--from must be before --to");
            let bucket = if granularity == "day" { sluice_gateway::usage::DAY } else { sluice_gateway::usage::HOUR };
            let access = store.access(Duration::from_secs(20))?;
            let ledger = sluice_gateway::usage::read_all(access, &usage_topic).await?;
            println!("{}", sluice_gateway::usage::report_json(&ledger, id.as_str(), from, to, bucket));
            Ok(())
        }
        TenantCommand::List { store } => {
            let store = open_store(&store).await?;
            for (_, t) in store.snapshot().iter() {
                println!("{}", String::from_utf8_lossy(&encode_value(&t.doc, t.version)));
            }
            Ok(())
        }
        TenantCommand::Delete { store, id, if_version } => {
            let id: TenantId = id.parse().context("tenant id")?;
            let store = open_store(&store).await?;
            store.delete(&id, if_version).await?;
            println!("{}", serde_json::json!({"id": id.as_str(), "deleted": true}));
            Ok(())
        }
    }
}

async fn client_command(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create { store, tenant, name, subject, policies, scopes } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let store = open_store(&store).await?;
            let created = clients::create(&store, &tenant, &name, subject, policies, scopes).await?;
            println!("{}", serde_json::json!({"client_id": created.client_id, "client_secret": created.secret}));
            eprintln!("The secret is shown only now; sluice stores only its argon2 hash.");
            Ok(())
        }
        ClientCommand::List { store, tenant } => {
            let tenant: Option<TenantId> = tenant.map(|t| t.parse()).transpose().context("--tenant")?;
            let store = open_store(&store).await?;
            if let Some(t) = &tenant {
                anyhow::ensure!(store.get(t).is_some(), "tenant {t} does not exist");
            }
            for (id, c) in clients::list(&store.snapshot(), tenant.as_ref()) {
                let line = serde_json::json!({
                    "client_id": id,
                    "subject": c.subject,
                    "policies": c.policies,
                    "scopes": c.scopes,
                    "created_at": c.created_at,
                });
                println!("{line}");
            }
            Ok(())
        }
        ClientCommand::Delete { store, client_id } => {
            let store = open_store(&store).await?;
            clients::delete(&store, &client_id).await?;
            println!("{}", serde_json::json!({"client_id": client_id, "deleted": true}));
            Ok(())
        }
    }
}

fn read_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading standard input")?;
    Ok(text)
}

/// Serves until SIGTERM (or Ctrl-C), applying the config file again on every SIGHUP
/// (systemd's `ExecReload`; see `sluice_gateway::reload` for what changes live). A file
/// that cannot be read, parsed or validated is logged and changes nothing.
async fn serve_until_stopped(gateway: &Gateway, path: &std::path::Path, mut running: toml::Table) {
    let stop = shutdown_signal();
    tokio::pin!(stop);
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; config reload is off");
            None
        }
    };
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = &mut stop => return,
            _ = hangup => {}
        }
        let origin = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(config = %origin, error = %e, "SIGHUP: cannot read the config file; keeping the running config");
                continue;
            }
        };
        match gateway.reload(&mut running, &text, &origin).await {
            Ok(plan) if plan.is_empty() => tracing::info!(config = %origin, "SIGHUP: config unchanged"),
            Ok(plan) => {
                let restarted: Vec<&str> = plan.restart.iter().map(|c| c.section()).collect();
                tracing::info!(
                    config = %origin,
                    limits = plan.limits,
                    quotas = plan.quotas,
                    auth = plan.auth,
                    drain_timeout = plan.drain_timeout,
                    restarted = ?restarted,
                    "SIGHUP: config applied"
                );
                if !plan.needs_restart.is_empty() {
                    tracing::warn!(config = %origin, changed = ?plan.needs_restart, "SIGHUP: these settings change only with a restart; the running values are kept");
                }
            }
            Err(e) => tracing::error!(config = %origin, error = %e, "SIGHUP: keeping the running config"),
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
