//! The hot-path Prometheus series of SPEC 9: per-tenant bytes, requests by API, errors by
//! Kafka error code and throttle time; per-broker bytes; request latency per API; auth
//! failures per tenant. The pool-side series (storage, lag, partitions) are polled by
//! [`crate::pool_metrics`].
//!
//! Labels are bounded: `tenant` (tenants in the store), `api` (Kafka API names), `code` /
//! `error` (Kafka error codes), `direction` and `broker` (pool node ids). Never a
//! partition, topic of the data path, or principal.
//!
//! `metrics::counter!` with an owned label string allocates on every call, so handles are
//! made once and kept: per tenant in [`TenantMeters`] (one per tenant for the process, shared
//! by its connections), per broker in [`BrokerMeters`], per API in a static table. Counting a
//! request or a batch of bytes is then an atomic add.
//!
//! Error codes are read from the frame that goes to the client, decoded once more by its
//! API's response type: the cost is per topic and partition, never per record (record
//! batches decode as slices of the frame), and it covers answers the gateway wrote itself
//! as well as the pool's.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Decodable;
use metrics::{Counter, Histogram};
use sluice_quota::Direction;

use crate::protocol::parse_response_header;

/// Metric names, as documented in docs/operations.md (Metrics).
pub mod names {
    pub const TENANT_BYTES: &str = "sluice_tenant_bytes_total";
    pub const TENANT_REQUESTS: &str = "sluice_tenant_requests_total";
    pub const TENANT_ERRORS: &str = "sluice_tenant_errors_total";
    pub const THROTTLE_MS: &str = "sluice_throttle_ms_total";
    pub const BROKER_BYTES: &str = "sluice_broker_bytes_total";
    pub const REQUEST_DURATION: &str = "sluice_request_duration_seconds";
    pub const AUTH_FAILURES: &str = "sluice_auth_failures_total";
}

/// Latency buckets (seconds): sub-millisecond proxying up to long-polled fetches
/// (`fetch.max.wait.ms`, 500 ms by default) and JoinGroup rebalances.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// API keys below this get a slot in the per-API tables (Kafka 4.1 ends at 92); any
/// other key is counted without a cached handle.
const API_SLOTS: usize = 128;

/// Help texts, registered once with the recorder.
pub fn describe() {
    metrics::describe_counter!(
        names::TENANT_BYTES,
        metrics::Unit::Bytes,
        "Record-batch bytes per tenant: direction=in is produced (forwarded to the pool), direction=out is fetched (returned to the client)"
    );
    metrics::describe_counter!(names::TENANT_REQUESTS, "Requests per tenant and Kafka API, after authentication");
    metrics::describe_counter!(
        names::TENANT_ERRORS,
        "Non-zero Kafka error codes in the responses returned to tenants (top-level, per topic and per partition), per API"
    );
    metrics::describe_counter!(names::THROTTLE_MS, "Throttle time the gateway's quotas imposed, milliseconds, per tenant and direction");
    metrics::describe_counter!(
        names::BROKER_BYTES,
        metrics::Unit::Bytes,
        "Record-batch bytes of tenant traffic per pool broker (the broker the client connection is bound to)"
    );
    metrics::describe_histogram!(
        names::REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Gateway-side time from a request frame read to its response written, per API (requests forwarded to the pool)"
    );
    metrics::describe_counter!(names::AUTH_FAILURES, "Failed authentications; tenant is empty unless the attempt named a stored tenant");
}

/// Kafka's name for an API in label form (`Produce`, `OffsetCommit`).
fn api_label(api: ApiKey) -> String {
    format!("{api:?}")
}

/// Kafka's constant name for an error code (`NOT_LEADER_OR_FOLLOWER`).
pub(crate) fn error_label(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => "UNKNOWN".into(),
        Some(e) => {
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// One tenant's counters, shared by all its connections.
pub struct TenantMeters {
    tenant: String,
    bytes_in: Counter,
    bytes_out: Counter,
    throttle_produce: Counter,
    throttle_fetch: Counter,
    requests: [OnceLock<Counter>; API_SLOTS],
    errors: DashMap<(i16, i16), Counter>,
}

impl TenantMeters {
    fn new(tenant: &str) -> Self {
        let t = tenant.to_owned();
        Self {
            bytes_in: metrics::counter!(names::TENANT_BYTES, "tenant" => t.clone(), "direction" => "in"),
            bytes_out: metrics::counter!(names::TENANT_BYTES, "tenant" => t.clone(), "direction" => "out"),
            throttle_produce: metrics::counter!(names::THROTTLE_MS, "tenant" => t.clone(), "direction" => "produce"),
            throttle_fetch: metrics::counter!(names::THROTTLE_MS, "tenant" => t.clone(), "direction" => "fetch"),
            requests: std::array::from_fn(|_| OnceLock::new()),
            errors: DashMap::new(),
            tenant: t,
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Record-batch bytes produced (`Write`) or fetched (`Read`).
    pub fn bytes(&self, direction: Direction, n: u64) {
        match direction {
            Direction::Write => self.bytes_in.increment(n),
            Direction::Read => self.bytes_out.increment(n),
        }
    }

    /// Throttle time the gateway imposed.
    pub fn throttle(&self, direction: Direction, ms: u64) {
        match direction {
            Direction::Write => self.throttle_produce.increment(ms),
            Direction::Read => self.throttle_fetch.increment(ms),
        }
    }

    /// One request of `api`.
    pub fn request(&self, api: ApiKey) {
        match self.requests.get(api as i16 as usize) {
            Some(slot) => slot
                .get_or_init(|| {
                    metrics::counter!(names::TENANT_REQUESTS, "tenant" => self.tenant.clone(), "api" => api_label(api))
                })
                .increment(1),
            None => metrics::counter!(names::TENANT_REQUESTS, "tenant" => self.tenant.clone(), "api" => api_label(api))
                .increment(1),
        }
    }

    fn error(&self, api: ApiKey, code: i16) {
        let key = (api as i16, code);
        if let Some(c) = self.errors.get(&key) {
            c.increment(1);
            return;
        }
        self.errors
            .entry(key)
            .or_insert_with(|| {
                metrics::counter!(
                    names::TENANT_ERRORS,
                    "tenant" => self.tenant.clone(),
                    "api" => api_label(api),
                    "code" => code.to_string(),
                    "error" => error_label(code)
                )
            })
            .increment(1);
    }

    /// Counts the non-zero error codes of a complete response frame (length prefix
    /// included) as it goes to the client. A frame that does not decode counts nothing.
    pub fn count_errors(&self, api: ApiKey, version: i16, frame: &Bytes) {
        let Some(payload) = frame.get(4..) else { return };
        let Ok((_, body_at)) = parse_response_header(payload, api, version) else { return };
        let mut body = frame.slice(4 + body_at..);
        error_codes(api, version, &mut body, &mut |code| {
            if code != 0 {
                self.error(api, code)
            }
        });
    }
}

/// The process-wide meters of `tenant` (made on its first connection).
pub fn tenant(tenant: &str) -> Arc<TenantMeters> {
    static TENANTS: OnceLock<DashMap<String, Arc<TenantMeters>>> = OnceLock::new();
    let map = TENANTS.get_or_init(DashMap::new);
    if let Some(m) = map.get(tenant) {
        return m.clone();
    }
    map.entry(tenant.to_owned()).or_insert_with(|| Arc::new(TenantMeters::new(tenant))).clone()
}

/// Bytes of tenant traffic through one pool broker.
pub struct BrokerMeters {
    bytes_in: Counter,
    bytes_out: Counter,
}

/// The process-wide meters of pool broker `node`.
pub fn broker(node: i32) -> Arc<BrokerMeters> {
    static BROKERS: OnceLock<DashMap<i32, Arc<BrokerMeters>>> = OnceLock::new();
    let map = BROKERS.get_or_init(DashMap::new);
    if let Some(m) = map.get(&node) {
        return m.clone();
    }
    map.entry(node)
        .or_insert_with(|| {
            Arc::new(BrokerMeters {
                bytes_in: metrics::counter!(names::BROKER_BYTES, "broker" => node.to_string(), "direction" => "in"),
                bytes_out: metrics::counter!(names::BROKER_BYTES, "broker" => node.to_string(), "direction" => "out"),
            })
        })
        .clone()
}

/// What one tenant connection counts into: its tenant's meters and, once known, those of
/// the pool broker it is bound to.
#[derive(Clone)]
pub struct ConnMeters {
    pub tenant: Arc<TenantMeters>,
    pub broker: Option<Arc<BrokerMeters>>,
}

impl ConnMeters {
    pub fn new(tenant_id: &str) -> Self {
        Self { tenant: tenant(tenant_id), broker: None }
    }

    /// Counts this connection's bytes for pool broker `node` too (idempotent).
    pub fn bind_broker(&mut self, node: Option<i32>) {
        if self.broker.is_none() {
            self.broker = node.map(broker);
        }
    }

    /// Record-batch bytes produced (`Write`) or fetched (`Read`) on this connection.
    pub fn bytes(&self, direction: Direction, n: u64) {
        if n == 0 {
            return;
        }
        self.tenant.bytes(direction, n);
        if let Some(b) = &self.broker {
            match direction {
                Direction::Write => b.bytes_in.increment(n),
                Direction::Read => b.bytes_out.increment(n),
            }
        }
    }
}

/// Records the gateway-side latency of one request of `api`.
pub fn latency(api: ApiKey, elapsed: Duration) {
    static HISTOGRAMS: OnceLock<[OnceLock<Histogram>; API_SLOTS]> = OnceLock::new();
    let table = HISTOGRAMS.get_or_init(|| std::array::from_fn(|_| OnceLock::new()));
    let make = || metrics::histogram!(names::REQUEST_DURATION, "api" => api_label(api));
    match table.get(api as i16 as usize) {
        Some(slot) => slot.get_or_init(make).record(elapsed.as_secs_f64()),
        None => make().record(elapsed.as_secs_f64()),
    }
}

/// Counts a failed authentication, under `tenant` when the attempt named one that exists
/// (callers check the store, so unverified claims cannot mint label values).
pub fn auth_failure(tenant: Option<&str>) {
    metrics::counter!(names::AUTH_FAILURES, "tenant" => tenant.unwrap_or("").to_owned()).increment(1);
}

/// `claimed`'s tenant (`tenant/subject` or `tenant.client`) if the store holds it.
pub fn known_tenant<'a>(store: &crate::store::TenantStore, claimed: Option<&'a str>) -> Option<&'a str> {
    let claimed = claimed?;
    let end = claimed.find(['/', '.']).unwrap_or(claimed.len());
    let t = &claimed[..end];
    let id: sluice_tenancy::TenantId = t.parse().ok()?;
    store.get(&id).map(|_| t)
}

/// Calls `f` with every error code of a response: top level, per resource, per partition.
/// APIs tenants cannot reach (inter-broker, cluster administration answered by
/// `tenant/cluster.rs` at the top level) report their top-level code where they have one.
pub fn error_codes(api: ApiKey, version: i16, body: &mut Bytes, f: &mut impl FnMut(i16)) -> Option<()> {
    use kafka_protocol::messages::*;
    fn dec<T: Decodable>(body: &mut Bytes, version: i16) -> Option<T> {
        T::decode(body, version).ok()
    }
    match api {
        ApiKey::Produce => {
            let r: ProduceResponse = dec(body, version)?;
            r.responses.iter().flat_map(|t| &t.partition_responses).for_each(|p| f(p.error_code));
        }
        ApiKey::Fetch => {
            let r: FetchResponse = dec(body, version)?;
            f(r.error_code);
            r.responses.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::ListOffsets => {
            let r: ListOffsetsResponse = dec(body, version)?;
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::Metadata => {
            let r: MetadataResponse = dec(body, version)?;
            f(r.error_code);
            for t in &r.topics {
                f(t.error_code);
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ApiKey::OffsetCommit => {
            let r: OffsetCommitResponse = dec(body, version)?;
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::OffsetFetch => {
            let r: OffsetFetchResponse = dec(body, version)?;
            f(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
            for g in &r.groups {
                f(g.error_code);
                g.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
            }
        }
        ApiKey::FindCoordinator => {
            let r: FindCoordinatorResponse = dec(body, version)?;
            f(r.error_code);
            r.coordinators.iter().for_each(|c| f(c.error_code));
        }
        ApiKey::JoinGroup => {
            let r: JoinGroupResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::Heartbeat => {
            let r: HeartbeatResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::LeaveGroup => {
            let r: LeaveGroupResponse = dec(body, version)?;
            f(r.error_code);
            r.members.iter().for_each(|m| f(m.error_code));
        }
        ApiKey::SyncGroup => {
            let r: SyncGroupResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::DescribeGroups => {
            let r: DescribeGroupsResponse = dec(body, version)?;
            r.groups.iter().for_each(|g| f(g.error_code));
        }
        ApiKey::ListGroups => {
            let r: ListGroupsResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::ApiVersions => {
            let r: ApiVersionsResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::CreateTopics => {
            let r: CreateTopicsResponse = dec(body, version)?;
            r.topics.iter().for_each(|t| f(t.error_code));
        }
        ApiKey::DeleteTopics => {
            let r: DeleteTopicsResponse = dec(body, version)?;
            r.responses.iter().for_each(|t| f(t.error_code));
        }
        ApiKey::DeleteRecords => {
            let r: DeleteRecordsResponse = dec(body, version)?;
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::InitProducerId => {
            let r: InitProducerIdResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::OffsetForLeaderEpoch => {
            let r: OffsetForLeaderEpochResponse = dec(body, version)?;
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::AddPartitionsToTxn => {
            let r: AddPartitionsToTxnResponse = dec(body, version)?;
            f(r.error_code);
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .for_each(|p| f(p.partition_error_code));
            for txn in &r.results_by_transaction {
                txn.topic_results.iter().flat_map(|t| &t.results_by_partition).for_each(|p| f(p.partition_error_code));
            }
        }
        ApiKey::AddOffsetsToTxn => {
            let r: AddOffsetsToTxnResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::EndTxn => {
            let r: EndTxnResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::TxnOffsetCommit => {
            let r: TxnOffsetCommitResponse = dec(body, version)?;
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::DescribeConfigs => {
            let r: DescribeConfigsResponse = dec(body, version)?;
            r.results.iter().for_each(|x| f(x.error_code));
        }
        ApiKey::AlterConfigs => {
            let r: AlterConfigsResponse = dec(body, version)?;
            r.responses.iter().for_each(|x| f(x.error_code));
        }
        ApiKey::IncrementalAlterConfigs => {
            let r: IncrementalAlterConfigsResponse = dec(body, version)?;
            r.responses.iter().for_each(|x| f(x.error_code));
        }
        ApiKey::CreatePartitions => {
            let r: CreatePartitionsResponse = dec(body, version)?;
            r.results.iter().for_each(|x| f(x.error_code));
        }
        ApiKey::DeleteGroups => {
            let r: DeleteGroupsResponse = dec(body, version)?;
            r.results.iter().for_each(|x| f(x.error_code));
        }
        ApiKey::OffsetDelete => {
            let r: OffsetDeleteResponse = dec(body, version)?;
            f(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::DescribeClientQuotas => {
            let r: DescribeClientQuotasResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::AlterClientQuotas => {
            let r: AlterClientQuotasResponse = dec(body, version)?;
            r.entries.iter().for_each(|e| f(e.error_code));
        }
        ApiKey::DescribeProducers => {
            let r: DescribeProducersResponse = dec(body, version)?;
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::DescribeTransactions => {
            let r: DescribeTransactionsResponse = dec(body, version)?;
            r.transaction_states.iter().for_each(|s| f(s.error_code));
        }
        ApiKey::ListTransactions => {
            let r: ListTransactionsResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let r: ConsumerGroupHeartbeatResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::ConsumerGroupDescribe => {
            let r: ConsumerGroupDescribeResponse = dec(body, version)?;
            r.groups.iter().for_each(|g| f(g.error_code));
        }
        ApiKey::DescribeTopicPartitions => {
            let r: DescribeTopicPartitionsResponse = dec(body, version)?;
            for t in &r.topics {
                f(t.error_code);
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ApiKey::DescribeCluster => {
            let r: DescribeClusterResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::ShareGroupHeartbeat => {
            let r: ShareGroupHeartbeatResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::ShareGroupDescribe => {
            let r: ShareGroupDescribeResponse = dec(body, version)?;
            r.groups.iter().for_each(|g| f(g.error_code));
        }
        ApiKey::ShareFetch => {
            let r: ShareFetchResponse = dec(body, version)?;
            f(r.error_code);
            r.responses.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::ShareAcknowledge => {
            let r: ShareAcknowledgeResponse = dec(body, version)?;
            f(r.error_code);
            r.responses.iter().flat_map(|t| &t.partitions).for_each(|p| f(p.error_code));
        }
        ApiKey::DescribeUserScramCredentials => {
            let r: DescribeUserScramCredentialsResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::CreateAcls => {
            let r: CreateAclsResponse = dec(body, version)?;
            r.results.iter().for_each(|x| f(x.error_code));
        }
        ApiKey::DescribeAcls => {
            let r: DescribeAclsResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::DeleteAcls => {
            let r: DeleteAclsResponse = dec(body, version)?;
            r.filter_results.iter().for_each(|x| f(x.error_code));
        }
        ApiKey::DescribeLogDirs => {
            let r: DescribeLogDirsResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::ElectLeaders => {
            let r: ElectLeadersResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::AlterPartitionReassignments => {
            let r: AlterPartitionReassignmentsResponse = dec(body, version)?;
            f(r.error_code);
        }
        ApiKey::ListPartitionReassignments => {
            let r: ListPartitionReassignmentsResponse = dec(body, version)?;
            f(r.error_code);
        }
        _ => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
    use kafka_protocol::messages::ProduceResponse;

    #[test]
    fn error_labels_are_kafka_constants() {
        assert_eq!(error_label(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_label(29), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(error_label(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_label(30000), "UNKNOWN");
    }

    #[test]
    fn produce_errors_are_found_per_partition() {
        let resp = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_partition_responses(vec![
                PartitionProduceResponse::default().with_error_code(0),
                PartitionProduceResponse::default().with_error_code(29),
                PartitionProduceResponse::default().with_error_code(6),
            ])]);
        let frame = crate::protocol::encode_response(7, ApiKey::Produce, 9, &resp).expect("encodes");
        let payload = frame.slice(4..);
        let (_, at) = parse_response_header(&payload, ApiKey::Produce, 9).expect("header");
        let mut codes = Vec::new();
        assert!(error_codes(ApiKey::Produce, 9, &mut payload.slice(at..), &mut |c| codes.push(c)).is_some());
        assert_eq!(codes, vec![0, 29, 6]);
    }
}
