/* cask_manifest.h - the per-shard segment manifest: the ids of the
 * segments a shard has in service, so that recovery can tell a segment
 * that disappeared (deleted by hand, lost by the file system) from one a
 * compaction retired, even when no hint of it is left.
 *
 * The file (DIR/shard-NNN/manifest) is replaced whole (temp, fdatasync,
 * rename) when a compaction or an eviction commits, when a
 * replica wipes the shard, by the maintenance thread's hint pass after a
 * roll-over, at close, and at open when it must; never on the per-request
 * write path. An id is listed only once
 * its segment file exists and dropped before the segment is retired, so a crash
 * at any step leaves a file that lists no segment that is not there, unless it
 * was lost. Format in storage/FORMAT.md ("manifest"). Owns that file and
 * the in-memory copy of the list; depends on cask_segment (paths, file
 * replacement), cask_record (integer codec) and cask_io only.
 */
#ifndef BITCACHED_CASK_MANIFEST_H
#define BITCACHED_CASK_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The format version this build writes (FORMAT.md). */
#define CASK_MANIFEST_VERSION 1u

#define CASK_MANIFEST_NAME "manifest"

/* Whether buf[0..len) is a whole, valid manifest file. */
bool cask_manifest_valid(const char *buf, size_t len);

/* Read dir/manifest: *ids (malloc'd, sorted, the caller frees it), *n and
 * *next_id (every id below it has been handed out). Returns 0, ENOENT when
 * there is none (a store written before the manifest existed), EINVAL when
 * it is damaged, CASK_ENEWER (cask_newer.h) when it is a valid file of a
 * newer format version, or an errno (a read error). */
int cask_manifest_load(const char *dir, uint32_t **ids, size_t *n,
                       uint32_t *next_id);

/* The format version of dir/manifest when it is a whole file of a newer
 * version than this build's, else 0. */
uint32_t cask_manifest_newer(const char *dir);

/* Replace dir/manifest by the list ids[0..n) (any order) and next_id.
 * Returns 0 or an errno (the old file is then intact). Blocks on
 * fdatasync; the directory is not synced (see FORMAT.md). */
int cask_manifest_write(const char *dir, const uint32_t *ids, size_t n,
                        uint32_t next_id);

/* A shard's manifest in memory. Its list has a mutex of its own, held for
 * no I/O, so it may be taken under any lock of the shard; its file writes
 * are serialized by another, taken with no shard lock held. */
struct cask_manifest;

/* Create the in-memory list ids[0..n) of dir's manifest; with write, also
 * persist it now (its error goes to *write_rc; the list is still created
 * and owes the write); with owed, only mark it for the next write. On
 * ENOMEM nothing is created. */
int cask_manifest_open(struct cask_manifest **out, const char *dir,
                       const uint32_t *ids, size_t n, uint32_t next_id,
                       bool write, bool owed, int *write_rc);

/* Persist the list if a write is still owed, then free it. Safe on NULL. */
void cask_manifest_close(struct cask_manifest **m);

/* Segments now on disk and in service: list them in memory (no I/O; the
 * next write persists them: a roll-over, a segment started on the write
 * path). Until then they are only not checked. Returns 0 or ENOMEM. */
int cask_manifest_note(struct cask_manifest *m, const uint32_t *ids, size_t n);

/* Write the list if it changed since the file was last written (the
 * maintenance thread's hint pass, close). Returns 0 or an errno. Blocks on
 * fdatasync; call with no shard lock held. */
int cask_manifest_flush(struct cask_manifest *m);

/* List added[0..nadded) and write the list without gone[0..ngone): the
 * step of a compaction's commit that comes before its retired file. Only
 * once that write succeeded do the gone ids leave the list; on an error
 * the file is unchanged and so is the list but for the added ids (their
 * segments exist). Returns 0 or an errno. No shard lock held. */
int cask_manifest_replace(struct cask_manifest *m, const uint32_t *gone,
                          size_t ngone, const uint32_t *added, size_t nadded);

#endif
