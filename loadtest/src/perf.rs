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

/// A value from a tool's `--print-metrics` table (`group:name:{tags} : value`), or
/// `None` when the metric is not printed or not a number (NaN when never recorded
/// counts as not a number).
pub fn metric(stdout: &str, name: &str) -> Option<f64> {
    stdout.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix(name)?.strip_prefix(':')?;
        let value = rest.rsplit(" : ").next()?.trim().parse::<f64>().ok()?;
        value.is_finite().then_some(value)
    })
}

/// One progress line of `ConsumerPerformance --show-detailed-stats`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ConsumeProgress {
    /// Its wall-clock time (`yyyy-MM-dd HH:mm:ss:SSS`, in the JVM's zone) as seconds
    /// since the Unix epoch were that zone UTC; only differences are used.
    pub t: f64,
    /// Payload MB (2^20 bytes) consumed so far.
    pub mb: f64,
    /// Records consumed so far.
    pub records: u64,
    /// Milliseconds of this interval spent fetching (the group join excluded).
    pub fetch_ms: f64,
}

/// The progress lines of `ConsumerPerformance --show-detailed-stats` (the header
/// `time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, ...` then one
/// line per reporting interval). Lines that do not parse are skipped; no line at all
/// is an error.
pub fn parse_consumer_progress(stdout: &str) -> Result<Vec<ConsumeProgress>, ParseError> {
    let mut out = Vec::new();
    for line in stdout
        .lines()
        .skip_while(|l| !l.starts_with("time,"))
        .skip(1)
    {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (Some(t), Some(mb), Some(records), Some(fetch_ms)) = (
            fields.first().and_then(|f| parse_tool_time(f)),
            fields.get(2).and_then(|f| f.parse::<f64>().ok()),
            fields.get(4).and_then(|f| f.parse::<u64>().ok()),
            fields.get(7).and_then(|f| f.parse::<f64>().ok()),
        ) else {
            continue;
        };
        out.push(ConsumeProgress {
            t,
            mb,
            records,
            fetch_ms,
        });
    }
    if out.is_empty() {
        return Err(ParseError::NoSummary("ConsumerPerformance progress"));
    }
    Ok(out)
}

/// `2026-11-30 04:20:01:123` → seconds since the epoch (the zone is ignored).
fn parse_tool_time(s: &str) -> Option<f64> {
    let (date, time) = s.split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss, ms) = (t.next()??, t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (H. Hinnant), the inverse of report::utc_date.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64 + ms as f64 / 1000.0)
}

/// Lines of a tool's stderr that report an exception or an error-level log. A WARN
/// line naming an exception is the client retrying (a leader moved, say), not a
/// failure: failed sends are printed as bare exception lines or at ERROR.
pub fn count_error_lines(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| {
            (l.contains("Exception") && !l.contains(" WARN "))
                || l.contains(" ERROR ")
                || l.starts_with("ERROR")
        })
        .count()
}

/// WARN lines of a tool's stderr: retries and reconnects, worth reporting beside
/// latencies they inflate.
pub fn count_warn_lines(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains(" WARN ")).count()
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
        self.spawn(label, tool, args)?.wait(timeout)
    }

    /// Starts `tool args...` in the background; [`RunningTool::wait`] collects it.
    pub fn spawn(
        &mut self,
        label: &str,
        tool: &str,
        args: &[String],
    ) -> anyhow::Result<RunningTool> {
        self.runs += 1;
        let base = self.work_dir.join(format!("{:02}-{label}", self.runs));
        let out_path = base.with_extension("out");
        let err_path = base.with_extension("err");
        let out =
            File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
        let err =
            File::create(&err_path).with_context(|| format!("creating {}", err_path.display()))?;
        let child = Command::new(&self.script)
            .arg(tool)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} {tool}", self.script.display()))?;
        Ok(RunningTool {
            child,
            base,
            label: label.to_string(),
            tool: tool.to_string(),
            started: Instant::now(),
        })
    }
}

/// A tool run started by [`KafkaTool::spawn`]; dropping it unwaited kills it.
pub struct RunningTool {
    child: std::process::Child,
    /// Output paths without extension (`.out`, `.err`).
    base: PathBuf,
    label: String,
    tool: String,
    started: Instant,
}

impl RunningTool {
    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until it exits, at most `timeout` from its start (then it is killed).
    ///
    /// Fails on timeout or a non-zero exit, with the tail of its output.
    pub fn wait(mut self, timeout: Duration) -> anyhow::Result<ToolOutput> {
        let (tool, label, base) = (self.tool.clone(), self.label.clone(), self.base.clone());
        let status = loop {
            if let Some(status) = self.child.try_wait().context("waiting for a Kafka tool")? {
                break status;
            }
            if self.started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "{tool} ({label}) timed out after {timeout:?}; output in {}",
                    base.display()
                );
            }
            sleep(Duration::from_millis(100));
        };
        let output = ToolOutput {
            stdout: read_lossy(&base.with_extension("out"))?,
            stderr: read_lossy(&base.with_extension("err"))?,
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

impl Drop for RunningTool {
    fn drop(&mut self) {
        // kafka-tool.sh execs the JVM, so this is the JVM itself.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
        let retried = "[2026-11-30 04:45:52,816] WARN [Producer clientId=x] Received invalid metadata error in produce request on partition v-0 due to org.apache.kafka.common.errors.NotLeaderOrFollowerException: ...\n\
                       [2026-11-30 04:45:53,037] ERROR [Producer clientId=x] Uncaught error\n";
        assert_eq!(count_error_lines(retried), 1);
        assert_eq!(count_warn_lines(retried), 1);
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
    fn metrics_from_print_metrics() {
        let out = "producer-metrics:produce-throttle-time-avg:{client-id=x}      : 12.500\n\
                   producer-metrics:produce-throttle-time-max:{client-id=x}      : 40.000\n\
                   producer-metrics:record-error-total:{client-id=x}             : NaN\n";
        assert_eq!(
            metric(out, "producer-metrics:produce-throttle-time-avg"),
            Some(12.5)
        );
        assert_eq!(
            metric(out, "producer-metrics:produce-throttle-time-max"),
            Some(40.0)
        );
        assert_eq!(metric(out, "producer-metrics:record-error-total"), None);
        assert_eq!(metric(out, "producer-metrics:produce-throttle-time"), None);
    }

    #[test]
    fn consumer_progress_lines() {
        let out = "\
time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-30 04:20:01:000, 0, 0.5000, 0.5000, 512, 512.0000, 3000, 1000, 0.5000, 512.0000
2026-11-30 04:20:02:250, 0, 1.0000, 0.4000, 1024, 409.6000, 0, 1250, 0.4000, 409.6000
";
        let p = parse_consumer_progress(out).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].mb, p[0].records, p[0].fetch_ms), (0.5, 512, 1000.0));
        assert!((p[1].t - p[0].t - 1.25).abs() < 1e-9, "{p:?}");
        // 2026-11-30 04:20:01 UTC
        assert_eq!(p[0].t, 1_796_012_401.0);
        assert!(parse_consumer_progress("time, threadId\n").is_err());
        assert!(parse_consumer_progress(CONSUMER_OUT).is_err());
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 10), "ab");
        assert_eq!(tail("aé", 1), "");
    }
}
