/* fuzz_proto.c - libFuzzer target over the protocol parser and, through
 * cmd_execute, the command executor with the in-memory fake store. The
 * input is fed twice: whole, and split into reads whose sizes come from the
 * input itself, as a connection would see it. Checks the parser's contract
 * (never consumes more than it was given, always makes progress when it
 * says so); the sanitizers catch the rest. Built only with --enable-fuzz.
 */
#include "protocol/proto.h"
#include "server/cmd.h"
#include "server/cmd_meta.h"
#include "storage/cask.h"
#include "tests/fuzz/fuzz_exec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_MAX 2048u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
parse_all(const char *buf, size_t len)
{
    struct proto_parser p;
    struct proto_req req;
    size_t off = 0;

    proto_parser_init(&p, ITEM_MAX);
    while (off < len) {
        size_t used = 0;
        enum proto_status st =
                proto_parse(&p, &req, buf + off, len - off, &used);

        if (used > len - off) {
            abort();
        }
        if (st == PROTO_NEED_MORE || st == PROTO_CLOSE) {
            if (st == PROTO_NEED_MORE && used != 0) {
                abort();
            }
            break;
        }
        if (used == 0) {
            abort();
        }
        if (st == PROTO_OK) {
            char out[4096];
            size_t pos = 0;
            const char *k;
            size_t kl;

            while (req.keys_len > 0 && proto_key_next(&req, &pos, &k, &kl)) {
                if (kl == 0 || kl > PROTO_KEY_MAX) {
                    abort();
                }
            }
            (void)proto_format_req(out, sizeof(out), &req);
        }
        off += used;
    }
}

static enum cmd_status
exec_text(struct fuzz_exec *fx, void *arg, const char *buf, size_t len,
          size_t *used)
{
    (void)arg;
    return cmd_execute(&fx->cc, buf, len, used);
}

static void
execute_all(const char *buf, size_t len, size_t step)
{
    struct fuzz_exec fx;

    if (fuzz_exec_open(&fx, ITEM_MAX) != 0) {
        return;
    }
    fuzz_exec_feed(&fx, buf, len, step, exec_text, NULL);
    fuzz_exec_close(&fx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t step;

    parse_all(buf, size);
    execute_all(buf, size, size > 0 ? size : 1);
    step = size > 0 ? (size_t)(data[0] % 16) + 1 : 1;
    execute_all(buf, size, step);
    return 0;
}
