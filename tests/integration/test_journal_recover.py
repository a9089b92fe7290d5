#!/usr/bin/env python3
# test_journal_recover.py - --sync=always after a failed journal commit
# (issue 8): the crash shim fails the next fdatasync (the journal's commit)
# once, then the disk is fine again:
#   - the write that commit carried is answered SERVER_ERROR, never STORED,
#     in memcached's words for a store it could not make ("out of memory
#     storing object": the store is not read-only), and its value is never
#     read back (its key misses);
#   - the store recovers by itself: later writes are STORED (they used to
#     be refused until a restart);
#   - stats storage shows the failure and the recovery;
#   - after kill -9 and a restart every acknowledged write is there and the
#     failed one is not.
# Skips without the shim (or against a sanitizer build: no preload).
import os
import sys
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

ERR = b"SERVER_ERROR out of memory storing object"
check = bcserver.check
recv_lines = bcserver.recv_lines
get = bcserver.get_text


def test_recover(binary, shim):
    srv = bcserver.ShimServer(binary, shim, ["--sync=always", "-t", "1"], {})
    flag = os.path.join(srv.tmp, "fail-now")
    srv.shim_env = {"CRASHSHIM_FAIL": "fdatasync:1:EIO:1",
                    "CRASHSHIM_FAIL_WHILE": flag}
    srv.start(timeout=30)
    try:
        a = srv.connect(timeout=10)
        a.sendall(b"set before 0 0 2\r\nok\r\nset victim 0 0 2\r\nv1\r\n")
        check("writes before the fault are stored",
              recv_lines(a, 2) == [b"STORED", b"STORED"])
        open(flag, "w").close()  # the next fdatasync fails, once
        a.sendall(b"set victim 0 0 2\r\nv2\r\n")
        r = recv_lines(a, 1)
        check("the write of the failed commit gets SERVER_ERROR", r == [ERR],
              r)
        os.unlink(flag)
        r = get(a, b"victim")
        check("its key misses: the failed value is never read back",
              r == b"END\r\n", r)
        t0 = time.monotonic()
        stored = False
        while not stored and time.monotonic() - t0 < 10:
            a.sendall(b"set after0 0 0 2\r\nok\r\n")
            line = recv_lines(a, 1)
            stored = line == [b"STORED"]
            if not stored:
                time.sleep(0.02)
        check("the store recovers: writes are stored again (%.0f ms)" %
              ((time.monotonic() - t0) * 1000), stored)
        n = 200
        a.sendall(b"".join(b"set after%d 0 0 5\r\nv%04d\r\n" % (i, i)
                           for i in range(1, n)))
        r = recv_lines(a, n - 1)
        check("later writes are all stored", r == [b"STORED"] * (n - 1),
              r[:3])
        st = srv.stats(b"storage")
        check("stats storage shows the failure and the recovery",
              st.get("commit_failures") == "1" and
              st.get("commit_recoveries") == "1" and
              st.get("writes_undone") == "1" and
              int(st.get("write_errors", "0")) >= 1 and
              st.get("failed") == "0", st)
        a.close()
        srv.kill()  # kill -9: nothing acknowledged may be lost
        srv.shim_env = {}
        srv.start(timeout=30)
        b = srv.connect(timeout=10)
        check("after kill -9: a write from before the fault is there",
              get(b, b"before") == b"VALUE before 0 2\r\nok\r\nEND\r\n")
        check("after kill -9: the failed write is not back",
              get(b, b"victim") == b"END\r\n")
        missing = [i for i in range(1, n)
                   if get(b, b"after%d" % i) !=
                   b"VALUE after%d 0 5\r\nv%04d\r\nEND\r\n" % (i, i)]
        check("after kill -9: every write acknowledged after the recovery "
              "is there", not missing and
              get(b, b"after0") == b"VALUE after0 0 2\r\nok\r\nEND\r\n",
              missing[:5])
        b.close()
    finally:
        if os.path.exists(flag):
            os.unlink(flag)
        srv.close()


def main():
    binary = cm.binary()
    shim = cm.usable_shim(binary)
    if shim is None:
        bcserver.skip("needs the crash shim and a build without sanitizers")
    test_recover(binary, shim)
    sys.exit(bcserver.finish())


if __name__ == "__main__":
    main()
