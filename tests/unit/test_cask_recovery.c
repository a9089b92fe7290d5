/* test_cask_recovery.c - opening a store after damage: a torn tail, garbage
 * appended, a corrupt value behind a valid hint, hint files equal to a full
 * scan, deletes surviving restarts, and the data-directory lock refusing a
 * second process.
 */
#include "config.h"

#include "storage/cask.h"

#include "storage/cask_hint.h"
#include "storage/cask_record.h"
#include "storage/cask_segment.h"
#include "tests/unit/test_cask_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static const char *self_path;

static int
setup(void **state)
{
    return tc_fx_setup(state, tc_one_shard);
}

static void
remove_hints(struct fx *f)
{
    char d[1024];
    snprintf(d, sizeof(d), "%s/shard-000", f->dir);
    DIR *dir = opendir(d);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strstr(de->d_name, ".hint") != NULL) {
            char p[2048];
            snprintf(p, sizeof(p), "%s/%s", d, de->d_name);
            unlink(p);
        }
    }
    closedir(dir);
}

static void
fill(struct fx *f, int n)
{
    for (int i = 0; i < n; i++) {
        char k[32], v[64];
        snprintf(k, sizeof(k), "key-%d", i);
        snprintf(v, sizeof(v), "value-%d-%0*d", i, i % 40, 0);
        assert_int_equal(tc_set(f->c, k, v), CASK_OK);
    }
}

static int
count_present(struct fx *f, int n)
{
    int got = 0;
    for (int i = 0; i < n; i++) {
        char k[32], v[64];
        snprintf(k, sizeof(k), "key-%d", i);
        snprintf(v, sizeof(v), "value-%d-%0*d", i, i % 40, 0);
        got += tc_is(f->c, k, v);
    }
    return got;
}

static void
test_truncated_tail(void **state)
{
    struct fx *f = *state;
    char seg[2048];
    struct stat st;
    fill(f, 100);
    cask_close(&f->c);
    tc_newest_segment(f, seg, sizeof(seg));
    remove_hints(f);
    assert_int_equal(stat(seg, &st), 0);
    assert_int_equal(truncate(seg, st.st_size - 7), 0);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_non_null(strstr(tc_log, "truncated"));
    /* the last record was torn: only it is gone */
    assert_int_equal(count_present(f, 100), 99);
    assert_true(tc_absent(f->c, "key-99"));
    struct cask_stats s;
    cask_stats(f->c, -1, &s);
    assert_true(s.bytes_truncated > 0);
    /* and the store takes writes after the repaired tail */
    assert_int_equal(tc_set(f->c, "after", "x"), CASK_OK);
    cask_close(&f->c);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_true(tc_is(f->c, "after", "x"));
    assert_int_equal(count_present(f, 100), 99);
}

static void
test_garbage_appended(void **state)
{
    struct fx *f = *state;
    char seg[2048];
    fill(f, 100);
    cask_close(&f->c);
    tc_newest_segment(f, seg, sizeof(seg));
    /* keep the hint: the tail past it must still be scanned and cut */
    int fd = open(seg, O_WRONLY | O_APPEND);
    char junk[1000];
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (char)(i * 7 + 3);
    }
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_non_null(strstr(tc_log, "truncated 1000 bytes"));
    assert_int_equal(count_present(f, 100), 100);
    struct cask_stats s;
    cask_stats(f->c, -1, &s);
    assert_int_equal(s.bytes_truncated, 1000);

    /* same without hints */
    cask_close(&f->c);
    remove_hints(f);
    fd = open(seg, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, junk, 20), 20);
    close(fd);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_int_equal(count_present(f, 100), 100);
}

static void
test_corrupt_value_read(void **state)
{
    struct fx *f = *state;
    char seg[2048];
    const char *pattern = "UNIQUE-PATTERN-0123456789";
    fill(f, 10);
    assert_int_equal(tc_set(f->c, "victim", pattern), CASK_OK);
    fill(f, 10);
    cask_close(&f->c);
    tc_newest_segment(f, seg, sizeof(seg));
    /* flip one value byte; the hint still describes the record */
    int fd = open(seg, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    char *buf = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    char *p = memmem(buf, (size_t)st.st_size, pattern, strlen(pattern));
    assert_non_null(p);
    char x = (char)(p[3] ^ 0x20);
    assert_int_equal(pwrite(fd, &x, 1, (p - buf) + 3), 1);
    close(fd);
    free(buf);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    char *v = NULL;
    struct cask_item it;
    assert_int_equal(cask_get(f->c, "victim", 6, &it, &v), CASK_ECORRUPT);
    assert_null(v);
    /* metadata needs no disk read */
    assert_int_equal(cask_get(f->c, "victim", 6, &it, NULL), CASK_OK);
    assert_int_equal(count_present(f, 10), 10);
}

static void
test_hint_equals_scan(void **state)
{
    struct fx *f = *state;
    cask_close(&f->c);
    f->o.segment_size = 8192;
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    for (int r = 0; r < 3; r++) {
        fill(f, 300);
        for (int i = 0; i < 300; i += 7) {
            char k[32];
            snprintf(k, sizeof(k), "key-%d", i);
            cask_delete(f->c, k, strlen(k), 0);
        }
        cask_touch(f->c, "key-1", 5, tc_now + 1000, NULL, NULL);
    }
    fill(f, 300);
    cask_close(&f->c); /* writes every missing hint */
    char d[1024];
    snprintf(d, sizeof(d), "%s/shard-000", f->dir);
    int compared = 0;
    for (uint32_t id = 1; id < 1000; id++) {
        char p[2048];
        cask_seg_path(p, sizeof(p), d, id, "seg");
        if (access(p, F_OK) != 0) {
            continue;
        }
        struct cask_segment *s = NULL;
        uint64_t dropped, cov = 0;
        bool bad;
        int err;
        assert_int_equal(cask_seg_open(&s, d, id, &dropped, &bad), 0);
        assert_false(bad);
        struct tc_rec_list a = {0}, b = {0};
        assert_int_equal(cask_hint_load(d, s, CASK_REC_VMAX, tc_rec_collect, &a,
                                        &cov, NULL),
                         0);
        assert_int_equal(cov, s->flushed);
        assert_int_equal(cask_seg_scan(s, CASK_SEG_HDR, CASK_REC_VMAX,
                                       tc_rec_collect, &b, &err),
                         s->flushed);
        assert_int_equal(err, 0);
        tc_rec_same(&a, &b);
        free(a.lines);
        free(b.lines);
        cask_seg_close(&s);
        compared++;
    }
    assert_true(compared > 5);
    /* and the store reads the same through hints and through scans */
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    int with_hints = count_present(f, 300);
    struct cask_stats s1, s2;
    cask_stats(f->c, -1, &s1);
    cask_close(&f->c);
    remove_hints(f);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    cask_stats(f->c, -1, &s2);
    assert_int_equal(count_present(f, 300), with_hints);
    assert_int_equal(with_hints, 300);
    assert_int_equal(s1.live_keys, s2.live_keys);
    assert_int_equal(s1.live_bytes, s2.live_bytes);
    struct cask_item it;
    assert_int_equal(cask_get(f->c, "key-1", 5, &it, NULL), CASK_OK);
}

static void
test_damaged_hint_ignored(void **state)
{
    struct fx *f = *state;
    char seg[2048], hint[2100];
    fill(f, 100);
    cask_close(&f->c);
    tc_newest_segment(f, seg, sizeof(seg));
    snprintf(hint, sizeof(hint), "%.*s.hint", (int)(strlen(seg) - 4), seg);
    int fd = open(hint, O_RDWR);
    assert_true(fd >= 0);
    char x;
    assert_int_equal(pread(fd, &x, 1, 40), 1);
    x ^= 1;
    assert_int_equal(pwrite(fd, &x, 1, 40), 1);
    close(fd);
    tc_log[0] = '\0';
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_non_null(strstr(tc_log, "unusable"));
    assert_int_equal(count_present(f, 100), 100);
    /* a hint without its segment is removed at open */
    char orphan[1100];
    snprintf(orphan, sizeof(orphan), "%s/shard-000/00000fff.hint", f->dir);
    int ofd = open(orphan, O_WRONLY | O_CREAT, 0644);
    assert_true(ofd >= 0);
    close(ofd);
    cask_close(&f->c);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
    assert_int_not_equal(access(orphan, F_OK), 0);
}

static void
test_deletes_survive(void **state)
{
    struct fx *f = *state;
    fill(f, 50);
    for (int i = 0; i < 50; i += 2) {
        char k[32];
        snprintf(k, sizeof(k), "key-%d", i);
        assert_int_equal(cask_delete(f->c, k, strlen(k), 0), CASK_OK);
    }
    cask_close(&f->c);
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
        assert_int_equal(count_present(f, 50), 25);
        assert_true(tc_absent(f->c, "key-0"));
        cask_close(&f->c);
        remove_hints(f);
    }
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
}

/* Flip random bytes in segment and hint files: the store still opens, and
 * a key is either its one written value, absent, or CASK_ECORRUPT, never a
 * wrong value. */
static void
test_random_damage(void **state)
{
    struct fx *f = *state;
    unsigned seed = 4242;
    cask_close(&f->c);
    f->o.segment_size = 4096;
    for (int round = 0; round < 30; round++) {
        tc_rmrf(f->dir);
        assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
        fill(f, 120);
        cask_close(&f->c);
        char d[1024];
        snprintf(d, sizeof(d), "%s/shard-000", f->dir);
        DIR *dir = opendir(d);
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.' || rand_r(&seed) % 2) {
                continue;
            }
            char p[2048];
            snprintf(p, sizeof(p), "%s/%s", d, de->d_name);
            int fd = open(p, O_RDWR);
            struct stat st;
            fstat(fd, &st);
            for (int k = 0; k < 3 && st.st_size > 0; k++) {
                off_t at = (off_t)(rand_r(&seed) % (unsigned)st.st_size);
                char x = (char)rand_r(&seed);
                assert_int_equal(pwrite(fd, &x, 1, at), 1);
            }
            if (rand_r(&seed) % 4 == 0 && st.st_size > 10) {
                assert_int_equal(ftruncate(fd, (off_t)(rand_r(&seed) %
                                                       (unsigned)st.st_size)),
                                 0);
            }
            close(fd);
        }
        closedir(dir);
        assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
        for (int i = 0; i < 120; i++) {
            char k[32], want[64];
            snprintf(k, sizeof(k), "key-%d", i);
            snprintf(want, sizeof(want), "value-%d-%0*d", i, i % 40, 0);
            char *v = NULL;
            struct cask_item it;
            int rc = cask_get(f->c, k, strlen(k), &it, &v);
            if (rc == CASK_OK) {
                assert_int_equal(it.vlen, strlen(want));
                assert_memory_equal(v, want, it.vlen);
            } else {
                assert_true(rc == CASK_ENOTFOUND || rc == CASK_ECORRUPT);
            }
            free(v);
        }
        /* and it keeps working */
        assert_int_equal(tc_set(f->c, "fresh", "ok"), CASK_OK);
        cask_close(&f->c);
        tc_log[0] = '\0';
        assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
        if (!tc_is(f->c, "fresh", "ok")) {
            fail_msg("round %d: fresh lost; log:\n%s", round, tc_log);
        }
        cask_close(&f->c);
    }
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
}

static void
test_lock_refuses_second_process(void **state)
{
    struct fx *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(self_path, self_path, "--try-open", f->dir, (char *)NULL);
        _exit(99);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3); /* CASK_ELOCKED seen */
    /* after close another open succeeds */
    cask_close(&f->c);
    pid = fork();
    if (pid == 0) {
        execl(self_path, self_path, "--try-open", f->dir, (char *)NULL);
        _exit(99);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(cask_open(&f->c, f->dir, &f->o), CASK_OK);
}

static int
try_open(const char *dir)
{
    struct cask_options o;
    struct cask *c = NULL;
    tc_options(&o);
    o.shards = 1;
    int rc = cask_open(&c, dir, &o);
    if (rc == CASK_ELOCKED) {
        return strstr(tc_log, "in use") != NULL ? 3 : 4;
    }
    cask_close(&c);
    return rc == CASK_OK ? 0 : 5;
}

int
main(int argc, char **argv)
{
    self_path = argv[0];
    if (argc == 3 && strcmp(argv[1], "--try-open") == 0) {
        return try_open(argv[2]);
    }
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_truncated_tail, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_garbage_appended, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_corrupt_value_read, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_hint_equals_scan, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_damaged_hint_ignored, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_deletes_survive, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_random_damage, setup,
                                            tc_fx_teardown),
            cmocka_unit_test_setup_teardown(test_lock_refuses_second_process,
                                            setup, tc_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
