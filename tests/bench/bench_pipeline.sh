#!/bin/sh
# bench_pipeline.sh - pipelined text gets, this build of bitcached against
# another one (BASELINE, e.g. the previous release's binary), alternating
# A B A B so that drift hits both alike. Not part of make check: run it
# from the build tree after `make`. Prints name=value lines.
#
# - warm: NKEYS keys of 100-byte values, CONNS connections with DEPTH gets
#   in flight each, random keys for SECS seconds: gets/s and the server's
#   CPU per get (user + system time from /proc/PID/stat over the run).
# - cold: COLD_KEYS keys of 4 KB values, their pages dropped from the page
#   cache (POSIX_FADV_DONTNEED on the segments), then every key once over
#   one connection with COLD_DEPTH gets in flight: gets/s of the pass (how
#   far a connection's pipelined cold reads overlap).
#
# Environment: BITCACHED (default ./bitcached), BASELINE (required),
# PIPEGET (default tests/bench/bench_pipeget), ROUNDS (3), SECS (5),
# THREADS (2), CONNS (4), DEPTH (32), NKEYS (100000), COLD_KEYS (20000),
# COLD_DEPTH (16), IO_THREADS (16).
set -u

bench_name=bench_pipeline.sh
. "$(dirname "$0")/bench_lib.sh"

BASELINE=${BASELINE:-}
PIPEGET=${PIPEGET:-$top/tests/bench/bench_pipeget}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-4}
DEPTH=${DEPTH:-32}
NKEYS=${NKEYS:-100000}
COLD_KEYS=${COLD_KEYS:-20000}
COLD_DEPTH=${COLD_DEPTH:-16}
IO_THREADS=${IO_THREADS:-16}

for tool in "$BITCACHED" "$BASELINE" "$PIPEGET" "$BENCH_LOAD"; do
    if [ -z "$tool" ] || [ ! -x "$tool" ]; then
        echo "bench_pipeline.sh: missing tool '$tool' (make; set BASELINE)" >&2
        exit 77
    fi
done

server_ready() { "$BENCH_LOAD" wait "$1" 60000; }

# Server CPU time in clock ticks (utime + stime).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

drop_cache() {
    python3 - "$1" <<'EOF'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        if name.endswith(".seg"):
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
EOF
}

value_of() { printf '%s\n' "$2" | sed -n "s/^$1=//p"; }

# warm NAME BINARY: one run; prints NAME_gets_per_s and NAME_cpu_us_per_get.
warm() {
    rm -rf "$tmp/data"
    this_bin=$BITCACHED
    BITCACHED=$2
    start_server bitcached --io-threads="$IO_THREADS"
    BITCACHED=$this_bin
    "$PIPEGET" load "$port" "$NKEYS" 100 || exit 1
    "$PIPEGET" run "$port" "$NKEYS" 100 "$CONNS" "$DEPTH" 1 >/dev/null || exit 1
    c0=$(cpu_ticks "$pid")
    out=$("$PIPEGET" run "$port" "$NKEYS" 100 "$CONNS" "$DEPTH" "$SECS") || exit 1
    c1=$(cpu_ticks "$pid")
    stop_server
    gets=$(value_of gets "$out")
    echo "$1_gets_per_s=$(value_of gets_per_s "$out")"
    echo "$1_cpu_us_per_get=$(awk -v c=$((c1 - c0)) -v hz="$hz" -v g="$gets" \
        'BEGIN { printf "%.3f", c / hz * 1e6 / g }')"
}

# cold NAME BINARY: prints NAME_cold_gets_per_s.
cold() {
    rm -rf "$tmp/data"
    this_bin=$BITCACHED
    BITCACHED=$2
    start_server bitcached --io-threads="$IO_THREADS"
    BITCACHED=$this_bin
    "$PIPEGET" load "$port" "$COLD_KEYS" 4096 || exit 1
    drop_cache "$tmp/data"
    out=$("$PIPEGET" once "$port" "$COLD_KEYS" 4096 1 "$COLD_DEPTH") || exit 1
    stop_server
    echo "$1_cold_gets_per_s=$(value_of gets_per_s "$out")"
}

echo "threads=$THREADS conns=$CONNS depth=$DEPTH nkeys=$NKEYS secs=$SECS"
echo "cold_keys=$COLD_KEYS cold_depth=$COLD_DEPTH io_threads=$IO_THREADS"
r=1
while [ $r -le "$ROUNDS" ]; do
    warm this "$BITCACHED"
    warm baseline "$BASELINE"
    cold this "$BITCACHED"
    cold baseline "$BASELINE"
    r=$((r + 1))
done
