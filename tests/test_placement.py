"""Placement against the real pool (SPEC 8, issue 7).

- A tenant topic created directly on the pool with a skewed assignment (RF 2, every leader on
  broker 1, nothing on broker 3) carries traffic through a SASL gateway (VerifiableProducer
  and VerifiableConsumer as the tenant). The gateway measures per-partition bytes and reports
  them to `__sluice_placement`; `sluice placement apply` plans from that load and executes
  (reorder + preferred election, throttled reassignments). Afterwards the imbalance figure has
  dropped, broker 3 holds replicas, leadership is spread, no reassignment runs, every throttle
  sluice set is gone, and the producer/consumer lost and duplicated nothing.
- Topics and partitions a tenant creates through the gateway get explicit assignments from
  the planner: leaders spread over the three brokers (per tenant, across topics), one
  replica per rack.

Only the test tenant's topics are planned (`--tenant`), so other tests' topics on the shared
pool are never moved; broker 4 (another test may start it) is excluded with `--drain 4`.
"""
import json
import subprocess
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from conftest import POOL_BOOTSTRAP, ROOT, SLUICE_BIN, start_gateway
from jvm import JavaProc, java_helpers  # noqa: F401  (fixture)
from tenant_env import Tenant, TenantGateway
from tenants import allow_all_doc, delete_tenant, put_tenant
from test_sasl import Keys, SaslEnv, sasl_auth_config, stop_gateway

RACK = {1: "a", 2: "b", 3: "c", 4: "a"}
THROTTLE_KEYS = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")
RATE_KEYS = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")


@pytest.fixture(scope="module")
def placement_gateway(pool, tmp_path_factory):
    keys = Keys(tmp_path_factory.mktemp("placement-keys"))
    # Load reports every 5 s; the background rebalancer stays off (the CLI applies here).
    extra = sasl_auth_config(keys) + "\n[placement]\ninterval_secs = 5\n"
    gw = start_gateway(tmp_path_factory.mktemp("placement-gateway"), extra, auth="sasl")
    yield TenantGateway(SaslEnv(gw, keys))
    stop_gateway(gw)
    assert "panicked" not in gw.log(), gw.log()[-5000:]


@pytest.fixture
def tenant(placement_gateway):
    tid = "t" + uuid.uuid4().hex[:8]
    version = put_tenant(allow_all_doc(tid))
    t = Tenant(placement_gateway, tid, version)
    deadline = time.time() + 15
    while not t.admitted(timeout=2):
        assert time.time() < deadline, placement_gateway.log()[-3000:]
        time.sleep(0.3)
    yield t
    adm = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    mine = [n for n in adm.list_topics(timeout=20).topics if n.startswith(t.prefix)]
    if mine:
        for f in adm.delete_topics(mine, operation_timeout=30).values():
            try:
                f.result()
            except Exception:  # noqa: BLE001  (already gone)
                pass
    delete_tenant(tid)


def placement(*args, timeout=600):
    res = subprocess.run([str(SLUICE_BIN), "placement", *map(str, args), "--bootstrap", POOL_BOOTSTRAP],
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"sluice placement {args} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]


def pool_partitions(adm, topic):
    md = adm.list_topics(topic, timeout=20).topics[topic]
    return {p: (list(m.replicas), m.leader, list(m.isrs)) for p, m in md.partitions.items()}


def throttles_left(adm, topic):
    """Throttle configs still set on the topic or on a pool broker (dynamic values only)."""
    left = []
    res = [ConfigResource(ConfigResource.Type.TOPIC, topic)] + \
          [ConfigResource(ConfigResource.Type.BROKER, str(b)) for b in adm.list_topics(timeout=20).brokers]
    for one in res:  # librdkafka takes one BROKER resource per call
        r, f = next(iter(adm.describe_configs([one]).items()))
        for k, v in f.result(30).items():
            if k in THROTTLE_KEYS + RATE_KEYS and v.value not in (None, "") and not v.is_default:
                left.append((r.name, k, v.value))
    return left


def events(lines, name):
    return [json.loads(l) for l in lines if l.startswith("{") and json.loads(l).get("name") == name]


def test_skewed_tenant_is_rebalanced_without_loss(tenant, java_helpers, tmp_path):  # noqa: F811
    adm = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    topic = "hot"
    pool_topic = tenant.pool_name(topic)
    # Skew: RF 2, all six leaders on broker 1, followers on 2, nothing on 3.
    f = adm.create_topics([NewTopic(pool_topic, num_partitions=6, replica_assignment=[[1, 2]] * 6,
                                    config={"min.insync.replicas": "1"})])[pool_topic]
    f.result(30)
    deadline = time.time() + 30
    while any(len(isr) < 2 or leader != 1 for _, leader, isr in pool_partitions(adm, pool_topic).values()):
        assert time.time() < deadline, pool_partitions(adm, pool_topic)
        time.sleep(0.5)

    props = tmp_path / "client.properties"
    props.write_text(tenant.java_properties() + "enable.idempotence=true\nacks=all\nretries=2147483647\n"
                     "delivery.timeout.ms=120000\nrequest.timeout.ms=15000\nlinger.ms=5\n")
    cprops = tmp_path / "consumer.properties"
    cprops.write_text(tenant.java_properties() + "auto.offset.reset=earliest\n")
    prod = JavaProc(java_helpers, "org.apache.kafka.tools.VerifiableProducer", "--bootstrap-server", tenant.bootstrap,
                    "--topic", topic, "--max-messages", -1, "--throughput", 400, "--acks", -1,
                    "--value-prefix", 7, "--producer.config", props, stderr_path=str(tmp_path / "producer.stderr"))
    cons = JavaProc(java_helpers, "org.apache.kafka.tools.VerifiableConsumer", "--bootstrap-server", tenant.bootstrap,
                    "--topic", topic, "--group-id", "g1", "--verbose", "--consumer.config", cprops,
                    stderr_path=str(tmp_path / "consumer.stderr"))
    acks = lambda lines: sum(1 for l in lines if '"producer_send_success"' in l)  # noqa: E731
    try:
        prod.wait_for(lambda lines: acks(lines) >= 1000, 90, "1000 acks before planning")
        # The gateway's load report (every 5 s, rates after two samples) reaches the state topic.
        deadline = time.time() + 60
        while True:
            st = placement("status", "--tenant", tenant.id)[-1]
            loads = {b["id"]: b["bytes_in_per_sec"] + b["bytes_out_per_sec"] for b in st["brokers"]}
            if loads.get(1, 0) > 0 and st["imbalance"] > 1.5:
                break
            assert time.time() < deadline, f"no measured load reached the planner: {st}"
            time.sleep(2)
        before = st
        t0 = time.time()
        out = placement("apply", "--tenant", tenant.id, "--drain", 4, "--max-concurrent-moves", 2,
                        "--throttle", 20_000_000)
        took = time.time() - t0
        plan, done = out[0], out[-1]
        assert "done" in done, out[-3:]
        assert plan["imbalance_before"] > 1.5, plan
        assert plan["leader_changes"] or plan["moves"], plan
        assert done["done"]["failed"] == [] and not done["done"]["cancelled"], done
        # Throttles were set while moves ran (progress lines exist) and are gone now.
        assert throttles_left(adm, pool_topic) == []
        # Keep traffic flowing after the moves, then let the report catch up with the new layout.
        at = acks(prod.snapshot())
        prod.wait_for(lambda lines: acks(lines) >= at + 1500, 90, "1500 acks after the moves")
        time.sleep(12)
        after = placement("status", "--tenant", tenant.id)[-1]
    finally:
        prod.proc.terminate()
        rc = prod.wait(120)
        prod.kill()

    parts = pool_partitions(adm, pool_topic)
    print(f"\nplacement: imbalance status before {before['imbalance']:.3f}, plan "
          f"{plan['imbalance_before']:.3f} -> predicted {plan['imbalance_after']:.3f}, measured after "
          f"{after['imbalance']:.3f}; {len(plan['leader_changes'])} leader changes, {len(plan['moves'])} moves, "
          f"{plan['bytes_moved']} bytes moved, {took:.1f} s; layout {parts}")
    assert after["reassignments"] == [] and after["applying"] is None, after
    assert after["imbalance"] < before["imbalance"] - 0.2, (before, after)
    assert any(3 in r for r, _, _ in parts.values()), parts
    leaders = [l for _, l, _ in parts.values()]
    assert len(set(leaders)) >= 2, parts
    for r, _, _ in parts.values():
        assert len(r) == 2 and len({RACK[b] for b in r}) == 2 and 4 not in r, parts

    # Nothing acknowledged was lost or duplicated; the consumer read every record once.
    assert rc in (0, 143), prod.stderr()[-3000:]
    lines = prod.snapshot()
    errors = events(lines, "producer_send_error")
    assert not errors, errors[:3]
    acked = {}
    for e in events(lines, "producer_send_success"):
        assert e["value"] not in acked, f"value {e['value']} acknowledged twice"
        acked[e["value"]] = (e["partition"], e["offset"])
    try:
        cons.wait_for(lambda ls: len({e["value"] for e in events(ls, "record_data")} & set(acked)) >= len(acked),
                      120, "every acknowledged record consumed")
    finally:
        cons.proc.terminate()
        cons.wait(60)
        cons.kill()
    seen, dups = {}, []
    for e in events(cons.snapshot(), "record_data"):
        key = e["value"]
        if key in seen:
            dups.append((key, seen[key], (e["partition"], e["offset"])))
        seen[key] = (e["partition"], e["offset"])
    lost = [v for v in acked if v not in seen]
    assert not lost, f"{len(lost)} acknowledged records not consumed, e.g. {lost[:10]}"
    assert not dups, f"{len(dups)} records consumed twice, e.g. {dups[:10]}"
    moved = [(v, acked[v], seen[v]) for v in acked if seen[v] != acked[v]]
    assert not moved, moved[:10]


def test_new_tenant_topics_are_spread(tenant):
    adm = tenant.admin()
    pool = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    # The gateway's pool view is refreshed every 5 s after start.
    time.sleep(6)
    singles = [f"one-{i}" for i in range(6)]
    for f in adm.create_topics([NewTopic(n, num_partitions=1) for n in singles]).values():
        f.result(30)
    adm.create_topics([NewTopic("six", num_partitions=6)])["six"].result(30)
    time.sleep(1)
    leaders_of_singles = []
    for n in singles:
        parts = pool_partitions(pool, tenant.pool_name(n))
        (replicas, leader, _), = parts.values()
        leaders_of_singles.append(replicas[0])
        assert len({RACK[b] for b in replicas}) == len(replicas), (n, parts)
    # Kafka alone picks a random start broker per topic (all even by chance: 12 %); the
    # planner spreads the tenant's leaders.
    brokers = list(pool.list_topics(timeout=20).brokers)
    counts = [leaders_of_singles.count(b) for b in brokers]
    assert max(counts) - min(counts) <= 1, (brokers, leaders_of_singles)
    six = pool_partitions(pool, tenant.pool_name("six"))
    firsts = [r[0] for r, _, _ in six.values()]
    counts = [firsts.count(b) for b in brokers]
    assert max(counts) - min(counts) <= 1, (brokers, six)
    for r, _, _ in six.values():
        assert len({RACK[b] for b in r}) == len(r), six

    # CreatePartitions: the three added partitions take one preferred leader per broker.
    adm.create_partitions([NewPartitions("six", 9)])["six"].result(30)
    time.sleep(1)
    nine = pool_partitions(pool, tenant.pool_name("six"))
    assert len(nine) == 9
    added = [nine[p][0][0] for p in (6, 7, 8)]
    assert len(set(added)) == 3, nine
    for p in (6, 7, 8):
        r = nine[p][0]
        assert len(r) == len(six[0][0]) and len({RACK[b] for b in r}) == len(r), nine


def test_interrupted_plan_is_found_cancelled_and_cleaned_then_drain_empties_broker_1(tenant):
    """An `apply` killed mid-move (as a crashed gateway would be) leaves its state in
    `__sluice_placement`: `status` shows it with the reassignments in flight and the
    throttles set; `cancel` stops the reassignments, elects and removes exactly those
    throttles. Then draining broker 1 moves every replica and leadership of the tenant off
    it (broker 1 itself keeps running)."""
    from confluent_kafka import Producer
    adm = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    pool_topic = tenant.pool_name("bulk")
    adm.create_topics([NewTopic(pool_topic, num_partitions=3, replica_assignment=[[1, 2], [2, 1], [1, 3]],
                                config={"min.insync.replicas": "1"})])[pool_topic].result(30)
    prod = Producer({"bootstrap.servers": POOL_BOOTSTRAP, "linger.ms": 20, "acks": "all"})
    value = b"x" * 10_000
    for i in range(450):  # 1.5 MB per partition
        prod.produce(pool_topic, value=value, partition=i % 3)
        if i % 50 == 0:
            prod.poll(0)
    assert prod.flush(60) == 0
    time.sleep(2)  # DescribeLogDirs sizes follow the log

    # 50 kB/s: each 1.5 MB copy takes about 30 s, so the plan is caught mid-move.
    cmd = [str(SLUICE_BIN), "placement", "apply", "--bootstrap", POOL_BOOTSTRAP, "--tenant", tenant.id,
           "--drain", "1,4", "--throttle", "50000", "--max-concurrent-moves", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            st = placement("status", "--tenant", tenant.id)[-1]
            mine = [r for r in st["reassignments"] if r["topic"] == pool_topic]
            if mine and st["applying"]:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, st
            time.sleep(0.5)
        during = throttles_left(adm, pool_topic)
    finally:
        proc.kill()  # SIGKILL: no cleanup of its own
        proc.wait(10)
    assert any(k == "follower.replication.throttled.replicas" for _, k, _ in during), during
    assert any(k == "follower.replication.throttled.rate" and v == "50000" for _, k, v in during), during
    st = placement("status", "--tenant", tenant.id)[-1]
    assert st["applying"] and st["applying"]["owner"].startswith("cli-"), st
    assert st["applying"]["throttled_topics"] == [pool_topic], st

    out = placement("cancel")[-1]
    assert out["cancelled_reassignments"] >= 1, out
    assert "CleanedUp" in out["recovery"], out
    st = placement("status", "--tenant", tenant.id)[-1]
    assert st["applying"] is None and not [r for r in st["reassignments"] if r["topic"] == pool_topic], st
    assert throttles_left(adm, pool_topic) == []

    # Drain broker 1 for this tenant, unthrottled, to the end.
    t0 = time.time()
    rounds, moved = 0, 0
    while True:
        out = placement("apply", "--tenant", tenant.id, "--drain", "1,4", "--throttle", 0)
        rounds += 1
        plan, done = out[0], out[-1]
        moved += plan["bytes_moved"]
        assert done["done"]["failed"] == [], done
        parts = pool_partitions(adm, pool_topic)
        if not any(1 in r for r, _, _ in parts.values()):
            break
        assert rounds < 4, (parts, plan)
    print(f"\ndrain of broker 1: {rounds} plan(s), {moved} bytes moved, {time.time() - t0:.1f} s; layout {parts}")
    for r, leader, _ in parts.values():
        assert 1 not in r and leader != 1 and len({RACK[b] for b in r}) == 2, parts
    assert throttles_left(adm, pool_topic) == []


def test_background_rebalancer_one_lease_holder(tenant, placement_gateway, tmp_path):
    """Two gateways with `[placement] enabled = true`: exactly one holds the lease and
    rebalances the skewed topic from the load the gateway serving the traffic reports; once
    balanced, further rounds plan nothing (hysteresis)."""
    from confluent_kafka import Producer
    keys = placement_gateway.env.keys
    extra = sasl_auth_config(keys) + f'\n[placement]\nenabled = true\ninterval_secs = 5\ntenants = ["{tenant.id}"]\ndrain = [4]\n'
    gws = []
    for i in range(2):
        (tmp_path / f"gw{i}").mkdir()
        gws.append(start_gateway(tmp_path / f"gw{i}", extra, auth="sasl"))
    adm = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    try:
        client = Tenant(TenantGateway(SaslEnv(gws[0], keys)), tenant.id)
        pool_topic = tenant.pool_name("bg")
        adm.create_topics([NewTopic(pool_topic, num_partitions=6, replica_assignment=[[1, 2]] * 6,
                                    config={"min.insync.replicas": "1"})])[pool_topic].result(30)
        prod = Producer(client.confluent_config(**{"linger.ms": 5, "acks": "all"}))
        errors = []
        t0 = time.time()
        balanced = None
        i = 0
        while time.time() - t0 < 120:
            for _ in range(100):
                prod.produce("bg", value=b"y" * 1000, partition=i % 6,
                             on_delivery=lambda e, m: errors.append(e) if e else None)
                i += 1
            prod.poll(0.25)
            parts = pool_partitions(adm, pool_topic)
            if len({l for _, l, _ in parts.values()}) >= 2 and any(3 in r for r, _, _ in parts.values()):
                balanced = time.time() - t0
                break
        assert prod.flush(60) == 0 and not errors, errors[:3]
        assert balanced is not None, (parts, gws[0].log()[-2000:], gws[1].log()[-2000:])
        applied = lambda: [g.log().count("placement: applying a plan") for g in gws]  # noqa: E731
        time.sleep(16)  # three more rounds
        first = applied()
        time.sleep(16)
        second = applied()
        print(f"\nbackground rebalancer: balanced after {balanced:.1f} s; plans applied per gateway {second}; "
              f"layout {pool_partitions(adm, pool_topic)}")
        assert sorted(second)[0] == 0 and sorted(second)[1] >= 1, second  # one lease holder acted
        assert first == second, (first, second)  # and then stopped: nothing left to improve
        assert throttles_left(adm, pool_topic) == []
    finally:
        for g in gws:
            stop_gateway(g)
    for g in gws:
        assert "panicked" not in g.log(), g.log()[-3000:]


def test_added_broker_receives_its_share(tenant):
    """Broker 4 (deploy/pool.sh start-broker 4, rack a) joins a pool where the tenant's
    replicas sit evenly on brokers 1-3: `apply` moves it its share of replicas."""
    adm = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    started = 4 not in adm.list_topics(timeout=20).brokers
    pool_topic = tenant.pool_name("grow")
    if started:
        subprocess.run([str(ROOT / "deploy" / "pool.sh"), "start-broker", "4"], check=True, cwd=ROOT, timeout=240)
    try:
        deadline = time.time() + 60
        while 4 not in adm.list_topics(timeout=20).brokers:
            assert time.time() < deadline, "broker 4 did not join"
            time.sleep(1)
        layout = [[1, 2], [2, 3], [3, 1], [1, 2], [2, 3], [3, 1]]
        adm.create_topics([NewTopic(pool_topic, num_partitions=6, replica_assignment=layout,
                                    config={"min.insync.replicas": "1"})])[pool_topic].result(30)
        t0 = time.time()
        out = placement("apply", "--tenant", tenant.id)
        plan, done = out[0], out[-1]
        assert done["done"]["failed"] == [], done
        parts = pool_partitions(adm, pool_topic)
        on4 = sum(1 for r, _, _ in parts.values() if 4 in r)
        print(f"\nadded broker: {len(plan['moves'])} moves, {plan['leader_changes'] and len(plan['leader_changes'])} "
              f"leader changes, {time.time() - t0:.1f} s; replicas on broker 4: {on4}; layout {parts}")
        # Broker 4 shares rack a with broker 1, so only the two partitions without broker 1
        # can take it (rack safety comes first): both do.
        assert on4 >= 2, (plan, parts)
        for r, _, _ in parts.values():
            assert len({RACK[b] for b in r}) == 2, parts  # 1 and 4 share rack a
        assert throttles_left(adm, pool_topic) == []
    finally:
        adm.delete_topics([pool_topic], operation_timeout=30)[pool_topic].result(60)
        if started:
            time.sleep(2)
            subprocess.run([str(ROOT / "deploy" / "pool.sh"), "stop-broker", "4"], check=True, cwd=ROOT, timeout=240)


def test_gateway_killed_mid_plan_is_recovered_by_the_next(tenant, placement_gateway, tmp_path):
    """A rebalancing gateway is killed (-9) while its throttled moves run. The reassignments
    go on in the pool; the next gateway takes the lease once it expires, finds the plan's
    record in `__sluice_placement`, waits for the reassignments to finish, then elects and
    removes the throttles the dead one set."""
    from confluent_kafka import Producer
    adm = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    pool_topic = tenant.pool_name("slow")
    adm.create_topics([NewTopic(pool_topic, num_partitions=3, replica_assignment=[[1, 2], [2, 1], [1, 3]],
                                config={"min.insync.replicas": "1"})])[pool_topic].result(30)
    prod = Producer({"bootstrap.servers": POOL_BOOTSTRAP, "linger.ms": 20, "acks": "all"})
    for i in range(450):  # 1.5 MB per partition
        prod.produce(pool_topic, value=b"s" * 10_000, partition=i % 3)
        prod.poll(0)
    assert prod.flush(60) == 0
    time.sleep(2)
    keys = placement_gateway.env.keys
    extra = sasl_auth_config(keys) + (f'\n[placement]\nenabled = true\ninterval_secs = 5\ntenants = ["{tenant.id}"]\n'
                                      'drain = [1, 4]\nthrottle_bytes_per_sec = 50000\nmax_concurrent_moves = 3\n')
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_gateway(tmp_path / "a", extra, auth="sasl")
    b = None
    try:
        deadline = time.time() + 60
        while True:
            st = placement("status", "--tenant", tenant.id)[-1]
            if st["applying"] and [r for r in st["reassignments"] if r["topic"] == pool_topic]:
                break
            assert time.time() < deadline, (st, a.log()[-3000:])
            time.sleep(0.5)
        a.proc.kill()
        a.proc.wait(10)
        killed_at = time.time()
        owner = st["applying"]["owner"]
        assert owner.startswith("gw-"), st
        assert throttles_left(adm, pool_topic), "no throttle while the dead gateway's moves run"

        b = start_gateway(tmp_path / "b", extra, auth="sasl")
        deadline = time.time() + 240
        while True:
            st = placement("status", "--tenant", tenant.id)[-1]
            parts = pool_partitions(adm, pool_topic)
            if (st["applying"] is None and not st["reassignments"]
                    and not any(1 in r or l == 1 for r, l, _ in parts.values())):
                break
            assert time.time() < deadline, (st, parts, b.log()[-3000:])
            time.sleep(1)
        print(f"\nrestart: recovered {time.time() - killed_at:.1f} s after the kill; layout {parts}")
        assert "cleaned up after an interrupted plan" in b.log(), b.log()[-3000:]
        assert throttles_left(adm, pool_topic) == []
        for r, _, _ in parts.values():
            assert len({RACK[x] for x in r}) == 2, parts
    finally:
        for g in (a, b):
            if g is not None and g.proc.poll() is None:
                stop_gateway(g)
