#!/bin/sh
# bench_admin.sh - bitcached-admin figures (not part of make check): load
# rate of a generated dump of KEYS keys (default 1000000, 100-byte values,
# 16 shards), then check and dump throughput in MB/s of segment bytes read.
# Prints name=value lines. Uses $BITCACHED_ADMIN, else ./bitcached-admin.
set -eu
KEYS=${1:-1000000}
ADMIN=${BITCACHED_ADMIN:-./bitcached-admin}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT INT TERM

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }

python3 -c '
import sys
n = int(sys.argv[1])
w = sys.stdout.write
w("bitcached-dump 1\n")
v = "x" * 90
for i in range(n):
    w("t:key:%d %d 0 0 100 t:%010d%s\n" % (i, i % 7, i, v))
' "$KEYS" > "$T/in.dump"

t0=$(now)
"$ADMIN" --quiet load "$T/data" < "$T/in.dump"
t1=$(now)
echo "keys=$KEYS"
echo "load_keys_per_s=$(rate "$KEYS" "$t0" "$t1")"
segbytes=$(find "$T/data" -name '*.seg' -printf '%s\n' | awk '{ s += $1 } END { print s }')
echo "segment_mb=$(awk -v b="$segbytes" 'BEGIN { printf "%.1f", b / 1048576 }')"

t0=$(now)
"$ADMIN" --quiet check "$T/data" > "$T/check.out"
t1=$(now)
tail -n 1 "$T/check.out" | grep -q '^clean$'
echo "check_mb_per_s=$(rate "$segbytes" "$t0" "$t1" | awk '{ printf "%.1f", $1 / 1048576 }')"

t0=$(now)
"$ADMIN" --quiet dump "$T/data" > "$T/out.dump"
t1=$(now)
echo "dump_mb_per_s=$(rate "$segbytes" "$t0" "$t1" | awk '{ printf "%.1f", $1 / 1048576 }')"
echo "dump_keys_per_s=$(rate "$KEYS" "$t0" "$t1")"
test "$(wc -l < "$T/out.dump")" -eq $((KEYS + 1))
