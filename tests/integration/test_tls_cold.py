#!/usr/bin/env python3
# test_tls_cold.py - a TLS connection whose get waits for a cold read
# (issue 16) keeps its read event registered, as a plain one does: no
# epoll_ctl per cold get (it used to remove the event at each park and
# add it back at each resume), and what the client sends meanwhile is read
# ahead through OpenSSL without running it.
#   - sequential gets of keys whose pages were dropped from the page cache
#     (fsync, POSIX_FADV_DONTNEED), over TLS: every value right, the
#     server counts them as cold reads, and its epoll_ctl calls meanwhile
#     (strace attached to every thread) stay far below one per get;
#   - pipelined gets of cold and hot keys, sent in pieces while earlier
#     ones wait for their reads (slowed by the crash shim where there is
#     one): answered in order, every value right;
#   - a cold get followed by more requests than a waiting connection
#     reads ahead: all answered in order once the read is back.
# Skips without strace (or where it cannot attach) or the openssl command.
import os
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402
import test_cold_read as cr  # noqa: E402
import test_tls as tt  # noqa: E402
import test_tls_park as tp  # noqa: E402

check = bcserver.Checks(verbose=True)
NKEYS = 160
GETS = 40
DELAY_MS = 20
BURST_MN = 40000  # 156 KiB of mn: past the read-ahead limit (64 KiB)


def want_get(i):
    return cr.text_value(cr.key(i), cr.value(i)) + b"END\r\n"


def cold_reads(s):
    return int(tt.stats(s, b"storage").get("cold_reads", "0"))


def run(bc, shim, p):
    srv = cr.ShimServer(bc, shim, tt.tls_args(p) + [
        "-t", "1", "--sync=never", "--io-engine=threads",
        "--io-threads=4"], delay_ms=DELAY_MS)
    srv.start(timeout=30)
    trace = os.path.join(srv.tmp, "epoll.trace")
    st = None
    try:
        s = tt.tls_connect(srv.port, tt.client_ctx(p))
        s.settimeout(30)
        cr.set_many(s, [(cr.key(i), cr.value(i)) for i in range(NKEYS)])
        cr.set_many(s, [(b"hot", b"h" * 100)])
        cr.drop_cache(srv.data)
        hot = cr.text_value(b"hot", b"h" * 100) + b"END\r\n"
        s.sendall(b"get hot\r\n")  # its page back in the cache
        check(cr.recv_n(s, len(hot)) == hot, "a hot get over TLS")
        before = cold_reads(s)
        st = tp.attach(srv.proc.pid, trace)
        if st is None:
            print("SKIP: strace cannot attach here")
            return 77
        # slowed from here (where the shim is): a read that may not wait
        # then never finds a dropped page read within it, as on a fast
        # virtual disk it often does (the get would not be a cold read)
        srv.slow(True)
        bad = []
        for i in range(GETS):
            s.sendall(b"get " + cr.key(i) + b"\r\n")
            if cr.recv_n(s, len(want_get(i))) != want_get(i):
                bad.append(i)
        time.sleep(0.2)
        st.send_signal(signal.SIGINT)  # detaches
        st.wait(10)
        st = None
        n = tp.calls(trace)
        cold = cold_reads(s) - before
        check(not bad, "%d sequential cold gets over TLS return their "
              "values (wrong: %r)" % (GETS, bad[:5]))
        print("cold reads: %d; epoll_ctl calls during %d cold gets: %d"
              % (cold, GETS, n))
        check(cold >= GETS // 2, "the gets were cold (%d cold reads)" % cold)
        check(n < GETS // 4,
              "a TLS connection waiting for a cold read keeps its read event "
              "(%d epoll_ctl for %d gets)" % (n, GETS))

        # pipelined, in pieces: the later pieces arrive while an earlier
        # get waits for its (slowed) read, and are read ahead
        srv.slow(True)
        keys = list(range(GETS, NKEYS))
        reqs, want = [], b""
        for j, i in enumerate(keys):
            reqs.append(b"get " + cr.key(i) + b"\r\n")
            want += want_get(i)
            if j % 10 == 9:
                reqs.append(b"get hot\r\n")
                want += hot
        t0 = time.monotonic()
        for k in range(0, len(reqs), 7):
            s.sendall(b"".join(reqs[k:k + 7]))
            time.sleep(0.001)
        got = cr.recv_n(s, len(want))
        took = time.monotonic() - t0
        srv.slow(False)
        first = next((k for k in range(min(len(got), len(want)))
                      if got[k] != want[k]), min(len(got), len(want)))
        check(got == want, "%d pipelined gets of cold keys over TLS are "
              "answered in order, every value right (first difference at "
              "byte %d of %d)" % (len(reqs), first, len(want)))
        print("%d pipelined gets (%d cold): %.2f s"
              % (len(reqs), len(keys), took))
        s.sendall(b"get " + cr.key(0) + b"\r\n")
        check(cr.recv_n(s, len(want_get(0))) == want_get(0),
              "the connection goes on after the pipeline")

        # more than the read-ahead limit behind a cold get: reading stops
        # while it waits and starts again at its resume, the records
        # OpenSSL already holds taken then without a socket event
        cr.drop_cache(srv.data)
        srv.slow(True)
        ok = True
        for i in range(3):
            burst = b"get " + cr.key(i) + b"\r\n" + b"mn\r\n" * BURST_MN
            want = want_get(i) + b"MN\r\n" * BURST_MN
            # the replies fit in the server's queue (OUT_HIGH), so all of
            # it is sent before reading (one thread per TLS socket)
            s.sendall(burst)
            got = cr.recv_n(s, len(want))
            ok = ok and got == want
        srv.slow(False)
        check(ok, "a cold get followed by %d KiB of requests over TLS: all "
              "answered in order" % (len(burst) // 1024))
        s.sendall(b"get hot\r\n")
        check(cr.recv_n(s, len(hot)) == hot, "and the connection goes on")
        s.close()
        return check.finish()
    finally:
        if st is not None:
            st.send_signal(signal.SIGINT)
            st.wait(10)
        srv.slow(False)
        srv.close()


def main():
    bc = cm.binary()
    if not bcserver.executable(bc):
        bcserver.skip("no server binary")
    if not tt.OPENSSL:
        bcserver.skip("no openssl command to make the test certificates")
    if not shutil.which("strace"):
        bcserver.skip("no strace to count epoll_ctl")
    shim = cm.usable_shim(bc)
    if shim is None:
        print("no crash shim, or a sanitizer build: cold reads are not "
              "slowed")
    d = bcserver.mkdtemp("bc-tlscold.")
    os.chmod(d, 0o755)
    try:
        return run(bc, shim, tt.make_certs(d))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
