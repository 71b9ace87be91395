//! The broker pool as the gateway sees it: which brokers exist (discovered from the
//! pool's own Metadata), which API versions they speak, and how to reach them.
//!
//! Every connection is opened by `crate::upstream` (TLS and SASL as `[pool]` says);
//! the down-probes below only check that a broker accepts TCP connections.
//!
//! Broker addresses in here are the pool's and never leave the gateway. Discovery
//! only ever *replaces* the broker set after a successful answer, so a failed poll
//! never tears listeners down.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::VersionRange;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::kclient::{KafkaConn, KafkaError};
use crate::upstream::{Upstream, UpstreamError, UpstreamStream};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolBroker {
    pub node_id: i32,
    /// host:port of the broker's client listener (pool-internal).
    pub addr: String,
    pub rack: Option<String>,
}

pub type BrokerSet = BTreeMap<i32, PoolBroker>;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no pool broker reachable (tried {tried})")]
    NoBrokerReachable { tried: String },
    #[error("pool broker {node_id} is not known")]
    UnknownBroker { node_id: i32 },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("control request to {addr} failed: {reason}")]
    Control { addr: String, reason: String },
}

pub struct Pool {
    bootstrap: Vec<String>,
    connect_timeout: Duration,
    upstream: Upstream,
    brokers: watch::Sender<BrokerSet>,
    /// Brokers the pool still lists but that refuse connections (killed, not yet
    /// fenced). Their listeners close so clients get "connection refused", exactly as
    /// when dialling a dead broker directly; some clients (franz-go) treat an accepted
    /// connection that closes at once as a TLS/SASL misconfiguration and stop.
    down: watch::Sender<BTreeSet<i32>>,
    /// The pool's API version ranges, learnt by discovery; used for the gateway's own
    /// ApiVersions answers (KIP-511) and for the intersection.
    versions: RwLock<HashMap<i16, VersionRange>>,
    /// Round-robin cursor for bootstrap connections.
    next: AtomicUsize,
}

impl Pool {
    pub fn new(bootstrap: Vec<String>, connect_timeout: Duration, upstream: Upstream) -> Arc<Self> {
        Arc::new(Self {
            bootstrap,
            connect_timeout,
            upstream,
            brokers: watch::Sender::new(BrokerSet::new()),
            down: watch::Sender::new(BTreeSet::new()),
            versions: RwLock::new(HashMap::new()),
            next: AtomicUsize::new(0),
        })
    }

    /// How pool connections are opened; its `auth_failure` feeds `/ready`.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    pub fn subscribe(&self) -> watch::Receiver<BrokerSet> {
        self.brokers.subscribe()
    }

    pub fn subscribe_down(&self) -> watch::Receiver<BTreeSet<i32>> {
        self.down.subscribe()
    }

    /// Checks whether broker `node_id` still accepts connections; if not, marks it down
    /// until a probe reaches it again. Returns whether it is down.
    pub async fn confirm_down(&self, node_id: i32) -> bool {
        let Some(addr) = self.brokers.borrow().get(&node_id).map(|b| b.addr.clone()) else {
            return false;
        };
        let probe = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(&addr)).await;
        let down = !matches!(probe, Ok(Ok(_)));
        if down {
            self.down.send_if_modified(|set| {
                let added = set.insert(node_id);
                if added {
                    warn!(node_id, %addr, "pool broker refuses connections: closing its listener until it is back");
                }
                added
            });
        }
        down
    }

    /// Re-probes brokers marked down and clears those that accept connections again.
    pub async fn run_down_probe(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let down: Vec<i32> = self.down.borrow().iter().copied().collect();
            for node_id in down {
                let addr = self.brokers.borrow().get(&node_id).map(|b| b.addr.clone());
                let back = match addr {
                    // Gone from the pool's metadata: nothing to probe, discovery owns it now.
                    None => true,
                    Some(addr) => matches!(
                        tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(&addr)).await,
                        Ok(Ok(_))
                    ),
                };
                if back {
                    info!(node_id, "pool broker reachable again");
                    self.down.send_modify(|set| {
                        set.remove(&node_id);
                    });
                }
            }
        }
    }

    pub fn brokers(&self) -> BrokerSet {
        self.brokers.borrow().clone()
    }

    pub fn pool_versions(&self) -> HashMap<i16, VersionRange> {
        self.versions.read().map(|v| v.clone()).unwrap_or_default()
    }

    fn remember_versions(&self, resp: &ApiVersionsResponse) {
        if resp.error_code != 0 {
            return;
        }
        let map = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, VersionRange { min: k.min_version, max: k.max_version }))
            .collect();
        if let Ok(mut v) = self.versions.write() {
            *v = map;
        }
    }

    /// Adds brokers seen in a client's Metadata answer that discovery has not reported
    /// yet, so their listeners open before the client tries them.
    pub fn observe(&self, seen: impl IntoIterator<Item = PoolBroker>) {
        self.brokers.send_if_modified(|set| {
            let mut changed = false;
            for b in seen {
                if let std::collections::btree_map::Entry::Vacant(slot) = set.entry(b.node_id) {
                    info!(node_id = b.node_id, "pool broker seen in a client's metadata");
                    slot.insert(b);
                    changed = true;
                }
            }
            changed
        });
    }

    async fn connect_addr(&self, addr: &str) -> Result<UpstreamStream, PoolError> {
        Ok(self.upstream.connect(addr, self.connect_timeout).await?)
    }

    /// Connects to pool broker `node_id`.
    pub async fn connect(&self, node_id: i32) -> Result<UpstreamStream, PoolError> {
        let addr = self
            .brokers
            .borrow()
            .get(&node_id)
            .map(|b| b.addr.clone())
            .ok_or(PoolError::UnknownBroker { node_id })?;
        self.connect_addr(&addr).await
    }

    /// Connects to any live broker, round-robin, falling back to the configured
    /// bootstrap addresses. Returns the node id when known.
    pub async fn connect_any(&self) -> Result<(UpstreamStream, Option<i32>), PoolError> {
        let down = self.down.borrow().clone();
        let mut candidates: Vec<(Option<i32>, String)> = self
            .brokers
            .borrow()
            .values()
            .filter(|b| !down.contains(&b.node_id))
            .map(|b| (Some(b.node_id), b.addr.clone()))
            .collect();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        if !candidates.is_empty() {
            let len = candidates.len();
            candidates.rotate_left(start % len);
        }
        for addr in &self.bootstrap {
            if !candidates.iter().any(|(_, a)| a == addr) {
                candidates.push((None, addr.clone()));
            }
        }
        let mut tried = Vec::new();
        for (node, addr) in candidates {
            match self.connect_addr(&addr).await {
                Ok(s) => return Ok((s, node)),
                // Refused credentials are the same on every broker: report them as they are.
                Err(PoolError::Upstream(e)) if e.is_authentication() => return Err(e.into()),
                Err(e) => {
                    debug!(%addr, error = %e, "pool broker not reachable, trying the next");
                    tried.push(addr);
                }
            }
        }
        Err(PoolError::NoBrokerReachable { tried: tried.join(", ") })
    }

    /// Polls the pool's Metadata until cancelled and publishes the broker set.
    pub async fn run_discovery(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        let mut control: Option<ControlConnection> = None;
        let mut failures = 0u32;
        loop {
            let result = match control.as_mut() {
                Some(c) => c.metadata().await,
                None => match self.connect_any().await {
                    Ok((stream, _)) => {
                        let mut c = ControlConnection::new(stream);
                        match c.api_versions().await {
                            Ok(v) => {
                                self.remember_versions(&v);
                                let r = c.metadata().await;
                                control = Some(c);
                                r
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(brokers) => {
                    if failures > 0 {
                        info!("pool metadata reachable again");
                    }
                    failures = 0;
                    self.brokers.send_if_modified(|set| {
                        if *set != brokers {
                            info!(brokers = ?brokers.keys().collect::<Vec<_>>(), "pool brokers changed");
                            *set = brokers;
                            true
                        } else {
                            false
                        }
                    });
                }
                Err(e) => {
                    control = None;
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(20) {
                        warn!(error = %e, failures, "pool metadata poll failed");
                    }
                }
            }
            // Retry fast while the pool is unreachable, settle to the configured pace after.
            let wait = if failures > 0 { every.min(Duration::from_millis(500)) } else { every };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Discovery's control connection: one request at a time over the shared client.
struct ControlConnection(KafkaConn);

impl ControlConnection {
    fn new(stream: UpstreamStream) -> Self {
        Self(KafkaConn::new(stream, "sluice-discovery", Duration::from_secs(10)))
    }

    async fn api_versions(&mut self) -> Result<ApiVersionsResponse, PoolError> {
        self.0.api_versions().await.map_err(|e| self.fail(e))
    }

    fn fail(&self, e: KafkaError) -> PoolError {
        PoolError::Control { addr: self.0.addr().to_owned(), reason: e.to_string() }
    }

    async fn metadata(&mut self) -> Result<BrokerSet, PoolError> {
        // An empty topic list asks for brokers only.
        let resp = self.0.metadata(&[]).await.map_err(|e| self.fail(e))?;
        Ok(resp
            .brokers
            .into_iter()
            .map(|b| {
                let node_id = b.node_id.0;
                (node_id, PoolBroker { node_id, addr: format!("{}:{}", b.host.as_str(), b.port), rack: b.rack.map(|r| r.to_string()) })
            })
            .collect())
    }
}
