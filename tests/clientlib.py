"""Helpers shared by the non-Java client-compatibility tests (kcat, confluent-kafka,
kafka-python, franz-go). Pure functions; the fixtures live in conftest.py."""
import hashlib
import os
import uuid

POOL_BOOTSTRAP = os.environ.get("SLUICE_POOL_BOOTSTRAP", "127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093")


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against the shared pool) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_payloads(prefix: str, n: int) -> list:
    """n distinct payloads (bytes) with a unique prefix."""
    return [f"{prefix}-{i:06d}-{hashlib.md5(f'{prefix}{i}'.encode()).hexdigest()}".encode() for i in range(n)]


def sha_sorted(payloads) -> str:
    """sha256 over the sorted payloads, newline separated: order independent, count sensitive."""
    h = hashlib.sha256()
    for p in sorted(p if isinstance(p, bytes) else p.encode() for p in payloads):
        h.update(p)
        h.update(b"\n")
    return h.hexdigest()


def direct(gateway) -> bool:
    """True when the clients talk to the pool itself (SLUICE_TEST_DIRECT=1)."""
    return gateway.proc is None and os.environ.get("SLUICE_TEST_DIRECT") == "1"


def pool_ports() -> set:
    """The pool's listener ports: the bootstrap list plus the port-per-node layout of
    deploy/pool.sh (node N on base+N), so brokers added later are covered too."""
    ports = {int(a.rsplit(":", 1)[1]) for a in POOL_BOOTSTRAP.split(",")}
    base = min(ports) - 1
    return ports | {base + n for n in range(1, 10)}


def check_broker_address(gateway, node_id: int, host: str, port: int):
    """Asserts that a broker address a client learnt (metadata, coordinator, describe
    cluster) is the gateway's advertised host and port-per-broker for that node id, or,
    in direct mode, one of the pool's addresses."""
    if direct(gateway):
        assert port in pool_ports() and port == min(pool_ports()) - 1 + node_id, (node_id, host, port)
        return
    assert host == gateway.bootstrap.rsplit(":", 1)[0], (node_id, host, port)
    assert port == gateway.broker_port_base + node_id, (node_id, host, port, gateway.broker_port_base)
    assert port not in pool_ports(), (node_id, host, port)


def assert_no_pool_address(gateway, text: str):
    """Through the gateway, no pool port may ever appear in what a client sees."""
    if direct(gateway):
        return
    for port in pool_ports():
        assert str(port) not in text, f"pool port {port} leaked:\n{text[:3000]}"
