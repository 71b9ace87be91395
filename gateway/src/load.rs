//! Per-partition load as the gateway sees it: bytes produced into and fetched out of every
//! pool partition, and their rates, for the placement planner (SPEC 8: "load comes from the
//! gateway's own per-partition byte counters").
//!
//! The hot path ([`LoadRegistry::record_in`] / [`LoadRegistry::record_out`]) is two map
//! lookups under shard read locks and one atomic add; a partition allocates only when it is
//! first seen. Rates are exponentially weighted moving averages computed by
//! [`LoadRegistry::sample`], which the rebalancer (or a ticker) calls every few seconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use dashmap::DashMap;

/// Counters of one partition. The totals only grow; [`LoadRegistry::sample`] turns their
/// differences into rates.
#[derive(Default)]
struct Counters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Rates of one partition, bytes per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rate {
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
}

/// What the sampler remembers between two samples.
#[derive(Default)]
struct Sampler {
    at: Option<Instant>,
    /// Totals at the previous sample and the smoothed rates, per (pool topic, partition).
    last: HashMap<(String, i32), (u64, u64, Rate)>,
}

/// Byte counters per pool (topic, partition).
pub struct LoadRegistry {
    topics: DashMap<String, DashMap<i32, Counters>>,
    sampler: Mutex<Sampler>,
    /// Smoothing window: a rate moves by `elapsed / (elapsed + window)` of the difference
    /// each sample, so a spike shorter than the window moves it only partly (hysteresis
    /// against moving partitions for a burst).
    window_secs: f64,
}

impl Default for LoadRegistry {
    fn default() -> Self {
        Self::new(60.0)
    }
}

impl LoadRegistry {
    pub fn new(window_secs: f64) -> Self {
        Self { topics: DashMap::new(), sampler: Mutex::new(Sampler::default()), window_secs: window_secs.max(0.001) }
    }

    /// Records `bytes` produced into `topic`/`partition` (pool name).
    pub fn record_in(&self, topic: &str, partition: i32, bytes: u64) {
        self.with(topic, partition, |c| c.bytes_in.fetch_add(bytes, Ordering::Relaxed));
    }

    /// Records `bytes` fetched from `topic`/`partition` (pool name).
    pub fn record_out(&self, topic: &str, partition: i32, bytes: u64) {
        self.with(topic, partition, |c| c.bytes_out.fetch_add(bytes, Ordering::Relaxed));
    }

    fn with(&self, topic: &str, partition: i32, add: impl Fn(&Counters) -> u64) {
        if let Some(t) = self.topics.get(topic) {
            if let Some(c) = t.get(&partition) {
                add(&c);
                return;
            }
            // First sighting of this partition: a write lock on the inner map only.
            add(&t.entry(partition).or_default());
            return;
        }
        let t = self.topics.entry(topic.to_owned()).or_default();
        add(&t.entry(partition).or_default());
    }

    /// Totals since start, per (pool topic, partition): (bytes in, bytes out).
    pub fn totals(&self) -> HashMap<(String, i32), (u64, u64)> {
        let mut out = HashMap::new();
        for t in self.topics.iter() {
            for c in t.value().iter() {
                out.insert(
                    (t.key().clone(), *c.key()),
                    (c.bytes_in.load(Ordering::Relaxed), c.bytes_out.load(Ordering::Relaxed)),
                );
            }
        }
        out
    }

    /// Takes a sample at `now`: updates every partition's smoothed rates from the bytes
    /// counted since the previous sample. The first sample only sets the baseline.
    pub fn sample(&self, now: Instant) {
        let totals = self.totals();
        let Ok(mut s) = self.sampler.lock() else { return };
        let elapsed = s.at.map(|at| now.saturating_duration_since(at).as_secs_f64());
        s.at = Some(now);
        let mut next = HashMap::with_capacity(totals.len());
        for (key, (tin, tout)) in totals {
            let (pin, pout, rate) = s.last.get(&key).copied().unwrap_or((0, 0, Rate::default()));
            let rate = match elapsed {
                Some(dt) if dt > 0.0 => {
                    let inst_in = tin.saturating_sub(pin) as f64 / dt;
                    let inst_out = tout.saturating_sub(pout) as f64 / dt;
                    // A partition never sampled before starts at its instant rate.
                    if !s.last.contains_key(&key) {
                        Rate { bytes_in_per_sec: inst_in, bytes_out_per_sec: inst_out }
                    } else {
                        let a = dt / (dt + self.window_secs);
                        Rate {
                            bytes_in_per_sec: rate.bytes_in_per_sec + a * (inst_in - rate.bytes_in_per_sec),
                            bytes_out_per_sec: rate.bytes_out_per_sec + a * (inst_out - rate.bytes_out_per_sec),
                        }
                    }
                }
                _ => rate,
            };
            next.insert(key, (tin, tout, rate));
        }
        s.last = next;
    }

    /// Smoothed rates as of the last [`sample`](Self::sample), per (pool topic, partition).
    pub fn rates(&self) -> HashMap<(String, i32), Rate> {
        let Ok(s) = self.sampler.lock() else { return HashMap::new() };
        s.last.iter().map(|(k, (_, _, r))| (k.clone(), *r)).collect()
    }

    /// Forgets a topic (deleted from the pool).
    pub fn forget_topic(&self, topic: &str) {
        self.topics.remove(topic);
        if let Ok(mut s) = self.sampler.lock() {
            s.last.retain(|(t, _), _| t != topic);
        }
    }
}

/// The process-wide registry: every listener counts into it (pool names are global).
pub fn registry() -> &'static LoadRegistry {
    static REG: std::sync::OnceLock<LoadRegistry> = std::sync::OnceLock::new();
    REG.get_or_init(LoadRegistry::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_and_rates() {
        let r = LoadRegistry::new(10.0);
        let t0 = Instant::now();
        r.record_in("a.x", 0, 100);
        r.sample(t0);
        r.record_in("a.x", 0, 1000);
        r.record_out("a.x", 0, 2000);
        r.record_in("a.x", 1, 500);
        r.sample(t0 + Duration::from_secs(10));
        let rates = r.rates();
        let p0 = rates[&("a.x".to_owned(), 0)];
        // Known before: smoothed with a = 10 / (10 + 10) from 0.
        assert!((p0.bytes_in_per_sec - 50.0).abs() < 1e-9, "{p0:?}");
        assert!((p0.bytes_out_per_sec - 100.0).abs() < 1e-9, "{p0:?}");
        // New partition: its instant rate.
        assert!((rates[&("a.x".to_owned(), 1)].bytes_in_per_sec - 50.0).abs() < 1e-9);
        assert_eq!(r.totals()[&("a.x".to_owned(), 0)], (1100, 2000));
        r.forget_topic("a.x");
        assert!(r.rates().is_empty());
    }
}
