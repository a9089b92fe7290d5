/* readring.c - a worker's io_uring for cold value reads (readring.h).
 * Owns the worker's ring (storage/cask_uring.h) and three events on the
 * worker's event_base: the ring's completion eventfd; the pass event
 * that the first read of a loop pass activates, so that every read queued
 * in that pass goes to the kernel in one io_uring_submit after the pass's
 * other callbacks have run; and a watchdog timer, pending while reads are
 * in flight, that enters the ring for completions when none came for
 * WATCH_MS (reads were seen held in the kernel, about once in 150 runs of
 * a cold-read test on a loaded machine, until the worker entered its ring
 * again with a new read: on a quiet server that could be never). The
 * reads belong to the connections' readers (cmd_read.c); everything here
 * runs on the worker's thread but readring_stats (and readring_destroy,
 * after the loop).
 */
#include "server/readring.h"

#include "server/cmd_read.h"
#include "storage/cask_direct.h"
#include "storage/cask_uring.h"

#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>

/* The watchdog's period: far above a read's usual time (0.1-2 ms), and
 * a poke when reads are only slow costs one system call. */
#define WATCH_MS 100

struct readring {
    struct cask_uring *u;
    struct event *cq_ev;    /* the ring's eventfd: completions */
    struct event *pass_ev;  /* active while reads wait for their submit */
    struct event *watch_ev; /* pending while reads are in flight */
    uint64_t watch_done;    /* reads done when it was last set */
    bool armed;             /* pass_ev is active */
    bool stopping;          /* destroy: resume no one */
    void (*resume)(void *owner);
};

/* A read's done call, on the worker's thread (from cask_uring_flush or
 * cask_uring_reap). resume may close (free) the connection it names, and
 * only that one; the read was unlinked from the ring before. */
static void
on_done(struct cask_aio_req *r, void *arg)
{
    struct readring *rr = arg;
    void *owner = cmd_read_complete(r);

    if (owner != NULL && !rr->stopping) {
        rr->resume(owner);
    }
}

static void
on_pass(evutil_socket_t fd, short what, void *arg)
{
    struct readring *rr = arg;

    (void)fd;
    (void)what;
    rr->armed = false;
    cask_uring_flush(rr->u);
}

static void
arm(struct readring *rr)
{
    if (!rr->armed) {
        /* runs after the callbacks already active in this pass */
        rr->armed = true;
        event_active(rr->pass_ev, 0, 0);
    }
}

static void
on_cq(evutil_socket_t fd, short what, void *arg)
{
    struct readring *rr = arg;

    (void)fd;
    (void)what;
    cask_uring_reap(rr->u);
    if (cask_uring_pending(rr->u)) {
        arm(rr); /* slots freed for waiting reads, or a short read */
    }
}

/* Set the watchdog if it is not pending: reads are in flight. */
static void
watch(struct readring *rr)
{
    if (!evtimer_pending(rr->watch_ev, NULL)) {
        uint64_t inflight;
        struct timeval tv = {0, WATCH_MS * 1000};
        cask_uring_stats(rr->u, &inflight, &rr->watch_done);
        evtimer_add(rr->watch_ev, &tv);
    }
}

static void
on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct readring *rr = arg;
    uint64_t inflight, done;

    (void)fd;
    (void)what;
    cask_uring_stats(rr->u, &inflight, &done);
    if (inflight == 0) {
        return; /* set again by the next read */
    }
    if (done == rr->watch_done) {
        /* nothing completed for WATCH_MS: collect what the kernel holds */
        cask_uring_poke(rr->u);
        if (cask_uring_pending(rr->u)) {
            arm(rr);
        }
    }
    watch(rr);
}

int
readring_create(struct readring **out, struct event_base *base,
                struct cask *store, void (*resume)(void *owner))
{
    struct readring *rr = calloc(1, sizeof(*rr));
    int rc;

    if (rr == NULL) {
        return ENOMEM;
    }
    rc = cask_uring_create(&rr->u, store);
    if (rc != 0) {
        free(rr);
        return rc;
    }
    rr->resume = resume;
    /* Edge-triggered where the backend can (epoll): each batch of
     * completions signals the eventfd anew, so it need not be read back
     * at every wake-up. */
    short what = EV_READ | EV_PERSIST;
    if ((event_base_get_features(base) & EV_FEATURE_ET) != 0) {
        what |= EV_ET;
        cask_uring_set_edge(rr->u, true);
    }
    rr->cq_ev = event_new(base, cask_uring_fd(rr->u), what, on_cq, rr);
    rr->pass_ev = event_new(base, -1, 0, on_pass, rr);
    rr->watch_ev = evtimer_new(base, on_watch, rr);
    if (rr->cq_ev == NULL || rr->pass_ev == NULL || rr->watch_ev == NULL ||
        event_add(rr->cq_ev, NULL) != 0) {
        readring_destroy(&rr);
        return ENOMEM;
    }
    *out = rr;
    return 0;
}

void
readring_submit(void *arg, struct cask_aio_req *r)
{
    struct readring *rr = arg;

    r->done = on_done;
    r->arg = rr;
    cask_uring_submit(rr->u, r);
    arm(rr);
    watch(rr);
}

void
readring_stats(struct readring *rr, uint64_t *inflight, uint64_t *done)
{
    cask_uring_stats(rr->u, inflight, done);
}

uint64_t
readring_direct_reads(void)
{
    return cask_direct_reads();
}

void
readring_destroy(struct readring **rrp)
{
    struct readring *rr = *rrp;

    if (rr == NULL) {
        return;
    }
    rr->stopping = true;
    cask_uring_destroy(&rr->u);
    if (rr->cq_ev != NULL) {
        event_free(rr->cq_ev);
    }
    if (rr->pass_ev != NULL) {
        event_free(rr->pass_ev);
    }
    if (rr->watch_ev != NULL) {
        event_free(rr->watch_ev);
    }
    free(rr);
    *rrp = NULL;
}
