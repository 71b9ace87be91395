//! Cluster administration (ACLs, log dirs, delegation tokens, elections, reassignments,
//! SCRAM credentials, features, config resource listing) belongs to the service, never to a
//! tenant (SPEC 3). Each request is answered by the gateway in its own response format with
//! CLUSTER_AUTHORIZATION_FAILED, as a Kafka broker answers a principal without cluster
//! rights, so admin tools fail with an authorization error instead of a dropped connection.

use bytes::Bytes;
use kafka_protocol::messages::{
    alter_replica_log_dirs_response, alter_user_scram_credentials_response, create_acls_response, delete_acls_response,
    elect_leaders_response, AlterPartitionReassignmentsResponse, AlterReplicaLogDirsRequest,
    AlterReplicaLogDirsResponse, AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    CreateAclsRequest, CreateAclsResponse, CreateDelegationTokenResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsResponse, DescribeDelegationTokenResponse, DescribeLogDirsResponse,
    ElectLeadersRequest, ElectLeadersResponse, ExpireDelegationTokenResponse, ListConfigResourcesResponse,
    ListPartitionReassignmentsResponse, RenewDelegationTokenResponse, UpdateFeaturesResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{answer, code, decode_request, Admission, Ctx, MapError, Req};

const DENIED: i16 = code::CLUSTER_AUTHORIZATION_FAILED;

fn message() -> Option<StrBytes> {
    Some(StrBytes::from_static_str("cluster administration is not available to tenants"))
}

/// The refusal for one cluster-administration request, or `None` for an API that is not
/// cluster administration.
pub fn refuse(_ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Option<Admission>, MapError> {
    macro_rules! out {
        ($resp:expr) => {
            Ok(Some(Admission::Answer(answer(req.api, req.version, req.correlation_id, &$resp)?)))
        };
    }
    match req.api {
        ApiKey::DescribeAcls => out!(DescribeAclsResponse::default().with_error_code(DENIED).with_error_message(message())),
        ApiKey::CreateAcls => {
            let r: CreateAclsRequest = decode_request(req.api, req.version, body)?;
            let results = r
                .creations
                .iter()
                .map(|_| {
                    create_acls_response::AclCreationResult::default().with_error_code(DENIED).with_error_message(message())
                })
                .collect();
            out!(CreateAclsResponse::default().with_results(results))
        }
        ApiKey::DeleteAcls => {
            let r: DeleteAclsRequest = decode_request(req.api, req.version, body)?;
            let results = r
                .filters
                .iter()
                .map(|_| {
                    delete_acls_response::DeleteAclsFilterResult::default().with_error_code(DENIED).with_error_message(message())
                })
                .collect();
            out!(DeleteAclsResponse::default().with_filter_results(results))
        }
        ApiKey::AlterReplicaLogDirs => {
            let r: AlterReplicaLogDirsRequest = decode_request(req.api, req.version, body)?;
            let results = r
                .dirs
                .iter()
                .flat_map(|d| d.topics.iter())
                .map(|t| {
                    alter_replica_log_dirs_response::AlterReplicaLogDirTopicResult::default()
                        .with_topic_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|&p| {
                                    alter_replica_log_dirs_response::AlterReplicaLogDirPartitionResult::default()
                                        .with_partition_index(p)
                                        .with_error_code(DENIED)
                                })
                                .collect(),
                        )
                })
                .collect();
            out!(AlterReplicaLogDirsResponse::default().with_results(results))
        }
        // Before v3 there is no error field: no log dirs is the refusal.
        ApiKey::DescribeLogDirs if req.version < 3 => out!(DescribeLogDirsResponse::default()),
        ApiKey::DescribeLogDirs => out!(DescribeLogDirsResponse::default().with_error_code(DENIED)),
        ApiKey::CreateDelegationToken => out!(CreateDelegationTokenResponse::default().with_error_code(DENIED)),
        ApiKey::RenewDelegationToken => out!(RenewDelegationTokenResponse::default().with_error_code(DENIED)),
        ApiKey::ExpireDelegationToken => out!(ExpireDelegationTokenResponse::default().with_error_code(DENIED)),
        ApiKey::DescribeDelegationToken => out!(DescribeDelegationTokenResponse::default().with_error_code(DENIED)),
        ApiKey::ElectLeaders if req.version >= 1 => out!(ElectLeadersResponse::default().with_error_code(DENIED)),
        ApiKey::ElectLeaders => {
            let r: ElectLeadersRequest = decode_request(req.api, req.version, body)?;
            let results = r
                .topic_partitions
                .iter()
                .flatten()
                .map(|t| {
                    elect_leaders_response::ReplicaElectionResult::default().with_topic(t.topic.clone()).with_partition_result(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                elect_leaders_response::PartitionResult::default()
                                    .with_partition_id(p)
                                    .with_error_code(DENIED)
                                    .with_error_message(message())
                            })
                            .collect(),
                    )
                })
                .collect();
            out!(ElectLeadersResponse::default().with_replica_election_results(results))
        }
        ApiKey::AlterPartitionReassignments => out!(AlterPartitionReassignmentsResponse::default()
            .with_error_code(DENIED)
            .with_error_message(message())),
        ApiKey::ListPartitionReassignments => out!(ListPartitionReassignmentsResponse::default()
            .with_error_code(DENIED)
            .with_error_message(message())),
        ApiKey::AlterUserScramCredentials => {
            let r: AlterUserScramCredentialsRequest = decode_request(req.api, req.version, body)?;
            let users = r.deletions.iter().map(|d| d.name.clone()).chain(r.upsertions.iter().map(|u| u.name.clone()));
            let results = users
                .map(|user| {
                    alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                        .with_user(user)
                        .with_error_code(DENIED)
                        .with_error_message(message())
                })
                .collect();
            out!(AlterUserScramCredentialsResponse::default().with_results(results))
        }
        ApiKey::UpdateFeatures => {
            out!(UpdateFeaturesResponse::default().with_error_code(DENIED).with_error_message(message()))
        }
        ApiKey::ListConfigResources => out!(ListConfigResourcesResponse::default().with_error_code(DENIED)),
        _ => Ok(None),
    }
}
