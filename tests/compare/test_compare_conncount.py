#!/usr/bin/env python3
# test_compare_conncount.py - the connection counts of `stats` and the
# lines of `stats conns`, beside memcached ($MEMCACHED): memcached counts
# its listening sockets and, with -U, one UDP connection per worker thread
# (each on a descriptor of its own, each with its lines in `stats conns`)
# in curr_connections (less one) and total_connections, and `stats reset`
# zeroes total_connections. The server under test ($BITCACHED) must show
# the same curr_connections after the same clients come and go, the same
# total_connections after a reset (before it, the count holds the
# harness's start-up probes, which vary), a connection_structures that
# does not fall when clients go (memcached keeps them), and the same
# `stats conns` lines (with clients in each state an idle client shows:
# conn_new_cmd, conn_read, conn_nread, conn_swallow) once descriptor
# numbers, ports and times are masked.
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests",
                                "integration"))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMCACHED = bcserver.memcached_binary()
COUNTS = ("curr_connections", "total_connections")


def client(port):
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(5)
    s.sendall(b"version\r\n")
    if not s.recv(200).startswith(b"VERSION "):
        raise RuntimeError("no version reply")
    return s


def counts(sock, structs=None):
    """curr_connections and total_connections; the connection_structures
    readings are appended to structs."""
    st = bcserver.stats_on(sock)
    if structs is not None:
        structs.append(int(st.get("connection_structures", "-1")))
    return tuple(st.get(k) for k in COUNTS)


def conns_lines(sock, ports):
    """`stats conns` as a sorted list of lines, the descriptor numbers,
    the servers' ports, client ports and times masked."""
    sock.sendall(b"stats conns\r\n")
    data, _ = bcserver.recv_until(sock, [b"END\r\n"])
    out = []
    for ln in data.decode("latin-1").split("\r\n"):
        if not ln.startswith("STAT "):
            continue
        ln = re.sub(r"^STAT \d+:", "STAT N:", ln)
        for p in ports:
            ln = ln.replace(":%d" % p, ":PORT")
        ln = re.sub(r"(tcp:127\.0\.0\.1):\d+$", r"\1:CLIENT", ln)
        ln = re.sub(r"(secs_since_last_cmd) \d+$", r"\1 S", ln)
        out.append(ln)
    return sorted(out)


def settle(sock, want_curr, before):
    """counts() once curr_connections reads want_curr (a client's close
    is seen on the server's own time), or the last reading."""
    got = before
    for _ in range(50):
        got = counts(sock)
        if got[0] == want_curr:
            break
        time.sleep(0.05)
    return got


def run(kind, binary, extra):
    udp = bcserver.free_port() if "-U" in extra else 0
    args = [a if a != "UDP" else str(udp) for a in extra]
    srv = bcserver.Server(binary, kind, args)
    srv.start()
    seen = []
    structs = []
    try:
        a = client(srv.port)
        b = client(srv.port)
        first = counts(a, structs)
        seen.append(("two clients", first[0]))
        # one in each state a client waits in: nothing sent yet, part of
        # a line, part of a data block, a refused block being dropped
        more = [socket.create_connection(("127.0.0.1", srv.port), 5)
                for _ in range(4)]
        more[1].sendall(b"get fo")
        more[2].sendall(b"set a 0 0 10\r\nabc")
        more[3].sendall(b"set a 0 0 2000000\r\nabc")
        time.sleep(0.3)
        seen.append(("stats conns", conns_lines(a, (srv.port, udp))))
        for m in more:
            m.close()
        b.close()
        seen.append(("one gone",
                     settle(a, str(int(first[0]) - 1), first)[0]))
        counts(a, structs)
        a.sendall(b"stats reset\r\n")
        seen.append(("stats reset", bcserver.recv_lines(a, 1)))
        seen.append(("after reset", counts(a, structs)))
        c = client(srv.port)
        seen.append(("a client after reset", counts(a, structs)))
        c.close()
        a.close()
    finally:
        srv.close()
    return seen, structs


def main():
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    check = bcserver.Checks(verbose=False)
    for extra in (["-U", "0"], ["-U", "0", "-t", "2"],
                  ["-U", "UDP", "-t", "3"], ["-U", "UDP", "-t", "1"]):
        want, _ = run("memcached", MEMCACHED, extra)
        have, structs = run("bitcached", BITCACHED, extra)
        name = " ".join(extra)
        check.that("%s: connection_structures never falls" % name,
                   structs == sorted(structs) and structs[0] >= 3,
                   "bitcached %r" % structs)
        for (what, w), (_, h) in zip(want, have):
            check.that("%s: %s" % (name, what), w == h,
                       "memcached %r, bitcached %r" % (w, h))
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
