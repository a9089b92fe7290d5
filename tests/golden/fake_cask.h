/* fake_cask.h - test hooks of the in-memory fake store (fake_cask.c), for
 * tests that need the store to fail. Test-only. */
#ifndef BITCACHED_FAKE_CASK_H
#define BITCACHED_FAKE_CASK_H

#include <stdbool.h>

/* When not 0, the next store call (get, touch, store, delete, arith, flush)
 * returns this status instead of running, and the hook resets to 0. */
extern int fake_cask_fail_rc;

/* While the calling thread parks its writes (cask_park) and this is not
 * 0, a write (store, delete, arith, touch) returns CASK_EBLOCKED instead of
 * running, and this counts down. */
extern unsigned fake_cask_block_writes;
/* Writes that run before fake_cask_block_writes starts to block (counts
 * down with each write made while parking). */
extern unsigned fake_cask_block_skip;

/* Writes asked of the store so far (store, delete, arith, touch). */
extern unsigned fake_cask_writes;

/* When true, every value is "not in the page cache": the calls that must
 * not wait (cask_get_nowait*, cask_get_buf with nowait) find the item,
 * count the read as the store's try does, and say EAGAIN. */
extern bool fake_cask_cold;

/* What cask_prefetch was told: how many keys, and the last one (as a
 * string). The fake does nothing else with them. */
extern unsigned fake_cask_prefetches;
extern char fake_cask_prefetched[];

#endif
