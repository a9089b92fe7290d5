/* admin.c - bitcached-admin: offline tools for a data directory that no
 * server holds. This file owns the command line dispatch, messages, the
 * lock check and the progress display; subcommands are in admin_check.c and
 * admin_dump.c. Depends on the storage library only. */
#include "admin/admin.h"

#include "storage/cask_check.h"
#include "storage/cask_record.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool admin_quiet;

void
admin_err(const char *fmt, ...)
{
    va_list ap;
    fputs("bitcached-admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int
admin_lock(const char *dir, int *fd)
{
    pid_t pid;
    int rc = cask_check_lock(dir, fd, &pid);
    if (rc == EWOULDBLOCK && pid > 0) {
        admin_err("%s is in use by process %ld (its LOCK is held); stop that "
                  "server first",
                  dir, (long)pid);
    } else if (rc == EWOULDBLOCK) {
        admin_err("%s is in use by another process (its LOCK is held); stop "
                  "that server first",
                  dir);
    } else if (rc != 0) {
        admin_err("%s/LOCK: %s", dir, strerror(rc));
    }
    return rc == 0 ? 0 : ADMIN_FAIL;
}

int
admin_lock_existing(const char *dir, int *fd)
{
    if (access(dir, F_OK) != 0) {
        admin_err("%s: %s", dir, strerror(errno));
        return ADMIN_FAIL;
    }
    return admin_lock(dir, fd);
}

static void
store_log(void *arg, enum cask_log_level level, const char *msg)
{
    (void)arg;
    if (level <= CASK_LOG_WARN) {
        admin_err("%s", msg);
    }
}

int
admin_open(const char *dir, unsigned shards, struct cask **out)
{
    struct cask_options o;
    unsigned have;
    int fd;
    if (admin_lock(dir, &fd) != 0) {
        return ADMIN_FAIL;
    }
    if (fd >= 0) {
        close(fd);
    }
    int rc = cask_check_shards(dir, &have);
    if (rc == 0 && shards != 0 && shards != have) {
        admin_err("%s was created with %u shards, not %u", dir, have, shards);
        return ADMIN_FAIL;
    }
    if (rc != 0 && rc != ENOENT) {
        admin_err("%s state file: %s", dir,
                  rc == EINVAL ? "damaged (run check)" : cask_strerror(rc));
        return ADMIN_FAIL;
    }
    cask_options_init(&o);
    o.shards = rc == 0 ? have : shards != 0 ? shards : CASK_DEFAULT_SHARDS;
    o.sync = CASK_SYNC_NEVER; /* cask_close syncs every shard */
    o.compact_background = false;
    o.value_max = CASK_REC_VMAX;
    o.log = store_log;
    rc = cask_open(out, dir, &o);
    if (rc == CASK_ELOCKED) {
        if (admin_lock(dir, &fd) == 0 && fd >= 0) {
            close(fd);
        }
        return ADMIN_FAIL;
    }
    if (rc != 0) {
        admin_err("open %s: %s", dir, cask_strerror(rc));
        return ADMIN_FAIL;
    }
    return 0;
}

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
admin_progress_init(struct admin_progress *p, const char *what)
{
    memset(p, 0, sizeof(*p));
    p->what = what;
    p->t0 = p->last = mono_s();
    p->tty = isatty(STDERR_FILENO) == 1;
}

static void
human(char *out, size_t cap, double v, bool bytes)
{
    const char *unit[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) {
        v /= bytes ? 1024 : 1000;
        i++;
    }
    snprintf(out, cap, "%.1f%s%s", v, unit[i], bytes && i ? "iB" : "");
}

void
admin_progress(struct admin_progress *p, uint64_t done, uint64_t total)
{
    double now = mono_s();
    if (admin_quiet || now - p->last < (p->tty ? 0.2 : 5.0)) {
        return;
    }
    p->last = now;
    bool bytes = strcmp(p->what, "bytes") == 0;
    double rate = (double)done / (now - p->t0);
    char d[32], t[32], r[32], eta[32] = "?";
    human(d, sizeof(d), (double)done, bytes);
    human(t, sizeof(t), (double)total, bytes);
    human(r, sizeof(r), rate, bytes);
    if (rate > 0 && total >= done) {
        snprintf(eta, sizeof(eta), "%.0fs", (double)(total - done) / rate);
    }
    if (total == 0) {
        /* Unknown total (load reads a stream): count and rate only. */
        fprintf(stderr, p->tty ? "\r%s %s, %s/s   " : "progress: %s %s, %s/s\n",
                d, p->what, r);
    } else if (p->tty) {
        char bar[21];
        int fill = total ? (int)(20.0 * (double)done / (double)total) : 0;
        for (int i = 0; i < 20; i++) {
            bar[i] = i < fill ? '#' : '.';
        }
        bar[20] = '\0';
        fprintf(stderr, "\r[%s] %s/%s %s, %s/s, %s left   ", bar, d, t, p->what,
                r, eta);
    } else {
        fprintf(stderr, "progress: %s/%s %s, %s/s, %s left\n", d, t, p->what, r,
                eta);
    }
    p->shown = true;
}

void
admin_progress_done(struct admin_progress *p)
{
    if (p->shown && p->tty) {
        fputc('\n', stderr);
    }
}

static void
usage(FILE *f)
{
    fputs("usage: bitcached-admin [--quiet] check DIR\n"
          "       bitcached-admin [--quiet] dump DIR [--prefix P] "
          "[--keys-only] [--format text|json]\n"
          "       bitcached-admin [--quiet] load DIR [--shards N] < DUMP\n"
          "       bitcached-admin [--quiet] repair DIR\n"
          "       bitcached-admin [--quiet] stats DIR\n"
          "       bitcached-admin [--quiet] compact DIR\n"
          "DIR is a data directory no server has open. See "
          "bitcached-admin(1).\n",
          f);
}

int
main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            admin_quiet = true;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return ADMIN_OK;
        } else {
            admin_err("unknown option %s", argv[i]);
            usage(stderr);
            return ADMIN_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return ADMIN_USAGE;
    }
    const char *cmd = argv[i];
    argc -= i;
    argv += i;
    if (strcmp(cmd, "check") == 0) {
        return admin_check(argc, argv);
    }
    if (strcmp(cmd, "dump") == 0) {
        return admin_dump(argc, argv);
    }
    if (strcmp(cmd, "load") == 0) {
        return admin_load(argc, argv);
    }
    if (strcmp(cmd, "stats") == 0) {
        return admin_stats(argc, argv);
    }
    if (strcmp(cmd, "repair") == 0) {
        return admin_repair(argc, argv);
    }
    if (strcmp(cmd, "compact") == 0) {
        return admin_compact(argc, argv);
    }
    admin_err("unknown command %s", cmd);
    usage(stderr);
    return ADMIN_USAGE;
}
