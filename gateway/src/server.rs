//! The gateway process: shared state, the bootstrap listener, one listener per pool
//! broker (opened when the broker appears, closed when it departs), and shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{AuthMode, Config};
use crate::reload::{Component, Plan};
use crate::connection::{self, Target};
use crate::pool::Pool;
use crate::rewrite::{Addressing, Advertised};
use crate::issuer::SigningKey;
use crate::sasl::{JwtVerifier, SaslSettings};
use crate::kclient::PoolAccess;
use crate::store::TenantStore;

/// State every connection reads.
pub struct Shared {
    pub config: Config,
    pub pool: Arc<Pool>,
    /// How clients of the plain listeners address brokers.
    pub advertised: Arc<Advertised>,
    /// Counts failed authentications per source and principal.
    pub guard: Arc<crate::guard::AuthGuard>,
    /// Set when clients must authenticate with SASL; swapped whole when `[auth]` is
    /// reloaded (new authentications use the new issuers, sessions keep theirs).
    pub sasl: Option<Arc<ArcSwap<SaslSettings<JwtVerifier>>>>,
    /// The settings a reload may change while connections stay open.
    live: ArcSwap<LiveSettings>,
    /// Tenants, their limits and policies (the `__sluice_tenants` topic).
    pub tenants: TenantStore,
    /// Byte-rate limiters of every tenant and its partitions.
    pub quotas: Arc<sluice_quota::Quotas>,
    /// Open connections per tenant.
    pub connections: Arc<crate::tenant::ConnectionCounts>,
    /// Open and new connections per source IP, for every listener.
    pub sources: Arc<crate::source_limits::SourceLimits>,
    /// Cancelled on SIGTERM: listeners stop accepting, connections stop reading new
    /// requests and close once their in-flight ones are answered.
    pub draining: CancellationToken,
    /// Client connections open now (all listeners), for the drain.
    pub open_connections: std::sync::atomic::AtomicUsize,
    /// The audit log (`__sluice_audit`).
    pub audit: Arc<crate::audit::Audit>,
    /// One token per open broker listener; cancelling it closes the listener and every
    /// client connection bound to that broker.
    broker_tokens: Mutex<HashMap<i32, CancellationToken>>,
}

/// Settings read afresh where they apply, so a config reload reaches them.
#[derive(Debug, Clone, Copy)]
pub struct LiveSettings {
    /// Read by each new connection.
    pub limits: crate::config::Limits,
    /// Read when SIGTERM arrives.
    pub drain_timeout: Duration,
}

impl Shared {
    /// The connection limits new connections get.
    pub fn limits(&self) -> crate::config::Limits {
        self.live.load().limits
    }

    /// How long SIGTERM lets connections finish.
    pub fn drain_timeout(&self) -> Duration {
        self.live.load().drain_timeout
    }

    /// The SASL settings new authentications use.
    pub fn sasl_now(&self) -> Option<Arc<SaslSettings<JwtVerifier>>> {
        self.sasl.as_ref().map(|s| s.load_full())
    }

    pub fn broker_token(&self, node_id: i32) -> Option<CancellationToken> {
        self.broker_tokens.lock().ok()?.get(&node_id).cloned()
    }
}

/// A running gateway: its bound addresses and the handle that stops it.
pub struct Gateway {
    pub bootstrap_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// The background tasks a reload may restart, each with its own stop token.
    components: Mutex<HashMap<Component, CancellationToken>>,
}

impl Gateway {
    /// Binds the bootstrap listener, starts pool discovery and the broker listeners.
    pub async fn start(config: Config) -> anyhow::Result<Gateway> {
        let pool = Pool::new(config.pool_bootstrap.clone(), config.connect_timeout, config.pool_upstream.clone());
        let cancel = CancellationToken::new();
        // A start that fails half-way stops what it started (the store's tail) on return.
        let started = cancel.clone().drop_guard();
        // Tenants are loaded before any listener opens: a token is never checked against a
        // half-read store.
        let tenants = TenantStore::start(
            PoolAccess {
                bootstrap: config.pool_bootstrap.clone(),
                connect_timeout: config.connect_timeout,
                call_timeout: Duration::from_secs(10),
                client_id: "sluice-store",
                upstream: config.pool_upstream.clone(),
            },
            &config.store,
            cancel.child_token(),
        )
        .await
        .context("starting the tenant store")?;
        let metrics = crate::telemetry::prometheus();
        let guard_settings = config.sasl.as_ref().map(|a| a.guard).unwrap_or_default();
        let guard = Arc::new(crate::guard::AuthGuard::new(guard_settings));
        let own_issuer = match &config.issuer {
            None => None,
            Some(settings) => Some(Arc::new(start_issuer(settings, guard.clone(), tenants.clone())?)),
        };
        let sasl = match &config.sasl {
            None => None,
            Some(auth) => Some(Arc::new(ArcSwap::from_pointee(sasl_settings(auth, &config, &tenants).await?))),
        };
        let quotas = Arc::new(sluice_quota::Quotas::new(config.quotas).context("configuring quotas")?);
        let shared = Arc::new(Shared {
            guard: guard.clone(),
            audit: crate::audit::Audit::new(&config.audit),
            sasl,
            live: ArcSwap::from_pointee(LiveSettings { limits: config.limits, drain_timeout: config.drain_timeout }),
            tenants,
            quotas: quotas.clone(),
            connections: Default::default(),
            draining: CancellationToken::new(),
            open_connections: std::sync::atomic::AtomicUsize::new(0),
            sources: Arc::new(crate::source_limits::SourceLimits::new(
                config.limits.max_connections_per_ip,
                config.limits.connection_rate_per_ip,
            )),
            advertised: Arc::new(Advertised {
                addressing: Addressing::PortPerBroker {
                    host: StrBytes::from_string(config.advertised_host.clone()),
                    base: config.broker_port_base,
                },
                cluster_admin: config.auth == AuthMode::None,
            }),
            config,
            pool: pool.clone(),
            broker_tokens: Mutex::new(HashMap::new()),
        });
        if shared.config.auth == AuthMode::None {
            warn!("listener.auth = \"none\": this is an OPEN development listener without authentication");
        }
        let tasks = TaskTracker::new();
        let audit_access = |client_id| PoolAccess {
            bootstrap: shared.config.pool_bootstrap.clone(),
            connect_timeout: shared.config.connect_timeout,
            call_timeout: Duration::from_secs(20),
            client_id,
            upstream: shared.config.pool_upstream.clone(),
        };
        shared.audit.spawn(audit_access("sluice-audit"), audit_access("sluice-audit-read"), &tasks, &cancel);

        let bind = (shared.config.bind_host.as_str(), shared.config.bootstrap_port);
        let bootstrap = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the bootstrap listener on {}:{}", bind.0, bind.1))?;
        let bootstrap_addr = bootstrap.local_addr()?;
        info!(%bootstrap_addr, "bootstrap listener open");
        tasks.spawn(accept_loop(bootstrap, Target::Any, shared.clone(), cancel.child_token(), tasks.clone()));
        let tls_addr = match shared.config.tls.clone() {
            None => None,
            Some(tls) => {
                let certs = crate::tls::CertStore::load(tls.cert_file.clone(), tls.key_file.clone())
                    .context("loading the TLS certificate")?;
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(certs.server_config()));
                tasks.spawn(certs.watch(Duration::from_millis(tls.reload_check_ms.max(100)), cancel.child_token()));
                let bind = (shared.config.bind_host.as_str(), tls.port);
                let listener = TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("binding the TLS listener on {}:{}", bind.0, bind.1))?;
                let addr = listener.local_addr()?;
                let advertised = Arc::new(Advertised {
                    addressing: Addressing::Sni { domain: tls.domain.clone(), port: addr.port() },
                    cluster_admin: shared.config.auth == AuthMode::None,
                });
                info!(%addr, domain = %tls.domain, "TLS listener open (SNI routing)");
                tasks.spawn(tls_accept_loop(listener, acceptor, tls.domain, advertised, shared.clone(), cancel.child_token(), tasks.clone()));
                Some(addr)
            }
        };
        // The usage ledger: this instance's writer, and a reader every instance keeps
        // for the API.
        let usage_ledger = Arc::new(crate::usage::Ledger::default());
        {
            let access = PoolAccess {
                bootstrap: shared.config.pool_bootstrap.clone(),
                connect_timeout: shared.config.connect_timeout,
                call_timeout: Duration::from_secs(20),
                client_id: "sluice-usage",
                upstream: shared.config.pool_upstream.clone(),
            };
            let u = &shared.config.usage;
            let retention = u.retention_ms.to_string();
            let configs = [("cleanup.policy", "delete"), ("retention.ms", retention.as_str())];
            if let Err(e) = crate::journal::ensure_topic(&access, &u.topic, &configs).await {
                warn!(topic = %u.topic, error = %e, "creating the usage ledger topic failed; the writer retries");
            }
            let settings = crate::usage::UsageSettings { topic: u.topic.clone(), flush: Duration::from_millis(u.flush_ms) };
            tasks.spawn(crate::usage::run_writer(shared.tenants.clone(), access.clone(), settings, cancel.child_token()));
            tasks.spawn(crate::usage::run_reader(usage_ledger.clone(), access, u.topic.clone(), cancel.child_token()));
        }
        let api = shared.sasl.as_ref().map(|sasl| {
            let operator_issuers = shared
                .config
                .operator_issuers
                .clone()
                .unwrap_or_else(|| shared.config.issuer.iter().map(|i| i.url.clone()).collect());
            Arc::new(crate::api::Api {
                store: shared.tenants.clone(),
                auth: sasl.clone(),
                operator_issuers,
                audit: shared.audit.clone(),
                quotas: shared.quotas.clone(),
                usage: usage_ledger.clone(),
                placement: shared.config.placement.clone(),
                pool: PoolAccess {
                    bootstrap: shared.config.pool_bootstrap.clone(),
                    connect_timeout: shared.config.connect_timeout,
                    call_timeout: Duration::from_secs(10),
                    client_id: "sluice-api",
                    upstream: shared.config.pool_upstream.clone(),
                },
            })
        });
        let admin_addr = match &shared.config.admin_bind {
            None => None,
            Some(bind) => {
                let listener =
                    TcpListener::bind(bind.as_str()).await.with_context(|| format!("binding the admin listener on {bind}"))?;
                let addr = listener.local_addr()?;
                info!(%addr, issuer = own_issuer.is_some(), api = api.is_some(), "admin listener open (/v1 API, OAuth2 token endpoint, JWKS, /metrics)");
                tasks.spawn(crate::admin::serve(listener, shared.clone(), own_issuer, api, metrics, cancel.child_token()));
                Some(addr)
            }
        };
        let sweeper = (shared.clone(), cancel.child_token());
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = sweeper.1.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(30)) => sweeper.0.guard.sweep(),
                }
            }
        });
        tasks.spawn(pool.clone().run_discovery(shared.config.metadata_refresh, cancel.child_token()));
        tasks.spawn(forget_idle_partitions(quotas, shared.sources.clone(), cancel.child_token()));
        // What each tenant holds, for its partition limits.
        crate::tenant::inventory::spawn(
            crate::kclient::PoolAccess {
                bootstrap: shared.config.pool_bootstrap.clone(),
                connect_timeout: shared.config.connect_timeout,
                call_timeout: Duration::from_secs(10),
                client_id: "sluice-inventory",
                upstream: shared.config.pool_upstream.clone(),
            },
            shared.config.metadata_refresh,
            cancel.child_token(),
        );
        tasks.spawn(crate::telemetry::upkeep(cancel.child_token()));
        tasks.spawn(pool.clone().run_down_probe(Duration::from_millis(300), cancel.child_token()));
        tasks.spawn(manage_broker_listeners(shared.clone(), cancel.child_token(), tasks.clone()));
        let gateway = Gateway { bootstrap_addr, admin_addr, tls_addr, shared, cancel, tasks, components: Mutex::new(HashMap::new()) };
        let config = gateway.shared.config.clone();
        for c in [Component::Fleet, Component::Placement, Component::PoolMetrics] {
            gateway.start_component(c, &config);
        }
        started.disarm();
        Ok(gateway)
    }

    /// (Re)starts the background task `c` with the settings of `config`, stopping the
    /// running one first.
    fn start_component(&self, c: Component, config: &Config) {
        let token = self.cancel.child_token();
        if let Ok(mut running) = self.components.lock() {
            if let Some(old) = running.insert(c, token.clone()) {
                old.cancel();
            }
        }
        let access = |client_id, call_timeout| PoolAccess {
            bootstrap: config.pool_bootstrap.clone(),
            connect_timeout: config.connect_timeout,
            call_timeout,
            client_id,
            upstream: config.pool_upstream.clone(),
        };
        match c {
            Component::Fleet => {
                if config.fleet.enabled {
                    let instance = crate::placement::rebalancer::gateway_id();
                    let access = access("sluice-fleet", Duration::from_secs(5));
                    self.tasks.spawn(crate::fleet::run(self.shared.quotas.clone(), access, config.fleet.clone(), instance, token));
                } else {
                    // Sharing off: this instance admits the whole quota again.
                    for (_, _, share) in self.shared.quotas.fleet_view() {
                        share.set(sluice_quota::Direction::Write, 1.0);
                        share.set(sluice_quota::Direction::Read, 1.0);
                    }
                }
            }
            // Storage and consumer lag per tenant for /metrics.
            Component::PoolMetrics => {
                self.tasks.spawn(crate::pool_metrics::run(
                    access("sluice-metrics", Duration::from_secs(10)),
                    self.shared.tenants.clone(),
                    Duration::from_millis(config.metrics.pool_poll_ms),
                    token,
                ));
            }
            // Load sampling and reports; the rebalancer when [placement] enabled (one lease holder).
            Component::Placement => {
                self.tasks.spawn(crate::placement::rebalancer::run(
                    crate::placement::Placement::new(
                        config.pool_bootstrap.clone(),
                        config.connect_timeout,
                        config.pool_upstream.clone(),
                        config.placement.clone(),
                        crate::placement::rebalancer::gateway_id(),
                    ),
                    token,
                ));
            }
        }
    }

    /// Applies a changed config file (SIGHUP): see [`crate::reload`] for what changes
    /// live, what restarts a task and what needs a process restart. `running` is the file
    /// as last applied; it is updated to what is now in effect. A new file that does not
    /// parse or validate changes nothing.
    pub async fn reload(&self, running: &mut toml::Table, text: &str, origin: &str) -> Result<Plan, ReloadError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ReloadError::Invalid(e.to_string()))?;
        let new = Config::parse(text, origin).map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let plan = crate::reload::plan(running, &table);
        // Validated before anything is applied, so a bad section changes nothing at all.
        let sasl = match (&new.sasl, plan.auth) {
            (Some(auth), true) => Some(sasl_settings(auth, &new, &self.shared.tenants).await.map_err(|e| ReloadError::Invalid(format!("{e:#}")))?),
            _ => None,
        };
        if plan.quotas {
            self.shared.quotas.set_defaults(new.quotas).map_err(|e| ReloadError::Invalid(format!("[quotas]: {e}")))?;
        }
        if let (Some(settings), Some(current)) = (sasl, &self.shared.sasl) {
            current.store(Arc::new(settings));
        }
        if plan.limits || plan.drain_timeout {
            self.shared.live.store(Arc::new(LiveSettings { limits: new.limits, drain_timeout: new.drain_timeout }));
            self.shared.sources.set(new.limits.max_connections_per_ip, new.limits.connection_rate_per_ip);
        }
        for c in &plan.restart {
            self.start_component(*c, &new);
        }
        // What was not applied stays as it runs, so the next reload reports it again.
        let mut applied = table;
        for name in &plan.needs_restart {
            keep_running_value(&mut applied, running, name);
        }
        *running = applied;
        Ok(plan)
    }

    /// A graceful stop (SIGTERM): stops accepting and reading new requests, gives open
    /// connections up to `drain` to get their in-flight requests answered, then stops
    /// everything else (the usage ledger and audit log flush on the way out).
    pub async fn drain_and_stop(self, drain: Duration, grace: Duration) {
        use std::sync::atomic::Ordering;
        let started = tokio::time::Instant::now();
        let open = self.shared.open_connections.load(Ordering::Relaxed);
        info!(open, ?drain, "draining: listeners closed, connections finish their in-flight requests");
        self.shared.draining.cancel();
        while self.shared.open_connections.load(Ordering::Relaxed) > 0 && started.elapsed() < drain {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.shared.open_connections.load(Ordering::Relaxed);
        if left > 0 {
            warn!(left, ?drain, "drain timeout: closing the connections still open");
        } else {
            info!(took_ms = started.elapsed().as_millis() as u64, "drained");
        }
        self.shutdown(grace).await;
    }

    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn shutdown(self, grace: Duration) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            warn!("some connections did not close within {grace:?}");
        }
    }
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the new config is invalid: {0}")]
    Invalid(String),
}

/// Puts `name` (a section, or `section.key`) of `running` back into `applied`.
fn keep_running_value(applied: &mut toml::Table, running: &toml::Table, name: &str) {
    let (section, key) = match name.split_once('.') {
        Some((s, k)) => (s, Some(k)),
        None => (name, None),
    };
    let Some(key) = key else {
        match running.get(section) {
            Some(v) => applied.insert(section.to_owned(), v.clone()),
            None => applied.remove(section),
        };
        return;
    };
    let old = running.get(section).and_then(|v| v.as_table()).and_then(|t| t.get(key)).cloned();
    if let Some(toml::Value::Table(t)) = applied.get_mut(section) {
        match old {
            Some(v) => t.insert(key.to_owned(), v),
            None => t.remove(key),
        };
    }
}

/// The SASL settings of `[auth]`: its issuers plus sluice's own (when `[issuer]` is set),
/// with their keys loaded (keys that cannot be loaded now are retried on first use).
async fn sasl_settings(
    auth: &crate::config::AuthConfig,
    config: &Config,
    tenants: &TenantStore,
) -> anyhow::Result<SaslSettings<JwtVerifier>> {
    let mut issuers = auth.issuers.clone();
    if let Some(settings) = &config.issuer {
        // Tokens sluice mints are verified like any issuer's, from the JWKS it wrote.
        issuers.push(sluice_tenancy::IssuerConfig {
            issuer: settings.url.clone(),
            audience: vec![settings.audience.clone()],
            jwks_file: Some(jwks_path(&settings.key_file)),
            algorithms: vec!["EdDSA".into()],
            ..Default::default()
        });
    }
    let authenticator =
        sluice_tenancy::Authenticator::new(issuers, Arc::new(tenants.clone())).context("configuring token issuers")?;
    if let Err(e) = authenticator.refresh_keys().await {
        warn!(error = %e, "loading issuer keys failed; will retry on first use");
    }
    Ok(SaslSettings { mechanisms: auth.mechanisms.clone(), max_session: auth.max_session, verifier: JwtVerifier(authenticator) })
}

/// Where the public JWKS of the issuer key at `key_file` is written.
pub fn jwks_path(key_file: &std::path::Path) -> std::path::PathBuf {
    key_file.with_extension("jwks.json")
}

fn start_issuer(
    settings: &crate::config::IssuerSettings,
    guard: Arc<crate::guard::AuthGuard>,
    tenants: TenantStore,
) -> anyhow::Result<crate::admin::Issuer> {
    let key = if settings.generate_key {
        SigningKey::load_or_generate(&settings.key_file)?
    } else {
        SigningKey::load(&settings.key_file)?
    };
    let jwks = jwks_path(&settings.key_file);
    std::fs::write(&jwks, key.jwks().to_string()).with_context(|| format!("writing {}", jwks.display()))?;
    info!(kid = key.kid(), url = %settings.url, "token issuer ready");
    Ok(crate::admin::Issuer {
        url: settings.url.clone(),
        audience: settings.audience.clone(),
        key,
        tenants,
        token_ttl: settings.token_ttl,
        guard,
    })
}

/// Keeps the partition limiters bounded: idle partitions (full buckets) are forgotten.
async fn forget_idle_partitions(
    quotas: Arc<sluice_quota::Quotas>,
    sources: Arc<crate::source_limits::SourceLimits>,
    cancel: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {
                quotas.retain_recent();
                sources.retain_recent();
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Target,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = shared.draining.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let advertised = shared.advertised.clone();
                tasks.spawn(connection::serve(stream, peer, target, shared.clone(), advertised, cancel.clone()));
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                error!(?target, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Accepts TLS connections and routes each by the SNI name the client sent.
async fn tls_accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    domain: String,
    advertised: Arc<Advertised>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = shared.draining.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    error!(error = %e, "TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, domain, advertised, shared, cancel) =
            (acceptor.clone(), domain.clone(), advertised.clone(), shared.clone(), cancel.clone());
        let handshake_timeout = shared.limits().preauth_timeout;
        tasks.spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return warn!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return warn!(%peer, "TLS handshake timed out"),
            };
            let sni = tls.get_ref().1.server_name().map(str::to_owned);
            let Some(target) = sni.as_deref().and_then(|name| crate::tls::route_sni(name, &domain)) else {
                return warn!(%peer, sni = ?sni, %domain, "closing TLS connection: SNI names no broker of this gateway");
            };
            if let Target::Broker(id) = target {
                if shared.broker_token(id).is_none() {
                    return warn!(%peer, node_id = id, "closing TLS connection: no such pool broker (or it is down)");
                }
            }
            connection::serve(tls, peer, target, shared, advertised, cancel).await;
        });
    }
}

/// Keeps one listener per pool broker in step with discovery: open for every broker
/// the pool lists, except those found refusing connections.
async fn manage_broker_listeners(shared: Arc<Shared>, cancel: CancellationToken, tasks: TaskTracker) {
    let mut brokers = shared.pool.subscribe();
    let mut down = shared.pool.subscribe_down();
    loop {
        let mut current = brokers.borrow_and_update().clone();
        for id in down.borrow_and_update().iter() {
            current.remove(id);
        }
        let mut bind_failed = false;
        let open: Vec<i32> = shared.broker_tokens.lock().map(|t| t.keys().copied().collect()).unwrap_or_default();
        for id in open.iter().filter(|id| !current.contains_key(id)) {
            if let Some(token) = shared.broker_tokens.lock().ok().and_then(|mut t| t.remove(id)) {
                info!(node_id = id, "pool broker departed or down: closing its listener and connections");
                token.cancel();
            }
        }
        for id in current.keys().filter(|id| !open.contains(id)) {
            let Some(port) = shared.config.broker_port(*id) else {
                error!(node_id = id, base = shared.config.broker_port_base, "no gateway port for this broker id");
                continue;
            };
            match TcpListener::bind((shared.config.bind_host.as_str(), port)).await {
                Ok(listener) => {
                    let token = cancel.child_token();
                    if let Ok(mut t) = shared.broker_tokens.lock() {
                        t.insert(*id, token.clone());
                    }
                    info!(node_id = id, port, "broker listener open");
                    tasks.spawn(accept_loop(listener, Target::Broker(*id), shared.clone(), token, tasks.clone()));
                }
                Err(e) => {
                    bind_failed = true;
                    error!(node_id = id, port, error = %e, "cannot open broker listener; will retry");
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = brokers.changed() => if changed.is_err() { return },
            changed = down.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(2)), if bind_failed => {}
        }
    }
}
