#!/bin/sh
# bench_evict.sh - get-heavy throughput while both servers evict all the
# time (issue 9): bitcached and Debian's memcached, each with the same small
# -m, under memaslap's get90 (90% get, 10% set; 32-byte keys, 100-byte
# values) over a key space far larger than either holds, alternating A B A B.
# Prints each server's ops/s, their ratio, and the evictions each made, so a
# run that did not evict shows. Not part of make check: run it from the
# build tree after `make`.
#
# Environment: BITCACHED (default ./bitcached), MEMCACHED, MEMASLAP,
# BENCH_LOAD (default tests/bench/bench_load), MB (-m, default 8), ROUNDS
# (3), SECS (10 per run), THREADS (server threads for both, 4), CONC (64),
# WIN (memaslap's task window per connection, 40k: CONC x WIN keys), WARM
# (seconds of sets that fill each server past -m first, 10).
set -u

bench_name=bench_evict.sh
. "$(dirname "$0")/bench_lib.sh"

MB=${MB:-8}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
THREADS=${THREADS:-4}
CONC=${CONC:-64}
WIN=${WIN:-40k}
WARM=${WARM:-10}

for tool in "$BITCACHED" "$MEMCACHED" "$MEMASLAP" "$BENCH_LOAD"; do
    if [ -z "$tool" ] || [ ! -x "$tool" ]; then
        echo "bench_evict.sh: missing tool '$tool' (build with make; install memcached and libmemcached-tools)" >&2
        exit 77
    fi
done

server_ready() { "$BENCH_LOAD" wait "$1" 60000; }

printf 'key\n32 32 1\nvalue\n100 100 1\ncmd\n0 0.1\n1 0.9\n' > "$tmp/get90.cfg"
printf 'key\n32 32 1\nvalue\n100 100 1\ncmd\n0 1.0\n1 0.0\n' > "$tmp/set100.cfg"

# stat PORT NAME: one figure of the server's stats.
stat() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
s.sendall(b"stats\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    buf += s.recv(65536)
for line in buf.split(b"\r\n"):
    f = line.split()
    if len(f) == 3 and f[1].decode() == sys.argv[2]:
        print(f[2].decode())
PY
}

# run_one SERVER: "TPS EVICTIONS" of one memaslap run against a fresh server
# filled past -m first (WARM seconds of sets), so that it evicts all along;
# EVICTIONS counts those of the measured run only.
run_one() {
    rm -rf "$tmp/data"
    start_server "$1" -m "$MB"
    "$MEMASLAP" -s "127.0.0.1:$port" -F "$tmp/set100.cfg" -t "${WARM}s" \
        -c "$CONC" -w "$WIN" -T 2 >/dev/null 2>&1
    ev0=$(stat "$port" evictions)
    out=$("$MEMASLAP" -s "127.0.0.1:$port" -F "$tmp/get90.cfg" -t "${SECS}s" \
        -c "$CONC" -w "$WIN" -T 2 2>&1)
    ev=$(($(stat "$port" evictions) - ${ev0:-0}))
    stop_server
    tps=$(printf '%s\n' "$out" | sed -n 's/.*TPS: \([0-9]*\).*/\1/p' | tail -1)
    echo "${tps:-0} ${ev:-0}"
}

median() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

bc_all=
mc_all=
bc_ev=
mc_ev=
r=0
while [ "$r" -lt "$ROUNDS" ]; do
    set -- $(run_one bitcached)
    bc_all="$bc_all $1"
    bc_ev="$bc_ev $2"
    set -- $(run_one memcached)
    mc_all="$mc_all $1"
    mc_ev="$mc_ev $2"
    r=$((r + 1))
done
bc=$(echo "$bc_all" | median)
mc=$(echo "$mc_all" | median)
echo "evict_get90_m${MB}_bitcached_ops_s=$bc"
echo "evict_get90_m${MB}_memcached_ops_s=$mc"
echo "evict_get90_bitcached_runs=\"$(echo $bc_all)\""
echo "evict_get90_memcached_runs=\"$(echo $mc_all)\""
echo "evict_get90_bitcached_evictions=\"$(echo $bc_ev)\""
echo "evict_get90_memcached_evictions=\"$(echo $mc_ev)\""
awk -v a="$bc" -v b="$mc" 'BEGIN { printf "evict_get90_ratio=%.3f\n", (b > 0 ? a / b : 0) }'
exit 0
