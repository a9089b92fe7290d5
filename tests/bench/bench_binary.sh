#!/bin/sh
# bench_binary.sh - get-heavy throughput over memcached's binary protocol:
# bitcached against Debian's memcached with memaslap -B (memcaslap), side by
# side, alternating A B A B so drift hits both alike; 90% get / 10% set,
# 32-byte keys, 100-byte values. Not part of make check: run it from the
# build tree after `make`. Prints name=value lines, the ratio last.
#
# Environment: BITCACHED (default ./bitcached), MEMCACHED, MEMASLAP,
# BENCH_LOAD (default tests/bench/bench_load), ROUNDS (3), SECS (8 per run),
# THREADS (server threads for both, 4), CONC (64).
set -u

top=${top_builddir:-.}
BITCACHED=${BITCACHED:-$top/bitcached}
MEMCACHED=${MEMCACHED:-$(command -v memcached || true)}
MEMASLAP=${MEMASLAP:-$(command -v memcaslap || command -v memaslap || true)}
BENCH_LOAD=${BENCH_LOAD:-$top/tests/bench/bench_load}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
THREADS=${THREADS:-4}
CONC=${CONC:-64}

for tool in "$BITCACHED" "$MEMCACHED" "$MEMASLAP" "$BENCH_LOAD"; do
    if [ -z "$tool" ] || [ ! -x "$tool" ]; then
        echo "bench_binary.sh: missing tool '$tool' (build with make; install memcached and libmemcached-tools)" >&2
        exit 77
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bc-benchbin.XXXXXX") || exit 1
pid=
stop_server() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        pid=
    fi
}
cleanup() {
    stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server bitcached|memcached: sets pid and port; retries on a port race.
start_server() {
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        if [ "$1" = bitcached ]; then
            "$BITCACHED" --data-dir="$tmp/data" --sync=interval -t "$THREADS" \
                -l 127.0.0.1 -p "$port" 2>>"$tmp/server.log" &
        else
            user=
            [ "$(id -u)" = 0 ] && user="-u root"
            # shellcheck disable=SC2086
            "$MEMCACHED" -U 0 -m 2048 -t "$THREADS" -l 127.0.0.1 -p "$port" $user \
                2>>"$tmp/server.log" &
        fi
        pid=$!
        if "$BENCH_LOAD" wait "$port" 60000 && kill -0 "$pid" 2>/dev/null; then
            return 0
        fi
        stop_server
    done
    echo "bench_binary.sh: $1 did not start" >&2
    cat "$tmp/server.log" >&2
    exit 1
}

printf 'key\n32 32 1\nvalue\n100 100 1\ncmd\n0 0.1\n1 0.9\n' > "$tmp/get90.cfg"

# run_one SERVER: the TPS of one binary memaslap run against a fresh server.
run_one() {
    rm -rf "$tmp/data"
    start_server "$1"
    out=$("$MEMASLAP" -B -s "127.0.0.1:$port" -F "$tmp/get90.cfg" -t "${SECS}s" \
        -c "$CONC" -T 2 2>&1)
    stop_server
    tps=$(printf '%s\n' "$out" | sed -n 's/.*TPS: \([0-9]*\).*/\1/p' | tail -1)
    if [ -z "$tps" ]; then
        echo "bench_binary.sh: no TPS from memaslap -B against $1:" >&2
        printf '%s\n' "$out" | tail -5 >&2
        tps=0
    fi
    echo "$tps"
}

median() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

bc_all=
mc_all=
r=0
while [ $r -lt "$ROUNDS" ]; do
    bc_all="$bc_all $(run_one bitcached)"
    mc_all="$mc_all $(run_one memcached)"
    r=$((r + 1))
done
bc=$(echo "$bc_all" | median)
mc=$(echo "$mc_all" | median)
echo "binary_get90_bitcached_ops_s=$bc"
echo "binary_get90_memcached_ops_s=$mc"
echo "binary_get90_bitcached_runs=\"$(echo $bc_all)\""
echo "binary_get90_memcached_runs=\"$(echo $mc_all)\""
awk -v a="$bc" -v b="$mc" 'BEGIN { printf "binary_get90_ratio=%.3f\n", (b > 0 ? a / b : 0) }'
exit 0
