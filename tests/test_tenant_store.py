"""The tenant store end to end: `sluice tenant put/get/list/delete` against the pool's
`__sluice_tenants` topic, documents refused before anything is written, and a SASL gateway
that lets a tenant's tokens in only once `tenant put` has stored the tenant.

Tenant ids are unique per test (the store topic is shared by every run).
"""
import json
import time
import uuid

from tenants import ALLOW_ALL, allow_all_doc, delete_tenant, get_tenant, put_tenant, tenant_cli
from test_sasl import (SASL_AUTHENTICATION_FAILED, RawClient, plain_msg, sasl, sasl_keys,  # noqa: F401 (fixtures)
                       sasl_login, sasl_tenants)

TENANT_VISIBLE_SECS = 5


def new_id(prefix="ts") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def listed_ids() -> dict:
    res = tenant_cli("list")
    assert res.returncode == 0, res.stderr
    out = {}
    # One JSON document a line. Not splitlines(): it also splits at U+2028 and U+0085,
    # which JSON leaves unescaped inside strings (another test's names may hold them).
    for line in filter(None, res.stdout.split("\n")):
        rec = json.loads(line)
        out[rec["tenant"]["id"]] = rec["version"]
    return out


def test_put_get_list_delete(pool):
    tid = new_id()
    assert get_tenant(tid) is None
    doc = allow_all_doc(tid)
    doc["limits"] = {"max_connections": 10, "produce_bytes_per_sec": 1048576}
    assert put_tenant(doc) == 1
    stored = get_tenant(tid)
    assert stored["version"] == 1
    assert stored["tenant"]["id"] == tid
    assert stored["tenant"]["limits"] == doc["limits"]
    assert stored["tenant"]["policies"]["all"] == ALLOW_ALL
    assert stored["tenant"]["principals"] == {"*": {"policies": ["all"]}}

    # Conditional writes: the right version goes through, a stale one is refused.
    doc["limits"]["max_connections"] = 20
    assert put_tenant(doc, if_version=1) == 2
    res = tenant_cli("put", "-", "--if-version", "1", input=json.dumps(doc))
    assert res.returncode != 0
    assert "conflict" in res.stderr and "current 2" in res.stderr, res.stderr
    assert get_tenant(tid)["version"] == 2
    assert listed_ids().get(tid) == 2

    res = tenant_cli("delete", tid, "--if-version", "1")
    assert res.returncode != 0 and "conflict" in res.stderr, res.stderr
    delete_tenant(tid, if_version=2)
    assert get_tenant(tid) is None
    assert tid not in listed_ids()
    res = tenant_cli("get", tid)
    assert res.returncode == 1 and f"tenant {tid} does not exist" in res.stderr, (res.returncode, res.stderr)


def test_put_from_file(pool, tmp_path):
    tid = new_id()
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(allow_all_doc(tid)))
    res = tenant_cli("put", "--file", path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"id": tid, "version": 1}
    delete_tenant(tid)


def test_bad_documents_refused_with_the_field_named(pool):
    tid = new_id()
    cases = [
        ({"id": tid, "limits": {"max_conns": 5}}, ["limits:", "max_conns"]),
        ({"id": tid, "limits": {"max_connections": "many"}}, ["limits:"]),
        ({"id": tid, "principals": {"bob": {"policies": ["missing"]}}}, ["principals.bob.policies", "missing"]),
        ({"id": tid, "policies": {"p": {"Version": "2012-10-17",
                                        "Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}}},
         ["policies.p:"]),
        ({"id": tid, "owner": "x"}, ['"owner"']),
        ({"id": "Not_A_Tenant"}, ["id:"]),
    ]
    for doc, needles in cases:
        res = tenant_cli("put", "-", input=json.dumps(doc))
        assert res.returncode != 0, (doc, res.stdout)
        assert "invalid tenant document" in res.stderr, res.stderr
        for n in needles:
            assert n in res.stderr, (doc, n, res.stderr)
    res = tenant_cli("put", "-", input="{not json")
    assert res.returncode != 0 and "not valid JSON" in res.stderr, res.stderr
    # Nothing was written.
    assert get_tenant(tid) is None


def auth_error(port: int, token: str):
    """PLAIN authentication with `token` -> (error code, message)."""
    with RawClient(port) as c:
        assert c.handshake("PLAIN") == (0, ["OAUTHBEARER", "PLAIN"])
        err, msg, _, _ = c.authenticate(plain_msg(token))
        return err, msg


def test_token_accepted_only_once_the_tenant_is_stored(sasl):
    tid = new_id("late")
    token = sasl.mint(subject="newcomer", tenant=tid)
    err, msg = auth_error(sasl.port, token)
    assert err == SASL_AUTHENTICATION_FAILED, (err, msg)
    assert msg == f"Authentication failed: tenant {tid} does not exist", msg

    put_tenant(allow_all_doc(tid))
    stored_at = time.time()
    while True:
        err, msg = auth_error(sasl.port, token)
        if err == 0:
            break
        assert time.time() - stored_at < TENANT_VISIBLE_SECS, f"still refused after {TENANT_VISIBLE_SECS} s: {msg}"
        time.sleep(0.2)
    # A full login gives a session (what the session may then do is the policy layer's).
    c, lifetime = sasl_login(sasl.port, "PLAIN", token)
    with c:
        assert 0 < lifetime <= 3600_000

    # Deleting the tenant locks its tokens out again.
    delete_tenant(tid)
    deleted_at = time.time()
    while auth_error(sasl.port, token)[0] == 0:
        assert time.time() - deleted_at < TENANT_VISIBLE_SECS, "token still accepted after the tenant was deleted"
        time.sleep(0.2)
