#!/bin/sh
# bench_coldread.sh - random 4 KB gets on a data set larger than the memory
# the server may use (issue 16), against the disk's own random 4 KiB read
# IOPS at the same queue depth (fio), and the first seconds after a cold
# restart. Not part of make check: run it as root from the build tree after
# `make` (it makes a memory cgroup, v1 or v2, and drops the page cache).
#
# The server runs in a memory cgroup of MEM_MB; KEYS keys of VALUE bytes
# (default 150000 x 4096, about 2.4x a 256 MB cgroup) are loaded first. Each
# variant then starts on that data with the page cache dropped, and CONNS
# connections (one get in flight each: the queue depth) get random keys for
# SECS seconds after WARM seconds of warm-up. Printed per variant: gets/s,
# bytes read from disk per get (/proc/PID/io read_bytes over the run), and
# get latency p50/p99, the reads the server made for values not in the
# page cache per get (cold_reads, and of them direct ones, from `stats
# storage`) and the mean of those in flight at once (sampled), and where
# perf(1) can count system calls, the
# server's system calls and io_uring_enter calls per get (over every get
# of the run, bench_setload's own warm-up included). fio reads random 4 KiB blocks of a file as large as
# the data set, O_DIRECT, libaio at iodepth CONNS: the disk's limit. It
# runs once before the variants and again just before each of them, and
# each variant's gets/s is printed as a percentage of the fio run next to
# it (NAME_pct_of_fio): on a shared machine whose load changes from one
# minute to the next, a ratio of two runs minutes apart says little.
# Each run's CPU is printed too: fio's per read (NAME_fio_cpu_us_per_read,
# user + system), the server's and the client's per get and the cores the
# two kept busy (NAME_cores_busy). Where fio itself is short of CPU (a
# guest whose every device notification and interrupt is a costly exit)
# its IOPS are a CPU figure as much as the disk's, and a variant whose
# cores_busy is near cpus is bound by the CPU of server and client
# together, not by the disk: compare server + client CPU per get with
# fio's per read, and the hot run's gets/s (the get path without any disk
# read) with fio's IOPS.
#
# Then RESTART_KEYS keys of 100 bytes (default 5000000): after a clean stop
# and a drop of the page cache, the seconds to the first answer, and the
# gets/s of the first RESTART_SECS (10) seconds of random gets. The
# loaded store is started and stopped once before the timed starts, so
# that BEFORE, timed first, does not start right after the load alone
# (its first start was seen at 5.3 s warm where the same binary's next
# took 0.9 s, on a loaded machine).
#
# Environment: BITCACHED (./bitcached), BEFORE (another binary to compare,
# e.g. a build of the commit before this work; optional), SETLOAD
# (tests/bench/bench_setload), BENCH_LOAD (tests/bench/bench_load), FIO,
# PERF (empty: no system call counts),
# KEYS, VALUE, MEM_MB (256), CONNS (32), SECS (20), WARM (5), THREADS (4),
# URING (1: a run of BITCACHED with --io-engine=uring, named uring),
# HOT (1: a run of BITCACHED, named hot, outside the cgroup with every
# data file read into the page cache first: no disk read, the ceiling of
# the get path itself on this machine, client and loopback included; each
# variant's gets/s is also printed as NAME_pct_of_hot),
# IO_THREADS ("0 16 32": a run of BITCACHED with --io-engine=threads and
# each of these --io-threads, named io_threads_N; empty: none), RESTART_KEYS,
# RESTART_SECS.
set -u

top=${top_builddir:-.}
BITCACHED=${BITCACHED:-$top/bitcached}
BEFORE=${BEFORE:-}
SETLOAD=${SETLOAD:-$top/tests/bench/bench_setload}
BENCH_LOAD=${BENCH_LOAD:-$top/tests/bench/bench_load}
FIO=${FIO:-$(command -v fio || true)}
PERF=${PERF-$(command -v perf || true)}
KEYS=${KEYS:-150000}
VALUE=${VALUE:-4096}
MEM_MB=${MEM_MB:-256}
CONNS=${CONNS:-32}
SECS=${SECS:-20}
WARM=${WARM:-5}
THREADS=${THREADS:-4}
URING=${URING:-1}
HOT=${HOT:-1}
IO_THREADS=${IO_THREADS-0 16 32}
RESTART_KEYS=${RESTART_KEYS:-5000000}
RESTART_SECS=${RESTART_SECS:-10}
MEMCACHED=unused

for tool in "$BITCACHED" "$SETLOAD" "$BENCH_LOAD"; do
    if [ ! -x "$tool" ]; then
        echo "bench_coldread.sh: missing tool '$tool' (build with make)" >&2
        exit 77
    fi
done
if [ "$(id -u)" != 0 ]; then
    echo "bench_coldread.sh: needs root (cgroup, drop_caches)" >&2
    exit 77
fi

bench_name=bench_coldread.sh
server_ready() { "$BENCH_LOAD" wait "$1" 600000; }
. "$(dirname "$0")/bench_lib.sh"

# A memory cgroup for the server: v1 or v2.
cg=
if [ -w /sys/fs/cgroup/memory ]; then
    cg=/sys/fs/cgroup/memory/bc-coldread.$$
    mkdir "$cg" && echo $((MEM_MB * 1024 * 1024)) >"$cg/memory.limit_in_bytes"
elif [ -w /sys/fs/cgroup/cgroup.subtree_control ]; then
    cg=/sys/fs/cgroup/bc-coldread.$$
    mkdir "$cg" && echo $((MEM_MB * 1024 * 1024)) >"$cg/memory.max"
else
    echo "bench_coldread.sh: no writable memory cgroup" >&2
    exit 77
fi
cleanup_cg() {
    stop_server
    rmdir "$cg" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup_cg EXIT

# load N VALUE_BYTES PORT: keys bench:0 .. bench:N-1 (bench_setload -b).
load() {
    "$BENCH_LOAD" load "$3" "$1" "$2" >/dev/null || exit 1
}

read_bytes() { awk '/^read_bytes:/ { print $2 }' "/proc/$1/io"; }
# user + system CPU seconds of process $1 (all threads)
cpu_s() {
    sed 's/.*) //' "/proc/$1/stat" |
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($12 + $13) / hz }'
}

drop() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# start BINARY ARG...: the server on the loaded data, in the cgroup.
start_cg() {
    bin=$1
    shift
    port=$(free_port)
    "$bin" --data-dir="$tmp/data" --sync=interval -t "$THREADS" \
        -l 127.0.0.1 -p "$port" "$@" 2>>"$tmp/server.log" &
    pid=$!
    echo "$pid" >"$cg/cgroup.procs"
    server_ready "$port" || exit 1
}

# run NAME: random gets against the running server; prints its figures.
run_gets() {
    "$SETLOAD" -b -p "$port" -c "$CONNS" -s "$WARM" -k "$KEYS" -g 100 \
        >/dev/null
    r0=$(read_bytes "$pid")
    c0=$(cpu_s "$pid")
    k0=$(storage_stat "$port" cold_reads)
    d0=$(storage_stat "$port" cold_reads_direct)
    perf_pid=
    rm -f "$tmp/perf.out"
    if [ -n "$PERF" ]; then
        "$PERF" stat -x, -o "$tmp/perf.out" -p "$pid" \
            -e raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter \
            2>/dev/null &
        perf_pid=$!
    fi
    sample_active "$port" "$SECS" >"$tmp/active.out" &
    sampler=$!
    out=$("$SETLOAD" -b -p "$port" -c "$CONNS" -s "$SECS" -k "$KEYS" -g 100)
    wait "$sampler"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null
        wait "$perf_pid" 2>/dev/null
    fi
    r1=$(read_bytes "$pid")
    c1=$(cpu_s "$pid")
    k1=$(storage_stat "$port" cold_reads)
    d1=$(storage_stat "$port" cold_reads_direct)
    ops=$(printf '%s\n' "$out" | sed -n 's/^gets=//p')
    ops_s=$(printf '%s\n' "$out" | sed -n 's/^ops_s=//p')
    p50=$(printf '%s\n' "$out" | sed -n 's/^get_p50_us=//p')
    p99=$(printf '%s\n' "$out" | sed -n 's/^get_p99_us=//p')
    ccpu=$(printf '%s\n' "$out" | sed -n 's/^client_cpu_us_per_op=//p')
    awk -v n="$1" -v o="$ops" -v s="$ops_s" -v a="$r0" -v b="$r1" \
        -v p="$p50" -v q="$p99" -v c="$c0" -v d="$c1" -v k="${ccpu:-0}" 'BEGIN {
        printf "%s_gets_s=%s\n%s_read_bytes_per_get=%.0f\n", n, s, n,
            (o > 0 ? (b - a) / o : 0)
        srv = o > 0 ? (d - c) * 1e6 / o : 0
        printf "%s_server_cpu_us_per_get=%.1f\n", n, srv
        printf "%s_client_cpu_us_per_get=%.1f\n", n, k
        printf "%s_cores_busy=%.2f\n", n, (srv + k) * s / 1e6
        printf "%s_get_p50_us=%s\n%s_get_p99_us=%s\n", n, p, n, q }'
    awk -v n="$1" -v o="$ops" -v a="$k0" -v b="$k1" -v c="$d0" -v d="$d1" '
        NR == 1 && o > 0 && b != "" {
            printf "%s_cold_reads_per_get=%.3f\n", n, (b - a) / o
            printf "%s_direct_reads_per_get=%.3f\n", n, (d - c) / o
            if ($1 != "")
                printf "%s_cold_reads_in_flight_mean=%.1f\n", n, $1 }' \
        "$tmp/active.out"
    if [ -s "$tmp/perf.out" ]; then
        total=$(printf '%s\n' "$out" | sed -n 's/^ops_total=//p')
        awk -F, -v n="$1" -v t="$total" '
            t > 0 && $3 == "raw_syscalls:sys_enter" {
                printf "%s_syscalls_per_get=%.2f\n", n, $1 / t }
            t > 0 && $3 == "syscalls:sys_enter_io_uring_enter" {
                printf "%s_io_uring_enter_per_get=%.3f\n", n, $1 / t }' \
            "$tmp/perf.out"
    fi
}

# Python that storage_stat and sample_active start with: stats(s), the
# `stats storage` lines on socket s as a dict of name to value.
STATS_PY=$(
    cat <<'PY'
import socket, sys, time
def stats(s):
    s.sendall(b"stats storage\r\n")
    buf = b""
    while not buf.endswith(b"END\r\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    out = {}
    for line in buf.decode(errors="replace").split("\r\n"):
        f = line.split()
        if len(f) == 3 and f[0] == "STAT":
            out[f[1]] = f[2]
    return out
PY
)

# storage_stat PORT NAME: the value of NAME in `stats storage` (empty
# where the server has no such line).
storage_stat() {
    python3 -c "$STATS_PY
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
v = stats(s).get(sys.argv[2])
if v is not None:
    print(v)" "$1" "$2"
}

# sample_active PORT SECS: the mean of cold_reads_active (reads in
# flight or waiting for a slot, all workers) over SECS seconds, sampled
# every 0.2 s: compare it with CONNS.
sample_active() {
    python3 -c "$STATS_PY
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
end = time.monotonic() + float(sys.argv[2])
vals = []
while time.monotonic() < end:
    v = stats(s).get('cold_reads_active')
    if v is not None:
        vals.append(int(v))
    time.sleep(0.2)
print('%.2f' % (sum(vals) / len(vals)) if vals else '')" "$1" "$2"
}

# fio_run: fio's random 4 KiB reads at iodepth CONNS on a file as large
# as the data set (size_mb), O_DIRECT: fio_iops (a plain number; empty
# without fio). The file is laid out once and kept until the last run.
fio_run() {
    [ -n "$FIO" ] || return 0
    "$FIO" --name=rr --directory="$tmp" --size="${size_mb}M" --rw=randread \
        --bs=4k --direct=1 --ioengine=libaio --iodepth="$CONNS" \
        --runtime="$SECS" --time_based --group_reporting >"$tmp/fio.out" 2>&1
    fio_iops=$(sed -n 's/.*IOPS=\([0-9.]*[kM]*\),.*/\1/p' "$tmp/fio.out" |
        head -1 | awk '/k$/ { printf "%.0f", $1 * 1000; next }
            /M$/ { printf "%.0f", $1 * 1000000; next } { printf "%.0f", $1 }')
    # its user + system CPU (percent of the run) per read
    fio_cpu=$(sed -n 's/.*cpu *: *usr=\([0-9.]*\)%, *sys=\([0-9.]*\)%.*/\1 \2/p' \
        "$tmp/fio.out" | head -1 | awk -v i="$fio_iops" \
        'i > 0 { printf "%.1f", ($1 + $2) / 100 * 1e6 / i }')
}

# pct NAME: NAME's gets/s (ops_s of its run_gets) against the fio run
# just before it, and against the hot run.
pct() {
    if [ -n "$fio_iops" ]; then
        awk -v n="$1" -v g="$ops_s" -v f="$fio_iops" -v u="$fio_cpu" 'BEGIN {
            printf "%s_fio_iops=%s\n%s_pct_of_fio=%.1f\n", n, f, n,
                (f > 0 ? 100 * g / f : 0)
            if (u != "")
                printf "%s_fio_cpu_us_per_read=%s\n", n, u }'
    fi
    if [ -n "$hot_s" ]; then
        awk -v n="$1" -v g="$ops_s" -v h="$hot_s" 'BEGIN {
            printf "%s_pct_of_hot=%.1f\n", n, (h > 0 ? 100 * g / h : 0) }'
    fi
}

echo "cpus=$(nproc) loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
if [ "$KEYS" -gt 0 ]; then
    rm -rf "$tmp/data"
    start_server bitcached
    load "$KEYS" "$VALUE" "$port"
    stop_server
    echo "data_set_mb=$(du -sm "$tmp/data" | cut -f1) memory_limit_mb=$MEM_MB"

    size_mb=$(du -sm "$tmp/data" | cut -f1)
    fio_iops=
    fio_cpu=
    fio_run
    [ -n "$fio_iops" ] && echo "fio_randread_4k_iodepth${CONNS}_iops=$fio_iops"
    [ -n "${fio_cpu:-}" ] && echo "fio_cpu_us_per_read=$fio_cpu"

    hot_s=
    if [ "$HOT" = 1 ]; then
        find "$tmp/data" -type f -exec cat {} + >/dev/null
        port=$(free_port)
        "$BITCACHED" --data-dir="$tmp/data" --sync=interval -t "$THREADS" \
            -l 127.0.0.1 -p "$port" 2>>"$tmp/server.log" &
        pid=$!
        server_ready "$port" || exit 1
        run_gets hot
        stop_server
        hot_s=$ops_s
    fi
    if [ -n "$BEFORE" ]; then
        fio_run
        drop
        start_cg "$BEFORE"
        run_gets before
        stop_server
        pct before
    fi
    if [ "$URING" = 1 ]; then
        fio_run
        drop
        start_cg "$BITCACHED" --io-engine=uring
        run_gets uring
        stop_server
        pct uring
    fi
    for io in $IO_THREADS; do
        fio_run
        drop
        start_cg "$BITCACHED" --io-engine=threads --io-threads="$io"
        run_gets "io_threads_$io"
        stop_server
        pct "io_threads_$io"
    done
    rm -f "$tmp"/rr.*
fi

# Cold restart with RESTART_KEYS small keys.
if [ "$RESTART_KEYS" -gt 0 ]; then
    rm -rf "$tmp/data"
    start_server bitcached -m 4096 # the keydir of 5M keys is over -m 64
    load "$RESTART_KEYS" 100 "$port"
    stop_server
    start_server bitcached -m 4096
    stop_server
    for b in $BEFORE "$BITCACHED"; do
        name=after
        [ "$b" = "$BEFORE" ] && name=before
        for mode in warm cold; do
            [ $mode = cold ] && drop
            t0=$(date +%s.%N)
            port=$(free_port)
            "$b" --data-dir="$tmp/data" --sync=interval -t "$THREADS" \
                -m 4096 -l 127.0.0.1 -p "$port" 2>>"$tmp/server.log" &
            pid=$!
            "$BENCH_LOAD" probe "$port" "bench:$((RESTART_KEYS / 2))" 600000 ||
                exit 1
            t1=$(date +%s.%N)
            awk -v n="$name" -v m="$mode" -v a="$t0" -v b="$t1" \
                'BEGIN { printf "%s_restart_%s_first_answer_s=%.3f\n", n, m, b - a }'
            if [ $mode = cold ]; then
                out=$("$SETLOAD" -b -p "$port" -c "$CONNS" \
                    -s "$RESTART_SECS" -k "$RESTART_KEYS" -g 100)
                echo "${name}_restart_cold_first_${RESTART_SECS}s_gets_s=$(printf '%s\n' "$out" | sed -n 's/^ops_s=//p')"
            fi
            stop_server
        done
    done
fi
exit 0
