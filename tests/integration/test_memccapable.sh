#!/bin/sh
# test_memccapable.sh - memcached's own conformance tool (memccapable, ascii
# and binary tests) against the server under test on a free port and temp data dir.
# Skips (77) when the server binary or memccapable is missing.
set -u

[ -n "${MEMCCAPABLE:-}" ] && [ -x "$MEMCCAPABLE" ] || { echo "SKIP: no memccapable"; exit 77; }
[ -n "${BITCACHED:-}" ] && [ -x "$BITCACHED" ] || { echo "SKIP: no server binary"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bc-capable.XXXXXX") || exit 99
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 99' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A free port can be taken between picking and binding: retry a few times.
started=
for attempt in 1 2 3 4 5; do
    port=$(free_port) || exit 99
    "$BITCACHED" --data-dir="$tmp/data" -l 127.0.0.1 -p "$port" &
    pid=$!
    i=0
    while [ $i -lt 200 ]; do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; then
            started=1
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
        i=$((i + 1))
    done
    [ -n "$started" ] && break
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
done
[ -n "$started" ] || { echo "FAIL: server did not start"; exit 1; }

"$MEMCCAPABLE" -t 10 -h 127.0.0.1 -p "$port" > "$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
if [ $rc -ne 0 ]; then
    echo "FAIL: memccapable exited $rc"
    exit 1
fi
if grep -qi 'fail\]' "$tmp/out"; then
    echo "FAIL: some memccapable test failed"
    exit 1
fi
if ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: server died"
    exit 1
fi
exit 0
