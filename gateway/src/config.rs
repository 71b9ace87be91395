//! The gateway's TOML configuration, parsed strictly (unknown keys are errors) and
//! turned into checked types. Defaults live here and nowhere else.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

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
}

/// How clients authenticate on the Kafka listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication: a development listener with operator-level reach. Only ever
    /// on when the config says so explicitly.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    bootstrap: Vec<String>,
    #[serde(default = "default_metadata_refresh_ms")]
    metadata_refresh_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    connect_timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_frame_bytes: u64,
    max_in_flight: usize,
    idle_timeout_ms: u64,
    preauth_timeout_ms: u64,
    frame_timeout_ms: u64,
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
    pub bind_host: String,
    pub advertised_host: String,
    pub bootstrap_port: u16,
    pub broker_port_base: u16,
    pub auth: AuthMode,
    pub pool_bootstrap: Vec<String>,
    pub metadata_refresh: Duration,
    pub connect_timeout: Duration,
    pub limits: Limits,
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
        let limits = raw.limits;
        if limits.max_frame_bytes == 0 || limits.max_frame_bytes > i32::MAX as u64 {
            return invalid(format!("limits.max_frame_bytes {} is outside 1..=2147483647", limits.max_frame_bytes));
        }
        if limits.max_in_flight == 0 {
            return invalid("limits.max_in_flight must be at least 1".into());
        }
        Ok(Config {
            bind_host: raw.listener.bind_host,
            advertised_host: raw.listener.advertised_host,
            bootstrap_port: raw.listener.bootstrap_port,
            broker_port_base: raw.listener.broker_port_base,
            auth,
            pool_bootstrap: raw.pool.bootstrap,
            metadata_refresh: Duration::from_millis(raw.pool.metadata_refresh_ms.max(100)),
            connect_timeout: Duration::from_millis(raw.pool.connect_timeout_ms.max(100)),
            limits: Limits {
                max_frame_bytes: limits.max_frame_bytes as usize,
                max_in_flight: limits.max_in_flight,
                idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
                preauth_timeout: Duration::from_millis(limits.preauth_timeout_ms),
                frame_timeout: Duration::from_millis(limits.frame_timeout_ms),
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
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::parse(&format!("{BASE}\n[limits]\nmax_frame_byts = 5\n"), "t").unwrap_err();
        assert!(err.to_string().contains("max_frame_byts"), "{err}");
        let err = Config::parse(&BASE.replace("127.0.0.1:29091", "nohost"), "t").unwrap_err();
        assert!(err.to_string().contains("nohost"), "{err}");
    }
}
