/* fuzz_exec.h - what the libFuzzer targets share: a command executor over
 * the in-memory fake store (fixed clock, a tiny meta table so that its
 * eviction runs too, a sink that only counts bytes), and the loop that
 * feeds input to an executor in reads of a given size, as a connection
 * would see it, checking that it never consumes more than it was given and
 * always makes progress when it says so.
 */
#ifndef BITCACHED_FUZZ_EXEC_H
#define BITCACHED_FUZZ_EXEC_H

#include "server/cmd.h"

#include <stddef.h>
#include <stdint.h>

/* Lives where the caller put it until fuzz_exec_close: cc points into it. */
struct fuzz_exec {
    struct cask *store;
    struct cmd_counters ctr;
    struct cmd_env env;
    struct cmd_sink sink;
    struct cmd_conn cc;
    size_t total;
    /* the budget of values still arriving: small, with a share held as if
     * by another connection, so that values are refused too; the parsers
     * must give back all they took (checked at close) */
    struct proto_budget budget;
};

/* Returns 0, or -1 when the fake store or meta table cannot be made.
 * fuzz_exec_close aborts when the parsers did not give back all they took
 * of the budget (a binary parser must have been deinit'ed by then). */
int fuzz_exec_open(struct fuzz_exec *fx, uint32_t item_max);
void fuzz_exec_close(struct fuzz_exec *fx);

/* One executor step on fx->cc: cmd_execute, or cmd_bin_execute with its
 * state in arg. */
typedef enum cmd_status (*fuzz_exec_fn)(struct fuzz_exec *fx, void *arg,
                                        const char *buf, size_t len,
                                        size_t *used);

/* Feed buf[0..len) to fn, step bytes more each time it needs more, until
 * it closes the connection or the input is used up. */
void fuzz_exec_feed(struct fuzz_exec *fx, const char *buf, size_t len,
                    size_t step, fuzz_exec_fn fn, void *arg);

#endif
