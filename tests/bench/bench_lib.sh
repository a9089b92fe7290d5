# bench_lib.sh - sourced by the side-by-side server benchmarks
# (bench_server.sh, bench_tls.sh, ...): the tools' defaults, a temp dir
# removed at exit, bitcached or Debian's memcached started on a free
# loopback port, and stopped by PID. The caller sets bench_name before
# sourcing it, THREADS before starting a server, and defines server_ready
# PORT (true once a server on PORT answers).

# Defaults of the tools (the environment overrides each), from the build
# tree (top_builddir, else the current directory) or the PATH.
top=${top_builddir:-.}
BITCACHED=${BITCACHED:-$top/bitcached}
MEMCACHED=${MEMCACHED:-$(command -v memcached || true)}
MEMASLAP=${MEMASLAP:-$(command -v memcaslap || command -v memaslap || true)}
BENCH_LOAD=${BENCH_LOAD:-$top/tests/bench/bench_load}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bc-$bench_name.XXXXXX") || exit 1
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

# start_server bitcached|memcached [ARG...]: sets pid and port; the extra
# arguments go to either server; retries on a port race.
start_server() {
    which=$1
    shift
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        if [ "$which" = bitcached ]; then
            "$BITCACHED" --data-dir="$tmp/data" --sync=interval -t "$THREADS" \
                -l 127.0.0.1 -p "$port" "$@" 2>>"$tmp/server.log" &
        else
            user=
            [ "$(id -u)" = 0 ] && user="-u root"
            # shellcheck disable=SC2086
            "$MEMCACHED" -U 0 -m 2048 -t "$THREADS" -l 127.0.0.1 -p "$port" $user \
                "$@" 2>>"$tmp/server.log" &
        fi
        pid=$!
        if server_ready "$port" && kill -0 "$pid" 2>/dev/null; then
            return 0
        fi
        stop_server
    done
    echo "$bench_name: $which did not start" >&2
    cat "$tmp/server.log" >&2
    exit 1
}

# rotate "A B C" N: the words turned left N times ("B C A" for N = 1), so
# that each round of a side-by-side bench starts with another server.
rotate() {
    rot_n=$2
    set -- $1
    rot_n=$((rot_n % $#))
    rot_head=
    rot_tail=
    for w in "$@"; do
        if [ "$rot_n" -gt 0 ]; then
            rot_tail="$rot_tail $w"
            rot_n=$((rot_n - 1))
        else
            rot_head="$rot_head $w"
        fi
    done
    echo $rot_head $rot_tail
}
