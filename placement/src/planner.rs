//! The rebalancing planner: from a [`ClusterState`] and [`PlanLimits`] to a [`Plan`], with no
//! I/O. Works on an indexed copy of the pool ([`Work`]) whose loads are updated after every
//! step, so each decision sees the effect of the previous ones.

use std::collections::HashMap;

use crate::model::{validate, LeaderChange, Plan, ReplicaMove};
use crate::{ClusterState, PlacementError, Reason};

/// Budgets and hysteresis for one plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanLimits {
    /// Most replica moves in one plan (concurrent reassignments the applier runs).
    pub max_moves: usize,
    /// Most bytes copied by one plan's moves. A single repair larger than this is still allowed
    /// as the plan's only copying move, or a draining broker holding it could never be emptied.
    pub max_bytes_moved: u64,
    /// Most leadership changes in one plan.
    pub max_leader_changes: usize,
    /// Balancing starts only when the hottest broker is above mean × this (SPEC 8's imbalance)
    /// or the coldest below mean / this, e.g. 1.10; the count goals apply the same test to
    /// leader and replica counts.
    pub imbalance_threshold: f64,
    /// Each load-balancing step must lower the higher of its two brokers' loads by at least
    /// this fraction of the mean broker load, e.g. 0.002: no churn for crumbs. The other part
    /// of the hysteresis is the band `[mean / imbalance_threshold, mean × imbalance_threshold]`
    /// that steps must respect (see the crate docs).
    pub min_improvement: f64,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits {
            max_moves: 50,
            max_bytes_moved: 50 << 30,
            max_leader_changes: 500,
            imbalance_threshold: 1.10,
            min_improvement: 0.002,
        }
    }
}

/// Plans leader elections and replica moves for `state` within `limits`.
///
/// Goals, in order (SPEC 8): replicas on dead brokers replaced, rack safety, draining brokers
/// emptied (moves, then leadership), capacity, even network load, even leader counts, even
/// replica counts. See the crate docs for the algorithm and its guarantees.
///
/// # Errors
/// [`PlacementError`] when `state` is inconsistent (duplicate broker or partition, bad capacity,
/// empty or duplicated replicas, leader not a replica, negative or NaN rates).
pub fn plan(state: &ClusterState, limits: &PlanLimits) -> Result<Plan, PlacementError> {
    validate(state)?;
    let mut w = Work::new(state);
    let mut out = Plan {
        imbalance_before: w.imbalance(),
        ..Plan::default()
    };
    let mut budget = Budget {
        moves: limits.max_moves,
        bytes: limits.max_bytes_moved,
        leaders: limits.max_leader_changes,
        copied_any: false,
    };
    w.repairs(&mut out, &mut budget);
    w.capacity(&mut out, &mut budget);
    if w.load_uneven(limits.imbalance_threshold) {
        w.balance_load(
            &mut out,
            &mut budget,
            limits.min_improvement,
            limits.imbalance_threshold,
        );
    }
    w.balance_leaders(&mut out, &mut budget, limits.imbalance_threshold);
    w.balance_replicas(&mut out, &mut budget, limits.imbalance_threshold);
    out.imbalance_after = w.imbalance();
    Ok(out)
}

/// What is left of the plan's limits.
struct Budget {
    moves: usize,
    bytes: u64,
    leaders: usize,
    /// A move with bytes has been planned: the oversize-repair exception is used up.
    copied_any: bool,
}

impl Budget {
    fn fits(&self, bytes: u64, repair: bool) -> bool {
        self.moves > 0 && (bytes <= self.bytes || (repair && !self.copied_any))
    }
    fn take(&mut self, bytes: u64) {
        self.moves -= 1;
        self.bytes = self.bytes.saturating_sub(bytes);
        self.copied_any |= bytes > 0;
    }
}

/// Indexed, mutable copy of the pool. Broker indices cover the listed brokers, then the ids
/// only seen in replica lists (dead brokers).
struct Work<'a> {
    state: &'a ClusterState,
    ids: Vec<i32>,
    /// Listed and not draining: may receive replicas and leadership.
    eligible: Vec<bool>,
    /// In the broker list (dead brokers are not).
    listed: Vec<bool>,
    rack: Vec<u32>,
    cap_in: Vec<f64>,
    cap_out: Vec<f64>,
    load_in: Vec<f64>,
    load_out: Vec<f64>,
    leaders: Vec<usize>,
    replica_count: Vec<usize>,
    /// Partitions with a replica on each broker.
    on: Vec<Vec<usize>>,
    replicas: Vec<Vec<usize>>,
    leader: Vec<Option<usize>>,
    /// Already in the plan: one step per partition.
    locked: Vec<bool>,
    /// Needs a repair the budget did not allow: balancing leaves it alone.
    pending: Vec<bool>,
    /// Distinct racks among eligible brokers.
    eligible_racks: usize,
}

impl<'a> Work<'a> {
    fn new(state: &'a ClusterState) -> Self {
        let mut idx: HashMap<i32, usize> = HashMap::new();
        let mut ids = Vec::new();
        let mut rack_ids: HashMap<&str, u32> = HashMap::new();
        let mut rack = Vec::new();
        let (mut listed, mut eligible, mut cap_in, mut cap_out) = (vec![], vec![], vec![], vec![]);
        let mut next_rack = 0u32;
        let fresh_rack = |next: &mut u32| {
            *next += 1;
            *next - 1
        };
        for b in &state.brokers {
            idx.insert(b.id, ids.len());
            ids.push(b.id);
            let r = match &b.rack {
                Some(name) => match rack_ids.get(name.as_str()) {
                    Some(&r) => r,
                    None => {
                        let r = fresh_rack(&mut next_rack);
                        rack_ids.insert(name.as_str(), r);
                        r
                    }
                },
                None => fresh_rack(&mut next_rack),
            };
            rack.push(r);
            listed.push(true);
            eligible.push(!b.draining);
            cap_in.push(b.capacity.bytes_in_per_sec);
            cap_out.push(b.capacity.bytes_out_per_sec);
        }
        let mut replicas = Vec::with_capacity(state.partitions.len());
        let mut leader = Vec::with_capacity(state.partitions.len());
        for p in &state.partitions {
            let mut rs = Vec::with_capacity(p.replicas.len());
            for &r in &p.replicas {
                let i = *idx.entry(r).or_insert_with(|| {
                    ids.push(r);
                    rack.push(fresh_rack(&mut next_rack));
                    listed.push(false);
                    eligible.push(false);
                    cap_in.push(f64::INFINITY);
                    cap_out.push(f64::INFINITY);
                    ids.len() - 1
                });
                rs.push(i);
            }
            leader.push(if p.leader == -1 {
                None
            } else {
                idx.get(&p.leader).copied()
            });
            replicas.push(rs);
        }
        let n = ids.len();
        let eligible_racks = {
            let mut rs: Vec<u32> = (0..n).filter(|&b| eligible[b]).map(|b| rack[b]).collect();
            rs.sort_unstable();
            rs.dedup();
            rs.len()
        };
        let mut w = Work {
            state,
            ids,
            eligible,
            listed,
            rack,
            cap_in,
            cap_out,
            load_in: vec![0.0; n],
            load_out: vec![0.0; n],
            leaders: vec![0; n],
            replica_count: vec![0; n],
            on: vec![Vec::new(); n],
            replicas: Vec::new(),
            leader: Vec::new(),
            locked: vec![false; state.partitions.len()],
            pending: vec![false; state.partitions.len()],
            eligible_racks,
        };
        for (p, (rs, l)) in replicas.into_iter().zip(leader).enumerate() {
            w.replicas.push(Vec::new());
            w.leader.push(None);
            w.assign(p, rs, l);
        }
        w
    }

    fn load(&self, b: usize) -> f64 {
        self.load_in[b] + self.load_out[b]
    }

    fn eligible_brokers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.ids.len()).filter(|&b| self.eligible[b])
    }

    fn imbalance(&self) -> f64 {
        crate::model::imbalance_of(self.eligible_brokers().map(|b| self.load(b)))
    }

    fn mean_load(&self) -> f64 {
        let (n, s) = self
            .eligible_brokers()
            .fold((0usize, 0.0), |(n, s), b| (n + 1, s + self.load(b)));
        if n == 0 {
            0.0
        } else {
            s / n as f64
        }
    }

    /// (bytes in, bytes out) partition `p` puts on one replica, as leader or follower.
    fn contrib(&self, p: usize, leader: bool, replication_factor: usize) -> (f64, f64) {
        let part = &self.state.partitions[p];
        let out = if leader {
            part.bytes_out_per_sec
                + part.bytes_in_per_sec * replication_factor.saturating_sub(1) as f64
        } else {
            0.0
        };
        (part.bytes_in_per_sec, out)
    }

    /// Replaces partition `p`'s assignment, keeping loads, counts and indexes current.
    fn assign(&mut self, p: usize, replicas: Vec<usize>, leader: Option<usize>) {
        let old = std::mem::take(&mut self.replicas[p]);
        let old_leader = self.leader[p];
        for &b in &old {
            let (i, o) = self.contrib(p, old_leader == Some(b), old.len());
            self.load_in[b] -= i;
            self.load_out[b] -= o;
            self.replica_count[b] -= 1;
            if let Some(pos) = self.on[b].iter().position(|&q| q == p) {
                self.on[b].swap_remove(pos);
            }
        }
        if let Some(l) = old_leader {
            self.leaders[l] -= 1;
        }
        for &b in &replicas {
            let (i, o) = self.contrib(p, leader == Some(b), replicas.len());
            self.load_in[b] += i;
            self.load_out[b] += o;
            self.replica_count[b] += 1;
            self.on[b].push(p);
        }
        if let Some(l) = leader {
            self.leaders[l] += 1;
        }
        self.replicas[p] = replicas;
        self.leader[p] = leader;
    }

    fn diversity(&self, replicas: &[usize]) -> usize {
        let mut rs: Vec<u32> = replicas
            .iter()
            .filter(|&&b| self.listed[b])
            .map(|&b| self.rack[b])
            .collect();
        rs.sort_unstable();
        rs.dedup();
        rs.len()
    }

    fn required_diversity(&self, p: usize) -> usize {
        self.replicas[p].len().min(self.eligible_racks)
    }

    fn fits_capacity(&self, b: usize, add_in: f64, add_out: f64) -> bool {
        self.load_in[b] + add_in <= self.cap_in[b] && self.load_out[b] + add_out <= self.cap_out[b]
    }

    fn record_move(
        &mut self,
        out: &mut Plan,
        p: usize,
        to: Vec<usize>,
        leader: Option<usize>,
        reason: Reason,
    ) -> u64 {
        let part = &self.state.partitions[p];
        let new = to.iter().filter(|b| !self.replicas[p].contains(b)).count() as u64;
        let bytes = part.size_bytes.saturating_mul(new);
        let mut ordered: Vec<usize> = Vec::with_capacity(to.len());
        if let Some(l) = leader {
            ordered.push(l);
        }
        ordered.extend(to.iter().copied().filter(|&b| Some(b) != leader));
        out.moves.push(ReplicaMove {
            topic: part.topic.clone(),
            partition: part.partition,
            from_replicas: part.replicas.clone(),
            to_replicas: ordered.iter().map(|&b| self.ids[b]).collect(),
            bytes,
            reason,
        });
        self.assign(p, ordered, leader);
        self.locked[p] = true;
        bytes
    }

    fn record_leader(&mut self, out: &mut Plan, p: usize, to: usize, reason: Reason) {
        let part = &self.state.partitions[p];
        out.leader_changes.push(LeaderChange {
            topic: part.topic.clone(),
            partition: part.partition,
            from: part.leader,
            to: self.ids[to],
            reason,
        });
        let mut rs = self.replicas[p].clone();
        if let Some(pos) = rs.iter().position(|&b| b == to) {
            let b = rs.remove(pos);
            rs.insert(0, b);
        }
        self.assign(p, rs, Some(to));
        self.locked[p] = true;
    }

    // === repairs: dead brokers, rack safety, draining ===

    fn repair_class(&self, p: usize) -> Option<Reason> {
        let rs = &self.replicas[p];
        if rs.iter().any(|&b| !self.listed[b]) {
            Some(Reason::DeadBroker)
        } else if self.diversity(rs) < self.required_diversity(p) {
            Some(Reason::RackSafety)
        } else if rs.iter().any(|&b| !self.eligible[b]) {
            Some(Reason::Drain)
        } else {
            None
        }
    }

    /// The repaired replica set of `p` and its leader, or `None` when there are not enough
    /// eligible brokers to fill every slot (then nothing is changed: a shorter replica list
    /// would lose durability).
    fn repaired(&self, p: usize) -> Option<(Vec<usize>, Option<usize>)> {
        let rs = &self.replicas[p];
        let rf = rs.len();
        let target = rf.min(self.eligible_racks);
        let mut kept: Vec<usize> = rs.iter().copied().filter(|&b| self.eligible[b]).collect();
        // Drop rack duplicates (followers first, most loaded first) until the free slots can
        // bring the diversity up to the target.
        while self.diversity(&kept) + (rf - kept.len()) < target {
            let mut dup: Vec<usize> = kept
                .iter()
                .copied()
                .filter(|&b| {
                    kept.iter()
                        .filter(|&&c| self.rack[c] == self.rack[b])
                        .count()
                        > 1
                })
                .collect();
            dup.sort_by(|&a, &b| {
                (Some(a) == self.leader[p])
                    .cmp(&(Some(b) == self.leader[p]))
                    .then(self.load(b).total_cmp(&self.load(a)))
            });
            let drop = *dup.first()?;
            kept.retain(|&b| b != drop);
        }
        let (fin, _) = self.contrib(p, false, rf);
        let mut chosen = kept.clone();
        while chosen.len() < rf {
            let used: Vec<u32> = chosen.iter().map(|&b| self.rack[b]).collect();
            let best = self
                .eligible_brokers()
                .filter(|b| !chosen.contains(b))
                .min_by(|&a, &b| {
                    let key = |x: usize| {
                        (
                            used.contains(&self.rack[x]),
                            !self.fits_capacity(x, fin, 0.0),
                        )
                    };
                    key(a)
                        .cmp(&key(b))
                        .then(self.load(a).total_cmp(&self.load(b)))
                        .then(a.cmp(&b))
                })?;
            chosen.push(best);
        }
        let leader = match self.leader[p] {
            Some(l) if kept.contains(&l) => Some(l),
            _ => kept
                .iter()
                .copied()
                .min_by(|&a, &b| self.load(a).total_cmp(&self.load(b)))
                .or_else(|| chosen.first().copied()),
        };
        Some((chosen, leader))
    }

    fn repairs(&mut self, out: &mut Plan, budget: &mut Budget) {
        let mut todo: Vec<(Reason, u64, usize)> = (0..self.replicas.len())
            .filter_map(|p| {
                self.repair_class(p)
                    .map(|r| (r, self.state.partitions[p].size_bytes, p))
            })
            .collect();
        // Worst first; small first within a class so more repairs fit the byte budget.
        todo.sort_unstable();
        for (reason, size, p) in todo {
            let Some((to, leader)) = self.repaired(p) else {
                out.deferred_repairs += 1;
                self.pending[p] = true;
                continue;
            };
            let new = to.iter().filter(|b| !self.replicas[p].contains(b)).count() as u64;
            if !budget.fits(size.saturating_mul(new), true) {
                out.deferred_repairs += 1;
                self.pending[p] = true;
                continue;
            }
            let bytes = self.record_move(out, p, to, leader, reason);
            budget.take(bytes);
        }
        // Leadership off draining brokers for partitions whose move did not fit: cheap, and the
        // broker stops serving clients at once. At most half the leader budget, since the
        // followers that inherit these leaderships are clustered and need the balancing steps.
        let reserve = budget.leaders - budget.leaders.div_ceil(2);
        for p in 0..self.replicas.len() {
            if budget.leaders <= reserve {
                break;
            }
            let Some(l) = self.leader[p] else { continue };
            if self.locked[p] || !self.listed[l] || self.eligible[l] {
                continue;
            }
            let to = self.replicas[p]
                .iter()
                .copied()
                .filter(|&b| self.eligible[b])
                .min_by(|&a, &b| self.load(a).total_cmp(&self.load(b)));
            if let Some(to) = to {
                self.record_leader(out, p, to, Reason::Drain);
                budget.leaders -= 1;
            }
        }
    }

    // === capacity ===

    /// Over-capacity amount of broker `b`, as fractions of its capacities.
    fn overflow(&self, b: usize, d_in: f64, d_out: f64) -> f64 {
        let o = |load: f64, cap: f64| if load > cap { (load - cap) / cap } else { 0.0 };
        o(self.load_in[b] + d_in, self.cap_in[b]) + o(self.load_out[b] + d_out, self.cap_out[b])
    }

    fn capacity(&mut self, out: &mut Plan, budget: &mut Budget) {
        let mut stuck = vec![false; self.ids.len()];
        loop {
            let worst = self
                .eligible_brokers()
                .filter(|&b| !stuck[b] && self.overflow(b, 0.0, 0.0) > 0.0)
                .max_by(|&a, &b| {
                    self.overflow(a, 0.0, 0.0)
                        .total_cmp(&self.overflow(b, 0.0, 0.0))
                });
            let Some(h) = worst else { return };
            let now = self.overflow(h, 0.0, 0.0);
            // Coldest first, so relieving capacity disturbs the load balance least.
            let mut coldest: Vec<usize> = self.eligible_brokers().collect();
            coldest.sort_by(|&a, &b| self.load(a).total_cmp(&self.load(b)).then(a.cmp(&b)));
            // Best leader change, then best move; a target must stay within its capacity.
            let mut best_leader: Option<(f64, usize, usize)> = None;
            let mut best_move: Option<(f64, usize, usize)> = None;
            for &p in &self.on[h] {
                if self.locked[p] || self.pending[p] {
                    continue;
                }
                let rf = self.replicas[p].len();
                let is_leader = self.leader[p] == Some(h);
                let (ci, co) = self.contrib(p, is_leader, rf);
                if is_leader && budget.leaders > 0 {
                    let (_, lo) = self.contrib(p, true, rf);
                    for &f in &self.replicas[p] {
                        if f != h && self.eligible[f] && self.fits_capacity(f, 0.0, lo) {
                            let gain = now - self.overflow(h, 0.0, -lo);
                            if gain > 0.0 && best_leader.is_none_or(|(g, _, _)| gain > g) {
                                best_leader = Some((gain, p, f));
                            }
                        }
                    }
                }
                let size = self.state.partitions[p].size_bytes;
                if budget.fits(size, false) {
                    let div = self.diversity(&self.replicas[p]);
                    for &t in &coldest {
                        if self.replicas[p].contains(&t) || !self.fits_capacity(t, ci, co) {
                            continue;
                        }
                        if self.diversity_with(p, h, t) < div {
                            continue;
                        }
                        let gain = now - self.overflow(h, -ci, -co);
                        if gain > 0.0 && best_move.is_none_or(|(g, _, _)| gain > g) {
                            best_move = Some((gain, p, t));
                        }
                        break;
                    }
                }
            }
            if let Some((_, p, f)) = best_leader {
                self.record_leader(out, p, f, Reason::Capacity);
                budget.leaders -= 1;
            } else if let Some((_, p, t)) = best_move {
                let bytes = self.move_one(out, p, h, t, Reason::Capacity);
                budget.take(bytes);
            } else {
                stuck[h] = true;
            }
        }
    }

    fn diversity_with(&self, p: usize, from: usize, to: usize) -> usize {
        let rs: Vec<usize> = self.replicas[p]
            .iter()
            .map(|&b| if b == from { to } else { b })
            .collect();
        self.diversity(&rs)
    }

    /// Moves `p`'s replica from `h` to `t`; a moved leader replica takes the leadership along.
    fn move_one(&mut self, out: &mut Plan, p: usize, h: usize, t: usize, reason: Reason) -> u64 {
        let to: Vec<usize> = self.replicas[p]
            .iter()
            .map(|&b| if b == h { t } else { b })
            .collect();
        let leader = match self.leader[p] {
            Some(l) if l == h => Some(t),
            other => other,
        };
        self.record_move(out, p, to, leader, reason)
    }

    // === even network load ===

    fn balance_load(
        &mut self,
        out: &mut Plan,
        budget: &mut Budget,
        min_improvement: f64,
        threshold: f64,
    ) {
        let mean = self.mean_load();
        if mean <= 0.0 {
            return;
        }
        let band = Band::new(mean, threshold);
        let min_gain = (min_improvement * mean).max(f64::MIN_POSITIVE);
        let mut stuck = vec![false; self.ids.len()];
        while budget.leaders > 0 || budget.moves > 0 {
            let mut order: Vec<usize> = self.eligible_brokers().collect();
            order.sort_by(|&a, &b| self.load(a).total_cmp(&self.load(b)).then(a.cmp(&b)));
            let mut acted = false;
            for &h in order.iter().rev() {
                if self.load(h) <= band.low {
                    break; // a source must stay at or above the band's floor
                }
                if stuck[h] {
                    continue;
                }
                match self.best_load_step(h, &order, budget, min_gain, &band) {
                    Some(Step::Leader(p, f)) => {
                        self.record_leader(out, p, f, Reason::NetworkLoad);
                        budget.leaders -= 1;
                        stuck[f] = false;
                    }
                    Some(Step::Move(p, t)) => {
                        let bytes = self.move_one(out, p, h, t, Reason::NetworkLoad);
                        budget.take(bytes);
                        stuck[t] = false;
                    }
                    None => {
                        stuck[h] = true;
                        continue;
                    }
                }
                acted = true;
                break;
            }
            if !acted {
                return;
            }
        }
    }

    /// The step that most lowers `max(load h, load target)`, preferring a leadership change
    /// whenever one gains at least `min_gain`; only steps the [`Band`] allows. `targets` is
    /// sorted by load, ascending.
    fn best_load_step(
        &self,
        h: usize,
        targets: &[usize],
        budget: &Budget,
        min_gain: f64,
        band: &Band,
    ) -> Option<Step> {
        let lh = self.load(h);
        let gain = |lt: f64, d: f64| lh - (lh - d).max(lt + d);
        let mut best_leader: Option<(f64, usize, usize)> = None;
        let mut best_move: Option<(f64, u64, usize, usize)> = None;
        for &p in &self.on[h] {
            if self.locked[p] || self.pending[p] {
                continue;
            }
            let rf = self.replicas[p].len();
            let is_leader = self.leader[p] == Some(h);
            if is_leader && budget.leaders > 0 {
                let (_, lo) = self.contrib(p, true, rf);
                for &f in &self.replicas[p] {
                    if f == h || !self.eligible[f] || !self.fits_capacity(f, 0.0, lo) {
                        continue;
                    }
                    if !band.allows(lh, self.load(f), lo) {
                        continue;
                    }
                    let g = gain(self.load(f), lo);
                    // Equal gains: the colder follower, which keeps more room for later steps.
                    let better = best_leader.is_none_or(|(bg, _, bf)| {
                        g > bg || (g == bg && self.load(f) < self.load(bf))
                    });
                    if g >= min_gain && better {
                        best_leader = Some((g, p, f));
                    }
                }
            }
            if best_leader.is_some() {
                continue; // a leadership change will be taken; skip pricing moves
            }
            let size = self.state.partitions[p].size_bytes;
            if !budget.fits(size, false) {
                continue;
            }
            let (ci, co) = self.contrib(p, is_leader, rf);
            let d = ci + co;
            if d <= 0.0 || lh - d < band.low {
                continue;
            }
            let div = self.diversity(&self.replicas[p]);
            for &t in targets {
                if !band.allows(lh, self.load(t), d) {
                    break; // targets only get hotter from here
                }
                if t == h || self.replicas[p].contains(&t) || !self.fits_capacity(t, ci, co) {
                    continue;
                }
                if self.diversity_with(p, h, t) < div {
                    continue;
                }
                let g = gain(self.load(t), d);
                let better =
                    best_move.is_none_or(|(bg, bs, _, _)| g > bg || (g == bg && size < bs));
                if g >= min_gain && better {
                    best_move = Some((g, size, p, t));
                }
                break;
            }
        }
        if let Some((_, p, f)) = best_leader {
            return Some(Step::Leader(p, f));
        }
        best_move.map(|(_, _, p, t)| Step::Move(p, t))
    }

    // === even leader and replica counts (never at the cost of network load) ===

    /// Shifting load `d` from `h` to `t` is allowed by the load band (or moves no load).
    fn load_neutral(&self, band: &Band, h: usize, t: usize, d: f64) -> bool {
        d <= 0.0 || band.allows(self.load(h), self.load(t), d)
    }

    fn count_band(&self, count: &[usize], threshold: f64) -> Band {
        let (n, s) = self
            .eligible_brokers()
            .fold((0usize, 0usize), |(n, s), b| (n + 1, s + count[b]));
        Band::new(if n == 0 { 0.0 } else { s as f64 / n as f64 }, threshold)
    }

    fn counts_uneven(&self, count: &[usize], threshold: f64) -> bool {
        let v: Vec<usize> = self.eligible_brokers().map(|b| count[b]).collect();
        let (Some(&max), Some(&min)) = (v.iter().max(), v.iter().min()) else {
            return false;
        };
        max >= min + 2
            && spread_exceeds(
                max as f64,
                min as f64,
                v.iter().sum::<usize>() as f64 / v.len() as f64,
                threshold,
            )
    }

    fn load_uneven(&self, threshold: f64) -> bool {
        let v: Vec<f64> = self.eligible_brokers().map(|b| self.load(b)).collect();
        let max = v.iter().copied().fold(0.0, f64::max);
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        !v.is_empty() && spread_exceeds(max, min, v.iter().sum::<f64>() / v.len() as f64, threshold)
    }

    fn balance_leaders(&mut self, out: &mut Plan, budget: &mut Budget, threshold: f64) {
        if !self.counts_uneven(&self.leaders, threshold) {
            return;
        }
        let load_band = Band::new(self.mean_load(), threshold);
        let band = self.count_band(&self.leaders, threshold);
        let mut stuck = vec![false; self.ids.len()];
        while budget.leaders > 0 {
            let h = self
                .eligible_brokers()
                .filter(|&b| !stuck[b])
                .max_by(|&a, &b| self.leaders[a].cmp(&self.leaders[b]).then(b.cmp(&a)));
            let Some(h) = h else { return };
            let mut best: Option<(usize, f64, usize, usize)> = None;
            for &p in &self.on[h] {
                if self.locked[p] || self.pending[p] || self.leader[p] != Some(h) {
                    continue;
                }
                let (_, lo) = self.contrib(p, true, self.replicas[p].len());
                for &f in &self.replicas[p] {
                    if f == h
                        || !self.eligible[f]
                        || !band.allows(self.leaders[h] as f64, self.leaders[f] as f64, 1.0)
                    {
                        continue;
                    }
                    if !self.load_neutral(&load_band, h, f, lo) || !self.fits_capacity(f, 0.0, lo) {
                        continue;
                    }
                    let key = (self.leaders[f], lo);
                    if best.is_none_or(|(bl, bd, _, _)| key.0 < bl || (key.0 == bl && key.1 < bd)) {
                        best = Some((key.0, key.1, p, f));
                    }
                }
            }
            match best {
                Some((_, _, p, f)) => {
                    self.record_leader(out, p, f, Reason::LeaderCount);
                    budget.leaders -= 1;
                    if !self.counts_uneven(&self.leaders, threshold) {
                        return;
                    }
                }
                None => stuck[h] = true,
            }
        }
    }

    fn balance_replicas(&mut self, out: &mut Plan, budget: &mut Budget, threshold: f64) {
        if !self.counts_uneven(&self.replica_count, threshold) {
            return;
        }
        let load_band = Band::new(self.mean_load(), threshold);
        let band = self.count_band(&self.replica_count, threshold);
        let mut stuck = vec![false; self.ids.len()];
        while budget.moves > 0 {
            let h = self
                .eligible_brokers()
                .filter(|&b| !stuck[b])
                .max_by(|&a, &b| {
                    self.replica_count[a]
                        .cmp(&self.replica_count[b])
                        .then(b.cmp(&a))
                });
            let Some(h) = h else { return };
            let mut targets: Vec<usize> = self
                .eligible_brokers()
                .filter(|&t| {
                    band.allows(
                        self.replica_count[h] as f64,
                        self.replica_count[t] as f64,
                        1.0,
                    )
                })
                .collect();
            targets.sort_by_key(|&t| (self.replica_count[t], t));
            let mut best: Option<(usize, u64, usize, usize)> = None;
            for &p in &self.on[h] {
                // Followers only, so leader counts stay as the previous goal left them.
                if self.locked[p] || self.pending[p] || self.leader[p] == Some(h) {
                    continue;
                }
                let size = self.state.partitions[p].size_bytes;
                if !budget.fits(size, false) {
                    continue;
                }
                let (ci, _) = self.contrib(p, false, self.replicas[p].len());
                let div = self.diversity(&self.replicas[p]);
                for &t in &targets {
                    if self.replicas[p].contains(&t)
                        || !self.load_neutral(&load_band, h, t, ci)
                        || !self.fits_capacity(t, ci, 0.0)
                    {
                        continue;
                    }
                    if self.diversity_with(p, h, t) < div {
                        continue;
                    }
                    let key = (self.replica_count[t], size);
                    if best.is_none_or(|(bc, bs, _, _)| key < (bc, bs)) {
                        best = Some((key.0, key.1, p, t));
                    }
                    break;
                }
            }
            match best {
                Some((_, _, p, t)) => {
                    let bytes = self.move_one(out, p, h, t, Reason::ReplicaCount);
                    budget.take(bytes);
                    if !self.counts_uneven(&self.replica_count, threshold) {
                        return;
                    }
                }
                None => stuck[h] = true,
            }
        }
    }
}

/// The band around the mean that makes balancing converge without oscillating (the rule
/// Cruise Control's distribution goals use): a step moves `d` from `h` to `t` only if one of
/// them is outside `[low, high]`, `t` ends at or below `high` and `h` at or above `low`.
/// Hence a broker that ever received stays at or below `high` and one that ever gave stays at
/// or above `low`, so whatever moved `h -> t` can never be sent back `t -> h`: that would need
/// `t` above `high` or `h` below `low`. Every step also strictly lowers the sum of squares
/// (`t + d <= high`, `h - d >= low`, and one side is outside the band).
struct Band {
    low: f64,
    high: f64,
}

impl Band {
    fn new(mean: f64, threshold: f64) -> Self {
        let t = threshold.max(1.0);
        Band {
            low: mean / t,
            high: mean * t,
        }
    }

    fn allows(&self, h: f64, t: f64, d: f64) -> bool {
        (h > self.high || t < self.low) && t + d <= self.high && h - d >= self.low
    }
}

/// The balancing trigger: the hottest broker above mean × threshold (SPEC 8's imbalance), or
/// the coldest below mean / threshold, so that an added, empty broker starts filling up.
fn spread_exceeds(max: f64, min: f64, mean: f64, threshold: f64) -> bool {
    mean > 0.0 && (max > mean * threshold || min * threshold < mean)
}

enum Step {
    Leader(usize, usize),
    Move(usize, usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{apply, imbalance, rack_diversity, Broker, Capacity, Partition};

    fn broker(id: i32, rack: &str) -> Broker {
        Broker {
            id,
            rack: Some(rack.into()),
            capacity: Capacity::default(),
            draining: false,
        }
    }

    fn part(
        topic: &str,
        partition: i32,
        tenant: &str,
        replicas: &[i32],
        bytes_in: f64,
    ) -> Partition {
        Partition {
            topic: topic.into(),
            partition,
            tenant: tenant.into(),
            replicas: replicas.to_vec(),
            leader: replicas[0],
            bytes_in_per_sec: bytes_in,
            bytes_out_per_sec: bytes_in,
            size_bytes: 1000,
        }
    }

    /// Plans and applies until the plan is empty; returns the final state and all plans.
    fn converge(state: &ClusterState, limits: &PlanLimits) -> (ClusterState, Vec<Plan>) {
        let mut s = state.clone();
        let mut plans = Vec::new();
        for _ in 0..100 {
            let p = plan(&s, limits).expect("valid state");
            if p.is_empty() {
                return (s, plans);
            }
            s = apply(&s, &p);
            plans.push(p);
        }
        panic!("no convergence in 100 rounds");
    }

    fn replicas_on(state: &ClusterState, id: i32) -> usize {
        state
            .partitions
            .iter()
            .filter(|p| p.replicas.contains(&id))
            .count()
    }

    #[test]
    fn repairs_are_planned_with_the_right_reason() {
        // (case, brokers, the partition's replicas, expected reason, broker that must end empty)
        type Case = (&'static str, Vec<Broker>, Vec<i32>, Reason, i32);
        let cases: Vec<Case> = vec![
            (
                "rack duplicate",
                vec![
                    broker(1, "a"),
                    broker(2, "a"),
                    broker(3, "b"),
                    broker(4, "c"),
                ],
                vec![1, 2, 3],
                Reason::RackSafety,
                0,
            ),
            (
                "dead broker",
                vec![
                    broker(1, "a"),
                    broker(2, "b"),
                    broker(3, "c"),
                    broker(4, "a"),
                ],
                vec![1, 99, 3],
                Reason::DeadBroker,
                99,
            ),
            (
                "draining follower",
                vec![
                    broker(1, "a"),
                    Broker {
                        draining: true,
                        ..broker(2, "b")
                    },
                    broker(3, "c"),
                    broker(4, "b"),
                ],
                vec![1, 2, 3],
                Reason::Drain,
                2,
            ),
            (
                "draining leader",
                vec![
                    Broker {
                        draining: true,
                        ..broker(1, "a")
                    },
                    broker(2, "b"),
                    broker(3, "c"),
                    broker(4, "a"),
                ],
                vec![1, 2, 3],
                Reason::Drain,
                1,
            ),
        ];
        for (name, brokers, replicas, reason, emptied) in cases {
            let state = ClusterState {
                brokers,
                partitions: vec![part("t", 0, "x", &replicas, 10.0)],
            };
            let p = plan(&state, &PlanLimits::default()).expect(name);
            assert_eq!(p.moves.len(), 1, "{name}: {p:?}");
            assert_eq!(p.moves[0].reason, reason, "{name}");
            let after = apply(&state, &p);
            let rs = &after.partitions[0].replicas;
            assert_eq!(rs.len(), 3, "{name}: replication factor kept");
            assert_eq!(
                rack_diversity(&after, rs),
                3,
                "{name}: {rs:?} spans all racks"
            );
            assert_eq!(replicas_on(&after, emptied), 0, "{name}");
            assert_ne!(after.partitions[0].leader, emptied, "{name}");
        }
    }

    #[test]
    fn draining_broker_is_emptied_over_rounds_and_receives_nothing() {
        let brokers = vec![
            Broker {
                draining: true,
                ..broker(1, "a")
            },
            broker(2, "b"),
            broker(3, "c"),
            broker(4, "a"),
            broker(5, "b"),
            broker(6, "c"),
        ];
        let partitions = (0..30)
            .map(|i| {
                let l = (i % 6) + 1;
                let f1 = (l % 6) + 1;
                let f2 = (f1 % 6) + 1;
                part("t", i, "x", &[l, f1, f2], 5.0 + i as f64)
            })
            .collect();
        let state = ClusterState {
            brokers,
            partitions,
        };
        let limits = PlanLimits {
            max_moves: 4,
            ..PlanLimits::default()
        };
        let (end, plans) = converge(&state, &limits);
        assert!(
            plans.len() >= 4,
            "15 replicas on broker 1 at 4 moves per plan"
        );
        for p in &plans {
            assert!(p.moves.len() <= 4);
            assert!(p.moves.iter().all(|m| !m.to_replicas.contains(&1)));
            assert!(p.leader_changes.iter().all(|c| c.to != 1));
        }
        assert_eq!(replicas_on(&end, 1), 0);
        assert!(end
            .partitions
            .iter()
            .all(|p| rack_diversity(&end, &p.replicas) == 3));
    }

    #[test]
    fn hot_tenant_on_one_broker_is_spread() {
        let brokers: Vec<Broker> = (1..=6)
            .map(|i| broker(i, ["a", "b", "c"][(i as usize - 1) % 3]))
            .collect();
        let mut partitions: Vec<Partition> = (0..24)
            .map(|i| {
                let l = (i % 6) + 1;
                part("quiet", i, "quiet", &[l, (l % 6) + 1], 1.0)
            })
            .collect();
        // The hot tenant: every partition led by broker 1, followers on broker 2.
        partitions.extend((0..12).map(|i| part("hot", i, "hot", &[1, 2], 50.0)));
        let state = ClusterState {
            brokers,
            partitions,
        };
        let before = imbalance(&state);
        assert!(before > 2.0, "the setup is skewed: {before}");
        let (end, _) = converge(&state, &PlanLimits::default());
        let after = imbalance(&end);
        // 4.37 -> 1.44: twelve partitions carry 96% of the load, and the band stops short of a
        // swap (see the crate docs on lumpy pools).
        assert!(after < 1.5, "imbalance {before} -> {after}");
        let hot_leaders: std::collections::HashSet<i32> = end
            .partitions
            .iter()
            .filter(|p| p.tenant == "hot")
            .map(|p| p.leader)
            .collect();
        assert!(hot_leaders.len() >= 4, "hot leaders on {hot_leaders:?}");
    }

    #[test]
    fn an_added_broker_fills_up() {
        let mut brokers: Vec<Broker> = (1..=6)
            .map(|i| broker(i, ["a", "b", "c"][(i as usize - 1) % 3]))
            .collect();
        let partitions: Vec<Partition> = (0..60)
            .map(|i| {
                let l = (i % 6) + 1;
                part("t", i, "x", &[l, (l % 6) + 1, ((l + 1) % 6) + 1], 10.0)
            })
            .collect();
        brokers.push(broker(7, "a"));
        let state = ClusterState {
            brokers,
            partitions,
        };
        // 7 brokers, one empty: max / mean is only 7/6, but the empty one is far below the mean.
        assert!(imbalance(&state) < 1.2);
        let (end, plans) = converge(&state, &PlanLimits::default());
        assert!(!plans.is_empty());
        let loads = crate::broker_loads(&end);
        let mean = loads.values().map(|l| l.0 + l.1).sum::<f64>() / 7.0;
        let new = loads[&7].0 + loads[&7].1;
        assert!(new >= mean / 1.1, "broker 7 at {new}, mean {mean}");
        assert!(end
            .partitions
            .iter()
            .all(|p| rack_diversity(&end, &p.replicas) == 3));
    }

    #[test]
    fn leadership_changes_are_preferred_over_moves() {
        let brokers = vec![broker(1, "a"), broker(2, "b"), broker(3, "c")];
        // RF 3 on 3 brokers: every broker has every replica; only leadership can even the load.
        let partitions = (0..9)
            .map(|i| part("t", i, "x", &[1, 2, 3], 10.0))
            .collect();
        let state = ClusterState {
            brokers,
            partitions,
        };
        let p = plan(&state, &PlanLimits::default()).expect("plan");
        assert!(!p.leader_changes.is_empty());
        assert!(p.imbalance_after < p.imbalance_before);
        let (end, plans) = converge(&state, &PlanLimits::default());
        assert!(plans.iter().all(|p| p.moves.is_empty()), "{plans:?}");
        for id in 1..=3 {
            let led = end.partitions.iter().filter(|p| p.leader == id).count();
            assert_eq!(led, 3, "broker {id} leads {led}");
        }
    }

    #[test]
    fn nothing_happens_under_the_threshold() {
        let brokers = vec![broker(1, "a"), broker(2, "b"), broker(3, "c")];
        // Loads 105 : 100 : 95 in partitions of 5 -> imbalance 1.05, under the default 1.10.
        let mut partitions = Vec::new();
        for (broker, count) in [(1, 21), (2, 20), (3, 19)] {
            for _ in 0..count {
                let i = partitions.len() as i32;
                partitions.push(part("t", i, "x", &[broker], 2.5));
            }
        }
        let state = ClusterState {
            brokers,
            partitions,
        };
        let p = plan(&state, &PlanLimits::default()).expect("plan");
        assert!(p.is_empty(), "{p:?}");
        assert!((p.imbalance_before - 1.05).abs() < 1e-9);
        assert_eq!(p.imbalance_before, p.imbalance_after);
        // The same pool with a tighter threshold is acted on.
        let tight = PlanLimits {
            imbalance_threshold: 1.01,
            ..PlanLimits::default()
        };
        let p = plan(&state, &tight).expect("plan");
        assert_eq!(p.moves.len(), 1, "{p:?}");
        assert!((p.imbalance_after - 1.0).abs() < 1e-9);
    }

    #[test]
    fn over_capacity_broker_sheds_load() {
        let mut small = broker(1, "a");
        small.capacity = Capacity {
            bytes_in_per_sec: 1e9,
            bytes_out_per_sec: 50.0,
        };
        let brokers = vec![small, broker(2, "b"), broker(3, "c")];
        let partitions = (0..4).map(|i| part("t", i, "x", &[1, 2], 20.0)).collect();
        let state = ClusterState {
            brokers,
            partitions,
        };
        let p = plan(&state, &PlanLimits::default()).expect("plan");
        assert!(
            p.leader_changes
                .iter()
                .any(|c| c.reason == Reason::Capacity),
            "{p:?}"
        );
        let loads = crate::broker_loads(&apply(&state, &p));
        assert!(loads[&1].1 <= 50.0, "out load on broker 1: {}", loads[&1].1);
    }

    #[test]
    fn limits_bound_the_plan() {
        let brokers = vec![
            broker(1, "a"),
            broker(2, "b"),
            broker(3, "c"),
            broker(4, "a"),
        ];
        let partitions = (0..20).map(|i| part("t", i, "x", &[1, 99], 10.0)).collect();
        let state = ClusterState {
            brokers,
            partitions,
        };
        let limits = PlanLimits {
            max_moves: 20,
            max_bytes_moved: 3500,
            ..PlanLimits::default()
        };
        let p = plan(&state, &limits).expect("plan");
        assert_eq!(p.moves.len(), 3, "1000 bytes per repair, 3500 allowed");
        assert_eq!(p.deferred_repairs, 17);
        // One oversize repair is allowed alone, so a drain can always progress.
        let tiny = PlanLimits {
            max_bytes_moved: 10,
            ..limits
        };
        assert_eq!(plan(&state, &tiny).expect("plan").moves.len(), 1);
    }

    #[test]
    fn inconsistent_input_is_refused() {
        let brokers = vec![broker(1, "a"), broker(1, "b")];
        let state = ClusterState {
            brokers,
            partitions: vec![],
        };
        assert_eq!(
            plan(&state, &PlanLimits::default()),
            Err(PlacementError::DuplicateBroker(1))
        );
        let mut bad = part("t", 0, "x", &[1, 2], 1.0);
        bad.leader = 3;
        let state = ClusterState {
            brokers: vec![broker(1, "a"), broker(2, "b")],
            partitions: vec![bad],
        };
        assert!(matches!(
            plan(&state, &PlanLimits::default()),
            Err(PlacementError::InvalidPartition { .. })
        ));
        let mut nan = part("t", 0, "x", &[1], f64::NAN);
        nan.bytes_out_per_sec = 1.0;
        let state = ClusterState {
            brokers: vec![broker(1, "a")],
            partitions: vec![nan],
        };
        assert!(plan(&state, &PlanLimits::default()).is_err());
    }
}
