//! Property tests of the planner on random small pools: rack safety, eligible targets, no rise
//! in imbalance without repairs, limits, prediction = apply, and convergence without
//! oscillation under repeated plan/apply rounds.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use sluice_placement::{
    apply, eligible_racks, imbalance, place_new, plan, rack_diversity, Broker, Capacity,
    ClusterState, Partition, Plan, PlanLimits,
};

/// A missing broker id that partitions may still name.
const DEAD: i32 = 100;

fn pool() -> impl Strategy<Value = ClusterState> {
    (3usize..9, 0usize..4)
        .prop_flat_map(|(n, racks)| {
            let brokers =
                proptest::collection::vec((any::<bool>(), 0u8..10), n).prop_map(move |flags| {
                    flags
                        .into_iter()
                        .enumerate()
                        .map(|(i, (tight, drain))| Broker {
                            id: i as i32 + 1,
                            rack: (racks > 0).then(|| format!("r{}", i % racks)),
                            // Some brokers have a finite capacity so the capacity goal is exercised.
                            capacity: if tight && i % 3 == 0 {
                                Capacity {
                                    bytes_in_per_sec: 4000.0,
                                    bytes_out_per_sec: 4000.0,
                                }
                            } else {
                                Capacity::default()
                            },
                            // About one broker in ten is draining, never broker 1.
                            draining: i > 0 && drain == 0,
                        })
                        .collect::<Vec<_>>()
                });
            let part = (
                1usize..4,
                proptest::collection::vec(0usize..n + 1, 3),
                0u32..1000,
                0u32..3000,
                0u64..5000,
            );
            (brokers, proptest::collection::vec(part, 0..40))
        })
        .prop_map(|(brokers, parts)| {
            let n = brokers.len();
            let partitions = parts
                .into_iter()
                .enumerate()
                .map(|(i, (rf, picks, bin, bout, size))| {
                    // Distinct replicas; index n stands for the dead broker.
                    let mut replicas: Vec<i32> = Vec::new();
                    for (k, pick) in picks.into_iter().enumerate() {
                        let mut id = if pick == n { DEAD } else { pick as i32 + 1 };
                        let mut step = 0;
                        while replicas.contains(&id) {
                            step += 1;
                            id = ((pick + k + step) % n) as i32 + 1;
                        }
                        replicas.push(id);
                    }
                    replicas.truncate(rf.min(n));
                    Partition {
                        topic: format!("t{}", i % 5),
                        partition: i as i32,
                        tenant: format!("tenant{}", i % 3),
                        leader: replicas.iter().copied().find(|&r| r != DEAD).unwrap_or(-1),
                        replicas,
                        bytes_in_per_sec: f64::from(bin),
                        bytes_out_per_sec: f64::from(bout),
                        size_bytes: size,
                    }
                })
                .collect();
            ClusterState {
                brokers,
                partitions,
            }
        })
}

fn limits() -> impl Strategy<Value = PlanLimits> {
    (
        1usize..12,
        0u64..20_000,
        0usize..20,
        1.0f64..1.5,
        0.0f64..0.05,
    )
        .prop_map(|(m, b, l, t, i)| PlanLimits {
            max_moves: m,
            max_bytes_moved: b,
            max_leader_changes: l,
            imbalance_threshold: t,
            min_improvement: i,
        })
}

fn eligible(state: &ClusterState) -> HashSet<i32> {
    state
        .brokers
        .iter()
        .filter(|b| !b.draining)
        .map(|b| b.id)
        .collect()
}

fn check_plan(state: &ClusterState, limits: &PlanLimits, p: &Plan) -> Result<(), TestCaseError> {
    let ok = eligible(state);
    let after = apply(state, p);
    let racks = eligible_racks(state);
    // Targets: only live, non-draining brokers receive replicas or leadership.
    for m in &p.moves {
        for b in m
            .to_replicas
            .iter()
            .filter(|b| !m.from_replicas.contains(b))
        {
            prop_assert!(ok.contains(b), "move {m:?} targets {b}");
        }
        prop_assert_eq!(m.to_replicas.len(), m.from_replicas.len());
    }
    for c in &p.leader_changes {
        prop_assert!(ok.contains(&c.to), "leader change {c:?}");
    }
    // One step per partition.
    let mut seen = HashSet::new();
    for key in p
        .moves
        .iter()
        .map(|m| (&m.topic, m.partition))
        .chain(p.leader_changes.iter().map(|c| (&c.topic, c.partition)))
    {
        prop_assert!(seen.insert(key), "partition {key:?} twice");
    }
    // Rack safety: never below min(before, required).
    for (b, a) in state.partitions.iter().zip(&after.partitions) {
        let before = rack_diversity(state, &b.replicas);
        let required = b.replicas.len().min(racks);
        prop_assert!(
            rack_diversity(state, &a.replicas) >= before.min(required),
            "{:?} -> {:?}",
            b.replicas,
            a.replicas
        );
    }
    // Limits (one oversize repair may be the only copying move).
    prop_assert!(p.moves.len() <= limits.max_moves);
    prop_assert!(p.leader_changes.len() <= limits.max_leader_changes);
    let bytes = p.bytes_moved();
    if bytes > limits.max_bytes_moved {
        let copying: Vec<_> = p.moves.iter().filter(|m| m.bytes > 0).collect();
        prop_assert_eq!(copying.len(), 1, "over the byte budget: {:?}", p.moves);
        prop_assert!(copying[0].reason.is_repair());
    }
    // Prediction matches apply; without repairs the imbalance never rises.
    prop_assert!((p.imbalance_before - imbalance(state)).abs() < 1e-9);
    prop_assert!(
        (p.imbalance_after - imbalance(&after)).abs() < 1e-6,
        "{} vs {}",
        p.imbalance_after,
        imbalance(&after)
    );
    let repairs = p
        .moves
        .iter()
        .map(|m| m.reason)
        .chain(p.leader_changes.iter().map(|c| c.reason))
        .any(|r| r.is_repair());
    if !repairs {
        prop_assert!(
            p.imbalance_after <= p.imbalance_before + 1e-9,
            "{} -> {}",
            p.imbalance_before,
            p.imbalance_after
        );
    }
    Ok(())
}

proptest! {
    // 512 cases by default; PROPTEST_CASES=… for a longer search.
    #![proptest_config(ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)))]

    #[test]
    fn every_plan_is_safe_and_within_limits(state in pool(), limits in limits()) {
        let p = plan(&state, &limits).expect("generated pools are valid");
        check_plan(&state, &limits, &p)?;
    }

    #[test]
    fn replanning_converges_without_oscillating(state in pool(), limits in limits()) {
        let mut s = state;
        // Each partition's replica sets so far (as sets): a move back to one is an oscillation.
        let mut history: HashMap<(String, i32), Vec<Vec<i32>>> = s
            .partitions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), vec![sorted(&p.replicas)]))
            .collect();
        let mut empty = false;
        for _ in 0..200 {
            let p = plan(&s, &limits).expect("valid");
            check_plan(&s, &limits, &p)?;
            if p.is_empty() {
                empty = true;
                break;
            }
            // Repairs (dead replicas replaced, brokers vacated, racks fixed, capacity relieved)
            // change the pool's constraints, so the no-return property is judged from the state
            // after the last repair round on: balancing alone must never send a partition back.
            let repair = p.moves.iter().map(|m| m.reason).chain(p.leader_changes.iter().map(|c| c.reason)).any(|r| r.is_repair());
            if !repair {
                for m in &p.moves {
                    let h = history.entry((m.topic.clone(), m.partition)).or_default();
                    let set = sorted(&m.to_replicas);
                    prop_assert!(!h.contains(&set), "{}-{} back to {:?} after {:?}", m.topic, m.partition, set, h);
                    h.push(set);
                }
            }
            s = apply(&s, &p);
            if repair {
                history = s.partitions.iter().map(|q| ((q.topic.clone(), q.partition), vec![sorted(&q.replicas)])).collect();
            }
        }
        prop_assert!(empty, "no empty plan after 200 rounds");
    }

    #[test]
    fn place_new_is_rack_aware_and_avoids_draining(state in pool(), count in 1i32..20, rf in 1i32..4) {
        // A tenant new to the pool, so its own leader counts start even.
        match place_new(&state, "fresh", "fresh.new", count, rf, 0) {
            Ok(lists) => {
                let ok = eligible(&state);
                let racks = eligible_racks(&state);
                prop_assert_eq!(lists.len(), count as usize);
                for rs in &lists {
                    prop_assert_eq!(rs.len(), rf as usize);
                    prop_assert_eq!(sorted(rs).windows(2).filter(|w| w[0] == w[1]).count(), 0);
                    prop_assert!(rs.iter().all(|b| ok.contains(b)));
                    prop_assert_eq!(rack_diversity(&state, rs), (rf as usize).min(racks));
                }
                // Leaders spread: no broker leads more than its share rounded up.
                let mut leads: HashMap<i32, usize> = HashMap::new();
                for rs in &lists { *leads.entry(rs[0]).or_default() += 1; }
                let share = (count as usize).div_ceil(ok.len());
                prop_assert!(leads.values().all(|&c| c <= share), "{leads:?}");
                // Replicas spread too, when racks do not force them (every broker its own rack).
                if racks == ok.len() {
                    let mut held: HashMap<i32, usize> = HashMap::new();
                    for b in lists.iter().flatten() { *held.entry(*b).or_default() += 1; }
                    let replica_share = (count as usize * rf as usize).div_ceil(ok.len());
                    prop_assert!(held.values().all(|&c| c <= replica_share + 1), "{held:?}");
                }
            }
            Err(e) => prop_assert!(eligible(&state).len() < rf as usize, "{e}"),
        }
    }
}

fn sorted(v: &[i32]) -> Vec<i32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}
