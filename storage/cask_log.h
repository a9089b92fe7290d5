/* cask_log.h - a shard's log (cask_log.c): appends, roll-over, the disk
 * reserve for deletes, and waiting for durability. Used by the shard's
 * operations (cask_shard.c), compaction, recovery, the committer and the
 * store; every function but those that say they take the mutex
 * (cask_log_sync, _checkpoint, _latch, _failed; _mark_covered and
 * _covered take no lock)
 * is called with the shard's mu held.
 */
#ifndef BITCACHED_CASK_LOG_H
#define BITCACHED_CASK_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask_shard.h"

struct cask_kd_entry;
struct cask_rec;
struct cask_ticket;

/* Returned by cask_log_make_room and cask_log_append when mu had to be
 * released (a roll-over): keydir entries the caller holds may have moved,
 * so the operation starts over from its lookup. */
#define CASK_LOG_RETRY (-2000)

/* Make sure the active segment can take a record of len bytes (tomb: a
 * tombstone, which may use the delete reserve): 0 with mu held throughout,
 * CASK_LOG_RETRY, or an error (counted and logged). */
int cask_log_make_room(struct cask_shard *sh, size_t len, bool tomb);

/* Append record r (key, then the value as v1 and v2 back to back) with one
 * pwrite; *slot and *off say where it went. 0, CASK_LOG_RETRY, or an
 * error that leaves no partial record. */
int cask_log_append(struct cask_shard *sh, const struct cask_rec *r,
                    const void *key, const void *v1, size_t l1, const void *v2,
                    size_t l2, uint16_t *slot, uint32_t *off);

/* Write out the records a batch staged in the active segment's buffer
 * (one pwrite; under always their journal frames are queued then). 0, or
 * the errno of the failed write (counted and logged) or CASK_EFAILED on a
 * latched shard: the records are dropped, the keydir entries they changed
 * are put back (cask_log_undo_note) and their tickets answer the error. */
int cask_log_write_out(struct cask_shard *sh);

/* With mu held: no record is staged any more (written out, dropped, or
 * gone with a wiped segment): clear the undo notes and the key filter. */
void cask_log_staged_forget(struct cask_shard *sh);

/* With mu held, after the active segment or its append buffer changed:
 * bring the store's buf_bytes up to date (the buffers count in
 * mem_limit). */
void cask_log_buf_account(struct cask_shard *sh);

/* With mu held, before an operation answers from the keydir for the key
 * of keydir hash h without appending a record of its own (a miss,
 * NOT_STORED, EXISTS, a value read): when a record of that key (or of
 * one sharing its filter bits) waits in the active segment's buffer,
 * staged by any thread, write the buffer out first, so that the answer
 * rests only on records the kernel has. 0 when nothing needed writing or
 * the write succeeded; CASK_LOG_RETRY when it failed: the staged records
 * were dropped and the keydir put back as the disk has it, so the
 * operation decides again from its lookup. */
int cask_log_settle(struct cask_shard *sh, uint64_t h);

/* With mu held, right after an append at off and before the operation
 * changes the key's entry (old, or NULL when the key had none): when that
 * record was staged by a write batch, remember the entry as it was, so
 * that a failed write of the batch can put it back. */
void cask_log_undo_note(struct cask_shard *sh, uint64_t h,
                        const struct cask_kd_entry *old, uint32_t off);

/* Lock-free: has append number seq, staged when the shard had counted gen
 * failed writes, reached the kernel? true with *err 0 when it has, true
 * with *err the errno when a failed write dropped it, false while it waits
 * to be written. */
bool cask_log_written(struct cask_shard *sh, uint64_t seq, uint32_t gen,
                      int *err);

/* After an operation's append, under CASK_SYNC_ALWAYS: note in tk the
 * commit that must cover it (the wait comes once mu is released). */
void cask_log_join(struct cask_shard *sh, struct cask_ticket *tk);

/* With mu held, under CASK_SYNC_ALWAYS, for an answer that writes nothing
 * but states a fact the shard's records make (NOT_STORED, EXISTS,
 * NOT_FOUND): when an append written to the kernel is not covered by a
 * commit yet, note in tk the commit that covers every one so far, so that
 * the answer waits for it (and fails if it fails: the record it rested on
 * may be undone). Staged records are the caller's to write out first
 * (cask_log_settle). Costs nothing when all is committed. */
void cask_log_rely(struct cask_shard *sh, struct cask_ticket *tk);

/* Close the active segment (flush, cut back to its records; under always
 * sync it, otherwise leave its sync to the sync thread) and start a new
 * one. Releases mu while creating (and syncing) (appends wait), so the
 * caller must re-read what it needs afterwards. */
int cask_log_roll(struct cask_shard *sh);

/* The roller thread (cask.c): takes mu; when a parked write asked for the
 * shard's roll-over (its active segment full), roll it over, keep its
 * error for the next write, and wake the parked writes. */
void cask_log_roll_asked(struct cask_shard *sh);

/* The roller thread: extend the active segment's disk reserve when a
 * write asked for it (ahead of need, or parked for it), with mu released
 * for the fallocate; wake the parked writes. */
void cask_log_extend_asked(struct cask_shard *sh);

/* Under interval and never a roll-over leaves the closed segment's
 * fdatasync to the sync thread (sh->unsynced, each segment sync_pending
 * until then). With mu held (released while syncing; the caller re-reads
 * what it needs): return once no closed segment waits for its sync. A
 * failed sync is noted for the rewrite (cask_resync_note) and leaves the
 * segment sync_pending. For compaction and eviction, which take closed
 * segments only once synced. */
void cask_log_sync_rolled(struct cask_shard *sh);

/* The same, taking mu: the sync thread under never. */
void cask_log_sync_closed(struct cask_shard *sh);

/* With mu held, after a wipe retired every segment: forget the closed
 * segments waiting for their sync (the last pin frees each). */
void cask_log_forget_rolled(struct cask_shard *sh);

/* Give back the blocks reserved past the end of a segment that takes no
 * more appends. */
void cask_log_release_reserve(struct cask_segment *s);

/* A segment's first disk reserve, made before it takes appends (by a
 * roll-over with mu released, or at the end of recovery): what the first
 * append's reserve would allocate, so that the append need not wait for
 * the file system. A failure is left for that append to meet. */
void cask_log_reserve_fresh(const struct cask *c, struct cask_segment *s);

/* Make everything appended so far durable (the INTERVAL thread, the
 * committer, cask_sync). Takes mu. 0, CASK_EFAILED, or EIO when the
 * sync ran but found the segment cut short under its mapping by another
 * process (records acknowledged before were lost; cask_seg_map_cut). */
int cask_log_sync(struct cask_shard *sh);

/* Make everything appended so far durable in its segment itself, even
 * what a journal commit already covers: a checkpoint before a journal
 * file is reused. Takes mu; 0 or CASK_EFAILED (the shard latched). */
int cask_log_checkpoint(struct cask_shard *sh);

/* The journal made append numbers up to seq durable. Lock-free. */
void cask_log_mark_covered(struct cask_shard *sh, uint64_t seq);

/* Latch the shard failed (writes refused until restart), logging why
 * once. Takes mu. */
void cask_log_latch(struct cask_shard *sh, const char *why);

/* Is append number seq covered by a finished sync? False once the shard
 * latched failed before covering it. Lock-free. */
bool cask_log_covered(struct cask_shard *sh, uint64_t seq);
bool cask_log_failed(struct cask_shard *sh);

#endif
