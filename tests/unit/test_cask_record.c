/* test_cask_record.c - the record codec: round trip, and every flipped byte
 * of a record is caught by its checksum or header check.
 */
#include "storage/cask_record.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void
test_round_trip(void **state)
{
    (void)state;
    char buf[256];
    struct cask_rec r = {
            .seq = 77,
            .cas = 42,
            .exp_abs_s = 1234567890123,
            .flags = 0xdeadbeef,
            .klen = 5,
            .type = CASK_REC_PUT,
    };
    cask_rec_encode(buf, &r, "hello", "wor", 3, "ld\0!", 4);
    size_t len = cask_rec_len(5, 7);
    assert_true(cask_rec_verify(buf, len));
    struct cask_rec d;
    assert_true(cask_rec_decode(buf, 1024, &d));
    assert_int_equal(d.seq, 77);
    assert_int_equal(d.cas, 42);
    assert_int_equal(d.exp_abs_s, 1234567890123);
    assert_int_equal(d.flags, 0xdeadbeef);
    assert_int_equal(d.klen, 5);
    assert_int_equal(d.vlen, 7);
    assert_int_equal(d.type, CASK_REC_PUT);
    assert_memory_equal(buf + CASK_REC_HDR, "hello", 5);
    assert_memory_equal(buf + CASK_REC_HDR + 5, "world\0!", 7);
    /* vlen above the limit is refused at decode */
    assert_false(cask_rec_decode(buf, 6, &d));

    cask_rec_restamp(buf, len, 99, 5);
    assert_true(cask_rec_verify(buf, len));
    assert_true(cask_rec_decode(buf, 1024, &d));
    assert_int_equal(d.seq, 99);
    assert_int_equal(d.exp_abs_s, 5);
    assert_int_equal(d.cas, 42);
}

static void
test_tombstone(void **state)
{
    (void)state;
    char buf[64];
    struct cask_rec r = {.seq = 1, .cas = 1, .klen = 1, .type = CASK_REC_TOMB};
    cask_rec_encode(buf, &r, "k", NULL, 0, NULL, 0);
    assert_true(cask_rec_verify(buf, cask_rec_len(1, 0)));
    struct cask_rec d;
    assert_true(cask_rec_decode(buf, 0, &d));
    assert_int_equal(d.type, CASK_REC_TOMB);
}

static void
test_every_flip_detected(void **state)
{
    (void)state;
    char buf[256];
    struct cask_rec r = {
            .seq = 3,
            .cas = 3,
            .exp_abs_s = 0,
            .flags = 7,
            .klen = 8,
            .type = CASK_REC_PUT,
    };
    cask_rec_encode(buf, &r, "some-key", "a value of 20 bytes!", 20, NULL, 0);
    size_t len = cask_rec_len(8, 20);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (char)(1 << bit);
            struct cask_rec d;
            bool hdr_ok = cask_rec_decode(buf, 1 << 20, &d);
            bool ok = hdr_ok && cask_rec_len(d.klen, d.vlen) == len &&
                      cask_rec_verify(buf, len);
            assert_false(ok);
            buf[i] ^= (char)(1 << bit);
        }
    }
    assert_true(cask_rec_verify(buf, len));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_tombstone),
            cmocka_unit_test(test_every_flip_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
