#!/usr/bin/env bash
# A short cargo-fuzz run of the frame/header/rewrite target, seeded with real frames.
# Installs cargo-fuzz if missing. libFuzzer needs nightly flags; RUSTC_BOOTSTRAP lets
# the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_TO_RUN=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/frames
# Seeds: an ApiVersions v3 request and a Metadata v12 request (length-prefixed).
printf '\x00\x00\x00\x00\x1f\x00\x12\x00\x03\x00\x00\x00\x01\x00\x04test\x00\x06sluice\x021\x00' > corpus/frames/apiversions
printf '\x03\x00\x00\x00\x0f\x00\x03\x00\x0c\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00' > corpus/frames/metadata
export RUSTC_BOOTSTRAP=1
cargo fuzz run frames --sanitizer none corpus/frames -- -max_total_time="$SECONDS_TO_RUN" -max_len=4096
