/* cask_vwrite.h - appending a record with a large value straight from where
 * the value lies: its header and key are encoded in a small buffer (the
 * checksum taken over the value in place) and the three parts go out in one
 * pwritev, so the value is never copied within the process.
 *
 * Called by the log layer with the shard mutex held, for puts whose value
 * is CASK_VWRITE_MIN bytes or more (smaller records are staged and written
 * a batch at a time). Owns no state; depends on cask_segment and
 * cask_record.
 */
#ifndef BITCACHED_CASK_VWRITE_H
#define BITCACHED_CASK_VWRITE_H

#include <stddef.h>

#include "storage/cask_record.h"
#include "storage/cask_segment.h"

/* Values this large are written from where they lie. Copying 16 KiB costs
 * about what a system call does, so below this the batch's one write per
 * pass is worth the copy into its buffer. */
#define CASK_VWRITE_MIN (16u * 1024)

/* Write out s's buffered tail, then the record (r, key, value v1 || v2) at
 * the end of the file with one vectored write. On failure the file is cut
 * back to where the record started (no partial record) and an errno is
 * returned; s is unchanged. */
int cask_vwrite_append(struct cask_segment *s, const struct cask_rec *r,
                       const void *key, const void *v1, size_t l1,
                       const void *v2, size_t l2);

#endif
