#!/usr/bin/env python3
# test_admin_look.py - bitcached-admin's read-only commands (stats, check,
# dump) change nothing in the directory they read: every file's bytes,
# size and modification time and the list of files and folders are the
# same before and after each, on stores a recovery would change (a server
# killed with -9 under interval and under always, so the newest segment
# has no hint and the commit journal is there; then a torn tail, a torn
# segment header, a hint whose segment is gone, a stale temp file and no
# LOCK file; a journal holding what the segments lost, which dump and
# stats read from a private copy, replayed). What dump shows is what a
# server started afterwards serves.
# Each refuses a directory a server holds (naming its PID) and one that
# does not exist (which it does not create). Python 3 stdlib and bcserver.py.
import glob
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

BIN = os.environ.get("BITCACHED", "")
ADMIN = os.environ.get("BITCACHED_ADMIN", "")
if not bcserver.executable(BIN) or not bcserver.executable(ADMIN):
    bcserver.skip("no $BITCACHED or $BITCACHED_ADMIN")

check = bcserver.Checks(verbose=False)


def admin(*args):
    p = subprocess.run([ADMIN, "--quiet"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def diff(a, b):
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append("%s: %s -> %s" % (k, a.get(k), b.get(k)))
    return "; ".join(out[:6])


def cmd(sock, data):
    sock.sendall(data)
    out, _ = bcserver.recv_until(sock, (b"\r\n",))
    return out


def parse_dump(out):
    """{key: value} of a text dump of printable keys and values."""
    lines = out.split(b"\n")
    check(lines[0] == b"bitcached-dump 1", "dump header: %r" % lines[0][:40])
    items = {}
    for line in lines[1:]:
        if line:
            k, _flags, _exp, _cas, _size, v = line.split(b" ", 5)
            items[k[2:]] = v[2:]
    return items


def fill(mode):
    """A store written under --sync=mode and killed with -9: {key: value}."""
    srv = bcserver.Server(BIN, args=["--shards", "2", "--segment-size=64k",
                                     "--sync=" + mode, "--journal-size=64k"])
    srv.start()
    s = srv.connect()
    model = {}
    for rnd in range(3):
        for i in range(300):
            key = b"k%d" % i
            val = b"%s-%d-%d" % (mode.encode(), rnd, i) + b"x" * (i % 200)
            r = cmd(s, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(val), val))
            check(r == b"STORED\r\n", "set %r: %r" % (key, r))
            model[key] = val
    for i in range(0, 300, 7):
        key = b"k%d" % i
        check(cmd(s, b"delete %s\r\n" % key) == b"DELETED\r\n", "delete")
        del model[key]
    s.close()
    srv.kill()
    return srv, model


def look_all(data, what, model):
    """stats, check, dump and dump --keys-only on data: none changes it;
    dump shows model (when given). The dump's items."""
    items = None
    for args in (["stats"], ["check"], ["dump"], ["dump", "--keys-only"],
                 ["dump", "--format", "json"]):
        before = bcserver.dir_snapshot(data)
        rc, out, err = admin(*(args[:1] + [data] + args[1:]))
        after = bcserver.dir_snapshot(data)
        check.that("%s: %s changes nothing" % (what, " ".join(args)),
                   before == after, diff(before, after))
        ok = rc == 0 or (args[0] == "check" and rc == 1)
        check.that("%s: %s runs" % (what, " ".join(args)), ok,
                   "rc %d: %s" % (rc, err[-300:]))
        if args == ["dump"] and rc == 0:
            items = parse_dump(out)
            if model is not None:
                check.that("%s: dump shows every acknowledged item" % what,
                           items == model,
                           "%d items, %d in the model" % (len(items), len(model)))
    return items


def serve(data, mode):
    """A server started on data (moved into its own folder): it and what
    it serves of k0..k299, {key: value}."""
    srv = bcserver.Server(BIN, args=["--shards", "2", "--sync=" + mode])
    shutil.rmtree(srv.data, ignore_errors=True)
    os.rename(data, srv.data)
    srv.start()
    s = srv.connect()
    served = {}
    for i in range(300):
        key = b"k%d" % i
        out = bcserver.get_text(s, key)
        if out.startswith(b"VALUE"):
            head, rest = out.split(b"\r\n", 1)
            served[key] = rest[:int(head.split()[3])]
    s.close()
    return srv, served


# ---- stores a recovery would change ---------------------------------------
for mode in ("interval", "always"):
    srv, model = fill(mode)
    data = srv.data
    if mode == "always":
        check(os.path.exists(os.path.join(data, "journal.0")) or
              os.path.exists(os.path.join(data, "journal.1")),
              "always: the journal is there")
    look_all(data, mode + " after kill -9", model)

    if mode == "always":
        # Each shard's newest segment cut back to its header, as a power
        # loss may leave it: what it held is in the journal only, and only
        # a replay shows it (dump reads a private copy, replayed).
        cut = os.path.join(os.path.dirname(data), "cut")
        shutil.copytree(data, cut)
        lost = 0
        for shard in glob.glob(os.path.join(cut, "shard-*")):
            segs = sorted(glob.glob(os.path.join(shard, "*.seg")))
            if segs and os.path.getsize(segs[-1]) > 32:
                lost += os.path.getsize(segs[-1]) - 32
                os.truncate(segs[-1], 32)
        check(lost > 0, "always: newest segments cut")
        items = look_all(cut, "always, journal to replay", None)
        srv3, served = serve(cut, mode)
        check.that("always: dump of a store with a journal to replay is what "
                   "a server serves", items == served,
                   "%s vs %s items" % (None if items is None else len(items),
                                       len(served)))
        srv3.stop()

    # Damage a restart would repair: torn tail, torn header, a hint whose
    # segment is gone, a stale temp file; and no LOCK file.
    shard = os.path.join(data, "shard-000")
    segs = sorted(glob.glob(os.path.join(shard, "*.seg")))
    with open(segs[-1], "ab") as f:
        f.write(b"\x07torn tail bytes")
    newest = int(os.path.basename(segs[-1])[:8], 16)
    with open(os.path.join(shard, "%08x.seg" % (newest + 5)), "wb") as f:
        f.write(b"BC")
    hints = sorted(glob.glob(os.path.join(shard, "*.hint")))
    if hints:
        shutil.copy(hints[0], os.path.join(shard, "%08x.hint" % (newest + 9)))
    with open(os.path.join(shard, "00000001.hint.tmp"), "wb") as f:
        f.write(b"half a hint")
    os.unlink(os.path.join(data, "LOCK"))
    items = look_all(data, mode + " damaged", None)

    # What dump showed is what a server serves from that directory.
    srv2, served = serve(data, mode)
    check.that(mode + ": dump of the damaged store is what a server serves",
               items == served, "%s vs %s items" % (
                   None if items is None else len(items), len(served)))

    # ---- a server holds it: refused, naming its PID -------------------------
    for args in (["stats"], ["check"], ["dump"]):
        rc, out, err = admin(args[0], srv2.data)
        check.that("%s: %s refuses a directory a server holds" % (mode, args[0]),
                   rc == 2 and str(srv2.proc.pid) in err, "rc %d: %s" % (rc, err))
    check(srv2.stop() == 0, mode + ": server stopped cleanly")

# ---- a directory that is not there: refused, not made -----------------------
gone = os.path.join(bcserver.mkdtemp("bc-look."), "nothing-here")
for args in (["stats"], ["check"], ["dump"]):
    rc, out, err = admin(args[0], gone)
    check.that("%s refuses a missing directory" % args[0], rc == 2, "rc %d" % rc)
    check.that("%s does not make it" % args[0], not os.path.exists(gone), gone)

sys.exit(check.finish())
