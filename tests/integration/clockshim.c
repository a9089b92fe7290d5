/* clockshim.c - LD_PRELOAD shim for test_clock_step.py: the wall clock
 * (CLOCK_REALTIME and its coarse twin, gettimeofday, time) reads
 * CLOCKSHIM_AHEAD_S seconds ahead of the kernel's.
 *
 * A deadline taken from the wall clock then lies that far in the future
 * for the kernel, which times a wait on it against its own wall clock: the
 * same as a clock stepped back by that much right after the deadline was
 * taken (an NTP correction at boot). The monotonic clocks pass through.
 * Owns nothing; the server under test knows nothing of it. Not built with
 * the sanitizers (ASan wants to be first in the preload order).
 */
#include "config.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long
ahead_s(void)
{
    static long cached = -1;
    if (cached < 0) {
        const char *s = getenv("CLOCKSHIM_AHEAD_S");
        cached = s != NULL ? strtol(s, NULL, 10) : 0;
        if (cached < 0) {
            cached = 0;
        }
    }
    return cached;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (real == NULL) {
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT,
                                                            "clock_gettime");
    }
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        ts->tv_sec += ahead_s();
    }
    return rc;
}

int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return -1;
    }
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    (void)tz;
    return 0;
}

time_t
time(time_t *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t != NULL) {
        *t = ts.tv_sec;
    }
    return ts.tv_sec;
}
