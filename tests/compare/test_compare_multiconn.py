#!/usr/bin/env python3
# test_compare_multiconn.py - randomized differential test over several
# connections at once: the steps of test_compare_fuzz.py (same generators,
# same masking of cas values, TTLs, stats and versions) spread over four
# connections to each server, text ones and binary ones, all on the same
# small key set, so that what one connection writes another reads, cas
# tokens seen on one connection are used on another, and a data block or
# binary packet left half-sent on one connection waits while the others
# run. Binary connections also get pipelines of quiet commands (setq,
# addq, appendq, incrq, deleteq, getkq, ... sent in one write, then a noop)
# and stores of values near -I (a value memcached stores, one byte over
# it: refused by both). Each step still waits for its replies before the
# next is sent, so the order of events is the same on both servers, and
# every step's replies must match byte for byte.
#
# make check runs a fixed set of seeds. Longer runs:
#   MC_SEEDS=1-300 MC_STEPS=400 tests/compare/test_compare_multiconn.py
# MC_SEEDS as FUZZ_SEEDS (a count, a range or a list); MC_KEEP_GOING=1
# reports every failing seed; FUZZ_ARGS gives both servers more options
# (as in test_compare_fuzz.py: a mismatch two reruns do not show again is
# reported as unstable, not failed).
import os
import random
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_compare_fuzz as fz  # noqa: E402

NCONNS = 4
ITEM_MAX = 1024 * 1024
BIG_OK = ITEM_MAX - 256  # under -I with memcached's item header counted too
QUIET_OPS = [fz.SETQ, fz.ADDQ, fz.REPLACEQ, fz.APPENDQ, fz.PREPENDQ, fz.DELETEQ, fz.INCRQ,
             fz.DECRQ, fz.GETQ, fz.GETKQ, fz.GATQ, fz.GATKQ]


class MStep:
    """A step on one connection. kind: "step" (a test_compare_fuzz Step),
    "half" (the first part of a data block or packet, no reply awaited),
    "rest" (the part left by "half", then the replies), "pipe" (several
    binary packets in one write)."""

    def __init__(self, conn, kind, step=None, data=None, specs=None):
        self.conn = conn
        self.kind = kind
        self.step = step
        self.data = data
        self.specs = specs

    def __repr__(self):
        if self.kind == "pipe":
            return "conn %d pipe%r" % (self.conn, [fz.Step([s], binary=True) for s in
                                                   self.specs])
        if self.kind in ("half", "rest"):
            return "conn %d %s %r" % (self.conn, self.kind, self.data[:200])
        return "conn %d %r" % (self.conn, self.step)

    def full(self):
        if self.kind == "pipe":
            return "conn %d pipe %r" % (self.conn, self.specs)
        return repr(self)


def bin_spec(op, key, ext, val, cas=0):
    return ("bin", 0x80, op, key, ext, val, cas, 0x1234, 0, 0)


def gen_quiet_pipe(r):
    specs = []
    read = set()
    for _ in range(r.randrange(2, 12)):
        op = r.choice(QUIET_OPS)
        kind, _, want_val = fz.BIN_SHAPES[op]
        key = fz.rkey(r)
        if op in (fz.INCRQ, fz.DECRQ) and key in read:
            # memcached holds an item until the reply of a get of it is
            # written, and an incr of an item held elsewhere makes a new
            # one of the number's own length instead of rewriting it in
            # place, space-padded (README; protocol/PROTOCOL.md)
            continue
        if op in (fz.GETQ, fz.GETKQ, fz.GATQ, fz.GATKQ):
            read.add(key)
        val = fz.rvalue(r) if want_val else b""
        if len(val) > 5000:
            val = val[:5000]
        cas = 0
        if r.random() < 0.15 and op in (fz.SETQ, fz.REPLACEQ, fz.APPENDQ, fz.DELETEQ):
            cas = key.replace(b"{k", b"{cas").decode()
        specs.append(bin_spec(op, key, fz.bin_extras(r, kind), val, cas))
    return specs


def big_value(r, n):
    chunk = bytes(r.choice(fz.ALPHA) for _ in range(64))
    return (chunk * (n // 64 + 1))[:n]


def gen_big_text(r):
    n = r.choice([BIG_OK, BIG_OK - 1000, ITEM_MAX + 1])
    cmd = r.choice([b"set", b"set", b"add", b"replace", b"append", b"prepend"])
    if cmd in (b"append", b"prepend"):
        # grows past -I after a big set: refused by both, SERVER_ERROR
        # out of memory in memcached's words
        n = r.choice([100, 1000])
    val = big_value(r, n)
    return fz.Step(b"%s %s 0 0 %d\r\n" % (cmd, fz.rkey(r), n) + val + b"\r\n")


def gen_big_bin(r):
    n = r.choice([BIG_OK, BIG_OK - 1000, ITEM_MAX + 1])
    op = r.choice([fz.SET, fz.SETQ, fz.ADD, fz.REPLACE])
    return fz.Step([bin_spec(op, fz.rkey(r), ("set", 7, 0), big_value(r, n))], binary=True)


def gen_stream(seed, nsteps):
    r = random.Random(seed)
    # connection 0 is text and 1 binary in every stream; 2 and 3 either
    binary = [False, True, r.random() < 0.5, r.random() < 0.5]
    steps = []
    half = {}  # conn -> the rest of a half-sent step
    while len(steps) < nsteps:
        c = r.randrange(NCONNS)
        if c in half:
            if r.random() < 0.5 or len(half) == NCONNS:
                steps.append(MStep(c, "rest", data=half.pop(c)))
            continue
        x = r.random()
        if binary[c]:
            if x < 0.15:
                steps.append(MStep(c, "pipe", specs=gen_quiet_pipe(r)))
                continue
            if x < 0.18:
                steps.append(MStep(c, "step", step=gen_big_bin(r)))
                continue
            step = fz.gen_bin_step(r)
            spec = step.chunks[0]
            if spec[1] != 0x80:
                continue  # bad magic: a framing error, the fuzz test's business
            if x < 0.25 and spec[1] == 0x80 and spec[8] == 0:
                steps.append(MStep(c, "half", step=step))
                half[c] = step
                continue
            steps.append(MStep(c, "step", step=step))
        else:
            if x < 0.02:
                steps.append(MStep(c, "step", step=gen_big_text(r)))
                continue
            # no junk here: a text connection that a long line or quit
            # closes is reopened, the rest is the fuzz test's business
            step = fz.pick(r, [t for t in fz.TEXT_GENERATORS if t[0] is not fz.gen_junk])(r)
            data = b"".join(step.chunks)
            if x < 0.1 and step.mns == 0 and len(step.chunks) == 1 and \
                    data.count(b"\r\n") == 2 and data.endswith(b"\r\n"):
                # a store: its block arrives later, after other connections ran
                steps.append(MStep(c, "half", step=step))
                half[c] = step
                continue
            steps.append(MStep(c, "step", step=step))
    for c, step in half.items():
        steps.append(MStep(c, "rest", data=step))
    return steps


class Conns:
    """One server's side of a stream: a fz.Runner per connection, sharing
    the cas values seen and their renaming."""

    def __init__(self, srv, prefix, t0):
        self.srv = srv
        self.runners = [fz.Runner(srv, prefix, t0) for _ in range(NCONNS)]
        for rn in self.runners[1:]:
            rn.key_cas = self.runners[0].key_cas
            rn.cas_names = self.runners[0].cas_names
        self.last_cas = 0

    def split(self, rn, step):
        """The bytes of a half step: the first part and the rest."""
        if step.binary:
            data = rn.render_bin(step.chunks[0])
            cut = max(1, min(len(data) - 1, 24 + len(data) // 3))
            return data[:cut], data[cut:]
        data = rn.fill(b"".join(step.chunks))
        line_end = data.index(b"\r\n") + 2
        cut = line_end + (len(data) - line_end) // 2
        return data[:cut], data[cut:]

    def run_step(self, rn, ms, pending):
        if ms.kind == "half":
            first, rest = self.split(rn, ms.step)
            pending[ms.conn] = (ms.step, rest)
            try:
                rn.sock.sendall(first)
            except OSError:
                pass
            return (b"" if not ms.step.binary else [], "open")
        if ms.kind == "rest":
            if ms.conn not in pending:
                return (b"<no half step>", "open")  # shrinking dropped it
            step, rest = pending.pop(ms.conn)
            if step.binary:
                return self.finish_bin(rn, rest, [step.chunks[0]])
            return rn.run_text(fz.Step([rest]))
        if ms.kind == "pipe":
            data = b"".join(rn.render_bin(s) for s in ms.specs)
            return self.finish_bin(rn, data, ms.specs)
        if ms.step.binary:
            return rn.run_bin(ms.step)
        return rn.run_text(ms.step)

    def finish_bin(self, rn, data, specs):
        if rn.closed:
            return ([], "closed")
        try:
            rn.sock.sendall(data)
            rn.sock.sendall(struct.pack(">BBHBBHIIQ", 0x80, fz.NOOP, 0, 0, 0, 0, 0,
                                        fz.SENTINEL_OPAQUE, 0))
        except OSError:
            pass
        pkts, closed = rn.read_bin()
        rn.closed = closed
        for p in pkts:
            # a quiet pipeline's replies: learn each cas under the key of
            # the request whose opaque... all carry the same opaque, so
            # under the key a getkq/gatkq reply names, else the first's
            if len(p) >= 24 and not p.startswith(b"PARTIAL:"):
                keylen = struct.unpack(">H", p[2:4])[0]
                key = p[24 + p[4]: 24 + p[4] + keylen] if keylen else rn.fill(specs[0][3])
                cas = struct.unpack(">Q", p[16:24])[0]
                if cas:
                    rn.see_cas(key, cas)
        return (rn.mask_bin(pkts), "closed" if closed else "open")

    def run(self, steps):
        out = []
        pending = {}
        try:
            for ms in steps:
                rn = self.runners[ms.conn]
                if rn.sock is None or rn.closed:
                    if rn.sock is not None:
                        rn.sock.close()
                    pending.pop(ms.conn, None)
                    if ms.kind == "rest":
                        out.append((b"<conn closed>", "closed"))
                        continue
                    rn.sock = self.srv.connect(timeout=fz.WAIT_S)
                    rn.closed = False
                rn.last_cas = self.last_cas
                res = self.run_step(rn, ms, pending)
                self.last_cas = rn.last_cas
                out.append(res)
                timed_out = (res[0][-1:] == [b"<timeout>"]) if isinstance(res[0], list) \
                    else res[0].endswith(b"<timeout>")
                if timed_out:
                    break
        finally:
            for rn in self.runners:
                if rn.sock is not None:
                    rn.sock.close()
        return out


class MPair(fz.Pair):
    def compare(self, steps):
        self.runs += 1
        prefix = b"mc%d_%d_" % (os.getpid() % 1000, self.runs)
        t0 = time.time()
        want = Conns(self.ref, prefix, t0).run(steps)
        got = Conns(self.sut, prefix, t0).run(steps)
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else None
            g = got[i] if i < len(got) else None
            if w != g and not (w and g and w[1] == g[1] and fz.unpad(w[0]) == fz.unpad(g[0])):
                return (i, w, g)
            if w != g:
                self.padded += 1
        return None


def main():
    bc = fz.bcserver.binary()
    mc = fz.bcserver.memcached_binary()
    seeds = fz.parse_seeds(os.environ.get("MC_SEEDS"), list(range(1, 7)))
    nsteps = int(os.environ.get("MC_STEPS", "160"))
    keep_going = bool(os.environ.get("MC_KEEP_GOING"))
    args = os.environ.get("FUZZ_ARGS", "").split()
    ref = fz.QuietServer(mc, kind="memcached", args=["-U", "0"] + args)
    sut = fz.QuietServer(bc, args=args)
    fails = unstable = runs = 0
    started = time.monotonic()
    pair = None
    try:
        ref.start()
        sut.start()
        pair = MPair(ref, sut)
        for seed in seeds:
            steps = gen_stream(seed, nsteps)
            runs += 1
            res = pair.compare(steps)
            if res is not None:
                again = [pair.compare(steps[: res[0] + 1]) for _ in range(2)]
                if None in again:
                    unstable += 1
                    print("UNSTABLE seed %d at step %d: %r\n  memcached: %s\n  bitcached: %s"
                          % (seed, res[0], steps[res[0]], fz.show(res[1]), fz.show(res[2])))
                    res = None
            if res is not None:
                fails += 1
                small, res = fz.shrink(pair, steps, res)
                print("FAIL seed %d (MC_SEEDS=%d MC_STEPS=%d), shrunk to %d steps:"
                      % (seed, seed, nsteps, len(small)))
                for n, s in enumerate(small):
                    print("  step %d: %s" % (n, s.full()))
                print("  at step %d\n  memcached: %s\n  bitcached: %s"
                      % (res[0], fz.show(res[1]), fz.show(res[2])))
                if not keep_going:
                    break
            if not sut.alive():
                print("FAIL: server under test died (seed %d)" % seed)
                fails += 1
                break
    finally:
        ref.close()
        sut.close()
    print("compare multiconn: %d streams of %d steps, %d failures, %d unstable, %d padded, "
          "%.1f s" % (runs, nsteps, fails, unstable, pair.padded if pair else 0,
                      time.monotonic() - started))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
