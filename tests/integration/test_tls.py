#!/usr/bin/env python3
# test_tls.py - TLS (-Z and the -o ssl_* options) end to end, with a test
# CA and certificates made here by the openssl CLI: a Python ssl client and
# a scripted `openssl s_client` through TLS; a plain-text client on a TLS
# port, a client that does not trust the server's certificate, and client
# certificates (ssl_verify_mode=2) from the right CA, a rogue CA and none,
# refused cleanly while the server goes on; ssl_min_version; a notls:
# listener beside a TLS one; a forged record in an established session;
# refresh_certs with a new certificate while a
# client stays connected, and a failed refresh that keeps the old one;
# -Y and -Z together; refresh_certs without -Z; the ssl stats and stats
# settings lines. Where the
# installed memcached has TLS, the refresh_certs replies, the plain-client
# refusal and the stats settings lines are compared with memcached -Z. The
# warning for a listener beyond loopback without TLS or auth is checked in
# a network namespace of the test's own.
# Python 3 stdlib and bcserver.py.
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402

check = bcserver.Checks(verbose=True)
# TLS 1.0/1.1 are named on purpose, to see them refused
warnings.simplefilter("ignore", DeprecationWarning)
OPENSSL = os.environ.get("OPENSSL_CLI") or shutil.which("openssl") or ""


def openssl(*args):
    subprocess.run([OPENSSL] + list(args), check=True, capture_output=True, timeout=60)


def make_certs(d):
    """A CA, two server certificates for 127.0.0.1, a client certificate,
    and a rogue CA with a client certificate of its own. EC keys: fast."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]

    def p(name):
        return os.path.join(d, name)

    for ca in ("ca", "rogue"):
        openssl("req", "-x509", *ec, "-keyout", p(ca + ".key"), "-out", p(ca + ".crt"),
                "-subj", "/CN=bitcached test " + ca)
    for name, ca, ext in (("srv1", "ca", "subjectAltName=IP:127.0.0.1"),
                          ("srv2", "ca", "subjectAltName=IP:127.0.0.1"),
                          ("client", "ca", "basicConstraints=CA:FALSE"),
                          ("badclient", "rogue", "basicConstraints=CA:FALSE")):
        openssl("req", "-x509", *ec, "-keyout", p(name + ".key"), "-out", p(name + ".crt"),
                "-subj", "/CN=" + name, "-addext", ext,
                "-CA", p(ca + ".crt"), "-CAkey", p(ca + ".key"))
    # the files the server is pointed at; refresh_certs replaces them
    shutil.copy(p("srv1.crt"), p("live.crt"))
    shutil.copy(p("srv1.key"), p("live.key"))
    for f in os.listdir(d):
        os.chmod(p(f), 0o644)
    return p


def client_ctx(p, cert=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(p("ca.crt"))
    if cert:
        ctx.load_cert_chain(p(cert + ".crt"), p(cert + ".key"))
    if maxv:
        ctx.maximum_version = maxv
    return ctx


def tls_connect(port, ctx, host="127.0.0.1"):
    raw = socket.create_connection((host, port), 5)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except Exception:
        raw.close()
        raise


def call(sock, req, ends=(b"\r\n",)):
    sock.sendall(req)
    data = b""
    sock.settimeout(5)
    while not any(data.endswith(e) for e in ends):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def stats(sock, sub=b""):
    data = call(sock, b"stats" + (b" " + sub if sub else b"") + b"\r\n", (b"END\r\n",))
    out = {}
    for line in data.split(b"\r\n"):
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[0] == b"STAT":
            out[parts[1].decode()] = parts[2].decode()
    return out


def refused(port, ctx):
    """Whether a TLS client is refused: the handshake fails, or (TLS 1.3,
    where the server checks the client's certificate after the client has
    finished) the first request gets no reply."""
    try:
        s = tls_connect(port, ctx)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    try:
        s.sendall(b"version\r\n")
        s.settimeout(5)
        return not s.recv(100).startswith(b"VERSION")
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    finally:
        s.close()


def plain_on_tls(port):
    """A plain-text request on a TLS port: what comes back, and whether the
    server closed the connection."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    try:
        s.sendall(b"get foo\r\n")
        data, closed = bcserver.recv_until(s, (), quiet=1.0)
        return data, closed
    finally:
        s.close()


def req_hdr(op):
    """A binary request header without key, extras or value; opaque 5."""
    return struct.pack(">BBHBBHIIQ", 0x80, op, 0, 0, 0, 0, 0, 5, 0)


def tls_args(p, *extra):
    opts = "ssl_chain_cert=%s,ssl_key=%s" % (p("live.crt"), p("live.key"))
    return ["-Z", "-o", opts + "".join("," + e for e in extra)]


def basic(bc, p):
    srv = bcserver.Server(bc, "bitcached", tls_args(p) + ["-l", "notls:127.0.0.2"])
    try:
        srv.start()
        port = srv.port
        s = tls_connect(port, client_ctx(p))
        try:
            check(s.version() in ("TLSv1.2", "TLSv1.3"), "TLS client connected: %s" % s.version())
            check(call(s, b"set k 0 0 5\r\nhello\r\n") == b"STORED\r\n", "set through TLS")
            big = b"x" * 700000
            r = call(s, b"set big 0 0 %d\r\n%s\r\nget big k\r\n" % (len(big), big), (b"END\r\n",))
            check(r == b"STORED\r\nVALUE big 0 %d\r\n%s\r\nVALUE k 0 5\r\nhello\r\nEND\r\n"
                  % (len(big), big), "700 KB value there and back through TLS")
            base = stats(s)
        finally:
            s.close()

        # Requests in separate TLS records while the replies back up: the
        # server pauses at its output cap with records still inside OpenSSL
        # (no socket event will announce them), and must go on by itself
        # once the client reads.
        s = tls_connect(port, client_ctx(p))
        try:
            val = b"y" * 100000
            check(call(s, b"set big2 0 0 %d\r\n%s\r\n" % (len(val), val)) == b"STORED\r\n",
                  "100 KB value stored")
            for _ in range(60):
                s.sendall(b"get big2\r\n")
            time.sleep(0.5)
            s.settimeout(10)
            data = b""
            want = (b"VALUE big2 0 %d\r\n%s\r\nEND\r\n" % (len(val), val)) * 60
            while len(data) < len(want):
                try:
                    chunk = s.recv(1 << 20)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
            check(data == want, "60 pipelined records over the output cap all answered (%d of %d bytes)"
                  % (len(data), len(want)))
        finally:
            s.close()

        # the binary protocol rides TLS the same way: version and noop
        s = tls_connect(port, client_ctx(p))
        try:
            noop_reply = struct.pack(">BBHBBHIIQ", 0x81, 0x0A, 0, 0, 0, 0, 0, 5, 0)
            r = call(s, req_hdr(0x0B) + req_hdr(0x0A), (noop_reply,))
            check(r[:2] == b"\x81\x0b" and b"1.6.18" in r and r.endswith(noop_reply),
                  "binary version and noop through TLS: %r" % r)
        finally:
            s.close()

        # openssl s_client, scripted
        r = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-CAfile", p("ca.crt"), "-verify_return_error", "-quiet"],
                           input=b"get k\r\nquit\r\n", capture_output=True, timeout=20)
        check(r.stdout == b"VALUE k 0 5\r\nhello\r\nEND\r\n",
              "openssl s_client: %r" % r.stdout[:200])

        # the notls: listener on the same port speaks plain text
        with socket.create_connection(("127.0.0.2", port), 5) as s:
            check(call(s, b"get k\r\n", (b"END\r\n",)) == b"VALUE k 0 5\r\nhello\r\nEND\r\n",
                  "notls:127.0.0.2 serves plain text beside TLS on 127.0.0.1")

        data, closed = plain_on_tls(port)
        check(data == b"" and closed, "plain text on the TLS port: no reply, closed: %r" % data)

        # a client that does not trust the server's certificate
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(p("rogue.crt"))
        try:
            tls_connect(port, ctx).close()
            check(False, "client with another CA refuses the server's certificate")
        except ssl.SSLCertVerificationError:
            check(True, "client with another CA refuses the server's certificate")

        # default minimum TLS 1.2: a TLS 1.1 client gets nowhere
        try:
            ctx = client_ctx(p, maxv=ssl.TLSVersion.TLSv1_1)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            check(refused(port, ctx), "TLS 1.1 client refused")
        except (ValueError, ssl.SSLError) as e:
            print("note: this Python cannot offer TLS 1.1: %s" % e)

        # garbage inside an established session: a protocol error, closed
        s = tls_connect(port, client_ctx(p))
        try:
            check(call(s, b"get k\r\n", (b"END\r\n",)).startswith(b"VALUE k"), "session up")
            os.write(s.fileno(), b"\x17\x03\x03\x00\x20" + b"\xee" * 32)
            s.settimeout(5)
            try:
                closed = s.recv(100) == b""
            except (ssl.SSLError, ConnectionError):
                closed = True
            check(closed, "a forged record closes the session")
        finally:
            s.close()

        s = tls_connect(port, client_ctx(p))
        try:
            st = stats(s)
            check(int(st.get("ssl_proto_errors", 0)) == int(base["ssl_proto_errors"]) + 1,
                  "ssl_proto_errors counted: %s" % st.get("ssl_proto_errors"))
            check(int(st.get("ssl_handshake_errors", -1)) >= int(base["ssl_handshake_errors"]) + 2,
                  "ssl_handshake_errors counted: %s -> %s"
                  % (base.get("ssl_handshake_errors"), st.get("ssl_handshake_errors")))
            check("ssl_proto_errors" in st and "time_since_server_cert_refresh" in st,
                  "ssl stats lines present")
            check("ssl_new_sessions" not in st, "ssl_new_sessions only with ssl_session_cache")
            ss = stats(s, b"settings")
            check(ss.get("ssl_enabled") == "yes" and ss.get("ssl_chain_cert") == p("live.crt")
                  and ss.get("ssl_min_version") == "tlsv1.2" and ss.get("ssl_verify_mode") == "0"
                  and ss.get("ssl_wbuf_size") == "16384",
                  "stats settings ssl lines: %r" % {k: v for k, v in ss.items() if k.startswith("ssl")})
        finally:
            s.close()
        check(srv.alive(), "server alive after the refusals")
    finally:
        srv.close()


def peer_der(port, p):
    s = tls_connect(port, client_ctx(p))
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def der(p, name):
    r = subprocess.run([OPENSSL, "x509", "-in", p(name + ".crt"), "-outform", "DER"],
                       capture_output=True, check=True)
    return r.stdout


def refresh(bc, p):
    srv = bcserver.Server(bc, "bitcached", tls_args(p))
    try:
        srv.start()
        port = srv.port
        check(peer_der(port, p) == der(p, "srv1"), "first certificate served")
        a = tls_connect(port, client_ctx(p))
        try:
            check(call(a, b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n", "client A set")
            shutil.copy(p("srv2.crt"), p("live.crt"))
            shutil.copy(p("srv2.key"), p("live.key"))
            check(call(a, b"refresh_certs\r\n") == b"OK\r\n", "refresh_certs: OK")
            check(call(a, b"get k\r\n", (b"END\r\n",)) == b"VALUE k 0 1\r\nv\r\nEND\r\n",
                  "client A still served after the refresh")
            check(peer_der(port, p) == der(p, "srv2"), "new connections get the new certificate")
            st = stats(a)
            check(int(st.get("time_since_server_cert_refresh", 99)) <= 2,
                  "time_since_server_cert_refresh reset: %s" % st.get("time_since_server_cert_refresh"))
            with open(p("live.crt"), "w") as f:
                f.write("garbage\n")
            r = call(a, b"refresh_certs\r\n")
            check(r.startswith(b"Error loading the certificate chain: " + p("live.crt").encode()
                               + b" : error:") and r.endswith(b"\r\n"),
                  "failed refresh_certs answers memcached's error: %r" % r)
            check(peer_der(port, p) == der(p, "srv2"), "a failed refresh keeps the served certificate")
            check(call(a, b"refresh_certs noreply\r\nget k\r\n", (b"END\r\n",)).startswith(b"Error loading"),
                  "refresh_certs noreply still reports an error, as memcached")
            shutil.copy(p("srv2.crt"), p("live.crt"))
            check(call(a, b"refresh_certs noreply\r\nget k\r\n", (b"END\r\n",))
                  == b"VALUE k 0 1\r\nv\r\nEND\r\n", "refresh_certs noreply: no OK")
        finally:
            a.close()
    finally:
        srv.close()
        shutil.copy(p("srv1.crt"), p("live.crt"))
        shutil.copy(p("srv1.key"), p("live.key"))


def client_certs(bc, p):
    srv = bcserver.Server(bc, "bitcached",
                          tls_args(p, "ssl_verify_mode=2", "ssl_ca_cert=" + p("ca.crt"),
                                   "ssl_session_cache"))
    try:
        srv.start()
        port = srv.port
        check(refused(port, client_ctx(p)), "verify_mode 2: client without a certificate refused")
        check(refused(port, client_ctx(p, "badclient")),
              "verify_mode 2: certificate from a rogue CA refused")
        s = tls_connect(port, client_ctx(p, "client"))
        try:
            check(call(s, b"version\r\n").startswith(b"VERSION "),
                  "verify_mode 2: certificate from the CA accepted")
            st = stats(s)
            check(int(st.get("ssl_handshake_errors", 0)) >= 2, "refusals counted as handshake errors")
            check(int(st.get("ssl_new_sessions", 0)) >= 1, "ssl_new_sessions with ssl_session_cache")
        finally:
            s.close()
    finally:
        srv.close()
    srv = bcserver.Server(bc, "bitcached", tls_args(p, "ssl_min_version=3"))
    try:
        srv.start()
        check(refused(srv.port, client_ctx(p, maxv=ssl.TLSVersion.TLSv1_2)),
              "ssl_min_version=3: a TLS 1.2 client refused")
        s = tls_connect(srv.port, client_ctx(p))
        try:
            check(s.version() == "TLSv1.3", "ssl_min_version=3: TLS 1.3 served")
        finally:
            s.close()
    finally:
        srv.close()


def auth_and_tls(bc, p):
    users = p("users")
    with open(users, "w") as f:
        f.write("alice:secret\n")
    srv = bcserver.Server(bc, "bitcached", tls_args(p) + ["-Y", users])
    try:
        srv.start()
        s = tls_connect(srv.port, client_ctx(p))
        try:
            check(call(s, b"get k\r\n") == b"CLIENT_ERROR unauthenticated\r\n",
                  "-Y -Z: refused before auth")
            check(call(s, b"set a 0 0 12\r\nalice wrongg\r\n")
                  == b"CLIENT_ERROR authentication failure\r\n", "-Y -Z: wrong password refused")
            check(call(s, b"set a 0 0 12\r\nalice secret\r\n") == b"STORED\r\n",
                  "-Y -Z: right password accepted")
            check(call(s, b"get k\r\n") == b"END\r\n", "-Y -Z: served after auth")
        finally:
            s.close()
    finally:
        srv.close()


def no_tls(bc):
    """refresh_certs on a server without -Z: memcached's line, noreply or
    not; a longer word is not the command."""
    srv = bcserver.Server(bc, "bitcached", [])
    try:
        srv.start()
        with srv.connect() as s:
            s.sendall(b"refresh_certs\r\nrefresh_certs noreply\r\nrefresh_certsx\r\nversion\r\n")
            s.settimeout(5)
            r = b""
            while not (b"VERSION" in r and r.endswith(b"\r\n")):
                chunk = s.recv(1000)
                if not chunk:
                    break
                r += chunk
            check(r.startswith(b"Error TLS not enabled\r\nError TLS not enabled\r\nERROR\r\nVERSION "),
                  "refresh_certs without -Z as memcached: %r" % r)
    finally:
        srv.close()


def startup(bc, p):
    tmp = bcserver.mkdtemp("bc-tls.")
    for args, what, code in ((["-Z"], "-Z without a certificate", 64),
                             (["-Z", "-o", "ssl_chain_cert=" + p("nonexistent")],
                              "-Z with a missing file", 64),
                             (["-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s" % (p("srv1.crt"), p("srv2.key"))],
                              "-Z with a key that does not match", 64),
                             # memcached's messages and code (checked against
                             # memcached 1.6.18)
                             (["-o", "ssl_verify_mode=7"],
                              "Invalid ssl_verify_mode. Use help to see valid options.", 1),
                             (["-o", "ssl_min_version=x"],
                              "could not parse argument to ssl_min_version", 1),
                             (["-o", "ssl_wbuf_size=x"], "could not parse argument to ssl_wbuf_size", 1),
                             (["-o", "ssl_chain_cert"], "Missing ssl_chain_cert argument", 1)):
        r = subprocess.run([bc, "--data-dir=" + tmp + "/d", "-l", "127.0.0.1",
                            "-p", str(bcserver.free_port())] + args,
                           capture_output=True, timeout=20)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == code and (code != 1 or what + "\n" in err),
              "%s refused at start-up: %d %s" % (what, r.returncode, err.strip()[:150]))
    shutil.rmtree(tmp, ignore_errors=True)


def start_log(argv, timeout=20):
    """Start argv, read its log until it is ready, stop it: the log."""
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
    lines = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline().decode(errors="replace")
            if not line:
                break
            lines.append(line)
            if " ready" in line:
                break
    finally:
        proc.terminate()
        proc.wait(10)
    return "".join(lines)


def exposure_warning(bc, p):
    """The warning for a listener beyond loopback without TLS or auth. The
    wildcard address is bound inside a network namespace of our own, where
    the only interface is lo, so nothing outside this host is reachable."""
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        print("note: cannot make a network namespace; exposure warning not checked")
        return
    tmp = bcserver.mkdtemp("bc-tls.")
    users = p("users")
    with open(users, "w") as f:
        f.write("alice:secret\n")
    warn = "without TLS or authentication"
    try:
        for extra, want in (([], True), (tls_args(p), False), (["-Y", users], False)):
            argv = ["unshare", "-n", bc, "--data-dir=" + tmp + "/d", "-v", "-l", "0.0.0.0",
                    "-p", "11211"] + extra
            log = start_log(argv)
            check(" ready" in log and (warn in log) == want,
                  "0.0.0.0 %s: warning %s" % (" ".join(extra) or "plain",
                                              "logged" if want else "not logged"))
        log = start_log([bc, "--data-dir=" + tmp + "/d", "-v", "-l", "127.0.0.1",
                         "-p", str(bcserver.free_port())])
        check(" ready" in log and warn not in log, "127.0.0.1 plain: no warning")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(bc, mc, p):
    got = {}
    for binary, kind in ((mc, "memcached"), (bc, "bitcached")):
        extra = ["-U", "0"] if kind == "memcached" else []
        srv = bcserver.Server(binary, kind, tls_args(p) + extra)
        try:
            srv.start()
            res = [plain_on_tls(srv.port)]
            s = tls_connect(srv.port, client_ctx(p))
            try:
                res.append(call(s, b"refresh_certs\r\n"))
                with open(p("live.crt"), "w") as f:
                    f.write("garbage\n")
                res.append(call(s, b"refresh_certs\r\n"))
                shutil.copy(p("srv1.crt"), p("live.crt"))
                res.append({k: v for k, v in stats(s, b"settings").items() if k.startswith("ssl_")})
                res.append(sorted(k for k in stats(s) if k.startswith("ssl_")
                                  or k == "time_since_server_cert_refresh"))
            finally:
                s.close()
            got[kind] = res
        finally:
            srv.close()
            shutil.copy(p("srv1.crt"), p("live.crt"))
    m, b = got["memcached"], got["bitcached"]
    check(m[0] == b[0], "plain client on a TLS port like memcached: %r / %r" % (m[0], b[0]))
    check(m[1] == b[1], "refresh_certs like memcached: %r / %r" % (m[1], b[1]))
    check(m[2] == b[2], "failed refresh_certs like memcached: %r / %r" % (m[2], b[2]))
    check(m[3] == b[3], "stats settings ssl lines like memcached: %r / %r" % (m[3], b[3]))
    check(set(m[4]) <= set(b[4]), "memcached's ssl stats all present: %r / %r" % (m[4], b[4]))


def main():
    bc = bcserver.binary()
    mc = os.environ.get("MEMCACHED", "")
    if not OPENSSL:
        bcserver.skip("no openssl command to make the test certificates")
    d = bcserver.mkdtemp("bc-tls.")
    os.chmod(d, 0o755)
    try:
        p = make_certs(d)
        basic(bc, p)
        refresh(bc, p)
        client_certs(bc, p)
        auth_and_tls(bc, p)
        startup(bc, p)
        no_tls(bc)
        exposure_warning(bc, p)
        mc_tls = bcserver.executable(mc) and b"enable-ssl" in subprocess.run(
            [mc, "-h"], capture_output=True).stdout
        if mc_tls:
            compare(bc, mc, p)
        else:
            print("note: no memcached with TLS; comparison not run")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
