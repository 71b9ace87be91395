"""The Java client (kafka-clients 4.x, the helper programs in tests/java/) through the gateway:
idempotent producer, transactions, classic and KIP-848 consumer groups with rebalances,
committed offsets, cluster addresses, and a producer riding through leader changes."""
import collections
import re

import pytest

from conftest import POOL_BOOTSTRAP, kafka_tool
from jvm import gateway_stays_up, JavaProc, assert_gateway_addresses, dump_topic, java_helpers, parse_acks, run_java  # noqa: F401

pytestmark = pytest.mark.usefixtures("gateway_stays_up")


def create_topic(bootstrap, topic, partitions=3, rf=3):
    res = kafka_tool("kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", topic,
                     "--partitions", partitions, "--replication-factor", rf)
    assert f"Created topic {topic}." in res.stdout, res.stdout


def produce(gateway, build, topic, count, prefix, *extra, timeout=180):
    _, lines = run_java(build, "Produce", "--bootstrap", gateway.bootstrap, "--topic", topic, "--count", count,
                        "--prefix", prefix, *extra, timeout=timeout)
    acked, errors, done = parse_acks(lines)
    assert not errors, errors[:5]
    assert done == f"done sent={count} acked={count} errors=0", done
    assert_gateway_addresses(gateway, lines)
    return acked


def admin(build, bootstrap, cmd, *args, timeout=120):
    _, lines = run_java(build, "AdminCheck", cmd, "--bootstrap", bootstrap, *args, timeout=timeout)
    assert lines and lines[-1] == "done", lines
    return lines[:-1]


def leaders(build, bootstrap, topic):
    out = {}
    for l in admin(build, bootstrap, "leaders", "--topic", topic):
        m = re.fullmatch(r"part (\d+) leader (-?\d+) replicas (\S+) isr (\S+)", l)
        assert m, l
        out[int(m[1])] = (int(m[2]), [int(x) for x in m[3].split(",")], [int(x) for x in m[4].split(",") if x != "-"])
    return out


def assert_exactly_once(acked, records, what):
    """Every acknowledged value is in `records` exactly once, at the offset it was acked with."""
    seen = collections.Counter(v for _, _, _, v in records)
    dups = {v: c for v, c in seen.items() if c > 1 and v in acked}
    missing = [v for v in acked if v not in seen]
    assert not missing, f"{what}: {len(missing)} acknowledged records lost, e.g. {missing[:10]}"
    assert not dups, f"{what}: {len(dups)} acknowledged records duplicated, e.g. {list(dups.items())[:10]}"
    where = {v: (p, o) for p, o, _, v in records}
    wrong = [(v, acked[v], where[v]) for v in acked if where[v] != acked[v]]
    assert not wrong, f"{what}: records not at their acknowledged offsets: {wrong[:10]}"


# ---------------------------------------------------------------------------- cluster


def test_describe_cluster_advertises_gateway(gateway, java_helpers):
    lines = admin(java_helpers, gateway.bootstrap, "cluster")
    nodes = {}
    for l in lines:
        if l.startswith("node "):
            _, nid, host, port = l.split()
            nodes[int(nid)] = (host, int(port))
    assert {1, 2, 3} <= set(nodes), lines
    pool_ports = {int(a.rsplit(":", 1)[1]) for a in POOL_BOOTSTRAP.split(",")}
    for nid, (host, port) in nodes.items():
        if gateway.proc is None:
            assert port == 29090 + nid, nodes
        else:
            assert host == gateway.bootstrap.rsplit(":", 1)[0], nodes
            assert port == gateway.broker_port_base + nid, nodes
            assert port not in pool_ports, nodes
    controller = [int(l.split()[1]) for l in lines if l.startswith("controller ")]
    assert controller and controller[0] in nodes, lines


# ---------------------------------------------------------------------------- producer


def test_idempotent_producer_exactly_once(gateway, java_helpers, topic_name):
    bs = gateway.bootstrap
    n = 6000
    create_topic(bs, topic_name, 3)
    acked = produce(gateway, java_helpers, topic_name, n, "idem",
                    "--prop", "max.in.flight.requests.per.connection=5", "--prop", "batch.size=4096")
    assert len(acked) == n
    records, ends = dump_topic(java_helpers, bs, topic_name)
    assert len(records) == n and sum(ends.values()) == n
    assert_exactly_once(acked, records, "idempotent producer")

    # The brokers saw one idempotent producer: same producer id on every partition, epoch 0,
    # and per-partition sequences 0..count-1 (DescribeProducers through the gateway).
    per_part = collections.Counter(p for p, _ in acked.values())
    states = [l.split() for l in admin(java_helpers, bs, "describe-producers", "--topic", topic_name)]
    assert len(states) == len(per_part), states
    assert len({s[2] for s in states}) == 1 and int(states[0][2]) >= 0, states
    for _, p, _, epoch, last_seq in states:
        assert int(epoch) == 0, states
        assert int(last_seq) == per_part[int(p)] - 1, (states, per_part)


# ---------------------------------------------------------------------------- transactions


def test_transactions_commit_abort_fence(gateway, java_helpers, topic_name):
    bs = gateway.bootstrap
    create_topic(bs, topic_name, 3)
    txid = f"tx-{topic_name}"
    group = f"g-{topic_name}"
    n, m = 200, 70
    _, lines = run_java(java_helpers, "Txn", "--bootstrap", bs, "--topic", topic_name, "--txid", txid,
                        "--group", group, "--n", n, "--m", m, timeout=180)
    assert lines[:5] == ["init", f"committed c1 {n}", f"aborted a {m}", f"committed c2 {n}", "aborted a2 1"], lines
    # The offset committed inside the committed transaction is visible; the aborted one is not.
    assert [l for l in lines if l.startswith("groupoffset ")] == ["groupoffset 0 42 txn-meta"], lines
    assert "init2" in lines
    fenced = [l for l in lines if l.startswith("fenced ") or l == "notfenced"]
    assert len(fenced) == 1 and fenced[0].startswith("fenced ") and \
        re.search(r"ProducerFenced|InvalidProducerEpoch", fenced[0]), lines
    assert lines[-2:] == ["committed c3 1", "done"], lines

    committed = sorted([f"c1-{i}" for i in range(n)] + [f"c2-{i}" for i in range(n)] + ["c3-0"])
    aborted = sorted([f"a-{i}" for i in range(m)] + ["a2-0"])

    recs_rc, ends_rc = dump_topic(java_helpers, bs, topic_name, "read_committed")
    assert sorted(v for *_, v in recs_rc) == committed

    recs_ru, ends_ru = dump_topic(java_helpers, bs, topic_name, "read_uncommitted")
    assert sorted(v for *_, v in recs_ru) == sorted(committed + aborted)
    # Control records take offsets too: with everything decided, LSO == high watermark.
    assert ends_rc == ends_ru
    assert sum(ends_ru.values()) > len(committed) + len(aborted)

    res = kafka_tool("kafka-transactions", "--bootstrap-server", bs, "describe", "--transactional-id", txid)
    rows = [l.split() for l in res.stdout.splitlines() if l.strip()]
    hdr, row = rows[0], rows[1]
    info = dict(zip(hdr, row))
    assert info["TransactionalId"] == txid and info["TransactionState"] == "CompleteCommit", res.stdout
    res = kafka_tool("kafka-transactions", "--bootstrap-server", bs, "list")
    assert txid in res.stdout.split(), res.stdout


# ---------------------------------------------------------------------------- groups


class Member:
    """A running Group helper and the assignment it reports."""

    def __init__(self, build, bootstrap, topic, group, protocol, name, extra=()):
        # `extra`: more helper arguments, e.g. --prop pairs for SASL (test_tenant_workloads).
        self.name = name
        self.proc = JavaProc(build, "Group", "--bootstrap", bootstrap, "--topic", topic, "--group", group,
                             "--protocol", protocol, "--name", name, "--max-seconds", 240, *extra)

    @staticmethod
    def _parts(s):
        return set() if s == "-" else {int(x) for x in s.split(",")}

    def assignment(self, lines=None):
        """Current assignment from the callback trail; checks every record came from an
        assigned partition. Returns (assignment, records [(p, o, v)], commit failures)."""
        cur, recs, fails = set(), [], []
        for l in (self.proc.snapshot() if lines is None else lines):
            kind, _, rest = l.partition(" ")
            if kind == "assigned":
                cur |= self._parts(rest)
            elif kind in ("revoked", "lost"):
                cur -= self._parts(rest)
            elif kind == "assignment":
                cur = self._parts(rest)
            elif kind == "rec":
                p, o, v = rest.split(" ", 2)
                assert int(p) in cur, f"{self.name} got a record of partition {p} while assigned {sorted(cur)}"
                recs.append((int(p), int(o), v))
            elif kind == "commitfail":
                fails.append(l)
        return cur, recs, fails

    def wait_assignment(self, pred, timeout, what):
        return self.proc.wait_for(lambda lines: pred(self.assignment(lines)[0]), timeout, f"{self.name}: {what}")


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_consumer_group_rebalance(gateway, java_helpers, topic_name, protocol):
    bs = gateway.bootstrap
    parts = 6
    everything = set(range(parts))
    create_topic(bs, topic_name, parts)
    group = f"g-{topic_name}"
    expected = set(produce(gateway, java_helpers, topic_name, 1200, "p1"))

    def consumed(*members):
        return {v for mem in members for _, _, v in mem.assignment()[1]}

    a = Member(java_helpers, bs, topic_name, group, protocol, "a")
    b = None
    try:
        a.wait_assignment(lambda s: s == everything, 90, "all partitions")
        a.proc.wait_for(lambda _: expected <= consumed(a), 60, "phase 1 records")

        b = Member(java_helpers, bs, topic_name, group, protocol, "b")
        b.wait_assignment(lambda s: len(s) > 0, 90, "a share of the partitions")
        a.wait_assignment(lambda s: 0 < len(s) < parts and not (s & b.assignment()[0])
                          and s | b.assignment()[0] == everything, 90, "the other share")
        sa, sb = a.assignment()[0], b.assignment()[0]
        assert len(sa) == len(sb) == parts // 2, (sa, sb)

        desc = admin(java_helpers, bs, "describe-group", "--group", group)
        assert desc[0].upper().split()[1:] == ["STABLE", protocol.upper(), "2"], desc
        assert sorted(desc[1:]) == sorted([f"member a {','.join(map(str, sorted(sa)))}",
                                           f"member b {','.join(map(str, sorted(sb)))}"]), desc

        p2 = produce(gateway, java_helpers, topic_name, 1200, "p2")
        expected |= set(p2)
        a.proc.wait_for(lambda _: expected <= consumed(a, b), 90, "phase 2 records by a and b")
        b_recs = b.assignment()[1]
        assert b_recs and {p for p, _, _ in b_recs} <= sb, "b consumed nothing or outside its share"
        # Each member consumed phase 2 records only from its own partitions.
        assert {p2[v][0] for _, _, v in b_recs if v.startswith("p2-")} <= sb

        rc = b.proc.stop(60)
        assert rc == 0 and b.proc.snapshot()[-1] == "closed", (rc, b.proc.snapshot()[-5:], b.proc.stderr()[-2000:])
        a.wait_assignment(lambda s: s == everything, 90, "all partitions back after b left")

        expected |= set(produce(gateway, java_helpers, topic_name, 600, "p3"))
        a.proc.wait_for(lambda _: expected <= consumed(a, b), 90, "phase 3 records")
        rc = a.proc.stop(60)
        assert rc == 0 and a.proc.snapshot()[-1] == "closed", (rc, a.proc.snapshot()[-5:], a.proc.stderr()[-2000:])
    finally:
        a.proc.kill()
        if b:
            b.proc.kill()

    all_recs = a.assignment()[1] + b.assignment()[1]
    values = collections.Counter(v for _, _, v in all_recs)
    lost = expected - set(values)
    assert not lost, f"{len(lost)} records never consumed: {sorted(lost)[:10]}"
    assert len(values) == len(expected) == 3000
    fails = a.assignment()[2] + b.assignment()[2]
    dups = {v: c for v, c in values.items() if c > 1}
    if not fails:
        # Offsets were committed on every revocation, so the hand-over must be exact.
        assert not dups, f"{len(dups)} records consumed twice without any failed commit: {list(dups)[:10]}"

    # Everything consumed is committed: group offsets equal the end offsets.
    ends = {}
    for p, o, _ in all_recs:
        ends[p] = max(ends.get(p, 0), o + 1)
    offs = {int(l.split()[1]): int(l.split()[2]) for l in admin(java_helpers, bs, "group-offsets", "--group", group)}
    assert offs == ends


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_committed_offsets(gateway, java_helpers, topic_name, protocol):
    bs = gateway.bootstrap
    create_topic(bs, topic_name, 3)
    group = f"g-{topic_name}"
    _, lines = run_java(java_helpers, "Offsets", "--bootstrap", bs, "--topic", topic_name, "--group", group,
                        "--protocol", protocol, "--offsets", "0:5,1:7,2:3", "--delete", 1, "--alter", "2:9",
                        timeout=150)
    assert lines == [
        "committed 0 5 meta-0", "committed 1 7 meta-1", "committed 2 3 meta-2",
        "admin 0 5 meta-0", "admin 1 7 meta-1", "admin 2 3 meta-2",
        "after-delete 0 5 meta-0", "after-delete 1 none", "after-delete 2 3 meta-2",
        "after-alter 0 5 meta-0", "after-alter 1 none", "after-alter 2 9 -",
        "first 0 5", "first 1 0", "first 2 9",
        "done",
    ], lines


# ---------------------------------------------------------------------------- leader changes


def test_producer_survives_leader_changes(gateway, java_helpers, topic_name):
    """Leadership of every partition moves twice (reorder replicas + preferred election,
    done by the operator on the pool) while an idempotent acks=all producer runs through
    the gateway. All records must be acknowledged and present exactly once."""
    bs = gateway.bootstrap
    n = 6000
    create_topic(bs, topic_name, 6)
    before = leaders(java_helpers, POOL_BOOTSTRAP, topic_name)
    prod = JavaProc(java_helpers, "Produce", "--bootstrap", bs, "--topic", topic_name, "--count", n,
                    "--prefix", "lc", "--rate", 400, "--prop", "linger.ms=0")
    moves = []
    try:
        count_acks = lambda lines: sum(1 for l in lines if l.startswith("ack "))  # noqa: E731
        for threshold in (1200, 3000):
            prod.wait_for(lambda lines: count_acks(lines) >= threshold, 90, f"{threshold} acks")
            out = admin(java_helpers, POOL_BOOTSTRAP, "rotate-leaders", "--topic", topic_name)
            moved = {int(l.split()[1]): (int(l.split()[2]), int(l.split()[3])) for l in out if l.startswith("moved ")}
            assert len(moved) == 6 and all(o != nw for o, nw in moved.values()), out
            moves.append(moved)
        still_running = prod.proc.poll() is None
        assert prod.wait(180) == 0, prod.stderr()[-3000:]
    finally:
        prod.kill()
    assert still_running, "producer finished before the second leader change; the test proved nothing"
    acked, errors, done = parse_acks(prod.snapshot())
    assert not errors, errors[:5]
    assert done == f"done sent={n} acked={n} errors=0", (done, prod.stderr()[-3000:])
    assert_gateway_addresses(gateway, prod.snapshot())

    # The gateway's metadata shows the new leaders.
    after = leaders(java_helpers, bs, topic_name)
    assert {p: l for p, (l, _, _) in after.items()} == {p: nw for p, (_, nw) in moves[-1].items()}, (before, after)
    assert {p: l for p, (l, _, _) in before.items()} == {p: o for p, (o, _) in moves[0].items()}

    records, _ = dump_topic(java_helpers, bs, topic_name)
    assert len(records) == n
    assert_exactly_once(acked, records, "leader changes")
