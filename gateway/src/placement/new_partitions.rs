//! Explicit replica assignments for tenant CreateTopics / CreatePartitions (SPEC 8), from a
//! cached view of the pool (the request path is synchronous): brokers with racks, every
//! tenant partition's replicas and leader, the broker defaults `num.partitions` and
//! `default.replication.factor`, and this gateway's measured rates. The background task
//! refreshes the view every few seconds; each assignment is added to it at once, so
//! topics created in a burst are spread as well.
//!
//! When the view is missing or the planner refuses, the request goes through unchanged and
//! the pool assigns, as without placement.

use std::sync::RwLock;

use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::BrokerId;
use sluice_placement::{Broker, Capacity, ClusterState, Partition};

use super::admin::PoolAdmin;
use super::tenant_of;
use crate::kclient::KafkaError;

/// The cached pool view.
#[derive(Debug, Clone, Default)]
pub struct PoolView {
    pub cluster: ClusterState,
    pub default_partitions: i32,
    pub default_replication_factor: i32,
}

fn view() -> &'static RwLock<Option<PoolView>> {
    static VIEW: RwLock<Option<PoolView>> = RwLock::new(None);
    &VIEW
}

/// Re-reads the pool into the cached view.
pub async fn refresh(admin: &PoolAdmin) -> Result<(), KafkaError> {
    let (brokers, partitions) = admin.describe().await?;
    let Some(first) = brokers.first() else { return Ok(()) };
    let configs = admin.broker_configs(first, &["num.partitions", "default.replication.factor"]).await?;
    let num = |k: &str, d: i32| configs.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let rates = crate::load::registry().rates();
    let cluster = ClusterState {
        brokers: brokers
            .iter()
            .map(|b| Broker { id: b.id, rack: b.rack.clone(), capacity: Capacity::default(), draining: false })
            .collect(),
        partitions: partitions
            .iter()
            .filter_map(|p| {
                let t = tenant_of(&p.topic)?;
                let r = rates.get(&(p.topic.clone(), p.partition)).copied().unwrap_or_default();
                let mut replicas = p.replicas.clone();
                replicas.dedup();
                Some(Partition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    tenant: t.to_owned(),
                    leader: if replicas.contains(&p.leader) { p.leader } else { -1 },
                    replicas,
                    bytes_in_per_sec: r.bytes_in_per_sec,
                    bytes_out_per_sec: r.bytes_out_per_sec,
                    size_bytes: 0,
                })
            })
            .collect(),
    };
    let v = PoolView {
        cluster,
        default_partitions: num("num.partitions", 1),
        default_replication_factor: num("default.replication.factor", 1),
    };
    if let Ok(mut w) = view().write() {
        *w = Some(v);
    }
    Ok(())
}

/// Marks a drained broker in the cached view (it receives no new partitions).
pub fn set_draining(ids: &[i32]) {
    if let Ok(mut w) = view().write() {
        if let Some(v) = w.as_mut() {
            for b in &mut v.cluster.brokers {
                b.draining = ids.contains(&b.id);
            }
        }
    }
}

/// Replica lists for `count` partitions of `pool_topic` from index `first`, with `rf`
/// replicas each (None: the pool's default), added to the view.
pub fn assign(pool_topic: &str, count: i32, first: i32, rf: Option<i32>) -> Option<Vec<Vec<i32>>> {
    let tenant = tenant_of(pool_topic)?;
    let Ok(mut w) = view().write() else { return None };
    let v = w.as_mut()?;
    let rf = rf.unwrap_or(v.default_replication_factor);
    let lists = match sluice_placement::place_new(&v.cluster, tenant, pool_topic, count, rf, first) {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(topic = pool_topic, error = %e, "place_new refused; the pool assigns");
            return None;
        }
    };
    v.cluster.partitions.retain(|p| !(p.topic == pool_topic && p.partition >= first));
    for (i, r) in lists.iter().enumerate() {
        v.cluster.partitions.push(Partition {
            topic: pool_topic.to_owned(),
            partition: first + i as i32,
            tenant: tenant.to_owned(),
            replicas: r.clone(),
            leader: r.first().copied().unwrap_or(-1),
            bytes_in_per_sec: 0.0,
            bytes_out_per_sec: 0.0,
            size_bytes: 0,
        });
    }
    Some(lists)
}

/// Gives a tenant CreateTopics entry (pool name `pool_topic`, replication factor left to
/// the pool) explicit assignments; leaves it unchanged when placement cannot.
pub fn assign_create_topic(t: &mut CreatableTopic, pool_topic: &str) {
    let exists = view().read().ok().is_some_and(|v| {
        v.as_ref().is_some_and(|v| v.cluster.partitions.iter().any(|p| p.topic == pool_topic))
    });
    if exists {
        return; // the pool answers TOPIC_ALREADY_EXISTS
    }
    let count = if t.num_partitions > 0 {
        t.num_partitions
    } else {
        match view().read().ok().and_then(|v| v.as_ref().map(|v| v.default_partitions)) {
            Some(n) => n,
            None => return,
        }
    };
    let Some(lists) = assign(pool_topic, count, 0, None) else { return };
    t.assignments = lists
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(i as i32)
                .with_broker_ids(r.into_iter().map(BrokerId).collect())
        })
        .collect();
    // With assignments, both must be -1 (Kafka's rule).
    t.num_partitions = -1;
    t.replication_factor = -1;
}

/// Gives a tenant CreatePartitions entry assignments for the partitions it adds, with the
/// topic's own replication factor; unchanged when the view does not know the topic.
pub fn assign_create_partitions(t: &mut CreatePartitionsTopic, pool_topic: &str) {
    let (current, rf) = {
        let Ok(r) = view().read() else { return };
        let Some(v) = r.as_ref() else { return };
        let parts: Vec<&Partition> = v.cluster.partitions.iter().filter(|p| p.topic == pool_topic).collect();
        let Some(rf) = parts.iter().map(|p| p.replicas.len()).max() else { return };
        (parts.len() as i32, rf as i32)
    };
    if t.count <= current {
        return; // the pool answers INVALID_PARTITIONS itself
    }
    let Some(lists) = assign(pool_topic, t.count - current, current, Some(rf)) else { return };
    t.assignments = Some(
        lists
            .into_iter()
            .map(|r| CreatePartitionsAssignment::default().with_broker_ids(r.into_iter().map(BrokerId).collect()))
            .collect(),
    );
}
