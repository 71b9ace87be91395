//! Which topic configs a tenant may set (SPEC §7), checked on CreateTopics and
//! (Incremental)AlterConfigs before anything reaches the pool.
//!
//! The list is MSK Serverless's editable topic configs plus what Kafka Streams and Connect set on
//! their internal topics (so those frameworks work unchanged), each with its bounds. Replication
//! is the pool's: `min.insync.replicas` equal to the pool's value is dropped silently (Streams
//! and Connect set it), any other value is refused. Everything else is refused naming the config.

/// Where a config appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigContext {
    /// In a CreateTopics request.
    Create,
    /// In an AlterConfigs or IncrementalAlterConfigs request (a `None` value is a delete/reset).
    Alter,
}

/// What to do with an accepted config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigAction {
    /// Forward it to the pool.
    Keep,
    /// Remove it from the request silently: the pool forces this value anyway
    /// (`min.insync.replicas` equal to [`POOL_MIN_INSYNC_REPLICAS`]).
    Drop,
}

/// A refused config; its `Display` ("config X: reason") is the error message for the client
/// (POLICY_VIOLATION on CreateTopics, INVALID_CONFIG on alters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config {config}: {reason}")]
pub struct ConfigRejection {
    /// The config name as sent (cut to 128 characters).
    pub config: String,
    /// Why, naming the value or the allowed range.
    pub reason: String,
}

/// The pool's `min.insync.replicas` (SPEC §7: replication factor 3, min ISR 2).
pub const POOL_MIN_INSYNC_REPLICAS: &str = "2";
/// The largest `max.message.bytes` a tenant may set (8 MiB, the message size limit).
pub const MAX_MESSAGE_BYTES: i64 = 8 * 1024 * 1024;
/// Smallest `segment.bytes` (16 MiB): small segments multiply files and open handles.
pub const MIN_SEGMENT_BYTES: i64 = 16 * 1024 * 1024;
/// Largest `segment.bytes` (1 GiB, Kafka's default and an int's comfortable range).
pub const MAX_SEGMENT_BYTES: i64 = 1024 * 1024 * 1024;
/// Smallest `segment.ms` (1 hour): frequent rolls multiply segments.
pub const MIN_SEGMENT_MS: i64 = 3_600_000;

/// The configs a tenant may set, in the order the rejection message lists them.
pub const ALLOWED_CONFIGS: [&str; 16] = [
    "cleanup.policy",
    "compression.type",
    "max.message.bytes",
    "message.timestamp.type",
    "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "delete.retention.ms",
    "min.cleanable.dirty.ratio",
    "min.insync.replicas",
];

/// Checks one topic config `name` = `value` (`None`: a delete/reset on alter, or a null value on
/// create) in `ctx`.
///
/// Fails with a [`ConfigRejection`] naming the config when the name is not allowed, the value
/// does not parse (the value is quoted) or is out of bounds (the bound is named), when
/// `cleanup.policy` is set or reset on alter (it can only be set at creation; a reset would
/// change it too), and when `min.insync.replicas` is anything but the pool's value.
pub fn check_topic_config(
    name: &str,
    value: Option<&str>,
    ctx: ConfigContext,
) -> Result<ConfigAction, ConfigRejection> {
    let reject = |reason: String| ConfigRejection {
        config: cut(name),
        reason,
    };
    let known = ALLOWED_CONFIGS.contains(&name);
    if !known {
        return Err(reject(format!("not allowed; allowed: {}", allowed_list())));
    }
    if name == "cleanup.policy" && ctx == ConfigContext::Alter {
        return Err(reject(
            "can only be set when the topic is created".to_owned(),
        ));
    }
    if name == "min.insync.replicas" {
        return match value {
            None => Ok(ConfigAction::Drop),
            Some(v) if v.trim() == POOL_MIN_INSYNC_REPLICAS => Ok(ConfigAction::Drop),
            Some(v) => Err(reject(format!(
                "min.insync.replicas is fixed at {POOL_MIN_INSYNC_REPLICAS} by the service (got {:?})",
                cut(v)
            ))),
        };
    }
    let Some(value) = value else {
        return Ok(ConfigAction::Keep);
    };
    match name {
        "cleanup.policy" => check_cleanup_policy(value).map_err(reject)?,
        "compression.type" => one_of(
            value,
            &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
        )
        .map_err(reject)?,
        "message.timestamp.type" => {
            one_of(value, &["CreateTime", "LogAppendTime"]).map_err(reject)?
        }
        "max.message.bytes" => long_in(value, 0, MAX_MESSAGE_BYTES).map_err(reject)?,
        "message.timestamp.difference.max.ms"
        | "message.timestamp.before.max.ms"
        | "message.timestamp.after.max.ms"
        | "min.compaction.lag.ms"
        | "delete.retention.ms" => long_in(value, 0, i64::MAX).map_err(reject)?,
        "retention.bytes" | "retention.ms" => long_in(value, -1, i64::MAX).map_err(reject)?,
        "segment.bytes" => long_in(value, MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES).map_err(reject)?,
        "segment.ms" => long_in(value, MIN_SEGMENT_MS, i64::MAX).map_err(reject)?,
        "max.compaction.lag.ms" => long_in(value, 1, i64::MAX).map_err(reject)?,
        "min.cleanable.dirty.ratio" => ratio(value).map_err(reject)?,
        // Every allowed name has an arm above; a new one must get bounds before it is allowed.
        _ => return Err(reject(format!("not allowed; allowed: {}", allowed_list()))),
    }
    Ok(ConfigAction::Keep)
}

fn allowed_list() -> String {
    ALLOWED_CONFIGS.join(", ")
}

/// Client-supplied text echoed into messages is cut so a huge value cannot bloat a response.
fn cut(s: &str) -> String {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn check_cleanup_policy(value: &str) -> Result<(), String> {
    let mut seen = (false, false);
    for part in value.split(',').map(str::trim) {
        match part {
            "delete" if !seen.0 => seen.0 = true,
            "compact" if !seen.1 => seen.1 = true,
            _ => {
                return Err(format!(
                    "invalid value {:?}; use delete, compact or delete,compact",
                    cut(value)
                ))
            }
        }
    }
    Ok(())
}

fn one_of(value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "invalid value {:?}; allowed: {}",
            cut(value),
            allowed.join(", ")
        ))
    }
}

/// Kafka parses numeric configs after trimming whitespace; so does this.
fn long_in(value: &str, min: i64, max: i64) -> Result<(), String> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("invalid value {:?}; expected an integer", cut(value)))?;
    if n < min || n > max {
        return Err(match (min, max) {
            (-1, i64::MAX) => format!("value {n} is out of range; use -1 or a value >= 0"),
            (min, i64::MAX) => format!("value {n} is out of range; the minimum is {min}"),
            (min, max) => format!("value {n} is out of range {min}..={max}"),
        });
    }
    Ok(())
}

fn ratio(value: &str) -> Result<(), String> {
    let r: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("invalid value {:?}; expected a number", cut(value)))?;
    // `contains` is false for NaN, so "NaN" is refused here too.
    if !(0.0..=1.0).contains(&r) {
        return Err(format!("value {:?} is out of range 0.0..=1.0", cut(value)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConfigAction::{Drop, Keep};
    use ConfigContext::{Alter, Create};

    fn ok(name: &str, value: &str, ctx: ConfigContext) -> ConfigAction {
        check_topic_config(name, Some(value), ctx)
            .unwrap_or_else(|e| panic!("{name}={value} in {ctx:?}: {e}"))
    }

    fn rejected(name: &str, value: Option<&str>, ctx: ConfigContext) -> String {
        match check_topic_config(name, value, ctx) {
            Ok(a) => panic!("{name}={value:?} in {ctx:?} accepted as {a:?}"),
            Err(e) => {
                assert_eq!(e.config, name);
                let s = e.to_string();
                assert!(s.starts_with(&format!("config {name}: ")), "{s}");
                s
            }
        }
    }

    /// (name, accepted values, refused values) for every numeric or enumerated config, checked
    /// on both Create and Alter.
    #[test]
    fn bounds_of_every_config() {
        let table: &[(&str, &[&str], &[&str])] = &[
            (
                "compression.type",
                &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
                &["none", "ZSTD", "brotli", ""],
            ),
            (
                "max.message.bytes",
                &["0", "1048588", "8388608", " 8388608 "],
                &["-1", "8388609", "9999999999", "1e6", "x"],
            ),
            (
                "message.timestamp.type",
                &["CreateTime", "LogAppendTime"],
                &["createtime", "NoTime"],
            ),
            (
                "message.timestamp.difference.max.ms",
                &["0", "9223372036854775807"],
                &["-1", "9223372036854775808", "1.5"],
            ),
            (
                "message.timestamp.before.max.ms",
                &["0", "86400000"],
                &["-1", "abc"],
            ),
            (
                "message.timestamp.after.max.ms",
                &["0", "3600000"],
                &["-5", ""],
            ),
            (
                "retention.bytes",
                &["-1", "0", "268435456000"],
                &["-2", "1GB"],
            ),
            ("retention.ms", &["-1", "0", "604800000"], &["-2", "7d"]),
            (
                "segment.bytes",
                &["16777216", "1073741824", "104857600"],
                &["16777215", "1073741825", "1024", "-1"],
            ),
            (
                "segment.ms",
                &["3600000", "604800000"],
                &["3599999", "0", "-1"],
            ),
            ("min.compaction.lag.ms", &["0", "1000"], &["-1", "x"]),
            (
                "max.compaction.lag.ms",
                &["1", "9223372036854775807"],
                &["0", "-1"],
            ),
            ("delete.retention.ms", &["0", "86400000"], &["-1"]),
            (
                "min.cleanable.dirty.ratio",
                &["0", "0.0", "0.5", "1", "1.0"],
                &["1.01", "-0.1", "NaN", "inf", "half"],
            ),
        ];
        for (name, good, bad) in table {
            for ctx in [Create, Alter] {
                for v in *good {
                    assert_eq!(ok(name, v, ctx), Keep, "{name}={v}");
                }
                for v in *bad {
                    let msg = rejected(name, Some(v), ctx);
                    assert!(
                        msg.contains(v.trim()) || msg.contains("out of range"),
                        "{name}={v}: message does not name the value: {msg}"
                    );
                }
                // A null value (reset to the default) is fine for every one of them.
                assert_eq!(check_topic_config(name, None, ctx), Ok(Keep), "{name}");
            }
        }
        assert_eq!(
            rejected("max.message.bytes", Some("8388609"), Create),
            "config max.message.bytes: value 8388609 is out of range 0..=8388608"
        );
        assert_eq!(
            rejected("segment.ms", Some("10"), Create),
            "config segment.ms: value 10 is out of range; the minimum is 3600000"
        );
        assert_eq!(
            rejected("retention.ms", Some("-7"), Alter),
            "config retention.ms: value -7 is out of range; use -1 or a value >= 0"
        );
        assert_eq!(
            rejected("segment.bytes", Some("lots"), Create),
            "config segment.bytes: invalid value \"lots\"; expected an integer"
        );
    }

    #[test]
    fn cleanup_policy_only_at_creation() {
        for v in [
            "delete",
            "compact",
            "delete,compact",
            "compact,delete",
            "compact, delete",
        ] {
            assert_eq!(ok("cleanup.policy", v, Create), Keep, "{v}");
        }
        for v in ["", "both", "delete,delete", "compact,", "Compact"] {
            let msg = rejected("cleanup.policy", Some(v), Create);
            assert!(msg.contains(&format!("{v:?}")), "{msg}");
        }
        assert_eq!(check_topic_config("cleanup.policy", None, Create), Ok(Keep));
        assert_eq!(
            rejected("cleanup.policy", Some("compact"), Alter),
            "config cleanup.policy: can only be set when the topic is created"
        );
        // A reset on alter would change the policy too.
        rejected("cleanup.policy", None, Alter);
    }

    #[test]
    fn min_insync_replicas_is_the_pools() {
        for ctx in [Create, Alter] {
            assert_eq!(ok("min.insync.replicas", "2", ctx), Drop);
            assert_eq!(
                check_topic_config("min.insync.replicas", None, ctx),
                Ok(Drop)
            );
            for v in ["1", "3", "two"] {
                let msg = rejected("min.insync.replicas", Some(v), ctx);
                assert!(
                    msg.contains("min.insync.replicas is fixed at 2 by the service"),
                    "{msg}"
                );
                assert!(msg.contains(v), "{msg}");
            }
        }
    }

    #[test]
    fn everything_else_is_refused_by_name() {
        for name in [
            "unclean.leader.election.enable",
            "segment.index.bytes",
            "message.downconversion.enable",
            "remote.storage.enable",
            "follower.replication.throttled.replicas",
            "leader.replication.throttled.replicas",
            "preallocate",
            "Retention.ms",
            "",
        ] {
            for ctx in [Create, Alter] {
                for value in [Some("true"), None] {
                    let msg = rejected(name, value, ctx);
                    assert!(
                        msg.contains("not allowed; allowed: cleanup.policy, compression.type"),
                        "{msg}"
                    );
                }
            }
        }
        assert!(
            rejected("unclean.leader.election.enable", Some("true"), Create)
                .starts_with("config unclean.leader.election.enable: not allowed; allowed: ")
        );
        // Every listed config is accepted by name (with a null value).
        for name in ALLOWED_CONFIGS {
            assert!(check_topic_config(name, None, Create).is_ok(), "{name}");
        }
        // A huge name is cut in the message.
        let long = "x".repeat(1000);
        let e = check_topic_config(&long, Some("1"), Create).unwrap_err();
        assert!(e.config.len() < 200);
    }
}
