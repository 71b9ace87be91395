"""The audit log (SPEC 9, issue 6 point 4) end to end against the real pool: a tenant's
Kafka admin client creates, re-creates and deletes a topic, a client fails SASL
authentication, a refused bearer token and admin-API mutations reach the API; the
tenant's admin reads each back from GET /v1/tenants/{t}/audit with principal, source IP,
action, resources and outcome; another tenant's admin sees none of it; and the events are
still there after the gateway restarts (read back from __sluice_audit).
"""
import re
import subprocess
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   NewTopic)

from conftest import KAFKA_TOOL, POOL_BOOTSTRAP
from tenants import ALLOW_ALL
from test_admin_api import Http, admin_client, mint, new_id, oauth_token
from test_oauth import restart_oauth_gateway, start_oauth_gateway, stop_gateway


@pytest.fixture(scope="module")
def gw(pool, tmp_path_factory):
    g = start_oauth_gateway(tmp_path_factory.mktemp("audit"), ttl_secs=3600)
    yield g
    stop_gateway(g)


def restart(gw):
    restart_oauth_gateway(gw, kill=False)


def tenant_with_admin(op: Http, gw, tid: str):
    """A tenant whose principal `app` may do anything, and its admin's API client."""
    status, _, body = op.call("POST", "/v1/tenants", {"id": tid, "policies": {"all": ALLOW_ALL},
                                                     "principals": {"app": {"policies": ["all"]}}})
    assert status == 201, body
    status, _, created = op.call("POST", f"/v1/tenants/{tid}/clients", {"name": "admin", "scopes": ["sluice:admin"]})
    assert status == 201, created
    token = oauth_token(gw, created["client_id"], created["client_secret"], "sluice:admin")
    subject = op.call("GET", f"/v1/tenants/{tid}/clients/admin")[2]["subject"]
    return Http(gw.url, token), subject


def forged(token: str) -> str:
    """The same claims under a signature that does not verify."""
    head, payload, sig = token.split(".")
    return f"{head}.{payload}.{sig[:-4]}{'AAAA' if not sig.endswith('AAAA') else 'BBBB'}"


def all_events(api: Http, tid: str, limit: int = 1000) -> list:
    """Every page of the tenant's audit log, checking the pages are consistent."""
    events, token = [], None
    while True:
        q = f"?limit={limit}" + (f"&page_token={token}" if token else "")
        status, _, body = api.call("GET", f"/v1/tenants/{tid}/audit{q}")
        assert status == 200, body
        events += body["items"]
        token = body["next_page_token"]
        if token is None:
            return events
        assert len(body["items"]) == limit, body


def wait_events(api: Http, tid: str, want, what: str, timeout: float = 30) -> list:
    deadline = time.time() + timeout
    while True:
        events = all_events(api, tid)
        if want(events):
            return events
        assert time.time() < deadline, f"{what}: {events}"
        time.sleep(0.5)


def find(events, action, pred=lambda e: True):
    return [e for e in events if e["action"] == action and pred(e)]


def resources(e, kind):
    return {r["name"]: r["outcome"] for r in e["resources"] if r["type"] == kind}


def test_audit_log_per_tenant_survives_restart(gw):
    op = Http(gw.url, mint(gw, scope="sluice:operator"))
    tid, other = new_id(), new_id()
    admin, admin_subject = tenant_with_admin(op, gw, tid)
    other_admin, _ = tenant_with_admin(op, gw, other)

    # Kafka control plane: create, create again (refused by the pool), delete.
    topic = "aud-" + uuid.uuid4().hex[:6]
    kafka = admin_client(gw, tid)
    kafka.create_topics([NewTopic(topic, num_partitions=2, replication_factor=3)],
                        operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    with pytest.raises(KafkaException) as again:
        kafka.create_topics([NewTopic(topic, num_partitions=2, replication_factor=3)],
                            operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    assert "already exists" in str(again.value).lower(), again.value
    kafka.delete_topics([topic], operation_timeout=30, request_timeout=30)[topic].result(timeout=60)

    # A failed SASL authentication: app's claims, a signature that does not verify.
    bad = AdminClient({"bootstrap.servers": gw.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                       "sasl.mechanism": "PLAIN", "sasl.username": "app",
                       "sasl.password": forged(mint(gw, tenant=tid, subject="app"))})
    with pytest.raises(KafkaException):
        bad.list_topics(timeout=5)

    # Admin API: a mutation that works, one refused with 400, and a forged bearer token.
    assert admin.call("PUT", f"/v1/tenants/{tid}/policies/extra", ALLOW_ALL)[0] == 200
    assert admin.call("PUT", f"/v1/tenants/{tid}/principals/bob", {"policies": ["nope"]})[0] == 400
    assert Http(gw.url, forged(admin.token)).call("PUT", f"/v1/tenants/{tid}/policies/x", ALLOW_ALL)[0] == 401

    def complete(events):
        return (find(events, "kafka:DeleteTopics")
                and len(find(events, "kafka:CreateTopics")) == 2
                and find(events, "auth:failed", lambda e: resources(e, "listener").keys() == {"kafka"})
                and find(events, "auth:failed", lambda e: resources(e, "listener").keys() == {"admin-api"})
                and find(events, "api:PUT /v1/tenants/{tenant}/policies/{name}")
                and find(events, "api:PUT /v1/tenants/{tenant}/principals/{name}"))

    events = wait_events(admin, tid, complete, "the tenant's audit log")
    times = [e["time"] for e in events]
    assert times == sorted(times, reverse=True), "newest first"
    assert len({e["id"] for e in events}) == len(events), "no repeats"
    for e in events:
        assert e["tenant"] == tid, e
        for r in e["resources"]:
            assert not r["name"].startswith(tid + "."), f"a pool name leaked: {e}"

    created = find(events, "kafka:CreateTopics")
    ok = [e for e in created if e["outcome"]["ok"]]
    refused = [e for e in created if not e["outcome"]["ok"]]
    assert len(ok) == 1 and len(refused) == 1, created
    for e in created:
        assert e["principal"] == "app" and e["source_ip"] == "127.0.0.1", e
    assert resources(ok[0], "topic") == {topic: {"ok": True, "code": None, "status": None, "message": None}}, ok[0]
    assert resources(refused[0], "topic")[topic]["code"] == "TOPIC_ALREADY_EXISTS", refused[0]
    assert refused[0]["outcome"]["code"] == "TOPIC_ALREADY_EXISTS", refused[0]
    deleted = find(events, "kafka:DeleteTopics")[0]
    assert resources(deleted, "topic") == {topic: {"ok": True, "code": None, "status": None, "message": None}}, deleted
    assert deleted["principal"] == "app"

    sasl = find(events, "auth:failed", lambda e: resources(e, "listener").keys() == {"kafka"})[0]
    assert sasl["principal"] == "app" and sasl["source_ip"] == "127.0.0.1", sasl
    assert sasl["outcome"]["ok"] is False and sasl["outcome"]["code"] == "SASL_AUTHENTICATION_FAILED", sasl
    assert sasl["outcome"]["message"], sasl
    api_refused = find(events, "auth:failed", lambda e: resources(e, "listener").keys() == {"admin-api"})[0]
    assert api_refused["outcome"]["status"] == 401 and api_refused["principal"] == admin_subject, api_refused

    put = find(events, "api:PUT /v1/tenants/{tenant}/policies/{name}")[0]
    assert put["principal"] == admin_subject and put["source_ip"] == "127.0.0.1", put
    assert put["outcome"] == {"ok": True, "code": None, "status": 200, "message": None}, put
    assert resources(put, "policy") == {"extra": put["outcome"]}, put
    bad_put = find(events, "api:PUT /v1/tenants/{tenant}/principals/{name}")[0]
    assert bad_put["outcome"]["status"] == 400 and "nope" in bad_put["outcome"]["message"], bad_put
    # The operator's calls on the tenant are the tenant's events too.
    assert find(events, "api:POST /v1/tenants/{tenant}/clients",
                lambda e: e["principal"] == "ops" and "admin" in resources(e, "client")), events

    # Paging: two at a time gives the same events in the same order.
    assert [e["id"] for e in all_events(admin, tid, limit=2)] == [e["id"] for e in events]
    # A time window: nothing before the first event, everything from it.
    first = min(times)
    status, _, body = admin.call("GET", f"/v1/tenants/{tid}/audit?to={first}")
    assert status == 200 and body["items"] == [], body
    status, _, body = admin.call("GET", f"/v1/tenants/{tid}/audit?from=yesterday")
    assert status == 400 and body["field"] == "from", body

    # Another tenant's admin: none of these events, and no way to ask for them.
    theirs = all_events(other_admin, other)
    ids = {e["id"] for e in events}
    assert not [e for e in theirs if e["id"] in ids or e["tenant"] != other], theirs
    assert not [e for e in theirs for r in e["resources"] if r["name"] in (topic, tid, "extra")], theirs
    assert other_admin.call("GET", f"/v1/tenants/{tid}/audit")[0] == 404
    # The operator reads any tenant's.
    assert ids <= {e["id"] for e in all_events(op, tid)}

    # The journal topic in the pool: one partition, 90 days.
    pool_admin = AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})
    md = pool_admin.list_topics(timeout=10).topics["__sluice_audit"]
    assert len(md.partitions) == 1
    cfg = pool_admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "__sluice_audit")])
    entries = list(cfg.values())[0].result(timeout=30)
    assert entries["retention.ms"].value == str(90 * 86_400_000)

    # Nothing was dropped, and the counter that would say so is exported.
    with urllib.request.urlopen(gw.url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    assert re.search(r"^sluice_audit_dropped_total 0$", text, re.M), text[-2000:]

    # A mutation just before a clean stop is flushed on shutdown; after the restart every
    # event is read back from the journal.
    assert admin.call("PUT", f"/v1/tenants/{tid}/policies/last", ALLOW_ALL)[0] == 200
    restart(gw)
    admin = Http(gw.url, admin.token)
    after = wait_events(admin, tid, lambda ev: ids <= {e["id"] for e in ev}
                        and find(ev, "api:PUT /v1/tenants/{tenant}/policies/{name}",
                                 lambda e: "last" in resources(e, "policy")),
                        "events after the restart")
    before = {e["id"]: e for e in events}
    assert [e for e in after if e["id"] in before] == events, "the same events, unchanged"


def kafka_tool(gw, tid: str, tmp_path, *args) -> str:
    """A Kafka CLI tool (kafka-configs, kafka-consumer-groups) as principal `app` of `tid`."""
    props = tmp_path / f"app-{uuid.uuid4().hex[:6]}.properties"
    token = mint(gw, tenant=tid, subject="app")
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                     "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                     f'username="app" password="{token}";\n')
    tool, *rest = args
    res = subprocess.run([str(KAFKA_TOOL), tool, "--bootstrap-server", gw.bootstrap, "--command-config", str(props),
                          *rest], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{tool} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def test_every_control_plane_call_is_recorded_per_resource(gw, tmp_path):
    """Partitions, both config APIs, records, groups, offsets and client quotas, each
    recorded with the tenant's names and per-resource outcomes; a call the gateway itself
    refuses (no permission) is recorded with the refusal."""
    op = Http(gw.url, mint(gw, scope="sluice:operator"))
    tid = new_id()
    admin, _ = tenant_with_admin(op, gw, tid)
    read_only = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": ["*"],
                 "Action": ["kafka-cluster:Connect", "kafka-cluster:DescribeTopic"]}]}
    assert admin.call("PUT", f"/v1/tenants/{tid}/policies/ro", read_only)[0] == 200
    assert admin.call("PUT", f"/v1/tenants/{tid}/principals/ro", {"policies": ["ro"]})[0] == 200
    topic, group = "cp-" + uuid.uuid4().hex[:6], "g-" + uuid.uuid4().hex[:6]
    kafka = admin_client(gw, tid)
    kafka.create_topics([NewTopic(topic, num_partitions=2, replication_factor=3)],
                        operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    kafka.create_partitions([NewPartitions(topic, 3)], operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    list(kafka.incremental_alter_configs([res]).values())[0].result(timeout=60)
    # Data, a group's committed offsets, then records, offsets and the group deleted.
    conf = {"bootstrap.servers": gw.bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": "app", "sasl.password": mint(gw, tenant=tid, subject="app")}
    p = Producer(conf)
    for i in range(10):
        p.produce(topic, value=b"v%d" % i, partition=0)
    assert p.flush(30) == 0
    c = Consumer(dict(conf, **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < 10 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got.append(m)
    assert len(got) == 10
    c.commit(asynchronous=False)
    c.close()
    done = kafka.delete_records([TopicPartition(topic, 0, 4)], request_timeout=30)
    list(done.values())[0].result(timeout=60)
    kafka_tool(gw, tid, tmp_path, "kafka-consumer-groups", "--delete-offsets", "--group", group, "--topic", topic)
    kafka.delete_consumer_groups([group], request_timeout=30)[group].result(timeout=60)
    kafka_tool(gw, tid, tmp_path, "kafka-configs", "--alter", "--entity-type", "users", "--entity-name", "alice",
               "--add-config", "producer_byte_rate=262144")
    # The gateway refuses a principal without CreateTopics.
    ro = AdminClient(dict(conf, **{"sasl.username": "ro", "sasl.password": mint(gw, tenant=tid, subject="ro")}))
    with pytest.raises(KafkaException):
        ro.create_topics([NewTopic(topic + "-ro", num_partitions=1, replication_factor=3)],
                         request_timeout=30)[topic + "-ro"].result(timeout=60)

    actions = ["kafka:CreatePartitions", "kafka:IncrementalAlterConfigs", "kafka:DeleteRecords",
               "kafka:OffsetDelete", "kafka:DeleteGroups", "kafka:AlterClientQuotas"]
    events = wait_events(admin, tid, lambda ev: all(find(ev, a) for a in actions)
                         and find(ev, "kafka:CreateTopics", lambda e: e["principal"] == "ro"), "control-plane events")
    for e in events:
        for r in e["resources"]:
            assert not r["name"].startswith(tid + "."), f"a pool name leaked: {e}"
    ok = {"ok": True, "code": None, "status": None, "message": None}
    by_action = {a: find(events, a)[0] for a in actions}
    for a, e in by_action.items():
        assert e["principal"] == "app" and e["source_ip"] == "127.0.0.1" and e["outcome"]["ok"], e
    assert resources(by_action["kafka:CreatePartitions"], "topic") == {topic: ok}
    assert resources(by_action["kafka:IncrementalAlterConfigs"], "topic") == {topic: ok}
    assert resources(by_action["kafka:DeleteRecords"], "partition") == {f"{topic}-0": ok}
    assert resources(by_action["kafka:OffsetDelete"], "group") == {group: ok}
    # --topic names every partition of the topic.
    assert resources(by_action["kafka:OffsetDelete"], "partition") == {f"{topic}-{i}": ok for i in range(3)}
    assert resources(by_action["kafka:DeleteGroups"], "group") == {group: ok}
    assert resources(by_action["kafka:AlterClientQuotas"], "client-quota") == {"user=alice": ok}
    refused = find(events, "kafka:CreateTopics", lambda e: e["principal"] == "ro")[0]
    assert not refused["outcome"]["ok"] and refused["outcome"]["code"] == "TOPIC_AUTHORIZATION_FAILED", refused
    assert resources(refused, "topic")[topic + "-ro"]["code"] == "TOPIC_AUTHORIZATION_FAILED", refused
