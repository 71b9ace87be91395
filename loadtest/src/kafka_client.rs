//! Runs a [`ScenarioSpec`] with a real Kafka client (librdkafka, via `rdkafka`)
//! against one endpoint: the pool directly, sluice (SASL/PLAIN with a token per
//! tenant), or a peer proxy. One OS thread per client; every client is connected
//! (metadata fetched, so authenticated) before the measured run starts, except in the
//! storm scenarios, where connecting is what is measured.
//!
//! Runs are bounded: each group stops at `duration_s` or after `max_records`
//! records (storm cycles), whichever comes first, and the final flush waits at most
//! [`FLUSH_TIMEOUT`]. Only loopback endpoints are accepted.
//!
//! Latency: producers record send-to-ack time, measured from the *intended* send time
//! when paced (so a slow endpoint cannot hide its backlog: no coordinated omission);
//! tailing consumers record end-to-end time from the send timestamp in the first 8
//! payload bytes; storms record the whole connect cycle.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::latency::{merge_into, RoleLog};
use crate::scenario::{ClientGroup, Kind, ScenarioSpec};

/// Longest wait for the last acks once a producer stops sending.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a client's first metadata (and authentication).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Records a producer may have queued and unacknowledged: bounds memory and the
/// client-side queueing that max-rate latency is made of.
const QUEUE_MAX_MESSAGES: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("endpoint {0} is not on loopback (benchmarks only send to 127.0.0.0/8)")]
    NotLoopback(String),
    #[error("{what}: {source}")]
    Kafka { what: String, source: KafkaError },
    #[error("client {client} of group {role} could not start: {message}")]
    Setup {
        role: &'static str,
        client: u32,
        message: String,
    },
    #[error("a client thread panicked")]
    Panicked,
    #[error("no credentials for tenant {0}")]
    NoCredentials(u32),
    #[error("spawning a client thread: {0}")]
    Spawn(std::io::Error),
}

/// Where the clients connect and how they authenticate.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `direct`, `sluice` or the peer's name.
    pub name: String,
    pub bootstrap: String,
    /// SASL/PLAIN `(user, password)` per tenant; `None` = PLAINTEXT, no auth.
    pub sasl: Option<Vec<(String, String)>>,
    /// Whether the endpoint maps tenant names (sluice): clients name a topic without
    /// the `<tenant>.` prefix that it has in the pool.
    pub tenant_names: bool,
}

/// The pool topics of a run: `<tenant>.<base>` for each tenant.
#[derive(Debug, Clone)]
pub struct Topics {
    pub tenants: Vec<String>,
    pub base: String,
}

impl Topics {
    /// The topic's name in the pool.
    pub fn pool_name(&self, tenant: u32) -> String {
        let id = self
            .tenants
            .get(tenant as usize)
            .map_or("none", String::as_str);
        format!("{id}.{}", self.base)
    }

    /// The name a client of `endpoint` uses.
    pub fn client_name(&self, endpoint: &Endpoint, tenant: u32) -> String {
        if endpoint.tenant_names {
            self.base.clone()
        } else {
            self.pool_name(tenant)
        }
    }
}

/// Whether every `host:port` of a bootstrap list is a loopback IPv4 address or
/// `localhost`.
pub fn is_loopback(bootstrap: &str) -> bool {
    bootstrap.split(',').all(|hp| {
        let host = hp.trim().rsplit_once(':').map_or(hp.trim(), |(h, _)| h);
        host == "localhost"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// What one group recorded in one run.
pub struct GroupOutcome {
    pub group: ClientGroup,
    pub log: RoleLog,
}

pub struct RunOutcome {
    pub groups: Vec<GroupOutcome>,
    /// From the start signal until the last client finished (flush included).
    pub wall_s: f64,
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The common client settings.
fn base_config(
    endpoint: &Endpoint,
    tenant: u32,
    client_id: &str,
) -> Result<ClientConfig, DriverError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &endpoint.bootstrap)
        .set("client.id", client_id)
        .set("broker.address.family", "v4");
    if let Some(creds) = &endpoint.sasl {
        let (user, password) = creds
            .get(tenant as usize)
            .ok_or(DriverError::NoCredentials(tenant))?;
        c.set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "PLAIN")
            .set("sasl.username", user)
            .set("sasl.password", password);
    }
    Ok(c)
}

fn producer_config(spec: &ScenarioSpec, c: &mut ClientConfig) {
    c.set("acks", spec.acks.librdkafka())
        .set("compression.type", spec.compression.librdkafka())
        .set("linger.ms", spec.linger_ms.to_string())
        .set("batch.size", spec.batch_size.to_string())
        .set(
            "queue.buffering.max.messages",
            QUEUE_MAX_MESSAGES.to_string(),
        )
        .set("message.timeout.ms", "30000")
        .set(
            "message.max.bytes",
            (spec.record_size + 65_536).max(1_000_000).to_string(),
        );
}

/// Delivery reports of a producer go straight into its group's log.
struct DeliveryLog {
    log: Arc<Mutex<RoleLog>>,
    /// The run's start, set at the rendezvous, before the first send.
    start: Arc<OnceLock<Instant>>,
    bytes: u64,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    /// Nanoseconds from the run's start to the record's intended send time.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, intended_ns: usize) {
        let now = self.start.get_or_init(Instant::now).elapsed();
        let mut log = lock(&self.log);
        match result {
            Ok(_) => {
                let lat = now.saturating_sub(Duration::from_nanos(intended_ns as u64));
                log.record(now.as_secs_f64(), Some(lat.as_micros() as u64), self.bytes);
            }
            Err((e, _)) => log.error(&e.to_string()),
        }
    }
}

/// The outcome of the one record a storm cycle sends.
#[derive(Default)]
struct StormDelivery {
    done: Mutex<Option<Result<(), String>>>,
}

impl ClientContext for StormDelivery {}

impl ProducerContext for StormDelivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        if let Ok(mut d) = self.done.lock() {
            *d = Some(outcome);
        }
    }
}

/// Takes one unit of a shared budget; `false` once it is spent.
fn take(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
        .is_ok()
}

/// Where clients wait, connected, for the common start. Unlike a barrier, the main
/// thread can call the run off (a client thread failed to spawn) and release them.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    arrived: usize,
    start: Option<Instant>,
    aborted: bool,
}

fn relock<T>(r: std::sync::LockResult<MutexGuard<'_, T>>) -> MutexGuard<'_, T> {
    r.unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Gate {
    /// A client is ready: waits for the start, `None` when the run was called off.
    fn arrive(&self) -> Option<Instant> {
        let mut s = relock(self.state.lock());
        s.arrived += 1;
        self.changed.notify_all();
        loop {
            if s.aborted {
                return None;
            }
            if let Some(t) = s.start {
                return Some(t);
            }
            s = relock(self.changed.wait(s));
        }
    }

    /// Waits until `clients` have arrived.
    fn wait_for(&self, clients: usize) {
        let mut s = relock(self.state.lock());
        while s.arrived < clients {
            s = relock(self.changed.wait(s));
        }
    }

    fn open(&self, start: Instant) {
        relock(self.state.lock()).start = Some(start);
        self.changed.notify_all();
    }

    fn abort(&self) {
        relock(self.state.lock()).aborted = true;
        self.changed.notify_all();
    }
}

/// What every client thread shares.
#[derive(Clone)]
struct Shared {
    gate: Arc<Gate>,
    start: Arc<OnceLock<Instant>>,
    duration: Duration,
    stop: Arc<AtomicBool>,
}

impl Shared {
    /// Waits, connected, for the common start; `None` when the run was called off.
    fn rendezvous(&self) -> Option<Instant> {
        self.gate.arrive()
    }

    fn over(&self, start: Instant) -> bool {
        self.stop.load(Ordering::Relaxed) || start.elapsed() >= self.duration
    }
}

struct ClientJob {
    spec: Arc<ScenarioSpec>,
    endpoint: Arc<Endpoint>,
    topics: Arc<Topics>,
    group: ClientGroup,
    index: u32,
    tenant: u32,
    /// Partitions this client reads (consumers).
    partitions: Vec<i32>,
    log: Arc<Mutex<RoleLog>>,
    budget: Arc<AtomicU64>,
    shared: Shared,
}

/// A group's log; a client that panicked holding it leaves its counts, still usable.
fn lock(log: &Mutex<RoleLog>) -> MutexGuard<'_, RoleLog> {
    relock(log.lock())
}

/// The payload: the send time in the first 8 bytes, then a fixed filler that
/// compresses about as well as typical JSON (not all zeroes).
fn payload(size: u64) -> Vec<u8> {
    let text = b"{\"order\":12345,\"customer\":\"c-0042\",\"items\":[3,1,4,1,5,9,2,6],\"note\":\"loadtest\"}";
    (0..size as usize).map(|i| text[i % text.len()]).collect()
}

impl ClientJob {
    fn client_id(&self) -> String {
        format!("loadtest-{}-{}", self.group.role, self.index)
    }

    fn setup_failed(&self, message: String) -> DriverError {
        DriverError::Setup {
            role: self.group.role,
            client: self.index,
            message,
        }
    }

    fn run(self) -> Result<(), DriverError> {
        match self.group.kind {
            Kind::Produce => self.produce(),
            Kind::ConsumeLoop | Kind::ConsumeTail => self.consume(),
            Kind::ConnectProduce | Kind::ConnectMetadata => self.storm(),
        }
    }

    fn produce(self) -> Result<(), DriverError> {
        let topic = self.topics.client_name(&self.endpoint, self.tenant);
        let made = (|| {
            let mut c = base_config(&self.endpoint, self.tenant, &self.client_id())?;
            producer_config(&self.spec, &mut c);
            let producer: BaseProducer<DeliveryLog> = c
                .create_with_context(DeliveryLog {
                    log: self.log.clone(),
                    start: self.shared.start.clone(),
                    bytes: self.spec.record_size,
                })
                .map_err(|e| self.setup_failed(e.to_string()))?;
            producer
                .client()
                .fetch_metadata(Some(&topic), CONNECT_TIMEOUT)
                .map_err(|e| self.setup_failed(format!("metadata of {topic}: {e}")))?;
            Ok::<_, DriverError>(producer)
        })();
        let Some(start) = self.shared.rendezvous() else {
            return Ok(());
        };
        let producer = made?;
        let mut buf = payload(self.spec.record_size);
        let pace = self.group.rate_per_client();
        let mut sent: u64 = 0;
        while !self.shared.over(start) && take(&self.budget) {
            let intended = match pace {
                Some(r) => {
                    let at = Duration::from_secs_f64(sent as f64 / r);
                    if at >= self.shared.duration {
                        break;
                    }
                    let wait = at.saturating_sub(start.elapsed());
                    if !wait.is_zero() {
                        producer.poll(wait);
                    }
                    at
                }
                None => start.elapsed(),
            };
            buf[..8].copy_from_slice(&unix_nanos().to_be_bytes());
            let opaque = intended.as_nanos() as usize;
            let mut record =
                BaseRecord::<(), [u8], usize>::with_opaque_to(&topic, opaque).payload(&buf[..]);
            if let Some(p) = self.group.partition {
                record = record.partition(p);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        if self.shared.over(start) {
                            break;
                        }
                        record = r;
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((e, _)) => {
                        lock(&self.log).error(&e.to_string());
                        break;
                    }
                }
            }
            sent += 1;
            producer.poll(Duration::ZERO);
        }
        if let Err(e) = producer.flush(FLUSH_TIMEOUT) {
            let left = producer.in_flight_count();
            lock(&self.log).error(&format!("flush: {e} ({left} records unacknowledged)"));
        }
        Ok(())
    }

    fn consume(self) -> Result<(), DriverError> {
        let topic = self.topics.client_name(&self.endpoint, self.tenant);
        let tail = self.group.kind == Kind::ConsumeTail;
        let start_at = if tail { Offset::End } else { Offset::Beginning };
        let assignment = || {
            let mut tpl = TopicPartitionList::new();
            for p in &self.partitions {
                tpl.add_partition_offset(&topic, *p, start_at)
                    .map_err(|e| self.setup_failed(e.to_string()))?;
            }
            Ok::<_, DriverError>(tpl)
        };
        let made = (|| {
            let mut c = base_config(&self.endpoint, self.tenant, &self.client_id())?;
            c.set("group.id", format!("loadtest-{}", self.topics.base))
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", if tail { "false" } else { "true" })
                .set("fetch.wait.max.ms", "100");
            let consumer: BaseConsumer =
                c.create().map_err(|e| self.setup_failed(e.to_string()))?;
            consumer
                .fetch_metadata(Some(&topic), CONNECT_TIMEOUT)
                .map_err(|e| self.setup_failed(format!("metadata of {topic}: {e}")))?;
            if tail {
                // Tailing starts at the end as of now, before the producers begin.
                consumer
                    .assign(&assignment()?)
                    .map_err(|e| self.setup_failed(e.to_string()))?;
            }
            Ok::<_, DriverError>(consumer)
        })();
        let Some(start) = self.shared.rendezvous() else {
            return Ok(());
        };
        let consumer = made?;
        if self.partitions.is_empty() {
            return Ok(());
        }
        if !tail {
            consumer
                .assign(&assignment()?)
                .map_err(|e| DriverError::Kafka {
                    what: format!("assigning {topic}"),
                    source: e,
                })?;
        }
        let mut eof = HashSet::new();
        while !self.shared.over(start) {
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => {
                    let payload = m.payload().unwrap_or(&[]);
                    let at = start.elapsed().as_secs_f64();
                    let latency = if tail {
                        // Records are ours: the first 8 bytes are the send time. A short
                        // one (someone else's) is counted without a latency.
                        payload
                            .get(..8)
                            .and_then(|b| <[u8; 8]>::try_from(b).ok())
                            .map(|b| unix_nanos().saturating_sub(u64::from_be_bytes(b)) / 1000)
                    } else {
                        None
                    };
                    if take(&self.budget) {
                        lock(&self.log).record(at, latency, payload.len() as u64);
                    } else {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    eof.insert(p);
                    if eof.len() >= self.partitions.len() {
                        // Everything read: start over (the consume scenario re-reads).
                        eof.clear();
                        consumer
                            .assign(&assignment()?)
                            .map_err(|e| DriverError::Kafka {
                                what: format!("re-assigning {topic}"),
                                source: e,
                            })?;
                    }
                }
                Some(Err(e)) => lock(&self.log).error(&e.to_string()),
            }
        }
        Ok(())
    }

    fn storm(self) -> Result<(), DriverError> {
        let topic = self.topics.client_name(&self.endpoint, self.tenant);
        let Some(start) = self.shared.rendezvous() else {
            return Ok(());
        };
        let buf = payload(self.spec.record_size);
        let pace = self.group.rate_per_client();
        let mut cycles: u64 = 0;
        while !self.shared.over(start) && take(&self.budget) {
            if let Some(r) = pace {
                let at = Duration::from_secs_f64(cycles as f64 / r);
                if at >= self.shared.duration {
                    break;
                }
                std::thread::sleep(at.saturating_sub(start.elapsed()));
            }
            cycles += 1;
            let began = Instant::now();
            let outcome = self.one_cycle(&topic, &buf);
            let at = start.elapsed().as_secs_f64();
            let mut log = lock(&self.log);
            match outcome {
                Ok(bytes) => log.record(at, Some(began.elapsed().as_micros() as u64), bytes),
                Err(e) => log.error(&e),
            }
        }
        Ok(())
    }

    /// One storm cycle: a new client, its first metadata (and authentication), for
    /// connection-storm one acknowledged record; the client is closed on return.
    fn one_cycle(&self, topic: &str, buf: &[u8]) -> Result<u64, String> {
        let id = format!("{}-{}", self.client_id(), unix_nanos());
        let mut c = base_config(&self.endpoint, self.tenant, &id).map_err(|e| e.to_string())?;
        producer_config(&self.spec, &mut c);
        c.set("linger.ms", "0");
        let producer: BaseProducer<StormDelivery> = c
            .create_with_context(StormDelivery::default())
            .map_err(|e| e.to_string())?;
        producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| format!("metadata: {e}"))?;
        if self.group.kind == Kind::ConnectMetadata {
            return Ok(0);
        }
        producer
            .send(BaseRecord::<(), [u8], ()>::to(topic).payload(buf))
            .map_err(|(e, _)| e.to_string())?;
        producer
            .flush(Duration::from_secs(10))
            .map_err(|e| format!("flush: {e}"))?;
        let done = match producer.context().done.lock() {
            Ok(mut d) => d.take(),
            Err(_) => None,
        };
        match done {
            Some(Ok(())) => Ok(buf.len() as u64),
            Some(Err(e)) => Err(e),
            None => Err("no delivery report".into()),
        }
    }
}

/// Which partitions client `index` of `group` reads: the partitions of its tenant's
/// topic dealt out over the group's clients of that tenant.
pub fn partitions_of(group: &ClientGroup, index: u32, tenants: u32, partitions: u32) -> Vec<i32> {
    let tenant = group.tenant_of(index, tenants);
    let peers: Vec<u32> = (0..group.clients)
        .filter(|j| group.tenant_of(*j, tenants) == tenant)
        .collect();
    let Some(pos) = peers.iter().position(|j| *j == index) else {
        return Vec::new();
    };
    (0..partitions as i32)
        .filter(|p| (*p as usize) % peers.len() == pos)
        .collect()
}

/// Runs `spec` against `endpoint`; `tick` is called about every second with the
/// seconds since the start (the caller samples the proxy's CPU and memory there).
pub fn run(
    spec: &ScenarioSpec,
    endpoint: &Endpoint,
    topics: &Topics,
    label: &str,
    tick: &mut dyn FnMut(f64),
) -> Result<RunOutcome, DriverError> {
    if !is_loopback(&endpoint.bootstrap) {
        return Err(DriverError::NotLoopback(endpoint.bootstrap.clone()));
    }
    let clients: u32 = spec.groups.iter().map(|g| g.clients).sum();
    let shared = Shared {
        gate: Arc::new(Gate::default()),
        start: Arc::new(OnceLock::new()),
        duration: Duration::from_secs_f64(spec.duration_s),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let spec_arc = Arc::new(spec.clone());
    let endpoint_arc = Arc::new(endpoint.clone());
    let topics_arc = Arc::new(topics.clone());
    let mut logs = Vec::new();
    let mut handles: Vec<JoinHandle<Result<(), DriverError>>> = Vec::new();
    for group in &spec.groups {
        let log = Arc::new(Mutex::new(RoleLog::default()));
        let budget = Arc::new(AtomicU64::new(spec.max_records));
        for index in 0..group.clients {
            let job = ClientJob {
                spec: spec_arc.clone(),
                endpoint: endpoint_arc.clone(),
                topics: topics_arc.clone(),
                group: group.clone(),
                index,
                tenant: group.tenant_of(index, spec.tenants),
                partitions: match group.partition {
                    Some(p) => vec![p],
                    None => partitions_of(group, index, spec.tenants, spec.partitions),
                },
                log: log.clone(),
                budget: budget.clone(),
                shared: shared.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", group.role))
                .spawn(move || job.run());
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Release the clients already waiting at the gate; they end at once.
                    shared.gate.abort();
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(DriverError::Spawn(e));
                }
            }
        }
        logs.push((group.clone(), log));
    }
    let bar = ProgressBar::new((spec.duration_s * 1000.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(label.to_string());
    bar.set_message("connecting");
    shared.gate.wait_for(clients as usize);
    let start = *shared.start.get_or_init(Instant::now);
    shared.gate.open(start);
    let mut next_tick = 1.0;
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        let t = start.elapsed().as_secs_f64();
        if t >= next_tick {
            tick(t);
            next_tick += 1.0;
        }
        let (records, bytes) = logs.iter().fold((0, 0), |(r, b), (_, l)| {
            let l = lock(l);
            (r + l.records, b + l.bytes)
        });
        bar.set_position(((t * 1000.0) as u64).min(bar.length().unwrap_or(0)));
        bar.set_message(format!(
            "{records} records, {:.1} MB/s",
            bytes as f64 / 1e6 / t.max(0.001)
        ));
        // A hard stop well past the duration: the flush is bounded, this is a backstop.
        if t > spec.duration_s + FLUSH_TIMEOUT.as_secs_f64() + 15.0 {
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
    bar.finish_and_clear();
    let wall_s = start.elapsed().as_secs_f64();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(DriverError::Panicked);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let groups = logs
        .into_iter()
        .map(|(group, log)| {
            let mut merged = RoleLog::default();
            merge_into(&mut merged, &lock(&log));
            GroupOutcome { group, log: merged }
        })
        .collect();
    Ok(RunOutcome { groups, wall_s })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Tenants;

    #[test]
    fn loopback_only() {
        assert!(is_loopback("127.0.0.1:29091,127.0.0.1:29092"));
        assert!(is_loopback("localhost:9092"));
        assert!(is_loopback("127.1.2.3:1"));
        assert!(!is_loopback("10.0.0.1:9092"));
        assert!(!is_loopback("127.0.0.1:1,192.168.1.1:2"));
        assert!(!is_loopback("kafka:9092"));
    }

    #[test]
    fn topic_names_per_endpoint() {
        let t = Topics {
            tenants: vec!["lt-0".into(), "lt-1".into()],
            base: "run7".into(),
        };
        let direct = Endpoint {
            name: "direct".into(),
            bootstrap: "127.0.0.1:1".into(),
            sasl: None,
            tenant_names: false,
        };
        let sluice = Endpoint {
            tenant_names: true,
            ..direct.clone()
        };
        assert_eq!(t.client_name(&direct, 1), "lt-1.run7");
        assert_eq!(t.client_name(&sluice, 1), "run7");
        assert_eq!(t.pool_name(0), "lt-0.run7");
    }

    #[test]
    fn partitions_dealt_over_a_tenants_clients() {
        let g = ClientGroup {
            role: "consume",
            kind: Kind::ConsumeLoop,
            clients: 4,
            tenants: Tenants::RoundRobin,
            partition: None,
            rate: None,
        };
        // Two tenants: clients 0 and 2 share tenant 0's six partitions.
        assert_eq!(partitions_of(&g, 0, 2, 6), vec![0, 2, 4]);
        assert_eq!(partitions_of(&g, 2, 2, 6), vec![1, 3, 5]);
        assert_eq!(partitions_of(&g, 1, 2, 6), vec![0, 2, 4]);
        // More clients than partitions: the extra ones read nothing.
        let one = ClientGroup { clients: 3, ..g };
        assert_eq!(partitions_of(&one, 2, 1, 2), Vec::<i32>::new());
    }

    #[test]
    fn gate_starts_everyone_together_or_calls_it_off() {
        let gate = Arc::new(Gate::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let g = gate.clone();
                std::thread::spawn(move || g.arrive())
            })
            .collect();
        gate.wait_for(3);
        let start = Instant::now();
        gate.open(start);
        for w in waiters {
            assert_eq!(w.join().unwrap(), Some(start));
        }
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        let waiter = std::thread::spawn(move || g.arrive());
        gate.wait_for(1);
        gate.abort();
        assert_eq!(waiter.join().unwrap(), None);
    }

    #[test]
    fn budget_runs_out() {
        let b = AtomicU64::new(2);
        assert!(take(&b) && take(&b));
        assert!(!take(&b));
        assert_eq!(b.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn payload_has_room_for_the_timestamp() {
        let p = payload(100);
        assert_eq!(p.len(), 100);
        assert!(p.iter().any(|b| *b != p[0]));
    }
}
