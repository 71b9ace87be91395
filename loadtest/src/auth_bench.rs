//! `auth-bench`: SASL + JWT authentications per second, per gateway CPU-second, and
//! their latency, against a `sluice` started with `listener.auth = "sasl"`.
//!
//! The gateway trusts one issuer whose Ed25519 key is made with `sluice token keygen`;
//! one token is minted with `sluice token mint` and reused by every client (its key
//! is cached after the gateway's startup JWKS load, so no JWKS fetch is measured).
//! For each mechanism (OAUTHBEARER, PLAIN) two variants run, each for a fixed time
//! (capped by a count), with `clients` concurrent raw-TCP clients on loopback:
//!
//! - `connect`: every authentication is a new TCP connection: connect, SaslHandshake
//!   v1, SaslAuthenticate v2, close. The gateway opens an upstream connection to a
//!   pool broker for each client connection, so this is the full cost of a client
//!   arriving, upstream connect included.
//! - `reauth`: each client connects and authenticates once, then re-authenticates
//!   over and over on that connection (KIP-368: SaslHandshake + SaslAuthenticate
//!   again), which isolates the SASL + JWT work from TCP and upstream setup.
//!
//! Latency "auth" is SaslAuthenticate sent → its response read; "total" is the
//! handshake + authenticate (plus connect, in the `connect` variant). Gateway CPU is
//! utime + stime from `/proc/<pid>/stat` around each measured phase.
//!
//! Last, `idle_connections` connections are opened (64 at a time), authenticated and
//! sent one ApiVersions each, then held: the gateway's RSS before and while they are
//! held gives its memory per idle authenticated connection (SPEC 11: ≤ 64 KiB with
//! 10 000 held), its upstream connection to the pool included.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::gateway::Gateway;
use crate::perf::tail;
use crate::procfs::{self, Memory};
use crate::report::{git_commit, profile_of, utc_date};
use crate::sasl;

/// The bench tenant. The seed only writes absent tenants, so the name changes whenever
/// its document does (a pool kept from an older run still holds the older one).
const TENANT: &str = "bench-2";
const SUBJECT: &str = "s";
/// SPEC target for the p99 of one SASL + JWT authentication with cached keys.
const TARGET_P99_US: f64 = 1000.0;
const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 2;
const API_VERSIONS_VERSION: i16 = 2;
/// SPEC target for the gateway's memory per idle authenticated connection.
const TARGET_IDLE_KIB: f64 = 64.0;
/// File descriptors kept free for everything but the idle connections.
const SPARE_FDS: u64 = 256;

/// What to run; filled from the command line.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Concurrent clients; every mechanism × variant runs once per count.
    pub clients: Vec<usize>,
    /// Measured seconds per phase.
    pub duration_s: f64,
    /// Unmeasured seconds before each phase.
    pub warmup_s: f64,
    /// Upper bound on authentications per phase (all clients together).
    pub max_auths: u64,
    /// `OAUTHBEARER` and/or `PLAIN`.
    pub mechanisms: Vec<String>,
    /// `connect` and/or `reauth`.
    pub variants: Vec<String>,
    /// Authenticated connections held at the end for the memory figure (0 = none).
    pub idle_connections: usize,
    pub smoke: bool,
}

pub struct Setup {
    pub gateway_bin: PathBuf,
    pub pool_bootstrap: Vec<String>,
    pub out_dir: PathBuf,
    pub work_dir: PathBuf,
    /// Where criterion keeps `verify/<bench>/new/estimates.json`, if it ran.
    pub criterion_dir: PathBuf,
    pub command: String,
    pub invocation: String,
    pub git_commit: Option<String>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            count: h.len(),
            mean_us: h.mean() / 1000.0,
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: h.max() as f64 / 1000.0,
        }
    }
}

/// One measured phase: a mechanism and a variant.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub mechanism: String,
    pub variant: String,
    pub clients: usize,
    pub wall_s: f64,
    pub authentications: u64,
    pub auths_per_sec: f64,
    pub gateway_cpu_s: f64,
    /// Gateway CPU-seconds per wall second (1.0 = one core busy).
    pub gateway_cores_busy: f64,
    /// Authentications per gateway CPU-second: per core, were a core given to it alone.
    pub auths_per_gateway_cpu_s: Option<f64>,
    /// This load generator's own CPU over the phase (it shares the machine).
    pub client_cpu_s: f64,
    /// SaslAuthenticate request sent → response read.
    pub auth_latency: Latency,
    /// SaslHandshake + SaslAuthenticate (and the TCP connect, for `connect`).
    pub total_latency: Latency,
    /// The client's TCP connect alone (`connect` only; empty for `reauth`).
    pub connect_latency: Latency,
    /// Machine-wide `TcpExt` counters over the phase (`/proc/net/netstat`): listen
    /// queue overflows and SYN retransmits. A lost SYN costs a 1 s retransmit timeout,
    /// which is what a ~1 s outlier in `total_latency` usually is.
    pub listen_overflows: Option<u64>,
    pub syn_retransmits: Option<u64>,
}

/// The idle-connection phase: memory of the gateway while `connections` are held.
#[derive(Debug, Clone, Serialize)]
pub struct IdlePhase {
    /// Connections asked for, and the number the file-descriptor limit allowed.
    pub requested: usize,
    pub connections: usize,
    /// The soft `RLIMIT_NOFILE` the gateway started with.
    pub nofile_limit: u64,
    /// Seconds to open and authenticate all of them.
    pub open_s: f64,
    pub rss_before_kib: u64,
    pub rss_held_kib: u64,
    /// (held − before) / connections.
    pub kib_per_connection: f64,
    /// The gateway's open file descriptors before and while held (two per connection:
    /// the client's and its upstream to a pool broker).
    pub fds_before: Option<usize>,
    pub fds_held: Option<usize>,
    /// Connections that still answered ApiVersions after being held.
    pub answered_after_hold: usize,
    pub rss_after_close_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_gib: f64,
    pub kernel: String,
    pub date_utc: String,
    pub gateway_bin: String,
    pub gateway_profile: String,
    pub loadtest_profile: &'static str,
    pub git_commit: String,
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
}

/// A criterion result for `Authenticator::verify`, read from `target/criterion`.
#[derive(Debug, Serialize)]
pub struct CriterionResult {
    pub bench: String,
    pub mean_us: f64,
    pub median_us: f64,
    /// 1 / mean: verifications per second on one core.
    pub per_sec_one_core: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub machine: Machine,
    pub params: Params,
    pub command: String,
    pub invocation: String,
    pub token_bytes: usize,
    /// The gateway's `RUST_LOG` (it logs one INFO line per successful authentication).
    pub gateway_log_level: String,
    pub phases: Vec<Phase>,
    pub criterion: Vec<CriterionResult>,
    pub gateway_memory_end: Option<Memory>,
    pub gateway_log_warnings: usize,
    pub target_p99_us: f64,
    pub idle: Option<IdlePhase>,
    pub target_idle_kib: f64,
}

/// Runs every phase, writes `auth.json` and `auth.md` into the out dir.
pub fn run(params: &Params, setup: &Setup) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(&setup.work_dir)
        .with_context(|| format!("creating {}", setup.work_dir.display()))?;
    std::fs::create_dir_all(&setup.out_dir)
        .with_context(|| format!("creating {}", setup.out_dir.display()))?;
    let load_before = procfs::loadavg()?;
    let started = unix_now();
    let key = sasl::keygen(&setup.gateway_bin, &setup.work_dir)?;
    let token = sasl::mint(&setup.gateway_bin, &key, TENANT, SUBJECT, 3600)?;
    let jwks = key.jwks.clone();
    // The tenant comes from the tenant store: the gateway seeds it at start when absent.
    let seed = setup.work_dir.join("tenants.json");
    std::fs::write(&seed, seed_tenants()).with_context(|| format!("writing {}", seed.display()))?;
    let pool = setup.pool_bootstrap.clone();
    let mechanisms = params.mechanisms.join("\", \"");
    // The gateway inherits this process's limit; each idle connection costs it two.
    let nofile_limit = raise_nofile_limit(2 * params.idle_connections as u64 + SPARE_FDS);
    let idle_connections = params
        .idle_connections
        .min((nofile_limit.saturating_sub(SPARE_FDS) / 2) as usize);
    if idle_connections < params.idle_connections {
        eprintln!(
            "[auth-bench] the file descriptor limit ({nofile_limit}) allows {idle_connections} of {} idle connections",
            params.idle_connections
        );
    }
    let mut gateway = Gateway::start_with_config(
        &setup.gateway_bin,
        &setup.work_dir,
        Duration::from_secs(30),
        // The per-source-IP connection limits would stop one load generator: this
        // measures authentication and connection cost, not the limits.
        |base| {
            sasl::sasl_config(base, &pool, &jwks, Some(&seed), &mechanisms, "auth-bench").replace(
                "[limits]\n",
                "[limits]\nmax_connections_per_ip = 0\nconnection_rate_per_ip = 0\n",
            )
        },
    )
    .context("starting the gateway")?;
    eprintln!(
        "[auth-bench] gateway pid {} on {}",
        gateway.pid, gateway.bootstrap
    );
    let (clk_tck, _) = procfs::clock_ticks_per_sec();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the client runtime")?;
    let mut phases = Vec::new();
    for &clients in &params.clients {
        for mechanism in &params.mechanisms {
            for variant in &params.variants {
                let reauth = match variant.as_str() {
                    "connect" => false,
                    "reauth" => true,
                    other => bail!("unknown variant {other:?} (connect or reauth)"),
                };
                let auth_bytes = auth_bytes(mechanism, &token)?;
                let spec = PhaseSpec {
                    addr: gateway.bootstrap.clone(),
                    mechanism: mechanism.clone(),
                    auth_bytes,
                    reauth,
                    clients,
                };
                if params.warmup_s > 0.0 {
                    rt.block_on(drive(&spec, secs(params.warmup_s), params.max_auths))
                        .with_context(|| format!("{mechanism}/{variant} warm-up"))?;
                }
                let net0 = tcp_ext();
                let cpu0 = procfs::cpu_ticks(gateway.pid)?;
                let self0 = procfs::cpu_ticks(std::process::id())?;
                let t0 = Instant::now();
                let result = rt.block_on(drive(&spec, secs(params.duration_s), params.max_auths));
                let wall_s = t0.elapsed().as_secs_f64();
                let cpu1 = procfs::cpu_ticks(gateway.pid)?;
                let self1 = procfs::cpu_ticks(std::process::id())?;
                let net1 = tcp_ext();
                let delta = |k: &str| {
                    Some(
                        net1.as_ref()?
                            .get(k)?
                            .saturating_sub(*net0.as_ref()?.get(k)?),
                    )
                };
                if !gateway.alive() {
                    let log = std::fs::read_to_string(&gateway.log_path).unwrap_or_default();
                    bail!(
                        "the gateway exited during {mechanism}/{variant}; log tail:\n{}",
                        tail(&log, 3000)
                    );
                }
                let (auth_h, total_h, connect_h) =
                    result.with_context(|| format!("{mechanism}/{variant}"))?;
                let ticks = |a: procfs::CpuTicks, b: procfs::CpuTicks| {
                    b.total().saturating_sub(a.total()) as f64 / clk_tck as f64
                };
                let gateway_cpu_s = ticks(cpu0, cpu1);
                let n = auth_h.len();
                let phase = Phase {
                    mechanism: mechanism.clone(),
                    variant: variant.clone(),
                    clients,
                    wall_s,
                    authentications: n,
                    auths_per_sec: n as f64 / wall_s,
                    gateway_cpu_s,
                    gateway_cores_busy: gateway_cpu_s / wall_s,
                    auths_per_gateway_cpu_s: (gateway_cpu_s > 0.0)
                        .then(|| n as f64 / gateway_cpu_s),
                    client_cpu_s: ticks(self0, self1),
                    auth_latency: Latency::of(&auth_h),
                    total_latency: Latency::of(&total_h),
                    connect_latency: Latency::of(&connect_h),
                    listen_overflows: delta("ListenOverflows"),
                    syn_retransmits: delta("TCPSynRetrans"),
                };
                eprintln!(
                "[auth-bench] {mechanism}/{variant}/{clients} clients: {n} auths in {wall_s:.2} s = {:.0}/s, gateway {gateway_cpu_s:.2} CPU-s ({}/CPU-s), auth p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs",
                phase.auths_per_sec,
                phase.auths_per_gateway_cpu_s.map_or("n/a".into(), |v| format!("{v:.0}")),
                phase.auth_latency.p50_us,
                phase.auth_latency.p99_us,
                phase.auth_latency.p999_us
            );
                ensure!(n > 0, "{mechanism}/{variant}: no authentication completed");
                phases.push(phase);
            }
        }
    }
    let idle = if idle_connections > 0 {
        if time_wait_sockets() + idle_connections > 20_000 {
            drain_time_wait();
        }
        let mechanism = params.mechanisms.first().cloned().unwrap_or_else(|| "PLAIN".into());
        let spec = PhaseSpec {
            addr: gateway.bootstrap.clone(),
            auth_bytes: auth_bytes(&mechanism, &token)?,
            mechanism,
            reauth: false,
            clients: idle_connections,
        };
        let phase = rt
            .block_on(hold_idle(&spec, gateway.pid, params.idle_connections, nofile_limit))
            .context("holding idle connections")?;
        eprintln!(
            "[auth-bench] idle: {} connections held, gateway RSS {} -> {} KiB = {:.1} KiB each, {} of them answered afterwards",
            phase.connections, phase.rss_before_kib, phase.rss_held_kib, phase.kib_per_connection, phase.answered_after_hold
        );
        ensure!(
            phase.answered_after_hold == phase.connections,
            "{} of {} held connections no longer answered",
            phase.connections - phase.answered_after_hold,
            phase.connections
        );
        Some(phase)
    } else {
        None
    };
    let memory_end = procfs::memory(gateway.pid).ok();
    gateway.stop();
    let connections: u64 = phases
        .iter()
        .filter(|p| p.variant == "connect")
        .map(|p| p.authentications)
        .sum();
    if connections > 2000 {
        drain_time_wait();
    }
    let log = std::fs::read_to_string(&gateway.log_path).unwrap_or_default();
    let warnings = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
        .count();
    let report = Report {
        schema: "sluice.loadtest.auth/1",
        machine: Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: procfs::cpu_model(),
            mem_total_gib: procfs::mem_total_kib()? as f64 / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("unknown".into(), |s| s.trim().into()),
            date_utc: utc_date(started),
            gateway_bin: setup.gateway_bin.display().to_string(),
            gateway_profile: profile_of(&setup.gateway_bin),
            loadtest_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            git_commit: setup.git_commit.clone().unwrap_or_else(git_commit),
            load_before,
            load_after: procfs::loadavg()?,
        },
        params: params.clone(),
        command: setup.command.clone(),
        invocation: setup.invocation.clone(),
        token_bytes: token.len(),
        gateway_log_level: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        phases,
        criterion: criterion_results(&setup.criterion_dir),
        gateway_memory_end: memory_end,
        gateway_log_warnings: warnings,
        target_p99_us: TARGET_P99_US,
        idle,
        target_idle_kib: TARGET_IDLE_KIB,
    };
    let json_path = setup.out_dir.join("auth.json");
    let md_path = setup.out_dir.join("auth.md");
    let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, markdown(&report))
        .with_context(|| format!("writing {}", md_path.display()))?;
    Ok((json_path, md_path))
}

/// The `TcpExt` counters of `/proc/net/netstat` (a header line, then a value line).
fn parse_tcp_ext(text: &str) -> Option<std::collections::HashMap<String, u64>> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    Some(
        names
            .split_whitespace()
            .skip(1)
            .zip(values.split_whitespace().skip(1))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect(),
    )
}

fn tcp_ext() -> Option<std::collections::HashMap<String, u64>> {
    parse_tcp_ext(&std::fs::read_to_string("/proc/net/netstat").ok()?)
}

/// Sockets in TIME-WAIT (state `06`) in `/proc/net/tcp` and `tcp6`.
fn time_wait_sockets() -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| {
            t.lines()
                .filter(|l| l.split_whitespace().nth(3) == Some("06"))
                .count()
        })
        .sum()
}

/// The `connect` variant leaves two TIME-WAIT sockets per authentication (the
/// client's, and the gateway's upstream one) for 60 s. They hold loopback ports
/// that a later `bind` (e.g. the next benchmark's or a test's free-port search)
/// cannot reuse, so wait (at most 65 s) until few are left.
fn drain_time_wait() {
    let deadline = Instant::now() + Duration::from_secs(65);
    let mut told = false;
    loop {
        let n = time_wait_sockets();
        if n < 2000 || Instant::now() >= deadline {
            return;
        }
        if !std::mem::replace(&mut told, true) {
            eprintln!("[auth-bench] waiting for {n} TIME-WAIT sockets to expire (at most 65 s)");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Raises this process's `RLIMIT_NOFILE` towards `wanted` (the hard limit too, where
/// the process may) and returns the soft limit now in force.
fn raise_nofile_limit(wanted: u64) -> u64 {
    use rlimit::Resource;
    let Ok((soft, hard)) = Resource::NOFILE.get() else { return 1024 };
    if soft >= wanted {
        return soft;
    }
    if hard < wanted && Resource::NOFILE.set(wanted, wanted).is_ok() {
        return wanted;
    }
    let target = wanted.min(hard);
    match Resource::NOFILE.set(target, hard) {
        Ok(()) => target,
        Err(_) => soft,
    }
}

/// Opens `spec.clients` connections (64 at a time), authenticates each and sends it
/// one ApiVersions, holds them all, and reads the gateway's memory around that.
/// `requested` and `nofile_limit` are only reported (the limit set `spec.clients`).
async fn hold_idle(spec: &PhaseSpec, pid: u32, requested: usize, nofile_limit: u64) -> anyhow::Result<IdlePhase> {
    const AT_ONCE: usize = 64;
    let settle = Duration::from_secs(2);
    tokio::time::sleep(settle).await;
    let rss_before_kib = procfs::memory(pid)?.rss_kib;
    let fds_before = procfs::open_fds(pid).ok();
    let t0 = Instant::now();
    let mut held: Vec<(Client, TcpStream)> = Vec::with_capacity(spec.clients);
    let mut opening = tokio::task::JoinSet::new();
    let mut next = 0usize;
    while held.len() < spec.clients {
        while opening.len() < AT_ONCE && next < spec.clients {
            let mut client = spec.client(format!("loadtest-idle-{next}"));
            next += 1;
            opening.spawn(async move {
                let mut stream = client.connect().await?;
                client.authenticate(&mut stream).await?;
                client.api_versions(&mut stream).await?;
                anyhow::Ok((client, stream))
            });
        }
        let Some(opened) = opening.join_next().await else { break };
        let opened = opened
            .context("connection task panicked")?
            .with_context(|| format!("opening idle connection {} of {}", held.len() + 1, spec.clients))?;
        held.push(opened);
    }
    let open_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let rss_held_kib = procfs::memory(pid)?.rss_kib;
    let fds_held = procfs::open_fds(pid).ok();
    let mut answered_after_hold = 0;
    for (client, stream) in &mut held {
        if client.api_versions(stream).await.is_ok() {
            answered_after_hold += 1;
        }
    }
    let connections = held.len();
    drop(held);
    tokio::time::sleep(settle).await;
    Ok(IdlePhase {
        requested,
        connections,
        nofile_limit,
        open_s,
        rss_before_kib,
        rss_held_kib,
        kib_per_connection: rss_held_kib.saturating_sub(rss_before_kib) as f64 / connections.max(1) as f64,
        fds_before,
        fds_held,
        answered_after_hold,
        rss_after_close_kib: procfs::memory(pid)?.rss_kib,
    })
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// The seed file naming the bench tenant, every principal allowed everything in it.
fn seed_tenants() -> String {
    format!(
        // The tenant's connection limits (100 new connections/s by default) are lifted:
        // this measures the cost of authentication, not the limits.
        r#"[{{"id":"{TENANT}","limits":{{"max_connections_per_sec":1000000000,"max_connections":1000000000}},"policies":{{"all":{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kafka-cluster:*"],"Resource":["*"]}}]}}}},"principals":{{"*":{{"policies":["all"]}}}}}}]"#
    )
}

/// The SaslAuthenticate payload for `mechanism` carrying `token`.
fn auth_bytes(mechanism: &str, token: &str) -> anyhow::Result<Bytes> {
    Ok(Bytes::from(match mechanism {
        "OAUTHBEARER" => format!("n,,\x01auth=Bearer {token}\x01\x01"),
        "PLAIN" => format!("\0{SUBJECT}\0{token}"),
        other => bail!("unknown mechanism {other:?} (OAUTHBEARER or PLAIN)"),
    }))
}

struct PhaseSpec {
    addr: String,
    mechanism: String,
    auth_bytes: Bytes,
    reauth: bool,
    clients: usize,
}

impl PhaseSpec {
    /// A client of this phase, not yet connected.
    fn client(&self, client_id: String) -> Client {
        Client {
            addr: self.addr.clone(),
            mechanism: StrBytes::from_string(self.mechanism.clone()),
            auth_bytes: self.auth_bytes.clone(),
            client_id: StrBytes::from_string(client_id),
            correlation: 0,
        }
    }
}

/// Runs `spec.clients` clients until `duration` passes or `max_auths` authentications
/// (all clients) are done; returns the merged auth and total latency histograms (ns).
async fn drive(
    spec: &PhaseSpec,
    duration: Duration,
    max_auths: u64,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, Histogram<u64>)> {
    let deadline = Instant::now() + duration;
    let budget = Arc::new(AtomicU64::new(max_auths));
    let mut tasks = Vec::new();
    for id in 0..spec.clients {
        let client = spec.client(format!("loadtest-auth-{id}"));
        let budget = budget.clone();
        let reauth = spec.reauth;
        tasks.push(tokio::spawn(async move {
            client.run(reauth, deadline, budget).await
        }));
    }
    let mut auth = histogram();
    let mut total = histogram();
    let mut connect = histogram();
    for task in tasks {
        let (a, t, c) = task.await.context("client task panicked")??;
        auth.add(&a).context("merging histograms")?;
        total.add(&t).context("merging histograms")?;
        connect.add(&c).context("merging histograms")?;
    }
    Ok((auth, total, connect))
}

/// 1 µs .. 60 s in nanoseconds, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_nanos().clamp(1_000, 60_000_000_000) as u64);
}

/// Takes one authentication from the shared budget; false when it is spent.
fn take(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

struct Client {
    addr: String,
    mechanism: StrBytes,
    auth_bytes: Bytes,
    client_id: StrBytes,
    correlation: i32,
}

impl Client {
    async fn run(
        mut self,
        reauth: bool,
        deadline: Instant,
        budget: Arc<AtomicU64>,
    ) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, Histogram<u64>)> {
        let mut auth = histogram();
        let mut total = histogram();
        let mut connect = histogram();
        if reauth {
            let mut stream = self.connect().await?;
            // The first authentication opens the session; only re-authentications count.
            self.authenticate(&mut stream).await?;
            while Instant::now() < deadline && take(&budget) {
                let t0 = Instant::now();
                let a = self.authenticate(&mut stream).await?;
                record(&mut total, t0.elapsed());
                record(&mut auth, a);
            }
        } else {
            while Instant::now() < deadline && take(&budget) {
                let t0 = Instant::now();
                let mut stream = self.connect().await?;
                record(&mut connect, t0.elapsed());
                let a = self.authenticate(&mut stream).await?;
                record(&mut total, t0.elapsed());
                record(&mut auth, a);
                drop(stream);
            }
        }
        Ok((auth, total, connect))
    }

    async fn connect(&self) -> anyhow::Result<TcpStream> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// SaslHandshake v1 then SaslAuthenticate v2, both answered with error 0;
    /// returns the SaslAuthenticate round trip.
    async fn authenticate(&mut self, stream: &mut TcpStream) -> anyhow::Result<Duration> {
        let handshake = SaslHandshakeRequest::default().with_mechanism(self.mechanism.clone());
        let mut body = self
            .round_trip(stream, ApiKey::SaslHandshake, HANDSHAKE_VERSION, &handshake)
            .await?;
        let resp = SaslHandshakeResponse::decode(&mut body, HANDSHAKE_VERSION)
            .context("decoding SaslHandshakeResponse")?;
        ensure!(
            resp.error_code == 0,
            "SaslHandshake {} failed with error {}",
            self.mechanism.as_str(),
            resp.error_code
        );
        let request = SaslAuthenticateRequest::default().with_auth_bytes(self.auth_bytes.clone());
        let t0 = Instant::now();
        let mut body = self
            .round_trip(
                stream,
                ApiKey::SaslAuthenticate,
                AUTHENTICATE_VERSION,
                &request,
            )
            .await?;
        let elapsed = t0.elapsed();
        let resp = SaslAuthenticateResponse::decode(&mut body, AUTHENTICATE_VERSION)
            .context("decoding SaslAuthenticateResponse")?;
        ensure!(
            resp.error_code == 0 && resp.auth_bytes.is_empty(),
            "SaslAuthenticate failed: error {} {:?}, challenge {:?}",
            resp.error_code,
            resp.error_message.as_ref().map(|m| m.as_str()),
            String::from_utf8_lossy(&resp.auth_bytes)
        );
        Ok(elapsed)
    }

    /// One ApiVersions round trip, answered with error 0 (what a client sends first).
    async fn api_versions(&mut self, stream: &mut TcpStream) -> anyhow::Result<()> {
        let request = ApiVersionsRequest::default();
        let mut body = self
            .round_trip(stream, ApiKey::ApiVersions, API_VERSIONS_VERSION, &request)
            .await?;
        let resp = ApiVersionsResponse::decode(&mut body, API_VERSIONS_VERSION)
            .context("decoding ApiVersionsResponse")?;
        ensure!(resp.error_code == 0, "ApiVersions failed with error {}", resp.error_code);
        Ok(())
    }

    /// Sends one request and reads its response; returns the body after the header.
    async fn round_trip<M: Encodable>(
        &mut self,
        stream: &mut TcpStream,
        api: ApiKey,
        version: i16,
        body: &M,
    ) -> anyhow::Result<Bytes> {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let mut frame = BytesMut::with_capacity(128 + self.auth_bytes.len());
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut frame, api.request_header_version(version))?;
        body.encode(&mut frame, version)?;
        let len = i32::try_from(frame.len() - 4)?;
        frame[0..4].copy_from_slice(&len.to_be_bytes());
        stream.write_all(&frame).await.context("sending")?;
        let len = stream.read_i32().await.with_context(|| {
            format!("reading the {api:?} response (connection closed by the gateway?)")
        })?;
        ensure!((0..=1 << 20).contains(&len), "bad response length {len}");
        let mut buf = vec![0u8; len as usize];
        stream.read_exact(&mut buf).await.context("reading")?;
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))?;
        ensure!(
            header.correlation_id == correlation,
            "correlation id {} for request {correlation}",
            header.correlation_id
        );
        ensure!(buf.has_remaining(), "empty {api:?} response");
        Ok(buf)
    }
}

/// `verify/<bench>/new/estimates.json` under `dir`, for each bench that ran.
fn criterion_results(dir: &Path) -> Vec<CriterionResult> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("verify")) else {
        return out;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "report")
        .collect();
    names.sort();
    for name in names {
        let path = dir.join("verify").join(&name).join("new/estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let ns = |k: &str| v[k]["point_estimate"].as_f64();
        if let (Some(mean), Some(median)) = (ns("mean"), ns("median")) {
            out.push(CriterionResult {
                bench: name,
                mean_us: mean / 1000.0,
                median_us: median / 1000.0,
                per_sec_one_core: 1e9 / mean,
            });
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Markdown report.
pub fn markdown(r: &Report) -> String {
    use std::fmt::Write as _;
    let m = &r.machine;
    let p = &r.params;
    let mut o = String::new();
    let _ = writeln!(o, "# Authentication: SASL + JWT throughput and latency\n");
    if p.smoke {
        let _ = writeln!(o, "> **Smoke run** (a fraction of a second per phase): checks that the benchmark works; the figures mean little.\n");
    }
    let _ = writeln!(
        o,
        "Generated by `loadtest auth-bench` on {}. Raw figures: `auth.json` beside this file.\n",
        m.date_utc
    );
    let _ = writeln!(o, "## Result\n");
    let _ = writeln!(o, "SPEC target: p99 SASL + JWT latency with cached keys **≤ 1 ms**. It is judged on the `reauth` variant (SaslAuthenticate round trip on an open connection: SASL parsing, JWT verification, the answer); the `connect` variant's figures add connection setup.\n");
    let _ = writeln!(o, "| mechanism | variant | clients | auths | auths/s | gateway CPU-s | gateway cores busy | auths per gateway CPU-s (per core) | auth p50 µs | auth p99 µs | auth p99.9 µs | auth max µs | total p50 µs | total p99 µs | total max µs | listen overflows / SYN retransmits (machine) | p99 ≤ 1 ms |");
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for ph in &r.phases {
        let a = &ph.auth_latency;
        let t = &ph.total_latency;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} / {} | {} |",
            ph.mechanism, ph.variant, ph.clients, ph.authentications, ph.auths_per_sec, ph.gateway_cpu_s,
            ph.gateway_cores_busy, ph.auths_per_gateway_cpu_s.map_or("n/a".into(), |v| format!("{v:.0}")),
            a.p50_us, a.p99_us, a.p999_us, a.max_us, t.p50_us, t.p99_us, t.max_us,
            ph.listen_overflows.map_or("n/a".into(), |v| v.to_string()),
            ph.syn_retransmits.map_or("n/a".into(), |v| v.to_string()),
            if a.p99_us <= r.target_p99_us { "**met**" } else { "**missed**" }
        );
    }
    let _ = writeln!(o);
    if !r.criterion.is_empty() {
        let _ = writeln!(o, "`Authenticator::verify` alone (criterion, `cargo bench -p sluice-tenancy --bench verify`, read from `target/criterion/verify/*/new/estimates.json`):\n");
        let _ = writeln!(o, "| bench | mean µs | median µs | verifications/s on one core (1/mean) |\n|---|---|---|---|");
        for c in &r.criterion {
            let _ = writeln!(
                o,
                "| {} | {:.2} | {:.2} | {:.0} |",
                c.bench, c.mean_us, c.median_us, c.per_sec_one_core
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(
        o,
        "Gateway log: {} WARN/ERROR/panic lines. RSS at the end: {}.\n",
        r.gateway_log_warnings,
        r.gateway_memory_end.map_or("n/a".into(), |mem| format!(
            "{:.1} MiB (peak {:.1} MiB)",
            mem.rss_kib as f64 / 1024.0,
            mem.hwm_kib as f64 / 1024.0
        ))
    );
    if let Some(idle) = &r.idle {
        // Judged on the per-connection figure once thousands are held; below the
        // 10 000 the target names (a hard fd limit of 20 000 allows 9 9xx: two per
        // connection) the count is said beside the verdict.
        let judged = if idle.kib_per_connection <= r.target_idle_kib { "**met**" } else { "**missed**" };
        let verdict = if idle.connections < 1_000 {
            "**not judged** (too few connections)".to_string()
        } else if idle.connections < 10_000 {
            format!("{judged} at {} held, not 10 000", idle.connections)
        } else {
            judged.to_string()
        };
        let _ = writeln!(o, "### Idle connections\n");
        let _ = writeln!(o, "SPEC target: gateway RSS **≤ {:.0} KiB per idle authenticated connection**, 10 000 held.\n", r.target_idle_kib);
        let _ = writeln!(o, "| connections held | opened in s | gateway RSS before → held | KiB per connection | gateway fds before → held | answered after the hold | RSS after closing | target |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        let fds = |f: Option<usize>| f.map_or("n/a".into(), |v| v.to_string());
        let _ = writeln!(
            o,
            "| {}{} | {:.1} | {:.1} → {:.1} MiB | **{:.1}** | {} → {} | {} | {:.1} MiB | {} |\n",
            idle.connections,
            if idle.connections < idle.requested { format!(" (of {} asked; fd limit {})", idle.requested, idle.nofile_limit) } else { String::new() },
            idle.open_s,
            idle.rss_before_kib as f64 / 1024.0,
            idle.rss_held_kib as f64 / 1024.0,
            idle.kib_per_connection,
            fds(idle.fds_before),
            fds(idle.fds_held),
            idle.answered_after_hold,
            idle.rss_after_close_kib as f64 / 1024.0,
            verdict,
        );
        let _ = writeln!(o, "Each connection: TCP connect to the bootstrap port, SaslHandshake + SaslAuthenticate ({}), one ApiVersions, then nothing; 64 are opened at a time. The gateway holds an upstream connection to a pool broker for each (two file descriptors per connection). RSS is read 2 s after the last one opened; every connection is asked ApiVersions again after that to show it was still open and served.\n", r.params.mechanisms.first().map_or("PLAIN", |m| m.as_str()));
    }
    let _ = writeln!(o, "## Machine\n\n| | |\n|---|---|");
    let _ = writeln!(o, "| CPUs (nproc) | {} |", m.nproc);
    let _ = writeln!(o, "| CPU model | {} |", m.cpu_model);
    let _ = writeln!(o, "| memory | {:.1} GiB |", m.mem_total_gib);
    let _ = writeln!(o, "| kernel | {} |", m.kernel);
    let _ = writeln!(o, "| date | {} |", m.date_utc);
    let _ = writeln!(
        o,
        "| gateway build | `{}` ({} profile); HEAD: {} |",
        m.gateway_bin, m.gateway_profile, m.git_commit
    );
    let _ = writeln!(
        o,
        "| load generator | {} build, one tokio current-thread runtime |",
        m.loadtest_profile
    );
    let _ = writeln!(
        o,
        "| load average 1/5/15 min | before {:.2} / {:.2} / {:.2}, after {:.2} / {:.2} / {:.2} |\n",
        m.load_before[0],
        m.load_before[1],
        m.load_before[2],
        m.load_after[0],
        m.load_after[1],
        m.load_after[2]
    );
    if m.load_before[0].max(m.load_after[0]) > m.nproc as f64 * 0.5 {
        let _ = writeln!(o, "Note: the machine was not idle (1-minute load {:.2} before and {:.2} after the run, on {} CPUs): the gateway, the load generator, the Kafka pool and unrelated work share the cores, so rates are low and tail latencies noisy (a runnable task waiting for a CPU shows up as milliseconds in p99). Authentications per gateway CPU-second is the least disturbed figure.\n", m.load_before[0], m.load_after[0], m.nproc);
    }
    let _ = writeln!(o, "## Method\n");
    let _ = writeln!(o, "- Gateway: `sluice serve` with `listener.auth = \"sasl\"`, mechanisms {}, one issuer backed by a JWKS file (an Ed25519 key from `sluice token keygen`), started by the benchmark on free loopback ports and stopped at the end; `RUST_LOG={}` (at `info` the gateway logs one line per successful authentication, as deployed).", p.mechanisms.join(", "), r.gateway_log_level);
    let _ = writeln!(o, "- Token: one EdDSA JWT ({} bytes) from `sluice token mint --tenant {TENANT} --subject {SUBJECT} --ttl-secs 3600`, reused by every client; the key is cached from the gateway's startup JWKS load, so no fetch is measured.", r.token_bytes);
    let _ = writeln!(o, "- Clients: {} concurrent raw-TCP clients (each count a separate set of phases) on one tokio current-thread runtime in the `loadtest` process, frames built with kafka-protocol: SaslHandshake v{HANDSHAKE_VERSION} then SaslAuthenticate v{AUTHENTICATE_VERSION}, each answer checked for error 0 (and no OAUTHBEARER challenge). Any failure aborts the run.", p.clients.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" or "));
    let _ = writeln!(o, "- Variants: `connect` — a new TCP connection per authentication (connect, handshake, authenticate, close); the gateway opens an upstream connection to a pool broker for every client connection, so this is the whole cost of a client arriving. `reauth` — one connection per client, authenticated once, then re-authenticated repeatedly (KIP-368 handshake + authenticate), which isolates the SASL + JWT cost.");
    let _ = writeln!(o, "- Each phase: {:.1} s warm-up (not measured), then {:.1} s measured (at most {} authentications). Latency: HDR histogram (ns, 3 significant digits); \"auth\" is SaslAuthenticate sent → response read, \"total\" is handshake + authenticate (+ connect for `connect`). Client-side, so it includes loopback and the client's own scheduling on a shared machine.", p.warmup_s, p.duration_s, p.max_auths);
    let _ = writeln!(o, "- Gateway CPU: utime + stime from `/proc/<pid>/stat` around the measured part of each phase. Authentications per gateway CPU-second is the per-core rate; the load generator's own CPU is in `auth.json` (`client_cpu_s`).\n");
    let _ = writeln!(o, "## Reproduce\n\n```sh\ndeploy/pool.sh start   # the gateway needs the pool for its upstream connections\ncargo bench -p sluice-tenancy --bench verify   # optional: the criterion table\n{}\n```\n\nThis run was invoked as `{}`.", r.command, r.invocation);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_names_the_bench_tenant() {
        let seed: serde_json::Value = serde_json::from_str(&seed_tenants()).expect("seed is JSON");
        assert_eq!(seed[0]["id"], TENANT);
    }

    #[test]
    fn sasl_payloads() {
        assert_eq!(
            auth_bytes("OAUTHBEARER", "a.b.c").unwrap(),
            Bytes::from_static(b"n,,\x01auth=Bearer a.b.c\x01\x01")
        );
        assert_eq!(
            auth_bytes("PLAIN", "a.b.c").unwrap(),
            Bytes::from_static(b"\0s\0a.b.c")
        );
        assert!(auth_bytes("SCRAM", "x").is_err());
    }

    #[test]
    fn netstat_tcp_ext() {
        let text = "TcpExt: SyncookiesSent ListenOverflows TCPSynRetrans\nTcpExt: 0 6 7\nIpExt: InNoRoutes\nIpExt: 0\n";
        let m = parse_tcp_ext(text).unwrap();
        assert_eq!((m["ListenOverflows"], m["TCPSynRetrans"]), (6, 7));
        assert!(parse_tcp_ext("IpExt: a\nIpExt: 1\n").is_none());
    }

    #[test]
    fn budget_and_histogram() {
        let b = AtomicU64::new(2);
        assert!(take(&b) && take(&b) && !take(&b));
        let mut h = histogram();
        record(&mut h, Duration::from_micros(250));
        record(&mut h, Duration::from_nanos(10));
        let l = Latency::of(&h);
        assert_eq!(l.count, 2);
        assert!((l.max_us - 250.0).abs() < 1.0, "{l:?}");
    }
}
