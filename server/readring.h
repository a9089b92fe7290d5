/* readring.h - a worker's io_uring for value reads not in the page cache
 * (storage/cask_uring.h): reads without a thread hop, their completions
 * handled on the worker's own loop, where the connections parked on them
 * go on. The alternative to the I/O pool and readq.h. */
#ifndef BITCACHED_READRING_H
#define BITCACHED_READRING_H

#include <stdint.h>

#include "storage/cask_aio.h"

struct event_base;
struct readring;

/* Make a ring for the worker on base reading from store: resume(owner)
 * runs on the worker's thread for each connection whose parked request
 * can run again (owner as cmd_read_complete returns it). Returns 0, or an
 * errno when io_uring is not to be had (cask_uring_create) or ENOMEM. */
int readring_create(struct readring **out, struct event_base *base,
                    struct cask *store, void (*resume)(void *owner));

/* A cmd_reader's submit function (arg: the worker's readring). Worker's
 * thread. */
void readring_submit(void *arg, struct cask_aio_req *r);

/* Reads submitted and not yet done, and done since create. Any thread. */
void readring_stats(struct readring *rr, uint64_t *inflight, uint64_t *done);

/* Cold reads that bypassed the page cache (O_DIRECT: records the cache
 * could not keep; storage/cask_direct.h), all rings together since start.
 * Any thread. */
uint64_t readring_direct_reads(void);

/* Once the worker's loop has ended: wait for the reads still in flight
 * and hand them to their readers, resuming no one; free the ring and set
 * *rr to NULL. Safe on NULL. */
void readring_destroy(struct readring **rr);

#endif
