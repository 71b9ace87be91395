"""Shared fixtures: the real Kafka pool (deploy/pool.sh) and a sluice gateway in front of it.

The pool is shared across the whole run; the gateway is started once per session on
free ports. Set SLUICE_TEST_DIRECT=1 to point every client straight at the pool, which
is how a test is checked against plain Kafka before it is run through the gateway.
"""
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POOL_BOOTSTRAP = os.environ.get("SLUICE_POOL_BOOTSTRAP", "127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093")
SLUICE_BIN = Path(os.environ.get("SLUICE_BIN", ROOT / "target" / "debug" / "sluice"))
KAFKA_TOOL = ROOT / "deploy" / "kafka-tool.sh"
POOL_SH = ROOT / "deploy" / "pool.sh"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _free_port_block(width: int) -> int:
    """A base port such that base..base+width are all free.

    Chosen from 20000-28990: below the kernel's ephemeral range (32768+), where any
    client socket may take a port between our check and the gateway's later bind of a
    new broker's port, and below the pool's own ports (29090+)."""
    for _ in range(200):
        base = 20000 + (uuid.uuid4().int % 900) * 10
        if all(_port_free(base + i) for i in range(width + 1)):
            return base
    raise RuntimeError("no free port block")


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


class Gateway:
    """A running sluice process (or, with SLUICE_TEST_DIRECT=1, the pool itself)."""

    def __init__(self, bootstrap, proc=None, log_path=None, bootstrap_port=None, broker_port_base=None):
        self.bootstrap = bootstrap
        self.proc = proc
        self.log_path = log_path
        self.bootstrap_port = bootstrap_port
        self.broker_port_base = broker_port_base

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace") if self.log_path else ""

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None


def start_gateway(tmp_dir: Path, extra_config: str = "", auth: str = "none", pool_section: str = None) -> Gateway:
    """Starts sluice on free ports. `auth` is listener.auth ("none" or "sasl"); with
    "sasl", `extra_config` must carry the [auth] section (and its [[auth.issuers]]).
    `pool_section` replaces the [pool] section (e.g. a secured pool connection)."""
    if not SLUICE_BIN.exists():
        raise RuntimeError(f"{SLUICE_BIN} missing: run `cargo build -p sluice-gateway` first")
    base = _free_port_block(10)
    bootstrap_port = base
    broker_base = base  # broker N listens on base + N, bootstrap on base itself
    cfg = tmp_dir / f"sluice-{base}.toml"
    pool = ", ".join(f'"{a}"' for a in POOL_BOOTSTRAP.split(","))
    pool_section = pool_section or f"[pool]\nbootstrap = [{pool}]\n"
    cfg.write_text(
        f"""
[listener]
bind_host = "127.0.0.1"
advertised_host = "127.0.0.1"
bootstrap_port = {bootstrap_port}
broker_port_base = {broker_base}
auth = "{auth}"

{pool_section}
[limits]
max_frame_bytes = 104857600
{extra_config}
"""
    )
    log_path = tmp_dir / f"sluice-{base}.log"
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    proc = subprocess.Popen(
        [str(SLUICE_BIN), "serve", "--config", str(cfg)],
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    ports = [bootstrap_port] + [broker_base + n for n in (1, 2, 3)]
    if not all(_wait_port(p, 30) for p in ports):
        proc.kill()
        raise RuntimeError(f"gateway did not open {ports}:\n{log_path.read_text()[-3000:]}")
    return Gateway(f"127.0.0.1:{bootstrap_port}", proc, log_path, bootstrap_port, broker_base)


@pytest.fixture(scope="session")
def pool():
    """Ensures the shared 3-broker pool runs (idempotent) and returns its bootstrap."""
    subprocess.run([str(POOL_SH), "start"], check=True, cwd=ROOT)
    return POOL_BOOTSTRAP


@pytest.fixture(scope="session")
def gateway(pool, tmp_path_factory):
    if os.environ.get("SLUICE_TEST_DIRECT") == "1":
        yield Gateway(pool)
        return
    gw = start_gateway(tmp_path_factory.mktemp("gateway"))
    yield gw
    gw.proc.terminate()
    try:
        gw.proc.wait(10)
    except subprocess.TimeoutExpired:
        gw.proc.kill()
    # A gateway that panicked or died mid-run fails the session loudly.
    assert "panicked" not in gw.log(), gw.log()[-5000:]


@pytest.fixture
def topic_name(request):
    """A unique topic name per test so tests never share state."""
    safe = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40]
    return f"t-{safe}-{uuid.uuid4().hex[:8]}"


def kafka_tool(*args, timeout=120, check=True, input=None):
    """Runs a Kafka CLI tool from the cached Kafka distribution (deploy/kafka-tool.sh)."""
    res = subprocess.run(
        [str(KAFKA_TOOL), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, input=input,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res
