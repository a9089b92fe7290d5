# crashmodel.py - the model, workload and judge shared by the crash and fault
# tests (test_crash_model.py, test_fault_model.py). Black-box: it drives the
# real server binary over the text protocol, on 127.0.0.1 with a temp data
# dir, and starts it with the LD_PRELOAD shim (crashshim.so) when a scenario
# kills or fails its file syscalls. Owns its server processes (stopped by
# PID), its temp dirs and the per-key model. Python 3 standard library only.
#
# The model: several client threads send set / delete / touch / gat / get and
# rarely flush_all on a small key space. A key is used by one client at a
# time (a per-key lock) and flush_all excludes every other operation (a
# readers-writer lock), so each key has one sequential history. Each key
# keeps the set of states it may be in (value or absent, and a window of
# wall-clock time in which a TTL may make it expire): an acknowledged
# operation collapses it to the state after that operation; an operation
# without a reply (server killed) or with SERVER_ERROR adds the state after
# it as a second possibility. After a restart every key is read and judged:
#   LOST         an acknowledged value is missing, or an older value of the
#                key is served in its place
#   RESURRECTED  a value this key once held, but that a later acknowledged
#                set, delete, flush or an expiry replaced, is served
#   FOREIGN      a value never written for this key, or corrupt bytes
# The same judge runs on the replies seen while the workload runs ("live").
# Values carry their key and operation id, and the flags a checksum of the
# id, so every byte served can be checked. A seed drives every random choice
# (operations, keys, sizes, kill points), so CRASH_SEED replays a run as
# closely as thread timing allows.
import collections
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import bcserver  # noqa: E402

INF = float("inf")
# Seconds of slack on each side of a TTL boundary: the server's clock has a
# one-second granularity, so a key read within this of its expiry may be
# either present or gone.
SLACK = 2.0

GROUPS = {
    "write": ["write", "pwrite", "pwrite64", "writev", "pwritev",
              "pwritev64", "pwritev2"],
    "sync": ["fsync", "fdatasync", "sync_file_range", "msync"],
    "rename": ["rename", "renameat", "renameat2"],
    "unlink": ["unlink", "unlinkat", "remove"],
    "truncate": ["ftruncate", "ftruncate64", "truncate"],
    "alloc": ["fallocate", "fallocate64", "posix_fallocate",
              "posix_fallocate64"],
    "open": ["open", "open64", "openat", "openat64", "creat"],
    "read": ["read", "pread", "pread64", "preadv", "preadv64", "preadv2"],
}

CATEGORIES = ("LOST", "RESURRECTED", "FOREIGN")

# Operations kept per key for the report of a violation.
HIST = max(6, int(os.environ.get("CRASH_HIST", "6") or 6))


def say(msg):
    print(msg, flush=True)


def run_main(main):
    """Exit status of main(); a bug of the test itself (an exception) is 99,
    automake's hard ERROR, so that it is never taken for the expected
    failure of a server that breaks its promises."""
    try:
        return main()
    except Exception:
        traceback.print_exc()
        say("ERROR: the test itself failed")
        return 99


# ---- environment ---------------------------------------------------------

binary = bcserver.binary


def is_sanitized(path):
    """True for an ASan build: the shim cannot be preloaded into it."""
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


def usable_shim(binary):
    """The shim's path for binary, or None where there is no shim or
    binary is a sanitizer build (the shim cannot be preloaded into it)."""
    shim = shim_path()
    return shim if shim and not is_sanitized(binary) else None


def shim_path():
    s = os.environ.get("CRASHSHIM", "")
    if s:
        return os.path.abspath(s)
    top = os.environ.get("top_builddir", os.path.join(HERE, "..", ".."))
    s = os.path.join(top, "tests", "crash", "crashshim.so")
    return os.path.abspath(s) if os.path.isfile(s) else ""


def iterations():
    try:
        return max(1, int(os.environ.get("CRASH_ITER", "1")))
    except ValueError:
        return 1


def seed():
    s = os.environ.get("CRASH_SEED", "")
    return int(s) if s else random.SystemRandom().randrange(1 << 32)


def read_stats(path):
    """The shim's counters: {name: count}; "#fired" is 1 once it killed."""
    out = {}
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return out
    for i in range(0, len(data) - 31, 32):
        name = data[i:i + 24].split(b"\0", 1)[0].decode()
        (n,) = struct.unpack_from("<Q", data, i + 24)
        if name:
            out[name] = n
    return out


def group_count(stats, group):
    return sum(stats.get(n, 0) for n in GROUPS[group])


# ---- the server ----------------------------------------------------------

class Server:
    """One bitcached on a fixed data dir, restarted as often as asked."""

    def __init__(self, binary_path, datadir, args, log):
        self.binary = binary_path
        self.datadir = datadir
        self.args = list(args)
        self.log = log
        self.proc = None
        self.port = 0

    def start(self, env=None, timeout=20.0):
        """Start; True once it accepts, False if it exited first (its exit
        status is then in self.proc.returncode)."""
        e = dict(os.environ)
        e.update(env or {})
        for _ in range(5):
            self.port = bcserver.free_port()
            argv = [self.binary, "--data-dir=" + self.datadir, "-l",
                    "127.0.0.1", "-p", str(self.port)] + self.args
            with open(self.log, "ab") as lf:
                lf.write(("--- start %s %s\n" % (
                    " ".join(argv),
                    " ".join("%s=%s" % kv for kv in sorted((env or {}).items()))
                )).encode())
                self.proc = subprocess.Popen(argv, env=e, stdout=lf,
                                             stderr=lf)
            deadline = time.monotonic() + timeout
            foreign = False
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.port),
                                             1).close()
                except OSError:
                    time.sleep(0.01)
                    continue
                if self.answers_as_ours():
                    return True
                # Another test's server took the port between free_port()
                # and our bind: ours exits (port in use); try another.
                foreign = True
                self.reap(timeout)
                break
            if foreign:
                continue
            if self.proc.poll() is None:
                self.kill()
                raise RuntimeError("server did not start in %.0f s" % timeout)
            if self.proc.returncode == 73 and self.port_taken():
                continue
            return False
        return False

    def answers_as_ours(self):
        """Whether the server on self.port is this one (its stats pid);
        False when another process answers there, or nothing does."""
        try:
            conn = Conn(self.port, 10.0)
        except Dead:
            return False
        try:
            conn.send(b"stats\r\n")
            while True:
                parts = conn.line().split()
                if parts == [b"END"]:
                    return False
                if len(parts) == 3 and parts[1] == b"pid":
                    return int(parts[2]) == self.proc.pid
        except (Dead, ValueError):
            return False
        finally:
            conn.close()

    def port_taken(self):
        try:
            with open(self.log, "rb") as f:
                tail = f.read()[-400:]
        except OSError:
            return False
        return b"in use" in tail

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout=30.0):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def reap(self, timeout=5.0):
        """After a dropped connection: give the server time to exit by
        itself, then SIGKILL it. Returns its status as text."""
        try:
            self.proc.wait(timeout)
            return "exit status %s" % self.proc.returncode
        except subprocess.TimeoutExpired:
            self.kill()
            return "still running, killed"

    def log_tail(self, n=15):
        try:
            with open(self.log, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + ln for ln in lines[-n:])


class Dead(Exception):
    """The connection is gone (server killed) or timed out."""


class Conn:
    def __init__(self, port, timeout=15.0):
        try:
            self.s = socket.create_connection(("127.0.0.1", port), timeout)
        except OSError as e:
            raise Dead(str(e))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def send(self, data):
        try:
            self.s.sendall(data)
        except OSError as e:
            raise Dead(str(e))

    def fill(self):
        try:
            chunk = self.s.recv(262144)
        except socket.timeout:
            raise Dead("timeout")
        except OSError as e:
            raise Dead(str(e))
        if not chunk:
            raise Dead("eof")
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = self.buf[:i]
                self.buf = self.buf[i + 2:]
                return ln
            self.fill()

    def exact(self, n):
        while len(self.buf) < n + 2:
            self.fill()
        data = self.buf[:n]
        self.buf = self.buf[n + 2:]
        return data

    def retrieve(self, cmd):
        """get/gat: returns (value, flags), None for a miss, or the error
        line as str."""
        self.send(cmd)
        got = None
        while True:
            ln = self.line()
            if ln == b"END":
                return got
            if ln.startswith(b"VALUE "):
                parts = ln.split()
                flags, n = int(parts[2]), int(parts[3])
                got = (self.exact(n), flags)
                continue
            return ln.decode(errors="replace")


# ---- values --------------------------------------------------------------

def make_value(key, opid, size):
    head = b"%s:%d:" % (key.encode(), opid)
    fill = b"%x." % (opid * 2654435761 & 0xFFFFFFFF)
    body = (fill * (size // len(fill) + 1))[:max(0, size - len(head))]
    return head + body


def flags_of(opid):
    return (opid * 40503) & 0xFFFF


def parse_value(key, val, flags):
    """The op id a served value claims, or None if it is corrupt or not
    this key's."""
    parts = val.split(b":", 2)
    if len(parts) != 3 or parts[0] != key.encode():
        return None
    try:
        opid = int(parts[1])
    except ValueError:
        return None
    size = len(val)
    if make_value(key, opid, size) != val or flags != flags_of(opid):
        return None
    return opid


def describe(key, got):
    """A read's result as text: miss, op N, or what was wrong."""
    if isinstance(got, str):
        return got
    if got is None:
        return "miss"
    opid = parse_value(key.name, got[0], got[1])
    return "op %d" % opid if opid is not None else "corrupt"


# ---- the model -----------------------------------------------------------

def window(ttl, ts, ta):
    """(lo, hi): the item may expire from lo and is gone by hi."""
    if ttl == 0:
        return (INF, INF)
    return (ts + ttl - SLACK, ta + ttl + SLACK)


class Key:
    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        # states: {opid or None: (lo, hi)}; None = absent (window unused)
        self.states = {None: (0.0, 0.0)}
        self.written = set()
        # the last operations (CRASH_HIST of them, to debug a failure)
        self.hist = collections.deque(maxlen=HIST)
        # Under eviction a key may be gone at any moment (a miss is always
        # right), but never replaced by an older value.
        self.evictable = False

    def note(self, text):
        self.hist.append("%s %s" % (time.strftime("%H:%M:%S"), text))

    def add(self, states, opid, win):
        if opid in states:
            lo, hi = states[opid]
            states[opid] = (min(lo, win[0]), max(hi, win[1]))
        else:
            states[opid] = win

    # states is None after a violation seen live: the key's state is then
    # unknown until the next acknowledged set, delete or flush.

    def may_be_present(self, tq):
        if self.states is None:
            return sorted(self.written)
        return [o for o, (lo, hi) in self.states.items()
                if o is not None and tq < hi]

    def may_be_absent(self, tr):
        if self.states is None or self.evictable:
            return True
        return any(o is None or tr >= lo
                   for o, (lo, hi) in self.states.items())

    def expected(self):
        if self.states is None:
            return "unknown"
        parts = []
        for o, (lo, hi) in sorted(self.states.items(),
                                  key=lambda kv: -1 if kv[0] is None
                                  else kv[0]):
            if o is None:
                parts.append("absent")
            elif hi == INF:
                parts.append("op %d" % o)
            else:
                parts.append("op %d (expiring %.1f..%.1f s from now)" % (
                    o, lo - time.time(), hi - time.time()))
        return " or ".join(parts)


class RWLock:
    """Readers-writer lock that lets a waiting writer in first (flush_all
    would otherwise starve behind a steady stream of operations)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.readers = 0
        self.writer = False
        self.waiting = 0

    def rlock(self):
        with self.cv:
            while self.writer or self.waiting:
                self.cv.wait()
            self.readers += 1

    def runlock(self):
        with self.cv:
            self.readers -= 1
            if self.readers == 0:
                self.cv.notify_all()

    def wlock(self):
        with self.cv:
            self.waiting += 1
            while self.writer or self.readers:
                self.cv.wait()
            self.waiting -= 1
            self.writer = True

    def wunlock(self):
        with self.cv:
            self.writer = False
            self.cv.notify_all()


class Model:
    def __init__(self, nkeys, sizes, rnd, strict_flush=False,
                 evicting=False):
        self.keys = [Key("k%03d" % i) for i in range(nkeys)]
        for k in self.keys:
            k.evictable = evicting
        self.sizes = sizes  # list of (weight, lo, hi)
        self.rw = RWLock()
        self.opid = 0
        self.opid_lock = threading.Lock()
        self.errors = []  # (category, where, key, expected, got)
        self.err_lock = threading.Lock()
        self.stats = collections.Counter()
        self.stat_lock = threading.Lock()
        self.rnd = rnd
        self.strict_flush = strict_flush
        self.other = []  # protocol surprises, as strings

    def next_opid(self):
        with self.opid_lock:
            self.opid += 1
            return self.opid

    def bump(self, what):
        with self.stat_lock:
            self.stats[what] += 1

    def error(self, cat, where, key, expected, got):
        with self.err_lock:
            self.errors.append((cat, where, key.name, expected, got,
                                list(key.hist)))

    def value_size(self, rnd):
        r = rnd.random() * sum(w for w, _, _ in self.sizes)
        for w, lo, hi in self.sizes:
            r -= w
            if r <= 0:
                return rnd.randint(lo, hi)
        return self.sizes[-1][1]

    # -- judging a read ---------------------------------------------------

    def judge(self, key, got, tq, tr, where):
        """Judge a read of key made in [tq, tr] that returned got
        ((value, flags) or None); narrow the key's states to what the read
        showed. Returns the category of a violation or None."""
        if got is None:
            if key.may_be_absent(tr):
                key.states = {None: (0.0, 0.0)}
                return None
            self.error("LOST", where, key, key.expected(), "miss")
            key.states = {None: (0.0, 0.0)}
            return "LOST"
        val, flags = got
        opid = parse_value(key.name, val, flags)
        if opid is None or opid not in key.written:
            what = ("%d bytes %r... flags %d" % (len(val), val[:40], flags))
            self.error("FOREIGN", where, key, key.expected(), what)
            key.states = None
            return "FOREIGN"
        if opid in key.may_be_present(tq):
            win = key.states[opid] if key.states is not None else (0.0, INF)
            key.states = {opid: win}
            return None
        # An older value instead of a newer acknowledged one is a lost
        # write; where a delete, flush or expiry should hide it, a
        # resurrection.
        cat = "RESURRECTED" if key.may_be_absent(tr) else "LOST"
        self.error(cat, where, key, key.expected(), "op %d" % opid)
        key.states = {opid: (0.0, INF)}
        return cat

    # -- one operation on one key ---------------------------------------

    def op(self, conn, rnd, key, kind):
        """Run one operation; raises Dead when the server is gone (the
        operation is then recorded as possibly applied)."""
        info = {"what": kind, "reply": "?"}
        try:
            self.op1(conn, rnd, key, kind, info)
        except Dead as e:
            if str(e) == "timeout":
                # A live server that stops answering is a failure of its
                # own, not a crash: the tests report it.
                self.bump("timeout")
            key.note("%s -> no reply (%s)" % (info["what"], e))
            raise
        key.note("%s -> %s" % (info["what"], info["reply"]))

    def op1(self, conn, rnd, key, kind, info):
        post = {}
        ts = time.time()
        try:
            if kind == "set":
                opid = self.next_opid()
                r = rnd.random()
                ttl = 0 if r < 0.7 else (-1 if r < 0.73 else rnd.randint(1, 4))
                val = make_value(key.name, opid, self.value_size(rnd))
                key.written.add(opid)
                info["what"] = "set op %d ttl %d" % (opid, ttl)
                if ttl < 0:
                    post = {None: (0.0, 0.0)}
                else:
                    post = {opid: window(ttl, ts, ts + 3600)}
                conn.send(b"set %s %d %d %d\r\n%s\r\n" % (
                    key.name.encode(), flags_of(opid), ttl, len(val), val))
                reply = conn.line()
                info["reply"] = reply.decode(errors="replace")
                ta = time.time()
                if reply == b"STORED":
                    if ttl >= 0:
                        post = {opid: window(ttl, ts, ta)}
                    key.states = post
                    self.bump("acked")
                    return
            elif kind == "delete":
                post = {None: (0.0, 0.0)}
                conn.send(b"delete %s\r\n" % key.name.encode())
                reply = conn.line()
                info["reply"] = reply.decode(errors="replace")
                ta = time.time()
                if reply in (b"DELETED", b"NOT_FOUND"):
                    if reply == b"DELETED" and not key.may_be_present(ts):
                        self.error("RESURRECTED", "live delete", key,
                                   key.expected(), "DELETED")
                    if reply == b"NOT_FOUND" and not key.may_be_absent(ta):
                        self.error("LOST", "live delete", key,
                                   key.expected(), "NOT_FOUND")
                    key.states = post
                    self.bump("acked")
                    return
            elif kind in ("touch", "gat"):
                ttl = 0 if rnd.random() < 0.3 else rnd.randint(1, 4)
                info["what"] = "%s ttl %d" % (kind, ttl)
                for o in key.may_be_present(ts):
                    key.add(post, o, window(ttl, ts, ts + 3600))
                if kind == "touch":
                    conn.send(b"touch %s %d\r\n" % (key.name.encode(), ttl))
                    reply = conn.line()
                    info["reply"] = reply.decode(errors="replace")
                    ta = time.time()
                    if reply == b"TOUCHED":
                        live = key.may_be_present(ts)
                        if not live:
                            self.error("RESURRECTED", "live touch", key,
                                       key.expected(), "TOUCHED")
                            key.states = None
                        else:
                            key.states = {o: window(ttl, ts, ta)
                                          for o in live}
                        self.bump("acked")
                        return
                    if reply == b"NOT_FOUND":
                        self.judge(key, None, ts, ta, "live touch")
                        self.bump("acked")
                        return
                else:
                    got = conn.retrieve(b"gat %d %s\r\n" % (
                        ttl, key.name.encode()))
                    ta = time.time()
                    info["reply"] = describe(key, got)
                    reply = got.encode() if isinstance(got, str) else b""
                    if not isinstance(got, str):
                        bad = self.judge(key, got, ts, ta, "live gat")
                        if got is not None and bad is None:
                            (o,) = key.states
                            key.states = {o: window(ttl, ts, ta)}
                        self.bump("acked")
                        return
            elif kind == "get":
                got = conn.retrieve(b"get %s\r\n" % key.name.encode())
                ta = time.time()
                info["reply"] = describe(key, got)
                if not isinstance(got, str):
                    self.judge(key, got, ts, ta, "live get")
                    self.bump("acked")
                    return
                reply = got.encode()
                post = dict(key.states)
            else:
                raise ValueError(kind)
        except Dead:
            self.bump("unanswered")
            self.merge(key, post)
            raise
        # An error reply: the operation may or may not have happened.
        if reply.startswith(b"SERVER_ERROR"):
            self.bump("server_error")
            self.bump("server_error " + kind)
            if kind == "set":
                # memcached drops the old value of a failed set rather than
                # keep serving stale data: absent is a third outcome.
                post[None] = (0.0, 0.0)
        else:
            self.other.append("%s %s -> %r" % (kind, key.name, reply[:80]))
        self.merge(key, post)

    def merge(self, key, post):
        if key.states is None:
            return
        for o, win in post.items():
            key.add(key.states, o, win)

    def flush(self, conn):
        """flush_all with every other operation excluded."""
        try:
            conn.send(b"flush_all\r\n")
            reply = conn.line()
        except Dead:
            self.bump("unanswered")
            for k in self.keys:
                k.note("flush_all -> no reply (server gone)")
                self.merge(k, {None: (0.0, 0.0)})
            raise
        text = reply.decode(errors="replace")
        for k in self.keys:
            k.note("flush_all -> " + text)
        if reply == b"OK":
            for k in self.keys:
                k.states = {None: (0.0, 0.0)}
            self.bump("acked")
            self.bump("flush_all ok")
            return
        if reply.startswith(b"SERVER_ERROR"):
            self.bump("server_error")
            self.bump("server_error flush_all")
        else:
            self.other.append("flush_all -> %r" % reply[:80])
        if not self.strict_flush:
            for k in self.keys:
                self.merge(k, {None: (0.0, 0.0)})

    # -- the workload -----------------------------------------------------

    def client(self, port, rnd, stop, flush_p):
        try:
            conn = Conn(port)
        except Dead:
            return
        kinds = (["set"] * 45 + ["delete"] * 15 + ["touch"] * 10 +
                 ["gat"] * 10 + ["get"] * 20)
        try:
            while not stop.is_set():
                if rnd.random() < flush_p:
                    self.rw.wlock()
                    try:
                        self.flush(conn)
                    finally:
                        self.rw.wunlock()
                    continue
                key = rnd.choice(self.keys)
                kind = rnd.choice(kinds)
                self.rw.rlock()
                try:
                    with key.lock:
                        self.op(conn, rnd, key, kind)
                finally:
                    self.rw.runlock()
        except Dead:
            pass
        finally:
            conn.close()

    def run(self, port, nclients, until, flush_p=0.001):
        """Run clients until until() returns true (it is polled every 10 ms)
        or every client's connection died. The caller kills the server."""
        stop = threading.Event()
        threads = []
        for i in range(nclients):
            r = random.Random(self.rnd.randrange(1 << 62))
            t = threading.Thread(target=self.client,
                                 args=(port, r, stop, flush_p), daemon=True)
            t.start()
            threads.append(t)
        while any(t.is_alive() for t in threads) and not until():
            time.sleep(0.01)
        return stop, threads

    def verify(self, port, where):
        """Read every key after a restart and judge it. Returns the number
        of violations found in this pass; raises Dead if the server goes
        away meanwhile."""
        before = len(self.errors)
        conn = Conn(port)
        try:
            for i, key in enumerate(self.keys):
                tq = time.time()
                got = conn.retrieve(b"get %s\r\n" % key.name.encode())
                tr = time.time()
                if isinstance(got, str):
                    self.other.append("verify get %s -> %s" % (key.name, got))
                    continue
                key.note("restart, get -> " + describe(key, got))
                if self.judge(key, got, tq, tr, where) is not None:
                    # Leave the key in a known state for the next round.
                    conn.send(b"delete %s\r\n" % key.name.encode())
                    if conn.line() in (b"DELETED", b"NOT_FOUND"):
                        key.states = {None: (0.0, 0.0)}
        except Dead as e:
            raise Dead("server gone while verifying key %d of %d: %s" % (
                i + 1, len(self.keys), e))
        finally:
            conn.close()
        return len(self.errors) - before

    def counts(self, errors=None):
        errors = self.errors if errors is None else errors
        return {c: sum(1 for e in errors if e[0] == c) for c in CATEGORIES}


def stop_clients(stop, threads):
    stop.set()
    for t in threads:
        t.join(20)


def report_errors(model, limit=25):
    c = model.counts()
    say("violations: LOST %d, RESURRECTED %d, FOREIGN %d" % (
        c["LOST"], c["RESURRECTED"], c["FOREIGN"]))
    for i, (cat, where, key, exp, got, hist) in enumerate(
            model.errors[:limit]):
        say("  %s key %s (%s): expected %s; got %s" % (
            cat, key, where, exp, got))
        if i < 5 or HIST > 6:
            for h in hist:
                say("      history: " + h)
    if len(model.errors) > limit:
        say("  ... and %d more" % (len(model.errors) - limit))
    if model.other:
        say("unexpected replies (%d), first ones:" % len(model.other))
        for o in model.other[:10]:
            say("  " + o)
