/* test_cask_vmap.c - the segment mappings that verified values are sent
 * from (cask_vmap.h): they cover what was asked and nothing past it; the
 * one read of mapped bytes in the process (cask_vmap_copy) survives a file
 * cut short under it and says so, any number of times, while a fault
 * outside it still ends the process as SIGBUS does; the kernel's copy
 * of a page past the end fails the write (EFAULT) instead of sending; and
 * no more segments are mapped at once than the budget allows.
 */
#include "config.h"

#include "storage/cask_vmap.h"

#include "storage/cask_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define PG 4096

struct vfx {
    char path[64];
    struct cask_segment *s;
};

/* A segment of two pages ('a', then 'b'), mapped for three. */
static int
setup(void **state)
{
    struct vfx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->path, sizeof(f->path), "/tmp/test_cask_vmap.XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    char page[PG];
    memset(page, 'a', sizeof(page));
    assert_int_equal(write(fd, page, PG), PG);
    memset(page, 'b', sizeof(page));
    assert_int_equal(write(fd, page, PG), PG);
    f->s = calloc(1, sizeof(*f->s));
    assert_non_null(f->s);
    f->s->fd = fd;
    f->s->size = 2 * PG;
    cask_vmap_open(f->s, 3 * PG);
    assert_non_null(f->s->map);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct vfx *f = *state;
    cask_vmap_close(f->s);
    assert_null(f->s->map);
    close(f->s->fd);
    unlink(f->path);
    free(f->s);
    free(f);
    return 0;
}

static void
test_covers(void **state)
{
    struct vfx *f = *state;
    const char *p = cask_vmap_at(f->s, PG - 2, 4);
    assert_non_null(p);
    char got[4];
    assert_true(cask_vmap_copy(got, p, sizeof(got)));
    assert_memory_equal(got, "aabb", 4);
    assert_non_null(cask_vmap_at(f->s, 0, 3 * PG));
    assert_null(cask_vmap_at(f->s, 3 * PG - 1, 2));
    assert_null(cask_vmap_at(f->s, 4 * PG, 0));
    /* opened once: a second open changes nothing */
    const char *map = f->s->map;
    cask_vmap_open(f->s, 8 * PG);
    assert_ptr_equal(f->s->map, map);
}

/* Map f's file again, installing the SIGBUS handler (cmocka sets its own
 * around each test and fixture). */
static struct cask_segment *
remap(struct vfx *f)
{
    struct cask_segment *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->fd = f->s->fd;
    s->size = 2 * PG;
    cask_vmap_open(s, 3 * PG);
    assert_non_null(s->map);
    return s;
}

static void
test_cut_short(void **state)
{
    struct vfx *f = *state;
    struct cask_segment *s2 = remap(f);
    const char *second = cask_vmap_at(s2, PG, 16);
    assert_non_null(second);
    assert_int_equal(ftruncate(f->s->fd, PG), 0);
    char got[16];
    for (int i = 0; i < 3; i++) {
        assert_false(cask_vmap_copy(got, second, sizeof(got)));
        assert_true(cask_vmap_copy(got, second - 16, sizeof(got)));
        assert_memory_equal(got, "aaaaaaaaaaaaaaaa", 16);
    }

    /* the kernel's copy fails the write instead of sending anything */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct iovec v[3] = {{(void *)"VALUE ", 6},
                         {(void *)second, PG},
                         {(void *)"\r\nEND\r\n", 7}};
    errno = 0;
    ssize_t n = writev(sv[0], v, 3);
    assert_true(n < 6 + PG);
    if (n < 0) {
        assert_int_equal(errno, EFAULT);
    }
    close(sv[0]);
    close(sv[1]);

    /* a fault outside a guarded copy still ends the process */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGBUS, SIG_DFL); /* not cmocka's, which would carry on */
        struct cask_segment *s3 = remap(f);
        volatile char ch = *(volatile const char *)(s3->map + PG);
        (void)ch;
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGBUS);
    cask_vmap_close(s2);
    free(s2);
}

/* Past the budget a segment is left unmapped, not marked tried, and
 * mapped once another mapping is gone. */
static void
test_budget(void **state)
{
    struct vfx *f = *state;
    unsigned base = cask_vmap_count();
    assert_true(base >= 1);                  /* f's own */
    assert_true(cask_vmap_budget() >= 1000); /* a quarter of the kernel's */
    cask_vmap_set_budget(base + 1);
    struct cask_segment *s2 = remap(f);
    assert_int_equal(cask_vmap_count(), base + 1);
    struct cask_segment *s3 = calloc(1, sizeof(*s3));
    assert_non_null(s3);
    s3->fd = f->s->fd;
    s3->size = 2 * PG;
    cask_vmap_open(s3, 3 * PG);
    assert_null(s3->map);
    assert_false(s3->map_tried);
    assert_null(cask_vmap_at(s3, 0, 16));
    assert_int_equal(cask_vmap_count(), base + 1);
    cask_vmap_close(s2);
    free(s2);
    assert_int_equal(cask_vmap_count(), base);
    cask_vmap_open(s3, 3 * PG);
    assert_non_null(s3->map);
    assert_int_equal(cask_vmap_count(), base + 1);
    cask_vmap_close(s3);
    free(s3);
    cask_vmap_set_budget(0);
    assert_true(cask_vmap_budget() >= 1000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_covers, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cut_short, setup, teardown),
            cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
