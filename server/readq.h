/* readq.h - a worker's queue of value reads that finished on the store's
 * I/O threads (storage/cask_aio.h), and the event that brings them back
 * to the worker's thread, where the connections parked on them go on. */
#ifndef BITCACHED_READQ_H
#define BITCACHED_READQ_H

#include "storage/cask_aio.h"

struct event_base;
struct readq;

/* Make w's queue on base: reads go to aio, and resume(owner) runs on the
 * worker's thread for each connection whose parked request can run again
 * (owner as cmd_read_complete returns it). Returns 0 or ENOMEM. */
int readq_create(struct readq **out, struct event_base *base,
                 struct cask_aio *aio, void (*resume)(void *owner));

/* A cmd_reader's submit function (arg: the worker's readq): queue r on
 * the I/O threads; its completion comes back through the queue. */
void readq_submit(void *arg, struct cask_aio_req *r);

/* Hand the reads that came back to their readers, resuming no one (the
 * worker's loop has ended: the I/O pool is destroyed first), free the
 * queue and set *q to NULL. Safe on NULL. */
void readq_destroy(struct readq **q);

#endif
