/* cmd_bin.c - runs memcached binary-protocol requests against the store
 * (implements cmd_bin.h). Parsing and framing rules live in
 * protocol/proto_bin.c; this file maps each command onto the same store
 * calls and counters as the text commands of cmd.c, and builds memcached's
 * response packets (status, error text, extras, key, value, cas, opaque).
 * Owns only the per-connection binary state; SASL checks go to sasl.c.
 */
#include "server/cmd_bin.h"

#include "protocol/proto_bin.h"
#include "server/cmd.h"
#include "server/cmd_admin.h"
#include "server/cmd_meta.h"
#include "server/prefix_stats.h"
#include "server/sasl.h"
#include "storage/cask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values up to this size are copied next to their header instead of being
 * handed to the sink as a buffer of their own. */
#define INLINE_VALUE_MAX 512
_Static_assert(CMD_READ_BORROW_MAX <= INLINE_VALUE_MAX,
               "a borrowed value is copied next to its header");
/* incr/decr: memcached's "do not create" expiry. */
#define ARITH_NO_CREATE 0xffffffffu

void
cmd_bin_init(struct cmd_bin *b, const struct cmd_conn *cc,
             const char *sasl_pwdb)
{
    memset(b, 0, sizeof(*b));
    proto_bin_parser_init(&b->parser, cc->env->item_max);
    b->parser.budget = cc->env->in_budget;
    b->sasl_pwdb = sasl_pwdb;
    b->parser.sasl = sasl_pwdb != NULL;
}

void
cmd_bin_deinit(struct cmd_bin *b)
{
    proto_bin_parser_release(&b->parser);
}

size_t
cmd_bin_wanted(const struct cmd_bin *b)
{
    return b->parser.wanted;
}

bool
cmd_bin_swallowing(const struct cmd_bin *b)
{
    return b->parser.swallow > 0;
}

static void
emit(struct cmd_conn *cc, const void *p, size_t n)
{
    cc->out.bytes(cc->out.arg, p, n);
}

/* One response packet: header, extras, key, then body bytes. */
static void
respond(struct cmd_conn *cc, const struct proto_bin_req *req, uint16_t status,
        const void *ext, uint8_t extlen, const void *key, uint16_t klen,
        const void *body, uint32_t blen, uint64_t cas)
{
    unsigned char h[PROTO_BIN_HDR_LEN];

    if (cc->env->cas_disabled) {
        cas = 0; /* -C: memcached's items have none */
    }
    proto_bin_fmt_hdr(h, req->opcode, status, extlen, klen,
                      (uint32_t)extlen + klen + blen, req->opaque, cas);
    emit(cc, h, sizeof(h));
    if (extlen > 0) {
        emit(cc, ext, extlen);
    }
    if (klen > 0) {
        emit(cc, key, klen);
    }
    if (blen > 0) {
        emit(cc, body, blen);
    }
}

/* memcached's error packet: the status and its text, cas 0. Sent even for
 * quiet commands. */
static void
respond_error(struct cmd_conn *cc, const struct proto_bin_req *req,
              uint16_t status)
{
    const char *s = proto_bin_errstr(status);

    respond(cc, req, status, NULL, 0, NULL, 0, s, (uint32_t)strlen(s), 0);
}

static bool
is_store(uint8_t cmd)
{
    return cmd == PROTO_BIN_SET || cmd == PROTO_BIN_ADD ||
           cmd == PROTO_BIN_REPLACE || cmd == PROTO_BIN_APPEND ||
           cmd == PROTO_BIN_PREPEND;
}

/* A value memcached found no memory for: its status, and the body its
 * binary storage commands give it. */
static void
respond_nomem_store(struct cmd_conn *cc, const struct proto_bin_req *req)
{
    static const char s[] = "Out of memory allocating item";

    respond(cc, req, PROTO_BIN_ENOMEM, NULL, 0, NULL, 0, s, sizeof(s) - 1, 0);
}

/* A store error with no protocol meaning (I/O failure, corruption). */
static void
respond_store_error(struct cmd_conn *cc, const struct proto_bin_req *req,
                    int err)
{
    const char *s = cask_strerror(err);

    if (err == CASK_ENOMEM) { /* -M and a full cache: memcached's status */
        respond_error(cc, req, PROTO_BIN_ENOMEM);
        return;
    }
    respond(cc, req, PROTO_BIN_EINTERNAL, NULL, 0, NULL, 0, s,
            (uint32_t)strlen(s), 0);
}

/* Success without extras or body, unless the command is quiet. */
static void
respond_ok(struct cmd_conn *cc, const struct proto_bin_req *req, uint64_t cas)
{
    if (!req->quiet) {
        respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, NULL, 0, cas);
    }
}

static enum cmd_status
do_get(struct cmd_conn *cc, const struct proto_bin_req *req)
{
    bool touch = req->cmd == PROTO_BIN_TOUCH || req->cmd == PROTO_BIN_GAT ||
                 req->cmd == PROTO_BIN_GATK;
    bool with_key = req->cmd == PROTO_BIN_GETK || req->cmd == PROTO_BIN_GATK;
    bool with_val = req->cmd != PROTO_BIN_TOUCH;
    struct cask_item it;
    char *val = NULL;
    struct cask_vref ref = {.fd = -1};
    int rc;

    memset(&it, 0, sizeof(it));
    if (touch) {
        /* gat: the value read first, off the thread when cold, then the
         * item read is touched */
        bool was = cmd_park_begin(cc);
        rc = cmd_read_touch(cc, req->key, req->klen,
                            cmd_exp_abs(cc->env, req->exptime), &it,
                            with_val ? &val : NULL, true);
        cmd_park_end(was);
        if (rc == CMD_READ_PARK || cmd_parked(cc, rc)) {
            return CMD_PARK; /* nothing touched or counted: it runs again */
        }
        cc->ctr->cmd_touch++;
        cmd_watch_get(cc, req->key, req->klen, rc, &it);
    } else {
        /* a large value may come as a reference the sink sends as is */
        rc = cmd_read_get_ref(cc, req->key, req->klen, &it, &val,
                              cc->out.value_ref != NULL ? &ref : NULL, true);
        if (rc == CMD_READ_PARK) {
            return CMD_PARK; /* nothing counted: it runs again */
        }
        cc->ctr->cmd_get++;
        cmd_watch_get(cc, req->key, req->klen, rc, &it);
    }
    prefix_stats_get(req->key, req->klen, rc == CASK_OK);
    if (rc == CASK_OK) {
        unsigned char pkt[PROTO_BIN_HDR_LEN + 4 + PROTO_BIN_KEY_MAX +
                          INLINE_VALUE_MAX];
        uint16_t klen = with_key ? (uint16_t)req->klen : 0;
        uint32_t vlen = with_val ? it.vlen : 0;
        size_t n = PROTO_BIN_HDR_LEN + 4 + klen;

        cmd_admin_count_hit(cc, req->klen, &it, touch);
        proto_bin_fmt_hdr(pkt, req->opcode, PROTO_BIN_SUCCESS, 4, klen,
                          4 + klen + vlen, req->opaque,
                          cc->env->cas_disabled ? 0 : it.cas);
        proto_bin_put32(pkt + PROTO_BIN_HDR_LEN, it.flags);
        memcpy(pkt + PROTO_BIN_HDR_LEN + 4, req->key, klen);
        if (ref.seg != NULL) {
            emit(cc, pkt, n);
            cc->out.value_ref(cc->out.arg, &ref);
        } else if (vlen <= INLINE_VALUE_MAX) {
            if (vlen > 0) {
                memcpy(pkt + n, val, vlen);
            }
            emit(cc, pkt, n + vlen);
            cmd_read_free(val);
        } else {
            emit(cc, pkt, n);
            cc->out.value(cc->out.arg, val, vlen);
        }
        return CMD_DONE;
    }
    /* never hand out bytes that failed their checksum: a damaged record is
     * a miss, as the text get answers it; an I/O error (or a touch that
     * could not be written) is an error, never taken for an absent key */
    cmd_read_free(val);
    if (rc != CASK_ENOTFOUND && rc != CASK_ECORRUPT) {
        respond_store_error(cc, req, rc);
        return CMD_DONE;
    }
    if (touch) {
        cc->ctr->touch_misses++;
    } else {
        cc->ctr->get_misses++;
        if (rc != CASK_ENOTFOUND) {
            cc->ctr->get_corrupt++;
        } else if (it.gone == CASK_GONE_EXPIRED) {
            cc->ctr->get_expired++;
        } else if (it.gone == CASK_GONE_FLUSHED) {
            cc->ctr->get_flushed++;
        }
    }
    if (req->quiet) {
        return CMD_DONE;
    }
    if (with_key) {
        /* a keyed miss carries the key and no error text */
        respond(cc, req, PROTO_BIN_KEY_ENOENT, NULL, 0, req->key,
                (uint16_t)req->klen, NULL, 0, 0);
    } else {
        respond_error(cc, req, PROTO_BIN_KEY_ENOENT);
    }
    return CMD_DONE;
}

static enum cmd_status
do_store(struct cmd_conn *cc, const struct proto_bin_req *req)
{
    enum cask_store_mode mode = CASK_SET;
    /* -C: memcached's stores ignore a cas (its items have none) */
    uint64_t cas_in = cc->env->cas_disabled ? 0 : req->cas;
    bool is_cas = false;
    uint64_t cas_out = 0;
    int64_t exp = 0;
    uint16_t status;
    int rc;

    switch (req->cmd) {
    case PROTO_BIN_ADD:
        mode = CASK_ADD;
        break;
    case PROTO_BIN_REPLACE:
        mode = CASK_REPLACE;
        break;
    case PROTO_BIN_APPEND:
        mode = CASK_APPEND;
        break;
    case PROTO_BIN_PREPEND:
        mode = CASK_PREPEND;
        break;
    default:
        break;
    }
    /* memcached: a cas on set, add or replace makes it a cas command;
     * append and prepend keep their mode and compare it too */
    if (cas_in != 0 && (mode == CASK_ADD || mode == CASK_REPLACE)) {
        mode = CASK_SET;
    }
    if (cas_in != 0 && mode == CASK_SET) {
        is_cas = true;
    }
    if (mode != CASK_APPEND && mode != CASK_PREPEND) {
        exp = cmd_exp_abs(cc->env, req->exptime);
    }
    struct cmd_class_counters *k =
            cmd_admin_cls(cc, req->klen, req->vlen, req->flags);
    struct cmd_watch_pre wpre;
    cmd_watch_take(cc, req->key, req->klen, &wpre);
    rc = cask_store(cc->env->store, mode, req->key, req->klen, req->val,
                    req->vlen, req->flags, exp, cas_in, &cas_out);
    if (cmd_parked(cc, rc)) {
        return CMD_PARK; /* nothing stored or counted: it runs again */
    }
    cmd_watch_log(cc, req->key, req->klen, &wpre);
    cmd_watch_store(cc, req->key, req->klen, req->vlen, req->flags, mode,
                    is_cas, rc, exp);
    cc->ctr->cmd_set++;
    k->cmd_set++;
    prefix_stats_set(req->key, req->klen);
    switch (rc) {
    case CASK_OK:
        cmd_meta_forget(cc->env->meta, req->key, req->klen, cas_out);
        cc->ctr->total_items++;
        if (cas_in != 0) {
            cc->ctr->cas_hits++;
            k->cas_hits++;
        }
        respond_ok(cc, req, cas_out);
        return CMD_DONE;
    case CASK_EEXISTS:
        cc->ctr->cas_badval++;
        k->cas_badval++;
        status = PROTO_BIN_KEY_EEXISTS;
        break;
    case CASK_ENOTFOUND:
        if (mode == CASK_APPEND || mode == CASK_PREPEND) {
            /* append/prepend with a cas on a missing key: not stored */
            status = PROTO_BIN_NOT_STORED;
            break;
        }
        cc->ctr->cas_misses++;
        status = PROTO_BIN_KEY_ENOENT;
        break;
    case CASK_ENOTSTORED:
    case CASK_ETOOBIG:
        if (rc == CASK_ETOOBIG) {
            cc->ctr->store_too_large++;
        }
        /* memcached's mapping of "not stored" by command */
        if (req->cmd == PROTO_BIN_ADD) {
            status = PROTO_BIN_KEY_EEXISTS;
        } else if (req->cmd == PROTO_BIN_REPLACE) {
            status = PROTO_BIN_KEY_ENOENT;
        } else {
            status = PROTO_BIN_NOT_STORED;
        }
        break;
    default:
        if (rc == CASK_ENOMEM) {
            cc->ctr->store_no_memory++;
            k->outofmemory++;
            respond_nomem_store(cc, req);
            return CMD_DONE;
        }
        respond_store_error(cc, req, rc);
        return CMD_DONE;
    }
    respond_error(cc, req, status);
    return CMD_DONE;
}

/* A delete's or an increment's cas other than 0 under -C: CASK_EEXISTS for
 * an item (CASK_ENONNUMERIC for an increment of an empty value, which
 * memcached checks first), else CASK_ENOTFOUND. */
static int
cas_mismatch(struct cmd_conn *cc, const struct proto_bin_req *req)
{
    struct cask_item it;
    int rc = cask_get(cc->env->store, req->key, req->klen, &it, NULL);

    if (rc != CASK_OK) {
        return rc;
    }
    if (req->cmd != PROTO_BIN_DELETE && it.vlen == 0) {
        return CASK_ENONNUMERIC;
    }
    return CASK_EEXISTS;
}

static enum cmd_status
do_delete(struct cmd_conn *cc, const struct proto_bin_req *req)
{
    struct cask_item gone = {0};
    int rc;

    struct cmd_watch_pre wpre;
    cmd_watch_take(cc, req->key, req->klen, &wpre);
    if (cc->env->cas_disabled && req->cas != 0) {
        /* -C: memcached's items have cas 0, which no other cas matches */
        rc = cas_mismatch(cc, req);
    } else {
        rc = cask_delete_item(cc->env->store, req->key, req->klen, req->cas,
                              &gone);
    }
    if (cmd_parked(cc, rc)) {
        return CMD_PARK;
    }
    cmd_watch_log(cc, req->key, req->klen, &wpre);
    prefix_stats_delete(req->key, req->klen);

    switch (rc) {
    case CASK_OK:
        cmd_meta_forget(cc->env->meta, req->key, req->klen, 0);
        cc->ctr->delete_hits++;
        cmd_admin_cls(cc, req->klen, gone.vlen, gone.flags)->delete_hits++;
        respond_ok(cc, req, 0);
        break;
    case CASK_ENOTFOUND:
        cc->ctr->delete_misses++;
        respond_error(cc, req, PROTO_BIN_KEY_ENOENT);
        break;
    case CASK_EEXISTS:
        respond_error(cc, req, PROTO_BIN_KEY_EEXISTS);
        break;
    default:
        respond_store_error(cc, req, rc);
        break;
    }
    return CMD_DONE;
}

static enum cmd_status
do_arith(struct cmd_conn *cc, const struct proto_bin_req *req)
{
    bool incr = req->cmd == PROTO_BIN_INCREMENT;
    struct cask_arith a;
    struct cask_item it;
    unsigned char body[8];
    uint64_t v = 0;
    int rc;

    memset(&a, 0, sizeof(a));
    memset(&it, 0, sizeof(it));
    a.incr = incr;
    a.delta = req->delta;
    a.cas_in = req->cas;
    if (req->exptime != ARITH_NO_CREATE) {
        a.vivify = true;
        a.initial = req->initial;
        a.vivify_exp_abs_s = cmd_exp_abs(cc->env, req->exptime);
    }
    struct cmd_watch_pre wpre;
    cmd_watch_take(cc, req->key, req->klen, &wpre);
    rc = CASK_ENOTFOUND;
    if (cc->env->cas_disabled && a.cas_in != 0) {
        /* -C: a missing item is created (or not) as without a cas */
        rc = cas_mismatch(cc, req);
        a.cas_in = 0;
    }
    if (rc == CASK_ENOTFOUND) {
        rc = cask_arith(cc->env->store, req->key, req->klen, &a, &v, &it);
    }
    if (rc == CASK_ENOTFOUND && a.vivify &&
        (a.cas_in != 0 || a.vivify_exp_abs_s <= cmd_now_s(cc->env))) {
        /* memcached creates a missing item with the initial value whatever
         * the cas, and answers it (and the new cas) even when its expiry
         * is already past, the item expired at once */
        char num[24];
        int n = snprintf(num, sizeof(num), "%llu",
                         (unsigned long long)a.initial);
        uint64_t cas = 0;

        rc = cask_store(cc->env->store, CASK_ADD, req->key, req->klen, num,
                        (size_t)n, 0, a.vivify_exp_abs_s, 0, &cas);
        if (rc == CASK_ENOTSTORED) {
            /* another client made it first: the cas applies to that one */
            rc = cask_arith(cc->env->store, req->key, req->klen, &a, &v, &it);
        } else if (rc == CASK_OK) {
            it.cas = cas;
            it.vlen = (uint32_t)n;
            it.arith_made = CASK_ARITH_CREATED;
            v = a.initial;
        }
    }
    if (cmd_parked(cc, rc)) {
        return CMD_PARK;
    }
    cmd_watch_log(cc, req->key, req->klen, &wpre);
    if (rc == CASK_EEXISTS && cmd_admin_chunked(cc->env, req->key, req->klen)) {
        rc = CASK_ENONNUMERIC;
    }
    switch (rc) {
    case CASK_OK:
        cmd_meta_forget(cc->env->meta, req->key, req->klen, it.cas);
        /* memcached: an item made from the initial value is stored, not
         * incremented; a longer number is a new item, and still a hit */
        if (it.arith_made != CASK_ARITH_REWRITTEN) {
            cc->ctr->total_items++;
        }
        if (it.arith_made == CASK_ARITH_CREATED) {
            /* made, not incremented */
            cmd_watch_created(cc, req->key, req->klen, it.vlen,
                              a.vivify_exp_abs_s);
        } else if (incr) {
            cc->ctr->incr_hits++;
            cmd_admin_cls(cc, req->klen, it.vlen, it.flags)->incr_hits++;
        } else {
            cc->ctr->decr_hits++;
            cmd_admin_cls(cc, req->klen, it.vlen, it.flags)->decr_hits++;
        }
        if (!req->quiet) {
            proto_bin_put64(body, v);
            respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, body,
                    sizeof(body), it.cas);
        }
        break;
    case CASK_ENOTFOUND:
        if (incr) {
            cc->ctr->incr_misses++;
        } else {
            cc->ctr->decr_misses++;
        }
        respond_error(cc, req, PROTO_BIN_KEY_ENOENT);
        break;
    case CASK_EEXISTS:
        respond_error(cc, req, PROTO_BIN_KEY_EEXISTS);
        break;
    case CASK_ENONNUMERIC:
        respond_error(cc, req, PROTO_BIN_DELTA_BADVAL);
        break;
    default:
        respond_store_error(cc, req, rc);
        break;
    }
    return CMD_DONE;
}

/* Parks until the state file write is durable, as the text one does. */
static enum cmd_status
do_flush(struct cmd_conn *cc, const struct proto_bin_req *req)
{
    int64_t at = cmd_now_s(cc->env);
    int rc;

    if (req->exptime > 0) {
        at = cmd_exp_abs(cc->env, req->exptime);
    }
    if (cmd_flush_parks(cc, at, &rc)) {
        return CMD_PARK;
    }
    cc->ctr->cmd_flush++;
    if (rc != CASK_OK) {
        respond_store_error(cc, req, rc);
        return CMD_DONE;
    }
    respond_ok(cc, req, 0);
    return CMD_DONE;
}

/* A growable buffer to catch the text stats reply. */
struct textbuf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
};

static void
textbuf_bytes(void *arg, const void *p, size_t n)
{
    struct textbuf *t = arg;

    if (t->oom || n == 0) {
        return;
    }
    if (t->len + n > t->cap) {
        size_t ncap = t->cap ? t->cap : 4096;
        char *np;

        while (ncap < t->len + n) {
            ncap *= 2;
        }
        np = realloc(t->p, ncap);
        if (np == NULL) {
            t->oom = true;
            return;
        }
        t->p = np;
        t->cap = ncap;
    }
    memcpy(t->p + t->len, p, n);
    t->len += n;
}

static void
textbuf_value(void *arg, char *buf, size_t n)
{
    textbuf_bytes(arg, buf, n);
    free(buf);
}

/* The packets of a text stats reply: one per STAT line (key = name, value
 * = value), then an empty one; a reply the text protocol refuses is "Not
 * found". detail: the reply of stat detail dump, sent whole. */
static void
send_stats(struct cmd_conn *cc, const struct proto_bin_req *req,
           const char *text, size_t len, bool detail)
{
    size_t pos = 0;

    if (len >= 5 && (memcmp(text, "ERROR", 5) == 0 ||
                     memcmp(text, "CLIENT_ERROR", 5) == 0)) {
        respond_error(cc, req, PROTO_BIN_KEY_ENOENT);
        return;
    }
    if (detail) {
        /* memcached sends the text dump whole, END included, as the value
         * of one stat named "detailed" */
        respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, "detailed", 8, text,
                (uint32_t)len, 0);
        pos = len;
    }
    while (pos < len) {
        const char *line = text + pos;
        const char *eol = memchr(line, '\n', len - pos);
        size_t n = eol != NULL ? (size_t)(eol - line) : len - pos;
        const char *name, *sp, *end;

        pos += n + 1;
        if (n > 0 && line[n - 1] == '\r') {
            n--;
        }
        if (n < 5 || memcmp(line, "STAT ", 5) != 0) {
            continue;
        }
        name = line + 5;
        end = line + n;
        sp = memchr(name, ' ', (size_t)(end - name));
        if (sp == NULL) {
            sp = end;
        }
        if ((size_t)(sp - name) > UINT16_MAX) {
            continue;
        }
        respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, name,
                (uint16_t)(sp - name), sp < end ? sp + 1 : sp,
                (uint32_t)(sp < end ? end - sp - 1 : 0), 0);
    }
    respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0);
}

static void
stats_walked(struct cmd_conn *cc, void *arg, const char *text, size_t len)
{
    struct cmd_bin *b = arg;

    if (text == NULL) {
        respond_error(cc, &b->stat_req, PROTO_BIN_ENOMEM);
        return;
    }
    send_stats(cc, &b->stat_req, text, len, false);
}

/* Whether key starts with the word w (memcached compares the key's first
 * bytes only, so "settingsX" is settings). */
static bool
starts(const struct proto_bin_req *req, const char *w)
{
    size_t n = strlen(w);

    return req->klen >= n && memcmp(req->key, w, n) == 0;
}

static bool
is_group(const struct proto_bin_req *req, const char *w)
{
    return req->klen == strlen(w) && memcmp(req->key, w, req->klen) == 0;
}

/* stat [group]: memcached's binary stat serves fewer groups than the text
 * command, and matches them its own way: reset, settings and detail by
 * their first bytes (detail's " on", " off" or " dump" too), items,
 * slabs and the sizes ones whole; any other group (conns, extstore,
 * cachedump...) is "Not found", but bitcached's own (bitcached, storage,
 * replication). */
static void
do_stat(struct cmd_conn *cc, struct cmd_bin *b, const struct proto_bin_req *req)
{
    struct textbuf t = {0};
    struct cmd_sink sink = {textbuf_bytes, textbuf_value, &t, NULL};
    const char *group = req->key;
    size_t glen = req->klen;
    bool detail = false;

    if (cc->env->stats == NULL) {
        respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0);
        return;
    }
    if (glen == 0) {
        /* every general stat */
    } else if (starts(req, "reset")) {
        group = "reset";
    } else if (starts(req, "settings")) {
        group = "settings";
    } else if (starts(req, "detail dump")) {
        group = "detail dump";
        detail = true;
    } else if (starts(req, "detail on")) {
        group = "detail on";
    } else if (starts(req, "detail off")) {
        group = "detail off";
    } else if (is_group(req, "sizes") || is_group(req, "sizes_enable") ||
               is_group(req, "sizes_disable") || is_group(req, "bitcached") ||
               is_group(req, "storage") || is_group(req, "replication")) {
        /* as the text command; the last three are bitcached's own */
    } else {
        b->stat_req = *req;
        b->stat_req.key = NULL;
        b->stat_req.klen = 0;
        b->stat_req.val = NULL;
        b->stat_req.vlen = 0;
        if (!cmd_admin_stats_whole(cc, group, glen, stats_walked, b)) {
            respond_error(cc, req, PROTO_BIN_KEY_ENOENT);
        }
        return;
    }
    if (group != req->key) {
        glen = strlen(group);
    }
    cc->env->stats(cc->env->stats_arg, group, glen, &sink);
    if (t.oom) {
        free(t.p);
        respond_error(cc, req, PROTO_BIN_ENOMEM);
        return;
    }
    send_stats(cc, req, t.p != NULL ? t.p : "", t.len, detail);
    free(t.p);
}

static void
do_sasl(struct cmd_conn *cc, struct cmd_bin *b, const struct proto_bin_req *req)
{
    static const char mechs[] = "PLAIN";
    static const char ok[] = "Authenticated";

    if (req->cmd == PROTO_BIN_SASL_LIST_MECHS) {
        respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, mechs,
                sizeof(mechs) - 1, 0);
        return;
    }
    cc->ctr->auth_cmds++;
    /* PLAIN finishes in one step, so a SASL step never succeeds */
    if (req->cmd == PROTO_BIN_SASL_AUTH && req->klen == sizeof(mechs) - 1 &&
        memcmp(req->key, mechs, req->klen) == 0 &&
        sasl_plain_check(b->sasl_pwdb, req->val, req->vlen)) {
        b->authenticated = true;
        respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, ok,
                sizeof(ok) - 1, 0);
        return;
    }
    cc->ctr->auth_errors++;
    respond_error(cc, req, PROTO_BIN_AUTH_ERROR);
}

static enum cmd_status
run(struct cmd_conn *cc, struct cmd_bin *b, const struct proto_bin_req *req)
{
    const char *version = cc->env->version != NULL ? cc->env->version : "0";

    switch (req->cmd) {
    case PROTO_BIN_GET:
    case PROTO_BIN_GETK:
    case PROTO_BIN_TOUCH:
    case PROTO_BIN_GAT:
    case PROTO_BIN_GATK:
        return do_get(cc, req);
    case PROTO_BIN_SET:
    case PROTO_BIN_ADD:
    case PROTO_BIN_REPLACE:
    case PROTO_BIN_APPEND:
    case PROTO_BIN_PREPEND:
    case PROTO_BIN_DELETE:
    case PROTO_BIN_INCREMENT:
    case PROTO_BIN_DECREMENT: {
        /* a write: it may park (cmd_park_begin) */
        bool was = cmd_park_begin(cc);
        enum cmd_status st = req->cmd == PROTO_BIN_DELETE ? do_delete(cc, req)
                             : req->cmd == PROTO_BIN_INCREMENT ||
                                             req->cmd == PROTO_BIN_DECREMENT
                                     ? do_arith(cc, req)
                                     : do_store(cc, req);
        cmd_park_end(was);
        return st;
    }
    case PROTO_BIN_FLUSH:
        return do_flush(cc, req);
    case PROTO_BIN_NOOP:
        respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0);
        break;
    case PROTO_BIN_VERSION:
        respond(cc, req, PROTO_BIN_SUCCESS, NULL, 0, NULL, 0, version,
                (uint32_t)strlen(version), 0);
        break;
    case PROTO_BIN_STAT:
        do_stat(cc, b, req);
        break;
    case PROTO_BIN_QUIT:
        respond_ok(cc, req, 0);
        cc->quit = true;
        return CMD_CLOSE;
    case PROTO_BIN_SASL_LIST_MECHS:
    case PROTO_BIN_SASL_AUTH:
    case PROTO_BIN_SASL_STEP:
        do_sasl(cc, b, req);
        break;
    default:
        /* the parser lets only the commands above through */
        respond_error(cc, req, PROTO_BIN_UNKNOWN_COMMAND);
        break;
    }
    return CMD_DONE;
}

/* A get parked on a cold key, its packet used bytes of buf[0..len): start
 * the reads of the keys of the plain gets (get, getk and their quiet
 * variants) pipelined after it, up to the first other packet, an
 * incomplete one or full slots (as cmd.c's look_ahead). */
static void
look_ahead(struct cmd_conn *cc, const struct cmd_bin *b, const char *buf,
           size_t len, size_t used)
{
    struct cmd_reader *rd = &cc->rd;
    struct proto_bin_parser p;
    size_t off = rd->ahead_end > used ? rd->ahead_end : used;

    proto_bin_parser_init(&p, cc->env->item_max);
    p.sasl = b->parser.sasl;
    while (off < len) {
        struct proto_bin_req req;
        size_t n = 0;

        if (proto_bin_parse(&p, &req, buf + off, len - off, &n) !=
                    PROTO_BIN_OK ||
            (req.cmd != PROTO_BIN_GET && req.cmd != PROTO_BIN_GETK) ||
            !cmd_read_ahead_at(cc, off, req.key, req.klen, true)) {
            return;
        }
        off += n;
        rd->ahead_end = off;
    }
}

static enum cmd_status
execute(struct cmd_conn *cc, struct cmd_bin *b, const char *buf, size_t len,
        size_t *used)
{
    struct proto_bin_req req;
    enum proto_bin_result st;

    if (cc->job != NULL) {
        /* a stat items or slabs walk goes first; the input waits */
        *used = 0;
        cmd_admin_continue(cc);
        return CMD_DONE;
    }
    b->parser.auth_needed = b->sasl_pwdb != NULL && !b->authenticated;
    st = proto_bin_parse(&b->parser, &req, buf, len, used);
    cc->tag = (struct cmd_req_tag){
            .bin = true, .opcode = req.opcode, .opaque = req.opaque};
    switch (st) {
    case PROTO_BIN_NEED_MORE:
        return CMD_NEED_MORE;
    case PROTO_BIN_SWALLOW:
        return CMD_DONE;
    case PROTO_BIN_CLOSE:
        if (req.status != PROTO_BIN_SUCCESS) {
            respond_error(cc, &req, req.status);
        }
        return CMD_CLOSE;
    case PROTO_BIN_ERROR:
        if (req.unlink) {
            /* as text's (cmd.c): the packet runs again whole once the
             * delete of the old value need not wait */
            if (cmd_unlink_parks(cc, req.key, req.klen)) {
                b->parser.swallow = 0;
                *used = 0;
                return CMD_PARK;
            }
            /* memcached allocated no item: no cmd_set */
            if (req.status == PROTO_BIN_E2BIG) {
                cc->ctr->store_too_large++;
            }
            prefix_stats_set(req.key, req.klen);
            cmd_meta_forget(cc->env->meta, req.key, req.klen, 0);
        }
        if (req.status == PROTO_BIN_ENOMEM && is_store(req.cmd)) {
            /* a value refused for the budget of values still arriving */
            respond_nomem_store(cc, &req);
        } else {
            respond_error(cc, &req, req.status);
        }
        return CMD_DONE;
    case PROTO_BIN_OK:
        break;
    }
    cc->write_parked = false;
    enum cmd_status rs = run(cc, b, &req);
    if (rs == CMD_PARK) {
        if (!cc->write_parked &&
            (req.cmd == PROTO_BIN_GET || req.cmd == PROTO_BIN_GETK)) {
            look_ahead(cc, b, buf, len, *used);
        }
        *used = 0; /* the same packet runs again once its read is done */
    }
    return rs;
}

enum cmd_status
cmd_bin_execute(struct cmd_conn *cc, struct cmd_bin *b, const char *buf,
                size_t len, size_t *used)
{
    enum cmd_status rs = execute(cc, b, buf, len, used);

    if (*used > 0) {
        /* reads belong to their packet; those read ahead for the next
         * ones stay */
        cmd_read_consumed(&cc->rd, *used);
    }
    return rs;
}
