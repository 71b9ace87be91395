//! Placement state kept in the pool, in one compacted single-partition topic
//! (`__sluice_placement` by default), so that it survives gateway restarts and is shared by
//! every gateway and the CLI. Keys:
//! - `lease`: which gateway runs the rebalancer ([`Lease`]); whoever's `lease` record is the
//!   first written at or after the end offset it read wins (a compare-and-set on the log).
//! - `applier`: what a running plan has set in the pool ([`ApplierState`]): throttled
//!   brokers and topics, partitions still owed a preferred-leader election. Written before
//!   the pool is touched and cleared after cleanup, so a restarted gateway (or
//!   `sluice placement cancel`) finds and removes exactly what sluice set.
//! - `load/<gateway id>`: the latest rate snapshot each gateway measured ([`LoadReport`]);
//!   the planner sums fresh reports, so several gateways and the CLI see the same load.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::kclient::{KafkaConn, KafkaError, PoolAccess};

const PARTITION: i32 = 0;
const FETCH_MAX_BYTES: i32 = 16 * 1024 * 1024;

pub const KEY_LEASE: &str = "lease";
pub const KEY_APPLIER: &str = "applier";
pub const LOAD_PREFIX: &str = "load/";

/// The rebalancer lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    pub holder: String,
    /// Milliseconds since the epoch after which anyone may take it.
    pub until_ms: u64,
}

/// What the applier has set in the pool and must undo.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ApplierState {
    /// Who is applying (a gateway id or `cli-<pid>`).
    pub owner: String,
    pub started_ms: u64,
    /// Brokers whose `leader/follower.replication.throttled.rate` sluice set.
    pub throttled_brokers: Vec<i32>,
    /// Topics whose `leader/follower.replication.throttled.replicas` sluice set.
    pub throttled_topics: Vec<String>,
    /// Partitions moved or reordered whose preferred leader is still to be elected.
    pub elections: Vec<(String, i32)>,
    /// Partitions whose reassignment sluice started and has not seen finish.
    pub moves: Vec<(String, i32)>,
}

/// One gateway's measured rates: (pool topic, partition, bytes in/s, bytes out/s).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadReport {
    pub at_ms: u64,
    pub partitions: Vec<(String, i32, f64, f64)>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("placement state record {key}: {reason}")]
    Decode { key: String, reason: String },
}

/// The state topic.
#[derive(Clone)]
pub struct StateTopic {
    pub access: PoolAccess,
    pub topic: String,
}

impl StateTopic {
    /// Creates the topic when missing (compacted, like the tenant store's).
    pub async fn ensure(&self) -> Result<(), StateError> {
        crate::store::ensure_topic(&self.access, &self.topic).await?;
        Ok(())
    }

    /// Whether the topic exists (nothing to read before the first write).
    pub async fn exists(&self) -> Result<bool, StateError> {
        let mut c = self.access.connect_any().await?;
        let md = c.metadata(&[&self.topic]).await?;
        Ok(md.topics.iter().any(|t| t.error_code == 0 && t.name.as_ref().is_some_and(|n| n.0.as_str() == self.topic)))
    }

    async fn leader(&self) -> Result<KafkaConn, KafkaError> {
        // A just-created topic takes a moment to get a leader.
        let mut last = None;
        for _ in 0..50 {
            match self.access.connect_leader(&self.topic, PARTITION).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last.unwrap_or(KafkaError::NoLeader { topic: self.topic.clone(), partition: PARTITION }))
    }

    /// Records from `from` (None: the log start) to the current end: (offset, key, value).
    pub async fn read_from(&self, from: Option<i64>) -> Result<(Vec<(i64, String, Option<Bytes>)>, i64), StateError> {
        let mut c = self.leader().await?;
        let start = c.list_offset(&self.topic, PARTITION, -2).await?;
        let end = c.list_offset(&self.topic, PARTITION, -1).await?;
        let mut next = from.unwrap_or(start).max(start);
        let mut out = Vec::new();
        while next < end {
            let f = c.fetch(&self.topic, PARTITION, next, Duration::from_millis(100), FETCH_MAX_BYTES).await?;
            if f.records.is_empty() {
                // Only control records or a compacted gap up to the end.
                if f.high_watermark <= next {
                    break;
                }
                next += 1;
                continue;
            }
            for r in f.records {
                // A fetch answers whole batches: skip records before the offset asked for.
                if r.offset < next {
                    continue;
                }
                next = r.offset + 1;
                let key = r.key.map(|k| String::from_utf8_lossy(&k).into_owned()).unwrap_or_default();
                out.push((r.offset, key, r.value));
            }
        }
        Ok((out, end))
    }

    /// The latest value of every key (tombstones removed), and the end offset.
    pub async fn latest(&self) -> Result<(HashMap<String, Bytes>, i64), StateError> {
        if !self.exists().await? {
            return Ok((HashMap::new(), 0));
        }
        let (records, end) = self.read_from(None).await?;
        let mut m = HashMap::new();
        for (_, k, v) in records {
            match v {
                Some(v) => m.insert(k, v),
                None => m.remove(&k),
            };
        }
        Ok((m, end))
    }

    /// Writes `key` = JSON of `value` (None: a tombstone); returns its offset.
    pub async fn put<T: Serialize>(&self, key: &str, value: Option<&T>) -> Result<i64, StateError> {
        let value = match value {
            Some(v) => Some(Bytes::from(
                serde_json::to_vec(v).map_err(|e| StateError::Decode { key: key.to_owned(), reason: e.to_string() })?,
            )),
            None => None,
        };
        let mut c = self.leader().await?;
        Ok(c.produce(&self.topic, PARTITION, &[(Bytes::from(key.to_owned()), value)], Duration::from_secs(10)).await?)
    }

    pub async fn get<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, StateError> {
        let (m, _) = self.latest().await?;
        decode(&m, key)
    }

    /// Takes or renews the rebalancer lease for `ttl`; true when `me` holds it.
    pub async fn try_lease(&self, me: &str, ttl: Duration) -> Result<bool, StateError> {
        let (m, end) = self.latest().await?;
        if let Some(l) = decode::<Lease>(&m, KEY_LEASE)? {
            if l.holder != me && l.until_ms > now_ms() {
                return Ok(false);
            }
        }
        let mine = Lease { holder: me.to_owned(), until_ms: now_ms() + ttl.as_millis() as u64 };
        self.put(KEY_LEASE, Some(&mine)).await?;
        // Everyone who saw the lease free wrote after `end`; the first such record wins.
        let (after, _) = self.read_from(Some(end)).await?;
        let first = after.into_iter().find(|(_, k, _)| k == KEY_LEASE);
        Ok(match first {
            Some((_, _, Some(v))) => serde_json::from_slice::<Lease>(&v).is_ok_and(|l| l.holder == me),
            _ => false,
        })
    }

    /// Gives the lease up (when `me` holds it).
    pub async fn release_lease(&self, me: &str) -> Result<(), StateError> {
        if self.get::<Lease>(KEY_LEASE).await?.is_some_and(|l| l.holder == me) {
            self.put(KEY_LEASE, Some(&Lease { holder: me.to_owned(), until_ms: 0 })).await?;
        }
        Ok(())
    }

    /// Sum of the fresh load reports (younger than `max_age`), per (topic, partition).
    pub async fn load(&self, max_age: Duration) -> Result<HashMap<(String, i32), (f64, f64)>, StateError> {
        let (m, _) = self.latest().await?;
        let oldest = now_ms().saturating_sub(max_age.as_millis() as u64);
        let mut out: HashMap<(String, i32), (f64, f64)> = HashMap::new();
        for (k, v) in &m {
            if !k.starts_with(LOAD_PREFIX) {
                continue;
            }
            let Ok(r) = serde_json::from_slice::<LoadReport>(v) else { continue };
            if r.at_ms < oldest {
                continue;
            }
            for (t, p, i, o) in r.partitions {
                let e = out.entry((t, p)).or_default();
                e.0 += i;
                e.1 += o;
            }
        }
        Ok(out)
    }
}

fn decode<T: for<'de> Deserialize<'de>>(m: &HashMap<String, Bytes>, key: &str) -> Result<Option<T>, StateError> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => serde_json::from_slice(v)
            .map(Some)
            .map_err(|e| StateError::Decode { key: key.to_owned(), reason: e.to_string() }),
    }
}
