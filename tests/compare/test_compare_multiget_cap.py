#!/usr/bin/env python3
# test_compare_multiget_cap.py - the limit on a get line, beside memcached
# ($MEMCACHED): up to 1 MiB (the parser's PROTO_MULTIGET_MAX) the server
# under test ($BITCACHED) answers as memcached does; past it, where
# memcached grows its read buffer and answers, it answers "SERVER_ERROR out
# of memory reading request" and closes the connection (README says so).
import os
import socket
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests",
                                "integration"))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMCACHED = bcserver.memcached_binary()
CAP = 1024 * 1024
ERR = b"SERVER_ERROR out of memory reading request\r\n"


def get_line(size):
    """A get line of size bytes, "\r\n" included: stored keys mc0..mc9,
    then misses, the last one padded to the size."""
    line = b"get " + b" ".join(b"mc%d" % i for i in range(10))
    n = 0
    while len(line) + 9 + 2 <= size:
        line += b" m%07d" % n
        n += 1
    pad = size - 2 - len(line)
    if pad > 0:
        line += b" " + b"p" * (pad - 1) if pad > 1 else b" "
    return line + b"\r\n"


def ask(port, line):
    """Store mc0..mc9, send line; the reply, and whether the server closed."""
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.sendall(b"".join(b"set mc%d 0 0 1 noreply\r\n%d\r\n" % (i, i)
                           for i in range(10)))
        try:
            s.sendall(line + b"mn\r\n")
        except OSError:
            pass
        out = b""
        closed = False
        s.settimeout(10)
        try:
            while not out.endswith(b"MN\r\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    closed = True
                    break
                out += chunk
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            pass
    return out, closed


def main():
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    check = bcserver.Checks(verbose=False)
    ref = bcserver.Server(MEMCACHED, "memcached", ["-U", "0"])
    ours = bcserver.Server(BITCACHED, "bitcached")
    ref.start()
    ours.start()
    try:
        under = get_line(CAP)
        check.that("line at the limit", len(under) == CAP,
                   "%d bytes" % len(under))
        want, wclosed = ask(ref.port, under)
        got, gclosed = ask(ours.port, under)
        check.that("at the limit: replies as memcached's",
                   want == got and not wclosed and not gclosed,
                   "memcached %r%s, bitcached %r%s" % (
                       want[-60:], " (closed)" if wclosed else "",
                       got[-60:], " (closed)" if gclosed else ""))
        check.that("at the limit: all ten stored keys",
                   got.count(b"VALUE mc") == 10, "%r" % got[:200])
        over = get_line(CAP + 4096)
        want, wclosed = ask(ref.port, over)
        check.that("past the limit: memcached answers",
                   want.count(b"VALUE mc") == 10 and
                   want.endswith(b"END\r\nMN\r\n") and not wclosed,
                   "%r" % want[-60:])
        got, gclosed = ask(ours.port, over)
        check.that("past the limit: bitcached says why and closes",
                   got == ERR and gclosed, "%r closed=%s" % (got, gclosed))
        # the server goes on
        got, gclosed = ask(ours.port, b"get mc1\r\n")
        check.that("served after", got == b"VALUE mc1 0 1\r\n1\r\nEND\r\nMN\r\n",
                   "%r" % got)
    finally:
        ref.close()
        ours.close()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
