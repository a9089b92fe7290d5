/* cask_crawl.h - the background crawler of one shard: drops expired and
 * flushed keys from the keydir without waiting for a read or a compaction,
 * so their memory is reused, curr_items and bytes drop, and their records
 * count as dead for compaction.
 */
#ifndef BITCACHED_CASK_CRAWL_H
#define BITCACHED_CASK_CRAWL_H

struct cask_shard;

/* One pass over the whole keydir of sh, a stripe of positions per hold of
 * the shard mutex (at most CRAWL_BATCH keys dropped per hold), unless the
 * last pass over sh began less than CRAWL_EVERY_MS ago (the maintenance
 * thread also runs for each eviction, and a pass touches every entry).
 * Called by the maintenance thread with no lock held; blocks on small reads
 * (each dropped key's record header) and, for an expired key, on the append of
 * its tombstone. */
void cask_shard_crawl(struct cask_shard *sh);

#endif
