# bcserver.py - start and stop a memcached-compatible server for the Python
# tests: free port on 127.0.0.1, temp data dir, stop by PID; temp dirs and
# servers a test leaves behind (an exception, a SIGTERM from the harness)
# are removed and killed at exit; a server under the crash shim; and what
# the tests share around them: the check/finish scaffold, exact reads,
# `stats` parsed, segments dropped from the page cache. Owns the child
# processes and their temp dirs. Python 3 standard library only.
import atexit
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


# Temp dirs to remove and servers to kill when the test exits, however it
# exits (SIGTERM included, see below).
_dirs = []
_servers = []


def _cleanup():
    for srv in list(_servers):
        srv.kill()
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)
if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    # the harness's timeout: exit through atexit, not around it
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))


def mkdtemp(prefix):
    """A temp dir removed when the test exits (or earlier by the caller)."""
    d = tempfile.mkdtemp(prefix=prefix)
    _dirs.append(d)
    return d


class Checks:
    """check(cond, what) records one expectation and prints FAIL lines (and
    ok lines with verbose); that(what, ok, detail) is the same with a
    detail for the FAIL line; finish() prints the count and returns the
    exit status."""

    def __init__(self, verbose=True):
        self.verbose = verbose
        self.failures = []

    def __call__(self, cond, what):
        if self.verbose or not cond:
            print(("ok: " if cond else "FAIL: ") + what)
        if not cond:
            self.failures.append(what)
        return cond

    def that(self, what, ok, detail=""):
        return self(ok, what if ok else "%s (%s)" % (what, detail))

    def finish(self):
        print("%d failed" % len(self.failures))
        return 1 if self.failures else 0


# The checks of a test run, for tests that keep one list per process (a
# test that reuses another test's parts then counts into the same one):
# check(what, ok, detail), failures, finish().
_run = Checks()
check = _run.that
failures = _run.failures
finish = _run.finish


def rss_anon_kib(pid):
    """The process's own memory (RssAnon in /proc/PID/status), KiB; -1 when
    the line is missing."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return -1


def sanitized(pid):
    """AddressSanitizer's shadow memory and quarantine inflate RssAnon."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listens_on(pid, port):
    """Whether process pid holds the socket listening on TCP port of this
    host (its socket inodes against the LISTEN rows of /proc/net/tcp and
    tcp6), as opposed to another process that took the port."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if len(f) > 9 and f[3] == "0A" and f[9] in inodes and \
                    int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def uring_available():
    """Whether the server reads through io_uring: built with liburing
    (make check says so in BITCACHED_LIBURING) and a kernel that lets this
    process set up a ring. Without, it falls back to its I/O threads."""
    import ctypes
    if os.environ.get("BITCACHED_LIBURING") == "no":
        return False
    nr = {"x86_64": 425, "aarch64": 425}.get(os.uname().machine)
    if nr is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(nr, 4, params)
    if fd < 0:
        return False
    os.close(fd)
    return True


def executable(path):
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def binary():
    """The server under test: $BITCACHED, else bitcached at the top of the
    build tree ($top_builddir, which make check sets, or this source tree);
    the test skips when there is none."""
    b = os.environ.get("BITCACHED", "")
    if not executable(b):
        top = os.environ.get("top_builddir", os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", ".."))
        b = os.path.join(top, "bitcached")
    if not executable(b):
        skip("no bitcached binary (set BITCACHED)")
    return os.path.abspath(b)


def memcached_binary():
    """The reference memcached, $MEMCACHED; the test skips when it is not
    an executable."""
    mc = os.environ.get("MEMCACHED", "")
    if not executable(mc):
        skip("MEMCACHED (%s) is not an executable" % mc)
    return mc


class Server:
    """One server process. kind is "bitcached" (gets --data-dir) or
    "memcached" (gets -u when run as root, which memcached demands)."""

    def __init__(self, binary, kind="bitcached", args=()):
        self.binary = binary
        self.kind = kind
        self.args = list(args)
        self.tmp = mkdtemp("bc-pytest.")
        self.env = None  # the child's environment: None, as ours
        _servers.append(self)
        self.proc = None
        self.port = 0

    @property
    def data(self):
        """The data directory (bitcached), in tmp."""
        return os.path.join(self.tmp, "data")

    def argv(self):
        argv = [self.binary, "-l", "127.0.0.1", "-p", str(self.port)]
        if self.kind == "bitcached":
            argv.insert(1, "--data-dir=" + self.data)
        elif os.geteuid() == 0:
            argv += ["-u", pwd.getpwuid(0).pw_name]
        return argv + self.args

    def start(self, timeout=10.0):
        # The port may be taken between picking and binding: then this
        # server exits, and another process answers on the port meanwhile
        # (another test's server: make check runs several at once), so a
        # connect alone does not say this one is up. Retry on another port.
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(self.argv(), env=self.env)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.port), 1).close()
                    if listens_on(self.proc.pid, self.port):
                        return
                except OSError:
                    pass
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.kill()
                raise RuntimeError("server did not start in time")
        raise RuntimeError("server exited at start-up: %s" % self.proc.returncode)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        """SIGTERM, wait up to 10 s, SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def close(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def connect(self, timeout=5.0):
        s = socket.create_connection(("127.0.0.1", self.port), timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stats(self, group=b""):
        """`stats GROUP` on a connection of its own (stats_on)."""
        s = self.connect()
        try:
            return stats_on(s, group)
        finally:
            s.close()


class ShimServer(Server):
    """A bitcached under the crash shim (tests/crash/crashshim.c) when shim
    is a path, its calls counted, failed or slowed as shim_env
    (CRASHSHIM_* variables) says, on files under its data directory;
    without a shim, a plain server. Restartable on the same directory."""

    def __init__(self, binary, shim, args, shim_env):
        super().__init__(binary, "bitcached", args)
        self.shim = shim
        self.shim_env = shim_env

    def start(self, timeout=20.0):
        os.makedirs(self.data, exist_ok=True)
        self.env = None
        if self.shim:
            self.env = dict(os.environ, LD_PRELOAD=self.shim,
                            CRASHSHIM_DIR=self.data, **self.shim_env)
        super().start(timeout)


def stats_at(port, group=b"", timeout=5.0):
    """`stats GROUP` on a new connection to port (stats_on)."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        return stats_on(s, group)


def stats_on(sock, group=b""):
    """`stats GROUP` on an open connection: {name: value}, as str."""
    sock.sendall(b"stats " + group + b"\r\n" if group else b"stats\r\n")
    data, _ = recv_until(sock, [b"END\r\n"])
    out = {}
    for line in data.decode().split("\r\n"):
        p = line.split(" ")
        if len(p) == 3 and p[0] == "STAT":
            out[p[1]] = p[2]
    return out


def recv_n(sock, n):
    """Exactly n bytes; RuntimeError when the peer closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(min(n - len(data), 1 << 20))
        if not chunk:
            raise RuntimeError("closed after %d bytes: %r" % (len(data),
                                                             data[-200:]))
        data += chunk
    return data


def dir_snapshot(d):
    """{relative path: (kind, size, mtime_ns, sha256)} of d and below: two
    snapshots compare equal when nothing under d was written."""
    snap = {}
    for root, dirs, files in os.walk(d):
        for name in dirs:
            p = os.path.join(root, name)
            snap[os.path.relpath(p, d)] = ("dir",)
        for name in files:
            p = os.path.join(root, name)
            st = os.stat(p)
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()
            snap[os.path.relpath(p, d)] = ("file", st.st_size, st.st_mtime_ns, h)
    return snap


def drop_cache(datadir):
    """Write the segments under datadir out and drop their pages from the
    page cache, so that the reads that follow go to the disk. A segment
    compacted away meanwhile is passed over."""
    for root, _, files in os.walk(datadir):
        for name in files:
            if not name.endswith(".seg"):
                continue
            try:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def recv_lines(sock, n, timeout=15.0):
    """Read until n CRLF-terminated lines arrived, the peer closes or the
    socket times out (after timeout seconds; None keeps the socket's own);
    returns the first n lines (fewer if it stopped)."""
    if timeout is not None:
        sock.settimeout(timeout)
    data = b""
    while data.count(b"\r\n") < n:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[:n]


def get_text(sock, key):
    """A text-protocol get of key: the reply, through its END line."""
    sock.sendall(b"get %s\r\n" % key)
    data, _ = recv_until(sock, [b"END\r\n"])
    return data


def recv_until(sock, ends, quiet=0.0):
    """Read until the data ends with one of ends (bytes), the peer closes, or
    the socket times out. With quiet > 0, instead read until nothing arrives
    for that many seconds. Returns (data, closed)."""
    data = b""
    if quiet > 0:
        sock.settimeout(quiet)
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
        if quiet <= 0 and any(data.endswith(e) for e in ends):
            return data, False
