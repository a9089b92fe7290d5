#!/usr/bin/env python3
"""test_uring.py - cold value reads through the workers' io_uring (issue 16):

- connections that close while their reads are in flight (multi-gets of
  cold keys, closed at once) leave the server serving, with no read left
  active, and every value it answers right;
- a server stopped (SIGTERM) with reads in flight exits 0 in time;
- where io_uring is refused as a seccomp filter refuses it (the noring
  helper makes io_uring_setup fail with EPERM, then ENOSYS), the server
  logs it and falls back to its I/O threads (io_engine threads), or with
  --io-threads=0 to reading on the workers (io_engine none), and cold gets
  are still answered right.

Against a sanitizer build the first two also check that no read touches a
freed connection. Skips where the kernel refuses io_uring to the test
itself.
"""
import os
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bcserver  # noqa: E402

NKEYS = 3000
VLEN = 4096
check = bcserver.check
recv_n = bcserver.recv_n
drop_cache = bcserver.drop_cache


def key(i):
    return b"ur:%06d" % i


def value(i):
    return (b"%06d|" % i) * (VLEN // 7) + b"v" * (VLEN % 7)


def fill(srv):
    s = srv.connect(timeout=60)
    for start in range(0, NKEYS, 200):
        end = min(NKEYS, start + 200)
        s.sendall(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (key(i), VLEN,
                                                         value(i))
                           for i in range(start, end)))
        recv_n(s, 8 * (end - start))
    s.close()


def stats(srv):
    return srv.stats(b"storage")


def get_right(srv, keys):
    """A multi-get of keys answered with their values, in order."""
    s = srv.connect(timeout=30)
    s.sendall(b"get " + b" ".join(key(i) for i in keys) + b"\r\n")
    want = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (key(i), VLEN, value(i))
                    for i in keys) + b"END\r\n"
    got = recv_n(s, len(want))
    s.close()
    return got == want


class Srv(bcserver.Server):
    """A bitcached started through a prefix command (the noring helper)."""

    def __init__(self, binary, args, prefix=()):
        super().__init__(binary, "bitcached", args)
        self.prefix = list(prefix)
        self.log = os.path.join(self.tmp, "log")

    def argv(self):
        return self.prefix + super().argv() + ["--log-file=" + self.log]

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""


def closers(srv, rounds):
    """Connections that ask for 16 cold keys and close at once."""
    def run(seed):
        for r in range(rounds):
            s = srv.connect(timeout=30)
            base = (seed * 997 + r * 131) % (NKEYS - 16)
            s.sendall(b"get " + b" ".join(key(base + j) for j in range(16))
                      + b"\r\n")
            s.close()
    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_closed_in_flight(binary):
    srv = Srv(binary, ["-t", "2", "--sync=never", "--io-engine=uring"])
    try:
        srv.start()
        fill(srv)
        check("io_engine uring", stats(srv).get("io_engine") == "uring",
              stats(srv).get("io_engine"))
        for _ in range(3):
            drop_cache(srv.data)
            closers(srv, 40)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                stats(srv).get("cold_reads_active") != "0":
            time.sleep(0.05)
        st = stats(srv)
        print("cold reads %s, active %s" % (st.get("cold_reads"),
                                            st.get("cold_reads_active")))
        check("closed connections' reads all came back",
              st.get("cold_reads_active") == "0", st.get("cold_reads_active"))
        if st.get("cold_reads_active") != "0":
            # Seen under load, about once in 150 runs: then the reads sat
            # in the kernel (no SQE left to submit, no CQE to reap) until
            # the worker submitted another read. Say whether that is
            # still what lets them go.
            drop_cache(srv.data)
            poked = get_right(srv, [0])
            time.sleep(1)
            st2 = stats(srv)
            print("after one more cold get (%s): cold reads %s, active %s"
                  % ("right" if poked else "wrong", st2.get("cold_reads"),
                     st2.get("cold_reads_active")))
        check("cold reads went through the ring",
              int(st.get("cold_reads", "0")) > 0, st.get("cold_reads"))
        drop_cache(srv.data)
        check("values right after the closed connections' reads",
              get_right(srv, range(100, 140)))
        check("server alive", srv.alive())
    finally:
        srv.close()


def test_stop_in_flight(binary):
    srv = Srv(binary, ["-t", "2", "--sync=never", "--io-engine=uring"])
    try:
        srv.start()
        fill(srv)
        drop_cache(srv.data)
        socks = []
        for c in range(8):
            s = srv.connect(timeout=30)
            base = c * 300
            s.sendall(b"".join(b"get " + b" ".join(key(base + j + k * 16)
                                                   for j in range(16)) +
                               b"\r\n" for k in range(10)))
            socks.append(s)
        srv.proc.send_signal(15)
        t0 = time.monotonic()
        try:
            rc = srv.proc.wait(15)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t0
        for s in socks:
            s.close()
        print("stopped with reads in flight: exit %s after %.2f s" % (rc, took))
        check("SIGTERM with reads in flight exits 0", rc == 0, rc)
    finally:
        srv.close()


def test_refused(binary, noring, err, io_threads):
    srv = Srv(binary, ["-t", "2", "--sync=never", "--io-engine=uring",
                       "--io-threads=%d" % io_threads],
              prefix=[noring, err])
    try:
        srv.start()
        fill(srv)
        drop_cache(srv.data)
        ok = get_right(srv, range(500, 540))
        st = stats(srv)
        want = "threads" if io_threads > 0 else "none"
        what = "io_uring refused (%s), --io-threads=%d" % (err, io_threads)
        check(what + ": io_engine " + want, st.get("io_engine") == want,
              st.get("io_engine"))
        check(what + ": cold gets right", ok)
        if io_threads > 0:
            check(what + ": cold reads on the I/O threads",
                  int(st.get("cold_reads", "0")) > 0, st.get("cold_reads"))
        log = srv.log_text()
        check(what + ": logged", "io_uring unavailable" in log, log[-300:])
    finally:
        srv.close()


def main():
    binary = bcserver.binary()
    if not bcserver.uring_available():
        bcserver.skip("a build without liburing, or io_uring refused to "
                      "this process")
    noring = next((p for p in (os.path.join(HERE, "noring"),
                               os.path.join("tests", "integration", "noring"))
                   if bcserver.executable(p)), None)
    test_closed_in_flight(binary)
    test_stop_in_flight(binary)
    if noring is not None:
        test_refused(binary, noring, "EPERM", 4)
        test_refused(binary, noring, "ENOSYS", 0)
    else:
        check("noring helper built (make check builds it)", False)
    return bcserver.finish()


if __name__ == "__main__":
    sys.exit(main())
