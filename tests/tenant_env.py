"""Tenant fixtures: a SASL gateway that serves tenants from the tenant store, tenants made
per test, and ready-made client settings for each client the suite drives.

Use in a test module with `from tenant_env import *` (or import the fixtures by name).

- `tenant_gateway` (session): the SASL gateway (OAUTHBEARER and PLAIN, the [auth] section
  of test_sasl) with `.bootstrap`, `.gateway` and `.mint(subject, tenant, policies, ttl)`.
- `new_tenant` (function): `new_tenant(policies=None, principals=None) -> Tenant`, stored
  with tests/tenants.py `put_tenant` (ALLOW_ALL for principal "*" unless told), returned
  once the gateway lets the tenant in.
- `Tenant` and `OpenClient` share one interface (`bootstrap`, `prefix`, `pool_name()`,
  `confluent_config()`, `java_props()`, `java_properties()`, `kcat_args()`,
  `franz_args()`), so a workload test runs unchanged as a tenant or on the open listener
  (plain names, no auth).
- Pool-side views (`pool_topics`, `pool_groups`, `pool_transactional_ids`): what the pool
  itself holds, read without the gateway.
"""
import time
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from conftest import POOL_BOOTSTRAP, kafka_tool, start_gateway
from tenants import allow_all_doc, put_tenant
from test_sasl import Keys, SaslEnv, sasl_auth_config, stop_gateway

__all__ = ["tenant_gateway", "new_tenant", "Tenant", "OpenClient", "TenantGateway",
           "pool_topics", "pool_groups", "pool_transactional_ids", "new_tenant_id"]

TENANT_READY_SECS = 10


class TenantGateway:
    """The session's SASL gateway and its token minting (test_sasl's SaslEnv)."""

    def __init__(self, env: SaslEnv):
        self.env = env
        self.gateway = env.gateway
        self.bootstrap = env.bootstrap

    def mint(self, subject: str, tenant: str, policies=None, ttl: int = 3600) -> str:
        return self.env.mint(subject=subject, tenant=tenant, ttl=ttl, policies=policies)

    def log(self) -> str:
        return self.env.log()


@pytest.fixture(scope="session")
def tenant_gateway(pool, tmp_path_factory):
    keys = Keys(tmp_path_factory.mktemp("tenant-keys"))
    gw = start_gateway(tmp_path_factory.mktemp("tenant-gateway"), sasl_auth_config(keys), auth="sasl")
    yield TenantGateway(SaslEnv(gw, keys))
    stop_gateway(gw)
    assert "panicked" not in gw.log(), gw.log()[-5000:]


class _Client:
    """Client settings shared by tenants and the open listener. Subclasses set
    `bootstrap`, `gateway`, `prefix` and `_sasl()`."""

    id = None
    prefix = ""

    def _sasl(self):
        """(user, password) for SASL/PLAIN, or None."""
        return None

    def pool_name(self, name: str) -> str:
        """What a client's topic/group/transactional id is called in the pool."""
        return self.prefix + name

    def confluent_config(self, **extra) -> dict:
        conf = {"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 20000}
        creds = self._sasl()
        if creds:
            conf.update({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                         "sasl.username": creds[0], "sasl.password": creds[1]})
        conf.update(extra)
        return conf

    def _java_settings(self) -> list:
        creds = self._sasl()
        if not creds:
            return []
        return [("security.protocol", "SASL_PLAINTEXT"), ("sasl.mechanism", "PLAIN"),
                ("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required "
                                     f'username="{creds[0]}" password="{creds[1]}";')]

    def java_props(self) -> list:
        """`--prop k=v` arguments for the tests/java helpers."""
        return [a for k, v in self._java_settings() for a in ("--prop", f"{k}={v}")]

    def java_properties(self) -> str:
        """The same settings as a .properties file (bootstrap included)."""
        lines = [f"bootstrap.servers={self.bootstrap}"]
        lines += [f"{k}={v}" for k, v in self._java_settings()]
        return "\n".join(lines) + "\n"

    def kcat_args(self) -> list:
        args = ["-b", self.bootstrap, "-X", "socket.timeout.ms=20000"]
        creds = self._sasl()
        if creds:
            args += ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN",
                     "-X", f"sasl.username={creds[0]}", "-X", f"sasl.password={creds[1]}"]
        return args

    def franz_args(self) -> list:
        """Flags for tests/go/franzcheck (any subcommand)."""
        args = ["-brokers", self.bootstrap]
        creds = self._sasl()
        if creds:
            args += ["-sasl-plain-user", creds[0], "-sasl-plain-pass", creds[1]]
        return args

    def fresh_admin(self) -> AdminClient:
        """A new AdminClient (a new connection, no reconnect backoff from earlier failures);
        the first one that works becomes `admin()`'s."""
        adm = AdminClient(self.confluent_config())
        return adm

    def admitted(self, timeout: float) -> bool:
        """Whether a Metadata request through a new connection succeeds now."""
        adm = self.fresh_admin()
        try:
            adm.list_topics(timeout=timeout)
        except KafkaException:
            return False
        self._admin = adm
        return True

    def admin(self) -> AdminClient:
        """One AdminClient per client object, kept for its life: librdkafka handles
        created and garbage-collected by the dozen (one per check) left futures that never
        finished and, once in CI, a segfault in the pytest process."""
        if getattr(self, "_admin", None) is None:
            self._admin = AdminClient(self.confluent_config())
        return self._admin

    def visible_topics(self) -> set:
        """Topic names this client sees through the gateway (confluent-kafka Metadata)."""
        return set(self.admin().list_topics(timeout=20).topics)


class OpenClient(_Client):
    """The open development listener (the `gateway` fixture): no auth, pool names as is."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.bootstrap = gateway.bootstrap


class Tenant(_Client):
    """A tenant in the store, and client settings that authenticate as it."""

    def __init__(self, tgw: TenantGateway, tenant_id: str, version=None, subject: str = "app"):
        self.tgw = tgw
        self.gateway = tgw.gateway
        self.bootstrap = tgw.bootstrap
        self.id = tenant_id
        self.prefix = f"{tenant_id}."
        self.version = version
        self.subject = subject
        self._token = None

    def token(self, subject: str = "app", policies=None, ttl: int = 3600) -> str:
        return self.tgw.mint(subject, self.id, policies=policies, ttl=ttl)

    def _sasl(self):
        if self._token is None:
            self._token = self.token(self.subject)
        return (self.subject, self._token)


def new_tenant_id() -> str:
    return "t" + uuid.uuid4().hex[:8]


def _wait_admitted(tenant: Tenant, timeout: float = TENANT_READY_SECS):
    """Gateways learn new tenants by tailing the store: poll until a Metadata request as
    the tenant succeeds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if tenant.admitted(timeout=2):
            return
        time.sleep(0.3)
    raise AssertionError(f"tenant {tenant.id} not admitted by the gateway within {timeout}s\n"
                         + tenant.tgw.log()[-3000:])


@pytest.fixture
def new_tenant(tenant_gateway):
    """Factory: new_tenant(policies=None, principals=None, subject="app") -> Tenant."""

    def make(policies=None, principals=None, subject="app") -> Tenant:
        tid = new_tenant_id()
        doc = allow_all_doc(tid)
        if policies is not None:
            doc["policies"] = policies
        if principals is not None:
            doc["principals"] = principals
        version = put_tenant(doc)
        t = Tenant(tenant_gateway, tid, version, subject)
        _wait_admitted(t)
        return t

    return make


# ------------------------------------------------------------------ the pool's own view

def _pool_admin() -> AdminClient:
    return AdminClient({"bootstrap.servers": POOL_BOOTSTRAP})


def pool_topics(prefix: str = "") -> set:
    """Pool topic names starting with `prefix`, with the prefix removed."""
    names = _pool_admin().list_topics(timeout=20).topics
    return {n[len(prefix):] for n in names if n.startswith(prefix)}


def pool_groups(prefix: str = "") -> set:
    """Pool group ids (every type) starting with `prefix`, with the prefix removed."""
    res = kafka_tool("kafka-groups", "--bootstrap-server", POOL_BOOTSTRAP, "--list")
    ids = [l.split()[0] for l in res.stdout.splitlines()[1:] if l.strip()]
    return {g[len(prefix):] for g in ids if g.startswith(prefix)}


def pool_transactional_ids(prefix: str = "") -> set:
    res = kafka_tool("kafka-transactions", "--bootstrap-server", POOL_BOOTSTRAP, "list")
    ids = [l.split()[0] for l in res.stdout.splitlines()[1:] if l.strip()]
    return {t[len(prefix):] for t in ids if t.startswith(prefix)}
