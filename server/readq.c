/* readq.c - brings value reads finished on the store's I/O threads back to
 * the worker whose connection asked for them (readq.h). Owns the worker's
 * queue of finished reads, its lock and its event; the reads themselves
 * belong to the connections' readers (cmd_read.c). The I/O thread only
 * pushes and calls event_active (libevent is set up thread-safe).
 */
#include "server/readq.h"

#include "server/cmd_read.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

struct readq {
    pthread_mutex_t mu; /* covers head, tail; leaf */
    struct cask_aio_req *head, *tail;
    struct event *ev;
    struct cask_aio *aio;
    void (*resume)(void *owner);
};

/* The I/O thread's done call. */
static void
on_done(struct cask_aio_req *r, void *arg)
{
    struct readq *q = arg;

    r->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail != NULL) {
        q->tail->next = r;
    } else {
        q->head = r;
    }
    q->tail = r;
    pthread_mutex_unlock(&q->mu);
    event_active(q->ev, EV_READ, 0);
}

static struct cask_aio_req *
take_all(struct readq *q)
{
    pthread_mutex_lock(&q->mu);
    struct cask_aio_req *r = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->mu);
    return r;
}

/* Worker thread. resume may close (free) the connection it names, and
 * only that one; the reads are unlinked before. */
static void
on_ev(evutil_socket_t fd, short what, void *arg)
{
    struct readq *q = arg;
    struct cask_aio_req *r = take_all(q);

    (void)fd;
    (void)what;
    while (r != NULL) {
        struct cask_aio_req *next = r->next;
        void *owner = cmd_read_complete(r);
        if (owner != NULL) {
            q->resume(owner);
        }
        r = next;
    }
}

int
readq_create(struct readq **out, struct event_base *base, struct cask_aio *aio,
             void (*resume)(void *owner))
{
    struct readq *q = calloc(1, sizeof(*q));

    if (q == NULL) {
        return ENOMEM;
    }
    q->ev = event_new(base, -1, 0, on_ev, q);
    if (q->ev == NULL) {
        free(q);
        return ENOMEM;
    }
    pthread_mutex_init(&q->mu, NULL);
    q->aio = aio;
    q->resume = resume;
    *out = q;
    return 0;
}

void
readq_submit(void *arg, struct cask_aio_req *r)
{
    struct readq *q = arg;

    r->done = on_done;
    r->arg = q;
    cask_aio_submit(q->aio, r);
}

void
readq_destroy(struct readq **qp)
{
    struct readq *q = *qp;

    if (q == NULL) {
        return;
    }
    for (struct cask_aio_req *r = take_all(q); r != NULL;) {
        struct cask_aio_req *next = r->next;
        (void)cmd_read_complete(r);
        r = next;
    }
    event_free(q->ev);
    pthread_mutex_destroy(&q->mu);
    free(q);
    *qp = NULL;
}
