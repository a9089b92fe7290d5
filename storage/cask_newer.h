/* cask_newer.h - the downgrade guard: telling a file written by a newer
 * format version of bitcached from a damaged one.
 *
 * Every file of a store carries a version. One whose magic and checksum
 * are good but whose version is above what this build knows is not damage
 * to skip, rewrite or drop: its contents may follow rules this build does
 * not know, and a store holding one is refused by open (CASK_ENEWER,
 * logged), reported by bitcached-check and left byte for byte alone by
 * repair. FORMAT.md ("Newer format versions") says which bytes of each
 * kind of file every later version keeps, so that this test holds for
 * versions not yet written. Pure but for cask_newer_path (a read through
 * cask_io). Depends on cask_io only.
 */
#ifndef BITCACHED_CASK_NEWER_H
#define BITCACHED_CASK_NEWER_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* The answer of every open and load for a file of a newer format version
 * (nothing was changed in it). An errno, so that cask_open passes it out
 * as it does other errnos (the server exits EX_CANTCREAT). */
#define CASK_ENEWER EPROTONOSUPPORT

/* Largest file cask_newer_path reads (a newer manifest, retired file or
 * hint may be longer than this build's limit for its kind). */
#define CASK_NEWER_READ_MAX (64u << 20)

/* For the binary files that open with an 8-byte magic and a u32 version
 * and end in a u64 XXH3-64 of every byte before it (manifest, retired,
 * hint): the version of b[0..len) when it is such a file of kind magic
 * with a version above known, else 0. */
uint32_t cask_newer_tail_sum(const char *b, size_t len, const char magic[8],
                             uint32_t known);

/* cask_newer_tail_sum of the file at path, read whole: *version (0 when it
 * is not a newer one). Returns 0, or an errno (ENOENT: no file; EFBIG:
 * longer than CASK_NEWER_READ_MAX, not looked at). */
int cask_newer_path(const char *path, const char magic[8], uint32_t known,
                    uint32_t *version);

#endif
