//! Planner runtime and imbalance before/after on synthetic pools (issue 7 point 5, simulation).
//!
//! Run: `cargo run --release -p sluice-placement --example simulate` (add `-- --quick` to skip
//! the 100 000-partition pools). Each scenario plans repeatedly (apply, re-plan) until the plan
//! is empty or MAX_ROUNDS (400) have passed, and prints one markdown table row per scenario.

use std::time::Instant;

use sluice_placement::synthetic::{pool, PoolSpec};
use sluice_placement::{apply, broker_loads, imbalance, plan, ClusterState, PlanLimits};

/// Enough for a 30-broker pool to drain a broker holding 10 000 replicas at 50 moves a plan.
const MAX_ROUNDS: usize = 400;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut sizes: Vec<(usize, usize, usize)> =
        vec![(10, 1_000, 100), (30, 10_000, 500), (100, 10_000, 2_000)];
    if !quick {
        sizes.extend([(30, 100_000, 2_000), (100, 100_000, 2_000)]);
    }
    let limits = PlanLimits::default();
    println!("limits: {limits:?}\n");
    println!("| scenario | brokers | partitions | tenants | imbalance before | first plan ms | first plan: leader changes / moves / GB | imbalance after first plan | rounds to empty plan | total leader changes / moves / GB | imbalance at the end | min / mean at the end | total planner ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (brokers, partitions, tenants) in sizes {
        let spec = PoolSpec {
            brokers,
            racks: 3,
            partitions,
            tenants,
            replication_factor: 3,
            zipf_s: 1.0,
            mean_bytes_in_per_broker: 20e6,
            seed: 7,
        };
        let base = pool(&spec);
        run("skewed", &base, &limits);
        // A new empty broker (it should fill up).
        let mut added = base.clone();
        let mut fresh = added.brokers[0].clone();
        fresh.id = brokers as i32 + 1;
        fresh.rack = Some("rack-0".into());
        added.brokers.push(fresh);
        run("broker added", &added, &limits);
        // Broker 1 drained (it should empty).
        let mut drained = base.clone();
        drained.brokers[0].draining = true;
        run("broker 1 draining", &drained, &limits);
    }
}

fn run(name: &str, start: &ClusterState, limits: &PlanLimits) {
    let before = imbalance(start);
    let mut state = start.clone();
    let (mut leaders, mut moves, mut bytes, mut total_ms) = (0usize, 0usize, 0u64, 0.0f64);
    let mut first: Option<(f64, usize, usize, u64, f64)> = None;
    let mut rounds = 0;
    let mut converged = false;
    for round in 1..=MAX_ROUNDS {
        let t = Instant::now();
        let p = match plan(&state, limits) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{name}: {e}");
                return;
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1e3;
        total_ms += ms;
        rounds = round;
        if first.is_none() {
            first = Some((
                ms,
                p.leader_changes.len(),
                p.moves.len(),
                p.bytes_moved(),
                p.imbalance_after,
            ));
        }
        if p.is_empty() {
            converged = true;
            break;
        }
        leaders += p.leader_changes.len();
        moves += p.moves.len();
        bytes += p.bytes_moved();
        state = apply(&state, &p);
    }
    let Some((ms, fl, fm, fb, fi)) = first else {
        return;
    };
    let gb = |b: u64| b as f64 / 1e9;
    println!(
        "| {name} | {} | {} | {} | {before:.3} | {ms:.1} | {fl} / {fm} / {:.1} | {fi:.3} | {rounds}{} | {leaders} / {moves} / {:.1} | {:.3} | {:.3} | {total_ms:.0} |",
        start.brokers.len(),
        start.partitions.len(),
        start.partitions.iter().map(|p| p.tenant.as_str()).collect::<std::collections::HashSet<_>>().len(),
        gb(fb),
        if converged { "" } else { " (not yet empty)" },
        gb(bytes),
        imbalance(&state),
        min_over_mean(&state),
    );
}

/// Coldest live, non-draining broker over the mean: how far an added broker has filled up.
fn min_over_mean(state: &ClusterState) -> f64 {
    let loads = broker_loads(state);
    let v: Vec<f64> = state
        .brokers
        .iter()
        .filter(|b| !b.draining)
        .map(|b| loads.get(&b.id).map_or(0.0, |l| l.0 + l.1))
        .collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    if mean <= 0.0 {
        return 1.0;
    }
    v.iter().copied().fold(f64::INFINITY, f64::min) / mean
}
