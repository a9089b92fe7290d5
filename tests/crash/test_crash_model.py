#!/usr/bin/env python3
# test_crash_model.py - model-based crash test (issue 8): clients send random
# set / delete / touch / gat / get / flush_all, with short TTLs, on a small key
# space to a server with tiny segments and a low compaction ratio, so that
# roll-over and compaction run all the time; the server is killed with SIGKILL
# at random moments and, through the LD_PRELOAD shim, at the Nth call of each
# write, sync, rename, unlink, truncate and allocate syscall on its data dir
# (before the call, after it, or with half a write done); it is restarted on
# the same data dir and every key is checked against its history (see
# crashmodel.py). All three --sync modes: a process crash must lose nothing
# acknowledged in any of them. A fourth mode, "evict", runs interval sync
# with -m 64k, a budget below what one shard's index takes, so that eviction
# runs all the time: there a key may read as a miss at any moment, but never
# as an older value, before or after a crash. A fifth, "mapped", runs
# interval sync with small values only, so that every record is copied
# into the mapping of the active segment (--write-map, the default; larger
# ones go out with pwrite): kills land in the copies, the extensions ahead
# of them (truncate) and the cuts back at roll-over. A sixth, "disk", runs
# interval sync with --disk-limit=192k, a few segments a shard, so that
# whole segments are evicted all the time: judged as "evict" is.
# "evict-always" and "disk-always" are those two under --sync=always
# (not in the default list: CRASH_MODES names them).
#
# Environment: BITCACHED (binary under test), CRASH_ITER=N (N times the
# rounds), CRASH_SEED (replay a run), CRASH_MODES (e.g. "always,evict").
# Against a sanitizer build only the random kills run (no shim).
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # the source tree may be read-only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashmodel as cm  # noqa: E402

KEYS = 48
CLIENTS = 4
RUN_S = 1.2
SIZES = [(80, 10, 400), (15, 400, 4000), (5, 4000, 20000)]
SMALL_SIZES = [(80, 10, 200), (20, 200, 600)]
KILL_GROUPS = ["write", "sync", "rename", "unlink", "truncate", "alloc"]


def evicting(mode):
    return mode.split("-")[0] in ("evict", "disk")


def server_args(mode):
    # evict-always and disk-always: the same under --sync=always, where
    # eviction and the commit of each write meet
    base = "always" if mode.endswith("-always") else "interval"
    mode = mode.split("-")[0]
    if mode == "evict":
        return server_args(base) + [
            "-m", "64k", "-I", "32k", "-o", "slab_chunk_max=16384"]
    if mode == "mapped":
        return server_args(base) + ["--write-map=yes"]
    if mode == "disk":
        # each journal file (--sync=always, 64k at least) may take at most
        # a quarter of the limit
        return server_args(base) + [
            "--disk-limit=256k" if base == "always" else "--disk-limit=192k"]
    return ["--sync=" + mode, "--segment-size=64k", "--journal-size=64k",
            "--compact-ratio=0.2",
            "--shards=2", "--sync-interval-ms=200", "-t", "2"]


class Run:
    def __init__(self, binary, shim, tmp, rnd):
        self.binary = binary
        self.shim = shim
        self.tmp = tmp
        self.rnd = rnd
        self.lines = []  # one summary line per scenario
        self.hard = []   # failures that are not model violations

    def shim_env(self, env, stats):
        if os.path.exists(stats):
            os.unlink(stats)
        return dict(env, LD_PRELOAD=self.shim, CRASHSHIM_DIR=self.tmp,
                    CRASHSHIM_STATS=stats)

    def scenario(self, srv, model, sync, label, env, kill_at, counting=False,
                 recovery_env=None):
        """One round: start (maybe with the shim), run the workload until
        the shim kills the server or kill_at seconds pass, SIGKILL; with
        recovery_env, restart once with that shim setting and SIGKILL it as
        soon as it is up (or dead); restart without the shim and verify.
        Returns the counters of the first run's shim."""
        stats = os.path.join(self.tmp, "shim.stats")
        if env:
            env = self.shim_env(env, stats)
        before = len(model.errors)
        acked0 = model.stats["acked"]
        up = srv.start(env)
        t0 = time.monotonic()
        note = ""
        if up:
            stop, threads = model.run(
                srv.port, CLIENTS,
                lambda: not srv.alive() or time.monotonic() - t0 > kill_at)
            srv.kill()
            cm.stop_clients(stop, threads)
        else:
            note = " (died at start-up, status %s)" % srv.proc.returncode
            srv.kill()
        counters = cm.read_stats(stats) if env else {}
        fired = counters.get("#fired", 0) == 1
        if recovery_env:
            rstats = os.path.join(self.tmp, "shim-recovery.stats")
            if not srv.start(self.shim_env(recovery_env, rstats)):
                note += " (recovery died, status %s)" % srv.proc.returncode
            srv.kill()
            if cm.read_stats(rstats).get("#fired", 0) != 1:
                note += " (recovery made no such truncate)"
        if not srv.start():
            self.hard.append("%s %s: restart failed (status %s)\n%s" % (
                sync, label, srv.proc.returncode, srv.log_tail()))
            return counters, False
        try:
            model.verify(srv.port, "%s after %s" % (sync, label))
        except cm.Dead as e:
            self.hard.append("%s %s: %s (%s)\n%s" % (
                sync, label, e, srv.reap(), srv.log_tail()))
            return counters, False
        # A clean stop, so that what the verification wrote (deletes of
        # keys found wrong) is not charged to the next scenario.
        st = srv.stop()
        if st != 0:
            self.hard.append("%s %s: SIGTERM after the verification: %s\n%s"
                             % (sync, label, st, srv.log_tail()))
        c = model.counts(model.errors[before:])
        self.lines.append(
            "%-8s %-34s %s acked %5d  lost %d resurrected %d foreign %d%s" % (
                sync, label, "fired  " if fired else ("       " if counting or
                                                      not env else "no-kill"),
                model.stats["acked"] - acked0, c["LOST"], c["RESURRECTED"],
                c["FOREIGN"], note))
        cm.say(self.lines[-1])
        return counters, True

    def evictions(self, srv, model):
        """The evict and disk modes must evict: run the workload for a
        second on a fresh start and read the server's evictions counter."""
        if not srv.start():
            self.hard.append("evict: start failed\n%s" % srv.log_tail())
            return
        t0 = time.monotonic()
        stop, threads = model.run(srv.port, CLIENTS,
                                  lambda: time.monotonic() - t0 > 1.0)
        cm.stop_clients(stop, threads)
        n = -1
        try:
            conn = cm.Conn(srv.port)
            conn.send(b"stats\r\n")
            while True:
                line = conn.line()
                if line == b"END" or not line.startswith(b"STAT "):
                    break
                if line.startswith(b"STAT evictions "):
                    n = int(line.split()[2])
            conn.close()
        except cm.Dead:
            pass
        srv.stop()
        mode = "evict" if "-m" in srv.args else "disk"
        cm.say("%-8s evictions in a 1 s run: %d" % (mode, n))
        if n <= 0:
            self.hard.append("%s: the workload evicted nothing (%d)" % (
                mode, n))

    def mode(self, sync, rounds):
        d = os.path.join(self.tmp, sync)
        os.makedirs(d)
        srv = cm.Server(self.binary, os.path.join(d, "data"),
                        server_args(sync), os.path.join(d, "server.log"))
        model = cm.Model(KEYS, SMALL_SIZES if sync == "mapped" else SIZES,
                         self.rnd, evicting=evicting(sync))
        if evicting(sync):
            self.evictions(srv, model)
        for r in range(rounds):
            # A counting run that is also a kill at a random moment.
            t = self.rnd.uniform(0.2, RUN_S)
            env = {"CRASHSHIM_KILL": ""} if self.shim else None
            counters, ok = self.scenario(srv, model, sync,
                                         "random kill at %.2fs" % t, env, t,
                                         counting=True)
            if not ok:
                break
            if self.shim and not any(cm.group_count(counters, g)
                                     for g in cm.GROUPS):
                raise RuntimeError("the shim counted no file calls of the "
                                   "server: it is not working")
            # Another at a random moment, early ones included (the server
            # may still be recovering or compacting what it found).
            t = self.rnd.uniform(0.0, RUN_S)
            if not self.scenario(srv, model, sync,
                                 "random kill at %.2fs" % t, None, t)[1]:
                break
            if not self.shim:
                continue
            # A torn write, then a kill at a truncate of the recovery that
            # cuts the torn tail.
            n = max(1, cm.group_count(counters, "write"))
            at = self.rnd.randint(1, n)
            at_t = self.rnd.randint(1, 2)
            when = self.rnd.choice(["before", "after"])
            spec = "%s:%d:torn" % (",".join(cm.GROUPS["write"]), at)
            rspec = "%s:%d:%s" % (",".join(cm.GROUPS["truncate"]), at_t, when)
            label = "torn write %d, truncate %d %s" % (at, at_t, when)
            if not self.scenario(srv, model, sync, label,
                                 {"CRASHSHIM_KILL": spec}, RUN_S + 1,
                                 recovery_env={"CRASHSHIM_KILL": rspec})[1]:
                break
            for g in KILL_GROUPS:
                n = cm.group_count(counters, g)
                if n == 0:
                    self.lines.append("%-8s %-34s no calls in the counting run"
                                      % (sync, g))
                    cm.say(self.lines[-1])
                    continue
                at = self.rnd.randint(1, n)
                when = self.rnd.choice(["before", "after"] +
                                       (["torn"] if g == "write" else []))
                spec = "%s:%d:%s" % (",".join(cm.GROUPS[g]), at, when)
                label = "kill at %s %d/%d %s" % (g, at, n, when)
                if not self.scenario(srv, model, sync, label,
                                     {"CRASHSHIM_KILL": spec}, RUN_S + 1)[1]:
                    return model
        return model


def main():
    t_start = time.monotonic()
    binary = cm.binary()
    seed = cm.seed()
    rounds = cm.iterations()
    sanitized = cm.is_sanitized(binary)
    shim = "" if sanitized else cm.shim_path()
    modes = os.environ.get("CRASH_MODES",
                           "always,interval,never,evict,mapped,disk").split(
                               ",")
    cm.say("crash model test: binary %s, seed %d (CRASH_SEED=%d replays), "
           "%d round(s) per mode" % (binary, seed, seed, rounds))
    if sanitized:
        cm.say("sanitizer build: the LD_PRELOAD shim cannot run under ASan; "
               "only random kills are tested")
    elif not shim:
        cm.say("ERROR: crashshim.so not built (make check builds it)")
        return 99
    tmp = tempfile.mkdtemp(prefix="bc-crash.")
    tmp = os.path.realpath(tmp)
    run = Run(binary, shim, tmp, cm.random.Random(seed))
    failed = False
    try:
        for sync in modes:
            model = run.mode(sync, rounds)
            c = model.counts()
            cm.say("%s: %d acknowledged ops (%d flush_all), %d SERVER_ERROR, "
                   "%d unanswered; LOST %d, RESURRECTED %d, FOREIGN %d" % (
                       sync, model.stats["acked"],
                       model.stats["flush_all ok"],
                       model.stats["server_error"],
                       model.stats["unanswered"], c["LOST"],
                       c["RESURRECTED"], c["FOREIGN"]))
            if model.errors or model.other:
                cm.report_errors(model)
                failed = True
            if model.stats["timeout"]:
                cm.say("FAIL: %s: %d requests got no reply within 15 s from a "
                       "running server" % (sync, model.stats["timeout"]))
                failed = True
        for h in run.hard:
            cm.say("FAIL: " + h)
            failed = True
    finally:
        if failed and os.environ.get("CRASH_KEEP"):
            cm.say("data kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    cm.say("%s (seed %d, %.0f s)" % ("FAIL" if failed else "PASS", seed,
                                     time.monotonic() - t_start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(cm.run_main(main))
