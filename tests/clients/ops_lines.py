# ops_lines.py - what the Python op scripts of test_clients.py share: one
# numbered line per outcome, an exception printed as its class and message
# (so the servers' error texts are compared too, a pointer in one masked),
# and the expiry call.
import re
import time

n = 0


def out(what, val):
    global n
    n += 1
    print("%d %s: %r" % (n, what, val), flush=True)


def attempt(what, call):
    try:
        val = call()
    except Exception as e:  # noqa: BLE001 - the outcome is what is compared
        val = "raised %s %s" % (type(e).__name__, getattr(e, "message", e))
        # libmemcached's messages carry a pointer (its memcached_st)
        val = re.sub(r"\(0x[0-9a-f]+\)", "(0x...)", val)
    out(what, val)


def expiry(c):
    c.set("e", "soon", time=1)
    time.sleep(2.1)
    return c.get("e")
