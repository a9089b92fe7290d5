#!/bin/sh
# bench_large.sh - large values: bitcached against Debian's memcached with
# memaslap, 64 KiB values (32-byte keys), 90% gets, alternating A B A B.
# Prints each server's throughput and its CPU time per operation (user +
# system of the server process over the run, divided by the operations
# memaslap counted), which a busy machine disturbs less than throughput.
# Not part of make check: run it from the build tree after `make`.
#
# Environment: BITCACHED (default ./bitcached), MEMCACHED, MEMASLAP,
# BENCH_LOAD (tests/bench/bench_load), ROUNDS (3), SECS (8), THREADS (4),
# CONC (16), VALUE (65536). BITCACHED_BEFORE: another bitcached binary (an
# older build) run in the same rounds, A B C A B C, for a before/after
# figure measured side by side. BITCACHED_ARGS: extra arguments for both
# bitcached builds; MEMASLAP_ARGS: extra memaslap arguments for every
# server (e.g. "--overwrite=0.9" with BITCACHED_ARGS=--segment-size=16m and
# SECS=20 for a steady state where sets overwrite keys and compaction
# retires segments all along, instead of a store that only grows).
# WARMUP=N: run the same load for N seconds (default 0) on each fresh
# server before the measured SECS. memcached takes new slab pages until
# its -m 2048 is full (about 30 s of this load), and their page faults
# (SYSCALLS=1 counts them: 1.6 an op) are part of its figure until then:
# WARMUP=40 compares both stores in a steady state.
# SYSCALLS=1: also count each server's system calls over the run with
# `perf stat` (tracepoints; needs perf and the right to trace the server)
# and print them per operation: all of them, and the page cache probes
# (cachestat) and change-time reads (fstat) of the large value checks
# (storage/cask_verify.h), and the page faults (first touches of a
# segment's mapping by a zero-copy send, cask_vmap.h; memcached's are its
# slab memory's). Counting costs the server a little CPU, so compare CPU
# figures only between runs made the same way.
# Each server's get hit ratio (the measured run's gets that returned a
# value, from memaslap's cmd_get and get_misses) is printed too: a miss
# sends no 64 KiB value, so two servers' figures compare only at equal hit
# ratios. memaslap gets only keys it set itself in the same run. In one
# long run (SECS=50) memcached's -m 2048 fills and evicts keys memaslap
# still gets: 56% of its gets hit, bitcached's all. After WARMUP the
# measured run is a new memaslap whose keys are the newest, and both
# servers hit them all. MEMCACHED_ARGS: extra memcached arguments, e.g.
# "-m 16384" for a memcached that keeps taking new memory through the run
# as bitcached's store keeps growing (with -m 2048 full, it reuses its
# own).
# PROFILE=1: also sample each server with `perf record -g` over the
# measured run and print where its CPU per operation goes, in
# microseconds an operation, one line a server and round
# (large_WHO_split_rN): by the system call a sample is in (send: the
# replies' writev, sendmsg or sendfile; recv: reading requests; pwrite:
# bitcached's records written into the page cache; cachestat and fstat:
# the large value checks; fsync: the interval sync; epoll; pread), else
# fault (page faults of user code), kernel (interrupts and the like) or
# user (the server's own code and its libraries). Sampling costs CPU too:
# compare only runs made the same way.
# GETS=1: after the rounds, a run of gets alone on each server, fresh:
# GETS_KEYS (8192) keys of VALUE bytes loaded with PIPEGET (default
# tests/bench/bench_pipeget), then random gets of them over CONC
# connections, one at a time, for SECS; prints each server's CPU per get
# and gets/s (large_WHO_get_cpu_us, large_WHO_gets_s), and the CPU per
# set that the mixed rounds' median then leaves (large_WHO_set_cpu_us:
# (mixed - 0.9 get) / 0.1, the mix being 90% gets): the two sides of the
# gap apart. Every key hits (a miss stops bench_pipeget with an error).
# PROBE=1: after the rounds, measure what this machine charges for
# memory, which decides what a set costs bitcached: CPU time to write
# 64 KiB into new page-cache pages (a new file, as a growing segment
# takes them), to write them again over pages already cached, and to copy
# 64 KiB into anonymous memory touched for the first time and again
# (memcached's items, once its -m is full, are memory touched before).
# PROBE_MB (256) of each. On a virtual machine whose host hands out a
# guest page only when it is first touched, the first figures can be
# several times the second; a store that keeps growing pays the first
# for every set, memcached with its memory full pays neither.
set -u

bench_name=bench_large.sh
. "$(dirname "$0")/bench_lib.sh"

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
THREADS=${THREADS:-4}
CONC=${CONC:-16}
VALUE=${VALUE:-65536}
BITCACHED_ARGS=${BITCACHED_ARGS:-}
MEMCACHED_ARGS=${MEMCACHED_ARGS:-}
MEMASLAP_ARGS=${MEMASLAP_ARGS:-}
SYSCALLS=${SYSCALLS:-0}
PROFILE=${PROFILE:-0}
PROBE=${PROBE:-0}
PROBE_MB=${PROBE_MB:-256}
GETS=${GETS:-0}
GETS_KEYS=${GETS_KEYS:-8192}
PIPEGET=${PIPEGET:-$top/tests/bench/bench_pipeget}
WARMUP=${WARMUP:-0}
SC_EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_cachestat,syscalls:sys_enter_newfstatat,page-faults
if [ "$SYSCALLS" = 1 ] &&
    ! perf stat -e "$SC_EVENTS" -o /dev/null -- true >/dev/null 2>&1; then
    echo "bench_large.sh: perf cannot count system calls here: SYSCALLS=1 ignored" >&2
    SYSCALLS=0
fi

if [ "$PROFILE" = 1 ] &&
    ! perf record -g -o /dev/null -- true >/dev/null 2>&1; then
    echo "bench_large.sh: perf cannot sample here: PROFILE=1 ignored" >&2
    PROFILE=0
fi

BITCACHED_BEFORE=${BITCACHED_BEFORE:-}
[ "$GETS" = 1 ] || PIPEGET=
for tool in "$BITCACHED" "$MEMCACHED" "$MEMASLAP" "$BENCH_LOAD" ${BITCACHED_BEFORE:+"$BITCACHED_BEFORE"} \
    ${PIPEGET:+"$PIPEGET"}; do
    if [ -z "$tool" ] || [ ! -x "$tool" ]; then
        echo "bench_large.sh: missing tool '$tool'" >&2
        exit 77
    fi
done

server_ready() { "$BENCH_LOAD" wait "$1" 60000; }

printf 'key\n32 32 1\nvalue\n%s %s 1\ncmd\n0 0.1\n1 0.9\n' "$VALUE" "$VALUE" >"$tmp/large.cfg"

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# sc_count FILE EVENT: the count perf stat -x, wrote for EVENT (0 if none).
sc_count() {
    awk -F, -v e="$2" '$3 == e && $1 ~ /^[0-9]+$/ { n = $1 } END { print n + 0 }' "$1"
}

# run_one SERVER: prints "TPS CPU_US_PER_OP HIT_PCT" of one run on a fresh
# server, HIT_PCT the percentage of the measured run's gets that hit (with
# SYSCALLS=1 also "SYSCALLS CACHESTAT FSTAT FAULTS", each per
# operation).
run_one() {
    rm -rf "$tmp/data" "$tmp/sc.txt"
    if [ "$1" = bitcached ]; then
        # shellcheck disable=SC2086
        start_server "$1" $BITCACHED_ARGS
    else
        # shellcheck disable=SC2086
        start_server "$1" $MEMCACHED_ARGS
    fi
    if [ "$WARMUP" -gt 0 ]; then
        # shellcheck disable=SC2086
        "$MEMASLAP" -s "127.0.0.1:$port" -F "$tmp/large.cfg" -t "${WARMUP}s" \
            -c "$CONC" -T 2 $MEMASLAP_ARGS >/dev/null 2>&1
    fi
    scpid=
    if [ "$SYSCALLS" = 1 ]; then
        perf stat -x, -e "$SC_EVENTS" -o "$tmp/sc.txt" -p "$pid" \
            -- sleep "$SECS" >/dev/null 2>&1 &
        scpid=$!
    fi
    prpid=
    if [ "$PROFILE" = 1 ]; then
        rm -f "$tmp/prof.data"
        perf record -g -o "$tmp/prof.data" -p "$pid" \
            -- sleep "$SECS" >/dev/null 2>&1 &
        prpid=$!
    fi
    c0=$(cpu_ticks "$pid")
    # shellcheck disable=SC2086
    out=$("$MEMASLAP" -s "127.0.0.1:$port" -F "$tmp/large.cfg" -t "${SECS}s" \
        -c "$CONC" -T 2 $MEMASLAP_ARGS 2>&1)
    c1=$(cpu_ticks "$pid")
    if [ -n "$scpid" ]; then
        wait "$scpid"
    fi
    if [ -n "$prpid" ]; then
        wait "$prpid"
    fi
    stop_server
    tps=$(printf '%s\n' "$out" | sed -n 's/.*TPS: \([0-9]*\).*/\1/p' | tail -1)
    if [ -z "$tps" ]; then
        echo "bench_large.sh: no TPS from memaslap against $1:" >&2
        printf '%s\n' "$out" | tail -5 >&2
        tps=0
    fi
    gets=$(printf '%s\n' "$out" | sed -n 's/^cmd_get: \([0-9]*\).*/\1/p' | tail -1)
    miss=$(printf '%s\n' "$out" | sed -n 's/^get_misses: \([0-9]*\).*/\1/p' | tail -1)
    awk -v t="$tps" -v a="$c0" -v b="$c1" -v s="$SECS" -v hz="$(getconf CLK_TCK)" \
        -v g="${gets:-0}" -v m="${miss:-0}" \
        'BEGIN { printf "%s %.1f %.1f", t, (t > 0 ? (b - a) / hz * 1e6 / (t * s) : 0),
                 (g > 0 ? 100 * (g - m) / g : 0) }'
    if [ "$SYSCALLS" = 1 ] && [ -s "$tmp/sc.txt" ]; then
        awk -v t="$tps" -v s="$SECS" -v n="$(sc_count "$tmp/sc.txt" raw_syscalls:sys_enter)" \
            -v cs="$(sc_count "$tmp/sc.txt" syscalls:sys_enter_cachestat)" \
            -v fs="$(sc_count "$tmp/sc.txt" syscalls:sys_enter_newfstatat)" \
            -v pf="$(sc_count "$tmp/sc.txt" page-faults)" \
            'BEGIN { o = t * s; if (o == 0) o = 1
                     printf " %.2f %.2f %.2f %.3f", n / o, cs / o, fs / o, pf / o }'
    elif [ "$SYSCALLS" = 1 ]; then
        printf ' 0 0 0 0'
    fi
    echo
    if [ -n "$prpid" ] && [ -s "$tmp/prof.data" ]; then
        cpu=$(awk -v t="$tps" -v a="$c0" -v b="$c1" -v s="$SECS" \
            -v hz="$(getconf CLK_TCK)" \
            'BEGIN { printf "%.1f", (t > 0 ? (b - a) / hz * 1e6 / (t * s) : 0) }')
        echo "large_${LABEL:-$1}_split_r$r=\"$(prof_split "$tmp/prof.data" "$cpu")\"" \
            >>"$tmp/split.txt"
    fi
}

# gets_one SERVER WHO MIXED_CPU: the GETS=1 run (see above) on a fresh
# server; prints its key=value lines.
gets_one() {
    rm -rf "$tmp/data"
    if [ "$1" = bitcached ]; then
        # shellcheck disable=SC2086
        start_server "$1" $BITCACHED_ARGS
    else
        # shellcheck disable=SC2086
        start_server "$1" $MEMCACHED_ARGS
    fi
    if ! "$PIPEGET" load "$port" "$GETS_KEYS" "$VALUE" >/dev/null; then
        echo "bench_large.sh: loading $GETS_KEYS keys into $2 failed" >&2
        stop_server
        return
    fi
    c0=$(cpu_ticks "$pid")
    gout=$("$PIPEGET" run "$port" "$GETS_KEYS" "$VALUE" "$CONC" 1 "$SECS")
    c1=$(cpu_ticks "$pid")
    stop_server
    n=$(printf '%s\n' "$gout" | sed -n 's/^gets=\([0-9]*\).*/\1/p')
    rate=$(printf '%s\n' "$gout" | sed -n 's/^gets_per_s=\([0-9]*\).*/\1/p')
    awk -v w="$2" -v n="${n:-0}" -v r="${rate:-0}" -v a="$c0" -v b="$c1" \
        -v hz="$(getconf CLK_TCK)" -v m="$3" \
        'BEGIN { g = n > 0 ? (b - a) / hz * 1e6 / n : 0
                 printf "large_%s_gets_s=%s\nlarge_%s_get_cpu_us=%.1f\n", w, r, w, g
                 if (n > 0 && m != "")
                     printf "large_%s_set_cpu_us=%.1f\n", w, (m - 0.9 * g) / 0.1 }'
}

# prof_split FILE CPU_US_PER_OP: where the CPU of the samples in FILE (perf
# record -g) went, in microseconds an operation, largest first (see
# PROFILE above). A sample in a system call is named by the frame above
# do_syscall_64 (the call's own function; through x64_sys_call where the
# kernel dispatches by a table).
prof_split() {
    perf script -i "$1" -F ip,sym,dso 2>/dev/null | awk -v cpu="$2" '
        function kind(s) {
            sub(/^(__x64_sys_|__do_sys_|__se_sys_|ksys_|__sys_|do_)/, "", s)
            if (s ~ /^(writev|sendmsg|sendto|sendfile|sendfile64|write)$/) return "send"
            if (s ~ /^(pwritev|pwritev2|pwrite64)$/) return "pwrite"
            if (s ~ /^(read|readv|recvfrom|recvmsg)$/) return "recv"
            if (s ~ /^(preadv|preadv2|pread64)$/) return "pread"
            if (s ~ /^(newfstatat|fstat|statx|vfs_fstatat)$/) return "fstat"
            if (s ~ /^(fdatasync|fsync)$/) return "fsync"
            if (s ~ /^(epoll_wait|epoll_pwait)$/) return "epoll"
            return s
        }
        function flush() {
            if (!have) return
            c = cat != "" ? cat : fault ? "fault" : kern ? "kernel" : "user"
            cnt[c]++
            n++
            have = 0; cat = ""; fault = 0; kern = 0; prev = ""; prev2 = ""
        }
        /^[ \t]*$/ { flush(); next }
        {
            if (!have && $0 ~ /kernel\.kallsyms/) kern = 1
            have = 1
            sym = $2
            if (sym == "do_syscall_64" && cat == "")
                cat = kind(prev == "x64_sys_call" ? prev2 : prev)
            if (sym ~ /exc_page_fault/) fault = 1
            prev2 = prev
            prev = sym
        }
        END {
            flush()
            out = ""
            while (n > 0) {
                best = ""
                for (k in cnt) if (best == "" || cnt[k] > cnt[best]) best = k
                if (best == "" || cnt[best] / n * cpu < 0.05) break
                out = out sprintf("%s%s=%.1f", out == "" ? "" : " ", best, cnt[best] / n * cpu)
                delete cnt[best]
            }
            print out
        }'
}

# probe: the PROBE=1 figures (see above), one key=value a line.
probe() {
    python3 - "$tmp/probe.dat" "$PROBE_MB" <<'EOF'
import mmap, os, sys, time
path, mb = sys.argv[1], int(sys.argv[2])
rec = 65536 + 72  # a record: header, 32-byte key, 64 KiB value
n = mb * 1024 * 1024 // rec
buf = os.urandom(rec)
def cpu_us(f):
    t0 = time.process_time()
    f()
    return (time.process_time() - t0) * 1e6 / n
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
def writes():
    for i in range(n):
        os.pwrite(fd, buf, i * rec)
new = cpu_us(writes)
again = cpu_us(writes)
os.close(fd)
os.unlink(path)
m = mmap.mmap(-1, n * 65536)
val = buf[:65536]
def copies():
    for i in range(n):
        m[i * 65536:(i + 1) * 65536] = val
first = cpu_us(copies)
second = cpu_us(copies)
m.close()
print("large_probe_pagecache_new_us_per_64k=%.1f" % new)
print("large_probe_pagecache_again_us_per_64k=%.1f" % again)
print("large_probe_anon_first_us_per_64k=%.1f" % first)
print("large_probe_anon_again_us_per_64k=%.1f" % second)
EOF
}

median() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

bc_tps= bc_cpu= mc_tps= mc_cpu= old_tps= old_cpu= bc_hit= mc_hit= old_hit=
bc_sc= bc_cs= bc_fs= bc_pf= mc_sc= mc_cs= mc_fs= mc_pf= old_sc= old_cs= old_fs= old_pf=
r=0
while [ $r -lt "$ROUNDS" ]; do
    set -- $(run_one bitcached)
    bc_tps="$bc_tps $1" bc_cpu="$bc_cpu $2" bc_hit="$bc_hit $3"
    [ $# -ge 7 ] && bc_sc="$bc_sc $4" bc_cs="$bc_cs $5" bc_fs="$bc_fs $6" bc_pf="$bc_pf $7"
    set -- $(run_one memcached)
    mc_tps="$mc_tps $1" mc_cpu="$mc_cpu $2" mc_hit="$mc_hit $3"
    [ $# -ge 7 ] && mc_sc="$mc_sc $4" mc_cs="$mc_cs $5" mc_fs="$mc_fs $6" mc_pf="$mc_pf $7"
    if [ -n "$BITCACHED_BEFORE" ]; then
        set -- $(LABEL=before BITCACHED=$BITCACHED_BEFORE run_one bitcached)
        old_tps="$old_tps $1" old_cpu="$old_cpu $2" old_hit="$old_hit $3"
        [ $# -ge 7 ] && old_sc="$old_sc $4" old_cs="$old_cs $5" old_fs="$old_fs $6" old_pf="$old_pf $7"
    fi
    r=$((r + 1))
done
echo "large_bitcached_ops_s=$(echo "$bc_tps" | median)"
echo "large_memcached_ops_s=$(echo "$mc_tps" | median)"
echo "large_bitcached_cpu_us_per_op=$(echo "$bc_cpu" | median)"
echo "large_memcached_cpu_us_per_op=$(echo "$mc_cpu" | median)"
echo "large_bitcached_get_hit_pct=$(echo "$bc_hit" | median)"
echo "large_memcached_get_hit_pct=$(echo "$mc_hit" | median)"
echo "large_bitcached_runs=\"$(echo $bc_tps) / $(echo $bc_cpu)\""
echo "large_memcached_runs=\"$(echo $mc_tps) / $(echo $mc_cpu)\""
if [ -n "$BITCACHED_BEFORE" ]; then
    echo "large_before_ops_s=$(echo "$old_tps" | median)"
    echo "large_before_cpu_us_per_op=$(echo "$old_cpu" | median)"
    echo "large_before_get_hit_pct=$(echo "$old_hit" | median)"
    echo "large_before_runs=\"$(echo $old_tps) / $(echo $old_cpu)\""
fi
if [ -s "$tmp/split.txt" ]; then
    cat "$tmp/split.txt"
fi
if [ "$GETS" = 1 ]; then
    gets_one bitcached bitcached "$(echo "$bc_cpu" | median)"
    gets_one memcached memcached "$(echo "$mc_cpu" | median)"
    if [ -n "$BITCACHED_BEFORE" ]; then
        (BITCACHED=$BITCACHED_BEFORE gets_one bitcached before "$(echo "$old_cpu" | median)")
    fi
fi
if [ "$PROBE" = 1 ]; then
    probe
fi
if [ "$SYSCALLS" = 1 ]; then
    for who in bitcached memcached before; do
        case $who in
        bitcached) sc=$bc_sc cs=$bc_cs fs=$bc_fs pf=$bc_pf ;;
        memcached) sc=$mc_sc cs=$mc_cs fs=$mc_fs pf=$mc_pf ;;
        before) sc=$old_sc cs=$old_cs fs=$old_fs pf=$old_pf ;;
        esac
        [ -n "$sc" ] || continue
        echo "large_${who}_syscalls_per_op=$(echo "$sc" | median)"
        echo "large_${who}_cachestat_per_op=$(echo "$cs" | median)"
        echo "large_${who}_fstat_per_op=$(echo "$fs" | median)"
        echo "large_${who}_faults_per_op=$(echo "$pf" | median)"
    done
fi
exit 0
