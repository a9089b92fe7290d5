/* cask_segtab.h - a shard's segment table and live-byte accounting
 * (cask_segtab.c). Every function is called with the shard's mu held.
 */
#ifndef BITCACHED_CASK_SEGTAB_H
#define BITCACHED_CASK_SEGTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask_shard.h"

struct cask_rec;

/* Give s a free slot in the table (growing it): 0, EMFILE past
 * CASK_MAX_SLOTS, or ENOMEM. */
int cask_segtab_add(struct cask_shard *sh, struct cask_segment *s);

/* Create segment next_id with an append buffer of buf_cap bytes, mark it as
 * compaction output or not, give it a slot and advance next_id. Removes a
 * stale hint of that id first; leaves no file behind on failure. */
int cask_segtab_new_segment(struct cask_shard *sh, size_t buf_cap,
                            bool is_output, struct cask_segment **out);

/* Bytes on disk of the record e points at. */
uint64_t cask_segtab_entry_len(const struct cask_kd_entry *e);

/* Must a tombstone (or expiry) for a key with this cas stay on disk: could
 * a segment outside the running compaction hold a record it hides? */
bool cask_segtab_tomb_needed(struct cask_shard *sh, uint64_t cas);

/* Point e (fresh, or indexing an older record) at the put r at slot/off and
 * move its bytes between the segments' live counts. */
void cask_segtab_index_put(struct cask_shard *sh, struct cask_kd_entry *e,
                           const struct cask_rec *r, uint16_t slot,
                           uint32_t off);

#endif
