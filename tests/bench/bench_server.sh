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
# Each server's CPU time per operation (user + system of the server process
# over the memaslap run, divided by the operations memaslap counted) is
# printed beside its throughput: the client shares the machine's cores, so
# the server's CPU per operation decides throughput and a busy machine
# disturbs it less. SYSCALLS=1: also count each server's system calls over
# the run with `perf stat` (a tracepoint; needs perf and the right to trace
# the server) and print them per operation; counting costs the server a
# little CPU, so compare CPU figures only between runs made the same way.
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
SYSCALLS=${SYSCALLS:-0}
if [ "$SYSCALLS" = 1 ] &&
    ! perf stat -e raw_syscalls:sys_enter -o /dev/null -- true >/dev/null 2>&1; then
    echo "bench_server.sh: perf cannot count system calls here: SYSCALLS=1 ignored" >&2
    SYSCALLS=0
fi

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

# Server CPU time in clock ticks (utime + stime; the fields after the
# command name, which may hold spaces).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
hz=$(getconf CLK_TCK)

# sc_count FILE: the system calls perf stat -x, counted (0 if none).
sc_count() {
    awk -F, '$3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ { n = $1 }
             END { print n + 0 }' "$1"
}

# run_one bitcached|before|memcached WORKLOAD: prints "TPS CPU_US_PER_OP"
# of one memaslap run against a fresh server (with SYSCALLS=1 also
# SYSCALLS_PER_OP); a bin_ workload speaks the binary protocol.
run_one() {
    rm -rf "$tmp/data" "$tmp/sc.txt"
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
    scpid=
    if [ "$SYSCALLS" = 1 ]; then
        perf stat -x, -e raw_syscalls:sys_enter -o "$tmp/sc.txt" -p "$pid" \
            -- sleep "$SECS" >/dev/null 2>&1 &
        scpid=$!
    fi
    c0=$(cpu_ticks "$pid")
    # shellcheck disable=SC2086
    out=$("$MEMASLAP" $proto -s "127.0.0.1:$port" -F "$tmp/$2.cfg" -t "${SECS}s" \
        -c "$CONC" -T 2 2>&1)
    c1=$(cpu_ticks "$pid")
    if [ -n "$scpid" ]; then
        wait "$scpid"
    fi
    stop_server
    tps=$(printf '%s\n' "$out" | sed -n 's/.*TPS: \([0-9]*\).*/\1/p' | tail -1)
    if [ -z "$tps" ]; then
        echo "bench_server.sh: no TPS from memaslap against $1:" >&2
        printf '%s\n' "$out" | tail -5 >&2
        tps=0
    fi
    awk -v t="$tps" -v a="$c0" -v b="$c1" -v s="$SECS" -v hz="$hz" \
        'BEGIN { printf "%s %.2f", t, (t > 0 ? (b - a) / hz * 1e6 / (t * s) : 0) }'
    if [ "$SYSCALLS" = 1 ]; then
        n=0
        [ -s "$tmp/sc.txt" ] && n=$(sc_count "$tmp/sc.txt")
        awk -v t="$tps" -v s="$SECS" -v n="$n" \
            'BEGIN { o = t * s; if (o == 0) o = 1; printf " %.2f", n / o }'
    fi
    echo
}

median() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# report WORKLOAD WHO "TPS..." "CPU..." "SYSCALLS...": one server's medians
# and runs.
report() {
    echo "${1}_${2}_ops_s=$(echo "$3" | median)"
    echo "${1}_${2}_cpu_us_per_op=$(echo "$4" | median)"
    echo "${1}_${2}_runs=\"$(echo $3) / $(echo $4)\""
    if [ -n "$5" ]; then
        echo "${1}_${2}_syscalls_per_op=$(echo "$5" | median)"
    fi
}

for workload in $WORKLOADS; do
    bc_all= bc_cpu= bc_sc=
    mc_all= mc_cpu= mc_sc=
    bf_all= bf_cpu= bf_sc=
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        if [ -n "$BITCACHED_BEFORE" ]; then
            set -- $(run_one before "$workload")
            bf_all="$bf_all $1" bf_cpu="$bf_cpu $2" bf_sc="$bf_sc ${3:-}"
        fi
        set -- $(run_one bitcached "$workload")
        bc_all="$bc_all $1" bc_cpu="$bc_cpu $2" bc_sc="$bc_sc ${3:-}"
        set -- $(run_one memcached "$workload")
        mc_all="$mc_all $1" mc_cpu="$mc_cpu $2" mc_sc="$mc_sc ${3:-}"
        r=$((r + 1))
    done
    bc=$(echo "$bc_all" | median)
    mc=$(echo "$mc_all" | median)
    bcc=$(echo "$bc_cpu" | median)
    mcc=$(echo "$mc_cpu" | median)
    report "$workload" bitcached "$bc_all" "$bc_cpu" "$(echo $bc_sc)"
    report "$workload" memcached "$mc_all" "$mc_cpu" "$(echo $mc_sc)"
    awk -v a="$bc" -v b="$mc" -v ca="$bcc" -v cb="$mcc" -v n="$workload" 'BEGIN {
        printf "%s_ratio=%.3f\n", n, (b > 0 ? a / b : 0)
        printf "%s_cpu_ratio=%.3f\n", n, (cb > 0 ? ca / cb : 0) }'
    if [ -n "$BITCACHED_BEFORE" ]; then
        bf=$(echo "$bf_all" | median)
        bfc=$(echo "$bf_cpu" | median)
        report "$workload" before "$bf_all" "$bf_cpu" "$(echo $bf_sc)"
        awk -v a="$bc" -v b="$mc" -v f="$bf" -v ca="$bcc" -v cb="$mcc" \
            -v cf="$bfc" -v n="$workload" 'BEGIN {
            printf "%s_before_ratio=%.3f\n%s_ratio_vs_before=%.3f\n",
                n, (b > 0 ? f / b : 0), n, (f > 0 ? a / f : 0)
            printf "%s_before_cpu_ratio=%.3f\n%s_cpu_ratio_vs_before=%.3f\n",
                n, (cb > 0 ? cf / cb : 0), n, (cf > 0 ? ca / cf : 0) }'
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
