#!/usr/bin/env python3
"""test_signals.py - the signals memcached 1.6 handles without dying at
once: SIGHUP leaves the server serving (memcached only notes it), and
SIGUSR1 stops it gracefully (memcached's graceful stop): exit status 0,
and what was set is there after a restart. Before,
both signals' default action ended the process on the spot."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")


def ask(srv, line):
    try:
        s = srv.connect()
    except OSError:
        return b""  # not listening (gone)
    try:
        s.sendall(line)
        got = b""
        while not (got.endswith(b"END\r\n") or got.endswith(b"STORED\r\n")):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


def main():
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    check = bcserver.Checks(verbose=False)
    srv = bcserver.Server(BITCACHED, "bitcached", ["-t", "2"])
    srv.start()
    try:
        check.that("set", ask(srv, b"set k 0 0 2\r\nv1\r\n") == b"STORED\r\n")
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        check.that("SIGHUP: still running", srv.alive())
        check.that("SIGHUP: still serving",
                   ask(srv, b"get k\r\n") == b"VALUE k 0 2\r\nv1\r\nEND\r\n")
        srv.proc.send_signal(signal.SIGUSR1)
        try:
            rc = srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        check.that("SIGUSR1: exits by itself with status 0", rc == 0,
                   "status %r" % rc)
        srv.start()
        check.that("after SIGUSR1: the value is there",
                   ask(srv, b"get k\r\n") == b"VALUE k 0 2\r\nv1\r\nEND\r\n")
    finally:
        srv.close()
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
