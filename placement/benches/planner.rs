//! `plan` and `place_new` on synthetic pools (3 racks, RF 3, Zipf-skewed tenant load, Kafka-style
//! round-robin initial placement): 10, 30 and 100 brokers with up to 100 000 partitions and
//! 2 000 tenants.
//!
//! Run: `cargo bench -p sluice-placement --bench planner` (results in
//! `target/criterion/plan/*` and `target/criterion/place_new/*`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_placement::synthetic::{pool, PoolSpec};
use sluice_placement::{place_new, plan, PlanLimits};

fn spec(brokers: usize, partitions: usize, tenants: usize) -> PoolSpec {
    PoolSpec {
        brokers,
        racks: 3,
        partitions,
        tenants,
        replication_factor: 3,
        zipf_s: 1.0,
        mean_bytes_in_per_broker: 20e6,
        seed: 7,
    }
}

fn bench(c: &mut Criterion) {
    let limits = PlanLimits::default();
    let mut g = c.benchmark_group("plan");
    g.sample_size(10);
    for (b, p, t) in [(10, 1_000, 100), (30, 10_000, 500), (100, 100_000, 2_000)] {
        let state = pool(&spec(b, p, t));
        g.bench_function(format!("{b}b_{p}p_{t}t"), |bench| {
            bench.iter(|| plan(black_box(&state), &limits))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("place_new");
    g.sample_size(10);
    for (b, p, t) in [(10, 1_000, 100), (100, 100_000, 2_000)] {
        let state = pool(&spec(b, p, t));
        g.bench_function(format!("{b}b_{p}p_12parts"), |bench| {
            bench.iter(|| place_new(black_box(&state), "tenant-3", "t3.new", 12, 3, 0))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
