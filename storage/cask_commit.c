/* cask_commit.c - group commit for CASK_SYNC_ALWAYS: the committer thread,
 * commit epochs, tickets and the thread's deferred ticket (cask_defer).
 *
 * Owns struct cask_commit (hung on the store), its thread and its sync
 * helpers. A pass closes the open epoch, then syncs every shard that has
 * appends not yet synced, the shards in parallel (cask_shard_sync:
 * fdatasync with the shard mutex released, so the shard keeps taking
 * appends meanwhile), marks the epoch done, wakes blocked
 * writers and calls the store's commit hook. One pass covers the writes of
 * every shard and every client that came in while the previous pass ran.
 * A failed sync latches its shard (cask_shard.c); the tickets it covered
 * then read CASK_EFAILED. Calls down into cask_shard.c only.
 */
#include "storage/cask_commit.h"

#include "storage/cask_shard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

/* Sync helpers: a pass syncs the shards in parallel, each fdatasync on a
 * thread of its own (the committer takes part), so that one pass costs
 * about one device flush (the file system merges concurrent journal
 * commits) instead of one per dirty shard. */
#define SYNC_HELPERS_MAX 15

struct cask_commit {
    pthread_mutex_t mu;     /* covers want, stop, passes, the pass state */
    pthread_cond_t work_cv; /* the committer: a pass is wanted */
    pthread_cond_t done_cv; /* blocked writers: an epoch is done */
    _Atomic uint64_t epoch; /* the epoch new appends join (from 1) */
    _Atomic uint64_t done;  /* every epoch up to this one is durable */
    uint64_t want;          /* highest epoch a writer joined */
    uint64_t passes;        /* passes run */
    bool stop;
    pthread_t thread;
    /* The pass in progress, shared with the helpers: shards are handed
     * out through next_shard; left counts those not yet synced. */
    pthread_cond_t pass_cv; /* helpers: a pass began, or stop */
    pthread_cond_t left_cv; /* the committer: left reached 0 */
    uint64_t pass_gen;      /* bumped at each pass's start */
    _Atomic unsigned next_shard;
    unsigned left;
    unsigned nhelpers;
    pthread_t helpers[SYNC_HELPERS_MAX];
    pthread_mutex_t hook_mu; /* covers hook, hook_arg; held while it runs */
    void (*hook)(void *arg);
    void *hook_arg;
};

/* The ticket modifications of this thread are deferred into, or NULL. */
static _Thread_local struct cask_ticket *deferred;

void
cask_defer(struct cask_ticket *t)
{
    deferred = t;
}

void
cask_ticket_add(struct cask_ticket *t, uint64_t epoch, int shard, uint64_t seq)
{
    if (t->epoch == 0) {
        t->shard = shard;
    } else if (t->shard != shard) {
        t->shard = -1;
    }
    if (epoch > t->epoch) {
        t->epoch = epoch;
    }
    if (seq > t->seq) {
        t->seq = seq;
    }
}

/* Sync shards of the current pass until none is left to take. */
static void
sync_shards(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    unsigned i, done = 0;

    while ((i = atomic_fetch_add(&cm->next_shard, 1)) < c->nshards) {
        /* A failure latches the shard; tickets read it from there. */
        (void)cask_shard_sync(c->shards[i]);
        done++;
    }
    if (done > 0) {
        pthread_mutex_lock(&cm->mu);
        cm->left -= done;
        if (cm->left == 0) {
            pthread_cond_signal(&cm->left_cv);
        }
        pthread_mutex_unlock(&cm->mu);
    }
}

static void *
helper_main(void *arg)
{
    struct cask *c = arg;
    struct cask_commit *cm = c->commit;
    uint64_t seen = 0;

    pthread_mutex_lock(&cm->mu);
    for (;;) {
        while (cm->pass_gen == seen && !cm->stop) {
            pthread_cond_wait(&cm->pass_cv, &cm->mu);
        }
        if (cm->pass_gen == seen) {
            break; /* stopping, and no pass to help with */
        }
        seen = cm->pass_gen;
        pthread_mutex_unlock(&cm->mu);
        sync_shards(c);
        pthread_mutex_lock(&cm->mu);
    }
    pthread_mutex_unlock(&cm->mu);
    return NULL;
}

static void *
commit_main(void *arg)
{
    struct cask *c = arg;
    struct cask_commit *cm = c->commit;

    pthread_mutex_lock(&cm->mu);
    for (;;) {
        uint64_t e = atomic_load(&cm->epoch);
        if (cm->want < e) {
            if (cm->stop) {
                break;
            }
            pthread_cond_wait(&cm->work_cv, &cm->mu);
            continue;
        }
        /* Close epoch e before touching any shard: a writer that joins e
         * from here on has appended before we lock its shard below. */
        atomic_store(&cm->epoch, e + 1);
        atomic_store(&cm->next_shard, 0);
        cm->left = c->nshards;
        cm->pass_gen++;
        pthread_cond_broadcast(&cm->pass_cv);
        pthread_mutex_unlock(&cm->mu);
        sync_shards(c);
        pthread_mutex_lock(&cm->mu);
        while (cm->left > 0) {
            pthread_cond_wait(&cm->left_cv, &cm->mu);
        }
        atomic_store(&cm->done, e);
        cm->passes++;
        pthread_cond_broadcast(&cm->done_cv);
        pthread_mutex_unlock(&cm->mu);
        pthread_mutex_lock(&cm->hook_mu);
        if (cm->hook != NULL) {
            cm->hook(cm->hook_arg);
        }
        pthread_mutex_unlock(&cm->hook_mu);
        pthread_mutex_lock(&cm->mu);
    }
    pthread_mutex_unlock(&cm->mu);
    return NULL;
}

static void
commit_free(struct cask_commit *cm)
{
    pthread_mutex_destroy(&cm->mu);
    pthread_mutex_destroy(&cm->hook_mu);
    pthread_cond_destroy(&cm->work_cv);
    pthread_cond_destroy(&cm->done_cv);
    pthread_cond_destroy(&cm->pass_cv);
    pthread_cond_destroy(&cm->left_cv);
    free(cm);
}

int
cask_commit_start(struct cask *c)
{
    struct cask_commit *cm = calloc(1, sizeof(*cm));
    if (cm == NULL) {
        return ENOMEM;
    }
    pthread_mutex_init(&cm->mu, NULL);
    pthread_mutex_init(&cm->hook_mu, NULL);
    pthread_cond_init(&cm->work_cv, NULL);
    pthread_cond_init(&cm->done_cv, NULL);
    pthread_cond_init(&cm->pass_cv, NULL);
    pthread_cond_init(&cm->left_cv, NULL);
    atomic_store(&cm->epoch, 1);
    c->commit = cm;
    int rc = pthread_create(&cm->thread, NULL, commit_main, c);
    if (rc != 0) {
        c->commit = NULL;
        commit_free(cm);
        return rc;
    }
    unsigned want = c->nshards - 1;
    if (want > SYNC_HELPERS_MAX) {
        want = SYNC_HELPERS_MAX;
    }
    /* Fewer helpers (none, even) only make passes slower. */
    while (cm->nhelpers < want && pthread_create(&cm->helpers[cm->nhelpers],
                                                 NULL, helper_main, c) == 0) {
        cm->nhelpers++;
    }
    return 0;
}

void
cask_commit_stop(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    if (cm == NULL) {
        return;
    }
    pthread_mutex_lock(&cm->mu);
    cm->stop = true;
    pthread_cond_signal(&cm->work_cv);
    pthread_cond_broadcast(&cm->pass_cv);
    pthread_mutex_unlock(&cm->mu);
    pthread_join(cm->thread, NULL);
    for (unsigned i = 0; i < cm->nhelpers; i++) {
        pthread_join(cm->helpers[i], NULL);
    }
    c->commit = NULL;
    commit_free(cm);
}

uint64_t
cask_commit_join(struct cask *c)
{
    struct cask_commit *cm = c->commit;
    pthread_mutex_lock(&cm->mu);
    uint64_t e = atomic_load(&cm->epoch);
    if (cm->want < e) {
        cm->want = e;
        pthread_cond_signal(&cm->work_cv);
    }
    pthread_mutex_unlock(&cm->mu);
    return e;
}

int
cask_commit_finish(struct cask *c, const struct cask_ticket *t)
{
    if (t->epoch == 0) {
        return CASK_OK;
    }
    if (deferred != NULL) {
        cask_ticket_add(deferred, t->epoch, t->shard, t->seq);
        return CASK_OK;
    }
    struct cask_commit *cm = c->commit;
    pthread_mutex_lock(&cm->mu);
    while (atomic_load(&cm->done) < t->epoch) {
        pthread_cond_wait(&cm->done_cv, &cm->mu);
    }
    pthread_mutex_unlock(&cm->mu);
    int rc;
    (void)cask_ticket_done(c, t, &rc);
    return rc;
}

bool
cask_ticket_done(struct cask *c, const struct cask_ticket *t, int *rc)
{
    *rc = CASK_OK;
    if (t->epoch == 0 || c->commit == NULL) {
        return true;
    }
    if (atomic_load(&c->commit->done) < t->epoch) {
        return false;
    }
    if (t->shard >= 0) {
        if (!cask_shard_covered(c->shards[t->shard], t->seq)) {
            *rc = CASK_EFAILED;
        }
        return true;
    }
    /* Several shards: their append numbers are not kept, so any latched
     * shard fails the ticket (an error for a write that may be durable,
     * never the reverse). */
    for (unsigned i = 0; i < c->nshards; i++) {
        if (cask_shard_failed(c->shards[i])) {
            *rc = CASK_EFAILED;
            break;
        }
    }
    return true;
}

void
cask_commit_hook(struct cask *c, void (*fn)(void *arg), void *arg)
{
    struct cask_commit *cm = c->commit;
    if (cm == NULL) {
        return;
    }
    pthread_mutex_lock(&cm->hook_mu);
    cm->hook = fn;
    cm->hook_arg = arg;
    pthread_mutex_unlock(&cm->hook_mu);
}

uint64_t
cask_commit_passes(const struct cask *c)
{
    struct cask_commit *cm = c->commit;
    if (cm == NULL) {
        return 0;
    }
    pthread_mutex_lock(&cm->mu);
    uint64_t n = cm->passes;
    pthread_mutex_unlock(&cm->mu);
    return n;
}
