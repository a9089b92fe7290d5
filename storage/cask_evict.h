/* cask_evict.h - the memory budget's eviction policy (cask_options.mem_limit
 * with mem_evict): when a shard starts evicting and down to where, how big
 * its segments grow (an eviction takes a whole segment, so a segment is
 * about 1/32 of a shard's share of the budget), and the maintenance
 * pass that runs the evictions. The eviction itself, a compaction that
 * drops the items nobody read, is cask_shard_evict_oldest (cask_compact.c).
 */
#ifndef BITCACHED_CASK_EVICT_H
#define BITCACHED_CASK_EVICT_H

#include <stddef.h>
#include <stdint.h>

#include "storage/cask.h"

struct cask_shard;

/* cask_evict_admit waited for an eviction with mu released: the caller's
 * keydir entries may be stale, start the operation over. */
#define CASK_EVICT_RETRY (-2100)

/* A new key needs cost more keydir bytes (mu held). Returns 0 to go ahead,
 * CASK_EVICT_RETRY, or CASK_ENOMEM: without mem_evict when the keydirs
 * would pass mem_limit, and after that unless the shard holds fewer keys
 * than it once did. With mem_evict, a new chunk past the shard's share
 * of mem_limit makes it evict down to 31/32 of the keys it holds then (the
 * maintenance thread is woken); past the hard limit (mem_limit plus its slack)
 * the caller waits, mu released, up to EVICT_WAIT_MS for an eviction in this
 * shard (CASK_EVICT_RETRY) and gets CASK_ENOMEM when none came. */
int cask_evict_admit(struct cask_shard *sh, size_t cost);

/* Before a write (mu held): when the shard's files are past its share of
 * disk_limit by more than 1/8 of that share, the evictor is behind the
 * writers; wait for it (woken), mu released, up to EVICT_WAIT_MS for an
 * eviction in this shard. Returns CASK_EVICT_RETRY after any wait (mu was
 * released: the caller starts over from its lookup), else 0. A wait that
 * ran out is not repeated by the same thread's next call: the write then
 * goes ahead (the limit is kept by eviction and is never a reason to
 * refuse one). */
int cask_evict_disk_admit(struct cask_shard *sh);

/* Size at which the active segment is rolled so that one eviction takes
 * about 1/32 of the shard's share of the budget; 0 without eviction.
 * mu held. */
uint64_t cask_evict_unit(struct cask_shard *sh);

/* The maintenance thread's pass over one shard (no lock held): roll an
 * active segment past cask_evict_unit, then evict oldest segments while
 * the shard holds more keys than its target. Blocks on disk I/O. */
void cask_shard_evict(struct cask_shard *sh);

/* A segment was closed (mu held): wake the evictor when the shard's files
 * pass its share of disk_limit. */
void cask_evict_rolled(struct cask_shard *sh);

/* Add the shard's eviction counters to *st (mu held). */
void cask_evict_stats(const struct cask_shard *sh, struct cask_stats *st);

#endif
