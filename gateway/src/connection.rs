//! One client connection and the one upstream connection it maps to.
//!
//! Protocol facts this module relies on:
//! - Clients pipeline requests, and Kafka answers them in order per connection. The
//!   gateway keeps that order with one FIFO of in-flight entries per connection: the
//!   reader pushes an entry *before* it forwards the request, the writer pops the head
//!   for every response (or answers a local entry itself) and checks correlation ids.
//! - Produce with acks=0 has no response, so it gets no entry.
//! - A full FIFO stops the reader (backpressure); nothing is dropped.
//! - Request frames are forwarded as the client's original bytes; responses are
//!   rewritten only where `api_table` says they carry broker addresses.
//! - When the broker side closes, the client connection is closed too, so the client
//!   refreshes its metadata instead of waiting on a dead broker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use crate::upstream::{UpstreamRead, UpstreamStream, UpstreamWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::api_table;
use crate::codec::{FrameError, FrameReader, ReadLimits};
use crate::protocol::{parse_request_header, parse_response_header, produce_acks, WireError};
use crate::rewrite::{rewrite_response, unsupported_api_versions, Advertised, Observed, RewriteError};
use crate::guard::Verdict;
use crate::sasl::{claimed_principal, refusal, Identity, Rejection, SaslSession, Step};
use crate::server::Shared;
use crate::tenant::{self, Admission, Ctx, MapError, Plan, Req, TenantView};

/// Which pool broker a client connection is for.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The bootstrap port: any live broker.
    Any,
    /// A per-broker port: exactly that broker.
    Broker(i32),
}

/// Responses come from the trusted pool: a fetch may legitimately be large, and a
/// JoinGroup may wait up to the rebalance timeout before it answers.
const UPSTREAM_LIMITS: ReadLimits = ReadLimits {
    max_frame: i32::MAX as usize,
    idle: Duration::from_secs(60 * 60),
    frame: Duration::from_secs(120),
    reserve_ahead: 64 * 1024 * 1024,
};

/// Client frames up to this size get their whole buffer at once; larger ones grow as
/// their bytes arrive.
const CLIENT_RESERVE_AHEAD: usize = 1024 * 1024;

/// Why a connection ended other than by a clean close.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("client framing: {0}")]
    ClientFrame(FrameError),
    #[error("upstream framing: {0}")]
    UpstreamFrame(FrameError),
    #[error("malformed request: {0}")]
    Malformed(#[from] WireError),
    #[error("unknown API key {api_key} (version {version}, correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, version: i16, correlation_id: i32 },
    #[error("{api:?} is not offered on this listener")]
    NotOffered { api: ApiKey },
    #[error("{api:?} v{version} is outside the supported range {min}..={max}")]
    UnsupportedVersion { api: ApiKey, version: i16, min: i16, max: i16 },
    #[error("pool broker closed the connection with {pending} request(s) outstanding")]
    UpstreamClosed { pending: usize },
    #[error("rewriting response: {0}")]
    Rewrite(#[from] RewriteError),
    #[error("upstream: {0}")]
    Pool(#[from] crate::pool::PoolError),
    #[error("client I/O: {0}")]
    ClientIo(std::io::Error),
    #[error("upstream I/O: {0}")]
    UpstreamIo(std::io::Error),
    #[error("closed by the gateway (broker gone or shutting down)")]
    Cancelled,
    #[error("SASL: {0}")]
    Sasl(String),
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    #[error("session expired without re-authentication")]
    SessionExpired,
    #[error("tenancy: {0}")]
    Tenancy(#[from] MapError),
    #[error("access revoked: {0}")]
    Revoked(String),
    #[error("tenant limit: {0}")]
    Limit(String),
}

impl ConnError {
    /// Misbehaving clients are worth a warning; everything else is routine.
    fn is_client_fault(&self) -> bool {
        matches!(
            self,
            ConnError::ClientFrame(
                FrameError::NegativeLength(_) | FrameError::TooLarge { .. } | FrameError::Slow(_)
            ) | ConnError::Malformed(_)
                | ConnError::UnknownApiKey { .. }
                | ConnError::NotOffered { .. }
                | ConnError::UnsupportedVersion { .. }
                | ConnError::Sasl(_)
                | ConnError::AuthenticationFailed(_)
                | ConnError::Tenancy(MapError::NotForTenants { .. })
                | ConnError::Limit(_)
        )
    }
}

/// One entry of the in-flight FIFO.
enum Pending {
    /// Forwarded; the broker's response is read, checked and maybe rewritten. On tenant
    /// connections `tenant` carries the mapping plan for the response.
    Upstream {
        correlation_id: i32,
        api: ApiKey,
        version: i16,
        tenant: Option<(Plan, SharedView)>,
        started: std::time::Instant,
        /// A control-plane call recorded in the audit log with its answer.
        audit: Option<Box<crate::audit::KafkaCall>>,
    },
    /// Answered by the gateway; queued so it keeps its place in the order.
    Local(Bytes),
    /// Answered by the gateway once its own I/O is done (a tenant-store write).
    Later(futures::future::BoxFuture<'static, Bytes>),
    /// Close once everything before it is written (failed authentication).
    Close(String),
}

/// A tenant connection's view, shared by its reader (authorize, map requests) and writer
/// (map responses, remember fetch sessions). Both run in one task and never hold the lock
/// across an await, so the lock is never contended.
type SharedView = Arc<std::sync::Mutex<TenantView>>;

/// What the reader keeps about the tenant of an authenticated connection.
struct TenantState {
    view: SharedView,
    principal: sluice_tenancy::Principal,
    /// The client id of the latest request: sub-quotas are resolved for it.
    client_id: String,
    /// Store changes (policies, tenant deletion) are applied before the next request.
    changes: tokio::sync::watch::Receiver<Arc<sluice_tenancy::store::TenantsSnapshot>>,
    /// The quota defaults' generation the limiters were resolved under (config reload).
    quota_generation: u64,
    /// This connection's place in the tenant's connection count, freed on drop.
    _slot: tenant::ConnectionSlot,
}

/// What a principal may do under its tenant's current document.
struct Access {
    grants: Arc<sluice_tenancy::policy::Grants>,
    quota: Arc<sluice_quota::TenantQuota>,
    stored: Arc<sluice_tenancy::store::StoredTenant>,
}

impl Access {
    /// Installs this access and the sub-quotas of `client_id` in `view`.
    fn install(self, view: &mut TenantView, principal: &sluice_tenancy::Principal, client_id: &str, shared: &Shared) {
        view.subs = tenant::client_quotas::subs_for(
            &self.stored.doc,
            &principal.subject,
            client_id,
            &shared.quotas,
            self.quota.config(),
        );
        view.tenant = Some((self.stored, shared.tenants.clone()));
        view.set_access(self.grants, self.quota);
    }
}

/// The grants and quotas of `principal` under the tenant's current policies and limits,
/// or why it may not connect at all (tenant deleted, unknown policy, invalid session
/// policy, no Connect).
fn access_for(
    principal: &sluice_tenancy::Principal,
    snapshot: &sluice_tenancy::store::TenantsSnapshot,
    quotas: &sluice_quota::Quotas,
) -> Result<Access, String> {
    use sluice_tenancy::policy::{Action, Grants, PolicyDocument};
    let stored = snapshot.get(&principal.tenant).ok_or_else(|| format!("tenant {} does not exist", principal.tenant))?;
    let docs = stored.doc.policies_for(&principal.subject, principal.policies.as_deref()).map_err(|e| e.to_string())?;
    let session = match &principal.session_policy {
        Some(v) => Some(PolicyDocument::from_value(v.clone()).map_err(|e| format!("sluice:session_policy: {e}"))?),
        None => None,
    };
    let grants = Grants::new(&principal.tenant, &docs, session.as_ref());
    if !grants.allows(Action::Connect, "") {
        return Err(format!(
            "principal {} is not allowed kafka-cluster:Connect on tenant {}",
            principal.subject, principal.tenant
        ));
    }
    let overrides = tenant::quota_overrides(&stored.doc.limits);
    let quota = quotas.tenant(principal.tenant.as_str(), &overrides);
    Ok(Access { grants: Arc::new(grants), quota, stored: stored.clone() })
}

/// Why an authenticated principal may not use this connection.
enum Refusal {
    /// Its access is gone or never was (a failed authentication for the guard's counts).
    Access(String),
    /// A tenant connection limit (not a failed authentication).
    Limit(String),
}

impl TenantState {
    /// The tenant state after authentication, or a refusal. Re-authentication (KIP-368)
    /// keeps the connection's slot and only rebuilds the access.
    fn authenticated(
        current: Option<TenantState>,
        shared: &Shared,
        principal: sluice_tenancy::Principal,
        client_id: &str,
    ) -> Result<Self, Refusal> {
        if let Some(mut state) = current {
            let snapshot = state.changes.borrow_and_update().clone();
            let access = access_for(&principal, &snapshot, &shared.quotas).map_err(Refusal::Access)?;
            access.install(&mut lock(&state.view), &principal, client_id, shared);
            state.principal = principal;
            state.client_id = client_id.to_owned();
            return Ok(state);
        }
        let mut changes = shared.tenants.subscribe();
        let quota_generation = shared.quotas.generation();
        let snapshot = changes.borrow_and_update().clone();
        let access = access_for(&principal, &snapshot, &shared.quotas).map_err(Refusal::Access)?;
        let tenant = principal.tenant.as_str();
        let quota = &access.quota;
        if let Err(wait) = quota.connect() {
            metrics::counter!("sluice_connections_refused_total", "tenant" => tenant.to_owned(), "limit" => "rate").increment(1);
            return Err(Refusal::Limit(format!(
                "tenant {tenant} opens more than {} connections per second; retry in {} ms",
                quota.config().connection_rate,
                wait.as_millis().max(1)
            )));
        }
        let own_rate =
            tenant::client_quotas::connection_sub(&access.stored.doc, &principal.subject, client_id, &shared.quotas, quota.config());
        if let Some(Err(wait)) = own_rate.map(|sub| sub.check(1)) {
            metrics::counter!("sluice_connections_refused_total", "tenant" => tenant.to_owned(), "limit" => "client_rate")
                .increment(1);
            return Err(Refusal::Limit(format!(
                "user {} with client id {client_id:?} is over its connection_creation_rate in tenant {tenant}; retry in {} ms",
                principal.subject,
                wait.as_millis().max(1)
            )));
        }
        let max = quota.config().max_connections;
        let Some(slot) = shared.connections.open(tenant, max) else {
            metrics::counter!("sluice_connections_refused_total", "tenant" => tenant.to_owned(), "limit" => "count").increment(1);
            return Err(Refusal::Limit(format!("tenant {tenant} already has {max} connections, its limit")));
        };
        let ns = sluice_tenancy::Namespace::new(principal.tenant.clone());
        let mut view = TenantView::new(ns, access.grants.clone(), access.quota.clone());
        access.install(&mut view, &principal, client_id, shared);
        let view = Arc::new(std::sync::Mutex::new(view));
        Ok(Self { view, principal, client_id: client_id.to_owned(), changes, quota_generation, _slot: slot })
    }

    /// Applies a store change (new grants, quotas and sub-quotas, or the reason the
    /// connection must close), and re-resolves the sub-quotas when the client id changed.
    fn refresh(&mut self, shared: &Shared, client_id: &[u8]) -> Result<(), String> {
        let changed = self.changes.has_changed().unwrap_or(false);
        let new_client = client_id != self.client_id.as_bytes();
        let generation = shared.quotas.generation();
        if !changed && !new_client && generation == self.quota_generation {
            return Ok(());
        }
        self.quota_generation = generation;
        if new_client {
            self.client_id = String::from_utf8_lossy(client_id).into_owned();
        }
        let snapshot = self.changes.borrow_and_update().clone();
        let access = access_for(&self.principal, &snapshot, &shared.quotas)?;
        access.install(&mut lock(&self.view), &self.principal, &self.client_id, shared);
        Ok(())
    }

    /// What this connection owes the quotas (or must wait out) before its next read.
    fn take_charge(&self) -> sluice_quota::Charge {
        std::mem::take(&mut lock(&self.view).charge)
    }
}

fn lock(view: &SharedView) -> std::sync::MutexGuard<'_, TenantView> {
    // A panic while mapping cannot leave the view half-written in a way that matters
    // more than dropping the connection would; keep serving with what is there.
    view.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const TOO_MANY_FAILURES: &str =
    "too many failed authentication attempts from this address or for this principal; retry in a minute";

/// Kafka's `connection.failed.authentication.delay.ms`: a failed client waits this long
/// for the close, which slows down password-guessing loops.
const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// Counts one open client connection for the drain; uncounted on drop.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.open_connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(shared.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Serves one accepted client connection (plain TCP or TLS) until it ends.
pub async fn serve<S>(
    client: S,
    peer: SocketAddr,
    target: Target,
    shared: Arc<Shared>,
    advertised: Arc<Advertised>,
    parent: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let _open = OpenConnection::new(&shared);
    let _source_slot = match shared.sources.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(refusal) => {
            metrics::counter!("sluice_connections_refused_total", "tenant" => "", "limit" => refusal.label()).increment(1);
            warn!(%peer, reason = %refusal, "closing client connection: source connection limit");
            // Closed after a short delay, which slows a reconnect loop down.
            tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
            return;
        }
    };
    let (upstream, node) = match target {
        Target::Broker(id) => (shared.pool.connect(id).await, Some(id)),
        Target::Any => match shared.pool.connect_any().await {
            Ok((s, node)) => (Ok(s), node),
            Err(e) => (Err(e), None),
        },
    };
    let upstream = match upstream {
        Ok(s) => s,
        Err(e) => {
            warn!(%peer, ?target, error = %e, "closing client connection: no upstream");
            if let Target::Broker(id) = target {
                shared.pool.confirm_down(id).await;
            }
            return;
        }
    };
    // Bind the connection's life to its broker's listener, so a departed broker takes
    // its connections with it.
    let cancel = node.and_then(|id| shared.broker_token(id)).unwrap_or(parent).child_token();
    match run(client, upstream, peer, node, &shared, &advertised, &cancel).await {
        Ok(()) => debug!(%peer, ?node, "connection closed by client"),
        Err(e) if e.is_client_fault() => warn!(%peer, ?node, error = %e, "closing client connection"),
        Err(e) => info!(%peer, ?node, error = %e, "connection closed"),
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    client: S,
    upstream: UpstreamStream,
    peer: SocketAddr,
    node: Option<i32>,
    shared: &Shared,
    advertised: &Advertised,
    cancel: &CancellationToken,
) -> Result<(), ConnError> {
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = upstream.into_split();
    let (tx, rx) = mpsc::channel(shared.limits().max_in_flight);
    let reader =
        client_to_pool(FrameReader::new(client_read), BufWriter::new(upstream_write), tx, shared, advertised, peer, node);
    let writer = pool_to_client(FrameReader::new(upstream_read), BufWriter::new(client_write), rx, shared, advertised);
    tokio::pin!(reader, writer);
    let mut reader_done = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Err(ConnError::Cancelled),
            // A clean client close lets the writer deliver what is still in flight.
            r = &mut reader, if !reader_done => { r?; reader_done = true; }
            w = &mut writer => {
                if let (Err(ConnError::UpstreamClosed { .. } | ConnError::UpstreamIo(_) | ConnError::UpstreamFrame(_)), Some(id)) = (&w, node) {
                    // The client socket is still open here: if the broker itself is gone,
                    // close its listener first, so the client's reconnect is refused
                    // rather than accepted and dropped.
                    shared.pool.confirm_down(id).await;
                }
                return w;
            }
        }
    }
}

async fn client_to_pool<R: AsyncRead + Unpin>(
    mut client: FrameReader<R>,
    mut upstream: BufWriter<UpstreamWrite>,
    pending: mpsc::Sender<Pending>,
    shared: &Shared,
    advertised: &Advertised,
    peer: SocketAddr,
    node: Option<i32>,
) -> Result<(), ConnError> {
    let limits = shared.limits();
    let mut first_request = true;
    let mut session: Option<SaslSession<sluice_tenancy::Principal>> = shared.sasl.as_ref().map(|_| SaslSession::default());
    // Who the latest SASL message claimed to be, for counting failures per principal.
    let mut claimed: Option<String> = None;
    // Set once a SASL client has authenticated: every later request goes through the
    // tenancy stage.
    let mut tenancy: Option<TenantState> = None;
    // The client id of the latest request with a header (a raw v0 SASL token has none):
    // what a new tenant connection's sub-quotas are resolved for.
    let mut client_id: Vec<u8> = Vec::new();
    loop {
        let authenticated = session.as_ref().is_none_or(|s| s.principal().is_some());
        let read_limits = ReadLimits {
            max_frame: limits.max_frame_bytes,
            idle: if first_request || !authenticated { limits.preauth_timeout } else { limits.idle_timeout },
            frame: limits.frame_timeout,
            reserve_ahead: CLIENT_RESERVE_AHEAD,
        };
        if !client.has_buffered_frame(limits.max_frame_bytes) {
            upstream.flush().await.map_err(ConnError::UpstreamIo)?;
        }
        if let Some(state) = tenancy.as_ref() {
            // Kafka's quota semantics (KIP-219): the crossing request went through and its
            // response carries the throttle time; nothing more is read from this client
            // until the wait has passed and the bytes are paid for.
            let charge = state.take_charge();
            if !charge.is_free() {
                upstream.flush().await.map_err(ConnError::UpstreamIo)?;
                charge.settle().await;
            }
        }
        // Draining (SIGTERM): read no new request; what is in flight is still answered,
        // then the writer closes the connection and the client reconnects elsewhere.
        let read = tokio::select! {
            biased;
            _ = shared.draining.cancelled(), if !client.has_buffered_frame(limits.max_frame_bytes) => None,
            r = client.read_frame(read_limits) => Some(r),
        };
        let Some(read) = read else {
            return upstream.flush().await.map_err(ConnError::UpstreamIo);
        };
        let Some(frame) = read.map_err(ConnError::ClientFrame)? else {
            return upstream.flush().await.map_err(ConnError::UpstreamIo);
        };
        // Latency is measured from here, the request read, to its response written.
        let started = std::time::Instant::now();
        first_request = false;
        let sasl = shared.sasl_now();
        if let (Some(sess), Some(settings)) = (session.as_mut(), sasl.as_deref()) {
            if sess.expects_raw_token() {
                claimed = claimed_principal(frame.payload());
                if shared.guard.check(peer.ip(), claimed.as_deref()) == Verdict::Refuse {
                    metrics::counter!("sluice_auth_refused_total").increment(1);
                    return Err(ConnError::AuthenticationFailed(TOO_MANY_FAILURES.into()));
                }
                match sess.on_raw_token(frame.payload(), settings).await {
                    Step::Authenticated(answer, principal) => {
                        let id = String::from_utf8_lossy(&client_id);
                        match TenantState::authenticated(tenancy.take(), shared, principal.clone(), &id) {
                            Ok(state) => tenancy = Some(state),
                            Err(Refusal::Access(reason)) => {
                                hold_failure(shared, peer, &Rejection { reason: reason.clone(), authentic: true }, claimed.as_deref()).await;
                                return Err(ConnError::AuthenticationFailed(reason));
                            }
                            Err(Refusal::Limit(reason)) => {
                                tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
                                return Err(ConnError::Limit(reason));
                            }
                        }
                        log_authenticated(peer, &principal, "raw v0");
                        send_pending(&pending, Pending::Local(answer)).await?;
                        continue;
                    }
                    // Raw (v0) failures have no error frame: the connection just closes.
                    Step::Fail(_, rejection) => {
                        hold_failure(shared, peer, &rejection, claimed.as_deref()).await;
                        return Err(ConnError::AuthenticationFailed(rejection.reason));
                    }
                    Step::Close(reason) => return Err(ConnError::Sasl(reason)),
                    Step::Forward | Step::Reply(_) => return Err(ConnError::Sasl("unexpected raw SASL step".into())),
                }
            }
        }
        let header = parse_request_header(frame.payload())?;
        let header_client_id = header.client_id(frame.payload()).unwrap_or_default();
        if header_client_id != client_id.as_slice() {
            client_id = header_client_id.to_vec();
        }
        let Some(api) = header.known_key() else {
            return Err(ConnError::UnknownApiKey {
                api_key: header.api_key,
                version: header.api_version,
                correlation_id: header.correlation_id,
            });
        };
        let entry = api_table::entry(api);
        if !api_table::offered(&entry) {
            return Err(ConnError::NotOffered { api });
        }
        let range = entry.versions();
        if api == ApiKey::ApiVersions && header.api_version > range.max {
            debug!(%peer, version = header.api_version, "ApiVersions newer than the gateway: answering v0 (KIP-511)");
            let answer = unsupported_api_versions(
                header.correlation_id,
                &shared.pool.pool_versions(),
                advertised.cluster_admin,
            );
            send_pending(&pending, Pending::Local(answer)).await?;
            continue;
        }
        if header.api_version < range.min || header.api_version > range.max {
            return Err(ConnError::UnsupportedVersion { api, version: header.api_version, min: range.min, max: range.max });
        }
        if let (Some(sess), Some(settings), Some(body_at)) = (session.as_mut(), sasl.as_deref(), header.body_offset) {
            // As a Kafka broker does (KIP-368): a lapsed session may still re-authenticate,
            // but any other use of it closes the connection.
            let reauth = matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
            if !reauth && sess.expires().is_some_and(|at| at <= tokio::time::Instant::now()) {
                return Err(ConnError::SessionExpired);
            }
            let body = frame.0.slice(4 + body_at..);
            if api == ApiKey::SaslAuthenticate {
                let request = SaslAuthenticateRequest::decode(&mut body.clone(), header.api_version).ok();
                if let Some(who) = request.and_then(|r| claimed_principal(&r.auth_bytes)) {
                    claimed = Some(who);
                }
                if shared.guard.check(peer.ip(), claimed.as_deref()) == Verdict::Refuse {
                    metrics::counter!("sluice_auth_refused_total").increment(1);
                    let answer = refusal(header.correlation_id, header.api_version, TOO_MANY_FAILURES);
                    send_pending(&pending, Pending::Local(answer)).await?;
                    send_pending(&pending, Pending::Close(TOO_MANY_FAILURES.into())).await?;
                    return upstream.flush().await.map_err(ConnError::UpstreamIo);
                }
            }
            match sess.on_request(&header, api, body, settings).await {
                Step::Forward => {}
                Step::Reply(answer) => {
                    send_pending(&pending, Pending::Local(answer)).await?;
                    continue;
                }
                Step::Authenticated(answer, principal) => {
                    let id = String::from_utf8_lossy(&client_id);
                    match TenantState::authenticated(tenancy.take(), shared, principal.clone(), &id) {
                        Ok(state) => tenancy = Some(state),
                        Err(refused) => {
                            let reason = match refused {
                                Refusal::Access(reason) => {
                                    let rejection = Rejection { reason, authentic: true };
                                    hold_failure(shared, peer, &rejection, claimed.as_deref()).await;
                                    rejection.reason
                                }
                                // Over a connection limit: answered, then closed after the
                                // short failed-authentication delay (SPEC 7).
                                Refusal::Limit(reason) => {
                                    warn!(%peer, reason, "closing client connection: tenant connection limit");
                                    reason
                                }
                            };
                            let answer = refusal(header.correlation_id, header.api_version, &reason);
                            send_pending(&pending, Pending::Local(answer)).await?;
                            send_pending(&pending, Pending::Close(reason)).await?;
                            return upstream.flush().await.map_err(ConnError::UpstreamIo);
                        }
                    }
                    log_authenticated(peer, &principal, "SaslAuthenticate");
                    send_pending(&pending, Pending::Local(answer)).await?;
                    continue;
                }
                Step::Fail(answer, rejection) => {
                    hold_failure(shared, peer, &rejection, claimed.as_deref()).await;
                    // Answer with the Kafka error, then let the writer close the connection.
                    send_pending(&pending, Pending::Local(answer)).await?;
                    send_pending(&pending, Pending::Close(rejection.reason)).await?;
                    return upstream.flush().await.map_err(ConnError::UpstreamIo);
                }
                Step::Close(reason) => return Err(ConnError::Sasl(reason)),
            }
        }
        if tenancy.is_none() && !api_table::forwardable(&entry, advertised.cluster_admin) {
            // Only a tenant connection may send it (and gets a refusal); before SASL
            // completes the session layer has already refused everything else.
            return Err(ConnError::NotOffered { api });
        }
        let expects_response = api != ApiKey::Produce || produce_acks(frame.payload(), &header)? != 0;
        if let (Some(state), Some(body_at)) = (tenancy.as_mut(), header.body_offset) {
            state.refresh(shared, &client_id).map_err(ConnError::Revoked)?;
            let req = Req { api, version: header.api_version, correlation_id: header.correlation_id };
            let body = frame.0.slice(4 + body_at..);
            let audit = crate::audit::KafkaCall::start(&shared.audit, api, header.api_version, &body, &state.principal, peer.ip());
            let (admission, out) = {
                let mut view = lock(&state.view);
                view.meters.bind_broker(node);
                view.meters.tenant.request(api);
                // Over the tenant's request rate or the user's/client's share of it: served,
                // then held (Kafka delays clients over a request quota the same way).
                let own = view.subs.requests.as_ref().map_or(Ok(()), |s| s.check(1));
                if let Err(wait) = own.and_then(|()| view.quota.request()) {
                    view.charge.merge(sluice_quota::Charge::mute(wait));
                }
                let mut ctx = Ctx { view: &mut view, ids: tenant::topic_ids() };
                let admission = tenant::admit(&mut ctx, req, &body)?;
                let out = match &admission {
                    Admission::Forward { body: new_body, .. } => {
                        let forwarded = new_body.clone().unwrap_or_else(|| body.clone());
                        let head = tenant::reframe_header(frame.payload(), &header, &view.ns, forwarded.len())
                            .ok_or(ConnError::Malformed(WireError::Malformed { what: "request header" }))?;
                        Some((head, forwarded))
                    }
                    _ => None,
                };
                (admission, out)
            };
            match (admission, out) {
                (Admission::Forward { plan, .. }, Some(out)) => {
                    if expects_response {
                        let entry = Pending::Upstream {
                            correlation_id: header.correlation_id,
                            api,
                            version: header.api_version,
                            tenant: Some((plan, state.view.clone())),
                            audit,
                            started,
                        };
                        send_pending(&pending, entry).await?;
                    }
                    // Header and body as one vectored write where the stream allows it.
                    let (head, forwarded) = out;
                    upstream.write_all_buf(&mut head.chain(forwarded)).await.map_err(ConnError::UpstreamIo)?;
                }
                (Admission::Answer(answer), _) if expects_response => {
                    lock(&state.view).meters.tenant.count_errors(api, header.api_version, &answer);
                    if let Some(call) = audit {
                        call.finish(&answer);
                    }
                    send_pending(&pending, Pending::Local(answer)).await?
                }
                (Admission::Later(answer), _) if expects_response => {
                    send_pending(&pending, Pending::Later(crate::audit::after(answer, audit))).await?
                }
                _ => {}
            }
            continue;
        }
        if expects_response {
            send_pending(
                &pending,
                Pending::Upstream {
                    correlation_id: header.correlation_id,
                    api,
                    version: header.api_version,
                    tenant: None,
                    audit: None,
                    started,
                },
            )
            .await?;
        }
        upstream.write_all(&frame.0).await.map_err(ConnError::UpstreamIo)?;
    }
}

/// Counts a failed authentication and holds the answer longer the more this source
/// (and, for tokens whose signature held, this principal) has failed.
async fn hold_failure(shared: &Shared, peer: SocketAddr, rejection: &Rejection, claimed: Option<&str>) {
    let tenant = crate::meters::known_tenant(&shared.tenants, claimed);
    crate::meters::auth_failure(tenant);
    let outcome = crate::audit::Outcome::kafka(crate::audit::SASL_AUTHENTICATION_FAILED, Some(&rejection.reason));
    crate::audit::auth_failed(&shared.audit, tenant, claimed, peer.ip(), "kafka", outcome);
    let principal = if rejection.authentic { claimed } else { None };
    tokio::time::sleep(shared.guard.failed(peer.ip(), principal)).await;
}

fn log_authenticated(peer: SocketAddr, principal: &sluice_tenancy::Principal, how: &str) {
    info!(%peer, tenant = principal.tenant(), subject = principal.subject(), how, "client authenticated");
}

async fn send_pending(pending: &mpsc::Sender<Pending>, entry: Pending) -> Result<(), ConnError> {
    // The receiver only goes away when the writer has failed; its error wins the select.
    pending.send(entry).await.map_err(|_| ConnError::Cancelled)
}

async fn pool_to_client<W: AsyncWrite + Unpin>(
    mut upstream: FrameReader<UpstreamRead>,
    mut client: BufWriter<W>,
    mut pending: mpsc::Receiver<Pending>,
    shared: &Shared,
    advertised: &Advertised,
) -> Result<(), ConnError> {
    while let Some(entry) = pending.recv().await {
        match entry {
            Pending::Local(bytes) => client.write_all(&bytes).await.map_err(ConnError::ClientIo)?,
            Pending::Later(answer) => {
                client.flush().await.map_err(ConnError::ClientIo)?;
                let bytes = answer.await;
                if bytes.is_empty() {
                    return Err(ConnError::Cancelled);
                }
                client.write_all(&bytes).await.map_err(ConnError::ClientIo)?;
            }
            Pending::Close(reason) => {
                client.flush().await.map_err(ConnError::ClientIo)?;
                tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
                return Err(ConnError::AuthenticationFailed(reason));
            }
            Pending::Upstream { correlation_id, api, version, tenant, started, audit } => {
                if !upstream.has_buffered_frame(UPSTREAM_LIMITS.max_frame) {
                    client.flush().await.map_err(ConnError::ClientIo)?;
                }
                let frame = upstream
                    .read_frame(UPSTREAM_LIMITS)
                    .await
                    .map_err(ConnError::UpstreamFrame)?
                    .ok_or(ConnError::UpstreamClosed { pending: pending.len() + 1 })?;
                let mut observed = Observed::default();
                let mut meters = None;
                let mapped = match tenant {
                    Some((plan, view)) => {
                        let (corr, body_at) = parse_response_header(frame.payload(), api, version)?;
                        if corr != correlation_id {
                            return Err(RewriteError::CorrelationMismatch { got: corr, expected: correlation_id }.into());
                        }
                        let body = frame.0.slice(4 + body_at..);
                        let mut view = lock(&view);
                        meters = Some(view.meters.tenant.clone());
                        let mut ctx = Ctx { view: &mut view, ids: tenant::topic_ids() };
                        let req = Req { api, version, correlation_id };
                        tenant::respond(&mut ctx, req, plan, body, advertised, &mut observed)?
                    }
                    None => None,
                };
                let out = match mapped {
                    Some(out) => out,
                    None => rewrite_response(frame, api, version, correlation_id, advertised, &mut observed)?,
                };
                if !observed.brokers.is_empty() {
                    shared.pool.observe(observed.brokers);
                }
                if let Some(m) = meters {
                    m.count_errors(api, version, &out);
                }
                if let Some(call) = audit {
                    call.finish(&out);
                }
                client.write_all(&out).await.map_err(ConnError::ClientIo)?;
                crate::meters::latency(api, started.elapsed());
            }
        }
        if pending.is_empty() {
            client.flush().await.map_err(ConnError::ClientIo)?;
        }
    }
    client.flush().await.map_err(ConnError::ClientIo)
}
