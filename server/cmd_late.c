/* cmd_late.c - the error reply of a request whose reply was already
 * written when its store call finished, for a connection that held that
 * reply back until the write's commit (--sync=always) and then learned the
 * commit failed. Knows the reply formats of the text and binary protocols
 * only as far as an error needs; no state of its own.
 */
#include "server/cmd.h"

#include "protocol/proto.h"
#include "protocol/proto_bin.h"
#include "storage/cask.h"

#include <stdio.h>
#include <string.h>

const char *
cmd_error_text(const struct cmd_req_tag *tag, int err)
{
    if (err != CASK_EUNDONE || tag->bin) {
        return cask_strerror(err);
    }
    switch (tag->cmd) {
    case PROTO_CMD_SET:
    case PROTO_CMD_ADD:
    case PROTO_CMD_REPLACE:
    case PROTO_CMD_APPEND:
    case PROTO_CMD_PREPEND:
    case PROTO_CMD_CAS:
    case PROTO_CMD_MS:
        return "out of memory storing object";
    default:
        return "out of memory"; /* memcached's incr, decr and ma */
    }
}

void
cmd_late_error(const struct cmd_req_tag *tag, int err,
               const struct cmd_sink *out)
{
    const char *s = cmd_error_text(tag, err);
    size_t n = strlen(s);

    if (tag->bin) {
        /* as cmd_bin.c answers a store error: memcached's internal-error
         * status with the text as body, even for a quiet command */
        unsigned char h[PROTO_BIN_HDR_LEN];

        proto_bin_fmt_hdr(h, tag->opcode, PROTO_BIN_EINTERNAL, 0, 0,
                          (uint32_t)n, tag->opaque, 0);
        out->bytes(out->arg, h, sizeof(h));
        out->bytes(out->arg, s, n);
        return;
    }
    if (tag->silent) {
        return; /* noreply: cmd.c sends no error of a classic command */
    }
    char line[256];
    int len = snprintf(line, sizeof(line), "SERVER_ERROR %s\r\n", s);
    if (len > 0 && (size_t)len < sizeof(line)) {
        out->bytes(out->arg, line, (size_t)len);
    }
}
