/* cask_aio.c - a pool of I/O threads that run value reads for threads that
 * must not block (cask_aio.h). A FIFO under one mutex: a read costs a
 * lock, a signal and the thread's wake-up, which is small beside the disk
 * read it stands for (only reads that missed the page cache come here).
 * Owns its threads and queue; depends on the store's public API only.
 */
#include "storage/cask_aio.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct cask_aio {
    struct cask *store;
    pthread_mutex_t mu; /* covers head, tail, stop */
    pthread_cond_t cv;
    struct cask_aio_req *head, *tail;
    bool stop;
    unsigned nthreads;
    pthread_t *tids;
    atomic_uint_fast64_t inflight;
    atomic_uint_fast64_t done;
};

static void *
io_main(void *arg)
{
    struct cask_aio *a = arg;

    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (a->head == NULL && !a->stop) {
            pthread_cond_wait(&a->cv, &a->mu);
        }
        struct cask_aio_req *r = a->head;
        if (r == NULL) { /* stopping, and nothing left to read */
            pthread_mutex_unlock(&a->mu);
            return NULL;
        }
        a->head = r->next;
        if (a->head == NULL) {
            a->tail = NULL;
        }
        pthread_mutex_unlock(&a->mu);

        r->val = NULL;
        r->rc = cask_get_fetch(a->store, r->key, r->klen, &r->it,
                               r->head ? NULL : &r->val, r->fetch);
        atomic_fetch_sub(&a->inflight, 1);
        atomic_fetch_add(&a->done, 1);
        r->done(r, r->arg);
    }
}

int
cask_aio_create(struct cask_aio **out, struct cask *c, unsigned nthreads)
{
    struct cask_aio *a = calloc(1, sizeof(*a));
    int rc = 0;

    if (a == NULL) {
        return ENOMEM;
    }
    if (nthreads == 0) {
        nthreads = 1;
    }
    a->store = c;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->tids = calloc(nthreads, sizeof(*a->tids));
    if (a->tids == NULL) {
        rc = ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < nthreads; i++) {
        rc = pthread_create(&a->tids[i], NULL, io_main, a);
        if (rc != 0) {
            goto fail;
        }
        a->nthreads++;
    }
    *out = a;
    return 0;
fail:
    cask_aio_destroy(&a);
    return rc;
}

void
cask_aio_submit(struct cask_aio *a, struct cask_aio_req *r)
{
    r->next = NULL;
    atomic_fetch_add(&a->inflight, 1);
    pthread_mutex_lock(&a->mu);
    if (a->tail != NULL) {
        a->tail->next = r;
    } else {
        a->head = r;
    }
    a->tail = r;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void
cask_aio_stats(struct cask_aio *a, uint64_t *inflight, uint64_t *done)
{
    *inflight = atomic_load(&a->inflight);
    *done = atomic_load(&a->done);
}

void
cask_aio_destroy(struct cask_aio **ap)
{
    struct cask_aio *a = *ap;

    if (a == NULL) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    for (unsigned i = 0; i < a->nthreads; i++) {
        pthread_join(a->tids[i], NULL);
    }
    free(a->tids);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
    *ap = NULL;
}
