//! What a scenario run does, as data: the command-line flags ([`ScenarioArgs`]) and the
//! resolved plan ([`ScenarioSpec`]) of client groups that the Kafka driver
//! (`kafka_client`) executes. Pure: no I/O, so every scenario's shape is unit-tested.
//!
//! A scenario is one or more *groups* of clients. Each group has a role (its name in
//! the report: `produce`, `consume`, `victim`, `flood`, `connect`), a kind (producer,
//! consumer, or a connect-and-go loop), a client count, a tenant selection and an
//! optional total rate. Unset flags take the scenario's own default.

use clap::{Args, ValueEnum};
use serde::Serialize;

/// Why flags do not make a runnable scenario.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    #[error("{what} is {value}, above the bound {max}")]
    TooLarge {
        what: &'static str,
        value: f64,
        max: f64,
    },
    #[error("{scenario} needs at least {needed} tenants, --tenants is {given}")]
    TooFewTenants {
        scenario: &'static str,
        needed: u32,
        given: u32,
    },
    #[error("record size {0} is below the 8-byte send timestamp every record carries")]
    RecordTooSmall(u64),
}

/// Upper bounds that keep a run on a shared 2-core machine bounded.
pub const MAX_DURATION_S: f64 = 600.0;
pub const MAX_CLIENTS: u32 = 256;
pub const MAX_TENANTS: u32 = 64;
pub const MAX_PARTITIONS: u32 = 64;
pub const MAX_RECORD_SIZE: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Producers at --rate (0 = as fast as acks come back).
    Produce,
    /// Consumers re-reading a prefilled topic in a loop (no group: assigned partitions).
    Consume,
    /// Producers at --rate and consumers tailing the same topic: produce and
    /// end-to-end latency.
    Mixed,
    /// One producer per tenant, each on its own topic.
    ManyTenants,
    /// Many producer connections of one tenant at a low rate each.
    ManyConnections,
    /// Every producer on partition 0 at max rate.
    PartitionOverload,
    /// One tenant's producers at max rate over all partitions.
    TenantOverload,
    /// A victim tenant at a fixed rate beside a flooding tenant at max rate.
    NoisyNeighbor,
    /// Connect, produce one record, wait for its ack, disconnect; in a loop.
    ConnectionStorm,
    /// Connect, authenticate and fetch metadata, disconnect; in a loop.
    AuthStorm,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Produce => "produce",
            Scenario::Consume => "consume",
            Scenario::Mixed => "mixed",
            Scenario::ManyTenants => "many-tenants",
            Scenario::ManyConnections => "many-connections",
            Scenario::PartitionOverload => "partition-overload",
            Scenario::TenantOverload => "tenant-overload",
            Scenario::NoisyNeighbor => "noisy-neighbor",
            Scenario::ConnectionStorm => "connection-storm",
            Scenario::AuthStorm => "auth-storm",
        }
    }

    /// Whether the scenario reads a topic that must be filled before it runs.
    pub fn needs_prefill(self) -> bool {
        self == Scenario::Consume
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// librdkafka's `compression.type` value.
    pub fn librdkafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Acks {
    #[value(name = "0")]
    #[serde(rename = "0")]
    Zero,
    #[value(name = "1")]
    #[serde(rename = "1")]
    One,
    #[value(name = "all")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    /// librdkafka's `acks` value.
    pub fn librdkafka(self) -> &'static str {
        match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        }
    }
}

/// The scenario flags shared by every command that runs scenarios.
#[derive(Debug, Clone, Args)]
pub struct ScenarioArgs {
    /// Payload bytes per record (the first 8 carry the send time).
    #[arg(long, default_value_t = 1024)]
    pub record_size: u64,
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    /// Partitions of each benchmark topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: u32,
    /// Tenants [default: 1; many-tenants 8; noisy-neighbor 2].
    #[arg(long)]
    pub tenants: Option<u32>,
    /// Client connections of the main group [default: per scenario].
    #[arg(long)]
    pub connections: Option<u32>,
    /// Total records/s of the main group, 0 = as fast as it goes [default: per
    /// scenario]; for the storms, connections/s.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured seconds per target.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Most records (or storm cycles) per group and target; a run stops at whichever
    /// of --duration and this comes first. The default is a safety bound only: a
    /// consumer re-reading the page cache passes 5 million records in 20 s here, and a
    /// group that hits the bound is marked in the report.
    #[arg(long, default_value_t = 100_000_000)]
    pub max_records: u64,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,
    #[arg(long, default_value_t = 65_536)]
    pub batch_size: u32,
    /// Records/s of the noisy-neighbor victim.
    #[arg(long, default_value_t = 200.0)]
    pub victim_rate: f64,
}

/// What a group's clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Produce,
    /// Re-read the topic from the start, again and again (`consume`).
    ConsumeLoop,
    /// Read what arrives from the end on (`mixed`): end-to-end latency.
    ConsumeTail,
    /// New client, one record, its ack, close.
    ConnectProduce,
    /// New client, metadata (authentication through sluice), close.
    ConnectMetadata,
}

/// Which tenants a group's clients belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tenants {
    /// Client `i` belongs to tenant `i % tenants` and writes that tenant's topic.
    RoundRobin,
    /// Every client belongs to this tenant.
    One(u32),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientGroup {
    pub role: &'static str,
    pub kind: Kind,
    pub clients: u32,
    pub tenants: Tenants,
    /// Only this partition, else all of them.
    pub partition: Option<i32>,
    /// Total records/s (or cycles/s) of the group; `None` = as fast as it goes.
    pub rate: Option<f64>,
}

impl ClientGroup {
    /// The rate each client of the group keeps, `None` when unpaced.
    pub fn rate_per_client(&self) -> Option<f64> {
        self.rate.map(|r| r / f64::from(self.clients.max(1)))
    }

    /// The tenant of client `i`.
    pub fn tenant_of(&self, i: u32, tenants: u32) -> u32 {
        match self.tenants {
            Tenants::RoundRobin => i % tenants.max(1),
            Tenants::One(t) => t,
        }
    }
}

/// A resolved, validated scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioSpec {
    pub scenario: Scenario,
    pub record_size: u64,
    pub compression: Compression,
    pub acks: Acks,
    pub partitions: u32,
    /// Tenants (and so topics: one per tenant).
    pub tenants: u32,
    pub duration_s: f64,
    pub max_records: u64,
    pub linger_ms: u32,
    pub batch_size: u32,
    pub groups: Vec<ClientGroup>,
}

/// A rate flag: 0 means unpaced.
fn paced(rate: f64) -> Option<f64> {
    (rate > 0.0).then_some(rate)
}

impl ScenarioSpec {
    /// The plan for `scenario` with `a`'s flags, scenario defaults for unset ones.
    pub fn resolve(scenario: Scenario, a: &ScenarioArgs) -> Result<Self, SpecError> {
        use Scenario as S;
        let positive = |v: f64, what| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(SpecError::NotPositive(what))
            }
        };
        positive(a.duration, "--duration")?;
        positive(a.victim_rate, "--victim-rate")?;
        if a.duration > MAX_DURATION_S {
            return Err(SpecError::TooLarge {
                what: "--duration",
                value: a.duration,
                max: MAX_DURATION_S,
            });
        }
        if a.record_size < 8 {
            return Err(SpecError::RecordTooSmall(a.record_size));
        }
        for (what, value, max) in [
            (
                "--record-size",
                a.record_size as f64,
                MAX_RECORD_SIZE as f64,
            ),
            (
                "--partitions",
                f64::from(a.partitions),
                f64::from(MAX_PARTITIONS),
            ),
        ] {
            if value > max {
                return Err(SpecError::TooLarge { what, value, max });
            }
        }
        if a.partitions == 0 {
            return Err(SpecError::NotPositive("--partitions"));
        }
        if a.max_records == 0 {
            return Err(SpecError::NotPositive("--max-records"));
        }
        if a.batch_size == 0 {
            return Err(SpecError::NotPositive("--batch-size"));
        }
        if let Some(r) = a.rate {
            if !(r.is_finite() && r >= 0.0) {
                return Err(SpecError::NotPositive("--rate (or 0)"));
            }
        }
        let tenants = a.tenants.unwrap_or(match scenario {
            S::ManyTenants => 8,
            S::NoisyNeighbor => 2,
            _ => 1,
        });
        if tenants == 0 {
            return Err(SpecError::NotPositive("--tenants"));
        }
        if tenants > MAX_TENANTS {
            return Err(SpecError::TooLarge {
                what: "--tenants",
                value: f64::from(tenants),
                max: f64::from(MAX_TENANTS),
            });
        }
        if scenario == S::NoisyNeighbor && tenants < 2 {
            return Err(SpecError::TooFewTenants {
                scenario: scenario.name(),
                needed: 2,
                given: tenants,
            });
        }
        let conns = |default: u32| a.connections.unwrap_or(default);
        let rate = |default: f64| paced(a.rate.unwrap_or(default));
        let group = |role, kind, clients, tenants, rate| ClientGroup {
            role,
            kind,
            clients,
            tenants,
            partition: None,
            rate,
        };
        let groups = match scenario {
            S::Produce => vec![group(
                "produce",
                Kind::Produce,
                conns(1),
                Tenants::RoundRobin,
                rate(0.0),
            )],
            S::Consume => vec![group(
                "consume",
                Kind::ConsumeLoop,
                conns(1),
                Tenants::RoundRobin,
                None,
            )],
            S::Mixed => vec![
                group(
                    "produce",
                    Kind::Produce,
                    conns(1),
                    Tenants::RoundRobin,
                    rate(2000.0),
                ),
                group(
                    "consume",
                    Kind::ConsumeTail,
                    conns(1),
                    Tenants::RoundRobin,
                    None,
                ),
            ],
            S::ManyTenants => vec![group(
                "produce",
                Kind::Produce,
                conns(tenants),
                Tenants::RoundRobin,
                rate(4000.0),
            )],
            S::ManyConnections => vec![group(
                "produce",
                Kind::Produce,
                conns(32),
                Tenants::RoundRobin,
                rate(2000.0),
            )],
            S::PartitionOverload => vec![ClientGroup {
                partition: Some(0),
                ..group(
                    "produce",
                    Kind::Produce,
                    conns(4),
                    Tenants::One(0),
                    rate(0.0),
                )
            }],
            S::TenantOverload => vec![group(
                "produce",
                Kind::Produce,
                conns(4),
                Tenants::One(0),
                rate(0.0),
            )],
            S::NoisyNeighbor => vec![
                group(
                    "victim",
                    Kind::Produce,
                    1,
                    Tenants::One(0),
                    Some(a.victim_rate),
                ),
                group("flood", Kind::Produce, conns(3), Tenants::One(1), rate(0.0)),
            ],
            S::ConnectionStorm => vec![group(
                "connect",
                Kind::ConnectProduce,
                conns(4),
                Tenants::RoundRobin,
                rate(0.0),
            )],
            S::AuthStorm => vec![group(
                "connect",
                Kind::ConnectMetadata,
                conns(4),
                Tenants::RoundRobin,
                rate(0.0),
            )],
        };
        for g in &groups {
            if g.clients == 0 {
                return Err(SpecError::NotPositive("--connections"));
            }
            if g.clients > MAX_CLIENTS {
                return Err(SpecError::TooLarge {
                    what: "--connections",
                    value: f64::from(g.clients),
                    max: f64::from(MAX_CLIENTS),
                });
            }
        }
        Ok(ScenarioSpec {
            scenario,
            record_size: a.record_size,
            compression: a.compression,
            acks: a.acks,
            partitions: a.partitions,
            tenants,
            duration_s: a.duration,
            max_records: a.max_records,
            linger_ms: a.linger_ms,
            batch_size: a.batch_size,
            groups,
        })
    }

    /// One line for logs and the report.
    pub fn describe(&self) -> String {
        let groups = self
            .groups
            .iter()
            .map(|g| {
                format!(
                    "{} {}×{}{}{}",
                    g.role,
                    g.clients,
                    match g.kind {
                        Kind::Produce => "producer",
                        Kind::ConsumeLoop | Kind::ConsumeTail => "consumer",
                        Kind::ConnectProduce => "connect+produce",
                        Kind::ConnectMetadata => "connect+metadata",
                    },
                    g.rate
                        .map_or_else(|| " unpaced".to_string(), |r| format!(" at {r:.0}/s")),
                    g.partition
                        .map_or_else(String::new, |p| format!(" on partition {p}")),
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{}: {} B records, {} compression, acks={}, {} partitions, {} tenant(s); {groups}",
            self.scenario.name(),
            self.record_size,
            self.compression.librdkafka(),
            self.acks.librdkafka(),
            self.partitions,
            self.tenants,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ScenarioArgs,
    }

    fn args(extra: &[&str]) -> ScenarioArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(extra);
        T::try_parse_from(v).map(|t| t.a).unwrap()
    }

    #[test]
    fn defaults_per_scenario() {
        let a = args(&[]);
        let p = ScenarioSpec::resolve(Scenario::Produce, &a).unwrap();
        assert_eq!(p.tenants, 1);
        assert_eq!(p.groups.len(), 1);
        assert_eq!((p.groups[0].clients, p.groups[0].rate), (1, None));
        let m = ScenarioSpec::resolve(Scenario::Mixed, &a).unwrap();
        assert_eq!(m.groups[0].rate, Some(2000.0));
        assert_eq!(m.groups[1].kind, Kind::ConsumeTail);
        let t = ScenarioSpec::resolve(Scenario::ManyTenants, &a).unwrap();
        assert_eq!((t.tenants, t.groups[0].clients), (8, 8));
        assert_eq!(t.groups[0].tenant_of(9, t.tenants), 1);
        let n = ScenarioSpec::resolve(Scenario::NoisyNeighbor, &a).unwrap();
        assert_eq!(n.groups[0].tenants, Tenants::One(0));
        assert_eq!(n.groups[1].tenants, Tenants::One(1));
        assert_eq!(n.groups[0].rate, Some(200.0));
        assert_eq!(n.groups[1].rate, None);
        let o = ScenarioSpec::resolve(Scenario::PartitionOverload, &a).unwrap();
        assert_eq!(o.groups[0].partition, Some(0));
        let s = ScenarioSpec::resolve(Scenario::AuthStorm, &a).unwrap();
        assert_eq!(s.groups[0].kind, Kind::ConnectMetadata);
        assert!(ScenarioSpec::resolve(Scenario::Consume, &a)
            .unwrap()
            .scenario
            .needs_prefill());
    }

    #[test]
    fn flags_override_defaults() {
        let a = args(&[
            "--rate",
            "3000",
            "--connections",
            "6",
            "--compression",
            "zstd",
            "--acks",
            "1",
            "--tenants",
            "3",
        ]);
        let p = ScenarioSpec::resolve(Scenario::Produce, &a).unwrap();
        assert_eq!(p.groups[0].clients, 6);
        assert_eq!(p.groups[0].rate_per_client(), Some(500.0));
        assert_eq!(
            (p.compression.librdkafka(), p.acks.librdkafka()),
            ("zstd", "1")
        );
        assert_eq!(p.tenants, 3);
        // --rate 0 means unpaced even where the scenario paces by default.
        let m = ScenarioSpec::resolve(Scenario::Mixed, &args(&["--rate", "0"])).unwrap();
        assert_eq!(m.groups[0].rate, None);
        assert!(p.describe().contains("produce 6×producer at 3000/s"));
    }

    #[test]
    fn bad_flags_are_refused() {
        let bad = |extra: &[&str], s| ScenarioSpec::resolve(s, &args(extra)).unwrap_err();
        assert_eq!(
            bad(&["--duration", "0"], Scenario::Produce),
            SpecError::NotPositive("--duration")
        );
        assert!(matches!(
            bad(&["--duration", "601"], Scenario::Produce),
            SpecError::TooLarge { .. }
        ));
        assert_eq!(
            bad(&["--record-size", "4"], Scenario::Produce),
            SpecError::RecordTooSmall(4)
        );
        assert_eq!(
            bad(&["--partitions", "0"], Scenario::Produce),
            SpecError::NotPositive("--partitions")
        );
        assert_eq!(
            bad(&["--connections", "0"], Scenario::Produce),
            SpecError::NotPositive("--connections")
        );
        assert!(matches!(
            bad(&["--connections", "1000"], Scenario::Produce),
            SpecError::TooLarge { .. }
        ));
        assert!(matches!(
            bad(&["--tenants", "1"], Scenario::NoisyNeighbor),
            SpecError::TooFewTenants { needed: 2, .. }
        ));
        assert_eq!(
            bad(&["--rate=-1"], Scenario::Produce),
            SpecError::NotPositive("--rate (or 0)")
        );
        assert!(T::try_parse_from(["t", "--acks", "2"]).is_err());
        assert!(T::try_parse_from(["t", "--compression", "brotli"]).is_err());
    }
}
