#!/bin/sh
# verify.sh - `systemd-analyze verify` on the built service unit: syntax,
# known directives, an executable ExecStart, and a Documentation= man page
# that exists. The unit's paths point at the install location, so a copy is
# verified with ExecStart pointing at the built binary (or at a stand-in
# when it is not built yet) and MANPATH at the source tree's man page.
# Exit 77 (skip) without systemd-analyze.
set -u

if [ -z "${SYSTEMD_ANALYZE:-}" ]; then
    echo "SKIP: systemd-analyze not found"
    exit 77
fi
unit="${top_builddir:-.}/systemd/bitcached.service"
man="${top_srcdir:-.}/server/bitcached.1"
if [ ! -f "$unit" ]; then
    echo "FAIL: $unit not built"
    exit 1
fi
if grep -n '@[a-z_]*@' "$unit"; then
    echo "FAIL: unsubstituted variables in $unit"
    exit 1
fi
if ! grep -q '^ExecStart=/[^ ]*/bitcached --config=/[^ ]*/bitcached.conf ' "$unit"; then
    echo "FAIL: unexpected ExecStart in $unit:"
    grep '^ExecStart=' "$unit"
    exit 1
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

bin="${BITCACHED:-}"
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "note: no built server binary yet, verifying with a stand-in"
    bin="$tmp/bitcached"
    printf '#!/bin/sh\nexit 0\n' >"$bin"
    chmod +x "$bin"
fi
sed -e "s|^ExecStart=[^ ]*|ExecStart=$bin|" "$unit" >"$tmp/bitcached.service"

manopt=--man=yes
if command -v man >/dev/null 2>&1; then
    mkdir -p "$tmp/man/man1"
    cp "$man" "$tmp/man/man1/bitcached.1"
    MANPATH="$tmp/man"
    export MANPATH
else
    echo "note: man(1) not installed, Documentation= not checked"
    manopt=--man=no
fi

"$SYSTEMD_ANALYZE" verify "$manopt" "$tmp/bitcached.service" >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
if [ "$rc" -ne 0 ]; then
    echo "FAIL: systemd-analyze verify exited $rc"
    exit 1
fi
# Warnings about our unit do not change the exit status: fail on them too.
if grep -q 'bitcached\.service' "$tmp/out"; then
    echo "FAIL: systemd-analyze verify reported problems with the unit"
    exit 1
fi
echo "PASS: systemd-analyze verify"
exit 0
