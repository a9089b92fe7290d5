/* cask_walk.c - batched walks over the shards' keydirs (see cask_walk.h).
 * Holds a shard's mutex only for one batch: a batch is a range of the key
 * hash, which the keydir keeps in slot order (cask_kd_foreach_range), so a
 * walk needs no state in the shard and survives table growth between
 * batches. Owns nothing. */
#include "storage/cask_walk.h"

#include "storage/cask_internal.h"
#include "storage/cask_keydir.h"
#include "storage/cask_shard.h"

#include <pthread.h>

struct walk_ctx {
    int64_t now;
    uint64_t flush_cas;
    void (*fn)(void *arg, const struct cask_walk_entry *e);
    void *arg;
};

static void
visit(void *arg, struct cask_kd_entry *e)
{
    struct walk_ctx *w = arg;
    struct cask_walk_entry we;

    if (cask_kd_cas(e) <= w->flush_cas ||
        (e->exp != 0 && (int64_t)e->exp <= w->now)) {
        return;
    }
    we.key = e->key;
    we.klen = e->klen;
    we.flags = e->flags;
    we.exp_abs_s = e->exp;
    we.cas = cask_kd_cas(e);
    we.vlen = e->vlen;
    w->fn(w->arg, &we);
}

bool
cask_walk(struct cask *c, struct cask_walk_pos *pos, unsigned batch,
          void (*fn)(void *arg, const struct cask_walk_entry *e), void *arg)
{
    struct walk_ctx w;
    struct cask_shard *sh;
    uint64_t width, count, end = cask_kd_range_end();

    if (pos->shard >= c->nshards) {
        return false;
    }
    w.now = cask_now(c);
    w.flush_cas = cask_flush_point(c, w.now);
    w.fn = fn;
    w.arg = arg;
    sh = c->shards[pos->shard];
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
    pos->hash += width;
    if (pos->hash >= end) {
        pos->shard++;
        pos->hash = 0;
    }
    return pos->shard < c->nshards;
}
