/* test_auth_text.c - cmocka tests for server/auth_text.c (the -Y gate) with
 * an in-memory sink and a password file in a temp dir: memcached's replies
 * for the right password, a wrong one, an unknown user, a malformed token,
 * a bad data block ending and any other command; each request fed one byte
 * at a time; the line limit; the auth counters. No sockets, no store.
 */
#include "server/auth_text.h"

#include "server/cmd.h"

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
    struct cmd_counters ctr;
    struct cmd_conn cc;
    struct auth_text auth;
    char out[4096];
    size_t n;
    char dir[64];
    char pwfile[96];
};

static void
sink_bytes(void *arg, const void *p, size_t n)
{
    struct fixture *f = arg;

    assert_true(f->n + n < sizeof(f->out));
    memcpy(f->out + f->n, p, n);
    f->n += n;
    f->out[f->n] = '\0';
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    FILE *fp;

    assert_non_null(f);
    strcpy(f->dir, "/tmp/bc-auth.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->pwfile, sizeof(f->pwfile), "%s/users", f->dir);
    fp = fopen(f->pwfile, "w");
    assert_non_null(fp);
    fputs("alice:secret\nbob:hunter2:more\n", fp);
    fclose(fp);
    f->cc.out.bytes = sink_bytes;
    f->cc.out.arg = f;
    f->cc.ctr = &f->ctr;
    auth_text_init(&f->auth, f->pwfile);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    unlink(f->pwfile);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Run everything in req (all at once, or growing one byte at a time) and
 * return the status of the last call. */
static enum cmd_status
feed(struct fixture *f, const char *req, bool bytewise)
{
    size_t len = strlen(req), pos = 0, avail = bytewise ? 0 : len;
    enum cmd_status st = CMD_NEED_MORE;

    f->n = 0;
    f->out[0] = '\0';
    while (pos < len) {
        size_t used = 0;
        if (bytewise && avail < len) {
            avail++;
        }
        st = auth_text_execute(&f->auth, &f->cc, req + pos, avail - pos, &used);
        if (st == CMD_NEED_MORE) {
            assert_int_equal(used, 0);
            if (avail == len) {
                break;
            }
            continue;
        }
        if (st == CMD_CLOSE) {
            break;
        }
        assert_true(used > 0);
        pos += used;
        if (!auth_text_pending(&f->auth)) {
            break;
        }
    }
    return st;
}

static void
test_right_password(void **state)
{
    struct fixture *f = *state;

    for (int bytewise = 0; bytewise < 2; bytewise++) {
        auth_text_init(&f->auth, f->pwfile);
        assert_true(auth_text_pending(&f->auth));
        assert_int_equal(
                feed(f, "set any 0 0 12\r\nalice secret\r\n", bytewise),
                CMD_DONE);
        assert_string_equal(f->out, "STORED\r\n");
        assert_false(auth_text_pending(&f->auth));
    }
    /* a field after the password is ignored, and the password is the rest
     * of the file's line, colons too, as memcached's -Y reads them */
    auth_text_init(&f->auth, f->pwfile);
    feed(f, "set k 0 0 17 noreply\r\nbob  hunter2:more\r\n", false);
    assert_string_equal(f->out, "STORED\r\n");
    assert_int_equal(f->ctr.auth_cmds, 3);
    assert_int_equal(f->ctr.auth_errors, 0);
}

static void
test_refusals(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *req;
        const char *reply;
    } cases[] = {
            {"set k 0 0 12\r\nalice wrongg\r\n",
             "CLIENT_ERROR authentication failure\r\n"},
            {"set k 0 0 10\r\nmallory pw\r\n",
             "CLIENT_ERROR authentication failure\r\n"},
            {"set k 0 0 14\r\nalice:secret x\r\n",
             "CLIENT_ERROR authentication failure\r\n"},
            {"set k 0 0 5\r\nalice\r\n",
             "CLIENT_ERROR bad authentication token format\r\n"},
            {"set k 0 0 12\r\nalice secretXX",
             "CLIENT_ERROR bad command line termination\r\n"},
            {"get k\r\n", "CLIENT_ERROR unauthenticated\r\n"},
            {"quit\r\n", "CLIENT_ERROR unauthenticated\r\n"},
            {"add k 0 0 12\r\n", "CLIENT_ERROR unauthenticated\r\n"},
            {"set k 0 0 zz\r\n", "CLIENT_ERROR unauthenticated\r\n"},
            {"set k 0\r\n", "CLIENT_ERROR unauthenticated\r\n"},
            {"\r\n", "CLIENT_ERROR unauthenticated\r\n"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            auth_text_init(&f->auth, f->pwfile);
            assert_int_equal(feed(f, cases[i].req, bytewise), CMD_DONE);
            assert_string_equal(f->out, cases[i].reply);
            assert_true(auth_text_pending(&f->auth));
        }
    }
    /* three wrong credentials, each tried twice */
    assert_int_equal(f->ctr.auth_cmds, 6);
    assert_int_equal(f->ctr.auth_errors, 6);
}

static void
test_wanted_and_limits(void **state)
{
    struct fixture *f = *state;
    static const char hdr[] = "set k 0 0 100\r\n";
    char line[AUTH_TEXT_LINE_MAX + 2];
    size_t used;

    assert_int_equal(auth_text_wanted(hdr, 3), 0);
    assert_int_equal(auth_text_wanted(hdr, strlen(hdr)), strlen(hdr) + 102);
    assert_int_equal(auth_text_wanted("get k\r\n", 7), 0);
    /* a line that never ends closes the connection */
    memset(line, 'a', sizeof(line));
    assert_int_equal(
            auth_text_execute(&f->auth, &f->cc, line, sizeof(line), &used),
            CMD_CLOSE);
    assert_int_equal(auth_text_execute(&f->auth, &f->cc, line,
                                       AUTH_TEXT_LINE_MAX, &used),
                     CMD_NEED_MORE);
    /* without -Y nothing is pending */
    auth_text_init(&f->auth, NULL);
    assert_false(auth_text_pending(&f->auth));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_right_password, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
            cmocka_unit_test_setup_teardown(test_wanted_and_limits, setup,
                                            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
