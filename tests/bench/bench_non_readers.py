#!/usr/bin/env python3
"""bench_non_readers.py - issue 12's non-reading clients, side by side.

Starts a server (bitcached, or memcached with --memcached), stores 100
values of 100 KB, then connects 200 clients that each pipeline 5 gets of all
100 keys and never read. Meanwhile a well-behaved client times a get/set
round trip every 2 ms. Prints the server's peak RSS, its RSS after the
clients left, and the well-behaved client's p50/p99/max latency.

    tests/bench/bench_non_readers.py ./bitcached
    tests/bench/bench_non_readers.py --memcached /usr/bin/memcached

Loopback only, on a free port; the server is stopped by its PID. Not part
of make check.
"""
import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

CLIENTS, KEYS, GETS, VLEN = 200, 100, 5, 100 * 1000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def recv_until(s, end):
    buf = b""
    while not buf.endswith(end):
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("server closed the probe connection")
        buf += chunk
    return buf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--memcached", action="store_true",
                    help="the binary is memcached")
    ap.add_argument("--hold", type=float, default=4.0,
                    help="seconds the non-readers stay connected")
    a = ap.parse_args()

    port = free_port()
    tmp = tempfile.mkdtemp()
    cmd = [a.binary, "-p", str(port), "-l", "127.0.0.1", "-t", "4"]
    if a.memcached:
        cmd += ["-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
    else:
        cmd += ["--data-dir", os.path.join(tmp, "data")]
    srv = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                ctl = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)
        val = b"v" * VLEN
        keys = ["nr%d" % k for k in range(KEYS)]
        for k in keys:
            ctl.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), VLEN, val))
            recv_until(ctl, b"\r\n")
        line = ("get " + " ".join(keys) + "\r\n").encode()
        base = rss_kb(srv.pid)

        stop = threading.Event()
        lat = []
        peak = [base]

        def sampler():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kb(srv.pid))
                time.sleep(0.01)

        def probe():
            s = socket.create_connection(("127.0.0.1", port))
            i = 0
            while not stop.is_set():
                t0 = time.monotonic()
                if i % 2 == 0:
                    s.sendall(b"get probe\r\n")
                    recv_until(s, b"END\r\n")
                else:
                    s.sendall(b"set probe 0 0 5\r\nhello\r\n")
                    recv_until(s, b"\r\n")
                lat.append((time.monotonic() - t0) * 1000)
                i += 1
                time.sleep(0.002)
            s.close()

        threads = [threading.Thread(target=sampler),
                   threading.Thread(target=probe)]
        for t in threads:
            t.start()
        clients = []
        for _ in range(CLIENTS):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.connect(("127.0.0.1", port))
            c.setblocking(False)
            try:
                c.sendall(line * GETS)
            except BlockingIOError:
                pass
            clients.append(c)
        time.sleep(a.hold)
        for c in clients:
            c.close()
        time.sleep(2.0)
        after = rss_kb(srv.pid)
        stop.set()
        for t in threads:
            t.join()
        lat.sort()
        print("%s: rss %d kB before, peak %d kB, %d kB after the clients "
              "left; other client %d requests, p50 %.2f ms, p99 %.2f ms, "
              "max %.2f ms" % (
                  "memcached" if a.memcached else "bitcached", base, peak[0],
                  after, len(lat), lat[len(lat) // 2],
                  lat[len(lat) * 99 // 100], lat[-1]))
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
