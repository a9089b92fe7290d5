/* proto_parse.c - incremental parser for the memcached text protocol.
 * Pure: no I/O, no allocation, no globals. Must not depend on server/ or
 * storage/.
 */
#include "protocol/proto.h"

#include <string.h>

void
proto_parser_init(struct proto_parser *p, uint32_t item_max)
{
    memset(p, 0, sizeof(*p));
    p->item_max = item_max;
}

enum proto_status
proto_parse(struct proto_parser *p, struct proto_req *req, const char *buf,
            size_t len, size_t *used)
{
    const char *nl = memchr(buf, '\n', len);

    (void)p;
    memset(req, 0, sizeof(*req));
    *used = 0;
    if (nl == NULL) {
        return PROTO_NEED_MORE;
    }
    *used = (size_t)(nl - buf) + 1;
    req->err = "ERROR\r\n";
    return PROTO_ERROR;
}
