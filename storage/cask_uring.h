/* cask_uring.h - value reads through an io_uring owned by one event loop
 * thread: no thread hop for a read that missed the page cache.
 *
 * The thread that owns the ring submits a key (cask_uring_submit: the
 * lookup, with the segment pinned, and a read of the record's exact length
 * queued), sends the queued reads to the kernel once per pass of its loop
 * (cask_uring_flush: one io_uring_submit), and, when the ring's eventfd
 * says completions are there, finishes them (cask_uring_reap: the record's
 * header, key and checksum checked as for any get, the segment unpinned)
 * and calls each request's done function, on that same thread. Requests
 * are the I/O pool's (struct cask_aio_req), so the caller can use either.
 *
 * Owns the ring, its eventfd and the state of its reads in flight, never
 * the requests. Built without liburing, cask_uring_create says ENOSYS.
 * Not thread-safe but for cask_uring_stats: one owner thread.
 */
#ifndef BITCACHED_CASK_URING_H
#define BITCACHED_CASK_URING_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/cask.h"
#include "storage/cask_aio.h"

struct cask_uring; /* opaque */

/* Reads in flight at once per ring; more wait in the ring's queue. */
#define CASK_URING_DEPTH 256u

/* Set up a ring reading from c (open until cask_uring_destroy). Returns 0,
 * or an errno when io_uring is not to be had: ENOSYS (an old kernel, a
 * build without liburing, a seccomp filter), EPERM (a seccomp filter,
 * kernel.io_uring_disabled), ENOMEM (locked memory limit). */
int cask_uring_create(struct cask_uring **out, struct cask *c);

/* The eventfd the kernel signals as reads complete: watch it for reading
 * and call cask_uring_reap. */
int cask_uring_fd(const struct cask_uring *u);

/* Whether the owner watches the eventfd edge-triggered (EPOLLET): then
 * cask_uring_reap leaves it unread, as every completion posted signals it
 * anew, and a wake-up costs no read(2). Off at create: a level-triggered
 * watcher needs the eventfd emptied. */
void cask_uring_set_edge(struct cask_uring *u, bool on);

/* Start reading r's key (r->key, r->klen, r->fetch). The read goes to the
 * kernel at the next cask_uring_flush; r->done(r, r->arg) is called from
 * a later cask_uring_flush or cask_uring_reap, never from this call, with
 * r->rc, r->it and r->val as cask_get_fetch gives them. Never waits for
 * the disk. */
void cask_uring_submit(struct cask_uring *u, struct cask_aio_req *r);

/* Hand back the requests answered without a read, then submit the reads
 * queued since the last call (one io_uring_submit). Call once per pass of
 * the loop after a submit. */
void cask_uring_flush(struct cask_uring *u);

/* Finish the reads that completed (emptying the eventfd unless it is
 * watched edge-triggered), calling their done functions. May queue reads: see
 * cask_uring_pending. */
void cask_uring_reap(struct cask_uring *u);

/* Enter the kernel for completions (io_uring_enter with GETEVENTS, nothing
 * submitted: the ring's pending completion work runs, an overflowed
 * completion queue is flushed), then reap what that posted. For a watchdog:
 * reads in flight that made no progress for a while. */
void cask_uring_poke(struct cask_uring *u);

/* Whether reads wait for a cask_uring_flush (queued by the reap itself:
 * a waiting request given a slot, the rest of a short read). */
bool cask_uring_pending(const struct cask_uring *u);

/* Requests submitted and not yet done; requests done since create. Any
 * thread. */
void cask_uring_stats(struct cask_uring *u, uint64_t *inflight, uint64_t *done);

/* How many read slots' buffers are registered with the ring (fixed
 * buffers for direct reads), or -1 when this ring registers no more: it
 * has no table for them (an older kernel or liburing), or a registration
 * was refused (the locked memory limit). Owner thread. */
int cask_uring_fixed_bufs(const struct cask_uring *u);

/* Run every request still queued or in flight to its done call (waiting
 * for the disk), free the ring and set *u to NULL. The owner thread's loop
 * must have ended; may run on another thread. Safe on *u == NULL. */
void cask_uring_destroy(struct cask_uring **u);

#endif
