//! TLS for the Kafka listener (rustls): the certificate and key come from PEM files
//! and are reloaded when the files change, without dropping connections; the SNI name
//! a client asked for picks the pool broker (`broker-<id>.<domain>`) or the bootstrap
//! (`bootstrap.<domain>`), so one TLS port serves the whole pool (SPEC 2).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::connection::Target;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: String },
    #[error("the key in {path} is not usable: {reason}")]
    Key { path: String, reason: String },
}

fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| TlsError::Read { path: shown(cert_file), reason: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read { path: shown(cert_file), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: shown(cert_file) });
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError::Read { path: shown(key_file), reason: e.to_string() })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key { path: shown(key_file), reason: e.to_string() })?;
    let pair = CertifiedKey::new(certs, signing);
    // A renewal written file by file can briefly pair a new key with the old
    // certificate; such a pair would fail every handshake, so it is refused.
    pair.keys_match().map_err(|e| TlsError::Key {
        path: shown(key_file),
        reason: format!("it does not belong to the certificate in {}: {e}", shown(cert_file)),
    })?;
    Ok(Arc::new(pair))
}

/// The current certificate, swapped in place on reload.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

impl CertStore {
    pub fn load(cert_file: PathBuf, key_file: PathBuf) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(load(&cert_file, &key_file)?);
        Ok(Arc::new(Self { cert_file, key_file, current }))
    }

    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        // Defaults are TLS 1.2 and 1.3; building with them cannot fail for this provider.
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_no_client_auth().with_cert_resolver(self.clone()))
            .unwrap_or_else(|_| {
                rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(self.clone())
            })
    }

    /// Polls the files and swaps the certificate when they change. A bad new pair is
    /// logged and the old one kept, so a half-written renewal never takes TLS down.
    pub async fn watch(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        let stamp = |s: &Self| -> Option<(SystemTime, SystemTime)> {
            let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            Some((m(&s.cert_file)?, m(&s.key_file)?))
        };
        let mut seen = stamp(&self);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let now = stamp(&self);
            if now == seen {
                continue;
            }
            match load(&self.cert_file, &self.key_file) {
                Ok(fresh) => {
                    if let Ok(mut current) = self.current.write() {
                        *current = fresh;
                    }
                    info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
                    seen = now;
                }
                Err(e) => {
                    // Once per change, not once per poll.
                    warn!(error = %e, "TLS certificate changed but cannot be loaded; keeping the old one");
                    seen = now;
                }
            }
        }
    }
}

/// Which pool broker an SNI name asks for; `None` for names outside `domain`.
pub fn route_sni(server_name: &str, domain: &str) -> Option<Target> {
    let name = server_name.to_ascii_lowercase();
    let prefix = name.strip_suffix(domain)?.strip_suffix('.')?;
    if prefix == "bootstrap" {
        return Some(Target::Any);
    }
    let id = prefix.strip_prefix("broker-")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok().map(Target::Broker)
}

/// The SNI name clients use for pool broker `node_id`.
pub fn broker_host(node_id: i32, domain: &str) -> String {
    format!("broker-{node_id}.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_names_route_to_brokers() {
        let d = "kafka.example.com";
        assert!(matches!(route_sni("bootstrap.kafka.example.com", d), Some(Target::Any)));
        assert!(matches!(route_sni("BROKER-12.kafka.example.com", d), Some(Target::Broker(12))));
        for bad in ["broker-.kafka.example.com", "broker-x1.kafka.example.com", "broker-1.other.com", "kafka.example.com", "broker-1kafka.example.com", "broker-99999999999.kafka.example.com"] {
            assert!(route_sni(bad, d).is_none(), "{bad}");
        }
        assert_eq!(broker_host(3, d), "broker-3.kafka.example.com");
    }
}
