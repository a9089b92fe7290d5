/* proto_budget.c - the shared budget of data blocks being received (see
 * proto_budget.h). */
#include "protocol/proto_budget.h"

bool
proto_budget_take(struct proto_budget *b, uint64_t n)
{
    uint64_t cur = atomic_load(&b->used);

    do {
        if (b->limit != 0 && cur != 0 && cur + n > b->limit) {
            atomic_fetch_add(&b->refused, 1);
            return false;
        }
    } while (!atomic_compare_exchange_weak(&b->used, &cur, cur + n));
    return true;
}

void
proto_budget_give(struct proto_budget *b, uint64_t n)
{
    atomic_fetch_sub(&b->used, n);
}
