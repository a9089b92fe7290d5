#!/usr/bin/env python3
# test_flags.py - memcached's command-line flags: each one either starts the
# server ($BITCACHED) or is refused with memcached 1.6.18's message and exit
# code, as Debian's memcached ($MEMCACHED, when installed) is checked to do
# too; -s alone opens no TCP port; -l host:port, -C, -F, -b and -o values
# reach the server; stats conns lists the listener and the client.
# Python 3 stdlib and tests/integration/bcserver.py.
import os
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

# (arguments, None if the server starts, else (exit code, first stderr line))
CASES = [
    ("-m 0", (64, "Cannot set item size limit higher than 1/2 of memory max.")),
    ("-I 2k", (64, "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 2048)")),
    ("-I 128m", (64, "Cannot set item size limit higher than 1/2 of memory max.")),
    ("-I 500", (64, "Item max size cannot be less than 1024 bytes.")),
    ("-I 768k", (64, "-I (item_size_max: 786432) must be evenly divisible by slab_chunk_max (bytes: 524288)")),
    ("-I 1g -m 4096", (64, "Item max size cannot be less than 1024 bytes.")),
    ("-I 1536k", None),
    ("-I 1024m -m 4096", None),
    ("-I 2k -o slab_chunk_max=16", None),
    ("-o modern", None),
    ("-o foo", (1, 'Illegal suboption "foo"')),
    ("-o modern,,lru_crawler", (1, 'Illegal suboption ""')),
    ("-o ext_foo=1", (1, 'Illegal suboption "ext_foo=1"')),
    ("-o ext_threads=x", (1, "could not parse argument to ext_threads")),
    ("-o idle_timeout=10", None),
    ("-o idle_timeout", (1, "Missing numeric argument for idle_timeout")),
    ("-o hashpower=20", None),
    ("-o hashpower", (1, "Missing numeric argument for hashpower")),
    ("-o hashpower=70", (1, "Initial hashtable multiplier of 70 is too high")),
    ("-o hash_algorithm=foo", (1, "Unknown hash_algorithm option (jenkins, murmur3, xxh3)")),
    ("-o no_lru_maintainer,temporary_ttl=10", (64, "temporary_ttl requires lru_maintainer to be enabled")),
    ("-o temporary_ttl=10", None),
    ("-o lru_crawler,no_lru_crawler,lru_maintainer,tail_repair_time=10", None),
    ("-o watcher_logbuf_size=0,maxconns_fast,no_maxconns_fast", None),
    ("-o slab_chunk_max=16", None),
    ("-o ext_path={tmp}/ext:64m,ext_threads=2,ext_item_size=512", None),
    ("-o ssl_key=/nonexistent", None),
    ("-f 0.5", (1, "Factor must be greater than 1")),
    ("-f 1.05", None),
    ("-n 0", (1, "Chunk size must be greater than 0")),
    ("-n 10", None),
    ("-t 0", (1, "Number of threads must be greater than 0")),
    ("-c 0", (1, "Maximum connections must be greater than 0")),
    ("-p 70000", (64, "ERROR: Invalid port number 70000.")),
    ("-R 0", (1, "Number of requests per event must be greater than 0")),
    ("-R 5", None),
    ("-D ''", (1, "No delimiter specified")),
    ("-D #", None),
    ("-b 16", None),
    ("-C", None),
    ("-F", None),
    ("-X", None),
    ("-W", None),
    ("-L", None),
    ("-k", None),
    ("-M", None),
    ("-r", None),
    ("-N 2", None),
    ("-e {tmp}/memfile", None),
    ("--enable-largepages --disable-cas --listen-backlog=8 --extended=modern", None),
]

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def run_refused(argv, timeout=3.0):
    """Run a server expected to exit; returns (rc, first stderr line) or None
    if it was still running after timeout (then it is killed)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None
    lines = [l for l in (err + out).decode(errors="replace").splitlines()
             if l and "consider -u" not in l]
    return p.returncode, lines[0] if lines else ""


def split(args, tmp):
    return [a.strip("'") for a in args.replace("{tmp}", tmp).split()]


def ask(port, req, family=socket.AF_INET, addr=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(addr if addr is not None else ("127.0.0.1", port))
    s.sendall(req)
    data, _ = bcserver.recv_until(s, [b"END\r\n", b"OK\r\n", b"\r\n"])
    s.close()
    return data


def main():
    binary = bcserver.binary()
    memcached = os.environ.get("MEMCACHED", "/usr/bin/memcached")
    have_mc = bcserver.executable(memcached)
    tmp = bcserver.mkdtemp("bc-flags.")
    user = ["-u", "root"] if os.geteuid() == 0 else []

    # memcached-debug's -o relaxed_privileges (Debian's memcached is not a
    # debug build and refuses it): memcached's own test suite passes it.
    srv = bcserver.Server(binary, args=["-o", "relaxed_privileges"])
    try:
        srv.start()
        if not ask(srv.port, b"version\r\n").startswith(b"VERSION "):
            fail("-o relaxed_privileges: no version reply")
    except RuntimeError as e:
        fail("-o relaxed_privileges: %s" % e)
    finally:
        srv.close()

    started = []
    for args, want in CASES:
        extra = split(args, tmp)
        if want is not None:
            bc = run_refused([binary, "--data-dir=" + os.path.join(tmp, "d"),
                              "-l", "127.0.0.1", "-p", "0", "-s",
                              os.path.join(tmp, "s")] + extra)
            if bc is None or bc[0] != want[0] or bc[1] != want[1]:
                fail("%s: want %r, bitcached gave %r" % (args, want, bc))
            if have_mc:
                mc = run_refused([memcached, "-l", "127.0.0.1", "-p", "0",
                                  "-U", "0"] + user + extra, timeout=1.0)
                if mc is None or mc[0] != want[0] or mc[1] != want[1]:
                    fail("%s: table says %r, memcached gave %r" % (args, want, mc))
            continue
        srv = bcserver.Server(binary, args=extra)
        try:
            srv.start()
            if not ask(srv.port, b"version\r\n").startswith(b"VERSION "):
                fail("%s: no version reply" % args)
        except RuntimeError as e:
            fail("%s: %s" % (args, e))
        finally:
            srv.close()
        if have_mc:
            started.append((args, subprocess.Popen(
                [memcached, "-l", "127.0.0.1", "-p", "0", "-U", "0"] + user + extra,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    # memcached for the cases that start, all at once: still running after
    # a moment means it accepted the flags.
    time.sleep(0.5)
    for args, mc in started:
        if mc.poll() is not None:
            fail("%s: memcached refused it (exit %d)" % (args, mc.returncode))
        else:
            mc.kill()
            mc.wait()

    # -s alone: the unix socket, and no TCP port even though -p names one.
    port = bcserver.free_port()
    path = os.path.join(tmp, "sock")
    p = subprocess.Popen([binary, "--data-dir=" + os.path.join(tmp, "s1"),
                          "-p", str(port), "-s", path])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        if not ask(0, b"version\r\n", socket.AF_UNIX, path).startswith(b"VERSION"):
            fail("-s: no reply on the unix socket")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            fail("-s: TCP port %d is open" % port)
        except OSError:
            pass
    finally:
        p.terminate()
        p.wait()

    # -l host:port overrides -p; -C, -F and -b take effect.
    port = bcserver.free_port()
    p = subprocess.Popen([binary, "--data-dir=" + os.path.join(tmp, "s2"),
                          "-p", "1", "-l", "127.0.0.1:%d" % port, "-C", "-F",
                          "-b", "77", "-o", "idle_timeout=33"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or p.poll() is not None:
                    fail("-l 127.0.0.1:PORT: nothing listens")
                    raise SystemExit(1)
                time.sleep(0.02)
        st = ask(port, b"stats settings\r\n")
        for line in (b"STAT cas_enabled no", b"STAT flush_enabled no",
                     b"STAT tcp_backlog 77", b"STAT idle_timeout 33"):
            if line + b"\r\n" not in st:
                fail("stats settings lacks %r" % line)
        # stats conns: the listener (at the -l host:port) and this client
        st = ask(port, b"stats conns\r\n")
        want = [b":addr tcp:127.0.0.1:%d\r\n" % port, b":state conn_listening\r\n",
                b":listen_addr tcp:127.0.0.1:%d\r\n" % port,
                b":state conn_parse_cmd\r\n", b":secs_since_last_cmd 0\r\n"]
        for w in want:
            if w not in st:
                fail("stats conns lacks %r: %r" % (w, st))
        r = ask(port, b"flush_all\r\n")
        if r != b"CLIENT_ERROR flush_all not allowed\r\n":
            fail("-F: flush_all gave %r" % r)
        r = ask(port, b"set a 0 0 1\r\nx\r\ngets a\r\n")
        if b"VALUE a 0 1 0\r\n" not in r:
            fail("-C: gets gave %r" % r)
        r = ask(port, b"cas a 0 0 1 0\r\ny\r\n")
        if r != b"EXISTS\r\n":
            fail("-C: cas gave %r" % r)
    finally:
        p.terminate()
        p.wait()
    subprocess.call(["rm", "-rf", tmp])
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("PASS: %d flag cases" % len(CASES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
