/* powerloss.h - a power loss modelled for the storage unit tests that hook
 * the cask_io seam (test_cask_lost, test_cask_roll): the bytes each file
 * held at the moments a test chose to keep (its fdatasync hook calls
 * powerloss_take), and a copy of a data directory as a power loss would
 * leave it. A file never taken comes back empty. Directories are taken as
 * durable (the store fsyncs them after each create and rename).
 */
#ifndef BITCACHED_TESTS_UNIT_POWERLOSS_H
#define BITCACHED_TESTS_UNIT_POWERLOSS_H

#include <stdbool.h>

/* Forget every kept image. */
void powerloss_reset(void);

/* Keep what fd's file holds now as its image (a regular file only). */
void powerloss_take(int fd);

/* Copy the tree from into to (which must not exist) as a power loss would
 * leave it. may_vanish: an entry renamed or removed while the copy walks
 * the tree is skipped; otherwise every entry listed must still be there. */
void powerloss_copy(const char *from, const char *to, bool may_vanish);

#endif
