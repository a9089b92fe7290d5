/* worker.h - worker threads: each runs its own libevent event_base and owns
 * the connections handed to it. Work reaches a worker only through its queue
 * plus notify pipe (new connections, stop). */
#ifndef BITCACHED_WORKER_H
#define BITCACHED_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "server/cmd.h"

struct server;
struct conn;
struct event_base;
struct event;

struct worker_item {
    int fd;
    bool is_unix;
    bool tls; /* serve TLS on it (a -Z listener without notls:) */
    struct worker_item *next;
};

struct worker {
    struct server *srv;
    unsigned id;
    pthread_t tid;
    bool running; /* tid was started and not joined yet (main thread) */
    struct event_base *base;
    int notify_rd, notify_wr; /* pipe: 'c' new connection, 's' stop */
    struct event *notify_ev;
    struct event *stop_timer; /* bounds the graceful drain */
    pthread_mutex_t qmu;      /* covers qhead/qtail */
    struct worker_item *qhead, *qtail;
    bool stopping;
    TAILQ_HEAD(conn_list, conn) conns; /* this worker's connections */
    /* --sync=always: connections whose replies wait for a commit (conn.c),
     * and the event the store's committer wakes after a commit while
     * nparked is not 0: commit_ev reads commit_fd, an eventfd the
     * committer writes (not event_active: that takes the worker's base
     * lock, which the worker holds while it runs its loop). */
    TAILQ_HEAD(conn_park_list, conn) parked;
    /* connections whose replies wait for this pass's batch write */
    TAILQ_HEAD(conn_held_list, conn) held;
    atomic_uint nparked;
    struct event *commit_ev;
    int commit_fd;
    /* Set by the committer when it writes commit_fd, cleared by the
     * worker when it reads it: one write until the worker has woken. */
    atomic_bool commit_kicked;
    /* The lowest commit epoch whose end may release a parked reply
     * (UINT64_MAX: none): the committer activates commit_ev only once
     * cask_commit_done reaches it. Written by the worker only: lowered
     * before it checks a new wait (worker_commit_wait), set anew after
     * each release walk (worker.c on_commit_ev). */
    _Atomic uint64_t wake_at;
    /* Reads of values not in the page cache (worker.c setup_reads): the
     * worker's io_uring (readring.c), or the I/O threads' results coming
     * back (readq.c), and the submit function its connections use (NULL:
     * they read on the worker) */
    struct readring *ring;
    struct readq *readq;
    void (*read_submit)(void *arg, struct cask_aio_req *r);
    void *read_arg;
    /* Counters written only by this worker's thread; stats.c sums them and
     * may read a slightly stale value. */
    struct cmd_counters ctr;
    uint64_t bytes_read;
    uint64_t bytes_written;
    uint64_t conn_yields;    /* turns given up after -R requests */
    uint64_t write_timeouts; /* connections closed for not reading */
    uint64_t idle_kicks;     /* connections closed by the idle timeout */
    uint64_t rbuf_count;     /* read buffers (one per connection) */
    uint64_t rbuf_bytes;     /* their allocated size */
    uint64_t rbuf_held;      /* bytes of unprocessed requests in them */
    uint64_t rbuf_oom;       /* a read buffer could not grow */
    /* Bytes of grown read buffers kept (not shrunk) for connections that
     * keep sending large requests, at most RBUF_KEPT_MAX (conn.c). */
    uint64_t rbuf_kept;
    uint64_t malloc_fails; /* a new connection's allocations failed */
    /* Bytes freed in large pieces since the last malloc_trim; the trim
     * timer hands memory back to the OS once this is worth it. */
    uint64_t trim_credit;
    struct event *tick_timer; /* housekeeping: budget, malloc_trim */
    unsigned ticks;
    uint64_t budget_scan_ms; /* last walk for the output budget (conn.c) */
    /* --sync=always: wake-ups by the committer (commit_fd read), and the
     * time from the commit's hook call to the release walk, summed (ns);
     * written by this worker only, summed by stats.c as the counters
     * above */
    uint64_t commit_wakes;
    uint64_t commit_wake_ns;
    /* Connections whose write would wait for a roll-over (conn.c; the
     * store returned CASK_EBLOCKED, cask_park): each stops at that
     * request and runs it again when the store's unblock hook, or its
     * commit hook, wakes the worker through unblock_fd (an eventfd, as
     * commit_fd). nblocked counts them; unblock_kicked is set by the
     * thread that writes unblock_fd, cleared by the worker before its
     * walk (as commit_kicked). write_parks: such parks so far (stats),
     * written by this worker only. */
    TAILQ_HEAD(conn_block_list, conn) blocked;
    atomic_uint nblocked;
    struct event *unblock_ev;
    int unblock_fd;
    atomic_bool unblock_kicked;
    uint64_t write_parks;
};

/* Create n workers (event bases and pipes); no threads yet. */
int worker_create_all(struct server *srv, unsigned n);
/* Start their threads. On a failure the threads already started keep
 * running: worker_stop_all stops them. */
int worker_start_all(struct server *srv);
/* Hand an accepted socket to the next worker, round robin. Main thread. */
void worker_dispatch(struct server *srv, int fd, bool is_unix, bool tls);
/* Ask every running worker to drain and stop, and join them. Main thread;
 * a second call does nothing. */
void worker_stop_all(struct server *srv);
/* Free what worker_create_all made; only once no worker runs (after
 * worker_stop_all, whenever worker_start_all was called). */
void worker_destroy_all(struct server *srv);
/* A reply of w now waits for commit epoch need (1: for any commit) to be
 * done: wake w when it is. Called on w's thread before it checks whether
 * the wait is already over, so no commit ending meanwhile is missed. */
void worker_commit_wait(struct worker *w, uint64_t need);
/* A request of w (a connection's, or a UDP datagram's) parked because its
 * write would wait for the store (CASK_EBLOCKED): count it in nblocked
 * and write_parks, then, as the store's unblock hook reads nblocked after
 * it counted its event, look at the store's count again and run the walk
 * at once when an unblock came since the write saw the obstacle. On w's
 * thread; the caller has put the request on its list. */
void worker_block_one(struct worker *w);

#endif
