/* crashshim.c - LD_PRELOAD shim for the crash and fault tests: counts, kills
 * at, or fails the write, sync, rename, unlink, truncate, allocate and open
 * calls that a server makes on files under one directory.
 *
 * Owns only its own tables; the server under test knows nothing of it. It
 * must not be built with the sanitizers (ASan wants to be first in the
 * preload order), so the tests skip the shim against a sanitizer build.
 *
 * Reads (read, pread, preadv) are counted and can be failed too.
 *
 * Environment (all optional but CRASHSHIM_DIR; without it the shim does
 * nothing but pass calls through):
 *   CRASHSHIM_DIR=/abs/dir      only calls on files under this directory count
 *   CRASHSHIM_STATS=FILE        shared counters, written through a mapping so
 *                               they survive a SIGKILL: 64 slots of a 24-byte
 *                               NUL-padded name and a uint64 count; slot 0 is
 *                               "#fired" (kill done), slot 1 "#failed" (calls
 *                               failed), the others one per function name
 *   CRASHSHIM_KILL=NAMES:N[:WHEN]  SIGKILL the process at the Nth call (1 is
 *                               the first) of any function in NAMES (comma
 *                               separated); WHEN is "before" (default: the
 *                               call is not made), "after" (made, then
 *                               killed) or "torn" (writes: half the bytes are
 *                               written, then killed)
 *   CRASHSHIM_FAIL=NAMES:N:ERRNO[:COUNT]  from the Nth call of NAMES on, fail
 *                               the call with ERRNO (EIO, ENOSPC, EMFILE,
 *                               EDQUOT or a number) without making it; at
 *                               most COUNT calls (0 or absent: no limit)
 *   CRASHSHIM_KILL_WHILE=FILE   count calls for CRASHSHIM_KILL only while
 *                               FILE exists, so a test can aim at the Nth call
 *                               after some moment (a recovery's syscalls)
 *   CRASHSHIM_FAIL_WHILE=FILE   fail only while FILE exists, so a test can
 *                               stop the fault by removing it
 *   CRASHSHIM_DELAY=NAMES:MS    sleep MS milliseconds before each call of
 *                               NAMES (a slow disk: e.g. fdatasync:200).
 *                               With pread or preadv among NAMES, a preadv2
 *                               with RWF_NOWAIT (a read that may not wait)
 *                               of pages not all in the page cache fails
 *                               with EAGAIN at once, without the call: on a
 *                               slow disk it never finds them read within
 *                               it, where a fast one (a virtual disk backed
 *                               by the host's cache) often does, which
 *                               would let a cold read finish on the caller
 *                               without the delay
 *   CRASHSHIM_DELAY_WHILE=FILE  delay only while FILE exists (so that
 *                               start-up is not slowed down)
 *   CRASHSHIM_HOLD_WHILE=FILE   a delayed call goes on waiting, MS at a
 *                               time, while FILE exists: held until the
 *                               test removes it (a disk that does not
 *                               answer), so that a test waits on a
 *                               condition instead of timing a delay
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { SLOTS = 64, NAME_LEN = 24, FD_TRACK = 65536, SPEC_NAMES = 24 };

struct slot {
    char name[NAME_LEN];
    uint64_t count;
};

struct spec {
    bool on;
    char names[SPEC_NAMES][NAME_LEN];
    unsigned nnames;
    uint64_t n;      /* the call (1-based) the spec starts at */
    uint64_t seen;   /* matching calls so far */
    int err;         /* fail: errno to return */
    uint64_t limit;  /* fail: at most this many failures (0: no limit) */
    uint64_t failed; /* fail: failures so far */
    enum { WHEN_BEFORE, WHEN_AFTER, WHEN_TORN } when;
};

static char dir[PATH_MAX];
static size_t dir_len;
static struct slot *stats;
static struct slot local_stats[SLOTS];
static struct spec kill_spec;
static struct spec fail_spec;
static struct spec delay_spec; /* n: the delay in ms */
static char delay_while[PATH_MAX];
static char hold_while[PATH_MAX];
static char fail_while[PATH_MAX];
static char kill_while[PATH_MAX];
static unsigned char tracked[FD_TRACK];
static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;

static int
errno_by_name(const char *s)
{
    static const struct {
        const char *name;
        int err;
    } tab[] = {{"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EMFILE", EMFILE},
               {"ENFILE", ENFILE}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
               {"EACCES", EACCES}, {"EPERM", EPERM}};
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (strcmp(s, tab[i].name) == 0) {
            return tab[i].err;
        }
    }
    return atoi(s);
}

/* NAMES:N[:X[:Y]] -> spec; the caller reads X and Y. Returns the fields. */
static int
parse_spec(struct spec *sp, const char *env, char fields[4][64])
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", env);
    int nf = 0;
    char *save = NULL;
    for (char *f = strtok_r(buf, ":", &save); f != NULL && nf < 4;
         f = strtok_r(NULL, ":", &save)) {
        if (nf == 0) {
            char *s2 = NULL;
            for (char *n = strtok_r(f, ",", &s2);
                 n != NULL && sp->nnames < SPEC_NAMES;
                 n = strtok_r(NULL, ",", &s2)) {
                snprintf(sp->names[sp->nnames++], NAME_LEN, "%s", n);
            }
        }
        snprintf(fields[nf++], 64, "%s", f);
    }
    if (nf >= 2) {
        sp->n = strtoull(fields[1], NULL, 10);
        sp->on = sp->nnames > 0 && sp->n > 0;
    }
    return nf;
}

static void
map_stats(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return;
    }
    size_t len = sizeof(struct slot) * SLOTS;
    if (ftruncate(fd, (off_t)len) != 0) {
        close(fd);
        return;
    }
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m != MAP_FAILED) {
        stats = m;
    }
}

__attribute__((constructor)) static void
shim_init(void)
{
    const char *d = getenv("CRASHSHIM_DIR");
    if (d == NULL || d[0] != '/' || strlen(d) >= sizeof(dir)) {
        return;
    }
    snprintf(dir, sizeof(dir), "%s", d);
    dir_len = strlen(dir);
    while (dir_len > 1 && dir[dir_len - 1] == '/') {
        dir[--dir_len] = '\0';
    }
    stats = local_stats;
    const char *s = getenv("CRASHSHIM_STATS");
    if (s != NULL && s[0] != '\0') {
        map_stats(s);
    }
    snprintf(stats[0].name, NAME_LEN, "#fired");
    snprintf(stats[1].name, NAME_LEN, "#failed");

    char fields[4][64];
    const char *k = getenv("CRASHSHIM_KILL");
    if (k != NULL && k[0] != '\0') {
        int nf = parse_spec(&kill_spec, k, fields);
        if (nf >= 3 && strcmp(fields[2], "after") == 0) {
            kill_spec.when = WHEN_AFTER;
        } else if (nf >= 3 && strcmp(fields[2], "torn") == 0) {
            kill_spec.when = WHEN_TORN;
        }
    }
    const char *f = getenv("CRASHSHIM_FAIL");
    if (f != NULL && f[0] != '\0') {
        int nf = parse_spec(&fail_spec, f, fields);
        fail_spec.err = nf >= 3 ? errno_by_name(fields[2]) : EIO;
        fail_spec.limit = nf >= 4 ? strtoull(fields[3], NULL, 10) : 0;
        if (fail_spec.err <= 0) {
            fail_spec.on = false;
        }
    }
    const char *dl = getenv("CRASHSHIM_DELAY");
    if (dl != NULL && dl[0] != '\0') {
        (void)parse_spec(&delay_spec, dl, fields);
    }
    const char *dw = getenv("CRASHSHIM_DELAY_WHILE");
    if (dw != NULL) {
        snprintf(delay_while, sizeof(delay_while), "%s", dw);
    }
    const char *hw = getenv("CRASHSHIM_HOLD_WHILE");
    if (hw != NULL) {
        snprintf(hold_while, sizeof(hold_while), "%s", hw);
    }
    const char *kw = getenv("CRASHSHIM_KILL_WHILE");
    if (kw != NULL) {
        snprintf(kill_while, sizeof(kill_while), "%s", kw);
    }
    const char *w = getenv("CRASHSHIM_FAIL_WHILE");
    if (w != NULL) {
        snprintf(fail_while, sizeof(fail_while), "%s", w);
    }
}

/* ---- which calls count ------------------------------------------------- */

static bool
path_under(const char *p)
{
    return dir_len > 0 && strncmp(p, dir, dir_len) == 0 &&
           (p[dir_len] == '/' || p[dir_len] == '\0' || p[dir_len] == ' ');
}

static bool
fd_path(int fd, char *out, size_t cap)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, cap - 1);
    if (n < 0) {
        return false;
    }
    out[n] = '\0';
    return true;
}

static bool
fd_under(int fd)
{
    if (dir_len == 0 || fd < 0) {
        return false;
    }
    if (fd < FD_TRACK) {
        return __atomic_load_n(&tracked[fd], __ATOMIC_RELAXED) != 0;
    }
    char p[PATH_MAX];
    return fd_path(fd, p, sizeof(p)) && path_under(p);
}

/* Is (dirfd, path) of an *at call under the directory? */
static bool
at_under(int dirfd, const char *path)
{
    if (dir_len == 0 || path == NULL) {
        return false;
    }
    if (path[0] == '/') {
        return path_under(path);
    }
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
        if (getcwd(base, sizeof(base)) == NULL) {
            return false;
        }
    } else if (!fd_path(dirfd, base, sizeof(base))) {
        return false;
    }
    char full[PATH_MAX * 2];
    snprintf(full, sizeof(full), "%s/%s", base, path);
    return path_under(full);
}

static void
count(const char *name)
{
    if (stats == NULL) {
        return;
    }
    for (int i = 2; i < SLOTS; i++) {
        if (strncmp(stats[i].name, name, NAME_LEN) == 0) {
            __atomic_add_fetch(&stats[i].count, 1, __ATOMIC_RELAXED);
            return;
        }
    }
    pthread_mutex_lock(&slot_mu);
    for (int i = 2; i < SLOTS; i++) {
        if (stats[i].name[0] == '\0') {
            snprintf(stats[i].name, NAME_LEN, "%s", name);
        }
        if (strncmp(stats[i].name, name, NAME_LEN) == 0) {
            __atomic_add_fetch(&stats[i].count, 1, __ATOMIC_RELAXED);
            break;
        }
    }
    pthread_mutex_unlock(&slot_mu);
}

static bool
spec_names(const struct spec *sp, const char *name)
{
    for (unsigned i = 0; i < sp->nnames; i++) {
        if (strcmp(sp->names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

enum verdict { PASS, KILL_BEFORE, KILL_AFTER, KILL_TORN, FAIL };

/* One counted call of name: what to do with it. *err is set for FAIL. */
static enum verdict
judge(const char *name, int *err)
{
    count(name);
    if (delay_spec.on && spec_names(&delay_spec, name) &&
        (delay_while[0] == '\0' || access(delay_while, F_OK) == 0)) {
        do {
            struct timespec ts = {.tv_sec = (time_t)(delay_spec.n / 1000),
                                  .tv_nsec = (long)(delay_spec.n % 1000) *
                                             1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        } while (hold_while[0] != '\0' && access(hold_while, F_OK) == 0);
    }
    if (kill_spec.on && spec_names(&kill_spec, name) &&
        (kill_while[0] == '\0' || access(kill_while, F_OK) == 0)) {
        uint64_t i = __atomic_add_fetch(&kill_spec.seen, 1, __ATOMIC_SEQ_CST);
        if (i == kill_spec.n) {
            switch (kill_spec.when) {
            case WHEN_AFTER:
                return KILL_AFTER;
            case WHEN_TORN:
                return KILL_TORN;
            default:
                return KILL_BEFORE;
            }
        }
    }
    if (fail_spec.on && spec_names(&fail_spec, name)) {
        uint64_t i = __atomic_add_fetch(&fail_spec.seen, 1, __ATOMIC_SEQ_CST);
        if (i < fail_spec.n) {
            return PASS;
        }
        if (fail_while[0] != '\0' && access(fail_while, F_OK) != 0) {
            return PASS;
        }
        uint64_t k = __atomic_add_fetch(&fail_spec.failed, 1, __ATOMIC_SEQ_CST);
        if (fail_spec.limit != 0 && k > fail_spec.limit) {
            return PASS;
        }
        if (stats != NULL) {
            __atomic_add_fetch(&stats[1].count, 1, __ATOMIC_RELAXED);
        }
        *err = fail_spec.err;
        return FAIL;
    }
    return PASS;
}

static void
die(void)
{
    if (stats != NULL) {
        __atomic_store_n(&stats[0].count, 1, __ATOMIC_SEQ_CST);
    }
    kill(getpid(), SIGKILL);
    for (;;) {
        pause();
    }
}

#define REAL(ret, name, args)                                                  \
    static ret(*real_##name) args;                                             \
    if (real_##name == NULL) {                                                 \
        real_##name = (ret(*) args)dlsym(RTLD_NEXT, #name);                    \
    }

/* ---- writes ------------------------------------------------------------ */

static ssize_t
do_write(const char *name, ssize_t (*fn)(int, const void *, size_t, off_t),
         int fd, const void *buf, size_t n, off_t off)
{
    int err = 0;
    enum verdict v = fd_under(fd) ? judge(name, &err) : PASS;
    switch (v) {
    case FAIL:
        errno = err;
        return -1;
    case KILL_BEFORE:
        die();
        break;
    case KILL_TORN:
        if (n > 1) {
            (void)fn(fd, buf, n / 2, off);
        }
        die();
        break;
    default:
        break;
    }
    ssize_t r = fn(fd, buf, n, off);
    if (v == KILL_AFTER) {
        die();
    }
    return r;
}

static ssize_t
plain_write(int fd, const void *buf, size_t n, off_t off)
{
    REAL(ssize_t, write, (int, const void *, size_t));
    (void)off;
    return real_write(fd, buf, n);
}

static ssize_t
plain_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(ssize_t, pwrite, (int, const void *, size_t, off_t));
    return real_pwrite(fd, buf, n, off);
}

ssize_t
write(int fd, const void *buf, size_t n)
{
    return do_write("write", plain_write, fd, buf, n, 0);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return do_write("pwrite", plain_pwrite, fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return do_write("pwrite64", plain_pwrite, fd, buf, n, off);
}

/* Vectored writes: for "torn", the first half of the bytes. */
static ssize_t
do_writev(const char *name, int fd, const struct iovec *iov, int cnt, off_t off,
          int flags, int kind)
{
    REAL(ssize_t, writev, (int, const struct iovec *, int));
    REAL(ssize_t, pwritev, (int, const struct iovec *, int, off_t));
    REAL(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int));
    int err = 0;
    enum verdict v = fd_under(fd) ? judge(name, &err) : PASS;
    if (v == FAIL) {
        errno = err;
        return -1;
    }
    if (v == KILL_BEFORE) {
        die();
    }
    if (v == KILL_TORN && cnt > 0) {
        size_t total = 0;
        for (int i = 0; i < cnt; i++) {
            total += iov[i].iov_len;
        }
        size_t want = total / 2;
        int used = 0;
        struct iovec part[64];
        for (int i = 0; i < cnt && used < 64 && want > 0; i++) {
            part[used] = iov[i];
            if (part[used].iov_len > want) {
                part[used].iov_len = want;
            }
            want -= part[used].iov_len;
            used++;
        }
        if (used > 0) {
            if (kind == 0) {
                (void)real_writev(fd, part, used);
            } else if (kind == 1) {
                (void)real_pwritev(fd, part, used, off);
            } else {
                (void)real_pwritev2(fd, part, used, off, flags);
            }
        }
        die();
    }
    ssize_t r;
    if (kind == 0) {
        r = real_writev(fd, iov, cnt);
    } else if (kind == 1) {
        r = real_pwritev(fd, iov, cnt, off);
    } else {
        r = real_pwritev2(fd, iov, cnt, off, flags);
    }
    if (v == KILL_AFTER) {
        die();
    }
    return r;
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
    return do_writev("writev", fd, iov, cnt, 0, 0, 0);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return do_writev("pwritev", fd, iov, cnt, off, 0, 1);
}

ssize_t
pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return do_writev("pwritev64", fd, iov, cnt, off, 0, 1);
}

ssize_t
pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    return do_writev("pwritev2", fd, iov, cnt, off, flags, 2);
}

/* ---- reads: only failed (a kill at a read is a kill at a random moment) - */

static bool
read_ok(const char *name, int fd, ssize_t *ret)
{
    int err = 0;
    enum verdict v = fd_under(fd) ? judge(name, &err) : PASS;
    if (v == FAIL) {
        errno = err;
        *ret = -1;
        return false;
    }
    if (v != PASS) {
        die();
    }
    return true;
}

ssize_t
read(int fd, void *buf, size_t n)
{
    REAL(ssize_t, read, (int, void *, size_t));
    ssize_t r;
    return read_ok("read", fd, &r) ? real_read(fd, buf, n) : r;
}

ssize_t
pread(int fd, void *buf, size_t n, off_t off)
{
    REAL(ssize_t, pread, (int, void *, size_t, off_t));
    ssize_t r;
    return read_ok("pread", fd, &r) ? real_pread(fd, buf, n, off) : r;
}

ssize_t
pread64(int fd, void *buf, size_t n, off64_t off)
{
    REAL(ssize_t, pread64, (int, void *, size_t, off64_t));
    ssize_t r;
    return read_ok("pread64", fd, &r) ? real_pread64(fd, buf, n, off) : r;
}

ssize_t
preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
    REAL(ssize_t, preadv, (int, const struct iovec *, int, off_t));
    ssize_t r;
    return read_ok("preadv", fd, &r) ? real_preadv(fd, iov, cnt, off) : r;
}

ssize_t
preadv64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    REAL(ssize_t, preadv64, (int, const struct iovec *, int, off64_t));
    ssize_t r;
    return read_ok("preadv64", fd, &r) ? real_preadv64(fd, iov, cnt, off) : r;
}

#ifndef SYS_cachestat
#define SYS_cachestat                                                          \
    451 /* Linux 6.5; one number on every architecture but alpha */
#endif

/* Whether every page of [off, off + len) of fd is in the page cache, by
 * cachestat(2) (which reads nothing); true where it is not available, so
 * that the call is then made as it would be without the shim. */
static bool
all_cached(int fd, off_t off, size_t len)
{
    struct {
        uint64_t off, len;
    } range;
    struct {
        uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted,
                nr_recently_evicted;
    } cs;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t first = (uint64_t)off / page;
    uint64_t last = ((uint64_t)off + (len > 0 ? len : 1) - 1) / page;

    range.off = first * page;
    range.len = (last - first + 1) * page;
    if (syscall(SYS_cachestat, fd, &range, &cs, 0u) != 0) {
        return true;
    }
    return cs.nr_cache >= last - first + 1;
}

/* A read that may not wait, on the slow disk CRASHSHIM_DELAY models (its
 * delay active for pread or preadv): pages not cached are not read within
 * it. */
static bool
slow_nowait_miss(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    if (!(flags & RWF_NOWAIT) || !delay_spec.on || !fd_under(fd) ||
        !(spec_names(&delay_spec, "pread") ||
          spec_names(&delay_spec, "preadv")) ||
        (delay_while[0] != '\0' && access(delay_while, F_OK) != 0)) {
        return false;
    }
    size_t len = 0;
    for (int i = 0; i < cnt; i++) {
        len += iov[i].iov_len;
    }
    return !all_cached(fd, off, len);
}

ssize_t
preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    REAL(ssize_t, preadv2, (int, const struct iovec *, int, off_t, int));
    ssize_t r;
    if (!read_ok("preadv2", fd, &r)) {
        return r;
    }
    if (slow_nowait_miss(fd, iov, cnt, off, flags)) {
        errno = EAGAIN;
        return -1;
    }
    return real_preadv2(fd, iov, cnt, off, flags);
}

/* ---- calls on one fd that return 0 or -1 ------------------------------- */

/* Run the verdict around a call: returns true when the call is to be made;
 * on false, *ret holds what to return. */
static bool
pre(const char *name, bool under, enum verdict *v, int *ret)
{
    int err = 0;
    *v = under ? judge(name, &err) : PASS;
    if (*v == FAIL) {
        errno = err;
        *ret = -1;
        return false;
    }
    if (*v == KILL_BEFORE || *v == KILL_TORN) {
        die();
    }
    return true;
}

static int
post(enum verdict v, int r)
{
    if (v == KILL_AFTER) {
        die();
    }
    return r;
}

int
fsync(int fd)
{
    REAL(int, fsync, (int));
    enum verdict v;
    int r;
    if (!pre("fsync", fd_under(fd), &v, &r)) {
        return r;
    }
    return post(v, real_fsync(fd));
}

int
fdatasync(int fd)
{
    REAL(int, fdatasync, (int));
    enum verdict v;
    int r;
    if (!pre("fdatasync", fd_under(fd), &v, &r)) {
        return r;
    }
    return post(v, real_fdatasync(fd));
}

int
sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
    REAL(int, sync_file_range, (int, off64_t, off64_t, unsigned int));
    enum verdict v;
    int r;
    if (!pre("sync_file_range", fd_under(fd), &v, &r)) {
        return r;
    }
    return post(v, real_sync_file_range(fd, off, n, flags));
}

int
ftruncate(int fd, off_t len)
{
    REAL(int, ftruncate, (int, off_t));
    enum verdict v;
    int r;
    if (!pre("ftruncate", fd_under(fd), &v, &r)) {
        return r;
    }
    return post(v, real_ftruncate(fd, len));
}

int
ftruncate64(int fd, off64_t len)
{
    REAL(int, ftruncate64, (int, off64_t));
    enum verdict v;
    int r;
    if (!pre("ftruncate64", fd_under(fd), &v, &r)) {
        return r;
    }
    return post(v, real_ftruncate64(fd, len));
}

int
truncate(const char *path, off_t len)
{
    REAL(int, truncate, (const char *, off_t));
    enum verdict v;
    int r;
    if (!pre("truncate", at_under(AT_FDCWD, path), &v, &r)) {
        return r;
    }
    return post(v, real_truncate(path, len));
}

int
fallocate(int fd, int mode, off_t off, off_t len)
{
    REAL(int, fallocate, (int, int, off_t, off_t));
    enum verdict v;
    int r;
    if (!pre("fallocate", fd_under(fd), &v, &r)) {
        return r;
    }
    return post(v, real_fallocate(fd, mode, off, len));
}

int
fallocate64(int fd, int mode, off64_t off, off64_t len)
{
    REAL(int, fallocate64, (int, int, off64_t, off64_t));
    enum verdict v;
    int r;
    if (!pre("fallocate64", fd_under(fd), &v, &r)) {
        return r;
    }
    return post(v, real_fallocate64(fd, mode, off, len));
}

/* posix_fallocate returns the error number instead of setting errno. */
int
posix_fallocate(int fd, off_t off, off_t len)
{
    REAL(int, posix_fallocate, (int, off_t, off_t));
    enum verdict v;
    int r;
    if (!pre("posix_fallocate", fd_under(fd), &v, &r)) {
        return errno;
    }
    return post(v, real_posix_fallocate(fd, off, len));
}

int
posix_fallocate64(int fd, off64_t off, off64_t len)
{
    REAL(int, posix_fallocate64, (int, off64_t, off64_t));
    enum verdict v;
    int r;
    if (!pre("posix_fallocate64", fd_under(fd), &v, &r)) {
        return errno;
    }
    return post(v, real_posix_fallocate64(fd, off, len));
}

int
msync(void *addr, size_t len, int flags)
{
    REAL(int, msync, (void *, size_t, int));
    enum verdict v;
    int r;
    /* A mapping has no fd left to ask: every msync counts. */
    if (!pre("msync", dir_len > 0, &v, &r)) {
        return r;
    }
    return post(v, real_msync(addr, len, flags));
}

/* ---- names ------------------------------------------------------------- */

int
rename(const char *from, const char *to)
{
    REAL(int, rename, (const char *, const char *));
    enum verdict v;
    int r;
    bool under = at_under(AT_FDCWD, from) || at_under(AT_FDCWD, to);
    if (!pre("rename", under, &v, &r)) {
        return r;
    }
    return post(v, real_rename(from, to));
}

int
renameat(int fd1, const char *from, int fd2, const char *to)
{
    REAL(int, renameat, (int, const char *, int, const char *));
    enum verdict v;
    int r;
    bool under = at_under(fd1, from) || at_under(fd2, to);
    if (!pre("renameat", under, &v, &r)) {
        return r;
    }
    return post(v, real_renameat(fd1, from, fd2, to));
}

int
renameat2(int fd1, const char *from, int fd2, const char *to,
          unsigned int flags)
{
    REAL(int, renameat2, (int, const char *, int, const char *, unsigned int));
    enum verdict v;
    int r;
    bool under = at_under(fd1, from) || at_under(fd2, to);
    if (!pre("renameat2", under, &v, &r)) {
        return r;
    }
    return post(v, real_renameat2(fd1, from, fd2, to, flags));
}

int
unlink(const char *path)
{
    REAL(int, unlink, (const char *));
    enum verdict v;
    int r;
    if (!pre("unlink", at_under(AT_FDCWD, path), &v, &r)) {
        return r;
    }
    return post(v, real_unlink(path));
}

/* glibc's remove() unlinks without going through unlink(): its own entry. */
int
remove(const char *path)
{
    REAL(int, remove, (const char *));
    enum verdict v;
    int r;
    if (!pre("remove", at_under(AT_FDCWD, path), &v, &r)) {
        return r;
    }
    return post(v, real_remove(path));
}

int
unlinkat(int fd, const char *path, int flags)
{
    REAL(int, unlinkat, (int, const char *, int));
    enum verdict v;
    int r;
    if (!pre("unlinkat", at_under(fd, path), &v, &r)) {
        return r;
    }
    return post(v, real_unlinkat(fd, path, flags));
}

/* ---- opens: track fds under the directory ------------------------------ */

static int
opened(int fd, bool under)
{
    if (fd >= 0 && fd < FD_TRACK) {
        __atomic_store_n(&tracked[fd], under ? 1 : 0, __ATOMIC_RELAXED);
    }
    return fd;
}

static int
do_openat(const char *name, int dirfd, const char *path, int flags, mode_t mode)
{
    REAL(int, openat, (int, const char *, int, ...));
    bool under = at_under(dirfd, path);
    enum verdict v;
    int r;
    if (!pre(name, under, &v, &r)) {
        return r;
    }
    return post(v, opened(real_openat(dirfd, path, flags, mode), under));
}

static mode_t
mode_arg(int flags, va_list ap)
{
    if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
        return (mode_t)va_arg(ap, int);
    }
    return 0;
}

int
open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat("open", AT_FDCWD, path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat("open64", AT_FDCWD, path, flags, mode);
}

int
openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat("openat", dirfd, path, flags, mode);
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat("openat64", dirfd, path, flags, mode);
}

int
creat(const char *path, mode_t mode)
{
    return do_openat("creat", AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC,
                     mode);
}

/* The _FORTIFY_SOURCE entry points of open. */
int __open_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);

int
__open_2(const char *path, int flags)
{
    return do_openat("open", AT_FDCWD, path, flags, 0);
}

int
__openat_2(int dirfd, const char *path, int flags)
{
    return do_openat("openat", dirfd, path, flags, 0);
}

int
close(int fd)
{
    REAL(int, close, (int));
    opened(fd, false);
    return real_close(fd);
}
