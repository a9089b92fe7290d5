/* fake_cask.c - test-only, in-memory implementation of storage/cask.h: a
 * plain chained hash map, no disk, no threads. Lets the command executor be
 * tested (unit, golden transcript, fuzz) without the real engine. Follows
 * the contract in cask.h and memcached's item semantics where tests can
 * tell the difference (cas numbering, incr padding, flush points).
 * Must not be linked into the server.
 */
#include "storage/cask.h"
#include "storage/cask_walk.h"

#include "tests/golden/fake_cask.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBUCKETS 1024u

struct fitem {
    struct fitem *next;
    char *key;
    size_t klen;
    char *val;
    uint32_t vlen;
    uint32_t flags;
    int64_t exp_abs_s;
    uint64_t cas;
    int64_t stored_s;
    int64_t atime_s;
    bool fetched;
};

struct cask {
    struct cask_options o;
    struct fitem *b[NBUCKETS];
    uint64_t next_cas;
    uint64_t flushed_cas; /* items with cas <= this were flushed */
    int64_t flush_at_s;   /* pending flush point, 0 = none */
    uint64_t nkeys;
};

int fake_cask_fail_rc;
bool fake_cask_cold;
unsigned fake_cask_block_writes;
unsigned fake_cask_block_skip;
unsigned fake_cask_writes;
static bool park_on;

bool
cask_park(bool on)
{
    bool was = park_on;

    park_on = on;
    return was;
}

/* A write that would wait for a roll-over: fake_cask_block_writes. */
static bool
blocks(void)
{
    fake_cask_writes++;
    if (!park_on || fake_cask_block_writes == 0) {
        return false;
    }
    if (fake_cask_block_skip > 0) {
        fake_cask_block_skip--;
        return false;
    }
    fake_cask_block_writes--;
    return true;
}

/* Take the injected failure, if any. */
static int
injected(void)
{
    int rc = fake_cask_fail_rc;

    fake_cask_fail_rc = 0;
    return rc;
}

int
cask_open(struct cask **out, const char *dir, const struct cask_options *o)
{
    struct cask *c = calloc(1, sizeof(*c));

    (void)dir;
    if (c == NULL) {
        return ENOMEM;
    }
    c->o = *o;
    c->next_cas = 1;
    *out = c;
    return CASK_OK;
}

static void
free_item(struct fitem *it)
{
    free(it->key);
    free(it->val);
    free(it);
}

int
cask_close(struct cask **cp)
{
    struct cask *c = *cp;
    unsigned i;

    if (c == NULL) {
        return CASK_OK;
    }
    for (i = 0; i < NBUCKETS; i++) {
        while (c->b[i] != NULL) {
            struct fitem *it = c->b[i];

            c->b[i] = it->next;
            free_item(it);
        }
    }
    free(c);
    *cp = NULL;
    return CASK_OK;
}

int
cask_sync(struct cask *c)
{
    (void)c;
    return CASK_OK;
}

static int64_t
now_s(const struct cask *c)
{
    if (c->o.clock != NULL) {
        return c->o.clock(c->o.clock_arg);
    }
    return (int64_t)time(NULL);
}

static unsigned
bucket(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < klen; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h % NBUCKETS;
}

/* Find a key; expired or flushed items are unlinked and reported in *gone. */
static struct fitem *
lookup(struct cask *c, const void *key, size_t klen, int *gone)
{
    struct fitem **pp = &c->b[bucket(key, klen)];
    int64_t now = now_s(c);

    *gone = CASK_GONE_ABSENT;
    if (c->flush_at_s != 0 && c->flush_at_s <= now) {
        /* approximation: everything stored until now goes */
        c->flushed_cas = c->next_cas - 1;
        c->flush_at_s = 0;
    }
    for (; *pp != NULL; pp = &(*pp)->next) {
        struct fitem *it = *pp;

        if (it->klen != klen || memcmp(it->key, key, klen) != 0) {
            continue;
        }
        if (it->cas <= c->flushed_cas) {
            *gone = CASK_GONE_FLUSHED;
        } else if (it->exp_abs_s != 0 && it->exp_abs_s <= now) {
            *gone = CASK_GONE_EXPIRED;
        } else {
            return it;
        }
        *pp = it->next;
        free_item(it);
        c->nkeys--;
        return NULL;
    }
    return NULL;
}

static int
copy_out(const struct fitem *f, struct cask_item *it, char **val)
{
    if (it != NULL) {
        it->flags = f->flags;
        it->exp_abs_s = f->exp_abs_s;
        it->cas = f->cas;
        it->vlen = f->vlen;
        it->fetched = f->fetched;
        it->atime_s = f->atime_s;
        it->gone = CASK_GONE_ABSENT;
    }
    if (val != NULL) {
        *val = malloc((size_t)f->vlen + 1);
        if (*val == NULL) {
            return ENOMEM;
        }
        memcpy(*val, f->val, f->vlen);
        (*val)[f->vlen] = '\0';
    }
    return CASK_OK;
}

/* A read, as the real store counts it: the first since a write sets the
 * fetched bit, later ones the access time. */
static void
bump(struct cask *c, struct fitem *f)
{
    if (f->fetched) {
        f->atime_s = now_s(c);
    }
    f->fetched = true;
}

/* lookup() for a reader: on a miss, *it (if not NULL) is cleared and says
 * why the key is gone. */
static struct fitem *
lookup_read(struct cask *c, const void *key, size_t klen, struct cask_item *it)
{
    int gone;
    struct fitem *f = lookup(c, key, klen, &gone);

    if (f == NULL && it != NULL) {
        memset(it, 0, sizeof(*it));
        it->gone = gone;
    }
    return f;
}

int
cask_get_fetch(struct cask *c, const void *key, size_t klen,
               struct cask_item *it, char **val, bool fetch)
{
    struct fitem *f = lookup_read(c, key, klen, it);

    if (fake_cask_fail_rc != 0) {
        return injected();
    }
    if (f == NULL) {
        return CASK_ENOTFOUND;
    }
    int rc = copy_out(f, it, val);
    if (fetch) {
        bump(c, f);
    }
    return rc;
}

unsigned fake_cask_prefetches;
char fake_cask_prefetched[CASK_KEY_MAX + 1];

void
cask_prefetch(struct cask *c, const void *key, size_t klen)
{
    (void)c;
    if (key == NULL || klen == 0 || klen > CASK_KEY_MAX) {
        return;
    }
    fake_cask_prefetches++;
    memcpy(fake_cask_prefetched, key, klen);
    fake_cask_prefetched[klen] = '\0';
}

/* The fake hands out copies only. */
int
cask_get_ref(struct cask *c, const void *key, size_t klen, struct cask_item *it,
             char **val, struct cask_vref *ref, bool fetch)
{
    if (ref != NULL) {
        memset(ref, 0, sizeof(*ref));
        ref->fd = -1;
    }
    return cask_get_fetch(c, key, klen, it, val, fetch);
}

/* Into the caller's buffer when the value fits, as the store does. */
int
cask_get_buf(struct cask *c, const void *key, size_t klen, struct cask_item *it,
             char **val, struct cask_vref *ref, bool fetch, bool nowait,
             char *buf, size_t cap)
{
    int rc = nowait ? cask_get_nowait_ref(c, key, klen, it, val, ref, fetch)
                    : cask_get_ref(c, key, klen, it, val, ref, fetch);
    if (rc == CASK_OK && *val != NULL && (size_t)it->vlen + 1 <= cap) {
        memcpy(buf, *val, (size_t)it->vlen + 1);
        free(*val);
        *val = buf;
    }
    return rc;
}

void
cask_vref_release(struct cask_vref *ref)
{
    memset(ref, 0, sizeof(*ref));
    ref->fd = -1;
}

int
cask_get(struct cask *c, const void *key, size_t klen, struct cask_item *it,
         char **val)
{
    return cask_get_fetch(c, key, klen, it, val, val != NULL);
}

/* The fake store is all in memory: a read never has to wait, unless a
 * test says every value is cold (fake_cask_cold): then the try finds the
 * item, counts the read and says EAGAIN, as the store's does. */
static int
try_cold(struct cask *c, const void *key, size_t klen, struct cask_item *it,
         bool fetch)
{
    struct cask_item tmp;
    int rc = cask_get_fetch(c, key, klen, it != NULL ? it : &tmp, NULL, fetch);
    return rc == CASK_OK ? EAGAIN : rc;
}

int
cask_get_nowait(struct cask *c, const void *key, size_t klen,
                struct cask_item *it, char **val, bool fetch)
{
    if (fake_cask_cold && val != NULL) {
        return try_cold(c, key, klen, it, fetch);
    }
    return cask_get_fetch(c, key, klen, it, val, fetch);
}

int
cask_head_nowait(struct cask *c, const void *key, size_t klen,
                 struct cask_item *it, bool fetch)
{
    if (fake_cask_cold) {
        return try_cold(c, key, klen, it, fetch);
    }
    return cask_get_fetch(c, key, klen, it, NULL, fetch);
}

int
cask_get_nowait_ref(struct cask *c, const void *key, size_t klen,
                    struct cask_item *it, char **val, struct cask_vref *ref,
                    bool fetch)
{
    if (fake_cask_cold && val != NULL) {
        if (ref != NULL) {
            memset(ref, 0, sizeof(*ref));
            ref->fd = -1;
        }
        return try_cold(c, key, klen, it, fetch);
    }
    return cask_get_ref(c, key, klen, it, val, ref, fetch);
}

int
cask_touch(struct cask *c, const void *key, size_t klen, int64_t exp_abs_s,
           struct cask_item *it, char **val)
{
    return cask_touch_fetch(c, key, klen, exp_abs_s, it, val, true);
}

int
cask_touch_fetch(struct cask *c, const void *key, size_t klen,
                 int64_t exp_abs_s, struct cask_item *it, char **val,
                 bool fetch)
{
    return cask_touch_cas(c, key, klen, exp_abs_s, 0, it, val, fetch);
}

int
cask_touch_cas(struct cask *c, const void *key, size_t klen, int64_t exp_abs_s,
               uint64_t cas_in, struct cask_item *it, char **val, bool fetch)
{
    int gone;
    struct fitem *f = lookup(c, key, klen, &gone);

    if (fake_cask_fail_rc != 0) {
        return injected();
    }
    if (blocks()) {
        return CASK_EBLOCKED;
    }
    if (cas_in != 0 &&
        (f == NULL ? gone == CASK_GONE_ABSENT : f->cas != cas_in)) {
        return CASK_EEXISTS; /* replaced or deleted since */
    }
    if (f == NULL) {
        if (it != NULL) {
            memset(it, 0, sizeof(*it));
            it->gone = gone;
        }
        return CASK_ENOTFOUND;
    }
    f->exp_abs_s = exp_abs_s;
    int rc = copy_out(f, it, val);
    if (fetch) {
        bump(c, f);
    }
    return rc;
}

/* Replace f's value (or create the item) with v; takes ownership of v. */
static int
put(struct cask *c, const void *key, size_t klen, char *v, size_t vlen,
    uint32_t flags, int64_t exp_abs_s, uint64_t *cas_out)
{
    int gone;
    struct fitem *f = lookup(c, key, klen, &gone);

    if (f == NULL) {
        unsigned b = bucket(key, klen);

        f = calloc(1, sizeof(*f));
        if (f == NULL || (f->key = malloc(klen + 1)) == NULL) {
            free(f);
            free(v);
            return ENOMEM;
        }
        memcpy(f->key, key, klen);
        f->klen = klen;
        f->next = c->b[b];
        c->b[b] = f;
        c->nkeys++;
    } else {
        free(f->val);
    }
    f->val = v;
    f->vlen = (uint32_t)vlen;
    f->flags = flags;
    f->exp_abs_s = exp_abs_s;
    f->cas = c->next_cas++;
    f->stored_s = now_s(c);
    f->atime_s = f->stored_s;
    f->fetched = false;
    if (cas_out != NULL) {
        *cas_out = f->cas;
    }
    return CASK_OK;
}

int
cask_store(struct cask *c, enum cask_store_mode mode, const void *key,
           size_t klen, const void *val, size_t vlen, uint32_t flags,
           int64_t exp_abs_s, uint64_t cas_in, uint64_t *cas_out)
{
    int gone;
    struct fitem *f;
    char *v;
    size_t n = vlen;

    if (fake_cask_fail_rc != 0) {
        return injected();
    }
    if (blocks()) {
        return CASK_EBLOCKED;
    }
    if (klen == 0 || klen > CASK_KEY_MAX) {
        return CASK_EBADKEY;
    }
    if (vlen > c->o.value_max) {
        return CASK_ETOOBIG;
    }
    f = lookup(c, key, klen, &gone);
    if (cas_in != 0) {
        if (f == NULL) {
            return CASK_ENOTFOUND;
        }
        if (f->cas != cas_in) {
            return CASK_EEXISTS;
        }
    }
    if ((mode == CASK_ADD && f != NULL) ||
        (mode != CASK_ADD && mode != CASK_SET && f == NULL)) {
        return CASK_ENOTSTORED;
    }
    if (mode == CASK_APPEND || mode == CASK_PREPEND) {
        n = (size_t)f->vlen + vlen;
        if (n > c->o.value_max) {
            return CASK_ETOOBIG;
        }
        flags = f->flags;
        exp_abs_s = f->exp_abs_s;
    }
    v = malloc(n + 1);
    if (v == NULL) {
        return ENOMEM;
    }
    if (mode == CASK_APPEND) {
        memcpy(v, f->val, f->vlen);
        memcpy(v + f->vlen, val, vlen);
    } else if (mode == CASK_PREPEND) {
        memcpy(v, val, vlen);
        memcpy(v + vlen, f->val, f->vlen);
    } else if (vlen > 0) {
        memcpy(v, val, vlen);
    }
    v[n] = '\0';
    return put(c, key, klen, v, n, flags, exp_abs_s, cas_out);
}

int
cask_delete(struct cask *c, const void *key, size_t klen, uint64_t cas_in)
{
    return cask_delete_item(c, key, klen, cas_in, NULL);
}

int
cask_delete_item(struct cask *c, const void *key, size_t klen, uint64_t cas_in,
                 struct cask_item *it)
{
    int gone;
    struct fitem **pp;

    if (fake_cask_fail_rc != 0) {
        return injected();
    }
    if (blocks()) {
        return CASK_EBLOCKED;
    }
    struct fitem *f = lookup(c, key, klen, &gone);
    if (f == NULL) {
        return CASK_ENOTFOUND;
    }
    if (cas_in != 0 && f->cas != cas_in) {
        return CASK_EEXISTS;
    }
    for (pp = &c->b[bucket(key, klen)]; *pp != f; pp = &(*pp)->next) {
    }
    *pp = f->next;
    (void)copy_out(f, it, NULL);
    free_item(f);
    c->nkeys--;
    return CASK_OK;
}

/* memcached's safe_strtoull over the value: leading white space, an
 * optional '+', digits, then the end or a white-space character (whatever
 * follows it is ignored: "99 abc" counts as 99). */
static bool
is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' ||
           ch == '\r';
}

static bool
as_u64(const char *p, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    bool any = false;

    while (i < n && is_space(p[i])) {
        i++;
    }
    if (i < n && p[i] == '+') {
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
    if (!any || (i < n && !is_space(p[i]))) {
        return false;
    }
    *out = v;
    return true;
}

int
cask_arith(struct cask *c, const void *key, size_t klen,
           const struct cask_arith *a, uint64_t *value_out,
           struct cask_item *it)
{
    int gone;
    struct fitem *f = lookup(c, key, klen, &gone);
    uint64_t v;
    char num[24];
    size_t n;
    char *nv;
    int rc;

    if (fake_cask_fail_rc != 0) {
        return injected();
    }
    if (blocks()) {
        return CASK_EBLOCKED;
    }
    if (f == NULL) {
        if (!a->vivify) {
            return CASK_ENOTFOUND;
        }
        n = (size_t)snprintf(num, sizeof(num), "%llu",
                             (unsigned long long)a->initial);
        nv = malloc(n + 1);
        if (nv == NULL) {
            return ENOMEM;
        }
        memcpy(nv, num, n + 1);
        rc = put(c, key, klen, nv, n, 0, a->vivify_exp_abs_s, NULL);
        if (rc == CASK_OK) {
            *value_out = a->initial;
            f = lookup(c, key, klen, &gone);
            /* created already expired (negative N): gone again */
            if (f != NULL) {
                (void)copy_out(f, it, NULL);
            } else if (it != NULL) {
                memset(it, 0, sizeof(*it));
                it->exp_abs_s = a->vivify_exp_abs_s;
            }
        }
        return rc;
    }
    if (a->cas_in != 0 && a->cas_in != f->cas) {
        return CASK_EEXISTS;
    }
    if (!as_u64(f->val, f->vlen, &v)) {
        return CASK_ENONNUMERIC;
    }
    if (a->incr) {
        v += a->delta;
    } else {
        v = a->delta > v ? 0 : v - a->delta;
    }
    n = (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    /* memcached pads in place rather than shrink the item */
    nv = malloc((n < f->vlen ? f->vlen : n) + 1);
    if (nv == NULL) {
        return ENOMEM;
    }
    memcpy(nv, num, n);
    bool in_place = n <= f->vlen; /* a longer number keeps its expiry */
    int64_t was = f->exp_abs_s;
    if (n < f->vlen) {
        memset(nv + n, ' ', f->vlen - n);
        n = f->vlen;
    }
    nv[n] = '\0';
    rc = put(c, key, klen, nv, n, f->flags,
             in_place && a->set_exp ? a->exp_abs_s : was, NULL);
    if (rc == CASK_OK) {
        *value_out = v;
        (void)copy_out(f, it, NULL);
        if (it != NULL) {
            it->arith_exp_was_abs_s = was;
        }
    }
    return rc;
}

int
cask_flush(struct cask *c, int64_t at_abs_s)
{
    if (fake_cask_fail_rc != 0) {
        return injected();
    }
    if (at_abs_s <= now_s(c)) {
        c->flushed_cas = c->next_cas - 1;
        c->flush_at_s = 0;
    } else {
        c->flush_at_s = at_abs_s;
    }
    return CASK_OK;
}

int
cask_flush_park(struct cask *c, int64_t at_abs_s, struct cask_flush_wait **wait)
{
    (void)wait; /* never parks */
    return cask_flush(c, at_abs_s);
}

void
cask_flush_drop(struct cask *c, struct cask_flush_wait **wait)
{
    (void)c;
    *wait = NULL;
}

int
cask_compact(struct cask *c, int shard, bool wait)
{
    (void)c;
    (void)shard;
    (void)wait;
    return CASK_OK;
}

int
cask_stats(struct cask *c, int shard, struct cask_stats *st)
{
    (void)shard;
    memset(st, 0, sizeof(*st));
    st->live_keys = c->nkeys;
    return CASK_OK;
}

/* The fake evicts nothing and has no crawler: nothing counted by class. */
void
cask_class_stats(struct cask *c, struct cask_class_stats *out)
{
    (void)c;
    memset(out, 0, CASK_CLASSES * sizeof(*out));
}

unsigned
cask_shards(const struct cask *c)
{
    (void)c;
    return 1;
}

unsigned
cask_shard_of(const struct cask *c, const void *key, size_t klen)
{
    (void)c;
    (void)key;
    (void)klen;
    return 0;
}

/* One bucket per call; pos->hash is the bucket (a single shard). */
bool
cask_walk(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
          void (*fn)(void *arg, const struct cask_walk_entry *e), void *arg)
{
    int64_t now = now_s(c);

    (void)batch;
    if (pos->shard > 0 || pos->hash >= NBUCKETS) {
        return false;
    }
    for (const struct fitem *f = c->b[pos->hash]; f != NULL; f = f->next) {
        struct cask_walk_entry e;

        if (f->cas <= c->flushed_cas ||
            (f->exp_abs_s != 0 && f->exp_abs_s <= now)) {
            continue;
        }
        e.key = f->key;
        e.klen = f->klen;
        e.flags = f->flags;
        e.exp_abs_s = f->exp_abs_s;
        e.cas = f->cas;
        e.vlen = f->vlen;
        e.fetched = f->fetched;
        e.atime_s = f->atime_s;
        fn(arg, &e);
    }
    if (++pos->hash == NBUCKETS) {
        pos->shard = 1;
        return false;
    }
    return true;
}

/* The keys are in memory here: cask_walk_if and cask_walk_meta are
 * cask_walk with a filter shown no key, and the key withheld. */
struct walk_fwd {
    bool (*keep)(void *arg, const struct cask_walk_entry *e);
    void (*fn)(void *arg, const struct cask_walk_entry *e);
    void *arg;
    bool nokey;
};

static void
fwd_entry(void *arg, const struct cask_walk_entry *e)
{
    const struct walk_fwd *m = arg;
    struct cask_walk_entry nokey = *e;

    nokey.key = NULL;
    if (m->keep == NULL || m->keep(m->arg, &nokey)) {
        m->fn(m->arg, m->nokey ? &nokey : e);
    }
}

bool
cask_walk_if(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
             bool (*keep)(void *arg, const struct cask_walk_entry *e),
             void (*fn)(void *arg, const struct cask_walk_entry *e), void *arg)
{
    struct walk_fwd m = {keep, fn, arg, false};

    return cask_walk(c, pos, batch, fwd_entry, &m);
}

bool
cask_walk_meta(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
               void (*fn)(void *arg, const struct cask_walk_entry *e),
               void *arg)
{
    struct walk_fwd m = {NULL, fn, arg, true};

    return cask_walk(c, pos, batch, fwd_entry, &m);
}
