#!/usr/bin/env python3
# test_smoke.py - what a person at a telnet prompt would type, over a raw
# socket, with "\r\n" line endings (telnet) and bare "\n" (nc): set, get,
# delete, incr, an unknown command, quit. Depends on the Python stdlib and
# tests/integration/bcserver.py only.
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

END_MARKS = (b"STORED\r\n", b"END\r\n", b"DELETED\r\n", b"NOT_FOUND\r\n",
             b"ERROR\r\n", b"\r\n")


def session(srv, nl):
    steps = [
        ("set greeting 0 0 5" + nl + "hello" + "\r\n", "STORED\r\n"),
        ("get greeting" + nl, "VALUE greeting 0 5\r\nhello\r\nEND\r\n"),
        ("get nothing" + nl, "END\r\n"),
        ("set counter 3 0 1" + nl + "9" + "\r\n", "STORED\r\n"),
        ("incr counter 1" + nl, "10\r\n"),
        ("incr counter 5" + nl, "15\r\n"),
        ("decr counter 5" + nl, "10\r\n"),
        ("get counter" + nl, "VALUE counter 3 2\r\n10\r\nEND\r\n"),
        ("decr counter 20" + nl, "0\r\n"),
        ("delete greeting" + nl, "DELETED\r\n"),
        ("delete greeting" + nl, "NOT_FOUND\r\n"),
        ("get greeting" + nl, "END\r\n"),
        ("hello there" + nl, "ERROR\r\n"),
        ("   " + nl, "ERROR\r\n"),
        ("GET counter" + nl, "ERROR\r\n"),
        ("version" + nl, None),
    ]
    s = srv.connect()
    fails = 0
    for send, want in steps:
        s.sendall(send.encode())
        if want is None:
            got, _ = bcserver.recv_until(s, (b"\r\n",))
            ok = got.startswith(b"VERSION ") and got.endswith(b"\r\n")
        else:
            got, _ = bcserver.recv_until(s, (want.encode(),), quiet=0)
            ok = got == want.encode()
        if not ok:
            print("FAIL [%r] sent %r: got %r, want %r" % (nl, send, got, want))
            fails += 1
    s.sendall(("quit" + nl).encode())
    rest, closed = bcserver.recv_until(s, (), quiet=2.0)
    if rest or not closed:
        print("FAIL [%r] quit: got %r, closed=%s" % (nl, rest, closed))
        fails += 1
    s.close()
    return fails


def main():
    binary = bcserver.binary()
    srv = bcserver.Server(binary)
    try:
        srv.start()
        fails = session(srv, "\r\n") + session(srv, "\n")
        if not srv.alive():
            print("FAIL: server died")
            fails += 1
    finally:
        srv.close()
    print("smoke: %d failures" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
