//! How the gateway reaches pool brokers: every upstream connection, proxied for a client
//! (`pool.rs`, `connection.rs`) or the gateway's own (`kclient.rs`: discovery, tenant
//! store, journals, inventory, placement), is opened by [`Upstream::connect`].
//!
//! `[pool] security` picks Kafka's security protocol: `plaintext` (default), `ssl`
//! (TLS, optionally with a client certificate: mTLS), `sasl_plaintext` or `sasl_ssl`
//! (SCRAM-SHA-256/512, `scram.rs`). TLS and the SASL exchange complete inside
//! `connect`, so a connection is handed out only once it is authenticated, and
//! nothing a client sent can reach the pool before that.
//!
//! The plaintext path stays a bare `TcpStream` split into tokio's owned halves (the
//! enums below add one branch per poll, no allocation, no copy). TLS streams are split
//! with `tokio::io::split`.
//!
//! Kafka's re-authentication (KIP-368, `connections.max.reauth.ms`) is not done: it is
//! off by default on brokers. A pool that sets it closes a connection when its session
//! lifetime ends; the gateway logs the lifetime when the pool announces one.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tracing::{info, warn};

use crate::scram::{ScramClient, ScramError, ScramMechanism};

const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSION: i16 = 2;
/// Largest SASL answer accepted (they are a few hundred bytes).
const MAX_SASL_FRAME: usize = 64 * 1024;
const CLIENT_ID: &str = "sluice-upstream";

// ------------------------------------------------------------------ settings ---

/// `[pool] security`: Kafka's `security.protocol` for the gateway's pool connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    #[serde(alias = "PLAINTEXT")]
    Plaintext,
    #[serde(alias = "SSL")]
    Ssl,
    #[serde(alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(alias = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
    fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
}

/// `[pool.tls]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolTlsSettings {
    /// PEM file of the CA certificates that sign the pool brokers' certificates; without
    /// it the system's trust store is used.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) and its key, for pools that require client
    /// certificates (mTLS). Both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// `[pool.sasl]`
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSaslSettings {
    /// `SCRAM-SHA-512` (default) or `SCRAM-SHA-256`.
    #[serde(default = "default_mechanism")]
    pub mechanism: String,
    /// The user, or a file holding it (e.g. a mounted Secret); one of the two.
    #[serde(default)]
    pub username: String,
    pub username_file: Option<PathBuf>,
    /// Exactly one of these three gives the password.
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

impl std::fmt::Debug for PoolSaslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSaslSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("username_file", &self.username_file)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .finish()
    }
}

fn default_mechanism() -> String {
    "SCRAM-SHA-512".into()
}

/// A configuration the gateway cannot use; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("pool security: {0}")]
pub struct SecurityConfigError(pub String);

// ---------------------------------------------------------------- connector ---

/// How to open a connection to a pool broker. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Upstream(Arc<Inner>);

struct Inner {
    protocol: SecurityProtocol,
    tls: Option<tokio_rustls::TlsConnector>,
    sasl: Option<Credentials>,
    /// The latest refusal of our credentials by the pool (cleared by the next success),
    /// for `/ready`.
    auth_failure: Mutex<Option<String>>,
    /// Whether the pool's session lifetime was logged already.
    lifetime_logged: std::sync::atomic::AtomicBool,
}

struct Credentials {
    mechanism: ScramMechanism,
    username: String,
    password: Vec<u8>,
    /// PBKDF2 of the password for the pool's salt, so only the first connection pays it.
    salted: Mutex<Option<crate::scram::SaltedPassword>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("security", &self.0.protocol)
            .field("mechanism", &self.0.sasl.as_ref().map(|c| c.mechanism.name()))
            .field("username", &self.0.sasl.as_ref().map(|c| c.username.as_str()))
            .finish_non_exhaustive()
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Self::plaintext()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connecting to pool broker {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("connecting to pool broker {addr} timed out")]
    ConnectTimeout { addr: String },
    #[error("TLS handshake with pool broker {addr} failed: {source}")]
    Tls { addr: String, source: io::Error },
    #[error("{stage} with pool broker {addr} timed out after {timeout:?}")]
    HandshakeTimeout { addr: String, stage: &'static str, timeout: Duration },
    #[error("pool broker {addr} refused the gateway's {mechanism} credentials for user {username:?}: {reason}")]
    Authentication { addr: String, mechanism: &'static str, username: String, reason: String },
    #[error("SASL with pool broker {addr}: {reason}")]
    Sasl { addr: String, reason: String },
}

impl UpstreamError {
    /// The pool refused the gateway's credentials (as opposed to being unreachable).
    pub fn is_authentication(&self) -> bool {
        matches!(self, Self::Authentication { .. })
    }
}

fn read_pem_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, SecurityConfigError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| SecurityConfigError(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(SecurityConfigError(format!("{what} {} holds no certificate", path.display())));
    }
    Ok(certs)
}

fn read_password(s: &PoolSaslSettings) -> Result<Vec<u8>, SecurityConfigError> {
    let err = |m: String| Err(SecurityConfigError(m));
    let given = [s.password.is_some(), s.password_file.is_some(), s.password_env.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return err("pool.sasl needs exactly one of password, password_file, password_env".into());
    }
    let pw = if let Some(p) = &s.password {
        p.clone()
    } else if let Some(path) = &s.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecurityConfigError(format!("pool.sasl.password_file {}: {e}", path.display())))?;
        // Files written by editors and `echo` end in a newline that is not the password's.
        text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned()
    } else if let Some(var) = &s.password_env {
        match std::env::var(var) {
            Ok(v) => v,
            Err(_) => return err(format!("pool.sasl.password_env: environment variable {var} is not set (or not UTF-8)")),
        }
    } else {
        String::new()
    };
    if pw.is_empty() {
        return err("pool.sasl: the password is empty".into());
    }
    Ok(pw.into_bytes())
}

impl Upstream {
    pub fn plaintext() -> Self {
        Self(Arc::new(Inner {
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
            auth_failure: Mutex::new(None),
            lifetime_logged: Default::default(),
        }))
    }

    /// Checks the `[pool]` security settings and loads what they name (CA, client
    /// certificate, password), so a bad file fails at start and in `check-config`.
    pub fn from_settings(
        protocol: SecurityProtocol,
        tls: Option<&PoolTlsSettings>,
        sasl: Option<&PoolSaslSettings>,
    ) -> Result<Self, SecurityConfigError> {
        let err = |m: String| Err(SecurityConfigError(m));
        let name = protocol.name();
        if tls.is_some() && !protocol.tls() {
            return err(format!("[pool.tls] is set but pool.security = \"{name}\" (use \"ssl\" or \"sasl_ssl\")"));
        }
        if sasl.is_some() && !protocol.sasl() {
            return err(format!("[pool.sasl] is set but pool.security = \"{name}\" (use \"sasl_ssl\" or \"sasl_plaintext\")"));
        }
        let tls = if protocol.tls() { Some(tls_connector(tls.cloned().unwrap_or_default())?) } else { None };
        let sasl = match (protocol.sasl(), sasl) {
            (false, _) => None,
            (true, None) => return err(format!("pool.security = \"{name}\" needs a [pool.sasl] section")),
            (true, Some(s)) => {
                let Some(mechanism) = ScramMechanism::parse(&s.mechanism) else {
                    return err(format!("pool.sasl.mechanism {:?} is not SCRAM-SHA-256 or SCRAM-SHA-512", s.mechanism));
                };
                let username = match (&s.username_file, s.username.is_empty()) {
                    (None, false) => s.username.clone(),
                    (Some(path), true) => std::fs::read_to_string(path)
                        .map_err(|e| SecurityConfigError(format!("pool.sasl.username_file {}: {e}", path.display())))?
                        .trim()
                        .to_owned(),
                    (Some(_), false) => return err("pool.sasl: username and username_file are exclusive".into()),
                    (None, true) => return err("pool.sasl needs username (or username_file)".into()),
                };
                if username.is_empty() {
                    return err("pool.sasl: the username is empty".into());
                }
                Some(Credentials {
                    mechanism,
                    username,
                    password: read_password(s)?,
                    salted: Mutex::new(None),
                })
            }
        };
        Ok(Self(Arc::new(Inner {
            protocol,
            tls,
            sasl,
            auth_failure: Mutex::new(None),
            lifetime_logged: Default::default(),
        })))
    }

    pub fn protocol(&self) -> SecurityProtocol {
        self.0.protocol
    }

    /// The pool's latest refusal of the gateway's credentials, while no connection has
    /// authenticated since.
    pub fn auth_failure(&self) -> Option<String> {
        self.0.auth_failure.lock().ok().and_then(|f| f.clone())
    }

    fn note_auth(&self, failure: Option<&UpstreamError>) {
        if let Ok(mut slot) = self.0.auth_failure.lock() {
            let was = slot.is_some();
            *slot = failure.map(|e| e.to_string());
            if was && failure.is_none() {
                info!("the pool accepts the gateway's credentials again");
            }
        }
    }

    /// Opens a connection to `addr` (`host:port`): TCP within `timeout`, then the TLS
    /// handshake and SASL exchange within `timeout` again. The stream is ready for
    /// Kafka requests.
    pub async fn connect(&self, addr: &str, timeout: Duration) -> Result<UpstreamStream, UpstreamError> {
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(UpstreamError::ConnectTimeout { addr: addr.to_owned() }),
            Ok(Err(source)) => return Err(UpstreamError::Connect { addr: addr.to_owned(), source }),
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        if self.0.protocol == SecurityProtocol::Plaintext {
            return Ok(UpstreamStream::Plain(tcp));
        }
        let stage = if self.0.tls.is_some() { "TLS handshake" } else { "SASL authentication" };
        match tokio::time::timeout(timeout, self.secure(tcp, addr)).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::HandshakeTimeout { addr: addr.to_owned(), stage, timeout }),
        }
    }

    async fn secure(&self, tcp: TcpStream, addr: &str) -> Result<UpstreamStream, UpstreamError> {
        let mut stream = match &self.0.tls {
            None => UpstreamStream::Plain(tcp),
            Some(connector) => {
                let host = host_of(addr);
                let name = ServerName::try_from(host.to_owned()).map_err(|e| UpstreamError::Tls {
                    addr: addr.to_owned(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?} is not a valid TLS server name: {e}")),
                })?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|source| UpstreamError::Tls { addr: addr.to_owned(), source })?;
                UpstreamStream::Tls(Box::new(tls))
            }
        };
        if let Some(creds) = &self.0.sasl {
            let result = self.authenticate(&mut stream, creds, addr).await;
            match &result {
                Ok(()) => self.note_auth(None),
                Err(e) if e.is_authentication() => {
                    warn!(error = %e, "pool authentication failed");
                    self.note_auth(Some(e));
                }
                Err(_) => {}
            }
            result?;
        }
        Ok(stream)
    }

    /// SaslHandshake v1, then the SCRAM exchange in SaslAuthenticate v2 (KIP-152).
    async fn authenticate(&self, stream: &mut UpstreamStream, creds: &Credentials, addr: &str) -> Result<(), UpstreamError> {
        let mechanism = creds.mechanism.name();
        let sasl = |reason: String| UpstreamError::Sasl { addr: addr.to_owned(), reason };
        let refused = |reason: String| UpstreamError::Authentication {
            addr: addr.to_owned(),
            mechanism,
            username: creds.username.clone(),
            reason,
        };
        let hs: SaslHandshakeResponse = call(
            stream,
            ApiKey::SaslHandshake,
            SASL_HANDSHAKE_VERSION,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        )
        .await
        .map_err(|e| sasl(format!("SaslHandshake: {e}")))?;
        if hs.error_code != 0 {
            let offered: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(sasl(format!(
                "the listener does not offer {mechanism} (error {}; it offers {offered:?}); is pool.security right for this port?",
                hs.error_code
            )));
        }
        let client = ScramClient::new(creds.mechanism, &creds.username, crate::scram::random_nonce());
        let first = self.sasl_step(stream, 2, client.client_first().into_bytes(), &sasl, &refused).await?;
        let server_first = String::from_utf8(first.auth_bytes.to_vec()).map_err(|_| sasl("server-first message is not UTF-8".into()))?;
        let mut cache = creds.salted.lock().ok().and_then(|c| c.clone());
        let (client_final, check) = client.client_final(&server_first, &creds.password, &mut cache).map_err(|e| scram_error(e, &sasl, &refused))?;
        if let (Ok(mut slot), Some(c)) = (creds.salted.lock(), cache) {
            *slot = Some(c);
        }
        let last = self.sasl_step(stream, 3, client_final.into_bytes(), &sasl, &refused).await?;
        let server_final = String::from_utf8(last.auth_bytes.to_vec()).map_err(|_| sasl("server-final message is not UTF-8".into()))?;
        check.verify(&server_final).map_err(|e| scram_error(e, &sasl, &refused))?;
        if last.session_lifetime_ms > 0 && !self.0.lifetime_logged.swap(true, std::sync::atomic::Ordering::Relaxed) {
            warn!(
                session_lifetime_ms = last.session_lifetime_ms,
                "the pool sets connections.max.reauth.ms: it closes each gateway connection when its session \
                 ends (the gateway does not re-authenticate); clients reconnect"
            );
        }
        Ok(())
    }

    async fn sasl_step(
        &self,
        stream: &mut UpstreamStream,
        correlation_id: i32,
        payload: Vec<u8>,
        sasl: &impl Fn(String) -> UpstreamError,
        refused: &impl Fn(String) -> UpstreamError,
    ) -> Result<SaslAuthenticateResponse, UpstreamError> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(payload.into());
        let resp: SaslAuthenticateResponse =
            call(stream, ApiKey::SaslAuthenticate, SASL_AUTHENTICATE_VERSION, correlation_id, &req)
                .await
                .map_err(|e| sasl(format!("SaslAuthenticate: {e}")))?;
        if resp.error_code != 0 {
            let message = resp.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
            // 58 SASL_AUTHENTICATION_FAILED: wrong user or password. Anything else is a
            // protocol problem, reported as such.
            return Err(if resp.error_code == 58 {
                refused(message)
            } else {
                sasl(format!("SaslAuthenticate error {}: {message}", resp.error_code))
            });
        }
        Ok(resp)
    }
}

fn scram_error(e: ScramError, sasl: &impl Fn(String) -> UpstreamError, refused: &impl Fn(String) -> UpstreamError) -> UpstreamError {
    match e {
        ScramError::ServerError(_) => refused(e.to_string()),
        _ => sasl(e.to_string()),
    }
}

/// The host of `host:port` (IPv6 literals in brackets).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

fn tls_connector(s: PoolTlsSettings) -> Result<tokio_rustls::TlsConnector, SecurityConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    match &s.ca_file {
        Some(path) => {
            for cert in read_pem_certs(path, "pool.tls.ca_file")? {
                roots
                    .add(cert)
                    .map_err(|e| SecurityConfigError(format!("pool.tls.ca_file {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // Unparseable system certificates are skipped, as every TLS client does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(SecurityConfigError(
                    "pool.tls.ca_file is not set and the system trust store is empty: name the pool's CA file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SecurityConfigError(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match (&s.cert_file, &s.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_pem_certs(cert, "pool.tls.cert_file")?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| SecurityConfigError(format!("pool.tls.key_file {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                SecurityConfigError(format!(
                    "pool.tls.cert_file {} / key_file {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
        _ => return Err(SecurityConfigError("pool.tls.cert_file and pool.tls.key_file go together (mTLS)".into())),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One request and its answer on a connection nobody else uses yet (the handshake).
/// Reads exactly one frame, so nothing after it is consumed.
async fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut UpstreamStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &Req,
) -> Result<Resp, String> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(&mut buf, api.request_header_version(version))
        .map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let len = i32::try_from(buf.len() - 4).map_err(|_| "request too large".to_owned())?;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&buf).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => "the broker closed the connection".to_owned(),
        _ => e.to_string(),
    })?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len).ok().filter(|l| *l <= MAX_SASL_FRAME).ok_or(format!("answer length {len}"))?;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.map_err(|e| e.to_string())?;
    let (corr, body_at) = crate::protocol::parse_response_header(&payload, api, version).map_err(|e| e.to_string())?;
    if corr != correlation_id {
        return Err(format!("correlation id {corr}, expected {correlation_id}"));
    }
    let mut body = bytes::Bytes::from(payload).slice(body_at..);
    Resp::decode(&mut body, version).map_err(|e| e.to_string())
}

// ------------------------------------------------------------------- streams ---

/// A connection to a pool broker: bare TCP, or TLS over TCP.
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The read half of an [`UpstreamStream`].
pub enum UpstreamRead {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The write half of an [`UpstreamStream`].
pub enum UpstreamWrite {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl UpstreamStream {
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Plain(s) => s.peer_addr(),
            Self::Tls(s) => s.get_ref().0.peer_addr(),
        }
    }

    /// Read and write halves that can live in different tasks.
    pub fn into_split(self) -> (UpstreamRead, UpstreamWrite) {
        match self {
            Self::Plain(s) => {
                let (r, w) = s.into_split();
                (UpstreamRead::Plain(r), UpstreamWrite::Plain(w))
            }
            Self::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (UpstreamRead::Tls(r), UpstreamWrite::Tls(w))
            }
        }
    }
}

macro_rules! delegate_read {
    ($ty:ty) => {
        impl AsyncRead for $ty {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }
    };
}

macro_rules! delegate_write {
    ($ty:ty) => {
        impl AsyncWrite for $ty {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
                }
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                    Self::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                }
            }
            fn is_write_vectored(&self) -> bool {
                match self {
                    Self::Plain(s) => s.is_write_vectored(),
                    Self::Tls(s) => s.is_write_vectored(),
                }
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_flush(cx),
                    Self::Tls(s) => Pin::new(s).poll_flush(cx),
                }
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

delegate_read!(UpstreamStream);
delegate_read!(UpstreamRead);
delegate_write!(UpstreamStream);
delegate_write!(UpstreamWrite);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let sasl = PoolSaslSettings {
            mechanism: "SCRAM-SHA-512".into(),
            username: "sluice".into(),
            password: Some("pw".into()),
            ..Default::default()
        };
        let up = Upstream::from_settings(SecurityProtocol::SaslPlaintext, None, Some(&sasl)).unwrap();
        assert_eq!(up.protocol(), SecurityProtocol::SaslPlaintext);
        assert!(!format!("{up:?}").contains("pw\""), "{up:?}");
        assert!(!format!("{sasl:?}").contains("\"pw\""), "{sasl:?}");
        let e = |r: Result<Upstream, SecurityConfigError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e(Upstream::from_settings(SecurityProtocol::Plaintext, None, Some(&sasl))).contains("[pool.sasl]"));
        assert!(e(Upstream::from_settings(SecurityProtocol::SaslSsl, None, None)).contains("[pool.sasl]"));
        let two = PoolSaslSettings { password_env: Some("X".into()), ..sasl.clone() };
        assert!(e(Upstream::from_settings(SecurityProtocol::SaslPlaintext, None, Some(&two))).contains("exactly one"));
        let md5 = PoolSaslSettings { mechanism: "SCRAM-MD5".into(), ..sasl.clone() };
        assert!(e(Upstream::from_settings(SecurityProtocol::SaslPlaintext, None, Some(&md5))).contains("SCRAM-MD5"));
        let missing = PoolSaslSettings { password: None, password_env: Some("SLUICE_TEST_SURELY_UNSET_VAR".into()), ..sasl.clone() };
        assert!(e(Upstream::from_settings(SecurityProtocol::SaslPlaintext, None, Some(&missing))).contains("SLUICE_TEST_SURELY_UNSET_VAR"));
        let tls = PoolTlsSettings { ca_file: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        assert!(e(Upstream::from_settings(SecurityProtocol::Ssl, Some(&tls), None)).contains("/nonexistent/ca.pem"));
        assert!(e(Upstream::from_settings(SecurityProtocol::Plaintext, Some(&tls), None)).contains("[pool.tls]"));
        let nouser = PoolSaslSettings { username: String::new(), ..sasl.clone() };
        assert!(e(Upstream::from_settings(SecurityProtocol::SaslPlaintext, None, Some(&nouser))).contains("username"));
        let both = PoolSaslSettings { username_file: Some("/u".into()), ..sasl.clone() };
        assert!(e(Upstream::from_settings(SecurityProtocol::SaslPlaintext, None, Some(&both))).contains("exclusive"));
        let half = PoolTlsSettings { cert_file: Some("/c.pem".into()), ..Default::default() };
        assert!(e(Upstream::from_settings(SecurityProtocol::Ssl, Some(&half), None)).contains("go together"));
    }

    #[test]
    fn password_file_drops_the_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("sluice-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let s = PoolSaslSettings { username: "u".into(), password_file: Some(path.clone()), ..Default::default() };
        assert_eq!(read_password(&s).unwrap(), b"s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_password(&s).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("broker-1.kafka.example.com:9093"), "broker-1.kafka.example.com");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }
}
