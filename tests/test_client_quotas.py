"""Sub-quotas inside a tenant through Kafka's own client-quota APIs (SPEC 7, issue 5 point
3): `kafka-configs --entity-type users/clients` through the tenant (SASL) gateway against
the real pool.

What is checked:
- kafka-configs alters and describes users, clients, user+client and default entities;
  the entries are the tenant's own (stored in its document), invisible to other tenants
  and absent from the pool's own quota configuration;
- values above the tenant's own limits are refused with a message naming the limit;
  principals without kafka-cluster:AlterClusterDynamicConfiguration are refused;
- an operator's `sluice tenant put` without `client_quotas` keeps them;
- the limits are enforced: a client id's producer_byte_rate holds that client's producer to
  its rate with throttle time and no errors, while another client id of the same tenant is
  not held; a user's controller_mutation_rate refuses partition creation over it with
  THROTTLING_QUOTA_EXCEEDED.
"""
import subprocess
import time
import uuid

import pytest

from conftest import KAFKA_TOOL, POOL_BOOTSTRAP
from tenant_env import Tenant, _wait_admitted, tenant_gateway  # noqa: F401 (fixture)
from tenants import ALLOW_ALL, allow_all_doc, get_tenant, put_tenant
from jvm import java_helpers, run_java  # noqa: F401 (java_helpers is a fixture)
from test_sasl import RawClient, plain_msg
from test_quotas import (BATCHING, KIB, MIB, RECORD, PerfProducer, PoolOffsets, assert_near, create_topic, fmt,
                         props_file, quota_tenant, unique_topic)


def kafka_configs(tenant: Tenant, *args, bootstrap=None) -> subprocess.CompletedProcess:
    cmd = [str(KAFKA_TOOL), "kafka-configs", "--bootstrap-server", bootstrap or tenant.bootstrap]
    if bootstrap is None:
        cmd += ["--command-config", props_file(tenant)]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)


def ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, f"kafka-configs exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def stored_quotas(tid: str) -> list:
    doc = get_tenant(tid)
    return (doc or {}).get("tenant", doc or {}).get("client_quotas", [])


@pytest.fixture
def gateway_ok(tenant_gateway):
    yield tenant_gateway
    assert tenant_gateway.gateway.alive(), "gateway exited during the test:\n" + tenant_gateway.log()[-5000:]


def test_kafka_configs_manages_the_tenants_own_client_quotas(gateway_ok):
    a = quota_tenant(gateway_ok, {})
    b = quota_tenant(gateway_ok, {})
    user = "alice-" + uuid.uuid4().hex[:6]
    ok(kafka_configs(a, "--alter", "--entity-type", "users", "--entity-name", user,
                     "--add-config", "producer_byte_rate=262144,consumer_byte_rate=524288"))
    ok(kafka_configs(a, "--alter", "--entity-type", "clients", "--entity-name", "reporting",
                     "--add-config", "request_percentage=50"))
    ok(kafka_configs(a, "--alter", "--entity-type", "users", "--entity-name", user, "--entity-type", "clients",
                     "--entity-default", "--add-config", "consumer_byte_rate=131072"))
    ok(kafka_configs(a, "--alter", "--entity-type", "users", "--entity-default",
                     "--add-config", "controller_mutation_rate=0.5"))

    out = ok(kafka_configs(a, "--describe", "--entity-type", "users", "--entity-name", user))
    assert "producer_byte_rate=262144.0" in out and "consumer_byte_rate=524288.0" in out, out
    out = ok(kafka_configs(a, "--describe", "--entity-type", "users"))
    assert user in out and "controller_mutation_rate=0.5" in out, out
    out = ok(kafka_configs(a, "--describe", "--entity-type", "clients"))
    assert "reporting" in out and "request_percentage=50.0" in out, out
    out = ok(kafka_configs(a, "--describe", "--entity-type", "users", "--entity-name", user,
                           "--entity-type", "clients", "--entity-default"))
    assert "consumer_byte_rate=131072.0" in out, out

    # Stored in A's document, nowhere else.
    entries = stored_quotas(a.id)
    assert {"user": user, "quotas": {"producer_byte_rate": 262144.0, "consumer_byte_rate": 524288.0}} in entries, entries
    assert {"client_id": "reporting", "quotas": {"request_percentage": 50.0}} in entries, entries
    assert {"user": None, "quotas": {"controller_mutation_rate": 0.5}} in entries, entries
    for args in (["users"], ["clients"]):
        out = ok(kafka_configs(b, "--describe", "--entity-type", *args))
        assert user not in out and "reporting" not in out and "=" not in out, f"B sees A's quotas: {out}"
    pool = ok(kafka_configs(a, "--describe", "--entity-type", "users", "--entity-name", user, bootstrap=POOL_BOOTSTRAP))
    assert "producer_byte_rate" not in pool, f"the pool got a tenant's sub-quota: {pool}"

    # The operator's put of the tenant's limits keeps the tenant admin's sub-quotas.
    doc = allow_all_doc(a.id)
    doc["limits"] = {"max_connections": 500}
    put_tenant(doc)
    assert stored_quotas(a.id) == entries

    # Removing values; an entity left without values disappears.
    ok(kafka_configs(a, "--alter", "--entity-type", "clients", "--entity-name", "reporting",
                     "--delete-config", "request_percentage"))
    out = ok(kafka_configs(a, "--describe", "--entity-type", "clients"))
    assert "reporting" not in out, out
    assert not any(e.get("client_id") == "reporting" for e in stored_quotas(a.id))


def test_values_above_the_tenants_limits_and_missing_permissions_are_refused(gateway_ok, new_tenant_no_quota_admin):
    t = quota_tenant(gateway_ok, {"produce_bytes_per_sec": 1 * MIB, "max_connections_per_sec": 20})
    res = kafka_configs(t, "--alter", "--entity-type", "users", "--entity-name", "app",
                        "--add-config", f"producer_byte_rate={2 * MIB}")
    assert res.returncode != 0, res.stdout
    text = res.stdout + res.stderr
    assert "PolicyViolation" in text and "produce rate" in text and str(1 * MIB) in text, text
    res = kafka_configs(t, "--alter", "--entity-type", "clients", "--entity-name", "x",
                        "--add-config", "request_percentage=150")
    assert res.returncode != 0 and "percent of the tenant's request rate" in res.stdout + res.stderr, \
        res.stdout + res.stderr
    assert stored_quotas(t.id) == []

    # Read-only principal: may describe, may not alter.
    ro = new_tenant_no_quota_admin
    res = kafka_configs(ro, "--alter", "--entity-type", "clients", "--entity-name", "x",
                        "--add-config", "request_percentage=10")
    assert res.returncode != 0, res.stdout
    assert "ClusterAuthorization" in res.stdout + res.stderr, res.stdout + res.stderr
    ok(kafka_configs(ro, "--describe", "--entity-type", "clients"))
    assert stored_quotas(ro.id) == []


@pytest.fixture
def new_tenant_no_quota_admin(gateway_ok):
    """A tenant whose principals may do everything but alter cluster dynamic configuration."""
    tid = "q" + uuid.uuid4().hex[:8]
    doc = allow_all_doc(tid)
    doc["policies"]["all"] = {"Version": "2012-10-17", "Statement": ALLOW_ALL["Statement"] + [
        {"Effect": "Deny", "Action": ["kafka-cluster:AlterClusterDynamicConfiguration"], "Resource": ["*"]}]}
    t = Tenant(gateway_ok, tid, put_tenant(doc))
    _wait_admitted(t)
    return t


def test_a_client_ids_producer_byte_rate_holds_only_that_client(gateway_ok):
    """A client id with a 256 KiB/s producer_byte_rate inside a tenant of 8 MiB/s is held to
    its rate (throttle time, no errors, nothing lost); another client id is not."""
    sub = 256 * KIB
    t = quota_tenant(gateway_ok, {"produce_bytes_per_sec": 8 * MIB, "partition_produce_bytes_per_sec": 8 * MIB})
    ok(kafka_configs(t, "--alter", "--entity-type", "clients", "--entity-name", "slow",
                     "--add-config", f"producer_byte_rate={sub}"))
    topic = unique_topic("cq")
    create_topic(t, topic, 1)
    n = 8 * sub // RECORD  # ~7 s at the sub-quota after the 1 s burst
    sampler = PoolOffsets(t.pool_name(topic), 1).start()
    slow = PerfProducer(t, topic, n, throughput=4 * sub // RECORD, **{"client.id": "slow"}, **BATCHING)
    r = slow.wait(120)
    final = sampler.stop()
    print(f"\nclient 'slow' at {fmt(sub)}: {r['line']}; throttle avg {r['throttle_avg']} ms")
    assert r["errors"] == [] and r["sent"] == n, r
    assert final == {0: n}, final
    assert_near(sampler.steady_rate(n, slow.ended) * RECORD, sub, "pool-side rate of client 'slow'")
    assert r["throttle_avg"] > 0, r

    fast = PerfProducer(t, topic, n, throughput=4 * sub // RECORD, **{"client.id": "fast"}, **BATCHING).wait(120)
    print(f"client 'fast' (no sub-quota): {fast['line']}; throttle avg {fast['throttle_avg']} ms")
    assert fast["errors"] == [] and fast["sent"] == n, fast
    assert fast["mb_per_sec"] * MIB > 2 * sub, f"client 'fast' was held like 'slow': {fast['line']}"
    assert not fast["throttle_avg"] > 0, fast


def test_a_users_controller_mutation_rate_refuses_partitions_over_it(gateway_ok, java_helpers):
    """controller_mutation_rate=0.01/s (3 partitions per 5 minutes) for user `app`: 3
    partitions are created, the next is refused with THROTTLING_QUOTA_EXCEEDED (the Java
    admin client is told not to retry); another user of the tenant still creates."""
    t = quota_tenant(gateway_ok, {})
    ok(kafka_configs(t, "--alter", "--entity-type", "users", "--entity-name", t.subject,
                     "--add-config", "controller_mutation_rate=0.01"))
    names = ["m1", "m2", "m3", "m4"]
    _, lines = run_java(java_helpers, "AdminCheck", "create-once", "--bootstrap", t.bootstrap,
                        "--topics", ",".join(names), "--partitions", 1, *t.java_props())
    created = [l.split()[1] for l in lines if l.startswith("created ")]
    refused = [l for l in lines if l.startswith("refused ")]
    assert created == ["m1", "m2", "m3"], lines
    assert len(refused) == 1 and "ThrottlingQuotaExceededException" in refused[0], lines
    bob = Tenant(gateway_ok, t.id, subject="bob")
    _, lines = run_java(java_helpers, "AdminCheck", "create-once", "--bootstrap", t.bootstrap,
                        "--topics", "m4", "--partitions", 1, *bob.java_props())
    assert [l.split()[1] for l in lines if l.startswith("created ")] == ["m4"], lines


def test_a_client_ids_connection_creation_rate_refuses_connections_over_it(gateway_ok):
    """connection_creation_rate is not settable with kafka-configs for clients (Kafka keeps it
    for IPs), so the operator sets it in the tenant document: 2 new connections/s for
    client id `burst`. The third in the same second is refused with the limit named;
    another client id of the tenant still connects."""
    tid = "q" + uuid.uuid4().hex[:8]
    doc = allow_all_doc(tid)
    doc["client_quotas"] = [{"client_id": "burst", "quotas": {"connection_creation_rate": 2}}]
    t = Tenant(gateway_ok, tid, put_tenant(doc))
    _wait_admitted(t)
    token = t.token()
    time.sleep(1.1)  # the admission probe's connections are not client `burst`, but be clean

    def connect(client_id):
        c = RawClient(gateway_ok.env.port, client_id=client_id)
        assert c.handshake("PLAIN")[0] == 0
        err, text, _data, _lifetime = c.authenticate(plain_msg(token))
        return c, err, text

    results = [connect("burst") for _ in range(3)]
    codes = [err for _c, err, _t in results]
    assert codes[:2] == [0, 0], results
    assert codes[2] == 58 and "connection_creation_rate" in (results[2][2] or ""), results[2]
    calm, err, text = connect("calm")
    assert err == 0, text
    for c, _e, _t in results + [(calm, 0, None)]:
        c.close()
