#!/usr/bin/env bash
# Installs what the client-compatibility tests need (kcat, prometheus, the Python
# clients and pytest, the franz-go program). Idempotent: safe to run on every CI run.
# Usage: tests/setup.sh            (from anywhere)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "tests/setup.sh: $*" >&2; }

# kcat (librdkafka CLI) from Debian.
if ! command -v kcat >/dev/null 2>&1 && ! command -v kafkacat >/dev/null 2>&1; then
    log "installing kcat"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq kcat >/dev/null
fi

# Prometheus (test_metrics.py scrapes the gateway with a real server); only the binary is
# used, so the recommended exporters are left out.
if ! command -v prometheus >/dev/null 2>&1; then
    log "installing prometheus"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# Maven fetches the peer proxy of `loadtest compare` (Kroxylicious) in the loadtest smoke.
if ! command -v mvn >/dev/null 2>&1; then
    log "installing maven"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends maven >/dev/null
fi

# openssl makes the pool's certificates (deploy/pool.sh, secured listeners) and test_tls's.
if ! command -v openssl >/dev/null 2>&1; then
    log "installing openssl"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi

# The TLS tests reach the gateway by SNI names (test_tls.py): they must resolve to localhost.
tls_names="bootstrap.sluice.test broker-1.sluice.test broker-2.sluice.test broker-3.sluice.test broker-4.sluice.test"
missing=0
for n in $tls_names; do
    getent hosts "$n" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 1 ]; then
    log "adding the sluice.test names to /etc/hosts"
    echo "127.0.0.1 $tls_names" >>/etc/hosts
fi

# Python clients and pytest, pinned.
py="${PYTHON:-python3}"
if ! "$py" - "$here/requirements.txt" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    if version(name) != want:
        sys.exit(1)
EOF
then
    log "installing Python test requirements"
    "$py" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
fi

# schemathesis (test_admin_api.py) in a venv of its own: its pytest plugin and pinned
# hypothesis must not mix with the suite's own environment.
st_venv="$here/.venv-schemathesis"
if [ ! -x "$st_venv/bin/schemathesis" ]; then
    log "installing schemathesis"
    "$py" -m venv "$st_venv"
    "$st_venv/bin/pip" install -q --disable-pip-version-check schemathesis==4.32.5
fi

# The franz-go program (tests/go/bin is ignored by git; test_franz_go.py rebuilds it too).
if command -v go >/dev/null 2>&1; then
    (cd "$here/go" && go mod download && go build -o bin/franzcheck ./franzcheck)
else
    log "go not found: the franz-go tests will fail"
    exit 1
fi
log "ok"
