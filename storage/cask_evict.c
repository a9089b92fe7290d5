/* cask_evict.c - the memory budget's eviction policy (see cask_evict.h).
 *
 * The keydirs never give memory back, so the budget is kept by making room
 * inside them. Each shard keeps to its share (mem_limit / shards): once its
 * keydir needs an arena chunk past that, it records how many keys it holds
 * (its cap) and from then on evicts whole oldest segments whenever it holds
 * more than that cap, down to 31/32 of it; new keys take the entries
 * evicted keys left. Owns no state of its own beyond the shard's eviction
 * fields; works on the shard through cask_shard.h.
 */
#include "storage/cask_evict.h"

#include "storage/cask_internal.h"
#include "storage/cask_keydir.h"
#include "storage/cask_log.h"
#include "storage/cask_shard.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define EVICT_ROUNDS  16u           /* segments one pass evicts per shard */
#define SLACK_SHARD   (128u * 1024) /* a shard may pass its share by this */
#define UNIT_MIN      (64u * 1024)  /* smallest segment rolled for eviction */
#define EVICT_WAIT_MS 1000u         /* a writer waits this long for one */
#define KD_CHUNK      (64u * 1024)  /* the keydir's arena grows by this */
#define ROLL_BEHIND   4u /* a writer rolls a segment this many units big */
/* Eviction takes about 1/EVICT_FRAC of a shard's share a time, down to
 * 1 - 1/EVICT_FRAC of its cap: fine steps keep the cache nearly full. */
#define EVICT_FRAC 32u
#define DISK_FRAC  16u /* segments are 1/DISK_FRAC of a disk share */

static bool
evicting(const struct cask *c)
{
    return (c->opt.mem_evict && c->opt.mem_limit != 0) ||
           c->opt.disk_limit != 0;
}

/* Bytes of disk the shard's files take (mu held): segments with what is
 * reserved past their end, and hints. */
static uint64_t
disk_of(const struct cask_shard *sh)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < sh->nslots; i++) {
        const struct cask_segment *s = sh->segs[i];
        if (s != NULL) {
            n += (s->prealloc_end > s->size ? s->prealloc_end : s->size) +
                 s->hint_bytes;
        }
    }
    return n;
}

/* Bytes the shard's files take past what its share of disk_limit lets
 * them (mu held). */
static uint64_t
over_disk(const struct cask_shard *sh)
{
    const struct cask *c = sh->store;
    uint64_t share = c->disk_shards / c->nshards;
    uint64_t target = share - share / EVICT_FRAC, n = disk_of(sh);
    return c->opt.disk_limit != 0 && n > target ? n - target : 0;
}

/* Wake the maintenance thread for this shard (mu held; lock order: mu,
 * then bg_mu, a leaf). Once until its next pass. */
static void
kick(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    if (sh->evict_req) {
        return;
    }
    sh->evict_req = true;
    pthread_mutex_lock(&c->bg_mu);
    c->compact_kick = true;
    pthread_cond_broadcast(&c->bg_cv);
    pthread_mutex_unlock(&c->bg_mu);
}

/* The evictor is behind: wait (mu released) for it to finish an eviction
 * in this shard. */
static int
wait_evicted(struct cask_shard *sh)
{
    struct timespec ts;
    uint64_t runs = sh->evict_runs;
    cask_deadline_in(&ts, EVICT_WAIT_MS);
    while (sh->evict_runs == runs && !sh->failed) {
        /* finish_evict (cask_compact.c) broadcasts sync_cv; its other
         * waiters re-check their own conditions. */
        if (cask_cond_wait_until(&sh->sync_cv, &sh->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    return sh->evict_runs != runs ? CASK_EVICT_RETRY : CASK_ENOMEM;
}

/* How far past its disk share a shard may get, 1/DISK_BEHIND of the share,
 * before its writers wait for the evictor (without that a writer faster
 * than the maintenance thread, as on a loaded machine, fills the disk). */
#define DISK_BEHIND 8u

/* This thread waited for the evictor, in vain, just before: its writer
 * goes on without waiting again (once). */
static _Thread_local bool disk_waited;

int
cask_evict_disk_admit(struct cask_shard *sh)
{
    const struct cask *c = sh->store;
    bool waited = disk_waited;
    disk_waited = false;
    if (c->opt.disk_limit == 0 ||
        over_disk(sh) <= c->disk_shards / c->nshards / DISK_BEHIND) {
        return 0;
    }
    if (waited) {
        return 0; /* its wait ran out a moment ago: no second one */
    }
    kick(sh);
    /* mu was released while waiting, whatever the outcome: an eviction
     * under way may have dropped the caller's keydir entry meanwhile
     * (its runs count only when it ends), so the caller starts over from
     * its lookup. After a wait that ran out, that retry goes on without
     * waiting again, as this call used to go on itself. */
    if (wait_evicted(sh) != CASK_EVICT_RETRY) {
        disk_waited = true;
    }
    return CASK_EVICT_RETRY;
}

/* A shard's share of the budget: keys spread evenly over the shards, so
 * each keeps its own keydir inside mem_limit / shards. */
static uint64_t
share_of(const struct cask *c)
{
    return c->opt.mem_limit / c->nshards;
}

/* The key count past which a shard evicts (mu held): a little below its
 * cap, which leaves the evictor the time the writers take to use the last
 * 1/(2 * EVICT_FRAC) of the cap before the keydir needs a new chunk (one
 * pass of the maintenance thread may first evict in every other shard). */
static uint64_t
start_of(const struct cask_shard *sh)
{
    return sh->evict_cap - sh->evict_cap / (2 * EVICT_FRAC);
}

/* A new key without mem_evict (-M: refuse, never evict). Until the budget
 * is first found full, it is admitted while the keydirs and append buffers
 * stay within mem_limit. From then on (as memcached's -M, which refuses
 * every item of a slab class once the class has no free chunk and no page
 * is left) a new key is admitted only where keys went since: while its
 * shard holds fewer keys than the most it ever held. Free room at the end
 * of other shards' keydir chunks is not handed out then, so one refusal is
 * followed by refusals, whatever shard the next key goes to, until keys
 * are deleted, expire or are flushed. */
static int
admit_full(struct cask_shard *sh, size_t cost)
{
    struct cask *c = sh->store;
    uint64_t n = cask_kd_count(sh->kd);
    if (n > sh->kd_peak) {
        sh->kd_peak = n; /* keys recovered at open come in without admit */
    }
    if (atomic_load(&c->mem_full) && n >= sh->kd_peak) {
        return CASK_ENOMEM;
    }
    if (cost != 0) {
        /* the append buffers count too (cask_log_buf_account) */
        uint64_t used = atomic_load(&c->kd_bytes) + atomic_load(&c->buf_bytes);
        if (used + cost > c->opt.mem_limit) {
            atomic_store(&c->mem_full, true);
            return CASK_ENOMEM;
        }
    }
    sh->kd_peak = n + 1 > sh->kd_peak ? n + 1 : sh->kd_peak;
    return 0;
}

int
cask_evict_admit(struct cask_shard *sh, size_t cost)
{
    struct cask *c = sh->store;
    uint64_t limit = c->opt.mem_limit;
    if (limit == 0) {
        return 0;
    }
    if (cost != 0) {
        cask_shard_vc_yield(sh, cost);
    }
    if (!c->opt.mem_evict) {
        return admit_full(sh, cost);
    }
    if (cost != 0 || sh->evict_unit == 0) {
        sh->evict_unit = cask_evict_unit(sh);
    }
    if (sh->evict_on && cask_kd_count(sh->kd) >= start_of(sh)) {
        /* Evict before the free entries run out, so that the keydir
         * stays inside its share while the evictor works. */
        kick(sh);
    } else if (sh->active != NULL &&
               sh->active->size - CASK_SEG_HDR >= sh->evict_unit) {
        kick(sh); /* time to roll it, so evictions stay small */
    }
    if (sh->active != NULL && !sh->rolling &&
        sh->active->size - CASK_SEG_HDR >= ROLL_BEHIND * sh->evict_unit) {
        /* The maintenance thread is far behind with the roll: an eviction
         * takes the oldest segment whole, and one this big would drop
         * many times what it needs. Roll here (mu released meanwhile;
         * under always this worker waits for the old segment's sync, so
         * not sooner; otherwise the sync thread syncs it). */
        int rc = cask_log_roll(sh);
        return rc != 0 ? rc : CASK_EVICT_RETRY;
    }
    if (cost == 0) {
        return 0;
    }
    uint64_t share = share_of(c);
    /* the keydir and the active segment's append buffer */
    uint64_t held = cask_kd_bytes(sh->kd) + sh->buf_counted;
    if (cost >= KD_CHUNK && held + cost + KD_CHUNK > share) {
        /* The last arena chunk that fits in the share: every entry the
         * keydir holds is in use (none is free), so the count now plus
         * what this chunk takes is what the shard holds within its share.
         * Fixed from then on: raising it with each chunk taken in the
         * slack would never let the shard be over it. (A stripe's table
         * alone can need to grow at any count: that says nothing about
         * the capacity.) */
        if (!sh->evict_on) {
            /* with the new chunk's entries when it fits (a share too
             * small for one chunk holds no key: each is over the cap) */
            uint64_t room = held + cost <= share ? KD_CHUNK : 0;
            sh->evict_cap =
                    cask_kd_count(sh->kd) + room / sizeof(struct cask_kd_entry);
            sh->evict_on = true;
        }
        kick(sh);
    }
    /* A new chunk past the share by more than SLACK_SHARD: the evictor is
     * behind (the shard holds every key its chunks can take, which is
     * more than its cap). A stripe's table may still grow: the tables are
     * a few bytes a key, and eviction bounds the keys. */
    if (cost < KD_CHUNK || held + cost <= share + SLACK_SHARD) {
        return 0;
    }
    return wait_evicted(sh);
}

uint64_t
cask_evict_unit(struct cask_shard *sh)
{
    struct cask *c = sh->store;
    if (!evicting(c)) {
        return 0;
    }
    /* Under a disk limit a segment is at most 1/16 of the shard's share
     * (what the segment being written can add past it). */
    uint64_t cap = c->opt.segment_size;
    if (c->opt.disk_limit != 0 &&
        c->disk_shards / c->nshards / DISK_FRAC < cap) {
        cap = c->disk_shards / c->nshards / DISK_FRAC;
    }
    if (!(c->opt.mem_evict && c->opt.mem_limit != 0)) {
        return cap < UNIT_MIN ? UNIT_MIN : cap;
    }
    uint64_t live = 0;
    for (uint32_t i = 0; i < sh->nslots; i++) {
        if (sh->segs[i] != NULL) {
            live += sh->segs[i]->live_bytes;
        }
    }
    size_t kd = cask_kd_bytes(sh->kd);
    /* Disk bytes per keydir byte, times 1/EVICT_FRAC of the shard's share:
     * the disk that fraction of the keys it can hold take. */
    double share = (double)share_of(c) / (double)EVICT_FRAC;
    double unit = kd != 0 ? share * (double)live / (double)kd : 0.0;
    if (unit < UNIT_MIN) {
        return UNIT_MIN;
    }
    if (unit > (double)cap) {
        return cap < UNIT_MIN ? UNIT_MIN : cap;
    }
    return (uint64_t)unit;
}

/* How many keys to evict (mu held): none until the shard holds more than
 * start_of, then half a segment of cask_evict_unit (1/EVICT_FRAC of the
 * cap). An eviction takes whole segments, so one run (one commit) takes
 * the oldest segment, about 1/EVICT_FRAC of the keys, and the shard holds
 * 1 - 1/EVICT_FRAC of its cap on average; asking for a whole
 * segment would take two whenever the oldest holds a few keys less. */
static uint64_t
over(const struct cask_shard *sh)
{
    uint64_t start = start_of(sh);
    uint64_t target = start - sh->evict_cap / (2 * EVICT_FRAC);
    uint64_t n = cask_kd_count(sh->kd);
    return sh->evict_on && n > start ? n - target : 0;
}

void
cask_shard_evict(struct cask_shard *sh)
{
    if (!evicting(sh->store)) {
        return;
    }
    pthread_mutex_lock(&sh->mu);
    /* evict_req stays set until the pass ends: the writers' kicks while it
     * runs would only make the maintenance thread start another pass over
     * every shard; this one checks again after each eviction. */
    uint64_t unit = cask_evict_unit(sh);
    sh->evict_unit = unit;
    struct cask_segment *a = sh->active;
    if (a != NULL && !sh->failed && !sh->rolling &&
        a->size - CASK_SEG_HDR >= unit) {
        (void)cask_log_roll(sh); /* a failure is the writers' to report */
    }
    uint64_t more = over(sh);
    uint64_t disk = over_disk(sh);
    pthread_mutex_unlock(&sh->mu);
    for (unsigned r = 0; more != 0 || disk != 0; r++) {
        uint64_t n = 0;
        /* Over the disk share alone, read keys keep their second chance
         * (need 0): what the eviction drops is what nobody read. */
        if (cask_shard_evict_oldest(sh, more, disk, &n) != 0) {
            break;
        }
        pthread_mutex_lock(&sh->mu);
        more = over(sh);
        disk = over_disk(sh);
        if ((more != 0 || disk != 0) && r + 1 == EVICT_ROUNDS) {
            /* Still behind: come back right after the other shards. */
            sh->evict_req = false;
            kick(sh);
            more = 0;
            disk = 0;
        }
        pthread_mutex_unlock(&sh->mu);
    }
    pthread_mutex_lock(&sh->mu);
    sh->evict_req = false;
    pthread_mutex_unlock(&sh->mu);
}

void
cask_evict_rolled(struct cask_shard *sh)
{
    if (sh->store->opt.disk_limit != 0 && over_disk(sh) != 0) {
        kick(sh);
    }
}

void
cask_evict_stats(const struct cask_shard *sh, struct cask_stats *st)
{
    st->evictions = sh->evictions;
    st->evicted_unfetched = sh->evicted_unfetched;
    st->evicted_active = sh->evicted_active;
    st->expired_unfetched = sh->expired_unfetched;
    st->reclaimed = sh->reclaimed;
    st->crawler_reclaimed = sh->crawler_reclaimed;
    st->evict_runs = sh->evict_runs;
}

void
cask_class_stats(struct cask *c, struct cask_class_stats *out)
{
    memset(out, 0, CASK_CLASSES * sizeof(*out));
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cask_shard *sh = c->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (unsigned k = 0; k < CASK_CLASSES; k++) {
            const struct cask_class_stats *s = &sh->cls[k];
            struct cask_class_stats *d = &out[k];
            d->evicted += s->evicted;
            d->evicted_nonzero += s->evicted_nonzero;
            d->evicted_unfetched += s->evicted_unfetched;
            d->evicted_active += s->evicted_active;
            d->reclaimed += s->reclaimed;
            d->expired_unfetched += s->expired_unfetched;
            d->crawler_reclaimed += s->crawler_reclaimed;
            d->crawler_items_checked += s->crawler_items_checked;
            if (s->evicted_at_s > d->evicted_at_s) {
                d->evicted_at_s = s->evicted_at_s;
                d->evicted_time = s->evicted_time;
            }
        }
        pthread_mutex_unlock(&sh->mu);
    }
}
