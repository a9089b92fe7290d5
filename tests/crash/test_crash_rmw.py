#!/usr/bin/env python3
# test_crash_rmw.py - crash test of the writes the crash model does not
# send (issue 8): incr, decr, append, prepend, add, replace, cas, the meta
# commands ms (set, append and prepend modes), ma and md, and the binary
# protocol's SET, APPEND, INCREMENT and DELETE. Each client owns its keys
# and sends one request at a time, so it knows every key's value exactly:
# the value before its request and, while a request is unanswered, the
# value that request would make. Every reply is checked against that
# (a surprise is a failure: the client's idea of the value would be
# wrong); the server is killed with SIGKILL at a random moment or,
# through the LD_PRELOAD shim, at the Nth write or sync call on its data
# dir, and restarted; then every key must read as its acknowledged value
# or, for the one request in flight, as what that request would have made.
# Tiny segments and a low compaction ratio keep roll-over and compaction
# running. All three --sync modes: a process crash loses nothing
# acknowledged in any.
#
# Environment: BITCACHED, CRASH_ITER=N (N times the rounds), CRASH_SEED
# (replay), CRASH_MODES (e.g. "always"). Against a sanitizer build only the
# random kills run.
import os
import random
import shutil
import struct
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashmodel as cm  # noqa: E402

CLIENTS = 4
KEYS_PER_CLIENT = 12
RUN_S = 1.0
ROUNDS = 3
U64 = 1 << 64


def server_args(sync):
    return ["--sync=" + sync, "--segment-size=64k", "--compact-ratio=0.2",
            "--journal-size=64k", "--shards=2", "--sync-interval-ms=200",
            "-t", "2"]


class Surprise(Exception):
    pass


class BinConn:
    """A binary-protocol connection: one request, one response."""

    def __init__(self, port):
        self.c = cm.Conn(port)

    def close(self):
        self.c.close()

    def call(self, op, key, extras=b"", value=b""):
        body = extras + key + value
        self.c.send(struct.pack(">BBHBBHIIQ", 0x80, op, len(key),
                                len(extras), 0, 0, len(body), 0, 0) + body)
        while len(self.c.buf) < 24:
            self.c.fill()
        hdr = self.c.buf[:24]
        (_, _, klen, elen, _, status, blen, _, _) = struct.unpack(
            ">BBHBBHIIQ", hdr)
        while len(self.c.buf) < 24 + blen:
            self.c.fill()
        rbody = self.c.buf[24:24 + blen]
        self.c.buf = self.c.buf[24 + blen:]
        return status, rbody[elen + klen:]


class Client:
    """One client and its keys: {key: value bytes or None}."""

    def __init__(self, idx, rnd):
        self.rnd = rnd
        self.keys = {b"c%d_%02d" % (idx, i): None
                     for i in range(KEYS_PER_CLIENT)}
        self.pending = {}  # key: the value an unanswered request would make
        self.surprises = []
        self.acked = 0
        self.n = 0

    def token(self):
        self.n += 1
        return b"%x" % self.n

    def step(self, conn, bconn):
        """One request on a random key; raises cm.Dead when the server is
        gone (the request is then in self.pending)."""
        key = self.rnd.choice(sorted(self.keys))
        cur = self.keys[key]
        # memcached writes a shorter incr/decr result over the old digits,
        # padded with spaces (and reads them back as the number)
        numeric = (cur is not None and cur.rstrip(b" ").isdigit() and
                   len(cur.rstrip(b" ")) <= 20)
        ops = ["set", "append", "prepend", "add", "replace", "delete",
               "cas", "ms", "ms_append", "ms_prepend", "md", "bset",
               "bappend", "bdelete", "setnum"]
        if numeric:
            ops += ["incr", "decr", "ma", "bincr"] * 3
        op = self.rnd.choice(ops)
        t = self.token()
        if op in ("set", "ms", "bset"):
            new = b"v" + t + b"." * self.rnd.choice((0, 10, 300, 3000))
            want = new
        elif op == "setnum":
            new = b"%d" % self.rnd.choice((0, 1, 99, U64 - 3))
            want = new
        elif op in ("append", "ms_append", "bappend"):
            new = b"+" + t
            want = None if cur is None else cur + new
        elif op in ("prepend", "ms_prepend"):
            new = t + b"-"
            want = None if cur is None else new + cur
        elif op == "add":
            new = b"a" + t
            want = new if cur is None else cur
        elif op == "replace":
            new = b"r" + t
            want = None if cur is None else new
        elif op in ("delete", "md", "bdelete"):
            want = None
        elif op == "cas":
            new = b"cas" + t
            want = None if cur is None else new
        elif op in ("incr", "ma", "bincr"):
            d = self.rnd.choice((1, 7, U64 - 1))
            want = b"%d" % ((int(cur) + d) % U64)
        elif op == "decr":
            d = self.rnd.choice((1, 7, U64 - 1))
            want = b"%d" % max(0, int(cur) - d)
        if op in ("incr", "decr", "ma", "bincr") and len(want) < len(cur):
            want = want.ljust(len(cur))
        if want != cur:
            self.pending[key] = want
        what = "%s %s (value %r)" % (op, key.decode(), (cur or b"")[:24])
        ok = self.send(conn, bconn, op, key, cur, want,
                       new if op not in ("delete", "md", "bdelete", "incr",
                                         "decr", "ma", "bincr") else d
                       if op in ("incr", "decr", "ma", "bincr") else None)
        if ok is not True:
            self.surprises.append("%s -> %s" % (what, ok))
            # The value is unknown now: find out.
            got = conn.retrieve(b"get " + key + b"\r\n")
            self.keys[key] = None if got is None else got[0]
        else:
            self.keys[key] = want
            self.acked += 1
        self.pending.pop(key, None)

    def send(self, c, b, op, key, cur, want, arg):
        """Send one request and check its reply; True, or what was wrong."""
        if op in ("set", "setnum", "add", "replace", "append", "prepend"):
            verb = b"set" if op == "setnum" else op.encode()
            c.send(b"%s %s 0 0 %d\r\n%s\r\n" % (verb, key, len(arg), arg))
            r = c.line()
            exp = b"STORED" if (op in ("set", "setnum") or want != cur or
                                op == "add" and cur is None) \
                else b"NOT_STORED"
            if op == "add" and cur is not None:
                exp = b"NOT_STORED"
            return True if r == exp else "%r, expected %r" % (r, exp)
        if op == "delete":
            c.send(b"delete " + key + b"\r\n")
            r = c.line()
            exp = b"NOT_FOUND" if cur is None else b"DELETED"
            return True if r == exp else "%r, expected %r" % (r, exp)
        if op in ("incr", "decr"):
            c.send(b"%s %s %d\r\n" % (op.encode(), key, arg))
            r = c.line()
            exp = want.rstrip(b" ")
            return True if r == exp else "%r, expected %r" % (r, exp)
        if op == "cas":
            c.send(b"gets " + key + b"\r\n")
            ln = c.line()
            if cur is None:
                if ln != b"END":
                    return "gets %r, expected END" % ln
                c.send(b"cas %s 0 0 %d 12345\r\n%s\r\n" % (key, len(arg),
                                                           arg))
                r = c.line()
                return True if r == b"NOT_FOUND" else "cas %r" % r
            parts = ln.split()
            if len(parts) != 5 or parts[0] != b"VALUE":
                return "gets %r" % ln
            val = c.exact(int(parts[3]))
            if c.line() != b"END" or val != cur:
                return "gets value %r, expected %r" % (val[:24], cur[:24])
            c.send(b"cas %s 0 0 %d %s\r\n%s\r\n" % (key, len(arg), parts[4],
                                                    arg))
            r = c.line()
            return True if r == b"STORED" else "cas %r" % r
        if op in ("ms", "ms_append", "ms_prepend"):
            mode = {"ms": b"", "ms_append": b" MA",
                    "ms_prepend": b" MP"}[op]
            c.send(b"ms %s %d%s\r\n%s\r\n" % (key, len(arg), mode, arg))
            r = c.line()
            exp = b"HD" if want is not None else b"NS"
            return True if r == exp else "%r, expected %r" % (r, exp)
        if op == "md":
            c.send(b"md " + key + b"\r\n")
            r = c.line()
            exp = b"NF" if cur is None else b"HD"
            return True if r == exp else "%r, expected %r" % (r, exp)
        if op == "ma":
            c.send(b"ma %s D%d v\r\n" % (key, arg))
            r = c.line()
            if not r.startswith(b"VA "):
                return "%r" % r
            v = c.exact(int(r.split()[1]))
            exp = want.rstrip(b" ")
            return True if v == exp else "%r, expected %r" % (v, exp)
        if op == "bset":
            st, _ = b.call(0x01, key, struct.pack(">II", 0, 0), arg)
            return True if st == 0 else "status %d" % st
        if op == "bappend":
            st, _ = b.call(0x0e, key, b"", arg)
            exp = 5 if cur is None else 0  # NOT_STORED
            return True if st == exp else "status %d, expected %d" % (st,
                                                                      exp)
        if op == "bdelete":
            st, _ = b.call(0x04, key)
            exp = 1 if cur is None else 0  # KEY_ENOENT
            return True if st == exp else "status %d, expected %d" % (st,
                                                                      exp)
        if op == "bincr":
            # exptime 0xffffffff: fail if absent
            st, body = b.call(0x05, key, struct.pack(">QQI", arg, 0,
                                                     0xffffffff))
            if st != 0:
                return "status %d" % st
            (v,) = struct.unpack(">Q", body)
            exp = want.rstrip(b" ")
            return True if b"%d" % v == exp else "%d, expected %r" % (v,
                                                                      exp)
        raise AssertionError(op)

    def run(self, port, stop):
        try:
            conn = cm.Conn(port)
            bconn = BinConn(port)
        except cm.Dead:
            return
        try:
            while not stop.is_set():
                self.step(conn, bconn)
        except cm.Dead:
            pass
        finally:
            conn.close()
            bconn.close()

    def verify(self, port, where):
        """Every key reads as its value or its pending value."""
        errors = []
        conn = cm.Conn(port)
        try:
            for key, val in sorted(self.keys.items()):
                got = conn.retrieve(b"get " + key + b"\r\n")
                if isinstance(got, str):
                    errors.append("%s: get %s -> %s" % (where, key, got))
                    continue
                got = None if got is None else got[0]
                ok = [val] + ([self.pending[key]] if key in self.pending
                              else [])
                if got not in ok:
                    errors.append("%s: %s reads %r, expected %s" % (
                        where, key.decode(), got if got is None else
                        got[:40], " or ".join(
                            repr(v if v is None else v[:40]) for v in ok)))
                self.keys[key] = got
            self.pending = {}
        finally:
            conn.close()
        return errors


def one_mode(binary, shim, tmp, sync, rnd, rounds):
    d = os.path.join(tmp, sync)
    os.makedirs(d)
    srv = cm.Server(binary, os.path.join(d, "data"), server_args(sync),
                    os.path.join(d, "server.log"))
    clients = [Client(i, random.Random(rnd.randrange(1 << 62)))
               for i in range(CLIENTS)]
    failures = []
    counts = {}
    for r in range(rounds):
        kinds = ["random"] + (["write", "sync"] if shim else [])
        for kind in kinds:
            env = None
            stats = os.path.join(tmp, "shim.stats")
            if kind != "random":
                if os.path.exists(stats):
                    os.unlink(stats)
                n = max(1, counts.get(kind, 50))
                at = rnd.randint(1, n)
                when = rnd.choice(["before", "after"] +
                                  (["torn"] if kind == "write" else []))
                env = {"LD_PRELOAD": shim, "CRASHSHIM_DIR": tmp,
                       "CRASHSHIM_STATS": stats,
                       "CRASHSHIM_KILL": "%s:%d:%s" % (
                           ",".join(cm.GROUPS[kind]), at, when)}
                label = "kill at %s %d/%d %s" % (kind, at, n, when)
            elif shim:
                if os.path.exists(stats):
                    os.unlink(stats)
                env = {"LD_PRELOAD": shim, "CRASHSHIM_DIR": tmp,
                       "CRASHSHIM_STATS": stats, "CRASHSHIM_KILL": ""}
            t_kill = rnd.uniform(0.1, RUN_S)
            if kind == "random":
                label = "random kill at %.2fs" % t_kill
            acked0 = sum(c.acked for c in clients)
            up = srv.start(env)
            if not up and (not env or srv.proc.returncode != -9):
                failures.append("%s %s: start failed (status %s)\n%s" % (
                    sync, label, srv.proc.returncode, srv.log_tail()))
                return failures
            if not up:
                # the shim's kill landed in the start-up (its recovery)
                label += " (at start-up)"
            stop = threading.Event()
            threads = [threading.Thread(target=c.run, args=(srv.port, stop),
                                        daemon=True) for c in clients
                       if up]
            for th in threads:
                th.start()
            t0 = time.monotonic()
            limit = t_kill if kind == "random" else RUN_S + 1
            while srv.alive() and time.monotonic() - t0 < limit and \
                    any(th.is_alive() for th in threads):
                time.sleep(0.01)
            srv.kill()
            stop.set()
            for th in threads:
                th.join(20)
            if kind == "random" and env:
                st = cm.read_stats(stats)
                counts = {g: cm.group_count(st, g) for g in ("write", "sync")}
            fired = ""
            if kind != "random":
                fired = "fired" if cm.read_stats(stats).get(
                    "#fired", 0) == 1 else "no-kill"
            if not srv.start():
                failures.append("%s %s: restart failed (status %s)\n%s" % (
                    sync, label, srv.proc.returncode, srv.log_tail()))
                return failures
            errs = []
            try:
                for c in clients:
                    errs += c.verify(srv.port, "%s after %s" % (sync, label))
            except cm.Dead as e:
                failures.append("%s %s: died verifying: %s\n%s" % (
                    sync, label, e, srv.log_tail()))
                return failures
            srv.stop()
            surprises = [s for c in clients for s in c.surprises]
            for c in clients:
                c.surprises = []
            cm.say("%-8s %-30s %-7s acked %5d  wrong after restart %d, "
                   "surprising replies %d" % (
                       sync, label, fired,
                       sum(c.acked for c in clients) - acked0, len(errs),
                       len(surprises)))
            for e in errs[:10]:
                cm.say("  " + e)
            for s in surprises[:10]:
                cm.say("  surprise: " + s)
            failures += errs + surprises
    return failures


def main():
    t_start = time.monotonic()
    binary = cm.binary()
    seed = cm.seed()
    rounds = ROUNDS * cm.iterations()
    shim = cm.usable_shim(binary)
    modes = os.environ.get("CRASH_MODES", "always,interval,never").split(",")
    cm.say("read-modify-write crash test: binary %s, seed %d (CRASH_SEED=%d "
           "replays), %d round(s) per mode%s" % (
               binary, seed, seed, rounds, "" if shim else
               " (no shim: random kills only)"))
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="bc-rmw."))
    rnd = random.Random(seed)
    failures = []
    try:
        for sync in modes:
            failures += one_mode(binary, shim, tmp, sync, rnd, rounds)
    finally:
        if failures and os.environ.get("CRASH_KEEP"):
            cm.say("data kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    for f in failures[:30]:
        cm.say("FAIL: " + f)
    cm.say("%s (seed %d, %.0f s)" % ("FAIL" if failures else "PASS", seed,
                                     time.monotonic() - t_start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(cm.run_main(main))
