/* test_proto_bin.c - cmocka tests for protocol/proto_bin.c: every opcode's
 * framing rule (accepted, error kept, error closed, unknown swallowed),
 * quiet mapping, extras decoding, too-large values, SASL gating, and each
 * packet fed whole, one byte at a time and pipelined; format-then-parse
 * round trips. Links libprotocol.a only.
 */
#include "protocol/proto_bin.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ITEM_MAX 1024u

static size_t
pkt(char *out, uint8_t op, const void *ext, uint8_t extlen, const char *key,
    const char *val, size_t vlen)
{
    size_t n = proto_bin_fmt_req(out, 4096, op, ext, extlen, key,
                                 (uint16_t)(key ? strlen(key) : 0), val,
                                 (uint32_t)vlen, 0x11223344, 0);
    assert_true(n > 0);
    return n;
}

static enum proto_bin_result
parse_one(struct proto_bin_parser *p, struct proto_bin_req *req,
          const char *buf, size_t len, size_t *used)
{
    return proto_bin_parse(p, req, buf, len, used);
}

static void
test_header_helpers(void **state)
{
    unsigned char h[PROTO_BIN_HDR_LEN];
    uint32_t opaque;

    (void)state;
    memcpy(&opaque, "\x01\x02\x03\x04", 4);
    proto_bin_fmt_hdr(h, 0x0c, 0x0001, 4, 3, 10, opaque, 0x0102030405060708ull);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 0x0c);
    assert_int_equal(proto_bin_get16(h + 2), 3);
    assert_int_equal(h[4], 4);
    assert_int_equal(h[5], 0);
    assert_int_equal(proto_bin_get16(h + 6), 1);
    assert_int_equal(proto_bin_get32(h + 8), 10);
    assert_memory_equal(h + 12, "\x01\x02\x03\x04", 4);
    assert_true(proto_bin_get64(h + 16) == 0x0102030405060708ull);
    assert_string_equal(proto_bin_errstr(PROTO_BIN_KEY_ENOENT), "Not found");
    assert_string_equal(proto_bin_errstr(PROTO_BIN_KEY_EEXISTS),
                        "Data exists for key.");
    assert_string_equal(proto_bin_errstr(PROTO_BIN_E2BIG), "Too large.");
    assert_string_equal(proto_bin_errstr(PROTO_BIN_DELTA_BADVAL),
                        "Non-numeric server-side value for incr or decr");
    assert_string_equal(proto_bin_errstr(PROTO_BIN_UNKNOWN_COMMAND),
                        "Unknown command");
    assert_string_equal(proto_bin_errstr(PROTO_BIN_SUCCESS), "");
}

static void
test_set_roundtrip(void **state)
{
    struct proto_bin_parser p;
    struct proto_bin_req req;
    char buf[4096];
    unsigned char ext[8];
    size_t n, used;

    (void)state;
    proto_bin_put32(ext, 0xdeadbeef);
    proto_bin_put32(ext + 4, 3600);
    n = pkt(buf, PROTO_BIN_SETQ, ext, 8, "key", "\r\nflush_all\r\n", 13);
    proto_bin_parser_init(&p, ITEM_MAX);
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_OK);
    assert_int_equal(used, n);
    assert_int_equal(req.opcode, PROTO_BIN_SETQ);
    assert_int_equal(req.cmd, PROTO_BIN_SET);
    assert_true(req.quiet);
    assert_int_equal(req.flags, 0xdeadbeef);
    assert_int_equal(req.exptime, 3600);
    assert_int_equal(req.klen, 3);
    assert_memory_equal(req.key, "key", 3);
    assert_int_equal(req.vlen, 13);
    assert_memory_equal(req.val, "\r\nflush_all\r\n", 13);
    assert_memory_equal(&req.opaque, buf + 12, 4);
}

static void
test_byte_at_a_time_and_pipelined(void **state)
{
    struct proto_bin_parser p;
    struct proto_bin_req req;
    char buf[8192];
    unsigned char ext[20];
    size_t n = 0, off = 0, used;
    int count = 0;

    (void)state;
    memset(ext, 0, sizeof(ext));
    proto_bin_put64(ext, 5);
    proto_bin_put64(ext + 8, 7);
    proto_bin_put32(ext + 16, 0xffffffff);
    n += pkt(buf + n, PROTO_BIN_GET, NULL, 0, "a", NULL, 0);
    n += pkt(buf + n, PROTO_BIN_INCREMENTQ, ext, 20, "num", NULL, 0);
    n += pkt(buf + n, PROTO_BIN_APPEND, NULL, 0, "a", "xyz", 3);
    n += pkt(buf + n, PROTO_BIN_NOOP, NULL, 0, NULL, NULL, 0);
    proto_bin_parser_init(&p, ITEM_MAX);
    /* one byte more at a time: NEED_MORE until each packet is whole */
    for (size_t have = 1; off < n && have <= n - off; have++) {
        enum proto_bin_result r = parse_one(&p, &req, buf + off, have, &used);
        if (r == PROTO_BIN_NEED_MORE) {
            assert_int_equal(used, 0);
            assert_true(p.wanted == 0 || p.wanted > have);
            continue;
        }
        assert_int_equal(r, PROTO_BIN_OK);
        assert_int_equal(used, have);
        if (count == 1) {
            assert_int_equal(req.cmd, PROTO_BIN_INCREMENT);
            assert_true(req.delta == 5 && req.initial == 7);
            assert_int_equal(req.exptime, 0xffffffffu);
        }
        off += used;
        have = 0;
        count++;
    }
    assert_int_equal(count, 4);
    /* all at once */
    off = 0;
    count = 0;
    while (off < n) {
        assert_int_equal(parse_one(&p, &req, buf + off, n - off, &used),
                         PROTO_BIN_OK);
        off += used;
        count++;
    }
    assert_int_equal(count, 4);
}

struct shape_case {
    const char *name;
    uint8_t op;
    uint8_t extlen;
    const char *key;
    size_t vlen;
    enum proto_bin_result want;
    uint16_t status;
};

/* memcached's rule per opcode: a wrong shape is EINVAL and a close. */
static const struct shape_case SHAPES[] = {
        {"get", PROTO_BIN_GET, 0, "k", 0, PROTO_BIN_OK, 0},
        {"get no key", PROTO_BIN_GET, 0, NULL, 0, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"get extras", PROTO_BIN_GET, 4, "k", 0, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"get value", PROTO_BIN_GETK, 0, "k", 2, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"set", PROTO_BIN_SET, 8, "k", 3, PROTO_BIN_OK, 0},
        {"set no extras", PROTO_BIN_SET, 0, "k", 3, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"add no key", PROTO_BIN_ADD, 8, NULL, 3, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"replaceq", PROTO_BIN_REPLACEQ, 8, "k", 0, PROTO_BIN_OK, 0},
        {"append", PROTO_BIN_APPENDQ, 0, "k", 1, PROTO_BIN_OK, 0},
        {"append extras", PROTO_BIN_PREPEND, 8, "k", 1, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"delete", PROTO_BIN_DELETEQ, 0, "k", 0, PROTO_BIN_OK, 0},
        {"delete value", PROTO_BIN_DELETE, 0, "k", 1, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"incr", PROTO_BIN_DECREMENT, 20, "k", 0, PROTO_BIN_OK, 0},
        {"incr short extras", PROTO_BIN_INCREMENT, 8, "k", 0, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"touch", PROTO_BIN_TOUCH, 4, "k", 0, PROTO_BIN_OK, 0},
        {"gatkq", PROTO_BIN_GATKQ, 4, "k", 0, PROTO_BIN_OK, 0},
        {"gat no extras", PROTO_BIN_GAT, 0, "k", 0, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"flush", PROTO_BIN_FLUSH, 0, NULL, 0, PROTO_BIN_OK, 0},
        {"flushq delay", PROTO_BIN_FLUSHQ, 4, NULL, 0, PROTO_BIN_OK, 0},
        {"flush bad extras", PROTO_BIN_FLUSH, 8, NULL, 0, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"noop", PROTO_BIN_NOOP, 0, NULL, 0, PROTO_BIN_OK, 0},
        {"noop with key", PROTO_BIN_NOOP, 0, "k", 0, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"version", PROTO_BIN_VERSION, 0, NULL, 0, PROTO_BIN_OK, 0},
        {"quitq", PROTO_BIN_QUITQ, 0, NULL, 0, PROTO_BIN_OK, 0},
        {"stat", PROTO_BIN_STAT, 0, NULL, 0, PROTO_BIN_OK, 0},
        {"stat group", PROTO_BIN_STAT, 0, "settings", 0, PROTO_BIN_OK, 0},
        {"stat extras", PROTO_BIN_STAT, 4, NULL, 0, PROTO_BIN_CLOSE,
         PROTO_BIN_EINVAL},
        {"verbosity", PROTO_BIN_VERBOSITY, 4, NULL, 0, PROTO_BIN_ERROR,
         PROTO_BIN_UNKNOWN_COMMAND},
        {"unknown", 0x42, 0, "k", 0, PROTO_BIN_ERROR,
         PROTO_BIN_UNKNOWN_COMMAND},
        {"sasl off list", PROTO_BIN_SASL_LIST_MECHS, 0, NULL, 0,
         PROTO_BIN_ERROR, PROTO_BIN_UNKNOWN_COMMAND},
        {"sasl off auth", PROTO_BIN_SASL_AUTH, 0, "PLAIN", 4, PROTO_BIN_ERROR,
         PROTO_BIN_UNKNOWN_COMMAND},
};

static void
test_shapes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(SHAPES) / sizeof(SHAPES[0]); i++) {
        const struct shape_case *c = &SHAPES[i];
        struct proto_bin_parser p;
        struct proto_bin_req req;
        char buf[4096];
        char ext[20] = {0};
        char val[16] = "0123456789abcde";
        size_t n, used;
        enum proto_bin_result r;

        n = pkt(buf, c->op, ext, c->extlen, c->key, val, c->vlen);
        proto_bin_parser_init(&p, ITEM_MAX);
        r = parse_one(&p, &req, buf, n, &used);
        if (r != c->want || (r != PROTO_BIN_OK && req.status != c->status)) {
            fail_msg("%s: result %d status 0x%x", c->name, r, req.status);
        }
        if (r == PROTO_BIN_ERROR) {
            /* the rest of the body is dropped as it comes */
            size_t rest = n - used;
            while (rest > 0) {
                size_t u;
                assert_int_equal(parse_one(&p, &req, buf + n - rest, rest, &u),
                                 PROTO_BIN_SWALLOW);
                rest -= u;
            }
        }
    }
}

static void
test_bad_magic_and_lengths(void **state)
{
    struct proto_bin_parser p;
    struct proto_bin_req req;
    char buf[64];
    size_t n, used;

    (void)state;
    proto_bin_parser_init(&p, ITEM_MAX);
    n = pkt(buf, PROTO_BIN_NOOP, NULL, 0, NULL, NULL, 0);
    buf[0] = 0x81; /* a response magic is not a request */
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_CLOSE);
    assert_int_equal(req.status, PROTO_BIN_SUCCESS);

    /* key longer than the body: unknown command, then close */
    n = pkt(buf, PROTO_BIN_GET, NULL, 0, "abc", NULL, 0);
    proto_bin_put32(buf + 8, 1);
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_CLOSE);
    assert_int_equal(req.status, PROTO_BIN_UNKNOWN_COMMAND);

    /* a key over 250 bytes: invalid arguments, then close */
    memset(buf, 0, sizeof(buf));
    buf[0] = (char)0x80;
    proto_bin_put16(buf + 2, 251);
    proto_bin_put32(buf + 8, 251);
    assert_int_equal(parse_one(&p, &req, buf, 24, &used), PROTO_BIN_NEED_MORE);
    assert_int_equal(p.wanted, 24 + 251);
    {
        char big[24 + 251];
        memcpy(big, buf, 24);
        memset(big + 24, 'k', 251);
        assert_int_equal(parse_one(&p, &req, big, sizeof(big), &used),
                         PROTO_BIN_CLOSE);
        assert_int_equal(req.status, PROTO_BIN_EINVAL);
    }
}

static void
test_too_large(void **state)
{
    struct proto_bin_parser p;
    struct proto_bin_req req;
    static char buf[4096];
    char ext[8] = {0};
    static char val[ITEM_MAX + 1];
    size_t n, used, off;

    (void)state;
    memset(val, 'v', sizeof(val));
    proto_bin_parser_init(&p, ITEM_MAX);
    n = pkt(buf, PROTO_BIN_SETQ, ext, 8, "k", val, sizeof(val));
    /* decided from the header, before the value arrives */
    assert_int_equal(parse_one(&p, &req, buf, 24 + 8 + 1, &used),
                     PROTO_BIN_ERROR);
    assert_int_equal(req.status, PROTO_BIN_E2BIG);
    assert_true(req.unlink);
    assert_int_equal(used, 24 + 8 + 1);
    off = used;
    while (off < n) {
        assert_int_equal(parse_one(&p, &req, buf + off, n - off, &used),
                         PROTO_BIN_SWALLOW);
        off += used;
    }
    assert_int_equal(p.swallow, 0);
    /* append: E2BIG without unlink */
    n = pkt(buf, PROTO_BIN_APPEND, NULL, 0, "k", val, sizeof(val));
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_ERROR);
    assert_false(req.unlink);
    /* exactly the limit is fine */
    p.swallow = 0;
    n = pkt(buf, PROTO_BIN_SET, ext, 8, "k", val, ITEM_MAX);
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_OK);
}

static void
test_sasl_gate(void **state)
{
    struct proto_bin_parser p;
    struct proto_bin_req req;
    char buf[256];
    size_t n, used;

    (void)state;
    proto_bin_parser_init(&p, ITEM_MAX);
    p.sasl = true;
    p.auth_needed = true;
    n = pkt(buf, PROTO_BIN_GET, NULL, 0, "k", NULL, 0);
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_CLOSE);
    assert_int_equal(req.status, PROTO_BIN_AUTH_ERROR);
    n = pkt(buf, PROTO_BIN_VERSION, NULL, 0, NULL, NULL, 0);
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_OK);
    n = pkt(buf, PROTO_BIN_SASL_LIST_MECHS, NULL, 0, NULL, NULL, 0);
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_OK);
    n = pkt(buf, PROTO_BIN_SASL_AUTH, NULL, 0, "PLAIN", "\0u\0p", 4);
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_OK);
    assert_int_equal(req.vlen, 4);
    assert_memory_equal(req.val, "\0u\0p", 4);
    /* a mechanism name over 32 bytes: invalid, body swallowed, kept open */
    n = pkt(buf, PROTO_BIN_SASL_AUTH, NULL, 0,
            "A123456789012345678901234567890123", "xx", 2);
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_ERROR);
    assert_int_equal(req.status, PROTO_BIN_EINVAL);
    assert_int_equal(p.swallow, 2);
    p.auth_needed = false;
    p.swallow = 0;
    n = pkt(buf, PROTO_BIN_GET, NULL, 0, "k", NULL, 0);
    assert_int_equal(parse_one(&p, &req, buf, n, &used), PROTO_BIN_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_header_helpers),
            cmocka_unit_test(test_set_roundtrip),
            cmocka_unit_test(test_byte_at_a_time_and_pipelined),
            cmocka_unit_test(test_shapes),
            cmocka_unit_test(test_bad_magic_and_lengths),
            cmocka_unit_test(test_too_large),
            cmocka_unit_test(test_sasl_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
