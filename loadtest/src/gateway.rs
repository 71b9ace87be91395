//! A `sluice` process started for one benchmark: free ports, a generated config
//! (`auth = "none"`), a log file, and a stop that also runs when the benchmark fails.
//! [`Gateway::spawn`] runs any proxy with the same port layout (the peer proxy).

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use crate::perf::tail;

/// Pool brokers the gateway may serve: node ids 1..=4 of `deploy/pool.sh`.
pub(crate) const BROKER_PORTS: u16 = 4;

/// A running gateway; dropping it stops the process (SIGTERM, SIGKILL after 10 s).
pub struct Gateway {
    /// The process, `None` once stopped.
    child: Option<Child>,
    /// Its OS pid, for `/proc` readings.
    pub pid: u32,
    /// Where clients bootstrap.
    pub bootstrap: String,
    /// Combined stdout and stderr of the gateway, scanned for errors afterwards.
    pub log_path: PathBuf,
}

impl Gateway {
    /// Writes a config into `work_dir`, starts `bin serve --config ...` and waits
    /// until the bootstrap port and the three base brokers' ports accept connections.
    ///
    /// Fails if no free port block is found, the binary does not start, or the
    /// ports are not open within `timeout` (the process is then killed and the
    /// error carries the log's tail).
    pub fn start(
        bin: &Path,
        pool_bootstrap: &[String],
        work_dir: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Self::start_with_config(bin, work_dir, timeout, |base| {
            config_text(base, pool_bootstrap)
        })
    }

    /// As [`Gateway::start`], with the config text made by `config` from the
    /// bootstrap port (`base`; pool broker N is `base + N`).
    pub fn start_with_config(
        bin: &Path,
        work_dir: &Path,
        timeout: Duration,
        config: impl FnOnce(u16) -> String,
    ) -> anyhow::Result<Self> {
        let base =
            free_port_block(BROKER_PORTS + 1).context("finding free ports for the gateway")?;
        let config_path = work_dir.join("sluice.toml");
        std::fs::write(&config_path, config(base))
            .with_context(|| format!("writing {}", config_path.display()))?;
        let mut command = Command::new(bin);
        command
            .args(["serve", "--config"])
            .arg(&config_path)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1");
        Self::spawn(command, base, &work_dir.join("sluice.log"), timeout)
    }

    /// Starts `command` (any proxy serving the pool's brokers on `base + node id`, its
    /// bootstrap on `base`) with its output in `log_path`, and waits until the
    /// bootstrap port and the three base brokers' ports accept connections.
    pub fn spawn(
        mut command: Command,
        base: u16,
        log_path: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let log =
            File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        let mut gateway = Gateway {
            pid: child.id(),
            child: Some(child),
            bootstrap: format!("127.0.0.1:{base}"),
            log_path: log_path.to_path_buf(),
        };
        // Bootstrap is `base`, pool broker N is `base + N`.
        for port in [base, base + 1, base + 2, base + 3] {
            if let Err(e) = gateway.wait_port(port, timeout) {
                let log = std::fs::read_to_string(&gateway.log_path).unwrap_or_default();
                gateway.stop();
                return Err(e.context(format!("proxy log tail:\n{}", tail(&log, 3000))));
            }
        }
        Ok(gateway)
    }

    fn wait_port(&mut self, port: u16, timeout: Duration) -> anyhow::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("polling the gateway")? {
                    bail!("gateway exited with {status} before opening port {port}");
                }
            }
            sleep(Duration::from_millis(100));
        }
        bail!("gateway did not open port {port} within {timeout:?}")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stops the gateway: SIGTERM for a graceful drain, SIGKILL after 10 s.
    /// Idempotent; failures are ignored (there is nothing left to do about them).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // std only offers SIGKILL; `kill -TERM` keeps this crate free of unsafe.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The generated gateway config (same shape as `deploy/examples/sluice-dev.toml`).
pub fn config_text(base: u16, pool_bootstrap: &[String]) -> String {
    let pool = pool_bootstrap
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "# Generated by loadtest proxy-bench.\n\
         [listener]\n\
         bind_host = \"127.0.0.1\"\n\
         advertised_host = \"127.0.0.1\"\n\
         bootstrap_port = {base}\n\
         broker_port_base = {base}\n\
         auth = \"none\"\n\n\
         [pool]\n\
         bootstrap = [{pool}]\n\n\
         [limits]\n\
         max_frame_bytes = 104857600\n"
    )
}

/// A port `base` such that `base..=base + width` can all be bound on 127.0.0.1.
/// Candidates are spread over 20000..28990: below Linux's ephemeral range
/// (32768..60999), so client sockets and their TIME-WAIT leftovers cannot hold them
/// (a connection-churning benchmark once left 53 000 of those and no free block
/// above 50000), and below the pool's 29091.. ports.
pub(crate) fn free_port_block(width: u16) -> anyhow::Result<u16> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for attempt in 0..200u32 {
        let slot = seed.wrapping_add(attempt.wrapping_mul(7919)) % 900;
        let base = 20_000 + (slot as u16) * 10;
        if (0..=width).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("no block of {} free ports in 20000..29000", width + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_ports_and_pool() {
        let text = config_text(51230, &["127.0.0.1:29091".into(), "127.0.0.1:29092".into()]);
        assert!(text.contains("bootstrap_port = 51230\n"));
        assert!(text.contains("broker_port_base = 51230\n"));
        assert!(text.contains("auth = \"none\"\n"));
        assert!(text.contains("bootstrap = [\"127.0.0.1:29091\", \"127.0.0.1:29092\"]\n"));
    }

    #[test]
    fn free_block_is_bindable() {
        let base = free_port_block(4).unwrap();
        assert!((20_000..29_000).contains(&base));
    }
}
