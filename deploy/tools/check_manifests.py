"""Structural checks of the deploy/ artifacts that no linter knows about.

Used by deploy/check-artifacts.sh (run with its tool venv: PyYAML, dockerfile-parse).
Each subcommand prints one line per failed expectation and exits 1 if there was any.

  unit FILE TOML                 the systemd unit against the example config
  containerfile FILE IGNORE TOML the Containerfile against the repo and the example config
  context FILE IGNORE OUTDIR     copies the files the Containerfile's COPY steps take
  chart RENDERED VALUES...       helm template output against the values it came from
"""
import fnmatch
import re
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Gateway default of [listener] drain_timeout_ms (docs/operations.md).
DEFAULT_DRAIN_MS = 30000
# Each client connection holds two descriptors (client + upstream); the unit must hold
# 3000 connections (the default per-tenant cap) for at least this many tenants.
TENANTS_AT_CAP = 64

errors: list[str] = []


def expect(cond, msg):
    if not cond:
        errors.append(msg)


def unit_settings(path):
    settings: dict[str, list[str]] = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def seconds(value):
    m = re.fullmatch(r"(\d+)(s|sec|min)?", value)
    if not m:
        raise ValueError(value)
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def check_unit(unit, toml_path):
    s = unit_settings(unit)
    cfg = tomllib.loads(Path(toml_path).read_text())
    one = lambda k: (s.get(k) or [""])[-1]
    expect(one("User") not in ("", "root", "0"), f"User= must name a dedicated user, is {one('User')!r}")
    expect(one("Restart") == "on-failure", f"Restart= is {one('Restart')!r}, want on-failure")
    expect(one("NoNewPrivileges") == "yes", "NoNewPrivileges=yes missing")
    expect(one("ProtectSystem") == "strict", "ProtectSystem=strict missing")
    expect(re.search(r"\bsluice serve --config /etc/sluice/sluice.toml$", one("ExecStart")),
           f"ExecStart= does not run `sluice serve --config /etc/sluice/sluice.toml`: {one('ExecStart')!r}")
    drain_ms = cfg.get("listener", {}).get("drain_timeout_ms", DEFAULT_DRAIN_MS)
    stop = seconds(one("TimeoutStopSec") or "90")
    expect(stop * 1000 > drain_ms + 5000,
           f"TimeoutStopSec={stop}s leaves no margin over the drain timeout ({drain_ms} ms)")
    nofile = one("LimitNOFILE").split(":")[-1]
    want = 2 * 3000 * TENANTS_AT_CAP
    expect(nofile == "infinity" or (nofile.isdigit() and int(nofile) >= want),
           f"LimitNOFILE={nofile} is below {want} (2 fds x 3000 connections x {TENANTS_AT_CAP} tenants)")
    key_file = cfg.get("issuer", {}).get("key_file")
    if key_file:
        key_dir = str(Path(key_file).parent)
        writable = [p.lstrip("-") for v in s.get("ReadWritePaths", []) for p in v.split()]
        state = ["/var/lib/" + p for v in s.get("StateDirectory", []) for p in v.split()]
        expect(any(key_dir == w or key_dir.startswith(w.rstrip("/") + "/") for w in writable + state),
               f"the issuer key dir {key_dir} is not writable (ReadWritePaths=/StateDirectory=)")


def dockerignore_admits(patterns, path):
    """Docker's rule: the last matching pattern wins; '!' re-includes."""
    admitted = True
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        rx = re.escape(pat.strip("/")).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if re.fullmatch(rx, path) or re.fullmatch(rx + "/.*", path):
            admitted = neg
    return admitted


def ignore_patterns(path):
    return [l.strip() for l in Path(path).read_text().splitlines() if l.strip() and not l.startswith("#")]


def parse_containerfile(path):
    from dockerfile_parse import DockerfileParser
    import io
    dfp = DockerfileParser(fileobj=io.BytesIO(Path(path).read_bytes()))
    return dfp, dfp.structure


def copy_sources(structure):
    for ins in structure:
        if ins["instruction"] != "COPY":
            continue
        args = ins["value"].split()
        if any(a.startswith("--from") for a in args):
            continue
        args = [a for a in args if not a.startswith("--")]
        yield ins, args[:-1], args[-1]


def check_containerfile(path, ignore, toml_path):
    dfp, structure = parse_containerfile(path)
    patterns = ignore_patterns(ignore)
    froms = [i for i in structure if i["instruction"] == "FROM"]
    expect(len(froms) >= 2, "not a multi-stage build")
    if froms:
        expect("rust:" in froms[0]["value"], f"build stage is not the Rust image: {froms[0]['value']}")
        expect(re.search(r"debian:\S*slim", froms[-1]["value"]), f"runtime stage is not Debian slim: {froms[-1]['value']}")
    last_from = max(i["startline"] for i in froms) if froms else 0
    final = [i for i in structure if i["startline"] > last_from]
    users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
    expect(users and users[-1] not in ("root", "0"), f"runtime stage does not switch to a non-root user: {users}")
    cfg = tomllib.loads(Path(toml_path).read_text())
    admin_port = int(cfg["admin"]["bind"].rsplit(":", 1)[1])
    want_ports = {cfg["listener"]["bootstrap_port"], admin_port} | {cfg["listener"]["broker_port_base"] + n for n in (1, 2, 3)}
    exposed = {int(p.split("/")[0]) for i in final if i["instruction"] == "EXPOSE" for p in i["value"].split()}
    expect(want_ports <= exposed, f"EXPOSE lacks {sorted(want_ports - exposed)} (bootstrap, brokers 1-3, admin of deploy/systemd/sluice.toml)")
    health = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
    expect(health and f"127.0.0.1:{admin_port}/live" in health[-1], f"HEALTHCHECK does not probe /live on the admin port {admin_port}: {health}")
    entry = " ".join(i["value"] for i in final if i["instruction"] in ("ENTRYPOINT", "CMD"))
    expect("sluice" in entry and "serve" in entry and "/etc/sluice/sluice.toml" in entry, f"ENTRYPOINT/CMD do not run sluice serve: {entry}")
    copied = set()
    for ins, sources, _dest in copy_sources(structure):
        for src in sources:
            p = ROOT / src
            expect(p.exists(), f"line {ins['startline'] + 1}: COPY {src}: no such file in the repository")
            files = [src.rstrip("/")] if p.is_file() else [
                f.relative_to(ROOT).as_posix() for f in p.rglob("*") if f.is_file() and "target" not in f.relative_to(ROOT).parts]
            left_out = [f for f in files if not dockerignore_admits(patterns, f)]
            expect(files and not left_out, f"line {ins['startline'] + 1}: COPY {src}: {len(left_out)} file(s) excluded by {Path(ignore).name}, e.g. {left_out[:2]}")
            copied.add(src.rstrip("/"))
    ws = tomllib.loads((ROOT / "Cargo.toml").read_text())
    needed = set(ws["workspace"]["members"]) | {"Cargo.toml", "Cargo.lock"}
    for patch in ws.get("patch", {}).values():
        for dep in patch.values():
            if isinstance(dep, dict) and "path" in dep:
                needed.add(dep["path"].split("/")[0])
    expect(needed <= copied, f"the build stage does not COPY {sorted(needed - copied)} (workspace members, lock file, patched crates)")


def build_context(path, ignore, out):
    """The files the build stage sees: COPY sources filtered by the ignore file."""
    _dfp, structure = parse_containerfile(path)
    patterns = ignore_patterns(ignore)
    out = Path(out)
    for _ins, sources, _dest in copy_sources(structure):
        for src in sources:
            base = ROOT / src
            files = [base] if base.is_file() else [f for f in base.rglob("*") if f.is_file()]
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                if "/target/" in f"/{rel}" or not dockerignore_admits(patterns, rel):
                    continue
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, out / rel)


def check_chart(rendered, value_files):
    import yaml
    values = {}
    for vf in value_files:
        for k, v in (yaml.safe_load(Path(vf).read_text()) or {}).items():
            values[k] = {**values.get(k, {}), **v} if isinstance(v, dict) and isinstance(values.get(k), dict) else v
    docs = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    ports, ids = values["ports"], values["brokerIds"]
    for kind in ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget"):
        expect(kind in by_kind, f"no {kind} rendered")
    if errors:
        return
    dep = by_kind["Deployment"][0]
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    expect(dep["spec"]["replicas"] == values["replicaCount"], "replicas do not follow replicaCount")
    cports = {p["name"]: p["containerPort"] for p in c["ports"]}
    want = {"kafka": ports["bootstrap"], "admin": ports["admin"], **{f"broker-{i}": ports["brokerBase"] + i for i in ids}}
    expect(want.items() <= cports.items(), f"container ports {cports} lack {want}")
    expect(c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}, f"readiness probe: {c['readinessProbe']}")
    expect(c["livenessProbe"]["httpGet"] == {"path": "/live", "port": "admin"}, f"liveness probe: {c['livenessProbe']}")
    ann = pod["metadata"].get("annotations", {})
    expect(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(ports["admin"])
           and ann.get("prometheus.io/path") == "/metrics", f"scrape annotations: {ann}")
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    expect(grace > values["drainTimeoutSeconds"] + values["preStopSleepSeconds"],
           f"terminationGracePeriodSeconds {grace} does not cover preStop + drain")
    sc = pod["spec"]["securityContext"]
    expect(sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) != 0, f"pod may run as root: {sc}")
    kafka = [s for s in by_kind["Service"] if any(p["name"] == "kafka" for p in s["spec"]["ports"])]
    expect(len(kafka) == 1, "no single Service with the kafka port")
    if kafka:
        sports = {p["name"]: p["port"] for p in kafka[0]["spec"]["ports"]}
        svc_want = {k: v for k, v in want.items() if k != "admin"}
        expect(svc_want.items() <= sports.items(), f"Service ports {sports} lack {svc_want}")
        expect(kafka[0]["spec"]["selector"].items() <= pod["metadata"]["labels"].items(), "Service does not select the pods")
    pdb = by_kind["PodDisruptionBudget"][0]
    expect(pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(), "PDB does not select the pods")
    toml = tomllib.loads(by_kind["ConfigMap"][0]["data"]["sluice.toml"])
    lst = toml["listener"]
    expect(lst["advertised_host"] == values["advertisedHost"] and lst["bootstrap_port"] == ports["bootstrap"]
           and lst["broker_port_base"] == ports["brokerBase"] and lst["bind_host"] == "0.0.0.0", f"[listener]: {lst}")
    expect(toml["admin"]["bind"] == f"0.0.0.0:{ports['admin']}", f"[admin] bind: {toml['admin']}")
    expect(toml["pool"]["bootstrap"] == values["pool"]["bootstrap"], f"[pool] bootstrap: {toml['pool']}")
    drain = lst.get("drain_timeout_ms", DEFAULT_DRAIN_MS)
    expect(drain == values["drainTimeoutSeconds"] * 1000, f"drain_timeout_ms {drain} != drainTimeoutSeconds")
    if values.get("issuer", {}).get("enabled", True):
        key = toml.get("issuer", {}).get("key_file", "")
        mounts = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
        expect(str(Path(key).parent) in mounts, f"issuer key {key} is not in a writable mount ({mounts})")
        if not values["issuer"].get("existingSecret"):
            secret = by_kind.get("Secret", [{}])[0].get("data", {})
            expect("issuer.pem" in secret, "Secret has no issuer.pem")
    creds = {k: v for k, v in values.get("pool", {}).get("credentials", {}).items() if v}
    if creds:
        secret = by_kind.get("Secret", [{}])[0].get("data", {})
        expect(len([k for k in secret if k.startswith("pool-")]) == len(creds), f"Secret pool keys {list(secret)} vs {list(creds)}")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "unit":
        check_unit(*args)
    elif cmd == "containerfile":
        check_containerfile(*args)
    elif cmd == "context":
        build_context(*args)
    elif cmd == "chart":
        check_chart(args[0], args[1:])
    else:
        sys.exit(f"unknown subcommand {cmd}")
    for e in errors:
        print(f"  {cmd}: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
