//! Placement in the gateway: turns the pool's state and the gateway's measured load into a
//! `sluice_placement::ClusterState`, runs the pure planner, and applies its plans to the pool
//! (SPEC 8, issue 7). The planner itself (no I/O) lives in the `sluice-placement` crate.
//!
//! - [`admin`]: the Kafka admin calls (Metadata, DescribeLogDirs, List/AlterPartition-
//!   Reassignments, ElectLeaders, IncrementalAlterConfigs).
//! - [`state`]: what must survive a restart, in the compacted `__sluice_placement` topic:
//!   the rebalancer lease, the applier's throttles and owed elections, load reports.
//! - [`applier`]: executes a plan (reorder + preferred election for leadership, throttled
//!   reassignments for moves), polls progress, cancels, cleans up.
//! - [`rebalancer`]: the background task (`[placement] enabled = true`).
//! - [`new_partitions`]: explicit replica lists for tenant CreateTopics /
//!   CreatePartitions.
//!
//! Only tenant topics (`<tenant>.<name>`) are planned: the gateway measures their load and
//! owns their placement; the pool's internal topics are left where Kafka put them.

pub mod admin;
pub mod applier;
pub mod cli;
pub mod new_partitions;
pub mod rebalancer;
pub mod state;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sluice_placement::{Broker, ClusterState, Partition, Plan, PlanLimits};
use sluice_tenancy::TenantId;

use crate::config::PlacementSettings;
use crate::kclient::{KafkaError, PoolAccess};
use admin::{BrokerInfo, Ongoing, PartitionInfo, PoolAdmin};
use state::{StateError, StateTopic};

#[derive(Debug, thiserror::Error)]
pub enum PlacementFailure {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("planner: {0}")]
    Planner(#[from] sluice_placement::PlacementError),
    #[error("{0}")]
    Refused(String),
}

/// The tenant a pool topic belongs to, if it is a tenant topic.
pub fn tenant_of(pool_name: &str) -> Option<&str> {
    let (tenant, rest) = pool_name.split_once('.')?;
    (!rest.is_empty() && tenant.parse::<TenantId>().is_ok()).then_some(tenant)
}

/// The pool as read at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub brokers: Vec<BrokerInfo>,
    /// Every partition of the pool (tenant topics and others).
    pub partitions: Vec<PartitionInfo>,
    pub ongoing: HashMap<(String, i32), Ongoing>,
    /// The planner's view: tenant topics not being reassigned, with measured rates.
    pub cluster: ClusterState,
}

impl Snapshot {
    pub fn broker(&self, id: i32) -> Option<&BrokerInfo> {
        self.brokers.iter().find(|b| b.id == id)
    }

    pub fn imbalance(&self) -> f64 {
        sluice_placement::imbalance(&self.cluster)
    }
}

/// Placement against one pool.
#[derive(Clone)]
pub struct Placement {
    pub admin: PoolAdmin,
    pub state: StateTopic,
    pub settings: PlacementSettings,
    /// Who is acting: a gateway id, or `cli-<pid>`.
    pub me: String,
}

impl Placement {
    pub fn new(
        bootstrap: Vec<String>,
        connect_timeout: Duration,
        upstream: crate::upstream::Upstream,
        settings: PlacementSettings,
        me: String,
    ) -> Self {
        let access =
            PoolAccess { bootstrap, connect_timeout, call_timeout: Duration::from_secs(35), client_id: "sluice-placement", upstream };
        Placement {
            admin: PoolAdmin { access: access.clone() },
            state: StateTopic { access, topic: settings.topic.clone() },
            settings,
            me,
        }
    }

    pub fn limits(&self) -> PlanLimits {
        PlanLimits {
            max_moves: self.settings.max_moves_per_plan.max(1),
            max_bytes_moved: self.settings.max_bytes_moved,
            max_leader_changes: self.settings.max_leader_changes,
            imbalance_threshold: self.settings.imbalance_threshold,
            min_improvement: self.settings.min_improvement,
        }
    }

    /// Reads the pool, replica sizes and the measured load (the fresh reports in the state
    /// topic, plus `local` rates not yet published) into a [`Snapshot`]. `draining` brokers
    /// receive nothing and are emptied.
    pub async fn snapshot(
        &self,
        draining: &[i32],
        local: Option<&HashMap<(String, i32), crate::load::Rate>>,
    ) -> Result<Snapshot, PlacementFailure> {
        let (brokers, partitions) = self.admin.describe().await?;
        let ongoing = self.admin.list_reassignments().await?;
        let mut load = match self.state.load(self.settings.load_max_age()).await {
            Ok(l) => l,
            // No state topic yet: no reports either.
            Err(StateError::Kafka(_)) => HashMap::new(),
            Err(e) => return Err(e.into()),
        };
        if let Some(local) = local {
            for (k, r) in local {
                load.entry(k.clone()).or_insert((r.bytes_in_per_sec, r.bytes_out_per_sec));
            }
        }
        let mut sizes: HashMap<(String, i32), u64> = HashMap::new();
        for b in &brokers {
            // A broker that cannot answer leaves sizes unknown (0): moves then look free,
            // bounded still by max_concurrent_moves.
            if let Ok(s) = self.admin.replica_sizes(b).await {
                for (k, v) in s {
                    let e = sizes.entry(k).or_insert(0);
                    *e = (*e).max(v);
                }
            }
        }
        let drain: HashSet<i32> = draining.iter().copied().collect();
        let cluster = ClusterState {
            brokers: brokers
                .iter()
                .map(|b| Broker {
                    id: b.id,
                    rack: b.rack.clone(),
                    capacity: self.settings.broker_capacity(),
                    draining: drain.contains(&b.id),
                })
                .collect(),
            partitions: partitions
                .iter()
                .filter(|p| !ongoing.contains_key(&(p.topic.clone(), p.partition)))
                .filter_map(|p| {
                    let tenant = tenant_of(&p.topic)?;
                    if !self.settings.tenants.is_empty() && !self.settings.tenants.iter().any(|t| t == tenant) {
                        return None;
                    }
                    let (i, o) = load.get(&(p.topic.clone(), p.partition)).copied().unwrap_or((0.0, 0.0));
                    // An offline partition (-1) or a leader the replica list no longer
                    // names cannot be planned as is.
                    let leader = if p.replicas.contains(&p.leader) { p.leader } else { -1 };
                    Some(Partition {
                        topic: p.topic.clone(),
                        partition: p.partition,
                        tenant: tenant.to_owned(),
                        replicas: p.replicas.clone(),
                        leader,
                        bytes_in_per_sec: i.max(0.0),
                        bytes_out_per_sec: o.max(0.0),
                        size_bytes: sizes.get(&(p.topic.clone(), p.partition)).copied().unwrap_or(0),
                    })
                })
                .collect(),
        };
        Ok(Snapshot { brokers, partitions, ongoing, cluster })
    }

    /// A dry-run plan for `snap`.
    pub fn plan(&self, snap: &Snapshot) -> Result<Plan, PlacementFailure> {
        Ok(sluice_placement::plan(&snap.cluster, &self.limits())?)
    }
}
