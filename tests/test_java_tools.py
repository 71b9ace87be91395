"""Apache Kafka's own CLI tools through the gateway: kafka-topics, kafka-configs,
kafka-consumer-groups, console producer/consumer, producer/consumer perf tests and the
verifiable producer/consumer. Every tool gets only `gateway.bootstrap`."""
import json
import re
import time

import pytest

from conftest import POOL_BOOTSTRAP, kafka_tool
from jvm import gateway_stays_up, java_helpers, run_java  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("gateway_stays_up")

BROKER_IDS = {1, 2, 3}


def wait_until(fn, timeout, what):
    """Polls fn() until it returns a truthy value; fails with the last value seen."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except AssertionError as e:  # a tool that failed: keep its output as evidence
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def create_topic(bootstrap, topic, partitions=3, rf=3, *extra):
    res = kafka_tool("kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", topic,
                     "--partitions", partitions, "--replication-factor", rf, *extra)
    assert f"Created topic {topic}." in res.stdout, res.stdout
    return res


def describe_topic(bootstrap, topic):
    """kafka-topics --describe -> (header fields, {partition: {leader, replicas, isr}})."""
    res = kafka_tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic)
    header, parts = None, {}
    for line in res.stdout.splitlines():
        fields = dict(re.findall(r"(\w+): ?(\S*)", line))
        if "PartitionCount" in fields:
            header = fields
        elif "Partition" in fields:
            parts[int(fields["Partition"])] = {
                "leader": int(fields["Leader"]),
                "replicas": [int(x) for x in fields["Replicas"].split(",") if x],
                "isr": [int(x) for x in fields["Isr"].split(",") if x],
            }
    assert header is not None, res.stdout
    return header, parts


def assert_partitions_sane(parts, count, rf):
    assert sorted(parts) == list(range(count)), parts
    for p, info in parts.items():
        assert len(info["replicas"]) == rf and len(set(info["replicas"])) == rf, (p, info)
        assert info["leader"] in info["replicas"], (p, info)
        assert info["leader"] in info["isr"], (p, info)
        assert set(info["isr"]) <= set(info["replicas"]), (p, info)


def topic_list(bootstrap):
    return kafka_tool("kafka-topics", "--bootstrap-server", bootstrap, "--list").stdout.split()


def end_offsets(bootstrap, topic):
    """kafka-get-offsets -> {partition: end offset}."""
    res = kafka_tool("kafka-get-offsets", "--bootstrap-server", bootstrap, "--topic", topic)
    out = {}
    for line in res.stdout.split():
        t, p, o = line.rsplit(":", 2)
        assert t == topic, line
        out[int(p)] = int(o)
    return out


def describe_group(bootstrap, group):
    """kafka-consumer-groups --describe -> {partition: (current offset or None, log end, lag or None)}."""
    res = kafka_tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group)
    rows = {}
    header = None
    for line in res.stdout.splitlines():
        cols = line.split()
        if not cols:
            continue
        if cols[0] == "GROUP":
            header = cols
            continue
        if header and len(cols) >= 6 and cols[0] == group:
            row = dict(zip(header, cols))
            num = lambda v: None if v == "-" else int(v)  # noqa: E731
            rows[int(row["PARTITION"])] = (num(row["CURRENT-OFFSET"]), num(row["LOG-END-OFFSET"]), num(row["LAG"]))
    return rows, res.stdout


def console_produce(bootstrap, topic, values):
    """Each value keyed by itself, so records spread over every partition (without keys
    the sticky partitioner may put a small batch into one partition)."""
    kafka_tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
               "--producer-property", "acks=all", "--producer-property", "enable.idempotence=true",
               "--property", "parse.key=true", "--property", "key.separator=\t",
               input="".join(f"{v}\t{v}\n" for v in values), timeout=120)


def console_consume(bootstrap, topic, group, count, from_beginning=False):
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--group", group,
            "--max-messages", count, "--timeout-ms", 30000]
    if from_beginning:
        args.append("--from-beginning")
    res = kafka_tool("kafka-console-consumer", *args, timeout=120, check=False)
    vals = [v for v in res.stdout.splitlines() if v]
    assert len(vals) == count, f"console consumer got {len(vals)}/{count}:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return vals


# ---------------------------------------------------------------------------- topics


def test_kafka_topics_lifecycle(gateway, topic_name):
    bs = gateway.bootstrap
    create_topic(bs, topic_name, 3, 3)

    dup = kafka_tool("kafka-topics", "--bootstrap-server", bs, "--create", "--topic", topic_name,
                     "--partitions", 3, "--replication-factor", 3, check=False)
    assert dup.returncode != 0 and "already exists" in dup.stdout + dup.stderr, (dup.stdout, dup.stderr[-2000:])

    assert topic_name in topic_list(bs)

    header, parts = describe_topic(bs, topic_name)
    assert header["Topic"] == topic_name
    assert header["PartitionCount"] == "3" and header["ReplicationFactor"] == "3", header
    assert_partitions_sane(parts, 3, 3)
    assert {r for i in parts.values() for r in i["replicas"]} <= BROKER_IDS | {4}, parts

    kafka_tool("kafka-topics", "--bootstrap-server", bs, "--alter", "--topic", topic_name, "--partitions", 6)

    def six():
        h, p = describe_topic(bs, topic_name)
        return (h, p) if h["PartitionCount"] == "6" and len(p) == 6 else None

    header, parts = wait_until(six, 30, "6 partitions after --alter")
    assert_partitions_sane(parts, 6, 3)
    assert header["TopicId"] and header["TopicId"] != "0000000000000000000000"

    shrink = kafka_tool("kafka-topics", "--bootstrap-server", bs, "--alter", "--topic", topic_name,
                        "--partitions", 4, check=False)
    assert shrink.returncode != 0, shrink.stdout
    assert "InvalidPartitionsException" in shrink.stdout + shrink.stderr, shrink.stderr[-2000:]
    assert describe_topic(bs, topic_name)[0]["PartitionCount"] == "6"

    # Metadata the client sees through the gateway also has 6 partitions with end offsets.
    assert sorted(end_offsets(bs, topic_name)) == list(range(6))

    kafka_tool("kafka-topics", "--bootstrap-server", bs, "--delete", "--topic", topic_name)
    wait_until(lambda: topic_name not in topic_list(bs), 30, "topic gone from --list")
    gone = kafka_tool("kafka-topics", "--bootstrap-server", bs, "--describe", "--topic", topic_name, check=False)
    assert gone.returncode != 0 and "does not exist" in gone.stdout + gone.stderr, (gone.stdout, gone.stderr[-2000:])


def test_kafka_configs_topic_retention(gateway, topic_name):
    bs = gateway.bootstrap
    create_topic(bs, topic_name, 2, 3, "--config", "retention.ms=86400000")

    def dynamic_configs():
        res = kafka_tool("kafka-configs", "--bootstrap-server", bs, "--describe",
                         "--entity-type", "topics", "--entity-name", topic_name)
        assert f"Dynamic configs for topic {topic_name} are:" in res.stdout, res.stdout
        return dict(re.findall(r"^\s+([a-z.]+)=(\S+) sensitive=", res.stdout, re.M))

    assert dynamic_configs() == {"retention.ms": "86400000"}

    res = kafka_tool("kafka-configs", "--bootstrap-server", bs, "--alter", "--entity-type", "topics",
                     "--entity-name", topic_name, "--add-config", "retention.ms=3600000,retention.bytes=1048576")
    assert f"Completed updating config for topic {topic_name}." in res.stdout, res.stdout
    assert dynamic_configs() == {"retention.ms": "3600000", "retention.bytes": "1048576"}

    # --all shows the effective value with its synonym source.
    res = kafka_tool("kafka-configs", "--bootstrap-server", bs, "--describe", "--all",
                     "--entity-type", "topics", "--entity-name", topic_name)
    assert re.search(r"^\s+retention\.ms=3600000 sensitive=false synonyms=\{DYNAMIC_TOPIC_CONFIG:retention\.ms=3600000",
                     res.stdout, re.M), res.stdout
    assert re.search(r"^\s+cleanup\.policy=delete ", res.stdout, re.M), res.stdout

    res = kafka_tool("kafka-configs", "--bootstrap-server", bs, "--alter", "--entity-type", "topics",
                     "--entity-name", topic_name, "--delete-config", "retention.bytes")
    assert dynamic_configs() == {"retention.ms": "3600000"}

    bad = kafka_tool("kafka-configs", "--bootstrap-server", bs, "--alter", "--entity-type", "topics",
                     "--entity-name", topic_name, "--add-config", "retention.ms=notanumber", check=False)
    assert bad.returncode != 0, bad.stdout
    assert dynamic_configs() == {"retention.ms": "3600000"}

    header, _ = describe_topic(bs, topic_name)
    assert "retention.ms=3600000" in header["Configs"].split(","), header


# ---------------------------------------------------------------------------- groups


def test_kafka_consumer_groups_lag_and_reset(gateway, topic_name):
    bs = gateway.bootstrap
    group = f"g-{topic_name}"
    create_topic(bs, topic_name, 3, 3)
    first = [f"m-{i}" for i in range(300)]
    console_produce(bs, topic_name, first)
    ends = end_offsets(bs, topic_name)
    assert sum(ends.values()) == 300 and all(ends.values()), ends

    got = console_consume(bs, topic_name, group, 300, from_beginning=True)
    assert sorted(got) == sorted(first)

    res = kafka_tool("kafka-consumer-groups", "--bootstrap-server", bs, "--list")
    assert group in res.stdout.split(), res.stdout

    rows, out = describe_group(bs, group)
    assert sorted(rows) == [0, 1, 2], out
    assert sum(r[0] for r in rows.values()) == 300, out
    assert all(r[0] == r[1] and r[2] == 0 for r in rows.values()), out

    second = [f"n-{i}" for i in range(120)]
    console_produce(bs, topic_name, second)
    ends = end_offsets(bs, topic_name)
    rows, out = describe_group(bs, group)
    assert {p: r[1] for p, r in rows.items()} == ends, out
    assert sum(r[2] for r in rows.values()) == 120, out
    assert all(r[2] == r[1] - r[0] for r in rows.values()), out

    res = kafka_tool("kafka-consumer-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", group,
                     "--topic", topic_name, "--to-earliest", "--execute")
    new_offsets = {}
    for line in res.stdout.splitlines():
        cols = line.split()
        if len(cols) == 4 and cols[0] == group and cols[1] == topic_name:
            new_offsets[int(cols[2])] = int(cols[3])
    assert new_offsets == {0: 0, 1: 0, 2: 0}, res.stdout

    rows, out = describe_group(bs, group)
    assert {p: r[0] for p, r in rows.items()} == {0: 0, 1: 0, 2: 0}, out
    assert sum(r[2] for r in rows.values()) == 420, out

    again = console_consume(bs, topic_name, group, 420)
    assert sorted(again) == sorted(first + second)
    rows, out = describe_group(bs, group)
    assert all(r[2] == 0 for r in rows.values()) and sum(r[0] for r in rows.values()) == 420, out

    res = kafka_tool("kafka-consumer-groups", "--bootstrap-server", bs, "--delete", "--group", group)
    assert "successful" in res.stdout, res.stdout
    res = kafka_tool("kafka-consumer-groups", "--bootstrap-server", bs, "--list")
    assert group not in res.stdout.split(), res.stdout


# ---------------------------------------------------------------------------- perf tools


def test_producer_and_consumer_performance(gateway, topic_name, java_helpers):
    bs = gateway.bootstrap
    n = 200_000
    create_topic(bs, topic_name, 6, 3)
    res = kafka_tool("kafka-producer-perf-test", "--topic", topic_name, "--num-records", n, "--record-size", 100,
                     "--throughput", -1, "--producer-props", f"bootstrap.servers={bs}", "acks=all",
                     "linger.ms=5", "batch.size=65536", timeout=300)
    final = [l for l in res.stdout.splitlines() if "records sent" in l and "99.9th" in l]
    assert final, res.stdout[-2000:]
    sent = int(final[-1].split()[0])
    assert sent == n, final[-1]
    assert "Exception" not in res.stderr, res.stderr[-3000:]

    ends = end_offsets(bs, topic_name)
    assert sorted(ends) == list(range(6)) and sum(ends.values()) == n, ends

    res = kafka_tool("kafka-consumer-perf-test", "--bootstrap-server", bs, "--topic", topic_name,
                     "--messages", n, "--timeout", 30000, "--group", f"perf-{topic_name}", timeout=300)
    lines = [l for l in res.stdout.splitlines() if l.strip()]
    hdr = [h.strip() for h in lines[0].split(",")]
    vals = dict(zip(hdr, [v.strip() for v in lines[-1].split(",")]))
    assert int(vals["data.consumed.in.nMsg"]) == n, res.stdout
    assert float(vals["data.consumed.in.MB"]) == pytest.approx(n * 100 / 1024 / 1024, abs=0.001), res.stdout

    # Byte-exact: per-partition count and CRC of every record read through the gateway equal
    # those read straight from the pool.
    def summary(bootstrap):
        _, out = run_java(java_helpers, "Dump", "--bootstrap", bootstrap, "--topic", topic_name, "--summary",
                          "--timeout-ms", 150000, timeout=180)
        assert out[-1] == f"done total={n}", out[-10:]
        return sorted(l for l in out if l.startswith("sum "))

    via_gateway = summary(bs)
    assert len(via_gateway) == 6
    assert via_gateway == summary(POOL_BOOTSTRAP)


# ---------------------------------------------------------------------------- verifiable


def parse_json_lines(text):
    evs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            evs.append(json.loads(line))
    return evs


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_verifiable_producer_and_consumer(gateway, topic_name, tmp_path, protocol):
    bs = gateway.bootstrap
    n = 5000
    create_topic(bs, topic_name, 3, 3)
    cfg = tmp_path / "producer.properties"
    cfg.write_text("enable.idempotence=true\nretries=2147483647\nmax.in.flight.requests.per.connection=5\nlinger.ms=5\n")
    res = kafka_tool("kafka-verifiable-producer", "--bootstrap-server", bs, "--topic", topic_name,
                     "--max-messages", n, "--acks", -1, "--producer.config", cfg, timeout=180)
    evs = parse_json_lines(res.stdout)
    acked = {}
    for e in evs:
        if e["name"] == "producer_send_success":
            assert e["value"] not in acked, f"value {e['value']} acked twice"
            acked[e["value"]] = (e["partition"], e["offset"])
    errors = [e for e in evs if e["name"] == "producer_send_error"]
    tool = [e for e in evs if e["name"] == "tool_data"]
    assert not errors, errors[:5]
    assert tool and tool[-1]["sent"] == n and tool[-1]["acked"] == n, tool
    assert set(acked) == {str(i) for i in range(n)}
    assert len(set(acked.values())) == n, "two values acknowledged at the same offset"

    group = f"vg-{topic_name}"
    args = ["--bootstrap-server", bs, "--topic", topic_name, "--group-id", group, "--max-messages", n,
            "--verbose", "--reset-policy", "earliest", "--group-protocol", protocol]
    res = kafka_tool("kafka-verifiable-consumer", *args, timeout=180)
    evs = parse_json_lines(res.stdout)
    names = [e["name"] for e in evs]
    assert "startup_complete" in names and "partitions_assigned" in names, names[:20]
    assert names[-1] == "shutdown_complete", names[-5:]
    records = [e for e in evs if e["name"] == "record_data"]
    consumed = {}
    for r in records:
        assert r["value"] not in consumed, f"value {r['value']} consumed twice"
        consumed[r["value"]] = (r["partition"], r["offset"])
    assert consumed == acked, (len(consumed), len(acked))
    assert sum(e["count"] for e in evs if e["name"] == "records_consumed") == n

    commits = [e for e in evs if e["name"] == "offsets_committed"]
    assert commits and all(c["success"] for c in commits), [c for c in commits if not c["success"]][:3]
    final = {}
    for c in commits:
        for o in c["offsets"]:
            final[o["partition"]] = o["offset"]
    # Without keys the sticky partitioner may leave a partition empty; nothing to commit there.
    assert final == {p: o for p, o in end_offsets(bs, topic_name).items() if o > 0}
    rows, out = describe_group(bs, group)
    assert {p: r[0] for p, r in rows.items()} == final, out
