/* cmd.c - runs parsed memcached requests against the store (implements
 * cmd.h). Owns nothing beyond the per-connection parser state; knows nothing
 * of sockets or threads.
 */
#include "server/cmd.h"

#include "protocol/proto.h"
#include "storage/cask.h"

#include <string.h>

void
cmd_conn_init(struct cmd_conn *cc, const struct cmd_env *env,
              struct cmd_counters *ctr, const struct cmd_sink *out)
{
    memset(cc, 0, sizeof(*cc));
    cc->env = env;
    cc->ctr = ctr;
    cc->out = *out;
    proto_parser_init(&cc->parser, env->item_max);
}

void
cmd_conn_deinit(struct cmd_conn *cc)
{
    (void)cc;
}

enum cmd_status
cmd_execute(struct cmd_conn *cc, const char *buf, size_t len, size_t *used)
{
    struct proto_req req;
    enum proto_status st = proto_parse(&cc->parser, &req, buf, len, used);

    switch (st) {
    case PROTO_NEED_MORE:
        return CMD_NEED_MORE;
    case PROTO_CLOSE:
        if (req.err != NULL) {
            cc->out.bytes(cc->out.arg, req.err, strlen(req.err));
        }
        return CMD_CLOSE;
    case PROTO_SWALLOW:
        return CMD_DONE;
    default:
        cc->out.bytes(cc->out.arg, "ERROR\r\n", 7);
        return CMD_DONE;
    }
}

size_t
cmd_bytes_wanted(const struct cmd_conn *cc)
{
    return cc->parser.wanted;
}
