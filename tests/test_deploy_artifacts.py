"""deploy/check-artifacts.sh: the systemd unit, Containerfile and Helm chart pass their
checks, and the checks catch broken artifacts.

The script installs its tools on first use (helm through the Go module proxy takes a
few minutes once; later runs take seconds). A test is skipped only when the script
says a tool could not be installed (exit 2), naming it.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "check-artifacts.sh"
SLUICE_BIN = Path(os.environ.get("SLUICE_BIN", ROOT / "target" / "debug" / "sluice"))
TOOLS = ROOT / "deploy" / ".cache" / "tools"

# Every check the script must run and pass on the committed artifacts (prefixes of
# its PASS lines).
EXPECTED = [
    "sluice.service: unit policy",
    "deploy/systemd/sluice.toml: sluice check-config",
    "sluice.service: systemd-analyze verify",
    "sluice.service: systemd-analyze security exposure",
    "Containerfile: hadolint",
    "Containerfile: stages, non-root user",
    "Containerfile: build context resolves",
    "helm lint --strict (full values)",
    "helm lint --strict (minimal values)",
    "full: helm template",
    "full: kubernetes-validate --strict",
    "full: k8s-validate",
    "full: chart expectations",
    "full: rendered sluice.toml passes sluice check-config",
    "minimal: helm template",
    "minimal: kubernetes-validate --strict",
    "minimal: k8s-validate",
    "minimal: chart expectations",
    "minimal: rendered sluice.toml passes sluice check-config",
    "helm template refuses a missing advertisedHost",
    "helm template refuses a broker port that clashes",
    "helm template refuses a missing issuer key",
    "NOTES.txt renders",
    "drainTimeoutSeconds=60 renders",
]


def run_script(script: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = dict(os.environ, SLUICE_BIN=str(SLUICE_BIN), SLUICE_DEPLOY_TOOLS=str(TOOLS))
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=timeout, env=env)
    # CI installs everything: a tool that cannot be installed is a failure, not a skip.
    if proc.returncode == 2:
        reasons = [l for l in proc.stdout.splitlines() if l.startswith("SKIP")]
        pytest.fail("a deploy check tool could not be installed: " + "; ".join(reasons))
    return proc


def lines(proc, status):
    return [l[len(status) + 1:] for l in proc.stdout.splitlines() if l.startswith(status + " ")]


@pytest.fixture(scope="module")
def committed_run():
    if not SLUICE_BIN.exists():
        pytest.fail(f"no sluice binary at {SLUICE_BIN}: cargo build -p sluice-gateway first")
    return run_script(SCRIPT)


def test_every_artifact_check_passes(committed_run):
    proc = committed_run
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    passed = lines(proc, "PASS")
    for name in EXPECTED:
        assert any(p.startswith(name) for p in passed), f"check {name!r} did not pass:\n{out}"
    assert not lines(proc, "FAIL") and not lines(proc, "SKIP"), out
    m = re.search(r"check-artifacts: (\d+) checks passed, (\d+) failed, (\d+) skipped", proc.stdout)
    assert m and (int(m[1]), int(m[2]), int(m[3])) == (len(passed), 0, 0), out
    exposure = re.search(r"Overall exposure level for sluice.service: ([\d.]+)", proc.stdout)
    assert exposure and float(exposure[1]) <= 2.0, out


@pytest.fixture()
def scratch_repo(tmp_path, committed_run):
    """The files the checks read, copied (sources only: no target/, no pool data)."""
    for name in ("Cargo.toml", "Cargo.lock"):
        shutil.copy2(ROOT / name, tmp_path / name)
    skip = shutil.ignore_patterns("target", ".cache", ".pool", "__pycache__")
    for d in ("gateway", "tenancy", "quota", "placement", "loadtest", "vendor"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=skip, symlinks=True)
    (tmp_path / "deploy").mkdir()
    for d in ("systemd", "container", "helm", "tools", "examples"):
        shutil.copytree(ROOT / "deploy" / d, tmp_path / "deploy" / d, ignore=skip)
    shutil.copy2(SCRIPT, tmp_path / "deploy" / "check-artifacts.sh")
    return tmp_path


def mutate(path: Path, old: str, new: str):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_broken_artifacts_are_caught(scratch_repo):
    d = scratch_repo / "deploy"
    # systemd: a stop timeout shorter than the drain, and an unknown directive.
    mutate(d / "systemd" / "sluice.service", "TimeoutStopSec=45", "TimeoutStopSec=20\nRestartSecs=2")
    # container: runs as root; a COPY of a directory that does not exist.
    mutate(d / "container" / "Containerfile", "USER 10001:10001", "USER root")
    mutate(d / "container" / "Containerfile", "COPY quota ./quota", "COPY quotas ./quota")
    # chart: the Service loses its per-broker ports; a probe points at a port name
    # the container does not have; the config gets a key sluice refuses.
    mutate(d / "helm" / "sluice" / "templates" / "service.yaml", "{{- range .Values.brokerIds }}", "{{- range list }}")
    mutate(d / "helm" / "sluice" / "templates" / "deployment.yaml", "path: {{ .Values.probes.liveness.path }}\n              port: admin",
           "path: {{ .Values.probes.liveness.path }}\n              port: metrics")
    mutate(d / "helm" / "ci" / "values-minimal.yaml", "brokerIds:", "config:\n  limits:\n    max_frames: 1\nbrokerIds:")

    proc = run_script(d / "check-artifacts.sh")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    failed = lines(proc, "FAIL")
    for name in [
        "sluice.service: unit policy",
        "sluice.service: systemd-analyze verify",
        "Containerfile: hadolint",  # DL3002: last USER should not be root
        "Containerfile: stages, non-root user",
        "full: chart expectations",
        "full: k8s-validate",
        "minimal: rendered sluice.toml passes sluice check-config",
    ]:
        assert any(f.startswith(name) for f in failed), f"{name!r} should have failed:\n{out}"
    assert "TimeoutStopSec=20s leaves no margin" in out, out
    assert "RestartSecs" in out, out
    assert "COPY quotas: no such file" in out, out
    assert "liveness probe port \"metrics\"" in out, out
    assert "max_frames" in out, out
    # What was not broken still passes.
    assert any(p.startswith("minimal: kubernetes-validate") for p in lines(proc, "PASS")), out
