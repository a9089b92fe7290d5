/* log.c - leveled logging to stderr (journald adds time and unit when run
 * under systemd, so lines carry only a level tag). Owns the level; nothing
 * else. One write(2) per line so lines from threads never interleave. */
#include "server/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static atomic_int level_now;

void
log_set_level(int level)
{
    atomic_store(&level_now, level < 0 ? 0 : level);
}

int
log_get_level(void)
{
    return atomic_load(&level_now);
}

int
log_enabled(int level)
{
    return level <= atomic_load(&level_now);
}

void
log_msg(int level, const char *fmt, ...)
{
    static const char *const tag[] = {"", "info: ", "debug: ", "trace: "};
    char line[1024];
    va_list ap;
    int n;

    if (!log_enabled(level)) {
        return;
    }
    n = snprintf(line, sizeof(line), "bitcached: %s",
                 tag[level < 0 ? 0 : (level > 3 ? 3 : level)]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2) {
        n = (int)sizeof(line) - 2;
    }
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nowhere left to report it. */
    }
}
