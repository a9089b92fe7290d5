/* outbudget.h - one budget for the replies queued on all connections
 * together (memcached and Redis both cap this: Redis's
 * client-output-buffer-limit). Connections report how much they hold; the
 * budget says when the sum is over its limit, so that a worker throttles and
 * then closes its worst offender. Lock-free: any worker thread may call. */
#ifndef BITCACHED_OUTBUDGET_H
#define BITCACHED_OUTBUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Set the limit in bytes (0 = none). Before the workers start. */
void outbudget_init(uint64_t limit);

/* A connection's queue grew (delta > 0) or shrank. */
void outbudget_add(int64_t delta);

/* Is the sum over the limit? */
bool outbudget_over(void);

/* A connection was closed to get back under the limit. Returns true for the
 * first one since the sum was last below half the limit, so that the
 * episode is logged once. */
bool outbudget_note_close(void);

uint64_t outbudget_used(void);
uint64_t outbudget_limit(void);
uint64_t outbudget_closes(void);

#endif
