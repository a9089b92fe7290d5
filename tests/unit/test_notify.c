/* test_notify.c - unit tests for server/notify.c: with NOTIFY_SOCKET set to a
 * datagram socket of our own, each call sends the expected message; unset,
 * nothing is sent. Without libsystemd the calls must be harmless no-ops.
 * Links only server/notify.c (and libsystemd).
 */
#include <config.h>

#include "server/notify.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

struct listener {
    char dir[256];
    char path[300];
    int fd;
};

static int
setup(void **state)
{
    struct listener *l = calloc(1, sizeof(*l));
    const char *tmp = getenv("TMPDIR");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    if (l == NULL) {
        return -1;
    }
    if (tmp == NULL || *tmp == '\0') {
        tmp = "/tmp";
    }
    snprintf(l->dir, sizeof(l->dir), "%s/test_notify.XXXXXX", tmp);
    if (mkdtemp(l->dir) == NULL) {
        free(l);
        return -1;
    }
    snprintf(l->path, sizeof(l->path), "%s/notify", l->dir);
    if (strlen(l->path) >= sizeof(sa.sun_path)) {
        rmdir(l->dir);
        free(l);
        return -1;
    }
    strcpy(sa.sun_path, l->path);
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rmdir(l->dir);
        free(l);
        return -1;
    }
    setenv("NOTIFY_SOCKET", l->path, 1);
    *state = l;
    return 0;
}

static int
teardown(void **state)
{
    struct listener *l = *state;

    unsetenv("NOTIFY_SOCKET");
    close(l->fd);
    unlink(l->path);
    rmdir(l->dir);
    free(l);
    return 0;
}

/* Next datagram as a string, or NULL if none is waiting (all sends are
 * synchronous, so a sent message is already queued). */
static char *
next_msg(struct listener *l, char *buf, size_t cap)
{
    ssize_t n = recv(l->fd, buf, cap - 1, 0);

    if (n < 0) {
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

#ifdef HAVE_LIBSYSTEMD

static void
test_messages(void **state)
{
    struct listener *l = *state;
    char buf[1024];

    notify_status("recovering shard %d of %d", 3, 16);
    assert_string_equal(next_msg(l, buf, sizeof(buf)),
                        "STATUS=recovering shard 3 of 16");
    notify_ready();
    assert_string_equal(next_msg(l, buf, sizeof(buf)), "READY=1");
    notify_stopping();
    assert_string_equal(next_msg(l, buf, sizeof(buf)), "STOPPING=1");
    assert_null(next_msg(l, buf, sizeof(buf)));
}

/* A newline in the status must not smuggle in another assignment, and a long
 * status is cut, not overflowed. */
static void
test_status_sanitised(void **state)
{
    struct listener *l = *state;
    char big[1000];
    char buf[1024];
    char *m;

    notify_status("a\nREADY=1\r\nb");
    assert_string_equal(next_msg(l, buf, sizeof(buf)), "STATUS=a READY=1  b");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    notify_status("%s", big);
    m = next_msg(l, buf, sizeof(buf));
    assert_non_null(m);
    assert_int_equal(strncmp(m, "STATUS=xxx", 10), 0);
    assert_int_equal(strlen(m), strlen("STATUS=") + 255);
}

#else

static void
test_messages(void **state)
{
    struct listener *l = *state;
    char buf[1024];

    notify_status("recovering shard %d of %d", 3, 16);
    notify_ready();
    notify_stopping();
    assert_null(next_msg(l, buf, sizeof(buf)));
}

static void
test_status_sanitised(void **state)
{
    (void)state;
    skip();
}

#endif

/* Not under systemd: nothing sent, nothing fails. */
static void
test_unset_is_silent(void **state)
{
    struct listener *l = *state;
    char buf[64];

    unsetenv("NOTIFY_SOCKET");
    notify_status("x");
    notify_ready();
    notify_stopping();
    assert_null(next_msg(l, buf, sizeof(buf)));
    setenv("NOTIFY_SOCKET", l->path, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
            cmocka_unit_test_setup_teardown(test_status_sanitised, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_unset_is_silent, setup,
                                            teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
