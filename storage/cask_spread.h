/* cask_spread.h - ask the file system to spread the shard directories of a
 * data directory over its allocation groups (cask_spread.c). */
#ifndef BITCACHED_CASK_SPREAD_H
#define BITCACHED_CASK_SPREAD_H

#include <stdbool.h>

/* Mark dir (the data directory, before its shard directories are made) so
 * that ext2/3/4 places each new subdirectory in a block group of its own,
 * as it does the top-level directories of a file system (the directory's
 * "top of hierarchy" attribute, chattr +T). Returns true when the
 * attribute is set (already, or now); false where the file system has no
 * such attribute or refuses it (not an error: placement is a hint, nothing
 * depends on it). Opens dir read-only, changes nothing else. */
bool cask_spread_dirs(const char *dir);

#endif
