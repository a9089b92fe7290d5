/* outbudget.c - the global budget for queued replies (outbudget.h). Owns
 * three atomics and nothing else; the connections own their queues and
 * report their sizes here. */
#include "server/outbudget.h"

#include <stdatomic.h>

static uint64_t limit_bytes;
static atomic_int_fast64_t used_bytes;
static atomic_uint_fast64_t closes;
static atomic_bool episode; /* a close was logged and the sum is still high */

void
outbudget_init(uint64_t limit)
{
    limit_bytes = limit;
    atomic_store(&used_bytes, 0);
    atomic_store(&closes, 0);
    atomic_store(&episode, false);
}

void
outbudget_add(int64_t delta)
{
    int64_t now = atomic_fetch_add(&used_bytes, delta) + delta;

    if (delta < 0 && (uint64_t)now < limit_bytes / 2) {
        atomic_store(&episode, false);
    }
}

bool
outbudget_over(void)
{
    return limit_bytes != 0 && (uint64_t)atomic_load(&used_bytes) > limit_bytes;
}

bool
outbudget_note_close(void)
{
    atomic_fetch_add(&closes, 1);
    return !atomic_exchange(&episode, true);
}

uint64_t
outbudget_used(void)
{
    int64_t v = atomic_load(&used_bytes);
    return v > 0 ? (uint64_t)v : 0;
}

uint64_t
outbudget_limit(void)
{
    return limit_bytes;
}

uint64_t
outbudget_closes(void)
{
    return atomic_load(&closes);
}
