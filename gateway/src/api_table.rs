//! The one table of Kafka APIs: for every key the protocol crate knows, whether
//! clients may use it through the gateway, and what the gateway must do to its
//! response. Every other stage reads this table instead of matching on API keys.
//!
//! The match below is exhaustive over `ApiKey`, so a protocol-crate upgrade that adds
//! a key does not compile until the new key has an entry.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// Who may send a request of this API to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Used by ordinary producers, consumers and admin clients.
    Client,
    /// Cluster-wide administration (ACLs, reassignments, elections, log dirs, SCRAM,
    /// features). Forwarded only on the development listener; tenants are answered
    /// CLUSTER_AUTHORIZATION_FAILED by the tenancy stage.
    ClusterAdmin,
    /// Inter-broker and controller traffic. Never advertised, never forwarded.
    Internal,
}

/// What the gateway does to the broker's response before the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseRewrite {
    /// Forwarded byte for byte.
    None,
    /// Advertised ranges become the intersection of pool and gateway.
    ApiVersions,
    /// Broker hosts and ports become the gateway's.
    Metadata,
    FindCoordinator,
    DescribeCluster,
    /// Broker configs that name pool hosts (listeners, quorum voters) are redacted.
    DescribeConfigs,
    /// The response may carry `node_endpoints` (KIP-951 leader discovery) from this
    /// version on; those hosts are the pool's and must be replaced.
    NodeEndpoints { from_version: i16 },
}

#[derive(Debug, Clone, Copy)]
pub struct ApiEntry {
    pub key: ApiKey,
    pub exposure: Exposure,
    pub rewrite: ResponseRewrite,
}

impl ApiEntry {
    /// Versions the gateway can parse and rewrite: the protocol crate's range.
    pub fn versions(&self) -> VersionRange {
        self.key.valid_versions()
    }
}

pub fn entry(key: ApiKey) -> ApiEntry {
    use ApiKey::*;
    use Exposure::*;
    let (exposure, rewrite) = match key {
        ApiVersions => (Client, ResponseRewrite::ApiVersions),
        Metadata => (Client, ResponseRewrite::Metadata),
        FindCoordinator => (Client, ResponseRewrite::FindCoordinator),
        DescribeCluster => (Client, ResponseRewrite::DescribeCluster),
        DescribeConfigs => (Client, ResponseRewrite::DescribeConfigs),
        Produce => (Client, ResponseRewrite::NodeEndpoints { from_version: 10 }),
        Fetch => (Client, ResponseRewrite::NodeEndpoints { from_version: 16 }),
        ShareFetch | ShareAcknowledge => (Client, ResponseRewrite::NodeEndpoints { from_version: 0 }),

        ListOffsets | OffsetCommit | OffsetFetch | JoinGroup | Heartbeat | LeaveGroup | SyncGroup
        | DescribeGroups | ListGroups | SaslHandshake | SaslAuthenticate | CreateTopics | DeleteTopics
        | DeleteRecords | InitProducerId | OffsetForLeaderEpoch | AddPartitionsToTxn | AddOffsetsToTxn
        | EndTxn | TxnOffsetCommit | AlterConfigs | IncrementalAlterConfigs
        | CreatePartitions | DeleteGroups | OffsetDelete | DescribeClientQuotas | AlterClientQuotas
        | DescribeProducers | DescribeTransactions | ListTransactions | ConsumerGroupHeartbeat
        | ConsumerGroupDescribe | GetTelemetrySubscriptions | PushTelemetry | DescribeTopicPartitions
        | ShareGroupHeartbeat | ShareGroupDescribe | DescribeShareGroupOffsets | AlterShareGroupOffsets
        | DeleteShareGroupOffsets => (Client, ResponseRewrite::None),

        DescribeAcls | CreateAcls | DeleteAcls | AlterReplicaLogDirs | DescribeLogDirs
        | CreateDelegationToken | RenewDelegationToken | ExpireDelegationToken | DescribeDelegationToken
        | ElectLeaders | AlterPartitionReassignments | ListPartitionReassignments
        | DescribeUserScramCredentials | AlterUserScramCredentials | UpdateFeatures | ListConfigResources => {
            (ClusterAdmin, ResponseRewrite::None)
        }

        // DescribeQuorum is here, not under ClusterAdmin, because its answer names the
        // controllers' hosts, which must never reach a client.
        WriteTxnMarkers | Vote | BeginQuorumEpoch | EndQuorumEpoch | DescribeQuorum | AlterPartition
        | Envelope | FetchSnapshot | BrokerRegistration | BrokerHeartbeat | UnregisterBroker
        | AllocateProducerIds | ControllerRegistration | AssignReplicasToDirs | AddRaftVoter
        | RemoveRaftVoter | UpdateRaftVoter | InitializeShareGroupState | ReadShareGroupState
        | WriteShareGroupState | DeleteShareGroupState | ReadShareGroupStateSummary => {
            (Internal, ResponseRewrite::None)
        }
    };
    ApiEntry { key, exposure, rewrite }
}

/// Whether a listener offers this API (in ApiVersions, and accepts requests for it).
/// Cluster administration is offered everywhere: the open listener forwards it, and on
/// tenant listeners the tenancy stage answers it with CLUSTER_AUTHORIZATION_FAILED, as a
/// broker answers a principal without cluster rights.
pub fn offered(entry: &ApiEntry) -> bool {
    entry.exposure != Exposure::Internal
}

/// Whether a listener with the given reach may forward this API to the pool as it is.
pub fn forwardable(entry: &ApiEntry, cluster_admin: bool) -> bool {
    match entry.exposure {
        Exposure::Client => true,
        Exposure::ClusterAdmin => cluster_admin,
        Exposure::Internal => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_sane_entry() {
        for key in ApiKey::iter() {
            let e = entry(key);
            assert_eq!(e.key, key);
            assert!(!e.versions().is_empty(), "{key:?}");
            if let ResponseRewrite::NodeEndpoints { from_version } = e.rewrite {
                assert!(from_version <= e.versions().max, "{key:?}");
            }
        }
    }

    #[test]
    fn host_bearing_responses_are_rewritten_or_hidden() {
        for key in [
            ApiKey::Metadata,
            ApiKey::FindCoordinator,
            ApiKey::DescribeCluster,
            ApiKey::DescribeConfigs,
            ApiKey::Produce,
            ApiKey::Fetch,
        ] {
            assert_ne!(entry(key).rewrite, ResponseRewrite::None, "{key:?}");
        }
        assert_eq!(entry(ApiKey::DescribeQuorum).exposure, Exposure::Internal);
        assert!(!offered(&entry(ApiKey::BrokerHeartbeat)));
        assert!(!forwardable(&entry(ApiKey::BrokerHeartbeat), true));
        assert!(offered(&entry(ApiKey::ElectLeaders)));
        assert!(!forwardable(&entry(ApiKey::ElectLeaders), false));
        assert!(forwardable(&entry(ApiKey::Produce), false));
    }
}
