#!/usr/bin/env python3
# test_compare_getpeek.py - pipelined get and gets lines against Debian's
# memcached ($MEMCACHED), byte for byte, where the server under test peeks at
# the next request before it is parsed (the next key is announced early):
# each stream is sent cut in two at every byte boundary, then whole; keys of
# 250 and 251 bytes and more, lines ending in a bare LF, NULs and binary junk
# after a get, gets with runs of spaces, and a get followed by a binary
# request on the same connection. Python 3 stdlib, bcserver.py and the
# masking of test_compare.py.
import os
import socket
import sys
import time

sys.dont_write_bytecode = True
top = os.environ.get("top_srcdir", ".")
sys.path.insert(0, os.path.join(top, "tests", "integration"))
sys.path.insert(0, os.path.join(top, "tests", "compare"))
import bcserver  # noqa: E402
import test_compare  # noqa: E402

SENTINEL = b"mn\r\n"
SENTINEL_REPLY = b"MN\r\n"
K250 = b"p" * 250
K251 = b"q" * 251
K300 = b"r" * 300

SETUP = (b"set a 1 0 1\r\nA\r\nset bb 2 0 2\r\nBB\r\n"
         b"set " + K250 + b" 3 0 3\r\nCCC\r\n")

# Streams sent after SETUP on a fresh connection. Each ends where memcached
# has answered everything, so the sentinel after it is answered last.
STREAMS = [
    ("two gets", b"get a\r\nget bb\r\n"),
    ("gets then get", b"gets a bb\r\nget bb a\r\n"),
    ("many spaces", b"gets    a     bb   \r\nget      bb\r\n"),
    ("bare LF", b"get a\nget bb\nget a bb\n"),
    ("key 250", b"get a\r\nget " + K250 + b"\r\nget " + K250 + b" a\r\n"),
    ("key 251", b"get a\r\nget " + K251 + b"\r\nget bb\r\n"),
    ("key 251 after 250", b"get " + K250 + b"\r\nget " + K250 + b"q bb\r\n"),
    ("key 300", b"get a\r\nget " + K300 + b"\r\nget a\r\n"),
    ("key 250 no space", b"get a\r\nget " + K250 + b" \r\n"),
    ("NUL in key", b"get a\r\nget b\x00b\r\nget bb\r\n"),
    ("junk after get", b"get a\r\n\x00\x01\xff\xfe junk\r\nget bb\r\n"),
    ("get without key", b"get a\r\nget \r\nget\r\nget bb\r\n"),
    ("getx", b"get a\r\ngetx a\r\ngets\r\ngets  \r\nget bb\r\n"),
    ("get then meta", b"get a\r\nmg bb v\r\nget a\r\n"),
]

# A binary get (opcode 0x00) of key "a", header then key.
BIN_GET_A = (b"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"
             b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00a")


def exchange(srv, parts, sentinel=True):
    sock = srv.connect(timeout=2.0)
    try:
        sock.sendall(SETUP)
        reply, closed = bcserver.recv_until(sock, (b"STORED\r\nSTORED\r\nSTORED\r\n",))
        if not reply.endswith(b"STORED\r\nSTORED\r\nSTORED\r\n"):
            return (b"setup: " + reply, "closed" if closed else "open")
        for i, p in enumerate(parts):
            if p:
                sock.sendall(p)
            if i + 1 < len(parts):
                time.sleep(0.01)
        if not sentinel:
            reply, closed = bcserver.recv_until(sock, (), quiet=0.3)
            return (test_compare.mask(reply), "closed" if closed else "open")
        sock.sendall(SENTINEL)
        reply, closed = bcserver.recv_until(sock, (SENTINEL_REPLY,))
        if reply.endswith(SENTINEL_REPLY):
            reply = reply[:-len(SENTINEL_REPLY)]
        elif not closed:
            reply += b"<timeout>"
        return (test_compare.mask(reply), "closed" if closed else "open")
    except (BrokenPipeError, ConnectionResetError):
        return (b"<reset>", "closed")
    finally:
        sock.close()


def cuts(data):
    """The stream whole, then cut in two at every byte boundary."""
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def check(ref, sut, name, parts, sentinel=True):
    want = exchange(ref, parts, sentinel)
    got = exchange(sut, parts, sentinel)
    if want != got:
        print("FAIL %s cut at %s:\n  memcached: %r\n  bitcached: %r"
              % (name, [len(p) for p in parts], want, got))
        return 1
    return 0


def main():
    bc = bcserver.binary()
    mc = bcserver.memcached_binary()
    ref = bcserver.Server(mc, kind="memcached", args=["-U", "0"])
    sut = bcserver.Server(bc)
    fails = 0
    runs = 0
    try:
        ref.start()
        sut.start()
        for name, data in STREAMS:
            # long keys: every cut near the key's end and the line ends,
            # not every byte of the key
            if len(data) > 200:
                marks = [i for i in range(1, len(data))
                         if data[i - 1:i + 1] in (b"\r\n", b"t ", b" a")
                         or data[i:i + 1] in (b"\r", b"\n")]
                pts = sorted({j for m in marks for j in range(m - 3, m + 4)
                              if 0 < j < len(data)})
                plans = [[data]] + [[data[:i], data[i:]] for i in pts]
            else:
                plans = list(cuts(data))
            for parts in plans:
                fails += check(ref, sut, name, parts)
                runs += 1
                if not sut.alive():
                    print("FAIL %s: server under test died" % name)
                    return 1
        # a get, then a binary request on the same connection: memcached
        # takes the first byte of a connection to choose the protocol, so
        # the binary bytes are an unknown text command to it; no sentinel,
        # since what it does with the rest decides the connection
        for parts in ([b"get a\r\n" + BIN_GET_A], [b"get a\r\n", BIN_GET_A],
                      [b"get a\r\n\x80", BIN_GET_A[1:]]):
            fails += check(ref, sut, "get then binary", parts, sentinel=False)
            runs += 1
        if not sut.alive():
            print("FAIL: server under test died")
            fails += 1
    finally:
        ref.close()
        sut.close()
    print("getpeek: %d exchanges, %d failures" % (runs, fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
