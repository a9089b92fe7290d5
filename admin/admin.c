/* admin.c - bitcached-admin: offline tools for a data directory that no
 * server holds. This file owns the command line dispatch, messages, the
 * lock check, the opening of a store (to change it, or only to look at it)
 * and the progress display; subcommands are in admin_check.c and
 * admin_dump.c. Depends on the storage library only. */
#define _GNU_SOURCE /* nftw */
#include "admin/admin.h"

#include "storage/cask_check.h"
#include "storage/cask_record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* A private copy of a directory being looked at, opened in its place
 * when only a replay of its commit journal shows what it holds; removed
 * by admin_close. Empty when there is none. */
static char look_copy[4096];

static int
copy_file(const char *from, const char *to)
{
    char buf[1 << 16];
    int rc = 0;
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        return errno;
    }
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = errno;
        close(in);
        return rc;
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = n < 0 ? errno : 0;
            break;
        }
        for (ssize_t w = 0; w < n;) {
            ssize_t k = write(out, buf + w, (size_t)(n - w));
            if (k < 0 && errno != EINTR) {
                rc = errno;
                break;
            }
            w += k > 0 ? k : 0;
        }
        if (rc != 0) {
            break;
        }
    }
    close(in);
    if (close(out) != 0 && rc == 0) {
        rc = errno;
    }
    return rc;
}

/* Copy the tree from into to (made), but its LOCK. 0 or an errno. */
static int
copy_tree(const char *from, const char *to)
{
    if (mkdir(to, 0700) != 0 && errno != EEXIST) {
        return errno;
    }
    DIR *d = opendir(from);
    if (d == NULL) {
        return errno;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char a[4096], b[4096];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            strcmp(de->d_name, "LOCK") == 0) {
            continue;
        }
        if ((size_t)snprintf(a, sizeof(a), "%s/%s", from, de->d_name) >=
                    sizeof(a) ||
            (size_t)snprintf(b, sizeof(b), "%s/%s", to, de->d_name) >=
                    sizeof(b)) {
            rc = ENAMETOOLONG;
        } else if (lstat(a, &st) != 0) {
            rc = errno;
        } else if (S_ISDIR(st.st_mode)) {
            rc = copy_tree(a, b);
        } else if (S_ISREG(st.st_mode)) {
            rc = copy_file(a, b);
        }
    }
    closedir(d);
    return rc;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void
drop_copy(void)
{
    if (look_copy[0] != '\0') {
        (void)nftw(look_copy, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        look_copy[0] = '\0';
    }
}

/* dir's commit journal must be replayed to show what dir holds: copy dir
 * to a private folder under $TMPDIR and open that (replayed there), so
 * that dir itself stays as it is. 0 or ADMIN_FAIL (message said). */
static int
open_copy(const char *dir, struct cask_options *o, struct cask **out)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(look_copy, sizeof(look_copy), "%s/bitcached-admin.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(look_copy) == NULL) {
        admin_err("%s: %s", look_copy, strerror(errno));
        look_copy[0] = '\0';
        return ADMIN_FAIL;
    }
    if (!admin_quiet) {
        admin_err("%s: its commit journal holds writes its segments lack; "
                  "reading a copy in %s with them replayed (%s itself is "
                  "not changed)",
                  dir, look_copy, dir);
    }
    char data[sizeof(look_copy) + 8];
    snprintf(data, sizeof(data), "%s/data", look_copy);
    int rc = copy_tree(dir, data);
    if (rc != 0) {
        admin_err("copy %s to %s: %s", dir, data, strerror(rc));
        drop_copy();
        return ADMIN_FAIL;
    }
    o->inspect = false;
    rc = cask_open(out, data, o);
    if (rc != 0) {
        admin_err("open a copy of %s: %s", dir, cask_strerror(rc));
        drop_copy();
        return ADMIN_FAIL;
    }
    return 0;
}

void
admin_close(struct cask **c)
{
    cask_close(c);
    drop_copy();
}

static int
open_store(const char *dir, unsigned shards, bool look, struct cask **out)
{
    struct cask_options o;
    unsigned have;
    int fd;
    if ((look ? admin_lock_existing(dir, &fd) : admin_lock(dir, &fd)) != 0) {
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
    /* A look at a store whose state file is missing or has no valid slot
     * sees what the server would serve from it (every item on disk counted
     * as flushed; nothing written); the tools that write refuse a damaged
     * one. Either way the shard count is that of the shard directories. */
    if (rc != 0 && rc != ENOENT && !(rc == EINVAL && look)) {
        admin_err("%s state file: %s", dir,
                  rc == EINVAL ? "damaged (run check)" : cask_strerror(rc));
        return ADMIN_FAIL;
    }
    cask_options_init(&o);
    o.shards = rc == 0       ? have
               : shards != 0 ? shards
               : have != 0   ? have
                             : CASK_DEFAULT_SHARDS;
    o.sync = CASK_SYNC_NEVER; /* cask_close syncs every shard */
    o.compact_background = false;
    o.value_max = CASK_REC_VMAX;
    o.log = store_log;
    o.inspect = look;
    rc = cask_open(out, dir, &o);
    if (rc == CASK_EREPLAY) {
        return open_copy(dir, &o, out);
    }
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

int
admin_open(const char *dir, unsigned shards, struct cask **out)
{
    return open_store(dir, shards, false, out);
}

int
admin_open_look(const char *dir, struct cask **out)
{
    return open_store(dir, 0, true, out);
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
