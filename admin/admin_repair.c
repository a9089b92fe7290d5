/* admin_repair.c - `bitcached-admin repair DIR`: cask_repair under the
 * directory's lock, each action printed, then a check of the result.
 * Exit 0 when the directory checks clean afterwards, 1 when damage is
 * left, 2 when a step failed. */
#include "admin/admin.h"

#include "storage/cask_check.h"
#include "storage/cask_repair.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
on_action(void *arg, bool done, const char *msg)
{
    (void)arg;
    printf("%s: %s\n", done ? "repaired" : "left alone", msg);
}

static void
on_left(void *arg, bool damage, const char *msg)
{
    (void)arg;
    if (damage) {
        printf("still damaged: %s\n", msg);
    }
}

int
admin_repair(int argc, char **argv)
{
    if (argc != 2) {
        admin_err("usage: repair DIR");
        return ADMIN_USAGE;
    }
    const char *dir = argv[1];
    int fd;
    if (admin_lock_existing(dir, &fd) != 0) {
        return ADMIN_FAIL;
    }
    struct cask_repair_report rep;
    int rc = cask_repair(dir, on_action, NULL, &rep);
    if (rc != 0) {
        admin_err("repair %s: %s", dir, strerror(rc));
        if (fd >= 0) {
            close(fd);
        }
        return ADMIN_FAIL;
    }
    printf("repair: %" PRIu64 " change%s (%" PRIu64 " tails truncated, %" PRIu64
           " segments rewritten, %" PRIu64 " headers rewritten, %" PRIu64
           " segments and %" PRIu64 " retired files quarantined, %" PRIu64
           " hints rebuilt)\n",
           rep.actions, rep.actions == 1 ? "" : "s", rep.tails_truncated,
           rep.segments_rewritten, rep.headers_rewritten,
           rep.segments_quarantined, rep.retired_quarantined,
           rep.hints_rebuilt);
    struct cask_check_hooks h = {.note = on_left};
    struct cask_check_report chk;
    rc = cask_check(dir, (int64_t)time(NULL), &h, &chk);
    if (fd >= 0) {
        close(fd);
    }
    if (rc != 0) {
        admin_err("check %s: %s", dir, strerror(rc));
        return ADMIN_FAIL;
    }
    if (chk.problems != 0) {
        printf("DAMAGED: %" PRIu64 " problem%s left\n", chk.problems,
               chk.problems == 1 ? "" : "s");
        return ADMIN_DAMAGE;
    }
    printf("clean\n");
    return ADMIN_OK;
}
