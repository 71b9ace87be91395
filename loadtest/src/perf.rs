//! Running Kafka's own CLI tools through `deploy/kafka-tool.sh` and parsing what
//! `ProducerPerformance` and `ConsumerPerformance` print.
//!
//! The parsers are pure functions over the tools' text output so they can be tested
//! without a JVM; [`KafkaTool`] is the thin part that starts the JVM, keeps each run's
//! stdout and stderr in a work directory (kept as evidence) and enforces a timeout.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

/// Why a tool's output could not be turned into numbers.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    /// The output has no line of the expected shape (the tool failed early).
    #[error("no {0} summary line in the tool output")]
    NoSummary(&'static str),
    /// A summary line was found but a field is missing or not a number.
    #[error("field `{field}` missing or not a number in: {line}")]
    BadField { field: &'static str, line: String },
}

/// The final line of a `ProducerPerformance` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProduceResult {
    pub records: u64,
    pub records_per_sec: f64,
    /// The tool's MB/s: payload bytes / 2^20 per second.
    pub mb_per_sec: f64,
    pub avg_latency_ms: f64,
    pub max_latency_ms: f64,
    /// Percentiles are whole milliseconds in the tool's output.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Lines on stderr naming an exception (failed sends are logged there).
    pub error_lines: usize,
    /// The summary line as printed, for the record.
    pub raw: String,
}

/// The data line of a `ConsumerPerformance` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumeResult {
    pub records: u64,
    /// Payload MB (2^20 bytes) consumed.
    pub mb: f64,
    /// MB/s over the whole run, group join included.
    pub mb_per_sec: f64,
    pub records_per_sec: f64,
    /// Time spent joining the group before the first fetch.
    pub rebalance_ms: f64,
    /// Time spent fetching, group join excluded.
    pub fetch_ms: f64,
    /// MB/s over `fetch_ms` only: the data path without the group join.
    pub fetch_mb_per_sec: f64,
    pub error_lines: usize,
    pub raw: String,
}

/// The number directly before `suffix` in `line` (`"12.5 ms avg"` with `" ms avg"`
/// gives 12.5), tolerating an opening parenthesis before it.
fn number_before(line: &str, suffix: &str, field: &'static str) -> Result<f64, ParseError> {
    let bad = || ParseError::BadField {
        field,
        line: line.to_string(),
    };
    let end = line.find(suffix).ok_or_else(bad)?;
    let token = line[..end].rsplit([' ', ',', '(']).next().ok_or_else(bad)?;
    token.parse::<f64>().map_err(|_| bad())
}

/// Parses `ProducerPerformance` stdout: the last line carrying percentiles is the
/// whole-run summary (interval lines before it have no percentiles).
pub fn parse_producer(stdout: &str, stderr: &str) -> Result<ProduceResult, ParseError> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" records sent,") && l.contains(" ms 99th"))
        .ok_or(ParseError::NoSummary("ProducerPerformance"))?
        .trim();
    let records = number_before(line, " records sent", "records")?;
    Ok(ProduceResult {
        records: records as u64,
        records_per_sec: number_before(line, " records/sec", "records/sec")?,
        mb_per_sec: number_before(line, " MB/sec)", "MB/sec")?,
        avg_latency_ms: number_before(line, " ms avg latency", "avg latency")?,
        max_latency_ms: number_before(line, " ms max latency", "max latency")?,
        p50_ms: number_before(line, " ms 50th", "50th")?,
        p95_ms: number_before(line, " ms 95th", "95th")?,
        p99_ms: number_before(line, " ms 99th", "99th")?,
        p999_ms: number_before(line, " ms 99.9th", "99.9th")?,
        error_lines: count_error_lines(stderr),
        raw: line.to_string(),
    })
}

/// Parses `ConsumerPerformance` stdout: the header line
/// `start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
/// nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec`
/// followed by one comma-separated data line.
pub fn parse_consumer(stdout: &str, stderr: &str) -> Result<ConsumeResult, ParseError> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("start.time"));
    lines
        .next()
        .ok_or(ParseError::NoSummary("ConsumerPerformance"))?;
    let line = lines
        .find(|l| !l.trim().is_empty())
        .ok_or(ParseError::NoSummary("ConsumerPerformance"))?
        .trim();
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let field = |i: usize, name: &'static str| -> Result<f64, ParseError> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| ParseError::BadField {
                field: name,
                line: line.to_string(),
            })
    };
    Ok(ConsumeResult {
        mb: field(2, "data.consumed.in.MB")?,
        mb_per_sec: field(3, "MB.sec")?,
        records: field(4, "data.consumed.in.nMsg")? as u64,
        records_per_sec: field(5, "nMsg.sec")?,
        rebalance_ms: field(6, "rebalance.time.ms")?,
        fetch_ms: field(7, "fetch.time.ms")?,
        fetch_mb_per_sec: field(8, "fetch.MB.sec")?,
        error_lines: count_error_lines(stderr),
        raw: line.to_string(),
    })
}

/// Lines of a tool's stderr that report an exception or an error-level log.
pub fn count_error_lines(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("Exception") || l.contains(" ERROR ") || l.starts_with("ERROR"))
        .count()
}

/// Runs tools through `deploy/kafka-tool.sh`, one numbered log pair per run.
pub struct KafkaTool {
    /// Path of `deploy/kafka-tool.sh`.
    script: PathBuf,
    /// Where each run's stdout and stderr are kept, for evidence after the run.
    work_dir: PathBuf,
    /// Numbers the log files in run order.
    runs: usize,
}

/// What a finished tool run printed.
pub struct ToolOutput {
    pub stdout: String,
    pub stderr: String,
}

impl KafkaTool {
    pub fn new(script: PathBuf, work_dir: PathBuf) -> Self {
        KafkaTool {
            script,
            work_dir,
            runs: 0,
        }
    }

    /// Runs `tool args...`, waiting at most `timeout`.
    ///
    /// Fails if the JVM cannot start, the run times out (it is killed), or the tool
    /// exits non-zero; the error carries the tail of its output.
    pub fn run(
        &mut self,
        label: &str,
        tool: &str,
        args: &[String],
        timeout: Duration,
    ) -> anyhow::Result<ToolOutput> {
        self.runs += 1;
        let base = self.work_dir.join(format!("{:02}-{label}", self.runs));
        let out_path = base.with_extension("out");
        let err_path = base.with_extension("err");
        let out =
            File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
        let err =
            File::create(&err_path).with_context(|| format!("creating {}", err_path.display()))?;
        let mut child = Command::new(&self.script)
            .arg(tool)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} {tool}", self.script.display()))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().context("waiting for a Kafka tool")? {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{tool} ({label}) timed out after {timeout:?}; output in {}",
                    base.display()
                );
            }
            sleep(Duration::from_millis(100));
        };
        let output = ToolOutput {
            stdout: read_lossy(&out_path)?,
            stderr: read_lossy(&err_path)?,
        };
        if !status.success() {
            bail!(
                "{tool} ({label}) exited with {status}:\n{}\n{}",
                tail(&output.stdout, 2000),
                tail(&output.stderr, 2000)
            );
        }
        Ok(output)
    }
}

fn read_lossy(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCER_OUT: &str = "\
18816 records sent, 3762.4 records/sec (3.67 MB/sec), 2202.6 ms avg latency, 4146.0 ms max latency.
20000 records sent, 3477.1 records/sec (3.40 MB/sec), 2333.64 ms avg latency, 4686.00 ms max latency, 2233 ms 50th, 4268 ms 95th, 4585 ms 99th, 4671 ms 99.9th.
";

    const CONSUMER_OUT: &str = "\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-29 22:35:43:445, 2026-11-29 22:35:44:785, 19.5313, 14.5756, 20000, 14925.3731, 633, 707, 27.6255, 28288.5431
";

    #[test]
    fn producer_summary_line() {
        let r = parse_producer(PRODUCER_OUT, "").unwrap();
        assert_eq!(r.records, 20000);
        assert_eq!(r.records_per_sec, 3477.1);
        assert_eq!(r.mb_per_sec, 3.40);
        assert_eq!(r.avg_latency_ms, 2333.64);
        assert_eq!(r.max_latency_ms, 4686.0);
        assert_eq!(
            (r.p50_ms, r.p95_ms, r.p99_ms, r.p999_ms),
            (2233.0, 4268.0, 4585.0, 4671.0)
        );
        assert_eq!(r.error_lines, 0);
        assert!(r.raw.starts_with("20000 records sent"));
    }

    #[test]
    fn producer_without_summary_is_an_error() {
        let interval_only = PRODUCER_OUT.lines().next().unwrap();
        assert_eq!(
            parse_producer(interval_only, ""),
            Err(ParseError::NoSummary("ProducerPerformance"))
        );
        let garbled = "20000 records sent, x records/sec (3.40 MB/sec), 1 ms avg latency, 2 ms max latency, 1 ms 50th, 1 ms 95th, 1 ms 99th, 1 ms 99.9th.";
        assert!(matches!(
            parse_producer(garbled, ""),
            Err(ParseError::BadField {
                field: "records/sec",
                ..
            })
        ));
    }

    #[test]
    fn producer_counts_stderr_exceptions() {
        let stderr = "org.apache.kafka.common.errors.TimeoutException: Expiring 12 record(s)\n\tat x\nWARN fine\n";
        assert_eq!(parse_producer(PRODUCER_OUT, stderr).unwrap().error_lines, 1);
    }

    #[test]
    fn consumer_data_line() {
        let r = parse_consumer(CONSUMER_OUT, "").unwrap();
        assert_eq!(r.records, 20000);
        assert_eq!(r.mb, 19.5313);
        assert_eq!(r.mb_per_sec, 14.5756);
        assert_eq!(r.records_per_sec, 14925.3731);
        assert_eq!(r.rebalance_ms, 633.0);
        assert_eq!(r.fetch_ms, 707.0);
        assert_eq!(r.fetch_mb_per_sec, 27.6255);
    }

    #[test]
    fn consumer_without_data_line_is_an_error() {
        let header_only = CONSUMER_OUT.lines().next().unwrap();
        assert_eq!(
            parse_consumer(header_only, ""),
            Err(ParseError::NoSummary("ConsumerPerformance"))
        );
        assert_eq!(
            parse_consumer("", ""),
            Err(ParseError::NoSummary("ConsumerPerformance"))
        );
        let short =
            "start.time, end.time\n2026-11-29 22:35:43:445, 2026-11-29 22:35:44:785, 19.5\n";
        assert!(matches!(
            parse_consumer(short, ""),
            Err(ParseError::BadField {
                field: "MB.sec",
                ..
            })
        ));
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 10), "ab");
        assert_eq!(tail("aé", 1), "");
    }
}
