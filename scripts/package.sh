#!/usr/bin/env bash
# Builds the Debian package (target/debian/kmip-server_*.deb) and checks it: the binaries, man
# pages, shell completions, configuration and systemd unit are in it, the configuration is a
# conffile, the dependencies are declared, and systemd accepts the unit (`verify`, an exposure
# score of at most 2.5, and a system call filter that allows what the server calls).
#
# cargo-deb has no step of its own for generated files: the man pages and completions are
# written here, from the release binaries, before `cargo deb` packs them.
#
#   scripts/package.sh [CARGO_DEB_OPTIONS...]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb

cargo build --release --locked -p kmip-server -p ca-tooling -p admin-tooling --bins
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
generated=kmip-server/debian/generated
rm -rf "$generated"
"$target_dir/release/kmip-server" generate-docs "$generated"
"$target_dir/release/kmip-ca" generate-docs "$generated"
"$target_dir/release/kmip-admin" generate-docs "$generated"

# stripped: the release profile keeps line tables for the developers' backtraces, which would
# make the package four times as large
deb=$(cargo deb -p kmip-server --no-build --strip "$@" | tail -n 1)
[ -f "$deb" ] || { echo "cargo deb printed no package: $deb" >&2; exit 1; }

fail() { echo "package check failed: $*" >&2; exit 1; }
contents=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|')
expected=(
  /usr/bin/kmip-server
  /usr/bin/kmip-ca
  /usr/bin/kmip-admin
  /etc/kmip-server/kmip.toml
  /usr/share/man/man1/kmip-server.1.gz
  /usr/share/man/man1/kmip-server-client-cert.1.gz
  /usr/share/man/man1/kmip-server-audit-verify.1.gz
  /usr/share/man/man1/kmip-ca.1.gz
  /usr/share/man/man1/kmip-ca-issue.1.gz
  /usr/share/man/man1/kmip-admin.1.gz
  /usr/share/man/man1/kmip-admin-list.1.gz
  /usr/share/bash-completion/completions/kmip-server
  /usr/share/bash-completion/completions/kmip-ca
  /usr/share/bash-completion/completions/kmip-admin
  /usr/share/zsh/vendor-completions/_kmip-server
  /usr/share/zsh/vendor-completions/_kmip-ca
  /usr/share/zsh/vendor-completions/_kmip-admin
  /usr/share/fish/vendor_completions.d/kmip-server.fish
  /usr/share/fish/vendor_completions.d/kmip-ca.fish
  /usr/share/fish/vendor_completions.d/kmip-admin.fish
  /usr/share/doc/kmip-server/configuration.md
)
for f in "${expected[@]}"; do
  grep -qx "$f" <<<"$contents" || fail "$f is not in $deb"
done
unit=$(grep -E '^(/usr)?/lib/systemd/system/kmip-server\.service$' <<<"$contents") ||
  fail "no kmip-server.service in $deb"
! grep -q generate-docs <<<"$contents" || fail "the hidden generate-docs has a man page"

dpkg-deb -I "$deb" conffiles | grep -qx /etc/kmip-server/kmip.toml ||
  fail "/etc/kmip-server/kmip.toml is not a conffile"
depends=$(dpkg-deb -I "$deb" control | sed -n 's/^Depends: //p')
for d in libc6 libssl3 passwd; do
  grep -q "\b$d" <<<"$depends" || fail "Depends ($depends) lacks $d"
done

# what the package installs, checked where it is unpacked
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
"$root/usr/bin/kmip-server" --help >/dev/null
"$root/usr/bin/kmip-ca" --help >/dev/null
"$root/usr/bin/kmip-admin" --help >/dev/null
zcat "$root/usr/share/man/man1/kmip-server.1.gz" | grep -q -- 'data\\-dir' ||
  fail "kmip-server.1 does not document --data-dir"
grep -q -- '--data-dir' "$root/usr/share/bash-completion/completions/kmip-server" ||
  fail "the bash completion does not complete --data-dir"
# the default configuration is one the server reads (every key an option, every value valid);
# hash-password parses the whole command line and touches no file
echo probe | "$root/usr/bin/kmip-server" --config "$root/etc/kmip-server/kmip.toml" \
  hash-password >/dev/null || fail "kmip-server does not read the packaged kmip.toml"

# systemd checks that ExecStart and the Documentation= man page exist: verify the unit as
# installed, with ExecStart pointing at the unpacked binary and man finding the unpacked pages
verify=$(mktemp -d)
trap 'rm -rf "$root" "$verify"' EXIT
sed "s|/usr/bin/kmip-server|$root/usr/bin/kmip-server|" "$root$unit" >"$verify/kmip-server.service"
MANPATH="$root/usr/share/man" systemd-analyze verify "$verify/kmip-server.service"
# how much of the system the service is exposed to, as systemd scores it (0 is none, 10 all)
exposure=$(systemd-analyze security --offline=true --no-pager "$verify/kmip-server.service" |
  sed -n 's/.*Overall exposure level for kmip-server.service: \([0-9.]*\).*/\1/p')
echo "systemd exposure level: ${exposure:-unknown}"
awk -v e="${exposure:-10}" 'BEGIN { exit !(e <= 2.5) }' ||
  fail "the unit's exposure level ${exposure:-unknown} is above 2.5"

# the unit's system call filter against what the packaged server really calls
scripts/check-syscalls.sh "$verify/kmip-server.service" "$root/usr/bin/kmip-server" \
  "$root/usr/bin/kmip-ca" "$root/usr/bin/kmip-admin"

echo "package: $deb ($(du -h "$deb" | cut -f1)), $(wc -l <<<"$contents") entries, checked"
