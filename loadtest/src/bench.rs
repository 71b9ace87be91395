//! `proxy-bench`: the same Kafka perf tools run straight at the pool (DIRECT) and
//! through a `sluice` started for the run (GATEWAY), interleaved round by round.
//!
//! One round is: max-rate produce on both sides, consume of every record produced so
//! far (the same records, with a new group, on both sides), then produce at half the
//! round's direct max rate on both sides. Consuming everything rather than one run's
//! worth keeps the consume runs from being sub-second: reads come from the page
//! cache and are far faster than produce on this machine. The
//! both sides, then produce at half the round's direct max rate on both sides. The
//! side that goes first alternates between rounds, so neither side always gets the
//! warmer (or the more disturbed) slot. The gateway's CPU time is sampled around each
//! gateway run only, so it covers the gateway phases and nothing else.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::gateway::Gateway;
use crate::perf::{parse_consumer, parse_producer, tail, ConsumeResult, KafkaTool, ProduceResult};
use crate::procfs::{self, Memory};
use crate::report::{self, Report};

/// What to run; filled from the command line.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Records per max-rate produce run.
    pub records: u64,
    /// Records per half-load produce run (half the records at half the rate keeps
    /// the run as long as a max-rate one).
    pub half_records: u64,
    /// Payload bytes per record (the tool sends random values with no key).
    pub record_size: u64,
    pub partitions: u32,
    pub replication_factor: u32,
    pub rounds: u32,
    /// Producer settings shared by both sides.
    pub acks: String,
    pub linger_ms: u32,
    pub batch_size: u32,
    /// Upper bound for one tool run.
    pub tool_timeout_s: u64,
    /// Whether this is the tiny CI run.
    pub smoke: bool,
}

/// Where things are; filled from the command line.
pub struct Setup {
    pub gateway_bin: PathBuf,
    pub kafka_tool: PathBuf,
    pub pool_bootstrap: Vec<String>,
    pub out_dir: PathBuf,
    pub work_dir: PathBuf,
    pub keep_topic: bool,
    /// The command line to print as "how to reproduce".
    pub command: String,
    /// This run's command line as given.
    pub invocation: String,
    /// HEAD (and whether gateway/ had uncommitted changes) when the run started.
    pub git_commit: String,
}

/// Which way the clients connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Direct,
    Gateway,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Direct => "direct",
            Side::Gateway => "gateway",
        }
    }
}

/// One side's measurements in one round.
#[derive(Debug, Clone, Serialize)]
pub struct SideRound {
    /// Max-rate produce (`--throughput -1`).
    pub produce: ProduceResult,
    pub consume: ConsumeResult,
    /// Produce throttled to half the round's direct max rate.
    pub half: ProduceResult,
}

/// Seconds per gateway phase of a round: CPU (user + system of the gateway
/// process) or wall time (the tool run, JVM start included).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseSeconds {
    pub produce_s: f64,
    pub consume_s: f64,
    pub half_s: f64,
}

/// Payload bytes the gateway carried in each phase of a round: records the tool
/// reported × record size. Keys (none), headers, batch and protocol framing, and
/// metadata or group traffic are not counted, so this understates the wire bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseBytes {
    pub produce: u64,
    pub consume: u64,
    pub half: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub round: u32,
    /// The side that ran first in every phase of this round.
    pub first: Side,
    /// Records/s asked of both sides in the half-load phase.
    pub half_rate: u64,
    /// Records each side consumed: everything produced into the topic so far.
    pub consume_records: u64,
    pub direct: SideRound,
    pub gateway: SideRound,
    pub gateway_cpu: PhaseSeconds,
    pub gateway_wall: PhaseSeconds,
    pub gateway_bytes: PhaseBytes,
}

/// How busy the machine was around the run: the figures are only as good as this.
#[derive(Debug, Clone, Serialize)]
pub struct Contention {
    /// 1/5/15-minute load averages before and after the run.
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
    /// Wall time of the whole run.
    pub wall_s: f64,
    /// Share of the run's wall time during which some runnable task waited for a
    /// CPU (Linux PSI, `/proc/pressure/cpu` "some"); `None` without PSI.
    pub cpu_pressure_pct: Option<f64>,
}

/// Gateway readings outside the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayReadings {
    pub pid: u32,
    pub bootstrap: String,
    /// Clock ticks per second used to turn `/proc/<pid>/stat` into seconds.
    pub clk_tck: u64,
    /// Whether `clk_tck` came from `getconf` (else Linux's usual 100 was assumed).
    pub clk_tck_measured: bool,
    /// Memory once its ports were open, before any client traffic.
    pub memory_idle: Memory,
    /// Memory after the last phase, just before it was stopped.
    pub memory_end: Memory,
    /// CPU seconds over its whole life up to the end reading (startup and the
    /// pauses between phases included).
    pub cpu_total_s: f64,
    pub log: LogScan,
}

/// What the gateway's log said that deserves a look.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogScan {
    pub path: String,
    pub lines: usize,
    pub warn: usize,
    pub error: usize,
    pub panics: usize,
    /// The first warning, error and panic lines, as evidence.
    pub samples: Vec<String>,
}

/// Runs the benchmark and writes the report; returns the report paths.
///
/// Fails if the pool cannot take a topic, the gateway does not start or dies, or a
/// tool run fails or comes back short; the gateway is stopped and the topic deleted
/// in every case.
pub fn run(params: &Params, setup: &Setup) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(&setup.work_dir)
        .with_context(|| format!("creating {}", setup.work_dir.display()))?;
    std::fs::create_dir_all(&setup.out_dir)
        .with_context(|| format!("creating {}", setup.out_dir.display()))?;
    let load_before = procfs::loadavg()?;
    let pressure_before = procfs::cpu_pressure_us();
    let started = Instant::now();
    let started_unix = unix_now();
    let mut tool = KafkaTool::new(setup.kafka_tool.clone(), setup.work_dir.clone());
    let pool = setup.pool_bootstrap.join(",");
    let topic = format!("loadtest-proxy-{}-{}", started_unix, std::process::id());

    eprintln!("[loadtest] work dir {}", setup.work_dir.display());
    eprintln!(
        "[loadtest] creating topic {topic} ({} partitions, RF {})",
        params.partitions, params.replication_factor
    );
    tool.run(
        "create-topic",
        "kafka-topics",
        &strings(&[
            "--bootstrap-server",
            &pool,
            "--create",
            "--topic",
            &topic,
            "--partitions",
            &params.partitions.to_string(),
            "--replication-factor",
            &params.replication_factor.to_string(),
        ]),
        Duration::from_secs(120),
    )
    .context("creating the benchmark topic")?;

    let result = run_with_topic(params, setup, &mut tool, &pool, &topic);

    if !setup.keep_topic {
        let deleted = tool.run(
            "delete-topic",
            "kafka-topics",
            &strings(&["--bootstrap-server", &pool, "--delete", "--topic", &topic]),
            Duration::from_secs(120),
        );
        if let Err(e) = deleted {
            eprintln!("[loadtest] warning: could not delete topic {topic}: {e:#}");
        }
    }
    let (rounds, gateway) = result?;

    let wall_s = started.elapsed().as_secs_f64();
    let contention = Contention {
        load_before,
        load_after: procfs::loadavg()?,
        wall_s,
        cpu_pressure_pct: pressure_before
            .zip(procfs::cpu_pressure_us())
            .map(|(before, after)| after.saturating_sub(before) as f64 / 1e6 / wall_s * 100.0),
    };
    let report = Report::build(
        params,
        setup,
        &topic,
        started_unix,
        contention,
        rounds,
        gateway,
    )?;
    report::write(&report, &setup.out_dir)
}

/// The part that needs cleaning up after: the gateway process and the rounds.
fn run_with_topic(
    params: &Params,
    setup: &Setup,
    tool: &mut KafkaTool,
    pool: &str,
    topic: &str,
) -> anyhow::Result<(Vec<Round>, GatewayReadings)> {
    let gateway_dir = setup.work_dir.join("gateway");
    std::fs::create_dir_all(&gateway_dir)
        .with_context(|| format!("creating {}", gateway_dir.display()))?;
    let mut gateway = Gateway::start(
        &setup.gateway_bin,
        &setup.pool_bootstrap,
        &gateway_dir,
        Duration::from_secs(30),
    )
    .context("starting the gateway")?;
    eprintln!(
        "[loadtest] gateway pid {} on {}",
        gateway.pid, gateway.bootstrap
    );
    let (clk_tck, clk_tck_measured) = procfs::clock_ticks_per_sec();
    let memory_idle = procfs::memory(gateway.pid)?;

    let mut bench = Bench {
        params,
        tool,
        pool,
        topic,
        gateway: &mut gateway,
        clk_tck,
        produced: 0,
    };
    let mut rounds = Vec::new();
    for round in 1..=params.rounds {
        rounds.push(bench.round(round)?);
    }

    let memory_end = procfs::memory(gateway.pid)?;
    let cpu_total_s = procfs::cpu_ticks(gateway.pid)?.total() as f64 / clk_tck as f64;
    let pid = gateway.pid;
    let bootstrap = gateway.bootstrap.clone();
    gateway.stop();
    let log = scan_log(&gateway.log_path)?;
    Ok((
        rounds,
        GatewayReadings {
            pid,
            bootstrap,
            clk_tck,
            clk_tck_measured,
            memory_idle,
            memory_end,
            cpu_total_s,
            log,
        },
    ))
}

/// The state one round needs.
struct Bench<'a> {
    params: &'a Params,
    tool: &'a mut KafkaTool,
    /// Pool bootstrap list, comma-joined.
    pool: &'a str,
    topic: &'a str,
    gateway: &'a mut Gateway,
    clk_tck: u64,
    /// Records produced into the topic so far, by both sides.
    produced: u64,
}

impl Bench<'_> {
    fn round(&mut self, round: u32) -> anyhow::Result<Round> {
        let order = if round % 2 == 1 {
            [Side::Direct, Side::Gateway]
        } else {
            [Side::Gateway, Side::Direct]
        };
        let mut cpu = PhaseSeconds::default();
        let mut wall = PhaseSeconds::default();
        let (mut produce_d, mut produce_g) = (None, None);
        for side in order {
            let (r, (c, w)) = self.timed(side, |b| {
                b.produce(side, round, "produce", b.params.records, None)
            })?;
            cpu.produce_s += c;
            wall.produce_s += w;
            *pick(side, &mut produce_d, &mut produce_g) = Some(r);
        }
        let consume_records = self.produced;
        let (mut consume_d, mut consume_g) = (None, None);
        for side in order {
            let (r, (c, w)) = self.timed(side, |b| b.consume(side, round, consume_records))?;
            cpu.consume_s += c;
            wall.consume_s += w;
            *pick(side, &mut consume_d, &mut consume_g) = Some(r);
        }
        let direct_max = produce_d
            .as_ref()
            .map_or(0.0, |p: &ProduceResult| p.records_per_sec);
        let half_rate = ((direct_max / 2.0).round() as u64).max(1);
        let (mut half_d, mut half_g) = (None, None);
        for side in order {
            let (r, (c, w)) = self.timed(side, |b| {
                b.produce(side, round, "half", b.params.half_records, Some(half_rate))
            })?;
            cpu.half_s += c;
            wall.half_s += w;
            *pick(side, &mut half_d, &mut half_g) = Some(r);
        }
        let side_round =
            |p: Option<ProduceResult>, c: Option<ConsumeResult>, h: Option<ProduceResult>| {
                Ok::<_, anyhow::Error>(SideRound {
                    produce: p.context("produce phase missing")?,
                    consume: c.context("consume phase missing")?,
                    half: h.context("half-load phase missing")?,
                })
            };
        let direct = side_round(produce_d, consume_d, half_d)?;
        let gateway = side_round(produce_g, consume_g, half_g)?;
        let size = self.params.record_size;
        let gateway_bytes = PhaseBytes {
            produce: gateway.produce.records * size,
            consume: gateway.consume.records * size,
            half: gateway.half.records * size,
        };
        Ok(Round {
            round,
            first: order[0],
            half_rate,
            consume_records,
            direct,
            gateway,
            gateway_cpu: cpu,
            gateway_wall: wall,
            gateway_bytes,
        })
    }

    /// Runs `f`, and for the gateway side returns the gateway CPU seconds it cost
    /// and its wall time (both zero for the direct side); also checks that the
    /// gateway survived it.
    fn timed<T>(
        &mut self,
        side: Side,
        f: impl FnOnce(&mut Self) -> anyhow::Result<T>,
    ) -> anyhow::Result<(T, (f64, f64))> {
        if side == Side::Direct {
            return Ok((f(self)?, (0.0, 0.0)));
        }
        let before = procfs::cpu_ticks(self.gateway.pid)?;
        let started = Instant::now();
        let result = f(self);
        if !self.gateway.alive() {
            let log = std::fs::read_to_string(&self.gateway.log_path).unwrap_or_default();
            bail!(
                "the gateway exited during a gateway phase; log tail:\n{}",
                tail(&log, 3000)
            );
        }
        let after = procfs::cpu_ticks(self.gateway.pid)?;
        let wall = started.elapsed().as_secs_f64();
        let cpu = after.total().saturating_sub(before.total()) as f64 / self.clk_tck as f64;
        Ok((result?, (cpu, wall)))
    }

    fn bootstrap(&self, side: Side) -> String {
        match side {
            Side::Direct => self.pool.to_string(),
            Side::Gateway => self.gateway.bootstrap.clone(),
        }
    }

    fn produce(
        &mut self,
        side: Side,
        round: u32,
        phase: &str,
        records: u64,
        rate: Option<u64>,
    ) -> anyhow::Result<ProduceResult> {
        let p = self.params;
        let label = format!("r{round}-{phase}-{}", side.name());
        let throughput = rate.map_or("-1".to_string(), |r| r.to_string());
        eprintln!(
            "[loadtest] {label}: {records} x {} B, throughput {throughput}",
            p.record_size
        );
        let args = strings(&[
            "--topic",
            self.topic,
            "--num-records",
            &records.to_string(),
            "--record-size",
            &p.record_size.to_string(),
            "--throughput",
            &throughput,
            "--producer-props",
            &format!("bootstrap.servers={}", self.bootstrap(side)),
            &format!("acks={}", p.acks),
            &format!("linger.ms={}", p.linger_ms),
            &format!("batch.size={}", p.batch_size),
            &format!("client.id=loadtest-{label}"),
        ]);
        let out = self.tool.run(
            &label,
            "kafka-producer-perf-test",
            &args,
            Duration::from_secs(p.tool_timeout_s),
        )?;
        let result = parse_producer(&out.stdout, &out.stderr)
            .with_context(|| format!("{label}: {}", tail(&out.stderr, 2000)))?;
        if result.records != records {
            bail!(
                "{label}: ProducerPerformance reported {} of {records} records",
                result.records
            );
        }
        self.produced += records;
        eprintln!("[loadtest]   {}", result.raw);
        Ok(result)
    }

    fn consume(&mut self, side: Side, round: u32, records: u64) -> anyhow::Result<ConsumeResult> {
        let p = self.params;
        let label = format!("r{round}-consume-{}", side.name());
        eprintln!("[loadtest] {label}: {records} records");
        let args = strings(&[
            "--bootstrap-server",
            &self.bootstrap(side),
            "--topic",
            self.topic,
            "--messages",
            &records.to_string(),
            "--group",
            &format!("loadtest-{label}-{}", std::process::id()),
            "--timeout",
            "30000",
        ]);
        let out = self.tool.run(
            &label,
            "kafka-consumer-perf-test",
            &args,
            Duration::from_secs(p.tool_timeout_s),
        )?;
        let result = parse_consumer(&out.stdout, &out.stderr)
            .with_context(|| format!("{label}: {}", tail(&out.stderr, 2000)))?;
        if result.records < records {
            bail!(
                "{label}: ConsumerPerformance got {} of {records} records (timed out?)",
                result.records
            );
        }
        eprintln!("[loadtest]   {}", result.raw);
        Ok(result)
    }
}

fn pick<'a, T>(side: Side, direct: &'a mut T, gateway: &'a mut T) -> &'a mut T {
    match side {
        Side::Direct => direct,
        Side::Gateway => gateway,
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Counts warnings, errors and panics in the gateway log and keeps a few samples.
pub(crate) fn scan_log(path: &Path) -> anyhow::Result<LogScan> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(scan_log_text(&String::from_utf8_lossy(&bytes), path))
}

fn scan_log_text(text: &str, path: &Path) -> LogScan {
    let mut scan = LogScan {
        path: path.display().to_string(),
        ..LogScan::default()
    };
    for line in text.lines().map(strip_ansi) {
        scan.lines += 1;
        let interesting = if line.contains("panicked") {
            scan.panics += 1;
            true
        } else if line.contains(" ERROR ") {
            scan.error += 1;
            true
        } else if line.contains(" WARN ") {
            scan.warn += 1;
            true
        } else {
            false
        };
        if interesting && scan.samples.len() < 20 {
            scan.samples.push(line);
        }
    }
    scan
}

/// `line` without terminal colour escapes (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scan_counts_and_strips_colour() {
        let text = "2026-01-01T00:00:00Z  INFO sluice: listening\n\
                    \u{1b}[2m2026\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m upstream closed\n\
                    2026 ERROR conn: reset\n\
                    thread 'tokio' panicked at src/x.rs:1\n";
        let scan = scan_log_text(text, Path::new("x.log"));
        assert_eq!(
            (scan.lines, scan.warn, scan.error, scan.panics),
            (4, 1, 1, 1)
        );
        assert_eq!(scan.samples[0], "2026  WARN upstream closed");
    }
}
