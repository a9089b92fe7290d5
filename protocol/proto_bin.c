/* proto_bin.c - memcached binary protocol: packet parser and response
 * header formatter (implements proto_bin.h). Pure: no I/O, no allocation,
 * no globals. The validation rules and their order follow memcached 1.6's
 * dispatch of binary commands, so that every malformed packet gets the same
 * status and the same fate of the connection (kept, body swallowed, or
 * closed) as there.
 */
#include "protocol/proto_bin.h"

#include <string.h>

uint16_t
proto_bin_get16(const void *p)
{
    const unsigned char *b = p;
    return (uint16_t)((b[0] << 8) | b[1]);
}

uint32_t
proto_bin_get32(const void *p)
{
    const unsigned char *b = p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
           ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

uint64_t
proto_bin_get64(const void *p)
{
    const unsigned char *b = p;
    return ((uint64_t)proto_bin_get32(b) << 32) | proto_bin_get32(b + 4);
}

void
proto_bin_put16(void *p, uint16_t v)
{
    unsigned char *b = p;
    b[0] = (unsigned char)(v >> 8);
    b[1] = (unsigned char)v;
}

void
proto_bin_put32(void *p, uint32_t v)
{
    unsigned char *b = p;
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

void
proto_bin_put64(void *p, uint64_t v)
{
    unsigned char *b = p;
    proto_bin_put32(b, (uint32_t)(v >> 32));
    proto_bin_put32(b + 4, (uint32_t)v);
}

void
proto_bin_parser_init(struct proto_bin_parser *p, uint32_t item_max)
{
    memset(p, 0, sizeof(*p));
    p->item_max = item_max;
}

void
proto_bin_parser_release(struct proto_bin_parser *p)
{
    proto_budget_drop(p->budget, &p->held);
}

const char *
proto_bin_errstr(uint16_t status)
{
    switch (status) {
    case PROTO_BIN_KEY_ENOENT:
        return "Not found";
    case PROTO_BIN_KEY_EEXISTS:
        return "Data exists for key.";
    case PROTO_BIN_E2BIG:
        return "Too large.";
    case PROTO_BIN_EINVAL:
        return "Invalid arguments";
    case PROTO_BIN_NOT_STORED:
        return "Not stored.";
    case PROTO_BIN_DELTA_BADVAL:
        return "Non-numeric server-side value for incr or decr";
    case PROTO_BIN_AUTH_ERROR:
        return "Auth failure.";
    case PROTO_BIN_UNKNOWN_COMMAND:
        return "Unknown command";
    case PROTO_BIN_ENOMEM:
        return "Out of memory";
    case PROTO_BIN_EINTERNAL:
        return "Internal error";
    default:
        return "";
    }
}

/* The base command of a quiet variant, or 0xff if op is not quiet. */
static uint8_t
unquiet(uint8_t op)
{
    switch (op) {
    case PROTO_BIN_SETQ:
        return PROTO_BIN_SET;
    case PROTO_BIN_ADDQ:
        return PROTO_BIN_ADD;
    case PROTO_BIN_REPLACEQ:
        return PROTO_BIN_REPLACE;
    case PROTO_BIN_DELETEQ:
        return PROTO_BIN_DELETE;
    case PROTO_BIN_INCREMENTQ:
        return PROTO_BIN_INCREMENT;
    case PROTO_BIN_DECREMENTQ:
        return PROTO_BIN_DECREMENT;
    case PROTO_BIN_QUITQ:
        return PROTO_BIN_QUIT;
    case PROTO_BIN_FLUSHQ:
        return PROTO_BIN_FLUSH;
    case PROTO_BIN_APPENDQ:
        return PROTO_BIN_APPEND;
    case PROTO_BIN_PREPENDQ:
        return PROTO_BIN_PREPEND;
    case PROTO_BIN_GETQ:
        return PROTO_BIN_GET;
    case PROTO_BIN_GETKQ:
        return PROTO_BIN_GETK;
    case PROTO_BIN_GATQ:
        return PROTO_BIN_GAT;
    case PROTO_BIN_GATKQ:
        return PROTO_BIN_GATK;
    default:
        return 0xff;
    }
}

/* Before authentication only these pass (memcached checks the opcode as
 * sent, before quiet variants are mapped). */
static bool
allowed_unauthenticated(uint8_t op)
{
    return op == PROTO_BIN_SASL_LIST_MECHS || op == PROTO_BIN_SASL_AUTH ||
           op == PROTO_BIN_SASL_STEP || op == PROTO_BIN_VERSION;
}

static enum proto_bin_result
fail(struct proto_bin_req *req, uint16_t status, size_t consumed, size_t *used)
{
    req->status = status;
    *used = consumed;
    return PROTO_BIN_ERROR;
}

static enum proto_bin_result
fail_swallow(struct proto_bin_parser *p, struct proto_bin_req *req,
             uint16_t status, size_t consumed, uint64_t swallow, size_t *used)
{
    p->swallow = swallow;
    return fail(req, status, consumed, used);
}

static enum proto_bin_result
fail_close(struct proto_bin_req *req, uint16_t status, size_t consumed,
           size_t *used)
{
    req->status = status;
    *used = consumed;
    return PROTO_BIN_CLOSE;
}

/* A command with a value after extras and key: wait for the whole body,
 * unless it is too large (then answer E2BIG and drop the value as it comes,
 * as memcached does) or the budget of values still arriving has no room for
 * it (ENOMEM, dropped likewise: memcached's answer when it has no memory
 * for the item). */
static enum proto_bin_result
with_value(struct proto_bin_parser *p, struct proto_bin_req *req,
           const char *buf, size_t len, size_t head, size_t *used)
{
    uint64_t vlen = (uint64_t)req->bodylen - req->extlen - req->klen;
    uint64_t total = (uint64_t)PROTO_BIN_HDR_LEN + req->bodylen;

    if (vlen > p->item_max) {
        if (req->cmd == PROTO_BIN_SASL_AUTH ||
            req->cmd == PROTO_BIN_SASL_STEP) {
            return fail_swallow(p, req, PROTO_BIN_ENOMEM, head, vlen, used);
        }
        /* memcached's SET (quiet or not) drops the old value rather than
         * leave stale data behind */
        req->unlink = req->cmd == PROTO_BIN_SET;
        return fail_swallow(p, req, PROTO_BIN_E2BIG, head, vlen, used);
    }
    if (len < total) {
        bool sasl = req->cmd == PROTO_BIN_SASL_AUTH ||
                    req->cmd == PROTO_BIN_SASL_STEP;
        if (!sasl && !proto_budget_hold(p->budget, &p->held, total)) {
            req->unlink = req->cmd == PROTO_BIN_SET;
            return fail_swallow(p, req, PROTO_BIN_ENOMEM, head, vlen, used);
        }
        p->wanted = (size_t)total;
        *used = 0;
        return PROTO_BIN_NEED_MORE;
    }
    proto_bin_parser_release(p);
    req->val = buf + head;
    req->vlen = (size_t)vlen;
    *used = (size_t)total;
    return PROTO_BIN_OK;
}

enum proto_bin_result
proto_bin_parse(struct proto_bin_parser *p, struct proto_bin_req *req,
                const char *buf, size_t len, size_t *used)
{
    const unsigned char *h = (const unsigned char *)buf;
    const char *ext;
    size_t head;
    bool bad = false;
    uint8_t base;

    memset(req, 0, sizeof(*req));
    *used = 0;
    p->wanted = 0;
    if (p->swallow > 0) {
        size_t n = len < p->swallow ? len : (size_t)p->swallow;

        if (n == 0) {
            return PROTO_BIN_NEED_MORE;
        }
        p->swallow -= n;
        *used = n;
        return PROTO_BIN_SWALLOW;
    }
    if (len < PROTO_BIN_HDR_LEN) {
        p->wanted = PROTO_BIN_HDR_LEN;
        return PROTO_BIN_NEED_MORE;
    }
    if (h[0] != PROTO_BIN_REQ) {
        /* memcached closes without a reply */
        req->status = PROTO_BIN_SUCCESS;
        return PROTO_BIN_CLOSE;
    }
    req->opcode = h[1];
    req->klen = proto_bin_get16(h + 2);
    req->extlen = h[4];
    req->datatype = h[5];
    req->vbucket = proto_bin_get16(h + 6);
    req->bodylen = proto_bin_get32(h + 8);
    memcpy(&req->opaque, h + 12, 4);
    req->cas = proto_bin_get64(h + 16);
    head = PROTO_BIN_HDR_LEN + req->extlen + req->klen;
    if (len < head) {
        p->wanted = head;
        return PROTO_BIN_NEED_MORE;
    }
    ext = buf + PROTO_BIN_HDR_LEN;
    req->key = ext + req->extlen;
    req->cmd = req->opcode;

    if (req->klen > req->bodylen ||
        (uint64_t)req->klen + req->extlen > req->bodylen) {
        return fail_close(req, PROTO_BIN_UNKNOWN_COMMAND, head, used);
    }
    if (p->auth_needed && !allowed_unauthenticated(req->opcode)) {
        return fail_close(req, PROTO_BIN_AUTH_ERROR, head, used);
    }
    if (req->klen > PROTO_BIN_KEY_MAX) {
        return fail_close(req, PROTO_BIN_EINVAL, head, used);
    }
    base = unquiet(req->opcode);
    if (base != 0xff) {
        req->cmd = base;
        req->quiet = true;
    }

    switch (req->cmd) {
    case PROTO_BIN_VERSION:
    case PROTO_BIN_NOOP:
    case PROTO_BIN_QUIT:
        bad = req->extlen != 0 || req->klen != 0 || req->bodylen != 0;
        break;
    case PROTO_BIN_FLUSH:
        bad = req->klen != 0 || req->bodylen != req->extlen ||
              (req->extlen != 0 && req->extlen != 4);
        if (!bad && req->extlen == 4) {
            req->exptime = proto_bin_get32(ext);
            req->has_exptime = true;
        }
        break;
    case PROTO_BIN_SET:
    case PROTO_BIN_ADD:
    case PROTO_BIN_REPLACE:
        if (req->extlen != 8 || req->klen == 0 ||
            req->bodylen < (uint32_t)req->klen + 8) {
            bad = true;
            break;
        }
        req->flags = proto_bin_get32(ext);
        req->exptime = proto_bin_get32(ext + 4);
        return with_value(p, req, buf, len, head, used);
    case PROTO_BIN_APPEND:
    case PROTO_BIN_PREPEND:
        if (req->extlen != 0 || req->klen == 0) {
            bad = true;
            break;
        }
        return with_value(p, req, buf, len, head, used);
    case PROTO_BIN_GET:
    case PROTO_BIN_GETK:
    case PROTO_BIN_DELETE:
        bad = req->extlen != 0 || req->klen == 0 || req->bodylen != req->klen;
        break;
    case PROTO_BIN_INCREMENT:
    case PROTO_BIN_DECREMENT:
        if (req->extlen != 20 || req->klen == 0 ||
            req->bodylen != (uint32_t)req->klen + 20) {
            bad = true;
            break;
        }
        req->delta = proto_bin_get64(ext);
        req->initial = proto_bin_get64(ext + 8);
        req->exptime = proto_bin_get32(ext + 16);
        break;
    case PROTO_BIN_STAT:
        bad = req->extlen != 0;
        break;
    case PROTO_BIN_TOUCH:
    case PROTO_BIN_GAT:
    case PROTO_BIN_GATK:
        if (req->extlen != 4 || req->klen == 0) {
            bad = true;
            break;
        }
        req->exptime = proto_bin_get32(ext);
        break;
    case PROTO_BIN_SASL_LIST_MECHS:
        if (req->extlen != 0 || req->klen != 0 || req->bodylen != 0) {
            bad = true;
            break;
        }
        if (!p->sasl) {
            return fail(req, PROTO_BIN_UNKNOWN_COMMAND, head, used);
        }
        break;
    case PROTO_BIN_SASL_AUTH:
    case PROTO_BIN_SASL_STEP:
        if (req->extlen != 0 || req->klen == 0) {
            bad = true;
            break;
        }
        if (!p->sasl) {
            return fail_swallow(p, req, PROTO_BIN_UNKNOWN_COMMAND, head,
                                req->bodylen - req->klen, used);
        }
        if (req->klen > PROTO_BIN_MECH_MAX) {
            return fail_swallow(p, req, PROTO_BIN_EINVAL, head,
                                req->bodylen - req->klen, used);
        }
        return with_value(p, req, buf, len, head, used);
    default:
        /* memcached swallows the whole body length after extras and key
         * were read; kept for the same framing */
        return fail_swallow(p, req, PROTO_BIN_UNKNOWN_COMMAND, head,
                            req->bodylen, used);
    }
    if (bad) {
        return fail_close(req, PROTO_BIN_EINVAL, head, used);
    }
    /* Bytes past extras and key of a command without a value (a touch or
     * stat whose body length says more) are left for the next packet, as
     * memcached leaves them. */
    *used = head;
    return PROTO_BIN_OK;
}

void
proto_bin_fmt_hdr(unsigned char out[PROTO_BIN_HDR_LEN], uint8_t opcode,
                  uint16_t status, uint8_t extlen, uint16_t klen,
                  uint32_t bodylen, uint32_t opaque, uint64_t cas)
{
    out[0] = PROTO_BIN_RES;
    out[1] = opcode;
    proto_bin_put16(out + 2, klen);
    out[4] = extlen;
    out[5] = 0;
    proto_bin_put16(out + 6, status);
    proto_bin_put32(out + 8, bodylen);
    memcpy(out + 12, &opaque, 4);
    proto_bin_put64(out + 16, cas);
}

size_t
proto_bin_fmt_req(char *out, size_t cap, uint8_t opcode, const void *ext,
                  uint8_t extlen, const void *key, uint16_t klen,
                  const void *val, uint32_t vlen, uint32_t opaque, uint64_t cas)
{
    uint64_t body = (uint64_t)extlen + klen + vlen;
    unsigned char *h = (unsigned char *)out;

    if (body > UINT32_MAX || PROTO_BIN_HDR_LEN + body > cap) {
        return 0;
    }
    memset(h, 0, PROTO_BIN_HDR_LEN);
    h[0] = PROTO_BIN_REQ;
    h[1] = opcode;
    proto_bin_put16(h + 2, klen);
    h[4] = extlen;
    proto_bin_put32(h + 8, (uint32_t)body);
    memcpy(h + 12, &opaque, 4);
    proto_bin_put64(h + 16, cas);
    if (extlen > 0) {
        memcpy(out + PROTO_BIN_HDR_LEN, ext, extlen);
    }
    if (klen > 0) {
        memcpy(out + PROTO_BIN_HDR_LEN + extlen, key, klen);
    }
    if (vlen > 0) {
        memcpy(out + PROTO_BIN_HDR_LEN + extlen + klen, val, vlen);
    }
    return (size_t)(PROTO_BIN_HDR_LEN + body);
}
