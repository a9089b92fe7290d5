/* test_cmd_bin.c - cmocka tests for server/cmd_bin.c over the fake store
 * (tests/golden/fake_cask.c) with an in-memory sink: response packets byte
 * by byte (status, extras, key, value, cas, opaque echoed), quiet variants,
 * counters, store failures mapped to a status, the stat conversion, a value
 * holding text commands that must never run, every packet fed one byte at
 * a time, and SASL PLAIN against a password file. No sockets.
 */
#include "server/cmd_bin.h"

#include "protocol/proto_bin.h"
#include "server/cmd.h"
#include "storage/cask.h"
#include "tests/golden/fake_cask.h"
#include "tests/unit/cmd_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

struct fixture {
    struct cmd_fixture fx;
    char pwdb[64];
};

/* One parsed response packet. */
struct rsp {
    uint8_t opcode;
    uint16_t status;
    uint8_t extlen;
    const char *ext;
    const char *key;
    size_t klen;
    const char *body; /* after extras and key */
    size_t blen;
    uint32_t opaque;
    uint64_t cas;
};

static void
stats_fn(void *arg, const char *args, size_t len, const struct cmd_sink *out)
{
    (void)arg;
    if (len == 0) {
        out->bytes(out->arg, "STAT pid 42\r\nSTAT version 1.6\r\nEND\r\n", 37);
    } else if (len == 5 && memcmp(args, "reset", 5) == 0) {
        out->bytes(out->arg, "RESET\r\n", 7);
    } else {
        out->bytes(out->arg, "ERROR\r\n", 7);
    }
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    cmd_fixture_init(&f->fx);
    f->fx.env.stats = stats_fn;
    f->fx.env.stats_arg = f;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    cmd_fixture_deinit(&f->fx);
    if (f->pwdb[0] != '\0') {
        unlink(f->pwdb);
    }
    free(f);
    return 0;
}

/* Build a request and run every packet in it; returns the last status. */
static enum cmd_status
run_bytes(struct fixture *f, const char *buf, size_t len)
{
    enum cmd_status st = CMD_DONE;
    size_t off = 0;

    while (off < len) {
        size_t used = 0;

        st = cmd_bin_execute(&f->fx.cc, &f->fx.bin, buf + off, len - off,
                             &used);
        assert_true(used <= len - off);
        if (st == CMD_NEED_MORE || st == CMD_CLOSE) {
            break;
        }
        assert_true(used > 0);
        off += used;
    }
    return st;
}

static enum cmd_status
req(struct fixture *f, uint8_t op, const void *ext, uint8_t extlen,
    const char *key, const void *val, size_t vlen, uint64_t cas)
{
    char buf[8192];
    size_t n = proto_bin_fmt_req(buf, sizeof(buf), op, ext, extlen, key,
                                 (uint16_t)(key ? strlen(key) : 0), val,
                                 (uint32_t)vlen, 0xcafef00d, cas);

    assert_true(n > 0);
    return run_bytes(f, buf, n);
}

static enum cmd_status
set(struct fixture *f, uint8_t op, const char *key, const char *val,
    uint32_t flags, uint32_t exptime, uint64_t cas)
{
    unsigned char ext[8];

    proto_bin_put32(ext, flags);
    proto_bin_put32(ext + 4, exptime);
    return req(f, op, ext, 8, key, val, strlen(val), cas);
}

/* Take the next response packet from the output. */
static bool
next_rsp(struct fixture *f, size_t *pos, struct rsp *r)
{
    const unsigned char *h = (const unsigned char *)f->fx.out + *pos;
    uint32_t body;

    if (*pos == f->fx.n) {
        return false;
    }
    assert_true(f->fx.n - *pos >= PROTO_BIN_HDR_LEN);
    assert_int_equal(h[0], PROTO_BIN_RES);
    assert_int_equal(h[5], 0);
    body = proto_bin_get32(h + 8);
    assert_true(f->fx.n - *pos >= PROTO_BIN_HDR_LEN + body);
    r->opcode = h[1];
    r->klen = proto_bin_get16(h + 2);
    r->extlen = h[4];
    r->status = proto_bin_get16(h + 6);
    memcpy(&r->opaque, h + 12, 4);
    r->cas = proto_bin_get64(h + 16);
    r->ext = (const char *)h + PROTO_BIN_HDR_LEN;
    r->key = r->ext + r->extlen;
    r->body = r->key + r->klen;
    assert_true(r->extlen + r->klen <= body);
    r->blen = body - r->extlen - r->klen;
    *pos += PROTO_BIN_HDR_LEN + body;
    return true;
}

/* Exactly one response since the output was last cleared. */
static struct rsp
one(struct fixture *f)
{
    struct rsp r;
    size_t pos = 0;

    assert_true(next_rsp(f, &pos, &r));
    assert_int_equal(pos, f->fx.n);
    assert_int_equal(r.opaque, 0xcafef00d); /* echoed as sent */
    f->fx.n = 0;
    return r;
}

static void
expect_error(struct fixture *f, uint8_t op, uint16_t status, const char *text)
{
    struct rsp r = one(f);

    assert_int_equal(r.opcode, op);
    assert_int_equal(r.status, status);
    assert_int_equal(r.cas, 0);
    assert_int_equal(r.blen, strlen(text));
    assert_memory_equal(r.body, text, r.blen);
}

static void
test_set_get_family(void **state)
{
    struct fixture *f = *state;
    struct rsp r;
    uint64_t cas;

    assert_int_equal(set(f, PROTO_BIN_SET, "k", "hello", 0xabcd, 0, 0),
                     CMD_DONE);
    r = one(f);
    assert_int_equal(r.status, 0);
    assert_true(r.cas != 0);
    assert_int_equal(r.blen + r.extlen + r.klen, 0);
    cas = r.cas;

    req(f, PROTO_BIN_GET, NULL, 0, "k", NULL, 0, 0);
    r = one(f);
    assert_int_equal(r.opcode, PROTO_BIN_GET);
    assert_int_equal(r.extlen, 4);
    assert_int_equal(proto_bin_get32(r.ext), 0xabcd);
    assert_int_equal(r.klen, 0);
    assert_int_equal(r.blen, 5);
    assert_memory_equal(r.body, "hello", 5);
    assert_true(r.cas == cas);

    req(f, PROTO_BIN_GETKQ, NULL, 0, "k", NULL, 0, 0);
    r = one(f);
    assert_int_equal(r.opcode, PROTO_BIN_GETKQ);
    assert_int_equal(r.klen, 1);
    assert_memory_equal(r.key, "k", 1);
    assert_memory_equal(r.body, "hello", 5);

    /* misses: GET says so, GETK carries the key, quiet ones are silent */
    req(f, PROTO_BIN_GET, NULL, 0, "nope", NULL, 0, 0);
    expect_error(f, PROTO_BIN_GET, PROTO_BIN_KEY_ENOENT, "Not found");
    req(f, PROTO_BIN_GETK, NULL, 0, "nope", NULL, 0, 0);
    r = one(f);
    assert_int_equal(r.status, PROTO_BIN_KEY_ENOENT);
    assert_int_equal(r.klen, 4);
    assert_int_equal(r.blen, 0);
    req(f, PROTO_BIN_GETQ, NULL, 0, "nope", NULL, 0, 0);
    req(f, PROTO_BIN_GETKQ, NULL, 0, "nope", NULL, 0, 0);
    assert_int_equal(f->fx.n, 0);
    assert_int_equal(f->fx.ctr.get_hits, 2);
    assert_int_equal(f->fx.ctr.get_misses, 4);
    assert_int_equal(f->fx.ctr.cmd_get, 6);
}

static void
test_store_modes_and_cas(void **state)
{
    struct fixture *f = *state;
    struct rsp r;
    uint64_t cas;

    set(f, PROTO_BIN_ADD, "a", "1", 0, 0, 0);
    cas = one(f).cas;
    set(f, PROTO_BIN_ADD, "a", "2", 0, 0, 0);
    expect_error(f, PROTO_BIN_ADD, PROTO_BIN_KEY_EEXISTS,
                 "Data exists for key.");
    set(f, PROTO_BIN_ADDQ, "a", "2", 0, 0, 0);
    expect_error(f, PROTO_BIN_ADDQ, PROTO_BIN_KEY_EEXISTS,
                 "Data exists for key.");
    set(f, PROTO_BIN_REPLACE, "b", "2", 0, 0, 0);
    expect_error(f, PROTO_BIN_REPLACE, PROTO_BIN_KEY_ENOENT, "Not found");
    set(f, PROTO_BIN_REPLACEQ, "a", "3", 0, 0, 0);
    assert_int_equal(f->fx.n, 0);
    /* a cas that no longer matches, then a cas on a missing key */
    set(f, PROTO_BIN_SET, "a", "4", 0, 0, cas);
    expect_error(f, PROTO_BIN_SET, PROTO_BIN_KEY_EEXISTS,
                 "Data exists for key.");
    set(f, PROTO_BIN_SET, "zz", "4", 0, 0, 77);
    expect_error(f, PROTO_BIN_SET, PROTO_BIN_KEY_ENOENT, "Not found");
    /* append and prepend; a missing key is "Not stored." */
    req(f, PROTO_BIN_APPEND, NULL, 0, "zz", "x", 1, 0);
    expect_error(f, PROTO_BIN_APPEND, PROTO_BIN_NOT_STORED, "Not stored.");
    req(f, PROTO_BIN_APPENDQ, NULL, 0, "a", ">", 1, 0);
    req(f, PROTO_BIN_PREPENDQ, NULL, 0, "a", "<", 1, 0);
    assert_int_equal(f->fx.n, 0);
    req(f, PROTO_BIN_GET, NULL, 0, "a", NULL, 0, 0);
    r = one(f);
    assert_int_equal(r.blen, 3);
    assert_memory_equal(r.body, "<3>", 3);
    /* delete with the right cas, then a miss */
    req(f, PROTO_BIN_DELETE, NULL, 0, "a", NULL, 0, 1);
    expect_error(f, PROTO_BIN_DELETE, PROTO_BIN_KEY_EEXISTS,
                 "Data exists for key.");
    req(f, PROTO_BIN_DELETE, NULL, 0, "a", NULL, 0, r.cas);
    assert_int_equal(one(f).status, 0);
    req(f, PROTO_BIN_DELETEQ, NULL, 0, "a", NULL, 0, 0);
    expect_error(f, PROTO_BIN_DELETEQ, PROTO_BIN_KEY_ENOENT, "Not found");
}

static void
test_arith(void **state)
{
    struct fixture *f = *state;
    unsigned char ext[20];
    struct rsp r;

    proto_bin_put64(ext, 5);
    proto_bin_put64(ext + 8, 100);
    proto_bin_put32(ext + 16, 0xffffffff);
    req(f, PROTO_BIN_INCREMENT, ext, 20, "n", NULL, 0, 0);
    expect_error(f, PROTO_BIN_INCREMENT, PROTO_BIN_KEY_ENOENT, "Not found");
    proto_bin_put32(ext + 16, 0);
    req(f, PROTO_BIN_INCREMENT, ext, 20, "n", NULL, 0, 0);
    r = one(f);
    assert_int_equal(r.blen, 8);
    assert_int_equal(proto_bin_get64(r.body), 100);
    assert_true(r.cas != 0);
    req(f, PROTO_BIN_DECREMENTQ, ext, 20, "n", NULL, 0, 0);
    assert_int_equal(f->fx.n, 0);
    req(f, PROTO_BIN_DECREMENT, ext, 20, "n", NULL, 0, 0);
    assert_int_equal(proto_bin_get64(one(f).body), 90);
    set(f, PROTO_BIN_SET, "t", "text", 0, 0, 0);
    f->fx.n = 0;
    req(f, PROTO_BIN_INCREMENTQ, ext, 20, "t", NULL, 0, 0);
    expect_error(f, PROTO_BIN_INCREMENTQ, PROTO_BIN_DELTA_BADVAL,
                 "Non-numeric server-side value for incr or decr");
}

/* One packet whose write the store says would wait for a roll-over
 * (CASK_EBLOCKED, the connection parks its writes): CMD_PARK, nothing
 * consumed, answered or counted; then the same bytes run as new. */
static void
parks_once(struct fixture *f, uint8_t op, const void *ext, uint8_t extlen,
           const char *key, const char *val)
{
    char buf[512];
    size_t n = proto_bin_fmt_req(
            buf, sizeof(buf), op, ext, extlen, key, (uint16_t)strlen(key), val,
            (uint32_t)(val ? strlen(val) : 0), 0xcafef00d, 0);
    struct cmd_counters before = f->fx.ctr;
    size_t used = 99;

    f->fx.n = 0;
    fake_cask_block_writes = 1;
    assert_int_equal(cmd_bin_execute(&f->fx.cc, &f->fx.bin, buf, n, &used),
                     CMD_PARK);
    assert_int_equal(used, 0);
    assert_true(f->fx.cc.write_parked);
    assert_int_equal(f->fx.n, 0);
    assert_memory_equal(&before, &f->fx.ctr, sizeof(before));
    assert_int_equal(run_bytes(f, buf, n), CMD_DONE);
}

static void
test_write_parks(void **state)
{
    struct fixture *f = *state;
    unsigned char ext[20];

    f->fx.cc.park_writes = true;
    memset(ext, 0, sizeof(ext));
    parks_once(f, PROTO_BIN_SET, ext, 8, "k", "v");
    assert_int_equal(one(f).status, 0);
    assert_int_equal(f->fx.ctr.cmd_set, 1);
    parks_once(f, PROTO_BIN_SETQ, ext, 8, "q", "w");
    assert_int_equal(f->fx.n, 0);
    parks_once(f, PROTO_BIN_APPEND, NULL, 0, "k", "x");
    assert_int_equal(one(f).status, 0);
    proto_bin_put64(ext, 5);
    proto_bin_put64(ext + 8, 100);
    parks_once(f, PROTO_BIN_INCREMENT, ext, 20, "n", NULL);
    assert_int_equal(proto_bin_get64(one(f).body), 100);
    parks_once(f, PROTO_BIN_DELETEQ, NULL, 0, "q", NULL);
    assert_int_equal(f->fx.n, 0);
    assert_int_equal(f->fx.ctr.delete_hits, 1);
    proto_bin_put32(ext, 100);
    parks_once(f, PROTO_BIN_TOUCH, ext, 4, "k", NULL);
    assert_int_equal(one(f).status, 0);
    parks_once(f, PROTO_BIN_GATK, ext, 4, "k", NULL);
    assert_memory_equal(one(f).body, "vx", 2);
    assert_int_equal(f->fx.ctr.cmd_touch, 2);
    req(f, PROTO_BIN_GET, NULL, 0, "k", NULL, 0, 0);
    assert_memory_equal(one(f).body, "vx", 2);
    assert_int_equal(fake_cask_block_writes, 0);
}

static void
test_touch_gat_flush(void **state)
{
    struct fixture *f = *state;
    unsigned char exp[4];
    struct rsp r;

    set(f, PROTO_BIN_SET, "k", "v", 7, 0, 0);
    f->fx.n = 0;
    proto_bin_put32(exp, 10);
    req(f, PROTO_BIN_TOUCH, exp, 4, "k", NULL, 0, 0);
    r = one(f);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.extlen, 4);
    assert_int_equal(r.blen, 0);
    req(f, PROTO_BIN_GATK, exp, 4, "k", NULL, 0, 0);
    r = one(f);
    assert_memory_equal(r.key, "k", 1);
    assert_memory_equal(r.body, "v", 1);
    f->fx.now += 11;
    req(f, PROTO_BIN_GATQ, exp, 4, "k", NULL, 0, 0);
    assert_int_equal(f->fx.n, 0);
    req(f, PROTO_BIN_TOUCH, exp, 4, "k", NULL, 0, 0);
    expect_error(f, PROTO_BIN_TOUCH, PROTO_BIN_KEY_ENOENT, "Not found");

    set(f, PROTO_BIN_SET, "k", "v", 0, 0, 0);
    f->fx.n = 0;
    proto_bin_put32(exp, 5);
    req(f, PROTO_BIN_FLUSHQ, exp, 4, NULL, NULL, 0, 0);
    assert_int_equal(f->fx.n, 0);
    req(f, PROTO_BIN_GET, NULL, 0, "k", NULL, 0, 0);
    assert_int_equal(one(f).status, 0);
    f->fx.now += 6;
    req(f, PROTO_BIN_GET, NULL, 0, "k", NULL, 0, 0);
    assert_int_equal(one(f).status, PROTO_BIN_KEY_ENOENT);
    assert_int_equal(f->fx.ctr.cmd_flush, 1);
}

static void
test_misc_and_stat(void **state)
{
    struct fixture *f = *state;
    struct rsp r;
    size_t pos = 0;

    req(f, PROTO_BIN_VERSION, NULL, 0, NULL, NULL, 0, 0);
    r = one(f);
    assert_int_equal(r.blen, 5);
    assert_memory_equal(r.body, "9.9.9", 5);
    req(f, PROTO_BIN_NOOP, NULL, 0, NULL, NULL, 0, 0);
    assert_int_equal(one(f).status, 0);
    req(f, PROTO_BIN_STAT, NULL, 0, NULL, NULL, 0, 0);
    assert_true(next_rsp(f, &pos, &r));
    assert_int_equal(r.klen, 3);
    assert_memory_equal(r.key, "pid", 3);
    assert_memory_equal(r.body, "42", 2);
    assert_true(next_rsp(f, &pos, &r));
    assert_memory_equal(r.key, "version", 7);
    assert_true(next_rsp(f, &pos, &r));
    assert_int_equal(r.klen + r.blen, 0);
    assert_false(next_rsp(f, &pos, &r));
    f->fx.n = 0;
    req(f, PROTO_BIN_STAT, NULL, 0, "reset", NULL, 0, 0);
    r = one(f);
    assert_int_equal(r.klen + r.blen, 0);
    req(f, PROTO_BIN_STAT, NULL, 0, "bogus", NULL, 0, 0);
    expect_error(f, PROTO_BIN_STAT, PROTO_BIN_KEY_ENOENT, "Not found");
    assert_int_equal(req(f, PROTO_BIN_QUITQ, NULL, 0, NULL, NULL, 0, 0),
                     CMD_CLOSE);
    assert_int_equal(f->fx.n, 0);
    assert_int_equal(req(f, PROTO_BIN_QUIT, NULL, 0, NULL, NULL, 0, 0),
                     CMD_CLOSE);
    assert_int_equal(one(f).status, 0);
}

static void
test_store_failure(void **state)
{
    struct fixture *f = *state;
    struct rsp r;

    fake_cask_fail_rc = CASK_EFAILED;
    set(f, PROTO_BIN_SETQ, "k", "v", 0, 0, 0);
    r = one(f);
    assert_int_equal(r.status, PROTO_BIN_EINTERNAL);
    assert_true(r.blen > 0);
    /* a damaged record is a miss, as in the text get */
    fake_cask_fail_rc = CASK_ECORRUPT;
    req(f, PROTO_BIN_GET, NULL, 0, "k", NULL, 0, 0);
    expect_error(f, PROTO_BIN_GET, PROTO_BIN_KEY_ENOENT, "Not found");
    fake_cask_fail_rc = CASK_ECORRUPT;
    req(f, PROTO_BIN_GETQ, NULL, 0, "k", NULL, 0, 0);
    assert_int_equal(f->fx.n, 0);
    assert_int_equal(f->fx.ctr.get_corrupt, 2);
    fake_cask_fail_rc = CASK_EFAILED;
    req(f, PROTO_BIN_DELETE, NULL, 0, "k", NULL, 0, 0);
    assert_int_equal(one(f).status, PROTO_BIN_EINTERNAL);
}

/* A value holding text commands is data, never a command. */
static void
test_text_inside_value(void **state)
{
    struct fixture *f = *state;
    static const char evil[] = "\r\nflush_all\r\ndelete keep\r\nquit\r\n";
    struct rsp r;

    set(f, PROTO_BIN_SET, "keep", "safe", 0, 0, 0);
    set(f, PROTO_BIN_SET, "evil", evil, 0, 0, 0);
    f->fx.n = 0;
    req(f, PROTO_BIN_GET, NULL, 0, "keep", NULL, 0, 0);
    r = one(f);
    assert_memory_equal(r.body, "safe", 4);
    req(f, PROTO_BIN_GET, NULL, 0, "evil", NULL, 0, 0);
    r = one(f);
    assert_int_equal(r.blen, sizeof(evil) - 1);
    assert_int_equal(f->fx.ctr.cmd_flush, 0);
}

/* Every packet fed one byte at a time gives the same replies. */
static void
test_trickle(void **state)
{
    struct fixture *f = *state;
    char buf[4096];
    char whole[4096];
    size_t n = 0, wn, off = 0, have = 0;
    unsigned char ext[8] = {0};

    n += proto_bin_fmt_req(buf + n, sizeof(buf) - n, PROTO_BIN_SET, ext, 8, "k",
                           1, "value", 5, 1, 0);
    n += proto_bin_fmt_req(buf + n, sizeof(buf) - n, PROTO_BIN_GETK, NULL, 0,
                           "k", 1, NULL, 0, 2, 0);
    n += proto_bin_fmt_req(buf + n, sizeof(buf) - n, PROTO_BIN_GETQ, NULL, 0,
                           "x", 1, NULL, 0, 3, 0);
    n += proto_bin_fmt_req(buf + n, sizeof(buf) - n, PROTO_BIN_NOOP, NULL, 0,
                           NULL, 0, NULL, 0, 4, 0);
    run_bytes(f, buf, n);
    wn = f->fx.n;
    memcpy(whole, f->fx.out, wn);
    f->fx.n = 0;
    while (off < n) {
        size_t used = 0;
        enum cmd_status st =
                cmd_bin_execute(&f->fx.cc, &f->fx.bin, buf + off, have, &used);

        if (st == CMD_NEED_MORE) {
            assert_int_equal(used, 0);
            have++;
            assert_true(off + have <= n);
            continue;
        }
        assert_int_equal(st, CMD_DONE);
        off += used;
        have -= used;
    }
    /* cas values differ between the two runs; compare everything else */
    assert_int_equal(f->fx.n, wn);
    for (size_t pos = 0, i = 0; pos < wn; i++) {
        uint32_t body = proto_bin_get32(whole + pos + 8);
        assert_memory_equal(f->fx.out + pos, whole + pos, 16);
        assert_memory_equal(f->fx.out + pos + 24, whole + pos + 24, body);
        pos += 24 + body;
    }
}

static void
test_sasl(void **state)
{
    struct fixture *f = *state;
    FILE *pw;
    int fd;

    strcpy(f->pwdb, "/tmp/bc-pwdb.XXXXXX");
    fd = mkstemp(f->pwdb);
    assert_true(fd >= 0);
    pw = fdopen(fd, "w");
    assert_non_null(pw);
    fputs("alice:secret\nbob:pw:more\n", pw);
    fclose(pw);
    cmd_bin_init(&f->fx.bin, &f->fx.cc, f->pwdb);

    assert_int_equal(req(f, PROTO_BIN_GET, NULL, 0, "k", NULL, 0, 0),
                     CMD_CLOSE);
    expect_error(f, PROTO_BIN_GET, PROTO_BIN_AUTH_ERROR, "Auth failure.");
    req(f, PROTO_BIN_SASL_LIST_MECHS, NULL, 0, NULL, NULL, 0, 0);
    assert_memory_equal(one(f).body, "PLAIN", 5);
    req(f, PROTO_BIN_SASL_AUTH, NULL, 0, "PLAIN", "\0alice\0wrong", 12, 0);
    expect_error(f, PROTO_BIN_SASL_AUTH, PROTO_BIN_AUTH_ERROR, "Auth failure.");
    req(f, PROTO_BIN_SASL_AUTH, NULL, 0, "PLAIN", "\0alice\0secre", 12, 0);
    expect_error(f, PROTO_BIN_SASL_AUTH, PROTO_BIN_AUTH_ERROR, "Auth failure.");
    req(f, PROTO_BIN_SASL_AUTH, NULL, 0, "PLAIN", "eve\0alice\0secret", 16, 0);
    expect_error(f, PROTO_BIN_SASL_AUTH, PROTO_BIN_AUTH_ERROR, "Auth failure.");
    req(f, PROTO_BIN_SASL_STEP, NULL, 0, "PLAIN", "\0alice\0secret", 13, 0);
    expect_error(f, PROTO_BIN_SASL_STEP, PROTO_BIN_AUTH_ERROR, "Auth failure.");
    assert_false(f->fx.bin.authenticated);
    assert_int_equal(f->fx.ctr.auth_cmds, 4);
    assert_int_equal(f->fx.ctr.auth_errors, 4);
    req(f, PROTO_BIN_SASL_AUTH, NULL, 0, "PLAIN", "\0bob\0pw", 7, 0);
    assert_memory_equal(one(f).body, "Authenticated", 13);
    assert_int_equal(req(f, PROTO_BIN_GET, NULL, 0, "k", NULL, 0, 0), CMD_DONE);
    expect_error(f, PROTO_BIN_GET, PROTO_BIN_KEY_ENOENT, "Not found");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_set_get_family, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_store_modes_and_cas, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_arith, setup, teardown),
            cmocka_unit_test_setup_teardown(test_write_parks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_touch_gat_flush, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_misc_and_stat, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_store_failure, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_text_inside_value, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_trickle, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sasl, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
