/* cask_walk.c - batched walks over the shards' keydirs (see cask_walk.h).
 * Holds a shard's mutex only to collect one batch (the keys are then read
 * from their records, segments pinned, and handed out without it): a batch
 * is a range of the key
 * hash, which the keydir keeps in slot order (cask_kd_foreach_range), so a
 * walk needs no state in the shard and survives table growth between
 * batches. A walk without keys (cask_walk_meta) reads no record and pins
 * no segment; a filtered one (cask_walk_if) reads only the keys of the
 * entries its filter keeps. Owns nothing. */
#include "storage/cask_walk.h"

#include "storage/cask_atime.h"
#include "storage/cask_internal.h"
#include "storage/cask_keydir.h"
#include "storage/cask_record.h"
#include "storage/cask_segment.h"
#include "storage/cask_shard.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

/* One key of a batch: the keydir keeps no keys, so each is read from its
 * record, after the batch is collected (segment pinned), without the
 * shard mutex unless the record sits in a compaction output's buffer. */
struct walk_item {
    struct cask_segment *seg;
    uint32_t off;
    bool have_key; /* read under mu already */
    struct cask_walk_entry we;
    char key[CASK_KEY_MAX];
};

struct walk_ctx {
    bool keys; /* read each key from its record */
    bool (*keep)(void *arg, const struct cask_walk_entry *e);
    void *arg;
    int64_t now;
    uint64_t flush_cas;
    struct cask_shard *sh;
    struct walk_item *items;
    size_t n, cap;
};

static void
visit(void *arg, struct cask_kd_entry *e)
{
    struct walk_ctx *w = arg;

    if (cask_kd_cas(e) <= w->flush_cas ||
        (e->exp != 0 && (int64_t)e->exp <= w->now) || e->off == 0) {
        return;
    }
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        struct walk_item *ni = realloc(w->items, nc * sizeof(*ni));
        if (ni == NULL) {
            return; /* the walk sees fewer keys; it promises none */
        }
        w->items = ni;
        w->cap = nc;
    }
    struct walk_item *it = &w->items[w->n++];
    it->seg = w->sh->segs[e->seg];
    it->off = e->off;
    it->we.klen = e->klen;
    it->we.flags = e->flags;
    it->we.exp_abs_s = e->exp;
    it->we.cas = cask_kd_cas(e);
    it->we.vlen = e->vlen;
    it->we.fetched = e->fetched;
    it->we.atime_s = cask_at_time(e->at, w->now);
    it->we.key = NULL;
    if (w->keep != NULL && !w->keep(w->arg, &it->we)) {
        w->n--;
        return;
    }
    if (!w->keys) {
        return;
    }
    it->have_key = (uint64_t)e->off + CASK_REC_HDR + e->klen > it->seg->flushed;
    if (it->have_key &&
        cask_seg_pread(it->seg, e->off + CASK_REC_HDR, e->klen, it->key) != 0) {
        w->n--;
        return;
    }
    it->seg->readers++;
}

static bool
walk(struct cask *c, struct cask_walk_pos *pos, unsigned batch, bool keys,
     bool (*keep)(void *arg, const struct cask_walk_entry *e),
     void (*fn)(void *arg, const struct cask_walk_entry *e), void *arg)
{
    struct walk_ctx w;
    struct cask_shard *sh;
    uint64_t width, count, end = cask_kd_range_end();

    if (pos->shard >= c->nshards) {
        return false;
    }
    w.keys = keys;
    w.keep = keep;
    w.arg = arg;
    w.now = cask_now(c);
    w.flush_cas = cask_flush_point(c, w.now);
    w.sh = sh = c->shards[pos->shard];
    w.items = NULL;
    w.n = w.cap = 0;
    pthread_mutex_lock(&sh->mu);
    /* A range expected to hold about `batch` keys. */
    count = cask_kd_count(sh->kd);
    width = count == 0 ? end : end / count * (batch ? batch : 1);
    if (width == 0) {
        width = 1;
    }
    if (width > end - pos->hash) {
        width = end - pos->hash;
    }
    cask_kd_foreach_range(sh->kd, pos->hash, pos->hash + width, visit, &w);
    pthread_mutex_unlock(&sh->mu);
    for (size_t i = 0; i < w.n; i++) {
        struct walk_item *it = &w.items[i];
        if (!keys) {
            fn(arg, &it->we); /* key NULL since visit */
            continue;
        }
        it->we.key = it->key; /* the array may have moved while it grew */
        if (it->have_key ||
            cask_seg_pread(it->seg, (uint64_t)it->off + CASK_REC_HDR,
                           it->we.klen, it->key) == 0) {
            fn(arg, &it->we);
        }
    }
    if (keys && w.n > 0) {
        pthread_mutex_lock(&sh->mu);
        for (size_t i = 0; i < w.n; i++) {
            struct cask_segment *seg = w.items[i].seg;
            if (--seg->readers == 0 && seg->retired) {
                cask_seg_close(&seg);
            }
        }
        pthread_mutex_unlock(&sh->mu);
    }
    free(w.items);
    pos->hash += width;
    if (pos->hash >= end) {
        pos->shard++;
        pos->hash = 0;
    }
    return pos->shard < c->nshards;
}

bool
cask_walk(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
          void (*fn)(void *arg, const struct cask_walk_entry *e), void *arg)
{
    return walk(c, pos, batch, true, NULL, fn, arg);
}

bool
cask_walk_if(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
             bool (*keep)(void *arg, const struct cask_walk_entry *e),
             void (*fn)(void *arg, const struct cask_walk_entry *e), void *arg)
{
    return walk(c, pos, batch, true, keep, fn, arg);
}

bool
cask_walk_meta(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
               void (*fn)(void *arg, const struct cask_walk_entry *e),
               void *arg)
{
    return walk(c, pos, batch, false, NULL, fn, arg);
}
