//! The gateway's TOML configuration, parsed strictly (unknown keys are errors) and
//! turned into checked types. Defaults live here and nowhere else.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sluice_tenancy::IssuerConfig;

use crate::sasl::Mechanism;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path} is not valid: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("config: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listener: RawListener,
    pool: RawPool,
    #[serde(default)]
    limits: RawLimits,
    auth: Option<RawAuth>,
    admin: Option<RawAdmin>,
    issuer: Option<RawIssuer>,
    tls: Option<TlsSettings>,
    #[serde(default)]
    store: StoreSettings,
    #[serde(default)]
    quotas: RawQuotas,
    #[serde(default)]
    placement: PlacementSettings,
    #[serde(default)]
    audit: crate::audit::AuditSettings,
    #[serde(default)]
    metrics: MetricsSettings,
    #[serde(default)]
    usage: UsageConfig,
    #[serde(default)]
    fleet: crate::fleet::FleetSettings,
}

/// `[quotas]`: the byte rates every tenant gets unless its document overrides them
/// (SPEC 7; MSK Serverless's values by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawQuotas {
    tenant_write_bytes_per_sec: u64,
    tenant_read_bytes_per_sec: u64,
    partition_write_bytes_per_sec: u64,
    partition_read_bytes_per_sec: u64,
    partition_mutations_per_5min: u64,
    request_rate: u64,
    connection_rate: u64,
    max_connections: u64,
    max_message_bytes: u64,
    max_request_bytes: u64,
    max_partitions: u64,
    max_compacted_partitions: u64,
    max_consumer_groups: u64,
}

impl Default for RawQuotas {
    fn default() -> Self {
        let d = sluice_quota::QuotaConfig::default();
        Self {
            tenant_write_bytes_per_sec: d.tenant_write,
            tenant_read_bytes_per_sec: d.tenant_read,
            partition_write_bytes_per_sec: d.partition_write,
            partition_read_bytes_per_sec: d.partition_read,
            partition_mutations_per_5min: d.partition_mutations_per_5min,
            request_rate: d.request_rate,
            connection_rate: d.connection_rate,
            max_connections: d.max_connections,
            max_message_bytes: d.max_message_bytes,
            max_request_bytes: d.max_request_bytes,
            max_partitions: d.max_partitions,
            max_compacted_partitions: d.max_compacted_partitions,
            max_consumer_groups: d.max_groups,
        }
    }
}

/// `[store]`: the tenant store topic in the pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// The compacted topic holding one record per tenant.
    #[serde(default = "default_store_topic")]
    pub topic: String,
    /// A JSON array of tenant documents, written at start for tenants that do not exist.
    #[serde(default)]
    pub seed_file: Option<std::path::PathBuf>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self { topic: default_store_topic(), seed_file: None }
    }
}

fn default_store_topic() -> String {
    "__sluice_tenants".into()
}

/// The TLS listener: one port, routed by SNI (`bootstrap.<domain>`, `broker-<id>.<domain>`).
/// It uses the same authentication as the plain listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub port: u16,
    /// Clients reach broker N as `broker-N.<domain>` and bootstrap at `bootstrap.<domain>`;
    /// the certificate must cover `*.<domain>`.
    pub domain: String,
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    /// How often the files are checked for a renewed certificate.
    #[serde(default = "default_tls_reload_ms")]
    pub reload_check_ms: u64,
}

fn default_tls_reload_ms() -> u64 {
    5000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    /// host:port of the admin HTTP listener.
    bind: String,
    /// Issuers whose `sluice:operator` tokens the /v1 API honours (default: sluice's own).
    #[serde(default)]
    operator_issuers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    /// The `iss` of tokens sluice mints, and the base URL of its token endpoint.
    url: String,
    #[serde(default = "default_audience")]
    audience: String,
    key_file: std::path::PathBuf,
    /// Development: create and persist the key when the file does not exist.
    #[serde(default)]
    generate_key: bool,
    /// Gone: clients live in the tenant store. Read only to refuse it with a clear message.
    #[serde(default)]
    clients_file: Option<toml::Value>,
    #[serde(default = "default_token_ttl_secs")]
    token_ttl_secs: u64,
}

fn default_audience() -> String {
    "sluice".into()
}
fn default_token_ttl_secs() -> u64 {
    3600
}

/// sluice's own OAuth2 issuer (served on the admin listener).
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    pub url: String,
    pub audience: String,
    pub key_file: std::path::PathBuf,
    pub generate_key: bool,
    pub token_ttl: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default = "default_mechanisms")]
    mechanisms: Vec<String>,
    /// Longest session before re-authentication (Kafka's connections.max.reauth.ms).
    #[serde(default = "default_max_session_ms")]
    max_session_ms: u64,
    #[serde(default)]
    issuers: Vec<IssuerConfig>,
    /// Brute-force protection: failures (per source IP and per principal) after which
    /// answers are delayed, and after which attempts are refused, until a quiet window.
    #[serde(default = "default_failures_before_delay")]
    failures_before_delay: u32,
    #[serde(default = "default_failures_before_refusal")]
    failures_before_refusal: u32,
    #[serde(default = "default_failure_window_ms")]
    failure_window_ms: u64,
}

fn default_failures_before_delay() -> u32 {
    5
}
fn default_failures_before_refusal() -> u32 {
    30
}
fn default_failure_window_ms() -> u64 {
    60_000
}

fn default_mechanisms() -> Vec<String> {
    vec!["OAUTHBEARER".into(), "PLAIN".into()]
}
fn default_max_session_ms() -> u64 {
    60 * 60 * 1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    #[serde(default = "default_bind_host")]
    bind_host: String,
    advertised_host: String,
    bootstrap_port: u16,
    broker_port_base: u16,
    auth: Option<AuthMode>,
    /// On SIGTERM, how long open connections may take to finish their in-flight requests.
    #[serde(default = "default_drain_timeout_ms")]
    drain_timeout_ms: u64,
}

fn default_drain_timeout_ms() -> u64 {
    30_000
}

/// How clients authenticate on the Kafka listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication: a development listener with operator-level reach. Only ever
    /// on when the config says so explicitly.
    None,
    /// SASL OAUTHBEARER/PLAIN with JWTs from the issuers in `[auth]`.
    Sasl,
}

/// Checked `[auth]` settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mechanisms: Vec<Mechanism>,
    pub max_session: Duration,
    pub issuers: Vec<IssuerConfig>,
    pub guard: crate::guard::GuardSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    bootstrap: Vec<String>,
    #[serde(default = "default_metadata_refresh_ms")]
    metadata_refresh_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    connect_timeout_ms: u64,
    /// Kafka's security.protocol towards the pool (`crate::upstream`).
    #[serde(default)]
    security: crate::upstream::SecurityProtocol,
    tls: Option<crate::upstream::PoolTlsSettings>,
    sasl: Option<crate::upstream::PoolSaslSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_frame_bytes: u64,
    max_in_flight: usize,
    idle_timeout_ms: u64,
    preauth_timeout_ms: u64,
    frame_timeout_ms: u64,
    max_connections_per_ip: u64,
    connection_rate_per_ip: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 100 * 1024 * 1024,
            max_in_flight: 64,
            // Kafka's connections.max.idle.ms default.
            idle_timeout_ms: 10 * 60 * 1000,
            preauth_timeout_ms: 10_000,
            frame_timeout_ms: 30_000,
            // Generous: many clients of many tenants may share one NAT address; the
            // point is that no single host can take the whole gateway.
            max_connections_per_ip: 10_000,
            connection_rate_per_ip: 1_000,
        }
    }
}

fn default_bind_host() -> String {
    "127.0.0.1".into()
}
fn default_metadata_refresh_ms() -> u64 {
    3000
}
fn default_connect_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Clone)]
pub struct Config {
    /// SIGTERM: stop accepting, then give connections this long to finish in-flight requests.
    pub drain_timeout: Duration,
    pub bind_host: String,
    pub advertised_host: String,
    pub bootstrap_port: u16,
    pub broker_port_base: u16,
    pub auth: AuthMode,
    /// Present exactly when `auth` is `Sasl`.
    pub sasl: Option<AuthConfig>,
    /// Admin HTTP listener address.
    pub admin_bind: Option<String>,
    /// `admin.operator_issuers`; `None` means sluice's own issuer only.
    pub operator_issuers: Option<Vec<String>>,
    pub issuer: Option<IssuerSettings>,
    pub tls: Option<TlsSettings>,
    pub pool_bootstrap: Vec<String>,
    /// How every pool connection is opened (`[pool] security`, `[pool.tls]`, `[pool.sasl]`).
    pub pool_upstream: crate::upstream::Upstream,
    pub metadata_refresh: Duration,
    pub connect_timeout: Duration,
    pub limits: Limits,
    /// The tenant store (`[store]`).
    pub store: StoreSettings,
    /// Default byte rates of every tenant (`[quotas]`).
    pub quotas: sluice_quota::QuotaConfig,
    /// Placement and rebalancing (`[placement]`).
    pub placement: PlacementSettings,
    /// The audit log (`[audit]`).
    pub audit: crate::audit::AuditSettings,
    /// Pool-side metrics (`[metrics]`).
    pub metrics: MetricsSettings,
    pub usage: UsageConfig,
    pub fleet: crate::fleet::FleetSettings,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request frame; checked before allocation.
    pub max_frame_bytes: usize,
    /// Requests a client may have outstanding on one connection before the gateway
    /// stops reading from it (backpressure, never drops).
    pub max_in_flight: usize,
    pub idle_timeout: Duration,
    /// Silence allowed before the first request (and, with SASL, before authentication).
    pub preauth_timeout: Duration,
    /// Time one request frame may take from first to last byte.
    pub frame_timeout: Duration,
    /// Open connections per source IP (0 = unlimited).
    pub max_connections_per_ip: u64,
    /// New connections per second per source IP (0 = unlimited).
    pub connection_rate_per_ip: u64,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: origin.to_owned(), source })?;
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        let Some(auth) = raw.listener.auth else {
            return invalid(
                "listener.auth is not set. Authentication arrives with SASL; until then set \
                 listener.auth = \"none\" to run an open development listener on purpose"
                    .into(),
            );
        };
        let sasl = match (auth, raw.auth) {
            (AuthMode::None, None) => None,
            (AuthMode::None, Some(_)) => {
                return invalid("[auth] is set but listener.auth = \"none\"; set listener.auth = \"sasl\"".into())
            }
            (AuthMode::Sasl, None) => return invalid("listener.auth = \"sasl\" needs an [auth] section".into()),
            (AuthMode::Sasl, Some(a)) => Some(check_auth(a, raw.issuer.is_some())?),
        };
        if raw.listener.advertised_host.trim().is_empty() {
            return invalid("listener.advertised_host is empty".into());
        }
        if raw.pool.bootstrap.is_empty() {
            return invalid("pool.bootstrap lists no broker".into());
        }
        for addr in &raw.pool.bootstrap {
            if !addr.contains(':') {
                return invalid(format!("pool.bootstrap entry {addr:?} is not host:port"));
            }
        }
        let pool_upstream = crate::upstream::Upstream::from_settings(
            raw.pool.security,
            raw.pool.tls.as_ref(),
            raw.pool.sasl.as_ref(),
        )
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let limits = raw.limits;
        if limits.max_frame_bytes == 0 || limits.max_frame_bytes > i32::MAX as u64 {
            return invalid(format!("limits.max_frame_bytes {} is outside 1..=2147483647", limits.max_frame_bytes));
        }
        if limits.max_in_flight == 0 {
            return invalid("limits.max_in_flight must be at least 1".into());
        }
        Ok(Config {
            drain_timeout: Duration::from_millis(raw.listener.drain_timeout_ms),
            bind_host: raw.listener.bind_host,
            advertised_host: raw.listener.advertised_host,
            bootstrap_port: raw.listener.bootstrap_port,
            broker_port_base: raw.listener.broker_port_base,
            auth,
            sasl,
            operator_issuers: raw.admin.as_ref().and_then(|a| a.operator_issuers.clone()),
            admin_bind: raw.admin.map(|a| a.bind),
            tls: match raw.tls {
                Some(t) if t.domain.trim_matches('.').is_empty() => return invalid("tls.domain is empty".into()),
                Some(mut t) => {
                    t.domain = t.domain.trim_matches('.').to_ascii_lowercase();
                    Some(t)
                }
                None => None,
            },
            issuer: match raw.issuer {
                None => None,
                Some(i) => {
                    if i.url.trim_end_matches('/').is_empty() || i.token_ttl_secs == 0 {
                        return invalid("issuer.url must be set and issuer.token_ttl_secs above 0".into());
                    }
                    if i.clients_file.is_some() {
                        return invalid(
                            "issuer.clients_file is no longer used: OAuth clients now live in the tenant store \
                             (__sluice_tenants); remove the key and create clients with `sluice client create`"
                                .into(),
                        );
                    }
                    Some(IssuerSettings {
                        url: i.url.trim_end_matches('/').to_owned(),
                        audience: i.audience,
                        key_file: i.key_file,
                        generate_key: i.generate_key,
                        token_ttl: Duration::from_secs(i.token_ttl_secs),
                    })
                }
            },
            pool_bootstrap: raw.pool.bootstrap,
            pool_upstream,
            metadata_refresh: Duration::from_millis(raw.pool.metadata_refresh_ms.max(100)),
            connect_timeout: Duration::from_millis(raw.pool.connect_timeout_ms.max(100)),
            quotas: {
                let q = sluice_quota::QuotaConfig {
                    tenant_write: raw.quotas.tenant_write_bytes_per_sec,
                    tenant_read: raw.quotas.tenant_read_bytes_per_sec,
                    partition_write: raw.quotas.partition_write_bytes_per_sec,
                    partition_read: raw.quotas.partition_read_bytes_per_sec,
                    partition_mutations_per_5min: raw.quotas.partition_mutations_per_5min,
                    request_rate: raw.quotas.request_rate,
                    connection_rate: raw.quotas.connection_rate,
                    max_connections: raw.quotas.max_connections,
                    max_message_bytes: raw.quotas.max_message_bytes,
                    max_request_bytes: raw.quotas.max_request_bytes,
                    max_partitions: raw.quotas.max_partitions,
                    max_compacted_partitions: raw.quotas.max_compacted_partitions,
                    max_groups: raw.quotas.max_consumer_groups,
                };
                if let Err(e) = q.validate() {
                    return invalid(format!("quotas: {e}"));
                }
                q
            },
            placement: {
                if let Err(e) = raw.placement.validate() {
                    return invalid(e);
                }
                raw.placement
            },
            metrics: MetricsSettings { pool_poll_ms: raw.metrics.pool_poll_ms.max(500) },
            audit: {
                if raw.audit.topic.trim().is_empty() {
                    return invalid("audit.topic is empty".into());
                }
                raw.audit
            },
            fleet: crate::fleet::FleetSettings { interval_ms: raw.fleet.interval_ms.max(100), ..raw.fleet },
            usage: {
                if raw.usage.topic.trim().is_empty() {
                    return invalid("usage.topic is empty".into());
                }
                UsageConfig { flush_ms: raw.usage.flush_ms.max(100), ..raw.usage }
            },
            store: {
                if raw.store.topic.trim().is_empty() {
                    return invalid("store.topic is empty".into());
                }
                raw.store
            },
            limits: Limits {
                max_frame_bytes: limits.max_frame_bytes as usize,
                max_in_flight: limits.max_in_flight,
                idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
                preauth_timeout: Duration::from_millis(limits.preauth_timeout_ms),
                frame_timeout: Duration::from_millis(limits.frame_timeout_ms),
                max_connections_per_ip: limits.max_connections_per_ip,
                connection_rate_per_ip: limits.connection_rate_per_ip,
            },
        })
    }

    /// The client-facing port of pool broker `node_id`, if it fits in a port number
    /// and does not collide with the bootstrap port.
    pub fn broker_port(&self, node_id: i32) -> Option<u16> {
        let port = i64::from(self.broker_port_base) + i64::from(node_id);
        u16::try_from(port).ok().filter(|p| *p != self.bootstrap_port && *p != 0)
    }
}

fn check_auth(raw: RawAuth, own_issuer: bool) -> Result<AuthConfig, ConfigError> {
    let invalid = |msg: String| Err(ConfigError::Invalid(msg));
    let mut mechanisms = Vec::new();
    for name in &raw.mechanisms {
        match Mechanism::parse(name) {
            Some(m) => mechanisms.push(m),
            None => return invalid(format!("auth.mechanisms: {name:?} is not OAUTHBEARER or PLAIN")),
        }
    }
    if mechanisms.is_empty() {
        return invalid("auth.mechanisms is empty".into());
    }
    if raw.issuers.is_empty() && !own_issuer {
        return invalid("[auth] lists no [[auth.issuers]] and there is no [issuer]: no token could ever be accepted".into());
    }
    if raw.max_session_ms < 1000 {
        return invalid(format!("auth.max_session_ms {} is below 1000", raw.max_session_ms));
    }
    if raw.failures_before_refusal <= raw.failures_before_delay {
        return invalid("auth.failures_before_refusal must be above auth.failures_before_delay".into());
    }
    let guard = crate::guard::GuardSettings {
        window: Duration::from_millis(raw.failure_window_ms.max(1000)),
        delay_after: raw.failures_before_delay,
        refuse_after: raw.failures_before_refusal,
        ..Default::default()
    };
    Ok(AuthConfig { mechanisms, max_session: Duration::from_millis(raw.max_session_ms), issuers: raw.issuers, guard })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[listener]
advertised_host = "gw.example"
bootstrap_port = 9092
broker_port_base = 9100
auth = "none"
[pool]
bootstrap = ["127.0.0.1:29091"]
"#;

    #[test]
    fn parses_with_defaults() {
        let cfg = Config::parse(BASE, "t").unwrap();
        assert_eq!(cfg.limits.max_frame_bytes, 100 * 1024 * 1024);
        assert_eq!(cfg.broker_port(3), Some(9103));
        assert_eq!(cfg.broker_port(70000), None);
    }

    #[test]
    fn open_listener_must_be_explicit() {
        let err = Config::parse(&BASE.replace("auth = \"none\"", ""), "t").unwrap_err();
        assert!(err.to_string().contains("listener.auth"), "{err}");
    }

    #[test]
    fn sasl_needs_issuers_and_tenants_come_from_the_store() {
        let sasl = BASE.replace("auth = \"none\"", "auth = \"sasl\"");
        let err = Config::parse(&sasl, "t").unwrap_err();
        assert!(err.to_string().contains("[auth]"), "{err}");
        let with_auth = format!(
            "{sasl}\n[auth]\n[[auth.issuers]]\nissuer = \"https://i\"\naudience = [\"sluice\"]\njwks_file = \"/k.json\"\n"
        );
        let cfg = Config::parse(&with_auth, "t").unwrap();
        let auth = cfg.sasl.unwrap();
        assert_eq!(auth.mechanisms, vec![Mechanism::OAuthBearer, Mechanism::Plain]);
        assert_eq!(cfg.store.topic, "__sluice_tenants");
        // The static list is gone: tenants live in the store.
        let err = Config::parse(&with_auth.replace("[auth]\n", "[auth]\ntenants = [\"demo\"]\n"), "t").unwrap_err();
        assert!(err.to_string().contains("tenants"), "{err}");
        let cfg = Config::parse(&format!("{with_auth}\n[store]\ntopic = \"__t\"\nseed_file = \"/s.json\"\n"), "t").unwrap();
        assert_eq!((cfg.store.topic.as_str(), cfg.store.seed_file.as_deref()), ("__t", Some(std::path::Path::new("/s.json"))));
    }

    #[test]
    fn issuer_clients_file_is_refused_with_its_replacement() {
        let issuer = "\n[issuer]\nurl = \"http://127.0.0.1:9480\"\nkey_file = \"/k.pem\"\n";
        assert!(Config::parse(&format!("{BASE}{issuer}"), "t").unwrap().issuer.is_some());
        let err = Config::parse(&format!("{BASE}{issuer}clients_file = \"/c.json\"\n"), "t").unwrap_err().to_string();
        assert!(err.contains("clients_file") && err.contains("tenant store") && err.contains("sluice client create"), "{err}");
    }

    #[test]
    fn pool_security_is_parsed_and_checked() {
        use crate::upstream::SecurityProtocol;
        assert_eq!(Config::parse(BASE, "t").unwrap().pool_upstream.protocol(), SecurityProtocol::Plaintext);
        // BASE ends inside [pool]: what follows are [pool] keys, then its subtable.
        let with = |security: &str, sasl: &str| format!("{BASE}security = \"{security}\"\n{sasl}");
        let sasl = "[pool.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"u\"\npassword = \"p4ss\"\n";
        let cfg = Config::parse(&with("SASL_PLAINTEXT", sasl), "t").unwrap();
        assert_eq!(cfg.pool_upstream.protocol(), SecurityProtocol::SaslPlaintext);
        assert!(!format!("{cfg:?}").contains("p4ss"), "the password must not be in Debug output");
        let err = |text: String| Config::parse(&text, "t").unwrap_err().to_string();
        assert!(err(with("sasl_plaintext", &sasl.replace("SCRAM-SHA-256", "GSSAPI"))).contains("GSSAPI"));
        assert!(err(with("sasl_plaintext", &format!("{sasl}secret = 1\n"))).contains("secret"));
        assert!(err(with("sasl_ssl", "")).contains("[pool.sasl]"));
        assert!(err(with("plaintext", sasl)).contains("[pool.sasl]"));
        assert!(err(with("kerberos", "")).contains("kerberos"));
        let tls = "[pool.tls]\nca_file = \"/nonexistent/pool-ca.pem\"\n";
        assert!(err(with("ssl", tls)).contains("/nonexistent/pool-ca.pem"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::parse(&format!("{BASE}\n[limits]\nmax_frame_byts = 5\n"), "t").unwrap_err();
        assert!(err.to_string().contains("max_frame_byts"), "{err}");
        let err = Config::parse(&BASE.replace("127.0.0.1:29091", "nohost"), "t").unwrap_err();
        assert!(err.to_string().contains("nohost"), "{err}");
    }
}

/// `[usage]`: the usage ledger (SPEC 9).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// The ledger topic in the pool.
    pub topic: String,
    /// Milliseconds between two appends of this instance's usage (and the width of the
    /// windows they cover); at least 100.
    pub flush_ms: u64,
    /// How long the pool keeps ledger records (the topic's `retention.ms`, set when the
    /// gateway creates it).
    pub retention_ms: u64,
}

impl Default for UsageConfig {
    fn default() -> Self {
        // 400 days: a year of invoices plus a month to dispute them.
        Self { topic: "__sluice_usage".into(), flush_ms: 10_000, retention_ms: 400 * 24 * 3_600_000 }
    }
}

/// `[metrics]`: how the pool-side series of `/metrics` are gathered.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Milliseconds between two polls of storage (DescribeLogDirs) and consumer lag
    /// (ListGroups, OffsetFetch, ListOffsets) on every pool broker; at least 500.
    pub pool_poll_ms: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { pool_poll_ms: 15_000 }
    }
}

/// `[placement]`: automatic partition placement and rebalancing (SPEC 8). See
/// docs/operations.md for each knob.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PlacementSettings {
    /// Run the background rebalancer (one gateway at a time holds its lease).
    pub enabled: bool,
    /// Give tenant CreateTopics / CreatePartitions explicit replica assignments.
    pub place_new_partitions: bool,
    /// Seconds between two rebalancer rounds (and load reports).
    pub interval_secs: u64,
    /// Plan only when the hottest broker is above mean × this (or the coldest below mean / this).
    pub imbalance_threshold: f64,
    /// Each load step must lower the higher broker load by this fraction of the mean.
    pub min_improvement: f64,
    /// Replica moves (reassignments) running at once.
    pub max_concurrent_moves: usize,
    /// Replica moves in one plan.
    pub max_moves_per_plan: usize,
    /// Bytes one plan may copy.
    pub max_bytes_moved: u64,
    /// Leadership changes in one plan.
    pub max_leader_changes: usize,
    /// Replication throttle (bytes/s per broker) while moves run; 0 = none.
    pub throttle_bytes_per_sec: u64,
    /// Brokers to empty (they receive nothing).
    pub drain: Vec<i32>,
    /// Plan only these tenants' topics (empty: every tenant topic).
    pub tenants: Vec<String>,
    /// Network capacity per broker, bytes/s in and out; 0 = unknown (no capacity goal).
    pub broker_capacity_in: f64,
    pub broker_capacity_out: f64,
    /// The compacted topic holding the lease, the applier's state and load reports.
    pub topic: String,
}

impl Default for PlacementSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            place_new_partitions: true,
            interval_secs: 60,
            imbalance_threshold: 1.10,
            min_improvement: 0.002,
            max_concurrent_moves: 5,
            max_moves_per_plan: 50,
            max_bytes_moved: 50 << 30,
            max_leader_changes: 500,
            throttle_bytes_per_sec: 50 << 20,
            drain: Vec::new(),
            tenants: Vec::new(),
            broker_capacity_in: 0.0,
            broker_capacity_out: 0.0,
            topic: "__sluice_placement".into(),
        }
    }
}

impl PlacementSettings {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.max(1))
    }

    /// Load reports older than this are ignored (a gateway that stopped reporting).
    pub fn load_max_age(&self) -> Duration {
        self.interval() * 3 + Duration::from_secs(30)
    }

    pub fn broker_capacity(&self) -> sluice_placement::Capacity {
        let c = |v: f64| if v > 0.0 { v } else { f64::INFINITY };
        sluice_placement::Capacity { bytes_in_per_sec: c(self.broker_capacity_in), bytes_out_per_sec: c(self.broker_capacity_out) }
    }

    fn validate(&self) -> Result<(), String> {
        if self.imbalance_threshold.is_nan() || self.imbalance_threshold < 1.0 {
            return Err("placement.imbalance_threshold must be at least 1.0".into());
        }
        if self.min_improvement.is_nan() || self.min_improvement < 0.0 {
            return Err("placement.min_improvement must not be negative".into());
        }
        if self.max_concurrent_moves == 0 {
            return Err("placement.max_concurrent_moves must be at least 1".into());
        }
        if self.topic.trim().is_empty() {
            return Err("placement.topic is empty".into());
        }
        Ok(())
    }
}
