"""SASL on the gateway's Kafka listeners (SPEC section 5): OAUTHBEARER and PLAIN carrying
JWTs, with real clients (kcat, confluent-kafka, kafka-python, the Java client), KIP-368
re-authentication and session expiry, and the rejections a client sees for bad tokens and
bad SASL exchanges (via a raw-socket client built with struct).

One session-scoped SASL gateway serves most tests. Its two issuers:
- https://sluice.test: EdDSA, key made by `sluice token keygen`, tokens by `sluice token
  mint` (or crafted here with the same key), leeway 0;
- https://rsa.test: RS256 and HS256, RSA and oct keys written here with `cryptography`.
Its brute-force guard thresholds are set out of reach; two short-lived gateways test the
session cap (max_session_ms = 5000) and the guard itself.
"""
import base64
import hashlib
import hmac
import json
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.net.sasl.oauth import AbstractTokenProvider

from clientlib import make_payloads, sha_sorted, unique
from conftest import SLUICE_BIN, start_gateway
from tenants import ALLOW_ALL, allow_all_doc, put_tenant
from jvm import java_cmd, java_helpers, parse_acks, parse_dump, run_java  # noqa: F401 (java_helpers is a fixture)

TIMEOUT = 60
KCAT = shutil.which("kcat") or shutil.which("kafkacat") or "kcat"

ED_ISSUER = "https://sluice.test"
ED_AUDIENCE = "sluice"
RSA_ISSUER = "https://rsa.test"
RSA_AUDIENCE = "sluice-rsa"
RSA_KID = "rsa-1"
HS_KID = "hs-1"
MAX_TOKEN_BYTES = 8192
TENANTS = ["demo", "acme"]

# Kafka error codes.
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
SASL_AUTHENTICATION_FAILED = 58
INVALID_TOKEN_CHALLENGE = b'{"status":"invalid_token"}'


# --------------------------------------------------------------------------- tokens

def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64u(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def encode_jwt(header: dict, claims: dict, sign) -> str:
    """A compact JWS; `sign(signing_input) -> signature`, or None for an empty signature."""
    signing_input = (
        b64u(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64u(json.dumps(claims, separators=(",", ":")).encode())
    )
    sig = sign(signing_input.encode()) if sign else b""
    return signing_input + "." + b64u(sig)


def load_ed25519_pkcs8(pem: str) -> ed25519.Ed25519PrivateKey:
    """The key of a `sluice token keygen` PEM. It is PKCS#8 v2 (RFC 5958 OneAsymmetricKey
    with the public key), which neither OpenSSL 3.0 nor `cryptography` loads, so the seed is
    read from the DER here: SEQUENCE { INTEGER 1, AlgorithmIdentifier { 1.3.101.112 },
    OCTET STRING { OCTET STRING seed(32) }, [1] publicKey }."""
    body = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
    der = base64.b64decode(body)
    prefix = bytes.fromhex("300506032b657004220420")
    at = der.find(prefix)
    assert at in (5, 7) and der[0] == 0x30, der.hex()
    seed = der[at + len(prefix):at + len(prefix) + 32]
    assert len(seed) == 32, der.hex()
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


class Keys:
    """The issuers' keys and a way to sign with each."""

    def __init__(self, tmp: Path):
        self.dir = tmp
        # sluice's own tooling for the main issuer.
        self.ed_pem = tmp / "ed.pem"
        self.ed_jwks = tmp / "ed-jwks.json"
        res = subprocess.run([str(SLUICE_BIN), "token", "keygen", "--key", self.ed_pem, "--jwks", self.ed_jwks],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        [jwk] = json.loads(self.ed_jwks.read_text())["keys"]
        self.ed_kid = jwk["kid"]
        assert res.stdout.startswith(f"kid {self.ed_kid} "), res.stdout
        self.ed = load_ed25519_pkcs8(self.ed_pem.read_text())
        raw_pub = self.ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert b64u(raw_pub) == jwk["x"], "keygen's JWKS does not hold the key's public half"
        # Keys nobody trusts, for "signed by another key".
        self.ed_other = ed25519.Ed25519PrivateKey.generate()
        self.rsa_other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # The second issuer: an RSA key and an HMAC secret, written here.
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_public_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.hs_secret = uuid.uuid4().bytes + uuid.uuid4().bytes
        pub = self.rsa.public_key().public_numbers()
        self.rsa_jwks = tmp / "rsa-jwks.json"
        self.rsa_jwks.write_text(json.dumps({"keys": [
            {"kty": "RSA", "kid": RSA_KID, "use": "sig", "n": int_b64u(pub.n), "e": int_b64u(pub.e)},
            {"kty": "oct", "kid": HS_KID, "use": "sig", "k": b64u(self.hs_secret)},
        ]}))

    # signers
    def sign_ed(self, key=None):
        return lambda data: (key or self.ed).sign(data)

    def sign_rsa(self, key=None):
        return lambda data: (key or self.rsa).sign(data, padding.PKCS1v15(), hashes.SHA256())

    @staticmethod
    def sign_hs(secret: bytes):
        return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def claims(subject="alice", tenant="demo", ttl=3600, issuer=ED_ISSUER, audience=ED_AUDIENCE, **extra):
    now = int(time.time())
    c = {"iss": issuer, "aud": audience, "sub": subject, "iat": now, "nbf": now, "exp": now + ttl,
         "sluice:tenant": tenant}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


class SaslEnv:
    """The SASL gateway of the session, its keys, and token minting."""

    def __init__(self, gateway, keys: Keys):
        self.gateway = gateway
        self.keys = keys
        self.bootstrap = gateway.bootstrap
        self.port = gateway.bootstrap_port

    def mint(self, subject="alice", tenant="demo", ttl=3600, policies=None) -> str:
        """A token from `sluice token mint`, the operator's tool."""
        args = [str(SLUICE_BIN), "token", "mint", "--key", self.keys.ed_pem, "--issuer", ED_ISSUER,
                "--audience", ED_AUDIENCE, "--tenant", tenant, "--subject", subject, "--ttl-secs", ttl]
        if policies:
            args += ["--policies", ",".join(policies)]
        res = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    def ed_token(self, header=None, sign=None, **kw) -> str:
        """A token of the Ed25519 issuer crafted here (same key as `mint` unless told)."""
        h = {"alg": "EdDSA", "typ": "JWT", "kid": self.keys.ed_kid}
        h.update(header or {})
        h = {k: v for k, v in h.items() if v is not None}
        return encode_jwt(h, claims(**kw), sign or self.keys.sign_ed())

    def rsa_token(self, header=None, sign=None, **kw) -> str:
        h = {"alg": "RS256", "typ": "JWT", "kid": RSA_KID}
        h.update(header or {})
        h = {k: v for k, v in h.items() if v is not None}
        kw.setdefault("issuer", RSA_ISSUER)
        kw.setdefault("audience", RSA_AUDIENCE)
        return encode_jwt(h, claims(**kw), sign or self.keys.sign_rsa())

    def log(self) -> str:
        return log_text(self.gateway)


def sasl_auth_config(keys: Keys, max_session_ms=3600000, guard=(100_000, 1_000_000, 60_000)) -> str:
    """The [auth] section. `guard` = (failures_before_delay, failures_before_refusal,
    failure_window_ms): the brute-force guard counts per source IP, and every test here
    connects from 127.0.0.1, so the shared gateway gets thresholds that the deliberate
    failures never reach (test_failed_attempts_delayed_then_refused covers the guard)."""
    delay, refuse, window = guard
    return f"""
[auth]
mechanisms = ["OAUTHBEARER", "PLAIN"]
max_session_ms = {max_session_ms}
failures_before_delay = {delay}
failures_before_refusal = {refuse}
failure_window_ms = {window}

[[auth.issuers]]
issuer = "{ED_ISSUER}"
audience = ["{ED_AUDIENCE}"]
jwks_file = "{keys.ed_jwks}"
algorithms = ["EdDSA"]
leeway_secs = 0
max_token_bytes = {MAX_TOKEN_BYTES}

[[auth.issuers]]
issuer = "{RSA_ISSUER}"
audience = ["{RSA_AUDIENCE}"]
jwks_file = "{keys.rsa_jwks}"
algorithms = ["RS256", "HS256"]
leeway_secs = 0
max_token_bytes = {MAX_TOKEN_BYTES}
"""


def stop_gateway(gw):
    gw.proc.terminate()
    try:
        gw.proc.wait(10)
    except subprocess.TimeoutExpired:
        gw.proc.kill()
        gw.proc.wait(10)


@pytest.fixture(scope="session")
def sasl_tenants(pool):
    """TENANTS in the tenant store, every principal allowed everything (tokens for them
    are refused until they exist)."""
    for t in TENANTS:
        doc = allow_all_doc(t)
        # Policies tokens name in `sluice:policies` (test_token_variants_accepted); what they
        # allow is the policy tests' business, here they only have to exist.
        doc["policies"].update({"read": ALLOW_ALL, "write": ALLOW_ALL})
        put_tenant(doc)
    return TENANTS


@pytest.fixture(scope="session")
def sasl_keys(tmp_path_factory, sasl_tenants):
    return Keys(tmp_path_factory.mktemp("sasl-keys"))


@pytest.fixture(scope="session")
def sasl(pool, sasl_keys, tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("sasl-gateway"), sasl_auth_config(sasl_keys), auth="sasl")
    env = SaslEnv(gw, sasl_keys)
    yield env
    stop_gateway(gw)
    assert "panicked" not in gw.log(), gw.log()[-5000:]


@pytest.fixture
def healthy(sasl):
    """Fails a test (at teardown) unless the SASL gateway is alive and still lets a good
    client in and answers it."""
    yield
    assert sasl.gateway.alive(), "SASL gateway exited:\n" + sasl.log()[-5000:]
    check_good_client(sasl)


# --------------------------------------------------------------------------- raw client

def kstr(s) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def kbytes(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


class Reader:
    def __init__(self, data: bytes):
        self.d, self.i = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.i)
        self.i += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.d[self.i:self.i + n].decode()
        self.i += n
        return s

    def bytes_(self):
        n = self.take(">i")
        if n < 0:
            return None
        b = self.d[self.i:self.i + n]
        self.i += n
        return b


class RawClient:
    """A Kafka client speaking just enough of the protocol by hand: non-flexible request
    headers (v1), SaslHandshake v0/v1, SaslAuthenticate v0/v1, ApiVersions v0, Metadata v1."""

    def __init__(self, port: int, timeout: float = 10, source: str = "127.0.0.1", client_id: str = "sasl-test"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.local_port = self.sock.getsockname()[1]
        self.corr = 0
        self.client_id = client_id

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_frame(self, payload: bytes):
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def send(self, api_key: int, version: int, body: bytes) -> int:
        self.corr += 1
        # test_tls builds clients around TLS sockets without __init__: the default id then.
        header = struct.pack(">hhi", api_key, version, self.corr) + kstr(getattr(self, "client_id", "sasl-test"))
        self.send_frame(header + body)
        return self.corr

    def _recv_exact(self, n: int):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv_frame(self):
        """The next frame's payload, or None if the gateway closed the connection."""
        size = self._recv_exact(4)
        if size is None:
            return None
        (n,) = struct.unpack(">i", size)
        return self._recv_exact(n)

    def response(self, corr: int) -> Reader:
        frame = self.recv_frame()
        assert frame is not None, "connection closed instead of a response"
        r = Reader(frame)
        got = r.take(">i")
        assert got == corr, f"correlation id {got}, expected {corr}"
        return r

    def handshake(self, mechanism: str, version: int = 1):
        r = self.response(self.send(17, version, kstr(mechanism)))
        err = r.take(">h")
        mechs = [r.string() for _ in range(r.take(">i"))]
        return err, mechs

    def authenticate(self, auth_bytes: bytes, version: int = 1):
        """-> (error_code, error_message, auth_bytes, session_lifetime_ms or None)."""
        r = self.response(self.send(36, version, kbytes(auth_bytes)))
        err, msg, data = r.take(">h"), r.string(), r.bytes_()
        lifetime = r.take(">q") if version >= 1 else None
        return err, msg, data, lifetime

    def api_versions(self):
        r = self.response(self.send(18, 0, b""))
        err = r.take(">h")
        apis = {}
        for _ in range(r.take(">i")):
            k, lo, hi = r.take(">hhh")
            apis[k] = (lo, hi)
        return err, apis

    def metadata(self):
        """Metadata v1 for no topics -> [(node_id, host, port)]."""
        r = self.response(self.send(3, 1, struct.pack(">i", 0)))
        brokers = []
        for _ in range(r.take(">i")):
            node, host, port = r.take(">i"), r.string(), r.take(">i")
            r.string()  # rack
            brokers.append((node, host, port))
        return brokers

    def closed_within(self, timeout: float) -> bool:
        """True if the gateway closes the connection (EOF or reset) within `timeout`
        without sending anything more."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        assert data == b"", f"unexpected bytes {data!r} instead of a close"
        return True


def oauth_msg(token: str, authzid: str = "") -> bytes:
    a = f"a={authzid}" if authzid else ""
    return f"n,{a},\x01auth=Bearer {token}\x01\x01".encode()


def plain_msg(token: str, username: str = "anyone") -> bytes:
    return b"\0" + username.encode() + b"\0" + token.encode()


def sasl_login(port: int, mechanism: str, token: str, timeout: float = 10):
    """A raw client authenticated with `token` -> (client, session_lifetime_ms)."""
    c = RawClient(port, timeout)
    err, mechs = c.handshake(mechanism)
    assert (err, mechs) == (0, ["OAUTHBEARER", "PLAIN"]), (err, mechs)
    msg = oauth_msg(token) if mechanism == "OAUTHBEARER" else plain_msg(token)
    err, text, data, lifetime = c.authenticate(msg)
    assert (err, text, data) == (0, None, b""), (err, text, data)
    return c, lifetime


def check_good_client(env: SaslEnv):
    """A valid token still gets in, and the session then serves a Metadata request
    with the gateway's own broker addresses."""
    c, lifetime = sasl_login(env.port, "PLAIN", env.mint(subject="health"))
    with c:
        assert 0 < lifetime <= 3600_000
        brokers = c.metadata()
    assert len(brokers) >= 3, brokers
    for node, host, port in brokers:
        assert (host, port) == ("127.0.0.1", env.gateway.broker_port_base + node), brokers


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_text(gw) -> str:
    """The gateway's log without terminal colours."""
    return ANSI.sub("", gw.log())


def wait_log(gw, pattern: str, timeout: float = 10) -> list:
    """Waits until the gateway log has lines matching the regex; returns them."""
    deadline = time.time() + timeout
    while True:
        lines = [l for l in log_text(gw).splitlines() if re.search(pattern, l)]
        if lines or time.time() > deadline:
            return lines
        time.sleep(0.1)


def assert_failure_logged(gw, local_port: int, reason: str):
    pat = (rf"WARN.*closing client connection.*peer=127\.0\.0\.1:{local_port}\b"
           rf".*authentication failed: {re.escape(reason)}")
    assert wait_log(gw, pat), f"no warn line for peer :{local_port} with {reason!r}:\n{log_text(gw)[-3000:]}"


# --------------------------------------------------------------------------- clients

def ck_conf(env: SaslEnv, mechanism="PLAIN", token=None, oauth_cb=None, **extra):
    conf = {"bootstrap.servers": env.bootstrap, "socket.timeout.ms": 20000,
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism}
    if mechanism == "PLAIN":
        conf.update({"sasl.username": "x", "sasl.password": token or env.mint()})
    else:
        conf["oauth_cb"] = oauth_cb or (lambda _cfg: (token or env.mint(), time.time() + 3600))
    conf.update(extra)
    return conf


def create_topic(env: SaslEnv, topic: str, partitions=3, tenant="demo"):
    """Creates a topic of `tenant` through the SASL gateway (an authenticated AdminClient)
    and waits until every partition has a leader."""
    a = AdminClient(ck_conf(env, token=env.mint(subject="topic-admin", tenant=tenant)))
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)],
                    operation_timeout=30, request_timeout=30)[topic].result(timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    while True:
        t = a.list_topics(timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        assert time.time() < deadline, f"topic {topic} not ready: {t}"
        time.sleep(0.3)


def ck_produce(conf, topic, payloads):
    errors = []
    p = Producer({**conf, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for i, v in enumerate(payloads):
        p.produce(topic, key=f"k{i % 7}".encode(), value=v,
                  on_delivery=lambda err, msg: err is not None and errors.append(err))
        p.poll(0)
    assert p.flush(TIMEOUT) == 0, "records not delivered"
    assert not errors, errors


def ck_drain(conf, topic, expected: int, timeout=TIMEOUT) -> list:
    """Reads `expected` records of `topic` from the beginning (values)."""
    c = Consumer({**conf, "group.id": unique("sasl-drain"), "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
        out, deadline = [], time.time() + timeout
        while len(out) < expected:
            assert time.time() < deadline, f"read {len(out)} of {expected}"
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            out.append(m.value())
        return out
    finally:
        c.close()


def ck_auth_error(conf, seconds=10) -> KafkaError:
    """Starts a producer that cannot authenticate; returns the first error its error_cb
    reports (librdkafka retries in the background, so no exception is raised)."""
    errs = []
    p = Producer({**conf, "error_cb": errs.append, "reconnect.backoff.ms": 500})
    try:
        deadline = time.time() + seconds
        while not errs and time.time() < deadline:
            p.poll(0.2)
        assert errs, "no error reported"
        return errs[0]
    finally:
        p.flush(0)


class MintingProvider(AbstractTokenProvider):
    """kafka-python's OAUTHBEARER token source: a fresh token per authentication."""

    def __init__(self, env: SaslEnv, subject: str, ttl: int = 3600):
        super().__init__()
        self.env, self.subject, self.ttl, self.calls = env, subject, ttl, 0

    def token(self):
        self.calls += 1
        return self.env.mint(subject=self.subject, ttl=self.ttl)


def kp_conf(env: SaslEnv, mechanism="PLAIN", token=None, provider=None):
    conf = {"bootstrap_servers": env.bootstrap, "request_timeout_ms": 30000,
            "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism}
    if mechanism == "PLAIN":
        conf.update(sasl_plain_username="x", sasl_plain_password=token or env.mint())
    else:
        conf["sasl_oauth_token_provider"] = provider
    return conf


def kp_round_trip(conf, topic, payloads):
    p = KafkaProducer(**conf, acks="all", linger_ms=5)
    futures = [p.send(topic, key=f"k{i % 5}".encode(), value=v) for i, v in enumerate(payloads)]
    p.flush(timeout=TIMEOUT)
    for f in futures:
        f.get(timeout=TIMEOUT)
    p.close(timeout=10)
    c = KafkaConsumer(**conf, enable_auto_commit=False, auto_offset_reset="earliest",
                      consumer_timeout_ms=TIMEOUT * 1000)
    try:
        parts = c.partitions_for_topic(topic)
        c.assign([KpTopicPartition(topic, q) for q in parts])
        c.seek_to_beginning()
        got = []
        for m in c:
            got.append(m.value)
            if len(got) == len(payloads):
                break
        return got
    finally:
        c.close()


def authenticated_lines(env: SaslEnv, subject: str) -> list:
    return [l for l in env.log().splitlines() if "client authenticated" in l and f'subject="{subject}"' in l]


# =========================================================================== 1. PLAIN

def test_kcat_plain_produce_consume(sasl, topic_name, healthy):
    create_topic(sasl, topic_name)
    subject = unique("kcat")
    token = sasl.mint(subject=subject)
    common = [KCAT, "-b", sasl.bootstrap, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN",
              "-X", "sasl.username=kcat-user", "-X", f"sasl.password={token}", "-X", "socket.timeout.ms=20000"]
    payloads = make_payloads(unique("kc"), 300)
    res = subprocess.run(common + ["-P", "-t", topic_name, "-K:", "-X", "acks=all"],
                         input=b"".join(b"k%d:%s\n" % (i % 5, v) for i, v in enumerate(payloads)),
                         capture_output=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-3000:]
    res = subprocess.run(common + ["-C", "-t", topic_name, "-o", "beginning", "-e", "-q", "-f", r"%k:%s\n"],
                         capture_output=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-3000:]
    got = [l.split(b":", 1)[1] for l in res.stdout.splitlines() if l]
    assert len(got) == len(payloads)
    assert sha_sorted(got) == sha_sorted(payloads)
    lines = authenticated_lines(sasl, subject)
    assert lines and all('tenant="demo"' in l for l in lines), lines


def test_kcat_plain_bad_token_fails(sasl, topic_name, healthy):
    """kcat with an expired token: the metadata request fails and librdkafka reports the
    gateway's SASL message."""
    token = sasl.ed_token(subject="kcat-expired", ttl=-60)
    res = subprocess.run([KCAT, "-b", sasl.bootstrap, "-X", "security.protocol=SASL_PLAINTEXT",
                          "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=u", "-X", f"sasl.password={token}",
                          "-L", "-m", "3"], capture_output=True, timeout=TIMEOUT)
    err = res.stderr.decode(errors="replace")
    assert res.returncode != 0, res.stdout
    assert "token has expired" in err, err[-3000:]


def test_confluent_plain_round_trip(sasl, topic_name, healthy):
    create_topic(sasl, topic_name)
    subject = unique("ck-plain")
    conf = ck_conf(sasl, "PLAIN", sasl.mint(subject=subject))
    payloads = make_payloads(unique("ckp"), 500)
    ck_produce(conf, topic_name, payloads)
    got = ck_drain(conf, topic_name, len(payloads))
    assert sha_sorted(got) == sha_sorted(payloads)
    assert authenticated_lines(sasl, subject)


def test_kafka_python_plain_round_trip(sasl, topic_name, healthy):
    create_topic(sasl, topic_name)
    subject = unique("kp-plain")
    payloads = make_payloads(unique("kpp"), 300)
    got = kp_round_trip(kp_conf(sasl, "PLAIN", sasl.mint(subject=subject)), topic_name, payloads)
    assert len(got) == len(payloads)
    assert sha_sorted(got) == sha_sorted(payloads)
    assert authenticated_lines(sasl, subject)


def test_java_plain_round_trip(sasl, java_helpers, topic_name, healthy):
    create_topic(sasl, topic_name)
    subject = unique("java-plain")
    token = sasl.mint(subject=subject)
    props = ["--prop", "security.protocol=SASL_PLAINTEXT", "--prop", "sasl.mechanism=PLAIN",
             "--prop", "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                       f'username="x" password="{token}";']
    n = 400
    _, lines = run_java(java_helpers, "Produce", "--bootstrap", sasl.bootstrap, "--topic", topic_name,
                        "--count", n, "--prefix", "jp", *props, timeout=TIMEOUT * 2)
    acked, errors, done = parse_acks(lines)
    assert not errors, errors[:5]
    assert done == f"done sent={n} acked={n} errors=0", done
    _, lines = run_java(java_helpers, "Dump", "--bootstrap", sasl.bootstrap, "--topic", topic_name,
                        "--timeout-ms", 60000, *props, timeout=TIMEOUT * 2)
    recs, _ = parse_dump(lines)
    assert {(p, o, v) for p, o, _k, v in recs} == {(p, o, v) for v, (p, o) in acked.items()}
    assert sha_sorted(v for *_, v in recs) == sha_sorted(f"jp-{i}" for i in range(n))
    assert authenticated_lines(sasl, subject)


# =========================================================================== 2. OAUTHBEARER

def test_java_oauthbearer_file_token_round_trip(sasl, java_helpers, topic_name, tmp_path, healthy):
    """The Java client's own OAUTHBEARER login (OAuthBearerLoginCallbackHandler, KIP-768)
    reading the token from a file (Kafka 4.x needs the file URL allow-listed), producing and
    reading back through the gateway."""
    create_topic(sasl, topic_name, tenant="acme")
    subject = unique("java-oauth")
    token_file = tmp_path / "token.jwt"
    token_file.write_text(sasl.mint(subject=subject, tenant="acme"))
    url = token_file.as_uri()
    props = ["--prop", "security.protocol=SASL_PLAINTEXT", "--prop", "sasl.mechanism=OAUTHBEARER",
             "--prop", "sasl.login.callback.handler.class="
                       "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
             "--prop", f"sasl.oauthbearer.token.endpoint.url={url}",
             "--prop", "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"]

    def run(cls, *args):
        cmd = java_cmd(java_helpers, cls, "--bootstrap", sasl.bootstrap, "--topic", topic_name, *args, *props)
        cmd.insert(1, f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={url}")
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT * 2)
        assert res.returncode == 0, f"{cls} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
        return res.stdout.splitlines()

    n = 300
    acked, errors, done = parse_acks(run("Produce", "--count", n, "--prefix", "jo"))
    assert not errors and done == f"done sent={n} acked={n} errors=0", (errors[:5], done)
    recs, _ = parse_dump(run("Dump", "--timeout-ms", 60000))
    assert {(p, o, v) for p, o, _k, v in recs} == {(p, o, v) for v, (p, o) in acked.items()}
    assert sha_sorted(v for *_, v in recs) == sha_sorted(f"jo-{i}" for i in range(n))
    lines = authenticated_lines(sasl, subject)
    assert lines and all('tenant="acme"' in l for l in lines), lines


def test_confluent_oauthbearer_round_trip(sasl, topic_name, healthy):
    create_topic(sasl, topic_name, tenant="acme")
    subject = unique("ck-oauth")
    calls = []

    def oauth_cb(_config):
        calls.append(time.time())
        return sasl.mint(subject=subject, tenant="acme", ttl=600), time.time() + 600

    conf = ck_conf(sasl, "OAUTHBEARER", oauth_cb=oauth_cb)
    payloads = make_payloads(unique("cko"), 500)
    ck_produce(conf, topic_name, payloads)
    got = ck_drain(conf, topic_name, len(payloads))
    assert sha_sorted(got) == sha_sorted(payloads)
    assert calls, "oauth_cb was never called"
    lines = authenticated_lines(sasl, subject)
    assert lines and all('tenant="acme"' in l for l in lines), lines


def test_confluent_oauthbearer_rsa_issuer(sasl, topic_name, healthy):
    """The second issuer (RS256 keys from a JWKS written with `cryptography`) works too,
    and so does an HS256 token with its `oct` key (HS256 is listed for that issuer)."""
    create_topic(sasl, topic_name)
    for kind in ("rs256", "hs256"):
        subject = unique(f"ck-{kind}")
        if kind == "rs256":
            token = sasl.rsa_token(subject=subject)
        else:
            token = sasl.rsa_token(header={"alg": "HS256", "kid": HS_KID}, sign=Keys.sign_hs(sasl.keys.hs_secret),
                                   subject=subject)
        conf = ck_conf(sasl, "OAUTHBEARER", oauth_cb=lambda _c, t=token: (t, time.time() + 3000))
        payloads = make_payloads(unique(kind), 100)
        ck_produce(conf, topic_name, payloads)
        assert authenticated_lines(sasl, subject), f"{kind}: no authentication logged"
    got = ck_drain(ck_conf(sasl), topic_name, 200)
    assert len(got) == 200


def test_kafka_python_oauthbearer_round_trip(sasl, topic_name, healthy):
    create_topic(sasl, topic_name)
    subject = unique("kp-oauth")
    provider = MintingProvider(sasl, subject)
    payloads = make_payloads(unique("kpo"), 300)
    got = kp_round_trip(kp_conf(sasl, "OAUTHBEARER", provider=provider), topic_name, payloads)
    assert sha_sorted(got) == sha_sorted(payloads)
    assert provider.calls >= 1
    assert authenticated_lines(sasl, subject)


def test_java_unsecured_oauthbearer_rejected(sasl, java_helpers, topic_name, healthy):
    """The Java client's default OAUTHBEARER login makes an unsecured (alg none) token: the
    producer's send fails with SaslAuthenticationException carrying the gateway's reason."""
    props = ["--prop", "security.protocol=SASL_PLAINTEXT", "--prop", "sasl.mechanism=OAUTHBEARER",
             "--prop", "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule "
                       'required unsecuredLoginStringClaim_sub="alice";',
             "--prop", "max.block.ms=15000", "--prop", "delivery.timeout.ms=15000",
             "--prop", "request.timeout.ms=10000"]
    res, lines = run_java(java_helpers, "Produce", "--bootstrap", sasl.bootstrap, "--topic", topic_name,
                          "--count", 1, "--prefix", "ju", *props, timeout=TIMEOUT * 2, check=False)
    out = res.stdout + res.stderr
    assert "SaslAuthenticationException" in out, out[-4000:]
    want = 'token algorithm "none" is not accepted for this issuer (accepted: signed algorithms only)'
    assert want in out or want.replace(" ", "_") in out, out[-4000:]
    assert not [l for l in lines if l.startswith("ack ")], lines


# =========================================================================== 3. KIP-368

def test_session_lifetime_is_token_expiry_capped(sasl, healthy):
    """session_lifetime_ms = min(token expiry, max_session): a 10 s token gets at most
    10 s; a 2 h token gets the configured 1 h."""
    c, lifetime = sasl_login(sasl.port, "OAUTHBEARER", sasl.mint(ttl=10))
    c.close()
    assert 8000 < lifetime <= 10_000, lifetime
    c, lifetime = sasl_login(sasl.port, "PLAIN", sasl.mint(ttl=7200))
    c.close()
    assert 3_500_000 < lifetime <= 3_600_000, lifetime


def test_token_variants_accepted(sasl, healthy):
    """Tokens and SASL messages the gateway must accept: no kid when the issuer has a single
    key, the RSA issuer (RS256 and HS256 with its oct key), several audiences, policies,
    an authzid equal to the subject, RFC 7628 extensions, a lower-case scheme, and a PLAIN
    authzid/username that say nothing (the password is the token)."""
    k = sasl.keys
    variants = [
        ("OAUTHBEARER", oauth_msg(sasl.ed_token(header={"kid": None}, subject="v-nokid"))),
        ("OAUTHBEARER", oauth_msg(sasl.rsa_token(subject="v-rsa"))),
        ("PLAIN", plain_msg(sasl.rsa_token(header={"alg": "HS256", "kid": HS_KID},
                                           sign=Keys.sign_hs(k.hs_secret), subject="v-hs"))),
        ("OAUTHBEARER", oauth_msg(sasl.ed_token(audience=["other", ED_AUDIENCE], subject="v-aud"))),
        ("OAUTHBEARER", oauth_msg(sasl.mint(subject="v-pol", policies=["read", "write"]))),
        ("OAUTHBEARER", oauth_msg(sasl.mint(subject="v-authz"), authzid="v-authz")),
        ("OAUTHBEARER", f"n,,\x01auth=bearer {sasl.mint(subject='v-ext')}\x01traceId=42\x01x=y z\x01\x01".encode()),
        ("PLAIN", b"someone\0whoever\0" + sasl.mint(subject="v-plain").encode()),
    ]
    for mech, msg in variants:
        with RawClient(sasl.port) as c:
            assert c.handshake(mech)[0] == 0
            err, text, data, lifetime = c.authenticate(msg)
            assert (err, text, data) == (0, None, b""), (mech, msg[:80], err, text, data)
            assert lifetime > 0
            assert len(c.metadata()) >= 3
    for subject in ["v-nokid", "v-rsa", "v-hs", "v-aud", "v-pol", "v-authz", "v-ext", "v-plain"]:
        assert authenticated_lines(sasl, subject), subject


def test_reauthentication_same_principal_and_changes_refused(sasl, healthy):
    """Re-authentication on one connection: the same principal may renew (and the session
    keeps serving requests); another subject, another tenant or another mechanism is refused
    and the connection closed."""
    c, _ = sasl_login(sasl.port, "OAUTHBEARER", sasl.mint(subject="renewer", ttl=60))
    with c:
        assert c.handshake("OAUTHBEARER") == (0, ["OAUTHBEARER", "PLAIN"])
        err, msg, data, lifetime = c.authenticate(oauth_msg(sasl.mint(subject="renewer", ttl=120)))
        assert (err, msg, data) == (0, None, b"")
        assert 100_000 < lifetime <= 120_000, lifetime
        assert len(c.metadata()) >= 3
    cases = [
        ("OAUTHBEARER", dict(subject="mallory"), SASL_AUTHENTICATION_FAILED,
         "Re-authentication failed: re-authentication may not change principal (was demo/renewer, token is for demo/mallory)"),
        ("OAUTHBEARER", dict(subject="renewer", tenant="acme"), SASL_AUTHENTICATION_FAILED,
         "Re-authentication failed: re-authentication may not change principal (was demo/renewer, token is for acme/renewer)"),
        ("OAUTHBEARER", dict(subject="renewer", ttl=-5), SASL_AUTHENTICATION_FAILED,
         "Re-authentication failed: token has expired; get a new token"),
    ]
    for mech, kw, code, text in cases:
        c, _ = sasl_login(sasl.port, "OAUTHBEARER", sasl.mint(subject="renewer"))
        with c:
            assert c.handshake(mech)[0] == 0
            token = sasl.ed_token(**kw) if kw.get("ttl", 0) < 0 else sasl.mint(**kw)
            err, msg, data, _ = c.authenticate(oauth_msg(token))
            # RFC 7628: the challenge first, as a Kafka broker does on re-authentication too.
            assert (err, data) == (0, INVALID_TOKEN_CHALLENGE), (err, msg, data)
            err, msg, data, _ = c.authenticate(b"\x01")
            assert (err, msg) == (code, text)
            assert c.closed_within(5), "connection left open after a refused re-authentication"
    # Mechanism change on re-authentication: ILLEGAL_SASL_STATE in the handshake, then closed.
    c, _ = sasl_login(sasl.port, "OAUTHBEARER", sasl.mint(subject="renewer"))
    with c:
        err, mechs = c.handshake("PLAIN")
        assert err == ILLEGAL_SASL_STATE, (err, mechs)
        assert c.closed_within(5)


def auth_counts(env: SaslEnv, subject: str) -> dict:
    """{peer: number of successful authentications} for one subject, from the gateway log."""
    per_peer = {}
    for l in authenticated_lines(env, subject):
        peer = re.search(r"peer=(\S+)", l).group(1)
        per_peer[peer] = per_peer.get(peer, 0) + 1
    return per_peer


def assert_reauthenticated(env: SaslEnv, subject: str):
    """>= 3 authentications for the subject, three or more of them on one connection (so
    re-authentication, not reconnection), and no session of its lapsed."""
    per_peer = auth_counts(env, subject)
    assert sum(per_peer.values()) >= 3, per_peer
    assert max(per_peer.values()) >= 3, f"{subject}: no connection re-authenticated twice: {per_peer}"
    lapsed = [l for l in env.log().splitlines() if "session expired" in l and any(
        f"peer={peer} " in l for peer in per_peer)]
    assert not lapsed, lapsed


def test_reauthenticates_across_token_lifetimes(sasl, topic_name, healthy):
    """Producers whose tokens live ~20 s keep producing for ~70 s (three token lifetimes):
    confluent-kafka (oauth_cb) and, alongside, kafka-python (token provider) re-authenticate
    their connections (KIP-368) before the sessions lapse; nothing fails, every record comes
    back."""
    create_topic(sasl, topic_name)
    ck_subject, kp_subject = unique("reauth-ck"), unique("reauth-kp")
    minted = []

    def oauth_cb(_config):
        minted.append(time.time())
        return sasl.mint(subject=ck_subject, ttl=20), time.time() + 20

    errors, delivered = [], []
    p = Producer({**ck_conf(sasl, "OAUTHBEARER", oauth_cb=oauth_cb), "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "error_cb": errors.append})

    def on_delivery(err, msg):
        (errors if err is not None else delivered).append(err or msg.value())

    provider = MintingProvider(sasl, kp_subject, ttl=20)
    kp_sent, kp_errors = [], []
    stop = threading.Event()

    def kafka_python_producer():
        try:
            kp = KafkaProducer(**kp_conf(sasl, "OAUTHBEARER", provider=provider), acks="all", linger_ms=5)
            futures = []
            j = 0
            while not stop.is_set():
                v = f"reauth-kp-{j:06d}".encode()
                futures.append(kp.send(topic_name, value=v))
                kp_sent.append(v)
                j += 1
                time.sleep(0.1)
            kp.flush(timeout=TIMEOUT)
            for f in futures:
                f.get(timeout=TIMEOUT)
            kp.close(timeout=10)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            kp_errors.append(repr(e))

    kp_thread = threading.Thread(target=kafka_python_producer, daemon=True)
    kp_thread.start()
    start = time.time()
    sent = []
    i = 0
    while time.time() - start < 70:
        v = f"reauth-ck-{i:06d}".encode()
        p.produce(topic_name, key=b"k%d" % (i % 3), value=v, on_delivery=on_delivery)
        sent.append(v)
        i += 1
        p.poll(0.05)
    stop.set()
    assert p.flush(TIMEOUT) == 0
    kp_thread.join(TIMEOUT + 20)
    assert not kp_thread.is_alive(), "kafka-python producer did not finish"
    assert not errors, errors[:10]
    assert not kp_errors, kp_errors
    assert sorted(delivered) == sorted(sent)
    got = ck_drain(ck_conf(sasl), topic_name, len(sent) + len(kp_sent))
    assert sha_sorted(got) == sha_sorted(sent + kp_sent)
    assert len(minted) >= 3, f"oauth_cb called {len(minted)} times"
    assert provider.calls >= 3, f"token provider called {provider.calls} times"
    assert_reauthenticated(sasl, ck_subject)
    assert_reauthenticated(sasl, kp_subject)


def request_refused(c: RawClient) -> bool:
    """Sends a Metadata request; True if the gateway closes the connection instead of
    answering (whether it closed before the request or because of it)."""
    try:
        c.send(3, 1, struct.pack(">i", 0))
    except OSError:
        return True
    return c.closed_within(5)


def test_session_lapses_without_reauthentication(pool, sasl_keys, tmp_path_factory):
    """With max_session_ms = 5000 the gateway announces at most 5 s. A lapsed session serves
    nothing more: its next request closes the connection unanswered. As with a Kafka broker
    (KIP-368) a lapsed session may still re-authenticate, and one renewed in time outlives
    the first deadline. Three connections share one timeline (t = 0 at login):
    A: never renewed, served at 4 s, refused at 5.3 s;
    B: re-authenticates at 5.3 s (lapsed), then served;
    C: re-authenticates at 3 s, served at 6 s, refused at 8.4 s."""
    gw = start_gateway(tmp_path_factory.mktemp("sasl-short"), sasl_auth_config(sasl_keys, max_session_ms=5000),
                       auth="sasl")
    try:
        env = SaslEnv(gw, sasl_keys)
        token = env.mint(subject="short", ttl=3600)
        t0 = time.time()

        def at(t):
            time.sleep(max(0.0, t0 + t - time.time()))

        def reauth(c):
            assert c.handshake("PLAIN")[0] == 0
            err, msg, data, lifetime = c.authenticate(plain_msg(env.mint(subject="short")))
            assert (err, msg, data) == (0, None, b"") and 4000 < lifetime <= 5000, (err, msg, lifetime)

        a, la = sasl_login(gw.bootstrap_port, "OAUTHBEARER", token)
        b, lb = sasl_login(gw.bootstrap_port, "PLAIN", token)
        c, lc = sasl_login(gw.bootstrap_port, "PLAIN", token)
        assert time.time() - t0 < 0.3, "logins too slow for the timeline"
        with a, b, c:
            assert all(4000 < x <= 5000 for x in (la, lb, lc)), (la, lb, lc)
            at(3)
            reauth(c)
            at(4)
            assert len(a.metadata()) >= 3, "session closed before max_session_ms"
            at(5.3)
            assert request_refused(a), "lapsed session still served a request"
            reauth(b)
            assert len(b.metadata()) >= 3, "re-authenticated session not served"
            at(6)
            assert len(c.metadata()) >= 3, "session renewed at 3 s was closed at the first deadline"
            at(8.4)
            assert request_refused(c), "renewed session outlived its second lifetime"
            assert len(b.metadata()) >= 3
        for client in (a, c):
            pattern = rf"peer=127\.0\.0\.1:{client.local_port}\b.*session expired without re-authentication"
            assert wait_log(gw, pattern), log_text(gw)[-3000:]
        assert gw.alive()
    finally:
        stop_gateway(gw)
    assert "panicked" not in gw.log()


# =========================================================================== 4. rejections

def test_failed_attempts_delayed_then_refused(pool, sasl_keys, tmp_path_factory):
    """Brute-force guard (failures_before_delay = 2, failures_before_refusal = 5, window 3 s):
    the first failures are answered at once, later ones more slowly, then the source is
    refused even with a valid token (58, "too many failed ..."), other sources are not,
    and after a quiet window the source gets in again. A principal whose *authentically
    signed* tokens failed too often is refused from any source; forged tokens that merely
    claim a principal cannot lock it out. (Sources are loopback aliases 127.0.0.x.)"""
    gw = start_gateway(tmp_path_factory.mktemp("sasl-guard"),
                       sasl_auth_config(sasl_keys, guard=(2, 5, 3000)), auth="sasl")
    refused = "too many failed authentication attempts from this address or for this principal; retry in a minute"
    try:
        env = SaslEnv(gw, sasl_keys)

        def attempt(source, token, mech="PLAIN"):
            """-> (error code, message, seconds until the answer)."""
            with RawClient(gw.bootstrap_port, 20, source) as c:
                assert c.handshake(mech)[0] == 0
                t0 = time.time()
                err, msg, data, _ = c.authenticate(oauth_msg(token) if mech == "OAUTHBEARER" else plain_msg(token))
                if (err, data) == (0, INVALID_TOKEN_CHALLENGE):
                    err, msg, data, _ = c.authenticate(b"\x01")
                took = time.time() - t0
                if err == 0:
                    assert len(c.metadata()) >= 3
                else:
                    assert c.closed_within(10)
                return err, msg, took

        bad = env.ed_token(subject="guess", sign=sasl_keys.sign_ed(sasl_keys.ed_other))
        timings = []
        for _ in range(5):
            err, msg, took = attempt("127.0.0.2", bad)
            assert (err, msg) == (SASL_AUTHENTICATION_FAILED, "Authentication failed: token signature is invalid")
            timings.append(took)
        assert max(timings[:2]) < 0.15, timings
        assert timings[2] >= 0.15 and timings[3] > timings[2] and timings[4] > timings[3], timings
        # Over the limit: refused without looking at the (valid) token; not for other sources.
        assert attempt("127.0.0.2", env.mint(subject="innocent")) [:2] == (SASL_AUTHENTICATION_FAILED, refused)
        assert attempt("127.0.0.2", env.mint(subject="innocent"), "OAUTHBEARER")[:2] == (
            SASL_AUTHENTICATION_FAILED, refused)
        assert attempt("127.0.0.3", env.mint(subject="innocent"))[0] == 0
        # Forged tokens only *claim* demo/guess: they must not lock that principal out.
        assert attempt("127.0.0.4", env.mint(subject="guess"))[0] == 0
        assert wait_log(gw, r"WARN.*closing client connection.*peer=127\.0\.0\.2:\d+.*too many failed"), \
            log_text(gw)[-3000:]
        # Authentically signed failures (expired tokens) do count against their principal,
        # from whatever source: demo/stale is then refused everywhere, even with a good token.
        for i in range(5):
            err, msg, _ = attempt(f"127.0.0.{10 + i}", env.ed_token(subject="stale", ttl=-5))
            assert (err, msg) == (SASL_AUTHENTICATION_FAILED, "Authentication failed: token has expired; get a new token")
        assert attempt("127.0.0.20", env.mint(subject="stale"))[:2] == (SASL_AUTHENTICATION_FAILED, refused)
        assert attempt("127.0.0.21", env.mint(subject="fresh"))[0] == 0
        # A quiet window later the source and the principal may try again.
        time.sleep(3.5)
        assert attempt("127.0.0.2", env.mint(subject="innocent"))[0] == 0
        assert attempt("127.0.0.22", env.mint(subject="stale"))[0] == 0
        assert gw.alive()
    finally:
        stop_gateway(gw)
    assert "panicked" not in gw.log()


def bad_tokens(env: SaslEnv):
    """(case id, token, the reason the gateway must give)."""
    k = env.keys
    big = env.ed_token(subject="big", pad="x" * MAX_TOKEN_BYTES)
    good = env.ed_token(subject="tamper")
    h, p, s = good.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    tampered_claims["sluice:tenant"] = "acme"
    tampered = ".".join([h, b64u(json.dumps(tampered_claims).encode()), s])
    return [
        ("alg-none", encode_jwt({"alg": "none", "typ": "JWT"}, claims(), None),
         'token algorithm "none" is not accepted for this issuer (accepted: signed algorithms only)'),
        ("alg-confusion-hs256-rsa-pem",
         env.rsa_token(header={"alg": "HS256", "kid": RSA_KID}, sign=Keys.sign_hs(k.rsa_public_pem)),
         f'token algorithm HS256 does not match the type of signing key "{RSA_KID}"'),
        ("hs256-not-listed",
         env.ed_token(header={"alg": "HS256"}, sign=Keys.sign_hs(b"guess")),
         'token algorithm "HS256" is not accepted for this issuer (accepted: EdDSA)'),
        ("unknown-kid", env.ed_token(header={"kid": "no-such-key"}),
         'signing key "no-such-key" is not published by the token\'s issuer; get a token signed with a current key'),
        ("other-ed-key", env.ed_token(sign=k.sign_ed(k.ed_other)), "token signature is invalid"),
        ("other-rsa-key", env.rsa_token(sign=k.sign_rsa(k.rsa_other)), "token signature is invalid"),
        ("tampered-tenant", tampered, "token signature is invalid"),
        # leeway_secs = 0: a token 5 s past exp, or 10 s before nbf, is refused (the default
        # leeway of 30 s would let both in).
        ("expired", env.ed_token(ttl=-5), "token has expired; get a new token"),
        ("nbf-future", env.ed_token(nbf=int(time.time()) + 10),
         "token is not valid yet (nbf is in the future); check the clocks of the token issuer and client"),
        ("wrong-aud", env.ed_token(audience="someone-else"), "token audience (aud) must include one of: sluice"),
        ("wrong-iss", env.ed_token(issuer="https://evil.test"),
         'token issuer "https://evil.test" is not trusted by this gateway'),
        ("missing-exp", env.ed_token(exp=None), "token has no expiry (exp) claim; tokens must expire"),
        ("missing-tenant", env.ed_token(tenant=None), "token has no sluice:tenant claim"),
        ("unknown-tenant", env.ed_token(tenant="globex"), "tenant globex does not exist"),
        ("invalid-tenant-id", env.ed_token(tenant="Bad_Tenant"),
         'sluice:tenant "Bad_Tenant" is not a valid tenant id '
         "(lowercase letters, digits and '-', 2 to 31 characters, not starting with '-')"),
        ("oversize", big, f"token is {len(big)} bytes, over the limit of {MAX_TOKEN_BYTES} bytes"),
        ("no-kid-two-keys", env.rsa_token(header={"kid": None}),
         "token has no kid header and its issuer publishes more than one key"),
        ("not-a-jwt", "abc.def", "token is not a well-formed JWT: expected three base64url parts separated by '.'"),
    ]


BAD_TOKEN_IDS = ["alg-none", "alg-confusion-hs256-rsa-pem", "hs256-not-listed", "unknown-kid", "other-ed-key",
                 "other-rsa-key", "tampered-tenant", "expired", "nbf-future", "wrong-aud", "wrong-iss",
                 "missing-exp", "missing-tenant", "unknown-tenant", "invalid-tenant-id", "oversize", "no-kid-two-keys",
                 "not-a-jwt"]


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "PLAIN"])
@pytest.mark.parametrize("case", BAD_TOKEN_IDS)
def test_bad_token_rejected(sasl, case, mechanism, healthy):
    """OAUTHBEARER: challenge {"status":"invalid_token"}, the client's 0x01, then 58 with the
    reason; PLAIN: 58 with the reason at once. Then the connection is closed, and the warn
    line names the reason."""
    [(_, token, reason)] = [t for t in bad_tokens(sasl) if t[0] == case]
    with RawClient(sasl.port) as c:
        assert c.handshake(mechanism) == (0, ["OAUTHBEARER", "PLAIN"])
        if mechanism == "OAUTHBEARER":
            err, msg, data, lifetime = c.authenticate(oauth_msg(token))
            assert (err, msg, data, lifetime) == (0, None, INVALID_TOKEN_CHALLENGE, 0)
            err, msg, data, lifetime = c.authenticate(b"\x01")
        else:
            err, msg, data, lifetime = c.authenticate(plain_msg(token))
        assert err == SASL_AUTHENTICATION_FAILED, (err, msg)
        assert msg == f"Authentication failed: {reason}", msg
        assert (data, lifetime) == (b"", 0)
        assert c.closed_within(5), "connection left open after failed authentication"
        port = c.local_port
    assert_failure_logged(sasl.gateway, port, reason)


def test_authzid_must_match_subject(sasl, healthy):
    with RawClient(sasl.port) as c:
        assert c.handshake("OAUTHBEARER")[0] == 0
        err, _, data, _ = c.authenticate(oauth_msg(sasl.mint(subject="alice"), authzid="mallory"))
        assert (err, data) == (0, INVALID_TOKEN_CHALLENGE)
        err, msg, _, _ = c.authenticate(b"\x01")
        assert (err, msg) == (SASL_AUTHENTICATION_FAILED,
                              'Authentication failed: authorization id "mallory" does not match the token\'s subject')
        assert c.closed_within(5)


@pytest.mark.parametrize("mechanism,payload,reason", [
    ("OAUTHBEARER", b"garbage", 'OAUTHBEARER message does not start with a GS2 header ("n,")'),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer a.b.c\x01", "OAUTHBEARER message is not terminated by \\x01\\x01"),
    ("OAUTHBEARER", b"n,,\x01auth=Basic dXNlcjpwdw==\x01\x01", "OAUTHBEARER message has no auth=Bearer <token>"),
    ("OAUTHBEARER", b"n,,\x01auth=Bearer \xff\xfe\x01\x01", "SASL message is not UTF-8"),
    ("PLAIN", b"no-nul-bytes-at-all", "PLAIN message is not authzid NUL username NUL password"),
    ("PLAIN", b"\0user\0", "PLAIN message is not authzid NUL username NUL password"),
], ids=["oauth-garbage", "oauth-unterminated", "oauth-basic-scheme", "oauth-not-utf8", "plain-no-nul",
        "plain-empty-password"])
def test_garbage_sasl_bytes(sasl, mechanism, payload, reason, healthy):
    with RawClient(sasl.port) as c:
        assert c.handshake(mechanism)[0] == 0
        err, msg, data, _ = c.authenticate(payload)
        if mechanism == "OAUTHBEARER":
            assert (err, msg, data) == (0, None, INVALID_TOKEN_CHALLENGE)
            err, msg, data, _ = c.authenticate(b"\x01")
        assert (err, msg) == (SASL_AUTHENTICATION_FAILED, f"Authentication failed: {reason}")
        assert c.closed_within(5)
        port = c.local_port
    assert_failure_logged(sasl.gateway, port, reason)


def test_unsupported_mechanism(sasl, healthy):
    """SCRAM-SHA-256 is not offered: SaslHandshake error 33 listing what is, then closed."""
    with RawClient(sasl.port) as c:
        err, mechs = c.handshake("SCRAM-SHA-256")
        assert (err, mechs) == (UNSUPPORTED_SASL_MECHANISM, ["OAUTHBEARER", "PLAIN"])
        assert c.closed_within(5)
    # What a real client reports: librdkafka names the offered mechanisms.
    errs = ck_auth_error({"bootstrap.servers": sasl.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                          "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "u", "sasl.password": "p"})
    assert errs.code() == KafkaError._AUTHENTICATION, errs
    assert "Unsupported SASL mechanism: broker's supported mechanisms: OAUTHBEARER,PLAIN" in errs.str(), errs.str()


def test_only_sasl_before_authentication(sasl, healthy):
    """ApiVersions is answered before authentication; a Metadata request closes the
    connection without an answer, before and after the handshake."""
    with RawClient(sasl.port) as c:
        err, apis = c.api_versions()
        assert err == 0 and 17 in apis and 36 in apis, (err, sorted(apis))
        c.send(3, 1, struct.pack(">i", 0))
        assert c.closed_within(5), "Metadata before authentication was not refused"
        port = c.local_port
    assert wait_log(sasl.gateway, rf"WARN.*closing client connection.*peer=127\.0\.0\.1:{port}\b.*Metadata"), \
        sasl.log()[-3000:]
    with RawClient(sasl.port) as c:
        assert c.handshake("PLAIN")[0] == 0
        c.send(3, 1, struct.pack(">i", 0))
        assert c.closed_within(5), "Metadata between handshake and authentication was not refused"


def test_authenticate_without_handshake(sasl, healthy):
    with RawClient(sasl.port) as c:
        err, msg, data, _ = c.authenticate(plain_msg(sasl.mint()))
        assert (err, msg, data) == (ILLEGAL_SASL_STATE, "SaslAuthenticate without a SaslHandshake", b"")
        assert c.closed_within(5)


def test_handshake_v0_raw_tokens(sasl, healthy):
    """After a v0 handshake the token travels raw (no Kafka header), as old clients do:
    success is an empty raw answer; a bad token just closes the connection."""
    with RawClient(sasl.port) as c:
        assert c.handshake("PLAIN", version=0) == (0, ["OAUTHBEARER", "PLAIN"])
        c.send_frame(plain_msg(sasl.mint(subject="raw-v0")))
        assert c.recv_frame() == b""
        assert len(c.metadata()) >= 3
    with RawClient(sasl.port) as c:
        assert c.handshake("PLAIN", version=0)[0] == 0
        c.send_frame(plain_msg(sasl.ed_token(ttl=-10)))
        assert c.closed_within(5)
        port = c.local_port
    assert_failure_logged(sasl.gateway, port, "token has expired")


def test_confluent_sees_reason(sasl, healthy):
    """librdkafka surfaces the gateway's reason for PLAIN (58 message) and for OAUTHBEARER
    (after the invalid_token challenge)."""
    e = ck_auth_error(ck_conf(sasl, "PLAIN", sasl.ed_token(ttl=-30)))
    assert e.code() == KafkaError._AUTHENTICATION, e
    assert "token has expired; get a new token" in e.str(), e.str()
    bad = sasl.ed_token(audience="nope")
    e = ck_auth_error(ck_conf(sasl, "OAUTHBEARER", oauth_cb=lambda _c: (bad, time.time() + 600)))
    assert e.code() == KafkaError._AUTHENTICATION, e
    assert "token audience (aud) must include one of: sluice" in e.str(), e.str()


def test_many_failures_leave_gateway_serving(sasl, healthy):
    """A burst of concurrent bad attempts (mixed reasons) while a good client works."""
    tokens = [t for _, t, _ in bad_tokens(sasl)]
    failures = []

    def attack(i):
        try:
            with RawClient(sasl.port) as c:
                c.handshake("PLAIN")
                err, _, _, _ = c.authenticate(plain_msg(tokens[i % len(tokens)]))
                if err != SASL_AUTHENTICATION_FAILED:
                    failures.append((i, err))
        except Exception as e:  # noqa: BLE001
            failures.append((i, repr(e)))

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    check_good_client(sasl)
    for t in threads:
        t.join(30)
    assert not failures, failures[:5]
