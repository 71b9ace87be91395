"""Gateway topology against the real pool: a broker that joins gets a listener, one
that leaves loses it, and a broker that dies takes its client connections with it."""
import socket
import struct
import subprocess
import time

from conftest import POOL_SH, ROOT, kafka_tool


def api_versions_v0(sock: socket.socket, corr: int) -> int:
    """Sends ApiVersions v0 and returns the response's error code."""
    client_id = b"topology-test"
    body = struct.pack(">hhih", 18, 0, corr, len(client_id)) + client_id
    sock.sendall(struct.pack(">i", len(body)) + body)
    (length,) = struct.unpack(">i", _read_exact(sock, 4))
    payload = _read_exact(sock, length)
    got_corr, error = struct.unpack(">ih", payload[:6])
    assert got_corr == corr
    return error


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(cond, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def broker_ports_in_metadata(bootstrap: str) -> set:
    """Broker endpoints as a real client (kafka-broker-api-versions) sees them."""
    out = kafka_tool("kafka-broker-api-versions", "--bootstrap-server", bootstrap).stdout
    return {line.split(" ")[0] for line in out.splitlines() if "(id:" in line}


def test_new_broker_gets_a_listener_and_a_departed_one_loses_it(gateway):
    port4 = gateway.broker_port_base + 4
    assert not port_open(port4)
    subprocess.run([str(POOL_SH), "start-broker", "4"], check=True, cwd=ROOT, timeout=180)
    try:
        wait_for(lambda: port_open(port4), 30, "listener for broker 4")
        endpoints = broker_ports_in_metadata(gateway.bootstrap)
        assert f"127.0.0.1:{port4}" in endpoints, endpoints
        assert not any(":2909" in e for e in endpoints), endpoints
        with socket.create_connection(("127.0.0.1", port4), timeout=10) as s:
            assert api_versions_v0(s, 1) == 0
    finally:
        subprocess.run([str(POOL_SH), "stop-broker", "4"], check=True, cwd=ROOT, timeout=180)
    wait_for(lambda: not port_open(port4), 60, "listener for broker 4 to close")
    assert gateway.alive()


def test_dead_broker_closes_its_client_connections(gateway):
    port2 = gateway.broker_port_base + 2
    sock = socket.create_connection(("127.0.0.1", port2), timeout=10)
    assert api_versions_v0(sock, 1) == 0
    subprocess.run([str(POOL_SH), "kill-broker", "2"], check=True, cwd=ROOT, timeout=60)
    try:
        sock.settimeout(15)
        started = time.time()
        try:
            data = sock.recv(1)
        except (ConnectionResetError, socket.timeout) as e:
            data = e
        assert data == b"" or isinstance(data, ConnectionResetError), f"connection not closed: {data!r}"
        assert time.time() - started < 10
        # Reconnects are refused, as when dialling a dead broker directly, rather than
        # accepted and dropped (which franz-go reads as a TLS/SASL misconfiguration).
        wait_for(lambda: not port_open(port2), 3, "listener of the dead broker to close")
        # The bootstrap port still serves through the surviving brokers.
        with socket.create_connection(("127.0.0.1", gateway.bootstrap_port), timeout=10) as s:
            assert api_versions_v0(s, 2) == 0
    finally:
        sock.close()
        subprocess.run([str(POOL_SH), "start-broker", "2"], check=True, cwd=ROOT, timeout=180)
    wait_for(lambda: port_open(port2), 60, "listener for broker 2 after restart")
    with socket.create_connection(("127.0.0.1", port2), timeout=10) as s:
        assert api_versions_v0(s, 3) == 0
    assert gateway.alive()


def test_broker_configs_do_not_reveal_pool_addresses(gateway):
    out = kafka_tool(
        "kafka-configs", "--bootstrap-server", gateway.bootstrap,
        "--describe", "--entity-type", "brokers", "--entity-name", "1", "--all",
    ).stdout
    assert "num.io.threads" in out, out[:2000]
    assert "advertised.listeners" in out
    for pool_port in ("29091", "29092", "29093", "29191", "29192", "29193"):
        assert pool_port not in out, f"pool port {pool_port} leaked:\n{out}"


def test_bad_frames_are_logged_and_the_gateway_keeps_serving(gateway):
    with socket.create_connection(("127.0.0.1", gateway.bootstrap_port), timeout=10) as s:
        s.sendall(struct.pack(">i", -7))
        s.settimeout(5)
        assert s.recv(1) == b""
    with socket.create_connection(("127.0.0.1", gateway.bootstrap_port), timeout=10) as s:
        s.sendall(struct.pack(">ihhi", 8, 999, 0, 42))
        s.settimeout(5)
        assert s.recv(1) == b""
    wait_for(lambda: "frame length -7 is negative" in gateway.log(), 5, "log line for the negative length")
    wait_for(lambda: "unknown API key 999" in gateway.log(), 5, "log line for the unknown key")
    with socket.create_connection(("127.0.0.1", gateway.bootstrap_port), timeout=10) as s:
        assert api_versions_v0(s, 5) == 0
    assert gateway.alive()
