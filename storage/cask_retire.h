/* cask_retire.h - the per-shard retired-segments file: the commit point of
 * a compaction.
 *
 * A compaction first makes its outputs durable, then replaces DIR/retired
 * (temp, fdatasync, rename, fsync dir) with the ids of its inputs, and only
 * then unlinks them. Opening a shard finishes that removal before anything
 * is read, so a crash between two unlinks can never leave a put without the
 * tombstone that hid it. Format in storage/FORMAT.md. Owns that one file;
 * depends on cask_segment (paths, file replacement) and cask_io only.
 */
#ifndef BITCACHED_CASK_RETIRE_H
#define BITCACHED_CASK_RETIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The format version this build writes (FORMAT.md). */
#define CASK_RETIRE_VERSION 1u

#define CASK_RETIRE_NAME "retired"

/* Commit: replace dir/retired by the list ids[0..n). Returns 0 once the
 * new file is in place (a restart removes the inputs from then on, so the
 * commit is done): *dir_rc is the directory fsync's result, non-zero when
 * a power loss may bring the old file back (the caller logs it); or an
 * errno (the file is then unchanged and the inputs must be kept). Blocks
 * on fdatasync and a directory fsync. */
int cask_retire_write(const char *dir, const uint32_t *ids, size_t n,
                      int *dir_rc);

/* Whether buf[0..len) is a whole, valid retired file. */
bool cask_retire_valid(const char *buf, size_t len);

/* The format version of dir/retired when it is a whole file of a newer
 * version than this build's (cask_newer.h), else 0. */
uint32_t cask_retire_newer(const char *dir);

/* At open, before the segments are listed: unlink every listed segment (and
 * its hint) still present, and fsync dir when something was removed.
 * *max_id gets the largest listed id (0 for none) so that no new segment
 * reuses a listed id; *removed the number of segment files removed.
 * Returns 0, ENOENT when there is no file, EINVAL when it is damaged
 * (nothing removed), CASK_ENEWER when it is of a newer format version
 * (nothing removed), or an errno. */
int cask_retire_apply(const char *dir, uint32_t *max_id, unsigned *removed);

/* The ids dir/retired lists, in *ids (malloc'd, the caller frees it) and
 * *n. Returns 0, ENOENT, EINVAL when it is damaged, CASK_ENEWER, or an
 * errno. */
int cask_retire_ids(const char *dir, uint32_t **ids, size_t *n);

#endif
