/* test_cask_seam.h - helpers shared by the storage unit tests that hook
 * the cask_io seam and the commit tickets: which file an fd a hook sees
 * belongs to, a monotonic clock in milliseconds, and a deferred write
 * with the poll of its ticket. Header-only; test code. Include after
 * test_cask_util.h.
 */
#ifndef BITCACHED_TEST_CASK_SEAM_H
#define BITCACHED_TEST_CASK_SEAM_H

#include "storage/cask_io.h"
#include "test_cask_util.h"

#include <errno.h>
#include <stdbool.h>
#include <time.h>

/* The path fd was opened at, into out[0..cap); false if it has none. */
static inline bool
tc_fd_path(int fd, char *out, size_t cap)
{
    char l[64];
    snprintf(l, sizeof(l), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(l, out, cap - 1);
    if (n <= 0) {
        return false;
    }
    out[n] = '\0';
    return true;
}

/* Is fd one of the commit journal's files (journal.0, journal.1)? */
static inline bool
tc_fd_is_journal(int fd)
{
    char p[4200];
    return tc_fd_path(fd, p, sizeof(p)) && strstr(p, "/journal.") != NULL;
}

/* A pwrite hook for which the journal's files cannot be written (ENOSPC):
 * under always the store then commits by syncing each shard's segment. */
static inline ssize_t
tc_nojournal_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (tc_fd_is_journal(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return cask_io_default()->pwrite(fd, buf, n, off);
}

static inline double
tc_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* tc_set(c, k, v) with its wait for the commit deferred into *t (zeroed
 * first); the store's status. */
static inline int
tc_set_deferred(struct cask *c, const char *k, const char *v,
                struct cask_ticket *t)
{
    memset(t, 0, sizeof(*t));
    cask_defer(t);
    int rc = tc_set(c, k, v);
    cask_defer(NULL);
    return rc;
}

/* Poll t until done, failing the test after max_ms; its status (the hook
 * would wake a server). */
static inline int
tc_wait_ticket(struct cask *c, const struct cask_ticket *t, double max_ms)
{
    double t0 = tc_mono_ms();
    int rc = -1;
    while (!cask_ticket_done(c, t, &rc)) {
        assert_true(tc_mono_ms() - t0 < max_ms);
        usleep(1000);
    }
    return rc;
}

#endif
