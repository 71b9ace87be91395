//! The usage ledger (SPEC 9): what each tenant used, in MSK Serverless's billing units
//! (cluster-hours, partition-hours, GB in, GB out, storage GB-hours), kept in the pool
//! topic `__sluice_usage` so every gateway instance, and a restarted one, sees the same.
//!
//! **Writing.** Every instance counts the record-batch bytes its tenant connections
//! produce and fetch ([`TenantUsage`], atomics on the data path). Every `flush` (10 s by
//! default, on wall-clock boundaries) and on shutdown it appends one record per tenant:
//! the bytes since the last record, and what it observed of the pool for that window
//! (partitions from the tenant inventory, storage bytes from DescribeLogDirs, whether the
//! tenant exists). Records carry the instance id (random per process) and a sequence
//! number; a record whose append failed is retried with the same number.
//!
//! **Reading.** Every instance tails the ledger into [`Ledger`]. Repeats (a retried
//! append that had in fact been written) are dropped by (instance, sequence). Bytes are
//! summed across instances (each counts its own connections); the pool observations are
//! the same facts seen by every instance, so per tenant and 10 s slot the largest is
//! taken, not the sum. Slots older than two hours are folded into hours (late bytes still
//! add; late observations for a folded slot are dropped).
//!
//! What a kill -9 loses is the bytes counted since the last flush of that instance (at
//! most one `flush` interval); nothing is ever counted twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use sluice_quota::Direction;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::journal::{Appender, Reader};
use crate::kclient::PoolAccess;
use crate::store::TenantStore;

/// The granularity of the pool observations.
pub const SLOT_MS: u64 = 10_000;
const HOUR_MS: u64 = 3_600_000;
/// Slots are kept this long before they are folded into hours.
const KEEP_SLOTS_MS: u64 = 2 * HOUR_MS;

/// One tenant's byte counters on this instance since the last ledger record.
#[derive(Default)]
pub struct TenantUsage {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl TenantUsage {
    /// Record-batch bytes produced (`Write`) or fetched (`Read`).
    pub fn add(&self, direction: Direction, n: u64) {
        match direction {
            Direction::Write => self.bytes_in.fetch_add(n, Ordering::Relaxed),
            Direction::Read => self.bytes_out.fetch_add(n, Ordering::Relaxed),
        };
    }

    fn take(&self) -> (u64, u64) {
        (self.bytes_in.swap(0, Ordering::Relaxed), self.bytes_out.swap(0, Ordering::Relaxed))
    }
}

fn counters() -> &'static DashMap<String, Arc<TenantUsage>> {
    static COUNTERS: OnceLock<DashMap<String, Arc<TenantUsage>>> = OnceLock::new();
    COUNTERS.get_or_init(DashMap::new)
}

/// The counters of `tenant` (one per tenant for the process).
pub fn tenant(tenant: &str) -> Arc<TenantUsage> {
    if let Some(u) = counters().get(tenant) {
        return u.clone();
    }
    counters().entry(tenant.to_owned()).or_default().clone()
}

fn storage() -> &'static DashMap<String, u64> {
    static STORAGE: OnceLock<DashMap<String, u64>> = OnceLock::new();
    STORAGE.get_or_init(DashMap::new)
}

/// The latest storage bytes per tenant, from the pool poller's DescribeLogDirs round.
pub fn observe_storage<'a>(per_tenant: impl IntoIterator<Item = (&'a String, &'a u64)>) {
    for (t, bytes) in per_tenant {
        storage().insert(t.clone(), *bytes);
    }
}

/// One ledger record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub instance: String,
    pub seq: u64,
    pub tenant: String,
    /// The window this record covers, epoch milliseconds, `[start_ms, end_ms)`.
    pub start_ms: u64,
    pub end_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Observed at the end of the window.
    pub partitions: u64,
    pub storage_bytes: u64,
    pub exists: bool,
    /// How long in the window the tenant existed, when that is less than the window (it
    /// was created or deleted in it). Absent: all of it if `exists`, none otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists_ms: Option<u64>,
}

impl UsageRecord {
    /// Milliseconds of the window the tenant existed.
    fn existed_ms(&self) -> u64 {
        let window = self.end_ms.saturating_sub(self.start_ms);
        match self.exists_ms {
            Some(ms) => ms.min(window),
            None if self.exists => window,
            None => 0,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn instance_id() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Ledger settings (`[usage]`).
#[derive(Debug, Clone)]
pub struct UsageSettings {
    pub topic: String,
    pub flush: Duration,
}

/// When this instance saw each tenant appear and disappear in the store, so a window is
/// billed only for the part the tenant existed in (a window can be long when an append
/// stalled, and a tenant created at its end must not be billed for all of it).
#[derive(Default)]
struct Lifetimes {
    known: HashMap<String, u64>,
    gone: HashMap<String, u64>,
}

impl Lifetimes {
    fn observe(&mut self, snapshot: &sluice_tenancy::store::TenantsSnapshot, now: u64, initial: bool) {
        let present: std::collections::HashSet<&str> = snapshot.iter().map(|(id, _)| id.as_str()).collect();
        for id in &present {
            if !self.known.contains_key(*id) {
                // Tenants present when the instance starts existed before it: from 0.
                self.known.insert((*id).to_owned(), if initial { 0 } else { now });
                self.gone.remove(*id);
            }
        }
        let vanished: Vec<String> = self.known.keys().filter(|k| !present.contains(k.as_str())).cloned().collect();
        for id in vanished {
            self.known.remove(&id);
            self.gone.insert(id, now);
        }
    }

    /// Milliseconds of `[start, end)` the tenant existed, or `None` for all of it.
    fn existed_ms(&self, tenant: &str, start: u64, end: u64) -> Option<u64> {
        if let Some(&since) = self.known.get(tenant) {
            return (since > start).then(|| end.saturating_sub(since));
        }
        self.gone.get(tenant).map(|&at| at.clamp(start, end) - start)
    }
}

/// Appends this instance's records every `flush` and on cancellation.
pub async fn run_writer(store: TenantStore, access: PoolAccess, settings: UsageSettings, cancel: CancellationToken) {
    let instance = instance_id();
    let flush_ms = (settings.flush.as_millis() as u64).max(100);
    let mut appender = Appender::new(access, settings.topic.clone());
    let mut seq = 0u64;
    let mut pending: Vec<UsageRecord> = Vec::new();
    let mut window_start = now_ms();
    let mut changes = store.subscribe();
    let mut lifetimes = Lifetimes::default();
    lifetimes.observe(&changes.borrow_and_update(), window_start, true);
    info!(%instance, topic = %settings.topic, flush_ms, "usage ledger writer started");
    loop {
        let now = now_ms();
        let boundary = (now / flush_ms + 1) * flush_ms;
        let stopping = tokio::select! {
            _ = cancel.cancelled() => true,
            changed = changes.changed() => {
                if changed.is_ok() {
                    lifetimes.observe(&changes.borrow_and_update(), now_ms(), false);
                }
                continue;
            }
            _ = tokio::time::sleep(Duration::from_millis(boundary - now)) => false,
        };
        let end = if stopping { now_ms() } else { boundary };
        let snapshot = store.snapshot();
        lifetimes.observe(&snapshot, end, false);
        let mut tenants: Vec<String> = snapshot.iter().map(|(id, _)| id.to_string()).collect();
        tenants.extend(counters().iter().map(|e| e.key().clone()));
        tenants.extend(lifetimes.gone.keys().cloned());
        tenants.sort();
        tenants.dedup();
        let end = end.max(window_start);
        for t in tenants {
            let (bytes_in, bytes_out) = counters().get(&t).map(|u| u.take()).unwrap_or_default();
            // `lifetimes` has just seen this snapshot: known = in the store now.
            let exists = lifetimes.known.contains_key(&t);
            let exists_ms = lifetimes.existed_ms(&t, window_start, end);
            if !exists && bytes_in == 0 && bytes_out == 0 && exists_ms.unwrap_or(0) == 0 {
                continue;
            }
            seq += 1;
            pending.push(UsageRecord {
                instance: instance.clone(),
                seq,
                start_ms: window_start,
                end_ms: end,
                bytes_in,
                bytes_out,
                partitions: if exists { crate::tenant::inventory::inventory().counts(&t).partitions } else { 0 },
                storage_bytes: if exists { storage().get(&t).map(|s| *s).unwrap_or(0) } else { 0 },
                exists,
                exists_ms,
                tenant: t,
            });
        }
        // A deleted tenant is billed up to its deletion once, then forgotten.
        lifetimes.gone.clear();
        window_start = end;
        if !pending.is_empty() {
            let batch: Vec<(Bytes, Bytes)> = pending
                .iter()
                .filter_map(|r| serde_json::to_vec(r).ok().map(|v| (Bytes::from(r.tenant.clone()), Bytes::from(v))))
                .collect();
            match appender.append(&batch).await {
                Ok(offset) => {
                    debug!(records = pending.len(), offset, "usage records appended");
                    pending.clear();
                }
                // Kept with their sequence numbers and retried at the next flush; the
                // reader drops a repeat if this append was in fact written.
                Err(e) => warn!(error = %e, pending = pending.len(), "appending usage records failed; retrying at the next flush"),
            }
        }
        if stopping {
            if !pending.is_empty() {
                warn!(records = pending.len(), "usage records not written at shutdown");
            }
            return;
        }
    }
}

/// Units of one period, as MSK Serverless bills them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Units {
    pub cluster_hours: f64,
    pub partition_hours: f64,
    pub gb_in: f64,
    pub gb_out: f64,
    pub storage_gb_hours: f64,
}

/// Raw sums of one slot or hour.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    bytes_in: u64,
    bytes_out: u64,
    cluster_ms: u64,
    partition_ms: f64,
    storage_byte_ms: f64,
}

impl Sums {
    fn units(&self) -> Units {
        let hours = |ms: f64| ms / HOUR_MS as f64;
        Units {
            cluster_hours: hours(self.cluster_ms as f64),
            partition_hours: hours(self.partition_ms),
            gb_in: self.bytes_in as f64 / 1e9,
            gb_out: self.bytes_out as f64 / 1e9,
            storage_gb_hours: hours(self.storage_byte_ms) / 1e9,
        }
    }

    fn add(&mut self, o: &Sums) {
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.cluster_ms += o.cluster_ms;
        self.partition_ms += o.partition_ms;
        self.storage_byte_ms += o.storage_byte_ms;
    }
}

/// What one instance observed of the pool in one slot.
#[derive(Debug, Clone, Copy, Default)]
struct Observed {
    cluster_ms: u64,
    partition_ms: f64,
    storage_byte_ms: f64,
}

/// One 10 s slot of a tenant: bytes summed over every record; the pool observations
/// summed per instance (its records tile the slot when it flushes more often than every
/// slot) and the largest instance taken, since every instance sees the same pool.
/// Instances are interned (`LedgerInner::instances`): a replayed ledger holds one slot
/// per tenant and 10 s, so a slot stays a few dozen bytes.
#[derive(Default)]
struct Slot {
    bytes_in: u64,
    bytes_out: u64,
    observed: Vec<(u32, Observed)>,
}

impl Slot {
    fn observe(&mut self, instance: u32, o: &Observed) {
        let at = self.observed.iter().position(|(i, _)| *i == instance).unwrap_or_else(|| {
            self.observed.push((instance, Observed::default()));
            self.observed.len() - 1
        });
        let entry = &mut self.observed[at].1;
        entry.cluster_ms += o.cluster_ms;
        entry.partition_ms += o.partition_ms;
        entry.storage_byte_ms += o.storage_byte_ms;
    }

    fn sums(&self) -> Sums {
        let mut s = Sums { bytes_in: self.bytes_in, bytes_out: self.bytes_out, ..Sums::default() };
        for (_, o) in &self.observed {
            s.cluster_ms = s.cluster_ms.max(o.cluster_ms);
            s.partition_ms = s.partition_ms.max(o.partition_ms);
            s.storage_byte_ms = s.storage_byte_ms.max(o.storage_byte_ms);
        }
        s
    }
}

#[derive(Default)]
struct TenantLedger {
    slots: BTreeMap<u64, Slot>,
    /// Hour start → sums of folded slots.
    hours: BTreeMap<u64, Sums>,
}

impl TenantLedger {
    fn fold_before(&mut self, cutoff: u64) {
        while let Some(entry) = self.slots.first_entry() {
            if *entry.key() >= cutoff {
                break;
            }
            let (k, slot) = entry.remove_entry();
            self.hours.entry(k / HOUR_MS * HOUR_MS).or_default().add(&slot.sums());
        }
    }
}

/// Every tenant's usage as read from the ledger.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Default)]
struct LedgerInner {
    tenants: HashMap<String, TenantLedger>,
    /// Instance id → (its index in slots, highest sequence applied).
    instances: HashMap<String, (u32, u64)>,
    /// The newest record end seen, and the hour before which every tenant's slots are
    /// folded (also those of tenants that stopped writing).
    newest_ms: u64,
    folded_to: u64,
    /// Ledger offset up to which records are applied (exclusive).
    position: i64,
}

impl Ledger {
    /// Applies one record; `false` for a repeat.
    pub fn apply(&self, r: &UsageRecord) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *guard;
        let next_index = u32::try_from(inner.instances.len()).unwrap_or(u32::MAX);
        let (instance, last) = inner.instances.entry(r.instance.clone()).or_insert((next_index, 0));
        if r.seq <= *last {
            return false;
        }
        *last = r.seq;
        let instance = *instance;
        let t = inner.tenants.entry(r.tenant.clone()).or_default();
        let existed = r.existed_ms();
        let slot = r.start_ms / SLOT_MS * SLOT_MS;
        let observed = Observed {
            cluster_ms: existed,
            partition_ms: r.partitions as f64 * existed as f64,
            storage_byte_ms: r.storage_bytes as f64 * existed as f64,
        };
        let hour = slot / HOUR_MS * HOUR_MS;
        let folded = t.hours.keys().next_back().is_some_and(|&h| hour <= h) && !t.slots.contains_key(&slot);
        if folded {
            // Late observations for a folded slot are dropped; late bytes still count.
            let h = t.hours.entry(hour).or_default();
            h.bytes_in += r.bytes_in;
            h.bytes_out += r.bytes_out;
        } else {
            let s = t.slots.entry(slot).or_default();
            s.bytes_in += r.bytes_in;
            s.bytes_out += r.bytes_out;
            s.observe(instance, &observed);
        }
        // Slots old enough are folded into their hours, for every tenant once per hour
        // of ledger time.
        inner.newest_ms = inner.newest_ms.max(r.end_ms);
        let cutoff = inner.newest_ms.saturating_sub(KEEP_SLOTS_MS) / HOUR_MS * HOUR_MS;
        if cutoff > inner.folded_to {
            for t in inner.tenants.values_mut() {
                t.fold_before(cutoff);
            }
            inner.folded_to = cutoff;
        }
        true
    }

    /// Usage of `tenant` in `[from_ms, to_ms)` per bucket of `bucket_ms` (an hour or a day),
    /// as (bucket start, units). Buckets without records are included as zeros.
    pub fn report(&self, tenant: &str, from_ms: u64, to_ms: u64, bucket_ms: u64) -> Vec<(u64, Units)> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut buckets: BTreeMap<u64, Sums> = BTreeMap::new();
        let first = from_ms / bucket_ms * bucket_ms;
        let mut b = first;
        while b < to_ms {
            buckets.insert(b, Sums::default());
            b += bucket_ms;
        }
        if let Some(t) = inner.tenants.get(tenant) {
            let slots = t.slots.range(first..to_ms).map(|(k, s)| (*k, s.sums()));
            for (start, sums) in t.hours.range(first..to_ms).map(|(k, s)| (*k, *s)).chain(slots) {
                if let Some(acc) = buckets.get_mut(&(start / bucket_ms * bucket_ms)) {
                    acc.add(&sums);
                }
            }
        }
        buckets.into_iter().map(|(k, s)| (k, s.units())).collect()
    }

    pub fn position(&self) -> i64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).position
    }

    fn set_position(&self, p: i64) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).position = p;
    }
}

/// Bucket widths of a usage report.
pub const HOUR: u64 = HOUR_MS;
pub const DAY: u64 = 24 * HOUR_MS;

/// A usage report as JSON: `{"tenant", "granularity", "items": [{start, end, units...}]}`
/// with RFC 3339 times (the API's and the CLI's format).
pub fn report_json(ledger: &Ledger, tenant: &str, from_ms: u64, to_ms: u64, bucket_ms: u64) -> serde_json::Value {
    let rfc3339 = |ms: u64| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string();
    let items: Vec<serde_json::Value> = ledger
        .report(tenant, from_ms, to_ms, bucket_ms)
        .into_iter()
        .map(|(start, u)| {
            serde_json::json!({
                "start": rfc3339(start),
                "end": rfc3339(start + bucket_ms),
                "cluster_hours": u.cluster_hours,
                "partition_hours": u.partition_hours,
                "gb_in": u.gb_in,
                "gb_out": u.gb_out,
                "storage_gb_hours": u.storage_gb_hours,
            })
        })
        .collect();
    let granularity = if bucket_ms == DAY { "day" } else { "hour" };
    serde_json::json!({"tenant": tenant, "granularity": granularity, "items": items})
}

/// An RFC 3339 time as epoch milliseconds.
pub fn parse_time(text: &str) -> Result<u64, String> {
    humantime::parse_rfc3339_weak(text)
        .map(|t| t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0))
        .map_err(|e| format!("{e} (RFC 3339, e.g. 2026-11-30T00:00:00Z)"))
}

/// Reads the whole ledger topic into a fresh [`Ledger`] (for the CLI).
pub async fn read_all(access: PoolAccess, topic: &str) -> Result<Ledger, crate::kclient::KafkaError> {
    let ledger = Ledger::default();
    let mut reader = Reader::from_start(access, topic.to_owned());
    for rec in reader.read_to_end().await? {
        if let Some(r) = rec.value.as_ref().and_then(|v| serde_json::from_slice::<UsageRecord>(v).ok()) {
            ledger.apply(&r);
        }
    }
    Ok(ledger)
}

/// Tails the ledger topic into `ledger` until cancelled.
pub async fn run_reader(ledger: Arc<Ledger>, access: PoolAccess, topic: String, cancel: CancellationToken) {
    let mut reader = Reader::from_start(access, topic);
    let mut failures = 0u32;
    loop {
        let polled = tokio::select! {
            _ = cancel.cancelled() => return,
            p = reader.poll(Duration::from_millis(500)) => p,
        };
        match polled {
            Ok((records, _)) => {
                failures = 0;
                for rec in records {
                    let Some(value) = rec.value.as_ref() else { continue };
                    match serde_json::from_slice::<UsageRecord>(value) {
                        Ok(r) => {
                            ledger.apply(&r);
                        }
                        Err(e) => warn!(offset = rec.offset, error = %e, "skipping a usage record that does not parse"),
                    }
                }
                ledger.set_position(reader.position());
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    warn!(error = %e, failures, "reading the usage ledger failed");
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(instance: &str, seq: u64, start: u64, end: u64, bytes_in: u64, partitions: u64) -> UsageRecord {
        UsageRecord {
            instance: instance.into(),
            seq,
            tenant: "acme".into(),
            start_ms: start,
            end_ms: end,
            bytes_in,
            bytes_out: 0,
            partitions,
            storage_bytes: 1_000_000_000,
            exists: true,
            exists_ms: None,
        }
    }

    #[test]
    fn a_tenant_that_stopped_writing_is_folded_as_the_ledger_moves_on() {
        let l = Ledger::default();
        for i in 0..30u64 {
            l.apply(&rec("a", i + 1, i * SLOT_MS, (i + 1) * SLOT_MS, 5, 1));
        }
        // Another tenant's records carry the ledger three hours on.
        let mut later = rec("a", 31, 3 * HOUR_MS, 3 * HOUR_MS + SLOT_MS, 1, 1);
        later.tenant = "other".into();
        l.apply(&later);
        let inner = l.inner.lock().unwrap();
        let t = &inner.tenants["acme"];
        assert!(t.slots.is_empty(), "{} slots left unfolded", t.slots.len());
        drop(inner);
        let u = l.report("acme", 0, HOUR_MS, HOUR_MS)[0].1;
        assert!((u.cluster_hours * 3600.0 - 300.0).abs() < 1e-6, "{u:?}");
        assert!((u.gb_in - 150.0 / 1e9).abs() < 1e-15, "{u:?}");
    }

    #[test]
    fn an_instance_flushing_every_two_seconds_fills_its_slots() {
        // Records of 2 s each: five per slot; the slot's observations are their sum.
        let l = Ledger::default();
        for i in 0..1800u64 {
            assert!(l.apply(&rec("a", i + 1, i * 2000, (i + 1) * 2000, 7, 3)));
        }
        let u = l.report("acme", 0, HOUR_MS, HOUR_MS)[0].1;
        assert!((u.cluster_hours - 1.0).abs() < 1e-9, "{u:?}");
        assert!((u.partition_hours - 3.0).abs() < 1e-9, "{u:?}");
        assert!((u.gb_in - 1800.0 * 7.0 / 1e9).abs() < 1e-15, "{u:?}");
    }

    #[test]
    fn a_tenant_created_late_in_a_long_window_is_billed_from_its_creation() {
        // An append stalled: the window is 60 s, the tenant appeared 5 s before its end.
        let l = Ledger::default();
        let mut r = rec("a", 1, 0, 60_000, 0, 2);
        r.exists_ms = Some(5_000);
        l.apply(&r);
        let u = l.report("acme", 0, HOUR_MS, HOUR_MS)[0].1;
        assert!((u.cluster_hours * 3600.0 - 5.0).abs() < 1e-9, "{u:?}");
        assert!((u.partition_hours * 3600.0 - 10.0).abs() < 1e-9, "{u:?}");
        // Records written before `exists_ms` existed still read as the whole window.
        let old: UsageRecord = serde_json::from_str(
            r#"{"instance":"b","seq":1,"tenant":"t","start_ms":0,"end_ms":10000,"bytes_in":0,"bytes_out":0,"partitions":1,"storage_bytes":0,"exists":true}"#,
        )
        .unwrap();
        assert_eq!(old.existed_ms(), 10_000);
    }

    #[test]
    fn lifetimes_clip_windows_to_creation_and_deletion() {
        let mut lt = Lifetimes::default();
        lt.known.insert("old".into(), 0);
        lt.known.insert("new".into(), 55_000);
        lt.gone.insert("deleted".into(), 12_000);
        assert_eq!(lt.existed_ms("old", 0, 60_000), None);
        assert_eq!(lt.existed_ms("new", 0, 60_000), Some(5_000));
        assert_eq!(lt.existed_ms("new", 58_000, 60_000), None);
        assert_eq!(lt.existed_ms("deleted", 10_000, 20_000), Some(2_000));
        assert_eq!(lt.existed_ms("deleted", 15_000, 20_000), Some(0));
        assert_eq!(lt.existed_ms("never", 0, 10_000), None);
    }

    #[test]
    fn bytes_add_across_instances_observations_do_not_and_repeats_are_dropped() {
        let l = Ledger::default();
        // Two instances cover the same hour in 10 s slots; each saw 4 partitions.
        for i in 0..360u64 {
            let (s, e) = (i * SLOT_MS, (i + 1) * SLOT_MS);
            assert!(l.apply(&rec("a", i + 1, s, e, 1000, 4)));
            assert!(l.apply(&rec("b", i + 1, s, e, 500, 4)));
        }
        // A retried append read twice counts once.
        assert!(!l.apply(&rec("a", 360, 359 * SLOT_MS, 360 * SLOT_MS, 1000, 4)));
        let report = l.report("acme", 0, HOUR_MS, HOUR_MS);
        assert_eq!(report.len(), 1);
        let u = report[0].1;
        assert!((u.gb_in - 360.0 * 1500.0 / 1e9).abs() < 1e-12, "{u:?}");
        assert!((u.partition_hours - 4.0).abs() < 1e-9, "{u:?}");
        assert!((u.cluster_hours - 1.0).abs() < 1e-9, "{u:?}");
        assert!((u.storage_gb_hours - 1.0).abs() < 1e-9, "{u:?}");
    }

    #[test]
    fn old_slots_fold_into_hours_and_days_sum_hours() {
        let l = Ledger::default();
        let mut seq = 0;
        for i in 0..(4 * 360u64) {
            seq += 1;
            l.apply(&rec("a", seq, i * SLOT_MS, (i + 1) * SLOT_MS, 10, 2));
        }
        let inner = l.inner.lock().unwrap();
        let t = &inner.tenants["acme"];
        assert!(!t.hours.is_empty() && t.slots.len() <= (KEEP_SLOTS_MS / SLOT_MS) as usize + 360, "{}", t.slots.len());
        drop(inner);
        let day = l.report("acme", 0, 24 * HOUR_MS, 24 * HOUR_MS);
        assert_eq!(day.len(), 1);
        assert!((day[0].1.partition_hours - 8.0).abs() < 1e-9, "{:?}", day[0].1);
        assert!((day[0].1.gb_in - 4.0 * 360.0 * 10.0 / 1e9).abs() < 1e-15);
        let hours = l.report("acme", 0, 4 * HOUR_MS, HOUR_MS);
        assert_eq!(hours.len(), 4);
        assert!(hours.iter().all(|(_, u)| (u.partition_hours - 2.0).abs() < 1e-9), "{hours:?}");
        assert!(l.report("other", 0, HOUR_MS, HOUR_MS).iter().all(|(_, u)| *u == Units::default()));
    }
}
