"""The gateway's Prometheus metrics scraped by a real Prometheus server (issue 6 points 2
and 6, SPEC 9).

A SASL gateway of this module's own (with `[admin]`, so `/metrics` is served, and
`[metrics] pool_poll_ms = 1000`) is scraped every second by Debian's `prometheus`
(tests/setup.sh installs it) with its storage in a temporary directory. Two tenants
produce and consume known volumes with confluent-kafka through the gateway, and every
assertion reads Prometheus's query API (`/api/v1/query`), never the gateway directly.

What is comparable, exactly:
- `sluice_tenant_bytes_total{direction="in"}` counts the record-batch bytes of the
  Produce partitions the gateway forwards: the `records` field of each partition, the
  bytes the producer built. librdkafka reports the same quantity itself, as the `sum` of
  its per-topic `batchsize` statistics window (the size of every MessageSet it wrote);
  summed over all windows, that is what the client sent. The pool stores v2 batches byte
  for byte (it only fills in offsets and timestamps in place), so on a fresh topic with no
  retries the leader's log size (DescribeLogDirs, read here with Kafka's
  `kafka-log-dirs`) is the same number. Both are asserted within 0.1%.
- `sluice_tenant_bytes_total{direction="out"}` counts the `records` bytes of the Fetch
  partitions returned to the client. A consumer that reads each partition once from
  offset 0, with fetch limits far above the partition sizes (so the broker never cuts a
  batch at the end of a response), receives each stored batch exactly once: what it
  received is the log size again. librdkafka has no batch-level receive statistic (its
  `rxbytes` counts message bytes or wire bytes), so the pool's number stands for the
  client's here, and the consumer checks that it got every message once.
- Consumer lag (`sluice_consumer_group_lag`, summed over partitions with a committed
  offset, log end offset minus committed offset) is compared with the LAG column of
  `kafka-consumer-groups --describe` run against the pool, for a group whose committed
  offsets leave a known backlog.
Also checked: storage bytes against the same DescribeLogDirs, partitions, requests and
latency histograms per API, an error by code, a failed authentication under its tenant,
and that per-broker bytes add up to the tenants' bytes.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import POOL_BOOTSTRAP, _free_port_block, _wait_port, kafka_tool, start_gateway
from tenant_env import Tenant, TenantGateway
from tenants import allow_all_doc, put_tenant
from test_sasl import Keys, SaslEnv, sasl_auth_config, stop_gateway

TIMEOUT = 60
PARTITIONS = 3
# (messages, smallest value, value size spread): different volumes per tenant.
WORKLOADS = {"a": (4000, 100, 1000), "b": (1500, 2000, 1000)}
# Committed offsets leave this many records unread per partition of tenant a's topic.
BACKLOG = [7, 0, 25]


# ------------------------------------------------------------------------ processes

def _free_port(taken=()) -> int:
    for _ in range(50):
        port = _free_port_block(1)
        if port not in taken:
            return port
    raise RuntimeError("no free port")


@pytest.fixture(scope="module")
def metrics_gateway(pool, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics-gateway")
    keys = Keys(tmp)
    admin_port = _free_port()
    extra = sasl_auth_config(keys) + f"""
[admin]
bind = "127.0.0.1:{admin_port}"

[issuer]
url = "http://127.0.0.1:{admin_port}"
audience = "sluice-metrics-test"
key_file = "{tmp / 'issuer.pem'}"
generate_key = true

[metrics]
pool_poll_ms = 1000
"""
    gw = start_gateway(tmp, extra, auth="sasl")
    if not _wait_port(admin_port, 30):
        stop_gateway(gw)
        raise RuntimeError(f"admin listener did not open:\n{gw.log()[-3000:]}")
    gw.admin_port = admin_port
    env = SaslEnv(gw, keys)
    yield env
    stop_gateway(gw)
    assert "panicked" not in gw.log(), gw.log()[-5000:]


class Prometheus:
    def __init__(self, proc, port, log_path):
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def query(self, promql: str) -> list:
        """The instant vector of `promql`: [(labels, value)]."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    def value(self, promql: str):
        """The single value of `promql`, or None when it has no result."""
        res = self.query(promql)
        assert len(res) <= 1, (promql, res)
        return res[0][1] if res else None

    def wait_value(self, promql: str, ok, timeout: float = 30.0):
        """Polls until `ok(value)` holds; returns the last value either way."""
        deadline = time.time() + timeout
        v = None
        while time.time() < deadline:
            v = self.value(promql)
            if v is not None and ok(v):
                return v
            time.sleep(0.5)
        return v


@pytest.fixture(scope="module")
def prometheus(metrics_gateway, tmp_path_factory):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (tests/setup.sh installs Debian's package)"
    tmp = tmp_path_factory.mktemp("prometheus")
    port = _free_port({metrics_gateway.gateway.admin_port})
    cfg = tmp / "prometheus.yml"
    cfg.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sluice
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["127.0.0.1:{metrics_gateway.gateway.admin_port}"]
""")
    log_path = tmp / "prometheus.log"
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
    )
    prom = Prometheus(proc, port, log_path)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert proc.poll() is None, f"prometheus exited:\n{prom.log()}"
        time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError(f"prometheus not ready:\n{prom.log()}")
    # The gateway must be up as a scrape target before anything is measured.
    up = prom.wait_value('up{job="sluice"}', lambda v: v == 1)
    assert up == 1, f"gateway not scraped: {prom.query('up')}\n{prom.log()}"
    yield prom
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


# ------------------------------------------------------------------------- helpers

def make_tenant(env: SaslEnv) -> Tenant:
    tid = "m" + uuid.uuid4().hex[:8]
    put_tenant(allow_all_doc(tid))
    t = Tenant(TenantGateway(env), tid)
    deadline = time.time() + 15
    while time.time() < deadline:
        if t.admitted(timeout=2):
            return t
        time.sleep(0.3)
    raise AssertionError(f"tenant {tid} not admitted:\n{env.log()[-3000:]}")


def create_topic(t: Tenant, name: str):
    fut = t.admin().create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=-1)],
                                  operation_timeout=30, request_timeout=30)[name]
    fut.result(timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        md = t.admin().list_topics(topic=name, timeout=10).topics.get(name)
        if md is not None and md.error is None and len(md.partitions) == PARTITIONS \
                and all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.3)
    raise AssertionError(f"topic {name} not ready")


def produce(t: Tenant, topic: str, count: int, smallest: int, spread: int) -> int:
    """Produces `count` records; returns the record-batch bytes librdkafka says it sent
    (the sum of its `batchsize` statistics over every window)."""
    windows = []

    def stats(raw):
        bs = json.loads(raw).get("topics", {}).get(topic, {}).get("batchsize")
        if bs:
            windows.append((bs["sum"], bs["cnt"]))

    errors = []
    p = Producer(t.confluent_config(**{"linger.ms": 5, "acks": "all", "compression.type": "none",
                                       "statistics.interval.ms": 200, "stats_cb": stats}))
    for i in range(count):
        value = bytes([65 + i % 26]) * (smallest + (i * 7919) % spread)
        p.produce(topic, value=value, key=f"k{i}".encode(), partition=i % PARTITIONS,
                  on_delivery=lambda err, msg: err and errors.append(err))
        p.poll(0)
    assert p.flush(TIMEOUT) == 0, "records left unsent"
    assert not errors, errors[:5]
    # The last window closes at the next statistics emission: wait until the batch count
    # stops changing.
    seen = -1
    for _ in range(20):
        p.poll(0.3)
        total = sum(c for _, c in windows)
        if total == seen and total > 0:
            break
        seen = total
    return sum(s for s, _ in windows)


def consume_all(t: Tenant, topic: str, count: int) -> int:
    """Reads every partition once from offset 0; returns the records received."""
    c = Consumer(t.confluent_config(**{
        "group.id": "reader", "enable.auto.commit": False,
        # Far above a partition's size: the broker never cuts a batch at a response's end.
        "max.partition.fetch.bytes": 64 * 1024 * 1024, "fetch.max.bytes": 64 * 1024 * 1024,
    }))
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        got = 0
        deadline = time.time() + TIMEOUT
        while got < count and time.time() < deadline:
            for m in c.consume(500, timeout=1):
                assert m.error() is None, m.error()
                got += 1
        return got
    finally:
        c.close()


def pool_log_size(pool_topic: str) -> int:
    """The topic's size in the pool: the largest replica of each partition, summed."""
    res = kafka_tool("kafka-log-dirs", "--bootstrap-server", POOL_BOOTSTRAP, "--describe",
                     "--topic-list", pool_topic)
    doc = json.loads(next(l for l in res.stdout.splitlines() if l.startswith("{")))
    sizes = {}
    for broker in doc["brokers"]:
        for d in broker["logDirs"]:
            for p in d["partitions"]:
                if not p.get("isFuture"):
                    sizes[p["partition"]] = max(sizes.get(p["partition"], 0), p["size"])
    assert len(sizes) == PARTITIONS, sizes
    return sum(sizes.values())


def pool_group_lag(pool_group: str) -> int:
    """Total LAG of `kafka-consumer-groups --describe` for the group, on the pool."""
    res = kafka_tool("kafka-consumer-groups", "--bootstrap-server", POOL_BOOTSTRAP, "--describe",
                     "--group", pool_group)
    lines = [l.split() for l in res.stdout.splitlines() if l.startswith(pool_group + " ")]
    assert lines, res.stdout
    header = next(l.split() for l in res.stdout.splitlines() if l.startswith("GROUP"))
    col = header.index("LAG")
    return sum(int(l[col]) for l in lines if l[col] != "-")


def within(actual, expected, rel=0.001) -> bool:
    return actual is not None and abs(actual - expected) <= rel * expected


def tampered(token: str) -> str:
    """The same token with a broken signature (its claims still name the tenant)."""
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 0xFF
    return f"{head}.{body}.{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


# ---------------------------------------------------------------------------- test

def test_prometheus_sees_per_tenant_usage(metrics_gateway, prometheus):
    env, prom = metrics_gateway, prometheus
    tenants = {name: make_tenant(env) for name in WORKLOADS}
    sent, pool_sizes = {}, {}
    for name, t in tenants.items():
        create_topic(t, "data")
        count, smallest, spread = WORKLOADS[name]
        sent[name] = produce(t, "data", count, smallest, spread)
        assert consume_all(t, "data", count) == count
        pool_sizes[name] = pool_log_size(t.pool_name("data"))
        # Sanity of the reference itself: the client's count is the pool's.
        assert within(sent[name], pool_sizes[name]), (name, sent[name], pool_sizes[name])

    # Tenant a: a group that committed all but BACKLOG records of each partition.
    a = tenants["a"]
    c = Consumer(a.confluent_config(**{"group.id": "lagging", "enable.auto.commit": False}))
    try:
        ends = [c.get_watermark_offsets(TopicPartition("data", p), timeout=20)[1] for p in range(PARTITIONS)]
        c.commit(offsets=[TopicPartition("data", p, ends[p] - BACKLOG[p]) for p in range(PARTITIONS)],
                 asynchronous=False)
    finally:
        c.close()
    # Tenant b: an error the gateway returns (Metadata for a topic that does not exist).
    b = tenants["b"]
    md = b.admin().list_topics(topic="no-such-topic", timeout=20)
    assert md.topics["no-such-topic"].error is not None
    # A failed authentication naming tenant a (a signed token whose signature is broken).
    bad = Producer(dict(a.confluent_config(), **{"sasl.password": tampered(a.token()), "socket.timeout.ms": 5000}))
    with pytest.raises(KafkaException):
        bad.list_topics(timeout=5)
    del bad

    for name, t in tenants.items():
        sel = f'tenant="{t.id}"'
        bytes_in = prom.wait_value(f'sluice_tenant_bytes_total{{{sel},direction="in"}}',
                                   lambda v, n=name: within(v, sent[n]))
        assert within(bytes_in, sent[name]), (name, bytes_in, sent[name])
        assert within(bytes_in, pool_sizes[name]), (name, bytes_in, pool_sizes[name])
        bytes_out = prom.wait_value(f'sluice_tenant_bytes_total{{{sel},direction="out"}}',
                                    lambda v, n=name: within(v, pool_sizes[n]))
        assert within(bytes_out, pool_sizes[name]), (name, bytes_out, pool_sizes[name])
        storage = prom.wait_value(f"sluice_tenant_storage_bytes{{{sel}}}", lambda v, n=name: within(v, pool_sizes[n]))
        assert within(storage, pool_sizes[name]), (name, storage, pool_sizes[name])
        parts = prom.wait_value(f"sluice_tenant_partitions{{{sel}}}", lambda v: v == PARTITIONS)
        assert parts == PARTITIONS, (name, parts)
        produce_requests = prom.wait_value(f'sluice_tenant_requests_total{{{sel},api="Produce"}}', lambda v: v > 0)
        assert produce_requests and produce_requests > 0
        fetch_requests = prom.wait_value(f'sluice_tenant_requests_total{{{sel},api="Fetch"}}', lambda v: v > 0)
        assert fetch_requests and fetch_requests > 0
    # The two tenants' volumes differ, so a swapped label would show.
    assert abs(sent["a"] - sent["b"]) > 0.01 * max(sent.values())

    # Lag of the group with a known backlog, against Kafka's own tool.
    tool_lag = pool_group_lag(a.pool_name("lagging"))
    assert tool_lag == sum(BACKLOG), tool_lag
    lag_sel = f'tenant="{a.id}",group="lagging",topic="data"'
    lag = prom.wait_value(f"sluice_consumer_group_lag{{{lag_sel}}}", lambda v: v == tool_lag)
    assert lag == tool_lag, (lag, tool_lag, prom.query("sluice_consumer_group_lag"))
    max_lag = prom.wait_value(f"sluice_consumer_group_max_lag{{{lag_sel}}}", lambda v: v == max(BACKLOG))
    assert max_lag == max(BACKLOG)
    # The reader never committed: it has no lag series.
    assert prom.query(f'sluice_consumer_group_lag{{tenant="{a.id}",group="reader"}}') == []

    # Errors by code, from the response the gateway returned (UNKNOWN_TOPIC_OR_PARTITION).
    err = prom.wait_value(
        f'sum(sluice_tenant_errors_total{{tenant="{b.id}",api="Metadata",code="3",error="UNKNOWN_TOPIC_OR_PARTITION"}})',
        lambda v: v >= 1)
    assert err is not None and err >= 1, prom.query(f'sluice_tenant_errors_total{{tenant="{b.id}"}}')
    # Tenant a's clean run returned no produce or fetch errors.
    assert prom.query(f'sluice_tenant_errors_total{{tenant="{a.id}",api=~"Produce|Fetch"}}') == []
    # The failed authentication counted under tenant a, and only there.
    fails = prom.wait_value(f'sluice_auth_failures_total{{tenant="{a.id}"}}', lambda v: v >= 1)
    assert fails is not None and fails >= 1, fails
    assert prom.query(f'sluice_auth_failures_total{{tenant="{b.id}"}}') == []

    # Latency histograms per API, with buckets.
    count = prom.wait_value('sluice_request_duration_seconds_count{api="Produce"}', lambda v: v > 0)
    assert count and count > 0
    p99 = prom.value('histogram_quantile(0.99, sum by (le) (sluice_request_duration_seconds_bucket{api="Produce"}))')
    assert p99 is not None and 0 < p99 <= 30, p99
    assert prom.query('sluice_request_duration_seconds_bucket{api="Fetch",le="0.5"}'), "no Fetch buckets"

    # Per-broker bytes: every tenant byte went through some pool broker (only these two
    # tenants use this gateway).
    for direction, expected in (("in", sum(sent.values())), ("out", sum(pool_sizes.values()))):
        total = prom.wait_value(f'sum(sluice_broker_bytes_total{{direction="{direction}"}})',
                                lambda v, e=expected: within(v, e))
        assert within(total, expected), (direction, total, expected)
        assert len(prom.query(f'sluice_broker_bytes_total{{direction="{direction}"}} > 0')) >= 2

    # Bounded labels: nothing on /metrics carries a partition or principal label.
    for labels, _ in prom.query('{__name__=~"sluice_.*"}'):
        assert not {"partition", "principal", "subject", "client_id"} & set(labels), labels


def test_grafana_dashboard_queries_evaluate(prometheus):
    """deploy/grafana/sluice.json: valid JSON with a Prometheus data-source variable that
    every panel uses, only metrics that docs/operations.md documents, and every
    expression (variables filled in) accepted by the real Prometheus. Run after the
    usage test, the tenant throughput panels also return data."""
    root = Path(__file__).resolve().parent.parent
    dash = json.loads((root / "deploy" / "grafana" / "sluice.json").read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    documented = set(re.findall(r"`(sluice_[a-z_]+)`", (root / "docs" / "operations.md").read_text()))
    exprs = []
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", panel["title"]
            exprs.append((panel["title"], t["expr"]))
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for topic in ("produce", "consume", "throttle", "errors", "connections", "partitions", "storage", "lag",
                  "latency", "broker"):
        assert topic in titles, f"no {topic} panel"
    for title, expr in exprs:
        for name in re.findall(r"\b(sluice_[a-z_]+?)(?:_bucket|_count|_sum)?\b", expr):
            assert name in documented, (title, name)
        filled = (expr.replace("$__rate_interval", "1m").replace("$tenant", ".*").replace("$api", ".*"))
        prometheus.query(filled)  # raises unless Prometheus accepts it
    produced = prometheus.query(next(e for t, e in exprs if t.startswith("Produce")).replace("$__rate_interval", "1m")
                                .replace("$tenant", ".*"))
    assert produced, "the produce panel shows nothing after the usage test"
