"""Tenant count and size limits (SPEC 7), each hit through a real client and answered the
Kafka way with a message naming the limit: partitions, compacted partitions, message
size, request size and open connections. (Byte-rate quotas: test_quotas.py.)

Every test makes its own tenant with small limits in its document, so the pool's
defaults never matter."""
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from tenant_env import Tenant, new_tenant_id, pool_topics, tenant_gateway, _wait_admitted  # noqa: F401
from conftest import POOL_BOOTSTRAP
from jvm import java_helpers, run_java  # noqa: F401 (java_helpers is a fixture)
from tenants import allow_all_doc, put_tenant
from test_sasl import RawClient, plain_msg

TIMEOUT = 30


def limited_tenant(tgw, **limits) -> Tenant:
    tid = new_tenant_id()
    doc = allow_all_doc(tid)
    doc["limits"] = limits
    t = Tenant(tgw, tid, put_tenant(doc))
    _wait_admitted(t)
    return t


def create(admin: AdminClient, name: str, partitions: int, **config):
    """Creates one topic; returns None or the KafkaError."""
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, config=config)], request_timeout=TIMEOUT)
    try:
        fs[name].result(timeout=TIMEOUT)
        return None
    except KafkaException as e:
        return e.args[0]


def wait_inventory(t: Tenant, expect_partitions: int):
    """The gateway counts a tenant's partitions from the pool every few seconds; wait
    until the pool itself shows them, then one poll more, so the count is not stale."""
    pool = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        md = pool.list_topics(timeout=10)
        held = sum(len(md.topics[n].partitions) for n in md.topics if n.startswith(t.prefix))
        if held >= expect_partitions:
            time.sleep(4)  # metadata_refresh is 3 s
            return
        time.sleep(0.5)
    raise AssertionError(f"pool never showed {expect_partitions} partitions of {t.id}")


def test_partition_limit(tenant_gateway):
    t = limited_tenant(tenant_gateway, max_partitions=5)
    admin = t.admin()
    assert create(admin, "a", 3) is None
    wait_inventory(t, 3)
    err = create(admin, "b", 3)
    assert err is not None and err.code() == KafkaError.POLICY_VIOLATION, err
    assert "max_partitions" in err.str() and "5" in err.str(), err.str()
    assert "b" not in pool_topics(t.prefix)
    # Growing a topic counts only the partitions it adds: 3 -> 5 fits, 5 -> 6 does not.
    fs = admin.create_partitions([NewPartitions("a", 5)], request_timeout=TIMEOUT)
    fs["a"].result(timeout=TIMEOUT)
    wait_inventory(t, 5)
    fs = admin.create_partitions([NewPartitions("a", 6)], request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as info:
        fs["a"].result(timeout=TIMEOUT)
    err = info.value.args[0]
    assert err.code() == KafkaError.POLICY_VIOLATION and "max_partitions" in err.str(), err
    # 5 held: even one more partition is over.
    err = create(admin, "c", 1)
    assert err is not None and err.code() == KafkaError.POLICY_VIOLATION, err


def test_compacted_partition_limit(tenant_gateway):
    t = limited_tenant(tenant_gateway, max_compacted_partitions=2)
    admin = t.admin()
    err = create(admin, "log", 3, **{"cleanup.policy": "compact"})
    assert err is not None and err.code() == KafkaError.POLICY_VIOLATION, err
    assert "max_compacted_partitions" in err.str(), err.str()
    # The limit is on compacted partitions only.
    assert create(admin, "plain", 3) is None
    assert create(admin, "small-log", 2, **{"cleanup.policy": "compact"}) is None
    held = pool_topics(t.prefix)  # the tenant's topics in the pool, prefix removed
    assert {"plain", "small-log"} <= held and "log" not in held, held


def test_message_and_request_size_limits(tenant_gateway):
    t = limited_tenant(tenant_gateway, max_message_bytes=64 * 1024)
    admin = t.admin()
    assert create(admin, "sizes", 1) is None
    results = {}

    def on_delivery(err, msg):
        results[msg.value()[:5]] = err

    # Uncompressed and unbatched, so each record batch is about its record's size.
    p = Producer(t.confluent_config(**{"linger.ms": 0, "message.max.bytes": 4 * 1024 * 1024,
                                       "compression.type": "none", "enable.idempotence": False}))
    p.produce("sizes", value=b"small" + b"x" * 1000, on_delivery=on_delivery)
    p.flush(TIMEOUT)
    p.produce("sizes", value=b"large" + b"x" * (200 * 1024), on_delivery=on_delivery)
    p.flush(TIMEOUT)
    assert results[b"small"] is None, results
    err = results[b"large"]
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    # The pool got the small record only.
    c = Consumer({"bootstrap.servers": POOL_BOOTSTRAP, "group.id": "x" + uuid.uuid4().hex, "enable.auto.commit": False})
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(f"{t.prefix}sizes", 0), timeout=10)
        assert hi - lo == 1, (lo, hi)
    finally:
        c.close()


def sasl_connect(t: Tenant) -> tuple:
    """A raw connection authenticated as the tenant: (client, error code, message)."""
    c = RawClient(t.tgw.env.port)
    assert c.handshake("PLAIN")[0] == 0
    err, text, _data, _lifetime = c.authenticate(plain_msg(t.token()))
    return c, err, text


def test_connection_limit(tenant_gateway):
    tid = new_tenant_id()
    doc = allow_all_doc(tid)
    doc["limits"] = {"max_connections": 2}
    t = Tenant(tenant_gateway, tid, put_tenant(doc))
    # Raw connections, so nothing else of the client holds a slot.
    deadline = time.time() + 10
    while True:
        c, err, text = sasl_connect(t)
        c.close()
        if err == 0:
            break
        assert time.time() < deadline, f"tenant never admitted: {err} {text}"
        time.sleep(0.3)
    time.sleep(0.5)  # the probe's slot is freed when the gateway sees the close
    first, e1, _ = sasl_connect(t)
    second, e2, _ = sasl_connect(t)
    assert (e1, e2) == (0, 0)
    third, e3, text = sasl_connect(t)
    # SASL_AUTHENTICATION_FAILED with the limit named, then the connection closes.
    assert e3 == 58 and f"tenant {tid} already has 2 connections, its limit" in (text or ""), (e3, text)
    assert third.recv_frame() is None
    third.close()
    # Closing one frees its slot.
    first.close()
    time.sleep(0.5)
    again, e4, text = sasl_connect(t)
    assert e4 == 0, text
    again.close()
    second.close()


def test_partition_mutation_rate(tenant_gateway, java_helpers):
    """KIP-599: over its partition creations+deletions budget, a tenant's CreateTopics
    (v6+) answers THROTTLING_QUOTA_EXCEEDED with a throttle time, and nothing is created.
    The Java admin client is told not to retry, so the refusal is seen as it comes."""
    t = limited_tenant(tenant_gateway, partition_mutations_per_5min=4)
    names = ["m1", "m2", "m3"]
    _, lines = run_java(java_helpers, "AdminCheck", "create-once", "--bootstrap", t.bootstrap,
                        "--topics", ",".join(names), "--partitions", 2, *t.java_props())
    created = [l.split()[1] for l in lines if l.startswith("created ")]
    refused = [l for l in lines if l.startswith("refused ")]
    # 2 + 2 partitions fit the budget of 4; the third topic does not.
    assert created == ["m1", "m2"], lines
    assert len(refused) == 1 and "ThrottlingQuotaExceededException" in refused[0], lines
    throttle_ms = int(refused[0].split("throttle_ms=")[1].split()[0])
    # One mutation comes back every 75 s; two are needed.
    assert 60_000 <= throttle_ms <= 150_000, refused
    assert "partition mutation rate" in refused[0], refused
    assert pool_topics(t.prefix) == {"m1", "m2"}


def test_consumer_group_limit(tenant_gateway):
    """max_consumer_groups=2: two groups start (offset commits create them), a third is
    refused with POLICY_VIOLATION, through a commit and through a classic join (the
    gateway's log names the limit), while the two existing groups keep working. After one
    is deleted (and the gateway's next look at the pool), the third may start."""
    t = limited_tenant(tenant_gateway, max_consumer_groups=2)
    topic = "g-" + uuid.uuid4().hex[:6]
    assert create(t.admin(), topic, 1) is None
    p = Producer(t.confluent_config())
    for i in range(5):
        p.produce(topic, key=str(i), value=b"v")
    assert p.flush(30) == 0

    def commit(group: str):
        c = Consumer(t.confluent_config(**{"group.id": group, "enable.auto.commit": False}))
        try:
            c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
            return None
        except KafkaException as e:
            return e.args[0]
        finally:
            c.close()

    assert commit("g1") is None
    assert commit("g2") is None
    err = commit("g3")
    assert err is not None and err.code() == KafkaError.POLICY_VIOLATION, err
    assert commit("g1") is None, "an existing group stopped working at the limit"

    # A classic join of a third group: the coordinator answer is POLICY_VIOLATION.
    errors = []
    c = Consumer(t.confluent_config(**{"group.id": "g4", "auto.offset.reset": "earliest",
                                       "error_cb": lambda e: errors.append(e)}))
    c.subscribe([topic])
    deadline = time.time() + 20
    got = None
    while time.time() < deadline and got is None:
        m = c.poll(0.5)
        if m is not None and m.error() is not None and m.error().code() == KafkaError.POLICY_VIOLATION:
            got = m.error()
        elif m is not None and m.error() is None:
            raise AssertionError("a third group consumed despite max_consumer_groups=2")
        got = got or next((e for e in errors if e.code() == KafkaError.POLICY_VIOLATION), None)
    c.close()
    assert got is not None, f"no POLICY_VIOLATION for the third group's join: {errors}"
    assert "max_consumer_groups limit (2)" in tenant_gateway.log(), "the refusal is not logged with the limit"

    # Deleting a group frees its place once the gateway has seen the pool without it.
    res = t.admin().delete_consumer_groups(["g2"], request_timeout=TIMEOUT)
    res["g2"].result(timeout=TIMEOUT)
    deadline = time.time() + 20
    while (err := commit("g3")) is not None:
        assert err.code() == KafkaError.POLICY_VIOLATION, err
        assert time.time() < deadline, "g3 still refused 20 s after g2 was deleted"
        time.sleep(1)


def test_connection_limits_per_source_ip(tmp_path):
    """limits.max_connections_per_ip=3 and connection_rate_per_ip=5 on a gateway of its
    own: a source with 3 open connections gets its 4th closed before any answer, while
    another source address (127.0.0.2) still connects; closing one frees a place. More
    than 5 new connections in a second from one source are closed too. Both are logged
    with the limit's name."""
    from conftest import start_gateway
    from test_sasl import stop_gateway
    gw = start_gateway(tmp_path, "max_connections_per_ip = 3\nconnection_rate_per_ip = 5\n")
    try:
        port = gw.bootstrap_port

        def usable(c: RawClient) -> bool:
            try:
                return c.api_versions()[0] == 0
            except (AssertionError, OSError):
                return False

        time.sleep(1.1)  # the start-up readiness probe's connections are out of the window
        held = [RawClient(port) for _ in range(3)]
        assert all(usable(c) for c in held)
        fourth = RawClient(port)
        assert not usable(fourth), "a 4th connection from one source was served"
        fourth.close()
        other = RawClient(port, source="127.0.0.2")
        assert usable(other), "another source was refused"
        other.close()
        held.pop().close()
        time.sleep(1.1)  # the rate window too
        again = RawClient(port)
        assert usable(again), "a freed place was not given back"
        again.close()
        for c in held:
            c.close()
        time.sleep(1.1)
        burst = []
        for _ in range(7):
            c = RawClient(port)
            burst.append(usable(c))
            c.close()
        assert burst.count(True) <= 5 and burst.count(False) >= 2, burst
        log = gw.log()
        assert "limits.max_connections_per_ip" in log and "limits.connection_rate_per_ip" in log, log[-3000:]
    finally:
        stop_gateway(gw)
