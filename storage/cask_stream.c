/* cask_stream.c - a shard's log for replication: the append hook, reading
 * records from a stream position, and snapshots (see cask_stream.h; the
 * stream format is in storage/REPLICATION.md).
 *
 * Holds a shard's mutex only to find and pin a segment, to note an append,
 * or to collect a snapshot's keydir entries; every read of a record runs
 * without it (the segment pinned through its readers count, as gets do).
 * Owns the per-shard chain of log segment ids (struct cask_stream_tail) and
 * nothing else. Must not depend on anything above storage/.
 */
#include "storage/cask_stream.h"

#include "storage/cask_internal.h"
#include "storage/cask_keydir.h"
#include "storage/cask_log.h"
#include "storage/cask_record.h"
#include "storage/cask_segment.h"
#include "storage/cask_shard.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Readers waiting for appends (cask_stream_wait) sleep on one process-wide
 * condition variable: the append hook signals it only while someone
 * waits, so a store without replicas pays an atomic load per append. */
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;
static atomic_uint waiters;

/* Put seg_id at the end of the chain unless it is there already. */
static void
chain_push(struct cask_stream_tail *t, uint32_t seg_id)
{
    if (t->nchain == 0 ||
        t->chain[(t->first + t->nchain - 1) % CASK_STREAM_CHAIN] != seg_id) {
        if (t->nchain == CASK_STREAM_CHAIN) {
            t->first = (t->first + 1) % CASK_STREAM_CHAIN;
            t->nchain--;
        }
        t->chain[(t->first + t->nchain) % CASK_STREAM_CHAIN] = seg_id;
        t->nchain++;
    }
}

void
cask_stream_note(struct cask_shard *sh, uint32_t seg_id)
{
    cask_stream_note_n(sh, seg_id, 1);
}

void
cask_stream_note_n(struct cask_shard *sh, uint32_t seg_id, uint64_t n)
{
    chain_push(&sh->tail, seg_id);
    /* seq_cst, as the waiter's count and check: either it sees this
     * append, or this sees it waiting. */
    atomic_fetch_add(&sh->tail.appended, n);
    if (atomic_load(&waiters) > 0) {
        pthread_mutex_lock(&wake_mu);
        pthread_cond_broadcast(&wake_cv);
        pthread_mutex_unlock(&wake_mu);
    }
}

void
cask_stream_wait(struct cask *c, uint64_t seen, unsigned timeout_ms)
{
    struct timespec ts;
    cask_deadline_in(&ts, timeout_ms);
    atomic_fetch_add(&waiters, 1);
    pthread_mutex_lock(&wake_mu);
    while (cask_stream_appended(c, -1) == seen) {
        if (cask_cond_wait_until(&wake_cv, &wake_mu, &ts) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&wake_mu);
    atomic_fetch_sub(&waiters, 1);
}

uint64_t
cask_stream_appended(struct cask *c, int shard)
{
    if (shard >= 0) {
        return atomic_load(&c->shards[shard]->tail.appended);
    }
    uint64_t n = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        n += atomic_load(&c->shards[i]->tail.appended);
    }
    return n;
}

/* With mu held: the chain ends with the active segment. Only client
 * appends go there, but a roll-over (or the open) makes it active before
 * its first append notes it. */
static void
seed_chain(struct cask_shard *sh)
{
    if (sh->active != NULL) {
        chain_push(&sh->tail, sh->active->id);
    }
}

/* Index in chain order of segment id, or -1. */
static long
chain_find(const struct cask_stream_tail *t, uint32_t id)
{
    for (uint32_t i = 0; i < t->nchain; i++) {
        if (t->chain[(t->first + i) % CASK_STREAM_CHAIN] == id) {
            return (long)i;
        }
    }
    return -1;
}

static uint32_t
chain_at(const struct cask_stream_tail *t, long i)
{
    return t->chain[(t->first + (uint32_t)i) % CASK_STREAM_CHAIN];
}

static struct cask_segment *
seg_by_id(struct cask_shard *sh, uint32_t id)
{
    for (uint32_t i = 0; i < sh->nslots; i++) {
        if (sh->segs[i] != NULL && sh->segs[i]->id == id) {
            return sh->segs[i];
        }
    }
    return NULL;
}

static void
tail_locked(struct cask_shard *sh, struct cask_pos *pos, uint64_t *appended)
{
    seed_chain(sh);
    if (sh->active != NULL) {
        pos->seg = sh->active->id;
        pos->off = sh->active->flushed;
    } else {
        pos->seg = 0; /* none yet: the stream starts at the first one */
        pos->off = 0;
    }
    *appended = atomic_load(&sh->tail.appended);
}

void
cask_stream_tail_pos(struct cask *c, unsigned shard, struct cask_pos *pos,
                     uint64_t *appended)
{
    struct cask_shard *sh = c->shards[shard];
    pthread_mutex_lock(&sh->mu);
    tail_locked(sh, pos, appended);
    pthread_mutex_unlock(&sh->mu);
}

/* Drop a pin taken under sh's mutex (held again now). */
static void
unpin(struct cask_shard *sh, struct cask_segment *s)
{
    (void)sh;
    if (--s->readers == 0 && s->retired) {
        cask_seg_close(&s);
    }
}

static int
grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) {
        return 0;
    }
    char *nb = realloc(*buf, need);
    if (nb == NULL) {
        return ENOMEM;
    }
    *buf = nb;
    *cap = need;
    return 0;
}

/* Move one hold from segment id from to id to (0: none), mu held. */
static void
hold_move(struct cask_stream_tail *t, uint32_t from, uint32_t to)
{
    for (unsigned k = 0; k < CASK_STREAM_HOLDS; k++) {
        if (t->hold[k] == from) {
            t->hold[k] = to;
            return;
        }
    }
}

bool
cask_stream_held(struct cask_shard *sh, const struct cask_segment *s)
{
    const struct cask_stream_tail *t = &sh->tail;
    bool any = false;
    for (unsigned k = 0; k < CASK_STREAM_HOLDS; k++) {
        if (t->hold[k] != 0 && t->hold[k] <= s->id) {
            any = true;
            break;
        }
    }
    /* log segments come in id order; compaction outputs are not held */
    return any && chain_find(t, s->id) >= 0;
}

/* Make *pin hold s (mu held). */
static void
pin_to(struct cask_shard *sh, struct cask_segment **pin, struct cask_segment *s)
{
    if (*pin == s) {
        return;
    }
    hold_move(&sh->tail, *pin != NULL ? (*pin)->id : 0, s->id);
    if (*pin != NULL) {
        unpin(sh, *pin);
    }
    s->readers++;
    *pin = s;
}

void
cask_stream_unpin(struct cask *c, unsigned shard, struct cask_segment **pin)
{
    if (*pin == NULL) {
        return;
    }
    struct cask_shard *sh = c->shards[shard];
    pthread_mutex_lock(&sh->mu);
    hold_move(&sh->tail, (*pin)->id, 0);
    unpin(sh, *pin);
    pthread_mutex_unlock(&sh->mu);
    *pin = NULL;
}

/* Find the segment holding the next record at or after *pos, pin it in
 * *pin (the reader's, kept between calls) and once more for this read;
 * *end is how far it is written. Returns 0 (*segp NULL when nothing new),
 * or CASK_ENOTFOUND. mu held. */
static int
locate(struct cask_shard *sh, struct cask_pos *pos, struct cask_segment **pin,
       struct cask_segment **segp, uint64_t *end, uint64_t *end_n)
{
    struct cask_stream_tail *t = &sh->tail;
    *segp = NULL;
    *end_n = atomic_load(&t->appended); /* unless a record follows */
    seed_chain(sh);
    if (pos->seg == 0) {
        if (t->nchain == 0) {
            return 0;
        }
        pos->seg = chain_at(t, 0);
        pos->off = CASK_SEG_HDR;
    }
    for (;;) {
        long i = chain_find(t, pos->seg);
        struct cask_segment *s;
        if (*pin != NULL && (*pin)->id == pos->seg) {
            s = *pin; /* still readable if compaction retired it since */
        } else {
            s = i < 0 ? NULL : seg_by_id(sh, pos->seg);
            if (s == NULL || s->is_output) {
                return CASK_ENOTFOUND;
            }
            pin_to(sh, pin, s);
        }
        if (pos->off < CASK_SEG_HDR) {
            pos->off = CASK_SEG_HDR;
        }
        if (pos->off > s->flushed) {
            return CASK_ENOTFOUND; /* e.g. a tail truncated by recovery */
        }
        if (pos->off < s->flushed) {
            *end_n = UINT64_MAX;
            s->readers++;
            *segp = s;
            *end = s->flushed;
            return 0;
        }
        if (s == sh->active) {
            return 0; /* at the end of the log */
        }
        if (i < 0) {
            return CASK_ENOTFOUND; /* the chain forgot what follows */
        }
        if (i + 1 >= (long)t->nchain) {
            return 0; /* rolled over, nothing appended yet */
        }
        pos->seg = chain_at(t, i + 1);
        pos->off = CASK_SEG_HDR;
    }
}

/* Length of the whole record at buf[0..avail), 0 when more bytes are
 * needed (*need says how many), or CASK_ECORRUPT via *bad. */
static size_t
record_at(const char *p, size_t avail, size_t *need, bool *bad)
{
    struct cask_rec r;
    *bad = false;
    *need = CASK_REC_HDR;
    if (avail < CASK_REC_HDR) {
        return 0;
    }
    if (!cask_rec_decode(p, CASK_REC_VMAX, &r)) {
        *bad = true;
        return 0;
    }
    *need = cask_rec_len(r.klen, r.vlen);
    if (avail < *need) {
        return 0;
    }
    if (!cask_rec_verify(p, *need)) {
        *bad = true;
        return 0;
    }
    return *need;
}

int
cask_stream_read(struct cask *c, unsigned shard, struct cask_pos *pos,
                 struct cask_segment **pin, size_t max, char **buf, size_t *cap,
                 size_t *len, size_t *nrec, struct cask_pos *at,
                 uint64_t *end_n)
{
    struct cask_shard *sh = c->shards[shard];
    struct cask_segment *s;
    uint64_t end;

    *len = 0;
    *nrec = 0;
    pthread_mutex_lock(&sh->mu);
    int rc = locate(sh, pos, pin, &s, &end, end_n);
    pthread_mutex_unlock(&sh->mu);
    *at = *pos;
    if (rc != 0 || s == NULL) {
        return rc;
    }
    uint64_t avail = end - pos->off;
    size_t want = avail < max ? (size_t)avail : max;
    size_t got = 0, used = 0, count = 0;
    for (;;) {
        rc = grow(buf, cap, want);
        if (rc == 0) {
            rc = cask_seg_pread(s, pos->off + got, want - got, *buf + got);
        }
        if (rc != 0) {
            break;
        }
        got = want;
        size_t need;
        bool bad;
        for (;;) {
            size_t rl = record_at(*buf + used, got - used, &need, &bad);
            if (rl == 0) {
                break;
            }
            used += rl;
            count++;
        }
        if (bad) {
            rc = used == 0 ? CASK_ECORRUPT : 0;
            break;
        }
        if (used > 0 || need > avail) {
            /* A partial record at the end is read next time; one that
             * does not fit in the segment is damage. */
            rc = used == 0 ? CASK_ECORRUPT : 0;
            break;
        }
        want = need; /* a record larger than max: read it whole */
    }
    pthread_mutex_lock(&sh->mu);
    unpin(sh, s);
    pthread_mutex_unlock(&sh->mu);
    if (rc == 0) {
        pos->off += used;
        *len = used;
        *nrec = count;
    }
    return rc;
}

/* ---- snapshots ---------------------------------------------------------- */

struct snap_item {
    struct cask_segment *seg; /* pinned */
    uint32_t off;
    uint32_t len;
    int64_t exp; /* in effect (a touch may have changed it) */
    uint64_t cas;
};

struct cask_snap {
    struct cask_shard *sh;
    struct snap_item *items;
    size_t n, cap, next;
    int64_t now;
    uint64_t flush_cas;
    int err; /* a failed allocation while collecting */
};

static void
snap_visit(void *arg, struct cask_kd_entry *e)
{
    struct cask_snap *s = arg;
    uint64_t cas = cask_kd_cas(e);
    if (e->off == 0 || cas <= s->flush_cas ||
        (e->exp != 0 && (int64_t)e->exp <= s->now) || s->err != 0) {
        return;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        struct snap_item *ni = realloc(s->items, nc * sizeof(*ni));
        if (ni == NULL) {
            s->err = ENOMEM;
            return;
        }
        s->items = ni;
        s->cap = nc;
    }
    struct snap_item *it = &s->items[s->n++];
    it->seg = s->sh->segs[e->seg];
    it->off = e->off;
    it->len = (uint32_t)cask_rec_len(e->klen, e->vlen);
    it->exp = e->exp;
    it->cas = cas;
    it->seg->readers++;
}

int
cask_snap_create(struct cask_snap **out, struct cask *c, unsigned shard,
                 struct cask_pos *pos, uint64_t *appended)
{
    struct cask_snap *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return ENOMEM;
    }
    s->sh = c->shards[shard];
    s->now = cask_now(c);
    s->flush_cas = cask_flush_point(c, s->now);
    /* Compaction outputs hold records in a user-space buffer until they
     * are flushed; hold the compaction off while collecting, so every
     * record collected is in its file. */
    pthread_mutex_lock(&s->sh->maint_mu);
    pthread_mutex_lock(&s->sh->mu);
    /* Records a write batch staged are read from the file too: write
     * them out first (a failure fails the snapshot). */
    s->err = cask_log_write_out(s->sh);
    if (s->err == 0) {
        cask_kd_foreach(s->sh->kd, snap_visit, s);
    }
    tail_locked(s->sh, pos, appended);
    pthread_mutex_unlock(&s->sh->mu);
    pthread_mutex_unlock(&s->sh->maint_mu);
    if (s->err != 0) {
        int rc = s->err;
        cask_snap_destroy(&s);
        return rc;
    }
    *out = s;
    return 0;
}

int
cask_snap_next(struct cask_snap *s, size_t max, char **buf, size_t *cap,
               size_t *len)
{
    size_t used = 0;
    *len = 0;
    while (s->next < s->n) {
        struct snap_item *it = &s->items[s->next];
        if (used > 0 && used + it->len > max) {
            break;
        }
        int rc = grow(buf, cap, used + it->len);
        if (rc == 0) {
            rc = cask_seg_pread(it->seg, it->off, it->len, *buf + used);
        }
        if (rc != 0) {
            return rc;
        }
        char *p = *buf + used;
        struct cask_rec r;
        if (!cask_rec_decode(p, CASK_REC_VMAX, &r) ||
            cask_rec_len(r.klen, r.vlen) != it->len ||
            !cask_rec_verify(p, it->len) || r.type != CASK_REC_PUT ||
            r.cas != it->cas) {
            return CASK_ECORRUPT;
        }
        if (r.exp_abs_s != it->exp) {
            cask_rec_restamp(p, it->len, r.seq, it->exp);
        }
        used += it->len;
        s->next++;
    }
    *len = used;
    return 0;
}

void
cask_snap_destroy(struct cask_snap **sp)
{
    struct cask_snap *s = *sp;
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->sh->mu);
    for (size_t i = 0; i < s->n; i++) {
        unpin(s->sh, s->items[i].seg);
    }
    pthread_mutex_unlock(&s->sh->mu);
    free(s->items);
    free(s);
    *sp = NULL;
}

/* ---- replica side ------------------------------------------------------ */

int
cask_stream_apply(struct cask *c, unsigned shard, const char *rec, size_t len)
{
    struct cask_rec r;
    if (shard >= c->nshards || len < CASK_REC_HDR ||
        !cask_rec_decode(rec, CASK_REC_VMAX, &r) ||
        cask_rec_len(r.klen, r.vlen) != len || !cask_rec_verify(rec, len)) {
        return CASK_ECORRUPT;
    }
    const char *key = rec + CASK_REC_HDR;
    if (cask_shard_of(c, key, r.klen) != shard) {
        return CASK_ECORRUPT;
    }
    if (r.vlen > c->opt.value_max) {
        return CASK_ETOOBIG; /* the replica's -I is below the primary's */
    }
    uint64_t h = cask_kd_hash(key, r.klen);
    return cask_shard_apply(c->shards[shard], h, &r, key, key + r.klen);
}

int
cask_stream_wipe(struct cask *c, unsigned shard)
{
    if (shard >= c->nshards) {
        return CASK_EINVAL;
    }
    return cask_shard_wipe(c->shards[shard]);
}

size_t
cask_snap_count(const struct cask_snap *s)
{
    return s->n;
}
