//! The proxy-core benchmark report: the machine, the method, every round's raw
//! figures, the medians and gateway/direct comparisons, and SPEC 11's targets beside
//! them; written as `proxy-core.json` and `proxy-core.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde::Serialize;

use crate::bench::{Contention, GatewayReadings, Params, Round, Setup};
use crate::procfs;
use crate::stats::{median, median_of_differences, median_of_ratios, ratio};

/// Bytes in the GB of "CPU seconds per GB".
const GB: f64 = 1e9;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub machine: Machine,
    pub contention: Contention,
    pub params: Params,
    pub topic: String,
    /// Exact command that reproduces this run.
    pub command: String,
    /// This run's own command line.
    pub invocation: String,
    pub rounds: Vec<Round>,
    pub summary: Summary,
    pub gateway: GatewayReadings,
    pub targets: Vec<TargetCheck>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_gib: f64,
    pub kernel: String,
    pub kafka_version: String,
    /// Start of the run, UTC.
    pub date_utc: String,
    /// Profile of the gateway binary, inferred from its path (`target/<profile>/`).
    pub gateway_profile: String,
    pub gateway_bin: String,
    pub loadtest_profile: &'static str,
    /// HEAD when the run started.
    pub git_commit: String,
    /// When the gateway binary was last written (is it older than the commit?).
    pub gateway_bin_modified_utc: String,
}

/// Medians of one side's per-round figures.
#[derive(Debug, Serialize)]
pub struct SideMedians {
    pub produce_records_per_sec: Option<f64>,
    pub produce_mb_per_sec: Option<f64>,
    pub produce_avg_ms: Option<f64>,
    pub produce_p99_ms: Option<f64>,
    pub consume_mb_per_sec: Option<f64>,
    pub consume_fetch_mb_per_sec: Option<f64>,
    pub half_avg_ms: Option<f64>,
    pub half_p99_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub direct: SideMedians,
    pub gateway: SideMedians,
    /// Median over rounds of gateway/direct max produce records/s.
    pub produce_throughput_ratio: Option<f64>,
    /// Median over rounds of gateway/direct consume fetch MB/s (group join excluded).
    pub consume_throughput_ratio: Option<f64>,
    /// The same over the whole consume run, group join included.
    pub consume_throughput_ratio_with_join: Option<f64>,
    /// Median over rounds of gateway − direct at half load, ms.
    pub added_half_mean_ms: Option<f64>,
    pub added_half_p99_ms: Option<f64>,
    /// The same at max rate (dominated by client-side queueing; for context only).
    pub added_max_mean_ms: Option<f64>,
    pub gateway_cpu_s: f64,
    /// Wall time of the gateway phases (tool runs, JVM start included).
    pub gateway_phase_wall_s: f64,
    /// CPU the gateway used outside the phases (startup, idle pauses).
    pub gateway_cpu_outside_phases_s: f64,
    pub gateway_payload_gb: f64,
    pub cpu_s_per_gb: Option<f64>,
    pub cpu_s_per_gb_produce: Option<f64>,
    pub cpu_s_per_gb_consume: Option<f64>,
    pub cpu_s_per_gb_half: Option<f64>,
    pub rss_idle_kib: u64,
    pub rss_end_kib: u64,
    pub rss_peak_kib: u64,
    /// Exception lines the clients logged, per side (failed sends and the like).
    pub client_error_lines_direct: usize,
    pub client_error_lines_gateway: usize,
    pub per_round: PerRound,
}

/// The compared figures round by round, in round order.
#[derive(Debug, Default, Serialize)]
pub struct PerRound {
    pub produce_ratio: Vec<f64>,
    pub consume_ratio: Vec<f64>,
    pub added_half_mean_ms: Vec<f64>,
    pub added_half_p99_ms: Vec<f64>,
    pub cpu_s_per_gb: Vec<f64>,
    pub cpu_s_per_gb_produce: Vec<f64>,
    pub cpu_s_per_gb_consume: Vec<f64>,
}

/// One SPEC 11 goal beside what this run measured.
#[derive(Debug, Serialize)]
pub struct TargetCheck {
    pub goal: &'static str,
    pub target: &'static str,
    pub measured: String,
    /// "met", "missed" or "not measured".
    pub status: &'static str,
}

impl Report {
    pub fn build(
        params: &Params,
        setup: &Setup,
        topic: &str,
        started_unix: u64,
        contention: Contention,
        rounds: Vec<Round>,
        gateway: GatewayReadings,
    ) -> anyhow::Result<Self> {
        let machine = Machine {
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
            gateway_profile: profile_of(&setup.gateway_bin),
            gateway_bin: setup.gateway_bin.display().to_string(),
            loadtest_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            git_commit: setup.git_commit.clone(),
            gateway_bin_modified_utc: std::fs::metadata(&setup.gateway_bin)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or_else(|| "unknown".into(), |d| utc_date(d.as_secs())),
        };
        let summary = summarize(&rounds, &gateway);
        let targets = targets(&summary);
        Ok(Report {
            schema: "sluice.loadtest.proxy-core/1",
            machine,
            contention,
            params: params.clone(),
            topic: topic.to_string(),
            command: setup.command.clone(),
            invocation: setup.invocation.clone(),
            rounds,
            summary,
            gateway,
            targets,
        })
    }
}

fn side_medians(
    rounds: &[Round],
    side: impl Fn(&Round) -> &crate::bench::SideRound,
) -> SideMedians {
    let m = |f: &dyn Fn(&crate::bench::SideRound) -> f64| {
        median(&rounds.iter().map(|r| f(side(r))).collect::<Vec<_>>())
    };
    SideMedians {
        produce_records_per_sec: m(&|s| s.produce.records_per_sec),
        produce_mb_per_sec: m(&|s| s.produce.mb_per_sec),
        produce_avg_ms: m(&|s| s.produce.avg_latency_ms),
        produce_p99_ms: m(&|s| s.produce.p99_ms),
        consume_mb_per_sec: m(&|s| s.consume.mb_per_sec),
        consume_fetch_mb_per_sec: m(&|s| s.consume.fetch_mb_per_sec),
        half_avg_ms: m(&|s| s.half.avg_latency_ms),
        half_p99_ms: m(&|s| s.half.p99_ms),
    }
}

/// Medians, paired ratios and differences, and the gateway's cost per GB.
pub fn summarize(rounds: &[Round], gateway: &GatewayReadings) -> Summary {
    let col = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<_>>();
    let cpu_s = col(&|r| r.gateway_cpu.produce_s + r.gateway_cpu.consume_s + r.gateway_cpu.half_s)
        .iter()
        .sum::<f64>();
    let bytes =
        col(&|r| (r.gateway_bytes.produce + r.gateway_bytes.consume + r.gateway_bytes.half) as f64)
            .iter()
            .sum::<f64>();
    let per_gb = |cpu: f64, bytes: f64| ratio(cpu, bytes / GB);
    let sum = |f: &dyn Fn(&Round) -> f64| col(f).iter().sum::<f64>();
    let errors = |f: &dyn Fn(&crate::bench::SideRound) -> usize, gw: bool| {
        rounds
            .iter()
            .map(|r| f(if gw { &r.gateway } else { &r.direct }))
            .sum::<usize>()
    };
    let all_errors = |s: &crate::bench::SideRound| {
        s.produce.error_lines + s.consume.error_lines + s.half.error_lines
    };
    Summary {
        direct: side_medians(rounds, |r| &r.direct),
        gateway: side_medians(rounds, |r| &r.gateway),
        produce_throughput_ratio: median_of_ratios(
            &col(&|r| r.gateway.produce.records_per_sec),
            &col(&|r| r.direct.produce.records_per_sec),
        ),
        consume_throughput_ratio: median_of_ratios(
            &col(&|r| r.gateway.consume.fetch_mb_per_sec),
            &col(&|r| r.direct.consume.fetch_mb_per_sec),
        ),
        consume_throughput_ratio_with_join: median_of_ratios(
            &col(&|r| r.gateway.consume.mb_per_sec),
            &col(&|r| r.direct.consume.mb_per_sec),
        ),
        added_half_mean_ms: median_of_differences(
            &col(&|r| r.gateway.half.avg_latency_ms),
            &col(&|r| r.direct.half.avg_latency_ms),
        ),
        added_half_p99_ms: median_of_differences(
            &col(&|r| r.gateway.half.p99_ms),
            &col(&|r| r.direct.half.p99_ms),
        ),
        added_max_mean_ms: median_of_differences(
            &col(&|r| r.gateway.produce.avg_latency_ms),
            &col(&|r| r.direct.produce.avg_latency_ms),
        ),
        gateway_cpu_s: cpu_s,
        gateway_phase_wall_s: sum(&|r| {
            r.gateway_wall.produce_s + r.gateway_wall.consume_s + r.gateway_wall.half_s
        }),
        gateway_cpu_outside_phases_s: (gateway.cpu_total_s - cpu_s).max(0.0),
        gateway_payload_gb: bytes / GB,
        cpu_s_per_gb: per_gb(cpu_s, bytes),
        cpu_s_per_gb_produce: per_gb(
            sum(&|r| r.gateway_cpu.produce_s),
            sum(&|r| r.gateway_bytes.produce as f64),
        ),
        cpu_s_per_gb_consume: per_gb(
            sum(&|r| r.gateway_cpu.consume_s),
            sum(&|r| r.gateway_bytes.consume as f64),
        ),
        cpu_s_per_gb_half: per_gb(
            sum(&|r| r.gateway_cpu.half_s),
            sum(&|r| r.gateway_bytes.half as f64),
        ),
        rss_idle_kib: gateway.memory_idle.rss_kib,
        rss_end_kib: gateway.memory_end.rss_kib,
        rss_peak_kib: gateway.memory_end.hwm_kib,
        client_error_lines_direct: errors(&all_errors, false),
        client_error_lines_gateway: errors(&all_errors, true),
        per_round: PerRound {
            produce_ratio: rounds
                .iter()
                .filter_map(|r| {
                    ratio(
                        r.gateway.produce.records_per_sec,
                        r.direct.produce.records_per_sec,
                    )
                })
                .collect(),
            consume_ratio: rounds
                .iter()
                .filter_map(|r| {
                    ratio(
                        r.gateway.consume.fetch_mb_per_sec,
                        r.direct.consume.fetch_mb_per_sec,
                    )
                })
                .collect(),
            added_half_mean_ms: col(&|r| {
                r.gateway.half.avg_latency_ms - r.direct.half.avg_latency_ms
            }),
            added_half_p99_ms: col(&|r| r.gateway.half.p99_ms - r.direct.half.p99_ms),
            cpu_s_per_gb: rounds
                .iter()
                .filter_map(|r| {
                    let c = &r.gateway_cpu;
                    let b = &r.gateway_bytes;
                    per_gb(
                        c.produce_s + c.consume_s + c.half_s,
                        (b.produce + b.consume + b.half) as f64,
                    )
                })
                .collect(),
            cpu_s_per_gb_produce: rounds
                .iter()
                .filter_map(|r| per_gb(r.gateway_cpu.produce_s, r.gateway_bytes.produce as f64))
                .collect(),
            cpu_s_per_gb_consume: rounds
                .iter()
                .filter_map(|r| per_gb(r.gateway_cpu.consume_s, r.gateway_bytes.consume as f64))
                .collect(),
        },
    }
}

/// A goal checked on the median, with every round's own value beside it: "met"
/// when every round meets it, "missed" when none does, "inconclusive" when the
/// rounds disagree (the noise is larger than the margin).
fn check(
    goal: &'static str,
    target: &'static str,
    median: Option<f64>,
    per_round: &[f64],
    unit: &str,
    ok: impl Fn(f64) -> bool,
) -> TargetCheck {
    let Some(v) = median else {
        return TargetCheck {
            goal,
            target,
            measured: "n/a".into(),
            status: "not measured",
        };
    };
    let rounds = per_round
        .iter()
        .map(|r| format!("{r:.3}"))
        .collect::<Vec<_>>()
        .join(", ");
    let passing = per_round.iter().filter(|r| ok(**r)).count();
    let status = if per_round.is_empty() {
        if ok(v) {
            "met"
        } else {
            "missed"
        }
    } else if passing == per_round.len() {
        "met"
    } else if passing == 0 {
        "missed"
    } else {
        "inconclusive"
    };
    TargetCheck {
        goal,
        target,
        measured: format!("{v:.3}{unit} (rounds: {rounds})"),
        status,
    }
}

/// SPEC 11's goals that this benchmark speaks to: met, missed, inconclusive or not
/// measured.
pub fn targets(s: &Summary) -> Vec<TargetCheck> {
    let r = &s.per_round;
    vec![
        check(
            "produce throughput vs direct",
            "≥ 0.97×",
            s.produce_throughput_ratio,
            &r.produce_ratio,
            "×",
            |v| v >= 0.97,
        ),
        check(
            "consume throughput vs direct (fetch MB/s)",
            "≥ 0.97×",
            s.consume_throughput_ratio,
            &r.consume_ratio,
            "×",
            |v| v >= 0.97,
        ),
        check(
            "added produce latency at half load, mean",
            "≤ 0.3 ms",
            s.added_half_mean_ms,
            &r.added_half_mean_ms,
            " ms",
            |v| v <= 0.3,
        ),
        check(
            "added produce latency at half load, p99",
            "≤ 0.5 ms",
            s.added_half_p99_ms,
            &r.added_half_p99_ms,
            " ms",
            |v| v <= 0.5,
        ),
        // Per direction: a figure over all phases would depend on the produce/consume
        // mix of the run rather than on the gateway.
        check(
            "gateway CPU per GB proxied, max-rate produce",
            "≤ 2 CPU-s/GB (≈1 expected on 2 cores)",
            s.cpu_s_per_gb_produce,
            &r.cpu_s_per_gb_produce,
            " CPU-s/GB",
            |v| v <= 2.0,
        ),
        check(
            "gateway CPU per GB proxied, consume",
            "≤ 2 CPU-s/GB (≈1 expected on 2 cores)",
            s.cpu_s_per_gb_consume,
            &r.cpu_s_per_gb_consume,
            " CPU-s/GB",
            |v| v <= 2.0,
        ),
        TargetCheck {
            goal: "gateway CPU per GB vs a bare tokio copy relay",
            target: "≤ 1.5× relay",
            measured: "no relay in this run".into(),
            status: "not measured",
        },
        TargetCheck {
            goal: "RSS per idle authenticated connection (10 000 held)",
            target: "≤ 64 KiB",
            measured: "not measured here (idle-connection benchmark)".into(),
            status: "not measured",
        },
        TargetCheck {
            goal: "beat a peer proxy (Kroxylicious / kafka-proxy) on CPU/GB and added p99",
            target: "better than peer",
            measured: "no peer proxy in this run".into(),
            status: "not measured",
        },
    ]
}

/// First line of a command's stdout, or "unknown".
pub(crate) fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// HEAD's short hash, marked when `gateway/` differs from it (the binary may then
/// hold uncommitted work).
pub fn git_commit() -> String {
    let head = command_line("git", &["rev-parse", "--short=12", "HEAD"]);
    let clean = Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--", "gateway"])
        .status()
        .is_ok_and(|s| s.success());
    if clean {
        head
    } else {
        format!("{head} (gateway/ has uncommitted changes)")
    }
}

/// The cargo profile a binary was built with, from `target/<profile>/<bin>`.
pub fn profile_of(bin: &Path) -> String {
    let parent = bin.parent();
    let in_target = parent
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .is_some_and(|n| n == "target");
    match parent.and_then(Path::file_name).and_then(|n| n.to_str()) {
        Some(name) if in_target => name.to_string(),
        _ => "unknown".into(),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time (days-to-civil after H. Hinnant).
pub fn utc_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Writes `proxy-core.json` and `proxy-core.md` into `dir`.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let json_path = dir.join("proxy-core.json");
    let md_path = dir.join("proxy-core.md");
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, markdown(report))
        .with_context(|| format!("writing {}", md_path.display()))?;
    Ok((json_path, md_path))
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"))
}

/// The Markdown report. `writeln!` into a `String` cannot fail, hence the `let _`.
pub fn markdown(r: &Report) -> String {
    let s = &r.summary;
    let m = &r.machine;
    let p = &r.params;
    let mut o = String::new();
    let _ = writeln!(o, "# Proxy core: direct vs gateway\n");
    if p.smoke {
        let _ = writeln!(o, "> **Smoke run** (tiny sizes, one round): checks that the benchmark works; the figures mean little.\n");
    }
    let _ = writeln!(o, "Generated by `loadtest proxy-bench` on {}. Raw figures: `proxy-core.json` beside this file.\n", m.date_utc);

    let _ = writeln!(o, "## Result\n");
    let _ = writeln!(
        o,
        "| SPEC 11 goal | target | measured | status |\n|---|---|---|---|"
    );
    for t in &r.targets {
        let _ = writeln!(
            o,
            "| {} | {} | {} | **{}** |",
            t.goal, t.target, t.measured, t.status
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| median over rounds | direct | gateway | gateway vs direct |\n|---|---|---|---|"
    );
    let row =
        |o: &mut String, name: &str, d: Option<f64>, g: Option<f64>, cmp: String, digits: usize| {
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {cmp} |",
                f(d, digits),
                f(g, digits)
            );
        };
    row(
        &mut o,
        "max produce, records/s",
        s.direct.produce_records_per_sec,
        s.gateway.produce_records_per_sec,
        format!(
            "{}× (median of per-round ratios)",
            f(s.produce_throughput_ratio, 3)
        ),
        0,
    );
    row(
        &mut o,
        "max produce, MB/s",
        s.direct.produce_mb_per_sec,
        s.gateway.produce_mb_per_sec,
        String::new(),
        2,
    );
    row(
        &mut o,
        "max produce, avg latency ms",
        s.direct.produce_avg_ms,
        s.gateway.produce_avg_ms,
        format!(
            "{} ms added (client queueing dominates at max rate)",
            f(s.added_max_mean_ms, 2)
        ),
        2,
    );
    row(
        &mut o,
        "max produce, p99 latency ms",
        s.direct.produce_p99_ms,
        s.gateway.produce_p99_ms,
        String::new(),
        0,
    );
    row(
        &mut o,
        "consume, fetch MB/s (group join excluded)",
        s.direct.consume_fetch_mb_per_sec,
        s.gateway.consume_fetch_mb_per_sec,
        format!("{}×", f(s.consume_throughput_ratio, 3)),
        2,
    );
    row(
        &mut o,
        "consume, MB/s over the whole run",
        s.direct.consume_mb_per_sec,
        s.gateway.consume_mb_per_sec,
        format!("{}×", f(s.consume_throughput_ratio_with_join, 3)),
        2,
    );
    row(
        &mut o,
        "half-load produce, avg latency ms",
        s.direct.half_avg_ms,
        s.gateway.half_avg_ms,
        format!("{} ms added", f(s.added_half_mean_ms, 2)),
        2,
    );
    row(
        &mut o,
        "half-load produce, p99 latency ms",
        s.direct.half_p99_ms,
        s.gateway.half_p99_ms,
        format!("{} ms added", f(s.added_half_p99_ms, 1)),
        0,
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Gateway cost per GB of payload proxied: **{} CPU-s/GB for max-rate produce, {} for consume**, {} for half-load produce; \
         {} over all phases together ({:.2} CPU-s over {:.3} GB; that figure depends on the mix, and consume volume grows by round). \
         Memory: RSS {:.1} MiB idle after start, {:.1} MiB at the end, peak (VmHWM) {:.1} MiB.\n",
        f(s.cpu_s_per_gb_produce, 2),
        f(s.cpu_s_per_gb_consume, 2),
        f(s.cpu_s_per_gb_half, 2),
        f(s.cpu_s_per_gb, 2),
        s.gateway_cpu_s,
        s.gateway_payload_gb,
        s.rss_idle_kib as f64 / 1024.0,
        s.rss_end_kib as f64 / 1024.0,
        s.rss_peak_kib as f64 / 1024.0,
    );
    let _ = writeln!(
        o,
        "The gateway phases took {:.0} s of wall time (JVM starts included), so the gateway averaged {:.1}% of one CPU while proxying; \
         outside the phases (startup, pauses between runs) it used {:.2} CPU-s more, not counted above.\n",
        s.gateway_phase_wall_s,
        ratio(s.gateway_cpu_s * 100.0, s.gateway_phase_wall_s).unwrap_or(0.0),
        s.gateway_cpu_outside_phases_s,
    );
    let g = &r.gateway.log;
    let _ = writeln!(
        o,
        "Gateway log: {} lines, {} WARN, {} ERROR, {} panics. Client exception lines on stderr: {} direct, {} gateway.\n",
        g.lines, g.warn, g.error, g.panics, s.client_error_lines_direct, s.client_error_lines_gateway
    );
    if !g.samples.is_empty() {
        let _ = writeln!(o, "First warning/error lines of the gateway log:\n\n```");
        for line in &g.samples {
            let _ = writeln!(o, "{line}");
        }
        let _ = writeln!(o, "```\n");
    }

    let _ = writeln!(o, "## Machine\n");
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| CPUs (nproc) | {} |", m.nproc);
    let _ = writeln!(o, "| CPU model | {} |", m.cpu_model);
    let _ = writeln!(o, "| memory | {:.1} GiB |", m.mem_total_gib);
    let _ = writeln!(o, "| kernel | {} |", m.kernel);
    let _ = writeln!(o, "| Kafka (pool and tools) | {} |", m.kafka_version);
    let _ = writeln!(o, "| date | {} |", m.date_utc);
    let _ = writeln!(
        o,
        "| gateway build | `{}` ({} profile, written {}); HEAD at the start of the run: {} |",
        m.gateway_bin, m.gateway_profile, m.gateway_bin_modified_utc, m.git_commit
    );
    let c = &r.contention;
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
        "| CPU pressure during the run (PSI some) | {} of {:.0} s |",
        c.cpu_pressure_pct
            .map_or_else(|| "n/a".into(), |p| format!("{p:.0}%")),
        c.wall_s
    );
    let _ = writeln!(o);
    let busy_load = c.load_before[0].max(c.load_after[0]) > m.nproc as f64 * 0.5;
    let busy_psi = c.cpu_pressure_pct.is_some_and(|p| p > 10.0);
    if busy_load || busy_psi {
        let _ = writeln!(
            o,
            "Note: the machine was busy (1-minute load {:.2} before and {:.2} after on {} CPUs; CPU pressure {}): other work shared the cores with the pool, the clients and the gateway, so absolute figures are low and noisy, and every extra hop waits for a CPU. The interleaved, paired comparison cancels drift, not that.\n",
            c.load_before[0],
            c.load_after[0],
            m.nproc,
            c.cpu_pressure_pct.map_or_else(|| "n/a".into(), |p| format!("{p:.0}% of the run")),
        );
    }

    let _ = writeln!(o, "## Method\n");
    let _ = writeln!(o, "- Pool: 3 Kafka brokers on loopback (`deploy/pool.sh`), fresh topic `{}` with {} partitions, RF {}; deleted afterwards unless `--keep-topic`.", r.topic, p.partitions, p.replication_factor);
    let _ = writeln!(o, "- Gateway: `sluice serve` started by the benchmark on free ports with `auth = \"none\"`, the same process for every gateway phase, stopped at the end.");
    let _ = writeln!(o, "- Clients: Kafka's `ProducerPerformance` and `ConsumerPerformance` ({}), the same arguments on both sides except `bootstrap.servers`: DIRECT names the pool, GATEWAY names sluice's bootstrap.", m.kafka_version);
    let _ = writeln!(o, "- Each of {} round(s): (a) max-rate produce of {} records × {} B (`--throughput -1`, acks={}, linger.ms={}, batch.size={}); (b) consume every record produced into the topic so far (both sides read the same records, from the start, each with a new group; the count is in the rounds table) — one run's worth would be read in well under a second from the page cache; (c) produce {} records at half that round's DIRECT max rate. Every phase runs on both sides back to back; the side that goes first alternates by round.",
        p.rounds, p.records, p.record_size, p.acks, p.linger_ms, p.batch_size, p.half_records);
    let _ = writeln!(o, "- Comparisons are paired within a round (gateway/direct ratio or gateway − direct difference), then the median over rounds is taken, so drift that hits a whole round cancels. A goal reads **met** when every round meets it, **missed** when none does, and **inconclusive** when the rounds disagree, i.e. the noise on this machine is larger than the margin.");
    let _ = writeln!(o, "- Consume throughput is compared on `fetch.MB.sec` (time after the group join); the whole-run figure, join included, is shown too.");
    let _ = writeln!(o, "- Latency is ProducerPerformance's send-to-ack time per record. Its percentiles are printed in whole milliseconds, so the added p99 has 1 ms resolution: a ≤ 0.5 ms target can only read as 0 (met) or ≥ 1 ms (missed).");
    let _ = writeln!(o, "- Gateway CPU: utime + stime from `/proc/<pid>/stat` (÷ {} ticks/s), sampled just before and after each gateway phase; DIRECT phases and pauses are excluded. Bytes proxied: payload only, records reported by the tools × record size, summed over the produce, consume and half-load phases (no keys, headers, batch or protocol overhead, nor metadata and group traffic). GB = 10^9 bytes.", r.gateway.clk_tck);
    let _ = writeln!(o, "- Memory: `VmRSS` once the ports were open (idle) and after the last phase, `VmHWM` for the peak, from `/proc/<pid>/status`.");
    let _ = writeln!(o, "- Everything (brokers, clients, gateway) shares the same {} CPUs, so gateway CPU also takes cycles from the brokers and clients.\n", m.nproc);

    let _ = writeln!(o, "## Rounds\n");
    let _ = writeln!(o, "| round | first | side | produce rec/s | MB/s | avg ms | p99 ms | consume fetch MB/s | MB/s (with join) | consumed records | half rate rec/s | half avg ms | half p99 ms | gateway CPU-s (produce / consume / half) | gateway phase wall s |");
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for rd in &r.rounds {
        for (name, side) in [("direct", &rd.direct), ("gateway", &rd.gateway)] {
            let (cpu, wall) = if name == "gateway" {
                let (c, w) = (&rd.gateway_cpu, &rd.gateway_wall);
                (
                    format!("{:.2} / {:.2} / {:.2}", c.produce_s, c.consume_s, c.half_s),
                    format!("{:.1} / {:.1} / {:.1}", w.produce_s, w.consume_s, w.half_s),
                )
            } else {
                (String::new(), String::new())
            };
            let _ = writeln!(
                o,
                "| {} | {} | {name} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {} | {} | {:.2} | {:.0} | {cpu} | {wall} |",
                rd.round, rd.first.name(), side.produce.records_per_sec, side.produce.mb_per_sec, side.produce.avg_latency_ms,
                side.produce.p99_ms, side.consume.fetch_mb_per_sec, side.consume.mb_per_sec, rd.consume_records, rd.half_rate,
                side.half.avg_latency_ms, side.half.p99_ms
            );
        }
    }
    let _ = writeln!(
        o,
        "\n## Reproduce\n\n```sh\ndeploy/pool.sh start\n{}\n```\n\nThis run was invoked as `{}`.",
        r.command, r.invocation
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn profiles_from_paths() {
        assert_eq!(profile_of(Path::new("target/release/sluice")), "release");
        assert_eq!(profile_of(Path::new("/x/target/debug/sluice")), "debug");
        assert_eq!(profile_of(Path::new("/usr/bin/sluice")), "unknown");
    }

    fn summary(produce_ratio: f64, added_mean: f64, added_p99: f64, cpu: f64) -> Summary {
        let none = || SideMedians {
            produce_records_per_sec: None,
            produce_mb_per_sec: None,
            produce_avg_ms: None,
            produce_p99_ms: None,
            consume_mb_per_sec: None,
            consume_fetch_mb_per_sec: None,
            half_avg_ms: None,
            half_p99_ms: None,
        };
        Summary {
            direct: none(),
            gateway: none(),
            produce_throughput_ratio: Some(produce_ratio),
            consume_throughput_ratio: None,
            consume_throughput_ratio_with_join: None,
            added_half_mean_ms: Some(added_mean),
            added_half_p99_ms: Some(added_p99),
            added_max_mean_ms: None,
            gateway_cpu_s: 0.0,
            gateway_phase_wall_s: 0.0,
            gateway_cpu_outside_phases_s: 0.0,
            gateway_payload_gb: 0.0,
            cpu_s_per_gb: None,
            cpu_s_per_gb_produce: Some(cpu),
            cpu_s_per_gb_consume: None,
            cpu_s_per_gb_half: None,
            rss_idle_kib: 0,
            rss_end_kib: 0,
            rss_peak_kib: 0,
            client_error_lines_direct: 0,
            client_error_lines_gateway: 0,
            per_round: PerRound::default(),
        }
    }

    #[test]
    fn targets_met_missed_inconclusive_and_unmeasured() {
        let mut s = summary(0.97, 0.31, 0.0, 2.5);
        s.per_round = PerRound {
            produce_ratio: vec![0.97, 0.98, 1.0],
            consume_ratio: vec![],
            added_half_mean_ms: vec![0.31, 0.4, 0.5],
            added_half_p99_ms: vec![0.0, -1.0, 1.0],
            cpu_s_per_gb: vec![],
            cpu_s_per_gb_produce: vec![2.5, 2.4, 2.6],
            cpu_s_per_gb_consume: vec![],
        };
        let t = targets(&s);
        let status = |goal: &str| {
            t.iter()
                .find(|c| c.goal.starts_with(goal))
                .map(|c| c.status)
        };
        assert_eq!(status("produce throughput"), Some("met"));
        assert_eq!(status("consume throughput"), Some("not measured"));
        assert_eq!(
            status("added produce latency at half load, mean"),
            Some("missed")
        );
        assert_eq!(
            status("added produce latency at half load, p99"),
            Some("inconclusive")
        );
        assert_eq!(
            status("gateway CPU per GB proxied, max-rate produce"),
            Some("missed")
        );
        assert_eq!(
            status("gateway CPU per GB proxied, consume"),
            Some("not measured")
        );
        assert_eq!(status("RSS per idle"), Some("not measured"));
        assert!(t[0].measured.contains("(rounds: 0.970, 0.980, 1.000)"));
        // Without per-round figures the median decides alone.
        let t = targets(&summary(0.5, 0.0, 0.0, 1.0));
        assert_eq!(t[0].status, "missed");
        assert_eq!(t[2].status, "met");
    }
}
