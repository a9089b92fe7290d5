/* cask_aio.h - value reads on a pool of I/O threads, for callers that must
 * not wait for the disk themselves (the server's event loops).
 *
 * A caller first tries cask_get_nowait; when that says EAGAIN it submits
 * the key here. An I/O thread runs the read (cask_get_fetch: the segment
 * stays pinned while it is read, the record's checksum is checked, the
 * item's fetched bit is set as for any get) and calls the request's done
 * function on that thread. The pool owns its threads and queue, never the
 * requests; it uses the store only through cask.h.
 */
#ifndef BITCACHED_CASK_AIO_H
#define BITCACHED_CASK_AIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask.h"

struct cask_aio; /* opaque */

/* One read. The caller fills the first block, the pool the results, then
 * calls done(r, arg) on an I/O thread: from then on r is the caller's
 * again (the pool never touches it after done returns). */
struct cask_aio_req {
    char key[CASK_KEY_MAX];
    size_t klen;
    bool fetch; /* counts as a read (cask_get_fetch) */
    bool head;  /* the item only: the record's header and key are read,
                 * to check it is the key's, and val stays NULL */
    void (*done)(struct cask_aio_req *r, void *arg);
    void *arg;

    int rc;              /* as cask_get_fetch returns */
    struct cask_item it; /* on CASK_OK, or why the key is gone */
    char *val;           /* on CASK_OK: malloc'd, the caller's to free */

    struct cask_aio_req *next; /* the pool's queue */
};

/* Start nthreads I/O threads (at least 1) reading from c, which must stay
 * open until cask_aio_destroy. Returns 0 or an errno. */
int cask_aio_create(struct cask_aio **out, struct cask *c, unsigned nthreads);

/* Queue r; never blocks on the disk (takes the pool's queue lock). */
void cask_aio_submit(struct cask_aio *a, struct cask_aio_req *r);

/* Reads queued or running, and reads finished since create. */
void cask_aio_stats(struct cask_aio *a, uint64_t *inflight, uint64_t *done);

/* Run the reads still queued, join the threads, free the pool and set *a
 * to NULL. Every submitted request has had its done call on return. Safe
 * on *a == NULL. */
void cask_aio_destroy(struct cask_aio **a);

#endif
