/* proto_parse.c - incremental parser for the memcached text protocol
 * (classic and meta commands). Turns bytes into one struct proto_req at a
 * time, with memcached 1.6's exact error lines for bad input.
 * Pure: no I/O, no allocation, no globals. Must not depend on server/ or
 * storage/.
 */
#include "protocol/proto.h"

#include <string.h>

/* memcached splits a line into at most this many tokens (the last one
 * keeping the rest of the line); commands check counts against it. */
#define MAX_TOKENS      24
#define META_MAX_TOKENS 20

struct tok {
    const char *p;
    size_t n;
};

struct line {
    struct tok t[MAX_TOKENS];
    unsigned n; /* tokens found, at most MAX_TOKENS */
    bool more;  /* text left after the last token */
    const char *end;
};

static const char ERR_ERROR[] = "ERROR\r\n";
static const char ERR_FORMAT[] = "CLIENT_ERROR bad command line format\r\n";
static const char ERR_CHUNK[] = "CLIENT_ERROR bad data chunk\r\n";
static const char ERR_TOOBIG[] = "SERVER_ERROR object too large for cache\r\n";
static const char ERR_NOMEM[] = "SERVER_ERROR out of memory storing object\r\n";
static const char ERR_NOMEM_READ[] =
        "SERVER_ERROR out of memory reading request\r\n";
static const char ERR_EXPTIME[] = "CLIENT_ERROR invalid exptime argument\r\n";
static const char ERR_DELTA[] =
        "CLIENT_ERROR invalid numeric delta argument\r\n";
static const char ERR_DELETE[] = "CLIENT_ERROR bad command line format.  "
                                 "Usage: delete <key> [noreply]\r\n";
static const char ERR_BADFLAG[] = "CLIENT_ERROR invalid flag\r\n";
static const char ERR_DUPFLAG[] = "CLIENT_ERROR duplicate flag\r\n";
static const char ERR_INVDUP[] = "CLIENT_ERROR invalid or duplicate flag\r\n";
/* memcached's mg says "are too long", its ms, md and ma "too long" */
static const char ERR_TOOMANY_MG[] =
        "CLIENT_ERROR options flags are too long\r\n";
static const char ERR_TOOMANY[] = "CLIENT_ERROR options flags too long\r\n";
static const char ERR_OPAQUE[] = "CLIENT_ERROR opaque token too long\r\n";
static const char ERR_INITIAL[] =
        "CLIENT_ERROR invalid numeric initial value\r\n";
static const char ERR_DELTAV[] = "CLIENT_ERROR invalid numeric delta value\r\n";
static const char ERR_MLEN[] = "CLIENT_ERROR incorrect length for M token\r\n";
static const char ERR_B64[] = "CLIENT_ERROR error decoding key\r\n";
static const char ERR_BADTOK[] =
        "CLIENT_ERROR bad token in command line format\r\n";
static const char ERR_MSMODE[] = "CLIENT_ERROR invalid mode for ms M token\r\n";
static const char ERR_MAMODE[] = "CLIENT_ERROR invalid mode for ma M token\r\n";

void
proto_parser_init(struct proto_parser *p, uint32_t item_max)
{
    memset(p, 0, sizeof(*p));
    p->item_max = item_max;
}

void
proto_parser_release(struct proto_parser *p)
{
    proto_budget_drop(p->budget, &p->held);
}

static void
tokenize(struct line *l, const char *s, const char *end)
{
    l->n = 0;
    l->more = false;
    l->end = end;
    while (s < end) {
        const char *e;

        if (*s == ' ') {
            s++;
            continue;
        }
        if (l->n == MAX_TOKENS) {
            l->more = true;
            return;
        }
        e = memchr(s, ' ', (size_t)(end - s));
        if (e == NULL) {
            e = end;
        }
        l->t[l->n].p = s;
        l->t[l->n].n = (size_t)(e - s);
        l->n++;
        s = e;
    }
}

static bool
tok_is(const struct tok *t, const char *s)
{
    size_t n = strlen(s);

    return t->n == n && memcmp(t->p, s, n) == 0;
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

/* A number as strtoull/strtol read one, plus memcached's check of what
 * follows it: leading white space, an optional sign, at least one digit,
 * then the end of the token, white space or a NUL (memcached's tokens are C
 * strings). *mag gets the magnitude; false if it overflows 64 bits. */
static bool
scan_num(const char *p, size_t n, bool *neg, uint64_t *mag)
{
    size_t i = 0;
    uint64_t v = 0;
    bool any = false;

    while (i < n && is_space(p[i])) {
        i++;
    }
    *neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-')) {
        *neg = p[i] == '-';
        i++;
    }
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        unsigned d = (unsigned)(p[i] - '0');

        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
        any = true;
    }
    if (!any || (i < n && p[i] != '\0' && !is_space(p[i]))) {
        return false;
    }
    *mag = v;
    return true;
}

bool
proto_strtou64(const char *p, size_t n, uint64_t *out)
{
    bool neg;
    uint64_t mag;
    uint64_t v;

    if (!scan_num(p, n, &neg, &mag)) {
        return false;
    }
    /* strtoull negates a '-' number; memcached refuses it only when the
     * result looks negative as a signed number */
    v = neg ? 0 - mag : mag;
    if (neg && v > (uint64_t)INT64_MAX) {
        return false;
    }
    *out = v;
    return true;
}

bool
proto_strtoi64(const char *p, size_t n, int64_t *out)
{
    bool neg;
    uint64_t mag;

    if (!scan_num(p, n, &neg, &mag)) {
        return false;
    }
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *out = (int64_t)(0 - mag);
    } else {
        if (mag > (uint64_t)INT64_MAX) {
            return false;
        }
        *out = (int64_t)mag;
    }
    return true;
}

static bool
tok_u64(const struct tok *t, uint64_t *out)
{
    return proto_strtou64(t->p, t->n, out);
}

/* memcached reads exptimes with strtol and keeps 32 bits of the result. */
static bool
tok_exptime(const struct tok *t, int64_t *out)
{
    int64_t v;

    if (!proto_strtoi64(t->p, t->n, &v)) {
        return false;
    }
    *out = (int32_t)(uint32_t)(uint64_t)v;
    return true;
}

static enum proto_status
fail(struct proto_req *req, const char *err)
{
    req->err = err;
    return PROTO_ERROR;
}

/* ---- base64 ---- */

static int
b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int
proto_b64_decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t i;
    size_t count = 0;
    size_t out = 0;
    unsigned pad = 0;
    int block[4];

    /* as memcached's base64_decode: bytes outside the alphabet are skipped,
     * what is left must be whole blocks of four, and the first block with
     * padding ('=' anywhere in it, at most two) ends the key */
    for (i = 0; i < n; i++) {
        if (src[i] == '=' || b64_val((unsigned char)src[i]) >= 0) {
            count++;
        }
    }
    if (count == 0 || count % 4 != 0 || count / 4 * 3 > cap) {
        return -1;
    }
    count = 0;
    for (i = 0; i < n; i++) {
        int v = src[i] == '=' ? 0 : b64_val((unsigned char)src[i]);

        if (v < 0) {
            continue;
        }
        if (src[i] == '=') {
            pad++;
        }
        block[count++] = v;
        if (count < 4) {
            continue;
        }
        dst[out++] = (char)((block[0] << 2) | (block[1] >> 4));
        dst[out++] = (char)((block[1] << 4) | (block[2] >> 2));
        dst[out++] = (char)((block[2] << 6) | block[3]);
        count = 0;
        if (pad > 2) {
            return -1;
        }
        if (pad > 0) {
            out -= pad;
            break;
        }
    }
    return (int)out;
}

int
proto_b64_encode(const void *src, size_t n, char *dst, size_t cap)
{
    static const char tab[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = src;
    size_t need = (n + 2) / 3 * 4;
    size_t i;
    size_t o = 0;

    if (need > cap || need > INT32_MAX) {
        return -1;
    }
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t w =
                ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];

        dst[o++] = tab[(w >> 18) & 63];
        dst[o++] = tab[(w >> 12) & 63];
        dst[o++] = tab[(w >> 6) & 63];
        dst[o++] = tab[w & 63];
    }
    if (i < n) {
        uint32_t w = (uint32_t)s[i] << 16;

        if (i + 1 < n) {
            w |= (uint32_t)s[i + 1] << 8;
        }
        dst[o++] = tab[(w >> 18) & 63];
        dst[o++] = tab[(w >> 12) & 63];
        dst[o++] = i + 1 < n ? tab[(w >> 6) & 63] : '=';
        dst[o++] = '=';
    }
    return (int)o;
}

/* ---- get lines ---- */

bool
proto_key_next(const struct proto_req *req, size_t *pos, const char **key,
               size_t *klen)
{
    size_t i = *pos;
    size_t s;

    while (i < req->keys_len && req->keys[i] == ' ') {
        i++;
    }
    if (i >= req->keys_len) {
        *pos = i;
        return false;
    }
    s = i;
    while (i < req->keys_len && req->keys[i] != ' ') {
        i++;
    }
    *key = req->keys + s;
    *klen = i - s;
    *pos = i;
    return true;
}

/* Keys of a get-like line start at `from`. A first key that is too long
 * is an error. memcached looks each key up before it reads the next one,
 * so a later key that is too long leaves the keys before it looked up (and
 * touched) and their replies dropped: the request then holds those keys
 * and keys_cut. */
static enum proto_status
parse_keys(struct proto_req *req, const char *from, const char *end)
{
    size_t pos = 0;
    size_t before = 0;
    const char *k;
    size_t kn;

    req->keys = from;
    req->keys_len = (size_t)(end - from);
    if (!proto_key_next(req, &pos, &k, &kn)) {
        return fail(req, ERR_ERROR);
    }
    req->key = k;
    req->klen = kn;
    req->raw_key = k;
    req->raw_klen = kn;
    do {
        if (kn > PROTO_KEY_MAX) {
            if (before == 0) {
                return fail(req, ERR_FORMAT);
            }
            req->keys_len = before;
            req->keys_cut = true;
            return PROTO_OK;
        }
        before = pos;
    } while (proto_key_next(req, &pos, &k, &kn));
    return PROTO_OK;
}

/* ---- data blocks ---- */

/* The line (line_len bytes with its '\n') announced a data block of
 * req->nbytes: hand it over if all of it is here. */
static enum proto_status swallow(struct proto_parser *p, struct proto_req *req,
                                 const char *err);

/* The data block after a storage command's line: wait for all of it, taking
 * its size from the budget the first time (refused: memcached's out of
 * memory, and the block dropped as it comes). */
static enum proto_status
take_data(struct proto_parser *p, struct proto_req *req, const char *buf,
          size_t len, size_t line_len, size_t *used)
{
    size_t need = line_len + (size_t)req->nbytes + 2;
    const char *d = buf + line_len;

    if (len < need) {
        if (!proto_budget_hold(p->budget, &p->held, need)) {
            /* as a refusal for size: memcached drops the old value of a
             * set, and of an ms in any mode */
            *used = line_len;
            req->unlink = req->cmd == PROTO_CMD_SET || req->cmd == PROTO_CMD_MS;
            req->nomem = true;
            return swallow(p, req, ERR_NOMEM);
        }
        p->wanted = need;
        *used = 0;
        return PROTO_NEED_MORE;
    }
    proto_parser_release(p);
    p->wanted = 0;
    *used = need;
    if (d[req->nbytes] != '\r' || d[req->nbytes + 1] != '\n') {
        req->bad_chunk = true;
        return fail(req, ERR_CHUNK);
    }
    req->data = d;
    return PROTO_OK;
}

/* A data block that is refused before it arrived: error now, drop it as it
 * comes (memcached's conn_swallow). */
static enum proto_status
swallow(struct proto_parser *p, struct proto_req *req, const char *err)
{
    p->swallow = (uint64_t)req->nbytes + 2;
    return fail(req, err);
}

/* ---- classic commands ---- */

static bool
last_is_noreply(const struct line *l)
{
    return l->n > 0 && tok_is(&l->t[l->n - 1], "noreply");
}

static void
set_key(struct proto_req *req, const struct tok *t)
{
    req->key = t->p;
    req->klen = t->n;
    req->raw_key = t->p;
    req->raw_klen = t->n;
}

/* What incr, decr and touch share, "<cmd> <key> <arg> [noreply]": the
 * count of tokens, noreply and the key; the argument is the caller's.
 * PROTO_OK, or the failure to return. */
static enum proto_status
key_and_arg(struct proto_req *req, const struct line *l)
{
    if (l->more || (l->n != 3 && l->n != 4)) {
        return fail(req, ERR_ERROR);
    }
    req->noreply = last_is_noreply(l);
    set_key(req, &l->t[1]);
    if (l->t[1].n > PROTO_KEY_MAX) {
        return fail(req, ERR_FORMAT);
    }
    return PROTO_OK;
}

static enum proto_status
parse_update(struct proto_parser *p, struct proto_req *req,
             const struct line *l, const char *buf, size_t len, size_t line_len,
             size_t *used)
{
    bool is_cas = req->cmd == PROTO_CMD_CAS;
    unsigned want = is_cas ? 6 : 5;
    uint64_t fl;
    int64_t vlen;

    if (l->more || (l->n != want && l->n != want + 1)) {
        return fail(req, ERR_ERROR);
    }
    req->noreply = last_is_noreply(l);
    set_key(req, &l->t[1]);
    if (l->t[1].n > PROTO_KEY_MAX) {
        return fail(req, ERR_FORMAT);
    }
    /* memcached keeps the low 32 bits of flags parsed as unsigned long */
    if (!tok_u64(&l->t[2], &fl) || !tok_exptime(&l->t[3], &req->exptime) ||
        !proto_strtoi64(l->t[4].p, l->t[4].n, &vlen)) {
        return fail(req, ERR_FORMAT);
    }
    req->flags = (uint32_t)fl;
    /* memcached keeps the low 32 bits of the length, then range-checks */
    vlen = (int32_t)(uint32_t)(uint64_t)vlen;
    if (vlen < 0 || vlen > INT32_MAX - 2) {
        return fail(req, ERR_FORMAT);
    }
    if (is_cas && !tok_u64(&l->t[5], &req->cas)) {
        return fail(req, ERR_FORMAT);
    }
    req->nbytes = (uint32_t)vlen;
    if (req->nbytes > p->item_max) {
        *used = line_len;
        req->unlink = req->cmd == PROTO_CMD_SET;
        return swallow(p, req, ERR_TOOBIG);
    }
    return take_data(p, req, buf, len, line_len, used);
}

/* args/args_len: the line after its first token and the blanks after it. */
static void
rest_of_line(struct proto_req *req, const struct line *l)
{
    if (l->n > 1) {
        req->args = l->t[1].p;
        req->args_len = (size_t)(l->end - l->t[1].p);
    } else {
        req->args = l->end;
        req->args_len = 0;
    }
}

static enum proto_status
parse_classic(struct proto_parser *p, struct proto_req *req,
              const struct line *l, const char *buf, size_t len,
              size_t line_len, size_t *used)
{
    const struct tok *c = &l->t[0];
    size_t n = c->n;
    const char *s = c->p;

    *used = line_len;
    /* bget: memcached's ancient name for get, still served */
    if ((n == 3 && memcmp(s, "get", 3) == 0) ||
        (n == 4 && memcmp(s, "gets", 4) == 0) ||
        (n == 4 && memcmp(s, "bget", 4) == 0)) {
        req->cmd = n == 3 || s[0] == 'b' ? PROTO_CMD_GET : PROTO_CMD_GETS;
        if (l->n < 2) {
            return fail(req, ERR_ERROR);
        }
        return parse_keys(req, l->t[1].p, l->end);
    }
    if ((n == 3 && memcmp(s, "gat", 3) == 0) ||
        (n == 4 && memcmp(s, "gats", 4) == 0)) {
        req->cmd = n == 3 ? PROTO_CMD_GAT : PROTO_CMD_GATS;
        if (l->n < 2) {
            return fail(req, ERR_ERROR);
        }
        if (!tok_exptime(&l->t[1], &req->exptime)) {
            return fail(req, ERR_EXPTIME);
        }
        /* "gat <exptime>" with no key at all is an empty hit list */
        if (l->n < 3) {
            req->keys = l->end;
            return PROTO_OK;
        }
        return parse_keys(req, l->t[2].p, l->end);
    }
    if (tok_is(c, "set") || tok_is(c, "add") || tok_is(c, "replace") ||
        tok_is(c, "append") || tok_is(c, "prepend") || tok_is(c, "cas")) {
        switch (s[0]) {
        case 's':
            req->cmd = PROTO_CMD_SET;
            break;
        case 'a':
            req->cmd = s[1] == 'd' ? PROTO_CMD_ADD : PROTO_CMD_APPEND;
            break;
        case 'r':
            req->cmd = PROTO_CMD_REPLACE;
            break;
        case 'p':
            req->cmd = PROTO_CMD_PREPEND;
            break;
        default:
            req->cmd = PROTO_CMD_CAS;
            break;
        }
        return parse_update(p, req, l, buf, len, line_len, used);
    }
    if (tok_is(c, "delete")) {
        req->cmd = PROTO_CMD_DELETE;
        if (l->more || l->n < 2 || l->n > 4) {
            return fail(req, ERR_ERROR);
        }
        set_key(req, &l->t[1]);
        /* memcached checks the extra tokens (and sees noreply) before the
         * key's length */
        if (l->n > 2) {
            bool zero = tok_is(&l->t[2], "0");
            bool valid;

            req->noreply = last_is_noreply(l);
            valid = (l->n == 3 && (zero || req->noreply)) ||
                    (l->n == 4 && zero && req->noreply);
            if (!valid) {
                return fail(req, ERR_DELETE);
            }
        }
        if (l->t[1].n > PROTO_KEY_MAX) {
            return fail(req, ERR_FORMAT);
        }
        return PROTO_OK;
    }
    if (tok_is(c, "incr") || tok_is(c, "decr")) {
        req->cmd = s[0] == 'i' ? PROTO_CMD_INCR : PROTO_CMD_DECR;
        enum proto_status st = key_and_arg(req, l);
        if (st != PROTO_OK) {
            return st;
        }
        if (!tok_u64(&l->t[2], &req->delta)) {
            return fail(req, ERR_DELTA);
        }
        return PROTO_OK;
    }
    if (tok_is(c, "touch")) {
        req->cmd = PROTO_CMD_TOUCH;
        enum proto_status st = key_and_arg(req, l);
        if (st != PROTO_OK) {
            return st;
        }
        if (!tok_exptime(&l->t[2], &req->exptime)) {
            return fail(req, ERR_EXPTIME);
        }
        return PROTO_OK;
    }
    if (tok_is(c, "flush_all")) {
        req->cmd = PROTO_CMD_FLUSH_ALL;
        if (l->more || l->n > 3) {
            return fail(req, ERR_ERROR);
        }
        req->noreply = last_is_noreply(l);
        if (l->n == (req->noreply ? 2u : 1u)) {
            return PROTO_OK;
        }
        req->has_delay = true;
        if (!tok_exptime(&l->t[1], &req->delay)) {
            return fail(req, ERR_EXPTIME);
        }
        return PROTO_OK;
    }
    if (tok_is(c, "stats")) {
        req->cmd = PROTO_CMD_STATS;
        rest_of_line(req, l);
        return PROTO_OK;
    }
    if (tok_is(c, "version")) {
        req->cmd = PROTO_CMD_VERSION;
        return PROTO_OK;
    }
    if (tok_is(c, "verbosity")) {
        uint64_t v;

        req->cmd = PROTO_CMD_VERBOSITY;
        if (l->more || l->n < 2 || l->n > 3) {
            return fail(req, ERR_ERROR);
        }
        req->noreply = last_is_noreply(l);
        if (!tok_u64(&l->t[1], &v)) {
            return fail(req, ERR_FORMAT);
        }
        req->level = v > 0xffffffffu ? 0xffffffffu : (unsigned)v;
        return PROTO_OK;
    }
    if (tok_is(c, "quit")) {
        req->cmd = PROTO_CMD_QUIT;
        return PROTO_OK;
    }
    if (tok_is(c, "shutdown")) {
        req->cmd = PROTO_CMD_SHUTDOWN;
        rest_of_line(req, l);
        return PROTO_OK;
    }
    if (tok_is(c, "lru_crawler") || tok_is(c, "lru") || tok_is(c, "slabs") ||
        tok_is(c, "cache_memlimit") || tok_is(c, "watch") ||
        tok_is(c, "refresh_certs") || tok_is(c, "replica_of")) {
        req->cmd = PROTO_CMD_ADMIN;
        req->key = req->raw_key = c->p;
        req->klen = req->raw_klen = c->n;
        rest_of_line(req, l);
        return PROTO_OK;
    }
    /* memcached hangs up on what looks like an HTTP request line */
    if (l->n >= 2 && l->t[l->n - 1].n >= 5 &&
        memcmp(l->t[l->n - 1].p, "HTTP/", 5) == 0) {
        return PROTO_CLOSE;
    }
    return fail(req, ERR_ERROR);
}

/* ---- meta commands ---- */

/* The flags memcached 1.6.18 knows. Every meta command takes all of them
 * (one shared pass checks them) and ignores those that mean nothing to it. */
static const char META_FLAGS[] = "bNTRlOPLkstcfvhuqFCMJDI";

static enum proto_status
parse_meta(struct proto_parser *p, struct proto_req *req, const struct line *l,
           const char *buf, size_t len, size_t line_len, size_t *used)
{
    char which = l->t[0].p[1];
    const char *dup_err = ERR_DUPFLAG;
    const char *bad_err = ERR_BADFLAG;
    const char *tok_err = ERR_BADTOK;
    const char *noted = NULL;
    bool bad_F = false;
    unsigned first = 2;
    uint32_t seen[2] = {0, 0};
    unsigned i;

    *used = line_len;
    switch (which) {
    case 'n':
        req->cmd = PROTO_CMD_MN;
        return PROTO_OK;
    case 'g':
        req->cmd = PROTO_CMD_MG;
        break;
    case 's':
        req->cmd = PROTO_CMD_MS;
        first = 3;
        break;
    case 'd':
        req->cmd = PROTO_CMD_MD;
        dup_err = bad_err = tok_err = ERR_INVDUP;
        break;
    case 'a':
        req->cmd = PROTO_CMD_MA;
        dup_err = bad_err = tok_err = ERR_INVDUP;
        break;
    case 'e':
        req->cmd = PROTO_CMD_ME;
        if (l->n < 2 || l->t[1].n > PROTO_KEY_MAX) {
            return fail(req, ERR_FORMAT);
        }
        set_key(req, &l->t[1]);
        /* memcached decodes the key when the token after it is exactly
         * "b" (later tokens are ignored), and refuses one that does not
         * decode with the command line error, not mg's */
        if (l->n >= 3 && l->t[2].n == 1 && l->t[2].p[0] == 'b') {
            int n = proto_b64_decode(req->raw_key, req->raw_klen, req->keybuf,
                                     sizeof(req->keybuf) - 1);

            if (n <= 0) {
                return fail(req, ERR_FORMAT);
            }
            req->key = req->keybuf;
            req->klen = (size_t)n;
            req->key_b64 = true;
        }
        return PROTO_OK;
    default:
        return fail(req, ERR_ERROR);
    }
    if (l->n < 2) {
        return fail(req, ERR_ERROR);
    }
    set_key(req, &l->t[1]);
    if (l->t[1].n > PROTO_KEY_MAX) {
        return fail(req, ERR_FORMAT);
    }
    if (req->cmd == PROTO_CMD_MS && l->n < 3) {
        return fail(req, ERR_FORMAT);
    }
    /* memcached refuses 20 tokens or more (its MFLAG_MAX_OPT_LENGTH), before
     * it reads the ms length: no data block is dropped */
    if (l->more || l->n >= META_MAX_TOKENS) {
        return fail(req,
                    req->cmd == PROTO_CMD_MG ? ERR_TOOMANY_MG : ERR_TOOMANY);
    }
    if (req->cmd == PROTO_CMD_MS) {
        int64_t vlen;

        if (!proto_strtoi64(l->t[2].p, l->t[2].n, &vlen)) {
            return fail(req, ERR_FORMAT);
        }
        vlen = (int32_t)(uint32_t)(uint64_t)vlen;
        if (vlen < 0 || vlen > INT32_MAX - 2) {
            return fail(req, ERR_FORMAT);
        }
        req->nbytes = (uint32_t)vlen;
    }
    /* memcached checks in stages, and the stage decides which error is
     * reported: one pass over the flags in order, where an unknown or
     * repeated letter stops at once while a bad numeric token or an
     * undecodable base64 key is noted and the last one noted wins; then the
     * client flags (ms F), then modes (M), then the opaque length. */
    for (i = first; i < l->n; i++) {
        const struct tok *t = &l->t[i];
        unsigned char f = (unsigned char)t->p[0];
        struct proto_mflag *m;
        int64_t v;
        uint64_t u;

        /* memcached's order: a byte from 127 up counts as a repeat */
        if (f >= 127) {
            req->err = dup_err;
            goto error;
        }
        if (f < 64 || strchr(META_FLAGS, f) == NULL) {
            req->err = bad_err;
            goto error;
        }
        if (seen[(f - 64) / 32] & (1u << ((f - 64) % 32))) {
            req->err = dup_err;
            goto error;
        }
        seen[(f - 64) / 32] |= 1u << ((f - 64) % 32);
        if (t->n - 1 > 255) {
            req->err = tok_err;
            goto error;
        }
        m = &req->mflags[req->nmflags++];
        m->flag = (char)f;
        m->tok = t->p + 1;
        m->len = (uint8_t)(t->n - 1);
        if ((f == 'C' && !proto_strtou64(m->tok, m->len, &u)) ||
            (strchr("NRT", f) != NULL && !proto_strtoi64(m->tok, m->len, &v))) {
            noted = tok_err;
        } else if (f == 'J' && !proto_strtou64(m->tok, m->len, &u)) {
            noted = tok_err == ERR_BADTOK ? ERR_INITIAL : tok_err;
        } else if (f == 'D' && !proto_strtou64(m->tok, m->len, &u)) {
            noted = tok_err == ERR_BADTOK ? ERR_DELTAV : tok_err;
        } else if (f == 'M' && m->len != 1) {
            noted = tok_err == ERR_BADTOK ? ERR_MLEN : tok_err;
        } else if (f == 'F' && !proto_strtou64(m->tok, m->len, &u)) {
            /* noted without a message of its own: the command's default */
            bad_F = true;
        } else if (f == 'q') {
            req->noreply = true;
        } else if (f == 'b') {
            int n = proto_b64_decode(req->raw_key, req->raw_klen, req->keybuf,
                                     sizeof(req->keybuf) - 1);

            req->key_b64 = true;
            if (n <= 0 || (unsigned)n > PROTO_KEY_MAX) {
                noted = tok_err == ERR_BADTOK ? ERR_B64 : tok_err;
            } else {
                req->key = req->keybuf;
                req->klen = (size_t)n;
            }
        }
    }
    if (noted != NULL) {
        req->err = noted;
        goto error;
    }
    if (bad_F) {
        req->err = tok_err == ERR_BADTOK ? ERR_FORMAT : tok_err;
        goto error;
    }
    for (i = 0; i < req->nmflags; i++) {
        const struct proto_mflag *m = &req->mflags[i];
        /* memcached takes the mode letters in upper case only; mg and md
         * ignore a mode */
        const char *modes = req->cmd == PROTO_CMD_MS ? "EAPRS" : "ID+-";

        if (m->flag == 'M' &&
            (req->cmd == PROTO_CMD_MS || req->cmd == PROTO_CMD_MA) &&
            (m->tok[0] == '\0' || strchr(modes, m->tok[0]) == NULL)) {
            req->err = req->cmd == PROTO_CMD_MS ? ERR_MSMODE : ERR_MAMODE;
            goto error;
        }
    }
    /* memcached's mg and ma check the opaque only as they write their
     * reply, after their work: the server does (proto_mflag_opaque_long) */
    if (req->cmd != PROTO_CMD_MG && req->cmd != PROTO_CMD_MA &&
        proto_mflag_opaque_long(req) >= 0) {
        req->err = ERR_OPAQUE;
        goto error;
    }
    if (req->cmd == PROTO_CMD_MS) {
        if (req->nbytes > p->item_max) {
            /* as set: memcached drops the old value (any mode) */
            req->unlink = true;
            return swallow(p, req, ERR_TOOBIG);
        }
        return take_data(p, req, buf, len, line_len, used);
    }
    return PROTO_OK;

error:
    /* ms has announced a data block: drop it with the request */
    if (req->cmd == PROTO_CMD_MS) {
        return swallow(p, req, req->err);
    }
    return PROTO_ERROR;
}

/* ---- entry point ---- */

/* Does buf[0..len) start a get/gets line, as memcached tells one (at most
 * 100 spaces before it)? */
static bool
is_get_line(const char *buf, size_t len)
{
    size_t i = 0;

    while (i < len && buf[i] == ' ') {
        i++;
    }
    return i <= 100 && ((len - i > 4 && memcmp(buf + i, "get ", 4) == 0) ||
                        (len - i > 5 && memcmp(buf + i, "gets ", 5) == 0));
}

/* A line with no '\n' yet: wait, unless it is already longer than memcached
 * tolerates. Only get/gets lines may grow past PROTO_LINE_MAX, up to
 * PROTO_MULTIGET_MAX; past that the connection gets the line memcached
 * writes when it cannot grow its read buffer for one, then is closed. */
static enum proto_status
no_newline(struct proto_req *req, const char *buf, size_t len)
{
    req->err = NULL;
    if (len <= PROTO_LINE_MAX) {
        return PROTO_NEED_MORE;
    }
    if (is_get_line(buf, len)) {
        if (len <= PROTO_MULTIGET_MAX) {
            return PROTO_NEED_MORE;
        }
        req->err = ERR_NOMEM_READ;
    }
    return PROTO_CLOSE;
}

enum proto_status
proto_parse(struct proto_parser *p, struct proto_req *req, const char *buf,
            size_t len, size_t *used)
{
    const char *nl;
    const char *nul;
    const char *end;
    size_t line_len;
    struct line l;

    req->cmd = PROTO_CMD_NONE;
    req->err = NULL;
    req->noreply = false;
    req->unlink = false;
    req->nomem = false;
    req->bad_chunk = false;
    req->keys_cut = false;
    req->key = req->raw_key = req->keys = req->data = req->args = NULL;
    req->klen = req->raw_klen = req->keys_len = req->args_len = 0;
    req->nbytes = 0;
    req->has_delay = false;
    req->key_b64 = false;
    req->nmflags = 0;
    req->flags = 0;
    req->exptime = 0;
    req->cas = 0;
    req->delta = 0;
    req->delay = 0;
    req->level = 0;
    *used = 0;

    if (p->swallow > 0) {
        size_t n = len < p->swallow ? len : (size_t)p->swallow;

        if (n == 0) {
            return PROTO_NEED_MORE;
        }
        p->swallow -= n;
        *used = n;
        return PROTO_SWALLOW;
    }
    nl = len > 0 ? memchr(buf, '\n', len) : NULL;
    if (nl == NULL) {
        p->wanted = 0;
        return no_newline(req, buf, len);
    }
    line_len = (size_t)(nl - buf) + 1;
    if (line_len > PROTO_MULTIGET_MAX && is_get_line(buf, line_len - 1)) {
        /* the same limit whether the line came whole or in pieces */
        req->err = ERR_NOMEM_READ;
        return PROTO_CLOSE;
    }
    end = nl;
    if (end - buf > 1 && end[-1] == '\r') {
        end--;
    }
    /* memcached reads the line as a C string: a NUL ends it there */
    nul = memchr(buf, '\0', (size_t)(end - buf));
    if (nul != NULL) {
        end = nul;
    }
    tokenize(&l, buf, end);
    /* every command has at least two letters */
    if (l.n == 0 || l.t[0].n < 2) {
        *used = line_len;
        return fail(req, ERR_ERROR);
    }
    if (l.t[0].p[0] == 'm' && l.t[0].n == 2) {
        return parse_meta(p, req, &l, buf, len, line_len, used);
    }
    return parse_classic(p, req, &l, buf, len, line_len, used);
}

int
proto_mflag_opaque_long(const struct proto_req *req)
{
    for (unsigned i = 0; i < req->nmflags; i++) {
        /* memcached counts the O itself */
        if (req->mflags[i].flag == 'O' &&
            req->mflags[i].len + 1u > PROTO_OPAQUE_MAX) {
            return (int)i;
        }
    }
    return -1;
}

const struct proto_mflag *
proto_mflag_find(const struct proto_req *req, char f)
{
    unsigned i;

    for (i = 0; i < req->nmflags; i++) {
        if (req->mflags[i].flag == f) {
            return &req->mflags[i];
        }
    }
    return NULL;
}
