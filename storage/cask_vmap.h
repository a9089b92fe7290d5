/* cask_vmap.h - read-only shared mappings of segment files, so that a
 * verified large value (cask_verify.h) can be handed out as memory
 * (cask_vref.ptr) and sent in one writev together with its reply line and
 * the bytes after it, instead of a sendfile between two small writes.
 *
 * A segment is mapped once, on the first get that hands out one of its
 * values, and unmapped when the segment is freed (after its last reader
 * and reference: the mapping lives as long as the pin). The mapping
 * covers the segment's size limit, so the active segment's later records
 * are in it too (MAP_SHARED: the page cache, as pread sees it).
 *
 * Only the kernel reads the value bytes, as it copies them into the
 * socket: a page that cannot be had (the file cut short by another
 * process, a media error) fails that write (EFAULT), where a read in user
 * space would raise SIGBUS. The header and key before them are read here,
 * guarded (cask_vmap_copy). Advised MADV_RANDOM: a page missing from the
 * page cache is read alone, never with read-around.
 *
 * Mappings are bounded (cask_vmap_budget): every mapping is one of the
 * process's vm.max_map_count (65530 by default), which malloc's large
 * blocks, thread stacks and io_uring rings need too. A store of 1 TB in
 * 64 MiB segments has 16384 segments, in 16 MiB ones 65536: mapped all,
 * they would exhaust it and make malloc fail. Past the budget a segment
 * is not mapped (its verified values go out by sendfile, one copy fewer
 * saved, nothing else lost) until a mapping is freed with its segment.
 *
 * Layer: beside the segment (fields in struct cask_segment), under the
 * shard mutex for open, at segment free for close. Must not depend on
 * anything above storage/.
 */
#ifndef BITCACHED_CASK_VMAP_H
#define BITCACHED_CASK_VMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cask_segment;

/* vm.max_map_count where /proc does not say, and the share of it the
 * segment mappings may take: a quarter (16382 of the default), the rest
 * left to everything else in the process. */
#define CASK_VMAP_MAX_MAP_COUNT_DEFAULT 65530u
#define CASK_VMAP_SHARE                 4u

/* How many segments may be mapped at once (process-wide; read from
 * vm.max_map_count on first use). Thread-safe. */
unsigned cask_vmap_budget(void);

/* Set that budget (tests; 0: worked out again on next use). */
void cask_vmap_set_budget(unsigned cap);

/* Segments mapped now (process-wide). */
unsigned cask_vmap_count(void);

/* Mu held: map s for len bytes (at least its size), once; a failure is
 * not retried and leaves s unmapped (its values go out by sendfile). Over
 * the budget, s is left unmapped and may be mapped by a later call. */
void cask_vmap_open(struct cask_segment *s, uint64_t len);

/* The mapped bytes [off, off+len) of s, or NULL when s is not mapped or
 * the mapping does not reach that far. s pinned (readers). */
const char *cask_vmap_at(const struct cask_segment *s, uint64_t off,
                         uint64_t len);

/* Copy n bytes at src, inside a mapping made here, to dst: the one read
 * of mapped bytes in this process (the header and key of a record whose
 * pages were just found cached). Returns false, having copied part of
 * them, when a page could not be had (SIGBUS: the file was cut short, or
 * the page left the cache and the disk failed to read it back), instead
 * of the signal killing the process. Thread-safe. cask_vmap_open installs
 * the SIGBUS handler this needs (again, if something replaced it), which
 * hands the faults of other code to the handler it found there. */
bool cask_vmap_copy(void *dst, const char *src, size_t n);

/* Install the SIGBUS handler cask_vmap_copy needs (again, if something
 * replaced it), for copies into mappings not made by cask_vmap_open (the
 * active segment's writable one). Thread-safe. */
void cask_vmap_guard(void);

/* Unmap s (from cask_seg_close; no reader or reference left). */
void cask_vmap_close(struct cask_segment *s);

#endif
