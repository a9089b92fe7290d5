/* cmd_fixture.h - the fixture the executor's unit tests share (test_cmd.c,
 * test_cmd_bin.c, test_cmd_read.c): the fake in-memory store
 * (tests/golden/fake_cask.c) on a clock the test sets, the cmd_env a worker
 * would give (a meta state table, no stats or verbosity hooks), a text
 * connection with its binary state, and a sink that collects the replies
 * in memory. Owns nothing beyond the fixture; no sockets, no disk. A test
 * embeds it first in its own fixture and adds its hooks after init.
 */
#ifndef BITCACHED_TESTS_UNIT_CMD_FIXTURE_H
#define BITCACHED_TESTS_UNIT_CMD_FIXTURE_H

#include "server/cmd.h"
#include "server/cmd_bin.h"
#include "storage/cask.h"

#include <stddef.h>
#include <stdint.h>

#define CMD_FIXTURE_NOW_S    1700000000
#define CMD_FIXTURE_ITEM_MAX 4096u

struct cmd_fixture {
    struct cask *store;
    struct cmd_env env;
    struct cmd_counters ctr;
    struct cmd_conn cc;
    struct cmd_bin bin;
    char out[65536]; /* what the connection wrote, n bytes */
    size_t n;
    unsigned values; /* buffers handed over through sink.value */
    int64_t now;     /* the store's and the executor's clock, seconds */
};

/* Open the fake store and set the connection up; fails the test (cmocka)
 * when something cannot be made. */
void cmd_fixture_init(struct cmd_fixture *fx);

/* Reset the connection, close the store, free the meta table. */
void cmd_fixture_deinit(struct cmd_fixture *fx);

#endif
