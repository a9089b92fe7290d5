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

static const char *
cmd_name(enum proto_cmd c)
{
    static const char *const names[] = {
            [PROTO_CMD_GET] = "get",
            [PROTO_CMD_GETS] = "gets",
            [PROTO_CMD_GAT] = "gat",
            [PROTO_CMD_GATS] = "gats",
            [PROTO_CMD_SET] = "set",
            [PROTO_CMD_ADD] = "add",
            [PROTO_CMD_REPLACE] = "replace",
            [PROTO_CMD_APPEND] = "append",
            [PROTO_CMD_PREPEND] = "prepend",
            [PROTO_CMD_CAS] = "cas",
            [PROTO_CMD_DELETE] = "delete",
            [PROTO_CMD_INCR] = "incr",
            [PROTO_CMD_DECR] = "decr",
            [PROTO_CMD_TOUCH] = "touch",
            [PROTO_CMD_FLUSH_ALL] = "flush_all",
            [PROTO_CMD_STATS] = "stats",
            [PROTO_CMD_VERSION] = "version",
            [PROTO_CMD_VERBOSITY] = "verbosity",
            [PROTO_CMD_QUIT] = "quit",
            [PROTO_CMD_SHUTDOWN] = "shutdown",
            [PROTO_CMD_MG] = "mg",
            [PROTO_CMD_MS] = "ms",
            [PROTO_CMD_MD] = "md",
            [PROTO_CMD_MA] = "ma",
            [PROTO_CMD_MN] = "mn",
            [PROTO_CMD_ME] = "me",
    };

    if ((unsigned)c >= sizeof(names) / sizeof(names[0]) || names[c] == NULL) {
        return NULL;
    }
    return names[c];
}

size_t
proto_format_req(char *out, size_t cap, const struct proto_req *req)
{
    const char *name = cmd_name(req->cmd);
    struct proto_out o;
    unsigned i;

    proto_out_init(&o, out, cap);
    if (req->cmd == PROTO_CMD_ADMIN) {
        proto_out_mem(&o, req->key, req->klen); /* the command word */
    } else if (name == NULL) {
        return 0;
    } else {
        proto_out_str(&o, name);
    }
    switch (req->cmd) {
    case PROTO_CMD_GAT:
    case PROTO_CMD_GATS:
        proto_out_mem(&o, " ", 1);
        proto_out_i64(&o, req->exptime);
        /* fall through */
    case PROTO_CMD_GET:
    case PROTO_CMD_GETS:
        if (req->keys_len > 0) {
            proto_out_mem(&o, " ", 1);
            proto_out_mem(&o, req->keys, req->keys_len);
        }
        break;
    case PROTO_CMD_SET:
    case PROTO_CMD_ADD:
    case PROTO_CMD_REPLACE:
    case PROTO_CMD_APPEND:
    case PROTO_CMD_PREPEND:
    case PROTO_CMD_CAS:
        proto_out_mem(&o, " ", 1);
        proto_out_mem(&o, req->raw_key, req->raw_klen);
        proto_out_mem(&o, " ", 1);
        proto_out_u64(&o, req->flags);
        proto_out_mem(&o, " ", 1);
        proto_out_i64(&o, req->exptime);
        proto_out_mem(&o, " ", 1);
        proto_out_u64(&o, req->nbytes);
        if (req->cmd == PROTO_CMD_CAS) {
            proto_out_mem(&o, " ", 1);
            proto_out_u64(&o, req->cas);
        }
        break;
    case PROTO_CMD_DELETE:
        proto_out_mem(&o, " ", 1);
        proto_out_mem(&o, req->raw_key, req->raw_klen);
        break;
    case PROTO_CMD_INCR:
    case PROTO_CMD_DECR:
        proto_out_mem(&o, " ", 1);
        proto_out_mem(&o, req->raw_key, req->raw_klen);
        proto_out_mem(&o, " ", 1);
        proto_out_u64(&o, req->delta);
        break;
    case PROTO_CMD_TOUCH:
        proto_out_mem(&o, " ", 1);
        proto_out_mem(&o, req->raw_key, req->raw_klen);
        proto_out_mem(&o, " ", 1);
        proto_out_i64(&o, req->exptime);
        break;
    case PROTO_CMD_FLUSH_ALL:
        if (req->has_delay) {
            proto_out_mem(&o, " ", 1);
            proto_out_i64(&o, req->delay);
        }
        break;
    case PROTO_CMD_STATS:
    case PROTO_CMD_SHUTDOWN:
    case PROTO_CMD_ADMIN:
        if (req->args_len > 0) {
            proto_out_mem(&o, " ", 1);
            proto_out_mem(&o, req->args, req->args_len);
        }
        break;
    case PROTO_CMD_VERBOSITY:
        proto_out_mem(&o, " ", 1);
        proto_out_u64(&o, req->level);
        break;
    case PROTO_CMD_MG:
    case PROTO_CMD_MS:
    case PROTO_CMD_MD:
    case PROTO_CMD_MA:
    case PROTO_CMD_ME:
        proto_out_mem(&o, " ", 1);
        proto_out_mem(&o, req->raw_key, req->raw_klen);
        if (req->cmd == PROTO_CMD_MS) {
            proto_out_mem(&o, " ", 1);
            proto_out_u64(&o, req->nbytes);
        }
        for (i = 0; i < req->nmflags; i++) {
            proto_out_mem(&o, " ", 1);
            proto_out_mem(&o, &req->mflags[i].flag, 1);
            proto_out_mem(&o, req->mflags[i].tok, req->mflags[i].len);
        }
        break;
    default:
        break;
    }
    if (req->noreply && req->cmd < PROTO_CMD_MG) {
        proto_out_str(&o, " noreply");
    }
    proto_out_mem(&o, "\r\n", 2);
    if (req->cmd == PROTO_CMD_MS ||
        (req->cmd >= PROTO_CMD_SET && req->cmd <= PROTO_CMD_CAS)) {
        proto_out_mem(&o, req->data, req->nbytes);
        proto_out_mem(&o, "\r\n", 2);
    }
    return o.overflow ? 0 : o.len;
}

size_t
proto_uriencode(const char *key, size_t klen, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (size_t i = 0; i < klen; i++) {
        unsigned char ch = (unsigned char)key[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
            ch == '~') {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
    return n;
}
