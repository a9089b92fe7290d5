#!/usr/bin/env python3
# test_compare_conn_limit.py - how many clients -c lets in, beside
# memcached ($MEMCACHED): memcached 1.6.18 refuses a socket whose
# descriptor number reaches -c - 1, so its own descriptors (which grow
# with -t and the listeners) come off the clients it serves. The server
# under test ($BITCACHED) must serve as many, refuse the next one with the
# same line at the same point, and show the same curr_connections and
# rejected_connections in `stats`.
import os
import resource
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests",
                                "integration"))
import bcserver  # noqa: E402

BITCACHED = os.environ.get("BITCACHED", "./bitcached")
MEMCACHED = bcserver.memcached_binary()
CONFIGS = [["-c", "100", "-t", "2"], ["-c", "64", "-t", "1"],
           ["-c", "1024", "-t", "4"], ["-c", "200", "-t", "3", "-U", "0"]]


def stats_when_room(port):
    """stats once the server has seen a client go (it closes it on its
    own time); the refusals met before, which rejected_connections
    counts."""
    refused = 0
    for _ in range(100):
        try:
            st = bcserver.stats_at(port)
            if st:
                return st, refused
        except OSError:
            pass
        refused += 1
        time.sleep(0.1)
    return {}, refused


def fill(port, most):
    """Connect clients until one is refused; the served ones, the refusal."""
    conns = []
    refusal = b""
    for _ in range(most):
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.settimeout(5)
        s.sendall(b"version\r\n")
        try:
            reply = s.recv(200)
        except OSError as e:
            reply = str(e).encode()
        if not reply.startswith(b"VERSION "):
            refusal = reply
            s.close()
            break
        conns.append(s)
    return conns, refusal


def run(check, args):
    ref = bcserver.Server(MEMCACHED, "memcached", args)
    ours = bcserver.Server(BITCACHED, "bitcached", args)
    got = {}
    for srv in (ref, ours):
        srv.start()
        try:
            before = bcserver.stats_at(srv.port)
            conns, refusal = fill(srv.port, int(args[1]) + 5)
            # room for one: the stats connection
            conns.pop().close()
            time.sleep(0.2)
            after, refused = stats_when_room(srv.port)
            got[srv.kind] = (
                len(conns) + 1, refusal, after.get("curr_connections"),
                int(after.get("rejected_connections", "-1")) - refused -
                int(before.get("rejected_connections", "0")))
            for s in conns:
                s.close()
        finally:
            srv.close()
    want, have = got["memcached"], got["bitcached"]
    name = " ".join(args)
    for i, what in enumerate(("clients served", "refusal line",
                              "curr_connections at the limit - 1",
                              "rejected_connections")):
        check.that("%s: %s" % (name, what), want[i] == have[i],
                   "memcached %r, bitcached %r" % (want[i], have[i]))
    print("%s: memcached served %d, bitcached %d" % (name, want[0], have[0]))


def main():
    if not bcserver.executable(BITCACHED):
        bcserver.skip("BITCACHED not found: %s" % BITCACHED)
    if not bcserver.executable(MEMCACHED):
        bcserver.skip("memcached not installed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2200:
        bcserver.skip("open file limit too low for 1024 clients: %d" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2200), hard))
    check = bcserver.Checks(verbose=False)
    for args in CONFIGS:
        run(check, args)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
