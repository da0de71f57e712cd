#!/usr/bin/env bash
# Build the release binaries and regenerate BENCHMARKS.md (see scripts/bench.py for the knobs:
# DURATION, WARMUP, CONNECTIONS, OBJECTS, PYKMIP, OUT). PyKMIP's server comes from the
# virtualenv scripts/test.sh creates (target/pyvenv); without it that column is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p kmip-server -p interop-tests --bins
exec python3 scripts/bench.py
