#!/usr/bin/env bash
# Instructions per produce request through the gateway's hot path, counted by callgrind:
# a figure that repeats run after run, unlike wall-clock time on a shared machine.
#
# Runs gateway/examples/produce_instructions.rs (one Produce v11 of 3 partitions × 16 KiB
# and its answer through split, header parse, tenant admit, quota charge, reframe and the
# response mapping; no socket I/O) under `valgrind --tool=callgrind`, collecting only
# inside its `one_request` function, at two request counts. The difference divided by the
# difference in requests is the steady-state cost (first-use initialisation cancels out).
#
# Prerequisite: valgrind (Debian/Ubuntu: `apt-get install -y valgrind`).
# Usage: loadtest/callgrind.sh [N1 N2]   (default 200 1200)
# Prints `memcpy_instructions_per_request=<n>` (the part inside libc's memcpy) and
# `instructions_per_request=<n>` last; set CALLGRIND_TOP=<k> for the k most
# expensive functions (inclusive) of the larger run.
set -euo pipefail
cd "$(dirname "$0")/.."

n1=${1:-200}
n2=${2:-1200}
if ! command -v valgrind >/dev/null; then
    echo "callgrind.sh: valgrind not found; install it (apt-get install -y valgrind)" >&2
    exit 1
fi
cargo build -q -p sluice-gateway --release --example produce_instructions
bin=target/release/examples/produce_instructions
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Total instructions (Ir) collected in one_request over n requests.
count() {
    valgrind --tool=callgrind --toggle-collect='*one_request*' \
        --callgrind-out-file="$out/callgrind.$1" "$bin" "$1" >"$out/log.$1" 2>&1 \
        || { cat "$out/log.$1" >&2; exit 1; }
    awk '/^(summary|totals):/ { print $2; exit }' "$out/callgrind.$1"
}

# Of which in libc's memcpy/memmove (exclusive). glibc copies large blocks with
# `rep movsb`, which callgrind counts once per byte moved, so this part is really a
# count of bytes copied.
copies() {
    callgrind_annotate "$out/callgrind.$1" 2>/dev/null \
        | awk '/mem(cpy|move)/ { gsub(",", "", $1); sum += $1 } END { print sum + 0 }'
}

ir1=$(count "$n1")
ir2=$(count "$n2")
per=$(( (ir2 - ir1) / (n2 - n1) ))
mc1=$(copies "$n1")
mc2=$(copies "$n2")
copy_per=$(( (mc2 - mc1) / (n2 - n1) ))
# Of which spent growing buffers (realloc and the copy it makes), inclusive.
growth() {
    callgrind_annotate --inclusive=yes "$out/callgrind.$1" 2>/dev/null \
        | awk '/__rust_realloc/ && !found { gsub(",", "", $1); n = $1 + 0; found = 1 } END { print n + 0 }'
}
rg1=$(growth "$n1")
rg2=$(growth "$n2")
realloc_per=$(( (rg2 - rg1) / (n2 - n1) ))
echo "valgrind: $(valgrind --version); binary: $bin"
echo "requests=$n1 instructions=$ir1 ($(( ir1 / n1 ))/request including first-use costs)"
echo "requests=$n2 instructions=$ir2 ($(( ir2 / n2 ))/request including first-use costs)"
if [[ -n "${CALLGRIND_TOP:-}" ]]; then
    callgrind_annotate --inclusive=yes "$out/callgrind.$n2" 2>/dev/null | sed -n '/^Ir/,$p' | head -n "$(( CALLGRIND_TOP + 2 ))" || true
fi
echo "memcpy_instructions_per_request=$copy_per"
echo "realloc_instructions_per_request=$realloc_per"
echo "instructions_per_request=$per"
