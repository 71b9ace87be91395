"""Tenants in the pool's tenant store, through the operator's CLI (`sluice tenant ...`).

Every SASL test needs its tenants to exist in the store (topic `__sluice_tenants`, which
gateways started by conftest read); these helpers write them exactly as an operator would.
"""
import json
import subprocess

from conftest import POOL_BOOTSTRAP, SLUICE_BIN

# Everything inside the tenant: attach to principal "*" for tests that are not about policies.
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["kafka-cluster:*"], "Resource": ["*"]}],
}

TIMEOUT = 60


def tenant_cli(*args, input=None, bootstrap=POOL_BOOTSTRAP, topic=None) -> subprocess.CompletedProcess:
    """Runs `sluice tenant <args> --bootstrap ...` and returns the finished process."""
    cmd = [str(SLUICE_BIN), "tenant", *map(str, args), "--bootstrap", bootstrap]
    if topic:
        cmd += ["--topic", topic]
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=TIMEOUT)


def allow_all_doc(tenant_id: str) -> dict:
    """A tenant whose every principal may do everything inside it."""
    return {"id": tenant_id, "policies": {"all": ALLOW_ALL}, "principals": {"*": {"policies": ["all"]}}}


def put_tenant(doc: dict, if_version=None, topic=None) -> int:
    """Stores `doc` (a tenant document) and returns its new version."""
    args = ["put", "-"]
    if if_version is not None:
        args += ["--if-version", if_version]
    res = tenant_cli(*args, input=json.dumps(doc), topic=topic)
    assert res.returncode == 0, f"sluice tenant put failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    out = json.loads(res.stdout.strip().split("\n")[-1])  # not splitlines(): see test_tenant_store
    assert out["id"] == doc["id"], out
    return out["version"]


def get_tenant(tenant_id: str, topic=None):
    """The stored `{"version": N, "tenant": {...}}`, or None if the tenant does not exist."""
    res = tenant_cli("get", tenant_id, topic=topic)
    if res.returncode == 1 and "does not exist" in res.stderr:
        return None
    assert res.returncode == 0, f"sluice tenant get failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def delete_tenant(tenant_id: str, if_version=None, topic=None) -> None:
    args = ["delete", tenant_id]
    if if_version is not None:
        args += ["--if-version", if_version]
    res = tenant_cli(*args, topic=topic)
    assert res.returncode == 0, f"sluice tenant delete failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
