#!/usr/bin/env python3
# test_admin_lost_state.py - a stopped store (4 shards, not the default
# count) whose state file is missing, cut short, or damaged in both slots:
# bitcached-admin stats and dump open it as the server would (with the shard
# count of its shard directories; dump shows none of the items, all counted
# as flushed) and write nothing, and check says so and writes nothing;
# then the server starts on it, serves none of the items flushed or
# written before, and keeps a write made afterwards across a restart.
# Python 3 stdlib and bcserver.py.
import os
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


def request(sock, data):
    sock.sendall(data + b"mn\r\n")
    reply, _ = bcserver.recv_until(sock, (b"MN\r\n",))
    return reply[:-4]


def damage(path, how):
    if how == "missing":
        os.unlink(path)
        return
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    if how == "cut":
        data = data[:100]
    else:  # a byte flipped in each slot
        data[40] ^= 0x55
        data[4096 + 40] ^= 0x55
    with open(path, "wb") as fh:
        fh.write(data)


def one(how):
    srv = bcserver.Server(BIN, args=["--shards=4"])
    try:
        srv.start()
        s = srv.connect()
        for i in range(20):
            request(s, b"set old%d 0 0 2\r\nok\r\n" % i)
        request(s, b"flush_all\r\n")
        for i in range(20):
            request(s, b"set kept%d 0 0 2\r\nok\r\n" % i)
        s.close()
        srv.stop()
        damage(os.path.join(srv.data, "state"), how)
        before = bcserver.dir_snapshot(srv.data)
        for cmd in ("check", "stats", "dump"):
            p = subprocess.run([ADMIN, cmd, srv.data], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            out = p.stdout + p.stderr
            check(bcserver.dir_snapshot(srv.data) == before, "%s: admin %s wrote to the store" % (how, cmd))
            if cmd == "check":
                check(b"flushed" in out, "%s: check does not say the items count as "
                       "flushed: %r" % (how, out[-300:]))
                continue
            check(p.returncode == 0, "%s: admin %s exits %d: %r"
                   % (how, cmd, p.returncode, p.stderr[-300:]))
        p = subprocess.run([ADMIN, "dump", srv.data], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        check(b"old" not in p.stdout and b"kept" not in p.stdout,
               "%s: dump shows items the server counts as flushed" % how)
        srv.start()
        s = srv.connect()
        got = request(s, b"get " + b" ".join(b"old%d" % i for i in range(20)) + b" "
                      + b" ".join(b"kept%d" % i for i in range(20)) + b"\r\n")
        check(got == b"END\r\n", "%s: items from before the loss served: %r" % (how, got[:200]))
        request(s, b"set new 0 0 3\r\nnew\r\n")
        s.close()
        srv.stop()
        srv.start()
        s = srv.connect()
        got = request(s, b"get new\r\n")
        check(got == b"VALUE new 0 3\r\nnew\r\nEND\r\n", "%s: new write lost: %r" % (how, got))
        s.close()
    finally:
        srv.close()


for how in ("missing", "cut", "both slots"):
    one(how)
sys.exit(check.finish())
