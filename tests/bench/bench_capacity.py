#!/usr/bin/env python3
"""bench_capacity.py - how many small items a server holds, and its own memory.

Loads N items (20-byte keys, 100-byte values, pipelined noreply sets) into
a server it starts on a free loopback port, then counts the keys that still
hit and reads the server's RssAnon (/proc/PID/status; its peak is sampled
every 50,000 sets). Not part of make check. With -m and more items than
fit, both servers evict: compare items_held (issue 9).

    bench_capacity.py [-n N] bitcached ./bitcached [ARGS...]
    bench_capacity.py [-n N] memcached /usr/bin/memcached -m 64

For bitcached a temporary --data-dir is added. Prints key=value lines.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

KEY = b"key:%016d"  # 20 bytes
VALUE = b"v" * 100
BATCH = 2000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(port, timeout_s=20.0):
    end = time.monotonic() + timeout_s
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=60)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return -1


def read_until(sock, buf, end):
    while not buf.endswith(end):
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf


def load(sock, n, pid):
    """Returns the peak RssAnon (KiB) seen between batches."""
    peak = 0
    for start in range(0, n, BATCH):
        if start % (BATCH * 25) == 0:
            peak = max(peak, rss_anon_kib(pid))
        parts = []
        for i in range(start, min(n, start + BATCH)):
            parts.append(b"set " + KEY % i + b" 0 0 100 noreply\r\n" + VALUE
                         + b"\r\n")
        sock.sendall(b"".join(parts))
        # a round trip per batch keeps the server's input bounded
        sock.sendall(b"mn\r\n")
        read_until(sock, b"", b"MN\r\n")
    return max(peak, rss_anon_kib(pid))


def count_hits(sock, n):
    hits = 0
    for start in range(0, n, 100):
        keys = b" ".join(KEY % i for i in range(start, min(n, start + 100)))
        sock.sendall(b"get " + keys + b"\r\n")
        buf = read_until(sock, b"", b"END\r\n")
        hits += buf.count(b"VALUE ")
    return hits


def stats(sock, sub=b""):
    sock.sendall(b"stats " + sub + b"\r\n")
    buf = read_until(sock, b"", b"END\r\n")
    out = {}
    for line in buf.split(b"\r\n"):
        f = line.split()
        if len(f) == 3 and f[0] == b"STAT":
            out[f[1].decode()] = f[2].decode()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000000)
    ap.add_argument("kind", choices=["bitcached", "memcached"])
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    port = free_port()
    cmd = list(a.cmd) + ["-p", str(port), "-l", "127.0.0.1", "-U", "0"]
    tmp = None
    if a.kind == "bitcached":
        tmp = tempfile.mkdtemp(prefix="bench-capacity-")
        cmd += ["--data-dir", tmp]
    proc = subprocess.Popen(cmd)
    try:
        sock = connect(port)
        rss0 = rss_anon_kib(proc.pid)
        t0 = time.monotonic()
        peak = load(sock, a.n, proc.pid)
        load_s = time.monotonic() - t0
        rss = rss_anon_kib(proc.pid)
        hits = count_hits(sock, a.n)
        st = stats(sock)
        print("server=%s" % a.kind)
        print("items_loaded=%d" % a.n)
        print("items_held=%d" % hits)
        print("load_s=%.1f" % load_s)
        print("rss_anon_start_kib=%d" % rss0)
        print("rss_anon_loaded_kib=%d" % rss)
        print("rss_anon_peak_kib=%d" % peak)
        print("rss_anon_per_item_b=%.1f" % ((rss - rss0) * 1024.0 / max(hits, 1)))
        print("curr_items=%s" % st.get("curr_items"))
        print("evictions=%s" % st.get("evictions"))
        print("limit_maxbytes=%s" % st.get("limit_maxbytes"))
        if a.kind == "bitcached":
            ss = stats(sock, b"storage")
            for k in sorted(ss):
                if "keydir" in k:
                    print("%s=%s" % (k, ss[k]))
        sock.close()
    finally:
        proc.terminate()
        proc.wait()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
