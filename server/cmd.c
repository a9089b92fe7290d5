/* cmd.c - runs parsed memcached requests against the store (implements
 * cmd.h): the one place where protocol/ meets storage/. Owns only the
 * per-connection parser state inside struct cmd_conn; the meta win/stale
 * state lives in the shared table of cmd_meta.c (env->meta), which this file
 * updates after the store call it belongs to. Knows nothing of sockets,
 * libevent or threads. Replies go to the connection's sink; values read by
 * cask_get are handed to it without a copy.
 */
#include "server/cmd.h"

#include "protocol/proto.h"
#include "server/cmd_admin.h"
#include "server/cmd_meta.h"
#include "server/prefix_stats.h"
#include "storage/cask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* memcached: exptimes above this many seconds are absolute unix times */
#define REL_MAX_S (60 * 60 * 24 * 30)
/* values up to this size are copied into the reply line instead of being
 * handed to the sink as a separate buffer */
#define INLINE_VALUE_MAX 512
#define LINE_CAP         4096

void
cmd_conn_init(struct cmd_conn *cc, const struct cmd_env *env,
              struct cmd_counters *ctr, const struct cmd_sink *out)
{
    memset(cc, 0, sizeof(*cc));
    cc->env = env;
    cc->ctr = ctr;
    cc->out = *out;
    proto_parser_init(&cc->parser, env->item_max);
    cc->parser.budget = env->in_budget;
}

void
cmd_conn_set_throttle(struct cmd_conn *cc, bool (*full)(void *arg), void *arg)
{
    cc->out_full = full;
    cc->out_full_arg = arg;
}

void
cmd_conn_deinit(struct cmd_conn *cc)
{
    cmd_admin_cancel(cc);
    if (cc->flush_wait != NULL) {
        /* a flush_all parked: it still happens, unanswered */
        cask_flush_drop(cc->env->store, &cc->flush_wait);
    }
    cmd_read_reset(&cc->rd);
    proto_parser_release(&cc->parser);
    memset(&cc->parser, 0, sizeof(cc->parser));
    cc->get_paused = false;
}

bool
cmd_busy(const struct cmd_conn *cc)
{
    return cc->job != NULL;
}

size_t
cmd_bytes_wanted(const struct cmd_conn *cc)
{
    return cc->parser.wanted;
}

bool
cmd_swallowing(const struct cmd_conn *cc)
{
    return cc->parser.swallow > 0;
}

/* memcached's clock reads this many seconds at start-up (its
 * process_started is set back by ITEM_UPDATE_INTERVAL + 2). */
#define MC_CLOCK_START_S 62

static int64_t
now_s(const struct cmd_env *env)
{
    if (env->clock != NULL) {
        return env->clock(env->clock_arg);
    }
    return (int64_t)time(NULL);
}

/* memcached's realtime(): 0 never; negative expired; up to 30 days relative;
 * above that absolute, and already past means expired. 1 is "long ago". */
static int64_t
exp_abs(const struct cmd_env *env, int64_t exptime)
{
    int64_t now;

    if (exptime == 0) {
        return 0;
    }
    if (exptime < 0) {
        return 1;
    }
    now = now_s(env);
    if (exptime > REL_MAX_S) {
        return exptime <= now ? 1 : exptime;
    }
    return now + exptime;
}

int64_t
cmd_now_s(const struct cmd_env *env)
{
    return now_s(env);
}

/* Seconds from t (an item's last access) to now, never negative. */
static uint64_t
since_s(const struct cmd_env *env, int64_t t)
{
    int64_t now = now_s(env);
    return now > t ? (uint64_t)(now - t) : 0;
}

int64_t
cmd_exp_abs(const struct cmd_env *env, int64_t exptime)
{
    return exp_abs(env, exptime);
}

static void
emit(struct cmd_conn *cc, const void *p, size_t n)
{
    cc->out.bytes(cc->out.arg, p, n);
}

static void
emit_str(struct cmd_conn *cc, const char *s)
{
    emit(cc, s, strlen(s));
}

static void
emit_out(struct cmd_conn *cc, struct proto_out *o)
{
    if (o->overflow) {
        emit_str(cc, "SERVER_ERROR response line too long\r\n");
        return;
    }
    emit(cc, o->buf, o->len);
}

/* A store error that has no protocol meaning of its own. */
static void
emit_server_error(struct cmd_conn *cc, int err)
{
    char line[256];
    struct proto_out o;

    proto_out_init(&o, line, sizeof(line));
    if (err == CASK_ETOOBIG) {
        proto_out_str(&o, "SERVER_ERROR object too large for cache");
    } else {
        proto_out_str(&o, "SERVER_ERROR ");
        proto_out_str(&o, cmd_error_text(&cc->tag, err));
    }
    o.overflow = false;
    if (o.len > sizeof(line) - 2) {
        o.len = sizeof(line) - 2;
    }
    proto_out_mem(&o, "\r\n", 2);
    emit_out(cc, &o);
}

/* A get's value (cmd_read_get), as a reference into the store's files
 * when the sink can send those (ref then set on success), else as a copy
 * in *val. */
static int
get_value(struct cmd_conn *cc, const char *key, size_t klen,
          struct cask_item *it, char **val, struct cask_vref *ref, bool fetch)
{
    return cmd_read_get_ref(cc, key, klen, it, val,
                            cc->out.value_ref != NULL ? ref : NULL, fetch);
}

/* Send the value (ownership of val, or of ref when it is set, moves here),
 * then CRLF. The line built so far in o goes first. */
static void
emit_value(struct cmd_conn *cc, struct proto_out *o, char *val,
           struct cask_vref *ref, size_t n)
{
    if (ref != NULL && ref->seg != NULL) {
        emit_out(cc, o);
        cc->out.value_ref(cc->out.arg, ref);
        emit(cc, "\r\n", 2);
        return;
    }
    if (n <= INLINE_VALUE_MAX && o->cap - o->len >= n + 2) {
        proto_out_mem(o, val, n);
        proto_out_mem(o, "\r\n", 2);
        cmd_read_free(val);
        emit_out(cc, o);
        return;
    }
    emit_out(cc, o);
    if (cmd_read_borrowed(val)) {
        emit(cc, val, n); /* the sink keeps buffers of its own only */
    } else {
        cc->out.value(cc->out.arg, val, n);
    }
    emit(cc, "\r\n", 2);
}

/* A miss: memcached 1.6.18 counts a touching lookup (gat, gats, mg T) as
 * a touch only, and any lookup that meets an expired or flushed item in
 * get_expired/get_flushed (count_gone). */
static void
count_gone(struct cmd_conn *cc, const struct cask_item *it)
{
    if (it->gone == CASK_GONE_EXPIRED) {
        cc->ctr->get_expired++;
    } else if (it->gone == CASK_GONE_FLUSHED) {
        cc->ctr->get_flushed++;
    }
}

static void
count_miss(struct cmd_conn *cc, const struct cask_item *it, bool touch)
{
    if (touch) {
        cc->ctr->touch_misses++;
    } else {
        cc->ctr->get_misses++;
    }
    count_gone(cc, it);
}

/* ---- watch ---- */

static bool
watching(const struct cmd_conn *cc)
{
    return cc->env->watch != NULL && cc->env->watchers != NULL &&
           atomic_load_explicit(cc->env->watchers, memory_order_relaxed) != 0;
}

void
cmd_watch_get(struct cmd_conn *cc, const char *key, size_t klen, int rc,
              const struct cask_item *it)
{
    struct cmd_watch_ev ev;

    if (!watching(cc)) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.type = CMD_WATCH_GET;
    ev.key = key;
    ev.klen = klen;
    ev.fd = cc->fd;
    if (rc == CASK_OK) {
        ev.status = 1;
        ev.clsid = cmd_admin_class(cc->env, klen, it->vlen, it->flags);
        ev.size = it->vlen;
    } else {
        ev.status = it->gone == CASK_GONE_FLUSHED   ? 2
                    : it->gone == CASK_GONE_EXPIRED ? 3
                                                    : 0;
    }
    cc->env->watch(cc->env->watch_arg, &ev);
}

void
cmd_watch_take(struct cmd_conn *cc, const char *key, size_t klen,
               struct cmd_watch_pre *pre)
{
    memset(pre, 0, sizeof(*pre));
    if (!watching(cc)) {
        return;
    }
    pre->taken = true;
    pre->rc = cask_get(cc->env->store, key, klen, &pre->it, NULL);
}

void
cmd_watch_log(struct cmd_conn *cc, const char *key, size_t klen,
              const struct cmd_watch_pre *pre)
{
    if (pre->taken) {
        cmd_watch_get(cc, key, klen, pre->rc, &pre->it);
    }
}

/* item_store for a store of req's key and data that returned rc. */
static void
watch_store(struct cmd_conn *cc, const struct proto_req *req,
            enum cask_store_mode mode, bool is_cas, int rc, int64_t exp_abs_s,
            uint32_t flags)
{
    cmd_watch_store(cc, req->key, req->klen, req->nbytes, flags, mode, is_cas,
                    rc, exp_abs_s);
}

void
cmd_watch_store(struct cmd_conn *cc, const char *key, size_t klen,
                size_t nbytes, uint32_t flags, enum cask_store_mode mode,
                bool is_cas, int rc, int64_t exp_abs_s)
{
    static const unsigned cmd_of[] = {[CASK_SET] = 2,
                                      [CASK_ADD] = 1,
                                      [CASK_REPLACE] = 3,
                                      [CASK_APPEND] = 4,
                                      [CASK_PREPEND] = 5};
    struct cmd_watch_ev ev;
    int64_t now;

    if (!watching(cc)) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.type = CMD_WATCH_STORE;
    ev.key = key;
    ev.klen = klen;
    ev.fd = cc->fd;
    ev.cmd = is_cas ? 6 : cmd_of[mode];
    ev.status = rc == CASK_OK           ? 1
                : rc == CASK_ENOTSTORED ? 0
                : rc == CASK_EEXISTS    ? 2
                : rc == CASK_ENOTFOUND  ? 3
                : rc == CASK_ETOOBIG    ? 4
                                        : 5;
    now = now_s(cc->env);
    ev.ttl_s = exp_abs_s > now ? exp_abs_s - now : 0;
    if (rc == CASK_OK && (mode == CASK_APPEND || mode == CASK_PREPEND)) {
        /* memcached logs the item the two values made */
        struct cask_item it;

        memset(&it, 0, sizeof(it));
        if (cask_get(cc->env->store, key, klen, &it, NULL) == CASK_OK) {
            nbytes = it.vlen;
            flags = it.flags;
        }
    }
    ev.clsid = cmd_admin_class(cc->env, klen, nbytes, flags);
    ev.size = (uint32_t)nbytes;
    cc->env->watch(cc->env->watch_arg, &ev);
}

void
cmd_watch_created(struct cmd_conn *cc, const char *key, size_t klen,
                  size_t nbytes, int64_t exp_abs_s)
{
    struct cask_item none;

    memset(&none, 0, sizeof(none));
    cmd_watch_get(cc, key, klen, CASK_ENOTFOUND, &none);
    cmd_watch_store(cc, key, klen, nbytes, 0, CASK_ADD, false, CASK_OK,
                    exp_abs_s);
}

/* ---- classic commands ---- */

/* A multi-get parked at a cold key: start the reads of the next keys of
 * its line (from pos on) as well, so that they are read at once (a gat's
 * without counting as reads: its touches do). */
static void
read_ahead(struct cmd_conn *cc, const struct proto_req *req, size_t pos,
           bool fetch)
{
    const char *key;
    size_t klen;

    for (unsigned i = 0;
         i < CMD_READ_AHEAD && proto_key_next(req, &pos, &key, &klen); i++) {
        cmd_read_ahead(cc, key, klen, fetch);
    }
}

/* A multi-get fetches one key at a time and asks out_full before each
 * further key, so the queued reply never runs more than one value past the
 * connection's cap: when full, it remembers where it stopped and returns
 * CMD_PAUSE, and the connection calls again with the same line once the
 * client has read. A key whose record cannot be read (checksum failure, I/O
 * error; the store logs which) is answered as a miss and counted, so the
 * reply always ends with END. */
static enum cmd_status
do_get(struct cmd_conn *cc, const struct proto_req *req)
{
    bool touch = req->cmd == PROTO_CMD_GAT || req->cmd == PROTO_CMD_GATS;
    bool with_cas = req->cmd == PROTO_CMD_GETS || req->cmd == PROTO_CMD_GATS;
    int64_t exp = touch ? exp_abs(cc->env, req->exptime) : 0;
    size_t pos = 0;
    size_t fetched = 0;
    const char *key;
    size_t klen;
    char line[LINE_CAP];

    if (cc->get_paused) {
        cc->get_paused = false;
        pos = cc->get_pos;
    }
    for (;;) {
        struct cask_item it;
        char *val = NULL;
        struct cask_vref ref = {.fd = -1};
        size_t at = pos;
        int rc;

        if (!proto_key_next(req, &pos, &key, &klen)) {
            break;
        }
        size_t npos = pos;
        const char *nkey;
        size_t nklen;
        if (proto_key_next(req, &npos, &nkey, &nklen)) {
            /* the next key's index lines load while this one is served */
            cask_prefetch(cc->env->store, nkey, nklen);
        }
        if (fetched > 0 && cc->out_full != NULL &&
            cc->out_full(cc->out_full_arg)) {
            cc->get_paused = true;
            cc->get_pos = at;
            return CMD_PAUSE;
        }
        memset(&it, 0, sizeof(it));
        /* a cut line sends no value: a copy is read, then dropped */
        struct cask_vref *refp = req->keys_cut ? NULL : &ref;
        if (touch) {
            bool was = cmd_park_begin(cc);
            rc = cmd_read_touch(cc, key, klen, exp, &it, &val, true);
            cmd_park_end(was);
        } else {
            rc = get_value(cc, key, klen, &it, &val, refp, true);
        }
        if (rc == CMD_READ_PARK) {
            /* resume here; meanwhile read the next keys too */
            cc->get_paused = true;
            cc->get_pos = at;
            read_ahead(cc, req, pos, !touch);
            return CMD_PARK;
        }
        if (cmd_parked(cc, rc)) {
            /* this key's touch would wait for a roll-over: the request
             * runs again from here, the keys before it answered once */
            cc->get_paused = true;
            cc->get_pos = at;
            return CMD_PARK;
        }
        if (touch) {
            cc->ctr->cmd_touch++;
        } else {
            cc->ctr->cmd_get++;
        }
        fetched++;
        cmd_watch_get(cc, key, klen, rc, &it);
        prefix_stats_get(key, klen, rc == CASK_OK);
        if (rc == CASK_OK) {
            struct proto_out o;

            cmd_admin_count_hit(cc, klen, &it, touch);
            if (req->keys_cut) {
                cmd_read_free(val);
                continue;
            }
            proto_out_init(&o, line, sizeof(line));
            proto_fmt_value(&o, key, klen, it.flags, it.vlen, with_cas,
                            cc->env->cas_disabled ? 0 : it.cas);
            emit_value(cc, &o, val, &ref, it.vlen);
        } else if (rc == CASK_ENOTFOUND) {
            count_miss(cc, &it, touch);
        } else if (rc == CASK_ECORRUPT) {
            /* never hand out bytes that failed their checksum: the key
             * is a miss and the other keys and END still come */
            cmd_read_free(val);
            if (touch) {
                cc->ctr->touch_misses++;
            } else {
                cc->ctr->get_misses++;
            }
            cc->ctr->get_corrupt++;
        } else {
            /* an I/O error, or a touch that could not be written, is not
             * a miss: the client must not take the key for absent */
            cmd_read_free(val);
            emit_server_error(cc, rc);
            return CMD_DONE;
        }
    }
    if (req->keys_cut) {
        emit_str(cc, "CLIENT_ERROR bad command line format\r\n");
        return CMD_DONE;
    }
    emit(cc, "END\r\n", 5);
    return CMD_DONE;
}

static void
reply(struct cmd_conn *cc, const struct proto_req *req, const char *s)
{
    if (!req->noreply) {
        emit_str(cc, s);
    }
}

bool
cmd_park_begin(struct cmd_conn *cc)
{
    /* Watched or not: a write logs its watch lines only once it ran
     * (cmd_watch_take), so a parked one has logged nothing. */
    return cask_park(cc->park_writes);
}

void
cmd_park_end(bool was)
{
    (void)cask_park(was);
}

bool
cmd_parked(struct cmd_conn *cc, int rc)
{
    if (rc != CASK_EBLOCKED) {
        return false;
    }
    cc->write_parked = true;
    return true;
}

bool
cmd_flush_parks(struct cmd_conn *cc, int64_t at, int *rc)
{
    bool was = cmd_park_begin(cc);
    *rc = cask_flush_park(cc->env->store, at, &cc->flush_wait);
    cmd_park_end(was);
    return cmd_parked(cc, *rc);
}

bool
cmd_unlink_parks(struct cmd_conn *cc, const char *key, size_t klen)
{
    bool was = cmd_park_begin(cc);
    int rc = cask_delete(cc->env->store, key, klen, 0);
    cmd_park_end(was);
    return cmd_parked(cc, rc);
}

static enum cmd_status
do_store(struct cmd_conn *cc, const struct proto_req *req)
{
    enum cask_store_mode mode = CASK_SET;
    int64_t exp = exp_abs(cc->env, req->exptime);
    uint64_t cas_out = 0;
    int rc;

    switch (req->cmd) {
    case PROTO_CMD_ADD:
        mode = CASK_ADD;
        break;
    case PROTO_CMD_REPLACE:
        mode = CASK_REPLACE;
        break;
    case PROTO_CMD_APPEND:
        mode = CASK_APPEND;
        break;
    case PROTO_CMD_PREPEND:
        mode = CASK_PREPEND;
        break;
    default:
        break;
    }
    struct cmd_class_counters *k =
            cmd_admin_cls(cc, req->klen, (uint32_t)req->nbytes, req->flags);
    struct cmd_watch_pre pre;
    cmd_watch_take(cc, req->key, req->klen, &pre);
    if (req->cmd == PROTO_CMD_CAS && (req->cas == 0 || cc->env->cas_disabled)) {
        /* no item ever has cas 0, and the store reads 0 as "no check";
         * with -C memcached answers EXISTS for any unique */
        struct cask_item it;

        rc = cask_get(cc->env->store, req->key, req->klen, &it, NULL);
        rc = rc == CASK_OK ? CASK_EEXISTS : rc;
    } else {
        rc = cask_store(cc->env->store, mode, req->key, req->klen, req->data,
                        req->nbytes, req->flags, exp, req->cas, &cas_out);
    }
    if (cmd_parked(cc, rc)) {
        return CMD_PARK; /* nothing stored or counted: it runs again */
    }
    cmd_watch_log(cc, req->key, req->klen, &pre);
    cc->ctr->cmd_set++;
    k->cmd_set++;
    prefix_stats_set(req->key, req->klen);
    if (rc == CASK_ETOOBIG && (mode == CASK_APPEND || mode == CASK_PREPEND)) {
        /* memcached cannot allocate the longer item: NOT_STORED, the old
         * value stays */
        rc = CASK_ENOTSTORED;
    }
    watch_store(cc, req, mode, req->cmd == PROTO_CMD_CAS, rc, exp, req->flags);
    switch (rc) {
    case CASK_OK:
        /* a new item: memcached's win/stale bits start clear */
        cmd_meta_forget(cc->env->meta, req->key, req->klen, cas_out);
        cc->ctr->total_items++;
        if (req->cmd == PROTO_CMD_CAS) {
            cc->ctr->cas_hits++;
            k->cas_hits++;
        }
        reply(cc, req, "STORED\r\n");
        break;
    case CASK_ENOTSTORED:
        reply(cc, req, "NOT_STORED\r\n");
        break;
    case CASK_EEXISTS:
        cc->ctr->cas_badval++;
        k->cas_badval++;
        reply(cc, req, "EXISTS\r\n");
        break;
    case CASK_ENOTFOUND:
        cc->ctr->cas_misses++;
        reply(cc, req, "NOT_FOUND\r\n");
        break;
    case CASK_EBADKEY:
        reply(cc, req, "CLIENT_ERROR bad command line format\r\n");
        break;
    default:
        if (rc == CASK_ETOOBIG) {
            cc->ctr->store_too_large++;
        } else if (rc == CASK_ENOMEM) {
            cc->ctr->store_no_memory++;
            k->outofmemory++;
        }
        if (!req->noreply) {
            emit_server_error(cc, rc);
        }
        break;
    }
    return CMD_DONE;
}

static enum cmd_status
do_delete(struct cmd_conn *cc, const struct proto_req *req)
{
    struct cask_item gone = {0};
    int rc;

    struct cmd_watch_pre wpre;
    cmd_watch_take(cc, req->key, req->klen, &wpre);
    rc = cask_delete_item(cc->env->store, req->key, req->klen, 0, &gone);
    if (cmd_parked(cc, rc)) {
        return CMD_PARK;
    }
    cmd_watch_log(cc, req->key, req->klen, &wpre);
    prefix_stats_delete(req->key, req->klen);

    if (rc == CASK_OK) {
        cmd_meta_forget(cc->env->meta, req->key, req->klen, 0);
        cc->ctr->delete_hits++;
        cmd_admin_cls(cc, req->klen, gone.vlen, gone.flags)->delete_hits++;
        reply(cc, req, "DELETED\r\n");
    } else if (rc == CASK_ENOTFOUND) {
        cc->ctr->delete_misses++;
        reply(cc, req, "NOT_FOUND\r\n");
    } else if (!req->noreply) {
        emit_server_error(cc, rc);
    }
    return CMD_DONE;
}

/* incr, decr and ma: memcached rewrites the number in place when it fits
 * the old length, and the item keeps its win/stale bits; a longer number
 * makes a new item without them. (memcached also makes a new item while
 * another reference holds the old one, e.g. a pipelined mg reply not yet
 * written; that timing is not reproduced.) */
struct arith_carry {
    unsigned bits; /* state of the item before the change */
    uint32_t vlen; /* its value length */
};

static void
carry_before(struct cmd_conn *cc, const struct proto_req *req,
             struct arith_carry *k)
{
    struct cask_item old;

    memset(k, 0, sizeof(*k));
    if (!cmd_meta_has(cc->env->meta, req->key, req->klen) ||
        cask_get(cc->env->store, req->key, req->klen, &old, NULL) != CASK_OK) {
        return;
    }
    k->bits = cmd_meta_bits(cc->env->meta, req->key, req->klen, old.cas);
    k->vlen = old.vlen;
}

/* After a successful change to *it (the new item). */
static void
carry_after(struct cmd_conn *cc, const struct proto_req *req,
            const struct arith_carry *k, const struct cask_item *it)
{
    if (k->bits != 0 && it->vlen == k->vlen) {
        cmd_meta_put(cc->env->meta, req->key, req->klen, it->cas, k->bits);
    } else {
        cmd_meta_forget(cc->env->meta, req->key, req->klen, it->cas);
    }
}

static enum cmd_status
do_arith(struct cmd_conn *cc, const struct proto_req *req)
{
    struct cask_arith a;
    struct arith_carry carry;
    struct cask_item it;
    uint64_t v = 0;
    int rc;
    bool incr = req->cmd == PROTO_CMD_INCR;

    memset(&a, 0, sizeof(a));
    memset(&it, 0, sizeof(it));
    a.incr = incr;
    a.delta = req->delta;
    carry_before(cc, req, &carry);
    struct cmd_watch_pre wpre;
    cmd_watch_take(cc, req->key, req->klen, &wpre);
    rc = cask_arith(cc->env->store, req->key, req->klen, &a, &v, &it);
    if (cmd_parked(cc, rc)) {
        return CMD_PARK;
    }
    cmd_watch_log(cc, req->key, req->klen, &wpre);
    if (rc == CASK_OK) {
        char line[32];
        struct proto_out o;

        carry_after(cc, req, &carry, &it);
        if (it.arith_made == CASK_ARITH_GREW) {
            /* memcached: a longer number is a new item replacing the old */
            cc->ctr->total_items++;
        }
        if (incr) {
            cc->ctr->incr_hits++;
            cmd_admin_cls(cc, req->klen, it.vlen, it.flags)->incr_hits++;
        } else {
            cc->ctr->decr_hits++;
            cmd_admin_cls(cc, req->klen, it.vlen, it.flags)->decr_hits++;
        }
        if (!req->noreply) {
            proto_out_init(&o, line, sizeof(line));
            proto_out_u64(&o, v);
            proto_out_mem(&o, "\r\n", 2);
            emit_out(cc, &o);
        }
    } else if (rc == CASK_ENOTFOUND) {
        if (incr) {
            cc->ctr->incr_misses++;
        } else {
            cc->ctr->decr_misses++;
        }
        reply(cc, req, "NOT_FOUND\r\n");
    } else if (rc == CASK_ENONNUMERIC) {
        reply(cc, req,
              "CLIENT_ERROR cannot increment or decrement "
              "non-numeric value\r\n");
    } else if (!req->noreply) {
        emit_server_error(cc, rc);
    }
    return CMD_DONE;
}

static enum cmd_status
do_touch(struct cmd_conn *cc, const struct proto_req *req)
{
    struct cask_item it;
    int rc;

    memset(&it, 0, sizeof(it));
    bool was = cmd_park_begin(cc);
    rc = cmd_read_touch(cc, req->key, req->klen, exp_abs(cc->env, req->exptime),
                        &it, NULL, true);
    cmd_park_end(was);
    if (rc == CMD_READ_PARK || cmd_parked(cc, rc)) {
        return CMD_PARK; /* nothing touched or counted: it runs again */
    }
    cmd_watch_get(cc, req->key, req->klen, rc, &it);
    cc->ctr->cmd_touch++;
    if (rc == CASK_OK) {
        cc->ctr->touch_hits++;
        cmd_admin_cls(cc, req->klen, it.vlen, it.flags)->touch_hits++;
        reply(cc, req, "TOUCHED\r\n");
    } else if (rc == CASK_ENOTFOUND) {
        cc->ctr->touch_misses++;
        reply(cc, req, "NOT_FOUND\r\n");
    } else if (!req->noreply) {
        emit_server_error(cc, rc);
    }
    return CMD_DONE;
}

/* The state file write runs on the store's roller thread: the
 * connection parks meanwhile (cmd_parked), and answers once it is
 * durable. */
static enum cmd_status
do_flush(struct cmd_conn *cc, const struct proto_req *req)
{
    int64_t at = now_s(cc->env);
    int rc;

    if (req->has_delay && req->delay != 0) {
        at = exp_abs(cc->env, req->delay);
    }
    if (cc->env->flush_disabled) {
        reply(cc, req, "CLIENT_ERROR flush_all not allowed\r\n");
        return CMD_DONE;
    }
    if (cmd_flush_parks(cc, at, &rc)) {
        return CMD_PARK;
    }
    cc->ctr->cmd_flush++;
    if (rc == CASK_OK) {
        reply(cc, req, "OK\r\n");
    } else if (!req->noreply) {
        emit_server_error(cc, rc);
    }
    return CMD_DONE;
}

/* ---- meta commands ---- */

/* Return flags shared by every meta reply: O and k (a base64 key is
 * returned encoded again from its bytes, followed by b). */
static void
meta_common_flag(struct proto_out *o, const struct proto_req *req,
                 const struct proto_mflag *m)
{
    if (m->flag == 'O') {
        proto_out_mem(o, " O", 2);
        proto_out_mem(o, m->tok, m->len);
    } else if (m->flag == 'k') {
        proto_out_mem(o, " k", 2);
        if (req->key_b64) {
            /* as memcached: encoded from the decoded bytes, so a key
             * sent as "a2_V5" (the decoder skips the _) comes back as
             * "a2V5"; flagged b right after it */
            char enc[(PROTO_KEY_MAX + 2) / 3 * 4 + 1];
            int n = proto_b64_encode(req->key, req->klen, enc, sizeof(enc));

            proto_out_mem(o, enc, n > 0 ? (size_t)n : 0);
            proto_out_mem(o, " b", 2);
        } else {
            proto_out_mem(o, req->raw_key, req->raw_klen);
        }
    }
}

/* An mg or ma whose opaque is too long (proto_mflag_opaque_long) does its
 * work, then answers this instead of its reply, as memcached does. */
static const char ERR_OPAQUE_LONG[] = "CLIENT_ERROR opaque token too long\r\n";

/* A reply with just a code and the O/k flags (misses, HD of ms/md); the
 * opaque error instead when the opaque is too long. */
static void
meta_simple(struct cmd_conn *cc, const struct proto_req *req, const char *code)
{
    char line[LINE_CAP];
    struct proto_out o;
    unsigned i;

    if (proto_mflag_opaque_long(req) >= 0) {
        emit_str(cc, ERR_OPAQUE_LONG);
        return;
    }
    proto_out_init(&o, line, sizeof(line));
    proto_out_str(&o, code);
    for (i = 0; i < req->nmflags; i++) {
        meta_common_flag(&o, req, &req->mflags[i]);
    }
    proto_out_mem(&o, "\r\n", 2);
    emit_out(cc, &o);
}

/* A meta flag's numeric token (validated by the parser), or dflt when the
 * flag is absent. */
static uint64_t
mflag_u64(const struct proto_req *req, char f, uint64_t dflt)
{
    const struct proto_mflag *m = proto_mflag_find(req, f);
    uint64_t v;

    if (m == NULL || !proto_strtou64(m->tok, m->len, &v)) {
        return dflt;
    }
    return v;
}

/* A meta TTL token (T, N): read as memcached does, keeping 32 bits. */
static int64_t
mflag_exptime(const struct proto_req *req, char f)
{
    const struct proto_mflag *m = proto_mflag_find(req, f);
    int64_t v;

    if (m == NULL || !proto_strtoi64(m->tok, m->len, &v)) {
        return 0;
    }
    return (int32_t)(uint32_t)(uint64_t)v;
}

static void
out_ttl(struct proto_out *o, const struct cmd_env *env, int64_t exp)
{
    int64_t now = now_s(env);

    if (exp == 0) {
        proto_out_str(o, "-1");
        return;
    }
    if (exp <= now && env->started_s != 0) {
        /* An item expired at once (T-1, N-1) is still answered. memcached
         * prints its TTL as an unsigned difference of its own clock, which
         * counts from MC_CLOCK_START_S at start-up; 1 is "expired". */
        int64_t rel_now = now - env->started_s + MC_CLOCK_START_S;
        int64_t rel_exp =
                exp == 1 ? 1 : exp - env->started_s + MC_CLOCK_START_S;

        proto_out_u64(o, (uint32_t)(rel_exp - rel_now));
        return;
    }
    exp -= now;
    proto_out_i64(o, exp < 0 ? -1 : exp);
}

/* Whether flag f is given and no T flag comes before it. */
static bool
before_T(const struct proto_req *req, char f)
{
    unsigned i;

    for (i = 0; i < req->nmflags; i++) {
        if (req->mflags[i].flag == 'T') {
            return false;
        }
        if (req->mflags[i].flag == f) {
            return true;
        }
    }
    return false;
}

/* The absolute expiry of an item a meta command creates (N): the TTL it
 * ends with, that of its last N or T flag (the response shows each where
 * it stands). An item made expired (N-1) could not be touched later.
 * end: the index of the flag where memcached stops (ma's overlong O: it
 * applies N and T as it writes the flags, so an item made with neither
 * before it never expires), or -1. */
static int64_t
vivify_exp(const struct proto_req *req, int end, int64_t t_exp, int64_t n_exp)
{
    int64_t exp = 0;

    for (unsigned i = 0; i < req->nmflags && (int)i != end; i++) {
        char f = req->mflags[i].flag;

        if (f == 'T') {
            exp = t_exp;
        } else if (f == 'N') {
            exp = n_exp;
        }
    }
    return exp;
}

/* mg: fetch (or touch) the item, creating it for N on a miss. On CASK_OK,
 * *old_exp is the expiry the item had before this request's T (0 for an
 * item it created) and *created says whether it did. */
static int
mg_lookup(struct cmd_conn *cc, const struct proto_req *req, bool want_val,
          int64_t t_exp, int64_t n_exp, struct cask_item *it, char **val,
          struct cask_vref *ref, int64_t *old_exp, bool *created)
{
    bool has_T = proto_mflag_find(req, 'T') != NULL;
    int64_t exp = 0; /* set with the add N makes, read only after it */
    uint64_t cas = 0;
    int rc;

    *old_exp = 0;
    *created = false;
    if (has_T && (before_T(req, 't') || before_T(req, 'R'))) {
        /* memcached applies T where it stands among the flags, so a t or R
         * before it sees the TTL the item had */
        struct cask_item old;

        if (cask_get(cc->env->store, req->key, req->klen, &old, NULL) ==
            CASK_OK) {
            *old_exp = old.exp_abs_s;
        }
    }
    if (has_T) {
        /* with u not a read either (memcached skips its bump) */
        bool was = cmd_park_begin(cc);
        rc = cmd_read_touch(cc, req->key, req->klen, t_exp, it,
                            want_val ? val : NULL,
                            proto_mflag_find(req, 'u') == NULL);
        cmd_park_end(was);
        if (rc == CMD_READ_PARK || rc == CASK_EBLOCKED) {
            return rc; /* nothing touched or counted: it runs again */
        }
    } else if (want_val) {
        /* a hit counts as a read (memcached's fetched bit) unless u */
        rc = get_value(cc, req->key, req->klen, it, val, ref,
                       proto_mflag_find(req, 'u') == NULL);
        if (rc == CMD_READ_PARK) {
            return rc; /* nothing counted yet: the request runs again */
        }
        *old_exp = it->exp_abs_s;
    } else {
        /* the item only: its record's header and key, maybe parked */
        rc = cmd_read_head(cc, req->key, req->klen, it,
                           proto_mflag_find(req, 'u') == NULL);
        if (rc == CMD_READ_PARK) {
            return rc;
        }
        *old_exp = it->exp_abs_s;
    }
    int add_rc = CASK_ENOTFOUND;
    if (rc == CASK_ENOTFOUND && proto_mflag_find(req, 'N') != NULL) {
        /* autovivify: create an empty item; the client that created it
         * wins the right to fill it (W). Made before anything is counted
         * or logged, so that a parked add leaves nothing to take back. */
        bool was = cmd_park_begin(cc);
        exp = vivify_exp(req, -1, t_exp, n_exp);
        add_rc = cask_store(cc->env->store, CASK_ADD, req->key, req->klen, "",
                            0, 0, exp, 0, &cas);
        cmd_park_end(was);
        if (add_rc == CASK_EBLOCKED) {
            return add_rc; /* nothing made or counted: it runs again */
        }
    }
    if (!has_T) {
        cc->ctr->cmd_get++; /* with T it counts as a touch */
    }
    cmd_watch_get(cc, req->key, req->klen, rc, it);
    /* memcached 1.6.18 counts an mg with T as a touch (cmd_touch,
     * touch_hits) only when it finds or makes the item; a miss is a get
     * miss (cmd_get, get_misses), the T never applied */
    if (rc == CASK_OK) {
        cc->ctr->cmd_touch += has_T;
        cmd_admin_count_hit(cc, req->klen, it, has_T);
        return rc;
    }
    if (rc != CASK_ENOTFOUND) {
        cc->ctr->cmd_touch += has_T;
        return rc;
    }
    if (proto_mflag_find(req, 'N') == NULL) {
        cc->ctr->cmd_get += has_T;
        count_miss(cc, it, false);
        return rc;
    }
    /* If another client created it first, this is a plain hit on that
     * item. memcached counts either as a hit, not a miss, and the item
     * made in total_items. */
    count_gone(cc, it);
    rc = add_rc;
    if (rc != CASK_OK && rc != CASK_ENOTSTORED) {
        cc->ctr->cmd_get += has_T;
        count_miss(cc, &(struct cask_item){.gone = CASK_GONE_ABSENT}, false);
        return rc;
    }
    *created = rc == CASK_OK;
    if (*created) {
        cc->ctr->total_items++;
    }
    /* memcached bumps the item it made too (marked fetched), unless u */
    rc = cask_get_fetch(cc->env->store, req->key, req->klen, it,
                        want_val ? val : NULL,
                        proto_mflag_find(req, 'u') == NULL);
    if (rc == CASK_ENOTFOUND && *created) {
        /* N with a TTL already past (N-1): memcached answers with the item
         * it just made, expired from the start */
        memset(it, 0, sizeof(*it));
        it->cas = cas;
        it->exp_abs_s = exp;
        it->atime_s = now_s(cc->env);
        rc = CASK_OK;
    }
    if (rc == CASK_OK && !*created) {
        *old_exp = it->exp_abs_s;
    }
    if (rc == CASK_OK) {
        cc->ctr->cmd_touch += has_T;
        cmd_admin_count_hit(cc, req->klen, it, has_T);
    } else if (rc == CASK_ENOTFOUND) {
        cc->ctr->cmd_get += has_T;
        count_miss(cc, &(struct cask_item){.gone = CASK_GONE_ABSENT}, false);
    }
    return rc;
}

/* mg with an opaque too long, before which flags io stand: memcached
 * looks the item up (a read unless u, or unless a flag that makes it
 * delay its bump, N T R l h, is there: the error skips that bump), makes
 * it on a miss with N, applies the T and N before the O, then refuses.
 * Nothing is counted as won (no W). One write at most (an item made takes
 * its TTL with it), so a write that would wait parks the request. */
static enum cmd_status
mg_opaque_long(struct cmd_conn *cc, const struct proto_req *req, unsigned io,
               int64_t t_exp, int64_t n_exp)
{
    bool fetch = true;
    bool created = false;
    struct cask_item it;
    uint64_t cas = 0;
    bool was;
    int rc;

    for (unsigned i = 0; i < req->nmflags; i++) {
        if (strchr("uNTRlh", req->mflags[i].flag) != NULL) {
            fetch = false;
        }
    }
    memset(&it, 0, sizeof(it));
    rc = cask_get_fetch(cc->env->store, req->key, req->klen, &it, NULL, fetch);
    if (rc == CASK_ENOTFOUND && proto_mflag_find(req, 'N') != NULL) {
        was = cmd_park_begin(cc);
        rc = cask_store(cc->env->store, CASK_ADD, req->key, req->klen, "", 0, 0,
                        vivify_exp(req, (int)io, t_exp, n_exp), 0, &cas);
        cmd_park_end(was);
        if (cmd_parked(cc, rc)) {
            return CMD_PARK; /* nothing made: it runs again */
        }
        created = rc == CASK_OK;
        if (rc == CASK_ENOTSTORED) {
            rc = cask_get(cc->env->store, req->key, req->klen, &it, NULL);
        }
    }
    if (rc == CASK_OK && !created) {
        int64_t exp = it.exp_abs_s;

        for (unsigned i = 0; i < io; i++) {
            if (req->mflags[i].flag == 'T') {
                exp = t_exp;
            }
        }
        if (exp != it.exp_abs_s) {
            was = cmd_park_begin(cc);
            rc = cask_touch_fetch(cc->env->store, req->key, req->klen, exp,
                                  NULL, NULL, false);
            cmd_park_end(was);
            if (cmd_parked(cc, rc)) {
                return CMD_PARK; /* nothing touched: it runs again */
            }
        }
    } else if (rc != CASK_OK && rc != CASK_ENOTFOUND) {
        emit_server_error(cc, rc);
        return CMD_DONE;
    }
    emit_str(cc, ERR_OPAQUE_LONG);
    return CMD_DONE;
}

static enum cmd_status
do_mg(struct cmd_conn *cc, const struct proto_req *req)
{
    bool want_val = proto_mflag_find(req, 'v') != NULL;
    bool quiet = proto_mflag_find(req, 'q') != NULL;
    struct cask_item it;
    char *val = NULL;
    struct cask_vref ref = {.fd = -1};
    char line[LINE_CAP];
    struct proto_out o;
    bool created;
    bool win = false;
    int64_t exp;
    unsigned state;
    unsigned i;
    int rc;

    /* each TTL token read once: the item written and the t shown agree */
    int64_t t_exp = exp_abs(cc->env, mflag_exptime(req, 'T'));
    int64_t n_exp = exp_abs(cc->env, mflag_exptime(req, 'N'));
    int io = proto_mflag_opaque_long(req);
    if (io >= 0) {
        return mg_opaque_long(cc, req, (unsigned)io, t_exp, n_exp);
    }
    memset(&it, 0, sizeof(it));
    rc = mg_lookup(cc, req, want_val, t_exp, n_exp, &it, &val, &ref, &exp,
                   &created);
    if (rc == CMD_READ_PARK || cmd_parked(cc, rc)) {
        return CMD_PARK;
    }
    if (rc == CASK_ENOTFOUND) {
        if (!quiet) {
            meta_simple(cc, req, "EN");
        }
        return CMD_DONE;
    }
    if (rc != CASK_OK) {
        cmd_read_free(val);
        emit_server_error(cc, rc);
        return CMD_DONE;
    }
    proto_out_init(&o, line, sizeof(line));
    if (want_val) {
        proto_out_mem(&o, "VA ", 3);
        proto_out_u64(&o, it.vlen);
    } else {
        proto_out_mem(&o, "HD", 2);
    }
    /* exp follows the item's expiry as memcached changes it, flag by flag */
    for (i = 0; i < req->nmflags; i++) {
        const struct proto_mflag *m = &req->mflags[i];

        switch (m->flag) {
        case 'T':
            exp = t_exp;
            break;
        case 'N':
            if (created) {
                exp = n_exp;
                win = true;
            }
            break;
        case 'R':
            /* recache: win when the TTL left is below the token */
            if (!created && exp != 0 &&
                exp < exp_abs(cc->env, mflag_exptime(req, 'R'))) {
                win = true;
            }
            break;
        case 'c':
            proto_out_mem(&o, " c", 2);
            proto_out_u64(&o, cc->env->cas_disabled ? 0 : it.cas);
            break;
        case 'f':
            proto_out_mem(&o, " f", 2);
            proto_out_u64(&o, it.flags);
            break;
        case 's':
            proto_out_mem(&o, " s", 2);
            proto_out_u64(&o, it.vlen);
            break;
        case 't':
            proto_out_mem(&o, " t", 2);
            out_ttl(&o, cc->env, exp);
            break;
        case 'h':
            proto_out_mem(&o, it.fetched ? " h1" : " h0", 3);
            break;
        case 'l':
            /* seconds since the access before this one, as memcached */
            proto_out_mem(&o, " l", 2);
            proto_out_u64(&o, since_s(cc->env, it.atime_s));
            break;
        default:
            meta_common_flag(&o, req, m);
            break;
        }
    }
    /* An item made took the TTL of its last T or N (vivify_exp), the one
     * exp ends with here: nothing is left to write. */
    /* memcached appends these after the requested flags, in this order */
    state = cmd_meta_fetch(cc->env->meta, req->key, req->klen, it.cas, win);
    if (state & CMD_META_Z) {
        proto_out_mem(&o, " Z", 2);
    }
    if (state & CMD_META_X) {
        proto_out_mem(&o, " X", 2);
    }
    if (state & CMD_META_W) {
        proto_out_mem(&o, " W", 2);
    }
    proto_out_mem(&o, "\r\n", 2);
    if (want_val) {
        emit_value(cc, &o, val, &ref, it.vlen);
    } else {
        emit_out(cc, &o);
    }
    return CMD_DONE;
}

/* Meta C0 on ms and md: the store reads cas 0 as "no check", but memcached
 * compares it and no item has cas 0. Returns true (and sets *rc) when C0 was
 * given. */
static bool
cas_zero(struct cmd_conn *cc, const struct proto_req *req, int *rc)
{
    const struct proto_mflag *m = proto_mflag_find(req, 'C');
    struct cask_item it;

    if (m == NULL || mflag_u64(req, 'C', 0) != 0) {
        return false;
    }
    *rc = cask_get(cc->env->store, req->key, req->klen, &it, NULL);
    if (*rc == CASK_OK) {
        *rc = CASK_EEXISTS;
    }
    return true;
}

/* A meta C other than 0 under -C, where memcached's items all have cas 0:
 * EX for an item (*rc), true; false when the key is missing (the command
 * goes on: NF, or ma N creates it). */
static bool
cas_mismatch_disabled(struct cmd_conn *cc, const struct proto_req *req, int *rc)
{
    struct cask_item it;

    if (cask_get(cc->env->store, req->key, req->klen, &it, NULL) != CASK_OK) {
        return false;
    }
    *rc = CASK_EEXISTS;
    return true;
}

/* ms I (set or replace with C) and a cas older than the item's: memcached
 * stores anyway, keeps the old TTL, and marks the new item stale, keeping
 * the old item's token-sent bit. */
static int
store_older_cas(struct cmd_conn *cc, const struct proto_req *req,
                enum cask_store_mode mode, uint64_t cas_in, uint64_t *cas_out)
{
    struct cask_item it;
    unsigned bits;
    int rc = cask_get(cc->env->store, req->key, req->klen, &it, NULL);

    if (rc != CASK_OK) {
        return rc;
    }
    if (cas_in >= it.cas) {
        return CASK_EEXISTS;
    }
    bits = cmd_meta_bits(cc->env->meta, req->key, req->klen, it.cas);
    rc = cask_store(cc->env->store, mode, req->key, req->klen, req->data,
                    req->nbytes, (uint32_t)mflag_u64(req, 'F', 0), it.exp_abs_s,
                    it.cas, cas_out);
    if (rc == CASK_OK) {
        cmd_meta_put(cc->env->meta, req->key, req->klen, *cas_out,
                     (bits & CMD_META_TOKEN) | CMD_META_STALE);
    }
    return rc;
}

static enum cmd_status
do_ms(struct cmd_conn *cc, const struct proto_req *req)
{
    const struct proto_mflag *m = proto_mflag_find(req, 'M');
    enum cask_store_mode mode = CASK_SET;
    bool quiet = proto_mflag_find(req, 'q') != NULL;
    uint64_t cas_out = 0;
    uint64_t cas_in;
    char line[LINE_CAP];
    struct proto_out o;
    const char *code;
    unsigned i;
    int rc;

    if (m != NULL) {
        switch (m->tok[0]) { /* the parser let only these through */
        case 'E':
            mode = CASK_ADD;
            break;
        case 'A':
            mode = CASK_APPEND;
            break;
        case 'P':
            mode = CASK_PREPEND;
            break;
        case 'R':
            mode = CASK_REPLACE;
            break;
        default:
            break;
        }
    }
    struct cmd_class_counters *k =
            cmd_admin_cls(cc, req->klen, (uint32_t)req->nbytes,
                          (uint32_t)mflag_u64(req, 'F', 0));
    /* memcached counts a set or replace with C (C0 too) as a cas command:
     * in cas_hits, cas_badval or cas_misses */
    bool counts_cas = (mode == CASK_SET || mode == CASK_REPLACE) &&
                      proto_mflag_find(req, 'C') != NULL;
    struct cmd_watch_pre pre;
    cmd_watch_take(cc, req->key, req->klen, &pre);
    /* C as memcached's ms applies it: ignored by add; on set and replace a
     * compare like the cas command (C0 never matches); on append and
     * prepend C0 means no compare and a missing key is NS. memcached's
     * append and prepend compare C as the new item's own cas, which -C
     * leaves 0: there C is ignored too. */
    cas_in = mode == CASK_ADD || (cc->env->cas_disabled &&
                                  (mode == CASK_APPEND || mode == CASK_PREPEND))
                     ? 0
                     : mflag_u64(req, 'C', 0);
    if ((mode == CASK_SET || mode == CASK_REPLACE) && cas_zero(cc, req, &rc)) {
        /* rc is set */
    } else {
        rc = cask_store(cc->env->store, mode, req->key, req->klen, req->data,
                        req->nbytes, (uint32_t)mflag_u64(req, 'F', 0),
                        exp_abs(cc->env, mflag_exptime(req, 'T')), cas_in,
                        &cas_out);
        if ((rc == CASK_ENOTFOUND || rc == CASK_ETOOBIG) &&
            (mode == CASK_APPEND || mode == CASK_PREPEND)) {
            rc = CASK_ENOTSTORED; /* too long a result too, as memcached */
        }
        if (rc == CASK_OK) {
            cmd_meta_forget(cc->env->meta, req->key, req->klen, cas_out);
        } else if (rc == CASK_EEXISTS && proto_mflag_find(req, 'I') != NULL &&
                   (mode == CASK_SET || mode == CASK_REPLACE)) {
            /* memcached's append and prepend never take the I path */
            rc = store_older_cas(cc, req, mode, cas_in, &cas_out);
        }
    }
    if (cmd_parked(cc, rc)) {
        return CMD_PARK; /* nothing stored or counted: it runs again */
    }
    cmd_watch_log(cc, req->key, req->klen, &pre);
    cc->ctr->cmd_set++;
    k->cmd_set++;
    watch_store(cc, req, mode,
                cas_in != 0 && (mode == CASK_SET || mode == CASK_REPLACE), rc,
                exp_abs(cc->env, mflag_exptime(req, 'T')),
                (uint32_t)mflag_u64(req, 'F', 0));
    switch (rc) {
    case CASK_OK:
        cc->ctr->total_items++;
        if (counts_cas) {
            cc->ctr->cas_hits++;
            k->cas_hits++;
        }
        code = "HD";
        break;
    case CASK_ENOTSTORED:
        code = "NS";
        break;
    case CASK_EEXISTS:
        if (counts_cas) {
            cc->ctr->cas_badval++;
            k->cas_badval++;
        }
        code = "EX";
        break;
    case CASK_ENOTFOUND:
        if (counts_cas) {
            cc->ctr->cas_misses++;
        }
        code = "NF";
        break;
    default:
        if (rc == CASK_ETOOBIG) {
            cc->ctr->store_too_large++;
        } else if (rc == CASK_ENOMEM) {
            cc->ctr->store_no_memory++;
            k->outofmemory++;
        }
        emit_server_error(cc, rc);
        return CMD_DONE;
    }
    if (rc == CASK_OK && quiet) {
        return CMD_DONE;
    }
    proto_out_init(&o, line, sizeof(line));
    proto_out_str(&o, code);
    for (i = 0; i < req->nmflags; i++) {
        if (req->mflags[i].flag == 'c') {
            proto_out_mem(&o, " c", 2);
            proto_out_u64(&o, cc->env->cas_disabled ? 0 : cas_out);
        } else {
            meta_common_flag(&o, req, &req->mflags[i]);
        }
    }
    proto_out_mem(&o, "\r\n", 2);
    emit_out(cc, &o);
    return CMD_DONE;
}

/* md I: memcached keeps the item, bumps its cas and marks it stale (and
 * not yet won), so a later add fails, gets still see it and the next mg
 * gets X and W. Rewriting the item bumps the cas; the stale mark goes to
 * the meta table. T, if given, sets the new TTL. memcached marks the item
 * in place, so it stays fetched if it was: the rewrite, a write, cleared
 * the bit, and a read without the value sets it again. */
static int
invalidate(struct cmd_conn *cc, const struct proto_req *req, uint64_t cas_in)
{
    struct cask_item it;
    char *val = NULL;
    uint64_t cas_out = 0;
    int64_t exp;
    int rc;

    rc = cask_get(cc->env->store, req->key, req->klen, &it, &val);
    if (rc != CASK_OK) {
        return rc;
    }
    if (cas_in != 0 && cas_in != it.cas) {
        free(val);
        return CASK_EEXISTS;
    }
    exp = proto_mflag_find(req, 'T') != NULL
                  ? exp_abs(cc->env, mflag_exptime(req, 'T'))
                  : it.exp_abs_s;
    rc = cask_store(cc->env->store, CASK_SET, req->key, req->klen, val, it.vlen,
                    it.flags, exp, it.cas, &cas_out);
    free(val);
    if (rc == CASK_OK) {
        cmd_meta_put(cc->env->meta, req->key, req->klen, cas_out,
                     CMD_META_STALE);
        if (it.fetched) {
            struct cask_item again;

            (void)cask_get_fetch(cc->env->store, req->key, req->klen, &again,
                                 NULL, true);
        }
    }
    return rc;
}

static enum cmd_status
do_md(struct cmd_conn *cc, const struct proto_req *req)
{
    bool quiet = proto_mflag_find(req, 'q') != NULL;
    uint64_t cas_in = mflag_u64(req, 'C', 0);
    struct cask_item gone = {0};
    bool kept = false; /* md I: the item stays, marked stale */
    int rc;

    struct cmd_watch_pre wpre;
    cmd_watch_take(cc, req->key, req->klen, &wpre);
    if (cc->env->cas_disabled && proto_mflag_find(req, 'C') != NULL) {
        /* with -C every item's cas is 0 (memcached): C0 matches any item,
         * another C none */
        if (cas_in != 0 && cas_mismatch_disabled(cc, req, &rc)) {
            /* rc is set */
        } else if (proto_mflag_find(req, 'I') != NULL) {
            rc = invalidate(cc, req, 0);
            kept = true;
        } else {
            rc = cask_delete_item(cc->env->store, req->key, req->klen, 0,
                                  &gone);
            if (rc == CASK_OK) {
                cmd_meta_forget(cc->env->meta, req->key, req->klen, 0);
            }
        }
    } else if (cas_zero(cc, req, &rc)) {
        /* rc is set */
    } else if (proto_mflag_find(req, 'I') != NULL) {
        rc = invalidate(cc, req, cas_in);
        kept = true;
    } else {
        rc = cask_delete_item(cc->env->store, req->key, req->klen, cas_in,
                              &gone);
        if (rc == CASK_OK) {
            cmd_meta_forget(cc->env->meta, req->key, req->klen, 0);
        }
    }
    if (cmd_parked(cc, rc)) {
        return CMD_PARK;
    }
    cmd_watch_log(cc, req->key, req->klen, &wpre);

    switch (rc) {
    case CASK_OK:
        cc->ctr->delete_hits++;
        if (kept) {
            cc->ctr->cls[cmd_admin_key_class(cc->env, req->key, req->klen)]
                    .delete_hits++;
        } else {
            cmd_admin_cls(cc, req->klen, gone.vlen, gone.flags)->delete_hits++;
        }
        if (!quiet) {
            meta_simple(cc, req, "HD");
        }
        break;
    case CASK_ENOTFOUND:
        cc->ctr->delete_misses++;
        meta_simple(cc, req, "NF");
        break;
    case CASK_EEXISTS:
        /* memcached counts a C that does not match as a miss */
        cc->ctr->delete_misses++;
        meta_simple(cc, req, "EX");
        break;
    default:
        emit_server_error(cc, rc);
        break;
    }
    return CMD_DONE;
}

/* ma N with C on a missing key: memcached creates the item with J (no
 * compare: there is nothing to compare with). If another client creates
 * it first, the ma runs on that item, C compared. */
static int
ma_create(struct cmd_conn *cc, const struct proto_req *req,
          const struct cask_arith *a, uint64_t *v, struct cask_item *it)
{
    char num[24];
    uint64_t cas = 0;
    int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)a->initial);
    int rc = cask_store(cc->env->store, CASK_ADD, req->key, req->klen, num,
                        (size_t)n, 0, a->vivify_exp_abs_s, 0, &cas);

    if (rc == CASK_ENOTSTORED) {
        return cask_arith(cc->env->store, req->key, req->klen, a, v, it);
    }
    if (rc == CASK_OK) {
        memset(it, 0, sizeof(*it));
        it->exp_abs_s = a->vivify_exp_abs_s;
        it->cas = cas;
        it->vlen = (uint32_t)n;
        it->arith_made = CASK_ARITH_CREATED;
        *v = a->initial;
    }
    return rc;
}

static enum cmd_status
do_ma(struct cmd_conn *cc, const struct proto_req *req)
{
    const struct proto_mflag *m = proto_mflag_find(req, 'M');
    bool quiet = proto_mflag_find(req, 'q') != NULL;
    bool want_val = proto_mflag_find(req, 'v') != NULL;
    struct cask_arith a;
    struct arith_carry carry;
    struct cask_item it;
    uint64_t v = 0;
    char line[LINE_CAP];
    char num[24];
    struct proto_out o;
    struct proto_out no;
    bool existed = false;
    int64_t exp;
    unsigned i;
    int rc;
    int io = proto_mflag_opaque_long(req);
    /* each TTL token read once: the item written and the t shown agree */
    int64_t t_exp = exp_abs(cc->env, mflag_exptime(req, 'T'));
    int64_t n_exp = exp_abs(cc->env, mflag_exptime(req, 'N'));

    memset(&a, 0, sizeof(a));
    memset(&it, 0, sizeof(it));
    a.incr = m == NULL || strchr("I+", m->tok[0]) != NULL;
    a.delta = mflag_u64(req, 'D', 1);
    a.vivify = proto_mflag_find(req, 'N') != NULL;
    a.initial = mflag_u64(req, 'J', 0);
    /* memcached applies T and N where they stand among the flags before
     * an overlong O: an item N makes takes the last of them; T on an item
     * found is written with its new number, in one record (so the write
     * parks whole, or is made whole), and lost when the number grew, as
     * memcached sets it on the old item it still holds */
    for (i = 0; i < req->nmflags && (int)i != io; i++) {
        if (req->mflags[i].flag == 'T') {
            a.set_exp = true;
            a.exp_abs_s = t_exp;
            a.vivify_exp_abs_s = t_exp;
        } else if (req->mflags[i].flag == 'N') {
            a.vivify_exp_abs_s = n_exp;
        }
    }
    a.cas_in = mflag_u64(req, 'C', 0);
    /* whether N creates the item (the arithmetic below fills it again) */
    if (a.vivify &&
        cask_get(cc->env->store, req->key, req->klen, &it, NULL) == CASK_OK) {
        existed = true;
    }
    struct cmd_watch_pre wpre;
    cmd_watch_take(cc, req->key, req->klen, &wpre);
    /* unlike ms and md, ma takes C0 as "no compare" (memcached) */
    carry_before(cc, req, &carry);
    if (cc->env->cas_disabled && a.cas_in != 0 &&
        cas_mismatch_disabled(cc, req, &rc)) {
        /* -C: no item matches a C other than 0; memcached finds an empty
         * value non-numeric first */
        struct cask_item cur;

        if (cask_get(cc->env->store, req->key, req->klen, &cur, NULL) ==
                    CASK_OK &&
            cur.vlen == 0) {
            rc = CASK_ENONNUMERIC;
        }
    } else {
        if (cc->env->cas_disabled) {
            a.cas_in = 0;
        }
        rc = cask_arith(cc->env->store, req->key, req->klen, &a, &v, &it);
    }
    if (rc == CASK_ENOTFOUND && a.vivify && a.cas_in != 0) {
        rc = ma_create(cc, req, &a, &v, &it);
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
        carry_after(cc, req, &carry, &it);
        /* memcached: an item N made is stored, not incremented; a longer
         * number is a new item replacing the old one, and a hit */
        if ((a.vivify && !existed) || it.arith_made == CASK_ARITH_GREW) {
            cc->ctr->total_items++;
        }
        if (a.vivify && !existed) {
            /* made, not incremented; memcached logs it before it gives
             * it N's TTL */
            cmd_watch_created(cc, req->key, req->klen, it.vlen, 0);
        } else if (a.incr) {
            cc->ctr->incr_hits++;
            cmd_admin_cls(cc, req->klen, it.vlen, it.flags)->incr_hits++;
        } else {
            cc->ctr->decr_hits++;
            cmd_admin_cls(cc, req->klen, it.vlen, it.flags)->decr_hits++;
        }
        break;
    case CASK_ENOTFOUND:
        if (a.incr) {
            cc->ctr->incr_misses++;
        } else {
            cc->ctr->decr_misses++;
        }
        meta_simple(cc, req, "NF");
        return CMD_DONE;
    case CASK_EEXISTS:
        meta_simple(cc, req, "EX");
        return CMD_DONE;
    case CASK_ENONNUMERIC:
        emit_str(cc, "CLIENT_ERROR cannot increment or decrement "
                     "non-numeric value\r\n");
        return CMD_DONE;
    default:
        emit_server_error(cc, rc);
        return CMD_DONE;
    }
    /* memcached applies T (and, for a created item, N) while it writes
     * the return flags, so a t before them shows the earlier TTL */
    bool made = it.arith_made == CASK_ARITH_CREATED;
    exp = made ? 0 : it.arith_exp_was_abs_s;
    proto_out_init(&no, num, sizeof(num));
    proto_out_u64(&no, v);
    proto_out_init(&o, line, sizeof(line));
    if (want_val) {
        proto_out_mem(&o, "VA ", 3);
        proto_out_u64(&o, no.len);
    } else {
        proto_out_mem(&o, "HD", 2);
    }
    for (i = 0; i < req->nmflags && (int)i != io; i++) {
        const struct proto_mflag *f = &req->mflags[i];

        if (f->flag == 'c') {
            proto_out_mem(&o, " c", 2);
            proto_out_u64(&o, cc->env->cas_disabled ? 0 : it.cas);
        } else if (f->flag == 't') {
            proto_out_mem(&o, " t", 2);
            out_ttl(&o, cc->env, exp);
        } else if (f->flag == 'T') {
            exp = t_exp;
        } else if (f->flag == 'N' && made) {
            exp = n_exp;
        } else {
            meta_common_flag(&o, req, f);
        }
    }
    if (io >= 0) {
        /* the number changed and the flags before O applied (memcached) */
        emit_str(cc, ERR_OPAQUE_LONG);
        return CMD_DONE;
    }
    /* q hides HD and VA, except for an item this call created (memcached) */
    if (quiet && (existed || !a.vivify)) {
        return CMD_DONE;
    }
    proto_out_mem(&o, "\r\n", 2);
    if (want_val) {
        proto_out_mem(&o, num, no.len);
        proto_out_mem(&o, "\r\n", 2);
    }
    emit_out(cc, &o);
    return CMD_DONE;
}

static void
do_me(struct cmd_conn *cc, const struct proto_req *req)
{
    struct cask_item it;
    char line[LINE_CAP];
    struct proto_out o;
    int rc;

    memset(&it, 0, sizeof(it));
    rc = cask_get(cc->env->store, req->key, req->klen, &it, NULL);
    cmd_watch_get(cc, req->key, req->klen, rc, &it);
    if (rc == CASK_ENOTFOUND) {
        emit(cc, "EN\r\n", 4);
        return;
    }
    if (rc != CASK_OK) {
        emit_server_error(cc, rc);
        return;
    }
    /* cls and size are the slab class and item size memcached would give
     * this item (as stats items and metadump count them); la is seconds
     * since the last access */
    proto_out_init(&o, line, sizeof(line));
    proto_out_mem(&o, "ME ", 3);
    if (req->key_b64) {
        /* as memcached: the key encoded again from its bytes (so "a2_V5"
         * shows as "a2V5") */
        char enc[(PROTO_KEY_MAX + 2) / 3 * 4 + 1];
        int n = proto_b64_encode(req->key, req->klen, enc, sizeof(enc));

        proto_out_mem(&o, enc, n > 0 ? (size_t)n : 0);
    } else {
        proto_out_mem(&o, req->key, req->klen);
    }
    /* memcached 1.6.18 prints its clock minus the expiry: the TTL left,
     * negated (-1 for none) */
    proto_out_str(&o, " exp=");
    if (it.exp_abs_s == 0) {
        proto_out_str(&o, "-1");
    } else {
        proto_out_i64(&o, now_s(cc->env) - it.exp_abs_s);
    }
    proto_out_str(&o, " la=");
    proto_out_u64(&o, since_s(cc->env, it.atime_s));
    proto_out_str(&o, " cas=");
    proto_out_u64(&o, it.cas);
    proto_out_str(&o, it.fetched ? " fetch=yes cls=" : " fetch=no cls=");
    proto_out_u64(&o, cmd_admin_class(cc->env, req->klen, it.vlen, it.flags));
    proto_out_str(&o, " size=");
    proto_out_u64(&o,
                  cmd_admin_item_size(cc->env, req->klen, it.vlen, it.flags));
    proto_out_mem(&o, "\r\n", 2);
    emit_out(cc, &o);
}

/* ---- dispatch ---- */

/* A write: its store calls may park (cmd_park_begin); a parked one has
 * written, counted and answered nothing. */
static enum cmd_status
run_write(struct cmd_conn *cc, const struct proto_req *req)
{
    bool was = cmd_park_begin(cc);
    enum cmd_status st = CMD_DONE;

    switch (req->cmd) {
    case PROTO_CMD_DELETE:
        st = do_delete(cc, req);
        break;
    case PROTO_CMD_INCR:
    case PROTO_CMD_DECR:
        st = do_arith(cc, req);
        break;
    case PROTO_CMD_MS:
        st = do_ms(cc, req);
        break;
    case PROTO_CMD_MD:
        st = do_md(cc, req);
        break;
    case PROTO_CMD_MA:
        st = do_ma(cc, req);
        break;
    default:
        st = do_store(cc, req);
        break;
    }
    cmd_park_end(was);
    return st;
}

static enum cmd_status
run(struct cmd_conn *cc, const struct proto_req *req)
{
    const struct cmd_env *env = cc->env;

    switch (req->cmd) {
    case PROTO_CMD_GET:
    case PROTO_CMD_GETS:
    case PROTO_CMD_GAT:
    case PROTO_CMD_GATS:
        return do_get(cc, req);
    case PROTO_CMD_SET:
    case PROTO_CMD_ADD:
    case PROTO_CMD_REPLACE:
    case PROTO_CMD_APPEND:
    case PROTO_CMD_PREPEND:
    case PROTO_CMD_CAS:
    case PROTO_CMD_DELETE:
    case PROTO_CMD_INCR:
    case PROTO_CMD_DECR:
    case PROTO_CMD_MS:
    case PROTO_CMD_MD:
    case PROTO_CMD_MA:
        return run_write(cc, req);
    case PROTO_CMD_TOUCH:
        return do_touch(cc, req);
    case PROTO_CMD_FLUSH_ALL:
        return do_flush(cc, req);
    case PROTO_CMD_ADMIN:
        return cmd_admin_run(cc, req);
    case PROTO_CMD_STATS:
        if (cmd_admin_stats(cc, req->args, req->args_len)) {
            break;
        }
        if (env->stats != NULL) {
            env->stats(env->stats_arg, req->args, req->args_len, &cc->out);
        } else {
            emit_str(cc, "END\r\n");
        }
        break;
    case PROTO_CMD_VERSION:
        emit_str(cc, "VERSION ");
        emit_str(cc, env->version != NULL ? env->version : "0");
        emit(cc, "\r\n", 2);
        break;
    case PROTO_CMD_VERBOSITY:
        if (env->verbosity != NULL) {
            env->verbosity(env->verbosity_arg, req->level);
        }
        reply(cc, req, "OK\r\n");
        break;
    case PROTO_CMD_QUIT:
        cc->quit = true;
        return CMD_CLOSE;
    case PROTO_CMD_SHUTDOWN:
        if (!env->enable_shutdown) {
            emit_str(cc, "ERROR: shutdown not enabled\r\n");
        } else if (req->args_len == 0 ||
                   (req->args_len == 8 &&
                    memcmp(req->args, "graceful", 8) == 0)) {
            /* every stop here is graceful: connections drain first */
            return CMD_SHUTDOWN;
        } else {
            emit_str(cc, "CLIENT_ERROR invalid shutdown mode\r\n");
        }
        break;
    /* memcached 1.6.18 counts only me in cmd_meta (its meta_cmds) */
    case PROTO_CMD_MG:
        return do_mg(cc, req);
    case PROTO_CMD_MN:
        emit(cc, "MN\r\n", 4);
        break;
    case PROTO_CMD_ME:
        cc->ctr->meta_cmds++;
        do_me(cc, req);
        break;
    default:
        emit_str(cc, "ERROR\r\n");
        break;
    }
    return CMD_DONE;
}

static bool
is_meta(enum proto_cmd c)
{
    return c >= PROTO_CMD_MG;
}

/* What a look ahead does with a request pipelined after a parked one:
 * reads its keys ahead (a get, gets, or an mg with v that changes
 * nothing), reads the header and key of its key's record ahead (an mg
 * without v that changes nothing: cmd_read_head), passes it (mn), or
 * stops there. An mg with T or N changes the item, and
 * one with h or l reports the fetched bit or access time that a read ahead
 * of the same key for a later request could set before it runs. *fetch:
 * whether its reads count as reads (not for mg u). */
enum ahead_kind { AHEAD_STOP, AHEAD_READ, AHEAD_HEAD, AHEAD_PASS };

static enum ahead_kind
ahead_kind(const struct proto_req *req, bool *fetch)
{
    *fetch = true;
    switch (req->cmd) {
    case PROTO_CMD_GET:
    case PROTO_CMD_GETS:
        return AHEAD_READ;
    case PROTO_CMD_MN:
        return AHEAD_PASS;
    case PROTO_CMD_MG:
        for (unsigned i = 0; i < req->nmflags; i++) {
            if (strchr("TNhl", req->mflags[i].flag) != NULL) {
                return AHEAD_STOP;
            }
        }
        if (proto_mflag_opaque_long(req) >= 0) {
            return AHEAD_STOP; /* refused after a lookup of its own */
        }
        *fetch = proto_mflag_find(req, 'u') == NULL;
        return proto_mflag_find(req, 'v') != NULL ? AHEAD_READ : AHEAD_HEAD;
    default:
        return AHEAD_STOP;
    }
}

/* A get or mg parked on a cold key, its request used bytes of
 * buf[0..len): look at the requests pipelined after it and start the
 * reads of their keys too, so that their cold reads overlap its own
 * (ahead_kind says which requests; one not complete yet and full slots
 * stop the look too). */
static void
look_ahead(struct cmd_conn *cc, const char *buf, size_t len, size_t used)
{
    struct cmd_reader *rd = &cc->rd;
    struct proto_parser p;
    size_t off = rd->ahead_end > used ? rd->ahead_end : used;

    proto_parser_init(&p, cc->env->item_max);
    while (off < len) {
        struct proto_req req;
        size_t n = 0, pos = 0;
        const char *key;
        size_t klen;
        bool fetch;

        if (proto_parse(&p, &req, buf + off, len - off, &n) != PROTO_OK) {
            return;
        }
        switch (ahead_kind(&req, &fetch)) {
        case AHEAD_STOP:
            return;
        case AHEAD_PASS:
            break;
        case AHEAD_HEAD:
            if (!cmd_read_ahead_head_at(cc, off, req.key, req.klen, fetch)) {
                return;
            }
            break;
        case AHEAD_READ:
            if (req.cmd == PROTO_CMD_MG) {
                if (!cmd_read_ahead_at(cc, off, req.key, req.klen, fetch)) {
                    return;
                }
                break;
            }
            while (proto_key_next(&req, &pos, &key, &klen)) {
                if (!cmd_read_ahead_at(cc, off, key, klen, fetch)) {
                    return; /* full: the rest of this line next time */
                }
            }
            break;
        }
        off += n;
        rd->ahead_end = off;
    }
}

/* The request after the current one, in p[0..n), when it is a whole
 * classic get or gets: the index lines of its first key start loading
 * (cask_prefetch) while the current one runs. A peek, not a parse: what
 * it takes for a key is only a hint, and the parser decides later. */
static void
prefetch_next(struct cmd_conn *cc, const char *p, size_t n)
{
    size_t i;

    if (n > 5 && memcmp(p, "gets ", 5) == 0) {
        i = 5;
    } else if (n > 4 && memcmp(p, "get ", 4) == 0) {
        i = 4;
    } else {
        return;
    }
    while (i < n && p[i] == ' ') {
        i++;
    }
    size_t k = i;
    size_t end = n - i > PROTO_KEY_MAX ? i + PROTO_KEY_MAX + 1 : n;
    while (k < end && p[k] != ' ' && p[k] != '\r' && p[k] != '\n') {
        k++;
    }
    if (k > i && k < end) {
        cask_prefetch(cc->env->store, p + i, k - i);
    }
}

static enum cmd_status
execute(struct cmd_conn *cc, const char *buf, size_t len, size_t *used)
{
    struct proto_req req;
    enum proto_status st;

    if (cc->job != NULL) {
        /* a dump in progress goes first; the input waits */
        *used = 0;
        cmd_admin_continue(cc);
        return CMD_DONE;
    }
    st = proto_parse(&cc->parser, &req, buf, len, used);
    memset(&cc->tag, 0, sizeof(cc->tag));
    cc->tag.silent = req.noreply && !is_meta(req.cmd);
    cc->tag.cmd = (uint8_t)req.cmd;
    switch (st) {
    case PROTO_NEED_MORE:
        return CMD_NEED_MORE;
    case PROTO_SWALLOW:
        return CMD_DONE;
    case PROTO_CLOSE:
        if (req.err != NULL) {
            emit_str(cc, req.err);
        }
        return CMD_CLOSE;
    case PROTO_ERROR:
        if (req.nomem) {
            /* refused for the budget of values still arriving */
            cc->ctr->store_no_memory++;
        }
        if (req.bad_chunk) {
            /* memcached made the item before it read the block */
            cc->ctr->cmd_set++;
            cmd_admin_cls(cc, req.klen, req.nbytes, req.flags)->cmd_set++;
            if (!is_meta(req.cmd)) {
                prefix_stats_set(req.key, req.klen);
            }
        }
        if (req.unlink) {
            /* memcached drops the old value rather than keep stale data;
             * it allocated no item, so counts no cmd_set. A delete that
             * would wait parks the request, the line not taken yet (the
             * refusal only started to drop its data block): it runs again
             * whole. */
            if (cmd_unlink_parks(cc, req.key, req.klen)) {
                cc->parser.swallow = 0;
                *used = 0;
                return CMD_PARK;
            }
            if (!req.nomem) {
                cc->ctr->store_too_large++;
            }
            if (!is_meta(req.cmd)) {
                prefix_stats_set(req.key, req.klen);
            }
            cmd_meta_forget(cc->env->meta, req.key, req.klen, 0);
        }
        /* noreply silences errors of classic commands; meta errors always
         * go out */
        if (!req.noreply || is_meta(req.cmd)) {
            emit_str(cc, req.err);
        }
        return CMD_DONE;
    case PROTO_OK:
        break;
    }
    if (cc->get_paused && req.keys == NULL) {
        /* Not the line that paused: the connection fed other bytes. */
        cc->get_paused = false;
        cmd_read_reset(&cc->rd);
    }
    if (req.keys != NULL && *used < len) {
        /* a stream of gets (pipelined): the next one's lookup overlaps */
        prefetch_next(cc, buf + *used, len - *used);
    }
    {
        cc->write_parked = false;
        enum cmd_status rs = run(cc, &req);
        if (rs == CMD_PARK && !cc->write_parked && cc->rd.submit != NULL) {
            bool fetch;
            enum ahead_kind kind = ahead_kind(&req, &fetch);
            if (kind == AHEAD_READ || kind == AHEAD_HEAD) {
                look_ahead(cc, buf, len, *used);
            }
        }
        if (rs == CMD_PAUSE || rs == CMD_PARK) {
            *used = 0;
        }
        return rs;
    }
}

enum cmd_status
cmd_execute(struct cmd_conn *cc, const char *buf, size_t len, size_t *used)
{
    bool job = cc->job != NULL;
    if (cc->fresh) {
        cc->since_flush = 0;
    }
    enum cmd_status rs = execute(cc, buf, len, used);

    if (rs == CMD_NEED_MORE) {
        /* memcached writes its replies out while it waits for more */
        cc->fresh = true;
    } else if (*used > 0 && !job) {
        /* the bytes after this request came in the same read */
        cc->fresh = *used == len;
        switch (cc->tag.cmd) {
        case PROTO_CMD_GET:
        case PROTO_CMD_GETS:
        case PROTO_CMD_GAT:
        case PROTO_CMD_GATS:
        case PROTO_CMD_MN:
            cc->since_flush = 0;
            break;
        default:
            cc->since_flush++;
        }
    }
    if (*used > 0) {
        /* reads belong to their request; those read ahead for the next
         * ones stay */
        cmd_read_consumed(&cc->rd, *used);
    }
    return rs;
}
