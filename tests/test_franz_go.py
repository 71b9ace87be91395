"""franz-go through the gateway. The Go program (tests/go/franzcheck) prints a JSON
summary; the checksums it reports are compared with ones computed here."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from clientlib import check_broker_address, make_payloads, sha_sorted, unique

GO_DIR = Path(__file__).resolve().parent / "go"
BIN = GO_DIR / "bin" / "franzcheck"


@pytest.fixture(scope="session")
def franzcheck():
    """Builds the franz-go program (go build is incremental, so this is cheap when current)."""
    res = subprocess.run(["go", "build", "-o", str(BIN), "./franzcheck"], cwd=GO_DIR,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"go build failed:\n{res.stdout}\n{res.stderr}"
    return BIN


def run(franzcheck, *args, timeout=150):
    res = subprocess.run([str(franzcheck), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ))
    assert res.returncode == 0, f"franzcheck {args} failed ({res.returncode}):\n{res.stderr[-4000:]}"
    return json.loads(res.stdout)


def test_roundtrip(franzcheck, gateway, topic_name):
    n = 1500
    out = run(franzcheck, "roundtrip", "-brokers", gateway.bootstrap, "-topic", topic_name, "-n", n)
    assert len(out["brokers"]) >= 3
    for b in out["brokers"]:
        check_broker_address(gateway, b["id"], b["host"], b["port"])
    assert out["produced"] == n
    assert out["consumed"] == n
    assert out["sha256"] == sha_sorted(make_payloads(topic_name, n))
    assert out["keys_consistent"] is True
    assert out["distinct_keys"] == 7
    assert out["end_offsets_sum"] == n
    assert out["consumed_parts"] == out["produced_parts"]
    assert set(out["consumed_parts"]) == {"0", "1", "2"}


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_consumer_group(franzcheck, gateway, topic_name, protocol):
    group = unique(f"franz-{protocol}")
    out = run(franzcheck, "group", "-brokers", gateway.bootstrap, "-topic", topic_name, "-group", group,
              "-protocol", protocol)
    expected = (make_payloads(topic_name + "-a", 200) + make_payloads(topic_name + "-b", 400)
                + make_payloads(topic_name + "-c", 200))
    assert out["dupes"] is None or out["dupes"] == []
    assert out["consumed"] == len(expected)
    assert out["sha256"] == sha_sorted(expected)
    a, b = set(out["split"]["c1"]), set(out["split"]["c2"])
    assert a and b and not (a & b) and a | b == {0, 1, 2, 3}
    assert set(out["batch2_by_member"]) == {"c1", "c2"}
    assert sum(out["batch2_by_member"].values()) == 400
    assert out["described_members"] == 2
    if protocol == "consumer":
        assert out["described_type"] == "consumer"
    else:
        assert out["described_type"] == "classic:consumer:cooperative-sticky"
    assert out["committed"] == out["end_offsets"]
    assert sum(out["end_offsets"].values()) == len(expected)


def test_transactions(franzcheck, gateway, topic_name):
    out = run(franzcheck, "txn", "-brokers", gateway.bootstrap, "-topic", topic_name, "-txnid", unique("franz-txn"))
    c1 = make_payloads(topic_name + "-c1", 150)
    ab = make_payloads(topic_name + "-ab", 100)
    c2 = make_payloads(topic_name + "-c2", 70)
    assert out["read_committed"] == len(c1) + len(c2)
    assert out["read_committed_sha256"] == sha_sorted(c1 + c2)
    assert out["read_uncommitted"] == len(c1) + len(ab) + len(c2)
    assert out["read_uncommitted_sha256"] == sha_sorted(c1 + ab + c2)
