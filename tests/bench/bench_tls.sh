#!/bin/sh
# bench_tls.sh - get-heavy throughput over TLS: bitcached -Z against
# Debian's memcached -Z, side by side, alternating A B A B so drift hits
# both alike, with plain TCP runs of each for the cost of TLS itself; 90%
# get / 10% set, 32-byte keys, 100-byte values, one request in flight per
# connection (tests/bench/bench_tls). Not part of make check: run it from
# the build tree after `make`. Prints name=value lines, the ratios last.
#
# Environment: BITCACHED (default ./bitcached), MEMCACHED, BENCH_TLS
# (default tests/bench/bench_tls), ROUNDS (3), SECS (5 per run), THREADS
# (server threads for both, 2), CONC (16), KEYS (10000).
set -u

bench_name=bench_tls.sh
. "$(dirname "$0")/bench_lib.sh"

BENCH_TLS=${BENCH_TLS:-$top/tests/bench/bench_tls}
OPENSSL=$(command -v openssl || true)
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
THREADS=${THREADS:-2}
CONC=${CONC:-16}
KEYS=${KEYS:-10000}

for tool in "$BITCACHED" "$MEMCACHED" "$BENCH_TLS" "$OPENSSL"; do
    if [ -z "$tool" ] || [ ! -x "$tool" ]; then
        echo "bench_tls.sh: missing tool '$tool' (build with make; install memcached and openssl)" >&2
        exit 77
    fi
done
if ! "$MEMCACHED" -h | grep -q enable-ssl; then
    echo "bench_tls.sh: this memcached has no TLS" >&2
    exit 77
fi

server_ready() {
    i=0
    while [ $i -lt 100 ]; do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1).close()" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

"$OPENSSL" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 1 -subj /CN=127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null || exit 1
chmod 644 "$tmp/key.pem" "$tmp/cert.pem"
chmod 755 "$tmp"
tls_opts="ssl_chain_cert=$tmp/cert.pem,ssl_key=$tmp/key.pem"

# run_one SERVER MODE: ops/s of one run against a fresh server.
run_one() {
    if [ "$2" = tls ]; then
        start_server "$1" -Z -o "$tls_opts"
    else
        start_server "$1"
    fi
    out=$("$BENCH_TLS" "$port" "$SECS" "$CONC" "$KEYS" "$2")
    rc=$?
    stop_server
    rm -rf "$tmp/data"
    if [ $rc -ne 0 ]; then
        echo "bench_tls.sh: load against $1 ($2) failed" >&2
        exit 1
    fi
    echo "$out" | sed -n 's/^ops_s=//p'
}

best() { sort -n | tail -1; }

: > "$tmp/res"
r=1
while [ $r -le "$ROUNDS" ]; do
    for mode in tls plain; do
        for srv in bitcached memcached; do
            v=$(run_one "$srv" "$mode")
            echo "round$r.$srv.$mode=$v"
            echo "$srv.$mode $v" >> "$tmp/res"
        done
    done
    r=$((r + 1))
done
for srv in bitcached memcached; do
    for mode in tls plain; do
        v=$(grep "^$srv.$mode " "$tmp/res" | cut -d' ' -f2 | best)
        eval "best_${srv}_${mode}=$v"
        echo "best.$srv.$mode=$v"
    done
done
# shellcheck disable=SC2154
awk -v a="$best_bitcached_tls" -v b="$best_memcached_tls" \
    -v c="$best_bitcached_plain" -v d="$best_memcached_plain" 'BEGIN {
    printf "ratio.tls.bitcached_over_memcached=%.2f\n", a / b
    printf "ratio.plain.bitcached_over_memcached=%.2f\n", c / d
    printf "tls_cost.bitcached=%.2f\n", a / c
    printf "tls_cost.memcached=%.2f\n", b / d
}'
