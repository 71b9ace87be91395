//! What the benchmark reads from Linux `/proc`: a process's CPU time and memory, the
//! load average, and the machine's CPU model and memory size.
//!
//! Each reader is split into a pure parser (tested on sample text) and a one-line
//! file read.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Why a `/proc` file could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("unexpected format in {what}: {detail}")]
    Format { what: &'static str, detail: String },
}

fn read(path: impl AsRef<Path>) -> Result<String, ProcError> {
    let path = path.as_ref();
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// User and system CPU time of a process, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    pub utime: u64,
    pub stime: u64,
}

impl CpuTicks {
    pub fn total(self) -> u64 {
        self.utime + self.stime
    }
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// itself hold spaces or parentheses, so fields are counted from the last `)`:
/// after it come state (field 3) … utime (field 14) and stime (field 15).
pub fn parse_stat(text: &str) -> Result<CpuTicks, ProcError> {
    let bad = |detail: &str| ProcError::Format {
        what: "/proc/<pid>/stat",
        detail: detail.to_string(),
    };
    let rest = &text[text
        .rfind(')')
        .ok_or_else(|| bad("no ')' after the command name"))?
        + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize, name: &str| -> Result<u64, ProcError> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad(name))
    };
    Ok(CpuTicks {
        utime: num(11, "utime")?,
        stime: num(12, "stime")?,
    })
}

/// CPU ticks used so far by process `pid`.
pub fn cpu_ticks(pid: u32) -> Result<CpuTicks, ProcError> {
    parse_stat(&read(format!("/proc/{pid}/stat"))?)
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size over the process's life (`VmHWM`).
    pub hwm_kib: u64,
}

/// The value in kB of a `Key:   1234 kB` line.
fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Parses `/proc/<pid>/status` for `VmRSS` and `VmHWM`.
pub fn parse_status(text: &str) -> Result<Memory, ProcError> {
    let missing = |k: &str| ProcError::Format {
        what: "/proc/<pid>/status",
        detail: format!("no {k}"),
    };
    Ok(Memory {
        rss_kib: kb_field(text, "VmRSS").ok_or_else(|| missing("VmRSS"))?,
        hwm_kib: kb_field(text, "VmHWM").ok_or_else(|| missing("VmHWM"))?,
    })
}

/// How many file descriptors process `pid` has open.
pub fn open_fds(pid: u32) -> Result<usize, ProcError> {
    let path = format!("/proc/{pid}/fd");
    std::fs::read_dir(&path)
        .map(|entries| entries.count())
        .map_err(|source| ProcError::Read { path, source })
}

/// Current and peak resident memory of process `pid`.
pub fn memory(pid: u32) -> Result<Memory, ProcError> {
    parse_status(&read(format!("/proc/{pid}/status"))?)
}

/// Parses the 1, 5 and 15 minute load averages from `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], ProcError> {
    let bad = || ProcError::Format {
        what: "/proc/loadavg",
        detail: text.trim().to_string(),
    };
    let mut it = text
        .split_whitespace()
        .map(|f| f.parse::<f64>().map_err(|_| bad()));
    let mut next = || it.next().unwrap_or_else(|| Err(bad()));
    Ok([next()?, next()?, next()?])
}

/// The machine's load averages now.
pub fn loadavg() -> Result<[f64; 3], ProcError> {
    parse_loadavg(&read("/proc/loadavg")?)
}

/// The `total` of the `some` line of a pressure-stall file (`/proc/pressure/cpu`):
/// microseconds during which at least one runnable task waited for a CPU.
pub fn parse_psi_some_total(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with("some "))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// CPU pressure so far, or `None` where the kernel has no PSI.
pub fn cpu_pressure_us() -> Option<u64> {
    read("/proc/pressure/cpu")
        .ok()
        .and_then(|t| parse_psi_some_total(&t))
}

/// The first `model name` in `/proc/cpuinfo`.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The CPU model name, or "unknown" where `/proc/cpuinfo` does not say.
pub fn cpu_model() -> String {
    read("/proc/cpuinfo")
        .ok()
        .and_then(|t| parse_cpu_model(&t))
        .unwrap_or_else(|| "unknown".into())
}

/// Total memory in KiB from `/proc/meminfo`.
pub fn mem_total_kib() -> Result<u64, ProcError> {
    let text = read("/proc/meminfo")?;
    kb_field(&text, "MemTotal").ok_or_else(|| ProcError::Format {
        what: "/proc/meminfo",
        detail: "no MemTotal".into(),
    })
}

/// The machine a benchmark ran on, as every report describes it.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_gib: f64,
    pub kernel: String,
}

/// CPUs, CPU model, memory and kernel of this machine.
pub fn host() -> Result<Host, ProcError> {
    Ok(Host {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: cpu_model(),
        mem_total_gib: mem_total_kib()? as f64 / (1024.0 * 1024.0),
        kernel: read("/proc/sys/kernel/osrelease").map_or("unknown".into(), |s| s.trim().into()),
    })
}

/// Clock ticks per second for `/proc/<pid>/stat` times (`getconf CLK_TCK`), and
/// whether it was measured; Linux uses 100 on every common architecture, which is
/// the fallback when `getconf` is unavailable.
pub fn clock_ticks_per_sec() -> (u64, bool) {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .map_or((100, false), |t| (t, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_awkward_command_name() {
        let text =
            "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 3 0 100 \
                    123456 789 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(text).unwrap(),
            CpuTicks {
                utime: 1234,
                stime: 567
            }
        );
        assert_eq!(parse_stat(text).unwrap().total(), 1801);
        assert!(parse_stat("4242 (x) S 1").is_err());
        assert!(parse_stat("garbage").is_err());
    }

    #[test]
    fn status_memory_lines() {
        let text =
            "Name:\tsluice\nVmPeak:\t  200000 kB\nVmHWM:\t    9876 kB\nVmRSS:\t    8765 kB\n";
        assert_eq!(
            parse_status(text).unwrap(),
            Memory {
                rss_kib: 8765,
                hwm_kib: 9876
            }
        );
        assert!(parse_status("Name:\tsluice\n").is_err());
    }

    #[test]
    fn psi_some_total() {
        let text = "some avg10=11.33 avg60=48.87 avg300=62.94 total=2719045873\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_psi_some_total(text), Some(2_719_045_873));
        assert_eq!(parse_psi_some_total("full avg10=0.00 total=5\n"), None);
        assert_eq!(parse_psi_some_total("some avg10=1.0\n"), None);
    }

    #[test]
    fn loadavg_and_cpuinfo() {
        assert_eq!(
            parse_loadavg("6.68 5.82 2.70 3/200 1234\n").unwrap(),
            [6.68, 5.82, 2.70]
        );
        assert!(parse_loadavg("1.0 2.0").is_err());
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            parse_cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(parse_cpu_model("processor\t: 0\n"), None);
    }
}
