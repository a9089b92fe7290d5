#!/usr/bin/env python3
# test_compare_watch.py - the lines `watch fetchers mutations` shows for
# text, meta and binary commands, against memcached ($MEMCACHED). memcached
# logs an item_get line for each lookup it makes (a get, and the lookup
# before a store, a delete, an incr or decr, a touch, md, ma, me), an
# item_store line for each store (after an append or prepend, the size of
# the item made), and for an item an incr or ma creates from its initial
# value both lines of the add that makes it. The server under test
# ($BITCACHED) must show the same lines in the same order, once the
# timestamp, the watcher's gid and the client's descriptor are masked.
# Each protocol runs on one connection (memcached merges the lines of its
# worker threads in no set order), and each sequence ends there with a get
# of a marker key, whose line says the watcher has seen it all.
import os
import re
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests",
                                "integration"))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMCACHED = bcserver.memcached_binary()


def b(op, key=b"", extras=b"", value=b"", cas=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0,
                       len(body), 0x1234, cas) + body


def ex_set(flags=0, exp=0):
    return struct.pack(">II", flags, exp)


def ex_incr(delta, initial, exp):
    return struct.pack(">QQI", delta, initial, exp)


TEXT = [
    b"set wa 0 0 1\r\na\r\n",
    b"get wa wb\r\n",
    b"gets wa\r\n",
    b"touch wa 0\r\n",
    b"touch wb 0\r\n",
    b"gat 0 wa wb\r\n",
    b"append wa 0 0 2\r\nbc\r\n",
    b"prepend wa 0 0 3\r\nxyz\r\n",
    b"append wb 0 0 1\r\nx\r\n",
    b"cas wa 0 0 1 1\r\nq\r\n",
    b"cas wb 0 0 1 1\r\nq\r\n",
    b"delete wa\r\n",
    b"delete wa\r\n",
    b"set wn 0 0 1\r\n9\r\n",
    b"incr wn 1\r\n",
    b"decr wn 5\r\n",
    b"incr wb 1\r\n",
    b"ms wm 2\r\nab\r\n",
    b"ms wm 2 MA\r\ncd\r\n",
    b"ms wm 2 MP\r\nef\r\n",
    b"ms wz 2 MA\r\ngh\r\n",
    b"mg wm v\r\n",
    b"mg wz v\r\n",
    b"mg wm s N30\r\n",
    b"me wm\r\n",
    b"me wz\r\n",
    b"ma wc N0 J5\r\n",
    b"ma wc\r\n",
    b"ma wd N100 MD q\r\n",
    b"ma wz\r\n",
    b"md wc I\r\n",
    b"md wc\r\n",
    b"md wc q\r\n",
]

BINARY = [
    b(0x01, b"ba", ex_set(3, 0), b"vv"),     # set
    b(0x00, b"ba"),                          # get
    b(0x0c, b"bz"),                          # getk, a miss
    b(0x09, b"bz"),                          # getq, a miss
    b(0x1d, b"ba", struct.pack(">I", 0)),    # gat
    b(0x1c, b"ba", struct.pack(">I", 0)),    # touch
    b(0x1c, b"bz", struct.pack(">I", 0)),    # touch, a miss
    b(0x05, b"bc", ex_incr(1, 5, 0)),        # incr: created
    b(0x05, b"bc", ex_incr(1, 5, 0)),        # incr
    b(0x06, b"bc", ex_incr(9, 5, 0)),        # decr
    b(0x05, b"bz", ex_incr(1, 5, 0xffffffff)),  # incr, a miss
    b(0x0e, b"bc", b"", b"12"),              # append
    b(0x0f, b"bc", b"", b"3"),               # prepend
    b(0x0e, b"bz", b"", b"1"),               # append, a miss
    b(0x02, b"bc", ex_set(), b"x"),          # add, exists
    b(0x03, b"bz", ex_set(), b"x"),          # replace, a miss
    b(0x01, b"bc", ex_set(), b"y", cas=1),   # set with a stale cas
    b(0x11, b"bq", ex_set(7, 0), b"quiet"),  # setq
    b(0x04, b"ba"),                          # delete
    b(0x14, b"ba"),                          # deleteq, a miss
]

MASK = re.compile(rb"^ts=\d+\.\d+ gid=\d+ (.*) cfd=\d+ (size=\d+)$")


def noop_answered(sock):
    """Read binary responses until the noop's."""
    data = b""
    while True:
        while len(data) >= 24:
            op = data[1]
            n = 24 + struct.unpack(">I", data[8:12])[0]
            if len(data) < n:
                break
            data = data[n:]
            if op == 0x0a:
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk


def watch_lines(srv, commands, binary, marker):
    """The watcher's lines while commands run on one connection (each
    answered before the next is sent), up to the marker get's line."""
    w = srv.connect(timeout=10)
    w.sendall(b"watch fetchers mutations\r\n")
    got, _ = bcserver.recv_until(w, (b"OK\r\n",))
    if got != b"OK\r\n":
        raise RuntimeError("watch answered %r" % got)
    c = srv.connect(timeout=10)
    for cmd in commands:
        if binary:
            c.sendall(cmd + b(0x0a))
            noop_answered(c)
        else:
            c.sendall(cmd + b"mn\r\n")
            bcserver.recv_until(c, (b"MN\r\n",))
    if binary:
        c.sendall(b(0x00, marker) + b(0x0a))
        noop_answered(c)
    else:
        c.sendall(b"get " + marker + b"\r\n")
        bcserver.recv_until(c, (b"END\r\n",))
    c.close()
    end = b"type=item_get key=" + marker + b" "
    data = b""
    deadline = time.monotonic() + 20
    w.settimeout(1.0)
    while end not in data and time.monotonic() < deadline:
        try:
            chunk = w.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    w.close()
    lines = []
    for line in data.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            continue
        m = MASK.match(line)
        lines.append(m.group(1) + b" " + m.group(2) if m else line)
    return lines


def main():
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    check = bcserver.Checks(verbose=False)
    ref = bcserver.Server(MEMCACHED, "memcached", ["-U", "0"])
    sut = bcserver.Server(BITCACHED, "bitcached")
    ref.start()
    sut.start()
    try:
        for name, cmds, binary, marker in (
                ("text and meta", TEXT, False, b"watch_end_text"),
                ("binary", BINARY, True, b"watch_end_binary")):
            want = watch_lines(ref, cmds, binary, marker)
            got = watch_lines(sut, cmds, binary, marker)
            check.that("%s: memcached logged the marker" % name,
                       want and b"key=" + marker in want[-1], repr(want[-3:]))
            for i in range(max(len(want), len(got))):
                w = want[i] if i < len(want) else None
                g = got[i] if i < len(got) else None
                if w != g:
                    check.that("%s: line %d" % (name, i + 1), False,
                               "memcached %r, bitcached %r" % (w, g))
                    break
            else:
                check.that("%s: %d lines" % (name, len(want)), True)
    finally:
        ref.close()
        sut.close()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
