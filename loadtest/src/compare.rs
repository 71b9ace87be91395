//! `loadtest compare`: the same scenarios, in one run, against the pool directly,
//! through a `sluice` it starts (SASL/PLAIN with a token per tenant, tenants from a
//! seed file), and through a peer proxy (Kroxylicious, see `peer`; no auth). Writes
//! `scenarios.json`, `scenarios.md` and one PNG per scenario (`plots`).
//!
//! Per scenario: fresh pool topics `<tenant>.lt-<run>-<scenario>` (deleted at the
//! end), prefilled directly for `consume`; then each target in turn with a fresh proxy
//! process, whose CPU (`/proc/<pid>/stat`) and RSS are sampled every second of the
//! run. Clients name `<topic>` through sluice (its tenant mapping adds the prefix) and
//! the pool name elsewhere, so every target reads and writes the same pool topics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::bench::scan_log;
use crate::compare_report::{
    self, cpu_s_per_gb, window_rates, GroupResult, ProcSample, ProxyUsage, ScenarioResult,
    TargetRun,
};
use crate::gateway::Gateway;
use crate::kafka_client::{self, Endpoint, Topics};
use crate::latency::{percentiles, timeline};
use crate::pool::PoolClient;
use crate::procfs;
use crate::report::{profile_of, utc_date};
use crate::scenario::{ClientGroup, Kind, ScenarioSpec, Tenants};
use crate::{peer, plots, sasl};

const SUBJECT: &str = "loadtest";

/// Which targets a run compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Direct,
    Sluice,
    Peer,
}

/// The quotas sluice applies to the benchmark tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quotas {
    /// Byte rates, request rate and connection limits lifted: the proxy's own cost.
    Lifted,
    /// The gateway's default quotas (SPEC 7), connection limits still lifted.
    Default,
}

pub struct Params {
    pub scenarios: Vec<ScenarioSpec>,
    pub targets: Vec<Target>,
    pub quotas: Quotas,
    /// Seconds of direct produce that fill the consume scenario's topic.
    pub prefill_s: f64,
    /// Seconds each scenario first runs directly, unmeasured: fresh topics get their
    /// leaders and segments, the pool its page cache, so the first target measured is
    /// not the one that pays for that.
    pub warmup_s: f64,
    /// Runs per target and scenario; the report shows each target's median round.
    pub rounds: u32,
    pub smoke: bool,
}

pub struct Setup {
    pub gateway_bin: PathBuf,
    pub pool_bootstrap: Vec<String>,
    pub out_dir: PathBuf,
    pub work_dir: PathBuf,
    /// Where the peer is downloaded and built (git-ignored).
    pub cache_dir: PathBuf,
    pub command: String,
    pub invocation: String,
    pub git_commit: String,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    #[serde(flatten)]
    pub host: procfs::Host,
    pub date_utc: String,
    pub gateway_bin: String,
    pub gateway_profile: String,
    /// When the gateway binary was written (is it older than the commit?).
    pub gateway_bin_modified_utc: String,
    pub loadtest_profile: &'static str,
    pub git_commit: String,
    pub java: String,
    pub librdkafka: String,
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
    pub cpu_pressure_pct: Option<f64>,
    pub wall_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub machine: Machine,
    pub command: String,
    pub invocation: String,
    pub quotas: Quotas,
    pub peer: String,
    pub scenarios: Vec<ScenarioResult>,
    pub goals: Vec<compare_report::Goal>,
}

/// Tenant ids: the quota mode and the document's version (2: 64 GiB/s lifted rates)
/// are in the name because the seed file only writes absent tenants (a pool kept
/// from an older run still holds the older document).
fn tenant_ids(quotas: Quotas, n: u32) -> Vec<String> {
    let q = match quotas {
        Quotas::Lifted => "l",
        Quotas::Default => "d",
    };
    (0..n).map(|i| format!("lt2{q}-{i}")).collect()
}

/// The seed file: every tenant allows its principals everything, with `quotas`.
fn seed(ids: &[String], quotas: Quotas) -> String {
    // Far above what loopback carries: at 256 MiB/s the lifted quota still capped consume.
    const BYTES: u64 = 64 << 30;
    const MANY: u64 = 1_000_000_000;
    let limits = match quotas {
        Quotas::Lifted => serde_json::json!({
            "produce_bytes_per_sec": BYTES, "consume_bytes_per_sec": BYTES,
            "partition_produce_bytes_per_sec": BYTES, "partition_consume_bytes_per_sec": BYTES,
            "max_connections": MANY, "max_connections_per_sec": MANY, "max_request_rate": 1_000_000,
        }),
        Quotas::Default => {
            serde_json::json!({"max_connections": MANY, "max_connections_per_sec": MANY})
        }
    };
    let docs: Vec<_> = ids.iter().map(|id| sasl::tenant_doc(id, &limits)).collect();
    serde_json::Value::Array(docs).to_string()
}

/// Everything that lives for the whole run.
struct Ctx<'a> {
    params: &'a Params,
    setup: &'a Setup,
    ids: Vec<String>,
    tokens: Vec<String>,
    jwks: PathBuf,
    seed: PathBuf,
    peer: Option<peer::Install>,
    clk_tck: u64,
}

pub fn run(params: &Params, setup: &Setup) -> anyhow::Result<Vec<PathBuf>> {
    for d in [&setup.work_dir, &setup.out_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if !kafka_client::is_loopback(&setup.pool_bootstrap.join(",")) {
        bail!("the pool must be on loopback");
    }
    let load_before = procfs::loadavg()?;
    let pressure_before = procfs::cpu_pressure_us();
    let started = Instant::now();
    let started_unix = unix_now();
    let tenants = params
        .scenarios
        .iter()
        .map(|s| s.tenants)
        .max()
        .unwrap_or(1);
    let ids = tenant_ids(params.quotas, tenants);
    let mut ctx = Ctx {
        params,
        setup,
        tokens: Vec::new(),
        jwks: PathBuf::new(),
        seed: setup.work_dir.join("tenants.json"),
        peer: None,
        clk_tck: procfs::clock_ticks_per_sec().0,
        ids,
    };
    if params.targets.contains(&Target::Sluice) {
        let key = sasl::keygen(&setup.gateway_bin, &setup.work_dir)?;
        for id in &ctx.ids {
            ctx.tokens
                .push(sasl::mint(&setup.gateway_bin, &key, id, SUBJECT, 7200)?);
        }
        ctx.jwks = key.jwks.clone();
        std::fs::write(&ctx.seed, seed(&ctx.ids, params.quotas))
            .with_context(|| format!("writing {}", ctx.seed.display()))?;
    }
    if params.targets.contains(&Target::Peer) {
        ctx.peer = Some(peer::install(&setup.cache_dir).context("installing the peer proxy")?);
    }
    let mut results = Vec::new();
    for (i, spec) in params.scenarios.iter().enumerate() {
        let base = format!("lt-{started_unix}-{}-{i}", std::process::id());
        results.push(ctx.scenario(spec, &base)?);
    }
    let wall_s = started.elapsed().as_secs_f64();
    let machine = Machine {
        host: procfs::host()?,
        date_utc: utc_date(started_unix),
        gateway_bin: setup.gateway_bin.display().to_string(),
        gateway_profile: profile_of(&setup.gateway_bin),
        gateway_bin_modified_utc: std::fs::metadata(&setup.gateway_bin)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(|| "unknown".into(), |d| utc_date(d.as_secs())),
        loadtest_profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        git_commit: setup.git_commit.clone(),
        java: java_version(),
        librdkafka: rdkafka::util::get_rdkafka_version().1,
        load_before,
        load_after: procfs::loadavg()?,
        cpu_pressure_pct: pressure_before
            .zip(procfs::cpu_pressure_us())
            .map(|(b, a)| a.saturating_sub(b) as f64 / 1e6 / wall_s * 100.0),
        wall_s,
    };
    let peer_name = format!("{}-{}", peer::NAME, peer::VERSION);
    let goals = compare_report::goals(&results, &peer_name);
    let report = Report {
        schema: "sluice.loadtest.scenarios/1",
        machine,
        command: setup.command.clone(),
        invocation: setup.invocation.clone(),
        quotas: params.quotas,
        peer: peer_name.clone(),
        scenarios: results,
        goals,
    };
    write(&report, params, &setup.out_dir)
}

impl Ctx<'_> {
    fn scenario(&self, spec: &ScenarioSpec, base: &str) -> anyhow::Result<ScenarioResult> {
        let topics = Topics {
            tenants: self.ids[..spec.tenants as usize].to_vec(),
            base: base.to_string(),
        };
        let names: Vec<String> = (0..spec.tenants).map(|t| topics.pool_name(t)).collect();
        eprintln!("[compare] {}", spec.describe());
        let mut pool = PoolClient::new(&self.setup.pool_bootstrap);
        pool.create_topics(
            &names
                .iter()
                .map(|n| (n.clone(), spec.partitions as i32))
                .collect::<Vec<_>>(),
        )
        .context("creating the scenario's topics")?;
        let result = self.scenario_on_topics(spec, &topics);
        match pool.delete_topics(&names) {
            Ok(failed) if failed.is_empty() => {}
            Ok(failed) => eprintln!(
                "[compare] warning: topics not deleted: {}",
                failed.join(", ")
            ),
            Err(e) => eprintln!("[compare] warning: deleting topics: {e}"),
        }
        let all_rounds = result?;
        let paced = spec.groups.first().is_some_and(|g| {
            g.rate.is_some() || !matches!(g.kind, Kind::Produce | Kind::ConsumeLoop)
        });
        let mut runs: Vec<TargetRun> = Vec::new();
        for target in &self.params.targets {
            let name = self.target_name(*target);
            let mine: Vec<TargetRun> = all_rounds
                .iter()
                .filter(|r| r.target == name)
                .cloned()
                .collect();
            if let Some(i) = compare_report::median_round(&mine, paced) {
                runs.push(mine[i].clone());
            }
        }
        let direct = runs.iter().find(|r| r.target == "direct");
        let ratios = match direct {
            Some(d) => runs
                .iter()
                .filter(|r| r.target != "direct")
                .flat_map(|r| compare_report::ratios(d, r))
                .collect(),
            None => Vec::new(),
        };
        Ok(ScenarioResult {
            spec: spec.clone(),
            description: spec.describe(),
            topics: names,
            runs,
            ratios,
            all_rounds,
        })
    }

    fn target_name(&self, target: Target) -> String {
        match target {
            Target::Direct => "direct".into(),
            Target::Sluice => "sluice".into(),
            Target::Peer => format!("{}-{}", peer::NAME, peer::VERSION),
        }
    }

    fn direct_endpoint(&self) -> Endpoint {
        Endpoint {
            name: "direct".into(),
            bootstrap: self.setup.pool_bootstrap.join(","),
            sasl: None,
            tenant_names: false,
        }
    }

    fn scenario_on_topics(
        &self,
        spec: &ScenarioSpec,
        topics: &Topics,
    ) -> anyhow::Result<Vec<TargetRun>> {
        if spec.scenario.needs_prefill() {
            let fill = ScenarioSpec {
                duration_s: self.params.prefill_s,
                groups: vec![ClientGroup {
                    role: "prefill",
                    kind: Kind::Produce,
                    clients: spec.tenants,
                    tenants: Tenants::RoundRobin,
                    partition: None,
                    rate: None,
                }],
                ..spec.clone()
            };
            let out = kafka_client::run(
                &fill,
                &self.direct_endpoint(),
                topics,
                "prefill (direct)",
                &mut |_| {},
            )
            .context("prefilling the topic")?;
            let records: u64 = out.groups.iter().map(|g| g.log.records).sum();
            eprintln!("[compare] prefilled {records} records");
            if records == 0 {
                bail!("prefill wrote nothing");
            }
        } else if self.params.warmup_s > 0.0 {
            let warm = ScenarioSpec {
                duration_s: self.params.warmup_s,
                ..spec.clone()
            };
            kafka_client::run(
                &warm,
                &self.direct_endpoint(),
                topics,
                "warm-up (direct)",
                &mut |_| {},
            )
            .context("warming up")?;
        }
        let mut runs = Vec::new();
        let n = self.params.targets.len();
        for round in 0..self.params.rounds {
            // Rotate the order so no target always runs first (or last).
            for k in 0..n {
                let target = self.params.targets[(k + round as usize) % n];
                runs.push(self.target_run(spec, topics, target, round + 1)?);
            }
        }
        Ok(runs)
    }

    fn target_run(
        &self,
        spec: &ScenarioSpec,
        topics: &Topics,
        target: Target,
        round: u32,
    ) -> anyhow::Result<TargetRun> {
        let dir = self
            .setup
            .work_dir
            .join(format!("{}-{:?}", topics.base, target).to_lowercase());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (endpoint, proxy, auth) = match target {
            Target::Direct => (self.direct_endpoint(), None, "none"),
            Target::Sluice => {
                let pool = self.setup.pool_bootstrap.clone();
                let (jwks, seed) = (self.jwks.clone(), self.seed.clone());
                let gw = Gateway::start_with_config(
                    &self.setup.gateway_bin,
                    &dir,
                    Duration::from_secs(30),
                    |b| sasl::sasl_config(b, &pool, &jwks, Some(&seed), "PLAIN", "compare"),
                )
                .context("starting sluice")?;
                let creds: Vec<(String, String)> = self
                    .tokens
                    .iter()
                    .map(|t| (SUBJECT.to_string(), t.clone()))
                    .collect();
                wait_admitted(
                    &gw.bootstrap,
                    &creds[..spec.tenants as usize],
                    Duration::from_secs(60),
                )?;
                let ep = Endpoint {
                    name: "sluice".into(),
                    bootstrap: gw.bootstrap.clone(),
                    sasl: Some(creds),
                    tenant_names: true,
                };
                (ep, Some(gw), "SASL/PLAIN + JWT")
            }
            Target::Peer => {
                let install = self.peer.as_ref().context("peer not installed")?;
                let p = peer::start(install, &self.setup.pool_bootstrap, &dir)?;
                let ep = Endpoint {
                    name: format!("{}-{}", peer::NAME, peer::VERSION),
                    bootstrap: p.bootstrap.clone(),
                    sasl: None,
                    tenant_names: false,
                };
                (ep, Some(p), "none")
            }
        };
        let mut proxy = proxy;
        let pid = proxy.as_ref().map(|p| p.pid);
        let rss_idle = pid
            .and_then(|p| procfs::memory(p).ok())
            .map_or(0, |m| m.rss_kib);
        let cpu0 = pid
            .and_then(|p| procfs::cpu_ticks(p).ok())
            .map_or(0, |c| c.total());
        let clk = self.clk_tck as f64;
        let mut samples = vec![ProcSample {
            t_s: 0.0,
            cpu_s: 0.0,
            rss_kib: rss_idle,
        }];
        let label = format!("{} @ {}", spec.scenario.name(), endpoint.name);
        let outcome = kafka_client::run(spec, &endpoint, topics, &label, &mut |t| {
            if let Some(p) = pid {
                if let (Ok(c), Ok(m)) = (procfs::cpu_ticks(p), procfs::memory(p)) {
                    samples.push(ProcSample {
                        t_s: t,
                        cpu_s: c.total().saturating_sub(cpu0) as f64 / clk,
                        rss_kib: m.rss_kib,
                    });
                }
            }
        });
        let wall = outcome.as_ref().map_or(0.0, |o| o.wall_s);
        let usage = match (&mut proxy, pid) {
            (Some(p), Some(pid)) => {
                let alive = p.alive();
                let cpu1 = procfs::cpu_ticks(pid).map_or(cpu0, |c| c.total());
                let mem = procfs::memory(pid).ok();
                if let Some(m) = mem {
                    samples.push(ProcSample {
                        t_s: wall,
                        cpu_s: cpu1.saturating_sub(cpu0) as f64 / clk,
                        rss_kib: m.rss_kib,
                    });
                }
                p.stop();
                let log = scan_log(&p.log_path)?;
                if !alive {
                    bail!("{} exited during the run; log: {}", endpoint.name, log.path);
                }
                Some((cpu1.saturating_sub(cpu0) as f64 / clk, mem, log))
            }
            _ => None,
        };
        drop(proxy);
        let outcome = outcome.with_context(|| format!("{label} failed"))?;
        let groups: Vec<GroupResult> = outcome
            .groups
            .iter()
            .map(|g| {
                let tl = timeline(&g.log);
                let (rps, mbps) = window_rates(&tl, spec.duration_s);
                GroupResult {
                    role: g.group.role,
                    clients: g.group.clients,
                    records_per_sec: rps,
                    mb_per_sec: mbps,
                    records: g.log.records,
                    bytes: g.log.bytes,
                    errors: g.log.errors,
                    error_samples: g.log.error_samples.clone(),
                    capped: g.log.records >= spec.max_records,
                    latency: percentiles(&g.log.total),
                    timeline: tl,
                }
            })
            .collect();
        let bytes: u64 = groups.iter().map(|g| g.bytes).sum();
        for g in &groups {
            let l = g.latency.map_or_else(String::new, |l| {
                format!(", p50 {:.2} ms, p99 {:.2} ms", l.p50_ms, l.p99_ms)
            });
            eprintln!(
                "[compare]   {label} {}: {:.0} rec/s, {:.2} MB/s{l}, {} errors",
                g.role, g.records_per_sec, g.mb_per_sec, g.errors
            );
        }
        let proxy = usage.map(|(cpu_s, mem, log)| ProxyUsage {
            pid: pid.unwrap_or(0),
            cpu_s,
            bytes,
            cpu_s_per_gb: cpu_s_per_gb(cpu_s, bytes),
            rss_idle_kib: rss_idle,
            rss_end_kib: mem.map_or(0, |m| m.rss_kib),
            rss_peak_kib: mem.map_or(0, |m| m.hwm_kib),
            samples,
            log_warn: log.warn,
            log_error: log.error,
            log_panics: log.panics,
        });
        Ok(TargetRun {
            target: endpoint.name.clone(),
            round,
            auth,
            wall_s: outcome.wall_s,
            groups,
            proxy,
        })
    }
}

/// Polls SASL/PLAIN authentication of every tenant until the gateway, which seeds
/// them into the store at start, admits them.
fn wait_admitted(
    bootstrap: &str,
    creds: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut client = PoolClient::new(&[]);
    for (user, token) in creds {
        loop {
            match client.authenticate_plain(bootstrap, user, token) {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    bail!("tenant not admitted within {timeout:?}: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }
    Ok(())
}

fn java_version() -> String {
    std::process::Command::new("java")
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The machine and method section at the top of the Markdown report.
fn header(r: &Report, params: &Params) -> String {
    let m = &r.machine;
    let mut o = format!(
        "Generated by `loadtest compare` on {}. Raw figures: `scenarios.json` beside this file.\n\n\
         Regenerate (pool running, `deploy/pool.sh start`):\n\n```sh\n{}\n```\n\n\
         This run was invoked as `{}`.\n\n## Machine\n\n| | |\n|---|---|\n",
        m.date_utc, r.command, r.invocation
    );
    o += &format!(
        "| CPUs (nproc) | {} |\n| CPU model | {} |\n| memory | {:.1} GiB |\n| kernel | {} |\n",
        m.host.nproc, m.host.cpu_model, m.host.mem_total_gib, m.host.kernel
    );
    o += &format!(
        "| client | librdkafka {} (rdkafka crate), one thread per client |\n| Java (peer) | {} |\n",
        m.librdkafka, m.java
    );
    o += &format!(
        "| sluice | `{}` ({} profile, written {}); HEAD at the start: {} |\n",
        m.gateway_bin, m.gateway_profile, m.gateway_bin_modified_utc, m.git_commit
    );
    o += &format!(
        "| load average 1/5/15 | before {:.2} / {:.2} / {:.2}, after {:.2} / {:.2} / {:.2} |\n| CPU pressure (PSI some) | {} of {:.0} s |\n\n",
        m.load_before[0], m.load_before[1], m.load_before[2], m.load_after[0], m.load_after[1], m.load_after[2],
        m.cpu_pressure_pct.map_or_else(|| "n/a".into(), |p| format!("{p:.0}%")),
        m.wall_s
    );
    o += "## Method\n\n";
    o += "- Targets, one after the other per scenario, each with a fresh proxy process: **direct** (the pool, 3 Kafka brokers on loopback), \
          **sluice** (`sluice serve`, `listener.auth = \"sasl\"`: every client authenticates with SASL/PLAIN carrying a JWT minted per tenant; \
          the tenancy stage maps `<topic>` to the pool's `<tenant>.<topic>`), and the peer **";
    o += &format!("{}** (Kroxylicious {} from Maven Central's `kroxylicious-runtime`, Java 17, `-Xmx{}`, port per broker, **no authentication**, no filters: a plain forwarding proxy; its listeners bind the wildcard address, clients use 127.0.0.1).\n", r.peer, peer::VERSION, peer::HEAP);
    o += &format!(
        "- Sluice's tenant quotas: {}.\n",
        match params.quotas {
            Quotas::Lifted => "**lifted** (byte rates 64 GiB/s, request and connection limits out of reach): the figures are the proxy's own cost, not its throttling",
            Quotas::Default => "**the gateway defaults** (SPEC 7), connection limits lifted",
        }
    );
    o += &format!(
        "- Before the measured runs of a scenario, the scenario runs {:.0} s directly, unmeasured (the consume scenario's {:.0} s prefill plays that part): \
         a fresh topic's first seconds would otherwise land on whichever target goes first.\n",
        params.warmup_s, params.prefill_s
    );
    o += "- Clients: librdkafka through the `rdkafka` crate, the same settings on every target except the bootstrap address and SASL. \
          Every client connects (and authenticates) before the clock starts, except in the storm scenarios, where the connect cycle is what is measured.\n\
          - Throughput: records (and payload MB, 10^6 bytes) acknowledged or consumed within the measured seconds, divided by them; acks that arrive in the final flush are not counted.\n\
          - Latency: HDR histograms in µs. Producers: send-to-ack, from the *intended* send time when paced (a backlog counts), from the enqueue when unpaced (then client queueing dominates). \
          Tailing consumers (`mixed`): end-to-end from the send timestamp in the record. Storms: the whole new-client cycle.\n\
          - Proxy cost: user + system CPU of the proxy process from `/proc/<pid>/stat` over the run, per GB of payload it carried (both directions); RSS from `/proc/<pid>/status` once a second; the first reading is idle, after the clients connected.\n\
          - Everything shares the same CPUs (brokers, clients, proxy), so absolute figures are low on a small machine. With one round per target a figure carries that run's noise; with several, each target's median round is shown (the order of targets rotates by round).\n\n";
    o
}

fn write(report: &Report, params: &Params, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let json = out.join("scenarios.json");
    let md = out.join("scenarios.md");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let text = compare_report::markdown(
        &report.scenarios,
        &report.goals,
        &header(report, params),
        &report.peer,
        params.smoke,
    );
    std::fs::write(&md, text).with_context(|| format!("writing {}", md.display()))?;
    let mut written = vec![json, md];
    for s in &report.scenarios {
        let png = out.join(format!("scenarios-{}.png", s.spec.scenario.name()));
        plots::scenario(s, &png).with_context(|| format!("plotting {}", png.display()))?;
        written.push(png);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_name_the_quota_mode() {
        assert_eq!(tenant_ids(Quotas::Lifted, 2), ["lt2l-0", "lt2l-1"]);
        assert_eq!(tenant_ids(Quotas::Default, 1), ["lt2d-0"]);
        assert!(tenant_ids(Quotas::Lifted, 3)
            .iter()
            .all(|i| !i.contains('.')));
    }

    #[test]
    fn seed_lifts_or_keeps_quotas() {
        let ids = tenant_ids(Quotas::Lifted, 2);
        let v: serde_json::Value = serde_json::from_str(&seed(&ids, Quotas::Lifted)).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["id"], "lt2l-1");
        assert_eq!(v[0]["limits"]["consume_bytes_per_sec"], 64u64 << 30);
        let d: serde_json::Value = serde_json::from_str(&seed(&ids[..1], Quotas::Default)).unwrap();
        assert!(d[0]["limits"].get("produce_bytes_per_sec").is_none());
        assert_eq!(d[0]["principals"]["*"]["policies"][0], "all");
    }
}
