/* proto_budget.h - one budget for the data blocks being received on all
 * connections together. memcached receives a value into an item taken from
 * its -m memory, so values announced and not yet sent are bounded there;
 * when it has no memory for one it answers "out of memory" and drops the
 * value as it comes. A parser given a budget does the same: before it waits
 * for a data block that has not all arrived, it takes the block's size from
 * the budget, and gives it back once the block is whole or the connection
 * goes. A block that would pass the limit is refused (one block alone is
 * always admitted, so that a limit below -I refuses no value on an idle
 * server). Lock-free: parsers of every worker thread share it. Pure: no
 * allocation, no I/O. */
#ifndef BITCACHED_PROTO_BUDGET_H
#define BITCACHED_PROTO_BUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct proto_budget {
    _Atomic uint64_t used;    /* bytes taken by blocks still arriving */
    uint64_t limit;           /* 0 = no limit */
    _Atomic uint64_t refused; /* blocks refused since the start */
};

/* Take n bytes; false (and counted as refused) when that would pass the
 * limit while other blocks hold some. */
bool proto_budget_take(struct proto_budget *b, uint64_t n);

/* Give back n bytes taken before. */
void proto_budget_give(struct proto_budget *b, uint64_t n);

/* What a parser does with its share *held of b (b NULL: no budget): hold
 * n bytes for the pending data block unless it holds some already; false
 * when the budget refuses them. */
bool proto_budget_hold(struct proto_budget *b, uint64_t *held, uint64_t n);

/* Give back the share *held (the block is whole, or the connection
 * goes). */
void proto_budget_drop(struct proto_budget *b, uint64_t *held);

#endif
