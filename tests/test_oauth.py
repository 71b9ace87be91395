"""sluice as an OAuth2 issuer (issue 3 point 3, the OAuth parts of point 6).

The gateway's admin listener serves the client-credentials grant (`POST /oauth2/token`),
its JWKS and an OpenID discovery document; clients are made with `sluice client create`
against the pool and kept, argon2-hashed, in their tenant's document in the tenant store
(`__sluice_tenants`), under the id `<tenant>.<name>`. Covered here:
- the HTTP API itself (claims, RFC 6749 errors, form and Basic credentials, body limit,
  JWKS/discovery consistency, what the tenant store holds);
- clients in the store: a client of tenant T gets tokens for T; a client deleted with
  `sluice client delete` (or its whole tenant) is refused within 5 s; names and policies
  are checked when the client is created;
- the Java client's OAuthBearerLoginCallbackHandler fetching tokens from it (Kafka 4's
  `org.apache.kafka.sasl.oauthbearer.allowed.urls` system property) and librdkafka's
  `sasl.oauthbearer.method=oidc`, producing and consuming through the SASL gateway;
- a wrong secret failing with a clear authentication error while the gateway stays up;
- KIP-368 re-authentication over OIDC through three lifetimes of 20 s tokens.

Each gateway here is its own process (own ports and key), started by
`start_oauth_gateway` below; the session gateway of conftest is not used. The tenant is
unique to the test session, so other runs against the shared pool that rewrite their
own tenants (`sluice tenant put` replaces a document, clients included) never touch it.
"""
import base64
import http.client
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from clientlib import make_payloads, sha_sorted, unique
from tenants import allow_all_doc, delete_tenant, get_tenant, put_tenant
from conftest import SLUICE_BIN, POOL_BOOTSTRAP, Gateway, _free_port_block, _wait_port
from jvm import assert_gateway_addresses, java_cmd, java_helpers, parse_acks, parse_dump  # noqa: F401 (fixture)

TIMEOUT = 60
TENANT = unique("oauth")
AUDIENCE = "sluice"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOGIN_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# --------------------------------------------------------------------------- gateway

class OAuthGateway(Gateway):
    """A SASL gateway whose admin listener is an OAuth2 issuer."""

    def __init__(self, *, admin_port, config_path, key_file, ttl, **kw):
        super().__init__(**kw)
        self.admin_port = admin_port
        self.url = f"http://127.0.0.1:{admin_port}"
        self.token_endpoint = f"{self.url}/oauth2/token"
        self.config_path = config_path
        self.key_file = key_file
        self.ttl = ttl

    def log(self) -> str:
        return ANSI.sub("", super().log())

    def log_lines(self, *needles) -> list:
        return [l for l in self.log().splitlines() if all(n in l for n in needles)]


_started: list = []


def start_oauth_gateway(tmp_dir: Path, ttl_secs: int, extra_config: str = "") -> OAuthGateway:
    if not SLUICE_BIN.exists():
        raise RuntimeError(f"{SLUICE_BIN} missing: run `cargo build -p sluice-gateway` first")
    # Tenants live in the tenant store; the gateway lets in only those that exist. Written
    # only if absent: a second gateway must not replace the document, and with it the
    # clients the first one's tests created.
    if get_tenant(TENANT) is None:
        put_tenant(allow_all_doc(TENANT))
    base = _free_port_block(10)  # bootstrap on base, broker N on base + N, admin on base + 9
    admin_port = base + 9
    cfg = tmp_dir / f"sluice-oauth-{base}.toml"
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

[auth]
max_session_ms = 3600000

[admin]
bind = "127.0.0.1:{admin_port}"

[issuer]
url = "http://127.0.0.1:{admin_port}"
audience = "{AUDIENCE}"
key_file = "{key_file}"
generate_key = true
token_ttl_secs = {ttl_secs}
{extra_config}
""")
    log_path = tmp_dir / f"sluice-oauth-{base}.log"
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
    proc = subprocess.Popen(
        [str(SLUICE_BIN), "serve", "--config", str(cfg)],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env,
    )
    ports = [base, base + 1, base + 2, base + 3, admin_port]
    if not all(_wait_port(p, 30) for p in ports):
        proc.kill()
        proc.wait(10)
        raise RuntimeError(f"OAuth gateway did not open {ports}:\n{log_path.read_text()[-3000:]}")
    gw = OAuthGateway(
        bootstrap=f"127.0.0.1:{base}", proc=proc, log_path=log_path, bootstrap_port=base,
        broker_port_base=base, admin_port=admin_port, config_path=cfg,
        key_file=key_file, ttl=ttl_secs,
    )
    _started.append(gw)
    return gw


def restart_oauth_gateway(gw: OAuthGateway, kill: bool = False):
    """Stops `gw` (SIGTERM, or SIGKILL with `kill`) and starts the same command with the
    same config and ports, appending to the same log."""
    (gw.proc.kill if kill else gw.proc.terminate)()
    gw.proc.wait(30)
    log = open(gw.log_path, "a")
    log.write(f"\n--- {'killed with SIGKILL' if kill else 'stopped'}, restarting ---\n")
    log.flush()
    gw.proc = subprocess.Popen([str(SLUICE_BIN), "serve", "--config", str(gw.config_path)],
                               stdout=log, stderr=subprocess.STDOUT)
    assert all(_wait_port(p, 30) for p in (gw.bootstrap_port, gw.admin_port)), gw.log()[-3000:]


def stop_gateway(gw: OAuthGateway):
    _started.remove(gw)
    gw.proc.terminate()
    try:
        gw.proc.wait(15)
    except subprocess.TimeoutExpired:
        gw.proc.kill()
        gw.proc.wait(10)
    assert "panicked" not in gw.log(), gw.log()[-5000:]


class OAuthClient:
    def __init__(self, client_id, secret, token_endpoint, subject):
        self.id = client_id
        self.secret = secret
        self.token_endpoint = token_endpoint
        self.subject = subject


def client_cli(*args) -> subprocess.CompletedProcess:
    """Runs `sluice client <args> --bootstrap <pool>` and returns the finished process."""
    cmd = [str(SLUICE_BIN), "client", *map(str, args), "--bootstrap", POOL_BOOTSTRAP]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def create_client(gw: OAuthGateway, subject=None, tenant=None, name=None, policies=None) -> OAuthClient:
    """`sluice client create` in the tenant store; `gw` only supplies the token endpoint."""
    tenant = tenant or TENANT
    name = name or unique("app")
    args = ["create", "--tenant", tenant, "--name", name]
    if subject:
        args += ["--subject", subject]
    if policies is not None:
        args += ["--policies", ",".join(policies)]
    res = client_cli(*args)
    assert res.returncode == 0, f"client create failed:\n{res.stdout}\n{res.stderr}"
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out) == {"client_id", "client_secret"}, res.stdout
    assert out["client_id"] == f"{tenant}.{name}", out
    assert len(out["client_secret"]) >= 32, out
    return OAuthClient(out["client_id"], out["client_secret"], gw.token_endpoint, subject or out["client_id"])


def wait_refused(gw, client, within=5.0):
    """Requests tokens until the endpoint answers 401 invalid_client; returns the seconds it took."""
    start = time.time()
    while True:
        status, headers, body = token_request(gw, client.id, client.secret)
        if status == 401:
            assert_oauth_error(status, headers, body, 401, "invalid_client")
            return time.time() - start
        assert status == 200, (status, body)
        assert time.time() - start < within, f"{client.id} still gets tokens {within}s after its deletion"
        time.sleep(0.1)


@pytest.fixture(scope="session")
def oauth_gw(pool, tmp_path_factory):
    gw = start_oauth_gateway(tmp_path_factory.mktemp("oauth-gw"), ttl_secs=3600)
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="session")
def alice(oauth_gw):
    """A client created while the gateway runs (the gateway tails the tenant store)."""
    return create_client(oauth_gw, subject="alice")


@pytest.fixture(autouse=True)
def _gateways_stay_up():
    yield
    for gw in list(_started):
        assert gw.alive(), "OAuth gateway exited during the test:\n" + gw.log()[-5000:]


# --------------------------------------------------------------------------- HTTP

def request(gw, method, path, body=None, headers=None, timeout=20):
    """One request on a fresh connection -> (status, lower-cased headers, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def basic(client_id, secret):
    raw = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


def token_request(gw, client_id, secret, grant="client_credentials", extra=""):
    body = f"grant_type={grant}{extra}"
    return request(gw, "POST", "/oauth2/token", body, {**FORM, **basic(client_id, secret)})


def b64u_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def decode_jwt(token: str):
    """(header, claims, signing input, signature), without verifying anything."""
    parts = token.split(".")
    assert len(parts) == 3, f"not a compact JWS: {token[:80]}"
    return (json.loads(b64u_decode(parts[0])), json.loads(b64u_decode(parts[1])),
            f"{parts[0]}.{parts[1]}".encode(), b64u_decode(parts[2]))


def assert_oauth_error(status, headers, body, want_status, want_error):
    assert status == want_status, (status, body)
    assert headers.get("content-type", "").startswith("application/json"), headers
    err = json.loads(body)
    assert err.get("error") == want_error, err
    assert "access_token" not in err, err
    if want_status == 401:
        assert headers.get("www-authenticate", "").lower().startswith("basic"), headers
    return err


def test_token_for_valid_client(oauth_gw, alice):
    before = time.time()
    status, headers, body = token_request(oauth_gw, alice.id, alice.secret)
    assert status == 200, body
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert "no-store" in headers.get("cache-control", ""), headers
    resp = json.loads(body)
    assert resp["token_type"] == "Bearer", resp
    assert resp["expires_in"] == oauth_gw.ttl, resp
    assert "scope" in resp, resp
    header, claims, _, _ = decode_jwt(resp["access_token"])
    assert header.get("alg") == "EdDSA" and header.get("kid"), header
    assert claims["iss"] == oauth_gw.url, claims
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert AUDIENCE in aud, claims
    assert claims["sub"] == "alice", claims
    assert claims["sluice:tenant"] == TENANT, claims
    assert abs(claims["exp"] - (before + oauth_gw.ttl)) < 30, (claims, before)
    assert before - 30 < claims["iat"] <= time.time() + 1, claims
    assert claims.get("nbf", claims["iat"]) <= time.time() + 1, claims
    # Every issued token is logged with its client, never with the secret.
    assert oauth_gw.log_lines("token issued", alice.id), oauth_gw.log()[-3000:]
    assert alice.secret not in oauth_gw.log()


def test_subject_defaults_to_client_id(oauth_gw):
    c = create_client(oauth_gw)
    status, _, body = token_request(oauth_gw, c.id, c.secret)
    assert status == 200, body
    _, claims, _, _ = decode_jwt(json.loads(body)["access_token"])
    assert claims["sub"] == c.id and claims["sluice:tenant"] == TENANT, claims


def test_requested_scope_and_no_empty_scope_claim(oauth_gw, alice):
    """A requested scope is echoed in the response and the token; without one the token
    must not carry an empty `scope` claim: Kafka's Java client rejects such a token
    ("scope value must be non-empty", ClientJwtValidator) before it ever connects."""
    status, _, body = token_request(oauth_gw, alice.id, alice.secret, extra="&scope=kafka")
    assert status == 200, body
    resp = json.loads(body)
    _, claims, _, _ = decode_jwt(resp["access_token"])
    assert resp["scope"] == "kafka" and claims.get("scope") == "kafka", (resp, claims)

    status, _, body = token_request(oauth_gw, alice.id, alice.secret)
    assert status == 200, body
    _, claims, _, _ = decode_jwt(json.loads(body)["access_token"])
    assert claims.get("scope", None) != "", f"token without a requested scope carries scope=\"\": {claims}"


def auth_failures_metric(gw) -> float:
    """sluice_auth_failures_total from the admin listener's /metrics (0 before any failure)."""
    status, _, body = request(gw, "GET", "/metrics")
    assert status == 200, (status, body)
    text = body.decode() if isinstance(body, bytes) else body
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("sluice_auth_failures_total")]
    return sum(values)


def test_wrong_secret_and_unknown_client_are_401(oauth_gw, alice):
    failures_before = auth_failures_metric(oauth_gw)
    wrong = assert_oauth_error(*token_request(oauth_gw, alice.id, alice.secret + "x"), 401, "invalid_client")
    unknown = assert_oauth_error(*token_request(oauth_gw, "no-such-client", alice.secret), 401, "invalid_client")
    unknown_in_tenant = assert_oauth_error(*token_request(oauth_gw, f"{TENANT}.no-such", alice.secret),
                                           401, "invalid_client")
    # The failures look the same: no hint whether the client id exists.
    assert wrong == unknown == unknown_in_tenant, (wrong, unknown, unknown_in_tenant)
    # No credentials at all.
    status, headers, body = request(oauth_gw, "POST", "/oauth2/token", "grant_type=client_credentials", FORM)
    assert_oauth_error(status, headers, body, 401, "invalid_client")
    # A Basic header that is not base64 of id:secret.
    status, headers, body = request(oauth_gw, "POST", "/oauth2/token", "grant_type=client_credentials",
                                 {**FORM, "Authorization": "Basic !!!not-base64"})
    assert_oauth_error(status, headers, body, 401, "invalid_client")
    log = oauth_gw.log()
    assert "token request with bad client credentials" in log, log[-3000:]
    assert alice.secret not in log
    # Failed attempts are counted for the brute-force dashboards.
    assert auth_failures_metric(oauth_gw) >= failures_before + 2


def test_grant_errors_are_400(oauth_gw, alice):
    assert_oauth_error(*token_request(oauth_gw, alice.id, alice.secret, grant="password"), 400, "unsupported_grant_type")
    assert_oauth_error(*token_request(oauth_gw, alice.id, alice.secret, grant="authorization_code"),
                       400, "unsupported_grant_type")
    status, headers, body = request(oauth_gw, "POST", "/oauth2/token", "scope=x", {**FORM, **basic(alice.id, alice.secret)})
    assert_oauth_error(status, headers, body, 400, "invalid_request")
    # Only POST mints tokens.
    status, _, body = request(oauth_gw, "GET", "/oauth2/token")
    assert status == 405, (status, body)
    status, _, body = request(oauth_gw, "GET", "/nothing-here")
    assert status == 404, (status, body)


def test_form_post_credentials(oauth_gw, alice):
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": alice.id,
                                   "client_secret": alice.secret})
    status, _, body = request(oauth_gw, "POST", "/oauth2/token", form, FORM)
    assert status == 200, body
    _, claims, _, _ = decode_jwt(json.loads(body)["access_token"])
    assert claims["sub"] == "alice" and claims["sluice:tenant"] == TENANT, claims
    bad = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": alice.id,
                                  "client_secret": "nope"})
    assert_oauth_error(*request(oauth_gw, "POST", "/oauth2/token", bad, FORM), 401, "invalid_client")


def test_body_limit_is_64k(oauth_gw, alice):
    creds = {**FORM, **basic(alice.id, alice.secret)}
    prefix = "grant_type=client_credentials&pad="
    at_limit = prefix + "a" * (64 * 1024 - len(prefix))
    status, _, body = request(oauth_gw, "POST", "/oauth2/token", at_limit, creds)
    assert status == 200, (status, body[:300])
    for size in (64 * 1024 + 1, 70 * 1024):
        status, headers, body = request(oauth_gw, "POST", "/oauth2/token", prefix + "a" * (size - len(prefix)), creds)
        assert status == 413, (size, status, body[:300])
        assert "access_token" not in json.loads(body), body
    # Still serving afterwards.
    assert token_request(oauth_gw, alice.id, alice.secret)[0] == 200


def test_jwks_and_discovery_match_tokens(oauth_gw, alice):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    status, _, body = token_request(oauth_gw, alice.id, alice.secret)
    assert status == 200, body
    header, _, signing_input, signature = decode_jwt(json.loads(body)["access_token"])

    status, _, body = request(oauth_gw, "GET", "/.well-known/openid-configuration")
    assert status == 200, body
    disco = json.loads(body)
    assert disco["issuer"] == oauth_gw.url, disco
    assert disco["token_endpoint"] == oauth_gw.token_endpoint, disco
    assert disco["jwks_uri"] == f"{oauth_gw.url}/.well-known/jwks.json", disco
    assert "client_credentials" in disco.get("grant_types_supported", []), disco

    # The JWKS at jwks_uri (fetched by its own URL) has the token's kid, and that key verifies it.
    jwks_url = urllib.parse.urlsplit(disco["jwks_uri"])
    assert jwks_url.port == oauth_gw.admin_port, disco
    status, _, body = request(oauth_gw, "GET", jwks_url.path)
    assert status == 200, body
    keys = json.loads(body)["keys"]
    assert all("d" not in k for k in keys), "private key material in the JWKS"
    match = [k for k in keys if k.get("kid") == header["kid"]]
    assert len(match) == 1, (header, keys)
    jwk = match[0]
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519", jwk
    pub = Ed25519PublicKey.from_public_bytes(b64u_decode(jwk["x"]))
    pub.verify(signature, signing_input)
    with pytest.raises(InvalidSignature):
        pub.verify(signature, signing_input + b"x")


def test_tenant_store_holds_only_argon2_hashes(oauth_gw, alice):
    stored = get_tenant(TENANT)
    assert stored is not None, TENANT
    text = json.dumps(stored)
    assert alice.secret not in text
    clients = stored["tenant"]["clients"]
    name = alice.id.split(".", 1)[1]
    assert clients[name]["subject"] == "alice", clients
    assert "policies" not in clients[name], clients
    assert abs(clients[name]["created_at"] - time.time()) < 3600, clients
    for c in clients.values():
        assert c["secret_hash"].startswith("$argon2id$"), c
    # `client list` shows neither secrets nor hashes.
    res = client_cli("list", "--tenant", TENANT)
    assert res.returncode == 0, res.stderr
    listed = [json.loads(l) for l in res.stdout.splitlines()]
    mine = [c for c in listed if c["client_id"] == alice.id]
    assert mine == [{"client_id": alice.id, "subject": "alice", "policies": None, "scopes": [],
                     "created_at": clients[name]["created_at"]}], listed
    assert "argon2" not in res.stdout and alice.secret not in res.stdout
    # The private signing key is readable by its owner only.
    mode = oauth_gw.key_file.stat().st_mode & 0o777
    assert mode & 0o077 == 0, oct(mode)


def test_deleted_client_is_refused_within_5s(oauth_gw, alice):
    c = create_client(oauth_gw, subject=unique("doomed"))
    assert token_request(oauth_gw, c.id, c.secret)[0] == 200
    res = client_cli("delete", c.id)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"client_id": c.id, "deleted": True}, res.stdout
    took = wait_refused(oauth_gw, c)
    assert took < 5, took
    assert oauth_gw.log_lines("token request with bad client credentials", c.id), oauth_gw.log()[-3000:]
    # Gone from the store; deleting it again is an error; other clients are untouched.
    assert c.id.split(".", 1)[1] not in get_tenant(TENANT)["tenant"].get("clients", {})
    again = client_cli("delete", c.id)
    assert again.returncode == 1 and "does not exist" in again.stderr, (again.stdout, again.stderr)
    assert token_request(oauth_gw, alice.id, alice.secret)[0] == 200


def test_client_of_another_tenant_gets_tokens_for_that_tenant(oauth_gw, alice):
    """The client id names the tenant: a client of T gets tokens whose sluice:tenant is T,
    which the gateway accepts for T; deleting T ends the client too."""
    other = unique("oauth-t")
    put_tenant(allow_all_doc(other))
    try:
        c = create_client(oauth_gw, subject="alice", tenant=other, name="app", policies=["all"])
        assert c.id == f"{other}.app"
        status, _, body = token_request(oauth_gw, c.id, c.secret)
        assert status == 200, body
        _, claims, _, _ = decode_jwt(json.loads(body)["access_token"])
        assert claims["sluice:tenant"] == other and claims["sub"] == "alice", claims
        assert claims["sluice:policies"] == ["all"], claims
        # Same subject, other tenant: alice's own client still gets tokens for TENANT.
        _, claims_a, _, _ = decode_jwt(json.loads(token_request(oauth_gw, alice.id, alice.secret)[2])["access_token"])
        assert claims_a["sluice:tenant"] == TENANT and "sluice:policies" not in claims_a, claims_a
        # Another tenant's name with this secret is not this client.
        assert_oauth_error(*token_request(oauth_gw, f"{TENANT}.app", c.secret), 401, "invalid_client")
        # The gateway accepts the token for that tenant.
        md = AdminClient(oidc_conf(oauth_gw, c)).list_topics(timeout=30)
        assert md.brokers, md
        assert oauth_gw.log_lines("client authenticated", 'subject="alice"', f'tenant="{other}"'), \
            oauth_gw.log()[-3000:]
    finally:
        delete_tenant(other)
    assert wait_refused(oauth_gw, c) < 5


def test_client_create_checks_names_and_policies(oauth_gw):
    name = unique("dup")
    create_client(oauth_gw, name=name)
    for args, needle in [
        (["--tenant", TENANT, "--name", name], "already exists"),
        (["--tenant", TENANT, "--name", "bad name"], "not a valid client name"),
        (["--tenant", TENANT, "--name", unique("p"), "--policies", "nope"], 'no policy named "nope"'),
        (["--tenant", unique("absent"), "--name", "app"], "does not exist"),
    ]:
        res = client_cli("create", *args)
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        assert needle in res.stderr and res.stderr.startswith("error: "), (args, res.stderr)
        assert "client_secret" not in res.stdout, res.stdout


def test_config_refuses_clients_file(oauth_gw, tmp_path):
    cfg = tmp_path / "old.toml"
    cfg.write_text(oauth_gw.config_path.read_text().replace("[issuer]\n", '[issuer]\nclients_file = "/tmp/c.json"\n'))
    res = subprocess.run([str(SLUICE_BIN), "check-config", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0, res.stdout
    assert "clients_file" in res.stderr and "tenant store" in res.stderr, res.stderr
    ok = subprocess.run([str(SLUICE_BIN), "check-config", "--config", str(oauth_gw.config_path)],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr


# --------------------------------------------------------------------------- Kafka clients

def oidc_conf(gw, client, secret=None, **extra):
    conf = {
        "bootstrap.servers": gw.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": client.id,
        "sasl.oauthbearer.client.secret": secret if secret is not None else client.secret,
        "sasl.oauthbearer.token.endpoint.url": gw.token_endpoint,
        "socket.timeout.ms": 20000,
    }
    conf.update(extra)
    return conf


def create_topic(gw, client, topic, partitions=3):
    """Creates the topic through the gateway as the tenant principal (OIDC) and waits for leaders."""
    create_topic_as(oidc_conf(gw, client), topic, partitions)


def create_topic_as(conf: dict, topic, partitions=3):
    """Creates the topic with a confluent AdminClient built from `conf`; waits for leaders."""
    a = AdminClient(conf)
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)],
                         operation_timeout=30, request_timeout=30)
    fs[topic].result(timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    while True:
        t = a.list_topics(timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 and p.error is None for p in t.partitions.values()):
            return
        assert time.time() < deadline, f"topic {topic} has no leaders: {t}"
        time.sleep(0.3)


def java_oauth_cmd(build, gw, client, cls, *args, scope=None):
    """A helper's command line with OAUTHBEARER via OAuthBearerLoginCallbackHandler."""
    jaas = f'{LOGIN_MODULE} required clientId="{client.id}" clientSecret="{client.secret}"'
    if scope:
        jaas += f' scope="{scope}"'
    props = [
        "security.protocol=SASL_PLAINTEXT",
        "sasl.mechanism=OAUTHBEARER",
        f"sasl.login.callback.handler.class={LOGIN_HANDLER}",
        f"sasl.oauthbearer.token.endpoint.url={gw.token_endpoint}",
        f"sasl.jaas.config={jaas};",
    ]
    full = list(args)
    for p in props:
        full += ["--prop", p]
    cmd = java_cmd(build, cls, *full)
    # Kafka 4: token endpoints must be allowed explicitly.
    cmd.insert(1, f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={gw.token_endpoint}")
    return cmd


def run_java_oauth(build, gw, client, cls, *args, scope=None, timeout=180):
    res = subprocess.run(java_oauth_cmd(build, gw, client, cls, *args, scope=scope),
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(
            f"{cls} failed ({res.returncode}):\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-5000:]}\n"
            f"gateway log: {gw.log()[-3000:]}")
    return res.stdout.splitlines(), res.stderr


def java_round_trip(build, gw, client, topic, count, scope, produce_args=(), timeout=180):
    lines, _ = run_java_oauth(build, gw, client, "Produce", "--bootstrap", gw.bootstrap, "--topic", topic,
                              "--count", count, "--prefix", topic, *produce_args, scope=scope, timeout=timeout)
    acked, errors, done = parse_acks(lines)
    assert not errors, errors[:10]
    assert done == f"done sent={count} acked={count} errors=0", (done, lines[-5:])
    assert_gateway_addresses(gw, lines)
    dump_lines, _ = run_java_oauth(build, gw, client, "Dump", "--bootstrap", gw.bootstrap, "--topic", topic,
                                   "--timeout-ms", 90000, scope=scope, timeout=150)
    recs, end = parse_dump(dump_lines)
    expected = [f"{topic}-{i}" for i in range(count)]
    values = [v for _, _, _, v in recs]
    assert len(values) == count, (len(values), end)
    assert sha_sorted(values) == sha_sorted(expected)
    assert {v: (p, o) for p, o, _, v in recs} == acked, "records are not where the producer was told"
    return acked


@pytest.mark.parametrize("scope", [None, "kafka"], ids=["no-scope", "scope"])
def test_java_client_credentials_round_trip(oauth_gw, java_helpers, scope):
    """The Java client fetches its token from sluice with the config alone (JAAS clientId /
    clientSecret), then produces and reads back 2000 records, checksummed. Without a
    configured scope is the plain KIP-768 setup; with one, the token carries it."""
    client = create_client(oauth_gw, subject=unique("java"))
    topic = unique("oauth-java")
    create_topic(oauth_gw, client, topic)
    java_round_trip(java_helpers, oauth_gw, client, topic, 2000, scope)
    assert len(oauth_gw.log_lines("token issued", client.id)) >= 2, "producer and dump each fetch a token"
    assert oauth_gw.log_lines("client authenticated", f'subject="{client.subject}"'), oauth_gw.log()[-3000:]


def test_confluent_oidc_round_trip(oauth_gw):
    client = create_client(oauth_gw, subject=unique("rdkafka"))
    topic = unique("oauth-rdk")
    create_topic(oauth_gw, client, topic)
    errors = []
    data = make_payloads(topic, 1000)
    p = Producer(oidc_conf(oauth_gw, client, **{"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                                                "error_cb": errors.append}))
    delivery_errors = []
    for i, v in enumerate(data):
        while True:
            try:
                p.produce(topic, key=f"k{i % 13}".encode(), value=v,
                          on_delivery=lambda err, msg: err and delivery_errors.append(err))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(TIMEOUT) == 0, "messages not delivered"
    assert not delivery_errors, delivery_errors[:5]

    c = Consumer(oidc_conf(oauth_gw, client, **{"group.id": unique("oauth-grp"), "auto.offset.reset": "earliest",
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
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert len(got) == len(data) and sha_sorted(got) == sha_sorted(data)
    assert not errors, errors
    assert oauth_gw.log_lines("token issued", client.id), oauth_gw.log()[-3000:]
    assert oauth_gw.log_lines("client authenticated", f'subject="{client.subject}"'), oauth_gw.log()[-3000:]


@pytest.mark.parametrize("who", ["wrong-secret", "unknown-client"])
def test_confluent_oidc_bad_credentials(oauth_gw, alice, who):
    """A wrong secret (or unknown client) is an authentication error the application sees
    (error_cb), carrying the issuer's invalid_client; the gateway serves others throughout."""
    bad = alice if who == "wrong-secret" else OAuthClient(unique("nobody"), alice.secret, alice.token_endpoint, "x")
    secret = alice.secret + "-wrong" if who == "wrong-secret" else alice.secret
    errors = []
    p = Producer(oidc_conf(oauth_gw, bad, secret=secret, error_cb=errors.append))
    deadline = time.time() + 30
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
        assert time.time() < deadline, f"no authentication error within 30 s: {errors}"
        p.poll(0.5)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    text = auth[0].str()
    assert "invalid_client" in text, text
    assert "token" in text.lower(), text
    # Nothing was authenticated with the bad credentials: metadata never arrives.
    with pytest.raises(Exception):
        p.list_topics(timeout=3)
    p.purge()
    del p
    assert oauth_gw.log_lines("token request with bad client credentials", bad.id), oauth_gw.log()[-3000:]
    if who == "unknown-client":
        assert not oauth_gw.log_lines("token issued", bad.id)
    # Healthy: a good client still gets a token and metadata.
    assert oauth_gw.alive()
    good = AdminClient(oidc_conf(oauth_gw, alice))
    md = good.list_topics(timeout=30)
    assert md.brokers and all(b.port - oauth_gw.broker_port_base == b.id for b in md.brokers.values()), md.brokers


# --------------------------------------------------------------------------- re-authentication

REAUTH_TTL = 20
REAUTH_RUN_SECS = 65


@pytest.fixture(scope="session")
def reauth_gw(pool, tmp_path_factory):
    gw = start_oauth_gateway(tmp_path_factory.mktemp("oauth-reauth-gw"), ttl_secs=REAUTH_TTL)
    yield gw
    stop_gateway(gw)


def auth_counts_per_connection(gw, subject):
    """{peer: number of successful SaslAuthenticate} for one subject, from the gateway log."""
    counts = {}
    for l in gw.log_lines("client authenticated", f'subject="{subject}"', "SaslAuthenticate"):
        m = re.search(r"peer=(\S+)", l)
        assert m, l
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def test_reauthentication_over_oidc(reauth_gw, java_helpers):
    """20 s tokens: a Java producer (rate-limited, ~65 s) and a librdkafka consumer reading
    concurrently run through three token lifetimes. Both refresh tokens from the endpoint
    and re-authenticate their connections (KIP-368) without a send error, a reconnect caused
    by an expired session, or a lost record."""
    gw = reauth_gw
    jclient = create_client(gw, subject=unique("reauth-java"))
    rclient = create_client(gw, subject=unique("reauth-rdk"))
    topic = unique("oauth-reauth")
    create_topic(gw, jclient, topic)
    rate = 30
    count = rate * REAUTH_RUN_SECS
    expected = {f"{topic}-{i}" for i in range(count)}

    consumed, c_errors, stop = [], [], threading.Event()

    def consume():
        c = Consumer(oidc_conf(gw, rclient, **{"group.id": unique("reauth-grp"), "auto.offset.reset": "earliest",
                                               "error_cb": c_errors.append}))
        try:
            c.subscribe([topic])
            while not stop.is_set():
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    c_errors.append(m.error())
                    continue
                consumed.append(m.value().decode())
        finally:
            c.close()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    started = time.time()
    try:
        lines, stderr = run_java_oauth(java_helpers, gw, jclient, "Produce", "--bootstrap", gw.bootstrap,
                                       "--topic", topic, "--count", count, "--rate", rate, "--prefix", topic,
                                       scope="kafka", timeout=REAUTH_RUN_SECS + 90)
        elapsed = time.time() - started
        deadline = time.time() + TIMEOUT
        while set(consumed) < expected and time.time() < deadline and t.is_alive():
            time.sleep(0.5)
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive(), "consumer thread did not stop"

    acked, errors, done = parse_acks(lines)
    assert not errors, errors[:10]
    assert done == f"done sent={count} acked={count} errors=0", (done, lines[-5:])
    assert elapsed >= 3 * REAUTH_TTL, f"the run took {elapsed:.0f}s, fewer than three token lifetimes"
    missing = expected - set(consumed)
    assert not missing, f"librdkafka consumer missed {len(missing)} records; errors {c_errors[:10]}"
    assert not c_errors, c_errors[:10]
    dump_lines, _ = run_java_oauth(java_helpers, gw, jclient, "Dump", "--bootstrap", gw.bootstrap,
                                   "--topic", topic, "--timeout-ms", 90000, scope="kafka", timeout=150)
    recs, _ = parse_dump(dump_lines)
    assert sha_sorted(v for _, _, _, v in recs) == sha_sorted(expected)
    assert {v: (p, o) for p, o, _, v in recs} == acked

    log = gw.log()
    for client in (jclient, rclient):
        issued = gw.log_lines("token issued", f"client_id={client.id}")
        assert len(issued) >= 3, f"{client.subject}: {len(issued)} tokens issued in {elapsed:.0f}s:\n{log[-4000:]}"
        # Re-authentication happened on the same connection, again and again.
        per_conn = auth_counts_per_connection(gw, client.subject)
        assert per_conn and max(per_conn.values()) >= 3, f"{client.subject}: authentications per connection {per_conn}"
    # No (re-)authentication was refused. Connections a client left idle past their session
    # may be closed ("session expired without re-authentication", SPEC 5): the Java client
    # re-authenticates a connection only when it next sends on it.
    assert "authentication failed" not in log, [l for l in log.splitlines() if "authentication failed" in l][:10]
