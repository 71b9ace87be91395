//! The pool administration the placement applier needs, on top of [`KafkaConn::call`]:
//! Metadata of every topic (brokers with racks, replicas, leaders), replica sizes
//! (DescribeLogDirs), ListPartitionReassignments, AlterPartitionReassignments, ElectLeaders
//! and IncrementalAlterConfigs. KRaft brokers forward the cluster-wide ones to the active
//! controller, so any broker will do; broker configs go to the broker they name.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId, DescribeLogDirsResponse,
    ElectLeadersRequest, ElectLeadersResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::kclient::{KafkaConn, KafkaError, PoolAccess};

/// Kafka error codes the applier treats specially.
pub mod code {
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
    pub const ELECTION_NOT_NEEDED: i16 = 84;
}

/// One live broker.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub addr: String,
    pub rack: Option<String>,
}

/// One partition as the pool's Metadata reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PartitionInfo {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub leader: i32,
    pub isr: Vec<i32>,
}

/// An ongoing reassignment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ongoing {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// A per-partition failure of an admin call: (topic, partition, code, message).
pub type PartitionError = (String, i32, i16, Option<String>);

/// Configuration operations of IncrementalAlterConfigs.
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
/// Config resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

const ADMIN_TIMEOUT_MS: i32 = 30_000;

/// Admin calls to the pool; a connection per call (they are rare).
#[derive(Clone)]
pub struct PoolAdmin {
    pub access: PoolAccess,
}

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_owned()))
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

impl PoolAdmin {
    async fn conn(&self) -> Result<KafkaConn, KafkaError> {
        self.access.connect_any().await
    }

    /// Live brokers and every topic's partitions.
    pub async fn describe(&self) -> Result<(Vec<BrokerInfo>, Vec<PartitionInfo>), KafkaError> {
        let mut c = self.conn().await?;
        let req = MetadataRequest::default().with_topics(None);
        let md: MetadataResponse = c.call(ApiKey::Metadata, crate::kclient::METADATA_VERSION, &req, Duration::ZERO).await?;
        let brokers = md
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.node_id.0,
                addr: format!("{}:{}", b.host.as_str(), b.port),
                rack: b.rack.as_ref().map(|r| r.to_string()),
            })
            .collect();
        let mut parts = Vec::new();
        for t in &md.topics {
            let Some(topic) = t.name.as_ref() else { continue };
            if t.error_code != 0 {
                continue;
            }
            for p in &t.partitions {
                parts.push(PartitionInfo {
                    topic: topic.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replica_nodes),
                    leader: p.leader_id.0,
                    isr: ids(&p.isr_nodes),
                });
            }
        }
        Ok((brokers, parts))
    }

    /// Size of every replica a broker holds (largest across its log dirs), by (topic, partition).
    pub async fn replica_sizes(&self, broker: &BrokerInfo) -> Result<HashMap<(String, i32), u64>, KafkaError> {
        let mut c = self.access.connect_to(&broker.addr)
            .await?;
        let resp: DescribeLogDirsResponse =
            c.call(ApiKey::DescribeLogDirs, 4, &DescribeLogDirsRequest::default().with_topics(None), Duration::ZERO).await?;
        let mut out = HashMap::new();
        for dir in resp.results.iter().filter(|d| d.error_code == 0) {
            for t in &dir.topics {
                for p in &t.partitions {
                    let e = out.entry((t.name.0.to_string(), p.partition_index)).or_insert(0u64);
                    *e = (*e).max(p.partition_size.max(0) as u64);
                }
            }
        }
        Ok(out)
    }

    /// Every ongoing reassignment.
    pub async fn list_reassignments(&self) -> Result<HashMap<(String, i32), Ongoing>, KafkaError> {
        let mut c = self.conn().await?;
        let req = ListPartitionReassignmentsRequest::default().with_timeout_ms(ADMIN_TIMEOUT_MS).with_topics(None);
        let resp: ListPartitionReassignmentsResponse =
            c.call(ApiKey::ListPartitionReassignments, 0, &req, Duration::ZERO).await?;
        if resp.error_code != 0 {
            return Err(broker_error(ApiKey::ListPartitionReassignments, "pool", resp.error_code, resp.error_message));
        }
        let mut out = HashMap::new();
        for t in resp.topics {
            for p in t.partitions {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    Ongoing { replicas: ids(&p.replicas), adding: ids(&p.adding_replicas), removing: ids(&p.removing_replicas) },
                );
            }
        }
        Ok(out)
    }

    /// Starts (`Some(replicas)`) or cancels (`None`) reassignments; returns the partitions
    /// the controller refused.
    pub async fn alter_reassignments(
        &self,
        targets: &[(String, i32, Option<Vec<i32>>)],
    ) -> Result<Vec<PartitionError>, KafkaError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_topic: HashMap<&str, Vec<ReassignablePartition>> = HashMap::new();
        for (t, p, r) in targets {
            by_topic.entry(t.as_str()).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*p)
                    .with_replicas(r.as_ref().map(|r| r.iter().map(|&b| BrokerId(b)).collect())),
            );
        }
        let req = AlterPartitionReassignmentsRequest::default().with_timeout_ms(ADMIN_TIMEOUT_MS).with_topics(
            by_topic.into_iter().map(|(t, ps)| ReassignableTopic::default().with_name(name(t)).with_partitions(ps)).collect(),
        );
        let mut c = self.conn().await?;
        let resp: AlterPartitionReassignmentsResponse =
            c.call(ApiKey::AlterPartitionReassignments, 0, &req, Duration::from_secs(30)).await?;
        if resp.error_code != 0 {
            return Err(broker_error(ApiKey::AlterPartitionReassignments, "pool", resp.error_code, resp.error_message));
        }
        let mut failed = Vec::new();
        for t in resp.responses {
            for p in t.partitions {
                if p.error_code != 0 {
                    failed.push((t.name.0.to_string(), p.partition_index, p.error_code, p.error_message.map(|m| m.to_string())));
                }
            }
        }
        Ok(failed)
    }

    /// Preferred-leader elections; ELECTION_NOT_NEEDED counts as success.
    pub async fn elect_preferred(&self, partitions: &[(String, i32)]) -> Result<Vec<PartitionError>, KafkaError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_topic: HashMap<&str, Vec<i32>> = HashMap::new();
        for (t, p) in partitions {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        let req = ElectLeadersRequest::default()
            .with_election_type(0)
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topic_partitions(Some(
                by_topic.into_iter().map(|(t, ps)| TopicPartitions::default().with_topic(name(t)).with_partitions(ps)).collect(),
            ));
        let mut c = self.conn().await?;
        let resp: ElectLeadersResponse = c.call(ApiKey::ElectLeaders, 2, &req, Duration::from_secs(30)).await?;
        if resp.error_code != 0 {
            return Err(broker_error(ApiKey::ElectLeaders, "pool", resp.error_code, None));
        }
        let mut failed = Vec::new();
        for t in resp.replica_election_results {
            for p in t.partition_result {
                if p.error_code != 0 && p.error_code != code::ELECTION_NOT_NEEDED {
                    failed.push((t.topic.0.to_string(), p.partition_id, p.error_code, p.error_message.map(|m| m.to_string())));
                }
            }
        }
        Ok(failed)
    }

    /// Sets (`Some`) or deletes (`None`) configs of one resource. Broker resources are sent
    /// to that broker (`addr`), topics to any.
    pub async fn alter_configs(
        &self,
        resource_type: i8,
        resource_name: &str,
        addr: Option<&str>,
        configs: &[(&str, Option<String>)],
    ) -> Result<(), KafkaError> {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(resource_name.to_owned()))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string((*k).to_owned()))
                            .with_config_operation(if v.is_some() { OP_SET } else { OP_DELETE })
                            .with_value(v.clone().map(StrBytes::from_string))
                    })
                    .collect(),
            )]);
        let mut c = match addr {
            Some(a) => self.access.connect_to(a).await?,
            None => self.conn().await?,
        };
        let resp: IncrementalAlterConfigsResponse =
            c.call(ApiKey::IncrementalAlterConfigs, 1, &req, Duration::ZERO).await?;
        for r in resp.responses {
            if r.error_code != 0 {
                return Err(broker_error(ApiKey::IncrementalAlterConfigs, resource_name, r.error_code, r.error_message));
            }
        }
        Ok(())
    }
}

impl PoolAdmin {
    /// Values of `keys` in broker `broker`'s configuration (static or dynamic).
    pub async fn broker_configs(&self, broker: &BrokerInfo, keys: &[&str]) -> Result<HashMap<String, String>, KafkaError> {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
        let req = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(StrBytes::from_string(broker.id.to_string()))
            .with_configuration_keys(Some(keys.iter().map(|k| StrBytes::from_string((*k).to_owned())).collect()))]);
        let mut c = self.access.connect_to(&broker.addr)
            .await?;
        let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req, Duration::ZERO).await?;
        let mut out = HashMap::new();
        for r in resp.results {
            if r.error_code != 0 {
                return Err(broker_error(ApiKey::DescribeConfigs, &broker.id.to_string(), r.error_code, r.error_message));
            }
            for c in r.configs {
                if let Some(v) = c.value {
                    out.insert(c.name.to_string(), v.to_string());
                }
            }
        }
        Ok(out)
    }
}

fn broker_error(api: ApiKey, what: &str, code: i16, message: Option<StrBytes>) -> KafkaError {
    let name = kafka_protocol::error::ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| "unknown".into());
    KafkaError::Broker { api, what: what.to_owned(), code, name, message: message.map(|m| m.to_string()) }
}
