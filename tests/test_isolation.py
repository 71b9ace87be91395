"""Adversarial tenant isolation (SPEC 4-6) with real clients: tenant A (allow-all) owns
topics with known records, a consumer group with committed offsets and a transactional
producer; tenant B (allow-all inside its own tenant) attacks A through its own clients
(confluent-kafka, kcat, the Java admin and Kafka's CLI tools) by every name trick we know.

After every attack A must be unaffected, checked through the pool directly: its topic holds
exactly its records, its group's committed offsets are unchanged and its transactional
producer still commits. Every text B gets back (errors, tool output) is probed for A's
tenant id, A's pool prefix and the pool's ports. The last module test checks, through the
pool, that B's attempts created nothing outside `<B>.`.

A separate test covers policies on a live connection: a reader limited to `orders*` gets
WriteData added (its live producer succeeds within 5 s) and then ReadData denied (its live
consumer gets TOPIC_AUTHORIZATION_FAILED within 5 s).

The tests of the module share one A/B pair and run in file order; each attack test is
self-contained apart from that shared state.
"""
import json
import re
import shutil
import subprocess
import time
import uuid

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, KafkaError,
                             KafkaException, Producer, TopicCollection, TopicPartition)
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic, ResourceType

from conftest import POOL_BOOTSTRAP, kafka_tool
from jvm import java_helpers, run_java  # noqa: F401 (java_helpers is a fixture)
from tenant_env import (Tenant, new_tenant_id, pool_groups, pool_topics,  # noqa: F401 (fixtures)
                        pool_transactional_ids, tenant_gateway)
from tenants import ALLOW_ALL, put_tenant

TIMEOUT = 60
KCAT = shutil.which("kcat") or shutil.which("kafkacat") or "kcat"
A_MARK = "A-SECRET"
B_MARK = "B-ATTACK"
POOL_PORT = re.compile(r"(?<![0-9])2909[0-9](?![0-9])")
# Seconds a policy change may take to reach a live connection (SPEC 6), plus the client's
# own retry granularity (librdkafka polls/backs off in ~0.5 s steps).
POLICY_SECS = 5.0
CLIENT_SLACK = 1.0

A_TOPICS = {"orders": 3, "pay.ments": 1, "ledger": 1}
A_GROUP = "grp-a"
A_TXID = "txn-a"
INTERNAL = ["__consumer_offsets", "__transaction_state", "__sluice_tenants"]


# --------------------------------------------------------------------------- helpers

def make_tenant(tgw, policies=None, principals=None, subject="app") -> Tenant:
    """A tenant stored with put_tenant and admitted by the gateway (tenant_env's
    new_tenant is function-scoped; the module shares one A/B pair)."""
    tid = new_tenant_id()
    doc = {"id": tid, "policies": policies if policies is not None else {"all": ALLOW_ALL},
           "principals": principals if principals is not None else {"*": {"policies": ["all"]}}}
    t = Tenant(tgw, tid, put_tenant(doc), subject)
    deadline = time.time() + 15
    while time.time() < deadline:
        if t.admitted(timeout=3):
            return t
        time.sleep(0.3)
    raise AssertionError(f"tenant {tid} not admitted within 15 s\n{tgw.log()[-3000:]}")


_POOL_ADMIN = []


def pool_admin() -> AdminClient:
    """One pool admin for the module: an AdminClient that is garbage collected while its
    futures are pending never completes them."""
    if not _POOL_ADMIN:
        _POOL_ADMIN.append(AdminClient({"bootstrap.servers": POOL_BOOTSTRAP}))
    return _POOL_ADMIN[0]


def create_topics(client, topics: dict):
    """Creates {name: partitions} through the gateway and waits until every leader is known."""
    a = client.admin()
    fs = a.create_topics([NewTopic(t, num_partitions=n, replication_factor=3) for t, n in topics.items()],
                         operation_timeout=30, request_timeout=30)
    for f in fs.values():
        f.result(timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    for t, n in topics.items():
        while True:
            md = a.list_topics(t, timeout=10).topics.get(t)
            if md is not None and md.error is None and len(md.partitions) == n and all(
                    p.leader >= 0 for p in md.partitions.values()):
                break
            assert time.time() < deadline, f"topic {t} not ready: {md}"
            time.sleep(0.3)


def produce(conf: dict, topic: str, records, **extra):
    """Produces [(key, value)] and returns the delivery errors as text (empty when all were
    acked). Text, not KafkaError objects: those can point into the producer's memory, and
    reading one after the producer is gone crashed the pytest process once in CI."""
    errors = []
    p = Producer({**conf, "message.timeout.ms": 15000, **extra})
    for k, v in records:
        p.produce(topic, key=k, value=v, on_delivery=lambda e, m: e and errors.append(f"{e.name()}: {e.str()}"))
    left = p.flush(30)
    assert left == 0, f"{left} messages not delivered or failed within 30 s"
    return errors


def read_all(conf: dict, topic: str, partitions: int, isolation="read_committed", timeout=TIMEOUT):
    """Every record of `topic` from the beginning to the end (the LSO for read_committed),
    as a sorted list of (key, value) strings."""
    c = Consumer({**conf, "group.id": f"iso-reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "isolation.level": isolation, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        eof, out = set(), []
        deadline = time.time() + timeout
        while len(eof) < partitions:
            assert time.time() < deadline, f"reading {topic}: only partitions {eof} reached their end"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise AssertionError(f"reading {topic}: {m.error()}")
            eof.discard(m.partition())
            out.append(((m.key() or b"").decode(), (m.value() or b"").decode()))
        return sorted(out)
    finally:
        c.close()


def end_offsets(topic: str) -> dict:
    """{partition: high watermark} of a pool topic, read from the pool."""
    c = Consumer({"bootstrap.servers": POOL_BOOTSTRAP, "group.id": f"iso-wm-{uuid.uuid4().hex[:8]}"})
    try:
        md = c.list_topics(topic, timeout=20).topics[topic]
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in md.partitions}
    finally:
        c.close()


def raw_values_since(topic: str, start: dict, timeout=TIMEOUT) -> list:
    """Raw keys+values of pool topic records from the offsets in `start` to the current end."""
    end = end_offsets(topic)
    todo = {p: (start.get(p, 0), e) for p, e in end.items() if e > start.get(p, 0)}
    if not todo:
        return []
    c = Consumer({"bootstrap.servers": POOL_BOOTSTRAP, "group.id": f"iso-raw-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, s) for p, (s, _) in todo.items()])
        out, deadline = [], time.time() + timeout
        while todo and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append((m.key() or b"") + b"|" + (m.value() or b""))
            if m.offset() + 1 >= todo.get(m.partition(), (0, 0))[1]:
                todo.pop(m.partition(), None)
        return out
    finally:
        c.close()


def java_uuid(u) -> str:
    """A confluent-kafka Uuid as Java's Uuid.fromString wants it (URL-safe base64)."""
    return str(u).replace("+", "-").replace("/", "_").rstrip("=")


def topic_id_answers(java_helpers, client, topic_id, op: str) -> list:
    """AdminCheck topic-id output lines for `op` (describe/delete) as `client`."""
    _, lines = run_java(java_helpers, "AdminCheck", "topic-id", "--id", java_uuid(topic_id), "--op", op,
                        "--bootstrap", client.bootstrap, *client.java_props())
    return [l for l in lines if l != "done"]


# A topic id no topic has: what "unknown" looks like, to compare A's ids with.
RANDOM_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAQ"


def kcodes(e) -> int:
    """The Kafka error code of a KafkaException / KafkaError."""
    err = e.args[0] if isinstance(e, KafkaException) and e.args else e
    return err.code() if isinstance(err, KafkaError) else None


def props_file(tmp_path, client) -> str:
    """A --command-config file for Kafka's CLI tools (bootstrap given separately)."""
    p = tmp_path / f"client-{uuid.uuid4().hex[:6]}.properties"
    p.write_text(client.java_properties())
    return str(p)


class World:
    """Tenant A's state and the checks that it is untouched."""

    def __init__(self, a: Tenant, b: Tenant):
        self.a, self.b = a, b
        self.a_records = []  # sorted (key, value) of A's `orders`
        self.a_offsets = {}  # {(pool topic, partition): committed offset} of A's group
        self.txn = None  # A's live transactional producer
        self.ledger = []  # sorted committed (key, value) of A's `ledger`
        self.texts = []  # every text B got back, for the leak probe
        self.pool_before = {}

    def probe(self, what: str, text) -> str:
        """Records and checks a text B got back: no A tenant id, no pool name of B's own
        (`<B>.`), no pool port, no A record. The names B itself sent (some contain A's id,
        and clients echo them in their own messages) are cut out first."""
        text = str(text)
        self.texts.append((what, text))
        scrubbed = text
        for sent in sorted(attack_names(self), key=len, reverse=True):
            scrubbed = scrubbed.replace(sent, "<sent>")
        assert self.a.id not in scrubbed, f"{what}: A's tenant id {self.a.id} leaked to B: {text[:2000]}"
        assert self.b.prefix not in scrubbed, f"{what}: a pool name ({self.b.prefix}...) leaked to B: {text[:2000]}"
        assert POOL_PORT.search(text) is None, f"{what}: a pool port leaked to B: {text[:2000]}"
        assert A_MARK not in text, f"{what}: A's record data leaked to B: {text[:2000]}"
        return text

    def a_group_offsets(self) -> dict:
        g = self.a.pool_name(A_GROUP)
        [f] = pool_admin().list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)]).values()
        return {(tp.topic, tp.partition): tp.offset for tp in f.result(timeout=TIMEOUT).topic_partitions}

    def a_commit_one(self, tag: str):
        """A's live transactional producer commits one record (it must not be fenced)."""
        rec = (f"commit-{tag}", f"{A_MARK}-ledger-{tag}")
        self.txn.begin_transaction()
        self.txn.produce("ledger", key=rec[0], value=rec[1])
        self.txn.commit_transaction(30)
        self.ledger = sorted(self.ledger + [rec])

    def assert_a_unaffected(self, tag: str):
        a = self.a
        got = read_all({"bootstrap.servers": POOL_BOOTSTRAP}, a.pool_name("orders"), A_TOPICS["orders"])
        assert got == self.a_records, f"after {tag}: A's topic changed: +{set(got) - set(self.a_records)} " \
                                      f"-{set(self.a_records) - set(got)}"
        assert self.a_group_offsets() == self.a_offsets, f"after {tag}: A's group offsets changed"
        self.a_commit_one(tag)
        ledger = read_all({"bootstrap.servers": POOL_BOOTSTRAP}, a.pool_name("ledger"), 1)
        assert ledger == self.ledger, f"after {tag}: A's committed transactions differ: {ledger}"
        assert pool_topics(a.prefix) == set(A_TOPICS), f"after {tag}: A's topics in the pool changed"
        assert a.visible_topics() == set(A_TOPICS), f"after {tag}: A's own view changed"


@pytest.fixture(scope="module")
def world(tenant_gateway):
    a = make_tenant(tenant_gateway)
    b = make_tenant(tenant_gateway)
    w = World(a, b)
    pa = pool_admin()
    w.pool_before = {"topics": set(pa.list_topics(timeout=20).topics), "groups": pool_groups(""),
                     "txids": pool_transactional_ids("")}
    # A: topics, known records, a group with committed offsets, a transactional producer.
    create_topics(a, A_TOPICS)
    recs = [(f"k{i}", f"{A_MARK}-{i}") for i in range(30)]
    assert produce(a.confluent_config(), "orders", recs) == []
    w.a_records = sorted(recs)
    c = Consumer({**a.confluent_config(), "group.id": A_GROUP, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe(["orders"])
        n, deadline = 0, time.time() + TIMEOUT
        while n < 20:
            assert time.time() < deadline, f"A's consumer got only {n} records"
            m = c.poll(0.5)
            if m is not None and not m.error():
                n += 1
        c.commit(asynchronous=False)
    finally:
        c.close()
    w.a_offsets = w.a_group_offsets()
    assert w.a_offsets and sum(w.a_offsets.values()) >= 20, w.a_offsets
    w.txn = Producer({**a.confluent_config(), "transactional.id": A_TXID, "transaction.timeout.ms": 60000})
    w.txn.init_transactions(30)
    w.a_commit_one("setup")
    # B: a topic of its own with records, so its regex subscriptions have something to find.
    create_topics(b, {"mine": 1})
    assert produce(b.confluent_config(), "mine", [(f"b{i}", f"B-own-{i}") for i in range(5)]) == []
    w.assert_a_unaffected("setup")
    yield w
    w.txn.flush(10)
    w.txn = None
    assert tenant_gateway.gateway.alive(), "gateway died:\n" + tenant_gateway.log()[-5000:]


# --------------------------------------------------------------------------- topics

def attack_names(w) -> set:
    """Every name B sends in any attack (topics, groups, transactional ids)."""
    a, b = w.a.id, w.b.id
    return set(names_b_tries(w)) | {A_GROUP, f"{a}.{A_GROUP}", f"{b}.{a}.{A_GROUP}", A_TXID, f"{a}.{A_TXID}",
                                    f"{b}.{a}.{A_TXID}", f"{a}.ledger", f"^{a}.*"}


def names_b_tries(w) -> list:
    """Every spelling of A's topics (and the pool's internal topics) B throws at the gateway."""
    a, b = w.a.id, w.b.id
    return ["orders", "pay.ments", "ledger", f"{a}.orders", f"{a}.pay.ments", f"{a}..orders",
            f".{a}.orders", f"{a}.orders.", f"{b}.{a}.orders", f"{b}..{a}.orders", "..", ".", a,
            f"{a}.__consumer_offsets", *INTERNAL]


def test_list_topics_shows_only_b(world, java_helpers, tmp_path):
    w, b = world, world.b
    own = pool_topics(b.prefix)
    assert "mine" in own
    md = b.admin().list_topics(timeout=20)
    names = set(md.topics)
    assert names == own, f"B sees {names}, its namespace holds {own}"
    w.probe("list_topics brokers", [(x.host, x.port) for x in md.brokers.values()])
    # kcat -L: every topic line names one of B's topics.
    res = subprocess.run([KCAT, *b.kcat_args(), "-L"], capture_output=True, text=True, timeout=TIMEOUT)
    w.probe("kcat -L", res.stdout + res.stderr)
    assert res.returncode == 0, res.stderr
    kn = set(re.findall(r'topic "([^"]+)"', res.stdout))
    assert kn == own, f"kcat -L shows {kn}"
    # Java admin, internal topics included.
    _, lines = run_java(java_helpers, "AdminCheck", "topics", "--bootstrap", b.bootstrap, *b.java_props())
    w.probe("AdminCheck topics", "\n".join(lines))
    jn = {l.split(" ", 1)[1] for l in lines if l.startswith("topic ")}
    assert jn == own, f"Java listTopics(listInternal) shows {jn}"
    # kafka-topics --list (Kafka's CLI).
    res = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config", props_file(tmp_path, b),
                     "--list", check=False)
    w.probe("kafka-topics --list", res.stdout + res.stderr)
    assert res.returncode == 0, res.stderr[-2000:]
    assert {l.strip() for l in res.stdout.splitlines() if l.strip()} == own
    w.assert_a_unaffected("list topics")


def test_describe_a_topics_looks_nonexistent(world, java_helpers, tmp_path):
    w, b = world, world.b
    admin = b.admin()
    wrong = []
    for name in names_b_tries(w):
        exists_for_b = name in pool_topics(b.prefix)
        fut = admin.describe_topics(TopicCollection([name]))[name]
        try:
            d = fut.result(timeout=TIMEOUT)
            w.probe(f"describe_topics {name}", d)
            assert exists_for_b, f"B describes {name!r}, which is not in its namespace: {d}"
        except KafkaException as e:
            w.probe(f"describe_topics {name}", e)
            # SPEC 4: unknown names look nonexistent; `__*` (and Kafka's invalid "." and "..")
            # are refused as INVALID_TOPIC_EXCEPTION.
            if kcodes(e) not in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.TOPIC_EXCEPTION):
                wrong.append((name, str(e)))
        # Metadata for that one topic (librdkafka's list_topics(topic)).
        t = admin.list_topics(name, timeout=20).topics.get(name)
        w.probe(f"list_topics({name})", t)
        if t is not None and not exists_for_b:
            assert t.error is not None and not t.partitions, f"Metadata for {name!r} shows {t}"
    res = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config", props_file(tmp_path, b),
                     "--describe", "--topic", f"{w.a.id}.orders", check=False)
    out = w.probe("kafka-topics --describe", res.stdout + res.stderr)
    assert "PartitionCount" not in out, out[-2000:]
    # A's topic id, read from the pool: through B it must be an unknown id.
    a_id = pool_admin().describe_topics(TopicCollection([w.a.pool_name("orders")]))[w.a.pool_name("orders")] \
        .result(timeout=TIMEOUT).topic_id
    lines = topic_id_answers(java_helpers, b, a_id, "describe")
    out = w.probe("describe by A's topic id", "\n".join(lines))
    unknown = topic_id_answers(java_helpers, b, RANDOM_TOPIC_ID, "describe")
    w.probe("describe by a random topic id", "\n".join(unknown))
    w.assert_a_unaffected("describe")
    # SPEC 4: exactly as for an unknown id (Kafka: UnknownTopicIdException).
    problems = []
    if [l.replace(java_uuid(a_id), "<id>") for l in lines] != [l.replace(RANDOM_TOPIC_ID, "<id>") for l in unknown]:
        problems.append(f"A's topic id answered unlike an unknown id: {lines} vs {unknown}")
    if not any(l.startswith("error UnknownTopicIdException") for l in lines):
        problems.append(f"describe by A's topic id: want UnknownTopicIdException, got {out}")
    if wrong:
        problems.append(f"describe answered neither UNKNOWN_TOPIC_OR_PARTITION nor INVALID_TOPIC for: {wrong}")
    assert not problems, "\n".join(problems)


def test_consume_a_topics_by_name_tricks(world):
    w, b = world, world.b
    names = names_b_tries(w)
    c = Consumer({**b.confluent_config(), "group.id": f"thief-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                  "topic.metadata.refresh.interval.ms": 2000})
    got, errors = [], []
    try:
        c.assign([TopicPartition(n, p, OFFSET_BEGINNING) for n in names for p in range(3)])
        deadline = time.time() + 12
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(str(m.error()))
            else:
                got.append((m.topic(), m.value()))
    finally:
        c.close()
    w.probe("consume by name tricks", errors)
    assert got == [], f"B consumed records from names that are not its own: {got[:5]}"
    for name in (f"{w.a.id}.orders", "orders", "__consumer_offsets"):
        res = subprocess.run([KCAT, *b.kcat_args(), "-C", "-t", name, "-o", "beginning", "-e", "-q", "-m", "10"],
                             capture_output=True, text=True, timeout=TIMEOUT)
        w.probe(f"kcat -C {name}", res.stdout + res.stderr)
        assert res.stdout.strip() == "", f"kcat -C -t {name} printed {res.stdout[:500]}"
    w.assert_a_unaffected("consume")


def test_produce_a_topics_by_name_tricks(world):
    w, b = world, world.b
    start = {t: end_offsets(t) for t in INTERNAL}
    names = names_b_tries(w)
    # One producer for every name: a librdkafka handle per name (created and destroyed
    # in a row) is what the pytest process crashed amid in CI.
    errors = {name: [] for name in names}
    p = Producer({**b.confluent_config(), "message.timeout.ms": 8000})

    def delivered(err, msg, name):
        if err is not None:
            errors[name].append(f"{err.name()}: {err.str()}")

    for name in names:
        try:
            p.produce(name, key=B_MARK, value=f"{B_MARK}-{name}",
                      on_delivery=lambda e, m, n=name: delivered(e, m, n))
        except KafkaException as e:
            errors[name].append(f"refused at once: {e.args[0].name()}")
    assert p.flush(30) == 0, "B's produce attempts neither failed nor were delivered within 30 s"
    del p
    for name in names:
        errs = errors[name]
        w.probe(f"produce {name}", errs)
        if name not in pool_topics(b.prefix):
            assert errs, f"B's produce to {name!r} (not in its namespace) was acknowledged"
    for name in (f"{w.a.id}.orders", "orders", "__sluice_tenants"):
        res = subprocess.run([KCAT, *b.kcat_args(), "-P", "-t", name, "-X", "message.timeout.ms=8000"],
                             input=f"{B_MARK}-kcat\n", capture_output=True, text=True, timeout=TIMEOUT)
        w.probe(f"kcat -P {name}", res.stdout + res.stderr)
    for t in INTERNAL:
        leaked = [r for r in raw_values_since(t, start[t]) if B_MARK.encode() in r]
        assert not leaked, f"B's records reached the pool's {t}: {leaked[:3]}"
    w.assert_a_unaffected("produce")


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
@pytest.mark.parametrize("patterns", ["all", "hostile"])
def test_regex_subscription_sees_only_b(world, protocol, patterns):
    w, b = world, world.b
    assigned, got, errors = set(), [], []
    conf = {**b.confluent_config(), "group.id": f"rx-{protocol}-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest", "group.protocol": protocol, "topic.metadata.refresh.interval.ms": 2000}
    c = Consumer(conf)
    try:
        regexes = ["^.*"] if patterns == "all" else ["^.*", f"^{w.a.id}.*", "^orders.*", "^__.*", "^.*[.].*"]
        c.subscribe(regexes,
                    on_assign=lambda _c, ps: assigned.update(p.topic for p in ps))
        deadline = time.time() + 30
        while time.time() < deadline and len(got) < 5:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(str(m.error()))
            else:
                got.append((m.topic(), m.value().decode()))
        # Keep polling a little: a late assignment of anything else must show up too.
        end = time.time() + 3
        while time.time() < end:
            m = c.poll(0.3)
            if m is not None and not m.error():
                got.append((m.topic(), m.value().decode()))
    finally:
        c.close()
    w.probe(f"regex {protocol} {patterns} errors", errors)
    w.probe(f"regex {protocol} {patterns} records", got)
    own = pool_topics(b.prefix)
    assert assigned <= own, f"{protocol} regex assigned {assigned - own} outside B"
    assert "mine" in assigned, f"{protocol} regex subscription did not find B's own topic (errors: {errors[:5]})"
    assert {t for t, _ in got} <= own and len(got) >= 5, got
    w.assert_a_unaffected(f"regex {protocol}")


# --------------------------------------------------------------------------- groups

def test_groups_of_a_are_invisible_and_untouchable(world, tmp_path):
    w, a, b = world, world.a, world.b
    admin = b.admin()
    listed = admin.list_consumer_groups().result(timeout=TIMEOUT)
    ids = {g.group_id for g in listed.valid}
    w.probe("list_consumer_groups", ids)
    own = pool_groups(b.prefix)
    assert ids <= own, f"B lists groups {ids - own} that are not in its namespace"
    assert A_GROUP not in ids
    targets = [A_GROUP, f"{a.id}.{A_GROUP}", f"{b.id}.{a.id}.{A_GROUP}"]
    # Describe: nothing of A's group (no members, no A topic) comes back.
    for g, f in admin.describe_consumer_groups(targets).items():
        try:
            d = f.result(timeout=TIMEOUT)
            w.probe(f"describe group {g}", (d.state, d.members, getattr(d, "type", None)))
            assert not d.members, f"B sees members of {g}: {d.members}"
        except KafkaException as e:
            w.probe(f"describe group {g}", e)
    # Committed offsets of "A's group" as B sees it: none.
    for g in targets:
        [f] = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)]).values()
        try:
            r = f.result(timeout=TIMEOUT)
            w.probe(f"offsets of {g}", r.topic_partitions)
            assert not r.topic_partitions, f"B reads committed offsets of {g}: {r.topic_partitions}"
        except KafkaException as e:
            w.probe(f"offsets of {g}", e)
    # Reset A's offsets (kafka-consumer-groups --reset-offsets, via AdminClient).
    for g, topic in [(A_GROUP, "orders"), (f"{a.id}.{A_GROUP}", f"{a.id}.orders"), (A_GROUP, f"{a.id}.orders")]:
        req = ConsumerGroupTopicPartitions(g, [TopicPartition(topic, p, 0) for p in range(3)])
        [f] = admin.alter_consumer_group_offsets([req]).values()
        try:
            w.probe(f"alter offsets {g}/{topic}", f.result(timeout=TIMEOUT).topic_partitions)
        except KafkaException as e:
            w.probe(f"alter offsets {g}/{topic}", e)
    # Delete A's group by every name.
    for g, f in admin.delete_consumer_groups(targets, request_timeout=30).items():
        try:
            f.result(timeout=TIMEOUT)
        except KafkaException as e:
            w.probe(f"delete group {g}", e)
    cfg = props_file(tmp_path, b)
    for args in (["--describe", "--group", A_GROUP, "--offsets"],
                 ["--reset-offsets", "--group", A_GROUP, "--all-topics", "--to-earliest", "--execute"],
                 ["--reset-offsets", "--group", f"{a.id}.{A_GROUP}", "--topic", f"{a.id}.orders", "--to-earliest",
                  "--execute"],
                 ["--delete", "--group", f"{a.id}.{A_GROUP}"],
                 ["--list"]):
        res = kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap, "--command-config", cfg,
                         *args, check=False, timeout=90)
        w.probe(f"kafka-consumer-groups {' '.join(args)}", res.stdout + res.stderr)
    assert pool_groups(a.prefix) == {A_GROUP}, pool_groups(a.prefix)
    w.assert_a_unaffected("groups")


# --------------------------------------------------------------------------- transactions

def test_transactions_of_a_are_invisible(world, tmp_path):
    w, a, b = world, world.a, world.b
    cfg = props_file(tmp_path, b)
    res = kafka_tool("kafka-transactions", "--bootstrap-server", b.bootstrap, "--command-config", cfg, "list",
                     check=False)
    out = w.probe("kafka-transactions list", res.stdout + res.stderr)
    assert res.returncode == 0, out[-2000:]
    listed = {l.split()[0] for l in res.stdout.splitlines()[1:] if l.strip()}
    own = pool_transactional_ids(b.prefix)
    assert listed <= own, f"B lists transactional ids {listed - own} outside its namespace"
    assert A_TXID not in listed or A_TXID in own
    for txid in (A_TXID, f"{a.id}.{A_TXID}"):
        res = kafka_tool("kafka-transactions", "--bootstrap-server", b.bootstrap, "--command-config", cfg,
                         "describe", "--transactional-id", txid, check=False)
        out = w.probe(f"kafka-transactions describe {txid}", res.stdout + res.stderr)
        if txid not in own:
            assert res.returncode != 0, f"B describes transactional id {txid}: {out[-2000:]}"
    res = kafka_tool("kafka-transactions", "--bootstrap-server", b.bootstrap, "--command-config", cfg,
                     "describe-producers", "--topic", f"{a.id}.orders", "--partition", "0", check=False)
    out = w.probe("kafka-transactions describe-producers", res.stdout + res.stderr)
    assert res.returncode != 0, out[-2000:]
    w.assert_a_unaffected("transactions")


def test_b_cannot_fence_a_open_transaction(world):
    w, a, b = world, world.a, world.b
    open_recs = [(f"open-{i}", f"{A_MARK}-open-{i}") for i in range(3)]
    w.txn.begin_transaction()
    for k, v in open_recs:
        w.txn.produce("ledger", key=k, value=v)
    assert w.txn.flush(30) == 0
    # A's records are in the log, uncommitted.
    raw = read_all({"bootstrap.servers": POOL_BOOTSTRAP}, a.pool_name("ledger"), 1, isolation="read_uncommitted")
    assert set(open_recs) <= set(raw)
    for txid in (A_TXID, f"{a.id}.{A_TXID}", f"{b.id}.{a.id}.{A_TXID}"):
        p = Producer({**b.confluent_config(), "transactional.id": txid, "transaction.timeout.ms": 60000})
        try:
            p.init_transactions(30)
            p.begin_transaction()
            p.produce("mine", key=B_MARK, value=f"{B_MARK}-txn")
            p.commit_transaction(30)
        except KafkaException as e:
            w.probe(f"B init_transactions {txid}", e)
        p.flush(5)
    w.txn.commit_transaction(30)
    w.ledger = sorted(w.ledger + open_recs)
    assert pool_transactional_ids(a.prefix) == {A_TXID}, pool_transactional_ids(a.prefix)
    w.assert_a_unaffected("fence")


# --------------------------------------------------------------------------- deletes and cluster

def test_b_cannot_delete_or_alter_a_topics(world, java_helpers, tmp_path):
    w, a, b = world, world.a, world.b
    admin = b.admin()
    targets = ["orders", "pay.ments", f"{a.id}.orders", f"{a.id}.ledger", f"{a.id}..orders"]
    for t, f in admin.delete_topics(targets, operation_timeout=30, request_timeout=30).items():
        with pytest.raises(KafkaException) as ei:
            f.result(timeout=TIMEOUT)
        w.probe(f"delete_topics {t}", ei.value)
        assert kcodes(ei.value) in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.TOPIC_EXCEPTION), ei.value
    for t, f in admin.create_partitions([NewPartitions(f"{a.id}.orders", 6), NewPartitions("orders", 6)],
                                        request_timeout=30).items():
        with pytest.raises(KafkaException) as ei:
            f.result(timeout=TIMEOUT)
        w.probe(f"create_partitions {t}", ei.value)
    try:
        fs = admin.delete_records([TopicPartition(f"{a.id}.orders", 0, 5), TopicPartition("orders", 0, 5)])
        for tp, f in fs.items():
            with pytest.raises(KafkaException) as ei:
                f.result(timeout=TIMEOUT)
            w.probe(f"delete_records {tp.topic}", ei.value)
    except KafkaException as e:
        w.probe("delete_records", e)
    res = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config", props_file(tmp_path, b),
                     "--delete", "--topic", f"{a.id}.orders", check=False)
    w.probe("kafka-topics --delete", res.stdout + res.stderr)
    a_id = pool_admin().describe_topics(TopicCollection([a.pool_name("pay.ments")]))[a.pool_name("pay.ments")] \
        .result(timeout=TIMEOUT).topic_id
    lines = topic_id_answers(java_helpers, b, a_id, "delete")
    out = w.probe("delete by A's topic id", "\n".join(lines))
    unknown = topic_id_answers(java_helpers, b, RANDOM_TOPIC_ID, "delete")
    w.probe("delete by a random topic id", "\n".join(unknown))
    assert a.pool_name("pay.ments") in pool_topics(""), "B deleted A's topic by its id"
    w.assert_a_unaffected("delete")
    assert [l.replace(java_uuid(a_id), "<id>") for l in lines] == \
           [l.replace(RANDOM_TOPIC_ID, "<id>") for l in unknown], (lines, unknown)
    assert any(l.startswith("error UnknownTopicIdException") for l in lines), out


def test_broker_configs_denied_without_pool_addresses(world, tmp_path):
    w, b = world, world.b
    admin = b.admin()
    for f in admin.describe_configs([ConfigResource(ResourceType.BROKER, "1")], request_timeout=30).values():
        with pytest.raises(KafkaException) as ei:
            f.result(timeout=TIMEOUT)
        w.probe("describe_configs broker", ei.value)
        assert kcodes(ei.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED, ei.value
    res = kafka_tool("kafka-configs", "--bootstrap-server", b.bootstrap, "--command-config", props_file(tmp_path, b),
                     "--entity-type", "brokers", "--entity-name", "1", "--describe", "--all", check=False)
    out = w.probe("kafka-configs brokers", res.stdout + res.stderr)
    assert "AuthorizationException" in out or "Authorization" in out, out[-2000:]
    assert "listeners=" not in out and "advertised.listeners" not in out, out[-2000:]
    res = kafka_tool("kafka-configs", "--bootstrap-server", b.bootstrap, "--command-config", props_file(tmp_path, b),
                     "--entity-type", "brokers", "--entity-default", "--describe", check=False)
    w.probe("kafka-configs broker default", res.stdout + res.stderr)
    cluster = admin.describe_cluster(request_timeout=30).result(timeout=TIMEOUT)
    w.probe("describe_cluster", [(n.host, n.port) for n in cluster.nodes])
    w.assert_a_unaffected("broker configs")


POOL_INTERNAL_TOPICS = {"__consumer_offsets", "__transaction_state", "__share_group_state"}


def test_pool_has_nothing_of_b_outside_its_namespace(world):
    """Runs last: through the pool, B's attempts created no topic, group or transactional id
    outside `<B>.`, and A's namespace holds exactly what A made."""
    w, a, b = world, world.a, world.b
    before = w.pool_before
    attack = set(names_b_tries(w)) | {A_GROUP, A_TXID}
    topics = set(pool_admin().list_topics(timeout=20).topics)
    groups, txids = pool_groups(""), pool_transactional_ids("")
    for kind, now, was in (("topic", topics, before["topics"]), ("group", groups, before["groups"]),
                           ("transactional id", txids, before["txids"])):
        # The pool's own internal topics appear on a fresh pool with the first group
        # and transaction (A's); they are the pool's, not B's doing.
        new = {n for n in now - was if not (kind == "topic" and n in POOL_INTERNAL_TOPICS)}
        bad = {n for n in new if not n.startswith(a.prefix)
               and ((b.id in n and not n.startswith(b.prefix)) or n in attack)}
        assert not bad, f"new pool {kind}s outside B's namespace: {bad}"
    assert pool_topics(a.prefix) == set(A_TOPICS)
    assert pool_groups(a.prefix) == {A_GROUP}
    assert pool_transactional_ids(a.prefix) == {A_TXID}
    assert len(w.texts) > 20, "the leak probe saw too few texts to mean anything"


# --------------------------------------------------------------------------- policies

def reader_policy(tid: str, write=False, deny_read=False) -> dict:
    st = [
        # Connect is needed to use the gateway at all (SPEC 6); nothing else on the cluster.
        {"Effect": "Allow", "Action": ["kafka-cluster:Connect"], "Resource": [f"arn:sluice:kafka:::cluster/{tid}"]},
        {"Effect": "Allow",
         "Action": ["kafka-cluster:ReadData", "kafka-cluster:DescribeTopic"] + (["kafka-cluster:WriteData"] if write else []),
         "Resource": [f"arn:sluice:kafka:::topic/{tid}/orders*"]},
        {"Effect": "Allow", "Action": ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
         "Resource": [f"arn:sluice:kafka:::group/{tid}/readers"]},
    ]
    if deny_read:
        st.append({"Effect": "Deny", "Action": ["kafka-cluster:ReadData"],
                   "Resource": [f"arn:sluice:kafka:::topic/{tid}/orders*"]})
    return {"Version": "2012-10-17", "Statement": st}


def test_policy_changes_reach_live_connections(tenant_gateway):
    tid = new_tenant_id()

    def doc(**kw):
        return {"id": tid, "policies": {"all": ALLOW_ALL, "reader": reader_policy(tid, **kw)},
                "principals": {"admin": {"policies": ["all"]}, "reader": {"policies": ["reader"]}}}

    version = put_tenant(doc())
    admin_t = Tenant(tenant_gateway, tid, version, "admin")
    deadline = time.time() + 15
    while not admin_t.admitted(timeout=3):
        assert time.time() < deadline, "tenant not admitted"
        time.sleep(0.3)
    create_topics(admin_t, {"orders-1": 1, "payments": 1})
    assert produce(admin_t.confluent_config(), "orders-1", [(f"o{i}", f"order-{i}") for i in range(5)]) == []
    reader = Tenant(tenant_gateway, tid, version, "reader")
    assert reader.visible_topics() == {"orders-1"}, reader.visible_topics()

    c = Consumer({**reader.confluent_config(), "group.id": "readers", "auto.offset.reset": "earliest"})
    stats = {}

    def on_stats(s):
        try:
            stats["last"] = json.loads(s)
        except ValueError as e:  # never raise into librdkafka's callback
            stats["error"] = repr(e)

    p = Producer({**reader.confluent_config(), "message.timeout.ms": 3000,
                  "topic.metadata.refresh.interval.ms": 500,
                  "statistics.interval.ms": 200, "stats_cb": on_stats})
    try:
        c.subscribe(["orders-1"])
        got, dl = [], time.time() + TIMEOUT
        while len(got) < 5:
            assert time.time() < dl, f"reader consumed only {got}"
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value().decode())
        assert sorted(got) == [f"order-{i}" for i in range(5)]

        def try_produce(v):
            res = []
            try:
                p.produce("orders-1", value=v, on_delivery=lambda e, m: res.append(e))
            except KafkaException as e:
                # librdkafka fails produce() at once while it still holds the topic's
                # last error (until its next metadata refresh): a denial, retried.
                return (True, e.args[0])
            p.flush(5)
            c.poll(0)
            # (reported, error); KafkaError cannot be compared with other types.
            return (True, res[0]) if res else (False, None)

        reported, err = try_produce("denied")
        assert reported, "no delivery report within 5 s"
        assert err is not None, "reader without WriteData produced"
        assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

        def connects():
            time.sleep(0.5)  # a fresh statistics callback
            p.poll(0)
            return {n: br["connects"] for n, br in stats["last"]["brokers"].items() if br.get("nodeid", -1) >= 0}

        before = connects()
        put_tenant(doc(write=True))
        t0 = time.time()
        while True:
            reported, err = try_produce(f"allowed-{time.time()}")
            if reported and err is None:
                break
            assert time.time() - t0 < POLICY_SECS + CLIENT_SLACK, f"WriteData not applied within 5 s: {err}"
            time.sleep(0.2)
        took_write = time.time() - t0
        after = connects()
        assert all(after.get(n, 0) == k for n, k in before.items() if k), \
            f"the producer reconnected (connects {before} -> {after}); the policy must reach the live connection"

        put_tenant(doc(write=True, deny_read=True))
        t1 = time.time()
        assert produce(admin_t.confluent_config(), "orders-1", [("late", "after-deny")]) == []
        denied = None
        while time.time() - t1 < POLICY_SECS + CLIENT_SLACK:
            m = c.poll(0.3)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    denied = time.time() - t1
                    break
            else:
                assert time.time() - t1 < POLICY_SECS, f"record delivered {time.time() - t1:.1f}s after Deny"
        assert denied is not None, "the live consumer got no TOPIC_AUTHORIZATION_FAILED within 5 s of the Deny"
        print(f"WriteData applied after {took_write:.2f}s, Deny ReadData after {denied:.2f}s")
    finally:
        p.flush(5)
        c.close()
