"""kcat (librdkafka CLI) through the gateway: metadata, keyed produce, consume, groups."""
import json
import shutil
import subprocess
import time

from conftest import kafka_tool
from clientlib import assert_no_pool_address, check_broker_address, make_payloads, sha_sorted, unique

KCAT = shutil.which("kcat") or shutil.which("kafkacat") or "kcat"


def kcat(gateway, *args, input=None, timeout=60):
    res = subprocess.run(
        [KCAT, "-b", gateway.bootstrap, "-X", "socket.timeout.ms=20000", *map(str, args)],
        capture_output=True, timeout=timeout, input=input,
    )
    assert res.returncode == 0, f"kcat {args} failed ({res.returncode}):\n{res.stderr.decode(errors='replace')[-3000:]}"
    return res


def create_topic(gateway, topic, partitions=3):
    kafka_tool("kafka-topics", "--bootstrap-server", gateway.bootstrap, "--create", "--topic", topic,
               "--partitions", partitions, "--replication-factor", 3)


def produce_keyed(gateway, topic, payloads):
    lines = b"".join(b"k%d:%s\n" % (i % 11, v) for i, v in enumerate(payloads))
    kcat(gateway, "-P", "-t", topic, "-K:", "-X", "acks=all", "-X", "enable.idempotence=true", input=lines)


def parse_records(out: bytes):
    """Records printed with -f '%p\\t%o\\t%k\\t%s\\n'."""
    recs = []
    for line in out.splitlines():
        if not line:
            continue
        p, o, k, v = line.split(b"\t", 3)
        recs.append((int(p), int(o), k, v))
    return recs


FMT = r"%p\t%o\t%k\t%s\n"


def test_metadata_lists_only_gateway(gateway, topic_name):
    create_topic(gateway, topic_name)
    # Brokers learn a new topic from the controller on their own schedule: ask until the
    # broker behind the bootstrap connection lists it with a leader for every partition.
    deadline = time.time() + 30
    while True:
        res = kcat(gateway, "-L", "-J", "-t", topic_name)
        md = json.loads(res.stdout)
        ts = [t for t in md["topics"] if t["topic"] == topic_name and len(t["partitions"]) == 3
              and all(p["leader"] >= 0 for p in t["partitions"])]
        if ts:
            break
        assert time.time() < deadline, res.stdout
        time.sleep(0.3)
    assert len(md["brokers"]) >= 3, md["brokers"]
    for b in md["brokers"]:
        host, port = b["name"].rsplit(":", 1)
        check_broker_address(gateway, b["id"], host, int(port))
    [t] = [t for t in md["topics"] if t["topic"] == topic_name]
    assert len(t["partitions"]) == 3
    ids = {b["id"] for b in md["brokers"]}
    for p in t["partitions"]:
        assert p["leader"] in ids
        assert len(p["replicas"]) == 3
    # Plain-text listing too: no pool address anywhere.
    text = "".join(kcat(gateway, *a).stdout.decode() for a in (["-L"], ["-L", "-t", topic_name])) + res.stdout.decode()
    assert_no_pool_address(gateway, text)
    assert topic_name in text


def test_produce_consume_keyed(gateway, topic_name):
    create_topic(gateway, topic_name)
    data = make_payloads(topic_name, 500)
    produce_keyed(gateway, topic_name, data)
    out = kcat(gateway, "-C", "-t", topic_name, "-o", "beginning", "-e", "-q", "-f", FMT).stdout
    recs = parse_records(out)
    values = [v for _, _, _, v in recs]
    assert len(values) == len(data)
    assert sha_sorted(values) == sha_sorted(data)
    # Exact records: every value with the key it was produced with.
    assert sorted((k, v) for _, _, k, v in recs) == sorted((b"k%d" % (i % 11), v) for i, v in enumerate(data))
    # Keyed partitioning: one partition per key, all three partitions used, dense offsets.
    part_of = {}
    for p, _, k, _ in recs:
        part_of.setdefault(k, set()).add(p)
    assert all(len(s) == 1 for s in part_of.values())
    assert {p for p, _, _, _ in recs} == {0, 1, 2}
    for part in range(3):
        offs = sorted(o for p, o, _, _ in recs if p == part)
        assert offs == list(range(len(offs)))
    # Reading one partition only returns exactly that partition's records.
    out1 = kcat(gateway, "-C", "-t", topic_name, "-p", 1, "-o", "beginning", "-e", "-q", "-f", FMT).stdout
    assert sorted(parse_records(out1)) == sorted(r for r in recs if r[0] == 1)


def test_consumer_group(gateway, topic_name):
    create_topic(gateway, topic_name)
    group = unique("kcat-grp")
    first = make_payloads(topic_name + "-1", 200)
    produce_keyed(gateway, topic_name, first)
    out = kcat(gateway, "-G", group, topic_name, "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", FMT,
               "-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100", timeout=90).stdout
    got = [v for _, _, _, v in parse_records(out)]
    assert sha_sorted(got) == sha_sorted(first)

    # The group committed its offsets: a second run only sees the new records.
    second = make_payloads(topic_name + "-2", 120)
    produce_keyed(gateway, topic_name, second)
    out = kcat(gateway, "-G", group, topic_name, "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", FMT,
               timeout=90).stdout
    got2 = [v for _, _, _, v in parse_records(out)]
    assert len(got2) == len(second)
    assert sha_sorted(got2) == sha_sorted(second)

    # And the Kafka CLI, through the same bootstrap, sees the group at the log end.
    res = kafka_tool("kafka-consumer-groups", "--bootstrap-server", gateway.bootstrap, "--describe",
                     "--group", group)
    rows = [line.split() for line in res.stdout.splitlines() if topic_name in line]
    assert len(rows) == 3, res.stdout
    for row in rows:
        # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
        assert row[3] == row[4] and row[5] == "0", res.stdout
    assert_no_pool_address(gateway, res.stdout)
