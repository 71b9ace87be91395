//! The tenancy stage of the pipeline: authorize every resource of a request against the
//! principal's IAM-style grants, map tenant names to pool names on the way in, and map
//! them back (dropping everything that is not the tenant's) on the way out.
//!
//! Protocol facts this stage relies on:
//! - Every name a client sends is in the tenant's view (`orders`); the pool only ever sees
//!   `<tenant>.orders`. Tenant ids contain no `.`, so the prefix is unambiguous
//!   (`tenancy::Namespace`).
//! - Every response list is filtered to names with the tenant's prefix before anything
//!   else looks at it. A name without it (another tenant, `__consumer_offsets`) has no
//!   tenant-view name and never reaches the client.
//! - Topic ids are global in the pool. An id is usable only if the gateway has seen it
//!   with one of the tenant's names (`TopicIds`); any other id is answered exactly as an
//!   unknown id (UNKNOWN_TOPIC_ID), so ids of other tenants reveal nothing.
//! - A request that mixes allowed and denied resources is split: the allowed part is
//!   forwarded, the denied part is answered with the API's own per-resource error code,
//!   and both are merged into one well-formed response (denied entries after the
//!   forwarded ones; clients match entries by name, never by position).
//!   A request with nothing left to forward is answered by the gateway.
//! - Broker error messages are scrubbed of the tenant prefix before they are returned.
//!
//! Each API has one function per direction in the submodule of its family; `admit` and
//! `respond` are the only entry points.

pub mod client_quotas;
mod cluster;
mod data;
mod groups;
pub mod inventory;
mod topics;
mod txn;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use dashmap::DashMap;
use kafka_protocol::messages::{ApiKey, GroupId, TopicName, TransactionalId};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_quota::{Charge, Direction, SubQuota, TenantQuota};
use sluice_tenancy::store::StoredTenant;
use sluice_tenancy::policy::{Action, Grants};
use sluice_tenancy::{NameError, Namespace};
use uuid::Uuid;

use crate::protocol::{encode_response, RequestHeaderView};
use crate::rewrite::{Advertised, Observed};

/// Kafka error codes this stage answers with.
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const INVALID_TOPIC: i16 = 17;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const RESOURCE_NOT_FOUND: i16 = 91;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
}

/// Why a request or response could not be mapped. Every variant closes the connection:
/// a body that does not decode cannot be answered in its own format.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("cannot decode {api:?} v{version} {direction}: {reason}")]
    Decode { api: ApiKey, version: i16, direction: &'static str, reason: String },
    #[error("cannot encode {api:?} v{version} {direction}: {reason}")]
    Encode { api: ApiKey, version: i16, direction: &'static str, reason: String },
    #[error("{api:?} is cluster administration, which tenants cannot use")]
    NotForTenants { api: ApiKey },
}

/// Pool topic ids and their pool names, learnt from every Metadata, CreateTopics and
/// DescribeTopicPartitions answer that passes through the gateway. Shared by all
/// connections; an id is resolved for a tenant only through its own prefix.
#[derive(Default)]
pub struct TopicIds {
    names: DashMap<Uuid, TopicName>,
}

impl TopicIds {
    pub fn learn(&self, id: Uuid, pool_name: &TopicName) {
        if id.is_nil() {
            return;
        }
        if self.names.get(&id).is_none_or(|n| n.0 != pool_name.0) {
            self.names.insert(id, pool_name.clone());
        }
    }

    pub fn forget(&self, id: Uuid) {
        self.names.remove(&id);
    }

    fn pool_name(&self, id: Uuid) -> Option<TopicName> {
        self.names.get(&id).map(|n| n.clone())
    }
}

/// The process-wide topic id map. Ids are the pool's and the same for every listener, so
/// one map serves all connections.
pub fn topic_ids() -> &'static TopicIds {
    static IDS: std::sync::OnceLock<TopicIds> = std::sync::OnceLock::new();
    IDS.get_or_init(TopicIds::default)
}

/// Open connections per tenant, for the `max_connections` limit.
#[derive(Default)]
pub struct ConnectionCounts {
    open: DashMap<String, u64>,
}

impl ConnectionCounts {
    /// Takes a slot for `tenant`, or `None` when it already has `max` connections.
    pub fn open(self: &Arc<Self>, tenant: &str, max: u64) -> Option<ConnectionSlot> {
        let mut n = self.open.entry(tenant.to_owned()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        metrics::gauge!("sluice_tenant_connections", "tenant" => tenant.to_owned()).set(*n as f64);
        Some(ConnectionSlot { counts: self.clone(), tenant: tenant.to_owned() })
    }
}

/// One open tenant connection; freed on drop.
pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    tenant: String,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(mut n) = self.counts.open.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            metrics::gauge!("sluice_tenant_connections", "tenant" => self.tenant.clone()).set(*n as f64);
        }
    }
}

/// What the reader does with a request after this stage.
pub enum Admission {
    /// Forward the request (with `body` instead of the original body when set) and map
    /// the response with `plan`.
    Forward { body: Option<Bytes>, plan: Plan },
    /// Answer with this complete response frame; nothing goes upstream.
    Answer(Bytes),
    /// Nothing to forward and nothing to answer (acks=0 produce that was wholly denied).
    Drop,
    /// The gateway answers after some I/O of its own (a tenant-store write); the answer
    /// keeps the request's place in the connection's response order.
    Later(futures::future::BoxFuture<'static, Bytes>),
}

/// Per-request state the response mapping needs, carried in the in-flight entry.
#[derive(Debug, Default)]
pub enum Plan {
    /// The response carries no tenant names: forwarded as is (after the address rewrite).
    #[default]
    PassThrough,
    /// The response is mapped by its API's function, with what the request left behind.
    Map(Box<Denied>),
}

/// The resources of a request that were answered by the gateway, in request order, to be
/// merged into the broker's response.
#[derive(Debug, Default)]
pub struct Denied {
    pub topics: Vec<DeniedTopic>,
    /// Group ids, transactional ids or other keys (tenant view) with their error codes.
    pub keys: Vec<(StrBytes, i16)>,
    /// Whether the request named its topics explicitly (Metadata: `null` = all topics, in
    /// which case unauthorized topics are silently omitted, as Kafka does).
    pub explicit: bool,
    /// Config resources (DescribeConfigs, AlterConfigs) answered by the gateway.
    pub resources: Vec<DeniedResource>,
    /// DescribeTopicPartitions over all topics: the answer is cut at the first topic
    /// that is not the tenant's.
    pub all_topics: bool,
    /// Quota throttle time (ms) the request earned, for the response's `throttle_time_ms`.
    pub throttle_ms: i32,
    /// When a produce's throttle was earned: its response reports only what is left of
    /// it (see [`Denied::produce_throttle_ms`]).
    pub throttled_at: Option<std::time::Instant>,
    /// CreateTopics/CreatePartitions with `validate_only`: nothing is created.
    pub validate_only: bool,
}

impl Denied {
    /// The throttle a produce response reports: what is left of the request's throttle
    /// when the answer goes out. The connection has been held since the charge, and the
    /// client mutes itself from the moment it reads the answer; reporting the whole
    /// throttle again would add the pool's latency to every throttled round trip and hold
    /// the client well under its quota. A throttled request still reports at least 1 ms.
    pub fn produce_throttle_ms(&self) -> i32 {
        let Some(at) = self.throttled_at.filter(|_| self.throttle_ms > 0) else { return self.throttle_ms };
        let spent = i32::try_from(at.elapsed().as_millis()).unwrap_or(i32::MAX);
        self.throttle_ms.saturating_sub(spent).max(1)
    }
}

/// A config resource answered by the gateway.
#[derive(Debug, Clone)]
pub struct DeniedResource {
    pub resource_type: i8,
    pub name: StrBytes,
    pub code: i16,
    pub message: Option<String>,
}

/// One denied topic: its tenant-view name (or id), the partitions the request named and the
/// code to answer them with.
#[derive(Debug, Clone)]
pub struct DeniedTopic {
    pub name: TopicName,
    pub id: Uuid,
    pub partitions: Vec<i32>,
    pub code: i16,
    /// Why, for APIs whose response carries a message (CreateTopics, DeleteTopics...).
    pub message: Option<String>,
}

/// One authenticated tenant connection's view: its namespace and effective grants.
pub struct TenantView {
    pub ns: Namespace,
    pub grants: Arc<Grants>,
    /// The tenant's byte-rate limiters (shared by all its connections).
    pub quota: Arc<TenantQuota>,
    /// What the requests and responses of this connection owe the quotas; the reader
    /// settles it before it reads the next request.
    pub charge: Charge,
    /// Fetch session ids the pool issued to this connection. A request naming any other
    /// session (possibly another tenant's, guessed) is refused before it reaches the pool.
    fetch_sessions: Vec<i32>,
    /// Protocol types of the classic groups this connection joined, for the JoinGroup and
    /// SyncGroup versions that do not name it (the member payloads are mapped only for
    /// `consumer`).
    classic: groups::ClassicProtocols,
    /// The sub-quotas (Kafka client quotas) of this connection's user and client id.
    pub subs: SubQuotas,
    /// The tenant's stored document as of the last store change this connection applied,
    /// and the store to write client-quota changes to (unset in unit tests).
    pub tenant: Option<(Arc<StoredTenant>, crate::store::TenantStore)>,
    /// Prometheus handles of this tenant (and of the pool broker, set by the connection).
    pub meters: crate::meters::ConnMeters,
    /// This tenant's byte counters for the usage ledger.
    usage: Arc<crate::usage::TenantUsage>,
}

/// The sub-quota limiters one connection is charged against, besides its tenant's.
#[derive(Debug, Default, Clone)]
pub struct SubQuotas {
    pub write: Option<Arc<SubQuota>>,
    pub read: Option<Arc<SubQuota>>,
    pub requests: Option<Arc<SubQuota>>,
    pub mutations: Option<Arc<SubQuota>>,
}

impl TenantView {
    pub fn new(ns: Namespace, grants: Arc<Grants>, quota: Arc<TenantQuota>) -> Self {
        let meters = crate::meters::ConnMeters::new(ns.tenant().as_str());
        let usage = crate::usage::tenant(ns.tenant().as_str());
        Self {
            ns,
            grants,
            quota,
            charge: Charge::default(),
            fetch_sessions: Vec::new(),
            classic: groups::ClassicProtocols::default(),
            subs: SubQuotas::default(),
            tenant: None,
            meters,
            usage,
        }
    }

    /// Replaces grants and quotas after a store change; takes effect on the next request.
    pub fn set_access(&mut self, grants: Arc<Grants>, quota: Arc<TenantQuota>) {
        self.grants = grants;
        self.quota = quota;
    }

    /// Charges `parts` (tenant-view topic name, partition, bytes) against the quotas.
    /// Returns the throttle time to report; what is owed waits for the reader.
    pub fn charge(&mut self, direction: Direction, parts: impl IntoIterator<Item = (Bytes, i32, u64)>) -> i32 {
        let mut total = 0u64;
        let parts = parts.into_iter().inspect(|(_, _, n)| total += n).map(|(t, p, n)| ((t, p), n));
        let mut charge = self.quota.charge(direction, parts);
        let sub = match direction {
            Direction::Write => &self.subs.write,
            Direction::Read => &self.subs.read,
        };
        if let Some(sub) = sub {
            charge.merge(sub.charge(total));
        }
        let ms = charge.throttle_ms();
        if ms > 0 {
            self.meters.tenant.throttle(direction, ms as u64);
        }
        self.meters.bytes(direction, total);
        self.usage.add(direction, total);
        self.charge.merge(charge);
        ms
    }
}

/// A tenant document's `limits` as overrides of the gateway's quota defaults.
pub fn quota_overrides(limits: &sluice_tenancy::store::TenantLimits) -> sluice_quota::QuotaOverrides {
    sluice_quota::QuotaOverrides {
        tenant_write: limits.produce_bytes_per_sec,
        tenant_read: limits.consume_bytes_per_sec,
        partition_write: limits.partition_produce_bytes_per_sec,
        partition_read: limits.partition_consume_bytes_per_sec,
        partition_mutations_per_5min: limits.partition_mutations_per_5min,
        request_rate: limits.max_request_rate,
        connection_rate: limits.max_connections_per_sec,
        max_connections: limits.max_connections,
        max_message_bytes: limits.max_message_bytes,
        max_request_bytes: limits.max_request_bytes,
        max_partitions: limits.max_partitions,
        max_compacted_partitions: limits.max_compacted_partitions,
        max_groups: limits.max_consumer_groups,
    }
}

/// Everything a mapping function reads.
pub struct Ctx<'a> {
    pub view: &'a mut TenantView,
    pub ids: &'a TopicIds,
}

impl Ctx<'_> {
    pub fn ns(&self) -> &Namespace {
        &self.view.ns
    }

    pub fn allows(&self, action: Action, name: &str) -> bool {
        self.view.grants.allows(action, name)
    }

    /// Tenant topic name → pool name.
    pub fn topic_in(&self, name: &TopicName) -> Result<TopicName, NameError> {
        self.ns().topic_to_pool(name.0.as_str()).map(|s| TopicName(StrBytes::from_string(s)))
    }

    /// Pool topic name → tenant name, or `None` when it is not the tenant's.
    pub fn topic_out(&self, pool: &TopicName) -> Option<TopicName> {
        strip(&pool.0, self.ns()).map(TopicName)
    }

    pub fn group_in(&self, group: &GroupId) -> Result<GroupId, NameError> {
        self.ns().id_to_pool(group.0.as_str()).map(|s| GroupId(StrBytes::from_string(s)))
    }

    pub fn group_out(&self, pool: &GroupId) -> Option<GroupId> {
        strip(&pool.0, self.ns()).map(GroupId)
    }

    pub fn txn_in(&self, id: &TransactionalId) -> Result<TransactionalId, NameError> {
        self.ns().id_to_pool(id.0.as_str()).map(|s| TransactionalId(StrBytes::from_string(s)))
    }

    pub fn txn_out(&self, pool: &TransactionalId) -> Option<TransactionalId> {
        strip(&pool.0, self.ns()).map(TransactionalId)
    }

    /// A pool topic id → the tenant's name for it, or `None` when the gateway has not
    /// seen it under this tenant's prefix.
    pub fn id_out(&self, id: Uuid) -> Option<TopicName> {
        self.ids.pool_name(id).and_then(|pool| self.topic_out(&pool))
    }

    /// An error message from the pool, with the tenant's prefix removed.
    pub fn scrub(&self, message: &Option<StrBytes>) -> Option<StrBytes> {
        message.as_ref().map(|m| match self.ns().scrub(m.as_str()) {
            std::borrow::Cow::Borrowed(_) => m.clone(),
            std::borrow::Cow::Owned(s) => StrBytes::from_string(s),
        })
    }
}

/// The tenant-view name inside a pool name, as a zero-copy slice of the same bytes.
fn strip(pool: &StrBytes, ns: &Namespace) -> Option<StrBytes> {
    let rest = ns.from_pool(pool.as_str())?;
    let at = pool.len() - rest.len();
    StrBytes::from_utf8(pool.clone().into_bytes().slice(at..)).ok()
}

/// Decodes a request body of type `M`.
pub(crate) fn decode_request<M: Decodable>(api: ApiKey, version: i16, body: &Bytes) -> Result<M, MapError> {
    M::decode(&mut body.clone(), version).map_err(|e| MapError::Decode {
        api,
        version,
        direction: "request",
        reason: e.to_string(),
    })
}

pub(crate) fn encode_request<M: Encodable>(api: ApiKey, version: i16, msg: &M) -> Result<Bytes, MapError> {
    // Sized up front: growing from empty reallocated and copied a produce body's record
    // batches again on every doubling (docs/benchmarks/hot-path.md).
    let mut out = BytesMut::with_capacity(msg.compute_size(version).unwrap_or(0));
    msg.encode(&mut out, version).map_err(|e| MapError::Encode {
        api,
        version,
        direction: "request",
        reason: e.to_string(),
    })?;
    Ok(out.freeze())
}

pub(crate) fn decode_response<M: Decodable>(api: ApiKey, version: i16, body: &Bytes) -> Result<M, MapError> {
    M::decode(&mut body.clone(), version).map_err(|e| MapError::Decode {
        api,
        version,
        direction: "response",
        reason: e.to_string(),
    })
}

/// A complete response frame for a request the gateway answers itself.
pub(crate) fn answer<M: Encodable>(api: ApiKey, version: i16, correlation_id: i32, msg: &M) -> Result<Bytes, MapError> {
    encode_response(correlation_id, api, version, msg).map_err(|e| MapError::Encode {
        api,
        version,
        direction: "response",
        reason: e.to_string(),
    })
}

/// Request header facts the mapping functions need.
#[derive(Clone, Copy)]
pub struct Req {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
}

/// Authorizes and maps one request.
pub fn admit(ctx: &mut Ctx<'_>, req: Req, body: &Bytes) -> Result<Admission, MapError> {
    use ApiKey::*;
    match req.api {
        Produce => data::produce(ctx, req, body),
        Fetch => data::fetch(ctx, req, body),
        ListOffsets => topics::list_offsets(ctx, req, body),
        Metadata => topics::metadata(ctx, req, body),
        CreateTopics => topics::create_topics(ctx, req, body),
        DeleteTopics => topics::delete_topics(ctx, req, body),
        CreatePartitions => topics::create_partitions(ctx, req, body),
        DeleteRecords => topics::delete_records(ctx, req, body),
        OffsetForLeaderEpoch => topics::offset_for_leader_epoch(ctx, req, body),
        DescribeTopicPartitions => topics::describe_topic_partitions(ctx, req, body),
        DescribeConfigs => topics::describe_configs(ctx, req, body),
        AlterConfigs => topics::alter_configs(ctx, req, body),
        IncrementalAlterConfigs => topics::incremental_alter_configs(ctx, req, body),
        DescribeProducers => topics::describe_producers(ctx, req, body),
        DescribeCluster => topics::describe_cluster(ctx, req, body),
        FindCoordinator => groups::find_coordinator(ctx, req, body),
        JoinGroup | SyncGroup | Heartbeat | LeaveGroup => groups::membership(ctx, req, body),
        OffsetCommit => groups::offset_commit(ctx, req, body),
        OffsetFetch => groups::offset_fetch(ctx, req, body),
        OffsetDelete => groups::offset_delete(ctx, req, body),
        DescribeGroups => groups::describe_groups(ctx, req, body),
        ListGroups => groups::list_groups(ctx, req, body),
        DeleteGroups => groups::delete_groups(ctx, req, body),
        ConsumerGroupHeartbeat => groups::consumer_group_heartbeat(ctx, req, body),
        ConsumerGroupDescribe => groups::consumer_group_describe(ctx, req, body),
        ShareGroupHeartbeat => groups::share_group_heartbeat(ctx, req, body),
        ShareGroupDescribe => groups::share_group_describe(ctx, req, body),
        ShareFetch => groups::share_fetch(ctx, req, body),
        ShareAcknowledge => groups::share_acknowledge(ctx, req, body),
        DescribeShareGroupOffsets => groups::describe_share_group_offsets(ctx, req, body),
        AlterShareGroupOffsets => groups::alter_share_group_offsets(ctx, req, body),
        DeleteShareGroupOffsets => groups::delete_share_group_offsets(ctx, req, body),
        InitProducerId => txn::init_producer_id(ctx, req, body),
        AddPartitionsToTxn => txn::add_partitions_to_txn(ctx, req, body),
        AddOffsetsToTxn => txn::add_offsets_to_txn(ctx, req, body),
        EndTxn => txn::end_txn(ctx, req, body),
        TxnOffsetCommit => txn::txn_offset_commit(ctx, req, body),
        DescribeTransactions => txn::describe_transactions(ctx, req, body),
        ListTransactions => txn::list_transactions(ctx, req, body),
        DescribeClientQuotas => client_quotas::describe(ctx, req, body),
        AlterClientQuotas => client_quotas::alter(ctx, req, body),
        DescribeUserScramCredentials => client_quotas::describe_scram_users(ctx, req, body),
        // No tenant names in these: the session layer answered SASL, and ApiVersions and
        // client telemetry carry none.
        ApiVersions | SaslHandshake | SaslAuthenticate | GetTelemetrySubscriptions | PushTelemetry => {
            Ok(Admission::Forward { body: None, plan: Plan::PassThrough })
        }
        // Cluster administration is answered CLUSTER_AUTHORIZATION_FAILED; inter-broker
        // APIs never get here (not offered), and would close the connection.
        _ => cluster::refuse(ctx, req, body)?.ok_or(MapError::NotForTenants { api: req.api }),
    }
}

/// Maps one response body (without its header) back to the tenant's view. Returns the
/// complete frame to send.
pub fn respond(
    ctx: &mut Ctx<'_>,
    req: Req,
    plan: Plan,
    body: Bytes,
    adv: &Advertised,
    observed: &mut Observed,
) -> Result<Option<Bytes>, MapError> {
    use ApiKey::*;
    let mapped = matches!(plan, Plan::Map(_));
    let denied = match plan {
        Plan::PassThrough => Denied::default(),
        Plan::Map(d) => *d,
    };
    let out = match req.api {
        Produce => data::produce_response(ctx, req, denied, body, adv),
        Fetch => data::fetch_response(ctx, req, denied, body, adv),
        ListOffsets => topics::list_offsets_response(ctx, req, denied, body),
        Metadata => topics::metadata_response(ctx, req, denied, body, adv, observed),
        CreateTopics => topics::create_topics_response(ctx, req, denied, body),
        DeleteTopics => topics::delete_topics_response(ctx, req, denied, body),
        CreatePartitions => topics::create_partitions_response(ctx, req, denied, body),
        DeleteRecords => topics::delete_records_response(ctx, req, denied, body),
        OffsetForLeaderEpoch => topics::offset_for_leader_epoch_response(ctx, req, denied, body),
        DescribeTopicPartitions => topics::describe_topic_partitions_response(ctx, req, denied, body),
        DescribeConfigs => topics::describe_configs_response(ctx, req, denied, body),
        AlterConfigs => topics::alter_configs_response(ctx, req, denied, body),
        IncrementalAlterConfigs => topics::incremental_alter_configs_response(ctx, req, denied, body),
        DescribeProducers => topics::describe_producers_response(ctx, req, denied, body),
        FindCoordinator => groups::find_coordinator_response(ctx, req, denied, body, adv),
        // Only `consumer` groups' payloads name topics; the rest were passed through.
        JoinGroup | SyncGroup if mapped => groups::membership_response(ctx, req, denied, body),
        OffsetCommit => groups::offset_commit_response(ctx, req, denied, body),
        OffsetFetch => groups::offset_fetch_response(ctx, req, denied, body),
        OffsetDelete => groups::offset_delete_response(ctx, req, denied, body),
        DescribeGroups => groups::describe_groups_response(ctx, req, denied, body),
        ListGroups => groups::list_groups_response(ctx, req, denied, body),
        DeleteGroups => groups::delete_groups_response(ctx, req, denied, body),
        ConsumerGroupDescribe => groups::consumer_group_describe_response(ctx, req, denied, body),
        ShareGroupDescribe => groups::share_group_describe_response(ctx, req, denied, body),
        ShareFetch => groups::share_fetch_response(ctx, req, denied, body, adv),
        ShareAcknowledge => groups::share_acknowledge_response(ctx, req, denied, body, adv),
        DescribeShareGroupOffsets => groups::describe_share_group_offsets_response(ctx, req, denied, body),
        AlterShareGroupOffsets => groups::alter_share_group_offsets_response(ctx, req, denied, body),
        DeleteShareGroupOffsets => groups::delete_share_group_offsets_response(ctx, req, denied, body),
        AddPartitionsToTxn => txn::add_partitions_to_txn_response(ctx, req, denied, body),
        TxnOffsetCommit => txn::txn_offset_commit_response(ctx, req, denied, body),
        DescribeTransactions => txn::describe_transactions_response(ctx, req, denied, body),
        ListTransactions => txn::list_transactions_response(ctx, req, denied, body),
        // Responses without tenant names (other membership, InitProducerId, AddOffsetsToTxn,
        // EndTxn, heartbeats, telemetry, DescribeCluster): the address rewrite alone.
        _ => return Ok(None),
    };
    out.map(Some)
}

/// The request header with the client id forwarded as `<tenant>.<client id>` (SPEC §3),
/// so broker logs and metrics are attributable. Returns the new frame's length prefix and
/// header, for a body of `body_len` bytes that is written after it as it is: a produce
/// body's record batches are not copied again to rebuild the frame.
pub fn reframe_header(payload: &[u8], header: &RequestHeaderView, ns: &Namespace, body_len: usize) -> Option<Bytes> {
    let body_at = header.body_offset?;
    let (client_id, after_client_id) = match header.client_id {
        Some((start, end)) => (payload.get(start..end)?, end),
        None => (&[][..], 10),
    };
    let tagged = payload.get(after_client_id..body_at)?;
    let tenant = ns.tenant().as_str();
    let new_len = if client_id.is_empty() { tenant.len() } else { tenant.len() + 1 + client_id.len() };
    let new_len_i16 = i16::try_from(new_len).ok()?;
    let head_len = 8 + 2 + new_len + tagged.len();
    let mut out = BytesMut::with_capacity(4 + head_len);
    out.put_i32(i32::try_from(head_len + body_len).ok()?);
    out.extend_from_slice(payload.get(..8)?);
    out.put_i16(new_len_i16);
    out.extend_from_slice(tenant.as_bytes());
    if !client_id.is_empty() {
        out.put_u8(b'.');
        out.extend_from_slice(client_id);
    }
    out.extend_from_slice(tagged);
    Some(out.freeze())
}

/// The error code for a tenant topic name that cannot be mapped: INVALID_TOPIC_EXCEPTION
/// for every case, reserved `__` names included (SPEC 4), which says nothing about
/// whether the pool has such a topic.
pub(crate) fn topic_name_error(_e: &NameError) -> i16 {
    code::INVALID_TOPIC
}

#[cfg(test)]
mod tests {
    use super::{reframe_header, Denied};
    use std::time::{Duration, Instant};

    #[test]
    fn the_reframed_header_names_the_tenant_and_frames_the_body() {
        use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};
        use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
        let version = 11;
        let mut frame = bytes::BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(version)
            .with_correlation_id(9)
            .with_client_id(Some(StrBytes::from_static_str("app")))
            .encode(&mut frame, ApiKey::Produce.request_header_version(version))
            .unwrap();
        let body_at = frame.len();
        ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).encode(&mut frame, version).unwrap();
        let body = frame.split_off(body_at).freeze();
        let header = crate::protocol::parse_request_header(&frame).unwrap();
        let ns = sluice_tenancy::Namespace::new("acme".parse().unwrap());
        let head = reframe_header(&frame, &header, &ns, body.len()).unwrap();
        let whole = [&head[..], &body[..]].concat();
        assert_eq!(i32::from_be_bytes(whole[..4].try_into().unwrap()) as usize, whole.len() - 4);
        let mut rest = bytes::Bytes::from(whole[4..].to_vec());
        let parsed = RequestHeader::decode(&mut rest, ApiKey::Produce.request_header_version(version)).unwrap();
        assert_eq!((parsed.correlation_id, parsed.client_id.as_deref()), (9, Some("acme.app")));
        assert_eq!(rest, body);
    }

    #[test]
    fn a_produce_response_reports_what_is_left_of_its_throttle() {
        let unthrottled = Denied { throttled_at: Some(Instant::now()), ..Default::default() };
        assert_eq!(unthrottled.produce_throttle_ms(), 0);
        let Some(earlier) = Instant::now().checked_sub(Duration::from_millis(200)) else { return };
        let half_spent = Denied { throttle_ms: 500, throttled_at: Some(earlier), ..Default::default() };
        let left = half_spent.produce_throttle_ms();
        assert!((250..=300).contains(&left), "{left}");
        // Spent entirely while the pool answered: still reported, as 1 ms.
        let spent = Denied { throttle_ms: 100, throttled_at: Some(earlier), ..Default::default() };
        assert_eq!(spent.produce_throttle_ms(), 1);
    }
}
