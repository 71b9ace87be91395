"""kafka-python (pure Python client) through the gateway: produce/consume, consumer
group commits, and KafkaAdminClient topic administration."""
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from clientlib import check_broker_address, make_payloads, sha_sorted, unique

TIMEOUT = 60


def conn(gateway):
    """Connection settings shared by every client in this file."""
    return {"bootstrap_servers": gateway.bootstrap, "request_timeout_ms": 30000}


def admin(gateway):
    return KafkaAdminClient(**conn(gateway), client_id=unique("kp-admin"))


def wait_partitions(gateway, topic, n, timeout=TIMEOUT):
    """Waits until the topic has n partitions, each with a leader."""
    a = admin(gateway)
    try:
        deadline = time.time() + timeout
        while True:
            a.wait_for_topics([topic], timeout_ms=timeout * 1000)
            [desc] = a.describe_topics([topic])
            if desc["error_code"] == 0 and len(desc["partitions"]) == n and all(
                    p["error_code"] == 0 and p["leader_id"] >= 0 for p in desc["partitions"]):
                return desc
            assert time.time() < deadline, desc
            time.sleep(0.3)
    finally:
        a.close()


def create_topic(gateway, topic, partitions=3):
    a = admin(gateway)
    try:
        res = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)], timeout_ms=30000)
        [t] = res["topics"]
        assert (t["name"], t["error_code"], t["num_partitions"], t["replication_factor"]) == (topic, 0, partitions, 3)
    finally:
        a.close()
    wait_partitions(gateway, topic, partitions)


def produce(gateway, topic, payloads, **kw):
    p = KafkaProducer(**conn(gateway), acks="all", linger_ms=5, **kw)
    futures = [p.send(topic, key=f"k{i % 13}".encode(), value=v) for i, v in enumerate(payloads)]
    p.flush(timeout=TIMEOUT)
    metas = [f.get(timeout=TIMEOUT) for f in futures]
    p.close(timeout=10)
    return metas


def consume_n(consumer, n, timeout=TIMEOUT):
    out = []
    deadline = time.time() + timeout
    while len(out) < n:
        assert time.time() < deadline, f"consumed {len(out)}/{n}"
        for tp, recs in consumer.poll(timeout_ms=500).items():
            out.extend(recs)
    return out


def test_produce_consume_checksum(gateway, topic_name):
    create_topic(gateway, topic_name, partitions=3)
    data = make_payloads(topic_name, 600)
    metas = produce(gateway, topic_name, data, compression_type="gzip")
    assert {m.partition for m in metas} == {0, 1, 2}
    assert all(m.topic == topic_name for m in metas)

    c = KafkaConsumer(**conn(gateway), enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=5000)
    tps = [TopicPartition(topic_name, p) for p in range(3)]
    c.assign(tps)
    c.seek_to_beginning()
    recs = consume_n(c, len(data))
    # Nothing beyond the produced records.
    extra = c.poll(timeout_ms=1500)
    end = c.end_offsets(tps)
    c.close()
    assert not any(extra.values())
    values = [r.value for r in recs]
    assert len(values) == len(data)
    assert sha_sorted(values) == sha_sorted(data)
    # Each record sits where the producer was told it went.
    placed = {(m.partition, m.offset) for m in metas}
    assert {(r.partition, r.offset) for r in recs} == placed
    assert sum(end.values()) == len(data)


def test_consumer_group_commit(gateway, topic_name):
    create_topic(gateway, topic_name, partitions=3)
    data = make_payloads(topic_name, 300)
    produce(gateway, topic_name, data)
    group = unique("kp-grp")
    c = KafkaConsumer(topic_name, **conn(gateway), group_id=group,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=10000, heartbeat_interval_ms=1000)
    recs = consume_n(c, len(data))
    assert c.assignment() == {TopicPartition(topic_name, p) for p in range(3)}
    c.commit()
    tps = [TopicPartition(topic_name, p) for p in range(3)]
    end = c.end_offsets(tps)
    committed = {tp: c.committed(tp) for tp in tps}
    c.close()
    assert sha_sorted(r.value for r in recs) == sha_sorted(data)
    assert committed == end

    # More data: a new member of the same group resumes after the commit.
    more = make_payloads(topic_name + "-more", 90)
    produce(gateway, topic_name, more)
    c2 = KafkaConsumer(topic_name, **conn(gateway), group_id=group,
                       enable_auto_commit=False, auto_offset_reset="earliest",
                       session_timeout_ms=10000, heartbeat_interval_ms=1000)
    recs2 = consume_n(c2, len(more))
    extra = c2.poll(timeout_ms=1500)
    c2.commit()
    c2.close()
    assert not any(extra.values())
    assert sha_sorted(r.value for r in recs2) == sha_sorted(more)

    a = admin(gateway)
    try:
        [listed] = [g for g in a.list_groups() if g["group_id"] == group]
        assert listed["protocol_type"] == "consumer" and listed["group_type"] == "classic"
        offs = a.list_group_offsets(group)[group]
        assert {tp.partition: om.offset for tp, om in offs.items() if tp.topic == topic_name} == {
            tp.partition: off + sum(1 for r in recs2 if r.partition == tp.partition) for tp, off in end.items()}
    finally:
        a.close()


def test_admin_create_list_delete(gateway, topic_name):
    a = admin(gateway)
    try:
        a.create_topics([NewTopic(topic_name, num_partitions=4, replication_factor=3,
                                  topic_configs={"retention.ms": "7200000"})], timeout_ms=30000)
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(topic_name, num_partitions=4, replication_factor=3)], timeout_ms=30000)
        deadline = time.time() + TIMEOUT
        while topic_name not in a.list_topics():
            assert time.time() < deadline
            time.sleep(0.3)
        desc = wait_partitions(gateway, topic_name, 4)
        assert desc["name"] == topic_name
        assert desc["error_code"] == 0
        assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1, 2, 3]
        for p in desc["partitions"]:
            assert p["error_code"] == 0
            assert len(set(p["replica_nodes"])) == 3 and p["leader_id"] in p["replica_nodes"]
        cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
        assert cfg["topic"][topic_name]["retention.ms"]["value"] == "7200000"
        assert cfg["topic"][topic_name]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        cluster = a.describe_cluster()
        live = [b for b in cluster["brokers"] if not b.get("is_fenced")]
        assert len(live) >= 3
        for b in cluster["brokers"]:
            check_broker_address(gateway, b["broker_id"], b["host"], b["port"])

        a.delete_topics([topic_name], timeout_ms=30000)
        deadline = time.time() + TIMEOUT
        while topic_name in a.list_topics():
            assert time.time() < deadline, "deleted topic still listed"
            time.sleep(0.3)
    finally:
        a.close()
