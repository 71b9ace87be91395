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
//!    `imbalance_threshold` (an added, empty broker barely moves max / mean). Steps obey a band
//!    `[mean / threshold, mean × threshold]` (the rule of Cruise Control's distribution goals):
//!    load `d` goes from `h` to `t` only if one of them is outside the band, `t + d` stays at or
//!    under its top and `h − d` at or over its floor. The hottest broker sheds first, to the
//!    coldest feasible broker; a leadership change (no data copied) is taken whenever one
//!    qualifies, else the replica move with the best gain. Each step must also lower
//!    `max(load h, load t)` by at least `min_improvement` × mean load.
//! 4. **Leader counts**, then 5. **replica counts** (follower moves only), each only when its
//!    counts are uneven by the same test, with the same band on counts, and only with steps
//!    that move no load or that the load band allows.
//!
//! # Guarantees (property-tested in `tests/properties.rs`)
//! - No partition ends less rack-diverse than `min(before, min(replicas, eligible racks))`;
//!   balancing steps never lower diversity at all.
//! - New replicas and new leaders are always on live, non-draining brokers.
//! - Without repair steps ([`Reason::is_repair`]) the imbalance never rises: a target ends
//!   under the band's top or under the source's old load, so the maximum cannot grow.
//! - Limits hold, except that one repair larger than `max_bytes_moved` may be the plan's only
//!   copying move (otherwise a draining broker holding it could never be emptied).
//! - [`Plan::imbalance_after`] equals [`imbalance`] of [`apply`]'s result.
//! - Re-planning after [`apply`] converges without oscillating. The mean is the same in every
//!   balancing round (moves keep the total), so the band is too: a broker that ever received
//!   stays under the top and one that ever gave stays over the floor, hence nothing moved
//!   `h -> t` can travel back `t -> h` in any later round, and every step strictly lowers the
//!   sum of squared loads (or, moving no load, of squared counts), so the plans end empty.
//!   Repairs (including capacity relief) change the pool's constraints, so no-return holds from
//!   the last repair on; for a load-free partition moved by a count goal, from the last step
//!   that moved load (those reshuffle counts). The property test checks it on 10 000 random
//!   pools (`PROPTEST_CASES=10000`).
//!
//! Because a balancing step never lands a broker above the band's top, the pool settles at or
//! under `imbalance_threshold`, not at 1.0: the distance is the hysteresis, on top of the
//! minimum gain per step (measured rates jitter, and a move must buy more than the jitter).
//! Lumpy pools (a handful of partitions carrying most of the load) can stop above the band
//! when only a swap of two partitions would help; swaps are not planned.
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
