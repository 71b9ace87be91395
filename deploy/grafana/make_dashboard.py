"""Writes deploy/grafana/sluice.json, the Grafana dashboard for sluice's /metrics.

The JSON is kept in git; edit the panels here and run `python3 deploy/grafana/make_dashboard.py`.
tests/test_metrics.py evaluates every expression against a real Prometheus."""
import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "${datasource}"}
panels = []
y = 0
pid = 0


def row(title):
    global y, pid
    pid += 1
    panels.append({"type": "row", "title": title, "id": pid, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1


def ts(title, targets, unit, x, w=12, h=8, desc="", stack=False):
    global pid
    pid += 1
    p = {
        "type": "timeseries", "title": title, "id": pid, "datasource": DS, "description": desc,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10,
                                                              "stacking": {"mode": "normal" if stack else "none"}}},
                        "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": l, "range": True}
                    for i, (e, l) in enumerate(targets)],
    }
    panels.append(p)


def heatmap(title, expr, x, w=12, h=8, desc=""):
    global pid
    pid += 1
    panels.append({
        "type": "heatmap", "title": title, "id": pid, "datasource": DS, "description": desc,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "options": {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                    "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64},
                    "tooltip": {"show": True, "yHistogram": True}, "legend": {"show": True}},
        "fieldConfig": {"defaults": {}, "overrides": []},
        "targets": [{"refId": "A", "datasource": DS, "expr": expr, "format": "heatmap",
                     "legendFormat": "{{le}}", "range": True}],
    })


T = 'tenant=~"$tenant"'
R = "$__rate_interval"

row("Tenant throughput")
ts("Produce bytes/s per tenant", [(f'sum by (tenant) (rate(sluice_tenant_bytes_total{{{T},direction="in"}}[{R}]))', "{{tenant}}")],
   "Bps", 0, desc="Record-batch bytes produced (forwarded to the pool), sluice_tenant_bytes_total{direction=\"in\"}.")
ts("Consume bytes/s per tenant", [(f'sum by (tenant) (rate(sluice_tenant_bytes_total{{{T},direction="out"}}[{R}]))', "{{tenant}}")],
   "Bps", 12, desc="Record-batch bytes fetched (returned to clients), sluice_tenant_bytes_total{direction=\"out\"}.")
y += 8
ts("Requests/s by API", [(f"sum by (tenant, api) (rate(sluice_tenant_requests_total{{{T}}}[{R}]))", "{{tenant}} {{api}}")],
   "reqps", 0)
ts("Errors/s by Kafka error code", [(f"sum by (tenant, api, error) (rate(sluice_tenant_errors_total{{{T}}}[{R}]))", "{{tenant}} {{api}} {{error}}")],
   "reqps", 12, desc="Non-zero error codes in the responses returned to tenants (per partition/resource).")
y += 8
ts("Throttle time (ms per second)", [(f"sum by (tenant, direction) (rate(sluice_throttle_ms_total{{{T}}}[{R}]))", "{{tenant}} {{direction}}")],
   "ms", 0, desc="Throttle the gateway's quotas imposed; 1000 ms/s means clients are held all the time.")
ts("Auth failures/s", [(f"sum by (tenant) (rate(sluice_auth_failures_total[{R}]))", "{{tenant}}"),
                       (f"sum(rate(sluice_auth_refused_total[{R}]))", "refused by the guard")],
   "reqps", 12, desc="tenant is empty when the attempt named no stored tenant.")
y += 8
row("Tenant resources")
ts("Connections", [(f"sum by (tenant) (sluice_tenant_connections{{{T}}})", "{{tenant}}"),
                   (f"sum by (tenant, limit) (rate(sluice_connections_refused_total{{{T}}}[{R}]))", "refused {{tenant}} {{limit}}")],
   "short", 0, w=8)
ts("Partitions", [(f"max by (tenant) (sluice_tenant_partitions{{{T}}})", "{{tenant}}")], "short", 8, w=8)
ts("Storage", [(f"max by (tenant) (sluice_tenant_storage_bytes{{{T}}})", "{{tenant}}")], "bytes", 16, w=8,
   desc="DescribeLogDirs, largest replica per partition (replication not counted).")
y += 8
ts("Consumer lag (sum over partitions)", [(f"max by (tenant, group, topic) (sluice_consumer_group_lag{{{T}}})", "{{tenant}} {{group}} {{topic}}")],
   "short", 0, desc="Log end offset - committed offset, summed over the group's partitions of the topic (MSK SumOffsetLag).")
ts("Consumer lag (largest partition)", [(f"max by (tenant, group, topic) (sluice_consumer_group_max_lag{{{T}}})", "{{tenant}} {{group}} {{topic}}")],
   "short", 12)
y += 8
row("Gateway")
heatmap("Request latency (heatmap)", f'sum by (le) (increase(sluice_request_duration_seconds_bucket{{api=~"$api"}}[{R}]))', 0,
        desc="Gateway-side time from request read to response written, requests forwarded to the pool.")
ts("Request latency quantiles", [
    (f'histogram_quantile(0.5, sum by (le, api) (rate(sluice_request_duration_seconds_bucket{{api=~"$api"}}[{R}])))', "p50 {{api}}"),
    (f'histogram_quantile(0.99, sum by (le, api) (rate(sluice_request_duration_seconds_bucket{{api=~"$api"}}[{R}])))', "p99 {{api}}"),
], "s", 12)
y += 8
ts("Per-broker load (tenant bytes/s)", [(f"sum by (broker, direction) (rate(sluice_broker_bytes_total[{R}]))", "broker {{broker}} {{direction}}")],
   "Bps", 0, desc="Tenant record-batch bytes through each pool broker.")
ts("Placement", [("max(sluice_placement_imbalance)", "imbalance (max/mean broker load)"),
                 (f"sum(rate(sluice_placement_moves_total[{R}]))", "replica moves/s")],
   "short", 12)
y += 8

dash = {
    "title": "sluice",
    "uid": "sluice-gateway",
    "description": "sluice gateway: per-tenant usage, errors, quotas, lag, latency and per-broker load (docs/operations.md, Metrics)",
    "tags": ["sluice", "kafka"],
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "graphTooltip": 1,
    "time": {"from": "now-1h", "to": "now"},
    "refresh": "30s",
    "timezone": "",
    "annotations": {"list": []},
    "templating": {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "options": [], "regex": ""},
        {"name": "tenant", "label": "Tenant", "type": "query", "datasource": DS,
         "query": {"query": "label_values(sluice_tenant_requests_total, tenant)", "refId": "tenant"},
         "definition": "label_values(sluice_tenant_requests_total, tenant)",
         "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "options": [], "sort": 1, "hide": 0},
        {"name": "api", "label": "API", "type": "query", "datasource": DS,
         "query": {"query": "label_values(sluice_request_duration_seconds_count, api)", "refId": "api"},
         "definition": "label_values(sluice_request_duration_seconds_count, api)",
         "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "options": [], "sort": 1, "hide": 0},
    ]},
    "panels": panels,
}
with open(Path(__file__).resolve().parent / "sluice.json", "w") as f:
    json.dump(dash, f, indent=2)
    f.write("\n")
print(len(panels), "panels")
