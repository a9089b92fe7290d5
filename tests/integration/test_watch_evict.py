#!/usr/bin/env python3
"""test_watch_evict.py - `watch evictions` (issue 11): a small -m server
filled far past its budget logs one line per evicted item in memcached
1.6.18's format (type=eviction, key, fetch, ttl, la, clsid, size); every key
logged is one that was written, logged once, and really gone; lines logged
plus lines reported lost account for no more than the evictions counted,
and for most of them with a watcher that keeps up; a watcher that does not
keep up is told how many lines it lost (skipped=N); watchers of other
streams get no eviction lines.
"""
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

failures = []
KEY = b"wkey-%07d"
VALUE = b"v" * 100
N = 60000
LINE_RE = re.compile(rb"^ts=\d+\.\d+ gid=\d+ type=eviction key=(\S+) "
                     rb"fetch=(yes|no) ttl=(-?\d+) la=(\d+) clsid=(\d+) "
                     rb"size=(\d+)$")


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def command(sock, req, end=b"\r\n"):
    sock.sendall(req)
    data, _ = bcserver.recv_until(sock, [end])
    return data


def set_many(sock, lo, hi, batch=500):
    """Keys lo..hi-1 (odd ones with a one-hour TTL), noreply, then a sync."""
    for start in range(lo, hi, batch):
        end = min(hi, start + batch)
        sock.sendall(b"".join(b"set " + KEY % i + b" 0 %d 100 noreply\r\n"
                              % (3600 if i % 2 else 0) + VALUE + b"\r\n"
                              for i in range(start, end)))
        command(sock, b"mn\r\n", b"MN\r\n")


def stat(sock, name):
    data = command(sock, b"stats\r\n", b"END\r\n")
    m = re.search(rb"STAT " + name.encode() + rb" (\d+)", data)
    return int(m.group(1)) if m else -1


class Reader(threading.Thread):
    """Reads a watcher's lines until stopped."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.data = b""
        self.stop = False

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            self.data += chunk


def watcher(srv, what, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", srv.port))
    check(command(s, b"watch " + what + b"\r\n") == b"OK\r\n",
          "watch %s accepted" % what.decode())
    return s


def main():
    bc = bcserver.binary()
    # a log buffer that holds every line, so a watcher slowed down by a
    # loaded machine still gets most of them
    srv = bcserver.Server(bc, args=["-m", "2", "--shards", "4",
                                    "-o", "watcher_logbuf_size=16384"])
    srv.start()
    try:
        fast = watcher(srv, b"evictions")
        other = watcher(srv, b"fetchers mutations")
        readers = [Reader(fast), Reader(other)]
        for r in readers:
            r.start()
        c = srv.connect()
        t0 = time.time()
        set_many(c, 0, N)
        deadline = time.monotonic() + 10
        ev = stat(c, "evictions")
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = stat(c, "evictions")
            if now == ev and fast_lines(readers[0]) >= 1:
                break
            ev = now
        # The lines are taken before the count is read: a line follows its
        # eviction's count, so lines taken first are never more than a
        # count read after them, even while evictions still go on (a
        # loaded machine can hold the evictor back past any pause); the
        # lines that lag behind the count are waited for.
        deadline = time.monotonic() + 30
        while True:
            data = readers[0].data
            evictions = stat(c, "evictions")
            named = sum(1 for ln in data.split(b"\n")[:-1]
                        if not ln.startswith(b"skipped="))
            if named >= min(evictions, 4096) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        check(evictions > 1000, "evictions happened (%d)" % evictions)

        lines = data.split(b"\n")
        tail = lines.pop()  # an incomplete last line, if any
        seen, skipped = {}, 0
        for line in lines:
            if line.startswith(b"skipped="):
                skipped += int(line[8:])
                continue
            m = LINE_RE.match(line)
            if not m:
                check(False, "eviction line format: %r" % line)
                break
            key, fetch, ttl, la, clsid, size = m.groups()
            idx = int(key[5:]) if key.startswith(b"wkey-") else -1
            check(0 <= idx < N, "logged key %r was written" % key)
            check(key not in seen, "key %r logged once" % key)
            seen[key] = (int(ttl), int(la), int(size), fetch)
            if len(failures) > 5:
                break
        print("%d evictions, %d lines, %d skipped, tail %r (%.1f s)"
              % (evictions, len(seen), skipped, tail, time.time() - t0))
        # an eviction is a line or counted in a later skipped=N; how many are
        # lines depends on how many items each eviction run drops (at most
        # 4096 are named per run), which depends on the machine's speed
        check(len(seen) + skipped <= evictions,
              "no more lines than evictions (%d + %d skipped > %d)"
              % (len(seen), skipped, evictions))
        check(len(seen) >= min(evictions, 4096),
              "evictions logged (%d of %d)" % (len(seen), evictions))
        took = int(time.time() - t0) + 2
        for key, (ttl, la, size, fetch) in seen.items():
            idx = int(key[5:])
            want_ttl = (3600 - took, 3600) if idx % 2 else (-1, -1)
            check(want_ttl[0] <= ttl <= want_ttl[1],
                  "%r ttl=%d within %r" % (key, ttl, want_ttl))
            check(0 <= la <= took, "%r la=%d within 0..%d" % (key, la, took))
            check(size == len(VALUE), "%r size=%d" % (key, size))
            check(fetch == b"no", "%r was never read: fetch=%r" % (key, fetch))
            if len(failures) > 5:
                break
        # every key logged is gone
        keys = list(seen)
        for i in range(0, len(keys), 100):
            got = command(c, b"get " + b" ".join(keys[i:i + 100]) + b"\r\n",
                          b"END\r\n")
            check(got == b"END\r\n", "logged keys are gone: %r" % got[:200])
            if len(failures) > 5:
                break
        check(b"type=eviction" not in readers[1].data,
              "fetchers/mutations watcher got no eviction lines")

    finally:
        for r in readers if "readers" in dir() else []:
            r.stop = True
        srv.close()
    slow_watcher(bc)
    print("%d failed" % len(failures))
    return 1 if failures else 0


def slow_watcher(bc):
    """A watcher that does not read while its 4 KiB log buffer fills loses
    lines; once it reads, the next eviction line comes after a skipped=N
    line saying how many."""
    srv = bcserver.Server(bc, args=["-m", "2", "--shards", "4",
                                    "-o", "watcher_logbuf_size=4"])
    srv.start()
    try:
        slow = watcher(srv, b"evictions", rcvbuf=4096)
        c = srv.connect()
        more = 0
        data = b""
        slow.settimeout(0.3)
        deadline = time.monotonic() + 20
        while b"skipped=" not in data and time.monotonic() < deadline:
            set_many(c, more, more + 20000)
            more += 20000
            if more < N:
                continue
            try:
                while True:
                    chunk = slow.recv(1 << 20)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                pass
        m = re.search(rb"(?:^|\n)skipped=(\d+)\n(ts=[^\n]*)\n", data)
        check(m is not None and int(m.group(1)) > 0 and
              LINE_RE.match(m.group(2)) is not None,
              "slow watcher told skipped=N before its next line: %r"
              % data[-300:])
    finally:
        srv.close()


def fast_lines(reader):
    return reader.data.count(b"\n")


if __name__ == "__main__":
    sys.exit(main())
