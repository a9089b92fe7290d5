/* worker.c - worker threads. Each owns an event_base and the connections the
 * listener hands it; the main thread reaches a worker only through its queue
 * and notify pipe (memcached's thread.c model). */
#include <config.h> /* first: feature macros (pipe2) */

#include "server/worker.h"

#include "server/conn.h"
#include "server/log.h"
#include "server/outbudget.h"
#include "server/readq.h"
#include "server/readring.h"
#include "server/server.h"
#include "server/udp.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define STOP_DRAIN_S     3 /* how long a stopping worker waits for slow readers */
#define TICK_MS          100 /* the worker's housekeeping timer */
#define TRIM_EVERY_TICKS 5   /* malloc_trim at most every 500 ms */
/* Freed bytes (closed connections, drained queues, shrunk buffers) that make
 * a malloc_trim worth its cost: glibc keeps freed heap memory otherwise, and
 * a burst of clients that never read would leave the process that big. */
#define TRIM_CREDIT_MIN (8u * 1024 * 1024)
/* ...and the free heap it would hand back. Below this the freed bytes are
 * the churn of busy connections (a read buffer grown for each large set and
 * shrunk after it), which the next requests take again: trimming it only
 * makes them fault the pages back in, zeroed, every time. */
#define TRIM_FREE_MIN (16u * 1024 * 1024)

/* Whether the heap holds enough free memory for a malloc_trim to be worth
 * it (every arena: glibc's mallinfo2 walks their free lists). */
static bool
heap_worth_trim(void)
{
#ifdef HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();

    return mi.fordblks >= TRIM_FREE_MIN;
#else
    return true;
#endif
}

/* Housekeeping: the output budget, and handing freed memory back. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    conn_budget_tick(w);
    if (++w->ticks % TRIM_EVERY_TICKS == 0 &&
        w->trim_credit >= TRIM_CREDIT_MIN) {
        w->trim_credit = 0;
        if (heap_worth_trim()) {
            malloc_trim(0);
        }
    }
}

static void
on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    event_base_loopbreak(w->base);
}

static void
begin_stop(struct worker *w)
{
    struct timeval tv = {.tv_sec = STOP_DRAIN_S};

    w->stopping = true;
    conn_drain_all(w);
    if (TAILQ_EMPTY(&w->conns)) {
        event_base_loopbreak(w->base);
        return;
    }
    evtimer_add(w->stop_timer, &tv);
}

static void
on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    char cmds[64];
    ssize_t n;

    (void)what;
    n = read(fd, cmds, sizeof(cmds));
    if (n <= 0) {
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (cmds[i] == 'c') {
            struct worker_item *it;
            pthread_mutex_lock(&w->qmu);
            it = w->qhead;
            if (it != NULL) {
                w->qhead = it->next;
                if (w->qhead == NULL) {
                    w->qtail = NULL;
                }
            }
            pthread_mutex_unlock(&w->qmu);
            if (it == NULL) {
                continue;
            }
            if (w->stopping) {
                close(it->fd);
                atomic_fetch_sub(&w->srv->curr_conns, 1);
            } else {
                conn_new(w, it->fd, it->is_unix, it->tls);
            }
            free(it);
        } else if (cmds[i] == 's') {
            begin_stop(w);
        }
    }
}

/* Why no wake-up is lost (a parked reply whose commit is done while its
 * worker sleeps would hang its connection for good once traffic stops).
 *
 * 1. Every need a reply publishes is an epoch a writer joined (the
 *    ticket's, or its shard's write-out's: cask_commit_join raised want
 *    to it), or 1. A joined epoch is always completed (done reaches it;
 *    with errors if its commit fails), so a worker waiting for
 *    done >= wake_at is woken eventually. A need that is too low (a
 *    frame that rides in a later epoch than the one recorded) only
 *    wakes the worker early: it finds the reply not done, publishes the
 *    same need again, which every later commit's hook finds done, until
 *    the reply goes out: the old wake-on-every-commit behaviour.
 * 2. A new wait: the worker lowers wake_at, then (after a full fence)
 *    checks the ticket. The committer makes a ticket done (covered
 *    marks, done, undo_wait, ...) and then, after a full fence in
 *    announce's hook below, reads nparked and wake_at. Of the two
 *    fences one comes first: either the worker's check sees the ticket
 *    done, or the hook sees the lowered wake_at (and nparked, raised
 *    before it) and wakes the worker.
 * 3. A release walk (on_commit_ev) raises wake_at to what is left: it
 *    reads `announced` before the walk, stores wake_at, fences, reads
 *    `announced` again. The committer raises `announced` after it made
 *    tickets done, then fences, then reads wake_at. A commit whose hook
 *    read wake_at before the new value either raised `announced` before
 *    the first read (then the walk saw its tickets done) or after: then
 *    the second read sees it and the worker wakes itself if its new
 *    wake_at is done.
 * 4. Replies of writes staged in this pass have need 0 (unknown) until
 *    conn_pass_end knows their batch write's epoch and publishes it
 *    (point 2) before the loop polls; UDP's held replies publish 1.
 * 5. A hook that wakes the worker skips its eventfd write when
 *    commit_kicked is already set: the hook that set it writes (after
 *    the exchange), and the walk that follows that write clears the flag
 *    (then fences) before it reads any ticket, so it sees the tickets
 *    the skipping commit made done before its exchange. */

/* Wake the workers with a connection whose write would wait for a
 * roll-over (CASK_EBLOCKED): the wait may have ended. The store counted
 * the event (cask_unblock_gen) before this looks at nblocked; a worker
 * publishes nblocked before it reads that count again
 * (worker_block_one), so one of the two sees the other. A kick left out is one
 * the worker's coming walk covers (it clears unblock_kicked first). */
static void
kick_blocked(struct server *srv)
{
    atomic_thread_fence(memory_order_seq_cst);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (atomic_load(&w->nblocked) != 0 &&
            !atomic_exchange(&w->unblock_kicked, true)) {
            uint64_t one = 1;
            (void)!write(w->unblock_fd, &one, sizeof(one));
        }
    }
}

/* The store's unblock hook: a roll-over ended, or the sync thread took
 * up a closed segment's sync. */
static void
on_store_unblock(void *arg)
{
    kick_blocked(arg);
}

/* Runs the blocked connections' requests again. */
static void
on_unblock_ev(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t kicks;

    (void)what;
    (void)!read(fd, &kicks, sizeof(kicks));
    atomic_store(&w->unblock_kicked, false);
    atomic_thread_fence(memory_order_seq_cst);
    conn_unblock_all(w);
    if (w->srv->udp != NULL) {
        udp_unblock_all(w->srv->udp, w); /* UDP writes parked likewise */
    }
}

/* The store's commit hook, on its committer thread: wake the workers
 * whose parked replies the commits done so far may release, and only
 * those: a worker woken for nothing costs two context switches. A commit
 * may also end the wait of a write blocked on a roll-over (always). */
static void
on_store_commit(void *arg)
{
    struct server *srv = arg;
    uint64_t done = cask_commit_done(srv->store);

    kick_blocked(srv);
    atomic_thread_fence(memory_order_seq_cst); /* point 2 above */
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (atomic_load(&w->nparked) != 0 && atomic_load(&w->wake_at) <= done &&
            !atomic_exchange(&w->commit_kicked, true)) {
            /* Not kicked yet: the worker clears the flag before its walk,
             * so a kick left out is one its coming walk covers. */
            uint64_t one = 1;
            (void)!write(w->commit_fd, &one, sizeof(one));
        }
    }
}

void
worker_block_one(struct worker *w)
{
    atomic_fetch_add(&w->nblocked, 1);
    w->write_parks++;
    atomic_thread_fence(memory_order_seq_cst); /* kick_blocked */
    if (cask_unblock_gen(w->srv->store) != cask_blocked_gen()) {
        event_active(w->unblock_ev, EV_READ, 0);
    }
}

void
worker_commit_wait(struct worker *w, uint64_t need)
{
    if (need < atomic_load_explicit(&w->wake_at, memory_order_relaxed)) {
        atomic_store_explicit(&w->wake_at, need, memory_order_relaxed);
    }
    /* before the caller's check of its ticket: point 2 above */
    atomic_thread_fence(memory_order_seq_cst);
}

static void
on_commit_ev(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct cask *store = w->srv->store;
    uint64_t seen = cask_commit_announced(store);

    (void)what;
    uint64_t kicks;
    /* Drained (nonblocking; nothing to read when the worker activated
     * the event itself), then the flag cleared before the walk: a commit
     * that finds it set has its tickets done before this walk reads
     * them. */
    if (read(fd, &kicks, sizeof(kicks)) == (ssize_t)sizeof(kicks)) {
        /* woken by a commit's hook: how long that took (stats) */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now =
                (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        uint64_t at = cask_commit_announced_ns(store);
        if (at != 0 && at <= now) {
            w->commit_wakes++;
            w->commit_wake_ns += now - at;
        }
    }
    atomic_store(&w->commit_kicked, false);
    atomic_thread_fence(memory_order_seq_cst);
    /* The release walk returns the need of what it left parked: that
     * waits for wake_at. UDP's held replies count in nparked too: while
     * any are held, every commit wakes the worker. */
    unsigned n;
    uint64_t need = conn_commit_done(w, &n);
    if (w->srv->udp != NULL) {
        udp_commit_done(w->srv->udp, w); /* UDP replies held likewise */
    }
    if (atomic_load(&w->nparked) > n) {
        need = 1;
    }
    atomic_store_explicit(&w->wake_at, need, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    /* A commit that ended after the walk looked may have read the old
     * wake_at: point 3 above. */
    if (cask_commit_announced(store) != seen &&
        need <= cask_commit_done(store)) {
        event_active(w->commit_ev, EV_READ, 0);
    }
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    /* One pass of the loop at a time (libevent 2.1 has no hook that runs
     * before it polls): after each, the writes its requests staged go
     * out together and their replies with them. */
    for (;;) {
        int rc = event_base_loop(w->base, EVLOOP_ONCE);
        conn_pass_end(w);
        if (rc != 0 || event_base_got_break(w->base) ||
            event_base_got_exit(w->base)) {
            break;
        }
    }
    return NULL;
}

/* Where the workers' reads of values not in the page cache go: each
 * worker's own io_uring (--io-engine=uring), else the I/O pool with a
 * readq per worker (--io-engine=threads, or io_uring refused: an old
 * kernel, a seccomp filter, kernel.io_uring_disabled), else, with
 * --io-threads=0, nowhere: the workers read them. */
static int
setup_reads(struct server *srv)
{
    const struct settings *st = srv->settings;
    int rc = 0;

    if (srv->store == NULL) {
        return 0;
    }
    if (st->io_engine == SETTINGS_IO_URING) {
        for (unsigned i = 0; i < srv->nworkers && rc == 0; i++) {
            struct worker *w = &srv->workers[i];
            rc = readring_create(&w->ring, w->base, srv->store,
                                 conn_read_resume);
        }
        if (rc == 0) {
            for (unsigned i = 0; i < srv->nworkers; i++) {
                srv->workers[i].read_submit = readring_submit;
                srv->workers[i].read_arg = srv->workers[i].ring;
            }
            log_msg(LOG_INFO, "cold value reads: io_uring per worker");
            return 0;
        }
        for (unsigned i = 0; i < srv->nworkers; i++) {
            readring_destroy(&srv->workers[i].ring);
        }
        log_msg(LOG_WARN, "io_uring unavailable (%s): cold value reads on %s",
                strerror(rc),
                st->io_threads > 0 ? "the I/O threads" : "the workers");
    }
    if (st->io_threads == 0) {
        return 0;
    }
    rc = cask_aio_create(&srv->aio, srv->store, st->io_threads);
    if (rc != 0) {
        return rc;
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (readq_create(&w->readq, w->base, srv->aio, conn_read_resume) != 0) {
            return ENOMEM;
        }
        w->read_submit = readq_submit;
        w->read_arg = w->readq;
    }
    return 0;
}

int
worker_create_all(struct server *srv, unsigned n)
{
    srv->workers = calloc(n, sizeof(*srv->workers));
    if (srv->workers == NULL) {
        return ENOMEM;
    }
    srv->nworkers = n;
    outbudget_init(srv->settings->output_budget);
    /* Buffers of large requests and values come and go with every request:
     * kept on the heap instead of mmap'd and unmapped each time (each unmap
     * costs a TLB shootdown on every CPU), and handed back to the system by
     * on_tick's malloc_trim rather than at every free. */
    (void)mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    (void)mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &srv->workers[i];
        int fds[2];

        w->srv = srv;
        w->id = i;
        TAILQ_INIT(&w->conns);
        TAILQ_INIT(&w->parked);
        TAILQ_INIT(&w->held);
        TAILQ_INIT(&w->blocked);
        atomic_store(&w->wake_at, UINT64_MAX);
        pthread_mutex_init(&w->qmu, NULL);
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
            return errno;
        }
        w->notify_rd = fds[0];
        w->notify_wr = fds[1];
        w->base = event_base_new();
        if (w->base == NULL) {
            return ENOMEM;
        }
        w->notify_ev = event_new(w->base, w->notify_rd, EV_READ | EV_PERSIST,
                                 on_notify, w);
        w->stop_timer = evtimer_new(w->base, on_stop_timer, w);
        w->tick_timer = event_new(w->base, -1, EV_PERSIST, on_tick, w);
        w->commit_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->commit_fd < 0) {
            return errno;
        }
        w->commit_ev = event_new(w->base, w->commit_fd, EV_READ | EV_PERSIST,
                                 on_commit_ev, w);
        if (w->commit_ev == NULL) {
            close(w->commit_fd);
            return ENOMEM;
        }
        w->unblock_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->unblock_fd < 0) {
            return errno;
        }
        w->unblock_ev = event_new(w->base, w->unblock_fd, EV_READ | EV_PERSIST,
                                  on_unblock_ev, w);
        if (w->unblock_ev == NULL) {
            close(w->unblock_fd);
            return ENOMEM;
        }
        if (event_add(w->unblock_ev, NULL) != 0) {
            return ENOMEM;
        }
        if (w->notify_ev == NULL || w->stop_timer == NULL ||
            w->tick_timer == NULL || event_add(w->notify_ev, NULL) != 0 ||
            event_add(w->commit_ev, NULL) != 0) {
            return ENOMEM;
        }
        {
            struct timeval tv = {.tv_sec = TICK_MS / 1000,
                                 .tv_usec = (TICK_MS % 1000) * 1000};
            event_add(w->tick_timer, &tv);
        }
    }
    int rc = setup_reads(srv);
    if (rc != 0) {
        return rc;
    }
    if (srv->store != NULL) {
        cask_commit_hook(srv->store, on_store_commit, srv);
        cask_unblock_hook(srv->store, on_store_unblock, srv);
    }
    return 0;
}

int
worker_start_all(struct server *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        int rc = pthread_create(&srv->workers[i].tid, NULL, worker_main,
                                &srv->workers[i]);
        if (rc != 0) {
            return rc;
        }
        srv->workers[i].running = true;
    }
    return 0;
}

static void
notify(struct worker *w, char cmd)
{
    for (;;) {
        ssize_t n = write(w->notify_wr, &cmd, 1);
        if (n == 1) {
            return;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        /* The pipe holds 64 KiB of commands; full means the worker is
         * wedged, which a stop will not fix either. */
        log_msg(LOG_WARN, "worker %u notify pipe: %s", w->id,
                n < 0 ? strerror(errno) : "short write");
        return;
    }
}

void
worker_dispatch(struct server *srv, int fd, bool is_unix, bool tls)
{
    static unsigned next;
    struct worker *w = &srv->workers[next++ % srv->nworkers];
    struct worker_item *it = malloc(sizeof(*it));

    if (it == NULL) {
        close(fd);
        atomic_fetch_sub(&srv->curr_conns, 1);
        return;
    }
    it->fd = fd;
    it->is_unix = is_unix;
    it->tls = tls;
    it->next = NULL;
    pthread_mutex_lock(&w->qmu);
    if (w->qtail != NULL) {
        w->qtail->next = it;
    } else {
        w->qhead = it;
    }
    w->qtail = it;
    pthread_mutex_unlock(&w->qmu);
    notify(w, 'c');
}

void
worker_stop_all(struct server *srv)
{
    /* Also on a start-up failure after worker_start_all (a listen() that
     * fails, a partial start): a base must not be freed under its loop. */
    for (unsigned i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i].running) {
            notify(&srv->workers[i], 's');
        }
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i].running) {
            pthread_join(srv->workers[i].tid, NULL);
            srv->workers[i].running = false;
        }
    }
    /* reads still running finish into the readqs, which nobody runs now:
     * worker_destroy_all hands them back */
    cask_aio_destroy(&srv->aio);
}

void
worker_destroy_all(struct server *srv)
{
    if (srv->store != NULL) {
        /* returns once no call of on_store_commit runs */
        cask_commit_hook(srv->store, NULL, NULL);
        cask_unblock_hook(srv->store, NULL, NULL);
    }
    cask_aio_destroy(&srv->aio); /* no-op after worker_stop_all */
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        struct worker_item *it;

        readq_destroy(&w->readq); /* before the connections it names go */
        readring_destroy(&w->ring);
        conn_close_all(w);
        while ((it = w->qhead) != NULL) {
            w->qhead = it->next;
            close(it->fd);
            free(it);
        }
        if (w->notify_ev) {
            event_free(w->notify_ev);
        }
        if (w->stop_timer) {
            event_free(w->stop_timer);
        }
        if (w->tick_timer) {
            event_free(w->tick_timer);
        }
        if (w->commit_ev) {
            event_free(w->commit_ev);
            close(w->commit_fd);
        }
        if (w->unblock_ev) {
            event_free(w->unblock_ev);
            close(w->unblock_fd);
        }
        if (w->base) {
            event_base_free(w->base);
        }
        close(w->notify_rd);
        close(w->notify_wr);
        pthread_mutex_destroy(&w->qmu);
    }
    free(srv->workers);
    srv->workers = NULL;
    srv->nworkers = 0;
}
