"""Real client workloads as a tenant (SPEC 4-6): the Java client, kcat, franz-go, classic
and KIP-848 consumer groups, transactions and a Kafka Streams app, each through the SASL
gateway as a tenant of its own, with checksums over what went in and came out.

Every test also runs on the open development listener ("open": plain names, no auth),
which proves the workload itself against plain Kafka semantics. For a tenant each test
checks, through the pool directly, that its topics, groups and transactional ids live
under `<tenant>.` names, and that the clients, through the gateway, saw only the tenant's
own unprefixed names.
"""
import collections
import json
import random
import re
import subprocess
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from clientlib import check_broker_address, make_payloads, sha_sorted, unique
from conftest import POOL_BOOTSTRAP, kafka_tool
from jvm import JavaProc, java_helpers, parse_dump, run_java  # noqa: F401 (java_helpers is a fixture)
from tenant_env import (OpenClient, new_tenant, pool_groups, pool_topics,  # noqa: F401 (fixtures)
                        pool_transactional_ids, tenant_gateway)
from test_franz_go import franzcheck, run as franz_run  # noqa: F401 (franzcheck is a fixture)
from test_java_client import Member, admin, produce
from test_kcat import KCAT

TIMEOUT = 90


@pytest.fixture(params=["open", "tenant"])
def client(request):
    """The client settings a test runs with: the open listener, or a fresh tenant."""
    if request.param == "open":
        c = OpenClient(request.getfixturevalue("gateway"))
    else:
        c = request.getfixturevalue("new_tenant")()
    yield c
    assert c.gateway.alive(), "gateway exited during the test:\n" + c.gateway.log()[-5000:]


# --------------------------------------------------------------------------- helpers

def create_topic(client, topic, partitions=3):
    """Creates a topic through the gateway as the client and waits for its leaders."""
    a = client.admin()
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)],
                    operation_timeout=30, request_timeout=30)[topic].result(timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    while True:
        t = a.list_topics(topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        assert time.time() < deadline, f"topic {topic} not ready: {t}"
        time.sleep(0.3)


def assert_names(client, topics=(), groups=(), txids=(), seen=()):
    """The pool holds `topics`/`groups`/`txids` under the client's prefix; the client saw
    them under their own names, and (for a tenant) nothing but its own topics: its
    Metadata view, plus any names a client printed (`seen`), equals the pool's topics
    under its prefix, prefix removed."""
    in_pool = pool_topics(client.prefix)
    assert set(topics) <= in_pool, f"missing in the pool under {client.prefix!r}: {set(topics) - in_pool}"
    if groups:
        g = pool_groups(client.prefix)
        assert set(groups) <= g, f"groups missing in the pool under {client.prefix!r}: {set(groups) - g}"
    if txids:
        t = pool_transactional_ids(client.prefix)
        for want in txids:
            pat = want if isinstance(want, re.Pattern) else re.compile(re.escape(want) + "$")
            assert any(pat.match(x) for x in t), f"no transactional id {pat.pattern} under {client.prefix!r}: {t}"
    visible = client.visible_topics()
    assert set(topics) <= visible, f"not visible through the gateway: {set(topics) - visible}"
    if client.id is None:
        everything = pool_topics("")
        assert set(seen) <= everything, set(seen) - everything
        return
    leaked = {n for n in visible | set(seen) if n.startswith(client.prefix)}
    assert not leaked, f"prefixed names reached the client: {leaked}"
    assert visible == in_pool, f"Metadata view {sorted(visible)} != pool names {sorted(in_pool)}"
    assert set(seen) <= in_pool, f"client printed names not of its tenant: {set(seen) - in_pool}"


def java_topics(build, client) -> set:
    lines = admin(build, client.bootstrap, "topics", *client.java_props())
    return {l.split(" ", 1)[1] for l in lines if l.startswith("topic ")}


def java_groups(build, client) -> set:
    lines = admin(build, client.bootstrap, "groups", *client.java_props())
    return {l.split()[1] for l in lines if l.startswith("groupid ")}


def dump(build, client, topic, isolation="read_uncommitted"):
    _, lines = run_java(build, "Dump", "--bootstrap", client.bootstrap, "--topic", topic,
                        "--isolation", isolation, "--timeout-ms", 75000, *client.java_props(), timeout=120)
    return parse_dump(lines)


def kcat(client, *args, input=None):
    res = subprocess.run([KCAT, *client.kcat_args(), *map(str, args)], capture_output=True,
                         timeout=TIMEOUT, input=input)
    assert res.returncode == 0, f"kcat {args} failed:\n{res.stderr.decode(errors='replace')[-3000:]}"
    return res


# --------------------------------------------------------------------------- round trips

def test_java_round_trip(client, java_helpers, topic_name, tmp_path):
    create_topic(client, topic_name)
    n = 400
    acked = produce(client.gateway, java_helpers, topic_name, n, "jr", *client.java_props())
    recs, ends = dump(java_helpers, client, topic_name)
    assert {(p, o, v) for p, o, _k, v in recs} == {(p, o, v) for v, (p, o) in acked.items()}
    assert sha_sorted(v for *_, v in recs) == sha_sorted(f"jr-{i}" for i in range(n))
    assert sum(ends.values()) == n
    seen = java_topics(java_helpers, client)
    assert topic_name in seen, seen
    # The Kafka CLI with the client's settings as a properties file sees the same names.
    props = tmp_path / "client.properties"
    props.write_text(client.java_properties())
    res = kafka_tool("kafka-topics", "--bootstrap-server", client.bootstrap, "--command-config", props, "--list")
    cli_seen = {l.strip() for l in res.stdout.splitlines() if l.strip()}
    assert topic_name in cli_seen, res.stdout
    assert_names(client, topics=[topic_name], seen=seen | cli_seen)


def test_kcat_round_trip(client, topic_name):
    create_topic(client, topic_name)
    payloads = make_payloads(unique("kc"), 500)
    kcat(client, "-P", "-t", topic_name, "-K:", "-X", "acks=all", "-X", "enable.idempotence=true",
         input=b"".join(b"k%d:%s\n" % (i % 11, v) for i, v in enumerate(payloads)))
    out = kcat(client, "-C", "-t", topic_name, "-o", "beginning", "-e", "-q", "-f", r"%t\t%p\t%k\t%s\n").stdout
    rows = [l.split(b"\t", 3) for l in out.splitlines() if l]
    assert {r[0].decode() for r in rows} == {topic_name}, "records carry another topic name"
    assert len(rows) == len(payloads)
    assert sha_sorted(r[3] for r in rows) == sha_sorted(payloads)
    # One key, one partition.
    where = collections.defaultdict(set)
    for _t, p, k, _v in rows:
        where[k].add(p)
    assert len(where) == 11 and all(len(ps) == 1 for ps in where.values()), dict(where)
    md = json.loads(kcat(client, "-L", "-J").stdout)
    for b in md["brokers"]:
        host, port = b["name"].rsplit(":", 1)
        check_broker_address(client.gateway, b["id"], host, int(port))
    seen = {t["topic"] for t in md["topics"]}
    assert topic_name in seen
    assert_names(client, topics=[topic_name], seen=seen)


def test_franz_go_round_trip(client, franzcheck, topic_name):
    n = 1000
    out = franz_run(franzcheck, "roundtrip", *client.franz_args(), "-topic", topic_name, "-n", n)
    for b in out["brokers"]:
        check_broker_address(client.gateway, b["id"], b["host"], b["port"])
    assert out["produced"] == out["consumed"] == out["end_offsets_sum"] == n
    assert out["sha256"] == sha_sorted(make_payloads(topic_name, n))
    assert out["keys_consistent"] is True
    assert_names(client, topics=[topic_name])


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_franz_go_group(client, franzcheck, topic_name, protocol):
    group = unique(f"franz-{protocol}")
    out = franz_run(franzcheck, "group", *client.franz_args(), "-topic", topic_name, "-group", group,
                    "-protocol", protocol)
    expected = (make_payloads(topic_name + "-a", 200) + make_payloads(topic_name + "-b", 400)
                + make_payloads(topic_name + "-c", 200))
    assert not out["dupes"]
    assert out["consumed"] == len(expected) and out["sha256"] == sha_sorted(expected)
    a, b = set(out["split"]["c1"]), set(out["split"]["c2"])
    assert a and b and not (a & b) and a | b == {0, 1, 2, 3}
    assert out["described_members"] == 2
    assert out["committed"] == out["end_offsets"]
    assert_names(client, topics=[topic_name], groups=[group])


# --------------------------------------------------------------------------- groups

@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_java_group_rebalance(client, java_helpers, topic_name, protocol):
    """Two members of one group: the first takes every partition, the second joins and
    they split them, the second leaves and the first takes everything back; every record
    is consumed and committed."""
    parts, everything = 4, set(range(4))
    create_topic(client, topic_name, parts)
    group = f"g-{topic_name}"
    props = client.java_props()
    expected = set(produce(client.gateway, java_helpers, topic_name, 400, "p1", *props))

    def consumed(*members):
        return {v for m in members for _, _, v in m.assignment()[1]}

    a = Member(java_helpers, client.bootstrap, topic_name, group, protocol, "a", props)
    b = None
    try:
        a.wait_assignment(lambda s: s == everything, TIMEOUT, "all partitions")
        a.proc.wait_for(lambda _: expected <= consumed(a), 60, "phase 1 records")
        b = Member(java_helpers, client.bootstrap, topic_name, group, protocol, "b", props)
        b.wait_assignment(lambda s: len(s) > 0, TIMEOUT, "a share")
        a.wait_assignment(lambda s: 0 < len(s) < parts and not (s & b.assignment()[0])
                          and s | b.assignment()[0] == everything, TIMEOUT, "the other share")
        desc = admin(java_helpers, client.bootstrap, "describe-group", "--group", group, *props)
        assert desc[0].upper().split()[1:] == ["STABLE", protocol.upper(), "2"], desc
        # Members are described with the client ids they chose, not the pool's names for them.
        sa, sb = a.assignment()[0], b.assignment()[0]
        assert sorted(desc[1:]) == sorted([f"member a {','.join(map(str, sorted(sa)))}",
                                           f"member b {','.join(map(str, sorted(sb)))}"]), desc

        expected |= set(produce(client.gateway, java_helpers, topic_name, 400, "p2", *props))
        a.proc.wait_for(lambda _: expected <= consumed(a, b), TIMEOUT, "phase 2 records by a and b")
        assert b.assignment()[1], "b consumed nothing"
        rc = b.proc.stop(60)
        assert rc == 0 and b.proc.snapshot()[-1] == "closed", (rc, b.proc.snapshot()[-5:], b.proc.stderr()[-2000:])
        a.wait_assignment(lambda s: s == everything, TIMEOUT, "all partitions back")
        expected |= set(produce(client.gateway, java_helpers, topic_name, 200, "p3", *props))
        a.proc.wait_for(lambda _: expected <= consumed(a, b), TIMEOUT, "phase 3 records")
        rc = a.proc.stop(60)
        assert rc == 0 and a.proc.snapshot()[-1] == "closed", (rc, a.proc.snapshot()[-5:], a.proc.stderr()[-2000:])
    finally:
        a.proc.kill()
        if b:
            b.proc.kill()

    recs = a.assignment()[1] + b.assignment()[1]
    assert {v for _, _, v in recs} == expected and len(expected) == 1000
    ends = {}
    for p, o, _ in recs:
        ends[p] = max(ends.get(p, 0), o + 1)
    offs = {int(l.split()[1]): int(l.split()[2])
            for l in admin(java_helpers, client.bootstrap, "group-offsets", "--group", group, *props)}
    assert offs == ends
    seen_groups = java_groups(java_helpers, client)
    assert group in seen_groups, seen_groups
    if client.id is not None:
        assert seen_groups <= pool_groups(client.prefix), seen_groups
    assert_names(client, topics=[topic_name], groups=[group], seen=java_topics(java_helpers, client))


# --------------------------------------------------------------------------- transactions

def test_java_transactions_read_committed(client, java_helpers, topic_name):
    create_topic(client, topic_name)
    txid, group = f"tx-{topic_name}", f"g-{topic_name}"
    n, m = 150, 50
    _, lines = run_java(java_helpers, "Txn", "--bootstrap", client.bootstrap, "--topic", topic_name, "--txid", txid,
                        "--group", group, "--n", n, "--m", m, *client.java_props(), timeout=180)
    assert lines[:5] == ["init", f"committed c1 {n}", f"aborted a {m}", f"committed c2 {n}", "aborted a2 1"], lines
    assert [l for l in lines if l.startswith("groupoffset ")] == ["groupoffset 0 42 txn-meta"], lines
    fenced = [l for l in lines if l.startswith("fenced ") or l == "notfenced"]
    assert len(fenced) == 1 and re.search(r"ProducerFenced|InvalidProducerEpoch", fenced[0]), lines
    assert lines[-2:] == ["committed c3 1", "done"], lines

    committed = sorted([f"c1-{i}" for i in range(n)] + [f"c2-{i}" for i in range(n)] + ["c3-0"])
    aborted = sorted([f"a-{i}" for i in range(m)] + ["a2-0"])
    rc, ends_rc = dump(java_helpers, client, topic_name, "read_committed")
    assert sha_sorted(v for *_, v in rc) == sha_sorted(committed)
    ru, ends_ru = dump(java_helpers, client, topic_name, "read_uncommitted")
    assert sha_sorted(v for *_, v in ru) == sha_sorted(committed + aborted)
    assert ends_rc == ends_ru
    assert_names(client, topics=[topic_name], groups=[group], txids=[txid])


# --------------------------------------------------------------------------- Kafka Streams

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett"]


def produce_lines(client, topic, lines):
    errors = []
    p = Producer(client.confluent_config(**{"acks": "all", "enable.idempotence": True, "linger.ms": 5}))
    for i, line in enumerate(lines):
        p.produce(topic, key=f"l{i}".encode(), value=line.encode(),
                  on_delivery=lambda err, _m: err is not None and errors.append(err))
        p.poll(0)
    assert p.flush(TIMEOUT) == 0 and not errors, errors[:5]


def read_counts(client, topic, expected, timeout=TIMEOUT):
    """Reads the word count output (read_committed) until every word's latest count is
    the expected one; returns ({word: latest}, {word: [every count seen]})."""
    c = Consumer(client.confluent_config(**{"group.id": unique("wc-read"), "enable.auto.commit": False,
                                            "isolation.level": "read_committed"}))
    latest, history = {}, collections.defaultdict(list)
    try:
        md = c.list_topics(topic, timeout=10)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
        deadline = time.time() + timeout
        while latest != expected:
            assert time.time() < deadline, f"counts {latest} never reached {expected}"
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            assert m.topic() == topic
            w, n = m.key().decode(), int(m.value())
            latest[w] = n
            history[w].append(n)
        # Nothing more after the expected state (no late double counts).
        end = time.time() + 3
        while time.time() < end:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                latest[m.key().decode()] = int(m.value())
        return latest, history
    finally:
        c.close()


def topic_configs(pool_name) -> dict:
    a = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    res = ConfigResource(ConfigResource.Type.TOPIC, pool_name)
    cfg = a.describe_configs([res])[res].result(timeout=30)
    return {k: v.value for k, v in cfg.items()}


@pytest.mark.parametrize("guarantee", ["exactly_once_v2", "at_least_once"])
def test_streams_word_count(client, java_helpers, guarantee):
    """Kafka Streams word count: a repartition (groupBy) and a changelog (count) topic that
    Streams creates itself through the gateway, transactions with exactly_once_v2; the
    final counts on the output topic are exactly the words produced."""
    app = unique("wc")
    src, out = f"{app}-in", f"{app}-out"
    create_topic(client, src, 3)
    create_topic(client, out, 3)
    rnd = random.Random(app)
    lines = [" ".join(rnd.choice(WORDS).upper() if rnd.random() < 0.2 else rnd.choice(WORDS)
                      for _ in range(rnd.randint(1, 8))) + rnd.choice(["", ".", "!", " ,"]) for _ in range(300)]
    expected = collections.Counter(w for l in lines for w in re.findall(r"\w+", l.lower()))

    proc = JavaProc(java_helpers, "WordCount", "--bootstrap", client.bootstrap, "--app-id", app, "--input", src,
                    "--output", out, "--guarantee", guarantee, "--max-seconds", 240, *client.java_props())
    try:
        proc.wait_for(lambda ls: "RUNNING" in ls, 120, "the app to run")
        produce_lines(client, src, lines[:150])
        produce_lines(client, src, lines[150:])
        latest, history = read_counts(client, out, dict(expected), timeout=120)
        assert latest == dict(expected)
        # Counts only grow, one word at a time; none overshoots (no double counting).
        for w, seen in history.items():
            assert seen == sorted(seen) and seen[-1] == expected[w], (w, seen)
        assert not [l for l in proc.snapshot() if l.startswith("uncaught ")], proc.snapshot()
        rc = proc.stop(90)
        tail = proc.snapshot()
        # (The state listener's last line may come after "closed": it runs on a stream thread.)
        closed = [l for l in tail if l.startswith("closed ")]
        assert rc == 0 and len(closed) == 1 and closed[0].startswith("closed NOT_RUNNING "), (rc, tail[-10:])
    except AssertionError as e:
        # The app's own trail (state changes, errors, client warnings) explains most failures.
        raise AssertionError(f"{e}\nWordCount stdout: {proc.snapshot()[-20:]}\nstderr: {proc.stderr()[-4000:]}") from e
    finally:
        proc.kill()

    repartition, changelog = f"{app}-words-repartition", f"{app}-counts-changelog"
    txids = [re.compile(re.escape(app) + r"-.+")] if guarantee == "exactly_once_v2" else []
    assert_names(client, topics=[src, out, repartition, changelog], groups=[app], txids=txids)
    # Streams' own topic configs made it through CreateTopics to the pool.
    rep = topic_configs(client.pool_name(repartition))
    assert (rep["cleanup.policy"], rep["segment.bytes"], rep["retention.ms"]) == ("delete", "52428800", "-1"), rep
    assert topic_configs(client.pool_name(changelog))["cleanup.policy"] == "compact"
