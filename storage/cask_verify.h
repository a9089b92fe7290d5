/* cask_verify.h - the checksum policy for large values: each record is
 * checked once per load, not on every get.
 *
 * A value of CASK_VERIFY_MIN bytes or more is checked against its record's
 * checksum when it is written (the page cache then holds the bytes that
 * were hashed) or when a get reads it with the check; its keydir entry is
 * then marked checked. A later get of a verified record skips the hash,
 * and may hand the value out as a place in the segment file for zero-copy
 * sending (cask_vref), only while
 *   - every page of the record is in the page cache (cachestat(2)): pages
 *     that left it are read back and checked again, and
 *   - the segment file's change time is the one its last write by this
 *     process left (st_ctime): a write by anyone else drops the verified
 *     marks of the whole segment, logged. Every such get compares it (an
 *     fstat): a write whose pages are clean again shows nowhere else.
 * Recovery, compaction and the offline check keep checking every record
 * they read; a restart starts with nothing verified. Where cachestat(2)
 * is missing (Linux before 6.5) every read is checked, as before.
 *
 * Layer: beside the shard (it clears keydir marks); the write stamps are
 * called by the segment and log layers around their writes, shard mutex
 * held. Must not depend on anything above storage/.
 */
#ifndef BITCACHED_CASK_VERIFY_H
#define BITCACHED_CASK_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Values this large are checked once per load; smaller ones, which a get
 * copies whole anyway, are checked on every read. */
#define CASK_VERIFY_MIN (16u * 1024)

struct cask_segment;
struct cask_shard;

/* Whether this kernel answers cachestat(2) (probed once; thread-safe). */
bool cask_verify_available(void);

/* The change time of the file behind fd in nanoseconds, 0 when fstat
 * fails (never equal to a stamp then). */
uint64_t cask_verify_ctime(int fd);

/* Whether every page of [off, off+len) of fd is in the page cache now. */
bool cask_verify_resident(int fd, uint64_t off, uint64_t len);

/* What the page cache holds of [off, off+len) of fd (one cachestat(2)):
 * not every page (or the call failed), every page and all clean, or every
 * page with some dirty or under writeback (a write not yet on disk:
 * another process's, or one of ours next to the record). */
enum cask_verify_pages {
    CASK_VERIFY_OUT,
    CASK_VERIFY_CLEAN,
    CASK_VERIFY_DIRTY,
};
enum cask_verify_pages cask_verify_pages(int fd, uint64_t off, uint64_t len);

/* cask_verify_pages, also saying in *evicted whether some page not cached
 * was cached before and evicted since (a shadow entry left by reclaim;
 * cask_direct.h reads such records around the page cache). */
enum cask_verify_pages cask_verify_pages_ev(int fd, uint64_t off, uint64_t len,
                                            bool *evicted);

/* cask_verify_pages_ev, also saying in *none (when not NULL) whether no
 * page of the range is cached at all. */
enum cask_verify_pages cask_verify_pages_none(int fd, uint64_t off,
                                              uint64_t len, bool *evicted,
                                              bool *none);

/* Around every write of ours to s (data, truncate, fallocate; mu held, or
 * the segment not yet shared): begin notes a change by anyone else since
 * our last write (s->changed), end takes the file's new change time as
 * ours. No system call unless s has checked records. A write path that
 * leaves them out is taken for another process's write: the segment's
 * values are checked again (slower, never wrong). The roller's extension
 * of the active segment's reserve is bracketed too, with mu released
 * for its fallocate (s->extending): begin makes no comparison meanwhile,
 * so a write by another process at that very moment is taken for ours. */
void cask_verify_write_begin(struct cask_segment *s);
void cask_verify_write_end(struct cask_segment *s);

/* Mu held: drop the checked mark of every keydir entry in s, after s was
 * found changed by someone else (logged once per segment), and take its
 * current change time as the new stamp. */
void cask_verify_forget(struct cask_shard *sh, struct cask_segment *s);

#endif
