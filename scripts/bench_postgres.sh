#!/usr/bin/env bash
# Build the release binaries and regenerate the PostgreSQL section of BENCHMARKS.md (see
# scripts/bench_postgres.py for the knobs). Needs Debian's postgresql package.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p kmip-server -p interop-tests --bins
exec python3 scripts/bench_postgres.py
