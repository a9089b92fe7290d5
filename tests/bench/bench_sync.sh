#!/bin/sh
# bench_sync.sh - set-only throughput under --sync=always (issue 8, item 2):
# bitcached --sync=always against Debian's memcached (no persistence) and
# Redis with `appendonly yes`, `appendfsync always`, all driven by the same
# closed-loop client (tests/bench/bench_setload: CONC connections, one
# request in flight each, 100-byte values), alternating the servers per
# round so drift hits all alike. Reports sets/s, the ratios, bitcached's
# writes per fdatasync, and each server's CPU per operation (utime+stime
# from /proc/PID/stat around the run), and per round the client's
# (client_cpu_us_per_op) and the cores the two kept busy together
# (cores_busy: both CPU figures times sets/s; near the machine's core
# count the run was bound by CPU, well below it by latency, such as the
# syncs' and the wake-ups'), and for bitcached where a commit's time went
# (stats storage: commit_wait_us, commit_delay_us, commit_sync_us,
# commit_release_us). With GETMIX=1 also p99.9 get latency
# (90% get, 10% set) on an idle store against one where compaction and
# roll-over run (tiny segments, low compact ratio). With PERF=1 (and a
# perf that may trace) also, per server and round, what one set costs in
# kernel entries, from perf stat over the load's seconds divided by the
# sets done meanwhile: system calls, context switches, and the calls that
# tell the servers apart (read, write, writev, pwrite64, fdatasync,
# epoll_wait, futex). Not part of make check: run from the build tree
# after `make`. Prints name=value lines.
#
# Environment: BITCACHED (default ./bitcached), MEMCACHED, REDIS
# (redis-server), SETLOAD (default tests/bench/bench_setload), ROUNDS (3),
# SECS (8), THREADS (server threads, 4), CONC (50), VALUE (100), KEYS
# (100000), GETMIX (0), GKEYS (keys of the get runs, 5000: sets overwrite
# them often enough to make dead bytes for compaction, and gets hit),
# BITCACHED_BEFORE (another bitcached binary, e.g. a build of main: run
# in each round too, with its figures and its ratio to this one), PERF (0).
set -u

bench_name=bench_sync.sh
. "$(dirname "$0")/bench_lib.sh"

REDIS=${REDIS:-$(command -v redis-server || true)}
SETLOAD=${SETLOAD:-$top/tests/bench/bench_setload}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
THREADS=${THREADS:-4}
CONC=${CONC:-50}
VALUE=${VALUE:-100}
KEYS=${KEYS:-100000}
GETMIX=${GETMIX:-0}
GKEYS=${GKEYS:-5000}
BITCACHED_BEFORE=${BITCACHED_BEFORE:-}
PERF=${PERF:-0}

for tool in "$BITCACHED" "$MEMCACHED" "$REDIS" "$SETLOAD" ${BITCACHED_BEFORE:+"$BITCACHED_BEFORE"}; do
    if [ -z "$tool" ] || [ ! -x "$tool" ]; then
        echo "bench_sync.sh: missing tool '$tool' (make; apt-get install memcached redis-server)" >&2
        exit 77
    fi
done

perf_events=raw_syscalls:sys_enter,context-switches
for call in read write writev pwrite64 fdatasync epoll_wait futex; do
    perf_events=$perf_events,syscalls:sys_enter_$call
done
if [ "$PERF" = 1 ] && ! { command -v perf >/dev/null 2>&1 &&
    perf stat -e "$perf_events" -o /dev/null -- true >/dev/null 2>&1; }; then
    echo "bench_sync.sh: PERF=1 but perf cannot trace system calls here" >&2
    PERF=0
fi

server_ready() {
    python3 - "$1" <<'EOF'
import socket, sys, time
end = time.monotonic() + 60
while time.monotonic() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

# start_redis: Redis with an fsync per write, on a free port, temp dir.
start_redis() {
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        rm -rf "$tmp/redis"
        mkdir -p "$tmp/redis"
        "$REDIS" --port "$port" --bind 127.0.0.1 --dir "$tmp/redis" \
            --save "" --appendonly yes --appendfsync always \
            --daemonize no --logfile "$tmp/redis.log" &
        pid=$!
        if server_ready "$port" && kill -0 "$pid" 2>/dev/null; then
            return 0
        fi
        stop_server
    done
    echo "bench_sync.sh: redis-server did not start" >&2
    exit 1
}

cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# stat NAME: one line of bitcached's `stats storage`.
storage_stat() {
    python3 - "$port" "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.sendall(b"stats storage\r\n")
d = b""
while not d.endswith(b"END\r\n"):
    c = s.recv(65536)
    if not c:
        break
    d += c
for line in d.decode().split("\r\n"):
    p = line.split(" ")
    if len(p) == 3 and p[1] == sys.argv[2]:
        print(p[2])
EOF
}

# run_one bitcached|before|memcached|redis [GET_PERCENT [SERVER ARGS...]]: one
# run against a fresh server; sets ops_s, cpu_us, wps, p999.
run_one() {
    which=$1
    gp=${2:-0}
    shift
    [ $# -gt 0 ] && shift
    rm -rf "$tmp/data"
    proto=mc
    case $which in
    bitcached) start_server bitcached --sync=always "$@" ;;
    before)
        after_bin=$BITCACHED
        BITCACHED=$BITCACHED_BEFORE
        start_server bitcached --sync=always "$@"
        BITCACHED=$after_bin
        ;;
    memcached) start_server memcached ;;
    redis) start_redis; proto=redis ;;
    esac
    c0=$(cpu_ticks "$pid")
    perf_pid=
    if [ "$PERF" = 1 ]; then
        perf stat -x, -e "$perf_events" -p "$pid" -o "$tmp/perf" \
            -- sleep "$SECS" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    "$SETLOAD" -P "$proto" -p "$port" -c "$CONC" -s "$SECS" -v "$VALUE" \
        -k "$KEYS" -g "$gp" > "$tmp/out" || { cat "$tmp/out" >&2; exit 1; }
    [ -n "$perf_pid" ] && wait "$perf_pid"
    c1=$(cpu_ticks "$pid")
    wps= compactions= cycle=
    if [ "$which" = bitcached ] || [ "$which" = before ]; then
        wps=$(storage_stat writes_per_sync)
        compactions=$(storage_stat compactions)
        # where a commit's time went (a build without the figures: none)
        for f in commit_wait_us commit_delay_us commit_sync_us commit_release_us; do
            v=$(storage_stat $f)
            [ -n "$v" ] && cycle="$cycle $f=$v"
        done
    fi
    stop_server
    ops_s=$(sed -n 's/^ops_s=//p' "$tmp/out")
    total=$(sed -n 's/^ops_total=//p' "$tmp/out")
    p999=$(sed -n 's/^get_p999_us=//p' "$tmp/out")
    errs=$(sed -n 's/^errors=//p' "$tmp/out")
    ccpu=$(sed -n 's/^client_cpu_us_per_op=//p' "$tmp/out")
    hz=$(getconf CLK_TCK)
    cpu_us=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v n="$total" \
        'BEGIN { printf "%.1f", n ? d / hz * 1e6 / n : 0 }')
    cores=$(awk -v a="$cpu_us" -v b="${ccpu:-0}" -v r="${ops_s:-0}" \
        'BEGIN { printf "%.2f", (a + b) * r / 1e6 }')
    # per set: perf's counts over the sets of the same seconds
    calls=
    if [ -n "$perf_pid" ]; then
        calls=$(awk -F, -v n="$(sed -n 's/^ops=//p' "$tmp/out")" '
            $3 ~ /^(raw_syscalls|context-switches|syscalls)/ && n > 0 {
                name = $3
                sub(/^raw_syscalls:sys_enter$/, "syscalls", name)
                sub(/^syscalls:sys_enter_/, "", name)
                printf " %s_per_op=%.3f", name, $1 / n
            }' "$tmp/perf")
    fi
    [ "${errs:-0}" = 0 ] || echo "bench_sync.sh: $which: $errs error replies" >&2
}

median() {
    tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

bc_all= mc_all= rd_all= bc_cpu= mc_cpu= rd_cpu= bc_wps=
bf_all= bf_cpu= bf_wps=

# one_kind KIND: one run of KIND, its figures added and printed.
one_kind() {
    run_one "$1"
    case $1 in
    before)
        bf_all="$bf_all $ops_s"; bf_cpu="$bf_cpu $cpu_us"; bf_wps="$bf_wps $wps"
        echo "round$r.before_always_sets_s=$ops_s cpu_us_per_op=$cpu_us writes_per_sync=$wps client_cpu_us_per_op=$ccpu cores_busy=$cores$cycle$calls" ;;
    bitcached)
        bc_all="$bc_all $ops_s"; bc_cpu="$bc_cpu $cpu_us"; bc_wps="$bc_wps $wps"
        echo "round$r.bitcached_always_sets_s=$ops_s cpu_us_per_op=$cpu_us writes_per_sync=$wps client_cpu_us_per_op=$ccpu cores_busy=$cores$cycle$calls" ;;
    memcached)
        mc_all="$mc_all $ops_s"; mc_cpu="$mc_cpu $cpu_us"
        echo "round$r.memcached_sets_s=$ops_s cpu_us_per_op=$cpu_us client_cpu_us_per_op=$ccpu cores_busy=$cores$calls" ;;
    redis)
        rd_all="$rd_all $ops_s"; rd_cpu="$rd_cpu $cpu_us"
        echo "round$r.redis_always_sets_s=$ops_s cpu_us_per_op=$cpu_us client_cpu_us_per_op=$ccpu cores_busy=$cores$calls" ;;
    esac
}

kinds="bitcached memcached redis"
[ -n "$BITCACHED_BEFORE" ] && kinds="before $kinds"
r=1
while [ $r -le "$ROUNDS" ]; do
    # Each round starts with another server (on a busy machine the first
    # run of a round tends to do better).
    for k in $(rotate "$kinds" $((r - 1))); do
        one_kind "$k"
    done
    r=$((r + 1))
done
bc=$(echo "$bc_all" | median)
mc=$(echo "$mc_all" | median)
rd=$(echo "$rd_all" | median)
echo "conns=$CONC value_bytes=$VALUE threads=$THREADS secs=$SECS rounds=$ROUNDS"
echo "bitcached_always_sets_s=$bc"
echo "memcached_sets_s=$mc"
echo "redis_always_sets_s=$rd"
awk -v a="$bc" -v b="$mc" -v c="$rd" 'BEGIN {
    printf "ratio_vs_memcached=%.2f\nratio_vs_redis=%.2f\n", a / b, a / c }'
echo "bitcached_writes_per_sync=$(echo "$bc_wps" | median)"
echo "bitcached_cpu_us_per_op=$(echo "$bc_cpu" | median)"
echo "memcached_cpu_us_per_op=$(echo "$mc_cpu" | median)"
echo "redis_cpu_us_per_op=$(echo "$rd_cpu" | median)"
if [ -n "$BITCACHED_BEFORE" ]; then
    bf=$(echo "$bf_all" | median)
    echo "before_always_sets_s=$bf"
    echo "before_writes_per_sync=$(echo "$bf_wps" | median)"
    echo "before_cpu_us_per_op=$(echo "$bf_cpu" | median)"
    awk -v a="$bc" -v b="$bf" -v c="$mc" -v d="$rd" 'BEGIN {
        printf "ratio_vs_before=%.2f\nbefore_ratio_vs_memcached=%.2f\nbefore_ratio_vs_redis=%.2f\n",
            a / b, b / c, b / d }'
fi

if [ "$GETMIX" = 1 ]; then
    # p99.9 of gets (90% get, 10% set) under --sync=always: idle store vs
    # one that rolls over every 256 KiB and compacts at 10% dead.
    idle= busy=
    KEYS=$GKEYS
    r=1
    while [ $r -le "$ROUNDS" ]; do
        run_one bitcached 90
        idle="$idle $p999"
        run_one bitcached 90 --segment-size=256k --compact-ratio=0.1
        busy="$busy $p999"
        echo "round$r.compactions=$compactions"
        echo "round$r.get_p999_us idle=$(echo "$idle" | awk '{print $NF}') compacting=$p999"
        r=$((r + 1))
    done
    i=$(echo "$idle" | median)
    b=$(echo "$busy" | median)
    echo "get_p999_us_idle=$i"
    echo "get_p999_us_compacting=$b"
    awk -v a="$b" -v b="$i" 'BEGIN { printf "get_p999_ratio=%.2f\n", a / b }'
fi
