//! A small blocking Kafka client straight to the pool (no gateway, no quota) for what
//! the quota benchmark needs around the perf tools: creating and deleting its topics,
//! and reading how much landed in a topic (end offsets and the leaders' log sizes),
//! sampled every few hundred milliseconds by a [`Sampler`] thread.
//!
//! Frames are built with kafka-protocol; a request goes to a pool broker over its own
//! plain TCP connection, opened on first use and kept.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const METADATA_VERSION: i16 = 12;
const LIST_OFFSETS_VERSION: i16 = 7;
const DESCRIBE_LOG_DIRS_VERSION: i16 = 4;
const CREATE_TOPICS_VERSION: i16 = 7;
const DELETE_TOPICS_VERSION: i16 = 5;
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// What went wrong talking to the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{api:?} to {addr}: {source}")]
    Io {
        api: ApiKey,
        addr: String,
        source: std::io::Error,
    },
    #[error("{api:?}: bad frame: {detail}")]
    Frame { api: ApiKey, detail: String },
    #[error("{what}: Kafka error {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        what: String,
        code: i16,
        message: Option<String>,
    },
    #[error("no pool broker answered: {0}")]
    NoBroker(String),
    #[error("topic {topic} partition {partition} has no leader yet")]
    NoLeader { topic: String, partition: i32 },
}

/// How much one topic holds, summed over its partitions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Seconds since the sampler's epoch, the middle of the round trips.
    pub t: f64,
    /// Sum of the partitions' end offsets (records, for a topic written once).
    pub records: u64,
    /// Sum of the leaders' log sizes: the record batches as the producer sent them
    /// (uncompressed here), which is what the gateway charges.
    pub bytes: u64,
}

/// Blocking connections to the pool brokers.
pub struct PoolClient {
    bootstrap: Vec<String>,
    /// node id → host:port, from the last Metadata.
    brokers: HashMap<i32, String>,
    conns: HashMap<String, TcpStream>,
    correlation: i32,
}

impl PoolClient {
    pub fn new(bootstrap: &[String]) -> Self {
        PoolClient {
            bootstrap: bootstrap.to_vec(),
            brokers: HashMap::new(),
            conns: HashMap::new(),
            correlation: 0,
        }
    }

    /// One request/response on `addr`'s connection; a failed connection is dropped so
    /// the next call reconnects.
    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        addr: &str,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, PoolError> {
        let result = self.call_inner(addr, api, version, req);
        if result.is_err() {
            self.conns.remove(addr);
        }
        result
    }

    fn call_inner<Req: Encodable, Resp: Decodable>(
        &mut self,
        addr: &str,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, PoolError> {
        let frame_err = |detail: String| PoolError::Frame { api, detail };
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("loadtest-quota")))
            .encode(&mut frame, api.request_header_version(version))
            .map_err(|e| frame_err(e.to_string()))?;
        req.encode(&mut frame, version)
            .map_err(|e| frame_err(e.to_string()))?;
        let len = i32::try_from(frame.len() - 4).map_err(|e| frame_err(e.to_string()))?;
        frame[0..4].copy_from_slice(&len.to_be_bytes());
        if !self.conns.contains_key(addr) {
            let stream = TcpStream::connect(addr).map_err(|source| PoolError::Connect {
                addr: addr.into(),
                source,
            })?;
            let _ = stream.set_nodelay(true);
            // A stuck broker must not stall the sampler forever.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            self.conns.insert(addr.to_string(), stream);
        }
        let io = |source| PoolError::Io {
            api,
            addr: addr.into(),
            source,
        };
        let stream = self
            .conns
            .get_mut(addr)
            .ok_or_else(|| frame_err("connection vanished".into()))?;
        stream.write_all(&frame).map_err(io)?;
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).map_err(io)?;
        let len = i32::from_be_bytes(len);
        if !(0..=64 << 20).contains(&len) {
            return Err(frame_err(format!("response length {len}")));
        }
        let mut buf = vec![0u8; len as usize];
        stream.read_exact(&mut buf).map_err(io)?;
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))
            .map_err(|e| frame_err(e.to_string()))?;
        if header.correlation_id != correlation {
            return Err(frame_err(format!(
                "correlation id {} for request {correlation}",
                header.correlation_id
            )));
        }
        let resp = Resp::decode(&mut buf, version).map_err(|e| frame_err(e.to_string()))?;
        if buf.has_remaining() {
            return Err(frame_err(format!("{} bytes left over", buf.remaining())));
        }
        Ok(resp)
    }

    /// Any bootstrap broker that answers.
    fn any_call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, PoolError> {
        let mut errors = Vec::new();
        for addr in self.bootstrap.clone() {
            match self.call(&addr, api, version, req) {
                Ok(r) => return Ok(r),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(PoolError::NoBroker(errors.join("; ")))
    }

    /// SaslHandshake (PLAIN) and SaslAuthenticate as `user`/`password` on `addr` (a
    /// gateway): `Ok` when both answer with error 0. Used to wait until a gateway knows
    /// a tenant that was just written to the store.
    pub fn authenticate_plain(
        &mut self,
        addr: &str,
        user: &str,
        password: &str,
    ) -> Result<(), PoolError> {
        use kafka_protocol::messages::{
            SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
            SaslHandshakeResponse,
        };
        // A fresh connection each time: a refused one is closed by the gateway.
        self.conns.remove(addr);
        let hs: SaslHandshakeResponse = self.call(
            addr,
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )?;
        if hs.error_code != 0 {
            return Err(PoolError::Kafka {
                what: "SaslHandshake PLAIN".into(),
                code: hs.error_code,
                message: None,
            });
        }
        let auth: SaslAuthenticateResponse = self.call(
            addr,
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(format!("\0{user}\0{password}"))),
        )?;
        self.conns.remove(addr);
        if auth.error_code != 0 {
            return Err(PoolError::Kafka {
                what: "SaslAuthenticate".into(),
                code: auth.error_code,
                message: auth.error_message.map(|m| m.to_string()),
            });
        }
        Ok(())
    }

    /// Partition → leader node of `topic`, refreshing the broker list.
    pub fn leaders(&mut self, topic: &str) -> Result<HashMap<i32, i32>, PoolError> {
        let req = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]));
        let resp: MetadataResponse = self.any_call(ApiKey::Metadata, METADATA_VERSION, &req)?;
        for b in &resp.brokers {
            self.brokers
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| PoolError::Kafka {
                what: format!("Metadata for {topic}"),
                code: UNKNOWN_TOPIC_OR_PARTITION,
                message: None,
            })?;
        if t.error_code != 0 {
            return Err(PoolError::Kafka {
                what: format!("Metadata for {topic}"),
                code: t.error_code,
                message: None,
            });
        }
        let mut out = HashMap::new();
        for p in &t.partitions {
            if p.leader_id.0 < 0 {
                return Err(PoolError::NoLeader {
                    topic: topic.into(),
                    partition: p.partition_index,
                });
            }
            out.insert(p.partition_index, p.leader_id.0);
        }
        Ok(out)
    }

    /// Waits (at most `timeout`) until `topic` has `partitions` partitions, each with a
    /// leader.
    pub fn wait_leaders(
        &mut self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
    ) -> Result<HashMap<i32, i32>, PoolError> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.leaders(topic);
            match result {
                Ok(l) if l.len() == partitions as usize => return Ok(l),
                Ok(_) | Err(PoolError::NoLeader { .. } | PoolError::Kafka { .. })
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Ok(l) => {
                    return Err(PoolError::Kafka {
                        what: format!("{topic}: {} of {partitions} partitions", l.len()),
                        code: UNKNOWN_TOPIC_OR_PARTITION,
                        message: None,
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates each `(name, partitions)` topic with the pool's replication factor 3;
    /// an existing topic is an error (names are meant to be fresh).
    pub fn create_topics(&mut self, topics: &[(String, i32)]) -> Result<(), PoolError> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                topics
                    .iter()
                    .map(|(name, partitions)| {
                        CreatableTopic::default()
                            .with_name(topic_name(name))
                            .with_num_partitions(*partitions)
                            .with_replication_factor(3)
                    })
                    .collect(),
            );
        let resp: CreateTopicsResponse =
            self.any_call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &req)?;
        for t in resp.topics {
            if t.error_code != 0 {
                return Err(PoolError::Kafka {
                    what: format!("creating {}", t.name.0.as_str()),
                    code: t.error_code,
                    message: t.error_message.map(|m| m.to_string()),
                });
            }
        }
        for (name, partitions) in topics {
            self.wait_leaders(name, *partitions, Duration::from_secs(60))?;
        }
        Ok(())
    }

    /// Deletes the topics; ones already gone are fine. Returns the names that failed.
    pub fn delete_topics(&mut self, names: &[String]) -> Result<Vec<String>, PoolError> {
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        let resp: DeleteTopicsResponse =
            self.any_call(ApiKey::DeleteTopics, DELETE_TOPICS_VERSION, &req)?;
        Ok(resp
            .responses
            .into_iter()
            .filter(|r| r.error_code != 0 && r.error_code != UNKNOWN_TOPIC_OR_PARTITION)
            .map(|r| {
                format!(
                    "{} (error {})",
                    r.name.map_or_else(String::new, |n| n.0.to_string()),
                    r.error_code
                )
            })
            .collect())
    }

    /// Sum of end offsets and of leader log sizes of `topic`, whose partition leaders
    /// are `leaders` (from [`PoolClient::leaders`]).
    pub fn totals(
        &mut self,
        topic: &str,
        leaders: &HashMap<i32, i32>,
    ) -> Result<(u64, u64), PoolError> {
        let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
        for (p, l) in leaders {
            by_leader.entry(*l).or_default().push(*p);
        }
        let (mut records, mut bytes) = (0u64, 0u64);
        for (leader, partitions) in by_leader {
            let addr = self
                .brokers
                .get(&leader)
                .cloned()
                .ok_or_else(|| PoolError::NoBroker(format!("node {leader} unknown")))?;
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(-1) // latest
                            })
                            .collect(),
                    )]);
            let resp: ListOffsetsResponse =
                self.call(&addr, ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &req)?;
            for p in resp.topics.iter().flat_map(|t| &t.partitions) {
                if p.error_code != 0 {
                    return Err(PoolError::Kafka {
                        what: format!("ListOffsets {topic}-{}", p.partition_index),
                        code: p.error_code,
                        message: None,
                    });
                }
                records += p.offset.max(0) as u64;
            }
            let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions.clone()),
            ]));
            let resp: DescribeLogDirsResponse = self.call(
                &addr,
                ApiKey::DescribeLogDirs,
                DESCRIBE_LOG_DIRS_VERSION,
                &req,
            )?;
            if resp.error_code != 0 {
                return Err(PoolError::Kafka {
                    what: format!("DescribeLogDirs {topic}"),
                    code: resp.error_code,
                    message: None,
                });
            }
            for p in resp
                .results
                .iter()
                .flat_map(|r| &r.topics)
                .flat_map(|t| &t.partitions)
                .filter(|p| !p.is_future_key)
            {
                bytes += p.partition_size.max(0) as u64;
            }
        }
        Ok((records, bytes))
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Samples a topic's totals every `interval` in a background thread until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<JoinHandle<Result<(), PoolError>>>,
}

impl Sampler {
    /// Starts sampling `topic` (whose partitions must have leaders already); `epoch`
    /// is the zero of the samples' times.
    pub fn start(
        bootstrap: &[String],
        topic: &str,
        interval: Duration,
        epoch: Instant,
    ) -> Result<Self, PoolError> {
        let mut client = PoolClient::new(bootstrap);
        let mut leaders = client.leaders(topic)?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (flag, out) = (stop.clone(), samples.clone());
        let topic = topic.to_string();
        let thread = std::thread::spawn(move || {
            let mut failures = 0;
            loop {
                let t0 = Instant::now();
                match client.totals(&topic, &leaders) {
                    Ok((records, bytes)) => {
                        let mid = t0 + (Instant::now() - t0) / 2;
                        let s = Sample {
                            t: (mid - epoch).as_secs_f64(),
                            records,
                            bytes,
                        };
                        if let Ok(mut v) = out.lock() {
                            v.push(s);
                        }
                        failures = 0;
                    }
                    // A leader moved or a connection dropped: a missed sample only
                    // widens one window; many in a row mean something is broken.
                    Err(e) => {
                        failures += 1;
                        if failures > 20 {
                            return Err(e);
                        }
                        if let Ok(l) = client.leaders(&topic) {
                            leaders = l;
                        }
                    }
                }
                if flag.load(Ordering::Relaxed) {
                    return Ok(());
                }
                std::thread::sleep(interval.saturating_sub(t0.elapsed()));
            }
        });
        Ok(Sampler {
            stop,
            samples,
            thread: Some(thread),
        })
    }

    /// The newest sample so far.
    pub fn latest(&self) -> Option<Sample> {
        self.samples.lock().ok().and_then(|v| v.last().copied())
    }

    /// Stops after one more sample and returns them all.
    pub fn stop(mut self) -> anyhow::Result<Vec<Sample>> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self
            .thread
            .take()
            .ok_or_else(|| anyhow::anyhow!("sampler already stopped"))?;
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the pool sampler thread panicked"))??;
        let samples = self
            .samples
            .lock()
            .map_err(|_| anyhow::anyhow!("sampler lock poisoned"))?
            .clone();
        Ok(samples)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
