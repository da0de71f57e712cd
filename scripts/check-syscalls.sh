#!/usr/bin/env bash
# Checks a unit's SystemCallFilter against what the server really calls: runs kmip-server
# under strace from its first start (CA, master key, store) through TLS handshakes good and
# bad, kmip-ca's key generation, certification, listing, revocation and CRL, kmip-admin's
# inventory and a backup the server writes while it serves, the metrics and health endpoints, a reload (SIGHUP) and a stop (SIGTERM), then two starts with the master key sealed
# under a SoftHSM2 token (when installed), and fails if it made a system call the unit's
# filter denies.
#
#   scripts/check-syscalls.sh UNIT_FILE KMIP_SERVER KMIP_CA KMIP_ADMIN
set -euo pipefail
unit=$1 server=$2 ca=$3 admin=$4

work=$(mktemp -d)
pid=""
finish() {
  local rc=$?
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  [ "$rc" = 0 ] || tail -n 20 "$work/server.log" >&2 || true
  rm -rf "$work"
}
trap finish EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
https=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
metrics=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$work/data
strace -f -c -o "$work/strace.txt" -- "$server" --data-dir "$data" --listen "127.0.0.1:$port" \
  --https-listen "127.0.0.1:$https" --metrics-listen "127.0.0.1:$metrics" >"$work/server.log" 2>&1 &
tracer=$!
# the traced server's own pid (signals go to it: strace would take them for itself), once it
# listens
await_server() {
  for _ in $(seq 50); do
    pid=$(pgrep -P "$tracer" || true)
    [ -n "$pid" ] && break
    sleep 0.1
  done
  for _ in $(seq 100); do
    grep -q listening "$work/server.log" 2>/dev/null && break
    sleep 0.2
  done
  grep -q listening "$work/server.log"
}
await_server

kca() { "$ca" --server "127.0.0.1:$port" --data-dir "$data" --json "$@"; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)["'"$1"'"])'; }
root=$(kca init-root --subject "CN=Syscall Root" --out "$work/root.pem" | field id)
leaf=$(kca issue --issuer "$root" --profile server --subject "CN=localhost" \
  --out "$work/leaf.pem" | field id)
kca list >/dev/null
kca revoke "$leaf" --reason key-compromise >/dev/null
kca crl --issuer "$root" --out "$work/root.crl" >/dev/null
"$admin" --server "127.0.0.1:$port" --data-dir "$data" list --json >/dev/null
"$admin" --server "127.0.0.1:$port" --data-dir "$data" backup >/dev/null
# a client without a certificate: the refused handshake's path
openssl s_client -connect "127.0.0.1:$port" -CAfile "$data/tls/ca.pem" </dev/null \
  >/dev/null 2>&1 || true
openssl s_client -connect "127.0.0.1:$https" -CAfile "$data/tls/ca.pem" </dev/null \
  >/dev/null 2>&1 || true
for path in metrics healthz readyz; do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10).read()' \
    "http://127.0.0.1:$metrics/$path"
done
kill -HUP "$pid"
sleep 0.5
kca list >/dev/null
kill -TERM "$pid"
wait "$tracer"
pid=""
grep -q reloaded "$work/server.log"

# the master key sealed under a PKCS#11 token (SoftHSM2, when installed): the module runs in
# the server's process, so its system calls must pass the filter too. First start (the
# token's key made, the master key sealed under it), a client, a stop, and a second start
# that unseals through the token
softhsm=/usr/lib/softhsm/libsofthsm2.so
traces=("$work/strace.txt")
if [ -e "$softhsm" ] && command -v softhsm2-util >/dev/null; then
  mkdir -p "$work/hsm/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$work/hsm/tokens" \
    >"$work/hsm/softhsm2.conf"
  export SOFTHSM2_CONF=$work/hsm/softhsm2.conf
  softhsm2-util --init-token --free --label kmip --so-pin 87654321 --pin 12345678 >/dev/null
  (umask 077 && echo 12345678 >"$work/hsm/pin")
  for run in 1 2; do
    strace -f -c -o "$work/strace-pkcs11-$run.txt" -- "$server" --data-dir "$work/hsm-data" \
      --listen "127.0.0.1:$port" --seal pkcs11 --pkcs11-module "$softhsm" \
      --pkcs11-token kmip --pkcs11-pin-file "$work/hsm/pin" --pkcs11-key kmip-master \
      >"$work/server.log" 2>&1 &
    tracer=$!
    await_server
    "$admin" --server "127.0.0.1:$port" --data-dir "$work/hsm-data" list --json >/dev/null
    kill -TERM "$pid"
    wait "$tracer"
    pid=""
    traces+=("$work/strace-pkcs11-$run.txt")
  done
else
  echo "SoftHSM2 is not installed: the PKCS#11 seal's system calls are not checked" >&2
fi

# the syscalls the unit allows: its SystemCallFilter lines (an allow list, then ~ deny lists),
# with systemd's @groups expanded by systemd-analyze itself
systemd-analyze syscall-filter --no-pager 2>/dev/null >"$work/groups.txt"
python3 - "$unit" "$work/groups.txt" "${traces[@]}" <<'EOF'
import re, sys

unit, groups_file, strace_files = sys.argv[1], sys.argv[2], sys.argv[3:]
groups, current = {}, None
for line in open(groups_file):
    if line.startswith("@"):
        current = groups.setdefault(line.strip(), [])
    elif current is not None and line.strip() and not line.strip().startswith("#"):
        current.append(line.strip())


def expand(names):
    out = set()
    for n in names:
        out |= expand(groups[n]) if n.startswith("@") else {n}
    return out


allowed = None
for line in open(unit):
    m = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
    if not m:
        continue
    names = expand(m.group(2).split())
    if m.group(1):
        allowed = (allowed if allowed is not None else set()) - names
    else:
        allowed = names if allowed is None else allowed | names
if allowed is None:
    sys.exit(f"{unit} has no SystemCallFilter")

called = set()
for strace_file in strace_files:
    for line in open(strace_file):
        cols = line.split()
        # the rows of strace's table: "% time, seconds, usecs/call, calls, [errors,] syscall"
        if len(cols) >= 5 and re.fullmatch(r"[0-9.]+", cols[0]) and cols[-1] != "total":
            called.add(cols[-1])
denied = sorted(called - allowed)
print(f"system calls made: {len(called)} ({len(strace_files)} runs), all allowed by the unit" if not denied else "")
if denied:
    sys.exit(f"the unit's SystemCallFilter denies what the server called: {' '.join(denied)}")
EOF
