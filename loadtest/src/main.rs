//! `loadtest`: benchmarks of the sluice gateway against the real Kafka pool.
//!
//! `loadtest proxy-bench` compares Kafka's own perf tools run straight at the pool
//! and through a `sluice` it starts itself, and writes a JSON and a Markdown report
//! (see `bench` for the method, `report` for what is written).
//!
//! `loadtest auth-bench` measures SASL + JWT authentications per second, per gateway
//! CPU-second and their latency against a `sluice` with `listener.auth = "sasl"`
//! (see `auth_bench`).
//!
//! `loadtest quota-bench` measures how exactly tenants are held to their byte-rate
//! quotas under overload, how fast they converge, and whether a flooding tenant moves
//! another's produce latency (see `quota_bench`).
//!
//! `loadtest compare` runs load scenarios (produce, consume, mixed, many tenants and
//! connections, overloads, noisy neighbour, connection and auth storms; see
//! `scenario`) on a real Kafka client (librdkafka) against the pool directly, through
//! sluice and through a peer proxy (Kroxylicious), in one run, and writes
//! `scenarios.json`, `scenarios.md` and PNG plots (see `compare`). The committed
//! report is regenerated with:
//!
//! ```sh
//! cargo build --release -p sluice-gateway && cargo run --release -p loadtest -- compare \
//!   --scenario produce,consume,mixed,noisy-neighbor --rounds 3 --duration 20 \
//!   --out docs/benchmarks
//! ```
//!
//! The peer is fetched from Maven Central into `deploy/.cache` on first use (Maven and
//! Java 17 needed); `--targets direct` alone needs neither it nor a gateway.
#![forbid(unsafe_code)]

mod auth_bench;
mod bench;
mod compare;
mod compare_report;
mod gateway;
mod kafka_client;
mod latency;
mod peer;
mod perf;
mod plots;
mod pool;
mod procfs;
mod quota_bench;
mod rates;
mod report;
mod sasl;
mod scenario;
mod stats;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loadtest",
    about = "sluice benchmarks against the real Kafka pool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The variants are the subcommand names (`*-bench`), so they share the suffix.
#[allow(clippy::enum_variant_names)]
#[derive(Subcommand)]
enum Command {
    /// Direct-to-pool vs through-sluice throughput, latency, CPU and memory (SPEC 11).
    ProxyBench(ProxyBenchArgs),
    /// SASL + JWT authentications/s, per gateway CPU-second, and their p50/p99/p99.9
    /// latency, for OAUTHBEARER and PLAIN, new connection vs re-authentication.
    AuthBench(AuthBenchArgs),
    /// Quota accuracy under 2× overload (partition write, partition read, tenant
    /// write), time to converge, and the noisy-neighbour effect on produce p99 (SPEC 7).
    QuotaBench(QuotaBenchArgs),
    /// Load scenarios on librdkafka against the pool directly, through sluice and
    /// through a peer proxy (Kroxylicious) in one run: JSON, Markdown and PNG plots.
    Compare(CompareArgs),
}

#[derive(Args)]
struct CompareArgs {
    /// Scenarios to run, in order (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "produce")]
    scenario: Vec<scenario::Scenario>,
    /// Targets, in the order they run within a scenario; `direct` is the baseline of
    /// the ratios.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "direct,sluice,peer"
    )]
    targets: Vec<compare::Target>,
    #[command(flatten)]
    scenario_args: scenario::ScenarioArgs,
    /// Sluice's quotas for the benchmark tenants: lifted measures the proxy's cost.
    #[arg(long, value_enum, default_value_t = compare::Quotas::Lifted)]
    quotas: compare::Quotas,
    /// Seconds of direct produce that fill the consume scenario's topic first.
    #[arg(long, default_value_t = 8.0)]
    prefill: f64,
    /// Unmeasured seconds each scenario first runs directly (0 = none).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Runs per target and scenario, the targets' order rotating by round; the report
    /// shows each target's median round.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// The gateway binary to start (build it with `cargo build --release -p sluice-gateway`).
    #[arg(long, default_value = "target/release/sluice")]
    gateway_bin: PathBuf,
    /// Where scenarios.json, scenarios.md and the PNGs go [default: docs/benchmarks, or
    /// a fresh temp directory with --smoke].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where configs and proxy logs are kept [default: a temp directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Where the peer proxy is downloaded and built (git-ignored).
    #[arg(long, default_value = "deploy/.cache")]
    cache_dir: PathBuf,
    /// A short CI run: 3 s per target, at most 20 000 records per group, output in a
    /// temp directory unless --out.
    #[arg(long)]
    smoke: bool,
    #[command(flatten)]
    pool: PoolArgs,
}

/// Where the pool is and what the gateway binary was built from: every command's.
#[derive(Args)]
struct PoolArgs {
    /// The pool's bootstrap brokers (the gateway's upstream).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093"
    )]
    pool_bootstrap: Vec<String>,
    /// The commit --gateway-bin was built from, when that is not this checkout
    /// (e.g. a clean `git archive` export while the checkout has uncommitted work).
    #[arg(long)]
    gateway_commit: Option<String>,
}

impl PoolArgs {
    /// The commit the gateway was built from, as the reports name it.
    fn commit(&self) -> String {
        match &self.gateway_commit {
            Some(c) => format!("{c} (gateway built from this commit, per --gateway-commit)"),
            None => report::git_commit(),
        }
    }
}

/// `--work-dir` if given, else a fresh temp directory.
fn work_dir(
    given: &Option<PathBuf>,
    temp: &std::path::Path,
    prefix: &str,
    run_id: &str,
) -> PathBuf {
    given
        .clone()
        .unwrap_or_else(|| temp.join(format!("{prefix}-work-{run_id}")))
}

#[derive(Args)]
struct QuotaBenchArgs {
    /// The gateway binary to start (build it with `cargo build --release -p sluice-gateway`).
    #[arg(long, default_value = "target/release/sluice")]
    gateway_bin: PathBuf,
    /// Where quotas.json and quotas.md go [default: docs/benchmarks, or a fresh temp
    /// directory with --smoke].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where tool outputs, the key, the gateway config and log are kept [default: a temp directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Partition read and write quota, KiB/s (lowered if the pool cannot carry
    /// --overload times it).
    #[arg(long, default_value_t = 512)]
    partition_quota_kib: u64,
    /// Tenant write quota, KiB/s, spread over --tenant-partitions partitions.
    #[arg(long, default_value_t = 1024)]
    tenant_quota_kib: u64,
    #[arg(long, default_value_t = 4)]
    tenant_partitions: i32,
    /// Offered rate / quota in the write phases.
    #[arg(long, default_value_t = 2.0)]
    overload: f64,
    /// Offered rate / partition quota of the flooding tenant.
    #[arg(long, default_value_t = 3.0)]
    flood_factor: f64,
    /// Seconds each accuracy phase runs at the quota, after --settle.
    #[arg(long, default_value_t = 20.0)]
    measure: f64,
    /// Seconds after the overload starts never counted as steady state.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// Sliding window for convergence, seconds.
    #[arg(long, default_value_t = 1.0)]
    window: f64,
    /// Pool sampling interval, ms.
    #[arg(long, default_value_t = 250)]
    sample_ms: u64,
    #[arg(long, default_value_t = 1024)]
    record_size: u64,
    /// Producer batch.size in the quota phases. Batches land whole, so a 1 s window's
    /// rate moves in steps of batch.size / quota: 16 KiB at 512 KiB/s is 3%, fine enough
    /// for a ±5% band (64 KiB would be 12.5%). A loaded pool takes less with small
    /// batches; the direct-capacity check then lowers the quotas.
    #[arg(long, default_value_t = 16_384)]
    batch_size: u32,
    #[arg(long, default_value_t = 10)]
    linger_ms: u32,
    /// Seconds of each direct-capacity run (estimated).
    #[arg(long, default_value_t = 8.0)]
    direct: f64,
    /// Victim records/s (of --record-size bytes).
    #[arg(long, default_value_t = 100)]
    victim_rate: u64,
    /// Seconds per victim run.
    #[arg(long, default_value_t = 15.0)]
    victim_secs: f64,
    /// Flood runs (alone runs come before, between and after them).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Upper bound in seconds for one tool run (a phase takes well under a minute).
    #[arg(long, default_value_t = 180)]
    tool_timeout: u64,
    /// About a minute and a half: 3 s phases, one flood round, output in a temp
    /// directory unless --out.
    #[arg(long)]
    smoke: bool,
    #[command(flatten)]
    pool: PoolArgs,
    /// deploy/kafka-tool.sh, which runs the Kafka CLI tools.
    #[arg(long, default_value = "deploy/kafka-tool.sh")]
    kafka_tool: PathBuf,
}

#[derive(Args)]
struct AuthBenchArgs {
    /// The gateway binary to start (build it with `cargo build --release -p sluice-gateway`).
    #[arg(long, default_value = "target/release/sluice")]
    gateway_bin: PathBuf,
    /// Where auth.json and auth.md go [default: docs/benchmarks, or a fresh temp
    /// directory with --smoke].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the key, JWKS, gateway config and log are kept [default: a temp directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Concurrent client counts; every mechanism × variant runs once per count
    /// (1 = latency without queueing behind other clients).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    clients: Vec<usize>,
    /// Measured seconds per phase (client count × mechanism × variant).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Unmeasured warm-up seconds before each phase.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Most authentications per phase, all clients together.
    #[arg(long, default_value_t = 200_000)]
    max_auths: u64,
    #[arg(long, value_delimiter = ',', default_value = "OAUTHBEARER,PLAIN")]
    mechanisms: Vec<String>,
    /// `connect` (new connection per authentication) and/or `reauth` (KIP-368
    /// re-authentication on one connection).
    #[arg(long, value_delimiter = ',', default_value = "reauth,connect")]
    variants: Vec<String>,
    /// Authenticated connections opened and held at the end to measure the gateway's
    /// memory per idle connection (SPEC 11: ≤ 64 KiB each with 10 000 held); 0 skips it.
    /// Each costs the gateway two file descriptors: the run raises its own limit (as
    /// root, the hard one too) and the gateway inherits it.
    #[arg(long, default_value_t = 10_000)]
    idle_connections: usize,
    /// criterion's output directory, for the `verify` bench table.
    #[arg(long, default_value = "target/criterion")]
    criterion_dir: PathBuf,
    /// About a second in all: 0.2 s per phase, no warm-up, 2 clients, output in a
    /// temp directory unless --out.
    #[arg(long)]
    smoke: bool,
    /// The pool's bootstrap brokers (the gateway's upstream).
    #[command(flatten)]
    pool: PoolArgs,
}

#[derive(Args)]
struct ProxyBenchArgs {
    /// The gateway binary to start (build it with `cargo build --release -p sluice-gateway`).
    #[arg(long, default_value = "target/release/sluice")]
    gateway_bin: PathBuf,
    /// Where proxy-core.json and proxy-core.md go [default: docs/benchmarks, or a
    /// fresh temp directory with --smoke].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where tool outputs, the gateway config and its log are kept [default: a temp directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Records per max-rate produce run and per consume run. The default lasts about
    /// 15 s per produce run on the 2-core dev machine with the pool on it (~3.5 MB/s).
    #[arg(long, default_value_t = 60_000)]
    records: u64,
    /// Records per half-load produce run [default: records / 2, which lasts as long as a max-rate run].
    #[arg(long)]
    half_records: Option<u64>,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 1024)]
    record_size: u64,
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    #[arg(long, default_value_t = 3)]
    replication_factor: u32,
    /// Interleaved rounds (each runs every phase on both sides).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    #[arg(long, default_value = "all")]
    acks: String,
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    #[arg(long, default_value_t = 16_384)]
    batch_size: u32,
    /// Upper bound in seconds for one tool run.
    #[arg(long, default_value_t = 600)]
    tool_timeout: u64,
    /// Tiny run for CI: 20 000 records, 1 round, outputs in a temp directory unless --out.
    #[arg(long)]
    smoke: bool,
    /// The pool's bootstrap brokers.
    #[command(flatten)]
    pool: PoolArgs,
    /// deploy/kafka-tool.sh, which runs the Kafka CLI tools.
    #[arg(long, default_value = "deploy/kafka-tool.sh")]
    kafka_tool: PathBuf,
    /// Leave the benchmark topic on the pool afterwards.
    #[arg(long)]
    keep_topic: bool,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::ProxyBench(args) => proxy_bench(args),
        Command::AuthBench(args) => auth_bench(args),
        Command::QuotaBench(args) => quota_bench(args),
        Command::Compare(args) => compare(args),
    }
}

fn compare(a: CompareArgs) -> anyhow::Result<()> {
    let mut sa = a.scenario_args.clone();
    let (mut prefill, mut warmup) = (a.prefill, a.warmup);
    if a.smoke {
        sa.duration = sa.duration.min(3.0);
        sa.max_records = sa.max_records.min(20_000);
        prefill = prefill.min(2.0);
        warmup = warmup.min(1.0);
    }
    let prefill_ok = prefill.is_finite() && prefill > 0.0 && prefill <= 120.0;
    let warmup_ok = warmup.is_finite() && (0.0..=120.0).contains(&warmup);
    if !(prefill_ok && warmup_ok) {
        bail!("--prefill must be in (0, 120] seconds, --warmup in [0, 120]");
    }
    if a.rounds == 0 || a.rounds > 9 {
        bail!("--rounds is 1 to 9");
    }
    if a.scenario.is_empty() || a.targets.is_empty() {
        bail!("--scenario and --targets must name at least one");
    }
    let scenarios = a
        .scenario
        .iter()
        .map(|s| scenario::ScenarioSpec::resolve(*s, &sa))
        .collect::<Result<Vec<_>, _>>()?;
    if a.targets.contains(&compare::Target::Sluice) {
        require_gateway(&a.gateway_bin)?;
    }
    let (run_id, temp) = run_id_and_temp();
    let out_dir = out_dir(&a.out, a.smoke, "loadtest-compare", &run_id);
    let params = compare::Params {
        scenarios,
        targets: a.targets.clone(),
        quotas: a.quotas,
        prefill_s: prefill,
        warmup_s: warmup,
        rounds: if a.smoke { 1 } else { a.rounds },
        smoke: a.smoke,
    };
    let setup = compare::Setup {
        gateway_bin: a.gateway_bin.clone(),
        pool_bootstrap: a.pool.pool_bootstrap.clone(),
        out_dir,
        work_dir: work_dir(&a.work_dir, &temp, "loadtest-compare", &run_id),
        cache_dir: a.cache_dir.clone(),
        command: reproduce_command(std::env::args().skip(1)),
        invocation: invocation(),
        git_commit: a.pool.commit(),
    };
    for path in compare::run(&params, &setup).context("compare failed")? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn quota_bench(a: QuotaBenchArgs) -> anyhow::Result<()> {
    let mut params = quota_bench::Params {
        record_size: a.record_size,
        partition_quota: a.partition_quota_kib * 1024,
        tenant_quota: a.tenant_quota_kib * 1024,
        tenant_partitions: a.tenant_partitions,
        overload: a.overload,
        flood_factor: a.flood_factor,
        measure_s: a.measure,
        settle_s: a.settle,
        window_s: a.window,
        sample_ms: a.sample_ms,
        batch_size: a.batch_size,
        linger_ms: a.linger_ms,
        direct_s: a.direct,
        victim_rate: a.victim_rate,
        victim_s: a.victim_secs,
        rounds: a.rounds,
        tool_timeout_s: a.tool_timeout,
        smoke: a.smoke,
    };
    if a.smoke {
        params.measure_s = 3.0;
        params.settle_s = 2.0;
        params.direct_s = 2.0;
        params.victim_rate = 50;
        params.victim_s = 3.0;
        params.rounds = 1;
        params.tool_timeout_s = params.tool_timeout_s.min(120);
    }
    let p = &params;
    let finite_pos = |v: f64| v.is_finite() && v > 0.0;
    if p.record_size == 0
        || p.partition_quota == 0
        || p.tenant_quota == 0
        || p.tenant_partitions < 1
        || p.batch_size == 0
        || p.sample_ms == 0
        || p.victim_rate == 0
        || p.rounds == 0
        || ![
            p.overload,
            p.flood_factor,
            p.measure_s,
            p.window_s,
            p.direct_s,
            p.victim_s,
        ]
        .into_iter()
        .all(finite_pos)
        || !(p.settle_s.is_finite() && p.settle_s >= 0.0)
    {
        bail!(
            "sizes, quotas, rates, counts and durations must be positive (--settle not negative)"
        );
    }
    if p.overload <= 1.0 || p.flood_factor <= 1.0 {
        bail!("--overload and --flood-factor must exceed 1 (they are overloads)");
    }
    require_gateway(&a.gateway_bin)?;
    let (run_id, temp) = run_id_and_temp();
    let out_dir = out_dir(&a.out, a.smoke, "loadtest-quota", &run_id);
    let setup = quota_bench::Setup {
        gateway_bin: a.gateway_bin.clone(),
        kafka_tool: a.kafka_tool.clone(),
        pool_bootstrap: a.pool.pool_bootstrap.clone(),
        out_dir,
        work_dir: work_dir(&a.work_dir, &temp, "loadtest-quota", &run_id),
        command: reproduce_command(std::env::args().skip(1)),
        invocation: invocation(),
        git_commit: a.pool.commit(),
    };
    let (json, md) = quota_bench::run(&params, &setup).context("quota-bench failed")?;
    println!("wrote {}\nwrote {}", json.display(), md.display());
    Ok(())
}

fn auth_bench(a: AuthBenchArgs) -> anyhow::Result<()> {
    let (clients, duration, warmup) = if a.smoke {
        (vec![2], 0.2, 0.0)
    } else {
        (a.clients.clone(), a.duration, a.warmup)
    };
    if clients.is_empty()
        || clients.contains(&0)
        || clients.len() > 8
        || duration.is_nan()
        || duration <= 0.0
        || warmup.is_nan()
        || warmup < 0.0
        || a.max_auths == 0
    {
        bail!("--clients (1 to 8 counts), --duration and --max-auths must be positive, --warmup not negative");
    }
    if duration > 600.0 || warmup > 600.0 {
        bail!("--duration and --warmup are at most 600 s");
    }
    require_gateway(&a.gateway_bin)?;
    let (run_id, temp) = run_id_and_temp();
    let out_dir = out_dir(&a.out, a.smoke, "loadtest-auth", &run_id);
    let params = auth_bench::Params {
        clients,
        duration_s: duration,
        warmup_s: warmup,
        max_auths: a.max_auths,
        mechanisms: a
            .mechanisms
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect(),
        variants: a.variants.iter().map(|v| v.to_ascii_lowercase()).collect(),
        idle_connections: if a.smoke { a.idle_connections.min(200) } else { a.idle_connections },
        smoke: a.smoke,
    };
    if params.idle_connections > 100_000 {
        bail!("--idle-connections is at most 100000");
    }
    let setup = auth_bench::Setup {
        gateway_bin: a.gateway_bin.clone(),
        pool_bootstrap: a.pool.pool_bootstrap.clone(),
        out_dir,
        work_dir: work_dir(&a.work_dir, &temp, "loadtest-auth", &run_id),
        criterion_dir: a.criterion_dir.clone(),
        command: reproduce_command(std::env::args().skip(1)),
        invocation: invocation(),
        git_commit: a
            .pool
            .gateway_commit
            .as_ref()
            .map(|c| format!("{c} (gateway built from this commit, per --gateway-commit)")),
    };
    let (json, md) = auth_bench::run(&params, &setup).context("auth-bench failed")?;
    println!("wrote {}\nwrote {}", json.display(), md.display());
    Ok(())
}

fn proxy_bench(a: ProxyBenchArgs) -> anyhow::Result<()> {
    let (records, rounds) = if a.smoke {
        (20_000, 1)
    } else {
        (a.records, a.rounds)
    };
    let half_records = if a.smoke {
        records / 2
    } else {
        a.half_records.unwrap_or(records / 2)
    };
    if records == 0 || half_records == 0 || rounds == 0 || a.record_size == 0 {
        bail!("--records, --half-records, --rounds and --record-size must be positive");
    }
    require_gateway(&a.gateway_bin)?;
    let (run_id, temp) = run_id_and_temp();
    let out_dir = out_dir(&a.out, a.smoke, "loadtest", &run_id);
    let work_dir = work_dir(&a.work_dir, &temp, "loadtest", &run_id);
    let params = bench::Params {
        records,
        half_records,
        record_size: a.record_size,
        partitions: a.partitions,
        replication_factor: a.replication_factor,
        rounds,
        acks: a.acks.clone(),
        linger_ms: a.linger_ms,
        batch_size: a.batch_size,
        tool_timeout_s: a.tool_timeout,
        smoke: a.smoke,
    };
    let setup = bench::Setup {
        gateway_bin: a.gateway_bin.clone(),
        kafka_tool: a.kafka_tool.clone(),
        pool_bootstrap: a.pool.pool_bootstrap.clone(),
        out_dir,
        work_dir,
        keep_topic: a.keep_topic,
        invocation: invocation(),
        command: reproduce_command(std::env::args().skip(1)),
        git_commit: a.pool.commit(),
    };
    let (json, md) = bench::run(&params, &setup).context("proxy-bench failed")?;
    println!("wrote {}\nwrote {}", json.display(), md.display());
    Ok(())
}

/// Fails unless the gateway binary exists, saying how to build it.
fn require_gateway(bin: &std::path::Path) -> anyhow::Result<()> {
    if !bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p sluice-gateway`",
            bin.display()
        );
    }
    Ok(())
}

/// A run id (pid and time) for temp directory names, and the temp directory.
fn run_id_and_temp() -> (String, PathBuf) {
    (
        format!("{}-{}", std::process::id(), unix_secs()),
        std::env::temp_dir(),
    )
}

/// `--out` if given, else a fresh temp directory for a smoke run, else docs/benchmarks.
fn out_dir(out: &Option<PathBuf>, smoke: bool, prefix: &str, run_id: &str) -> PathBuf {
    match (out, smoke) {
        (Some(dir), _) => dir.clone(),
        (None, true) => std::env::temp_dir().join(format!("{prefix}-smoke-{run_id}")),
        (None, false) => PathBuf::from("docs/benchmarks"),
    }
}

/// This process's command line, exactly.
fn invocation() -> String {
    std::env::args()
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a reader reruns this at the repo root: build the gateway, then the same
/// arguments with the gateway taken from that build (`--gateway-bin` and
/// `--gateway-commit` are replaced).
fn reproduce_command(args: impl Iterator<Item = String>) -> String {
    let mut kept = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if arg == "--gateway-bin" || arg == "--gateway-commit" {
            skip_value = true;
            continue;
        }
        if arg.starts_with("--gateway-bin=") || arg.starts_with("--gateway-commit=") {
            continue;
        }
        kept.push(shell_quote(&arg));
    }
    kept.push("--gateway-bin target/release/sluice".into());
    format!(
        "cargo build --release -p sluice-gateway && cargo run --release -p loadtest -- {}",
        kept.join(" ")
    )
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--out"), "--out");
        assert_eq!(shell_quote("docs/benchmarks"), "docs/benchmarks");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn reproduce_replaces_the_gateway_binary() {
        let args = [
            "proxy-bench",
            "--gateway-bin",
            "/tmp/x/sluice",
            "--gateway-commit=abc",
            "--out",
            "docs/benchmarks",
        ];
        assert_eq!(
            reproduce_command(args.iter().map(|s| s.to_string())),
            "cargo build --release -p sluice-gateway && cargo run --release -p loadtest -- \
             proxy-bench --out docs/benchmarks --gateway-bin target/release/sluice"
        );
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["loadtest", "proxy-bench", "--smoke", "--records", "10"]).unwrap();
        let Command::ProxyBench(a) = cli.command else {
            panic!("proxy-bench expected");
        };
        assert!(a.smoke);
        assert_eq!(a.records, 10);
        assert_eq!(a.pool.pool_bootstrap.len(), 3);
        let cli =
            Cli::try_parse_from(["loadtest", "auth-bench", "--smoke", "--variants", "reauth"])
                .unwrap();
        let Command::AuthBench(a) = cli.command else {
            panic!("auth-bench expected");
        };
        assert!(a.smoke);
        assert_eq!(a.variants, ["reauth"]);
        assert_eq!(a.mechanisms, ["OAUTHBEARER", "PLAIN"]);
        let cli = Cli::try_parse_from([
            "loadtest",
            "quota-bench",
            "--smoke",
            "--partition-quota-kib",
            "256",
        ])
        .unwrap();
        let Command::QuotaBench(a) = cli.command else {
            panic!("quota-bench expected");
        };
        assert!(a.smoke);
        assert_eq!((a.partition_quota_kib, a.tenant_quota_kib), (256, 1024));
        assert_eq!((a.overload, a.flood_factor), (2.0, 3.0));
        let cli = Cli::try_parse_from([
            "loadtest",
            "compare",
            "--scenario",
            "produce,noisy-neighbor",
            "--targets",
            "direct,peer",
            "--rate",
            "500",
            "--compression",
            "lz4",
        ])
        .unwrap();
        let Command::Compare(a) = cli.command else {
            panic!("compare expected");
        };
        assert_eq!(
            a.scenario,
            [
                scenario::Scenario::Produce,
                scenario::Scenario::NoisyNeighbor
            ]
        );
        assert_eq!(a.targets, [compare::Target::Direct, compare::Target::Peer]);
        assert_eq!(a.scenario_args.rate, Some(500.0));
        assert_eq!(a.quotas, compare::Quotas::Lifted);
        assert!(Cli::try_parse_from(["loadtest", "compare", "--scenario", "nope"]).is_err());
    }
}
