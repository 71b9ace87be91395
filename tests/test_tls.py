"""The TLS listener with SNI routing (issue 3 point 4, and "over TLS too" of point 6).

One gateway here serves a plain SASL listener (port per broker) and a `[tls]` listener:
one port for the whole pool, routed by the SNI name (`bootstrap.sluice.test`,
`broker-<id>.sluice.test`), with a certificate from files (made here with the openssl
CLI: a test CA and leaves signed by it for *.sluice.test) that is polled and swapped in
on change. Its admin listener is the OAuth2 issuer the clients fetch tokens from.
The names resolve through /etc/hosts (tests/setup.sh adds them).

Covered: kcat (SASL_SSL + PLAIN with a token as password, `-L` advertising SNI names),
confluent-kafka (OAUTHBEARER oidc), kafka-python (OAUTHBEARER token provider), the Java
client (OAuthBearerLoginCallbackHandler, PEM truststore), raw TLS connections with bad,
missing and unknown-broker SNI names, a certificate reload that keeps old connections,
and the plain listener beside the TLS one.
"""
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.net.sasl.oauth import AbstractTokenProvider

from clientlib import make_payloads, sha_sorted, unique
from tenants import allow_all_doc, put_tenant
from conftest import POOL_BOOTSTRAP, SLUICE_BIN, _free_port_block, _wait_port
from jvm import java_cmd, java_helpers, parse_acks, parse_dump  # noqa: F401 (java_helpers is a fixture)
from test_oauth import LOGIN_HANDLER, LOGIN_MODULE, TENANT, OAuthGateway, create_client, create_topic_as, token_request
from test_sasl import RawClient, plain_msg

TIMEOUT = 60
DOMAIN = "sluice.test"
KCAT = shutil.which("kcat") or shutil.which("kafkacat") or "kcat"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RELOAD_MS = 500


# --------------------------------------------------------------------------- certificates

def openssl(*args, cwd=None):
    res = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30, cwd=cwd)
    assert res.returncode == 0, f"openssl {' '.join(map(str, args))} failed:\n{res.stderr}"
    return res.stdout


class Certs:
    """A test CA (ca.pem) and leaf certificates for *.sluice.test signed by it; the
    gateway reads cert.pem / key.pem."""

    def __init__(self, d: Path):
        self.dir = d
        self.ca_pem, self.ca_key = d / "ca.pem", d / "ca.key"
        self.cert_file, self.key_file = d / "cert.pem", d / "key.pem"
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", self.ca_key, "-out", self.ca_pem, "-days", "3", "-subj", "/CN=sluice test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.leaf(1, self.cert_file, self.key_file)

    def leaf(self, serial: int, cert_out: Path, key_out: Path):
        """A leaf for *.sluice.test and bootstrap.sluice.test, CN sluice-leaf-<serial>."""
        csr, ext = self.dir / f"leaf-{serial}.csr", self.dir / f"leaf-{serial}.ext"
        ext.write_text(f"subjectAltName=DNS:*.{DOMAIN},DNS:bootstrap.{DOMAIN}\n"
                       "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=serverAuth\n")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key_out, "-out", csr, "-subj", f"/CN=sluice-leaf-{serial}")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca_pem, "-CAkey", self.ca_key, "-set_serial", 1000 + serial,
                "-days", "3", "-out", cert_out, "-extfile", ext)


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def file_fingerprint(pem: Path) -> str:
    return fingerprint(ssl.PEM_cert_to_DER_cert(pem.read_text()))


# --------------------------------------------------------------------------- gateway

class TlsGateway(OAuthGateway):
    def __init__(self, *, tls_port, certs, **kw):
        super().__init__(**kw)
        self.tls_port = tls_port
        self.certs = certs
        self.tls_bootstrap = f"bootstrap.{DOMAIN}:{tls_port}"

    def warn_lines(self, *needles) -> list:
        return [l for l in self.log_lines(*needles) if "WARN" in l]


def start_tls_gateway(tmp_dir: Path, certs: Certs) -> TlsGateway:
    if not SLUICE_BIN.exists():
        raise RuntimeError(f"{SLUICE_BIN} missing: run `cargo build -p sluice-gateway` first")
    # Tenants live in the tenant store; the gateway lets in only those that exist.
    put_tenant(allow_all_doc(TENANT))
    base = _free_port_block(10)  # bootstrap on base, broker N on base + N, TLS on base + 8, admin on base + 9
    tls_port, admin_port = base + 8, base + 9
    cfg = tmp_dir / f"sluice-tls-{base}.toml"
    key_file = tmp_dir / "issuer.pem"
    pool = ", ".join(f'"{a}"' for a in POOL_BOOTSTRAP.split(","))
    cfg.write_text(f"""
[listener]
bind_host = "127.0.0.1"
advertised_host = "127.0.0.1"
bootstrap_port = {base}
broker_port_base = {base}
auth = "sasl"

[pool]
bootstrap = [{pool}]

[limits]
max_frame_bytes = 104857600

[auth]
max_session_ms = 3600000

[admin]
bind = "127.0.0.1:{admin_port}"

[issuer]
url = "http://127.0.0.1:{admin_port}"
audience = "sluice"
key_file = "{key_file}"
generate_key = true
token_ttl_secs = 3600

[tls]
port = {tls_port}
domain = "{DOMAIN}"
cert_file = "{certs.cert_file}"
key_file = "{certs.key_file}"
reload_check_ms = {RELOAD_MS}
""")
    log_path = tmp_dir / f"sluice-tls-{base}.log"
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
    proc = subprocess.Popen([str(SLUICE_BIN), "serve", "--config", str(cfg)],
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env)
    ports = [base, base + 1, base + 2, base + 3, tls_port, admin_port]
    if not all(_wait_port(p, 30) for p in ports):
        proc.kill()
        proc.wait(10)
        raise RuntimeError(f"TLS gateway did not open {ports}:\n{log_path.read_text()[-3000:]}")
    return TlsGateway(
        bootstrap=f"127.0.0.1:{base}", proc=proc, log_path=log_path, bootstrap_port=base, broker_port_base=base,
        admin_port=admin_port, config_path=cfg, key_file=key_file, ttl=3600,
        tls_port=tls_port, certs=certs,
    )


@pytest.fixture(scope="module")
def tls_gw(pool, tmp_path_factory):
    certs = Certs(tmp_path_factory.mktemp("tls-certs"))
    gw = start_tls_gateway(tmp_path_factory.mktemp("tls-gw"), certs)
    yield gw
    gw.proc.terminate()
    try:
        gw.proc.wait(15)
    except subprocess.TimeoutExpired:
        gw.proc.kill()
        gw.proc.wait(10)
    assert "panicked" not in gw.log(), gw.log()[-5000:]


@pytest.fixture
def up(tls_gw):
    """Fails a test (at teardown) if the gateway died during it."""
    yield
    assert tls_gw.alive(), "TLS gateway exited during the test:\n" + tls_gw.log()[-5000:]


@pytest.fixture(scope="module")
def client(tls_gw):
    return create_client(tls_gw, subject=unique("tls"))


def fetch_token(gw, c) -> str:
    status, _, body = token_request(gw, c.id, c.secret)
    assert status == 200, body
    return json.loads(body)["access_token"]


# --------------------------------------------------------------------------- raw TLS

def tls_context(gw, verify_name=True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(gw.certs.ca_pem))
    ctx.check_hostname = verify_name
    return ctx


def tls_connect(gw, sni, verify_name=True, timeout=10):
    """A TLS connection to the TLS port with `sni` as server name (None: no SNI),
    wrapped in the raw Kafka client of test_sasl."""
    ctx = tls_context(gw, verify_name=verify_name and sni is not None)
    sock = socket.create_connection(("127.0.0.1", gw.tls_port), timeout=timeout)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=sni)
    except Exception:
        sock.close()
        raise
    c = RawClient.__new__(RawClient)
    c.sock, c.local_port, c.corr = tls, tls.getsockname()[1], 0
    return c


def closed_without_answer(c: RawClient, timeout=10) -> bool:
    """Sends ApiVersions and expects the gateway to close instead of answering."""
    try:
        c.send(18, 0, b"")
    except (ssl.SSLError, OSError):
        return True  # already closed
    c.sock.settimeout(timeout)
    try:
        data = c.sock.recv(4)
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
        return True
    except (socket.timeout, TimeoutError):
        return False
    assert data == b"", f"the gateway answered ({data!r}) instead of closing"
    return True


def sasl_plain(c: RawClient, token: str):
    err, mechs = c.handshake("PLAIN")
    assert err == 0, (err, mechs)
    err, msg, _, _ = c.authenticate(plain_msg(token))
    assert err == 0, (err, msg)


# --------------------------------------------------------------------------- topics

def oidc_tls_conf(gw, c, **extra):
    conf = {
        "bootstrap.servers": gw.tls_bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(gw.certs.ca_pem),
        "sasl.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": c.id,
        "sasl.oauthbearer.client.secret": c.secret,
        "sasl.oauthbearer.token.endpoint.url": gw.token_endpoint,
        "socket.timeout.ms": 20000,
    }
    conf.update(extra)
    return conf


def create_topic(gw, c, topic, partitions=3):
    """Creates the topic over TLS (confluent AdminClient, OIDC) and waits for leaders."""
    create_topic_as(oidc_tls_conf(gw, c), topic, partitions)


def sni_brokers(text: str, gw) -> list:
    """[(node_id, host, port)] from kcat -L output."""
    return [(int(n), h, int(p)) for n, h, p in re.findall(r"broker (\d+) at ([^\s:]+):(\d+)", text)]


# =========================================================================== clients

def test_kcat_sasl_ssl_plain(tls_gw, client, up):
    topic = unique("tls-kcat")
    create_topic(tls_gw, client, topic)
    token = fetch_token(tls_gw, client)
    common = [KCAT, "-b", tls_gw.tls_bootstrap, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanism=PLAIN",
              "-X", "sasl.username=kcat-user", "-X", f"sasl.password={token}",
              "-X", f"ssl.ca.location={tls_gw.certs.ca_pem}", "-X", "socket.timeout.ms=20000"]
    # -L for this topic only: the shared pool holds many topics whose names could hold digits.
    res = subprocess.run(common + ["-L", "-t", topic, "-m", "20"], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr[-3000:]
    brokers = sni_brokers(res.stdout, tls_gw)
    assert len(brokers) >= 3, res.stdout
    for node, host, port in brokers:
        assert (host, port) == (f"broker-{node}.{DOMAIN}", tls_gw.tls_port), res.stdout
    assert "127.0.0.1" not in res.stdout and str(tls_gw.broker_port_base + 1) not in res.stdout, res.stdout
    for p in POOL_BOOTSTRAP.split(","):
        assert p.rsplit(":", 1)[1] not in res.stdout, res.stdout

    payloads = make_payloads(unique("kt"), 300)
    res = subprocess.run(common + ["-P", "-t", topic, "-K:", "-X", "acks=all"],
                         input=b"".join(b"k%d:%s\n" % (i % 5, v) for i, v in enumerate(payloads)),
                         capture_output=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-3000:]
    res = subprocess.run(common + ["-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", r"%k:%s\n"],
                         capture_output=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-3000:]
    got = [l.split(b":", 1)[1] for l in res.stdout.splitlines() if l]
    assert len(got) == len(payloads), (len(got), res.stderr[-2000:])
    assert sha_sorted(got) == sha_sorted(payloads)
    assert tls_gw.log_lines("client authenticated", f'subject="{client.subject}"'), tls_gw.log()[-3000:]


def test_confluent_oidc_over_tls(tls_gw, up):
    c_ = create_client(tls_gw, subject=unique("tls-rdk"))
    topic = unique("tls-rdk")
    create_topic(tls_gw, c_, topic)
    errors, delivery_errors = [], []
    data = make_payloads(topic, 1000)
    p = Producer(oidc_tls_conf(tls_gw, c_, **{"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                                              "error_cb": errors.append}))
    for i, v in enumerate(data):
        while True:
            try:
                p.produce(topic, key=f"k{i % 13}".encode(), value=v,
                          on_delivery=lambda err, msg: err and delivery_errors.append(err))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(TIMEOUT) == 0, f"messages not delivered; errors {errors}"
    assert not delivery_errors, delivery_errors[:5]

    c = Consumer(oidc_tls_conf(tls_gw, c_, **{"group.id": unique("tls-grp"), "auto.offset.reset": "earliest",
                                              "enable.auto.commit": False, "error_cb": errors.append}))
    got = []
    try:
        c.subscribe([topic])
        deadline = time.time() + TIMEOUT
        while len(got) < len(data):
            assert time.time() < deadline, f"consumed {len(got)}/{len(data)}; errors {errors}"
            m = c.poll(0.5)
            if m is None:
                continue
            assert not m.error(), m.error()
            got.append(m.value())
        c.commit(asynchronous=False)  # the group coordinator is reached by its SNI name too
        md = c.list_topics(topic, timeout=10)
    finally:
        c.close()
    assert len(got) == len(data) and sha_sorted(got) == sha_sorted(data)
    assert not errors, errors
    for b in md.brokers.values():
        assert (b.host, b.port) == (f"broker-{b.id}.{DOMAIN}", tls_gw.tls_port), md.brokers
    assert tls_gw.log_lines("token issued", c_.id), tls_gw.log()[-3000:]
    assert tls_gw.log_lines("client authenticated", f'subject="{c_.subject}"'), tls_gw.log()[-3000:]


class EndpointTokenProvider(AbstractTokenProvider):
    """kafka-python's OAUTHBEARER token source: a token from sluice's token endpoint."""

    def __init__(self, gw, c):
        super().__init__()
        self.gw, self.c, self.calls = gw, c, 0

    def token(self):
        self.calls += 1
        return fetch_token(self.gw, self.c)


def test_kafka_python_oauthbearer_over_tls(tls_gw, up):
    c_ = create_client(tls_gw, subject=unique("tls-kp"))
    topic = unique("tls-kp")
    create_topic(tls_gw, c_, topic)
    provider = EndpointTokenProvider(tls_gw, c_)
    conf = {"bootstrap_servers": tls_gw.tls_bootstrap, "request_timeout_ms": 30000,
            "security_protocol": "SASL_SSL", "ssl_cafile": str(tls_gw.certs.ca_pem), "ssl_check_hostname": True,
            "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": provider}
    payloads = make_payloads(unique("kp"), 300)
    p = KafkaProducer(**conf, acks="all", linger_ms=5)
    try:
        futures = [p.send(topic, key=f"k{i % 5}".encode(), value=v) for i, v in enumerate(payloads)]
        p.flush(timeout=TIMEOUT)
        for f in futures:
            f.get(timeout=TIMEOUT)
    finally:
        p.close(timeout=10)
    c = KafkaConsumer(**conf, enable_auto_commit=False, auto_offset_reset="earliest",
                      consumer_timeout_ms=TIMEOUT * 1000)
    got = []
    try:
        parts = c.partitions_for_topic(topic)
        assert parts, "no partitions"
        c.assign([KpTopicPartition(topic, q) for q in parts])
        c.seek_to_beginning()
        for m in c:
            got.append(m.value)
            if len(got) == len(payloads):
                break
    finally:
        c.close()
    assert len(got) == len(payloads) and sha_sorted(got) == sha_sorted(payloads)
    assert provider.calls >= 2, provider.calls
    assert tls_gw.log_lines("client authenticated", f'subject="{c_.subject}"'), tls_gw.log()[-3000:]


def java_tls_cmd(build, gw, c, cls, *args):
    """A Java helper over SASL_SSL (PEM truststore) with OAuthBearerLoginCallbackHandler
    fetching from sluice's token endpoint (Kafka 4.1 client-credentials configs)."""
    props = [
        "security.protocol=SASL_SSL",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={gw.certs.ca_pem}",
        "sasl.mechanism=OAUTHBEARER",
        f"sasl.login.callback.handler.class={LOGIN_HANDLER}",
        f"sasl.oauthbearer.token.endpoint.url={gw.token_endpoint}",
        f"sasl.oauthbearer.client.credentials.client.id={c.id}",
        f"sasl.oauthbearer.client.credentials.client.secret={c.secret}",
        f"sasl.jaas.config={LOGIN_MODULE} required;",
    ]
    full = list(args)
    for p in props:
        full += ["--prop", p]
    cmd = java_cmd(build, cls, *full)
    cmd.insert(1, f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={gw.token_endpoint}")
    return cmd


def run_java_tls(build, gw, c, cls, *args, timeout=120):
    res = subprocess.run(java_tls_cmd(build, gw, c, cls, *args), capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(
            f"{cls} failed ({res.returncode}):\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-5000:]}\n"
            f"gateway log: {gw.log()[-3000:]}")
    return res.stdout.splitlines()


def test_java_oauthbearer_over_tls(tls_gw, java_helpers, up):
    c_ = create_client(tls_gw, subject=unique("tls-java"))
    topic = unique("tls-java")
    create_topic(tls_gw, c_, topic)
    count = 1000
    lines = run_java_tls(java_helpers, tls_gw, c_, "Produce", "--bootstrap", tls_gw.tls_bootstrap, "--topic", topic,
                         "--count", count, "--prefix", topic)
    acked, errors, done = parse_acks(lines)
    assert not errors, errors[:10]
    assert done == f"done sent={count} acked={count} errors=0", (done, lines[-5:])
    leaders = [l.split()[1:] for l in lines if l.startswith("leader ")]
    assert leaders, "helper printed no leader addresses"
    for _, host, port in leaders:
        assert re.fullmatch(rf"broker-\d+\.{re.escape(DOMAIN)}", host) and int(port) == tls_gw.tls_port, leaders
    dump = run_java_tls(java_helpers, tls_gw, c_, "Dump", "--bootstrap", tls_gw.tls_bootstrap, "--topic", topic,
                        "--timeout-ms", 60000, timeout=100)
    recs, end = parse_dump(dump)
    values = [v for _, _, _, v in recs]
    assert len(values) == count, (len(values), end)
    assert sha_sorted(values) == sha_sorted([f"{topic}-{i}" for i in range(count)])
    assert {v: (p, o) for p, o, _, v in recs} == acked, "records are not where the producer was told"
    assert len(tls_gw.log_lines("token issued", c_.id)) >= 2, "producer and dump each fetch a token"
    assert tls_gw.log_lines("client authenticated", f'subject="{c_.subject}"'), tls_gw.log()[-3000:]


# =========================================================================== SNI

def wait_log(gw, needles, timeout=5) -> list:
    deadline = time.time() + timeout
    while True:
        lines = gw.warn_lines(*needles)
        if lines or time.time() > deadline:
            return lines
        time.sleep(0.1)


@pytest.mark.parametrize("sni", ["kafka.example.com", "broker-1.other.test", None],
                         ids=["foreign-name", "foreign-domain", "no-sni"])
def test_sni_outside_domain_is_closed(tls_gw, sni, up):
    before = len(tls_gw.warn_lines("closing TLS connection"))
    c = tls_connect(tls_gw, sni, verify_name=False)
    try:
        # The handshake completed with the gateway's certificate, then nothing is served.
        assert fingerprint(c.sock.getpeercert(binary_form=True)) == file_fingerprint(tls_gw.certs.cert_file)
        assert closed_without_answer(c), f"SNI {sni!r}: the connection stayed open"
    finally:
        c.close()
    shown = f'sni=Some("{sni}")' if sni else "sni=None"
    lines = wait_log(tls_gw, ("closing TLS connection: SNI names no broker", shown))
    assert lines, tls_gw.log()[-3000:]
    assert len(tls_gw.warn_lines("closing TLS connection")) > before


def test_sni_unknown_broker_is_closed(tls_gw, up):
    c = tls_connect(tls_gw, f"broker-77.{DOMAIN}")
    try:
        assert closed_without_answer(c), "broker-77: the connection stayed open"
    finally:
        c.close()
    lines = wait_log(tls_gw, ("closing TLS connection", "node_id=77"))
    assert lines, tls_gw.log()[-3000:]


@pytest.mark.parametrize("name", ["bootstrap", "broker-1", "BROKER-2"])
def test_sni_known_names_answer(tls_gw, client, name, up):
    """bootstrap.<domain> and broker names answer ApiVersions and, once authenticated,
    Metadata with SNI names on the TLS port."""
    c = tls_connect(tls_gw, f"{name}.{DOMAIN}")
    try:
        err, apis = c.api_versions()
        assert err == 0 and 3 in apis and 17 in apis, (err, apis)
        sasl_plain(c, fetch_token(tls_gw, client))
        brokers = c.metadata()
    finally:
        c.close()
    assert len(brokers) >= 3, brokers
    for node, host, port in brokers:
        assert (host, port) == (f"broker-{node}.{DOMAIN}", tls_gw.tls_port), brokers


def test_plain_listener_alongside(tls_gw, client, up):
    """The port-per-broker plain listener of the same gateway still serves and advertises
    its own addresses, not the SNI names."""
    with RawClient(tls_gw.bootstrap_port) as c:
        err, apis = c.api_versions()
        assert err == 0 and 3 in apis, (err, apis)
        sasl_plain(c, fetch_token(tls_gw, client))
        brokers = c.metadata()
    assert len(brokers) >= 3, brokers
    for node, host, port in brokers:
        assert (host, port) == ("127.0.0.1", tls_gw.broker_port_base + node), brokers


# =========================================================================== reload

def test_certificate_reload_keeps_connections(tls_gw, client, up):
    """Replacing cert.pem/key.pem with a new certificate: within ~2 s new handshakes get the
    new one, while a connection opened before keeps working on the old session."""
    certs = tls_gw.certs
    old_fp = file_fingerprint(certs.cert_file)
    old = tls_connect(tls_gw, f"bootstrap.{DOMAIN}")
    fresh = None
    try:
        assert fingerprint(old.sock.getpeercert(binary_form=True)) == old_fp
        err, _ = old.api_versions()
        assert err == 0
        sasl_plain(old, fetch_token(tls_gw, client))

        serial = int(time.time()) % 100000 + 2
        new_cert, new_key = certs.dir / f"new-{serial}.pem", certs.dir / f"new-{serial}.key"
        certs.leaf(serial, new_cert, new_key)
        new_fp = file_fingerprint(new_cert)
        assert new_fp != old_fp
        # Renewal as a deployment does it: each file replaced atomically, key then cert.
        os.replace(new_key, certs.key_file)
        os.replace(new_cert, certs.cert_file)
        replaced = time.time()

        seen = None
        while time.time() - replaced < 2.0 + RELOAD_MS / 1000:
            probe = tls_connect(tls_gw, f"bootstrap.{DOMAIN}")
            try:
                seen = fingerprint(probe.sock.getpeercert(binary_form=True))
                if seen == new_fp:
                    fresh = probe
                    probe = None
                    break
                assert seen == old_fp, "a certificate that is neither the old nor the new one"
            finally:
                if probe is not None:
                    probe.close()
            time.sleep(0.1)
        took = time.time() - replaced
        assert fresh is not None, f"new handshakes still present the old certificate after {took:.1f}s:\n" \
                                  + tls_gw.log()[-2000:]
        assert fresh.sock.getpeercert()["subject"] == ((("commonName", f"sluice-leaf-{serial}"),),)
        assert tls_gw.log_lines("TLS certificate reloaded"), tls_gw.log()[-2000:]

        # The new certificate serves Kafka too.
        err, _ = fresh.api_versions()
        assert err == 0
        # The old connection is untouched: same session, still answers.
        assert fingerprint(old.sock.getpeercert(binary_form=True)) == old_fp
        err, apis = old.api_versions()
        assert err == 0 and 3 in apis, (err, apis)
        brokers = old.metadata()
        assert len(brokers) >= 3 and all(h == f"broker-{n}.{DOMAIN}" for n, h, _ in brokers), brokers
    finally:
        old.close()
        if fresh is not None:
            fresh.close()
