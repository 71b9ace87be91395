//! Placement of new partitions (CreateTopics / CreatePartitions): explicit replica lists that
//! are rack-aware, spread per broker and per tenant, and weighted by measured load.

use std::collections::{HashMap, HashSet};

use crate::model::validate;
use crate::{ClusterState, PlacementError};

/// Replica lists (leader first) for partitions `first_partition_index ..` of `topic`, owned
/// by `tenant`.
///
/// Each partition picks its leader, then its followers, from live non-draining brokers by, in
/// order: a rack not yet used by this partition (while one is left), fewest replicas (leaders,
/// for the leader) of this tenant, fewest of this topic, least measured load, fewest replicas
/// (leaders) overall, then a rotation by partition index. Each pick adds the new partition's
/// expected load (the tenant's mean partition rates, else the pool's, else zero) to the chosen
/// brokers, so one call spreads its own partitions too.
///
/// # Errors
/// [`PlacementError::InvalidRequest`] for `partitions` or `replication_factor` below 1,
/// [`PlacementError::NotEnoughBrokers`] when fewer live non-draining brokers than the
/// replication factor exist, and the validation errors of [`plan`](crate::plan).
pub fn place_new(
    state: &ClusterState,
    tenant: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    first_partition_index: i32,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if partitions < 1 {
        return Err(PlacementError::InvalidRequest(
            "partitions must be at least 1",
        ));
    }
    if replication_factor < 1 {
        return Err(PlacementError::InvalidRequest(
            "replication factor must be at least 1",
        ));
    }
    validate(state)?;
    let rf = replication_factor as usize;
    let eligible: Vec<&crate::Broker> = state.brokers.iter().filter(|b| !b.draining).collect();
    if eligible.len() < rf {
        return Err(PlacementError::NotEnoughBrokers {
            eligible: eligible.len(),
            replication_factor,
        });
    }
    let n = eligible.len();
    let index: HashMap<i32, usize> = eligible
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id, i))
        .collect();
    let mut rack_of: HashMap<&str, usize> = HashMap::new();
    let rack: Vec<usize> = eligible
        .iter()
        .enumerate()
        .map(|(i, b)| match &b.rack {
            Some(r) => {
                let next = n + rack_of.len();
                *rack_of.entry(r.as_str()).or_insert(next)
            }
            None => i, // its own rack
        })
        .collect();

    let mut load = vec![0.0f64; n];
    let (mut replicas, mut leaders) = (vec![0usize; n], vec![0usize; n]);
    let (mut t_replicas, mut t_leaders, mut topic_replicas) =
        (vec![0usize; n], vec![0usize; n], vec![0usize; n]);
    let (mut t_in, mut t_out, mut t_n) = (0.0, 0.0, 0usize);
    let (mut all_in, mut all_out) = (0.0, 0.0);
    for p in &state.partitions {
        let own = p.tenant == tenant;
        if own {
            t_in += p.bytes_in_per_sec;
            t_out += p.bytes_out_per_sec;
            t_n += 1;
        }
        all_in += p.bytes_in_per_sec;
        all_out += p.bytes_out_per_sec;
        let followers = p.replicas.len().saturating_sub(1) as f64;
        for &r in &p.replicas {
            let Some(&b) = index.get(&r) else { continue };
            let lead = r == p.leader;
            load[b] += p.bytes_in_per_sec
                + if lead {
                    p.bytes_out_per_sec + p.bytes_in_per_sec * followers
                } else {
                    0.0
                };
            replicas[b] += 1;
            leaders[b] += usize::from(lead);
            if own {
                t_replicas[b] += 1;
                t_leaders[b] += usize::from(lead);
            }
            if p.topic == topic {
                topic_replicas[b] += 1;
            }
        }
    }
    // Expected rates of one new partition.
    let (est_in, est_out) = if t_n > 0 {
        (t_in / t_n as f64, t_out / t_n as f64)
    } else if !state.partitions.is_empty() {
        let c = state.partitions.len() as f64;
        (all_in / c, all_out / c)
    } else {
        (0.0, 0.0)
    };
    let leader_load = est_in + est_out + est_in * (rf - 1) as f64;

    let mut out = Vec::with_capacity(partitions as usize);
    for k in 0..partitions {
        let pidx = first_partition_index.wrapping_add(k) as i64;
        let rot = |b: usize| (b as i64 - pidx).rem_euclid(n as i64);
        let mut chosen: Vec<usize> = Vec::with_capacity(rf);
        let mut used_racks: HashSet<usize> = HashSet::new();
        for slot in 0..rf {
            let lead = slot == 0;
            let fresh_rack_left =
                (0..n).any(|b| !chosen.contains(&b) && !used_racks.contains(&rack[b]));
            let pick = (0..n)
                .filter(|b| !chosen.contains(b))
                .filter(|b| !fresh_rack_left || !used_racks.contains(&rack[*b]))
                .min_by(|&a, &b| {
                    let key = |x: usize| {
                        if lead {
                            (t_leaders[x], t_replicas[x], topic_replicas[x])
                        } else {
                            (t_replicas[x], topic_replicas[x], 0)
                        }
                    };
                    let overall = |x: usize| if lead { leaders[x] } else { replicas[x] };
                    key(a)
                        .cmp(&key(b))
                        .then(load[a].total_cmp(&load[b]))
                        .then(overall(a).cmp(&overall(b)))
                        .then(rot(a).cmp(&rot(b)))
                });
            // Cannot fail: at least rf eligible brokers exist and fewer than rf are chosen.
            let Some(b) = pick else { break };
            chosen.push(b);
            used_racks.insert(rack[b]);
            load[b] += if lead { leader_load } else { est_in };
            replicas[b] += 1;
            t_replicas[b] += 1;
            topic_replicas[b] += 1;
            if lead {
                leaders[b] += 1;
                t_leaders[b] += 1;
            }
        }
        out.push(chosen.iter().map(|&b| eligible[b].id).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Broker, Capacity, Partition};

    fn brokers(racks: &[&str]) -> Vec<Broker> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| Broker {
                id: i as i32 + 1,
                rack: Some((*r).into()),
                capacity: Capacity::default(),
                draining: false,
            })
            .collect()
    }

    fn count(lists: &[Vec<i32>], id: i32, leaders_only: bool) -> usize {
        lists
            .iter()
            .filter(|rs| {
                if leaders_only {
                    rs[0] == id
                } else {
                    rs.contains(&id)
                }
            })
            .count()
    }

    #[test]
    fn spreads_evenly_over_brokers_and_racks() {
        let state = ClusterState {
            brokers: brokers(&["a", "b", "c", "a", "b", "c"]),
            partitions: vec![],
        };
        let lists = place_new(&state, "acme", "acme.orders", 12, 3, 0).expect("placement");
        assert_eq!(lists.len(), 12);
        for rs in &lists {
            assert_eq!(rs.len(), 3);
            assert_eq!(crate::rack_diversity(&state, rs), 3, "{rs:?}");
        }
        for id in 1..=6 {
            assert_eq!(
                count(&lists, id, false),
                6,
                "replicas on broker {id}: {lists:?}"
            );
            assert_eq!(
                count(&lists, id, true),
                2,
                "leaders on broker {id}: {lists:?}"
            );
        }
    }

    #[test]
    fn racks_fewer_than_replication_factor_still_use_every_rack() {
        let state = ClusterState {
            brokers: brokers(&["a", "a", "b", "b"]),
            partitions: vec![],
        };
        for rs in place_new(&state, "acme", "acme.t", 8, 3, 0).expect("placement") {
            assert_eq!(crate::rack_diversity(&state, &rs), 2, "{rs:?}");
        }
    }

    #[test]
    fn draining_brokers_receive_nothing_and_too_few_brokers_is_an_error() {
        let mut bs = brokers(&["a", "b", "c", "a"]);
        bs[0].draining = true;
        let state = ClusterState {
            brokers: bs,
            partitions: vec![],
        };
        let lists = place_new(&state, "acme", "acme.t", 9, 3, 0).expect("placement");
        assert_eq!(count(&lists, 1, false), 0);
        assert_eq!(
            place_new(&state, "acme", "acme.t", 1, 4, 0),
            Err(PlacementError::NotEnoughBrokers {
                eligible: 3,
                replication_factor: 4
            })
        );
        assert!(matches!(
            place_new(&state, "acme", "acme.t", 0, 1, 0),
            Err(PlacementError::InvalidRequest(_))
        ));
    }

    #[test]
    fn a_tenant_spreads_away_from_its_existing_partitions_and_from_load() {
        let hot = |topic: &str, tenant: &str, broker: i32, rate: f64| Partition {
            topic: topic.into(),
            partition: 0,
            tenant: tenant.into(),
            replicas: vec![broker],
            leader: broker,
            bytes_in_per_sec: rate,
            bytes_out_per_sec: rate,
            size_bytes: 0,
        };
        let state = ClusterState {
            brokers: brokers(&["a", "b", "c", "d"]),
            partitions: vec![
                hot("acme.old", "acme", 1, 1.0),
                hot("other.big", "other", 2, 1000.0),
            ],
        };
        // acme already has a partition on broker 1; broker 2 is loaded by another tenant.
        let lists = place_new(&state, "acme", "acme.new", 2, 1, 0).expect("placement");
        let used: Vec<i32> = lists.iter().map(|rs| rs[0]).collect();
        assert!(!used.contains(&1), "acme's own broker avoided: {used:?}");
        assert!(!used.contains(&2), "loaded broker avoided: {used:?}");
        assert_eq!(
            {
                let mut u = used.clone();
                u.sort();
                u
            },
            vec![3, 4]
        );
    }
}
