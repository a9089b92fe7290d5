/* cask_resync.h - a shard's way back from a failed segment fdatasync
 * without a restart (cask_resync.c); the rewrite itself is a run of
 * compaction (cask_shard_resync, cask_compact.c). Every function but
 * cask_resync_maint is called with the shard's mu held.
 */
#ifndef BITCACHED_CASK_RESYNC_H
#define BITCACHED_CASK_RESYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask_shard.h"

/* The fdatasync of segment id failed with err (an errno; what = the step,
 * for the log): writes are refused from now on, and the segment is queued
 * for a rewrite, or, where none can help (no memory for the queue, or
 * under the journal the failed writes of the active segment could not be
 * undone), the shard is latched until a restart. Under the journal, when
 * id is the active segment, its appends no commit covered yet are
 * answered with errors and their puts undone (cask_lost_fail_active).
 * Never retries the sync: the kernel may have dropped the dirty pages. */
void cask_resync_note(struct cask_shard *sh, uint32_t id, int err,
                      const char *what);

/* Add id to the rewrite queue (a segment that holds copies of queued
 * records but was never synced: a failed rewrite's or compaction's
 * output). On no memory the shard is latched. */
void cask_resync_add(struct cask_shard *sh, uint32_t id);

/* Whether id is queued for a rewrite. */
bool cask_resync_queued(const struct cask_shard *sh, uint32_t id);

/* The active segment is queued: close it and start a new one without
 * syncing it (a second fdatasync can report success over dropped pages).
 * 0 or an errno (nothing changed). */
int cask_resync_roll(struct cask_shard *sh);

/* A rewrite ended: ok, the segments ids[0..n) are retired (dropped from
 * the queue; once it is empty, writes are taken again); else it is tried
 * again later, backing off while it keeps failing. */
void cask_resync_done(struct cask_shard *sh, const uint32_t *ids, size_t n,
                      bool ok);

/* Maintenance thread, no lock held: look for segments cut short by
 * another process (a file shorter than what was written to it: queued
 * for the rewrite, writes go on), then run the shard's rewrite when one
 * is queued and due. */
void cask_resync_maint(struct cask_shard *sh);

#endif
