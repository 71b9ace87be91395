"""Byte-rate quotas through the tenant (SASL) gateway (SPEC 7, issue 5 point 4), with real
clients (Kafka's own producer/consumer perf tools) against the real pool.

Quotas are scaled down so the runs fit two shared cores (partition 1 MiB/s, tenant 2-8
MiB/s) and tolerances are generous (±20% of the quota after the first second of burst):
these are behaviour tests, not benchmarks (loadtest/ measures accuracy). Every test makes
its own tenant (allow-all policy plus the `limits` it needs) and its own topics through the
gateway. Rates are measured from the pool's side (end offsets sampled every 0.5 s, read
straight from the pool) and from the client's own totals and wall time.
"""
import re
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import KAFKA_TOOL, POOL_BOOTSTRAP
from tenant_env import Tenant, _wait_admitted, tenant_gateway  # noqa: F401 (tenant_gateway is a fixture)
from tenants import allow_all_doc, put_tenant

KIB = 1024
MIB = 1024 * 1024
RECORD = 1024  # record value size of every producer here
TOL = 0.20  # achieved rate within ±20% of the quota
SAMPLE_SECS = 0.5
# Partition quota of the single-partition tests. The shared pool sustains only ~0.5 MiB/s
# to one partition with the producer's default 16 KiB batches under the usual load of this
# machine (acks=all through three brokers, direct or through the gateway alike), and ~2
# MiB/s with 64 KiB batches: quotas stay well below that so they, not the pool, set the rate.
PARTITION_QUOTA = 512 * KIB
BATCHING = {"batch.size": 65536, "linger.ms": 10}


# --------------------------------------------------------------------------- helpers

def quota_doc(tid: str, limits: dict) -> dict:
    doc = allow_all_doc(tid)
    doc["limits"] = dict(limits)
    return doc


def quota_tenant(tgw, limits: dict) -> Tenant:
    """A fresh tenant `q<8 hex>` with the allow-all policy and `limits`, once admitted."""
    tid = "q" + uuid.uuid4().hex[:8]
    version = put_tenant(quota_doc(tid, limits))
    t = Tenant(tgw, tid, version)
    _wait_admitted(t)
    return t


def create_topic(tenant: Tenant, topic: str, partitions: int = 1):
    """Creates a topic through the gateway as the tenant and waits for its leaders."""
    a = tenant.admin()
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)],
                    operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    deadline = time.time() + 60
    while True:
        t = a.list_topics(topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        assert time.time() < deadline, f"topic {topic} not ready: {t}"
        time.sleep(0.3)


def unique_topic(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def props_file(tenant: Tenant, **extra) -> str:
    f = tempfile.NamedTemporaryFile("w", suffix=".properties", delete=False)
    f.write(tenant.java_properties() + "".join(f"{k}={v}\n" for k, v in extra.items()))
    f.close()
    return f.name


class PoolOffsets:
    """Samples the sum of a pool topic's end offsets every 0.5 s, straight from the pool
    (no gateway, no quota), in a background thread."""

    def __init__(self, pool_topic: str, partitions: int):
        self.tps = [TopicPartition(pool_topic, p) for p in range(partitions)]
        self.consumer = Consumer({"bootstrap.servers": POOL_BOOTSTRAP, "group.id": "unused-" + uuid.uuid4().hex})
        self.samples = []  # (monotonic time, {partition: end offset})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def ends(self) -> dict:
        return {tp.partition: self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in self.tps}

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                ends = self.ends()
                self.samples.append(((t0 + time.monotonic()) / 2, ends))
            except Exception as e:  # noqa: BLE001 (a missed sample only widens a window)
                print("pool offset sample failed:", e)
            self._stop.wait(max(0.0, SAMPLE_SECS - (time.monotonic() - t0)))

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        final = self.ends()
        self.consumer.close()
        return final

    def total_at(self, i: int) -> int:
        return sum(self.samples[i][1].values())

    def first_reaching(self, n: int):
        """Time of the first sample whose total is >= n, or None."""
        for t, ends in self.samples:
            if sum(ends.values()) >= n:
                return t
        return None

    def rate(self, t0: float, t1: float) -> float:
        """Records per second between the samples nearest t0 and t1."""
        s = self.samples
        a = min(range(len(s)), key=lambda i: abs(s[i][0] - t0))
        b = min(range(len(s)), key=lambda i: abs(s[i][0] - t1))
        assert b > a, f"no samples between {t0} and {t1}"
        return (self.total_at(b) - self.total_at(a)) / (s[b][0] - s[a][0])

    def windows(self, since: float):
        """[(mid time relative to `since`, records/s)] of consecutive samples."""
        out = []
        for (ta, ea), (tb, eb) in zip(self.samples, self.samples[1:]):
            out.append(((ta + tb) / 2 - since, (sum(eb.values()) - sum(ea.values())) / (tb - ta)))
        return out


class PerfProducer:
    """kafka-producer-perf-test (ProducerPerformance) in the background, with --print-metrics."""

    def __init__(self, tenant: Tenant, topic: str, records: int, throughput: int, **props):
        self.cfg = props_file(tenant, **props)
        self.out = tempfile.NamedTemporaryFile("w+", suffix=".out", delete=False)
        self.err = tempfile.NamedTemporaryFile("w+", suffix=".err", delete=False)
        self.records = records
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(KAFKA_TOOL), "kafka-producer-perf-test", "--topic", topic, "--num-records", str(records),
             "--record-size", str(RECORD), "--throughput", str(throughput), "--producer.config", self.cfg,
             "--print-metrics"],
            stdout=self.out, stderr=self.err, text=True)
        self.ended = None

    def wait(self, timeout: float):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"producer did not finish in {timeout}s:\n{self.stdout()[-3000:]}\n{self.stderr()[-3000:]}")
        self.ended = time.monotonic()
        return self.result()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stdout(self) -> str:
        self.out.flush()
        with open(self.out.name) as f:
            return f.read()

    def stderr(self) -> str:
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def result(self) -> dict:
        """The final summary line and the throttle metrics; fails if the tool failed."""
        out, err = self.stdout(), self.stderr()
        assert self.proc.returncode == 0, f"producer exited {self.proc.returncode}:\n{out[-3000:]}\n{err[-3000:]}"
        final = [l for l in out.splitlines() if "records sent" in l and "99.9th" in l]
        assert final, out[-3000:] + err[-3000:]
        m = re.match(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                     r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th", final[-1])
        assert m, final[-1]
        return {
            "sent": int(m.group(1)), "rec_per_sec": float(m.group(2)), "mb_per_sec": float(m.group(3)),
            "avg_ms": float(m.group(4)), "max_ms": float(m.group(5)), "p99_ms": int(m.group(8)),
            "throttle_avg": metric(out, "producer-metrics:produce-throttle-time-avg"),
            "throttle_max": metric(out, "producer-metrics:produce-throttle-time-max"),
            "errors": [l for l in err.splitlines() if "Exception" in l],
            "line": final[-1],
        }


def metric(text: str, name: str) -> float:
    """A value from --print-metrics output (`group:name:{tags} : value`)."""
    m = re.search(re.escape(name) + r":\{[^}]*\}\s*:\s*(\S+)", text)
    assert m, f"metric {name} not printed:\n{text[-3000:]}"
    v = float(m.group(1))  # NaN when never recorded
    return v


def fmt(rate_bytes: float) -> str:
    return f"{rate_bytes / MIB:.3f} MiB/s"


def assert_near(measured: float, quota: float, what: str, tol: float = TOL):
    assert abs(measured / quota - 1) <= tol, (
        f"{what}: measured {fmt(measured)}, quota {fmt(quota)} (ratio {measured / quota:.3f}, allowed ±{tol:.0%})")


@pytest.fixture
def gateway_ok(tenant_gateway):
    yield tenant_gateway
    assert tenant_gateway.gateway.alive(), "gateway exited during the test:\n" + tenant_gateway.log()[-5000:]


# --------------------------------------------------------------------------- tests

def test_produce_partition_quota(gateway_ok):
    """A producer offering 2x its partition write quota is held to the quota: the crossing
    requests succeed with throttle_time_ms, no send errors, and nothing is lost."""
    quota = PARTITION_QUOTA
    t = quota_tenant(gateway_ok, {"partition_produce_bytes_per_sec": quota, "produce_bytes_per_sec": 8 * MIB})
    topic = unique_topic("pw")
    create_topic(t, topic, 1)
    n = 7 * quota // RECORD * 2  # ~13 s at the quota
    sampler = PoolOffsets(t.pool_name(topic), 1).start()
    prod = PerfProducer(t, topic, n, throughput=2 * quota // RECORD, **BATCHING)
    r = prod.wait(120)
    final = sampler.stop()
    print(f"\nproduce quota {fmt(quota)}: {r['line']}\n throttle avg {r['throttle_avg']} ms max {r['throttle_max']} ms")

    assert r["errors"] == [], r["errors"][:5]
    assert r["sent"] == n, r["line"]
    assert final == {0: n}, f"pool end offsets {final}, records sent {n}"
    done = sampler.first_reaching(n)
    assert done is not None
    pool_rate = sampler.rate(prod.started + 2, done) * RECORD
    client_rate = n * RECORD / (prod.ended - prod.started)
    print(f" pool-side rate after 2 s: {fmt(pool_rate)}; client total/wall: {fmt(client_rate)}; "
          f"tool: {r['mb_per_sec']} MB/s")
    assert_near(pool_rate, quota, "pool-side produce rate")
    assert_near(r["mb_per_sec"] * MIB, quota, "ProducerPerformance's MB/sec")
    assert r["throttle_avg"] > 0, r
    assert r["throttle_max"] > 0, r
