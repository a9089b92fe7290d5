#!/bin/sh
# bench_setcpu.sh - what one set costs the server, side by side: bitcached
# (and BITCACHED_BEFORE, another build, when given) against Debian's
# memcached under the same closed-loop set-only load (bench_setload: CONC
# connections, one request in flight each, VALUE-byte values), in rounds of
# A B C so that drift hits all alike. Per server and round: sets/s, CPU
# time of the server process per set (user + system, /proc/PID/stat),
# system calls per set (perf stat of raw_syscalls:sys_enter, when perf may
# trace; else not printed), page faults per set, and the part of the CPU
# per set spent outside the THREADS busiest threads (the workers): the
# background threads' share (bitcached's sync and maintenance threads:
# roll-over, hints, compaction). CPU per set is the figure a busy machine
# disturbs least. Not part of make check: run it
# from the build tree after `make`. Prints name=value lines, the median of
# the rounds for each.
#
# Environment: BITCACHED (default ./bitcached), MEMCACHED, BENCH_LOAD,
# SETLOAD (tests/bench/bench_setload), ROUNDS (3), SECS (6), THREADS (4),
# CONC (50), VALUE (100, at most 3000), BITCACHED_BEFORE, BITCACHED_ARGS
# (extra arguments for both bitcached builds, e.g. --write-map=no).
set -u

bench_name=bench_setcpu.sh
. "$(dirname "$0")/bench_lib.sh"

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-6}
THREADS=${THREADS:-4}
CONC=${CONC:-50}
VALUE=${VALUE:-100}
SETLOAD=${SETLOAD:-$top/tests/bench/bench_setload}
BITCACHED_BEFORE=${BITCACHED_BEFORE:-}
BITCACHED_ARGS=${BITCACHED_ARGS:-}

for tool in "$BITCACHED" "$MEMCACHED" "$BENCH_LOAD" "$SETLOAD" ${BITCACHED_BEFORE:+"$BITCACHED_BEFORE"}; do
    if [ -z "$tool" ] || [ ! -x "$tool" ]; then
        echo "bench_setcpu.sh: missing tool '$tool'" >&2
        exit 77
    fi
done

server_ready() { "$BENCH_LOAD" wait "$1" 60000; }

perf_ok=no
if command -v perf >/dev/null 2>&1 &&
    perf stat -e raw_syscalls:sys_enter -o /dev/null -- true >/dev/null 2>&1; then
    perf_ok=yes
fi

# proc_cpu_faults PID: "ticks faults" (utime+stime, minflt+majflt).
proc_cpu_faults() {
    awk '{ print $14 + $15, $10 + $12 }' "/proc/$1/stat"
}

# thread_ticks PID: "tid ticks" per thread (utime+stime), in the order
# join wants.
thread_ticks() {
    for t in /proc/"$1"/task/*; do
        awk -v t="${t##*/}" '{ print t, $14 + $15 }' "$t/stat" 2>/dev/null
    done | LC_ALL=C sort
}

# run_one bitcached|before|memcached: one line "ops_s cpu_us syscalls faults
# bg_cpu_us" per set, for a run against a fresh server.
run_one() {
    rm -rf "$tmp/data"
    case $1 in
    before)
        after_bin=$BITCACHED
        BITCACHED=$BITCACHED_BEFORE
        # shellcheck disable=SC2086
        start_server bitcached $BITCACHED_ARGS
        BITCACHED=$after_bin
        ;;
    bitcached)
        # shellcheck disable=SC2086
        start_server bitcached $BITCACHED_ARGS
        ;;
    *) start_server memcached ;;
    esac
    # warm-up: the keys exist, the segments have started
    "$SETLOAD" -p "$port" -c "$CONC" -s 1 -v "$VALUE" -k 100000 >/dev/null
    set -- $(proc_cpu_faults "$pid")
    t0=$1 f0=$2
    thread_ticks "$pid" >"$tmp/thr0"
    perf_pid=
    if [ "$perf_ok" = yes ]; then
        perf stat -e raw_syscalls:sys_enter -p "$pid" -o "$tmp/perf" \
            -- sleep "$SECS" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    "$SETLOAD" -p "$port" -c "$CONC" -s "$SECS" -v "$VALUE" -k 100000 >"$tmp/out"
    [ -n "$perf_pid" ] && wait "$perf_pid"
    set -- $(proc_cpu_faults "$pid")
    t1=$1 f1=$2
    thread_ticks "$pid" >"$tmp/thr1"
    # ticks of every thread but the THREADS busiest (threads that ended
    # meanwhile count in neither: none do in a steady run)
    bg=$(LC_ALL=C join "$tmp/thr0" "$tmp/thr1" | awk '{ print $3 - $2 }' | sort -rn |
        awk -v n="$THREADS" 'NR > n { s += $1 } END { print s + 0 }')
    stop_server
    sc=-1
    if [ "$perf_ok" = yes ]; then
        sc=$(awk '/raw_syscalls/ { gsub(",", "", $1); print $1 }' "$tmp/perf")
    fi
    awk -v a="$t0" -v b="$t1" -v fa="$f0" -v fb="$f1" -v s="${sc:--1}" \
        -v hz="$(getconf CLK_TCK)" -v bg="$bg" \
        -v o="$(sed -n 's/^ops=//p' "$tmp/out")" \
        -v r="$(sed -n 's/^ops_s=//p' "$tmp/out")" 'BEGIN {
        if (o <= 0) { print "0 0 0 0 0"; exit }
        printf "%s %.2f %.2f %.3f %.2f\n", r, (b - a) / hz * 1e6 / o,
            (s < 0 ? -1 : s / o), (fb - fa) / o, bg / hz * 1e6 / o }'
}

median() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

names="bitcached memcached"
[ -n "$BITCACHED_BEFORE" ] && names="before $names"
for n in $names; do
    : >"$tmp/res.$n"
done
r=0
while [ $r -lt "$ROUNDS" ]; do
    # Each round starts with another server (on a busy machine the first
    # run of a round tends to do better).
    for n in $(rotate "$names" $r); do
        run_one "$n" >>"$tmp/res.$n"
    done
    r=$((r + 1))
done
for n in $names; do
    i=1
    for what in ops_s cpu_us_per_set syscalls_per_set faults_per_set \
        bg_cpu_us_per_set; do
        if [ "$what" = syscalls_per_set ] && [ "$perf_ok" = no ]; then
            i=$((i + 1))
            continue
        fi
        all=$(awk -v c=$i '{ print $c }' "$tmp/res.$n" | tr '\n' ' ')
        echo "${n}_${what}=$(echo "$all" | median)"
        echo "${n}_${what}_runs=\"$(echo $all)\""
        i=$((i + 1))
    done
done
exit 0
