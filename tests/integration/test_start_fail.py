#!/usr/bin/env python3
"""test_start_fail.py - a start-up that fails after the worker threads
started (listen() refused) exits with EX_CANTCREAT (73) and a message,
never by a signal: the workers' loops are stopped before their event
bases are freed. Two ways in: a unix socket (-s) in a directory that does
not exist, and a TCP port that another socket, bound to it as well
(SO_REUSEADDR on both), starts listening on between the server's bind and
its listen(): "Address already in use" at listen, as when two servers
started at once pick the same port. Before the fix the freed bases were
still in use by the workers (libevent's "epoll.c: Assertion res <=
epollop->nevents failed", a crash, or AddressSanitizer's use-after-free).
A replica whose listen() fails has not connected to its primary yet: the
primary served no full copy (a retried start would cost it a second one).
"""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bcserver  # noqa: E402

EX_CANTCREAT = 73
RUNS_UNIX = 20
THREADS = "2"  # the old crash showed more often with few workers

check = bcserver.Checks(verbose=False)


def sane(err):
    """No libevent assertion, sanitizer report or crash trace in stderr."""
    return not any(s in err for s in ("Assertion", "AddressSanitizer",
                                      "runtime error", "LeakSanitizer"))


def port_of(extra):
    return int(extra[extra.index("-p") + 1])


def run(bc, tmp, i, extra, wait=10.0, between=None):
    """Start the server with extra arguments, call between() while it
    starts (False: the server is not going to fail), and return (exit
    status, stderr). A server that did not fail is stopped with SIGTERM;
    its status is then ("ran", code)."""
    p = subprocess.Popen([bc, "--data-dir=" + os.path.join(tmp, "d%d" % i),
                          "-l", "127.0.0.1", "-t", THREADS] + extra,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if between is not None and not between():
        # It listened first: it runs. Once it answers (its main loop and
        # signal handling are up), stop it.
        wait = 0
        try:
            s = socket.create_connection(("127.0.0.1", port_of(extra)), 10)
            s.settimeout(10)
            s.sendall(b"version\r\n")
            s.recv(100)
            s.close()
        except OSError:
            pass  # the status says what happened
    try:
        rc = p.wait(wait)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        rc = ("ran", p.wait())
    return rc, p.stderr.read().decode(errors="replace")


def unix_case(bc, tmp):
    sock = os.path.join(tmp, "missing", "sock")
    for i in range(RUNS_UNIX):
        rc, err = run(bc, tmp, i, ["-p", "0", "-s", sock])
        if not check(rc == EX_CANTCREAT and
                     "cannot listen on unix socket" in err and sane(err),
                     "unix socket in a missing directory, run %d: exit %r "
                     "(want %d), stderr %r" % (i, rc, EX_CANTCREAT, err)):
            return


def tcp_case(bc, tmp):
    """The clash is a race (the other socket must listen after the server's
    bind and before its listen): the delay before the other listen grows
    until it hit the server's listen() a few times."""
    hits = tries = 0
    while hits < 4 and tries < 40:
        tries += 1
        other = socket.socket()
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", 0))
        port = other.getsockname()[1]
        delay = 0.002 * (tries % 20)

        def listen_other():
            time.sleep(delay)
            try:
                other.listen(1)
            except OSError:
                return False  # the server listened first: it runs
            return True

        rc, err = run(bc, tmp, 100 + tries, ["-p", str(port)],
                      between=listen_other)
        other.close()
        if "listen: Address already in use" in err:
            hits += 1
            ok = rc == EX_CANTCREAT
        elif isinstance(rc, tuple):
            ok = rc[1] == 0  # it listened first and stopped cleanly
        else:
            ok = rc == EX_CANTCREAT  # the other listened before the bind
        if not check(ok and sane(err),
                     "port clash, try %d (%.3f s): exit %r, stderr %r"
                     % (tries, delay, rc, err)):
            return
    print("port clash: %d of %d tries refused at listen()" % (hits, tries))


def replica_case(bc, tmp):
    """A replica that cannot listen exits before it connects to its
    primary: a start that is retried costs the primary one full copy, not
    two."""
    rport = bcserver.free_port()
    p = bcserver.Server(bc, args=["--repl-port", str(rport)])
    p.start()
    try:
        ps = p.connect()
        sock = os.path.join(tmp, "missing", "sock")
        for i in range(5):
            rc, err = run(bc, tmp, 200 + i,
                          ["-p", "0", "-s", sock, "--replica-of",
                           "127.0.0.1:%d" % rport])
            if not check(rc == EX_CANTCREAT and sane(err),
                         "replica that cannot listen, run %d: exit %r, "
                         "stderr %r" % (i, rc, err)):
                break
        time.sleep(0.2)  # a stream the replica began would be counted now
        ps.sendall(b"stats replication\r\n")
        data, _ = bcserver.recv_until(ps, [b"END\r\n"])
        served = [ln for ln in data.split(b"\r\n")
                  if ln.startswith(b"STAT full_syncs_served ")]
        check(served == [b"STAT full_syncs_served 0"],
              "no replica reached the primary: %r" % served)
        ps.close()
    finally:
        p.close()


def main():
    bc = bcserver.binary()
    tmp = bcserver.mkdtemp("bc-startfail.")
    unix_case(bc, tmp)
    tcp_case(bc, tmp)
    replica_case(bc, tmp)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
