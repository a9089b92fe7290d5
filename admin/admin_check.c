/* admin_check.c - `bitcached-admin check DIR`: read-only verification of a
 * data directory through cask_check, printed as findings, per-shard figures
 * and a summary. Exit 0 clean, 1 damage, 2 could not run. */
#include "admin/admin.h"

#include "storage/cask_check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
on_note(void *arg, bool damage, const char *msg)
{
    struct admin_progress *p = arg;
    if (p->shown && p->tty) {
        fputc('\n', stderr);
        p->shown = false;
    }
    printf("%s: %s\n", damage ? "DAMAGE" : "note", msg);
}

static void
print_counts(const char *what, const struct cask_check_counts *c)
{
    printf("%s: %" PRIu64 " keys, %" PRIu64 " live bytes, %" PRIu64
           " dead bytes, %" PRIu64 " segments (%" PRIu64 " bytes), %" PRIu64
           " records (%" PRIu64 " puts, %" PRIu64 " tombstones, %" PRIu64
           " touches), hints %" PRIu64 " ok %" PRIu64 " missing %" PRIu64
           " bad, %" PRIu64 " torn bytes, %" PRIu64 " damaged bytes\n",
           what, c->keys, c->live_bytes, c->dead_bytes, c->segments,
           c->segment_bytes, c->records, c->puts, c->tombstones, c->touches,
           c->hints_ok, c->hints_missing, c->hints_bad, c->torn_bytes,
           c->damaged_bytes);
}

static void
on_shard(void *arg, unsigned shard, const struct cask_check_counts *c)
{
    char what[32];
    (void)arg;
    snprintf(what, sizeof(what), "shard-%03u", shard);
    print_counts(what, c);
}

static void
on_progress(void *arg, uint64_t done, uint64_t total)
{
    admin_progress(arg, done, total);
}

int
admin_check(int argc, char **argv)
{
    if (argc != 2) {
        admin_err("usage: check DIR");
        return ADMIN_USAGE;
    }
    const char *dir = argv[1];
    int fd;
    if (admin_lock_existing(dir, &fd) != 0) {
        return ADMIN_FAIL;
    }
    struct admin_progress p;
    admin_progress_init(&p, "bytes");
    struct cask_check_hooks h = {
            .note = on_note,
            .shard = on_shard,
            .progress = on_progress,
            .arg = &p,
    };
    struct cask_check_report rep;
    int rc = cask_check(dir, (int64_t)time(NULL), &h, &rep);
    admin_progress_done(&p);
    if (fd >= 0) {
        close(fd);
    }
    if (rc != 0) {
        admin_err("check %s: %s", dir, strerror(rc));
        return ADMIN_FAIL;
    }
    if (rep.state_ok) {
        printf("state: generation %" PRIu64 ", %u shards, flush_cas %" PRIu64
               "%s\n",
               rep.state_generation, rep.shards, rep.flush_cas,
               rep.state_bad_slots ? " (one slot damaged)" : "");
    }
    print_counts("total", &rep.total);
    if (rep.problems != 0) {
        printf("DAMAGED: %" PRIu64 " problem%s found\n", rep.problems,
               rep.problems == 1 ? "" : "s");
        return ADMIN_DAMAGE;
    }
    printf("clean\n");
    return ADMIN_OK;
}
