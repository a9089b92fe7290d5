#!/bin/sh
# bench_restart.sh - time from starting bitcached to its first answer, with
# NKEYS keys of 100 bytes on disk: after a clean stop (every segment has a
# hint), with the page cache warm and then with the data files dropped from
# it (cold; only this run's files are evicted, with posix_fadvise), and
# after the hints are removed (a full scan of every segment, warm). Also the
# store's own recovery time from its log line. Not part of make check: run
# it from the build tree after `make`. Prints name=value lines; cpu_s is the
# server's CPU time (user + system, all threads) up to the first answer,
# which a busy machine disturbs less than the wall time.
#
# With BITCACHED_BEFORE (another binary, e.g. a build of the commit
# before a change) each round restarts it and BITCACHED in turns on the
# same files, the same way (its figures are printed with a before_
# prefix): side by side, so that a machine whose load changes from one
# minute to the next disturbs both alike (scan mode removes the hints
# before every start, cold mode evicts before every start).
#
# Environment: BITCACHED (default ./bitcached), BENCH_LOAD (default
# tests/bench/bench_load), NKEYS ("1000000 5000000"), ROUNDS (3; medians are
# printed), THREADS (server threads, 4), MEM_MB (the server's -m, 4096: at
# the default -m 64 the keydir of 5M keys is over the limit and the load
# evicts keys, so that it fails its own check), EXTRA (more server
# arguments), BITCACHED_BEFORE (none).
set -u

bench_name=bench_restart.sh
. "$(dirname "$0")/bench_lib.sh"

NKEYS=${NKEYS:-1000000 5000000}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-4}
EXTRA=${EXTRA:-}
BITCACHED_BEFORE=${BITCACHED_BEFORE:-}
MEM_MB=${MEM_MB:-4096}

for tool in "$BITCACHED" "$BENCH_LOAD"; do
    if [ ! -x "$tool" ]; then
        echo "bench_restart.sh: missing tool '$tool' (build with make)" >&2
        exit 77
    fi
done

server_ready() { "$BENCH_LOAD" wait "$1" 60000; }

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'; }

evict() {
    find "$tmp/data" -type f -print0 | xargs -0 python3 -c '
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
'
}

# restart KEY: start the server on the loaded data, write the seconds to
# the first hit on KEY to $tmp/t; the server is left running (pid, port).
restart() {
    port=$(free_port)
    : >"$tmp/restart.log"
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$BITCACHED" --data-dir="$tmp/data" --sync=interval -t "$THREADS" \
        -m "$MEM_MB" -l 127.0.0.1 -p "$port" -v $EXTRA \
        2>>"$tmp/restart.log" &
    pid=$!
    if ! "$BENCH_LOAD" probe "$port" "$1" 600000; then
        echo "bench_restart.sh: $1 missing after restart" >&2
        cat "$tmp/restart.log" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >"$tmp/t"
    # utime and stime, fields 14 and 15 after the ")" that ends the name
    sed 's/.*) //' "/proc/$pid/stat" |
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($12 + $13) / hz }' >"$tmp/cpu"
}

store_s() {
    sed -n 's/.*opened .* \([0-9.]*\) s$/\1/p' "$tmp/restart.log" | tail -n 1
}

for n in $NKEYS; do
    rm -rf "$tmp/data"
    # shellcheck disable=SC2086
    start_server bitcached -m "$MEM_MB" $EXTRA
    "$BENCH_LOAD" load "$port" "$n" 100 >/dev/null || exit 1
    stop_server
    key="bench:$((n / 2))"
    after=$BITCACHED
    for mode in warm cold scan; do
        all_a= store_a= cpu_a= all_b= store_b= cpu_b=
        for r in $(seq "$ROUNDS"); do
            # each round starts both binaries, in turns, on the same files
            for which in b a; do
                if [ "$which" = b ]; then
                    [ -n "$BITCACHED_BEFORE" ] || continue
                    BITCACHED=$BITCACHED_BEFORE
                else
                    BITCACHED=$after
                fi
                case $mode in
                cold) evict ;;
                scan) find "$tmp/data" -name '*.hint' -delete ;;
                esac
                restart "$key"
                eval "all_$which=\"\$all_$which $(cat "$tmp/t")\""
                eval "cpu_$which=\"\$cpu_$which $(cat "$tmp/cpu")\""
                stop_server
                eval "store_$which=\"\$store_$which $(store_s)\""
            done
        done
        BITCACHED=$after
        for which in b a; do
            pre=
            if [ "$which" = b ]; then
                [ -n "$BITCACHED_BEFORE" ] || continue
                pre=before_
            fi
            eval "all=\$all_$which cpu=\$cpu_$which store=\$store_$which"
            echo "${pre}restart_${mode}_s_${n}=$(echo $all | tr ' ' '\n' | median)"
            echo "${pre}restart_${mode}_runs_${n}=\"$(echo $all)\""
            echo "${pre}recovery_${mode}_s_${n}=$(echo $store | tr ' ' '\n' | median)"
            echo "${pre}restart_${mode}_cpu_s_${n}=$(echo $cpu | tr ' ' '\n' | median)"
            echo "${pre}restart_${mode}_cpu_runs_${n}=\"$(echo $cpu)\""
        done
    done
done
exit 0
