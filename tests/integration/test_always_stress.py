#!/usr/bin/env python3
# test_always_stress.py - --sync=always under load with a slow and now and
# then failing fdatasync (issue 8): no reply is ever lost.
#
# A worker parks a connection whose reply awaits a journal commit and is
# woken only by a commit that may release one of its replies (worker.c
# wake_at). A lost wake-up there hangs a connection for good once the
# traffic stops, so the load comes in rounds: in each, some or all of 48
# connections to a server with four workers pipeline a batch of sets (text
# and meta) on keys of their own, then every reply of the round must
# arrive before the next round starts (a timeout fails the test). The
# crash shim delays every fdatasync and, in some rounds, fails them (EIO)
# from a moment in the round until the test sees the first failure, so
# that commits fail while others are in flight and while connections park.
#
# Checked: every reply arrives, in order, and is STORED / HD or a
# SERVER_ERROR; after each phase (while the store did not latch) every key
# whose last write was acknowledged reads back that value, and no value
# whose write was answered with an error is ever read back.
#
# Needs the crash shim; against a sanitizer build the shim is preloaded
# after the sanitizer's runtime. ALWAYS_STRESS_SECONDS=N runs each phase
# N seconds (default 4); ALWAYS_STRESS_SEED=N repeats a run.
import os
import random
import select
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
import bcserver  # noqa: E402
import crashmodel as cm  # noqa: E402

NCONN = 48
KEYS_PER_CONN = 24
ROUND_TIMEOUT = 15.0  # seconds for every reply of a round to arrive
check = bcserver.check
failures = bcserver.failures


def preload(binary, shim):
    """LD_PRELOAD for the shim: after ASan's runtime in a sanitizer build,
    which must come first."""
    if not cm.is_sanitized(binary):
        return shim
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        p = line.split()
        if p and p[0].startswith("libasan") and len(p) >= 3:
            return "%s:%s" % (p[2], shim)
    return ""


class Conn:
    def __init__(self, idx, sock):
        self.idx = idx
        self.sock = sock
        # a send may wait while the server reads ahead no further on a
        # parked connection: until its commits are done
        self.sock.settimeout(ROUND_TIMEOUT)
        self.want = []  # per request in flight: (key, value, ok reply)
        self.buf = b""

    def key(self, k):
        return b"c%02dk%02d" % (self.idx, k)


class Stress:
    def __init__(self, rng, srv, stats_path, flag):
        self.rng = rng
        self.srv = srv
        self.stats_path = stats_path
        self.flag = flag
        self.seq = 0
        # per key written: the value of its last acknowledged write (None:
        # none) and whether a write after that one failed
        self.last = {}
        self.failed_vals = set()
        self.replies = 0
        self.errors = 0
        self.rounds = 0
        self.conns = [Conn(i, srv.connect(timeout=10)) for i in range(NCONN)]

    def close(self):
        for c in self.conns:
            c.sock.close()

    def shim_failed(self):
        return cm.read_stats(self.stats_path).get("#failed", 0)

    def request(self, c):
        """A set, ms or delete; some values too large for the batch write
        (appended on their own, their reply waits for their ticket's
        epoch rather than for the batch's)."""
        k = c.key(self.rng.randrange(KEYS_PER_CONN))
        self.seq += 1
        x = self.rng.random()
        if x < 0.1:
            c.want.append((k, None, (b"DELETED", b"NOT_FOUND")))
            return b"delete %s\r\n" % k
        pad = self.rng.randrange(17000, 30000) if x < 0.2 else \
            self.rng.randrange(0, 200)
        val = b"v%d-%s" % (self.seq, b"x" * pad)
        if x > 0.7:
            c.want.append((k, val, (b"HD",)))
            return b"ms %s %d T0\r\n%s\r\n" % (k, len(val), val)
        c.want.append((k, val, (b"STORED",)))
        return b"set %s 0 0 %d\r\n%s\r\n" % (k, len(val), val)

    def unfault(self, failed0):
        """Once a call failed, let the next ones through: a short burst of
        failures (a commit or a few in flight), which the store recovers
        from unless one of its segment syncs fell in the burst too."""
        if os.path.exists(self.flag) and self.shim_failed() > failed0:
            os.unlink(self.flag)

    def round(self, fault, depth):
        """One round: a batch on some connections, then all replies."""
        active = self.conns
        if self.rng.random() < 0.5:
            active = self.rng.sample(self.conns, self.rng.randint(1, NCONN))
        failed0 = self.shim_failed() if fault else 0
        at = self.rng.randrange(len(active)) if fault else -1
        for i, c in enumerate(active):
            if i == at:
                open(self.flag, "w").close()  # fdatasyncs fail from here
            self.unfault(failed0)
            n = self.rng.randint(1, depth)
            c.sock.sendall(b"".join(self.request(c) for _ in range(n)))
        waiting = {c.sock.fileno(): c for c in active}
        deadline = time.monotonic() + ROUND_TIMEOUT
        while waiting:
            self.unfault(failed0)
            left = deadline - time.monotonic()
            if left <= 0:
                stuck = sorted((c.idx, len(c.want)) for c in waiting.values())
                check("round %d: every reply arrives within %.0f s" %
                      (self.rounds, ROUND_TIMEOUT), False,
                      "connection, replies missing: %s" % stuck[:8])
                return False
            r, _, _ = select.select(list(waiting), [], [],
                                    min(left, 0.0005 if fault else 0.5))
            for fd in r:
                c = waiting[fd]
                chunk = c.sock.recv(65536)  # readable: does not block
                if not chunk:
                    check("connection %d stays open" % c.idx, False)
                    return False
                c.buf += chunk
                if not self.consume(c):
                    return False
                if not c.want:
                    del waiting[fd]
        if fault and os.path.exists(self.flag):
            os.unlink(self.flag)
        self.rounds += 1
        return True

    def consume(self, c):
        while c.want and b"\r\n" in c.buf:
            line, c.buf = c.buf.split(b"\r\n", 1)
            k, val, ok = c.want.pop(0)
            self.replies += 1
            if line in ok:
                self.last[k] = (val, False)
            elif line.startswith(b"SERVER_ERROR "):
                # a failed delete may have applied, a failed put not
                self.errors += 1
                if val is not None:
                    self.failed_vals.add(val)
                self.last[k] = (self.last.get(k, (None, True))[0], True)
            else:
                check("a request is answered %s or SERVER_ERROR" %
                      b"/".join(ok).decode(), False,
                      "%s: %r" % (k.decode(), line))
                return False
        if not c.want and c.buf:
            check("no reply beyond the requests", False, repr(c.buf[:80]))
            return False
        return True

    def verify(self):
        """Read every key back over one connection: a key whose last write
        was acknowledged holds its value; one whose last write failed
        misses (its put was undone) or holds the last acknowledged value
        (the write was refused); no failed write's value is ever read."""
        s = self.srv.connect(timeout=10)
        bad = []
        try:
            for c in self.conns:
                keys = [c.key(k) for k in range(KEYS_PER_CONN)]
                s.sendall(b"get " + b" ".join(keys) + b"\r\n")
                data, _ = bcserver.recv_until(s, [b"END\r\n"])
                got = {}
                while data.startswith(b"VALUE "):
                    head, data = data.split(b"\r\n", 1)
                    _, key, _, n = head.split(b" ")
                    got[key] = data[:int(n)]
                    data = data[int(n) + 2:]
                for key in keys:
                    v = got.get(key)
                    ack, after = self.last.get(key, (None, False))
                    if v is not None and v in self.failed_vals:
                        bad.append((key, "a failed write's value read back"))
                    elif v != ack and not (after and v is None):
                        bad.append((key, "acknowledged %r, read %r" %
                                    ((ack or b"")[:12], (v or b"")[:12])))
        finally:
            s.close()
        return bad


def recovered(srv, timeout=3.0):
    """After failed commits: true once the store took writes again (every
    failure recovered), false when it stays latched (a segment sync failed
    as well: only a restart brings it back)."""
    deadline = time.monotonic() + timeout
    while True:
        st = srv.stats(b"storage")
        if st.get("commit_failures") == st.get("commit_recoveries"):
            # every failure was counted before its replies went out
            return st.get("failed") == "0"
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def server_life(binary, shim, name, delay_ms, fault_every, depth, t_end,
                rng):
    """One server under the load until t_end, or until a failure latched
    its store (a segment sync failed too: writes are refused until a
    restart). Returns (rounds, replies, errors, latched)."""
    srv = bcserver.ShimServer(binary, shim, ["--sync=always", "-t", "4"], {})
    stats_path = os.path.join(srv.tmp, "shim.stats")
    flag = os.path.join(srv.tmp, "fail-now")
    env = {"CRASHSHIM_STATS": stats_path,
           "CRASHSHIM_FAIL": "fdatasync:1:EIO",
           "CRASHSHIM_FAIL_WHILE": flag}
    if delay_ms > 0:
        env["CRASHSHIM_DELAY"] = "fdatasync:%d" % delay_ms
    srv.shim_env = env
    srv.start(timeout=60)
    try:
        s = Stress(rng, srv, stats_path, flag)
        ok = True
        latched = False
        while ok and not latched and time.monotonic() < t_end:
            fault = fault_every > 0 and rng.randrange(fault_every) == 0
            ok = s.round(fault, depth)
            if ok and fault:
                latched = not recovered(srv)
        st = srv.stats(b"storage") if ok else {}
        if ok and not latched:
            bad = s.verify()
            check("%s: every acknowledged last write reads back, no failed "
                  "write does" % name, not bad, bad[:5])
        if fault_every > 0 and ok:
            print("%s: commit_failures %s, commit_recoveries %s, failed %s, "
                  "fdatasync calls failed %d" %
                  (name, st.get("commit_failures"),
                   st.get("commit_recoveries"), st.get("failed"),
                   s.shim_failed()))
        s.close()
        if not ok:
            failures.append(name)
        return s.rounds, s.replies, s.errors, latched
    finally:
        if os.path.exists(flag):
            os.unlink(flag)
        srv.close()


def phase(binary, shim, name, delay_ms, fault_every, depth, seconds, rng):
    """Servers in turn under the load for seconds (a latched one is
    replaced)."""
    t_end = time.monotonic() + seconds
    tot = [0, 0, 0]
    lives = 0
    nfail = len(failures)
    while time.monotonic() < t_end and len(failures) == nfail:
        r = server_life(binary, shim, name, delay_ms, fault_every, depth,
                        t_end, rng)
        lives += 1
        for i in range(3):
            tot[i] += r[i]
    check("%s: %d server(s), %d rounds, %d replies (%d SERVER_ERROR), all "
          "arrived" % (name, lives, tot[0], tot[1], tot[2]),
          len(failures) == nfail)


def main():
    binary = cm.binary()
    shim = cm.shim_path() or None
    if shim is None:
        bcserver.skip("needs the crash shim")
    shim = preload(binary, shim)
    if not shim:
        bcserver.skip("cannot preload the crash shim into this build")
    seed = int(os.environ.get("ALWAYS_STRESS_SEED", "0")) or \
        random.SystemRandom().randrange(1 << 31)
    seconds = float(os.environ.get("ALWAYS_STRESS_SECONDS", "4"))
    print("seed %d (ALWAYS_STRESS_SEED to repeat)" % seed)
    rng = random.Random(seed)
    phase(binary, shim, "slow sync, failures", 3, 3, 16, seconds, rng)
    phase(binary, shim, "fast sync", 0, 0, 8, seconds, rng)
    phase(binary, shim, "slow sync, deep pipelines, failures", 5, 6, 64,
          seconds, rng)
    sys.exit(bcserver.finish())


if __name__ == "__main__":
    main()
