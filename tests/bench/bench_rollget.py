#!/usr/bin/env python3
"""bench_rollget.py - the latency of small gets on the worker that rolls
segments over: one server thread (-t 1), 1 MiB segments, one connection
writing 64 KiB values as fast as it is answered (a roll-over every 16
sets) and another timing a get of a small key every 2 ms. Prints each
build's get latency (p50, p99, max), the sets it answered and its CPU
time per set, side by side. The writer runs in a process of its own, so
that the getter's timings do not include waits for the interpreter lock
the writer holds while it sends 64 KiB (a faster server would otherwise
read as slower gets).

Environment: BITCACHED (the build to measure, default ./bitcached),
BITCACHED_BEFORE (a build to compare with, optional), SECONDS (per
round, default 4), ROUNDS (default 3), SYNC (default interval),
SHIM and SHIM_DELAY_MS: the crash shim (tests/crash/crashshim.so) and a
delay of every fdatasync under the data directory (a slow disk), or of
the calls SHIM_DELAY_CALLS names (the shim's CRASHSHIM_DELAY list, e.g.
fallocate). SEGMENT: --segment-size (default 1m). RATE:
sets per second at most (default: as fast as they are answered), so that
builds that answer sets at different speeds are compared at the same load.
"""
import multiprocessing
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import bcserver  # noqa: E402

VALUE = b"x" * (64 * 1024)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        p = f.read().rsplit(")", 1)[1].split()
    return (int(p[11]) + int(p[12])) / os.sysconf("SC_CLK_TCK")


def writer(srv, stop, count):
    s = srv.connect()
    i = 0
    rate = float(os.environ.get("RATE", "0") or 0)
    t0 = time.monotonic()
    while not stop.is_set():
        if rate > 0:
            ahead = t0 + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        key = b"big%d" % (i % 4096)
        s.sendall(b"set " + key + b" 0 0 %d\r\n" % len(VALUE) + VALUE +
                  b"\r\n")
        bcserver.recv_until(s, [b"STORED\r\n"])
        i += 1
    count.value = i
    s.close()


def getter(srv, stop, lat):
    s = srv.connect()
    s.sendall(b"set small 0 0 5\r\nhello\r\n")
    bcserver.recv_until(s, [b"STORED\r\n"])
    while not stop.is_set():
        t0 = time.monotonic()
        s.sendall(b"get small\r\n")
        bcserver.recv_until(s, [b"END\r\n"])
        lat.append(time.monotonic() - t0)
        time.sleep(0.002)
    s.close()


def one_round(binary, seconds):
    args = ["-t", "1", "--segment-size=" + os.environ.get("SEGMENT", "1m"),
            "--sync=" + os.environ.get("SYNC", "interval")]
    shim = os.environ.get("SHIM", "")
    env = {}
    if shim and os.environ.get("SHIM_DELAY_MS"):
        env = {"CRASHSHIM_DELAY": os.environ.get("SHIM_DELAY_CALLS",
                                                 "fdatasync") +
               ":" + os.environ["SHIM_DELAY_MS"]}
    srv = bcserver.ShimServer(binary, shim, args, env)
    srv.start()
    try:
        stop = threading.Event()
        wstop = multiprocessing.Event()
        lat, count = [], multiprocessing.Value("q", 0)
        c0 = cpu_s(srv.proc.pid)
        w = multiprocessing.Process(target=writer, args=(srv, wstop, count))
        g = threading.Thread(target=getter, args=(srv, stop, lat))
        w.start()
        g.start()
        time.sleep(seconds)
        stop.set()
        wstop.set()
        g.join()
        w.join()
        cpu = cpu_s(srv.proc.pid) - c0
    finally:
        srv.close()
    return lat, count.value, cpu


def summary(lat):
    lat = sorted(lat)
    n = len(lat)
    return (lat[n // 2] * 1e3, lat[min(n - 1, int(n * 0.99))] * 1e3,
            lat[-1] * 1e3)


def main():
    builds = [("after", os.environ.get("BITCACHED", "./bitcached"))]
    if os.environ.get("BITCACHED_BEFORE"):
        builds.insert(0, ("before", os.environ["BITCACHED_BEFORE"]))
    seconds = float(os.environ.get("SECONDS", "4"))
    rounds = int(os.environ.get("ROUNDS", "3"))
    res = {name: ([], 0, 0.0) for name, _ in builds}
    for _ in range(rounds):
        for name, binary in builds:
            lat, n, cpu = one_round(binary, seconds)
            a, b, c = res[name]
            res[name] = (a + lat, b + n, c + cpu)
    print("%-7s %8s %8s %8s %8s %10s" %
          ("build", "gets", "p50 ms", "p99 ms", "max ms", "sets"))
    for name, _ in builds:
        lat, n, cpu = res[name]
        p50, p99, mx = summary(lat)
        print("%-7s %8d %8.3f %8.3f %8.3f %10d  (%.1f us CPU/set)" %
              (name, len(lat), p50, p99, mx, n, cpu / max(n, 1) * 1e6))


if __name__ == "__main__":
    main()
