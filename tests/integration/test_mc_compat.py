#!/usr/bin/env python3
# test_mc_compat.py - behaviours that need their own server options or timing,
# so they do not fit tests/compare/test_compare.py's one-server byte
# comparison: each check runs against Debian's memcached ($MEMCACHED, when
# installed) and the server under test ($BITCACHED) and wants the same
# outcome from both. Python 3 stdlib and tests/integration/bcserver.py.
import os
import re
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402


def command(sock, line, end=b"END\r\n"):
    sock.sendall(line)
    reply, _ = bcserver.recv_until(sock, (end,))
    return reply


def stats(sock, group=b""):
    reply = command(sock, b"stats" + (b" " + group if group else b"") + b"\r\n")
    out = {}
    for line in reply.split(b"\r\n"):
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[0] == b"STAT":
            out[parts[1].decode()] = parts[2].decode()
    return out


def closed_by_peer(sock, wait_s):
    """True once the peer has closed sock, waiting up to wait_s seconds."""
    sock.settimeout(wait_s)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def check_idle_kicks(srv):
    """-o idle_timeout: stats lists idle_kicks (only then), and an idle
    connection is closed and counted."""
    errs = []
    watcher = srv.connect()
    st = stats(watcher)
    if st.get("idle_kicks") != "0":
        errs.append("idle_kicks at start: %r" % st.get("idle_kicks"))
    victim = srv.connect()
    if not closed_by_peer(victim, 6.0):
        errs.append("idle connection not closed")
    victim.close()
    watcher.close()
    watcher = srv.connect()
    st = stats(watcher)
    if st.get("idle_kicks", "0") == "0":
        errs.append("idle_kicks after a kick: %r" % st.get("idle_kicks"))
    command(watcher, b"stats reset\r\n", b"RESET\r\n")
    st = stats(watcher)
    if st.get("idle_kicks") != "0":
        errs.append("idle_kicks after stats reset: %r" % st.get("idle_kicks"))
    watcher.close()
    return errs


def check_no_idle_kicks_without_timeout(srv):
    sock = srv.connect()
    st = stats(sock)
    sock.close()
    errs = ["idle_kicks listed without an idle timeout"] if "idle_kicks" in st else []
    # memcached's stats.t wants this one too, 0 while accept was never paused
    if st.get("time_in_listen_disabled_us") != "0":
        errs.append("time_in_listen_disabled_us %r" % st.get("time_in_listen_disabled_us"))
    return errs


def check_store_no_memory(srv):
    """-M: a store refused for want of memory gets memcached's error and is
    counted in store_no_memory."""
    sock = srv.connect()
    refused = 0
    for batch in range(200):
        req = b"".join(b"set nomem%d 0 0 1\r\nv\r\n" % (batch * 1000 + i) for i in range(1000))
        sock.sendall(req)
        reply = b""
        while reply.count(b"\r\n") < 1000:
            chunk = sock.recv(65536)
            if not chunk:
                return ["connection closed"]
            reply += chunk
        lines = reply.split(b"\r\n")[:1000]
        bad = [x for x in lines if x != b"STORED"]
        if any(x != b"SERVER_ERROR out of memory storing object" for x in bad):
            return ["unexpected reply %r" % bad[0]]
        refused += len(bad)
        if refused:
            break
    st = stats(sock)
    sock.close()
    if refused == 0:
        return ["never refused a store"]
    if st.get("store_no_memory") != str(refused):
        return ["store_no_memory %r after %d refusals" % (st.get("store_no_memory"), refused)]
    return []


def settled_stat(sock, group, name, want, wait_s=5.0):
    """The stat name (of stats group) once it reads want, or what it still
    reads after wait_s seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        got = stats(sock, group).get(name)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def check_crawler_settings(srv):
    """lru_crawler disable|enable|sleep|tocrawl and slabs automove show in
    stats settings. memcached's disable only asks its crawler thread to
    stop (its setting turns to no as that thread ends, and enable fails
    until then), so each setting is waited for, a few seconds at most."""
    errs = []
    sock = srv.connect()
    steps = [(b"lru_crawler disable", "lru_crawler", "no"),
             (b"lru_crawler enable", "lru_crawler", "yes"),
             (b"lru_crawler sleep 250", "lru_crawler_sleep", "250"),
             (b"lru_crawler tocrawl 17", "lru_crawler_tocrawl", "17"),
             (b"slabs automove 2", "slab_automove", "2"),
             (b"slabs automove ratio 0.5", "slab_automove_ratio", "0.50")]
    for cmd, name, want in steps:
        reply = command(sock, cmd + b"\r\n", b"\r\n")
        if reply != b"OK\r\n":
            errs.append("%r: %r" % (cmd, reply))
        got = settled_stat(sock, b"settings", name, want)
        if got != want:
            errs.append("after %r: %s %r, want %r" % (cmd, name, got, want))
    sock.close()
    return errs


def port_file_run(srv, args):
    """Start srv's binary with args and MEMCACHED_PORT_FILENAME set; return
    the file's lines once it appears (None if it never does)."""
    path = os.path.join(srv.tmp, "ports")
    if os.path.exists(path):
        os.unlink(path)
    env = dict(os.environ, MEMCACHED_PORT_FILENAME=path)
    srv.proc = subprocess.Popen(srv.argv() + args, env=env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and srv.proc.poll() is None:
        if os.path.exists(path):
            with open(path) as f:
                return f.read().splitlines()
        time.sleep(0.02)
    return None


def check_port_file(srv):
    """-p -1 and -U -1 bind ports the kernel picks; MEMCACHED_PORT_FILENAME
    names the file that lists them; -p 0 alone still starts and writes an
    empty list."""
    errs = []
    lines = port_file_run(srv, ["-p", "-1", "-U", "-1"])
    if lines is None:
        return ["no port file with -p -1 -U -1"]
    ports = dict(line.split(": ") for line in lines)
    if sorted(ports) != ["TCP INET", "UDP INET"]:
        errs.append("port file lines %r" % lines)
    else:
        try:
            sock = socket.create_connection(("127.0.0.1", int(ports["TCP INET"])), 5)
            if command(sock, b"version\r\n", b"\r\n")[:8] != b"VERSION ":
                errs.append("no version on the listed TCP port")
            sock.close()
        except OSError as e:
            errs.append("listed TCP port %s: %s (server exit status %r)"
                        % (ports["TCP INET"], e, srv.proc.poll()))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.settimeout(5)
        udp.sendto(b"\x00\x01\x00\x00\x00\x01\x00\x00version\r\n",
                   ("127.0.0.1", int(ports["UDP INET"])))
        try:
            if udp.recv(2048)[8:16] != b"VERSION ":
                errs.append("no version on the listed UDP port")
        except socket.timeout:
            errs.append("no reply on the listed UDP port")
        udp.close()
    srv.stop()
    lines = port_file_run(srv, ["-p", "0"])
    if lines != []:
        errs.append("-p 0: port file %r" % lines)
    srv.stop()
    return errs


UDP_PORT = bcserver.free_port()


def check_udp_in_stats_conns(srv):
    """stats conns lists a UDP socket as memcached does: fd:UDP UDP, its
    address as udp:HOST:PORT, state conn_read."""
    sock = srv.connect()
    reply = command(sock, b"stats conns\r\n")
    sock.close()
    fds = {}
    for line in reply.decode().split("\r\n"):
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT" and ":" in parts[1]:
            fd, name = parts[1].split(":", 1)
            fds.setdefault(fd, {})[name] = parts[2]
    want = {"UDP": "UDP", "addr": "udp:127.0.0.1:%d" % UDP_PORT, "state": "conn_read"}
    for entry in fds.values():
        if all(entry.get(k) == v for k, v in want.items()):
            return []
    return ["no UDP socket in stats conns: %r" % reply]


def check_watcher_skipped(srv):
    """A watcher that does not keep up loses lines, and is told how many
    with a skipped=N line once it catches up, as memcached does."""
    watcher = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    watcher.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    watcher.connect(("127.0.0.1", srv.port))
    if command(watcher, b"watch\r\n", b"\r\n") != b"OK\r\n":
        return ["watch refused"]
    client = srv.connect()
    spacer = b"X" * 180
    for batch in range(40):
        req = b"".join(b"get foo%d%s\r\n" % (batch * 1000 + i, spacer) for i in range(1000))
        client.sendall(req)
        got = 0
        while got < 1000:
            got += client.recv(1 << 20).count(b"END\r\n")
    watcher.settimeout(5)
    data = b""
    deadline = time.monotonic() + 20
    try:
        while b"skipped=" not in data:
            chunk = watcher.recv(1 << 20)
            if not chunk or time.monotonic() > deadline:
                return ["no skipped= line in %d bytes of log" % len(data)]
            data += chunk
            # new lines make the server flush the skipped count
            command(client, b"get foo\r\n")
    except socket.timeout:
        return ["no skipped= line after %d bytes of log" % len(data)]
    rest = data[data.index(b"skipped="):]
    while rest.count(b"\n") < 2:
        command(client, b"get foo\r\n")
        rest += watcher.recv(1 << 20)
    skip, line = rest.split(b"\n")[:2]
    client.close()
    watcher.close()
    errs = []
    if not skip[8:].isdigit() or int(skip[8:]) <= 0:
        errs.append("bad skipped line %r" % skip)
    if not line.startswith(b"ts=") or b" type=item_get " not in line:
        errs.append("after skipped=: %r" % line)
    return errs


def conn_lines(sock, port, timeout=5.0):
    """The connevents lines about the client on port (rport=port), read from
    the watcher sock until that client's conn_close line (or timeout)."""
    data = b""
    mine = []
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    try:
        while time.monotonic() < deadline:
            while b"\n" in data:
                line, data = data.split(b"\n", 1)
                line = line.decode(errors="replace")
                if " rport=%d " % port in line:
                    mine.append(line)
                    if " type=conn_close " in line:
                        return mine
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return mine


def check_connevents(srv):
    """watch connevents: conn_new and conn_close lines with memcached's
    fields and close reasons; stats counts the watchers."""
    errs = []
    watcher = srv.connect()
    watcher.sendall(b"watch connevents\r\n")
    reply = b""
    while b"\r\n" not in reply:  # lines about earlier clients may follow
        chunk = watcher.recv(4096)
        if not chunk:
            break
        reply += chunk
    if not reply.startswith(b"OK\r\n"):
        return ["watch connevents refused: %r" % reply]
    stats_sock = srv.connect()
    # memcached's count can lag the watcher's OK (seen as 0 on a loaded
    # machine), so it is waited for
    watchers = settled_stat(stats_sock, b"", "log_watchers", "1")
    if watchers != "1":
        errs.append("log_watchers %r with one watcher" % watchers)
    stats_sock.close()
    # quit, a protocol error, the client closing
    cases = [(b"version\r\nquit\r\n", "normal"), (b"GET / HTTP/1.1\r\n", "error"),
             (b"version\r\n", "normal")]
    for req, reason in cases:
        client = srv.connect()
        port = client.getsockname()[1]
        client.sendall(req)
        bcserver.recv_until(client, (b"\r\n",))
        if req == b"version\r\n":
            client.close()
        lines = conn_lines(watcher, port)
        client.close()
        new_re = re.compile(r"^ts=\d+\.\d+ gid=\d+ type=conn_new rip=127\.0\.0\.1 "
                            r"rport=%d transport=tcp cfd=\d+$" % port)
        close_re = re.compile(r"^ts=\d+\.\d+ gid=\d+ type=conn_close rip=127\.0\.0\.1 "
                              r"rport=%d transport=tcp reason=%s cfd=\d+$" % (port, reason))
        if len(lines) != 2 or not new_re.match(lines[0]) or not close_re.match(lines[1]):
            errs.append("%r: %r" % (req, lines))
    watcher.close()
    return errs


# (name, server arguments, check); a check returns a list of failures.
# With arguments None the check starts the server itself.
CHECKS = [
    ("idle_kicks", ["-o", "idle_timeout=1"], check_idle_kicks),
    ("no idle_kicks", [], check_no_idle_kicks_without_timeout),
    ("store_no_memory", ["-M", "-m", "2"], check_store_no_memory),
    ("crawler settings", [], check_crawler_settings),
    ("port file", None, check_port_file),
    ("udp in stats conns", ["-U", str(UDP_PORT)], check_udp_in_stats_conns),
    ("watcher skipped", ["-o", "watcher_logbuf_size=8"], check_watcher_skipped),
    ("connevents", [], check_connevents),
]


def main():
    bc = bcserver.binary()
    mc = os.environ.get("MEMCACHED", "")
    only = os.environ.get("COMPAT_ONLY")
    servers = [("bitcached", bc, "bitcached")]
    if bcserver.executable(mc):
        servers.insert(0, ("memcached", mc, "memcached"))
    fails = 0
    for name, args, check in CHECKS:
        if only and only not in name:
            continue
        for label, binary, kind in servers:
            srv = bcserver.Server(binary, kind=kind, args=["-U", "0"] + (args or []))
            try:
                if args is not None:
                    srv.start()
                errs = check(srv)
            finally:
                srv.close()
            for e in errs:
                fails += 1
                print("FAIL %s (%s): %s" % (name, label, e))
    print("mc_compat: %d checks, %d failures" % (len(CHECKS), fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
