/* cmd_admin.c - memcached's admin commands and key dumps (see cmd_admin.h).
 *
 * Owns each connection's dump job: the walk position in the store, the
 * class filter, the batch of text not yet handed to the sink, and the
 * per-class sums of stats items/slabs. A batch is formatted while cask_walk
 * holds one shard's lock (the callback only appends to the job's buffer)
 * and written to the sink after the lock is released.
 *
 * stats items and stats slabs add to what the walk counts the per-class
 * counters of the workers and of the store (cmd_env.class_figures); a
 * class stays listed in stats slabs once it has held an item, as
 * memcached never gives a class's pages back.
 *
 * metadump's la is the item's last access (unix seconds, as precise as the
 * store keeps it); fetch is the item's fetched bit; size and cls are what
 * memcached would give the same item (its 48-byte header, key, value, cas,
 * flags). */
#include "server/cmd_admin.h"

#include "protocol/proto.h"
#include "storage/cask_walk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WALK_BATCH      1024u
#define CACHEDUMP_LIMIT (2u * 1024 * 1024) /* memcached's cap on the reply */
#define MAX_CLASSES     CMD_CLASSES        /* memcached's class ids, 1..63 */
#define PAGE_SIZE_MC    (1024u * 1024)

enum job_kind { JOB_METADUMP, JOB_CACHEDUMP, JOB_ITEMS, JOB_SLABS };

struct class_sum {
    uint64_t number;
    uint64_t bytes;
    int64_t oldest_s; /* the earliest last access (number > 0) */
};

struct cmd_admin_job {
    enum job_kind kind;
    const struct cmd_env *env;
    struct cask_walk_pos pos;
    bool all;              /* metadump: every class */
    bool cls[MAX_CLASSES]; /* metadump: classes asked for */
    char prefix[250];      /* metadump: only keys starting with it */
    size_t prefix_len;
    unsigned cachedump_cls; /* cachedump: the class */
    uint64_t limit;         /* cachedump: items, 0 = no limit */
    uint64_t shown;
    uint64_t written; /* cachedump: reply bytes so far */
    bool full;        /* cachedump: limit reached */
    struct class_sum sum[MAX_CLASSES];
    struct cmd_class_figures fig; /* items, slabs: the counters */
    cmd_admin_done_fn done;       /* the whole reply goes there, not the sink */
    void *done_arg;
    char *buf;
    size_t len, cap;
};

static void
emit_str(struct cmd_conn *cc, const char *s)
{
    cc->out.bytes(cc->out.arg, s, strlen(s));
}

/* memcached's ITEM_ntotal for this item. */
static uint64_t
item_total(const struct cmd_env *env, size_t klen, uint32_t vlen,
           uint32_t flags)
{
    return 48u + klen + 1 + vlen + 2 + (env->cas_disabled ? 0 : 8) +
           (flags != 0 ? 4 : 0);
}

/* memcached's slabs_clsid; an item memcached would refuse as too large
 * (it counts the header against -I, bitcached only the value) goes in the
 * largest class. */
static unsigned
class_of(const struct cmd_env *env, uint64_t total)
{
    if (env->nclasses == 0) {
        return 0;
    }
    for (unsigned i = 1; i <= env->nclasses; i++) {
        if (total <= env->class_size[i]) {
            return i;
        }
    }
    return env->nclasses;
}

static void
job_append(struct cmd_admin_job *j, const char *p, size_t n)
{
    if (j->len + n > j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 64 * 1024;
        while (cap < j->len + n) {
            cap *= 2;
        }
        char *nb = realloc(j->buf, cap);
        if (nb == NULL) {
            return; /* the line is lost; the dump goes on */
        }
        j->buf = nb;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, p, n);
    j->len += n;
}

/* Whether a dump wants e, from what the walk knows before it reads the key:
 * the class (metadump's list, cachedump's one) and a key long enough for
 * the prefix. The keys of the others are never read. */
static bool
keep_entry(void *arg, const struct cask_walk_entry *e)
{
    const struct cmd_admin_job *j = arg;
    unsigned cls =
            class_of(j->env, item_total(j->env, e->klen, e->vlen, e->flags));

    switch (j->kind) {
    case JOB_METADUMP:
        return (j->all || j->cls[cls]) && e->klen >= j->prefix_len;
    case JOB_CACHEDUMP:
        return cls == j->cachedump_cls && !j->full;
    default:
        return true;
    }
}

static void
on_entry(void *arg, const struct cask_walk_entry *e)
{
    struct cmd_admin_job *j = arg;
    uint64_t total = item_total(j->env, e->klen, e->vlen, e->flags);
    unsigned cls = class_of(j->env, total);
    char line[3 * 250 + 160];
    char key[3 * 250 + 1];
    int n;

    switch (j->kind) {
    case JOB_METADUMP:
        /* its class and length passed keep_entry */
        if (memcmp(e->key, j->prefix, j->prefix_len) != 0) {
            return;
        }
        proto_uriencode(e->key, e->klen < 250 ? e->klen : 250, key);
        n = snprintf(line, sizeof(line),
                     "key=%s exp=%" PRId64 " la=%" PRId64 " cas=%" PRIu64
                     " fetch=%s cls=%u size=%" PRIu64 "\n",
                     key, e->exp_abs_s == 0 ? -1 : e->exp_abs_s, e->atime_s,
                     j->env->cas_disabled ? 0 : e->cas,
                     e->fetched ? "yes" : "no", cls, total);
        if (n > 0) {
            job_append(j, line, (size_t)n);
        }
        break;
    case JOB_CACHEDUMP:
        /* its class passed keep_entry; the reply may have filled since */
        if (j->full) {
            return;
        }
        n = snprintf(line, sizeof(line),
                     "ITEM %.*s [%" PRIu32 " b; %" PRId64 " s]\r\n",
                     (int)e->klen, e->key, e->vlen, e->exp_abs_s);
        if (n <= 0 || j->written + (size_t)n + 6 > CACHEDUMP_LIMIT) {
            j->full = true;
            return;
        }
        job_append(j, line, (size_t)n);
        j->written += (uint64_t)n;
        if (j->limit != 0 && ++j->shown >= j->limit) {
            j->full = true;
        }
        break;
    case JOB_ITEMS:
    case JOB_SLABS:
        if (j->sum[cls].number == 0 || e->atime_s < j->sum[cls].oldest_s) {
            j->sum[cls].oldest_s = e->atime_s;
        }
        j->sum[cls].number++;
        j->sum[cls].bytes += total;
        break;
    }
}

static void
stat_u64(struct cmd_admin_job *j, const char *prefix, unsigned cls,
         const char *name, uint64_t v)
{
    char line[128];
    int n;

    if (cls == 0) {
        n = snprintf(line, sizeof(line), "STAT %s %" PRIu64 "\r\n", name, v);
    } else {
        n = snprintf(line, sizeof(line), "STAT %s%u:%s %" PRIu64 "\r\n", prefix,
                     cls, name, v);
    }
    if (n > 0) {
        job_append(j, line, (size_t)n);
    }
}

/* The counters of stats items/slabs, and which classes stay listed. */
static void
gather(struct cmd_admin_job *j)
{
    const struct cmd_env *env = j->env;
    uint64_t seen = 0;

    if (env->class_figures != NULL) {
        env->class_figures(env->class_figures_arg, &j->fig);
    } else {
        cask_class_stats(env->store, j->fig.store);
    }
    for (unsigned c = 1; c < MAX_CLASSES; c++) {
        if (j->sum[c].number > 0) {
            seen |= UINT64_C(1) << c;
        }
    }
    if (env->admin != NULL) {
        seen |= atomic_fetch_or(&env->admin->classes_seen, seen);
    }
    for (unsigned c = 1; c < MAX_CLASSES; c++) {
        j->fig.held[c] = j->fig.held[c] || (seen >> c & 1) != 0;
    }
}

static void
finish_items(struct cmd_admin_job *j)
{
    static const char *const zeros[] = {
            "lrutail_reflocked", "moves_to_cold",   "moves_to_warm",
            "moves_within_lru",  "direct_reclaims", "hits_to_hot",
            "hits_to_warm",      "hits_to_cold",    "hits_to_temp",
    };
    int64_t now = cmd_now_s(j->env);
    for (unsigned c = 1; c < MAX_CLASSES; c++) {
        const struct class_sum *s = &j->sum[c];
        const struct cask_class_stats *st = &j->fig.store[c];
        /* memcached lists the classes holding items */
        if (s->number == 0) {
            continue;
        }
        stat_u64(j, "items:", c, "number", s->number);
        stat_u64(j, "items:", c, "number_hot", 0);
        stat_u64(j, "items:", c, "number_warm", 0);
        stat_u64(j, "items:", c, "number_cold", s->number);
        stat_u64(j, "items:", c, "age_hot", 0);
        stat_u64(j, "items:", c, "age_warm", 0);
        /* every item counts as cold: the age of the class's least
         * recently accessed one, as memcached's cold tail */
        stat_u64(j, "items:", c, "age",
                 now > s->oldest_s ? (uint64_t)(now - s->oldest_s) : 0);
        stat_u64(j, "items:", c, "mem_requested", s->bytes);
        stat_u64(j, "items:", c, "evicted", st->evicted);
        stat_u64(j, "items:", c, "evicted_nonzero", st->evicted_nonzero);
        stat_u64(j, "items:", c, "evicted_time", st->evicted_time);
        /* stores of this class's size refused for memory (-M) */
        stat_u64(j, "items:", c, "outofmemory", j->fig.srv[c].outofmemory);
        /* no item reference outlives a request: nothing to repair */
        stat_u64(j, "items:", c, "tailrepairs", 0);
        stat_u64(j, "items:", c, "reclaimed", st->reclaimed);
        stat_u64(j, "items:", c, "expired_unfetched", st->expired_unfetched);
        stat_u64(j, "items:", c, "evicted_unfetched", st->evicted_unfetched);
        stat_u64(j, "items:", c, "evicted_active", st->evicted_active);
        stat_u64(j, "items:", c, "crawler_reclaimed", st->crawler_reclaimed);
        stat_u64(j, "items:", c, "crawler_items_checked",
                 st->crawler_items_checked);
        /* one LRU per class, no segments: nothing moves between them */
        for (size_t k = 0; k < sizeof(zeros) / sizeof(zeros[0]); k++) {
            stat_u64(j, "items:", c, zeros[k], 0);
        }
    }
}

static void
finish_slabs(struct cmd_admin_job *j)
{
    uint64_t active = 0, malloced = 0;

    for (unsigned c = 1; c < MAX_CLASSES && c <= j->env->nclasses; c++) {
        const struct class_sum *s = &j->sum[c];
        const struct cmd_class_counters *k = &j->fig.srv[c];
        uint32_t size = j->env->class_size[c];
        uint64_t per = size ? PAGE_SIZE_MC / size : 0;
        uint64_t pages;

        if (!j->fig.held[c] || per == 0) {
            continue;
        }
        /* a class keeps at least the page it had */
        pages = s->number == 0 ? 1 : (s->number + per - 1) / per;
        stat_u64(j, "", c, "chunk_size", size);
        stat_u64(j, "", c, "chunks_per_page", per);
        stat_u64(j, "", c, "total_pages", pages);
        stat_u64(j, "", c, "total_chunks", pages * per);
        stat_u64(j, "", c, "used_chunks", s->number);
        stat_u64(j, "", c, "free_chunks", pages * per - s->number);
        stat_u64(j, "", c, "free_chunks_end", 0);
        stat_u64(j, "", c, "get_hits", k->get_hits);
        stat_u64(j, "", c, "cmd_set", k->cmd_set);
        stat_u64(j, "", c, "delete_hits", k->delete_hits);
        stat_u64(j, "", c, "incr_hits", k->incr_hits);
        stat_u64(j, "", c, "decr_hits", k->decr_hits);
        stat_u64(j, "", c, "cas_hits", k->cas_hits);
        stat_u64(j, "", c, "cas_badval", k->cas_badval);
        stat_u64(j, "", c, "touch_hits", k->touch_hits);
        active++;
        malloced += pages * PAGE_SIZE_MC;
    }
    stat_u64(j, "", 0, "active_slabs", active);
    stat_u64(j, "", 0, "total_malloced", malloced);
}

static void
job_free(struct cmd_conn *cc)
{
    if (cc->job != NULL) {
        free(cc->job->buf);
        free(cc->job);
        cc->job = NULL;
    }
}

static void
job_flush(struct cmd_conn *cc)
{
    struct cmd_admin_job *j = cc->job;

    if (j->len > 0) {
        cc->out.bytes(cc->out.arg, j->buf, j->len);
        j->len = 0;
    }
}

void
cmd_admin_continue(struct cmd_conn *cc)
{
    struct cmd_admin_job *j = cc->job;
    bool more;

    if (j == NULL) {
        return;
    }
    if (j->kind == JOB_ITEMS || j->kind == JOB_SLABS) {
        /* sizes and times only: no key is read */
        more = cask_walk_meta(cc->env->store, &j->pos, WALK_BATCH, on_entry, j);
    } else {
        more = cask_walk_if(cc->env->store, &j->pos, WALK_BATCH, keep_entry,
                            on_entry, j);
    }
    if (j->kind == JOB_CACHEDUMP && j->full) {
        more = false;
    }
    if (!more) {
        if (j->kind == JOB_ITEMS) {
            gather(j);
            finish_items(j);
        } else if (j->kind == JOB_SLABS) {
            gather(j);
            finish_slabs(j);
        }
        job_append(j, "END\r\n", 5);
    }
    if (j->done != NULL) {
        if (!more) {
            j->done(cc, j->done_arg, j->buf, j->len);
            job_free(cc);
        }
        return;
    }
    job_flush(cc);
    if (!more) {
        job_free(cc);
    }
}

void
cmd_admin_cancel(struct cmd_conn *cc)
{
    job_free(cc);
}

/* The connection's new job, or NULL when out of memory (nothing said). */
static struct cmd_admin_job *
job_create(struct cmd_conn *cc, enum job_kind kind)
{
    struct cmd_admin_job *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        return NULL;
    }
    j->kind = kind;
    j->env = cc->env;
    job_free(cc);
    cc->job = j;
    return j;
}

static struct cmd_admin_job *
job_new(struct cmd_conn *cc, enum job_kind kind)
{
    struct cmd_admin_job *j = job_create(cc, kind);

    if (j == NULL) {
        emit_str(cc, "SERVER_ERROR out of memory\r\n");
    }
    return j;
}

/* ---- tokens ---- */

struct toks {
    const char *p[8];
    size_t n[8];
    unsigned count; /* tokens found, at most 8 (more: count 8, more set) */
    bool more;
};

static void
tokenize(const char *s, size_t len, struct toks *t)
{
    size_t i = 0;

    memset(t, 0, sizeof(*t));
    while (i < len) {
        while (i < len && s[i] == ' ') {
            i++;
        }
        if (i == len) {
            break;
        }
        if (t->count == 8) {
            t->more = true;
            break;
        }
        t->p[t->count] = s + i;
        while (i < len && s[i] != ' ') {
            i++;
        }
        t->n[t->count] = (size_t)(s + i - t->p[t->count]);
        t->count++;
    }
}

static bool
tok_is(const struct toks *t, unsigned i, const char *w)
{
    return i < t->count && t->n[i] == strlen(w) &&
           memcmp(t->p[i], w, t->n[i]) == 0;
}

/* memcached's safe_strtoul on one token. */
static bool
tok_u32(const struct toks *t, unsigned i, uint32_t *out)
{
    uint64_t v;

    /* memcached's safe_strtoul: a strtoul kept to its low 32 bits; "-0"
     * is 0, other negatives fail */
    if (i >= t->count || !proto_strtou64(t->p[i], t->n[i], &v)) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* A class list as memcached's crawler reads it: "all", "hash" or ids
 * 1..63 separated by commas. Returns false for a bad id. */
static bool
parse_classes(const char *p, size_t n, bool *all, bool cls[MAX_CLASSES])
{
    size_t i = 0;

    if ((n == 3 && memcmp(p, "all", 3) == 0) ||
        (n == 4 && memcmp(p, "hash", 4) == 0)) {
        *all = true;
        return true;
    }
    *all = false;
    while (i < n) {
        size_t start = i;
        uint64_t v;
        while (i < n && p[i] != ',') {
            i++;
        }
        if (i > start) {
            if (!proto_strtou64(p + start, i - start, &v) || v < 1 ||
                v >= MAX_CLASSES || p[start] == '-') {
                return false;
            }
            cls[v] = true;
        }
        i++;
    }
    return true;
}

/* ---- commands ---- */

static bool
crawler_on(const struct cmd_env *env)
{
    return env->admin == NULL || atomic_load(&env->admin->lru_crawler);
}

static void
lru_crawler(struct cmd_conn *cc, const struct toks *t)
{
    const struct cmd_env *env = cc->env;
    bool all, cls[MAX_CLASSES] = {false};
    uint32_t v;

    if (t->count == 3 && tok_is(t, 1, "crawl")) {
        if (!crawler_on(env)) {
            emit_str(cc, "CLIENT_ERROR lru crawler disabled\r\n");
        } else if (!parse_classes(t->p[2], t->n[2], &all, cls)) {
            emit_str(cc, "BADCLASS invalid class id\r\n");
        } else {
            /* What the crawler is for, reclaiming expired items, is the
             * compactor's job here: ask it to run now. */
            (void)cask_compact(env->store, -1, false);
            emit_str(cc, "OK\r\n");
        }
    } else if ((t->count == 3 ||
                (t->count == 4 && t->n[3] > 7 &&
                 memcmp(t->p[3], "prefix=", 7) == 0 && t->n[3] - 7 <= 250)) &&
               tok_is(t, 1, "metadump")) {
        /* A fourth token prefix=P (bitcached's own) lists only the keys
         * that start with P: the online prefix scan. */
        struct cmd_admin_job *j;
        if (!crawler_on(env)) {
            emit_str(cc, "CLIENT_ERROR lru crawler disabled\r\n");
        } else if (env->dump_disabled) {
            emit_str(cc, "ERROR metadump not allowed\r\n");
        } else if (cc->since_flush != 0) {
            /* memcached's dump cannot follow replies it has not written */
            emit_str(cc, "ERROR cannot pipeline other commands before "
                         "metadump\r\n");
        } else if (!parse_classes(t->p[2], t->n[2], &all, cls)) {
            emit_str(cc, "BADCLASS invalid class id\r\n");
        } else if ((j = job_new(cc, JOB_METADUMP)) != NULL) {
            j->all = all;
            memcpy(j->cls, cls, sizeof(cls));
            if (t->count == 4) {
                j->prefix_len = t->n[3] - 7;
                memcpy(j->prefix, t->p[3] + 7, j->prefix_len);
            }
            cmd_admin_continue(cc);
        }
    } else if (t->count == 3 && tok_is(t, 1, "tocrawl")) {
        if (!tok_u32(t, 2, &v)) {
            emit_str(cc, "CLIENT_ERROR bad command line format\r\n");
        } else {
            /* no crawler walks the LRU here; kept for stats settings */
            if (env->admin != NULL) {
                atomic_store(&env->admin->lru_crawler_tocrawl, v);
            }
            emit_str(cc, "OK\r\n");
        }
    } else if (t->count == 3 && tok_is(t, 1, "sleep")) {
        if (!tok_u32(t, 2, &v)) {
            emit_str(cc, "CLIENT_ERROR bad command line format\r\n");
        } else if (v > 1000000) {
            emit_str(cc, "CLIENT_ERROR sleep must be one second or less\r\n");
        } else {
            if (env->admin != NULL) {
                atomic_store(&env->admin->lru_crawler_sleep, v);
            }
            emit_str(cc, "OK\r\n");
        }
    } else if (t->count == 2 && tok_is(t, 1, "enable")) {
        if (env->admin == NULL ||
            atomic_exchange(&env->admin->lru_crawler, true)) {
            emit_str(cc, "ERROR failed to start lru crawler thread\r\n");
        } else {
            emit_str(cc, "OK\r\n");
        }
    } else if (t->count == 2 && tok_is(t, 1, "disable")) {
        if (env->admin != NULL) {
            atomic_store(&env->admin->lru_crawler, false);
        }
        emit_str(cc, "OK\r\n");
    } else {
        emit_str(cc, "ERROR\r\n");
    }
}

/* memcached's safe_strtol on one token. */
static bool
tok_i32(const struct toks *t, unsigned i, int32_t *out)
{
    int64_t v;

    /* memcached's safe_strtol: a strtol kept to its low 32 bits */
    if (i >= t->count || !proto_strtoi64(t->p[i], t->n[i], &v)) {
        return false;
    }
    *out = (int32_t)(uint32_t)(uint64_t)v;
    return true;
}

/* memcached's safe_strtod on one token. */
static bool
tok_double(const struct toks *t, unsigned i, double *out)
{
    char buf[64], *end;

    if (i >= t->count || t->n[i] == 0 || t->n[i] >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, t->p[i], t->n[i]);
    buf[t->n[i]] = '\0';
    errno = 0;
    *out = strtod(buf, &end);
    return errno == 0 && *end == '\0';
}

/* slabs automove|reassign: memcached's replies, down to which errors are
 * CLIENT_ERROR. There is no slab mover here: automove only records its
 * setting (stats settings shows it), and reassign, once its arguments
 * pass memcached's checks, finds no spare page to move. */
static void
slabs(struct cmd_conn *cc, const struct toks *t)
{
    const struct cmd_env *env = cc->env;
    bool noreply = t->count > 0 && tok_is(t, t->count - 1, "noreply");
    const char *out = "OK\r\n";
    uint32_t level;
    int32_t src, dst;
    double ratio;

    if (t->count == 4 && tok_is(t, 1, "reassign")) {
        if (env->admin != NULL && !env->admin->slab_reassign) {
            out = "CLIENT_ERROR slab reassignment disabled\r\n";
        } else if (!tok_i32(t, 2, &src) || !tok_i32(t, 3, &dst)) {
            out = "CLIENT_ERROR bad command line format\r\n";
        } else if (src == dst) {
            out = "SAME src and dst class are identical\r\n";
        } else if (src < 0 || dst < 0 || (unsigned)src > env->nclasses ||
                   (unsigned)dst > env->nclasses) {
            /* -1 ("any class") finds none with a spare page either */
            out = "BADCLASS invalid src or dst class id\r\n";
        } else {
            out = "NOSPARE source class has no spare pages\r\n";
        }
        emit_str(cc, out); /* memcached: no noreply here */
        return;
    }
    if (t->count < 3 || !tok_is(t, 1, "automove")) {
        emit_str(cc, "ERROR\r\n");
        return;
    }
    if (tok_is(t, 2, "ratio")) {
        if (t->count < 4 || !tok_double(t, 3, &ratio)) {
            out = "ERROR\r\n";
        } else if (env->admin != NULL) {
            atomic_store(&env->admin->slab_automove_ratio, ratio);
        }
    } else if (!tok_u32(t, 2, &level)) {
        out = "CLIENT_ERROR bad command line format\r\n";
    } else if (level > 2) {
        out = "ERROR\r\n";
    } else if (env->admin != NULL) {
        atomic_store(&env->admin->slab_automove, level);
    }
    if (!noreply) {
        emit_str(cc, out);
    }
}

unsigned
cmd_admin_class(const struct cmd_env *env, size_t klen, uint32_t vlen,
                uint32_t flags)
{
    return class_of(env, item_total(env, klen, vlen, flags));
}

unsigned
cmd_admin_key_class(const struct cmd_env *env, const void *key, size_t klen)
{
    struct cask_item it;

    if (env->nclasses == 0 ||
        cask_get(env->store, key, klen, &it, NULL) != CASK_OK) {
        return 0;
    }
    return class_of(env, item_total(env, klen, it.vlen, it.flags));
}

unsigned
cmd_admin_class_of(void *env, size_t klen, uint32_t vlen, uint32_t flags)
{
    return cmd_admin_class(env, klen, vlen, flags);
}

uint64_t
cmd_admin_item_size(const struct cmd_env *env, size_t klen, uint32_t vlen,
                    uint32_t flags)
{
    return item_total(env, klen, vlen, flags);
}

bool
cmd_admin_chunked(const struct cmd_env *env, const void *key, size_t klen)
{
    struct cask_item it;

    if (env->nclasses == 0 ||
        cask_get(env->store, key, klen, &it, NULL) != CASK_OK) {
        return false;
    }
    return item_total(env, klen, it.vlen, it.flags) >
           env->class_size[env->nclasses];
}

/* watch [fetchers|mutations|evictions|...]*: memcached's names; without
 * one, fetchers. */
static enum cmd_status
watch(struct cmd_conn *cc, const struct toks *t)
{
    static const char *const other[] = {"rawcmds", "sysevents", "proxyreqs",
                                        "proxyevents", "proxyuser"};
    unsigned mask = t->count > 1 ? 0 : CMD_WATCH_FETCHERS;

    if (cc->env->watch_disabled) {
        emit_str(cc, "CLIENT_ERROR watch commands not allowed\r\n");
        return CMD_DONE;
    }
    for (unsigned i = 1; i < t->count; i++) {
        unsigned bit = 0;
        if (tok_is(t, i, "fetchers")) {
            bit = CMD_WATCH_FETCHERS;
        } else if (tok_is(t, i, "mutations")) {
            bit = CMD_WATCH_MUTATIONS;
        } else if (tok_is(t, i, "connevents")) {
            bit = CMD_WATCH_CONNEVENTS;
        } else if (tok_is(t, i, "evictions")) {
            bit = CMD_WATCH_EVICTIONS;
        } else {
            for (size_t k = 0; k < sizeof(other) / sizeof(other[0]); k++) {
                if (tok_is(t, i, other[k])) {
                    bit = CMD_WATCH_OTHER;
                }
            }
        }
        if (bit == 0) {
            emit_str(cc, "ERROR\r\n");
            return CMD_DONE;
        }
        mask |= bit;
    }
    if (cc->env->watch == NULL) {
        emit_str(cc, "WATCHER_FAILED failed to add log watcher\r\n");
        return CMD_DONE;
    }
    cc->watch_mask = mask;
    emit_str(cc, "OK\r\n");
    return CMD_WATCH;
}

/* refresh_certs [noreply]: OK, or memcached's error line. */
static void
refresh_certs(struct cmd_conn *cc, const struct toks *t)
{
    char err[512] = "Error TLS not enabled";
    bool noreply = false;

    for (unsigned i = 1; i < t->count; i++) {
        noreply |= tok_is(t, i, "noreply");
    }
    if (cc->env->refresh_certs != NULL &&
        cc->env->refresh_certs(err, sizeof(err)) == 0) {
        if (!noreply) {
            emit_str(cc, "OK\r\n");
        }
        return;
    }
    emit_str(cc, err);
    emit_str(cc, "\r\n");
}

/* replica_of none [noreply]: promote a replica (server/repl.h). Pointing
 * a running server at another primary is not supported: restart it with
 * --replica-of. */
static void
replica_of(struct cmd_conn *cc, const struct toks *t)
{
    char err[256];
    bool noreply = t->count == 3 && tok_is(t, 2, "noreply");

    if ((t->count != 2 && !noreply) || !tok_is(t, 1, "none")) {
        emit_str(cc, "CLIENT_ERROR usage: replica_of none [noreply]\r\n");
        return;
    }
    if (cc->env->replica_of == NULL) {
        emit_str(cc, "SERVER_ERROR replication not available\r\n");
        return;
    }
    if (cc->env->replica_of(cc->env->replica_of_arg, "none", err,
                            sizeof(err)) != 0) {
        emit_str(cc, "SERVER_ERROR ");
        emit_str(cc, err);
        emit_str(cc, "\r\n");
        return;
    }
    if (!noreply) {
        emit_str(cc, "OK\r\n");
    }
}

/* lru tune|mode|temp_ttl: memcached's checks and replies (a last word
 * noreply silences them all). There is no segmented LRU here: nothing
 * changes. */
static void
lru(struct cmd_conn *cc, const struct toks *t)
{
    bool noreply = tok_is(t, t->count - 1, "noreply");
    struct cmd_admin_state *st = cc->env->admin;
    bool maintainer = st == NULL || st->lru_maintainer;
    const char *out = "ERROR\r\n";
    uint32_t hot, warm;
    double hot_factor, factor;
    int32_t ttl;

    if (tok_is(t, 1, "tune") && t->count >= 6) {
        if (!tok_u32(t, 2, &hot) || !tok_u32(t, 3, &warm) ||
            !tok_double(t, 4, &hot_factor) || !tok_double(t, 5, &factor)) {
            out = "ERROR\r\n";
        } else if (hot + warm > 80) { /* 32-bit sum, as memcached */
            out = "ERROR hot and warm pcts must not exceed 80\r\n";
        } else if (factor <= 0 || hot_factor <= 0) {
            out = "ERROR hot/warm age factors must be greater than 0\r\n";
        } else {
            out = "OK\r\n";
            if (st != NULL) {
                atomic_store(&st->hot_lru_pct, hot);
                atomic_store(&st->warm_lru_pct, warm);
                atomic_store(&st->hot_max_factor, hot_factor);
                atomic_store(&st->warm_max_factor, factor);
            }
        }
    } else if (tok_is(t, 1, "mode") && t->count >= 3 && maintainer) {
        /* memcached: mode and temp_ttl only with its LRU maintainer */
        if (tok_is(t, 2, "flat") || tok_is(t, 2, "segmented")) {
            out = "OK\r\n";
            if (st != NULL) {
                atomic_store(&st->lru_segmented, tok_is(t, 2, "segmented"));
            }
        }
    } else if (tok_is(t, 1, "temp_ttl") && t->count >= 3 && maintainer) {
        if (tok_i32(t, 2, &ttl)) {
            out = "OK\r\n";
            /* a negative TTL turns the temporary LRU off, keeping the TTL */
            if (st != NULL && ttl < 0) {
                atomic_store(&st->temp_lru, false);
            } else if (st != NULL) {
                atomic_store(&st->temp_lru, true);
                atomic_store(&st->temporary_ttl, (unsigned)ttl);
            }
        }
    }
    if (!noreply) {
        emit_str(cc, out);
    }
}

enum cmd_status
cmd_admin_run(struct cmd_conn *cc, const struct proto_req *req)
{
    const struct cmd_env *env = cc->env;
    struct toks t;
    uint32_t v;

    /* t.p[0] is the command word, as memcached's tokens[0] */
    tokenize(req->key, (size_t)(req->args + req->args_len - req->key), &t);
    if (t.more) {
        emit_str(cc, "ERROR\r\n");
    } else if (tok_is(&t, 0, "lru_crawler")) {
        lru_crawler(cc, &t);
    } else if (tok_is(&t, 0, "watch")) {
        return watch(cc, &t);
    } else if (tok_is(&t, 0, "cache_memlimit")) {
        /* past the token count check, noreply silences every answer */
        const char *out = "OK\r\n";

        if (t.count < 2 || t.count > 3) {
            emit_str(cc, "ERROR\r\n");
            return CMD_DONE;
        }
        if (!tok_u32(&t, 1, &v)) {
            out = "ERROR\r\n";
        } else if (v < 8) {
            out = "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n";
        } else if (v > 1000000000) {
            out = "MEMLIMIT_ADJUST_FAILED input value is megabytes not "
                  "bytes\r\n";
        } else if (env->set_memlimit != NULL) {
            env->set_memlimit(env->set_memlimit_arg, (uint64_t)v * 1024 * 1024);
        }
        if (!(t.count == 3 && tok_is(&t, 2, "noreply"))) {
            emit_str(cc, out);
        }
    } else if (tok_is(&t, 0, "refresh_certs")) {
        refresh_certs(cc, &t);
    } else if (tok_is(&t, 0, "replica_of")) {
        replica_of(cc, &t);
    } else if (tok_is(&t, 0, "slabs")) {
        slabs(cc, &t);
    } else if (tok_is(&t, 0, "lru")) {
        lru(cc, &t);
    } else {
        emit_str(cc, "ERROR\r\n");
    }
    return CMD_DONE;
}

bool
cmd_admin_stats_whole(struct cmd_conn *cc, const char *group, size_t len,
                      cmd_admin_done_fn done, void *arg)
{
    enum job_kind kind;
    struct cmd_admin_job *j;

    if (len == 5 && memcmp(group, "items", 5) == 0) {
        kind = JOB_ITEMS;
    } else if (len == 5 && memcmp(group, "slabs", 5) == 0) {
        kind = JOB_SLABS;
    } else {
        return false;
    }
    if ((j = job_create(cc, kind)) == NULL) {
        done(cc, arg, NULL, 0);
        return true;
    }
    j->done = done;
    j->done_arg = arg;
    cmd_admin_continue(cc);
    return true;
}

bool
cmd_admin_stats(struct cmd_conn *cc, const char *args, size_t len)
{
    const struct cmd_env *env = cc->env;
    struct cmd_admin_job *j;
    struct toks t;
    uint32_t id, limit;

    /* memcached reads the group's name and ignores the words after it */
    tokenize(args, len, &t);
    if (tok_is(&t, 0, "items")) {
        if ((j = job_new(cc, JOB_ITEMS)) != NULL) {
            cmd_admin_continue(cc);
        }
        return true;
    }
    if (tok_is(&t, 0, "slabs")) {
        if ((j = job_new(cc, JOB_SLABS)) != NULL) {
            cmd_admin_continue(cc);
        }
        return true;
    }
    if (tok_is(&t, 0, "extstore")) {
        /* memcached without an ext_path answers an empty list too */
        emit_str(cc, "END\r\n");
        return true;
    }
    if (!tok_is(&t, 0, "cachedump")) {
        return false;
    }
    if (env->dump_disabled) {
        emit_str(cc, "CLIENT_ERROR stats cachedump not allowed\r\n");
    } else if (t.count < 3) {
        emit_str(cc, "CLIENT_ERROR bad command line\r\n");
    } else if (!tok_u32(&t, 1, &id) || !tok_u32(&t, 2, &limit)) {
        emit_str(cc, "CLIENT_ERROR bad command line format\r\n");
    } else if (id >= MAX_CLASSES) {
        emit_str(cc, "CLIENT_ERROR Illegal slab id\r\n");
    } else if ((j = job_new(cc, JOB_CACHEDUMP)) != NULL) {
        j->cachedump_cls = id;
        j->limit = limit;
        cmd_admin_continue(cc);
    }
    return true;
}
