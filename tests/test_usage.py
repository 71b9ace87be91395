"""The usage ledger (SPEC 9, issue 6 points 3 and 6): per-tenant usage appended to
`__sluice_usage` and read back at /v1/tenants/{t}/usage in MSK Serverless billing units,
against the real pool, with real clients.

What "agrees" means here: the gateway counts record-batch bytes (what a producer sends
and a consumer fetches, batch headers included). An uncompressed producer's batches are
stored as they are, so the bytes in equal the size of the partitions' logs in the pool
(`kafka-log-dirs --describe`, the leader's replica); a consumer that reads everything
once fetches the same batches, so the bytes out equal it too. Both within 0.1%.

The gateway flushes every 2 s here (10 s by default). It is killed with SIGKILL after its
records are flushed and restarted with the same config: the restarted instance replays
the ledger (a new instance id) and nothing is counted twice.
"""
import json
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import KAFKA_TOOL, POOL_BOOTSTRAP, SLUICE_BIN
from tenants import ALLOW_ALL
from test_admin_api import Http, mint
from test_oauth import restart_oauth_gateway, start_oauth_gateway, stop_gateway

RECORD = 1024


def log_size(pool_topic: str) -> int:
    """Bytes in the topic's logs: per partition the largest replica, summed."""
    res = subprocess.run([str(KAFKA_TOOL), "kafka-log-dirs", "--bootstrap-server", POOL_BOOTSTRAP, "--describe",
                          "--topic-list", pool_topic], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(next(l for l in res.stdout.splitlines() if l.startswith("{")))
    sizes = {}
    for b in doc["brokers"]:
        for d in b["logDirs"]:
            for p in d["partitions"]:
                sizes[p["partition"]] = max(sizes.get(p["partition"], 0), p["size"])
    return sum(sizes.values())


def kafka_config(gw, tenant: str, **extra) -> dict:
    token = mint(gw, tenant=tenant, subject="app")
    cfg = {"bootstrap.servers": gw.bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
           "sasl.username": "app", "sasl.password": token}
    cfg.update(extra)
    return cfg


def produce(gw, tenant: str, topic: str, n: int, start: int = 0):
    p = Producer(kafka_config(gw, tenant, **{"compression.type": "none", "linger.ms": 5, "enable.idempotence": True}))
    for i in range(start, start + n):
        p.produce(topic, key=str(i).encode(), value=bytes([i % 251]) * RECORD)
        p.poll(0)
    assert p.flush(60) == 0


def consume_all(gw, tenant: str, topic: str, partitions: int, n: int):
    c = Consumer(kafka_config(gw, tenant, **{"group.id": "u-" + uuid.uuid4().hex[:6], "enable.auto.commit": False,
                                             "max.partition.fetch.bytes": 64 * 1024 * 1024,
                                             "fetch.max.bytes": 128 * 1024 * 1024}))
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got, deadline = 0, time.time() + 60
    while got < n:
        assert time.time() < deadline, f"consumed {got} of {n}"
        for m in c.consume(500, 1.0):
            assert m.error() is None, m.error()
            got += 1
    c.close()
    assert got == n


def totals(api: Http, tenant: str) -> dict:
    status, _, body = api.call("GET", f"/v1/tenants/{tenant}/usage?granularity=day")
    assert status == 200, body
    keys = ["cluster_hours", "partition_hours", "gb_in", "gb_out", "storage_gb_hours"]
    return {k: sum(b[k] for b in body["items"]) for k in keys}


def wait_for(api: Http, tenant: str, check, what: str, timeout: float = 40) -> dict:
    deadline = time.time() + timeout
    while True:
        t = totals(api, tenant)
        if check(t):
            return t
        assert time.time() < deadline, f"{what}: usage is {t}"
        time.sleep(1)


def close(measured_gb: float, expected_bytes: int) -> bool:
    return expected_bytes > 0 and abs(measured_gb * 1e9 / expected_bytes - 1) <= 0.001


def restart_killed(gw):
    restart_oauth_gateway(gw, kill=True)


@pytest.fixture(scope="module")
def gw(pool, tmp_path_factory):
    g = start_oauth_gateway(tmp_path_factory.mktemp("usage"), ttl_secs=3600,
                            extra_config="[usage]\nflush_ms = 2000\n\n[metrics]\npool_poll_ms = 2000\n")
    yield g
    stop_gateway(g)


def test_usage_matches_the_pool_and_survives_kill_9(gw):
    op = Http(gw.url, mint(gw, scope="sluice:operator"))
    tenant = "use" + uuid.uuid4().hex[:8]
    status, _, body = op.call("POST", "/v1/tenants", {"id": tenant, "policies": {"all": ALLOW_ALL},
                                                      "principals": {"*": {"policies": ["all"]}}})
    assert status == 201, body
    started = time.time()
    topic, parts = "billing", 2
    deadline = time.time() + 20
    admin = AdminClient(kafka_config(gw, tenant))
    while True:
        try:
            admin.create_topics([NewTopic(topic, num_partitions=parts, replication_factor=3)],
                                request_timeout=30)[topic].result(60)
            break
        except Exception as e:  # noqa: BLE001 (the gateway may not have read the tenant yet)
            assert time.time() < deadline, e
            time.sleep(0.5)
    pool_topic = f"{tenant}.{topic}"

    produce(gw, tenant, topic, 2000)
    size1 = log_size(pool_topic)
    assert size1 > 2000 * RECORD
    t = wait_for(op, tenant, lambda t: close(t["gb_in"], size1), f"bytes in = {size1}")
    consume_all(gw, tenant, topic, parts, 2000)
    t = wait_for(op, tenant, lambda t: close(t["gb_out"], size1), f"bytes out = {size1}")
    print(f"\nbefore kill: {t} (log {size1} bytes)")

    # Flushed: now SIGKILL and restart; the replayed ledger must give the same totals.
    restart_killed(gw)
    op_after = Http(gw.url, op.token)
    t_after = wait_for(op_after, tenant, lambda t: close(t["gb_in"], size1) and close(t["gb_out"], size1),
                       "usage after the restart")
    time.sleep(5)  # several more flushes of the new instance: still not doubled
    t_after = totals(op_after, tenant)
    assert close(t_after["gb_in"], size1) and close(t_after["gb_out"], size1), (t_after, size1)

    produce(gw, tenant, topic, 1000, start=2000)
    size2 = log_size(pool_topic)
    t = wait_for(op_after, tenant, lambda t: close(t["gb_in"], size2), f"bytes in = {size2} after more produce")
    assert close(t["gb_out"], size1), t
    elapsed_h = (time.time() - started) / 3600
    print(f"after restart and more produce: {t} (log {size2} bytes, {elapsed_h * 3600:.0f} s)")
    # Pool-side units: the tenant existed, held 2 partitions and stored bytes meanwhile.
    # Billed from its creation to the last flush, less the restart gap and the part of a
    # flush window not yet written (seconds, more on a loaded machine), never more than the
    # time it existed. (Taking one 2 s record per 10 s slot once billed a fifth.)
    assert elapsed_h * 0.4 <= t["cluster_hours"] <= elapsed_h * 1.05 + 1 / 3600, t
    cluster = t["cluster_hours"]
    assert parts * cluster * 0.6 <= t["partition_hours"] <= parts * cluster * 1.01, t
    assert t["storage_gb_hours"] > 0, t

    # Bad parameters are 400 with the field named.
    status, _, body = op_after.call("GET", f"/v1/tenants/{tenant}/usage?granularity=week")
    assert status == 400 and body["field"] == "granularity", body
    status, _, body = op_after.call("GET", f"/v1/tenants/{tenant}/usage?from=yesterday")
    assert status == 400 and body["field"] == "from", body

    # The CLI reads the same ledger: `sluice tenant usage` agrees with the API.
    res = subprocess.run([str(SLUICE_BIN), "tenant", "usage", tenant, "--granularity", "day",
                          "--bootstrap", POOL_BOOTSTRAP], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    cli = json.loads(res.stdout)
    assert cli["tenant"] == tenant and cli["granularity"] == "day"
    assert close(sum(b["gb_in"] for b in cli["items"]), size2), cli


def test_operator_cli_creates_tenants_and_sets_limits_without_json(pool):
    from tenants import get_tenant

    def sluice(*args):
        return subprocess.run([str(SLUICE_BIN), "tenant", *args, "--bootstrap", POOL_BOOTSTRAP],
                              capture_output=True, text=True, timeout=60)

    tid = "cli" + uuid.uuid4().hex[:8]
    res = sluice("create", tid, "--limit", "max_partitions=5", "--limit", "max_connections=20", "--allow-all")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"id": tid, "version": 1}
    doc = get_tenant(tid)["tenant"]
    assert doc["limits"] == {"max_partitions": 5, "max_connections": 20}
    assert doc["principals"] == {"*": {"policies": ["all"]}} and "all" in doc["policies"]
    assert sluice("create", tid).returncode != 0, "a second create replaced the tenant"

    res = sluice("set-limits", tid, "max_partitions=default", "produce_bytes_per_sec=2097152")
    assert res.returncode == 0, res.stderr
    assert get_tenant(tid)["tenant"]["limits"] == {"max_connections": 20, "produce_bytes_per_sec": 2097152}
    res = sluice("set-limits", tid, "max_partitionz=3")
    assert res.returncode != 0 and "max_partitionz" in res.stderr, res.stderr
    res = sluice("set-limits", tid, "max_partitions=lots")
    assert res.returncode != 0 and "max_partitions=lots" in res.stderr, res.stderr
    assert get_tenant(tid)["version"] == 2
    # The README's next step: an admin client for the new tenant, its secret printed once.
    res = subprocess.run([str(SLUICE_BIN), "client", "create", "--tenant", tid, "--name", "admin",
                          "--scope", "sluice:admin", "--bootstrap", POOL_BOOTSTRAP],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    created = json.loads(res.stdout)
    assert created["client_id"] == f"{tid}.admin" and created["client_secret"], created
    assert get_tenant(tid)["tenant"]["clients"]["admin"]["scopes"] == ["sluice:admin"]
