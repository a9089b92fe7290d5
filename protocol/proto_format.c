/* proto_format.c - response lines of the memcached text protocol, written
 * into a caller-supplied bounded buffer. Values never pass through here: the
 * caller hands them to its sink separately. Pure: no I/O, no allocation, no
 * globals beyond constant tables. Must not depend on server/ or storage/.
 */
#include "protocol/proto.h"

#include <string.h>

void
proto_out_init(struct proto_out *o, char *buf, size_t cap)
{
    o->buf = buf;
    o->cap = cap;
    o->len = 0;
    o->overflow = false;
}

void
proto_out_mem(struct proto_out *o, const void *p, size_t n)
{
    size_t room = o->cap - o->len;

    if (n > room) {
        o->overflow = true;
        n = room;
    }
    if (n > 0) {
        memcpy(o->buf + o->len, p, n);
        o->len += n;
    }
}

void
proto_out_str(struct proto_out *o, const char *s)
{
    proto_out_mem(o, s, strlen(s));
}

void
proto_out_u64(struct proto_out *o, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    proto_out_mem(o, tmp + i, sizeof(tmp) - i);
}

void
proto_out_i64(struct proto_out *o, int64_t v)
{
    if (v < 0) {
        proto_out_mem(o, "-", 1);
        /* negate in unsigned arithmetic: INT64_MIN has no positive twin */
        proto_out_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        proto_out_u64(o, (uint64_t)v);
    }
}

void
proto_fmt_value(struct proto_out *o, const char *key, size_t klen,
                uint32_t flags, uint32_t vlen, bool with_cas, uint64_t cas)
{
    proto_out_mem(o, "VALUE ", 6);
    proto_out_mem(o, key, klen);
    proto_out_mem(o, " ", 1);
    proto_out_u64(o, flags);
    proto_out_mem(o, " ", 1);
    proto_out_u64(o, vlen);
    if (with_cas) {
        proto_out_mem(o, " ", 1);
        proto_out_u64(o, cas);
    }
    proto_out_mem(o, "\r\n", 2);
}
