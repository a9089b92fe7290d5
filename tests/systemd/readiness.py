#!/usr/bin/env python3
# readiness.py - the server's sd_notify protocol as systemd (Type=notify)
# sees it: started with NOTIFY_SOCKET pointing at a datagram socket of ours,
# it must send READY=1 only once its port accepts connections, and
# STOPPING=1 after SIGTERM, then exit 0. Checked for a TCP listener and for
# a unix socket; a second server on the same (locked) data directory must
# exit 73 without ever sending READY=1. Skips (77) until the server binary
# is built, or when the build has no libsystemd (the server then sends
# nothing by design).

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def libsystemd_built():
    builddir = os.environ.get("top_builddir", ".")
    try:
        with open(os.path.join(builddir, "config.h")) as f:
            return "#define HAVE_LIBSYSTEMD 1" in f.read()
    except OSError:
        return True


def recv_until(sock, server, want, timeout):
    """Datagrams until one holds the assignment want ("READY=1"); returns
    (found, all messages seen)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(0.2)
        try:
            msg = sock.recv(4096).decode("utf-8", "replace")
        except socket.timeout:
            if not server.alive():
                break
            continue
        seen.append(msg)
        if want in msg.split("\n"):
            return True, seen
    return False, seen


def connects(family, addr):
    """Connect, send `version`, expect one reply line (whatever it says: the
    protocol is tested elsewhere; this shows a worker serves the socket)."""
    with socket.socket(family, socket.SOCK_STREAM) as c:
        c.settimeout(5)
        try:
            c.connect(addr)
            c.sendall(b"version\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                reply += chunk
            print("reply to version: %r" % reply)
            return reply.endswith(b"\r\n")
        except OSError as e:
            print("connect %r: %s" % (addr, e))
            return False


def second_instance(f, binary, tmp, data):
    """A second server on a data directory in use must fail (73) without
    ever claiming to be ready, so systemd reports the start as failed."""
    notify_path = os.path.join(tmp, "second.notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify_path)
    port = lib.free_port()
    server = lib.Server([binary, "--data-dir", data, "-p", str(port),
                         "-l", "127.0.0.1"], tmp,
                        env={"NOTIFY_SOCKET": notify_path}, name="second")
    try:
        try:
            rc = server.proc.wait(15)
        except Exception:
            rc = None
        ready, seen = recv_until(ns, server, "READY=1", 0.5)
        for m in seen:
            print("second: got %r" % m)
        f.check(rc == 73, "second instance on a locked data dir exits 73 "
                "(got %r)" % rc)
        f.check(not ready, "second instance never sends READY=1")
    finally:
        server.kill()
        ns.close()


def run(f, binary, tmp, name, extra, family, addr):
    notify_path = os.path.join(tmp, name + ".notify")
    data = os.path.join(tmp, name + "-data")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify_path)
    server = lib.Server([binary, "--data-dir", data] + extra, tmp,
                        env={"NOTIFY_SOCKET": notify_path}, name=name)
    try:
        t0 = time.monotonic()
        ready, seen = recv_until(ns, server, "READY=1", 30)
        elapsed = time.monotonic() - t0
        for m in seen:
            print("%s: got %r" % (name, m))
        if not f.check(ready, "%s: READY=1 received (%.2f s)" % (name, elapsed)):
            print(server.output())
            return
        f.check(connects(family, addr),
                "%s: listener accepts and answers as soon as READY=1 arrives" % name)
        if family == socket.AF_INET:
            second_instance(f, binary, tmp, data)
        os.kill(server.proc.pid, 15)
        stopping, seen = recv_until(ns, server, "STOPPING=1", 15)
        for m in seen:
            print("%s: got %r" % (name, m))
        f.check(stopping, "%s: STOPPING=1 after SIGTERM" % name)
        rc = server.stop()
        f.check(rc == 0, "%s: exit status 0 after SIGTERM (got %r)" % (name, rc))
    finally:
        server.kill()
        ns.close()


def main():
    binary = lib.server_binary()
    if not libsystemd_built():
        print("SKIP: built without libsystemd, the server sends no notifications")
        sys.exit(lib.SKIP)
    f = lib.Failures()
    with lib.tempdir() as tmp:
        port = lib.free_port()
        run(f, binary, tmp, "tcp", ["-p", str(port), "-l", "127.0.0.1"],
            socket.AF_INET, ("127.0.0.1", port))
        sock = os.path.join(tmp, "bc.sock")
        run(f, binary, tmp, "unix", ["-p", "0", "-s", sock],
            socket.AF_UNIX, sock)
    f.finish()


if __name__ == "__main__":
    main()
