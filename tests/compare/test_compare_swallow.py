#!/usr/bin/env python3
# test_compare_swallow.py - when a refused data block is answered:
# memcached ($MEMCACHED) reads and drops the whole block of a set or ms
# whose length is past the item size limit, or the body of a binary packet
# it refuses (an unknown opcode, a value too large), before it writes the
# reply. A client that sends the head, waits for an answer and only then
# sends the rest sees the reply come after the rest, not before. The
# server under test ($BITCACHED) must answer at the same point, and both
# must read the next request from the right byte.
import os
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
BIG = 2 * 1024 * 1024  # past the default item size limit (1m) of both
WAIT = 0.4


def b(op, key=b"", extras=b"", value=b"", body_len=None):
    """A binary request head (and body, unless body_len says otherwise)."""
    body = extras + key + value
    n = len(body) if body_len is None else body_len
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0,
                       n, 0xabcd, 0) + body


def read_for(s, secs):
    """What arrives within secs."""
    s.settimeout(secs)
    out = b""
    end = time.time() + secs
    try:
        while time.time() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    return out


# (name, first part, rest sent after the wait, a request after it)
CASES = [
    ("set too large",
     b"set sw1 0 0 %d\r\n" % BIG, b"x" * BIG + b"\r\n", b"get sw1\r\n"),
    ("set too large noreply",
     b"set sw2 0 0 %d noreply\r\n" % BIG, b"x" * BIG + b"\r\n",
     b"mn\r\n"),
    ("ms too large",
     b"ms sw3 %d\r\n" % BIG, b"x" * BIG + b"\r\n", b"mn\r\n"),
    ("ms too large part sent",
     b"ms sw4 %d T0\r\n" % BIG + b"y" * 1000, b"y" * (BIG - 1000) + b"\r\n",
     b"mn\r\n"),
    ("binary unknown opcode",
     b(0x5f, body_len=10), b"0123456789", b(0x0a)),
    ("binary unknown opcode with key",
     b(0x5f, b"k", body_len=300), b"k" + b"z" * 299, b(0x0a)),
    ("binary set too large",
     b(0x01, b"sw5", struct.pack(">II", 0, 0), body_len=8 + 3 + BIG)[:24] +
     struct.pack(">II", 0, 0) + b"sw5", b"v" * BIG, b(0x0a)),
]


def run_case(port, first, rest, after):
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(first)
        early = read_for(s, WAIT)
        s.sendall(rest)
        late = read_for(s, WAIT)
        s.sendall(after)
        last = read_for(s, WAIT)
    return early, late, last


def main():
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    check = bcserver.Checks(verbose=False)
    ref = bcserver.Server(MEMCACHED, "memcached", ["-U", "0"])
    # replies go out through the commit staging under --sync=always
    ours = [bcserver.Server(BITCACHED, "bitcached"),
            bcserver.Server(BITCACHED, "bitcached", ["--sync=always"])]
    ref.start()
    for srv in ours:
        srv.start()
    try:
        for name, first, rest, after in CASES:
            want = run_case(ref.port, first, rest, after)
            # the answer must come only once the block is all there
            check.that("%s: memcached answers late" % name, want[0] == b"",
                       "memcached answered %r early" % want[0][:120])
            for mode, srv in zip(("", " (always)"), ours):
                got = run_case(srv.port, first, rest, after)
                for i, part in enumerate(("before the rest", "after the rest",
                                          "the next request")):
                    check.that("%s%s: %s" % (name, mode, part),
                               want[i] == got[i],
                               "memcached %r, bitcached %r"
                               % (want[i][:120], got[i][:120]))
    finally:
        ref.close()
        for srv in ours:
            srv.close()
    print("%d cases compared" % len(CASES))
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
