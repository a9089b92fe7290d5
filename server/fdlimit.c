/* fdlimit.c - descriptor limit handling for the accept path (fdlimit.h).
 * Owns the spare descriptor and a cached copy of the soft limit; touched
 * only by the main thread. */
#include "server/fdlimit.h"

#include "server/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int spare_fd = -1;
static rlim_t soft_cached;
static struct timespec soft_read_at;

void
fdlimit_raise(unsigned maxconns, unsigned shards, unsigned threads)
{
    struct rlimit rl;
    /* per shard: the active segment, a reader of closed ones, a hint or
     * compaction file; per worker: an event fd and a pipe */
    rlim_t want = (rlim_t)maxconns + FDLIMIT_HEADROOM + 4 * (rlim_t)shards +
                  3 * (rlim_t)threads + 32;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_msg(LOG_WARN, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want) {
        return;
    }
    if (rl.rlim_cur == RLIM_INFINITY) {
        return;
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        log_msg(LOG_WARN,
                "open file limit is %llu (hard); -c %u needs about %llu: "
                "connections past the limit will be refused",
                (unsigned long long)rl.rlim_max, maxconns,
                (unsigned long long)want);
        want = rl.rlim_max;
    }
    if (want <= rl.rlim_cur) {
        return;
    }
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_msg(LOG_WARN, "cannot raise the open file limit to %llu: %s",
                (unsigned long long)want, strerror(errno));
        return;
    }
    log_msg(LOG_INFO, "open file limit raised to %llu for -c %u",
            (unsigned long long)want, maxconns);
}

int
fdlimit_reserve(void)
{
    if (spare_fd >= 0) {
        return 0;
    }
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return spare_fd >= 0 ? 0 : errno;
}

void
fdlimit_release(void)
{
    if (spare_fd >= 0) {
        close(spare_fd);
        spare_fd = -1;
    }
}

bool
fdlimit_near(int fd)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (soft_cached == 0 || now.tv_sec - soft_read_at.tv_sec > 1 ||
        (now.tv_sec - soft_read_at.tv_sec) * 1000000000L + now.tv_nsec -
                        soft_read_at.tv_nsec >
                100000000L) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            soft_cached = rl.rlim_cur;
            soft_read_at = now;
        }
    }
    if (soft_cached == 0 || soft_cached == RLIM_INFINITY) {
        return false;
    }
    return (rlim_t)fd + FDLIMIT_HEADROOM >= soft_cached;
}
