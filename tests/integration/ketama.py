# ketama.py - a model of the classic ketama continuum for the scale-out tests:
# the one libmemcached builds with MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED and
# twemproxy with "hash: md5, distribution: ketama". Per server of equal
# weight, 40 MD5 digests of "NAME-i" (NAME is "host:port", or just "host"
# when the port is 11211), 4 points from each; a key goes to the first point
# at or after the first 4 bytes (little-endian) of its MD5, wrapping around.
# Python 3 standard library only.
import bisect
import hashlib


def point_name(host, port):
    return host if port == 11211 else "%s:%d" % (host, port)


class Ring:
    def __init__(self, names):
        points = []
        for idx, name in enumerate(names):
            for i in range(40):
                d = hashlib.md5(("%s-%d" % (name, i)).encode()).digest()
                for x in range(4):
                    points.append((int.from_bytes(d[x * 4:x * 4 + 4], "little"), idx))
        points.sort()
        self.values = [p[0] for p in points]
        self.owners = [p[1] for p in points]

    def node(self, key):
        """Index (into the names given) of the server key maps to."""
        h = int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "little")
        i = bisect.bisect_left(self.values, h)
        return self.owners[i % len(self.owners)]
