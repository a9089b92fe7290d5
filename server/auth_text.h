/* auth_text.h - the text protocol's authentication, as memcached's -Y FILE:
 * until a connection has authenticated, the only request served is a `set`
 * whose data block is "user password"; it answers STORED (nothing is
 * stored) or memcached's CLIENT_ERROR, and every other line gets
 * "CLIENT_ERROR unauthenticated". The password file is the one reader that
 * SASL uses (sasl.h). Knows nothing of sockets: the connection hands it
 * bytes and the reply goes to the command sink, like cmd.h.
 */
#ifndef BITCACHED_AUTH_TEXT_H
#define BITCACHED_AUTH_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "server/cmd.h"

/* Longest request line waited for before authentication; past it without a
 * newline the connection is closed, as memcached does. */
#define AUTH_TEXT_LINE_MAX 2048u

/* Per connection; owned and touched by the connection's thread only. */
struct auth_text {
    const char *file; /* -Y password file; NULL: no authentication */
    bool authenticated;
};

/* Set up a connection's state. file NULL (no -Y) means authenticated. */
void auth_text_init(struct auth_text *a, const char *file);

/* Whether requests must still go to auth_text_execute. */
static inline bool
auth_text_pending(const struct auth_text *a)
{
    return !a->authenticated;
}

/* Serve at most one request from buf[0..len) while unauthenticated, writing
 * the reply to cc's sink and counting auth_cmds/auth_errors in cc's
 * counters. *used is the bytes consumed (0 with CMD_NEED_MORE). Returns
 * CMD_DONE, CMD_NEED_MORE, or CMD_CLOSE for a line that never ends. Blocks
 * on the password file read. */
enum cmd_status auth_text_execute(struct auth_text *a, struct cmd_conn *cc,
                                  const char *buf, size_t len, size_t *used);

/* Bytes the request at the start of buf needs in all (line plus data block
 * of an authentication `set`), or 0 when not known yet. */
size_t auth_text_wanted(const char *buf, size_t len);

#endif
