"""Config reload on SIGHUP (issue 9 point 3): a changed config file is applied to the
running gateway without dropping a connection, and only what changed is touched.

One sasl gateway, one idempotent producer connected throughout (librdkafka's statistics
count its connection attempts: they must not grow). The reload:
- lowers the default tenant write quota: the same connections get throttled
  (`throttle_time_ms` seen by the client) with no delivery error;
- adds a second token issuer: its tokens, refused before, are accepted after;
- changes a listener port: reported as needing a restart, the old port keeps serving;
then an invalid file changes nothing (the lowered quota stays in force, the gateway runs).
"""
import json
import re
import signal
import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import start_gateway
from test_sasl import ED_AUDIENCE, ED_ISSUER, RSA_AUDIENCE, RSA_ISSUER, Keys, SaslEnv, stop_gateway
from test_sasl import sasl_tenants  # noqa: F401 (a fixture)

TOPIC_RECORD = 4096


def auth_section(keys: Keys, with_rsa: bool) -> str:
    text = f"""
[auth]
mechanisms = ["OAUTHBEARER", "PLAIN"]
failures_before_delay = 100000
failures_before_refusal = 1000000

[[auth.issuers]]
issuer = "{ED_ISSUER}"
audience = ["{ED_AUDIENCE}"]
jwks_file = "{keys.ed_jwks}"
algorithms = ["EdDSA"]
"""
    if with_rsa:
        text += f"""
[[auth.issuers]]
issuer = "{RSA_ISSUER}"
audience = ["{RSA_AUDIENCE}"]
jwks_file = "{keys.rsa_jwks}"
algorithms = ["RS256"]
"""
    return text


def client_config(bootstrap: str, token: str, **extra) -> dict:
    return dict({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                 "sasl.username": "alice", "sasl.password": token}, **extra)


def can_list_topics(bootstrap: str, token: str) -> bool:
    try:
        AdminClient(client_config(bootstrap, token)).list_topics(timeout=8)
        return True
    except Exception:  # noqa: BLE001 (any failure to authenticate or answer counts as "no")
        return False


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def wait_log(gw, text: str, after: int, timeout: float = 15) -> str:
    """The log after offset `after` (colours stripped) once it holds `text`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = ANSI.sub("", gw.log()[after:])
        if text in log:
            return log
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged:\n{gw.log()[-3000:]}")


@pytest.fixture
def reload_env(pool, sasl_tenants, tmp_path):
    keys = Keys(tmp_path)
    gw = start_gateway(tmp_path, auth_section(keys, with_rsa=False), auth="sasl")
    yield gw, SaslEnv(gw, keys), gw.log_path.with_suffix(".toml")
    stop_gateway(gw)


def test_sighup_applies_quotas_and_issuers_without_dropping_connections(reload_env):
    gw, env, config_path = reload_env
    token = env.mint(subject="alice", tenant="demo")
    topic = "reload-" + uuid.uuid4().hex[:8]
    admin = AdminClient(client_config(gw.bootstrap, token))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])[topic].result(60)

    throttles, errors, acked, stats = [], [], [0], [{}]

    def on_delivery(err, _msg):
        if err:
            errors.append(str(err))
        else:
            acked[0] += 1

    def on_stats(text):
        stats[0] = json.loads(text)

    producer = Producer(client_config(gw.bootstrap, token, **{
        "enable.idempotence": True, "linger.ms": 5, "batch.size": 65536, "statistics.interval.ms": 200,
        "throttle_cb": lambda ev: throttles.append(ev.throttle_time), "stats_cb": on_stats}))

    def produce(n: int):
        value = b"x" * TOPIC_RECORD
        for _ in range(n):
            while True:
                try:
                    producer.produce(topic, value=value, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        assert producer.flush(120) == 0, "records left unsent"

    def connects() -> int:
        producer.poll(0.5)  # at least one statistics report after the last traffic
        brokers = stats[0].get("brokers", {})
        return sum(b.get("connects", 0) for b in brokers.values())

    # Before: 2 MiB at the default quota (200 MiB/s) is never throttled.
    produce(512)
    assert errors == [] and throttles == [], (errors[:3], throttles[:3])
    connects_before = connects()
    assert connects_before > 0, stats[0].keys()
    rsa_token = env.rsa_token(subject="alice", tenant="demo")
    assert not can_list_topics(gw.bootstrap, rsa_token), "the RSA issuer is trusted before the reload"

    # The reload: a 256 KiB/s default tenant write quota, the RSA issuer, another bootstrap port.
    original = config_path.read_text()
    new_port = gw.bootstrap_port + 7
    changed = (original.replace(f"bootstrap_port = {gw.bootstrap_port}", f"bootstrap_port = {new_port}")
               + "\n[quotas]\ntenant_write_bytes_per_sec = 262144\n")
    changed = changed.replace(auth_section(env.keys, with_rsa=False), auth_section(env.keys, with_rsa=True))
    assert "rsa.test" in changed and f"bootstrap_port = {new_port}" in changed
    config_path.write_text(changed)
    mark = len(gw.log())
    gw.proc.send_signal(signal.SIGHUP)
    log = wait_log(gw, "SIGHUP: config applied", mark)
    assert "quotas=true" in log and "auth=true" in log, log[-2000:]
    log = wait_log(gw, "change only with a restart", mark)
    assert "listener.bootstrap_port" in log, log[-2000:]
    assert gw.proc.poll() is None

    # After: the same connections are throttled to the new quota, without an error.
    started = time.monotonic()
    produce(512)
    took = time.monotonic() - started
    print(f"\n2 MiB after the reload: {took:.1f} s, {len(throttles)} throttle reports, "
          f"max {max(throttles, default=0) * 1000:.0f} ms; connects {connects_before} -> {connects()}")
    assert errors == [], errors[:3]
    assert throttles and max(throttles) > 0, "the lowered quota never throttled the producer"
    assert connects() == connects_before, "the producer had to reconnect across the reload"
    # The new issuer's tokens are accepted on new connections, still on the old port.
    assert can_list_topics(gw.bootstrap, rsa_token), "the RSA issuer is not trusted after the reload"
    assert can_list_topics(gw.bootstrap, token)

    # An invalid file changes nothing: the lowered quota stays, the gateway keeps running.
    broken = changed.replace("max_frame_bytes = 104857600", "max_frame_bytes = 0")
    assert broken != changed
    config_path.write_text(broken)
    mark = len(gw.log())
    gw.proc.send_signal(signal.SIGHUP)
    wait_log(gw, "keeping the running config", mark)
    throttled_before = len(throttles)
    produce(256)
    assert errors == [] and len(throttles) > throttled_before, "the quota was lost on an invalid reload"
    assert gw.proc.poll() is None
    assert acked[0] == 512 + 512 + 256
