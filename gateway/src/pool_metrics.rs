//! Per-tenant gauges read from the pool itself, polled at a modest interval
//! (`[metrics] pool_poll_ms`, 15 s by default): partitions (from the tenant inventory),
//! storage bytes (DescribeLogDirs on every broker) and consumer lag per group and topic
//! (ListGroups on every broker, OffsetFetch from each group's coordinator, ListOffsets
//! latest from each partition's leader), like MSK's `SumOffsetLag`/`MaxOffsetLag`.
//!
//! Only tenants in the store get series, so label values are bounded by what operators
//! created. A series that stops being reported (a deleted group or tenant) is set to 0
//! once; the recorder keeps it until the process restarts.
//!
//! Each round opens one short-lived connection per broker: at this interval that costs
//! less than keeping them and handling their failures.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeLogDirsResponse, GroupId, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_tenancy::TenantId;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::kclient::{KafkaConn, KafkaError, PoolAccess, METADATA_VERSION};
use crate::store::TenantStore;

pub const PARTITIONS: &str = "sluice_tenant_partitions";
pub const STORAGE: &str = "sluice_tenant_storage_bytes";
pub const LAG: &str = "sluice_consumer_group_lag";
pub const MAX_LAG: &str = "sluice_consumer_group_max_lag";

/// OffsetFetch v8 is the first with batched groups; every Kafka 4.x broker speaks it.
const OFFSET_FETCH_VERSION: i16 = 8;
/// ListGroups v5 reports group types (share groups have no committed offsets to lag).
const LIST_GROUPS_VERSION: i16 = 5;
const DESCRIBE_LOG_DIRS_VERSION: i16 = 4;
/// Groups per OffsetFetch request.
const GROUPS_PER_CALL: usize = 50;

/// Help texts, registered once with the recorder.
pub fn describe() {
    metrics::describe_gauge!(PARTITIONS, "Partitions of the tenant's topics in the pool (tenant inventory)");
    metrics::describe_gauge!(
        STORAGE,
        metrics::Unit::Bytes,
        "Log bytes of the tenant's partitions (DescribeLogDirs; the largest replica of each partition, so replication is not counted)"
    );
    metrics::describe_gauge!(
        LAG,
        "Consumer lag per group and topic: sum over partitions with a committed offset of (log end offset - committed offset)"
    );
    metrics::describe_gauge!(MAX_LAG, "Largest partition lag per group and topic");
}

/// One round's results, keyed by tenant-view names.
#[derive(Debug, Default, PartialEq)]
pub struct Round {
    /// Tenant → storage bytes.
    pub storage: BTreeMap<String, u64>,
    /// (tenant, group, topic) → (sum of lag, max lag).
    pub lag: BTreeMap<(String, String, String), (i64, i64)>,
}

/// The tenant and the rest of a pool name (`acme.orders` → (`acme`, `orders`)).
fn split(pool_name: &str) -> Option<(&str, &str)> {
    let (tenant, rest) = pool_name.split_once('.')?;
    (!rest.is_empty() && tenant.parse::<TenantId>().is_ok()).then_some((tenant, rest))
}

/// Lag per (tenant, group, topic) from committed offsets and log end offsets, both keyed
/// by pool names. Partitions without a committed offset (`< 0`) or an end offset are left
/// out, as `kafka-consumer-groups --describe` shows them without a lag.
pub fn lag(
    committed: &HashMap<(String, String, i32), i64>,
    ends: &HashMap<(String, i32), i64>,
) -> BTreeMap<(String, String, String), (i64, i64)> {
    let mut out: BTreeMap<(String, String, String), (i64, i64)> = BTreeMap::new();
    for ((group, topic, partition), &offset) in committed {
        if offset < 0 {
            continue;
        }
        let Some(&end) = ends.get(&(topic.clone(), *partition)) else { continue };
        let (Some((tenant, g)), Some((topic_tenant, t))) = (split(group), split(topic)) else { continue };
        if tenant != topic_tenant {
            continue;
        }
        let lag = (end - offset).max(0);
        let e = out.entry((tenant.to_owned(), g.to_owned(), t.to_owned())).or_default();
        e.0 += lag;
        e.1 = e.1.max(lag);
    }
    out
}

/// The latest complete round, for the admin API's consumer-group lag.
pub fn latest() -> Option<std::sync::Arc<Round>> {
    LATEST.lock().ok().and_then(|l| l.clone())
}

static LATEST: std::sync::Mutex<Option<std::sync::Arc<Round>>> = std::sync::Mutex::new(None);

/// Polls the pool every `every` and sets the gauges, until cancelled.
pub async fn run(access: PoolAccess, store: TenantStore, every: Duration, cancel: CancellationToken) {
    describe();
    let mut reported = Round::default();
    let mut failures = 0u32;
    loop {
        let snapshot = store.snapshot();
        let known = |t: &str| t.parse::<TenantId>().ok().is_some_and(|id| snapshot.get(&id).is_some());
        match poll(&access, &known).await {
            Ok(round) => {
                failures = 0;
                publish(&store, &round, &reported);
                if let Ok(mut l) = LATEST.lock() {
                    *l = Some(std::sync::Arc::new(Round { storage: round.storage.clone(), lag: round.lag.clone() }));
                }
                reported = round;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    warn!(error = %e, failures, "pool metrics poll failed");
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

fn publish(store: &TenantStore, round: &Round, before: &Round) {
    crate::usage::observe_storage(&round.storage);
    let snapshot = store.snapshot();
    let known = |t: &str| t.parse::<TenantId>().ok().is_some_and(|id| snapshot.get(&id).is_some());
    let inventory = crate::tenant::inventory::inventory();
    for (id, _) in snapshot.iter() {
        let t = id.as_str();
        if inventory.is_ready() {
            metrics::gauge!(PARTITIONS, "tenant" => t.to_owned()).set(inventory.counts(t).partitions as f64);
        }
        metrics::gauge!(STORAGE, "tenant" => t.to_owned()).set(round.storage.get(t).copied().unwrap_or(0) as f64);
    }
    for t in before.storage.keys().filter(|t| !known(t)) {
        metrics::gauge!(STORAGE, "tenant" => t.clone()).set(0.0);
    }
    for ((t, g, topic), (sum, max)) in &round.lag {
        if !known(t) {
            continue;
        }
        let labels = [("tenant", t.clone()), ("group", g.clone()), ("topic", topic.clone())];
        metrics::gauge!(LAG, &labels).set(*sum as f64);
        metrics::gauge!(MAX_LAG, &labels).set(*max as f64);
    }
    for (t, g, topic) in before.lag.keys().filter(|k| !round.lag.contains_key(*k)) {
        let labels = [("tenant", t.clone()), ("group", g.clone()), ("topic", topic.clone())];
        metrics::gauge!(LAG, &labels).set(0.0);
        metrics::gauge!(MAX_LAG, &labels).set(0.0);
    }
}

/// One round against the pool; groups are read only for tenants `known` says exist.
pub async fn poll(access: &PoolAccess, known: &(dyn Fn(&str) -> bool + Sync)) -> Result<Round, KafkaError> {
    let mut any = access.connect_any().await?;
    let md: MetadataResponse =
        any.call(ApiKey::Metadata, METADATA_VERSION, &MetadataRequest::default().with_topics(None), Duration::ZERO).await?;
    drop(any);
    let brokers: Vec<(i32, String)> =
        md.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect();
    // Leaders of tenant partitions, for ListOffsets.
    let mut leaders: HashMap<(String, i32), i32> = HashMap::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.as_str()) else { continue };
        if t.error_code != 0 || split(name).is_none() {
            continue;
        }
        for p in &t.partitions {
            leaders.insert((name.to_owned(), p.partition_index), p.leader_id.0);
        }
    }
    let mut sizes: HashMap<(String, i32), u64> = HashMap::new();
    let mut committed: HashMap<(String, String, i32), i64> = HashMap::new();
    let mut conns: HashMap<i32, KafkaConn> = HashMap::new();
    for (id, addr) in &brokers {
        let mut conn = match access.connect_to(addr).await {
            Ok(c) => c,
            Err(e) => {
                debug!(node = id, error = %e, "pool metrics: broker unreachable");
                continue;
            }
        };
        if let Err(e) = broker_round(&mut conn, known, &mut sizes, &mut committed).await {
            debug!(node = id, error = %e, "pool metrics: broker round failed");
            continue;
        }
        conns.insert(*id, conn);
    }
    // End offsets of the partitions some group committed, asked of each leader.
    let mut by_leader: HashMap<i32, HashSet<(String, i32)>> = HashMap::new();
    for (_, topic, partition) in committed.keys() {
        if let Some(&leader) = leaders.get(&(topic.clone(), *partition)) {
            by_leader.entry(leader).or_default().insert((topic.clone(), *partition));
        }
    }
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for (leader, parts) in by_leader {
        let Some(conn) = conns.get_mut(&leader) else { continue };
        match end_offsets(conn, &parts).await {
            Ok(e) => ends.extend(e),
            Err(e) => debug!(node = leader, error = %e, "pool metrics: ListOffsets failed"),
        }
    }
    let mut storage: BTreeMap<String, u64> = BTreeMap::new();
    for ((topic, _), size) in &sizes {
        if let Some((tenant, _)) = split(topic) {
            *storage.entry(tenant.to_owned()).or_default() += size;
        }
    }
    Ok(Round { storage, lag: lag(&committed, &ends) })
}

/// Replica sizes (largest per partition) and the committed offsets of the tenant groups
/// this broker coordinates.
async fn broker_round(
    conn: &mut KafkaConn,
    known: &(dyn Fn(&str) -> bool + Sync),
    sizes: &mut HashMap<(String, i32), u64>,
    committed: &mut HashMap<(String, String, i32), i64>,
) -> Result<(), KafkaError> {
    let dirs: DescribeLogDirsResponse = conn
        .call(ApiKey::DescribeLogDirs, DESCRIBE_LOG_DIRS_VERSION, &DescribeLogDirsRequest::default().with_topics(None), Duration::ZERO)
        .await?;
    for dir in dirs.results.iter().filter(|d| d.error_code == 0) {
        for t in dir.topics.iter().filter(|t| split(t.name.0.as_str()).is_some()) {
            for p in t.partitions.iter().filter(|p| !p.is_future_key) {
                let e = sizes.entry((t.name.0.to_string(), p.partition_index)).or_insert(0);
                *e = (*e).max(p.partition_size.max(0) as u64);
            }
        }
    }
    let listed: ListGroupsResponse =
        conn.call(ApiKey::ListGroups, LIST_GROUPS_VERSION, &ListGroupsRequest::default(), Duration::ZERO).await?;
    let groups: Vec<GroupId> = listed
        .groups
        .into_iter()
        .filter(|g| g.group_type.as_str() != "share" && split(g.group_id.0.as_str()).is_some_and(|(t, _)| known(t)))
        .map(|g| g.group_id)
        .collect();
    for chunk in groups.chunks(GROUPS_PER_CALL) {
        let req = OffsetFetchRequest::default().with_groups(
            chunk.iter().map(|g| OffsetFetchRequestGroup::default().with_group_id(g.clone()).with_topics(None)).collect(),
        );
        let resp: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, OFFSET_FETCH_VERSION, &req, Duration::ZERO).await?;
        for g in resp.groups.iter().filter(|g| g.error_code == 0) {
            for t in &g.topics {
                for p in t.partitions.iter().filter(|p| p.error_code == 0) {
                    committed.insert((g.group_id.0.to_string(), t.name.0.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
    }
    Ok(())
}

/// Log end offsets (ListOffsets latest, read-uncommitted: what `kafka-consumer-groups`
/// compares with) of `parts`, all led by the broker behind `conn`.
async fn end_offsets(conn: &mut KafkaConn, parts: &HashSet<(String, i32)>) -> Result<HashMap<(String, i32), i64>, KafkaError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(0).with_topics(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                ListOffsetsTopic::default().with_name(TopicName(StrBytes::from_string(t.to_owned()))).with_partitions(
                    ps.into_iter()
                        .map(|p| ListOffsetsPartition::default().with_partition_index(p).with_current_leader_epoch(-1).with_timestamp(-1))
                        .collect(),
                )
            })
            .collect(),
    );
    let resp: ListOffsetsResponse =
        conn.call(ApiKey::ListOffsets, crate::kclient::LIST_OFFSETS_VERSION, &req, Duration::ZERO).await?;
    let mut out = HashMap::new();
    for t in &resp.topics {
        for p in t.partitions.iter().filter(|p| p.error_code == 0 && p.offset >= 0) {
            out.insert((t.name.0.to_string(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_sums_per_group_and_topic_and_skips_uncommitted() {
        let committed: HashMap<(String, String, i32), i64> = [
            (("acme.g".into(), "acme.orders".into(), 0), 10),
            (("acme.g".into(), "acme.orders".into(), 1), 5),
            (("acme.g".into(), "acme.orders".into(), 2), -1),
            (("acme.g".into(), "acme.audit".into(), 0), 7),
            // A group of one tenant on another tenant's topic is never reported.
            (("acme.g".into(), "other.orders".into(), 0), 0),
            (("__internal".into(), "acme.orders".into(), 0), 0),
        ]
        .into();
        let ends: HashMap<(String, i32), i64> = [
            (("acme.orders".into(), 0), 30),
            (("acme.orders".into(), 1), 5),
            (("acme.orders".into(), 2), 100),
            (("acme.audit".into(), 0), 3),
            (("other.orders".into(), 0), 9),
        ]
        .into();
        let l = lag(&committed, &ends);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[&("acme".into(), "g".into(), "orders".into())], (20, 20));
        // Committed past the end (truncated log) counts as no lag, not negative.
        assert_eq!(l[&("acme".into(), "g".into(), "audit".into())], (0, 0));
    }
}
