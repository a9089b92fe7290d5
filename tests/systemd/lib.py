# lib.py - helpers shared by the Python tests in tests/systemd/: locating the
# built server, free ports, starting and stopping a server by PID, waiting for
# a TCP port, and reading `stats settings`. Standard library only.

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77


def server_binary():
    """Path of the built server, or exit 77 (skip) if it is not built."""
    path = os.environ.get("BITCACHED", "")
    if not path or not os.access(path, os.X_OK):
        print("SKIP: server binary not built (BITCACHED=%r)" % path)
        sys.exit(SKIP)
    return path


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tempdir():
    return tempfile.TemporaryDirectory(prefix="bitcached-test-")


class Server:
    """One server process, its output in a file, stopped by its PID."""

    def __init__(self, args, workdir, env=None, name="server"):
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        if env:
            full_env.update(env)
        self.args = args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=full_env, cwd=workdir)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM by PID, wait; returns the exit status (None if it had to
        be killed)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self.log.close()
                return None
        self.log.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def wait_port(server, port, timeout=20.0):
    """Wait until 127.0.0.1:port accepts, or the server exits. True if it
    accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class CommandError(OSError):
    """The server answered ERROR (unknown command)."""


def request(sock, line, end=b"END\r\n", timeout=5.0):
    """Send one command line, read until the reply ends with end."""
    sock.settimeout(timeout)
    sock.sendall(line)
    buf = b""
    while not buf.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("connection closed after %r" % buf[-200:])
        buf += chunk
        if buf.startswith(b"ERROR") and buf.endswith(b"\r\n"):
            raise CommandError(buf)
    return buf


def speaks_protocol(port):
    """False if the server answers ERROR even to `version` (a build whose
    protocol parser is still a stub)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            return request(s, b"version\r\n", end=b"\r\n").startswith(
                b"VERSION ")
        except CommandError:
            return False


def stats_settings(port):
    """`stats settings` as a dict of str -> str."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        reply = request(s, b"stats settings\r\n")
    out = {}
    for line in reply.decode("utf-8", "replace").split("\r\n"):
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            out[parts[1]] = parts[2]
    return out


class Failures:
    """Collects failed checks; exit(1) at the end if any."""

    def __init__(self):
        self.n = 0

    def check(self, cond, what):
        if cond:
            print("ok: " + what)
        else:
            print("FAIL: " + what)
            self.n += 1
        return cond

    def finish(self):
        if self.n:
            print("%d check(s) failed" % self.n)
            sys.exit(1)
        print("PASS")
        sys.exit(0)
