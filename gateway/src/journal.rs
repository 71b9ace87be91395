//! Append-only JSON journals kept in single-partition pool topics: the usage ledger
//! (`__sluice_usage`, `crate::usage`) and the audit log (`__sluice_audit`). One writer
//! connection per journal per gateway, readers from any offset; both reconnect to the
//! partition's current leader after any error.
//!
//! Records are appended with acks=all. A produce that fails may still have been written,
//! so a retried record can appear twice: journals carry their own identity in the record
//! (the usage ledger's instance id + sequence) and readers drop repeats.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Record;
use tracing::{debug, info};

use crate::kclient::{KafkaConn, KafkaError, PoolAccess};

const PARTITION: i32 = 0;
const FETCH_BYTES: i32 = 4 * 1024 * 1024;

/// Creates `topic` if it is missing: one partition, replicated on up to 3 brokers with
/// min.insync.replicas 2 (1 when fewer than 3 brokers are live), plus `configs`.
pub async fn ensure_topic(access: &PoolAccess, topic: &str, configs: &[(&str, &str)]) -> Result<(), KafkaError> {
    let mut conn = access.connect_any().await?;
    let md = conn.metadata(&[topic]).await?;
    let exists = md.topics.iter().any(|t| t.error_code == 0 && t.name.as_ref().map(|n| n.0.as_str()) == Some(topic));
    if exists {
        return Ok(());
    }
    let rf = md.brokers.len().clamp(1, 3) as i16;
    let min_isr = if rf >= 3 { "2" } else { "1" };
    let mut all: Vec<(&str, &str)> = vec![("min.insync.replicas", min_isr)];
    all.extend_from_slice(configs);
    if conn.create_topic(topic, 1, rf, &all).await? {
        info!(%topic, replication_factor = rf, "created journal topic");
    }
    Ok(())
}

async fn leader(access: &PoolAccess, topic: &str) -> Result<KafkaConn, KafkaError> {
    // A freshly created topic takes a moment to elect its leader.
    let mut last = None;
    for _ in 0..50 {
        match access.connect_leader(topic, PARTITION).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                debug!(%topic, error = %e, "journal leader not ready");
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(last.unwrap_or(KafkaError::NoLeader { topic: topic.to_owned(), partition: PARTITION }))
}

/// Appends to one journal.
pub struct Appender {
    access: PoolAccess,
    topic: String,
    conn: Option<KafkaConn>,
}

impl Appender {
    pub fn new(access: PoolAccess, topic: impl Into<String>) -> Self {
        Self { access, topic: topic.into(), conn: None }
    }

    /// Appends `records` (key, JSON value) as one batch; the offset of the first.
    pub async fn append(&mut self, records: &[(Bytes, Bytes)]) -> Result<i64, KafkaError> {
        if records.is_empty() {
            return Ok(-1);
        }
        let batch: Vec<(Bytes, Option<Bytes>)> = records.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        if self.conn.is_none() {
            self.conn = Some(leader(&self.access, &self.topic).await?);
        }
        let Some(conn) = self.conn.as_mut() else { return Err(KafkaError::NoLeader { topic: self.topic.clone(), partition: PARTITION }) };
        match conn.produce(&self.topic, PARTITION, &batch, Duration::from_secs(15)).await {
            Ok(offset) => Ok(offset),
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

/// Reads one journal in offset order.
pub struct Reader {
    access: PoolAccess,
    topic: String,
    conn: Option<KafkaConn>,
    next: i64,
    /// Start at the end (only records appended from now on), on the first connect.
    from_end: bool,
}

impl Reader {
    /// A reader starting at the journal's first offset.
    pub fn from_start(access: PoolAccess, topic: impl Into<String>) -> Self {
        Self { access, topic: topic.into(), conn: None, next: 0, from_end: false }
    }

    /// A reader of what is appended from now on.
    pub fn from_end(access: PoolAccess, topic: impl Into<String>) -> Self {
        Self { access, topic: topic.into(), conn: None, next: 0, from_end: true }
    }

    /// The next offset to read.
    pub fn position(&self) -> i64 {
        self.next
    }

    /// The records after the current position (waiting up to `max_wait` when there are
    /// none), and the partition's high watermark.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<(Vec<Record>, i64), KafkaError> {
        if self.conn.is_none() {
            let mut conn = leader(&self.access, &self.topic).await?;
            // Records before the log start (retention) are gone: start where the log does.
            let start = conn.list_offset(&self.topic, PARTITION, -2).await?;
            self.next = self.next.max(start);
            if std::mem::take(&mut self.from_end) {
                self.next = self.next.max(conn.list_offset(&self.topic, PARTITION, -1).await?);
            }
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else { return Err(KafkaError::NoLeader { topic: self.topic.clone(), partition: PARTITION }) };
        match conn.fetch(&self.topic, PARTITION, self.next, max_wait, FETCH_BYTES).await {
            Ok(fetched) => {
                let records: Vec<Record> = fetched.records.into_iter().filter(|r| r.offset >= self.next).collect();
                if let Some(last) = records.last() {
                    self.next = last.offset + 1;
                }
                Ok((records, fetched.high_watermark))
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    /// Reads everything up to the high watermark as of the first poll.
    pub async fn read_to_end(&mut self) -> Result<Vec<Record>, KafkaError> {
        let mut out = Vec::new();
        let (first, end) = self.poll(Duration::ZERO).await?;
        out.extend(first);
        while self.next < end {
            let (more, _) = self.poll(Duration::from_millis(100)).await?;
            if more.is_empty() {
                break;
            }
            out.extend(more);
        }
        Ok(out)
    }
}
