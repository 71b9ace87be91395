//! `quota-bench`: how exactly the gateway holds tenants to their byte-rate quotas
//! (SPEC 7), measured with Kafka's own perf tools authenticating as tenants over
//! SASL/PLAIN against a `sluice` started for the run, and the pool read directly.
//!
//! 1. Direct capacity: ProducerPerformance at full speed straight to the pool (one
//!    partition, then the tenant phase's partition count), so the run knows the pool
//!    can deliver the overload it asks for; a configured quota that the pool cannot
//!    carry at the overload factor (with 10% to spare) is lowered, and that is reported.
//! 2. Accuracy and time to converge, each under sustained overload: a partition write
//!    quota (one partition, producer offering `overload` × quota), a partition read
//!    quota (a consumer reading a backlog, which offers far more than 2×: the direct
//!    read rate is reported beside it), and a tenant write quota spread over several
//!    partitions. Written bytes come from the pool (leader log sizes and end offsets
//!    sampled every `sample_ms`, straight from the brokers); read bytes from the
//!    consumer tool's own per-interval progress. Rates are compared with the quota in
//!    the bytes the gateway charges (record batches as sent).
//! 3. Noisy neighbour: a victim tenant produces at a fixed modest rate, alone and
//!    while a flooding tenant offers `flood_factor` × its partition quota, in
//!    alternating runs (alone, flood, alone, ...); its p50/p99 produce latency per run.
//!
//! Tenants are written to the tenant store with `sluice tenant put` (as the pytest
//! quota tests do) before the gateway starts; topics are created straight in the pool
//! under the tenants' prefixes. Both are deleted afterwards. Targets are reported,
//! never asserted: a failed tool run, short counts or a dead gateway fail the run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use serde::Serialize;

use crate::bench::{scan_log, Contention, LogScan};
use crate::gateway::Gateway;
use crate::perf::{
    metric, parse_consumer, parse_consumer_progress, parse_producer, tail, ConsumeResult,
    KafkaTool, ProduceResult,
};
use crate::pool::{PoolClient, Sample, Sampler};
use crate::procfs;
use crate::rates::{self, Point, Span, Window};
use crate::report::{command_line, profile_of, utc_date};
use crate::sasl;
use crate::stats::median;

const MIB: f64 = 1024.0 * 1024.0;
/// Quotas no phase should reach (the limits a phase does not measure).
const UNLIMITED: u64 = 64 << 20;
/// Goals of SPEC 7.
const ACCURACY_BAND: f64 = 0.05;
const NOISY_P99_GOAL: f64 = 0.10;
/// The subject every tenant's token names.
const SUBJECT: &str = "bench";

/// What to run; filled from the command line.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub record_size: u64,
    /// Configured partition read and write quota, bytes/s.
    pub partition_quota: u64,
    /// Configured tenant write quota, bytes/s.
    pub tenant_quota: u64,
    /// Partitions the tenant write quota is spread over.
    pub tenant_partitions: i32,
    /// Offered rate / quota in the write accuracy phases.
    pub overload: f64,
    /// Offered rate / partition quota of the flooding tenant.
    pub flood_factor: f64,
    /// Seconds each accuracy phase lasts at the quota.
    pub measure_s: f64,
    /// Seconds after the overload starts that are never part of the steady state.
    pub settle_s: f64,
    /// Sliding window width for convergence, seconds.
    pub window_s: f64,
    /// Pool sampling interval, ms.
    pub sample_ms: u64,
    /// Producer batching in the quota phases (the flood included).
    pub batch_size: u32,
    pub linger_ms: u32,
    /// Seconds of each direct-capacity produce run (at ~2 MiB/s per partition).
    pub direct_s: f64,
    /// Victim records/s, and seconds per victim run.
    pub victim_rate: u64,
    pub victim_s: f64,
    /// Flood runs; there is an alone run before, between and after them.
    pub rounds: u32,
    pub tool_timeout_s: u64,
    pub smoke: bool,
}

pub struct Setup {
    pub gateway_bin: PathBuf,
    pub kafka_tool: PathBuf,
    pub pool_bootstrap: Vec<String>,
    pub out_dir: PathBuf,
    pub work_dir: PathBuf,
    pub command: String,
    pub invocation: String,
    pub git_commit: String,
}

/// A full-speed produce straight to the pool.
#[derive(Debug, Clone, Serialize)]
pub struct DirectRun {
    pub topic: String,
    pub partitions: i32,
    pub result: ProduceResult,
    /// Payload bytes/s the tool reported.
    pub payload_bytes_per_sec: f64,
}

/// The quotas the run used, and why they differ from the configured ones if they do.
#[derive(Debug, Clone, Serialize)]
pub struct Quotas {
    pub partition_configured: u64,
    pub partition: u64,
    pub tenant_configured: u64,
    pub tenant: u64,
    pub notes: Vec<String>,
}

/// One accuracy phase.
#[derive(Debug, Clone, Serialize)]
pub struct Accuracy {
    pub name: &'static str,
    /// Which limit, as the tenant document names it.
    pub limit_key: &'static str,
    pub quota_bytes_per_sec: u64,
    /// What the client offered, bytes/s (for reads: the direct read rate).
    pub offered_bytes_per_sec: f64,
    pub offered_factor: f64,
    pub partitions: i32,
    pub records: u64,
    /// Where the figures come from.
    pub source: &'static str,
    /// Record batch bytes per payload byte (the gateway charges batches).
    pub wire_per_payload: f64,
    /// Overload start, last reading while active, and the end, seconds on the
    /// benchmark clock.
    pub start: f64,
    pub last_active: f64,
    pub steady_from_s: f64,
    /// Charged bytes/s over the steady window, and its ratio to the quota.
    pub achieved_bytes_per_sec: Option<f64>,
    pub ratio: Option<f64>,
    /// Payload bytes/s over the same window, and its ratio.
    pub achieved_payload_bytes_per_sec: Option<f64>,
    pub payload_ratio: Option<f64>,
    /// Charged bytes/s over the whole overload (burst included) / quota.
    pub whole_run_ratio: Option<f64>,
    /// The tool's own whole-run payload rate / quota (JVM start excluded, burst and
    /// ramp included).
    pub tool_ratio: Option<f64>,
    /// Seconds from the overload's start until every later window stays in ±5%.
    pub converged_5pct_s: Option<f64>,
    /// The narrowest band (fraction) reached and stayed in, with its time.
    pub nearest_band: Option<(f64, f64)>,
    /// Largest deviation of a steady-state window from the quota.
    pub steady_max_window_deviation: Option<f64>,
    /// One batch / (quota × window): the granularity of a window's rate.
    pub window_resolution: f64,
    pub throttle_avg_ms: Option<f64>,
    pub throttle_max_ms: Option<f64>,
    pub tool_line: String,
    /// Window rates relative to the start, charged bytes/s.
    pub windows: Vec<Window>,
}

/// One victim run.
#[derive(Debug, Clone, Serialize)]
pub struct VictimRun {
    pub index: u32,
    pub with_flood: bool,
    pub result: ProduceResult,
    pub throttle_max_ms: Option<f64>,
    /// The client's WARN lines (retries after a leader move and the like).
    pub warn_lines: usize,
    pub wall_s: f64,
    /// Share of the run during which some task waited for a CPU (PSI "some").
    pub cpu_pressure_pct: Option<f64>,
    pub load1_after: f64,
    pub flood: Option<Flood>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Flood {
    pub offered_bytes_per_sec: f64,
    /// Whether the flood was still running when the victim's run ended.
    pub outlasted_victim: bool,
    /// Pool-side steady rate of the flood / its partition quota.
    pub ratio: Option<f64>,
    pub throttle_avg_ms: Option<f64>,
    pub tool_line: String,
}

/// A flood run beside the mean of the alone runs before and after it.
#[derive(Debug, Clone, Serialize)]
pub struct NoisyRound {
    pub round: u32,
    pub alone_p50_ms: f64,
    pub alone_p95_ms: f64,
    pub alone_p99_ms: f64,
    pub flood_p50_ms: f64,
    pub flood_p95_ms: f64,
    pub flood_p99_ms: f64,
    pub p50_change: Option<f64>,
    pub p95_change: Option<f64>,
    pub p99_change: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Noisy {
    pub victim_rate: u64,
    pub victim_records: u64,
    pub runs: Vec<VictimRun>,
    pub rounds: Vec<NoisyRound>,
    pub median_p99_change: Option<f64>,
    pub median_p95_change: Option<f64>,
    pub median_p50_change: Option<f64>,
    /// Relative p99 change between consecutive alone runs: the machine's own noise.
    pub alone_to_alone_p99_changes: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_gib: f64,
    pub kernel: String,
    pub kafka_version: String,
    pub date_utc: String,
    pub gateway_bin: String,
    pub gateway_profile: String,
    pub gateway_bin_modified_utc: String,
    pub loadtest_profile: &'static str,
    pub git_commit: String,
}

#[derive(Debug, Serialize)]
pub struct Goal {
    pub goal: String,
    pub target: String,
    pub measured: String,
    pub status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub machine: Machine,
    pub contention: Contention,
    pub params: Params,
    pub command: String,
    pub invocation: String,
    pub tenants: Vec<String>,
    /// Tenants that vanished from the shared store mid-run and were written again.
    pub tenants_restored: Vec<String>,
    pub direct: Vec<DirectRun>,
    pub quotas: Quotas,
    pub accuracy: Vec<Accuracy>,
    pub noisy: Noisy,
    pub goals: Vec<Goal>,
    pub gateway_log: LogScan,
}

/// A tenant of the run: its id, limits, and the client settings file that
/// authenticates as it.
struct TenantRun {
    id: String,
    /// Its tenant document, to write it again if it vanishes from the store.
    doc: serde_json::Value,
    limits: serde_json::Value,
    token: String,
    props: PathBuf,
}

/// Runs the benchmark and writes `quotas.json` and `quotas.md`.
pub fn run(params: &Params, setup: &Setup) -> anyhow::Result<(PathBuf, PathBuf)> {
    for dir in [&setup.work_dir, &setup.out_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let load_before = procfs::loadavg()?;
    let pressure_before = procfs::cpu_pressure_us();
    let started = Instant::now();
    let started_unix = unix_now();
    let run = format!(
        "{:08x}",
        (started_unix as u32) ^ std::process::id().wrapping_mul(2_654_435_761)
    );
    let ids = ["p", "t", "v", "f"].map(|s| format!("qb{run}-{s}"));
    let topics = Topics::new(&run, &ids, params.tenant_partitions);
    eprintln!("[quota-bench] work dir {}", setup.work_dir.display());
    let mut pool = PoolClient::new(&setup.pool_bootstrap);
    let names: Vec<String> = topics.all().into_iter().map(|(n, _)| n).collect();
    if let Err(e) = pool.create_topics(&topics.all()) {
        // Some may have been created before the failure.
        let _ = pool.delete_topics(&names);
        return Err(e).context("creating the benchmark topics in the pool");
    }

    let result = run_with_topics(params, setup, &ids, &topics, started);

    match pool.delete_topics(&names) {
        Ok(failed) if failed.is_empty() => {}
        Ok(failed) => eprintln!("[quota-bench] warning: topics not deleted: {failed:?}"),
        Err(e) => eprintln!("[quota-bench] warning: deleting topics: {e}"),
    }
    for id in &ids {
        if let Err(e) = tenant_cli(setup, &["delete", id], None) {
            eprintln!("[quota-bench] warning: deleting tenant {id}: {e:#}");
        }
    }
    let (direct, quotas, accuracy, noisy, gateway_log, tenants_restored) = result?;

    let wall_s = started.elapsed().as_secs_f64();
    let contention = Contention {
        load_before,
        load_after: procfs::loadavg()?,
        wall_s,
        cpu_pressure_pct: pressure_before
            .zip(procfs::cpu_pressure_us())
            .map(|(b, a)| a.saturating_sub(b) as f64 / 1e6 / wall_s * 100.0),
    };
    let goals = goals(&accuracy, &noisy);
    let report = Report {
        schema: "sluice.loadtest.quotas/1",
        machine: machine(setup, started_unix)?,
        contention,
        params: params.clone(),
        command: setup.command.clone(),
        invocation: setup.invocation.clone(),
        tenants: ids.to_vec(),
        tenants_restored,
        direct,
        quotas,
        accuracy,
        noisy,
        goals,
        gateway_log,
    };
    let json_path = setup.out_dir.join("quotas.json");
    let md_path = setup.out_dir.join("quotas.md");
    let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, markdown(&report))
        .with_context(|| format!("writing {}", md_path.display()))?;
    Ok((json_path, md_path))
}

/// The run's topics: pool names (tenant topics carry the tenant's prefix) and the
/// names tenants use.
struct Topics {
    direct_one: String,
    direct_many: String,
    /// Tenant-side names, and the pool names under each tenant's prefix.
    pw: (String, String),
    pr: (String, String),
    tw: (String, String),
    victim: (String, String),
    flood: (String, String),
    tenant_partitions: i32,
}

impl Topics {
    fn new(run: &str, ids: &[String; 4], tenant_partitions: i32) -> Self {
        let t = |id: &String, n: &str| (n.to_string(), format!("{id}.{n}"));
        Topics {
            direct_one: format!("loadtest-quota-{run}-direct1"),
            direct_many: format!("loadtest-quota-{run}-direct{tenant_partitions}"),
            pw: t(&ids[0], "pw"),
            pr: t(&ids[0], "pr"),
            tw: t(&ids[1], "tw"),
            victim: t(&ids[2], "victim"),
            flood: t(&ids[3], "flood"),
            tenant_partitions,
        }
    }

    fn all(&self) -> Vec<(String, i32)> {
        vec![
            (self.direct_one.clone(), 1),
            (self.direct_many.clone(), self.tenant_partitions),
            (self.pw.1.clone(), 1),
            (self.pr.1.clone(), 1),
            (self.tw.1.clone(), self.tenant_partitions),
            (self.victim.1.clone(), 1),
            (self.flood.1.clone(), 1),
        ]
    }
}

type Outcome = (
    Vec<DirectRun>,
    Quotas,
    Vec<Accuracy>,
    Noisy,
    LogScan,
    Vec<String>,
);

fn run_with_topics(
    params: &Params,
    setup: &Setup,
    ids: &[String; 4],
    topics: &Topics,
    epoch: Instant,
) -> anyhow::Result<Outcome> {
    let mut tool = KafkaTool::new(setup.kafka_tool.clone(), setup.work_dir.clone());
    let pool = setup.pool_bootstrap.join(",");
    let p = params;

    // 1. What the pool delivers straight, now.
    let mut direct = Vec::new();
    for (topic, partitions, mib_s) in [
        (&topics.direct_one, 1, 2.5),
        (&topics.direct_many, topics.tenant_partitions, 4.0),
    ] {
        let records = ((p.direct_s * mib_s * MIB) / p.record_size as f64).ceil() as u64;
        let label = format!("direct-{partitions}p");
        eprintln!("[quota-bench] {label}: {records} records at full speed straight to the pool");
        let out = tool.run(
            &label,
            "kafka-producer-perf-test",
            &producer_args(p, topic, records, -1.0, &pool, None, &label, true),
            Duration::from_secs(p.tool_timeout_s),
        )?;
        let result = parse_producer(&out.stdout, &out.stderr).context("direct produce")?;
        ensure!(
            result.records == records && result.error_lines == 0,
            "{label}: {} of {records} records, {} error lines",
            result.records,
            result.error_lines
        );
        eprintln!("[quota-bench]   {}", result.raw);
        direct.push(DirectRun {
            topic: topic.clone(),
            partitions,
            payload_bytes_per_sec: result.mb_per_sec * MIB,
            result,
        });
    }
    let quotas = pick_quotas(
        p,
        direct[0].payload_bytes_per_sec,
        direct[1].payload_bytes_per_sec,
    );
    for n in &quotas.notes {
        eprintln!("[quota-bench] {n}");
    }

    // 2. Tenants in the store, then the gateway, which loads them.
    let key = sasl::keygen(&setup.gateway_bin, &setup.work_dir)?;
    let (pq, tq) = (quotas.partition, quotas.tenant);
    let limits = [
        serde_json::json!({"partition_produce_bytes_per_sec": pq, "partition_consume_bytes_per_sec": pq,
                           "produce_bytes_per_sec": UNLIMITED, "consume_bytes_per_sec": UNLIMITED}),
        serde_json::json!({"produce_bytes_per_sec": tq, "partition_produce_bytes_per_sec": UNLIMITED}),
        serde_json::json!({}),
        serde_json::json!({"partition_produce_bytes_per_sec": pq, "produce_bytes_per_sec": UNLIMITED}),
    ];
    let mut tenants = Vec::new();
    for (id, limits) in ids.iter().zip(limits) {
        let doc = sasl::tenant_doc(id, &limits);
        let out = tenant_cli(setup, &["put", "-"], Some(&doc.to_string()))?;
        ensure!(
            out.contains(&format!("\"id\":\"{id}\"")),
            "sluice tenant put {id} answered {out:?}"
        );
        let token = sasl::mint(&setup.gateway_bin, &key, id, SUBJECT, 7200)?;
        tenants.push(TenantRun {
            id: id.clone(),
            doc,
            limits,
            token,
            props: setup.work_dir.join(format!("{id}.properties")),
        });
    }
    let gateway_dir = setup.work_dir.join("gateway");
    std::fs::create_dir_all(&gateway_dir)
        .with_context(|| format!("creating {}", gateway_dir.display()))?;
    let pool_list = setup.pool_bootstrap.clone();
    let jwks = key.jwks.clone();
    let mut gateway = Gateway::start_with_config(
        &setup.gateway_bin,
        &gateway_dir,
        Duration::from_secs(30),
        |base| sasl::sasl_config(base, &pool_list, &jwks, None, "PLAIN", "quota-bench"),
    )
    .context("starting the gateway")?;
    eprintln!(
        "[quota-bench] gateway pid {} on {}",
        gateway.pid, gateway.bootstrap
    );
    for t in &tenants {
        std::fs::write(
            &t.props,
            sasl::java_plain_properties(&gateway.bootstrap, SUBJECT, &t.token),
        )
        .with_context(|| format!("writing {}", t.props.display()))?;
        wait_admitted(&gateway.bootstrap, t, Duration::from_secs(60))?;
        eprintln!(
            "[quota-bench] tenant {} admitted, limits {}",
            t.id, t.limits
        );
    }

    let mut b = Bench {
        p,
        setup,
        tool: &mut tool,
        pool,
        gateway: &mut gateway,
        epoch,
        restored: Vec::new(),
    };
    let mut accuracy = Vec::new();
    let measure_records = |quota: u64| {
        ((quota as f64 * (p.measure_s + p.settle_s)) / p.record_size as f64).ceil() as u64
    };
    accuracy.push(b.produce_accuracy(
        "partition write",
        "partition_produce_bytes_per_sec",
        &tenants[0],
        &topics.pw,
        1,
        pq,
        measure_records(pq),
    )?);
    accuracy.push(b.read_accuracy(&tenants[0], &topics.pr, pq, measure_records(pq))?);
    accuracy.push(b.produce_accuracy(
        "tenant write",
        "produce_bytes_per_sec",
        &tenants[1],
        &topics.tw,
        topics.tenant_partitions,
        tq,
        measure_records(tq),
    )?);
    let noisy = b.noisy(&tenants[2], &tenants[3], &topics.victim, &topics.flood, pq)?;
    let restored = std::mem::take(&mut b.restored);

    gateway.stop();
    let log = scan_log(&gateway.log_path)?;
    Ok((direct, quotas, accuracy, noisy, log, restored))
}

/// The configured quotas, lowered where the pool's direct rate cannot carry
/// `overload` × quota with 10% to spare (rounded down to 16 KiB).
pub fn pick_quotas(p: &Params, direct_one: f64, direct_many: f64) -> Quotas {
    let mut notes = Vec::new();
    let mut pick = |configured: u64, direct: f64, what: &str| {
        let fits = direct / (p.overload * 1.1);
        if (configured as f64) <= fits {
            return configured;
        }
        let lowered = ((fits / 16_384.0).floor() as u64 * 16_384).max(16_384);
        notes.push(format!(
            "{what} quota lowered from {} to {} KiB/s: the pool took only {:.0} KiB/s straight, \
             short of {:.1}× the configured quota plus 10%",
            configured / 1024,
            lowered / 1024,
            direct / 1024.0,
            p.overload
        ));
        lowered
    };
    let partition = pick(p.partition_quota, direct_one, "partition");
    // The flood offers more than `overload` ×, but only the quota of it is let through.
    let tenant = pick(p.tenant_quota, direct_many, "tenant");
    Quotas {
        partition_configured: p.partition_quota,
        partition,
        tenant_configured: p.tenant_quota,
        tenant,
        notes,
    }
}

struct Bench<'a> {
    p: &'a Params,
    setup: &'a Setup,
    tool: &'a mut KafkaTool,
    /// Pool bootstrap, comma-joined.
    pool: String,
    gateway: &'a mut Gateway,
    epoch: Instant,
    /// Tenants written again because they had vanished from the store, with when.
    restored: Vec<String>,
}

impl Bench<'_> {
    /// Makes sure the tenants a phase needs are still in the store as written: the
    /// store is shared with every test suite on the pool, and during one run another
    /// suite deleted this run's tenants and rewrote one with empty `limits` (so the
    /// flood went unthrottled). A missing or altered tenant is written again and
    /// waited for, and noted in the report.
    fn ensure_tenants(&mut self, phase: &str, tenants: &[&TenantRun]) -> anyhow::Result<()> {
        for t in tenants {
            let state = tenant_state(self.setup, &t.id, &t.limits)?;
            if state == TenantState::Intact {
                continue;
            }
            eprintln!(
                "[quota-bench] warning: tenant {} {state:?} in the store before {phase}; writing it again",
                t.id
            );
            tenant_cli(self.setup, &["put", "-"], Some(&t.doc.to_string()))?;
            wait_admitted(&self.gateway.bootstrap, t, Duration::from_secs(60))?;
            self.restored
                .push(format!("{} {state:?} before {phase}", t.id).to_lowercase());
        }
        Ok(())
    }

    /// After a phase: a tenant changed by someone else meanwhile makes the phase's
    /// figures suspect; say so in the report (the next phase restores it).
    fn verify_tenants(&mut self, phase: &str, tenants: &[&TenantRun]) -> anyhow::Result<()> {
        for t in tenants {
            let state = tenant_state(self.setup, &t.id, &t.limits)?;
            if state != TenantState::Intact {
                eprintln!(
                    "[quota-bench] warning: tenant {} {state:?} during {phase}: its figures are suspect",
                    t.id
                );
                self.restored.push(
                    format!("{} {state:?} during {phase} (figures suspect)", t.id).to_lowercase(),
                );
            }
        }
        Ok(())
    }

    fn check_gateway(&mut self, what: &str) -> anyhow::Result<()> {
        if !self.gateway.alive() {
            let log = std::fs::read_to_string(&self.gateway.log_path).unwrap_or_default();
            bail!(
                "the gateway exited during {what}; log tail:\n{}",
                tail(&log, 3000)
            );
        }
        Ok(())
    }

    fn sampler(&self, pool_topic: &str) -> anyhow::Result<(Sampler, Sample)> {
        let sampler = Sampler::start(
            &self.setup.pool_bootstrap,
            pool_topic,
            Duration::from_millis(self.p.sample_ms),
            self.epoch,
        )
        .with_context(|| format!("sampling {pool_topic}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = sampler.latest() {
                return Ok((sampler, s));
            }
            ensure!(
                Instant::now() < deadline,
                "no sample of {pool_topic} from the pool within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A producer through the gateway offering `overload` × `quota` until `records`
    /// are written, the pool sampled throughout.
    #[allow(clippy::too_many_arguments)]
    fn produce_accuracy(
        &mut self,
        name: &'static str,
        limit_key: &'static str,
        tenant: &TenantRun,
        topic: &(String, String),
        partitions: i32,
        quota: u64,
        records: u64,
    ) -> anyhow::Result<Accuracy> {
        let p = self.p;
        let label = name.replace(' ', "-");
        let offered = p.overload * quota as f64;
        eprintln!(
            "[quota-bench] {name}: quota {} KiB/s, offering {:.0} KiB/s, {records} records over {partitions} partition(s)",
            quota / 1024,
            offered / 1024.0
        );
        self.ensure_tenants(name, &[tenant])?;
        let (sampler, base) = self.sampler(&topic.1)?;
        let args = producer_args(
            p,
            &topic.0,
            records,
            offered / p.record_size as f64,
            "",
            Some(&tenant.props),
            &label,
            true,
        );
        let run = self.tool.run(
            &label,
            "kafka-producer-perf-test",
            &args,
            Duration::from_secs(p.tool_timeout_s),
        );
        self.check_gateway(name)?;
        let samples = sampler.stop()?;
        let out = run?;
        self.verify_tenants(name, &[tenant])?;
        let result = parse_producer(&out.stdout, &out.stderr)
            .with_context(|| format!("{name}: {}", tail(&out.stderr, 2000)))?;
        eprintln!("[quota-bench]   {}", result.raw);
        ensure!(
            result.records == records && result.error_lines == 0,
            "{name}: {} of {records} records sent, {} error lines:\n{}",
            result.records,
            result.error_lines,
            tail(&out.stderr, 2000)
        );
        let last = samples.last().copied().context("no pool samples")?;
        ensure!(
            last.records == base.records + records,
            "{name}: the pool holds {} records, {} expected",
            last.records - base.records,
            records
        );
        let bytes = points(&samples, |s| s.bytes as f64);
        let recs = points(&samples, |s| s.records as f64);
        let span = rates::span(&recs, base.records as f64, records as f64)
            .context("the pool never saw the records arrive")?;
        let wire_per_payload = (last.bytes - base.bytes) as f64 / (records * p.record_size) as f64;
        let throttle = |m: &str| {
            metric(
                &out.stdout,
                &format!("producer-metrics:produce-throttle-time-{m}"),
            )
        };
        Ok(self.accuracy(
            AccuracyInput {
                name,
                limit_key,
                quota,
                offered,
                partitions,
                records,
                source: "pool: leader log sizes and end offsets, sampled",
                wire_per_payload,
                span,
                tool_ratio: result.mb_per_sec * MIB * wire_per_payload / quota as f64,
                throttle_avg_ms: throttle("avg"),
                throttle_max_ms: throttle("max"),
                tool_line: result.raw.clone(),
            },
            &bytes,
            &recs,
        ))
    }

    fn accuracy(&self, i: AccuracyInput, bytes: &[Point], recs: &[Point]) -> Accuracy {
        let p = self.p;
        let q = i.quota as f64;
        let s = i.span;
        let windows = rates::windows(bytes, p.window_s, s.start, s.last_active);
        let conv = rates::converged_after(&windows, s.start, q, ACCURACY_BAND);
        let steady_from = rates::steady_from(conv, p.settle_s, s.last_active - s.start);
        let steady = rates::average_rate(bytes, s.start + steady_from, s.last_active);
        let steady_recs = rates::average_rate(recs, s.start + steady_from, s.last_active);
        let whole = rates::average_rate(bytes, s.start, s.last_active);
        let steady_windows: Vec<Window> = windows
            .iter()
            .filter(|w| w.start >= s.start + steady_from - 1e-9)
            .copied()
            .collect();
        let payload = steady_recs.map(|w| w.rate * p.record_size as f64);
        Accuracy {
            name: i.name,
            limit_key: i.limit_key,
            quota_bytes_per_sec: i.quota,
            offered_bytes_per_sec: i.offered,
            offered_factor: i.offered / q,
            partitions: i.partitions,
            records: i.records,
            source: i.source,
            wire_per_payload: i.wire_per_payload,
            start: s.start,
            last_active: s.last_active,
            steady_from_s: steady_from,
            achieved_bytes_per_sec: steady.map(|w| w.rate),
            ratio: steady.map(|w| w.rate / q),
            achieved_payload_bytes_per_sec: payload,
            payload_ratio: payload.map(|r| r / q),
            whole_run_ratio: whole.map(|w| w.rate / q),
            tool_ratio: Some(i.tool_ratio).filter(|r| r.is_finite()),
            converged_5pct_s: conv,
            nearest_band: rates::nearest_band(&windows, s.start, q),
            steady_max_window_deviation: rates::max_deviation(&steady_windows, q),
            window_resolution: p.batch_size as f64 / (q * p.window_s),
            throttle_avg_ms: i.throttle_avg_ms,
            throttle_max_ms: i.throttle_max_ms,
            tool_line: i.tool_line,
            windows: windows
                .iter()
                .map(|w| Window {
                    start: round3(w.start - s.start),
                    end: round3(w.end - s.start),
                    rate: w.rate.round(),
                })
                .collect(),
        }
    }

    /// Fills a partition straight in the pool, reads it straight (the read rate the
    /// pool offers), then through the gateway as the tenant, with per-second progress.
    fn read_accuracy(
        &mut self,
        tenant: &TenantRun,
        topic: &(String, String),
        quota: u64,
        records: u64,
    ) -> anyhow::Result<Accuracy> {
        let p = self.p;
        let name = "partition read";
        eprintln!(
            "[quota-bench] {name}: filling {} with {records} records straight",
            topic.1
        );
        let out = self.tool.run(
            "read-fill",
            "kafka-producer-perf-test",
            &producer_args(
                p,
                &topic.1,
                records,
                -1.0,
                &self.pool,
                None,
                "read-fill",
                false,
            ),
            Duration::from_secs(p.tool_timeout_s),
        )?;
        let fill = parse_producer(&out.stdout, &out.stderr).context("filling the read topic")?;
        ensure!(
            fill.records == records && fill.error_lines == 0,
            "read fill: {} of {records} records",
            fill.records
        );
        let mut client = PoolClient::new(&self.setup.pool_bootstrap);
        let leaders = client.leaders(&topic.1)?;
        let (pool_records, pool_bytes) = client.totals(&topic.1, &leaders)?;
        ensure!(
            pool_records == records,
            "read topic holds {pool_records} of {records} records"
        );
        let wire_per_payload = pool_bytes as f64 / (records * p.record_size) as f64;

        let direct = self.consume("read-direct", &self.pool.clone(), &topic.1, records, None)?;
        let direct_rate = direct.fetch_mb_per_sec * MIB * wire_per_payload;
        eprintln!(
            "[quota-bench]   straight from the pool: {:.0} KiB/s ({:.1}× the quota)",
            direct_rate / 1024.0,
            direct_rate / quota as f64
        );

        // Small fetches: with the default 1 MiB per partition a throttled consumer gets
        // 2 s of quota at once and 1 s windows see nothing.
        let read_props = self
            .setup
            .work_dir
            .join(format!("{}-read.properties", tenant.id));
        let base_props = std::fs::read_to_string(&tenant.props)
            .with_context(|| format!("reading {}", tenant.props.display()))?;
        std::fs::write(
            &read_props,
            format!(
                "{base_props}max.partition.fetch.bytes={0}\nfetch.max.bytes={0}\n",
                read_fetch_bytes(p)
            ),
        )
        .with_context(|| format!("writing {}", read_props.display()))?;
        self.ensure_tenants(name, &[tenant])?;
        let interval_ms = 1000;
        let args = strings(&[
            "--bootstrap-server",
            &self.gateway.bootstrap.clone(),
            "--topic",
            &topic.0,
            "--messages",
            &records.to_string(),
            "--group",
            &format!("quota-bench-read-{}", std::process::id()),
            "--timeout",
            "30000",
            "--consumer.config",
            &read_props.display().to_string(),
            "--show-detailed-stats",
            "--reporting-interval",
            &interval_ms.to_string(),
            "--print-metrics",
        ]);
        let run = self.tool.run(
            "read-gateway",
            "kafka-consumer-perf-test",
            &args,
            Duration::from_secs(p.tool_timeout_s),
        );
        self.check_gateway(name)?;
        let out = run?;
        self.verify_tenants(name, &[tenant])?;
        let progress = parse_consumer_progress(&out.stdout)
            .with_context(|| format!("{name}: {}", tail(&out.stdout, 2000)))?;
        let errors = crate::perf::count_error_lines(&out.stderr);
        ensure!(
            errors == 0,
            "{name}: {errors} error lines:\n{}",
            tail(&out.stderr, 2000)
        );
        let last = progress.last().copied().context("no progress lines")?;
        // The tool prints progress once per interval and nothing for the last partial
        // one: it read everything unless an earlier line stalled short of it.
        ensure!(
            last.records <= records && last.records * 10 >= records * 5,
            "{name}: the consumer's last progress line shows {} of {records} records",
            last.records
        );
        // The first line's interval includes the group join; its fetch time is how long
        // it has been reading, so reading started that long before it.
        let first = progress[0];
        let start_t = first.t - first.fetch_ms / 1000.0;
        let mut bytes = vec![Point {
            t: start_t,
            amount: 0.0,
        }];
        let mut recs = bytes.clone();
        for pr in &progress {
            bytes.push(Point {
                t: pr.t,
                amount: pr.mb * MIB * wire_per_payload,
            });
            recs.push(Point {
                t: pr.t,
                amount: pr.records as f64,
            });
        }
        let span = Span {
            start: start_t,
            last_active: last.t,
            done: last.t,
        };
        let throttle = |m: &str| {
            metric(
                &out.stdout,
                &format!("consumer-fetch-manager-metrics:fetch-throttle-time-{m}"),
            )
        };
        let whole_payload = last.mb * MIB / (last.t - start_t);
        let mut a = self.accuracy(
            AccuracyInput {
                name,
                limit_key: "partition_consume_bytes_per_sec",
                quota,
                offered: direct_rate,
                partitions: 1,
                records,
                source: "consumer: ConsumerPerformance progress every second (payload × batch/payload ratio of the partition)",
                wire_per_payload,
                span,
                tool_ratio: whole_payload * wire_per_payload / quota as f64,
                throttle_avg_ms: throttle("avg"),
                throttle_max_ms: throttle("max"),
                tool_line: format!(
                    "{} records, {:.3} MB in {:.1} s of progress lines",
                    last.records,
                    last.mb,
                    last.t - start_t
                ),
            },
            &bytes,
            &recs,
        );
        // Progress lines carry both times on the tool's clock; keep them relative.
        a.start = 0.0;
        a.last_active = round3(last.t - start_t);
        eprintln!(
            "[quota-bench]   read ratio {}",
            a.ratio.map_or("n/a".into(), |r| format!("{r:.3}"))
        );
        Ok(a)
    }

    fn consume(
        &mut self,
        label: &str,
        bootstrap: &str,
        topic: &str,
        records: u64,
        props: Option<&Path>,
    ) -> anyhow::Result<ConsumeResult> {
        let mut args = strings(&[
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--messages",
            &records.to_string(),
            "--group",
            &format!("quota-bench-{label}-{}", std::process::id()),
            "--timeout",
            "30000",
        ]);
        if let Some(p) = props {
            args.extend(strings(&["--consumer.config", &p.display().to_string()]));
        }
        let out = self.tool.run(
            label,
            "kafka-consumer-perf-test",
            &args,
            Duration::from_secs(self.p.tool_timeout_s),
        )?;
        let r = parse_consumer(&out.stdout, &out.stderr)?;
        ensure!(
            r.records >= records && r.error_lines == 0,
            "{label}: {} of {records} records, {} error lines",
            r.records,
            r.error_lines
        );
        Ok(r)
    }

    /// Victim runs alone and under a flood, alternating, starting and ending alone.
    fn noisy(
        &mut self,
        victim: &TenantRun,
        flooder: &TenantRun,
        vtopic: &(String, String),
        ftopic: &(String, String),
        quota: u64,
    ) -> anyhow::Result<Noisy> {
        let p = self.p;
        let victim_records = ((p.victim_rate as f64 * p.victim_s).ceil() as u64).max(1);
        let mut runs = Vec::new();
        for index in 0..=2 * p.rounds {
            let with_flood = index % 2 == 1;
            let label = format!(
                "victim-{index}-{}",
                if with_flood { "flood" } else { "alone" }
            );
            self.ensure_tenants(&label, &[victim, flooder])?;
            let mut flood = None;
            if with_flood {
                flood = Some(self.start_flood(flooder, ftopic, quota, index)?);
            }
            eprintln!(
                "[quota-bench] {label}: {victim_records} records at {} records/s",
                p.victim_rate
            );
            let psi0 = procfs::cpu_pressure_us();
            let t0 = Instant::now();
            let args = victim_args(p, &vtopic.0, victim_records, &victim.props, &label);
            let out = self.tool.run(
                &label,
                "kafka-producer-perf-test",
                &args,
                Duration::from_secs(p.tool_timeout_s),
            );
            let wall_s = t0.elapsed().as_secs_f64();
            let psi = psi0
                .zip(procfs::cpu_pressure_us())
                .map(|(a, b)| b.saturating_sub(a) as f64 / 1e6 / wall_s * 100.0);
            let flood = match flood {
                Some(f) => Some(self.finish_flood(f, quota)?),
                None => None,
            };
            self.check_gateway(&label)?;
            let out = out?;
            // The flooder only matters to the runs it floods.
            let involved: &[&TenantRun] = if with_flood {
                &[victim, flooder]
            } else {
                &[victim]
            };
            self.verify_tenants(&label, involved)?;
            let result = parse_producer(&out.stdout, &out.stderr)
                .with_context(|| format!("{label}: {}", tail(&out.stderr, 2000)))?;
            ensure!(
                result.records == victim_records && result.error_lines == 0,
                "{label}: {} of {victim_records} records, {} error lines",
                result.records,
                result.error_lines
            );
            eprintln!("[quota-bench]   {}", result.raw);
            runs.push(VictimRun {
                warn_lines: crate::perf::count_warn_lines(&out.stderr),
                index,
                with_flood,
                throttle_max_ms: metric(&out.stdout, "producer-metrics:produce-throttle-time-max"),
                result,
                wall_s,
                cpu_pressure_pct: psi,
                load1_after: procfs::loadavg().map_or(0.0, |l| l[0]),
                flood,
            });
        }
        let p99: Vec<f64> = runs.iter().map(|r| r.result.p99_ms).collect();
        let p50: Vec<f64> = runs.iter().map(|r| r.result.p50_ms).collect();
        let p95: Vec<f64> = runs.iter().map(|r| r.result.p95_ms).collect();
        let rounds = noisy_rounds(&p50, &p95, &p99);
        let changes = |f: fn(&NoisyRound) -> Option<f64>| {
            median(&rounds.iter().filter_map(f).collect::<Vec<_>>())
        };
        Ok(Noisy {
            victim_rate: p.victim_rate,
            victim_records,
            median_p99_change: changes(|r| r.p99_change),
            median_p95_change: changes(|r| r.p95_change),
            median_p50_change: changes(|r| r.p50_change),
            alone_to_alone_p99_changes: alone_changes(&p99),
            rounds,
            runs,
        })
    }

    fn start_flood(
        &mut self,
        flooder: &TenantRun,
        ftopic: &(String, String),
        quota: u64,
        index: u32,
    ) -> anyhow::Result<RunningFlood> {
        let p = self.p;
        // Long enough at the quota to outlast the victim's JVM start and run.
        let records = ((quota as f64 * (p.victim_s + 12.0)) / p.record_size as f64).ceil() as u64;
        let offered = p.flood_factor * quota as f64;
        let label = format!("flood-{index}");
        let (sampler, base) = self.sampler(&ftopic.1)?;
        eprintln!(
            "[quota-bench] {label}: {records} records offered at {:.0} KiB/s",
            offered / 1024.0
        );
        let mut tool = self.tool.spawn(
            &label,
            "kafka-producer-perf-test",
            &producer_args(
                p,
                &ftopic.0,
                records,
                offered / p.record_size as f64,
                "",
                Some(&flooder.props),
                &label,
                true,
            ),
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while sampler.latest().is_none_or(|s| s.records <= base.records) {
            ensure!(
                tool.running() && Instant::now() < deadline,
                "{label}: no flood record reached the pool"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Past the quota's burst: the flood is being throttled when the victim starts.
        std::thread::sleep(Duration::from_secs_f64(self.p.settle_s.min(2.0)));
        Ok(RunningFlood {
            tool,
            sampler,
            base,
            records,
            offered,
        })
    }

    fn finish_flood(&mut self, f: RunningFlood, quota: u64) -> anyhow::Result<Flood> {
        let mut tool = f.tool;
        let outlasted = tool.running();
        let out = tool.wait(Duration::from_secs(self.p.tool_timeout_s))?;
        let samples = f.sampler.stop()?;
        let result = parse_producer(&out.stdout, &out.stderr).context("flood")?;
        ensure!(
            result.records == f.records && result.error_lines == 0,
            "flood: {} of {} records, {} error lines",
            result.records,
            f.records,
            result.error_lines
        );
        let bytes = points(&samples, |s| s.bytes as f64);
        let recs = points(&samples, |s| s.records as f64);
        let ratio = rates::span(&recs, f.base.records as f64, f.records as f64).and_then(|s| {
            let from = s.start + rates::steady_from(None, self.p.settle_s, s.last_active - s.start);
            rates::average_rate(&bytes, from, s.last_active).map(|w| w.rate / quota as f64)
        });
        Ok(Flood {
            offered_bytes_per_sec: f.offered,
            outlasted_victim: outlasted,
            ratio,
            throttle_avg_ms: metric(&out.stdout, "producer-metrics:produce-throttle-time-avg"),
            tool_line: result.raw,
        })
    }
}

struct RunningFlood {
    tool: crate::perf::RunningTool,
    sampler: Sampler,
    base: Sample,
    records: u64,
    offered: f64,
}

struct AccuracyInput {
    name: &'static str,
    limit_key: &'static str,
    quota: u64,
    offered: f64,
    partitions: i32,
    records: u64,
    source: &'static str,
    wire_per_payload: f64,
    span: Span,
    tool_ratio: f64,
    throttle_avg_ms: Option<f64>,
    throttle_max_ms: Option<f64>,
    tool_line: String,
}

/// Each flood run (odd index) against the mean of the alone runs around it, for
/// the p50, p95 and p99 series of the runs in order.
pub fn noisy_rounds(p50: &[f64], p95: &[f64], p99: &[f64]) -> Vec<NoisyRound> {
    let mut out = Vec::new();
    let mut i = 1;
    while i + 1 < p99.len().min(p50.len()).min(p95.len()) {
        let alone = |s: &[f64]| (s[i - 1] + s[i + 1]) / 2.0;
        let change = |s: &[f64]| {
            let a = alone(s);
            (a > 0.0).then(|| s[i] / a - 1.0)
        };
        out.push(NoisyRound {
            round: (i / 2 + 1) as u32,
            alone_p50_ms: alone(p50),
            alone_p95_ms: alone(p95),
            alone_p99_ms: alone(p99),
            flood_p50_ms: p50[i],
            flood_p95_ms: p95[i],
            flood_p99_ms: p99[i],
            p50_change: change(p50),
            p95_change: change(p95),
            p99_change: change(p99),
        });
        i += 2;
    }
    out
}

/// Relative change between consecutive alone runs (even indexes).
pub fn alone_changes(p99: &[f64]) -> Vec<f64> {
    let alone: Vec<f64> = p99.iter().step_by(2).copied().collect();
    alone
        .windows(2)
        .filter(|w| w[0] > 0.0)
        .map(|w| w[1] / w[0] - 1.0)
        .collect()
}

/// SPEC 7's goals beside what this run measured; reported, never asserted.
fn goals(accuracy: &[Accuracy], noisy: &Noisy) -> Vec<Goal> {
    let mut out = Vec::new();
    for a in accuracy {
        let status = match a.ratio {
            Some(r) if rates::within(r, 1.0, ACCURACY_BAND) => "met",
            Some(_) => "missed",
            None => "not measured",
        };
        out.push(Goal {
            goal: format!(
                "{} quota accuracy (achieved / configured, steady state)",
                a.name
            ),
            target: "1.00 ± 0.05".into(),
            measured: a.ratio.map_or("n/a".into(), |r| format!("{r:.4}")),
            status,
        });
    }
    for a in accuracy {
        out.push(Goal {
            goal: format!("{}: time to converge (1 s windows stay within ±5%)", a.name),
            target: "reported".into(),
            measured: match (a.converged_5pct_s, a.nearest_band) {
                (Some(t), _) => format!("{t:.1} s"),
                (None, Some((b, t))) => {
                    format!("never within ±5%; within ±{:.0}% after {t:.1} s", b * 100.0)
                }
                (None, None) => "never within ±50%".into(),
            },
            status: if a.converged_5pct_s.is_some() {
                "reached"
            } else {
                "not reached"
            },
        });
    }
    let per_round: Vec<f64> = noisy.rounds.iter().filter_map(|r| r.p99_change).collect();
    let passing = per_round
        .iter()
        .filter(|c| c.abs() < NOISY_P99_GOAL)
        .count();
    out.push(Goal {
        goal: "victim produce p99 change while another tenant floods at 3× its quota".into(),
        target: "< 10%".into(),
        measured: format!(
            "{} median (rounds: {})",
            pct(noisy.median_p99_change),
            per_round
                .iter()
                .map(|c| pct(Some(*c)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        status: if per_round.is_empty() {
            "not measured"
        } else if passing == per_round.len() {
            "met"
        } else if passing == 0 {
            "missed"
        } else {
            "inconclusive"
        },
    });
    out
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:+.1}%", v * 100.0))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn points(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> Vec<Point> {
    samples
        .iter()
        .map(|s| Point {
            t: s.t,
            amount: f(s),
        })
        .collect()
}

/// ProducerPerformance arguments: straight to `pool` when `props` is `None`, else
/// through the gateway with the tenant's settings file; `rate` in records/s (-1 = full
/// speed); quota-phase batching unless `batching` is false (the fill, which only has
/// to be fast).
#[allow(clippy::too_many_arguments)]
fn producer_args(
    p: &Params,
    topic: &str,
    records: u64,
    rate: f64,
    pool: &str,
    props: Option<&Path>,
    label: &str,
    print_metrics: bool,
) -> Vec<String> {
    let throughput = if rate < 0.0 {
        "-1".to_string()
    } else {
        format!("{}", rate.round().max(1.0) as u64)
    };
    let mut args = strings(&[
        "--topic",
        topic,
        "--num-records",
        &records.to_string(),
        "--record-size",
        &p.record_size.to_string(),
        "--throughput",
        &throughput,
    ]);
    if let Some(props) = props {
        args.extend(strings(&[
            "--producer.config",
            &props.display().to_string(),
        ]));
    }
    args.push("--producer-props".into());
    if props.is_none() {
        args.push(format!("bootstrap.servers={pool}"));
    }
    args.extend([
        "acks=all".to_string(),
        format!("batch.size={}", p.batch_size),
        format!("linger.ms={}", p.linger_ms),
        format!("client.id=quota-bench-{label}"),
    ]);
    if props.is_some() {
        // A small send buffer keeps the overload sustained to the end: with the default
        // 32 MiB the tool stops offering after half the run and the producer drains a
        // backlog unevenly over the partitions, so the end of the run is no longer a
        // client pushing 2x. Sends block instead when it is full.
        args.push(format!("buffer.memory={}", buffer_memory(p)));
    }
    if print_metrics {
        args.push("--print-metrics".into());
    }
    args
}

/// The read phase's fetch size cap: at least 64 KiB (one fill batch if larger), so a
/// 1 s window sees several fetches. With 16 KiB fetches each response carried one
/// ~15.2 KiB batch, which the gateway charges as 16 KiB (it rounds each partition's
/// bytes up to whole KiB per request): the read then ran at 0.95 of the quota.
fn read_fetch_bytes(p: &Params) -> u32 {
    p.batch_size.max(65_536)
}

/// The quota phases' producer buffer: 16 batches, at least 1 MiB (a smaller one
/// starves a producer whose batches wait out throttles on several connections).
fn buffer_memory(p: &Params) -> u64 {
    (16 * u64::from(p.batch_size)).max(1 << 20)
}

/// The victim: a fixed modest rate, no lingering (latency is what is measured).
fn victim_args(p: &Params, topic: &str, records: u64, props: &Path, label: &str) -> Vec<String> {
    strings(&[
        "--topic",
        topic,
        "--num-records",
        &records.to_string(),
        "--record-size",
        &p.record_size.to_string(),
        "--throughput",
        &p.victim_rate.to_string(),
        "--producer.config",
        &props.display().to_string(),
        "--producer-props",
        "acks=all",
        "linger.ms=0",
        &format!("client.id=quota-bench-{label}"),
        "--print-metrics",
    ])
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `sluice tenant <args> --bootstrap <pool>`, `stdin` piped in; its stdout.
fn tenant_cli(setup: &Setup, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut child = Command::new(&setup.gateway_bin)
        .arg("tenant")
        .args(args)
        .args(["--bootstrap", &setup.pool_bootstrap.join(",")])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running sluice tenant")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .context("writing to sluice tenant")?;
    }
    let out = child
        .wait_with_output()
        .context("waiting for sluice tenant")?;
    ensure!(
        out.status.success(),
        "sluice tenant {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the store holds for one of the run's tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TenantState {
    Intact,
    Deleted,
    Altered,
}

/// Reads tenant `id` back with `sluice tenant get` (exit 1 when absent) and compares
/// its limits with the ones this run wrote.
fn tenant_state(
    setup: &Setup,
    id: &str,
    limits: &serde_json::Value,
) -> anyhow::Result<TenantState> {
    let out = Command::new(&setup.gateway_bin)
        .args([
            "tenant",
            "get",
            id,
            "--bootstrap",
            &setup.pool_bootstrap.join(","),
        ])
        .stdin(Stdio::null())
        .output()
        .context("running sluice tenant get")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        ensure!(
            out.status.code() == Some(1) && stderr.contains("does not exist"),
            "sluice tenant get {id} failed: {stderr}"
        );
        return Ok(TenantState::Deleted);
    }
    let stored: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("sluice tenant get {id} printed no JSON"))?;
    Ok(state_of(&stored, limits))
}

/// `Intact` when the stored document (`{"version":N,"tenant":{...}}`) has exactly
/// `limits` (an absent `limits` equals `{}`).
fn state_of(stored: &serde_json::Value, limits: &serde_json::Value) -> TenantState {
    let empty = serde_json::json!({});
    let have = stored["tenant"].get("limits").unwrap_or(&empty);
    if have == limits {
        TenantState::Intact
    } else {
        TenantState::Altered
    }
}

/// Polls SASL/PLAIN authentication as the tenant until the gateway, tailing the
/// store, knows it.
fn wait_admitted(bootstrap: &str, t: &TenantRun, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut client = PoolClient::new(&[]);
    loop {
        match client.authenticate_plain(bootstrap, SUBJECT, &t.token) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                bail!("tenant {} not admitted within {timeout:?}: {e}", t.id)
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn machine(setup: &Setup, started_unix: u64) -> anyhow::Result<Machine> {
    Ok(Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: procfs::cpu_model(),
        mem_total_gib: procfs::mem_total_kib()? as f64 / (1024.0 * 1024.0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".into(), |s| s.trim().into()),
        kafka_version: command_line(
            &setup.kafka_tool.display().to_string(),
            &["kafka-topics", "--version"],
        ),
        date_utc: utc_date(started_unix),
        gateway_bin: setup.gateway_bin.display().to_string(),
        gateway_profile: profile_of(&setup.gateway_bin),
        gateway_bin_modified_utc: std::fs::metadata(&setup.gateway_bin)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(|| "unknown".into(), |d| utc_date(d.as_secs())),
        loadtest_profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        git_commit: setup.git_commit.clone(),
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn kib(v: f64) -> String {
    format!("{:.0}", v / 1024.0)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"))
}

/// The Markdown report. `writeln!` into a `String` cannot fail, hence the `let _`.
pub fn markdown(r: &Report) -> String {
    use std::fmt::Write as _;
    let m = &r.machine;
    let p = &r.params;
    let c = &r.contention;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Quotas: accuracy, convergence and the noisy neighbour\n"
    );
    if p.smoke {
        let _ = writeln!(o, "> **Smoke run** (seconds per phase): checks that the benchmark works; the figures mean little.\n");
    }
    let _ = writeln!(
        o,
        "Generated by `loadtest quota-bench` on {}. Raw figures (every window, every run): `quotas.json` beside this file.\n",
        m.date_utc
    );
    let _ = writeln!(o, "## Result\n");
    let _ = writeln!(
        o,
        "| SPEC 7 goal | target | measured | status |\n|---|---|---|---|"
    );
    for g in &r.goals {
        let _ = writeln!(
            o,
            "| {} | {} | {} | **{}** |",
            g.goal, g.target, g.measured, g.status
        );
    }
    let _ = writeln!(o);
    let q = &r.quotas;
    let _ = writeln!(
        o,
        "Quotas used: partition {} KiB/s (configured {}), tenant {} KiB/s (configured {}).{}\n",
        q.partition / 1024,
        q.partition_configured / 1024,
        q.tenant / 1024,
        q.tenant_configured / 1024,
        if q.notes.is_empty() {
            String::new()
        } else {
            format!(" {}", q.notes.join(" "))
        }
    );
    if !r.tenants_restored.is_empty() {
        let _ = writeln!(
            o,
            "**Tenants changed by someone else** in the shared tenant store during the run (deleted or rewritten; each was written again before the next phase): {}.\n",
            r.tenants_restored.join(", ")
        );
    }
    let _ = writeln!(o, "### Accuracy under overload\n");
    let _ = writeln!(o, "| phase | limit | quota KiB/s | offered KiB/s (×) | partitions | steady window s | achieved KiB/s | achieved / quota | payload / quota | whole run incl. burst / quota | tool's own rate / quota | converged ±5% after | nearest band | worst steady 1 s window | 1 s window resolution | throttle avg / max ms |");
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for a in &r.accuracy {
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} ({:.1}×) | {} | {:.1} – {:.1} | {} | **{}** | {} | {} | {} | {} | {} | {} | ±{:.1}% | {} / {} |",
            a.name,
            a.limit_key,
            a.quota_bytes_per_sec / 1024,
            kib(a.offered_bytes_per_sec),
            a.offered_factor,
            a.partitions,
            a.steady_from_s,
            a.last_active - a.start,
            a.achieved_bytes_per_sec.map_or("n/a".into(), kib),
            opt(a.ratio, 3),
            opt(a.payload_ratio, 3),
            opt(a.whole_run_ratio, 3),
            opt(a.tool_ratio, 3),
            a.converged_5pct_s.map_or("never".into(), |t| format!("{t:.1} s")),
            a.nearest_band.map_or("none ≤ ±50%".into(), |(b, t)| format!("±{:.0}% after {t:.1} s", b * 100.0)),
            a.steady_max_window_deviation.map_or("n/a".into(), |d| format!("±{:.1}%", d * 100.0)),
            a.window_resolution * 100.0,
            opt(a.throttle_avg_ms, 1),
            opt(a.throttle_max_ms, 0),
        );
    }
    let _ = writeln!(o);
    for a in &r.accuracy {
        let series = a
            .windows
            .iter()
            .map(|w| format!("{:.0}", w.rate / a.quota_bytes_per_sec as f64 * 100.0))
            .collect::<Vec<_>>();
        let _ = writeln!(
            o,
            "- {} — 1 s windows as % of the quota, one per sample from the overload's start ({}): {}",
            a.name,
            a.source,
            series.join(" ")
        );
    }
    let _ = writeln!(o);
    let n = &r.noisy;
    let _ = writeln!(o, "### Noisy neighbour\n");
    let _ = writeln!(
        o,
        "Victim: {} records/s × {} B ({} records per run, acks=all, linger.ms=0) through the gateway as its own tenant; flooder: another tenant offering {:.0}× its {} KiB/s partition quota on its own partition. Runs alternate alone / with flood; each flood run is compared with the mean of the alone runs just before and after it.\n",
        n.victim_rate,
        p.record_size,
        n.victim_records,
        p.flood_factor,
        q.partition / 1024
    );
    let _ = writeln!(o, "| run | flood | p50 ms | p95 ms | p99 ms | avg ms | max ms | victim throttle max ms | victim WARN lines (retries) | CPU pressure (PSI some) | load 1 min after | flood steady / quota | flood outlasted the run |");
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for v in &n.runs {
        let _ = writeln!(
            o,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {} | {} | {} | {:.2} | {} | {} |",
            v.index,
            if v.with_flood { "yes" } else { "no" },
            v.result.p50_ms,
            v.result.p95_ms,
            v.result.p99_ms,
            v.result.avg_latency_ms,
            v.result.max_latency_ms,
            opt(v.throttle_max_ms, 0),
            v.warn_lines,
            v.cpu_pressure_pct
                .map_or("n/a".into(), |x| format!("{x:.0}%")),
            v.load1_after,
            v.flood.as_ref().map_or(String::new(), |f| opt(f.ratio, 3)),
            v.flood
                .as_ref()
                .map_or(String::new(), |f| if f.outlasted_victim {
                    "yes".into()
                } else {
                    "**no**".into()
                }),
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "| round | alone p50 / p95 / p99 ms (mean of neighbours) | with flood p50 / p95 / p99 ms | p50 change | p95 change | p99 change |\n|---|---|---|---|---|---|");
    for rd in &n.rounds {
        let _ = writeln!(
            o,
            "| {} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} / {:.0} | {} | {} | {} |",
            rd.round,
            rd.alone_p50_ms,
            rd.alone_p95_ms,
            rd.alone_p99_ms,
            rd.flood_p50_ms,
            rd.flood_p95_ms,
            rd.flood_p99_ms,
            pct(rd.p50_change),
            pct(rd.p95_change),
            pct(rd.p99_change)
        );
    }
    let _ = writeln!(
        o,
        "\nMedian change: p50 {}, p95 {}, p99 {}. The machine's own noise, alone run to the next alone run, p99: {}.\n",
        pct(n.median_p50_change),
        pct(n.median_p95_change),
        pct(n.median_p99_change),
        n.alone_to_alone_p99_changes
            .iter()
            .map(|c| pct(Some(*c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        o,
        "### Direct capacity (same run, before the gateway started)\n"
    );
    let _ = writeln!(o, "| topic | partitions | records/s | MiB/s payload | avg ms | p99 ms |\n|---|---|---|---|---|---|");
    for d in &r.direct {
        let _ = writeln!(
            o,
            "| `{}` | {} | {:.0} | {:.2} | {:.0} | {:.0} |",
            d.topic,
            d.partitions,
            d.result.records_per_sec,
            d.result.mb_per_sec,
            d.result.avg_latency_ms,
            d.result.p99_ms
        );
    }
    let g = &r.gateway_log;
    let _ = writeln!(
        o,
        "\nGateway log: {} lines, {} WARN, {} ERROR, {} panics.\n",
        g.lines, g.warn, g.error, g.panics
    );
    if !g.samples.is_empty() {
        let _ = writeln!(o, "First warning/error lines:\n\n```");
        for l in g.samples.iter().take(8) {
            let _ = writeln!(o, "{l}");
        }
        let _ = writeln!(o, "```\n");
    }
    let _ = writeln!(o, "## Machine\n\n| | |\n|---|---|");
    let _ = writeln!(o, "| CPUs (nproc) | {} |", m.nproc);
    let _ = writeln!(o, "| CPU model | {} |", m.cpu_model);
    let _ = writeln!(o, "| memory | {:.1} GiB |", m.mem_total_gib);
    let _ = writeln!(o, "| kernel | {} |", m.kernel);
    let _ = writeln!(o, "| Kafka (pool and tools) | {} |", m.kafka_version);
    let _ = writeln!(o, "| date | {} |", m.date_utc);
    let _ = writeln!(
        o,
        "| gateway build | `{}` ({} profile, written {}); HEAD at the start: {} |",
        m.gateway_bin, m.gateway_profile, m.gateway_bin_modified_utc, m.git_commit
    );
    let _ = writeln!(
        o,
        "| load average 1/5/15 min | before {:.2} / {:.2} / {:.2}, after {:.2} / {:.2} / {:.2} |",
        c.load_before[0],
        c.load_before[1],
        c.load_before[2],
        c.load_after[0],
        c.load_after[1],
        c.load_after[2]
    );
    let _ = writeln!(
        o,
        "| CPU pressure during the run (PSI some) | {} of {:.0} s |\n",
        c.cpu_pressure_pct
            .map_or_else(|| "n/a".into(), |x| format!("{x:.0}%")),
        c.wall_s
    );
    let _ = writeln!(o, "## Method\n");
    let _ = writeln!(o, "- Pool: the shared 3-broker KRaft pool on loopback (`deploy/pool.sh`), RF 3, acks=all. Everything — brokers, gateway, JVM clients, this program and unrelated work — shares {} CPUs.", m.nproc);
    let _ = writeln!(o, "- Gateway: `sluice serve` started by the benchmark with `listener.auth = \"sasl\"` (PLAIN carrying a JWT minted by `sluice token mint` for one EdDSA issuer). Four tenants written with `sluice tenant put` before it starts (ids in `quotas.json`), each allowing its principals everything, with only the `limits` a phase needs scaled down (the others at {} MiB/s); deleted afterwards, like the topics.", UNLIMITED >> 20);
    let _ = writeln!(o, "- Clients: Kafka's ProducerPerformance / ConsumerPerformance ({}) authenticating as the tenant; quota phases use {} B records, batch.size={}, linger.ms={}, buffer.memory={} (16 batches or 1 MiB, so the producer stays backlogged and keeps offering the overload to the very end instead of draining a 32 MiB backlog unevenly over the partitions).", m.kafka_version, p.record_size, p.batch_size, p.linger_ms, buffer_memory(p));
    let _ = writeln!(o, "- Direct capacity first: full-speed produce straight to the pool on 1 and {} partitions. A quota is lowered when the pool could not carry {:.1}× it with 10% to spare, so the overload is real.", p.tenant_partitions, p.overload);
    let _ = writeln!(o, "- Write phases: the producer offers {:.1}× the quota (`--throughput`) for about {:.0} s at the quota. The pool is read straight every {} ms: the leaders' log sizes (DescribeLogDirs; the record batches as sent, which is what the gateway charges) and end offsets (ListOffsets). Achieved = charged bytes/s over the steady window; payload = records × record size over the same window.", p.overload, p.measure_s + p.settle_s, p.sample_ms);
    let _ = writeln!(o, "- Read phase: the partition is filled straight in the pool, read straight once (the read rate the pool offers, shown as \"offered\"), then read through the gateway by ConsumerPerformance with `--show-detailed-stats --reporting-interval 1000` and fetches capped at {} bytes (`max.partition.fetch.bytes` = `fetch.max.bytes`; at the default 1 MiB one throttled fetch carries two seconds of quota); its cumulative MB per line, times the partition's batch-bytes/payload ratio, gives charged bytes. Reading starts at the first line's time less its fetch time (the group join is excluded).", read_fetch_bytes(p));
    let _ = writeln!(o, "- The overload starts halfway between the last sample before the first record landed and the first after. The steady window starts when every later {:.0} s sliding window stays within ±5% of the quota, but not before {:.0} s (the gateway allows a one-second burst) nor past half the run; it ends at the last sample before the last record landed.", p.window_s, p.settle_s);
    let _ = writeln!(o, "- Time to converge: from the overload's start to the end of the first {:.0} s window from which all later windows stay within ±5% (\"nearest band\": the narrowest of ±5/10/20/30/50% that held). Kafka batches land whole, so one window's rate moves in steps of one batch: the resolution column is batch.size / (quota × window), and a band narrower than it cannot hold for every window even when the average is exact.", p.window_s);
    let _ = writeln!(o, "- Noisy neighbour: {} alone runs and {} flood runs, alternating; the flood starts first, the victim starts once flood records land plus {:.0} s, and the flood is sized to outlast the victim (checked per run). Latency percentiles are ProducerPerformance's send-to-ack, printed in whole milliseconds. PSI CPU pressure and the load average are recorded per run: on 2 shared cores the victim's tail is set mostly by who else wants a CPU at that moment.", p.rounds + 1, p.rounds, p.settle_s.min(2.0));
    let _ = writeln!(o, "- Targets are reported, never asserted; the run fails only when a tool fails, counts come back short, or the gateway dies.\n");
    let _ = writeln!(
        o,
        "## Reproduce\n\n```sh\ndeploy/pool.sh start\n{}\n```\n\nThis run was invoked as `{}`.",
        r.command, r.invocation
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            record_size: 1024,
            partition_quota: 512 * 1024,
            tenant_quota: 1024 * 1024,
            tenant_partitions: 4,
            overload: 2.0,
            flood_factor: 3.0,
            measure_s: 20.0,
            settle_s: 3.0,
            window_s: 1.0,
            sample_ms: 250,
            batch_size: 65536,
            linger_ms: 10,
            direct_s: 8.0,
            victim_rate: 100,
            victim_s: 15.0,
            rounds: 3,
            tool_timeout_s: 600,
            smoke: false,
        }
    }

    #[test]
    fn quotas_kept_when_the_pool_carries_the_overload() {
        let q = pick_quotas(&params(), 2.0 * MIB, 4.0 * MIB);
        assert_eq!((q.partition, q.tenant), (512 * 1024, 1024 * 1024));
        assert!(q.notes.is_empty());
    }

    #[test]
    fn quotas_lowered_to_what_the_pool_carries() {
        // 1 MiB/s straight: 2x plus 10% fits 476 KiB/s, rounded down to 464 KiB/s.
        let q = pick_quotas(&params(), 1.0 * MIB, 4.0 * MIB);
        assert_eq!(q.partition, 464 * 1024);
        assert_eq!(q.tenant, 1024 * 1024);
        assert_eq!(q.notes.len(), 1);
        assert!(q.notes[0].contains("512 to 464 KiB/s"), "{}", q.notes[0]);
        assert!((2.0 * 1.1 * q.partition as f64) <= 1.0 * MIB);
        // Never below one step.
        assert_eq!(pick_quotas(&params(), 1000.0, 1000.0).partition, 16_384);
    }

    #[test]
    fn flood_rounds_against_neighbouring_alone_runs() {
        // alone, flood, alone, flood, alone
        let p99 = [10.0, 13.0, 12.0, 11.0, 10.0];
        let p95 = [5.0, 5.0, 5.0, 5.0, 5.0];
        let p50 = [2.0, 2.0, 2.0, 3.0, 2.0];
        let r = noisy_rounds(&p50, &p95, &p99);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].alone_p99_ms, 11.0);
        assert!((r[0].p99_change.unwrap() - (13.0 / 11.0 - 1.0)).abs() < 1e-12);
        assert_eq!(r[1].round, 2);
        assert_eq!(r[1].p99_change, Some(0.0));
        assert!((r[1].p50_change.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(r[0].p95_change, Some(0.0));
        // A flood run with no alone run after it is not paired.
        assert_eq!(noisy_rounds(&p50[..4], &p95[..4], &p99[..4]).len(), 1);
        let zero = [0.0, 1.0, 0.0];
        assert!(noisy_rounds(&zero, &zero, &zero)[0].p99_change.is_none());
        let a = alone_changes(&p99);
        assert_eq!(a.len(), 2);
        assert!((a[0] - 0.2).abs() < 1e-12 && (a[1] + 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn goals_are_judged_not_asserted() {
        let acc = |ratio: Option<f64>, conv: Option<f64>| Accuracy {
            name: "partition write",
            limit_key: "partition_produce_bytes_per_sec",
            quota_bytes_per_sec: 1024,
            offered_bytes_per_sec: 2048.0,
            offered_factor: 2.0,
            partitions: 1,
            records: 1,
            source: "test",
            wire_per_payload: 1.0,
            start: 0.0,
            last_active: 10.0,
            steady_from_s: 3.0,
            achieved_bytes_per_sec: ratio.map(|r| r * 1024.0),
            ratio,
            achieved_payload_bytes_per_sec: None,
            payload_ratio: None,
            whole_run_ratio: None,
            tool_ratio: None,
            converged_5pct_s: conv,
            nearest_band: conv.map(|t| (0.05, t)).or(Some((0.2, 4.0))),
            steady_max_window_deviation: None,
            window_resolution: 0.1,
            throttle_avg_ms: None,
            throttle_max_ms: None,
            tool_line: String::new(),
            windows: vec![],
        };
        let noisy = |changes: &[f64]| Noisy {
            victim_rate: 1,
            victim_records: 1,
            runs: vec![],
            rounds: changes
                .iter()
                .map(|c| NoisyRound {
                    round: 1,
                    alone_p50_ms: 1.0,
                    alone_p95_ms: 1.0,
                    alone_p99_ms: 1.0,
                    flood_p50_ms: 1.0,
                    flood_p95_ms: 1.0,
                    flood_p99_ms: 1.0,
                    p50_change: None,
                    p95_change: None,
                    p99_change: Some(*c),
                })
                .collect(),
            median_p99_change: median(changes),
            median_p95_change: None,
            median_p50_change: None,
            alone_to_alone_p99_changes: vec![],
        };
        let g = goals(
            &[acc(Some(1.04), Some(2.0)), acc(Some(0.94), None)],
            &noisy(&[0.05, 0.2]),
        );
        assert_eq!(g.len(), 5);
        assert_eq!((g[0].status, g[1].status), ("met", "missed"));
        assert_eq!((g[2].status, g[3].status), ("reached", "not reached"));
        assert!(
            g[3].measured.contains("within ±20% after 4.0 s"),
            "{}",
            g[3].measured
        );
        assert_eq!(g[4].status, "inconclusive");
        assert!(g[4].measured.contains("+5.0%, +20.0%"), "{}", g[4].measured);
        assert_eq!(
            goals(&[], &noisy(&[0.01])).last().map(|g| g.status),
            Some("met")
        );
        assert_eq!(
            goals(&[], &noisy(&[])).last().map(|g| g.status),
            Some("not measured")
        );
    }

    #[test]
    fn tenant_state_compares_limits() {
        let mine = serde_json::json!({"partition_produce_bytes_per_sec": 524288u64});
        let stored = |limits: serde_json::Value| serde_json::json!({"version": 3, "tenant": {"id": "x", "limits": limits}});
        assert_eq!(state_of(&stored(mine.clone()), &mine), TenantState::Intact);
        assert_eq!(
            state_of(&stored(serde_json::json!({})), &mine),
            TenantState::Altered
        );
        let none = serde_json::json!({"version": 1, "tenant": {"id": "x"}});
        assert_eq!(state_of(&none, &serde_json::json!({})), TenantState::Intact);
        assert_eq!(state_of(&none, &mine), TenantState::Altered);
    }

    #[test]
    fn producer_arguments() {
        let p = params();
        let direct = producer_args(&p, "t", 10, -1.0, "127.0.0.1:29091", None, "d", false);
        assert!(direct.windows(2).any(|w| w == ["--throughput", "-1"]));
        assert!(direct.contains(&"bootstrap.servers=127.0.0.1:29091".to_string()));
        assert!(!direct.contains(&"--print-metrics".to_string()));
        let gw = producer_args(
            &p,
            "t",
            10,
            1024.4,
            "",
            Some(Path::new("/w/a.properties")),
            "x",
            true,
        );
        assert!(gw.windows(2).any(|w| w == ["--throughput", "1024"]));
        assert!(gw
            .windows(2)
            .any(|w| w == ["--producer.config", "/w/a.properties"]));
        assert!(!gw.iter().any(|a| a.starts_with("bootstrap.servers")));
        assert!(gw.contains(&"batch.size=65536".to_string()));
        assert!(gw.contains(&"buffer.memory=1048576".to_string()));
        assert!(!direct.iter().any(|a| a.starts_with("buffer.memory")));
        let small = Params {
            batch_size: 16_384,
            ..params()
        };
        assert_eq!(buffer_memory(&small), 1 << 20);
        let big = Params {
            batch_size: 1 << 20,
            ..params()
        };
        assert_eq!(buffer_memory(&big), 16 << 20);
        let doc = sasl::tenant_doc("qb1-p", &serde_json::json!({"produce_bytes_per_sec": 5}));
        assert_eq!(doc["limits"]["produce_bytes_per_sec"], 5);
        assert_eq!(doc["principals"]["*"]["policies"][0], "all");
    }
}
