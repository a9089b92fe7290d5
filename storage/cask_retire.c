/* cask_retire.c - the per-shard retired-segments file (see cask_retire.h).
 *
 * Layout: magic "BCSKRET\n", u32 version (1), u32 count, count u32 segment
 * ids, u64 XXH3-64 of every byte before it. Owns that file only; depends on
 * cask_segment and cask_io.
 */
#include "storage/cask_retire.h"

#include "storage/cask_io.h"
#include "storage/cask_newer.h"
#include "storage/cask_record.h"
#include "storage/cask_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define RETIRE_VERSION CASK_RETIRE_VERSION
#define RETIRE_HDR     16u
#define RETIRE_MAX     65536u /* ids in one file (a shard has fewer slots) */

static const char retire_magic[8] = {'B', 'C', 'S', 'K', 'R', 'E', 'T', '\n'};

int
cask_retire_write(const char *dir, const uint32_t *ids, size_t n, int *dir_rc)
{
    *dir_rc = 0;
    char path[CASK_PATH_MAX], tmp[CASK_PATH_MAX + 8];
    if (n > RETIRE_MAX) {
        return EINVAL;
    }
    size_t len = RETIRE_HDR + 4 * n + 8;
    char *b = malloc(len);
    if (b == NULL) {
        return ENOMEM;
    }
    memcpy(b, retire_magic, 8);
    cask_put32(b + 8, RETIRE_VERSION);
    cask_put32(b + 12, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        cask_put32(b + RETIRE_HDR + 4 * i, ids[i]);
    }
    cask_put64(b + len - 8, XXH3_64bits(b, len - 8));
    snprintf(path, sizeof(path), "%s/%s", dir, CASK_RETIRE_NAME);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int rc = cask_replace_file(dir, tmp, path, b, len, dir_rc);
    free(b);
    return rc;
}

bool
cask_retire_valid(const char *b, size_t len)
{
    if (len < RETIRE_HDR + 8 || len > RETIRE_HDR + 4 * RETIRE_MAX + 8 ||
        (len - RETIRE_HDR - 8) % 4 != 0) {
        return false;
    }
    return memcmp(b, retire_magic, 8) == 0 &&
           cask_get32(b + 8) == RETIRE_VERSION &&
           cask_get32(b + 12) == (len - RETIRE_HDR - 8) / 4 &&
           cask_get64(b + len - 8) == XXH3_64bits(b, len - 8);
}

uint32_t
cask_retire_newer(const char *dir)
{
    char path[CASK_PATH_MAX + 16];
    uint32_t v;
    snprintf(path, sizeof(path), "%s/%s", dir, CASK_RETIRE_NAME);
    return cask_newer_path(path, retire_magic, RETIRE_VERSION, &v) == 0 ? v : 0;
}

/* EINVAL for a file that is not valid: CASK_ENEWER when it is one of a
 * newer format version rather than damage. */
static int
retire_newer(const char *dir)
{
    return cask_retire_newer(dir) != 0 ? CASK_ENEWER : EINVAL;
}

/* Read and check the file into a malloc'd array. */
static int
retire_read(const char *dir, uint32_t **ids, size_t *n)
{
    char *b;
    size_t len;
    int rc = cask_read_small_file(dir, CASK_RETIRE_NAME, RETIRE_HDR + 8,
                                  RETIRE_HDR + 4 * RETIRE_MAX + 8, &b, &len);
    if (rc != 0) {
        return rc == EINVAL ? retire_newer(dir) : rc;
    }
    if ((len - RETIRE_HDR - 8) % 4 != 0 || !cask_retire_valid(b, len)) {
        rc = EINVAL;
    } else {
        rc = cask_ids_decode(b + RETIRE_HDR, (len - RETIRE_HDR - 8) / 4, ids,
                             n);
    }
    free(b);
    return rc == EINVAL ? retire_newer(dir) : rc;
}

int
cask_retire_ids(const char *dir, uint32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    return retire_read(dir, ids, n);
}

int
cask_retire_apply(const char *dir, uint32_t *max_id, unsigned *removed)
{
    uint32_t *ids = NULL;
    size_t n = 0;
    *max_id = 0;
    *removed = 0;
    int rc = retire_read(dir, &ids, &n);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        char path[CASK_PATH_MAX];
        if (ids[i] > *max_id) {
            *max_id = ids[i];
        }
        /* Hint first, as compaction does: never a hint without its
         * segment. */
        cask_seg_path(path, sizeof(path), dir, ids[i], "hint");
        rc = cask_io_unlink(path);
        if (rc != 0 && rc != ENOENT) {
            goto out;
        }
        cask_seg_path(path, sizeof(path), dir, ids[i], "seg");
        rc = cask_io_unlink(path);
        if (rc == 0) {
            (*removed)++;
        } else if (rc != ENOENT) {
            goto out;
        }
    }
    rc = *removed > 0 ? cask_fsync_dir(dir) : 0;
out:
    free(ids);
    return rc;
}
