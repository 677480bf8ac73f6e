#!/usr/bin/env bash
# `cmake --install` (docs/operations.md): installs the binaries, the man page help2man made
# from `doppel --help`, the docs and the example unit file under a prefix. Usage:
# install_test.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
fail() { echo "install_test: $*" >&2; exit 1; }
for f in bin/doppel bin/doppel-echo; do
  [ -x "$prefix/$f" ] || fail "$f not installed (or not executable)"
done
"$prefix/bin/doppel" --version | grep -q '^doppel ' || fail "installed doppel --version failed"
man=$prefix/share/man/man1/doppel.1
[ -s "$man" ] || fail "no man page at share/man/man1/doppel.1"
grep -q '^\.TH DOPPEL "1"' "$man" || fail "doppel.1 is not a man page: $(head -3 "$man")"
for cmd in record replay sessions; do
  grep -q "$cmd" "$man" || fail "doppel.1 does not mention '$cmd'"
done
for f in README.md architecture.md chaos.md security.md operations.md examples/doppel-record.service; do
  [ -s "$prefix/share/doc/doppel/$f" ] || fail "share/doc/doppel/$f not installed"
done
echo "install_test: binaries, man page and docs installed under a prefix"
