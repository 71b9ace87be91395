"""The gateway's own connection to a secured pool (issue 9 point 2, "SCRAM/TLS pool
connection exercised in CI" of point 5).

deploy/pool.sh serves, beside PLAINTEXT, a SASL_SSL listener (SCRAM-SHA-512/256, the
gateway's user made at start) on base+200+N and an SSL listener that requires client
certificates (mTLS) on base+300+N, with a CA and certificates generated under
<pool dir>/secure. Here:
- the secured listeners refuse clients without credentials, with a wrong password, or
  without a client certificate (confluent-kafka straight at the pool), and admit the
  right ones;
- a SASL gateway whose [pool] is SASL_SSL (and one whose [pool] is mTLS) serves tenants
  from the tenant store, creates a topic through the gateway, and carries produce +
  consume with checksums and a consumer group;
- a gateway with a wrong SCRAM password fails at start with an error naming the refusal,
  quickly, and never reports ready;
- a gateway whose SCRAM credential is revoked while it runs reports not ready, with the
  reason, and ready again once the credential is back.
"""
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from clientlib import make_payloads, sha_sorted, unique
from conftest import POOL_SH, ROOT, SLUICE_BIN, _free_port_block, _wait_port, kafka_tool, start_gateway
from tenant_env import Tenant, TenantGateway, new_tenant_id
from tenants import allow_all_doc, put_tenant
from test_sasl import Keys, SaslEnv, sasl_auth_config, stop_gateway

POOL_DIR = Path(os.environ.get("SLUICE_POOL_DIR", ROOT / "deploy" / ".pool"))
SECURE = POOL_DIR / "secure"
AUTH_FAILED = -169  # librdkafka's _AUTHENTICATION


def pool_sh(*args) -> str:
    res = subprocess.run([str(POOL_SH), *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 0, f"pool.sh {args} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout.strip()


class SecurePool:
    def __init__(self):
        self.sasl_bootstrap = pool_sh("secure-bootstrap", "sasl")
        self.mtls_bootstrap = pool_sh("secure-bootstrap", "mtls")
        self.ca = SECURE / "ca.pem"
        self.user = "sluice"
        self.password = (SECURE / f"{self.user}.password").read_text().strip()

    def gateway_config(self, kind: str, **replace) -> str:
        """The [pool] section pool.sh prints for `kind` (sasl_ssl or ssl)."""
        text = pool_sh("gateway-config", kind)
        for old, new in replace.items():
            assert old in text, (old, text)
            text = text.replace(old, new)
        return text

    def sasl_client(self, password=None, mechanism="SCRAM-SHA-512", user=None, **extra) -> dict:
        conf = {"bootstrap.servers": self.sasl_bootstrap, "security.protocol": "SASL_SSL",
                "ssl.ca.location": str(self.ca), "sasl.mechanism": mechanism,
                "sasl.username": user or self.user,
                "sasl.password": self.password if password is None else password}
        conf.update(extra)
        return conf

    def mtls_client(self, with_cert=True, **extra) -> dict:
        conf = {"bootstrap.servers": self.mtls_bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": str(self.ca)}
        if with_cert:
            conf.update({"ssl.certificate.location": str(SECURE / "gateway-cert.pem"),
                         "ssl.key.location": str(SECURE / "gateway-key.pem")})
        conf.update(extra)
        return conf


@pytest.fixture(scope="module")
def secure_pool(pool):
    ports = [int(a.rsplit(":", 1)[1]) for a in pool_sh("secure-bootstrap", "sasl").split(",")]
    ports += [int(a.rsplit(":", 1)[1]) for a in pool_sh("secure-bootstrap", "mtls").split(",")]
    closed = [p for p in ports if not _wait_port(p, 2)]
    assert not closed, (
        f"the pool does not serve its secured listeners on {closed}: it was started by a pool.sh "
        "without them; restart it (deploy/pool.sh stop && deploy/pool.sh start)")
    return SecurePool()


def try_metadata(conf: dict, timeout: float = 10):
    """(ok, errors): list_topics through a fresh client, and what its error callback saw."""
    errors = []
    conf = dict(conf, error_cb=lambda e: errors.append(e))
    admin = AdminClient(conf)
    try:
        admin.list_topics(timeout=timeout)
        return True, errors
    except KafkaException as e:
        admin.poll(1)  # serves the error callback
        errors.append(e.args[0])
        return False, errors


# ----------------------------------------------------------------- the pool's side

def test_secured_listeners_admit_only_the_gateways_credentials(secure_pool):
    p = secure_pool
    ok, errors = try_metadata(p.sasl_client())
    assert ok, errors
    ok, errors = try_metadata(p.sasl_client(mechanism="SCRAM-SHA-256"))
    assert ok, errors
    ok, errors = try_metadata(p.mtls_client())
    assert ok, errors

    ok, errors = try_metadata(p.sasl_client(password="not-the-password"))
    assert not ok
    assert any(e.code() == AUTH_FAILED for e in errors), errors
    assert any("Authentication failed" in e.str() for e in errors), errors
    ok, errors = try_metadata(p.sasl_client(user="nobody-" + uuid.uuid4().hex[:6]))
    assert not ok and any(e.code() == AUTH_FAILED for e in errors), errors
    # TLS without SASL on the SASL_SSL port: the broker waits for SaslHandshake, never answers.
    ok, errors = try_metadata({"bootstrap.servers": p.sasl_bootstrap, "security.protocol": "SSL",
                               "ssl.ca.location": str(p.ca)}, timeout=6)
    assert not ok, errors
    # No TLS at all on either secured port.
    ok, errors = try_metadata({"bootstrap.servers": p.mtls_bootstrap}, timeout=6)
    assert not ok, errors
    # mTLS without a client certificate: the broker refuses the handshake (the same
    # settings with the certificate worked above).
    ok, errors = try_metadata(p.mtls_client(with_cert=False), timeout=6)
    assert not ok, errors
    assert {e.code() for e in errors} <= {-195, -181, -185, -187}, errors  # _TRANSPORT, _SSL, _TIMED_OUT, _ALL_BROKERS_DOWN


# ---------------------------------------------------------------- through sluice

def wait_admitted(t: Tenant, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if t.admitted(timeout=2):
            return
        time.sleep(0.3)
    raise AssertionError(f"tenant {t.id} not admitted within {timeout}s\n" + t.tgw.log()[-3000:])


def round_trip(t: Tenant, n: int = 300):
    topic = unique("secure")
    admin = AdminClient(t.confluent_config())
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)],
                        operation_timeout=30)[topic].result(60)
    payloads = make_payloads(topic, n)
    acked = []
    producer = Producer(t.confluent_config(**{"acks": "all", "enable.idempotence": True}))
    deadline = time.time() + 30
    for v in payloads:
        producer.produce(topic, value=v, on_delivery=lambda err, msg: acked.append(err or msg.value()))
        producer.poll(0)
    while len(acked) < n and time.time() < deadline:
        producer.poll(0.5)
    producer.flush(10)
    errors = [a for a in acked if not isinstance(a, bytes)]
    assert not errors and len(acked) == n, (errors[:3], len(acked))
    group = unique("secure-group")
    consumer = Consumer(t.confluent_config(**{"group.id": group, "auto.offset.reset": "earliest",
                                              "enable.auto.commit": False}))
    consumer.subscribe([topic])
    got = []
    deadline = time.time() + 60
    while len(got) < n and time.time() < deadline:
        m = consumer.poll(1)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m.value())
    assert sha_sorted(got) == sha_sorted(payloads), (len(got), n)
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, i) for i in range(3)], timeout=20)
    assert sum(tp.offset for tp in committed if tp.offset >= 0) == n, committed
    consumer.close()
    # The group is the tenant's, seen through the gateway.
    groups = [g.group_id for g in admin.list_consumer_groups().result(20).valid]
    assert group in groups, groups


@pytest.mark.parametrize("kind", ["sasl_ssl", "ssl"])
def test_gateway_serves_tenants_over_a_secured_pool(secure_pool, kind, tmp_path):
    keys = Keys(tmp_path)
    gw = start_gateway(tmp_path, sasl_auth_config(keys), auth="sasl",
                       pool_section=secure_pool.gateway_config(kind))
    try:
        tgw = TenantGateway(SaslEnv(gw, keys))
        # The tenant store is read by the gateway over the secured listener.
        tid = new_tenant_id()
        put_tenant(allow_all_doc(tid))
        t = Tenant(tgw, tid)
        wait_admitted(t)
        round_trip(t)
        log = gw.log()
        assert "pool authentication failed" not in log, log[-3000:]
        assert gw.alive()
    finally:
        stop_gateway(gw)
    assert "panicked" not in gw.log(), gw.log()[-3000:]


# ------------------------------------------------------------ wrong credentials

def write_config(tmp_path: Path, pool_section: str) -> tuple:
    base = _free_port_block(10)
    cfg = tmp_path / f"sluice-{base}.toml"
    cfg.write_text(f"""
[listener]
bind_host = "127.0.0.1"
advertised_host = "127.0.0.1"
bootstrap_port = {base}
broker_port_base = {base}
auth = "none"

[admin]
bind = "127.0.0.1:{base + 9}"

{pool_section}
""")
    return cfg, base


def http_ready(port: int):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError as e:
        return None, str(e)


def test_wrong_scram_password_fails_at_start_with_a_clear_error(secure_pool, tmp_path):
    pw = tmp_path / "wrong.password"
    pw.write_text("definitely-wrong\n")
    section = secure_pool.gateway_config(
        "sasl_ssl", **{f'password_file = "{SECURE}/sluice.password"': f'password_file = "{pw}"'})
    cfg, base = write_config(tmp_path, section)
    log = tmp_path / "wrong.log"
    started = time.time()
    proc = subprocess.Popen([str(SLUICE_BIN), "serve", "--config", str(cfg)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the gateway hung with a wrong password:\n" + log.read_text()[-3000:])
    took = time.time() - started
    text = log.read_text()
    assert code != 0, text[-3000:]
    assert "refused the gateway's SCRAM-SHA-512 credentials" in text and 'user "sluice"' in text, text[-3000:]
    assert took < 20, f"took {took:.1f}s"
    # Never ready: nothing listens on its admin port.
    status, _ = http_ready(base + 9)
    assert status is None
    # check-config accepts the file (the credentials are the pool's to judge)...
    res = subprocess.run([str(SLUICE_BIN), "check-config", "--config", str(cfg)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # ...but not a password file that does not exist.
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace(str(pw), str(tmp_path / "missing.password")))
    res = subprocess.run([str(SLUICE_BIN), "check-config", "--config", str(bad)], capture_output=True, text=True)
    assert res.returncode != 0 and "missing.password" in res.stderr, res.stderr


def scram_user(user: str, password=None, mechanism="SCRAM-SHA-512"):
    """Creates (password given) or deletes the SCRAM credential of `user`, at the pool
    through the mTLS listener (the brokers' identity)."""
    args = ["kafka-configs", "--bootstrap-server", pool_sh("secure-bootstrap", "mtls"),
            "--command-config", str(SECURE / "tools-mtls.properties"),
            "--alter", "--entity-type", "users", "--entity-name", user]
    if password:
        args += ["--add-config", f"{mechanism}=[iterations=4096,password={password}]"]
    else:
        args += ["--delete-config", mechanism]
    kafka_tool(*args)


def wait_status(port: int, want: int, timeout: float):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = http_ready(port)
        if last[0] == want:
            return last[1]
        time.sleep(0.5)
    raise AssertionError(f"/ready never answered {want}: last {last}")


def test_revoked_credentials_make_the_gateway_unready(secure_pool, tmp_path):
    user = "sluice-" + uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    scram_user(user, password)
    pw = tmp_path / "pw"
    pw.write_text(password)
    section = secure_pool.gateway_config("sasl_ssl", **{
        'username = "sluice"': f'username = "{user}"',
        f'password_file = "{SECURE}/sluice.password"': f'password_file = "{pw}"'})
    # The credential may take a moment to reach every broker.
    gw = None
    for _ in range(10):
        cfg, base = write_config(tmp_path, section)
        log = tmp_path / f"gw-{base}.log"
        proc = subprocess.Popen([str(SLUICE_BIN), "serve", "--config", str(cfg)],
                                stdout=open(log, "w"), stderr=subprocess.STDOUT)
        if _wait_port(base + 9, 20):
            gw = (proc, base, log)
            break
        proc.kill()
        proc.wait()
        time.sleep(1)
    assert gw, log.read_text()[-3000:]
    proc, base, log = gw
    try:
        wait_status(base + 9, 200, 30)
        scram_user(user)  # revoked
        # A new client connection needs a new upstream connection, which the pool refuses.
        deadline = time.time() + 30
        body = None
        while time.time() < deadline:
            try_metadata({"bootstrap.servers": f"127.0.0.1:{base}"}, timeout=3)
            status, body = http_ready(base + 9)
            if status == 503:
                break
        assert status == 503, body
        assert "refuses the gateway's credentials" in body["reason"], body
        assert user in body["reason"], body
        scram_user(user, password)  # restored
        deadline = time.time() + 30
        while time.time() < deadline:
            ok, _ = try_metadata({"bootstrap.servers": f"127.0.0.1:{base}"}, timeout=3)
            status, body = http_ready(base + 9)
            if ok and status == 200:
                break
            time.sleep(0.5)
        assert status == 200, body
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        scram_user(user)
    assert "panicked" not in log.read_text()


def test_operator_cli_reaches_a_secured_pool(secure_pool, tmp_path):
    """`sluice tenant ... --config sluice.toml` uses the config's [pool] security and
    bootstrap: a pool without PLAINTEXT stays manageable from the CLI."""
    cfg, _ = write_config(tmp_path, secure_pool.gateway_config("sasl_ssl"))
    tid = new_tenant_id()

    def cli(*args, config=cfg, input=None):
        return subprocess.run([str(SLUICE_BIN), "tenant", *args, "--config", str(config)],
                              input=input, capture_output=True, text=True, timeout=60)

    res = cli("put", "-", input=json.dumps(allow_all_doc(tid)))
    assert res.returncode == 0, res.stderr
    res = cli("get", tid)
    assert res.returncode == 0 and json.loads(res.stdout)["tenant"]["id"] == tid, res
    pw = tmp_path / "wrong.password"
    pw.write_text("wrong")
    wrong, _ = write_config(tmp_path, secure_pool.gateway_config(
        "sasl_ssl", **{f'password_file = "{SECURE}/sluice.password"': f'password_file = "{pw}"'}))
    res = cli("get", tid, config=wrong)
    assert res.returncode != 0 and "refused the gateway's SCRAM-SHA-512 credentials" in res.stderr, res.stderr
