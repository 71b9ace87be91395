//! What each tenant holds in the pool: partitions per topic, which topics are
//! compacted, and its groups, polled from the pool itself, for the partition-count and
//! group-count limits of SPEC 7 (2400 partitions, 120 of them compacted, 500 groups, by
//! default). Groups are listed with ListGroups on every broker (each lists the groups it
//! coordinates); a group first used through this gateway counts at once.
//!
//! The pool is the truth (other gateway instances create topics too), so every poll
//! replaces the counts; topics created through this gateway are added at once so that
//! back-to-back creations see each other before the next poll. A topic's compaction is
//! read once with DescribeConfigs: tenants can only set `cleanup.policy` at creation.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, ListGroupsRequest, ListGroupsResponse, MetadataRequest,
    MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_tenancy::TenantId;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::kclient::{KafkaConn, KafkaError, PoolAccess, METADATA_VERSION};

/// One pool topic of a tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCount {
    pub partitions: u64,
    pub compacted: bool,
}

/// A tenant's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantCounts {
    pub partitions: u64,
    pub compacted_partitions: u64,
}

#[derive(Default)]
pub struct Inventory {
    /// Pool topic name → its count, for tenant topics only.
    topics: DashMap<String, TopicCount>,
    /// Pool group ids of tenant groups.
    groups: DashMap<String, ()>,
    /// Whether a poll has completed (before that, limits are not enforced: the gateway
    /// cannot tell, and refusing every creation would be worse).
    ready: AtomicBool,
}

/// The process-wide inventory (the pool is the same for every listener).
pub fn inventory() -> &'static Inventory {
    static INVENTORY: std::sync::OnceLock<Inventory> = std::sync::OnceLock::new();
    INVENTORY.get_or_init(Inventory::default)
}

/// The tenant a pool name belongs to, if any.
fn tenant_of(pool_name: &str) -> Option<&str> {
    let (tenant, rest) = pool_name.split_once('.')?;
    (!rest.is_empty() && tenant.parse::<TenantId>().is_ok()).then_some(tenant)
}

impl Inventory {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The partitions of one pool topic, if known.
    pub fn topic(&self, pool_name: &str) -> Option<TopicCount> {
        self.topics.get(pool_name).map(|c| *c)
    }

    /// A tenant's totals.
    pub fn counts(&self, tenant: &str) -> TenantCounts {
        let mut out = TenantCounts::default();
        for entry in self.topics.iter() {
            if tenant_of(entry.key()) == Some(tenant) {
                out.partitions += entry.partitions;
                if entry.compacted {
                    out.compacted_partitions += entry.partitions;
                }
            }
        }
        out
    }

    /// Records a topic created or grown through this gateway.
    pub fn record(&self, pool_name: &str, partitions: u64, compacted: Option<bool>) {
        let mut entry = self.topics.entry(pool_name.to_owned()).or_default();
        entry.partitions = entry.partitions.max(partitions);
        if let Some(c) = compacted {
            entry.compacted = c;
        }
    }

    pub fn forget(&self, pool_name: &str) {
        self.topics.remove(pool_name);
    }

    /// Groups `tenant` holds.
    pub fn group_count(&self, tenant: &str) -> u64 {
        self.groups.iter().filter(|g| tenant_of(g.key()) == Some(tenant)).count() as u64
    }

    /// Whether the group `pool_group` may be used: a group the tenant holds always; a new
    /// one only while the tenant holds fewer than `max` (it then counts at once).
    /// `Err(held)` otherwise. Before the first poll every group is admitted.
    pub fn admit_group(&self, pool_group: &str, max: u64) -> Result<(), u64> {
        if self.groups.contains_key(pool_group) || !self.is_ready() {
            return Ok(());
        }
        let Some(tenant) = tenant_of(pool_group) else { return Ok(()) };
        let held = self.group_count(tenant);
        if held >= max {
            return Err(held);
        }
        self.groups.insert(pool_group.to_owned(), ());
        Ok(())
    }

    /// Lists the groups of every broker in `brokers` (node id → address). The counts are
    /// replaced only when every broker answered; otherwise groups are only added.
    async fn poll_groups(&self, brokers: &[(i32, String)], conns: &mut HashMap<i32, KafkaConn>, access: &PoolAccess) {
        let mut seen = HashSet::new();
        let mut complete = true;
        for (id, addr) in brokers {
            let conn = match conns.get_mut(id) {
                Some(c) => c,
                None => match access.connect_to(addr).await {
                    Ok(c) => conns.entry(*id).or_insert(c),
                    Err(e) => {
                        debug!(node = id, error = %e, "group inventory: broker unreachable");
                        complete = false;
                        continue;
                    }
                },
            };
            let listed: Result<ListGroupsResponse, _> =
                conn.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default(), Duration::ZERO).await;
            match listed {
                Ok(resp) if resp.error_code == 0 => {
                    for g in resp.groups {
                        if tenant_of(g.group_id.0.as_str()).is_some() {
                            seen.insert(g.group_id.0.to_string());
                        }
                    }
                }
                Ok(resp) => {
                    debug!(node = id, code = resp.error_code, "group inventory: ListGroups failed");
                    complete = false;
                }
                Err(e) => {
                    debug!(node = id, error = %e, "group inventory: ListGroups failed");
                    conns.remove(id);
                    complete = false;
                }
            }
        }
        conns.retain(|id, _| brokers.iter().any(|(b, _)| b == id));
        if complete {
            self.groups.retain(|g, _| seen.contains(g));
        }
        for g in seen {
            self.groups.insert(g, ());
        }
    }

    /// Polls the pool every `every` until cancelled.
    pub async fn run(&'static self, access: PoolAccess, every: Duration, cancel: CancellationToken) {
        let mut conn: Option<KafkaConn> = None;
        let mut group_conns = HashMap::new();
        let mut failures = 0u32;
        loop {
            let result = match conn.as_mut() {
                Some(c) => self.poll(c).await,
                None => match access.connect_any().await {
                    Ok(c) => self.poll(conn.insert(c)).await,
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(brokers) => {
                    failures = 0;
                    self.poll_groups(&brokers, &mut group_conns, &access).await;
                    if !self.ready.swap(true, Ordering::Relaxed) {
                        debug!(topics = self.topics.len(), groups = self.groups.len(), "tenant inventory ready");
                    }
                }
                Err(e) => {
                    conn = None;
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(20) {
                        warn!(error = %e, failures, "tenant inventory poll failed");
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Polls topics; returns the pool's brokers (node id, address) for the group poll.
    async fn poll(&self, conn: &mut KafkaConn) -> Result<Vec<(i32, String)>, KafkaError> {
        let md: MetadataResponse =
            conn.call(ApiKey::Metadata, METADATA_VERSION, &MetadataRequest::default().with_topics(None), Duration::ZERO).await?;
        let mut seen = HashSet::new();
        let mut unknown_compaction = Vec::new();
        for t in &md.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.as_str()) else { continue };
            if t.error_code != 0 || tenant_of(name).is_none() {
                continue;
            }
            seen.insert(name.to_owned());
            let partitions = t.partitions.len() as u64;
            let mut entry = self.topics.entry(name.to_owned()).or_default();
            let first_time = entry.partitions == 0;
            entry.partitions = partitions;
            if first_time {
                unknown_compaction.push(name.to_owned());
            }
        }
        // Topics gone from the pool (deleted anywhere) leave the counts.
        self.topics.retain(|name, _| seen.contains(name));
        for chunk in unknown_compaction.chunks(100) {
            let req = DescribeConfigsRequest::default().with_resources(
                chunk
                    .iter()
                    .map(|name| {
                        DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_string(name.clone()))
                            .with_configuration_keys(Some(vec![StrBytes::from_static_str("cleanup.policy")]))
                    })
                    .collect(),
            );
            let resp: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req, Duration::ZERO).await?;
            for r in resp.results.iter().filter(|r| r.error_code == 0) {
                let compacted = r
                    .configs
                    .iter()
                    .any(|c| c.name.as_str() == "cleanup.policy" && c.value.as_ref().is_some_and(|v| v.contains("compact")));
                if let Some(mut entry) = self.topics.get_mut(r.resource_name.as_str()) {
                    entry.compacted = compacted;
                }
            }
        }
        Ok(md.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect())
    }
}

/// Shared handle for the server to spawn the poll.
pub fn spawn(access: PoolAccess, every: Duration, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(inventory().run(access, every, cancel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_counted_by_prefix() {
        let inv = Inventory::default();
        inv.record("acme.a", 3, Some(false));
        inv.record("acme.b", 2, Some(true));
        inv.record("acme-x.c", 7, Some(false));
        inv.record("__consumer_offsets", 50, None);
        assert_eq!(inv.counts("acme"), TenantCounts { partitions: 5, compacted_partitions: 2 });
        assert_eq!(inv.counts("acme-x"), TenantCounts { partitions: 7, compacted_partitions: 0 });
        assert_eq!(tenant_of("__consumer_offsets"), None);
        assert_eq!(tenant_of("acme."), None);
        inv.forget("acme.a");
        assert_eq!(inv.counts("acme").partitions, 2);
    }

    #[test]
    fn new_groups_count_at_once_and_known_ones_always_pass() {
        let inv = Inventory::default();
        // Not polled yet: nothing is refused (and nothing recorded).
        assert_eq!(inv.admit_group("acme.g0", 0), Ok(()));
        inv.ready.store(true, Ordering::Relaxed);
        assert_eq!(inv.admit_group("acme.g1", 2), Ok(()));
        assert_eq!(inv.admit_group("acme.g2", 2), Ok(()));
        assert_eq!(inv.admit_group("acme.g3", 2), Err(2));
        assert_eq!(inv.admit_group("acme.g1", 2), Ok(()));
        assert_eq!(inv.admit_group("acme-x.g1", 2), Ok(()));
        assert_eq!(inv.group_count("acme"), 2);
    }
}
