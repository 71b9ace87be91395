//! Wire-level behaviour of the gateway against the real pool (deploy/pool.sh start):
//! hand-built requests check address rewriting, ApiVersions, ordering, and that bad
//! input closes only the offending connection.
//!
//! The pool's address comes from SLUICE_POOL_BOOTSTRAP (default: the local pool).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use sluice_gateway::config::Config;
use sluice_gateway::server::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn pool_bootstrap() -> Vec<String> {
    std::env::var("SLUICE_POOL_BOOTSTRAP")
        .unwrap_or_else(|_| "127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093".into())
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// A port base whose broker ports (base+1..base+4) are free right now, below the
/// ephemeral range so no client socket takes one of them later.
fn free_base() -> u16 {
    for attempt in 0..500u32 {
        let base = 20000 + ((std::process::id() * 7 + attempt * 13) % 900) as u16 * 10;
        if (1..=4).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port block");
}

struct TestGateway {
    gateway: Gateway,
    base: u16,
}

async fn start(limits: &str) -> TestGateway {
    let base = free_base();
    let pool = pool_bootstrap().iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(",");
    let text = format!(
        "[listener]\nadvertised_host = \"127.0.0.1\"\nbootstrap_port = 0\nbroker_port_base = {base}\nauth = \"none\"\n\
         [pool]\nbootstrap = [{pool}]\n[limits]\n{limits}\n"
    );
    let gateway = Gateway::start(Config::parse(&text, "test").unwrap()).await.unwrap();
    // Wait for discovery to open the broker listeners.
    for _ in 0..200 {
        if (1..=3).all(|i| std::net::TcpStream::connect(("127.0.0.1", base + i)).is_ok()) {
            return TestGateway { gateway, base };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("broker listeners did not open; is the pool running (deploy/pool.sh start)?");
}

impl TestGateway {
    async fn connect(&self) -> Client {
        Client { stream: TcpStream::connect(self.gateway.bootstrap_addr).await.unwrap(), next_corr: 1 }
    }
}

struct Client {
    stream: TcpStream,
    next_corr: i32,
}

fn request_frame<R: Encodable>(key: ApiKey, version: i16, corr: i32, body: &R) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

impl Client {
    async fn send<R: Encodable>(&mut self, key: ApiKey, version: i16, body: &R) -> i32 {
        let corr = self.next_corr;
        self.next_corr += 1;
        self.stream.write_all(&request_frame(key, version, corr, body)).await.unwrap();
        corr
    }

    /// Reads one response frame: (correlation id, frame bytes after the length).
    async fn read_raw(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(20), self.stream.read_exact(&mut len)).await.ok()?.ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    async fn recv<Resp: Decodable>(&mut self, key: ApiKey, version: i16, corr: i32) -> Resp {
        let raw = self.read_raw().await.expect("response");
        let (got, at) = sluice_gateway::protocol::parse_response_header(&raw, key, version).unwrap();
        assert_eq!(got, corr, "responses must come back in request order");
        Resp::decode(&mut raw.slice(at..), version).unwrap()
    }

    async fn call<R: Encodable, Resp: Decodable>(&mut self, key: ApiKey, version: i16, body: &R) -> Resp {
        let corr = self.send(key, version, body).await;
        self.recv(key, version, corr).await
    }

    /// True when the gateway closed the connection (EOF or reset) within the timeout.
    async fn closed_within(&mut self, timeout: Duration) -> bool {
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

async fn assert_serving(gw: &TestGateway) {
    let mut c = gw.connect().await;
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &api_versions_request()).await;
    assert_eq!(resp.error_code, 0);
}

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("wire-test"))
        .with_client_software_version(StrBytes::from_static_str("1"))
}

#[tokio::test]
async fn api_versions_is_the_intersection_and_kip511_answers_v0() {
    let gw = start("").await;
    let mut c = gw.connect().await;
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &api_versions_request()).await;
    assert_eq!(resp.error_code, 0);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).expect("Produce offered");
    assert!(produce.max_version <= ApiKey::Produce.valid_versions().max);
    for k in &resp.api_keys {
        let api = ApiKey::try_from(k.api_key).expect("only known keys offered");
        assert!(k.min_version >= api.valid_versions().min && k.max_version <= api.valid_versions().max, "{api:?}");
        assert!(
            !matches!(api, ApiKey::BrokerHeartbeat | ApiKey::Vote | ApiKey::DescribeQuorum | ApiKey::AlterPartition),
            "internal API {api:?} advertised"
        );
    }

    // A version newer than the gateway knows: v0 answer with UNSUPPORTED_VERSION (KIP-511).
    let corr = c.send(ApiKey::ApiVersions, 3, &api_versions_request()).await;
    // Patch the version field of a v3 request to 99; the body is still parseable as v3.
    let mut raw = request_frame(ApiKey::ApiVersions, 3, 100, &api_versions_request()).to_vec();
    raw[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.stream.write_all(&raw).await.unwrap();
    let _: ApiVersionsResponse = c.recv(ApiKey::ApiVersions, 3, corr).await;
    let raw = c.read_raw().await.unwrap();
    assert_eq!(i32::from_be_bytes(raw[0..4].try_into().unwrap()), 100);
    let v0 = ApiVersionsResponse::decode(&mut raw.slice(4..), 0).unwrap();
    assert_eq!(v0.error_code, 35);
    assert!(v0.api_keys.iter().any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 4));
    gw.gateway.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn metadata_find_coordinator_and_describe_cluster_point_at_the_gateway() {
    let gw = start("").await;
    let mut c = gw.connect().await;
    for version in [1i16, 9, 12] {
        let corr = c.send(ApiKey::Metadata, version, &MetadataRequest::default().with_topics(Some(vec![]))).await;
        let raw = c.read_raw().await.unwrap();
        assert!(!raw.windows(4).any(|w| w == b"2909"), "pool port leaked in Metadata v{version}");
        let (got, at) = sluice_gateway::protocol::parse_response_header(&raw, ApiKey::Metadata, version).unwrap();
        assert_eq!(got, corr);
        let resp = MetadataResponse::decode(&mut raw.slice(at..), version).unwrap();
        assert!(resp.brokers.len() >= 3);
        for b in &resp.brokers {
            assert_eq!(b.host.as_str(), "127.0.0.1");
            assert_eq!(b.port, i32::from(gw.base) + b.node_id.0);
        }
    }

    let batched = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![
        StrBytes::from_static_str("wire-group-a"),
        StrBytes::from_static_str("wire-group-b"),
    ]);
    for _ in 0..50 {
        let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &batched).await;
        assert_eq!(resp.coordinators.len(), 2);
        if resp.coordinators.iter().all(|x| x.error_code == 0) {
            for x in &resp.coordinators {
                assert_eq!((x.host.as_str(), x.port), ("127.0.0.1", i32::from(gw.base) + x.node_id.0));
            }
            break;
        }
        // COORDINATOR_NOT_AVAILABLE while __consumer_offsets is created.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let single = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("wire-group-a"));
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &single).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!((resp.host.as_str(), resp.port), ("127.0.0.1", i32::from(gw.base) + resp.node_id.0));

    let resp: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, 1, &DescribeClusterRequest::default()).await;
    assert!(resp.brokers.len() >= 3);
    for b in &resp.brokers {
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", i32::from(gw.base) + b.broker_id.0));
    }
    gw.gateway.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn pipelined_requests_keep_their_order() {
    let gw = start("").await;
    let mut c = gw.connect().await;
    // Mixed APIs with different broker-side costs, plus gateway-local answers in between.
    let mut expected = Vec::new();
    let mut batch = BytesMut::new();
    for i in 0..30 {
        let corr = 1000 + i;
        let frame = match i % 3 {
            0 => request_frame(ApiKey::Metadata, 12, corr, &MetadataRequest::default().with_topics(None)),
            1 => request_frame(ApiKey::ApiVersions, 3, corr, &api_versions_request()),
            _ => {
                let mut raw = request_frame(ApiKey::ApiVersions, 3, corr, &api_versions_request()).to_vec();
                raw[6..8].copy_from_slice(&42i16.to_be_bytes());
                Bytes::from(raw)
            }
        };
        batch.extend_from_slice(&frame);
        expected.push(corr);
    }
    c.stream.write_all(&batch).await.unwrap();
    for corr in expected {
        let raw = c.read_raw().await.expect("every pipelined request answered");
        assert_eq!(i32::from_be_bytes(raw[0..4].try_into().unwrap()), corr);
    }
    gw.gateway.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn produce_with_acks_zero_does_not_desynchronise() {
    let gw = start("").await;
    let mut c = gw.connect().await;
    let topic = format!("wire-acks0-{}", std::process::id());
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.clone())))
        .with_num_partitions(1)
        .with_replication_factor(3)]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create).await;
    assert!(matches!(resp.topics[0].error_code, 0 | 36), "create: {:?}", resp.topics[0]);
    let mut records = BytesMut::new();
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: None,
        value: Some(Bytes::from_static(b"fire and forget")),
        headers: Default::default(),
    };
    RecordBatchEncoder::encode(&mut records, [&record], &RecordEncodeOptions { version: 2, compression: Compression::None })
        .unwrap();
    let produce = |acks: i16| {
        ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.clone())))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records.clone().freeze()))])])
    };
    // Produce goes to the partition leader. Metadata trails a fresh create, and a broker that
    // refuses an acks=0 produce (not yet leader) closes the connection, as Kafka does; so the
    // partition must first take an acknowledged write before the fire-and-forget ones are sent.
    let topic_request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.clone())))),
    ]));
    let mut ready = None;
    for _ in 0..100 {
        let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &topic_request).await;
        if let Some(p) = md.topics.first().and_then(|t| t.partitions.first()).filter(|p| p.leader_id.0 >= 0) {
            let mut conn = Client {
                stream: TcpStream::connect(("127.0.0.1", gw.base + p.leader_id.0 as u16)).await.unwrap(),
                next_corr: 1,
            };
            let resp: ProduceResponse = conn.call(ApiKey::Produce, 9, &produce(-1)).await;
            let answer = &resp.responses[0].partition_responses[0];
            if answer.error_code == 0 {
                ready = Some((conn, answer.base_offset));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut leader_conn, first_offset) = ready.unwrap_or_else(|| panic!("topic {topic} never took a write"));
    leader_conn.send(ApiKey::Produce, 9, &produce(0)).await;
    leader_conn.send(ApiKey::Produce, 9, &produce(0)).await;
    let resp: ProduceResponse = leader_conn.call(ApiKey::Produce, 9, &produce(-1)).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    // Both fire-and-forget records landed between the two acknowledged ones, and the only
    // answers read were to the acks=-1 requests.
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, first_offset + 3);
    gw.gateway.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn bad_input_closes_only_the_offending_connection() {
    let gw = start("preauth_timeout_ms = 1000\nframe_timeout_ms = 1000\nmax_frame_bytes = 1048576").await;
    let mut healthy = gw.connect().await;
    let _: ApiVersionsResponse = healthy.call(ApiKey::ApiVersions, 3, &api_versions_request()).await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative length", (-1i32).to_be_bytes().to_vec()),
        ("2 GiB length", (i32::MAX).to_be_bytes().to_vec()),
        ("over max_frame_bytes", (2 * 1024 * 1024i32).to_be_bytes().to_vec()),
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("unknown api key", {
            let mut f = request_frame(ApiKey::ApiVersions, 3, 7, &api_versions_request()).to_vec();
            f[4..6].copy_from_slice(&999i16.to_be_bytes());
            f
        }),
        ("unsupported version", {
            let mut f = request_frame(ApiKey::Metadata, 12, 7, &MetadataRequest::default()).to_vec();
            f[6..8].copy_from_slice(&77i16.to_be_bytes());
            f
        }),
        ("internal api", request_frame(ApiKey::BrokerHeartbeat, 1, 7, &BrokerHeartbeatRequest::default()).to_vec()),
        ("header shorter than its fields", vec![0, 0, 0, 3, 0, 3, 0]),
        ("client id longer than frame", vec![0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0x7f]),
        ("slow loris", vec![0, 0, 0, 100, 0, 3]),
        ("silent client", vec![]),
    ];
    for (name, bytes) in cases {
        let mut bad = gw.connect().await;
        bad.stream.write_all(&bytes).await.unwrap();
        assert!(bad.closed_within(Duration::from_secs(5)).await, "{name}: connection should be closed");
        // Everyone else is unaffected, old and new connections alike.
        let _: ApiVersionsResponse = healthy.call(ApiKey::ApiVersions, 3, &api_versions_request()).await;
        assert_serving(&gw).await;
    }

    // Truncated frame then close: nothing to answer, nothing breaks.
    let mut truncated = gw.connect().await;
    let frame = request_frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
    truncated.stream.write_all(&frame[..frame.len() - 3]).await.unwrap();
    drop(truncated);
    assert_serving(&gw).await;
    gw.gateway.shutdown(Duration::from_secs(2)).await;
}
