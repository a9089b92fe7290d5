#!/usr/bin/env python3
# test_admin_journal.py - bitcached-admin on a directory left by a crash
# under --sync=always (issue 8): the server writes, sets, overwrites and
# deletes, and is killed with SIGKILL; then every segment is cut back to
# what was last synced (its header: a fresh store's segments are synced
# only at roll-over and checkpoints), as a power loss may leave them, so
# that the acknowledged records are in the commit journal only. Then:
#   - check reports the journal's records as damage, not a clean store
#     with keys missing;
#   - dump and compact (which open the store) see every acknowledged
#     write and no deleted key;
#   - repair replays the journal, after which check is clean and a dump
#     shows every write;
#   - a server started on the repaired directory serves them.
# Python 3 stdlib and bcserver.py.
import glob
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bcserver  # noqa: E402
from test_admin import parse_dump  # noqa: E402

BIN = os.environ.get("BITCACHED", "")
ADMIN = os.environ.get("BITCACHED_ADMIN", "")
if not bcserver.executable(BIN) or not bcserver.executable(ADMIN):
    bcserver.skip("no $BITCACHED or $BITCACHED_ADMIN")

SEG_HDR = 32
N = 300
expect = bcserver.Checks()


def admin(*args):
    p = subprocess.run([ADMIN, "--quiet"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def cmd(sock, data, n):
    sock.sendall(data)
    out = b""
    while out.count(b"\r\n") < n:
        c = sock.recv(65536)
        if not c:
            break
        out += c
    return out


def want():
    """What the acknowledged history leaves: {key: value}."""
    w = {}
    for i in range(N):
        w[b"k%d" % i] = b"v%d" % i
    for i in range(0, N, 3):
        w[b"k%d" % i] = b"new%d" % i
    for i in range(1, N, 5):
        del w[b"k%d" % i]
    return w


def crash_dir():
    srv = bcserver.Server(BIN, "bitcached", ["--sync=always", "--shards=4"])
    srv.start(timeout=30)
    s = srv.connect(timeout=10)
    r = cmd(s, b"".join(b"set k%d 0 0 %d\r\nv%d\r\n" % (i, len(b"v%d" % i), i)
                        for i in range(N)), N)
    ok = r == b"STORED\r\n" * N
    r = cmd(s, b"".join(b"set k%d 0 0 %d\r\nnew%d\r\n" %
                        (i, len(b"new%d" % i), i) for i in range(0, N, 3)),
            len(range(0, N, 3)))
    ok = ok and r == b"STORED\r\n" * len(range(0, N, 3))
    r = cmd(s, b"".join(b"delete k%d\r\n" % i for i in range(1, N, 5)),
            len(range(1, N, 5)))
    ok = ok and r == b"DELETED\r\n" * len(range(1, N, 5))
    expect(ok, "the server acknowledged every write")
    s.close()
    srv.kill()
    data = os.path.join(srv.tmp, "data")
    cut = 0
    for seg in glob.glob(os.path.join(data, "shard-*", "*.seg")):
        size = os.path.getsize(seg)
        if size > SEG_HDR:
            os.truncate(seg, SEG_HDR)
            cut += size - SEG_HDR
    expect(cut > 0, "the segments lost their unsynced records (%d bytes)" %
           cut)
    return srv, data


def copy(data, name):
    dst = os.path.join(os.path.dirname(data), name)
    shutil.copytree(data, dst)
    return dst


def dump_items(d):
    rc, out, err = admin("dump", d)
    expect(rc == 0, "dump %s exits 0 (%d: %s)" % (os.path.basename(d), rc,
                                                     err.strip()))
    return {k: v[2] for k, v in parse_dump(out).items()} if rc == 0 else {}


def main():
    srv, data = crash_dir()
    try:
        w = want()
        d_check = copy(data, "c-check")
        d_dump = copy(data, "c-dump")
        d_compact = copy(data, "c-compact")
        d_repair = copy(data, "c-repair")

        rc, out, err = admin("check", d_check)
        text = out.decode(errors="replace") + err
        expect(rc == 1 and "commit journal" in text and "repair" in text,
               "check reports the records only the journal holds "
               "(%d: %s)" % (rc, text.strip()[-300:]))

        expect(dump_items(d_dump) == w,
               "dump sees every acknowledged write and no deleted key")

        rc, out, err = admin("compact", d_compact)
        expect(rc == 0, "compact exits 0 (%d: %s)" % (rc, err.strip()))
        expect(dump_items(d_compact) == w,
               "after compact every acknowledged write is there")

        rc, out, err = admin("repair", d_repair)
        text = out.decode(errors="replace")
        expect(rc == 0 and "replayed" in text,
               "repair replays the journal (%d: %s %s)" % (rc, text.strip(),
                                                          err.strip()))
        rc, out, err = admin("check", d_repair)
        expect(rc == 0, "check is clean after repair (%d: %s %s)" %
               (rc, out.decode(errors="replace")[-300:], err.strip()))
        d_serve = copy(d_repair, "c-serve")
        expect(dump_items(d_repair) == w,
               "after repair a dump shows every acknowledged write")

        s2 = bcserver.Server(BIN, "bitcached", ["--sync=always",
                                                "--shards=4"])
        os.rmdir(os.path.join(s2.tmp, "data")) if os.path.isdir(
            os.path.join(s2.tmp, "data")) else None
        shutil.copytree(d_serve, os.path.join(s2.tmp, "data"))
        s2.start(timeout=30)
        try:
            c = s2.connect(timeout=10)
            bad = []
            for i in range(N):
                k = b"k%d" % i
                r = cmd(c, b"get %s\r\n" % k, 1 if k not in w else 3)
                exp = (b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k, len(w[k]), w[k])
                       if k in w else b"END\r\n")
                if r != exp:
                    bad.append(k)
            expect(not bad, "a server on the repaired directory serves "
                   "every write (%s)" % bad[:5])
            c.close()
        finally:
            s2.close()
    finally:
        srv.close()
    sys.exit(expect.finish())


if __name__ == "__main__":
    main()
