"""Graceful operation (issue 9 point 3): readiness and liveness on the admin listener, and
the SIGTERM drain — listeners close at once, connections finish their in-flight requests
(an idempotent producer sending throughout: every record it saw acknowledged is in the
pool), `/ready` answers 503 "draining" meanwhile, the usage ledger is flushed, and the
process exits 0 well within `listener.drain_timeout_ms`.
"""
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import POOL_BOOTSTRAP, SLUICE_BIN, _wait_port
from tenants import allow_all_doc, put_tenant
from test_admin_api import mint
from test_oauth import _started, start_oauth_gateway


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_ready_live_and_sigterm_drain(pool, tmp_path):
    gw = start_oauth_gateway(tmp_path, ttl_secs=3600, extra_config="[usage]\nflush_ms = 3600000\n")
    try:
        status, body = get(gw.url + "/live")
        assert status == 200 and body == {"live": True}
        status, body = get(gw.url + "/ready")
        assert status == 200 and body["ready"] and body["live_brokers"] == 3, body

        tid = "gr" + uuid.uuid4().hex[:8]
        put_tenant(allow_all_doc(tid))
        token = mint(gw, tenant=tid, subject="app")
        sasl = {"bootstrap.servers": gw.bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                "sasl.username": "app", "sasl.password": token}
        admin = AdminClient(sasl)
        deadline = time.time() + 20
        while True:
            try:
                admin.create_topics([NewTopic("drain", num_partitions=1, replication_factor=3)],
                                    request_timeout=30)["drain"].result(60)
                break
            except Exception as e:  # noqa: BLE001 (the gateway may not have read the tenant yet)
                assert time.time() < deadline, e
                time.sleep(0.5)

        # A producer keeps sending while the gateway drains; every record it saw
        # acknowledged must be in the pool afterwards.
        acked, errors, stop = [], [], threading.Event()
        p = Producer(dict(sasl, **{"enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 15000}))

        def on_delivery(err, msg):
            (errors if err else acked).append(err or msg.value())

        def send():
            i = 0
            while not stop.is_set():
                try:
                    p.produce("drain", value=f"r{i}".encode(), on_delivery=on_delivery)
                    i += 1
                except BufferError:
                    pass
                p.poll(0.002)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        time.sleep(2)
        assert len(acked) > 50, (len(acked), errors[:3])

        # SIGHUP (systemd's reload) with the file unchanged changes nothing and keeps it running.
        gw.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert gw.proc.poll() is None, "SIGHUP ended the gateway"
        assert "SIGHUP: config unchanged" in gw.log(), gw.log()[-2000:]

        term_at = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        saw_draining = False
        while gw.proc.poll() is None and time.monotonic() - term_at < 20:
            try:
                status, body = get(gw.url + "/ready")
                saw_draining |= status == 503 and body.get("reason") == "draining"
            except OSError:
                pass
            time.sleep(0.02)
        exit_code = gw.proc.wait(30)
        took = time.monotonic() - term_at
        stop.set()
        t.join(10)
        p.flush(20)
        log = gw.log()
        print(f"\nSIGTERM to exit: {took:.2f} s; acked {len(acked)} records; delivery errors {len(errors)}")
        assert exit_code == 0, log[-3000:]
        assert took < 10, f"drain took {took:.1f} s"
        assert "draining: listeners closed" in log and ("drained" in log or "drain timeout" in log), log[-3000:]
        assert saw_draining or took < 0.5, "/ready never reported the drain"
        assert not _wait_port(gw.bootstrap_port, 0.5), "the listener still accepts after the exit"

        # Every acknowledged record is in the pool.
        pool_c = Consumer({"bootstrap.servers": POOL_BOOTSTRAP, "group.id": "check-" + uuid.uuid4().hex[:6],
                           "enable.auto.commit": False})
        pool_c.assign([TopicPartition(f"{tid}.drain", 0, 0)])
        stored, deadline = set(), time.time() + 30
        while time.time() < deadline:
            for m in pool_c.consume(1000, 1.0):
                if m.error() is None:
                    stored.add(m.value())
            if set(acked) <= stored:
                break
        pool_c.close()
        missing = set(acked) - stored
        assert not missing, f"{len(missing)} acknowledged records are not in the pool"
        # The usage ledger was flushed on the way out (flush_ms is an hour, so only the
        # shutdown flush can have written the produced bytes).
        res = subprocess.run([str(SLUICE_BIN), "tenant", "usage", tid, "--granularity", "day",
                              "--bootstrap", POOL_BOOTSTRAP], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        gb_in = sum(b["gb_in"] for b in json.loads(res.stdout)["items"])
        assert gb_in * 1e9 >= len(acked) * 2, f"usage not flushed at shutdown: {res.stdout[-500:]}"
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait(10)
        # It was stopped on purpose: test_oauth's check that its gateways stay up must not
        # count it.
        if gw in _started:
            _started.remove(gw)
