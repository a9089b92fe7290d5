#!/usr/bin/env python3
# test_tls_park.py - under --sync=always a TLS connection whose write waits
# for its commit is parked like a plain one: it keeps its read event (no
# epoll_ctl per commit; it used to remove and add it each time) and reads
# what the client sends meanwhile through OpenSSL without running it.
#   - sequential sets over TLS, each parking its connection: the server's
#     epoll_ctl calls meanwhile (counted by strace attached to every
#     thread) stay far below one per set;
#   - a pipelined burst sent in pieces while the connection is parked is
#     answered in order, and every value is there.
# Skips without strace (or where it cannot attach) or the openssl command.
import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bcserver  # noqa: E402
import test_tls as tt  # noqa: E402

check = bcserver.Checks(verbose=True)
SETS = 60


def attach(pid, out):
    """strace on every thread of pid, counting epoll_ctl; None if it
    cannot attach."""
    tids = os.listdir("/proc/%d/task" % pid)
    argv = [shutil.which("strace"), "-qq", "-e", "trace=epoll_ctl",
            "-o", out]
    for t in tids:
        argv += ["-p", t]
    st = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    # Wait until strace traces every thread (a call made before would go
    # uncounted and let the check below pass for the wrong reason).
    deadline = time.monotonic() + 30
    while st.poll() is None and time.monotonic() < deadline:
        if all(traced(pid, t) for t in tids):
            return st
        time.sleep(0.05)
    if st.poll() is None:
        st.send_signal(signal.SIGINT)
        st.wait(10)
    return None


def traced(pid, tid):
    """Whether a tracer is attached to thread tid of pid."""
    try:
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for ln in f:
                if ln.startswith("TracerPid:"):
                    return int(ln.split()[1]) != 0
    except FileNotFoundError:
        return True  # the thread is gone: nothing of it to count
    return False


def calls(path):
    with open(path) as f:
        return sum(1 for ln in f if "epoll_ctl(" in ln)


def run(bc, p):
    srv = bcserver.Server(bc, "bitcached",
                          tt.tls_args(p) + ["--sync=always", "-t", "1"])
    srv.start(timeout=30)
    trace = os.path.join(srv.tmp, "epoll.trace")
    st = None
    try:
        s = tt.tls_connect(srv.port, tt.client_ctx(p))
        check(tt.call(s, b"set warm 0 0 1\r\nx\r\n") == b"STORED\r\n",
              "a set over TLS is stored")
        st = attach(srv.proc.pid, trace)
        if st is None:
            print("SKIP: strace cannot attach here")
            return 77
        replies = [tt.call(s, b"set k%d 0 0 2\r\nv%d\r\n" % (i, i % 10))
                   for i in range(SETS)]
        time.sleep(0.2)
        st.send_signal(signal.SIGINT)  # detaches
        st.wait(10)
        st = None
        n = calls(trace)
        check(replies == [b"STORED\r\n"] * SETS,
              "%d sequential sets over TLS are stored" % SETS)
        print("epoll_ctl calls during %d parked sets: %d" % (SETS, n))
        check(n < SETS // 4,
              "a parked TLS connection keeps its read event (%d epoll_ctl "
              "for %d sets)" % (n, SETS))
        # a pipelined burst in pieces: the later ones arrive while the
        # connection is parked on the first set's commit
        reqs = [b"set p%d 0 0 4\r\nv%03d\r\n" % (i, i) for i in range(300)]
        for i in range(0, len(reqs), 30):
            s.sendall(b"".join(reqs[i:i + 30]))
            time.sleep(0.002)
        data = b""
        s.settimeout(10)
        while data.count(b"\r\n") < len(reqs):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        check(data == b"STORED\r\n" * len(reqs),
              "a burst sent while parked is answered in order")
        got = tt.call(s, b"get p0 p150 p299\r\n", (b"END\r\n",))
        check(got == b"VALUE p0 0 4\r\nv000\r\nVALUE p150 0 4\r\nv150\r\n"
              b"VALUE p299 0 4\r\nv299\r\nEND\r\n", "its values are there")
        s.close()
        return check.finish()
    finally:
        if st is not None:
            st.send_signal(signal.SIGINT)
            st.wait(10)
        srv.close()


def main():
    bc = bcserver.binary()
    if not tt.OPENSSL:
        bcserver.skip("no openssl command to make the test certificates")
    if not shutil.which("strace"):
        bcserver.skip("no strace to count epoll_ctl")
    d = bcserver.mkdtemp("bc-tlspark.")
    os.chmod(d, 0o755)
    try:
        return run(bc, tt.make_certs(d))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
