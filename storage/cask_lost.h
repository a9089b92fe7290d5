/* cask_lost.h - what a shard does after a failed journal commit, or a
 * failed segment sync under the journal (cask_lost.c): hold its writes,
 * remember which appends were answered with errors, and undo the puts
 * among them before the store resumes.
 * Private to storage/; driven by the committer (cask_commit.c).
 */
#ifndef BITCACHED_CASK_LOST_H
#define BITCACHED_CASK_LOST_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/cask_shard.h"

/* A commit failed: wait for a roll-over in progress, then refuse every
 * later write of the shard (CASK_EFAILED) and remember its appends not
 * covered yet by a finished sync, (synced, app_seq], as answered with
 * errors: their tickets read failed from now on, also once a later
 * checkpoint makes them durable. Takes mu. */
void cask_lost_hold(struct cask_shard *sh);

/* Was append number seq answered with an error by a failed commit?
 * Lock-free; remembers the last CASK_LOST_RING failures. */
bool cask_lost_has(struct cask_shard *sh, uint64_t seq);

/* With writes held: undo the puts of the newest lost range. Each key one
 * of them wrote that is still in the keydir is deleted (a tombstone is
 * appended), so that no later get returns a value whose write was
 * answered with an error, and the next checkpoint makes that durable.
 * Deletes and touches are left: after the checkpoint the disk agrees
 * with what readers see. A shard rewriting a segment whose sync failed
 * (failed, not latched) appends nothing: the keys leave the keydir, and
 * that rewrite writes the tombstones (dropped_untombed); until then
 * tombstones written straight to the active segment's end (unsynced)
 * keep a stop or a process crash from bringing them back. Reads the
 * active segment under mu (a rare path). 0, or an error (the shard must
 * then stay latched). Takes mu. */
int cask_lost_undo(struct cask_shard *sh);

/* With mu held, under always, when the active segment's fdatasync has
 * just failed (before the shard is marked failed; staged records written
 * out): its appends not covered by a journal commit (or, without the
 * journal, a segment sync), (synced, app_seq], are answered with errors
 * from now on (their records may be among the pages the kernel dropped,
 * and the checkpoint's batch is in no journal file), and their puts leave
 * the keydir at once, so that no
 * get reads back a value whose write failed; the rewrite of the segment
 * writes the tombstones, and until it commits tombstones written straight
 * to the segment's end hide them from a restart. 0, or an error (nothing
 * could be undone: the shard must latch). */
int cask_lost_fail_active(struct cask_shard *sh);

/* Lock-free: is a failed segment sync's range being hidden right now
 * (cask_lost_fail_active: its tombstones not synced yet)? Its tickets
 * must wait: an error answered before then could come back as the
 * failed value after a power loss. Who waits is woken once it ends
 * (cask_commit_wake). */
bool cask_lost_hiding(const struct cask_shard *sh);

/* The store recovered: writes are taken again. Takes mu. */
void cask_lost_release(struct cask_shard *sh);

/* For the log, mu held: are writes refused because the shard is held?
 * Not for cask_lost_undo's own tombstones. */
bool cask_lost_blocks(const struct cask_shard *sh);

#endif
