#!/usr/bin/env python3
# test_crash_stopped.py - what a stopped store's files survive (issue 8),
# judged key by key against the crash test's model (crashmodel.py).
#
# The workload of the crash test runs against a server with tiny segments
# and a compaction ratio so high that nothing is compacted, then stops
# cleanly: a snapshot of a data directory full of dead records, closed
# segments and their hints, a manifest per shard, the state file (and
# under --sync=always the commit journal), and a model that says what every
# key may read as. Once under --sync=interval, once under always. From a
# fresh copy of that snapshot each time:
#   - flip: one byte of a closed segment (anywhere; in a record that is the
#     newest of its key; the same with the segment's hint removed, so that
#     the start scans it), of a hint, of a state slot's text, of both state
#     slots, of a manifest, of a retired file or of a journal file is
#     flipped while no server runs; the server starts and every key is
#     read. A flipped segment byte may cost the one record it lies in (that
#     key may miss or read as an older value: nothing can tell a damaged
#     newest record from none); both state slots damaged may cost every
#     key, as a miss only (FORMAT.md: everything found is taken as
#     flushed); anything else is a failure, and so is any cost of the other
#     files (one state slot is a copy of the other, a hint is checked and
#     ignored, a manifest only lists segments, a clean stop leaves nothing
#     in the journal that the segments lack);
#   - admin: `bitcached-admin compact` under the LD_PRELOAD shim, killed at
#     each of its fdatasync/fsync, rename, unlink and ftruncate calls
#     (before and after the call), then the server starts and every key is
#     read: no cost is allowed;
#   - start: the server starts with a low --compact-ratio, so that it
#     compacts at once and writes the outputs' hints and manifests; it is
#     killed at each of those same calls and started again without the
#     shim: no cost is allowed.
# Each violation is printed with the key's history; each scenario prints
# a line with what it cost and what the server logged about the damage.
#
# Environment: BITCACHED, BITCACHED_ADMIN (default: bitcached-admin beside
# BITCACHED; without it the admin phase is left out), CRASH_SEED (replay),
# CRASH_ITER=N (3*N flips per file kind; at most 8*N kill points per group
# in the admin phase and 4*N in the start phase, spread evenly over the
# calls the counting run made, all of them when fewer),
# STOPPED_ONLY=flip,admin,start (the phases to run),
# STOPPED_SYNC=interval,always (the modes), CRASH_KEEP=1 (keep the temp dir
# on a failure). Against a sanitizer build only the flip phase
# runs (the shim cannot be preloaded).
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashmodel as cm  # noqa: E402

KEYS = 64
CLIENTS = 4
RUN_S = 2.0
SIZES = [(80, 10, 400), (15, 400, 4000), (5, 4000, 20000)]
KILL_GROUPS = ["sync", "rename", "unlink", "truncate"]
BASE = ["--segment-size=64k", "--shards=2", "-t", "2",
        "--sync-interval-ms=200"]
DAMAGE_WORDS = re.compile(
    r"damag|unusable|corrupt|quarantin|missing|checksum|ignored|truncat"
    r"|lost|invalid", re.I)


# The cost a damaged state file (both slots) is documented to have: every
# item on disk is treated as flushed, so any key may miss, none may show
# another value.
MISSES = "misses"


def admin_binary(binary):
    """$BITCACHED_ADMIN, else bitcached-admin beside the server binary."""
    return os.environ.get("BITCACHED_ADMIN") or os.path.join(
        os.path.dirname(binary), "bitcached-admin")


def segment_records(path):
    """[(start, end, key)] of the records of a segment file, read as the
    format says (32-byte header, 44-byte record header + key + value),
    up to the first all-zero or impossible header."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    off = 32
    while off + 44 <= len(data):
        hdr = data[off:off + 44]
        if hdr == bytes(44):
            break
        vlen = int.from_bytes(hdr[32:36], "little")
        klen = hdr[40]
        end = off + 44 + klen + vlen
        if klen == 0 or end > len(data):
            break
        out.append((off, end, data[off + 44:off + 44 + klen].decode(
            errors="replace")))
        off = end
    return out


class Stopped:
    def __init__(self, binary, shim, tmp, rnd, sync):
        self.sync = "--sync=" + sync
        self.binary = binary
        self.admin = admin_binary(binary)
        self.shim = shim
        self.tmp = tmp
        self.rnd = rnd
        self.data = os.path.join(tmp, "data")
        self.snap = os.path.join(tmp, "snap")
        self.log = os.path.join(tmp, "server.log")
        self.model = cm.Model(KEYS, SIZES, rnd)
        self.saved = None
        self.failures = []
        self.lines = []

    # -- the snapshot -----------------------------------------------------

    def build(self):
        srv = cm.Server(self.binary, self.data,
                        BASE + [self.sync, "--compact-ratio=0.99"],
                        self.log)
        if not srv.start():
            raise RuntimeError("start failed\n" + srv.log_tail())
        t0 = time.monotonic()
        stop, threads = self.model.run(
            srv.port, CLIENTS, lambda: time.monotonic() - t0 > RUN_S,
            flush_p=0.0005)
        cm.stop_clients(stop, threads)
        st = srv.stop()
        if st != 0:
            raise RuntimeError("clean stop exited %s\n%s" % (st,
                                                            srv.log_tail()))
        if self.model.errors or self.model.other:
            cm.report_errors(self.model)
            raise RuntimeError("violations before any damage")
        shutil.copytree(self.data, self.snap)
        self.saved = [copy.deepcopy((k.states, k.written, k.hist))
                      for k in self.model.keys]
        segs = self.files(".seg")
        cm.say("snapshot: %d acknowledged ops (%d flush_all), %d segments, "
               "%d hints" % (self.model.stats["acked"],
                             self.model.stats["flush_all ok"], len(segs),
                             len(self.files(".hint"))))

    def restore(self):
        shutil.rmtree(self.data, ignore_errors=True)
        shutil.copytree(self.snap, self.data)
        for k, d in zip(self.model.keys, self.saved):
            k.states, k.written, k.hist = copy.deepcopy(d)
        self.model.errors = []
        self.model.other = []

    def files(self, suffix, root=None):
        root = root or self.snap
        out = []
        for dp, _, names in os.walk(root):
            out += [os.path.join(dp, n) for n in names if n.endswith(suffix)
                    or n == suffix]
        return sorted(out)

    # -- one scenario -----------------------------------------------------

    def judge(self, label, allowed=(), args=None):
        """Start without the shim on self.data, read every key; violations
        of keys not in allowed are failures. Logs what it cost."""
        mark = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        srv = cm.Server(self.binary, self.data,
                        BASE + (args or [self.sync, "--compact-ratio=0.99"]),
                        self.log)
        if not srv.start():
            self.failures.append("%s: restart failed (status %s)\n%s" % (
                label, srv.proc.returncode, srv.log_tail()))
            return
        try:
            self.model.verify(srv.port, label)
        except cm.Dead as e:
            self.failures.append("%s: %s (%s)\n%s" % (label, e, srv.reap(),
                                                      srv.log_tail()))
            return
        st = srv.stop()
        if st != 0:
            self.failures.append("%s: SIGTERM after the reads: %s\n%s" % (
                label, st, srv.log_tail()))
        with open(self.log, "rb") as f:
            f.seek(mark)
            logged = [ln for ln in f.read().decode(errors="replace")
                      .splitlines() if DAMAGE_WORDS.search(ln)]
        if allowed is MISSES:
            ok = (lambda e: e[4] == "miss")
            allowed = ()
        else:
            ok = (lambda e: e[2] in allowed)
        cost = [e for e in self.model.errors if ok(e)]
        bad = [e for e in self.model.errors if not ok(e)]
        other = [o for o in self.model.other
                 if not any(o.startswith("verify get %s " % k)
                            for k in allowed)]
        self.lines.append("%-44s cost %d key(s)%s, %d log line(s)%s" % (
            label, len(cost),
            " (%s)" % ",".join(sorted({e[0] for e in cost})) if cost else "",
            len(logged), (": " + logged[0][:100]) if logged else ""))
        cm.say(self.lines[-1])
        if bad or other:
            cm.say("FAIL: %s" % label)
            m = cm.Model(0, SIZES, self.rnd)
            m.errors, m.other = bad, other
            cm.report_errors(m)
            self.failures.append("%s: %d violation(s), %d unexpected "
                                 "reply(ies)" % (label, len(bad), len(other)))

    # -- phases -----------------------------------------------------------

    def flip_one(self, kind, path, allowed_of, where=None, drop_hint=False):
        """Flip one bit of path (a snapshot file) in a fresh copy: at
        offset where, or one drawn by the kind's chooser; with drop_hint,
        remove the segment's hint too, so that the start scans it."""
        self.restore()
        p = os.path.join(self.data, os.path.relpath(path, self.snap))
        off = where(p) if where else self.rnd.randrange(os.path.getsize(p))
        if off is None:
            return
        offs = off if isinstance(off, list) else [off]
        allowed = allowed_of(p, offs[0])
        with open(p, "r+b") as f:
            for o in offs:
                f.seek(o)
                b = f.read(1)[0]
                f.seek(o)
                f.write(bytes([b ^ (1 << self.rnd.randrange(8))]))
        off = ",".join(str(o) for o in offs)
        if drop_hint:
            os.unlink(p[:-len(".seg")] + ".hint")
        self.judge("%s flip %s %s @%s" % (self.sync[7:], kind,
                                          os.path.relpath(p, self.data), off),
                   allowed)

    def phase_flip(self, n):
        def seg_allowed(p, off):
            for s, e, key in segment_records(p):
                if s <= off < e:
                    return {key}
            return set()

        # Per closed segment, the records in it that are the newest of
        # their key in the whole shard: the ones their keys read (or
        # their tombstones).
        newest = {}
        for shard in sorted({os.path.dirname(x) for x in self.files(".seg")}):
            last = {}
            for q in self.files(".seg", shard):
                for s, e, key in segment_records(q):
                    last[key] = (q, s, e)
            for q, s, e in last.values():
                newest.setdefault(q, []).append((s, e))

        def newest_record(p):
            q = os.path.join(self.snap, os.path.relpath(p, self.data))
            s, e = self.rnd.choice(newest[q])
            return self.rnd.randrange(s, e)

        def slot_text(p):
            # A byte of a state slot's text (the NUL padding after it is
            # covered by no checksum, and flipping it proves nothing).
            with open(p, "rb") as f:
                data = f.read()
            slot = self.rnd.randrange(max(1, len(data) // 4096))
            text = data[slot * 4096:(slot + 1) * 4096].split(b"\0", 1)[0]
            return slot * 4096 + self.rnd.randrange(max(1, len(text)))

        def both_slots(p):
            with open(p, "rb") as f:
                data = f.read()
            return [i * 4096 + self.rnd.randrange(max(1, len(
                data[i * 4096:(i + 1) * 4096].split(b"\0", 1)[0])))
                for i in range(len(data) // 4096)]

        def journal_head(p):
            # Half the flips in the journal's first page (its header and
            # first frames), the rest anywhere in its length.
            size = os.path.getsize(p)
            return self.rnd.randrange(min(size, 4096) if
                                      self.rnd.random() < 0.5 else size)

        none = (lambda p, off: set())
        segs = self.files(".seg")
        # Closed segments only: the newest one of each shard may take
        # appends, and its tail is what a crash test tears.
        closed = []
        for shard in sorted({os.path.dirname(s) for s in segs}):
            closed += [s for s in segs if os.path.dirname(s) == shard][:-1]
        hinted = [s for s in closed
                  if os.path.exists(s[:-len(".seg")] + ".hint")]
        live = [x for x in closed if x in newest]
        kinds = [("segment", closed, seg_allowed, None, False),
                 ("segment-live", live, seg_allowed, newest_record, False),
                 ("segment-nohint", [x for x in hinted if x in newest],
                  seg_allowed, newest_record, True),
                 ("hint", self.files(".hint"), none, None, False),
                 ("state", self.files("state"), none, slot_text, False),
                 ("state-both-slots", self.files("state"),
                  lambda p, off: MISSES, both_slots, False),
                 ("journal", self.files("journal.0") +
                  self.files("journal.1"), none, journal_head, False),
                 ("manifest", self.files("manifest"), none, None, False),
                 ("retired", self.files("retired"), none, None, False)]
        for kind, paths, allowed_of, where, drop in kinds:
            if not paths:
                if kind == "journal" and self.sync != "--sync=always":
                    continue
                self.lines.append("flip %-39s no such file" % kind)
                cm.say(self.lines[-1])
                continue
            for _ in range(1 if kind == "state-both-slots" else n):
                self.flip_one(kind, self.rnd.choice(paths), allowed_of,
                              where, drop)

    def shim_env(self, spec, stats):
        if os.path.exists(stats):
            os.unlink(stats)
        return dict(LD_PRELOAD=self.shim, CRASHSHIM_DIR=self.tmp,
                    CRASHSHIM_STATS=stats, CRASHSHIM_KILL=spec)

    def run_admin(self, spec):
        """bitcached-admin compact on self.data under the shim; returns
        (exit status, shim counters)."""
        stats = os.path.join(self.tmp, "shim.stats")
        p = subprocess.run([self.admin, "--quiet", "compact", self.data],
                           env=dict(os.environ, **self.shim_env(spec, stats)),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        with open(self.log, "ab") as f:
            f.write(b"--- admin compact " + spec.encode() + b"\n" + p.stdout)
        return p.returncode, cm.read_stats(stats)

    def run_start(self, spec, hold_s):
        """The server on self.data with a low compact ratio under the shim,
        SIGKILLed once the shim fired or after hold_s; returns
        (whether it came up, shim counters)."""
        stats = os.path.join(self.tmp, "shim.stats")
        srv = cm.Server(self.binary, self.data,
                        BASE + [self.sync, "--compact-ratio=0.1"],
                        self.log)
        up = srv.start(self.shim_env(spec, stats))
        t0 = time.monotonic()
        while srv.alive() and time.monotonic() - t0 < hold_s:
            time.sleep(0.02)
        srv.kill()
        return up, cm.read_stats(stats)

    def kill_points(self, n, cap):
        if n <= cap:
            return list(range(1, n + 1))
        return sorted({1 + (i * (n - 1)) // (cap - 1) for i in range(cap)})

    def phase_kill(self, phase, cap):
        self.restore()
        if phase == "admin":
            st, counters = self.run_admin("")
            if st != 0:
                self.failures.append("admin compact of the snapshot exited "
                                     "%d" % st)
                return
            self.judge("%s admin compact, no kill" % self.sync[7:])
        else:
            up, counters = self.run_start("", 3.0)
            if not up:
                self.failures.append("start with the shim failed")
                return
            self.judge("%s start-up compaction, no kill" % self.sync[7:])
        calls = {g: cm.group_count(counters, g) for g in KILL_GROUPS}
        cm.say("%s: calls in the counting run: %s" % (phase, " ".join(
            "%s %d" % kv for kv in sorted(calls.items()))))
        if phase == "admin" and not calls["rename"]:
            self.failures.append("admin compact made no rename: compacted "
                                 "nothing, so the kills test nothing")
        for g in KILL_GROUPS:
            for at in self.kill_points(calls[g], cap):
                for when in ("before", "after"):
                    self.restore()
                    spec = "%s:%d:%s" % (",".join(cm.GROUPS[g]), at, when)
                    if phase == "admin":
                        st, c = self.run_admin(spec)
                    else:
                        _, c = self.run_start(spec, 3.0)
                    fired = c.get("#fired", 0) == 1
                    self.judge("%s %s kill at %s %d/%d %s%s" % (
                        self.sync[7:], phase, g, at, calls[g], when,
                        "" if fired else " (not reached)"))


def main():
    t_start = time.monotonic()
    binary = cm.binary()
    seed = cm.seed()
    n = cm.iterations()
    shim = cm.usable_shim(binary)
    phases = os.environ.get("STOPPED_ONLY", "flip,admin,start").split(",")
    cm.say("stopped-store test: binary %s, seed %d (CRASH_SEED=%d replays)"
           % (binary, seed, seed))
    if not shim:
        cm.say("no usable shim (sanitizer build or not built): flips only")
        phases = [p for p in phases if p == "flip"]
    if "admin" in phases and not os.access(admin_binary(binary), os.X_OK):
        cm.say("no %s: no admin phase" % admin_binary(binary))
        phases.remove("admin")
    failures = []
    rnd = cm.random.Random(seed)
    for sync in os.environ.get("STOPPED_SYNC", "interval,always").split(","):
        tmp = os.path.realpath(tempfile.mkdtemp(prefix="bc-stopped."))
        t = Stopped(binary, shim, tmp, rnd, sync)
        try:
            t.build()
            if "flip" in phases:
                t.phase_flip(3 * n)
            for phase, cap in (("admin", 8), ("start", 4)):
                if phase in phases:
                    t.phase_kill(phase, cap * n)
            for f in t.failures:
                cm.say("FAIL: %s: %s" % (sync, f))
            failures += t.failures
        finally:
            if t.failures and os.environ.get("CRASH_KEEP"):
                cm.say("data kept in %s" % tmp)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    cm.say("%s (seed %d, %.0f s)" % ("FAIL" if failures else "PASS", seed,
                                     time.monotonic() - t_start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(cm.run_main(main))
