/* cmd_bin.h - executes memcached binary-protocol requests against the
 * store, beside cmd.c's text commands and over the same cmd_conn (env,
 * counters, output sink). Knows nothing of sockets, libevent or threads:
 * the connection hands it bytes, and it parses one packet
 * (protocol/proto_bin.h), runs it and writes the response packets into the
 * sink. conn.c and udp.c drive it; tests drive it directly.
 */
#ifndef BITCACHED_CMD_BIN_H
#define BITCACHED_CMD_BIN_H

#include <stdbool.h>
#include <stddef.h>

#include "protocol/proto_bin.h"
#include "server/cmd.h"

/* Per-connection binary state. Owned by the connection. */
struct cmd_bin {
    struct proto_bin_parser parser;
    /* SASL (memcached's -S): the password file checked by PLAIN, or NULL
     * when SASL is off. Not owned. */
    const char *sasl_pwdb;
    bool authenticated;
    /* the stat items or stat slabs whose walk is under way (its opcode and
     * opaque; no key), answered when the walk is over */
    struct proto_bin_req stat_req;
};

/* Set up b for a connection of cc's server. sasl_pwdb as above. */
void cmd_bin_init(struct cmd_bin *b, const struct cmd_conn *cc,
                  const char *sasl_pwdb);

/* Run at most one binary packet from buf[0..len), like cmd_execute: *used
 * is what was consumed (0 on CMD_NEED_MORE); CMD_CLOSE means write what is
 * queued, then close. Never aborts on any input. */
enum cmd_status cmd_bin_execute(struct cmd_conn *cc, struct cmd_bin *b,
                                const char *buf, size_t len, size_t *used);

/* Total bytes the packet at the start of the buffer needs, or 0. */
/* Release what cmd_bin_init set up (the connection goes). */
void cmd_bin_deinit(struct cmd_bin *b);

size_t cmd_bin_wanted(const struct cmd_bin *b);

/* True while the rest of a refused packet's body is still to be read and
 * dropped (an unknown opcode, a value too large, ...): memcached writes
 * no reply until it has read all of it. */
bool cmd_bin_swallowing(const struct cmd_bin *b);

#endif
