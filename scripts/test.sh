#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine with the Rust toolchain.
# It installs what it needs first: Debian packages, cargo-nextest, a Python virtual
# environment with PyKMIP (the reference client and an independent encoder).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*"; }

step "system packages"
missing=()
# the package step: dpkg-dev (cargo-deb's dependency list), systemd (systemd-analyze), man-db
# (the unit's Documentation=), strace (the unit's system call filter); softhsm2 (a PKCS#11
# token for the --seal pkcs11 tests); postgresql (the --store postgres:// tests start clusters of
# their own)
for p in pkg-config libssl-dev openssl python3-venv e2fsprogs mount util-linux \
  dpkg-dev systemd man-db strace softhsm2 postgresql; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

step "Python virtual environment with PyKMIP"
# prometheus-client: the Prometheus project's parser checks our metrics exposition
if [ ! -x target/pyvenv/bin/python ] || ! target/pyvenv/bin/python -c "import kmip, prometheus_client" 2>/dev/null; then
  mkdir -p target
  python3 -m venv target/pyvenv
  target/pyvenv/bin/pip install -q --disable-pip-version-check pykmip==0.11.0 testtools pytest prometheus-client
fi
export KMIP_PYTHON="$PWD/target/pyvenv/bin/python"
# PyKMIP's integration suite ships only in the sdist
if [ ! -d target/pykmip-src/pykmip-0.11.0/kmip/tests/integration ]; then
  mkdir -p target/pykmip-src
  target/pyvenv/bin/pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    pykmip==0.11.0 -d target/pykmip-src
  tar -xzf target/pykmip-src/pykmip-0.11.0.tar.gz -C target/pykmip-src
fi

step "cargo-nextest"
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "generated vocabulary is what the specification says"
if [ -d ../shared/kmip/spec ]; then
  python3 tools/gen_vocab.py ../shared/kmip/spec > target/vocab.rs
  python3 tools/gen_ops.py ../shared/kmip/spec > target/ops.rs
  python3 tools/gen_attributes.py ../shared/kmip/spec > target/attributes.rs
  rustfmt --edition 2021 target/vocab.rs target/ops.rs target/attributes.rs
  diff -q target/vocab.rs kmip-codec/src/vocab/generated.rs
  diff -q target/ops.rs kmip-codec/src/ops/generated.rs
  diff -q target/attributes.rs lifecycle/src/attributes/generated.rs
else
  # the specification text is not the project's to ship: a clone without it runs every
  # other check, and says plainly which one it did not run
  echo "SKIPPED: generated vocabulary not checked against the specification:" \
    "../shared/kmip/spec (the OASIS KMIP 1.4 and 2.1 specification text) is absent" >&2
fi

step "fuzz run (stable harness, ${FUZZ_SECONDS:-60}s per target)"
cargo build --release --locked -p interop-tests --bin kmip-fuzz
for t in ttlv xml json message dispatch; do
  target/release/kmip-fuzz "$t" --seconds "${FUZZ_SECONDS:-60}"
done

step "Debian package"
# after the fuzz step, whose release build leaves the two binaries to build: 15-20 s when
# they are up to date, about 3 min when they are not (one job on 2 shared cores)
scripts/package.sh

step "coverage-guided fuzzing (libFuzzer, ${FUZZ_SECONDS:-60}s per target)"
# structure-aware requests down to the cryptography (fuzz/fuzz_targets); cargo-fuzz wants a
# nightly compiler for its flags, which RUSTC_BOOTSTRAP lets the stable one take. New inputs go
# to a copy, so that the committed corpus changes only when someone means it to
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
for t in dispatch_structured; do
  rm -rf "target/fuzz-corpus-$t" && mkdir -p "target/fuzz-corpus-$t"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$t" "target/fuzz-corpus-$t" "fuzz/corpus/$t" -- \
    -max_total_time="${FUZZ_SECONDS:-60}" -rss_limit_mb=2048
done

step "tests"
# the interoperability tests start the kmip-server binary: build it first
cargo build --workspace --bins --locked
cargo nextest run --workspace --locked --no-fail-fast

step "doc tests: the key wall"
# nextest does not run doc tests; the compile_fail examples in lifecycle/src/core/mod.rs show
# that nothing outside the core reaches plaintext keys (with tests/core_api.rs, run above)
cargo test --doc --locked -p lifecycle
