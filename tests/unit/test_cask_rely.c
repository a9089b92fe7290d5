/* test_cask_rely.c - under --sync=always an answer that writes nothing but
 * states a fact (NOT_STORED from add, EXISTS from cas, NOT_FOUND from a
 * delete or touch) waits for the commit of the records it rests on when
 * some are not committed yet, and fails when that commit fails (the
 * record may be undone: the fact never was). Reads and answers resting on
 * committed records wait for nothing. Faults and delays through the
 * cask_io seam on the journal's fdatasync.
 */
#include "test_cask_seam.h"
#include "test_cask_util.h"

#include "storage/cask_io.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

static atomic_int delay_ms; /* added to every journal fdatasync */
static atomic_int fail;     /* journal fdatasyncs fail with EIO */

static int
journal_fdatasync(int fd)
{
    if (tc_fd_is_journal(fd)) {
        int ms = atomic_load(&delay_ms);
        if (ms > 0) {
            struct timespec ts = {.tv_sec = ms / 1000,
                                  .tv_nsec = (long)(ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (atomic_load(&fail)) {
            errno = EIO;
            return -1;
        }
    }
    return cask_io_default()->fdatasync(fd);
}

static int
setup(void **state)
{
    struct cask_io_ops ops = *cask_io_default();
    ops.fdatasync = journal_fdatasync;
    cask_io_set(&ops);
    atomic_store(&delay_ms, 0);
    atomic_store(&fail, 0);
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tc_mkdtemp();
    tc_options(&f->o);
    f->o.shards = 1;
    f->o.sync = CASK_SYNC_ALWAYS;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    /* the first write reserves cas numbers: out of the timed part */
    assert_int_equal(tc_set(f->c, "warm", "up"), CASK_OK);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    atomic_store(&fail, 0);
    atomic_store(&delay_ms, 0);
    int rc = tc_fx_teardown(state);
    cask_io_set(NULL);
    return rc;
}

/* A set whose commit is pending: its ticket. */
static void
set_deferred(struct cask *c, const char *k, const char *v,
             struct cask_ticket *t)
{
    assert_int_equal(tc_set_deferred(c, k, v, t), CASK_OK);
    assert_true(t->epoch != 0);
}

static void
test_waits_for_what_it_rests_on(void **state)
{
    struct fx *f = *state;
    struct cask_ticket ts, ta, td, tc;
    int rc;

    atomic_store(&delay_ms, 300);
    set_deferred(f->c, "k", "v1", &ts);
    /* add: NOT_STORED at once, but its answer waits for the set's commit */
    memset(&ta, 0, sizeof(ta));
    cask_defer(&ta);
    rc = cask_store(f->c, CASK_ADD, "k", 1, "v2", 2, 0, 0, 0, NULL);
    cask_defer(NULL);
    assert_int_equal(rc, CASK_ENOTSTORED);
    assert_true(ta.epoch != 0);
    assert_false(cask_ticket_done(f->c, &ta, &rc));
    /* cas with a wrong cas: EXISTS, waits too */
    memset(&tc, 0, sizeof(tc));
    cask_defer(&tc);
    rc = cask_store(f->c, CASK_SET, "k", 1, "v3", 2, 0, 0, 12345, NULL);
    cask_defer(NULL);
    assert_int_equal(rc, CASK_EEXISTS);
    assert_true(tc.epoch != 0);
    assert_int_equal(tc_wait_ticket(f->c, &ts, 10000), CASK_OK);
    assert_int_equal(tc_wait_ticket(f->c, &ta, 10000), CASK_OK);
    assert_int_equal(tc_wait_ticket(f->c, &tc, 10000), CASK_OK);

    /* a delete, then a delete of the same key: NOT_FOUND waits for the
     * first one's commit */
    memset(&td, 0, sizeof(td));
    cask_defer(&td);
    assert_int_equal(cask_delete(f->c, "k", 1, 0), CASK_OK);
    cask_defer(NULL);
    struct cask_ticket tn = {0};
    cask_defer(&tn);
    assert_int_equal(cask_delete(f->c, "k", 1, 0), CASK_ENOTFOUND);
    cask_defer(NULL);
    assert_true(tn.epoch != 0);
    assert_int_equal(tc_wait_ticket(f->c, &td, 10000), CASK_OK);
    assert_int_equal(tc_wait_ticket(f->c, &tn, 10000), CASK_OK);

    /* everything committed: nothing to wait for */
    struct cask_ticket tz = {0};
    cask_defer(&tz);
    assert_int_equal(cask_delete(f->c, "k", 1, 0), CASK_ENOTFOUND);
    assert_int_equal(
            cask_store(f->c, CASK_ADD, "warm", 4, "x", 1, 0, 0, 0, NULL),
            CASK_ENOTSTORED);
    cask_defer(NULL);
    assert_int_equal(tz.epoch, 0);

    /* a blocking caller waits in the call */
    set_deferred(f->c, "b", "1", &ts);
    double t0 = tc_mono_ms();
    assert_int_equal(cask_store(f->c, CASK_ADD, "b", 1, "2", 1, 0, 0, 0, NULL),
                     CASK_ENOTSTORED);
    assert_true(tc_mono_ms() - t0 >= 100);
    assert_int_equal(tc_wait_ticket(f->c, &ts, 10000), CASK_OK);
}

/* The set an add's NOT_STORED rested on fails its commit and is undone:
 * the add is answered with an error, not NOT_STORED. */
static void
test_fails_with_what_it_rests_on(void **state)
{
    struct fx *f = *state;
    struct cask_ticket ts, ta;
    int rc;

    atomic_store(&delay_ms, 200);
    atomic_store(&fail, 1);
    set_deferred(f->c, "k", "v1", &ts);
    memset(&ta, 0, sizeof(ta));
    cask_defer(&ta);
    rc = cask_store(f->c, CASK_ADD, "k", 1, "v2", 2, 0, 0, 0, NULL);
    cask_defer(NULL);
    assert_int_equal(rc, CASK_ENOTSTORED);
    assert_true(ta.epoch != 0);
    assert_int_not_equal(tc_wait_ticket(f->c, &ts, 10000), CASK_OK);
    assert_int_not_equal(tc_wait_ticket(f->c, &ta, 10000), CASK_OK);
    atomic_store(&fail, 0);
    atomic_store(&delay_ms, 0);
    /* the set was undone: k was never there */
    assert_true(tc_absent(f->c, "k"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_waits_for_what_it_rests_on,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_fails_with_what_it_rests_on,
                                            setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
