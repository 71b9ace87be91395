//! A minimal Kafka client for the gateway's own use of the pool: discovery's Metadata
//! poll and the `__sluice_*` store topics (create, list offsets, produce, fetch).
//!
//! Connections are opened by `crate::upstream` (TLS and SASL as `[pool]` says).
//!
//! It speaks fixed, conservative API versions that every Kafka 4.x broker supports
//! (Metadata v12, CreateTopics v7, ListOffsets v7, Produce v9, Fetch v12; topics by name,
//! never by id), one request at a time per connection. Record batches are encoded and
//! decoded with kafka-protocol's `records` module, uncompressed.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::AsyncWriteExt;

use crate::codec::{FrameReader, ReadLimits};
use crate::protocol::parse_response_header;
use crate::upstream::{Upstream, UpstreamError, UpstreamRead, UpstreamStream, UpstreamWrite};

pub const METADATA_VERSION: i16 = 12;
pub const CREATE_TOPICS_VERSION: i16 = 7;
pub const LIST_OFFSETS_VERSION: i16 = 7;
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;

/// Kafka's error codes the store treats specially.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("no pool broker reachable (tried {tried})")]
    NoBrokerReachable { tried: String },
    #[error("{api:?} to {addr}: {source}")]
    Io { addr: String, api: ApiKey, source: std::io::Error },
    #[error("{api:?} to {addr} got no answer within {timeout:?}")]
    Timeout { addr: String, api: ApiKey, timeout: Duration },
    #[error("{api:?} to {addr}: {reason}")]
    Protocol { addr: String, api: ApiKey, reason: String },
    #[error("{api:?} on {what}: broker error {code} ({name}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker { api: ApiKey, what: String, code: i16, name: String, message: Option<String> },
    #[error("topic {topic} partition {partition} has no leader known to the pool")]
    NoLeader { topic: String, partition: i32 },
    #[error("encoding records: {0}")]
    Records(String),
}

impl KafkaError {
    /// A broker error code, when the failure is one.
    pub fn code(&self) -> Option<i16> {
        match self {
            KafkaError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn broker(api: ApiKey, what: impl Into<String>, code: i16, message: Option<&StrBytes>) -> Self {
        let name = ResponseError::try_from_code(code).map(|e| format!("{e:?}")).unwrap_or_else(|| "unknown".into());
        KafkaError::Broker { api, what: what.into(), code, name, message: message.map(|m| m.to_string()) }
    }
}

/// One connection to one pool broker; one request at a time.
pub struct KafkaConn {
    addr: String,
    reader: FrameReader<UpstreamRead>,
    writer: UpstreamWrite,
    correlation_id: i32,
    client_id: &'static str,
    /// Longest wait for any one answer (long-poll Fetch adds its own max_wait).
    call_timeout: Duration,
}

const READ_LIMITS: ReadLimits = ReadLimits {
    max_frame: 64 * 1024 * 1024,
    // The per-call timeout bounds the wait; these only guard a stalled frame.
    idle: Duration::from_secs(3600),
    frame: Duration::from_secs(30),
    reserve_ahead: usize::MAX,
};

impl KafkaConn {
    pub fn new(stream: UpstreamStream, client_id: &'static str, call_timeout: Duration) -> Self {
        let addr = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let (r, w) = stream.into_split();
        Self { addr, reader: FrameReader::new(r), writer: w, correlation_id: 0, client_id, call_timeout }
    }

    pub async fn connect(
        addr: &str,
        upstream: &Upstream,
        connect_timeout: Duration,
        client_id: &'static str,
        call_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        Ok(Self::new(upstream.connect(addr, connect_timeout).await?, client_id, call_timeout))
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn protocol(&self, api: ApiKey, reason: impl ToString) -> KafkaError {
        KafkaError::Protocol { addr: self.addr.clone(), api, reason: reason.to_string() }
    }

    /// Sends one request and waits for its answer, within the connection's call timeout
    /// plus `extra` (the broker-side wait of a long poll).
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
        extra: Duration,
    ) -> Result<Resp, KafkaError> {
        let timeout = self.call_timeout + extra;
        match tokio::time::timeout(timeout, self.call_inner(api, version, body)).await {
            Ok(r) => r,
            // The answer may still arrive later and would be taken for the next one's;
            // callers drop the connection on any error.
            Err(_) => Err(KafkaError::Timeout { addr: self.addr.clone(), api, timeout }),
        }
    }

    async fn call_inner<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp, KafkaError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)))
            .encode(&mut buf, api.request_header_version(version))
            .map_err(|e| self.protocol(api, e))?;
        body.encode(&mut buf, version).map_err(|e| self.protocol(api, e))?;
        let len = i32::try_from(buf.len() - 4).map_err(|_| self.protocol(api, "request too large"))?;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        self.writer
            .write_all(&buf)
            .await
            .map_err(|source| KafkaError::Io { addr: self.addr.clone(), api, source })?;
        let frame = self
            .reader
            .read_frame(READ_LIMITS)
            .await
            .map_err(|e| self.protocol(api, e))?
            .ok_or_else(|| self.protocol(api, "connection closed"))?;
        let (corr, body_at) = parse_response_header(frame.payload(), api, version).map_err(|e| self.protocol(api, e))?;
        if corr != self.correlation_id {
            return Err(self.protocol(api, format!("correlation id {corr}, expected {}", self.correlation_id)));
        }
        let mut body = frame.0.slice(4 + body_at..);
        Resp::decode(&mut body, version).map_err(|e| self.protocol(api, e))
    }

    pub async fn api_versions(&mut self) -> Result<ApiVersionsResponse, KafkaError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        self.call(ApiKey::ApiVersions, 3, &req, Duration::ZERO).await
    }

    /// Metadata for `topics` (`Some(&[])` asks for brokers only).
    pub async fn metadata(&mut self, topics: &[&str]) -> Result<MetadataResponse, KafkaError> {
        let req = MetadataRequest::default().with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect(),
        ));
        self.call(ApiKey::Metadata, METADATA_VERSION, &req, Duration::ZERO).await
    }

    /// Creates `topic`; returns `Ok(false)` when it already exists.
    pub async fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> Result<bool, KafkaError> {
        let req = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string((*k).to_owned()))
                            .with_value(Some(StrBytes::from_string((*v).to_owned())))
                    })
                    .collect(),
            )]);
        let resp: CreateTopicsResponse =
            self.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &req, Duration::from_secs(30)).await?;
        let result = resp
            .topics
            .first()
            .ok_or_else(|| self.protocol(ApiKey::CreateTopics, "answer names no topic"))?;
        match result.error_code {
            0 => Ok(true),
            TOPIC_ALREADY_EXISTS => Ok(false),
            code => Err(KafkaError::broker(ApiKey::CreateTopics, topic, code, result.error_message.as_ref())),
        }
    }

    /// The offset at `timestamp` (-2 earliest, -1 latest = high watermark).
    pub async fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> Result<i64, KafkaError> {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_timeout_ms(10_000)
            .with_topics(vec![ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            ])]);
        let resp: ListOffsetsResponse = self.call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &req, Duration::ZERO).await?;
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| self.protocol(ApiKey::ListOffsets, "answer names no partition"))?;
        if p.error_code != 0 {
            return Err(KafkaError::broker(ApiKey::ListOffsets, format!("{topic}-{partition}"), p.error_code, None));
        }
        Ok(p.offset)
    }

    /// Produces one uncompressed batch of `records` (key, value; `None` value = tombstone)
    /// with acks=all; returns the offset of the first record.
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[(Bytes, Option<Bytes>)],
        timeout: Duration,
    ) -> Result<i64, KafkaError> {
        let batch = encode_batch(records)?;
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(timeout_ms).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(batch))]),
        ]);
        let resp: ProduceResponse = self.call(ApiKey::Produce, PRODUCE_VERSION, &req, timeout).await?;
        let p = resp
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| self.protocol(ApiKey::Produce, "answer names no partition"))?;
        if p.error_code != 0 {
            // INVALID_RECORD names the offending record only in record_errors.
            let detail = p.error_message.clone().or_else(|| {
                p.record_errors.first().and_then(|r| r.batch_index_error_message.clone())
            });
            return Err(KafkaError::broker(ApiKey::Produce, format!("{topic}-{partition}"), p.error_code, detail.as_ref()));
        }
        Ok(p.base_offset)
    }

    /// Long-polls one partition from `offset`: waits up to `max_wait` for data.
    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait: Duration,
        max_bytes: i32,
    ) -> Result<Fetched, KafkaError> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(1)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(max_bytes),
            ])]);
        let resp: FetchResponse = self.call(ApiKey::Fetch, FETCH_VERSION, &req, max_wait).await?;
        if resp.error_code != 0 {
            return Err(KafkaError::broker(ApiKey::Fetch, topic, resp.error_code, None));
        }
        let p = resp
            .responses
            .into_iter()
            .next()
            .and_then(|t| t.partitions.into_iter().next())
            .ok_or_else(|| self.protocol(ApiKey::Fetch, "answer names no partition"))?;
        if p.error_code != 0 {
            return Err(KafkaError::broker(ApiKey::Fetch, format!("{topic}-{partition}"), p.error_code, None));
        }
        let records = decode_batches(p.records.unwrap_or_default()).map_err(|e| self.protocol(ApiKey::Fetch, e))?;
        Ok(Fetched { high_watermark: p.high_watermark, records })
    }
}

/// What one Fetch returned.
#[derive(Debug)]
pub struct Fetched {
    pub high_watermark: i64,
    /// Data records (control records of transactions are left out), in offset order.
    pub records: Vec<Record>,
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_owned()))
}

/// One record batch (magic 2, no compression, no producer id).
pub fn encode_batch(records: &[(Bytes, Option<Bytes>)]) -> Result<Bytes, KafkaError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes, and a
            // Produce may carry one batch per partition: keep the difference constant,
            // with the batch's base sequence at -1 (no producer id).
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| KafkaError::Records(e.to_string()))?;
    Ok(buf.freeze())
}

/// Decodes the complete batches in a Fetch answer. A trailing partial batch (the broker
/// cuts at max_bytes) is ignored: the next fetch starts at its offset again.
pub fn decode_batches(mut data: Bytes) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    // Batch header: base offset (8), batch length (4) counting the bytes after it.
    while data.len() >= 12 {
        let len = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let Ok(len) = usize::try_from(len) else {
            return Err(format!("negative batch length {len}"));
        };
        let total = 12 + len;
        if data.len() < total {
            break;
        }
        let mut batch = data.split_to(total);
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| e.to_string())?;
        out.extend(set.records.into_iter().filter(|r| !r.control));
    }
    Ok(out)
}

/// Settings for reaching the pool.
#[derive(Debug, Clone)]
pub struct PoolAccess {
    pub bootstrap: Vec<String>,
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    pub client_id: &'static str,
    /// TLS and SASL towards the pool (`[pool] security`).
    pub upstream: Upstream,
}

impl PoolAccess {
    /// Connects to broker `addr`.
    pub async fn connect_to(&self, addr: &str) -> Result<KafkaConn, KafkaError> {
        KafkaConn::connect(addr, &self.upstream, self.connect_timeout, self.client_id, self.call_timeout).await
    }

    /// Connects to the first reachable bootstrap broker.
    pub async fn connect_any(&self) -> Result<KafkaConn, KafkaError> {
        let mut tried = Vec::new();
        for addr in &self.bootstrap {
            match self.connect_to(addr).await {
                Ok(c) => return Ok(c),
                // Wrong credentials are not a reachability problem: trying the next
                // broker would only repeat the refusal, and the caller must see it as such.
                Err(KafkaError::Upstream(e)) if e.is_authentication() => return Err(e.into()),
                Err(e) => tried.push(format!("{addr}: {e}")),
            }
        }
        Err(KafkaError::NoBrokerReachable { tried: tried.join(", ") })
    }

    /// Connects to the current leader of `topic`/`partition`, asking any bootstrap broker.
    pub async fn connect_leader(&self, topic: &str, partition: i32) -> Result<KafkaConn, KafkaError> {
        let mut any = self.connect_any().await?;
        let md = any.metadata(&[topic]).await?;
        let t = md.topics.iter().find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic));
        let Some(t) = t else {
            return Err(KafkaError::NoLeader { topic: topic.to_owned(), partition });
        };
        if t.error_code != 0 {
            return Err(KafkaError::broker(ApiKey::Metadata, topic, t.error_code, None));
        }
        let leader = t
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)
            .map(|p| p.leader_id.0)
            .filter(|id| *id >= 0)
            .ok_or_else(|| KafkaError::NoLeader { topic: topic.to_owned(), partition })?;
        let addr = md
            .brokers
            .iter()
            .find(|b| b.node_id.0 == leader)
            .map(|b| format!("{}:{}", b.host.as_str(), b.port))
            .ok_or_else(|| KafkaError::NoLeader { topic: topic.to_owned(), partition })?;
        if addr == any.addr() {
            return Ok(any);
        }
        self.connect_to(&addr).await
    }

    /// Live brokers, as the pool's Metadata lists them.
    pub async fn broker_count(&self) -> Result<usize, KafkaError> {
        let mut any = self.connect_any().await?;
        Ok(any.metadata(&[]).await?.brokers.len())
    }
}
