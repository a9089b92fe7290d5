/* cask_compact.c - compaction of one shard.
 *
 * Picks closed segments whose dead fraction passed compact_ratio (or any dead
 * bytes when forced), copies their live records to new segments, switches a
 * keydir entry only where it still points at the old place, writes hints for
 * the new segments, syncs them, commits by writing the inputs' ids to the
 * shard's retired file, and only then unlinks the old files. The
 * shard mutex is held for short batches only, so reads and writes keep
 * flowing; maint_mu keeps a second compaction (and the hint writer) out.
 * Owns nothing beyond one run; works on the shard's structures through the
 * helpers in cask_shard.h.
 *
 * An eviction (cask_shard_evict_oldest) is a compaction of the shard's
 * oldest closed segment that copies forward only the items read since they
 * were written (their second chance, as long as the unread ones free
 * enough) and drops the others. Their keydir entries stay until the retired
 * file has committed the run, so an evicted key is served until it can no
 * longer come back; where a segment outside the run could hold an older record
 * of such a key, a tombstone with the dropped put's cas (and a fresh seq) goes
 * into the output first, as for an expired record. The items dropped are
 * told to cask_options.evicted once the run is over (cask_evnote.h).
 */
#include "storage/cask_shard.h"

#include "storage/cask_atime.h"
#include "storage/cask_evict.h"
#include "storage/cask_evnote.h"
#include "storage/cask_hint.h"
#include "storage/cask_io.h"
#include "storage/cask_journal.h"
#include "storage/cask_log.h"
#include "storage/cask_manifest.h"
#include "storage/cask_record.h"
#include "storage/cask_resync.h"
#include "storage/cask_retire.h"
#include "storage/cask_segtab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMPACT_BATCH 256u           /* records per hold of the shard mutex */
#define COMPACT_BUF   (1024u * 1024) /* output append buffer */
#define COMPACT_SMALL 4u             /* small segments compacted as one batch */
#define EVICT_MAX_IN  64u            /* segments one eviction may take */
/* An active segment this big whose dead fraction passed compact_ratio is
 * closed so compaction can take it: under overwrite churn a segment that
 * never fills (a small store, a large segment_size) would otherwise keep
 * its garbage for good. Bounds that garbage to about this much a shard. */
#define ACTIVE_ROLL_MIN (2u * 1024 * 1024)

struct compaction {
    struct cask_shard *sh;
    struct cask_segment **in;
    size_t nin;
    struct cask_segment **out;
    size_t nout;
    size_t out_cap;
    int64_t now;
    uint64_t flush_cas;
    int err;
    struct cask_seg_reader rd; /* reads the input being copied */
    char *stamp;               /* a record re-stamped with a new expiry */
    size_t stamp_cap;

    bool resync;        /* a rewrite after failed syncs (cask_resync.c) */
    const char *what;   /* the run for the log: why a rewrite runs */
    uint64_t lost;      /* resync: puts of the inputs no longer readable */
    uint64_t restored;  /* resync: tombstones and touch records written
                         * again for records that may have been lost */
    bool evict;         /* an eviction, not a compaction */
    uint64_t need;      /* keys the eviction should free */
    uint64_t keep_left; /* read items that may still be kept */
    struct evicted *ev; /* items to drop once the run is committed */
    size_t nev, ev_cap;
    struct cask_evnote notes; /* what cask_options.evicted is told */
};

/* An item an eviction drops: found again after the commit by its place. */
struct evicted {
    uint64_t h;
    uint32_t off;
    uint32_t len;
    uint16_t slot;
    uint8_t klen;
    uint32_t note; /* its key in m->notes */
};

static int
out_new(struct compaction *m)
{
    struct cask_shard *sh = m->sh;
    struct cask_segment *s = NULL;
    if (m->nout == m->out_cap) {
        size_t nc = m->out_cap ? m->out_cap * 2 : 4;
        struct cask_segment **n = realloc(m->out, nc * sizeof(*n));
        if (n == NULL) {
            return ENOMEM;
        }
        m->out = n;
        m->out_cap = nc;
    }
    int rc = cask_segtab_new_segment(sh, COMPACT_BUF, true, &s);
    if (rc != 0) {
        return rc;
    }
    m->out[m->nout++] = s;
    return 0;
}

/* With mu held: copy an encoded record to the current output segment. */
static int
out_append(struct compaction *m, const char *rec, size_t len, uint64_t cas,
           uint16_t *slot, uint32_t *off)
{
    struct cask *c = m->sh->store;
    int rc;
    struct cask_segment *o = m->nout ? m->out[m->nout - 1] : NULL;
    if (o == NULL ||
        (o->size + len > c->opt.segment_size && o->size > CASK_SEG_HDR)) {
        if (o != NULL) {
            rc = cask_seg_flush(o);
            if (rc != 0) {
                return rc;
            }
        }
        rc = out_new(m);
        if (rc != 0) {
            return rc;
        }
        o = m->out[m->nout - 1];
    }
    uint64_t at = o->size;
    char *p = cask_seg_reserve(o, len);
    if (p == NULL && len <= o->buf_cap) {
        rc = cask_seg_flush(o);
        if (rc != 0) {
            return rc;
        }
        p = cask_seg_reserve(o, len);
    }
    if (p != NULL) {
        memcpy(p, rec, len);
    } else {
        rc = cask_seg_write_direct(o, rec, len);
        if (rc != 0) {
            return rc;
        }
        at = o->flushed - len;
    }
    if (cas < o->min_cas) {
        o->min_cas = cas;
    }
    if (cas > o->max_cas) {
        o->max_cas = cas;
    }
    *slot = o->slot;
    *off = (uint32_t)at;
    return 0;
}

/* The keydir keeps no keys, and compaction reads none under the shard
 * mutex: it asks for entries it can recognise without one. */
struct at_place {
    uint16_t slot;
    uint32_t off;
};

/* The entry that indexes the record at this place (so is its key's). */
static bool
points_at(void *arg, const struct cask_kd_entry *e, const void *key,
          size_t klen)
{
    const struct at_place *p = arg;
    (void)key;
    (void)klen;
    return e->off != 0 && e->seg == p->slot && e->off == p->off;
}

/* The entry with this cas: a cas is handed out to one key's record only
 * (copies and touches keep the cas of the same key). */
static bool
has_cas(void *arg, const struct cask_kd_entry *e, const void *key, size_t klen)
{
    (void)key;
    (void)klen;
    return e->off != 0 && cask_kd_cas(e) == *(const uint64_t *)arg;
}

/* With mu held: dropping the put r (expired, or evicted) could uncover an
 * older record of its key at recovery: leave a tombstone with its cas and
 * a fresh seq where a segment outside the run could hold one. */
static int
drop_tomb(struct compaction *m, const struct cask_rec *r, const char *key)
{
    struct cask_shard *sh = m->sh;
    char tb[CASK_REC_HDR + CASK_KEY_MAX];
    uint16_t slot;
    uint32_t noff;
    uint64_t seq;
    if (!cask_segtab_tomb_needed(sh, r->cas)) {
        return 0;
    }
    int rc = cask_cas_next(sh->store, &seq);
    if (rc != 0) {
        return rc;
    }
    struct cask_rec t = {
            .seq = seq,
            .cas = r->cas,
            .klen = r->klen,
            .type = CASK_REC_TOMB,
    };
    cask_rec_encode(tb, &t, key, NULL, 0, NULL, 0);
    rc = out_append(m, tb, cask_rec_len(r->klen, 0), t.cas, &slot, &noff);
    if (rc == 0) {
        sh->segs[slot]->kept_bytes += cask_rec_len(r->klen, 0);
    }
    return rc;
}

/* With mu held: an eviction drops the live put r at off of s. Its entry
 * stays (and is served) until the run is committed; see finish_evict. */
static int
evict_record(struct compaction *m, struct cask_segment *s, uint64_t off,
             const struct cask_rec *r, const char *key, uint64_t h, size_t len)
{
    if (m->nev == m->ev_cap) {
        size_t nc = m->ev_cap ? m->ev_cap * 2 : 256;
        struct evicted *n = realloc(m->ev, nc * sizeof(*n));
        if (n == NULL) {
            return ENOMEM;
        }
        m->ev = n;
        m->ev_cap = nc;
    }
    int rc = drop_tomb(m, r, key);
    if (rc != 0) {
        return rc;
    }
    m->ev[m->nev++] = (struct evicted){
            .h = h,
            .off = (uint32_t)off,
            .len = (uint32_t)len,
            .slot = s->slot,
            .klen = r->klen,
            .note = cask_evnote_key(&m->notes, key, r->klen),
    };
    return 0;
}

/* With mu held: the live bytes the evicted items still hold in input s
 * (those not overwritten or deleted meanwhile). */
static uint64_t
evicted_live(struct compaction *m, const struct cask_segment *s)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < m->nev; i++) {
        struct at_place p = {.slot = m->ev[i].slot, .off = m->ev[i].off};
        if (p.slot == s->slot &&
            cask_kd_find_if(m->sh->kd, m->ev[i].h, m->ev[i].klen, points_at,
                            &p) != NULL) {
            sum += m->ev[i].len;
        }
    }
    return sum;
}

/* With mu held, once the run is committed: drop the evicted items' keydir
 * entries (those still pointing at their records) and count them. */
static void
finish_evict(struct compaction *m)
{
    struct cask_shard *sh = m->sh;
    int64_t now = cask_now(sh->store);
    for (size_t i = 0; i < m->nev; i++) {
        struct at_place p = {.slot = m->ev[i].slot, .off = m->ev[i].off};
        struct cask_kd_entry *e = cask_kd_find_if(sh->kd, m->ev[i].h,
                                                  m->ev[i].klen, points_at, &p);
        if (e == NULL) {
            continue; /* overwritten or deleted since */
        }
        struct cask_class_stats *cs =
                cask_shard_cls(sh, m->ev[i].klen, e->vlen, e->flags);
        sh->evictions++;
        cs->evicted++;
        if (e->exp != 0) {
            cs->evicted_nonzero++;
        }
        cs->evicted_time = (uint64_t)(now - cask_at_time(e->at, now));
        cs->evicted_at_s = now;
        if (e->fetched) {
            sh->evicted_active++;
            cs->evicted_active++;
        } else {
            sh->evicted_unfetched++;
            cs->evicted_unfetched++;
        }
        sh->segs[p.slot]->live_bytes -= m->ev[i].len;
        cask_evnote_dropped(&m->notes, m->ev[i].note, e, now);
        cask_kd_remove(sh->kd, m->ev[i].h, e);
    }
    sh->evict_runs++;
    pthread_cond_broadcast(&sh->sync_cv); /* writers in wait_evicted */
}

/* With mu held: keep, move or drop one record of an input segment. */
static int
copy_record(struct compaction *m, struct cask_segment *s, uint64_t off,
            const struct cask_rec *r, const char *rec, size_t len)
{
    struct cask_shard *sh = m->sh;
    const char *key = rec + CASK_REC_HDR;
    uint64_t h = cask_kd_hash(key, r->klen);
    struct cask_kd_entry *e;
    uint16_t slot;
    uint32_t noff;

    if (r->type == CASK_REC_TOMB) {
        /* A flushed tombstone shadows only flushed records. Otherwise keep
         * it while an older record of the key may survive elsewhere (also
         * when a newer put of the key is live: telling that would take a
         * read of its key, and keeping it is always safe). */
        if (r->cas <= m->flush_cas || !cask_segtab_tomb_needed(sh, r->cas)) {
            return 0;
        }
        int rc = out_append(m, rec, len, r->cas, &slot, &noff);
        if (rc == 0) {
            sh->segs[slot]->kept_bytes += len;
        }
        return rc;
    }
    if (r->type == CASK_REC_TOUCH) {
        /* Still needed only while it carries the expiry in effect for a
         * put that stays where it is; a put this compaction copies gets
         * that expiry stamped into the copy instead. */
        uint64_t cas = r->cas;
        e = cask_kd_find_if(sh->kd, h, r->klen, has_cas, &cas);
        if (e == NULL || cask_kd_cas(e) != r->cas || r->cas <= m->flush_cas ||
            e->exp != cask_kd_exp32(r->exp_abs_s) ||
            sh->segs[e->seg]->compacting || sh->segs[e->seg]->is_output) {
            return 0;
        }
        int rc = out_append(m, rec, len, r->cas, &slot, &noff);
        if (rc == 0) {
            sh->segs[slot]->kept_bytes += len;
        }
        return rc;
    }
    struct at_place here = {.slot = s->slot, .off = (uint32_t)off};
    e = cask_kd_find_if(sh->kd, h, r->klen, points_at, &here);
    if (e == NULL) {
        return 0; /* superseded */
    }
    if (cask_kd_cas(e) <= m->flush_cas) {
        sh->reclaimed++;
        cask_shard_cls(sh, r->klen, e->vlen, e->flags)->reclaimed++;
        s->live_bytes -= len;
        cask_kd_remove(sh->kd, h, e);
        return 0;
    }
    if (e->exp != 0 && (int64_t)e->exp <= m->now) {
        int rc = drop_tomb(m, r, key);
        if (rc != 0) {
            return rc;
        }
        struct cask_class_stats *cs =
                cask_shard_cls(sh, r->klen, e->vlen, e->flags);
        sh->reclaimed++;
        cs->reclaimed++;
        if (!e->fetched) {
            sh->expired_unfetched++;
            cs->expired_unfetched++;
        }
        s->live_bytes -= len;
        cask_kd_remove(sh->kd, h, e);
        return 0;
    }
    if (m->evict) {
        if (e->fetched && m->keep_left > 0) {
            m->keep_left--; /* a second chance: copied below */
        } else {
            return evict_record(m, s, off, r, key, h, len);
        }
    }
    if (e->exp != cask_kd_exp32(r->exp_abs_s)) {
        /* Touched since it was written: the copy carries the expiry in
         * effect, with a fresh seq so that no older touch record
         * elsewhere overrides it at recovery. */
        uint64_t seq;
        int rc = cask_cas_next(sh->store, &seq);
        if (rc != 0) {
            return rc;
        }
        if (m->stamp_cap < len) {
            char *n = realloc(m->stamp, len);
            if (n == NULL) {
                return ENOMEM;
            }
            m->stamp = n;
            m->stamp_cap = len;
        }
        memcpy(m->stamp, rec, len);
        cask_rec_restamp(m->stamp, len, seq, (int64_t)e->exp);
        rec = m->stamp;
    }
    int rc = out_append(m, rec, len, r->cas, &slot, &noff);
    if (rc != 0) {
        return rc;
    }
    s->live_bytes -= len;
    e->seg = slot;
    e->off = noff;
    e->fetched = 0; /* it must be read again to survive the next eviction */
    e->checked = 0; /* the copy is checked anew (cask_verify.h) */
    sh->segs[slot]->live_bytes += len;
    return 0;
}

/* One record of a segment walk, with mu held: 0 goes on. */
typedef int (*walk_fn)(struct compaction *m, struct cask_segment *s,
                       uint64_t off, const struct cask_rec *r, const char *rec,
                       size_t len);

/* Walk closed segment s with fn, COMPACT_BATCH records at a time under
 * mu, reading ahead without it (s is immutable, and the requests of the
 * shard should not wait for its disk reads). Damage inside s is skipped
 * to the next valid record (what lies between is unreadable anyway):
 * compaction logs and counts it, and a read error keeps s as damaged; a
 * rewrite (after a failed sync or a cut) leaves both to compaction and
 * recovery. */
static int
walk_segment(struct compaction *m, struct cask_segment *s, bool rewrite,
             walk_fn fn)
{
    struct cask_shard *sh = m->sh;
    const char *what = m->what;
    uint64_t off = CASK_SEG_HDR;
    int rc = 0;
    while (rc == 0 && off < s->flushed) {
        (void)cask_seg_reader_prefetch(s, &m->rd, off);
        pthread_mutex_lock(&sh->mu);
        for (unsigned n = 0; n < COMPACT_BATCH && off < s->flushed &&
                             (n == 0 || cask_seg_reader_covers(&m->rd, s, off));
             n++) {
            struct cask_rec r;
            size_t len;
            const char *rec = NULL;
            rc = cask_seg_read_record(s, &m->rd, off, CASK_REC_VMAX, &r, &len,
                                      &rec);
            if (rc == CASK_SEG_EINVALID) {
                uint64_t next = cask_seg_resync(s, off, CASK_REC_VMAX, &rc);
                if (rc == 0) {
                    if (!rewrite) {
                        cask_logf(sh->store, CASK_LOG_WARN,
                                  "shard %u: compaction: %" PRIu64
                                  " damaged bytes in segment %08x at %" PRIu64
                                  " skipped",
                                  sh->idx, next - off, s->id, off);
                        sh->bytes_damaged += next - off;
                    }
                    off = next;
                    continue;
                }
            }
            if (rc != 0) {
                cask_logf(sh->store, CASK_LOG_ERROR,
                          "shard %u: %s: read segment %08x at %" PRIu64
                          ": %s%s",
                          sh->idx, what, s->id, off, cask_strerror(rc),
                          rewrite ? "" : "; segment kept");
                if (!rewrite) {
                    s->damaged = true;
                }
                break;
            }
            rc = fn(m, s, off, &r, rec, len);
            if (rc != 0) {
                break;
            }
            off += len;
        }
        pthread_mutex_unlock(&sh->mu);
    }
    return rc;
}

static int
cmp_seg(const void *a, const void *b)
{
    const struct cask_segment *x = *(struct cask_segment *const *)a;
    const struct cask_segment *y = *(struct cask_segment *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool
pick(struct cask_shard *sh, struct cask_segment *s, bool force,
     uint64_t flush_cas)
{
    uint64_t total = s->flushed - CASK_SEG_HDR;
    /* Tombstones a compaction had to keep are not reclaimable yet: counting
     * them as dead would rewrite the same segment over and over. */
    uint64_t dead = total - s->live_bytes - s->kept_bytes;
    if (total == 0 || (s->max_cas != 0 && s->max_cas <= flush_cas)) {
        return true;
    }
    if (force) {
        return dead > 0;
    }
    return (double)dead >= sh->store->opt.compact_ratio * (double)total;
}

/* Choose the inputs (mu held). Forced runs first close the active segment
 * when it holds dead bytes, so that everything can be reclaimed; others
 * when it is big enough (ACTIVE_ROLL_MIN) and mostly dead. */
static int
choose(struct compaction *m, bool force)
{
    struct cask_shard *sh = m->sh;
    struct cask_segment *a = sh->active;
    bool roll = false;
    if (a != NULL && a->size > CASK_SEG_HDR && !sh->failed) {
        uint64_t total = a->size - CASK_SEG_HDR;
        uint64_t used = a->live_bytes + a->kept_bytes;
        uint64_t dead = total > used ? total - used : 0;
        roll = force ? total > a->live_bytes
                     : total >= ACTIVE_ROLL_MIN &&
                               (double)dead >= sh->store->opt.compact_ratio *
                                                       (double)total;
    }
    if (roll) {
        int rc = cask_log_roll(sh);
        if (rc != 0) {
            return rc;
        }
    }
    /* Inputs are durable: closed segments whose roll-over left their
     * sync to the sync thread are synced first (mu released). */
    cask_log_sync_rolled(sh);
    m->in = calloc(sh->nslots ? sh->nslots : 1, sizeof(*m->in));
    if (m->in == NULL) {
        return ENOMEM;
    }
    /* Small closed segments (each clean restart starts a new one) are
     * compacted together once there are several, so their number stays bounded.
     */
    uint64_t small = sh->store->opt.segment_size / 8;
    uint64_t unit = cask_evict_unit(sh);
    if (unit != 0 && unit / 2 < small) {
        small = unit / 2; /* segments rolled for eviction stay apart */
    }
    unsigned nsmall = 0;
    for (uint32_t i = 0; i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s != NULL && s != sh->active && !s->is_output && !s->compacting &&
            !s->damaged && !s->sync_pending && s->flushed < small) {
            nsmall++;
        }
    }
    for (uint32_t i = 0; i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s == NULL || s == sh->active || s->is_output || s->compacting ||
            s->damaged || s->sync_pending || cask_stream_held(sh, s)) {
            continue;
        }
        if (pick(sh, s, force, m->flush_cas) ||
            (nsmall >= COMPACT_SMALL && s->flushed < small)) {
            s->compacting = true;
            m->in[m->nin++] = s;
        }
    }
    qsort(m->in, m->nin, sizeof(*m->in), cmp_seg);
    return 0;
}

/* With mu held: the shard's oldest closed segment, or NULL. */
static struct cask_segment *
oldest_closed(struct cask_shard *sh)
{
    struct cask_segment *v = NULL;
    for (uint32_t i = 0; i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s == NULL || s == sh->active || s->is_output || s->compacting ||
            s->damaged || s->sync_pending) {
            continue;
        }
        if (v == NULL || s->id < v->id) {
            v = s;
        }
    }
    return v;
}

/* The inputs of an eviction (mu held): the oldest segment, the active one
 * included (rolled first), then, while they hold less than disk_bytes or
 * (by estimate) fewer than need keys, the next oldest closed ones (up to
 * EVICT_MAX_IN: one commit for all). A
 * compaction's or an eviction's output is newer than the active segment of
 * its time: what it copied forward waits behind what was written before. */
static int
choose_evict(struct compaction *m, uint64_t need, uint64_t disk_bytes)
{
    struct cask_shard *sh = m->sh;
    /* Inputs are durable (see choose); mu released meanwhile. */
    cask_log_sync_rolled(sh);
    struct cask_segment *v = oldest_closed(sh);
    struct cask_segment *a = sh->active;
    if ((v == NULL || (a != NULL && a->id < v->id)) && a != NULL &&
        a->size > CASK_SEG_HDR) {
        int rc = cask_log_roll(sh);
        if (rc != 0) {
            return rc;
        }
        cask_log_sync_rolled(sh);
        v = oldest_closed(sh);
    }
    if (v == NULL) {
        return 0;
    }
    m->in = calloc(EVICT_MAX_IN, sizeof(*m->in));
    if (m->in == NULL) {
        return ENOMEM;
    }
    /* Keys a segment holds, estimated from its live bytes and the shard's
     * bytes per key. */
    uint64_t live = 0, keys = cask_kd_count(sh->kd);
    for (uint32_t i = 0; i < sh->nslots; i++) {
        if (sh->segs[i] != NULL) {
            live += sh->segs[i]->live_bytes;
        }
    }
    double per_key = keys != 0 && live != 0 ? (double)live / (double)keys : 1;
    uint64_t picked = 0;
    double picked_keys = 0;
    while (v != NULL) {
        v->compacting = true;
        m->in[m->nin++] = v;
        picked += v->size + v->hint_bytes;
        picked_keys += (double)v->live_bytes / per_key;
        if ((picked >= disk_bytes && picked_keys >= (double)need) ||
            m->nin == EVICT_MAX_IN) {
            break;
        }
        v = oldest_closed(sh);
    }
    return 0;
}

/* The inputs of a rewrite after failed syncs (mu held): the queued
 * segments still in service (one compacted away meanwhile was read back
 * verified by that compaction, whose outputs were synced); the active one
 * among them is closed first and a new one started. */
static int
choose_resync(struct compaction *m)
{
    struct cask_shard *sh = m->sh;
    /* Sizes first: a file cut short by another process (and not written
     * past since) ends before what was written to it, and nothing can be
     * read past its end. The active one must not be extended back by
     * the roll-over giving its reserve back (the file goes anyway). */
    size_t cap = sh->nresync ? sh->nresync : 1;
    struct cask_segment **cut = calloc(cap, sizeof(*cut));
    uint64_t *cut_len = calloc(cap, sizeof(*cut_len));
    m->in = calloc(cap, sizeof(*m->in));
    if (cut == NULL || cut_len == NULL || m->in == NULL) {
        free(cut);
        free(cut_len);
        return ENOMEM;
    }
    size_t ncut = 0;
    for (uint32_t i = 0; i < sh->nslots && ncut < cap; i++) {
        struct cask_segment *s = sh->segs[i];
        struct stat st;
        if (s != NULL && !s->is_output && cask_resync_queued(sh, s->id) &&
            fstat(s->fd, &st) == 0 && (uint64_t)st.st_size < s->flushed) {
            cut[ncut] = s;
            cut_len[ncut++] = (uint64_t)st.st_size < CASK_SEG_HDR
                                      ? CASK_SEG_HDR
                                      : (uint64_t)st.st_size;
            if (s->prealloc_end > s->size) {
                s->prealloc_end = s->size;
            }
        }
    }
    int rc = cask_resync_roll(sh);
    for (size_t i = 0; i < ncut && rc == 0; i++) {
        /* closed now: what lay past the end is lost (resync_losses) */
        if (cut[i] != sh->active && cut_len[i] < cut[i]->flushed) {
            sh->bytes_damaged += cut[i]->flushed - cut_len[i];
            cut[i]->flushed = cut[i]->size = cut_len[i];
        }
    }
    free(cut);
    free(cut_len);
    if (rc != 0) {
        return rc;
    }
    for (uint32_t i = 0; i < sh->nslots; i++) {
        struct cask_segment *s = sh->segs[i];
        if (s != NULL && s != sh->active && !s->is_output &&
            cask_resync_queued(sh, s->id)) {
            s->compacting = true;
            m->in[m->nin++] = s;
        }
    }
    qsort(m->in, m->nin, sizeof(*m->in), cmp_seg);
    /* Say why it runs: a failed sync refuses writes (sh->failed); a cut
     * found by the size check or at open marks its segment damaged and
     * lets writes go on. */
    bool was_cut = ncut > 0;
    for (size_t i = 0; i < m->nin; i++) {
        was_cut = was_cut || m->in[i]->damaged;
    }
    m->what = !sh->failed ? "rewrite of segments cut short"
              : was_cut   ? "rewrite after a failed sync and a cut"
                          : "rewrite after a failed sync";
    return 0;
}

struct lost_walk {
    struct cask_shard *sh;
    uint64_t n;
};

/* An entry still pointing into an input once a rewrite has copied every
 * record that reads back whole: its record is lost. */
static bool
lost_entry(void *arg, const struct cask_kd_entry *e)
{
    struct lost_walk *w = arg;
    if (e->off == 0 || !w->sh->segs[e->seg]->compacting) {
        return false;
    }
    w->sh->segs[e->seg]->live_bytes -= cask_segtab_entry_len(e);
    w->n++;
    return true;
}

/* With mu held: append the record r (no value) for key to the output,
 * kept there like a carried-over tombstone. */
static int
out_small(struct compaction *m, const struct cask_rec *r, const char *key)
{
    char tb[CASK_REC_HDR + CASK_KEY_MAX];
    uint16_t slot;
    uint32_t noff;
    size_t len = cask_rec_len(r->klen, 0);
    cask_rec_encode(tb, r, key, NULL, 0, NULL, 0);
    int rc = out_append(m, tb, len, r->cas, &slot, &noff);
    if (rc == 0) {
        m->sh->segs[slot]->kept_bytes += len;
        m->restored++;
    }
    return rc;
}

/* With mu held, a rewrite that lost records: make the put r at off of s
 * (a segment outside the run; other records are passed over) say on disk
 * what memory says of its key.
 * The key is a miss in memory (deleted by a tombstone that may have been
 * lost, or its newer put was lost): a tombstone with r's cas and a fresh
 * seq hides r after a restart. r is the key's live put but its expiry
 * was changed by a touch record that may have been lost: a touch record
 * with the expiry in effect. Redundant records cost space only. */
static int
restore_put(struct compaction *m, struct cask_segment *s, uint64_t off,
            const struct cask_rec *r, const char *rec, size_t len)
{
    (void)len;
    if (r->type != CASK_REC_PUT) {
        return 0;
    }
    struct cask_shard *sh = m->sh;
    const char *key = rec + CASK_REC_HDR;
    uint64_t h = cask_kd_hash(key, r->klen);
    if (r->cas <= m->flush_cas) {
        return 0; /* flushed: gone after a restart too */
    }
    struct cask_kd_entry *e = cask_kd_find(sh->kd, h, key, r->klen);
    struct cask_rec t = {.cas = r->cas, .klen = r->klen};
    if (e == NULL) {
        t.type = CASK_REC_TOMB;
    } else if (e->seg == s->slot && e->off == off &&
               e->exp != cask_kd_exp32(r->exp_abs_s)) {
        t.type = CASK_REC_TOUCH;
        t.exp_abs_s = (int64_t)e->exp;
    } else {
        return 0;
    }
    int rc = cask_cas_next(sh->store, &t.seq);
    return rc != 0 ? rc : out_small(m, &t, key);
}

/* Walk segment s (outside the run) with restore_put. */
static int
restore_segment(struct compaction *m, struct cask_segment *s)
{
    return walk_segment(m, s, true, restore_put);
}

static void
count_into_inputs(void *arg, struct cask_kd_entry *e)
{
    struct lost_walk *w = arg;
    if (e->off != 0 && w->sh->segs[e->seg]->compacting) {
        w->n++;
    }
}

/* With mu held: does any keydir entry point into a running rewrite's
 * inputs (one walk of the keydir)? */
static bool
points_into_inputs(struct cask_shard *sh)
{
    struct lost_walk w = {.sh = sh};
    cask_kd_foreach(sh->kd, count_into_inputs, &w);
    return w.n != 0;
}

/* A rewrite has copied what reads back of its inputs. The keydir entries
 * still pointing into them are of puts lost (their bytes no longer pass
 * the checksum, or lay in a damaged stretch): removed, so that the key
 * misses. When anything was lost (such a put, or damaged bytes that may
 * have held tombstones and touch records), or failed puts were undone in
 * memory only (untombed, cask_lost.c), every other segment is walked
 * so that after a restart no older put of a key comes back where memory
 * has none, and no older expiry where a touch changed it. */
static int
resync_losses(struct compaction *m, uint64_t damaged, uint64_t untombed)
{
    struct cask_shard *sh = m->sh;
    struct lost_walk w = {.sh = sh};
    pthread_mutex_lock(&sh->mu);
    cask_kd_remove_if(sh->kd, lost_entry, &w);
    sh->records_lost += w.n;
    m->lost = w.n;
    size_t nseg = 0;
    uint32_t *ids = NULL;
    if (w.n != 0 || damaged != 0 || untombed != 0) {
        ids = malloc((sh->nslots ? sh->nslots : 1) * sizeof(*ids));
        for (uint32_t i = 0; ids != NULL && i < sh->nslots; i++) {
            struct cask_segment *s = sh->segs[i];
            if (s != NULL && !s->compacting && !s->is_output) {
                ids[nseg++] = s->id;
            }
        }
    }
    pthread_mutex_unlock(&sh->mu);
    if (w.n == 0 && damaged == 0 && untombed == 0) {
        return 0;
    }
    if (ids == NULL) {
        return ENOMEM;
    }
    cask_logf(sh->store,
              w.n != 0 || damaged != 0 ? CASK_LOG_ERROR : CASK_LOG_WARN,
              "shard %u: %s: %" PRIu64
              " records lost (no longer read back whole), %" PRIu64
              " damaged bytes skipped, %" PRIu64
              " failed puts undone: their keys now miss, and other "
              "segments get tombstones and touch records where those may "
              "have been lost",
              sh->idx, m->what, w.n, damaged, untombed);
    int rc = 0;
    for (size_t i = 0; i < nseg && rc == 0; i++) {
        /* Segments only leave the table under maint_mu, which is ours. */
        pthread_mutex_lock(&sh->mu);
        struct cask_segment *s = NULL;
        for (uint32_t j = 0; j < sh->nslots && s == NULL; j++) {
            if (sh->segs[j] != NULL && sh->segs[j]->id == ids[i]) {
                s = sh->segs[j];
            }
        }
        pthread_mutex_unlock(&sh->mu);
        if (s != NULL) {
            rc = restore_segment(m, s);
        }
    }
    free(ids);
    return rc;
}

/* Count the keys of an eviction's input (entries only leave it meanwhile)
 * and of the whole shard by whether they were read since written. */
struct seg_count {
    struct cask_shard *sh;
    uint64_t fetched;
    uint64_t unfetched;
    uint64_t all_unfetched; /* in the whole shard */
};

static void
count_entry(void *arg, struct cask_kd_entry *e)
{
    struct seg_count *sc = arg;
    if (e->off == 0) {
        return;
    }
    if (!e->fetched) {
        sc->all_unfetched++;
    }
    if (sc->sh->segs[e->seg]->compacting) {
        if (e->fetched) {
            sc->fetched++;
        } else {
            sc->unfetched++;
        }
    }
}

/* How many read items the eviction may keep: all of them when the unread
 * ones free enough, else as many as leave enough to drop. Walks the keydir
 * in steps, mu taken for each. */
static void
plan_evict(struct compaction *m)
{
    struct cask_shard *sh = m->sh;
    struct seg_count sc = {.sh = sh};
    uint64_t end = cask_kd_range_end(), step = end / 64;
    for (uint64_t lo = 0; lo < end; lo += step) {
        pthread_mutex_lock(&sh->mu);
        (void)cask_kd_foreach_range(sh->kd, lo, lo + step, count_entry, &sc);
        pthread_mutex_unlock(&sh->mu);
    }
    /* The unread keys of the whole shard free enough (this segment's now,
     * the others' in the next evictions): every read one here is kept.
     * Else the shard is mostly read: drop read ones too, oldest first, as
     * many as the unread ones fall short by. */
    if (sc.all_unfetched >= m->need) {
        m->keep_left = sc.fetched;
    } else {
        uint64_t short_by = m->need - sc.unfetched;
        m->keep_left = sc.fetched > short_by ? sc.fetched - short_by : 0;
    }
}

/* Copy the live records of input s. */
static int
compact_segment(struct compaction *m, struct cask_segment *s)
{
    return walk_segment(m, s, false, copy_record);
}

/* A rewrite under the commit journal (maint_mu held): the journal's
 * current generation, which no checkpoint replaces while the shard
 * rewrites, holds every acknowledged record of the inputs since their
 * last sync. Write back those whose bytes the kernel dropped, so that the
 * copy reads them whole instead of counting them lost. */
static void
restore_journaled(struct compaction *m)
{
    struct cask_shard *sh = m->sh;
    for (size_t i = 0; i < m->nin; i++) {
        uint64_t n = 0;
        int rc = cask_journal_restore(sh->store->journal, sh->idx, m->in[i]->id,
                                      m->in[i]->fd, &n);
        if (rc != 0) {
            cask_logf(sh->store, CASK_LOG_ERROR,
                      "shard %u: %s: restore segment %08x from the "
                      "journal: %s; what does not read back whole is lost",
                      sh->idx, m->what, m->in[i]->id, strerror(rc));
        } else if (n > 0) {
            cask_logf(sh->store, CASK_LOG_WARN,
                      "shard %u: %s: %" PRIu64
                      " records of segment %08x written back from the "
                      "journal (their pages were dropped)",
                      sh->idx, m->what, n, m->in[i]->id);
        }
    }
}

/* With mu held: a rewrite that did not commit. Its outputs stay in
 * service holding copies the keydir points at, never synced: they are
 * rewritten with the inputs at the next attempt, after a back-off. */
static void
resync_failed(struct compaction *m)
{
    if (!m->resync) {
        return;
    }
    for (size_t i = 0; i < m->nout; i++) {
        cask_resync_add(m->sh, m->out[i]->id);
    }
    cask_resync_done(m->sh, NULL, 0, false);
}

/* A compaction that does not commit leaves its outputs in service, holding
 * copies: the manifest lists them from its next write on. */
static void
note_outputs(struct compaction *m)
{
    for (size_t i = 0; i < m->nout; i++) {
        (void)cask_manifest_note(m->sh->manifest, &m->out[i]->id, 1);
    }
}

static int
run(struct cask_shard *sh, bool force, bool evict, bool resync, uint64_t need,
    uint64_t disk_bytes, uint64_t *evicted)
{
    struct cask *c = sh->store;
    struct compaction m = {.sh = sh,
                           .what = resync ? "rewrite" : "compaction",
                           .evict = evict,
                           .resync = resync,
                           .need = need};
    uint64_t damaged = 0, untombed = 0;
    uint64_t *cov = NULL;
    uint32_t *ids = NULL;
    int rc;
    uint64_t in_bytes = 0, out_bytes = 0;

    pthread_mutex_lock(&sh->maint_mu);
    pthread_mutex_lock(&sh->mu);
    if (resync ? sh->latched || sh->nresync == 0 : sh->failed || sh->nresync) {
        /* A failed shard writes nothing more, compaction output included,
         * but the rewrite that clears it. */
        pthread_mutex_unlock(&sh->mu);
        rc = resync && !sh->latched ? 0 : CASK_EFAILED;
        goto done;
    }
    m.now = cask_now(c);
    (void)cask_flush_point(c, m.now);
    /* Only a persisted flush point may drop records for good. */
    m.flush_cas = atomic_load(&c->flush_cas);
    damaged = sh->bytes_damaged; /* a rewrite's losses: what it adds */
    untombed = sh->dropped_untombed;
    rc = resync  ? choose_resync(&m)
         : evict ? choose_evict(&m, need, disk_bytes)
                 : choose(&m, force);
    if (resync && rc == 0 && m.nin == 0) {
        /* every queued segment was compacted away meanwhile */
        sh->nresync = 0;
        cask_resync_done(sh, NULL, 0, true);
    } else if (resync && rc != 0) {
        cask_resync_done(sh, NULL, 0, false);
    }
    pthread_mutex_unlock(&sh->mu);
    if (rc == 0 && m.nin == 0 && evict) {
        rc = CASK_ENOTFOUND;
    }
    if (rc != 0 || m.nin == 0) {
        goto done;
    }
    if (evict) {
        plan_evict(&m);
        cask_evnote_init(&m.notes, &c->opt);
    }
    if (resync && c->journal != NULL) {
        restore_journaled(&m);
    }
    for (size_t i = 0; i < m.nin && rc == 0; i++) {
        rc = compact_segment(&m, m.in[i]);
    }
    if (resync && rc == 0) {
        pthread_mutex_lock(&sh->mu);
        damaged = sh->bytes_damaged - damaged;
        pthread_mutex_unlock(&sh->mu);
        rc = resync_losses(&m, damaged, resync ? untombed : 0);
    }
    /* Make the outputs complete and durable before any input goes. */
    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < m.nout && rc == 0; i++) {
        rc = cask_seg_flush(m.out[i]);
    }
    pthread_mutex_unlock(&sh->mu);
    for (size_t i = 0; i < m.nout && rc == 0; i++) {
        rc = cask_io_fdatasync(m.out[i]->fd);
        if (rc != 0) {
            /* The keydir points into the outputs now: this one and those
             * not synced yet are rewritten like a failed active segment
             * (a rewrite's own inputs stay queued). */
            pthread_mutex_lock(&sh->mu);
            cask_resync_note(sh, m.out[i]->id, rc,
                             resync ? "rewrite: fdatasync"
                                    : "compaction: fdatasync");
            for (size_t j = i + 1; j < m.nout; j++) {
                cask_resync_add(sh, m.out[j]->id);
            }
            pthread_mutex_unlock(&sh->mu);
        }
    }
    cov = calloc(m.nout ? m.nout : 1, 2 * sizeof(uint64_t));
    if (cov == NULL && rc == 0) {
        rc = ENOMEM;
    }
    for (size_t i = 0; i < m.nout && rc == 0; i++) {
        rc = cask_hint_write(sh->dir, m.out[i], CASK_REC_VMAX, &cov[2 * i],
                             &cov[2 * i + 1]);
    }
    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < m.nout; i++) {
        if (rc == 0) {
            m.out[i]->hint_len = cov[2 * i];
            m.out[i]->hint_bytes = cov[2 * i + 1];
        }
        m.out[i]->is_output = false;
        if (m.out[i]->buf_len > 0) {
            (void)cask_seg_flush(m.out[i]);
        }
        cask_seg_make_closed(m.out[i]);
        out_bytes += m.out[i]->size + m.out[i]->hint_bytes;
    }
    if (rc == 0) {
        /* Records a write batch staged go to disk first: a failed write
         * puts keydir entries back, and none may point into an input
         * once it is retired. */
        rc = cask_log_write_out(sh);
    }
    if (resync && rc == 0 && points_into_inputs(sh)) {
        rc = EAGAIN; /* a failed write put an entry back there */
    }
    for (size_t i = 0; i < m.nin && rc == 0 && !resync; i++) {
        /* Something still points there (but what an eviction drops once
         * committed): keep every input, or a dropped tombstone could let
         * an older record come back. (A rewrite removed what still
         * pointed into its inputs: resync_losses.) */
        if (m.in[i]->live_bytes != (evict ? evicted_live(&m, m.in[i]) : 0)) {
            rc = EAGAIN;
        }
    }
    if (rc != 0) {
        cask_logf(c, rc == EAGAIN ? CASK_LOG_WARN : CASK_LOG_ERROR,
                  "shard %u: compaction stopped (%s); old segments kept",
                  sh->idx, cask_strerror(rc));
        for (size_t i = 0; i < m.nin; i++) {
            m.in[i]->compacting = false;
        }
        resync_failed(&m);
        pthread_mutex_unlock(&sh->mu);
        note_outputs(&m);
        goto done;
    }
    pthread_mutex_unlock(&sh->mu);
    /* Commit point: the inputs' ids go into the retired file. Before it a
     * crash leaves inputs and outputs (duplicates resolve by cas and seq);
     * after it the next open removes every input still there, so dropped
     * tombstones and the older puts they hid go together. Nothing can
     * point into the inputs any more (only compaction moves entries, and
     * maint_mu keeps other compactions out), so mu need not be held. */
    ids = malloc((m.nin + m.nout + 1) * sizeof(*ids));
    rc = ids == NULL ? ENOMEM : 0;
    for (size_t i = 0; i < m.nin && rc == 0; i++) {
        ids[i] = m.in[i]->id;
    }
    for (size_t i = 0; i < m.nout && rc == 0; i++) {
        ids[m.nin + i] = m.out[i]->id;
    }
    /* The manifest first lists the outputs instead of the inputs: from
     * then on no file lists an input (a crash before the retired file
     * leaves them unlisted but read, which is safe). */
    if (rc == 0) {
        rc = cask_manifest_replace(sh->manifest, ids, m.nin, ids + m.nin,
                                   m.nout);
    }
    if (rc == 0) {
        int dir_rc;
        rc = cask_retire_write(sh->dir, ids, m.nin, &dir_rc);
        if (rc != 0) {
            /* Still in service: listed again by the next write. */
            (void)cask_manifest_note(sh->manifest, ids, m.nin);
        } else if (dir_rc != 0) {
            /* In place: a restart removes the inputs, so the run is
             * committed here too. */
            cask_logf(c, CASK_LOG_ERROR,
                      "shard %u: compaction commit: fsync %s: %s; committed, "
                      "but after a power loss the old segments may be read "
                      "again (their records are older than the outputs')",
                      sh->idx, sh->dir, strerror(dir_rc));
        }
    } else {
        note_outputs(&m);
    }
    pthread_mutex_lock(&sh->mu);
    if (rc != 0) {
        cask_logf(c, CASK_LOG_ERROR,
                  "shard %u: compaction commit: %s; old segments kept", sh->idx,
                  strerror(rc));
        for (size_t i = 0; i < m.nin; i++) {
            m.in[i]->compacting = false;
        }
        resync_failed(&m);
        pthread_mutex_unlock(&sh->mu);
        goto done;
    }
    /* The group-commit syncer may hold the fd of a just-closed segment. */
    while (sh->syncing) {
        pthread_cond_wait(&sh->sync_cv, &sh->mu);
    }
    if (evict) {
        uint64_t before = sh->evictions;
        finish_evict(&m);
        *evicted = sh->evictions - before;
    }
    for (size_t i = 0; i < m.nin; i++) {
        sh->segs[m.in[i]->slot] = NULL;
    }
    pthread_mutex_unlock(&sh->mu);
    for (size_t i = 0; i < m.nin; i++) {
        struct cask_segment *s = m.in[i];
        in_bytes += s->size + s->hint_bytes;
        /* Hint first: never a hint without its segment. A failed unlink
         * is finished by the next open (the ids are committed). */
        cask_hint_remove(sh->dir, s->id);
        int urc = cask_io_unlink(s->path);
        if (urc != 0) {
            cask_logf(c, CASK_LOG_WARN,
                      "shard %u: unlink %s: %s; removed at the next start",
                      sh->idx, s->path, strerror(urc));
        }
    }
    /* A get may still be reading an input without the mutex (no new one
     * can start: nothing points there); the last such reader frees it. */
    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < m.nin; i++) {
        m.in[i]->retired = true;
        if (m.in[i]->readers != 0) {
            m.in[i] = NULL;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    for (size_t i = 0; i < m.nin; i++) {
        cask_seg_close(&m.in[i]);
    }
    (void)cask_fsync_dir(sh->dir);
    pthread_mutex_lock(&sh->mu);
    if (resync) {
        cask_logf(c, CASK_LOG_WARN,
                  "shard %u: %s: %zu segments retired, %" PRIu64
                  " records lost, %" PRIu64
                  " tombstones and touch records restored",
                  sh->idx, m.what, m.nin, m.lost, m.restored);
        sh->dropped_untombed -= untombed; /* hidden on disk now */
        cask_resync_done(sh, ids, m.nin, true);
    } else if (!evict) {
        sh->compactions++;
    }
    if (in_bytes > out_bytes) {
        sh->bytes_reclaimed += in_bytes - out_bytes;
    }
    pthread_mutex_unlock(&sh->mu);
done:
    free(ids);
    free(cov);
    free(m.in);
    free(m.out);
    cask_seg_reader_deinit(&m.rd);
    free(m.stamp);
    free(m.ev);
    pthread_mutex_unlock(&sh->maint_mu);
    cask_evnote_tell(&m.notes); /* no lock held: the hook may be slow */
    return rc == EAGAIN ? 0 : rc;
}

int
cask_shard_compact(struct cask_shard *sh, bool force)
{
    return run(sh, force, false, false, 0, 0, NULL);
}

int
cask_shard_resync(struct cask_shard *sh)
{
    return run(sh, false, false, true, 0, 0, NULL);
}

int
cask_shard_evict_oldest(struct cask_shard *sh, uint64_t need,
                        uint64_t disk_bytes, uint64_t *evicted)
{
    *evicted = 0;
    return run(sh, false, true, false, need, disk_bytes, evicted);
}
