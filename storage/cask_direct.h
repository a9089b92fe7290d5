/* cask_direct.h - reads of records that bypass the page cache (O_DIRECT)
 * for a split get (cask_split.h) whose record the page cache cannot keep.
 *
 * A buffered read of a record not in the page cache costs the reading
 * thread a page allocation, a memory cgroup charge and, once the cache is
 * full, the reclaim of another page, for bytes that are evicted again
 * before they are read a second time. A direct read costs none of that.
 * It is used where the kernel says the record's pages were cached before
 * and have been evicted since (cachestat(2): shadow entries), that is
 * where the data set is larger than the cache may hold, and then, for
 * CASK_DIRECT_PRESSURE_MS after a window of probes last saw such pages
 * often enough (cask_direct_pressure), also for
 * records with pages never cached (all of them, or one of two, the other
 * cached by a neighbour's read): once reclaim runs, a buffered read of a
 * never-cached page only evicts another page for bytes that will be
 * evicted in turn (after a drop of the page cache, that was nearly half
 * the cold reads, each about 2.5 times the CPU of a direct one). Until a
 * first eviction is seen (a cold start whose data fits; drop_caches and
 * POSIX_FADV_DONTNEED leave no shadow entries) records are read through
 * the page cache, so that it warms up.
 *
 * The read covers the record's span rounded out to the file system's
 * direct I/O alignment (statx STATX_DIOALIGN: 512 bytes on most disks,
 * else 4096), into a buffer of the caller's aligned to CASK_DIRECT_ALIGN;
 * cask_direct_take copies the header, key and value out, and the record
 * is then checked by cask_get_end as any other. Coherence: the kernel
 * writes dirty pages of the range out before a direct read, and a split
 * get never reads a record still in a user-space append buffer
 * (cask_get_begin copies those instead).
 *
 * Owns each segment's O_DIRECT descriptor (struct cask_segment.dio),
 * opened on first use and closed with the segment, whose readers pin
 * keeps it open during a read. None on tmpfs and ramfs (no disk to
 * bypass), where the open or the statx says the file system has no
 * direct I/O, or when the descriptor would eat into the last
 * CASK_DIRECT_FD_SPARE descriptors of RLIMIT_NOFILE (then buffered reads
 * as before). Thread-safe. Depends on the segment and cask_split.h only.
 */
#ifndef BITCACHED_CASK_DIRECT_H
#define BITCACHED_CASK_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask_split.h"
#include "storage/cask_verify.h"

struct cask_segment;

/* Buffers for direct reads are aligned to this (covers any memory
 * alignment a device asks for). */
#define CASK_DIRECT_ALIGN 4096u

/* A direct descriptor is not opened where it would leave fewer than this
 * many descriptors under the soft RLIMIT_NOFILE. */
#define CASK_DIRECT_FD_SPARE 256u

/* When reads bypass the page cache: auto as above; never; always (where
 * the file system allows, whatever the page cache holds: tests). */
enum cask_direct_policy {
    CASK_DIRECT_AUTO,
    CASK_DIRECT_NEVER,
    CASK_DIRECT_ALWAYS,
};

/* Set the policy of the process (default CASK_DIRECT_AUTO). Any thread. */
void cask_direct_set_policy(enum cask_direct_policy p);

/* cask_verify_pages of [off, off+len) of s (one cachestat(2)), the answer
 * also kept for this thread's next cask_direct_plan of the same record;
 * pages found cached lose their cold mark (below). s pinned. */
enum cask_verify_pages cask_direct_pages(struct cask_segment *s, uint64_t off,
                                         uint64_t len);

/* Whether every page of [off, off+len) of s is marked cold: found evicted
 * by a probe and read around the page cache since, so most likely still
 * not cached. A get then skips its probe and its try without waiting
 * (both a system call) and goes to the ring, whose plan reads it direct
 * without a cachestat. One such get in CASK_DIRECT_RECHECK says no all
 * the same, so that its probe clears the marks of pages the page cache
 * holds again (a neighbour's buffered read, a compaction's). s pinned. */
bool cask_direct_cold(const struct cask_segment *s, uint64_t off, uint64_t len);

/* Mark the pages of [off, off+len) of s cold, as a plan does once a probe
 * found none of them cached and it reads them direct. s pinned. */
void cask_direct_mark_cold(struct cask_segment *s, uint64_t off, uint64_t len);

/* Pressure: of a thread's CASK_DIRECT_WINDOW probes of records not wholly
 * cached, one in CASK_DIRECT_ENTER found a page evicted (one in
 * CASK_DIRECT_KEEP while pressure is on). With the data n times the
 * page cache, a random cold read finds a page evicted about once the
 * evicted pages are an eighth of those not cached, a few seconds after
 * reclaim started; a store that fits sees a few evictions at most
 * (another process's load), which do not count. */
#define CASK_DIRECT_WINDOW 64u
#define CASK_DIRECT_ENTER  8u
#define CASK_DIRECT_KEEP   32u

/* How long after a window last showed pressure a record not wholly
 * cached is read direct too. Long enough to bridge the
 * gaps between probes that see shadow entries once most cold reads go
 * direct (they leave none); once it lapses, buffered reads fill the
 * page cache again until reclaim leaves new shadow entries. */
#define CASK_DIRECT_PRESSURE_MS 30000u

/* Whether a window of probes showed pressure within
 * CASK_DIRECT_PRESSURE_MS (any thread; process-wide, as the memory limit
 * is). */
bool cask_direct_pressure(void);

/* Forget the evictions seen so far, and this thread's window (tests). */
void cask_direct_pressure_reset(void);

/* One get in this many of a record marked cold probes it anyway. */
#define CASK_DIRECT_RECHECK 16u

/* A direct read: len bytes (a multiple of the alignment) at off (aligned)
 * of fd; the record starts skip bytes into them. */
struct cask_direct {
    int fd;
    uint64_t off;
    size_t len;
    size_t skip;
};

/* Whether sp's read (cask_get_begin said CASK_SPLIT_READ) should bypass
 * the page cache; if so fills d. May open the segment's direct
 * descriptor. Under the auto policy it takes this thread's last probe of
 * the record, else the record's cold marks, else makes one cachestat(2)
 * call; a record it reads direct with none of its pages cached has its
 * pages marked cold. */
bool cask_direct_plan(struct cask_split *sp, struct cask_direct *d);

/* The direct read d of sp's record gave got bytes of buf (got >= 0).
 * Returns 0 with the header and key copied to sp->head and the value to
 * sp->val, or EIO when the bytes ended before the record (a file shorter
 * than the lookup said: read it buffered to tell). The record is checked
 * by cask_get_end. Also keeps the read from marking a large value checked
 * (cask_verify.h): its bytes are not in the page cache. */
int cask_direct_take(struct cask_split *sp, const struct cask_direct *d,
                     const char *buf, size_t got);

/* The file system refused a direct read of sp's segment (EINVAL): that
 * segment's reads go through the page cache from now on. */
void cask_direct_refused(struct cask_split *sp);

/* Direct reads planned since start (any thread). */
uint64_t cask_direct_reads(void);

#endif
