/* cask_state.h - the codec of the store's state file (DIR/state: shard count,
 * cas high-water mark, flush point): one slot formatted and parsed. Owns the
 * slot layout only; cask.c reads and writes the file, cask_check.c verifies
 * it. See FORMAT.md, "state". */
#ifndef BITCACHED_CASK_STATE_H
#define BITCACHED_CASK_STATE_H

#include "storage/cask_newer.h"

#include <stdint.h>

#define CASK_STATE_NAME "state"
/* Left while a lost state file's loss awaits cask_state_lost_done. */
#define CASK_STATE_LOST_NAME "state.lost"
/* The file's name in stores written before 0.2 (same content). */
#define CASK_STATE_OLD_NAME "meta"
#define CASK_STATE_VERSION  3
/* One slot of the file: text, NUL-padded; the file holds two. */
#define CASK_STATE_SLOT 4096u

struct cask_state {
    unsigned shards;
    uint64_t cas_reserved;
    uint64_t flush_cas;
    int64_t flush_pending_at;
};

/* Format st as a current-version slot of generation gen into
 * buf[CASK_STATE_SLOT]. */
void cask_state_format(char *buf, const struct cask_state *st, uint64_t gen);

/* Parse one slot (NUL-terminated text). Version 3 carries a generation and
 * a checksum; version 2 (one text file, replaced by rename) a checksum;
 * version 1 neither. Older versions count as generation 0. Returns 0,
 * EINVAL, or CASK_ENEWER for a slot of a newer version (cask_state_newer;
 * *st untouched). */
int cask_state_parse(const char *buf, struct cask_state *st, uint64_t *gen);

/* The version of a slot written by a newer build: its first line is this
 * file's tag with a version above CASK_STATE_VERSION, and a "checksum"
 * line holds the XXH3-64 of every byte before it (FORMAT.md: every later
 * version keeps both). 0 for any other slot. */
unsigned cask_state_newer(const char *buf);

#endif
