#!/usr/bin/env python3
# test_scaleout_nutcracker.py - three servers behind nutcracker (twemproxy) in
# a ketama pool (hash md5, as README "Scaling out" configures it):
#   1. a mixed workload through the proxy (set/add/replace/append/prepend/
#      get/gets/cas/delete/incr/decr/touch, multi-gets spanning the nodes),
#      every key found on the node that libmemcached's ketama names;
#   2. a node killed (SIGKILL) and restarted on its data dir under load: the
#      errors the client sees come from that node's keys only, and every key
#      written before the kill is served again after;
#   3. auto_eject_hosts with server_failure_limit / server_retry_timeout: a
#      dead node is taken out of the ring and its keys remap; when it is back
#      it serves what it held, including values overwritten meanwhile on the
#      stand-in node (the caveat README documents).
# Prints what the client saw. Skips (77) without nutcracker ($NUTCRACKER or
# PATH, /usr/sbin). Python standard library and bcserver.py only.
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "integration"))
import bcserver  # noqa: E402
import ketama  # noqa: E402

fails = 0


def check(cond, what):
    global fails
    if not cond:
        print("FAIL: " + what)
        fails += 1
    return cond


class Client:
    """A text-protocol connection that reads whole replies."""

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.connect()

    def connect(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by peer")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode()

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def cmd(self, text, data=None):
        """Send one storage/delete/arith/touch command; the reply line."""
        msg = text.encode() + b"\r\n"
        if data is not None:
            msg += data + b"\r\n"
        self.sock.sendall(msg)
        return self.line()

    def get(self, *keys, gets=False):
        """{key: (flags, value[, cas])}, or an error line (str)."""
        self.sock.sendall(("%s %s\r\n" % ("gets" if gets else "get", " ".join(keys))).encode())
        out = {}
        while True:
            ln = self.line()
            if ln == "END":
                return out
            parts = ln.split()
            if parts[0] != "VALUE":
                return ln
            val = self.exact(int(parts[3]) + 2)[:-2]
            out[parts[1]] = (int(parts[2]), val) + ((int(parts[4]),) if gets else ())


def find_nutcracker():
    env = os.environ.get("NUTCRACKER", "")
    if env:
        return env if bcserver.executable(env) else None
    return shutil.which("nutcracker", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


class Proxy:
    """One nutcracker process over the given nodes, its config in a temp dir."""

    def __init__(self, binary, nodes, tmp, name, **opts):
        self.port = bcserver.free_port()
        self.stats_port = bcserver.free_port()
        self.conf = os.path.join(tmp, name + ".yml")
        self.log = os.path.join(tmp, name + ".log")
        lines = [
            name + ":",
            "  listen: 127.0.0.1:%d" % self.port,
            "  hash: md5",
            "  distribution: ketama",
            "  timeout: %d" % opts.get("timeout", 1000),
            "  auto_eject_hosts: %s" % ("true" if opts.get("eject") else "false"),
        ]
        if opts.get("eject"):
            lines += ["  server_failure_limit: %d" % opts["failure_limit"],
                      "  server_retry_timeout: %d" % opts["retry_ms"]]
        lines.append("  servers:")
        lines += ["    - 127.0.0.1:%d:1" % n.port for n in nodes]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        argv = [binary, "-c", self.conf, "-o", self.log, "-s", str(self.stats_port),
                "-a", "127.0.0.1", "-p", os.path.join(tmp, name + ".pid"), "-v", "6"]
        self.proc = subprocess.Popen(argv)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nutcracker exited: %s (config %s)" % (self.proc.returncode, self.conf))
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("nutcracker did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def restart_same_port(node):
    """Start a killed node again on its data dir and port."""
    port = node.port
    node.proc = subprocess.Popen(node.argv())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise RuntimeError("node on port %d did not restart" % port)
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("node on port %d not ready" % port)


def where(nodes, key):
    """Indexes of the nodes that hold key, asked directly."""
    found = []
    for i, n in enumerate(nodes):
        c = Client(n.port)
        if key in c.get(key):
            found.append(i)
        c.close()
    return found


def mixed_workload(proxy, nodes, ring):
    c = Client(proxy.port)
    n = 300
    for i in range(n):
        check(c.cmd("set mk:%d %d 0 %d" % (i, i, len(str(i)) + 2), b"v-%d" % i) == "STORED", "set mk:%d" % i)
    check(c.cmd("add mk:1 0 0 1", b"x") == "NOT_STORED", "add existing")
    check(c.cmd("add mk:new 0 0 1", b"x") == "STORED", "add new")
    check(c.cmd("replace mk:absent 0 0 1", b"x") == "NOT_STORED", "replace absent")
    check(c.cmd("replace mk:2 7 0 3", b"rep") == "STORED", "replace")
    check(c.cmd("append mk:3 0 0 2", b"-a") == "STORED", "append")
    check(c.cmd("prepend mk:3 0 0 2", b"p-") == "STORED", "prepend")
    check(c.get("mk:3") == {"mk:3": (3, b"p-v-3-a")}, "append+prepend result")
    check(c.cmd("set ctr 0 0 2", b"10") == "STORED", "set counter")
    check(c.cmd("incr ctr 5") == "15", "incr")
    check(c.cmd("decr ctr 20") == "0", "decr floors at 0")
    check(c.cmd("incr mk:absent 1") == "NOT_FOUND", "incr absent")
    check(c.cmd("delete mk:4") == "DELETED", "delete")
    check(c.cmd("delete mk:4") == "NOT_FOUND", "delete again")
    check(c.cmd("touch mk:5 100") == "TOUCHED", "touch")
    r = c.get("mk:6", gets=True)
    check(isinstance(r, dict) and "mk:6" in r, "gets")
    cas = r["mk:6"][2] if isinstance(r, dict) and "mk:6" in r else 0
    check(c.cmd("cas mk:6 0 0 3 %d" % cas, b"new") == "STORED", "cas with fresh unique")
    check(c.cmd("cas mk:6 0 0 3 %d" % cas, b"old") == "EXISTS", "cas with stale unique")
    # multi-gets spanning all three nodes: nutcracker splits and merges them
    keys = ["mk:%d" % i for i in range(10, 110)]
    r = c.get(*keys)
    check(isinstance(r, dict) and len(r) == 100 and all(r[k][1] == b"v-" + k[3:].encode() for k in keys),
          "multi-get of 100 keys: %s" % (len(r) if isinstance(r, dict) else r))
    r = c.get("mk:4", "mk:2", "mk:absent", "mk:7")
    check(r == {"mk:2": (7, b"rep"), "mk:7": (7, b"v-7")}, "multi-get with misses: %r" % r)
    c.close()
    # where the proxy put them: on the node libmemcached's ketama names
    spread = [0, 0, 0]
    mismatched = 0
    for i in range(0, n, 3):
        key = "mk:%d" % i
        found = where(nodes, key)
        want = ring.node(key)
        if found != [want]:
            mismatched += 1
        if len(found) == 1:
            spread[found[0]] += 1
    print("mixed workload: keys per node %s, %d of %d placed differently from "
          "libmemcached ketama" % (spread, mismatched, len(range(0, n, 3))))
    check(mismatched == 0, "nutcracker and libmemcached ketama agree on placement")
    check(all(s > 0 for s in spread), "keys on every node")


def read_back(c, nodes, ring, key, value):
    """How an acknowledged key reads back: "ok" through the proxy at once;
    "retried" through the proxy after it answered an error (retried up to 3
    times); "missed" when the proxy keeps failing or misses while the node
    that holds the key serves it; "lost" when that node does not serve it.
    Returns (how, what the proxy and the node answered)."""
    want = {key: (0, value)}
    seen = []
    for attempt in range(4):
        try:
            r = c.get(key)
        except (ConnectionError, socket.timeout, OSError) as e:
            r = "connection: %s" % e.__class__.__name__
            c.connect()
        if r == want:
            return ("ok" if attempt == 0 else "retried"), seen
        seen.append(r)
        if not isinstance(r, str):
            break  # a miss or another value: not the proxy's timeout
        time.sleep(0.1)
    d = Client(nodes[ring.node(key)].port)
    try:
        direct = d.get(key)
    finally:
        d.close()
    seen.append(("node %d" % ring.node(key), direct))
    return ("missed" if direct == want else "lost"), seen


def kill_under_load(proxy, nodes, ring):
    """Node 1 killed and restarted while one client keeps setting and getting."""
    c = Client(proxy.port)
    pre = 600
    for i in range(pre):
        check(c.cmd("set pre:%d 0 0 %d" % (i, len("val-%d" % i)), b"val-%d" % i) == "STORED", "preload")
    errors = {}
    err_by_node = [0, 0, 0]
    down_ops = down_err = 0
    acked = {}
    ok_after = 0
    # phases: 0.5 s of load, kill, at least 0.7 s and 100 requests with the
    # node down (a sanitizer build can take a while to die), restart, 1 s more
    phase = "before"
    t_phase = time.monotonic()
    i = 0

    def one(cmd_fn, key):
        nonlocal down_err
        try:
            r = cmd_fn()
        except (ConnectionError, socket.timeout, OSError) as e:
            r = "connection: %s" % e.__class__.__name__
            c.connect()
        ok = r == "STORED" or isinstance(r, dict)
        if not ok:
            text = r if isinstance(r, str) else repr(r)
            errors[text] = errors.get(text, 0) + 1
            err_by_node[ring.node(key)] += 1
            down_err += phase == "down"
        return ok, r

    while True:
        now = time.monotonic()
        if phase == "before" and now - t_phase > 0.5:
            nodes[1].kill()
            phase, t_phase = "down", time.monotonic()
        elif phase == "down" and now - t_phase > 0.7 and down_ops >= 100:
            restart_same_port(nodes[1])
            phase, t_phase = "after", time.monotonic()
            t_restart = t_phase
        elif phase == "after" and now - t_phase > 1.0:
            break
        key = "load:%d" % i
        val = str(i).encode()
        ok, _ = one(lambda: c.cmd("set %s 0 0 %d" % (key, len(val)), val), key)
        if ok:
            acked[key] = val
            ok_after += phase == "after"
        pkey = "pre:%d" % (i % pre)
        one(lambda: c.get(pkey), pkey)
        down_ops += 2 if phase == "down" else 0
        i += 1
    print("kill -9 of node 1 under load: %d requests, %d while it was down; errors seen by "
          "the client: %s; errors by node of the key: %s" % (2 * i, down_ops, errors, err_by_node))
    check(down_err > 0, "the client saw the node down")
    check(err_by_node[0] == 0 and err_by_node[2] == 0, "only node 1's keys failed")
    check(ok_after > 0, "load succeeds again after the restart")
    # recovery time as the client saw it: first success on node 1 after restart
    back_at = None
    while time.monotonic() - t_restart < 5:
        key = next(k for k in ("pre:%d" % j for j in range(pre)) if ring.node(k) == 1)
        if isinstance(c.get(key), dict) and c.get(key):
            back_at = time.monotonic() - t_restart
            break
        time.sleep(0.05)
    check(back_at is not None, "node 1 reachable through the proxy after restart")
    # A key that does not read back through the proxy is asked of the node
    # that holds it: under a sanitizer on a busy machine a get can pass the
    # proxy's 1 s timeout (SERVER_ERROR), which says nothing of the write.
    # Lost is what that node does not serve; a proxy error is retried.
    want = {"pre:%d" % j: b"val-%d" % j for j in range(pre)}
    tally = {}
    for keys in (want, acked):
        for k, v in keys.items():
            how, seen = read_back(c, nodes, ring, k, v)
            tally.setdefault(how, []).append((k, seen))
    lost = tally.get("lost", []) + tally.get("missed", [])
    retried = tally.get("retried", [])
    print("after restart: %d preloaded and %d acknowledged under load; read back %d, after a "
          "proxy error %d, missing on their node %d, missed by the proxy only %d"
          % (pre, len(acked), len(tally.get("ok", [])), len(retried),
             len(tally.get("lost", [])), len(tally.get("missed", []))))
    for k, seen in (retried + lost)[:5]:
        print("  %s: %r" % (k, seen))
    check(not tally.get("lost"), "acknowledged sets on their node after the restart: missing %s"
          % [k for k, _ in tally.get("lost", [])][:5])
    check(not tally.get("missed"), "the proxy serves every key its node has: %s"
          % [k for k, _ in tally.get("missed", [])][:5])
    c.close()


def auto_eject(binary, nodes, tmp, ring):
    """failure_limit 2, retry 1000 ms: node 2 dies, is ejected, comes back."""
    proxy = Proxy(binary, nodes, tmp, "eject", eject=True, failure_limit=2, retry_ms=1000)
    try:
        c = Client(proxy.port)
        mine = [k for k in ("ej:%d" % j for j in range(400)) if ring.node(k) == 2]
        others = [k for k in ("ej:%d" % j for j in range(400)) if ring.node(k) != 2]
        for k in mine + others:
            check(c.cmd("set %s 0 0 3" % k, b"old") == "STORED", "set " + k)
        nodes[2].kill()
        t_kill = time.monotonic()
        seen = []
        # node 2's keys: errors until the failure limit, then the ring without it
        for k in mine[:10]:
            try:
                seen.append(c.cmd("set %s 0 0 3" % k, b"new"))
            except (ConnectionError, OSError) as e:
                seen.append("connection: %s" % e.__class__.__name__)
                c.connect()
        first_ok = seen.index("STORED") if "STORED" in seen else None
        print("auto_eject_hosts, server_failure_limit 2: node 2 killed; sets of its keys "
              "answered %s" % seen)
        check(first_ok is not None and 1 <= first_ok <= 3,
              "ejected after the failure limit (first STORED at attempt %s)" % first_ok)
        check(all(s.startswith("SERVER_ERROR") or s.startswith("connection") for s in seen[:first_ok or 0]),
              "failures before ejection are errors")
        # while ejected: the other nodes' keys untouched, node 2's keys miss
        # until written; they were written "new" above onto a stand-in node
        check(all(c.get(k) == {k: (0, b"old")} for k in others), "other nodes' keys unaffected")
        hits = sum(1 for k in mine[first_ok or 0:10] if c.get(k) == {k: (0, b"new")})
        misses = sum(1 for k in mine[10:] if c.get(k) == {})
        print("while ejected: %d of %d rewritten node-2 keys served by stand-ins, "
              "%d of %d others miss" % (hits, len(mine[first_ok or 0:10]), misses, len(mine[10:])))
        check(misses == len(mine[10:]), "node 2's keys remapped (miss) while it is out")
        # bring node 2 back; after server_retry_timeout the proxy tries it again
        restart_same_port(nodes[2])
        t_back = time.monotonic()
        back = None
        while time.monotonic() - t_back < 5:
            r = c.get(mine[-1])
            if r == {mine[-1]: (0, b"old")}:
                back = time.monotonic() - t_back
                break
            time.sleep(0.05)
        print("node 2 restarted %.1f s after the kill; its keys served again %.2f s later"
              % (t_back - t_kill, back if back is not None else -1))
        check(back is not None, "node 2 back in the ring after server_retry_timeout")
        stale = sum(1 for k in mine[first_ok or 0:10] if c.get(k) == {k: (0, b"old")})
        print("keys rewritten during the ejection now read back their pre-kill value: "
              "%d of %d (stale: bitcached kept them; memcached would miss)"
              % (stale, len(mine[first_ok or 0:10])))
        check(stale == len(mine[first_ok or 0:10]),
              "restarted node serves what it held (documented stale-read caveat)")
        all_back = sum(1 for k in mine[10:] if c.get(k) == {k: (0, b"old")})
        check(all_back == len(mine[10:]), "node 2's untouched keys all back: %d of %d"
              % (all_back, len(mine[10:])))
        c.close()
    finally:
        proxy.stop()


def main():
    binary = bcserver.binary()
    nutcracker = find_nutcracker()
    if not nutcracker:
        bcserver.skip("nutcracker (twemproxy) not found: apt-get install nutcracker")
    nodes = [bcserver.Server(binary) for _ in range(3)]
    proxy = None
    tmp = nodes[0].tmp
    try:
        for n in nodes:
            n.start()
        ring = ketama.Ring([ketama.point_name("127.0.0.1", n.port) for n in nodes])
        proxy = Proxy(nutcracker, nodes, tmp, "pool", timeout=1000)
        mixed_workload(proxy, nodes, ring)
        kill_under_load(proxy, nodes, ring)
        proxy.stop()
        proxy = None
        auto_eject(nutcracker, nodes, tmp, ring)
        for n in nodes:
            check(n.alive(), "node on port %d alive at the end" % n.port)
    finally:
        if proxy is not None:
            proxy.stop()
        for n in nodes:
            n.close()
    print("nutcracker: %d failures" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
