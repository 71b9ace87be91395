//! Tenant isolation through the gateway, against the real pool: tenant A creates topics,
//! produces, commits offsets and leaves a transaction open; tenant B then attacks A's
//! resources by name, by topic id, through listings, with a stolen fetch session and by
//! probing error messages. Every B response is searched (raw bytes) for A's tenant id,
//! A's topic ids and the pool's ports, and after every attack A still reads its exact
//! records and offsets. A narrowed B principal gets per-resource authorization errors.
//!
//! One `sluice serve` process (SASL listener, own Ed25519 issuer) and two fresh tenants
//! are set up once per test binary; run with `--test-threads=1`. Needs the pool
//! (deploy/pool.sh start); its address comes from SLUICE_POOL_BOOTSTRAP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const ISSUER: &str = "https://isolation.sluice.test";
const AUDIENCE: &str = "sluice";

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC: i16 = 17;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn pool_bootstrap() -> Vec<String> {
    std::env::var("SLUICE_POOL_BOOTSTRAP")
        .unwrap_or_else(|_| "127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093".into())
        .split(',')
        .map(str::to_owned)
        .collect()
}

fn random_uuid() -> Uuid {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    Uuid::from_bytes(b)
}

fn rand_hex8() -> String {
    random_uuid().simple().to_string()[..8].to_owned()
}

// ------------------------------------------------------------------ gateway and tenants

/// The gateway process, the issuer key and the two tenants, shared by every test.
struct Env {
    dir: PathBuf,
    base: u16,
    key_der: Vec<u8>,
    kid: String,
    a: String,
    b: String,
}

static ENV: OnceLock<Env> = OnceLock::new();

fn env() -> &'static Env {
    ENV.get_or_init(setup)
}

/// A block of 10 ports (bootstrap = base, broker N = base + N) free right now, in
/// 20000–28990 (below the ephemeral range).
fn free_base() -> u16 {
    for attempt in 0..800u32 {
        let base = 20000 + ((std::process::id().wrapping_mul(31) + attempt * 17) % 899) as u16 * 10;
        if (0..10).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port block in 20000-28990");
}

fn allow_all() -> serde_json::Value {
    serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kafka-cluster:*"], "Resource": ["*"]}]})
}

fn put_tenant(dir: &std::path::Path, doc: &serde_json::Value) {
    let id = doc["id"].as_str().unwrap_or("tenant");
    let file = dir.join(format!("{id}.json"));
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["tenant", "put", "--bootstrap", &pool_bootstrap().join(","), "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sluice tenant put {id}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn setup() -> Env {
    let dir = std::env::temp_dir().join(format!("sluice-isolation-{}-{}", std::process::id(), rand_hex8()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = sluice_gateway::issuer::SigningKey::generate().unwrap();
    let pem = dir.join("key.pem");
    key.save(&pem).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, key.jwks().to_string()).unwrap();
    // The DER behind the PEM, to sign tokens with claims `mint` does not carry
    // (`sluice:session_policy`).
    let body: String = std::fs::read_to_string(&pem).unwrap().lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let key_der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();

    let a = format!("iso-a-{}", rand_hex8());
    let b = format!("iso-b-{}", rand_hex8());
    put_tenant(
        &dir,
        &serde_json::json!({"id": a, "policies": {"all": allow_all()}, "principals": {"*": {"policies": ["all"]}}}),
    );
    let arn_topic = |p: &str| format!("arn:sluice:kafka:::topic/{b}/{p}");
    let narrow = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"], "Resource": [format!("arn:sluice:kafka:::cluster/{b}")]},
        {"Effect": "Allow", "Action": ["kafka-cluster:DescribeTopic", "kafka-cluster:CreateTopic", "kafka-cluster:WriteData", "kafka-cluster:ReadData"],
         "Resource": [arn_topic("orders*")]}]});
    put_tenant(
        &dir,
        &serde_json::json!({"id": b, "policies": {"all": allow_all(), "narrow": narrow},
            "principals": {"*": {"policies": ["all"]}, "narrow-user": {"policies": ["narrow"]}}}),
    );

    let base = free_base();
    let pool = pool_bootstrap().iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[listener]
bind_host = "127.0.0.1"
advertised_host = "127.0.0.1"
bootstrap_port = {base}
broker_port_base = {base}
auth = "sasl"

[pool]
bootstrap = [{pool}]

[limits]
max_frame_bytes = 104857600

[auth]
mechanisms = ["OAUTHBEARER", "PLAIN"]
max_session_ms = 3600000
failures_before_delay = 100000
failures_before_refusal = 1000000
failure_window_ms = 60000

[[auth.issuers]]
issuer = "{ISSUER}"
audience = ["{AUDIENCE}"]
jwks_file = "{}"
algorithms = ["EdDSA"]
leeway_secs = 0
"#,
            jwks.display()
        ),
    )
    .unwrap();
    // The gateway must not outlive this test binary (statics are never dropped): a shell
    // watches our pid and stops the gateway when we are gone.
    let log = dir.join("sluice.log");
    let script = format!(
        "RUST_LOG=info '{bin}' serve --config '{cfg}' >'{log}' 2>&1 & gw=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $gw 2>/dev/null; do sleep 1; done; kill $gw 2>/dev/null",
        bin = env!("CARGO_BIN_EXE_sluice"),
        cfg = config.display(),
        log = log.display(),
        me = std::process::id()
    );
    // The watcher outlives every test by design; it is never waited on.
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(0..=3).all(|i| std::net::TcpStream::connect(("127.0.0.1", base + i)).is_ok()) {
        assert!(
            Instant::now() < deadline,
            "gateway did not open its ports:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Env { dir, base, key_der, kid: key.kid().to_owned(), a, b }
}

impl Env {
    fn token(&self, tenant: &str, subject: &str, session_policy: Option<serde_json::Value>) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let mut claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "nbf": now,
            "exp": now + 3600, "sluice:tenant": tenant});
        if let Some(p) = session_policy {
            claims["sluice:session_policy"] = p;
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&self.key_der)).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sluice.log")).unwrap_or_default()
    }

    /// An authenticated client of `tenant` on the bootstrap port (node None) or a broker port.
    async fn client(&self, tenant: &str, subject: &str, node: Option<i32>) -> Client {
        let token = self.token(tenant, subject, None);
        self.client_with(&token, node, "iso-client").await
    }

    async fn client_with(&self, token: &str, node: Option<i32>, client_id: &'static str) -> Client {
        self.client_mech(token, node, client_id, "PLAIN").await
    }

    /// A client authenticated with `mechanism` (PLAIN: the token is the password;
    /// OAUTHBEARER: RFC 7628 client message).
    async fn client_mech(
        &self,
        token: &str,
        node: Option<i32>,
        client_id: &'static str,
        mechanism: &'static str,
    ) -> Client {
        let port = self.base + node.map(|n| n as u16).unwrap_or(0);
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut c = Client { stream, next_corr: 1, client_id, watch: None, echo: Vec::new(), checked: 0 };
        let hs: SaslHandshakeResponse = c
            .call(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
            )
            .await;
        assert_eq!(hs.error_code, 0, "handshake: {hs:?}");
        let msg = if mechanism == "OAUTHBEARER" {
            format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
        } else {
            let mut msg = b"\0user\0".to_vec();
            msg.extend_from_slice(token.as_bytes());
            msg
        };
        let auth: SaslAuthenticateResponse = c
            .call(ApiKey::SaslAuthenticate, 2, &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(msg)))
            .await;
        assert_eq!(auth.error_code, 0, "authenticate: {auth:?}\n{}", self.log());
        c
    }

    /// B's client (OAUTHBEARER, so both mechanisms are covered): every response it reads
    /// is searched for traces of A.
    async fn attacker(&self, a: &AState, node: Option<i32>) -> Client {
        let token = self.token(&self.b, "mallory", None);
        let mut c = self.client_mech(&token, node, "iso-client", "OAUTHBEARER").await;
        c.watch = Some(Watch::new(self, a));
        c
    }

    fn pool_prefix_a(&self) -> String {
        format!("{}.", self.a)
    }
}

// ------------------------------------------------------------------ client

/// What must never appear in a response to B (after removing names B itself sent).
struct Watch {
    forbidden: Vec<(String, Vec<u8>)>,
}

impl Watch {
    fn new(env: &Env, a: &AState) -> Self {
        let mut forbidden = vec![
            ("A's tenant id".to_owned(), env.a.as_bytes().to_vec()),
            ("another iso-a tenant".to_owned(), b"iso-a".to_vec()),
            ("a pool port".to_owned(), b"2909".to_vec()),
            ("B's own pool prefix".to_owned(), format!("{}.", env.b).into_bytes()),
        ];
        for (name, id) in [("data", a.data_id), ("txn", a.txn_topic_id)] {
            forbidden.push((format!("A's topic id of {name}"), id.as_bytes().to_vec()));
        }
        Self { forbidden }
    }
}

struct Client {
    stream: TcpStream,
    next_corr: i32,
    client_id: &'static str,
    watch: Option<Watch>,
    /// Strings and ids B sent in the current request, which the answer may echo.
    echo: Vec<Vec<u8>>,
    /// How many responses the watch checked.
    checked: usize,
}

fn request_frame<R: Encodable>(key: ApiKey, version: i16, corr: i32, client_id: &str, body: &R) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn remove_all(hay: &[u8], needle: &[u8]) -> Vec<u8> {
    if needle.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

impl Client {
    /// The names of this request that the answer may echo (B's own view of them).
    fn echo(&mut self, names: &[&str]) -> &mut Self {
        self.echo = names.iter().map(|s| s.as_bytes().to_vec()).collect();
        self
    }

    /// Topic ids of this request that the answer may echo (Kafka answers unknown ids with
    /// the id itself).
    fn echo_ids(&mut self, ids: &[Uuid]) -> &mut Self {
        self.echo = ids.iter().map(|id| id.as_bytes().to_vec()).collect();
        self
    }

    async fn send<R: Encodable>(&mut self, key: ApiKey, version: i16, body: &R) -> i32 {
        let corr = self.next_corr;
        self.next_corr += 1;
        let frame = request_frame(key, version, corr, self.client_id, body);
        self.stream.write_all(&frame).await.unwrap();
        corr
    }

    async fn read_raw(&mut self, key: ApiKey, version: i16) -> Bytes {
        let mut len = [0u8; 4];
        match tokio::time::timeout(Duration::from_secs(30), self.stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!(
                "{key:?} v{version}: connection closed by the gateway ({e}); gateway log tail:\n{}",
                env().log().lines().rev().take(15).collect::<Vec<_>>().join("\n")
            ),
            Err(_) => panic!("{key:?} v{version}: no response within 30 s"),
        }
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.unwrap();
        Bytes::from(buf)
    }

    async fn recv<Resp: Decodable + std::fmt::Debug>(&mut self, key: ApiKey, version: i16, corr: i32) -> Resp {
        let raw = self.read_raw(key, version).await;
        let (got, at) = sluice_gateway::protocol::parse_response_header(&raw, key, version).unwrap();
        assert_eq!(got, corr, "responses must come back in request order");
        let resp = Resp::decode(&mut raw.slice(at..), version)
            .unwrap_or_else(|e| panic!("{key:?} v{version} response does not decode: {e}"));
        if let Some(watch) = &self.watch {
            let mut echoes = std::mem::take(&mut self.echo);
            echoes.sort_by_key(|s| std::cmp::Reverse(s.len()));
            let mut rest = raw.to_vec();
            for e in &echoes {
                rest = remove_all(&rest, e);
            }
            for (what, bytes) in &watch.forbidden {
                if let Some(at) = find(&rest, bytes) {
                    let around =
                        String::from_utf8_lossy(&rest[at.saturating_sub(60)..(at + 60).min(rest.len())]).into_owned();
                    panic!("{key:?} v{version} answer to B reveals {what} near {around:?}:\n{resp:?}");
                }
            }
            self.checked += 1;
        }
        resp
    }

    async fn call<R: Encodable, Resp: Decodable + std::fmt::Debug>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &R,
    ) -> Resp {
        let corr = self.send(key, version, body).await;
        self.recv(key, version, corr).await
    }

    /// The highest version of `key` the gateway offers, capped at `want`.
    async fn version(&mut self, key: ApiKey, want: i16) -> Option<i16> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("isolation"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        let resp: ApiVersionsResponse = self.call(ApiKey::ApiVersions, 3, &req).await;
        resp.api_keys.iter().find(|k| k.api_key == key as i16).map(|k| k.max_version.min(want))
    }
}

// ------------------------------------------------------------------ request builders

fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn gid(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_owned()))
}

fn txid(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_owned()))
}

fn metadata_by_names(names: &[&str]) -> MetadataRequest {
    MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(Some(
        names.iter().map(|n| metadata_request::MetadataRequestTopic::default().with_name(Some(tn(n)))).collect(),
    ))
}

fn batch(values: &[&str], txn: Option<(i64, i16)>) -> Bytes {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: txn.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: txn.map(|t| t.0).unwrap_or(-1),
            producer_epoch: txn.map(|t| t.1).unwrap_or(-1),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes: keep it
            // constant, with base sequence -1 when there is no producer id.
            sequence: if txn.is_some() { i as i32 } else { i as i32 - 1 },
            timestamp: now,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .unwrap();
    buf.freeze()
}

fn produce_by_name(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(tn(topic)).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records)),
        ]),
    ])
}

fn fetch_partition(p: i32) -> fetch_request::FetchPartition {
    fetch_request::FetchPartition::default()
        .with_partition(p)
        .with_fetch_offset(0)
        .with_partition_max_bytes(1 << 20)
        .with_current_leader_epoch(-1)
        .with_last_fetched_epoch(-1)
        .with_log_start_offset(-1)
}

fn fetch(topics: Vec<fetch_request::FetchTopic>) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(200)
        .with_min_bytes(1)
        .with_max_bytes(1 << 22)
        .with_isolation_level(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

fn values_of(records: &Option<Bytes>) -> Vec<String> {
    let data = records.clone().unwrap_or_default();
    sluice_gateway::kclient::decode_batches(data)
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned())
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ------------------------------------------------------------------ tenant A's state

/// What tenant A made; the attacks aim at these.
struct AState {
    data_id: Uuid,
    txn_topic_id: Uuid,
    /// Leader node of each partition of `data`.
    data_leaders: Vec<i32>,
    /// Exact record values per partition of `data`.
    records: Vec<Vec<String>>,
    /// Committed offsets of group `grp` on `data`, per partition.
    committed: Vec<i64>,
    txn_producer_id: i64,
}

const A_DATA: &str = "data";
const A_TXN_TOPIC: &str = "txn-topic";
const A_GROUP: &str = "grp";
const A_TXN: &str = "tx";

static A_STATE: tokio::sync::OnceCell<AState> = tokio::sync::OnceCell::const_new();

async fn a_state() -> &'static AState {
    // Tests run in parallel: the first caller sets A up, the others wait for it. A
    // failed setup leaves the cell empty, so the next test tries again and fails loudly.
    A_STATE.get_or_init(make_a_state).await
}

/// Metadata for `names` until every partition has a leader.
async fn wait_metadata(c: &mut Client, names: &[&str]) -> MetadataResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &metadata_by_names(names)).await;
        let ready = md.topics.len() == names.len()
            && md.topics.iter().all(|t| {
                t.error_code == 0 && !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader_id.0 >= 0)
            });
        if ready {
            return md;
        }
        assert!(Instant::now() < deadline, "topics {names:?} not ready: {md:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn coordinator(c: &mut Client, key: &str, key_type: i8) -> i32 {
    try_coordinator(c, key, key_type).await.unwrap_or_else(|resp| panic!("no coordinator for {key}: {resp:?}"))
}

/// The coordinator's node, or the refusal (a name the tenant may not use).
async fn try_coordinator(c: &mut Client, key: &str, key_type: i8) -> Result<i32, FindCoordinatorResponse> {
    let req = FindCoordinatorRequest::default()
        .with_key_type(key_type)
        .with_coordinator_keys(vec![StrBytes::from_string(key.to_owned())]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp: FindCoordinatorResponse = c.echo(&[key]).call(ApiKey::FindCoordinator, 4, &req).await;
        match resp.coordinators.first().map(|x| x.error_code) {
            Some(0) => return Ok(resp.coordinators[0].node_id.0),
            // COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS: retry.
            Some(14 | 15) if Instant::now() < deadline => {}
            _ => return Err(resp),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Set when A's setup starts. `get_or_init` runs one setup at a time and re-runs it only
/// after a failed one, which would find A half made: fail with a pointer to the first.
static A_SETUP_STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn make_a_state() -> AState {
    assert!(
        !A_SETUP_STARTED.swap(true, std::sync::atomic::Ordering::SeqCst),
        "tenant A's setup failed in an earlier test; its failure is the one to read"
    );
    let env = env();
    let mut a = env.client(&env.a, "alice", None).await;
    let create = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(tn(A_DATA))
            .with_num_partitions(2)
            .with_replication_factor(-1),
        create_topics_request::CreatableTopic::default()
            .with_name(tn(A_TXN_TOPIC))
            .with_num_partitions(1)
            .with_replication_factor(-1),
    ]);
    let created: CreateTopicsResponse = a.call(ApiKey::CreateTopics, 7, &create).await;
    for t in &created.topics {
        // 36: a previous test of this binary failed half-way through this setup.
        assert!(matches!(t.error_code, 0 | 36), "A creates {t:?}");
    }
    let md = wait_metadata(&mut a, &[A_DATA, A_TXN_TOPIC]).await;
    let data = &md.topics[0];
    assert_eq!(data.name.as_ref().map(|n| n.0.as_str()), Some(A_DATA), "A sees its own names unprefixed");
    if created.topics[0].error_code == 0 {
        assert_eq!(data.topic_id, created.topics[0].topic_id, "Metadata and CreateTopics agree on the id");
    }
    let mut partitions: Vec<_> = data.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
    partitions.sort();
    let data_leaders: Vec<i32> = partitions.iter().map(|p| p.1).collect();

    let records =
        vec![vec!["a0-first".to_owned(), "a0-second".to_owned(), "a0-third".to_owned()], vec!["a1-only".to_owned()]];
    let mut data_leaders = data_leaders;
    for (p, values) in records.iter().enumerate() {
        let vals: Vec<&str> = values.iter().map(String::as_str).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut leader = env.client(&env.a, "alice", Some(data_leaders[p])).await;
            let resp: ProduceResponse =
                leader.call(ApiKey::Produce, 9, &produce_by_name(A_DATA, p as i32, batch(&vals, None))).await;
            let part = &resp.responses[0].partition_responses[0];
            // UNKNOWN_TOPIC_OR_PARTITION while the leader learns of the new topic;
            // NOT_LEADER_OR_FOLLOWER while leadership of a just-created partition settles
            // (a fresh pool): ask again where the leader is.
            if matches!(part.error_code, UNKNOWN_TOPIC_OR_PARTITION | 6) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let md = wait_metadata(&mut a, &[A_DATA]).await;
                if let Some(now) = md.topics[0].partitions.iter().find(|x| x.partition_index == p as i32) {
                    data_leaders[p] = now.leader_id.0;
                }
                continue;
            }
            assert_eq!((part.error_code, part.base_offset), (0, 0), "A produces: {resp:?}");
            break;
        }
    }

    // Committed offsets of a group (simple commit, no members).
    let committed = vec![2i64, 1];
    let node = coordinator(&mut a, A_GROUP, 0).await;
    let mut coord = env.client(&env.a, "alice", Some(node)).await;
    let commit = OffsetCommitRequest::default()
        .with_group_id(gid(A_GROUP))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(tn(A_DATA)).with_partitions(
                committed
                    .iter()
                    .enumerate()
                    .map(|(p, o)| {
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(p as i32)
                            .with_committed_offset(*o)
                    })
                    .collect(),
            ),
        ]);
    // On a fresh pool the offsets topic is still being created and its leaders move:
    // retry on COORDINATOR_LOAD_IN_PROGRESS / NOT_AVAILABLE / NOT_COORDINATOR.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp: OffsetCommitResponse = coord.call(ApiKey::OffsetCommit, 8, &commit).await;
        let codes: Vec<i16> = resp.topics[0].partitions.iter().map(|p| p.error_code).collect();
        if codes.iter().all(|c| *c == 0) {
            break;
        }
        assert!(
            codes.iter().all(|c| matches!(c, 14..=16)) && Instant::now() < deadline,
            "A commits: {resp:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let node = coordinator(&mut a, A_GROUP, 0).await;
        coord = env.client(&env.a, "alice", Some(node)).await;
    }

    // An open transaction with one record in it.
    let node = coordinator(&mut a, A_TXN, 1).await;
    let mut tc = env.client(&env.a, "alice", Some(node)).await;
    let mut tc_node = node;
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(txid(A_TXN)))
        .with_transaction_timeout_ms(600_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        let resp: InitProducerIdResponse = tc.call(ApiKey::InitProducerId, 4, &init).await;
        if resp.error_code == 0 {
            break resp;
        }
        assert!(Instant::now() < deadline, "A InitProducerId: {resp:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The transaction coordinator may have moved (fresh pool).
        let node = coordinator(&mut a, A_TXN, 1).await;
        if node != tc_node {
            tc = env.client(&env.a, "alice", Some(node)).await;
            tc_node = node;
        }
    };
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txid(A_TXN))
        .with_v3_and_below_producer_id(pid.producer_id)
        .with_v3_and_below_producer_epoch(pid.producer_epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(tn(A_TXN_TOPIC))
                .with_partitions(vec![0]),
        ]);
    let resp: AddPartitionsToTxnResponse = tc.call(ApiKey::AddPartitionsToTxn, 3, &add).await;
    assert!(
        resp.results_by_topic_v3_and_below
            .iter()
            .all(|t| t.results_by_partition.iter().all(|p| p.partition_error_code == 0)),
        "A AddPartitionsToTxn: {resp:?}"
    );
    let txn_leader = md.topics[1].partitions[0].leader_id.0;
    let mut leader = env.client(&env.a, "alice", Some(txn_leader)).await;
    let produce = produce_by_name(A_TXN_TOPIC, 0, batch(&["in-flight"], Some((pid.producer_id.0, pid.producer_epoch))))
        .with_transactional_id(Some(txid(A_TXN)));
    let resp: ProduceResponse = leader.call(ApiKey::Produce, 9, &produce).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0, "A transactional produce: {resp:?}");

    let state = AState {
        data_id: data.topic_id,
        txn_topic_id: md.topics[1].topic_id,
        data_leaders,
        records,
        committed,
        txn_producer_id: pid.producer_id.0,
    };
    assert_a_intact(&state, "setup").await;
    state
}

fn offset_fetch(group: &str, topic: &str) -> OffsetFetchRequest {
    OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(gid(group)).with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopics::default()
                .with_name(tn(topic))
                .with_partition_indexes(vec![0, 1]),
        ])),
    ])
}

/// A still reads exactly its records, its group's offsets, its open transaction and its
/// topics under the same ids.
async fn assert_a_intact(s: &AState, after: &str) {
    let env = env();
    let mut a = env.client(&env.a, "alice", None).await;
    let md = wait_metadata(&mut a, &[A_DATA, A_TXN_TOPIC]).await;
    assert_eq!(md.topics[0].topic_id, s.data_id, "after {after}: A's topic id changed (deleted and recreated?)");
    assert_eq!(md.topics[1].topic_id, s.txn_topic_id, "after {after}");
    assert_eq!(md.topics[0].partitions.len(), 2, "after {after}: A's partition count changed");
    for (p, expected) in s.records.iter().enumerate() {
        let leader = md.topics[0]
            .partitions
            .iter()
            .find(|x| x.partition_index == p as i32)
            .map(|x| x.leader_id.0)
            .unwrap_or_else(|| panic!("after {after}: A's partition {p} is gone"));
        let mut lc = env.client(&env.a, "alice", Some(leader)).await;
        let req = fetch(vec![
            fetch_request::FetchTopic::default()
                .with_topic(tn(A_DATA))
                .with_partitions(vec![fetch_partition(p as i32)]),
        ]);
        let resp: FetchResponse = lc.call(ApiKey::Fetch, 12, &req).await;
        let part = &resp.responses[0].partitions[0];
        assert_eq!(part.error_code, 0, "after {after}: A fetch: {resp:?}");
        assert_eq!(&values_of(&part.records), expected, "after {after}: A's records of partition {p}");
        assert_eq!(
            part.high_watermark,
            expected.len() as i64,
            "after {after}: records were added to A's partition {p}"
        );
        assert_eq!(part.log_start_offset, 0, "after {after}: A's records were deleted");
    }
    let node = coordinator(&mut a, A_GROUP, 0).await;
    let mut coord = env.client(&env.a, "alice", Some(node)).await;
    let resp: OffsetFetchResponse = coord.call(ApiKey::OffsetFetch, 8, &offset_fetch(A_GROUP, A_DATA)).await;
    let group = &resp.groups[0];
    assert_eq!(group.error_code, 0, "after {after}: {resp:?}");
    let mut offsets: Vec<_> =
        group.topics[0].partitions.iter().map(|p| (p.partition_index, p.committed_offset)).collect();
    offsets.sort();
    assert_eq!(
        offsets.iter().map(|o| o.1).collect::<Vec<_>>(),
        s.committed,
        "after {after}: A's committed offsets changed"
    );

    let node = coordinator(&mut a, A_TXN, 1).await;
    let mut tc = env.client(&env.a, "alice", Some(node)).await;
    let resp: DescribeTransactionsResponse = tc
        .call(
            ApiKey::DescribeTransactions,
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![txid(A_TXN)]),
        )
        .await;
    let t = &resp.transaction_states[0];
    assert_eq!(
        t.error_code, 0,
        "after {after}: DescribeTransactions at node {node} (A's FindCoordinator answer): {resp:?}"
    );
    assert_eq!(t.transaction_state.as_str(), "Ongoing", "after {after}: A's transaction is no longer open: {resp:?}");
    assert_eq!(t.producer_id.0, s.txn_producer_id, "after {after}: A's transactional producer changed");
}

// ------------------------------------------------------------------ attacks

/// Names under which B might hope to reach A's resources called `base`.
fn hostile_names(env: &Env, base: &str) -> Vec<String> {
    let a = &env.a;
    vec![
        format!("{a}.{base}"),
        format!("{}.{a}.{base}", env.b),
        format!("..{a}.{base}"),
        format!("../{a}.{base}"),
        format!("{a}..{base}"),
    ]
}

fn special_names(env: &Env) -> Vec<String> {
    vec![
        "__consumer_offsets".into(),
        "__sluice_tenants".into(),
        "__transaction_state".into(),
        "__share_group_state".into(),
        "__cluster_metadata".into(),
        env.a.clone(),
        env.pool_prefix_a(),
        "..".into(),
        ".".into(),
        "a.b.c".into(),
    ]
}

/// Every name the attacks made B use (B may have created groups, transactional ids
/// and topics under them: they are B's own).
fn b_own_names(env: &Env) -> Vec<String> {
    let mut own = Vec::new();
    for base in [A_DATA, A_GROUP, A_TXN] {
        own.extend(hostile_names(env, base));
    }
    own.extend(special_names(env));
    own
}

#[tokio::test]
async fn b_reaches_nothing_of_a_by_topic_name() {
    let env = env();
    let s = a_state().await;
    let mut b = env.attacker(s, None).await;
    let mut names = hostile_names(env, A_DATA);
    names.extend(special_names(env));
    let all = strs(&names);

    // Metadata: nothing exists for B under these names, nothing is auto-created.
    let md: MetadataResponse = b.echo(&all).call(ApiKey::Metadata, 12, &metadata_by_names(&all)).await;
    assert_eq!(md.topics.len(), all.len(), "{md:?}");
    for t in &md.topics {
        assert!(
            matches!(t.error_code, UNKNOWN_TOPIC_OR_PARTITION | INVALID_TOPIC | TOPIC_AUTHORIZATION_FAILED),
            "B's Metadata for {:?}: {t:?}",
            t.name
        );
        assert!(t.partitions.is_empty() && t.topic_id.is_nil(), "{t:?}");
    }

    // Produce and Fetch (v12, by name) on every broker port.
    for node in [1, 2, 3] {
        let mut bn = env.attacker(s, Some(node)).await;
        for name in &all {
            let resp: ProduceResponse =
                bn.echo(&all).call(ApiKey::Produce, 9, &produce_by_name(name, 0, batch(&["from-b"], None))).await;
            let code = resp.responses[0].partition_responses[0].error_code;
            assert!(
                matches!(code, UNKNOWN_TOPIC_OR_PARTITION | INVALID_TOPIC | TOPIC_AUTHORIZATION_FAILED),
                "B's Produce to {name} via node {node}: {resp:?}"
            );
        }
        let topics = all
            .iter()
            .map(|n| {
                fetch_request::FetchTopic::default()
                    .with_topic(tn(n))
                    .with_partitions(vec![fetch_partition(0), fetch_partition(1)])
            })
            .collect();
        let resp: FetchResponse = bn.echo(&all).call(ApiKey::Fetch, 12, &fetch(topics)).await;
        for t in &resp.responses {
            for p in &t.partitions {
                assert_ne!(p.error_code, 0, "B's Fetch of {:?} via node {node}: {p:?}", t.topic);
                assert!(values_of(&p.records).is_empty());
            }
        }
    }
    assert_a_intact(s, "Produce/Fetch by name").await;

    let lo = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(
        all.iter()
            .map(|n| {
                list_offsets_request::ListOffsetsTopic::default().with_name(tn(n)).with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)
                        .with_current_leader_epoch(-1),
                ])
            })
            .collect(),
    );
    let resp: ListOffsetsResponse = b.echo(&all).call(ApiKey::ListOffsets, 7, &lo).await;
    for t in &resp.topics {
        for p in &t.partitions {
            assert_ne!(p.error_code, 0, "B's ListOffsets of {:?}: {p:?}", t.name);
        }
    }
    let dp = DescribeProducersRequest::default().with_topics(
        all.iter()
            .map(|n| {
                describe_producers_request::TopicRequest::default().with_name(tn(n)).with_partition_indexes(vec![0])
            })
            .collect(),
    );
    let resp: DescribeProducersResponse = b.echo(&all).call(ApiKey::DescribeProducers, 0, &dp).await;
    for t in &resp.topics {
        for p in &t.partitions {
            assert!(p.error_code != 0 && p.active_producers.is_empty(), "B's DescribeProducers of {:?}: {p:?}", t.name);
        }
    }

    // DescribeConfigs of A's topic under every name: no configs of A.
    let dc = DescribeConfigsRequest::default().with_resources(
        all.iter()
            .map(|n| {
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_string(n.to_string()))
            })
            .collect(),
    );
    let resp: DescribeConfigsResponse = b.echo(&all).call(ApiKey::DescribeConfigs, 4, &dc).await;
    for r in &resp.results {
        assert!(r.error_code != 0 && r.configs.is_empty(), "B's DescribeConfigs of {:?}: {r:?}", r.resource_name);
    }

    // Destructive: DeleteRecords, CreatePartitions, IncrementalAlterConfigs, DeleteTopics.
    let dr = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(
        all.iter()
            .map(|n| {
                delete_records_request::DeleteRecordsTopic::default().with_name(tn(n)).with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default().with_partition_index(0).with_offset(-1),
                ])
            })
            .collect(),
    );
    let resp: DeleteRecordsResponse = b.echo(&all).call(ApiKey::DeleteRecords, 2, &dr).await;
    for t in &resp.topics {
        for p in &t.partitions {
            assert_ne!(p.error_code, 0, "B's DeleteRecords of {:?}: {p:?}", t.name);
        }
    }
    let cp = CreatePartitionsRequest::default().with_timeout_ms(5000).with_topics(
        all.iter()
            .map(|n| create_partitions_request::CreatePartitionsTopic::default().with_name(tn(n)).with_count(5))
            .collect(),
    );
    let resp: CreatePartitionsResponse = b.echo(&all).call(ApiKey::CreatePartitions, 3, &cp).await;
    for r in &resp.results {
        assert_ne!(r.error_code, 0, "B's CreatePartitions of {:?}: {r:?}", r.name);
    }
    let iac = IncrementalAlterConfigsRequest::default().with_resources(
        all.iter()
            .map(|n| {
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_string(n.to_string()))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_static_str("1"))),
                    ])
            })
            .collect(),
    );
    let resp: IncrementalAlterConfigsResponse = b.echo(&all).call(ApiKey::IncrementalAlterConfigs, 1, &iac).await;
    for r in &resp.responses {
        assert_ne!(r.error_code, 0, "B's IncrementalAlterConfigs of {:?}: {r:?}", r.resource_name);
    }
    let dt = DeleteTopicsRequest::default().with_timeout_ms(5000).with_topics(
        all.iter().map(|n| delete_topics_request::DeleteTopicState::default().with_name(Some(tn(n)))).collect(),
    );
    let resp: DeleteTopicsResponse = b.echo(&all).call(ApiKey::DeleteTopics, 6, &dt).await;
    for r in &resp.responses {
        assert_ne!(r.error_code, 0, "B's DeleteTopics of {:?}: {r:?}", r.name);
    }
    assert_a_intact(s, "destructive topic APIs by name").await;
    assert!(b.checked >= 8, "the watch checked only {} answers", b.checked);
}

#[tokio::test]
async fn b_reaches_nothing_of_a_by_group_or_transactional_id() {
    let env = env();
    let s = a_state().await;
    let mut b = env.attacker(s, None).await;
    let mut groups = hostile_names(env, A_GROUP);
    groups.extend(special_names(env));
    let a_topic = format!("{}.{A_DATA}", env.a);
    let mut echo_names = groups.clone();
    echo_names.push(a_topic.clone());
    let all = strs(&groups);
    let echo = strs(&echo_names);

    for g in &all {
        let node = match try_coordinator(&mut b, g, 0).await {
            Ok(node) => node,
            Err(resp) => {
                // A name B may not use as a group is refused, never A's coordinator.
                assert!(resp.coordinators.iter().all(|c| c.node_id.0 < 0 && c.error_code != 0), "{resp:?}");
                1
            }
        };
        let mut bc = env.attacker(s, Some(node)).await;
        for topic in [A_DATA, a_topic.as_str()] {
            let resp: OffsetFetchResponse = bc.echo(&echo).call(ApiKey::OffsetFetch, 8, &offset_fetch(g, topic)).await;
            for grp in &resp.groups {
                for t in &grp.topics {
                    for p in &t.partitions {
                        assert_eq!(p.committed_offset, -1, "B's OffsetFetch of group {g} topic {topic}: {resp:?}");
                    }
                }
            }
        }
        let commit = OffsetCommitRequest::default()
            .with_group_id(gid(g))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default().with_name(tn(&a_topic)).with_partitions(
                    vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(0),
                    ],
                ),
            ]);
        let _: OffsetCommitResponse = bc.echo(&echo).call(ApiKey::OffsetCommit, 8, &commit).await;
        let join = JoinGroupRequest::default()
            .with_group_id(gid(g))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_static_str(""))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
            ]);
        let resp: JoinGroupResponse = bc.echo(&echo).call(ApiKey::JoinGroup, 7, &join).await;
        // Either refused or a fresh group of B's own: never A's members.
        assert!(resp.members.is_empty(), "B's JoinGroup {g}: {resp:?}");
        let leave = LeaveGroupRequest::default()
            .with_group_id(gid(g))
            .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(resp.member_id.clone())]);
        let _: LeaveGroupResponse = bc.echo(&echo).call(ApiKey::LeaveGroup, 4, &leave).await;
        let od = OffsetDeleteRequest::default().with_group_id(gid(g)).with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default().with_name(tn(A_DATA)).with_partitions(vec![
                offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0),
            ]),
        ]);
        let _: OffsetDeleteResponse = bc.echo(&echo).call(ApiKey::OffsetDelete, 0, &od).await;
    }
    let dg = DescribeGroupsRequest::default().with_groups(all.iter().map(|g| gid(g)).collect());
    let resp: DescribeGroupsResponse = b.echo(&echo).call(ApiKey::DescribeGroups, 5, &dg).await;
    for g in &resp.groups {
        assert!(g.members.is_empty(), "B's DescribeGroups: {g:?}");
    }
    let del = DeleteGroupsRequest::default().with_groups_names(all.iter().map(|g| gid(g)).collect());
    let _: DeleteGroupsResponse = b.echo(&echo).call(ApiKey::DeleteGroups, 2, &del).await;
    assert_a_intact(s, "group APIs by name").await;

    // Transactions: describe, abort with A's producer id, fence (InitProducerId), add partitions.
    let mut txns = hostile_names(env, A_TXN);
    txns.push(env.a.clone());
    let tall = strs(&txns);
    for t in &tall {
        let node = match try_coordinator(&mut b, t, 1).await {
            Ok(node) => node,
            Err(resp) => {
                assert!(resp.coordinators.iter().all(|c| c.node_id.0 < 0 && c.error_code != 0), "{resp:?}");
                1
            }
        };
        let mut bc = env.attacker(s, Some(node)).await;
        let resp: DescribeTransactionsResponse = bc
            .echo(&tall)
            .call(
                ApiKey::DescribeTransactions,
                0,
                &DescribeTransactionsRequest::default().with_transactional_ids(vec![txid(t)]),
            )
            .await;
        for x in &resp.transaction_states {
            assert!(
                // (Producer ids start at 0 on a fresh pool, so an error entry's default 0
                // says nothing; the state and topics would.)
                x.error_code != 0 && x.transaction_state.is_empty() && x.topics.is_empty(),
                "B's DescribeTransactions of {t} at its coordinator {node}: {x:?}"
            );
        }
        let end = EndTxnRequest::default()
            .with_transactional_id(txid(t))
            .with_producer_id(ProducerId(s.txn_producer_id))
            .with_producer_epoch(0)
            .with_committed(false);
        let resp: EndTxnResponse = bc.echo(&tall).call(ApiKey::EndTxn, 3, &end).await;
        assert_ne!(resp.error_code, 0, "B aborted something as {t}: {resp:?}");
        let add = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txid(t))
            .with_v3_and_below_producer_id(ProducerId(s.txn_producer_id))
            .with_v3_and_below_producer_epoch(0)
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(tn(A_TXN_TOPIC))
                    .with_partitions(vec![0]),
            ]);
        let _: AddPartitionsToTxnResponse = bc.echo(&tall).call(ApiKey::AddPartitionsToTxn, 3, &add).await;
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(txid(t)))
            .with_transaction_timeout_ms(10_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let resp: InitProducerIdResponse = bc.echo(&tall).call(ApiKey::InitProducerId, 4, &init).await;
        assert!(
            resp.error_code != 0 || resp.producer_id.0 != s.txn_producer_id,
            "B's InitProducerId {t} got A's producer: {resp:?}"
        );
    }
    assert_a_intact(s, "transaction APIs by id").await;
}

#[tokio::test]
async fn b_gets_unknown_topic_id_for_a_topic_ids() {
    let env = env();
    let s = a_state().await;
    let mut b = env.attacker(s, None).await;
    let ids = [s.data_id, s.txn_topic_id];

    // Metadata v12 by id.
    let md = MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(Some(
        ids.iter()
            .map(|id| metadata_request::MetadataRequestTopic::default().with_topic_id(*id).with_name(None))
            .collect(),
    ));
    let resp: MetadataResponse = b.echo_ids(&ids).call(ApiKey::Metadata, 12, &md).await;
    for t in &resp.topics {
        assert_eq!(t.error_code, UNKNOWN_TOPIC_ID, "B's Metadata by A's id: {t:?}");
        assert!(t.partitions.is_empty() && t.name.as_ref().is_none_or(|n| n.0.is_empty()), "{t:?}");
    }

    let max_fetch = b.version(ApiKey::Fetch, ApiKey::Fetch.valid_versions().max).await.unwrap_or(12);
    assert!(max_fetch >= 13, "gateway offers Fetch v{max_fetch} only");
    let produce_max = b.version(ApiKey::Produce, 13).await.unwrap_or(9);
    let share_fetch = b.version(ApiKey::ShareFetch, ApiKey::ShareFetch.valid_versions().max).await;
    eprintln!("by id: Fetch v13..=v{max_fetch}, Produce v{produce_max}, ShareFetch {share_fetch:?}");
    for node in [1, 2, 3] {
        let mut bn = env.attacker(s, Some(node)).await;
        for v in 13..=max_fetch {
            let topics = ids
                .iter()
                .map(|id| {
                    fetch_request::FetchTopic::default()
                        .with_topic_id(*id)
                        .with_partitions(vec![fetch_partition(0), fetch_partition(1)])
                })
                .collect();
            let resp: FetchResponse = bn.echo_ids(&ids).call(ApiKey::Fetch, v, &fetch(topics)).await;
            if resp.error_code != UNKNOWN_TOPIC_ID {
                assert_eq!(resp.error_code, 0, "B's Fetch v{v} by A's ids: {resp:?}");
                for t in &resp.responses {
                    for p in &t.partitions {
                        assert_eq!(p.error_code, UNKNOWN_TOPIC_ID, "B's Fetch v{v} by id via node {node}: {resp:?}");
                        assert!(values_of(&p.records).is_empty() && p.high_watermark <= 0, "{p:?}");
                    }
                }
            }
        }
        if produce_max >= 13 {
            let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(
                ids.iter()
                    .map(|id| {
                        produce_request::TopicProduceData::default().with_topic_id(*id).with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch(&["b-by-id"], None))),
                        ])
                    })
                    .collect(),
            );
            let resp: ProduceResponse = bn.echo_ids(&ids).call(ApiKey::Produce, produce_max, &req).await;
            assert_eq!(resp.responses.len(), 2, "{resp:?}");
            for t in &resp.responses {
                for p in &t.partition_responses {
                    assert_eq!(
                        p.error_code, UNKNOWN_TOPIC_ID,
                        "B's Produce v{produce_max} by A's id via node {node}: {resp:?}"
                    );
                }
            }
        }
        if let Some(v) = share_fetch {
            let req = ShareFetchRequest::default()
                .with_group_id(Some(gid("b-share")))
                .with_member_id(Some(StrBytes::from_string(random_uuid().to_string())))
                .with_share_session_epoch(0)
                .with_max_wait_ms(100)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_max_records(100)
                .with_batch_size(100)
                .with_topics(
                    ids.iter()
                        .map(|id| {
                            share_fetch_request::FetchTopic::default().with_topic_id(*id).with_partitions(vec![
                                share_fetch_request::FetchPartition::default()
                                    .with_partition_index(0)
                                    .with_partition_max_bytes(1 << 20),
                            ])
                        })
                        .collect(),
                );
            let resp: ShareFetchResponse = bn.echo_ids(&ids).call(ApiKey::ShareFetch, v, &req).await;
            for t in &resp.responses {
                for p in &t.partitions {
                    assert!(
                        p.error_code != 0 && values_of(&p.records).is_empty(),
                        "B's ShareFetch v{v} by A's id: {resp:?}"
                    );
                }
            }
        }
    }

    // DeleteTopics by id.
    let dt = DeleteTopicsRequest::default().with_timeout_ms(5000).with_topics(
        ids.iter()
            .map(|id| delete_topics_request::DeleteTopicState::default().with_name(None).with_topic_id(*id))
            .collect(),
    );
    let resp: DeleteTopicsResponse = b.echo_ids(&ids).call(ApiKey::DeleteTopics, 6, &dt).await;
    assert_eq!(resp.responses.len(), 2, "{resp:?}");
    for r in &resp.responses {
        assert_eq!(r.error_code, UNKNOWN_TOPIC_ID, "B's DeleteTopics by A's id: {r:?}");
    }
    // A random id is answered the same way: nothing tells A's ids from unknown ones.
    let dt = DeleteTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
        delete_topics_request::DeleteTopicState::default().with_name(None).with_topic_id(random_uuid()),
    ]);
    let random: DeleteTopicsResponse = b.call(ApiKey::DeleteTopics, 6, &dt).await;
    assert_eq!(random.responses[0].error_code, UNKNOWN_TOPIC_ID);
    assert_eq!(
        random.responses[0].error_message, resp.responses[0].error_message,
        "A's id answered differently from a random id"
    );
    assert_a_intact(s, "topic id attacks").await;
}

#[tokio::test]
async fn listings_show_nothing_of_other_tenants() {
    let env = env();
    let s = a_state().await;
    let mut b = env.attacker(s, None).await;
    // B has a topic of its own, so the listings are not trivially empty.
    let create = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(tn("b-own"))
            .with_num_partitions(1)
            .with_replication_factor(-1),
    ]);
    let resp: CreateTopicsResponse = b.call(ApiKey::CreateTopics, 7, &create).await;
    assert!(matches!(resp.topics[0].error_code, 0 | 36), "{resp:?}");
    wait_metadata(&mut b, &["b-own"]).await;

    for v in [4i16, 9, 12] {
        let resp: MetadataResponse = b.call(ApiKey::Metadata, v, &MetadataRequest::default().with_topics(None)).await;
        let names: Vec<_> = resp.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect();
        // B's own topics (other tests of this binary make some too), nothing of A's.
        assert!(names.contains(&"b-own".to_owned()), "B's all-topics Metadata v{v}: {names:?}");
        assert!(
            names.iter().all(|n| n != A_DATA && n != A_TXN_TOPIC && !n.contains('.') && !n.starts_with("__")),
            "B's all-topics Metadata v{v}: {names:?}"
        );
    }
    let resp: MetadataResponse =
        b.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(vec![]))).await;
    assert!(resp.topics.is_empty(), "{resp:?}");

    if let Some(v) = b.version(ApiKey::DescribeTopicPartitions, 0).await {
        let cursors = [
            None,
            Some(env.pool_prefix_a() + A_DATA),
            Some(A_DATA.to_owned()),
            Some(String::new()),
            Some("__consumer_offsets".to_owned()),
            Some(env.a.clone()),
        ];
        for cursor in cursors {
            let mut req =
                DescribeTopicPartitionsRequest::default().with_response_partition_limit(2000).with_topics(vec![]);
            if let Some(c) = &cursor {
                req = req.with_cursor(Some(
                    describe_topic_partitions_request::Cursor::default().with_topic_name(tn(c)).with_partition_index(0),
                ));
            }
            let echo: Vec<String> = cursor.iter().cloned().collect();
            let resp: DescribeTopicPartitionsResponse =
                b.echo(&strs(&echo)).call(ApiKey::DescribeTopicPartitions, v, &req).await;
            for t in &resp.topics {
                let name = t.name.as_ref().map(|n| n.0.as_str()).unwrap_or("");
                assert!(
                    name != A_DATA && name != A_TXN_TOPIC && !name.contains('.') && !name.is_empty(),
                    "cursor {cursor:?}: {resp:?}"
                );
            }
            if cursor.is_none() {
                assert!(
                    resp.topics.iter().any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "b-own")),
                    "{resp:?}"
                );
            }
            assert!(
                resp.next_cursor.as_ref().is_none_or(|c| !c.topic_name.0.contains('.')),
                "cursor {cursor:?}: next cursor {resp:?}"
            );
        }
        let names = [env.pool_prefix_a() + A_DATA, A_DATA.to_owned()];
        let req = DescribeTopicPartitionsRequest::default().with_response_partition_limit(2000).with_topics(
            names.iter().map(|n| describe_topic_partitions_request::TopicRequest::default().with_name(tn(n))).collect(),
        );
        let resp: DescribeTopicPartitionsResponse =
            b.echo(&strs(&names)).call(ApiKey::DescribeTopicPartitions, v, &req).await;
        for t in &resp.topics {
            assert!(t.error_code != 0 && t.partitions.is_empty() && t.topic_id.is_nil(), "{t:?}");
        }
    }

    // B's own groups and transactional ids from the other tests are named after A (that
    // was the attack); they are B's, so the listings may show them.
    let own = b_own_names(env);
    let own_names = strs(&own);
    let a_group_pool = format!("{}{A_GROUP}", env.pool_prefix_a());
    // Listings are per broker: ask every one (as admin clients do).
    let lt_max = b.version(ApiKey::ListTransactions, 2).await.unwrap_or(0);
    for node in [1, 2, 3] {
        let mut bn = env.attacker(s, Some(node)).await;
        for v in [4i16, 5] {
            if bn.version(ApiKey::ListGroups, v).await != Some(v) {
                continue;
            }
            let resp: ListGroupsResponse =
                bn.echo(&own_names).call(ApiKey::ListGroups, v, &ListGroupsRequest::default()).await;
            for g in &resp.groups {
                let name = g.group_id.0.as_str();
                // A's `grp` would show as `grp` (mis-stripped) or with A's prefix; B's own
                // group of that name exists only if the group attack made it.
                assert!(name != A_GROUP, "B's ListGroups v{v} on node {node} shows {g:?}");
                assert!(
                    !name.contains('.') || own.iter().any(|o| o == name),
                    "B's ListGroups v{v} on node {node} shows {g:?}"
                );
                if name == a_group_pool {
                    assert_ne!(g.group_state.as_str(), "Stable", "{g:?}");
                }
            }
        }
        let resp: ListTransactionsResponse =
            bn.echo(&own_names).call(ApiKey::ListTransactions, 0, &ListTransactionsRequest::default()).await;
        assert!(resp.transaction_states.iter().all(|t| t.producer_id.0 != s.txn_producer_id), "node {node}: {resp:?}");
        if lt_max >= 2 {
            let a_pattern = format!("{}.*", env.a);
            for pattern in [".*", a_pattern.as_str(), "(?s).*", ".*\\..*", "iso-.*"] {
                let lt = ListTransactionsRequest::default()
                    .with_transactional_id_pattern(Some(StrBytes::from_string(pattern.to_owned())));
                let echo: Vec<&str> = own_names.iter().copied().chain([pattern]).collect();
                let resp: ListTransactionsResponse = bn.echo(&echo).call(ApiKey::ListTransactions, lt_max, &lt).await;
                assert!(
                    resp.transaction_states.iter().all(|t| t.producer_id.0 != s.txn_producer_id),
                    "ListTransactions pattern {pattern} on node {node}: {resp:?}"
                );
            }
        }
    }
    let resp: DescribeClusterResponse = b.call(ApiKey::DescribeCluster, 1, &DescribeClusterRequest::default()).await;
    assert!(resp.brokers.iter().all(|br| br.host.as_str() == "127.0.0.1"), "{resp:?}");
    assert_a_intact(s, "listings").await;
}

/// Metadata v0–v3 (old clients) for all topics: B's own topic only. v0 has no
/// "all topics" null, so it asks by name.
#[tokio::test]
async fn old_metadata_versions_show_nothing_of_other_tenants() {
    let env = env();
    let s = a_state().await;
    let mut b = env.attacker(s, None).await;
    let create = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(tn("b-old"))
            .with_num_partitions(1)
            .with_replication_factor(-1),
    ]);
    let resp: CreateTopicsResponse = b.call(ApiKey::CreateTopics, 7, &create).await;
    assert!(matches!(resp.topics[0].error_code, 0 | 36), "{resp:?}");
    wait_metadata(&mut b, &["b-old"]).await;
    for v in [1i16, 2, 3] {
        // A fresh connection may reach a broker whose metadata cache has not seen
        // b-old yet (propagation is eventual): retry for it, but every answer must
        // be free of other tenants' names.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut bv = env.attacker(s, None).await;
            let resp: MetadataResponse =
                bv.call(ApiKey::Metadata, v, &MetadataRequest::default().with_topics(None)).await;
            let names: Vec<_> = resp.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect();
            assert!(names.iter().all(|n| !n.contains('.')), "B's Metadata v{v}: {names:?}");
            if names.contains(&"b-old".to_owned()) {
                break;
            }
            assert!(Instant::now() < deadline, "B's Metadata v{v} never showed b-old: {names:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let a_name = env.pool_prefix_a() + A_DATA;
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(tn("b-old"))),
        metadata_request::MetadataRequestTopic::default().with_name(Some(tn(&a_name))),
    ]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut bv = env.attacker(s, None).await;
        let resp: MetadataResponse = bv.echo(&[&a_name]).call(ApiKey::Metadata, 0, &req).await;
        let mut own_seen = false;
        for t in &resp.topics {
            let own = t.name.as_ref().is_some_and(|n| n.0.as_str() == "b-old");
            assert!(own || t.error_code != 0, "B's Metadata v0 answered A's topic: {t:?}");
            own_seen |= own && t.error_code == 0;
        }
        if own_seen {
            break;
        }
        assert!(Instant::now() < deadline, "B's Metadata v0 never showed b-old: {resp:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Requests that make the brokers write error messages naming B's (pool) resources: the
/// messages reach B scrubbed (no pool prefix, no other tenant, no pool address).
#[tokio::test]
async fn broker_error_messages_are_scrubbed() {
    let env = env();
    let s = a_state().await;
    let mut b = env.attacker(s, None).await;
    let topic = format!("msg-{}", rand_hex8());
    let create = |partitions: i32, rf: i16, configs: Vec<(&str, &str)>| {
        CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(tn(&topic))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(k, v)| {
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.to_owned()))
                                .with_value(Some(StrBytes::from_string(v.to_owned())))
                        })
                        .collect(),
                ),
        ])
    };
    let resp: CreateTopicsResponse = b.call(ApiKey::CreateTopics, 7, &create(1, -1, vec![])).await;
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
    wait_metadata(&mut b, &[&topic]).await;
    let mut messages = Vec::new();
    // Already exists: Kafka's message names the topic.
    let resp: CreateTopicsResponse = b.call(ApiKey::CreateTopics, 7, &create(1, -1, vec![])).await;
    assert_eq!(resp.topics[0].error_code, 36, "{resp:?}");
    messages.push(("CreateTopics exists", resp.topics[0].error_message.clone()));
    let resp: CreateTopicsResponse = b.call(ApiKey::CreateTopics, 7, &create(1, 1000, vec![])).await;
    messages.push(("CreateTopics replication", resp.topics[0].error_message.clone()));
    // Fewer partitions than the topic has.
    let cp = CreatePartitionsRequest::default().with_timeout_ms(5000).with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default().with_name(tn(&topic)).with_count(1),
    ]);
    let resp: CreatePartitionsResponse = b.call(ApiKey::CreatePartitions, 3, &cp).await;
    assert_ne!(resp.results[0].error_code, 0, "{resp:?}");
    messages.push(("CreatePartitions", resp.results[0].error_message.clone()));
    // A config value the broker rejects.
    let iac = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("not-a-number"))),
            ]),
    ]);
    let resp: IncrementalAlterConfigsResponse = b.call(ApiKey::IncrementalAlterConfigs, 1, &iac).await;
    assert_ne!(resp.responses[0].error_code, 0, "{resp:?}");
    messages.push(("IncrementalAlterConfigs", resp.responses[0].error_message.clone()));
    let dt = DeleteTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
        delete_topics_request::DeleteTopicState::default().with_name(Some(tn(&format!("{topic}-missing")))),
    ]);
    let resp: DeleteTopicsResponse = b.call(ApiKey::DeleteTopics, 6, &dt).await;
    messages.push(("DeleteTopics missing", resp.responses[0].error_message.clone()));
    let with_text: Vec<_> = messages.iter().filter(|(_, m)| m.as_ref().is_some_and(|m| !m.is_empty())).collect();
    assert!(!with_text.is_empty(), "no broker message reached B at all: {messages:?}");
    for (what, m) in &messages {
        let m = m.as_ref().map(|m| m.as_str()).unwrap_or("");
        for bad in [env.a.as_str(), "iso-a", env.b.as_str(), "2909", "__consumer_offsets"] {
            assert!(!m.contains(bad), "{what}: message reveals {bad:?}: {m:?}");
        }
    }
    eprintln!("broker messages B saw: {messages:?}");
    assert!(b.checked >= 6);
}

#[tokio::test]
async fn cluster_resources_are_refused_to_tenants() {
    let env = env();
    let s = a_state().await;
    let mut b = env.attacker(s, None).await;
    let dc = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1")),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("")),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(8)
            .with_resource_name(StrBytes::from_static_str("1")),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("b-cfg-missing")),
    ]);
    let resp: DescribeConfigsResponse = b.call(ApiKey::DescribeConfigs, 4, &dc).await;
    assert_eq!(resp.results.len(), 4, "{resp:?}");
    for r in &resp.results {
        if r.resource_type == 2 {
            assert_eq!(r.error_code, UNKNOWN_TOPIC_OR_PARTITION, "a missing topic of B's own: {resp:?}");
        } else {
            let what = (r.resource_type, r.resource_name.as_str());
            assert_eq!(
                r.error_code, CLUSTER_AUTHORIZATION_FAILED,
                "B's DescribeConfigs of broker resource {what:?}: {r:?}"
            );
        }
        assert!(r.configs.is_empty());
    }
    let types: Vec<_> = resp.results.iter().map(|r| r.resource_type).collect();
    assert_eq!(types.iter().filter(|t| **t == 4).count(), 2, "{resp:?}");
    let iac = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("log.retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("1"))),
            ]),
    ]);
    let resp: IncrementalAlterConfigsResponse = b.call(ApiKey::IncrementalAlterConfigs, 1, &iac).await;
    assert_eq!(resp.responses[0].error_code, CLUSTER_AUTHORIZATION_FAILED, "{resp:?}");
    assert_a_intact(s, "broker configs").await;
}

#[tokio::test]
async fn a_stolen_fetch_session_is_refused() {
    let env = env();
    let s = a_state().await;
    let leader = s.data_leaders[0];
    let mut a = env.client(&env.a, "alice", Some(leader)).await;
    // A full fetch with epoch 0 creates a session on the leader.
    let mut req = fetch(vec![
        fetch_request::FetchTopic::default().with_topic_id(s.data_id).with_partitions(vec![fetch_partition(0)]),
    ]);
    req.session_id = 0;
    req.session_epoch = 0;
    let resp: FetchResponse = a.call(ApiKey::Fetch, 13, &req).await;
    assert_eq!(resp.error_code, 0, "{resp:?}");
    assert_eq!(values_of(&resp.responses[0].partitions[0].records), s.records[0], "A's session fetch");
    let session = resp.session_id;
    assert_ne!(session, 0, "the broker created no fetch session for A");

    let mut b = env.attacker(s, Some(leader)).await;
    for (id, epoch) in [(session, 1), (session, 0), (session.wrapping_add(1), 1), (1, 1)] {
        let mut steal = fetch(vec![]);
        steal.session_id = id;
        steal.session_epoch = epoch;
        let resp: FetchResponse = b.call(ApiKey::Fetch, 13, &steal).await;
        if epoch > 0 {
            assert_eq!(
                resp.error_code, FETCH_SESSION_ID_NOT_FOUND,
                "B's Fetch with session {id} epoch {epoch} (A's is {session}): {resp:?}"
            );
        } else {
            // Epoch 0 means "close that session, open a new one" (KIP-227), which clients
            // send after a reconnect: the gateway opens a fresh session instead and never
            // passes the other connection's id on.
            assert!(
                resp.error_code == 0 && resp.session_id != session,
                "B's Fetch with session {id} epoch 0 must become a new session (A's is {session}): {resp:?}"
            );
        }
        assert!(
            resp.responses.iter().all(|t| t.partitions.iter().all(|p| values_of(&p.records).is_empty())),
            "B got records through session {id}: {resp:?}"
        );
        // Forgetting A's partition through the stolen session is refused too.
        let mut forget = fetch(vec![]);
        forget.session_id = id;
        forget.session_epoch = 1;
        forget.forgotten_topics_data =
            vec![fetch_request::ForgottenTopic::default().with_topic_id(s.data_id).with_partitions(vec![0])];
        let resp: FetchResponse = b.call(ApiKey::Fetch, 13, &forget).await;
        assert_ne!(resp.error_code, 0, "B's forget through session {id}: {resp:?}");
    }
    // A's session still works for A (incremental, next epoch), and still holds its partition.
    let mut next = fetch(vec![]);
    next.session_id = session;
    next.session_epoch = 1;
    next.max_wait_ms = 10;
    let resp: FetchResponse = a.call(ApiKey::Fetch, 13, &next).await;
    assert_eq!((resp.error_code, resp.session_id), (0, session), "A's own session after B's attempts: {resp:?}");
    assert_a_intact(s, "fetch session theft").await;
}

#[tokio::test]
async fn narrowed_principal_gets_per_resource_errors_and_mixed_requests_split() {
    let env = env();
    let s = a_state().await;
    // B's allow-all principal makes the topics the narrow principal is tested against.
    let mut admin = env.attacker(s, None).await;
    let tag = rand_hex8();
    let orders = format!("orders-{tag}");
    let orders_east = format!("orders-east-{tag}");
    let payments = format!("payments-{tag}");
    let create = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(
        [&orders_east, &payments]
            .iter()
            .map(|n| {
                create_topics_request::CreatableTopic::default()
                    .with_name(tn(n))
                    .with_num_partitions(1)
                    .with_replication_factor(-1)
            })
            .collect(),
    );
    let resp: CreateTopicsResponse = admin.call(ApiKey::CreateTopics, 7, &create).await;
    assert!(resp.topics.iter().all(|t| t.error_code == 0), "{resp:?}");

    let token = env.token(&env.b, "narrow-user", None);
    let mut n = env.client_with(&token, None, "narrow").await;
    n.watch = Some(Watch::new(env, s));

    // Mixed CreateTopics: orders-* allowed, payments-* denied.
    let other = format!("payments-new-{tag}");
    let create = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(
        [&orders, &other]
            .iter()
            .map(|n| {
                create_topics_request::CreatableTopic::default()
                    .with_name(tn(n))
                    .with_num_partitions(1)
                    .with_replication_factor(-1)
            })
            .collect(),
    );
    let resp: CreateTopicsResponse = n.call(ApiKey::CreateTopics, 7, &create).await;
    let by_name: BTreeMap<_, _> = resp.topics.iter().map(|t| (t.name.0.to_string(), t.error_code)).collect();
    assert_eq!(by_name.get(&orders), Some(&0), "narrow CreateTopics: {resp:?}");
    assert_eq!(by_name.get(&other), Some(&TOPIC_AUTHORIZATION_FAILED), "narrow CreateTopics: {resp:?}");

    // Mixed Metadata: request order kept, the denied topic answered per topic.
    let md = wait_metadata(&mut admin, &[&orders, &orders_east, &payments]).await;
    let mut resp: MetadataResponse =
        n.call(ApiKey::Metadata, 12, &metadata_by_names(&[&orders, &payments, &orders_east])).await;
    // The broker behind this connection may learn of the new topic a moment later.
    for _ in 0..100 {
        if resp.topics.iter().all(|t| t.error_code != UNKNOWN_TOPIC_OR_PARTITION) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        resp = n.call(ApiKey::Metadata, 12, &metadata_by_names(&[&orders, &payments, &orders_east])).await;
    }
    // Kafka itself lists unauthorized topics after the others, so only the set is compared.
    let got: BTreeMap<_, _> = resp
        .topics
        .iter()
        .map(|t| (t.name.as_ref().map(|x| x.0.to_string()).unwrap_or_default(), t.error_code))
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([(orders.clone(), 0), (payments.clone(), TOPIC_AUTHORIZATION_FAILED), (orders_east.clone(), 0)]),
        "narrow Metadata: {resp:?}"
    );
    for t in resp.topics.iter().filter(|t| t.error_code != 0) {
        assert!(t.partitions.is_empty() && t.topic_id.is_nil(), "a denied topic reveals its partitions or id: {t:?}");
    }
    // All-topics Metadata omits what the principal may not describe.
    let resp: MetadataResponse = n.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    let names: Vec<_> = resp.topics.iter().filter_map(|t| t.name.as_ref().map(|x| x.0.to_string())).collect();
    assert!(names.contains(&orders) && !names.contains(&payments), "narrow all-topics Metadata: {names:?}");

    // Mixed Produce: orders-east allowed, payments denied.
    let leader_of = |name: &str| {
        md.topics
            .iter()
            .find(|t| t.name.as_ref().map(|x| x.0.as_str()) == Some(name))
            .map(|t| t.partitions[0].leader_id.0)
            .unwrap_or(1)
    };
    for target in [&orders_east, &payments] {
        let mut nl = env.client_with(&token, Some(leader_of(target)), "narrow").await;
        nl.watch = Some(Watch::new(env, s));
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(
            [&orders_east, &payments]
                .iter()
                .map(|t| {
                    produce_request::TopicProduceData::default().with_name(tn(t)).with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(&["narrow"], None))),
                    ])
                })
                .collect(),
        );
        let resp: ProduceResponse = nl.call(ApiKey::Produce, 9, &req).await;
        let codes: BTreeMap<_, _> =
            resp.responses.iter().map(|t| (t.name.0.to_string(), t.partition_responses[0].error_code)).collect();
        assert_eq!(codes.get(payments.as_str()), Some(&TOPIC_AUTHORIZATION_FAILED), "narrow Produce: {resp:?}");
        let allowed = codes.get(orders_east.as_str()).copied();
        if *target == orders_east {
            assert_eq!(allowed, Some(0), "the allowed part of a mixed Produce must succeed: {resp:?}");
        } else {
            // On payments' leader the allowed topic may have another leader.
            assert!(matches!(allowed, Some(0 | 6)), "narrow Produce: {resp:?}");
        }
    }

    // Groups and transactional ids are outside the narrow policy.
    let resp: FindCoordinatorResponse = n
        .call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
        )
        .await;
    assert_eq!(resp.coordinators[0].error_code, GROUP_AUTHORIZATION_FAILED, "{resp:?}");
    let resp: OffsetFetchResponse = n.call(ApiKey::OffsetFetch, 8, &offset_fetch("g", &orders)).await;
    assert_eq!(resp.groups[0].error_code, GROUP_AUTHORIZATION_FAILED, "{resp:?}");
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(txid("t")))
        .with_transaction_timeout_ms(10_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp: InitProducerIdResponse = n.call(ApiKey::InitProducerId, 4, &init).await;
    assert_eq!(resp.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "{resp:?}");
    let resp: DescribeTransactionsResponse = n
        .call(
            ApiKey::DescribeTransactions,
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![txid("t")]),
        )
        .await;
    assert_eq!(resp.transaction_states[0].error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "{resp:?}");
    let resp: DeleteTopicsResponse = n
        .call(
            ApiKey::DeleteTopics,
            6,
            &DeleteTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![delete_topics_request::DeleteTopicState::default().with_name(Some(tn(&orders)))]),
        )
        .await;
    assert_eq!(resp.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED, "{resp:?}");
    let resp: DescribeConfigsResponse = n
        .call(
            ApiKey::DescribeConfigs,
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("1")),
            ]),
        )
        .await;
    assert_eq!(resp.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED, "{resp:?}");

    // A session policy narrows further: DescribeTopic on orders-east* only.
    let session = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kafka-cluster:Connect"], "Resource": ["*"]},
        {"Effect": "Allow", "Action": ["kafka-cluster:DescribeTopic"], "Resource": [format!("arn:sluice:kafka:::topic/{}/orders-east*", env.b)]}]});
    let token = env.token(&env.b, "narrow-user", Some(session));
    let mut ns = env.client_with(&token, None, "narrow-session").await;
    ns.watch = Some(Watch::new(env, s));
    let resp: MetadataResponse =
        ns.call(ApiKey::Metadata, 12, &metadata_by_names(&[&orders, &orders_east, &payments])).await;
    let got: BTreeMap<_, _> = resp
        .topics
        .iter()
        .map(|t| (t.name.as_ref().map(|x| x.0.to_string()).unwrap_or_default(), t.error_code))
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([
            (orders.clone(), TOPIC_AUTHORIZATION_FAILED),
            (orders_east.clone(), 0),
            (payments.clone(), TOPIC_AUTHORIZATION_FAILED)
        ]),
        "session-narrowed Metadata: {resp:?}"
    );
    let mut nsl = env.client_with(&token, Some(leader_of(&orders_east)), "narrow-session").await;
    let resp: ProduceResponse =
        nsl.call(ApiKey::Produce, 9, &produce_by_name(&orders_east, 0, batch(&["x"], None))).await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, TOPIC_AUTHORIZATION_FAILED,
        "WriteData is outside the session policy: {resp:?}"
    );
    let resp: CreateTopicsResponse = ns
        .call(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(tn(&format!("orders-east-2-{tag}")))
                    .with_num_partitions(1)
                    .with_replication_factor(-1),
            ]),
        )
        .await;
    assert_eq!(
        resp.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED,
        "CreateTopic is outside the session policy: {resp:?}"
    );
    assert_a_intact(s, "narrow principal").await;
}

#[tokio::test]
async fn client_ids_reach_the_pool_with_the_tenant_prefix() {
    let env = env();
    let s = a_state().await;
    let group = format!("cid-{}", rand_hex8());
    let mut a = env.client(&env.a, "alice", None).await;
    let node = coordinator(&mut a, &group, 0).await;
    let token = env.token(&env.a, "alice", None);
    let mut member = env.client_with(&token, Some(node), "my-app").await;
    let join = |member_id: StrBytes| {
        JoinGroupRequest::default()
            .with_group_id(gid(&group))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(member_id)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
            ])
    };
    let first: JoinGroupResponse = member.call(ApiKey::JoinGroup, 7, &join(StrBytes::from_static_str(""))).await;
    let joined: JoinGroupResponse = if first.error_code == 79 {
        member.call(ApiKey::JoinGroup, 7, &join(first.member_id.clone())).await
    } else {
        first
    };
    assert_eq!(joined.error_code, 0, "{joined:?}");

    // Seen from the pool directly: the member's client id carries the tenant.
    let direct = |addr: String| async move {
        Client {
            stream: TcpStream::connect(addr.as_str()).await.unwrap(),
            next_corr: 1,
            client_id: "isolation-direct",
            watch: None,
            echo: vec![],
            checked: 0,
        }
    };
    let pool_group = format!("{}.{group}", env.a);
    let mut d = direct(pool_bootstrap()[0].clone()).await;
    let resp: FindCoordinatorResponse = d
        .call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![StrBytes::from_string(pool_group.clone())]),
        )
        .await;
    let c = &resp.coordinators[0];
    let coordinator = format!("{}:{}", c.host.as_str(), c.port);
    let mut d = direct(coordinator.clone()).await;
    let resp: DescribeGroupsResponse =
        d.call(ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![gid(&pool_group)])).await;
    let mut resp = resp;
    // The coordinator may answer Dead for a moment after the join returned.
    for _ in 0..50 {
        if !resp.groups[0].members.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        resp = d
            .call(ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![gid(&pool_group)]))
            .await;
    }
    let members: Vec<_> = resp.groups[0].members.iter().map(|m| m.client_id.to_string()).collect();
    if members.is_empty() {
        let mut seen = Vec::new();
        for addr in pool_bootstrap() {
            let mut d = direct(addr.clone()).await;
            let r: DescribeGroupsResponse = d
                .call(
                    ApiKey::DescribeGroups,
                    5,
                    &DescribeGroupsRequest::default().with_groups(vec![gid(&pool_group), gid(&group)]),
                )
                .await;
            seen.push(format!("{addr}: {r:?}"));
        }
        panic!(
            "pool view of A's group at {coordinator}: {resp:?}\njoined: {joined:?}\nevery broker:\n{}",
            seen.join("\n")
        );
    }
    assert_eq!(members, vec![format!("{}.my-app", env.a)], "pool view of A's group: {resp:?}");

    // A sees its group under its own name; B sees neither the group nor the member.
    let resp: DescribeGroupsResponse =
        member.call(ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![gid(&group)])).await;
    assert_eq!(resp.groups[0].group_id.0.as_str(), group, "{resp:?}");
    assert_eq!(resp.groups[0].members.len(), 1, "{resp:?}");
    let mut b = env.attacker(s, None).await;
    let own = b_own_names(env);
    for node in [1, 2, 3] {
        let mut bn = env.attacker(s, Some(node)).await;
        let resp: ListGroupsResponse =
            bn.echo(&strs(&own)).call(ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
        assert!(resp.groups.iter().all(|g| g.group_id.0.as_str() != group), "{resp:?}");
    }
    let resp: DescribeGroupsResponse =
        b.call(ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![gid(&group)])).await;
    assert!(resp.groups.iter().all(|g| g.members.is_empty()), "B describes A's group: {resp:?}");
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid(&group))
        .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(joined.member_id.clone())]);
    let _: LeaveGroupResponse = member.call(ApiKey::LeaveGroup, 4, &leave).await;
}
