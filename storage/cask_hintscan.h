/* cask_hintscan.h - the scan behind the hint of a segment this process just
 * wrote and closed: every record's header and key, every small record's
 * checksum, but not the bytes of large values.
 *
 * Why it may skip them (storage/FORMAT.md, "Hint file"): it is used only
 * while the segment holds values checked once per load (cask_verify.h),
 * its change time is still the one our last write left and every page of
 * it is in the page cache, that is while a get would send those values
 * without hashing them either. Otherwise the hint writer scans in full.
 * Owns no state. Depends on cask_segment and cask_record only.
 */
#ifndef BITCACHED_CASK_HINTSCAN_H
#define BITCACHED_CASK_HINTSCAN_H

#include <stdint.h>

#include "storage/cask_segment.h"

/* Like cask_seg_scan from start to s's flushed end, except that a put
 * whose value is `big` bytes or more is passed to fn after its header and
 * key were read and decoded, without reading or hashing its value. Stops
 * at the first record that is torn or impossible, or (a smaller one)
 * fails its checksum, and returns the offset where it stopped; *err is 0
 * or the errno of a failed read. */
uint64_t cask_hintscan(struct cask_segment *s, uint64_t start, uint32_t vmax,
                       uint32_t big, cask_seg_scan_fn fn, void *arg, int *err);

#endif
