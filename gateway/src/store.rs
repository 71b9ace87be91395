//! The tenant store, kept in the pool itself: the compacted topic `__sluice_tenants`
//! (one partition), read from the start at launch and tailed forever after, with every
//! change published as a new immutable [`TenantsSnapshot`] on a watch channel.
//!
//! Writes go through the same log: a write is acknowledged only once this instance's
//! tailing reader has applied the record at the offset the broker gave it, by the same
//! rule every instance applies (`sluice_tenancy::store`), so an acknowledged write is
//! exactly what every gateway sees. Broker failures never end the tail: it logs,
//! reconnects to the partition's current leader and carries on from its next offset.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sluice_tenancy::store::{
    encode_record, record_key, Applied, DocError, StoredTenant, TenantDoc, TenantsSnapshot,
};
use sluice_tenancy::{TenantDirectory, TenantId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::StoreSettings;
use crate::kclient::{KafkaConn, KafkaError, PoolAccess};

/// The store's only partition.
const PARTITION: i32 = 0;
/// How long a long-poll Fetch waits on the broker for new records.
const TAIL_WAIT: Duration = Duration::from_millis(500);
const FETCH_MAX_BYTES: i32 = 8 * 1024 * 1024;
/// How long a write waits for its record to come back through the tail.
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Recent outcomes kept so a writer can tell whether the record at its offset won.
const OUTCOMES_KEPT: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tenant {tenant}: version conflict (expected {expected}, current {current})")]
    Conflict { tenant: TenantId, expected: String, current: u64 },
    #[error("tenant {tenant}: {source}")]
    Invalid { tenant: TenantId, source: DocError },
    #[error("tenant store topic {topic}: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("tenant store: the record at offset {offset} was not read back within {timeout:?}")]
    ReadBackTimeout { offset: i64, timeout: Duration },
    #[error("tenant store stopped")]
    Stopped,
    #[error("tenant seed file {path}: {reason}")]
    Seed { path: String, reason: String },
}

/// A handle to the running store; clones share it.
#[derive(Clone)]
pub struct TenantStore {
    inner: Arc<Inner>,
}

struct Inner {
    access: PoolAccess,
    topic: String,
    snapshot: watch::Sender<Arc<TenantsSnapshot>>,
    /// (offset, outcome) of recently read records; `None` for records that did not parse.
    outcomes: Mutex<VecDeque<(i64, Option<Applied>)>>,
    /// The connection writes use, to the partition leader; re-made after any error.
    producer: tokio::sync::Mutex<Option<KafkaConn>>,
    cancel: CancellationToken,
    /// When the tail last heard from the pool (epoch ms), for readiness.
    last_read_ms: std::sync::atomic::AtomicU64,
}

impl TenantStore {
    /// Creates the topic if it is missing, reads it to its high watermark, writes the
    /// seed file's tenants that are absent, and spawns the tail. Returns once the store
    /// holds everything that was in the topic at start.
    pub async fn start(
        access: PoolAccess,
        settings: &StoreSettings,
        cancel: CancellationToken,
    ) -> Result<TenantStore, StoreError> {
        let topic = settings.topic.clone();
        let kafka = |source| StoreError::Kafka { topic: topic.clone(), source };
        ensure_topic(&access, &topic).await.map_err(kafka)?;
        // A topic created a moment ago (by us or a concurrent instance) may not have a
        // leader that answers ListOffsets yet: retry the whole lookup for a while.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let (mut conn, earliest, end) = loop {
            let attempt = async {
                let mut conn = connect_leader_patiently(&access, &topic, Duration::from_secs(20)).await?;
                let earliest = conn.list_offset(&topic, PARTITION, -2).await?;
                let end = conn.list_offset(&topic, PARTITION, -1).await?;
                Ok::<_, KafkaError>((conn, earliest, end))
            };
            match attempt.await {
                Ok(found) => break found,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    debug!(%topic, error = %e, "tenant store not readable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(kafka(e)),
            }
        };
        let inner = Arc::new(Inner {
            access,
            topic: topic.clone(),
            snapshot: watch::Sender::new(Arc::new(TenantsSnapshot::new())),
            outcomes: Mutex::new(VecDeque::new()),
            last_read_ms: std::sync::atomic::AtomicU64::new(now_ms()),
            producer: tokio::sync::Mutex::new(None),
            cancel,
        });
        let mut next = earliest;
        while next < end {
            let fetched = conn.fetch(&topic, PARTITION, next, TAIL_WAIT, FETCH_MAX_BYTES).await.map_err(kafka)?;
            next = inner.apply(next, fetched.records);
        }
        info!(%topic, tenants = inner.snapshot.borrow().len(), records_to = end, "tenant store loaded");
        tokio::spawn(inner.clone().tail(Some(conn), next));
        let store = TenantStore { inner };
        if let Some(path) = &settings.seed_file {
            store.seed(path).await?;
        }
        Ok(store)
    }

    /// Writes the tenants of a seed file (a JSON array of tenant documents) that are
    /// absent; existing tenants are left as they are.
    async fn seed(&self, path: &Path) -> Result<(), StoreError> {
        let seed_err = |reason: String| StoreError::Seed { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| seed_err(e.to_string()))?;
        let docs: Vec<serde_json::Value> = parse_json(&text).map_err(seed_err)?;
        for (i, doc) in docs.into_iter().enumerate() {
            let doc = TenantDoc::parse_checked(&doc.to_string()).map_err(|e| seed_err(format!("[{i}]: {e}")))?;
            if self.snapshot().get(&doc.id).is_some() {
                continue;
            }
            match self.put(doc.clone(), Some(0)).await {
                Ok(version) => info!(tenant = %doc.id, version, "seeded tenant"),
                // Another instance seeded it at the same time.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The topic this store reads.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<TenantsSnapshot> {
        self.inner.snapshot.borrow().clone()
    }

    /// Every later snapshot, as it is published.
    pub fn subscribe(&self) -> watch::Receiver<Arc<TenantsSnapshot>> {
        self.inner.snapshot.subscribe()
    }

    /// The tenant as currently stored.
    pub fn get(&self, id: &TenantId) -> Option<Arc<StoredTenant>> {
        self.snapshot().get(id).cloned()
    }

    /// Stores `doc` as the tenant's next version; with `expected_version`, only if the
    /// current version is that (0 = the tenant must not exist). Returns the new version
    /// once the record has been read back and won.
    pub async fn put(&self, doc: TenantDoc, expected_version: Option<u64>) -> Result<u64, StoreError> {
        doc.validate().map_err(|source| StoreError::Invalid { tenant: doc.id.clone(), source })?;
        let current = self.get(&doc.id).map(|t| t.version).unwrap_or(0);
        self.check_expected(&doc.id, expected_version, current)?;
        let version = current + 1;
        let (key, value) = encode_record(&doc, version);
        let offset = self.produce(Bytes::from(key), Some(Bytes::from(value))).await?;
        match self.outcome_at(offset).await? {
            Some(Applied::Put { tenant, version: v }) if tenant == doc.id && v == version => Ok(version),
            _ => Err(StoreError::Conflict {
                tenant: doc.id.clone(),
                expected: expected_version.unwrap_or(current).to_string(),
                current: self.get(&doc.id).map(|t| t.version).unwrap_or(0),
            }),
        }
    }

    /// Deletes the tenant (a tombstone); with `expected_version`, only if the current
    /// version is that. Deleting an absent tenant succeeds unless a version is expected.
    pub async fn delete(&self, id: &TenantId, expected_version: Option<u64>) -> Result<(), StoreError> {
        let current = self.get(id).map(|t| t.version).unwrap_or(0);
        self.check_expected(id, expected_version, current)?;
        let offset = self.produce(Bytes::from(record_key(id)), None).await?;
        match self.outcome_at(offset).await? {
            Some(Applied::Deleted { tenant }) if &tenant == id => Ok(()),
            _ => Err(StoreError::Conflict { tenant: id.clone(), expected: "delete".into(), current }),
        }
    }

    /// How long ago the tail last heard from the pool: a store that is not caught up with
    /// its topic makes the gateway unready.
    pub fn tail_age(&self) -> Duration {
        let last = self.inner.last_read_ms.load(std::sync::atomic::Ordering::Relaxed);
        Duration::from_millis(now_ms().saturating_sub(last))
    }

    /// Stops the tail (the snapshot stays as it is).
    pub fn stop(&self) {
        self.inner.cancel.cancel();
    }

    fn check_expected(&self, id: &TenantId, expected: Option<u64>, current: u64) -> Result<(), StoreError> {
        match expected {
            Some(e) if e != current => {
                Err(StoreError::Conflict { tenant: id.clone(), expected: e.to_string(), current })
            }
            _ => Ok(()),
        }
    }

    async fn produce(&self, key: Bytes, value: Option<Bytes>) -> Result<i64, StoreError> {
        let inner = &self.inner;
        let kafka = |source| StoreError::Kafka { topic: inner.topic.clone(), source };
        let mut producer = inner.producer.lock().await;
        let records = [(key, value)];
        // One retry, only when the first attempt cannot have been written (no connection,
        // or the broker said it is not the leader). A duplicate would be harmless anyway:
        // its version no longer follows and every reader skips it.
        for attempt in 0..2 {
            let mut conn = match producer.take() {
                Some(c) => c,
                None => inner.access.connect_leader(&inner.topic, PARTITION).await.map_err(kafka)?,
            };
            match conn.produce(&inner.topic, PARTITION, &records, Duration::from_secs(10)).await {
                Ok(offset) => {
                    *producer = Some(conn);
                    return Ok(offset);
                }
                // NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE: refresh the leader.
                Err(e) if attempt == 0 && matches!(e.code(), Some(6) | Some(5)) => {
                    debug!(error = %e, "tenant store leader moved; retrying on the new leader");
                }
                Err(e) => return Err(kafka(e)),
            }
        }
        Err(StoreError::Stopped)
    }

    /// Waits until the tail has read `offset`, and returns what applying it did.
    async fn outcome_at(&self, offset: i64) -> Result<Option<Applied>, StoreError> {
        let mut rx = self.inner.snapshot.subscribe();
        let wait = rx.wait_for(|s| s.applied_offset().is_some_and(|o| o >= offset));
        match tokio::time::timeout(READ_BACK_TIMEOUT, wait).await {
            Err(_) => return Err(StoreError::ReadBackTimeout { offset, timeout: READ_BACK_TIMEOUT }),
            Ok(Err(_)) => return Err(StoreError::Stopped),
            Ok(Ok(_)) => {}
        }
        let outcomes = self.inner.outcomes.lock().map_err(|_| StoreError::Stopped)?;
        Ok(outcomes.iter().rev().find(|(o, _)| *o == offset).and_then(|(_, a)| a.clone()))
    }
}

impl Inner {
    /// Applies fetched records at or after `next` and publishes one new snapshot;
    /// returns the next offset to fetch.
    fn apply(&self, mut next: i64, records: Vec<kafka_protocol::records::Record>) -> i64 {
        let fresh: Vec<_> = records.into_iter().filter(|r| r.offset >= next).collect();
        if fresh.is_empty() {
            return next;
        }
        let mut snapshot = TenantsSnapshot::clone(&self.snapshot.borrow());
        let mut outcomes = Vec::with_capacity(fresh.len());
        for r in fresh {
            let key = r.key.as_deref().unwrap_or_default();
            let outcome = match snapshot.apply(r.offset, key, r.value.as_deref()) {
                Ok(applied) => {
                    match &applied {
                        Applied::Put { tenant, version } => debug!(%tenant, version, offset = r.offset, "tenant stored"),
                        Applied::Deleted { tenant } => info!(%tenant, offset = r.offset, "tenant deleted"),
                        Applied::Stale { tenant, version, current } => warn!(
                            %tenant, version, current, offset = r.offset,
                            "tenant record skipped: its version does not follow the current one (a lost race)"
                        ),
                    }
                    Some(applied)
                }
                Err(e) => {
                    warn!(topic = %self.topic, error = %e, "tenant record skipped");
                    None
                }
            };
            outcomes.push((r.offset, outcome));
            next = r.offset + 1;
        }
        if let Ok(mut kept) = self.outcomes.lock() {
            kept.extend(outcomes);
            let excess = kept.len().saturating_sub(OUTCOMES_KEPT);
            kept.drain(..excess);
        }
        self.snapshot.send_replace(Arc::new(snapshot));
        next
    }

    /// Long-polls the partition until cancelled, reconnecting to the current leader
    /// after any error, with backoff.
    async fn tail(self: Arc<Self>, mut conn: Option<KafkaConn>, mut next: i64) {
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0u32;
        // A failing tail is logged at the first failure and then every 30 s, whatever the
        // attempts cost (each may wait out a connect and a call timeout).
        let mut logged_at: Option<tokio::time::Instant> = None;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let result = async {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => conn.insert(self.access.connect_leader(&self.topic, PARTITION).await?),
                };
                c.fetch(&self.topic, PARTITION, next, TAIL_WAIT, FETCH_MAX_BYTES).await
            };
            let result = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = result => r,
            };
            match result {
                Ok(fetched) => {
                    self.last_read_ms.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
                    if failures > 0 {
                        info!(topic = %self.topic, failures, "tenant store tail reconnected");
                    }
                    failures = 0;
                    logged_at = None;
                    backoff = Duration::from_millis(100);
                    next = self.apply(next, fetched.records);
                }
                Err(e) => {
                    conn = None;
                    failures += 1;
                    if e.code() == Some(1) {
                        // OFFSET_OUT_OF_RANGE: records were deleted under us; go on from
                        // the log start (what is already applied stays applied).
                        if let Ok(mut c) = self.access.connect_leader(&self.topic, PARTITION).await {
                            if let Ok(start) = c.list_offset(&self.topic, PARTITION, -2).await {
                                warn!(topic = %self.topic, from = next, to = start, "tenant store offset out of range; moving to the log start");
                                next = next.max(start);
                            }
                        }
                    }
                    if logged_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                        logged_at = Some(tokio::time::Instant::now());
                        warn!(topic = %self.topic, error = %e, failures, "tenant store tail failed; reconnecting");
                    }
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

impl TenantDirectory for TenantStore {
    fn exists(&self, tenant: &TenantId) -> bool {
        self.inner.snapshot.borrow().get(tenant).is_some()
    }
}

/// Creates the store topic if it is missing: one partition, compacted, replicated on up
/// to 3 brokers with min.insync.replicas 2 (1 when fewer than 3 brokers are live).
pub async fn ensure_topic(access: &PoolAccess, topic: &str) -> Result<(), KafkaError> {
    crate::journal::ensure_topic(access, topic, &[("cleanup.policy", "compact")]).await
}

/// The leader may take a moment to be elected after the topic is created.
async fn connect_leader_patiently(access: &PoolAccess, topic: &str, within: Duration) -> Result<KafkaConn, KafkaError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match access.connect_leader(topic, PARTITION).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() < deadline => {
                debug!(error = %e, "tenant store leader not ready yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Parses JSON, with serde's message (it names unknown and missing fields).
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
