//! Deterministic synthetic pools for the benchmark and the simulation: brokers over racks,
//! tenants with Zipf-skewed load, and Kafka-style round-robin initial placement (which ignores
//! load, so hot tenants pile up unevenly).

use crate::{Broker, Capacity, ClusterState, Partition};

/// Shape of a synthetic pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolSpec {
    /// Number of brokers (ids 1..=brokers), racks assigned round-robin.
    pub brokers: usize,
    /// Number of racks.
    pub racks: usize,
    /// Total partitions, shared over tenants.
    pub partitions: usize,
    /// Number of tenants (one topic each).
    pub tenants: usize,
    /// Replication factor.
    pub replication_factor: usize,
    /// Zipf exponent of tenant load; tenant k carries load ∝ 1/k^s.
    pub zipf_s: f64,
    /// Mean bytes in per second per broker; the pool total is this × brokers.
    pub mean_bytes_in_per_broker: f64,
    /// PRNG seed.
    pub seed: u64,
}

/// splitmix64: tiny, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Builds the pool. Tenant k gets partitions ∝ 1/k^(s/2) (at least one) and load ∝ 1/k^s, so
/// the hottest tenants have the hottest partitions; per-partition rates vary ×0.2..×1.8 and
/// consumers read each byte 1..3 times.
pub fn pool(spec: &PoolSpec) -> ClusterState {
    let mut rng = Rng(spec.seed);
    let brokers: Vec<Broker> = (0..spec.brokers)
        .map(|i| Broker {
            id: i as i32 + 1,
            rack: Some(format!("rack-{}", i % spec.racks.max(1))),
            capacity: Capacity::default(),
            draining: false,
        })
        .collect();
    let t = spec.tenants.max(1);
    let share: Vec<f64> = (1..=t)
        .map(|k| 1.0 / (k as f64).powf(spec.zipf_s / 2.0))
        .collect();
    let share_sum: f64 = share.iter().sum();
    let mut counts: Vec<usize> = share
        .iter()
        .map(|s| ((s / share_sum) * spec.partitions as f64).floor().max(1.0) as usize)
        .collect();
    // Hand out what the rounding left to the head tenants.
    let mut total: usize = counts.iter().sum();
    let mut k = 0;
    while total < spec.partitions {
        counts[k % t] += 1;
        total += 1;
        k += 1;
    }
    let load: Vec<f64> = (1..=t)
        .map(|k| 1.0 / (k as f64).powf(spec.zipf_s))
        .collect();
    let load_sum: f64 = load.iter().sum();
    let pool_in = spec.mean_bytes_in_per_broker * spec.brokers as f64;
    let n = spec.brokers.max(1);
    let rf = spec.replication_factor.clamp(1, n);
    let mut partitions = Vec::with_capacity(spec.partitions);
    for (tenant, &count) in counts.iter().enumerate() {
        let topic = format!("t{tenant}.events");
        let start = (rng.next() % n as u64) as usize;
        let tenant_in = pool_in * load[tenant] / load_sum;
        for p in 0..count {
            // Leader round-robin, followers on the next brokers of racks not used yet.
            let racks = spec.racks.max(1);
            let mut replicas: Vec<i32> = vec![((start + p) % n) as i32 + 1];
            let mut k = start + p + 1;
            while replicas.len() < rf {
                let b = k % n;
                let fresh = replicas
                    .iter()
                    .all(|&r| (r as usize - 1) % racks != b % racks);
                let taken = replicas.contains(&(b as i32 + 1));
                if !taken && (fresh || replicas.len() >= racks) {
                    replicas.push(b as i32 + 1);
                }
                k += 1;
            }
            let bytes_in = tenant_in / count as f64 * (0.2 + 1.6 * rng.unit());
            let fanout = 1.0 + (rng.next() % 3) as f64;
            partitions.push(Partition {
                topic: topic.clone(),
                partition: p as i32,
                tenant: format!("tenant-{tenant}"),
                leader: replicas[0],
                replicas,
                bytes_in_per_sec: bytes_in,
                bytes_out_per_sec: bytes_in * fanout,
                // About an hour of retention at the measured rate.
                size_bytes: (bytes_in * 3600.0) as u64,
            });
        }
    }
    ClusterState {
        brokers,
        partitions,
    }
}
