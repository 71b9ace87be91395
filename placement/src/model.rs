//! The planner's input and output types, the load model (what one replica costs a broker), the
//! imbalance figure, and [`apply`], which predicts the cluster after a plan.

use std::collections::{HashMap, HashSet};

use crate::PlacementError;

/// Network capacity of one broker, in bytes per second.
///
/// The capacity goal keeps every broker's modelled in/out load at or under these figures when
/// the pool allows it. `f64::INFINITY` (the [`Default`]) means "unknown": never a constraint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Bytes per second the broker can receive (produce plus replication fetches it serves
    /// as a follower).
    pub bytes_in_per_sec: f64,
    /// Bytes per second the broker can send (consumer fetches plus replication to followers).
    pub bytes_out_per_sec: f64,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            bytes_in_per_sec: f64::INFINITY,
            bytes_out_per_sec: f64::INFINITY,
        }
    }
}

/// One broker of the pool as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    /// Kafka broker id (node id).
    pub id: i32,
    /// `broker.rack`; `None` makes the broker its own failure domain.
    pub rack: Option<String>,
    /// Network capacity; see [`Capacity`].
    pub capacity: Capacity,
    /// Being drained: must be emptied, and never receives a replica or a leadership.
    pub draining: bool,
}

/// One partition with its assignment and measured load.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// Pool topic name (the tenant prefix included).
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Owning tenant; used to spread a tenant's partitions on placement.
    pub tenant: String,
    /// Replica broker ids; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// Current leader, one of `replicas`, or -1 when the partition is offline.
    pub leader: i32,
    /// Measured produce bytes per second into the leader.
    pub bytes_in_per_sec: f64,
    /// Measured consumer fetch bytes per second out of the leader.
    pub bytes_out_per_sec: f64,
    /// Size of one replica on disk: what a replica move copies.
    pub size_bytes: u64,
}

/// The whole pool: the planner's only input besides its limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterState {
    /// Live brokers. A replica on an id missing here sits on a dead broker and is replaced.
    pub brokers: Vec<Broker>,
    /// Every partition of the pool.
    pub partitions: Vec<Partition>,
}

/// Why a plan step exists: the SPEC 8 goal it serves, in priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A replica sits on a broker missing from the broker list.
    DeadBroker,
    /// The partition's replicas share racks while more racks are available.
    RackSafety,
    /// A replica or the leadership sits on a draining broker.
    Drain,
    /// A broker is over its network capacity.
    Capacity,
    /// Evening out network load (bytes in incl. replication, bytes out).
    NetworkLoad,
    /// Evening out leader counts.
    LeaderCount,
    /// Evening out replica counts.
    ReplicaCount,
}

impl Reason {
    /// Repairs are mandatory (dead brokers, rack safety, draining, capacity) and may raise the
    /// imbalance; the other steps never do.
    pub fn is_repair(self) -> bool {
        matches!(
            self,
            Reason::DeadBroker | Reason::RackSafety | Reason::Drain | Reason::Capacity
        )
    }
}

/// A leadership change: executed as a replica reorder (no data copied) and a preferred-leader
/// election, so [`apply`] puts `to` first in the replica list.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderChange {
    /// Pool topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Leader before the change.
    pub from: i32,
    /// New leader; always a live, non-draining replica of the partition.
    pub to: i32,
    /// The goal this step serves.
    pub reason: Reason,
}

/// A replica reassignment: `to_replicas[0]` is the leader once the move completes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaMove {
    /// Pool topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Replica list before the move.
    pub from_replicas: Vec<i32>,
    /// Replica list after the move, preferred leader first. Brokers not in `from_replicas` are
    /// always live and non-draining.
    pub to_replicas: Vec<i32>,
    /// Bytes copied: `size_bytes` times the number of new replicas.
    pub bytes: u64,
    /// The goal this step serves.
    pub reason: Reason,
}

/// The planner's output. Each partition appears in at most one step, so the steps can be
/// executed in any order or concurrently.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Leadership changes.
    pub leader_changes: Vec<LeaderChange>,
    /// Replica moves, repairs first.
    pub moves: Vec<ReplicaMove>,
    /// Imbalance of the input ([`imbalance`]).
    pub imbalance_before: f64,
    /// Predicted imbalance once the plan is applied (equals `imbalance(&apply(state, plan))`).
    pub imbalance_after: f64,
    /// Repairs (dead, rack, drain) left for a later plan because of the limits, or impossible
    /// for lack of eligible brokers.
    pub deferred_repairs: usize,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.leader_changes.is_empty() && self.moves.is_empty()
    }

    /// Total bytes the moves copy.
    pub fn bytes_moved(&self) -> u64 {
        self.moves.iter().map(|m| m.bytes).sum()
    }
}

/// Modelled network load of each broker id: `(bytes in, bytes out)` per second.
///
/// Each replica receives the partition's bytes in (the leader from producers, followers by
/// replication); the leader also sends bytes out to consumers and bytes in × (replicas − 1) to
/// its followers. Replicas on brokers absent from the list are ignored.
pub fn broker_loads(state: &ClusterState) -> HashMap<i32, (f64, f64)> {
    let mut loads: HashMap<i32, (f64, f64)> =
        state.brokers.iter().map(|b| (b.id, (0.0, 0.0))).collect();
    for p in &state.partitions {
        let followers = p.replicas.len().saturating_sub(1) as f64;
        for &r in &p.replicas {
            if let Some(l) = loads.get_mut(&r) {
                l.0 += p.bytes_in_per_sec;
                if r == p.leader {
                    l.1 += p.bytes_out_per_sec + p.bytes_in_per_sec * followers;
                }
            }
        }
    }
    loads
}

/// SPEC 8's imbalance: max broker load / mean broker load (load = bytes in + bytes out), over
/// live, non-draining brokers. 1.0 when there is no such broker or no load.
pub fn imbalance(state: &ClusterState) -> f64 {
    let loads = broker_loads(state);
    let eligible: Vec<f64> = state
        .brokers
        .iter()
        .filter(|b| !b.draining)
        .map(|b| loads.get(&b.id).map_or(0.0, |l| l.0 + l.1))
        .collect();
    imbalance_of(eligible.iter().copied())
}

pub(crate) fn imbalance_of(loads: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut sum, mut max) = (0usize, 0.0f64, 0.0f64);
    for l in loads {
        n += 1;
        sum += l;
        max = max.max(l);
    }
    if n == 0 || sum <= 0.0 {
        return 1.0;
    }
    max / (sum / n as f64)
}

/// The cluster as it will be once `plan` has been executed: moves replace the replica list and
/// elect its first replica; leader changes elect `to` and put it first. Steps naming a
/// partition that is not in `state` are ignored.
pub fn apply(state: &ClusterState, plan: &Plan) -> ClusterState {
    let mut out = state.clone();
    let index: HashMap<(&str, i32), usize> = state
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.topic.as_str(), p.partition), i))
        .collect();
    for m in &plan.moves {
        if let Some(&i) = index.get(&(m.topic.as_str(), m.partition)) {
            let p = &mut out.partitions[i];
            p.replicas = m.to_replicas.clone();
            p.leader = m.to_replicas.first().copied().unwrap_or(-1);
        }
    }
    for c in &plan.leader_changes {
        if let Some(&i) = index.get(&(c.topic.as_str(), c.partition)) {
            let p = &mut out.partitions[i];
            p.leader = c.to;
            if let Some(pos) = p.replicas.iter().position(|&r| r == c.to) {
                let r = p.replicas.remove(pos);
                p.replicas.insert(0, r);
            }
        }
    }
    out
}

/// Distinct racks among the live replicas of `replicas` (a broker without a rack is its own
/// rack; replicas on missing brokers do not count).
pub fn rack_diversity(state: &ClusterState, replicas: &[i32]) -> usize {
    let racks: HashMap<i32, RackKey<'_>> =
        state.brokers.iter().map(|b| (b.id, rack_key(b))).collect();
    let seen: HashSet<RackKey<'_>> = replicas
        .iter()
        .filter_map(|r| racks.get(r).cloned())
        .collect();
    seen.len()
}

/// Number of distinct racks among live, non-draining brokers: the most diversity a partition
/// can be asked for (capped by its replication factor).
pub fn eligible_racks(state: &ClusterState) -> usize {
    let seen: HashSet<RackKey<'_>> = state
        .brokers
        .iter()
        .filter(|b| !b.draining)
        .map(rack_key)
        .collect();
    seen.len()
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum RackKey<'a> {
    Named(&'a str),
    Own(i32),
}

fn rack_key(b: &Broker) -> RackKey<'_> {
    match &b.rack {
        Some(r) => RackKey::Named(r.as_str()),
        None => RackKey::Own(b.id),
    }
}

/// Checks what the planner relies on: unique broker ids, positive capacities, partitions with
/// distinct replicas, a leader among them (or -1), finite non-negative rates, no duplicates.
pub(crate) fn validate(state: &ClusterState) -> Result<(), PlacementError> {
    let mut ids = HashSet::new();
    for b in &state.brokers {
        if !ids.insert(b.id) {
            return Err(PlacementError::DuplicateBroker(b.id));
        }
        let ok = |c: f64| c > 0.0; // false for NaN too
        if !ok(b.capacity.bytes_in_per_sec) || !ok(b.capacity.bytes_out_per_sec) {
            return Err(PlacementError::InvalidCapacity { broker: b.id });
        }
    }
    let mut seen = HashSet::new();
    for p in &state.partitions {
        let bad = |reason| PlacementError::InvalidPartition {
            topic: p.topic.clone(),
            partition: p.partition,
            reason,
        };
        if !seen.insert((p.topic.as_str(), p.partition)) {
            return Err(bad("listed twice"));
        }
        if p.replicas.is_empty() {
            return Err(bad("no replicas"));
        }
        let distinct: HashSet<i32> = p.replicas.iter().copied().collect();
        if distinct.len() != p.replicas.len() {
            return Err(bad("a broker appears twice in the replica list"));
        }
        if p.leader != -1 && !distinct.contains(&p.leader) {
            return Err(bad("leader is not one of the replicas"));
        }
        let rate = |r: f64| r.is_finite() && r >= 0.0;
        if !rate(p.bytes_in_per_sec) || !rate(p.bytes_out_per_sec) {
            return Err(bad("byte rates must be finite and non-negative"));
        }
    }
    Ok(())
}
