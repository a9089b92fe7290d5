/* cask_batch.h - a thread's write batch (cask_batch.c): which shards hold
 * records it staged in their append buffers. Private to storage/; the
 * public side (cask_ticket.batch, cask_batch_flush) is in cask.h.
 */
#ifndef BITCACHED_CASK_BATCH_H
#define BITCACHED_CASK_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cask_shard;

/* Records up to this size may be staged; larger ones are written through. */
#define CASK_BATCH_REC_MAX (16u * 1024)

/* Shards one thread stages into between flushes; a write to yet another
 * one is written through. */
#define CASK_BATCH_SHARDS 64

/* With sh's mu held, before an append of len bytes: may the record be
 * staged? True when this thread defers its waits into a ticket that
 * allows it (batch) and names no other shard's staged write, and the
 * record is small;
 * then sh is listed for this thread's next cask_batch_flush. */
bool cask_batch_stage(struct cask_shard *sh, size_t len);

/* With sh's mu held, after the record was staged as append number
 * sh->app_seq: the deferred ticket waits for its write. */
void cask_batch_staged(struct cask_shard *sh);

/* Hand the shards this thread staged into to out[0..CASK_BATCH_SHARDS)
 * and forget them (the caller writes them out). Returns how many. */
unsigned cask_batch_take(struct cask_shard **out);

/* The flush that wrote out this thread's staged records: the highest
 * commit epoch their shards' last write-outs joined, or 0 when a shard's
 * is unknown (no journal). Read back through cask_batch_epoch. */
void cask_batch_set_epoch(uint64_t epoch);

#endif
