#!/usr/bin/env python3
# recovery_gate.py - no client is left hanging while the store recovers. A
# data directory of many keys without hints (the server was killed) makes
# recovery scan every segment; the server, started with NOTIFY_SOCKET on a
# datagram socket of ours, is stopped (SIGSTOP) as soon as it reports that
# recovery has begun, while its last report still says shards are left.
# A client connecting then must be refused, or get an error line: never a
# connection that answers nothing until recovery ends. Once continued, the
# server must send READY=1 only after its last progress report and then
# serve the data. The same for UDP (-U): a request sent during recovery is
# never answered (the socket is bound only once the store is open), one sent
# after READY=1 is. Skips (77) without the server binary or without libsystemd
# (the recovery reports are what tells the test recovery is under way).

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from readiness import libsystemd_built, recv_until  # noqa: E402

NKEYS = 300000
SHARDS = 64
VALUE = b"v" * 100


def load(port):
    """NKEYS sets, pipelined, noreply; then a round trip so all are in."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        batch = []
        for i in range(NKEYS):
            batch.append(b"set rg:%d 0 0 %d noreply\r\n%s\r\n" %
                         (i, len(VALUE), VALUE))
            if len(batch) == 5000:
                c.sendall(b"".join(batch))
                batch = []
        c.sendall(b"".join(batch) + b"get rg:7\r\n")
        reply = b""
        while not reply.endswith(b"END\r\n"):
            chunk = c.recv(65536)
            if not chunk:
                break
            reply += chunk
        return VALUE in reply


def drain(sock):
    """Every datagram queued now (the sender is stopped)."""
    msgs = []
    sock.setblocking(False)
    try:
        while True:
            msgs.append(sock.recv(4096).decode("utf-8", "replace"))
    except BlockingIOError:
        pass
    sock.setblocking(True)
    return msgs


def mid_recovery(msgs):
    """True if the last report says recovery still has shards to go."""
    lines = [ln for m in msgs for ln in m.split("\n")]
    if "READY=1" in lines:
        return False
    status = [ln for ln in lines if ln.startswith("STATUS=")]
    if not status:
        return False
    last = status[-1]
    if last.startswith("STATUS=Recovering data in"):
        return True
    parts = last.split()
    # "STATUS=Recovering: K of N shards done"
    return (len(parts) >= 4 and parts[0] == "STATUS=Recovering:" and
            parts[1] != parts[3])


def client_during_recovery(f, port):
    """Connect while recovery is held: refused, or an error line at once."""
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(2)
    try:
        c.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        f.check(True, "connect during recovery is refused")
        return
    except OSError as e:
        f.check(False, "connect during recovery: unexpected %s" % e)
        return
    try:
        c.sendall(b"version\r\n")
        reply = c.recv(4096)
        f.check(reply.startswith(b"SERVER_ERROR") or reply == b"",
                "connection accepted during recovery gets an error or is "
                "closed (got %r)" % reply)
    except socket.timeout:
        f.check(False, "connection accepted during recovery hangs "
                "(no answer in 2 s)")
    finally:
        c.close()


def udp_frame(rid, payload):
    """memcached's 8-byte UDP frame header, then the request."""
    return bytes([rid >> 8, rid & 0xff, 0, 0, 0, 1, 0, 0]) + payload


def udp_replies(sock, timeout):
    """Every datagram that arrives within timeout seconds: (rid, payload)."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return got
        except ConnectionRefusedError:
            continue  # port unreachable: the request was refused
        if len(d) >= 8:
            got.append(((d[0] << 8) | d[1], d[8:]))


def attempt(f, binary, tmp, data, n):
    """One start; returns False if the stop did not land mid-recovery."""
    notify_path = os.path.join(tmp, "gate%d.notify" % n)
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify_path)
    port = lib.free_port()
    uport = lib.free_port()
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind(("127.0.0.1", 0))
    server = lib.Server([binary, "--data-dir", data, "--shards", str(SHARDS),
                         "-p", str(port), "-U", str(uport), "-l",
                         "127.0.0.1"], tmp,
                        env={"NOTIFY_SOCKET": notify_path},
                        name="gate%d" % n)
    stopped = False
    try:
        ns.settimeout(30)
        first = ns.recv(4096).decode("utf-8", "replace")
        os.kill(server.proc.pid, signal.SIGSTOP)
        stopped = True
        time.sleep(0.1)  # anything sent before the stop is queued by now
        msgs = [first] + drain(ns)
        if not mid_recovery(msgs):
            print("attempt %d: stop landed after recovery (%r); again" %
                  (n, msgs[-1]))
            return False
        print("attempt %d: held at %r" % (n, msgs[-1]))
        client_during_recovery(f, port)
        us.sendto(udp_frame(0x1111, b"version\r\n"), ("127.0.0.1", uport))
        os.kill(server.proc.pid, signal.SIGCONT)
        stopped = False
        ready, seen = recv_until(ns, server, "READY=1", 60)
        f.check(ready, "READY=1 after recovery")
        lines = [ln for m in msgs + seen for ln in m.split("\n")]
        done = "STATUS=Recovering: %d of %d shards done" % (SHARDS, SHARDS)
        f.check(done in lines and lines.index(done) < lines.index("READY=1")
                if ready else False,
                "READY=1 comes after the last recovery report")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"get rg:12345\r\n")
            reply = b""
            while not reply.endswith(b"END\r\n"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                reply += chunk
            f.check(VALUE in reply, "data served after recovery")
        us.sendto(udp_frame(0x2222, b"get rg:12345\r\n"),
                  ("127.0.0.1", uport))
        got = udp_replies(us, 2.0)
        f.check(not any(rid == 0x1111 for rid, _ in got),
                "a UDP request sent during recovery is not answered after it")
        f.check(any(rid == 0x2222 and VALUE in d for rid, d in got),
                "UDP served after recovery")
        f.check(server.stop() == 0, "clean stop")
        return True
    finally:
        if stopped:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.kill()
        ns.close()
        us.close()


def main():
    binary = lib.server_binary()
    if not libsystemd_built():
        print("SKIP: built without libsystemd: no recovery reports to time by")
        sys.exit(lib.SKIP)
    f = lib.Failures()
    with lib.tempdir() as tmp:
        data = os.path.join(tmp, "data")
        port = lib.free_port()
        loader = lib.Server([binary, "--data-dir", data, "--shards",
                             str(SHARDS), "-p", str(port), "-l", "127.0.0.1"],
                            tmp, name="loader")
        try:
            if not lib.wait_port(loader, port):
                print(loader.output())
                f.check(False, "loader server starts")
                f.finish()
            f.check(load(port), "%d keys loaded" % NKEYS)
        finally:
            loader.kill()  # SIGKILL: no hints, recovery scans everything
        for n in range(10):
            if attempt(f, binary, tmp, data, n):
                break
        else:
            print("SKIP: recovery too quick to catch on this machine")
            sys.exit(lib.SKIP)
    f.finish()


if __name__ == "__main__":
    main()
