/* test_proto_hostile.c - hostile input for the protocol parser: HTTP
 * request lines, huge keys and lines, NUL and control bytes, absurd
 * numbers, and pseudo-random garbage. The parser must answer each with a
 * status, never read outside the buffer (each input is a heap copy of
 * exactly its length, so ASan sees any overread), and always make progress
 * or ask for more. Links libprotocol.a only.
 */
#include "protocol/proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ITEM_MAX 1024u

/* Parse everything in in[0..n) from a private heap copy. Returns the last
 * status; *consumed is what was used in total. */
static enum proto_status
parse_copy(const void *in, size_t n, size_t *consumed)
{
    char *buf = malloc(n > 0 ? n : 1);
    struct proto_parser p;
    struct proto_req req;
    enum proto_status st = PROTO_NEED_MORE;
    size_t off = 0;

    assert_non_null(buf);
    if (n > 0) {
        memcpy(buf, in, n);
    }
    proto_parser_init(&p, ITEM_MAX);
    while (off < n) {
        size_t used = 0;

        st = proto_parse(&p, &req, buf + off, n - off, &used);
        assert_true(used <= n - off);
        if (st == PROTO_NEED_MORE || st == PROTO_CLOSE) {
            assert_true(st == PROTO_CLOSE || used == 0);
            break;
        }
        assert_true(used > 0);
        if (st == PROTO_ERROR) {
            assert_non_null(req.err);
            assert_true(strlen(req.err) >= 2);
            assert_memory_equal(req.err + strlen(req.err) - 2, "\r\n", 2);
        }
        off += used;
    }
    free(buf);
    *consumed = off;
    return st;
}

static void
test_http(void **state)
{
    static const char *const lines[] = {
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /index HTTP/1.0\r\n",
            "HEAD / HTTP/2\r\n",
            "GET  /  HTTP/1.1  \r\n",
    };
    size_t i;
    size_t used;

    (void)state;
    for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        assert_int_equal(parse_copy(lines[i], strlen(lines[i]), &used),
                         PROTO_CLOSE);
        assert_int_equal(used, 0);
    }
    /* HTTP/ must be the last token of an unknown command */
    assert_int_equal(parse_copy("GET / HTTP/1.1 x\r\n", 18, &used),
                     PROTO_ERROR);
    assert_int_equal(parse_copy("get / HTTP/1.1\r\n", 16, &used), PROTO_OK);
}

static void
test_nul_and_control(void **state)
{
    static const char in[] = "get a\0b\r\n\0\0\0\r\nset \x01 0 0 1\r\nx\r\n"
                             "\x7f\x80\xff\r\nmg \x00 v\r\n\t\t\r\n";
    size_t used;
    enum proto_status st;

    (void)state;
    st = parse_copy(in, sizeof(in) - 1, &used);
    assert_true(st == PROTO_OK || st == PROTO_ERROR);
    assert_int_equal(used, sizeof(in) - 1);
}

static void
test_huge(void **state)
{
    size_t n = 4 * PROTO_LINE_MAX;
    char *buf = malloc(n);
    size_t used;
    int h;

    (void)state;
    assert_non_null(buf);
    /* a key of thousands of bytes, complete line: an error, not a close */
    memset(buf, 'k', n);
    memcpy(buf, "set ", 4);
    memcpy(buf + n - 14, " 0 0 1\r\nx\r\n", 11);
    assert_int_equal(parse_copy(buf, n - 3, &used), PROTO_ERROR);
    /* no newline at all: hang up once past the limit */
    memset(buf, 'z', n);
    assert_int_equal(parse_copy(buf, n, &used), PROTO_CLOSE);
    /* absurd numbers */
    h = snprintf(buf, n, "set a 99999999999999999999999 0 1\r\nx\r\n");
    assert_int_equal(parse_copy(buf, (size_t)h, &used), PROTO_ERROR);
    h = snprintf(buf, n, "set a 0 0 99999999999\r\n");
    assert_int_equal(parse_copy(buf, (size_t)h, &used), PROTO_ERROR);
    h = snprintf(buf, n, "incr a 99999999999999999999999\r\n");
    assert_int_equal(parse_copy(buf, (size_t)h, &used), PROTO_ERROR);
    h = snprintf(buf, n, "mg a T99999999999999999999999 N-99999999999\r\n");
    assert_int_equal(parse_copy(buf, (size_t)h, &used), PROTO_ERROR);
    free(buf);
}

/* A deterministic xorshift stream of bytes biased towards protocol
 * characters; whatever it makes, the parser's contract holds. */
static void
test_garbage(void **state)
{
    static const char alphabet[] =
            "getsadmcnrhvfkq0123456789 -+\r\n\r\nTOCbNMD";
    uint64_t x = 0x9e3779b97f4a7c15u;
    char buf[512];
    unsigned round;

    (void)state;
    for (round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t)(x % sizeof(buf));
        size_t i;
        size_t used;

        for (i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (x & 0x300) != 0 ? alphabet[x % (sizeof(alphabet) - 1)]
                                      : (char)(x >> 24);
        }
        (void)parse_copy(buf, n, &used);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_http),
            cmocka_unit_test(test_nul_and_control),
            cmocka_unit_test(test_huge),
            cmocka_unit_test(test_garbage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
