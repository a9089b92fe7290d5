/* cask_split.h - a get whose value read is made by someone else.
 *
 * cask_get_begin looks the key up as cask_get_fetch does (counting the
 * read when asked), pins the record's segment and says which bytes to
 * read; the caller reads them however it likes (cask_uring.c submits them
 * to io_uring) and hands the outcome to cask_get_end, which checks the
 * record (header, key, checksum) with the very code of a plain get,
 * unpins the segment and returns the value. Between the two the segment
 * stays open whatever compaction or eviction do, so the bytes read are
 * those of the record the lookup found. Private to storage/.
 */
#ifndef BITCACHED_CASK_SPLIT_H
#define BITCACHED_CASK_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/cask.h"
#include "storage/cask_record.h"

/* cask_get_begin: make the read described, then call cask_get_end. */
#define CASK_SPLIT_READ (-2101)
/* cask_get_end: the record holds another key sharing the hash bits:
 * begin again with careful set (a lookup that checks keys first). */
#define CASK_SPLIT_AGAIN (-2102)

struct cask_shard;
struct cask_segment;
struct cask_kd_entry;

struct cask_split {
    /* The caller's: the key (kept alive until cask_get_end), whether it
     * counts as a read, and careful (false at first). */
    const char *key;
    size_t klen;
    bool fetch;
    bool careful;
    /* Read the header and key only, to check that the record is the
     * key's (no checksum: no value): vlen is then 0 and cask_get_end
     * hands out no value (a touch, an mg without v). */
    bool head_only;

    /* Set by cask_get_begin when it says CASK_SPLIT_READ: read hlen bytes
     * into head and then vlen bytes into val, from off of fd on. */
    int fd;
    uint64_t off;
    size_t hlen;
    uint32_t vlen;
    char head[CASK_REC_HDR + CASK_KEY_MAX];
    char *val; /* vlen + 1 bytes, malloc'd; cask_get_end's to hand out */
    struct cask_item it; /* the item as the lookup found it */

    /* cask_get_begin's, for cask_get_end: the pin and the record. */
    struct cask_shard *sh;
    struct cask_segment *seg;
    struct cask_kd_entry *e;
    uint32_t rec_off;
    bool plan_on; /* a large value whose checked mark the read may set */
    uint64_t plan_stamp;
};

/* Look sp->key up. Returns CASK_SPLIT_READ (a read to make, segment
 * pinned), or what cask_get_fetch returns when no read is needed (a miss;
 * a value still in a compaction output's buffer, copied into *val), with
 * the item in sp->it. Never waits for the disk but in the rare case
 * cask_get_nowait describes (keys sharing hash bits). */
int cask_get_begin(struct cask *c, struct cask_split *sp, char **val);

/* The read of a CASK_SPLIT_READ finished: io_rc 0 when all of it was
 * read, else an errno (EIO for a file that ended first). Checks the
 * record, unpins the segment and returns CASK_OK with the value in *val
 * (malloc'd, NUL after it, the caller's), CASK_ECORRUPT, the errno, or
 * CASK_SPLIT_AGAIN. Takes the shard's mutex briefly. */
int cask_get_end(struct cask_split *sp, int io_rc, char **val);

#endif
