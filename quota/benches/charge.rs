//! `TenantQuota::charge` for a typical produce: 3 partitions of one ~16 KiB batch each
//! (the gateway's per-request quota check, `TenantView::charge`), within quota and over it.
//!
//! - `within_quota`: rates far above what the loop can push (1 TiB/s), so every limiter
//!   admits its cells at once: 3 keyed checks + 1 tenant check, nothing owed.
//! - `over_quota`: the default rates (5 MiB/s per partition, 200 MiB/s per tenant) are
//!   exhausted after the first second, so most charges compute a wait and record a debt
//!   (the throttled path a noisy tenant takes).
//!
//! The partition keys are cloned inside the measured closure, as the gateway clones the
//! topic name's `Bytes` (a reference count) per partition.
//!
//! Run: `cargo bench -p sluice-quota --bench charge -- --measurement-time 3 --warm-up-time 1`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use sluice_quota::{Direction, QuotaConfig, TenantQuota};

/// A ~16 KiB record batch per partition (16 records of 1 KiB plus batch overhead).
const BATCH_BYTES: u64 = 16_838;

fn bench(c: &mut Criterion) {
    const TIB: u64 = 1 << 40;
    let roomy = Arc::new(
        TenantQuota::new(QuotaConfig {
            tenant_write: TIB,
            tenant_read: TIB,
            partition_write: TIB,
            partition_read: TIB,
            ..QuotaConfig::default()
        })
        .expect("quota config"),
    );
    let tight = Arc::new(TenantQuota::new(QuotaConfig::default()).expect("default quota config"));
    let topic = Bytes::from_static(b"orders");

    let mut g = c.benchmark_group("charge");
    for (name, quota) in [("produce_3x16k/within_quota", &roomy), ("produce_3x16k/over_quota", &tight)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let parts = (0..3).map(|p| ((topic.clone(), p), black_box(BATCH_BYTES)));
                let charge = quota.charge(black_box(Direction::Write), parts);
                charge.throttle_ms()
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // Short by default: two shared cores, others building. Flags still override.
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
