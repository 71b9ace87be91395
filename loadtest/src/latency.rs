//! Latency and volume bookkeeping of one client group in one run: an HDR histogram
//! over the whole run, one per second of the run (for percentiles over time), and
//! record, byte and error counts. Clients of a group share one [`RoleLog`] behind a
//! mutex (one short lock per record); groups and runs are merged with
//! [`merge_into`].

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, 1 µs to 10 minutes.
const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 600_000_000;
/// Per-second histograms need less precision (1%) than the run's (0.1%).
const RUN_SIGFIG: u8 = 3;
const SECOND_SIGFIG: u8 = 2;

fn histogram(sigfig: u8) -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (the unit tests build every kind).
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, sigfig).expect("constant histogram bounds")
}

/// One second of a run.
#[derive(Debug, Clone)]
pub struct Second {
    pub latency: Histogram<u64>,
    pub records: u64,
    pub bytes: u64,
}

/// What a group's clients record.
#[derive(Debug, Clone)]
pub struct RoleLog {
    pub total: Histogram<u64>,
    pub seconds: Vec<Second>,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    /// The first few distinct error messages, as evidence.
    pub error_samples: Vec<String>,
}

impl Default for RoleLog {
    fn default() -> Self {
        RoleLog {
            total: histogram(RUN_SIGFIG),
            seconds: Vec::new(),
            records: 0,
            bytes: 0,
            errors: 0,
            error_samples: Vec::new(),
        }
    }
}

impl RoleLog {
    fn second(&mut self, sec: usize) -> &mut Second {
        while self.seconds.len() <= sec {
            self.seconds.push(Second {
                latency: histogram(SECOND_SIGFIG),
                records: 0,
                bytes: 0,
            });
        }
        &mut self.seconds[sec]
    }

    /// A record (or a storm cycle) done `at_s` seconds into the run, after
    /// `latency_us`, carrying `bytes` of payload. `latency_us = None` counts volume only.
    pub fn record(&mut self, at_s: f64, latency_us: Option<u64>, bytes: u64) {
        let sec = at_s.max(0.0) as usize;
        self.records += 1;
        self.bytes += bytes;
        let s = self.second(sec);
        s.records += 1;
        s.bytes += bytes;
        if let Some(us) = latency_us {
            let us = us.clamp(LOWEST_US, HIGHEST_US);
            s.latency.saturating_record(us);
            self.total.saturating_record(us);
        }
    }

    pub fn error(&mut self, message: &str) {
        self.errors += 1;
        if self.error_samples.len() < 5 && !self.error_samples.iter().any(|m| m == message) {
            self.error_samples.push(message.to_string());
        }
    }
}

/// Adds `other` into `into`: histograms, second by second, counts and samples.
pub fn merge_into(into: &mut RoleLog, other: &RoleLog) {
    // Same bounds on both sides, so `add` cannot fail; saturate rather than lose the rest.
    let _ = into.total.add(&other.total);
    for (i, s) in other.seconds.iter().enumerate() {
        let d = into.second(i);
        let _ = d.latency.add(&s.latency);
        d.records += s.records;
        d.bytes += s.bytes;
    }
    into.records += other.records;
    into.bytes += other.bytes;
    into.errors += other.errors;
    for m in &other.error_samples {
        if into.error_samples.len() < 5 && !into.error_samples.contains(m) {
            into.error_samples.push(m.clone());
        }
    }
}

/// Percentiles of a histogram in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub fn percentiles(h: &Histogram<u64>) -> Option<Percentiles> {
    if h.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Some(Percentiles {
        count: h.len(),
        mean_ms: h.mean() / 1000.0,
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    })
}

/// One second of the timeline as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    /// End of the second, seconds into the run.
    pub t_s: f64,
    pub records: u64,
    pub bytes: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
}

pub fn timeline(log: &RoleLog) -> Vec<Interval> {
    log.seconds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = percentiles(&s.latency);
            Interval {
                t_s: (i + 1) as f64,
                records: s.records,
                bytes: s.bytes,
                p50_ms: p.map(|p| p.p50_ms),
                p99_ms: p.map(|p| p.p99_ms),
                p999_ms: p.map(|p| p.p999_ms),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_land_in_their_second() {
        let mut log = RoleLog::default();
        log.record(0.2, Some(1000), 100);
        log.record(0.9, Some(3000), 100);
        log.record(2.5, Some(2000), 50);
        log.record(2.6, None, 50);
        assert_eq!((log.records, log.bytes), (4, 300));
        assert_eq!(log.seconds.len(), 3);
        assert_eq!(log.seconds[1].records, 0);
        assert_eq!(log.total.len(), 3);
        let t = timeline(&log);
        assert_eq!((t[0].t_s, t[0].records, t[0].bytes), (1.0, 2, 200));
        assert_eq!(t[1].p99_ms, None);
        assert!((t[2].p50_ms.unwrap() - 2.0).abs() < 0.05);
    }

    #[test]
    fn merging_adds_histograms_and_seconds() {
        let mut a = RoleLog::default();
        let mut b = RoleLog::default();
        for _ in 0..99 {
            a.record(0.5, Some(1000), 10);
        }
        b.record(1.5, Some(50_000), 10);
        b.error("timed out");
        b.error("timed out");
        merge_into(&mut a, &b);
        assert_eq!((a.records, a.bytes, a.errors), (100, 1000, 2));
        assert_eq!(a.error_samples, ["timed out"]);
        assert_eq!(a.seconds.len(), 2);
        let p = percentiles(&a.total).unwrap();
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 1.0).abs() < 0.01, "{p:?}");
        assert!((p.max_ms - 50.0).abs() < 0.1, "{p:?}");
        // p99 of 99 × 1 ms and 1 × 50 ms is still 1 ms; p99.9 is the outlier.
        assert!((p.p99_ms - 1.0).abs() < 0.01, "{p:?}");
        assert!((p.p999_ms - 50.0).abs() < 0.1, "{p:?}");
        assert!(percentiles(&RoleLog::default().total).is_none());
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut log = RoleLog::default();
        log.record(0.0, Some(0), 1);
        log.record(0.0, Some(u64::MAX), 1);
        assert_eq!(log.total.len(), 2);
    }
}
