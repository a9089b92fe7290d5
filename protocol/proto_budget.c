/* proto_budget.c - the shared budget of data blocks being received (see
 * proto_budget.h). */
#include "protocol/proto_budget.h"

#include <stddef.h>

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

bool
proto_budget_hold(struct proto_budget *b, uint64_t *held, uint64_t n)
{
    if (b == NULL || *held != 0) {
        return true;
    }
    if (!proto_budget_take(b, n)) {
        return false;
    }
    *held = n;
    return true;
}

void
proto_budget_drop(struct proto_budget *b, uint64_t *held)
{
    if (*held != 0) {
        proto_budget_give(b, *held);
        *held = 0;
    }
}
