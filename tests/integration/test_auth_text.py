#!/usr/bin/env python3
# test_auth_text.py - -Y (text-protocol authentication) end to end: every
# exchange compared byte for byte with memcached -Y ($MEMCACHED) when it is
# installed, and checked against memcached's strings either way; the
# start-up refusals (-Y with -B binary, with UDP, a missing file); the auth
# counters and stats settings line; -Y together with -S, where binary
# clients authenticate with SASL and text clients with -Y on one server.
# Python 3 stdlib and bcserver.py.
import os
import socket
import struct
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=True)
UNAUTH = b"CLIENT_ERROR unauthenticated\r\n"
FAILURE = b"CLIENT_ERROR authentication failure\r\n"


def talk(sock, req):
    """Send one request and read its reply: wait up to 2 s for its first
    byte (a loaded machine can take longer than the quiet window), then
    until quiet for 0.3 s. A request that gets no reply costs the 2 s."""
    sock.sendall(req)
    sock.settimeout(2.0)
    try:
        first = sock.recv(65536)
    except socket.timeout:
        return b""
    except ConnectionResetError:
        return b"<closed>"
    if not first:
        return b"<closed>"
    data, closed = bcserver.recv_until(sock, (), quiet=0.3)
    return first + data + (b"<closed>" if closed else b"")


# Each session is a list of requests sent one after another on one
# connection, each answered before the next is sent (memcached -Y answers
# only the last of several lines that arrive together, which we do not
# copy). VERSION lines differ, so sessions avoid them.
SESSIONS = [
    [b"get foo\r\n", b"set a 0 0 1\r\nx\r\n"],
    [b"quit\r\n", b"mg foo v\r\n"],
    [b"set x 0 0 12\r\nalice wrongg\r\n", b"get x\r\n"],
    [b"set x 0 0 9\r\nnobody pw\r\n", b"get x\r\n"],
    [b"set x 0 0 5\r\nalice\r\n", b"get x\r\n"],
    [b"set x 0 0 12\r\nalice secretXX", b"get x\r\n"],
    [b"add x 0 0 12\r\n", b"alice secret\r\n", b"get x\r\n"],
    [b"set x 0\r\n", b"set x 0 0 zz\r\n"],
    [b"set x 0 0 12\r\nalice secret\r\n", b"set k 0 0 1\r\nv\r\n", b"get k\r\n"],
    [b"set x 0 0 13 noreply\r\nalice  secret\r\n", b"delete k\r\n"],
    [b"set x 0 0 11\r\nbob hunter2\r\n", b"get k\r\n"],
    [b"\x80\x01\x00\x00\r\n", b"get k\r\n"],
]


def run_sessions(srv):
    out = []
    for sess in SESSIONS:
        s = srv.connect()
        try:
            out.append([talk(s, r) for r in sess])
        finally:
            s.close()
    return out


def start_exit(bc, args):
    tmp = bcserver.mkdtemp("bc-auth.")
    p = subprocess.run([bc, "--data-dir=" + tmp + "/d", "-l", "127.0.0.1",
                        "-p", str(bcserver.free_port())] + args,
                       capture_output=True, timeout=20)
    return p.returncode, p.stderr.decode(errors="replace")


def stats(sock, sub=b""):
    data = talk(sock, b"stats" + (b" " + sub if sub else b"") + b"\r\n")
    out = {}
    for line in data.split(b"\r\n"):
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[0] == b"STAT":
            out[parts[1].decode()] = parts[2].decode()
    return out


def pkt(op, key=b"", ext=b"", val=b""):
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(ext), 0, 0,
                       len(ext) + len(key) + len(val), 9, 0) + ext + key + val


def main():
    bc = bcserver.binary()
    mc = os.environ.get("MEMCACHED", "")
    tmp = bcserver.mkdtemp("bc-auth.")
    pwfile = os.path.join(tmp, "users")
    with open(pwfile, "w") as f:
        f.write("alice:secret\nbob:hunter2:extra\n")
    os.chmod(tmp, 0o755)
    os.chmod(pwfile, 0o644)  # memcached drops to another user

    srv = bcserver.Server(bc, "bitcached", ["-Y", pwfile])
    try:
        srv.start()
        got = run_sessions(srv)
        s = srv.connect()
        try:
            check(talk(s, b"stats\r\n") == UNAUTH, "stats refused before auth")
            check(talk(s, b"set a 0 0 12\r\nalice secret\r\n") == b"STORED\r\n",
                  "right password: STORED")
            st = stats(s)
            # sessions: 3 wrong tries (bob's password is the rest of his
            # line, colon and all, as memcached reads it), 2 right ones,
            # and this one
            check(st.get("auth_cmds") == "6" and st.get("auth_errors") == "3",
                  "auth counters: %s/%s" % (st.get("auth_cmds"), st.get("auth_errors")))
            check(stats(s, b"settings").get("auth_enabled_ascii") == pwfile,
                  "stats settings auth_enabled_ascii names the file")
            check(talk(s, b"get a\r\n") == b"END\r\n", "nothing was stored by the auth set")
        finally:
            s.close()
        check(srv.alive(), "server alive")
    finally:
        srv.close()

    expect = [
        [UNAUTH, b"CLIENT_ERROR bad authentication token format\r\n"],
        [UNAUTH, UNAUTH],
        [FAILURE, UNAUTH],
        [FAILURE, UNAUTH],
        [b"CLIENT_ERROR bad authentication token format\r\n", UNAUTH],
        [b"CLIENT_ERROR bad command line termination\r\n", UNAUTH],
        [UNAUTH, UNAUTH, UNAUTH],
        [UNAUTH, UNAUTH],
        [b"STORED\r\n", b"STORED\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n"],
        [b"STORED\r\n", b"DELETED\r\n"],
        [FAILURE, UNAUTH],
        [UNAUTH, UNAUTH],
    ]
    for i, (g, e) in enumerate(zip(got, expect)):
        check(g == e, "session %d: %r" % (i, g))

    if bcserver.executable(mc):
        ref = bcserver.Server(mc, "memcached", ["-Y", pwfile, "-U", "0"])
        try:
            ref.start()
            want = run_sessions(ref)
        finally:
            ref.close()
        for i, (g, w) in enumerate(zip(got, want)):
            check(g == w, "session %d like memcached: %r / %r" % (i, g, w))
    else:
        print("note: no memcached; comparison not run")

    rc, err = start_exit(bc, ["-Y", pwfile, "-B", "binary"])
    check(rc == 64 and "BINARY protocol while using ascii authentication" in err,
          "-Y -B binary refused: %d %s" % (rc, err.strip()))
    rc, err = start_exit(bc, ["-Y", pwfile, "-U", str(bcserver.free_port())])
    check(rc == 64 and "Cannot use UDP with ascii authentication" in err,
          "-Y with UDP refused: %d %s" % (rc, err.strip()))
    rc, err = start_exit(bc, ["-Y", os.path.join(tmp, "missing")])
    check(rc != 0 and "Could not open authfile" in err,
          "-Y with a missing file refused: %d %s" % (rc, err.strip()))

    # -Y and -S together: each protocol with its own check.
    os.environ["MEMCACHED_SASL_PWDB"] = pwfile
    srv = bcserver.Server(bc, "bitcached", ["-Y", pwfile, "-S"])
    try:
        srv.start()
        s = srv.connect()
        try:
            check(talk(s, b"get k\r\n") == UNAUTH, "-Y -S: text refused before auth")
            check(talk(s, b"set x 0 0 12\r\nalice secret\r\n") == b"STORED\r\n",
                  "-Y -S: text auth accepted")
            check(talk(s, b"get k\r\n") == b"END\r\n", "-Y -S: text served after auth")
        finally:
            s.close()
        s = srv.connect()
        try:
            r = talk(s, pkt(0x00, b"k"))
            check(len(r) >= 24 and r[6:8] == b"\x00\x20", "-Y -S: binary get refused before SASL")
        finally:
            s.close()
        s = srv.connect()
        try:
            # SASL's file format ends bob's password at the second colon
            r = talk(s, pkt(0x21, b"PLAIN", val=b"\0bob\0hunter2") + pkt(0x00, b"k"))
            st = []
            while len(r) >= 24:
                st.append(struct.unpack(">H", r[6:8])[0])
                r = r[24 + struct.unpack(">I", r[8:12])[0]:]
            check(st == [0, 1], "-Y -S: binary SASL accepted, then get served (miss): %r" % st)
        finally:
            s.close()
        check(srv.alive(), "server alive")
    finally:
        srv.close()
        os.environ.pop("MEMCACHED_SASL_PWDB", None)

    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
