"""A fleet of gateways sharing one tenant quota (SPEC 7, issue 9 points 1 and 5): three
sluice instances in front of the real pool, a tenant flooding through all three at once
(each producer offers its instance the whole quota) is held to the tenant's quota in
total, because the instances exchange demand through the pool (`__sluice_quota_demand`)
and re-split the quota every 500 ms.

The rate is measured on the pool (end offsets sampled every 0.5 s). Without sharing each
instance would admit the whole quota and the total would be about 3×; the test asserts
that sharing happens (at most 1.5× the quota) and does not starve the tenant (at least
0.3×). These bounds are loose on purpose: the accuracy target of SPEC 7 (±5%) is not met
yet (issue 9), and on this 2-core machine, running three gateways, three Java producers
and the pool at once, the measured ratio has ranged 0.58-0.78. It is printed for the
report.
"""
import uuid

import pytest

from conftest import start_gateway
from tenant_env import Tenant, TenantGateway, _wait_admitted
from tenants import put_tenant
from test_quotas import BATCHING, KIB, MIB, RECORD, PerfProducer, PoolOffsets, create_topic, fmt, quota_doc
from test_sasl import Keys, SaslEnv, sasl_auth_config, stop_gateway


@pytest.fixture(scope="module")
def fleet(pool, tmp_path_factory):
    keys = Keys(tmp_path_factory.mktemp("fleet-keys"))
    gws = [start_gateway(tmp_path_factory.mktemp(f"fleet-{i}"), sasl_auth_config(keys), auth="sasl") for i in range(3)]
    yield [TenantGateway(SaslEnv(g, keys)) for g in gws]
    for g in gws:
        stop_gateway(g)


def test_a_tenant_flooding_three_instances_is_held_to_its_quota(fleet):
    quota = 1 * MIB
    tid = "f" + uuid.uuid4().hex[:8]
    version = put_tenant(quota_doc(tid, {"produce_bytes_per_sec": quota, "partition_produce_bytes_per_sec": 8 * MIB}))
    tenants = [Tenant(tgw, tid, version) for tgw in fleet]
    for t in tenants:
        _wait_admitted(t)
    topic = "flood"
    create_topic(tenants[0], topic, 3)
    per_producer = 6 * quota // RECORD  # ~18 s for the three at the tenant quota
    sampler = PoolOffsets(tenants[0].pool_name(topic), 3).start()
    producers = [PerfProducer(t, topic, per_producer, throughput=quota // RECORD, **BATCHING) for t in tenants]
    results = [p.wait(180) for p in producers]
    sampler.stop()
    total = 3 * per_producer
    ended = max(p.ended for p in producers)
    start = sampler.first_reaching(1)
    assert start is not None
    # Past the first 3 s (bursts and the first re-splits) until the first producer is done
    # (after that the others have the whole quota to themselves, still within it).
    first_done = min(p.ended for p in producers)
    rate = sampler.rate(start + 3, first_done) * RECORD
    print(f"\nfleet of 3, tenant quota {fmt(quota)}: measured {fmt(rate)} (ratio {rate / quota:.3f}); "
          f"per producer: {[r['mb_per_sec'] for r in results]} MB/s; throttle avg {[r['throttle_avg'] for r in results]}")
    for r in results:
        assert r["errors"] == [] and r["sent"] == per_producer, r
    assert 0.3 <= rate / quota <= 1.5, f"fleet rate {fmt(rate)} vs quota {fmt(quota)}"
    assert sampler.first_reaching(total) is not None and ended > 0
