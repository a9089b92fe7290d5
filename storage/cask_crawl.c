/* cask_crawl.c - the background crawler (see cask_crawl.h).
 *
 * A flushed key (cas at or below the persisted flush point) leaves the
 * keydir as it is: every older record of it is flushed too, so none can
 * come back. An expired key first gets a tombstone with its cas and a fresh
 * seq (cask_shard_forget): once its entry is gone, compaction takes its
 * put for superseded and drops it, and without the tombstone an older put
 * of the key in a segment not compacted could come back at a restart, as
 * could the put itself were the touch record that expired it dropped. Keys
 * are not kept in memory, so each dropped key's record header is read to
 * find its hash. The same pass ages every entry's access stamp
 * (cask_atime.h). Owns nothing beyond one pass; works on the shard through
 * cask_shard.h.
 */
#include "storage/cask_crawl.h"

#include "storage/cask_atime.h"
#include "storage/cask_internal.h"
#include "storage/cask_keydir.h"
#include "storage/cask_record.h"
#include "storage/cask_shard.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#define CRAWL_BATCH 64u  /* keys dropped per hold of the shard mutex */
#define CRAWL_STEPS 256u /* position ranges a pass walks */
/* A pass at most this often per shard: expired keys leave within about a
 * second (memcached's crawler is no faster), and evictions, which wake the
 * maintenance thread many times a second, do not each cost a walk over
 * every entry with the shard mutex taken 256 times. */
#define CRAWL_EVERY_MS 1000u
/* With no entry that can expire and no new flush point, a pass drops
 * nothing and only ages access stamps, which cask_atime.h lets wait for
 * hours: then a pass this often (store clock seconds, what the stamps
 * count), so that a store of keys without expiry is not walked (its
 * shard mutex taken 256 times) every second. */
#define CRAWL_AGE_S 60

struct batch {
    struct cask_shard *sh; /* its per-class crawler_items_checked */
    int64_t now;
    uint64_t flush_cas;
    bool saw_exp; /* an entry with an expiry, dropped or not */
    unsigned n;
    struct cask_kd_entry *e[CRAWL_BATCH];
};

static void
pick(void *arg, struct cask_kd_entry *e)
{
    struct batch *b = arg;
    cask_shard_cls(b->sh, e->klen, e->vlen, e->flags)->crawler_items_checked++;
    /* Keep the access stamp readable (cask_atime.h): this pass is what
     * visits every entry often enough. */
    uint16_t at = cask_at_age(e->at, b->now);
    if (at != e->at) {
        e->at = at;
    }
    if (e->exp != 0) {
        b->saw_exp = true;
    }
    if (b->n == CRAWL_BATCH || e->off == 0) {
        return;
    }
    if (cask_kd_cas(e) <= b->flush_cas ||
        (e->exp != 0 && (int64_t)e->exp <= b->now)) {
        b->e[b->n++] = e;
    }
}

static bool
is_entry(void *arg, const struct cask_kd_entry *e, const void *key, size_t klen)
{
    (void)key;
    (void)klen;
    return e == arg;
}

/* Drop one picked entry (mu held). Returns 0 (*dropped set, or not when
 * its record cannot be read back to its entry), EAGAIN when mu was
 * released (the batch's other entries are stale), or an error. */
static int
drop(struct cask_shard *sh, struct batch *b, struct cask_kd_entry *e,
     unsigned *dropped)
{
    char hb[CASK_REC_HDR + CASK_KEY_MAX];
    struct cask_rec r;
    struct cask_segment *s = sh->segs[e->seg];
    if (cask_seg_pread(s, e->off, CASK_REC_HDR + e->klen, hb) != 0 ||
        !cask_rec_decode(hb, UINT32_MAX, &r) || r.klen != e->klen) {
        return 0; /* a read of the key reports it */
    }
    const char *key = hb + CASK_REC_HDR;
    uint64_t h = cask_kd_hash(key, e->klen);
    if (cask_kd_find_if(sh->kd, h, e->klen, is_entry, e) != e) {
        return 0;
    }
    bool flushed = cask_kd_cas(e) <= b->flush_cas;
    bool unfetched = !e->fetched;
    struct cask_class_stats *cs =
            cask_shard_cls(sh, e->klen, e->vlen, e->flags);
    int rc = cask_shard_forget(sh, h, e, key, !flushed);
    if (rc == 0) {
        (*dropped)++;
        if (sh->store->opt.crawl_as_lru) {
            /* memcached's LRU maintainer: reclaimed, and flushed keys
             * dropped unread count as expired_unfetched too */
            sh->reclaimed++;
            cs->reclaimed++;
        } else {
            /* memcached's LRU crawler: crawler_reclaimed; a flushed key
             * is not an expired one */
            sh->crawler_reclaimed++;
            cs->crawler_reclaimed++;
            unfetched = unfetched && !flushed;
        }
        if (unfetched) {
            sh->expired_unfetched++;
            cs->expired_unfetched++;
        }
    }
    return rc;
}

/* One pass over the shard's keydir, range by range: drop the flushed and
 * expired keys, age the access stamps. */
static void
walk(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    uint64_t end = cask_kd_range_end(), step = end / CRAWL_STEPS;
    uint64_t lo = 0;
    bool saw_exp = false;
    while (lo < end) {
        struct batch b = {.sh = sh, .now = cask_now(c)};
        int rc = 0;
        unsigned dropped = 0;
        pthread_mutex_lock(&sh->mu);
        if (sh->failed) {
            sh->crawl_exp = true; /* not walked */
            pthread_mutex_unlock(&sh->mu);
            return;
        }
        (void)cask_flush_point(c, b.now);
        /* Only a persisted flush point may drop keys for good. */
        b.flush_cas = atomic_load(&c->flush_cas);
        sh->crawl_checked +=
                cask_kd_foreach_range(sh->kd, lo, lo + step, pick, &b);
        for (unsigned i = 0; i < b.n && rc == 0; i++) {
            rc = drop(sh, &b, b.e[i], &dropped);
        }
        saw_exp = saw_exp || b.saw_exp;
        if (rc != 0 && rc != EAGAIN) {
            sh->crawl_exp = true; /* a write failed: the next pass tries
                                   * again */
            pthread_mutex_unlock(&sh->mu);
            return;
        }
        pthread_mutex_unlock(&sh->mu);
        /* A full or interrupted batch may have left more in this range:
         * walk it again as long as that drops keys (dropped keys are not
         * picked twice; skipped ones are, so without progress move on). */
        if ((b.n < CRAWL_BATCH && rc == 0) || dropped == 0) {
            lo += step;
        }
    }
    if (saw_exp) {
        pthread_mutex_lock(&sh->mu);
        sh->crawl_exp = true;
        pthread_mutex_unlock(&sh->mu);
    }
}

void
cask_shard_crawl(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    uint64_t now_ms = cask_clock_ms();
    if (now_ms < sh->crawl_after_ms) {
        return;
    }
    sh->crawl_after_ms = now_ms + CRAWL_EVERY_MS;
    int64_t now_s = cask_now(c);
    pthread_mutex_lock(&sh->mu);
    bool idle = sh->crawl_full_s != 0 && !sh->crawl_exp &&
                now_s >= sh->crawl_full_s &&
                now_s - sh->crawl_full_s < CRAWL_AGE_S &&
                atomic_load(&c->flush_pending_at) == 0 &&
                atomic_load(&c->flush_cas) == sh->crawl_flush_cas;
    if (!idle) {
        /* from here on, writers set it again for what the walk may miss */
        sh->crawl_exp = false;
        sh->crawl_flush_cas = atomic_load(&c->flush_cas);
        sh->crawl_full_s = now_s;
        sh->crawls++;
    }
    pthread_mutex_unlock(&sh->mu);
    if (idle) {
        return;
    }
    atomic_fetch_add(&c->crawling, 1);
    walk(sh);
    atomic_fetch_sub(&c->crawling, 1);
}
