/* cask_hint.h - hint files: a compact list of a segment's records (key and
 * metadata, no values) so that start-up need not read whole segments.
 *
 * A hint lists exactly what a full scan of its segment up to covered_len
 * would find. Owns no state. Depends on cask_segment, cask_record, cask_io.
 */
#ifndef BITCACHED_CASK_HINT_H
#define BITCACHED_CASK_HINT_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/cask_segment.h"

#define CASK_HINT_VERSION 2u

/* Scan s up to its flushed end and write dir/<id>.hint atomically (temp,
 * fdatasync, rename, fsync dir). The segment must not take appends while
 * this runs; it is only read, so the shard mutex need not be held. Returns 0
 * with *covered (segment bytes described) and *bytes (hint file size), or an
 * errno. */
int cask_hint_write(const char *dir, const struct cask_segment *s,
                    uint32_t vmax, uint64_t *covered, uint64_t *bytes);

/* cask_hint_write for a segment this process wrote and just closed. stamp
 * is its change-time stamp (struct cask_segment ctime_ns), taken under the
 * shard mutex while it has checked values and no outside change was seen
 * (has_checked and not changed), else 0. While the file still has that
 * change time and every page of it is cached, the records of large values
 * (CASK_VERIFY_MIN) are read without their values (cask_hintscan.h;
 * FORMAT.md says why the hint is the same); *heads then says so. Any other
 * case, or a scan that stops short, reads the segment in full. */
int cask_hint_write_fresh(const char *dir, const struct cask_segment *s,
                          uint32_t vmax, uint64_t stamp, uint64_t *covered,
                          uint64_t *bytes, bool *heads);

/* Load dir/<id>.hint for s: fn(arg, rec, key, off) per entry. Returns 0,
 * *covered (bytes of the segment it describes) and *bytes (the hint file's
 * size; bytes may be NULL), ENOENT when there is none, EINVAL when it is
 * damaged or does not fit the segment (nothing was passed to fn then: the
 * caller scans instead), another errno when it could not be read (EIO,
 * EMFILE, ...: not damage, the file is to be kept; nothing passed to fn
 * either), or CASK_ENEWER (cask_newer.h) when it is a valid
 * hint of a newer format version (nothing passed to fn; not to be removed
 * or rewritten). */
int cask_hint_load(const char *dir, const struct cask_segment *s, uint32_t vmax,
                   cask_seg_scan_fn fn, void *arg, uint64_t *covered,
                   uint64_t *bytes);

/* The format version of dir/<id>.hint when it is a whole hint of a newer
 * version than this build's, else 0. */
uint32_t cask_hint_newer(const char *dir, uint32_t id);

/* An estimate of the records in segments ids[0..n) of dir, for sizing the
 * keydir before recovery loads them: the bytes of their hints (of their
 * segments where there is no hint) at the rate of entries per byte of
 * the newest hint's first 64 KiB. Tombstones, touches and records
 * superseded later count too. 0 when no hint can be sampled. Reads one
 * block (another for each newest hint that cannot be sampled) and stats
 * each file once; never fails. */
uint64_t cask_hint_estimate(const char *dir, const uint32_t *ids, size_t n);

/* Remove the hint of segment id (when it takes appends again or is gone). */
void cask_hint_remove(const char *dir, uint32_t id);

#endif
