"""The admin HTTP API under /v1 (SPEC 9, issue 6 point 1), end to end against the real
pool: a SASL gateway with sluice's own issuer and admin listener (test_oauth's), operator
tokens minted with `sluice token mint --scope sluice:operator`, tenant-admin tokens from
an OAuth client holding scope sluice:admin, and Kafka clients using what the API set up.

schemathesis (from PyPI, in its own venv made by tests/setup.sh) runs against
/v1/openapi.json and must find no server error and no response that differs from the
document (status code, content type, body schema).
"""
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka.admin import NewTopic

from conftest import ROOT, SLUICE_BIN
from tenants import ALLOW_ALL
from test_oauth import AUDIENCE, start_oauth_gateway, stop_gateway

SCHEMATHESIS = ROOT / "tests" / ".venv-schemathesis" / "bin" / "schemathesis"


@pytest.fixture(scope="module")
def gw(pool, tmp_path_factory):
    g = start_oauth_gateway(tmp_path_factory.mktemp("admin-api"), ttl_secs=3600,
                            extra_config="[metrics]\npool_poll_ms = 1000\n")
    yield g
    stop_gateway(g)


def mint(gw, *, scope=None, tenant=None, subject="ops") -> str:
    cmd = [str(SLUICE_BIN), "token", "mint", "--key", str(gw.key_file), "--issuer", gw.url, "--audience", AUDIENCE,
           "--subject", subject]
    if scope:
        cmd += ["--scope", scope]
    if tenant:
        cmd += ["--tenant", tenant]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


class Http:
    def __init__(self, base: str, token: str = None):
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body=None, headers=None, raw: bytes = None):
        """-> (status, headers, parsed JSON body or None)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read()
                return r.status, r.headers, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read()
            assert e.headers.get("Content-Type") == "application/problem+json", (e.code, e.headers, text)
            return e.code, e.headers, json.loads(text)


def new_id() -> str:
    return "api" + uuid.uuid4().hex[:8]


def test_operator_manages_tenants_with_etags_pages_and_problems(gw):
    op = Http(gw.url, mint(gw, scope="sluice:operator"))
    ids = sorted(new_id() for _ in range(3))
    for tid in ids:
        status, headers, body = op.call("POST", "/v1/tenants", {"id": tid, "limits": {"max_connections": 50}})
        assert status == 201, body
        assert headers["ETag"] == '"1"' and body["id"] == tid and body["limits"] == {"max_connections": 50}
    status, _, body = op.call("POST", "/v1/tenants", {"id": ids[0]})
    assert status == 409 and body["field"] == "id", body

    # Pages of 2, resuming after each page's last id, see every tenant exactly once.
    seen, token = [], None
    while True:
        q = "/v1/tenants?limit=2" + (f"&page_token={token}" if token else "")
        status, _, body = op.call("GET", q)
        assert status == 200 and len(body["items"]) <= 2, body
        seen += [t["id"] for t in body["items"]]
        token = body["next_page_token"]
        if token is None:
            break
    assert [i for i in seen if i in ids] == ids and len(seen) == len(set(seen)), seen

    tid = ids[0]
    status, headers, body = op.call("GET", f"/v1/tenants/{tid}/limits")
    assert status == 200 and body["overrides"] == {"max_connections": 50}, body
    assert body["effective"]["max_connections"] == 50 and body["effective"]["max_partitions"] == 2400, body
    etag = headers["ETag"]
    status, headers, body = op.call("PUT", f"/v1/tenants/{tid}/limits", {"max_partitions": 10}, {"If-Match": etag})
    assert status == 200 and body["overrides"] == {"max_partitions": 10}, body
    assert headers["ETag"] != etag
    # A stale ETag is refused and changes nothing.
    status, _, body = op.call("PUT", f"/v1/tenants/{tid}/limits", {"max_partitions": 99}, {"If-Match": etag})
    assert status == 412, body
    assert op.call("GET", f"/v1/tenants/{tid}/limits")[2]["overrides"] == {"max_partitions": 10}

    # Bad bodies name the field; unknown fields are refused; oversize bodies too.
    status, _, body = op.call("PUT", f"/v1/tenants/{tid}/limits", {"max_partitionz": 1})
    assert status == 400 and "max_partitionz" in body["detail"], body
    status, _, body = op.call("PUT", f"/v1/tenants/{tid}/limits", {"max_partitions": "many"})
    assert status == 400 and body["field"] == "max_partitions", body
    status, _, body = op.call("PUT", f"/v1/tenants/{tid}/limits", {"produce_bytes_per_sec": 10})
    assert status == 400 and "tenant_write" in body["detail"], body
    status, _, body = op.call("POST", "/v1/tenants", {"id": "Not_Valid"})
    assert status == 400 and body["field"] == "id", body
    status, _, body = op.call("PUT", f"/v1/tenants/{tid}/limits", raw=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert status == 413, body
    status, _, body = op.call("PUT", f"/v1/tenants/{tid}/limits", raw=b"not json")
    assert status == 400, body

    # No token, a bad token, a tenant token without admin scope.
    assert Http(gw.url).call("GET", "/v1/tenants")[0] == 401
    assert Http(gw.url, "x.y.z").call("GET", "/v1/tenants")[0] == 401
    assert Http(gw.url, mint(gw, tenant=tid, subject="app")).call("GET", "/v1/tenants")[0] == 403

    status, _, _ = op.call("DELETE", f"/v1/tenants/{ids[2]}")
    assert status == 204
    assert op.call("GET", f"/v1/tenants/{ids[2]}")[0] == 404


def test_tenant_admin_manages_its_own_tenant_only(gw):
    op = Http(gw.url, mint(gw, scope="sluice:operator"))
    tid, other = new_id(), new_id()
    for t in (tid, other):
        assert op.call("POST", "/v1/tenants", {"id": t})[0] == 201
    # The operator gives the tenant an admin client; its secret is shown once.
    status, _, created = op.call("POST", f"/v1/tenants/{tid}/clients", {"name": "admin", "scopes": ["sluice:admin"]})
    assert status == 201, created
    status, _, body = op.call("POST", f"/v1/tenants/{tid}/clients", {"name": "root", "scopes": ["sluice:operator"]})
    assert status == 400 and "sluice:operator" in body["detail"], body
    token = oauth_token(gw, created["client_id"], created["client_secret"], "sluice:admin")
    admin = Http(gw.url, token)

    # Its own tenant: readable, and policies, principals, clients and sub-quotas writable.
    status, headers, body = admin.call("GET", f"/v1/tenants/{tid}")
    assert status == 200 and body["id"] == tid and body["clients"] == ["admin"], body
    status, _, body = admin.call("PUT", f"/v1/tenants/{tid}/policies/all", ALLOW_ALL, {"If-Match": headers["ETag"]})
    assert status == 200 and body["name"] == "all", body
    status, _, body = admin.call("PUT", f"/v1/tenants/{tid}/principals/app", {"policies": ["all"]})
    assert status == 200, body
    status, _, body = admin.call("PUT", f"/v1/tenants/{tid}/principals/app", {"policies": ["nope"]})
    assert status == 400 and "nope" in body["detail"], body
    status, _, body = admin.call("PUT", f"/v1/tenants/{tid}/quotas",
                                 {"client_quotas": [{"user": "app", "quotas": {"producer_byte_rate": 1e12}}]})
    assert status == 400 and body["field"] == "client_quotas[0].quotas.producer_byte_rate", body
    status, _, body = admin.call("PUT", f"/v1/tenants/{tid}/quotas",
                                 {"client_quotas": [{"user": "app", "quotas": {"producer_byte_rate": 1048576}}]})
    assert status == 200, body
    assert admin.call("GET", f"/v1/tenants/{tid}/quotas")[2]["client_quotas"][0]["user"] == "app"

    # What the API set is what Kafka clients get: principal `app` may create a topic.
    topic = "api-" + uuid.uuid4().hex[:6]
    kafka_admin = admin_client(gw, tid)
    kafka_admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=3)],
                              operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    deadline = time.time() + 30
    while True:
        status, _, body = admin.call("GET", f"/v1/tenants/{tid}/topics")
        names = {t["name"]: t for t in body["items"]}
        if topic in names and len(names[topic]["partitions"]) == 2:
            break
        assert time.time() < deadline, body
        time.sleep(0.5)

    # Not its business: other tenants (404, as if absent), the tenant list, limits, deletion.
    assert admin.call("GET", f"/v1/tenants/{other}")[0] == 404
    assert admin.call("GET", f"/v1/tenants/{other}/policies")[0] == 404
    assert admin.call("GET", "/v1/tenants")[0] == 403
    assert admin.call("PUT", f"/v1/tenants/{tid}/limits", {"max_partitions": 1})[0] == 403
    assert admin.call("DELETE", f"/v1/tenants/{tid}")[0] == 403
    # A client without the admin scope cannot get an admin token.
    status, _, plain = op.call("POST", f"/v1/tenants/{tid}/clients", {"name": "plain"})
    assert status == 201
    with pytest.raises(urllib.error.HTTPError) as refused:
        oauth_token(gw, plain["client_id"], plain["client_secret"], "sluice:admin")
    assert refused.value.code == 400 and b"invalid_scope" in refused.value.read()


def oauth_token(gw, client_id: str, secret: str, scope: str) -> str:
    import base64
    data = f"grant_type=client_credentials&scope={scope}".encode()
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    req = urllib.request.Request(gw.url + "/oauth2/token", data=data, method="POST", headers={
        "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["access_token"]


def admin_client(gw, tenant: str):
    from confluent_kafka.admin import AdminClient
    token = mint(gw, tenant=tenant, subject="app")
    return AdminClient({"bootstrap.servers": gw.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                        "sasl.mechanism": "PLAIN", "sasl.username": "app", "sasl.password": token})


def schemathesis(gw, token: str, report_dir, *filters: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCHEMATHESIS), "run", f"{gw.url}/v1/openapi.json", "--url", gw.url,
         "-H", f"Authorization: Bearer {token}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
         *filters,
         "--max-examples", "25", "--generation-deterministic", "--request-timeout", "30",
         "--report", "junit", "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=900, cwd=report_dir)


def test_schemathesis_finds_no_server_error_or_schema_mismatch(gw, tmp_path):
    """Two runs, so the fuzzing never changes what other tests own in the shared store (its
    stateful phase follows links from the tenant list to every tenant): as an operator,
    reads only; as the admin of a tenant of its own, every method (other tenants answer
    404, operator resources 403). Placement apply/cancel would move the shared pool's
    partitions: test_operator_placement_endpoints covers them."""
    assert SCHEMATHESIS.exists(), "tests/setup.sh installs schemathesis"
    op_token = mint(gw, scope="sluice:operator")
    tid = new_id()
    Http(gw.url, op_token).call("POST", "/v1/tenants", {"id": tid})
    admin_token = mint(gw, scope="sluice:admin", tenant=tid, subject="fuzz")
    runs = [
        ("operator, reads", schemathesis(gw, op_token, tmp_path, "--include-method", "GET")),
        ("tenant admin, all", schemathesis(gw, admin_token, tmp_path, "--exclude-path-regex",
                                           "^/v1/placement/(apply|cancel)$")),
    ]
    for what, res in runs:
        print(f"--- schemathesis as {what}\n" + res.stdout[-4000:])
        assert res.returncode == 0, what + ":\n" + res.stdout[-8000:] + res.stderr[-3000:]
        # It did exercise the API (not just the document).
        assert "passed" in res.stdout.lower(), res.stdout[-3000:]


def test_operator_placement_endpoints(gw):
    """Placement through the API (issue 7 point 3): status with the imbalance figure and
    per-broker load, a dry-run plan (draining a broker moves its replicas off it in the
    plan only), an apply that runs under the lease and releases it, cancel; operators only."""
    op = Http(gw.url, mint(gw, scope="sluice:operator"))
    status, _, body = op.call("GET", "/v1/placement")
    assert status == 200, body
    assert body["imbalance"] >= 1.0 and {b["id"] for b in body["brokers"]} >= {1, 2, 3}, body
    status, _, plan = op.call("POST", "/v1/placement/plan", {"drain": [3]})
    assert status == 200, plan
    moved_off = [m for m in plan["moves"] if 3 in m["from"] and 3 not in m["to"]]
    assert plan["partitions"] == 0 or moved_off or not any(3 in m["from"] for m in plan["moves"]), plan
    after_plan = op.call("GET", "/v1/placement")[2]
    assert after_plan["reassignments"] == body["reassignments"], "a dry run changed the pool"
    status, _, body = op.call("POST", "/v1/placement/plan", {"drain": ["x"]})
    assert status == 400 and body["field"].startswith("drain"), body

    status, _, started = op.call("POST", "/v1/placement/apply", {})
    assert status in (202, 409), started
    if status == 202:
        deadline = time.time() + 60
        def held_by_api(lease):  # a released lease keeps its holder with until_ms 0
            return bool(lease) and lease["holder"].startswith("api-apply") and lease["until_ms"] > time.time() * 1000

        while held_by_api((s := op.call("GET", "/v1/placement")[2])["lease"]):
            assert time.time() < deadline, s
            time.sleep(1)
    status, _, body = op.call("POST", "/v1/placement/cancel", {})
    assert status == 200 and "cancelled_reassignments" in body, body

    admin_token = mint(gw, scope="sluice:admin", tenant="acme", subject="a")
    assert Http(gw.url, admin_token).call("GET", "/v1/placement")[0] == 403


def test_consumer_group_lag_matches_kafka_consumer_groups(gw):
    """GET /v1/tenants/{t}/groups: a group that committed 20 of 50 records has lag 30,
    the same figure Kafka's own kafka-consumer-groups --describe gives for it (on the
    pool, where the group is <tenant>.<group>)."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from conftest import KAFKA_TOOL, POOL_BOOTSTRAP
    op = Http(gw.url, mint(gw, scope="sluice:operator"))
    tid = new_id()
    assert op.call("POST", "/v1/tenants", {"id": tid, "policies": {"all": ALLOW_ALL},
                                           "principals": {"*": {"policies": ["all"]}}})[0] == 201
    kafka_admin = admin_client(gw, tid)
    deadline = time.time() + 20
    while True:
        try:
            kafka_admin.create_topics([NewTopic("lagging", num_partitions=1, replication_factor=3)],
                                      request_timeout=30)["lagging"].result(60)
            break
        except Exception as e:  # noqa: BLE001 (the gateway may not have read the tenant yet)
            assert time.time() < deadline, e
            time.sleep(0.5)
    token = mint(gw, tenant=tid, subject="app")
    sasl = {"bootstrap.servers": gw.bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": "app", "sasl.password": token}
    p = Producer(sasl)
    for i in range(50):
        p.produce("lagging", value=b"x" * 100)
    assert p.flush(30) == 0
    c = Consumer(dict(sasl, **{"group.id": "readers", "enable.auto.commit": False}))
    c.commit(offsets=[TopicPartition("lagging", 0, 20)], asynchronous=False)
    c.close()

    res = subprocess.run([str(KAFKA_TOOL), "kafka-consumer-groups", "--bootstrap-server", POOL_BOOTSTRAP,
                          "--describe", "--group", f"{tid}.readers"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = [l.split() for l in res.stdout.splitlines() if f"{tid}.lagging" in l]
    tool_lag = sum(int(r[5]) for r in rows)
    assert tool_lag == 30, res.stdout
    deadline = time.time() + 30
    while True:
        status, _, body = Http(gw.url, mint(gw, scope="sluice:admin", tenant=tid, subject="a")).call(
            "GET", f"/v1/tenants/{tid}/groups")
        assert status == 200, body
        groups = {g["name"]: g for g in body["items"]}
        if groups.get("readers", {}).get("lag") == tool_lag:
            break
        assert time.time() < deadline, body
        time.sleep(1)
    assert groups["readers"]["topics"] == [{"topic": "lagging", "lag": 30, "max_partition_lag": 30}]
