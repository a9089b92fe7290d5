#!/bin/sh
# security.sh - the unit's sandbox as `systemd-analyze security` rates it
# offline (from the unit file alone): the overall exposure must stay at or
# below 1.5 (0 = fully locked down, 10 = unprotected).
# Exit 77 (skip) without systemd-analyze or without --offline (< v250).
set -u

max=1.5
if [ -z "${SYSTEMD_ANALYZE:-}" ]; then
    echo "SKIP: systemd-analyze not found"
    exit 77
fi
unit="${top_builddir:-.}/systemd/bitcached.service"
if [ ! -f "$unit" ]; then
    echo "FAIL: $unit not built"
    exit 1
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cp "$unit" "$tmp/bitcached.service"

"$SYSTEMD_ANALYZE" security --offline=true --no-pager \
        "$tmp/bitcached.service" >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
if grep -q 'unrecognized option' "$tmp/out"; then
    echo "SKIP: this systemd-analyze has no --offline"
    exit 77
fi
level=$(sed -n 's/.*Overall exposure level for bitcached.service: \([0-9.]*\).*/\1/p' "$tmp/out")
if [ -z "$level" ]; then
    echo "FAIL: no exposure level in the output (exit $rc)"
    exit 1
fi
if awk -v l="$level" -v m="$max" 'BEGIN { exit !(l + 0 <= m + 0) }'; then
    echo "PASS: exposure $level <= $max"
    exit 0
fi
echo "FAIL: exposure $level > $max"
exit 1
