/* fuzz_bin.c - libFuzzer target over the binary protocol: the packet parser
 * (protocol/proto_bin.c) on its own, then, through cmd_bin_execute, the
 * binary executor over the in-memory fake store, with SASL off and on. The
 * input is fed whole and in reads whose sizes come from the input itself.
 * Checks the parser's contract (never consumes more than it was given,
 * always makes progress when it says so, pointers inside the buffer); the
 * sanitizers catch the rest. Built only with --enable-fuzz.
 */
#include "protocol/proto_bin.h"
#include "server/cmd.h"
#include "server/cmd_bin.h"
#include "server/cmd_meta.h"
#include "storage/cask.h"
#include "tests/fuzz/fuzz_exec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_MAX 2048u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
within(const char *p, size_t n, const char *buf, size_t len)
{
    if (n > 0 && (p < buf || p + n > buf + len)) {
        abort();
    }
}

static void
parse_all(const char *buf, size_t len, bool sasl)
{
    struct proto_bin_parser p;
    struct proto_bin_req req;
    size_t off = 0;

    proto_bin_parser_init(&p, ITEM_MAX);
    p.sasl = sasl;
    p.auth_needed = sasl;
    while (off < len) {
        size_t used = 0;
        enum proto_bin_result st =
                proto_bin_parse(&p, &req, buf + off, len - off, &used);

        if (used > len - off) {
            abort();
        }
        if (st == PROTO_BIN_NEED_MORE) {
            if (used != 0 || (p.wanted != 0 && p.wanted <= len - off)) {
                abort();
            }
            break;
        }
        if (st == PROTO_BIN_CLOSE) {
            break;
        }
        if (used == 0) {
            abort();
        }
        if (st == PROTO_BIN_OK) {
            within(req.key, req.klen, buf + off, used);
            within(req.val, req.vlen, buf + off, used);
            if (req.klen > PROTO_BIN_KEY_MAX || req.vlen > ITEM_MAX) {
                abort();
            }
        }
        off += used;
    }
}

static enum cmd_status
exec_bin(struct fuzz_exec *fx, void *arg, const char *buf, size_t len,
         size_t *used)
{
    return cmd_bin_execute(&fx->cc, arg, buf, len, used);
}

static void
execute_all(const char *buf, size_t len, size_t step, const char *pwdb)
{
    struct fuzz_exec fx;
    struct cmd_bin bin;

    if (fuzz_exec_open(&fx, ITEM_MAX) != 0) {
        return;
    }
    cmd_bin_init(&bin, &fx.cc, pwdb);
    fuzz_exec_feed(&fx, buf, len, step, exec_bin, &bin);
    cmd_bin_deinit(&bin);
    fuzz_exec_close(&fx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t step = size > 0 ? (size_t)(data[size - 1] % 32) + 1 : 1;

    parse_all(buf, size, false);
    parse_all(buf, size, true);
    execute_all(buf, size, size > 0 ? size : 1, NULL);
    execute_all(buf, size, step, NULL);
    /* SASL on, with a password file that does not exist: every PLAIN
     * attempt fails, everything but version and SASL is refused */
    execute_all(buf, size, size > 0 ? size : 1, "/nonexistent/pwdb");
    return 0;
}
