/* cask_io.c - the syscall seam: reads, write paths and syncs go through a table
 * of function pointers that tests may replace. Owns that table only; depends on
 * no other storage module.
 */
#define _GNU_SOURCE /* fallocate, FALLOC_FL_KEEP_SIZE, preadv2 */
#include "storage/cask_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static ssize_t
sys_pread(int fd, void *buf, size_t n, off_t off)
{
    return pread(fd, buf, n, off);
}

static ssize_t
sys_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

static int
sys_fdatasync(int fd)
{
    return fdatasync(fd);
}

static int
sys_unlink(const char *path)
{
    return unlink(path);
}

static int
sys_ftruncate(int fd, off_t len)
{
    return ftruncate(fd, len);
}

static int
sys_fallocate(int fd, off_t off, off_t len)
{
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, off, len);
}

static int
sys_ring_setup(void)
{
    return 0;
}

static ssize_t
sys_ring_done(int fd, size_t n, off_t off, ssize_t res)
{
    (void)fd;
    (void)n;
    (void)off;
    return res;
}

static const struct cask_io_ops sys_ops = {
        .pwrite = sys_pwrite,
        .fdatasync = sys_fdatasync,
        .ftruncate = sys_ftruncate,
        .fallocate = sys_fallocate,
        .pread = sys_pread,
        .unlink = sys_unlink,
        .ring_setup = sys_ring_setup,
        .ring_done = sys_ring_done,
};

static struct cask_io_ops cur_ops = {
        .pwrite = sys_pwrite,
        .fdatasync = sys_fdatasync,
        .ftruncate = sys_ftruncate,
        .fallocate = sys_fallocate,
        .pread = sys_pread,
        .unlink = sys_unlink,
        .ring_setup = sys_ring_setup,
        .ring_done = sys_ring_done,
};

/* This thread's reads must not wait for the disk (cask_io_nowait). */
static _Thread_local bool nowait;

void
cask_io_nowait(bool on)
{
    nowait = on;
}

bool
cask_io_nowait_on(void)
{
    return nowait;
}

/* A read that takes only what the page cache holds: all of it, or EAGAIN.
 * Replaced operations (tests) cannot say what is cached: EAGAIN, so that
 * the caller reads through them on a thread that may wait. So does a
 * kernel without RWF_NOWAIT for this file, and a read that fails: the
 * blocking read that follows reports it. */
static int
pread_nowait(int fd, struct iovec *iov, int cnt, off_t off)
{
    size_t want = 0;
    for (int i = 0; i < cnt; i++) {
        want += iov[i].iov_len;
    }
    if (cur_ops.pread != sys_pread) {
        return EAGAIN;
    }
    ssize_t r;
    do {
        r = preadv2(fd, iov, cnt, off, RWF_NOWAIT);
    } while (r < 0 && errno == EINTR);
    return r >= 0 && (size_t)r == want ? 0 : EAGAIN;
}

void
cask_io_set(const struct cask_io_ops *ops)
{
    cur_ops = ops != NULL ? *ops : sys_ops;
}

const struct cask_io_ops *
cask_io_default(void)
{
    return &sys_ops;
}

bool
cask_io_reads_replaced(void)
{
    return cur_ops.pread != sys_pread;
}

bool
cask_io_map_writes_ok(void)
{
    return cur_ops.pwrite == sys_pwrite || cur_ops.map_write != NULL;
}

int
cask_io_map_write(int fd, size_t n, off_t off)
{
    return cur_ops.map_write != NULL ? cur_ops.map_write(fd, n, off) : 0;
}

int
cask_io_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = cur_ops.pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno != 0 ? errno : EIO;
        }
        if (w == 0) {
            return ENOSPC;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* After a vectored read or write moved `done` bytes: step *v / *n past the
 * parts it took whole and into the one it took in part. */
static void
iov_advance(struct iovec **v, int *n, size_t done)
{
    while (*n > 0 && done >= (*v)->iov_len) {
        done -= (*v)->iov_len;
        (*v)++;
        (*n)--;
    }
    if (*n > 0) {
        (*v)->iov_base = (char *)(*v)->iov_base + done;
        (*v)->iov_len -= done;
    }
}

int
cask_io_pwritev_all(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (cnt == 1) {
        return cask_io_pwrite_all(fd, iov[0].iov_base, iov[0].iov_len, off);
    }
    size_t n = 0;
    for (int i = 0; i < cnt; i++) {
        n += iov[i].iov_len;
    }
    if (cur_ops.pwrite != sys_pwrite) {
        char *buf = malloc(n ? n : 1);
        if (buf == NULL) {
            return ENOMEM;
        }
        size_t at = 0;
        for (int i = 0; i < cnt; i++) {
            memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        int rc = cask_io_pwrite_all(fd, buf, n, off);
        free(buf);
        return rc;
    }
    struct iovec v[8];
    if (cnt > 8) {
        return EINVAL;
    }
    for (int i = 0; i < cnt; i++) {
        v[i] = iov[i];
    }
    struct iovec *p = v;
    while (n > 0) {
        ssize_t w = pwritev(fd, p, cnt, off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno != 0 ? errno : EIO;
        }
        if (w == 0) {
            return ENOSPC;
        }
        n -= (size_t)w;
        off += w;
        iov_advance(&p, &cnt, (size_t)w); /* a short write: go on after it */
    }
    return 0;
}

int
cask_io_pread_all(int fd, void *buf, size_t n, off_t off)
{
    char *p = buf;

    if (nowait) {
        struct iovec iov = {buf, n};
        return pread_nowait(fd, &iov, 1, off);
    }
    while (n > 0) {
        ssize_t r = cur_ops.pread(fd, p, n, off);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno != 0 ? errno : EIO;
        }
        if (r == 0) {
            return EIO;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

int
cask_io_pread2_all(int fd, void *a, size_t alen, void *b, size_t blen,
                   off_t off)
{
    if (nowait) {
        struct iovec v2[2] = {{a, alen}, {b, blen}};
        return pread_nowait(fd, v2, 2, off);
    }
    if (cur_ops.pread != sys_pread) {
        int rc = cask_io_pread_all(fd, a, alen, off);
        return rc != 0 ? rc : cask_io_pread_all(fd, b, blen, off + (off_t)alen);
    }
    struct iovec iov[2] = {{a, alen}, {b, blen}};
    struct iovec *v = iov;
    int n = 2;
    while (n > 0) {
        if (v->iov_len == 0) {
            v++;
            n--;
            continue;
        }
        ssize_t r = preadv(fd, v, n, off);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno != 0 ? errno : EIO;
        }
        if (r == 0) {
            return EIO;
        }
        off += r;
        iov_advance(&v, &n, (size_t)r);
    }
    return 0;
}

int
cask_io_fdatasync(int fd)
{
    if (cur_ops.fdatasync(fd) != 0) {
        return errno != 0 ? errno : EIO;
    }
    return 0;
}

int
cask_io_ftruncate(int fd, off_t len)
{
    if (cur_ops.ftruncate(fd, len) != 0) {
        return errno != 0 ? errno : EIO;
    }
    return 0;
}

int
cask_io_ring_setup(void)
{
    return cur_ops.ring_setup != NULL ? cur_ops.ring_setup() : 0;
}

ssize_t
cask_io_ring_done(int fd, size_t n, off_t off, ssize_t res)
{
    return cur_ops.ring_done != NULL ? cur_ops.ring_done(fd, n, off, res) : res;
}

int
cask_io_unlink(const char *path)
{
    if (cur_ops.unlink(path) != 0) {
        return errno != 0 ? errno : EIO;
    }
    return 0;
}

int
cask_io_fallocate(int fd, off_t off, off_t len)
{
    if (cur_ops.fallocate(fd, off, len) != 0) {
        return errno != 0 ? errno : EIO;
    }
    return 0;
}
