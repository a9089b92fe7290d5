#!/usr/bin/env python3
# test_clock_step.py - a wall clock stepped back stretches no wait of the
# server. Under the clock shim (clockshim.c) the wall clock reads an hour
# ahead of the kernel's, so a wait timed against a wall-clock deadline
# would last an hour, as after a clock stepped back by an hour (an NTP
# correction at boot):
#   - --sync=interval: the background fdatasync keeps its interval
#     (stats storage `syncs` grows within a few intervals), so a power
#     loss still costs at most --sync-interval-ms of writes;
#   - --sync=always under concurrent pipelined sets: commits spaced under
#     load keep answering (every set STORED within seconds).
# Skips against a sanitizer build (the shim cannot be preloaded into it).
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

check = bcserver.check
AHEAD_S = 3600


def shim_path():
    top = os.environ.get("top_builddir", os.path.join(HERE, "..", ".."))
    s = os.path.abspath(os.path.join(top, "tests", "integration",
                                     "clockshim.so"))
    return s if os.path.isfile(s) else ""


def shimmed(binary, shim, args):
    srv = bcserver.Server(binary, args=args)
    srv.env = dict(os.environ, LD_PRELOAD=shim,
                   CLOCKSHIM_AHEAD_S=str(AHEAD_S))
    srv.start()
    return srv


def storage_syncs(srv):
    return int(srv.stats(b"storage").get("syncs", "0"))


def test_interval(binary, shim):
    srv = shimmed(binary, shim, ["--sync=interval", "--sync-interval-ms=100"])
    try:
        s = srv.connect()
        # the shim works: the server's wall clock is an hour ahead
        now = int(bcserver.stats_on(s).get("time", "0"))
        check("the shim moves the server's wall clock",
              now - time.time() > AHEAD_S - 60, "time %d" % now)
        before = storage_syncs(srv)
        grew = False
        deadline = time.monotonic() + 5.0
        i, stored = 0, 0
        while time.monotonic() < deadline and not grew:
            s.sendall(b"set k%d 0 0 1\r\nv\r\n" % i)
            stored += bcserver.recv_lines(s, 1) == [b"STORED"]
            i += 1
            time.sleep(0.05)
            grew = storage_syncs(srv) > before
        check("interval syncs go on with the wall clock an hour ahead", grew,
              "syncs %d before, %d after %d sets"
              % (before, storage_syncs(srv), i))
        check("interval: every set stored", stored == i, "%d of %d" % (stored, i))
        s.close()
    finally:
        srv.close()


def test_always(binary, shim):
    srv = shimmed(binary, shim, ["--sync=always", "-t", "2"])
    conns, per_batch, batches = 8, 40, 10
    done = [0] * conns
    try:
        def writer(n):
            c = srv.connect(timeout=30)
            try:
                for b in range(batches):
                    req = b"".join(b"set c%d-%d-%d 0 0 4\r\nval%d\r\n"
                                   % (n, b, j, j % 10)
                                   for j in range(per_batch))
                    c.sendall(req)
                    lines = bcserver.recv_lines(c, per_batch, timeout=30)
                    done[n] += sum(1 for x in lines if x == b"STORED")
            except OSError:
                pass
            finally:
                c.close()

        t0 = time.monotonic()
        ts = [threading.Thread(target=writer, args=(n,)) for n in range(conns)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        took = time.monotonic() - t0
        total = conns * per_batch * batches
        check("always: every concurrent set stored", sum(done) == total,
              "%d of %d" % (sum(done), total))
        check("always: the sets answered within 20 s", took < 20,
              "%d sets took %.1f s" % (total, took))
        st = srv.stats(b"storage")
        check("always: commits carried several writes, so they were spaced",
              float(st.get("writes_per_sync", "0")) >= 4,
              "writes_per_sync %s" % st.get("writes_per_sync"))
    finally:
        srv.close()


def main():
    binary = bcserver.binary()
    if cm.is_sanitized(binary):
        bcserver.skip("sanitizer build: the clock shim cannot be preloaded")
    shim = shim_path()
    if not shim:
        bcserver.skip("no tests/integration/clockshim.so (build with make check)")
    test_interval(binary, shim)
    test_always(binary, shim)
    sys.exit(bcserver.finish())


if __name__ == "__main__":
    main()
