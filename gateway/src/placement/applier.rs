//! Executes a [`Plan`] on the pool, the way Cruise Control does:
//! - a leadership change reorders the replica list (an AlterPartitionReassignments with the
//!   same replicas, new leader first: no data is copied, the controller completes it at once)
//!   and then asks for a preferred-leader election (ElectLeaders);
//! - a replica move is an AlterPartitionReassignments to the new list, at most
//!   `max_concurrent_moves` at a time, under replication throttles: the
//!   `leader/follower.replication.throttled.rate` broker configs on every broker a move
//!   touches, and the `leader/follower.replication.throttled.replicas` topic configs naming
//!   the partitions being copied (`p:broker`, sources as leader, new replicas as followers);
//!   finished moves get a preferred-leader election so the plan's first replica leads.
//!
//! Before touching the pool the applier records what it will set in the `applier` state
//! record (see [`state`](super::state)); after cleanup it deletes the record. A gateway that
//! restarts mid-plan (or `sluice placement cancel`) finds the record, waits for or cancels the
//! reassignments it names (ListPartitionReassignments is the pool's own truth), then
//! elects and removes exactly the throttles sluice set ([`Placement::recover`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use sluice_placement::{Plan, ReplicaMove};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::admin::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::state::{now_ms, ApplierState, KEY_APPLIER};
use super::{Placement, PlacementFailure, Snapshot};

const POLL: Duration = Duration::from_millis(500);
/// How long a reorder (no data copied) may take to complete before it is given up on.
const REORDER_WAIT: Duration = Duration::from_secs(30);
const ELECTION_TRIES: u32 = 10;
const METADATA_LAG_TRIES: u32 = 15;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Where a plan's execution stands.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Progress {
    pub leader_changes_total: usize,
    pub leader_changes_done: usize,
    pub moves_total: usize,
    pub moves_done: usize,
    pub moves_running: usize,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Stopped by a cancel (ours or an outside one) before every move ran.
    pub cancelled: bool,
    /// Steps the pool refused or that did not reach their target, with the reason.
    pub failed: Vec<String>,
    pub elapsed_secs: f64,
}

/// What [`Placement::recover`] found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Recovery {
    /// No applier state: nothing to do.
    Clean,
    /// A plan's reassignments are still running (by its owner or orphaned); try later.
    StillMoving { owner: String, moves: usize },
    /// Leftovers of a finished or interrupted plan were elected and unthrottled.
    CleanedUp { owner: String, elections: usize, topics: usize, brokers: usize },
}

impl Placement {
    /// Executes `plan`, made from `snap`. `cancel` stops it: running reassignments are
    /// cancelled, the pool is cleaned up, and the progress says `cancelled`.
    pub async fn apply(
        &self,
        snap: &Snapshot,
        plan: &Plan,
        cancel: &CancellationToken,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Progress, PlacementFailure> {
        let started = Instant::now();
        match self.recover().await? {
            Recovery::StillMoving { owner, moves } => {
                return Err(PlacementFailure::Refused(format!(
                    "{moves} reassignment(s) of a plan applied by {owner} are still running; wait or cancel"
                )))
            }
            Recovery::Clean | Recovery::CleanedUp { .. } => {}
        }
        let mut progress = Progress {
            leader_changes_total: plan.leader_changes.len(),
            moves_total: plan.moves.len(),
            bytes_total: plan.bytes_moved(),
            ..Progress::default()
        };
        if plan.is_empty() {
            return Ok(progress);
        }
        let throttle = self.settings.throttle_bytes_per_sec;
        let mut brokers: Vec<i32> = if throttle > 0 {
            plan.moves.iter().flat_map(|m| m.from_replicas.iter().chain(&m.to_replicas).copied()).collect()
        } else {
            Vec::new()
        };
        brokers.sort_unstable();
        brokers.dedup();
        let mut topics: Vec<String> = if throttle > 0 { plan.moves.iter().map(|m| m.topic.clone()).collect() } else { Vec::new() };
        topics.sort();
        topics.dedup();
        let record = ApplierState {
            owner: self.me.clone(),
            started_ms: now_ms(),
            throttled_brokers: brokers.clone(),
            throttled_topics: topics,
            elections: plan
                .leader_changes
                .iter()
                .map(|c| (c.topic.clone(), c.partition))
                .chain(plan.moves.iter().map(|m| (m.topic.clone(), m.partition)))
                .collect(),
            moves: plan.moves.iter().map(|m| (m.topic.clone(), m.partition)).collect(),
        };
        self.state.ensure().await?;
        self.state.put(KEY_APPLIER, Some(&record)).await?;

        // Leadership first: cheap, and it relieves the hottest brokers at once.
        if !plan.leader_changes.is_empty() {
            let reorders: Vec<(String, i32, Option<Vec<i32>>)> = plan
                .leader_changes
                .iter()
                .filter_map(|c| {
                    let p = snap.partitions.iter().find(|p| p.topic == c.topic && p.partition == c.partition)?;
                    let mut r = p.replicas.clone();
                    let pos = r.iter().position(|&b| b == c.to)?;
                    let to = r.remove(pos);
                    r.insert(0, to);
                    Some((c.topic.clone(), c.partition, Some(r)))
                })
                .collect();
            let refused = self.admin.alter_reassignments(&reorders).await?;
            for (t, p, code, msg) in &refused {
                progress.failed.push(format!("reorder {t}-{p}: error {code} {}", msg.as_deref().unwrap_or("")));
            }
            let refused: HashSet<(String, i32)> = refused.into_iter().map(|(t, p, _, _)| (t, p)).collect();
            let pending: Vec<(String, i32)> =
                reorders.iter().map(|(t, p, _)| (t.clone(), *p)).filter(|k| !refused.contains(k)).collect();
            self.wait_reassignments_gone(&pending, REORDER_WAIT).await?;
            let failed = self.elect(&pending).await?;
            progress.leader_changes_done = pending.len() - failed.len();
            progress.failed.extend(failed);
            on_progress(&progress);
        }

        if !plan.moves.is_empty() {
            if throttle > 0 {
                for &b in &brokers {
                    let Some(info) = snap.broker(b) else { continue };
                    let rate = Some(throttle.to_string());
                    self.admin
                        .alter_configs(RESOURCE_BROKER, &b.to_string(), Some(&info.addr), &[(LEADER_RATE, rate.clone()), (FOLLOWER_RATE, rate)])
                        .await?;
                }
            }
            let done = self.run_moves(plan, cancel, &mut progress, &mut on_progress).await;
            if let Err(e) = &done {
                warn!(error = %e, "placement moves stopped on an error; cancelling what runs");
                let running: Vec<(String, i32, Option<Vec<i32>>)> =
                    plan.moves.iter().map(|m| (m.topic.clone(), m.partition, None)).collect();
                let _ = self.cancel_ongoing(&running).await;
            }
            // The plan's first replica leads once its move is done.
            let moved: Vec<(String, i32)> = plan.moves.iter().map(|m| (m.topic.clone(), m.partition)).collect();
            let failed = self.elect(&moved).await.unwrap_or_default();
            progress.failed.extend(failed);
            done?;
        }
        self.cleanup(&record).await?;
        self.state.put::<ApplierState>(KEY_APPLIER, None).await?;
        progress.elapsed_secs = started.elapsed().as_secs_f64();
        on_progress(&progress);
        info!(
            leader_changes = progress.leader_changes_done,
            moves = progress.moves_done,
            bytes = progress.bytes_done,
            cancelled = progress.cancelled,
            failed = progress.failed.len(),
            secs = progress.elapsed_secs,
            "placement plan applied"
        );
        Ok(progress)
    }

    async fn run_moves(
        &self,
        plan: &Plan,
        cancel: &CancellationToken,
        progress: &mut Progress,
        on_progress: &mut impl FnMut(&Progress),
    ) -> Result<(), PlacementFailure> {
        let throttle = self.settings.throttle_bytes_per_sec > 0;
        let mut queue: VecDeque<&ReplicaMove> = plan.moves.iter().collect();
        let mut running: Vec<&ReplicaMove> = Vec::new();
        let mut stop = false;
        while !queue.is_empty() || !running.is_empty() {
            if cancel.is_cancelled() && !stop {
                stop = true;
                progress.cancelled = true;
                let targets: Vec<_> = running.iter().map(|m| (m.topic.clone(), m.partition, None)).collect();
                self.cancel_ongoing(&targets).await?;
            }
            if stop {
                queue.clear();
            }
            let mut started = Vec::new();
            while running.len() < self.settings.max_concurrent_moves && !stop {
                let Some(m) = queue.pop_front() else { break };
                if throttle {
                    let mut topic_moves: Vec<&ReplicaMove> = running.iter().copied().filter(|r| r.topic == m.topic).collect();
                    topic_moves.push(m);
                    self.throttle_topic(&m.topic, &topic_moves).await?;
                }
                let refused =
                    self.admin.alter_reassignments(&[(m.topic.clone(), m.partition, Some(m.to_replicas.clone()))]).await?;
                if let Some((t, p, code, msg)) = refused.first() {
                    progress.failed.push(format!("move {t}-{p}: error {code} {}", msg.as_deref().unwrap_or("")));
                    continue;
                }
                started.push(m);
            }
            running.extend(started);
            progress.moves_running = running.len();
            on_progress(progress);
            tokio::time::sleep(POLL).await;
            let ongoing = self.admin.list_reassignments().await?;
            let (finished, still): (Vec<&ReplicaMove>, Vec<&ReplicaMove>) =
                running.into_iter().partition(|m| !ongoing.contains_key(&(m.topic.clone(), m.partition)));
            running = still;
            if finished.is_empty() {
                continue;
            }
            let mut touched: BTreeMap<&str, ()> = BTreeMap::new();
            let reached = |parts: &[super::admin::PartitionInfo], m: &ReplicaMove| {
                let now: Option<HashSet<i32>> = parts
                    .iter()
                    .find(|p| p.topic == m.topic && p.partition == m.partition)
                    .map(|p| p.replicas.iter().copied().collect());
                now == Some(m.to_replicas.iter().copied().collect())
            };
            // A broker's metadata may lag the controller's list by a moment: a move is taken
            // for cancelled only when its target is still missing after a few seconds.
            let (_, mut parts) = self.admin.describe().await?;
            for _ in 0..METADATA_LAG_TRIES {
                if finished.iter().all(|m| reached(&parts, m)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                parts = self.admin.describe().await?.1;
            }
            for m in finished {
                touched.insert(m.topic.as_str(), ());
                if reached(&parts, m) {
                    progress.moves_done += 1;
                    progress.bytes_done += m.bytes;
                } else {
                    // Gone from the list but not at its target: cancelled from outside
                    // (`sluice placement cancel`): start nothing more.
                    progress.failed.push(format!("move {}-{} did not reach {:?}", m.topic, m.partition, m.to_replicas));
                    if !stop {
                        stop = true;
                        progress.cancelled = true;
                    }
                }
            }
            if throttle {
                for t in touched.keys() {
                    let left: Vec<&ReplicaMove> = running.iter().copied().filter(|r| r.topic == *t).collect();
                    self.throttle_topic(t, &left).await?;
                }
            }
            progress.moves_running = running.len();
            on_progress(progress);
        }
        Ok(())
    }

    /// Sets (or, with no moves left, deletes) the throttled-replicas configs of `topic`.
    async fn throttle_topic(&self, topic: &str, moves: &[&ReplicaMove]) -> Result<(), PlacementFailure> {
        if moves.is_empty() {
            self.admin.alter_configs(RESOURCE_TOPIC, topic, None, &[(LEADER_REPLICAS, None), (FOLLOWER_REPLICAS, None)]).await?;
            return Ok(());
        }
        let (leaders, followers) = throttled_replicas(moves);
        self.admin
            .alter_configs(RESOURCE_TOPIC, topic, None, &[(LEADER_REPLICAS, Some(leaders)), (FOLLOWER_REPLICAS, Some(followers))])
            .await?;
        Ok(())
    }

    /// Preferred-leader elections, retried while the preferred replica catches up.
    async fn elect(&self, partitions: &[(String, i32)]) -> Result<Vec<String>, PlacementFailure> {
        let mut left: Vec<(String, i32)> = partitions.to_vec();
        let mut last = Vec::new();
        for attempt in 0..ELECTION_TRIES {
            if left.is_empty() {
                return Ok(Vec::new());
            }
            last = self.admin.elect_preferred(&left).await?;
            left = last.iter().map(|(t, p, _, _)| (t.clone(), *p)).collect();
            if !left.is_empty() && attempt + 1 < ELECTION_TRIES {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(last.into_iter().map(|(t, p, c, m)| format!("elect {t}-{p}: error {c} {}", m.unwrap_or_default())).collect())
    }

    async fn wait_reassignments_gone(&self, parts: &[(String, i32)], within: Duration) -> Result<(), PlacementFailure> {
        let deadline = Instant::now() + within;
        loop {
            let ongoing = self.admin.list_reassignments().await?;
            if !parts.iter().any(|k| ongoing.contains_key(k)) || Instant::now() > deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Cancels the reassignments of `targets` that are still running and waits for them to end.
    async fn cancel_ongoing(&self, targets: &[(String, i32, Option<Vec<i32>>)]) -> Result<usize, PlacementFailure> {
        let ongoing = self.admin.list_reassignments().await?;
        let cancel: Vec<(String, i32, Option<Vec<i32>>)> =
            targets.iter().filter(|(t, p, _)| ongoing.contains_key(&(t.clone(), *p))).map(|(t, p, _)| (t.clone(), *p, None)).collect();
        if cancel.is_empty() {
            return Ok(0);
        }
        let refused = self.admin.alter_reassignments(&cancel).await?;
        for (t, p, code, _) in &refused {
            if *code != super::admin::code::NO_REASSIGNMENT_IN_PROGRESS {
                warn!(topic = %t, partition = p, code, "cancelling a reassignment was refused");
            }
        }
        let keys: Vec<(String, i32)> = cancel.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        self.wait_reassignments_gone(&keys, REORDER_WAIT).await?;
        Ok(cancel.len())
    }

    /// Removes the throttles a plan set.
    async fn cleanup(&self, record: &ApplierState) -> Result<(), PlacementFailure> {
        for t in &record.throttled_topics {
            if let Err(e) =
                self.admin.alter_configs(RESOURCE_TOPIC, t, None, &[(LEADER_REPLICAS, None), (FOLLOWER_REPLICAS, None)]).await
            {
                // A topic deleted meanwhile has nothing to clean.
                warn!(topic = %t, error = %e, "removing replication throttles of a topic failed");
            }
        }
        if !record.throttled_brokers.is_empty() {
            let (brokers, _) = self.admin.describe().await?;
            for b in brokers.iter().filter(|b| record.throttled_brokers.contains(&b.id)) {
                self.admin
                    .alter_configs(RESOURCE_BROKER, &b.id.to_string(), Some(&b.addr), &[(LEADER_RATE, None), (FOLLOWER_RATE, None)])
                    .await?;
            }
        }
        Ok(())
    }

    /// Finishes what an interrupted plan left: when none of its reassignments runs any more,
    /// elects its preferred leaders, removes its throttles and deletes its record.
    pub async fn recover(&self) -> Result<Recovery, PlacementFailure> {
        let record: Option<ApplierState> = match self.state.get(KEY_APPLIER).await {
            Ok(r) => r,
            Err(super::state::StateError::Kafka(_)) => None, // no state topic yet
            Err(e) => return Err(e.into()),
        };
        let Some(record) = record else { return Ok(Recovery::Clean) };
        let ongoing = self.admin.list_reassignments().await?;
        let running = record.moves.iter().filter(|k| ongoing.contains_key(*k)).count();
        if running > 0 {
            return Ok(Recovery::StillMoving { owner: record.owner, moves: running });
        }
        let (_, parts) = self.admin.describe().await?;
        let live: HashMap<(String, i32), ()> = parts.iter().map(|p| ((p.topic.clone(), p.partition), ())).collect();
        let elections: Vec<(String, i32)> = record.elections.iter().filter(|k| live.contains_key(*k)).cloned().collect();
        let failed = self.elect(&elections).await?;
        for f in failed {
            warn!(failure = %f, "recovering placement: election failed");
        }
        self.cleanup(&record).await?;
        self.state.put::<ApplierState>(KEY_APPLIER, None).await?;
        info!(owner = %record.owner, elections = elections.len(), "placement: cleaned up after an interrupted plan");
        Ok(Recovery::CleanedUp {
            owner: record.owner,
            elections: elections.len(),
            topics: record.throttled_topics.len(),
            brokers: record.throttled_brokers.len(),
        })
    }

    /// Cancels the running plan (whoever applies it): its reassignments are cancelled, then
    /// [`recover`](Self::recover) cleans up. Returns how many reassignments were cancelled.
    pub async fn cancel(&self) -> Result<(usize, Recovery), PlacementFailure> {
        let record: Option<ApplierState> = self.state.get(KEY_APPLIER).await.unwrap_or(None);
        let Some(record) = record else { return Ok((0, Recovery::Clean)) };
        let targets: Vec<_> = record.moves.iter().map(|(t, p)| (t.clone(), *p, None)).collect();
        let n = self.cancel_ongoing(&targets).await?;
        let recovery = self.recover().await?;
        // The cancelled plan's owner may be gone (a crashed CLI): free its lease now rather
        // than after its TTL. A live owner takes it back at its next renewal.
        if let Ok(Some(lease)) = self.state.get::<super::state::Lease>(super::state::KEY_LEASE).await {
            if lease.holder == record.owner {
                self.state.put(super::state::KEY_LEASE, Some(&super::state::Lease { holder: lease.holder, until_ms: 0 })).await?;
            }
        }
        Ok((n, recovery))
    }
}

/// The `leader/follower.replication.throttled.replicas` values for the moves of one topic:
/// `partition:broker` for every current replica (they serve the copy) and for every new one
/// (it fetches), as kafka-reassign-partitions sets them.
fn throttled_replicas(moves: &[&ReplicaMove]) -> (String, String) {
    let mut leaders = Vec::new();
    let mut followers = Vec::new();
    for m in moves {
        leaders.extend(m.from_replicas.iter().map(|b| format!("{}:{b}", m.partition)));
        followers.extend(m.to_replicas.iter().filter(|b| !m.from_replicas.contains(b)).map(|b| format!("{}:{b}", m.partition)));
    }
    (leaders.join(","), followers.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_placement::Reason;

    fn mv(partition: i32, from: &[i32], to: &[i32]) -> ReplicaMove {
        ReplicaMove {
            topic: "t.x".into(),
            partition,
            from_replicas: from.to_vec(),
            to_replicas: to.to_vec(),
            bytes: 0,
            reason: Reason::NetworkLoad,
        }
    }

    #[test]
    fn throttled_replicas_name_sources_and_new_replicas() {
        let a = mv(0, &[1, 2], &[3, 2]);
        let b = mv(4, &[2, 3, 1], &[2, 3, 4]);
        let (leaders, followers) = throttled_replicas(&[&a, &b]);
        assert_eq!(leaders, "0:1,0:2,4:2,4:3,4:1");
        // Only brokers that receive a copy are throttled as followers.
        assert_eq!(followers, "0:3,4:4");
        assert_eq!(throttled_replicas(&[]), (String::new(), String::new()));
    }
}
