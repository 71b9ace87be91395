"""confluent-kafka (librdkafka) through the gateway: produce/consume, idempotence,
transactions, classic and KIP-848 consumer groups, offsets, and the AdminClient."""
import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    ConsumerGroupType,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from clientlib import assert_no_pool_address, check_broker_address, make_payloads, sha_sorted, unique

TIMEOUT = 60


def base_conf(gateway, **extra):
    conf = {"bootstrap.servers": gateway.bootstrap, "socket.timeout.ms": 20000}
    conf.update(extra)
    return conf


def admin(gateway):
    return AdminClient(base_conf(gateway))


def wait_topic(gateway, topic, partitions, timeout=TIMEOUT):
    """Waits until metadata shows the topic with `partitions` partitions, each with a leader."""
    a = admin(gateway)
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        md = a.list_topics(timeout=10)
        t = md.topics.get(topic)
        last = t
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
            p.leader >= 0 and p.error is None for p in t.partitions.values()
        ):
            return md
        time.sleep(0.3)
    raise AssertionError(f"topic {topic} not ready with {partitions} partitions: {last}")


def eventually(fn, ok, what, timeout=30):
    """Calls fn() until ok(result): each broker's metadata cache follows the controller
    on its own, so a request landing on another broker may briefly see the old state."""
    deadline = time.time() + timeout
    while True:
        try:
            res, err = fn(), None
        except KafkaException as e:
            res, err = None, e
        if err is None and ok(res):
            return res
        assert time.time() < deadline, f"{what}: last result {res!r}, error {err!r}"
        time.sleep(0.3)


def create_topic(gateway, topic, partitions=3, config=None):
    a = admin(gateway)  # keep the handle alive until the future resolves
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=3, config=config or {})],
        operation_timeout=30,
        request_timeout=30,
    )
    fs[topic].result(timeout=TIMEOUT)
    return wait_topic(gateway, topic, partitions)


def produce(producer, topic, payloads, keyed=True, partition=None):
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)

    for i, v in enumerate(payloads):
        kw = {"key": f"k{i % 17}".encode()} if keyed else {}
        if partition is not None:
            kw["partition"] = partition
        while True:
            try:
                producer.produce(topic, value=v, on_delivery=cb, **kw)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(TIMEOUT)
    assert left == 0, f"{left} messages not delivered"
    assert not errors, errors


def drain(gateway, topic, isolation="read_uncommitted", timeout=TIMEOUT):
    """Reads every partition of `topic` from the beginning up to its current high
    watermark (ends included) and returns the messages as (partition, offset, key, value)."""
    c = Consumer(base_conf(
        gateway,
        **{
            "group.id": unique("drain"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        },
    ))
    try:
        md = eventually(lambda: c.list_topics(topic, timeout=10),
                        lambda md: md.topics[topic].error is None and md.topics[topic].partitions,
                        f"metadata for {topic}")
        parts = sorted(md.topics[topic].partitions)
        target = {}
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            target[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out = []
        reached = {p: target[p] == 0 for p in parts}
        deadline = time.time() + timeout
        while not all(reached.values()):
            assert time.time() < deadline, f"drain timed out: reached={reached} target={target} got={len(out)}"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= target[m.partition()]:
                        reached[m.partition()] = True
                    continue
                raise KafkaException(m.error())
            out.append((m.partition(), m.offset(), m.key(), m.value()))
            if m.offset() + 1 >= target[m.partition()]:
                reached[m.partition()] = True
        return out
    finally:
        c.close()


def test_produce_consume_checksum(gateway, topic_name):
    md = create_topic(gateway, topic_name, partitions=3)
    for b in md.brokers.values():
        check_broker_address(gateway, b.id, b.host, b.port)
    data = make_payloads(topic_name, 1000)
    p = Producer(base_conf(gateway, **{"acks": "all", "linger.ms": 5, "compression.type": "lz4"}))
    produce(p, topic_name, data)
    got = drain(gateway, topic_name)
    values = [v for _, _, _, v in got]
    assert len(values) == len(data)
    assert sha_sorted(values) == sha_sorted(data)
    # Same key -> same partition; all three partitions were used.
    by_key = {}
    for part, _, k, _ in got:
        by_key.setdefault(k, set()).add(part)
    assert all(len(s) == 1 for s in by_key.values()), by_key
    assert {part for part, _, _, _ in got} == {0, 1, 2}
    # Offsets per partition are dense from 0.
    for part in range(3):
        offs = sorted(o for pp, o, _, _ in got if pp == part)
        assert offs == list(range(len(offs)))


def test_idempotent_producer(gateway, topic_name):
    create_topic(gateway, topic_name, partitions=3)
    data = make_payloads(topic_name, 2000)
    p = Producer(base_conf(gateway, **{
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": 2,
        "batch.num.messages": 100,
    }))
    produce(p, topic_name, data)
    got = drain(gateway, topic_name)
    values = [v for _, _, _, v in got]
    assert len(values) == len(data) == len(set(values))
    assert sha_sorted(values) == sha_sorted(data)
    # Per-partition order is the produce order (idempotence keeps ordering with 5 in flight).
    index = {v: i for i, v in enumerate(data)}
    for part in range(3):
        seq = [index[v] for pp, o, _, v in sorted(got) if pp == part]
        assert seq == sorted(seq), f"partition {part} out of order"


def test_transactions_commit_and_abort(gateway, topic_name):
    create_topic(gateway, topic_name, partitions=3)
    committed1 = make_payloads(topic_name + "-c1", 150)
    aborted = make_payloads(topic_name + "-ab", 120)
    committed2 = make_payloads(topic_name + "-c2", 80)
    p = Producer(base_conf(gateway, **{"transactional.id": unique("txn"), "transaction.timeout.ms": 30000}))
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    produce(p, topic_name, committed1)
    p.commit_transaction(TIMEOUT)
    p.begin_transaction()
    produce(p, topic_name, aborted)
    p.abort_transaction(TIMEOUT)
    p.begin_transaction()
    produce(p, topic_name, committed2)
    p.commit_transaction(TIMEOUT)

    rc = [v for _, _, _, v in drain(gateway, topic_name, "read_committed")]
    assert len(rc) == len(committed1) + len(committed2)
    assert sha_sorted(rc) == sha_sorted(committed1 + committed2)

    ru = [v for _, _, _, v in drain(gateway, topic_name, "read_uncommitted")]
    assert len(ru) == len(committed1) + len(aborted) + len(committed2)
    assert sha_sorted(ru) == sha_sorted(committed1 + aborted + committed2)


def test_transactional_consume_transform_produce(gateway, topic_name):
    """send_offsets_to_transaction: output records and the group's offsets commit atomically."""
    src, dst = topic_name + "-src", topic_name + "-dst"
    create_topic(gateway, src, partitions=2)
    create_topic(gateway, dst, partitions=2)
    data = make_payloads(src, 300)
    produce(Producer(base_conf(gateway)), src, data)

    group = unique("eos")
    c = Consumer(base_conf(gateway, **{
        "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }))
    p = Producer(base_conf(gateway, **{"transactional.id": unique("eos-txn")}))
    p.init_transactions(TIMEOUT)
    c.subscribe([src])
    seen = []
    deadline = time.time() + TIMEOUT
    while len(seen) < len(data):
        assert time.time() < deadline, f"consumed {len(seen)}/{len(data)}"
        msgs = c.consume(num_messages=200, timeout=1.0)
        msgs = [m for m in msgs if not m.error()]
        if not msgs:
            continue
        p.begin_transaction()
        for m in msgs:
            p.produce(dst, key=m.key(), value=m.value().upper())
        seen.extend(m.value() for m in msgs)
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT)
        p.commit_transaction(TIMEOUT)
    committed = c.committed([TopicPartition(src, 0), TopicPartition(src, 1)], timeout=30)
    c.close()

    assert sha_sorted(seen) == sha_sorted(data)
    out = [v for _, _, _, v in drain(gateway, dst, "read_committed")]
    assert sha_sorted(out) == sha_sorted(d.upper() for d in data)
    hw = {}
    c2 = Consumer(base_conf(gateway, **{"group.id": unique("hw")}))
    for part in (0, 1):
        hw[part] = c2.get_watermark_offsets(TopicPartition(src, part), timeout=10)[1]
    c2.close()
    assert {tp.partition: tp.offset for tp in committed} == hw
    assert all(tp.error is None for tp in committed)


def _group_conf(gateway, group, protocol):
    conf = base_conf(gateway, **{
        "group.id": group,
        "group.protocol": protocol,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    if protocol == "classic":
        conf.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
    return conf


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_consumer_group_rebalance(gateway, topic_name, protocol):
    """Two members share a group: join splits the partitions, leave gives them back;
    every record is consumed exactly once by the group."""
    partitions = 4
    create_topic(gateway, topic_name, partitions=partitions)
    group = unique(f"grp-{protocol}")
    producer = Producer(base_conf(gateway, **{"acks": "all"}))
    consumed = {}  # value -> (member, partition)
    dupes = []

    def pump(name, c, timeout=0.3):
        msgs = c.consume(num_messages=500, timeout=timeout)
        got = 0
        for m in msgs:
            if m.error():
                raise KafkaException(m.error())
            if m.value() in consumed:
                dupes.append((name, m.value(), consumed[m.value()]))
            consumed[m.value()] = (name, m.partition())
            got += 1
        if got:
            c.commit(asynchronous=False)
        return got

    def parts_of(c):
        return {tp.partition for tp in c.assignment() if tp.topic == topic_name}

    def until(cond, what, members, timeout=TIMEOUT):
        deadline = time.time() + timeout
        while not cond():
            assert time.time() < deadline, f"timed out waiting for {what}: " + ", ".join(
                f"{n}={sorted(parts_of(c))}" for n, c in members) + f", consumed={len(consumed)}"
            for n, c in members:
                pump(n, c)

    all_parts = set(range(partitions))
    # Phase 1: one member owns everything.
    c1 = Consumer(_group_conf(gateway, group, protocol))
    c1.subscribe([topic_name])
    batch1 = make_payloads(topic_name + "-a", 200)
    produce(producer, topic_name, batch1)
    until(lambda: parts_of(c1) == all_parts and len(consumed) >= len(batch1), "c1 alone", [("c1", c1)])
    assert {m for m, _ in consumed.values()} == {"c1"}

    # Phase 2: a second member joins; the partitions are split between the two.
    c2 = Consumer(_group_conf(gateway, group, protocol))
    c2.subscribe([topic_name])
    members = [("c1", c1), ("c2", c2)]
    until(lambda: parts_of(c1) and parts_of(c2) and not (parts_of(c1) & parts_of(c2))
          and parts_of(c1) | parts_of(c2) == all_parts, "split between c1 and c2", members)
    split = {"c1": parts_of(c1), "c2": parts_of(c2)}

    a = admin(gateway)
    desc = a.describe_consumer_groups([group])[group].result(timeout=30)
    assert desc.type == (ConsumerGroupType.CONSUMER if protocol == "consumer" else ConsumerGroupType.CLASSIC)
    assert len(desc.members) == 2
    check_broker_address(gateway, desc.coordinator.id, desc.coordinator.host, desc.coordinator.port)
    described = set()
    for mem in desc.members:
        for tp in mem.assignment.topic_partitions:
            assert tp.topic == topic_name
            described.add(tp.partition)
    assert described == all_parts

    batch2 = make_payloads(topic_name + "-b", 400)
    produce(producer, topic_name, batch2)
    until(lambda: len(consumed) >= len(batch1) + len(batch2), "batch 2", members)
    for v in batch2:
        member, part = consumed[v]
        assert part in split[member], (member, part, split)
    assert {consumed[v][0] for v in batch2} == {"c1", "c2"}

    # Phase 3: c2 leaves; c1 gets every partition back and consumes the rest.
    c2.close()
    members = [("c1", c1)]
    until(lambda: parts_of(c1) == all_parts, "c1 to own all partitions again", members)
    batch3 = make_payloads(topic_name + "-c", 200)
    produce(producer, topic_name, batch3)
    until(lambda: len(consumed) >= len(batch1) + len(batch2) + len(batch3), "batch 3", members)
    assert {consumed[v][0] for v in batch3} == {"c1"}
    # A little longer: nothing more (no redelivery) may arrive.
    end = time.time() + 2
    while time.time() < end:
        pump("c1", c1)

    committed = c1.committed([TopicPartition(topic_name, p) for p in range(partitions)], timeout=30)
    hw = {p: c1.get_watermark_offsets(TopicPartition(topic_name, p), timeout=10)[1] for p in range(partitions)}
    c1.close()
    assert not dupes, dupes[:5]
    everything = batch1 + batch2 + batch3
    assert len(consumed) == len(everything)
    assert sha_sorted(consumed) == sha_sorted(everything)
    assert {tp.partition: tp.offset for tp in committed} == hw


def test_offsets_commit_and_fetch(gateway, topic_name):
    create_topic(gateway, topic_name, partitions=3)
    for part in range(3):
        produce(Producer(base_conf(gateway)), topic_name, make_payloads(f"{topic_name}-{part}", 10 + part), partition=part, keyed=False)
    group = unique("offs")
    c = Consumer(base_conf(gateway, **{"group.id": group, "enable.auto.commit": False}))
    want = [TopicPartition(topic_name, 0, 3), TopicPartition(topic_name, 1, 7, metadata="checkpoint-7"),
            TopicPartition(topic_name, 2, 12)]
    res = c.commit(offsets=want, asynchronous=False)
    assert all(tp.error is None for tp in res), res
    c.close()

    c2 = Consumer(base_conf(gateway, **{"group.id": group, "enable.auto.commit": False}))
    got = c2.committed([TopicPartition(topic_name, p) for p in range(3)], timeout=30)
    assert [(tp.partition, tp.offset, tp.error) for tp in got] == [(0, 3, None), (1, 7, None), (2, 12, None)]
    assert got[1].metadata == "checkpoint-7"
    # Resuming from the committed offsets delivers exactly the records after them.
    c2.subscribe([topic_name])
    got_offsets = []
    deadline = time.time() + TIMEOUT
    # Partition p holds 10+p records; partition 2 was committed at its end.
    expected = sorted([(0, o) for o in range(3, 10)] + [(1, o) for o in range(7, 11)])
    linger = None
    while linger is None or time.time() < linger:
        assert time.time() < deadline, got_offsets
        m = c2.poll(0.3)
        if m is not None and not m.error():
            got_offsets.append((m.partition(), m.offset()))
        if linger is None and len(got_offsets) >= len(expected):
            linger = time.time() + 1.5
    c2.close()
    assert sorted(got_offsets) == expected

    # The admin view of the same group agrees.
    from confluent_kafka import ConsumerGroupTopicPartitions
    a = admin(gateway)
    r = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    assert {tp.partition: tp.offset for tp in r.topic_partitions if tp.topic == topic_name} == {0: 3, 1: 7, 2: 12}


def test_admin_client(gateway, topic_name):
    a = admin(gateway)
    fs = a.create_topics([NewTopic(topic_name, num_partitions=3, replication_factor=3,
                                   config={"retention.ms": "86400000"})], operation_timeout=30)
    fs[topic_name].result(timeout=TIMEOUT)
    # Creating it again is TOPIC_ALREADY_EXISTS.
    fs = a.create_topics([NewTopic(topic_name, num_partitions=3, replication_factor=3)], operation_timeout=30)
    with pytest.raises(KafkaException) as ei:
        fs[topic_name].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    md = wait_topic(gateway, topic_name, 3)
    assert topic_name in md.topics
    for b in md.brokers.values():
        check_broker_address(gateway, b.id, b.host, b.port)
    for p in md.topics[topic_name].partitions.values():
        assert len(p.replicas) == 3 and len(set(p.replicas)) == 3
        assert p.leader in p.replicas

    td = eventually(lambda: a.describe_topics(TopicCollection([topic_name]))[topic_name].result(timeout=30),
                    lambda td: len(td.partitions) == 3, "describe_topics shows the new topic")
    assert td.name == topic_name
    assert len(td.partitions) == 3
    assert td.topic_id is not None and str(td.topic_id) != "AAAAAAAAAAAAAAAAAAAAAA"
    for p in td.partitions:
        assert len(p.replicas) == 3 and len(p.isr) >= 2
        check_broker_address(gateway, p.leader.id, p.leader.host, p.leader.port)

    cluster = a.describe_cluster().result(timeout=30)
    assert len(cluster.nodes) >= 3
    for n in cluster.nodes:
        check_broker_address(gateway, n.id, n.host, n.port)
    check_broker_address(gateway, cluster.controller.id, cluster.controller.host, cluster.controller.port)

    res = ConfigResource(ResourceType.TOPIC, topic_name)
    before = a.describe_configs([res])[res].result(timeout=30)
    assert before["retention.ms"].value == "86400000"
    alter = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([alter])[alter].result(timeout=30)
    deadline = time.time() + 30
    while True:
        after = a.describe_configs([res])[res].result(timeout=30)
        if after["retention.ms"].value == "3600000" or time.time() > deadline:
            break
        time.sleep(0.3)
    assert after["retention.ms"].value == "3600000"
    assert after["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert after["cleanup.policy"].value == "delete"

    a.create_partitions([NewPartitions(topic_name, 5)], operation_timeout=30)[topic_name].result(timeout=TIMEOUT)
    wait_topic(gateway, topic_name, 5)
    td = eventually(lambda: a.describe_topics(TopicCollection([topic_name]))[topic_name].result(timeout=30),
                    lambda td: len(td.partitions) == 5, "describe_topics shows 5 partitions")
    assert sorted(p.id for p in td.partitions) == [0, 1, 2, 3, 4]

    # Produce to a new partition works.
    produce(Producer(base_conf(gateway)), topic_name, [b"to-partition-4"], keyed=False, partition=4)

    a.delete_topics([topic_name], operation_timeout=30)[topic_name].result(timeout=TIMEOUT)
    deadline = time.time() + 30
    while topic_name in a.list_topics(timeout=10).topics:
        assert time.time() < deadline, "deleted topic still listed"
        time.sleep(0.3)

    def describe_deleted():
        try:
            a.describe_topics(TopicCollection([topic_name]))[topic_name].result(timeout=30)
            return None
        except KafkaException as e:
            return e.args[0].code()
    eventually(describe_deleted, lambda code: code == KafkaError.UNKNOWN_TOPIC_OR_PART,
               "describe_topics of the deleted topic fails with UNKNOWN_TOPIC_OR_PART")


def test_metadata_has_no_pool_addresses(gateway, topic_name):
    create_topic(gateway, topic_name, partitions=3)
    md = admin(gateway).list_topics(timeout=10)
    text = repr([(b.id, b.host, b.port) for b in md.brokers.values()]) + md.orig_broker_name
    assert len(md.brokers) >= 3
    for b in md.brokers.values():
        check_broker_address(gateway, b.id, b.host, b.port)
    assert_no_pool_address(gateway, text)
