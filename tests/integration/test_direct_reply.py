#!/usr/bin/env python3
"""test_direct_reply.py - replies held out of the output buffer (a reply
line, a large value sent from its segment's mapping and the bytes after
it, written with one writev: server/conn.c, struct direct) come out whole
and in order whatever the socket takes at a time: a client with a small
receive buffer that reads slowly gets pipelined text gets, a multi-get and
mg of large values among small replies byte for byte; a multi-get whose
large value is held with its line while a smaller value is queued behind
it comes out in order; a client that closes
in the middle of such a reply costs no other client anything; and the
values did go out as references (value_refs counts them) where cachestat(2)
lets them (Linux 6.5).
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=True)
BIG = 900 * 1024


def value(i, n=BIG):
    return (b"%02d-direct-reply-" % i * (n // 16 + 1))[:n]


def cmd(s, line, ends=(b"\r\n",)):
    s.sendall(line)
    data, _ = bcserver.recv_until(s, ends)
    return data


def text_value(key, v):
    return b"VALUE %s 7 %d\r\n%s\r\n" % (key, len(v), v)


def slow_client(srv):
    """A connection whose receive buffer holds a few KB."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(20)
    s.connect(("127.0.0.1", srv.port))
    return s


def read_slowly(s, n):
    """n bytes in small reads with pauses, so that the server's writes
    stop part way through its replies again and again."""
    data = b""
    reads = 0
    while len(data) < n:
        chunk = s.recv(min(n - len(data), 32 * 1024))
        if not chunk:
            break
        data += chunk
        reads += 1
        if reads % 8 == 0:
            time.sleep(0.005)
    return data


def has_cachestat():
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (6, 5)


def main():
    binary = bcserver.binary()
    srv = bcserver.Server(binary, args=["-I", "2m"])
    srv.start()
    try:
        s = srv.connect()
        s.settimeout(20)
        big = {i: value(i) for i in range(1, 4)}
        for i, v in big.items():
            got = cmd(s, b"set big:%d 7 0 %d\r\n%s\r\n" % (i, len(v), v))
            check(got == b"STORED\r\n", "set big:%d" % i)
        got = cmd(s, b"set small 7 0 5\r\nhello\r\n")
        check(got == b"STORED\r\n", "set small")
        refs0 = int(srv.stats(b"storage").get("value_refs", "0"))

        # pipelined, read slowly: every reply whole and in order
        c = slow_client(srv)
        c.sendall(b"get big:1\r\nget small\r\nget big:2 small big:3\r\n"
                  b"mg big:1 v\r\nversion\r\nget big:3\r\n")
        time.sleep(0.3)  # the server fills what the socket takes, then waits
        want = (text_value(b"big:1", big[1]) + b"END\r\n" +
                text_value(b"small", b"hello") + b"END\r\n" +
                text_value(b"big:2", big[2]) + text_value(b"small", b"hello") +
                text_value(b"big:3", big[3]) + b"END\r\n" +
                b"VA %d\r\n%s\r\n" % (BIG, big[1]))
        got = read_slowly(c, len(want))
        check(got == want, "pipelined gets read slowly: byte for byte "
              "(%d bytes of %d)" % (len(got), len(want)))
        rest, _ = bcserver.recv_until(c, (b"END\r\n",))
        check(rest.startswith(b"VERSION ") and
              rest.endswith(text_value(b"big:3", big[3]) + b"END\r\n"),
              "the replies after them too")
        c.close()

        # a value held with its line, then one queued behind it (copied,
        # too small to be sent from its file): both in order
        mid = value(4, 20 * 1024)
        got = cmd(s, b"set mid 7 0 %d\r\n%s\r\n" % (len(mid), mid))
        check(got == b"STORED\r\n", "set mid")
        med = value(5, 3000)
        got = cmd(s, b"set med 7 0 %d\r\n%s\r\n" % (len(med), med))
        check(got == b"STORED\r\n", "set med")
        for keys in (b"mid med", b"mid med mid", b"med mid small"):
            want = b"".join(text_value(k, {b"mid": mid, b"med": med,
                                           b"small": b"hello"}[k])
                            for k in keys.split()) + b"END\r\n"
            s.sendall(b"get " + keys + b"\r\n")
            got = bcserver.recv_n(s, len(want))
            check(got == want, "get %s: byte for byte" % keys.decode())

        # a client that goes away in the middle of a large reply
        for _ in range(3):
            c = slow_client(srv)
            c.sendall(b"get big:1 big:2 big:3\r\n")
            time.sleep(0.05)
            c.close()
        got = cmd(s, b"get big:2\r\n", (b"END\r\n",))
        check(got == text_value(b"big:2", big[2]) + b"END\r\n",
              "after clients closed mid-reply: the value whole")
        check(srv.alive(), "the server is still up")

        refs = int(srv.stats(b"storage").get("value_refs", "0"))
        if has_cachestat():
            check(refs > refs0, "values were sent from their files "
                  "(value_refs %d -> %d)" % (refs0, refs))
        else:
            print("no cachestat(2) before Linux 6.5: values are copied")
        s.close()
        check(srv.stop() == 0, "the server stops cleanly")
    finally:
        srv.kill()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
