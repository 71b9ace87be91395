"""Classic consumer groups as a tenant: the topic names inside the group's member payloads
(ConsumerProtocol subscriptions and assignments) are pool names in the pool and the
tenant's own names through the gateway (SPEC 4).

The pool's group coordinator reads those payloads itself (KIP-496 expiry of unsubscribed
topics' offsets, classic to KIP-848 online migration), so it must see `<tenant>.<topic>`.
The proof: described through the pool directly, the members' assignments name
`<tenant>.<topic>`; described by the tenant through the gateway, `<topic>`.
"""
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import POOL_BOOTSTRAP
from tenant_env import new_tenant, tenant_gateway  # noqa: F401 (fixtures)

TIMEOUT = 60
PARTITIONS = 4


def _create_topic(tenant, topic):
    a = tenant.admin()
    a.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)],
                    operation_timeout=30, request_timeout=30)[topic].result(timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    while True:
        t = a.list_topics(topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == PARTITIONS and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        assert time.time() < deadline, f"topic {topic} not ready: {t}"
        time.sleep(0.3)


def _described_assignment(admin, group):
    """{member client id: sorted [(topic, partition)]} of a described group."""
    d = admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
    return d, {m.client_id: sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
               for m in d.members}


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_classic_group_payloads_name_pool_topics(new_tenant, strategy):  # noqa: F811
    tenant = new_tenant()
    topic = "cg-" + uuid.uuid4().hex[:8]
    group = "grp-" + uuid.uuid4().hex[:8]
    _create_topic(tenant, topic)

    producer = Producer(tenant.confluent_config())
    for i in range(40):
        producer.produce(topic, value=b"v%d" % i, partition=i % PARTITIONS)
    assert producer.flush(30) == 0

    consumers = [Consumer(tenant.confluent_config(**{
        "group.id": group, "group.protocol": "classic", "client.id": f"member-{i}",
        "partition.assignment.strategy": strategy, "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})) for i in range(2)]
    try:
        for c in consumers:
            c.subscribe([topic])
        # Both members hold partitions, and all partitions are held: the group went through
        # JoinGroup (subscriptions) and SyncGroup (assignments) through the gateway.
        deadline = time.time() + TIMEOUT
        while True:
            for c in consumers:
                c.poll(0.2)
            held = [c.assignment() for c in consumers]
            parts = sorted(tp.partition for a in held for tp in a)
            if all(held) and parts == list(range(PARTITIONS)):
                break
            assert time.time() < deadline, f"group {group} never assigned every partition: {held}"
        for a in held:
            assert {tp.topic for a in held for tp in a} == {topic}, f"client sees assignments {held}"

        # The pool's coordinator holds the assignment bytes with pool names. Described
        # until stable: members may still be finishing a rebalance.
        pool_group = tenant.pool_name(group)
        pool_admin = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
        deadline = time.time() + TIMEOUT
        while True:
            for c in consumers:
                c.poll(0.1)
            d, in_pool = _described_assignment(pool_admin, pool_group)
            pairs = sorted(p for ps in in_pool.values() for p in ps)
            if len(in_pool) == 2 and len(pairs) == PARTITIONS:
                break
            assert time.time() < deadline, f"pool's view of {pool_group} never settled: {d.state} {in_pool}"
        assert {t for t, _ in pairs} == {tenant.pool_name(topic)}, (
            f"the pool's coordinator holds assignments naming {in_pool}; expected only {tenant.pool_name(topic)!r}")
        assert [p for _, p in pairs] == list(range(PARTITIONS))

        # The tenant, through the gateway, sees the same assignment under its own names.
        d, seen = _described_assignment(tenant.admin(), group)
        assert len(seen) == 2, f"tenant sees members {seen}"
        assert sorted(p for ps in seen.values() for p in ps) == [(topic, p) for p in range(PARTITIONS)], seen
        assert sorted(seen) == ["member-0", "member-1"], f"client ids not in the tenant's view: {sorted(seen)}"
    finally:
        for c in consumers:
            c.close()
    assert tenant.gateway.alive(), tenant.gateway.log()[-5000:]
