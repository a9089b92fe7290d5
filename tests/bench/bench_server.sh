#!/bin/sh
# bench_server.sh - throughput of bitcached against Debian's memcached with
# memaslap (memcaslap), alternating A B A B so drift hits both alike, and
# bitcached's memory and restart time with 1,000,000 keys. Workloads (32-byte
# keys, 100-byte values): get90 (90% get, text protocol), set100 (sets only),
# bin_get90 (get90 over the binary protocol, memaslap -B). Not part of make
# check: run it from the build tree after `make`. Prints name=value lines.
#
# Environment: BITCACHED (default ./bitcached), MEMCACHED, MEMASLAP,
# BENCH_LOAD (default tests/bench/bench_load), ROUNDS (3), SECS (8 per run),
# THREADS (server threads for both, 4), CONC (64), NKEYS (1000000; 0 skips
# the memory and restart part), WORKLOADS ("get90 set100 bin_get90"),
# BITCACHED_BEFORE (another bitcached binary, e.g. a build of main: run in
# each round too, with its ratio to memcached and this one's to it).
set -u

bench_name=bench_server.sh
. "$(dirname "$0")/bench_lib.sh"

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
THREADS=${THREADS:-4}
CONC=${CONC:-64}
NKEYS=${NKEYS:-1000000}
WORKLOADS=${WORKLOADS:-get90 set100 bin_get90}
BITCACHED_BEFORE=${BITCACHED_BEFORE:-}

for tool in "$BITCACHED" "$MEMCACHED" "$MEMASLAP" "$BENCH_LOAD" ${BITCACHED_BEFORE:+"$BITCACHED_BEFORE"}; do
    if [ -z "$tool" ] || [ ! -x "$tool" ]; then
        echo "bench_server.sh: missing tool '$tool' (build with make; install memcached and libmemcached-tools)" >&2
        exit 77
    fi
done

server_ready() { "$BENCH_LOAD" wait "$1" 60000; }

# write_cfg FILE SET_PROPORTION GET_PROPORTION: 32-byte keys, 100-byte values.
write_cfg() {
    printf 'key\n32 32 1\nvalue\n100 100 1\ncmd\n0 %s\n1 %s\n' "$2" "$3" > "$1"
}
write_cfg "$tmp/get90.cfg" 0.1 0.9
write_cfg "$tmp/set100.cfg" 1.0 0.0
cp "$tmp/get90.cfg" "$tmp/bin_get90.cfg"

# run_one bitcached|before|memcached WORKLOAD: prints the TPS of one
# memaslap run against a fresh server; a bin_ workload speaks the binary
# protocol.
run_one() {
    rm -rf "$tmp/data"
    if [ "$1" = before ]; then
        after_bin=$BITCACHED
        BITCACHED=$BITCACHED_BEFORE
        start_server bitcached
        BITCACHED=$after_bin
    else
        start_server "$1"
    fi
    proto=
    case $2 in bin_*) proto=-B ;; esac
    # shellcheck disable=SC2086
    out=$("$MEMASLAP" $proto -s "127.0.0.1:$port" -F "$tmp/$2.cfg" -t "${SECS}s" \
        -c "$CONC" -T 2 2>&1)
    stop_server
    tps=$(printf '%s\n' "$out" | sed -n 's/.*TPS: \([0-9]*\).*/\1/p' | tail -1)
    if [ -z "$tps" ]; then
        echo "bench_server.sh: no TPS from memaslap against $1:" >&2
        printf '%s\n' "$out" | tail -5 >&2
        tps=0
    fi
    echo "$tps"
}

median() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

for workload in $WORKLOADS; do
    bc_all=
    mc_all=
    bf_all=
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        if [ -n "$BITCACHED_BEFORE" ]; then
            bf_all="$bf_all $(run_one before "$workload")"
        fi
        bc_all="$bc_all $(run_one bitcached "$workload")"
        mc_all="$mc_all $(run_one memcached "$workload")"
        r=$((r + 1))
    done
    bc=$(echo "$bc_all" | median)
    mc=$(echo "$mc_all" | median)
    echo "${workload}_bitcached_ops_s=$bc"
    echo "${workload}_memcached_ops_s=$mc"
    echo "${workload}_bitcached_runs=\"$(echo $bc_all)\""
    echo "${workload}_memcached_runs=\"$(echo $mc_all)\""
    awk -v a="$bc" -v b="$mc" -v n="$workload" \
        'BEGIN { printf "%s_ratio=%.3f\n", n, (b > 0 ? a / b : 0) }'
    if [ -n "$BITCACHED_BEFORE" ]; then
        bf=$(echo "$bf_all" | median)
        echo "${workload}_before_ops_s=$bf"
        echo "${workload}_before_runs=\"$(echo $bf_all)\""
        awk -v a="$bc" -v b="$mc" -v f="$bf" -v n="$workload" 'BEGIN {
            printf "%s_before_ratio=%.3f\n%s_ratio_vs_before=%.3f\n",
                n, (b > 0 ? f / b : 0), n, (f > 0 ? a / f : 0) }'
    fi
done

# Memory and restart time with NKEYS keys of 100 bytes.
[ "$NKEYS" -gt 0 ] || exit 0
rm -rf "$tmp/data"
start_server bitcached
t0=$(date +%s.%N)
"$BENCH_LOAD" load "$port" "$NKEYS" 100 || exit 1
t1=$(date +%s.%N)
sleep 1
rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status")
awk -v a="$t0" -v b="$t1" -v n="$NKEYS" 'BEGIN { printf "load_1m_keys_s=%.2f\n", b - a }'
echo "rss_kb_after_1m_keys=$rss"
stop_server
t0=$(date +%s.%N)
"$BITCACHED" --data-dir="$tmp/data" --sync=interval -t "$THREADS" \
    -l 127.0.0.1 -p "$port" 2>>"$tmp/server.log" &
pid=$!
if ! "$BENCH_LOAD" probe "$port" "bench:$((NKEYS / 2))" 120000; then
    echo "bench_server.sh: loaded key missing after restart" >&2
    exit 1
fi
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "restart_s_1m_keys=%.2f\n", b - a }'
rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status")
echo "rss_kb_after_restart_1m_keys=$rss"
"$BENCH_LOAD" verify "$port" "$NKEYS" || exit 1
stop_server
exit 0
