//! sluice placement: where partitions go, as a pure function of the pool (SPEC 8, issue 7).
//!
//! Two entry points, both without I/O, clocks or randomness (the applier and the background
//! rebalancer live elsewhere and only execute what these return):
//! - [`place_new`] gives explicit replica lists for CreateTopics / CreatePartitions.
//! - [`plan`] gives a [`Plan`] of leadership changes and replica moves for a [`ClusterState`]
//!   (brokers with rack, capacity and draining flag; partitions with tenant, replicas, leader
//!   and measured byte rates), within [`PlanLimits`].
//!
//! # Load model
//! Every replica receives the partition's bytes in; the leader also sends bytes out to
//! consumers and bytes in × (replicas − 1) to its followers. A broker's load is its bytes in
//! plus bytes out; [`imbalance`] is max / mean over live, non-draining brokers (SPEC 8). Absolute
//! bytes are evened out; [`Capacity`] is a constraint, not a weight. Brokers missing from
//! [`ClusterState::brokers`] are dead; a broker without a rack is its own rack.
//!
//! # How `plan` works
//! Greedy, in SPEC 8's goal order, one step per partition per plan (so the applier may run the
//! steps concurrently and a step never waits for another), with loads updated after each step:
//! 1. **Repairs** (moves, worst first, small first within a class): replicas on dead brokers
//!    replaced; partitions with fewer distinct racks than `min(replicas, eligible racks)` fixed
//!    by swapping rack duplicates; replicas on draining brokers moved off. Replacements go to
//!    an unused rack first, then a broker with room, then the least loaded. A repair that
//!    cannot fill every slot is not planned (shrinking a replica list loses durability).
//!    Partitions still led by a draining broker then get a leadership change (at most half
//!    of `max_leader_changes`, the rest is kept for balancing the followers that inherit them).
//! 2. **Capacity**: the most over-capacity broker sheds a leadership, else a replica, to a
//!    broker that stays within its capacity.
//! 3. **Network load**, only when the pool is uneven: the hottest broker above mean ×
//!    `imbalance_threshold` (SPEC 8's imbalance) or the coldest below mean /
//!    `imbalance_threshold` (an added, empty broker barely moves max / mean). Then the hottest
//!    broker sheds to the coldest feasible one; a leadership change (no data copied) is taken
//!    whenever one qualifies, else the replica move with the best gain. A step must lower
//!    `max(load source, load target)` by at least `min_improvement` × mean load, so the target
//!    always ends below the source's old load: the maximum never rises and the sum of squared
//!    loads strictly falls.
//! 4. **Leader counts**, then 5. **replica counts** (follower moves only), each only when its
//!    counts are uneven by the same test and max and min are two apart, and only with
//!    steps that do not raise the sum of squared loads.
//!
//! # Guarantees (property-tested in `tests/properties.rs`)
//! - No partition ends less rack-diverse than `min(before, min(replicas, eligible racks))`;
//!   balancing steps never lower diversity at all.
//! - New replicas and new leaders are always on live, non-draining brokers.
//! - Without repair steps ([`Reason::is_repair`]) the imbalance never rises.
//! - Limits hold, except that one repair larger than `max_bytes_moved` may be the plan's only
//!   copying move (otherwise a draining broker holding it could never be emptied).
//! - Re-planning after [`apply`] converges: every balancing step strictly lowers
//!   (sum of squared loads, then of leader counts, then of replica counts) lexicographically
//!   and repairs only remove violations, so no state recurs and the plan ends empty.
//!
//! Hysteresis is the threshold (start balancing only above it) plus the minimum gain per step;
//! measured rates jitter, and a move must buy more than the jitter.
//!
//! Runtime: about linear in partitions × steps / brokers; see
//! `docs/benchmarks/placement-sim.md` (100 brokers, 100 000 partitions, 2 000 tenants).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod model;
mod place;
mod planner;
pub mod synthetic;

pub use error::PlacementError;
pub use model::{
    apply, broker_loads, eligible_racks, imbalance, rack_diversity, Broker, Capacity, ClusterState,
    LeaderChange, Partition, Plan, Reason, ReplicaMove,
};
pub use place::place_new;
pub use planner::{plan, PlanLimits};
