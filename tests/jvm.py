"""Java side of the test suite: compiles the helper programs in tests/java/ against the
cached Kafka jars (deploy/kafka-tool.sh --classpath) once per session and runs them.

Helpers print one event per line on stdout; `run_java` returns the finished process,
`JavaProc` streams a long-running helper's lines so a test can act on them while it runs.
"""
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import KAFKA_TOOL, POOL_BOOTSTRAP, ROOT

JAVA_SRC = ROOT / "tests" / "java"
JAVA_BUILD = JAVA_SRC / "build"
JAVA_HEAP = os.environ.get("SLUICE_TEST_JAVA_HEAP", "-Xmx256m")
LOG4J_CONF = JAVA_SRC / "log4j2.properties"

_classpath = None


def kafka_classpath() -> str:
    """The ':'-joined Kafka jar list (fetches Kafka on first use via deploy/)."""
    global _classpath
    if _classpath is None:
        res = subprocess.run([str(KAFKA_TOOL), "--classpath"], capture_output=True, text=True, timeout=900)
        if res.returncode != 0 or not res.stdout.strip():
            raise RuntimeError(f"kafka-tool.sh --classpath failed:\n{res.stdout}\n{res.stderr}")
        _classpath = res.stdout.strip().splitlines()[-1]
    return _classpath


def build_helpers() -> Path:
    """Compiles tests/java/*.java into tests/java/build/<hash of sources>/ unless already there.
    Safe against concurrent pytest sessions (file lock, atomic rename)."""
    sources = sorted(JAVA_SRC.glob("*.java"))
    digest = hashlib.sha256()
    for s in sources:
        digest.update(s.name.encode())
        digest.update(s.read_bytes())
    out = JAVA_BUILD / digest.hexdigest()[:16]
    if (out / "Util.ok").exists():
        return out
    JAVA_BUILD.mkdir(parents=True, exist_ok=True)
    with open(JAVA_BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "Util.ok").exists():
            return out
        tmp = Path(tempfile.mkdtemp(dir=JAVA_BUILD, prefix=".tmp-"))
        res = subprocess.run(
            ["javac", "-nowarn", "-J-Xmx256m", "-d", str(tmp), "-cp", kafka_classpath(), *map(str, sources)],
            capture_output=True, text=True, timeout=300,
        )
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"javac failed:\n{res.stdout}\n{res.stderr}")
        (tmp / "Util.ok").write_text("ok\n")
        if out.exists():
            shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def java_cmd(build: Path, cls: str, *args) -> list:
    return [
        "java", JAVA_HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
        f"-Dlog4j2.configurationFile={LOG4J_CONF}",
        "-cp", f"{build}:{kafka_classpath()}", cls, *map(str, args),
    ]


@pytest.fixture(scope="session")
def java_helpers(pool):
    """Path of the compiled helper classes (compiled once per session)."""
    return build_helpers()


@pytest.fixture
def gateway_stays_up(gateway):
    """Fails a test (at teardown) if the gateway process died while it ran."""
    yield
    assert gateway.alive(), "gateway exited during the test:\n" + gateway.log()[-5000:]


def run_java(build: Path, cls: str, *args, timeout=120, check=True):
    """Runs a helper to completion; returns (CompletedProcess, stdout lines)."""
    res = subprocess.run(java_cmd(build, cls, *args), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(
            f"{cls} {' '.join(map(str, args))} failed ({res.returncode}):\n"
            f"stdout: {res.stdout[-3000:]}\nstderr: {res.stderr[-5000:]}"
        )
    return res, res.stdout.splitlines()


class JavaProc:
    """A helper running in the background; stdout lines are collected as they arrive."""

    def __init__(self, build: Path, cls: str, *args, stderr_path=None):
        self.name = cls
        self.lines = []
        self._cv = threading.Condition()
        self._stderr_path = stderr_path or tempfile.mktemp(prefix=f"{cls}-", suffix=".stderr")
        self._stderr = open(self._stderr_path, "w")
        self.proc = subprocess.Popen(
            java_cmd(build, cls, *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def snapshot(self) -> list:
        with self._cv:
            return list(self.lines)

    def wait_for(self, pred, timeout: float, what: str):
        """Waits until pred(lines) is truthy; returns its value or fails with the evidence."""
        deadline = time.time() + timeout
        with self._cv:
            while True:
                v = pred(self.lines)
                if v:
                    return v
                left = deadline - time.time()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    break
                self._cv.wait(min(left, 0.5))
        raise AssertionError(
            f"{self.name}: timed out waiting for {what} (exit={self.proc.poll()})\n"
            f"last stdout: {self.lines[-30:]}\nstderr: {self.stderr()[-4000:]}"
        )

    def stop(self, timeout: float = 60):
        """Asks the helper to finish (stdin 'stop' + EOF) and waits; kills it on timeout."""
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        return self.wait(timeout)

    def wait(self, timeout: float):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not finish in {timeout}s; stdout tail {self.lines[-20:]}\n{self.stderr()[-3000:]}")
        self._reader.join(10)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr(self) -> str:
        self._stderr.flush()
        return Path(self._stderr_path).read_text(errors="replace")


def parse_acks(lines):
    """Produce helper output -> ({value: (partition, offset)}, [error lines], done line)."""
    acked, errors, done = {}, [], None
    for l in lines:
        if l.startswith("ack "):
            _, p, o, v = l.split(" ", 3)
            assert v not in acked, f"value {v} acknowledged twice"
            acked[v] = (int(p), int(o))
        elif l.startswith("err "):
            errors.append(l)
        elif l.startswith("done "):
            done = l
    return acked, errors, done


def assert_gateway_addresses(gateway, lines):
    """Every "leader <p> <host> <port>" a helper printed is an address of this gateway
    (advertised host, broker_port_base + node id), never a pool broker; or, with
    SLUICE_TEST_DIRECT=1, a pool broker."""
    pool_ports = {int(a.rsplit(":", 1)[1]) for a in POOL_BOOTSTRAP.split(",")}
    addrs = [l.split()[1:] for l in lines if l.startswith("leader ")]
    assert addrs, "helper printed no leader addresses"
    for p, host, port in addrs:
        port = int(port)
        if gateway.proc is None:
            assert port in pool_ports or 29091 <= port <= 29094, (p, host, port)
        else:
            assert host == gateway.bootstrap.rsplit(":", 1)[0], (p, host, port)
            assert port - gateway.broker_port_base in (1, 2, 3, 4), (p, host, port, gateway.broker_port_base)
            assert port not in pool_ports, (p, host, port)


def parse_dump(lines):
    """Dump helper output -> (records [(partition, offset, key, value)], end offsets {p: end})."""
    recs, end = [], {}
    assert lines and lines[-1].startswith("done "), f"dump did not finish: {lines[-5:]}"
    for l in lines:
        if l.startswith("rec "):
            _, p, o, k, v = l.split(" ", 4)
            recs.append((int(p), int(o), k, v))
        elif l.startswith("end "):
            _, p, e = l.split()
            end[int(p)] = int(e)
    return recs, end


def dump_topic(build, bootstrap, topic, isolation="read_uncommitted", timeout=120):
    _, lines = run_java(build, "Dump", "--bootstrap", bootstrap, "--topic", topic,
                        "--isolation", isolation, "--timeout-ms", int((timeout - 15) * 1000), timeout=timeout)
    return parse_dump(lines)
